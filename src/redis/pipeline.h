#ifndef SHOPD_REDIS_PIPELINE_H
#define SHOPD_REDIS_PIPELINE_H

#include <stddef.h>

/*
 * Pipelined GETs for one event loop, without any I/O of its own: the loop owns the socket
 * (http/loop_redis.c), this module only formats the commands and reads the replies, so that
 * hiredis stays inside src/redis/ and h2o inside src/http/. Commands gathered while the
 * previous batch is on the wire go out in one write; replies come back in command order, each
 * with the cookie it was asked with. Not thread-safe: one per loop.
 */

struct redis_pipeline;

enum redis_pipeline_reply {
    REDIS_PIPELINE_VALUE, /* a string: value and len */
    REDIS_PIPELINE_NONE,  /* nil (no such key), or a reply of another kind */
    REDIS_PIPELINE_LOST,  /* the connection went away before the reply came */
};

/* What to do with one reply; value is only valid during the call. */
typedef void redis_pipeline_reply_fn(void *ctx, void *cookie, enum redis_pipeline_reply kind,
                                     const char *value, size_t len);

struct redis_pipeline *redis_pipeline_new(void);
/* Fails what is still pending (as LOST, through fn) and frees p. */
void redis_pipeline_free(struct redis_pipeline *p, redis_pipeline_reply_fn *fn, void *ctx);

/* Appends GET key; its reply will come back with cookie. */
void redis_pipeline_get(struct redis_pipeline *p, const char *key, void *cookie);

/* The bytes gathered since the last call (NULL when none); the caller frees them. */
char *redis_pipeline_take_output(struct redis_pipeline *p, size_t *len);

/* Feeds bytes read from the connection; calls fn for each reply now whole. -1 when they are
 * not the protocol (the caller drops the connection and fails the rest). */
int redis_pipeline_feed(struct redis_pipeline *p, const char *bytes, size_t len,
                        redis_pipeline_reply_fn *fn, void *ctx);

/* The cookie of the oldest command still waiting for its reply, or NULL. */
void *redis_pipeline_oldest(const struct redis_pipeline *p);

/* A non-blocking descriptor connected to the pool's master (with Sentinels, the one they name)
 * with the pool's database selected and one reply read, for a loop's pipeline; *generation as for
 * redis_pool_connect_master(). -1 when Redis cannot be reached. It blocks for the connect:
 * call it off the loops. */
struct redis_pool;
int redis_pipeline_connect(struct redis_pool *pool, unsigned *generation);

#endif
