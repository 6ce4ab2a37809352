#include "service/charge_batch.h"

#include <pthread.h>
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
#include "service/idem_svc.h"
#include "service/svc.h"

#include "core/banned.h"

/* Batches a charge may be put back into after a deadlock before it is answered 503. */
#define MAX_ATTEMPTS 4

enum waiter_state { WAITER_QUEUED, WAITER_TAKEN, WAITER_DONE };

/* One request's charge, on its own stack, while it waits for a batch. */
struct waiter {
    const struct idem_request *r;
    int64_t user_id;
    int64_t amount_krw;
    struct arena *a; /* the request's: the leader renders into it while the waiter sleeps */
    enum waiter_state state;
    int attempts;
    /* What the batch did with it. */
    struct idem_row_key key;
    struct balance_batch_charge item;
    struct err e;
    bool failed; /* the batch itself failed: e says how */
    struct idem_response out;
    struct waiter *next;
};

struct charge_batcher {
    struct svc *svc;
    pthread_mutex_t lock;
    pthread_cond_t settled; /* a batch ended: its waiters are DONE, a leader's place is free */
    struct waiter *head;
    struct waiter **tail;
    int leaders;
};

struct charge_batcher *charge_batcher_new(struct svc *s)
{
    struct charge_batcher *b = xcalloc(1, sizeof(*b));

    b->svc = s;
    b->tail = &b->head;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->settled, NULL);
    return b;
}

void charge_batcher_free(struct charge_batcher *b)
{
    if (!b)
        return;
    pthread_cond_destroy(&b->settled);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

/* Takes up to CHARGE_BATCH_MAX waiters off the queue (the lock held), oldest first. */
static size_t take(struct charge_batcher *b, struct waiter **batch)
{
    size_t n = 0;

    while (b->head && n < CHARGE_BATCH_MAX) {
        struct waiter *w = b->head;
        b->head = w->next;
        w->next = NULL;
        w->state = WAITER_TAKEN;
        batch[n++] = w;
    }
    if (!b->head)
        b->tail = &b->head;
    return n;
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
        rows[count++] = (struct idem_response_row){w->item.key_row_id, w->out.status, w->out.body};
    }
    return idem_repo_respond_batch_commit(c, rows, count, e);
}

/* Writes one batch on the leader's thread; every waiter of it gets its outcome. */
static void write_batch(struct charge_batcher *b, struct waiter **batch, size_t n)
{
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
    metrics_inc(METRIC_CHARGE_BATCHES);
    metrics_add(METRIC_CHARGE_BATCHED, n);
    db_release(b->svc->db, c);
    arena_release(&a);
}

/* Waits until w's batch was written, leading one when a leader's place is free (the lock
 * held on entry and on return). */
static void wait_for_batch(struct charge_batcher *b, struct waiter *w)
{
    struct waiter *batch[CHARGE_BATCH_MAX];

    while (w->state != WAITER_DONE) {
        if (w->state != WAITER_QUEUED || b->leaders >= CHARGE_BATCH_LEADERS) {
            pthread_cond_wait(&b->settled, &b->lock);
            continue;
        }
        b->leaders++;
        size_t n = take(b, batch);
        pthread_mutex_unlock(&b->lock);
        write_batch(b, batch, n);
        pthread_mutex_lock(&b->lock);
        for (size_t i = 0; i < n; i++)
            batch[i]->state = WAITER_DONE;
        b->leaders--;
        pthread_cond_broadcast(&b->settled);
    }
}

static void enqueue(struct charge_batcher *b, struct waiter *w)
{
    w->state = WAITER_QUEUED;
    w->failed = false;
    w->next = NULL;
    *b->tail = w;
    b->tail = &w->next;
}

/* What the batch's outcome for w means for its request, on its own thread and connection. */
static int settle(struct charge_batcher *b, struct waiter *w, struct arena *a,
                  struct idem_response *out, struct err *e)
{
    enum idem_step step;
    struct db_conn *c;

    if (w->item.how == IDEM_START_OPEN) {
        *out = w->out;
        return 0;
    }
    *e = w->e;
    if (w->item.how == IDEM_START_REFUSED && !idem_svc_stores_refusal(e->code))
        return -1; /* a lock wait: not stored */
    if (db_acquire(b->svc->db, &c, e))
        return -1;
    /* A duplicate's first may have been in this very batch: it is committed now. */
    step = idem_svc_after_start(c, w->r, w->item.how, NULL, a, out, e);
    db_release(b->svc->db, c);
    if (step == IDEM_STEP_AGAIN) /* the key purged between the batch and this */
        return err_set(e, ERR_UNAVAILABLE, "idempotency key '%.64s' is contended; retry",
                       w->r->key);
    return step == IDEM_STEP_DONE ? 0 : -1;
}

int charge_batcher_run(struct charge_batcher *b, const struct idem_request *r, int64_t user_id,
                       int64_t amount_krw, struct arena *a, struct idem_response *out,
                       struct err *e)
{
    struct waiter w = {.r = r, .user_id = user_id, .amount_krw = amount_krw, .a = a};

    if (!r->render_problem || !r->status)
        BUG("keyed write without its route's status and problem renderer");
    pthread_mutex_lock(&b->lock);
    do {
        /* A deadlock's victims (the whole batch) go into the next one. */
        if (w.attempts++)
            metrics_inc(METRIC_DB_DEADLOCK_RETRIES);
        enqueue(b, &w);
        wait_for_batch(b, &w);
    } while (!w.failed && !w.item.busy && w.item.how == IDEM_START_AGAIN &&
             w.attempts < MAX_ATTEMPTS);
    pthread_mutex_unlock(&b->lock);
    if (w.failed) {
        *e = w.e;
        return -1;
    }
    if (w.item.busy)
        return 1; /* its row or key is held: it waits on its own, holding up no batch */
    if (w.item.how == IDEM_START_AGAIN)
        return err_set(e, ERR_UNAVAILABLE, "idempotency key '%.64s' is contended; retry", r->key);
    return settle(b, &w, a, out, e);
}
