#include "service/pay_batch.h"

#include <stdbool.h>
#include <stdlib.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/metrics.h"
#include "core/xalloc.h"
#include "repo/db.h"
#include "repo/idem_repo.h"
#include "repo/order_repo.h"
#include "service/batcher.h"
#include "service/idem_svc.h"
#include "service/svc.h"
#include "service/write.h"

#include "core/banned.h"

/* Batches a payment may be put back into after a deadlock before it is answered 503. */
#define MAX_ATTEMPTS 4

/* One request's payment, on its own stack, while it waits for a batch. */
struct waiter {
    struct batch_waiter base; /* first: a batch's waiters are these */
    const struct write_op *op;
    const struct write_req *w;
    struct order_settled *result;
    struct arena *a; /* the request's: the leader renders into it while the waiter sleeps */
    /* What the batch did with it. */
    struct idem_row_key key;
    struct order_pay_item item;
    struct err e;
    bool failed; /* the batch itself failed: e says how */
    struct idem_response out;
};

struct pay_batcher {
    struct svc *svc;
    struct batcher *queue;
};

static void write_batch(void *ctx, struct batch_waiter **waiters, size_t n);

struct pay_batcher *pay_batcher_new(struct svc *s)
{
    struct pay_batcher *b = xcalloc(1, sizeof(*b));

    b->svc = s;
    b->queue = batcher_new(
        &(struct batcher_options){.write = write_batch, .ctx = b, .max_attempts = MAX_ATTEMPTS});
    return b;
}

void pay_batcher_free(struct pay_batcher *b)
{
    if (!b)
        return;
    batcher_free(b->queue);
    free(b);
}

/* The lock order of balances: by user. A user's own payments go in order of their orders. */
static int by_user(const void *x, const void *y)
{
    const struct waiter *a = *(const struct waiter *const *)x;
    const struct waiter *b = *(const struct waiter *const *)y;

    if (a->key.user_id != b->key.user_id)
        return (a->key.user_id > b->key.user_id) - (a->key.user_id < b->key.user_id);
    return (a->item.order_id > b->item.order_id) - (a->item.order_id < b->item.order_id);
}

static void fail_all(struct waiter **batch, size_t n, const struct err *e)
{
    for (size_t i = 0; i < n; i++) {
        batch[i]->failed = true;
        batch[i]->e = *e;
    }
}

/* The responses and events of the paid ones, rendered into their requests' arenas (the
 * events into the batch's), then the commit. */
static int respond_commit(struct db_conn *c, struct waiter **batch, size_t n, int64_t now_us,
                          struct arena *a, struct err *e)
{
    struct idem_response_row *rows = arena_calloc(a, n, sizeof(*rows));
    size_t count = 0;

    for (size_t i = 0; i < n; i++) {
        struct waiter *w = batch[i];
        if (w->item.how != IDEM_START_OPEN)
            continue;
        *w->result = w->item.settled;
        struct idem_event *event = arena_calloc(a, 1, sizeof(*event));
        if (!w->op->event || !w->op->event(w->result, now_us, a, event))
            event = NULL;
        w->out = (struct idem_response){.status = w->w->idem->status,
                                        .body = w->op->render(w->result, w->a)};
        rows[count++] = (struct idem_response_row){.row_id = w->item.key_row_id,
                                                   .status = w->out.status,
                                                   .body = w->out.body,
                                                   .event = event};
    }
    return idem_repo_respond_batch_commit(c, rows, count, e);
}

/* Writes one batch on the leader's thread; every waiter of it gets its outcome. */
static void write_batch(void *ctx, struct batch_waiter **waiters, size_t n)
{
    struct pay_batcher *b = ctx;
    struct waiter **batch = (struct waiter **)waiters; /* each begins with its batch_waiter */
    struct order_pay_item *items;
    struct arena a = ARENA_INIT;
    int64_t now_us = clock_now_us();
    struct db_conn *c;
    struct err e;
    bool open = false;

    err_clear(&e);
    for (size_t i = 0; i < n; i++) {
        struct waiter *w = batch[i];
        w->key = idem_svc_row_key(w->w->idem);
        w->item.order_id = *(const int64_t *)w->w->args;
    }
    qsort(batch, n, sizeof(struct waiter *), by_user);
    if (db_acquire(b->svc->db, &c, &e)) {
        fail_all(batch, n, &e);
        return;
    }
    items = arena_calloc(&a, n, sizeof(*items));
    for (size_t i = 0; i < n; i++) {
        struct waiter *w = batch[i];
        w->failed = false;
        err_clear(&w->e);
        items[i] = (struct order_pay_item){.key = &w->key,
                                           .fingerprint = w->w->idem->fingerprint,
                                           .order_id = w->item.order_id,
                                           .a = w->a,
                                           .e = &w->e};
    }
    int rc = order_repo_pay_batch(c, items, n, now_us, &a, &open, &e);
    for (size_t i = 0; !rc && i < n; i++)
        batch[i]->item = items[i];
    if (!rc && open)
        rc = respond_commit(c, batch, n, now_us, &a, &e);
    if (rc) {
        db_rollback(c);
        /* A deadlock's victim is worth another batch, as the procedure's own outcome says. */
        if (db_last_errno(c) == DB_ER_DEADLOCK)
            for (size_t i = 0; i < n; i++)
                batch[i]->item.how = IDEM_START_AGAIN;
        else
            fail_all(batch, n, &e);
    }
    for (size_t i = 0; i < n; i++) /* a deadlock's victims, the whole batch, go again */
        batch[i]->base.again =
            !batch[i]->failed && !batch[i]->item.busy && batch[i]->item.how == IDEM_START_AGAIN;
    metrics_inc(METRIC_PAY_BATCHES);
    metrics_add(METRIC_PAY_BATCHED, n);
    db_release(b->svc->db, c);
    arena_release(&a);
}

int pay_batcher_run(struct pay_batcher *b, const struct write_op *op, const struct write_req *w,
                    void *result, struct arena *a, struct idem_response *out, struct err *e)
{
    struct waiter waiter = {.op = op, .w = w, .result = result, .a = a};

    batcher_run(b->queue, &waiter.base);
    if (waiter.failed) {
        *e = waiter.e;
        return -1;
    }
    if (waiter.item.busy)
        return 1; /* its key or a row is held: it waits on its own, holding up no batch */
    if (waiter.item.how == IDEM_START_AGAIN)
        return err_set(e, ERR_UNAVAILABLE, "idempotency key '%.64s' is contended; retry",
                       w->idem->key);
    if (waiter.item.how == IDEM_START_OPEN) {
        *out = waiter.out;
        return 0;
    }
    *e = waiter.e;
    return idem_svc_settle_batched(b->svc, w->idem, waiter.item.how, a, out, e);
}
