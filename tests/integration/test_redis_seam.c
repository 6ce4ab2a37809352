/*
 * The one seam every Redis command passes (redis_run(), src/redis/redis_run.c) and its fault
 * hook (redis/redis_fault.h), in this process against the real Redis: a fault picks the
 * commands it was told to (by caller, every n-th, up to a limit); a refused command never
 * reaches Redis, while a lost or stalled one runs there and its caller is not told; each
 * outcome is counted once; an outage is logged a line a second, not a line a command; and the
 * callers map outcomes to what they mean (the gate goes on without Redis, a lock whose reply
 * was lost is found to be ours on the next try and is not left behind, a write's cache
 * invalidations go in one round trip and are retried together).
 *
 * Keys live under a per-run prefix (the harness database name and a colon).
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis.h>

#include "core/arena.h"
#include "core/array.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/metrics.h"
#include "domain/coupon.h"
#include "harness.h"
#include "it_main.h"
#include "redis/cache.h"
#include "redis/coupon_gate.h"
#include "redis/dlock.h"
#include "redis/redis_fault.h"
#include "redis/redis_pool.h"
#include "redis_client.h"

#define POOL_TIMEOUT_MS 200
#define COUPON          7001

static struct harness h;
static struct config cfg;
static char prefix[80];
static struct redis_pool *pool;
static struct redis_client raw; /* behind the pool's back, for checks */

static int group_setup(void **state)
{
    struct err e;

    (void)state;
    if (harness_setup(&h) || config_parse_redis_url(&cfg, h.redis_url, &e) ||
        redis_client_init(&raw, h.redis_url))
        return -1;
    snprintf(prefix, sizeof(prefix), "%s:", h.db_name);
    struct redis_options ro = {.host = cfg.redis_host,
                               .port = cfg.redis_port,
                               .db = cfg.redis_db,
                               .size = 4,
                               .timeout_ms = POOL_TIMEOUT_MS};
    pool = redis_pool_new(&ro);
    return 0;
}

static int group_teardown(void **state)
{
    char pattern[128];

    (void)state;
    redis_fault_set(NULL);
    snprintf(pattern, sizeof(pattern), "%s*", prefix);
    redis_client_delete_matching(&raw, pattern);
    redis_client_release(&raw);
    redis_pool_free(pool);
    harness_teardown(&h);
    return 0;
}

/* Each test starts disarmed, with the gate's state for COUPON built afresh (5 left). */
static int test_setup(void **state)
{
    const struct coupon c = {.coupon_id = COUPON,
                             .total_quantity = 5,
                             .starts_us = 0,
                             .ends_us = clock_now_us() + 3600LL * 1000000};

    (void)state;
    redis_fault_set(NULL);
    coupon_gate_forget(pool, prefix, COUPON);
    return coupon_gate_rebuild(pool, prefix, &c, NULL, 0);
}

static const struct redis_fault *fault(enum redis_fault_kind kind, const char *caller, int every,
                                       long limit, int stall_ms)
{
    static struct redis_fault f;

    f = (struct redis_fault){.kind = kind, .every = every, .limit = limit, .stall_ms = stall_ms};
    snprintf(f.caller, sizeof(f.caller), "%s", caller);
    return &f;
}

static int64_t holders_of_coupon(void)
{
    return redis_client_integer(&raw, -1, "SCARD %scoupon:%d:holders", prefix, COUPON);
}

static enum gate_result admit(int64_t user)
{
    return coupon_gate_admit(pool, prefix, COUPON, user, clock_now_us());
}

/* ---- the hook picks what it was told to ---- */

static void faults_follow_caller_every_and_limit(void **state)
{
    struct err e;
    /* every third of the pings, twice: the 1st and the 4th, then none */
    static const bool fails[] = {true, false, false, true, false, false, false, false, false};
    uint64_t injected = metrics_get(METRIC_REDIS_FAULTS_INJECTED);

    (void)state;
    redis_fault_set(fault(REDIS_FAULT_DOWN, "ping", 3, 2, 0));
    for (size_t i = 0; i < ARRAY_SIZE(fails); i++) {
        /* another caller's commands in between are not counted towards "every" */
        assert_int_equal(admit(100 + (int64_t)i), i < 5 ? GATE_ADMITTED : GATE_SOLD_OUT);
        assert_int_equal(redis_ping(pool, &e) < 0, fails[i]);
    }
    assert_int_equal(metrics_get(METRIC_REDIS_FAULTS_INJECTED) - injected, 2);
}

