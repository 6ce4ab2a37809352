#include "service/order_svc.h"

#include <stdio.h>
#include <string.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/json.h"
#include "core/sha256.h"
#include "domain/balance.h"
#include "domain/coupon.h"
#include "domain/order.h"
#include "domain/product.h"
#include "repo/db.h"
#include "repo/idem_repo.h"
#include "repo/order_repo.h"
#include "repo/user_repo.h"
#include "service/idem_svc.h"
#include "service/order_batch.h"
#include "service/outbox_relay.h"
#include "service/pay_batch.h"
#include "service/price_memo.h"
#include "service/product_svc.h"
#include "service/svc.h"
#include "service/write.h"

#include "core/banned.h"

#define EXPIRE_BATCH 50

/* The cached copies of the order's products, in one Redis round trip. */
static void invalidate_products(struct svc *s, const struct order *o)
{
    struct arena a = ARENA_INIT;
    int64_t *ids = arena_alloc(&a, (o->count ? o->count : 1) * sizeof(*ids));

    for (size_t i = 0; i < o->count; i++)
        ids[i] = o->items[i].product_id;
    product_svc_invalidate_many(s, o->count, ids);
    arena_release(&a);
}

/* Wakes this process's relay: the event goes out now rather than at its next poll. */
static void event_committed(struct svc *s)
{
    if (s->relay)
        outbox_relay_nudge(s->relay);
}

static const char *render_order(const void *result, struct arena *a)
{
    struct json_w w;

    json_w_init(&w, a);
    order_write_json(&w, result);
    return json_w_text(&w, NULL);
}

/* ---- create ---- */

/* The lock name of an idempotency key: its scope, with the key hashed to a fixed length. */
static void create_lock_name(const struct write_req *w, char *buf, size_t size)
{
    unsigned char h[SHA256_LEN];

    sha256(w->idem->key, strlen(w->idem->key), h);
    snprintf(buf, size, "order-key:%lld:%02x%02x%02x%02x%02x%02x%02x%02x",
             (long long)w->idem->user_id, h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]);
}

/* The order's amounts, from its lines as reserved and the coupon it holds. */
static int price(struct order *o, const struct order_coupon *held, struct err *e)
{
    struct coupon cp = {0};

    for (size_t i = 0; i < o->count; i++) /* ≤ 1e9 × 1000 */
        o->items[i].subtotal_krw = o->items[i].unit_price_krw * o->items[i].quantity;
    order_total(o, 0);
    if (!held->user_coupon_id)
        return 0;
    if (coupon_type_parse(held->type, &cp.type))
        return err_set(e, ERR_INTERNAL, "coupon %lld has an unknown type", (long long)o->coupon_id);
    cp.value = held->value;
    o->user_coupon_id = held->user_coupon_id;
    order_total(o, coupon_discount(&cp, o->subtotal_krw));
    return 0;
}

/* The order opened (its lines read, its coupon locked, its row's id taken) and priced here: the
 * coupon's discount is domain logic, kept in C. Its stock is taken by create_commit. */
static int create_start(struct db_conn *c, const struct write_req *w, void *result, struct arena *a,
                        enum idem_start *how, int64_t *key_row_id, struct err *e)
{
    const struct order_request *rq = w->args;
    struct idem_row_key key = idem_svc_row_key(w->idem);
    struct order_coupon held = {0};
    struct order *o = result;

    *o = (struct order){
        .user_id = rq->user_id,
        .coupon_id = rq->coupon_id,
        .count = rq->count,
        .status = ORDER_PENDING,
        .created_us = w->now_us,
        .expires_us = w->now_us + w->svc->cfg->order_ttl_s * 1000000,
    };
    o->items = arena_calloc(a, o->count, sizeof(*o->items));
    memcpy(o->items, rq->items, o->count * sizeof(*o->items));
    if (order_repo_open(c, &key, w->idem->fingerprint, w->now_us, o, a, how, key_row_id, &held, e))
        return -1;
    if (*how != IDEM_START_OPEN)
        return 0;
    return price(o, &held, e);
}

/* The stock taken, the order written and its response stored, in the one call that holds the
 * products' rows. */
static int create_commit(struct db_conn *c, const struct write_req *w, const void *result,
                         int64_t key_row_id, const struct idem_response *response, struct arena *a,
                         enum idem_start *how, struct err *e)
{
    (void)w;
    return order_repo_commit(c, key_row_id, result, response->status, response->body, a, how, e);
}

static void create_committed(struct svc *s, const void *result)
{
    invalidate_products(s, result);
}

/* The names and prices of o's lines: as this instance remembers them, or else read (from the
 * product cache, or MariaDB on a miss) and remembered. */
