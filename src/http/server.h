#ifndef SHOPD_HTTP_SERVER_H
#define SHOPD_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

/*
 * The HTTP server: h2o's event loop (libh2o-evloop), a few loop threads that own every
 * connection, and a bounded pool of workers for the handlers, which may block on MariaDB, a
 * row lock or a lock lease without stalling any connection. Each request is read whole (at
 * most 64 KiB of body), routed through the caller's table, authenticated on its loop, handed to
 * a worker for its handler, answered from its loop, logged once and counted in the metrics.
 * The rules of API.md "Connections" live here: the caps on connections (per instance and per
 * client address: 503 with Retry-After), the 10 s deadline for a request's head (408), the
 * 60 s idle keep-alive, the framing checks (400), and 503 when the workers' queue is full.
 *
 * server_start() returns once listening; server_stop() stops accepting, lets the requests in
 * flight finish (up to grace_ms) and closes every connection.
 */

struct route;
struct server;
struct err;

struct server_options {
    const char *host;
    int port;
    const struct route *routes;
    size_t route_count;
    const char *jwt_secret;
    void *app;            /* passed to handlers as req->app */
    bool access_log;      /* one line per request on stderr */
    int max_connections;  /* open at once; more are answered 503 and closed */
    int max_conns_per_ip; /* the same, per client address */
    int loops;            /* event-loop threads (0: one per core) */
    int head_timeout_s;   /* a request whole within this of its first byte, else 408 (0: 10) */
    int idle_timeout_s;   /* an idle keep-alive connection closes after this (0: 60) */
    int workers;          /* handler threads */
    size_t queue_max;     /* requests waiting for a worker before 503 */
    /*
     * The loops' own Redis connections, for the routes with a loop_read (http/router.h); NULL:
     * every request runs on a worker. redis_connect is called on a worker (it may block): a
     * connected non-blocking descriptor and the master generation it belongs to, or -1.
     * redis_generation is called on the loops (it must not block): when it moves, a loop
     * drops its connection and makes a new one.
     */
    int (*redis_connect)(void *app, unsigned *generation);
    unsigned (*redis_generation)(void *app);
};

#define SERVER_MAX_BODY ((size_t)64 * 1024)
/* Requests that may wait for a worker, per worker, before the next is answered 503: enough for
 * a burst on every connection of a load test, bounded so that overload is answered, not hoarded. */
#define SERVER_QUEUE_PER_WORKER 64

struct server *server_start(const struct server_options *opt, struct err *e);
void server_stop(struct server *s, int grace_ms);

/* The port listened on (the one the kernel chose when asked for port 0). */
int server_port(const struct server *s);

#endif
