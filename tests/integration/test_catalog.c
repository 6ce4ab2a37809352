/*
 * Products, carts and top products end to end against real `shopd serve` processes on a fresh
 * MariaDB database, and the Redis cache in front of them: a write through one process is seen
 * through the other on the very next read, a cold key read 200 times at once is loaded from
 * MariaDB at most twice, and a private Redis killed mid-test fails no request.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "harness.h"
#include "http/auth.h"
#include "http_client.h"
#include "it_main.h"
#include "json_check.h"
#include "redis/cache.h"
#include "redis/redis_pool.h"
#include "repo/db.h"
#include "repo/sales_repo.h"

static struct harness h;
static struct harness_server a, b;   /* the catalog group's two processes, on the shared Redis */
static struct harness_redis redis;   /* the outage group's private Redis... */
static struct harness_server ra, rb; /* ...and its two processes */
static char *admin;

#define DAY_US (86400LL * 1000000)

/* Strings of known length for the limits: 10, 100 and 1000 ASCII characters. */
#define S10   "abcdefghij"
#define S100  S10 S10 S10 S10 S10 S10 S10 S10 S10 S10
#define S1000 S100 S100 S100 S100 S100 S100 S100 S100 S100 S100
/* Ten Hangul syllables: 10 characters, 30 bytes of UTF-8. */
#define H10  "가나다라마바사아자차"
#define H100 H10 H10 H10 H10 H10 H10 H10 H10 H10 H10

static const char sql_product_count[] = "SELECT COUNT(*) FROM products WHERE id > ?";
static const char sql_price[] = "SELECT price_krw FROM products WHERE id = ?";
static const char sql_stock[] = "SELECT stock FROM products WHERE id = ?";
static const char sql_name_len[] = "SELECT CHAR_LENGTH(name) FROM products WHERE id = ?";
static const char sql_cart_lines[] = "SELECT COUNT(*) FROM cart_items WHERE user_id = ?";
static const char sql_cart_qty[] =
    "SELECT quantity FROM cart_items WHERE user_id = ? AND product_id = ?";

static int start_catalog(void **state)
{
    static const char *const env[] = {"SHOPD_THREADS=32", NULL};

    if (harness_setup(&h))
        return -1;
    if (harness_server_start(&h, &a, env) || harness_server_start(&h, &b, env))
        return -1;
    admin = harness_admin_token(&h);
    return 0;
}

static int stop_catalog(void **state)
{
    int rc_a = harness_server_stop(&a), rc_b = harness_server_stop(&b);

    free(admin);
    admin = NULL;
    harness_teardown(&h);
    /* A server that leaked or crashed exits non-zero under ASan. */
    return rc_a || rc_b ? -1 : 0;
}

static int start_outage(void **state)
{
    static const char *env[] = {NULL, "SHOPD_THREADS=16", NULL};

    if (harness_setup(&h))
        return -1;
    if (harness_redis_start(&h, &redis))
        return -1;
    env[0] = redis.env;
    if (harness_server_start(&h, &ra, env) || harness_server_start(&h, &rb, env))
        return -1;
    admin = harness_admin_token(&h);
    return 0;
}

static int stop_outage(void **state)
{
    int rc_a = harness_server_stop(&ra), rc_b = harness_server_stop(&rb);
    int rc_r = redis.pid > 0 ? harness_redis_stop(&redis) : 0;

    free(admin);
    admin = NULL;
    harness_teardown(&h);
    return rc_a || rc_b || rc_r ? -1 : 0;
}

/* ---- helpers ---- */

static int64_t cache_metric(const struct harness_server *s, const char *counter, const char *cache)
{
    char series[128];

    snprintf(series, sizeof(series), "shopd_cache_%s_total{cache=\"%s\"}", counter, cache);
    int64_t v = harness_metric(s, series);
    if (v < 0)
        fail_msg("%s is not in %s/metrics", series, s->url);
    return v;
}

static int64_t new_product(const char *name, int64_t price, int64_t stock)
{
    int64_t id = harness_create_product(&h, &a, name, price, stock);
    if (id <= 0)
        fail_msg("could not create product %s", name);
    return id;
}

static int64_t new_user(const char *name)
{
    int64_t id = harness_create_user(&h, &a, name);
    if (id <= 0)
        fail_msg("could not create user %s", name);
    return id;
}

static void assert_product(json_t *p, int64_t id, const char *name, const char *description,
                           int64_t price, int64_t stock)
{
    assert_int_equal(jint(p, "productId"), id);
    assert_non_null(jstr(p, "name"));
    assert_string_equal(jstr(p, "name"), name);
    assert_non_null(jstr(p, "description"));
    assert_string_equal(jstr(p, "description"), description);
    assert_int_equal(jint(p, "price"), price);
    assert_int_equal(jint(p, "stock"), stock);
}

/* GET /api/products/{id} through s: 200 with exactly these fields. */
static void expect_product(const struct harness_server *s, int64_t id, const char *name,
                           const char *description, int64_t price, int64_t stock)
{
    json_t *p;

    assert_int_equal(it_call(s, "GET", NULL, NULL, &p, "/api/products/%lld", (long long)id), 200);
    assert_product(p, id, name, description, price, stock);
    json_decref(p);
}

/* PATCH through s with body: 200, and the answer is the patched product. */
static json_t *patch_product(const struct harness_server *s, int64_t id, const char *body)
{
    json_t *p;
    long status = it_call(s, "PATCH", admin, body, &p, "/api/admin/products/%lld", (long long)id);
    if (status != 200)
        fail_msg("PATCH %lld %s: status %ld", (long long)id, body, status);
    return p;
}

static void patch_ok(const struct harness_server *s, int64_t id, const char *body)
{
    json_decref(patch_product(s, id, body));
}

/* GET the cart through s: 200, for that user, lines in productId order. */
static json_t *get_cart(const struct harness_server *s, int64_t user, const char *token)
{
    json_t *cart;

    assert_int_equal(it_call(s, "GET", token, NULL, &cart, "/api/users/%lld/cart", (long long)user),
                     200);
    assert_int_equal(jint(cart, "userId"), user);
    assert_true(json_is_array(json_object_get(cart, "items")));
    return cart;
}

static json_t *cart_line(json_t *cart, size_t i)
{
    json_t *line = json_array_get(json_object_get(cart, "items"), i);
    if (!line)
        fail_msg("the cart has no line %zu", i);
    return line;
}

static size_t cart_size(json_t *cart)
{
    return json_array_size(json_object_get(cart, "items"));
}

static void assert_line(json_t *cart, size_t i, int64_t product, const char *name,
                        int64_t unit_price, int64_t quantity, bool available)
{
    json_t *line = cart_line(cart, i);

    assert_int_equal(jint(line, "productId"), product);
    assert_non_null(jstr(line, "name"));
    assert_string_equal(jstr(line, "name"), name);
    assert_int_equal(jint(line, "unitPrice"), unit_price);
    assert_int_equal(jint(line, "quantity"), quantity);
    assert_int_equal(jint(line, "subtotal"), unit_price * quantity);
    assert_int_equal(jbool(line, "stockAvailable"), available);
}

/* totalAmount is the sum of the subtotals. */
static void assert_total(json_t *cart, int64_t total)
{
    int64_t sum = 0;

    for (size_t i = 0; i < cart_size(cart); i++)
        sum += jint(cart_line(cart, i), "subtotal");
    assert_int_equal(sum, total);
    assert_int_equal(jint(cart, "totalAmount"), total);
}

static long cart_add(const struct harness_server *s, int64_t user, const char *token,
                     int64_t product, int64_t quantity, json_t **out)
{
    char body[128];

    snprintf(body, sizeof(body), "{\"productId\":%lld,\"quantity\":%lld}", (long long)product,
             (long long)quantity);
    return it_call(s, "POST", token, body, out, "/api/users/%lld/cart/items", (long long)user);
}

static long cart_put(const struct harness_server *s, int64_t user, const char *token,
                     int64_t product, int64_t quantity, json_t **out)
{
    char body[64];

    snprintf(body, sizeof(body), "{\"quantity\":%lld}", (long long)quantity);
    return it_call(s, "PUT", token, body, out, "/api/users/%lld/cart/items/%lld", (long long)user,
                   (long long)product);
}

static int64_t sql2(const char *sql, int64_t x, int64_t y)
{
    return harness_sql_int(&h, sql, 2, x, y);
}

static int64_t sql1(const char *sql, int64_t x)
{
    return harness_sql_int(&h, sql, 1, x);
}

/* Percent-encodes an opaque cursor for a query string. */
static void url_encode(const char *in, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;

    for (const unsigned char *p = (const unsigned char *)in; *p && n + 4 < size; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    out[n] = '\0';
}

/* ---- products ---- */

static void product_create_returns_the_product(void **state)
{
    static const char body[] = "{\"name\":\"키보드 \\\"K1\\\"\",\"description\":\"Mechanical, "
                               "87 keys\",\"price\":45000,\"stock\":7,\"color\":\"ignored\"}";
    struct http_result r;
    char url[160];

    snprintf(url, sizeof(url), "%s/api/admin/products", a.url);
    assert_int_equal(http_do(&it_client, "POST", url, admin, "application/json; charset=utf-8",
                             body, strlen(body), NULL, &r),
                     0);
    assert_int_equal(r.status, 201);
    json_t *p = parse_body(r.body);
    http_result_free(&r);
    int64_t id = jint(p, "productId");
    assert_true(id > 0);
    assert_product(p, id, "키보드 \"K1\"", "Mechanical, 87 keys", 45000, 7);
    json_decref(p);
    /* Public: no token, through either process. */
    expect_product(&a, id, "키보드 \"K1\"", "Mechanical, 87 keys", 45000, 7);
    expect_product(&b, id, "키보드 \"K1\"", "Mechanical, 87 keys", 45000, 7);
}

static void product_description_defaults_to_empty(void **state)
{
    json_t *p;

    assert_int_equal(it_call(&a, "POST", admin, "{\"name\":\"Plain\",\"price\":10,\"stock\":1}", &p,
                             "/api/admin/products"),
                     201);
    int64_t id = jint(p, "productId");
    assert_product(p, id, "Plain", "", 10, 1);
    json_decref(p);
    expect_product(&b, id, "Plain", "", 10, 1);
}

static void product_create_accepts_the_limits(void **state)
{
    static const char *const bodies[] = {
        "{\"name\":\"x\",\"price\":0,\"stock\":0}",
        "{\"name\":\"x\",\"price\":1000000000,\"stock\":1000000000}",
        "{\"name\":\"" S100 "\",\"description\":\"" S1000 "\",\"price\":1,\"stock\":1}",
    };

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        json_t *p;
        long status = it_call(&a, "POST", admin, bodies[i], &p, "/api/admin/products");
        if (status != 201)
            fail_msg("body %zu: status %ld", i, status);
        int64_t id = jint(p, "productId");
        json_t *got;
        assert_int_equal(it_call(&b, "GET", NULL, NULL, &got, "/api/products/%lld", (long long)id),
                         200);
        assert_true(json_equal(p, got));
        json_decref(got);
        json_decref(p);
    }
}

/* The limits are characters, as VARCHAR(100) counts them: 100 Hangul syllables are 300 bytes. */
static void product_name_limit_counts_characters(void **state)
{
    json_t *p;

    assert_int_equal(it_call(&a, "POST", admin, "{\"name\":\"" H100 "\",\"price\":1,\"stock\":1}",
                             &p, "/api/admin/products"),
                     201);
    int64_t id = jint(p, "productId");
    assert_string_equal(jstr(p, "name"), H100);
    json_decref(p);
    assert_int_equal(sql1(sql_name_len, id), 100);
    assert_int_equal(it_call(&a, "POST", admin, "{\"name\":\"" H100 "가\",\"price\":1,\"stock\":1}",
                             &p, "/api/admin/products"),
                     400);
    assert_string_equal(jstr(p, "code"), "INVALID_INPUT");
    json_decref(p);
}

static void product_patch_changes_only_given_fields(void **state)
{
    int64_t id = new_product("Lamp", 100, 5);

    json_t *p = patch_product(&a, id, "{\"price\":150}");
    assert_product(p, id, "Lamp", "", 150, 5);
    json_decref(p);
    p = patch_product(&b, id, "{\"stock\":0,\"description\":\"warm light\"}");
    assert_product(p, id, "Lamp", "warm light", 150, 0);
    json_decref(p);
    p = patch_product(&a, id, "{\"name\":\"Desk Lamp\",\"price\":0,\"stock\":1000000000}");
    assert_product(p, id, "Desk Lamp", "warm light", 0, 1000000000);
    json_decref(p);
    expect_product(&b, id, "Desk Lamp", "warm light", 0, 1000000000);
    assert_int_equal(sql1(sql_price, id), 0);
    assert_int_equal(sql1(sql_stock, id), 1000000000);
}

static void product_patch_without_fields_changes_nothing(void **state)
{
    int64_t id = new_product("Chair", 3000, 4);

    json_t *p = patch_product(&a, id, "{}");
    assert_product(p, id, "Chair", "", 3000, 4);
    json_decref(p);
    /* Unknown fields are ignored. */
    p = patch_product(&b, id, "{\"colour\":\"red\"}");
    assert_product(p, id, "Chair", "", 3000, 4);
    json_decref(p);
    expect_product(&a, id, "Chair", "", 3000, 4);
}

