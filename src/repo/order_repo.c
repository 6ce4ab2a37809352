#include "repo/order_repo.h"

#include <string.h>

#include "core/arena.h"
#include "core/array.h"
#include "core/err.h"
#include "core/json.h"
#include "core/metrics.h"
#include "domain/order.h"
#include "repo/db.h"
#include "repo/idem_repo.h"

#include "core/banned.h"

#define ORDER_COLUMNS                                                                \
    "SELECT id, user_id, status, subtotal_krw, discount_krw, total_krw, coupon_id, " \
    "user_coupon_id, created_at, expires_at, paid_at FROM orders "
static const char sql_get[] = ORDER_COLUMNS "WHERE id = ?";
static const char sql_items[] =
    "SELECT product_id, product_name, quantity, unit_price_krw, subtotal_krw FROM order_items "
    "WHERE order_id = ? ORDER BY product_id";
static const char sql_page[] =
    ORDER_COLUMNS "WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?";
static const char sql_page_status[] =
    ORDER_COLUMNS "WHERE user_id = ? AND status = ? AND id < ? ORDER BY id DESC LIMIT ?";
static const char sql_open[] = "CALL shopd_order_open(?, ?, ?, ?, ?, ?, ?, ?, ?)";
static const char sql_commit[] = "CALL shopd_order_commit(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
static const char sql_settle[] = "CALL shopd_order_settle(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
static const char sql_pay_batch[] = "CALL shopd_pay_batch(?, ?, ?)";
static const char sql_place_batch[] = "CALL shopd_order_place_batch(?, ?, ?)";
static const char sql_expire_due[] = "CALL shopd_expire_due(?, ?)";

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

/* The lines of o, from rows of sql_items' columns. */
static void rows_to_items(const struct db_rows *rows, struct order *o, struct arena *a)
{
    o->items = arena_calloc(a, rows->nrows, sizeof(*o->items));
    o->count = rows->nrows;
    for (size_t i = 0; i < rows->nrows; i++) {
        o->items[i].product_id = db_int(rows, i, 0);
        o->items[i].product_name = db_str(rows, i, 1);
        o->items[i].quantity = db_int(rows, i, 2);
        o->items[i].unit_price_krw = db_int(rows, i, 3);
        o->items[i].subtotal_krw = db_int(rows, i, 4);
    }
}

static int load_items(struct db_conn *c, struct order *o, struct arena *a, struct err *e)
{
    struct db_val p[] = {DB_INT(o->order_id)};
    struct db_rows rows;

    if (db_query(c, sql_items, p, 1, a, &rows, e))
        return -1;
    rows_to_items(&rows, o, a);
    return 0;
}

int order_repo_get(struct db_conn *c, int64_t order_id, struct arena *a, struct order *out,
                   struct err *e)
{
    struct db_val p[] = {DB_INT(order_id)};
    struct db_rows rows;

