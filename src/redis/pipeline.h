#ifndef SHOPD_REDIS_PIPELINE_H
#define SHOPD_REDIS_PIPELINE_H

#include <stddef.h>

/*
 * Pipelined commands for one event loop, without any I/O of its own: the loop owns the socket
 * (http/loop_redis.c), this module only formats the commands and reads the replies, so that
 * hiredis stays inside src/redis/ and h2o inside src/http/. Commands gathered while the
 * previous batch is on the wire go out in one write; replies come back in command order, each
 * with the cookie it was asked with. Not thread-safe: one per loop.
 */

struct redis_pipeline;

/* A reply as the loops read it: hiredis's, without hiredis (src/http/ never includes it). */
enum redis_value_type {
    REDIS_VALUE_STRING,
    REDIS_VALUE_INTEGER,
    REDIS_VALUE_NIL,
    REDIS_VALUE_ARRAY,
    REDIS_VALUE_OTHER, /* a status, or an error reply */
};

struct redis_value {
    enum redis_value_type type;
    const char *str; /* STRING: str and len */
    size_t len;
    long long integer;                  /* INTEGER */
    const struct redis_value *elements; /* ARRAY: nelements of them */
    size_t nelements;
};

/* What to do with one reply: NULL when the connection went away before it came. The reply is
 * only valid during the call. */
typedef void redis_pipeline_reply_fn(void *ctx, void *cookie, const struct redis_value *reply);

struct redis_pipeline *redis_pipeline_new(void);
/* Fails what is still pending (as LOST, through fn) and frees p. */
void redis_pipeline_free(struct redis_pipeline *p, redis_pipeline_reply_fn *fn, void *ctx);

/* Appends a command (lens NULL: every argument is text); its reply comes back with cookie. */
void redis_pipeline_command(struct redis_pipeline *p, int argc, const char **argv,
                            const size_t *lens, void *cookie);

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
