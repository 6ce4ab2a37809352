/*
 * Balances end to end against real `shopd serve` processes on a fresh MariaDB database:
 * charges, history, idempotency under concurrency over two server processes, a table of bad
 * inputs that must change nothing, and a held row lock that must not stall anyone else.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/arena.h"
#include "core/err.h"
#include "harness.h"
#include "http/auth.h"
#include "http_client.h"
#include "it_main.h"
#include "json_check.h"
#include "repo/db.h"
#include "service/idem_svc.h"
#include "service/svc.h"

static struct harness h;
static struct harness_server a, b;
static char *admin;

static const char sql_balance[] = "SELECT balance_krw FROM users WHERE id = ?";
static const char sql_history_sum[] =
    "SELECT COALESCE(SUM(amount_krw), 0) FROM balance_history WHERE user_id = ?";
static const char sql_history_count[] = "SELECT COUNT(*) FROM balance_history WHERE user_id = ?";
static const char sql_mismatched_users[] =
    "SELECT COUNT(*) FROM users u WHERE u.balance_krw <> "
    "(SELECT COALESCE(SUM(amount_krw), 0) FROM balance_history x WHERE x.user_id = u.id)";

static int group_setup(void **state)
{
    static const char *const env[] = {"SHOPD_DB_LOCK_WAIT=30", "SHOPD_THREADS=32", NULL};

    if (harness_setup(&h))
        return -1;
    if (harness_server_start(&h, &a, env) || harness_server_start(&h, &b, env))
        return -1;
    admin = harness_admin_token(&h);
    return 0;
}

static int group_teardown(void **state)
{
    int rc_a = harness_server_stop(&a), rc_b = harness_server_stop(&b);

    free(admin);
    harness_teardown(&h);
    /* A server that leaked or crashed exits non-zero under ASan. */
    return rc_a || rc_b ? -1 : 0;
}

/* ---- helpers ---- */

static long charge(struct http_client *c, const struct harness_server *s, int64_t user,
                   const char *token, int64_t amount, const char *key, struct http_result *r)
{
    char url[160], body[128], header[320];

    snprintf(url, sizeof(url), "%s/api/users/%lld/balance/charge", s->url, (long long)user);
    snprintf(body, sizeof(body), "{\"amount\":%lld}", (long long)amount);
    snprintf(header, sizeof(header), "Idempotency-Key: %s", key);
    if (http_do(c, "POST", url, token, "application/json", body, strlen(body), header, r))
        return -1;
    return r->status;
}

static int64_t sql1(const char *sql, int64_t arg)
{
    return harness_sql_int(&h, sql, 1, arg);
}

static void assert_balance_is_history(int64_t user)
{
    assert_int_equal(sql1(sql_balance, user), sql1(sql_history_sum, user));
}

/* ---- basic flow ---- */