    if (db_query(c, sql_get, p, 1, a, &rows, e))
        return -1;
    if (!rows.nrows)
        return err_set(e, ERR_ORDER_NOT_FOUND, "order %lld does not exist", (long long)order_id);
    if (row_to_order(&rows, 0, out, e))
        return -1;
    return load_items(c, out, a, e);
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

/* The lines of an order as shopd_order_open takes them: a JSON array of [productId, quantity];
 * priced, as shopd_order_commit takes them: [productId, quantity, priceKrw, name]. */
static const char *lines_json(const struct order *o, bool priced, struct arena *a)
{
    struct json_w w;

    json_w_init(&w, a);
    json_w_arr_begin(&w, NULL);
    for (size_t i = 0; i < o->count; i++) {
        json_w_arr_begin(&w, NULL);
        json_w_int(&w, NULL, o->items[i].product_id);
        json_w_int(&w, NULL, o->items[i].quantity);
        if (priced) {
            json_w_int(&w, NULL, o->items[i].unit_price_krw);
            json_w_str(&w, NULL, o->items[i].product_name);
        }
        json_w_arr_end(&w);
    }
    json_w_arr_end(&w);
    return json_w_text(&w, NULL);
}

static int64_t wanted(const struct order *o, int64_t product_id)
{
    for (size_t i = 0; i < o->count; i++)
        if (o->items[i].product_id == product_id)
            return o->items[i].quantity;
    return 0;
}

/*
 * A procedure's exit handler answers with an outcome row of its own (a deadlock, a duplicate
 * key, a lock wait) in place of whichever result set was due when the error struck: on Galera
 * a transaction can be aborted at any statement, by a write-set from another node, so the
 * handler's row may come after a first outcome of "reserved" or "done". It is told apart by its
 * shape, the outcome row's columns. Read as the set it replaced, it once made a one-line order
 * answer 500 and a lone line crash the instance (make test-ha).
 */
static bool late_outcome(const struct db_rows *set, size_t outcome_cols, const char *key,
                         enum idem_start *how, struct err *e)
{
    if (set->ncols != outcome_cols || set->nrows != 1 || db_is_null(set, 0, 0))
        return false;
    return idem_repo_shared_outcome(db_str(set, 0, 0), key, how, e);
}

/* Why shopd_order_open or shopd_order_commit refused, into e (ERR_INTERNAL for an outcome
 * neither gives). */
static void open_refusal(const char *outcome, const struct order *o, int64_t product_id,
                         int64_t stock, struct err *e)
{
    if (!strcmp(outcome, "no_product"))
        err_set(e, ERR_PRODUCT_NOT_FOUND, "product %lld does not exist", (long long)product_id);
    else if (!strcmp(outcome, "out_of_stock"))
        err_set(e, ERR_OUT_OF_STOCK, "product %lld has %lld in stock, %lld wanted",
                (long long)product_id, (long long)stock, (long long)wanted(o, product_id));
    else if (!strcmp(outcome, "coupon_not_usable"))
        err_set(e, ERR_COUPON_NOT_USABLE, "user %lld has no available, unexpired coupon %lld",
                (long long)o->user_id, (long long)o->coupon_id);
    else if (!strcmp(outcome, "no_user"))
        err_set(e, ERR_USER_NOT_FOUND, "user %lld does not exist", (long long)o->user_id);
    else
        err_set(e, ERR_INTERNAL, "an order's procedure answered '%.32s'", outcome);
}

/* The columns of the outcome row of shopd_order_open. */
enum {
    OPEN_OUTCOME,
    OPEN_KEY_ID,
    OPEN_PRODUCT,
    OPEN_STOCK,
    OPEN_USER_COUPON,
    OPEN_COUPON_TYPE,
    OPEN_COUPON_VALUE,
    OPEN_ORDER,
    OPEN_COLUMNS
};

int order_repo_open(struct db_conn *c, const struct idem_row_key *key,
                    const unsigned char fingerprint[32], int64_t now_us, struct order *o,
                    struct arena *a, enum idem_start *how, int64_t *key_row_id,
                    struct order_coupon *coupon, struct err *e)
{
    struct db_val p[] = {DB_INT(key->user_id),      DB_STR(key->method),
                         DB_STR(key->path),         DB_STR(key->key),
                         DB_BYTES(fingerprint, 32), DB_TIME(now_us),
                         DB_TIME(o->expires_us),    DB_STR(lines_json(o, false, a)),
                         DB_INT(o->coupon_id)};
    struct db_rows sets[2];

