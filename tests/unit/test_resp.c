#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/arena.h"
#include "core/err.h"
#include "core/json.h"
#include "http/resp.h"

static int setup(void **state)
{
    struct arena *a = malloc(sizeof(*a));

    if (!a)
        return -1;
    arena_init(a);
    *state = a;
    return 0;
}

/* The last parsed problem body; released by the next problem() or by teardown. */
static json_t *last_body;

static int teardown(void **state)
{
    struct arena *a = *state;

    json_decref(last_body);
    last_body = NULL;
    arena_release(a);
    free(a);
    return 0;
}

/* The value of header name in r, or NULL. */
static const char *header(const struct resp *r, const char *name)
{
    for (int i = 0; i < r->nheaders; i++)
        if (!strcmp(r->headers[i].name, name))
            return r->headers[i].value;
    return NULL;
}

static int count_header(const struct resp *r, const char *name)
{
    int n = 0;

    for (int i = 0; i < r->nheaders; i++)
        n += !strcmp(r->headers[i].name, name);
    return n;
}

/* Renders a problem for code with detail into r and returns its parsed body, which stays
 * valid until the next call or the end of the test. */
static json_t *problem(void **state, struct resp *r, enum err_code code, const char *detail,
                       const char *request_id, const char *allow)
{
    struct err e;
    json_error_t jerr;

    json_decref(last_body);
    last_body = NULL;
    memset(r, 0, sizeof(*r));
    err_set(&e, code, "%s", detail);
    resp_problem(r, *state, &e, request_id, allow);
    assert_non_null(r->body);
    assert_int_equal(strlen(r->body), r->body_len);
    last_body = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!last_body)
        fail_msg("problem body is not JSON: %s: %s", jerr.text, r->body);
    assert_true(json_is_object(last_body));
    return last_body;
}

static const char *str_member(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    if (!json_is_string(v))
        fail_msg("member '%s' is not a string", key);
    return json_string_value(v);
}

static void test_problem_body_fields(void **state)
{
    struct resp r;
    json_t *body =
        problem(state, &r, ERR_COUPON_SOLD_OUT, "coupon 2 has no quantity left", "req-1", NULL);

    assert_int_equal(json_object_size(body), 5);
    assert_string_equal(str_member(body, "type"), "about:blank");
    assert_string_equal(str_member(body, "title"), "Conflict");
    assert_true(json_is_integer(json_object_get(body, "status")));
    assert_int_equal(json_integer_value(json_object_get(body, "status")), 409);
    assert_string_equal(str_member(body, "code"), "COUPON_SOLD_OUT");
    assert_string_equal(str_member(body, "detail"), "coupon 2 has no quantity left");
}

static void test_problem_status_and_content_type(void **state)
{
    struct resp r;
    problem(state, &r, ERR_INVALID_AMOUNT, "'amount' must be between 1 and 10", "req-2", NULL);

    assert_int_equal(r.status, 400);
    assert_string_equal(r.content_type, "application/problem+json");
    assert_int_equal(r.nheaders, 0);
}