/* Walks the whole list two at a time: ascending ids, every product once. */
static void product_list_pages_in_id_order(void **state)
{
    int64_t mine[5], prev = 0, seen = 0, found = 0;
    char cursor[256] = "", encoded[768];

    for (int i = 0; i < 5; i++) {
        char name[32];
        snprintf(name, sizeof(name), "List %d", i);
        mine[i] = new_product(name, 100 + i, i);
    }
    int64_t total = sql1(sql_product_count, 0);
    for (int page = 0; page < 1000; page++) {
        json_t *j;
        url_encode(cursor, encoded, sizeof(encoded));
        assert_int_equal(it_call(&b, "GET", NULL, NULL, &j, "/api/products?limit=2%s%s",
                                 page ? "&cursor=" : "", page ? encoded : ""),
                         200);
        json_t *products = json_object_get(j, "products");
        assert_true(json_is_array(products));
        assert_true(json_array_size(products) <= 2);
        for (size_t i = 0; i < json_array_size(products); i++) {
            json_t *p = json_array_get(products, i);
            int64_t id = jint(p, "productId");
            assert_true(id > prev);
            prev = id;
            seen++;
            assert_non_null(jstr(p, "name"));
            assert_non_null(jstr(p, "description"));
            jint(p, "price");
            jint(p, "stock");
            for (int k = 0; k < 5; k++) {
                if (mine[k] == id) {
                    assert_int_equal(jint(p, "price"), 100 + k);
                    assert_int_equal(jint(p, "stock"), k);
                    found++;
                }
            }
        }
        json_t *next = json_object_get(j, "nextCursor");
        assert_non_null(next);
        if (json_is_null(next)) {
            json_decref(j);
            break;
        }
        assert_true(json_is_string(next));
        assert_int_equal(json_array_size(products), 2);
        snprintf(cursor, sizeof(cursor), "%s", json_string_value(next));
        json_decref(j);
    }
    assert_int_equal(seen, total);
    assert_int_equal(found, 5);
}

/* The last page says so itself: a full page with nothing after it has a null cursor. */
static void product_list_last_page_has_null_cursor(void **state)
{
    json_t *j;

    new_product("Last Page", 1, 1);
    int64_t total = sql1(sql_product_count, 0);
    assert_true(total >= 2 && total <= 100);
    assert_int_equal(
        it_call(&a, "GET", NULL, NULL, &j, "/api/products?limit=%lld", (long long)total), 200);
    assert_int_equal(json_array_size(json_object_get(j, "products")), total);
    assert_true(json_is_null(json_object_get(j, "nextCursor")));
    json_decref(j);
    assert_int_equal(
        it_call(&a, "GET", NULL, NULL, &j, "/api/products?limit=%lld", (long long)(total - 1)),
        200);
    assert_int_equal(json_array_size(json_object_get(j, "products")), total - 1);
    assert_true(json_is_string(json_object_get(j, "nextCursor")));
    json_decref(j);
}

static void product_list_defaults_to_20(void **state)
{
    json_t *j, *k;

    for (int64_t n = sql1(sql_product_count, 0); n < 21; n++)
        new_product("Filler", 1, 1);
    assert_int_equal(it_call(&a, "GET", NULL, NULL, &j, "/api/products"), 200);
    assert_int_equal(json_array_size(json_object_get(j, "products")), 20);
    assert_true(json_is_string(json_object_get(j, "nextCursor")));
    /* An empty cursor is the first page, as the contract's own example sends it. */
    assert_int_equal(it_call(&b, "GET", NULL, NULL, &k, "/api/products?limit=20&cursor="), 200);
    assert_true(json_equal(json_object_get(j, "products"), json_object_get(k, "products")));
    json_decref(k);
    json_decref(j);
    int64_t total = sql1(sql_product_count, 0);
    assert_int_equal(it_call(&a, "GET", NULL, NULL, &j, "/api/products?limit=100"), 200);
    assert_int_equal(json_array_size(json_object_get(j, "products")), total < 100 ? total : 100);
    json_decref(j);
}

/* ---- top products ---- */

struct sale {
    int product; /* index into the test's products */
    int days_ago;
    int64_t quantity;
};

struct rank {
    int product;
    int64_t sales;
    int64_t revenue;
};

static const int64_t top_prices[5] = {1000, 200, 300, 10, 5};

static bool day_changed(void *arg)
{
    return clock_now_us() / DAY_US != *(int64_t *)arg;
}

/* Sales are filed by UTC day: keep the test and the server on one side of midnight. */
static void not_near_midnight(void)
{
    int64_t now = clock_now_us(), today = now / DAY_US;

    if ((today + 1) * DAY_US - now < 60LL * 1000000)
        assert_true(harness_wait_for(day_changed, &today, 70000));
}

static void add_sales(const int64_t *ids, const struct sale *sales, size_t n)
{
    struct db_conn *c;
    struct err e;
    int64_t now = clock_now_us();

    assert_int_equal(db_acquire(h.pool, &c, &e), 0);
    assert_int_equal(db_begin(c, &e), 0);
    for (size_t i = 0; i < n; i++) {
        const struct sale *s = &sales[i];
        if (sales_repo_add(c, now - s->days_ago * DAY_US, ids[s->product], s->quantity,
                           s->quantity * top_prices[s->product], &e))
            fail_msg("sales_repo_add: %s", e.detail);
    }
    assert_int_equal(db_commit(c, &e), 0);
    db_release(h.pool, c);
}

static void expect_top(const struct harness_server *s, int days, int limit, const int64_t *ids,
                       const char *const *names, const struct rank *want, size_t nwant)
{
    char period[16];
    json_t *j;

    assert_int_equal(
        it_call(s, "GET", NULL, NULL, &j, "/api/products/top?days=%d&limit=%d", days, limit), 200);
    snprintf(period, sizeof(period), "%ddays", days);
    assert_non_null(jstr(j, "period"));
    assert_string_equal(jstr(j, "period"), period);
    json_t *products = json_object_get(j, "products");
    if (json_array_size(products) != nwant)
        fail_msg("days=%d limit=%d: %zu products, want %zu", days, limit, json_array_size(products),
                 nwant);
    for (size_t i = 0; i < nwant; i++) {
        json_t *p = json_array_get(products, i);
        assert_int_equal(jint(p, "rank"), (int64_t)i + 1);
        assert_int_equal(jint(p, "productId"), ids[want[i].product]);
        assert_string_equal(jstr(p, "name"), names[want[i].product]);
        assert_int_equal(jint(p, "salesCount"), want[i].sales);
        assert_int_equal(jint(p, "revenue"), want[i].revenue);
    }
    json_decref(j);
}

/*
 * Quantities by product and day: P0 5 today; P1 4 today and 3 yesterday; P2 7 today; P3 1 two
 * days ago and 100 three days ago; P4 2 twenty-nine days ago and 500 thirty days ago. Only this
 * test files sales, and each (days, limit) is read once after the data is in, so the 5-minute
 * cache plays no part.
 */
static void top_products_rank_by_quantity_within_days(void **state)
{
    static const char *const names[5] = {"Top Zero", "Top One", "Top Two", "Top Three", "Top Four"};
    static const struct sale sales[] = {
        {0, 0, 5}, {1, 0, 4},   {1, 1, 3},  {2, 0, 7},
        {3, 2, 1}, {3, 3, 100}, {4, 29, 2}, {4, 30, 500},
    };
    static const struct rank day1[] = {{2, 7, 2100}, {0, 5, 5000}, {1, 4, 800}};
    /* P1 and P2 tie at 7: the lower id first. */
    static const struct rank day2[] = {{1, 7, 1400}, {2, 7, 2100}, {0, 5, 5000}};
    static const struct rank day3[] = {{1, 7, 1400}, {2, 7, 2100}, {0, 5, 5000}, {3, 1, 10}};
    static const struct rank day4[] = {{3, 101, 1010}, {1, 7, 1400}};
    static const struct rank day30[] = {
        {3, 101, 1010}, {1, 7, 1400}, {2, 7, 2100}, {0, 5, 5000}, {4, 2, 10}};
    int64_t ids[5];

    not_near_midnight();
    for (int i = 0; i < 5; i++)
        ids[i] = new_product(names[i], top_prices[i], 100);
    add_sales(ids, sales, sizeof(sales) / sizeof(sales[0]));

    expect_top(&a, 1, 100, ids, names, day1, 3);
    expect_top(&b, 2, 100, ids, names, day2, 3);
    expect_top(&a, 3, 100, ids, names, day3, 4);
    expect_top(&b, 3, 2, ids, names, day3, 2);
    expect_top(&a, 4, 2, ids, names, day4, 2);
    expect_top(&b, 30, 100, ids, names, day30, 5);
    expect_top(&a, 30, 1, ids, names, day30, 1);
}

static void top_products_are_cached(void **state)
{
    json_t *first, *second;

    int64_t hits = cache_metric(&a, "hits", "top");
    assert_int_equal(it_call(&a, "GET", NULL, NULL, &first, "/api/products/top?days=7&limit=9"),
                     200);
    assert_int_equal(it_call(&a, "GET", NULL, NULL, &second, "/api/products/top?days=7&limit=9"),
                     200);
    assert_true(json_equal(first, second));
    assert_string_equal(jstr(first, "period"), "7days");
    assert_true(cache_metric(&a, "hits", "top") > hits);
    json_decref(first);
    json_decref(second);
}

/* ---- cart ---- */

static void cart_starts_empty(void **state)
{
    int64_t user = new_user("Empty Cart");
    char *token = harness_token(&h, user);

    json_t *cart = get_cart(&a, user, token);
    assert_int_equal(cart_size(cart), 0);
    assert_total(cart, 0);
    json_decref(cart);
    free(token);
}

static void cart_add_accumulates_lines_in_product_order(void **state)
{
    int64_t x = new_product("Cart X", 1000, 5), y = new_product("Cart Y", 250, 1);
    int64_t user = new_user("Adder");
    char *token = harness_token(&h, user);
    json_t *cart;

    assert_int_equal(cart_add(&a, user, token, y, 2, &cart), 200);
    assert_int_equal(cart_size(cart), 1);
    assert_line(cart, 0, y, "Cart Y", 250, 2, false);
    json_decref(cart);
    assert_int_equal(cart_add(&b, user, token, x, 3, &cart), 200);
    json_decref(cart);
    assert_int_equal(cart_add(&a, user, token, x, 2, &cart), 200);
    /* x was created first, so it has the lower id and comes first. */
    assert_int_equal(cart_size(cart), 2);
    assert_line(cart, 0, x, "Cart X", 1000, 5, true);
    assert_line(cart, 1, y, "Cart Y", 250, 2, false);
    assert_total(cart, 5500);
    json_t *again = get_cart(&b, user, token);
    assert_true(json_equal(cart, again));
    json_decref(again);
    json_decref(cart);
    assert_int_equal(sql2(sql_cart_qty, user, x), 5);
    free(token);
}

static void cart_add_beyond_1000_is_rejected(void **state)
{
    int64_t p = new_product("Bulk", 1, 1000000);
    int64_t user = new_user("Bulk Buyer");
    char *token = harness_token(&h, user);
    json_t *cart;

    assert_int_equal(cart_add(&a, user, token, p, 600, &cart), 200);
    json_decref(cart);
    assert_int_equal(cart_add(&b, user, token, p, 401, &cart), 400);
    assert_string_equal(jstr(cart, "code"), "INVALID_INPUT");
    json_decref(cart);
    cart = get_cart(&a, user, token);
    assert_line(cart, 0, p, "Bulk", 1, 600, true);
    json_decref(cart);
    /* Exactly 1,000 is allowed. */
    assert_int_equal(cart_add(&a, user, token, p, 400, &cart), 200);
    assert_line(cart, 0, p, "Bulk", 1, 1000, true);
    json_decref(cart);
    assert_int_equal(sql2(sql_cart_qty, user, p), 1000);
    free(token);
}

static void cart_put_sets_creates_and_removes(void **state)
{
    int64_t p = new_product("Put", 30, 10), q = new_product("Put Too", 7, 10);
    int64_t user = new_user("Putter");
    char *token = harness_token(&h, user);
    json_t *cart;

    assert_int_equal(cart_put(&a, user, token, q, 7, &cart), 200); /* absent: created */
    assert_line(cart, 0, q, "Put Too", 7, 7, true);
    json_decref(cart);
    assert_int_equal(cart_put(&b, user, token, p, 1000, &cart), 200);
    json_decref(cart);
    assert_int_equal(cart_put(&a, user, token, p, 2, &cart), 200); /* set, not added */
    assert_int_equal(cart_size(cart), 2);
    assert_line(cart, 0, p, "Put", 30, 2, true);
    assert_line(cart, 1, q, "Put Too", 7, 7, true);
    assert_total(cart, 109);
    json_decref(cart);
    assert_int_equal(cart_put(&b, user, token, q, 0, &cart), 200); /* 0 removes */
    assert_int_equal(cart_size(cart), 1);
    assert_line(cart, 0, p, "Put", 30, 2, true);
    json_decref(cart);
    assert_int_equal(cart_put(&a, user, token, q, 0, &cart), 200); /* removing nothing is fine */
    assert_int_equal(cart_size(cart), 1);
    json_decref(cart);
    assert_int_equal(sql1(sql_cart_lines, user), 1);
    free(token);
}

