/*
 * bench/spike/h2o_product.c: the engine spike's h2o candidate (libh2o-evloop 2.2.5).
 *
 * A toy that answers GET /api/products/{id} the way shopd's product detail does, to measure
 * what the engine itself can carry beside the nginx ceiling, never to serve anything:
 *   h2o_product PORT THREADS fixed          a fixed JSON body (the engine alone)
 *   h2o_product PORT THREADS redis RPORT    the body read from Redis (GET spike:product:{id}),
 *                                           every loop pipelining its requests' GETs on its
 *                                           own connection: the commands gathered while the
 *                                           previous batch was on the wire go in one write
 * One event loop per thread, each with its own listener (SO_REUSEPORT: the kernel spreads the
 * connections). bench/spike/run.sh builds and drives it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <h2o.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hiredis.h>

#define BODY                                                              \
    "{\"id\":1,\"name\":\"Spike product\",\"price\":12000,\"stock\":100," \
    "\"createdAt\":\"2026-12-04T00:00:00Z\"}"
#define PIPELINE_MAX 4096

/* A request waiting for its GET; req is NULL once its connection went away. The request's
 * pool holds link, which points back here until the reply came. */
struct waiter {
    h2o_req_t *req;
    struct waiter **link;
};

/* The Redis side of one loop: the requests waiting in command order, and the batch being
 * gathered while the previous one is written. */
struct pipeline {
    h2o_socket_t *sock;
    redisReader *reader;
    struct waiter *waiting[PIPELINE_MAX];
    size_t head, count;
    char *gathering, *writing;
    size_t gathered, gathering_cap;
};

struct loop {
    h2o_context_t ctx;
    h2o_accept_ctx_t accept;
    struct pipeline redis;
};

static h2o_globalconf_t config;
static int port, redis_port;
static bool use_redis;
static __thread struct loop *this_loop;

static void answer(h2o_req_t *req, int status, const char *body, size_t len)
{
    static h2o_generator_t generator;
    h2o_iovec_t buf = h2o_strdup(&req->pool, body, len);

    req->res.status = status;
    req->res.reason = status == 200 ? "OK" : "Not Found";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    h2o_start_response(req, &generator);
    h2o_send(req, &buf, 1, H2O_SEND_STATE_FINAL);
}

static void flush_batch(struct pipeline *p);

static void on_written(h2o_socket_t *sock, const char *err)
{
    struct pipeline *p = &this_loop->redis;

    (void)sock;
    if (err) {
        fprintf(stderr, "h2o_product: redis write: %s\n", err);
        exit(1);
    }
    free(p->writing);
    p->writing = NULL;
    flush_batch(p);
}

static void flush_batch(struct pipeline *p)
{
    if (p->writing || !p->gathered)
        return;
    h2o_iovec_t buf = h2o_iovec_init(p->gathering, p->gathered);
    p->writing = p->gathering;
    p->gathering = NULL;
    p->gathered = p->gathering_cap = 0;
    h2o_socket_write(p->sock, &buf, 1, on_written);
}

static void on_reply_bytes(h2o_socket_t *sock, const char *err)
{
    struct pipeline *p = &this_loop->redis;
    void *reply;

    if (err) {
        fprintf(stderr, "h2o_product: redis read: %s\n", err);
        exit(1);
    }
    redisReaderFeed(p->reader, sock->input->bytes, sock->input->size);
    h2o_buffer_consume(&sock->input, sock->input->size);
    while (redisReaderGetReply(p->reader, &reply) == REDIS_OK && reply) {
        redisReply *r = reply;
        struct waiter *w = p->waiting[p->head];
        p->head = (p->head + 1) % PIPELINE_MAX;
        p->count--;
        if (w->req) {
            *w->link = NULL;
            if (r->type == REDIS_REPLY_STRING)
                answer(w->req, 200, r->str, r->len);
            else
                answer(w->req, 404, "{}", 2);
        }
        free(w);
        freeReplyObject(r);
    }
}

static void on_request_gone(void *obj)
{
    struct waiter *w = *(struct waiter **)obj;

    if (w)
        w->req = NULL;
}

