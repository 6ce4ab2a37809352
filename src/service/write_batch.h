#ifndef SHOPD_SERVICE_WRITE_BATCH_H
#define SHOPD_SERVICE_WRITE_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/metrics.h"
#include "repo/idem_repo.h"
#include "service/batcher.h"
#include "service/idem_svc.h"

/*
 * A group commit of keyed writes of one kind (service/charge_batch.h, service/pay_batch.h),
 * with SHOPD_LOCKS=db and SHOPD_GROUP_COMMIT=on, the defaults: the writes that arrive while a
 * batch is being written wait for the next one (service/batcher.h), and a batch of up to
 * BATCHER_MAX goes into MariaDB in one transaction of two round trips, the kind's effect (one
 * procedure that runs each write behind a savepoint of its own, with a lock wait of 0) and
 * idem_repo_respond_batch_commit (the responses, with their events, and COMMIT), as
 * TigerBeetle batches transfers.
 *
 * Each write keeps its own exact outcome, as a single one's: done (its response written with
 * the batch's commit); refused (its refusal written with the batch's commit when the effect
 * claimed its key for it, REFUSED_OPEN, or else stored with its key afterwards, as the write
 * engine stores refusals); a duplicate key (replayed once the batch committed, whether its first
 * was in this batch or not); a lock wait (409 IDEMPOTENCY_IN_FLIGHT or 503, as the engine says); a
 * deadlock's victim (the whole batch) put into the next batch; and a write whose key or rows
 * another transaction holds handed back to run on its own, so that one busy row holds up
 * nobody else. The invariants are the single write's statements, in MariaDB. Thread-safe.
 */

struct arena;
struct db_conn;
struct svc;

/* One request's write while it waits for a batch, first in the kind's own waiter (on the
 * request's stack). */
struct write_batch_item {
    struct batch_waiter base; /* first: a batch's waiters are these */
    const struct idem_request *r;
    struct arena *a; /* the request's: the leader renders into it while the request sleeps */
    /* What the batch did with it. */
    struct idem_row_key key;
    enum idem_start how; /* OPEN: done, its response due; REFUSED_OPEN: its refusal due (e) */
    bool busy;
    int64_t key_row_id;
    struct err e;
    bool failed; /* the batch itself failed: e says how */
    struct idem_response out;
};

struct write_batch_kind {
    /* The lock order of the kind's rows, as qsort's over struct write_batch_item pointers;
     * NULL: as they came. */
    int (*compare)(const void *x, const void *y);
    /* Begins and does the effects of batch[] (sorted), filling each item's how, busy,
     * key_row_id and e; *open when one was done (or its key claimed for its refusal) and the
     * transaction is left open. -1 with e when the call failed (the caller rolls back). */
    int (*effect)(struct db_conn *c, struct write_batch_item **batch, size_t n, int64_t now_us,
                  struct arena *a, bool *open, struct err *e);
    /* A done item's response rendered into it->a (and its event, if any, into a). */
    void (*respond)(struct write_batch_item *it, int64_t now_us, struct arena *a,
                    struct idem_response_row *row);
    enum metric_id batches, batched;
};

struct write_batcher;

struct write_batcher *write_batcher_new(struct svc *s, const struct write_batch_kind *kind);
void write_batcher_free(struct write_batcher *b);

/* it (its r and a set) through the next batch: the outcomes and errors of write_run
 * (service/write.h), or 1 when its key or one of its rows was held by another transaction:
 * the caller runs it on its own. */
int write_batcher_run(struct write_batcher *b, struct write_batch_item *it,
                      struct idem_response *out, struct err *e);

#endif
