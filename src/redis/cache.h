#ifndef SHOPD_REDIS_CACHE_H
#define SHOPD_REDIS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "core/metrics.h"

/*
 * Cache-aside in Redis in front of MariaDB, never stale after a write and safe against
 * stampedes. Values are text (the JSON the service builds anyway), kept for the cache's TTL
 * with ±10 % jitter so that keys filled together do not expire together.
 *
 * - A read is one GET. On a miss the value is loaded from MariaDB once, not once per waiting
 *   request: threads of this process wait for one leader (in-process single flight), and the
 *   leaders of all processes agree through a short Redis lease (SET NX PX) on who loads; the
 *   others poll for the value with growing pauses until the lease ends. Waiters then read
 *   Redis again rather than take the leader's value, which may predate a write they must see.
 * - cache_invalidate(), called after the writer's transaction commits, bumps the key's
 *   generation and deletes the value. A load stores its value only if the generation is still
 *   the one it saw before reading MariaDB, so a reader that loaded before the write can never
 *   put the old value back.
 * - Redis errors are never the caller's problem: reads load from MariaDB (correct, slower;
 *   no sharing of loads then), failed invalidations are retried by the writing process once
 *   Redis answers again, and the metrics count it all. NEEDSWORK: while such a retry is
 *   pending (Redis slow rather than down), other processes may serve the old value from
 *   Redis until the retry or the TTL; a write-ahead invalidation log would close that.
 *
 * Keys are "<prefix><key>", with "<key>:gen" and "<key>:lease" beside. Thread-safe.
 */

struct arena;
struct err;
struct redis_pool;
struct cache;

struct cache_metrics {
    enum metric_id hits, misses, loads, errors;
};

struct cache_options {
    const char *name;   /* for logs: "product" */
    const char *prefix; /* namespace of every key, e.g. the database name and a colon */
    int64_t ttl_ms;
    struct cache_metrics metrics;
};

struct cache *cache_new(struct redis_pool *pool, const struct cache_options *o);
void cache_free(struct cache *c);

/*
 * Loads the value from MariaDB: 0 with *value (in the arena), or -1 with e (nothing cached).
 * 0 with *value NULL says that the thing does not exist: that answer is cached too (a
 * negative entry, kept 10 s at most, or the cache's TTL if shorter), so that reads of ids that
 * do not exist cost one GET each instead of four round trips. Writers that create the thing
 * must invalidate its key after their commit, as for any change.
 */
typedef int cache_load_fn(void *ctx, struct arena *a, const char **value, struct err *e);

/* The value of key: from Redis, or loaded by load (once across waiters) and stored. The value
 * is in the arena; NULL when the loader (now or within the negative entry's life) found
 * nothing. Errors are load's. */
int cache_get(struct cache *c, const char *key, cache_load_fn *load, void *ctx, struct arena *a,
              const char **value, struct err *e);

/*
 * Loads the values of several keys from MariaDB in one go (one statement): values[which[j]]
 * for j < n, where which[] indexes the caller's keys; NULL for a thing that does not exist
 * (cached as absent, as for cache_load_fn). 0, or -1 with e (nothing cached).
 */
typedef int cache_load_many_fn(void *ctx, size_t n, const size_t *which, struct arena *a,
                               const char **values, struct err *e);

/*
 * The values of n keys, as cache_get gives each (values[i] for keys[i], in the arena), in a
 * batch: one Redis round trip when every key is cached (one script that reads each value and,
 * for each one missing, takes its lease), at most one call of load for all the keys missing,
 * and one more round trip to store what was loaded. Each value is stored under the rule of
 * cache_get (only if its key's generation has not moved since before the load read MariaDB),
 * so a batch is never stale either. Keys whose lease another loader holds are waited for (the
 * script again, with growing pauses) while this call loads nothing itself; once it loads, it
 * loads them too, without storing them. There is no in-process single flight: the leases
 * serve threads as they serve processes. Redis down: load is called once for all n keys, and
 * nothing is stored. Costs 3n + a few arguments: callers bound n (the services read 100 keys
 * at most at a time). Errors are load's.
 */
int cache_get_many(struct cache *c, size_t n, const char *const *keys, cache_load_many_fn *load,
                   void *ctx, struct arena *a, const char **values, struct err *e);

/* Makes key's cached value disappear; call after the transaction that changed it commits. */
void cache_invalidate(struct cache *c, const char *key);
/* The same for keys[0..n), in one round trip for up to 100 keys: a write's keys together. */
void cache_invalidate_many(struct cache *c, size_t n, const char *const *keys);

/*
 * For a read served from an event loop, whose single GET is sent by the loop's own pipeline
 * (redis/pipeline.h) rather than by cache_get(). cache_loop_key() gives the Redis key of key;
 * -1 when such a read must go the slow way instead: this process holds invalidations that
 * Redis has not taken yet (cache_get() retries them before it reads). cache_loop_value() takes
 * the GET's reply (or one value of an MGET's): NULL for no reply, a missing key or a negative
 * entry (the caller goes the slow way, which answers it), else the value (*len bytes).
 * cache_loop_hits() counts n hits, once the loop answers from them (a read that goes the slow
 * way after all is counted there).
 */
struct redis_value;
int cache_loop_key(struct cache *c, const char *key, char *buf, size_t size);
/* The same for one batch: the Redis keys of keys[0..n) into out (from a), counted as the one
 * round trip an MGET of them is. */
struct arena;
int cache_loop_keys(struct cache *c, size_t n, const char *const *keys, struct arena *a,
                    const char **out);
const char *cache_loop_value(const struct cache *c, const struct redis_value *reply, size_t *len);
void cache_loop_hits(struct cache *c, size_t n);

#endif
