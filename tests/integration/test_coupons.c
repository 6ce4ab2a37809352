/*
 * Coupons end to end against real `shopd serve` processes on a fresh MariaDB database, once
 * per issue strategy (SHOPD_COUPON_STRATEGY = gate, lock, db), three processes each:
 * 300 users racing for 50 coupons get exactly 50, one user asking 40 times at once gets one,
 * the issue window and missing coupons answer their codes, and a private Redis killed and
 * restarted in the middle of a rush changes nothing. The gate group also holds the contract
 * tests: create and read, a table of bad inputs that must create and issue nothing, and the
 * user's list with its status filter, EXPIRED included.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
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
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/array.h"
#include "core/clock.h"
#include "core/err.h"
#include "harness.h"
#include "http/auth.h"
#include "http_client.h"
#include "it_main.h"
#include "json_check.h"
#include "repo/db.h"

#define SERVERS     3
#define RUSH_USERS  300
#define RUSH_STOCK  50
#define SAME_USER_N 40
#define DAY_US      (86400LL * 1000000)

/* One group: a fresh database, three processes with one strategy, and the racing users. */
struct group {
    const char *strategy;
    const char *fault; /* SHOPD_REDIS_FAULT for its servers, or NULL */
    bool private_redis;
    struct harness_server s[SERVERS];
    struct harness_redis redis;
    int64_t users[RUSH_USERS]; /* created on first use */
    char *tokens[RUSH_USERS];
    bool have_users;
};

static struct harness h; /* the running group's database; groups run one after another */
static char *admin;
static struct group groups[] = {
    {.strategy = "gate"},
    {.strategy = "lock"},
    {.strategy = "db"},
    {.strategy = "gate", .private_redis = true},
    /* Every third command of the gate, or of the locks, runs in Redis and its reply is lost
     * (redis/redis_fault.h): the caller cannot know what it did, and must still be exact. */
    {.strategy = "gate", .fault = "SHOPD_REDIS_FAULT=gate:lost:every=3"},
    {.strategy = "lock", .fault = "SHOPD_REDIS_FAULT=dlock:lost:every=3"},
};

static const char sql_issued_rows[] = "SELECT COUNT(*) FROM user_coupons WHERE coupon_id = ?";
static const char sql_issued_users[] =
    "SELECT COUNT(DISTINCT user_id) FROM user_coupons WHERE coupon_id = ?";
static const char sql_issued_quantity[] = "SELECT issued_quantity FROM coupons WHERE id = ?";
static const char sql_holds[] =
    "SELECT COUNT(*) FROM user_coupons WHERE coupon_id = ? AND user_id = ?";
static const char sql_coupons_after[] = "SELECT COUNT(*) FROM coupons WHERE id > ?";
static const char sql_max_coupon[] = "SELECT COALESCE(MAX(id), 0) FROM coupons";
static const char sql_user_rows[] = "SELECT COUNT(*) FROM user_coupons WHERE user_id = ?";

/* ---- group fixtures ---- */

static int stop_group(void **state);

static int start_group(struct group *g, void **state)
{
    char strategy[64];
    /* Under the lock strategy all 300 requests queue for one lock; on the ASan build that
     * takes longer than the default 5 s wait, after which the late ones would get 503. */
    const char *env[5] = {strategy, "SHOPD_LOCK_WAIT=60", NULL, NULL, NULL};
    size_t nenv = 2;

    *state = g;
    snprintf(strategy, sizeof(strategy), "SHOPD_COUPON_STRATEGY=%s", g->strategy);
    if (harness_setup(&h))
        goto fail;
    if (g->private_redis) {
        if (harness_redis_start(&h, &g->redis))
            goto fail;
        env[nenv++] = g->redis.env;
    }
    if (g->fault)
        env[nenv++] = g->fault;
    for (int i = 0; i < SERVERS; i++)
        if (harness_server_start(&h, &g->s[i], env))
            goto fail;
    admin = harness_admin_token(&h);
    return 0;
fail:
    /* Whatever did start is stopped here: a failed setup has no teardown to count on. */
    stop_group(state);
    return -1;
}

static int stop_group(void **state)
{
    struct group *g = *state;
    int rc = 0;

    if (!g)
        return 0; /* set-up failed and cleaned up after itself */
    *state = NULL;
    for (int i = 0; i < SERVERS; i++)
        if (g->s[i].pid > 0 && harness_server_stop(&g->s[i])) {
            fprintf(stderr, "shopd %s did not stop cleanly; see %s\n", g->s[i].url,
                    g->s[i].log_path);
            rc = -1;
        }
    if (g->private_redis && g->redis.pid > 0 && harness_redis_stop(&g->redis))
        rc = -1;
    for (int i = 0; i < RUSH_USERS; i++) {
        free(g->tokens[i]);
        g->tokens[i] = NULL;
    }
    g->have_users = false;
    free(admin);
    admin = NULL;
    harness_teardown(&h);
    return rc;
}

static int start_gate(void **state)
{
    return start_group(&groups[0], state);
}

static int start_lock(void **state)
{
    return start_group(&groups[1], state);
}

static int start_db(void **state)
{
    return start_group(&groups[2], state);
}

static int start_outage(void **state)
{
    return start_group(&groups[3], state);
}

static int start_gate_lost(void **state)
{
    return start_group(&groups[4], state);
}

static int start_lock_lost(void **state)
{
    return start_group(&groups[5], state);
}

/* ---- helpers ---- */

static void assert_jstr(json_t *j, const char *key, const char *want)
{
    const char *got = jstr(j, key);
    if (!got || strcmp(got, want))
        fail_msg("'%s' is %s, want \"%s\"", key, got ? got : "not a string", want);
}

static void assert_jnull(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    if (!v || !json_is_null(v))
        fail_msg("'%s' is not null", key);
}

/* Expects a problem answer with this status and code. */
static void expect_problem(long status, json_t *j, long want_status, const char *want_code,
                           const char *what)
{
    const char *code = jstr(j, "code");

    if (status != want_status || !code || strcmp(code, want_code))
        fail_msg("%s: %ld %s, want %ld %s", what, status, code ? code : "(no code)", want_status,
                 want_code);
    assert_int_equal(jint(j, "status"), want_status);
}

static int64_t sql1(const char *sql, int64_t x)
{
    return harness_sql_int(&h, sql, 1, x);
}

static int64_t sql2(const char *sql, int64_t x, int64_t y)
{
    return harness_sql_int(&h, sql, 2, x, y);
}

static void rfc3339(int64_t us, char *buf, size_t size)
{
    clock_format_rfc3339(us, buf, size);
}

/* Creates a coupon through the admin API on s; returns the Coupon (201 asserted). */
static json_t *create_coupon_json(const struct harness_server *s, const char *body)
{
    json_t *c;
    long status = it_call(s, "POST", admin, body, &c, "/api/admin/coupons");

    if (status != 201)
        fail_msg("POST /api/admin/coupons %s: status %ld, code %s", body, status,
                 jstr(c, "code") ? jstr(c, "code") : "-");
    assert_true(jint(c, "couponId") > 0);
    return c;
}

/* A FIXED 1000 coupon of total quantity with the given window (either bound may be NULL). */
static int64_t new_coupon(const struct harness_server *s, const char *name, int64_t total,
                          const char *starts, const char *ends)
{
    char body[512], window[200] = "";

    if (starts)
        snprintf(window, sizeof(window), ",\"startsAt\":\"%s\"", starts);
    if (ends)
        snprintf(window + strlen(window), sizeof(window) - strlen(window), ",\"endsAt\":\"%s\"",
                 ends);
    snprintf(body, sizeof(body),
             "{\"name\":\"%s\",\"discountType\":\"FIXED\",\"discountValue\":1000,"
             "\"totalQuantity\":%lld%s}",
             name, (long long)total, window);
    json_t *c = create_coupon_json(s, body);
    int64_t id = jint(c, "couponId");
    json_decref(c);
    return id;
}

static int64_t new_user(const struct harness_server *s, const char *name)
{
    int64_t id = harness_create_user(&h, s, name);
    if (id <= 0)
        fail_msg("could not create user %s", name);
    return id;
}

