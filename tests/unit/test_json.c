#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/arena.h"
#include "core/err.h"
#include "core/json.h"

/* ---- fixtures ---- */

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

struct charge_in {
    int64_t amount_krw;
};

static const struct json_spec charge_spec[] = {
    JSON_INT("amount", JSON_REQUIRED, 1, 10000000, ERR_INVALID_AMOUNT, struct charge_in,
             amount_krw),
    JSON_END,
};

struct item_in {
    int64_t product_id;
    int64_t quantity;
};

static const struct json_spec item_spec[] = {
    JSON_INT("productId", JSON_REQUIRED, 1, INT64_MAX, ERR_INVALID_INPUT, struct item_in,
             product_id),
    JSON_INT("quantity", JSON_REQUIRED, 1, 1000, ERR_INVALID_INPUT, struct item_in, quantity),
    JSON_END,
};

struct order_in {
    int64_t user_id;
    struct json_objects items;
    int64_t coupon_id;
    bool has_coupon;
    const char *note;
    bool has_note;
};

static const struct json_spec order_spec[] = {
    JSON_INT("userId", JSON_REQUIRED, 1, INT64_MAX, ERR_INVALID_INPUT, struct order_in, user_id),
    JSON_OBJECTS("items", JSON_REQUIRED, 1, 3, struct order_in, items, item_spec, struct item_in),
    JSON_INT_P("couponId", 0, 1, INT64_MAX, ERR_INVALID_INPUT, struct order_in, coupon_id,
               has_coupon),
    JSON_STR_P("note", 0, 0, 10, struct order_in, note, has_note),
    JSON_END,
};

struct name_in {
    const char *name;
};

static const struct json_spec name_spec[] = {
    JSON_STR("name", JSON_REQUIRED, 1, 2, struct name_in, name),
    JSON_END,
};

struct wide_in {
    int64_t n;
};

static const struct json_spec wide_spec[] = {
    JSON_INT("n", JSON_REQUIRED, INT64_MIN, INT64_MAX, ERR_INVALID_INPUT, struct wide_in, n),
    JSON_END,
};

/* Decodes a NUL-terminated body; out must be zeroed by the caller. */
static int decode(const char *body, const struct json_spec *spec, void *out, void **state,
                  struct err *e)
{
    err_clear(e);
    return json_decode(body, strlen(body), spec, out, *state, e);
}

/* Asserts that body fails with code and that the detail mentions needle (may be NULL). */
static void expect_fail(const char *body, const struct json_spec *spec, void *out, size_t size,
                        void **state, enum err_code code, const char *needle)
{
    struct err e;

    memset(out, 0, size);
    if (decode(body, spec, out, state, &e) != -1)
        fail_msg("%s: expected failure", body);
    if (e.code != code)
        fail_msg("%s: code %s, expected %s (detail: %s)", body, err_name(e.code), err_name(code),
                 e.detail);
    if (needle && !strstr(e.detail, needle))
        fail_msg("%s: detail '%s' does not mention '%s'", body, e.detail, needle);
}

static void expect_charge_fail(const char *body, void **state, enum err_code code,
                               const char *needle)
{
    struct charge_in in;

    expect_fail(body, charge_spec, &in, sizeof(in), state, code, needle);
}

static void expect_order_fail(const char *body, void **state, const char *needle)
{
    struct order_in in;

    expect_fail(body, order_spec, &in, sizeof(in), state, ERR_INVALID_INPUT, needle);
}

/* ---- json_decode: integers ---- */

static void test_decode_int(void **state)
{
    struct charge_in in = {0};
    struct err e;

    assert_int_equal(decode("{\"amount\":5000}", charge_spec, &in, state, &e), 0);
    assert_int_equal(in.amount_krw, 5000);
}

static void test_decode_int_bounds_inclusive(void **state)
{
    struct charge_in in = {0};
    struct err e;

    assert_int_equal(decode("{\"amount\":1}", charge_spec, &in, state, &e), 0);
    assert_int_equal(in.amount_krw, 1);
    assert_int_equal(decode("{\"amount\":10000000}", charge_spec, &in, state, &e), 0);
    assert_int_equal(in.amount_krw, 10000000);
}

static void test_decode_int_range_uses_range_code(void **state)
{
    expect_charge_fail("{\"amount\":0}", state, ERR_INVALID_AMOUNT, "amount");
    expect_charge_fail("{\"amount\":-1}", state, ERR_INVALID_AMOUNT, "amount");
    expect_charge_fail("{\"amount\":10000001}", state, ERR_INVALID_AMOUNT, "amount");
    expect_charge_fail("{\"amount\":9223372036854775807}", state, ERR_INVALID_AMOUNT, "amount");
}

