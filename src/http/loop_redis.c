#include "http/loop_redis.h"

#include <h2o.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/xalloc.h"
#include "redis/pipeline.h"

#include "core/banned.h"

struct loop_redis {
    h2o_loop_t *loop;
    loop_redis_done_fn *done;
    h2o_socket_t *sock; /* NULL: not connected */
    struct redis_pipeline *pipe;
    unsigned generation;
    char *writing; /* the batch on the wire (h2o holds a view of it until on_written) */
    /* The pipeline on_read is feeding: a callback that drops the connection meanwhile leaves
     * it to on_read to free, once the feed has returned (dropped_while_feeding). */
    struct redis_pipeline *feeding;
    bool dropped_while_feeding;
};

/* What the pipeline carries for each command: the caller's cookie and when it was asked. */
struct waiting {
    void *cookie;
    int64_t asked_us;
};

static void on_reply(void *ctx, void *cookie, const struct redis_value *reply)
{
    struct loop_redis *r = ctx;
    struct waiting *w = cookie;
    void *caller = w->cookie;

    free(w);
    r->done(caller, reply);
}

struct loop_redis *loop_redis_new(struct st_h2o_evloop_t *loop, loop_redis_done_fn *done)
{
    struct loop_redis *r = xcalloc(1, sizeof(*r));

    r->loop = loop;
    r->done = done;
    return r;
}

static void disconnect(struct loop_redis *r)
{
    h2o_socket_t *sock = r->sock;
    struct redis_pipeline *pipe = r->pipe;

    r->sock = NULL;
    r->pipe = NULL;
    /* h2o_socket_close() never calls the write callback of a batch still on the wire. */
    free(r->writing);
    r->writing = NULL;
    h2o_socket_close(sock);
    if (pipe == r->feeding) {
        r->dropped_while_feeding = true;
        return;
    }
    redis_pipeline_free(pipe, on_reply, r); /* the callers may ask again: r is consistent */
}

void loop_redis_drop(struct loop_redis *r, const char *why)
{
    if (!r->sock)
        return;
    log_info("a loop's Redis connection dropped: %s", why);
    metrics_inc(METRIC_LOOP_REDIS_DROPS);
    disconnect(r);
}

void loop_redis_free(struct loop_redis *r)
{
    if (!r)
        return;
    if (r->sock)
        disconnect(r);
    free(r);
}

bool loop_redis_ready(const struct loop_redis *r)
{
    return r->sock != NULL;
}

unsigned loop_redis_generation(const struct loop_redis *r)
{
    return r->generation;
}

static void flush(struct loop_redis *r);

static void on_written(h2o_socket_t *sock, const char *err)
{
    struct loop_redis *r = sock->data;

    free(r->writing);
    r->writing = NULL;
    if (err) {
        loop_redis_drop(r, err);
        return;
    }
    flush(r);
}

/* Sends what was gathered unless a batch is on the wire: on_written sends the next. */
static void flush(struct loop_redis *r)
{
    size_t len;

    if (!r->sock || r->writing)
        return;
    r->writing = redis_pipeline_take_output(r->pipe, &len);
    if (!r->writing)
        return;
    h2o_iovec_t buf = h2o_iovec_init(r->writing, len);
    h2o_socket_write(r->sock, &buf, 1, on_written);
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    struct loop_redis *r = sock->data;

    if (err) {
        loop_redis_drop(r, err);
        return;
    }
    struct redis_pipeline *pipe = r->pipe;
    r->feeding = pipe;
    r->dropped_while_feeding = false;
    int rc = redis_pipeline_feed(pipe, sock->input->bytes, sock->input->size, on_reply, r);
    r->feeding = NULL;
    /* A callback may have dropped the connection (and the socket with it). */
    if (r->dropped_while_feeding) {
        redis_pipeline_free(pipe, on_reply, r);
        return;
    }
    h2o_buffer_consume(&sock->input, sock->input->size);
    if (rc)
        loop_redis_drop(r, "a reply that is not the Redis protocol");
}

void loop_redis_attach(struct loop_redis *r, int fd, unsigned generation)
{
    if (r->sock) {
        close(fd); /* one is enough */
        return;
    }
    r->sock = h2o_evloop_socket_create(r->loop, fd, 0);
    r->sock->data = r;
    r->pipe = redis_pipeline_new();
    r->generation = generation;
    h2o_socket_read_start(r->sock, on_read);
}

void loop_redis_send(struct loop_redis *r, int argc, const char **argv, const size_t *lens,
                     void *cookie, int64_t now_us)
{
    struct waiting *w = xmalloc(sizeof(*w));

    w->cookie = cookie;
    w->asked_us = now_us;
    redis_pipeline_command(r->pipe, argc, argv, lens, w);
    flush(r);
}

void loop_redis_expire(struct loop_redis *r, int64_t now_us, int64_t deadline_us)
{
    if (!r->sock)
        return;
    const struct waiting *oldest = redis_pipeline_oldest(r->pipe);
    if (oldest && now_us - oldest->asked_us > deadline_us)
        loop_redis_drop(r, "no reply within the deadline");
}
