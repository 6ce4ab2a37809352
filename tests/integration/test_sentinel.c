/*
 * Redis run by Sentinel (issue 14), end to end: two `shopd serve` processes given a Sentinel,
 * and as SHOPD_REDIS_URL the replica (a wrong first guess), find and use the master; after a
 * failover (SENTINEL FAILOVER: the replica is promoted, the master demoted) both move to the
 * new master, their lock subscriptions follow, and exactly one of them drops the keys the
 * former master left: a cached product that a lost invalidation would have left stale is
 * never served again, while the distributed locks' keys stay.
 *
 * Its own Redis master, replica and Sentinel (harness_redis_*, on free ports); the shared
 * MariaDB. Waits are on conditions, never fixed sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis.h>

#include "harness.h"
#include "http_client.h"
#include "it_main.h"
#include "json_check.h"
#include "redis_client.h"

static struct harness h;
static struct harness_redis master, replica, sentinel;
static struct harness_server a, b;
static struct redis_client on_master, on_replica, on_sentinel;
static char prefix[80]; /* shopd's key prefix: "<db name>:" */

static const char metric_moves[] = "shopd_redis_master_changes_total";
static const char metric_resets[] = "shopd_redis_lineage_resets_total";

/* ---- helpers ---- */

/* Whether the INFO replication of c contains text. */
static bool info_says(struct redis_client *c, const char *text)
{
    redisReply *r = redis_client_cmd(c, "INFO replication");
    bool yes = r && r->type == REDIS_REPLY_STRING && strstr(r->str, text);

    if (r)
        freeReplyObject(r);
    return yes;
}

static bool replica_synced(void *arg)
{
    (void)arg;
    return info_says(&on_replica, "master_link_status:up");
}

/* The port the Sentinel names as the master, or -1. */
static int named_master_port(void)
{
    redisReply *r = redis_client_cmd(&on_sentinel, "SENTINEL get-master-addr-by-name shopd");
    int port = -1;

    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2)
        port = atoi(r->element[1]->str);
    if (r)
        freeReplyObject(r);
    return port;
}

/* Whether the Sentinel knows a replica that it could promote. */
static bool sentinel_sees_replica(void *arg)
{
    (void)arg;
    redisReply *r = redis_client_cmd(&on_sentinel, "SENTINEL replicas shopd");
    bool yes = r && r->type == REDIS_REPLY_ARRAY && r->elements == 1;

    if (r)
        freeReplyObject(r);
    return yes;
}

static bool exists_on(struct redis_client *c, const char *key)
{
    return redis_client_integer(c, -1, "EXISTS %s", key) == 1;
}

/* The name shopd at s answers for product id, or "" (static buffer). */
static const char *product_name(const struct harness_server *s, int64_t id)
{
    static char name[128];
    json_t *j = NULL;

    name[0] = '\0';
    if (it_call(s, "GET", NULL, NULL, &j, "/api/products/%lld", (long long)id) == 200 &&
        jstr(j, "name"))
        snprintf(name, sizeof(name), "%s", jstr(j, "name"));
    json_decref(j);
    return name;
}

static long charge(const struct harness_server *s, int64_t user, const char *token, const char *key)
{
    char url[160], header[128];
    struct http_result r;
    static const char body[] = "{\"amount\":1000}";

    snprintf(url, sizeof(url), "%s/api/users/%lld/balance/charge", s->url, (long long)user);
    snprintf(header, sizeof(header), "Idempotency-Key: %s", key);
    if (http_do(&it_client, "POST", url, token, "application/json", body, strlen(body), header, &r))
        return -1;
    long status = r.status;
    http_result_free(&r);
    return status;
}

/* ---- set-up ---- */

static int group_setup(void **state)
{
    (void)state;
    if (harness_setup(&h) || harness_redis_start(&h, &master) ||
        harness_redis_start_replica(&h, &replica, &master) ||
        redis_client_init(&on_master, master.url) || redis_client_init(&on_replica, replica.url))
        return -1;
    /* The Sentinel finds the replica in the master's INFO when it starts: sync first. */
    if (!harness_wait_for(replica_synced, NULL, 20000) ||
        harness_sentinel_start(&h, &sentinel, &master) ||
        redis_client_init(&on_sentinel, sentinel.url) ||
        !harness_wait_for(sentinel_sees_replica, NULL, 20000)) {
        fprintf(stderr, "test_sentinel: the replica or the Sentinel did not come up\n");
        return -1;
    }
    char sentinels[96];
    snprintf(sentinels, sizeof(sentinels), "SHOPD_REDIS_SENTINELS=127.0.0.1:%d", sentinel.port);
    /* The replica as the first guess: only the Sentinel may say where the master is. */
    const char *const env[] = {replica.env, sentinels, "SHOPD_REDIS_MASTER=shopd",
                               "SHOPD_THREADS=8", NULL};
    if (harness_server_start(&h, &a, env) || harness_server_start(&h, &b, env))
        return -1;
    snprintf(prefix, sizeof(prefix), "%s:", h.db_name);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    int rc_a = harness_server_stop(&a), rc_b = harness_server_stop(&b);

    redis_client_release(&on_master);
    redis_client_release(&on_replica);
    redis_client_release(&on_sentinel);
    harness_redis_stop(&sentinel);
    harness_redis_stop(&replica);
    harness_redis_stop(&master);
    harness_teardown(&h);
    return rc_a || rc_b ? -1 : 0;
}

/* ---- the tests ---- */

struct lineage_wait {
    struct redis_client *c;
    char marker[128];
};