static void test_decode_int64_extremes(void **state)
{
    struct wide_in in = {0};
    struct err e;

    assert_int_equal(decode("{\"n\":9223372036854775807}", wide_spec, &in, state, &e), 0);
    assert_int_equal(in.n, INT64_MAX);
    assert_int_equal(decode("{\"n\":-9223372036854775808}", wide_spec, &in, state, &e), 0);
    assert_int_equal(in.n, INT64_MIN);
}

static void test_decode_real_for_int_is_wrong_type(void **state)
{
    expect_charge_fail("{\"amount\":1.0}", state, ERR_INVALID_INPUT, "amount");
    expect_charge_fail("{\"amount\":1e3}", state, ERR_INVALID_INPUT, "amount");
    expect_charge_fail("{\"amount\":1.5}", state, ERR_INVALID_INPUT, "amount");
}

static void test_decode_too_big_integer(void **state)
{
    struct wide_in in;

    expect_charge_fail("{\"amount\":99999999999999999999}", state, ERR_INVALID_INPUT, NULL);
    expect_fail("{\"n\":9223372036854775808}", wide_spec, &in, sizeof(in), state, ERR_INVALID_INPUT,
                NULL);
    expect_fail("{\"n\":-9223372036854775809}", wide_spec, &in, sizeof(in), state,
                ERR_INVALID_INPUT, NULL);
}

static void test_decode_other_types_for_int(void **state)
{
    expect_charge_fail("{\"amount\":\"5000\"}", state, ERR_INVALID_INPUT, "amount");
    expect_charge_fail("{\"amount\":true}", state, ERR_INVALID_INPUT, "amount");
    expect_charge_fail("{\"amount\":[1]}", state, ERR_INVALID_INPUT, "amount");
    expect_charge_fail("{\"amount\":{}}", state, ERR_INVALID_INPUT, "amount");
}

/* ---- json_decode: required, null, unknown, present ---- */

static void test_decode_missing_required(void **state)
{
    expect_charge_fail("{}", state, ERR_INVALID_INPUT, "'amount' is required");
    expect_charge_fail("{\"amounts\":5}", state, ERR_INVALID_INPUT, "amount");
}

static void test_decode_null_is_absent(void **state)
{
    struct order_in in = {0};
    struct err e;

    expect_charge_fail("{\"amount\":null}", state, ERR_INVALID_INPUT, "'amount' is required");
    assert_int_equal(decode("{\"userId\":1,\"items\":[{\"productId\":2,\"quantity\":3}],"
                            "\"couponId\":null,\"note\":null}",
                            order_spec, &in, state, &e),
                     0);
    assert_false(in.has_coupon);
    assert_int_equal(in.coupon_id, 0);
    assert_false(in.has_note);
    assert_null(in.note);
}

static void test_decode_unknown_fields_ignored(void **state)
{
    struct charge_in in = {0};
    struct err e;

    assert_int_equal(decode("{\"x\":[1,{\"y\":null}],\"amount\":7,\"idempotencyKey\":\"k\","
                            "\"z\":1.5}",
                            charge_spec, &in, state, &e),
                     0);
    assert_int_equal(in.amount_krw, 7);
}

static void test_decode_present_flag_set(void **state)
{
    struct order_in in = {0};
    struct err e;

    assert_int_equal(decode("{\"userId\":1,\"items\":[{\"productId\":2,\"quantity\":3}],"
                            "\"couponId\":9,\"note\":\"\"}",
                            order_spec, &in, state, &e),
                     0);
    assert_true(in.has_coupon);
    assert_int_equal(in.coupon_id, 9);
    assert_true(in.has_note);
    assert_string_equal(in.note, "");
}

static void test_decode_present_flag_absent(void **state)
{
    struct order_in in = {0};
    struct err e;

    assert_int_equal(decode("{\"userId\":1,\"items\":[{\"productId\":2,\"quantity\":3}]}",
                            order_spec, &in, state, &e),
                     0);
    assert_false(in.has_coupon);
    assert_false(in.has_note);
}

static void test_decode_present_flag_range_error(void **state)
{
    expect_order_fail("{\"userId\":1,\"items\":[{\"productId\":2,\"quantity\":3}],\"couponId\":0}",
                      state, "couponId");
}

