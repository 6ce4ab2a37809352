#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/arena.h"
#include "core/err.h"
#include "core/json.h"
#include "service/idem_svc.h"

static int setup(void **state)
{
    struct arena *a = malloc(sizeof(*a));

    if (!a)
        return -1;
    arena_init(a);
    *state = a;
    return 0;
}

static int teardown(void **state)
{
    struct arena *a = *state;

    arena_release(a);
    free(a);
    return 0;
}

static const struct json_spec no_fields[] = {JSON_END};

/* The body's one parse, as api_decode_keyed does it for a route without fields. */
static int parse(void **state, const char *body, struct json_keyed *k, struct err *e)
{
    char unused;

    return json_decode_keyed(body, strlen(body), no_fields, &unused, IDEM_BODY_KEY_FIELD, *state, k,
                             e);
}

static void fingerprint(void **state, const char *body, unsigned char out[SHA256_LEN])
{
    struct json_keyed k;
    struct err e;

    err_clear(&e);
    if (parse(state, body, &k, &e))
        fail_msg("json_decode_keyed(%s): %s", body, e.detail);
    idem_fingerprint(k.canonical, out);
}

static bool same_fingerprint(void **state, const char *x, const char *y)
{
    unsigned char fx[SHA256_LEN], fy[SHA256_LEN];

    fingerprint(state, x, fx);
    fingerprint(state, y, fy);
    return !memcmp(fx, fy, SHA256_LEN);
}

/* Calls idem_svc_prepare for POST /api/users/7/balance/charge. */
static int prepare(void **state, struct idem_request *r, const char *header_key, const char *body,
                   struct err *e)
{
    struct json_keyed k;

    memset(r, 0, sizeof(*r));
    err_clear(e);
    if (parse(state, body, &k, e))
        return -1;
    return idem_svc_prepare(r, 7, "POST", "/api/users/7/balance/charge", header_key, &k, e);
}

/* A key of n copies of ch, in the arena. */
static char *key_of(void **state, size_t n, char ch)
{
    char *k = arena_alloc(*state, n + 1);

    memset(k, ch, n);
    k[n] = '\0';
    return k;
}

/* ---- idem_fingerprint ---- */

static void test_fingerprint_reordered_keys_equal(void **state)
{
    assert_true(same_fingerprint(state, "{\"amount\":5000,\"note\":\"x\"}",
                                 "{\"note\":\"x\",\"amount\":5000}"));
}

static void test_fingerprint_whitespace_equal(void **state)
{
    assert_true(same_fingerprint(state, "{\"amount\":5000}", " {\n\t\"amount\" :  5000 }\r\n"));
}

static void test_fingerprint_nested_reordered_equal(void **state)
{
    assert_true(same_fingerprint(state,
                                 "{\"userId\":1,\"items\":[{\"productId\":2,\"quantity\":3}]}",
                                 "{\"items\":[{\"quantity\":3,\"productId\":2}],\"userId\":1}"));
}

static void test_fingerprint_ignores_idempotency_key(void **state)
{
    assert_true(same_fingerprint(state, "{\"amount\":5000}",
                                 "{\"amount\":5000,\"idempotencyKey\":\"k-1\"}"));
    assert_true(same_fingerprint(state, "{\"idempotencyKey\":\"k-1\",\"amount\":5000}",
                                 "{\"amount\":5000,\"idempotencyKey\":\"other\"}"));
}

static void test_fingerprint_different_values_differ(void **state)
{
    assert_false(same_fingerprint(state, "{\"amount\":5000}", "{\"amount\":5001}"));
    assert_false(same_fingerprint(state, "{\"amount\":5000}", "{\"amount\":\"5000\"}"));
    assert_false(same_fingerprint(state, "{\"amount\":5000}", "{\"amount\":5000,\"x\":null}"));
    assert_false(same_fingerprint(state, "{\"items\":[1,2]}", "{\"items\":[2,1]}"));
    assert_false(same_fingerprint(state, "{\"a\":1}", "{\"b\":1}"));
}

