#ifndef SHOPD_HTTP_RESP_H
#define SHOPD_HTTP_RESP_H

#include <stddef.h>

/*
 * The response a handler builds: status, body and a few extra headers, all borrowed from the
 * request's arena until the server has copied them out. resp_problem() is the only place where
 * a struct err becomes an RFC 9457 application/problem+json body.
 */

struct arena;
struct err;
struct json_w;

#define RESP_MAX_HEADERS 6

struct resp {
    int status;
    const char *content_type;
    const char *body;
    size_t body_len;
    struct {
        const char *name;
        const char *value;
    } headers[RESP_MAX_HEADERS];
    int nheaders;
};

void resp_header(struct resp *r, const char *name, const char *value);

/* status with the writer's JSON as the body. */
void resp_json(struct resp *r, int status, struct json_w *w);

/* status with a body of the given type; body is borrowed. */
void resp_body(struct resp *r, int status, const char *content_type, const char *body, size_t len);

/*
 * Renders e as a problem. A 5xx gets a generic detail naming the request id (the real detail
 * is for the log, never the client). 401 adds WWW-Authenticate, 503 and 409
 * IDEMPOTENCY_IN_FLIGHT add Retry-After. allow (may be NULL) becomes the Allow header of a 405.
 */
void resp_problem(struct resp *r, struct arena *a, const struct err *e, const char *request_id,
                  const char *allow);

#endif
