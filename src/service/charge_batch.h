#ifndef SHOPD_SERVICE_CHARGE_BATCH_H
#define SHOPD_SERVICE_CHARGE_BATCH_H

#include <stdint.h>

/*
 * Group commit of charges (SHOPD_LOCKS=db with SHOPD_GROUP_COMMIT=on, the default): the charges
 * that arrive while a batch is being written wait for the next one (service/batcher.h), and a
 * batch of up to BATCHER_MAX goes into MariaDB in one transaction of two round trips
 * (shopd_charge_batch, then shopd_respond_batch_commit), as TigerBeetle batches transfers.
 * Each charge keeps its own savepoint inside the batch and so its own exact outcome: charged,
 * refused (stored with its key afterwards, as the write engine stores refusals), a duplicate
 * key (replayed once the batch committed, whether the first was in this batch or not), a lock
 * wait (409 IDEMPOTENCY_IN_FLIGHT or 503, as the engine says), a deadlock victim put into the
 * next batch, and a charge whose row or key another transaction holds handed back to run on
 * its own, so that one busy row holds up nobody else. The invariants are the single charge's:
 * the same conditional UPDATE, the same unique key, the same history row, all in MariaDB.
 *
 * Thread-safe.
 */

struct arena;
struct err;
struct idem_request;
struct idem_response;
struct svc;

struct charge_batcher;

struct charge_batcher *charge_batcher_new(struct svc *s);
void charge_batcher_free(struct charge_batcher *b);

/* One charge through the next batch: the outcomes and errors of write_run (service/write.h),
 * or 1 when its user's row or its key was held by another transaction: the caller runs it
 * on its own (a batch waits on no lock that other work holds). */
int charge_batcher_run(struct charge_batcher *b, const struct idem_request *r, int64_t user_id,
                       int64_t amount_krw, struct arena *a, struct idem_response *out,
                       struct err *e);

#endif
