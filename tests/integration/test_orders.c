/*
 * Orders and payments end to end against real `shopd serve` processes on a fresh MariaDB
 * database: three processes that share it (and Redis) take races for the last units, orders
 * whose lines come in opposite orders, one idempotency key sent 100 times and one order paid
 * 30 times; coupons, cancel before and after payment, expiry on a dedicated process with a
 * two-second TTL, and strangers who may not touch an order. After every scenario `shopd check`
 * (the binary beside this one) must pass; on a database of its own, corrupted on purpose, it
 * must fail and name the broken invariant.
 */
#include <errno.h>
#include <libgen.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/err.h"
#include "harness.h"
#include "http_client.h"
#include "it_main.h"
#include "json_check.h"
#include "repo/db.h"

extern char **environ;

static struct harness h;
static struct harness_server srv[3]; /* the orders group's three processes, the check group's one */
static int nservers;                 /* how many of srv are running */
static char *admin;
static int key_seq; /* makes every idempotency key of the main thread unique */

/* A lock wait of 30 s: 200 orders queue on two product rows, and none may time out. */
static const char *const server_env[] = {"SHOPD_DB_LOCK_WAIT=30", NULL};

#define NSERVERS 3

/* The running process i (modulo their number): the helpers spread their calls over them. */
static const struct harness_server *pick(int i)
{
    return &srv[i % nservers];
}

static const char sql_stock[] = "SELECT stock FROM products WHERE id = ?";
static const char sql_reserved[] = "SELECT reserved FROM products WHERE id = ?";
static const char sql_sold[] = "SELECT sold FROM products WHERE id = ?";
static const char sql_balance[] = "SELECT balance_krw FROM users WHERE id = ?";
static const char sql_history_count[] = "SELECT COUNT(*) FROM balance_history WHERE user_id = ?";
static const char sql_history_sum[] =
    "SELECT COALESCE(SUM(amount_krw), 0) FROM balance_history WHERE user_id = ?";
static const char sql_entries_of_order[] =
    "SELECT COUNT(*) FROM balance_history WHERE order_id = ? AND type = ?";
static const char sql_entry_amount[] =
    "SELECT COALESCE(SUM(amount_krw), 0) FROM balance_history WHERE order_id = ? AND type = ?";
static const char sql_user_orders[] = "SELECT COUNT(*) FROM orders WHERE user_id = ?";
static const char sql_product_orders[] =
    "SELECT COUNT(*) FROM order_items i JOIN orders o ON o.id = i.order_id "
    "WHERE i.product_id = ? AND o.status <> 'CANCELLED' AND o.status <> 'EXPIRED'";
static const char sql_order_status_is[] = "SELECT status = ? FROM orders WHERE id = ?";
static const char sql_payments[] = "SELECT COUNT(*) FROM payments WHERE order_id = ?";
static const char sql_payments_with_status[] =
    "SELECT COUNT(*) FROM payments WHERE order_id = ? AND status = ?";
static const char sql_events[] =
    "SELECT COUNT(*) FROM outbox WHERE aggregate_id = ? AND event_type = ?";
static const char sql_coupon_used[] =
    "SELECT status = 'USED' FROM user_coupons WHERE user_id = ? AND coupon_id = ?";
static const char sql_coupon_order[] =
    "SELECT COALESCE(order_id, 0) FROM user_coupons WHERE user_id = ? AND coupon_id = ?";
static const char sql_sales[] =
    "SELECT COALESCE(SUM(quantity), 0) FROM product_sales_daily WHERE product_id = ?";
static const char sql_pending_of_user[] =
    "SELECT COUNT(*) FROM orders WHERE user_id = ? AND status = 'PENDING'";
static const char sql_order_keys[] = "SELECT COUNT(*) FROM idempotency_keys WHERE user_id = ? "
                                     "AND method = 'POST' AND path = '/api/orders'";

/* ---- group set-up ---- */

static int start_orders(void **state)
{
    if (harness_setup(&h))
        return -1;
    for (int i = 0; i < NSERVERS; i++)
        if (harness_server_start(&h, &srv[i], server_env)) {
            while (i-- > 0)
                harness_server_stop(&srv[i]);
            harness_teardown(&h);
            return -1;
        }
    nservers = NSERVERS;
    admin = harness_admin_token(&h);
    return 0;
}

static int stop_orders(void **state)
{
    int rc = 0;

    for (int i = 0; i < nservers; i++)
        rc |= harness_server_stop(&srv[i]);
    free(admin);
    admin = NULL;
    harness_teardown(&h);
    /* A server that leaked or crashed exits non-zero under ASan. */
    return rc ? -1 : 0;
}

static int start_check(void **state)
{
    if (harness_setup(&h))
        return -1;
    if (harness_server_start(&h, &srv[0], server_env)) {
        harness_teardown(&h);
        return -1;
    }
    nservers = 1;
    admin = harness_admin_token(&h);
    return 0;
}

static int stop_check(void **state)
{
    int rc = harness_server_stop(&srv[0]);

    free(admin);
    admin = NULL;
    harness_teardown(&h);
    return rc ? -1 : 0;
}

/* ---- JSON and problem helpers ---- */

static int64_t jtime(json_t *j, const char *key)
{
    const char *s = jstr(j, key);
    int64_t us = 0;

    if (!s || clock_parse_rfc3339(s, &us))
        fail_msg("'%s' is not an RFC 3339 time: %s", key, s ? s : "(absent)");
    return us;
}

/* Fails unless the answer is status with problem code; what names the request. */
static void expect_problem(long status, const char *body, long want, const char *code,
                           const char *what)
{
    char got[64] = "";

    if (status != want)
        fail_msg("%s: status %ld, want %ld: %s", what, status, want, body);
    json_t *j = json_loads(body, 0, NULL);
    const char *c = j ? jstr(j, "code") : NULL;
    snprintf(got, sizeof(got), "%s", c ? c : "(none)");
    bool typed = j && jstr(j, "detail") && jint(j, "status") == want;
    json_decref(j);
    if (strcmp(got, code))
        fail_msg("%s: code %s, want %s: %s", what, got, code, body);
    if (!typed)
        fail_msg("%s: not a problem document: %s", what, body);
}

/* The detail of a problem document, copied into buf. */
static const char *problem_detail(const char *body, char *buf, size_t size)
{
    json_t *j = parse_body(body);
    const char *d = jstr(j, "detail");

    snprintf(buf, size, "%s", d ? d : "");
    json_decref(j);
    return buf;
}

/* ---- SQL ---- */

static int64_t sql1(const char *sql, int64_t a)
{
    return harness_sql_int(&h, sql, 1, a);
}

static int64_t sql2(const char *sql, int64_t a, int64_t b)
{
    return harness_sql_int(&h, sql, 2, a, b);
}

/* harness_sql_int binds integers only: these take one string and one integer. */
static int64_t sql_str_int(const char *sql, const char *s, int64_t a)
{
    struct db_val p[] = {DB_STR(s), DB_INT(a)};
    return harness_sql_vals(&h, sql, p, 2);
}

static int64_t sql_int_str(const char *sql, int64_t a, const char *s)
{
    struct db_val p[] = {DB_INT(a), DB_STR(s)};
    return harness_sql_vals(&h, sql, p, 2);
}

/* Runs a statement with one integer parameter straight on the database; rows matched. */
static int64_t sql_exec(const char *sql, int64_t a)
{
    struct db_val p[] = {DB_INT(a)};
    struct db_conn *c;
    struct err e;
    uint64_t matched = 0;
    int rc;

    if (db_acquire(h.pool, &c, &e))
        fail_msg("db_acquire: %s", e.detail);
    rc = db_exec(c, sql, p, 1, &matched, NULL, &e);
    db_release(h.pool, c);
    if (rc)
        fail_msg("'%s' failed: %s", sql, e.detail);
    return (int64_t)matched;
}

/* ---- shopd check ---- */