static void cart_delete_removes_the_line(void **state)
{
    int64_t p = new_product("Delete", 5, 10), q = new_product("Keep", 6, 10);
    int64_t user = new_user("Deleter");
    char *token = harness_token(&h, user);
    json_t *cart;

    assert_int_equal(cart_add(&a, user, token, p, 1, &cart), 200);
    json_decref(cart);
    assert_int_equal(cart_add(&a, user, token, q, 2, &cart), 200);
    json_decref(cart);
    for (int i = 0; i < 2; i++) { /* the second time the line is already gone: still 200 */
        assert_int_equal(it_call(i ? &a : &b, "DELETE", token, NULL, &cart,
                                 "/api/users/%lld/cart/items/%lld", (long long)user, (long long)p),
                         200);
        assert_int_equal(cart_size(cart), 1);
        assert_line(cart, 0, q, "Keep", 6, 2, true);
        assert_total(cart, 12);
        json_decref(cart);
    }
    assert_int_equal(sql1(sql_cart_lines, user), 1);
    free(token);
}

/* A cart may hold more than the stock; stockAvailable follows the current stock. */
static void cart_stock_available_follows_stock(void **state)
{
    int64_t p = new_product("Scarce", 90, 2);
    int64_t user = new_user("Hoarder");
    char *token = harness_token(&h, user);
    json_t *cart;

    assert_int_equal(cart_add(&a, user, token, p, 2, &cart), 200);
    assert_line(cart, 0, p, "Scarce", 90, 2, true);
    json_decref(cart);
    assert_int_equal(cart_add(&a, user, token, p, 1, &cart), 200);
    assert_line(cart, 0, p, "Scarce", 90, 3, false);
    json_decref(cart);
    patch_ok(&b, p, "{\"stock\":3}");
    cart = get_cart(&a, user, token);
    assert_line(cart, 0, p, "Scarce", 90, 3, true);
    json_decref(cart);
    free(token);
}

static void cart_admin_may_act_for_a_user(void **state)
{
    int64_t p = new_product("For User", 11, 1);
    int64_t user = new_user("Assisted");
    char *token = harness_token(&h, user);
    json_t *cart;

    assert_int_equal(cart_add(&a, user, admin, p, 1, &cart), 200);
    assert_int_equal(jint(cart, "userId"), user);
    json_decref(cart);
    cart = get_cart(&b, user, token);
    assert_line(cart, 0, p, "For User", 11, 1, true);
    json_decref(cart);
    cart = get_cart(&a, user, admin);
    assert_line(cart, 0, p, "For User", 11, 1, true);
    json_decref(cart);
    free(token);
}

/* ---- the cache: invalidation across processes ---- */

static void product_patch_is_seen_by_both_processes_at_once(void **state)
{
    int64_t id = new_product("Cached", 1000, 10);
    int64_t hits_a = cache_metric(&a, "hits", "product");
    int64_t hits_b = cache_metric(&b, "hits", "product");

    for (int i = 0; i < 2; i++) {
        expect_product(&a, id, "Cached", "", 1000, 10);
        expect_product(&b, id, "Cached", "", 1000, 10);
    }
    /* The value was cached: the second reads were hits, so what follows tests invalidation. */
    assert_true(cache_metric(&a, "hits", "product") > hits_a);
    assert_true(cache_metric(&b, "hits", "product") > hits_b);

    patch_ok(&a, id, "{\"price\":1100,\"stock\":9}");
    expect_product(&b, id, "Cached", "", 1100, 9);
    expect_product(&a, id, "Cached", "", 1100, 9);
    expect_product(&b, id, "Cached", "", 1100, 9);

    patch_ok(&b, id, "{\"stock\":0,\"name\":\"Sold Out\"}");
    expect_product(&a, id, "Sold Out", "", 1100, 0);
    expect_product(&b, id, "Sold Out", "", 1100, 0);
}

static void cart_shows_a_new_price_in_both_processes_at_once(void **state)
{
    int64_t p = new_product("Repriced", 500, 3), q = new_product("Steady", 70, 100);
    int64_t user = new_user("Price Watcher");
    char *token = harness_token(&h, user);
    int64_t hits_a = cache_metric(&a, "hits", "cart");
    int64_t hits_b = cache_metric(&b, "hits", "cart");
    json_t *cart;

    assert_int_equal(cart_add(&a, user, token, p, 2, &cart), 200);
    json_decref(cart);
    assert_int_equal(cart_add(&a, user, token, q, 1, &cart), 200);
    json_decref(cart);
    for (int i = 0; i < 2; i++) {
        json_decref(get_cart(&a, user, token));
        json_decref(get_cart(&b, user, token));
    }
    assert_true(cache_metric(&a, "hits", "cart") > hits_a);
    assert_true(cache_metric(&b, "hits", "cart") > hits_b);

    patch_ok(&b, p, "{\"price\":600}");
    for (int i = 0; i < 2; i++) {
        cart = get_cart(i ? &b : &a, user, token);
        assert_line(cart, 0, p, "Repriced", 600, 2, true);
        assert_line(cart, 1, q, "Steady", 70, 1, true);
        assert_total(cart, 1270);
        json_decref(cart);
    }
    patch_ok(&a, p, "{\"stock\":1,\"name\":\"Repriced Again\"}");
    for (int i = 0; i < 2; i++) {
        cart = get_cart(i ? &a : &b, user, token);
        assert_line(cart, 0, p, "Repriced Again", 600, 2, false);
        json_decref(cart);
    }
    free(token);
}

static void cart_change_through_one_process_is_seen_through_the_other(void **state)
{
    int64_t p = new_product("Shared Cart", 40, 10);
    int64_t user = new_user("Two Tabs");
    char *token = harness_token(&h, user);
    json_t *cart;

    for (int i = 0; i < 2; i++) { /* the empty cart is cached in both */
        json_decref(get_cart(&a, user, token));
        json_decref(get_cart(&b, user, token));
    }
    assert_int_equal(cart_add(&a, user, token, p, 3, &cart), 200);
    json_decref(cart);
    cart = get_cart(&b, user, token);
    assert_line(cart, 0, p, "Shared Cart", 40, 3, true);
    json_decref(cart);
    assert_int_equal(cart_put(&b, user, token, p, 5, &cart), 200);
    json_decref(cart);
    cart = get_cart(&a, user, token);
    assert_line(cart, 0, p, "Shared Cart", 40, 5, true);
    json_decref(cart);
    assert_int_equal(it_call(&a, "DELETE", token, NULL, &cart, "/api/users/%lld/cart/items/%lld",
                             (long long)user, (long long)p),
                     200);
    json_decref(cart);
    cart = get_cart(&b, user, token);
    assert_int_equal(cart_size(cart), 0);
    assert_total(cart, 0);
    json_decref(cart);
    free(token);
}

/*
 * Readers keep loading the product through both processes while it is patched 30 times: a load
 * that read MariaDB before a patch must never put the old value back after it, so after each
 * PATCH response both processes show that patch.
 */
#define RACE_READERS 6
#define RACE_PATCHES 30

struct race_reader {
    int index;
    int64_t id;
    atomic_int *stop;
    int reads;
    int failures;
};

static void *race_reader(void *arg)
{
    struct race_reader *w = arg;
    struct http_client c;
    char url[160];

    http_client_init(&c);
    while (!atomic_load(w->stop)) {
        struct http_result r;
        snprintf(url, sizeof(url), "%s/api/products/%lld",
                 (w->index + w->reads) % 2 ? a.url : b.url, (long long)w->id);
        if (http_do(&c, "GET", url, NULL, NULL, NULL, 0, NULL, &r) || r.status != 200)
            w->failures++;
        w->reads++;
        http_result_free(&r);
    }
    http_client_release(&c);
    return NULL;
}

static void no_stale_read_after_a_patch_under_concurrent_loads(void **state)
{
    int64_t id = new_product("Raced", 1000, 1);
    struct race_reader readers[RACE_READERS];
    pthread_t threads[RACE_READERS];
    atomic_int stop = 0;
    char body[64];
    int stale = 0, reads = 0, failures = 0;

    for (int t = 0; t < RACE_READERS; t++) {
        readers[t] = (struct race_reader){t, id, &stop, 0, 0};
        pthread_create(&threads[t], NULL, race_reader, &readers[t]);
    }
    for (int i = 1; i <= RACE_PATCHES && !stale; i++) {
        json_t *pa, *pb;
        snprintf(body, sizeof(body), "{\"price\":%d,\"stock\":%d}", 1000 + i, i);
        patch_ok(i % 2 ? &a : &b, id, body);
        assert_int_equal(it_call(&a, "GET", NULL, NULL, &pa, "/api/products/%lld", (long long)id),
                         200);
        assert_int_equal(it_call(&b, "GET", NULL, NULL, &pb, "/api/products/%lld", (long long)id),
                         200);
        if (jint(pa, "price") != 1000 + i || jint(pb, "price") != 1000 + i) {
            fprintf(stderr, "patch %d: price %lld through A, %lld through B, want %d\n", i,
                    (long long)jint(pa, "price"), (long long)jint(pb, "price"), 1000 + i);
            stale++;
        }
        json_decref(pa);
        json_decref(pb);
    }
    atomic_store(&stop, 1);
    for (int t = 0; t < RACE_READERS; t++) {
        pthread_join(threads[t], NULL);
        reads += readers[t].reads;
        failures += readers[t].failures;
    }
    assert_int_equal(stale, 0);
    assert_int_equal(failures, 0);
    assert_true(reads > 0);
}

/*
 * The same race made deterministic, in-process against the shared Redis: two caches stand for
 * two processes, and the load of the first is overtaken by the second's invalidation (a writer
 * committing while the reader is in MariaDB). The overtaken load may answer its own request,
 * but it must not be stored.
 */
struct overtaken {
    struct cache *writer;
    const char *key;
    int loads;
};

static int load_then_invalidate(void *ctx, struct arena *ar, const char **value, struct err *e)
{
    struct overtaken *o = ctx;

    if (++o->loads == 1) {
        *value = "{\"price\":1}";
        cache_invalidate(o->writer, o->key);
    } else {
        *value = "{\"price\":2}";
    }
    return 0;
}

static void a_load_overtaken_by_an_invalidation_is_not_stored(void **state)
{
    struct config cfg;
    struct err e;
    char prefix[128];
    struct arena ar = ARENA_INIT;
    const char *value;

    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(config_parse_redis_url(&cfg, h.redis_url, &e), 0);
    struct redis_options ro = {.host = cfg.redis_host,
                               .port = cfg.redis_port,
                               .db = cfg.redis_db,
                               .size = 4,
                               .timeout_ms = 1000};
    struct redis_pool *pool = redis_pool_new(&ro);
    snprintf(prefix, sizeof(prefix), "%s:in-process:", h.db_name);
    struct cache_options co = {"product",
                               prefix,
                               60000,
                               {METRIC_CACHE_PRODUCT_HITS, METRIC_CACHE_PRODUCT_MISSES,
                                METRIC_CACHE_PRODUCT_LOADS, METRIC_CACHE_PRODUCT_ERRORS}};
    struct cache *reader = cache_new(pool, &co), *writer = cache_new(pool, &co);
    struct overtaken o = {writer, "product:1", 0};

    assert_int_equal(cache_get(reader, o.key, load_then_invalidate, &o, &ar, &value, &e), 0);
    assert_string_equal(value, "{\"price\":1}");
    /* The next read through either cache loads again and sees the write... */
    assert_int_equal(cache_get(reader, o.key, load_then_invalidate, &o, &ar, &value, &e), 0);
    assert_string_equal(value, "{\"price\":2}");
    assert_int_equal(o.loads, 2);
    /* ...and that load, not overtaken, is stored: a hit, with no third load. */
    assert_int_equal(cache_get(writer, o.key, load_then_invalidate, &o, &ar, &value, &e), 0);
    assert_string_equal(value, "{\"price\":2}");
    assert_int_equal(o.loads, 2);
    cache_free(reader);
    cache_free(writer);
    redis_pool_free(pool);
    arena_release(&ar);
}

/*
 * A read that begins after a write's response must not be handed the value of a load that began
 * before it. Thread 1 misses and loads; while it is in "MariaDB", another process (the second
 * cache) commits and invalidates; then thread 2 of the first process misses and waits on the
 * same key. Thread 1 may answer with what it read, but thread 2 began after the write.
 */
struct held_load {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool loading, release;
    int loads;
};

static int held_loader(void *ctx, struct arena *ar, const char **value, struct err *e)
{
    struct held_load *l = ctx;

    pthread_mutex_lock(&l->lock);
    if (++l->loads == 1) {
        l->loading = true;
        pthread_cond_broadcast(&l->cond);
        while (!l->release)
            pthread_cond_wait(&l->cond, &l->lock);
        *value = "{\"price\":1}";
    } else {
        *value = "{\"price\":2}";
    }
    pthread_mutex_unlock(&l->lock);
    return 0;
}

