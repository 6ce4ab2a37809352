/*
 * Issue 6 end to end: the outbox relay of every `shopd serve` publishes each outbox row to the
 * Redis stream "<db>:events"; the ranking consumer of every serve keeps the per-day sorted sets
 * "<db>:rank:<YYYYMMDD>:{qty,rev}"; the data platform (`shopd platform`, the binary beside this
 * one) records every event in platform_events and platform_daily_sales.
 *
 * Each group has a fresh database, three serve processes and one platform process. 1,000 paid
 * orders are driven through the three processes from many threads: undisturbed, with one serve
 * killed (SIGKILL) mid-run, with Redis (a private one, without persistence) killed and started
 * again empty mid-run, and with the platform killed mid-stream and started again. Then a
 * poison entry must end in the dead-letter stream of both groups, and an order paid and then
 * cancelled must be published in that order and net to zero everywhere.
 *
 * After every scenario, once everything has settled (waited for on conditions with deadlines,
 * never fixed sleeps): the platform equals MariaDB (every paid order exactly once, the daily
 * sales equal to the orders'), the ranking in Redis equals the product_sales_daily roll-up, and
 * GET /api/products/top on a freshly started process equals it too. A thread in the test reads
 * the stream as it grows (XREAD), so that what was published can be checked even though the
 * relays trim what every group has acknowledged.
 */
#include <math.h>
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
#include <time.h>

#include <cmocka.h>
#include <hiredis.h>
#include <jansson.h>

#include "core/arena.h"
#include "core/array.h"
#include "core/clock.h"
#include "core/err.h"
#include "harness.h"
#include "http_client.h"
#include "it_main.h"
#include "json_check.h"
#include "redis_client.h"
#include "repo/db.h"

#define NSERVERS         3
#define NPRODUCTS        8
#define NTHREADS         24
#define USERS_PER_THREAD 2
#define NORDERS          1000
#define USER_BALANCE     10000000 /* one charge; an order costs at most 3 × 3 × 4,900 */
#define RUN_MS           240000   /* a whole run of orders, under ASan */
#define SETTLE_MS        90000    /* everything published, consumed and counted */

static struct harness h;
static struct harness_server srv[NSERVERS]; /* pid 0 once stopped or killed */
static struct harness_server plat;          /* the platform */
static struct harness_redis redis;          /* the private Redis, for groups that kill it */
static bool private_redis;
static const char *redis_url;  /* the Redis that servers, platform and test share */
static struct redis_client rc; /* the main thread's direct connection */
static char *admin;
static char prefix[80]; /* "<db>:" */
static const char *serve_env[12], *platform_env[12];
static int64_t products[NPRODUCTS];
static const int64_t prices[NPRODUCTS] = {1000, 2500, 700, 4900, 150, 3000, 1200, 800};
static int run_seq; /* makes idempotency keys and user names unique within a group */

/* ---- group configuration ---- */

struct group_conf {
    bool private_redis;
    const char *serve[4];    /* SHOPD_EVENTS_* for the serve processes, NULL-terminated */
    const char *platform[4]; /* and for the platform */
};

/* Every process: a lock wait long enough for 24 threads on 8 product rows, no access log. */
static const char *const common_env[] = {"SHOPD_DB_LOCK_WAIT=30", "SHOPD_THREADS=16",
                                         "SHOPD_ACCESS_LOG=0", NULL};

static void compose_env(const char **dst, const char *const *own)
{
    int n = 0;

    if (private_redis)
        dst[n++] = redis.env;
    for (; own && *own; own++)
        dst[n++] = *own;
    for (const char *const *c = common_env; *c; c++)
        dst[n++] = *c;
    dst[n] = NULL;
}

/* ---- the stream watcher: every entry appended to <db>:events, in stream order ---- */

struct stream_entry {
    char id[48];
    char event_id[72];
    char type[40];
    int64_t order_id;
    int64_t occurred_us;
    char *payload; /* malloc'd; NULL when absent */
    bool complete; /* all five fields were present */
};

static struct {
    pthread_t thread;
    bool running;
    atomic_bool stop;
    pthread_mutex_t mu;
    struct stream_entry *entries;
    size_t n, cap;
    char last[48]; /* the id of the last entry read */
} watch = {.mu = PTHREAD_MUTEX_INITIALIZER};

static const char *field_value(redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (fields->element[i]->type == REDIS_REPLY_STRING &&
            !strcmp(fields->element[i]->str, name) &&
            fields->element[i + 1]->type == REDIS_REPLY_STRING)
            return fields->element[i + 1]->str;
    return NULL;
}

static void entry_from_reply(struct stream_entry *en, redisReply *item)
{
    redisReply *fields = item->element[1];
    const char *event_id = field_value(fields, "event_id"), *type = field_value(fields, "type");
    const char *order_id = field_value(fields, "order_id");
    const char *occurred = field_value(fields, "occurred_us");
    const char *payload = field_value(fields, "payload");

    memset(en, 0, sizeof(*en));
    snprintf(en->id, sizeof(en->id), "%s", item->element[0]->str);
    snprintf(en->event_id, sizeof(en->event_id), "%s", event_id ? event_id : "");
    snprintf(en->type, sizeof(en->type), "%s", type ? type : "");
    en->order_id = order_id ? strtoll(order_id, NULL, 10) : 0;
    en->occurred_us = occurred ? strtoll(occurred, NULL, 10) : 0;
    en->payload = payload ? strdup(payload) : NULL;
    en->complete = event_id && type && order_id && occurred && payload;
}

static void watch_append(redisReply *entries)
{
    pthread_mutex_lock(&watch.mu);
    for (size_t i = 0; i < entries->elements; i++) {
        redisReply *item = entries->element[i];
        if (item->type != REDIS_REPLY_ARRAY || item->elements != 2 ||
            item->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        if (watch.n == watch.cap) {
            watch.cap = watch.cap ? watch.cap * 2 : 1024;
            watch.entries = realloc(watch.entries, watch.cap * sizeof(*watch.entries));
        }
        entry_from_reply(&watch.entries[watch.n++], item);
        snprintf(watch.last, sizeof(watch.last), "%s", item->element[0]->str);
    }
    pthread_mutex_unlock(&watch.mu);
}

static void *watch_main(void *arg)
{
    struct redis_client c;
    char key[128], last[48];
    struct timespec backoff = {0, 20 * 1000 * 1000};

    redis_client_init(&c, redis_url);
    snprintf(key, sizeof(key), "%sevents", prefix);
    while (!atomic_load(&watch.stop)) {
        pthread_mutex_lock(&watch.mu);
        snprintf(last, sizeof(last), "%s", watch.last);
        pthread_mutex_unlock(&watch.mu);
        redisReply *r = redis_client_cmd(&c, "XREAD COUNT 500 BLOCK 100 STREAMS %s %s", key, last);
        if (!r) {
            /* Redis is down (a scenario killed it): try again shortly. */
            nanosleep(&backoff, NULL);
            continue;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
            r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2)
            watch_append(r->element[0]->element[1]);
        freeReplyObject(r);
    }
    redis_client_release(&c);
    return NULL;
}

static int watch_start(void)
{
    atomic_store(&watch.stop, false);
    watch.n = 0;
    snprintf(watch.last, sizeof(watch.last), "0-0");
    if (pthread_create(&watch.thread, NULL, watch_main, NULL))
        return -1;
    watch.running = true;
    return 0;
}

static void watch_stop(void)
{
    if (watch.running) {
        atomic_store(&watch.stop, true);
        pthread_join(watch.thread, NULL);
        watch.running = false;
    }
    for (size_t i = 0; i < watch.n; i++)
        free(watch.entries[i].payload);
    free(watch.entries);
    watch.entries = NULL;
    watch.n = watch.cap = 0;
}

/* ---- Redis reads ---- */

static redisReply *rcmd_argv(int argc, const char **argv)
{
    return redis_client_cmd_argv(&rc, argc, argv);
}

/* The value of field name in a flat [field, value, …] reply (RESP2 maps), or NULL. */
static redisReply *map_get(redisReply *map, const char *name)
{
    if (!map || map->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < map->elements; i += 2)
        if (map->element[i]->type == REDIS_REPLY_STRING && !strcmp(map->element[i]->str, name))
            return map->element[i + 1];
    return NULL;
}

/* The stream's last generated id into buf ("" when the stream does not exist). */
static void stream_last_id(const char *key, char *buf, size_t size)
{
    const char *argv[] = {"XINFO", "STREAM", key};
    redisReply *r = rcmd_argv(3, argv);
    redisReply *v = map_get(r, "last-generated-id");

    snprintf(buf, size, "%s", v && v->type == REDIS_REPLY_STRING ? v->str : "");
    if (r)
        freeReplyObject(r);
}

/* Whether group has acknowledged everything the stream ever held: nothing pending, and the
 * last id it delivered is the stream's last. why says what is missing. */
static bool group_drained(const char *group, char *why, size_t size)
{
    char key[128], last[48];
    bool drained = false;

    snprintf(key, sizeof(key), "%sevents", prefix);
    stream_last_id(key, last, sizeof(last));
    if (!*last) {
        snprintf(why, size, "the stream %s does not exist", key);
        return false;
    }
    const char *argv[] = {"XINFO", "GROUPS", key};
    redisReply *r = rcmd_argv(3, argv);
    snprintf(why, size, "group %s does not exist on %s", group, key);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *g = r->element[i], *name = map_get(g, "name");
        if (!name || name->type != REDIS_REPLY_STRING || strcmp(name->str, group))
            continue;
        redisReply *pending = map_get(g, "pending"), *delivered = map_get(g, "last-delivered-id");
        long long npending =
            pending && pending->type == REDIS_REPLY_INTEGER ? pending->integer : -1;
        const char *lastdel =
            delivered && delivered->type == REDIS_REPLY_STRING ? delivered->str : "";
        drained = npending == 0 && !strcmp(lastdel, last);
        snprintf(why, size, "group %s: %lld pending, delivered up to %s of %s", group, npending,
                 lastdel, last);
    }
    if (r)
        freeReplyObject(r);
    return drained;
}

