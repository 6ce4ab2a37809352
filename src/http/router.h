#ifndef SHOPD_HTTP_ROUTER_H
#define SHOPD_HTTP_ROUTER_H

#include <stddef.h>
#include <stdint.h>

/*
 * Routes as data: {method, pattern, handler, auth, status[, loop_read]}. A pattern is a path whose
 * segments are literals or "{name}" placeholders; a placeholder matches only a positive 64-bit
 * decimal integer in canonical form (router_parse_id), parsed into params[] in order. The path is
 * the raw one of the request line (no percent-decoding, no query), so that each resource has one
 * spelling: "/api/products/007", "/api/products/%31" and "/api/products/7%00x" match no route.
 * Matching allocates nothing and is thread-safe.
 */

struct req;
struct resp;
struct err;

enum route_auth {
    ROUTE_PUBLIC, /* no token needed */
    ROUTE_USER,   /* any valid token; the handler checks whose data it touches */
    ROUTE_SELF,   /* a token whose sub is the path's first id, or an admin token */
    ROUTE_ADMIN,  /* an admin token */
};

/* Fills resp and returns 0, or returns -1 with e set (rendered as a problem). */
typedef int route_handler_fn(struct req *req, struct resp *resp, struct err *e);

/*
 * A read that an event loop may answer from one Redis GET, sent on the loop's pipeline
 * instead of a worker's blocking connection. key() gives the Redis key (-1: this one goes to
 * the handler); answer() turns the GET's value into the response (-1: the handler answers
 * instead, as it does when the key is missing or Redis does not answer in time). Both run on
 * the loop and must not block.
 */
struct route_loop_read {
    int (*key)(struct req *req, char *buf, size_t size);
    int (*answer)(struct req *req, struct resp *resp, const char *value, size_t len);
};

struct route {
    const char *method;
    const char *pattern;
    route_handler_fn *handler;
    enum route_auth auth;
    int status; /* of a success: the handler answers with it (req->ok_status) */
    const struct route_loop_read *loop_read; /* NULL: always the handler, on a worker */
};

#define ROUTER_MAX_PARAMS 4

struct route_match {
    int index;                         /* into the table; -1 when none */
    int64_t params[ROUTER_MAX_PARAMS]; /* the placeholders' values, in order */
    int nparams;
    char allow[64];      /* for 405: the methods the path does have */
    char canonical[256]; /* the path with ids in canonical decimal form */
};

enum router_result { ROUTER_FOUND, ROUTER_NOT_FOUND, ROUTER_METHOD_NOT_ALLOWED };

/*
 * Parses a path id: a positive 64-bit decimal integer in canonical form (digits only, no
 * leading zero, at most INT64_MAX), len bytes of s. 0 with *id, or -1. The router takes a
 * path as it came on the wire, still percent-encoded, so "%31" is not an id either.
 */
int router_parse_id(const char *s, size_t len, int64_t *id);

enum router_result router_match(const struct route *table, size_t count, const char *method,
                                const char *path, struct route_match *m);

#endif
