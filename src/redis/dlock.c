#include "redis/dlock.h"

#include <errno.h>
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
#include "redis/redis_cmd.h"
#include "redis/redis_pool.h"

#include "core/banned.h"

#define BUCKETS          64
#define FALLBACK_WAIT_MS 50
#define WATCHDOG_TICK_MS 20
#define TRY_MAX_MS       1000 /* one acquire try waits this long at most for Redis's answer */
#define ORPHANS_MAX      128
#define ORPHAN_RETRY_US  200000LL
#define ORPHAN_SETTLE_US 1000000LL

/* KEYS: lock, fence, wanted. ARGV: token, lease ms. Returns our fence, or 0 when another
 * owner holds the lock, in which case "wanted" tells the holder's release that someone waits
 * for a message. Idempotent for a token: when the lock already holds ours (an earlier attempt
 * whose reply was lost did run), the lease is renewed and the fence that attempt drew, which
 * nobody can have moved since, is returned. So retrying after a lost reply checks the lock
 * and takes it in one step, and never mistakes our own lease for someone else's. */
static const char script_acquire[] =
    "local function draw() "
    "  local t = redis.call('TIME') "
    "  local now = tonumber(t[1]) * 1000000 + tonumber(t[2]) "
    "  local f = tonumber(redis.call('GET', KEYS[2]) or '0') + 1 "
    "  if f < now then f = now end "
    "  redis.call('SET', KEYS[2], string.format('%d', f), 'PX', 604800000) "
    "  return f "
    "end "
    "local v = redis.call('GET', KEYS[1]) "
    "if v == ARGV[1] then "
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2]) "
    "  local f = tonumber(redis.call('GET', KEYS[2]) or '0') "
    "  if f > 0 then return f end "
    "  return draw() "
    "end "
    "if not v then "
    "  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
    "  return draw() "
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

/* A token that may sit in Redis without a holder: an acquire try got no reply, and the lock
 * was then not taken (or was taken and released while the lost try could still run). The
 * watchdog deletes it by token until it is sure no lost try can set it again. */
struct orphan {
    char name[160];
    char token[64];
    int64_t since_us, next_us, replied_us, give_up_us;
};

struct dlock_manager {
    struct redis_pool *pool;
    char *prefix;
    pthread_mutex_t lock; /* buckets, stopping */
    struct bucket buckets[BUCKETS];
    pthread_mutex_t held_lock; /* the held list and its renewals */
    struct dlock *held;
    bool stopping;
    pthread_cond_t stop_cond;
    pthread_t subscriber, watchdog;
    int stop_pipe[2];
    pthread_mutex_t orphan_lock; /* orphans */
    struct orphan orphans[ORPHANS_MAX];
    int norphans;
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

/* A subscription on the master (the one the pool's Sentinels name, if it has them), made
 * under the pool's master generation *generation. */
static redisContext *subscribe(struct dlock_manager *m, unsigned *generation)
{
    redisContext *c = redis_pool_connect_master(m->pool, 1000, generation);
    char pattern[200];

    if (!c)
        return NULL;
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
        unsigned generation;
        redisContext *c = subscribe(m, &generation);
        if (!c) {
            /* Redis is away: the waiters' timed fallback carries on meanwhile. */
            struct pollfd fd = {m->stop_pipe[0], POLLIN, 0};
            poll(&fd, 1, 500);
            continue;
        }
        /* Until the connection breaks, or the pool moved to another master (a failover): a
         * demoted master still relays the new one's messages, but a promoted replica's
         * former master may be gone for good. */
        while (read_messages(m, c) && redis_pool_master_generation(m->pool) == generation)
            ;
        redisFree(c);
    }
    return NULL;
}

/* ---- Redis calls ---- */

/*
 * What a command came to, as the locks see it (redis/redis_cmd.h's outcomes): an error reply
 * is DOWN too, since the command did not run; BUSY is contention, not an outage, and must not
 * grant an unguarded lock.
 */
enum outcome { OUT_REPLY, OUT_DOWN, OUT_BUSY, OUT_SLOW, OUT_BROKEN };

/* Runs one command with a socket time-out of timeout_ms (the pool's when 0). The reply, or
 * NULL with *out saying why. */