/* Runs `shopd check` on the test database; returns its exit status, its output in *output. */
static int run_check(char **output)
{
    char self[512], bin[600], db[300], redis[300];
    const char *env[256];
    int n = 0, fds[2], status = 0;
    ssize_t got = readlink("/proc/self/exe", self, sizeof(self) - 1);
    size_t cap = 8192, len = 0;
    char *out;

    self[got > 0 ? got : 0] = '\0';
    snprintf(bin, sizeof(bin), "%s/shopd", dirname(self));
    snprintf(db, sizeof(db), "SHOPD_DB_URL=%s", h.db_url);
    snprintf(redis, sizeof(redis), "SHOPD_REDIS_URL=%s", h.redis_url);
    env[n++] = db;
    env[n++] = redis;
    for (char **e = environ; *e && n < 250; e++)
        if (strncmp(*e, "SHOPD_", 6))
            env[n++] = *e;
    env[n] = NULL;
    if (pipe(fds))
        fail_msg("pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        const char *argv[] = {bin, "check", NULL};
        dup2(fds[1], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        harness_execve(bin, argv, env);
        perror("execve shopd check");
        _exit(127);
    }
    close(fds[1]);
    out = malloc(cap);
    for (;;) {
        if (cap - len < 1024) {
            cap *= 2;
            out = realloc(out, cap);
        }
        ssize_t k = read(fds[0], out + len, cap - len - 1);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        len += (size_t)k;
    }
    out[len] = '\0';
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    *output = out;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static void assert_check_passes(void)
{
    char *out = NULL;
    char copy[4096];
    int rc = run_check(&out);
    bool clean =
        strstr(out, "invariants, 0 failed") && !strstr(out, "FAIL") && !strstr(out, "ERROR");

    snprintf(copy, sizeof(copy), "%s", out);
    free(out);
    if (rc != 0 || !clean)
        fail_msg("shopd check exited %d:\n%s", rc, copy);
}

/* ---- HTTP helpers ---- */

static const char *fresh_key(char *buf, size_t size)
{
    snprintf(buf, size, "k-%d", ++key_seq);
    return buf;
}

/* POSTs a JSON body to path on s, with an Idempotency-Key header when key is not NULL. */
static long post(struct http_client *c, const struct harness_server *s, const char *path,
                 const char *token, const char *body, const char *key, struct http_result *r)
{
    char url[256], header[320];

    snprintf(url, sizeof(url), "%s%s", s->url, path);
    if (key)
        snprintf(header, sizeof(header), "Idempotency-Key: %s", key);
    if (http_do(c, "POST", url, token, "application/json", body, strlen(body), key ? header : NULL,
                r))
        return -1;
    return r->status;
}

static long get(const struct harness_server *s, const char *path, const char *token,
                struct http_result *r)
{
    char url[256];

    snprintf(url, sizeof(url), "%s%s", s->url, path);
    if (http_do(&it_client, "GET", url, token, NULL, NULL, 0, NULL, r))
        return -1;
    return r->status;
}

static void charge(int64_t user, const char *token, int64_t amount)
{
    char path[96], body[64], key[32];
    struct http_result r;

    snprintf(path, sizeof(path), "/api/users/%lld/balance/charge", (long long)user);
    while (amount > 0) {
        int64_t part = amount > 10000000 ? 10000000 : amount;
        snprintf(body, sizeof(body), "{\"amount\":%lld}", (long long)part);
        if (post(&it_client, pick(0), path, token, body, fresh_key(key, sizeof(key)), &r) != 200)
            fail_msg("charge %lld to user %lld: %ld %s", (long long)part, (long long)user, r.status,
                     r.body);
        http_result_free(&r);
        amount -= part;
    }
}

/* A new user with the given balance; *token is theirs (malloc'd). */
static int64_t new_user(const char *name, int64_t balance, char **token)
{
    int64_t id = harness_create_user(&h, pick(0), name);

    assert_true(id > 0);
    *token = harness_token(&h, id);
    if (balance)
        charge(id, *token, balance);
    return id;
}

static int64_t new_product(const char *name, int64_t price, int64_t stock)
{
    int64_t id = harness_create_product(&h, pick(0), name, price, stock);

    assert_true(id > 0);
    return id;
}

static int64_t new_coupon(const char *type, int64_t value, int64_t quantity)
{
    char body[192];
    struct http_result r;

    snprintf(body, sizeof(body),
             "{\"name\":\"%s %lld\",\"discountType\":\"%s\",\"discountValue\":%lld,"
             "\"totalQuantity\":%lld}",
             type, (long long)value, type, (long long)value, (long long)quantity);
    if (post(&it_client, pick(0), "/api/admin/coupons", admin, body, NULL, &r) != 201)
        fail_msg("coupon: %ld %s", r.status, r.body);
    json_t *j = parse_body(r.body);
    int64_t id = jint(j, "couponId");
    json_decref(j);
    http_result_free(&r);
    return id;
}

static void issue(int64_t coupon, int64_t user, const char *token)
{
    char path[96], body[64];
    struct http_result r;

    snprintf(path, sizeof(path), "/api/coupons/%lld/issue", (long long)coupon);
    snprintf(body, sizeof(body), "{\"userId\":%lld}", (long long)user);
    if (post(&it_client, pick(1), path, token, body, NULL, &r) != 201)
        fail_msg("issue coupon %lld to %lld: %ld %s", (long long)coupon, (long long)user, r.status,
                 r.body);
    http_result_free(&r);
}

/* The orderable stock as process s reports it. */
static int64_t api_stock(const struct harness_server *s, int64_t product)
{
    char path[96];
    struct http_result r;

    snprintf(path, sizeof(path), "/api/products/%lld", (long long)product);
    if (get(s, path, NULL, &r) != 200)
        fail_msg("GET %s: %ld %s", path, r.status, r.body);
    json_t *j = parse_body(r.body);
    int64_t stock = jint(j, "stock");
    json_decref(j);
    http_result_free(&r);
    return stock;
}

/* Every process reports the stock, and the database holds it (no stale cache anywhere). */
static void assert_stock(int64_t product, int64_t want)
{
    for (int i = 0; i < nservers; i++) {
        int64_t got = api_stock(&srv[i], product);
        if (got != want)
            fail_msg("product %lld: process %d reports stock %lld, want %lld", (long long)product,
                     i, (long long)got, (long long)want);
    }
    assert_int_equal(sql1(sql_stock, product), want);
}

static int64_t api_balance(int64_t user, const char *token)
{
    char path[96];
    struct http_result r;

    snprintf(path, sizeof(path), "/api/users/%lld/balance", (long long)user);
    if (get(pick(2), path, token, &r) != 200)
        fail_msg("GET %s: %ld %s", path, r.status, r.body);
    json_t *j = parse_body(r.body);
    int64_t balance = jint(j, "balance");
    json_decref(j);
    http_result_free(&r);
    return balance;
}

/* The balance, by API and in the database, and equal to the sum of the history. */
static void assert_balance(int64_t user, const char *token, int64_t want)
{
    assert_int_equal(api_balance(user, token), want);
    assert_int_equal(sql1(sql_balance, user), want);
    assert_int_equal(sql1(sql_history_sum, user), want);
}

struct line {
    int64_t product;
    int64_t quantity;
};

static void append(char *buf, size_t size, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void append(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, size - *len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size - *len)
        fail_msg("request body does not fit in %zu bytes", size);
    *len += (size_t)n;
}

static void order_body(char *buf, size_t size, int64_t user, const struct line *lines, size_t n,
                       int64_t coupon)
{
    size_t len = 0;

    append(buf, size, &len, "{\"userId\":%lld,\"items\":[", (long long)user);
    for (size_t i = 0; i < n; i++)
        append(buf, size, &len, "%s{\"productId\":%lld,\"quantity\":%lld}", i ? "," : "",
               (long long)lines[i].product, (long long)lines[i].quantity);
    if (coupon)
        append(buf, size, &len, "],\"couponId\":%lld}", (long long)coupon);
    else
        append(buf, size, &len, "]}");
}

static long create_order(const struct harness_server *s, int64_t user, const char *token,
                         const struct line *lines, size_t n, int64_t coupon, const char *key,
                         struct http_result *r)
{
    char body[4096];

    order_body(body, sizeof(body), user, lines, n, coupon);
    return post(&it_client, s, "/api/orders", token, body, key, r);
}

/* Creates an order through s and expects 201; returns the Order (the caller decrefs it). */
static json_t *order_ok(const struct harness_server *s, int64_t user, const char *token,
                        const struct line *lines, size_t n, int64_t coupon)
{
    struct http_result r;
    char key[32];

    if (create_order(s, user, token, lines, n, coupon, fresh_key(key, sizeof(key)), &r) != 201)
        fail_msg("create order for user %lld: %ld %s", (long long)user, r.status, r.body);
    json_t *j = parse_body(r.body);
    http_result_free(&r);
    assert_true(jint(j, "orderId") > 0);
    assert_int_equal(jint(j, "userId"), user);
    assert_string_equal(jstr(j, "status"), "PENDING");
    return j;
}

/* POST /api/orders/{order}/{action} with body {userId}. */
static long order_action(const struct harness_server *s, const char *action, int64_t order,
                         int64_t body_user, const char *token, const char *key,
                         struct http_result *r)
{
    char path[96], body[64];

    snprintf(path, sizeof(path), "/api/orders/%lld/%s", (long long)order, action);
    snprintf(body, sizeof(body), "{\"userId\":%lld}", (long long)body_user);
    return post(&it_client, s, path, token, body, key, r);
}

static json_t *pay_ok(const struct harness_server *s, int64_t order, int64_t user,
                      const char *token)
{
    struct http_result r;
    char key[32];

    if (order_action(s, "payment", order, user, token, fresh_key(key, sizeof(key)), &r) != 200)
        fail_msg("pay order %lld: %ld %s", (long long)order, r.status, r.body);
    json_t *j = parse_body(r.body);
    http_result_free(&r);
    assert_int_equal(jint(j, "orderId"), order);
    assert_string_equal(jstr(j, "status"), "PAID");
    return j;
}

static json_t *cancel_ok(const struct harness_server *s, int64_t order, int64_t user,
                         const char *token)
{
    struct http_result r;
    char key[32];

    if (order_action(s, "cancel", order, user, token, fresh_key(key, sizeof(key)), &r) != 200)
        fail_msg("cancel order %lld: %ld %s", (long long)order, r.status, r.body);
    json_t *j = parse_body(r.body);
    http_result_free(&r);
    assert_int_equal(jint(j, "orderId"), order);
    assert_string_equal(jstr(j, "status"), "CANCELLED");
    return j;
}

static json_t *get_order_ok(const struct harness_server *s, int64_t order, const char *token)
{
    char path[64];
    struct http_result r;

    snprintf(path, sizeof(path), "/api/orders/%lld", (long long)order);
    if (get(s, path, token, &r) != 200)
        fail_msg("GET %s: %ld %s", path, r.status, r.body);
    json_t *j = parse_body(r.body);
    http_result_free(&r);
    return j;
}

static void assert_order_status(int64_t order, const char *status)
{
    if (sql_str_int(sql_order_status_is, status, order) != 1)
        fail_msg("order %lld is not %s in the database", (long long)order, status);
}

/* The line of an Order for product, or a failure. */
static json_t *item_of(json_t *order, int64_t product)
{
    json_t *items = json_object_get(order, "items");

    for (size_t i = 0; i < json_array_size(items); i++)
        if (jint(json_array_get(items, i), "productId") == product)
            return json_array_get(items, i);
    fail_msg("the order has no line for product %lld", (long long)product);
    return NULL;
}

/* ---- concurrent requests ---- */

/* One POST made by its own thread; all threads of a batch start at one barrier. */
struct call {
    const struct harness_server *server;
    char path[96];
    const char *token;
    char body[256];
    char key[48];
    long status;
    char *response; /* malloc'd */
    bool replayed;
};

static pthread_barrier_t start_line;

static void *call_main(void *arg)
{
    struct call *k = arg;
    struct http_client c;
    struct http_result r;
    char flag[16];

    http_client_init(&c);
    pthread_barrier_wait(&start_line);
    k->status = post(&c, k->server, k->path, k->token, k->body, k->key, &r);
    k->response = strdup(r.body ? r.body : "");
    k->replayed =
        http_header(&r, "Idempotent-Replayed", flag, sizeof(flag)) != NULL && !strcmp(flag, "true");
    http_result_free(&r);
    http_client_release(&c);
    return NULL;
}

static void run_calls(struct call *calls, size_t n)
{
    pthread_t *threads = calloc(n, sizeof(*threads));

    pthread_barrier_init(&start_line, NULL, (unsigned)n);
    for (size_t i = 0; i < n; i++)
        if (pthread_create(&threads[i], NULL, call_main, &calls[i]))
            fail_msg("pthread_create %zu failed", i);
    for (size_t i = 0; i < n; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&start_line);
    free(threads);
}

static void free_calls(struct call *calls, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(calls[i].response);
    free(calls);
}

/* ---- basic flow ---- */

static void order_create_replay_pay_and_read(void **state)
{
    char *token;
    int64_t user = new_user("Basic Buyer", 100000, &token);
    int64_t kettle = new_product("Kettle", 1500, 10);
    int64_t mug = new_product("Mug", 700, 5);
    struct line lines[] = {{mug, 2}, {kettle, 1}}; /* not in id order */
    struct http_result r, again;
    char body[512], flag[16];

    /* Every process caches the products first: the order must invalidate them. */
    assert_stock(kettle, 10);
    assert_stock(mug, 5);
    assert_int_equal(create_order(&srv[0], user, token, lines, 2, 0, "basic-create", &r), 201);
    json_t *o = parse_body(r.body);
    int64_t order = jint(o, "orderId");
    assert_true(order > 0);
    assert_int_equal(jint(o, "userId"), user);
    assert_string_equal(jstr(o, "status"), "PENDING");
    assert_int_equal(json_array_size(json_object_get(o, "items")), 2);
    json_t *k = item_of(o, kettle), *m = item_of(o, mug);
    assert_string_equal(jstr(k, "productName"), "Kettle");
    assert_int_equal(jint(k, "quantity"), 1);
    assert_int_equal(jint(k, "unitPrice"), 1500);
    assert_int_equal(jint(k, "subtotal"), 1500);
    assert_string_equal(jstr(m, "productName"), "Mug");
    assert_int_equal(jint(m, "quantity"), 2);
    assert_int_equal(jint(m, "unitPrice"), 700);
    assert_int_equal(jint(m, "subtotal"), 1400);
    assert_int_equal(jint(o, "subtotalAmount"), 2900);
    assert_int_equal(jint(o, "discountAmount"), 0);
    assert_int_equal(jint(o, "totalAmount"), 2900);
    assert_true(json_is_null(json_object_get(o, "couponId")));
    assert_true(json_is_null(json_object_get(o, "paidAt")));
    /* The default TTL is 600 s. */
    assert_int_equal(jtime(o, "expiresAt") - jtime(o, "createdAt"), 600LL * 1000000);
    assert_stock(kettle, 9);
    assert_stock(mug, 3);
    assert_int_equal(sql1(sql_reserved, kettle), 1);
    assert_int_equal(sql1(sql_reserved, mug), 2);

    /* The same key and body through another process: the first response again. */
    assert_int_equal(create_order(&srv[1], user, token, lines, 2, 0, "basic-create", &again), 201);
    assert_string_equal(again.body, r.body);
    assert_non_null(http_header(&again, "Idempotent-Replayed", flag, sizeof(flag)));
    assert_string_equal(flag, "true");
    http_result_free(&again);
    assert_null(http_header(&r, "Idempotent-Replayed", flag, sizeof(flag)));
    http_result_free(&r);
    /* The same key with another body. */
    struct line other[] = {{mug, 1}};
    assert_int_equal(create_order(&srv[2], user, token, other, 1, 0, "basic-create", &r), 422);
    expect_problem(r.status, r.body, 422, "IDEMPOTENCY_KEY_REUSED", "same key, other body");
    http_result_free(&r);
    assert_int_equal(sql1(sql_user_orders, user), 1);
    assert_stock(mug, 3);

    json_t *g = get_order_ok(&srv[2], order, token);
    assert_string_equal(jstr(g, "status"), "PENDING");
    assert_int_equal(jint(g, "totalAmount"), 2900);
    assert_int_equal(json_array_size(json_object_get(g, "items")), 2);
    assert_int_equal(jtime(g, "createdAt"), jtime(o, "createdAt"));
    json_decref(g);

    /* Pay through the third process with the key in the body. */
    char path[64];
    snprintf(path, sizeof(path), "/api/orders/%lld/payment", (long long)order);
    snprintf(body, sizeof(body), "{\"userId\":%lld,\"idempotencyKey\":\"basic-pay\"}",
             (long long)user);
    assert_int_equal(post(&it_client, &srv[2], path, token, body, NULL, &r), 200);
    json_t *p = parse_body(r.body);
    assert_true(jint(p, "paymentId") > 0);
    assert_int_equal(jint(p, "orderId"), order);
    assert_int_equal(jint(p, "paidAmount"), 2900);
    assert_int_equal(jint(p, "remainingBalance"), 100000 - 2900);
    assert_string_equal(jstr(p, "status"), "PAID");
    int64_t paid_at = jtime(p, "paidAt");
    json_decref(p);
    /* The same key in the header, through another process: the same payment, replayed. */
    snprintf(body, sizeof(body), "{\"userId\":%lld}", (long long)user);
    assert_int_equal(post(&it_client, &srv[0], path, token, body, "basic-pay", &again), 200);
    assert_string_equal(again.body, r.body);
    assert_non_null(http_header(&again, "Idempotent-Replayed", flag, sizeof(flag)));
    http_result_free(&again);
    http_result_free(&r);

    g = get_order_ok(&srv[0], order, token);
    assert_string_equal(jstr(g, "status"), "PAID");
    assert_int_equal(jtime(g, "paidAt"), paid_at);
    json_decref(g);
    assert_order_status(order, "PAID");
    assert_balance(user, token, 100000 - 2900);
    assert_int_equal(sql_int_str(sql_entries_of_order, order, "PAYMENT"), 1);
    assert_int_equal(sql_int_str(sql_entry_amount, order, "PAYMENT"), -2900);
    assert_int_equal(sql1(sql_payments, order), 1);
    assert_int_equal(sql_int_str(sql_events, order, "order.paid"), 1);
    /* Sold now: still not orderable, no longer reserved. */
    assert_stock(kettle, 9);
    assert_stock(mug, 3);
    assert_int_equal(sql1(sql_reserved, kettle), 0);
    assert_int_equal(sql1(sql_sold, kettle), 1);
    assert_int_equal(sql1(sql_sold, mug), 2);
    assert_int_equal(sql1(sql_sales, mug), 2);
    json_decref(o);
    free(token);
    assert_check_passes();
}

static void order_limits_are_accepted(void **state)
{
    enum { LINES = 50 };
    struct line lines[LINES];
    char *token;
    int64_t user = new_user("Limits", 0, &token);

    for (int i = 0; i < LINES; i++) {
        char name[32];
        snprintf(name, sizeof(name), "Limit %d", i);
        lines[i].product = new_product(name, 1, 1000);
        lines[i].quantity = i == 0 ? 1000 : 1;
    }
    json_t *o = order_ok(&srv[1], user, token, lines, LINES, 0);
    assert_int_equal(json_array_size(json_object_get(o, "items")), LINES);
    assert_int_equal(jint(o, "totalAmount"), 1000 + LINES - 1);
    assert_stock(lines[0].product, 0);
    assert_stock(lines[LINES - 1].product, 999);
    json_t *c = cancel_ok(&srv[2], jint(o, "orderId"), user, token);
    assert_stock(lines[0].product, 1000);
    assert_stock(lines[LINES - 1].product, 1000);
    json_decref(c);
    json_decref(o);
    free(token);
    assert_check_passes();
}

/* ---- bad input ---- */

static void bad_order(const char *what, const char *body, const char *key, const char *token,
                      long status, const char *code, char *detail, size_t detail_size)
{
    struct http_result r;

    post(&it_client, pick(0), "/api/orders", token, body, key, &r);
    expect_problem(r.status, r.body, status, code, what);
    if (detail)
        problem_detail(r.body, detail, detail_size);
    http_result_free(&r);
}

static void bad_orders_change_nothing(void **state)
{
    char *token, *other_token, body[4096], detail[256], want[64];
    int64_t user = new_user("Bad Orders", 0, &token);
    int64_t other = new_user("Bystander", 0, &other_token);
    int64_t plenty = new_product("Plenty", 100, 50);
    int64_t scarce = new_product("Scarce", 100, 2);
    int64_t coupon = new_coupon("FIXED", 10, 5);
    long long u = (long long)user, p = (long long)plenty, s = (long long)scarce;
    size_t len = 0;

    issue(coupon, other, other_token);
    snprintf(body, sizeof(body),
             "{\"userId\":%lld,\"items\":[{\"productId\":%lld,\"quantity\":1},"
             "{\"productId\":%lld,\"quantity\":2}]}",
             u, p, p);
    bad_order("product twice", body, "b1", token, 400, "INVALID_INPUT", NULL, 0);
    snprintf(body, sizeof(body),
             "{\"userId\":%lld,\"items\":[{\"productId\":%lld,\"quantity\":0}]}", u, p);
    bad_order("quantity 0", body, "b2", token, 400, "INVALID_INPUT", NULL, 0);
    snprintf(body, sizeof(body),
             "{\"userId\":%lld,\"items\":[{\"productId\":%lld,\"quantity\":1001}]}", u, p);
    bad_order("quantity 1001", body, "b3", token, 400, "INVALID_INPUT", NULL, 0);
    snprintf(body, sizeof(body), "{\"userId\":%lld,\"items\":[]}", u);
    bad_order("no lines", body, "b4", token, 400, "INVALID_INPUT", NULL, 0);
    snprintf(body, sizeof(body), "{\"userId\":%lld}", u);
    bad_order("items missing", body, "b5", token, 400, "INVALID_INPUT", NULL, 0);
    snprintf(body, sizeof(body), "{\"items\":[{\"productId\":%lld,\"quantity\":1}]}", p);
    bad_order("userId missing", body, "b6", token, 400, "INVALID_INPUT", NULL, 0);
    snprintf(body, sizeof(body), "{\"userId\":%lld,\"items\":[{\"productId\":%lld}]}", u, p);
    bad_order("quantity missing", body, "b7", token, 400, "INVALID_INPUT", NULL, 0);
    append(body, sizeof(body), &len, "{\"userId\":%lld,\"items\":[", u);
    for (int i = 0; i < 51; i++)
        append(body, sizeof(body), &len, "%s{\"productId\":%d,\"quantity\":1}", i ? "," : "",
               1000000 + i);
    append(body, sizeof(body), &len, "]}");
    bad_order("51 lines", body, "b8", token, 400, "INVALID_INPUT", NULL, 0);

    snprintf(body, sizeof(body),
             "{\"userId\":%lld,\"items\":[{\"productId\":%lld,\"quantity\":1},"
             "{\"productId\":999999999,\"quantity\":1}]}",
             u, p);
    bad_order("unknown product", body, "b9", token, 404, "PRODUCT_NOT_FOUND", NULL, 0);
    snprintf(body, sizeof(body),
             "{\"userId\":%lld,\"items\":[{\"productId\":%lld,\"quantity\":5},"
             "{\"productId\":%lld,\"quantity\":3}]}",
             u, p, s);
    bad_order("short line", body, "b10", token, 409, "OUT_OF_STOCK", detail, sizeof(detail));
    snprintf(want, sizeof(want), "product %lld", s);
    if (!strstr(detail, want))
        fail_msg("OUT_OF_STOCK detail does not name product %lld: %s", s, detail);
    snprintf(body, sizeof(body),
             "{\"userId\":%lld,\"items\":[{\"productId\":%lld,\"quantity\":1}],\"couponId\":%lld}",
             u, p, (long long)coupon);
    bad_order("someone else's coupon", body, "b11", token, 409, "COUPON_NOT_USABLE", NULL, 0);
    snprintf(
        body, sizeof(body),
        "{\"userId\":%lld,\"items\":[{\"productId\":%lld,\"quantity\":1}],\"couponId\":999999}", u,
        p);
    bad_order("unknown coupon", body, "b12", token, 409, "COUPON_NOT_USABLE", NULL, 0);

    snprintf(body, sizeof(body),
             "{\"userId\":%lld,\"items\":[{\"productId\":%lld,\"quantity\":1}]}", u, p);
    bad_order("no key", body, NULL, token, 400, "IDEMPOTENCY_KEY_MISSING", NULL, 0);
    bad_order("no token", body, "b13", NULL, 401, "UNAUTHORIZED", NULL, 0);
    bad_order("another user's token", body, "b14", other_token, 403, "FORBIDDEN", NULL, 0);
    snprintf(body, sizeof(body),
             "{\"userId\":%lld,\"items\":[{\"productId\":%lld,\"quantity\":1}],"
             "\"idempotencyKey\":\"body-key\"}",
             u, p);
    bad_order("header and body keys differ", body, "header-key", token, 400, "INVALID_INPUT", NULL,
              0);
    snprintf(body, sizeof(body),
             "{\"userId\":999999999,\"items\":[{\"productId\":%lld,\"quantity\":1}]}", p);
    bad_order("unknown user (admin)", body, "b15", admin, 404, "USER_NOT_FOUND", NULL, 0);

    /* Nothing was reserved or used. The effect's refusals (b9 to b12: 404, 409) are stored
     * with their keys; what was refused before the effect ran (400, 401, 403) is not. */
    assert_int_equal(sql1(sql_user_orders, user), 0);
    assert_int_equal(sql1(sql_order_keys, user), 4);
    assert_stock(plenty, 50);
    assert_stock(scarce, 2);
    assert_int_equal(sql1(sql_reserved, plenty), 0);
    assert_int_equal(sql2(sql_coupon_used, other, coupon), 0);
    free(token);
    free(other_token);
    assert_check_passes();
}

/* ---- reads ---- */

static void list_mine_filters_and_pages(void **state)
{
    char *token, *other_token, path[160], cursor[32];
    int64_t user = new_user("Lister", 10000, &token);
    int64_t other = new_user("Peeker", 0, &other_token);
    int64_t product = new_product("Listed", 100, 100);
    struct line one[] = {{product, 1}};
    int64_t ids[3];
    struct http_result r;

    for (int i = 0; i < 3; i++) {
        json_t *o = order_ok(&srv[i], user, token, one, 1, 0);
        ids[i] = jint(o, "orderId");
        json_decref(o);
    }
    json_decref(pay_ok(&srv[0], ids[1], user, token));

    snprintf(path, sizeof(path), "/api/users/%lld/orders?limit=2", (long long)user);
    assert_int_equal(get(&srv[1], path, token, &r), 200);
    json_t *j = parse_body(r.body);
    http_result_free(&r);
    json_t *orders = json_object_get(j, "orders");
    assert_int_equal(json_array_size(orders), 2);
    assert_int_equal(jint(json_array_get(orders, 0), "orderId"), ids[2]);
    assert_int_equal(jint(json_array_get(orders, 1), "orderId"), ids[1]);
    assert_string_equal(jstr(json_array_get(orders, 1), "status"), "PAID");
    assert_non_null(jstr(j, "nextCursor"));
    snprintf(cursor, sizeof(cursor), "%s", jstr(j, "nextCursor"));
    json_decref(j);

    snprintf(path, sizeof(path), "/api/users/%lld/orders?limit=2&cursor=%s", (long long)user,
             cursor);
    assert_int_equal(get(&srv[2], path, token, &r), 200);
    j = parse_body(r.body);
    http_result_free(&r);
    orders = json_object_get(j, "orders");
    assert_int_equal(json_array_size(orders), 1);
    assert_int_equal(jint(json_array_get(orders, 0), "orderId"), ids[0]);
    assert_true(json_is_null(json_object_get(j, "nextCursor")));
    json_decref(j);

    snprintf(path, sizeof(path), "/api/users/%lld/orders?status=PAID", (long long)user);
    assert_int_equal(get(&srv[0], path, token, &r), 200);
    j = parse_body(r.body);
    http_result_free(&r);
    orders = json_object_get(j, "orders");
    assert_int_equal(json_array_size(orders), 1);
    assert_int_equal(jint(json_array_get(orders, 0), "orderId"), ids[1]);
    json_decref(j);

    snprintf(path, sizeof(path), "/api/users/%lld/orders?status=PENDING", (long long)user);
    assert_int_equal(get(&srv[0], path, token, &r), 200);
    j = parse_body(r.body);
    http_result_free(&r);
    assert_int_equal(json_array_size(json_object_get(j, "orders")), 2);
    json_decref(j);

    snprintf(path, sizeof(path), "/api/users/%lld/orders?status=SHIPPED", (long long)user);
    get(&srv[0], path, token, &r);
    expect_problem(r.status, r.body, 400, "INVALID_INPUT", "unknown status filter");
    http_result_free(&r);
    snprintf(path, sizeof(path), "/api/users/%lld/orders", (long long)user);
    get(&srv[0], path, other_token, &r);
    expect_problem(r.status, r.body, 403, "FORBIDDEN", "another user's list");
    http_result_free(&r);
    snprintf(path, sizeof(path), "/api/users/%lld/orders", (long long)other);
    assert_int_equal(get(&srv[0], path, other_token, &r), 200);
    j = parse_body(r.body);
    http_result_free(&r);
    assert_int_equal(json_array_size(json_object_get(j, "orders")), 0);
    json_decref(j);
    free(token);
    free(other_token);
    assert_check_passes();
}

/* ---- concurrency over three processes ---- */

#define BUYERS     150
#define UNITS      100
#define RACE_PRICE 1000

static void buyers_150_race_for_100_units(void **state)
{
    struct call *calls = calloc(BUYERS, sizeof(*calls));
    struct call *pays = calloc(UNITS, sizeof(*pays));
    int64_t users[BUYERS];
    char *tokens[BUYERS], want[64], detail[256];
    int64_t product = new_product("Hot Item", RACE_PRICE, UNITS);
    int created = 0, sold_out = 0, npay = 0;

    for (int i = 0; i < BUYERS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "Buyer %d", i);
        users[i] = new_user(name, RACE_PRICE, &tokens[i]);
        struct line one[] = {{product, 1}};
        calls[i].server = &srv[i % NSERVERS];
        snprintf(calls[i].path, sizeof(calls[i].path), "/api/orders");
        calls[i].token = tokens[i];
        order_body(calls[i].body, sizeof(calls[i].body), users[i], one, 1, 0);
        snprintf(calls[i].key, sizeof(calls[i].key), "race");
    }
    assert_stock(product, UNITS); /* cached everywhere before the race */
    run_calls(calls, BUYERS);
    snprintf(want, sizeof(want), "product %lld", (long long)product);
    for (int i = 0; i < BUYERS; i++) {
        if (calls[i].status == 201) {
            json_t *o = parse_body(calls[i].response);
            struct call *p = &pays[npay++];
            p->server = &srv[(i + 1) % NSERVERS];
            snprintf(p->path, sizeof(p->path), "/api/orders/%lld/payment",
                     (long long)jint(o, "orderId"));
            p->token = tokens[i];
            snprintf(p->body, sizeof(p->body), "{\"userId\":%lld}", (long long)users[i]);
            snprintf(p->key, sizeof(p->key), "race-pay");
            json_decref(o);
            created++;
            continue;
        }
        expect_problem(calls[i].status, calls[i].response, 409, "OUT_OF_STOCK", "race loser");
        if (!strstr(problem_detail(calls[i].response, detail, sizeof(detail)), want))
            fail_msg("OUT_OF_STOCK does not name %s: %s", want, detail);
        sold_out++;
    }
    assert_int_equal(created, UNITS);
    assert_int_equal(sold_out, BUYERS - UNITS);
    assert_stock(product, 0);
    assert_int_equal(sql1(sql_reserved, product), UNITS);
    assert_int_equal(sql1(sql_product_orders, product), UNITS);

    /* Every winner pays, again over the three processes. */
    run_calls(pays, UNITS);
    for (int i = 0; i < UNITS; i++)
        if (pays[i].status != 200)
            fail_msg("payment %d: %ld %s", i, pays[i].status, pays[i].response);
    assert_int_equal(sql1(sql_reserved, product), 0);
    assert_int_equal(sql1(sql_sold, product), UNITS);
    assert_stock(product, 0);
    for (int i = 0; i < BUYERS; i++) {
        int64_t want_balance = calls[i].status == 201 ? 0 : RACE_PRICE;
        assert_int_equal(sql1(sql_balance, users[i]), want_balance);
        free(tokens[i]);
    }
    free_calls(calls, BUYERS);
    free_calls(pays, UNITS);
    assert_check_passes();
}

/*
 * Stock taken between an order's two calls (shopd_order_open reads the lines without a lock,
 * shopd_order_commit takes the stock): a side transaction holds the product's row with its
 * stock set to 0, as an admin's change would, while the order is on its way; the order's
 * conditional UPDATE waits for it, finds the stock gone and refuses. The refusal is stored as
 * every refusal is (409 OUT_OF_STOCK, replayed), and nothing of the order is left behind.
 */
struct side_order {
    int64_t user, product;
    const char *token;
    long status;
    char *response; /* malloc'd */
};

static void *side_order_main(void *arg)
{
    struct side_order *w = arg;
    struct line one[] = {{w->product, 1}};
    struct http_client c;
    struct http_result r;
    char body[256];

    http_client_init(&c);
    order_body(body, sizeof(body), w->user, one, 1, 0);
    w->status = post(&c, &srv[0], "/api/orders", w->token, body, "taken-meanwhile", &r);
    w->response = strdup(r.body ? r.body : "");
    http_result_free(&r);
    http_client_release(&c);
    return NULL;
}

/* A transaction of this test's database waits for a row lock. (InnoDB refreshes what
 * INNODB_TRX shows only when it has not been read for 100 ms: polled every 5 ms, it would show
 * the table as it was at the first poll for ever.) */
static bool a_lock_is_waited_for(void *arg)
{
    (void)arg;
    return harness_sql_int(&h,
                           "SELECT COUNT(*) FROM information_schema.INNODB_TRX "
                           "WHERE trx_state = 'LOCK WAIT' AND trx_mysql_thread_id IN "
                           "(SELECT id FROM information_schema.PROCESSLIST WHERE db = DATABASE())",
                           0) > 0;
}

static void stock_taken_between_the_calls_is_refused(void **state)
{
    /* stock_added first: MariaDB assigns left to right, each seeing the ones before. */
    static const char take_all[] =
        "UPDATE products SET stock_added = stock_added - stock, stock = 0 WHERE id = ?";
    char *token;
    int64_t user = new_user("Too Late", 0, &token);
    int64_t product = new_product("Last One", 100, 1);
    struct side_order w = {.user = user, .product = product, .token = token};
    struct db_val p[] = {DB_INT(product)};
    struct db_conn *side;
    struct http_result r;
    struct line one[] = {{product, 1}};
    char want[64], detail[256];
    uint64_t matched = 0;
    struct err e;
    pthread_t t;

    assert_int_equal(db_acquire(h.pool, &side, &e), 0);
    assert_int_equal(db_begin(side, &e), 0);
    assert_int_equal(db_exec(side, take_all, p, 1, &matched, NULL, &e), 0);
    assert_int_equal(matched, 1);
    pthread_create(&t, NULL, side_order_main, &w);
    assert_true(harness_wait_for_every(a_lock_is_waited_for, NULL, 20000, 150));
    assert_int_equal(db_commit(side, &e), 0);
    db_release(h.pool, side);
    pthread_join(t, NULL);

    expect_problem(w.status, w.response, 409, "OUT_OF_STOCK", "stock taken meanwhile");
    snprintf(want, sizeof(want), "product %lld", (long long)product);
    if (!strstr(problem_detail(w.response, detail, sizeof(detail)), want))
        fail_msg("OUT_OF_STOCK does not name %s: %s", want, detail);
    assert_int_equal(create_order(&srv[1], user, token, one, 1, 0, "taken-meanwhile", &r), 409);
    assert_string_equal(r.body, w.response);
    http_result_free(&r);
    assert_int_equal(sql1(sql_user_orders, user), 0);
    assert_int_equal(sql1(sql_order_keys, user), 1);
    assert_int_equal(sql1(sql_stock, product), 0);
    assert_int_equal(sql1(sql_reserved, product), 0);
    free(w.response);
    free(token);
    assert_check_passes();
}

#define CROSS_ORDERS 200
#define CROSS_USERS  20

static void opposite_line_orders_do_not_deadlock(void **state)
{
    struct call *calls = calloc(CROSS_ORDERS, sizeof(*calls));
    int64_t users[CROSS_USERS];
    char *tokens[CROSS_USERS];
    int64_t a = new_product("Cross A", 100, 300);
    int64_t b = new_product("Cross B", 100, 250);
    int64_t sum_a = 0, sum_b = 0, created = 0, refused = 0;

    for (int u = 0; u < CROSS_USERS; u++) {
        char name[32];
        snprintf(name, sizeof(name), "Crosser %d", u);
        users[u] = new_user(name, 0, &tokens[u]);
    }
    for (int i = 0; i < CROSS_ORDERS; i++) {
        int64_t qa = 1 + i % 3, qb = 1 + (i / 3) % 2;
        struct line ab[] = {{a, qa}, {b, qb}}, ba[] = {{b, qb}, {a, qa}};
        calls[i].server = &srv[i % NSERVERS];
        snprintf(calls[i].path, sizeof(calls[i].path), "/api/orders");
        calls[i].token = tokens[i % CROSS_USERS];
        order_body(calls[i].body, sizeof(calls[i].body), users[i % CROSS_USERS], i % 2 ? ba : ab, 2,
                   0);
        snprintf(calls[i].key, sizeof(calls[i].key), "cross-%d", i);
    }
    assert_stock(a, 300);
    assert_stock(b, 250);
    run_calls(calls, CROSS_ORDERS);
    for (int i = 0; i < CROSS_ORDERS; i++) {
        if (calls[i].status == 201) {
            json_t *o = parse_body(calls[i].response);
            sum_a += jint(item_of(o, a), "quantity");
            sum_b += jint(item_of(o, b), "quantity");
            json_decref(o);
            created++;
        } else {
            /* Never a deadlock (503) or any other error: only a sold-out line. */
            expect_problem(calls[i].status, calls[i].response, 409, "OUT_OF_STOCK", "cross order");
            refused++;
        }
    }
    /* The demand for A (400) exceeds its stock (300): some orders must be refused. */
    assert_true(created > 0);
    assert_true(refused > 0);
    assert_stock(a, 300 - sum_a);
    assert_stock(b, 250 - sum_b);
    assert_int_equal(sql1(sql_reserved, a), sum_a);
    assert_int_equal(sql1(sql_reserved, b), sum_b);
    assert_int_equal(sql1(sql_product_orders, a), created);
    assert_int_equal(sql1(sql_product_orders, b), created);
    for (int u = 0; u < CROSS_USERS; u++)
        free(tokens[u]);
    free_calls(calls, CROSS_ORDERS);
    assert_check_passes();
}

#define SAME_KEY_REQUESTS 100

static void one_key_100_requests_one_order(void **state)
{
    struct call *calls = calloc(SAME_KEY_REQUESTS, sizeof(*calls));
    char *token;
    int64_t user = new_user("One Key", 0, &token);
    int64_t product = new_product("Once", 500, 10);
    struct line one[] = {{product, 1}};
    int fresh = 0;

    for (int i = 0; i < SAME_KEY_REQUESTS; i++) {
        calls[i].server = &srv[i % NSERVERS];
        snprintf(calls[i].path, sizeof(calls[i].path), "/api/orders");
        calls[i].token = token;
        order_body(calls[i].body, sizeof(calls[i].body), user, one, 1, 0);
        snprintf(calls[i].key, sizeof(calls[i].key), "one-key");
    }
    run_calls(calls, SAME_KEY_REQUESTS);
    for (int i = 0; i < SAME_KEY_REQUESTS; i++) {
        if (calls[i].status != 201)
            fail_msg("request %d (process %d): %ld %s", i, i % NSERVERS, calls[i].status,
                     calls[i].response);
        if (strcmp(calls[i].response, calls[0].response))
            fail_msg("request %d answered %s, request 0 %s", i, calls[i].response,
                     calls[0].response);
        fresh += !calls[i].replayed;
    }
    assert_int_equal(fresh, 1);
    assert_int_equal(sql1(sql_user_orders, user), 1);
    assert_int_equal(sql1(sql_order_keys, user), 1);
    assert_stock(product, 9);
    assert_int_equal(sql1(sql_reserved, product), 1);
    free(token);
    free_calls(calls, SAME_KEY_REQUESTS);
    assert_check_passes();
}

#define PAYERS 30

static void thirty_payments_charge_once(void **state)
{
    struct call *calls = calloc(PAYERS, sizeof(*calls));
    char *token;
    int64_t user = new_user("Eager Payer", 10000, &token);
    int64_t product = new_product("Paid Once", 3000, 5);
    struct line one[] = {{product, 1}};
    json_t *o = order_ok(&srv[0], user, token, one, 1, 0);
    int64_t order = jint(o, "orderId");
    int paid = 0;

    json_decref(o);
    for (int i = 0; i < PAYERS; i++) {
        calls[i].server = &srv[i % NSERVERS];
        snprintf(calls[i].path, sizeof(calls[i].path), "/api/orders/%lld/payment",
                 (long long)order);
        calls[i].token = token;
        snprintf(calls[i].body, sizeof(calls[i].body), "{\"userId\":%lld}", (long long)user);
        snprintf(calls[i].key, sizeof(calls[i].key), "pay-%d", i);
    }
    run_calls(calls, PAYERS);
    for (int i = 0; i < PAYERS; i++) {
        if (calls[i].status == 200) {
            json_t *p = parse_body(calls[i].response);
            assert_int_equal(jint(p, "paidAmount"), 3000);
            assert_int_equal(jint(p, "remainingBalance"), 7000);
            json_decref(p);
            paid++;
            continue;
        }
        expect_problem(calls[i].status, calls[i].response, 409, "ORDER_NOT_PAYABLE",
                       "second payment");
    }
    assert_int_equal(paid, 1);
    assert_balance(user, token, 7000);
    assert_int_equal(sql_int_str(sql_entries_of_order, order, "PAYMENT"), 1);
    assert_int_equal(sql1(sql_history_count, user), 2); /* the charge and the payment */
    assert_int_equal(sql1(sql_payments, order), 1);
    assert_int_equal(sql_int_str(sql_events, order, "order.paid"), 1);
    assert_order_status(order, "PAID");
    assert_int_equal(sql1(sql_sold, product), 1);
    free(token);
    free_calls(calls, PAYERS);
    assert_check_passes();
}

/*
 * Payments of many users at once, which with SHOPD_LOCKS=db go into MariaDB in group commits
 * (service/pay_batch.h): each keeps its own outcome. Every user has one order of one unit of
 * a shared product; one in four has too little money; each payment is sent twice with one
 * key, to two instances, so that the two copies can meet in one batch or in two. Afterwards
 * the totals are exact: one payment per order that could be paid, each refusal stored (its
 * key answers the refusal again after a top-up), both copies of a key answered alike.
 */
#define BATCH_PAYERS 24
#define BATCH_PRICE  2000

static void payments_of_many_users_each_keep_their_outcome(void **state)
{
    struct call *calls = calloc(2 * BATCH_PAYERS, sizeof(*calls));
    int64_t users[BATCH_PAYERS], orders[BATCH_PAYERS];
    char *tokens[BATCH_PAYERS];
    int64_t product = new_product("Batched", BATCH_PRICE, BATCH_PAYERS);
    struct line one[] = {{product, 1}};
    int64_t batched = harness_metric(&srv[0], "shopd_payment_batched_total");
    int paid = 0;

    (void)state;
    for (int i = 0; i < BATCH_PAYERS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "Batch Payer %d", i);
        users[i] = new_user(name, i % 4 ? BATCH_PRICE + i : BATCH_PRICE - 1, &tokens[i]);
        json_t *o = order_ok(&srv[i % NSERVERS], users[i], tokens[i], one, 1, 0);
        orders[i] = jint(o, "orderId");
        json_decref(o);
        for (int copy = 0; copy < 2; copy++) {
            struct call *k = &calls[2 * i + copy];
            k->server = &srv[(i + copy) % NSERVERS];
            snprintf(k->path, sizeof(k->path), "/api/orders/%lld/payment", (long long)orders[i]);
            k->token = tokens[i];
            snprintf(k->body, sizeof(k->body), "{\"userId\":%lld}", (long long)users[i]);
            snprintf(k->key, sizeof(k->key), "batch-pay-%d", i);
        }
    }
    run_calls(calls, 2 * BATCH_PAYERS);
    for (int i = 0; i < BATCH_PAYERS; i++) {
        struct call *first = &calls[2 * i], *second = &calls[2 * i + 1];
        bool rich = i % 4 != 0;
        assert_int_equal(first->status, second->status);
        assert_string_equal(first->response, second->response);
        if (!rich) {
            expect_problem(first->status, first->response, 409, "INSUFFICIENT_BALANCE",
                           "a batched payment beyond the balance");
            assert_order_status(orders[i], "PENDING");
            assert_balance(users[i], tokens[i], BATCH_PRICE - 1);
            continue;
        }
        assert_int_equal(first->status, 200);
        json_t *p = parse_body(first->response);
        assert_int_equal(jint(p, "orderId"), orders[i]);
        assert_int_equal(jint(p, "paidAmount"), BATCH_PRICE);
        assert_int_equal(jint(p, "remainingBalance"), i);
        json_decref(p);
        paid++;
        assert_order_status(orders[i], "PAID");
        assert_balance(users[i], tokens[i], i);
        assert_int_equal(sql1(sql_payments, orders[i]), 1);
        assert_int_equal(sql_int_str(sql_events, orders[i], "order.paid"), 1);
        assert_int_equal(sql1(sql_history_count, users[i]), 2);
    }
    assert_int_equal(paid, BATCH_PAYERS - BATCH_PAYERS / 4);
    assert_int_equal(sql1(sql_sold, product), paid);
    assert_int_equal(sql1(sql_reserved, product), BATCH_PAYERS - paid);
    if (harness_locks_db())
        assert_true(harness_metric(&srv[0], "shopd_payment_batched_total") > batched);

    /* A stored refusal is the key's answer, even once the money is there. */
    charge(users[0], tokens[0], BATCH_PRICE);
    struct http_result r;
    order_action(&srv[1], "payment", orders[0], users[0], tokens[0], "batch-pay-0", &r);
    expect_problem(r.status, r.body, 409, "INSUFFICIENT_BALANCE", "the refused key again");
    http_result_free(&r);
    assert_order_status(orders[0], "PENDING");
    for (int i = 0; i < BATCH_PAYERS; i++)
        free(tokens[i]);
    free_calls(calls, 2 * BATCH_PAYERS);
    assert_check_passes();
}

