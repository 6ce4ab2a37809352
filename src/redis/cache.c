#include "redis/cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "redis/pipeline.h"
#include "redis/redis_cmd.h"
#include "redis/redis_pool.h"

#include "core/banned.h"

#define LEASE_MS       2000
#define PAUSE_FIRST_US 500
#define PAUSE_MAX_US   16000
#define PENDING_MAX    10000
#define KEY_MAX        256
/*
 * What Redis holds for a key whose loader found nothing: no JSON text starts with a NUL byte.
 * It is kept ABSENT_TTL_MS at most (the cache's TTL if shorter): invalidation removes it like
 * any value, so the short life only bounds the memory a scan of random ids can take and the
 * harm of an invalidation that was lost.
 */
static const char absent_mark[] = "\0absent";
#define ABSENT_MARK_LEN (sizeof(absent_mark) - 1)
#define ABSENT_TTL_MS   10000

/*
 * GET the value, or take the lease to load it: {1, value} a hit, {2, gen} the lease is ours,
 * {3, gen} someone else is loading. KEYS: value, lease, gen. ARGV: token, lease ms.
 */
static const char script_lease[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v then return {1, v} end "
    "local g = redis.call('GET', KEYS[3]) or '0' "
    "if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2, g} end "
    "return {3, g}";

/*
 * Store the loaded value unless the key was invalidated since the load began (its generation
 * moved), then give the lease back if it is still ours. KEYS: value, lease, gen. ARGV: gen seen,
 * value, ttl ms, token, "1" to store.
 */
static const char script_fill[] =
    "local g = redis.call('GET', KEYS[3]) or '0' "
    "local stored = 0 "
    "if ARGV[5] == '1' and g == ARGV[1] then "
    "  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) stored = 1 end "
    "if redis.call('GET', KEYS[2]) == ARGV[4] then redis.call('DEL', KEYS[2]) end "
    "return stored";

/*
 * script_lease for many keys at once: per key, {1, value} a hit, {2, gen} its lease is ours,
 * {3, gen} someone else is loading it, all in one flat array. KEYS: value, lease, gen of each
 * key. ARGV: token, lease ms.
 */
static const char script_lease_many[] =
    "local out = {} "
    "for i = 1, #KEYS, 3 do "
    "  local v = redis.call('GET', KEYS[i]) "
    "  if v then out[#out + 1] = 1 out[#out + 1] = v else "
    "    local g = redis.call('GET', KEYS[i + 2]) or '0' "
    "    if redis.call('SET', KEYS[i + 1], ARGV[1], 'NX', 'PX', ARGV[2]) then "
    "      out[#out + 1] = 2 else out[#out + 1] = 3 end "
    "    out[#out + 1] = g end "
    "end "
    "return out";

/*
 * script_fill for many keys: per key, store its value unless its generation moved since its
 * lease was taken (or its ttl is "0": store nothing), then give its lease back if still ours.
 * KEYS: value, lease, gen of each key. ARGV: token, then gen seen, value, ttl ms of each key.
 */
static const char script_fill_many[] =
    "local stored = 0 "
    "for i = 1, #KEYS, 3 do "
    "  local g = redis.call('GET', KEYS[i + 2]) or '0' "
    "  if ARGV[i + 3] ~= '0' and g == ARGV[i + 1] then "
    "    redis.call('SET', KEYS[i], ARGV[i + 2], 'PX', ARGV[i + 3]) stored = stored + 1 end "
    "  if redis.call('GET', KEYS[i + 1]) == ARGV[1] then redis.call('DEL', KEYS[i + 1]) end "
    "end "
    "return stored";

/* Per key, move the generation on and drop the value. KEYS: value, gen of each key. ARGV:
 * gen ttl ms. */
static const char script_invalidate[] = "for i = 1, #KEYS, 2 do "
                                        "  redis.call('INCR', KEYS[i + 1]) "
                                        "  redis.call('PEXPIRE', KEYS[i + 1], ARGV[1]) "
                                        "  redis.call('DEL', KEYS[i]) "
                                        "end "
                                        "return 1";

struct flight {
    char key[KEY_MAX];
    int waiters;
    bool done;
    pthread_cond_t cond;
    struct flight *next;
};

struct cache {
    struct redis_pool *pool;
    struct cache_options opt;
    char *name, *prefix;
    pthread_mutex_t lock;
    struct flight *flights;
    char **pending;
    size_t npending;
    atomic_bool has_pending;
};

struct keys {
    char value[KEY_MAX], lease[KEY_MAX + 8], gen[KEY_MAX + 8];
};

struct cache *cache_new(struct redis_pool *pool, const struct cache_options *o)
{
    struct cache *c = xcalloc(1, sizeof(*c));

    c->pool = pool;
    c->opt = *o;
    c->name = xstrdup(o->name);
    c->prefix = xstrdup(o->prefix);
    c->opt.name = c->name;
    c->opt.prefix = c->prefix;
    pthread_mutex_init(&c->lock, NULL);
    c->pending = xcalloc(PENDING_MAX, sizeof(*c->pending));
    return c;
}

void cache_free(struct cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->npending; i++)
        free(c->pending[i]);
    free(c->pending);
    pthread_mutex_destroy(&c->lock);
    free(c->name);
    free(c->prefix);
    free(c);
}

