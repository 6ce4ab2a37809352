#ifndef SHOPD_REPO_ORDER_REPO_H
#define SHOPD_REPO_ORDER_REPO_H

#include <stddef.h>
#include <stdint.h>

/*
 * Orders, their items, payments and outbox events. Called inside the caller's transaction.
 * Errors as in repo/db.h; a missing order is ERR_ORDER_NOT_FOUND.
 */

struct arena;
struct db_conn;
struct err;
struct order;
enum order_status;

/* Inserts the order and its items; fills o->order_id. */
int order_repo_insert(struct db_conn *c, struct order *o, struct err *e);

/* The order with its items; for_update locks the order row until the transaction ends. */
int order_repo_get(struct db_conn *c, int64_t order_id, int for_update, struct arena *a,
                   struct order *out, struct err *e);

/* Moves the order from status `from` to `to` (paid_us sets paid_at when non-zero); the write
 * is conditional on the status (and on the fence when non-zero). 0 rows → ERR_INTERNAL. */
int order_repo_transition(struct db_conn *c, int64_t order_id, enum order_status from,
                          enum order_status to, int64_t at_us, int64_t fence, struct err *e);

/* A page of the user's orders, newest first, below before_id (0: from the newest), only in
 * status when status_filter is non-zero. */
int order_repo_page(struct db_conn *c, int64_t user_id, int status_filter, int status,
                    int64_t before_id, int limit, struct arena *a, struct order **out,
                    size_t *count, struct err *e);

/* PENDING orders whose time ran out, oldest first, at most limit (skipping locked ones). */
int order_repo_expired(struct db_conn *c, int64_t now_us, int limit, struct arena *a, int64_t **ids,
                       size_t *count, struct err *e);

/* The payment row (unique per order: a second one is ERR_ORDER_NOT_PAYABLE). */
int order_repo_insert_payment(struct db_conn *c, int64_t order_id, int64_t user_id,
                              int64_t amount_krw, int64_t at_us, int64_t *payment_id,
                              struct err *e);
int order_repo_refund_payment(struct db_conn *c, int64_t order_id, struct err *e);

/* An outbox event, unique by event_id. */
int order_repo_add_event(struct db_conn *c, const char *event_id, const char *type,
                         int64_t order_id, const char *payload, int64_t at_us, struct err *e);

/* Coupon bookkeeping of an order: find and lock the user's AVAILABLE, unexpired coupon
 * (ERR_COUPON_NOT_USABLE otherwise; *type and *value describe it), mark it USED by the order,
 * or give it back when the order is cancelled or expires. */
int order_repo_use_coupon(struct db_conn *c, int64_t user_id, int64_t coupon_id, int64_t now_us,
                          struct arena *a, int64_t *user_coupon_id, const char **type,
                          int64_t *value, struct err *e);
int order_repo_attach_coupon(struct db_conn *c, int64_t user_coupon_id, int64_t order_id,
                             int64_t now_us, struct err *e);
int order_repo_restore_coupon(struct db_conn *c, int64_t order_id, struct err *e);

#endif
