#ifndef SHOPD_REPO_ORDER_REPO_H
#define SHOPD_REPO_ORDER_REPO_H

#include <stddef.h>
#include <stdint.h>

#include "domain/order.h"
#include "repo/idem_repo.h"

/*
 * Orders, their items, payments and outbox events. Errors as in repo/db.h; a missing order is
 * ERR_ORDER_NOT_FOUND.
 */

struct arena;
struct db_conn;
struct err;

/* The order with its items. */
int order_repo_get(struct db_conn *c, int64_t order_id, struct arena *a, struct order *out,
                   struct err *e);

/* A page of the user's orders, newest first, below before_id (0: from the newest), only in
 * status when status_filter is non-zero. */
int order_repo_page(struct db_conn *c, int64_t user_id, int status_filter, int status,
                    int64_t before_id, int limit, struct arena *a, struct order **out,
                    size_t *count, struct err *e);

/*
 * The keyed writes of orders run as stored procedures (migration 0010), each a start that
 * begins the transaction inside MariaDB, claims key (with fingerprint) and does the effect,
 * leaving the transaction open on IDEM_START_OPEN for idem_repo_respond_commit: the exception
 * to "repos never begin a transaction" that balance_repo_charge_begin makes too, for the
 * round trips it saves. *how and e as idem_repo_shared_outcome, plus each one's refusals (e,
 * *how REFUSED). -1 with e when the call failed; the caller rolls back.
 */
struct idem_row_key;
enum idem_start;

/* The coupon an order reserved: the user's coupon row, locked, and its discount. */
struct order_coupon {
    int64_t user_coupon_id; /* 0: none */
    const char *type;
    int64_t value;
};

/*
 * An order's start (shopd_order_open, migration 0014): o->user_id's order of o->items
 * (product_id and quantity, ids unique) checked against its products as they are now, without
 * locking them; product_name and unit_price_krw filled from them; o->coupon_id's coupon locked
 * into *coupon; the order row inserted with zero amounts, its id into o->order_id (o->created_us
 * and o->expires_us are stored). Refusals, with *how REFUSED_OPEN (the transaction holds the
 * claim alone): ERR_PRODUCT_NOT_FOUND, ERR_OUT_OF_STOCK, ERR_COUPON_NOT_USABLE,
 * ERR_USER_NOT_FOUND.
 */
int order_repo_open(struct db_conn *c, const struct idem_row_key *key,
                    const unsigned char fingerprint[32], int64_t now_us, struct order *o,
                    struct arena *a, enum idem_start *how, int64_t *key_row_id,
                    struct order_coupon *coupon, struct err *e);

/*
 * The end of the transaction order_repo_open left open, in one call: every line's stock taken
 * in ascending id, the priced order (its amounts, its lines as o has them) written, its coupon
 * used, the response (status, body) stored with key_row_id's key, COMMIT. *how COMMITTED; or
 * REFUSED with ERR_OUT_OF_STOCK (another order took the stock since the open: rolled back
 * whole), or as idem_repo_shared_outcome.
 */
int order_repo_commit(struct db_conn *c, int64_t key_row_id, const struct order *o, int status,
                      const char *body, struct arena *a, enum idem_start *how, struct err *e);

/* One order of a batch (order_repo_place_batch): priced, then what the batch did. */
struct order_place_item {
    const struct idem_row_key *key;
    const unsigned char *fingerprint; /* 32 bytes */
    struct order *order;              /* priced, without a coupon; its order_id set when placed */
    enum idem_start how; /* OPEN: placed; REFUSED_OPEN: refused, its key claimed for the refusal */
    bool busy;           /* not placed: a row or its key was held, or a product changed since */
    int64_t key_row_id;
    struct err *e; /* REFUSED_OPEN: why, as order_repo_open's refusals */
};

/*
 * Group commit: the orders of items[] in one transaction and one round trip
 * (shopd_order_place_batch, migration 0016), each behind a savepoint of its own, each line's stock
 * taken on condition that its price and name are still those it was priced with, created at now_us
 * and due at expires_us. *open says whether any key was claimed: the transaction is then left open
 * for idem_repo_respond_batch_commit, with the responses of the placed ones and the refusals. A
 * deadlock rolls everything back (every how AGAIN). -1 with e when the call failed; the caller
 * rolls back.
 */
int order_repo_place_batch(struct db_conn *c, struct order_place_item *items, size_t n,
                           int64_t now_us, int64_t expires_us, struct arena *a, bool *open,
                           struct err *e);

enum order_settle { ORDER_SETTLE_PAY, ORDER_SETTLE_CANCEL };

/* What a payment or cancel did: the order after it, with its lines. */
struct order_settled {
    struct order *order;
    enum order_status was;
    int64_t balance_krw; /* a payment's: the balance left */
    int64_t payment_id;
};

/*
 * A payment or cancel of key->user_id's order order_id, up to its response, from the states
 * the domain allows (order_can_pay, order_can_cancel), fenced by fence as the order's lock (0 is
 * unguarded). Refusals: ERR_ORDER_NOT_FOUND (also another user's order),
 * ERR_ORDER_NOT_PAYABLE (not PENDING, or past its time limit), ERR_ORDER_NOT_CANCELLABLE,
 * ERR_INSUFFICIENT_BALANCE; ERR_UNAVAILABLE for a newer lock holder (not stored).
 */
int order_repo_settle(struct db_conn *c, enum order_settle kind, const struct idem_row_key *key,
                      const unsigned char fingerprint[32], int64_t now_us, int64_t order_id,
                      int64_t fence, struct arena *a, enum idem_start *how, int64_t *key_row_id,
                      struct order_settled *out, struct err *e);

/* One payment of a batch (order_repo_pay_batch): what to pay, then what the batch did. */
struct order_pay_item {
    const struct idem_row_key *key;
    const unsigned char *fingerprint; /* 32 bytes */
    int64_t order_id;
    struct arena *a;     /* the paid order is copied here: it outlives the batch's arena */
    enum idem_start how; /* OPEN: paid, in the transaction left open */
    bool busy;           /* not tried: another transaction held one of its rows or its key */
    int64_t key_row_id;
    struct order_settled settled; /* OPEN: as order_repo_settle's */
    struct err *e;                /* REFUSED: why, as order_repo_settle's refusals */
};

/*
 * Group commit: the payments of items[] (ascending user id, the caller's order) in one
 * transaction and one round trip (shopd_pay_batch, migration 0015), each behind a savepoint of
 * its own, so that each gets its own outcome in items[i].how (or busy: the batch waits on no
 * lock other work holds). *open says whether any was paid: the transaction is then left open
 * for idem_repo_respond_batch_commit. A deadlock rolls everything back (every how AGAIN). -1
 * with e when the call failed; the caller rolls back.
 */
int order_repo_pay_batch(struct db_conn *c, struct order_pay_item *items, size_t n, int64_t now_us,
                         struct arena *a, bool *open, struct err *e);

/*
 * One sweep, committed in one call (shopd_expire_due): up to limit PENDING orders past their
 * time that nobody holds, expired with their stock and coupons given back. *expired counts
 * them; *product_ids (arena) are the products whose stock moved. Needs no transaction open.
 */
int order_repo_expire_due(struct db_conn *c, int64_t now_us, int limit, struct arena *a,
                          size_t *expired, int64_t **product_ids, size_t *nproducts, struct err *e);

#endif