static int read_prices(struct svc *s, struct order *o, struct arena *a, struct err *e)
{
    if (price_memo_get(s->prices, o->items, o->count, a))
        return 0;
    int64_t *ids = arena_calloc(a, o->count, sizeof(*ids));
    struct product *products = arena_calloc(a, o->count, sizeof(*products));
    for (size_t i = 0; i < o->count; i++)
        ids[i] = o->items[i].product_id;
    if (product_svc_get_many(s, ids, o->count, a, products, e))
        return -1;
    for (size_t i = 0; i < o->count; i++) {
        o->items[i].product_name = products[i].name;
        o->items[i].unit_price_krw = products[i].price_krw;
    }
    price_memo_put(s->prices, o->items, o->count);
    return 0;
}

/*
 * Through the group commit when this instance has one and the order has no coupon (a coupon is
 * locked and read inside the order's own transaction: such an order keeps its two calls). The
 * order is priced here from its products' names and prices as read before; the batch takes each
 * line's stock only if the product still has that price and name, and otherwise hands the order
 * back to run alone, its products forgotten so that the next order reads them afresh.
 */
static int create_batched(const struct write_op *op, const struct write_req *w, void *result,
                          struct arena *a, struct idem_response *out, struct err *e)
{
    const struct order_request *rq = w->args;
    struct order_coupon none = {0};
    struct order *o = result;
    struct err ignored;

    if (!w->svc->orders || rq->coupon_id)
        return 1;
    *o = (struct order){.user_id = rq->user_id, .count = rq->count, .status = ORDER_PENDING};
    o->items = arena_calloc(a, o->count, sizeof(*o->items));
    memcpy(o->items, rq->items, o->count * sizeof(*o->items));
    /* A product that is not there, or a read that failed: alone, which answers it exactly. */
    if (read_prices(w->svc, o, a, &ignored))
        return 1;
    if (price(o, &none, e))
        return -1;
    int rc = order_batcher_run(w->svc->orders, op, w, o, a, out, e);
    if (rc > 0)
        price_memo_forget(w->svc->prices, o->items, o->count);
    return rc;
}

static const struct write_op create_op = {
    .name = "order",
    .lock_name = create_lock_name,
    .lock_per_key = true,
    .batch = create_batched,
    .start = create_start,
    .commit = create_commit,
    .render = render_order,
    .committed = create_committed,
};

int order_svc_create(struct svc *s, const struct idem_request *idem, struct order_request *rq,
                     struct arena *a, struct idem_response *out, struct err *e)
{
    struct order order;
    int64_t dup;

    if (order_lines_normalise(rq->items, rq->count, &dup))
        return err_set(e, ERR_INVALID_INPUT, "product %lld appears twice in 'items'",
                       (long long)dup);
    return write_run(s, &create_op, idem, rq, &order, a, out, e);
}

/* ---- pay and cancel ---- */

/* Per order, as the reference did. */
static void order_lock_name(const struct write_req *w, char *buf, size_t size)
{
    const int64_t *order_id = w->args;

    snprintf(buf, size, "order:%lld", (long long)*order_id);
}

static int settle(enum order_settle kind, struct db_conn *c, const struct write_req *w,
                  void *result, struct arena *a, enum idem_start *how, int64_t *key_row_id,
                  struct err *e)
{
    const int64_t *order_id = w->args;
    struct idem_row_key key = idem_svc_row_key(w->idem);

    return order_repo_settle(c, kind, &key, w->idem->fingerprint, w->now_us, *order_id, w->fence, a,
                             how, key_row_id, result, e);
}

/* The event of a paid order or of a paid order cancelled: "order-42-paid". */
static void order_event(const struct order *o, const char *type, const char *suffix, int64_t now_us,
                        struct arena *a, struct idem_event *out)
{
    struct json_w w;

    json_w_init(&w, a);
    order_write_event(&w, type, o, now_us);
    *out = (struct idem_event){
        .event_id = arena_printf(a, "order-%lld-%s", (long long)o->order_id, suffix),
        .type = type,
        .aggregate_id = o->order_id,
        .payload = json_w_text(&w, NULL),
        .at_us = now_us,
    };
}

static int pay_start(struct db_conn *c, const struct write_req *w, void *result, struct arena *a,
                     enum idem_start *how, int64_t *key_row_id, struct err *e)
{
    return settle(ORDER_SETTLE_PAY, c, w, result, a, how, key_row_id, e);
}

static const char *render_payment(const void *result, struct arena *a)
{
    const struct order_settled *done = result;
    struct payment pay = {
        .payment_id = done->payment_id,
        .order_id = done->order->order_id,
        .paid_krw = done->order->total_krw,
        .remaining_balance_krw = done->balance_krw,
        .paid_us = done->order->paid_us,
    };
    struct json_w w;

    json_w_init(&w, a);
    payment_write_json(&w, &pay);
    return json_w_text(&w, NULL);
}

