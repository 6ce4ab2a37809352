#include "repo/sales_repo.h"

#include "core/arena.h"
#include "core/err.h"
#include "domain/product.h"
#include "repo/db.h"

#include "core/banned.h"

static const char sql_add[] =
    "INSERT INTO product_sales_daily (day, product_id, quantity, revenue_krw) "
    "VALUES (DATE(?), ?, ?, ?) ON DUPLICATE KEY UPDATE "
    "quantity = quantity + VALUES(quantity), revenue_krw = revenue_krw + VALUES(revenue_krw)";
/* A correction (a cancelled payment) takes back from the row its payment added to. */
static const char sql_subtract[] =
    "UPDATE product_sales_daily SET quantity = quantity + ?, revenue_krw = revenue_krw + ? "
    "WHERE day = DATE(?) AND product_id = ?";
static const char sql_top[] =
    "SELECT s.product_id, p.name, SUM(s.quantity) AS sold, SUM(s.revenue_krw) "
    "FROM product_sales_daily s JOIN products p ON p.id = s.product_id "
    "WHERE s.day >= DATE(?) GROUP BY s.product_id, p.name HAVING sold > 0 "
    "ORDER BY sold DESC, s.product_id ASC LIMIT ?";

static const char sql_day[] =
    "SELECT product_id, quantity, revenue_krw FROM product_sales_daily WHERE day = DATE(?)";
static const char sql_day_events[] =
    "SELECT x.event_id FROM orders o JOIN outbox x ON x.aggregate_id = o.id "
    "WHERE o.paid_at >= ? AND o.paid_at < ? + INTERVAL 1 DAY";
static const char sql_names[] = "SELECT id, name FROM products WHERE id IN " DB_IN_64;

int sales_repo_add(struct db_conn *c, int64_t at_us, int64_t product_id, int64_t quantity,
                   int64_t revenue_krw, struct err *e)
{
    struct db_val add[] = {DB_TIME(at_us), DB_INT(product_id), DB_INT(quantity),
                           DB_INT(revenue_krw)};
    struct db_val sub[] = {DB_INT(quantity), DB_INT(revenue_krw), DB_TIME(at_us),
                           DB_INT(product_id)};
    uint64_t matched = 0;

    /* The CHECK (quantity >= 0) applies to the row INSERT would add, so a negative amount
     * cannot go through INSERT … ON DUPLICATE KEY UPDATE. */
    if (quantity >= 0 && revenue_krw >= 0)
        return db_exec(c, sql_add, add, 4, NULL, NULL, e);
    if (db_exec(c, sql_subtract, sub, 4, &matched, NULL, e))
        return -1;
    if (!matched)
        return err_set(e, ERR_INTERNAL, "no sales of product %lld to correct that day",
                       (long long)product_id);
    return 0;
}

int sales_repo_top(struct db_conn *c, int64_t since_us, int limit, struct arena *a,
                   struct product_rank **out, size_t *count, struct err *e)
{
    struct db_val p[] = {DB_TIME(since_us), DB_INT(limit)};
    struct db_rows rows;

    if (db_query(c, sql_top, p, 2, a, &rows, e))
        return -1;
    *out = arena_calloc(a, rows.nrows, sizeof(**out));
    for (size_t i = 0; i < rows.nrows; i++) {
        (*out)[i].product_id = db_int(&rows, i, 0);
        (*out)[i].name = db_str(&rows, i, 1);
        (*out)[i].sales_count = db_int(&rows, i, 2);
        (*out)[i].revenue_krw = db_int(&rows, i, 3);
    }
    *count = rows.nrows;
    return 0;
}

int sales_repo_day(struct db_conn *c, int64_t day_us, struct arena *a, struct product_sales **out,
                   size_t *count, struct err *e)
{
    struct db_val p[] = {DB_TIME(day_us)};
    struct db_rows rows;

    if (db_query(c, sql_day, p, 1, a, &rows, e))
        return -1;
    *out = arena_calloc(a, rows.nrows + 1, sizeof(**out));
    for (size_t i = 0; i < rows.nrows; i++) {
        (*out)[i].product_id = db_int(&rows, i, 0);
        (*out)[i].quantity = db_int(&rows, i, 1);
        (*out)[i].revenue_krw = db_int(&rows, i, 2);
    }
    *count = rows.nrows;
    return 0;
}

int sales_repo_day_events(struct db_conn *c, int64_t day_us, struct arena *a,
                          const char ***event_ids, size_t *count, struct err *e)
{
    struct db_val p[] = {DB_TIME(day_us), DB_TIME(day_us)};
    struct db_rows rows;

    if (db_query(c, sql_day_events, p, 2, a, &rows, e))
        return -1;
    *event_ids = arena_calloc(a, rows.nrows + 1, sizeof(**event_ids));
    for (size_t i = 0; i < rows.nrows; i++)
        (*event_ids)[i] = db_str(&rows, i, 0);
    *count = rows.nrows;
    return 0;
}

/* Gives each of ranks[0..n) the name that one (id, name) row of sql_names carries for it. */
static void name_from_rows(struct product_rank *ranks, size_t n, const struct db_rows *rows)
{
    for (size_t r = 0; r < rows->nrows; r++)
        for (size_t i = 0; i < n; i++)
            if (ranks[i].product_id == db_int(rows, r, 0))
                ranks[i].name = db_str(rows, r, 1);
}

int sales_repo_name_ranks(struct db_conn *c, struct product_rank *ranks, size_t count,
                          struct arena *a, struct err *e)
{
    for (size_t from = 0; from < count; from += DB_IN_MAX) {
        size_t n = count - from < DB_IN_MAX ? count - from : DB_IN_MAX;
        struct db_val p[DB_IN_MAX];
        struct db_rows rows;

        for (size_t i = 0; i < DB_IN_MAX; i++)
            p[i] = DB_INT(i < n ? ranks[from + i].product_id : 0);
        if (db_query(c, sql_names, p, DB_IN_MAX, a, &rows, e))
            return -1;
        name_from_rows(ranks + from, n, &rows);
    }
    return 0;
}
