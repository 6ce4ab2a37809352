/*
 * Bugs the libFuzzer targets of tests/fuzz/ found, one test each, so that they stay fixed in
 * every build (the minimised inputs are under tests/fuzz/regressions/ too, replayed by
 * scripts/fuzz.sh). Each test names the target and the input it came from.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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

static bool printable_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

struct name_in {
    const char *name;
};

static const struct json_spec name_spec[] = {
    JSON_STR("name", JSON_REQUIRED, 1, 100, struct name_in, name),
    JSON_END,
};

/*
 * fuzz_json_decode, regressions/json_decode/detail-utf8-bad-escape: jansson's error message
 * quotes the bytes near the error, here half of a two-byte UTF-8 character after a backslash,
 * and the detail carried them into the problem response as invalid UTF-8.
 */
static void test_decode_detail_of_bad_escape_is_ascii(void **state)
{
    static const char body[] = "{\"name\":\"\\ud8\xd3\x9b\"}";
    struct name_in in = {0};
    struct err e;

    err_clear(&e);
    assert_int_equal(json_decode(body, sizeof(body) - 1, name_spec, &in, *state, &e), -1);
    assert_int_equal(e.code, ERR_INVALID_INPUT);
    assert_non_null(strstr(e.detail, "malformed JSON"));
    if (!printable_ascii(e.detail))
        fail_msg("detail is not printable ASCII: %s", e.detail);
}

/* fuzz_canonical, regressions/canonical/detail-utf8-bad-escape: the same through the
 * idempotency fingerprint, whose refusal is a 400 with the same detail. */
static void test_fingerprint_detail_of_bad_escape_is_ascii(void **state)
{
    static const char body[] = "{\"\\\xd2\x8a\x12\xf2\xb4ru\x01\"}";
    static const struct json_spec no_fields[] = {JSON_END};
    struct json_keyed keyed;
    char unused;
    char *canonical;
    struct err e;

    err_clear(&e);
    assert_int_equal(json_decode_keyed(body, sizeof(body) - 1, no_fields, &unused,
                                       IDEM_BODY_KEY_FIELD, *state, &keyed, &e),
                     -1);
    assert_int_equal(e.code, ERR_INVALID_INPUT);
    if (!printable_ascii(e.detail))
        fail_msg("detail is not printable ASCII: %s", e.detail);
    err_clear(&e);
    assert_int_equal(json_canonical(body, sizeof(body) - 1, NULL, *state, &canonical, &e), -1);
    if (!printable_ascii(e.detail))
        fail_msg("detail is not printable ASCII: %s", e.detail);
}

/* Control characters in the quoted text (a raw newline in a string) must not reach a log line
 * or a detail either. */
static void test_decode_detail_of_control_character_is_ascii(void **state)
{
    static const char body[] = "{\"name\":\"a\nb\"}";
    struct name_in in = {0};
    struct err e;

    err_clear(&e);
    assert_int_equal(json_decode(body, sizeof(body) - 1, name_spec, &in, *state, &e), -1);
    if (!printable_ascii(e.detail))
        fail_msg("detail is not printable ASCII: %s", e.detail);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_decode_detail_of_bad_escape_is_ascii),
        T(test_fingerprint_detail_of_bad_escape_is_ascii),
        T(test_decode_detail_of_control_character_is_ascii),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
