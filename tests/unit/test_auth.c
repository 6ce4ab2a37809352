#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jwt.h>

#include "core/err.h"
#include "http/auth.h"

static const char secret[] = "unit-test-secret-0123456789abcdef";
#define NOW 1767225600 /* 2026-01-01T00:00:00Z */

/* Verifies "Bearer <token>"; token may be NULL for a NULL header. */
static int verify_token(const char *token, int64_t now_s, struct auth *out, struct err *e)
{
    char header[8192];

    err_clear(e);
    if (!token)
        return auth_verify(secret, NULL, now_s, out, e);
    int n = snprintf(header, sizeof(header), "Bearer %s", token);
    assert_true(n > 0 && (size_t)n < sizeof(header));
    return auth_verify(secret, header, now_s, out, e);
}

/* Verifies a header value as given. */
static int verify_header(const char *header, struct auth *out, struct err *e)
{
    err_clear(e);
    return auth_verify(secret, header, NOW, out, e);
}

static void assert_unauthorized(int rc, const struct auth *out, const struct err *e)
{
    assert_int_equal(rc, -1);
    assert_int_equal(e->code, ERR_UNAUTHORIZED);
    assert_true(strlen(e->detail) > 0);
    assert_false(out->authenticated);
    assert_false(out->is_admin);
    assert_int_equal(out->user_id, 0);
}

/* A token whose claims are grants_json, signed with key under alg by libjwt (free() it). */
static char *make_token(jwt_alg_t alg, const char *key, const char *grants_json)
{
    jwt_t *jwt = NULL;
    char *token;

    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grants_json(jwt, grants_json), 0);
    assert_int_equal(jwt_set_alg(jwt, alg, (const unsigned char *)key, (int)strlen(key)), 0);
    token = jwt_encode_str(jwt);
    jwt_free(jwt);
    assert_non_null(token);
    return token;
}

/* Verifies a token made by make_token() with our secret and HS256. */
static int verify_claims(const char *grants_json, struct auth *out, struct err *e)
{
    char *token = make_token(JWT_ALG_HS256, secret, grants_json);
    int rc = verify_token(token, NOW, out, e);

    free(token);
    return rc;
}

/* base64url without padding, as JWTs use. */
static void b64url(const char *in, char *out, size_t size)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t len = strlen(in), o = 0;

    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)in[i] << 16;
        size_t chunk = len - i < 3 ? len - i : 3;
        if (chunk > 1)
            v |= (uint32_t)(unsigned char)in[i + 1] << 8;
        if (chunk > 2)
            v |= (unsigned char)in[i + 2];
        for (size_t k = 0; k < chunk + 1; k++) {
            assert_true(o + 1 < size);
            out[o++] = alphabet[(v >> (18 - 6 * k)) & 63];
        }
    }
    out[o] = '\0';
}

/* "<b64url(header)>.<b64url(payload)>.<signature>" */
static void hand_token(char *out, size_t size, const char *header, const char *payload,
                       const char *signature)
{
    char h[256], p[256];

    b64url(header, h, sizeof(h));
    b64url(payload, p, sizeof(p));
    int n = snprintf(out, size, "%s.%s.%s", h, p, signature);
    assert_true(n > 0 && (size_t)n < size);
}

/* ---- round trips ---- */

static void test_b64url_helper(void **state)
{
    char out[64];

    (void)state;
    b64url("{\"alg\":\"none\",\"typ\":\"JWT\"}", out, sizeof(out));
    assert_string_equal(out, "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0");
    b64url("{\"sub\":\"1\"}", out, sizeof(out));
    assert_string_equal(out, "eyJzdWIiOiIxIn0");
}

static void test_issue_verify_user(void **state)
{
    struct auth a;
    struct err e;
    char *token = auth_issue(secret, 42, false, NOW, 3600, &e);

    (void)state;
    assert_non_null(token);
    int rc = verify_token(token, NOW + 10, &a, &e);
    free(token);
    assert_int_equal(rc, 0);
    assert_true(a.authenticated);
    assert_false(a.is_admin);
    assert_int_equal(a.user_id, 42);
}