static void a_refused_command_never_reaches_redis(void **state)
{
    uint64_t down = metrics_get(METRIC_REDIS_COMMANDS_DOWN);

    (void)state;
    redis_fault_set(fault(REDIS_FAULT_DOWN, "gate", 1, 0, 0));
    for (int64_t user = 1; user <= 3; user++)
        assert_int_equal(admit(user), GATE_ERROR);
    assert_int_equal(metrics_get(METRIC_REDIS_COMMANDS_DOWN) - down, 3);
    assert_int_equal(holders_of_coupon(), 0);
    redis_fault_set(NULL);
    assert_int_equal(admit(1), GATE_ADMITTED);
    assert_int_equal(holders_of_coupon(), 1);
}

static void a_lost_reply_ran_in_redis_but_was_not_told(void **state)
{
    uint64_t broken = metrics_get(METRIC_REDIS_COMMANDS_BROKEN);

    (void)state;
    redis_fault_set(fault(REDIS_FAULT_LOST, "gate", 1, 1, 0));
    assert_int_equal(admit(42), GATE_ERROR);
    assert_int_equal(metrics_get(METRIC_REDIS_COMMANDS_BROKEN) - broken, 1);
    /* It ran: the user is a holder, so asking again (on a fresh connection) says so. */
    assert_int_equal(holders_of_coupon(), 1);
    assert_int_equal(admit(42), GATE_ALREADY_ISSUED);
}

static void a_stall_past_the_time_out_is_slow_and_ran(void **state)
{
    uint64_t slow = metrics_get(METRIC_REDIS_COMMANDS_SLOW);
    uint64_t reply = metrics_get(METRIC_REDIS_COMMANDS_REPLY);

    (void)state;
    redis_fault_set(fault(REDIS_FAULT_STALL, "gate", 1, 1, POOL_TIMEOUT_MS + 50));
    int64_t t0 = clock_monotonic_us();
    assert_int_equal(admit(7), GATE_ERROR);
    assert_true(clock_monotonic_us() - t0 >= (POOL_TIMEOUT_MS + 50) * 1000LL);
    assert_int_equal(metrics_get(METRIC_REDIS_COMMANDS_SLOW) - slow, 1);
    assert_int_equal(holders_of_coupon(), 1);
    /* A stall within the time-out is only slow: the answer arrives. */
    redis_fault_set(fault(REDIS_FAULT_STALL, "gate", 1, 1, 20));
    assert_int_equal(admit(8), GATE_ADMITTED);
    assert_int_equal(metrics_get(METRIC_REDIS_COMMANDS_REPLY) - reply, 1);
}

/* ---- an outage is logged a line a second, with how many it left out ---- */

struct log_capture {
    int saved_fd;
    char path[256];
};

static void capture_stderr(struct log_capture *c)
{
    const char *dir = getenv("SHOPD_TEST_LOG_DIR");

    snprintf(c->path, sizeof(c->path), "%s/test_redis_seam-%d.stderr", dir ? dir : "/tmp",
             (int)getpid());
    int fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    c->saved_fd = dup(2);
    dup2(fd, 2);
    close(fd);
}

static char *restore_stderr(struct log_capture *c)
{
    dup2(c->saved_fd, 2);
    close(c->saved_fd);
    FILE *f = fopen(c->path, "r");
    char *text = calloc(1, 1 << 16);
    if (f) {
        size_t n = fread(text, 1, (1 << 16) - 1, f);
        text[n] = '\0';
        (void)fclose(f);
    }
    unlink(c->path);
    return text;
}

static int count_lines(const char *text, const char *with)
{
    int n = 0;

    for (const char *p = text; (p = strstr(p, with)); p += strlen(with))
        n++;
    return n;
}

struct pinging {
    struct log_capture *log;
    long sent;
};

/* Ten more refused pings; true once two lines about them were logged. */
static bool two_lines_logged(void *arg)
{
    struct pinging *p = arg;
    struct err e;

    for (int i = 0; i < 10; i++, p->sent++)
        redis_ping(pool, &e);
    FILE *f = fopen(p->log->path, "r");
    char line[512];
    int n = 0;
    while (f && fgets(line, sizeof(line), f))
        n += strstr(line, "redis ping PING") != NULL;
    if (f)
        (void)fclose(f);
    return n >= 2;
}

