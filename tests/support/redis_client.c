#include "redis_client.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis.h>

#include "core/config.h"
#include "core/err.h"
#include "redis/redis_pool.h"

int redis_client_init(struct redis_client *c, const char *url)
{
    struct config cfg;
    struct err e;

    memset(c, 0, sizeof(*c));
    memset(&cfg, 0, sizeof(cfg));
    if (config_parse_redis_url(&cfg, url, &e)) {
        fprintf(stderr, "redis_client: %s\n", e.detail);
        return -1;
    }
    snprintf(c->host, sizeof(c->host), "%s", cfg.redis_host);
    c->port = cfg.redis_port;
    c->db = cfg.redis_db;
    return 0;
}

void redis_client_release(struct redis_client *c)
{
    if (c->ctx)
        redisFree(c->ctx);
    c->ctx = NULL;
}

/* A live connection on the right database, or NULL. */
static redisContext *connected(struct redis_client *c)
{
    struct timeval tv = {2, 0};

    if (c->ctx)
        return c->ctx;
    c->ctx = redis_connect_place(c->host, c->port, 2000);
    if (!c->ctx || c->ctx->err) {
        redis_client_release(c);
        return NULL;
    }
    redisSetTimeout(c->ctx, tv);
    if (!c->db)
        return c->ctx; /* database 0 needs no SELECT, which a Sentinel would refuse */
    redisReply *r = redisCommand(c->ctx, "SELECT %d", c->db);
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    if (!ok)
        redis_client_release(c);
    return c->ctx;
}

/* A NULL reply means the connection is broken: drop it, the next call reconnects. */
static struct redisReply *checked(struct redis_client *c, void *reply)
{
    if (!reply)
        redis_client_release(c);
    return reply;
}

struct redisReply *redis_client_cmd(struct redis_client *c, const char *fmt, ...)
{
    va_list ap;

    if (!connected(c))
        return NULL;
    va_start(ap, fmt);
    void *reply = redisvCommand(c->ctx, fmt, ap);
    va_end(ap);
    return checked(c, reply);
}

struct redisReply *redis_client_cmd_argv(struct redis_client *c, int argc, const char **argv)
{
    if (!connected(c))
        return NULL;
    return checked(c, redisCommandArgv(c->ctx, argc, argv, NULL));
}

long long redis_client_integer(struct redis_client *c, long long otherwise, const char *fmt, ...)
{
    va_list ap;

    if (!connected(c))
        return otherwise;
    va_start(ap, fmt);
    redisReply *r = checked(c, redisvCommand(c->ctx, fmt, ap));
    va_end(ap);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : otherwise;
    if (r)
        freeReplyObject(r);
    return v;
}

int64_t redis_client_delete_matching(struct redis_client *c, const char *pattern)
{
    char cursor[32] = "0";
    int64_t deleted = 0;

    do {
        redisReply *r = redis_client_cmd(c, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            if (r)
                freeReplyObject(r);
            return -1;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        redisReply *keys = r->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            redisReply *d = redis_client_cmd(c, "DEL %s", keys->element[i]->str);
            deleted += d && d->type == REDIS_REPLY_INTEGER ? d->integer : 0;
            if (d)
                freeReplyObject(d);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0"));
    return deleted;
}
