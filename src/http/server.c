#include "http/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/round_trips.h"
#include "core/xalloc.h"
#include "http/req.h"
#include "http/resp.h"
#include "http/router.h"

#include "core/banned.h"

/* A Content-Length beyond this is refused before the body is read (the connection closes);
 * smaller oversized bodies are read and dropped so that the client sees a clean 413. */
#define DISCARD_LIMIT (4ULL * 1024 * 1024)

struct server {
    struct MHD_Daemon *daemon;
    struct server_options opt;
    atomic_int inflight;
    atomic_uint_least64_t next_request;
    unsigned instance_tag;
};

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
    unsigned long long n = atomic_fetch_add(&s->next_request, 1);
    snprintf(req->request_id, sizeof(req->request_id), "%06x-%llu", s->instance_tag, n);
}

/* A request with its path as it came in target (the query cut off, nothing decoded). */
static struct req *new_request(struct server *s, struct MHD_Connection *conn, const char *target)
{
    struct req *req = xcalloc(1, sizeof(*req));
    const char *query = strchr(target, '?');
    size_t len = query ? (size_t)(query - target) : strlen(target);

    arena_init(&req->arena);
    req->start_us = clock_monotonic_us();
    req->conn = conn;
    req->app = s->opt.app;
    req->path = arena_memdup(&req->arena, target, len);
    req->route = -1;
    atomic_fetch_add(&s->inflight, 1);
    return req;
}

/*
 * MHD's URI log callback sees the request target as it came on the wire, before MHD decodes
 * it: the access handler's url is percent-decoded ("/api/products/%31" arrives as
 * "/api/products/1", "7%00x" as "7"), so routing on it would give one resource many
 * spellings. The request is created here, and its return value becomes *req_cls; MHD then
 * calls on_completed for it even if the access handler never runs.
 */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    return new_request(cls, conn, uri ? uri : "");
}

/* Once the headers are in: request id and route (on the raw path). */
static void begin_request(struct server *s, struct req *req, const char *method)
{
    req->begun = true;
    /* This connection's thread serves the request from here to its answer: what it sends to
     * MariaDB and Redis meanwhile is the request's (core/round_trips.h). */
    round_trips_take(NULL);
    req->method = arena_strdup(&req->arena, method);
    set_request_id(s, req);

    enum router_result r =
        router_match(s->opt.routes, s->opt.route_count, method, req->path, &req->match);
    req->route = r == ROUTER_FOUND ? req->match.index : -1;
    if (r == ROUTER_METHOD_NOT_ALLOWED)
        req->early_status = 405;
    else if (r == ROUTER_NOT_FOUND)
        req->early_status = 404;
}

