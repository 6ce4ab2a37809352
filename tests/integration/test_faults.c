/*
 * Faults end to end against real `shopd serve` processes (issue 11, items 3 and 4): idle
 * consumers that log nothing and count no Redis error; a Redis that stalls (a busy script, as
 * DEBUG SLEEP would) while charges run, after which no lease is left, no request waited out a
 * stale lease and every balance adds up; and MariaDB connections killed under the pool, after
 * which no request fails for a dead connection.
 *
 * The servers use a private Redis (harness_redis_*), so that stalling it leaves the shared one
 * alone, and the shared MariaDB, whose connections to the test database alone are killed.
 * Waits are on conditions, never fixed sleeps.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/err.h"
#include "harness.h"
#include "held_order.h"
#include "http_client.h"
#include "it_main.h"
#include "redis_client.h"
#include "repo/db.h"

static struct harness h;
static struct harness_redis rs;
static struct harness_server a, b;
static struct redis_client rc; /* to the private Redis */
static char prefix[80];        /* shopd's key prefix: "<db name>:" */

static const char sql_balance[] = "SELECT balance_krw FROM users WHERE id = ?";
static const char sql_mismatched_users[] =
    "SELECT COUNT(*) FROM users u WHERE u.balance_krw <> "
    "(SELECT COALESCE(SUM(amount_krw), 0) FROM balance_history x WHERE x.user_id = u.id)";
static const char sql_other_connections[] =
    "SELECT GROUP_CONCAT(id) FROM information_schema.PROCESSLIST WHERE db = DATABASE() "
    "AND id <> CONNECTION_ID()";

static int group_setup(void **state)
{
    if (harness_setup(&h) || harness_redis_start(&h, &rs))
        return -1;
    const char *const env[] = {rs.env, "SHOPD_THREADS=16", NULL};
    if (harness_server_start(&h, &a, env) || harness_server_start(&h, &b, env))
        return -1;
    snprintf(prefix, sizeof(prefix), "%s:", h.db_name);
    return redis_client_init(&rc, rs.url);
}

static int group_teardown(void **state)
{
    int rc_a = harness_server_stop(&a), rc_b = harness_server_stop(&b);

    redis_client_release(&rc);
    harness_redis_stop(&rs);
    harness_teardown(&h);
    return rc_a || rc_b ? -1 : 0;
}

/* ---- helpers ---- */

static long charge(struct http_client *c, const struct harness_server *s, int64_t user,
                   const char *token, int64_t amount, const char *key, struct http_result *r)
{
    char url[160], body[64], header[128];

    snprintf(url, sizeof(url), "%s/api/users/%lld/balance/charge", s->url, (long long)user);
    snprintf(body, sizeof(body), "{\"amount\":%lld}", (long long)amount);
    snprintf(header, sizeof(header), "Idempotency-Key: %s", key);
    if (http_do(c, "POST", url, token, "application/json", body, strlen(body), header, r))
        return -1;
    return r->status;
}

static long get_balance(struct http_client *c, const struct harness_server *s, int64_t user,
                        const char *token)
{
    char url[160];
    struct http_result r;

    snprintf(url, sizeof(url), "%s/api/users/%lld/balance", s->url, (long long)user);
    if (http_do(c, "GET", url, token, NULL, NULL, 0, NULL, &r))
        return -1;
    long status = r.status;
    http_result_free(&r);
    return status;
}

/* The calls of one command in the private Redis's INFO commandstats; -1 when unknown. */
static int64_t command_calls(const char *command)
{
    char field[64];
    redisReply *r = redis_client_cmd(&rc, "INFO commandstats");
    int64_t calls = -1;

    snprintf(field, sizeof(field), "cmdstat_%s:calls=", command);
    if (r && r->type == REDIS_REPLY_STRING) {
        const char *p = strstr(r->str, field);
        calls = p ? strtoll(p + strlen(field), NULL, 10) : 0;
    }
    if (r)
        freeReplyObject(r);
    return calls;
}