    /* Nothing is committed by the call: on a lost connection it may be sent again. */
    if (db_call(c, sql_open, p, ARRAY_SIZE(p), true, a, sets, ARRAY_SIZE(sets), e))
        return -1;
    if (sets[0].nrows != 1 || sets[0].ncols != OPEN_COLUMNS)
        return err_set(e, ERR_INTERNAL, "shopd_order_open answered %zu rows", sets[0].nrows);
    const char *outcome = db_str(&sets[0], 0, OPEN_OUTCOME);
    if (idem_repo_shared_outcome(outcome, key->key, how, e))
        return 0;
    *key_row_id = db_int(&sets[0], 0, OPEN_KEY_ID);
    if (strcmp(outcome, "open")) {
        *how = IDEM_START_REFUSED_OPEN;
        open_refusal(outcome, o, db_int(&sets[0], 0, OPEN_PRODUCT), db_int(&sets[0], 0, OPEN_STOCK),
                     e);
        return e->code == ERR_INTERNAL ? -1 : 0; /* not a refusal to store */
    }
    if (late_outcome(&sets[1], OPEN_COLUMNS, key->key, how, e))
        return 0;
    /* The lines come back in the order they were given: ascending product id. */
    if (sets[1].nrows != o->count)
        return err_set(e, ERR_INTERNAL, "shopd_order_open priced %zu of %zu lines", sets[1].nrows,
                       o->count);
    for (size_t i = 0; i < o->count; i++) {
        if (db_int(&sets[1], i, 0) != o->items[i].product_id)
            return err_set(e, ERR_INTERNAL, "shopd_order_open priced another product");
        o->items[i].product_name = db_str(&sets[1], i, 1);
        o->items[i].unit_price_krw = db_int(&sets[1], i, 2);
    }
    *how = IDEM_START_OPEN;
    o->order_id = db_int(&sets[0], 0, OPEN_ORDER);
    coupon->user_coupon_id = db_int(&sets[0], 0, OPEN_USER_COUPON);
    coupon->type = db_str(&sets[0], 0, OPEN_COUPON_TYPE);
    coupon->value = db_int(&sets[0], 0, OPEN_COUPON_VALUE);
    return 0;
}

int order_repo_commit(struct db_conn *c, int64_t key_row_id, const struct order *o, int status,
                      const char *body, struct arena *a, enum idem_start *how, struct err *e)
{
    struct db_val p[] = {DB_INT(key_row_id),      DB_INT(o->order_id),
                         DB_INT(o->subtotal_krw), DB_INT(o->discount_krw),
                         DB_INT(o->total_krw),    DB_INT(o->user_coupon_id),
                         DB_TIME(o->created_us),  DB_STR(lines_json(o, true, a)),
                         DB_INT(status),          DB_STR(body)};
    struct db_rows row;

    if (db_call(c, sql_commit, p, ARRAY_SIZE(p), false, a, &row, 1, e))
        return -1;
    if (row.nrows != 1 || row.ncols != 3)
        return err_set(e, ERR_INTERNAL, "shopd_order_commit answered %zu rows", row.nrows);
    const char *outcome = db_str(&row, 0, 0);
    /* Its shared outcomes are effect_wait and deadlock: never the claim's, which names the key. */
    if (idem_repo_shared_outcome(outcome, "", how, e))
        return 0;
    if (!strcmp(outcome, "committed")) {
        *how = IDEM_START_COMMITTED;
        return 0;
    }
    *how = IDEM_START_REFUSED;
    open_refusal(outcome, o, db_int(&row, 0, 1), db_int(&row, 0, 2), e);
    return e->code == ERR_INTERNAL ? -1 : 0;
}

/* The columns of the outcome row of shopd_order_settle. */
enum {
    SETTLE_OUTCOME,
    SETTLE_KEY_ID,
    SETTLE_BALANCE,
    SETTLE_PAYMENT,
    SETTLE_STATUS,
    SETTLE_TOTAL,
    SETTLE_COLUMNS
};

/* Why shopd_order_settle refused, into e (ERR_INTERNAL for an outcome it never gives). */
static void settle_refusal(enum order_settle kind, const char *outcome, int64_t order_id,
                           int64_t fence, const struct db_rows *row, size_t i, struct err *e)
{
    const char *status = db_str(row, i, SETTLE_STATUS);

    if (!strcmp(outcome, "no_order")) {
        err_set(e, ERR_ORDER_NOT_FOUND, "order %lld does not exist", (long long)order_id);
    } else if (!strcmp(outcome, "wrong_state")) {
        if (kind == ORDER_SETTLE_PAY)
            err_set(e, ERR_ORDER_NOT_PAYABLE, "order %lld is %.16s, not PENDING",
                    (long long)order_id, status);
        else
            err_set(e, ERR_ORDER_NOT_CANCELLABLE, "order %lld is %.16s", (long long)order_id,
                    status);
    } else if (!strcmp(outcome, "expired")) {
        err_set(e, ERR_ORDER_NOT_PAYABLE, "order %lld expired at its time limit",
                (long long)order_id);
    } else if (!strcmp(outcome, "insufficient")) {
        err_set(e, ERR_INSUFFICIENT_BALANCE, "balance %lld KRW is less than %lld KRW",
                (long long)db_int(row, i, SETTLE_BALANCE), (long long)db_int(row, i, SETTLE_TOTAL));
    } else if (!strcmp(outcome, "fenced")) {
        if (fence)
            metrics_inc(METRIC_LOCK_FENCE_REJECTIONS);
        err_set(e, ERR_UNAVAILABLE, "order %lld changed under us (fence or status); retry",
                (long long)order_id);
    } else {
        err_set(e, ERR_INTERNAL, "shopd_order_settle answered '%.32s'", outcome);
    }
}

/* The states the domain lets an order be paid or cancelled from, as SET text: "PENDING,PAID". */
static const char *from_states(enum order_settle kind, struct arena *a)
{
    static const enum order_status all[] = {ORDER_PENDING, ORDER_PAID, ORDER_CANCELLED,
                                            ORDER_EXPIRED};
    const char *set = "";

    for (size_t i = 0; i < ARRAY_SIZE(all); i++)
        if (kind == ORDER_SETTLE_PAY ? order_can_pay(all[i]) : order_can_cancel(all[i]))
            set = arena_printf(a, "%s%s%s", set, *set ? "," : "", order_status_name(all[i]));
    return set;
}

int order_repo_settle(struct db_conn *c, enum order_settle kind, const struct idem_row_key *key,
                      const unsigned char fingerprint[32], int64_t now_us, int64_t order_id,
                      int64_t fence, struct arena *a, enum idem_start *how, int64_t *key_row_id,
                      struct order_settled *out, struct err *e)
{
    struct db_val p[] = {DB_STR(kind == ORDER_SETTLE_PAY ? "pay" : "cancel"),
                         DB_STR(from_states(kind, a)),
                         DB_INT(key->user_id),
                         DB_STR(key->method),
                         DB_STR(key->path),
                         DB_STR(key->key),
                         DB_BYTES(fingerprint, 32),
                         DB_TIME(now_us),
                         DB_INT(order_id),
                         DB_INT(fence)};
    struct db_rows sets[3];

