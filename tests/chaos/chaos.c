/*
 * tests/chaos/chaos.c: the load client and the judge of the fault suite (scripts/chaos.sh).
 *
 *   chaos DIR     reads DIR/users.txt ("userId token" a line), DIR/products.txt ("productId
 *                 price stock") and DIR/coupons.txt ("couponId total"), then runs the load
 *                 until SIGUSR1, resolves every open operation, and checks the history.
 *
 * The load: CHAOS_THREADS threads, each owning CHAOS_USERS_PER_THREAD users that no other
 * thread touches, so the client knows every user's state exactly. Each thread charges, takes a
 * coupon once per user, creates orders on a few hot products (sometimes with the coupon), pays
 * them, cancels some (paid or not), and reads the balance. Every write is sent again with the
 * same key and body until its answer is definite (2xx, or a 4xx that API.md makes final);
 * a 5xx, 409 IDEMPOTENCY_IN_FLIGHT, a time-out or a connection error is not, and is retried
 * with back-off. SIGUSR1 stops new operations; the ones in flight keep being retried until
 * definite (CHAOS_RESOLVE_S at most), so at the end every operation has a definite answer.
 *
 * Then, against MariaDB directly (prepared statements): every balance, every history row,
 * every order's status, every payment, the stock of every product, every coupon, and the
 * data platform's copy of every event must be exactly what the answers told the clients.
 *
 * Written to DIR: attempts.tsv (one line per HTTP attempt: start in epoch ms, latency ms,
 * operation, status, flags), checks.tsv (check, PASS or FAIL, detail), and verify.log (each
 * mismatch, named). Exit status 0 when every check passed.
 *
 * Settings (environment, read once): CHAOS_URL, CHAOS_DB_URL (mysql://user:pass@host:port/db),
 * CHAOS_RUN (a tag that makes keys unique), CHAOS_THREADS (48), CHAOS_USERS_PER_THREAD (3),
 * CHAOS_TIMEOUT_MS (20000, one attempt), CHAOS_RESOLVE_S (180), CHAOS_PLATFORM_WAIT_S (120).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <mysql.h>

#include "core/banned.h"

#define ARRAY_SIZE(a)  (sizeof(a) / sizeof((a)[0]))
#define MAX_LINES      2
#define INITIAL_CHARGE 2000000

enum op_kind { OP_CHARGE, OP_ISSUE, OP_ORDER, OP_PAY, OP_CANCEL, OP_READ, OP_KINDS };
static const char *const op_names[OP_KINDS] = {"charge", "issue", "order", "pay", "cancel", "read"};

/* What one HTTP attempt looked like, besides its status. */
enum attempt_flags {
    AT_PROBLEM = 1 << 0,     /* application/problem+json: shopd's own answer */
    AT_RETRY_AFTER = 1 << 1, /* carried Retry-After */
    AT_TIMEOUT = 1 << 2,     /* the client gave up waiting */
    AT_CONN = 1 << 3,        /* connection refused, reset or closed early */
    AT_IN_FLIGHT = 1 << 4,   /* 409 IDEMPOTENCY_IN_FLIGHT */
    AT_REPLAYED = 1 << 5,    /* Idempotent-Replayed: true */
};

struct attempt {
    int64_t start_ms;
    int32_t latency_ms;
    int16_t status;
    uint8_t op;
    uint8_t flags;
};

enum order_state { ORDER_PENDING, ORDER_PAID, ORDER_CANCELLED, ORDER_EXPIRED };

struct order_rec {
    int64_t order_id;
    int64_t total_krw;
    int64_t coupon_id;
    int64_t product_id[MAX_LINES];
    int quantity[MAX_LINES];
    int lines;
    enum order_state state;
    bool was_paid;
    bool seen; /* found in MariaDB by the judge */
};

struct user {
    int64_t user_id;
    char *token;
    int64_t expect_krw;
    int64_t *charges; /* amounts of the charges answered 200 */
    size_t ncharges, charges_cap;
    struct order_rec *orders;
    size_t norders, orders_cap;
    int64_t coupon_id;       /* the coupon this user holds, 0 for none */
    int64_t coupon_order_id; /* the live order that uses it, 0 while AVAILABLE */
    int64_t coupon_wanted;   /* the coupon this user asks for once */
    bool coupon_asked;
    int64_t db_history_rows;
};

struct product {
    int64_t product_id;
    int64_t price_krw;
    int64_t initial_stock;
};

struct coupon {
    int64_t coupon_id;
    int64_t total;
};

struct worker {
    int index;
    pthread_t thread;
    CURL *curl;
    uint64_t rnd;
    struct user *users;
    int nusers;
    int64_t seq;
    struct attempt *attempts;
    size_t nattempts, attempts_cap;
    /* the answer being read */
    char *body;
    size_t body_len, body_cap;
    unsigned flags;
    /* counters */
    int64_t unexpected, unresolved, read_mismatch, reads_checked;
    char first_unexpected[512];
};

struct reply {
    long status;
    unsigned flags;
    json_t *json; /* owned; NULL when the body is not JSON */
    const char *code;
};

struct settings {
    const char *url;
    const char *db_url;
    const char *run;
    int threads;
    int users_per_thread;
    long timeout_ms;
    int resolve_s;
    int platform_wait_s;
};

static struct settings cfg;
static struct product *products;
static size_t nproducts;
static struct coupon *coupons;
static size_t ncoupons;
static struct user *all_users;
static size_t nall_users;
static volatile sig_atomic_t stop_load;
/* Set by the main thread once it sees stop_load (up to a second after the signal): until then
 * no operation has run out of time. */
static _Atomic int64_t resolve_deadline_ms;
static pthread_mutex_t progress_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t progress_answers, progress_ok, progress_5xx, progress_conn;

static FILE *verify_log;
static FILE *checks_out;
static int checks_failed;

/* ---- small helpers ----------------------------------------------------------------------- */

static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("chaos: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);

    if (!q)
        die("out of memory");
    return q;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = xrealloc(NULL, n);

    memcpy(d, s, n);
    return d;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
}

static uint64_t next_rnd(struct worker *w)
{
    /* xorshift64*: plenty for choosing operations. */
    w->rnd ^= w->rnd >> 12;
    w->rnd ^= w->rnd << 25;
    w->rnd ^= w->rnd >> 27;
    return w->rnd * 2685821657736338717ULL;
}

