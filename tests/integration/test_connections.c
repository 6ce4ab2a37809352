/*
 * API.md "Connections", against a real `shopd serve`, over raw sockets (libcurl would hide
 * what is being tested): 10,000 open connections held by a few threads; the per-address and
 * per-instance caps answered 503 with Retry-After; a request that does not arrive whole within
 * the head timeout answered 408 and closed; idle keep-alive closed; conflicting framing headers
 * answered 400 and closed; a chunked body held to 64 KiB as it arrives; thousands of query
 * arguments answered 400; and a request held on a row lock never delays another connection.
 * Deadlines are shortened with SHOPD_HTTP_HEAD_TIMEOUT / SHOPD_HTTP_IDLE_TIMEOUT so that the
 * tests wait seconds, not a minute; what is asserted is an answer or a count, never a timing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "held_order.h"
#include "http_client.h"
#include "it_main.h"

#define IDLE_CONNS 10000
/* A whole request that keeps its connection open. */
#define HEALTHZ "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"

static struct harness h;
static struct harness_server srv;

static int group_setup(void **state)
{
    static const char *const env[] = {"SHOPD_HTTP_HEAD_TIMEOUT=2", "SHOPD_HTTP_IDLE_TIMEOUT=3",
                                      "SHOPD_MAX_CONNS_PER_IP=12000", NULL};
    struct rlimit rl;

    (void)state;
    /* The idle test holds IDLE_CONNS sockets of its own. */
    if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    return harness_setup(&h) || harness_server_start(&h, &srv, env) ? -1 : 0;
}

static int group_teardown(void **state)
{
    (void)state;
    int rc = harness_server_stop(&srv);

    harness_teardown(&h);
    return rc ? -1 : 0;
}

/* A connection to port from the loopback address src ("127.0.0.1", "127.0.0.2", ...). */
static int dial(int port, const char *src)
{
    struct sockaddr_in from = {.sin_family = AF_INET}, to = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    inet_pton(AF_INET, src, &from.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&from, sizeof(from)), 0);
    to.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&to, sizeof(to)), 0);
    return fd;
}

static void send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        assert_true(n > 0);
        data += n;
        len -= (size_t)n;
    }
}

/* Reads until the server closes (or timeout_ms passes without a byte); returns the length,
 * out NUL-terminated. *closed tells which. */
static size_t read_to_close(int fd, char *out, size_t cap, int timeout_ms, bool *closed)
{
    size_t got = 0;

    *closed = false;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, timeout_ms) <= 0)
            break;
        ssize_t n = recv(fd, out + got, cap - 1 - got, 0);
        if (n <= 0) {
            *closed = n == 0 || errno == ECONNRESET;
            break;
        }
        got += (size_t)n;
        if (got + 1 == cap)
            break;
    }
    out[got] = '\0';
    return got;
}

/* The Content-Length of the answer whose head is head..end (h2o spells header names in lower
 * case, shopd's own canned answers do not). */
static size_t body_length(const char *head, const char *end)
{
    for (const char *line = strstr(head, "\r\n"); line && line < end;
         line = strstr(line + 2, "\r\n"))
        if (!strncasecmp(line + 2, "content-length:", 15))
            return strtoul(line + 17, NULL, 10);
    return 0;
}

/* Reads one whole answer (its head and Content-Length bytes of body) on a connection kept open;
 * its status, or -1 if none came within timeout_ms. */
static int read_answer(int fd, int timeout_ms)
{
    char out[4096];
    size_t got = 0;

    while (got + 1 < sizeof(out)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, timeout_ms) <= 0)
            return -1;
        ssize_t n = recv(fd, out + got, sizeof(out) - 1 - got, 0);
        if (n <= 0)
            return -1;
        got += (size_t)n;
        out[got] = '\0';
        const char *end = strstr(out, "\r\n\r\n");
        if (end && got >= (size_t)(end + 4 - out) + body_length(out, end))
            return strncmp(out, "HTTP/1.1 ", 9) ? -1 : atoi(out + 9);
    }
    return -1;
}

/* A connection from src that the server has taken: one request on it has been answered. (A
 * connection only dialled may still wait in the accept queue, where the loops take them in no
 * fixed order.) */
static int dial_served(int port, const char *src)
{
    int fd = dial(port, src);

    send_all(fd, HEALTHZ, strlen(HEALTHZ));
    assert_int_equal(read_answer(fd, 5000), 200);
    return fd;
}

static int status_of(const char *answer)
{
    return strncmp(answer, "HTTP/1.1 ", 9) ? -1 : atoi(answer + 9);
}

/* One request on a fresh connection; the status of its answer, the answer in out. */
static int exchange(const char *request, char *out, size_t cap)
{
    int fd = dial(srv.port, "127.0.0.1");
    bool closed;

    send_all(fd, request, strlen(request));
    shutdown(fd, SHUT_WR);
    read_to_close(fd, out, cap, 10000, &closed);
    close(fd);
    return status_of(out);
}