    if (db_call(c, sql_settle, p, ARRAY_SIZE(p), true, a, sets, ARRAY_SIZE(sets), e))
        return -1;
    if (sets[0].nrows != 1 || sets[0].ncols != SETTLE_COLUMNS)
        return err_set(e, ERR_INTERNAL, "shopd_order_settle answered %zu rows", sets[0].nrows);
    const char *outcome = db_str(&sets[0], 0, SETTLE_OUTCOME);
    if (idem_repo_shared_outcome(outcome, key->key, how, e))
        return 0;
    /* An outcome that is not "done" was a refusal: a 5xx among them is not stored. */
    if (strcmp(outcome, "done")) {
        *how = IDEM_START_REFUSED;
        settle_refusal(kind, outcome, order_id, fence, &sets[0], 0, e);
        return e->code == ERR_INTERNAL ? -1 : 0;
    }
    if (late_outcome(&sets[1], SETTLE_COLUMNS, key->key, how, e) ||
        late_outcome(&sets[2], SETTLE_COLUMNS, key->key, how, e))
        return 0;
    if (sets[1].nrows != 1)
        return err_set(e, ERR_INTERNAL, "shopd_order_settle lost order %lld", (long long)order_id);
    out->order = arena_calloc(a, 1, sizeof(*out->order));
    if (row_to_order(&sets[1], 0, out->order, e) ||
        order_status_parse(db_str(&sets[0], 0, SETTLE_STATUS), &out->was))
        return err_set(e, ERR_INTERNAL, "order %lld has an unknown status", (long long)order_id);
    rows_to_items(&sets[2], out->order, a);
    out->balance_krw = db_int(&sets[0], 0, SETTLE_BALANCE);
    out->payment_id = db_int(&sets[0], 0, SETTLE_PAYMENT);
    *how = IDEM_START_OPEN;
    *key_row_id = db_int(&sets[0], 0, SETTLE_KEY_ID);
    return 0;
}

int order_repo_expire_due(struct db_conn *c, int64_t now_us, int limit, struct arena *a,
                          size_t *expired, int64_t **product_ids, size_t *nproducts, struct err *e)
{
    struct db_val p[] = {DB_TIME(now_us), DB_INT(limit)};
    struct db_rows sets[2];

    if (db_call(c, sql_expire_due, p, ARRAY_SIZE(p), true, a, sets, ARRAY_SIZE(sets), e))
        return -1;
    if (sets[0].nrows != 1)
        return err_set(e, ERR_INTERNAL, "shopd_expire_due answered %zu rows", sets[0].nrows);
    *expired = (size_t)db_int(&sets[0], 0, 0);
    *product_ids = arena_calloc(a, sets[1].nrows, sizeof(**product_ids));
    for (size_t i = 0; i < sets[1].nrows; i++)
        (*product_ids)[i] = db_int(&sets[1], i, 0);
    *nproducts = sets[1].nrows;
    return 0;
}

/* The items of a batch as shopd_pay_batch reads them. */
static const char *pay_items_json(const struct order_pay_item *items, size_t n, struct arena *a)
{
    struct json_w w;

    json_w_init(&w, a);
    json_w_arr_begin(&w, NULL);
    for (size_t i = 0; i < n; i++) {
        json_w_obj_begin(&w, NULL);
        idem_repo_key_json(&w, items[i].key, items[i].fingerprint);
        json_w_int(&w, "o", items[i].order_id);
        json_w_obj_end(&w);
    }
    json_w_arr_end(&w);
    return json_w_text(&w, NULL);
}

/* The outcome row of shopd_pay_batch: shopd_order_settle's, and the item's place. */
#define PAY_BATCH_COLUMNS (SETTLE_COLUMNS + 1)

/* A deadlock's row, in place of any of shopd_pay_batch's results (Galera may abort the
 * transaction at any statement: see late_outcome). */
static bool pay_batch_deadlock(const struct db_rows *set)
{
    return set->ncols == PAY_BATCH_COLUMNS && set->nrows == 1 && !db_is_null(set, 0, 0) &&
           db_cell(set, 0, 0)->type == DB_STR && !strcmp(db_str(set, 0, 0), "deadlock");
}

/* The paid order order_id from the batch's orders and lines, copied into it->a. */
static int pay_batch_order(const struct db_rows *orders, const struct db_rows *lines,
                           struct order_pay_item *it, struct err *e)
{
    struct order *o = arena_calloc(it->a, 1, sizeof(*o));
    size_t row = 0;
    size_t first = 0;
    size_t count = 0;

