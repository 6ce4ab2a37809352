#include "redis/redis_pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/metrics.h"
#include "core/round_trips.h"
#include "core/xalloc.h"
#include "redis/redis_cmd.h"

#include "core/banned.h"

#define ACQUIRE_WAIT_S  2
#define DOWN_BACKOFF_US 1000000

struct redis_conn {
    redisContext *ctx;
    bool broken;
    bool own_timeout; /* a per-call time-out is set: restored on release */
    struct redis_conn *next_free;
};

struct redis_pool {
    struct redis_options opt;
    char *host;
    pthread_mutex_t lock;
    pthread_cond_t freed;
    struct redis_conn *conns;
    struct redis_conn *free_list;
    atomic_llong failed_at; /* monotonic us of the last failure; 0 while healthy */
};

struct redis_pool *redis_pool_new(const struct redis_options *o)
{
    struct redis_pool *p = xcalloc(1, sizeof(*p));

    p->opt = *o;
    p->host = xstrdup(o->host);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->freed, NULL);
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
    free(p->host);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->freed);
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

static int connect_conn(struct redis_pool *p, struct redis_conn *c, struct err *e)
{
    struct timeval tv = timeval_of(p->opt.timeout_ms);

    c->ctx = redis_connect_place(p->host, p->opt.port, p->opt.timeout_ms);
    if (!c->ctx || c->ctx->err) {
        err_set(e, ERR_UNAVAILABLE, "cannot connect to redis at %s:%d: %s", p->host, p->opt.port,
                c->ctx ? c->ctx->errstr : "out of memory");
        close_conn(c);
        mark_down(p);
        return -1;
    }
    redisSetTimeout(c->ctx, tv);
    if (p->opt.db && select_db(p, c, e))
        return -1;
    if (atomic_exchange(&p->failed_at, 0))
        metrics_inc(METRIC_REDIS_RECONNECTS);
    return 0;
}

int redis_acquire(struct redis_pool *p, struct redis_conn **out, struct err *e)
{
    struct timespec deadline;
    long long failed_at = atomic_load(&p->failed_at);

    /* Each failure returns a literal -1 rather than err_set()'s (also -1): err_set() lives in
     * another file, and the analyser must see that 0 always comes with *out set. */
    if (failed_at && clock_monotonic_us() - failed_at < DOWN_BACKOFF_US) {
        err_set(e, ERR_UNAVAILABLE, "redis is unreachable");
        return -1;
    }
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += ACQUIRE_WAIT_S;
    pthread_mutex_lock(&p->lock);
    while (!p->free_list) {
        if (pthread_cond_timedwait(&p->freed, &p->lock, &deadline) == ETIMEDOUT) {
            pthread_mutex_unlock(&p->lock);
            err_set(e, ERR_UNAVAILABLE, "all %d redis connections are busy", p->opt.size);
            return -1;
        }
    }
    struct redis_conn *c = p->free_list;
    p->free_list = c->next_free;
    pthread_mutex_unlock(&p->lock);

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
    c->next_free = p->free_list;
    p->free_list = c;
    pthread_cond_signal(&p->freed);
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

int redis_ping(struct redis_pool *p, struct err *e)
{
    struct redis_conn *c;

    if (redis_acquire(p, &c, e))
        return -1;
    round_trip_note(ROUND_TRIP_REDIS);
    redisReply *r = redisCommand(c->ctx, "PING");
    int rc = 0;
    if (!r || r->type != REDIS_REPLY_STATUS) {
        rc = err_set(e, ERR_UNAVAILABLE, "redis PING failed");
        redis_conn_failed(p, c);
    }
    if (r)
        freeReplyObject(r);
    redis_release(p, c);
    return rc;
}

bool redis_pool_healthy(struct redis_pool *p)
{
    return atomic_load(&p->failed_at) == 0;
}

redisReply *redis_cmd(struct redis_pool *p, int argc, const char **argv, const size_t *lens,
                      struct err *e)
{
    return redis_cmd_timeout(p, 0, argc, argv, lens, e);
}

redisReply *redis_cmd_timeout(struct redis_pool *p, int timeout_ms, int argc, const char **argv,
                              const size_t *lens, struct err *e)
{
    struct redis_conn *conn = NULL;

    if (redis_acquire(p, &conn, e))
        return NULL;
    redis_conn_set_timeout(conn, timeout_ms);
    round_trip_note(ROUND_TRIP_REDIS);
    redisReply *r = redisCommandArgv(conn->ctx, argc, argv, lens);
    if (!r) {
        err_set(e, ERR_UNAVAILABLE, "redis %s: %s", argv[0], conn->ctx->errstr);
        redis_conn_failed(p, conn);
        redis_release(p, conn);
        return NULL;
    }
    redis_release(p, conn);
    if (r->type == REDIS_REPLY_ERROR) {
        err_set(e, ERR_INTERNAL, "redis %s: %s", argv[0], r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}
