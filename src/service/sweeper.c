#include "service/sweeper.h"

#include <stdint.h>
#include <stdlib.h>

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/round_trips.h"
#include "core/worker.h"
#include "core/xalloc.h"
#include "redis/lineage.h"
#include "service/idem_svc.h"
#include "service/order_svc.h"
#include "service/svc.h"

#include "core/banned.h"

#define TICK_MS           1000 /* unpaid orders expire within a second of their time */
#define PURGE_EVERY_TICKS 60
#define IDEM_MAX_AGE_US   (24LL * 3600 * 1000000)

struct sweeper {
    struct svc *svc;
    struct worker *worker;
    unsigned long tick;
};

/* With Sentinels: drops what a former Redis master left, once per change of master lineage
 * (redis/lineage.h). Without them a Redis is only ever lost whole, which every module heals. */
static void check_redis_lineage(struct svc *s)
{
    long long dropped;
    struct err e;

    if (!s->cfg->redis_nsentinels)
        return;
    if (redis_lineage_check(s->redis, s->key_prefix, &dropped, &e)) {
        log_debug("sweeper: checking the Redis master's lineage failed: %s", e.detail);
        return;
    }
    if (!dropped)
        return;
    metrics_inc(METRIC_REDIS_LINEAGE_RESETS);
    log_warn("sweeper: the Redis master is of another lineage: dropped %lld keys it had from "
             "a former master",
             dropped);
}

static int64_t sweep_once(void *arg)
{
    struct sweeper *w = arg;
    struct err e;
    uint64_t purged = 0;
    struct round_trips trips;
    size_t expired = 0;

    check_redis_lineage(w->svc);
    round_trips_take(NULL); /* the sweep's own round trips, from here */
    if (order_svc_expire_due(w->svc, &expired, &e))
        log_warn("sweeper: expiring orders failed: %s", e.detail);
    else if (expired)
        log_info("sweeper: %zu unpaid order(s) expired", expired);
    round_trips_take(&trips);
    /* Only sweeps that found work: what an expiry costs, amortised over its sweep. */
    if (expired) {
        metrics_add(METRIC_ORDERS_EXPIRED, expired);
        metrics_add(METRIC_EXPIRY_DB_ROUND_TRIPS, trips.n[ROUND_TRIP_DB]);
    }
    if (w->tick++ % PURGE_EVERY_TICKS)
        return TICK_MS;
    if (idem_svc_purge(w->svc, IDEM_MAX_AGE_US, &purged, &e))
        log_warn("sweeper: purging idempotency keys failed: %s", e.detail);
    else if (purged)
        log_info("sweeper: purged %llu idempotency keys", (unsigned long long)purged);
    return TICK_MS;
}

struct sweeper *sweeper_start(struct svc *s)
{
    struct sweeper *w = xcalloc(1, sizeof(*w));

    w->svc = s;
    w->worker = worker_start(sweep_once, w);
    return w;
}

void sweeper_stop(struct sweeper *w)
{
    worker_stop(w->worker);
    free(w);
}