    while (row < orders->nrows && db_int(orders, row, 0) != it->order_id)
        row++;
    if (row == orders->nrows || row_to_order(orders, row, o, e))
        return err_set(e, ERR_INTERNAL, "shopd_pay_batch lost order %lld", (long long)it->order_id);
    while (first < lines->nrows && db_int(lines, first, 0) != it->order_id)
        first++;
    while (first + count < lines->nrows && db_int(lines, first + count, 0) == it->order_id)
        count++;
    o->items = arena_calloc(it->a, count, sizeof(*o->items));
    o->count = count;
    for (size_t i = 0; i < count; i++) {
        struct order_item *line = &o->items[i];
        line->product_id = db_int(lines, first + i, 1);
        line->product_name = arena_strdup(it->a, db_str(lines, first + i, 2));
        line->quantity = db_int(lines, first + i, 3);
        line->unit_price_krw = db_int(lines, first + i, 4);
        line->subtotal_krw = db_int(lines, first + i, 5);
    }
    it->settled.order = o;
    return 0;
}

/* Item i's outcome of shopd_pay_batch's results, into it (and *open once one was paid). */
static int pay_batch_outcome(const struct db_rows *sets, size_t i, struct order_pay_item *it,
                             bool *open, struct err *e)
{
    const char *outcome = db_str(&sets[0], i, SETTLE_OUTCOME);

    it->busy = !strcmp(outcome, "busy");
    if (it->busy) {
        it->how = IDEM_START_AGAIN;
        return 0;
    }
    if (strcmp(outcome, "paid")) {
        if (idem_repo_shared_outcome(outcome, it->key->key, &it->how, it->e))
            return 0;
        it->how = IDEM_START_REFUSED;
        settle_refusal(ORDER_SETTLE_PAY, outcome, it->order_id, 0, &sets[0], i, it->e);
        if (it->e->code != ERR_INTERNAL)
            return 0;
        *e = *it->e;
        return -1;
    }
    if (pay_batch_order(&sets[1], &sets[2], it, e))
        return -1;
    if (order_status_parse(db_str(&sets[0], i, SETTLE_STATUS), &it->settled.was))
        return err_set(e, ERR_INTERNAL, "order %lld had an unknown status",
                       (long long)it->order_id);
    it->settled.balance_krw = db_int(&sets[0], i, SETTLE_BALANCE);
    it->settled.payment_id = db_int(&sets[0], i, SETTLE_PAYMENT);
    it->key_row_id = db_int(&sets[0], i, SETTLE_KEY_ID);
    it->how = IDEM_START_OPEN;
    *open = true;
    return 0;
}

int order_repo_pay_batch(struct db_conn *c, struct order_pay_item *items, size_t n, int64_t now_us,
                         struct arena *a, bool *open, struct err *e)
{
    struct db_val p[] = {DB_STR(pay_items_json(items, n, a)),
                         DB_STR(from_states(ORDER_SETTLE_PAY, a)), DB_TIME(now_us)};
    struct db_rows sets[3];

