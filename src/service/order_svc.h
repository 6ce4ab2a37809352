#ifndef SHOPD_SERVICE_ORDER_SVC_H
#define SHOPD_SERVICE_ORDER_SVC_H

#include <stddef.h>
#include <stdint.h>

#include "service/idem_svc.h"

/*
 * Orders and payments (API.md "Orders and payments"), exactly once under any concurrency:
 * each write is one MariaDB transaction holding its idempotency key, run by the write engine
 * (service/write.h) under the lock the reference system used in SHOPD_LOCKS=redis (order
 * creation per key, payment and cancel per order). Products are always touched in ascending
 * id order. Product caches are invalidated after commit. Thread-safe. Every outcome of a write
 * is stored with its key, refusals included (ERR_OUT_OF_STOCK, ERR_INSUFFICIENT_BALANCE,
 * ERR_ORDER_NOT_PAYABLE, ERR_ORDER_NOT_FOUND…: service/idem_svc.h), and replayed to that key.
 * Round trips to MariaDB when it succeeds: create 3, payment 2, cancel 2.
 */

struct arena;
struct err;
struct order;
struct order_item;
struct svc;

struct order_request {
    int64_t user_id;
    struct order_item *items; /* product_id and quantity; sorted and checked here */
    size_t count;
    int64_t coupon_id; /* 0: none */
};

/* Creates the order (the response: the order). */
int order_svc_create(struct svc *s, const struct idem_request *idem, struct order_request *rq,
                     struct arena *a, struct idem_response *out, struct err *e);

/* Pays idem->user_id's PENDING order from the balance (the response: the payment). */
int order_svc_pay(struct svc *s, const struct idem_request *idem, int64_t order_id, struct arena *a,
                  struct idem_response *out, struct err *e);

/* Cancels a PENDING or PAID order of idem->user_id (the response: the order). */
int order_svc_cancel(struct svc *s, const struct idem_request *idem, int64_t order_id,
                     struct arena *a, struct idem_response *out, struct err *e);

/* The order, if it is the user's (or admin); another user's order is ERR_ORDER_NOT_FOUND. */
int order_svc_get(struct svc *s, int64_t order_id, int64_t user_id, int is_admin, struct arena *a,
                  struct order *out, struct err *e);

int order_svc_list(struct svc *s, int64_t user_id, int status_filter, int status, int64_t before_id,
                   int limit, struct arena *a, struct order **out, size_t *count, int *more,
                   struct err *e);

/* Expires PENDING orders whose time ran out (stock and coupon back); *expired counts them.
 * Safe with several instances sweeping at once. */
int order_svc_expire_due(struct svc *s, size_t *expired, struct err *e);

#endif
