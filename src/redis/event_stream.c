#include "redis/event_stream.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/array.h"
#include "core/err.h"
#include "redis/redis_cmd.h"

#include "core/banned.h"

#define FIELDS_PER_EVENT 5
#define PUBLISH_MAX      256
/* A blocking read's socket time-out is its BLOCK plus this: Redis answers a BLOCK that ran
 * out with nil, a little late on a busy machine, and that must never look like a failure. */
#define BLOCK_MARGIN_MS 1000

/*
 * One command of the stream's (redis_cmd()); timeout_ms 0 for the pool's. Its error replies
 * (EPOCH, BUSYGROUP, NOGROUP) are answers its callers read in e->detail, not faults to log.
 */
static redisReply *stream_cmd(struct redis_pool *p, int argc, const char **argv, int timeout_ms,
                              struct err *e)
{
    const struct redis_call call = {.caller = "stream",
                                    .argc = argc,
                                    .argv = argv,
                                    .timeout_ms = timeout_ms,
                                    .quiet_errors = true};

    return redis_cmd(p, &call, e);
}

/* KEYS: stream, epoch. ARGV: epoch, then event_id, type, order_id, occurred_us, payload per
 * event. All or nothing: a script runs alone. */
static const char script_publish[] =
    "if redis.call('GET', KEYS[2]) ~= ARGV[1] then return redis.error_reply('EPOCH') end "
    "local id "
    "for i = 2, #ARGV, 5 do "
    "  id = redis.call('XADD', KEYS[1], '*', 'event_id', ARGV[i], 'type', ARGV[i + 1], "
    "                  'order_id', ARGV[i + 2], 'occurred_us', ARGV[i + 3], "
    "                  'payload', ARGV[i + 4]) "
    "end "
    "return id";

/* KEYS: stream, epoch. ARGV: epoch, groups... An existing group is left as it is. */
static const char script_begin_epoch[] =
    "redis.call('SET', KEYS[2], ARGV[1]) "
    "for i = 2, #ARGV do redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[i], '0', 'MKSTREAM') end "
    "return 1";

/* KEYS: stream. ARGV: groups. Entries before a group's last delivered one and before its
 * oldest pending one have been acknowledged by it; the minimum over the groups, in ms. */