static void test_issue_verify_admin(void **state)
{
    struct auth a;
    struct err e;
    char *token = auth_issue(secret, 0, true, NOW, 3600, &e);

    (void)state;
    assert_non_null(token);
    int rc = verify_token(token, NOW, &a, &e);
    free(token);
    assert_int_equal(rc, 0);
    assert_true(a.authenticated);
    assert_true(a.is_admin);
    assert_int_equal(a.user_id, 0);
}

static void test_issue_verify_admin_with_user(void **state)
{
    struct auth a;
    struct err e;
    char *token = auth_issue(secret, 9, true, NOW, 0, &e);

    (void)state;
    assert_non_null(token);
    int rc = verify_token(token, NOW, &a, &e);
    free(token);
    assert_int_equal(rc, 0);
    assert_true(a.is_admin);
    assert_int_equal(a.user_id, 9);
}

static void test_issue_verify_large_user_id(void **state)
{
    struct auth a;
    struct err e;
    char *token = auth_issue(secret, INT64_MAX, false, NOW, 0, &e);

    (void)state;
    assert_non_null(token);
    int rc = verify_token(token, NOW, &a, &e);
    free(token);
    assert_int_equal(rc, 0);
    assert_int_equal(a.user_id, INT64_MAX);
}

static void test_issued_token_is_hs256(void **state)
{
    struct err e;
    jwt_t *jwt = NULL;
    char *token = auth_issue(secret, 5, false, NOW, 60, &e);

    (void)state;
    assert_non_null(token);
    int rc = jwt_decode(&jwt, token, (const unsigned char *)secret, (int)strlen(secret));
    free(token);
    assert_int_equal(rc, 0);
    assert_int_equal(jwt_get_alg(jwt), JWT_ALG_HS256);
    const char *sub = jwt_get_grant(jwt, "sub");
    int sub_ok = sub && !strcmp(sub, "5");
    long exp = jwt_get_grant_int(jwt, "exp");
    jwt_free(jwt);
    assert_true(sub_ok);
    assert_int_equal(exp, NOW + 60);
}

static void test_no_exp_never_expires(void **state)
{
    struct auth a;
    struct err e;
    char *token = auth_issue(secret, 3, false, NOW, 0, &e);

    (void)state;
    assert_non_null(token);
    int rc = verify_token(token, NOW + 100LL * 365 * 86400, &a, &e);
    free(token);
    assert_int_equal(rc, 0);
    assert_int_equal(a.user_id, 3);
}

/* ---- failures ---- */

static void test_wrong_secret(void **state)
{
    struct auth a;
    struct err e;
    char *token = auth_issue("another-secret", 42, false, NOW, 3600, &e);

    (void)state;
    assert_non_null(token);
    int rc = verify_token(token, NOW, &a, &e);
    free(token);
    assert_unauthorized(rc, &a, &e);
}

static void test_expired(void **state)
{
    struct auth a;
    struct err e;
    char *token = auth_issue(secret, 42, false, NOW, 60, &e);

    (void)state;
    assert_non_null(token);
    int ok = verify_token(token, NOW + 59, &a, &e);
    int at_exp = verify_token(token, NOW + 60, &a, &e);
    int later = verify_token(token, NOW + 3600, &a, &e);
    free(token);
    assert_int_equal(ok, 0);
    assert_int_equal(at_exp, -1);
    assert_unauthorized(later, &a, &e);
    assert_non_null(strstr(e.detail, "expired"));
}

static void test_missing_header(void **state)
{
    struct auth a;
    struct err e;

    (void)state;
    assert_unauthorized(verify_token(NULL, NOW, &a, &e), &a, &e);
}

static void test_missing_bearer_prefix(void **state)
{
    struct auth a;
    struct err e;
    char *token = auth_issue(secret, 42, false, NOW, 3600, &e);
    char basic[4200];

    (void)state;
    assert_non_null(token);
    snprintf(basic, sizeof(basic), "Basic %s", token);
    int bare = verify_header(token, &a, &e);
    int rc_basic = verify_header(basic, &a, &e);
    free(token);
    assert_int_equal(bare, -1);
    assert_int_equal(e.code, ERR_UNAUTHORIZED);
    assert_unauthorized(rc_basic, &a, &e);
}