static void test_fingerprint_nested_idempotency_key_counts(void **state)
{
    /* Only the top-level member is the key; a nested one is data. */
    assert_false(same_fingerprint(state, "{\"x\":{\"idempotencyKey\":\"a\"}}",
                                  "{\"x\":{\"idempotencyKey\":\"b\"}}"));
}

static void test_fingerprint_is_sha256_of_canonical(void **state)
{
    /* SHA-256("{}") */
    static const unsigned char empty_obj[SHA256_LEN] = {
        0x44, 0x13, 0x6f, 0xa3, 0x55, 0xb3, 0x67, 0x8a, 0x11, 0x46, 0xad,
        0x16, 0xf7, 0xe8, 0x64, 0x9e, 0x94, 0xfb, 0x4f, 0xc2, 0x1f, 0xe7,
        0x7e, 0x83, 0x10, 0xc0, 0x60, 0xf6, 0x1c, 0xaa, 0xff, 0x8a,
    };
    unsigned char out[SHA256_LEN];

    fingerprint(state, " { \"idempotencyKey\" : \"k\" } ", out);
    assert_memory_equal(out, empty_obj, SHA256_LEN);
}

static void test_fingerprint_rejects_non_object(void **state)
{
    struct json_keyed k;
    struct err e;

    err_clear(&e);
    assert_int_equal(parse(state, "[1]", &k, &e), -1);
    assert_int_equal(e.code, ERR_INVALID_INPUT);
    err_clear(&e);
    assert_int_equal(parse(state, "{", &k, &e), -1);
    assert_int_equal(e.code, ERR_INVALID_INPUT);
}

/* ---- idem_svc_prepare ---- */

static void test_prepare_key_from_header(void **state)
{
    struct idem_request r;
    struct err e;

    assert_int_equal(prepare(state, &r, "key-1", "{\"amount\":100}", &e), 0);
    assert_string_equal(r.key, "key-1");
    assert_int_equal(r.user_id, 7);
    assert_string_equal(r.method, "POST");
    assert_string_equal(r.path, "/api/users/7/balance/charge");
}

static void test_prepare_key_from_body(void **state)
{
    struct idem_request r;
    struct err e;

    assert_int_equal(prepare(state, &r, NULL, "{\"amount\":100,\"idempotencyKey\":\"key-2\"}", &e),
                     0);
    assert_string_equal(r.key, "key-2");
}

static void test_prepare_both_equal(void **state)
{
    struct idem_request r;
    struct err e;

    assert_int_equal(prepare(state, &r, "key-3", "{\"idempotencyKey\":\"key-3\",\"amount\":1}", &e),
                     0);
    assert_string_equal(r.key, "key-3");
}

static void test_prepare_both_different(void **state)
{
    struct idem_request r;
    struct err e;

    assert_int_equal(prepare(state, &r, "key-a", "{\"idempotencyKey\":\"key-b\",\"amount\":1}", &e),
                     -1);
    assert_int_equal(e.code, ERR_INVALID_INPUT);
}

static void test_prepare_none(void **state)
{
    struct idem_request r;
    struct err e;

    assert_int_equal(prepare(state, &r, NULL, "{\"amount\":1}", &e), -1);
    assert_int_equal(e.code, ERR_IDEMPOTENCY_KEY_MISSING);
    assert_int_equal(prepare(state, &r, NULL, "{\"amount\":1,\"idempotencyKey\":null}", &e), -1);
    assert_int_equal(e.code, ERR_IDEMPOTENCY_KEY_MISSING);
}

static void test_prepare_body_key_not_string(void **state)
{
    struct idem_request r;
    struct err e;

    assert_int_equal(prepare(state, &r, NULL, "{\"amount\":1,\"idempotencyKey\":12}", &e), -1);
    assert_int_equal(e.code, ERR_INVALID_INPUT);
}

static void test_prepare_fingerprint_same_for_header_and_body_key(void **state)
{
    struct idem_request by_header, by_body;
    struct err e;

    assert_int_equal(prepare(state, &by_header, "k", "{\"amount\":100}", &e), 0);
    assert_int_equal(
        prepare(state, &by_body, NULL, "{\"idempotencyKey\":\"k\",\"amount\":100}", &e), 0);
    assert_memory_equal(by_header.fingerprint, by_body.fingerprint, SHA256_LEN);
}