/* The number of entries pending in group (XPENDING summary); -1 when unknown. */
static int64_t group_pending(const char *group)
{
    char key[128];
    int64_t n = -1;

    snprintf(key, sizeof(key), "%sevents", prefix);
    const char *argv[] = {"XPENDING", key, group};
    redisReply *r = rcmd_argv(3, argv);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_INTEGER)
        n = r->element[0]->integer;
    if (r)
        freeReplyObject(r);
    return n;
}

/* Whether the watcher has read up to the stream's last entry. */
static bool watch_caught_up(char *why, size_t size)
{
    char key[128], last[48], seen[48];

    snprintf(key, sizeof(key), "%sevents", prefix);
    stream_last_id(key, last, sizeof(last));
    pthread_mutex_lock(&watch.mu);
    snprintf(seen, sizeof(seen), "%s", watch.last);
    pthread_mutex_unlock(&watch.mu);
    snprintf(why, size, "the test's stream reader is at %s, the stream at %s", seen, last);
    return *last && !strcmp(seen, last);
}

/* ---- SQL ---- */

static int64_t sql0(const char *sql)
{
    int64_t v = harness_sql_int(&h, sql, 0);

    if (v < 0)
        fail_msg("'%s' failed", sql);
    return v;
}

/* Runs a query without parameters into rows (allocated in a); fails the test on error. */
static void query(struct arena *a, struct db_rows *rows, const char *sql)
{
    struct db_conn *c;
    struct err e;

    if (db_acquire(h.pool, &c, &e))
        fail_msg("db_acquire: %s", e.detail);
    int rc_q = db_query(c, sql, NULL, 0, a, rows, &e);
    db_release(h.pool, c);
    if (rc_q)
        fail_msg("'%s' failed: %s", sql, e.detail);
}

static const char sql_backlog[] = "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL";
static const char sql_outbox_rows[] = "SELECT COUNT(*) FROM outbox";
static const char sql_paid_orders[] = "SELECT COUNT(*) FROM orders WHERE status = 'PAID'";
static const char sql_platform_events[] = "SELECT COUNT(*) FROM platform_events";
static const char sql_platform_paid[] =
    "SELECT COUNT(*) FROM platform_events WHERE event_type = 'order.paid'";
/* Outbox events the platform has not recorded. */
static const char sql_not_received[] =
    "SELECT COUNT(*) FROM outbox o LEFT JOIN platform_events p ON p.event_id = o.event_id "
    "WHERE p.event_id IS NULL";

/* Appends to the message in buf (of size), which stays NUL-terminated and truncated. */
static void appendf(char *buf, size_t size, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void appendf(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
    va_list ap;

    if (*len >= size - 1)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, size - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len = *len + (size_t)n < size - 1 ? *len + (size_t)n : size - 1;
}

/* ---- platform equals MariaDB ---- */

/*
 * The platform's tables against the shop's: every outbox event recorded exactly once and
 * nothing else (event_id is the key, so "once" is about the order: one order.paid per paid
 * order), each with the outbox row's type, order and day; one order.paid per payment ever made;
 * and per UTC day, paid_orders and revenue_krw equal to the orders still PAID that were paid
 * that day (a cancel after payment takes back on the paid day).
 */
static void assert_platform_equals_mariadb(void)
{
    static const char sql_lost[] =
        "SELECT o.event_id FROM outbox o LEFT JOIN platform_events p ON p.event_id = o.event_id "
        "WHERE p.event_id IS NULL ORDER BY o.id LIMIT 5";
    static const char sql_invented[] =
        "SELECT p.event_id FROM platform_events p LEFT JOIN outbox o ON o.event_id = p.event_id "
        "WHERE o.event_id IS NULL LIMIT 5";
    static const char sql_differs[] =
        "SELECT p.event_id FROM platform_events p JOIN outbox o ON o.event_id = p.event_id "
        "WHERE p.event_type <> o.event_type OR p.order_id <> o.aggregate_id "
        "OR DATE(p.occurred_at) <> DATE(o.created_at) LIMIT 5";
    static const char sql_paid_twice[] =
        "SELECT COUNT(*) FROM (SELECT order_id FROM platform_events "
        "WHERE event_type = 'order.paid' GROUP BY order_id HAVING COUNT(*) > 1) x";
    static const char sql_payment_unreported[] =
        "SELECT COUNT(*) FROM payments y LEFT JOIN platform_events p "
        "ON p.event_type = 'order.paid' AND p.order_id = y.order_id WHERE p.event_id IS NULL";
    static const char sql_payments[] = "SELECT COUNT(*) FROM payments";
    static const char sql_days[] =
        "SELECT DATE_FORMAT(day, '%Y-%m-%d'), SUM(pn), SUM(pr), SUM(n), SUM(r) FROM ("
        " SELECT day, paid_orders AS pn, revenue_krw AS pr, 0 AS n, 0 AS r"
        " FROM platform_daily_sales"
        " UNION ALL"
        " SELECT DATE(paid_at), 0, 0, COUNT(*), SUM(total_krw) FROM orders"
        " WHERE status = 'PAID' GROUP BY DATE(paid_at)"
        ") x GROUP BY day HAVING SUM(pn) <> SUM(n) OR SUM(pr) <> SUM(r) ORDER BY day";
    struct arena a = ARENA_INIT;
    struct db_rows rows;
    char msg[1024];
    size_t len = 0;

    msg[0] = '\0';
    query(&a, &rows, sql_lost);
    for (size_t i = 0; i < rows.nrows; i++)
        appendf(msg, sizeof(msg), &len, "%s not received; ", db_str(&rows, i, 0));
    query(&a, &rows, sql_invented);
    for (size_t i = 0; i < rows.nrows; i++)
        appendf(msg, sizeof(msg), &len, "%s is not in the outbox; ", db_str(&rows, i, 0));
    query(&a, &rows, sql_differs);
    for (size_t i = 0; i < rows.nrows; i++)
        appendf(msg, sizeof(msg), &len, "%s recorded unlike its row; ", db_str(&rows, i, 0));
    query(&a, &rows, sql_days);
    for (size_t i = 0; i < rows.nrows; i++)
        appendf(msg, sizeof(msg), &len,
                "day %s: platform %lld orders %lld KRW, MariaDB %lld orders %lld KRW; ",
                db_str(&rows, i, 0), (long long)db_int(&rows, i, 1), (long long)db_int(&rows, i, 2),
                (long long)db_int(&rows, i, 3), (long long)db_int(&rows, i, 4));
    arena_release(&a);
    if (len)
        fail_msg("the platform differs from MariaDB: %s", msg);
    assert_int_equal(sql0(sql_paid_twice), 0);
    assert_int_equal(sql0(sql_payment_unreported), 0);
    assert_int_equal(sql0(sql_platform_paid), sql0(sql_payments));
    assert_int_equal(sql0(sql_platform_events), sql0(sql_outbox_rows));
}

/* ---- ranking equals the roll-up ---- */

struct rank_row {
    int64_t product;
    int64_t qty;
    int64_t rev;
};

/* The members and scores of a sorted set; *n members, malloc'd array (NULL when empty). */
static struct rank_row *zset_read(const char *key, size_t *n, bool rev)
{
    const char *argv[] = {"ZRANGE", key, "0", "-1", "WITHSCORES"};
    redisReply *r = rcmd_argv(5, argv);
    struct rank_row *out = NULL;

    *n = 0;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r)
            freeReplyObject(r);
        return NULL;
    }
    out = calloc(r->elements / 2 + 1, sizeof(*out));
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        out[*n].product = strtoll(r->element[i]->str, NULL, 10);
        int64_t score = llround(strtod(r->element[i + 1]->str, NULL));
        if (rev)
            out[*n].rev = score;
        else
            out[*n].qty = score;
        (*n)++;
    }
    freeReplyObject(r);
    return out;
}

