#include "service/batcher.h"

#include <pthread.h>
#include <stdlib.h>

#include "core/metrics.h"
#include "core/xalloc.h"

#include "core/banned.h"

enum waiter_state { WAITER_QUEUED, WAITER_TAKEN, WAITER_DONE };

struct batcher {
    struct batcher_options opt;
    pthread_mutex_t lock;
    pthread_cond_t settled; /* a batch ended: its waiters are DONE, the leader's place is free */
    struct batch_waiter *head;
    struct batch_waiter **tail;
    bool leading;
};

struct batcher *batcher_new(const struct batcher_options *o)
{
    struct batcher *b = xcalloc(1, sizeof(*b));

    b->opt = *o;
    b->tail = &b->head;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->settled, NULL);
    return b;
}

void batcher_free(struct batcher *b)
{
    if (!b)
        return;
    pthread_cond_destroy(&b->settled);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

/* Takes up to BATCHER_MAX waiters off the queue (the lock held), oldest first. */
static size_t take(struct batcher *b, struct batch_waiter **batch)
{
    size_t n = 0;

    while (b->head && n < BATCHER_MAX) {
        struct batch_waiter *w = b->head;
        b->head = w->next;
        w->next = NULL;
        w->state = WAITER_TAKEN;
        batch[n++] = w;
    }
    if (!b->head)
        b->tail = &b->head;
    return n;
}

static void enqueue(struct batcher *b, struct batch_waiter *w)
{
    w->state = WAITER_QUEUED;
    w->again = false;
    w->next = NULL;
    *b->tail = w;
    b->tail = &w->next;
}

/* Waits until w's batch was written, leading one when no batch is being written (the lock
 * held on entry and on return). */
static void wait_for_batch(struct batcher *b, struct batch_waiter *w)
{
    struct batch_waiter *batch[BATCHER_MAX];

    while (w->state != WAITER_DONE) {
        if (w->state != WAITER_QUEUED || b->leading) {
            pthread_cond_wait(&b->settled, &b->lock);
            continue;
        }
        b->leading = true;
        size_t n = take(b, batch);
        pthread_mutex_unlock(&b->lock);
        b->opt.write(b->opt.ctx, batch, n);
        pthread_mutex_lock(&b->lock);
        for (size_t i = 0; i < n; i++)
            batch[i]->state = WAITER_DONE;
        b->leading = false;
        pthread_cond_broadcast(&b->settled);
    }
}

void batcher_run(struct batcher *b, struct batch_waiter *w)
{
    w->attempts = 0;
    pthread_mutex_lock(&b->lock);
    do {
        if (w->attempts++)
            metrics_inc(METRIC_DB_DEADLOCK_RETRIES);
        enqueue(b, w);
        wait_for_batch(b, w);
    } while (w->again && w->attempts < b->opt.max_attempts);
    pthread_mutex_unlock(&b->lock);
}

size_t batcher_queued(struct batcher *b)
{
    size_t n = 0;

    pthread_mutex_lock(&b->lock);
    for (const struct batch_waiter *w = b->head; w; w = w->next)
        n++;
    pthread_mutex_unlock(&b->lock);
    return n;
}
