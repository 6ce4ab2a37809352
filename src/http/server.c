#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <h2o.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/array.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/round_trips.h"
#include "core/xalloc.h"
#include "http/addr_count.h"
#include "http/engine_errors.h"
#include "http/framing.h"
#include "http/loop_redis.h"
#include "http/req.h"
#include "http/resp.h"
#include "http/router.h"
#include "http/work_pool.h"
#include "redis/redis_fault.h"

#include "core/banned.h"

#define HEAD_TIMEOUT_S 10  /* API.md: the head within 10 s of its first byte */
#define IDLE_TIMEOUT_S 60  /* API.md: idle keep-alive closes after 60 s */
#define TICK_MS        250 /* how often a loop looks for late requests */
#define ACCEPT_BATCH   64  /* connections taken per wake of a listener */
#define FDS_KEPT       512 /* descriptors left for MariaDB, Redis, logs when sizing the cap */
/* A read waiting on a loop's Redis connection this long (plus up to a tick) gives it up: the
 * connection is dropped and its reads go to the workers. */
#define LOOP_READ_DEADLINE_US ((int64_t)200 * 1000)
#define LOOP_REDIS_RETRY_US                                               \
    ((int64_t)1000 * 1000) /* between attempts to connect a loop to Redis \
                            */

enum loop_stage { LOOP_SERVING, LOOP_DRAINING, LOOP_QUIT };

struct server;

/* One event loop: its thread, its h2o context and the connections it owns. */
struct loop {
    struct server *s;
    pthread_t thread;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept;
    h2o_socket_t *listener;
    int listen_fd;
    h2o_multithread_receiver_t answers;  /* exchanges coming back from the workers */
    h2o_multithread_receiver_t control;  /* server_stop()'s drain and quit */
    h2o_multithread_receiver_t handover; /* a Redis connection a worker made for the loop */
    h2o_multithread_message_t drain_msg, quit_msg;
    h2o_timeout_t tick_timeout;
    h2o_timeout_entry_t tick;
    h2o_linklist_t conns;
    _Atomic enum loop_stage stage;
    struct loop_redis *redis; /* NULL: no reads are served on the loop */
    bool redis_connecting;    /* a worker is connecting it */
    int64_t redis_tried_us;   /* when the last attempt ended */
};

/* A connection this process accepted; freed when h2o closes its socket (on_conn_closed). */
struct conn {
    h2o_linklist_t link;
    struct loop *loop;
    h2o_socket_t *sock;
    int fd;
    uint32_t addr;
    int64_t arriving_since_us; /* bytes of a request seen while idle (0: none) */
    bool busy;                 /* one of its requests is being served */
    bool closing;
};

/* One request from its arrival to its answer: the loop fills it, at most one worker runs its
 * handler, the loop answers it. */
struct exchange {
    struct req req;
    struct resp resp;
    struct err e;
    struct round_trips trips;
    h2o_req_t *h;
    struct conn *conn;
    struct loop *loop;
    struct work_item work;
    h2o_multithread_message_t done;
    bool connect_redis; /* after answering, the worker connects the loop to Redis */
};

/* A Redis connection made on a worker, on its way to the loop that asked for it. */
struct redis_handover {
    h2o_multithread_message_t msg;
    struct loop *loop;
    int fd;
    unsigned generation;
};

struct server {
    struct server_options opt;
    h2o_globalconf_t h2o;
    int listen_fd;
    struct loop *loops;
    int nloops;
    struct work_pool *workers;
    struct addr_count *per_addr;
    int max_connections;
    int64_t head_timeout_us;
    sem_t loops_ready; /* posted by each loop once it takes messages */
    atomic_int conns;
    atomic_int inflight;
    /* server_stop() sleeps on quiet (monotonic) until conns and inflight are both 0 or the
     * grace ends. */
    pthread_mutex_t quiet_lock;
    pthread_cond_t quiet;
    atomic_uint_least64_t next_request;
    unsigned instance_tag;
    char refusal[512]; /* the whole 503 answer of a connection refused at accept */
    size_t refusal_len;
    char late[512]; /* the whole 408 answer of a request that came too slowly */
    size_t late_len;
};

static _Thread_local struct loop *this_loop;

/* Called after conns or inflight went down: wakes server_stop() once nothing is left. */
static void maybe_quiet(struct server *s)
{
    if (atomic_load(&s->conns) || atomic_load(&s->inflight))
        return;
    pthread_mutex_lock(&s->quiet_lock);
    pthread_cond_broadcast(&s->quiet);
    pthread_mutex_unlock(&s->quiet_lock);
}