/* Whether the namespace's lineage marker on the client's server is that server's replid. */
static bool lineage_recorded(void *arg)
{
    struct lineage_wait *w = arg;
    redisReply *info = redis_client_cmd(w->c, "INFO replication");
    redisReply *marker = redis_client_cmd(w->c, "GET %s", w->marker);
    const char *id =
        info && info->type == REDIS_REPLY_STRING ? strstr(info->str, "master_replid:") : NULL;
    bool yes = id && marker && marker->type == REDIS_REPLY_STRING &&
               !strncmp(id + strlen("master_replid:"), marker->str, marker->len);

    if (info)
        freeReplyObject(info);
    if (marker)
        freeReplyObject(marker);
    return yes;
}

static void the_instances_use_the_master_the_sentinel_names(void **state)
{
    (void)state;
    int64_t product = harness_create_product(&h, &a, "Sentinel kettle", 12000, 5);
    char key[160];

    assert_true(product > 0);
    assert_string_equal(product_name(&a, product), "Sentinel kettle");
    assert_string_equal(product_name(&b, product), "Sentinel kettle");
    /* The first read filled the cache on the master (the replica refuses writes). */
    snprintf(key, sizeof(key), "%sproduct:%lld", prefix, (long long)product);
    assert_true(exists_on(&on_master, key));
    assert_true(harness_metric(&b, "shopd_cache_hits_total{cache=\"product\"}") >= 1);
    assert_int_equal(harness_metric(&a, "shopd_cache_errors_total{cache=\"product\"}"), 0);
    assert_int_equal(harness_metric(&a, metric_moves), 0);

    struct lineage_wait w = {.c = &on_master};
    snprintf(w.marker, sizeof(w.marker), "%sredis:lineage", prefix);
    assert_true(harness_wait_for(lineage_recorded, &w, 10000));
}

struct served_wait {
    int64_t product;
    const char *name;
};

static bool both_serve(void *arg)
{
    const struct served_wait *w = arg;

    return !strcmp(product_name(&a, w->product), w->name) &&
           !strcmp(product_name(&b, w->product), w->name);
}

static bool both_moved(void *arg)
{
    (void)arg;
    return harness_metric(&a, metric_moves) >= 1 && harness_metric(&b, metric_moves) >= 1;
}

static bool replica_is_named(void *arg)
{
    (void)arg;
    return named_master_port() == replica.port;
}

/* Puts a value for key on the master that differs from MariaDB's: what a lost invalidation
 * leaves on a promoted replica. */
static void plant_stale_product(const char *key)
{
    redisReply *r = redis_client_cmd(&on_master, "GET %s", key);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char *stale = strdup(r->str);
    freeReplyObject(r);
    char *name = strstr(stale, "Failover lamp");
    assert_non_null(name);
    memcpy(name, "Stale!!! lamp", strlen("Stale!!! lamp"));
    r = redis_client_cmd(&on_master, "SET %s %s", key, stale);
    assert_non_null(r);
    freeReplyObject(r);
    free(stale);
}

static void a_failover_moves_the_instances_and_drops_the_former_masters_keys(void **state)
{
    (void)state;
    int64_t product = harness_create_product(&h, &a, "Failover lamp", 8000, 5);
    int64_t user = harness_create_user(&h, &a, "Sentinel user");
    char *token = harness_token(&h, user);
    char key[160], lock[160], other[160];

    assert_true(product > 0 && user > 0);
    assert_string_equal(product_name(&a, product), "Failover lamp");
    snprintf(key, sizeof(key), "%sproduct:%lld", prefix, (long long)product);
    snprintf(lock, sizeof(lock), "%slock:sentinel-test", prefix);
    snprintf(other, sizeof(other), "%ssentinel-test", prefix);
    plant_stale_product(key);
    redisReply *r = redis_client_cmd(&on_master, "SET %s held PX 60000", lock);
    freeReplyObject(r);
    r = redis_client_cmd(&on_master, "SET %s x", other);
    freeReplyObject(r);
    /* Served from the cache: the stale value is what readers see until the failover. */
    assert_string_equal(product_name(&a, product), "Stale!!! lamp");
    r = redis_client_cmd(&on_master, "WAIT 1 5000");
    assert_true(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
    freeReplyObject(r);
    int64_t resets = harness_metric(&a, metric_resets) + harness_metric(&b, metric_resets);

    r = redis_client_cmd(&on_sentinel, "SENTINEL FAILOVER shopd");
    assert_true(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    assert_true(harness_wait_for(replica_is_named, NULL, 20000));

    struct served_wait w = {product, "Failover lamp"};
    assert_true(harness_wait_for(both_moved, NULL, 20000));
    assert_true(harness_wait_for(both_serve, &w, 20000));
    /* One instance dropped what the former master held, the locks' keys excepted. */
    assert_int_equal(harness_metric(&a, metric_resets) + harness_metric(&b, metric_resets),
                     resets + 1);
    assert_false(exists_on(&on_replica, other));
    assert_true(exists_on(&on_replica, lock));
    /* Writes, and their locks in SHOPD_LOCKS=redis, go to the new master. */
    assert_int_equal(charge(&a, user, token, "sentinel-charge-1"), 200);
    assert_int_equal(charge(&b, user, token, "sentinel-charge-2"), 200);
    assert_string_equal(product_name(&b, product), "Failover lamp");
    assert_true(exists_on(&on_replica, key));
    free(token);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_instances_use_the_master_the_sentinel_names),
        cmocka_unit_test(a_failover_moves_the_instances_and_drops_the_former_masters_keys),
    };
    int failed = 0;

    if (it_main_begin() < 0)
        return 1;
    IT_RUN_GROUP(failed, "sentinel", tests, group_setup, group_teardown);
    return failed ? 1 : 0;
}
