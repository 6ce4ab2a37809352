#include "repo/order_repo.h"

#include <mysqld_error.h>

#include "core/arena.h"
#include "core/err.h"
#include "core/metrics.h"
#include "domain/order.h"
#include "repo/db.h"

#include "core/banned.h"

static const char sql_insert[] =
    "INSERT INTO orders (user_id, status, subtotal_krw, discount_krw, total_krw, coupon_id, "
    "user_coupon_id, created_at, expires_at) VALUES (?, 'PENDING', ?, ?, ?, ?, ?, ?, ?)";
static const char sql_insert_item[] =
    "INSERT INTO order_items (order_id, product_id, product_name, quantity, unit_price_krw, "
    "subtotal_krw) VALUES (?, ?, ?, ?, ?, ?)";
#define ORDER_COLUMNS                                                                \
    "SELECT id, user_id, status, subtotal_krw, discount_krw, total_krw, coupon_id, " \
    "user_coupon_id, created_at, expires_at, paid_at FROM orders "
static const char sql_get[] = ORDER_COLUMNS "WHERE id = ?";
/* Locks the order: pay, cancel and expiry each move it at most once from its state. */
static const char sql_get_for_update[] = ORDER_COLUMNS "WHERE id = ? FOR UPDATE";
static const char sql_items[] =
    "SELECT product_id, product_name, quantity, unit_price_krw, subtotal_krw FROM order_items "
    "WHERE order_id = ? ORDER BY product_id";
static const char sql_page[] =
    ORDER_COLUMNS "WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?";
static const char sql_page_status[] =
    ORDER_COLUMNS "WHERE user_id = ? AND status = ? AND id < ? ORDER BY id DESC LIMIT ?";
static const char sql_transition[] =
    "UPDATE orders SET status = ?, paid_at = IF(? = 'PAID', ?, paid_at), "
    "closed_at = IF(? IN ('CANCELLED', 'EXPIRED'), ?, closed_at), fence = GREATEST(fence, ?) "
    "WHERE id = ? AND status = ? AND fence <= ?";
/* SKIP LOCKED: several instances sweep at once, each takes orders nobody else holds. */
static const char sql_expired[] = "SELECT id FROM orders WHERE status = 'PENDING' AND "
                                  "expires_at < ? ORDER BY expires_at LIMIT ? "
                                  "FOR UPDATE SKIP LOCKED";
static const char sql_insert_payment[] =
    "INSERT INTO payments (order_id, user_id, amount_krw, status, paid_at) "
    "VALUES (?, ?, ?, 'PAID', ?)";
static const char sql_refund_payment[] =
    "UPDATE payments SET status = 'REFUNDED' WHERE order_id = ? AND status = 'PAID'";
static const char sql_add_event[] =
    "INSERT INTO outbox (event_id, event_type, aggregate_id, payload, created_at) "
    "VALUES (?, ?, ?, ?, ?)";
/* Locks the user's coupon: one order at a time may use it. */
static const char sql_find_coupon[] =
    "SELECT uc.id, c.discount_type, c.discount_value FROM user_coupons uc "
    "JOIN coupons c ON c.id = uc.coupon_id WHERE uc.user_id = ? AND uc.coupon_id = ? "
    "AND uc.status = 'AVAILABLE' AND (c.ends_at IS NULL OR c.ends_at > ?) FOR UPDATE";
static const char sql_attach_coupon[] =
    "UPDATE user_coupons SET status = 'USED', used_at = ?, order_id = ? "
    "WHERE id = ? AND status = 'AVAILABLE'";
static const char sql_restore_coupon[] =
    "UPDATE user_coupons SET status = 'AVAILABLE', used_at = NULL, order_id = NULL "
    "WHERE order_id = ?";