static int make_keys(struct cache *c, const char *key, struct keys *k)
{
    int n = snprintf(k->value, sizeof(k->value), "%s%s", c->prefix, key);
    if (n < 0 || (size_t)n >= sizeof(k->value))
        return -1;
    snprintf(k->lease, sizeof(k->lease), "%s:lease", k->value);
    snprintf(k->gen, sizeof(k->gen), "%s:gen", k->value);
    return 0;
}

static int64_t jittered_ttl_ms(int64_t ttl_ms)
{
    static _Thread_local unsigned seed;

    if (!seed)
        seed = (unsigned)(clock_monotonic_us() ^ (uint64_t)pthread_self());
    /* ±10 %: keys filled together should not all expire together. */
    int64_t spread = ttl_ms / 5;
    return ttl_ms - ttl_ms / 10 + (spread ? (int64_t)(rand_r(&seed) % spread) : 0);
}

static void lease_token(char *buf, size_t size)
{
    static atomic_ulong counter;

    snprintf(buf, size, "%d-%lu-%llu", (int)getpid(), atomic_fetch_add(&counter, 1),
             (unsigned long long)clock_monotonic_us());
}

/*
 * Runs one command. Returns the reply (the caller frees it), or NULL when Redis failed
 * (counted as the cache's error; redis_run() logged it).
 */
static redisReply *run_lens(struct cache *c, int argc, const char **argv, const size_t *lens)
{
    const struct redis_call call = {.caller = "cache", .argc = argc, .argv = argv, .lens = lens};
    enum redis_outcome out;
    struct err e;

    redisReply *r = redis_run(c->pool, &call, &out, &e);
    if (redis_outcome_sent(out))
        metrics_inc(METRIC_CACHE_REDIS_ROUND_TRIPS);
    if (!r)
        metrics_inc(c->opt.metrics.errors);
    return r;
}

/* run_lens for arguments that are all text. */
static redisReply *run(struct cache *c, int argc, const char **argv)
{
    return run_lens(c, argc, argv, NULL);
}

/* ---- invalidation ---- */

/* The most keys one invalidation script takes: a write touches 100 products at most, and a
 * backlog of deferred ones goes in slices of this size. */
#define INVALIDATE_MAX 100

/* One round trip: full_keys[0..n) (n <= INVALIDATE_MAX) invalidated; 0, or -1 when Redis
 * failed (then none or some of them were, and all must be tried again). */
static int invalidate_now(struct cache *c, size_t n, const char *const *full_keys)
{
    char gens[INVALIDATE_MAX][KEY_MAX + 8];
    char ttl[32];
    const char *argv[4 + 2 * INVALIDATE_MAX];
    int argc = 0;

    argv[argc++] = "EVAL";
    argv[argc++] = script_invalidate;
    char nkeys[24];
    snprintf(nkeys, sizeof(nkeys), "%zu", 2 * n);
    argv[argc++] = nkeys;
    for (size_t i = 0; i < n; i++) {
        snprintf(gens[i], sizeof(gens[i]), "%s:gen", full_keys[i]);
        argv[argc++] = full_keys[i];
        argv[argc++] = gens[i];
    }
    /* The generation outlives any value that could have been loaded before it moved. */
    snprintf(ttl, sizeof(ttl), "%lld", (long long)c->opt.ttl_ms * 2 + 60000);
    argv[argc++] = ttl;
    redisReply *r = run(c, argc, argv);
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}

