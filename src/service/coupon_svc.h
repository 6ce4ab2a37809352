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
/*
 * Coupon issue on an event loop (http/router.h, struct route_loop_read), with the gate
 * strategy only: the argv of the gate's read-only check (from a; its count, or -1 when issue
 * goes to coupon_svc_issue at once), and what its reply means: -1 with e set for a refusal
 * the loop answers (sold out, already issued, not active: as coupon_svc_issue would), 0 when
 * coupon_svc_issue must decide. Neither blocks.
 */
struct redis_value;
int coupon_svc_loop_check(struct svc *s, int64_t coupon_id, int64_t user_id, struct arena *a,
                          const char ***argv);
int coupon_svc_loop_refusal(const struct redis_value *reply, int64_t coupon_id, int64_t user_id,
                            struct err *e);

int coupon_svc_list(struct svc *s, int64_t user_id, bool filter, int status, struct arena *a,
                    struct user_coupon **out, size_t *count, struct err *e);

#endif