/* ---- json_decode: body shape ---- */

static void test_decode_malformed(void **state)
{
    expect_charge_fail("{", state, ERR_INVALID_INPUT, "malformed");
    expect_charge_fail("{\"amount\":1,}", state, ERR_INVALID_INPUT, "malformed");
    expect_charge_fail("{'amount':1}", state, ERR_INVALID_INPUT, "malformed");
    expect_charge_fail("{\"amount\":1} x", state, ERR_INVALID_INPUT, "malformed");
    expect_charge_fail("{\"amount\":1}{}", state, ERR_INVALID_INPUT, "malformed");
    expect_charge_fail("{\"amount\":01}", state, ERR_INVALID_INPUT, "malformed");
    expect_charge_fail("nul", state, ERR_INVALID_INPUT, NULL);
    expect_charge_fail("   ", state, ERR_INVALID_INPUT, NULL);
}

static void test_decode_empty_body(void **state)
{
    struct charge_in in = {0};
    struct err e;

    err_clear(&e);
    assert_int_equal(json_decode("", 0, charge_spec, &in, *state, &e), -1);
    assert_int_equal(e.code, ERR_INVALID_INPUT);
}

static void test_decode_not_an_object(void **state)
{
    expect_charge_fail("[]", state, ERR_INVALID_INPUT, "object");
    expect_charge_fail("[{\"amount\":1}]", state, ERR_INVALID_INPUT, "object");
    expect_charge_fail("1", state, ERR_INVALID_INPUT, NULL);
    expect_charge_fail("\"amount\"", state, ERR_INVALID_INPUT, NULL);
    expect_charge_fail("null", state, ERR_INVALID_INPUT, NULL);
    expect_charge_fail("true", state, ERR_INVALID_INPUT, NULL);
}

static void test_decode_duplicate_keys(void **state)
{
    expect_charge_fail("{\"amount\":1,\"amount\":9}", state, ERR_INVALID_INPUT, NULL);
    expect_charge_fail("{\"amount\":1,\"other\":2,\"other\":3}", state, ERR_INVALID_INPUT, NULL);
    expect_order_fail("{\"userId\":1,\"items\":[{\"productId\":2,\"productId\":3,"
                      "\"quantity\":1}]}",
                      state, NULL);
}

static void test_decode_invalid_utf8(void **state)
{
    struct name_in in;

    /* A lone continuation byte, an overlong '/', a truncated sequence, an encoded surrogate. */
    expect_fail("{\"name\":\"\x80\"}", name_spec, &in, sizeof(in), state, ERR_INVALID_INPUT, NULL);
    expect_fail("{\"name\":\"\xc0\xaf\"}", name_spec, &in, sizeof(in), state, ERR_INVALID_INPUT,
                NULL);
    expect_fail("{\"name\":\"\xed\x95\"}", name_spec, &in, sizeof(in), state, ERR_INVALID_INPUT,
                NULL);
    expect_fail("{\"name\":\"\xed\xa0\x80\"}", name_spec, &in, sizeof(in), state, ERR_INVALID_INPUT,
                NULL);
    expect_fail("{\"name\":\"\xff\"}", name_spec, &in, sizeof(in), state, ERR_INVALID_INPUT, NULL);
    /* Invalid bytes anywhere, even in a field nobody reads, make the body invalid. */
    expect_fail("{\"name\":\"ok\",\"x\xff\":1}", name_spec, &in, sizeof(in), state,
                ERR_INVALID_INPUT, NULL);
}

static void test_decode_nul_escape_rejected(void **state)
{
    struct name_in in;

    /* A NUL inside a string would silently truncate it in C. */
    expect_fail("{\"name\":\"a\\u0000\"}", name_spec, &in, sizeof(in), state, ERR_INVALID_INPUT,
                NULL);
}

static void test_decode_uses_len_not_nul(void **state)
{
    static const char body[] = "{\"amount\":5}trailing garbage";
    struct charge_in in = {0};
    struct err e;

    err_clear(&e);
    assert_int_equal(json_decode(body, 12, charge_spec, &in, *state, &e), 0);
    assert_int_equal(in.amount_krw, 5);
}

/* ---- json_decode: strings ---- */

static void test_decode_string_copied(void **state)
{
    char body[] = "{\"name\":\"ab\"}";
    struct name_in in = {0};
    struct err e;

    assert_int_equal(decode(body, name_spec, &in, state, &e), 0);
    assert_string_equal(in.name, "ab");
    assert_true(in.name < body || in.name >= body + sizeof(body));
    memset(body, 'x', sizeof(body) - 1);
    assert_string_equal(in.name, "ab");
}