    *open = false;
    if (db_call(c, sql_pay_batch, p, ARRAY_SIZE(p), true, a, sets, ARRAY_SIZE(sets), e))
        return -1;
    if (pay_batch_deadlock(&sets[0]) || pay_batch_deadlock(&sets[1]) ||
        pay_batch_deadlock(&sets[2])) {
        metrics_inc(METRIC_DB_ERRORS);
        for (size_t i = 0; i < n; i++)
            items[i].how = IDEM_START_AGAIN;
        return 0;
    }
    if (sets[0].nrows != n || sets[0].ncols != PAY_BATCH_COLUMNS)
        return err_set(e, ERR_INTERNAL, "shopd_pay_batch answered %zu of %zu", sets[0].nrows, n);
    for (size_t i = 0; i < n; i++)
        if (pay_batch_outcome(sets, i, &items[i], open, e))
            return -1;
    return 0;
}

/* The orders of a batch as shopd_order_place_batch reads them. */
static const char *place_items_json(const struct order_place_item *items, size_t n, struct arena *a)
{
    struct json_w w;

    json_w_init(&w, a);
    json_w_arr_begin(&w, NULL);
    for (size_t i = 0; i < n; i++) {
        const struct order *o = items[i].order;
        json_w_obj_begin(&w, NULL);
        idem_repo_key_json(&w, items[i].key, items[i].fingerprint);
        json_w_int(&w, "s", o->subtotal_krw);
        json_w_int(&w, "t", o->total_krw);
        json_w_arr_begin(&w, "l");
        for (size_t j = 0; j < o->count; j++) {
            json_w_arr_begin(&w, NULL);
            json_w_int(&w, NULL, o->items[j].product_id);
            json_w_int(&w, NULL, o->items[j].quantity);
            json_w_int(&w, NULL, o->items[j].unit_price_krw);
            json_w_str(&w, NULL, o->items[j].product_name);
            json_w_arr_end(&w);
        }
        json_w_arr_end(&w);
        json_w_obj_end(&w);
    }
    json_w_arr_end(&w);
    return json_w_text(&w, NULL);
}

/* The columns of shopd_order_place_batch's rows. */
enum { PLACE_OUTCOME, PLACE_KEY_ID, PLACE_ORDER, PLACE_PRODUCT, PLACE_STOCK, PLACE_COLUMNS = 6 };

/* Reads row i of the batch's answer into its item; sets *open when the item's
 * key was claimed by the batch. -1 only for an outcome shopd does not know. */
static int place_outcome(struct order_place_item *it, const struct db_rows *rows, size_t i,
                         bool *open)
{
    const char *outcome = db_str(rows, i, PLACE_OUTCOME);

    it->busy = !strcmp(outcome, "busy");
    it->key_row_id = db_int(rows, i, PLACE_KEY_ID);
    if (it->busy) {
        it->how = IDEM_START_AGAIN;
        return 0;
    }
    if (idem_repo_shared_outcome(outcome, it->key->key, &it->how, it->e))
        return 0;
    *open = true;
    if (!strcmp(outcome, "placed")) {
        it->order->order_id = db_int(rows, i, PLACE_ORDER);
        it->how = IDEM_START_OPEN;
        return 0;
    }
    it->how = IDEM_START_REFUSED_OPEN;
    open_refusal(outcome, it->order, db_int(rows, i, PLACE_PRODUCT), db_int(rows, i, PLACE_STOCK),
                 it->e);
    return it->e->code == ERR_INTERNAL ? -1 : 0;
}

int order_repo_place_batch(struct db_conn *c, struct order_place_item *items, size_t n,
                           int64_t now_us, int64_t expires_us, struct arena *a, bool *open,
                           struct err *e)
{
    struct db_val p[] = {DB_STR(place_items_json(items, n, a)), DB_TIME(now_us),
                         DB_TIME(expires_us)};
    struct db_rows rows;

    *open = false;
    if (db_call(c, sql_place_batch, p, ARRAY_SIZE(p), true, a, &rows, 1, e))
        return -1;
    if (rows.nrows == 1 && rows.ncols == PLACE_COLUMNS &&
        !strcmp(db_str(&rows, 0, PLACE_OUTCOME), "deadlock")) {
        metrics_inc(METRIC_DB_ERRORS);
        for (size_t i = 0; i < n; i++)
            items[i].how = IDEM_START_AGAIN;
        return 0;
    }
    if (rows.nrows != n || rows.ncols != PLACE_COLUMNS)
        return err_set(e, ERR_INTERNAL, "shopd_order_place_batch answered %zu of %zu", rows.nrows,
                       n);
    for (size_t i = 0; i < n; i++) {
        if (place_outcome(&items[i], &rows, i, open)) {
            *e = *items[i].e;
            return -1;
        }
    }
    return 0;
}
