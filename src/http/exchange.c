/*
 * One request from h2o to its answer (http/server_int.h): on its loop it is copied out of h2o,
 * admitted or refused (routing, auth, framing, media type), and either answered from the
 * loop's Redis (struct route_loop_read) or handed to a worker; the answer always goes out on
 * the loop, with the access log and the request's metrics.
 */
#include <h2o.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/round_trips.h"
#include "core/xalloc.h"
#include "http/framing.h"
#include "http/loop_redis.h"
#include "http/req.h"
#include "http/resp.h"
#include "http/router.h"
#include "http/server_int.h"
#include "http/work_pool.h"
#include "redis/redis_fault.h"

#include "core/banned.h"

/* This instance's tag and a counter: unique across instances in practice, and cheap. */
void exchange_fresh_request_id(void *ctx, char *buf, size_t size)
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
    exchange_fresh_request_id(s, req->request_id, sizeof(req->request_id));
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
    h->res.reason = server_reason(resp->status);
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
    server_maybe_quiet(s);
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
void exchange_on_handover(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
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
        server_maybe_quiet(l->s);
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

void exchange_on_answers(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
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

/* Whether a test's fault (redis/redis_fault.h) takes the loop's next command: the request then
 * goes to a worker, as after a lost reply, since a loop never sleeps. */
static bool loop_fault(void)
{
    int stall_ms;

    return redis_fault_take("loop", &stall_ms) != REDIS_FAULT_NONE;
}

/* The loop's Redis answered (or gave up on) x's command: what comes of it is the route's say. */
void exchange_on_loop_read(void *cookie, const struct redis_value *reply)
{
    struct exchange *x = cookie;
    struct loop *l = x->loop;
    const struct route *rt = &l->s->opt.routes[x->req.route];
    struct loop_command next;

    if (reply) /* no reply: dropped, maybe before it was even written */
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
        if (loop_redis_ready(l->redis) && !loop_fault()) {
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
    /* The fault first: command() counts the round trip it prepares. */
    if (loop_fault() || rt->loop_read->command(&x->req, &cmd))
        return false;
    loop_redis_send(l->redis, cmd.argc, cmd.argv, cmd.lens, x, now);
    return true;
}

int exchange_on_request(h2o_handler_t *self, h2o_req_t *h)
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
