/*
 * Issue 12, item 1: product detail and the top products answered by the event loop itself from one
 * pipelined Redis GET (http/loop_redis.c, struct route_loop_read), against a real `shopd serve` and
 * a private Redis that the tests stall and kill. What is asserted is what the client sees (every
 * answer the product, never an error) and counts from /metrics (reads answered on the loops, Redis
 * round trips and no MariaDB ones per read), never a timing.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "http_client.h"
#include "it_main.h"

#define ROUTE "GET /api/products/{productId}" /* as /metrics names routes */

static struct harness h;
static struct harness_redis redis;
static struct harness_server srv;

static int group_setup(void **state)
{
    (void)state;
    if (harness_setup(&h) || harness_redis_start(&h, &redis))
        return -1;
    const char *const env[] = {redis.env, NULL};
    return harness_server_start(&h, &srv, env) ? -1 : 0;
}

static int group_teardown(void **state)
{
    (void)state;
    int rc = harness_server_stop(&srv);

    harness_redis_stop(&redis);
    harness_teardown(&h);
    return rc ? -1 : 0;
}

static int64_t metric(const char *series)
{
    int64_t v = harness_metric(&srv, series);

    return v < 0 ? 0 : v;
}

/* GET the product; its status, with the body checked to be the product's when 200. */
static long get_product(int64_t id, const char *name)
{
    char url[160];
    struct http_result r;

    snprintf(url, sizeof(url), "%s/api/products/%lld", srv.url, (long long)id);
    if (http_once("GET", url, NULL, NULL, NULL, &r))
        return -1;
    long status = r.status;
    if (status == 200 && !strstr(r.body, name))
        status = -2;
    http_result_free(&r);
    return status;
}

struct read_arg {
    int64_t id;
    const char *name;
};

/* True once a read of the product was answered on a loop (the loops' connections are made on
 * a worker along with a read, so the first reads go there). */
static bool read_on_a_loop(void *arg)
{
    const struct read_arg *a = arg;
    int64_t before = metric("shopd_loop_reads_total{result=\"answered\"}");

    return get_product(a->id, a->name) == 200 &&
           metric("shopd_loop_reads_total{result=\"answered\"}") > before;
}

static void a_cached_read_is_one_redis_get_on_the_loop(void **state)
{
    struct read_arg a = {.name = "Loop read"};

    (void)state;
    a.id = harness_create_product(&h, &srv, a.name, 1500, 7);
    assert_true(a.id > 0);
    assert_true(harness_wait_for(read_on_a_loop, &a, 10000));
    char db[128], rd[128];
    snprintf(db, sizeof(db), "shopd_db_round_trips_total{route=\"%s\"}", ROUTE);
    snprintf(rd, sizeof(rd), "shopd_redis_round_trips_total{route=\"%s\"}", ROUTE);
    int64_t db0 = metric(db), rd0 = metric(rd);
    int64_t loop0 = metric("shopd_loop_reads_total{result=\"answered\"}");
    for (int i = 0; i < 50; i++)
        assert_int_equal(get_product(a.id, a.name), 200);
    /* Each read: one Redis GET, no MariaDB. Most on the loops (a loop without its connection
     * yet sends a read to a worker, which also connects it). */
    assert_int_equal(metric(db) - db0, 0);
    assert_int_equal(metric(rd) - rd0, 50);
    assert_true(metric("shopd_loop_reads_total{result=\"answered\"}") - loop0 > 0);
}

static void a_read_after_a_write_sees_the_write(void **state)
{
    struct read_arg a = {.name = "Before the write"};
    char url[160], body[96];
    struct http_result r;
    char *admin = harness_admin_token(&h);

    (void)state;
    a.id = harness_create_product(&h, &srv, a.name, 1500, 7);
    assert_true(harness_wait_for(read_on_a_loop, &a, 10000));
    snprintf(url, sizeof(url), "%s/api/admin/products/%lld", srv.url, (long long)a.id);
    snprintf(body, sizeof(body), "{\"name\":\"After the write\"}");
    assert_int_equal(http_once("PATCH", url, admin, body, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    http_result_free(&r);
    /* The commit invalidated the key: the very next read is the new name, loop or not. */
    assert_int_equal(get_product(a.id, "After the write"), 200);
    free(admin);
}

/* True once a read of the top products was answered on a loop. */
static bool top_on_a_loop(void *arg)
{
    char url[160];
    struct http_result r;
    int64_t before = metric("shopd_loop_reads_total{result=\"answered\"}");

    (void)arg;
    snprintf(url, sizeof(url), "%s/api/products/top?days=3&limit=5", srv.url);
    if (http_once("GET", url, NULL, NULL, NULL, &r))
        return false;
    bool ok = r.status == 200 && strstr(r.body, "\"period\":\"3days\"");
    http_result_free(&r);
    return ok && metric("shopd_loop_reads_total{result=\"answered\"}") > before;
}

static void the_top_products_are_read_on_the_loop_too(void **state)
{
    char url[160];
    struct http_result r;

    (void)state;
    assert_true(harness_wait_for(top_on_a_loop, NULL, 10000));
    /* A query the handler refuses is never taken for a cached read. */
    snprintf(url, sizeof(url), "%s/api/products/top?days=0", srv.url);
    assert_int_equal(http_once("GET", url, NULL, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 400);
    http_result_free(&r);
}

/*
 * Redis stops answering (SIGSTOP) with reads on the loops: each read still gets the product,
 * from MariaDB, once the loop gives its connection up; Redis back, the loops read it again.
 */
static void a_stalled_redis_costs_reads_speed_only(void **state)
{
    struct read_arg a = {.name = "Stalled Redis"};

    (void)state;
    a.id = harness_create_product(&h, &srv, a.name, 1500, 7);
    assert_true(harness_wait_for(read_on_a_loop, &a, 10000));
    int64_t drops = metric("shopd_loop_redis_drops_total");
    assert_int_equal(kill(redis.pid, SIGSTOP), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(get_product(a.id, a.name), 200);
    assert_int_equal(kill(redis.pid, SIGCONT), 0);
    assert_true(metric("shopd_loop_redis_drops_total") > drops);
    assert_true(harness_wait_for(read_on_a_loop, &a, 20000));
}

/* Redis killed and restarted empty: reads answer throughout, and the loops reconnect. */
static void a_killed_redis_costs_reads_speed_only(void **state)
{
    struct read_arg a = {.name = "Killed Redis"};

    (void)state;
    a.id = harness_create_product(&h, &srv, a.name, 1500, 7);
    assert_true(harness_wait_for(read_on_a_loop, &a, 10000));
    harness_redis_kill(&redis);
    for (int i = 0; i < 5; i++)
        assert_int_equal(get_product(a.id, a.name), 200);
    assert_int_equal(harness_redis_restart(&redis), 0);
    assert_true(harness_wait_for(read_on_a_loop, &a, 20000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_cached_read_is_one_redis_get_on_the_loop),
        cmocka_unit_test(a_read_after_a_write_sees_the_write),
        cmocka_unit_test(the_top_products_are_read_on_the_loop_too),
        cmocka_unit_test(a_stalled_redis_costs_reads_speed_only),
        cmocka_unit_test(a_killed_redis_costs_reads_speed_only),
    };
    int failed = 0;

    if (it_main_begin() < 0)
        return 1;
    IT_RUN_GROUP(failed, "loop reads", tests, group_setup, group_teardown);
    return failed ? 1 : 0;
}
