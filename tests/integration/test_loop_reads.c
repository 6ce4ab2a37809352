/*
 * Issue 12, item 1: product detail and the top products answered by the event loop itself from one
 * pipelined Redis GET, and coupon issue's refusals from the gate's checks, (http/loop_redis.c,
 * struct route_loop_read), against a real `shopd serve` and a private Redis that the tests stall
 * and kill. What is asserted is what the client sees (every answer the product, never an error) and
 * counts from /metrics (reads answered on the loops, Redis round trips and no MariaDB ones per
 * read), never a timing.
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

/* ---- a test's fault on the loops' Redis sends their reads to the workers ---- */

struct faulty {
    struct harness_server *s;
    char url[160];
};

static bool a_loop_fault_was_taken(void *arg)
{
    struct faulty *f = arg;
    struct http_result r;

    if (http_once("GET", f->url, NULL, NULL, NULL, &r))
        return false;
    http_result_free(&r);
    return harness_metric(f->s, "shopd_redis_faults_injected_total") > 0;
}

static void a_loop_fault_hands_the_read_to_a_worker(void **state)
{
    const char *const env[] = {redis.env, "SHOPD_REDIS_FAULT=loop:down", NULL};
    static const char answered[] = "shopd_loop_reads_total{result=\"answered\"}";
    struct harness_server faulty_srv;
    struct faulty f = {.s = &faulty_srv};
    struct http_result r;

    (void)state;
    int64_t id = harness_create_product(&h, &srv, "Loop fault", 1500, 7);
    assert_true(id > 0);
    assert_int_equal(harness_server_start(&h, &faulty_srv, env), 0);
    snprintf(f.url, sizeof(f.url), "%s/api/products/%lld", faulty_srv.url, (long long)id);
    /* The loops' connections are made along with a first read; from then on every command a
     * loop would send is the fault's. */
    assert_true(harness_wait_for(a_loop_fault_was_taken, &f, 10000));
    int64_t faults0 = harness_metric(&faulty_srv, "shopd_redis_faults_injected_total");
    int64_t answered0 = harness_metric(&faulty_srv, answered);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(http_once("GET", f.url, NULL, NULL, NULL, &r), 0);
        assert_int_equal(r.status, 200);
        assert_non_null(strstr(r.body, "Loop fault"));
        http_result_free(&r);
    }
    assert_int_equal(harness_metric(&faulty_srv, answered), answered0);
    assert_true(harness_metric(&faulty_srv, "shopd_redis_faults_injected_total") - faults0 >= 1);
    assert_int_equal(harness_server_stop(&faulty_srv), 0);
}

/* ---- coupon issue: the gate's refusals on the loop ---- */

#define ISSUE "POST /api/coupons/{couponId}/issue"

struct issue_arg {
    int64_t coupon, user;
    char *token;
};

/* POST issue for a->user; the status, and the problem's code (when there is one) in code. */
static long issue(const struct issue_arg *a, char *code, size_t size)
{
    char url[160], body[64];
    struct http_result r;

    snprintf(url, sizeof(url), "%s/api/coupons/%lld/issue", srv.url, (long long)a->coupon);
    snprintf(body, sizeof(body), "{\"userId\":%lld}", (long long)a->user);
    if (http_once("POST", url, a->token, body, NULL, &r))
        return -1;
    const char *c = strstr(r.body, "\"code\":\"");
    snprintf(code, size, "%.*s", c ? (int)strcspn(c + 8, "\"") : 0, c ? c + 8 : "");
    long status = r.status;
    http_result_free(&r);
    return status;
}

static bool refused_on_a_loop(void *arg)
{
    int64_t before = metric("shopd_loop_reads_total{result=\"answered\"}");
    char code[64];

    return issue(arg, code, sizeof(code)) == 409 && !strcmp(code, "COUPON_SOLD_OUT") &&
           metric("shopd_loop_reads_total{result=\"answered\"}") > before;
}

static void a_sold_out_coupon_is_refused_on_the_loop(void **state)
{
    char *admin = harness_admin_token(&h);
    const char body[] = "{\"name\":\"Loop gate\",\"discountType\":\"FIXED\","
                        "\"discountValue\":1000,\"totalQuantity\":1}";
    char url[160], code[64], db[128], rd[128];
    struct http_result r;
    struct issue_arg winner = {0}, loser = {0};

    (void)state;
    snprintf(url, sizeof(url), "%s/api/admin/coupons", srv.url);
    assert_int_equal(http_once("POST", url, admin, body, NULL, &r), 0);
    assert_int_equal(r.status, 201);
    const char *id = strstr(r.body, "\"couponId\":");
    assert_non_null(id);
    winner.coupon = loser.coupon = strtoll(id + 11, NULL, 10);
    http_result_free(&r);
    winner.user = harness_create_user(&h, &srv, "Gate winner");
    loser.user = harness_create_user(&h, &srv, "Gate loser");
    winner.token = harness_token(&h, winner.user);
    loser.token = harness_token(&h, loser.user);
    assert_int_equal(issue(&winner, code, sizeof(code)), 201);
    assert_true(harness_wait_for(refused_on_a_loop, &loser, 10000));

    snprintf(db, sizeof(db), "shopd_db_round_trips_total{route=\"%s\"}", ISSUE);
    snprintf(rd, sizeof(rd), "shopd_redis_round_trips_total{route=\"%s\"}", ISSUE);
    int64_t db0 = metric(db), rd0 = metric(rd);
    int64_t loop0 = metric("shopd_loop_reads_total{result=\"answered\"}");
    for (int i = 0; i < 50; i++) {
        assert_int_equal(issue(&loser, code, sizeof(code)), 409);
        assert_string_equal(code, "COUPON_SOLD_OUT");
    }
    /* The holder asking again is told so, the same way. */
    assert_int_equal(issue(&winner, code, sizeof(code)), 409);
    assert_string_equal(code, "COUPON_ALREADY_ISSUED");
    /* Each refusal: one Redis script (the gate's checks), no MariaDB; most on the loops. */
    assert_int_equal(metric(db) - db0, 0);
    assert_int_equal(metric(rd) - rd0, 51);
    assert_true(metric("shopd_loop_reads_total{result=\"answered\"}") - loop0 > 0);
    /* Another user's token for the loser's id is the handler's to refuse, as ever. */
    struct issue_arg forged = loser;
    forged.token = winner.token;
    assert_int_equal(issue(&forged, code, sizeof(code)), 403);
    assert_int_equal(harness_sql_int(&h, "SELECT COUNT(*) FROM user_coupons WHERE coupon_id = ?", 1,
                                     winner.coupon),
                     1);
    free(winner.token);
    free(loser.token);
    free(admin);
}

