#include "redis/dlock.h"

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/xalloc.h"
#include "redis/redis_pool.h"

#include "core/banned.h"

#define BUCKETS          64
#define FALLBACK_WAIT_MS 50
#define WATCHDOG_TICK_MS 20

/* KEYS: lock, fence, wanted. ARGV: token, lease ms. Returns the new fence, or 0 when taken, in
 * which case "wanted" tells the holder's release that someone waits for a message. */
static const char script_acquire[] =
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then "
    "  local t = redis.call('TIME') "
    "  local now = tonumber(t[1]) * 1000000 + tonumber(t[2]) "
    "  local f = tonumber(redis.call('GET', KEYS[2]) or '0') + 1 "
    "  if f < now then f = now end "
    "  redis.call('SET', KEYS[2], string.format('%d', f), 'PX', 604800000) "
    "  return f "
    "end "
    "redis.call('SET', KEYS[3], '1', 'PX', ARGV[2]) "
    "return 0";

/* KEYS: lock, channel, wanted. ARGV: token. Deletes only our own lock, and tells the waiters
 * if someone failed to take it within a lease: a lock nobody contends publishes nothing, so no
 * instance wakes for its releases. "wanted" is left to expire, not deleted, so that every
 * waiter of a contended lock keeps being told. */
static const char script_release[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                     "  redis.call('DEL', KEYS[1]) "
                                     "  if redis.call('EXISTS', KEYS[3]) == 1 then "
                                     "    redis.call('PUBLISH', KEYS[2], '1') "
                                     "  end "
                                     "  return 1 "
                                     "end "
                                     "return 0";

/* KEYS: lock. ARGV: token, lease ms. Extends only our own lock. */
static const char script_renew[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                   "  return redis.call('PEXPIRE', KEYS[1], ARGV[2]) "
                                   "end "
                                   "return 0";

struct bucket {
    pthread_cond_t cond;
    unsigned long gen;
};

struct dlock_manager {
    struct redis_pool *pool;
    char *host, *prefix;
    int port, db;
    pthread_mutex_t lock; /* buckets, stopping */
    struct bucket buckets[BUCKETS];
    pthread_mutex_t held_lock; /* the held list and its renewals */
    struct dlock *held;
    bool stopping;
    pthread_cond_t stop_cond;
    pthread_t subscriber, watchdog;
    int stop_pipe[2];
};

static unsigned bucket_of(const char *name)
{
    unsigned h = 2166136261u; /* FNV-1a */

    for (; *name; name++)
        h = (h ^ (unsigned char)*name) * 16777619u;
    return h % BUCKETS;
}

static void wake(struct dlock_manager *m, const char *name)
{
    struct bucket *b = &m->buckets[bucket_of(name)];

    pthread_mutex_lock(&m->lock);
    b->gen++;
    /* One waiter per process per release: the rest would only lose the race in Redis. A
     * waiter woken for another name of the bucket retries and sleeps again; the timed
     * fallback bounds what that costs the right one. */
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&m->lock);
}

/* ---- the subscriber thread: turns release messages into wake-ups ---- */

static redisContext *subscribe(struct dlock_manager *m)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout(m->host, m->port, tv);
    char pattern[200];

    if (!c || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    snprintf(pattern, sizeof(pattern), "%slock-released:*", m->prefix);
    redisReply *r = redisCommand(c, "PSUBSCRIBE %s", pattern);
    if (!r) {
        redisFree(c);
        return NULL;
    }
    freeReplyObject(r);
    return c;
}

static void dispatch_message(struct dlock_manager *m, redisReply *r)
{
    size_t plen = strlen(m->prefix) + strlen("lock-released:");

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 ||
        r->element[2]->type != REDIS_REPLY_STRING || r->element[2]->len < plen)
        return;
    wake(m, r->element[2]->str + plen);
}

static bool stopping(struct dlock_manager *m)
{
    pthread_mutex_lock(&m->lock);
    bool s = m->stopping;
    pthread_mutex_unlock(&m->lock);
    return s;
}

