#ifndef SHOPD_TESTS_JSON_CHECK_H
#define SHOPD_TESTS_JSON_CHECK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

/*
 * Reading response bodies in the integration tests. A body that is not JSON, or a member of
 * the wrong type where a value is required, fails the running cmocka test with a message.
 * Short names on purpose: tests read better with them, and nothing outside tests/ uses them.
 */

/* The parsed body; the caller json_decref()s it. */
json_t *parse_body(const char *body);

int64_t jint(json_t *j, const char *key);     /* must be an integer */
bool jbool(json_t *j, const char *key);       /* must be a boolean */
const char *jstr(json_t *j, const char *key); /* NULL when absent or not a string */

struct http_client;

/*
 * Sends method to base_url + the printf-formatted path with client c (body as JSON when
 * given), fails the test on a transport error (or a non-JSON answer when out is given), and
 * returns the status; *out, when out is given, is the parsed answer to json_decref().
 */
long call_json_v(struct http_client *c, const char *base_url, const char *method, const char *token,
                 const char *body, json_t **out, const char *fmt, va_list ap)
    __attribute__((format(printf, 7, 0)));

#endif