static void defer(struct cache *c, const char *full_key)
{
    pthread_mutex_lock(&c->lock);
    if (c->npending < PENDING_MAX)
        c->pending[c->npending++] = xstrdup(full_key);
    else
        log_error("cache %s: more than %d invalidations pending; '%s' may be stale until its "
                  "TTL",
                  c->name, PENDING_MAX, full_key);
    atomic_store(&c->has_pending, true);
    pthread_mutex_unlock(&c->lock);
    metrics_inc(METRIC_CACHE_INVALIDATIONS_DEFERRED);
}

/* invalidate_now over any number of keys, INVALIDATE_MAX at a time; the keys of a slice that
 * failed are deferred. */
static void invalidate_or_defer(struct cache *c, size_t n, const char *const *full_keys)
{
    for (size_t done = 0; done < n; done += INVALIDATE_MAX) {
        size_t m = n - done < INVALIDATE_MAX ? n - done : INVALIDATE_MAX;
        if (!invalidate_now(c, m, full_keys + done))
            continue;
        for (size_t i = 0; i < m; i++)
            defer(c, full_keys[done + i]);
    }
}

/* Retries the invalidations that failed while Redis was away. */
static void flush_pending(struct cache *c)
{
    char **keys;
    size_t n;

    if (!atomic_load(&c->has_pending) || !redis_pool_healthy(c->pool))
        return;
    pthread_mutex_lock(&c->lock);
    n = c->npending;
    keys = xmalloc((n ? n : 1) * sizeof(*keys));
    memcpy(keys, c->pending, n * sizeof(*keys));
    c->npending = 0;
    atomic_store(&c->has_pending, false);
    pthread_mutex_unlock(&c->lock);
    invalidate_or_defer(c, n, (const char *const *)keys);
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
}

void cache_invalidate_many(struct cache *c, size_t n, const char *const *keys)
{
    struct keys *k = xmalloc((n ? n : 1) * sizeof(*k));
    const char **full = xmalloc((n ? n : 1) * sizeof(*full));

    for (size_t i = 0; i < n; i++) {
        if (make_keys(c, keys[i], &k[i]))
            BUG("cache key too long");
        full[i] = k[i].value;
    }
    metrics_add(METRIC_CACHE_INVALIDATIONS, n);
    invalidate_or_defer(c, n, full);
    free(full);
    free(k);
}

void cache_invalidate(struct cache *c, const char *key)
{
    cache_invalidate_many(c, 1, &key);
}

/* ---- reads ---- */

/* A value read from Redis, in the arena; NULL for the absent mark. */
static const char *stored_value(const char *data, size_t len, struct arena *a)
{
    if (len == ABSENT_MARK_LEN && !memcmp(data, absent_mark, len))
        return NULL;
    return arena_memdup(a, data, len);
}

enum lease_result { LEASE_HIT, LEASE_OURS, LEASE_TAKEN, LEASE_ERROR };

static enum lease_result take_lease(struct cache *c, const struct keys *k, const char *token,
                                    struct arena *a, const char **value, char *gen, size_t gen_size)
{
    char lease_ms[16];
    const char *argv[] = {"EVAL", script_lease, "3", k->value, k->lease, k->gen, token, lease_ms};

    snprintf(lease_ms, sizeof(lease_ms), "%d", LEASE_MS);
    redisReply *r = run(c, 8, argv);
    if (!r)
        return LEASE_ERROR;
    enum lease_result res = LEASE_ERROR;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_INTEGER && r->element[1]->type == REDIS_REPLY_STRING) {
        long long kind = r->element[0]->integer;
        if (kind == 1) {
            *value = stored_value(r->element[1]->str, r->element[1]->len, a);
            res = LEASE_HIT;
        } else {
            snprintf(gen, gen_size, "%s", r->element[1]->str);
            res = kind == 2 ? LEASE_OURS : LEASE_TAKEN;
        }
    }
    freeReplyObject(r);
    return res;
}

