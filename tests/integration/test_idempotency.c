/*
 * Idempotency keys as API.md's "Idempotency" section states them, end to end through real
 * `shopd serve` processes: keys compare byte for byte; every outcome of the effect is stored
 * and replayed, refusals included (a 409 stays that 409 after what refused it has changed);
 * a duplicate in flight answers 409 IDEMPOTENCY_IN_FLIGHT, never a 5xx; a first request that
 * times out on a row lock answers 503 and is not stored. Row locks are held by the test on
 * its own connection; waits are on conditions, never fixed sleeps.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/arena.h"
#include "core/err.h"
#include "harness.h"
#include "http_client.h"
#include "it_main.h"
#include "json_check.h"
#include "repo/db.h"

static struct harness h;
static struct harness_server srv;
/* Long row-lock waits and a 1 s distributed-lock wait (p and q); a 1 s row-lock wait (t). */
static struct harness_server p, q, t;
static char *admin;

static const char sql_charges[] =
    "SELECT COUNT(*) FROM balance_history WHERE user_id = ? AND type = 'CHARGE'";
static const char sql_balance[] = "SELECT balance_krw FROM users WHERE id = ?";
static const char sql_payments_of_user[] =
    "SELECT COUNT(*) FROM balance_history WHERE user_id = ? AND type = 'PAYMENT'";
static const char sql_orders_of_user[] = "SELECT COUNT(*) FROM orders WHERE user_id = ?";
static const char sql_pending[] = "SELECT COUNT(*) FROM orders WHERE id = ? AND status = 'PENDING'";
static const char sql_stock[] = "SELECT stock FROM products WHERE id = ?";
static const char sql_keys_of_user[] = "SELECT COUNT(*) FROM idempotency_keys WHERE user_id = ?";
static const char sql_lock_user[] = "SELECT id FROM users WHERE id = ? FOR UPDATE";

static int group_setup(void **state)
{
    static const char *const slow_rows[] = {"SHOPD_DB_LOCK_WAIT=30", "SHOPD_LOCK_WAIT=1", NULL};
    static const char *const short_rows[] = {"SHOPD_DB_LOCK_WAIT=1", NULL};

    if (harness_setup(&h) || harness_server_start(&h, &srv, NULL) ||
        harness_server_start(&h, &p, slow_rows) || harness_server_start(&h, &q, slow_rows) ||
        harness_server_start(&h, &t, short_rows))
        return -1;
    admin = harness_admin_token(&h);
    return 0;
}

static int group_teardown(void **state)
{
    int rc = harness_server_stop(&srv);
    int rc_p = harness_server_stop(&p), rc_q = harness_server_stop(&q);
    int rc_t = harness_server_stop(&t);

    free(admin);
    harness_teardown(&h);
    /* A server that leaked or crashed exits non-zero under ASan. */
    return rc || rc_p || rc_q || rc_t ? -1 : 0;
}

/* Charges amount to user with the key in the body field; returns the status and whether the
 * answer said it was a replay. */
static long charge_with_body_key(int64_t user, const char *token, const char *key, bool *replayed)
{
    char url[160], body[400], flag[16];
    struct http_result r;
    json_t *j = json_object();

    json_object_set_new(j, "amount", json_integer(1000));
    json_object_set_new(j, "idempotencyKey", json_string(key));
    char *text = json_dumps(j, JSON_COMPACT);
    snprintf(body, sizeof(body), "%s", text);
    free(text);
    json_decref(j);
    snprintf(url, sizeof(url), "%s/api/users/%lld/balance/charge", srv.url, (long long)user);
    assert_int_equal(
        http_do(&it_client, "POST", url, token, "application/json", body, strlen(body), NULL, &r),
        0);
    *replayed = http_header(&r, "Idempotent-Replayed", flag, sizeof(flag)) != NULL;
    long status = r.status;
    http_result_free(&r);
    return status;
}

static void trailing_spaces_make_another_key(void **state)
{
    int64_t user = harness_create_user(&h, &srv, "Byte Exact");
    char *token = harness_token(&h, user);
    bool replayed;

    assert_true(user > 0);
    assert_int_equal(charge_with_body_key(user, token, "k", &replayed), 200);
    assert_false(replayed);
    assert_int_equal(charge_with_body_key(user, token, "k   ", &replayed), 200);
    assert_false(replayed);
    /* And each of them still replays itself. */
    assert_int_equal(charge_with_body_key(user, token, "k   ", &replayed), 200);
    assert_true(replayed);
    assert_int_equal(charge_with_body_key(user, token, "k", &replayed), 200);
    assert_true(replayed);
    assert_int_equal(harness_sql_int(&h, sql_charges, 1, user), 2);
    assert_int_equal(harness_sql_int(&h, sql_balance, 1, user), 2000);
    free(token);
}