/* ---- the cart: its lines, then their products, both on the loop ---- */

#define CART "GET /api/users/{userId}/cart"

struct cart_arg {
    int64_t user;
    char *token;
    const char *want; /* in the body */
};

static long get_cart(const struct cart_arg *a)
{
    char url[160];
    struct http_result r;

    snprintf(url, sizeof(url), "%s/api/users/%lld/cart", srv.url, (long long)a->user);
    if (http_once("GET", url, a->token, NULL, NULL, &r))
        return -1;
    long status = r.status;
    if (status == 200 && !strstr(r.body, a->want))
        status = -2;
    http_result_free(&r);
    return status;
}

static bool cart_on_a_loop(void *arg)
{
    int64_t before = metric("shopd_loop_reads_total{result=\"answered\"}");

    return get_cart(arg) == 200 && metric("shopd_loop_reads_total{result=\"answered\"}") > before;
}

static void add_line(const struct cart_arg *a, int64_t product, int quantity)
{
    char url[160], body[64];
    struct http_result r;

    snprintf(url, sizeof(url), "%s/api/users/%lld/cart/items", srv.url, (long long)a->user);
    snprintf(body, sizeof(body), "{\"productId\":%lld,\"quantity\":%d}", (long long)product,
             quantity);
    assert_int_equal(http_once("POST", url, a->token, body, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    http_result_free(&r);
}

static void a_cached_cart_is_read_on_the_loop(void **state)
{
    struct cart_arg a = {.want = "\"totalAmount\":8500"}; /* 3 × 1500 + 2 × 2000 */
    struct cart_arg empty = {.want = "\"items\":[]"};
    char db[128], rd[128], url[160];
    struct http_result r;
    char *admin = harness_admin_token(&h);

    (void)state;
    a.user = harness_create_user(&h, &srv, "Loop cart");
    a.token = harness_token(&h, a.user);
    int64_t p1 = harness_create_product(&h, &srv, "Cart one", 1500, 7);
    int64_t p2 = harness_create_product(&h, &srv, "Cart two", 2000, 0);
    add_line(&a, p2, 1);
    add_line(&a, p1, 2);
    add_line(&a, p1, 1);
    add_line(&a, p2, 1);
    assert_true(harness_wait_for(cart_on_a_loop, &a, 10000));

    snprintf(db, sizeof(db), "shopd_db_round_trips_total{route=\"%s\"}", CART);
    snprintf(rd, sizeof(rd), "shopd_redis_round_trips_total{route=\"%s\"}", CART);
    int64_t db0 = metric(db), rd0 = metric(rd);
    int64_t loop0 = metric("shopd_loop_reads_total{result=\"answered\"}");
    for (int i = 0; i < 20; i++)
        assert_int_equal(get_cart(&a), 200);
    /* Each read: the lines and their products, two Redis round trips, no MariaDB. */
    assert_int_equal(metric(db) - db0, 0);
    assert_int_equal(metric(rd) - rd0, 40);
    assert_true(metric("shopd_loop_reads_total{result=\"answered\"}") - loop0 > 0);

    /* A new price is in the very next read, loop or not (the product's key was invalidated). */
    snprintf(url, sizeof(url), "%s/api/admin/products/%lld", srv.url, (long long)p1);
    assert_int_equal(http_once("PATCH", url, admin, "{\"price\":1000}", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    http_result_free(&r);
    a.want = "\"totalAmount\":7000"; /* 3 × 1000 + 2 × 2000 */
    assert_int_equal(get_cart(&a), 200);
    a.want = "\"stockAvailable\":false"; /* p2 has no stock */
    assert_int_equal(get_cart(&a), 200);

    /* An empty cart needs its lines only. */
    empty.user = harness_create_user(&h, &srv, "Empty loop cart");
    empty.token = harness_token(&h, empty.user);
    assert_true(harness_wait_for(cart_on_a_loop, &empty, 10000));
    free(empty.token);
    free(a.token);
    free(admin);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_cached_read_is_one_redis_get_on_the_loop),
        cmocka_unit_test(a_read_after_a_write_sees_the_write),
        cmocka_unit_test(the_top_products_are_read_on_the_loop_too),
        cmocka_unit_test(a_stalled_redis_costs_reads_speed_only),
        cmocka_unit_test(a_killed_redis_costs_reads_speed_only),
        cmocka_unit_test(a_loop_fault_hands_the_read_to_a_worker),
        cmocka_unit_test(a_sold_out_coupon_is_refused_on_the_loop),
        cmocka_unit_test(a_cached_cart_is_read_on_the_loop),
    };
    int failed = 0;

    if (it_main_begin() < 0)
        return 1;
    IT_RUN_GROUP(failed, "loop reads", tests, group_setup, group_teardown);
    return failed ? 1 : 0;
}
