#ifndef SHOPD_TESTS_HTTP_CLIENT_H
#define SHOPD_TESTS_HTTP_CLIENT_H

#include <stddef.h>

/*
 * A small libcurl client for the integration tests. A struct http_client keeps one easy
 * handle (and so one keep-alive connection) and belongs to one thread.
 */

struct http_client {
    void *curl;
};

struct http_result {
    long status;
    char *body; /* NUL-terminated, malloc'd */
    size_t len;
    char *headers;  /* the raw response header block, malloc'd */
    int curl_error; /* CURLcode, 0 on success */
};

void http_client_init(struct http_client *c);
void http_client_release(struct http_client *c);

/* Sends one request. token, content_type, body and extra_header ("Name: value") may be NULL.
 * Returns 0 when a response came back (any status), -1 on a transport error. */
int http_do(struct http_client *c, const char *method, const char *url, const char *token,
            const char *content_type, const char *body, size_t body_len, const char *extra_header,
            struct http_result *out);

/* The same with a fresh connection, for one-off calls. */
int http_once(const char *method, const char *url, const char *token, const char *body,
              const char *extra_header, struct http_result *out);

/* The value of response header name (case-insensitive) copied into buf, or NULL. */
const char *http_header(const struct http_result *r, const char *name, char *buf, size_t size);

void http_result_free(struct http_result *r);

#endif