/* Stores value (NULL: the absent mark) unless store is false; gives the lease back. */
static void fill(struct cache *c, const struct keys *k, const char *gen, bool store,
                 const char *value, const char *token)
{
    char ttl[24];
    int64_t ttl_ms = c->opt.ttl_ms;
    const char *argv[] = {"EVAL", script_fill, "3", k->value, k->lease,         k->gen,
                          gen,    "",          ttl, token,    store ? "1" : "0"};
    size_t lens[11];

    if (store && !value) {
        argv[7] = absent_mark;
        ttl_ms = ttl_ms < ABSENT_TTL_MS ? ttl_ms : ABSENT_TTL_MS;
    } else if (value) {
        argv[7] = value;
    }
    snprintf(ttl, sizeof(ttl), "%lld", (long long)jittered_ttl_ms(ttl_ms));
    for (int i = 0; i < 11; i++)
        lens[i] = strlen(argv[i]);
    if (argv[7] == absent_mark)
        lens[7] = ABSENT_MARK_LEN; /* binary: starts with a NUL */
    redisReply *r = run_lens(c, 11, argv, lens);
    if (r)
        freeReplyObject(r);
}

static int load(struct cache *c, cache_load_fn *loader, void *ctx, struct arena *a,
                const char **value, struct err *e)
{
    metrics_inc(c->opt.metrics.loads);
    return loader(ctx, a, value, e);
}

/*
 * The leader of this process's flight: agree with the other processes on one loader through
 * the lease, and wait for its value; without Redis, load straight from MariaDB.
 */
static int lead(struct cache *c, const struct keys *k, cache_load_fn *loader, void *ctx,
                struct arena *a, const char **value, struct err *e)
{
    char token[64];
    char gen[32];
    int64_t deadline = clock_monotonic_us() + LEASE_MS * 1000LL;
    long pause_us = PAUSE_FIRST_US;

    lease_token(token, sizeof(token));
    for (;;) {
        switch (take_lease(c, k, token, a, value, gen, sizeof(gen))) {
        case LEASE_HIT:
            return 0;
        case LEASE_OURS: {
            int rc = load(c, loader, ctx, a, value, e);
            fill(c, k, gen, rc == 0, rc ? NULL : *value, token);
            return rc;
        }
        case LEASE_ERROR:
            return load(c, loader, ctx, a, value, e);
        case LEASE_TAKEN:
            break;
        }
        if (clock_monotonic_us() > deadline) /* the loader is stuck or gone: do not wait on */
            return load(c, loader, ctx, a, value, e);
        struct timespec ts = {0, pause_us * 1000};
        nanosleep(&ts, NULL);
        pause_us = pause_us * 2 > PAUSE_MAX_US ? PAUSE_MAX_US : pause_us * 2;
    }
}

/* Joins the flight for key, or starts it (then *leader). Called with c->lock held. */
static struct flight *join(struct cache *c, const char *key, bool *leader)
{
    for (struct flight *f = c->flights; f; f = f->next)
        if (!strcmp(f->key, key)) {
            f->waiters++;
            *leader = false;
            return f;
        }
    struct flight *f = xcalloc(1, sizeof(*f));
    snprintf(f->key, sizeof(f->key), "%s", key);
    pthread_cond_init(&f->cond, NULL);
    f->next = c->flights;
    c->flights = f;
    *leader = true;
    return f;
}

static void unlink_flight(struct cache *c, struct flight *f)
{
    for (struct flight **p = &c->flights; *p; p = &(*p)->next)
        if (*p == f) {
            *p = f->next;
            return;
        }
}

static void flight_free(struct flight *f)
{
    pthread_cond_destroy(&f->cond);
    free(f);
}

/*
 * Waits until this process's leader for the key is done. The waiter does not take the
 * leader's value: that load may have begun before a write whose response came before this
 * request did. It reads Redis again instead, where a load is stored only if no invalidation
 * overtook it. Returns with c->lock released.
 */
static void wait_for_leader(struct cache *c, struct flight *f)
{
    while (!f->done)
        pthread_cond_wait(&f->cond, &c->lock);
    if (--f->waiters == 0)
        flight_free(f);
    pthread_mutex_unlock(&c->lock);
}

#define FLIGHT_ENDED 1

/* Leads the key's flight in this process (0 or -1, as load), or waits for its leader
 * (FLIGHT_ENDED: read again). */
static int single_flight(struct cache *c, const struct keys *k, cache_load_fn *loader, void *ctx,
                         struct arena *a, const char **value, struct err *e)
{
    bool leader;