static void test_prepare_fingerprint_differs_by_body(void **state)
{
    struct idem_request x, y;
    struct err e;

    assert_int_equal(prepare(state, &x, "k", "{\"amount\":100}", &e), 0);
    assert_int_equal(prepare(state, &y, "k", "{\"amount\":200}", &e), 0);
    assert_memory_not_equal(x.fingerprint, y.fingerprint, SHA256_LEN);
}

static void test_prepare_key_255_ok(void **state)
{
    struct idem_request r;
    struct err e;
    char *key = key_of(state, 255, 'k');

    assert_int_equal(prepare(state, &r, key, "{\"amount\":1}", &e), 0);
    assert_int_equal(strlen(r.key), 255);
}

static void test_prepare_key_255_in_body_ok(void **state)
{
    struct idem_request r;
    struct err e;
    char *key = key_of(state, 255, 'b');
    char *body = arena_printf(*state, "{\"amount\":1,\"idempotencyKey\":\"%s\"}", key);

    assert_int_equal(prepare(state, &r, NULL, body, &e), 0);
    assert_string_equal(r.key, key);
}

static void test_prepare_key_256_too_long(void **state)
{
    struct idem_request r;
    struct err e;
    char *key = key_of(state, 256, 'k');
    char *body = arena_printf(*state, "{\"amount\":1,\"idempotencyKey\":\"%s\"}", key);

    assert_int_equal(prepare(state, &r, key, "{\"amount\":1}", &e), -1);
    assert_int_equal(e.code, ERR_INVALID_INPUT);
    assert_int_equal(prepare(state, &r, NULL, body, &e), -1);
    assert_int_equal(e.code, ERR_INVALID_INPUT);
}

static void test_prepare_key_one_char_ok(void **state)
{
    struct idem_request r;
    struct err e;

    assert_int_equal(prepare(state, &r, "x", "{\"amount\":1}", &e), 0);
    assert_string_equal(r.key, "x");
}

static void test_prepare_empty_key_invalid(void **state)
{
    struct idem_request r;
    struct err e;

    assert_int_equal(prepare(state, &r, NULL, "{\"amount\":1,\"idempotencyKey\":\"\"}", &e), -1);
    assert_int_equal(e.code, ERR_INVALID_INPUT);
}

static void test_prepare_printable_ascii_ok(void **state)
{
    /* Every printable ASCII character, space to tilde. */
    char key[96];
    struct idem_request r;
    struct err e;

    for (int i = 0; i < 95; i++)
        key[i] = (char)(0x20 + i);
    key[95] = '\0';
    assert_int_equal(prepare(state, &r, key, "{\"amount\":1}", &e), 0);
    assert_string_equal(r.key, key);
}

static void test_prepare_non_printable_invalid(void **state)
{
    static const char *const bad[] = {"a\tb", "a\nb", "\x01", "ab\x7f", "\x1f"};
    struct idem_request r;
    struct err e;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(prepare(state, &r, bad[i], "{\"amount\":1}", &e), -1);
        assert_int_equal(e.code, ERR_INVALID_INPUT);
    }
}

static void test_prepare_non_printable_in_body_invalid(void **state)
{
    struct idem_request r;
    struct err e;

    assert_int_equal(
        prepare(state, &r, NULL, "{\"amount\":1,\"idempotencyKey\":\"a\\u0007b\"}", &e), -1);
    assert_int_equal(e.code, ERR_INVALID_INPUT);
}

static void test_prepare_non_ascii_invalid(void **state)
{
    struct idem_request r;
    struct err e;

    assert_int_equal(prepare(state, &r, "key-\xc3\xa9", "{\"amount\":1}", &e), -1);
    assert_int_equal(e.code, ERR_INVALID_INPUT);
    assert_int_equal(prepare(state, &r, "\xff", "{\"amount\":1}", &e), -1);
    assert_int_equal(e.code, ERR_INVALID_INPUT);
    assert_int_equal(prepare(state, &r, NULL, "{\"amount\":1,\"idempotencyKey\":\"한글\"}", &e),
                     -1);
    assert_int_equal(e.code, ERR_INVALID_INPUT);
}

