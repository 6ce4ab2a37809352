#ifndef SHOPD_HTTP_REQ_H
#define SHOPD_HTTP_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "http/auth.h"
#include "http/router.h"

/*
 * One HTTP request as handlers see it. Created by the server on the first callback for a
 * request and released when the response has been sent; everything hanging off it comes from
 * req->arena. Used by one thread at a time.
 */

struct MHD_Connection;

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

    /* server-private */
    struct MHD_Connection *conn;
    int route;
    int early_status; /* a problem decided before the body was read (413) */
    bool begun;       /* headers seen: request id set, route matched */
};

/* The request header name (case-insensitive) or NULL; borrowed until the request ends. */
const char *req_header(struct req *r, const char *name);

/* The query argument name, decoded, or NULL; borrowed until the request ends. */
const char *req_query(struct req *r, const char *name);

/* The path's n-th id (0-based); the route guarantees it exists. */
int64_t req_param(const struct req *r, int n);

#endif