static const char script_safe_ms[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end "
    "local last = {} "
    "for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do "
    "  local name, ld "
    "  for i = 1, #g, 2 do "
    "    if g[i] == 'name' then name = g[i + 1] elseif g[i] == 'last-delivered-id' then "
    "      ld = g[i + 1] end "
    "  end "
    "  last[name] = ld "
    "end "
    "local safe "
    "for _, want in ipairs(ARGV) do "
    "  if not last[want] then return 0 end "
    "  local ms = tonumber(string.match(last[want], '^(%d+)')) "
    "  local p = redis.call('XPENDING', KEYS[1], want) "
    "  if p[1] > 0 then "
    "    local pm = tonumber(string.match(p[2], '^(%d+)')) "
    "    if pm < ms then ms = pm end "
    "  end "
    "  if not safe or ms < safe then safe = ms end "
    "end "
    "return safe or 0";

/* KEYS: stream. ARGV: group, consumer, min idle ms, cursor, count. Returns {next cursor,
 * entries, delivery counts}. */
static const char script_claim[] =
    "local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], "
    "                     'COUNT', ARGV[5]) "
    "local counts = {} "
    "for i, ent in ipairs(r[2]) do "
    "  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ent[1], ent[1], 1) "
    "  counts[i] = (p[1] and p[1][4]) or 1 "
    "end "
    "return {r[1], r[2], counts}";

/* KEYS: stream, dead. ARGV: group, stream id, reason, event_id, type, order_id, occurred_us,
 * payload. */
static const char script_dead_letter[] =
    "redis.call('XADD', KEYS[2], '*', 'event_id', ARGV[4], 'type', ARGV[5], "
    "           'order_id', ARGV[6], 'occurred_us', ARGV[7], 'payload', ARGV[8], "
    "           'group', ARGV[1], 'stream_id', ARGV[2], 'reason', ARGV[3]) "
    "redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) "
    "return 1";

struct stream_keys {
    char stream[160], epoch[176], dead[176];
};

static void keys_of(const char *prefix, struct stream_keys *k)
{
    snprintf(k->stream, sizeof(k->stream), "%sevents", prefix);
    snprintf(k->epoch, sizeof(k->epoch), "%sevents:epoch", prefix);
    snprintf(k->dead, sizeof(k->dead), "%sevents:dead", prefix);
}

static int64_t id_ms(const char *stream_id)
{
    return strtoll(stream_id, NULL, 10);
}

int event_stream_epoch(struct redis_pool *p, const char *prefix, char *out, size_t size,
                       struct err *e)
{
    struct stream_keys k;
    const char *argv[] = {"GET", k.epoch};

    keys_of(prefix, &k);
    redisReply *r = stream_cmd(p, (int)ARRAY_SIZE(argv), argv, 0, e);
    if (!r)
        return -1;
    snprintf(out, size, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    return 0;
}

int event_stream_begin_epoch(struct redis_pool *p, const char *prefix, const char *epoch,
                             const char *const *groups, size_t ngroups, struct err *e)
{
    struct stream_keys k;
    const char *argv[8];
    size_t argc = 0;

    if (ngroups > 3)
        return err_set(e, ERR_INTERNAL, "at most 3 consumer groups");
    keys_of(prefix, &k);
    argv[argc++] = "EVAL";
    argv[argc++] = script_begin_epoch;
    argv[argc++] = "2";
    argv[argc++] = k.stream;
    argv[argc++] = k.epoch;
    argv[argc++] = epoch;
    for (size_t i = 0; i < ngroups; i++)
        argv[argc++] = groups[i];
    redisReply *r = stream_cmd(p, (int)argc, argv, 0, e);
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}

int event_stream_publish(struct redis_pool *p, const char *prefix, const char *epoch,
                         const struct stream_event *evs, size_t n, int64_t *last_ms, struct err *e)
{
    enum { HEAD = 6 };
    static const char *const head[] = {"EVAL", script_publish, "2"};
    const char *argv[HEAD + PUBLISH_MAX * FIELDS_PER_EVENT];
    char numbers[PUBLISH_MAX][2][24];
    struct stream_keys k;
    size_t argc = 0;

    if (n > PUBLISH_MAX)
        return err_set(e, ERR_INTERNAL, "at most %d events per publish", PUBLISH_MAX);
    keys_of(prefix, &k);
    for (size_t i = 0; i < 3; i++)
        argv[argc++] = head[i];
    argv[argc++] = k.stream;
    argv[argc++] = k.epoch;
    argv[argc++] = epoch;
    for (size_t i = 0; i < n; i++) {
        snprintf(numbers[i][0], sizeof(numbers[i][0]), "%lld", (long long)evs[i].order_id);
        snprintf(numbers[i][1], sizeof(numbers[i][1]), "%lld", (long long)evs[i].occurred_us);
        argv[argc++] = evs[i].event_id;
        argv[argc++] = evs[i].type;
        argv[argc++] = numbers[i][0];
        argv[argc++] = numbers[i][1];
        argv[argc++] = evs[i].payload;
    }
    redisReply *r = stream_cmd(p, (int)argc, argv, 0, e);
    if (!r)
        return strstr(e->detail, "EPOCH") ? EVENT_STREAM_EPOCH : -1;
    *last_ms = r->type == REDIS_REPLY_STRING ? id_ms(r->str) : 0;
    freeReplyObject(r);
    return 0;
}

int event_stream_safe_ms(struct redis_pool *p, const char *prefix, const char *const *groups,
                         size_t ngroups, int64_t *safe_ms, struct err *e)
{
    struct stream_keys k;
    const char *argv[8];
    size_t argc = 0;

    if (ngroups > 4)
        return err_set(e, ERR_INTERNAL, "at most 4 consumer groups");
    keys_of(prefix, &k);
    argv[argc++] = "EVAL";
    argv[argc++] = script_safe_ms;
    argv[argc++] = "1";
    argv[argc++] = k.stream;
    for (size_t i = 0; i < ngroups; i++)
        argv[argc++] = groups[i];
    redisReply *r = stream_cmd(p, (int)argc, argv, 0, e);
    if (!r)
        return -1;
    *safe_ms = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    return 0;
}

int event_stream_trim(struct redis_pool *p, const char *prefix, int64_t below_ms, struct err *e)
{
    struct stream_keys k;
    char minid[32];
    const char *argv[] = {"XTRIM", k.stream, "MINID", "~", minid};

    keys_of(prefix, &k);
    snprintf(minid, sizeof(minid), "%lld-0", (long long)below_ms);
    redisReply *r = stream_cmd(p, (int)ARRAY_SIZE(argv), argv, 0, e);
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}

int event_stream_ensure_group(struct redis_pool *p, const char *prefix, const char *group,
                              struct err *e)
{
    struct stream_keys k;
    const char *argv[] = {"XGROUP", "CREATE", k.stream, group, "0", "MKSTREAM"};

    keys_of(prefix, &k);
    redisReply *r = stream_cmd(p, (int)ARRAY_SIZE(argv), argv, 0, e);
    if (r) {
        freeReplyObject(r);
        return 0;
    }
    return strstr(e->detail, "BUSYGROUP") ? 0 : -1;
}

static const char *field(const redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (fields->element[i]->type == REDIS_REPLY_STRING &&
            !strcmp(fields->element[i]->str, name) &&
            fields->element[i + 1]->type == REDIS_REPLY_STRING)
            return fields->element[i + 1]->str;
    return NULL;
}

/* Copies one [id, [field, value, ...]] entry into ev; false if it is not one. */
static bool read_entry(const redisReply *entry, struct arena *a, struct stream_event *ev)
{
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
        entry->element[0]->type != REDIS_REPLY_STRING ||
        entry->element[1]->type != REDIS_REPLY_ARRAY)
        return false;
    const redisReply *fields = entry->element[1];
    const char *order_id = field(fields, "order_id");
    const char *occurred = field(fields, "occurred_us");

    ev->stream_id = arena_strdup(a, entry->element[0]->str);
    ev->event_id = arena_strdup(a, field(fields, "event_id") ? field(fields, "event_id") : "");
    ev->type = arena_strdup(a, field(fields, "type") ? field(fields, "type") : "");
    ev->payload = arena_strdup(a, field(fields, "payload") ? field(fields, "payload") : "");
    ev->order_id = order_id ? strtoll(order_id, NULL, 10) : 0;
    ev->occurred_us = occurred ? strtoll(occurred, NULL, 10) : 0;
    ev->deliveries = 1;
    return true;
}

static void read_entries(const redisReply *entries, struct arena *a, struct stream_event **out,
                         size_t *n)
{
    *out = arena_alloc(a, (entries->elements + 1) * sizeof(**out));
    *n = 0;
    for (size_t i = 0; i < entries->elements; i++)
        if (read_entry(entries->element[i], a, &(*out)[*n]))
            (*n)++;
}

int event_stream_read(struct redis_pool *p, const char *prefix, const char *group,
                      const char *consumer, size_t count, int block_ms, struct arena *a,
                      struct stream_event **out, size_t *n, struct err *e)
{
    struct stream_keys k;
    char count_s[24];
    char block_s[24];
    const char *argv[] = {"XREADGROUP", "GROUP", group,     consumer, "COUNT", count_s,
                          "BLOCK",      block_s, "STREAMS", k.stream, ">"};

    keys_of(prefix, &k);
    snprintf(count_s, sizeof(count_s), "%zu", count);
    snprintf(block_s, sizeof(block_s), "%d", block_ms);
    *n = 0;
    *out = NULL;
    redisReply *r = stream_cmd(p, (int)ARRAY_SIZE(argv), argv, block_ms + BLOCK_MARGIN_MS, e);
    if (!r) {
        if (!strstr(e->detail, "NOGROUP"))
            return -1;
        return event_stream_ensure_group(p, prefix, group, e);
    }
    /* [[stream, [entries]]], or nil when nothing came within block_ms */
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2 &&
        r->element[0]->element[1]->type == REDIS_REPLY_ARRAY)
        read_entries(r->element[0]->element[1], a, out, n);
    freeReplyObject(r);
    return 0;
}