static void take_body(struct req *req, const char *data, size_t size)
{
    if (req->early_status == 413 || req->body_len + size > SERVER_MAX_BODY) {
        req->early_status = 413;
        req->body_len += size; /* counted, not kept */
        return;
    }
    if (!req->body)
        req->body = arena_alloc(&req->arena, SERVER_MAX_BODY + 1);
    memcpy(req->body + req->body_len, data, size);
    req->body_len += size;
    req->body[req->body_len] = '\0';
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

static int dispatch(struct server *s, struct req *req, struct resp *resp, struct err *e)
{
    switch (req->early_status) {
    case 404:
        return err_set(e, ERR_NOT_FOUND, "no route for %s %s", req->method, req->path);
    case 405:
        return err_set(e, ERR_METHOD_NOT_ALLOWED, "%s is not allowed on %s (allowed: %s)",
                       req->method, req->path, req->match.allow);
    case 413:
        return err_set(e, ERR_PAYLOAD_TOO_LARGE, "request body exceeds %zu bytes", SERVER_MAX_BODY);
    default:
        break;
    }
    const struct route *rt = &s->opt.routes[req->route];
    if (authorise(s, req, rt, e))
        return -1;
    req->ok_status = rt->status;
    if (req->body_len && !is_json_type(req_header(req, "Content-Type")))
        return err_set(e, ERR_UNSUPPORTED_MEDIA_TYPE, "request body must be application/json");
    return rt->handler(req, resp, e);
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

static enum MHD_Result send_response(struct server *s, struct req *req, struct resp *resp)
{
    /* MUST_COPY: MHD copies the bytes and never writes through the pointer, which its 0.9.75
     * API takes as void * all the same (there is no const variant to call). */
    union {
        const char *text;
        void *buffer;
    } body = {.text = resp->body ? resp->body : ""};
    struct MHD_Response *r =
        MHD_create_response_from_buffer(resp->body_len, body.buffer, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            resp->content_type ? resp->content_type : "text/plain");
    MHD_add_response_header(r, "X-Request-Id", req->request_id);
    for (int i = 0; i < resp->nheaders; i++)
        MHD_add_response_header(r, resp->headers[i].name, resp->headers[i].value);
    enum MHD_Result rc = MHD_queue_response(req->conn, (unsigned)resp->status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result respond(struct server *s, struct req *req)
{
    struct resp resp = {0};
    struct err e;

    err_clear(&e);
    if (dispatch(s, req, &resp, &e)) {
        if (err_status(e.code) >= 500) {
            char method[4 * 16 + 1];
            char path[4 * 256 + 1];
            log_escape(method, sizeof(method), req->method, strnlen(req->method, 16));
            log_escape(path, sizeof(path), req->path, strnlen(req->path, 256));
            log_error("request %s %s %s failed: %s: %s", req->request_id, method, path,
                      err_name(e.code), e.detail);
        }
        resp_problem(&resp, &req->arena, &e, req->request_id, req->match.allow);
    }
    struct round_trips trips;
    round_trips_take(&trips);
    enum MHD_Result rc = send_response(s, req, &resp);
    int64_t dur = clock_monotonic_us() - req->start_us;
    metrics_observe_request(req->route, resp.status, dur, &trips);
    access_log(s, req, resp.status, dur);
    return rc;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **req_cls)
{
    struct server *s = cls;
    struct req *req = *req_cls;

    if (!req) /* no URI callback ran (MHD always runs it; this is a fallback) */
        *req_cls = req = new_request(s, conn, url);
    if (!req->begun) {
        begin_request(s, req, method);
        const char *cl = req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > DISCARD_LIMIT) {
            req->early_status = 413;
            return respond(s, req);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        take_body(req, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    return respond(s, req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct server *s = cls;
    struct req *req = *req_cls;

    if (!req)
        return;
    arena_release(&req->arena);
    free(req);
    *req_cls = NULL;
    atomic_fetch_sub(&s->inflight, 1);
}

struct server *server_start(const struct server_options *opt, struct err *e)
{
    struct server *s = xcalloc(1, sizeof(*s));
    struct sockaddr_in addr = {0};
    const char *host = strcmp(opt->host, "localhost") ? opt->host : "127.0.0.1";
    struct timespec ts;

    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)opt->port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        free(s);
        err_set(e, ERR_INVALID_INPUT, "listen address '%s' is not an IPv4 address", opt->host);
        return NULL;
    }
    s->opt = *opt;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->instance_tag = (unsigned)((ts.tv_nsec ^ (getpid() << 8)) & 0xffffff);
    s->daemon = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
            MHD_USE_ITC | MHD_USE_ERROR_LOG,
        0, NULL, NULL, on_access, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)opt->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        60u, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_END);
    if (!s->daemon) {
        free(s);
        err_set(e, ERR_UNAVAILABLE, "cannot listen on %s:%d", opt->host, opt->port);
        return NULL;
    }
    return s;
}

void server_stop(struct server *s, int grace_ms)
{
    struct timespec tick = {0, 10L * 1000 * 1000};

    /* Stop accepting first, then let the requests already running finish and be answered. */
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    for (int waited = 0; atomic_load(&s->inflight) > 0 && waited < grace_ms; waited += 10)
        nanosleep(&tick, NULL);
    MHD_stop_daemon(s->daemon);
    free(s);
}