/* ---- helpers ---- */

/* An answer, its body and the headers the contract speaks of. */
struct answer {
    long status;
    char body[1024];
    bool replayed;
    bool retry_after;
    char content_type[64];
};

/* POSTs body to s at path with the key in the Idempotency-Key header, on client c. */
static void post_key(struct http_client *c, const struct harness_server *s, const char *path,
                     const char *token, const char *body, const char *key, struct answer *out)
{
    char url[256], header[320], flag[64];
    struct http_result r;

    snprintf(url, sizeof(url), "%s%s", s->url, path);
    snprintf(header, sizeof(header), "Idempotency-Key: %s", key);
    assert_int_equal(
        http_do(c, "POST", url, token, "application/json", body, strlen(body), header, &r), 0);
    out->status = r.status;
    snprintf(out->body, sizeof(out->body), "%s", r.body ? r.body : "");
    out->replayed = http_header(&r, "Idempotent-Replayed", flag, sizeof(flag)) != NULL;
    out->retry_after = http_header(&r, "Retry-After", flag, sizeof(flag)) != NULL;
    if (!http_header(&r, "Content-Type", out->content_type, sizeof(out->content_type)))
        out->content_type[0] = '\0';
    http_result_free(&r);
}

static void charge_key(const struct harness_server *s, int64_t user, const char *token,
                       int64_t amount, const char *key, struct answer *out)
{
    char path[96], body[64];

    snprintf(path, sizeof(path), "/api/users/%lld/balance/charge", (long long)user);
    snprintf(body, sizeof(body), "{\"amount\":%lld}", (long long)amount);
    post_key(&it_client, s, path, token, body, key, out);
}

/* POST /api/orders/{order}/{action} (payment or cancel) for user with key. */
static void order_action(const struct harness_server *s, int64_t order, const char *action,
                         int64_t user, const char *token, const char *key, struct answer *out)
{
    char path[96], body[64];

    snprintf(path, sizeof(path), "/api/orders/%lld/%s", (long long)order, action);
    snprintf(body, sizeof(body), "{\"userId\":%lld}", (long long)user);
    post_key(&it_client, s, path, token, body, key, out);
}

static void create_order(const struct harness_server *s, int64_t user, const char *token,
                         int64_t product, int64_t quantity, const char *key, struct answer *out)
{
    char body[160];

    snprintf(body, sizeof(body),
             "{\"userId\":%lld,\"items\":[{\"productId\":%lld,\"quantity\":%lld}]}",
             (long long)user, (long long)product, (long long)quantity);
    post_key(&it_client, s, "/api/orders", token, body, key, out);
}

/* The answer is the problem code with status, sent fresh (no replay mark). */
static void expect_refusal(const struct answer *a, long status, const char *code)
{
    if (a->status != status)
        fail_msg("expected %ld %s, got %ld: %s", status, code, a->status, a->body);
    json_t *j = parse_body(a->body);
    assert_string_equal(jstr(j, "code"), code);
    json_decref(j);
    assert_string_equal(a->content_type, "application/problem+json");
    assert_false(a->replayed);
}

/* The answer replays first exactly: status, the same bytes, a problem document, the mark. */
static void expect_replay_of(const struct answer *a, const struct answer *first)
{
    if (a->status != first->status)
        fail_msg("expected the stored %ld again, got %ld: %s", first->status, a->status, a->body);
    assert_string_equal(a->body, first->body);
    assert_true(a->replayed);
    assert_string_equal(a->content_type, first->content_type);
}

static int64_t new_order(int64_t user, const char *token, int64_t product, const char *key)
{
    struct answer a;

    create_order(&srv, user, token, product, 1, key, &a);
    assert_int_equal(a.status, 201);
    json_t *j = parse_body(a.body);
    int64_t id = jint(j, "orderId");
    json_decref(j);
    return id;
}

/* ---- refusals are outcomes: stored and replayed ---- */