static int64_t score_of(const struct rank_row *rows, size_t n, int64_t product, bool rev)
{
    for (size_t i = 0; i < n; i++)
        if (rows[i].product == product)
            return rev ? rows[i].rev : rows[i].qty;
    return 0;
}

static bool key_exists(const char *key)
{
    const char *argv[] = {"EXISTS", key};
    redisReply *r = rcmd_argv(2, argv);
    bool exists = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;

    if (r)
        freeReplyObject(r);
    return exists;
}

/* Compares one day (YYYYMMDD) of Redis with the roll-up rows of that day; why on a mismatch. */
static bool day_matches(const char *day, const struct rank_row *want, size_t nwant, char *why,
                        size_t size)
{
    char key[sizeof(prefix) + 600]; /* the compiler cannot bound day */
    size_t nq, nr;
    bool ok = true;

    snprintf(key, sizeof(key), "%srank:%s:ready", prefix, day);
    if (nwant && !key_exists(key)) {
        snprintf(why, size, "%.200s does not exist", key);
        return false;
    }
    snprintf(key, sizeof(key), "%srank:%s:qty", prefix, day);
    struct rank_row *qty = zset_read(key, &nq, false);
    snprintf(key, sizeof(key), "%srank:%s:rev", prefix, day);
    struct rank_row *rev = zset_read(key, &nr, true);
    for (size_t i = 0; ok && i < nwant; i++) {
        int64_t q = score_of(qty, nq, want[i].product, false);
        int64_t r = score_of(rev, nr, want[i].product, true);
        if (q != want[i].qty || r != want[i].rev) {
            snprintf(why, size,
                     "day %.32s product %lld: Redis %lld units %lld KRW, roll-up %lld "
                     "units %lld KRW",
                     day, (long long)want[i].product, (long long)q, (long long)r,
                     (long long)want[i].qty, (long long)want[i].rev);
            ok = false;
        }
    }
    /* Nothing in Redis that the roll-up does not have (a zero score is nothing). */
    for (size_t i = 0; ok && i < nq + nr; i++) {
        const struct rank_row *m = i < nq ? &qty[i] : &rev[i - nq];
        bool known = false;
        for (size_t j = 0; j < nwant; j++)
            known |= want[j].product == m->product;
        if (!known && (m->qty || m->rev)) {
            snprintf(why, size,
                     "day %.32s: Redis has product %lld (%lld units, %lld KRW), the "
                     "roll-up has not",
                     day, (long long)m->product, (long long)m->qty, (long long)m->rev);
            ok = false;
        }
    }
    free(qty);
    free(rev);
    return ok;
}

/* Whether every day of the roll-up, and every day Redis ranks, agree; why when not. */
static bool ranking_matches(char *why, size_t size)
{
    static const char sql_rollup[] =
        "SELECT DATE_FORMAT(day, '%Y%m%d'), product_id, quantity, revenue_krw "
        "FROM product_sales_daily ORDER BY day, product_id";
    struct arena a = ARENA_INIT;
    struct db_rows rows;
    char pattern[128], days[64][9];
    size_t ndays = 0;
    bool ok = true;

    query(&a, &rows, sql_rollup);
    for (size_t i = 0; i < rows.nrows && ndays < 64; i++)
        if (!ndays || strcmp(days[ndays - 1], db_str(&rows, i, 0)))
            snprintf(days[ndays++], sizeof(days[0]), "%s", db_str(&rows, i, 0));
    /* Days Redis ranks that the roll-up has no row for must rank nothing. */
    snprintf(pattern, sizeof(pattern), "%srank:*:qty", prefix);
    const char *argv[] = {"KEYS", pattern};
    redisReply *k = rcmd_argv(2, argv);
    for (size_t i = 0; k && k->type == REDIS_REPLY_ARRAY && i < k->elements && ndays < 64; i++) {
        const char *day = k->element[i]->str + strlen(prefix) + strlen("rank:");
        bool known = false;
        for (size_t j = 0; j < ndays; j++)
            known |= !strncmp(days[j], day, 8);
        if (!known)
            snprintf(days[ndays++], sizeof(days[0]), "%.8s", day);
    }
    if (k)
        freeReplyObject(k);
    for (size_t d = 0; ok && d < ndays; d++) {
        struct rank_row want[NPRODUCTS * 4];
        size_t nwant = 0;
        for (size_t i = 0; i < rows.nrows && nwant < NPRODUCTS * 4; i++)
            if (!strcmp(db_str(&rows, i, 0), days[d]))
                want[nwant++] = (struct rank_row){db_int(&rows, i, 1), db_int(&rows, i, 2),
                                                  db_int(&rows, i, 3)};
        ok = day_matches(days[d], want, nwant, why, size);
    }
    arena_release(&a);
    if (ok && !ndays)
        snprintf(why, size, "nothing sold yet");
    return ok && ndays;
}

static bool ranking_cond(void *arg)
{
    char *why = arg;
    return ranking_matches(why, 512);
}

/*
 * The ranking in Redis equals the product_sales_daily roll-up, day by day and product by
 * product (waited for: the consumers are asynchronous); and the roll-up itself equals the lines
 * of the orders still PAID, by day of payment, so that both stand on what was really sold.
 */
static void assert_ranking_equals_rollup(void)
{
    static const char sql_rollup_vs_orders[] =
        "SELECT COUNT(*) FROM ("
        " SELECT day, product_id, SUM(q) AS q, SUM(r) AS r FROM ("
        "  SELECT day, product_id, quantity AS q, revenue_krw AS r FROM product_sales_daily"
        "  UNION ALL"
        "  SELECT DATE(o.paid_at), i.product_id, -SUM(i.quantity), -SUM(i.subtotal_krw)"
        "  FROM orders o JOIN order_items i ON i.order_id = o.id WHERE o.status = 'PAID'"
        "  GROUP BY DATE(o.paid_at), i.product_id"
        " ) x GROUP BY day, product_id HAVING q <> 0 OR r <> 0) y";
    char why[512] = "";
    int64_t wrong = sql0(sql_rollup_vs_orders);

    if (wrong)
        fail_msg("product_sales_daily differs from the lines of the PAID orders on %lld "
                 "(day, product) pairs",
                 (long long)wrong);
    if (!harness_wait_for_every(ranking_cond, why, 30000, 50))
        fail_msg("the ranking in Redis differs from the roll-up: %s", why);
}

/* ---- settling ---- */

struct settle {
    char why[512];
    bool died; /* a process under test exited */
};

static bool all_running(struct settle *s)
{
    for (int i = 0; i < NSERVERS; i++)
        if (srv[i].pid > 0 && !harness_server_running(&srv[i])) {
            snprintf(s->why, sizeof(s->why), "shopd serve on port %d exited with %d; see %s",
                     srv[i].port, srv[i].exit_status, srv[i].log_path);
            return false;
        }
    if (plat.pid > 0 && !harness_server_running(&plat)) {
        snprintf(s->why, sizeof(s->why), "shopd platform exited with %d; see %s", plat.exit_status,
                 plat.log_path);
        return false;
    }
    return true;
}

static bool settled(void *arg)
{
    struct settle *s = arg;
    int64_t n;

    if (!all_running(s)) {
        s->died = true;
        return true;
    }
    if ((n = sql0(sql_backlog)) != 0) {
        snprintf(s->why, sizeof(s->why), "%lld outbox rows unpublished", (long long)n);
        return false;
    }
    if ((n = sql0(sql_not_received)) != 0) {
        snprintf(s->why, sizeof(s->why), "%lld outbox events not in platform_events", (long long)n);
        return false;
    }
    return group_drained("ranking", s->why, sizeof(s->why)) &&
           group_drained("platform", s->why, sizeof(s->why)) &&
           watch_caught_up(s->why, sizeof(s->why)) && ranking_matches(s->why, sizeof(s->why));
}

/* Waits until every row is published, every event consumed by both groups and read by the
 * watcher, and the ranking agrees; fails with what was still missing at the deadline. */
static void wait_settled(void)
{
    struct settle s = {"", false};
    int64_t start = clock_monotonic_us();

    if (!harness_wait_for_every(settled, &s, SETTLE_MS, 50))
        fail_msg("not settled after %d s: %s", SETTLE_MS / 1000, s.why);
    if (s.died)
        fail_msg("%s", s.why);
    printf("settled in %.1f s\n", (double)(clock_monotonic_us() - start) / 1e6);
}