static const struct {
    int status;
    const char *text;
} reasons[] = {
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {413, "Content Too Large"},
    {415, "Unsupported Media Type"},
    {422, "Unprocessable Content"},
    {500, "Internal Server Error"},
    {503, "Service Unavailable"},
};

/* The reason phrase of a status line (clients ignore it; RFC 9110's wording all the same). */
static const char *reason(int status)
{
    for (size_t i = 0; i < ARRAY_SIZE(reasons); i++)
        if (reasons[i].status == status)
            return reasons[i].text;
    return status < 400 ? "OK" : "Error";
}

/* ---- requests: from h2o's request to ours, and our answer back to h2o ---- */

/* This instance's tag and a counter: unique across instances in practice, and cheap. */
static void fresh_request_id(void *ctx, char *buf, size_t size)
{
    struct server *s = ctx;
    unsigned long long n = atomic_fetch_add(&s->next_request, 1);

    snprintf(buf, size, "%06x-%llu", s->instance_tag, n);
}

static void set_request_id(struct server *s, struct req *req)
{
    const char *given = req_header(req, "X-Request-Id");
    size_t len = given ? strlen(given) : 0;
    bool ok = len > 0 && len < sizeof(req->request_id);

    for (size_t i = 0; ok && i < len; i++)
        ok = given[i] > 0x20 && given[i] < 0x7f;
    if (ok) {
        memcpy(req->request_id, given, len + 1);
        return;
    }
    fresh_request_id(s, req->request_id, sizeof(req->request_id));
}

/* Copies what the handlers read out of h2o's request: nothing borrows from h2o afterwards, as a
 * worker reads it while the loop goes on. */
static void copy_request(struct exchange *x, h2o_req_t *h)
{
    struct req *req = &x->req;
    const char *target = h->input.path.base;
    size_t target_len = h->input.path.len;
    const char *q = memchr(target, '?', target_len);
    size_t path_len = q ? (size_t)(q - target) : target_len;

    req->method = arena_memdup(&req->arena, h->input.method.base, h->input.method.len);
    req->path = arena_memdup(&req->arena, target, path_len);
    if (q)
        req->query = arena_memdup(&req->arena, q + 1, target_len - path_len - 1);
    struct req_field *f = arena_alloc(&req->arena, (h->headers.size + 1) * sizeof(*f));
    for (size_t i = 0; i < h->headers.size; i++) {
        const h2o_header_t *hd = &h->headers.entries[i];
        f[i].name = arena_memdup(&req->arena, hd->name->base, hd->name->len);
        f[i].value = arena_memdup(&req->arena, hd->value.base, hd->value.len);
    }
    req->fields = f;
    req->nfields = (int)h->headers.size;
    if (h->entity.base) {
        req->body = arena_memdup(&req->arena, h->entity.base, h->entity.len);
        req->body_len = h->entity.len;
    }
}

