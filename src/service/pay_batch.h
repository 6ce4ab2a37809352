#ifndef SHOPD_SERVICE_PAY_BATCH_H
#define SHOPD_SERVICE_PAY_BATCH_H

/*
 * Group commit of payments (service/write_batch.h): a batch of payments in shopd_pay_batch
 * (migration 0015), in ascending user id, then shopd_respond_events_batch_commit with their
 * order.paid events, instead of two round trips and a commit each. Each payment is the single
 * payment's statements (shopd_order_settle's), in MariaDB.
 */

struct arena;
struct err;
struct idem_response;
struct svc;
struct write_batcher;
struct write_op;
struct write_req;

struct write_batcher *pay_batcher_new(struct svc *s);

/* One payment of w (its args the order's id) through the next batch, rendered and published
 * as op says, as write_batcher_run; result (a struct order_settled) filled on a fresh
 * success. */
int pay_batcher_run(struct write_batcher *b, const struct write_op *op, const struct write_req *w,
                    void *result, struct arena *a, struct idem_response *out, struct err *e);

#endif
