#ifndef SHOPD_HTTP_REQ_H
#define SHOPD_HTTP_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "http/auth.h"
#include "http/router.h"

/*
 * One HTTP request as handlers see it. Created by the server on the event loop once the request
 * has arrived whole and released when the response has been sent; everything hanging off it
 * comes from req->arena (the header fields and the body are copied there, NUL-terminated, so
 * that nothing borrows from the HTTP engine). Used by one thread at a time: the loop, then at
 * most one worker, then the loop again.
 */

struct req_field {
    const char *name; /* lower case, as the engine spells it */
    const char *value;
};

#define REQ_MAX_QUERY_ARGS 64 /* more is answered 400 (API.md "Connections") */

struct req {
    struct arena arena;
    const char *method;
    const char *path;         /* as on the wire: still percent-encoded, without the query */
    struct route_match match; /* params[] hold the path's ids; canonical the concrete path */
    char *body;
    size_t body_len;
    struct auth auth;
    char request_id[40];
    void *app;     /* the service environment the server was started with */
    int ok_status; /* the route's status of a success */
    int64_t start_us;

    const struct req_field *fields;
    int nfields;
    const char *query; /* what follows the '?' of the target, still encoded, or NULL */
    /* What a route's loop read (struct route_loop_read) kept between its steps, from the
     * arena; the handler may use it when the request reaches it (a body already decoded). */
    void *loop_state;

    /* server-private */
    int route;
};

/* The request header name (case-insensitive) or NULL; borrowed until the request ends. */
const char *req_header(struct req *r, const char *name);

/* The query argument name (its first occurrence), percent-decoded (a NUL ends it), or NULL;
 * borrowed until the request ends. */
const char *req_query(struct req *r, const char *name);

/* The path's n-th id (0-based); the route guarantees it exists. */
int64_t req_param(const struct req *r, int n);

/* How many arguments the query holds (the server refuses more than REQ_MAX_QUERY_ARGS). */
int req_query_count(const struct req *r);

#endif
