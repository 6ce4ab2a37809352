#include "service/svc.h"

#include <stdio.h>

#include "core/config.h"
#include "core/metrics.h"
#include "redis/cache.h"

#include "core/banned.h"

#define HOUR_MS (3600LL * 1000)

void svc_caches_init(struct svc *s)
{
    char prefix[80];

    snprintf(prefix, sizeof(prefix), "%s:", s->cfg->db_name);
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
}

void svc_caches_release(struct svc *s)
{
    cache_free(s->products);
    cache_free(s->carts);
    cache_free(s->top);
    s->products = s->carts = s->top = NULL;
}