/* Waits for data on c or the stop pipe; false when the manager stops or c broke. */
static bool read_messages(struct dlock_manager *m, redisContext *c)
{
    struct pollfd fds[2] = {{c->fd, POLLIN, 0}, {m->stop_pipe[0], POLLIN, 0}};
    void *reply;

    if (poll(fds, 2, 1000) < 0 || (fds[1].revents & POLLIN))
        return false;
    if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR)))
        return true;
    if (redisBufferRead(c) != REDIS_OK)
        return false;
    while (redisGetReplyFromReader(c, &reply) == REDIS_OK && reply) {
        dispatch_message(m, reply);
        freeReplyObject(reply);
    }
    return true;
}

static void *subscriber_main(void *arg)
{
    struct dlock_manager *m = arg;

    while (!stopping(m)) {
        redisContext *c = subscribe(m);
        if (!c) {
            /* Redis is away: the waiters' timed fallback carries on meanwhile. */
            struct pollfd fd = {m->stop_pipe[0], POLLIN, 0};
            poll(&fd, 1, 500);
            continue;
        }
        while (read_messages(m, c))
            ;
        redisFree(c);
    }
    return NULL;
}

/* ---- Redis calls ---- */

/*
 * Runs one command. NULL when Redis failed; *busy (may be NULL) is set instead when Redis is
 * healthy but every pooled connection was in use: that is contention, not an outage, and must
 * not grant an unguarded lock.
 */
