#include "http/auth.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jwt.h>

#include "core/err.h"
#include "core/num.h"

#include "core/banned.h"

static const char bearer[] = "Bearer ";

static int check_claims(jwt_t *jwt, int64_t now_s, struct auth *out, struct err *e)
{
    const char *role = jwt_get_grant(jwt, "role");
    const char *sub = jwt_get_grant(jwt, "sub");
    int64_t id = 0;

    errno = 0;
    long exp = jwt_get_grant_int(jwt, "exp");
    if (errno == 0 && exp <= now_s)
        return err_set(e, ERR_UNAUTHORIZED, "token expired");
    out->is_admin = role && !strcmp(role, "admin");
    if (sub && num_parse_i64(sub, 1, INT64_MAX, &id) && !out->is_admin)
        return err_set(e, ERR_UNAUTHORIZED, "token subject is not a user id");
    if (!sub && !out->is_admin) {
        errno = 0;
        long n = jwt_get_grant_int(jwt, "sub");
        if (errno || n < 1)
            return err_set(e, ERR_UNAUTHORIZED, "token has no user id subject");
        id = n;
    }
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