static int rnd_below(struct worker *w, int n)
{
    return (int)(next_rnd(w) % (uint64_t)n);
}

static long env_long(const char *name, long def, long lo, long hi)
{
    const char *v = getenv(name);
    char *end;
    long n;

    if (!v || !*v)
        return def;
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || *end || n < lo || n > hi)
        die("%s must be a number in %ld..%ld, not '%s'", name, lo, hi, v);
    return n;
}

static const char *env_str(const char *name, const char *def)
{
    const char *v = getenv(name);

    if (v && *v)
        return v;
    if (!def)
        die("%s is not set", name);
    return def;
}

static int64_t parse_i64(const char *s, const char *what)
{
    char *end;
    long long n;

    errno = 0;
    n = strtoll(s, &end, 10);
    if (errno || end == s || (*end && *end != '\n'))
        die("%s: '%s' is not a number", what, s);
    return (int64_t)n;
}

/* Appends one line of the judge's findings to verify.log (and stderr for the first few). */
static void finding(const char *fmt, ...)
{
    static int shown;
    va_list ap;

    va_start(ap, fmt);
    vfprintf(verify_log, fmt, ap);
    fputc('\n', verify_log);
    va_end(ap);
    if (shown++ < 20) {
        va_start(ap, fmt);
        fputs("chaos: mismatch: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
}

static void check(const char *name, bool ok, const char *fmt, ...)
{
    char detail[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    fprintf(checks_out, "%s\t%s\t%s\n", name, ok ? "PASS" : "FAIL", detail);
    fprintf(stderr, "chaos: %s %s: %s\n", ok ? "PASS" : "FAIL", name, detail);
    if (!ok)
        checks_failed++;
}

/* ---- input files ------------------------------------------------------------------------- */

/* Reads DIR/NAME line by line; fn gets the whitespace-separated fields of each. */
static void read_table(const char *dir, const char *name, int nfields,
                       void (*fn)(char **fields, void *ctx), void *ctx)
{
    char path[4096], line[8192];
    FILE *f;

    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        die("path too long");
    f = fopen(path, "r");
    if (!f)
        die("cannot open %s: %s", path, strerror(errno));
    while (fgets(line, sizeof(line), f)) {
        char *fields[8], *p = line, *save = NULL;
        int n = 0;

        for (char *t = strtok_r(p, " \t\n", &save); t && n < 8; t = strtok_r(NULL, " \t\n", &save))
            fields[n++] = t;
        if (n == 0)
            continue;
        if (n < nfields)
            die("%s: a line has %d fields, wants %d", path, n, nfields);
        fn(fields, ctx);
    }
    fclose(f);
}

static void add_user(char **fields, void *ctx)
{
    struct user *u;

    all_users = xrealloc(all_users, (nall_users + 1) * sizeof(*all_users));
    u = &all_users[nall_users++];
    memset(u, 0, sizeof(*u));
    u->user_id = parse_i64(fields[0], "users.txt");
    u->token = xstrdup(fields[1]);
}

static void add_product(char **fields, void *ctx)
{
    products = xrealloc(products, (nproducts + 1) * sizeof(*products));
    products[nproducts].product_id = parse_i64(fields[0], "products.txt");
    products[nproducts].price_krw = parse_i64(fields[1], "products.txt");
    products[nproducts].initial_stock = parse_i64(fields[2], "products.txt");
    nproducts++;
}

static void add_coupon(char **fields, void *ctx)
{
    coupons = xrealloc(coupons, (ncoupons + 1) * sizeof(*coupons));
    coupons[ncoupons].coupon_id = parse_i64(fields[0], "coupons.txt");
    coupons[ncoupons].total = parse_i64(fields[1], "coupons.txt");
    ncoupons++;
}

/* ---- HTTP -------------------------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
    struct worker *w = ctx;
    size_t len = size * n;

    if (w->body_len + len + 1 > w->body_cap) {
        w->body_cap = (w->body_len + len + 1) * 2;
        w->body = xrealloc(w->body, w->body_cap);
    }
    memcpy(w->body + w->body_len, data, len);
    w->body_len += len;
    w->body[w->body_len] = '\0';
    return len;
}

/* Whether the header line [data, data + len) contains word (memmem is not POSIX). */
static bool contains(const char *data, size_t len, const char *word)
{
    size_t n = strlen(word);

    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(data + i, word, n) == 0)
            return true;
    return false;
}

static size_t on_header(char *data, size_t size, size_t n, void *ctx)
{
    struct worker *w = ctx;
    size_t len = size * n;

    if (len > 12 && strncasecmp(data, "Retry-After:", 12) == 0)
        w->flags |= AT_RETRY_AFTER;
    else if (len > 13 && strncasecmp(data, "Content-Type:", 13) == 0 &&
             contains(data, len, "problem+json"))
        w->flags |= AT_PROBLEM;
    else if (len > 20 && strncasecmp(data, "Idempotent-Replayed:", 20) == 0 &&
             contains(data, len, "true"))
        w->flags |= AT_REPLAYED;
    return len;
}

static void record(struct worker *w, enum op_kind op, int64_t start_ms, long status, unsigned flags)
{
    struct attempt *a;

    if (w->nattempts == w->attempts_cap) {
        w->attempts_cap = w->attempts_cap ? w->attempts_cap * 2 : 4096;
        w->attempts = xrealloc(w->attempts, w->attempts_cap * sizeof(*w->attempts));
    }
    a = &w->attempts[w->nattempts++];
    a->start_ms = start_ms;
    a->latency_ms = (int32_t)(now_ms() - start_ms);
    a->status = (int16_t)status;
    a->op = (uint8_t)op;
    a->flags = (uint8_t)flags;
    pthread_mutex_lock(&progress_lock);
    if (status) {
        progress_answers++;
        progress_ok += status >= 200 && status < 300;
        progress_5xx += status >= 500;
    } else {
        progress_conn++;
    }
    pthread_mutex_unlock(&progress_lock);
}

/*
 * One attempt: METHOD cfg.url+PATH as user TOKEN, with KEY (may be NULL) and BODY (may be NULL).
 * Fills r (the caller releases r->json with reply_release) and records the attempt.
 */
static void http_call(struct worker *w, enum op_kind op, const char *method, const char *path,
                      const char *token, const char *key, const char *body, struct reply *r)
{
    char url[1024], auth[2048], keyh[512];
    struct curl_slist *h = NULL;
    int64_t start = now_ms();
    CURLcode rc;

    snprintf(url, sizeof(url), "%s%s", cfg.url, path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    h = curl_slist_append(h, auth);
    if (key) {
        snprintf(keyh, sizeof(keyh), "Idempotency-Key: %s", key);
        h = curl_slist_append(h, keyh);
    }
    if (body)
        h = curl_slist_append(h, "Content-Type: application/json");
    w->body_len = 0;
    if (w->body)
        w->body[0] = '\0';
    w->flags = 0;
    curl_easy_setopt(w->curl, CURLOPT_URL, url);
    curl_easy_setopt(w->curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(w->curl, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(w->curl, CURLOPT_POSTFIELDS, body);
    } else {
        curl_easy_setopt(w->curl, CURLOPT_POSTFIELDS, NULL);
        curl_easy_setopt(w->curl, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(w->curl, CURLOPT_CUSTOMREQUEST, method);
    }
    rc = curl_easy_perform(w->curl);
    curl_slist_free_all(h);
    memset(r, 0, sizeof(*r));
    if (rc != CURLE_OK) {
        r->flags = rc == CURLE_OPERATION_TIMEDOUT ? AT_TIMEOUT : AT_CONN;
        record(w, op, start, 0, r->flags);
        return;
    }
    curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &r->status);
    r->flags = w->flags;
    if (w->body_len)
        r->json = json_loadb(w->body, w->body_len, 0, NULL);
    if (r->json && (r->flags & AT_PROBLEM))
        r->code = json_string_value(json_object_get(r->json, "code"));
    if (!r->code)
        r->code = "";
    if (r->status == 409 && strcmp(r->code, "IDEMPOTENCY_IN_FLIGHT") == 0)
        r->flags |= AT_IN_FLIGHT;
    record(w, op, start, r->status, r->flags);
}

static void reply_release(struct reply *r)
{
    json_decref(r->json);
    r->json = NULL;
}

static int64_t json_i64(const struct reply *r, const char *field)
{
    json_t *v = r->json ? json_object_get(r->json, field) : NULL;

    return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

/* A definite answer: the operation's outcome is known and a retry would only replay it. */
static bool is_definite(const struct reply *r)
{
    if (r->status == 0 || r->status >= 500 || r->status == 408 || r->status == 429)
        return false;
    return !(r->flags & AT_IN_FLIGHT);
}

static void unexpected(struct worker *w, enum op_kind op, const char *path, const struct reply *r)
{
    w->unexpected++;
    if (!w->first_unexpected[0])
        snprintf(w->first_unexpected, sizeof(w->first_unexpected), "%s %s: %ld %s %.200s",
                 op_names[op], path, r->status, r->code, w->body ? w->body : "");
}

/* Whether the time to resolve what is open after the stop has run out. */
static bool resolve_time_is_up(void)
{
    int64_t deadline = atomic_load(&resolve_deadline_ms);

    return deadline && now_ms() > deadline;
}

/*
 * Sends a write until its answer is definite: the same key and body each time, back-off
 * between attempts (50 ms doubling to 1 s). Returns false when CHAOS_RESOLVE_S after the stop
 * it is still open (counted as unresolved); r then holds no answer.
 */
static bool write_until_definite(struct worker *w, enum op_kind op, const char *method,
                                 const char *path, const char *token, const char *key,
                                 const char *body, struct reply *r)
{
    long backoff = 50;

    for (;;) {
        http_call(w, op, method, path, token, key, body, r);
        if (is_definite(r))
            return true;
        reply_release(r);
        if (stop_load && resolve_time_is_up()) {
            w->unresolved++;
            fprintf(stderr, "chaos: unresolved at the deadline: %s %s key %s\n", op_names[op], path,
                    key ? key : "-");
            return false;
        }
        sleep_ms(backoff / 2 + rnd_below(w, (int)backoff / 2 + 1));
        backoff = backoff * 2 > 1000 ? 1000 : backoff * 2;
    }
}

/* ---- operations -------------------------------------------------------------------------- */

static void make_key(struct worker *w, struct user *u, const char *what, char *out, size_t n)
{
    snprintf(out, n, "%s-%" PRId64 "-%s-%d-%" PRId64, cfg.run, u->user_id, what, w->index,
             ++w->seq);
}

static void op_charge(struct worker *w, struct user *u, int64_t amount)
{
    char path[128], key[160], body[64];
    struct reply r;

    snprintf(path, sizeof(path), "/api/users/%" PRId64 "/balance/charge", u->user_id);
    snprintf(body, sizeof(body), "{\"amount\":%" PRId64 "}", amount);
    make_key(w, u, "charge", key, sizeof(key));
    if (!write_until_definite(w, OP_CHARGE, "POST", path, u->token, key, body, &r))
        return;
    if (r.status == 200 && json_i64(&r, "chargedAmount") == amount) {
        if (u->ncharges == u->charges_cap) {
            u->charges_cap = u->charges_cap ? u->charges_cap * 2 : 16;
            u->charges = xrealloc(u->charges, u->charges_cap * sizeof(*u->charges));
        }
        u->charges[u->ncharges++] = amount;
        u->expect_krw += amount;
    } else if (!(r.status == 409 && strcmp(r.code, "BALANCE_LIMIT") == 0)) {
        unexpected(w, OP_CHARGE, path, &r);
    }
    reply_release(&r);
}

static void op_issue(struct worker *w, struct user *u)
{
    char path[128], body[64];
    struct reply r;
    bool retried = false;
    long backoff = 50;

    /* No key: a retry after an unknown outcome may find the coupon already issued to us. */
    u->coupon_asked = true;
    snprintf(path, sizeof(path), "/api/coupons/%" PRId64 "/issue", u->coupon_wanted);
    snprintf(body, sizeof(body), "{\"userId\":%" PRId64 "}", u->user_id);
    for (;;) {
        http_call(w, OP_ISSUE, "POST", path, u->token, NULL, body, &r);
        if (is_definite(&r))
            break;
        reply_release(&r);
        retried = true;
        if (stop_load && resolve_time_is_up()) {
            w->unresolved++;
            return;
        }
        sleep_ms(backoff);
        backoff = backoff * 2 > 1000 ? 1000 : backoff * 2;
    }
    if (r.status == 201 || (retried && r.status == 409 && !strcmp(r.code, "COUPON_ALREADY_ISSUED")))
        u->coupon_id = u->coupon_wanted;
    else if (!(r.status == 409 && !strcmp(r.code, "COUPON_SOLD_OUT")))
        unexpected(w, OP_ISSUE, path, &r);
    reply_release(&r);
}

static struct order_rec *new_order(struct user *u)
{
    if (u->norders == u->orders_cap) {
        u->orders_cap = u->orders_cap ? u->orders_cap * 2 : 16;
        u->orders = xrealloc(u->orders, u->orders_cap * sizeof(*u->orders));
    }
    memset(&u->orders[u->norders], 0, sizeof(u->orders[0]));
    return &u->orders[u->norders];
}

/* Creates an order of one or two hot products; the new record, or NULL when refused. */
static struct order_rec *op_order(struct worker *w, struct user *u)
{
    char body[512], key[160], coupon[48] = "";
    struct order_rec *o = new_order(u);
    struct reply r;
    int a = rnd_below(w, (int)nproducts), b = rnd_below(w, (int)nproducts);
    bool with_coupon = u->coupon_id && !u->coupon_order_id && rnd_below(w, 3) == 0;

    o->lines = a == b ? 1 : 2;
    o->product_id[0] = products[a < b || o->lines == 1 ? a : b].product_id;
    o->product_id[1] = products[a < b ? b : a].product_id;
    for (int i = 0; i < o->lines; i++)
        o->quantity[i] = 1 + rnd_below(w, 3);
    if (with_coupon)
        snprintf(coupon, sizeof(coupon), ",\"couponId\":%" PRId64, u->coupon_id);
    if (o->lines == 1)
        snprintf(body, sizeof(body),
                 "{\"userId\":%" PRId64 ",\"items\":[{\"productId\":%" PRId64
                 ",\"quantity\":%d}]%s}",
                 u->user_id, o->product_id[0], o->quantity[0], coupon);
    else
        snprintf(body, sizeof(body),
                 "{\"userId\":%" PRId64 ",\"items\":[{\"productId\":%" PRId64
                 ",\"quantity\":%d},{\"productId\":%" PRId64 ",\"quantity\":%d}]%s}",
                 u->user_id, o->product_id[0], o->quantity[0], o->product_id[1], o->quantity[1],
                 coupon);
    make_key(w, u, "order", key, sizeof(key));
    if (!write_until_definite(w, OP_ORDER, "POST", "/api/orders", u->token, key, body, &r))
        return NULL;
    if (r.status == 201 && json_i64(&r, "orderId") > 0) {
        o->order_id = json_i64(&r, "orderId");
        o->total_krw = json_i64(&r, "totalAmount");
        o->coupon_id = with_coupon ? u->coupon_id : 0;
        o->state = ORDER_PENDING;
        if (with_coupon)
            u->coupon_order_id = o->order_id;
        u->norders++;
        reply_release(&r);
        return o;
    }
    if (!(r.status == 409 && strcmp(r.code, "OUT_OF_STOCK") == 0))
        unexpected(w, OP_ORDER, "/api/orders", &r);
    reply_release(&r);
    return NULL;
}

static void op_pay(struct worker *w, struct user *u, struct order_rec *o)
{
    char path[128], key[160], body[64];
    struct reply r;

    snprintf(path, sizeof(path), "/api/orders/%" PRId64 "/payment", o->order_id);
    snprintf(body, sizeof(body), "{\"userId\":%" PRId64 "}", u->user_id);
    make_key(w, u, "pay", key, sizeof(key));
    if (!write_until_definite(w, OP_PAY, "POST", path, u->token, key, body, &r))
        return;
    if (r.status == 200 && json_i64(&r, "paidAmount") == o->total_krw) {
        o->state = ORDER_PAID;
        o->was_paid = true;
        u->expect_krw -= o->total_krw;
    } else if (!(r.status == 409 && strcmp(r.code, "INSUFFICIENT_BALANCE") == 0 &&
                 u->expect_krw < o->total_krw)) {
        unexpected(w, OP_PAY, path, &r);
    }
    reply_release(&r);
}

static void op_cancel(struct worker *w, struct user *u, struct order_rec *o)
{
    char path[128], key[160], body[64];
    struct reply r;

    snprintf(path, sizeof(path), "/api/orders/%" PRId64 "/cancel", o->order_id);
    snprintf(body, sizeof(body), "{\"userId\":%" PRId64 "}", u->user_id);
    make_key(w, u, "cancel", key, sizeof(key));
    if (!write_until_definite(w, OP_CANCEL, "POST", path, u->token, key, body, &r))
        return;
    if (r.status == 200) {
        if (o->state == ORDER_PAID)
            u->expect_krw += o->total_krw;
        o->state = ORDER_CANCELLED;
        if (o->coupon_id)
            u->coupon_order_id = 0;
    } else {
        unexpected(w, OP_CANCEL, path, &r);
    }
    reply_release(&r);
}

/* A read of the balance: with no operation of this user open, it must be exactly known. */
static void op_read(struct worker *w, struct user *u)
{
    char path[128];
    struct reply r;

    snprintf(path, sizeof(path), "/api/users/%" PRId64 "/balance", u->user_id);
    http_call(w, OP_READ, "GET", path, u->token, NULL, NULL, &r);
    if (r.status == 200) {
        w->reads_checked++;
        if (json_i64(&r, "balance") != u->expect_krw) {
            w->read_mismatch++;
            fprintf(stderr, "chaos: user %" PRId64 " read balance %" PRId64 ", told %" PRId64 "\n",
                    u->user_id, json_i64(&r, "balance"), u->expect_krw);
        }
    } else if (r.status && r.status < 500) {
        unexpected(w, OP_READ, path, &r);
    }
    reply_release(&r);
}

static void order_flow(struct worker *w, struct user *u)
{
    struct order_rec *o = op_order(w, u);
    int r = rnd_below(w, 100);

    if (!o || stop_load)
        return;
    if (r < 85) {
        op_pay(w, u, o);
        if (o->state == ORDER_PAID && !stop_load && rnd_below(w, 100) < 15)
            op_cancel(w, u, o);
    } else if (r < 93) {
        op_cancel(w, u, o);
    } /* else it stays PENDING (the TTL outlasts the run) */
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    for (int i = 0; i < w->nusers && !stop_load; i++)
        op_charge(w, &w->users[i], INITIAL_CHARGE);
    while (!stop_load) {
        struct user *u = &w->users[rnd_below(w, w->nusers)];
        int r = rnd_below(w, 100);

        if (ncoupons && !u->coupon_asked)
            op_issue(w, u);
        else if (r < 8)
            op_read(w, u);
        else if (r < 30)
            op_charge(w, u, 1000 + rnd_below(w, 20000));
        else
            order_flow(w, u);
    }
    return NULL;
}

/* ---- the judge: MariaDB ------------------------------------------------------------------ */

struct db_url {
    char user[64], pass[128], host[128], name[128];
    unsigned port;
};

static void parse_db_url(const char *url, struct db_url *d)
{
    /* mysql://user:pass@host:port/db */
    if (sscanf(url, "mysql://%63[^:]:%127[^@]@%127[^:]:%u/%127s", d->user, d->pass, d->host,
               &d->port, d->name) != 5)
        die("CHAOS_DB_URL '%s' is not mysql://user:pass@host:port/db", url);
}

static MYSQL *db_open(void)
{
    struct db_url d;
    MYSQL *db = mysql_init(NULL);
    unsigned timeout = 10;

    parse_db_url(cfg.db_url, &d);
    mysql_options(db, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    if (!mysql_real_connect(db, d.host, d.user, d.pass, d.name, d.port, NULL, 0))
        die("cannot connect to %s: %s", cfg.db_url, mysql_error(db));
    return db;
}

typedef void row_fn(const int64_t *cols, void *ctx);

/*
 * Runs SQL, a prepared statement with NPARAMS BIGINT parameters whose every result column is
 * an integer (NCOLS of them, at most 8), and calls fn with each row. Dies on a database error:
 * the judge cannot judge without its data.
 */
static void db_rows(MYSQL *db, const char *sql, const int64_t *params, int nparams, int ncols,
                    row_fn *fn, void *ctx)
{
    MYSQL_STMT *st = mysql_stmt_init(db);
    MYSQL_BIND pb[8], rb[8];
    int64_t pv[8], cols[8];
    my_bool nul[8];

    if (nparams > 8 || ncols > 8)
        die("db_rows: too many columns");
    if (mysql_stmt_prepare(st, sql, strlen(sql)))
        die("prepare '%s': %s", sql, mysql_stmt_error(st));
    memset(pb, 0, sizeof(pb));
    memset(rb, 0, sizeof(rb));
    for (int i = 0; i < nparams; i++) {
        pv[i] = params[i];
        pb[i].buffer_type = MYSQL_TYPE_LONGLONG;
        pb[i].buffer = &pv[i];
    }
    for (int i = 0; i < ncols; i++) {
        rb[i].buffer_type = MYSQL_TYPE_LONGLONG;
        rb[i].buffer = &cols[i];
        rb[i].is_null = &nul[i];
    }
    if ((nparams && mysql_stmt_bind_param(st, pb)) || mysql_stmt_execute(st) ||
        mysql_stmt_bind_result(st, rb) || mysql_stmt_store_result(st))
        die("run '%s': %s", sql, mysql_stmt_error(st));
    while (mysql_stmt_fetch(st) == 0) {
        for (int i = 0; i < ncols; i++)
            if (nul[i])
                cols[i] = 0;
        fn(cols, ctx);
    }
    mysql_stmt_close(st);
}

static void one_value(const int64_t *cols, void *ctx)
{
    *(int64_t *)ctx = cols[0];
}

static int64_t db_value(MYSQL *db, const char *sql)
{
    int64_t v = -1;

    db_rows(db, sql, NULL, 0, 1, one_value, &v);
    return v;
}

static int cmp_user(const void *a, const void *b)
{
    int64_t x = ((const struct user *)a)->user_id, y = ((const struct user *)b)->user_id;

    return (x > y) - (x < y);
}

static struct user *find_user(int64_t user_id)
{
    struct user key = {.user_id = user_id};

    return bsearch(&key, all_users, nall_users, sizeof(*all_users), cmp_user);
}

static struct order_rec *find_order(struct user *u, int64_t order_id)
{
    for (size_t i = 0; i < u->norders; i++)
        if (u->orders[i].order_id == order_id)
            return &u->orders[i];
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

struct tally {
    int64_t rows, bad;
};

static void balance_row(const int64_t *c, void *ctx)
{
    struct tally *t = ctx;
    struct user *u = find_user(c[0]);

    t->rows++;
    if (!u)
        return;
    if (c[1] != u->expect_krw) {
        t->bad++;
        finding("user %" PRId64 ": balance %" PRId64 " in MariaDB, %" PRId64
                " by what the clients were told",
                c[0], c[1], u->expect_krw);
    }
}

/* History rows, grouped per user: CHARGE amounts collected, PAYMENT/REFUND matched to orders. */
struct history_ctx {
    int64_t bad, rows;
    int64_t **charges; /* per user index */
    size_t *ncharges;
};

static void history_row(const int64_t *c, void *ctx)
{
    struct history_ctx *h = ctx;
    struct user *u = find_user(c[0]);
    struct order_rec *o;
    size_t ui;

    h->rows++;
    if (!u)
        return;
    ui = (size_t)(u - all_users);
    u->db_history_rows++;
    if (c[1] == 0) { /* CHARGE */
        h->charges[ui] = xrealloc(h->charges[ui], (h->ncharges[ui] + 1) * sizeof(int64_t));
        h->charges[ui][h->ncharges[ui]++] = c[2];
        return;
    }
    o = find_order(u, c[3]);
    if (!o) {
        h->bad++;
        finding("user %" PRId64 ": a %s of %" PRId64 " for order %" PRId64
                " that no client was told exists",
                c[0], c[1] == 1 ? "PAYMENT" : "REFUND", c[2], c[3]);
    } else if (c[1] == 1 && (!o->was_paid || c[2] != -o->total_krw)) {
        h->bad++;
        finding("order %" PRId64 ": PAYMENT row of %" PRId64 ", the client was told %s", c[3], c[2],
                o->was_paid ? "another amount" : "it was not paid");
    } else if (c[1] == 2 && (!o->was_paid || o->state != ORDER_CANCELLED || c[2] != o->total_krw)) {
        h->bad++;
        finding("order %" PRId64 ": REFUND row of %" PRId64 " the clients were not told of", c[3],
                c[2]);
    }
}

static void check_history(MYSQL *db)
{
    struct history_ctx h = {0};
    int64_t expected_rows = 0, bad_charges = 0;

    h.charges = xrealloc(NULL, nall_users * sizeof(*h.charges));
    h.ncharges = xrealloc(NULL, nall_users * sizeof(*h.ncharges));
    memset(h.charges, 0, nall_users * sizeof(*h.charges));
    memset(h.ncharges, 0, nall_users * sizeof(*h.ncharges));
    db_rows(db,
            "SELECT user_id, CASE type WHEN 'CHARGE' THEN 0 WHEN 'PAYMENT' THEN 1 ELSE 2 END, "
            "amount_krw, COALESCE(order_id, 0) FROM balance_history ORDER BY id",
            NULL, 0, 4, history_row, &h);
    for (size_t i = 0; i < nall_users; i++) {
        struct user *u = &all_users[i];
        int64_t want = (int64_t)u->ncharges;

        for (size_t j = 0; j < u->norders; j++)
            want += u->orders[j].was_paid +
                    (u->orders[j].was_paid && u->orders[j].state == ORDER_CANCELLED);
        expected_rows += want;
        if (want != u->db_history_rows)
            finding("user %" PRId64 ": %" PRId64 " history rows, %" PRId64
                    " effects told to the client",
                    u->user_id, u->db_history_rows, want);
        qsort(u->charges, u->ncharges, sizeof(int64_t), cmp_i64);
        if (h.ncharges[i])
            qsort(h.charges[i], h.ncharges[i], sizeof(int64_t), cmp_i64);
        if (h.ncharges[i] != u->ncharges ||
            (u->ncharges && memcmp(h.charges[i], u->charges, u->ncharges * sizeof(int64_t)))) {
            bad_charges++;
            finding("user %" PRId64 ": %zu CHARGE rows in the history, %zu charges answered 200 "
                    "(or their amounts differ)",
                    u->user_id, h.ncharges[i], u->ncharges);
        }
        free(h.charges[i]);
    }
    free(h.charges);
    free(h.ncharges);
    check("history-exact", h.bad == 0 && bad_charges == 0 && h.rows == expected_rows,
          "%" PRId64 " history rows, %" PRId64 " expected from the answers; %" PRId64
          " users with other charges, %" PRId64 " payment/refund rows wrong",
          h.rows, expected_rows, bad_charges, h.bad);
}

struct order_ctx {
    int64_t rows, bad, unknown;
};

static void order_row(const int64_t *c, void *ctx)
{
    struct order_ctx *oc = ctx;
    struct user *u = find_user(c[1]);
    struct order_rec *o = u ? find_order(u, c[0]) : NULL;

    oc->rows++;
    if (!o) {
        oc->unknown++;
        finding("order %" PRId64 " of user %" PRId64 " exists; no client was told of it (a "
                "second effect of a key, or an effect of a failed request)",
                c[0], c[1]);
        return;
    }
    o->seen = true;
    if ((int64_t)o->state != c[2] || o->total_krw != c[3] || o->coupon_id != c[4]) {
        oc->bad++;
        finding("order %" PRId64 ": status %" PRId64 " total %" PRId64 " coupon %" PRId64
                " in MariaDB, the client was told status %d total %" PRId64 " coupon %" PRId64,
                c[0], c[2], c[3], c[4], (int)o->state, o->total_krw, o->coupon_id);
    }
}

static void check_orders(MYSQL *db)
{
    struct order_ctx oc = {0};
    int64_t told = 0, missing = 0;

    db_rows(db,
            "SELECT id, user_id, CASE status WHEN 'PENDING' THEN 0 WHEN 'PAID' THEN 1 "
            "WHEN 'CANCELLED' THEN 2 ELSE 3 END, total_krw, COALESCE(coupon_id, 0) FROM orders",
            NULL, 0, 5, order_row, &oc);
    for (size_t i = 0; i < nall_users; i++)
        for (size_t j = 0; j < all_users[i].norders; j++) {
            told++;
            if (!all_users[i].orders[j].seen) {
                missing++;
                finding("order %" PRId64 " was answered 201 but is not in MariaDB",
                        all_users[i].orders[j].order_id);
            }
        }
    check("orders-exact", oc.bad == 0 && oc.unknown == 0 && missing == 0,
          "%" PRId64 " orders in MariaDB, %" PRId64 " answered 201; %" PRId64 " unknown, %" PRId64
          " missing, %" PRId64 " with another status, total or coupon",
          oc.rows, told, oc.unknown, missing, oc.bad);
}

struct payment_ctx {
    int64_t rows, bad;
};

static void payment_row(const int64_t *c, void *ctx)
{
    struct payment_ctx *pc = ctx;
    struct user *u = find_user(c[1]);
    struct order_rec *o = u ? find_order(u, c[0]) : NULL;
    bool refunded = o && o->state == ORDER_CANCELLED;

    pc->rows++;
    if (!o || !o->was_paid || c[2] != o->total_krw || c[3] != (refunded ? 1 : 0)) {
        pc->bad++;
        finding("payment of order %" PRId64 " (%" PRId64 " KRW, %s) does not match the answers",
                c[0], c[2], c[3] ? "REFUNDED" : "PAID");
    }
}

static void check_payments(MYSQL *db)
{
    struct payment_ctx pc = {0};
    int64_t paid = 0;

    db_rows(db,
            "SELECT order_id, user_id, amount_krw, CASE status WHEN 'PAID' THEN 0 ELSE 1 END "
            "FROM payments",
            NULL, 0, 4, payment_row, &pc);
    for (size_t i = 0; i < nall_users; i++)
        for (size_t j = 0; j < all_users[i].norders; j++)
            paid += all_users[i].orders[j].was_paid;
    check("payments-once", pc.bad == 0 && pc.rows == paid,
          "%" PRId64 " payments in MariaDB, %" PRId64 " orders answered paid; %" PRId64 " wrong",
          pc.rows, paid, pc.bad);
}

static void product_row(const int64_t *c, void *ctx)
{
    int64_t *bad = ctx;
    int64_t sold = 0, reserved = 0;
    const struct product *p = NULL;

    for (size_t i = 0; i < nproducts; i++)
        if (products[i].product_id == c[0])
            p = &products[i];
    if (!p)
        return;
    for (size_t i = 0; i < nall_users; i++)
        for (size_t j = 0; j < all_users[i].norders; j++) {
            const struct order_rec *o = &all_users[i].orders[j];

            for (int k = 0; k < o->lines; k++) {
                if (o->product_id[k] != p->product_id)
                    continue;
                if (o->state == ORDER_PAID)
                    sold += o->quantity[k];
                else if (o->state == ORDER_PENDING)
                    reserved += o->quantity[k];
            }
        }
    if (c[4] != p->initial_stock || c[1] + c[2] + c[3] != p->initial_stock || c[2] != reserved ||
        c[3] != sold) {
        (*bad)++;
        finding("product %" PRId64 ": stock %" PRId64 " reserved %" PRId64 " sold %" PRId64
                " added %" PRId64 "; from the answers: initial %" PRId64 ", reserved %" PRId64
                ", sold %" PRId64,
                c[0], c[1], c[2], c[3], c[4], p->initial_stock, reserved, sold);
    }
}

static void check_stock(MYSQL *db)
{
    int64_t bad = 0;

    db_rows(db, "SELECT id, stock, reserved, sold, stock_added FROM products", NULL, 0, 5,
            product_row, &bad);
    check("stock-conserved", bad == 0,
          "%zu products: initial = stock + reserved + sold, reserved and sold = the orders "
          "answered; %" PRId64 " differ",
          nproducts, bad);
}

struct coupon_ctx {
    int64_t rows, bad;
};

static void user_coupon_row(const int64_t *c, void *ctx)
{
    struct coupon_ctx *cc = ctx;
    struct user *u = find_user(c[1]);
    bool used = c[2] == 1;

    cc->rows++;
    if (!u || u->coupon_id != c[0] || used != (u->coupon_order_id != 0) ||
        (used && c[3] != u->coupon_order_id)) {
        cc->bad++;
        finding("user %" PRId64 " holds coupon %" PRId64 " (%s, order %" PRId64
                "); the client was told coupon %" PRId64 " used by order %" PRId64,
                c[1], c[0], used ? "USED" : "AVAILABLE", c[3], u ? u->coupon_id : 0,
                u ? u->coupon_order_id : 0);
    }
}

static void coupon_row(const int64_t *c, void *ctx)
{
    int64_t *bad = ctx;
    int64_t holders = 0;

    for (size_t i = 0; i < nall_users; i++)
        holders += all_users[i].coupon_id == c[0];
    if (c[2] > c[1] || c[2] != holders) {
        (*bad)++;
        finding("coupon %" PRId64 ": %" PRId64 " issued of %" PRId64 ", %" PRId64
                " users were told they hold it",
                c[0], c[2], c[1], holders);
    }
}

static void check_coupons(MYSQL *db)
{
    struct coupon_ctx cc = {0};
    int64_t bad = 0, held = 0;

    db_rows(db,
            "SELECT coupon_id, user_id, CASE status WHEN 'USED' THEN 1 ELSE 0 END, "
            "COALESCE(order_id, 0) FROM user_coupons",
            NULL, 0, 4, user_coupon_row, &cc);
    db_rows(db, "SELECT id, total_quantity, issued_quantity FROM coupons", NULL, 0, 3, coupon_row,
            &bad);
    for (size_t i = 0; i < nall_users; i++)
        held += all_users[i].coupon_id != 0;
    check("coupons-exact", cc.bad == 0 && bad == 0 && cc.rows == held,
          "%" PRId64 " user coupons in MariaDB, %" PRId64 " answered issued; never more than "
          "the quantity: %s",
          cc.rows, held, bad ? "FAILED" : "yes");
}

/* Every outbox event at the platform, each once: waited for (the relay and consumer lag). */
static void check_platform(MYSQL *db)
{
    static const char missing_sql[] =
        "SELECT COUNT(*) FROM outbox x WHERE NOT EXISTS "
        "(SELECT 1 FROM platform_events p WHERE p.event_id = x.event_id)";
    int64_t deadline = now_ms() + (int64_t)cfg.platform_wait_s * 1000, missing, paid_missing;
    int64_t started = now_ms();

    while ((missing = db_value(db, missing_sql)) > 0 && now_ms() < deadline)
        sleep_ms(200);
    paid_missing = db_value(db, "SELECT COUNT(*) FROM orders o WHERE o.paid_at IS NOT NULL AND "
                                "NOT EXISTS (SELECT 1 FROM platform_events p WHERE "
                                "p.order_id = o.id AND p.event_type = 'order.paid')");
    check("platform-every-event", missing == 0 && paid_missing == 0,
          "%" PRId64 " outbox events, %" PRId64 " platform events; %" PRId64 " events and %" PRId64
          " paid orders missing after %.1f s",
          db_value(db, "SELECT COUNT(*) FROM outbox"),
          db_value(db, "SELECT COUNT(*) FROM platform_events"), missing, paid_missing,
          (double)(now_ms() - started) / 1000.0);
    check("platform-no-extra",
          db_value(db, "SELECT COUNT(*) FROM platform_events p WHERE NOT EXISTS "
                       "(SELECT 1 FROM outbox x WHERE x.event_id = p.event_id)") == 0,
          "no platform event without its outbox row");
}

static void judge(struct worker *ws)
{
    MYSQL *db = db_open();
    struct tally bal = {0};
    int64_t unexpected_n = 0, unresolved = 0, reads = 0, read_bad = 0;
    const char *sample = "";

    for (int i = 0; i < cfg.threads; i++) {
        unexpected_n += ws[i].unexpected;
        unresolved += ws[i].unresolved;
        reads += ws[i].reads_checked;
        read_bad += ws[i].read_mismatch;
        if (ws[i].first_unexpected[0] && !*sample)
            sample = ws[i].first_unexpected;
    }
    check("answers-in-contract", unexpected_n == 0,
          "%" PRId64 " definite answers outside the contract%s%s", unexpected_n,
          *sample ? "; first: " : "", sample);
    check("every-op-resolved", unresolved == 0,
          "%" PRId64 " operations still without a definite answer %d s after the load stopped",
          unresolved, cfg.resolve_s);
    check("reads-exact", read_bad == 0,
          "%" PRId64 " balance reads, %" PRId64 " differ from what the client was told", reads,
          read_bad);
    qsort(all_users, nall_users, sizeof(*all_users), cmp_user);
    db_rows(db, "SELECT id, balance_krw FROM users", NULL, 0, 2, balance_row, &bal);
    check("balances-exact", bal.bad == 0 && bal.rows == (int64_t)nall_users,
          "%" PRId64 " users, %" PRId64 " balances differ from initial + charges - payments + "
          "refunds as answered",
          bal.rows, bal.bad);
    check_history(db);
    check_orders(db);
    check_payments(db);
    check_stock(db);
    check_coupons(db);
    check_platform(db);
    mysql_close(db);
}

/* ---- main -------------------------------------------------------------------------------- */

static void on_stop(int sig)
{
    stop_load = 1;
}

static void write_attempts(const char *dir, struct worker *ws)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/attempts.tsv", dir);
    f = fopen(path, "w");
    if (!f)
        die("cannot write %s", path);
    fputs("start_ms\tlatency_ms\top\tstatus\tflags\n", f);
    for (int i = 0; i < cfg.threads; i++)
        for (size_t j = 0; j < ws[i].nattempts; j++) {
            const struct attempt *a = &ws[i].attempts[j];

            fprintf(f, "%" PRId64 "\t%d\t%s\t%d\t%u\n", a->start_ms, a->latency_ms, op_names[a->op],
                    a->status, a->flags);
        }
    fclose(f);
}

static FILE *open_out(const char *dir, const char *name)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    if (!f)
        die("cannot write %s", path);
    return f;
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    struct worker *ws;
    const char *dir;
    int64_t started;

    if (argc != 2)
        die("usage: chaos DIR");
    dir = argv[1];
    cfg.url = env_str("CHAOS_URL", NULL);
    cfg.db_url = env_str("CHAOS_DB_URL", NULL);
    cfg.run = env_str("CHAOS_RUN", "chaos");
    cfg.threads = (int)env_long("CHAOS_THREADS", 48, 1, 1024);
    cfg.users_per_thread = (int)env_long("CHAOS_USERS_PER_THREAD", 3, 1, 1000);
    cfg.timeout_ms = env_long("CHAOS_TIMEOUT_MS", 20000, 100, 600000);
    cfg.resolve_s = (int)env_long("CHAOS_RESOLVE_S", 180, 1, 3600);
    cfg.platform_wait_s = (int)env_long("CHAOS_PLATFORM_WAIT_S", 120, 1, 3600);
    read_table(dir, "users.txt", 2, add_user, NULL);
    read_table(dir, "products.txt", 3, add_product, NULL);
    read_table(dir, "coupons.txt", 2, add_coupon, NULL);
    if (nall_users < (size_t)cfg.threads * (size_t)cfg.users_per_thread || !nproducts)
        die("need %d users and a product, have %zu and %zu", cfg.threads * cfg.users_per_thread,
            nall_users, nproducts);
    nall_users = (size_t)cfg.threads * (size_t)cfg.users_per_thread;
    for (size_t i = 0; i < nall_users && ncoupons; i++)
        all_users[i].coupon_wanted = coupons[i % ncoupons].coupon_id;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    curl_global_init(CURL_GLOBAL_ALL);
    ws = xrealloc(NULL, (size_t)cfg.threads * sizeof(*ws));
    memset(ws, 0, (size_t)cfg.threads * sizeof(*ws));
    started = now_ms();
    for (int i = 0; i < cfg.threads; i++) {
        struct worker *w = &ws[i];

        w->index = i;
        w->rnd = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)(i + 1) * 0x100000001B3ULL) ^ (uint64_t)started;
        w->users = &all_users[(size_t)i * (size_t)cfg.users_per_thread];
        w->nusers = cfg.users_per_thread;
        w->curl = curl_easy_init();
        curl_easy_setopt(w->curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(w->curl, CURLOPT_TIMEOUT_MS, cfg.timeout_ms);
        curl_easy_setopt(w->curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
        curl_easy_setopt(w->curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(w->curl, CURLOPT_WRITEDATA, w);
        curl_easy_setopt(w->curl, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(w->curl, CURLOPT_HEADERDATA, w);
        if (pthread_create(&w->thread, NULL, worker_main, w))
            die("pthread_create failed");
    }
    fprintf(stderr, "chaos: %d threads, %zu users, %zu products, %zu coupons against %s\n",
            cfg.threads, nall_users, nproducts, ncoupons, cfg.url);
    while (!stop_load) {
        sleep_ms(1000);
        if ((now_ms() - started) / 1000 % 5 == 0) {
            pthread_mutex_lock(&progress_lock);
            fprintf(stderr,
                    "chaos: t=%" PRId64 "s answers %" PRId64 " (2xx %" PRId64 ", 5xx %" PRId64
                    "), connection errors %" PRId64 "\n",
                    (now_ms() - started) / 1000, progress_answers, progress_ok, progress_5xx,
                    progress_conn);
            pthread_mutex_unlock(&progress_lock);
        }
    }
    int64_t stopped_ms = now_ms();
    atomic_store(&resolve_deadline_ms, stopped_ms + (int64_t)cfg.resolve_s * 1000);
    fprintf(stderr, "chaos: load stopped; resolving the operations in flight\n");
    for (int i = 0; i < cfg.threads; i++) {
        pthread_join(ws[i].thread, NULL);
        curl_easy_cleanup(ws[i].curl);
        free(ws[i].body);
    }
    fprintf(stderr, "chaos: every client done in %.1f s after the stop\n",
            (double)(now_ms() - stopped_ms) / 1000.0);
    write_attempts(dir, ws);
    verify_log = open_out(dir, "verify.log");
    checks_out = open_out(dir, "checks.tsv");
    judge(ws);
    fclose(verify_log);
    fclose(checks_out);
    curl_global_cleanup();
    return checks_failed ? 1 : 0;
}