static redisReply *run(struct dlock_manager *m, int argc, const char **argv, bool *busy)
{
    struct redis_conn *conn;
    struct err e;

    if (busy)
        *busy = false;
    if (redis_acquire(m->pool, &conn, &e)) {
        if (busy)
            *busy = redis_pool_healthy(m->pool);
        return NULL;
    }
    redisReply *r = redisCommandArgv(redis_conn_context(conn), argc, argv, NULL);
    if (!r)
        redis_conn_failed(m->pool, conn);
    redis_release(m->pool, conn);
    if (r && r->type == REDIS_REPLY_ERROR) {
        log_warn("dlock: redis error: %s", r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

static void key_of(struct dlock_manager *m, const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%slock:%s", m->prefix, name);
}

/* ---- the watchdog thread: renews held leases ---- */

static void renew(struct dlock_manager *m, struct dlock *l, int64_t now)
{
    char key[256], lease[24];
    const char *argv[] = {"EVAL", script_renew, "1", key, l->token, lease};

    key_of(m, l->name, key, sizeof(key));
    snprintf(lease, sizeof(lease), "%lld", (long long)l->lease_ms);
    redisReply *r = run(m, 6, argv, NULL);
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
        atomic_store(&l->expires_us, now + l->lease_ms * 1000);
    } else if (r || now >= atomic_load(&l->expires_us)) {
        /* The token is gone (someone else holds it now), or we cannot tell and time is up. */
        if (!atomic_exchange(&l->lost, true))
            metrics_inc(METRIC_LOCK_LOST);
    }
    if (r)
        freeReplyObject(r);
}

static void *watchdog_main(void *arg)
{
    struct dlock_manager *m = arg;

    pthread_mutex_lock(&m->lock);
    while (!m->stopping) {
        pthread_mutex_unlock(&m->lock);
        int64_t now = clock_monotonic_us();
        /* Renewal runs under held_lock, so a release (which unlinks first, under it too)
         * never races with a renewal of the same lock. */
        pthread_mutex_lock(&m->held_lock);
        for (struct dlock *l = m->held; l; l = l->next)
            if (!atomic_load(&l->lost) &&
                now >= atomic_load(&l->expires_us) - l->lease_ms * 1000 * 2 / 3)
                renew(m, l, now);
        pthread_mutex_unlock(&m->held_lock);
        pthread_mutex_lock(&m->lock);
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += WATCHDOG_TICK_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&m->stop_cond, &m->lock, &until);
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

/* ---- life cycle ---- */

struct dlock_manager *dlock_manager_new(struct redis_pool *pool, const struct dlock_options *o)
{
    struct dlock_manager *m = xcalloc(1, sizeof(*m));

    m->pool = pool;
    m->host = xstrdup(o->host);
    m->prefix = xstrdup(o->prefix);
    m->port = o->port;
    m->db = o->db;
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->held_lock, NULL);
    /* Timed waits run on the monotonic clock: a wall-clock step must not stall renewal. */
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&m->stop_cond, &attr);
    for (int i = 0; i < BUCKETS; i++)
        pthread_cond_init(&m->buckets[i].cond, &attr);
    pthread_condattr_destroy(&attr);
    if (pipe(m->stop_pipe))
        BUG("cannot create the dlock stop pipe");
    if (pthread_create(&m->subscriber, NULL, subscriber_main, m) ||
        pthread_create(&m->watchdog, NULL, watchdog_main, m))
        BUG("cannot start the dlock threads");
    return m;
}

void dlock_manager_free(struct dlock_manager *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->stopping = true;
    pthread_cond_broadcast(&m->stop_cond);
    pthread_mutex_unlock(&m->lock);
    if (write(m->stop_pipe[1], "x", 1) < 0)
        log_warn("dlock: cannot wake the subscriber");
    pthread_join(m->subscriber, NULL);
    pthread_join(m->watchdog, NULL);
    close(m->stop_pipe[0]);
    close(m->stop_pipe[1]);
    for (int i = 0; i < BUCKETS; i++)
        pthread_cond_destroy(&m->buckets[i].cond);
    pthread_cond_destroy(&m->stop_cond);
    pthread_mutex_destroy(&m->lock);
    pthread_mutex_destroy(&m->held_lock);
    free(m->host);
    free(m->prefix);
    free(m);
}

/* ---- acquire and release ---- */

enum attempt { TAKEN_BY_US, TAKEN_BY_OTHER, REDIS_DOWN };

static enum attempt try_take(struct dlock_manager *m, struct dlock *l)
{
    char key[256], fence_key[272], wanted_key[272], lease[24];
    const char *argv[] = {"EVAL", script_acquire, "3", key, fence_key, wanted_key, l->token, lease};
    bool busy;

    key_of(m, l->name, key, sizeof(key));
    snprintf(fence_key, sizeof(fence_key), "%s:fence", key);
    snprintf(wanted_key, sizeof(wanted_key), "%s:wanted", key);
    snprintf(lease, sizeof(lease), "%lld", (long long)l->lease_ms);
    /* Redis starts the lease when it runs the script, which is after we send it: counting from
     * the send time (less a margin for clock drift) never overstates how long we hold it. */
    int64_t sent = clock_monotonic_us();
    redisReply *r = run(m, 8, argv, &busy);
    if (!r)
        return busy ? TAKEN_BY_OTHER : REDIS_DOWN;
    enum attempt res = TAKEN_BY_OTHER;
    if (r->type == REDIS_REPLY_INTEGER && r->integer > 0) {
        l->fence = r->integer;
        atomic_store(&l->expires_us, sent + l->lease_ms * 1000 * 9 / 10);
        res = TAKEN_BY_US;
    }
    freeReplyObject(r);
    return res;
}

static void hold(struct dlock_manager *m, struct dlock *l)
{
    l->held = true;
    pthread_mutex_lock(&m->held_lock);
    l->next = m->held;
    m->held = l;
    pthread_mutex_unlock(&m->held_lock);
}

static void new_token(char *buf, size_t size)
{
    static atomic_ulong counter;
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(buf, size, "%d-%lx-%lx-%lu", (int)getpid(), (unsigned long)ts.tv_sec,
             (unsigned long)ts.tv_nsec, atomic_fetch_add(&counter, 1));
}

/* Sleeps until the lock may have been released, or the fallback tick, or the deadline. */
static void wait_for_release(struct dlock_manager *m, const char *name, unsigned long seen,
                             int64_t deadline)
{
    struct bucket *b = &m->buckets[bucket_of(name)];
    int64_t now = clock_monotonic_us();
    int64_t wait_us =
        deadline - now < FALLBACK_WAIT_MS * 1000 ? deadline - now : FALLBACK_WAIT_MS * 1000;
    struct timespec until;

    if (wait_us <= 0)
        return;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += wait_us / 1000000;
    until.tv_nsec += (wait_us % 1000000) * 1000;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&m->lock);
    while (b->gen == seen && !m->stopping)
        if (pthread_cond_timedwait(&b->cond, &m->lock, &until))
            break;
    pthread_mutex_unlock(&m->lock);
}