static void charge_then_read(void **state)
{
    struct http_client c;
    struct http_result r;
    char url[160];
    int64_t user = harness_create_user(&h, &a, "Basic Flow");
    char *token = harness_token(&h, user);

    assert_true(user > 0);
    http_client_init(&c);
    assert_int_equal(charge(&c, &a, user, token, 5000, "basic-1", &r), 200);
    json_t *j = parse_body(r.body);
    assert_int_equal(jint(j, "userId"), user);
    assert_int_equal(jint(j, "balance"), 5000);
    assert_int_equal(jint(j, "chargedAmount"), 5000);
    assert_non_null(jstr(j, "chargedAt"));
    assert_int_equal(strlen(jstr(j, "chargedAt")), 20);
    json_decref(j);
    http_result_free(&r);

    snprintf(url, sizeof(url), "%s/api/users/%lld/balance", b.url, (long long)user);
    assert_int_equal(http_do(&c, "GET", url, token, NULL, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    j = parse_body(r.body);
    assert_int_equal(jint(j, "balance"), 5000);
    json_decref(j);
    http_result_free(&r);

    /* The key may also come in the body. */
    snprintf(url, sizeof(url), "%s/api/users/%lld/balance/charge", b.url, (long long)user);
    const char *body = "{\"amount\":700,\"idempotencyKey\":\"basic-2\"}";
    assert_int_equal(http_do(&c, "POST", url, token, "application/json; charset=utf-8", body,
                             strlen(body), NULL, &r),
                     0);
    assert_int_equal(r.status, 200);
    j = parse_body(r.body);
    assert_int_equal(jint(j, "balance"), 5700);
    json_decref(j);
    http_result_free(&r);
    assert_balance_is_history(user);
    http_client_release(&c);
    free(token);
}

static void history_pages_newest_first(void **state)
{
    struct http_client c;
    struct http_result r;
    char url[256], key[32];
    int64_t user = harness_create_user(&h, &b, "Pager");
    char *token = harness_token(&h, user);
    int64_t seen[8];
    int nseen = 0;
    const char *cursor = NULL;
    char cursor_buf[32];

    http_client_init(&c);
    for (int i = 1; i <= 5; i++) {
        snprintf(key, sizeof(key), "page-%d", i);
        assert_int_equal(charge(&c, &a, user, token, i * 100, key, &r), 200);
        http_result_free(&r);
    }
    for (int page = 0; page < 3; page++) {
        if (cursor)
            snprintf(url, sizeof(url), "%s/api/users/%lld/balance/history?limit=2&cursor=%s", b.url,
                     (long long)user, cursor);
        else
            snprintf(url, sizeof(url), "%s/api/users/%lld/balance/history?limit=2", b.url,
                     (long long)user);
        assert_int_equal(http_do(&c, "GET", url, token, NULL, NULL, 0, NULL, &r), 0);
        assert_int_equal(r.status, 200);
        json_t *j = parse_body(r.body);
        json_t *entries = json_object_get(j, "entries");
        assert_int_equal(json_array_size(entries), page < 2 ? 2 : 1);
        for (size_t i = 0; i < json_array_size(entries); i++) {
            json_t *en = json_array_get(entries, i);
            assert_string_equal(jstr(en, "type"), "CHARGE");
            assert_true(json_is_null(json_object_get(en, "orderId")));
            seen[nseen++] = jint(en, "amount");
        }
        json_t *next = json_object_get(j, "nextCursor");
        if (page < 2) {
            assert_true(json_is_string(next));
            snprintf(cursor_buf, sizeof(cursor_buf), "%s", json_string_value(next));
            cursor = cursor_buf;
        } else {
            assert_true(json_is_null(next));
        }
        json_decref(j);
        http_result_free(&r);
    }
    for (int i = 0; i < 5; i++)
        assert_int_equal(seen[i], (5 - i) * 100);
    http_client_release(&c);
    free(token);
}

/* ---- concurrency ---- */

#define CHARGE_THREADS     50
#define CHARGES_PER_THREAD 8
#define CHARGE_USERS       10

struct charge_worker {
    int index;
    int64_t *users;
    char **tokens;
    int ok;
    int64_t charged[CHARGE_USERS];
};

static void *charge_worker(void *arg)
{
    struct charge_worker *w = arg;
    struct http_client c;
    char key[64];

    http_client_init(&c);
    for (int i = 0; i < CHARGES_PER_THREAD; i++) {
        int u = (w->index + i) % CHARGE_USERS;
        int64_t amount = 1000 + w->index * 10 + i;
        struct http_result r;
        snprintf(key, sizeof(key), "conc-%d-%d", w->index, i);
        /* Alternate the two server processes. */
        if (charge(&c, (w->index + i) % 2 ? &a : &b, w->users[u], w->tokens[u], amount, key, &r) ==
            200) {
            w->ok++;
            w->charged[u] += amount;
        }
        http_result_free(&r);
    }
    http_client_release(&c);
    return NULL;
}

static void concurrent_charges_over_two_servers_add_up(void **state)
{
    int64_t users[CHARGE_USERS];
    char *tokens[CHARGE_USERS];
    struct charge_worker workers[CHARGE_THREADS];
    pthread_t threads[CHARGE_THREADS];
    int64_t expected[CHARGE_USERS] = {0};
    int ok = 0;

    for (int u = 0; u < CHARGE_USERS; u++) {
        char name[32];
        snprintf(name, sizeof(name), "Concurrent %d", u);
        users[u] = harness_create_user(&h, &a, name);
        assert_true(users[u] > 0);
        tokens[u] = harness_token(&h, users[u]);
    }
    for (int t = 0; t < CHARGE_THREADS; t++) {
        memset(&workers[t], 0, sizeof(workers[t]));
        workers[t].index = t;
        workers[t].users = users;
        workers[t].tokens = tokens;
        pthread_create(&threads[t], NULL, charge_worker, &workers[t]);
    }
    for (int t = 0; t < CHARGE_THREADS; t++) {
        pthread_join(threads[t], NULL);
        ok += workers[t].ok;
        for (int u = 0; u < CHARGE_USERS; u++)
            expected[u] += workers[t].charged[u];
    }
    assert_int_equal(ok, CHARGE_THREADS * CHARGES_PER_THREAD);
    for (int u = 0; u < CHARGE_USERS; u++) {
        assert_int_equal(sql1(sql_balance, users[u]), expected[u]);
        assert_balance_is_history(users[u]);
        free(tokens[u]);
    }
}

/*
 * Group commit (SHOPD_LOCKS=db): charges sent at once to one server share batches, and each
 * still gets its own outcome. 32 at once: 16 fresh charges over 4 users, 8 with one key (one
 * effect, one body), 8 for a user that does not exist (404, stored). In Redis mode the same
 * requests go one by one; the outcomes are the same.
 */
#define MIXED_THREADS 32
#define MIXED_USERS   4

struct mixed_worker {
    int index;
    int64_t user;
    const char *token;
    int64_t amount;
    char key[32];
    long status;
    char *body;
};

static pthread_barrier_t mixed_barrier;

static void *mixed_worker(void *arg)
{
    struct mixed_worker *w = arg;
    struct http_client c;
    struct http_result r;

    http_client_init(&c);
    pthread_barrier_wait(&mixed_barrier);
    w->status = charge(&c, &a, w->user, w->token, w->amount, w->key, &r);
    w->body = strdup(r.body);
    http_result_free(&r);
    http_client_release(&c);
    return NULL;
}

static void batched_charges_keep_their_own_outcomes(void **state)
{
    struct mixed_worker workers[MIXED_THREADS];
    pthread_t threads[MIXED_THREADS];
    int64_t users[MIXED_USERS], expected[MIXED_USERS] = {0};
    char *tokens[MIXED_USERS];
    int64_t ghost = 1000000000;
    char *ghost_token = harness_token(&h, ghost);

    for (int u = 0; u < MIXED_USERS; u++) {
        users[u] = harness_create_user(&h, &a, "Batched");
        tokens[u] = harness_token(&h, users[u]);
    }
    pthread_barrier_init(&mixed_barrier, NULL, MIXED_THREADS);
    for (int t = 0; t < MIXED_THREADS; t++) {
        struct mixed_worker *w = &workers[t];
        *w = (struct mixed_worker){.index = t, .amount = 1000 + t};
        if (t < 16) {
            w->user = users[t % MIXED_USERS];
            w->token = tokens[t % MIXED_USERS];
            snprintf(w->key, sizeof(w->key), "mixed-%d", t);
            expected[t % MIXED_USERS] += w->amount;
        } else if (t < 24) {
            w->user = users[0];
            w->token = tokens[0];
            w->amount = 777;
            snprintf(w->key, sizeof(w->key), "mixed-shared");
        } else {
            w->user = ghost;
            w->token = ghost_token;
            snprintf(w->key, sizeof(w->key), "mixed-ghost-%d", t);
        }
        pthread_create(&threads[t], NULL, mixed_worker, w);
    }
    for (int t = 0; t < MIXED_THREADS; t++)
        pthread_join(threads[t], NULL);
    pthread_barrier_destroy(&mixed_barrier);
    expected[0] += 777;
    for (int t = 0; t < MIXED_THREADS; t++) {
        long want = t < 24 ? 200 : 404;
        if (workers[t].status != want)
            fail_msg("charge %d: %ld, not %ld: %s", t, workers[t].status, want, workers[t].body);
        if (t >= 16 && t < 24)
            assert_string_equal(workers[t].body, workers[16].body);
    }
    for (int u = 0; u < MIXED_USERS; u++) {
        assert_int_equal(sql1(sql_balance, users[u]), expected[u]);
        assert_int_equal(sql1(sql_history_count, users[u]), u ? 4 : 5);
        assert_balance_is_history(users[u]);
        free(tokens[u]);
    }
    for (int t = 0; t < MIXED_THREADS; t++)
        free(workers[t].body);
    free(ghost_token);
}

#define SAME_KEY_THREADS 60

struct same_key_worker {
    int index;
    int64_t user;
    const char *token;
    long status;
    char *body;
    bool replayed;
};

static pthread_barrier_t same_key_barrier;

static void *same_key_worker(void *arg)
{
    struct same_key_worker *w = arg;
    struct http_client c;
    struct http_result r;
    char flag[16];

    http_client_init(&c);
    pthread_barrier_wait(&same_key_barrier);
    w->status = charge(&c, w->index % 2 ? &a : &b, w->user, w->token, 4321, "one-key", &r);
    w->body = strdup(r.body);
    w->replayed = http_header(&r, "Idempotent-Replayed", flag, sizeof(flag)) != NULL;
    http_result_free(&r);
    http_client_release(&c);
    return NULL;
}

static void one_key_sixty_requests_one_effect(void **state)
{
    struct same_key_worker workers[SAME_KEY_THREADS];
    pthread_t threads[SAME_KEY_THREADS];
    int64_t user = harness_create_user(&h, &a, "Same Key");
    char *token = harness_token(&h, user);
    int fresh = 0;

    pthread_barrier_init(&same_key_barrier, NULL, SAME_KEY_THREADS);
    for (int t = 0; t < SAME_KEY_THREADS; t++) {
        workers[t] = (struct same_key_worker){t, user, token, 0, NULL, false};
        pthread_create(&threads[t], NULL, same_key_worker, &workers[t]);
    }
    for (int t = 0; t < SAME_KEY_THREADS; t++)
        pthread_join(threads[t], NULL);
    pthread_barrier_destroy(&same_key_barrier);
    for (int t = 0; t < SAME_KEY_THREADS; t++) {
        if (workers[t].status != 200)
            fail_msg("worker %d: status %ld: %s", t, workers[t].status, workers[t].body);
        assert_string_equal(workers[t].body, workers[0].body);
        fresh += !workers[t].replayed;
    }
    for (int t = 0; t < SAME_KEY_THREADS; t++)
        free(workers[t].body);
    assert_int_equal(fresh, 1);
    assert_int_equal(sql1(sql_history_count, user), 1);
    assert_int_equal(sql1(sql_balance, user), 4321);
    free(token);
}

static void reused_key_with_other_body_is_422(void **state)
{
    struct http_client c;
    struct http_result r;
    int64_t user = harness_create_user(&h, &a, "Reuse");
    char *token = harness_token(&h, user);

    http_client_init(&c);
    assert_int_equal(charge(&c, &a, user, token, 100, "reuse", &r), 200);
    http_result_free(&r);
    assert_int_equal(charge(&c, &b, user, token, 200, "reuse", &r), 422);
    json_t *j = parse_body(r.body);
    assert_string_equal(jstr(j, "code"), "IDEMPOTENCY_KEY_REUSED");
    json_decref(j);
    http_result_free(&r);
    /* The same key on another user's path is another key. */
    assert_int_equal(sql1(sql_balance, user), 100);
    assert_int_equal(sql1(sql_history_count, user), 1);
    http_client_release(&c);
    free(token);
}

/*
 * A charge carries its lock's fence (SHOPD_LOCKS=redis): a row that a newer holder wrote (a
 * fence above any this Redis has handed out) refuses it, 503 and nothing stored, so a retry
 * with the key charges once the row is the client's again. Without locks (db) there is no
 * fence, and the charge goes through.
 */
static void set_fence(int64_t user, int64_t fence)
{
    static const char sql_set_fence[] = "UPDATE users SET fence = ? WHERE id = ?";
    struct db_val p[] = {DB_INT(fence), DB_INT(user)};
    struct db_conn *c;
    struct err e;

    assert_int_equal(db_acquire(h.pool, &c, &e), 0);
    int rc = db_exec(c, sql_set_fence, p, 2, NULL, NULL, &e);
    db_release(h.pool, c);
    assert_int_equal(rc, 0);
}

static void charge_is_fenced_by_its_lock(void **state)
{
    struct http_client c;
    struct http_result r;
    int64_t user = harness_create_user(&h, &a, "Fenced");
    char *token = harness_token(&h, user);

    http_client_init(&c);
    set_fence(user, INT64_C(1) << 60);
    long status = charge(&c, &a, user, token, 100, "fenced", &r);
    if (harness_locks_db()) {
        assert_int_equal(status, 200);
    } else {
        assert_int_equal(status, 503);
        assert_non_null(strstr(r.body, "UNAVAILABLE"));
        assert_int_equal(sql1(sql_balance, user), 0);
        assert_int_equal(sql1(sql_history_count, user), 0);
        http_result_free(&r);
        set_fence(user, 0);
        assert_int_equal(charge(&c, &a, user, token, 100, "fenced", &r), 200);
    }
    http_result_free(&r);
    assert_int_equal(sql1(sql_balance, user), 100);
    assert_int_equal(sql1(sql_history_count, user), 1);
    http_client_release(&c);
    free(token);
}

static void refusals_are_stored_failures_are_not(void **state)
{
    struct http_client c;
    struct http_result r;
    int64_t user = harness_create_user(&h, &a, "Limit");
    char *token = harness_token(&h, user);

    /* Bring the balance to the limit minus 5 straight in the database, history included. */
    struct db_conn *conn;
    struct err e;
    static const char set_balance[] = "UPDATE users SET balance_krw = ? WHERE id = ?";
    static const char add_history[] =
        "INSERT INTO balance_history (user_id, type, amount_krw, balance_after_krw, created_at) "
        "VALUES (?, 'CHARGE', ?, ?, UTC_TIMESTAMP(6))";
    int64_t near = 1000000000000LL - 5;
    struct db_val p1[] = {DB_INT(near), DB_INT(user)};
    struct db_val p2[] = {DB_INT(user), DB_INT(near), DB_INT(near)};
    assert_int_equal(db_acquire(h.pool, &conn, &e), 0);
    assert_int_equal(db_exec(conn, set_balance, p1, 2, NULL, NULL, &e), 0);
    assert_int_equal(db_exec(conn, add_history, p2, 3, NULL, NULL, &e), 0);
    db_release(h.pool, conn);

    http_client_init(&c);
    assert_int_equal(charge(&c, &a, user, token, 6, "limit", &r), 409);
    json_t *j = parse_body(r.body);
    assert_string_equal(jstr(j, "code"), "BALANCE_LIMIT");
    json_decref(j);
    http_result_free(&r);
    /* A refusal is stored (API.md): the key now belongs to that body... */
    assert_int_equal(charge(&c, &a, user, token, 5, "limit", &r), 422);
    http_result_free(&r);
    /* ...and a new key charges what fits. */
    assert_int_equal(charge(&c, &a, user, token, 5, "limit-2", &r), 200);
    http_result_free(&r);
    assert_int_equal(sql1(sql_balance, user), 1000000000000LL);
    assert_balance_is_history(user);
    http_client_release(&c);
    free(token);
}

/* ---- bad input ---- */

struct bad_case {
    const char *name;
    const char *method;
    const char *path; /* %lld is the user's id */
    int token;        /* 0 none, 1 the user's, 2 another user's, 3 forged, 4 expired, 5 alg none */
    const char *content_type;
    const char *body;
    const char *key;
    long status;
    const char *code;
};

static char *forged_token(void)
{
    /* Signed with another secret. */
    struct err e;

    return auth_issue("not-the-secret", 1, true, 0, 0, &e);
}

static const char *token_for(int kind, const char *own, const char *other, const char *forged,
                             const char *expired)
{
    switch (kind) {
    case 1:
        return own;
    case 2:
        return other;
    case 3:
        return forged;
    case 4:
        return expired;
    case 5:
        /* {"alg":"none","typ":"JWT"}.{"sub":"1","role":"admin"}. */
        return "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIxIiwicm9sZSI6ImFkbWluIn0.";
    default:
        return NULL;
    }
}

static void bad_inputs_change_nothing(void **state)
{
    static const char charge_path[] = "/api/users/%lld/balance/charge";
    static const struct bad_case cases[] = {
        {"malformed json", "POST", charge_path, 1, "application/json", "{\"amount\":", "k", 400,
         "INVALID_INPUT"},
        {"not an object", "POST", charge_path, 1, "application/json", "[1,2]", "k", 400,
         "INVALID_INPUT"},
        {"empty body", "POST", charge_path, 1, "application/json", "", "k", 400, "INVALID_INPUT"},
        {"amount as string", "POST", charge_path, 1, "application/json", "{\"amount\":\"100\"}",
         "k", 400, "INVALID_INPUT"},
        {"amount as float", "POST", charge_path, 1, "application/json", "{\"amount\":10.5}", "k",
         400, "INVALID_INPUT"},
        {"amount missing", "POST", charge_path, 1, "application/json", "{\"amt\":1}", "k", 400,
         "INVALID_INPUT"},
        {"amount null", "POST", charge_path, 1, "application/json", "{\"amount\":null}", "k", 400,
         "INVALID_INPUT"},
        {"amount zero", "POST", charge_path, 1, "application/json", "{\"amount\":0}", "k", 400,
         "INVALID_AMOUNT"},
        {"amount negative", "POST", charge_path, 1, "application/json", "{\"amount\":-5}", "k", 400,
         "INVALID_AMOUNT"},
        {"amount over 10M", "POST", charge_path, 1, "application/json", "{\"amount\":10000001}",
         "k", 400, "INVALID_AMOUNT"},
        {"huge number", "POST", charge_path, 1, "application/json",
         "{\"amount\":99999999999999999999999}", "k", 400, "INVALID_INPUT"},
        {"duplicate member", "POST", charge_path, 1, "application/json",
         "{\"amount\":1,\"amount\":2}", "k", 400, "INVALID_INPUT"},
        {"invalid utf-8", "POST", charge_path, 1, "application/json",
         "{\"amount\":1,\"x\":\"\xff\xfe\"}", "k", 400, "INVALID_INPUT"},
        {"wrong content type", "POST", charge_path, 1, "text/plain", "{\"amount\":1}", "k", 415,
         "UNSUPPORTED_MEDIA_TYPE"},
        {"no key", "POST", charge_path, 1, "application/json", "{\"amount\":1}", NULL, 400,
         "IDEMPOTENCY_KEY_MISSING"},
        /* Input errors come before the key is asked for (issue 11). */
        {"amount zero, no key", "POST", charge_path, 1, "application/json", "{\"amount\":0}", NULL,
         400, "INVALID_AMOUNT"},
        {"amount negative, no key", "POST", charge_path, 1, "application/json", "{\"amount\":-1}",
         NULL, 400, "INVALID_AMOUNT"},
        {"amount over 10M, no key", "POST", charge_path, 1, "application/json",
         "{\"amount\":10000001}", NULL, 400, "INVALID_AMOUNT"},
        {"amount missing, no key", "POST", charge_path, 1, "application/json", "{}", NULL, 400,
         "INVALID_INPUT"},
        {"key too long", "POST", charge_path, 1, "application/json", "{\"amount\":1}", "LONG", 400,
         "INVALID_INPUT"},
        {"header and body keys differ", "POST", charge_path, 1, "application/json",
         "{\"amount\":1,\"idempotencyKey\":\"x\"}", "y", 400, "INVALID_INPUT"},
        {"no token", "POST", charge_path, 0, "application/json", "{\"amount\":1}", "k", 401,
         "UNAUTHORIZED"},
        {"forged token", "POST", charge_path, 3, "application/json", "{\"amount\":1}", "k", 401,
         "UNAUTHORIZED"},
        {"expired token", "POST", charge_path, 4, "application/json", "{\"amount\":1}", "k", 401,
         "UNAUTHORIZED"},
        {"alg none token", "POST", charge_path, 5, "application/json", "{\"amount\":1}", "k", 401,
         "UNAUTHORIZED"},
        {"another user's token", "POST", charge_path, 2, "application/json", "{\"amount\":1}", "k",
         403, "FORBIDDEN"},
        {"user token on admin route", "POST", "/api/admin/users", 1, "application/json",
         "{\"name\":\"x\"}", NULL, 403, "FORBIDDEN"},
        {"id zero", "POST", "/api/users/0/balance/charge", 1, "application/json", "{\"amount\":1}",
         "k", 404, "NOT_FOUND"},
        {"id not a number", "GET", "/api/users/abc/balance", 1, NULL, NULL, NULL, 404, "NOT_FOUND"},
        {"id overflows", "GET", "/api/users/9223372036854775808/balance", 1, NULL, NULL, NULL, 404,
         "NOT_FOUND"},
        {"unknown route", "GET", "/api/nothing", 1, NULL, NULL, NULL, 404, "NOT_FOUND"},
        {"wrong method", "DELETE", "/api/users/%lld/balance", 1, NULL, NULL, NULL, 405,
         "METHOD_NOT_ALLOWED"},
        {"bad limit", "GET", "/api/users/%lld/balance/history?limit=0", 1, NULL, NULL, NULL, 400,
         "INVALID_INPUT"},
        {"bad cursor", "GET", "/api/users/%lld/balance/history?cursor=zz", 1, NULL, NULL, NULL, 400,
         "INVALID_INPUT"},
        {"admin name empty", "POST", "/api/admin/users", 6, "application/json", "{\"name\":\"\"}",
         NULL, 400, "INVALID_INPUT"},
        {"unknown user", "GET", "/api/users/999999999/balance", 6, NULL, NULL, NULL, 404,
         "USER_NOT_FOUND"},
    };
    int64_t user = harness_create_user(&h, &a, "Bad Input");
    int64_t other = harness_create_user(&h, &a, "Other");
    char *own = harness_token(&h, user), *other_token = harness_token(&h, other);
    char *forged = forged_token();
    struct err e;
    char *expired = auth_issue(h.secret, user, false, 1000, 10, &e);
    char long_key[300], header[400], url[300], path[200];
    struct http_client c;

    memset(long_key, 'k', 256);
    long_key[256] = '\0';
    http_client_init(&c);
    struct http_result first;
    assert_int_equal(charge(&c, &a, user, own, 777, "before", &first), 200);
    http_result_free(&first);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct bad_case *t = &cases[i];
        struct http_result r;
        const char *token =
            t->token == 6 ? admin : token_for(t->token, own, other_token, forged, expired);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        snprintf(path, sizeof(path), t->path, (long long)user);
#pragma GCC diagnostic pop
        snprintf(url, sizeof(url), "%s%s", a.url, path);
        if (t->key)
            snprintf(header, sizeof(header), "Idempotency-Key: %s",
                     strcmp(t->key, "LONG") ? t->key : long_key);
        assert_int_equal(http_do(&c, t->method, url, token, t->content_type, t->body,
                                 t->body ? strlen(t->body) : 0, t->key ? header : NULL, &r),
                         0);
        if (r.status != t->status)
            fail_msg("%s: status %ld, want %ld: %s", t->name, r.status, t->status, r.body);
        json_t *j = parse_body(r.body);
        if (!jstr(j, "code") || strcmp(jstr(j, "code"), t->code))
            fail_msg("%s: code %s, want %s", t->name, jstr(j, "code"), t->code);
        assert_int_equal(jint(j, "status"), t->status);
        assert_string_equal(jstr(j, "type"), "about:blank");
        assert_non_null(jstr(j, "title"));
        assert_non_null(jstr(j, "detail"));
        char ct[128];
        assert_non_null(http_header(&r, "Content-Type", ct, sizeof(ct)));
        assert_string_equal(ct, "application/problem+json");
        if (t->status == 401)
            assert_non_null(http_header(&r, "WWW-Authenticate", ct, sizeof(ct)));
        if (t->status == 405) {
            assert_non_null(http_header(&r, "Allow", ct, sizeof(ct)));
            assert_string_equal(ct, "GET");
        }
        json_decref(j);
        http_result_free(&r);
    }
    /* A 200 KB body: 413, and nothing read into the service. */
    size_t big_len = 200 * 1024;
    char *big = malloc(big_len);
    memset(big, ' ', big_len);
    big[0] = '{';
    big[big_len - 1] = '}';
    struct http_result r;
    snprintf(url, sizeof(url), "%s/api/users/%lld/balance/charge", a.url, (long long)user);
    assert_int_equal(
        http_do(&c, "POST", url, own, "application/json", big, big_len, "Idempotency-Key: big", &r),
        0);
    assert_int_equal(r.status, 413);
    assert_non_null(strstr(r.body, "PAYLOAD_TOO_LARGE"));
    http_result_free(&r);
    free(big);

    assert_int_equal(sql1(sql_balance, user), 777);
    assert_int_equal(sql1(sql_history_count, user), 1);
    assert_int_equal(sql1(sql_history_count, other), 0);
    assert_int_equal(harness_sql_int(&h, sql_mismatched_users, 0), 0);
    http_client_release(&c);
    free(own);
    free(other_token);
    free(forged);
    free(expired);
}

/* ---- a held row lock stalls nobody else ---- */

struct blocked_charge {
    const struct harness_server *server;
    int64_t user;
    const char *token;
    atomic_int done;
    long status;
};

static void *blocked_charge(void *arg)
{
    struct blocked_charge *w = arg;
    struct http_client c;
    struct http_result r;

    http_client_init(&c);
    w->status = charge(&c, w->server, w->user, w->token, 50, "blocked", &r);
    http_result_free(&r);
    http_client_release(&c);
    atomic_store(&w->done, 1);
    return NULL;
}

/*
 * The charge's UPDATE of the locked row is running, so it waits for the lock. (MariaDB 10.11
 * fills INNODB_LOCK_WAITS lazily; the process list shows the statement at once.)
 */
static bool charge_waits_on_the_row(void *arg)
{
    return harness_sql_int(&h,
                           "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                           "WHERE db = DATABASE() AND info LIKE 'UPDATE users SET balance_krw%'",
                           0) > 0;
}

static void row_lock_does_not_stall_others(void **state)
{
    static const char lock_row[] = "SELECT id FROM users WHERE id = ? FOR UPDATE";
    int64_t locked = harness_create_user(&h, &a, "Locked");
    int64_t free_user = harness_create_user(&h, &a, "Free");
    char *locked_token = harness_token(&h, locked), *free_token = harness_token(&h, free_user);
    struct blocked_charge w = {&b, locked, locked_token, 0, 0};
    struct db_conn *side;
    struct arena ar = ARENA_INIT;
    struct db_rows rows;
    struct err e;
    struct http_client c;
    struct http_result r;
    char url[160];
    pthread_t t;

    assert_int_equal(db_acquire(h.pool, &side, &e), 0);
    assert_int_equal(db_begin(side, &e), 0);
    struct db_val p[] = {DB_INT(locked)};
    assert_int_equal(db_query(side, lock_row, p, 1, &ar, &rows, &e), 0);

    pthread_create(&t, NULL, blocked_charge, &w);
    assert_true(harness_wait_for(charge_waits_on_the_row, NULL, 20000));

    /* While that request waits on the row lock, the same server answers everyone else. */
    http_client_init(&c);
    snprintf(url, sizeof(url), "%s/healthz", b.url);
    assert_int_equal(http_do(&c, "GET", url, NULL, NULL, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    http_result_free(&r);
    snprintf(url, sizeof(url), "%s/api/users/%lld/balance", b.url, (long long)free_user);
    assert_int_equal(http_do(&c, "GET", url, free_token, NULL, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    http_result_free(&r);
    assert_int_equal(charge(&c, &b, free_user, free_token, 10, "free", &r), 200);
    http_result_free(&r);
    assert_int_equal(atomic_load(&w.done), 0);

    db_rollback(side);
    db_release(h.pool, side);
    pthread_join(t, NULL);
    assert_int_equal(w.status, 200);
    assert_int_equal(sql1(sql_balance, locked), 50);
    http_client_release(&c);
    arena_release(&ar);
    free(locked_token);
    free(free_token);
}

/*
 * Group commit: a charge whose user row another transaction holds leaves its batch at once
 * (its row is read without waiting) and waits alone, so that the charges sent with it, which
 * may share its batch, are all answered while the row stays locked. Were the batch to wait on
 * the row, they would wait with it for the whole lock wait (30 s here).
 */
#define BESIDE_BUSY 15

struct beside_busy {
    int64_t user;
    const char *token;
    char key[32];
    long status;
};

static pthread_barrier_t busy_barrier;
static atomic_int beside_done;

static void *busy_charge(void *arg)
{
    struct blocked_charge *w = arg;

    pthread_barrier_wait(&busy_barrier);
    return blocked_charge(w);
}

static void *beside_charge(void *arg)
{
    struct beside_busy *w = arg;
    struct http_client c;
    struct http_result r;

    http_client_init(&c);
    pthread_barrier_wait(&busy_barrier);
    w->status = charge(&c, &b, w->user, w->token, 10, w->key, &r);
    http_result_free(&r);
    http_client_release(&c);
    atomic_fetch_add(&beside_done, 1);
    return NULL;
}

static bool all_beside_done(void *arg)
{
    (void)arg;
    return atomic_load(&beside_done) == BESIDE_BUSY;
}

static void a_busy_row_holds_up_no_batch(void **state)
{
    static const char lock_row[] = "SELECT id FROM users WHERE id = ? FOR UPDATE";
    int64_t locked = harness_create_user(&h, &a, "Busy");
    int64_t free_user = harness_create_user(&h, &a, "Beside");
    char *locked_token = harness_token(&h, locked), *free_token = harness_token(&h, free_user);
    struct blocked_charge w = {&b, locked, locked_token, 0, 0};
    struct beside_busy beside[BESIDE_BUSY];
    pthread_t t, others[BESIDE_BUSY];
    struct arena ar = ARENA_INIT;
    struct db_conn *side;
    struct db_rows rows;
    struct err e;

    assert_int_equal(db_acquire(h.pool, &side, &e), 0);
    assert_int_equal(db_begin(side, &e), 0);
    struct db_val p[] = {DB_INT(locked)};
    assert_int_equal(db_query(side, lock_row, p, 1, &ar, &rows, &e), 0);

    atomic_store(&beside_done, 0);
    pthread_barrier_init(&busy_barrier, NULL, BESIDE_BUSY + 1);
    pthread_create(&t, NULL, busy_charge, &w);
    for (int i = 0; i < BESIDE_BUSY; i++) {
        beside[i] = (struct beside_busy){.user = free_user, .token = free_token};
        snprintf(beside[i].key, sizeof(beside[i].key), "beside-%d", i);
        pthread_create(&others[i], NULL, beside_charge, &beside[i]);
    }
    /* All answered while the row is still held, well inside its 30 s lock wait. */
    assert_true(harness_wait_for(all_beside_done, NULL, 20000));
    assert_int_equal(atomic_load(&w.done), 0);
    for (int i = 0; i < BESIDE_BUSY; i++) {
        pthread_join(others[i], NULL);
        assert_int_equal(beside[i].status, 200);
    }
    assert_int_equal(sql1(sql_balance, free_user), 10 * BESIDE_BUSY);

    db_rollback(side);
    db_release(h.pool, side);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&busy_barrier);
    assert_int_equal(w.status, 200);
    assert_int_equal(sql1(sql_balance, locked), 50);
    assert_balance_is_history(locked);
    assert_balance_is_history(free_user);
    arena_release(&ar);
    free(locked_token);
    free(free_token);
}

static bool refuses_connections(void *arg)
{
    const struct harness_server *s = arg;
    struct http_result r;
    char url[128];

    snprintf(url, sizeof(url), "%s/healthz", s->url);
    bool refused = http_once("GET", url, NULL, NULL, NULL, &r) != 0;
    http_result_free(&r);
    return refused;
}

static void sigterm_lets_requests_in_flight_finish(void **state)
{
    static const char lock_row[] = "SELECT id FROM users WHERE id = ? FOR UPDATE";
    struct harness_server s;
    int64_t user = harness_create_user(&h, &a, "Shutdown");
    char *token = harness_token(&h, user);
    struct blocked_charge w = {&s, user, token, 0, 0};
    struct db_conn *side;
    struct arena ar = ARENA_INIT;
    struct db_rows rows;
    struct err e;
    pthread_t t;
    int status;

    assert_int_equal(harness_server_start(&h, &s, NULL), 0);
    assert_int_equal(db_acquire(h.pool, &side, &e), 0);
    assert_int_equal(db_begin(side, &e), 0);
    struct db_val p[] = {DB_INT(user)};
    assert_int_equal(db_query(side, lock_row, p, 1, &ar, &rows, &e), 0);
    pthread_create(&t, NULL, blocked_charge, &w);
    assert_true(harness_wait_for(charge_waits_on_the_row, NULL, 20000));

    /* SIGTERM while the charge waits: the server stops accepting at once... */
    kill(s.pid, SIGTERM);
    assert_true(harness_wait_for(refuses_connections, &s, 20000));
    assert_int_equal(atomic_load(&w.done), 0);
    /* ...and the request in flight still completes and is answered. */
    db_rollback(side);
    db_release(h.pool, side);
    pthread_join(t, NULL);
    assert_int_equal(w.status, 200);
    assert_int_equal(sql1(sql_balance, user), 50);
    assert_int_equal(waitpid(s.pid, &status, 0), s.pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    arena_release(&ar);
    free(token);
}

/* ---- operations ---- */

/* API.md: serve refuses to start with a secret shorter than 32 bytes or one that the
 * repository publishes (deploy/shopd.env, and what scripts/run.sh used to set). */
static void serve_refuses_weak_secrets(void **state)
{
    static const char *const weak[] = {
        "SHOPD_JWT_SECRET=CHANGE-ME-to-32-or-more-random-bytes",
        "SHOPD_JWT_SECRET=dev-secret-change-me",
        "SHOPD_JWT_SECRET=0123456789abcdef0123456789abcde", /* 31 bytes */
    };
    char line[1024];

    for (size_t i = 0; i < sizeof(weak) / sizeof(weak[0]); i++) {
        const char *const env[] = {weak[i], NULL};
        struct harness_server s;
        assert_int_equal(harness_server_start(&h, &s, env), -1);
        FILE *f = fopen(s.log_path, "r");
        bool said = false;
        assert_non_null(f);
        while (fgets(line, sizeof(line), f))
            said = said || strstr(line, "refusing to serve");
        fclose(f);
        if (!said)
            fail_msg("%s: no refusal in %s", weak[i], s.log_path);
    }
    /* 32 bytes of one's own are enough. */
    const char *const env[] = {"SHOPD_JWT_SECRET=0123456789abcdef0123456789abcdef", NULL};
    struct harness_server s;
    assert_int_equal(harness_server_start(&h, &s, env), 0);
    assert_int_equal(harness_server_stop(&s), 0);
}

static void ops_endpoints(void **state)
{
    struct http_result r;
    char url[160];

    snprintf(url, sizeof(url), "%s/readyz", a.url);
    assert_int_equal(http_once("GET", url, NULL, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"status\":\"ok\""));
    http_result_free(&r);

    snprintf(url, sizeof(url), "%s/metrics", a.url);
    assert_int_equal(http_once("GET", url, NULL, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "shopd_http_requests_total{route=\"POST "
                                   "/api/users/{userId}/balance/charge\",status=\"200\"}"));
    assert_non_null(strstr(r.body, "shopd_http_request_duration_seconds_bucket"));
    assert_non_null(strstr(r.body, "shopd_db_errors_total"));
    http_result_free(&r);

    snprintf(url, sizeof(url), "%s/openapi.yaml", a.url);
    assert_int_equal(http_once("GET", url, NULL, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "openapi: 3.1"));
    http_result_free(&r);
}

static void readyz_is_degraded_without_redis(void **state)
{
    static const char *const env[] = {"SHOPD_REDIS_URL=redis://127.0.0.1:1/0", NULL};
    struct harness_server s;
    struct http_result r;
    struct http_client c;
    char url[160];
    int64_t user = harness_create_user(&h, &a, "No Redis");
    char *token = harness_token(&h, user);

    /* harness_server_start() sets SHOPD_REDIS_URL first; the later entry wins in getenv. */
    assert_int_equal(harness_server_start(&h, &s, env), 0);
    snprintf(url, sizeof(url), "%s/readyz", s.url);
    assert_int_equal(http_once("GET", url, NULL, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"status\":\"degraded\""));
    http_result_free(&r);
    http_client_init(&c);
    assert_int_equal(charge(&c, &s, user, token, 10, "no-redis", &r), 200);
    http_result_free(&r);
    http_client_release(&c);
    assert_int_equal(harness_server_stop(&s), 0);
    free(token);
}

/* ---- purge ---- */

static void old_keys_are_purged(void **state)
{
    static const char insert_key[] =
        "INSERT INTO idempotency_keys (user_id, method, path, idem_key, fingerprint, "
        "status_code, response_body, created_at) VALUES (?, 'POST', '/x', ?, "
        "REPEAT('a', 32), 200, '{}', UTC_TIMESTAMP(6) - INTERVAL ? HOUR)";
    static const char count_keys[] =
        "SELECT COUNT(*) FROM idempotency_keys WHERE path = '/x' AND user_id = ?";
    struct db_conn *conn;
    struct err e;
    struct svc s = {.db = h.pool};
    uint64_t purged = 0;

    assert_int_equal(db_acquire(h.pool, &conn, &e), 0);
    struct db_val old[] = {DB_INT(424242), DB_STR("old"), DB_INT(25)};
    struct db_val fresh[] = {DB_INT(424242), DB_STR("fresh"), DB_INT(23)};
    assert_int_equal(db_exec(conn, insert_key, old, 3, NULL, NULL, &e), 0);
    assert_int_equal(db_exec(conn, insert_key, fresh, 3, NULL, NULL, &e), 0);
    db_release(h.pool, conn);
    assert_int_equal(idem_svc_purge(&s, 24LL * 3600 * 1000000, &purged, &e), 0);
    assert_true(purged >= 1);
    assert_int_equal(sql1(count_keys, 424242), 1);
}

/* ---- a lost connection is re-established ---- */

static void reconnects_after_connections_are_killed(void **state)
{
    static const char list[] =
        "SELECT GROUP_CONCAT(id) FROM information_schema.PROCESSLIST WHERE db = DATABASE() "
        "AND id <> CONNECTION_ID()";
    int64_t user = harness_create_user(&h, &a, "Reconnect");
    char *token = harness_token(&h, user);
    struct http_client c;
    struct http_result r;
    struct arena ar = ARENA_INIT;
    struct db_rows rows;
    struct db_conn *conn;
    struct err e;
    char url[160];
    int ok_after = 0;

    /* Kill every connection to the test database but ours, as a server restart would. */
    assert_int_equal(db_acquire(h.pool, &conn, &e), 0);
    assert_int_equal(db_query(conn, list, NULL, 0, &ar, &rows, &e), 0);
    const char *ids = db_str(&rows, 0, 0);
    char *copy = strdup(ids), *save = NULL;
    for (char *id = strtok_r(copy, ",", &save); id; id = strtok_r(NULL, ",", &save)) {
        char kill[64];
        snprintf(kill, sizeof(kill), "KILL CONNECTION %lld", strtoll(id, NULL, 10));
        db_exec_script(conn, kill, &e);
    }
    free(copy);
    db_release(h.pool, conn);

    /* At most the first request on a dead connection fails (503); then service resumes. */
    http_client_init(&c);
    snprintf(url, sizeof(url), "%s/api/users/%lld/balance", a.url, (long long)user);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(http_do(&c, "GET", url, token, NULL, NULL, 0, NULL, &r), 0);
        if (r.status == 200)
            ok_after++;
        else
            assert_int_equal(r.status, 503);
        http_result_free(&r);
    }
    assert_true(ok_after >= 9);
    http_client_release(&c);
    arena_release(&ar);
    free(token);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(charge_then_read),
        cmocka_unit_test(history_pages_newest_first),
        cmocka_unit_test(concurrent_charges_over_two_servers_add_up),
        cmocka_unit_test(one_key_sixty_requests_one_effect),
        cmocka_unit_test(batched_charges_keep_their_own_outcomes),
        cmocka_unit_test(reused_key_with_other_body_is_422),
        cmocka_unit_test(charge_is_fenced_by_its_lock),
        cmocka_unit_test(refusals_are_stored_failures_are_not),
        cmocka_unit_test(bad_inputs_change_nothing),
        cmocka_unit_test(row_lock_does_not_stall_others),
        cmocka_unit_test(a_busy_row_holds_up_no_batch),
        cmocka_unit_test(sigterm_lets_requests_in_flight_finish),
        cmocka_unit_test(serve_refuses_weak_secrets),
        cmocka_unit_test(ops_endpoints),
        cmocka_unit_test(readyz_is_degraded_without_redis),
        cmocka_unit_test(old_keys_are_purged),
        cmocka_unit_test(reconnects_after_connections_are_killed),
    };
    if (it_main_begin() < 0)
        return 1;
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
