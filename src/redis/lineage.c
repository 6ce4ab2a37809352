#include "redis/lineage.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis.h>

#include "core/array.h"
#include "core/err.h"
#include "core/xalloc.h"
#include "redis/redis_cmd.h"
#include "redis/redis_pool.h"

#include "core/banned.h"

#define CLAIM_LEASE_MS "15000" /* a reconciling instance that died is replaced after this */
#define SCAN_COUNT     "1000"
#define KEY_MAX        512

/* KEYS: marker, claim. ARGV: replid, token, lease ms. 0: same lineage; 1: ours to reconcile;
 * 2: another instance's. */
static const char script_claim[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return 0 end "
    "if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then return 1 end "
    "return 2";

/* KEYS: marker, claim. ARGV: replid, token. Records the lineage if the claim is still ours. */
static const char script_done[] =
    "if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end "
    "redis.call('SET', KEYS[1], ARGV[1]) redis.call('DEL', KEYS[2]) return 1";

struct names {
    char marker[KEY_MAX];
    char claim[KEY_MAX];
    char locks[KEY_MAX];   /* the prefix of the distributed locks' keys */
    char pattern[KEY_MAX]; /* every key of the namespace, as a SCAN pattern */
};

/* The prefix with SCAN's glob characters escaped, then '*'. */
static void pattern_of(const char *prefix, char *out, size_t size)
{
    size_t n = 0;

    for (; *prefix && n + 3 < size; prefix++) {
        if (strchr("*?[]\\", *prefix))
            out[n++] = '\\';
        out[n++] = *prefix;
    }
    out[n++] = '*';
    out[n] = '\0';
}

static void names_of(const char *prefix, struct names *k)
{
    snprintf(k->marker, sizeof(k->marker), "%sredis:lineage", prefix);
    snprintf(k->claim, sizeof(k->claim), "%sredis:lineage-claim", prefix);
    snprintf(k->locks, sizeof(k->locks), "%slock:", prefix);
    pattern_of(prefix, k->pattern, sizeof(k->pattern));
}

/* The master's replication id into out: 1, or 0 when the server is not a master; -1 on error. */
static int master_replid(struct redis_pool *p, char *out, size_t size, struct err *e)
{
    const char *argv[] = {"INFO", "replication"};
    redisReply *r = redis_cmd(
        p, &(struct redis_call){.caller = "lineage", .argc = (int)ARRAY_SIZE(argv), .argv = argv},
        e);
    int rc = -1;

    if (!r)
        return -1;
    const char *id = r->type == REDIS_REPLY_STRING ? strstr(r->str, "master_replid:") : NULL;
    if (r->type == REDIS_REPLY_STRING && !strstr(r->str, "role:master")) {
        rc = 0;
    } else if (id) {
        id += strlen("master_replid:");
        size_t len = strcspn(id, "\r\n");
        if (len && len < size) {
            memcpy(out, id, len);
            out[len] = '\0';
            rc = 1;
        }
    }
    freeReplyObject(r);
    if (rc < 0)
        err_set(e, ERR_INTERNAL, "redis INFO replication has no master_replid");
    return rc;
}

static bool keep(const struct names *k, const char *key)
{
    return !strncmp(key, k->locks, strlen(k->locks)) || !strcmp(key, k->marker) ||
           !strcmp(key, k->claim);
}

/* UNLINKs the keys of one SCAN reply's batch that are not kept; how many, or -1. */
static long long drop_batch(struct redis_pool *p, const struct names *k, const redisReply *keys,
                            struct err *e)
{
    const char **argv = xcalloc(keys->elements + 1, sizeof(*argv));
    size_t *lens = xcalloc(keys->elements + 1, sizeof(*lens));
    int argc = 0;
    long long n = 0;

    argv[argc] = "UNLINK";
    lens[argc++] = strlen("UNLINK");
    for (size_t i = 0; i < keys->elements; i++) {
        const redisReply *key = keys->element[i];
        if (key->type != REDIS_REPLY_STRING || keep(k, key->str))
            continue;
        argv[argc] = key->str;
        lens[argc++] = key->len;
    }
    if (argc > 1) {
        redisReply *r = redis_cmd(
            p, &(struct redis_call){.caller = "lineage", .argc = argc, .argv = argv, .lens = lens},
            e);
        n = r ? argc - 1 : -1;
        if (r)
            freeReplyObject(r);
    }
    free(argv);
    free(lens);
    return n;
}

/* Drops every key of the namespace but the kept ones; how many, or -1. */
static long long drop_namespace(struct redis_pool *p, const struct names *k, struct err *e)
{
    char cursor[32] = "0";
    long long total = 0;

    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", k->pattern, "COUNT", SCAN_COUNT};
        redisReply *r = redis_cmd(
            p,
            &(struct redis_call){.caller = "lineage", .argc = (int)ARRAY_SIZE(argv), .argv = argv},
            e);
        if (!r)
            return -1;
        bool ok = r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                  r->element[0]->type == REDIS_REPLY_STRING &&
                  r->element[0]->len < sizeof(cursor) && r->element[1]->type == REDIS_REPLY_ARRAY;
        long long n = -1;
        if (ok) {
            memcpy(cursor, r->element[0]->str, r->element[0]->len + 1);
            n = drop_batch(p, k, r->element[1], e);
        } else {
            err_set(e, ERR_INTERNAL, "redis SCAN: an unexpected reply");
        }
        freeReplyObject(r);
        if (n < 0)
            return -1;
        total += n;
    } while (strcmp(cursor, "0"));
    return total;
}

/* Runs one of the scripts; its integer answer, or -1. */
static long long run_script(struct redis_pool *p, const char *script, const struct names *k,
                            const char *replid, const char *token, struct err *e)
{
    const char *argv[] = {"EVAL", script, "2", k->marker, k->claim, replid, token, CLAIM_LEASE_MS};
    redisReply *r =
        redis_cmd(p,
                  &(struct redis_call){
                      .caller = "lineage", .argc = script == script_claim ? 8 : 7, .argv = argv},
                  e);
    long long v = -1;

    if (!r)
        return -1;
    if (r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else
        err_set(e, ERR_INTERNAL, "redis lineage script: an unexpected reply");
    freeReplyObject(r);
    return v;
}

int redis_lineage_check(struct redis_pool *p, const char *prefix, long long *dropped, struct err *e)
{
    struct names k;
    char replid[64];
    char token[64];

    *dropped = 0;
    int master = master_replid(p, replid, sizeof(replid), e);
    if (master <= 0)
        return master;
    names_of(prefix, &k);
    redis_owner_token(token, sizeof(token));
    long long claim = run_script(p, script_claim, &k, replid, token, e);
    if (claim != 1)
        return claim < 0 ? -1 : 0;
    long long n = drop_namespace(p, &k, e);
    if (n < 0)
        return -1; /* the claim's lease ends, and a later check does it again */
    *dropped = n;
    return run_script(p, script_done, &k, replid, token, e) < 0 ? -1 : 0;
}
