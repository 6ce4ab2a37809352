#include "service/svc.h"

#include <stdio.h>

#include "core/config.h"
#include "core/metrics.h"
#include "redis/cache.h"
#include "redis/dlock.h"

#include "core/banned.h"

#define HOUR_MS (3600LL * 1000)

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
                                5 * 60 * 1000,
                                {METRIC_CACHE_TOP_HITS, METRIC_CACHE_TOP_MISSES,
                                 METRIC_CACHE_TOP_LOADS, METRIC_CACHE_TOP_ERRORS}};
    s->products = cache_new(s->redis, &products);
    s->carts = cache_new(s->redis, &carts);
    s->top = cache_new(s->redis, &top);
    struct dlock_options locks = {s->cfg->redis_host, s->cfg->redis_port, s->cfg->redis_db, prefix};
    s->locks = dlock_manager_new(s->redis, &locks);
}

int64_t svc_lock_wait_ms(const struct svc *s)
{
    return (int64_t)s->cfg->lock_wait_s * 1000;
}

void svc_redis_release(struct svc *s)
{
    dlock_manager_free(s->locks);
    s->locks = NULL;
    cache_free(s->products);
    cache_free(s->carts);
    cache_free(s->top);
    s->products = s->carts = s->top = NULL;
}
