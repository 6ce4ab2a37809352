#ifndef SHOPD_REDIS_REDIS_POOL_H
#define SHOPD_REDIS_REDIS_POOL_H

#include <stdbool.h>

/*
 * A pool of Redis connections (hiredis, blocking, with short time-outs). Redis only ever makes
 * the service faster: when it is down, callers get ERR_UNAVAILABLE at once (after a failure
 * the pool fails fast for a second instead of waiting on a connect per request) and go on
 * without it. Connections are re-established on a later checkout. Thread-safe; a checked-out
 * connection belongs to one thread until it is released.
 *
 * The modules of src/redis/ (and only they) issue commands on a connection.
 */

struct err;
struct redis_pool;
struct redis_conn;

struct redis_options {
    const char *host;
    int port;
    int db;
    int size;
    int timeout_ms; /* connect and command time-out */
};

struct redis_pool *redis_pool_new(const struct redis_options *o);

/* A new hiredis connection (a redisContext *, NULL only when out of memory; check its err)
 * to host:port, or to the Unix socket host when host begins with '/'; timeout_ms bounds the
 * connect. For the callers that keep a connection of their own (the lock subscriber, tests);
 * the caller frees it with redisFree. */
void *redis_connect_place(const char *host, int port, int timeout_ms);
void redis_pool_free(struct redis_pool *p);

int redis_acquire(struct redis_pool *p, struct redis_conn **out, struct err *e);
void redis_release(struct redis_pool *p, struct redis_conn *c);

/* Marks c broken after a failed command (no reply in time, or the connection broke): it is
 * closed on release and reconnected on a later checkout. It does not mark Redis down: only a
 * failed connect does, so that one slow reply does not send every caller into degraded mode. */
void redis_conn_failed(struct redis_pool *p, struct redis_conn *c);

/* The hiredis context of c, as void* so that this header stays free of hiredis. */
void *redis_conn_context(struct redis_conn *c);

/*
 * Gives c's next commands a socket time-out of timeout_ms instead of the pool's (ignored when
 * timeout_ms <= 0); redis_release() restores the pool's. For a command that is meant to take
 * long, such as a blocking read (its BLOCK plus a margin), or a caller that would rather wait
 * for Redis's answer than be left not knowing whether a write ran (redis/dlock.c).
 */
void redis_conn_set_timeout(struct redis_conn *c, int timeout_ms);

/* The pool's command time-out. */
int redis_pool_timeout_ms(const struct redis_pool *p);

/* PING; 0 when Redis answers. */
int redis_ping(struct redis_pool *p, struct err *e);

/* True while the pool believes Redis is reachable (for /readyz and degraded mode). */
bool redis_pool_healthy(struct redis_pool *p);

#endif
