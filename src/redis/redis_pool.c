#include "redis/redis_pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/handoff.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/num.h"
#include "core/round_trips.h"
#include "core/xalloc.h"
#include "redis/redis_cmd.h"

#include "core/banned.h"

#define ACQUIRE_WAIT_S  2
#define DOWN_BACKOFF_US 1000000

struct redis_conn {
    redisContext *ctx;
    unsigned generation; /* the pool's master_generation it was connected under */
    bool broken;
    bool own_timeout; /* a per-call time-out is set: restored on release */
    struct redis_conn *next_free;
};

struct redis_pool {
    struct redis_options opt;
    char *sentinel_host[REDIS_SENTINELS_MAX];
    char *master_name;
    /* Where the master is, and the asking of the Sentinels (one thread at a time). */
    pthread_mutex_t master_lock;
    char master_host[128];
    int master_port;
    bool master_named;             /* a Sentinel answered once */
    atomic_bool find_master;       /* ask the Sentinels before the next connect */
    atomic_uint master_generation; /* bumped when the master's address changes */
    pthread_mutex_t lock;
    struct handoff line; /* callers waiting for a connection, first come first served */
    struct redis_conn *conns;
    struct redis_conn *free_list;
    atomic_llong failed_at; /* monotonic us of the last failure; 0 while healthy */
};

struct redis_pool *redis_pool_new(const struct redis_options *o)
{
    struct redis_pool *p = xcalloc(1, sizeof(*p));

    p->opt = *o;
    for (int i = 0; i < o->nsentinels; i++)
        p->sentinel_host[i] = xstrdup(o->sentinels[i].host);
    p->master_name = xstrdup(o->master_name ? o->master_name : "");
    snprintf(p->master_host, sizeof(p->master_host), "%s", o->host);
    p->master_port = o->port;
    atomic_store(&p->find_master, o->nsentinels > 0);
    pthread_mutex_init(&p->master_lock, NULL);
    pthread_mutex_init(&p->lock, NULL);
    handoff_init(&p->line);
    p->conns = xcalloc((size_t)o->size, sizeof(*p->conns));
    for (int i = o->size - 1; i >= 0; i--) {
        p->conns[i].next_free = p->free_list;
        p->free_list = &p->conns[i];
    }
    return p;
}

static void close_conn(struct redis_conn *c)
{
    if (c->ctx)
        redisFree(c->ctx);
    c->ctx = NULL;
    c->broken = false;
}

void redis_pool_free(struct redis_pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->opt.size; i++)
        close_conn(&p->conns[i]);
    free(p->conns);
    for (int i = 0; i < p->opt.nsentinels; i++)
        free(p->sentinel_host[i]);
    free(p->master_name);
    pthread_mutex_destroy(&p->master_lock);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static void mark_down(struct redis_pool *p)
{
    atomic_store(&p->failed_at, clock_monotonic_us());
    metrics_inc(METRIC_REDIS_ERRORS);
}

static struct timeval timeval_of(int ms)
{
    return (struct timeval){ms / 1000, (long)(ms % 1000) * 1000};
}

static int select_db(struct redis_pool *p, struct redis_conn *c, struct err *e)
{
    redisReply *r = redisCommand(c->ctx, "SELECT %d", p->opt.db);
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    /* A SELECT that got no answer in time is a slow Redis, not an unreachable one: only this
     * connection is given up, and the pool stays up for everyone else. */
    bool slow = !r && c->ctx->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);

    if (r)
        freeReplyObject(r);
    if (ok)
        return 0;
    close_conn(c);
    if (slow)
        metrics_inc(METRIC_REDIS_ERRORS);
    else
        mark_down(p);
    return err_set(e, ERR_UNAVAILABLE, "redis SELECT %d %s", p->opt.db,
                   slow ? "timed out" : "failed");
}

void *redis_connect_place(const char *host, int port, int timeout_ms)
{
    struct timeval tv = timeval_of(timeout_ms);

    /* A host that begins with '/' is a Unix socket's path (core/config.h). */
    return host[0] == '/' ? redisConnectUnixWithTimeout(host, tv)
                          : redisConnectWithTimeout(host, port, tv);
}

/* ---- finding the master ---- */