static bool is_json_type(const char *ct)
{
    static const char json[] = "application/json";
    size_t n = sizeof(json) - 1;

    if (!ct || strncasecmp(ct, json, n))
        return false;
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

static int authorise(struct server *s, struct req *req, const struct route *rt, struct err *e)
{
    if (rt->auth == ROUTE_PUBLIC)
        return 0;
    if (auth_verify(s->opt.jwt_secret, req_header(req, "Authorization"), clock_now_us() / 1000000,
                    &req->auth, e))
        return -1;
    if (rt->auth == ROUTE_ADMIN && !req->auth.is_admin)
        return err_set(e, ERR_FORBIDDEN, "this endpoint needs an admin token");
    if (rt->auth == ROUTE_SELF && !req->auth.is_admin && req->auth.user_id != req->match.params[0])
        return err_set(e, ERR_FORBIDDEN, "token is not for user %lld",
                       (long long)req->match.params[0]);
    return 0;
}

/* Everything decided on the loop before a handler runs: -1 when the request is answered with
 * the problem in e. */
static int admit(struct server *s, struct exchange *x, struct err *e)
{
    struct req *req = &x->req;

    if (framing_reject(x->h, e)) {
        x->h->http1_is_persistent = 0;
        return -1;
    }
    enum router_result r =
        router_match(s->opt.routes, s->opt.route_count, req->method, req->path, &req->match);
    if (r == ROUTER_METHOD_NOT_ALLOWED)
        return err_set(e, ERR_METHOD_NOT_ALLOWED, "%s is not allowed on %s (allowed: %s)",
                       req->method, req->path, req->match.allow);
    if (r != ROUTER_FOUND)
        return err_set(e, ERR_NOT_FOUND, "no route for %s %s", req->method, req->path);
    req->route = req->match.index;
    if (req->body_len > SERVER_MAX_BODY)
        return err_set(e, ERR_PAYLOAD_TOO_LARGE, "request body exceeds %zu bytes", SERVER_MAX_BODY);
    if (req_query_count(req) > REQ_MAX_QUERY_ARGS)
        return err_set(e, ERR_INVALID_INPUT, "more than %d query arguments", REQ_MAX_QUERY_ARGS);
    const struct route *rt = &s->opt.routes[req->route];
    if (authorise(s, req, rt, e))
        return -1;
    req->ok_status = rt->status;
    if (req->body_len && !is_json_type(req_header(req, "Content-Type")))
        return err_set(e, ERR_UNSUPPORTED_MEDIA_TYPE, "request body must be application/json");
    return 0;
}

static void access_log(struct server *s, struct req *req, int status, int64_t dur_us)
{
    char ts[CLOCK_RFC3339_LEN];
    char line[1400];
    char rid[4 * sizeof(req->request_id)];
    char method[4 * 16 + 1];
    char path[4 * 256 + 1];

    if (!s->opt.access_log)
        return;
    clock_format_rfc3339(clock_now_us(), ts, sizeof(ts));
    /* Every field that came from the client is escaped: a CR/LF must not forge a log line. */
    log_escape(rid, sizeof(rid), req->request_id, strlen(req->request_id));
    log_escape(method, sizeof(method), req->method, strnlen(req->method, 16));
    log_escape(path, sizeof(path), req->path, strnlen(req->path, 256));
    int n =
        snprintf(line, sizeof(line), "%s access rid=%s %s %s route=\"%s\" status=%d us=%lld", ts,
                 rid, method, path, req->route >= 0 ? s->opt.routes[req->route].pattern : "-",
                 status, (long long)dur_us);
    if (n > 0)
        log_line(line, n < (int)sizeof(line) ? n : (int)sizeof(line) - 1);
}

static void add_header(h2o_req_t *h, const char *name, const char *value)
{
    size_t name_len = strlen(name);
    size_t value_len = strlen(value);

    /* h2o sends them after this call returns: the copies live in the request's pool. The name
     * goes out spelt as given (not as one of h2o's lower-case tokens). */
    h2o_add_header_by_str(&h->pool, &h->res.headers, h2o_strdup(&h->pool, name, name_len).base,
                          name_len, 0, NULL, h2o_strdup(&h->pool, value, value_len).base,
                          value_len);
}

/* Sends x's answer on its loop, counts and logs it, and frees x. */
static void answer(struct exchange *x)
{
    struct server *s = x->loop->s;
    struct req *req = &x->req;
    struct resp *resp = &x->resp;
    h2o_req_t *h = x->h;

    /* Before h2o is given the answer: it may go on to a pipelined request of the connection. */
    x->conn->busy = false;
    h->res.status = resp->status;
    h->res.reason = reason(resp->status);
    add_header(h, "Content-Type", resp->content_type ? resp->content_type : "text/plain");
    add_header(h, "X-Request-Id", req->request_id);
    for (int i = 0; i < resp->nheaders; i++)
        add_header(h, resp->headers[i].name, resp->headers[i].value);
    h->res.content_length = resp->body_len; /* a Content-Length, not chunks */
    h2o_send_inline(h, resp->body ? resp->body : "", resp->body_len);

    int64_t dur = clock_monotonic_us() - req->start_us;
    metrics_observe_request(req->route, resp->status, dur, &x->trips);
    access_log(s, req, resp->status, dur);
    arena_release(&req->arena);
    free(x);
    atomic_fetch_sub(&s->inflight, 1);
    maybe_quiet(s);
}

static void render_problem(struct exchange *x)
{
    struct req *req = &x->req;

    if (err_status(x->e.code) >= 500) {
        char method[4 * 16 + 1];
        char path[4 * 256 + 1];
        log_escape(method, sizeof(method), req->method, strnlen(req->method, 16));
        log_escape(path, sizeof(path), req->path, strnlen(req->path, 256));
        log_error("request %s %s %s failed: %s: %s", req->request_id, method, path,
                  err_name(x->e.code), x->e.detail);
    }
    resp_problem(&x->resp, &req->arena, &x->e, req->request_id, req->match.allow);
}

/*
 * On a worker, after a request's answer went back: a Redis connection for loop l (a connect
 * blocks, so it is never made on a loop, nor before the answer). Not the request's round trips
 * either (core/round_trips.h): a connection's set-up is counted apart.
 */
static void connect_loop_redis(struct loop *l)
{
    const struct server_options *opt = &l->s->opt;
    struct redis_handover *m = xcalloc(1, sizeof(*m));

    m->loop = l;
    m->fd = opt->redis_connect(opt->app, &m->generation);
    round_trips_take(NULL);
    h2o_multithread_send_message(&l->handover, &m->msg);
}

/* On the loop: the connections workers made for it (or their failures). */
static void on_handover(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        struct redis_handover *m =
            H2O_STRUCT_FROM_MEMBER(struct redis_handover, msg.link, messages->next);
        /* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): m was unlinked before it was freed */
        struct loop *l = m->loop;
        h2o_linklist_unlink(&m->msg.link);
        l->redis_connecting = false;
        l->redis_tried_us = clock_monotonic_us();
        if (m->fd >= 0 && atomic_load(&l->stage) == LOOP_SERVING)
            loop_redis_attach(l->redis, m->fd, m->generation);
        else if (m->fd >= 0)
            close(m->fd);
        free(m);
        atomic_fetch_sub(&l->s->inflight, 1); /* taken when the connect was asked for */
        maybe_quiet(l->s);
    }
}