static void test_empty_bearer(void **state)
{
    struct auth a;
    struct err e;

    (void)state;
    assert_unauthorized(verify_header("Bearer ", &a, &e), &a, &e);
    assert_unauthorized(verify_header("Bearer", &a, &e), &a, &e);
    assert_unauthorized(verify_header("", &a, &e), &a, &e);
}

static void test_garbage_tokens(void **state)
{
    static const char *const garbage[] = {
        "x",        "not-a-jwt", "a.b",
        "a.b.c",    "a.b.c.d",   "...",
        "eyJ.eyJ.", "Bearer x",  "eyJhbGciOiJIUzI1NiJ9.!!!.abc",
    };
    struct auth a;
    struct err e;

    (void)state;
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++)
        assert_unauthorized(verify_token(garbage[i], NOW, &a, &e), &a, &e);
}

static void test_too_long_token(void **state)
{
    char *token = malloc(6000);
    struct auth a;
    struct err e;

    (void)state;
    assert_non_null(token);
    memset(token, 'a', 5999);
    token[5999] = '\0';
    int rc = verify_token(token, NOW, &a, &e);
    free(token);
    assert_unauthorized(rc, &a, &e);
}

static void test_tampered_payload(void **state)
{
    char token[1024], forged[2304], p[128];
    struct auth a;
    struct err e;
    char *good = auth_issue(secret, 42, false, NOW, 3600, &e);

    (void)state;
    assert_non_null(good);
    snprintf(token, sizeof(token), "%s", good);
    free(good);
    assert_int_equal(verify_token(token, NOW, &a, &e), 0); /* untouched, it passes */
    char *dot1 = strchr(token, '.');
    char *dot2 = strrchr(token, '.');
    assert_non_null(dot1);
    b64url("{\"sub\":\"1\",\"role\":\"admin\"}", p, sizeof(p));
    *dot1 = '\0';
    snprintf(forged, sizeof(forged), "%s.%s%s", token, p, dot2);
    assert_unauthorized(verify_token(forged, NOW, &a, &e), &a, &e);
}

static void test_alg_none_without_signature(void **state)
{
    char token[512];
    struct auth a;
    struct err e;

    (void)state;
    hand_token(token, sizeof(token), "{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"sub\":\"1\"}", "");
    assert_string_equal(token, "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIxIn0.");
    assert_unauthorized(verify_token(token, NOW, &a, &e), &a, &e);
}

static void test_alg_none_with_signature(void **state)
{
    char token[512], sig[128];
    struct auth a;
    struct err e;

    (void)state;
    b64url("signature", sig, sizeof(sig));
    hand_token(token, sizeof(token), "{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"sub\":\"1\"}", sig);
    assert_unauthorized(verify_token(token, NOW, &a, &e), &a, &e);
}

static void test_alg_none_admin(void **state)
{
    char token[512];
    struct auth a;
    struct err e;

    (void)state;
    hand_token(token, sizeof(token), "{\"alg\":\"none\"}", "{\"role\":\"admin\"}", "");
    assert_unauthorized(verify_token(token, NOW, &a, &e), &a, &e);
    hand_token(token, sizeof(token), "{\"alg\":\"NONE\"}", "{\"sub\":\"1\"}", "");
    assert_unauthorized(verify_token(token, NOW, &a, &e), &a, &e);
}

static void test_hs384_same_secret_rejected(void **state)
{
    jwt_t *jwt = NULL;
    struct auth a;
    struct err e;

    (void)state;
    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grant(jwt, "sub", "1"), 0);
    assert_int_equal(
        jwt_set_alg(jwt, JWT_ALG_HS384, (const unsigned char *)secret, (int)strlen(secret)), 0);
    char *token = jwt_encode_str(jwt);
    jwt_free(jwt);
    assert_non_null(token);
    int rc = verify_token(token, NOW, &a, &e);
    free(token);
    assert_unauthorized(rc, &a, &e);
}