/* ---- metrics ---- */

/* The sum of series over the running serve processes; fails when one lacks it. */
static int64_t serve_metric_sum(const char *series)
{
    int64_t sum = 0;

    for (int i = 0; i < NSERVERS; i++) {
        if (srv[i].pid <= 0)
            continue;
        int64_t v = harness_metric(&srv[i], series);
        if (v < 0)
            fail_msg("%s is not in %s/metrics", series, srv[i].url);
        sum += v;
    }
    return sum;
}

static int64_t platform_metric(const char *series)
{
    int64_t v = harness_metric(&plat, series);

    if (v < 0)
        fail_msg("%s is not in the platform's %s/metrics", series, plat.url);
    return v;
}

static bool backlog_metrics_zero(void *arg)
{
    return serve_metric_sum("shopd_outbox_backlog") == 0 &&
           serve_metric_sum("shopd_outbox_oldest_age_seconds") == 0;
}

/* ---- HTTP ---- */

/* ---- the top products on a fresh process ---- */

/* GET /api/products/top?days=1&limit=100 on a process started now (no cache of its own, and
 * nobody asked before in this database) equals the roll-up of today, rank by rank. */
static void assert_top_on_fresh_server(void)
{
    static const char sql_today[] =
        "SELECT s.product_id, p.name, s.quantity, s.revenue_krw FROM product_sales_daily s "
        "JOIN products p ON p.id = s.product_id WHERE s.day = UTC_DATE() AND s.quantity > 0 "
        "ORDER BY s.quantity DESC, s.product_id";
    struct harness_server t;
    struct arena a = ARENA_INIT;
    struct db_rows rows;
    json_t *top;

    assert_int_equal(harness_server_start(&h, &t, serve_env), 0);
    long status = it_call(&t, "GET", NULL, NULL, &top, "/api/products/top?days=1&limit=100");
    query(&a, &rows, sql_today);
    int stopped = harness_server_stop(&t);
    assert_int_equal(status, 200);
    assert_non_null(jstr(top, "period"));
    assert_string_equal(jstr(top, "period"), "1days");
    json_t *list = json_object_get(top, "products");
    if (json_array_size(list) != rows.nrows) {
        char *dump = json_dumps(top, JSON_COMPACT);
        char copy[1024];
        snprintf(copy, sizeof(copy), "%s", dump);
        free(dump);
        fail_msg("top products: %zu ranked, the roll-up of today has %zu: %s",
                 json_array_size(list), rows.nrows, copy);
    }
    for (size_t i = 0; i < rows.nrows; i++) {
        json_t *p = json_array_get(list, i);
        if (jint(p, "rank") != (int64_t)i + 1 || jint(p, "productId") != db_int(&rows, i, 0) ||
            jint(p, "salesCount") != db_int(&rows, i, 2) ||
            jint(p, "revenue") != db_int(&rows, i, 3) || !jstr(p, "name") ||
            strcmp(jstr(p, "name"), db_str(&rows, i, 1)))
            fail_msg("top products rank %zu: product %lld, %lld units, %lld KRW; the roll-up: "
                     "product %lld, %lld units, %lld KRW",
                     i + 1, (long long)jint(p, "productId"), (long long)jint(p, "salesCount"),
                     (long long)jint(p, "revenue"), (long long)db_int(&rows, i, 0),
                     (long long)db_int(&rows, i, 2), (long long)db_int(&rows, i, 3));
    }
    json_decref(top);
    arena_release(&a);
    assert_int_equal(stopped, 0);
}

/* ---- what was published ---- */

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* An entry the relay wrote: its fields agree with each other and with the JSON event. */
static void check_entry(const struct stream_entry *en)
{
    char want_id[72];

    if (!en->complete)
        fail_msg("stream entry %s (%s) lacks one of event_id, type, order_id, occurred_us, "
                 "payload",
                 en->id, en->event_id);
    snprintf(want_id, sizeof(want_id), "order-%lld-%s", (long long)en->order_id,
             !strcmp(en->type, "order.paid") ? "paid" : "cancelled");
    if (strcmp(en->event_id, want_id) ||
        (strcmp(en->type, "order.paid") && strcmp(en->type, "order.cancelled")))
        fail_msg("stream entry %s: event_id %s, type %s, order_id %lld do not agree", en->id,
                 en->event_id, en->type, (long long)en->order_id);
    json_t *ev = json_loads(en->payload, 0, NULL);
    const char *type = ev ? jstr(ev, "type") : NULL;
    json_t *order = ev ? json_object_get(ev, "orderId") : NULL;
    bool ok = type && !strcmp(type, en->type) && json_is_integer(order) &&
              json_integer_value(order) == en->order_id;
    json_decref(ev);
    if (!ok)
        fail_msg("stream entry %s: the payload is not the event %s of order %lld: %.200s", en->id,
                 en->type, (long long)en->order_id, en->payload);
    if (en->occurred_us <= 0)
        fail_msg("stream entry %s: occurred_us %lld", en->id, (long long)en->occurred_us);
}

/*
 * Everything the watcher read against the outbox: each outbox event in the stream at least
 * once (exactly once when once is set: nothing went wrong that could make a relay publish a
 * row twice), and no event of the relays that is not in the outbox. Entries whose event_id
 * does not start with "order-" are the test's own (the poison) and are left out.
 */
static void assert_stream_carries_outbox(bool once)
{
    struct arena a = ARENA_INIT;
    struct db_rows rows;
    size_t n = 0, j = 0;

    query(&a, &rows, "SELECT event_id FROM outbox ORDER BY event_id");
    /* A copy: the watcher may move its array, and a failure must not leave the lock held.
     * The payloads stay where they are until watch_stop. */
    pthread_mutex_lock(&watch.mu);
    size_t total = watch.n;
    struct stream_entry *copy = malloc((total + 1) * sizeof(*copy));
    memcpy(copy, watch.entries, total * sizeof(*copy));
    pthread_mutex_unlock(&watch.mu);
    const char **seen = calloc(total + 1, sizeof(*seen));
    for (size_t i = 0; i < total; i++)
        if (!strncmp(copy[i].event_id, "order-", 6)) {
            check_entry(&copy[i]);
            seen[n++] = copy[i].event_id;
        }
    qsort(seen, n, sizeof(*seen), cmp_str);
    for (size_t i = 0; i < rows.nrows; i++) {
        const char *id = db_str(&rows, i, 0);
        size_t times = 0;
        if (j < n && strcmp(seen[j], id) < 0)
            fail_msg("%s was published but is not in the outbox", seen[j]);
        while (j < n && !strcmp(seen[j], id)) {
            times++;
            j++;
        }
        if (!times || (once && times != 1))
            fail_msg("%s was published %zu times", id, times);
    }
    if (j < n)
        fail_msg("%s was published but is not in the outbox", seen[j]);
    printf("the stream carried %zu entries for %zu outbox rows\n", total, rows.nrows);
    free(seen);
    free(copy);
    arena_release(&a);
}

/* ---- everything arrived ---- */

/*
 * The end of every scenario: wait until all settled, then the platform equals MariaDB, the
 * ranking equals the roll-up, the stream carried the outbox (once, when once), the backlog
 * gauges are back to zero, and a fresh process ranks today as the roll-up does.
 */
static void assert_everything_arrived(bool once)
{
    wait_settled();
    assert_platform_equals_mariadb();
    assert_ranking_equals_rollup();
    assert_stream_carries_outbox(once);
    if (!harness_wait_for_every(backlog_metrics_zero, NULL, 30000, 50))
        fail_msg("shopd_outbox_backlog %lld, shopd_outbox_oldest_age_seconds %lld over the "
                 "running processes, with nothing left in the outbox",
                 (long long)serve_metric_sum("shopd_outbox_backlog"),
                 (long long)serve_metric_sum("shopd_outbox_oldest_age_seconds"));
    assert_top_on_fresh_server();
}

/* ---- the order driver ---- */

/*
 * NTHREADS threads (fewer for a small run) each create their own users, then take order
 * numbers from a shared counter until norders: create the order through one process and pay it
 * through the next (cancel it through the one after, when cancel is set). Processes marked dead
 * are skipped; a request that got no answer from a process marked dead is counted, not failed
 * (its order may or may not exist, its payment may or may not have happened). Anything else
 * unexpected is a failure, kept for the main thread: cmocka may only fail from there.
 */
struct run {
    int norders;
    bool cancel;
    int seq; /* this run's number within the group: keys and names */
    int nthreads;
    int64_t started_us; /* monotonic */
    pthread_t threads[NTHREADS];
    atomic_int next;
    atomic_int created, paid, cancelled, finished;
    atomic_int lost_creates, unanswered_pays, unanswered_cancels;
    atomic_int failures;
    atomic_bool dead[NSERVERS];
    pthread_mutex_t mu;
    char failure[600];
};