/* On a worker: the handler, which may block; then back to the loop. */
static void run_handler(struct work_item *item)
{
    struct exchange *x = (struct exchange *)((char *)item - offsetof(struct exchange, work));
    const struct route *rt = &x->loop->s->opt.routes[x->req.route];

    /* This thread serves the request from here to its answer: what it sends to MariaDB and
     * Redis meanwhile is the request's (core/round_trips.h). */
    round_trips_take(NULL);
    if (rt->handler(&x->req, &x->resp, &x->e))
        render_problem(x);
    round_trips_take_more(&x->trips); /* after what the loop sent for it, if anything */
    /* x is the loop's once sent: what the connect needs is taken first. */
    struct loop *l = x->loop;
    bool connect = x->connect_redis;
    h2o_multithread_send_message(&l->answers, &x->done);
    if (connect)
        connect_loop_redis(l);
}

static void on_answers(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        struct exchange *x = H2O_STRUCT_FROM_MEMBER(struct exchange, done.link, messages->next);
        h2o_linklist_unlink(&x->done.link);
        answer(x);
    }
}

/* Sends x to the workers, or answers 503 when as many requests as they may hold wait. */
static void hand_to_worker(struct exchange *x)
{
    struct server *s = x->loop->s;

    if (!work_pool_submit(s->workers, &x->work))
        return;
    if (x->connect_redis) { /* no worker will connect the loop for this one */
        x->loop->redis_connecting = false;
        atomic_fetch_sub(&s->inflight, 1);
    }
    err_set(&x->e, ERR_UNAVAILABLE, "every worker is busy and %zu requests wait",
            work_pool_waiting(s->workers));
    render_problem(x);
    answer(x);
}

/* The loop's Redis answered (or gave up on) x's command: what comes of it is the route's say. */
static void on_loop_read(void *cookie, const struct redis_value *reply)
{
    struct exchange *x = cookie;
    struct loop *l = x->loop;
    const struct route *rt = &l->s->opt.routes[x->req.route];
    struct loop_command next;

    x->trips.n[ROUND_TRIP_REDIS]++;
    switch (rt->loop_read->answer(&x->req, reply, &x->resp, &next, &x->e)) {
    case LOOP_ANSWERED:
        metrics_inc(METRIC_LOOP_READS_ANSWERED);
        answer(x);
        return;
    case LOOP_REFUSED:
        metrics_inc(METRIC_LOOP_READS_ANSWERED);
        render_problem(x);
        answer(x);
        return;
    case LOOP_AGAIN:
        if (loop_redis_ready(l->redis)) {
            loop_redis_send(l->redis, next.argc, next.argv, next.lens, x, clock_monotonic_us());
            return;
        }
        break;
    case LOOP_TO_WORKER:
        break;
    }
    metrics_inc(METRIC_LOOP_READS_HANDED);
    hand_to_worker(x); /* a miss, a negative entry, no Redis: the handler knows what to do */
}

/*
 * Asks the loop's Redis for x when its route allows: true when x is now waiting on it. Without
 * a connection x goes to a worker, which also makes one for the loop (one attempt at a time,
 * one a second at most).
 */