static void test_decode_string_length_in_code_points(void **state)
{
    struct name_in in = {0};
    struct err e;

    assert_int_equal(decode("{\"name\":\"한글\"}", name_spec, &in, state, &e), 0);
    assert_string_equal(in.name, "한글");
    assert_int_equal(decode("{\"name\":\"\\ud55c\\uae00\"}", name_spec, &in, state, &e), 0);
    assert_string_equal(in.name, "한글");
    /* U+1F600 is four bytes, one code point. */
    assert_int_equal(decode("{\"name\":\"\xf0\x9f\x98\x80\"}", name_spec, &in, state, &e), 0);
    assert_int_equal(decode("{\"name\":\"\\ud83d\\ude00a\"}", name_spec, &in, state, &e), 0);
}

static void test_decode_string_too_long(void **state)
{
    struct name_in in;

    expect_fail("{\"name\":\"한글a\"}", name_spec, &in, sizeof(in), state, ERR_INVALID_INPUT,
                "name");
    expect_fail("{\"name\":\"abc\"}", name_spec, &in, sizeof(in), state, ERR_INVALID_INPUT, "name");
}

static void test_decode_string_too_short(void **state)
{
    struct name_in in;

    expect_fail("{\"name\":\"\"}", name_spec, &in, sizeof(in), state, ERR_INVALID_INPUT, "name");
}

static void test_decode_string_wrong_type(void **state)
{
    struct name_in in;

    expect_fail("{\"name\":12}", name_spec, &in, sizeof(in), state, ERR_INVALID_INPUT, "name");
    expect_fail("{\"name\":[\"a\"]}", name_spec, &in, sizeof(in), state, ERR_INVALID_INPUT, "name");
    expect_fail("{\"name\":false}", name_spec, &in, sizeof(in), state, ERR_INVALID_INPUT, "name");
}

/* ---- json_decode: arrays of objects ---- */

static void test_decode_objects(void **state)
{
    struct order_in in = {0};
    struct err e;

    assert_int_equal(decode("{\"userId\":4,\"items\":[{\"productId\":10,\"quantity\":1},"
                            "{\"quantity\":1000,\"productId\":11}]}",
                            order_spec, &in, state, &e),
                     0);
    assert_int_equal(in.user_id, 4);
    assert_int_equal(in.items.count, 2);
    const struct item_in *items = in.items.items;
    assert_int_equal(items[0].product_id, 10);
    assert_int_equal(items[0].quantity, 1);
    assert_int_equal(items[1].product_id, 11);
    assert_int_equal(items[1].quantity, 1000);
}

static void test_decode_objects_max_count(void **state)
{
    struct order_in in = {0};
    struct err e;

    assert_int_equal(decode("{\"userId\":4,\"items\":[{\"productId\":1,\"quantity\":1},"
                            "{\"productId\":2,\"quantity\":1},{\"productId\":3,\"quantity\":1}]}",
                            order_spec, &in, state, &e),
                     0);
    assert_int_equal(in.items.count, 3);
}

static void test_decode_objects_count_bounds(void **state)
{
    expect_order_fail("{\"userId\":4,\"items\":[]}", state, "items");
    expect_order_fail("{\"userId\":4,\"items\":[{\"productId\":1,\"quantity\":1},"
                      "{\"productId\":2,\"quantity\":1},{\"productId\":3,\"quantity\":1},"
                      "{\"productId\":4,\"quantity\":1}]}",
                      state, "items");
}

static void test_decode_objects_error_names_path(void **state)
{
    expect_order_fail("{\"userId\":4,\"items\":[{\"productId\":1,\"quantity\":1},"
                      "{\"productId\":2,\"quantity\":1001}]}",
                      state, "items[1].quantity");
    expect_order_fail("{\"userId\":4,\"items\":[{\"productId\":1,\"quantity\":1},"
                      "{\"productId\":2}]}",
                      state, "items[1].quantity");
    expect_order_fail("{\"userId\":4,\"items\":[{\"productId\":\"1\",\"quantity\":1}]}", state,
                      "items[0].productId");
    expect_order_fail("{\"userId\":4,\"items\":[{\"productId\":1.0,\"quantity\":1}]}", state,
                      "items[0].productId");
}