int order_repo_insert(struct db_conn *c, struct order *o, struct err *e)
{
    struct db_val p[] = {DB_INT(o->user_id),
                         DB_INT(o->subtotal_krw),
                         DB_INT(o->discount_krw),
                         DB_INT(o->total_krw),
                         o->coupon_id ? DB_INT(o->coupon_id) : DB_NULLV,
                         o->user_coupon_id ? DB_INT(o->user_coupon_id) : DB_NULLV,
                         DB_TIME(o->created_us),
                         DB_TIME(o->expires_us)};

    if (db_exec(c, sql_insert, p, 8, NULL, &o->order_id, e)) {
        if (db_last_errno(c) == ER_NO_REFERENCED_ROW_2)
            return err_set(e, ERR_USER_NOT_FOUND, "user %lld does not exist",
                           (long long)o->user_id);
        return -1;
    }
    for (size_t i = 0; i < o->count; i++) {
        const struct order_item *it = &o->items[i];
        struct db_val q[] = {DB_INT(o->order_id),        DB_INT(it->product_id),
                             DB_STR(it->product_name),   DB_INT(it->quantity),
                             DB_INT(it->unit_price_krw), DB_INT(it->subtotal_krw)};
        if (db_exec(c, sql_insert_item, q, 6, NULL, NULL, e))
            return -1;
    }
    return 0;
}

static int row_to_order(const struct db_rows *rows, size_t i, struct order *o, struct err *e)
{
    o->order_id = db_int(rows, i, 0);
    o->user_id = db_int(rows, i, 1);
    if (order_status_parse(db_str(rows, i, 2), &o->status))
        return err_set(e, ERR_INTERNAL, "order %lld has an unknown status", (long long)o->order_id);
    o->subtotal_krw = db_int(rows, i, 3);
    o->discount_krw = db_int(rows, i, 4);
    o->total_krw = db_int(rows, i, 5);
    o->coupon_id = db_is_null(rows, i, 6) ? 0 : db_int(rows, i, 6);
    o->user_coupon_id = db_is_null(rows, i, 7) ? 0 : db_int(rows, i, 7);
    o->created_us = db_cell(rows, i, 8)->i;
    o->expires_us = db_cell(rows, i, 9)->i;
    o->paid_us = db_is_null(rows, i, 10) ? 0 : db_cell(rows, i, 10)->i;
    return 0;
}

static int load_items(struct db_conn *c, struct order *o, struct arena *a, struct err *e)
{
    struct db_val p[] = {DB_INT(o->order_id)};
    struct db_rows rows;

    if (db_query(c, sql_items, p, 1, a, &rows, e))
        return -1;
    o->items = arena_calloc(a, rows.nrows, sizeof(*o->items));
    o->count = rows.nrows;
    for (size_t i = 0; i < rows.nrows; i++) {
        o->items[i].product_id = db_int(&rows, i, 0);
        o->items[i].product_name = db_str(&rows, i, 1);
        o->items[i].quantity = db_int(&rows, i, 2);
        o->items[i].unit_price_krw = db_int(&rows, i, 3);
        o->items[i].subtotal_krw = db_int(&rows, i, 4);
    }
    return 0;
}

int order_repo_get(struct db_conn *c, int64_t order_id, int for_update, struct arena *a,
                   struct order *out, struct err *e)
{
    struct db_val p[] = {DB_INT(order_id)};
    struct db_rows rows;

    if (db_query(c, for_update ? sql_get_for_update : sql_get, p, 1, a, &rows, e))
        return -1;
    if (!rows.nrows)
        return err_set(e, ERR_ORDER_NOT_FOUND, "order %lld does not exist", (long long)order_id);
    if (row_to_order(&rows, 0, out, e))
        return -1;
    return load_items(c, out, a, e);
}

int order_repo_transition(struct db_conn *c, int64_t order_id, enum order_status from,
                          enum order_status to, int64_t at_us, int64_t fence, struct err *e)
{
    const char *to_name = order_status_name(to);
    struct db_val p[] = {DB_STR(to_name),
                         DB_STR(to_name),
                         DB_TIME(at_us),
                         DB_STR(to_name),
                         DB_TIME(at_us),
                         DB_INT(fence),
                         DB_INT(order_id),
                         DB_STR(order_status_name(from)),
                         DB_INT(fence ? fence : INT64_MAX)};
    uint64_t matched = 0;

    if (db_exec(c, sql_transition, p, 9, &matched, NULL, e))
        return -1;
    if (!matched) {
        if (fence)
            metrics_inc(METRIC_LOCK_FENCE_REJECTIONS);
        return err_set(e, ERR_UNAVAILABLE, "order %lld changed under us (fence or status); retry",
                       (long long)order_id);
    }
    return 0;
}

