#ifndef SHOPD_SERVICE_ORDER_BATCH_H
#define SHOPD_SERVICE_ORDER_BATCH_H

#include <stdint.h>

/*
 * Group commit of orders without a coupon (service/write_batch.h): a batch of orders priced
 * beforehand in shopd_order_place_batch (migration 0016), then shopd_respond_batch_commit with
 * their responses and the refusals among them, instead of two round trips and a commit each.
 * Each line's stock is the single order's conditional UPDATE, on condition too that the product
 * still has the price and name the order was priced with (else the order runs alone).
 */

struct arena;
struct err;
struct idem_response;
struct order;
struct svc;
struct write_batcher;
struct write_op;
struct write_req;

struct write_batcher *order_batcher_new(struct svc *s);

/* The order o of w, priced, without a coupon, through the next batch, rendered as op says, as
 * write_batcher_run; o's id, created and due times set on a fresh success. */
int order_batcher_run(struct write_batcher *b, const struct write_op *op, const struct write_req *w,
                      struct order *o, struct arena *a, struct idem_response *out, struct err *e);

#endif