/* Lock keys of shopd in the private Redis (not their :fence and :wanted companions). */
static int lock_keys(void)
{
    char pattern[128];
    redisReply *r;
    int n = 0;

    snprintf(pattern, sizeof(pattern), "%slock:*", prefix);
    r = redis_client_cmd(&rc, "KEYS %s", pattern);
    if (!r)
        return -1;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const char *k = r->element[i]->str;
        size_t len = strlen(k);
        if (!(len > 6 && !strcmp(k + len - 6, ":fence")) &&
            !(len > 7 && !strcmp(k + len - 7, ":wanted")))
            n++;
    }
    freeReplyObject(r);
    return n;
}

static bool no_lock_keys(void *arg)
{
    (void)arg;
    return lock_keys() == 0;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);

    if (!f) {
        buf[0] = '\0';
        return buf;
    }
    for (size_t got; (got = fread(buf + len, 1, cap - len - 1, f)) > 0;) {
        len += got;
        if (cap - len < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    buf[len] = '\0';
    fclose(f);
    return buf;
}

/* ---- a Redis stall (a busy script: Redis buffers what comes and runs it when it wakes) ---- */

static const char script_stall[] =
    "local t = redis.call('TIME') "
    "local s = tonumber(t[1]) * 1000000 + tonumber(t[2]) "
    "repeat t = redis.call('TIME') "
    "until tonumber(t[1]) * 1000000 + tonumber(t[2]) - s >= tonumber(ARGV[1]) * 1000 "
    "return 1";

static redisContext *connect_private(int timeout_ms)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", rs.port, tv);

    if (c && !c->err)
        redisSetTimeout(c, tv);
    return c;
}

/* True when a PING on a new connection gets no answer within 50 ms (awake: the opposite). */
static bool pings(void)
{
    redisContext *c = connect_private(50);
    redisReply *r = c && !c->err ? redisCommand(c, "PING") : NULL;
    bool up = r != NULL;

    if (r)
        freeReplyObject(r);
    if (c)
        redisFree(c);
    return up;
}

static bool stalled(void *arg)
{
    (void)arg;
    return !pings();
}

static bool awake(void *arg)
{
    (void)arg;
    return pings();
}

/* Stalls the private Redis for ms and waits until it answers again; true when it stalled. */
static bool stall(int ms)
{
    redisContext *busy = connect_private(2000);
    int done = 0;
    bool ok = busy && !busy->err;

    if (ok) {
        redisAppendCommand(busy, "EVAL %s 0 %d", script_stall, ms);
        while (!done && ok)
            ok = redisBufferWrite(busy, &done) == REDIS_OK;
    }
    ok = ok && harness_wait_for(stalled, NULL, 2000);
    harness_wait_for(awake, NULL, 10000);
    if (busy)
        redisFree(busy);
    return ok;
}

/* ---- 1. idle consumers log nothing and count no Redis error ---- */

struct polls {
    int64_t from, at_least;
};

static bool polled(void *arg)
{
    struct polls *p = arg;

    return command_calls("xreadgroup") - p->from >= p->at_least;
}

static void idle_consumers_count_no_redis_errors(void **state)
{
    int64_t errors_a = harness_metric(&a, "shopd_redis_errors_total");
    int64_t errors_b = harness_metric(&b, "shopd_redis_errors_total");
    /* Each consumer blocks 100 ms a read: 80 reads over both servers' consumers are a few
     * seconds of idle, long enough for the warning that came every few seconds. */
    struct polls p = {command_calls("xreadgroup"), 80};

    assert_true(p.from >= 0);
    assert_true(harness_wait_for_every(polled, &p, 30000, 100));
    assert_int_equal(harness_metric(&a, "shopd_redis_errors_total"), errors_a);
    assert_int_equal(harness_metric(&b, "shopd_redis_errors_total"), errors_b);
    assert_int_equal(errors_a, 0);
    assert_int_equal(errors_b, 0);
    char *log_a = read_file(a.log_path), *log_b = read_file(b.log_path);
    bool warned = strstr(log_a, "Resource temporarily unavailable") ||
                  strstr(log_b, "Resource temporarily unavailable");
    free(log_a);
    free(log_b);
    assert_false(warned);
}