int event_stream_claim(struct redis_pool *p, const char *prefix, const char *group,
                       const char *consumer, int64_t min_idle_ms, size_t count, char *cursor,
                       struct arena *a, struct stream_event **out, size_t *n, struct err *e)
{
    struct stream_keys k;
    char idle_s[24];
    char count_s[24];
    const char *argv[] = {"EVAL",   script_claim, "1",    k.stream, group,
                          consumer, idle_s,       cursor, count_s};

    keys_of(prefix, &k);
    snprintf(idle_s, sizeof(idle_s), "%lld", (long long)min_idle_ms);
    snprintf(count_s, sizeof(count_s), "%zu", count);
    *n = 0;
    *out = NULL;
    redisReply *r = stream_cmd(p, (int)ARRAY_SIZE(argv), argv, 0, e);
    if (!r) {
        if (!strstr(e->detail, "NOGROUP"))
            return -1;
        return event_stream_ensure_group(p, prefix, group, e);
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_ARRAY &&
        r->element[2]->type == REDIS_REPLY_ARRAY) {
        snprintf(cursor, 48, "%s", r->element[0]->str);
        const redisReply *entries = r->element[1];
        const redisReply *counts = r->element[2];
        *out = arena_alloc(a, (entries->elements + 1) * sizeof(**out));
        for (size_t i = 0; i < entries->elements; i++) {
            struct stream_event *ev = &(*out)[*n];
            if (!read_entry(entries->element[i], a, ev))
                continue;
            if (i < counts->elements && counts->element[i]->type == REDIS_REPLY_INTEGER)
                ev->deliveries = counts->element[i]->integer;
            (*n)++;
        }
    }
    freeReplyObject(r);
    return 0;
}