static void test_problem_status_per_code(void **state)
{
    static const struct {
        enum err_code code;
        int status;
        const char *title;
    } cases[] = {
        {ERR_INVALID_INPUT, 400, "Bad Request"},
        {ERR_IDEMPOTENCY_KEY_MISSING, 400, "Bad Request"},
        {ERR_UNAUTHORIZED, 401, "Unauthorized"},
        {ERR_FORBIDDEN, 403, "Forbidden"},
        {ERR_NOT_FOUND, 404, "Not Found"},
        {ERR_ORDER_NOT_FOUND, 404, "Not Found"},
        {ERR_METHOD_NOT_ALLOWED, 405, "Method Not Allowed"},
        {ERR_OUT_OF_STOCK, 409, "Conflict"},
        {ERR_PAYLOAD_TOO_LARGE, 413, NULL},
        {ERR_UNSUPPORTED_MEDIA_TYPE, 415, "Unsupported Media Type"},
        {ERR_IDEMPOTENCY_KEY_REUSED, 422, NULL},
        {ERR_INTERNAL, 500, "Internal Server Error"},
        {ERR_UNAVAILABLE, 503, "Service Unavailable"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct resp r;
        json_t *body = problem(state, &r, cases[i].code, "d", "req", "GET");

        assert_int_equal(r.status, cases[i].status);
        assert_int_equal(json_integer_value(json_object_get(body, "status")), cases[i].status);
        assert_string_equal(str_member(body, "code"), err_name(cases[i].code));
        if (cases[i].title)
            assert_string_equal(str_member(body, "title"), cases[i].title);
    }
}

static void test_problem_detail_escaped(void **state)
{
    struct resp r;
    json_t *body = problem(state, &r, ERR_INVALID_INPUT, "name \"x\\y\"\n한글", "req", NULL);

    assert_string_equal(str_member(body, "detail"), "name \"x\\y\"\n한글");
}

static void test_unauthorized_has_www_authenticate(void **state)
{
    struct resp r;
    problem(state, &r, ERR_UNAUTHORIZED, "bearer token required", "req", NULL);
    const char *v = header(&r, "WWW-Authenticate");

    assert_int_equal(r.status, 401);
    assert_non_null(v);
    assert_int_equal(strncmp(v, "Bearer", 6), 0);
    assert_null(header(&r, "Retry-After"));
}

static void test_forbidden_has_no_www_authenticate(void **state)
{
    struct resp r;
    problem(state, &r, ERR_FORBIDDEN, "not yours", "req", NULL);

    assert_null(header(&r, "WWW-Authenticate"));
    assert_int_equal(r.nheaders, 0);
}

static void test_unavailable_has_retry_after(void **state)
{
    struct resp r;
    problem(state, &r, ERR_UNAVAILABLE, "a lock wait timed out; retry", "req", NULL);
    const char *v = header(&r, "Retry-After");

    assert_int_equal(r.status, 503);
    assert_non_null(v);
    assert_true(strlen(v) > 0 && strspn(v, "0123456789") == strlen(v));
}

static void test_in_flight_has_retry_after(void **state)
{
    struct resp r;
    json_t *body = problem(state, &r, ERR_IDEMPOTENCY_IN_FLIGHT, "still running", "req", NULL);
    const char *v = header(&r, "Retry-After");

    assert_int_equal(r.status, 409);
    assert_non_null(v);
    assert_true(strlen(v) > 0 && strspn(v, "0123456789") == strlen(v));
    assert_string_equal(str_member(body, "code"), "IDEMPOTENCY_IN_FLIGHT");
    assert_string_equal(str_member(body, "detail"), "still running");
}

static void test_other_conflicts_have_no_retry_after(void **state)
{
    struct resp r;
    problem(state, &r, ERR_OUT_OF_STOCK, "product 3", "req", NULL);

    assert_null(header(&r, "Retry-After"));
}

static void test_method_not_allowed_has_allow(void **state)
{
    struct resp r;
    problem(state, &r, ERR_METHOD_NOT_ALLOWED, "use GET or POST", "req", "GET, POST");

    assert_int_equal(r.status, 405);
    assert_non_null(header(&r, "Allow"));
    assert_string_equal(header(&r, "Allow"), "GET, POST");
    assert_int_equal(count_header(&r, "Allow"), 1);
}

static void test_allow_only_on_405(void **state)
{
    struct resp r;
    problem(state, &r, ERR_NOT_FOUND, "no route", "req", "GET");

    assert_null(header(&r, "Allow"));
}

static void test_internal_never_leaks_detail(void **state)
{
    struct resp r;
    json_t *body =
        problem(state, &r, ERR_INTERNAL,
                "orders: mariadb error 1064: You have an error in your SQL syntax", "abc123", NULL);

    assert_int_equal(r.status, 500);
    assert_string_equal(str_member(body, "detail"), "internal error; request id abc123");
    assert_string_equal(str_member(body, "code"), "INTERNAL");
    assert_string_equal(str_member(body, "title"), "Internal Server Error");
    assert_null(strstr(r.body, "mariadb"));
    assert_null(strstr(r.body, "SQL"));
}

static void test_internal_request_id_escaped(void **state)
{
    struct resp r;
    json_t *body = problem(state, &r, ERR_INTERNAL, "secret", "a\"b", NULL);

    assert_string_equal(str_member(body, "detail"), "internal error; request id a\"b");
}

/*
 * resp.h: "A 5xx gets a generic detail naming the request id (the real detail is for the log,
 * never the client)". A 503's detail can carry the MariaDB client's message (repo/db.c
 * "cannot connect to mariadb at %s:%d: %s") or a Redis host, so it must be hidden too.
 */
static void test_unavailable_never_leaks_detail(void **state)
{
    struct resp r;
    json_t *body = problem(state, &r, ERR_UNAVAILABLE,
                           "cannot connect to mariadb at 10.0.0.5:13306: Access denied for "
                           "user 'shop'",
                           "rid-503", NULL);
    const char *detail = str_member(body, "detail");

    assert_int_equal(r.status, 503);
    assert_string_equal(str_member(body, "code"), "UNAVAILABLE");
    assert_null(strstr(r.body, "10.0.0.5"));
    assert_null(strstr(r.body, "Access denied"));
    assert_non_null(strstr(detail, "rid-503"));
}

static void test_problem_replaces_earlier_headers(void **state)
{
    /* A handler may have added headers before failing; a problem starts from none. */
    struct resp r;
    struct err e;

    memset(&r, 0, sizeof(r));
    resp_header(&r, "Idempotent-Replayed", "true");
    err_set(&e, ERR_UNAUTHORIZED, "x");
    resp_problem(&r, *state, &e, "req", NULL);
    assert_null(header(&r, "Idempotent-Replayed"));
    assert_int_equal(count_header(&r, "WWW-Authenticate"), 1);
}

static void test_resp_header_appends(void **state)
{
    struct resp r;

    (void)state;
    memset(&r, 0, sizeof(r));
    resp_header(&r, "A", "1");
    resp_header(&r, "B", "2");
    assert_int_equal(r.nheaders, 2);
    assert_string_equal(header(&r, "A"), "1");
    assert_string_equal(header(&r, "B"), "2");
}

static void test_resp_json(void **state)
{
    struct resp r;
    struct json_w w;

    memset(&r, 0, sizeof(r));
    json_w_init(&w, *state);
    json_w_obj_begin(&w, NULL);
    json_w_int(&w, "userId", 3);
    json_w_obj_end(&w);
    resp_json(&r, 201, &w);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.content_type, "application/json; charset=utf-8");
    assert_string_equal(r.body, "{\"userId\":3}");
    assert_int_equal(r.body_len, strlen("{\"userId\":3}"));
}

