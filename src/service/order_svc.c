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
#include "domain/money.h"
#include "domain/order.h"
#include "domain/product.h"
#include "redis/dlock.h"
#include "repo/balance_repo.h"
#include "repo/db.h"
#include "repo/order_repo.h"
#include "repo/product_repo.h"
#include "repo/sales_repo.h"
#include "repo/user_repo.h"
#include "service/outbox_relay.h"
#include "service/product_svc.h"
#include "service/svc.h"

#include "core/banned.h"

#define EXPIRE_BATCH 50

/* ---- create ---- */

struct create_ctx {
    struct svc *svc;
    const struct order_request *rq;
    idem_render_fn *render;
    struct order order;
};

/* Reserves every line, in ascending product id order, and prices it from the locked row. */
static int reserve_lines(struct db_conn *c, struct order *o, struct arena *a, struct err *e)
{
    for (size_t i = 0; i < o->count; i++) {
        struct order_item *it = &o->items[i];
        struct product p;
        if (product_repo_reserve(c, it->product_id, it->quantity, e) ||
            product_repo_get(c, it->product_id, a, &p, e))
            return -1;
        it->product_name = p.name;
        it->unit_price_krw = p.price_krw;
        it->subtotal_krw = p.price_krw * it->quantity; /* ≤ 1e9 × 1000 */
    }
    return 0;
}

static int apply_coupon(struct db_conn *c, struct order *o, int64_t now, struct arena *a,
                        struct err *e)
{
    struct coupon cp = {0};
    const char *type;

    if (!o->coupon_id) {
        order_total(o, 0);
        return 0;
    }
    if (order_repo_use_coupon(c, o->user_id, o->coupon_id, now, a, &o->user_coupon_id, &type,
                              &cp.value, e))
        return -1;
    if (coupon_type_parse(type, &cp.type))
        return err_set(e, ERR_INTERNAL, "coupon %lld has an unknown type", (long long)o->coupon_id);
    order_total(o, 0);
    order_total(o, coupon_discount(&cp, o->subtotal_krw));
    return 0;
}

static int create_effect(struct db_conn *c, void *arg, struct arena *a, struct idem_response *out,
                         struct err *e)
{
    struct create_ctx *ctx = arg;
    struct order *o = &ctx->order;
    int64_t now = clock_now_us();

    memset(o, 0, sizeof(*o));
    o->user_id = ctx->rq->user_id;
    o->coupon_id = ctx->rq->coupon_id;
    o->count = ctx->rq->count;
    o->items = arena_calloc(a, o->count, sizeof(*o->items));
    memcpy(o->items, ctx->rq->items, o->count * sizeof(*o->items));
    o->status = ORDER_PENDING;
    o->created_us = now;
    o->expires_us = now + ctx->svc->cfg->order_ttl_s * 1000000;
    if (reserve_lines(c, o, a, e) || apply_coupon(c, o, now, a, e) || order_repo_insert(c, o, e))
        return -1;
    if (o->user_coupon_id && order_repo_attach_coupon(c, o->user_coupon_id, o->order_id, now, e))
        return -1;
    out->status = 201;
    out->body = ctx->render(o, a);
    return 0;
}

static void invalidate_products(struct svc *s, const struct order *o)
{
    for (size_t i = 0; i < o->count; i++)
        product_svc_invalidate(s, o->items[i].product_id);
}

/* The lock name of an idempotency key: its scope, with the key hashed to a fixed length. */
static void key_lock_name(const struct idem_request *idem, char *buf, size_t size)
{
    unsigned char h[SHA256_LEN];

    sha256(idem->key, strlen(idem->key), h);
    snprintf(buf, size, "order-key:%lld:%02x%02x%02x%02x%02x%02x%02x%02x", (long long)idem->user_id,
             h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]);
}

int order_svc_create(struct svc *s, const struct idem_request *idem, struct order_request *rq,
                     idem_render_fn *render, struct arena *a, struct idem_response *out,
                     struct err *e)
{
    struct create_ctx ctx = {s, rq, render, {0}};
    struct dlock lock;
    char name[96];
    int64_t dup;

    if (order_lines_normalise(rq->items, rq->count, &dup))
        return err_set(e, ERR_INVALID_INPUT, "product %lld appears twice in 'items'",
                       (long long)dup);
    key_lock_name(idem, name, sizeof(name));
    if (svc_lock(s, name, &lock, e))
        /* Only requests with this very key take this lock: one of them is still running. */
        return err_set(e, ERR_IDEMPOTENCY_IN_FLIGHT,
                       "a request with idempotency key '%.64s' is still in progress", idem->key);
    /* Under the per-key lock a duplicate finds the first one's key at once. Without it (locks
     * in MariaDB) the key's claim is what a duplicate waits on, and it settles from there. */
    struct idem_request first = *idem;
    first.lookup_first = s->cfg->locks == CONFIG_LOCKS_REDIS;
    int rc = idem_svc_run(s, &first, svc_guard(s, &lock), create_effect, &ctx, a, out, e);
    dlock_release(s->locks, &lock);
    if (!rc && !out->replayed)
        invalidate_products(s, &ctx.order);
    return rc;
}

