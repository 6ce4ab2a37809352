#include "repo/coupon_repo.h"

#include <mysqld_error.h>

#include "core/arena.h"
#include "core/err.h"
#include "core/metrics.h"
#include "domain/coupon.h"
#include "repo/db.h"

#include "core/banned.h"

static const char sql_insert[] =
    "INSERT INTO coupons (name, discount_type, discount_value, total_quantity, starts_at, "
    "ends_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)";
static const char sql_get[] =
    "SELECT id, name, discount_type, discount_value, total_quantity, issued_quantity, "
    "starts_at, ends_at FROM coupons WHERE id = ?";
/*
 * Locks the coupon before an issue: issued <= total is decided on this row, and taking it
 * first keeps issuers from deadlocking (the user_coupons foreign key takes a shared lock on it,
 * which two issuers would otherwise both hold while each waits to upgrade it).
 */
static const char sql_get_for_update[] =
    "SELECT id, name, discount_type, discount_value, total_quantity, issued_quantity, "
    "starts_at, ends_at FROM coupons WHERE id = ? FOR UPDATE";
static const char sql_insert_user_coupon[] = "INSERT INTO user_coupons (coupon_id, user_id, "
                                             "status, issued_at) VALUES (?, ?, 'AVAILABLE', ?)";
/* The invariant issued <= total, checked and applied in one step; the fence refuses a lock
 * holder whose lease ran out while a newer one wrote. */
static const char sql_take_one[] =
    "UPDATE coupons SET issued_quantity = issued_quantity + 1, fence = GREATEST(fence, ?) "
    "WHERE id = ? AND issued_quantity < total_quantity AND fence <= ?";
static const char sql_coupon_state[] = "SELECT issued_quantity, total_quantity, fence "
                                       "FROM coupons WHERE id = ?";
#define USER_COUPON_COLUMNS                                                                 \
    "SELECT uc.id, uc.user_id, uc.status, uc.issued_at, uc.used_at, c.id, c.name, "         \
    "c.discount_type, c.discount_value, c.total_quantity, c.issued_quantity, c.starts_at, " \
    "c.ends_at FROM user_coupons uc JOIN coupons c ON c.id = uc.coupon_id "
static const char sql_user_coupon[] = USER_COUPON_COLUMNS "WHERE uc.id = ?";
static const char sql_user_coupons[] =
    USER_COUPON_COLUMNS "WHERE uc.user_id = ? ORDER BY uc.id DESC";
static const char sql_holders[] = "SELECT user_id FROM user_coupons WHERE coupon_id = ?";

int coupon_repo_insert(struct db_conn *c, const struct coupon *cp, int64_t now_us,
                       int64_t *coupon_id, struct err *e)
{
    struct db_val p[] = {DB_STR(cp->name),       DB_STR(coupon_type_name(cp->type)),
                         DB_INT(cp->value),      DB_INT(cp->total_quantity),
                         DB_TIME(cp->starts_us), cp->ends_us ? DB_TIME(cp->ends_us) : DB_NULLV,
                         DB_TIME(now_us)};

    return db_exec(c, sql_insert, p, 7, NULL, coupon_id, e);
}

/* Reads a coupon from columns first..first+7 of row i. */
static int row_to_coupon(const struct db_rows *rows, size_t i, size_t first, struct coupon *out,
                         struct err *e)
{
    out->coupon_id = db_int(rows, i, first);
    out->name = db_str(rows, i, first + 1);
    if (coupon_type_parse(db_str(rows, i, first + 2), &out->type))
        return err_set(e, ERR_INTERNAL, "coupon %lld has an unknown type",
                       (long long)out->coupon_id);
    out->value = db_int(rows, i, first + 3);
    out->total_quantity = db_int(rows, i, first + 4);
    out->issued_quantity = db_int(rows, i, first + 5);
    out->starts_us = db_cell(rows, i, first + 6)->i;
    out->ends_us = db_is_null(rows, i, first + 7) ? 0 : db_cell(rows, i, first + 7)->i;
    return 0;
}

static int get_one(struct db_conn *c, const char *sql, int64_t coupon_id, struct arena *a,
                   struct coupon *out, struct err *e)
{
    struct db_val p[] = {DB_INT(coupon_id)};
    struct db_rows rows;

    if (db_query(c, sql, p, 1, a, &rows, e))
        return -1;
    if (!rows.nrows)
        return err_set(e, ERR_COUPON_NOT_FOUND, "coupon %lld does not exist", (long long)coupon_id);
    return row_to_coupon(&rows, 0, 0, out, e);
}

int coupon_repo_get(struct db_conn *c, int64_t coupon_id, struct arena *a, struct coupon *out,
                    struct err *e)
{
    return get_one(c, sql_get, coupon_id, a, out, e);
}

int coupon_repo_get_for_update(struct db_conn *c, int64_t coupon_id, struct arena *a,
                               struct coupon *out, struct err *e)
{
    return get_one(c, sql_get_for_update, coupon_id, a, out, e);
}

