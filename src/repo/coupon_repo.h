#ifndef SHOPD_REPO_COUPON_REPO_H
#define SHOPD_REPO_COUPON_REPO_H

#include <stddef.h>
#include <stdint.h>

/*
 * The coupons and user_coupons tables. Called inside the caller's transaction where there is
 * one. Errors as in repo/db.h; a missing coupon is ERR_COUPON_NOT_FOUND.
 */

struct arena;
struct coupon;
struct db_conn;
struct err;
struct user_coupon;

int coupon_repo_insert(struct db_conn *c, const struct coupon *cp, int64_t now_us,
                       int64_t *coupon_id, struct err *e);

int coupon_repo_get(struct db_conn *c, int64_t coupon_id, struct arena *a, struct coupon *out,
                    struct err *e);

/* The same, with the coupon row locked until the transaction ends. */
int coupon_repo_get_for_update(struct db_conn *c, int64_t coupon_id, struct arena *a,
                               struct coupon *out, struct err *e);

/*
 * Issues one coupon to the user: the (coupon, user) row first (a second one is
 * ERR_COUPON_ALREADY_ISSUED, a missing user ERR_USER_NOT_FOUND), then the issued count, only
 * while it is below the quantity (else ERR_COUPON_SOLD_OUT) and, when fence is non-zero, only
 * if no newer lock holder wrote the coupon. Both in the caller's transaction.
 */
int coupon_repo_issue(struct db_conn *c, int64_t coupon_id, int64_t user_id, int64_t fence,
                      int64_t now_us, int64_t *user_coupon_id, struct err *e);

int coupon_repo_user_coupon(struct db_conn *c, int64_t user_coupon_id, struct arena *a,
                            struct user_coupon *out, struct err *e);

/* The user's coupons, newest first. */
int coupon_repo_user_coupons(struct db_conn *c, int64_t user_id, struct arena *a,
                             struct user_coupon **out, size_t *count, struct err *e);

/* The ids of the users holding the coupon (to rebuild the Redis gate). */
int coupon_repo_holders(struct db_conn *c, int64_t coupon_id, struct arena *a, int64_t **user_ids,
                        size_t *count, struct err *e);

#endif