static void insufficient_balance_is_replayed_after_a_top_up(void **state)
{
    int64_t user = harness_create_user(&h, &srv, "Short");
    char *token = harness_token(&h, user);
    int64_t product = harness_create_product(&h, &srv, "Dear", 5000, 3);
    struct answer first, again, a;

    charge_key(&srv, user, token, 1000, "top-1", &a);
    assert_int_equal(a.status, 200);
    int64_t order = new_order(user, token, product, "order-1");

    order_action(&srv, order, "payment", user, token, "pay-1", &first);
    expect_refusal(&first, 409, "INSUFFICIENT_BALANCE");
    charge_key(&srv, user, token, 4000, "top-2", &a);
    assert_int_equal(a.status, 200);

    /* Enough money now, yet the key answers what it answered: through another process too. */
    order_action(&p, order, "payment", user, token, "pay-1", &again);
    expect_replay_of(&again, &first);
    order_action(&srv, order, "payment", user, token, "pay-1", &again);
    expect_replay_of(&again, &first);
    assert_int_equal(harness_sql_int(&h, sql_payments_of_user, 1, user), 0);
    assert_int_equal(harness_sql_int(&h, sql_pending, 1, order), 1);
    assert_int_equal(harness_sql_int(&h, sql_balance, 1, user), 5000);

    /* A new key pays. */
    order_action(&srv, order, "payment", user, token, "pay-2", &a);
    assert_int_equal(a.status, 200);
    assert_int_equal(harness_sql_int(&h, sql_payments_of_user, 1, user), 1);
    assert_int_equal(harness_sql_int(&h, sql_balance, 1, user), 0);
    free(token);
}

static void out_of_stock_is_replayed_after_a_restock(void **state)
{
    int64_t user = harness_create_user(&h, &srv, "Late");
    char *token = harness_token(&h, user);
    int64_t product = harness_create_product(&h, &srv, "Scarce", 100, 1);
    struct answer first, again;
    char path[64];

    create_order(&srv, user, token, product, 2, "buy-2", &first);
    expect_refusal(&first, 409, "OUT_OF_STOCK");
    snprintf(path, sizeof(path), "/api/admin/products/%lld", (long long)product);
    assert_int_equal(it_call(&srv, "PATCH", admin, "{\"stock\":5}", NULL, "%s", path), 200);

    create_order(&q, user, token, product, 2, "buy-2", &again);
    expect_replay_of(&again, &first);
    assert_int_equal(harness_sql_int(&h, sql_orders_of_user, 1, user), 0);
    assert_int_equal(harness_sql_int(&h, sql_stock, 1, product), 5);
    free(token);
}

static void not_cancellable_is_replayed(void **state)
{
    int64_t user = harness_create_user(&h, &srv, "Twice");
    char *token = harness_token(&h, user);
    int64_t product = harness_create_product(&h, &srv, "Cheap", 100, 10);
    int64_t order = new_order(user, token, product, "order-c");
    struct answer a, first, again;

    order_action(&srv, order, "cancel", user, token, "cancel-1", &a);
    assert_int_equal(a.status, 200);
    order_action(&srv, order, "cancel", user, token, "cancel-2", &first);
    expect_refusal(&first, 409, "ORDER_NOT_CANCELLABLE");
    order_action(&p, order, "cancel", user, token, "cancel-2", &again);
    expect_replay_of(&again, &first);
    assert_int_equal(harness_sql_int(&h, sql_stock, 1, product), 10);
    free(token);
}

/* Puts the user's balance (and its history, so that balance = sum of history) at amount. */
static void set_balance(int64_t user, int64_t amount)
{
    static const char set[] = "UPDATE users SET balance_krw = balance_krw + ? WHERE id = ?";
    static const char add[] =
        "INSERT INTO balance_history (user_id, type, amount_krw, balance_after_krw, created_at) "
        "SELECT id, 'CHARGE', ?, balance_krw, UTC_TIMESTAMP(6) FROM users WHERE id = ?";
    struct db_val v[] = {DB_INT(amount), DB_INT(user)};
    struct db_conn *c;
    struct err e;

    assert_int_equal(db_acquire(h.pool, &c, &e), 0);
    assert_int_equal(db_exec(c, set, v, 2, NULL, NULL, &e), 0);
    assert_int_equal(db_exec(c, add, v, 2, NULL, NULL, &e), 0);
    db_release(h.pool, c);
}

