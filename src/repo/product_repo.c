#include "repo/product_repo.h"

#include "core/arena.h"
#include "core/err.h"
#include "core/metrics.h"
#include "domain/product.h"
#include "repo/db.h"

#include "core/banned.h"

static const char sql_insert[] =
    "INSERT INTO products (name, description, price_krw, stock, stock_added, created_at, "
    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)";
static const char sql_get[] =
    "SELECT id, name, description, price_krw, stock FROM products WHERE id = ?";
/* Locks the row: an admin patch is a read-modify-write that must not lose a concurrent
 * stock change. */
static const char sql_get_for_update[] =
    "SELECT id, name, description, price_krw, stock FROM products WHERE id = ? FOR UPDATE";
/* An admin's stock change is stock put in or taken out: stock_added follows it (assignments
 * run left to right, so stock_added sees the old stock). */
static const char sql_update[] =
    "UPDATE products SET name = ?, description = ?, price_krw = ?, "
    "stock_added = stock_added + ? - stock, stock = ?, updated_at = ? WHERE id = ?";
/*
 * The batch read of a cart's products: IN lists of fixed sizes, the unused places padded with
 * 0 (no product has that id), so that five prepared statements serve every batch.
 */
#define SELECT_PRODUCTS "SELECT id, name, description, price_krw, stock FROM products WHERE id IN "
#define IN_16           DB_IN_8 "," DB_IN_8
#define IN_32           IN_16 "," IN_16
static const char sql_in_8[] = SELECT_PRODUCTS "(" DB_IN_8 ")";
static const char sql_in_16[] = SELECT_PRODUCTS "(" IN_16 ")";
static const char sql_in_32[] = SELECT_PRODUCTS "(" IN_32 ")";
static const char sql_in_64[] = SELECT_PRODUCTS "(" IN_32 "," IN_32 ")";
static const char sql_in_100[] = SELECT_PRODUCTS "(" IN_32 "," IN_32 "," IN_32 ",?,?,?,?)";
static const struct {
    size_t places;
    const char *sql;
} in_shapes[] = {{8, sql_in_8},
                 {16, sql_in_16},
                 {32, sql_in_32},
                 {64, sql_in_64},
                 {PRODUCT_REPO_FIND_MAX, sql_in_100}};
static const char sql_page[] = "SELECT id, name, description, price_krw, stock FROM products "
                               "WHERE id > ? ORDER BY id LIMIT ?";

int product_repo_insert(struct db_conn *c, const struct product *p, int64_t now_us,
                        int64_t *product_id, struct err *e)
{
    struct db_val params[] = {DB_STR(p->name),  DB_STR(p->description), DB_INT(p->price_krw),
                              DB_INT(p->stock), DB_INT(p->stock),       DB_TIME(now_us),
                              DB_TIME(now_us)};

    return db_exec(c, sql_insert, params, 7, NULL, product_id, e);
}

static void row_to_product(const struct db_rows *rows, size_t i, struct product *out)
{
    out->product_id = db_int(rows, i, 0);
    out->name = db_str(rows, i, 1);
    out->description = db_str(rows, i, 2);
    out->price_krw = db_int(rows, i, 3);
    out->stock = db_int(rows, i, 4);
}

static int get_one(struct db_conn *c, const char *sql, int64_t product_id, struct arena *a,
                   struct product *out, struct err *e)
{
    struct db_val p[] = {DB_INT(product_id)};
    struct db_rows rows;

    if (db_query(c, sql, p, 1, a, &rows, e))
        return -1;
    if (!rows.nrows)
        return err_set(e, ERR_PRODUCT_NOT_FOUND, "product %lld does not exist",
                       (long long)product_id);
    row_to_product(&rows, 0, out);
    return 0;
}

int product_repo_get(struct db_conn *c, int64_t product_id, struct arena *a, struct product *out,
                     struct err *e)
{
    metrics_inc(METRIC_DB_PRODUCT_SELECTS);
    return get_one(c, sql_get, product_id, a, out, e);
}

int product_repo_find_many(struct db_conn *c, const int64_t *ids, size_t n, struct arena *a,
                           struct product **out, size_t *count, struct err *e)
{
    struct db_val p[PRODUCT_REPO_FIND_MAX];
    struct db_rows rows;
    size_t shape = 0;

    if (n > PRODUCT_REPO_FIND_MAX)
        return err_set(e, ERR_INTERNAL, "%zu products asked at once; at most %d", n,
                       PRODUCT_REPO_FIND_MAX);
    while (in_shapes[shape].places < n)
        shape++;
    for (size_t i = 0; i < in_shapes[shape].places; i++)
        p[i] = DB_INT(i < n ? ids[i] : 0);
    metrics_inc(METRIC_DB_PRODUCT_SELECTS);
    if (db_query(c, in_shapes[shape].sql, p, in_shapes[shape].places, a, &rows, e))
        return -1;
    *out = arena_calloc(a, rows.nrows ? rows.nrows : 1, sizeof(**out));
    for (size_t i = 0; i < rows.nrows; i++)
        row_to_product(&rows, i, &(*out)[i]);
    *count = rows.nrows;
    return 0;
}

int product_repo_get_for_update(struct db_conn *c, int64_t product_id, struct arena *a,
                                struct product *out, struct err *e)
{
    return get_one(c, sql_get_for_update, product_id, a, out, e);
}

int product_repo_update(struct db_conn *c, const struct product *p, int64_t now_us, struct err *e)
{
    struct db_val params[] = {DB_STR(p->name),      DB_STR(p->description), DB_INT(p->price_krw),
                              DB_INT(p->stock),     DB_INT(p->stock),       DB_TIME(now_us),
                              DB_INT(p->product_id)};

    return db_exec(c, sql_update, params, 7, NULL, NULL, e);
}

int product_repo_page(struct db_conn *c, int64_t after_id, int limit, struct arena *a,
                      struct product **out, size_t *count, struct err *e)
{
    struct db_val p[] = {DB_INT(after_id), DB_INT(limit)};
    struct db_rows rows;

    if (db_query(c, sql_page, p, 2, a, &rows, e))
        return -1;
    *out = arena_calloc(a, rows.nrows, sizeof(**out));
    for (size_t i = 0; i < rows.nrows; i++)
        row_to_product(&rows, i, &(*out)[i]);
    *count = rows.nrows;
    return 0;
}