struct driver {
    struct run *run;
    int index;
    int64_t users[USERS_PER_THREAD];
    char *tokens[USERS_PER_THREAD];
};

static struct driver drivers[NTHREADS];

static void run_fail(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void run_fail(struct run *r, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&r->mu);
    if (!atomic_load(&r->failures)) {
        va_start(ap, fmt);
        vsnprintf(r->failure, sizeof(r->failure), fmt, ap);
        va_end(ap);
    }
    atomic_fetch_add(&r->failures, 1);
    pthread_mutex_unlock(&r->mu);
}

/* The first live process at or after i (round robin), or -1. */
static int live_server(struct run *r, int i)
{
    for (int k = 0; k < NSERVERS; k++) {
        int s = (i + k) % NSERVERS;
        if (!atomic_load(&r->dead[s]))
            return s;
    }
    return -1;
}

/* POSTs body to path on process s; the status, or -1 when no answer came (or s is -1: no
 * process is left). res always needs http_result_free. */
static long post(struct http_client *c, int s, const char *path, const char *token,
                 const char *body, const char *key, struct http_result *res)
{
    char url[256], header[160];

    if (s < 0) {
        memset(res, 0, sizeof(*res));
        res->body = strdup("(no live process left)");
        return -1;
    }
    snprintf(url, sizeof(url), "%s%s", srv[s].url, path);
    snprintf(header, sizeof(header), "Idempotency-Key: %s", key);
    if (http_do(c, "POST", url, token, "application/json", body, strlen(body), header, res))
        return -1;
    return res->status;
}

/* An integer member of a JSON answer, or -1 (no cmocka in the driver threads). */
static int64_t answer_int(const char *body, const char *key)
{
    json_t *j = json_loads(body, 0, NULL);
    json_t *v = j ? json_object_get(j, key) : NULL;
    int64_t n = json_is_integer(v) ? json_integer_value(v) : -1;

    json_decref(j);
    return n;
}

/* Whether a request that got no answer is excused: its process was marked dead. */
static bool excused(struct run *r, int s, atomic_int *counter)
{
    if (s < 0 || !atomic_load(&r->dead[s]))
        return false;
    atomic_fetch_add(counter, 1);
    return true;
}

static int make_users(struct driver *d, struct http_client *c)
{
    struct run *r = d->run;
    struct http_result res;
    char name[64], path[96], body[64], key[64];

    for (int u = 0; u < USERS_PER_THREAD; u++) {
        int s = live_server(r, d->index + u);
        snprintf(name, sizeof(name), "Buyer %d-%d-%d", r->seq, d->index, u);
        d->users[u] = s < 0 ? -1 : harness_create_user(&h, &srv[s], name);
        if (d->users[u] <= 0) {
            run_fail(r, "could not create user %s", name);
            return -1;
        }
        d->tokens[u] = harness_token(&h, d->users[u]);
        snprintf(path, sizeof(path), "/api/users/%lld/balance/charge", (long long)d->users[u]);
        snprintf(body, sizeof(body), "{\"amount\":%d}", USER_BALANCE);
        snprintf(key, sizeof(key), "charge-%d-%d-%d", r->seq, d->index, u);
        long status = post(c, s, path, d->tokens[u], body, key, &res);
        if (status != 200)
            run_fail(r, "charge user %lld: %ld %.200s", (long long)d->users[u], status, res.body);
        http_result_free(&res);
        if (status != 200)
            return -1;
    }
    return 0;
}

/* The body of order k: 1 to 3 distinct products, 1 to 3 units each. */
static void order_body(char *buf, size_t size, int64_t user, int k)
{
    int lines = 1 + k % 3;
    size_t len = (size_t)snprintf(buf, size, "{\"userId\":%lld,\"items\":[", (long long)user);

    for (int j = 0; j < lines; j++)
        len += (size_t)snprintf(buf + len, size - len, "%s{\"productId\":%lld,\"quantity\":%d}",
                                j ? "," : "", (long long)products[(k * 5 + j * 3) % NPRODUCTS],
                                1 + (k + j) % 3);
    snprintf(buf + len, size - len, "]}");
}

/* Order k from start to end; returns when it is done, lost, or failed. */
static void drive_order(struct driver *d, struct http_client *c, int k)
{
    struct run *r = d->run;
    int u = k % USERS_PER_THREAD;
    struct http_result res;
    char body[512], path[96], key[64];
    int s = live_server(r, k);

    order_body(body, sizeof(body), d->users[u], k);
    snprintf(key, sizeof(key), "order-%d-%d", r->seq, k);
    long status = post(c, s, "/api/orders", d->tokens[u], body, key, &res);
    int64_t order = status == 201 ? answer_int(res.body, "orderId") : -1;
    if (status != 201 && !(status < 0 && excused(r, s, &r->lost_creates)))
        run_fail(r, "create order %d through process %d: %ld %.200s", k, s, status, res.body);
    http_result_free(&res);
    if (order <= 0)
        return;
    atomic_fetch_add(&r->created, 1);

    s = live_server(r, k + 1);
    snprintf(path, sizeof(path), "/api/orders/%lld/payment", (long long)order);
    snprintf(body, sizeof(body), "{\"userId\":%lld}", (long long)d->users[u]);
    snprintf(key, sizeof(key), "pay-%d-%d", r->seq, k);
    status = post(c, s, path, d->tokens[u], body, key, &res);
    if (status == 200)
        atomic_fetch_add(&r->paid, 1);
    else if (!(status < 0 && excused(r, s, &r->unanswered_pays)))
        run_fail(r, "pay order %lld through process %d: %ld %.200s", (long long)order, s, status,
                 res.body);
    http_result_free(&res);
    if (status != 200 || !r->cancel)
        return;

    s = live_server(r, k + 2);
    snprintf(path, sizeof(path), "/api/orders/%lld/cancel", (long long)order);
    snprintf(key, sizeof(key), "cancel-%d-%d", r->seq, k);
    status = post(c, s, path, d->tokens[u], body, key, &res);
    if (status == 200)
        atomic_fetch_add(&r->cancelled, 1);
    else if (!(status < 0 && excused(r, s, &r->unanswered_cancels)))
        run_fail(r, "cancel order %lld through process %d: %ld %.200s", (long long)order, s, status,
                 res.body);
    http_result_free(&res);
}

static void *driver_main(void *arg)
{
    struct driver *d = arg;
    struct run *r = d->run;
    struct http_client c;

    http_client_init(&c);
    if (!make_users(d, &c))
        for (;;) {
            int k = atomic_fetch_add(&r->next, 1);
            if (k >= r->norders || atomic_load(&r->failures))
                break;
            drive_order(d, &c, k);
            atomic_fetch_add(&r->finished, 1);
        }
    http_client_release(&c);
    return NULL;
}

static void run_start(struct run *r, int norders, bool cancel)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    r->norders = norders;
    r->cancel = cancel;
    r->seq = ++run_seq;
    r->nthreads = norders < NTHREADS ? norders : NTHREADS;
    r->started_us = clock_monotonic_us();
    for (int i = 0; i < NSERVERS; i++)
        atomic_store(&r->dead[i], srv[i].pid <= 0);
    for (int i = 0; i < r->nthreads; i++) {
        memset(&drivers[i], 0, sizeof(drivers[i]));
        drivers[i].run = r;
        drivers[i].index = i;
        if (pthread_create(&r->threads[i], NULL, driver_main, &drivers[i]))
            fail_msg("pthread_create failed");
    }
}

/* Joins the threads; fails the test with the first failure a thread kept. */
static void run_finish(struct run *r)
{
    for (int i = 0; i < r->nthreads; i++) {
        pthread_join(r->threads[i], NULL);
        for (int u = 0; u < USERS_PER_THREAD; u++)
            free(drivers[i].tokens[u]);
    }
    pthread_mutex_destroy(&r->mu);
    printf("run %d: %d orders in %.1f s, %d created, %d paid, %d cancelled; without an answer "
           "from a killed process: %d creates, %d payments, %d cancels\n",
           r->seq, r->norders, (double)(clock_monotonic_us() - r->started_us) / 1e6,
           atomic_load(&r->created), atomic_load(&r->paid), atomic_load(&r->cancelled),
           atomic_load(&r->lost_creates), atomic_load(&r->unanswered_pays),
           atomic_load(&r->unanswered_cancels));
    if (atomic_load(&r->failures))
        fail_msg("%d requests failed; the first: %s", atomic_load(&r->failures), r->failure);
}

