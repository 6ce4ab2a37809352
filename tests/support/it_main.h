#ifndef SHOPD_TESTS_IT_MAIN_H
#define SHOPD_TESTS_IT_MAIN_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <cmocka.h>

/*
 * The one preamble of every integration test binary, and the main thread's HTTP client.
 *
 *     int main(void)
 *     {
 *         const struct CMUnitTest tests[] = { ... };
 *         int failed = 0;
 *
 *         if (it_main_begin() < 0)
 *             return 1;
 *         IT_RUN_GROUP(failed, "orders", tests, setup, teardown);
 *         return failed ? 1 : 0;
 *     }
 */

struct harness_server;
struct http_client;
struct json_t;

/* Applies TEST_FILTER (a glob over test names) and checks that the services are named. When
 * SHOPD_TEST_DB is unset it prints a cmocka FAILED line and returns -1: an integration suite
 * that cannot run is a failure, never a silent pass. */
int it_main_begin(void);

/* Whether TEST_FILTER selects one of the group's tests: cmocka runs a group's setup, which
 * starts servers, even when it selects none. */
bool it_filter_selects_any(const struct CMUnitTest *tests, size_t n);

/* Runs the group when the filter selects any of its tests, adding its failures to failed. */
#define IT_RUN_GROUP(failed, name, tests, setup, teardown)                         \
    do {                                                                           \
        if (it_filter_selects_any(tests, sizeof(tests) / sizeof((tests)[0])))      \
            (failed) += cmocka_run_group_tests_name(name, tests, setup, teardown); \
    } while (0)

/* The main thread's keep-alive client: initialised by it_main_begin, released at exit. Worker
 * threads of a test keep their own struct http_client. */
extern struct http_client it_client;

/* Sends method to s at the printf-formatted path with token and a JSON body (both may be
 * NULL) on it_client, fails the test on a transport error, and returns the status; *out, when
 * given, is the parsed answer to json_decref(). Main thread only. */
long it_call(const struct harness_server *s, const char *method, const char *token,
             const char *body, struct json_t **out, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

#endif
