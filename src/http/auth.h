#ifndef SHOPD_HTTP_AUTH_H
#define SHOPD_HTTP_AUTH_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Bearer tokens: HS256 JWTs signed with the server's secret (API.md "Authentication").
 * Verification refuses every algorithm but HS256 (including "none"), a bad signature, an
 * "exp" or "nbf" that is present but not a number, a token past its "exp" or before its
 * "nbf", and a "sub" that is not a JSON string holding a canonical decimal user id ("7";
 * never "07", "+7", " 7" or the number 7). Admin tokens need a sub too; theirs may be "0".
 * The claims are checked here, not by libjwt.
 * Thread-safe; nothing is kept between calls.
 */

struct err;

struct auth {
    bool authenticated;
    bool is_admin;
    int64_t user_id; /* 0 for an admin token without a user */
};

/* Verifies an Authorization header value ("Bearer <jwt>"); header may be NULL. On failure
 * returns -1 with ERR_UNAUTHORIZED and a detail that says why. */
int auth_verify(const char *secret, const char *header, int64_t now_s, struct auth *out,
                struct err *e);

/* Issues a token for user_id (or an admin token), valid for ttl_s seconds (0: no exp).
 * Returns a malloc'd string the caller frees, or NULL with e set. */
char *auth_issue(const char *secret, int64_t user_id, bool admin, int64_t now_s, int64_t ttl_s,
                 struct err *e);

#endif
