/*
 * bench/spike/mhd_product.c: the engine spike's libmicrohttpd candidate (0.9.75).
 *
 * A toy that answers GET /api/products/{id} as shopd's product detail does, to measure what
 * the engine itself can carry beside the nginx ceiling:
 *   mhd_product PORT THREADS fixed          epoll, a pool of THREADS, a fixed JSON body
 *   mhd_product PORT 0 fixed                a thread per connection (shopd's mode today)
 *   mhd_product PORT THREADS redis RPORT    epoll pool; the body read from Redis with one
 *                                           blocking GET per request on the thread's own
 *                                           connection (libmicrohttpd gives a handler no loop
 *                                           to wait on, so a round trip holds the thread)
 * bench/spike/run.sh builds and drives it.
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis.h>
#include <microhttpd.h>

#define BODY                                                              \
    "{\"id\":1,\"name\":\"Spike product\",\"price\":12000,\"stock\":100," \
    "\"createdAt\":\"2026-12-04T00:00:00Z\"}"

static bool use_redis;
static int redis_port;
static __thread redisContext *redis;

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *body,
                             size_t len)
{
    struct MHD_Response *res =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(res, "Content-Type", "application/json");
    enum MHD_Result rc = MHD_queue_response(conn, status, res);
    MHD_destroy_response(res);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **state)
{
    static const char prefix[] = "/api/products/";
    (void)cls, (void)version, (void)upload, (void)upload_size, (void)state;

    if (strcmp(method, "GET") || strncmp(url, prefix, sizeof(prefix) - 1))
        return reply(conn, 404, "{}", 2);
    if (!use_redis)
        return reply(conn, 200, BODY, sizeof(BODY) - 1);
    if (!redis && !(redis = redisConnect("127.0.0.1", redis_port))) {
        return reply(conn, 503, "{}", 2);
    }
    redisReply *r = redisCommand(redis, "GET spike:product:%s", url + sizeof(prefix) - 1);
    if (!r) {
        redisFree(redis);
        redis = NULL;
        return reply(conn, 503, "{}", 2);
    }
    enum MHD_Result rc = r->type == REDIS_REPLY_STRING ? reply(conn, 200, r->str, r->len)
                                                       : reply(conn, 404, "{}", 2);
    freeReplyObject(r);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 4 || (strcmp(argv[3], "fixed") && (strcmp(argv[3], "redis") || argc < 5))) {
        fprintf(stderr, "usage: mhd_product PORT THREADS fixed|redis [REDIS_PORT]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    unsigned threads = (unsigned)atoi(argv[2]);
    use_redis = !strcmp(argv[3], "redis");
    if (use_redis)
        redis_port = atoi(argv[4]);

    unsigned flags = threads ? MHD_USE_EPOLL_INTERNAL_THREAD : MHD_USE_THREAD_PER_CONNECTION;
    struct MHD_Daemon *d =
        threads ? MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, NULL,
                                   MHD_OPTION_THREAD_POOL_SIZE, threads,
                                   MHD_OPTION_CONNECTION_LIMIT, 20000u, MHD_OPTION_END)
                : MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, NULL,
                                   MHD_OPTION_CONNECTION_LIMIT, 4096u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "mhd_product: cannot start on port %d\n", port);
        return 1;
    }
    pause();
    MHD_stop_daemon(d);
    return 0;
}
