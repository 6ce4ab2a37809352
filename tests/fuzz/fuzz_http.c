/*
 * The HTTP request path, through the real entry point: raw request bytes go over a socket pair
 * into libmicrohttpd, which parses them and calls the server's own access handler
 * (http/server.c on_access: request ids, routing over the real route table, the Content-Length
 * and 64 KiB body limits, token checks, the content-type check, the handlers of src/api/ with
 * their query, cursor and body decoding, problem rendering and metrics). MariaDB and Redis are
 * configured on a closed loopback port, so whatever needs them fails as it would in an outage.
 * An input may start with "#pad=N\n": N KiB of 'x' are then appended, so that body limits are
 * in reach without huge inputs. Beyond "no crash, no leak, no UB", against API.md: no answer is
 * a 500; a problem body is valid UTF-8 JSON whose status and code agree with the status line;
 * a 405 has Allow, a 401 WWW-Authenticate, a 503 Retry-After; a JSON answer is JSON; a request
 * that got past routing used the one canonical spelling of its path; a declared body over
 * 64 KiB is answered 413.
 *
 * Not covered: the thread-per-connection mode and the listening socket (the daemon here runs
 * with MHD_USE_NO_LISTEN_SOCKET in the fuzzer's thread), the access log (off, as its output
 * would drown the fuzzer's), and any path that needs a live database or Redis.
 */
#include <ctype.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "api/routes.h"
#include "core/config.h"
#include "core/json.h"
#include "core/log.h"
#include "core/metrics.h"
#include "fuzz_common.h"
#include "redis/redis_pool.h"
#include "repo/db.h"
#include "service/svc.h"

/* ---- the engine seam: everything that knows libmicrohttpd is in this section ---- */

#include <microhttpd.h>

/*
 * server_start() runs unchanged, with every option it gives the daemon, except that the
 * daemon gets no listening socket and no threads of its own: connections come from
 * engine_exchange() over a socket pair, and MHD_run() serves them in the fuzzer's thread.
 */
static struct MHD_Daemon *fuzz_start_daemon(unsigned flags, uint16_t port,
                                            MHD_AcceptPolicyCallback apc, void *apc_cls,
                                            MHD_AccessHandlerCallback dh, void *dh_cls, ...)
{
    const unsigned threads = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                             MHD_USE_POLL | MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    va_list ap;

    va_start(ap, dh_cls);
    struct MHD_Daemon *d = MHD_start_daemon_va((flags & ~threads) | MHD_USE_NO_LISTEN_SOCKET, port,
                                               apc, apc_cls, dh, dh_cls, ap);
    va_end(ap);
    return d;
}

#define MHD_start_daemon fuzz_start_daemon
#include "http/server.c" /* the real server, with its callbacks */
#undef MHD_start_daemon

static struct server *fuzz_server;

static void engine_start(const struct server_options *opt)
{
    struct err e;

    fuzz_server = server_start(opt, &e);
    FUZZ_CHECK(fuzz_server, "server_start: %s", e.detail);
}