static void test_hs512_same_secret_rejected(void **state)
{
    struct auth a;
    struct err e;
    char *token = make_token(JWT_ALG_HS512, secret, "{\"sub\":\"1\",\"role\":\"admin\"}");

    (void)state;
    int rc = verify_token(token, NOW, &a, &e);
    free(token);
    assert_unauthorized(rc, &a, &e);
}

/* ---- claims ---- */

static void test_hand_built_hs256_accepted(void **state)
{
    struct auth a;
    struct err e;

    (void)state;
    assert_int_equal(verify_claims("{\"sub\":\"77\"}", &a, &e), 0);
    assert_true(a.authenticated);
    assert_int_equal(a.user_id, 77);
}

static void test_sub_not_a_number(void **state)
{
    static const char *const claims[] = {
        "{\"sub\":\"abc\"}", "{\"sub\":\"12x\"}",  "{\"sub\":\"\"}",
        "{\"sub\":\" 1\"}",  "{\"sub\":\"1.0\"}",  "{\"sub\":\"+1\"}",
        "{\"sub\":\"-1\"}",  "{\"sub\":\"0x10\"}", "{\"sub\":\"9223372036854775808\"}",
        "{\"sub\":true}",    "{\"sub\":[\"1\"]}",  "{\"sub\":{\"id\":1}}",
        "{\"sub\":1.5}",     "{\"sub\":null}",
    };
    struct auth a;
    struct err e;

    (void)state;
    for (size_t i = 0; i < sizeof(claims) / sizeof(claims[0]); i++) {
        int rc = verify_claims(claims[i], &a, &e);
        if (rc != -1)
            fail_msg("claims %s were accepted", claims[i]);
        assert_unauthorized(rc, &a, &e);
    }
}

static void test_sub_zero(void **state)
{
    struct auth a;
    struct err e;

    (void)state;
    assert_unauthorized(verify_claims("{\"sub\":\"0\"}", &a, &e), &a, &e);
    assert_unauthorized(verify_claims("{\"sub\":\"000\"}", &a, &e), &a, &e);
    assert_unauthorized(verify_claims("{\"sub\":0}", &a, &e), &a, &e);
    assert_unauthorized(verify_claims("{\"sub\":-3}", &a, &e), &a, &e);
}

/* API.md: sub is a canonical decimal *string*; the number 12 is not "12". */
static void test_sub_json_integer(void **state)
{
    struct auth a;
    struct err e;

    (void)state;
    assert_unauthorized(verify_claims("{\"sub\":12}", &a, &e), &a, &e);
    assert_unauthorized(verify_claims("{\"sub\":1}", &a, &e), &a, &e);
    assert_unauthorized(verify_claims("{\"sub\":1,\"role\":\"admin\"}", &a, &e), &a, &e);
}

/* "01" is not user 1, nor is "+1", " 1" or "1 ": one spelling per user. */
static void test_sub_not_canonical(void **state)
{
    static const char *const claims[] = {
        "{\"sub\":\"01\"}", "{\"sub\":\"007\"}", "{\"sub\":\"1 \"}", "{\"sub\":\"\\u0031 \"}",
        "{\"sub\":\"01\",\"role\":\"admin\"}", "{\"sub\":\"00\",\"role\":\"admin\"}",
    };
    struct auth a;
    struct err e;

    (void)state;
    for (size_t i = 0; i < sizeof(claims) / sizeof(claims[0]); i++) {
        int rc = verify_claims(claims[i], &a, &e);
        if (rc != -1)
            fail_msg("claims %s were accepted", claims[i]);
        assert_unauthorized(rc, &a, &e);
    }
    assert_int_equal(verify_claims("{\"sub\":\"\\u0031\"}", &a, &e), 0); /* the string "1" */
    assert_int_equal(a.user_id, 1);
}

static void test_missing_sub(void **state)
{
    struct auth a;
    struct err e;

    (void)state;
    assert_unauthorized(verify_claims("{\"iat\":1}", &a, &e), &a, &e);
    assert_unauthorized(verify_claims("{\"role\":\"user\"}", &a, &e), &a, &e);
}

