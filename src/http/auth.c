#include "http/auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jwt.h>

#include "core/err.h"
#include "http/router.h"

#include "core/banned.h"

static const char bearer[] = "Bearer ";

/*
 * The claim as its JSON text (jansson's compact encoding, from libjwt), or NULL when absent.
 * The claims are judged on that text here, not through libjwt's typed getters, whose answer
 * for a claim of the wrong type differs between versions. free() the result.
 */
static char *claim_json(jwt_t *jwt, const char *name)
{
    char *text = jwt_get_grants_json(jwt, name);

    if (text && !strcmp(text, "null")) {
        free(text);
        return NULL;
    }
    return text;
}

/*
 * A NumericDate claim (exp, nbf) must be a JSON number when present; RFC 7519 allows a
 * fraction. 0 with *present and *value, or -1 when it is there but not a number.
 */
static int numeric_date(jwt_t *jwt, const char *name, bool *present, double *value)
{
    char *text = jwt_get_grants_json(jwt, name);
    char *end = NULL;
    int rc = 0;

    *present = text != NULL;
    if (!text)
        return 0;
    /* A JSON number starts with '-' or a digit; strtod alone would also take "inf" or hex. */
    if ((text[0] != '-' && (text[0] < '0' || text[0] > '9')) || strpbrk(text, "xXnN")) {
        rc = -1;
    } else {
        errno = 0;
        *value = strtod(text, &end);
        if (errno || !end || *end)
            rc = -1;
    }
    free(text);
    return rc;
}

/* The subject: a JSON string holding a canonical decimal id ("7", never "07", "+7" or 7).
 * Admin tokens may name user 0. */
static int subject(jwt_t *jwt, bool admin, int64_t *id)
{
    char *text = claim_json(jwt, "sub");
    size_t len = text ? strlen(text) : 0;
    int rc = -1;

    /* The encoder writes a plain string of digits as "digits", without escapes. */
    if (len >= 3 && text[0] == '"' && text[len - 1] == '"') {
        if (len == 3 && text[1] == '0') {
            *id = 0;
            rc = admin ? 0 : -1;
        } else {
            rc = router_parse_id(text + 1, len - 2, id);
        }
    }
    free(text);
    return rc;
}

static int check_claims(jwt_t *jwt, int64_t now_s, struct auth *out, struct err *e)
{
    const char *role = jwt_get_grant(jwt, "role");
    bool has_exp;
    bool has_nbf;
    double exp = 0;
    double nbf = 0;
    int64_t id = 0;

    if (numeric_date(jwt, "exp", &has_exp, &exp))
        return err_set(e, ERR_UNAUTHORIZED, "token 'exp' is not a number");
    if (numeric_date(jwt, "nbf", &has_nbf, &nbf))
        return err_set(e, ERR_UNAUTHORIZED, "token 'nbf' is not a number");
    if (has_exp && (double)now_s >= exp)
        return err_set(e, ERR_UNAUTHORIZED, "token expired");
    if (has_nbf && (double)now_s < nbf)
        return err_set(e, ERR_UNAUTHORIZED, "token is not valid yet ('nbf')");
    out->is_admin = role && !strcmp(role, "admin");
    if (subject(jwt, out->is_admin, &id))
        return err_set(e, ERR_UNAUTHORIZED,
                       "token subject must be a user id as a canonical decimal string");
    out->user_id = id;
    out->authenticated = true;
    return 0;
}

int auth_verify(const char *secret, const char *header, int64_t now_s, struct auth *out,
                struct err *e)
{
    jwt_t *jwt = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!header)
        return err_set(e, ERR_UNAUTHORIZED, "bearer token required");
    /* The scheme name is case-insensitive (RFC 7235). */
    if (strncasecmp(header, bearer, sizeof(bearer) - 1))
        return err_set(e, ERR_UNAUTHORIZED, "authorization must be a bearer token");
    const char *token = header + sizeof(bearer) - 1;
    if (!*token || strlen(token) > 4096)
        return err_set(e, ERR_UNAUTHORIZED, "bearer token is empty or too long");
    /*
     * libjwt checks the signature with our key for the algorithm the token names, so the
     * algorithm must be checked too: an "alg":"none" token or one signed with HS384 over the
     * same secret must never pass.
     */
    if (jwt_decode(&jwt, token, (const unsigned char *)secret, (int)strlen(secret)) || !jwt)
        return err_set(e, ERR_UNAUTHORIZED, "token is malformed or its signature is invalid");
    if (jwt_get_alg(jwt) != JWT_ALG_HS256)
        rc = err_set(e, ERR_UNAUTHORIZED, "token algorithm must be HS256");
    else
        rc = check_claims(jwt, now_s, out, e);
    jwt_free(jwt);
    if (rc)
        memset(out, 0, sizeof(*out));
    return rc;
}

char *auth_issue(const char *secret, int64_t user_id, bool admin, int64_t now_s, int64_t ttl_s,
                 struct err *e)
{
    jwt_t *jwt = NULL;
    char sub[24];
    char *token = NULL;

    snprintf(sub, sizeof(sub), "%lld", (long long)user_id);
    if (jwt_new(&jwt)) {
        err_set(e, ERR_INTERNAL, "jwt_new failed");
        return NULL;
    }
    if (jwt_add_grant(jwt, "sub", sub) || (admin && jwt_add_grant(jwt, "role", "admin")) ||
        jwt_add_grant_int(jwt, "iat", (long)now_s) ||
        (ttl_s > 0 && jwt_add_grant_int(jwt, "exp", (long)(now_s + ttl_s))) ||
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret))) {
        err_set(e, ERR_INTERNAL, "cannot build token");
        goto out;
    }
    token = jwt_encode_str(jwt);
    if (!token)
        err_set(e, ERR_INTERNAL, "cannot encode token");
out:
    jwt_free(jwt);
    return token;
}