/* ---- 2. charges while Redis stalls ---- */

#define SLOW_USERS   4
#define SLOW_THREADS 8
#define SLOW_CHARGES 12
#define SLOW_STALLS  3
#define SLOW_TRIES   40

struct slow_worker {
    int index;
    const int64_t *users;
    char *const *tokens;
    atomic_int *done;
    int ok, failed5xx;
    int64_t charged[SLOW_USERS];
    int64_t worst_us;
};

static void *slow_worker_main(void *arg)
{
    struct slow_worker *w = arg;
    struct http_client c;

    http_client_init(&c);
    for (int i = 0; i < SLOW_CHARGES; i++) {
        int u = (w->index + i) % SLOW_USERS;
        int64_t amount = 100 + w->index * 10 + i;
        char key[64];
        long status = -1;
        snprintf(key, sizeof(key), "slow-%d-%d", w->index, i);
        /* As a client does: the same key again until the answer is definite. */
        for (int t = 0; t < SLOW_TRIES && status != 200; t++) {
            struct http_result r;
            int64_t t0 = clock_monotonic_us();
            status = charge(&c, (w->index + i + t) % 2 ? &a : &b, w->users[u], w->tokens[u], amount,
                            key, &r);
            int64_t took = clock_monotonic_us() - t0;
            if (took > w->worst_us)
                w->worst_us = took;
            if (status >= 500)
                w->failed5xx++;
            if (status >= 0)
                http_result_free(&r);
        }
        if (status == 200) {
            w->ok++;
            w->charged[u] += amount;
        }
        atomic_fetch_add(w->done, 1);
    }
    http_client_release(&c);
    return NULL;
}

struct progress {
    atomic_int *done;
    int at_least;
};

static bool progressed(void *arg)
{
    struct progress *p = arg;

    return atomic_load(p->done) >= p->at_least;
}

static void redis_stalls_leave_no_lease_and_lose_nothing(void **state)
{
    int64_t users[SLOW_USERS], expected[SLOW_USERS] = {0};
    char *tokens[SLOW_USERS];
    struct slow_worker w[SLOW_THREADS];
    pthread_t t[SLOW_THREADS];
    atomic_int done = 0;
    int ok = 0, failed5xx = 0, stalls = 0;
    int64_t worst_us = 0;

    for (int u = 0; u < SLOW_USERS; u++) {
        char name[32];
        snprintf(name, sizeof(name), "Slow %d", u);
        users[u] = harness_create_user(&h, &a, name);
        assert_true(users[u] > 0);
        tokens[u] = harness_token(&h, users[u]);
    }
    for (int i = 0; i < SLOW_THREADS; i++) {
        w[i] = (struct slow_worker){.index = i, .users = users, .tokens = tokens, .done = &done};
        assert_int_equal(pthread_create(&t[i], NULL, slow_worker_main, &w[i]), 0);
    }
    /* Stalls longer than one lock try (1 s) and than shopd's 200 ms command time-out, each
     * once the clients have made progress since the last. */
    for (int s = 0; s < SLOW_STALLS; s++) {
        struct progress p = {&done, 4 + s * SLOW_THREADS * SLOW_CHARGES / (SLOW_STALLS + 1)};
        if (harness_wait_for_every(progressed, &p, 60000, 20) && stall(1200))
            stalls++;
    }
    for (int i = 0; i < SLOW_THREADS; i++) {
        pthread_join(t[i], NULL);
        ok += w[i].ok;
        failed5xx += w[i].failed5xx;
        if (w[i].worst_us > worst_us)
            worst_us = w[i].worst_us;
        for (int u = 0; u < SLOW_USERS; u++)
            expected[u] += w[i].charged[u];
    }
    /* Every finished request's lease is gone, well before its 10 s would run out. */
    bool no_lease = harness_wait_for_every(no_lock_keys, NULL, 3000, 20);
    print_message("  %d charges over %d stalls of 1.2 s: %d answers 5xx (retried), slowest %lld "
                  "ms\n",
                  ok, stalls, failed5xx, (long long)worst_us / 1000);

    assert_int_equal(stalls, SLOW_STALLS);
    assert_int_equal(ok, SLOW_THREADS * SLOW_CHARGES);
    for (int u = 0; u < SLOW_USERS; u++) {
        assert_int_equal(harness_sql_int(&h, sql_balance, 1, users[u]), expected[u]);
        free(tokens[u]);
    }
    assert_int_equal(harness_sql_int(&h, sql_mismatched_users, 0), 0);
    assert_true(no_lease);
    /* Redis was slow, never down: every lock was taken in Redis, none granted unguarded. */
    assert_int_equal(harness_metric(&a, "shopd_lock_unguarded_total"), 0);
    assert_int_equal(harness_metric(&b, "shopd_lock_unguarded_total"), 0);
    /* No request waited out the 5 s lock wait behind a stale lease. */
    assert_int_equal(harness_metric(&a, "shopd_lock_timeouts_total"), 0);
    assert_int_equal(harness_metric(&b, "shopd_lock_timeouts_total"), 0);
    assert_true(worst_us < 4500000);
}