int event_stream_ack(struct redis_pool *p, const char *prefix, const char *group,
                     const char *const *stream_ids, size_t n, struct err *e)
{
    const char *argv[3 + PUBLISH_MAX];
    struct stream_keys k;

    if (!n)
        return 0;
    if (n > PUBLISH_MAX)
        return err_set(e, ERR_INTERNAL, "at most %d acknowledgements at once", PUBLISH_MAX);
    keys_of(prefix, &k);
    argv[0] = "XACK";
    argv[1] = k.stream;
    argv[2] = group;
    memcpy(&argv[3], stream_ids, n * sizeof(*stream_ids));
    redisReply *r = stream_cmd(p, (int)(3 + n), argv, 0, e);
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}

int event_stream_dead_letter(struct redis_pool *p, const char *prefix, const char *group,
                             const struct stream_event *ev, const char *reason, struct err *e)
{
    struct stream_keys k;
    char order_id[24];
    char occurred[24];
    const char *argv[] = {"EVAL",   script_dead_letter, "2",        k.stream,     k.dead,
                          group,    ev->stream_id,      reason,     ev->event_id, ev->type,
                          order_id, occurred,           ev->payload};

    keys_of(prefix, &k);
    snprintf(order_id, sizeof(order_id), "%lld", (long long)ev->order_id);
    snprintf(occurred, sizeof(occurred), "%lld", (long long)ev->occurred_us);
    redisReply *r = stream_cmd(p, (int)ARRAY_SIZE(argv), argv, 0, e);
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}
