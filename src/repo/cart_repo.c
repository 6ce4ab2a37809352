#include "repo/cart_repo.h"

#include <mysqld_error.h>

#include "core/arena.h"
#include "core/err.h"
#include "domain/cart.h"
#include "repo/db.h"

#include "core/banned.h"

static const char sql_lines[] =
    "SELECT product_id, quantity FROM cart_items WHERE user_id = ? ORDER BY product_id";
/* One statement, so that two concurrent adds to one line both count. The CHECK constraint
 * (quantity <= 1000) turns an overflowing sum into error 4025. */
static const char sql_add[] =
    "INSERT INTO cart_items (user_id, product_id, quantity, updated_at) VALUES (?, ?, ?, ?) "
    "ON DUPLICATE KEY UPDATE quantity = quantity + VALUES(quantity), "
    "updated_at = VALUES(updated_at)";
static const char sql_set[] =
    "INSERT INTO cart_items (user_id, product_id, quantity, updated_at) VALUES (?, ?, ?, ?) "
    "ON DUPLICATE KEY UPDATE quantity = VALUES(quantity), updated_at = VALUES(updated_at)";
static const char sql_delete[] = "DELETE FROM cart_items WHERE user_id = ? AND product_id = ?";
/*
 * FOR UPDATE: a cart holds at most CART_LINES_MAX lines. Each change of a cart locks its
 * owner's row first, so the count below and the insert that follows see every line committed
 * by another change: two adds to a cart of 99 lines cannot both make a 100th.
 */
static const char sql_lock_owner[] = "SELECT id FROM users WHERE id = ? FOR UPDATE";
static const char sql_count_other[] =
    "SELECT COUNT(*) FROM cart_items WHERE user_id = ? AND product_id <> ?";

int cart_repo_lock_owner(struct db_conn *c, int64_t user_id, struct err *e)
{
    struct db_val p[] = {DB_INT(user_id)};
    struct arena a = ARENA_INIT;
    struct db_rows rows;
    int rc = db_query(c, sql_lock_owner, p, 1, &a, &rows, e);

    if (!rc && !rows.nrows)
        rc = err_set(e, ERR_USER_NOT_FOUND, "user %lld does not exist", (long long)user_id);
    arena_release(&a);
    return rc;
}

int cart_repo_count_other_lines(struct db_conn *c, int64_t user_id, int64_t product_id,
                                int64_t *count, struct err *e)
{
    struct db_val p[] = {DB_INT(user_id), DB_INT(product_id)};
    struct arena a = ARENA_INIT;
    struct db_rows rows;
    int rc = db_query(c, sql_count_other, p, 2, &a, &rows, e);

    if (!rc)
        *count = rows.nrows ? db_int(&rows, 0, 0) : 0;
    arena_release(&a);
    return rc;
}

int cart_repo_lines(struct db_conn *c, int64_t user_id, struct arena *a, struct cart_line **out,
                    size_t *count, struct err *e)
{
    struct db_val p[] = {DB_INT(user_id)};
    struct db_rows rows;

    if (db_query(c, sql_lines, p, 1, a, &rows, e))
        return -1;
    *out = arena_calloc(a, rows.nrows, sizeof(**out));
    for (size_t i = 0; i < rows.nrows; i++) {
        (*out)[i].product_id = db_int(&rows, i, 0);
        (*out)[i].quantity = db_int(&rows, i, 1);
    }
    *count = rows.nrows;
    return 0;
}

int cart_repo_add(struct db_conn *c, int64_t user_id, int64_t product_id, int64_t quantity,
                  int64_t max_quantity, int64_t now_us, struct err *e)
{
    struct db_val p[] = {DB_INT(user_id), DB_INT(product_id), DB_INT(quantity), DB_TIME(now_us)};

    if (db_exec(c, sql_add, p, 4, NULL, NULL, e)) {
        if (db_last_errno(c) == ER_CONSTRAINT_FAILED)
            return err_set(e, ERR_INVALID_INPUT,
                           "'quantity' would make the line exceed %lld of product %lld",
                           (long long)max_quantity, (long long)product_id);
        return -1;
    }
    return 0;
}

int cart_repo_set(struct db_conn *c, int64_t user_id, int64_t product_id, int64_t quantity,
                  int64_t now_us, struct err *e)
{
    struct db_val p[] = {DB_INT(user_id), DB_INT(product_id), DB_INT(quantity), DB_TIME(now_us)};

    if (quantity == 0)
        return db_exec(c, sql_delete, p, 2, NULL, NULL, e);
    return db_exec(c, sql_set, p, 4, NULL, NULL, e);
}
