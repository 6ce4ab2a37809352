#include "service/order_batch.h"

#include "core/arena.h"
#include "core/config.h"
#include "domain/order.h"
#include "repo/order_repo.h"
#include "service/svc.h"
#include "service/write.h"
#include "service/write_batch.h"

#include "core/banned.h"

/* One request's order while it waits for a batch. */
struct waiter {
    struct write_batch_item base; /* first */
    const struct write_op *op;
    struct order *order;
    int64_t ttl_us;
};

static int effect(struct db_conn *c, struct write_batch_item **batch, size_t n, int64_t now_us,
                  struct arena *a, bool *open, struct err *e)
{
    struct order_place_item *items = arena_calloc(a, n, sizeof(*items));
    /* One time limit for the batch: every order of it is created at now_us. */
    int64_t ttl_us = ((struct waiter *)batch[0])->ttl_us;

    for (size_t i = 0; i < n; i++) {
        struct waiter *w = (struct waiter *)batch[i];
        w->order->created_us = now_us;
        w->order->expires_us = now_us + ttl_us;
        items[i] = (struct order_place_item){.key = &w->base.key,
                                             .fingerprint = w->base.r->fingerprint,
                                             .order = w->order,
                                             .e = &w->base.e};
    }
    if (order_repo_place_batch(c, items, n, now_us, now_us + ttl_us, a, open, e))
        return -1;
    for (size_t i = 0; i < n; i++) {
        struct waiter *w = (struct waiter *)batch[i];
        w->base.how = items[i].how;
        w->base.busy = items[i].busy;
        w->base.key_row_id = items[i].key_row_id;
    }
    return 0;
}

static void respond(struct write_batch_item *it, int64_t now_us, struct arena *a,
                    struct idem_response_row *row)
{
    const struct waiter *w = (const struct waiter *)it;

    (void)now_us;
    (void)a; /* an order publishes no event */
    row->body = w->op->render(w->order, it->a);
}

static const struct write_batch_kind orders = {
    /* As they came: first come, first served for the last units of a product. The batch waits
     * on no lock, so its orders need no lock order among themselves; each order's lines go in
     * ascending product id. */
    .compare = NULL,
    .effect = effect,
    .respond = respond,
    .batches = METRIC_ORDER_BATCHES,
    .batched = METRIC_ORDER_BATCHED,
};

struct write_batcher *order_batcher_new(struct svc *s)
{
    return write_batcher_new(s, &orders);
}

int order_batcher_run(struct write_batcher *b, const struct write_op *op, const struct write_req *w,
                      struct order *o, struct arena *a, struct idem_response *out, struct err *e)
{
    struct waiter waiter = {.base = {.r = w->idem, .a = a},
                            .op = op,
                            .order = o,
                            .ttl_us = w->svc->cfg->order_ttl_s * 1000000};

    return write_batcher_run(b, &waiter.base, out, e);
}