int order_repo_page(struct db_conn *c, int64_t user_id, int status_filter, int status,
                    int64_t before_id, int limit, struct arena *a, struct order **out,
                    size_t *count, struct err *e)
{
    int64_t before = before_id ? before_id : INT64_MAX;
    struct db_val all[] = {DB_INT(user_id), DB_INT(before), DB_INT(limit)};
    struct db_val some[] = {DB_INT(user_id), DB_STR(order_status_name((enum order_status)status)),
                            DB_INT(before), DB_INT(limit)};
    struct db_rows rows;

    if (status_filter ? db_query(c, sql_page_status, some, 4, a, &rows, e)
                      : db_query(c, sql_page, all, 3, a, &rows, e))
        return -1;
    *out = arena_calloc(a, rows.nrows, sizeof(**out));
    *count = rows.nrows;
    for (size_t i = 0; i < rows.nrows; i++)
        if (row_to_order(&rows, i, &(*out)[i], e) || load_items(c, &(*out)[i], a, e))
            return -1;
    return 0;
}

int order_repo_expired(struct db_conn *c, int64_t now_us, int limit, struct arena *a, int64_t **ids,
                       size_t *count, struct err *e)
{
    struct db_val p[] = {DB_TIME(now_us), DB_INT(limit)};
    struct db_rows rows;

    if (db_query(c, sql_expired, p, 2, a, &rows, e))
        return -1;
    *ids = arena_calloc(a, rows.nrows, sizeof(**ids));
    for (size_t i = 0; i < rows.nrows; i++)
        (*ids)[i] = db_int(&rows, i, 0);
    *count = rows.nrows;
    return 0;
}

int order_repo_insert_payment(struct db_conn *c, int64_t order_id, int64_t user_id,
                              int64_t amount_krw, int64_t at_us, int64_t *payment_id, struct err *e)
{
    struct db_val p[] = {DB_INT(order_id), DB_INT(user_id), DB_INT(amount_krw), DB_TIME(at_us)};

    if (db_exec(c, sql_insert_payment, p, 4, NULL, payment_id, e)) {
        if (db_last_errno(c) == ER_DUP_ENTRY)
            return err_set(e, ERR_ORDER_NOT_PAYABLE, "order %lld is paid already",
                           (long long)order_id);
        return -1;
    }
    return 0;
}

int order_repo_refund_payment(struct db_conn *c, int64_t order_id, struct err *e)
{
    struct db_val p[] = {DB_INT(order_id)};

    return db_exec(c, sql_refund_payment, p, 1, NULL, NULL, e);
}

int order_repo_add_event(struct db_conn *c, const char *event_id, const char *type,
                         int64_t order_id, const char *payload, int64_t at_us, struct err *e)
{
    struct db_val p[] = {DB_STR(event_id), DB_STR(type), DB_INT(order_id), DB_STR(payload),
                         DB_TIME(at_us)};

    return db_exec(c, sql_add_event, p, 5, NULL, NULL, e);
}

int order_repo_use_coupon(struct db_conn *c, int64_t user_id, int64_t coupon_id, int64_t now_us,
                          struct arena *a, int64_t *user_coupon_id, const char **type,
                          int64_t *value, struct err *e)
{
    struct db_val p[] = {DB_INT(user_id), DB_INT(coupon_id), DB_TIME(now_us)};
    struct db_rows rows;

    if (db_query(c, sql_find_coupon, p, 3, a, &rows, e))
        return -1;
    if (!rows.nrows)
        return err_set(e, ERR_COUPON_NOT_USABLE,
                       "user %lld has no available, unexpired coupon %lld", (long long)user_id,
                       (long long)coupon_id);
    *user_coupon_id = db_int(&rows, 0, 0);
    *type = db_str(&rows, 0, 1);
    *value = db_int(&rows, 0, 2);
    return 0;
}

int order_repo_attach_coupon(struct db_conn *c, int64_t user_coupon_id, int64_t order_id,
                             int64_t now_us, struct err *e)
{
    struct db_val p[] = {DB_TIME(now_us), DB_INT(order_id), DB_INT(user_coupon_id)};
    uint64_t matched = 0;

    if (db_exec(c, sql_attach_coupon, p, 3, &matched, NULL, e))
        return -1;
    if (!matched)
        return err_set(e, ERR_COUPON_NOT_USABLE, "coupon is no longer available");
    return 0;
}

int order_repo_restore_coupon(struct db_conn *c, int64_t order_id, struct err *e)
{
    struct db_val p[] = {DB_INT(order_id)};

    return db_exec(c, sql_restore_coupon, p, 1, NULL, NULL, e);
}