static void test_decode_objects_wrong_types(void **state)
{
    expect_order_fail("{\"userId\":4,\"items\":{\"productId\":1,\"quantity\":1}}", state, "items");
    expect_order_fail("{\"userId\":4,\"items\":\"x\"}", state, "items");
    expect_order_fail("{\"userId\":4,\"items\":[1]}", state, "items[0]");
    expect_order_fail("{\"userId\":4,\"items\":[{\"productId\":1,\"quantity\":1},null]}", state,
                      "items[1]");
}

static void test_decode_objects_missing(void **state)
{
    expect_order_fail("{\"userId\":4}", state, "'items' is required");
    expect_order_fail("{\"userId\":4,\"items\":null}", state, "'items' is required");
}

/* ---- json_canonical ---- */

static const char *canonical(void **state, const char *body, const char *omit)
{
    char *out = NULL;
    struct err e;

    err_clear(&e);
    if (json_canonical(body, strlen(body), omit, *state, &out, &e))
        fail_msg("json_canonical(%s): %s", body, e.detail);
    return out;
}

static void test_canonical_sorts_and_compacts(void **state)
{
    assert_string_equal(canonical(state, " {\"b\" : 1,\n\t\"a\":[ 1, 2 ]} ", NULL),
                        "{\"a\":[1,2],\"b\":1}");
}

static void test_canonical_order_and_whitespace_independent(void **state)
{
    const char *x =
        canonical(state, "{\"userId\":1,\"items\":[{\"productId\":2,\"quantity\":3}]}", NULL);
    const char *y = canonical(
        state, "{ \"items\" : [ { \"quantity\" : 3 , \"productId\" : 2 } ] ,\r\n \"userId\":1 }",
        NULL);

    assert_string_equal(x, y);
}

static void test_canonical_nested_keys_sorted(void **state)
{
    assert_string_equal(canonical(state, "{\"x\":{\"b\":1,\"a\":{\"d\":null,\"c\":true}}}", NULL),
                        "{\"x\":{\"a\":{\"c\":true,\"d\":null},\"b\":1}}");
}

static void test_canonical_array_order_kept(void **state)
{
    assert_string_not_equal(canonical(state, "{\"a\":[1,2]}", NULL),
                            canonical(state, "{\"a\":[2,1]}", NULL));
}

static void test_canonical_string_escapes_normalised(void **state)
{
    assert_string_equal(canonical(state, "{\"s\":\"\\u0041\\/\"}", NULL),
                        canonical(state, "{\"s\":\"A/\"}", NULL));
    assert_string_equal(canonical(state, "{\"s\":\"한\"}", NULL),
                        canonical(state, "{\"s\":\"\\ud55c\"}", NULL));
}

static void test_canonical_values_differ(void **state)
{
    assert_string_not_equal(canonical(state, "{\"amount\":1}", NULL),
                            canonical(state, "{\"amount\":2}", NULL));
    assert_string_not_equal(canonical(state, "{\"amount\":1}", NULL),
                            canonical(state, "{\"amount\":\"1\"}", NULL));
    assert_string_not_equal(canonical(state, "{\"a\":1}", NULL),
                            canonical(state, "{\"b\":1}", NULL));
}

static void test_canonical_omit_key(void **state)
{
    assert_string_equal(
        canonical(state, "{\"idempotencyKey\":\"k1\",\"amount\":5}", "idempotencyKey"),
        "{\"amount\":5}");
    assert_string_equal(canonical(state, "{\"amount\":5}", "idempotencyKey"), "{\"amount\":5}");
    assert_string_equal(canonical(state, "{\"idempotencyKey\":\"k1\"}", "idempotencyKey"), "{}");
}

static void test_canonical_omit_key_top_level_only(void **state)
{
    assert_string_equal(canonical(state, "{\"x\":{\"idempotencyKey\":1}}", "idempotencyKey"),
                        "{\"x\":{\"idempotencyKey\":1}}");
}

static void test_canonical_without_omit_keeps_all(void **state)
{
    assert_string_equal(canonical(state, "{\"idempotencyKey\":\"k\"}", NULL),
                        "{\"idempotencyKey\":\"k\"}");
}

static void test_canonical_rejects_bad_bodies(void **state)
{
    static const char *const bad[] = {"", "{", "[]", "1", "{\"a\":1,\"a\":1}", "{\"a\":\"\xff\"}"};
    char *out = NULL;
    struct err e;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err_clear(&e);
        if (json_canonical(bad[i], strlen(bad[i]), NULL, *state, &out, &e) != -1)
            fail_msg("json_canonical(%s) should fail", bad[i]);
        assert_int_equal(e.code, ERR_INVALID_INPUT);
    }
}