struct held_reader {
    struct cache *cache;
    struct held_load *load;
    atomic_long tid;
    atomic_bool done;
    char value[32];
};

static void *held_reader(void *arg)
{
    struct held_reader *r = arg;
    struct arena ar = ARENA_INIT;
    struct err e;
    const char *value = NULL;

    atomic_store(&r->tid, (long)syscall(SYS_gettid));
    if (!cache_get(r->cache, "product:7", held_loader, r->load, &ar, &value, &e))
        snprintf(r->value, sizeof(r->value), "%s", value);
    arena_release(&ar);
    atomic_store(&r->done, true);
    return NULL;
}

static bool load_in_progress(void *arg)
{
    struct held_load *l = arg;

    pthread_mutex_lock(&l->lock);
    bool loading = l->loading;
    pthread_mutex_unlock(&l->lock);
    return loading;
}

struct second_reader_wait {
    struct held_reader *reader;
    uint64_t misses_before;
};

/*
 * Thread 2 has missed and now waits (asleep on a futex, or polling the lease with sleeps), or it
 * has already finished without waiting for thread 1.
 */
static bool second_reader_waits(void *arg)
{
    struct second_reader_wait *w = arg;
    char path[64], line[64] = "";
    long tid = atomic_load(&w->reader->tid);

    if (atomic_load(&w->reader->done))
        return true;
    if (!tid || metrics_get(METRIC_CACHE_PRODUCT_MISSES) <= w->misses_before)
        return false;
    snprintf(path, sizeof(path), "/proc/self/task/%ld/syscall", tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool got = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    long nr = got && line[0] != 'r' ? strtol(line, NULL, 10) : -1;
    return nr == SYS_futex || nr == SYS_nanosleep || nr == SYS_clock_nanosleep;
}

static void a_read_after_an_invalidation_does_not_get_an_older_load(void **state)
{
    struct config cfg;
    struct err e;
    char prefix[128];
    struct held_load load = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false, 0};
    pthread_t t1, t2;

    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(config_parse_redis_url(&cfg, h.redis_url, &e), 0);
    struct redis_options ro = {.host = cfg.redis_host,
                               .port = cfg.redis_port,
                               .db = cfg.redis_db,
                               .size = 4,
                               .timeout_ms = 1000};
    struct redis_pool *pool = redis_pool_new(&ro);
    snprintf(prefix, sizeof(prefix), "%s:in-process-2:", h.db_name);
    struct cache_options co = {"product",
                               prefix,
                               60000,
                               {METRIC_CACHE_PRODUCT_HITS, METRIC_CACHE_PRODUCT_MISSES,
                                METRIC_CACHE_PRODUCT_LOADS, METRIC_CACHE_PRODUCT_ERRORS}};
    struct cache *process = cache_new(pool, &co), *other_process = cache_new(pool, &co);
    struct held_reader first = {process, &load, 0, false, ""},
                       second = {process, &load, 0, false, ""};

    pthread_create(&t1, NULL, held_reader, &first);
    assert_true(harness_wait_for(load_in_progress, &load, 10000));
    cache_invalidate(other_process, "product:7"); /* the write's response goes out now */
    struct second_reader_wait w = {&second, metrics_get(METRIC_CACHE_PRODUCT_MISSES)};
    pthread_create(&t2, NULL, held_reader, &second);
    bool waited = harness_wait_for(second_reader_waits, &w, 10000);
    pthread_mutex_lock(&load.lock);
    load.release = true;
    pthread_cond_broadcast(&load.cond);
    pthread_mutex_unlock(&load.lock);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    cache_free(process);
    cache_free(other_process);
    redis_pool_free(pool);

    assert_true(waited);
    assert_string_equal(first.value, "{\"price\":1}");
    if (strcmp(second.value, "{\"price\":2}"))
        fail_msg("the read that began after the invalidation got %s, the value loaded before it",
                 second.value);
}

/* ---- the cache: stampede ---- */

#define STAMPEDE_THREADS 200

struct stampede_worker {
    const struct harness_server *server;
    int64_t id;
    long status;
    char *body;
};

static pthread_barrier_t stampede_barrier;

static void *stampede_worker(void *arg)
{
    struct stampede_worker *w = arg;
    struct http_client c;
    struct http_result r;
    char url[160];

    snprintf(url, sizeof(url), "%s/api/products/%lld", w->server->url, (long long)w->id);
    http_client_init(&c);
    pthread_barrier_wait(&stampede_barrier);
    w->status = http_do(&c, "GET", url, NULL, NULL, NULL, 0, NULL, &r) ? -1 : r.status;
    w->body = strdup(r.body);
    http_result_free(&r);
    http_client_release(&c);
    return NULL;
}

static void cold_product_read_200_times_is_loaded_at_most_twice(void **state)
{
    struct stampede_worker workers[STAMPEDE_THREADS];
    pthread_t threads[STAMPEDE_THREADS];
    int64_t id = new_product("Cold", 4242, 42);
    int64_t loads_a = cache_metric(&a, "loads", "product");
    int64_t loads_b = cache_metric(&b, "loads", "product");
    int wrong = 0;

    pthread_barrier_init(&stampede_barrier, NULL, STAMPEDE_THREADS);
    for (int t = 0; t < STAMPEDE_THREADS; t++) {
        workers[t] = (struct stampede_worker){t % 2 ? &a : &b, id, 0, NULL};
        pthread_create(&threads[t], NULL, stampede_worker, &workers[t]);
    }
    for (int t = 0; t < STAMPEDE_THREADS; t++)
        pthread_join(threads[t], NULL);
    pthread_barrier_destroy(&stampede_barrier);
    for (int t = 0; t < STAMPEDE_THREADS; t++) {
        json_t *p = json_loads(workers[t].body, 0, NULL);
        if (workers[t].status != 200 || !p ||
            json_integer_value(json_object_get(p, "price")) != 4242 ||
            json_integer_value(json_object_get(p, "stock")) != 42 ||
            json_integer_value(json_object_get(p, "productId")) != id) {
            if (!wrong)
                fprintf(stderr, "worker %d: status %ld: %s\n", t, workers[t].status,
                        workers[t].body);
            wrong++;
        }
        json_decref(p);
        free(workers[t].body);
    }
    assert_int_equal(wrong, 0);
    int64_t loads = cache_metric(&a, "loads", "product") - loads_a +
                    cache_metric(&b, "loads", "product") - loads_b;
    printf("stampede: %lld load(s) from MariaDB for %d reads\n", (long long)loads,
           STAMPEDE_THREADS);
    assert_true(loads <= 2);
}

/* ---- issue 11: path ids, problem details, the negative cache, the cart's line limit ---- */

/* A 404 NOT_FOUND problem for GET path through a, with a body that is valid JSON. */
static void expect_no_route(const char *path)
{
    struct http_result r;
    char url[512], ct[128];
    json_error_t jerr;

    snprintf(url, sizeof(url), "%s%s", a.url, path);
    assert_int_equal(http_do(&it_client, "GET", url, NULL, NULL, NULL, 0, NULL, &r), 0);
    if (r.status != 404)
        fail_msg("GET %s: status %ld, want 404", path, r.status);
    assert_non_null(http_header(&r, "Content-Type", ct, sizeof(ct)));
    assert_string_equal(ct, "application/problem+json");
    json_t *body = json_loadb(r.body, r.len, 0, &jerr);
    if (!body)
        fail_msg("GET %s: the problem is not valid JSON: %s", path, jerr.text);
    assert_string_equal(jstr(body, "code"), "NOT_FOUND");
    json_decref(body);
    http_result_free(&r);
}

/* API.md: a path id is a positive 64-bit decimal in canonical form; "%31", "007" and "7%00x"
 * are not product 7 (an HTTP library may decode the path; the router sees the raw one). */
static void path_ids_have_one_spelling(void **state)
{
    int64_t id = new_product("One spelling", 700, 7);
    char path[128], enc[64];
    size_t n = 0;

    snprintf(path, sizeof(path), "%lld", (long long)id);
    for (const char *d = path; *d; d++)
        n += (size_t)snprintf(enc + n, sizeof(enc) - n, "%%%02X", (unsigned char)*d);
    expect_product(&a, id, "One spelling", "", 700, 7);
    const char *const forms[] = {"0", "00", "+", ""};
    const char *const tails[] = {"", "", "", "%00x", "%00"};
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        snprintf(path, sizeof(path), "/api/products/%s%lld", forms[i], (long long)id);
        if (i < 3)
            expect_no_route(path);
    }
    for (size_t i = 3; i < sizeof(tails) / sizeof(tails[0]); i++) {
        snprintf(path, sizeof(path), "/api/products/%lld%s", (long long)id, tails[i]);
        expect_no_route(path);
    }
    snprintf(path, sizeof(path), "/api/products/%s", enc);
    expect_no_route(path);
    expect_no_route("/api/products/%31");
    expect_no_route("/api/products/007");
    expect_no_route("/api/products/7%00x");
    /* The same for a route that needs a token: 404 before any authentication. */
    snprintf(path, sizeof(path), "/api/users/0%lld/balance", (long long)id);
    expect_no_route(path);
}

/* Problem details are valid UTF-8 JSON whatever the request held: raw bytes that are not UTF-8
 * in the path, and a long path of 3-byte characters whose detail is cut at 192 bytes. */
static void problem_details_are_valid_json_whatever_the_path(void **state)
{
    char path[700];
    size_t n = (size_t)snprintf(path, sizeof(path), "/api/");

    expect_no_route("/api/\xff\xfe\xc0\xaf");
    expect_no_route("/api/products/1\xed\xa0\x80");
    for (int shift = 0; shift < 3; shift++) {
        size_t m = n;
        for (int k = 0; k < shift; k++)
            path[m++] = 'x';
        while (m + 4 < sizeof(path)) {
            memcpy(path + m, "\xed\x95\x9c", 3); /* U+D55C, raw */
            m += 3;
        }
        path[m] = '\0';
        expect_no_route(path);
    }
    for (int shift = 0; shift < 9; shift++) {
        size_t m = n;
        for (int k = 0; k < shift; k++)
            path[m++] = 'y';
        while (m + 10 < sizeof(path)) {
            memcpy(path + m, "%ED%95%9C", 9); /* the same, percent-encoded */
            m += 9;
        }
        path[m] = '\0';
        expect_no_route(path);
    }
}

/* A CR/LF decoded from the path was written raw into the access log, forging a line. */
static void access_log_cannot_be_forged_through_the_path(void **state)
{
    char line[2048];

    expect_no_route("/api/x%0d%0a2026-01-01T00:00:00Z%20access%20rid=forged-by-path");
    expect_no_route("/api/x%0D%0Aforged-by-path-2");
    /* The access line is written after the response: wait for the second one. */
    for (int tries = 0; tries < 200; tries++) {
        FILE *f = fopen(a.log_path, "r");
        bool seen = false;
        assert_non_null(f);
        while (fgets(line, sizeof(line), f)) {
            if (!strncmp(line, "forged-by-path", 14) || strstr(line, "Z access rid=forged"))
                fail_msg("a forged line is in the log: %s", line);
            seen = seen || strstr(line, "forged-by-path-2");
        }
        fclose(f);
        if (seen)
            return;
        usleep(10000);
    }
    fail_msg("the access line of the request is not in %s", a.log_path);
}

/* Unknown ids are cached as missing: repeated reads of one cost one load from MariaDB, not
 * one each. A product created with an id whose absence was cached is found at once, through
 * both processes (creation invalidates it; ids come from AUTO_INCREMENT and can be guessed). */
static void unknown_products_are_cached_as_missing_until_created(void **state)
{
    static const char sql_next_id[] = "SELECT COALESCE(MAX(id), 0) + ? FROM products";
    int64_t next = harness_sql_int(&h, sql_next_id, 1, (int64_t)1);
    int64_t far = next + 1000000;
    json_t *p;

    assert_true(next > 0);
    int64_t misses = cache_metric(&a, "misses", "product");
    int64_t loads = cache_metric(&a, "loads", "product");
    int64_t hits = cache_metric(&a, "hits", "product");
    for (int i = 0; i < 20; i++)
        assert_int_equal(it_call(&a, "GET", NULL, NULL, NULL, "/api/products/%lld", (long long)far),
                         404);
    assert_int_equal(cache_metric(&a, "loads", "product") - loads, 1);
    assert_int_equal(cache_metric(&a, "misses", "product") - misses, 1);
    assert_int_equal(cache_metric(&a, "hits", "product") - hits, 19);
    assert_int_equal(it_call(&a, "GET", NULL, NULL, &p, "/api/products/%lld", (long long)far), 404);
    assert_string_equal(jstr(p, "code"), "PRODUCT_NOT_FOUND");
    json_decref(p);

    /* The next few ids, missing, cached in both processes... */
    for (int64_t id = next; id < next + 3; id++) {
        assert_int_equal(it_call(&a, "GET", NULL, NULL, NULL, "/api/products/%lld", (long long)id),
                         404);
        assert_int_equal(it_call(&b, "GET", NULL, NULL, NULL, "/api/products/%lld", (long long)id),
                         404);
    }
    /* ...then created: the new product is found at once through either. */
    int64_t created = new_product("Once missing", 1234, 5);
    assert_true(created >= next && created < next + 3);
    expect_product(&b, created, "Once missing", "", 1234, 5);
    expect_product(&a, created, "Once missing", "", 1234, 5);
}