static void an_outage_is_logged_a_line_a_second(void **state)
{
    struct log_capture log;
    struct pinging p = {.log = &log};
    uint64_t down = metrics_get(METRIC_REDIS_COMMANDS_DOWN);

    (void)state;
    redis_fault_set(fault(REDIS_FAULT_DOWN, "ping", 1, 0, 0));
    capture_stderr(&log);
    bool logged = harness_wait_for(two_lines_logged, &p, 10000);
    char *text = restore_stderr(&log);
    redis_fault_set(NULL);
    int lines = count_lines(text, "redis ping PING");
    int summed = count_lines(text, "more such since the last line");
    free(text);
    assert_true(logged);
    assert_int_equal(metrics_get(METRIC_REDIS_COMMANDS_DOWN) - down, (uint64_t)p.sent);
    /* Many failures in the second between the lines, each counted, two lines logged; the
     * second says how many it stands for (the first may too, for an earlier test's). */
    assert_true(p.sent > 20);
    assert_int_equal(lines, 2);
    assert_true(summed >= 1);
}

/* ---- the locks: a lost reply is the "unknown" case, which the next try resolves ---- */

static void a_lock_whose_reply_was_lost_is_ours_and_not_left_behind(void **state)
{
    struct dlock_options lo = {.prefix = prefix};
    struct dlock_manager *m = dlock_manager_new(pool, &lo);
    struct dlock held;
    struct dlock next;
    struct err e;

    (void)state;
    /* The first try's SET NX runs in Redis; its reply never comes back. */
    redis_fault_set(fault(REDIS_FAULT_LOST, "dlock", 1, 1, 0));
    assert_int_equal(dlock_acquire(m, "seam", 2000, 10000, &held, &e), 0);
    assert_true(dlock_held(&held));
    assert_true(dlock_fenced(&held)); /* found to be ours, not granted unguarded */
    assert_int_equal(metrics_get(METRIC_REDIS_FAULTS_INJECTED) > 0, 1);
    dlock_release(m, &held);
    /* Released for real: the next taker does not wait out the 10 s lease. */
    int64_t t0 = clock_monotonic_us();
    assert_int_equal(dlock_acquire(m, "seam", 1000, 10000, &next, &e), 0);
    assert_true(clock_monotonic_us() - t0 < 1000000);
    assert_true(next.fence > held.fence);
    dlock_release(m, &next);
    dlock_manager_free(m);
}

/* ---- a write's invalidations go together ---- */

#define INVALIDATED 3

static const char *const invalidated[INVALIDATED] = {"product:1", "product:2", "product:3"};

static int64_t exists(const char *cache_prefix, const char *key)
{
    return redis_client_integer(&raw, -1, "EXISTS %s%s", cache_prefix, key);
}

/* The generation of a cached key: each invalidation moves it on by one. */
static int64_t generation(const char *cache_prefix, const char *key)
{
    redisReply *r = redis_client_cmd(&raw, "GET %s%s:gen", cache_prefix, key);
    int64_t g = r && r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;

    if (r)
        freeReplyObject(r);
    return g;
}

static void cache_values_set(const char *cache_prefix)
{
    for (size_t i = 0; i < INVALIDATED; i++) {
        redisReply *r = redis_client_cmd(&raw, "SET %s%s {}", cache_prefix, invalidated[i]);
        assert_non_null(r);
        freeReplyObject(r);
        assert_int_equal(exists(cache_prefix, invalidated[i]), 1);
    }
}

static int load_nothing(void *ctx, struct arena *a, const char **value, struct err *e)
{
    (void)ctx, (void)a, (void)e;
    *value = NULL;
    return 0;
}

struct flushed {
    struct cache *cache;
    const char *prefix;
};

/* A read retries the deferred invalidations first (once Redis answers again). */
static bool deferred_flushed(void *arg)
{
    const struct flushed *f = arg;
    struct arena a = ARENA_INIT;
    const char *value;
    struct err e;

    cache_get(f->cache, "product:other", load_nothing, NULL, &a, &value, &e);
    arena_release(&a);
    for (size_t i = 0; i < INVALIDATED; i++)
        if (exists(f->prefix, invalidated[i]) != 0)
            return false;
    return true;
}

/* An order's products are invalidated in one round trip, not one each; a batch whose round
 * trip failed is deferred whole and retried by the next read. */
