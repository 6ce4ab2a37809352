#include "service/svc.h"

#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/metrics.h"
#include "redis/cache.h"
#include "redis/dlock.h"
#include "redis/pipeline.h"
#include "redis/redis_pool.h"
#include "service/ops_svc.h"

#include "core/banned.h"

#define HOUR_MS (3600LL * 1000)

/* /metrics: what /readyz would answer, at each scrape (one ping of each). */
static void write_dependencies(struct buf *b, void *arg)
{
    struct ops_readiness r;

    ops_svc_readiness(arg, &r);
    buf_addf(b,
             "# HELP shopd_dependency_up whether the dependency answered a ping at this scrape; "
             "/readyz answers 503 while mariadb is 0\n"
             "# TYPE shopd_dependency_up gauge\n"
             "shopd_dependency_up{dependency=\"mariadb\"} %d\n"
             "shopd_dependency_up{dependency=\"redis\"} %d\n",
             r.mariadb_ok, r.redis_ok);
}

int svc_loop_redis_connect(void *app, unsigned *generation)
{
    struct svc *s = app;

    return s->redis ? redis_pipeline_connect(s->redis, generation) : -1;
}

unsigned svc_loop_redis_generation(void *app)
{
    struct svc *s = app;

    return s->redis ? redis_pool_master_generation(s->redis) : 0;
}

void svc_redis_init(struct svc *s)
{
    char *prefix = s->key_prefix;

    snprintf(s->key_prefix, sizeof(s->key_prefix), "%s:", s->cfg->db_name);
    struct cache_options products = {"product",
                                     prefix,
                                     HOUR_MS,
                                     {METRIC_CACHE_PRODUCT_HITS, METRIC_CACHE_PRODUCT_MISSES,
                                      METRIC_CACHE_PRODUCT_LOADS, METRIC_CACHE_PRODUCT_ERRORS}};
    struct cache_options carts = {"cart",
                                  prefix,
                                  24 * HOUR_MS,
                                  {METRIC_CACHE_CART_HITS, METRIC_CACHE_CART_MISSES,
                                   METRIC_CACHE_CART_LOADS, METRIC_CACHE_CART_ERRORS}};
    struct cache_options top = {"top",
                                prefix,
                                5LL * 60 * 1000,
                                {METRIC_CACHE_TOP_HITS, METRIC_CACHE_TOP_MISSES,
                                 METRIC_CACHE_TOP_LOADS, METRIC_CACHE_TOP_ERRORS}};
    s->products = cache_new(s->redis, &products);
    s->carts = cache_new(s->redis, &carts);
    s->top = cache_new(s->redis, &top);
    struct dlock_options locks = {.prefix = prefix};
    s->locks = dlock_manager_new(s->redis, &locks);
    metrics_register_gauge(write_dependencies, s);
}

int64_t svc_lock_wait_ms(const struct svc *s)
{
    return (int64_t)s->cfg->lock_wait_s * 1000;
}

int svc_lock(struct svc *s, const char *name, struct dlock *out, struct err *e)
{
    if (s->cfg->locks == CONFIG_LOCKS_DB) {
        memset(out, 0, sizeof(*out));
        return 0;
    }
    return dlock_acquire(s->locks, name, svc_lock_wait_ms(s), SVC_LOCK_LEASE_MS, out, e);
}

const struct dlock *svc_guard(const struct svc *s, const struct dlock *lock)
{
    return s->cfg->locks == CONFIG_LOCKS_DB ? NULL : lock;
}

void svc_redis_release(struct svc *s)
{
    metrics_unregister_gauge(write_dependencies, s);
    dlock_manager_free(s->locks);
    s->locks = NULL;
    cache_free(s->products);
    cache_free(s->carts);
    cache_free(s->top);
    s->products = s->carts = s->top = NULL;
}
