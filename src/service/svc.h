#ifndef SHOPD_SERVICE_SVC_H
#define SHOPD_SERVICE_SVC_H

/*
 * What every service function works with: the configuration and the connection pools, built
 * once in main.c and shared read-only by all threads.
 */

struct cache;
struct config;
struct db_pool;
struct dlock_manager;
struct redis_pool;

struct svc {
    const struct config *cfg;
    struct db_pool *db;
    struct redis_pool *redis;
    struct cache *products; /* product:{id} → Product JSON, 1 h */
    struct cache *carts;    /* cart:user:{id} → the cart's lines, 1 day */
    struct cache *top;      /* top-products:{days}:{limit} → the ranking JSON, 5 min */
    struct dlock_manager *locks;
    char key_prefix[80]; /* "<db name>:", the namespace of every Redis key */
};

/* How long a request waits for a distributed lock, and the lease it takes. */
#define SVC_LOCK_WAIT_MS  5000
#define SVC_LOCK_LEASE_MS 10000

/* Creates the caches and the lock manager, their keys under "<db name>:" so that databases
 * never share keys. */
void svc_redis_init(struct svc *s);
void svc_redis_release(struct svc *s);

#endif