static void ten_thousand_idle_connections_are_held_by_a_few_threads(void **state)
{
    static int fds[IDLE_CONNS];
    char path[64], line[256];
    int threads = -1;

    (void)state;
    for (int i = 0; i < IDLE_CONNS; i++)
        fds[i] = dial(srv.port, "127.0.0.1");
    /* Every one of them is open and served: a request on the last answers. */
    send_all(fds[IDLE_CONNS - 1], HEALTHZ, strlen(HEALTHZ));
    assert_int_equal(read_answer(fds[IDLE_CONNS - 1], 10000), 200);
    snprintf(path, sizeof(path), "/proc/%d/status", (int)srv.pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, "Threads:", 8))
            threads = atoi(line + 8);
    fclose(f);
    /* The loops, the workers (SHOPD_THREADS, 64 by default) and the background threads: not
     * one per connection. */
    assert_true(threads > 0 && threads < 200);
    for (int i = 0; i < IDLE_CONNS; i++)
        close(fds[i]);
}

static void an_address_past_its_cap_gets_503_and_another_address_is_served(void **state)
{
    static const char *const env[] = {"SHOPD_MAX_CONNS_PER_IP=4", "SHOPD_MAX_CONNECTIONS=6", NULL};
    struct harness_server capped;
    char out[4096];
    int fds[6];
    bool closed;

    (void)state;
    assert_int_equal(harness_server_start(&h, &capped, env), 0);
    for (int i = 0; i < 4; i++)
        fds[i] = dial_served(capped.port, "127.0.0.1");
    /* A fifth from the same address: refused with a problem, not silence. */
    int extra = dial(capped.port, "127.0.0.1");
    read_to_close(extra, out, sizeof(out), 5000, &closed);
    close(extra);
    if (status_of(out) != 503)
        fail_msg("a fifth connection got '%.200s' (closed: %d)", out, closed);
    assert_non_null(strstr(out, "Retry-After: "));
    assert_non_null(strstr(out, "\"code\":\"UNAVAILABLE\""));
    assert_true(closed);
    /* Other addresses still get in, up to the instance's cap of 6. */
    fds[4] = dial_served(capped.port, "127.0.0.2");
    fds[5] = dial_served(capped.port, "127.0.0.3");
    extra = dial(capped.port, "127.0.0.4");
    read_to_close(extra, out, sizeof(out), 5000, &closed);
    close(extra);
    if (status_of(out) != 503)
        fail_msg("a seventh connection got '%.200s' (closed: %d)", out, closed);
    for (int i = 0; i < 6; i++)
        close(fds[i]);
    assert_int_equal(harness_server_stop(&capped), 0);
}

static void a_request_that_trickles_gets_408_and_is_closed(void **state)
{
    static const char head[] = "GET /healthz HTTP/1.1\r\nHost: t\r\n";
    char out[4096];
    bool closed;

    (void)state;
    int fd = dial(srv.port, "127.0.0.1");
    /* One byte of the head each time half a second passes without an answer; never the blank
     * line. Each byte is progress, and still the head timeout (2 s here) ends it. */
    for (size_t i = 0; i < 40; i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 500) > 0)
            break;
        if (i < sizeof(head) - 1)
            send_all(fd, head + i, 1);
    }
    read_to_close(fd, out, sizeof(out), 10000, &closed);
    close(fd);
    assert_int_equal(status_of(out), 408);
    assert_true(closed);
}

static void an_idle_keep_alive_connection_is_closed(void **state)
{
    char out[4096];
    bool closed;

    (void)state;
    int fd = dial(srv.port, "127.0.0.1");
    send_all(fd, HEALTHZ, strlen(HEALTHZ));
    /* The answer, then nothing until the idle timeout (3 s here) closes the connection. */
    read_to_close(fd, out, sizeof(out), 10000, &closed);
    close(fd);
    assert_int_equal(status_of(out), 200);
    assert_true(closed);
}

static void conflicting_framing_headers_get_400_and_close(void **state)
{
    static const char two_lengths[] = "POST /api/users HTTP/1.1\r\nHost: t\r\n"
                                      "Content-Type: application/json\r\n"
                                      "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}";
    static const char length_and_chunked[] = "POST /api/users HTTP/1.1\r\nHost: t\r\n"
                                             "Content-Type: application/json\r\n"
                                             "Content-Length: 7\r\n"
                                             "Transfer-Encoding: chunked\r\n\r\n"
                                             "2\r\n{}\r\n0\r\n\r\n";
    char out[4096];

    (void)state;
    assert_int_equal(exchange(two_lengths, out, sizeof(out)), 400);
    assert_non_null(strstr(out, "\"code\":\"INVALID_INPUT\""));
    assert_non_null(strstr(out, "Connection: close"));
    assert_int_equal(exchange(length_and_chunked, out, sizeof(out)), 400);
    assert_non_null(strstr(out, "Transfer-Encoding"));
    assert_non_null(strstr(out, "Connection: close"));
}

/* h2o's own refusals before any handler (here its 417 for an Expect it does not know) are
 * answered as the contract's problems (http/engine_errors.c), with a request id. */
