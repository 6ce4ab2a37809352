#include "redis/pipeline.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis.h>

#include "core/err.h"
#include "core/xalloc.h"
#include "redis/redis_pool.h"

#include "core/banned.h"

struct redis_pipeline {
    redisReader *reader;
    void **cookies; /* a ring, in command order; cap is a power of two */
    size_t head, count, cap;
    char *out;
    size_t out_len, out_cap;
};

struct redis_pipeline *redis_pipeline_new(void)
{
    struct redis_pipeline *p = xcalloc(1, sizeof(*p));

    p->reader = redisReaderCreate();
    if (!p->reader)
        BUG("out of memory");
    return p;
}

static void *pop(struct redis_pipeline *p)
{
    void *cookie = p->cookies[p->head];

    p->head = (p->head + 1) & (p->cap - 1);
    p->count--;
    return cookie;
}

void redis_pipeline_free(struct redis_pipeline *p, redis_pipeline_reply_fn *fn, void *ctx)
{
    if (!p)
        return;
    while (p->count)
        fn(ctx, pop(p), REDIS_PIPELINE_LOST, NULL, 0);
    redisReaderFree(p->reader);
    free(p->cookies);
    free(p->out);
    free(p);
}

static void push(struct redis_pipeline *p, void *cookie)
{
    if (p->cap == 0 || p->count == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 64;
        void **bigger = xcalloc(cap, sizeof(*bigger));
        for (size_t i = 0; i < p->count; i++)
            bigger[i] = p->cookies[(p->head + i) & (p->cap - 1)];
        free(p->cookies);
        p->cookies = bigger;
        p->head = 0;
        p->cap = cap;
    }
    p->cookies[(p->head + p->count) & (p->cap - 1)] = cookie;
    p->count++;
}

void redis_pipeline_get(struct redis_pipeline *p, const char *key, void *cookie)
{
    const char *argv[] = {"GET", key};
    size_t lens[] = {3, strlen(key)};
    char *cmd = NULL;
    long long len = redisFormatCommandArgv(&cmd, 2, argv, lens);

    if (len < 0)
        BUG("out of memory");
    if (p->out_len + (size_t)len > p->out_cap) {
        p->out_cap = 2 * (p->out_len + (size_t)len);
        p->out = xrealloc(p->out, p->out_cap);
    }
    memcpy(p->out + p->out_len, cmd, (size_t)len);
    p->out_len += (size_t)len;
    redisFreeCommand(cmd);
    push(p, cookie);
}

char *redis_pipeline_take_output(struct redis_pipeline *p, size_t *len)
{
    char *out = p->out;

    *len = p->out_len;
    if (!p->out_len)
        return NULL;
    p->out = NULL;
    p->out_len = p->out_cap = 0;
    return out;
}

int redis_pipeline_feed(struct redis_pipeline *p, const char *bytes, size_t len,
                        redis_pipeline_reply_fn *fn, void *ctx)
{
    void *reply = NULL;

    if (redisReaderFeed(p->reader, bytes, len) != REDIS_OK)
        return -1;
    for (;;) {
        if (redisReaderGetReply(p->reader, &reply) != REDIS_OK)
            return -1;
        if (!reply)
            return 0;
        redisReply *r = reply;
        if (!p->count) { /* a reply to nothing asked: not a conversation we are having */
            freeReplyObject(r);
            return -1;
        }
        void *cookie = pop(p);
        if (r->type == REDIS_REPLY_STRING)
            fn(ctx, cookie, REDIS_PIPELINE_VALUE, r->str, r->len);
        else
            fn(ctx, cookie, REDIS_PIPELINE_NONE, NULL, 0);
        freeReplyObject(r);
    }
}

void *redis_pipeline_oldest(const struct redis_pipeline *p)
{
    return p->count ? p->cookies[p->head] : NULL;
}

int redis_pipeline_connect(struct redis_pool *pool, unsigned *generation)
{
    redisContext *c = redis_pool_connect_master(pool, redis_pool_timeout_ms(pool), generation);
    int db = redis_pool_db(pool);

    if (!c)
        return -1;
    /* One command answered within the pool's time-out before the loop relies on it: a Redis
     * that accepts connections but does not answer (stopped, or stalled) is not attached. */
    redisReply *r = db ? redisCommand(c, "SELECT %d", db) : redisCommand(c, "PING");
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    if (!ok) {
        redisFree(c);
        return -1;
    }
    /* The descriptor is the loop's from here: hiredis must not close it. */
    int fd = c->fd;
    c->fd = -1;
    redisFree(c);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}