    pthread_mutex_lock(&c->lock);
    struct flight *f = join(c, k->value, &leader);
    if (!leader) {
        wait_for_leader(c, f);
        return FLIGHT_ENDED;
    }
    f->waiters = 1;
    pthread_mutex_unlock(&c->lock);

    int rc = lead(c, k, loader, ctx, a, value, e);

    pthread_mutex_lock(&c->lock);
    unlink_flight(c, f);
    f->done = true;
    pthread_cond_broadcast(&f->cond);
    if (--f->waiters == 0)
        flight_free(f);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

enum read_result { READ_HIT, READ_MISS, READ_ERROR };

static enum read_result read_value(struct cache *c, const struct keys *k, struct arena *a,
                                   const char **value)
{
    const char *argv[] = {"GET", k->value};
    redisReply *r = run(c, 2, argv);
    enum read_result res = r ? READ_MISS : READ_ERROR;

    if (r && r->type == REDIS_REPLY_STRING) {
        *value = stored_value(r->str, r->len, a);
        res = READ_HIT;
    }
    if (r)
        freeReplyObject(r);
    return res;
}

#define READ_ROUNDS 4

int cache_get(struct cache *c, const char *key, cache_load_fn *loader, void *ctx, struct arena *a,
              const char **value, struct err *e)
{
    struct keys k;

    if (make_keys(c, key, &k))
        BUG("cache key too long");
    flush_pending(c);
    for (int round = 0; round < READ_ROUNDS; round++) {
        switch (read_value(c, &k, a, value)) {
        case READ_HIT:
            metrics_inc(c->opt.metrics.hits);
            return 0;
        case READ_ERROR:
            /* Without Redis nothing is shared, not even in this process: a shared load might
             * predate a write that this request must see. MariaDB answers each read. */
            return load(c, loader, ctx, a, value, e);
        case READ_MISS:
            break;
        }
        if (round == 0)
            metrics_inc(c->opt.metrics.misses);
        int rc = single_flight(c, &k, loader, ctx, a, value, e);
        if (rc != FLIGHT_ENDED)
            return rc;
    }
    /* The value keeps being invalidated under us: read MariaDB directly. */
    return load(c, loader, ctx, a, value, e);
}

/* ---- batch reads ---- */

enum slot_state { SLOT_WANTED, SLOT_OURS, SLOT_TAKEN, SLOT_DONE };

/* One key of a batch: its three Redis keys, and where it stands. */
struct slot {
    const char *value, *lease, *gen;
    enum slot_state state;
    const char *gen_seen; /* the generation its lease script saw (SLOT_OURS, SLOT_TAKEN) */
};

struct batch {
    struct cache *c;
    size_t n;
    struct slot *slots;
    const char **values; /* the caller's, values[i] for slots[i] */
    struct arena *a;
    char token[64];
};

static void batch_init(struct batch *b, struct cache *c, size_t n, const char *const *keys,
                       struct arena *a, const char **values)
{
    b->c = c;
    b->n = n;
    b->a = a;
    b->values = values;
    b->slots = arena_calloc(a, n ? n : 1, sizeof(*b->slots));
    for (size_t i = 0; i < n; i++) {
        struct slot *s = &b->slots[i];
        if (strlen(c->prefix) + strlen(keys[i]) >= KEY_MAX)
            BUG("cache key too long");
        s->value = arena_printf(a, "%s%s", c->prefix, keys[i]);
        s->lease = arena_printf(a, "%s:lease", s->value);
        s->gen = arena_printf(a, "%s:gen", s->value);
        values[i] = NULL;
    }
    lease_token(b->token, sizeof(b->token));
}

/* How many slots are in state (any state but SLOT_DONE when not_done). */
static size_t count_slots(const struct batch *b, enum slot_state state, bool not_done)
{
    size_t n = 0;

    for (size_t i = 0; i < b->n; i++)
        if (not_done ? b->slots[i].state != SLOT_DONE : b->slots[i].state == state)
            n++;
    return n;
}

/* Applies one key's {kind, payload} pair of script_lease_many's reply; -1 if malformed. */
static int apply_lease_reply(struct batch *b, struct slot *s, size_t i, const redisReply *kind,
                             const redisReply *payload)
{
    if (kind->type != REDIS_REPLY_INTEGER || payload->type != REDIS_REPLY_STRING)
        return -1;
    if (kind->integer == 1) {
        b->values[i] = stored_value(payload->str, payload->len, b->a);
        s->state = SLOT_DONE;
        metrics_inc(b->c->opt.metrics.hits);
        return 0;
    }
    s->gen_seen = arena_memdup(b->a, payload->str, payload->len);
    s->state = kind->integer == 2 ? SLOT_OURS : SLOT_TAKEN;
    return 0;
}

/* The arguments of one EVAL, in the arena: "EVAL", the script, the number of keys, then... */
struct args {
    const char **argv;
    size_t *lens;
    size_t argc;
};

static void args_push(struct args *g, const char *s, size_t len)
{
    g->argv[g->argc] = s;
    g->lens[g->argc] = len;
    g->argc++;
}

static void args_push_str(struct args *g, const char *s)
{
    args_push(g, s, strlen(s));
}

/* An EVAL of script over the three keys of each slot that ours_only (SLOT_OURS) or else
 * not done selects, with room for extra arguments per slot and 2 more. */
static void args_eval(struct args *g, const struct batch *b, const char *script, bool ours_only,
                      size_t extra_per_slot)
{
    size_t m = ours_only ? count_slots(b, SLOT_OURS, false) : count_slots(b, SLOT_DONE, true);
    size_t cap = 5 + (3 + extra_per_slot) * m;

    g->argv = arena_alloc(b->a, cap * sizeof(*g->argv));
    g->lens = arena_alloc(b->a, cap * sizeof(*g->lens));
    g->argc = 0;
    args_push_str(g, "EVAL");
    args_push_str(g, script);
    args_push_str(g, arena_printf(b->a, "%zu", 3 * m));
    for (size_t i = 0; i < b->n; i++) {
        const struct slot *s = &b->slots[i];
        if (ours_only ? s->state != SLOT_OURS : s->state == SLOT_DONE)
            continue;
        args_push_str(g, s->value);
        args_push_str(g, s->lease);
        args_push_str(g, s->gen);
    }
}

/*
 * One round trip: reads every key not done yet and takes the lease of each one missing.
 * 0, or -1 when Redis failed (the slots keep their state).
 */
static int lease_round(struct batch *b)
{
    size_t m = count_slots(b, SLOT_DONE, true);
    struct args g;

    args_eval(&g, b, script_lease_many, false, 0);
    args_push_str(&g, b->token);
    args_push_str(&g, arena_printf(b->a, "%d", LEASE_MS));
    redisReply *r = run_lens(b->c, (int)g.argc, g.argv, g.lens);
    if (!r)
        return -1;
    int rc = r->type == REDIS_REPLY_ARRAY && r->elements == 2 * m ? 0 : -1;
    for (size_t i = 0, j = 0; !rc && i < b->n; i++) {
        if (b->slots[i].state == SLOT_DONE)
            continue;
        rc = apply_lease_reply(b, &b->slots[i], i, r->element[j], r->element[j + 1]);
        j += 2;
    }
    freeReplyObject(r);
    return rc;
}

/* Calls the loader once for every slot not done; they are all done after it succeeds. */
static int load_rest(struct batch *b, cache_load_many_fn *loader, void *ctx, struct err *e)
{
    size_t *which = arena_alloc(b->a, (b->n ? b->n : 1) * sizeof(*which));
    size_t m = 0;

    for (size_t i = 0; i < b->n; i++)
        if (b->slots[i].state != SLOT_DONE)
            which[m++] = i;
    if (!m)
        return 0;
    metrics_add(b->c->opt.metrics.loads, m);
    if (loader(ctx, m, which, b->a, b->values, e))
        return -1;
    return 0;
}

/* A slot's gen seen, value and ttl for script_fill_many; ttl "0" stores nothing. */
static void push_fill(struct args *g, const struct batch *b, size_t i, bool store)
{
    const char *v = b->values[i];
    int64_t ttl_ms = b->c->opt.ttl_ms;

    args_push_str(g, b->slots[i].gen_seen);
    if (v) {
        args_push_str(g, v);
    } else {
        args_push(g, absent_mark, ABSENT_MARK_LEN); /* binary: starts with a NUL */
        ttl_ms = ttl_ms < ABSENT_TTL_MS ? ttl_ms : ABSENT_TTL_MS;
    }
    args_push_str(g, store ? arena_printf(b->a, "%lld", (long long)jittered_ttl_ms(ttl_ms)) : "0");
}

/*
 * One round trip: stores the loaded value of every slot whose lease is ours (unless store is
 * false) and gives those leases back.
 */
static void fill_ours(struct batch *b, bool store)
{
    struct args g;

    if (!count_slots(b, SLOT_OURS, false))
        return;
    args_eval(&g, b, script_fill_many, true, 3);
    args_push_str(&g, b->token);
    for (size_t i = 0; i < b->n; i++)
        if (b->slots[i].state == SLOT_OURS)
            push_fill(&g, b, i, store);
    redisReply *r = run_lens(b->c, (int)g.argc, g.argv, g.lens);
    if (r)
        freeReplyObject(r);
}

/* Sleeps the pause, and grows it for the next time. */
static void pause_grow(long *pause_us)
{
    struct timespec ts = {0, *pause_us * 1000};

    nanosleep(&ts, NULL);
    *pause_us = *pause_us * 2 > PAUSE_MAX_US ? PAUSE_MAX_US : *pause_us * 2;
}

/*
 * The batch after its first lease round: load what is missing once some lease is ours (and
 * the keys leased by others with it, unstored: the statement runs anyway), or wait for the
 * other loaders while every missing key is theirs, until the lease time has passed.
 */
static int lease_and_load(struct batch *b, cache_load_many_fn *loader, void *ctx, struct err *e)
{
    int64_t deadline = clock_monotonic_us() + LEASE_MS * 1000LL;
    long pause_us = PAUSE_FIRST_US;

    for (;;) {
        if (!count_slots(b, SLOT_DONE, true))
            return 0;
        if (count_slots(b, SLOT_OURS, false)) {
            int rc = load_rest(b, loader, ctx, e);
            fill_ours(b, rc == 0);
            return rc;
        }
        /* Every key missing is being loaded elsewhere: its value is worth waiting for. */
        if (clock_monotonic_us() > deadline)
            return load_rest(b, loader, ctx, e);
        pause_grow(&pause_us);
        if (lease_round(b))
            return load_rest(b, loader, ctx, e);
    }
}

int cache_get_many(struct cache *c, size_t n, const char *const *keys, cache_load_many_fn *loader,
                   void *ctx, struct arena *a, const char **values, struct err *e)
{
    struct batch b;

    batch_init(&b, c, n, keys, a, values);
    if (!n)
        return 0;
    flush_pending(c);
    /* Without Redis, as in cache_get: MariaDB answers, and nothing is shared or stored. */
    if (lease_round(&b))
        return load_rest(&b, loader, ctx, e);
    metrics_add(c->opt.metrics.misses, count_slots(&b, SLOT_DONE, true));
    return lease_and_load(&b, loader, ctx, e);
}

/* ---- reads served from an event loop ---- */

int cache_loop_key(struct cache *c, const char *key, char *buf, size_t size)
{
    if (atomic_load(&c->has_pending))
        return -1;
    int n = snprintf(buf, size, "%s%s", c->prefix, key);
    if (n < 0 || (size_t)n >= size)
        return -1;
    metrics_inc(METRIC_CACHE_REDIS_ROUND_TRIPS); /* the loop sends it */
    return 0;
}

int cache_loop_keys(struct cache *c, size_t n, const char *const *keys, struct arena *a,
                    const char **out)
{
    if (atomic_load(&c->has_pending))
        return -1;
    for (size_t i = 0; i < n; i++)
        out[i] = arena_printf(a, "%s%s", c->prefix, keys[i]);
    metrics_inc(METRIC_CACHE_REDIS_ROUND_TRIPS); /* the loop sends them, in one MGET */
    return 0;
}

const char *cache_loop_value(const struct cache *c, const struct redis_value *reply, size_t *len)
{
    (void)c; /* every cache marks an absent value the same way */
    if (!reply || reply->type != REDIS_VALUE_STRING ||
        (reply->len == ABSENT_MARK_LEN && !memcmp(reply->str, absent_mark, reply->len)))
        return NULL;
    *len = reply->len;
    return reply->str;
}

void cache_loop_hits(struct cache *c, size_t n)
{
    metrics_add(c->opt.metrics.hits, n);
}