static void balance_limit_is_replayed_and_the_key_keeps_its_body(void **state)
{
    int64_t cap = 1000000000000LL;
    int64_t user = harness_create_user(&h, &srv, "Full");
    char *token = harness_token(&h, user);
    int64_t product = harness_create_product(&h, &srv, "Small", 100, 10);
    struct answer first, again, a;

    set_balance(user, cap - 5);
    charge_key(&srv, user, token, 6, "limit", &first);
    expect_refusal(&first, 409, "BALANCE_LIMIT");
    /* Room for it now (a payment of 100), and still the same answer to the same key. */
    int64_t order = new_order(user, token, product, "order-l");
    order_action(&srv, order, "payment", user, token, "pay-l", &a);
    assert_int_equal(a.status, 200);
    charge_key(&q, user, token, 6, "limit", &again);
    expect_replay_of(&again, &first);
    assert_int_equal(harness_sql_int(&h, sql_balance, 1, user), cap - 105);

    /* The same key with another body: the key is taken by the stored refusal. */
    charge_key(&srv, user, token, 5, "limit", &a);
    expect_refusal(&a, 422, "IDEMPOTENCY_KEY_REUSED");
    assert_int_equal(harness_sql_int(&h, sql_balance, 1, user), cap - 105);
    free(token);
}

/* ---- lock waits: a duplicate in flight is 409, a first that timed out is 503 ---- */

/* A transaction on the test's own connection holding the user's row. */
struct held_row {
    struct db_conn *conn;
    struct arena arena;
};

static void hold_user_row(struct held_row *hr, int64_t user)
{
    struct db_val v[] = {DB_INT(user)};
    struct db_rows rows;
    struct err e;

    arena_init(&hr->arena);
    assert_int_equal(db_acquire(h.pool, &hr->conn, &e), 0);
    assert_int_equal(db_begin(hr->conn, &e), 0);
    assert_int_equal(db_query(hr->conn, sql_lock_user, v, 1, &hr->arena, &rows, &e), 0);
    assert_int_equal(rows.nrows, 1);
}

static void release_row(struct held_row *hr)
{
    db_rollback(hr->conn);
    db_release(h.pool, hr->conn);
    arena_release(&hr->arena);
}

struct blocked_charge {
    const struct harness_server *server;
    int64_t user;
    const char *token;
    const char *key;
    struct answer answer;
};

static void *blocked_charge_main(void *arg)
{
    struct blocked_charge *w = arg;
    struct http_client c;
    char path[96];

    http_client_init(&c);
    snprintf(path, sizeof(path), "/api/users/%lld/balance/charge", (long long)w->user);
    post_key(&c, w->server, path, w->token, "{\"amount\":700}", w->key, &w->answer);
    http_client_release(&c);
    return NULL;
}

/* A charge's UPDATE of the held row is waiting for it (the process list shows it at once). */
static bool charge_waits_on_the_row(void *arg)
{
    return harness_sql_int(&h,
                           "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                           "WHERE db = DATABASE() AND info LIKE 'UPDATE users SET balance_krw%'",
                           0) > 0;
}

static void duplicate_in_flight_is_409_never_503(void **state)
{
    int64_t user = harness_create_user(&h, &srv, "Inflight");
    char *token = harness_token(&h, user);
    struct blocked_charge w = {&p, user, token, "inflight", {0}};
    struct held_row hr;
    struct answer dup, again;
    pthread_t thread;

    hold_user_row(&hr, user);
    pthread_create(&thread, NULL, blocked_charge_main, &w);
    assert_true(harness_wait_for(charge_waits_on_the_row, NULL, 20000));

    /* The first holds the user's lock and its key, and waits on the row: its duplicate, on
     * another process, waits out its 1 s for the lock and is told it is in flight. With
     * SHOPD_LOCKS=db there is no lock: the duplicate waits on the first one's claim of the
     * key, for its own row-lock wait, so it goes to t (1 s; q's 30 s would outlast p's). */
    charge_key(harness_locks_db() ? &t : &q, user, token, 700, "inflight", &dup);
    expect_refusal(&dup, 409, "IDEMPOTENCY_IN_FLIGHT");
    assert_true(dup.retry_after);

    release_row(&hr);
    pthread_join(thread, NULL);
    assert_int_equal(w.answer.status, 200);
    assert_false(w.answer.replayed);
    charge_key(&q, user, token, 700, "inflight", &again);
    expect_replay_of(&again, &w.answer);
    assert_int_equal(harness_sql_int(&h, sql_charges, 1, user), 1);
    assert_int_equal(harness_sql_int(&h, sql_balance, 1, user), 700);
    free(token);
}