/* ---- json_get_string ---- */

static void test_get_string_present(void **state)
{
    static const char body[] = "{\"amount\":1,\"idempotencyKey\":\"abc-1\"}";
    const char *out = NULL;
    struct err e;

    assert_int_equal(json_get_string(body, strlen(body), "idempotencyKey", *state, &out, &e), 0);
    assert_string_equal(out, "abc-1");
}

static void test_get_string_unescapes(void **state)
{
    static const char body[] = "{\"k\":\"a\\\"b\\u00e9\"}";
    const char *out = NULL;
    struct err e;

    assert_int_equal(json_get_string(body, strlen(body), "k", *state, &out, &e), 0);
    assert_string_equal(out, "a\"b\xc3\xa9");
}

static void test_get_string_absent_or_null(void **state)
{
    static const char absent[] = "{\"amount\":1}";
    static const char null[] = "{\"k\":null}";
    const char *out = "sentinel";
    struct err e;

    assert_int_equal(json_get_string(absent, strlen(absent), "k", *state, &out, &e), 0);
    assert_null(out);
    out = "sentinel";
    assert_int_equal(json_get_string(null, strlen(null), "k", *state, &out, &e), 0);
    assert_null(out);
}

static void test_get_string_wrong_type(void **state)
{
    static const char body[] = "{\"k\":12}";
    const char *out = NULL;
    struct err e;

    err_clear(&e);
    assert_int_equal(json_get_string(body, strlen(body), "k", *state, &out, &e), -1);
    assert_int_equal(e.code, ERR_INVALID_INPUT);
    assert_non_null(strstr(e.detail, "k"));
}

static void test_get_string_not_object(void **state)
{
    static const char body[] = "[\"k\"]";
    const char *out = NULL;
    struct err e;

    err_clear(&e);
    assert_int_equal(json_get_string(body, strlen(body), "k", *state, &out, &e), -1);
    assert_int_equal(e.code, ERR_INVALID_INPUT);
}

/* ---- writer ---- */

static const char *written(struct json_w *w)
{
    size_t len = 0;
    const char *text = json_w_text(w, &len);

    assert_int_equal(len, strlen(text));
    return text;
}

static void test_writer_empty_object(void **state)
{
    struct json_w w;

    json_w_init(&w, *state);
    json_w_obj_begin(&w, NULL);
    json_w_obj_end(&w);
    assert_string_equal(written(&w), "{}");
}

static void test_writer_empty_array(void **state)
{
    struct json_w w;

    json_w_init(&w, *state);
    json_w_obj_begin(&w, NULL);
    json_w_arr_begin(&w, "a");
    json_w_arr_end(&w);
    json_w_obj_end(&w);
    assert_string_equal(written(&w), "{\"a\":[]}");
}

static void test_writer_nesting_and_commas(void **state)
{
    struct json_w w;

    json_w_init(&w, *state);
    json_w_obj_begin(&w, NULL);
    json_w_int(&w, "a", 1);
    json_w_arr_begin(&w, "b");
    json_w_int(&w, NULL, 1);
    json_w_str(&w, NULL, "x");
    json_w_obj_begin(&w, NULL);
    json_w_null(&w, "c");
    json_w_obj_end(&w);
    json_w_obj_begin(&w, NULL);
    json_w_obj_end(&w);
    json_w_arr_end(&w);
    json_w_obj_begin(&w, "d");
    json_w_bool(&w, "e", true);
    json_w_bool(&w, "f", false);
    json_w_obj_end(&w);
    json_w_int(&w, "g", -5);
    json_w_obj_end(&w);
    assert_string_equal(written(&w),
                        "{\"a\":1,\"b\":[1,\"x\",{\"c\":null},{}],\"d\":{\"e\":true,\"f\":false},"
                        "\"g\":-5}");
}

static void test_writer_top_level_array(void **state)
{
    struct json_w w;

    json_w_init(&w, *state);
    json_w_arr_begin(&w, NULL);
    json_w_arr_begin(&w, NULL);
    json_w_arr_end(&w);
    json_w_int(&w, NULL, 2);
    json_w_arr_end(&w);
    assert_string_equal(written(&w), "[[],2]");
}

