#ifndef SHOPD_REPO_CART_REPO_H
#define SHOPD_REPO_CART_REPO_H

#include <stddef.h>
#include <stdint.h>

/*
 * The cart_items table: one row per (user, product) with its quantity. Errors as in
 * repo/db.h.
 */

struct arena;
struct db_conn;
struct err;
struct cart_line;

/* Locks the user's row for the rest of the transaction, so that changes to one cart run one
 * at a time (the line limit is exact under concurrency). ERR_USER_NOT_FOUND if none. */
int cart_repo_lock_owner(struct db_conn *c, int64_t user_id, struct err *e);

/* How many lines the user's cart has for products other than product_id. */
int cart_repo_count_other_lines(struct db_conn *c, int64_t user_id, int64_t product_id,
                                int64_t *count, struct err *e);

/* The user's lines, by product id. */
int cart_repo_lines(struct db_conn *c, int64_t user_id, struct arena *a, struct cart_line **out,
                    size_t *count, struct err *e);

/* Adds quantity to the line (creating it) as long as the sum stays <= max_quantity;
 * ERR_INVALID_INPUT otherwise. */
int cart_repo_add(struct db_conn *c, int64_t user_id, int64_t product_id, int64_t quantity,
                  int64_t max_quantity, int64_t now_us, struct err *e);

/* Sets the line's quantity (creating it); 0 removes it. */
int cart_repo_set(struct db_conn *c, int64_t user_id, int64_t product_id, int64_t quantity,
                  int64_t now_us, struct err *e);

#endif