/* The group's racing users and their tokens, created once, through one keep-alive client. */
static void rush_users(struct group *g)
{
    char url[160], body[64];

    if (g->have_users)
        return;
    snprintf(url, sizeof(url), "%s/api/admin/users", g->s[0].url);
    for (int i = 0; i < RUSH_USERS; i++) {
        struct http_result r;
        snprintf(body, sizeof(body), "{\"name\":\"Rush %d\"}", i);
        assert_int_equal(http_do(&it_client, "POST", url, admin, "application/json", body,
                                 strlen(body), NULL, &r),
                         0);
        long status = r.status;
        json_t *j = json_loads(r.body, 0, NULL);
        http_result_free(&r);
        if (status != 201 || !j)
            fail_msg("creating user %d: status %ld", i, status);
        g->users[i] = jint(j, "userId");
        json_decref(j);
        g->tokens[i] = harness_token(&h, g->users[i]);
    }
    g->have_users = true;
}

/* POST /issue with a thread's own client; the answer stays in r. */
static long issue_with(struct http_client *c, const struct harness_server *s, int64_t coupon,
                       int64_t user, const char *token, struct http_result *r)
{
    char url[160], body[64];

    snprintf(url, sizeof(url), "%s/api/coupons/%lld/issue", s->url, (long long)coupon);
    snprintf(body, sizeof(body), "{\"userId\":%lld}", (long long)user);
    if (http_do(c, "POST", url, token, "application/json", body, strlen(body), NULL, r))
        return -1;
    return r->status;
}

/* Issues on the main thread; returns the status and the answer's code ("" for 201). */
static long issue(const struct harness_server *s, int64_t coupon, int64_t user, const char *token,
                  json_t **out)
{
    char body[64];

    snprintf(body, sizeof(body), "{\"userId\":%lld}", (long long)user);
    return it_call(s, "POST", token, body, out, "/api/coupons/%lld/issue", (long long)coupon);
}

static void expect_issue_error(const struct harness_server *s, int64_t coupon, int64_t user,
                               const char *token, long status, const char *code)
{
    json_t *j;
    char what[96];

    snprintf(what, sizeof(what), "issue coupon %lld to user %lld", (long long)coupon,
             (long long)user);
    long got = issue(s, coupon, user, token, &j);
    expect_problem(got, j, status, code, what);
    json_decref(j);
}

/* GET the coupon through s: 200, and its counts. */
static void expect_counts(const struct harness_server *s, int64_t coupon, int64_t total,
                          int64_t issued)
{
    json_t *c;

    assert_int_equal(it_call(s, "GET", NULL, NULL, &c, "/api/coupons/%lld", (long long)coupon),
                     200);
    assert_int_equal(jint(c, "couponId"), coupon);
    assert_int_equal(jint(c, "totalQuantity"), total);
    assert_int_equal(jint(c, "issuedQuantity"), issued);
    assert_int_equal(jint(c, "remainingQuantity"), total - issued);
    json_decref(c);
}

/* MariaDB and every process agree that exactly issued of total are out, to distinct users. */
static void expect_issued(struct group *g, int64_t coupon, int64_t total, int64_t issued)
{
    assert_int_equal(sql1(sql_issued_rows, coupon), issued);
    assert_int_equal(sql1(sql_issued_users, coupon), issued);
    assert_int_equal(sql1(sql_issued_quantity, coupon), issued);
    for (int i = 0; i < SERVERS; i++)
        expect_counts(&g->s[i], coupon, total, issued);
}

/* ---- the rush: one thread per request, started together ---- */

struct outcome {
    long status;
    int curl_error;
    char *body; /* malloc'd */
};

struct rush {
    struct group *g;
    int64_t coupon;
    int n;
    const int64_t *users; /* request i is for users[i]... */
    char *const *tokens;  /* ...with tokens[i], sent to g->s[i % SERVERS] */
    /* Without waves every request waits on the barrier; with waves, request i waits until
     * released > wave[i]. */
    pthread_barrier_t barrier;
    const int *wave;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int released;
    atomic_int done;
    struct outcome out[RUSH_USERS];
};

struct rush_arg {
    struct rush *r;
    int i;
};

static void *rush_worker(void *arg)
{
    struct rush_arg *a = arg;
    struct rush *r = a->r;
    struct http_client c;
    struct http_result res;
    int i = a->i;

    http_client_init(&c);
    if (r->wave) {
        pthread_mutex_lock(&r->mu);
        while (r->released <= r->wave[i])
            pthread_cond_wait(&r->cv, &r->mu);
        pthread_mutex_unlock(&r->mu);
    } else {
        pthread_barrier_wait(&r->barrier);
    }
    r->out[i].status =
        issue_with(&c, &r->g->s[i % SERVERS], r->coupon, r->users[i], r->tokens[i], &res);
    r->out[i].curl_error = res.curl_error;
    r->out[i].body = res.body; /* taken over */
    res.body = NULL;
    http_result_free(&res);
    http_client_release(&c);
    atomic_fetch_add(&r->done, 1);
    return NULL;
}

