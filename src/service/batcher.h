#ifndef SHOPD_SERVICE_BATCHER_H
#define SHOPD_SERVICE_BATCHER_H

#include <stdbool.h>
#include <stddef.h>

/*
 * The queue of a group commit (service/charge_batch.h, service/pay_batch.h): requests that
 * arrive while a batch is being written wait for the next one, and one batch at a time is
 * written, of up to BATCHER_MAX requests, on the thread of the request that found no batch
 * being written (leader-follower). The others wait on a condition variable, never spinning,
 * and wake with their outcome. What a batch does in MariaDB is the caller's write function;
 * the queue only groups, orders nothing and knows no SQL. Thread-safe.
 *
 * One batch at a time, measured against 2 and 4 for charges (docs/PERFORMANCE.md, "One batch
 * at a time"): while one batch is written the queue fills the next, so batches are fuller,
 * and no batch finds rows another batch of the same kind holds.
 */

#define BATCHER_MAX 64

/* One request in the queue, embedded in the caller's own waiter (on the request's stack). */
struct batch_waiter {
    int state; /* the queue's */
    int attempts;
    bool again; /* set by the write: put it into the next batch (a deadlock's victim) */
    struct batch_waiter *next;
};

/* Writes a batch of n waiters (1..BATCHER_MAX, oldest first) and gives each its outcome,
 * on the leader's thread, with no lock of the queue's held. */
typedef void batch_write_fn(void *ctx, struct batch_waiter **batch, size_t n);

struct batcher_options {
    batch_write_fn *write;
    void *ctx;
    int max_attempts; /* batches a waiter may be put into again before it gives up */
};

struct batcher;

struct batcher *batcher_new(const struct batcher_options *o);
void batcher_free(struct batcher *b);

/* Puts w into the next batch and returns once a batch wrote it; again, into the batch after,
 * while the write sets w->again and w->attempts is below max_attempts. On return w->again
 * says whether it gave up that way. */
void batcher_run(struct batcher *b, struct batch_waiter *w);

/* How many wait for the next batch now (for tests). */
size_t batcher_queued(struct batcher *b);

#endif
