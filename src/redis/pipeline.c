#include "redis/pipeline.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis.h>

#include "core/array.h"
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
        fn(ctx, pop(p), NULL);
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

void redis_pipeline_command(struct redis_pipeline *p, int argc, const char **argv,
                            const size_t *lens, void *cookie)
{
    char *cmd = NULL;
    long long len = redisFormatCommandArgv(&cmd, argc, argv, lens);

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

/* A reply that is not an array, as the loops read it. */
static void scalar_of(const redisReply *r, struct redis_value *v)
{
    static const struct {
        int hiredis;
        enum redis_value_type type;
    } types[] = {
        {REDIS_REPLY_STRING, REDIS_VALUE_STRING},
        {REDIS_REPLY_INTEGER, REDIS_VALUE_INTEGER},
        {REDIS_REPLY_NIL, REDIS_VALUE_NIL},
    };

    *v = (struct redis_value){.type = REDIS_VALUE_OTHER};
    for (size_t i = 0; i < ARRAY_SIZE(types); i++)
        if (r->type == types[i].hiredis)
            v->type = types[i].type;
    if (r->type == REDIS_REPLY_STRING) {
        v->str = r->str;
        v->len = r->len;
    }
    if (r->type == REDIS_REPLY_INTEGER)
        v->integer = r->integer;
}

/* What the loops ask for comes back as a string, an integer, nil, or one array of those (as
 * MGET answers): v, and the array of elements it points at (the caller frees it), or NULL. A
 * nested array is OTHER to the loops. */
static struct redis_value *value_of(const redisReply *r, struct redis_value *v)
{
    struct redis_value *elements = NULL;

    scalar_of(r, v);
    if (r->type != REDIS_REPLY_ARRAY)
        return NULL;
    v->type = REDIS_VALUE_ARRAY;
    if (r->elements)
        elements = xcalloc(r->elements, sizeof(*elements));
    for (size_t i = 0; i < r->elements; i++)
        scalar_of(r->element[i], &elements[i]);
    v->elements = elements;
    v->nelements = r->elements;
    return elements;
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
        struct redis_value v;
        struct redis_value *elements = value_of(r, &v);
        fn(ctx, pop(p), &v);
        free(elements);
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
