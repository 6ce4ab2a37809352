#ifndef SHOPD_HTTP_SERVER_H
#define SHOPD_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

/*
 * The HTTP server: libmicrohttpd with a thread per connection, so that a handler blocked on a
 * row lock or a slow query never stalls another connection. Each request is read whole (at
 * most 64 KiB of body), routed through the caller's table, authenticated, handed to its
 * handler, logged once and counted in the metrics.
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
    void *app;       /* passed to handlers as req->app */
    bool access_log; /* one line per request on stderr */
    int max_connections;
};

#define SERVER_MAX_BODY ((size_t)64 * 1024)

struct server *server_start(const struct server_options *opt, struct err *e);
void server_stop(struct server *s, int grace_ms);

#endif
