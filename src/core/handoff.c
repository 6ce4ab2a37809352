#include "core/handoff.h"

#include <errno.h>
#include <stddef.h>

#include "core/clock.h"

#include "core/banned.h"

struct handoff_waiter {
    pthread_cond_t handed;
    void *item; /* set by handoff_give() */
    struct handoff_waiter *next;
};

void handoff_init(struct handoff *h)
{
    h->head = NULL;
    h->tail = &h->head;
}

bool handoff_waiting(const struct handoff *h)
{
    return h->head != NULL;
}

int handoff_length(const struct handoff *h)
{
    int n = 0;

    for (const struct handoff_waiter *w = h->head; w; w = w->next)
        n++;
    return n;
}

static void leave(struct handoff *h, struct handoff_waiter *w)
{
    struct handoff_waiter **q = &h->head;

    while (*q != w)
        q = &(*q)->next;
    *q = w->next;
    if (!w->next)
        h->tail = q;
}

void *handoff_wait(struct handoff *h, pthread_mutex_t *lock, int timeout_ms)
{
    struct handoff_waiter w = {.item = NULL, .next = NULL};
    struct timespec deadline;

    clock_cond_init(&w.handed);
    clock_monotonic_deadline((int64_t)timeout_ms * 1000, &deadline);
    *h->tail = &w;
    h->tail = &w.next;
    while (!w.item)
        if (pthread_cond_timedwait(&w.handed, lock, &deadline) == ETIMEDOUT)
            break;
    if (!w.item) /* timed out: out of the line (an item given meanwhile would be set) */
        leave(h, &w);
    pthread_cond_destroy(&w.handed);
    return w.item;
}

bool handoff_give(struct handoff *h, void *item)
{
    struct handoff_waiter *w = h->head;

    if (!w)
        return false;
    h->head = w->next;
    if (!h->head)
        h->tail = &h->head;
    w->item = item;
    pthread_cond_signal(&w->handed);
    return true;
}