/* One Sentinel's answer for the master's address: 0 with host and *port set, or -1. */
static int ask_sentinel(struct redis_pool *p, int i, char *host, size_t size, int *port)
{
    redisContext *c =
        redis_connect_place(p->sentinel_host[i], p->opt.sentinels[i].port, p->opt.timeout_ms);
    redisReply *r = NULL;
    int64_t number;
    int rc = -1;

    if (c && !c->err) {
        redisSetTimeout(c, timeval_of(p->opt.timeout_ms));
        r = redisCommand(c, "SENTINEL get-master-addr-by-name %s", p->master_name);
    }
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[0]->len < size &&
        r->element[1]->type == REDIS_REPLY_STRING &&
        !num_parse_i64_n(r->element[1]->str, r->element[1]->len, 1, 65535, &number)) {
        memcpy(host, r->element[0]->str, r->element[0]->len + 1);
        *port = (int)number;
        rc = 0;
    }
    if (r)
        freeReplyObject(r);
    if (c)
        redisFree(c);
    return rc;
}

/* Under master_lock: asks the Sentinels in turn, and moves the pool if they name another
 * master than the one it used. */
static void find_master_locked(struct redis_pool *p)
{
    char host[sizeof(p->master_host)];
    int port;

    for (int i = 0; i < p->opt.nsentinels; i++) {
        if (ask_sentinel(p, i, host, sizeof(host), &port))
            continue;
        atomic_store(&p->find_master, false);
        if (port == p->master_port && !strcmp(host, p->master_host)) {
            p->master_named = true;
            return;
        }
        memcpy(p->master_host, host, sizeof(host));
        p->master_port = port;
        atomic_fetch_add(&p->master_generation, 1);
        if (p->master_named) {
            metrics_inc(METRIC_REDIS_MASTER_CHANGES);
            log_warn("redis: the Sentinels name %s:%d master '%s' now", host, port, p->master_name);
        } else {
            log_info("redis: master '%s' is %s:%d", p->master_name, host, port);
        }
        p->master_named = true;
        return;
    }
    log_warn("redis: no Sentinel named master '%s'", p->master_name);
}

/* True when the server on c says it is a master (ROLE). */
static bool is_master(redisContext *c)
{
    redisReply *r = redisCommand(c, "ROLE");
    bool yes = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
               r->element[0]->type == REDIS_REPLY_STRING && !strcmp(r->element[0]->str, "master");

    if (r)
        freeReplyObject(r);
    return yes;
}

/* Where the master is (asking the Sentinels first when the pool has to find it again), and
 * the master generation that address belongs to. */
static unsigned current_master(struct redis_pool *p, char *host, size_t size, int *port)
{
    pthread_mutex_lock(&p->master_lock);
    if (p->opt.nsentinels && atomic_load(&p->find_master))
        find_master_locked(p);
    snprintf(host, size, "%s", p->master_host);
    *port = p->master_port;
    unsigned generation = atomic_load(&p->master_generation);
    pthread_mutex_unlock(&p->master_lock);
    return generation;
}

/* A connection to host:port if it takes writes (with Sentinels: if it says it is the
 * master); NULL with e set. */
