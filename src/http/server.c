#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <h2o.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/array.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "http/addr_count.h"
#include "http/engine_errors.h"
#include "http/loop_redis.h"
#include "http/server_int.h"
#include "http/work_pool.h"

#include "core/banned.h"

_Thread_local struct loop *this_loop;

/* Called after conns or inflight went down: wakes server_stop() once nothing is left. */
void server_maybe_quiet(struct server *s)
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
const char *server_reason(int status)
{
    for (size_t i = 0; i < ARRAY_SIZE(reasons); i++)
        if (reasons[i].status == status)
            return reasons[i].text;
    return status < 400 ? "OK" : "Error";
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
                conns_end(l->s, c, false);
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
    h2o_multithread_register_receiver(l->ctx.queue, &l->answers, exchange_on_answers);
    h2o_multithread_register_receiver(l->ctx.queue, &l->control, on_control);
    h2o_multithread_register_receiver(l->ctx.queue, &l->handover, exchange_on_handover);
    h2o_timeout_init(l->ctx.loop, &l->tick_timeout, TICK_MS);
    l->tick.cb = conns_on_tick;
    h2o_timeout_link(l->ctx.loop, &l->tick_timeout, &l->tick);
    l->listener = h2o_evloop_socket_create(l->ctx.loop, l->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(l->listener, conns_on_accept);
    if (s->opt.redis_connect)
        l->redis = loop_redis_new(l->ctx.loop, exchange_on_loop_read);
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
                        server_reason(status), status, code, detail);
    int n = snprintf(out, size,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/problem+json\r\n%s"
                     "Connection: close\r\nContent-Length: %d\r\n\r\n%s",
                     status, server_reason(status), extra, blen, body);
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

/* h2o's configuration: one host, every path to exchange_on_request, h2o's own errors as problems.
 */
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
    engine_errors_register(host, exchange_fresh_request_id, s);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(path, sizeof(*handler));
    handler->on_req = exchange_on_request;
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