static void test_resp_body(void **state)
{
    static const char text[] = "ok\n";
    struct resp r;

    (void)state;
    memset(&r, 0, sizeof(r));
    resp_body(&r, 200, "text/plain", text, 3);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "text/plain");
    assert_ptr_equal(r.body, text);
    assert_int_equal(r.body_len, 3);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/*
 * API.md: problem details are valid UTF-8 JSON whatever the request held. A 404's detail
 * quotes the path, which may carry any bytes; problem() fails unless jansson (which refuses
 * invalid UTF-8) can parse the body.
 */
static void test_problem_invalid_utf8_in_detail(void **state)
{
    static const char *const details[] = {
        "no route for GET /\xff\xfe",    "bad \x80 continuation", "overlong \xc0\xaf slash",
        "surrogate \xed\xa0\x80 half", "past U+10FFFF \xf4\x90\x80\x80", "cut \xe2\x82",
        "lead at end \xf0",
    };
    struct resp r;

    for (size_t i = 0; i < sizeof(details) / sizeof(details[0]); i++) {
        json_t *body = problem(state, &r, ERR_NOT_FOUND, details[i], "rid", NULL);
        assert_non_null(strstr(str_member(body, "detail"), "\xef\xbf\xbd")); /* U+FFFD */
    }
    /* Valid UTF-8 passes unchanged. */
    json_t *body = problem(state, &r, ERR_NOT_FOUND, "caf\xc3\xa9 \xed\x95\x9c \xf0\x9f\x98\x80", "rid",
                           NULL);
    assert_string_equal(str_member(body, "detail"), "caf\xc3\xa9 \xed\x95\x9c \xf0\x9f\x98\x80");
}

/* A 404 whose detail is cut at 192 bytes: the cut falls inside a character for one of these
 * alignments; the body must stay valid JSON and must not gain a U+FFFD for the cut. */
static void test_problem_long_multibyte_detail(void **state)
{
    char path[400];
    struct resp r;

    for (size_t shift = 0; shift < 3; shift++) {
        size_t n = 0;
        for (; n < shift; n++)
            path[n] = 'p';
        while (n + 3 < sizeof(path)) {
            memcpy(path + n, "\xed\x95\x9c", 3);
            n += 3;
        }
        path[n] = '\0';
        struct err e;
        err_set(&e, ERR_NOT_FOUND, "no route for GET /api/%s", path);
        memset(&r, 0, sizeof(r));
        resp_problem(&r, *state, &e, "rid", NULL);
        json_error_t jerr;
        json_t *body = json_loadb(r.body, r.body_len, 0, &jerr);
        if (!body)
            fail_msg("shift %zu: problem body is not JSON: %s", shift, jerr.text);
        assert_null(strstr(json_string_value(json_object_get(body, "detail")), "\xef\xbf\xbd"));
        json_decref(body);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_problem_body_fields),
        T(test_problem_invalid_utf8_in_detail),
        T(test_problem_long_multibyte_detail),
        T(test_problem_status_and_content_type),
        T(test_problem_status_per_code),
        T(test_problem_detail_escaped),
        T(test_unauthorized_has_www_authenticate),
        T(test_forbidden_has_no_www_authenticate),
        T(test_unavailable_has_retry_after),
        T(test_in_flight_has_retry_after),
        T(test_other_conflicts_have_no_retry_after),
        T(test_method_not_allowed_has_allow),
        T(test_allow_only_on_405),
        T(test_internal_never_leaks_detail),
        T(test_internal_request_id_escaped),
        T(test_unavailable_never_leaks_detail),
        T(test_problem_replaces_earlier_headers),
        T(test_resp_header_appends),
        T(test_resp_json),
        T(test_resp_body),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