static bool read_on_loop(struct loop *l, struct exchange *x)
{
    struct server *s = l->s;
    const struct route *rt = &s->opt.routes[x->req.route];
    struct loop_command cmd;

    if (!rt->loop_read || !l->redis)
        return false;
    if (loop_redis_ready(l->redis) &&
        loop_redis_generation(l->redis) != s->opt.redis_generation(s->opt.app))
        loop_redis_drop(l->redis, "the Redis master moved");
    int64_t now = clock_monotonic_us();
    if (!loop_redis_ready(l->redis)) {
        if (!l->redis_connecting && now - l->redis_tried_us >= LOOP_REDIS_RETRY_US) {
            /* Counted in flight until the loop has it: a stop waits for it as for a request. */
            atomic_fetch_add(&s->inflight, 1);
            l->redis_connecting = true;
            x->connect_redis = true;
        }
        return false;
    }
    int stall_ms;
    /* A test's fault goes to a worker, as a lost read does: a loop never sleeps. */
    if (rt->loop_read->command(&x->req, &cmd) ||
        redis_fault_take("loop", &stall_ms) != REDIS_FAULT_NONE)
        return false;
    loop_redis_send(l->redis, cmd.argc, cmd.argv, cmd.lens, x, now);
    return true;
}

static int on_request(h2o_handler_t *self, h2o_req_t *h)
{
    struct loop *l = this_loop;
    struct server *s = l->s;
    h2o_socket_t *sock = h->conn->callbacks->get_socket(h->conn);
    struct exchange *x = xcalloc(1, sizeof(*x));

    (void)self;
    arena_init(&x->req.arena);
    x->req.start_us = clock_monotonic_us();
    x->req.app = s->opt.app;
    x->req.route = -1;
    x->h = h;
    x->loop = l;
    x->conn = sock->on_close.data;
    x->conn->busy = true;
    x->conn->arriving_since_us = 0;
    x->work.run = run_handler;
    err_clear(&x->e);
    atomic_fetch_add(&s->inflight, 1);
    copy_request(x, h);
    set_request_id(s, &x->req);

    if (admit(s, x, &x->e)) {
        render_problem(x);
        answer(x);
    } else if (!read_on_loop(l, x)) {
        hand_to_worker(x);
    }
    return 0;
}

/* ---- connections: accept, caps, late requests, close ---- */

static void on_conn_closed(void *data)
{
    struct conn *c = data;
    struct server *s = c->loop->s;

    h2o_linklist_unlink(&c->link);
    addr_count_give(s->per_addr, c->addr);
    atomic_fetch_sub(&s->conns, 1);
    free(c);
    maybe_quiet(s);
}

/* Reads and drops what the client sent, so that closing sends a FIN rather than a reset that
 * could destroy the answer before the client reads it. */
static void drain(int fd)
{
    char sink[4096];

    for (int i = 0; i < 16 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
        ;
}

/* Answers a connection that is not taken: over the instance's or its address's cap. */
static void refuse(struct server *s, int fd)
{
    ssize_t n = send(fd, s->refusal, s->refusal_len, MSG_NOSIGNAL | MSG_DONTWAIT);

    (void)n; /* a client that cannot take 300 bytes now gets the close alone */
    drain(fd);
    close(fd);
}

/*
 * Ends a connection from its loop without pulling h2o's state from under it: the 408 goes out
 * directly (the connection is between requests, nothing else is being written), and
 * shutdown() makes h2o read an end of stream and close the connection its own way.
 */
static void end_connection(struct server *s, struct conn *c, bool late)
{
    if (c->closing)
        return;
    c->closing = true;
    if (late) {
        ssize_t n = send(c->fd, s->late, s->late_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)n;
    }
    drain(c->fd);
    shutdown(c->fd, SHUT_RDWR);
}

static void take(struct loop *l, int fd, const struct sockaddr_in *peer)
{
    struct server *s = l->s;
    uint32_t addr = ntohl(peer->sin_addr.s_addr);
    int on = 1;

    if (atomic_fetch_add(&s->conns, 1) >= s->max_connections) {
        atomic_fetch_sub(&s->conns, 1);
        refuse(s, fd);
        return;
    }
    if (addr_count_take(s->per_addr, addr, s->opt.max_conns_per_ip)) {
        atomic_fetch_sub(&s->conns, 1);
        refuse(s, fd);
        return;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK); /* the 408 and the refusal are sent without blocking */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    struct conn *c = xcalloc(1, sizeof(*c));
    c->loop = l;
    c->fd = fd;
    c->addr = addr;
    c->sock = h2o_evloop_socket_create(l->ctx.loop, fd, 0);
    c->sock->on_close.cb = on_conn_closed;
    c->sock->on_close.data = c;
    h2o_linklist_insert(&l->conns, &c->link);
    h2o_accept(&l->accept, c->sock);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    struct loop *l = this_loop;

    (void)listener;
    if (err)
        return;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_in peer = {0};
        socklen_t len = sizeof(peer);
        int fd = accept(l->listen_fd, (struct sockaddr *)&peer, &len);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                log_error("accept: %s", strerror(errno));
            return; /* EAGAIN: another loop took it, or nothing is left */
        }
        take(l, fd, &peer);
    }
}

