#ifndef SHOPD_HTTP_WORK_POOL_H
#define SHOPD_HTTP_WORK_POOL_H

#include <stddef.h>

/*
 * The bounded pool of threads that run the handlers which may block: a MariaDB transaction, a
 * row-lock or lock-lease wait, a Redis round trip. The event loops never block; they hand such
 * a request here and get its answer back by message (http/exchange.c). Items run in the order
 * they were submitted (FIFO), each on one thread from start to end, so a handler's per-thread
 * state (core/round_trips.h, the pooled connections it checks out) is its own.
 */

struct work_item {
    struct work_item *next; /* pool-private */
    void (*run)(struct work_item *item);
};

struct work_pool;

/* threads workers, at most queue_max items waiting for one. */
struct work_pool *work_pool_new(int threads, size_t queue_max);

/* Queues item; -1 when queue_max items already wait (the caller answers 503). */
int work_pool_submit(struct work_pool *p, struct work_item *item);

/* Items waiting for a thread now (a gauge for /metrics and the overload answer). */
size_t work_pool_waiting(struct work_pool *p);

/* Runs what is queued, then joins every thread and frees p. */
void work_pool_free(struct work_pool *p);

#endif
