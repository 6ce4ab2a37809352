#include "service/pay_batch.h"

#include "core/arena.h"
#include "repo/order_repo.h"
#include "service/write.h"
#include "service/write_batch.h"

#include "core/banned.h"

/* One request's payment while it waits for a batch. */
struct waiter {
    struct write_batch_item base; /* first */
    const struct write_op *op;
    int64_t order_id;
    struct order_settled *result;
};

/* The lock order of balances: by user; a user's own payments by order. */
static int by_user(const void *x, const void *y)
{
    const struct waiter *a = *(const struct waiter *const *)x;
    const struct waiter *b = *(const struct waiter *const *)y;

    if (a->base.key.user_id != b->base.key.user_id)
        return (a->base.key.user_id > b->base.key.user_id) -
               (a->base.key.user_id < b->base.key.user_id);
    return (a->order_id > b->order_id) - (a->order_id < b->order_id);
}

static int effect(struct db_conn *c, struct write_batch_item **batch, size_t n, int64_t now_us,
                  struct arena *a, bool *open, struct err *e)
{
    struct order_pay_item *items = arena_calloc(a, n, sizeof(*items));

    for (size_t i = 0; i < n; i++) {
        struct waiter *w = (struct waiter *)batch[i];
        items[i] = (struct order_pay_item){.key = &w->base.key,
                                           .fingerprint = w->base.r->fingerprint,
                                           .order_id = w->order_id,
                                           .a = w->base.a,
                                           .e = &w->base.e};
    }
    if (order_repo_pay_batch(c, items, n, now_us, a, open, e))
        return -1;
    for (size_t i = 0; i < n; i++) {
        struct waiter *w = (struct waiter *)batch[i];
        w->base.how = items[i].how;
        w->base.busy = items[i].busy;
        w->base.key_row_id = items[i].key_row_id;
        if (items[i].how == IDEM_START_OPEN)
            *w->result = items[i].settled;
    }
    return 0;
}

static void respond(struct write_batch_item *it, int64_t now_us, struct arena *a,
                    struct idem_response_row *row)
{
    const struct waiter *w = (const struct waiter *)it;
    struct idem_event *event = arena_calloc(a, 1, sizeof(*event));

    row->body = w->op->render(w->result, it->a);
    row->event = w->op->event && w->op->event(w->result, now_us, a, event) ? event : NULL;
}

static const struct write_batch_kind payments = {
    .compare = by_user,
    .effect = effect,
    .respond = respond,
    .batches = METRIC_PAY_BATCHES,
    .batched = METRIC_PAY_BATCHED,
};

struct write_batcher *pay_batcher_new(struct svc *s)
{
    return write_batcher_new(s, &payments);
}

int pay_batcher_run(struct write_batcher *b, const struct write_op *op, const struct write_req *w,
                    void *result, struct arena *a, struct idem_response *out, struct err *e)
{
    struct waiter waiter = {.base = {.r = w->idem, .a = a},
                            .op = op,
                            .order_id = *(const int64_t *)w->args,
                            .result = result};

    return write_batcher_run(b, &waiter.base, out, e);
}