/* Every TICK_MS: a request whose first bytes came the head timeout ago and which is still not
 * whole gets 408 and its connection closes. Idle keep-alive is h2o's own timeout. */
static void on_tick(h2o_timeout_entry_t *entry)
{
    struct loop *l = H2O_STRUCT_FROM_MEMBER(struct loop, tick, entry);
    int64_t now = clock_monotonic_us();

    for (h2o_linklist_t *n = l->conns.next; n != &l->conns; n = n->next) {
        struct conn *c = H2O_STRUCT_FROM_MEMBER(struct conn, link, n);
        if (c->busy || c->sock->input->size == 0) {
            c->arriving_since_us = 0;
            continue;
        }
        if (!c->arriving_since_us)
            c->arriving_since_us = now;
        else if (now - c->arriving_since_us >= l->s->head_timeout_us)
            end_connection(l->s, c, true);
    }
    if (l->redis)
        loop_redis_expire(l->redis, now, LOOP_READ_DEADLINE_US);
    h2o_timeout_link(l->ctx.loop, &l->tick_timeout, &l->tick);
}

static void on_control(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    struct loop *l = H2O_STRUCT_FROM_MEMBER(struct loop, control, receiver);

    /* NOLINTNEXTLINE(clang-analyzer-core.NullDereference): an anchor's list is circular */
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m =
            H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        if (m == &l->quit_msg) {
            atomic_store(&l->stage, LOOP_QUIT);
            continue;
        }
        /* Drain: accept no more, answer what is in flight with Connection: close, and close
         * the connections that are between requests. */
        atomic_store(&l->stage, LOOP_DRAINING);
        if (l->listener) {
            h2o_socket_read_stop(l->listener);
            h2o_socket_close(l->listener);
            l->listener = NULL;
        }
        /* What h2o_context_request_shutdown() does for HTTP/1 (answers go out with
         * Connection: close); that call would also arm HTTP/2's one-second graceful shutdown
         * timer, which outlives the loop. */
        l->ctx.shutdown_requested = 1;
        for (h2o_linklist_t *n = l->conns.next; n != &l->conns; n = n->next) {
            struct conn *c = H2O_STRUCT_FROM_MEMBER(struct conn, link, n);
            if (!c->busy)
                end_connection(l->s, c, false);
        }
    }
}

/*
 * Sets up a loop's h2o state on the loop's own thread. h2o keeps its allocators' caches in
 * thread-local storage and a socket remembers the cache of the thread that created it: a
 * socket made on one thread and read on another would share that thread's cache unlocked (it
 * once crashed an instance in h2o_mem_alloc_recycle).
 */