#define CART_LIMIT 100

/* Fills a new user's cart with n distinct new products; ids[] gets them. */
static int64_t filled_cart(int n, int64_t *ids, char **token)
{
    int64_t user = new_user("Full cart");

    *token = harness_token(&h, user);
    for (int i = 0; i < n; i++) {
        ids[i] = new_product("Line", 10, 1);
        if (cart_add(&a, user, *token, ids[i], 1, NULL) != 200)
            fail_msg("adding line %d failed", i + 1);
    }
    return user;
}

static void expect_cart_full(long status, json_t *body)
{
    assert_int_equal(status, 409);
    assert_string_equal(jstr(body, "code"), "CART_FULL");
    json_decref(body);
}

/* API.md: a cart holds at most 100 lines; a 101st distinct product is 409 CART_FULL, by POST
 * or PUT, while more of a product already there is still accepted. */
static void cart_holds_at_most_100_lines(void **state)
{
    int64_t ids[CART_LIMIT + 1];
    char *token;
    json_t *body;
    int64_t user = filled_cart(CART_LIMIT, ids, &token);
    int64_t extra = new_product("One too many", 10, 1);

    assert_int_equal(sql1(sql_cart_lines, user), CART_LIMIT);
    long status = cart_add(&a, user, token, extra, 1, &body);
    expect_cart_full(status, body);
    status = cart_put(&b, user, token, extra, 3, &body);
    expect_cart_full(status, body);
    assert_int_equal(sql1(sql_cart_lines, user), CART_LIMIT);
    assert_int_equal(cart_add(&a, user, token, ids[5], 2, NULL), 200);
    assert_int_equal(sql2(sql_cart_qty, user, ids[5]), 3);
    assert_int_equal(cart_put(&a, user, token, ids[7], 9, NULL), 200);
    assert_int_equal(cart_put(&a, user, token, extra, 0, NULL), 200); /* removes nothing */
    /* A line removed makes room for one. */
    assert_int_equal(it_call(&a, "DELETE", token, NULL, NULL, "/api/users/%lld/cart/items/%lld",
                             (long long)user, (long long)ids[0]),
                     200);
    assert_int_equal(cart_add(&b, user, token, extra, 1, NULL), 200);
    assert_int_equal(sql1(sql_cart_lines, user), CART_LIMIT);
    json_t *cart = get_cart(&a, user, token);
    assert_int_equal(cart_size(cart), CART_LIMIT);
    json_decref(cart);
    free(token);
}

#define FULL_RACERS 8

struct full_racer {
    const struct harness_server *server;
    int64_t user, product;
    const char *token;
    long status;
    char code[32];
};

static pthread_barrier_t full_barrier;

static void *full_racer(void *arg)
{
    struct full_racer *w = arg;
    struct http_client c;
    struct http_result r;
    char url[160], body[96];

    snprintf(url, sizeof(url), "%s/api/users/%lld/cart/items", w->server->url, (long long)w->user);
    snprintf(body, sizeof(body), "{\"productId\":%lld,\"quantity\":1}", (long long)w->product);
    http_client_init(&c);
    pthread_barrier_wait(&full_barrier);
    if (http_do(&c, "POST", url, w->token, "application/json", body, strlen(body), NULL, &r)) {
        w->status = -1;
    } else {
        w->status = r.status;
        json_t *j = json_loadb(r.body, r.len, 0, NULL);
        snprintf(w->code, sizeof(w->code), "%s", j && jstr(j, "code") ? jstr(j, "code") : "");
        json_decref(j);
    }
    http_result_free(&r);
    http_client_release(&c);
    return NULL;
}

/* With 99 lines, concurrent adds of distinct new products through both processes: exactly one
 * gets the 100th line, every other answer is CART_FULL, and the cart never passes 100. */
static void concurrent_adds_never_pass_100_lines(void **state)
{
    int64_t ids[CART_LIMIT];
    struct full_racer w[FULL_RACERS];
    pthread_t threads[FULL_RACERS];
    char *token;

    for (int round = 0; round < 2; round++) {
        int64_t user = filled_cart(CART_LIMIT - 1, ids, &token);
        int ok = 0, full = 0;
        pthread_barrier_init(&full_barrier, NULL, FULL_RACERS);
        for (int i = 0; i < FULL_RACERS; i++) {
            w[i] = (struct full_racer){i % 2 ? &a : &b, user, new_product("Racer", 10, 1),
                                       token,           0,    ""};
            assert_int_equal(pthread_create(&threads[i], NULL, full_racer, &w[i]), 0);
        }
        for (int i = 0; i < FULL_RACERS; i++)
            pthread_join(threads[i], NULL);
        pthread_barrier_destroy(&full_barrier);
        for (int i = 0; i < FULL_RACERS; i++) {
            if (w[i].status == 200)
                ok++;
            else if (w[i].status == 409 && !strcmp(w[i].code, "CART_FULL"))
                full++;
            else
                fail_msg("racer %d: status %ld code %s", i, w[i].status, w[i].code);
        }
        assert_int_equal(ok, 1);
        assert_int_equal(full, FULL_RACERS - 1);
        assert_int_equal(sql1(sql_cart_lines, user), CART_LIMIT);
        free(token);
    }
}

/* ---- metrics ---- */

static void cache_metrics_are_exported(void **state)
{
    static const char *const counters[] = {"hits", "misses", "loads", "errors"};
    static const char *const caches[] = {"product", "cart", "top"};

    for (size_t i = 0; i < 4; i++)
        for (size_t k = 0; k < 3; k++)
            assert_true(cache_metric(&b, counters[i], caches[k]) >= 0);
}

/* ---- bad input ---- */

enum who { NOBODY, OWNER, OTHER, FORGED, ADMIN };

struct bad_case {
    const char *name;
    const char *method;
    const char *path; /* {u} is the user's id, {p} the product's */
    enum who token;
    const char *content_type;
    const char *body;
    long status;
    const char *code;
    const char *field; /* the 400's detail names it */
    const char *allow; /* the 405's Allow header lists these, space-separated */
};

#define JSON "application/json"
#define NEW  "/api/admin/products"
#define EDIT "/api/admin/products/{p}"
#define ONE  "/api/products/{p}"
#define TOP  "/api/products/top"
#define CART "/api/users/{u}/cart"
#define ADD  "/api/users/{u}/cart/items"
#define LINE "/api/users/{u}/cart/items/{p}"