/*
 * A product repriced and renamed after an instance priced an order of it: the next order there
 * carries the new price and name (a batched order priced with what the instance remembered is
 * refused by the batch's conditional UPDATE and runs alone, which reads the product afresh).
 */
static void a_repriced_product_is_ordered_at_its_new_price(void **state)
{
    char *token, url[160];
    int64_t user = new_user("Repriced Buyer", 100000, &token);
    int64_t product = new_product("Lamp Before", 1000, 10);
    struct line one[] = {{product, 1}};
    struct http_result r;

    (void)state;
    json_decref(order_ok(&srv[0], user, token, one, 1, 0));
    snprintf(url, sizeof(url), "%s/api/admin/products/%lld", srv[1].url, (long long)product);
    assert_int_equal(
        http_once("PATCH", url, admin, "{\"price\":1500,\"name\":\"Lamp After\"}", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    http_result_free(&r);
    for (int round = 0; round < 2; round++) {
        json_t *o = order_ok(&srv[0], user, token, one, 1, 0);
        json_t *line = json_array_get(json_object_get(o, "items"), 0);
        assert_int_equal(jint(line, "unitPrice"), 1500);
        assert_string_equal(json_string_value(json_object_get(line, "productName")), "Lamp After");
        assert_int_equal(jint(o, "totalAmount"), 1500);
        json_decref(o);
    }
    assert_stock(product, 7);
    free(token);
    assert_check_passes();
}

/* ---- coupons ---- */

static void coupon_discounts_and_a_used_coupon_is_refused(void **state)
{
    char *token, *other_token, key[32];
    int64_t user = new_user("Coupon User", 100000, &token);
    int64_t other = new_user("Coupon Other", 0, &other_token);
    int64_t cheap = new_product("Pen", 999, 50);
    int64_t dear = new_product("Lamp", 12345, 50);
    int64_t rate = new_coupon("RATE", 15, 10);
    int64_t fixed = new_coupon("FIXED", 5000, 10);
    int64_t big = new_coupon("FIXED", 20000, 10);
    int64_t foreign = new_coupon("RATE", 50, 10);
    struct http_result r;

    issue(rate, user, token);
    issue(fixed, user, token);
    issue(big, user, token);
    issue(foreign, other, other_token);

    /* RATE: floor(2997 × 15 / 100) = floor(449.55) = 449. */
    struct line three_pens[] = {{cheap, 3}};
    json_t *o = order_ok(&srv[0], user, token, three_pens, 1, rate);
    int64_t rate_order = jint(o, "orderId");
    assert_int_equal(jint(o, "subtotalAmount"), 2997);
    assert_int_equal(jint(o, "discountAmount"), 449);
    assert_int_equal(jint(o, "totalAmount"), 2548);
    assert_int_equal(jint(o, "couponId"), rate);
    json_decref(o);
    assert_int_equal(sql2(sql_coupon_used, user, rate), 1);
    assert_int_equal(sql2(sql_coupon_order, user, rate), rate_order);
    assert_stock(cheap, 47);

    /* The used coupon again, through another process: refused, and nothing reserved. */
    struct line one_pen[] = {{cheap, 1}};
    create_order(&srv[1], user, token, one_pen, 1, rate, fresh_key(key, sizeof(key)), &r);
    expect_problem(r.status, r.body, 409, "COUPON_NOT_USABLE", "used coupon");
    http_result_free(&r);
    assert_stock(cheap, 47);
    assert_int_equal(sql1(sql_user_orders, user), 1);
    /* Nor may anyone use a coupon issued to someone else. */
    create_order(&srv[2], user, token, one_pen, 1, foreign, fresh_key(key, sizeof(key)), &r);
    expect_problem(r.status, r.body, 409, "COUPON_NOT_USABLE", "someone else's coupon");
    http_result_free(&r);
    assert_int_equal(sql2(sql_coupon_used, other, foreign), 0);

    /* FIXED below the subtotal: the value. */
    struct line one_lamp[] = {{dear, 1}};
    o = order_ok(&srv[1], user, token, one_lamp, 1, fixed);
    assert_int_equal(jint(o, "subtotalAmount"), 12345);
    assert_int_equal(jint(o, "discountAmount"), 5000);
    assert_int_equal(jint(o, "totalAmount"), 7345);
    json_decref(o);

    /* FIXED above the subtotal: the subtotal, and the order is free. */
    o = order_ok(&srv[2], user, token, one_lamp, 1, big);
    int64_t free_order = jint(o, "orderId");
    assert_int_equal(jint(o, "discountAmount"), 12345);
    assert_int_equal(jint(o, "totalAmount"), 0);
    json_decref(o);
    json_t *p = pay_ok(&srv[0], free_order, user, token);
    assert_int_equal(jint(p, "paidAmount"), 0);
    assert_int_equal(jint(p, "remainingBalance"), 100000);
    json_decref(p);
    /* Cancelled after its payment of 0: nothing to refund, the coupon back. */
    json_decref(cancel_ok(&srv[1], free_order, user, token));
    assert_int_equal(sql_int_str(sql_entries_of_order, free_order, "REFUND"), 0);
    assert_int_equal(sql2(sql_coupon_used, user, big), 0);
    assert_stock(dear, 49);

    p = pay_ok(&srv[1], rate_order, user, token);
    assert_int_equal(jint(p, "paidAmount"), 2548);
    assert_int_equal(jint(p, "remainingBalance"), 100000 - 2548);
    json_decref(p);
    assert_balance(user, token, 100000 - 2548);
    /* Paid, the coupon stays used. */
    assert_int_equal(sql2(sql_coupon_used, user, rate), 1);
    free(token);
    free(other_token);
    assert_check_passes();
}

/* ---- cancel ---- */

static void cancel_before_payment_restores_stock_and_coupon(void **state)
{
    char *token;
    int64_t user = new_user("Canceller", 0, &token);
    int64_t p = new_product("Chair", 2000, 10);
    int64_t q = new_product("Cushion", 500, 10);
    int64_t coupon = new_coupon("FIXED", 1000, 5);
    struct line lines[] = {{p, 2}, {q, 3}};

    issue(coupon, user, token);
    json_t *o = order_ok(&srv[0], user, token, lines, 2, coupon);
    int64_t order = jint(o, "orderId");
    assert_int_equal(jint(o, "totalAmount"), 4000 + 1500 - 1000);
    json_decref(o);
    assert_stock(p, 8);
    assert_stock(q, 7);
    assert_int_equal(sql2(sql_coupon_used, user, coupon), 1);

    json_t *c = cancel_ok(&srv[1], order, user, token);
    assert_int_equal(jint(c, "totalAmount"), 4500);
    assert_int_equal(jint(c, "couponId"), coupon);
    json_decref(c);
    c = get_order_ok(&srv[2], order, token);
    assert_string_equal(jstr(c, "status"), "CANCELLED");
    json_decref(c);
    assert_order_status(order, "CANCELLED");
    assert_stock(p, 10);
    assert_stock(q, 10);
    assert_int_equal(sql1(sql_reserved, p), 0);
    assert_int_equal(sql1(sql_reserved, q), 0);
    assert_int_equal(sql2(sql_coupon_used, user, coupon), 0);
    assert_int_equal(sql2(sql_coupon_order, user, coupon), 0);
    /* Nothing was paid: no money moved, no event for the data platform. */
    assert_int_equal(sql1(sql_history_count, user), 0);
    assert_int_equal(sql1(sql_payments, order), 0);
    assert_int_equal(sql_int_str(sql_events, order, "order.cancelled"), 0);

    /* The coupon is usable again. */
    o = order_ok(&srv[2], user, token, lines, 2, coupon);
    assert_int_equal(jint(o, "discountAmount"), 1000);
    json_decref(o);
    assert_int_equal(sql2(sql_coupon_used, user, coupon), 1);
    free(token);
    assert_check_passes();
}

static void cancel_after_payment_refunds(void **state)
{
    char *token, path[128];
    int64_t user = new_user("Regretful", 50000, &token);
    int64_t product = new_product("Sofa", 3000, 10);
    int64_t coupon = new_coupon("RATE", 10, 5);
    struct line four[] = {{product, 4}};
    struct http_result r;

    issue(coupon, user, token);
    json_t *o = order_ok(&srv[0], user, token, four, 1, coupon);
    int64_t order = jint(o, "orderId");
    assert_int_equal(jint(o, "totalAmount"), 12000 - 1200);
    json_decref(o);
    json_decref(pay_ok(&srv[1], order, user, token));
    assert_balance(user, token, 50000 - 10800);
    assert_int_equal(sql1(sql_sold, product), 4);
    assert_int_equal(sql1(sql_sales, product), 4);

    json_t *c = cancel_ok(&srv[2], order, user, token);
    assert_int_equal(jint(c, "totalAmount"), 10800);
    json_decref(c);
    assert_order_status(order, "CANCELLED");
    assert_balance(user, token, 50000);
    assert_int_equal(sql_int_str(sql_entries_of_order, order, "REFUND"), 1);
    assert_int_equal(sql_int_str(sql_entry_amount, order, "REFUND"), 10800);
    assert_stock(product, 10);
    assert_int_equal(sql1(sql_sold, product), 0);
    assert_int_equal(sql1(sql_reserved, product), 0);
    assert_int_equal(sql1(sql_sales, product), 0);
    assert_int_equal(sql2(sql_coupon_used, user, coupon), 0);
    assert_int_equal(sql_int_str(sql_payments_with_status, order, "REFUNDED"), 1);
    assert_int_equal(sql_int_str(sql_events, order, "order.cancelled"), 1);

    /* The history shows it newest first: refund, payment, charge. */
    snprintf(path, sizeof(path), "/api/users/%lld/balance/history", (long long)user);
    assert_int_equal(get(&srv[0], path, token, &r), 200);
    json_t *j = parse_body(r.body);
    http_result_free(&r);
    json_t *entries = json_object_get(j, "entries");
    assert_int_equal(json_array_size(entries), 3);
    json_t *refund = json_array_get(entries, 0), *payment = json_array_get(entries, 1);
    assert_string_equal(jstr(refund, "type"), "REFUND");
    assert_int_equal(jint(refund, "amount"), 10800);
    assert_int_equal(jint(refund, "orderId"), order);
    assert_int_equal(jint(refund, "balanceAfter"), 50000);
    assert_string_equal(jstr(payment, "type"), "PAYMENT");
    assert_int_equal(jint(payment, "amount"), -10800);
    assert_int_equal(jint(payment, "orderId"), order);
    json_decref(j);
    free(token);
    assert_check_passes();
}

/* API.md: "A refund is always applied, cap or not." A paid order whose refund takes the
 * balance past 1,000,000,000,000 KRW is cancelled and refunded in full; the cap still stops
 * charges, and a payment from such a balance only brings it down. */
static void refund_past_the_cap_is_applied(void **state)
{
    static const char sql_top_up[] =
        "INSERT INTO balance_history (user_id, type, amount_krw, balance_after_krw, order_id, "
        "created_at) SELECT id, 'CHARGE', 1000000000000 - balance_krw, 1000000000000, NULL, "
        "UTC_TIMESTAMP(6) FROM users WHERE id = ?";
    static const char sql_to_cap[] = "UPDATE users SET balance_krw = 1000000000000 WHERE id = ?";
    const int64_t cap = 1000000000000LL;
    char *token, path[96], key[32];
    int64_t user = new_user("Big spender", 20000, &token);
    int64_t product = new_product("Yacht", 10000, 10);
    struct line one[] = {{product, 1}};
    struct http_result r;

    json_t *o = order_ok(&srv[0], user, token, one, 1, 0);
    int64_t order = jint(o, "orderId");
    json_decref(o);
    json_decref(pay_ok(&srv[1], order, user, token));
    assert_balance(user, token, 10000);
    /* Topped up to the cap meanwhile (straight in MariaDB: 100,000 charges of 10,000,000 would
     * take minutes), history included, so that balance = sum of history still holds. */
    assert_int_equal(sql_exec(sql_top_up, user), 1);
    assert_int_equal(sql_exec(sql_to_cap, user), 1);
    assert_balance(user, token, cap);

    json_t *c = cancel_ok(&srv[2], order, user, token);
    assert_string_equal(jstr(c, "status"), "CANCELLED");
    json_decref(c);
    assert_balance(user, token, cap + 10000);
    assert_int_equal(sql_int_str(sql_entry_amount, order, "REFUND"), 10000);
    assert_int_equal(sql1(sql_history_sum, user), cap + 10000);

    /* The cap still stops a charge... */
    snprintf(path, sizeof(path), "/api/users/%lld/balance/charge", (long long)user);
    assert_int_equal(
        post(&it_client, pick(0), path, token, "{\"amount\":1}", fresh_key(key, sizeof(key)), &r),
        409);
    expect_problem(r.status, r.body, 409, "BALANCE_LIMIT", "charge past the cap");
    http_result_free(&r);
    /* ...while a payment from above the cap goes through. */
    o = order_ok(&srv[0], user, token, one, 1, 0);
    order = jint(o, "orderId");
    json_decref(o);
    json_decref(pay_ok(&srv[1], order, user, token));
    assert_balance(user, token, cap);
    free(token);
}

/* On every idempotent route a request wrong in itself says so (400) before the key is asked
 * for: the same answer with or without a key. */
static void input_errors_come_before_the_key(void **state)
{
    char *token, body[256], path[96];
    int64_t user = new_user("Keyless", 0, &token);
    int64_t product = new_product("Keyless thing", 100, 5);
    struct http_result r;

    snprintf(body, sizeof(body),
             "{\"userId\":%lld,\"items\":[{\"productId\":%lld,\"quantity\":1},"
             "{\"productId\":%lld,\"quantity\":2}]}",
             (long long)user, (long long)product, (long long)product);
    bad_order("duplicate product, no key", body, NULL, token, 400, "INVALID_INPUT", NULL, 0);
    snprintf(body, sizeof(body), "{\"userId\":%lld,\"items\":[]}", (long long)user);
    bad_order("no items, no key", body, NULL, token, 400, "INVALID_INPUT", NULL, 0);
    snprintf(body, sizeof(body),
             "{\"userId\":%lld,\"items\":[{\"productId\":%lld,\"quantity\":0}]}", (long long)user,
             (long long)product);
    bad_order("quantity 0, no key", body, NULL, token, 400, "INVALID_INPUT", NULL, 0);
    snprintf(path, sizeof(path), "/api/orders/1/payment");
    post(&it_client, pick(0), path, token, "{}", NULL, &r);
    expect_problem(r.status, r.body, 400, "INVALID_INPUT", "payment without userId, no key");
    http_result_free(&r);
    snprintf(path, sizeof(path), "/api/orders/1/cancel");
    post(&it_client, pick(0), path, token, "{\"userId\":\"x\"}", NULL, &r);
    expect_problem(r.status, r.body, 400, "INVALID_INPUT", "cancel with a bad userId, no key");
    http_result_free(&r);
    assert_int_equal(sql1(sql_user_orders, user), 0);
    free(token);
}

static void cancel_twice_is_refused(void **state)
{
    char *token, flag[16], key[32];
    int64_t user = new_user("Twice", 20000, &token);
    int64_t product = new_product("Vase", 1000, 10);
    struct line two[] = {{product, 2}};
    struct http_result first, r;

    /* A PENDING order. */
    json_t *o = order_ok(&srv[0], user, token, two, 1, 0);
    int64_t pending = jint(o, "orderId");
    json_decref(o);
    assert_int_equal(order_action(&srv[0], "cancel", pending, user, token, "twice-1", &first), 200);
    order_action(&srv[1], "cancel", pending, user, token, "twice-2", &r);
    expect_problem(r.status, r.body, 409, "ORDER_NOT_CANCELLABLE", "second cancel");
    http_result_free(&r);
    /* The first key again: its response, replayed, and nothing done twice. */
    assert_int_equal(order_action(&srv[2], "cancel", pending, user, token, "twice-1", &r), 200);
    assert_string_equal(r.body, first.body);
    assert_non_null(http_header(&r, "Idempotent-Replayed", flag, sizeof(flag)));
    http_result_free(&r);
    http_result_free(&first);
    order_action(&srv[2], "payment", pending, user, token, fresh_key(key, sizeof(key)), &r);
    expect_problem(r.status, r.body, 409, "ORDER_NOT_PAYABLE", "pay a cancelled order");
    http_result_free(&r);
    assert_stock(product, 10);

    /* A PAID order: refunded once, however often it is cancelled. */
    o = order_ok(&srv[1], user, token, two, 1, 0);
    int64_t paid = jint(o, "orderId");
    json_decref(o);
    json_decref(pay_ok(&srv[2], paid, user, token));
    json_decref(cancel_ok(&srv[0], paid, user, token));
    order_action(&srv[1], "cancel", paid, user, token, fresh_key(key, sizeof(key)), &r);
    expect_problem(r.status, r.body, 409, "ORDER_NOT_CANCELLABLE", "cancel a cancelled order");
    http_result_free(&r);
    assert_balance(user, token, 20000);
    assert_int_equal(sql_int_str(sql_entries_of_order, paid, "REFUND"), 1);
    assert_stock(product, 10);
    assert_int_equal(sql1(sql_sold, product), 0);
    free(token);
    assert_check_passes();
}

#define RACERS 20

/* Payments and cancels of one order at once: it ends CANCELLED, and any payment is refunded. */
static void pay_and_cancel_race(void **state)
{
    struct call *calls = calloc(RACERS, sizeof(*calls));
    char *token;
    int64_t user = new_user("Undecided", 10000, &token);
    int64_t product = new_product("Contested", 2500, 10);
    struct line two[] = {{product, 2}};
    json_t *o = order_ok(&srv[0], user, token, two, 1, 0);
    int64_t order = jint(o, "orderId");
    int paid = 0, cancelled = 0;

    json_decref(o);
    for (int i = 0; i < RACERS; i++) {
        calls[i].server = &srv[i % NSERVERS];
        snprintf(calls[i].path, sizeof(calls[i].path), "/api/orders/%lld/%s", (long long)order,
                 i % 2 ? "cancel" : "payment");
        calls[i].token = token;
        snprintf(calls[i].body, sizeof(calls[i].body), "{\"userId\":%lld}", (long long)user);
        snprintf(calls[i].key, sizeof(calls[i].key), "race-%d", i);
    }
    run_calls(calls, RACERS);
    for (int i = 0; i < RACERS; i++) {
        bool is_cancel = i % 2;
        if (calls[i].status == 200) {
            paid += !is_cancel;
            cancelled += is_cancel;
            continue;
        }
        expect_problem(calls[i].status, calls[i].response, 409,
                       is_cancel ? "ORDER_NOT_CANCELLABLE" : "ORDER_NOT_PAYABLE", calls[i].path);
    }
    assert_int_equal(cancelled, 1);
    assert_true(paid <= 1);
    assert_order_status(order, "CANCELLED");
    assert_balance(user, token, 10000);
    assert_int_equal(sql_int_str(sql_entries_of_order, order, "PAYMENT"), paid);
    assert_int_equal(sql_int_str(sql_entries_of_order, order, "REFUND"), paid);
    assert_stock(product, 10);
    assert_int_equal(sql1(sql_reserved, product), 0);
    assert_int_equal(sql1(sql_sold, product), 0);
    free(token);
    free_calls(calls, RACERS);
    assert_check_passes();
}

/* ---- strangers ---- */

static void other_user_can_neither_read_pay_nor_cancel(void **state)
{
    char *owner_token, *intruder_token, path[64];
    int64_t owner = new_user("Owner", 10000, &owner_token);
    int64_t intruder = new_user("Intruder", 10000, &intruder_token);
    int64_t product = new_product("Private", 1000, 5);
    struct line one[] = {{product, 1}};
    json_t *o = order_ok(&srv[0], owner, owner_token, one, 1, 0);
    int64_t order = jint(o, "orderId");
    struct http_result r;

    json_decref(o);
    snprintf(path, sizeof(path), "/api/orders/%lld", (long long)order);
    get(&srv[1], path, intruder_token, &r);
    expect_problem(r.status, r.body, 404, "ORDER_NOT_FOUND", "stranger reads");
    http_result_free(&r);
    get(&srv[1], path, NULL, &r);
    expect_problem(r.status, r.body, 401, "UNAUTHORIZED", "anonymous read");
    http_result_free(&r);

    /* In the owner's name: the token is not theirs. */
    order_action(&srv[1], "payment", order, owner, intruder_token, "pay", &r);
    expect_problem(r.status, r.body, 403, "FORBIDDEN", "stranger pays as the owner");
    http_result_free(&r);
    order_action(&srv[2], "cancel", order, owner, intruder_token, "cancel", &r);
    expect_problem(r.status, r.body, 403, "FORBIDDEN", "stranger cancels as the owner");
    http_result_free(&r);
    /* In their own name: the order does not exist for them. */
    order_action(&srv[1], "payment", order, intruder, intruder_token, "pay", &r);
    expect_problem(r.status, r.body, 404, "ORDER_NOT_FOUND", "stranger pays");
    http_result_free(&r);
    order_action(&srv[2], "cancel", order, intruder, intruder_token, "cancel", &r);
    expect_problem(r.status, r.body, 404, "ORDER_NOT_FOUND", "stranger cancels");
    http_result_free(&r);

    /* Untouched: still PENDING, nobody's money moved, the stock still reserved. */
    json_t *g = get_order_ok(&srv[2], order, owner_token);
    assert_string_equal(jstr(g, "status"), "PENDING");
    json_decref(g);
    g = get_order_ok(&srv[0], order, admin);
    assert_int_equal(jint(g, "userId"), owner);
    json_decref(g);
    assert_balance(owner, owner_token, 10000);
    assert_balance(intruder, intruder_token, 10000);
    assert_int_equal(sql1(sql_payments, order), 0);
    assert_stock(product, 4);

    /* The owner's own keys are theirs: "pay" is a fresh key for the owner. */
    assert_int_equal(order_action(&srv[0], "payment", order, owner, owner_token, "pay", &r), 200);
    http_result_free(&r);
    assert_balance(owner, owner_token, 9000);
    free(owner_token);
    free(intruder_token);
    assert_check_passes();
}

static void insufficient_balance_changes_nothing(void **state)
{
    char *token;
    int64_t user = new_user("Short", 1000, &token);
    int64_t product = new_product("Dear", 5000, 3);
    struct line one[] = {{product, 1}};
    json_t *o = order_ok(&srv[0], user, token, one, 1, 0);
    int64_t order = jint(o, "orderId");
    struct http_result r;

    json_decref(o);
    order_action(&srv[1], "payment", order, user, token, "short-1", &r);
    expect_problem(r.status, r.body, 409, "INSUFFICIENT_BALANCE", "pay beyond the balance");
    http_result_free(&r);
    assert_order_status(order, "PENDING");
    assert_balance(user, token, 1000);
    assert_int_equal(sql1(sql_history_count, user), 1);
    assert_int_equal(sql1(sql_payments, order), 0);
    assert_int_equal(sql_int_str(sql_events, order, "order.paid"), 0);
    assert_stock(product, 2);
    assert_int_equal(sql1(sql_reserved, product), 1);
    assert_int_equal(sql1(sql_sold, product), 0);

    /* Once the money is there, the order can be paid. */
    charge(user, token, 4000);
    json_t *p = pay_ok(&srv[2], order, user, token);
    assert_int_equal(jint(p, "remainingBalance"), 0);
    json_decref(p);
    assert_balance(user, token, 0);
    free(token);
    assert_check_passes();
}

/* ---- expiry ---- */

struct order_watch {
    const struct harness_server *server;
    int64_t order;
    const char *token;
    const char *status;
};

static bool order_reaches(void *arg)
{
    struct order_watch *w = arg;
    struct http_result r;
    char url[128];
    bool reached = false;

    snprintf(url, sizeof(url), "%s/api/orders/%lld", w->server->url, (long long)w->order);
    if (http_once("GET", url, w->token, NULL, NULL, &r) == 0 && r.status == 200) {
        json_t *j = json_loads(r.body, 0, NULL);
        const char *s = j ? jstr(j, "status") : NULL;
        reached = s && !strcmp(s, w->status);
        json_decref(j);
    }
    http_result_free(&r);
    return reached;
}

static bool nothing_pending(void *arg)
{
    return sql1(sql_pending_of_user, *(const int64_t *)arg) == 0;
}

#define EXPIRING 10

static void unpaid_orders_expire(void **state)
{
    static const char *const ttl_env[] = {"SHOPD_ORDER_TTL=2", "SHOPD_DB_LOCK_WAIT=30", NULL};
    struct harness_server t;
    char *token, key[32], path[96];
    int64_t user = new_user("Late Payer", 100000, &token);
    int64_t product = new_product("Perishable", 100, 20);
    int64_t coupon = new_coupon("FIXED", 50, 5);
    struct line two[] = {{product, 2}}, one[] = {{product, 1}};
    struct http_result r;

    issue(coupon, user, token);
    assert_int_equal(harness_server_start(&h, &t, ttl_env), 0);
    json_t *o = order_ok(&t, user, token, two, 1, coupon);
    int64_t order = jint(o, "orderId");
    assert_int_equal(jtime(o, "expiresAt") - jtime(o, "createdAt"), 2LL * 1000000);
    json_decref(o);
    /* More unpaid orders, for the four sweepers (this process and the group's) at once. */
    for (int i = 1; i < EXPIRING; i++)
        json_decref(order_ok(&t, user, token, one, 1, 0));
    /* Read (and so cached) by every process: the expiry must invalidate it. */
    assert_stock(product, 20 - 2 - (EXPIRING - 1));
    assert_int_equal(sql2(sql_coupon_used, user, coupon), 1);

    struct order_watch w = {&t, order, token, "EXPIRED"};
    assert_true(harness_wait_for(order_reaches, &w, 30000));
    assert_true(harness_wait_for(nothing_pending, &user, 30000));
    assert_stock(product, 20);
    assert_int_equal(sql1(sql_reserved, product), 0);
    assert_int_equal(sql2(sql_coupon_used, user, coupon), 0);
    assert_int_equal(sql2(sql_coupon_order, user, coupon), 0);

    /* Too late to pay, nothing left to cancel. */
    order_action(&t, "payment", order, user, token, fresh_key(key, sizeof(key)), &r);
    expect_problem(r.status, r.body, 409, "ORDER_NOT_PAYABLE", "pay an expired order");
    http_result_free(&r);
    order_action(&srv[0], "payment", order, user, token, fresh_key(key, sizeof(key)), &r);
    expect_problem(r.status, r.body, 409, "ORDER_NOT_PAYABLE", "pay an expired order");
    http_result_free(&r);
    order_action(&srv[1], "cancel", order, user, token, fresh_key(key, sizeof(key)), &r);
    expect_problem(r.status, r.body, 409, "ORDER_NOT_CANCELLABLE", "cancel an expired order");
    http_result_free(&r);
    assert_balance(user, token, 100000);
    assert_int_equal(sql1(sql_payments, order), 0);

    snprintf(path, sizeof(path), "/api/users/%lld/orders?status=EXPIRED&limit=100",
             (long long)user);
    assert_int_equal(get(&srv[2], path, token, &r), 200);
    json_t *j = parse_body(r.body);
    http_result_free(&r);
    assert_int_equal(json_array_size(json_object_get(j, "orders")), EXPIRING);
    json_decref(j);
    assert_int_equal(harness_server_stop(&t), 0);
    free(token);
    assert_check_passes();
}

/* ---- shopd check on a corrupted database ---- */

struct corruption {
    const char *what;
    const char *damage;   /* one integer parameter: the target's id */
    const char *repair;   /* the same */
    int target;           /* 0 the product, 1 the user, 2 the order, 3 the coupon */
    const char *violated; /* the invariant check must name */
};

static void check_fails_on_a_corrupted_database(void **state)
{
    static const struct corruption cases[] = {
        {"stock + 1", "UPDATE products SET stock = stock + 1 WHERE id = ?",
         "UPDATE products SET stock = stock - 1 WHERE id = ?", 0,
         "stock + reserved + sold = stock ever added"},
        {"sold + 1, stock - 1",
         "UPDATE products SET sold = sold + 1, stock = stock - 1 WHERE id = ?",
         "UPDATE products SET sold = sold - 1, stock = stock + 1 WHERE id = ?", 0,
         "sold = quantities of PAID orders"},
        {"balance without history", "UPDATE users SET balance_krw = balance_krw + 100 WHERE id = ?",
         "UPDATE users SET balance_krw = balance_krw - 100 WHERE id = ?", 1,
         "balance = sum of history"},
        {"payment refunded under a PAID order",
         "UPDATE payments SET status = 'REFUNDED' WHERE order_id = ?",
         "UPDATE payments SET status = 'PAID' WHERE order_id = ?", 2,
         "each PAID order has exactly one payment and one order.paid event"},
        {"coupon let go by its order", "UPDATE user_coupons SET order_id = NULL WHERE order_id = ?",
         "UPDATE user_coupons u JOIN orders o ON o.user_coupon_id = u.id SET u.order_id = o.id "
         "WHERE o.id = ?",
         2, "each USED coupon is on exactly one live order"},
        {"coupon over-issued",
         "UPDATE coupons SET issued_quantity = issued_quantity + 1 WHERE id = ?",
         "UPDATE coupons SET issued_quantity = issued_quantity - 1 WHERE id = ?", 3,
         "issued = coupons held"},
    };
    char *token, *out, copy[4096], line[256];
    int64_t ids[4];
    int64_t user = new_user("Checked", 10000, &token);
    int64_t product = new_product("Checked Item", 1000, 5);
    int64_t coupon = new_coupon("FIXED", 100, 5);
    struct line two[] = {{product, 2}};

    issue(coupon, user, token);
    json_t *o = order_ok(&srv[0], user, token, two, 1, coupon);
    int64_t order = jint(o, "orderId");
    json_decref(o);
    json_decref(pay_ok(&srv[0], order, user, token));
    /* A second order left PENDING, so that reserved stock is part of the picture. */
    struct line one[] = {{product, 1}};
    json_decref(order_ok(&srv[0], user, token, one, 1, 0));
    assert_check_passes();

    ids[0] = product;
    ids[1] = user;
    ids[2] = order;
    ids[3] = coupon;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct corruption *c = &cases[i];
        assert_int_equal(sql_exec(c->damage, ids[c->target]), 1);
        int rc = run_check(&out);
        snprintf(copy, sizeof(copy), "%s", out);
        free(out);
        snprintf(line, sizeof(line), "FAIL  %s", c->violated);
        if (rc != 1 || !strstr(copy, line))
            fail_msg("%s: shopd check exited %d without '%s':\n%s", c->what, rc, line, copy);
        assert_int_equal(sql_exec(c->repair, ids[c->target]), 1);
        assert_check_passes();
    }
    free(token);
}

/* ---- main ---- */

int main(void)
{
    const struct CMUnitTest orders[] = {
        cmocka_unit_test(order_create_replay_pay_and_read),
        cmocka_unit_test(order_limits_are_accepted),
        cmocka_unit_test(bad_orders_change_nothing),
        cmocka_unit_test(list_mine_filters_and_pages),
        cmocka_unit_test(buyers_150_race_for_100_units),
        cmocka_unit_test(stock_taken_between_the_calls_is_refused),
        cmocka_unit_test(opposite_line_orders_do_not_deadlock),
        cmocka_unit_test(one_key_100_requests_one_order),
        cmocka_unit_test(thirty_payments_charge_once),
        cmocka_unit_test(payments_of_many_users_each_keep_their_outcome),
        cmocka_unit_test(a_repriced_product_is_ordered_at_its_new_price),
        cmocka_unit_test(coupon_discounts_and_a_used_coupon_is_refused),
        cmocka_unit_test(cancel_before_payment_restores_stock_and_coupon),
        cmocka_unit_test(cancel_after_payment_refunds),
        cmocka_unit_test(refund_past_the_cap_is_applied),
        cmocka_unit_test(input_errors_come_before_the_key),
        cmocka_unit_test(cancel_twice_is_refused),
        cmocka_unit_test(pay_and_cancel_race),
        cmocka_unit_test(other_user_can_neither_read_pay_nor_cancel),
        cmocka_unit_test(insufficient_balance_changes_nothing),
        cmocka_unit_test(unpaid_orders_expire),
    };
    const struct CMUnitTest check[] = {
        cmocka_unit_test(check_fails_on_a_corrupted_database),
    };
    int failed = 0;

    if (it_main_begin() < 0)
        return 1;
    IT_RUN_GROUP(failed, "orders", orders, start_orders, stop_orders);
    IT_RUN_GROUP(failed, "check", check, start_check, stop_check);
    return failed ? 1 : 0;
}