static void start_loop(struct server *s, struct loop *l)
{
    h2o_linklist_init_anchor(&l->conns);
    h2o_context_init(&l->ctx, h2o_evloop_create(), &s->h2o);
    l->accept.ctx = &l->ctx;
    l->accept.hosts = s->h2o.hosts;
    h2o_multithread_register_receiver(l->ctx.queue, &l->answers, on_answers);
    h2o_multithread_register_receiver(l->ctx.queue, &l->control, on_control);
    h2o_multithread_register_receiver(l->ctx.queue, &l->handover, on_handover);
    h2o_timeout_init(l->ctx.loop, &l->tick_timeout, TICK_MS);
    l->tick.cb = on_tick;
    h2o_timeout_link(l->ctx.loop, &l->tick_timeout, &l->tick);
    l->listener = h2o_evloop_socket_create(l->ctx.loop, l->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(l->listener, on_accept);
    if (s->opt.redis_connect)
        l->redis = loop_redis_new(l->ctx.loop, on_loop_read);
    l->redis_tried_us = clock_monotonic_us() - LOOP_REDIS_RETRY_US;
}

static void *run_loop(void *arg)
{
    struct loop *l = arg;
    struct server *s = l->s;

    this_loop = l;
    start_loop(s, l);
    sem_post(&s->loops_ready);
    while (atomic_load(&l->stage) != LOOP_QUIT)
        h2o_evloop_run(l->ctx.loop, INT32_MAX);
    if (!h2o_linklist_is_empty(&l->conns)) {
        /* The grace ran out with connections still busy: the process is about to exit, and
         * h2o's state for them cannot be disposed of while they are open. */
        log_error("%d connections still open at stop", atomic_load(&s->conns));
        return NULL;
    }
    h2o_timeout_unlink(&l->tick);
    h2o_timeout_dispose(l->ctx.loop, &l->tick_timeout);
    loop_redis_free(l->redis);
    /* What the last closes deferred (h2o frees a closed socket on the next turn of the loop). */
    for (int i = 0; i < 16; i++)
        h2o_evloop_run(l->ctx.loop, 0);
    h2o_multithread_unregister_receiver(l->ctx.queue, &l->answers);
    h2o_multithread_unregister_receiver(l->ctx.queue, &l->control);
    h2o_multithread_unregister_receiver(l->ctx.queue, &l->handover);
    h2o_evloop_t *loop = l->ctx.loop;
    h2o_context_dispose(&l->ctx);
    h2o_evloop_destroy(loop);
    return NULL;
}

static int open_listener(struct server *s, struct err *e)
{
    struct sockaddr_in addr = {0};
    const char *host = strcmp(s->opt.host, "localhost") ? s->opt.host : "127.0.0.1";
    int on = 1;

    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)s->opt.port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return err_set(e, ERR_INVALID_INPUT, "listen address '%s' is not an IPv4 address",
                       s->opt.host);
    s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0)
        return err_set(e, ERR_UNAVAILABLE, "socket: %s", strerror(errno));
    setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (bind(s->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) || listen(s->listen_fd, 4096)) {
        int saved = errno;
        close(s->listen_fd);
        s->listen_fd = -1;
        return err_set(e, ERR_UNAVAILABLE, "cannot listen on %s:%d: %s", s->opt.host, s->opt.port,
                       strerror(saved));
    }
    return 0;
}

/* The connection cap: as asked, but within the descriptors this process may open (raised to
 * its hard limit first). */
static int size_connection_cap(int wanted)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl))
        return wanted;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)wanted + FDS_KEPT > rl.rlim_cur) {
        int fit = rl.rlim_cur > 2 * (rlim_t)FDS_KEPT ? (int)(rl.rlim_cur - FDS_KEPT) : FDS_KEPT;
        log_info("%d connections asked, %d fit in the descriptor limit of %llu", wanted, fit,
                 (unsigned long long)rl.rlim_cur);
        return fit;
    }
    return wanted;
}