static void test_prepare_malformed_body(void **state)
{
    struct idem_request r;
    struct err e;

    assert_int_equal(prepare(state, &r, "k", "{\"amount\":", &e), -1);
    assert_int_equal(e.code, ERR_INVALID_INPUT);
    assert_int_equal(prepare(state, &r, "k", "[]", &e), -1);
    assert_int_equal(e.code, ERR_INVALID_INPUT);
}

/* ---- what is stored (API.md: every outcome of the effect, refusals included) ---- */

static void test_refusals_of_the_effect_are_stored(void **state)
{
    static const enum err_code stored[] = {
        ERR_USER_NOT_FOUND,        ERR_PRODUCT_NOT_FOUND, ERR_COUPON_NOT_FOUND,
        ERR_ORDER_NOT_FOUND,       ERR_OUT_OF_STOCK,      ERR_INSUFFICIENT_BALANCE,
        ERR_BALANCE_LIMIT,         ERR_COUPON_NOT_USABLE, ERR_ORDER_NOT_PAYABLE,
        ERR_ORDER_NOT_CANCELLABLE,
    };

    (void)state;
    for (size_t i = 0; i < sizeof(stored) / sizeof(stored[0]); i++)
        if (!idem_svc_stores_refusal(stored[i]))
            fail_msg("%s is an outcome of the effect and must be stored", err_name(stored[i]));
}

static void test_retryable_answers_are_not_stored(void **state)
{
    /* Decided before the effect ran, a 5xx, a lock time-out, an in-flight duplicate. */
    static const enum err_code not_stored[] = {
        ERR_INVALID_INPUT,
        ERR_INVALID_AMOUNT,
        ERR_IDEMPOTENCY_KEY_MISSING,
        ERR_UNAUTHORIZED,
        ERR_FORBIDDEN,
        ERR_PAYLOAD_TOO_LARGE,
        ERR_UNSUPPORTED_MEDIA_TYPE,
        ERR_IDEMPOTENCY_KEY_REUSED,
        ERR_IDEMPOTENCY_IN_FLIGHT,
        ERR_INTERNAL,
        ERR_UNAVAILABLE,
    };

    (void)state;
    for (size_t i = 0; i < sizeof(not_stored) / sizeof(not_stored[0]); i++)
        if (idem_svc_stores_refusal(not_stored[i]))
            fail_msg("%s must not be stored: the client may retry", err_name(not_stored[i]));
}

static void test_prepare_leaves_the_renderer_to_the_caller(void **state)
{
    struct idem_request r;
    struct err e;

    assert_int_equal(prepare(state, &r, "k", "{\"amount\":1}", &e), 0);
    assert_null(r.render_problem);
    assert_int_equal(r.status, 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_refusals_of_the_effect_are_stored),
        T(test_retryable_answers_are_not_stored),
        T(test_prepare_leaves_the_renderer_to_the_caller),
        T(test_fingerprint_reordered_keys_equal),
        T(test_fingerprint_whitespace_equal),
        T(test_fingerprint_nested_reordered_equal),
        T(test_fingerprint_ignores_idempotency_key),
        T(test_fingerprint_different_values_differ),
        T(test_fingerprint_nested_idempotency_key_counts),
        T(test_fingerprint_is_sha256_of_canonical),
        T(test_fingerprint_rejects_non_object),
        T(test_prepare_key_from_header),
        T(test_prepare_key_from_body),
        T(test_prepare_both_equal),
        T(test_prepare_both_different),
        T(test_prepare_none),
        T(test_prepare_body_key_not_string),
        T(test_prepare_fingerprint_same_for_header_and_body_key),
        T(test_prepare_fingerprint_differs_by_body),
        T(test_prepare_key_255_ok),
        T(test_prepare_key_255_in_body_ok),
        T(test_prepare_key_256_too_long),
        T(test_prepare_key_one_char_ok),
        T(test_prepare_empty_key_invalid),
        T(test_prepare_printable_ascii_ok),
        T(test_prepare_non_printable_invalid),
        T(test_prepare_non_printable_in_body_invalid),
        T(test_prepare_non_ascii_invalid),
        T(test_prepare_malformed_body),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