static bool pay_event(const void *result, int64_t now_us, struct arena *a, struct idem_event *out)
{
    const struct order_settled *done = result;

    order_event(done->order, "order.paid", "paid", now_us, a, out);
    return true;
}

static void settle_committed(struct svc *s, const void *result)
{
    const struct order_settled *done = result;

    invalidate_products(s, done->order);
    if (done->was == ORDER_PAID || done->order->status == ORDER_PAID)
        event_committed(s);
}

/* Through the group commit when this instance has one. */
static int pay_batched(const struct write_op *op, const struct write_req *w, void *result,
                       struct arena *a, struct idem_response *out, struct err *e)
{
    if (!w->svc->payments)
        return 1;
    return pay_batcher_run(w->svc->payments, op, w, result, a, out, e);
}

static const struct write_op pay_op = {
    .name = "payment",
    .lock_name = order_lock_name,
    .batch = pay_batched,
    .start = pay_start,
    .render = render_payment,
    .event = pay_event,
    .committed = settle_committed,
};

int order_svc_pay(struct svc *s, const struct idem_request *idem, int64_t order_id, struct arena *a,
                  struct idem_response *out, struct err *e)
{
    struct order_settled done;

    return write_run(s, &pay_op, idem, &order_id, &done, a, out, e);
}

static int cancel_start(struct db_conn *c, const struct write_req *w, void *result, struct arena *a,
                        enum idem_start *how, int64_t *key_row_id, struct err *e)
{
    return settle(ORDER_SETTLE_CANCEL, c, w, result, a, how, key_row_id, e);
}

static const char *render_cancelled(const void *result, struct arena *a)
{
    const struct order_settled *done = result;

    return render_order(done->order, a);
}

/* Only a paid order's cancel reaches the data platform: it takes back that day's sales. */
static bool cancel_event(const void *result, int64_t now_us, struct arena *a,
                         struct idem_event *out)
{
    const struct order_settled *done = result;

    if (done->was != ORDER_PAID)
        return false;
    order_event(done->order, "order.cancelled", "cancelled", now_us, a, out);
    return true;
}

static const struct write_op cancel_op = {
    .name = "cancel",
    .lock_name = order_lock_name,
    .start = cancel_start,
    .render = render_cancelled,
    .event = cancel_event,
    .committed = settle_committed,
};

int order_svc_cancel(struct svc *s, const struct idem_request *idem, int64_t order_id,
                     struct arena *a, struct idem_response *out, struct err *e)
{
    struct order_settled done;

    return write_run(s, &cancel_op, idem, &order_id, &done, a, out, e);
}

/* ---- expiry ---- */

int order_svc_expire_due(struct svc *s, size_t *expired, struct err *e)
{
    struct db_conn *c;
    size_t found;
    int rc;

    *expired = 0;
    if (db_acquire(s->db, &c, e))
        return -1;
    /* One call per batch: a sweep of n orders is ceil(n / EXPIRE_BATCH) + 1 round trips. */
    do {
        struct arena a = ARENA_INIT;
        int64_t *products;
        size_t nproducts = 0;
        found = 0;
        rc = order_repo_expire_due(c, clock_now_us(), EXPIRE_BATCH, &a, &found, &products,
                                   &nproducts, e);
        if (!rc)
            product_svc_invalidate_many(s, nproducts, products);
        *expired += found;
        arena_release(&a);
    } while (!rc && found == EXPIRE_BATCH);
    db_release(s->db, c);
    return rc;
}

/* ---- reads ---- */

int order_svc_get(struct svc *s, int64_t order_id, int64_t user_id, int is_admin, struct arena *a,
                  struct order *out, struct err *e)
{
    struct db_conn *c;

    if (db_acquire(s->db, &c, e))
        return -1;
    int rc = order_repo_get(c, order_id, a, out, e);
    db_release(s->db, c);
    if (!rc && !is_admin && out->user_id != user_id)
        return err_set(e, ERR_ORDER_NOT_FOUND, "order %lld does not exist", (long long)order_id);
    return rc;
}

int order_svc_list(struct svc *s, int64_t user_id, int status_filter, int status, int64_t before_id,
                   int limit, struct arena *a, struct order **out, size_t *count, int *more,
                   struct err *e)
{
    struct db_conn *c;
    struct user u;

    if (db_acquire(s->db, &c, e))
        return -1;
    int rc =
        user_repo_get(c, user_id, a, &u, e) ||
        order_repo_page(c, user_id, status_filter, status, before_id, limit + 1, a, out, count, e);
    db_release(s->db, c);
    if (rc)
        return -1;
    *more = *count > (size_t)limit;
    if (*more)
        *count = (size_t)limit;
    return 0;
}