static redisReply *run(struct dlock_manager *m, int argc, const char **argv, int timeout_ms,
                       enum outcome *out)
{
    static const enum outcome of[] = {
        [REDIS_OUT_REPLY] = OUT_REPLY, [REDIS_OUT_ERROR] = OUT_DOWN,
        [REDIS_OUT_BUSY] = OUT_BUSY,   [REDIS_OUT_DOWN] = OUT_DOWN,
        [REDIS_OUT_SLOW] = OUT_SLOW,   [REDIS_OUT_BROKEN] = OUT_BROKEN,
    };
    const struct redis_call call = {
        .caller = "dlock", .argc = argc, .argv = argv, .timeout_ms = timeout_ms};
    enum redis_outcome outcome;
    struct err e;

    redisReply *r = redis_run(m->pool, &call, &outcome, &e);
    *out = of[outcome];
    return r;
}

static void key_of(struct dlock_manager *m, const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%slock:%s", m->prefix, name);
}

/* ---- the watchdog thread: renews held leases ---- */

static void renew(struct dlock_manager *m, struct dlock *l, int64_t now)
{
    char key[256];
    char lease[24];
    const char *argv[] = {"EVAL", script_renew, "1", key, l->token, lease};
    enum outcome out;

    key_of(m, l->name, key, sizeof(key));
    snprintf(lease, sizeof(lease), "%lld", (long long)l->lease_ms);
    redisReply *r = run(m, 6, argv, 0, &out);
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

/* Compare-and-delete of token on name's lock, telling waiters if any; what the call came to. */
static enum outcome release_token(struct dlock_manager *m, const char *name, const char *token)
{
    char key[256];
    char channel[256];
    char wanted_key[272];
    const char *argv[] = {"EVAL", script_release, "3", key, channel, wanted_key, token};
    enum outcome out;

    key_of(m, name, key, sizeof(key));
    snprintf(channel, sizeof(channel), "%slock-released:%s", m->prefix, name);
    snprintf(wanted_key, sizeof(wanted_key), "%s:wanted", key);
    redisReply *r = run(m, 7, argv, 0, &out);
    if (r)
        freeReplyObject(r);
    return out;
}

static void orphan_add(struct dlock_manager *m, const struct dlock *l)
{
    int64_t now = clock_monotonic_us();

    pthread_mutex_lock(&m->orphan_lock);
    if (m->norphans == ORPHANS_MAX) {
        pthread_mutex_unlock(&m->orphan_lock);
        log_warn("dlock: too many leases to release; '%s' is left to expire", l->name);
        return;
    }
    struct orphan *o = &m->orphans[m->norphans++];
    snprintf(o->name, sizeof(o->name), "%s", l->name);
    snprintf(o->token, sizeof(o->token), "%s", l->token);
    o->since_us = o->next_us = now;
    o->replied_us = 0;
    /* Past two leases a lost try that still ran would have set a lease of its own by then;
     * waiting longer is not worth a Redis call every ORPHAN_RETRY_MS. */
    o->give_up_us = now + l->lease_ms * 2 * 1000 + ORPHAN_SETTLE_US;
    pthread_mutex_unlock(&m->orphan_lock);
}

/* Index of the orphan with token, or -1; under orphan_lock. */
static int orphan_find(struct dlock_manager *m, const char *token)
{
    for (int i = 0; i < m->norphans; i++)
        if (!strcmp(m->orphans[i].token, token))
            return i;
    return -1;
}

/* Copies the first orphan due at now into o; false when none is. */
static bool next_due(struct dlock_manager *m, int64_t now, struct orphan *o)
{
    bool due = false;

    pthread_mutex_lock(&m->orphan_lock);
    for (int i = 0; i < m->norphans && !due; i++)
        if (m->orphans[i].next_us <= now) {
            *o = m->orphans[i];
            due = true;
        }
    pthread_mutex_unlock(&m->orphan_lock);
    return due;
}

/* Drops o's entry when done, else schedules its next delete. */
static void reschedule(struct dlock_manager *m, const struct orphan *o, bool done, int64_t now)
{
    pthread_mutex_lock(&m->orphan_lock);
    int i = orphan_find(m, o->token);
    if (i >= 0 && done) {
        m->orphans[i] = m->orphans[--m->norphans];
    } else if (i >= 0) {
        m->orphans[i].replied_us = o->replied_us;
        m->orphans[i].next_us = now + ORPHAN_RETRY_US;
    }
    pthread_mutex_unlock(&m->orphan_lock);
}

/*
 * Deletes the due orphans by token. One is done when Redis has answered twice, the second
 * time ORPHAN_SETTLE_US after it was recorded: a lost try sits in the socket buffer of a
 * connection we closed, and a Redis that answers us again has read it by then, so nothing can
 * set the token after our last delete. Stops at the first call without an answer, so that a
 * stalled Redis costs the watchdog (and the renewals behind it) one time-out per tick.
 */
static void sweep_orphans(struct dlock_manager *m)
{
    struct orphan o;

    while (next_due(m, clock_monotonic_us(), &o)) {
        enum outcome out = release_token(m, o.name, o.token);
        int64_t now = clock_monotonic_us();
        bool done = false;
        if (out == OUT_REPLY) {
            done = o.replied_us && now >= o.since_us + ORPHAN_SETTLE_US &&
                   now >= o.replied_us + ORPHAN_RETRY_US;
            if (!o.replied_us)
                o.replied_us = now;
            wake(m, o.name);
        }
        if (!done && now >= o.give_up_us) {
            log_warn("dlock: could not make sure the lease of '%s' is gone; it expires by itself",
                     o.name);
            done = true;
        }
        reschedule(m, &o, done, now);
        if (out != OUT_REPLY)
            return;
    }
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
        sweep_orphans(m);
        pthread_mutex_lock(&m->lock);
        struct timespec until;
        clock_monotonic_deadline((int64_t)WATCHDOG_TICK_MS * 1000, &until);
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
    m->prefix = xstrdup(o->prefix);
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->held_lock, NULL);
    pthread_mutex_init(&m->orphan_lock, NULL);
    /* Timed waits run on the monotonic clock: a wall-clock step must not stall renewal. */
    clock_cond_init(&m->stop_cond);
    for (int i = 0; i < BUCKETS; i++)
        clock_cond_init(&m->buckets[i].cond);
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
    /* One last delete of each token that may still sit in Redis, while Redis answers. */
    for (int i = 0; i < m->norphans; i++)
        if (release_token(m, m->orphans[i].name, m->orphans[i].token) != OUT_REPLY)
            break;
    pthread_mutex_destroy(&m->orphan_lock);
    close(m->stop_pipe[0]);
    close(m->stop_pipe[1]);
    for (int i = 0; i < BUCKETS; i++)
        pthread_cond_destroy(&m->buckets[i].cond);
    pthread_cond_destroy(&m->stop_cond);
    pthread_mutex_destroy(&m->lock);
    pthread_mutex_destroy(&m->held_lock);
    free(m->prefix);
    free(m);
}