/* Admin tokens carry a canonical sub too (API.md); "0" is the admin who is no user. */
static void test_admin_without_sub(void **state)
{
    struct auth a;
    struct err e;

    (void)state;
    assert_unauthorized(verify_claims("{\"role\":\"admin\"}", &a, &e), &a, &e);
    assert_int_equal(verify_claims("{\"role\":\"admin\",\"sub\":\"0\"}", &a, &e), 0);
    assert_true(a.is_admin);
    assert_int_equal(a.user_id, 0);
    assert_int_equal(verify_claims("{\"role\":\"admin\",\"sub\":\"9\"}", &a, &e), 0);
    assert_true(a.is_admin);
    assert_int_equal(a.user_id, 9);
}

static void test_admin_with_bad_sub(void **state)
{
    struct auth a;
    struct err e;

    (void)state;
    assert_unauthorized(verify_claims("{\"role\":\"admin\",\"sub\":\"ops\"}", &a, &e), &a, &e);
    assert_unauthorized(verify_claims("{\"role\":\"admin\",\"sub\":null}", &a, &e), &a, &e);
}

static void test_role_must_be_exactly_admin(void **state)
{
    struct auth a;
    struct err e;

    (void)state;
    assert_int_equal(verify_claims("{\"sub\":\"4\",\"role\":\"Admin\"}", &a, &e), 0);
    assert_false(a.is_admin);
    assert_int_equal(verify_claims("{\"sub\":\"4\",\"role\":\"administrator\"}", &a, &e), 0);
    assert_false(a.is_admin);
    assert_int_equal(verify_claims("{\"sub\":\"4\",\"role\":[\"admin\"]}", &a, &e), 0);
    assert_false(a.is_admin);
    assert_unauthorized(verify_claims("{\"role\":\"Admin\"}", &a, &e), &a, &e);
}

static void test_exp_integer_checked(void **state)
{
    struct auth a;
    struct err e;
    char claims[128];

    (void)state;
    snprintf(claims, sizeof(claims), "{\"sub\":\"1\",\"exp\":%d}", NOW - 1);
    assert_unauthorized(verify_claims(claims, &a, &e), &a, &e);
    snprintf(claims, sizeof(claims), "{\"sub\":\"1\",\"exp\":%d}", NOW + 1);
    assert_int_equal(verify_claims(claims, &a, &e), 0);
}

static void test_expired_admin(void **state)
{
    struct auth a;
    struct err e;
    char *token = auth_issue(secret, 0, true, NOW - 7200, 3600, &e);

    (void)state;
    assert_non_null(token);
    int rc = verify_token(token, NOW, &a, &e);
    free(token);
    assert_unauthorized(rc, &a, &e);
}

/*
 * "optional exp (checked when present)": an exp that is present must be honoured. RFC 7519
 * makes exp a NumericDate, which may have a fraction, so a long-past 1000.5 is expired; an exp
 * that is not a number at all cannot be checked and must not make the token valid forever.
 */
static void test_exp_with_fraction_checked(void **state)
{
    struct auth a;
    struct err e;

    (void)state;
    assert_unauthorized(verify_claims("{\"sub\":\"1\",\"exp\":1000.5}", &a, &e), &a, &e);
}

static void test_exp_not_a_number_rejected(void **state)
{
    struct auth a;
    struct err e;

    (void)state;
    assert_unauthorized(verify_claims("{\"sub\":\"1\",\"exp\":\"1000\"}", &a, &e), &a, &e);
    assert_unauthorized(verify_claims("{\"sub\":\"1\",\"exp\":true}", &a, &e), &a, &e);
}

