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
 * A request that an event loop may answer from Redis alone, with commands sent on the loop's
 * pipeline instead of a worker's blocking connection: a cached read (one GET, or a GET and
 * then an MGET for what it names), or a refusal Redis already knows (a coupon sold out).
 * command() gives the first command (-1: this request goes to the handler); answer() reads
 * its reply (NULL when Redis did not answer in time) and says what comes of it. Both run on
 * the loop and must not block; what they keep between steps lives in req->loop_state.
 */
struct redis_value;

struct loop_command {
    int argc;
    const char **argv; /* from the request's arena, or constant text */
    size_t *lens;      /* NULL: every argument is text */
};

enum loop_step {
    LOOP_ANSWERED,  /* resp is the answer */
    LOOP_REFUSED,   /* e is the answer (a problem) */
    LOOP_AGAIN,     /* send next, and call answer() with its reply */
    LOOP_TO_WORKER, /* the handler answers (a miss, no Redis, anything unexpected) */
};

struct route_loop_read {
    int (*command)(struct req *req, struct loop_command *cmd);
    enum loop_step (*answer)(struct req *req, const struct redis_value *reply, struct resp *resp,
                             struct loop_command *next, struct err *e);
};

/* cmd = GET key, from a (for a command() that reads one key). */
struct arena;
void loop_command_get(struct loop_command *cmd, struct arena *a, const char *key);

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
