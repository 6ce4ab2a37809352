/*
 * Bearer token verification (http/auth.c auth_verify, through libjwt). The first input byte
 * picks a mode: 0 takes the rest as the whole Authorization header; 1, 2 and 3 take it as a JOSE
 * header and a claims set (two JSON texts separated by a newline) and sign them with the
 * server's secret, by HMAC-SHA256, -SHA384 and -SHA512, so that fuzzed claims and algorithms
 * get past the signature. Beyond "no crash, no leak, no UB", against API.md "Authentication": a
 * token that verifies was signed HS256 with the secret, names HS256, carries a "sub" that is a
 * canonical decimal string equal to the user id (for admin tokens too), an "exp" in the future
 * and an "nbf" in the past when they are present (as numbers), and is an admin token exactly
 * when "role" is "admin"; a token issued by auth_issue for the same user verifies with the same
 * user id and role (a token that verifies re-encodes with the same sub). A refusal is 401
 * UNAUTHORIZED and leaves struct auth empty.
 */
#include <stdbool.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/arena.h"
#include "core/err.h"
#include "core/num.h"
#include "fuzz_common.h"
#include "http/auth.h"

#define NOW_S 1700000000LL

static const char secret[] = "fuzz-secret-0123456789abcdef-0123456789";

static void b64url(struct arena *a, const unsigned char *p, size_t n, char **out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *s = arena_alloc(a, (n + 2) / 3 * 4 + 1);
    size_t o = 0;

    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        s[o++] = abc[(v >> 18) & 63];
        s[o++] = abc[(v >> 12) & 63];
        if (i + 1 < n)
            s[o++] = abc[(v >> 6) & 63];
        if (i + 2 < n)
            s[o++] = abc[v & 63];
    }
    s[o] = '\0';
    *out = s;
}

/* "Bearer <b64(header)>.<b64(claims)>.<b64(HMAC)>" */
static const char *sign(struct arena *a, const char *hdr, size_t hlen, const char *claims,
                        size_t clen, const EVP_MD *md)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    char *h64, *c64, *s64;

    b64url(a, (const unsigned char *)hdr, hlen, &h64);
    b64url(a, (const unsigned char *)claims, clen, &c64);
    char *input = arena_printf(a, "%s.%s", h64, c64);
    if (!HMAC(md, secret, (int)strlen(secret), (const unsigned char *)input, strlen(input), mac,
              &mac_len))
        abort();
    b64url(a, mac, mac_len, &s64);
    return arena_printf(a, "Bearer %s.%s", input, s64);
}

/* A canonical decimal: "0", or a non-zero digit then digits, within int64_t. */
static bool canonical_decimal(const char *s, int64_t *id)
{
    if (!strcmp(s, "0")) {
        *id = 0;
        return true;
    }
    return s[0] >= '1' && s[0] <= '9' && num_parse_i64(s, 1, INT64_MAX, id) == 0;
}

/* The claims are read here with jansson directly: an independent reading of what libjwt saw
 * (which, like this, reads the decoded claims as a C string, up to a NUL). */
static void check_accepted(const struct auth *au, const char *claims)
{
    json_t *root = json_loads(claims, 0, NULL);
    int64_t id = 0;

    FUZZ_CHECK(au->authenticated, "accepted but not authenticated");
    FUZZ_CHECK(json_is_object(root), "accepted claims that are not an object");
    json_t *sub = json_object_get(root, "sub"), *role = json_object_get(root, "role");
    json_t *exp = json_object_get(root, "exp"), *nbf = json_object_get(root, "nbf");
    bool admin = json_is_string(role) && !strcmp(json_string_value(role), "admin");

    FUZZ_CHECK(au->is_admin == admin, "admin %d for claims %s", au->is_admin, claims);
    if (!admin || sub) {
        FUZZ_CHECK(json_is_string(sub) && canonical_decimal(json_string_value(sub), &id) &&
                       (admin || id > 0),
                   "accepted a sub that is not a canonical id string: %s", claims);
        FUZZ_CHECK(au->user_id == id, "sub gave user %lld: %s", (long long)au->user_id, claims);
    }
    FUZZ_CHECK(!exp || (json_is_number(exp) && json_number_value(exp) > (double)NOW_S),
               "accepted an exp that is not a number in the future: %s", claims);
    FUZZ_CHECK(!nbf || (json_is_number(nbf) && json_number_value(nbf) <= (double)NOW_S),
               "accepted an nbf that is not a number in the past: %s", claims);
    json_decref(root);
}

static void check_reissue(const struct auth *au)
{
    struct auth again;
    struct err e;
    char *token = auth_issue(secret, au->user_id, au->is_admin, NOW_S, 0, &e);

    FUZZ_CHECK(token, "auth_issue: %s", e.detail);
    size_t n = strlen(token) + 8;
    char *header = malloc(n);
    snprintf(header, n, "Bearer %s", token);
    FUZZ_CHECK(auth_verify(secret, header, NOW_S, &again, &e) == 0, "reissued: %s", e.detail);
    FUZZ_CHECK(again.user_id == au->user_id && again.is_admin == au->is_admin,
               "reissued token reads as user %lld admin %d", (long long)again.user_id,
               again.is_admin);
    free(header);
    free(token);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct auth empty;
    struct arena a;
    struct auth au;
    struct err e;
    const char *header;
    const char *claims = NULL;
    size_t claims_len = 0;

    if (size < 1 || size > 4096)
        return 0;
    int mode = data[0] % 4;
    arena_init(&a);
    char *rest = arena_memdup(&a, data + 1, size - 1);
    if (mode == 0) {
        header = rest;
    } else {
        char *nl = memchr(rest, '\n', size - 1);
        if (!nl)
            goto out;
        claims = nl + 1;
        claims_len = size - 1 - (size_t)(claims - rest);
        const EVP_MD *md = mode == 1 ? EVP_sha256() : mode == 2 ? EVP_sha384() : EVP_sha512();
        header = sign(&a, rest, (size_t)(nl - rest), claims, claims_len, md);
    }
    err_clear(&e);
    if (auth_verify(secret, header, NOW_S, &au, &e)) {
        FUZZ_CHECK(e.code == ERR_UNAUTHORIZED, "refusal code %d", (int)e.code);
        FUZZ_CHECK(!memcmp(&au, &empty, sizeof(au)), "a refusal left claims behind");
        goto out;
    }
    FUZZ_CHECK(mode != 2 && mode != 3, "accepted a token signed with HS384/HS512");
    if (claims)
        check_accepted(&au, claims);
    check_reissue(&au);
out:
    arena_release(&a);
    return 0;
}