static size_t canned(char *out, size_t size, int status, const char *code, const char *detail,
                     const char *extra)
{
    char body[256];
    int blen = snprintf(body, sizeof(body),
                        "{\"type\":\"about:blank\",\"title\":\"%s\",\"status\":%d,\"code\":\"%s\","
                        "\"detail\":\"%s\"}",
                        reason(status), status, code, detail);
    int n = snprintf(out, size,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/problem+json\r\n%s"
                     "Connection: close\r\nContent-Length: %d\r\n\r\n%s",
                     status, reason(status), extra, blen, body);
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

/* h2o's configuration: one host, every path to on_request, h2o's own errors as problems. */
static void configure_h2o(struct server *s)
{
    const struct server_options *opt = &s->opt;

    h2o_config_init(&s->h2o);
    s->h2o.server_name = h2o_iovec_init(H2O_STRLIT("shopd"));
    s->h2o.http1.req_timeout =
        (uint64_t)(opt->idle_timeout_s > 0 ? opt->idle_timeout_s : IDLE_TIMEOUT_S) * 1000;
    s->h2o.http1.upgrade_to_http2 = 0;
    /* h2o refuses a chunked body as it grows past this and a Content-Length beyond it; one of
     * exactly SERVER_MAX_BODY + 1 bytes is read whole and answered 413 by admit(). */
    s->h2o.max_request_entity_size = SERVER_MAX_BODY + 1;
    h2o_hostconf_t *host =
        h2o_config_register_host(&s->h2o, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    engine_errors_register(host, fresh_request_id, s);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(path, sizeof(*handler));
    handler->on_req = on_request;
}

/* A descriptor of the listening socket for each loop (a loop closes its own when it drains). */
static int share_listener(struct server *s, struct err *e)
{
    s->nloops = s->opt.loops > 0 ? s->opt.loops : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (s->nloops < 1)
        s->nloops = 1;
    s->loops = xcalloc((size_t)s->nloops, sizeof(*s->loops));
    for (int i = 0; i < s->nloops; i++) {
        s->loops[i].s = s;
        s->loops[i].listen_fd = fcntl(s->listen_fd, F_DUPFD_CLOEXEC, 0);
        if (s->loops[i].listen_fd >= 0)
            continue;
        err_set(e, ERR_UNAVAILABLE, "cannot share the listening socket: %s", strerror(errno));
        while (i-- > 0)
            close(s->loops[i].listen_fd);
        free(s->loops);
        return -1;
    }
    return 0;
}

/* Returns once every loop takes messages: server_stop() may be called right after. */
static void start_loops(struct server *s)
{
    sem_init(&s->loops_ready, 0, 0);
    for (int i = 0; i < s->nloops; i++)
        if (pthread_create(&s->loops[i].thread, NULL, run_loop, &s->loops[i]))
            BUG("cannot start an event loop thread");
    for (int i = 0; i < s->nloops; i++)
        while (sem_wait(&s->loops_ready) && errno == EINTR)
            ;
}

struct server *server_start(const struct server_options *opt, struct err *e)
{
    struct server *s = xcalloc(1, sizeof(*s));
    struct timespec ts;

    s->opt = *opt;
    if (open_listener(s, e)) {
        free(s);
        return NULL;
    }
    if (share_listener(s, e)) {
        close(s->listen_fd);
        free(s);
        return NULL;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    s->instance_tag = (unsigned)((ts.tv_nsec ^ (getpid() << 8)) & 0xffffff);
    s->max_connections = size_connection_cap(opt->max_connections);
    s->refusal_len = canned(s->refusal, sizeof(s->refusal), 503, "UNAVAILABLE",
                            "this instance holds all the connections it may", "Retry-After: 1\r\n");
    int head_s = opt->head_timeout_s > 0 ? opt->head_timeout_s : HEAD_TIMEOUT_S;
    char late[128];
    snprintf(late, sizeof(late), "the request did not arrive within %d s of its first byte",
             head_s);
    s->head_timeout_us = head_s * 1000000LL;
    s->late_len = canned(s->late, sizeof(s->late), 408, "INVALID_INPUT", late, "");
    s->per_addr = addr_count_new();
    clock_cond_init(&s->quiet);
    pthread_mutex_init(&s->quiet_lock, NULL);

    configure_h2o(s);

    s->workers = work_pool_new(opt->workers, opt->queue_max);
    start_loops(s);
    return s;
}

int server_port(const struct server *s)
{
    struct sockaddr_in addr = {0};
    socklen_t len = sizeof(addr);

    if (getsockname(s->listen_fd, (struct sockaddr *)&addr, &len))
        return -1;
    return ntohs(addr.sin_port);
}

void server_stop(struct server *s, int grace_ms)
{
    struct timespec until;

    /* Stop accepting first, then let the requests already running finish and be answered. */
    for (int i = 0; i < s->nloops; i++)
        h2o_multithread_send_message(&s->loops[i].control, &s->loops[i].drain_msg);
    /* The socket stops listening once the loops have closed their descriptors of it too: a
     * client is refused, not left in a backlog that no one accepts from. */
    close(s->listen_fd);
    clock_monotonic_deadline((int64_t)grace_ms * 1000, &until);
    pthread_mutex_lock(&s->quiet_lock);
    while ((atomic_load(&s->inflight) > 0 || atomic_load(&s->conns) > 0) &&
           pthread_cond_timedwait(&s->quiet, &s->quiet_lock, &until) == 0)
        ;
    pthread_mutex_unlock(&s->quiet_lock);
    for (int i = 0; i < s->nloops; i++)
        h2o_multithread_send_message(&s->loops[i].control, &s->loops[i].quit_msg);
    bool clean = atomic_load(&s->conns) == 0;
    for (int i = 0; i < s->nloops; i++)
        pthread_join(s->loops[i].thread, NULL);
    if (!clean)
        return; /* the grace ran out: what is left is the process's to drop at exit */
    work_pool_free(s->workers);
    sem_destroy(&s->loops_ready);
    pthread_cond_destroy(&s->quiet);
    pthread_mutex_destroy(&s->quiet_lock);
    h2o_config_dispose(&s->h2o);
    addr_count_free(s->per_addr);
    free(s->loops);
    free(s);
}