/* clang-format off */
static const struct bad_case bad_cases[] = {
    /* POST /api/admin/products */
    {"create: malformed json", "POST", NEW, ADMIN, JSON, "{\"name\":", 400, "INVALID_INPUT", NULL, NULL},
    {"create: not an object", "POST", NEW, ADMIN, JSON, "[1]", 400, "INVALID_INPUT", NULL, NULL},
    {"create: empty body", "POST", NEW, ADMIN, JSON, "", 400, "INVALID_INPUT", NULL, NULL},
    {"create: name missing", "POST", NEW, ADMIN, JSON, "{\"price\":1,\"stock\":1}", 400, "INVALID_INPUT", "name", NULL},
    {"create: name empty", "POST", NEW, ADMIN, JSON, "{\"name\":\"\",\"price\":1,\"stock\":1}", 400, "INVALID_INPUT", "name", NULL},
    {"create: name 101", "POST", NEW, ADMIN, JSON, "{\"name\":\"" S100 "x\",\"price\":1,\"stock\":1}", 400, "INVALID_INPUT", "name", NULL},
    {"create: name number", "POST", NEW, ADMIN, JSON, "{\"name\":5,\"price\":1,\"stock\":1}", 400, "INVALID_INPUT", "name", NULL},
    {"create: name null", "POST", NEW, ADMIN, JSON, "{\"name\":null,\"price\":1,\"stock\":1}", 400, "INVALID_INPUT", "name", NULL},
    {"create: description 1001", "POST", NEW, ADMIN, JSON, "{\"name\":\"x\",\"description\":\"" S1000 "x\",\"price\":1,\"stock\":1}", 400, "INVALID_INPUT", "description", NULL},
    {"create: description number", "POST", NEW, ADMIN, JSON, "{\"name\":\"x\",\"description\":1,\"price\":1,\"stock\":1}", 400, "INVALID_INPUT", "description", NULL},
    {"create: price missing", "POST", NEW, ADMIN, JSON, "{\"name\":\"x\",\"stock\":1}", 400, "INVALID_INPUT", "price", NULL},
    {"create: price negative", "POST", NEW, ADMIN, JSON, "{\"name\":\"x\",\"price\":-1,\"stock\":1}", 400, "INVALID_INPUT", "price", NULL},
    {"create: price over 1e9", "POST", NEW, ADMIN, JSON, "{\"name\":\"x\",\"price\":1000000001,\"stock\":1}", 400, "INVALID_INPUT", "price", NULL},
    {"create: price string", "POST", NEW, ADMIN, JSON, "{\"name\":\"x\",\"price\":\"1\",\"stock\":1}", 400, "INVALID_INPUT", "price", NULL},
    {"create: price float", "POST", NEW, ADMIN, JSON, "{\"name\":\"x\",\"price\":1.5,\"stock\":1}", 400, "INVALID_INPUT", "price", NULL},
    {"create: price huge", "POST", NEW, ADMIN, JSON, "{\"name\":\"x\",\"price\":99999999999999999999999,\"stock\":1}", 400, "INVALID_INPUT", NULL, NULL},
    {"create: stock missing", "POST", NEW, ADMIN, JSON, "{\"name\":\"x\",\"price\":1}", 400, "INVALID_INPUT", "stock", NULL},
    {"create: stock negative", "POST", NEW, ADMIN, JSON, "{\"name\":\"x\",\"price\":1,\"stock\":-1}", 400, "INVALID_INPUT", "stock", NULL},
    {"create: stock over 1e9", "POST", NEW, ADMIN, JSON, "{\"name\":\"x\",\"price\":1,\"stock\":1000000001}", 400, "INVALID_INPUT", "stock", NULL},
    {"create: stock bool", "POST", NEW, ADMIN, JSON, "{\"name\":\"x\",\"price\":1,\"stock\":true}", 400, "INVALID_INPUT", "stock", NULL},
    {"create: text/plain", "POST", NEW, ADMIN, "text/plain", "{\"name\":\"x\",\"price\":1,\"stock\":1}", 415, "UNSUPPORTED_MEDIA_TYPE", NULL, NULL},
    {"create: no token", "POST", NEW, NOBODY, JSON, "{\"name\":\"x\",\"price\":1,\"stock\":1}", 401, "UNAUTHORIZED", NULL, NULL},
    {"create: forged token", "POST", NEW, FORGED, JSON, "{\"name\":\"x\",\"price\":1,\"stock\":1}", 401, "UNAUTHORIZED", NULL, NULL},
    {"create: user token", "POST", NEW, OWNER, JSON, "{\"name\":\"x\",\"price\":1,\"stock\":1}", 403, "FORBIDDEN", NULL, NULL},
    {"create: GET", "GET", NEW, ADMIN, NULL, NULL, 405, "METHOD_NOT_ALLOWED", NULL, "POST"},
    /* PATCH /api/admin/products/{id} */
    {"patch: malformed json", "PATCH", EDIT, ADMIN, JSON, "{\"price\"", 400, "INVALID_INPUT", NULL, NULL},
    {"patch: not an object", "PATCH", EDIT, ADMIN, JSON, "7", 400, "INVALID_INPUT", NULL, NULL},
    {"patch: name empty", "PATCH", EDIT, ADMIN, JSON, "{\"name\":\"\"}", 400, "INVALID_INPUT", "name", NULL},
    {"patch: name 101", "PATCH", EDIT, ADMIN, JSON, "{\"name\":\"" S100 "x\"}", 400, "INVALID_INPUT", "name", NULL},
    {"patch: name null", "PATCH", EDIT, ADMIN, JSON, "{\"name\":null}", 400, "INVALID_INPUT", "name", NULL},
    {"patch: description 1001", "PATCH", EDIT, ADMIN, JSON, "{\"description\":\"" S1000 "x\"}", 400, "INVALID_INPUT", "description", NULL},
    {"patch: price negative", "PATCH", EDIT, ADMIN, JSON, "{\"price\":-1}", 400, "INVALID_INPUT", "price", NULL},
    {"patch: price over 1e9", "PATCH", EDIT, ADMIN, JSON, "{\"price\":1000000001}", 400, "INVALID_INPUT", "price", NULL},
    {"patch: price string", "PATCH", EDIT, ADMIN, JSON, "{\"price\":\"5\"}", 400, "INVALID_INPUT", "price", NULL},
    {"patch: stock over 1e9", "PATCH", EDIT, ADMIN, JSON, "{\"stock\":1000000001}", 400, "INVALID_INPUT", "stock", NULL},
    {"patch: stock float", "PATCH", EDIT, ADMIN, JSON, "{\"stock\":2.5}", 400, "INVALID_INPUT", "stock", NULL},
    {"patch: good and bad field", "PATCH", EDIT, ADMIN, JSON, "{\"price\":5,\"stock\":-1}", 400, "INVALID_INPUT", "stock", NULL},
    {"patch: text/plain", "PATCH", EDIT, ADMIN, "text/plain", "{\"price\":5}", 415, "UNSUPPORTED_MEDIA_TYPE", NULL, NULL},
    {"patch: no token", "PATCH", EDIT, NOBODY, JSON, "{\"price\":5}", 401, "UNAUTHORIZED", NULL, NULL},
    {"patch: user token", "PATCH", EDIT, OWNER, JSON, "{\"price\":5}", 403, "FORBIDDEN", NULL, NULL},
    {"patch: unknown product", "PATCH", "/api/admin/products/999999999", ADMIN, JSON, "{\"price\":5}", 404, "PRODUCT_NOT_FOUND", NULL, NULL},
    {"patch: id zero", "PATCH", "/api/admin/products/0", ADMIN, JSON, "{\"price\":5}", 404, "NOT_FOUND", NULL, NULL},
    {"patch: id abc", "PATCH", "/api/admin/products/abc", ADMIN, JSON, "{\"price\":5}", 404, "NOT_FOUND", NULL, NULL},
    {"patch: DELETE", "DELETE", EDIT, ADMIN, NULL, NULL, 405, "METHOD_NOT_ALLOWED", NULL, "PATCH"},
    /* GET /api/products, /api/products/{id} */
    {"list: limit 0", "GET", "/api/products?limit=0", NOBODY, NULL, NULL, 400, "INVALID_INPUT", "limit", NULL},
    {"list: limit 101", "GET", "/api/products?limit=101", NOBODY, NULL, NULL, 400, "INVALID_INPUT", "limit", NULL},
    {"list: limit -1", "GET", "/api/products?limit=-1", NOBODY, NULL, NULL, 400, "INVALID_INPUT", "limit", NULL},
    {"list: limit abc", "GET", "/api/products?limit=abc", NOBODY, NULL, NULL, 400, "INVALID_INPUT", "limit", NULL},
    {"list: bad cursor", "GET", "/api/products?cursor=zz", NOBODY, NULL, NULL, 400, "INVALID_INPUT", "cursor", NULL},
    {"list: POST", "POST", "/api/products", ADMIN, JSON, "{}", 405, "METHOD_NOT_ALLOWED", NULL, "GET"},
    {"get: unknown product", "GET", "/api/products/999999999", NOBODY, NULL, NULL, 404, "PRODUCT_NOT_FOUND", NULL, NULL},
    {"get: id zero", "GET", "/api/products/0", NOBODY, NULL, NULL, 404, "NOT_FOUND", NULL, NULL},
    {"get: id abc", "GET", "/api/products/abc", NOBODY, NULL, NULL, 404, "NOT_FOUND", NULL, NULL},
    {"get: id overflows", "GET", "/api/products/9223372036854775808", NOBODY, NULL, NULL, 404, "NOT_FOUND", NULL, NULL},
    {"get: unknown route", "GET", "/api/products/{p}/reviews", NOBODY, NULL, NULL, 404, "NOT_FOUND", NULL, NULL},
    {"get: PATCH", "PATCH", ONE, ADMIN, JSON, "{\"price\":5}", 405, "METHOD_NOT_ALLOWED", NULL, "GET"},
    /* GET /api/products/top */
    {"top: days 0", "GET", TOP "?days=0&limit=5", NOBODY, NULL, NULL, 400, "INVALID_INPUT", "days", NULL},
    {"top: days 31", "GET", TOP "?days=31&limit=5", NOBODY, NULL, NULL, 400, "INVALID_INPUT", "days", NULL},
    {"top: days abc", "GET", TOP "?days=abc&limit=5", NOBODY, NULL, NULL, 400, "INVALID_INPUT", "days", NULL},
    {"top: limit 0", "GET", TOP "?days=3&limit=0", NOBODY, NULL, NULL, 400, "INVALID_INPUT", "limit", NULL},
    {"top: limit 101", "GET", TOP "?days=3&limit=101", NOBODY, NULL, NULL, 400, "INVALID_INPUT", "limit", NULL},
    {"top: POST", "POST", TOP, ADMIN, JSON, "{}", 405, "METHOD_NOT_ALLOWED", NULL, "GET"},
    /* GET /api/users/{id}/cart */
    {"cart: no token", "GET", CART, NOBODY, NULL, NULL, 401, "UNAUTHORIZED", NULL, NULL},
    {"cart: forged token", "GET", CART, FORGED, NULL, NULL, 401, "UNAUTHORIZED", NULL, NULL},
    {"cart: another user's token", "GET", CART, OTHER, NULL, NULL, 403, "FORBIDDEN", NULL, NULL},
    {"cart: unknown user", "GET", "/api/users/999999999/cart", ADMIN, NULL, NULL, 404, "USER_NOT_FOUND", NULL, NULL},
    {"cart: user id zero", "GET", "/api/users/0/cart", ADMIN, NULL, NULL, 404, "NOT_FOUND", NULL, NULL},
    {"cart: DELETE", "DELETE", CART, OWNER, NULL, NULL, 405, "METHOD_NOT_ALLOWED", NULL, "GET"},
    /* POST /api/users/{id}/cart/items */
    {"add: malformed json", "POST", ADD, OWNER, JSON, "{\"productId\":{p},", 400, "INVALID_INPUT", NULL, NULL},
    {"add: not an object", "POST", ADD, OWNER, JSON, "null", 400, "INVALID_INPUT", NULL, NULL},
    {"add: productId missing", "POST", ADD, OWNER, JSON, "{\"quantity\":1}", 400, "INVALID_INPUT", "productId", NULL},
    {"add: productId string", "POST", ADD, OWNER, JSON, "{\"productId\":\"{p}\",\"quantity\":1}", 400, "INVALID_INPUT", "productId", NULL},
    {"add: productId zero", "POST", ADD, OWNER, JSON, "{\"productId\":0,\"quantity\":1}", 400, "INVALID_INPUT", "productId", NULL},
    {"add: quantity missing", "POST", ADD, OWNER, JSON, "{\"productId\":{p}}", 400, "INVALID_INPUT", "quantity", NULL},
    {"add: quantity zero", "POST", ADD, OWNER, JSON, "{\"productId\":{p},\"quantity\":0}", 400, "INVALID_INPUT", "quantity", NULL},
    {"add: quantity negative", "POST", ADD, OWNER, JSON, "{\"productId\":{p},\"quantity\":-2}", 400, "INVALID_INPUT", "quantity", NULL},
    {"add: quantity 1001", "POST", ADD, OWNER, JSON, "{\"productId\":{p},\"quantity\":1001}", 400, "INVALID_INPUT", "quantity", NULL},
    {"add: sum over 1000", "POST", ADD, OWNER, JSON, "{\"productId\":{p},\"quantity\":998}", 400, "INVALID_INPUT", "quantity", NULL},
    {"add: quantity string", "POST", ADD, OWNER, JSON, "{\"productId\":{p},\"quantity\":\"1\"}", 400, "INVALID_INPUT", "quantity", NULL},
    {"add: quantity float", "POST", ADD, OWNER, JSON, "{\"productId\":{p},\"quantity\":1.5}", 400, "INVALID_INPUT", "quantity", NULL},
    {"add: unknown product", "POST", ADD, OWNER, JSON, "{\"productId\":999999999,\"quantity\":1}", 404, "PRODUCT_NOT_FOUND", NULL, NULL},
    {"add: unknown user", "POST", "/api/users/999999999/cart/items", ADMIN, JSON, "{\"productId\":{p},\"quantity\":1}", 404, "USER_NOT_FOUND", NULL, NULL},
    {"add: text/plain", "POST", ADD, OWNER, "text/plain", "{\"productId\":{p},\"quantity\":1}", 415, "UNSUPPORTED_MEDIA_TYPE", NULL, NULL},
    {"add: no token", "POST", ADD, NOBODY, JSON, "{\"productId\":{p},\"quantity\":1}", 401, "UNAUTHORIZED", NULL, NULL},
    {"add: another user's token", "POST", ADD, OTHER, JSON, "{\"productId\":{p},\"quantity\":1}", 403, "FORBIDDEN", NULL, NULL},
    {"add: GET", "GET", ADD, OWNER, NULL, NULL, 405, "METHOD_NOT_ALLOWED", NULL, "POST"},
    /* PUT and DELETE /api/users/{id}/cart/items/{productId} */
    {"put: malformed json", "PUT", LINE, OWNER, JSON, "{quantity:1}", 400, "INVALID_INPUT", NULL, NULL},
    {"put: quantity missing", "PUT", LINE, OWNER, JSON, "{}", 400, "INVALID_INPUT", "quantity", NULL},
    {"put: quantity negative", "PUT", LINE, OWNER, JSON, "{\"quantity\":-1}", 400, "INVALID_INPUT", "quantity", NULL},
    {"put: quantity 1001", "PUT", LINE, OWNER, JSON, "{\"quantity\":1001}", 400, "INVALID_INPUT", "quantity", NULL},
    {"put: quantity null", "PUT", LINE, OWNER, JSON, "{\"quantity\":null}", 400, "INVALID_INPUT", "quantity", NULL},
    {"put: quantity string", "PUT", LINE, OWNER, JSON, "{\"quantity\":\"3\"}", 400, "INVALID_INPUT", "quantity", NULL},
    {"put: unknown product", "PUT", "/api/users/{u}/cart/items/999999999", OWNER, JSON, "{\"quantity\":1}", 404, "PRODUCT_NOT_FOUND", NULL, NULL},
    {"put: product id zero", "PUT", "/api/users/{u}/cart/items/0", OWNER, JSON, "{\"quantity\":1}", 404, "NOT_FOUND", NULL, NULL},
    {"put: product id abc", "PUT", "/api/users/{u}/cart/items/abc", OWNER, JSON, "{\"quantity\":1}", 404, "NOT_FOUND", NULL, NULL},
    {"put: unknown user", "PUT", "/api/users/999999999/cart/items/{p}", ADMIN, JSON, "{\"quantity\":1}", 404, "USER_NOT_FOUND", NULL, NULL},
    {"put: text/plain", "PUT", LINE, OWNER, "text/plain", "{\"quantity\":1}", 415, "UNSUPPORTED_MEDIA_TYPE", NULL, NULL},
    {"put: no token", "PUT", LINE, NOBODY, JSON, "{\"quantity\":1}", 401, "UNAUTHORIZED", NULL, NULL},
    {"put: another user's token", "PUT", LINE, OTHER, JSON, "{\"quantity\":1}", 403, "FORBIDDEN", NULL, NULL},
    {"delete: unknown product", "DELETE", "/api/users/{u}/cart/items/999999999", OWNER, NULL, NULL, 404, "PRODUCT_NOT_FOUND", NULL, NULL},
    {"delete: unknown user", "DELETE", "/api/users/999999999/cart/items/{p}", ADMIN, NULL, NULL, 404, "USER_NOT_FOUND", NULL, NULL},
    {"delete: no token", "DELETE", LINE, NOBODY, NULL, NULL, 401, "UNAUTHORIZED", NULL, NULL},
    {"delete: another user's token", "DELETE", LINE, OTHER, NULL, NULL, 403, "FORBIDDEN", NULL, NULL},
    {"line: POST", "POST", LINE, OWNER, JSON, "{\"quantity\":1}", 405, "METHOD_NOT_ALLOWED", NULL, "PUT DELETE"},
    {"unknown route", "GET", "/api/cart", NOBODY, NULL, NULL, 404, "NOT_FOUND", NULL, NULL},
};
/* clang-format on */

/* Copies in to out with {u} and {p} replaced by the ids. */
static void expand(const char *in, int64_t user, int64_t product, char *out, size_t size)
{
    size_t n = 0;

    for (; *in && n + 24 < size; in++) {
        if (!strncmp(in, "{u}", 3) || !strncmp(in, "{p}", 3)) {
            n += (size_t)snprintf(out + n, size - n, "%lld",
                                  (long long)(in[1] == 'u' ? user : product));
            in += 2;
        } else {
            out[n++] = *in;
        }
    }
    out[n] = '\0';
}

static const char *token_of(enum who who, const char *own, const char *other, const char *forged)
{
    switch (who) {
    case OWNER:
        return own;
    case OTHER:
        return other;
    case FORGED:
        return forged;
    case ADMIN:
        return admin;
    default:
        return NULL;
    }
}

