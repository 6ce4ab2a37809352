#include "redis/coupon_gate.h"

#include <stdio.h>
#include <stdlib.h>

#include <hiredis.h>

#include "core/arena.h"
#include "core/array.h"
#include "core/err.h"
#include "core/xalloc.h"
#include "domain/coupon.h"
#include "redis/pipeline.h"
#include "redis/redis_cmd.h"
#include "redis/redis_pool.h"

#include "core/banned.h"

#define STATE_TTL_MS (7LL * 24 * 3600 * 1000)

/*
 * KEYS: gate, holders. ARGV: user, now µs. The checks of an admission, in its order: 4 unknown
 * (no state), 3 not active, 2 already issued, 1 sold out; past them the user may be admitted.
 */
#define GATE_CHECKS                                                                                \
    "if redis.call('EXISTS', KEYS[1]) == 0 then return 4 end "                                     \
    "local g = redis.call('HMGET', KEYS[1], 'remaining', 'starts', 'ends') "                       \
    "local now = tonumber(ARGV[2]) "                                                               \
    "if now < tonumber(g[2]) or (tonumber(g[3]) > 0 and now >= tonumber(g[3])) then return 3 end " \
    "if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 2 end "                         \
    "if tonumber(g[1]) <= 0 then return 1 end "

/* The checks, then one taken: 0 admitted. */
static const char script_admit[] = GATE_CHECKS "redis.call('HINCRBY', KEYS[1], 'remaining', -1) "
                                               "redis.call('SADD', KEYS[2], ARGV[1]) "
                                               "return 0";

/* The checks alone, for the loops: 0 says only that an admission would be tried. */
static const char script_check[] = GATE_CHECKS "return 0";

/* KEYS: gate, holders. ARGV: user. */
static const char script_undo[] =
    "if redis.call('SREM', KEYS[2], ARGV[1]) == 1 and redis.call('EXISTS', KEYS[1]) == 1 then "
    "  redis.call('HINCRBY', KEYS[1], 'remaining', 1) end return 1";

