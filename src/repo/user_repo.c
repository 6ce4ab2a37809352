#include "repo/user_repo.h"

#include "core/arena.h"
#include "core/err.h"
#include "core/metrics.h"
#include "domain/balance.h"
#include "repo/db.h"

#include "core/banned.h"

static const char sql_insert[] =
    "INSERT INTO users (name, balance_krw, created_at) VALUES (?, 0, ?)";
static const char sql_get[] = "SELECT id, name, balance_krw FROM users WHERE id = ?";
/*
 * The condition is the invariant 0 <= balance <= limit, checked and applied in one step.
 * LAST_INSERT_ID(expr) hands the new balance back with the reply (mysql_stmt_insert_id), which
 * saves a SELECT on the hot path. A charge runs the same statement inside shopd_charge_begin
 * (db/migrations/0009): a change to the condition goes into both.
 */
static const char sql_add[] =
    "UPDATE users SET balance_krw = LAST_INSERT_ID(balance_krw + ?), fence = GREATEST(fence, ?) "
    "WHERE id = ? AND balance_krw + ? BETWEEN 0 AND ? AND fence <= ?";
static const char sql_balance[] = "SELECT balance_krw, fence FROM users WHERE id = ?";

int user_repo_insert(struct db_conn *c, const char *name, int64_t now_us, int64_t *user_id,
                     struct err *e)
{
    struct db_val p[] = {DB_STR(name), DB_TIME(now_us)};

    return db_exec(c, sql_insert, p, 2, NULL, user_id, e);
}

int user_repo_get(struct db_conn *c, int64_t user_id, struct arena *a, struct user *out,
                  struct err *e)
{
    struct db_val p[] = {DB_INT(user_id)};
    struct db_rows rows;

    if (db_query(c, sql_get, p, 1, a, &rows, e))
        return -1;
    if (!rows.nrows)
        return err_set(e, ERR_USER_NOT_FOUND, "user %lld does not exist", (long long)user_id);
    out->user_id = db_int(&rows, 0, 0);
    out->name = db_str(&rows, 0, 1);
    out->balance_krw = db_int(&rows, 0, 2);
    return 0;
}

int user_repo_add_balance(struct db_conn *c, int64_t user_id, int64_t amount_krw, int64_t max_krw,
                          int64_t fence, int64_t *balance_after_krw, struct err *e)
{
    /* Unguarded (fence 0): no fence condition, and the stored fence stays as it is. */
    struct db_val p[] = {DB_INT(amount_krw), DB_INT(fence),   DB_INT(user_id),
                         DB_INT(amount_krw), DB_INT(max_krw), DB_INT(fence ? fence : INT64_MAX)};
    struct db_val q[] = {DB_INT(user_id)};
    struct arena a = ARENA_INIT;
    struct db_rows rows;
    uint64_t matched = 0;
    int64_t after = 0;
    int rc = -1;

    if (db_exec(c, sql_add, p, 6, &matched, &after, e))
        return -1;
    if (matched) {
        *balance_after_krw = after;
        return 0;
    }
    /* Not matched: the user is missing, or the result would leave the range. */
    if (db_query(c, sql_balance, q, 1, &a, &rows, e))
        goto out;
    if (!rows.nrows) {
        rc = err_set(e, ERR_USER_NOT_FOUND, "user %lld does not exist", (long long)user_id);
    } else if (fence && db_int(&rows, 0, 1) > fence) {
        metrics_inc(METRIC_LOCK_FENCE_REJECTIONS);
        rc = err_set(e, ERR_UNAVAILABLE, "the lock on user %lld was lost to a newer holder",
                     (long long)user_id);
    } else if (amount_krw > 0) {
        rc = err_set(e, ERR_BALANCE_LIMIT, "balance %lld + %lld would exceed the limit of %lld KRW",
                     (long long)db_int(&rows, 0, 0), (long long)amount_krw, (long long)max_krw);
    } else {
        rc = err_set(e, ERR_INSUFFICIENT_BALANCE, "balance %lld KRW is less than %lld KRW",
                     (long long)db_int(&rows, 0, 0), (long long)-amount_krw);
    }
out:
    arena_release(&a);
    return rc;
}
