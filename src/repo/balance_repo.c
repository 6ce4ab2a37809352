#include "repo/balance_repo.h"

#include "core/arena.h"
#include "core/err.h"
#include "domain/balance.h"
#include "repo/db.h"

#include "core/banned.h"

static const char sql_append[] =
    "INSERT INTO balance_history (user_id, type, amount_krw, balance_after_krw, order_id, "
    "created_at) VALUES (?, ?, ?, ?, ?, ?)";
static const char sql_page[] =
    "SELECT id, type, amount_krw, balance_after_krw, order_id, created_at "
    "FROM balance_history WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?";

int balance_repo_append(struct db_conn *c, int64_t user_id, const struct balance_entry *entry,
                        int64_t *entry_id, struct err *e)
{
    struct db_val p[] = {DB_INT(user_id),
                         DB_STR(balance_entry_type_name(entry->type)),
                         DB_INT(entry->amount_krw),
                         DB_INT(entry->balance_after_krw),
                         entry->order_id ? DB_INT(entry->order_id) : DB_NULLV,
                         DB_TIME(entry->created_us)};

    return db_exec(c, sql_append, p, 6, NULL, entry_id, e);
}

int balance_repo_page(struct db_conn *c, int64_t user_id, int64_t before_id, int limit,
                      struct arena *a, struct balance_entry **entries, size_t *count, struct err *e)
{
    struct db_val p[] = {DB_INT(user_id), DB_INT(before_id ? before_id : INT64_MAX), DB_INT(limit)};
    struct db_rows rows;

    if (db_query(c, sql_page, p, 3, a, &rows, e))
        return -1;
    struct balance_entry *out = arena_calloc(a, rows.nrows, sizeof(*out));
    for (size_t i = 0; i < rows.nrows; i++) {
        out[i].entry_id = db_int(&rows, i, 0);
        if (balance_entry_type_parse(db_str(&rows, i, 1), &out[i].type))
            return err_set(e, ERR_INTERNAL, "unknown history type '%s'", db_str(&rows, i, 1));
        out[i].amount_krw = db_int(&rows, i, 2);
        out[i].balance_after_krw = db_int(&rows, i, 3);
        out[i].order_id = db_is_null(&rows, i, 4) ? 0 : db_int(&rows, i, 4);
        out[i].created_us = db_cell(&rows, i, 5)->i;
    }
    *entries = out;
    *count = rows.nrows;
    return 0;
}