/* Stops handing out orders (after a failed wait), so that run_finish returns soon. */
static void run_abort(struct run *r)
{
    atomic_store(&r->next, r->norders);
}

struct progress {
    struct run *run;
    int paid; /* wait until this many are paid */
};

/* Paid enough, or the run is over (all done, or failing): the caller looks at which. */
static bool progressed(void *arg)
{
    struct progress *p = arg;

    return atomic_load(&p->run->paid) >= p->paid ||
           atomic_load(&p->run->finished) >= p->run->norders || atomic_load(&p->run->failures) > 0;
}

/* Waits until paid orders reach n while the run goes on; fails (after stopping it) if the run
 * ended or failed first. */
static void wait_paid(struct run *r, int n)
{
    struct progress p = {r, n};

    if (!harness_wait_for_every(progressed, &p, RUN_MS, 5) || atomic_load(&r->paid) < n) {
        run_abort(r);
        run_finish(r);
        fail_msg("the run did not reach %d paid orders (%d)", n, atomic_load(&r->paid));
    }
}

/* ---- group set-up ---- */

static int stop_group(void **state)
{
    int failed = 0;
    char pattern[96];

    watch_stop();
    for (int i = 0; i < NSERVERS; i++) {
        failed |= srv[i].pid < 0; /* exited on its own */
        if (srv[i].pid > 0)
            failed |= harness_server_stop(&srv[i]) != 0;
    }
    failed |= plat.pid < 0;
    if (plat.pid > 0)
        failed |= harness_server_stop(&plat) != 0;
    if (private_redis && redis.pid > 0)
        failed |= harness_redis_stop(&redis) != 0;
    if (!private_redis && prefix[0]) {
        /* The shared Redis keeps nothing of this database. */
        snprintf(pattern, sizeof(pattern), "%s*", prefix);
        redis_client_delete_matching(&rc, pattern);
    }
    redis_client_release(&rc);
    free(admin);
    admin = NULL;
    harness_teardown(&h);
    memset(srv, 0, sizeof(srv));
    memset(&plat, 0, sizeof(plat));
    memset(&redis, 0, sizeof(redis));
    private_redis = false;
    prefix[0] = '\0';
    /* A process that leaked or crashed exits non-zero under ASan. */
    return failed ? -1 : 0;
}

static int start_group(const struct group_conf *g)
{
    char name[32];

    if (harness_setup(&h))
        return -1;
    snprintf(prefix, sizeof(prefix), "%s:", h.db_name);
    private_redis = g->private_redis;
    if (private_redis && harness_redis_start(&h, &redis))
        goto fail;
    redis_url = private_redis ? redis.url : h.redis_url;
    if (redis_client_init(&rc, redis_url))
        goto fail;
    compose_env(serve_env, g->serve);
    compose_env(platform_env, g->platform);
    for (int i = 0; i < NSERVERS; i++)
        if (harness_server_start(&h, &srv[i], serve_env))
            goto fail;
    if (harness_platform_start(&h, &plat, platform_env))
        goto fail;
    admin = harness_admin_token(&h);
    for (int i = 0; i < NPRODUCTS; i++) {
        snprintf(name, sizeof(name), "Event Product %d", i);
        products[i] = harness_create_product(&h, &srv[i % NSERVERS], name, prices[i], 1000000);
        if (products[i] <= 0)
            goto fail;
    }
    run_seq = 0;
    if (watch_start())
        goto fail;
    return 0;
fail:
    fprintf(stderr, "test_events: set-up of the group failed\n");
    stop_group(NULL);
    return -1;
}

static const struct group_conf steady_conf = {false, {NULL}, {NULL}};
/* The killed process's ranking entries are taken over after a second, not 30. */
static const struct group_conf serve_killed_conf = {
    false, {"SHOPD_EVENTS_CLAIM_IDLE_MS=1000", NULL}, {"SHOPD_EVENTS_CLAIM_IDLE_MS=1000", NULL}};
static const struct group_conf redis_lost_conf = {
    true, {"SHOPD_EVENTS_CLAIM_IDLE_MS=1000", NULL}, {"SHOPD_EVENTS_CLAIM_IDLE_MS=1000", NULL}};
static const struct group_conf platform_killed_conf = {
    false, {"SHOPD_EVENTS_CLAIM_IDLE_MS=1000", NULL}, {"SHOPD_EVENTS_CLAIM_IDLE_MS=300", NULL}};
static const struct group_conf dead_letter_conf = {
    false,
    {"SHOPD_EVENTS_MAX_DELIVERIES=3", "SHOPD_EVENTS_CLAIM_IDLE_MS=200", NULL},
    {"SHOPD_EVENTS_MAX_DELIVERIES=3", "SHOPD_EVENTS_CLAIM_IDLE_MS=200", NULL}};

static int start_steady(void **state)
{
    return start_group(&steady_conf);
}

static int start_serve_killed(void **state)
{
    return start_group(&serve_killed_conf);
}

static int start_redis_lost(void **state)
{
    return start_group(&redis_lost_conf);
}

static int start_platform_killed(void **state)
{
    return start_group(&platform_killed_conf);
}

static int start_dead_letter(void **state)
{
    return start_group(&dead_letter_conf);
}

/* ---- 1. 1,000 paid orders through three processes ---- */

struct counts {
    int64_t n;
};

/*
 * What each group acknowledged: events processed, plus (where the process counts them) events
 * it found already applied. The ranking finds some so when it rebuilds a day from the roll-up,
 * which already holds payments whose events are still on their way.
 */
static int64_t acknowledged(const char *group)
{
    char consumed[96], duplicates[96];
    int64_t dup;

    snprintf(consumed, sizeof(consumed), "shopd_events_consumed_total{group=\"%s\"}", group);
    snprintf(duplicates, sizeof(duplicates), "shopd_events_duplicates_total{group=\"%s\"}", group);
    if (!strcmp(group, "platform")) {
        dup = harness_metric(&plat, duplicates);
        return platform_metric(consumed) + (dup > 0 ? dup : 0);
    }
    int64_t sum = serve_metric_sum(consumed);
    for (int i = 0; i < NSERVERS; i++)
        if (srv[i].pid > 0 && (dup = harness_metric(&srv[i], duplicates)) > 0)
            sum += dup;
    return sum;
}

/* Each event published once and acknowledged once by each group: nothing went wrong. */
static bool counted_once(void *arg)
{
    int64_t n = ((struct counts *)arg)->n;

    return serve_metric_sum("shopd_events_published_total") == n && acknowledged("ranking") == n &&
           acknowledged("platform") == n;
}

static void thousand_orders_reach_platform_and_ranking(void **state)
{
    struct run r;

    run_start(&r, NORDERS, false);
    run_finish(&r);
    assert_int_equal(atomic_load(&r.paid), NORDERS);
    assert_int_equal(sql0(sql_paid_orders), NORDERS);
    assert_everything_arrived(true);
    assert_int_equal(sql0(sql_platform_paid), NORDERS);

    struct counts c = {NORDERS};
    if (!harness_wait_for_every(counted_once, &c, 30000, 50))
        fail_msg("for %d events: published %lld, acknowledged by ranking %lld, by the "
                 "platform %lld",
                 NORDERS, (long long)serve_metric_sum("shopd_events_published_total"),
                 (long long)acknowledged("ranking"), (long long)acknowledged("platform"));
    /* The platform never sees a duplicate when nothing went wrong. */
    assert_int_equal(platform_metric("shopd_events_consumed_total{group=\"platform\"}"), NORDERS);
    assert_int_equal(serve_metric_sum("shopd_events_redelivered_total{group=\"ranking\"}"), 0);
    assert_int_equal(serve_metric_sum("shopd_events_dead_lettered_total{group=\"ranking\"}"), 0);
    assert_int_equal(platform_metric("shopd_events_redelivered_total{group=\"platform\"}"), 0);
    assert_int_equal(platform_metric("shopd_events_dead_lettered_total{group=\"platform\"}"), 0);
}

/* ---- 2. one serve process killed mid-run ---- */

static void serve_killed_mid_run_loses_nothing(void **state)
{
    struct run r;

    run_start(&r, NORDERS, false);
    wait_paid(&r, NORDERS * 3 / 10);
    atomic_store(&r.dead[2], true);
    harness_server_kill(&srv[2]);
    run_finish(&r);
    /* A payment without an answer may or may not have happened: MariaDB says which. */
    int64_t paid = sql0(sql_paid_orders);
    int answered = atomic_load(&r.paid), unanswered = atomic_load(&r.unanswered_pays);
    printf("%lld orders PAID in MariaDB: %d payments answered, %d without an answer\n",
           (long long)paid, answered, unanswered);
    assert_true(paid >= answered && paid <= answered + unanswered);
    assert_true(answered >= NORDERS - NTHREADS * 3);
    assert_everything_arrived(false);
    assert_int_equal(sql0(sql_platform_paid), paid);
}

