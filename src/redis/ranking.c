#include "redis/ranking.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/array.h"
#include "core/buf.h"
#include "core/err.h"
#include "domain/product.h"
#include "redis/redis_cmd.h"

#include "core/banned.h"

#define TTL_MS "691200000" /* RANKING_DAYS_KEPT days */

/* Deltas travel as "id:units:krw;..." and are added by this Lua function. */
#define LUA_ADD                                                         \
    "local function add(qty, rev, s) "                                  \
    "  for id, q, r in string.gmatch(s, '(%d+):(%-?%d+):(%-?%d+)') do " \
    "    redis.call('ZINCRBY', qty, q, id) "                            \
    "    redis.call('ZINCRBY', rev, r, id) "                            \
    "  end "                                                            \
    "end "

/* KEYS: qty, rev, seen, pending, ready. ARGV: event id, deltas. 0 already counted, 1 counted,
 * 2 parked until the day is rebuilt. */
static const char script_apply[] =
    LUA_ADD "if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then return 0 end "
            "if redis.call('EXISTS', KEYS[5]) == 0 then "
            "  redis.call('HSET', KEYS[4], ARGV[1], ARGV[2]) "
            "  redis.call('PEXPIRE', KEYS[4], " TTL_MS ") "
            "  return 2 "
            "end "
            "redis.call('SADD', KEYS[3], ARGV[1]) "
            "add(KEYS[1], KEYS[2], ARGV[2]) "
            "for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], " TTL_MS ") end "
            "return 1";

/* KEYS: qty, rev, seen, pending, ready. ARGV: roll-up deltas, event ids of the snapshot... */
static const char script_rebuild[] =
    LUA_ADD "if redis.call('EXISTS', KEYS[5]) == 1 then return 0 end "
            "redis.call('DEL', KEYS[1], KEYS[2], KEYS[3]) "
            "add(KEYS[1], KEYS[2], ARGV[1]) "
            "for i = 2, #ARGV, 1000 do "
            "  redis.call('SADD', KEYS[3], unpack(ARGV, i, math.min(i + 999, #ARGV))) "
            "end "
            "local parked = redis.call('HGETALL', KEYS[4]) "
            "for i = 1, #parked, 2 do "
            "  if redis.call('SADD', KEYS[3], parked[i]) == 1 then add(KEYS[1], KEYS[2], parked[i "
            "+ 1]) end "
            "end "
            "redis.call('DEL', KEYS[4]) "
            "redis.call('SET', KEYS[5], '1', 'PX', " TTL_MS ") "
            "for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], " TTL_MS ") end "
            "return 1";

/* KEYS: qty, rev, ready of each day. ARGV: limit. Returns -1 when a day is not complete, else
 * {id, units, krw, ...} best first. */
static const char script_top[] =
    "local days = #KEYS / 3 "
    "local qkeys = {} "
    "for d = 0, days - 1 do "
    "  if redis.call('EXISTS', KEYS[3 * d + 3]) == 0 then return -1 end "
    "  qkeys[#qkeys + 1] = KEYS[3 * d + 1] "
    "end "
    "qkeys[#qkeys + 1] = 'WITHSCORES' "
    "local u = redis.call('ZUNION', days, unpack(qkeys)) "
    "local rows = {} "
    "for i = 1, #u, 2 do "
    "  local q = tonumber(u[i + 1]) "
    "  if q > 0 then rows[#rows + 1] = {tonumber(u[i]), q, u[i]} end "
    "end "
    "table.sort(rows, function(a, b) "
    "  if a[2] ~= b[2] then return a[2] > b[2] end return a[1] < b[1] end) "
    "local out = {} "
    "for i = 1, math.min(#rows, tonumber(ARGV[1])) do "
    "  local rev = 0 "
    "  for d = 0, days - 1 do "
    "    rev = rev + (tonumber(redis.call('ZSCORE', KEYS[3 * d + 2], rows[i][3])) or 0) "
    "  end "
    "  out[#out + 1] = rows[i][1] out[#out + 1] = rows[i][2] out[#out + 1] = rev "
    "end "
    "return out";

struct day_keys {
    char qty[160], rev[160], seen[160], pending[160], ready[160];
};

static void keys_of(const char *prefix, int64_t day, struct day_keys *k)
{
    long long d = (long long)day;

    snprintf(k->qty, sizeof(k->qty), "%srank:%lld:qty", prefix, d);
    snprintf(k->rev, sizeof(k->rev), "%srank:%lld:rev", prefix, d);
    snprintf(k->seen, sizeof(k->seen), "%srank:%lld:seen", prefix, d);
    snprintf(k->pending, sizeof(k->pending), "%srank:%lld:pending", prefix, d);
    snprintf(k->ready, sizeof(k->ready), "%srank:%lld:ready", prefix, d);
}

