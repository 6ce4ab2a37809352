#include "service/price_memo.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/xalloc.h"
#include "domain/order.h"

#include "core/banned.h"

struct slot {
    int64_t product_id; /* 0: empty */
    int64_t price_krw;
    char name[PRICE_MEMO_NAME_MAX + 1];
};

struct price_memo {
    pthread_mutex_t lock;
    struct slot slots[PRICE_MEMO_SLOTS];
};

struct price_memo *price_memo_new(void)
{
    struct price_memo *m = xcalloc(1, sizeof(*m));

    pthread_mutex_init(&m->lock, NULL);
    return m;
}

void price_memo_free(struct price_memo *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static struct slot *slot_of(struct price_memo *m, int64_t product_id)
{
    return &m->slots[(uint64_t)product_id % PRICE_MEMO_SLOTS];
}

bool price_memo_get(struct price_memo *m, struct order_item *items, size_t n, struct arena *a)
{
    bool all = true;

    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; all && i < n; i++) {
        const struct slot *s = slot_of(m, items[i].product_id);
        all = s->product_id == items[i].product_id;
        if (all) {
            items[i].product_name = arena_strdup(a, s->name);
            items[i].unit_price_krw = s->price_krw;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return all;
}

void price_memo_put(struct price_memo *m, const struct order_item *items, size_t n)
{
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(items[i].product_name);
        if (len > PRICE_MEMO_NAME_MAX)
            continue;
        struct slot *s = slot_of(m, items[i].product_id);
        s->product_id = items[i].product_id;
        s->price_krw = items[i].unit_price_krw;
        memcpy(s->name, items[i].product_name, len + 1);
    }
    pthread_mutex_unlock(&m->lock);
}

void price_memo_forget(struct price_memo *m, const struct order_item *items, size_t n)
{
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < n; i++) {
        struct slot *s = slot_of(m, items[i].product_id);
        if (s->product_id == items[i].product_id)
            s->product_id = 0;
    }
    pthread_mutex_unlock(&m->lock);
}