static void a_writes_invalidations_take_one_round_trip(void **state)
{
    char cache_prefix[128];

    (void)state;
    snprintf(cache_prefix, sizeof(cache_prefix), "%sinvalidate:", prefix);
    const struct cache_options co = {
        .name = "product",
        .prefix = cache_prefix,
        .ttl_ms = 60000,
        .metrics = {METRIC_CACHE_PRODUCT_HITS, METRIC_CACHE_PRODUCT_MISSES,
                    METRIC_CACHE_PRODUCT_LOADS, METRIC_CACHE_PRODUCT_ERRORS}};
    struct cache *c = cache_new(pool, &co);

    cache_values_set(cache_prefix);
    uint64_t trips = metrics_get(METRIC_CACHE_REDIS_ROUND_TRIPS);
    cache_invalidate_many(c, INVALIDATED, invalidated);
    assert_int_equal(metrics_get(METRIC_CACHE_REDIS_ROUND_TRIPS) - trips, 1);
    for (size_t i = 0; i < INVALIDATED; i++) {
        assert_int_equal(exists(cache_prefix, invalidated[i]), 0);
        /* and no load begun before it may store its value now */
        assert_int_equal(generation(cache_prefix, invalidated[i]), 1);
    }

    cache_values_set(cache_prefix);
    uint64_t deferred = metrics_get(METRIC_CACHE_INVALIDATIONS_DEFERRED);
    redis_fault_set(fault(REDIS_FAULT_DOWN, "cache", 1, 1, 0));
    cache_invalidate_many(c, INVALIDATED, invalidated);
    redis_fault_set(NULL);
    assert_int_equal(metrics_get(METRIC_CACHE_INVALIDATIONS_DEFERRED) - deferred, INVALIDATED);
    assert_int_equal(exists(cache_prefix, invalidated[0]), 1);
    struct flushed f = {c, cache_prefix};
    assert_true(harness_wait_for(deferred_flushed, &f, 5000));
    for (size_t i = 0; i < INVALIDATED; i++)
        assert_int_equal(generation(cache_prefix, invalidated[i]), 2);
    cache_free(c);
}

/* ---- SHOPD_REDIS_FAULT's spelling ---- */

static void fault_specs_parse_or_are_refused(void **state)
{
    static const char *const bad[] = {
        "",
        "gate",
        ":lost",
        "gate:",
        "gate:late",
        "gate:lost:every=0",
        "gate:lost:every=x",
        "gate:stall",
        "gate:lost:often=2",
        "a-caller-name-too-long:lost",
    };
    struct redis_fault f;
    struct err e;

    (void)state;
    assert_int_equal(redis_fault_parse("gate:lost:every=3:limit=10", &f, &e), 0);
    assert_int_equal(f.kind, REDIS_FAULT_LOST);
    assert_string_equal(f.caller, "gate");
    assert_int_equal(f.every, 3);
    assert_int_equal(f.limit, 10);
    assert_int_equal(redis_fault_parse("*:stall:ms=250", &f, &e), 0);
    assert_int_equal(f.kind, REDIS_FAULT_STALL);
    assert_string_equal(f.caller, "");
    assert_int_equal(f.stall_ms, 250);
    assert_int_equal(redis_fault_parse("dlock:down", &f, &e), 0);
    assert_int_equal(f.kind, REDIS_FAULT_DOWN);
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        if (!redis_fault_parse(bad[i], &f, &e))
            fail_msg("'%s' parsed", bad[i]);
        assert_int_equal(e.code, ERR_INVALID_INPUT);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(faults_follow_caller_every_and_limit, test_setup),
        cmocka_unit_test_setup(a_refused_command_never_reaches_redis, test_setup),
        cmocka_unit_test_setup(a_lost_reply_ran_in_redis_but_was_not_told, test_setup),
        cmocka_unit_test_setup(a_stall_past_the_time_out_is_slow_and_ran, test_setup),
        cmocka_unit_test_setup(an_outage_is_logged_a_line_a_second, test_setup),
        cmocka_unit_test_setup(a_lock_whose_reply_was_lost_is_ours_and_not_left_behind, test_setup),
        cmocka_unit_test_setup(a_writes_invalidations_take_one_round_trip, test_setup),
        cmocka_unit_test(fault_specs_parse_or_are_refused),
    };
    int failed = 0;

    if (it_main_begin() < 0)
        return 1;
    IT_RUN_GROUP(failed, "redis seam", tests, group_setup, group_teardown);
    return failed ? 1 : 0;
}