/* ---- pay ---- */

struct order_ctx {
    struct svc *svc;
    int64_t order_id;
    int64_t user_id;
    int64_t fence;
    idem_render_fn *render;
    struct order order;
};

/* The caller's order, locked; someone else's order does not exist for them. */
static int lock_own_order(struct db_conn *c, struct order_ctx *ctx, struct arena *a, struct err *e)
{
    if (order_repo_get(c, ctx->order_id, 1, a, &ctx->order, e))
        return -1;
    if (ctx->order.user_id != ctx->user_id)
        return err_set(e, ERR_ORDER_NOT_FOUND, "order %lld does not exist",
                       (long long)ctx->order_id);
    return 0;
}

/* Wakes this process's relay: the event goes out now rather than at its next poll. */
static void event_committed(struct svc *s)
{
    if (s->relay)
        outbox_relay_nudge(s->relay);
}

static int add_event(struct db_conn *c, const struct order *o, const char *type, const char *suffix,
                     int64_t now, struct arena *a, struct err *e)
{
    struct json_w w;
    char event_id[64];

    snprintf(event_id, sizeof(event_id), "order-%lld-%s", (long long)o->order_id, suffix);
    json_w_init(&w, a);
    order_write_event(&w, type, o, now);
    return order_repo_add_event(c, event_id, type, o->order_id, json_w_text(&w, NULL), now, e);
}

/* A balance change and its history entry (nothing for a zero amount). */
static int move_balance(struct db_conn *c, const struct order *o, enum balance_entry_type type,
                        int64_t amount_krw, int64_t now, int64_t *after, struct err *e)
{
    struct balance_entry entry = {0};
    /*
     * The cap limits what a charge may reach, nothing else: "a refund is always applied, cap
     * or not" (API.md), and a payment out of a balance that such a refund took past the cap
     * only brings it down. Both keep the floor of 0.
     */
    int64_t max_krw = INT64_MAX;

    if (!amount_krw) {
        struct user u;
        struct arena a = ARENA_INIT;
        int rc = user_repo_get(c, o->user_id, &a, &u, e);
        *after = u.balance_krw;
        arena_release(&a);
        return rc;
    }
    if (user_repo_add_balance(c, o->user_id, amount_krw, max_krw, 0, after, e))
        return -1;
    entry.type = type;
    entry.amount_krw = amount_krw;
    entry.balance_after_krw = *after;
    entry.order_id = o->order_id;
    entry.created_us = now;
    return balance_repo_append(c, o->user_id, &entry, &entry.entry_id, e);
}

static int pay_effect(struct db_conn *c, void *arg, struct arena *a, struct idem_response *out,
                      struct err *e)
{
    struct order_ctx *ctx = arg;
    struct order *o = &ctx->order;
    struct payment pay = {0};
    int64_t now = clock_now_us();

    if (lock_own_order(c, ctx, a, e))
        return -1;
    if (!order_can_pay(o->status))
        return err_set(e, ERR_ORDER_NOT_PAYABLE, "order %lld is %s, not PENDING",
                       (long long)o->order_id, order_status_name(o->status));
    /* Its time ran out: the sweeper will expire it in a moment; it cannot be paid now. */
    if (now >= o->expires_us)
        return err_set(e, ERR_ORDER_NOT_PAYABLE, "order %lld expired at its time limit",
                       (long long)o->order_id);
    if (order_repo_transition(c, o->order_id, ORDER_PENDING, ORDER_PAID, now, ctx->fence, e) ||
        move_balance(c, o, BALANCE_PAYMENT, -o->total_krw, now, &pay.remaining_balance_krw, e) ||
        order_repo_insert_payment(c, o->order_id, o->user_id, o->total_krw, now, &pay.payment_id,
                                  e))
        return -1;
    for (size_t i = 0; i < o->count; i++)
        if (product_repo_sell(c, o->items[i].product_id, o->items[i].quantity, e) ||
            sales_repo_add(c, now, o->items[i].product_id, o->items[i].quantity,
                           o->items[i].subtotal_krw, e))
            return -1;
    o->status = ORDER_PAID;
    o->paid_us = now;
    if (add_event(c, o, "order.paid", "paid", now, a, e))
        return -1;
    pay.order_id = o->order_id;
    pay.paid_krw = o->total_krw;
    pay.paid_us = now;
    out->status = 200;
    out->body = ctx->render(&pay, a);
    return 0;
}

/* Runs an effect on one order under its lock (payment and cancel, as the reference did). */
static int under_order_lock(struct svc *s, const struct idem_request *idem, struct order_ctx *ctx,
                            idem_effect_fn *effect, struct arena *a, struct idem_response *out,
                            struct err *e)
{
    struct dlock lock;
    char name[48];

