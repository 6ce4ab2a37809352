#include "service/charge_batch.h"

#include "core/arena.h"
#include "core/json.h"
#include "domain/balance.h"
#include "domain/money.h"
#include "repo/balance_repo.h"
#include "service/write_batch.h"

#include "core/banned.h"

/* One request's charge while it waits for a batch. */
struct waiter {
    struct write_batch_item base; /* first */
    int64_t user_id;
    int64_t amount_krw;
    int64_t balance_krw; /* after the charge */
};

static int by_user(const void *x, const void *y)
{
    const struct waiter *a = *(const struct waiter *const *)x;
    const struct waiter *b = *(const struct waiter *const *)y;

    return (a->user_id > b->user_id) - (a->user_id < b->user_id);
}

static int effect(struct db_conn *c, struct write_batch_item **batch, size_t n, int64_t now_us,
                  struct arena *a, bool *open, struct err *e)
{
    struct balance_batch_charge *items = arena_calloc(a, n, sizeof(*items));

    for (size_t i = 0; i < n; i++) {
        struct waiter *w = (struct waiter *)batch[i];
        items[i] = (struct balance_batch_charge){.key = &w->base.key,
                                                 .fingerprint = w->base.r->fingerprint,
                                                 .amount_krw = w->amount_krw,
                                                 .max_krw = MONEY_BALANCE_MAX_KRW,
                                                 .e = &w->base.e};
    }
    if (balance_repo_charge_batch(c, items, n, now_us, a, open, e))
        return -1;
    for (size_t i = 0; i < n; i++) {
        struct waiter *w = (struct waiter *)batch[i];
        w->base.how = items[i].how;
        w->base.busy = items[i].busy;
        w->base.key_row_id = items[i].key_row_id;
        w->balance_krw = items[i].balance_krw;
    }
    return 0;
}

static void respond(struct write_batch_item *it, int64_t now_us, struct arena *a,
                    struct idem_response_row *row)
{
    const struct waiter *w = (const struct waiter *)it;
    struct charge_result res = {.user_id = w->user_id,
                                .balance_krw = w->balance_krw,
                                .charged_krw = w->amount_krw,
                                .charged_us = now_us};
    struct json_w jw;

    (void)a; /* a charge publishes no event */
    json_w_init(&jw, it->a);
    charge_write_json(&jw, &res);
    row->body = json_w_text(&jw, NULL);
}

static const struct write_batch_kind charges = {
    .compare = by_user,
    .effect = effect,
    .respond = respond,
    .batches = METRIC_CHARGE_BATCHES,
    .batched = METRIC_CHARGE_BATCHED,
};

struct write_batcher *charge_batcher_new(struct svc *s)
{
    return write_batcher_new(s, &charges);
}

int charge_batcher_run(struct write_batcher *b, const struct idem_request *r, int64_t user_id,
                       int64_t amount_krw, struct arena *a, struct idem_response *out,
                       struct err *e)
{
    struct waiter w = {.base = {.r = r, .a = a}, .user_id = user_id, .amount_krw = amount_krw};

    return write_batcher_run(b, &w.base, out, e);
}
