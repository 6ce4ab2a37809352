#ifndef SHOPD_SERVICE_PAY_BATCH_H
#define SHOPD_SERVICE_PAY_BATCH_H

/*
 * Group commit of payments (SHOPD_LOCKS=db with SHOPD_GROUP_COMMIT=on, the default), as
 * service/charge_batch.h does charges: the payments that arrive while a batch is being written
 * wait for the next one (service/batcher.h), and a batch of up to BATCHER_MAX goes into MariaDB
 * in one transaction of two round trips (shopd_pay_batch, then
 * shopd_respond_events_batch_commit, migration 0015) instead of two each. Each payment keeps
 * its own savepoint and so its own exact outcome, as a single one's: paid (its response and
 * its order.paid event written with the batch's commit), refused (stored with its key
 * afterwards), a duplicate key replayed, a lock wait, a deadlock's victim put into the next
 * batch, and a payment whose key or rows another transaction holds handed back to run on its
 * own. The invariants are the single payment's statements, in MariaDB.
 *
 * Thread-safe.
 */

struct arena;
struct err;
struct idem_response;
struct svc;
struct write_op;
struct write_req;

struct pay_batcher;

struct pay_batcher *pay_batcher_new(struct svc *s);
void pay_batcher_free(struct pay_batcher *b);

/* One payment of w (its args the order's id) through the next batch, rendered and published
 * as op says: the outcomes and errors of write_run (service/write.h), result (a struct
 * order_settled) filled on a fresh success; or 1 when its key or one of its rows was held by
 * another transaction: the caller runs it on its own. */
int pay_batcher_run(struct pay_batcher *b, const struct write_op *op, const struct write_req *w,
                    void *result, struct arena *a, struct idem_response *out, struct err *e);

#endif