static void release_wave(struct rush *r, int wave)
{
    pthread_mutex_lock(&r->mu);
    r->released = wave + 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void rush_init(struct rush *r, struct group *g, int64_t coupon, int n, const int64_t *users,
                      char *const *tokens, const int *wave)
{
    memset(r, 0, sizeof(*r));
    r->g = g;
    r->coupon = coupon;
    r->n = n;
    r->users = users;
    r->tokens = tokens;
    r->wave = wave;
    pthread_barrier_init(&r->barrier, NULL, (unsigned)n);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
}

static void rush_start(struct rush *r, pthread_t *threads, struct rush_arg *args)
{
    for (int i = 0; i < r->n; i++) {
        args[i] = (struct rush_arg){r, i};
        if (pthread_create(&threads[i], NULL, rush_worker, &args[i]))
            fail_msg("pthread_create %d failed", i);
    }
}

static void rush_join(struct rush *r, pthread_t *threads)
{
    for (int i = 0; i < r->n; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&r->barrier);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

static void rush_free(struct rush *r)
{
    for (int i = 0; i < r->n; i++) {
        free(r->out[i].body);
        r->out[i].body = NULL;
    }
}

/* The answer's code and detail, or "" when it has none. */
static void problem_of(const char *body, char *code, size_t code_size, char *detail,
                       size_t detail_size)
{
    json_t *j = body ? json_loads(body, 0, NULL) : NULL;
    const char *c = j ? jstr(j, "code") : NULL, *d = j ? jstr(j, "detail") : NULL;

    snprintf(code, code_size, "%s", c ? c : "");
    snprintf(detail, detail_size, "%s", d ? d : (body ? body : ""));
    json_decref(j);
}

/* Whether a 201 is the UserCoupon of this coupon for this user. */
static bool is_user_coupon(const char *body, int64_t coupon, int64_t user)
{
    json_t *j = json_loads(body, 0, NULL);
    json_t *id = json_object_get(j, "userCouponId"), *c = json_object_get(j, "couponId");
    json_t *u = json_object_get(j, "userId"), *st = json_object_get(j, "status");
    bool ok = j && json_is_integer(id) && json_integer_value(id) > 0 && json_is_integer(c) &&
              json_integer_value(c) == coupon && json_is_integer(u) &&
              json_integer_value(u) == user && json_is_string(st) &&
              !strcmp(json_string_value(st), "AVAILABLE");
    json_decref(j);
    return ok;
}

#define TALLY_KINDS 8

struct tally {
    int issued, wanted_conflicts, others, bad_bodies;
    int missing_in_db; /* 201 answers whose row MariaDB does not hold */
    int64_t db_issued; /* the coupon's issued_quantity afterwards */
    struct {
        long status;
        char code[64];
        int n;
    } kinds[TALLY_KINDS]; /* the answers that are neither, by status and code */
    int nkinds;
    char report[2048]; /* the first of them */
};

static void count_kind(struct tally *t, long status, const char *code)
{
    int i = 0;

    while (i < t->nkinds && (t->kinds[i].status != status || strcmp(t->kinds[i].code, code)))
        i++;
    if (i == t->nkinds) {
        if (i == TALLY_KINDS)
            i--; /* the last one counts the rest */
        else
            t->nkinds++;
        t->kinds[i].status = status;
        snprintf(t->kinds[i].code, sizeof(t->kinds[i].code), "%s", code[0] ? code : "-");
    }
    t->kinds[i].n++;
}

/*
 * Counts 201 answers (each checked to be this user's coupon and present in MariaDB), 409
 * answers with conflict_code, and anything else, which is listed in the report.
 */
static void tally_rush(struct rush *r, const char *conflict_code, struct tally *t)
{
    size_t used = 0;

    memset(t, 0, sizeof(*t));
    t->db_issued = sql1(sql_issued_quantity, r->coupon);
    for (int i = 0; i < r->n; i++) {
        const struct outcome *o = &r->out[i];
        char code[64], detail[160];
        problem_of(o->body, code, sizeof(code), detail, sizeof(detail));
        if (o->status == 201) {
            t->issued++;
            if (!is_user_coupon(o->body, r->coupon, r->users[i]))
                t->bad_bodies++;
            if (sql2(sql_holds, r->coupon, r->users[i]) != 1)
                t->missing_in_db++;
            continue;
        }
        if (o->status == 409 && !strcmp(code, conflict_code)) {
            t->wanted_conflicts++;
            continue;
        }
        t->others++;
        count_kind(t, o->status, code);
        if (t->others <= 4) {
            int n = snprintf(t->report + used, sizeof(t->report) - used,
                             "\n  request %d (user %lld via %s): %ld %s, curl %d: %s", i,
                             (long long)r->users[i], r->g->s[i % SERVERS].url, o->status, code,
                             o->curl_error, detail);
            if (n > 0 && used + (size_t)n < sizeof(t->report))
                used += (size_t)n;
        }
    }
}

static void expect_tally(const struct tally *t, int issued, int conflicts, const char *conflict)
{
    char kinds[512] = "";

    for (int i = 0; i < t->nkinds; i++) {
        size_t used = strlen(kinds);
        snprintf(kinds + used, sizeof(kinds) - used, "%s%ld %s × %d", i ? ", " : "",
                 t->kinds[i].status, t->kinds[i].code, t->kinds[i].n);
    }
    if (t->others || t->issued != issued || t->wanted_conflicts != conflicts)
        fail_msg("%d × 201 and %d × 409 %s (want %d and %d), %d other answers (%s); "
                 "MariaDB has %lld issued:%s",
                 t->issued, t->wanted_conflicts, conflict, issued, conflicts, t->others, kinds,
                 (long long)t->db_issued, t->report);
    assert_int_equal(t->bad_bodies, 0);
    assert_int_equal(t->missing_in_db, 0);
}

/* ---- exactness under concurrency, per strategy ---- */

/* The faults the group's servers' Redis seam handed out (0 without SHOPD_REDIS_FAULT). */
static int64_t faults_injected(const struct group *g)
{
    int64_t n = 0;

    for (int i = 0; i < SERVERS; i++)
        n += harness_metric(&g->s[i], "shopd_redis_faults_injected_total");
    return n;
}

static void rush_300_users_50_coupons(void **state)
{
    struct group *g = *state;
    static pthread_t threads[RUSH_USERS];
    static struct rush_arg args[RUSH_USERS];
    static struct rush r;
    struct tally t;
    char name[64];

    rush_users(g);
    snprintf(name, sizeof(name), "Rush %s", g->strategy);
    int64_t coupon = new_coupon(&g->s[0], name, RUSH_STOCK, NULL, NULL);
    rush_init(&r, g, coupon, RUSH_USERS, g->users, g->tokens, NULL);
    rush_start(&r, threads, args);
    rush_join(&r, threads);
    tally_rush(&r, "COUPON_SOLD_OUT", &t);
    rush_free(&r);
    expect_tally(&t, RUSH_STOCK, RUSH_USERS - RUSH_STOCK, "COUPON_SOLD_OUT");
    expect_issued(g, coupon, RUSH_STOCK, RUSH_STOCK);

    /* Afterwards, losers still get SOLD_OUT, and winners asking again get nothing more (the
     * gate, and the lock strategy's sold-out read before the lock, may see that it is sold
     * out before they see the holder). Five of each. */
    int holders = 0, losers = 0;
    for (int i = 0; i < RUSH_USERS && (holders < 5 || losers < 5); i++) {
        bool holds = sql2(sql_holds, coupon, g->users[i]) == 1;
        if (holds ? holders++ >= 5 : losers++ >= 5)
            continue;
        json_t *j;
        long status = issue(&g->s[i % SERVERS], coupon, g->users[i], g->tokens[i], &j);
        const char *code = jstr(j, "code");
        if (status != 409 || !code)
            fail_msg("user %lld asking again: status %ld", (long long)g->users[i], status);
        if (!holds)
            assert_string_equal(code, "COUPON_SOLD_OUT");
        else if (!strcmp(g->strategy, "db"))
            assert_string_equal(code, "COUPON_ALREADY_ISSUED");
        else if (strcmp(code, "COUPON_ALREADY_ISSUED") && strcmp(code, "COUPON_SOLD_OUT"))
            fail_msg("a holder asking again: %s", code);
        json_decref(j);
    }
    assert_true(holders >= 5 && losers >= 5);
    expect_issued(g, coupon, RUSH_STOCK, RUSH_STOCK);
    /* A third of the gate's (or the locks') commands lost their replies: every winner's
     * admission (or lock) went through them, so a third of 50 at least. */
    if (g->fault)
        assert_true(faults_injected(g) >= RUSH_STOCK / 3);
}

static void one_user_40_times_gets_one(void **state)
{
    struct group *g = *state;
    static pthread_t threads[SAME_USER_N];
    static struct rush_arg args[SAME_USER_N];
    static struct rush r;
    int64_t users[SAME_USER_N];
    char *tokens[SAME_USER_N];
    struct tally t;
    char name[64];

    snprintf(name, sizeof(name), "Once %s", g->strategy);
    int64_t user = new_user(&g->s[0], name);
    char *token = harness_token(&h, user);
    int64_t coupon = new_coupon(&g->s[1], name, 10, NULL, NULL);
    for (int i = 0; i < SAME_USER_N; i++) {
        users[i] = user;
        tokens[i] = token;
    }
    rush_init(&r, g, coupon, SAME_USER_N, users, tokens, NULL);
    rush_start(&r, threads, args);
    rush_join(&r, threads);
    tally_rush(&r, "COUPON_ALREADY_ISSUED", &t);
    rush_free(&r);
    free(token);
    expect_tally(&t, 1, SAME_USER_N - 1, "COUPON_ALREADY_ISSUED");
    expect_issued(g, coupon, 10, 1);
    assert_int_equal(sql1(sql_user_rows, user), 1);
}

/* ---- the issue window and missing things, per strategy ---- */

static void window_and_not_found_errors(void **state)
{
    struct group *g = *state;
    char past1[32], past2[32], future[32];
    int64_t now = clock_now_us();
    int64_t user = new_user(&g->s[0], "Window");
    char *token = harness_token(&h, user);

    rfc3339(now - 2 * DAY_US, past2, sizeof(past2));
    rfc3339(now - DAY_US, past1, sizeof(past1));
    rfc3339(now + DAY_US, future, sizeof(future));
    int64_t later = new_coupon(&g->s[0], "Starts tomorrow", 5, future, NULL);
    int64_t ended = new_coupon(&g->s[0], "Ended yesterday", 5, past2, past1);
    int64_t open = new_coupon(&g->s[0], "Open", 1, past1, future);

    for (int i = 0; i < SERVERS; i++) {
        expect_issue_error(&g->s[i], later, user, token, 409, "COUPON_NOT_ACTIVE");
        expect_issue_error(&g->s[i], ended, user, token, 409, "COUPON_NOT_ACTIVE");
        expect_issue_error(&g->s[i], 999999999, user, token, 404, "COUPON_NOT_FOUND");
        /* An admin acting for a user that does not exist. */
        expect_issue_error(&g->s[i], open, 999999998, admin, 404, "USER_NOT_FOUND");
    }
    json_t *j;
    assert_int_equal(it_call(&g->s[2], "GET", NULL, NULL, &j, "/api/coupons/999999999"), 404);
    expect_problem(404, j, 404, "COUPON_NOT_FOUND", "GET a missing coupon");
    json_decref(j);
    expect_issued(g, later, 5, 0);
    expect_issued(g, ended, 5, 0);
    /* The refused unknown user took nothing: the only one of "open" is still there. */
    expect_issued(g, open, 1, 0);
    assert_int_equal(issue(&g->s[1], open, user, token, &j), 201);
    assert_int_equal(jint(j, "couponId"), open);
    assert_int_equal(jint(j, "userId"), user);
    json_decref(j);
    int64_t other = new_user(&g->s[0], "Window 2");
    char *other_token = harness_token(&h, other);
    expect_issue_error(&g->s[2], open, other, other_token, 409, "COUPON_SOLD_OUT");
    expect_issued(g, open, 1, 1);
    assert_int_equal(sql1(sql_user_rows, user), 1);
    free(other_token);
    free(token);
}

/* ---- Redis restarted during a rush (gate, private Redis) ---- */

/*
 * One command to the private Redis in inline form; the reply's first line (without CRLF) goes
 * into buf, and for a bulk string the value itself. Returns 0 or -1.
 */
static int redis_command(const struct harness_redis *rd, const char *cmd, char *buf, size_t size)
{
    struct sockaddr_in a = {0};
    struct timeval tv = {2, 0};
    char reply[512] = {0}, line[600];
    size_t got = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int rc = -1;

    if (fd < 0)
        return -1;
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)rd->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int n = snprintf(line, sizeof(line), "%s\r\n", cmd);
    if (!connect(fd, (struct sockaddr *)&a, sizeof(a)) &&
        send(fd, line, (size_t)n, MSG_NOSIGNAL) == n) {
        /* Read until the reply is complete: one line, or a bulk header and its value. */
        for (;;) {
            ssize_t k = read(fd, reply + got, sizeof(reply) - 1 - got);
            if (k <= 0)
                break;
            got += (size_t)k;
            reply[got] = '\0';
            char *eol = strstr(reply, "\r\n");
            if (!eol)
                continue;
            if (reply[0] != '$' || reply[1] == '-' || strstr(eol + 2, "\r\n"))
                break;
        }
        char *eol = strstr(reply, "\r\n");
        if (eol) {
            *eol = '\0';
            if (reply[0] == '$' && reply[1] != '-') {
                char *end = strstr(eol + 2, "\r\n");
                if (end)
                    *end = '\0';
                snprintf(buf, size, "%s", eol + 2);
            } else {
                snprintf(buf, size, "%s", reply);
            }
            rc = 0;
        }
    }
    close(fd);
    return rc;
}

struct outage {
    struct group *g;
    struct rush *r;
    int at_least;
    int64_t coupon;
    int64_t loser;
    const char *loser_token;
};

static bool responses_done(void *arg)
{
    struct outage *o = arg;
    return atomic_load(&o->r->done) >= o->at_least;
}

static bool all_ready(void *arg)
{
    struct outage *o = arg;

    for (int i = 0; i < SERVERS; i++) {
        struct http_result r;
        char url[128];
        snprintf(url, sizeof(url), "%s/readyz", o->g->s[i].url);
        bool ok = !http_once("GET", url, NULL, NULL, NULL, &r) && r.status == 200 &&
                  strstr(r.body, "\"status\":\"ok\"");
        http_result_free(&r);
        if (!ok)
            return false;
    }
    return true;
}

/*
 * The gate is in use again: a loser asking once more through each process is refused
 * (SOLD_OUT, nothing issued), and the admission state is back in Redis, rebuilt from MariaDB
 * with nothing left.
 */
static bool gate_rebuilt(void *arg)
{
    struct outage *o = arg;
    char cmd[200], reply[64];

    for (int i = 0; i < SERVERS; i++) {
        struct http_result r;
        struct http_client c;
        http_client_init(&c);
        long status = issue_with(&c, &o->g->s[i], o->coupon, o->loser, o->loser_token, &r);
        bool sold_out = status == 409 && strstr(r.body, "\"COUPON_SOLD_OUT\"");
        http_result_free(&r);
        http_client_release(&c);
        if (!sold_out) {
            fprintf(stderr, "a loser asking again through %s: status %ld\n", o->g->s[i].url,
                    status);
            return false;
        }
    }
    snprintf(cmd, sizeof(cmd), "HGET %s:coupon:%lld:gate remaining", h.db_name,
             (long long)o->coupon);
    return !redis_command(&o->g->redis, cmd, reply, sizeof(reply)) && !strcmp(reply, "0");
}

/*
 * 300 users on 50 coupons in three waves: the first while Redis is up; Redis is killed once
 * ten answers are in, with the rest of that wave in flight, and the second wave runs against
 * MariaDB alone; Redis comes back (empty) once thirty answers are in, and when every process
 * sees it again the third wave of 260 races through a gate rebuilt from MariaDB.
 */
static void redis_restarted_during_a_rush_stays_exact(void **state)
{
    struct group *g = *state;
    static pthread_t threads[RUSH_USERS];
    static struct rush_arg args[RUSH_USERS];
    static struct rush r;
    static int wave[RUSH_USERS];
    struct outage o = {g, &r, 0, 0, 0, NULL};
    struct tally t;
    char reply[64], cmd[200];

    rush_users(g);
    int64_t coupon = new_coupon(&g->s[0], "Outage", RUSH_STOCK, NULL, NULL);
    for (int i = 0; i < RUSH_USERS; i++)
        wave[i] = i < 20 ? 0 : i < 40 ? 1 : 2;
    rush_init(&r, g, coupon, RUSH_USERS, g->users, g->tokens, wave);
    rush_start(&r, threads, args);

    release_wave(&r, 0);
    o.at_least = 10;
    bool first = harness_wait_for(responses_done, &o, 60000);
    harness_redis_kill(&g->redis);
    release_wave(&r, 1);
    o.at_least = 30;
    bool second = first && harness_wait_for(responses_done, &o, 60000);
    int restarted = harness_redis_restart(&g->redis);
    bool ready = !restarted && harness_wait_for(all_ready, &o, 30000);
    release_wave(&r, 2);
    rush_join(&r, threads);
    tally_rush(&r, "COUPON_SOLD_OUT", &t);
    rush_free(&r);
    assert_true(first);
    assert_true(second);
    assert_int_equal(restarted, 0);
    assert_true(ready);
    expect_tally(&t, RUSH_STOCK, RUSH_USERS - RUSH_STOCK, "COUPON_SOLD_OUT");
    expect_issued(g, coupon, RUSH_STOCK, RUSH_STOCK);

    /* And the gate is back: its state rebuilt from MariaDB, with nothing left. */
    o.coupon = coupon;
    for (int i = 0; i < RUSH_USERS && !o.loser; i++)
        if (sql2(sql_holds, coupon, g->users[i]) == 0) {
            o.loser = g->users[i];
            o.loser_token = g->tokens[i];
        }
    assert_true(o.loser > 0);
    assert_true(harness_wait_for(gate_rebuilt, &o, 30000));
    snprintf(cmd, sizeof(cmd), "SCARD %s:coupon:%lld:holders", h.db_name, (long long)coupon);
    assert_int_equal(redis_command(&g->redis, cmd, reply, sizeof(reply)), 0);
    assert_string_equal(reply, ":50");
    expect_issued(g, coupon, RUSH_STOCK, RUSH_STOCK);
}

/* ---- create and read ---- */

static void create_returns_the_coupon_and_get_reads_it(void **state)
{
    struct group *g = *state;
    static const char body[] =
        "{\"name\":\"봄 세일 \\\"15%\\\"\",\"discountType\":\"RATE\",\"discountValue\":15,"
        "\"totalQuantity\":100,\"startsAt\":\"2020-01-01T00:00:00Z\","
        "\"endsAt\":\"2099-12-31T23:59:59Z\",\"extra\":true}";
    json_t *c = create_coupon_json(&g->s[0], body);
    int64_t id = jint(c, "couponId");

    assert_jstr(c, "name", "봄 세일 \"15%\"");
    assert_jstr(c, "discountType", "RATE");
    assert_int_equal(jint(c, "discountValue"), 15);
    assert_int_equal(jint(c, "totalQuantity"), 100);
    assert_int_equal(jint(c, "issuedQuantity"), 0);
    assert_int_equal(jint(c, "remainingQuantity"), 100);
    assert_jstr(c, "startsAt", "2020-01-01T00:00:00Z");
    assert_jstr(c, "endsAt", "2099-12-31T23:59:59Z");
    assert_int_equal(json_object_size(c), 9);
    /* Public, and the same through every process. */
    for (int i = 0; i < SERVERS; i++) {
        json_t *got;
        assert_int_equal(
            it_call(&g->s[i], "GET", NULL, NULL, &got, "/api/coupons/%lld", (long long)id), 200);
        assert_true(json_equal(c, got));
        json_decref(got);
    }
    json_decref(c);

    /* The default window: from now, no end. */
    char before[32], after[32];
    rfc3339(clock_now_us(), before, sizeof(before));
    c = create_coupon_json(&g->s[1], "{\"name\":\"Default window\",\"discountType\":\"FIXED\","
                                     "\"discountValue\":3000,\"totalQuantity\":7}");
    rfc3339(clock_now_us(), after, sizeof(after));
    assert_jstr(c, "discountType", "FIXED");
    assert_int_equal(jint(c, "discountValue"), 3000);
    assert_int_equal(jint(c, "remainingQuantity"), 7);
    assert_non_null(jstr(c, "startsAt"));
    assert_true(strcmp(jstr(c, "startsAt"), before) >= 0);
    assert_true(strcmp(jstr(c, "startsAt"), after) <= 0);
    assert_jnull(c, "endsAt");
    json_decref(c);

    /* Offsets and fractions are understood; times come back in UTC, to the second. */
    c = create_coupon_json(&g->s[2], "{\"name\":\"Offsets\",\"discountType\":\"RATE\","
                                     "\"discountValue\":5,\"totalQuantity\":1,"
                                     "\"startsAt\":\"2030-01-01T09:00:00+09:00\","
                                     "\"endsAt\":\"2030-01-01T00:00:01.5Z\"}");
    assert_jstr(c, "startsAt", "2030-01-01T00:00:00Z");
    assert_jstr(c, "endsAt", "2030-01-01T00:00:01Z");
    json_decref(c);
}

/* The bounds of the time range themselves are accepted and read back. */
static void create_accepts_the_time_range_bounds(void **state)
{
    struct group *g = *state;
    json_t *c = create_coupon_json(&g->s[0], "{\"name\":\"Bounds\",\"discountType\":\"FIXED\","
                                             "\"discountValue\":1,\"totalQuantity\":1,"
                                             "\"startsAt\":\"0999-12-31T23:00:00-01:00\","
                                             "\"endsAt\":\"9999-12-31T23:59:59Z\"}");

    assert_jstr(c, "startsAt", "1000-01-01T00:00:00Z");
    assert_jstr(c, "endsAt", "9999-12-31T23:59:59Z");
    json_t *got;
    assert_int_equal(it_call(&g->s[1], "GET", NULL, NULL, &got, "/api/coupons/%lld",
                             (long long)jint(c, "couponId")),
                     200);
    assert_jstr(got, "startsAt", "1000-01-01T00:00:00Z");
    assert_jstr(got, "endsAt", "9999-12-31T23:59:59Z");
    json_decref(got);
    json_decref(c);
}

static void create_accepts_the_limits(void **state)
{
    struct group *g = *state;
#define S10  "abcdefghij"
#define H10  "가나다라마바사아자차"
#define S100 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10
#define H100 H10 H10 H10 H10 H10 H10 H10 H10 H10 H10
    static const struct {
        const char *body;
        const char *type;
        int64_t value, total;
    } cases[] = {
        {"{\"name\":\"r1\",\"discountType\":\"RATE\",\"discountValue\":1,\"totalQuantity\":1}",
         "RATE", 1, 1},
        {"{\"name\":\"r100\",\"discountType\":\"RATE\",\"discountValue\":100,"
         "\"totalQuantity\":1000000000}",
         "RATE", 100, 1000000000},
        {"{\"name\":\"f1\",\"discountType\":\"FIXED\",\"discountValue\":1,\"totalQuantity\":1}",
         "FIXED", 1, 1},
        {"{\"name\":\"fmax\",\"discountType\":\"FIXED\",\"discountValue\":1000000000,"
         "\"totalQuantity\":1}",
         "FIXED", 1000000000, 1},
        {"{\"name\":\"" S100 "\",\"discountType\":\"FIXED\",\"discountValue\":2,"
         "\"totalQuantity\":2}",
         "FIXED", 2, 2},
        {"{\"name\":\"" H100 "\",\"discountType\":\"RATE\",\"discountValue\":3,"
         "\"totalQuantity\":3}",
         "RATE", 3, 3},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *c = create_coupon_json(&g->s[i % SERVERS], cases[i].body);
        json_t *req = parse_body(cases[i].body), *got;
        assert_jstr(c, "name", jstr(req, "name"));
        assert_jstr(c, "discountType", cases[i].type);
        assert_int_equal(jint(c, "discountValue"), cases[i].value);
        assert_int_equal(jint(c, "totalQuantity"), cases[i].total);
        assert_int_equal(jint(c, "remainingQuantity"), cases[i].total);
        assert_int_equal(it_call(&g->s[(i + 1) % SERVERS], "GET", NULL, NULL, &got,
                                 "/api/coupons/%lld", (long long)jint(c, "couponId")),
                         200);
        assert_true(json_equal(c, got));
        json_decref(got);
        json_decref(req);
        json_decref(c);
    }
#undef S10
#undef H10
#undef S100
#undef H100
}

static void issue_returns_the_user_coupon(void **state)
{
    struct group *g = *state;
    char ends[32], before[32], after[32];
    int64_t user = new_user(&g->s[0], "Holder");
    char *token = harness_token(&h, user);
    json_t *uc;

    rfc3339(clock_now_us() + 30 * DAY_US, ends, sizeof(ends));
    int64_t coupon = new_coupon(&g->s[0], "Thirty days", 3, NULL, ends);
    rfc3339(clock_now_us(), before, sizeof(before));
    assert_int_equal(issue(&g->s[1], coupon, user, token, &uc), 201);
    rfc3339(clock_now_us(), after, sizeof(after));
    assert_true(jint(uc, "userCouponId") > 0);
    assert_int_equal(jint(uc, "couponId"), coupon);
    assert_int_equal(jint(uc, "userId"), user);
    assert_jstr(uc, "name", "Thirty days");
    assert_jstr(uc, "discountType", "FIXED");
    assert_int_equal(jint(uc, "discountValue"), 1000);
    assert_jstr(uc, "status", "AVAILABLE");
    assert_non_null(jstr(uc, "issuedAt"));
    assert_true(strcmp(jstr(uc, "issuedAt"), before) >= 0);
    assert_true(strcmp(jstr(uc, "issuedAt"), after) <= 0);
    assert_jnull(uc, "usedAt");
    assert_jstr(uc, "expiresAt", ends);
    assert_int_equal(json_object_size(uc), 10);
    json_decref(uc);
    expect_issued(g, coupon, 3, 1);

    /* An admin may issue for a user; a coupon without an end has no expiry. */
    int64_t other = new_user(&g->s[0], "Admin's pick");
    int64_t open = new_coupon(&g->s[0], "No end", 3, NULL, NULL);
    assert_int_equal(issue(&g->s[2], open, other, admin, &uc), 201);
    assert_int_equal(jint(uc, "userId"), other);
    assert_jnull(uc, "expiresAt");
    json_decref(uc);
    expect_issued(g, open, 3, 1);
    free(token);
}

/* ---- bad inputs ---- */

enum token_kind { TOK_NONE, TOK_OWN, TOK_OTHER, TOK_FORGED, TOK_EXPIRED, TOK_ADMIN, TOK_GHOST };
enum path_id { ID_NONE, ID_COUPON, ID_USER };

struct bad_case {
    const char *name;
    const char *method;
    const char *path; /* at most one %lld: the coupon's or the user's id */
    enum path_id path_id;
    enum token_kind token;
    const char *content_type;
    const char *body; /* at most one %lld: the user's id */
    long status;
    const char *code;
};

#define C(body) "{\"name\":\"Bad\",\"discountType\":\"RATE\"," body "}"
#define ADMIN_POST(name, body, code)                                                           \
    {                                                                                          \
        name, "POST", "/api/admin/coupons", ID_NONE, TOK_ADMIN, "application/json", body, 400, \
            code                                                                               \
    }

static const struct bad_case bad_cases[] = {
    /* create: types, ranges, enums and times */
    ADMIN_POST("malformed json", "{\"name\":", "INVALID_INPUT"),
    ADMIN_POST("not an object", "[1]", "INVALID_INPUT"),
    ADMIN_POST("empty body", "", "INVALID_INPUT"),
    ADMIN_POST("name missing",
               "{\"discountType\":\"RATE\",\"discountValue\":1,\"totalQuantity\":1}",
               "INVALID_INPUT"),
    ADMIN_POST("name empty",
               "{\"name\":\"\",\"discountType\":\"RATE\",\"discountValue\":1,\"totalQuantity\":1}",
               "INVALID_INPUT"),
    ADMIN_POST("name 101 characters",
               "{\"name\":\"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefgh"
               "ijabcdefghijabcdefghijabcdefghijX\",\"discountType\":\"RATE\","
               "\"discountValue\":1,\"totalQuantity\":1}",
               "INVALID_INPUT"),
    ADMIN_POST("name a number",
               "{\"name\":7,\"discountType\":\"RATE\",\"discountValue\":1,\"totalQuantity\":1}",
               "INVALID_INPUT"),
    ADMIN_POST("type missing", "{\"name\":\"Bad\",\"discountValue\":1,\"totalQuantity\":1}",
               "INVALID_INPUT"),
    ADMIN_POST("type unknown",
               "{\"name\":\"Bad\",\"discountType\":\"PERCENT\",\"discountValue\":1,"
               "\"totalQuantity\":1}",
               "INVALID_INPUT"),
    ADMIN_POST("type lower case",
               "{\"name\":\"Bad\",\"discountType\":\"rate\",\"discountValue\":1,"
               "\"totalQuantity\":1}",
               "INVALID_INPUT"),
    ADMIN_POST("type a number",
               "{\"name\":\"Bad\",\"discountType\":1,\"discountValue\":1,\"totalQuantity\":1}",
               "INVALID_INPUT"),
    ADMIN_POST("value missing", C("\"totalQuantity\":1"), "INVALID_INPUT"),
    ADMIN_POST("value 0", C("\"discountValue\":0,\"totalQuantity\":1"), "INVALID_INPUT"),
    ADMIN_POST("value negative", C("\"discountValue\":-5,\"totalQuantity\":1"), "INVALID_INPUT"),
    ADMIN_POST("RATE 101", C("\"discountValue\":101,\"totalQuantity\":1"), "INVALID_INPUT"),
    ADMIN_POST("FIXED 1e9+1",
               "{\"name\":\"Bad\",\"discountType\":\"FIXED\",\"discountValue\":1000000001,"
               "\"totalQuantity\":1}",
               "INVALID_INPUT"),
    ADMIN_POST("value a string", C("\"discountValue\":\"10\",\"totalQuantity\":1"),
               "INVALID_INPUT"),
    ADMIN_POST("value a fraction", C("\"discountValue\":1.5,\"totalQuantity\":1"), "INVALID_INPUT"),
    ADMIN_POST("value true", C("\"discountValue\":true,\"totalQuantity\":1"), "INVALID_INPUT"),
    ADMIN_POST("value beyond int64",
               C("\"discountValue\":99999999999999999999,\"totalQuantity\":1"), "INVALID_INPUT"),
    ADMIN_POST("quantity missing", C("\"discountValue\":1"), "INVALID_INPUT"),
    ADMIN_POST("quantity 0", C("\"discountValue\":1,\"totalQuantity\":0"), "INVALID_INPUT"),
    ADMIN_POST("quantity 1e9+1", C("\"discountValue\":1,\"totalQuantity\":1000000001"),
               "INVALID_INPUT"),
    ADMIN_POST("quantity a string", C("\"discountValue\":1,\"totalQuantity\":\"5\""),
               "INVALID_INPUT"),
    ADMIN_POST("startsAt not a time",
               C("\"discountValue\":1,\"totalQuantity\":1,\"startsAt\":\"tomorrow\""),
               "INVALID_INPUT"),
    ADMIN_POST("startsAt a date only",
               C("\"discountValue\":1,\"totalQuantity\":1,\"startsAt\":\"2030-01-01\""),
               "INVALID_INPUT"),
    ADMIN_POST("startsAt without zone",
               C("\"discountValue\":1,\"totalQuantity\":1,\"startsAt\":\"2030-01-01T00:00:00\""),
               "INVALID_INPUT"),
    ADMIN_POST("startsAt 30 February",
               C("\"discountValue\":1,\"totalQuantity\":1,\"startsAt\":\"2030-02-30T00:00:00Z\""),
               "INVALID_INPUT"),
    ADMIN_POST("startsAt a number", C("\"discountValue\":1,\"totalQuantity\":1,\"startsAt\":0"),
               "INVALID_INPUT"),
    ADMIN_POST("endsAt 25 o'clock",
               C("\"discountValue\":1,\"totalQuantity\":1,\"endsAt\":\"2030-01-01T25:00:00Z\""),
               "INVALID_INPUT"),
    ADMIN_POST("endsAt before startsAt",
               C("\"discountValue\":1,\"totalQuantity\":1,\"startsAt\":\"2030-01-02T00:00:00Z\","
                 "\"endsAt\":\"2030-01-01T00:00:00Z\""),
               "INVALID_INPUT"),
    ADMIN_POST("endsAt equal to startsAt",
               C("\"discountValue\":1,\"totalQuantity\":1,\"startsAt\":\"2030-01-01T00:00:00Z\","
                 "\"endsAt\":\"2030-01-01T09:00:00+09:00\""),
               "INVALID_INPUT"),
    /* API.md: client times lie in 1000-01-01T00:00:00Z … 9999-12-31T23:59:59Z once in UTC
     * (outside MariaDB's DATETIME range these answered 500). */
    ADMIN_POST("startsAt before year 1000",
               C("\"discountValue\":1,\"totalQuantity\":1,\"startsAt\":\"0999-12-31T23:59:59Z\""),
               "INVALID_INPUT"),
    ADMIN_POST("startsAt year 0",
               C("\"discountValue\":1,\"totalQuantity\":1,\"startsAt\":\"0000-01-01T00:00:00Z\""),
               "INVALID_INPUT"),
    ADMIN_POST("startsAt before year 1000 once in UTC",
               C("\"discountValue\":1,\"totalQuantity\":1,"
                 "\"startsAt\":\"1000-01-01T00:30:00+01:00\""),
               "INVALID_INPUT"),
    ADMIN_POST("endsAt after 9999 once in UTC",
               C("\"discountValue\":1,\"totalQuantity\":1,"
                 "\"endsAt\":\"9999-12-31T23:59:59-00:01\""),
               "INVALID_INPUT"),
    ADMIN_POST("endsAt past the last second",
               C("\"discountValue\":1,\"totalQuantity\":1,\"endsAt\":\"9999-12-31T23:59:59.5Z\""),
               "INVALID_INPUT"),
    ADMIN_POST("endsAt in the past, startsAt by default",
               C("\"discountValue\":1,\"totalQuantity\":1,\"endsAt\":\"2020-01-01T00:00:00Z\""),
               "INVALID_INPUT"),
    /* create: who and how */
    {"create without a token", "POST", "/api/admin/coupons", ID_NONE, TOK_NONE, "application/json",
     C("\"discountValue\":1,\"totalQuantity\":1"), 401, "UNAUTHORIZED"},
    {"create with a forged token", "POST", "/api/admin/coupons", ID_NONE, TOK_FORGED,
     "application/json", C("\"discountValue\":1,\"totalQuantity\":1"), 401, "UNAUTHORIZED"},
    {"create with a user's token", "POST", "/api/admin/coupons", ID_NONE, TOK_OWN,
     "application/json", C("\"discountValue\":1,\"totalQuantity\":1"), 403, "FORBIDDEN"},
    {"create as text/plain", "POST", "/api/admin/coupons", ID_NONE, TOK_ADMIN, "text/plain",
     C("\"discountValue\":1,\"totalQuantity\":1"), 415, "UNSUPPORTED_MEDIA_TYPE"},
    /* issue */
    {"issue without a token", "POST", "/api/coupons/%lld/issue", ID_COUPON, TOK_NONE,
     "application/json", "{\"userId\":%lld}", 401, "UNAUTHORIZED"},
    {"issue with a forged token", "POST", "/api/coupons/%lld/issue", ID_COUPON, TOK_FORGED,
     "application/json", "{\"userId\":%lld}", 401, "UNAUTHORIZED"},
    {"issue with an expired token", "POST", "/api/coupons/%lld/issue", ID_COUPON, TOK_EXPIRED,
     "application/json", "{\"userId\":%lld}", 401, "UNAUTHORIZED"},
    {"issue for another user", "POST", "/api/coupons/%lld/issue", ID_COUPON, TOK_OTHER,
     "application/json", "{\"userId\":%lld}", 403, "FORBIDDEN"},
    {"issue as text/plain", "POST", "/api/coupons/%lld/issue", ID_COUPON, TOK_OWN, "text/plain",
     "{\"userId\":%lld}", 415, "UNSUPPORTED_MEDIA_TYPE"},
    {"issue without userId", "POST", "/api/coupons/%lld/issue", ID_COUPON, TOK_OWN,
     "application/json", "{}", 400, "INVALID_INPUT"},
    {"issue with userId a string", "POST", "/api/coupons/%lld/issue", ID_COUPON, TOK_OWN,
     "application/json", "{\"userId\":\"%lld\"}", 400, "INVALID_INPUT"},
    {"issue with userId 0", "POST", "/api/coupons/%lld/issue", ID_COUPON, TOK_OWN,
     "application/json", "{\"userId\":0}", 400, "INVALID_INPUT"},
    {"issue with userId negative", "POST", "/api/coupons/%lld/issue", ID_COUPON, TOK_OWN,
     "application/json", "{\"userId\":-1}", 400, "INVALID_INPUT"},
    {"issue with malformed json", "POST", "/api/coupons/%lld/issue", ID_COUPON, TOK_OWN,
     "application/json", "{\"userId\":", 400, "INVALID_INPUT"},
    {"issue with no body", "POST", "/api/coupons/%lld/issue", ID_COUPON, TOK_OWN,
     "application/json", NULL, 400, "INVALID_INPUT"},
    {"issue a missing coupon", "POST", "/api/coupons/999999999/issue", ID_NONE, TOK_OWN,
     "application/json", "{\"userId\":%lld}", 404, "COUPON_NOT_FOUND"},
    {"issue to a user that does not exist", "POST", "/api/coupons/%lld/issue", ID_COUPON, TOK_GHOST,
     "application/json", "{\"userId\":999999997}", 404, "USER_NOT_FOUND"},
    {"issue on a non-numeric id", "POST", "/api/coupons/abc/issue", ID_NONE, TOK_OWN,
     "application/json", "{\"userId\":%lld}", 404, "NOT_FOUND"},
    {"GET issue", "GET", "/api/coupons/%lld/issue", ID_COUPON, TOK_OWN, NULL, NULL, 405,
     "METHOD_NOT_ALLOWED"},
    /* read and list */
    {"get a missing coupon", "GET", "/api/coupons/999999999", ID_NONE, TOK_NONE, NULL, NULL, 404,
     "COUPON_NOT_FOUND"},
    {"list with a bad status", "GET", "/api/users/%lld/coupons?status=BOGUS", ID_USER, TOK_OWN,
     NULL, NULL, 400, "INVALID_INPUT"},
    {"list with a lower-case status", "GET", "/api/users/%lld/coupons?status=available", ID_USER,
     TOK_OWN, NULL, NULL, 400, "INVALID_INPUT"},
    {"list without a token", "GET", "/api/users/%lld/coupons", ID_USER, TOK_NONE, NULL, NULL, 401,
     "UNAUTHORIZED"},
    {"list another user's", "GET", "/api/users/%lld/coupons", ID_USER, TOK_OTHER, NULL, NULL, 403,
     "FORBIDDEN"},
    {"list a user that does not exist", "GET", "/api/users/999999997/coupons", ID_NONE, TOK_ADMIN,
     NULL, NULL, 404, "USER_NOT_FOUND"},
};

#undef C
#undef ADMIN_POST

static const char *pick_token(enum token_kind k, const char *own, const char *other,
                              const char *forged, const char *expired, const char *ghost)
{
    switch (k) {
    case TOK_OWN:
        return own;
    case TOK_OTHER:
        return other;
    case TOK_FORGED:
        return forged;
    case TOK_EXPIRED:
        return expired;
    case TOK_ADMIN:
        return admin;
    case TOK_GHOST:
        return ghost;
    case TOK_NONE:
        break;
    }
    return NULL;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void run_bad_case(const struct harness_server *s, const struct bad_case *t, int64_t coupon,
                         int64_t user, const char *token)
{
    char path[200], url[300], body[600], ct[128];
    struct http_result r;

    snprintf(path, sizeof(path), t->path,
             (long long)(t->path_id == ID_COUPON ? coupon
                         : t->path_id == ID_USER ? user
                                                 : 0));
    snprintf(url, sizeof(url), "%s%s", s->url, path);
    if (t->body)
        snprintf(body, sizeof(body), t->body, (long long)user);
    assert_int_equal(http_do(&it_client, t->method, url, token, t->content_type,
                             t->body ? body : NULL, t->body ? strlen(body) : 0, NULL, &r),
                     0);
    json_t *j = json_loads(r.body, 0, NULL);
    const char *code = j ? jstr(j, "code") : NULL;
    if (r.status != t->status || !code || strcmp(code, t->code)) {
        char msg[400];
        snprintf(msg, sizeof(msg), "%s: %ld %s, want %ld %s: %.150s", t->name, r.status,
                 code ? code : "(no code)", t->status, t->code, r.body);
        json_decref(j);
        http_result_free(&r);
        fail_msg("%s", msg);
    }
    assert_int_equal(jint(j, "status"), t->status);
    assert_jstr(j, "type", "about:blank");
    assert_non_null(jstr(j, "title"));
    assert_non_null(jstr(j, "detail"));
    assert_non_null(http_header(&r, "Content-Type", ct, sizeof(ct)));
    assert_string_equal(ct, "application/problem+json");
    if (t->status == 401)
        assert_non_null(http_header(&r, "WWW-Authenticate", ct, sizeof(ct)));
    json_decref(j);
    http_result_free(&r);
}
#pragma GCC diagnostic pop

static void bad_inputs_create_and_issue_nothing(void **state)
{
    struct group *g = *state;
    struct err e;
    int64_t user = new_user(&g->s[0], "Bad Input");
    int64_t other = new_user(&g->s[0], "Bad Input Other");
    char *own = harness_token(&h, user), *other_token = harness_token(&h, other);
    char *forged = auth_issue("not-the-secret", user, true, clock_now_us() / 1000000, 3600, &e);
    char *expired = auth_issue(h.secret, user, false, 1000, 10, &e);
    char *ghost = harness_token(&h, 999999997);
    /* One of one: whatever a bad request took would show as SOLD_OUT below. */
    int64_t coupon = new_coupon(&g->s[0], "Target", 1, NULL, NULL);
    int64_t last = harness_sql_int(&h, sql_max_coupon, 0);

    assert_non_null(forged);
    assert_non_null(expired);
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *t = &bad_cases[i];
        const char *token = pick_token(t->token, own, other_token, forged, expired, ghost);
        run_bad_case(&g->s[i % SERVERS], t, coupon, user, token);
    }
    assert_int_equal(sql1(sql_coupons_after, last), 0);
    expect_issued(g, coupon, 1, 0);
    assert_int_equal(sql1(sql_user_rows, user), 0);
    assert_int_equal(sql1(sql_user_rows, other), 0);

    /* The one coupon is still there for the user, and then for nobody else. */
    json_t *j;
    assert_int_equal(issue(&g->s[0], coupon, user, own, &j), 201);
    json_decref(j);
    expect_issue_error(&g->s[1], coupon, other, other_token, 409, "COUPON_SOLD_OUT");
    expect_issue_error(&g->s[2], coupon, user, own, 409, "COUPON_ALREADY_ISSUED");
    expect_issued(g, coupon, 1, 1);
    free(own);
    free(other_token);
    free(forged);
    free(expired);
    free(ghost);
}

/* ---- the user's list ---- */

struct listing {
    const struct harness_server *s;
    int64_t user;
    const char *token;
    int64_t user_coupon; /* the one that should show as EXPIRED */
};

/* GET the list with an optional status filter; returns the array (owned by *root). */
static json_t *list(const struct harness_server *s, int64_t user, const char *token,
                    const char *status, json_t **root)
{
    long got;

    if (status)
        got = it_call(s, "GET", token, NULL, root, "/api/users/%lld/coupons?status=%s",
                      (long long)user, status);
    else
        got = it_call(s, "GET", token, NULL, root, "/api/users/%lld/coupons", (long long)user);
    if (got != 200)
        fail_msg("list %s: status %ld", status ? status : "(all)", got);
    assert_int_equal(jint(*root, "userId"), user);
    json_t *arr = json_object_get(*root, "coupons");
    assert_true(json_is_array(arr));
    return arr;
}

/* The list holds exactly these user coupons, in this order, with these statuses. */
static void expect_list(const struct harness_server *s, int64_t user, const char *token,
                        const char *filter, size_t n, const int64_t *ids,
                        const char *const *statuses)
{
    json_t *root;
    json_t *arr = list(s, user, token, filter, &root);

    if (json_array_size(arr) != n)
        fail_msg("list %s: %zu coupons, want %zu", filter ? filter : "(all)", json_array_size(arr),
                 n);
    for (size_t i = 0; i < n; i++) {
        json_t *uc = json_array_get(arr, i);
        assert_int_equal(jint(uc, "userCouponId"), ids[i]);
        assert_int_equal(jint(uc, "userId"), user);
        assert_jstr(uc, "status", statuses[i]);
    }
    json_decref(root);
}

static bool shows_expired(void *arg)
{
    struct listing *l = arg;
    json_t *root;
    json_t *arr = list(l->s, l->user, l->token, "EXPIRED", &root);
    bool found = json_array_size(arr) == 1 &&
                 json_integer_value(json_object_get(json_array_get(arr, 0), "userCouponId")) ==
                     l->user_coupon;
    json_decref(root);
    return found;
}

static void list_filters_by_status_and_expires(void **state)
{
    struct group *g = *state;
    static const char mark_used[] =
        "UPDATE user_coupons SET status = 'USED', used_at = UTC_TIMESTAMP(6) WHERE id = ?";
    int64_t user = new_user(&g->s[0], "Lister");
    char *token = harness_token(&h, user);
    char ends[32];
    json_t *uc, *root;
    int64_t a, c, b;

    /* Nothing yet. */
    json_t *arr = list(&g->s[1], user, token, NULL, &root);
    assert_int_equal(json_array_size(arr), 0);
    json_decref(root);

    int64_t ca = new_coupon(&g->s[0], "Kept", 5, NULL, NULL);
    int64_t cc = new_coupon(&g->s[0], "Spent", 5, NULL, NULL);
    assert_int_equal(issue(&g->s[0], ca, user, token, &uc), 201);
    a = jint(uc, "userCouponId");
    json_decref(uc);
    assert_int_equal(issue(&g->s[1], cc, user, token, &uc), 201);
    c = jint(uc, "userCouponId");
    json_decref(uc);
    /* Using a coupon belongs to orders; here MariaDB is told directly. */
    struct db_conn *conn;
    struct err e;
    struct db_val p[] = {DB_INT(c)};
    uint64_t changed = 0;
    assert_int_equal(db_acquire(h.pool, &conn, &e), 0);
    assert_int_equal(db_exec(conn, mark_used, p, 1, &changed, NULL, &e), 0);
    db_release(h.pool, conn);
    assert_int_equal(changed, 1);

    /* One that ends in two to three seconds, issued at once. */
    rfc3339(clock_now_us() + 3000000, ends, sizeof(ends));
    int64_t cb = new_coupon(&g->s[0], "Short-lived", 5, NULL, ends);
    assert_int_equal(issue(&g->s[2], cb, user, token, &uc), 201);
    b = jint(uc, "userCouponId");
    assert_jstr(uc, "expiresAt", ends);
    json_decref(uc);

    {
        const int64_t all[] = {b, c, a}, avail[] = {b, a}, used[] = {c};
        const char *const all_st[] = {"AVAILABLE", "USED", "AVAILABLE"};
        const char *const avail_st[] = {"AVAILABLE", "AVAILABLE"}, *const used_st[] = {"USED"};
        expect_list(&g->s[0], user, token, NULL, 3, all, all_st);
        expect_list(&g->s[1], user, token, "AVAILABLE", 2, avail, avail_st);
        expect_list(&g->s[2], user, token, "USED", 1, used, used_st);
        expect_list(&g->s[0], user, token, "EXPIRED", 0, NULL, NULL);
        /* An empty filter is no filter; an admin may read any user's list. */
        expect_list(&g->s[1], user, token, "", 3, all, all_st);
        expect_list(&g->s[2], user, admin, NULL, 3, all, all_st);
    }
    /* The used one carries its time. */
    arr = list(&g->s[0], user, token, "USED", &root);
    assert_non_null(jstr(json_array_get(arr, 0), "usedAt"));
    json_decref(root);

    /* Once its end passes while held, the short-lived one is EXPIRED. */
    struct listing l = {&g->s[1], user, token, b};
    assert_true(harness_wait_for(shows_expired, &l, 15000));
    {
        const int64_t all[] = {b, c, a}, avail[] = {a}, used[] = {c}, expired[] = {b};
        const char *const all_st[] = {"EXPIRED", "USED", "AVAILABLE"};
        const char *const avail_st[] = {"AVAILABLE"}, *const used_st[] = {"USED"};
        const char *const expired_st[] = {"EXPIRED"};
        for (int i = 0; i < SERVERS; i++) {
            expect_list(&g->s[i], user, token, NULL, 3, all, all_st);
            expect_list(&g->s[i], user, token, "AVAILABLE", 1, avail, avail_st);
            expect_list(&g->s[i], user, token, "USED", 1, used, used_st);
            expect_list(&g->s[i], user, token, "EXPIRED", 1, expired, expired_st);
        }
    }
    /* And it can no longer be issued: its window is over. */
    int64_t late = new_user(&g->s[0], "Too late");
    char *late_token = harness_token(&h, late);
    for (int i = 0; i < SERVERS; i++)
        expect_issue_error(&g->s[i], cb, late, late_token, 409, "COUPON_NOT_ACTIVE");
    expect_issued(g, cb, 5, 1);
    free(late_token);
    free(token);
}

/* ---- main ---- */

/* A test under a name that says its strategy, so that TEST_FILTER can pick one (`*_db`). */
#define NAMED(f, suffix)                        \
    {                                           \
        .name = #f "_" suffix, .test_func = (f) \
    }

int main(void)
{
    const struct CMUnitTest gate[] = {
        NAMED(create_returns_the_coupon_and_get_reads_it, "gate"),
        NAMED(create_accepts_the_limits, "gate"),
        NAMED(create_accepts_the_time_range_bounds, "gate"),
        NAMED(issue_returns_the_user_coupon, "gate"),
        NAMED(bad_inputs_create_and_issue_nothing, "gate"),
        NAMED(list_filters_by_status_and_expires, "gate"),
        NAMED(window_and_not_found_errors, "gate"),
        NAMED(one_user_40_times_gets_one, "gate"),
        NAMED(rush_300_users_50_coupons, "gate"),
    };
    const struct CMUnitTest lock[] = {
        NAMED(window_and_not_found_errors, "lock"),
        NAMED(one_user_40_times_gets_one, "lock"),
        NAMED(rush_300_users_50_coupons, "lock"),
    };
    const struct CMUnitTest db[] = {
        NAMED(window_and_not_found_errors, "db"),
        NAMED(one_user_40_times_gets_one, "db"),
        NAMED(rush_300_users_50_coupons, "db"),
    };
    const struct CMUnitTest outage[] = {
        NAMED(redis_restarted_during_a_rush_stays_exact, "gate"),
    };
    const struct CMUnitTest gate_lost[] = {
        NAMED(one_user_40_times_gets_one, "gate_lost"),
        NAMED(rush_300_users_50_coupons, "gate_lost"),
    };
    const struct CMUnitTest lock_lost[] = {
        NAMED(one_user_40_times_gets_one, "lock_lost"),
        NAMED(rush_300_users_50_coupons, "lock_lost"),
    };
    const struct {
        const char *name;
        const struct CMUnitTest *tests;
        size_t n;
        CMFixtureFunction setup;
    } runs[] = {
        {"coupons, gate strategy", gate, sizeof(gate) / sizeof(gate[0]), start_gate},
        {"coupons, lock strategy", lock, sizeof(lock) / sizeof(lock[0]), start_lock},
        {"coupons, db strategy", db, sizeof(db) / sizeof(db[0]), start_db},
        {"coupons, gate strategy, Redis restarted", outage, ARRAY_SIZE(outage), start_outage},
        {"coupons, gate strategy, a third of its replies lost", gate_lost, ARRAY_SIZE(gate_lost),
         start_gate_lost},
        {"coupons, lock strategy, a third of its replies lost", lock_lost, ARRAY_SIZE(lock_lost),
         start_lock_lost},
    };
    int failed = 0;

    if (it_main_begin() < 0)
        return 1;
    for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++)
        if (it_filter_selects_any(runs[i].tests, runs[i].n))
            failed += _cmocka_run_group_tests(runs[i].name, runs[i].tests, runs[i].n, runs[i].setup,
                                              stop_group);
    return failed ? 1 : 0;
}