static const char *encode(const struct product_sales *d, size_t n, struct arena *a)
{
    struct buf b;

    buf_init(&b, a, 24 * n + 1);
    for (size_t i = 0; i < n; i++)
        buf_addf(&b, "%lld:%lld:%lld;", (long long)d[i].product_id, (long long)d[i].quantity,
                 (long long)d[i].revenue_krw);
    return b.data;
}

int ranking_apply(struct redis_pool *p, const char *prefix, int64_t day, const char *event_id,
                  const struct product_sales *d, size_t n, enum ranking_applied *out, struct err *e)
{
    struct arena a = ARENA_INIT;
    struct day_keys k;
    int rc = -1;

    keys_of(prefix, day, &k);
    const char *argv[] = {"EVAL", script_apply, "5",     k.qty,    k.rev,
                          k.seen, k.pending,    k.ready, event_id, encode(d, n, &a)};
    redisReply *r = redis_cmd(
        p, &(struct redis_call){.caller = "ranking", .argc = (int)ARRAY_SIZE(argv), .argv = argv},
        e);
    if (r) {
        static const enum ranking_applied results[] = {RANKING_ALREADY_COUNTED, RANKING_COUNTED,
                                                       RANKING_PARKED};
        if (r->type == REDIS_REPLY_INTEGER && r->integer >= 0 && r->integer <= 2) {
            *out = results[r->integer];
            rc = 0;
        } else {
            err_set(e, ERR_INTERNAL, "ranking apply: unexpected reply");
        }
        freeReplyObject(r);
    }
    arena_release(&a);
    return rc;
}

int ranking_rebuild(struct redis_pool *p, const char *prefix, int64_t day,
                    const struct product_sales *rollup, size_t n, const char *const *event_ids,
                    size_t nids, bool *built, struct err *e)
{
    struct arena a = ARENA_INIT;
    struct day_keys k;
    size_t argc = 0;
    const char **argv = arena_alloc(&a, (9 + nids) * sizeof(*argv));

    keys_of(prefix, day, &k);
    argv[argc++] = "EVAL";
    argv[argc++] = script_rebuild;
    argv[argc++] = "5";
    argv[argc++] = k.qty;
    argv[argc++] = k.rev;
    argv[argc++] = k.seen;
    argv[argc++] = k.pending;
    argv[argc++] = k.ready;
    argv[argc++] = encode(rollup, n, &a);
    for (size_t i = 0; i < nids; i++)
        argv[argc++] = event_ids[i];
    redisReply *r =
        redis_cmd(p, &(struct redis_call){.caller = "ranking", .argc = (int)argc, .argv = argv}, e);
    arena_release(&a);
    if (!r)
        return -1;
    *built = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return 0;
}

int ranking_top(struct redis_pool *p, const char *prefix, const int64_t *days, size_t ndays,
                int limit, struct arena *a, struct product_rank **out, size_t *count,
                bool *complete, struct err *e)
{
    struct day_keys *k = arena_alloc(a, ndays * sizeof(*k));
    const char **argv = arena_alloc(a, (4 + 3 * ndays) * sizeof(*argv));
    char nkeys[16];
    char limit_s[16];
    size_t argc = 0;

    snprintf(nkeys, sizeof(nkeys), "%zu", 3 * ndays);
    snprintf(limit_s, sizeof(limit_s), "%d", limit);
    argv[argc++] = "EVAL";
    argv[argc++] = script_top;
    argv[argc++] = nkeys;
    for (size_t i = 0; i < ndays; i++) {
        keys_of(prefix, days[i], &k[i]);
        argv[argc++] = k[i].qty;
        argv[argc++] = k[i].rev;
        argv[argc++] = k[i].ready;
    }
    argv[argc++] = limit_s;
    *count = 0;
    *complete = false;
    redisReply *r =
        redis_cmd(p, &(struct redis_call){.caller = "ranking", .argc = (int)argc, .argv = argv}, e);
    if (!r)
        return -1;
    if (r->type == REDIS_REPLY_ARRAY) {
        *complete = true;
        *out = arena_calloc(a, r->elements / 3 + 1, sizeof(**out));
        for (size_t i = 0; i + 2 < r->elements; i += 3) {
            struct product_rank *rank = &(*out)[(*count)++];
            rank->product_id = r->element[i]->integer;
            rank->sales_count = r->element[i + 1]->integer;
            rank->revenue_krw = r->element[i + 2]->integer;
            rank->name = "";
        }
    }
    freeReplyObject(r);
    return 0;
}