/* Why the conditional UPDATE matched nothing. */
static int explain_no_match(struct db_conn *c, int64_t coupon_id, int64_t fence, struct err *e)
{
    struct arena a = ARENA_INIT;
    struct db_val p[] = {DB_INT(coupon_id)};
    struct db_rows rows;
    int rc;

    if (db_query(c, sql_coupon_state, p, 1, &a, &rows, e))
        rc = -1;
    else if (!rows.nrows)
        rc = err_set(e, ERR_COUPON_NOT_FOUND, "coupon %lld does not exist", (long long)coupon_id);
    else if (fence && db_int(&rows, 0, 2) > fence) {
        metrics_inc(METRIC_LOCK_FENCE_REJECTIONS);
        rc = err_set(e, ERR_UNAVAILABLE, "the lock on coupon %lld was lost to a newer holder",
                     (long long)coupon_id);
    } else
        rc = err_set(e, ERR_COUPON_SOLD_OUT, "coupon %lld has no quantity left",
                     (long long)coupon_id);
    arena_release(&a);
    return rc;
}

int coupon_repo_issue(struct db_conn *c, int64_t coupon_id, int64_t user_id, int64_t fence,
                      int64_t now_us, int64_t *user_coupon_id, struct err *e)
{
    struct db_val ins[] = {DB_INT(coupon_id), DB_INT(user_id), DB_TIME(now_us)};
    struct db_val take[] = {DB_INT(fence), DB_INT(coupon_id), DB_INT(fence ? fence : INT64_MAX)};
    uint64_t matched = 0;

    if (db_exec(c, sql_insert_user_coupon, ins, 3, NULL, user_coupon_id, e)) {
        if (db_last_errno(c) == ER_DUP_ENTRY)
            return err_set(e, ERR_COUPON_ALREADY_ISSUED, "user %lld already has coupon %lld",
                           (long long)user_id, (long long)coupon_id);
        if (db_last_errno(c) == ER_NO_REFERENCED_ROW_2)
            return err_set(e, ERR_USER_NOT_FOUND, "user %lld (or coupon %lld) does not exist",
                           (long long)user_id, (long long)coupon_id);
        return -1;
    }
    if (db_exec(c, sql_take_one, take, 3, &matched, NULL, e))
        return -1;
    if (!matched)
        return explain_no_match(c, coupon_id, fence, e);
    return 0;
}

static int rows_to_user_coupons(const struct db_rows *rows, struct arena *a,
                                struct user_coupon **out, struct err *e)
{
    *out = arena_calloc(a, rows->nrows, sizeof(**out));
    for (size_t i = 0; i < rows->nrows; i++) {
        struct user_coupon *uc = &(*out)[i];
        uc->user_coupon_id = db_int(rows, i, 0);
        uc->user_id = db_int(rows, i, 1);
        if (coupon_status_parse(db_str(rows, i, 2), &uc->status))
            return err_set(e, ERR_INTERNAL, "user coupon has an unknown status");
        uc->issued_us = db_cell(rows, i, 3)->i;
        uc->used_us = db_is_null(rows, i, 4) ? 0 : db_cell(rows, i, 4)->i;
        if (row_to_coupon(rows, i, 5, &uc->coupon, e))
            return -1;
    }
    return 0;
}

int coupon_repo_user_coupon(struct db_conn *c, int64_t user_coupon_id, struct arena *a,
                            struct user_coupon *out, struct err *e)
{
    struct db_val p[] = {DB_INT(user_coupon_id)};
    struct db_rows rows;
    struct user_coupon *list;

    if (db_query(c, sql_user_coupon, p, 1, a, &rows, e))
        return -1;
    if (!rows.nrows)
        return err_set(e, ERR_INTERNAL, "user coupon %lld vanished", (long long)user_coupon_id);
    if (rows_to_user_coupons(&rows, a, &list, e))
        return -1;
    *out = list[0];
    return 0;
}

int coupon_repo_user_coupons(struct db_conn *c, int64_t user_id, struct arena *a,
                             struct user_coupon **out, size_t *count, struct err *e)
{
    struct db_val p[] = {DB_INT(user_id)};
    struct db_rows rows;

    if (db_query(c, sql_user_coupons, p, 1, a, &rows, e) || rows_to_user_coupons(&rows, a, out, e))
        return -1;
    *count = rows.nrows;
    return 0;
}

int coupon_repo_holders(struct db_conn *c, int64_t coupon_id, struct arena *a, int64_t **user_ids,
                        size_t *count, struct err *e)
{
    struct db_val p[] = {DB_INT(coupon_id)};
    struct db_rows rows;

    if (db_query(c, sql_holders, p, 1, a, &rows, e))
        return -1;
    *user_ids = arena_calloc(a, rows.nrows, sizeof(**user_ids));
    for (size_t i = 0; i < rows.nrows; i++)
        (*user_ids)[i] = db_int(&rows, i, 0);
    *count = rows.nrows;
    return 0;
}