/* The answer is a problem+json with the case's status, code, field and Allow. */
static void check_problem(const struct bad_case *t, const struct http_result *r)
{
    char header[128];

    if (r->status != t->status)
        fail_msg("%s: status %ld, want %ld: %s", t->name, r->status, t->status, r->body);
    json_t *j = parse_body(r->body);
    if (!jstr(j, "code") || strcmp(jstr(j, "code"), t->code))
        fail_msg("%s: code %s, want %s", t->name, jstr(j, "code"), t->code);
    assert_int_equal(jint(j, "status"), t->status);
    assert_string_equal(jstr(j, "type"), "about:blank");
    assert_non_null(jstr(j, "title"));
    assert_non_null(jstr(j, "detail"));
    if (t->field && !strstr(jstr(j, "detail"), t->field))
        fail_msg("%s: detail '%s' does not name %s", t->name, jstr(j, "detail"), t->field);
    assert_non_null(http_header(r, "Content-Type", header, sizeof(header)));
    assert_string_equal(header, "application/problem+json");
    if (t->status == 401)
        assert_non_null(http_header(r, "WWW-Authenticate", header, sizeof(header)));
    if (t->allow) {
        char want[64], *save = NULL;
        if (!http_header(r, "Allow", header, sizeof(header)))
            fail_msg("%s: no Allow header", t->name);
        snprintf(want, sizeof(want), "%s", t->allow);
        for (char *m = strtok_r(want, " ", &save); m; m = strtok_r(NULL, " ", &save))
            if (!strstr(header, m))
                fail_msg("%s: Allow '%s' lacks %s", t->name, header, m);
    }
    json_decref(j);
}

static void bad_inputs_change_nothing(void **state)
{
    int64_t p = new_product("Untouchable", 777, 7);
    int64_t user = new_user("Bad Input"), other = new_user("Other");
    char *own = harness_token(&h, user), *other_token = harness_token(&h, other);
    struct err e;
    char *forged = auth_issue("not-the-secret", user, true, 0, 0, &e);
    char path[256], url[400], body[1200];
    json_t *cart;

    assert_int_equal(cart_add(&a, user, own, p, 3, &cart), 200);
    json_decref(cart);
    int64_t products = sql1(sql_product_count, 0);
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *t = &bad_cases[i];
        struct http_result r;
        expand(t->path, user, p, path, sizeof(path));
        snprintf(url, sizeof(url), "%s%s", i % 2 ? a.url : b.url, path);
        if (t->body)
            expand(t->body, user, p, body, sizeof(body));
        assert_int_equal(http_do(&it_client, t->method, url,
                                 token_of(t->token, own, other_token, forged), t->content_type,
                                 t->body ? body : NULL, t->body ? strlen(body) : 0, NULL, &r),
                         0);
        check_problem(t, &r);
        http_result_free(&r);
    }
    /* Nothing changed: no product, no field, no cart line. */
    assert_int_equal(sql1(sql_product_count, 0), products);
    assert_int_equal(sql1(sql_price, p), 777);
    assert_int_equal(sql1(sql_stock, p), 7);
    assert_int_equal(sql1(sql_name_len, p), 11);
    assert_int_equal(sql1(sql_cart_lines, user), 1);
    assert_int_equal(sql2(sql_cart_qty, user, p), 3);
    assert_int_equal(sql1(sql_cart_lines, other), 0);
    expect_product(&b, p, "Untouchable", "", 777, 7);
    cart = get_cart(&b, user, own);
    assert_int_equal(cart_size(cart), 1);
    assert_line(cart, 0, p, "Untouchable", 777, 3, true);
    json_decref(cart);
    free(own);
    free(other_token);
    free(forged);
}

static void oversized_bodies_are_413(void **state)
{
    static const char *const paths[] = {"/api/admin/products", "/api/admin/products/{p}",
                                        "/api/users/{u}/cart/items",
                                        "/api/users/{u}/cart/items/{p}"};
    static const char *const methods[] = {"POST", "PATCH", "POST", "PUT"};
    int64_t p = new_product("Big Body", 1, 1);
    int64_t user = new_user("Big Body");
    size_t big_len = 200 * 1024;
    char *big = malloc(big_len);
    char path[256], url[400];

    memset(big, ' ', big_len);
    big[0] = '{';
    big[big_len - 1] = '}';
    for (size_t i = 0; i < 4; i++) {
        struct http_result r;
        expand(paths[i], user, p, path, sizeof(path));
        snprintf(url, sizeof(url), "%s%s", a.url, path);
        assert_int_equal(
            http_do(&it_client, methods[i], url, admin, "application/json", big, big_len, NULL, &r),
            0);
        if (r.status != 413 || !strstr(r.body, "PAYLOAD_TOO_LARGE"))
            fail_msg("%s %s: status %ld: %s", methods[i], paths[i], r.status, r.body);
        http_result_free(&r);
    }
    free(big);
    expect_product(&b, p, "Big Body", "", 1, 1);
    assert_int_equal(sql1(sql_cart_lines, user), 0);
}

/* ---- cache_get_many: the never-stale rule per key, and one loader for a stampede ---- */

static struct cache *batch_cache(struct redis_pool **pool, const char *name)
{
    struct config cfg;
    struct err e;
    char prefix[128];

    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(config_parse_redis_url(&cfg, h.redis_url, &e), 0);
    struct redis_options ro = {.host = cfg.redis_host,
                               .port = cfg.redis_port,
                               .db = cfg.redis_db,
                               .size = 32,
                               .timeout_ms = 1000};
    *pool = redis_pool_new(&ro);
    snprintf(prefix, sizeof(prefix), "%s:%s:", h.db_name, name);
    struct cache_options co = {"product",
                               prefix,
                               60000,
                               {METRIC_CACHE_PRODUCT_HITS, METRIC_CACHE_PRODUCT_MISSES,
                                METRIC_CACHE_PRODUCT_LOADS, METRIC_CACHE_PRODUCT_ERRORS}};
    return cache_new(*pool, &co);
}

struct many_load {
    struct cache *writer; /* invalidates keys[victim] during the first load, when set */
    const char *const *keys;
    size_t victim;
    atomic_int calls;
    atomic_int values; /* keys loaded, over all calls */
    int version;
    int sleep_ms;
};

static int load_many(void *ctx, size_t n, const size_t *which, struct arena *ar,
                     const char **values, struct err *e)
{
    struct many_load *l = ctx;
    int call = atomic_fetch_add(&l->calls, 1);

    atomic_fetch_add(&l->values, (int)n);
    if (l->sleep_ms) {
        struct timespec ts = {0, l->sleep_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
    for (size_t j = 0; j < n; j++)
        values[which[j]] = arena_printf(ar, "{\"key\":%zu,\"v\":%d}", which[j], l->version);
    if (call == 0 && l->writer)
        cache_invalidate(l->writer, l->keys[l->victim]); /* a write committed meanwhile */
    return 0;
}

/* A batch load overtaken by an invalidation of one of its keys stores the others only. */
static void a_batch_load_overtaken_on_one_key_stores_the_others(void **state)
{
    static const char *const keys[] = {"product:1", "product:2", "product:3", "product:4"};
    struct redis_pool *pool, *pool2;
    struct cache *reader = batch_cache(&pool, "batch-1");
    struct cache *writer = batch_cache(&pool2, "batch-1"); /* another process, as it were */
    struct arena ar = ARENA_INIT;
    const char *values[4];
    struct err e;

    struct many_load l = {writer, keys, 2, 0, 0, 1, 0};
    assert_int_equal(cache_get_many(reader, 4, keys, load_many, &l, &ar, values, &e), 0);
    assert_string_equal(values[2], "{\"key\":2,\"v\":1}");
    l.version = 2;
    assert_int_equal(cache_get_many(reader, 4, keys, load_many, &l, &ar, values, &e), 0);
    /* Only the invalidated key was loaded again, and it shows the write. */
    assert_int_equal(atomic_load(&l.calls), 2);
    assert_int_equal(atomic_load(&l.values), 5);
    assert_string_equal(values[0], "{\"key\":0,\"v\":1}");
    assert_string_equal(values[2], "{\"key\":2,\"v\":2}");
    assert_string_equal(values[3], "{\"key\":3,\"v\":1}");
    /* Now every key is stored: a batch of hits through the other cache, no load. */
    assert_int_equal(cache_get_many(writer, 4, keys, load_many, &l, &ar, values, &e), 0);
    assert_int_equal(atomic_load(&l.calls), 2);
    assert_string_equal(values[2], "{\"key\":2,\"v\":2}");
    cache_free(reader);
    cache_free(writer);
    redis_pool_free(pool);
    redis_pool_free(pool2);
    arena_release(&ar);
}

#define BATCH_READERS 16
#define BATCH_KEYS    50

struct stampede_reader {
    struct cache *cache;
    const char *const *keys;
    struct many_load *load;
    pthread_barrier_t *barrier;
    int ok;
};

static void *stampede_reader(void *arg)
{
    struct stampede_reader *r = arg;
    struct arena ar = ARENA_INIT;
    const char *values[BATCH_KEYS];
    struct err e;

    pthread_barrier_wait(r->barrier);
    if (!cache_get_many(r->cache, BATCH_KEYS, r->keys, load_many, r->load, &ar, values, &e)) {
        r->ok = 1;
        for (size_t i = 0; i < BATCH_KEYS; i++) {
            char want[48];
            snprintf(want, sizeof(want), "{\"key\":%zu,\"v\":1}", i);
            if (!values[i] || strcmp(values[i], want))
                r->ok = 0;
        }
    }
    arena_release(&ar);
    return NULL;
}

/* 16 threads read the same 50 cold keys at once: the leases make one of them the loader. */
static void a_cold_batch_read_by_16_threads_is_loaded_once(void **state)
{
    struct redis_pool *pool;
    struct cache *c = batch_cache(&pool, "batch-stampede");
    const char *keys[BATCH_KEYS];
    char names[BATCH_KEYS][32];
    struct many_load l = {NULL, keys, 0, 0, 0, 1, 50};
    struct stampede_reader r[BATCH_READERS];
    pthread_t t[BATCH_READERS];
    pthread_barrier_t barrier;

    for (size_t i = 0; i < BATCH_KEYS; i++) {
        snprintf(names[i], sizeof(names[i]), "product:%zu", i);
        keys[i] = names[i];
    }
    pthread_barrier_init(&barrier, NULL, BATCH_READERS);
    for (int i = 0; i < BATCH_READERS; i++) {
        r[i] = (struct stampede_reader){c, keys, &l, &barrier, 0};
        pthread_create(&t[i], NULL, stampede_reader, &r[i]);
    }
    for (int i = 0; i < BATCH_READERS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&barrier);
    for (int i = 0; i < BATCH_READERS; i++)
        assert_int_equal(r[i].ok, 1);
    printf("batch stampede: %d load call(s), %d values, for %d reads of %d keys\n",
           atomic_load(&l.calls), atomic_load(&l.values), BATCH_READERS, BATCH_KEYS);
    assert_int_equal(atomic_load(&l.calls), 1);
    assert_int_equal(atomic_load(&l.values), BATCH_KEYS);
    cache_free(c);
    redis_pool_free(pool);
}

/* ---- a cart's products in one batch ---- */

static const char sql_put_line[] =
    "INSERT INTO cart_items (user_id, product_id, quantity, updated_at) VALUES (?, ?, ?, ?)";

/* A metric of s that must be there. */
static int64_t metric(const struct harness_server *s, const char *series)
{
    int64_t v = harness_metric(s, series);
    if (v < 0)
        fail_msg("%s is not in %s/metrics", series, s->url);
    return v;
}

#define ROUND_TRIPS     "shopd_cache_redis_round_trips_total"
#define PRODUCT_SELECTS "shopd_db_product_selects_total"

struct batch_cart {
    int64_t user;
    char *token;
    int64_t ids[CART_LIMIT];
    size_t n;
};

static struct batch_cart big; /* the catalog group's cart of 100 lines */

/*
 * n new products of varied names, prices and stock (some below the line's quantity) through
 * s, put into a new user's cart straight in MariaDB: neither the products nor the cart have
 * been read through a server yet, so both caches are cold for them.
 */
static void batch_cart_make(struct batch_cart *bc, const struct harness_server *s, size_t n)
{
    struct db_conn *c;
    struct err e;
    char name[48];

    bc->user = harness_create_user(&h, s, "Batch cart");
    assert_true(bc->user > 0);
    bc->token = harness_token(&h, bc->user);
    bc->n = n;
    assert_int_equal(db_acquire(h.pool, &c, &e), 0);
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "Batch %zu 상품", i);
        bc->ids[i] = harness_create_product(&h, s, name, 100 + (int64_t)i * 7, (int64_t)(i % 4));
        assert_true(bc->ids[i] > 0);
        struct db_val p[] = {DB_INT(bc->user), DB_INT(bc->ids[i]), DB_INT(1 + i % 3),
                             DB_TIME(clock_now_us())};
        assert_int_equal(db_exec(c, sql_put_line, p, 4, NULL, NULL, &e), 0);
    }
    db_release(h.pool, c);
}

/* The cart read through s is, line by line, what a read of each product through other gives. */
static void expect_cart_as_per_line(const struct batch_cart *bc, const struct harness_server *s,
                                    const struct harness_server *other)
{
    json_t *cart = get_cart(s, bc->user, bc->token);
    int64_t total = 0;

    assert_int_equal(cart_size(cart), bc->n);
    for (size_t i = 0; i < bc->n; i++) {
        json_t *p;
        int64_t quantity = (int64_t)(1 + i % 3);
        assert_int_equal(
            it_call(other, "GET", NULL, NULL, &p, "/api/products/%lld", (long long)bc->ids[i]),
            200);
        assert_line(cart, i, bc->ids[i], jstr(p, "name"), jint(p, "price"), quantity,
                    jint(p, "stock") >= quantity);
        total += jint(p, "price") * quantity;
        json_decref(p);
    }
    assert_total(cart, total);
    json_decref(cart);
}