static unsigned engine_connections(void)
{
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(fuzz_server->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return info ? info->num_connections : 0;
}

/* Whether out holds a whole final (non-1xx) response with its Content-Length body. */
static bool whole_answer(const char *out, size_t got)
{
    const char *p = out;

    for (;;) {
        const char *end = strstr(p, "\r\n\r\n");
        if (!end || strncmp(p, "HTTP/1.", 7) || got < 12)
            return false;
        if (p[9] != '1') {
            const char *cl = strstr(p, "\r\nContent-Length:"); /* as MHD spells it */
            if (!cl || cl > end)
                return false;
            unsigned long long n = strtoull(cl + 17, NULL, 10);
            return (size_t)(out + got - (end + 4)) >= n;
        }
        p = end + 4;
    }
}

/* Sends req on a fresh connection and collects what comes back (at most cap - 1 bytes, NUL
 * terminated) until the server stops producing; returns its length. */
static size_t engine_exchange(const char *req, size_t len, char *out, size_t cap)
{
    struct sockaddr_in peer = {0};
    int sv[2];
    size_t sent = 0, got = 0;
    int idle = 0;
    bool eof = false;

    out[0] = '\0';
    peer.sin_family = AF_INET;
    peer.sin_port = htons(40000);
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    FUZZ_CHECK(MHD_add_connection(fuzz_server->daemon, sv[1], (struct sockaddr *)&peer,
                                  sizeof(peer)) == MHD_YES,
               "MHD_add_connection");

    /* Until the server closes, or has nothing more to say for two rounds in a row. */
    for (int round = 0; round < 10000 && idle < 2 && !eof; round++) {
        if (sent == len && whole_answer(out, got))
            break; /* the first answer is all that is checked */
        bool progress = false;
        if (sent < len) {
            ssize_t n = send(sv[0], req + sent, len - sent, MSG_NOSIGNAL);
            if (n > 0) {
                sent += (size_t)n;
                progress = true;
            }
        }
        MHD_run(fuzz_server->daemon);
        for (;;) {
            char sink[4096];
            char *dst = got + 1 < cap ? out + got : sink;
            size_t room = got + 1 < cap ? cap - 1 - got : sizeof(sink);
            ssize_t n = recv(sv[0], dst, room, 0);
            eof |= n == 0;
            if (n <= 0)
                break;
            if (dst != sink) {
                got += (size_t)n;
                out[got] = '\0';
            }
            progress = true;
        }
        idle = progress ? 0 : idle + 1;
    }
    out[got] = '\0';
    close(sv[0]);
    for (int round = 0; engine_connections() > 0; round++) {
        FUZZ_CHECK(round < 1000, "the connection never completes");
        MHD_run(fuzz_server->daemon);
    }
    return got;
}

/* ---- end of the engine seam ---- */

static const char fuzz_secret[] = "fuzz-secret-0123456789abcdef-0123456789";

static struct config cfg;
static struct svc svc;
static bool verbose; /* SHOPD_FUZZ_VERBOSE=1: print each answer, for triage */

/* MariaDB and Redis on port 1 of the loopback interface, where nothing listens. */
static const char *fuzz_env(const char *name)
{
    static const char *const env[][2] = {
        {"SHOPD_DB_URL", "mysql://fuzz:fuzz@127.0.0.1:1/shopd_fuzz"},
        {"SHOPD_REDIS_URL", "redis://127.0.0.1:1/0"},
        {"SHOPD_THREADS", "2"},
        {"SHOPD_LOCK_WAIT", "1"},
        {"SHOPD_DB_LOCK_WAIT", "1"},
        {"SHOPD_ACCESS_LOG", "0"},
        {"SHOPD_JWT_SECRET", fuzz_secret},
    };
    for (size_t i = 0; i < sizeof(env) / sizeof(env[0]); i++)
        if (!strcmp(env[i][0], name))
            return env[i][1];
    return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct err e;

    verbose = getenv("SHOPD_FUZZ_VERBOSE") != NULL;
    log_set_level((enum log_level)(LOG_ERROR + 1)); /* 503s are the norm here; keep quiet */
    FUZZ_CHECK(config_load(&cfg, fuzz_env, &e) == 0, "config: %s", e.detail);
    FUZZ_CHECK(db_library_init() == 0, "db_library_init");
    struct db_options dbo = {.host = cfg.db_host,
                             .port = cfg.db_port,
                             .user = cfg.db_user,
                             .pass = cfg.db_pass,
                             .name = cfg.db_name,
                             .size = cfg.threads,
                             .lock_wait_s = cfg.db_lock_wait_s};
    struct redis_options ro = {.host = cfg.redis_host,
                               .port = cfg.redis_port,
                               .db = cfg.redis_db,
                               .size = cfg.threads,
                               .timeout_ms = 100};
    svc.cfg = &cfg;
    svc.db = db_pool_new(&dbo);
    svc.redis = redis_pool_new(&ro);
    svc_redis_init(&svc);
    metrics_routes_init(routes_names(), (int)routes_count);
    struct server_options opt = {.host = "127.0.0.1",
                                 .port = 0,
                                 .routes = routes,
                                 .route_count = routes_count,
                                 .jwt_secret = cfg.jwt_secret,
                                 .app = &svc,
                                 .access_log = false,
                                 .max_connections = 16};
    engine_start(&opt);
    return 0;
}

/* ---- the request as sent, read independently of the server ---- */

struct sent {
    char method[16];
    char path[1024]; /* the request-target up to '?' */
    bool has_cl, has_te, unclear;
    unsigned long long cl;
};

/* A well-formed "name: value" line (RFC 9110 5.1, 5.5), without its line end. */
static bool clean_header(const char *line, size_t n)
{
    static const char tchar[] = "!#$%&'*+-.^_`|~";
    size_t i = 0;

    if (n && line[n - 1] == '\r')
        n--;
    while (i < n && line[i] != ':' &&
           (isalnum((unsigned char)line[i]) || (line[i] && strchr(tchar, line[i]))))
        i++;
    if (i == 0 || i == n || line[i] != ':')
        return false;
    for (i++; i < n; i++)
        if (((unsigned char)line[i] < 0x20 && line[i] != '\t') || line[i] == 0x7f)
            return false;
    return true;
}

static void read_request(const char *r, size_t len, struct sent *s)
{
    memset(s, 0, sizeof(*s));
    /* Empty lines before the request line are skipped (RFC 9112 2.2). libmicrohttpd 0.9.75
     * reads lines as C strings, so to it a line that starts with a NUL is empty too. */
    while (len > 0 && (*r == '\r' || *r == '\n' || *r == '\0')) {
        const char *nl = *r == '\0' ? memchr(r, '\n', len) : r;
        if (!nl)
            return;
        len -= (size_t)(nl + 1 - r);
        r = nl + 1;
    }
    const char *sp = memchr(r, ' ', len);
    const char *eol = memchr(r, '\n', len);

    if (!sp || !eol || sp > eol)
        return;
    /* Method and target as C strings, cut at a NUL as libmicrohttpd (0.9.75) cuts them. */
    snprintf(s->method, sizeof(s->method), "%.*s", (int)(sp - r), r);
    /* The target runs to the last space of the line (MHD 0.9.75 lets it hold spaces, and
     * takes runs of spaces around it as one). */
    const char *t = sp + 1, *last = eol;
    while (t < eol && *t == ' ')
        t++;
    while (last > t && last[-1] != ' ')
        last--;
    while (last > t && last[-1] == ' ')
        last--;
    if (last == t) { /* no version: the target is the rest of the line */
        last = eol;
        if (last > t && last[-1] == '\r')
            last--;
    }
    const char *end = t;
    while (end < last && *end != '?' && *end != '\0')
        end++;
    if ((size_t)(end - t) < sizeof(s->path))
        memcpy(s->path, t, (size_t)(end - t));
    /* Headers: "name: value" lines up to the blank line. */
    const char *limit = r + len;
    for (const char *line = eol + 1; line < limit;) {
        const char *next = memchr(line, '\n', (size_t)(limit - line));
        size_t n = next ? (size_t)(next - line) : (size_t)(limit - line);
        if (n == 0 || line[0] == '\r' || line[0] == '\0') /* to MHD a NUL ends a line */
            break;
        if (n > 15 && !strncasecmp(line, "content-length:", 15)) {
            s->unclear |= s->has_cl; /* which one MHD believes is its own business */
            s->has_cl = true;
            s->cl = strtoull(line + 15, NULL, 10);
        }
        if (n > 18 && !strncasecmp(line, "transfer-encoding:", 18))
            s->has_te = true;
        if (!clean_header(line, n))
            s->unclear = true; /* how MHD reads a malformed header is its own business */
        line = next ? next + 1 : limit;
    }
}

/* ---- the answer ---- */

struct answer {
    int status;
    const char *headers; /* from the status line to the blank line */
    size_t headers_len;
    const char *body;
    size_t body_len;
};

/* The value of header name in the answer's header block, copied into buf; NULL if absent. */
static const char *answer_header(const struct answer *a, const char *name, char *buf, size_t size)
{
    size_t n = strlen(name);

    for (const char *p = a->headers; p && p < a->headers + a->headers_len;) {
        const char *next = strstr(p, "\r\n");
        if (!strncasecmp(p, name, n) && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            size_t vlen = next ? (size_t)(next - v) : strlen(v);
            snprintf(buf, size, "%.*s", (int)vlen, v);
            return buf;
        }
        p = next ? next + 2 : NULL;
    }
    return NULL;
}

/* The first final (non-1xx) response in out; false when there is none. */
static bool read_answer(const char *out, size_t len, struct answer *a)
{
    const char *p = out, *limit = out + len;
    char cl[32];

    while (p < limit) {
        const char *end = strstr(p, "\r\n\r\n");
        FUZZ_CHECK(!strncmp(p, "HTTP/1.", 7) && p[8] == ' ', "bad status line: %.40s", p);
        if (!end)
            return false;
        a->status = (int)strtol(p + 9, NULL, 10);
        a->headers = p;
        a->headers_len = (size_t)(end - p);
        a->body = end + 4;
        a->body_len = (size_t)(limit - a->body);
        if (answer_header(a, "Content-Length", cl, sizeof(cl))) {
            unsigned long long n = strtoull(cl, NULL, 10);
            if (n < a->body_len)
                a->body_len = (size_t)n;
        }
        if (a->status >= 200)
            return true;
        p = end + 4;
    }
    return false;
}

struct problem {
    const char *type, *title, *code, *detail;
    int64_t status;
};

static const struct json_spec problem_spec[] = {
    JSON_STR("type", JSON_REQUIRED, 1, 64, struct problem, type),
    JSON_STR("title", JSON_REQUIRED, 1, 128, struct problem, title),
    JSON_INT("status", JSON_REQUIRED, 100, 599, ERR_INVALID_INPUT, struct problem, status),
    JSON_STR("code", JSON_REQUIRED, 1, 64, struct problem, code),
    JSON_STR("detail", JSON_REQUIRED, 0, 4096, struct problem, detail),
    JSON_END,
};

/* Whether the request-target is the one canonical spelling of a route's path. */
static bool canonical_route(const struct sent *s)
{
    struct route_match m;

    for (size_t i = 0; i < routes_count; i++)
        if (router_match(&routes[i], 1, routes[i].method, s->path, &m) == ROUTER_FOUND &&
            !strcmp(m.canonical, s->path))
            return true;
    return false;
}

static void check_answer(const struct sent *s, const struct answer *a, struct arena *ar)
{
    char type[128], v[256];
    struct problem p = {0};
    struct err e;
    bool ours = answer_header(a, "X-Request-Id", v, sizeof(v)) != NULL;

    FUZZ_CHECK(a->status != 500, "500 for %s %s: %.*s", s->method, s->path, (int)a->body_len,
               a->body);
    if (!ours)
        return; /* libmicrohttpd's own answer to a request it could not parse */
    if (!answer_header(a, "Content-Type", type, sizeof(type)))
        type[0] = '\0';
    if (!strcmp(type, "application/problem+json") && strcmp(s->method, "HEAD")) {
        char *body = arena_memdup(ar, a->body, a->body_len);
        FUZZ_CHECK(json_decode(body, a->body_len, problem_spec, &p, ar, &e) == 0,
                   "problem body is not valid: %s: %s", e.detail, body);
        FUZZ_CHECK(p.status == a->status, "problem status %lld on a %d", (long long)p.status,
                   a->status);
        enum err_code code = err_from_name(p.code);
        FUZZ_CHECK(code != ERR_CODE_COUNT && err_status(code) == a->status,
                   "problem code %s on a %d", p.code, a->status);
    }
    if (!strncmp(type, "application/json", 16) && strcmp(s->method, "HEAD")) {
        char *canonical;
        FUZZ_CHECK(json_canonical(a->body, a->body_len, NULL, ar, &canonical, &e) == 0,
                   "a JSON answer that is not JSON: %.*s", (int)a->body_len, a->body);
    }
    if (a->status == 405)
        FUZZ_CHECK(answer_header(a, "Allow", v, sizeof(v)), "405 without Allow");
    if (a->status == 401)
        FUZZ_CHECK(answer_header(a, "WWW-Authenticate", v, sizeof(v)), "401 without challenge");
    if (a->status == 503)
        FUZZ_CHECK(answer_header(a, "Retry-After", v, sizeof(v)), "503 without Retry-After");
    if (a->status != 404 && a->status != 405 && a->status != 413)
        FUZZ_CHECK(canonical_route(s), "%s '%s' got past routing (%d) in a non-canonical spelling",
                   s->method, s->path, a->status);
    if (s->has_cl && !s->has_te && !s->unclear && s->cl > SERVER_MAX_BODY)
        FUZZ_CHECK(a->status == 413, "a %llu-byte body got %d", s->cl, a->status);
}

#define PAD_MAX_KIB 80

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char out[256 * 1024];
    const char *req = (const char *)data;
    size_t len = size;
    char *padded = NULL;
    struct arena ar;
    struct sent s;
    struct answer a;

    if (size > 7 && !memcmp(data, "#pad=", 5)) {
        const char *nl = memchr(data, '\n', size);
        long kib = 0;
        if (!nl)
            return 0;
        for (const char *p = (const char *)data + 5; p < nl && kib <= PAD_MAX_KIB; p++) {
            if (*p < '0' || *p > '9')
                return 0;
            kib = kib * 10 + (*p - '0');
        }
        if (kib > PAD_MAX_KIB)
            return 0;
        size_t head = (size_t)(nl + 1 - (const char *)data);
        len = size - head + (size_t)kib * 1024;
        padded = malloc(len);
        memcpy(padded, data + head, size - head);
        memset(padded + size - head, 'x', (size_t)kib * 1024);
        req = padded;
    }
    read_request(req, len, &s);
    size_t got = engine_exchange(req, len, out, sizeof(out));
    if (verbose)
        fprintf(stderr, "---- %s '%s' answered:\n%.*s\n----\n", s.method, s.path,
                (int)(got < 2000 ? got : 2000), out);
    arena_init(&ar);
    if (got && read_answer(out, got, &a))
        check_answer(&s, &a, &ar);
    arena_release(&ar);
    free(padded);
    return 0;
}
