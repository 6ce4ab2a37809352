#include "core/worker.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/xalloc.h"

#include "core/banned.h"

struct worker {
    worker_step_fn *step;
    void *ctx;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
    bool nudged;
};

static void *run(void *arg)
{
    struct worker *w = arg;

    pthread_mutex_lock(&w->lock);
    while (!w->stopping) {
        w->nudged = false;
        pthread_mutex_unlock(&w->lock);
        int64_t sleep_ms = w->step(w->ctx);
        pthread_mutex_lock(&w->lock);
        if (sleep_ms <= 0)
            continue;
        struct timespec until;
        clock_monotonic_deadline(sleep_ms * 1000, &until);
        while (!w->stopping && !w->nudged &&
               pthread_cond_timedwait(&w->wake, &w->lock, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

struct worker *worker_start(worker_step_fn *step, void *ctx)
{
    struct worker *w = xcalloc(1, sizeof(*w));

    w->step = step;
    w->ctx = ctx;
    pthread_mutex_init(&w->lock, NULL);
    clock_cond_init(&w->wake);
    if (pthread_create(&w->thread, NULL, run, w))
        BUG("cannot start a worker thread");
    return w;
}

void worker_nudge(struct worker *w)
{
    pthread_mutex_lock(&w->lock);
    w->nudged = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

void worker_stop(struct worker *w)
{
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    free(w);
}