static void test_writer_int64_extremes(void **state)
{
    struct json_w w;

    json_w_init(&w, *state);
    json_w_arr_begin(&w, NULL);
    json_w_int(&w, NULL, INT64_MIN);
    json_w_int(&w, NULL, INT64_MAX);
    json_w_int(&w, NULL, 0);
    json_w_arr_end(&w);
    assert_string_equal(written(&w), "[-9223372036854775808,9223372036854775807,0]");
}

static void test_writer_escapes_quotes_and_backslash(void **state)
{
    struct json_w w;

    json_w_init(&w, *state);
    json_w_obj_begin(&w, NULL);
    json_w_str(&w, "s", "say \"hi\" \\ bye");
    json_w_obj_end(&w);
    assert_string_equal(written(&w), "{\"s\":\"say \\\"hi\\\" \\\\ bye\"}");
}

static void test_writer_escapes_control_chars(void **state)
{
    struct json_w w;

    json_w_init(&w, *state);
    json_w_obj_begin(&w, NULL);
    json_w_str(&w, "s",
               "a\nb\rc\td\x01"
               "e\x1f"
               "f\b");
    json_w_obj_end(&w);
    assert_string_equal(written(&w), "{\"s\":\"a\\nb\\rc\\td\\u0001e\\u001ff\\u0008\"}");
}

static void test_writer_escapes_keys(void **state)
{
    struct json_w w;

    json_w_init(&w, *state);
    json_w_obj_begin(&w, NULL);
    json_w_int(&w, "a\"b\n", 1);
    json_w_obj_end(&w);
    assert_string_equal(written(&w), "{\"a\\\"b\\n\":1}");
}

static void test_writer_utf8_passthrough(void **state)
{
    struct json_w w;

    json_w_init(&w, *state);
    json_w_obj_begin(&w, NULL);
    json_w_str(&w, "name", "한글 \xf0\x9f\x98\x80 caf\xc3\xa9 /\x7f");
    json_w_obj_end(&w);
    assert_string_equal(written(&w), "{\"name\":\"한글 \xf0\x9f\x98\x80 caf\xc3\xa9 /\x7f\"}");
}

static void test_writer_empty_string(void **state)
{
    struct json_w w;

    json_w_init(&w, *state);
    json_w_arr_begin(&w, NULL);
    json_w_str(&w, NULL, "");
    json_w_arr_end(&w);
    assert_string_equal(written(&w), "[\"\"]");
}

static void test_writer_output_round_trips(void **state)
{
    /* What the writer produces is valid JSON that our decoder reads back. */
    static const struct json_spec spec[] = {
        JSON_STR("s", JSON_REQUIRED, 0, 100, struct name_in, name),
        JSON_END,
    };
    static const char tricky[] = "\"\\/\x01\x1f\n한글";
    struct name_in in = {0};
    struct json_w w;
    struct err e;
    size_t len;

    json_w_init(&w, *state);
    json_w_obj_begin(&w, NULL);
    json_w_str(&w, "s", tricky);
    json_w_obj_end(&w);
    const char *text = json_w_text(&w, &len);
    assert_int_equal(json_decode(text, len, spec, &in, *state, &e), 0);
    assert_string_equal(in.name, tricky);
}

static void test_writer_grows(void **state)
{
    struct json_w w;
    size_t len;

    json_w_init(&w, *state);
    json_w_arr_begin(&w, NULL);
    for (int i = 0; i < 2000; i++)
        json_w_int(&w, NULL, 1234567);
    json_w_arr_end(&w);
    const char *text = json_w_text(&w, &len);
    assert_int_equal(len, 2 + 2000 * 7 + 1999);
    assert_int_equal(strlen(text), len);
    assert_memory_equal(text, "[1234567,1234567,", 17);
    assert_memory_equal(text + len - 9, ",1234567]", 9);
}

static void test_writer_deep_nesting(void **state)
{
    struct json_w w;

    json_w_init(&w, *state);
    for (int i = 0; i < 15; i++)
        json_w_arr_begin(&w, NULL);
    for (int i = 0; i < 15; i++)
        json_w_arr_end(&w);
    assert_string_equal(written(&w), "[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]");
}

