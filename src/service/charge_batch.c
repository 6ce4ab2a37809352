#include "service/charge_batch.h"

#include <stdbool.h>
#include <stdlib.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/json.h"
#include "core/metrics.h"
#include "core/xalloc.h"
#include "domain/balance.h"
#include "domain/money.h"
#include "repo/balance_repo.h"
#include "repo/db.h"
#include "repo/idem_repo.h"
#include "service/batcher.h"
#include "service/idem_svc.h"
#include "service/svc.h"

#include "core/banned.h"

/* Batches a charge may be put back into after a deadlock before it is answered 503. */
#define MAX_ATTEMPTS 4

/* One request's charge, on its own stack, while it waits for a batch. */
struct waiter {
    struct batch_waiter base; /* first: a batch's waiters are these */
    const struct idem_request *r;
    int64_t user_id;
    int64_t amount_krw;
    struct arena *a; /* the request's: the leader renders into it while the waiter sleeps */
    /* What the batch did with it. */
    struct idem_row_key key;
    struct balance_batch_charge item;
    struct err e;
    bool failed; /* the batch itself failed: e says how */
    struct idem_response out;
};

struct charge_batcher {
    struct svc *svc;
    struct batcher *queue;
};

static void write_batch(void *ctx, struct batch_waiter **waiters, size_t n);

struct charge_batcher *charge_batcher_new(struct svc *s)
{
    struct charge_batcher *b = xcalloc(1, sizeof(*b));

    b->svc = s;
    b->queue = batcher_new(
        &(struct batcher_options){.write = write_batch, .ctx = b, .max_attempts = MAX_ATTEMPTS});
    return b;
}

void charge_batcher_free(struct charge_batcher *b)
{
    if (!b)
        return;
    batcher_free(b->queue);
    free(b);
}

static int by_user(const void *x, const void *y)
{
    const struct waiter *a = *(const struct waiter *const *)x;
    const struct waiter *b = *(const struct waiter *const *)y;

    return (a->user_id > b->user_id) - (a->user_id < b->user_id);
}

static void fail_all(struct waiter **batch, size_t n, const struct err *e)
{
    for (size_t i = 0; i < n; i++) {
        batch[i]->failed = true;
        batch[i]->e = *e;
    }
}

/* The responses of the charged ones rendered into their requests' arenas, then the commit. */
static int respond_commit(struct db_conn *c, struct waiter **batch, size_t n, int64_t now_us,
                          struct arena *a, struct err *e)
{
    struct idem_response_row *rows = arena_calloc(a, n, sizeof(*rows));
    size_t count = 0;

    for (size_t i = 0; i < n; i++) {
        struct waiter *w = batch[i];
        if (w->item.how != IDEM_START_OPEN)
            continue;
        struct charge_result res = {.user_id = w->user_id,
                                    .balance_krw = w->item.balance_krw,
                                    .charged_krw = w->amount_krw,
                                    .charged_us = now_us};
        struct json_w jw;
        json_w_init(&jw, w->a);
        charge_write_json(&jw, &res);
        w->out = (struct idem_response){.status = w->r->status, .body = json_w_text(&jw, NULL)};
        rows[count++] = (struct idem_response_row){
            .row_id = w->item.key_row_id, .status = w->out.status, .body = w->out.body};
    }
    return idem_repo_respond_batch_commit(c, rows, count, e);
}

/* Writes one batch on the leader's thread; every waiter of it gets its outcome. */
static void write_batch(void *ctx, struct batch_waiter **waiters, size_t n)
{
    struct charge_batcher *b = ctx;
    struct waiter **batch = (struct waiter **)waiters; /* each begins with its batch_waiter */
    struct balance_batch_charge *items;
    struct arena a = ARENA_INIT;
    int64_t now_us = clock_now_us();
    struct db_conn *c;
    struct err e;
    bool open = false;

    err_clear(&e);
    qsort(batch, n, sizeof(struct waiter *), by_user); /* the lock order of balances */
    if (db_acquire(b->svc->db, &c, &e)) {
        fail_all(batch, n, &e);
        return;
    }
    items = arena_calloc(&a, n, sizeof(*items));
    for (size_t i = 0; i < n; i++) {
        struct waiter *w = batch[i];
        const struct idem_request *r = w->r;
        w->key = idem_svc_row_key(r);
        w->failed = false;
        err_clear(&w->e);
        items[i] = (struct balance_batch_charge){.key = &w->key,
                                                 .fingerprint = r->fingerprint,
                                                 .amount_krw = w->amount_krw,
                                                 .max_krw = MONEY_BALANCE_MAX_KRW,
                                                 .e = &w->e};
    }
    int rc = balance_repo_charge_batch(c, items, n, now_us, &a, &open, &e);
    for (size_t i = 0; !rc && i < n; i++)
        batch[i]->item = items[i];
    if (!rc && open)
        rc = respond_commit(c, batch, n, now_us, &a, &e);
    if (rc) {
        db_rollback(c);
        /* A deadlock's victim is worth another batch, as the procedure's own outcome says. */
        if (db_last_errno(c) == DB_ER_DEADLOCK)
            for (size_t i = 0; i < n; i++)
                batch[i]->item = (struct balance_batch_charge){.how = IDEM_START_AGAIN};
        else
            fail_all(batch, n, &e);
    }
    for (size_t i = 0; i < n; i++) /* a deadlock's victims, the whole batch, go again */
        batch[i]->base.again =
            !batch[i]->failed && !batch[i]->item.busy && batch[i]->item.how == IDEM_START_AGAIN;
    metrics_inc(METRIC_CHARGE_BATCHES);
    metrics_add(METRIC_CHARGE_BATCHED, n);
    db_release(b->svc->db, c);
    arena_release(&a);
}

int charge_batcher_run(struct charge_batcher *b, const struct idem_request *r, int64_t user_id,
                       int64_t amount_krw, struct arena *a, struct idem_response *out,
                       struct err *e)
{
    struct waiter w = {.r = r, .user_id = user_id, .amount_krw = amount_krw, .a = a};

    if (!r->render_problem || !r->status)
        BUG("keyed write without its route's status and problem renderer");
    batcher_run(b->queue, &w.base);
    if (w.failed) {
        *e = w.e;
        return -1;
    }
    if (w.item.busy)
        return 1; /* its row or key is held: it waits on its own, holding up no batch */
    if (w.item.how == IDEM_START_AGAIN)
        return err_set(e, ERR_UNAVAILABLE, "idempotency key '%.64s' is contended; retry", r->key);
    if (w.item.how == IDEM_START_OPEN) {
        *out = w.out;
        return 0;
    }
    *e = w.e;
    return idem_svc_settle_batched(b->svc, r, w.item.how, a, out, e);
}
