#ifndef SHOPD_SERVICE_COUPON_SVC_H
#define SHOPD_SERVICE_COUPON_SVC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Coupons (API.md "Coupons"). Issue is exact whatever the strategy (SHOPD_COUPON_STRATEGY):
 * MariaDB's conditional count and unique (coupon, user) decide every issue. "gate" turns the
 * sold-out and the repeats away in Redis first; "lock" takes the per-coupon distributed lock
 * as the reference system did; "db" is MariaDB alone. Thread-safe.
 * Errors: ERR_COUPON_NOT_FOUND, ERR_COUPON_SOLD_OUT, ERR_COUPON_ALREADY_ISSUED,
 * ERR_COUPON_NOT_ACTIVE, ERR_USER_NOT_FOUND, ERR_INVALID_INPUT, and the database's.
 */

struct arena;
struct coupon;
struct err;
struct svc;
struct user_coupon;

int coupon_svc_create(struct svc *s, const struct coupon *in, struct coupon *out, struct err *e);
int coupon_svc_get(struct svc *s, int64_t coupon_id, struct arena *a, struct coupon *out,
                   struct err *e);
int coupon_svc_issue(struct svc *s, int64_t coupon_id, int64_t user_id, struct arena *a,
                     struct user_coupon *out, struct err *e);

/* The user's coupons, newest first; only those in status (as of now) when filter is set. */
int coupon_svc_list(struct svc *s, int64_t user_id, bool filter, int status, struct arena *a,
                    struct user_coupon **out, size_t *count, struct err *e);

#endif
