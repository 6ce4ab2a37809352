/*
 * The HTTP request path, through the real entry point: raw request bytes go over a loopback
 * connection into the running server (src/http/: h2o's event loop parses them; the server's
 * own request handler does request ids, routing over the real route table, the framing checks
 * and the 64 KiB body limit, token checks, the content-type check; a worker runs the handlers
 * of src/api/ with their query, cursor and body decoding; problems are rendered and counted).
 * MariaDB and Redis are configured on a closed loopback port, so whatever needs them fails as it
 * would in an outage. An input may start with "#pad=N\n": N KiB of 'x' are then appended, so
 * that body limits are in reach without huge inputs. Beyond "no crash, no leak, no UB", against
 * API.md: no answer is a 500; a problem body is valid UTF-8 JSON whose status and code agree
 * with the status line; a 405 has Allow, a 401 WWW-Authenticate, a 503 Retry-After; a JSON
 * answer is JSON; a request that got past routing used the one canonical spelling of its path;
 * a declared body over 64 KiB is answered 413; every connection ends (no request hangs it).
 *
 * Not covered: the access log (off, as its output would drown the fuzzer's), the connection
 * caps and deadlines (tests/integration/test_connections.c), and any path that needs a live
 * database or Redis.
 */
#include <ctype.h>
#include <errno.h>
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

/* ---- the engine seam: everything that knows how the server is reached is in this section ---- */

#include <poll.h>

#include "http/server_int.h" /* the server's own state, to read its connection count */

static struct server *fuzz_server;
static int fuzz_port;

static void engine_start(const struct server_options *opt)
{
    struct err e;

    fuzz_server = server_start(opt, &e);
    FUZZ_CHECK(fuzz_server, "server_start: %s", e.detail);
    fuzz_port = server_port(fuzz_server);
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
            const char *cl = strstr(p, "\r\nContent-Length:"); /* as h2o spells it */
            if (!cl || cl > end)
                return false;
            unsigned long long n = strtoull(cl + 17, NULL, 10);
            return (size_t)(out + got - (end + 4)) >= n;
        }
        p = end + 4;
    }
}

/* Sends req on a fresh loopback connection to the running server (its loop and workers on
 * threads of their own, as in production), ends the sending side, and collects what comes back
 * (at most cap - 1 bytes, NUL terminated) until the server closes or has answered; returns its
 * length. */
static size_t engine_exchange(const char *req, size_t len, char *out, size_t cap)
{
    struct sockaddr_in addr = {0};
    size_t sent = 0, got = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    out[0] = '\0';
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)fuzz_port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    FUZZ_CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0, "connect");
    fcntl(fd, F_SETFL, O_NONBLOCK);
    for (int waited_ms = 0;;) {
        if (sent == len) {
            shutdown(fd, SHUT_WR);
            sent++; /* once */
        }
        if (sent > len && whole_answer(out, got))
            break; /* the first answer is all that is checked */
        struct pollfd p = {.fd = fd, .events = POLLIN | (sent < len ? POLLOUT : 0)};
        if (poll(&p, 1, 100) == 0) {
            waited_ms += 100;
            /* 10 s is the server's deadline for a request's head; past it, it must close. */
            FUZZ_CHECK(waited_ms < 15000, "the connection never completes");
            continue;
        }
        if (sent < len && (p.revents & POLLOUT)) {
            ssize_t n = send(fd, req + sent, len - sent, MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
            else if (n < 0 && errno != EAGAIN)
                sent = len; /* the server closed: read what it said */
        }
        char sink[4096];
        char *dst = got + 1 < cap ? out + got : sink;
        size_t room = got + 1 < cap ? cap - 1 - got : sizeof(sink);
        ssize_t n = recv(fd, dst, room, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN))
            break;
        if (n > 0 && dst != sink) {
            got += (size_t)n;
            out[got] = '\0';
        }
    }
    out[got] = '\0';
    close(fd);
    /* The next input starts from a server with no connection left over from this one. */
    for (int round = 0; atomic_load(&fuzz_server->conns) > 0; round++) {
        FUZZ_CHECK(round < 15000, "the server never closes the connection");
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
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
                                 .max_connections = 16,
                                 .max_conns_per_ip = 16,
                                 .loops = 1,
                                 .workers = 2,
                                 .queue_max = 16};
    engine_start(&opt);
    return 0;
}

/* ---- the request as sent, read independently of the server ---- */

struct sent {
    char method[16];
    char path[1024]; /* the request-target up to '?' */
    bool has_cl, has_te, unclear;
    bool framed; /* a body's framing or an Expect came: h2o may refuse it (400) before routing */
    unsigned long long cl;
};

/* Whether a Content-Length value is digits alone (19 at most, as h2o reads them), between
 * blanks: anything else is a broken header, which h2o answers 400. */
static bool plain_length(const char *v, size_t n)
{
    size_t i = 0;
    size_t digits = 0;

    while (i < n && (v[i] == ' ' || v[i] == '\t'))
        i++;
    while (i < n && isdigit((unsigned char)v[i]))
        i++, digits++;
    while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == '\r'))
        i++;
    return i == n && digits > 0 && digits <= 19;
}

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
    /* Empty lines before the request line are skipped (RFC 9112 2.2); a line that starts with
     * a NUL is taken as empty too (a parser that reads C strings would). */
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
    /* Method and target as C strings, cut at a NUL. */
    snprintf(s->method, sizeof(s->method), "%.*s", (int)(sp - r), r);
    /* The target runs to the last space of the line (a lenient parser lets it hold spaces;
     * picohttpparser refuses such a line, and its 400 is not checked below). */
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
        if (n == 0 || line[0] == '\r' || line[0] == '\0') /* a NUL ends a line */
            break;
        if (n > 15 && !strncasecmp(line, "content-length:", 15)) {
            s->unclear |= s->has_cl; /* two of them: 400 or 413, either is right */
            s->has_cl = true;
            s->cl = strtoull(line + 15, NULL, 10);
            s->unclear |= !plain_length(line + 15, n - 15);
        }
        if (n > 18 && !strncasecmp(line, "transfer-encoding:", 18))
            s->has_te = true;
        if (n > 7 && !strncasecmp(line, "expect:", 7))
            s->framed = true;
        if (!clean_header(line, n))
            s->unclear = true; /* how a malformed header reads is the parser's business */
        line = next ? next + 1 : limit;
    }
    s->framed |= s->has_cl || s->has_te || s->unclear;
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
        return; /* h2o's own answer to a request it could not parse */
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
    if (a->status != 404 && a->status != 405 && a->status != 413 &&
        !(a->status == 400 && s->framed))
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