static unsigned long bucket_gen(struct dlock_manager *m, const char *name)
{
    pthread_mutex_lock(&m->lock);
    unsigned long g = m->buckets[bucket_of(name)].gen;
    pthread_mutex_unlock(&m->lock);
    return g;
}

int dlock_acquire(struct dlock_manager *m, const char *name, int64_t wait_ms, int64_t lease_ms,
                  struct dlock *out, struct err *e)
{
    int64_t start = clock_monotonic_us();
    int64_t deadline = start + wait_ms * 1000;
    bool waited = false;

    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "%s", name);
    new_token(out->token, sizeof(out->token));
    out->lease_ms = lease_ms;
    for (;;) {
        /* Read the generation before trying, so a release between the two is not missed. */
        unsigned long seen = bucket_gen(m, name);
        switch (try_take(m, out)) {
        case TAKEN_BY_US:
            metrics_inc(METRIC_LOCK_ACQUIRED);
            if (waited)
                metrics_add(METRIC_LOCK_WAIT_US, (uint64_t)(clock_monotonic_us() - start));
            hold(m, out);
            return 0;
        case REDIS_DOWN:
            metrics_inc(METRIC_LOCK_UNGUARDED);
            out->unguarded = true;
            out->held = true;
            out->fence = 0;
            return 0;
        case TAKEN_BY_OTHER:
            break;
        }
        if (!waited)
            metrics_inc(METRIC_LOCK_WAITS);
        waited = true;
        if (clock_monotonic_us() >= deadline) {
            metrics_inc(METRIC_LOCK_TIMEOUTS);
            return err_set(e, ERR_UNAVAILABLE, "lock '%s' is busy; retry", name);
        }
        wait_for_release(m, name, seen, deadline);
    }
}

bool dlock_held(const struct dlock *l)
{
    if (!l->held || atomic_load(&l->lost))
        return false;
    return l->unguarded || clock_monotonic_us() < atomic_load(&l->expires_us);
}

bool dlock_fenced(const struct dlock *l)
{
    return l->held && !l->unguarded;
}

static void unlink_held(struct dlock_manager *m, struct dlock *l)
{
    pthread_mutex_lock(&m->held_lock);
    for (struct dlock **p = &m->held; *p; p = &(*p)->next)
        if (*p == l) {
            *p = l->next;
            break;
        }
    pthread_mutex_unlock(&m->held_lock);
}

void dlock_forget(struct dlock_manager *m, struct dlock *l)
{
    unlink_held(m, l);
}

void dlock_release(struct dlock_manager *m, struct dlock *l)
{
    char key[256], channel[256], wanted_key[272];
    const char *argv[] = {"EVAL", script_release, "3", key, channel, wanted_key, l->token};

    if (!l->held)
        return;
    l->held = false;
    if (l->unguarded)
        return;
    unlink_held(m, l); /* renewal stops before the lock goes */
    key_of(m, l->name, key, sizeof(key));
    snprintf(channel, sizeof(channel), "%slock-released:%s", m->prefix, l->name);
    snprintf(wanted_key, sizeof(wanted_key), "%s:wanted", key);
    redisReply *r = run(m, 7, argv, NULL);
    if (r)
        freeReplyObject(r);
    /* Waiters of this process need no message to learn of it. */
    wake(m, l->name);
}
