#include "service/write_batch.h"

#include <stdlib.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/xalloc.h"
#include "repo/db.h"
#include "service/svc.h"

#include "core/banned.h"

/* Batches a write may be put back into after a deadlock before it is answered 503. */
#define MAX_ATTEMPTS 4

struct write_batcher {
    struct svc *svc;
    const struct write_batch_kind *kind;
    struct batcher *queue;
};

static void write_batch(void *ctx, struct batch_waiter **waiters, size_t n);

struct write_batcher *write_batcher_new(struct svc *s, const struct write_batch_kind *kind)
{
    struct write_batcher *b = xcalloc(1, sizeof(*b));

    b->svc = s;
    b->kind = kind;
    b->queue = batcher_new(
        &(struct batcher_options){.write = write_batch, .ctx = b, .max_attempts = MAX_ATTEMPTS});
    return b;
}

void write_batcher_free(struct write_batcher *b)
{
    if (!b)
        return;
    batcher_free(b->queue);
    free(b);
}

static void fail_all(struct write_batch_item **batch, size_t n, const struct err *e)
{
    for (size_t i = 0; i < n; i++) {
        batch[i]->failed = true;
        batch[i]->e = *e;
    }
}

/* The responses of the done ones, then the commit. */
static int respond_commit(const struct write_batch_kind *kind, struct db_conn *c,
                          struct write_batch_item **batch, size_t n, int64_t now_us,
                          struct arena *a, struct err *e)
{
    struct idem_response_row *rows = arena_calloc(a, n, sizeof(*rows));
    size_t count = 0;

    for (size_t i = 0; i < n; i++) {
        struct write_batch_item *it = batch[i];
        if (it->how != IDEM_START_OPEN && it->how != IDEM_START_REFUSED_OPEN)
            continue;
        struct idem_response_row *row = &rows[count++];
        row->row_id = it->key_row_id;
        if (it->how == IDEM_START_REFUSED_OPEN) { /* a refusal whose key the batch claimed */
            if (!idem_svc_stores_refusal(it->e.code))
                BUG("a batch claimed a key for what is not a refusal");
            row->status = err_status(it->e.code);
            row->body = it->r->render_problem(&it->e, it->a);
            continue;
        }
        kind->respond(it, now_us, a, row);
        row->status = it->r->status;
        it->out = (struct idem_response){.status = row->status, .body = row->body};
    }
    return idem_repo_respond_batch_commit(c, rows, count, e);
}

/* Writes one batch on the leader's thread; every item of it gets its outcome. */
static void write_batch(void *ctx, struct batch_waiter **waiters, size_t n)
{
    struct write_batcher *b = ctx;
    struct write_batch_item **batch = (struct write_batch_item **)waiters; /* each begins so */
    struct arena a = ARENA_INIT;
    int64_t now_us = clock_now_us();
    struct db_conn *c;
    struct err e;
    bool open = false;

    err_clear(&e);
    for (size_t i = 0; i < n; i++) {
        struct write_batch_item *it = batch[i];
        it->key = idem_svc_row_key(it->r);
        it->how = IDEM_START_AGAIN;
        it->busy = false;
        it->failed = false;
        err_clear(&it->e);
    }
    if (b->kind->compare)
        qsort(batch, n, sizeof(struct write_batch_item *), b->kind->compare);
    if (db_acquire(b->svc->db, &c, &e)) {
        fail_all(batch, n, &e);
        return;
    }
    int rc = b->kind->effect(c, batch, n, now_us, &a, &open, &e);
    if (!rc && open)
        rc = respond_commit(b->kind, c, batch, n, now_us, &a, &e);
    if (rc) {
        db_rollback(c);
        /* A deadlock's victim is worth another batch, as the procedure's own outcome says. */
        if (db_last_errno(c) == DB_ER_DEADLOCK)
            for (size_t i = 0; i < n; i++)
                batch[i]->how = IDEM_START_AGAIN;
        else
            fail_all(batch, n, &e);
    }
    for (size_t i = 0; i < n; i++) /* a deadlock's victims, the whole batch, go again */
        batch[i]->base.again =
            !batch[i]->failed && !batch[i]->busy && batch[i]->how == IDEM_START_AGAIN;
    metrics_inc(b->kind->batches);
    metrics_add(b->kind->batched, n);
    db_release(b->svc->db, c);
    arena_release(&a);
}

int write_batcher_run(struct write_batcher *b, struct write_batch_item *it,
                      struct idem_response *out, struct err *e)
{
    if (!it->r->render_problem || !it->r->status)
        BUG("keyed write without its route's status and problem renderer");
    batcher_run(b->queue, &it->base);
    if (it->failed) {
        *e = it->e;
        return -1;
    }
    if (it->busy)
        return 1; /* its row or key is held: it waits on its own, holding up no batch */
    if (it->how == IDEM_START_AGAIN)
        return err_set(e, ERR_UNAVAILABLE, "idempotency key '%.64s' is contended; retry",
                       it->r->key);
    if (it->how == IDEM_START_OPEN) {
        *out = it->out;
        return 0;
    }
    *e = it->e;
    if (it->how == IDEM_START_REFUSED_OPEN)
        return -1; /* the refusal, stored with the batch */
    return idem_svc_settle_batched(b->svc, it->r, it->how, it->a, out, e);
}
