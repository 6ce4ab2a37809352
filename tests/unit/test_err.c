#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"

/* The "Error codes" table of API.md, written out by hand so that a drift in err_codes.def shows. */
static const struct {
    const char *name;
    int status;
} contract[] = {
    {"INVALID_INPUT", 400},
    {"INVALID_AMOUNT", 400},
    {"IDEMPOTENCY_KEY_MISSING", 400},
    {"UNAUTHORIZED", 401},
    {"FORBIDDEN", 403},
    {"NOT_FOUND", 404},
    {"USER_NOT_FOUND", 404},
    {"PRODUCT_NOT_FOUND", 404},
    {"COUPON_NOT_FOUND", 404},
    {"ORDER_NOT_FOUND", 404},
    {"METHOD_NOT_ALLOWED", 405},
    {"OUT_OF_STOCK", 409},
    {"INSUFFICIENT_BALANCE", 409},
    {"BALANCE_LIMIT", 409},
    {"CART_FULL", 409},
    {"COUPON_SOLD_OUT", 409},
    {"COUPON_ALREADY_ISSUED", 409},
    {"COUPON_NOT_ACTIVE", 409},
    {"COUPON_NOT_USABLE", 409},
    {"ORDER_NOT_PAYABLE", 409},
    {"ORDER_NOT_CANCELLABLE", 409},
    {"IDEMPOTENCY_IN_FLIGHT", 409},
    {"PAYLOAD_TOO_LARGE", 413},
    {"UNSUPPORTED_MEDIA_TYPE", 415},
    {"IDEMPOTENCY_KEY_REUSED", 422},
    {"INTERNAL", 500},
    {"UNAVAILABLE", 503},
};
#define NCONTRACT (sizeof(contract) / sizeof(contract[0]))

/* The reason phrases of RFC 9110 for the statuses the contract uses. */
static const char *reason_phrase(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return NULL;
    }
}

static void test_every_contract_code_has_its_status(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCONTRACT; i++) {
        enum err_code code = err_from_name(contract[i].name);
        if (code == ERR_CODE_COUNT)
            fail_msg("contract code %s is missing from err_codes.def", contract[i].name);
        if (err_status(code) != contract[i].status)
            fail_msg("%s: status %d, contract says %d", contract[i].name, err_status(code),
                     contract[i].status);
    }
}

static void test_no_codes_beyond_contract(void **state)
{
    (void)state;
    /* Every code but ERR_NONE is in the contract, so none can reach a client unannounced. */
    for (int c = 0; c < ERR_CODE_COUNT; c++) {
        const char *name = err_name((enum err_code)c);
        bool found = c == ERR_NONE;
        for (size_t i = 0; i < NCONTRACT && !found; i++)
            found = !strcmp(contract[i].name, name);
        if (!found)
            fail_msg("code %s is not in the API.md table", name);
    }
    assert_int_equal(ERR_CODE_COUNT, NCONTRACT + 1);
}

static void test_titles_are_reason_phrases(void **state)
{
    (void)state;
    for (int c = 0; c < ERR_CODE_COUNT; c++) {
        if (c == ERR_NONE)
            continue;
        const char *want = reason_phrase(err_status((enum err_code)c));
        assert_non_null(want);
        assert_string_equal(err_title((enum err_code)c), want);
    }
}

static void test_enum_names_match(void **state)
{
    (void)state;
    assert_string_equal(err_name(ERR_INVALID_INPUT), "INVALID_INPUT");
    assert_string_equal(err_name(ERR_COUPON_SOLD_OUT), "COUPON_SOLD_OUT");
    assert_string_equal(err_name(ERR_UNAVAILABLE), "UNAVAILABLE");
    assert_int_equal(err_status(ERR_BALANCE_LIMIT), 409);
    assert_int_equal(err_status(ERR_IDEMPOTENCY_KEY_REUSED), 422);
}

static void test_name_round_trip(void **state)
{
    (void)state;
    for (int c = 0; c < ERR_CODE_COUNT; c++)
        assert_int_equal(err_from_name(err_name((enum err_code)c)), c);
}

static void test_from_name_unknown(void **state)
{
    (void)state;
    assert_int_equal(err_from_name("NO_SUCH_CODE"), ERR_CODE_COUNT);
    assert_int_equal(err_from_name(""), ERR_CODE_COUNT);
    assert_int_equal(err_from_name("invalid_input"), ERR_CODE_COUNT);
    assert_int_equal(err_from_name("INVALID_INPUT "), ERR_CODE_COUNT);
}

static void test_out_of_range_code_is_internal(void **state)
{
    (void)state;
    assert_int_equal(err_status(ERR_CODE_COUNT), 500);
    assert_string_equal(err_name(ERR_CODE_COUNT), "INTERNAL");
    assert_string_equal(err_title(ERR_CODE_COUNT), "Internal Server Error");
}

static void test_set_fills_and_returns_minus_one(void **state)
{
    struct err e;

    (void)state;
    err_clear(&e);
    assert_int_equal(err_set(&e, ERR_OUT_OF_STOCK, "product %d has %s", 7, "none"), -1);
    assert_int_equal(e.code, ERR_OUT_OF_STOCK);
    assert_string_equal(e.detail, "product 7 has none");
}

