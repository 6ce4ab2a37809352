#include "http/work_pool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/xalloc.h"

#include "core/banned.h"

struct work_pool {
    pthread_mutex_t lock;
    pthread_cond_t ready; /* an item was queued, or the pool is stopping */
    struct work_item *head, **tail;
    size_t waiting, queue_max;
    bool stopping;
    int nthreads;
    pthread_t *threads;
};

static void *run(void *arg)
{
    struct work_pool *p = arg;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->ready, &p->lock);
        struct work_item *item = p->head;
        if (!item)
            break; /* stopping, and nothing left to run */
        p->head = item->next;
        if (!p->head)
            p->tail = &p->head;
        p->waiting--;
        pthread_mutex_unlock(&p->lock);
        item->next = NULL;
        item->run(item);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

struct work_pool *work_pool_new(int threads, size_t queue_max)
{
    struct work_pool *p = xcalloc(1, sizeof(*p));

    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->ready, NULL);
    p->tail = &p->head;
    p->queue_max = queue_max;
    p->threads = xcalloc((size_t)threads, sizeof(*p->threads));
    for (; p->nthreads < threads; p->nthreads++)
        if (pthread_create(&p->threads[p->nthreads], NULL, run, p))
            BUG("cannot start a worker thread");
    return p;
}

int work_pool_submit(struct work_pool *p, struct work_item *item)
{
    pthread_mutex_lock(&p->lock);
    if (p->waiting >= p->queue_max || p->stopping) {
        pthread_mutex_unlock(&p->lock);
        return -1;
    }
    item->next = NULL;
    *p->tail = item;
    p->tail = &item->next;
    p->waiting++;
    pthread_cond_signal(&p->ready);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

size_t work_pool_waiting(struct work_pool *p)
{
    pthread_mutex_lock(&p->lock);
    size_t n = p->waiting;
    pthread_mutex_unlock(&p->lock);
    return n;
}

void work_pool_free(struct work_pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->ready);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->ready);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p);
}