static redisContext *connect_writable(struct redis_pool *p, const char *host, int port,
                                      int timeout_ms, struct err *e)
{
    redisContext *c = redis_connect_place(host, port, timeout_ms);

    if (!c || c->err) {
        err_set(e, ERR_UNAVAILABLE, "cannot connect to redis at %s:%d: %s", host, port,
                c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, timeval_of(timeout_ms));
    if (p->opt.nsentinels && !is_master(c)) {
        err_set(e, ERR_UNAVAILABLE, "redis at %s:%d is not master '%s'", host, port,
                p->master_name);
        redisFree(c);
        return NULL;
    }
    return c;
}

/*
 * A connection to the master: with Sentinels, the one they name, and only if it says it is
 * the master; when that fails, they are asked at once and, if they name another, it is tried
 * too. NULL with e set, or a context with *generation the master generation it belongs to.
 */
static redisContext *open_master(struct redis_pool *p, int timeout_ms, unsigned *generation,
                                 struct err *e)
{
    char host[sizeof(p->master_host)];
    int port;

    *generation = current_master(p, host, sizeof(host), &port);
    redisContext *c = connect_writable(p, host, port, timeout_ms, e);
    if (c || !p->opt.nsentinels)
        return c;
    atomic_store(&p->find_master, true);
    unsigned tried = *generation;
    *generation = current_master(p, host, sizeof(host), &port);
    if (*generation == tried)
        return NULL; /* the Sentinels named the same one, or none answered */
    return connect_writable(p, host, port, timeout_ms, e);
}

static int connect_conn(struct redis_pool *p, struct redis_conn *c, struct err *e)
{
    c->ctx = open_master(p, p->opt.timeout_ms, &c->generation, e);
    if (!c->ctx) {
        mark_down(p);
        return -1;
    }
    if (p->opt.db && select_db(p, c, e))
        return -1;
    if (atomic_exchange(&p->failed_at, 0))
        metrics_inc(METRIC_REDIS_RECONNECTS);
    return 0;
}

void *redis_pool_connect_master(struct redis_pool *p, int timeout_ms, unsigned *generation)
{
    struct err ignored;

    return open_master(p, timeout_ms, generation, &ignored);
}

unsigned redis_pool_master_generation(struct redis_pool *p)
{
    return atomic_load(&p->master_generation);
}

int redis_acquire(struct redis_pool *p, struct redis_conn **out, struct err *e)
{
    long long failed_at = atomic_load(&p->failed_at);

    /* Each failure returns a literal -1 rather than err_set()'s (also -1): err_set() lives in
     * another file, and the analyser must see that 0 always comes with *out set. */
    if (failed_at && clock_monotonic_us() - failed_at < DOWN_BACKOFF_US) {
        err_set(e, ERR_UNAVAILABLE, "redis is unreachable");
        return -1;
    }
    pthread_mutex_lock(&p->lock);
    struct redis_conn *c = p->free_list;
    if (c && !handoff_waiting(&p->line))
        p->free_list = c->next_free;
    else
        c = handoff_wait(&p->line, &p->lock, ACQUIRE_WAIT_S * 1000);
    pthread_mutex_unlock(&p->lock);
    if (!c) {
        err_set(e, ERR_UNAVAILABLE, "all %d redis connections are busy", p->opt.size);
        return -1;
    }

    /* Connected to a master the Sentinels no longer name: reconnect to the one they do. */
    if (c->ctx && c->generation != atomic_load(&p->master_generation))
        close_conn(c);
    if (!c->ctx && connect_conn(p, c, e)) {
        redis_release(p, c);
        return -1;
    }
    *out = c;
    return 0;
}

void redis_release(struct redis_pool *p, struct redis_conn *c)
{
    if (!c)
        return;
    if (c->broken)
        close_conn(c);
    if (c->own_timeout && c->ctx)
        redisSetTimeout(c->ctx, timeval_of(p->opt.timeout_ms));
    c->own_timeout = false;
    pthread_mutex_lock(&p->lock);
    if (!handoff_give(&p->line, c)) {
        c->next_free = p->free_list;
        p->free_list = c;
    }
    pthread_mutex_unlock(&p->lock);
}

void redis_conn_failed(struct redis_pool *p, struct redis_conn *c)
{
    /* The connection may only be stale (Redis restarted): it is reconnected on its next
     * checkout, and only a failed connect marks Redis down for the whole pool. */
    c->broken = true;
    metrics_inc(METRIC_REDIS_ERRORS);
}

void *redis_conn_context(struct redis_conn *c)
{
    return c->ctx;
}

void redis_conn_set_timeout(struct redis_conn *c, int timeout_ms)
{
    if (timeout_ms <= 0 || !c->ctx)
        return;
    redisSetTimeout(c->ctx, timeval_of(timeout_ms));
    c->own_timeout = true;
}

int redis_pool_timeout_ms(const struct redis_pool *p)
{
    return p->opt.timeout_ms;
}

int redis_pool_db(const struct redis_pool *p)
{
    return p->opt.db;
}

int redis_ping(struct redis_pool *p, struct err *e)
{
    const char *argv[] = {"PING"};
    redisReply *r =
        redis_cmd(p, &(struct redis_call){.caller = "ping", .argc = 1, .argv = argv}, e);

    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}

bool redis_pool_healthy(struct redis_pool *p)
{
    return atomic_load(&p->failed_at) == 0;
}

void redis_owner_token(char *buf, size_t size)
{
    static atomic_ulong counter;
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(buf, size, "%d-%lx-%lx-%lu", (int)getpid(), (unsigned long)ts.tv_sec,
             (unsigned long)ts.tv_nsec, atomic_fetch_add(&counter, 1));
}

redisReply *redis_conn_command(struct redis_pool *p, struct redis_conn *c, int argc,
                               const char **argv, const size_t *lens)
{
    round_trip_note(ROUND_TRIP_REDIS);
    redisReply *r = redisCommandArgv(c->ctx, argc, argv, lens);
    if (!r) {
        redis_conn_failed(p, c);
        return NULL;
    }
    /* A replica: the master moved (a failover) and this connection was not told. */
    if (r->type == REDIS_REPLY_ERROR &&
        (!strncmp(r->str, "READONLY", 8) || !strncmp(r->str, "MASTERDOWN", 10))) {
        redis_conn_failed(p, c);
        if (p->opt.nsentinels)
            atomic_store(&p->find_master, true);
    }
    return r;
}