/* ---- 3. MariaDB connections killed under the pool ---- */

#define KILL_THREADS  16
#define KILL_REQUESTS 6
#define KILL_ROUNDS   2

struct burst_worker {
    int index, round;
    int64_t user;
    const char *token;
    int ok, failed5xx, other;
    int64_t charged;
    pthread_barrier_t *go;
};

static void *burst_worker_main(void *arg)
{
    struct burst_worker *w = arg;
    struct http_client c;

    http_client_init(&c);
    pthread_barrier_wait(w->go);
    for (int i = 0; i < KILL_REQUESTS; i++) {
        long status;
        if (i % 2) {
            status = get_balance(&c, &a, w->user, w->token);
        } else {
            struct http_result r;
            char key[64];
            snprintf(key, sizeof(key), "kill-%d-%d-%d", w->round, w->index, i);
            status = charge(&c, &a, w->user, w->token, 10 + i, key, &r);
            if (status >= 0)
                http_result_free(&r);
            if (status == 200)
                w->charged += 10 + i;
        }
        if (status >= 500)
            w->failed5xx++;
        else if (status == 200)
            w->ok++;
        else
            w->other++;
    }
    http_client_release(&c);
    return NULL;
}

/* Runs KILL_THREADS clients at once on server a; returns the 5xx answers. */
static int burst(int round, const int64_t *users, char *const *tokens, int64_t *charged, int *other)
{
    struct burst_worker w[KILL_THREADS];
    pthread_t t[KILL_THREADS];
    pthread_barrier_t go;
    int failed = 0;

    pthread_barrier_init(&go, NULL, KILL_THREADS);
    for (int i = 0; i < KILL_THREADS; i++) {
        w[i] = (struct burst_worker){
            .index = i, .round = round, .user = users[i % 4], .token = tokens[i % 4], .go = &go};
        pthread_create(&t[i], NULL, burst_worker_main, &w[i]);
    }
    for (int i = 0; i < KILL_THREADS; i++) {
        pthread_join(t[i], NULL);
        failed += w[i].failed5xx;
        *other += w[i].other;
        charged[i % 4] += w[i].charged;
    }
    pthread_barrier_destroy(&go);
    return failed;
}

struct killed {
    char ids[4096];
};

/* True once none of the killed connections is in the process list any more. */
static bool all_gone(void *arg)
{
    struct killed *k = arg;
    struct arena ar = ARENA_INIT;
    struct db_rows rows;
    struct db_conn *conn;
    struct err e;
    bool gone = false;

    if (db_acquire(h.pool, &conn, &e))
        return false;
    if (!db_query(conn, sql_other_connections, NULL, 0, &ar, &rows, &e)) {
        char *copy = strdup(db_str(&rows, 0, 0)), *save = NULL;
        gone = true;
        for (char *id = strtok_r(copy, ",", &save); id && gone; id = strtok_r(NULL, ",", &save)) {
            char needle[32];
            snprintf(needle, sizeof(needle), ",%s,", id);
            gone = !strstr(k->ids, needle);
        }
        free(copy);
    }
    db_release(h.pool, conn);
    arena_release(&ar);
    return gone;
}