/* ---- acquire and release ---- */

/* SLOW and BROKEN: the try got no reply, so it may have set our token (see enum outcome). */
enum attempt { TAKEN_BY_US, TAKEN_BY_OTHER, REDIS_DOWN, STATE_SLOW, STATE_BROKEN };

static enum attempt try_take(struct dlock_manager *m, struct dlock *l, int64_t deadline)
{
    char key[256];
    char fence_key[272];
    char wanted_key[272];
    char lease[24];
    const char *argv[] = {"EVAL", script_acquire, "3", key, fence_key, wanted_key, l->token, lease};
    enum outcome out;

    key_of(m, l->name, key, sizeof(key));
    snprintf(fence_key, sizeof(fence_key), "%s:fence", key);
    snprintf(wanted_key, sizeof(wanted_key), "%s:wanted", key);
    snprintf(lease, sizeof(lease), "%lld", (long long)l->lease_ms);
    /* Wait for Redis's answer within the wait budget rather than the pool's short time-out:
     * a reply that does not come leaves us not knowing whether we hold the lock. One try is
     * capped, so that a connection gone silently dead is replaced by the next. */
    int64_t left_ms = (deadline - clock_monotonic_us()) / 1000;
    int64_t min_ms = redis_pool_timeout_ms(m->pool);
    int timeout_ms = (int)(left_ms < min_ms ? min_ms : left_ms > TRY_MAX_MS ? TRY_MAX_MS : left_ms);
    /* Redis starts the lease when it runs the script, which is after we send it: counting from
     * the send time (less a margin for clock drift) never overstates how long we hold it. */
    int64_t sent = clock_monotonic_us();
    redisReply *r = run(m, 8, argv, timeout_ms, &out);
    switch (out) {
    case OUT_REPLY:
        break;
    case OUT_BUSY:
        return TAKEN_BY_OTHER;
    case OUT_DOWN:
        return REDIS_DOWN;
    case OUT_SLOW:
        return STATE_SLOW;
    case OUT_BROKEN:
        return STATE_BROKEN;
    }
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

/* Sleeps until the lock may have been released, or the fallback tick, or the deadline. */
static void wait_for_release(struct dlock_manager *m, const char *name, unsigned long seen,
                             int64_t deadline)
{
    struct bucket *b = &m->buckets[bucket_of(name)];
    int64_t now = clock_monotonic_us();
    int64_t wait_us =
        deadline - now < FALLBACK_WAIT_MS * 1000LL ? deadline - now : FALLBACK_WAIT_MS * 1000LL;
    struct timespec until;

    if (wait_us <= 0)
        return;
    clock_monotonic_deadline(wait_us, &until);
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

static void grant_unguarded(struct dlock_manager *m, struct dlock *l)
{
    metrics_inc(METRIC_LOCK_UNGUARDED);
    l->unguarded = true;
    l->held = true;
    l->fence = 0;
    /* Redis is down now, but a try that got no reply may have run before it went: if it
     * comes back (with its data) holding our token, the watchdog deletes it. */
    if (l->unanswered)
        orphan_add(m, l);
}

/* Where dlock_acquire's loop goes after a try that did not take the lock. */
enum next_step { STEP_GRANTED, STEP_AGAIN, STEP_WAIT };

/*
 * Judges a try: *slow says the last unanswered try timed out against a Redis that is alive
 * (which may still run it, so "Redis down" must not be taken for "free"); *unknown counts the
 * unanswered tries.
 */
static enum next_step judge(struct dlock_manager *m, struct dlock *l, enum attempt a, bool *slow,
                            int *unknown, int64_t deadline)
{
    switch (a) {
    case STATE_SLOW:
    case STATE_BROKEN:
        /* Unknown: the next try (on a fresh connection, since this one was dropped) finds
         * out, as the script takes a lock that holds our token as ours. Later ones pause
         * first, so that a Redis that drops every connection is not spun on. */
        l->unanswered = true;
        *slow = a == STATE_SLOW;
        return ++*unknown == 1 && clock_monotonic_us() < deadline ? STEP_AGAIN : STEP_WAIT;
    case REDIS_DOWN:
        if (*slow)
            return STEP_WAIT; /* unreachable right after a slow reply: still unknown */
        grant_unguarded(m, l);
        return STEP_GRANTED;
    case TAKEN_BY_OTHER:
        *slow = false; /* Redis answered: our token is not there now */
        return STEP_WAIT;
    case TAKEN_BY_US:
        break;
    }
    BUG("judge() called for a lock that was taken");
}

static int give_up(struct dlock_manager *m, struct dlock *l, bool slow, struct err *e)
{
    metrics_inc(METRIC_LOCK_TIMEOUTS);
    if (l->unanswered)
        orphan_add(m, l); /* never leave a lease of ours behind */
    if (slow)
        return err_set(e, ERR_UNAVAILABLE,
                       "lock '%s': redis did not answer in time, so whether it is held is "
                       "unknown; retry",
                       l->name);
    return err_set(e, ERR_UNAVAILABLE, "lock '%s' is busy; retry", l->name);
}

int dlock_acquire(struct dlock_manager *m, const char *name, int64_t wait_ms, int64_t lease_ms,
                  struct dlock *out, struct err *e)
{
    int64_t start = clock_monotonic_us();
    int64_t deadline = start + wait_ms * 1000;
    bool waited = false;
    bool slow = false;
    int unknown = 0;

    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "%s", name);
    redis_owner_token(out->token, sizeof(out->token));
    out->lease_ms = lease_ms;
    for (;;) {
        /* Read the generation before trying, so a release between the two is not missed. */
        unsigned long seen = bucket_gen(m, name);
        enum attempt a = try_take(m, out, deadline);
        if (a == TAKEN_BY_US) {
            metrics_inc(METRIC_LOCK_ACQUIRED);
            if (waited)
                metrics_add(METRIC_LOCK_WAIT_US, (uint64_t)(clock_monotonic_us() - start));
            hold(m, out);
            return 0;
        }
        enum next_step next = judge(m, out, a, &slow, &unknown, deadline);
        if (next == STEP_GRANTED)
            return 0;
        if (next == STEP_AGAIN)
            continue;
        if (!waited)
            metrics_inc(METRIC_LOCK_WAITS);
        waited = true;
        if (clock_monotonic_us() >= deadline)
            return give_up(m, out, slow, e);
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
    if (!l->held)
        return;
    l->held = false;
    /* An unguarded lock's unanswered tries, if any, went to the watchdog when granted. */
    if (l->unguarded)
        return;
    unlink_held(m, l); /* renewal stops before the lock goes */
    /* A release without an answer, or one that a lost acquire try could still undo, is
     * finished by the watchdog: the lease is never left to block the next requests. */
    if (release_token(m, l->name, l->token) != OUT_REPLY || l->unanswered)
        orphan_add(m, l);
    /* Waiters of this process need no message to learn of it. */
    wake(m, l->name);
}