static void claimed_key_past_the_lock_wait_is_409(void **state)
{
    static const char claim[] =
        "INSERT INTO idempotency_keys (user_id, method, path, idem_key, fingerprint, "
        "status_code, response_body, created_at) VALUES (?, 'POST', ?, ?, ?, 0, '', "
        "UTC_TIMESTAMP(6))";
    int64_t user = harness_create_user(&h, &srv, "Claimed");
    char *token = harness_token(&h, user);
    char path[96];
    unsigned char fp[32] = {0};
    struct db_conn *c;
    struct answer a, again;
    struct err e;

    /* A request with this key has claimed it and runs (here: the test's transaction). */
    snprintf(path, sizeof(path), "/api/users/%lld/balance/charge", (long long)user);
    struct db_val v[] = {DB_INT(user), DB_STR(path), DB_STR("claimed"), DB_BYTES(fp, sizeof(fp))};
    assert_int_equal(db_acquire(h.pool, &c, &e), 0);
    assert_int_equal(db_begin(c, &e), 0);
    assert_int_equal(db_exec(c, claim, v, 4, NULL, NULL, &e), 0);

    /* The lock wait times out on the key itself: in flight, not unavailable. */
    charge_key(&t, user, token, 300, "claimed", &a);
    expect_refusal(&a, 409, "IDEMPOTENCY_IN_FLIGHT");
    assert_true(a.retry_after);
    assert_int_equal(harness_sql_int(&h, sql_balance, 1, user), 0);

    /* It rolled back: the key is free, and the next try runs the effect once. */
    db_rollback(c);
    db_release(h.pool, c);
    charge_key(&t, user, token, 300, "claimed", &a);
    assert_int_equal(a.status, 200);
    charge_key(&t, user, token, 300, "claimed", &again);
    expect_replay_of(&again, &a);
    assert_int_equal(harness_sql_int(&h, sql_charges, 1, user), 1);
    free(token);
}

static void first_request_row_lock_timeout_is_503_not_stored(void **state)
{
    int64_t user = harness_create_user(&h, &srv, "Timed Out");
    char *token = harness_token(&h, user);
    struct held_row hr;
    struct answer a, again;

    /* Another transaction holds the user's balance row longer than t's 1 s lock wait. */
    hold_user_row(&hr, user);
    charge_key(&t, user, token, 400, "first", &a);
    if (a.status != 503)
        fail_msg("expected 503 UNAVAILABLE, got %ld: %s", a.status, a.body);
    json_t *j = parse_body(a.body);
    assert_string_equal(jstr(j, "code"), "UNAVAILABLE");
    json_decref(j);
    assert_true(a.retry_after);
    assert_false(a.replayed);
    release_row(&hr);
    assert_int_equal(harness_sql_int(&h, sql_keys_of_user, 1, user), 0);

    /* Not stored: the same key, once the row is free, charges, once. */
    charge_key(&t, user, token, 400, "first", &a);
    assert_int_equal(a.status, 200);
    assert_false(a.replayed);
    charge_key(&srv, user, token, 400, "first", &again);
    expect_replay_of(&again, &a);
    assert_int_equal(harness_sql_int(&h, sql_charges, 1, user), 1);
    assert_int_equal(harness_sql_int(&h, sql_balance, 1, user), 400);
    free(token);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(trailing_spaces_make_another_key),
        cmocka_unit_test(insufficient_balance_is_replayed_after_a_top_up),
        cmocka_unit_test(out_of_stock_is_replayed_after_a_restock),
        cmocka_unit_test(not_cancellable_is_replayed),
        cmocka_unit_test(balance_limit_is_replayed_and_the_key_keeps_its_body),
        cmocka_unit_test(duplicate_in_flight_is_409_never_503),
        cmocka_unit_test(claimed_key_past_the_lock_wait_is_409),
        cmocka_unit_test(first_request_row_lock_timeout_is_503_not_stored),
    };
    int failed = 0;

    if (it_main_begin() < 0)
        return 1;
    IT_RUN_GROUP(failed, "idempotency", tests, group_setup, group_teardown);
    return failed ? 1 : 0;
}