/* nbf: checked when present (API.md); before it, the token is not valid yet. */
static void test_nbf_checked(void **state)
{
    struct auth a;
    struct err e;
    char claims[128];

    (void)state;
    snprintf(claims, sizeof(claims), "{\"sub\":\"1\",\"nbf\":%d}", NOW + 60);
    assert_unauthorized(verify_claims(claims, &a, &e), &a, &e);
    snprintf(claims, sizeof(claims), "{\"sub\":\"1\",\"nbf\":%d}", NOW);
    assert_int_equal(verify_claims(claims, &a, &e), 0);
    snprintf(claims, sizeof(claims), "{\"sub\":\"1\",\"nbf\":%d.5}", NOW);
    assert_unauthorized(verify_claims(claims, &a, &e), &a, &e);
    snprintf(claims, sizeof(claims), "{\"sub\":\"1\",\"role\":\"admin\",\"nbf\":%d}", NOW + 1);
    assert_unauthorized(verify_claims(claims, &a, &e), &a, &e);
}

/* exp and nbf must be numbers when present: a string, a boolean, null, an array or an
 * object cannot be checked, so the token is refused (not taken as valid forever). */
static void test_dates_must_be_numbers(void **state)
{
    static const char *const claims[] = {
        "{\"sub\":\"1\",\"exp\":\"9999999999\"}", "{\"sub\":\"1\",\"exp\":null}",
        "{\"sub\":\"1\",\"exp\":[9999999999]}", "{\"sub\":\"1\",\"exp\":{}}",
        "{\"sub\":\"1\",\"nbf\":\"0\"}",          "{\"sub\":\"1\",\"nbf\":false}",
        "{\"sub\":\"1\",\"nbf\":null}",           "{\"sub\":\"1\",\"nbf\":[0]}",
    };
    struct auth a;
    struct err e;

    (void)state;
    for (size_t i = 0; i < sizeof(claims) / sizeof(claims[0]); i++) {
        int rc = verify_claims(claims[i], &a, &e);
        if (rc != -1)
            fail_msg("claims %s were accepted", claims[i]);
        assert_unauthorized(rc, &a, &e);
    }
    /* Numbers of any JSON form are checked as numbers. */
    assert_int_equal(verify_claims("{\"sub\":\"1\",\"exp\":9.9e9,\"nbf\":1e3}", &a, &e), 0);
    assert_unauthorized(verify_claims("{\"sub\":\"1\",\"exp\":1e3}", &a, &e), &a, &e);
    assert_unauthorized(verify_claims("{\"sub\":\"1\",\"exp\":-1}", &a, &e), &a, &e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url_helper),
        cmocka_unit_test(test_issue_verify_user),
        cmocka_unit_test(test_issue_verify_admin),
        cmocka_unit_test(test_issue_verify_admin_with_user),
        cmocka_unit_test(test_issue_verify_large_user_id),
        cmocka_unit_test(test_issued_token_is_hs256),
        cmocka_unit_test(test_no_exp_never_expires),
        cmocka_unit_test(test_wrong_secret),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_missing_header),
        cmocka_unit_test(test_missing_bearer_prefix),
        cmocka_unit_test(test_empty_bearer),
        cmocka_unit_test(test_garbage_tokens),
        cmocka_unit_test(test_too_long_token),
        cmocka_unit_test(test_tampered_payload),
        cmocka_unit_test(test_alg_none_without_signature),
        cmocka_unit_test(test_alg_none_with_signature),
        cmocka_unit_test(test_alg_none_admin),
        cmocka_unit_test(test_hs384_same_secret_rejected),
        cmocka_unit_test(test_hs512_same_secret_rejected),
        cmocka_unit_test(test_hand_built_hs256_accepted),
        cmocka_unit_test(test_sub_not_a_number),
        cmocka_unit_test(test_sub_zero),
        cmocka_unit_test(test_sub_json_integer),
        cmocka_unit_test(test_sub_not_canonical),
        cmocka_unit_test(test_missing_sub),
        cmocka_unit_test(test_admin_without_sub),
        cmocka_unit_test(test_admin_with_bad_sub),
        cmocka_unit_test(test_role_must_be_exactly_admin),
        cmocka_unit_test(test_exp_integer_checked),
        cmocka_unit_test(test_expired_admin),
        cmocka_unit_test(test_exp_with_fraction_checked),
        cmocka_unit_test(test_exp_not_a_number_rejected),
        cmocka_unit_test(test_nbf_checked),
        cmocka_unit_test(test_dates_must_be_numbers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