static int ask_redis(h2o_req_t *req, const char *id, size_t id_len)
{
    struct pipeline *p = &this_loop->redis;
    char key[64];
    const char *argv[] = {"GET", key};
    char *cmd;

    if (p->count == PIPELINE_MAX)
        return -1;
    snprintf(key, sizeof(key), "spike:product:%.*s", (int)id_len, id);
    int len = redisFormatCommandArgv(&cmd, 2, argv, NULL);
    if (p->gathered + (size_t)len > p->gathering_cap) {
        p->gathering_cap = (p->gathered + (size_t)len) * 2;
        p->gathering = realloc(p->gathering, p->gathering_cap);
    }
    memcpy(p->gathering + p->gathered, cmd, (size_t)len);
    p->gathered += (size_t)len;
    free(cmd);
    struct waiter *w = malloc(sizeof(*w));
    w->req = req;
    w->link = h2o_mem_alloc_shared(&req->pool, sizeof(*w->link), on_request_gone);
    *w->link = w;
    p->waiting[(p->head + p->count) % PIPELINE_MAX] = w;
    p->count++;
    flush_batch(p);
    return 0;
}

static int on_product(h2o_handler_t *self, h2o_req_t *req)
{
    static const char prefix[] = "/api/products/";
    (void)self;

    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
        req->path_normalized.len <= sizeof(prefix) - 1)
        return -1;
    const char *id = req->path_normalized.base + sizeof(prefix) - 1;
    size_t id_len = req->path_normalized.len - (sizeof(prefix) - 1);
    if (!use_redis) {
        answer(req, 200, BODY, sizeof(BODY) - 1);
        return 0;
    }
    if (ask_redis(req, id, id_len)) {
        answer(req, 503, "{}", 2);
    }
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    h2o_socket_t *sock;

    if (err || !(sock = h2o_evloop_socket_accept(listener)))
        return;
    h2o_accept(&this_loop->accept, sock);
}

static int listen_on(int p)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), on = 1;
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)p),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on));
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) || listen(fd, 4096)) {
        perror("h2o_product: listen");
        exit(1);
    }
    return fd;
}

static int connect_redis(int p)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), on = 1;
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)p),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr))) {
        perror("h2o_product: redis connect");
        exit(1);
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static void *run_loop(void *arg)
{
    struct loop *l = arg;

    this_loop = l;
    h2o_context_init(&l->ctx, h2o_evloop_create(), &config);
    l->accept.ctx = &l->ctx;
    l->accept.hosts = config.hosts;
    h2o_socket_t *listener =
        h2o_evloop_socket_create(l->ctx.loop, listen_on(port), H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(listener, on_accept);
    if (use_redis) {
        l->redis.reader = redisReaderCreate();
        l->redis.sock = h2o_evloop_socket_create(l->ctx.loop, connect_redis(redis_port), 0);
        h2o_socket_read_start(l->redis.sock, on_reply_bytes);
    }
    while (h2o_evloop_run(l->ctx.loop, INT32_MAX) == 0)
        ;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4 || (strcmp(argv[3], "fixed") && (strcmp(argv[3], "redis") || argc < 5))) {
        fprintf(stderr, "usage: h2o_product PORT THREADS fixed|redis [REDIS_PORT]\n");
        return 2;
    }
    port = atoi(argv[1]);
    int threads = atoi(argv[2]);
    use_redis = !strcmp(argv[3], "redis");
    if (use_redis)
        redis_port = atoi(argv[4]);

    h2o_config_init(&config);
    h2o_hostconf_t *host =
        h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(path, sizeof(*handler));
    handler->on_req = on_product;

    pthread_t tid[64];
    struct loop *loops = calloc((size_t)threads, sizeof(*loops));
    for (int i = 0; i < threads && i < 64; i++)
        pthread_create(&tid[i], NULL, run_loop, &loops[i]);
    for (int i = 0; i < threads && i < 64; i++)
        pthread_join(tid[i], NULL);
    return 0;
}