static void test_set_truncates(void **state)
{
    char long_text[400];
    struct err e;

    (void)state;
    memset(long_text, 'x', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    err_set(&e, ERR_INVALID_INPUT, "%s", long_text);
    assert_int_equal(strlen(e.detail), sizeof(e.detail) - 1);
    assert_int_equal(e.code, ERR_INVALID_INPUT);
}

/* Whether s is well-formed UTF-8 (RFC 3629), written out here independently of err.c. */
static bool valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p) {
        size_t n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3
                             : (*p & 0xf8) == 0xf0 ? 4 : 0;
        if (!n || (n == 2 && *p < 0xc2))
            return false;
        for (size_t i = 1; i < n; i++)
            if ((p[i] & 0xc0) != 0x80)
                return false;
        p += n;
    }
    return true;
}

/* A detail cut at the buffer's end never splits a character: with every alignment of a run
 * of 2-, 3- and 4-byte characters against the cut, the detail stays valid UTF-8. */
static void test_set_truncates_on_character_boundary(void **state)
{
    static const char *const chars[] = {"\xc3\xa9", "\xed\x95\x9c", "\xf0\x9f\x98\x80"};
    char text[600];
    struct err e;

    (void)state;
    for (size_t c = 0; c < 3; c++) {
        for (size_t shift = 0; shift < 4; shift++) {
            size_t len = 0, clen = strlen(chars[c]);
            for (; len < shift; len++)
                text[len] = 'a';
            while (len + clen < sizeof(text)) {
                memcpy(text + len, chars[c], clen);
                len += clen;
            }
            text[len] = '\0';
            err_set(&e, ERR_NOT_FOUND, "%s", text);
            assert_true(valid_utf8(e.detail));
            assert_true(strlen(e.detail) > sizeof(e.detail) - 5);
            err_set(&e, ERR_NOT_FOUND, "short");
            err_prefix(&e, "%s", text + shift);
            if (!valid_utf8(e.detail))
                fail_msg("prefix cut char %zu shift %zu mid-character", c, shift);
        }
    }
    /* Nothing is cut when it fits: a whole character at the very end stays. */
    err_set(&e, ERR_NOT_FOUND, "%s", "caf\xc3\xa9");
    assert_string_equal(e.detail, "caf\xc3\xa9");
}

static void test_clear(void **state)
{
    struct err e;

    (void)state;
    err_set(&e, ERR_INTERNAL, "boom");
    err_clear(&e);
    assert_int_equal(e.code, ERR_NONE);
    assert_string_equal(e.detail, "");
}

static void test_prefix_keeps_code(void **state)
{
    struct err e;

    (void)state;
    err_set(&e, ERR_COUPON_SOLD_OUT, "coupon 2 has no quantity left");
    assert_int_equal(err_prefix(&e, "issue for user %d", 5), -1);
    assert_int_equal(e.code, ERR_COUPON_SOLD_OUT);
    assert_string_equal(e.detail, "issue for user 5: coupon 2 has no quantity left");
}

static void test_prefix_twice(void **state)
{
    struct err e;

    (void)state;
    err_set(&e, ERR_UNAVAILABLE, "c");
    err_prefix(&e, "b");
    err_prefix(&e, "a");
    assert_string_equal(e.detail, "a: b: c");
    assert_int_equal(e.code, ERR_UNAVAILABLE);
}

static void test_prefix_truncates_safely(void **state)
{
    char long_text[300];
    struct err e;

    (void)state;
    memset(long_text, 'd', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    err_set(&e, ERR_INTERNAL, "%s", long_text);
    err_prefix(&e, "%s", long_text);
    assert_int_equal(e.code, ERR_INTERNAL);
    assert_true(strlen(e.detail) < sizeof(e.detail));
    assert_int_equal(strncmp(e.detail, "ddd", 3), 0);
}

static void test_prefix_keeps_start_of_detail(void **state)
{
    char long_text[300];
    struct err e;

    (void)state;
    memset(long_text, 'd', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    err_set(&e, ERR_INTERNAL, "%s", long_text);
    err_prefix(&e, "ctx");
    assert_int_equal(strncmp(e.detail, "ctx: ddd", 8), 0);
    assert_int_equal(strlen(e.detail), sizeof(e.detail) - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_contract_code_has_its_status),
        cmocka_unit_test(test_no_codes_beyond_contract),
        cmocka_unit_test(test_titles_are_reason_phrases),
        cmocka_unit_test(test_enum_names_match),
        cmocka_unit_test(test_name_round_trip),
        cmocka_unit_test(test_from_name_unknown),
        cmocka_unit_test(test_out_of_range_code_is_internal),
        cmocka_unit_test(test_set_fills_and_returns_minus_one),
        cmocka_unit_test(test_set_truncates),
        cmocka_unit_test(test_set_truncates_on_character_boundary),
        cmocka_unit_test(test_clear),
        cmocka_unit_test(test_prefix_keeps_code),
        cmocka_unit_test(test_prefix_twice),
        cmocka_unit_test(test_prefix_truncates_safely),
        cmocka_unit_test(test_prefix_keeps_start_of_detail),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
