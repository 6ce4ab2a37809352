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

#define REDIS_SENTINELS_MAX 5

struct redis_node {
    const char *host; /* a Unix socket's path when it begins with '/' (port 0) */
    int port;
};

struct redis_options {
    const char *host;
    int port;
    int db;
    int size;
    int timeout_ms; /* connect and command time-out */
    /*
     * Redis Sentinel (none when nsentinels is 0): the master is the one the Sentinels name
     * master_name, host:port only the first guess. Before connecting to a master the pool
     * asks them (in turn, until one answers) when it has not yet, when a connect failed, or
     * when a connection found a replica (ROLE, or a READONLY reply); every new connection
     * checks ROLE. When the address changes, connections to the former master are closed on
     * their next checkout. Sentinel itself disconnects the clients of a demoted master, so a
     * failover is seen on the next command.
     */
    struct redis_node sentinels[REDIS_SENTINELS_MAX];
    int nsentinels;
    const char *master_name;
};

struct redis_pool *redis_pool_new(const struct redis_options *o);

/* A new hiredis connection (a redisContext *, NULL only when out of memory; check its err)
 * to host:port, or to the Unix socket host when host begins with '/'; timeout_ms bounds the
 * connect. For the callers that keep a connection of their own (the lock subscriber, tests);
 * the caller frees it with redisFree. */
void *redis_connect_place(const char *host, int port, int timeout_ms);
void redis_pool_free(struct redis_pool *p);

/*
 * A new connection of the caller's own to the master (with Sentinels, the one they name, and
 * only if it says it is the master), for a subscriber that must follow it; NULL, or a
 * redisContext * (as void *) that the caller frees with redisFree. *generation is set to the
 * pool's master generation it belongs to: when redis_pool_master_generation() differs, the
 * master moved and the caller should connect again.
 */
void *redis_pool_connect_master(struct redis_pool *p, int timeout_ms, unsigned *generation);
unsigned redis_pool_master_generation(struct redis_pool *p);

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

/* The database the pool's connections select. */
int redis_pool_db(const struct redis_pool *p);

/* PING; 0 when Redis answers. */
int redis_ping(struct redis_pool *p, struct err *e);

/* True while the pool believes Redis is reachable (for /readyz and degraded mode). */
bool redis_pool_healthy(struct redis_pool *p);

#endif