/* ---- 3. Redis lost mid-run ---- */

static void redis_lost_mid_run_loses_nothing(void **state)
{
    struct run r;
    char epoch[128];

    run_start(&r, NORDERS, false);
    wait_paid(&r, NORDERS * 3 / 10);
    /* Without persistence: the stream, its groups, the epoch and the ranking are gone. */
    harness_redis_kill(&redis);
    int at_kill = atomic_load(&r.paid);
    wait_paid(&r, at_kill + NORDERS / 5); /* orders go on while Redis is down */
    int64_t unpublished = sql0(sql_backlog);
    int at_restart = atomic_load(&r.paid);
    int restarted = harness_redis_restart(&redis);
    run_finish(&r);
    assert_int_equal(restarted, 0);
    printf("paid at the kill %d, at the restart %d; %lld rows unpublished then\n", at_kill,
           at_restart, (long long)unpublished);
    /* What was paid while Redis was down cannot have been published. */
    assert_true(unpublished > 0);
    assert_int_equal(atomic_load(&r.paid), NORDERS);
    assert_int_equal(sql0(sql_paid_orders), NORDERS);
    assert_everything_arrived(false);
    assert_int_equal(sql0(sql_platform_paid), NORDERS);
    snprintf(epoch, sizeof(epoch), "%sevents:epoch", prefix);
    assert_true(key_exists(epoch));
}

/* ---- 4. the platform killed mid-stream ---- */

struct platform_progress {
    struct run *run;
    int64_t events;  /* received before the kill */
    int64_t pending; /* entries it held, unacknowledged, when paused */
    bool paused;
};

/*
 * The moment to kill the platform: it has received p->events and, paused (so that it can
 * acknowledge nothing more), holds entries it has not acknowledged: the new one must take them
 * over. Failing such a moment, once it has received twice as many. Also true, not paused, when
 * the run is over.
 */
static bool platform_holds_entries(void *arg)
{
    struct platform_progress *p = arg;
    int64_t received = sql0(sql_platform_events);

    if (atomic_load(&p->run->finished) >= p->run->norders || atomic_load(&p->run->failures))
        return true;
    if (received < p->events || harness_server_pause(&plat))
        return false;
    p->pending = group_pending("platform");
    if (p->pending > 0 || received >= 2 * p->events) {
        p->paused = true;
        return true;
    }
    harness_server_resume(&plat);
    return false;
}

static void platform_killed_mid_stream_loses_nothing(void **state)
{
    struct run r;
    struct platform_progress p = {&r, NORDERS / 4, 0, false};

    run_start(&r, NORDERS, false);
    if (!harness_wait_for_every(platform_holds_entries, &p, RUN_MS, 2) || !p.paused) {
        run_abort(&r);
        run_finish(&r);
        fail_msg("the platform did not receive %lld events while orders went on",
                 (long long)p.events);
    }
    harness_server_kill(&plat);
    int64_t received = sql0(sql_platform_events);
    /* Entries pile up while it is gone. */
    wait_paid(&r, atomic_load(&r.paid) + NORDERS / 10);
    int started = harness_platform_start(&h, &plat, platform_env);
    run_finish(&r);
    printf("platform killed after %lld events, holding %lld entries\n", (long long)received,
           (long long)p.pending);
    assert_int_equal(started, 0);
    assert_int_equal(atomic_load(&r.paid), NORDERS);
    assert_int_equal(sql0(sql_paid_orders), NORDERS);
    assert_everything_arrived(true);
    assert_int_equal(sql0(sql_platform_paid), NORDERS);
    /* What the dead consumer held was taken over: delivered again, to the new one. */
    if (p.pending > 0)
        assert_true(platform_metric("shopd_events_redelivered_total{group=\"platform\"}") >=
                    p.pending);
    assert_int_equal(platform_metric("shopd_events_dead_lettered_total{group=\"platform\"}"), 0);
}

/* ---- 5. a poison entry goes to the dead letters ---- */

#define POISON_ORDERS 60

static bool dead_letters_present(void *arg)
{
    char key[128];
    redisReply *r;

    snprintf(key, sizeof(key), "%sevents:dead", prefix);
    const char *argv[] = {"XLEN", key};
    r = rcmd_argv(2, argv);
    bool two = r && r->type == REDIS_REPLY_INTEGER && r->integer >= 2;
    if (r)
        freeReplyObject(r);
    return two;
}

static bool platform_dead_counted(void *arg)
{
    return harness_metric(&plat, "shopd_events_dead_lettered_total{group=\"platform\"}") == 1;
}

static void poison_entry_is_dead_lettered(void **state)
{
    struct run r;
    char key[128], dead_key[128], now[32], poison_id[48];
    bool seen[2] = {false, false};
    static const char *const groups[2] = {"ranking", "platform"};

    snprintf(key, sizeof(key), "%sevents", prefix);
    snprintf(dead_key, sizeof(dead_key), "%sevents:dead", prefix);
    run_start(&r, POISON_ORDERS, false);
    wait_paid(&r, POISON_ORDERS / 3);
    /* Straight into the stream between real events: a payload that is not an event. */
    snprintf(now, sizeof(now), "%lld", (long long)clock_now_us());
    const char *xadd[] = {"XADD", key,          "*",        "event_id",  "poison-1",
                          "type", "order.paid", "order_id", "999999999", "occurred_us",
                          now,    "payload",    "not json"};
    redisReply *x = rcmd_argv(13, xadd);
    bool added = x && x->type == REDIS_REPLY_STRING;
    snprintf(poison_id, sizeof(poison_id), "%s", added ? x->str : "");
    if (x)
        freeReplyObject(x);
    run_finish(&r);
    assert_true(added);
    assert_int_equal(atomic_load(&r.paid), POISON_ORDERS);

    if (!harness_wait_for_every(dead_letters_present, NULL, 60000, 20))
        fail_msg("%s did not get the poison entry for both groups", dead_key);
    assert_everything_arrived(true);

    const char *range[] = {"XRANGE", dead_key, "-", "+"};
    redisReply *d = rcmd_argv(4, range);
    assert_non_null(d);
    assert_int_equal(d->type, REDIS_REPLY_ARRAY);
    if (d->elements != 2)
        fail_msg("%s holds %zu entries, want 2 (the poison, once per group)", dead_key,
                 d->elements);
    for (size_t i = 0; i < d->elements; i++) {
        redisReply *fields = d->element[i]->element[1];
        const char *group = field_value(fields, "group"), *sid = field_value(fields, "stream_id");
        const char *event = field_value(fields, "event_id"),
                   *payload = field_value(fields, "payload");
        const char *reason = field_value(fields, "reason"), *type = field_value(fields, "type");
        const char *order = field_value(fields, "order_id"),
                   *occ = field_value(fields, "occurred_us");
        if (!group || !sid || !event || !payload || !reason || !type || !order || !occ)
            fail_msg("dead letter %s lacks a field", d->element[i]->element[0]->str);
        assert_string_equal(event, "poison-1");
        assert_string_equal(payload, "not json");
        assert_string_equal(type, "order.paid");
        assert_string_equal(order, "999999999");
        assert_string_equal(occ, now);
        assert_string_equal(sid, poison_id);
        assert_true(strlen(reason) > 0);
        for (int g = 0; g < 2; g++)
            if (!strcmp(group, groups[g])) {
                assert_false(seen[g]);
                seen[g] = true;
            }
    }
    freeReplyObject(d);
    assert_true(seen[0] && seen[1]);
    if (!harness_wait_for_every(platform_dead_counted, NULL, 10000, 20))
        fail_msg(
            "shopd_events_dead_lettered_total{group=\"platform\"} is %lld, want 1",
            (long long)platform_metric("shopd_events_dead_lettered_total{group=\"platform\"}"));
    assert_int_equal(serve_metric_sum("shopd_events_dead_lettered_total{group=\"ranking\"}"), 1);
    assert_int_equal(harness_sql_int(&h,
                                     "SELECT COUNT(*) FROM platform_events "
                                     "WHERE event_id = 'poison-1'",
                                     0),
                     0);
    assert_int_equal(sql0(sql_platform_paid), POISON_ORDERS);
}

/* ---- 6. paid, then cancelled: in that order, netting to zero ---- */

#define CANCELLED_ORDERS 20
#define KEPT_ORDERS      10

/* The position of the first stream entry with event_id, or -1. */
static long first_position(const char *event_id)
{
    long at = -1;

    pthread_mutex_lock(&watch.mu);
    for (size_t i = 0; i < watch.n && at < 0; i++)
        if (!strcmp(watch.entries[i].event_id, event_id))
            at = (long)i;
    pthread_mutex_unlock(&watch.mu);
    return at;
}

