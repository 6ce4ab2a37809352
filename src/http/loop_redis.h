#ifndef SHOPD_HTTP_LOOP_REDIS_H
#define SHOPD_HTTP_LOOP_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * One event loop's connection to Redis, for the reads the loop answers itself (struct
 * route_loop_read): the commands of every request in flight on the loop share it, the ones
 * asked while a batch is on the wire go out together in the next write, and the replies come
 * back in order (redis/pipeline.h formats and parses; this file owns the socket, on h2o's
 * loop). The connection is made on a worker (a connect blocks) and handed over with
 * loop_redis_attach(). When it breaks, or its oldest read has waited past the deadline, it is
 * dropped and every read still waiting is given back without a reply: the caller sends those to the
 * workers, whose path is correct without Redis, so a dead or stalled Redis costs speed only.
 * Not thread-safe: the loop's thread alone uses it.
 */

struct st_h2o_evloop_t; /* h2o's loop (h2o_loop_t) */
struct redis_value;

/* A command's reply (redis/pipeline.h), or NULL: the connection went, or never was. */
typedef void loop_redis_done_fn(void *cookie, const struct redis_value *reply);

struct loop_redis;

struct loop_redis *loop_redis_new(struct st_h2o_evloop_t *loop, loop_redis_done_fn *done);
/* Drops the connection (reads waiting come back LOST) and frees r. */
void loop_redis_free(struct loop_redis *r);

/* Whether a connection is attached, and the Redis master generation it belongs to. */
bool loop_redis_ready(const struct loop_redis *r);
unsigned loop_redis_generation(const struct loop_redis *r);

/* Takes fd (connected, non-blocking, its database selected) as the loop's connection. */
void loop_redis_attach(struct loop_redis *r, int fd, unsigned generation);

/* Closes the connection; what waits comes back without a reply. */
void loop_redis_drop(struct loop_redis *r, const char *why);

/* Sends a command for cookie (the connection must be ready; lens NULL: all text); done is
 * called on the loop. */
void loop_redis_send(struct loop_redis *r, int argc, const char **argv, const size_t *lens,
                     void *cookie, int64_t now_us);

/* Drops the connection if its oldest read was asked more than deadline_us before now_us. */
void loop_redis_expire(struct loop_redis *r, int64_t now_us, int64_t deadline_us);

#endif
