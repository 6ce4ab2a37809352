#ifndef SHOPD_SERVICE_SVC_H
#define SHOPD_SERVICE_SVC_H

#include <stdint.h>

/*
 * What every service function works with: the configuration and the connection pools, built
 * once in main.c and shared read-only by all threads.
 */

struct cache;
struct price_memo;
struct write_batcher;
struct config;
struct db_pool;
struct dlock_manager;
struct outbox_relay;
struct redis_pool;

struct svc {
    const struct config *cfg;
    struct db_pool *db;
    struct redis_pool *redis;
    struct cache *products; /* product:{id} → Product JSON, 1 h */
    struct cache *carts;    /* cart:user:{id} → the cart's lines, 1 day */
    struct cache *top;      /* top-products:{days}:{limit} → the ranking JSON, 5 min */
    struct dlock_manager *locks;
    struct outbox_relay *relay; /* in `shopd serve`: nudged after a commit that wrote an event */
    /* Group commits (service/write_batch.h), in `shopd serve` with SHOPD_GROUP_COMMIT;
     * NULL: one by one. */
    struct write_batcher *charges;
    struct write_batcher *orders; /* of those without a coupon */
    struct price_memo *prices;    /* with orders: what they are priced with */
    struct write_batcher *payments;
    struct idem_flights *flights; /* in `shopd serve`: duplicates answered in the instance */
    char key_prefix[80];          /* "<db name>:", the namespace of every Redis key */
};

/* The lease a distributed lock takes (renewed while held). The wait is SHOPD_LOCK_WAIT. */
#define SVC_LOCK_LEASE_MS 10000

/* How long a request waits for a distributed lock, in ms. */
int64_t svc_lock_wait_ms(const struct svc *s);

struct dlock;
struct err;

/*
 * The write lock of one resource ("user:7", "order:42", ...), as SHOPD_LOCKS says. `redis`:
 * the distributed lock of that name, waited for up to SHOPD_LOCK_WAIT (lock -> begin -> work
 * -> commit -> unlock; its lease renewed while held, its fence written with the rows); -1 with
 * e as dlock_acquire when it could not be had. `db`: nothing is taken, *out is left not held
 * with fence 0 (the unguarded form every repo function accepts): the rows' own locks,
 * conditional updates and unique keys keep the writes apart. Release with dlock_release.
 */
int svc_lock(struct svc *s, const char *name, struct dlock *out, struct err *e);

/* What idem_svc_run must find still held at commit: the lock, or NULL when none was taken. */
const struct dlock *svc_guard(const struct svc *s, const struct dlock *lock);

/* The event loops' Redis connections (struct server_options's redis_connect and
 * redis_generation), app being the struct svc: a connect blocks, the generation does not. */
int svc_loop_redis_connect(void *app, unsigned *generation);
unsigned svc_loop_redis_generation(void *app);

/* Creates the caches and the lock manager, their keys under "<db name>:" so that databases
 * never share keys. */
void svc_redis_init(struct svc *s);
void svc_redis_release(struct svc *s);

#endif