static void an_unknown_expectation_gets_a_400_problem(void **state)
{
    static const char expect[] = "POST /api/users HTTP/1.1\r\nHost: t\r\n"
                                 "Content-Type: application/json\r\n"
                                 "Expect: something-else\r\nContent-Length: 2\r\n\r\n{}";
    char out[4096];

    (void)state;
    assert_int_equal(exchange(expect, out, sizeof(out)), 400);
    assert_non_null(strstr(out, "application/problem+json"));
    assert_non_null(strstr(out, "\"status\":400,\"code\":\"INVALID_INPUT\""));
    assert_non_null(strstr(out, "X-Request-Id: "));
}

static void a_chunked_body_is_refused_as_it_passes_64_kib(void **state)
{
    static const char head[] = "POST /api/users HTTP/1.1\r\nHost: t\r\n"
                               "Content-Type: application/json\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n";
    char chunk[8192 + 16], out[4096];
    size_t sent = 0;
    bool closed = false;

    (void)state;
    int fd = dial(srv.port, "127.0.0.1");
    /* Small buffers on this side, and a send that gives up when they stay full: what was sent
     * is then what the server read, plus what its receive buffer holds, not what a loaded
     * machine let this loop push before the server got round to refusing. */
    int small = 16 * 1024;
    struct timeval stuck = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &stuck, sizeof(stuck));
    send_all(fd, head, sizeof(head) - 1);
    int n = snprintf(chunk, sizeof(chunk), "2000\r\n");
    memset(chunk + n, ' ', 8192);
    memcpy(chunk + n + 8192, "\r\n", 2);
    /* Up to 16 MiB, in 8 KiB chunks, until the server answers: it must well before. */
    while (sent < 16u << 20) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 0) > 0)
            break;
        if (send(fd, chunk, (size_t)n + 8194, MSG_NOSIGNAL) <= 0)
            break;
        sent += 8192;
    }
    read_to_close(fd, out, sizeof(out), 5000, &closed);
    close(fd);
    assert_int_equal(status_of(out), 413);
    /* h2o's own refusal, rewritten into the contract's problem (http/engine_errors.c). */
    assert_non_null(strstr(out, "\"code\":\"PAYLOAD_TOO_LARGE\""));
    assert_non_null(strstr(out, "X-Request-Id: "));
    assert_true(sent < 4u << 20); /* the rest was never read */
}

static void thousands_of_query_arguments_get_400(void **state)
{
    size_t cap = 5000 * 8 + 128;
    char *req = malloc(cap), out[4096];
    size_t n = (size_t)snprintf(req, cap, "GET /api/products?");

    (void)state;
    for (int i = 0; i < 5000; i++)
        n += (size_t)snprintf(req + n, cap - n, "a%d=1&", i % 1000);
    snprintf(req + n, cap - n, " HTTP/1.1\r\nHost: t\r\n\r\n");
    int status = exchange(req, out, sizeof(out));
    free(req);
    assert_int_equal(status, 400);
    assert_non_null(strstr(out, "\"code\":\"INVALID_INPUT\""));
}

/*
 * Issue 12: a request waiting on a row lock runs on a worker, never on a loop. While an order
 * waits on a product row the test holds, 200 product reads on other connections are answered,
 * and the order is still waiting when they are; once the row is let go, it is created.
 */
static void a_request_held_on_a_row_lock_never_delays_other_connections(void **state)
{
    int64_t user = harness_create_user(&h, &srv, "Held row reader");
    int64_t product = harness_create_product(&h, &srv, "Held row", 1000, 10);
    char *token = harness_token(&h, user);
    struct held_order o;
    struct http_client c;
    struct http_result r;
    char url[160];

    (void)state;
    assert_true(user > 0 && product > 0);
    assert_int_equal(held_order_start(&o, &h, &srv, user, token, product, "held-row-1"), 0);

    snprintf(url, sizeof(url), "%s/api/products/%lld", srv.url, (long long)product);
    http_client_init(&c);
    for (int i = 0; i < 200; i++) {
        assert_int_equal(http_do(&c, "GET", url, NULL, NULL, NULL, 0, NULL, &r), 0);
        assert_int_equal(r.status, 200);
        http_result_free(&r);
    }
    http_client_release(&c);
    assert_true(held_order_waiting(&o));
    assert_int_equal(held_order_finish(&o), 201);
    free(token);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ten_thousand_idle_connections_are_held_by_a_few_threads),
        cmocka_unit_test(an_address_past_its_cap_gets_503_and_another_address_is_served),
        cmocka_unit_test(a_request_that_trickles_gets_408_and_is_closed),
        cmocka_unit_test(an_idle_keep_alive_connection_is_closed),
        cmocka_unit_test(conflicting_framing_headers_get_400_and_close),
        cmocka_unit_test(an_unknown_expectation_gets_a_400_problem),
        cmocka_unit_test(a_chunked_body_is_refused_as_it_passes_64_kib),
        cmocka_unit_test(thousands_of_query_arguments_get_400),
        cmocka_unit_test(a_request_held_on_a_row_lock_never_delays_other_connections),
    };
    int failed = 0;

    if (it_main_begin() < 0)
        return 1;
    IT_RUN_GROUP(failed, "connections", tests, group_setup, group_teardown);
    return failed ? 1 : 0;
}