/* Kills every connection to the test database but the harness's own (as a MariaDB restart
 * would, without stopping the shared server); returns how many. */
static int kill_connections(void)
{
    struct arena ar = ARENA_INIT;
    struct db_rows rows;
    struct db_conn *conn;
    struct err e;
    struct killed k = {","};
    int n = 0;

    if (db_acquire(h.pool, &conn, &e))
        return -1;
    if (!db_query(conn, sql_other_connections, NULL, 0, &ar, &rows, &e)) {
        char *copy = strdup(db_str(&rows, 0, 0)), *save = NULL;
        for (char *id = strtok_r(copy, ",", &save); id; id = strtok_r(NULL, ",", &save)) {
            char kill[64];
            snprintf(kill, sizeof(kill), "KILL CONNECTION %lld", strtoll(id, NULL, 10));
            if (!db_exec_script(conn, kill, &e))
                n++;
            size_t len = strlen(k.ids);
            snprintf(k.ids + len, sizeof(k.ids) - len, "%s,", id);
        }
        free(copy);
    }
    db_release(h.pool, conn);
    arena_release(&ar);
    /* KILL returns before the victims are gone: wait until they are. */
    return harness_wait_for_every(all_gone, &k, 10000, 20) ? n : -1;
}

static void killed_connections_are_replaced_before_use(void **state)
{
    int64_t users[4], charged[4] = {0};
    char *tokens[4];
    int other = 0;

    for (int u = 0; u < 4; u++) {
        char name[32];
        snprintf(name, sizeof(name), "Killed %d", u);
        users[u] = harness_create_user(&h, &a, name);
        assert_true(users[u] > 0);
        tokens[u] = harness_token(&h, users[u]);
    }
    int64_t base[4];
    for (int u = 0; u < 4; u++)
        base[u] = harness_sql_int(&h, sql_balance, 1, users[u]);
    /* Fill the pool: as many connections as clients at once. */
    assert_int_equal(burst(0, users, tokens, charged, &other), 0);
    int64_t reconnects = harness_metric(&a, "shopd_db_reconnects_total");
    int failed = 0, killed = 0;
    for (int round = 1; round <= KILL_ROUNDS; round++) {
        int n = kill_connections();
        assert_true(n > 0);
        killed += n;
        failed += burst(round, users, tokens, charged, &other);
    }
    print_message("  %d connections killed over %d rounds: %d answers 5xx, %lld reconnects\n",
                  killed, KILL_ROUNDS, failed,
                  (long long)(harness_metric(&a, "shopd_db_reconnects_total") - reconnects));
    assert_int_equal(failed, 0);
    assert_int_equal(other, 0);
    assert_true(harness_metric(&a, "shopd_db_reconnects_total") > reconnects);
    for (int u = 0; u < 4; u++) {
        assert_int_equal(harness_sql_int(&h, sql_balance, 1, users[u]), base[u] + charged[u]);
        free(tokens[u]);
    }
    assert_int_equal(harness_sql_int(&h, sql_mismatched_users, 0), 0);
}

/* ---- 4. a keyed write whose connection is lost in its transaction ---- */

static const char sql_orders_of[] = "SELECT COUNT(*) FROM orders WHERE user_id = ?";
static const char sql_stock_of[] = "SELECT stock FROM products WHERE id = ?";

/*
 * The order's transaction waits on the product's row, which the test holds; the test kills
 * that connection (as a Galera node dying under it would), then lets the row go. The call is
 * sent again on a new connection (nothing of it was committed): 201, one order, the stock
 * taken once.
 */