/*
 * Issue 13: a cart of 100 lines reads its products in one batch. Cold: the lines' GET, lease
 * and fill (3 round trips) and, for all 100 products, one script and one fill (2), with one
 * SELECT of products; warm: 2 round trips (1 for the lines, 1 for the 100 products), no SELECT.
 * (Cold, an event loop with its Redis connection tries the lines' GET first: one more.)
 */
static void cart_of_100_lines_reads_its_products_in_one_batch(void **state)
{
    static const char handed[] = "shopd_loop_reads_total{result=\"to_worker\"}";

    batch_cart_make(&big, &a, CART_LIMIT);
    int64_t trips = metric(&a, ROUND_TRIPS), selects = metric(&a, PRODUCT_SELECTS);
    int64_t loads = cache_metric(&a, "loads", "product");
    int64_t tried_on_loop = metric(&a, handed);

    json_decref(get_cart(&a, big.user, big.token));
    tried_on_loop = metric(&a, handed) - tried_on_loop;
    assert_int_equal(metric(&a, PRODUCT_SELECTS) - selects, 1);
    assert_int_equal(cache_metric(&a, "loads", "product") - loads, CART_LIMIT);
    assert_int_equal(metric(&a, ROUND_TRIPS) - trips, 5 + tried_on_loop);

    int64_t hits = cache_metric(&a, "hits", "product");
    trips = metric(&a, ROUND_TRIPS);
    selects = metric(&a, PRODUCT_SELECTS);
    json_decref(get_cart(&a, big.user, big.token));
    assert_int_equal(metric(&a, ROUND_TRIPS) - trips, 2);
    assert_int_equal(metric(&a, PRODUCT_SELECTS) - selects, 0);
    assert_int_equal(cache_metric(&a, "hits", "product") - hits, CART_LIMIT);

    /* The other process shares the cache: warm there too. */
    trips = metric(&b, ROUND_TRIPS);
    selects = metric(&b, PRODUCT_SELECTS);
    json_decref(get_cart(&b, big.user, big.token));
    assert_int_equal(metric(&b, PRODUCT_SELECTS) - selects, 0);
    assert_int_equal(metric(&b, ROUND_TRIPS) - trips, 2);

    /* What the batch shows is what the product reads show, line by line. */
    expect_cart_as_per_line(&big, &a, &b);
    expect_cart_as_per_line(&big, &b, &a);
}

/* A product patched through one process shows at once in the batched cart of the other. */
static void cart_batch_shows_a_patch_at_once_in_the_other_process(void **state)
{
    int64_t id = big.ids[57];
    json_t *cart;

    assert_int_equal(big.n, CART_LIMIT);
    json_decref(get_cart(&b, big.user, big.token)); /* warm in both */
    json_decref(get_cart(&a, big.user, big.token));
    patch_ok(&a, id, "{\"price\":98765,\"stock\":0,\"name\":\"Patched in batch\"}");
    cart = get_cart(&b, big.user, big.token);
    assert_line(cart, 57, id, "Patched in batch", 98765, 1 + 57 % 3, false);
    json_decref(cart);
    patch_ok(&b, id, "{\"stock\":50}");
    cart = get_cart(&a, big.user, big.token);
    assert_line(cart, 57, id, "Patched in batch", 98765, 1 + 57 % 3, true);
    json_decref(cart);
    expect_cart_as_per_line(&big, &b, &a);
    /* The patch invalidated one product: the next read through b loaded it alone. */
    int64_t loads = cache_metric(&b, "loads", "product");
    patch_ok(&a, big.ids[3], "{\"price\":4444}");
    expect_cart_as_per_line(&big, &b, &a);
    assert_int_equal(cache_metric(&b, "loads", "product") - loads, 1);
    free(big.token);
    big.token = NULL;
}

/* ---- Redis killed mid-test and restarted ---- */

struct outage {
    int64_t product, user;
    const char *token;
    int64_t price, stock, quantity; /* what every read must show */
    const struct harness_server *server;
    int64_t hits_before;
};

/* One product read and one cart read through o->server, both 200 and current. */
static void outage_reads(const struct outage *o, const struct harness_server *s)
{
    json_t *cart;

    expect_product(s, o->product, "Outage", "", o->price, o->stock);
    cart = get_cart(s, o->user, o->token);
    assert_int_equal(cart_size(cart), 1);
    assert_line(cart, 0, o->product, "Outage", o->price, o->quantity, o->stock >= o->quantity);
    json_decref(cart);
}

static bool caching_resumed(void *arg)
{
    const struct outage *o = arg;

    outage_reads(o, o->server);
    return cache_metric(o->server, "hits", "product") > o->hits_before;
}

static bool readyz_is(const struct harness_server *s, const char *status)
{
    struct http_result r;
    char url[160], want[64];

    snprintf(url, sizeof(url), "%s/readyz", s->url);
    snprintf(want, sizeof(want), "\"status\":\"%s\"", status);
    bool ok =
        http_once("GET", url, NULL, NULL, NULL, &r) == 0 && r.status == 200 && strstr(r.body, want);
    http_result_free(&r);
    return ok;
}

static bool both_ready(void *arg)
{
    return readyz_is(&ra, "ok") && readyz_is(&rb, "ok");
}

static void redis_killed_and_restarted_fails_no_request(void **state)
{
    int64_t product = harness_create_product(&h, &ra, "Outage", 100, 10);
    int64_t user = harness_create_user(&h, &ra, "Outage");
    char *token = harness_token(&h, user);
    struct outage o = {product, user, token, 100, 10, 2, NULL, 0};
    json_t *cart;

    assert_true(product > 0 && user > 0);
    assert_int_equal(cart_add(&ra, user, token, product, 2, &cart), 200);
    json_decref(cart);
    /* Warm the cache through both processes; the second reads are hits. */
    int64_t hits = cache_metric(&ra, "hits", "product");
    for (int i = 0; i < 2; i++) {
        outage_reads(&o, &ra);
        outage_reads(&o, &rb);
    }
    assert_true(cache_metric(&ra, "hits", "product") > hits);
    int64_t errors = cache_metric(&ra, "errors", "product");

    harness_redis_kill(&redis);
    assert_false(harness_redis_ping(&redis));
    for (int i = 0; i < 3; i++) {
        outage_reads(&o, &ra);
        outage_reads(&o, &rb);
    }
    /* Writes go on, and invalidate nothing stale: there is no Redis to be stale in. */
    patch_ok(&ra, product, "{\"price\":200,\"stock\":1}");
    o.price = 200;
    o.stock = 1;
    outage_reads(&o, &rb);
    outage_reads(&o, &ra);
    assert_int_equal(cart_add(&rb, user, token, product, 1, &cart), 200);
    json_decref(cart);
    o.quantity = 3;
    outage_reads(&o, &ra);
    outage_reads(&o, &rb);
    assert_true(readyz_is(&ra, "degraded"));
    assert_true(readyz_is(&rb, "degraded"));
    assert_true(cache_metric(&ra, "errors", "product") > errors);

    assert_int_equal(harness_redis_restart(&redis), 0);
    o.server = &ra;
    o.hits_before = cache_metric(&ra, "hits", "product");
    assert_true(harness_wait_for(caching_resumed, &o, 30000));
    o.server = &rb;
    o.hits_before = cache_metric(&rb, "hits", "product");
    assert_true(harness_wait_for(caching_resumed, &o, 30000));
    assert_true(harness_wait_for(both_ready, NULL, 30000));

    /* With the cache back, a write through one process is seen through the other at once. */
    patch_ok(&rb, product, "{\"price\":300}");
    o.price = 300;
    outage_reads(&o, &ra);
    outage_reads(&o, &rb);
    free(token);
}

/*
 * The batch without Redis: killed while the processes serve a warm cart of 30 lines, each read
 * still answers what MariaDB holds, with one SELECT for all the products; Redis back, the
 * batch is cached again.
 */
static void cart_batch_answers_with_redis_killed(void **state)
{
    struct batch_cart bc;

    batch_cart_make(&bc, &ra, 30);
    expect_cart_as_per_line(&bc, &ra, &rb);
    expect_cart_as_per_line(&bc, &rb, &ra);

    harness_redis_kill(&redis);
    assert_false(harness_redis_ping(&redis));
    int64_t selects = metric(&ra, PRODUCT_SELECTS);
    json_decref(get_cart(&ra, bc.user, bc.token));
    assert_int_equal(metric(&ra, PRODUCT_SELECTS) - selects, 1);
    patch_ok(&rb, bc.ids[4], "{\"price\":5555,\"stock\":0}");
    expect_cart_as_per_line(&bc, &ra, &rb);
    expect_cart_as_per_line(&bc, &rb, &ra);

    assert_int_equal(harness_redis_restart(&redis), 0);
    assert_true(harness_wait_for(both_ready, NULL, 30000));
    expect_cart_as_per_line(&bc, &ra, &rb);
    patch_ok(&ra, bc.ids[9], "{\"price\":9999}");
    expect_cart_as_per_line(&bc, &rb, &ra);
    int64_t trips = metric(&rb, ROUND_TRIPS);
    selects = metric(&rb, PRODUCT_SELECTS);
    json_decref(get_cart(&rb, bc.user, bc.token));
    assert_int_equal(metric(&rb, ROUND_TRIPS) - trips, 2);
    assert_int_equal(metric(&rb, PRODUCT_SELECTS) - selects, 0);
    free(bc.token);
}

/* ---- main ---- */

int main(void)
{
    const struct CMUnitTest catalog[] = {
        cmocka_unit_test(product_create_returns_the_product),
        cmocka_unit_test(product_description_defaults_to_empty),
        cmocka_unit_test(product_create_accepts_the_limits),
        cmocka_unit_test(product_name_limit_counts_characters),
        cmocka_unit_test(product_patch_changes_only_given_fields),
        cmocka_unit_test(product_patch_without_fields_changes_nothing),
        cmocka_unit_test(product_list_pages_in_id_order),
        cmocka_unit_test(product_list_last_page_has_null_cursor),
        cmocka_unit_test(product_list_defaults_to_20),
        cmocka_unit_test(top_products_rank_by_quantity_within_days),
        cmocka_unit_test(top_products_are_cached),
        cmocka_unit_test(cart_starts_empty),
        cmocka_unit_test(cart_add_accumulates_lines_in_product_order),
        cmocka_unit_test(cart_add_beyond_1000_is_rejected),
        cmocka_unit_test(cart_put_sets_creates_and_removes),
        cmocka_unit_test(cart_delete_removes_the_line),
        cmocka_unit_test(cart_stock_available_follows_stock),
        cmocka_unit_test(cart_admin_may_act_for_a_user),
        cmocka_unit_test(product_patch_is_seen_by_both_processes_at_once),
        cmocka_unit_test(cart_shows_a_new_price_in_both_processes_at_once),
        cmocka_unit_test(cart_change_through_one_process_is_seen_through_the_other),
        cmocka_unit_test(no_stale_read_after_a_patch_under_concurrent_loads),
        cmocka_unit_test(a_load_overtaken_by_an_invalidation_is_not_stored),
        cmocka_unit_test(a_read_after_an_invalidation_does_not_get_an_older_load),
        cmocka_unit_test(cold_product_read_200_times_is_loaded_at_most_twice),
        cmocka_unit_test(cache_metrics_are_exported),
        cmocka_unit_test(path_ids_have_one_spelling),
        cmocka_unit_test(problem_details_are_valid_json_whatever_the_path),
        cmocka_unit_test(access_log_cannot_be_forged_through_the_path),
        cmocka_unit_test(unknown_products_are_cached_as_missing_until_created),
        cmocka_unit_test(cart_holds_at_most_100_lines),
        cmocka_unit_test(concurrent_adds_never_pass_100_lines),
        cmocka_unit_test(bad_inputs_change_nothing),
        cmocka_unit_test(oversized_bodies_are_413),
        cmocka_unit_test(a_batch_load_overtaken_on_one_key_stores_the_others),
        cmocka_unit_test(a_cold_batch_read_by_16_threads_is_loaded_once),
        cmocka_unit_test(cart_of_100_lines_reads_its_products_in_one_batch),
        cmocka_unit_test(cart_batch_shows_a_patch_at_once_in_the_other_process),
    };
    const struct CMUnitTest outage[] = {
        cmocka_unit_test(redis_killed_and_restarted_fails_no_request),
        cmocka_unit_test(cart_batch_answers_with_redis_killed),
    };
    int failed = 0;

    if (it_main_begin() < 0)
        return 1;
    IT_RUN_GROUP(failed, "catalog", catalog, start_catalog, stop_catalog);
    IT_RUN_GROUP(failed, "redis outage", outage, start_outage, stop_outage);
    return failed ? 1 : 0;
}