static void test_writer_time(void **state)
{
    struct json_w w;

    json_w_init(&w, *state);
    json_w_obj_begin(&w, NULL);
    json_w_time(&w, "epoch", 0);
    json_w_time(&w, "at", 1795470017LL * 1000000 + 999999); /* fraction is dropped */
    json_w_time(&w, "before", -1);
    json_w_time_or_null(&w, "paidAt", 1709208000LL * 1000000, false);
    json_w_time_or_null(&w, "usedAt", 123, true);
    json_w_obj_end(&w);
    assert_string_equal(written(&w), "{\"epoch\":\"1970-01-01T00:00:00Z\","
                                     "\"at\":\"2026-11-23T21:40:17Z\","
                                     "\"before\":\"1969-12-31T23:59:59Z\","
                                     "\"paidAt\":\"2024-02-29T12:00:00Z\","
                                     "\"usedAt\":null}");
}

static void test_quote_directly(void **state)
{
    struct buf b;

    buf_init(&b, *state, 4);
    json_quote(&b, "x\"y");
    buf_addch(&b, ' ');
    json_quote(&b, "");
    assert_string_equal(b.data, "\"x\\\"y\" \"\"");
    assert_int_equal(b.len, strlen(b.data));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/* The writer's strings are valid UTF-8 whatever they were given: ill-formed bytes become
 * U+FFFD, well-formed ones pass unchanged. */
static void test_quote_invalid_utf8(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"a\xff" "b", "\"a\\ufffdb\""},
        {"\xc0\xaf", "\"\\ufffd\\ufffd\""},          /* overlong '/' */
        {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""}, /* a surrogate */
        {"\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""},
        {"\xe2\x82", "\"\\ufffd\\ufffd\""},             /* cut short */
        {"\xe2\x82\xac", "\"\xe2\x82\xac\""},           /* the euro sign */
        {"\xf0\x9f\x98\x80!", "\"\xf0\x9f\x98\x80!\""},
        {"\xc3\xa9\x80", "\"\xc3\xa9\\ufffd\""},
    };
    struct arena *a = *state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct buf b;
        buf_init(&b, a, 16);
        json_quote(&b, cases[i].in);
        if (strcmp(b.data, cases[i].out))
            fail_msg("case %zu: got %s, want %s", i, b.data, cases[i].out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_decode_int),
        T(test_quote_invalid_utf8),
        T(test_decode_int_bounds_inclusive),
        T(test_decode_int_range_uses_range_code),
        T(test_decode_int64_extremes),
        T(test_decode_real_for_int_is_wrong_type),
        T(test_decode_too_big_integer),
        T(test_decode_other_types_for_int),
        T(test_decode_missing_required),
        T(test_decode_null_is_absent),
        T(test_decode_unknown_fields_ignored),
        T(test_decode_present_flag_set),
        T(test_decode_present_flag_absent),
        T(test_decode_present_flag_range_error),
        T(test_decode_malformed),
        T(test_decode_empty_body),
        T(test_decode_not_an_object),
        T(test_decode_duplicate_keys),
        T(test_decode_invalid_utf8),
        T(test_decode_nul_escape_rejected),
        T(test_decode_uses_len_not_nul),
        T(test_decode_string_copied),
        T(test_decode_string_length_in_code_points),
        T(test_decode_string_too_long),
        T(test_decode_string_too_short),
        T(test_decode_string_wrong_type),
        T(test_decode_objects),
        T(test_decode_objects_max_count),
        T(test_decode_objects_count_bounds),
        T(test_decode_objects_error_names_path),
        T(test_decode_objects_wrong_types),
        T(test_decode_objects_missing),
        T(test_canonical_sorts_and_compacts),
        T(test_canonical_order_and_whitespace_independent),
        T(test_canonical_nested_keys_sorted),
        T(test_canonical_array_order_kept),
        T(test_canonical_string_escapes_normalised),
        T(test_canonical_values_differ),
        T(test_canonical_omit_key),
        T(test_canonical_omit_key_top_level_only),
        T(test_canonical_without_omit_keeps_all),
        T(test_canonical_rejects_bad_bodies),
        T(test_get_string_present),
        T(test_get_string_unescapes),
        T(test_get_string_absent_or_null),
        T(test_get_string_wrong_type),
        T(test_get_string_not_object),
        T(test_writer_empty_object),
        T(test_writer_empty_array),
        T(test_writer_nesting_and_commas),
        T(test_writer_top_level_array),
        T(test_writer_int64_extremes),
        T(test_writer_escapes_quotes_and_backslash),
        T(test_writer_escapes_control_chars),
        T(test_writer_escapes_keys),
        T(test_writer_utf8_passthrough),
        T(test_writer_empty_string),
        T(test_writer_output_round_trips),
        T(test_writer_grows),
        T(test_writer_deep_nesting),
        T(test_writer_time),
        T(test_quote_directly),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
