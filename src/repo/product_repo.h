#ifndef SHOPD_REPO_PRODUCT_REPO_H
#define SHOPD_REPO_PRODUCT_REPO_H

#include <stddef.h>
#include <stdint.h>

/*
 * The products table. Called inside the caller's transaction where there is one. Errors as in
 * repo/db.h; a missing product is ERR_PRODUCT_NOT_FOUND. Strings are copied into the arena.
 */

struct arena;
struct db_conn;
struct err;
struct product;

int product_repo_insert(struct db_conn *c, const struct product *p, int64_t now_us,
                        int64_t *product_id, struct err *e);

int product_repo_get(struct db_conn *c, int64_t product_id, struct arena *a, struct product *out,
                     struct err *e);

/*
 * The products of n ids (n <= PRODUCT_REPO_FIND_MAX), in one statement: *out gets *count
 * products, in no particular order; ids that match no product are left out. The statement is
 * one of a few prepared shapes (8, 16, 32, 64 or 100 ids, padded), so that every batch size
 * reuses a prepared statement.
 */
#define PRODUCT_REPO_FIND_MAX 100
int product_repo_find_many(struct db_conn *c, const int64_t *ids, size_t n, struct arena *a,
                           struct product **out, size_t *count, struct err *e);

/* The product, its row locked until the transaction ends (for a read-modify-write). */
int product_repo_get_for_update(struct db_conn *c, int64_t product_id, struct arena *a,
                                struct product *out, struct err *e);

/* Writes every field of p (the caller read it for update). */
int product_repo_update(struct db_conn *c, const struct product *p, int64_t now_us, struct err *e);

/* The stock movements of orders (reserve, release, sell, restock) are statements of the
 * order procedures (db/migrations/0010), each conditional on what it takes from. */

/* Up to limit products with id > after_id, by id. */
int product_repo_page(struct db_conn *c, int64_t after_id, int limit, struct arena *a,
                      struct product **out, size_t *count, struct err *e);

#endif