static void a_connection_lost_in_an_order_is_answered_once(void **state)
{
    int64_t user = harness_create_user(&h, &a, "Lost connection");
    int64_t product = harness_create_product(&h, &a, "Held row", 1000, 10);
    char *token = harness_token(&h, user);
    struct held_order o;
    struct err e;
    char kill[64];

    assert_true(user > 0 && product > 0);
    assert_int_equal(held_order_start(&o, &h, &a, user, token, product, "lost-connection-1"), 0);
    snprintf(kill, sizeof(kill), "KILL CONNECTION %lld", (long long)o.waiter);
    assert_int_equal(db_exec_script(o.holder, kill, &e), 0);
    assert_int_equal(held_order_finish(&o), 201);
    assert_int_equal(harness_sql_int(&h, sql_orders_of, 1, user), 1);
    assert_int_equal(harness_sql_int(&h, sql_stock_of, 1, product), 9);
    free(token);
}

/* Appends node (a socket path or host:port) to out as a node of SHOPD_DB_URL. */
static void append_node(char *out, size_t size, const char *node, size_t len)
{
    size_t n = strlen(out);

    for (size_t i = 0; i < len && n + 4 < size; i++)
        n += (size_t)snprintf(out + n, size - n, node[i] == '/' ? "%%2F" : "%c", node[i]);
}

/*
 * A cluster's first node that cannot be reached (a socket nobody listens on) before the real
 * one: the server moves to the second node once, every connection follows, and the writes are
 * exact. What a Galera node lost at start-up, or killed, looks like to the pool.
 */
static void a_lost_first_node_moves_the_pool_to_the_next(void **state)
{
    char url[512] = "", env_url[640];
    const char *at = strchr(h.db_url, '@');
    const char *sock = strstr(h.db_url, "?socket=");
    struct harness_server c;
    struct http_client hc;
    struct http_result r;

    (void)state;
    assert_non_null(at);
    snprintf(url, sizeof(url), "%.*s", (int)(at + 1 - h.db_url), h.db_url);
    append_node(url, sizeof(url), "/tmp/shopd-no-such-node.sock", 28);
    append_node(url, sizeof(url), ",", 1);
    if (sock)
        append_node(url, sizeof(url), sock + 8, strlen(sock + 8));
    else
        append_node(url, sizeof(url), at + 1, strcspn(at + 1, "/"));
    snprintf(env_url, sizeof(env_url), "SHOPD_DB_URL=%s/%s", url, h.db_name);
    const char *const env[] = {env_url, rs.env, "SHOPD_THREADS=4", NULL};
    assert_int_equal(harness_server_start(&h, &c, env), 0);

    int64_t user = harness_create_user(&h, &c, "Second node");
    assert_true(user > 0);
    char *token = harness_token(&h, user);
    int64_t base = harness_sql_int(&h, sql_balance, 1, user);
    http_client_init(&hc);
    for (int i = 0; i < 20; i++) {
        char key[48];
        snprintf(key, sizeof(key), "second-node-%d", i);
        assert_int_equal(charge(&hc, &c, user, token, 1000, key, &r), 200);
        http_result_free(&r);
    }
    assert_int_equal(get_balance(&hc, &c, user, token), 200);
    http_client_release(&hc);
    assert_int_equal(harness_sql_int(&h, sql_balance, 1, user), base + 20 * 1000);
    /* Once per pool (requests and batches): later connections go to the second node at once. */
    int64_t moves = harness_metric(&c, "shopd_db_node_changes_total");
    assert_true(moves >= 1 && moves <= 2);
    free(token);
    assert_int_equal(harness_server_stop(&c), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* Idle first, while nothing has happened yet. */
        cmocka_unit_test(idle_consumers_count_no_redis_errors),
        cmocka_unit_test(redis_stalls_leave_no_lease_and_lose_nothing),
        cmocka_unit_test(killed_connections_are_replaced_before_use),
        cmocka_unit_test(a_connection_lost_in_an_order_is_answered_once),
        cmocka_unit_test(a_lost_first_node_moves_the_pool_to_the_next),
    };
    int failed = 0;

    if (it_main_begin() < 0)
        return 1;
    IT_RUN_GROUP(failed, "faults", tests, group_setup, group_teardown);
    return failed ? 1 : 0;
}