static void paid_then_cancelled_in_order_and_net_zero(void **state)
{
    struct run r;
    struct arena a = ARENA_INIT;
    struct db_rows rows;
    char paid[72], cancelled[72];

    /* Each paid through one process and cancelled through another right away. */
    run_start(&r, CANCELLED_ORDERS, true);
    run_finish(&r);
    assert_int_equal(atomic_load(&r.cancelled), CANCELLED_ORDERS);
    run_start(&r, KEPT_ORDERS, false);
    run_finish(&r);
    assert_int_equal(sql0(sql_paid_orders), KEPT_ORDERS);
    assert_everything_arrived(true);
    assert_int_equal(sql0(sql_platform_paid), CANCELLED_ORDERS + KEPT_ORDERS);
    assert_int_equal(harness_sql_int(&h,
                                     "SELECT COUNT(*) FROM platform_events "
                                     "WHERE event_type = 'order.cancelled'",
                                     0),
                     CANCELLED_ORDERS);

    query(&a, &rows, "SELECT aggregate_id FROM outbox WHERE event_type = 'order.cancelled'");
    assert_int_equal(rows.nrows, CANCELLED_ORDERS);
    for (size_t i = 0; i < rows.nrows; i++) {
        long long order = (long long)db_int(&rows, i, 0);
        snprintf(paid, sizeof(paid), "order-%lld-paid", order);
        snprintf(cancelled, sizeof(cancelled), "order-%lld-cancelled", order);
        long p = first_position(paid), c = first_position(cancelled);
        if (p < 0 || c < 0 || p > c)
            fail_msg("order %lld: order.paid at stream position %ld, order.cancelled at %ld", order,
                     p, c);
    }
    arena_release(&a);
    /* Netted out: what the roll-up, the ranking and the platform hold is the kept orders'. */
    assert_int_equal(harness_sql_int(&h,
                                     "SELECT COALESCE(SUM(paid_orders), 0) "
                                     "FROM platform_daily_sales",
                                     0),
                     KEPT_ORDERS);
    assert_int_equal(harness_sql_int(&h,
                                     "SELECT COALESCE(SUM(quantity), 0) "
                                     "FROM product_sales_daily",
                                     0),
                     harness_sql_int(&h,
                                     "SELECT SUM(i.quantity) FROM order_items i "
                                     "JOIN orders o ON o.id = i.order_id "
                                     "WHERE o.status = 'PAID'",
                                     0));
}

/* ---- events delivered again among new ones ---- */

#define COPY_ORDERS 200
#define COPIES      5

/* Whether the platform recorded the event of id. */
static bool recorded(const char *event_id)
{
    char sql[160];

    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM platform_events WHERE event_id = '%s'",
             event_id);
    return sql0(sql) == 1;
}

/*
 * Copies of entries the platform recorded already, added to the stream while new ones flow:
 * a batch that carries both records the new events and counts each copy as a duplicate, once.
 * A group of its own: the top products are asked once, at the end, of a fresh database.
 */
static void copies_of_recorded_events_count_once(void **state)
{
    struct run r;
    char key[128], count[8];
    const char *range[] = {"XRANGE", key, "-", "+", "COUNT", count};
    int64_t duplicates_before =
        platform_metric("shopd_events_duplicates_total{group=\"platform\"}");

    (void)state;
    snprintf(key, sizeof(key), "%sevents", prefix);
    snprintf(count, sizeof(count), "%d", COPIES);
    run_start(&r, COPIES * 4, false);
    run_finish(&r);
    wait_settled();
    redisReply *old = rcmd_argv((int)ARRAY_SIZE(range), range);
    assert_non_null(old);
    assert_int_equal(old->type, REDIS_REPLY_ARRAY);
    assert_int_equal(old->elements, COPIES);
    run_start(&r, COPY_ORDERS, false);
    wait_paid(&r, COPY_ORDERS / 4);
    for (size_t i = 0; i < old->elements; i++) {
        struct stream_entry en;
        char order[24], occurred[24];
        entry_from_reply(&en, old->element[i]);
        assert_true(en.complete);
        assert_true(recorded(en.event_id));
        snprintf(order, sizeof(order), "%lld", (long long)en.order_id);
        snprintf(occurred, sizeof(occurred), "%lld", (long long)en.occurred_us);
        const char *xadd[] = {"XADD",   key,       "*",        "event_id", en.event_id,
                              "type",   en.type,   "order_id", order,      "occurred_us",
                              occurred, "payload", en.payload};
        redisReply *x = rcmd_argv((int)ARRAY_SIZE(xadd), xadd);
        bool added = x && x->type == REDIS_REPLY_STRING;
        if (x)
            freeReplyObject(x);
        free(en.payload);
        assert_true(added);
    }
    freeReplyObject(old);
    run_finish(&r);
    assert_int_equal(atomic_load(&r.paid), COPY_ORDERS);
    assert_everything_arrived(false);
    assert_int_equal(sql0(sql_platform_paid), COPIES * 4 + COPY_ORDERS);
    assert_int_equal(platform_metric("shopd_events_duplicates_total{group=\"platform\"}") -
                         duplicates_before,
                     COPIES);
}

/*
 * A backlog reaches the platform in a few batches of three statements each: paused while 300
 * orders are paid, it then takes at most 4 reads (the one it was blocked in when paused, and
 * 256 a read) of about 5 round trips each; one event at a time would be 600 and more.
 */
#define BACKLOG_ORDERS    300
#define BACKLOG_TRIPS_MAX 20

static bool outbox_published(void *arg)
{
    (void)arg;
    return sql0(sql_backlog) == 0;
}

static void a_backlog_is_written_in_few_statements(void **state)
{
    static const char trips_series[] = "shopd_platform_db_round_trips_total";
    struct run r;

    (void)state;
    int64_t events_before = sql0(sql_platform_events);
    int64_t trips_before = platform_metric(trips_series); /* a paused process cannot answer */
    assert_int_equal(harness_server_pause(&plat), 0);
    run_start(&r, BACKLOG_ORDERS, false);
    run_finish(&r);
    assert_int_equal(atomic_load(&r.paid), BACKLOG_ORDERS);
    /* Every event on the stream before the platform goes on, so that it reads them in full. */
    if (!harness_wait_for_every(outbox_published, NULL, 30000, 20))
        fail_msg("%lld outbox rows still unpublished", (long long)sql0(sql_backlog));
    assert_int_equal(harness_server_resume(&plat), 0);
    wait_settled();
    int64_t trips = platform_metric(trips_series) - trips_before;
    printf("%d events written in %lld MariaDB round trips\n", BACKLOG_ORDERS, (long long)trips);
    assert_int_equal(sql0(sql_platform_events) - events_before, BACKLOG_ORDERS);
    assert_true(trips <= BACKLOG_TRIPS_MAX);
}

/* ---- main ---- */

int main(void)
{
    const struct CMUnitTest steady[] = {
        cmocka_unit_test(thousand_orders_reach_platform_and_ranking),
    };
    const struct CMUnitTest serve_killed[] = {
        cmocka_unit_test(serve_killed_mid_run_loses_nothing),
    };
    const struct CMUnitTest redis_lost[] = {
        cmocka_unit_test(redis_lost_mid_run_loses_nothing),
    };
    const struct CMUnitTest platform_killed[] = {
        cmocka_unit_test(platform_killed_mid_stream_loses_nothing),
    };
    const struct CMUnitTest dead_letter[] = {
        cmocka_unit_test(poison_entry_is_dead_lettered),
    };
    const struct CMUnitTest ordering[] = {
        cmocka_unit_test(paid_then_cancelled_in_order_and_net_zero),
    };
    const struct CMUnitTest copies[] = {
        cmocka_unit_test(copies_of_recorded_events_count_once),
        cmocka_unit_test(a_backlog_is_written_in_few_statements),
    };
    int failed = 0;

    if (it_main_begin() < 0)
        return 1;
    IT_RUN_GROUP(failed, "events", steady, start_steady, stop_group);
    IT_RUN_GROUP(failed, "events: a serve process killed", serve_killed, start_serve_killed,
                 stop_group);
    IT_RUN_GROUP(failed, "events: Redis lost", redis_lost, start_redis_lost, stop_group);
    IT_RUN_GROUP(failed, "events: the platform killed", platform_killed, start_platform_killed,
                 stop_group);
    IT_RUN_GROUP(failed, "events: dead letters", dead_letter, start_dead_letter, stop_group);
    IT_RUN_GROUP(failed, "events: order of one order's events", ordering, start_steady, stop_group);
    IT_RUN_GROUP(failed, "events: the platform's batches", copies, start_steady, stop_group);
    return failed ? 1 : 0;
}