/* KEYS: gate, holders. ARGV: remaining, starts, ends, ttl ms, user ids... Only if absent. */
static const char script_rebuild[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end "
    "redis.call('DEL', KEYS[2]) "
    "for i = 5, #ARGV, 1000 do "
    "  redis.call('SADD', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV))) end "
    "redis.call('HSET', KEYS[1], 'remaining', ARGV[1], 'starts', ARGV[2], 'ends', ARGV[3]) "
    "redis.call('PEXPIRE', KEYS[1], ARGV[4]) "
    "if #ARGV >= 5 then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end "
    "return 1";

struct gate_keys {
    char gate[200], holders[200];
};

static void keys_of(const char *prefix, int64_t coupon_id, struct gate_keys *k)
{
    snprintf(k->gate, sizeof(k->gate), "%scoupon:%lld:gate", prefix, (long long)coupon_id);
    snprintf(k->holders, sizeof(k->holders), "%scoupon:%lld:holders", prefix, (long long)coupon_id);
}

/* The reply, or NULL when Redis failed or answered with an error (redis_run() logged it). */
static redisReply *run(struct redis_pool *pool, int argc, const char **argv)
{
    struct err e;

    return redis_cmd(pool, &(struct redis_call){.caller = "gate", .argc = argc, .argv = argv}, &e);
}

/* The gate's answer in a script's integer reply. */
static enum gate_result result_of(long long n)
{
    static const enum gate_result results[] = {GATE_ADMITTED, GATE_SOLD_OUT, GATE_ALREADY_ISSUED,
                                               GATE_NOT_ACTIVE, GATE_UNKNOWN};

    return n >= 0 && n < (long long)ARRAY_SIZE(results) ? results[n] : GATE_ERROR;
}

int coupon_gate_check_command(const char *prefix, int64_t coupon_id, int64_t user_id,
                              int64_t now_us, struct arena *a, const char ***argv)
{
    struct gate_keys k;
    const char **v = arena_alloc(a, 7 * sizeof(*v));

    keys_of(prefix, coupon_id, &k);
    v[0] = "EVAL";
    v[1] = script_check;
    v[2] = "2";
    v[3] = arena_strdup(a, k.gate);
    v[4] = arena_strdup(a, k.holders);
    v[5] = arena_printf(a, "%lld", (long long)user_id);
    v[6] = arena_printf(a, "%lld", (long long)now_us);
    *argv = v;
    return 7;
}

enum gate_result coupon_gate_check_result(const struct redis_value *reply)
{
    return reply && reply->type == REDIS_VALUE_INTEGER ? result_of(reply->integer) : GATE_ERROR;
}

enum gate_result coupon_gate_admit(struct redis_pool *pool, const char *prefix, int64_t coupon_id,
                                   int64_t user_id, int64_t now_us)
{
    struct gate_keys k;
    char user[24];
    char now[24];
    const char *argv[] = {"EVAL", script_admit, "2", k.gate, k.holders, user, now};

    keys_of(prefix, coupon_id, &k);
    snprintf(user, sizeof(user), "%lld", (long long)user_id);
    snprintf(now, sizeof(now), "%lld", (long long)now_us);
    redisReply *r = run(pool, (int)ARRAY_SIZE(argv), argv);
    if (!r)
        return GATE_ERROR;
    enum gate_result res = r->type == REDIS_REPLY_INTEGER ? result_of(r->integer) : GATE_ERROR;
    freeReplyObject(r);
    return res;
}

void coupon_gate_undo(struct redis_pool *pool, const char *prefix, int64_t coupon_id,
                      int64_t user_id)
{
    struct gate_keys k;
    char user[24];
    const char *argv[] = {"EVAL", script_undo, "2", k.gate, k.holders, user};

    keys_of(prefix, coupon_id, &k);
    snprintf(user, sizeof(user), "%lld", (long long)user_id);
    redisReply *r = run(pool, (int)ARRAY_SIZE(argv), argv);
    if (r)
        freeReplyObject(r);
}

void coupon_gate_forget(struct redis_pool *pool, const char *prefix, int64_t coupon_id)
{
    struct gate_keys k;
    const char *argv[] = {"DEL", k.gate, k.holders};

    keys_of(prefix, coupon_id, &k);
    redisReply *r = run(pool, (int)ARRAY_SIZE(argv), argv);
    if (r)
        freeReplyObject(r);
}

int coupon_gate_rebuild(struct redis_pool *pool, const char *prefix, const struct coupon *c,
                        const int64_t *holders, size_t count)
{
    struct gate_keys k;
    size_t argc = 9 + count;
    const char **argv = xcalloc(argc, sizeof(*argv));
    char *numbers = xcalloc(count + 4, 24);
    int rc = 0;

    keys_of(prefix, c->coupon_id, &k);
    argv[0] = "EVAL";
    argv[1] = script_rebuild;
    argv[2] = "2";
    argv[3] = k.gate;
    argv[4] = k.holders;
    snprintf(numbers, 24, "%lld", (long long)(c->total_quantity - c->issued_quantity));
    snprintf(numbers + 24, 24, "%lld", (long long)c->starts_us);
    snprintf(numbers + 48, 24, "%lld", (long long)c->ends_us);
    snprintf(numbers + 72, 24, "%lld", STATE_TTL_MS);
    for (size_t i = 0; i < 4 + count; i++) {
        if (i >= 4)
            snprintf(numbers + i * 24, 24, "%lld", (long long)holders[i - 4]);
        argv[5 + i] = numbers + i * 24;
    }
    redisReply *r = run(pool, (int)argc, argv);
    if (!r)
        rc = -1;
    else
        freeReplyObject(r);
    free(numbers);
    free(argv);
    return rc;
}
