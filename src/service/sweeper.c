#include "service/sweeper.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "core/err.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "service/idem_svc.h"
#include "service/order_svc.h"

#include "core/banned.h"

#define TICK_S            1 /* unpaid orders expire within a second of their time */
#define PURGE_EVERY_TICKS 60
#define IDEM_MAX_AGE_US   (24LL * 3600 * 1000000)

struct sweeper {
    struct svc *svc;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
};

static void sweep_once(struct sweeper *w, unsigned long tick)
{
    struct err e;
    uint64_t purged = 0;
    size_t expired = 0;

    if (order_svc_expire_due(w->svc, &expired, &e))
        log_warn("sweeper: expiring orders failed: %s", e.detail);
    else if (expired)
        log_info("sweeper: %zu unpaid order(s) expired", expired);
    if (tick % PURGE_EVERY_TICKS)
        return;
    if (idem_svc_purge(w->svc, IDEM_MAX_AGE_US, &purged, &e))
        log_warn("sweeper: purging idempotency keys failed: %s", e.detail);
    else if (purged)
        log_info("sweeper: purged %llu idempotency keys", (unsigned long long)purged);
}

static void *run(void *arg)
{
    struct sweeper *w = arg;

    unsigned long tick = 0;

    pthread_mutex_lock(&w->lock);
    while (!w->stopping) {
        pthread_mutex_unlock(&w->lock);
        sweep_once(w, tick++);
        pthread_mutex_lock(&w->lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += TICK_S;
        while (!w->stopping && pthread_cond_timedwait(&w->wake, &w->lock, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

struct sweeper *sweeper_start(struct svc *s)
{
    struct sweeper *w = xcalloc(1, sizeof(*w));

    w->svc = s;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    if (pthread_create(&w->thread, NULL, run, w))
        BUG("cannot start the sweeper thread");
    return w;
}

void sweeper_stop(struct sweeper *w)
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