    snprintf(name, sizeof(name), "order:%lld", (long long)ctx->order_id);
    if (svc_lock(s, name, &lock, e))
        /* Behind this very key (409 IN_FLIGHT, or its answer), or behind other work (503)? */
        return idem_svc_lock_timed_out(s, idem, a, out, e);
    ctx->fence = lock.fence;
    int rc = idem_svc_run(s, idem, svc_guard(s, &lock), effect, ctx, a, out, e);
    dlock_release(s->locks, &lock);
    return rc;
}

int order_svc_pay(struct svc *s, const struct idem_request *idem, int64_t order_id, int64_t user_id,
                  idem_render_fn *render, struct arena *a, struct idem_response *out, struct err *e)
{
    struct order_ctx ctx = {s, order_id, user_id, 0, render, {0}};
    int rc = under_order_lock(s, idem, &ctx, pay_effect, a, out, e);

    if (!rc && !out->replayed) {
        invalidate_products(s, &ctx.order);
        event_committed(s);
    }
    return rc;
}

/* ---- cancel and expiry ---- */

/* Gives back what a PENDING order holds: its reserved stock and its coupon. */
static int release_pending(struct db_conn *c, const struct order *o, struct err *e)
{
    for (size_t i = 0; i < o->count; i++)
        if (product_repo_release(c, o->items[i].product_id, o->items[i].quantity, e))
            return -1;
    return order_repo_restore_coupon(c, o->order_id, e);
}

/* Undoes a payment: refund, sold stock back, the sales roll-up of the paid day corrected. */
static int undo_payment(struct db_conn *c, const struct order *o, int64_t now, struct arena *a,
                        struct err *e)
{
    int64_t after;

    if (move_balance(c, o, BALANCE_REFUND, o->total_krw, now, &after, e) ||
        order_repo_refund_payment(c, o->order_id, e))
        return -1;
    for (size_t i = 0; i < o->count; i++)
        if (product_repo_restock(c, o->items[i].product_id, o->items[i].quantity, e) ||
            sales_repo_add(c, o->paid_us, o->items[i].product_id, -o->items[i].quantity,
                           -o->items[i].subtotal_krw, e))
            return -1;
    if (order_repo_restore_coupon(c, o->order_id, e))
        return -1;
    return add_event(c, o, "order.cancelled", "cancelled", now, a, e);
}

static int cancel_effect(struct db_conn *c, void *arg, struct arena *a, struct idem_response *out,
                         struct err *e)
{
    struct order_ctx *ctx = arg;
    struct order *o = &ctx->order;
    int64_t now = clock_now_us();

    if (lock_own_order(c, ctx, a, e))
        return -1;
    if (!order_can_cancel(o->status))
        return err_set(e, ERR_ORDER_NOT_CANCELLABLE, "order %lld is %s", (long long)o->order_id,
                       order_status_name(o->status));
    enum order_status was = o->status;
    if (order_repo_transition(c, o->order_id, was, ORDER_CANCELLED, now, ctx->fence, e))
        return -1;
    o->status = ORDER_CANCELLED;
    if (was == ORDER_PAID ? undo_payment(c, o, now, a, e) : release_pending(c, o, e))
        return -1;
    out->status = 200;
    out->body = ctx->render(o, a);
    return 0;
}

int order_svc_cancel(struct svc *s, const struct idem_request *idem, int64_t order_id,
                     int64_t user_id, idem_render_fn *render, struct arena *a,
                     struct idem_response *out, struct err *e)
{
    struct order_ctx ctx = {s, order_id, user_id, 0, render, {0}};
    int rc = under_order_lock(s, idem, &ctx, cancel_effect, a, out, e);

    if (!rc && !out->replayed) {
        invalidate_products(s, &ctx.order);
        event_committed(s); /* a cancel of a paid order wrote one */
    }
    return rc;
}

static int expire_batch(struct svc *s, struct db_conn *c, struct arena *a, size_t *done,
                        size_t *found, struct order **orders, struct err *e)
{
    int64_t now = clock_now_us();
    int64_t *ids;

    if (db_begin(c, e) || order_repo_expired(c, now, EXPIRE_BATCH, a, &ids, found, e))
        return -1;
    *orders = arena_calloc(a, *found, sizeof(**orders));
    for (size_t i = 0; i < *found; i++) {
        struct order *o = &(*orders)[i];
        if (order_repo_get(c, ids[i], 1, a, o, e) ||
            order_repo_transition(c, o->order_id, ORDER_PENDING, ORDER_EXPIRED, now, 0, e) ||
            release_pending(c, o, e))
            return -1;
    }
    if (db_commit(c, e))
        return -1;
    *done += *found;
    return 0;
}

int order_svc_expire_due(struct svc *s, size_t *expired, struct err *e)
{
    struct db_conn *c;
    size_t found;
    int rc;

    *expired = 0;
    if (db_acquire(s->db, &c, e))
        return -1;
    do {
        struct arena a = ARENA_INIT;
        struct order *orders = NULL;
        found = 0;
        rc = expire_batch(s, c, &a, expired, &found, &orders, e);
        if (rc)
            db_rollback(c);
        else
            for (size_t i = 0; i < found; i++)
                invalidate_products(s, &orders[i]);
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
    int rc = order_repo_get(c, order_id, 0, a, out, e);
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
