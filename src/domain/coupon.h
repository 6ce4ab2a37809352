#ifndef SHOPD_DOMAIN_COUPON_H
#define SHOPD_DOMAIN_COUPON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * First-come-first-served coupons (API.md "Coupons") and the discount they give. Pure.
 */

struct json_w;

enum coupon_type { COUPON_RATE, COUPON_FIXED };
enum coupon_status { COUPON_AVAILABLE, COUPON_USED, COUPON_EXPIRED };

#define COUPON_NAME_MAX      100
#define COUPON_RATE_MAX      100
#define COUPON_FIXED_MAX_KRW 1000000000LL
#define COUPON_QUANTITY_MAX  1000000000LL

struct coupon {
    int64_t coupon_id;
    const char *name;
    enum coupon_type type;
    int64_t value; /* percent for RATE, KRW for FIXED */
    int64_t total_quantity;
    int64_t issued_quantity;
    int64_t starts_us;
    int64_t ends_us; /* 0: no end */
};

struct user_coupon {
    int64_t user_coupon_id;
    int64_t user_id;
    struct coupon coupon;
    enum coupon_status status; /* as stored: AVAILABLE or USED */
    int64_t issued_us;
    int64_t used_us; /* 0 while unused */
};

const char *coupon_type_name(enum coupon_type t);
int coupon_type_parse(const char *name, enum coupon_type *out);
const char *coupon_status_name(enum coupon_status s);
int coupon_status_parse(const char *name, enum coupon_status *out);

/* 0, or -1 with a reason when the definition is not valid (value range, window order). */
int coupon_validate(const struct coupon *c, const char **why);

bool coupon_active_at(const struct coupon *c, int64_t now_us);

/* AVAILABLE turns EXPIRED once the coupon's window has ended. */
enum coupon_status user_coupon_status_at(const struct user_coupon *uc, int64_t now_us);

/* RATE: floor(subtotal × rate / 100); FIXED: min(value, subtotal). */
int64_t coupon_discount(const struct coupon *c, int64_t subtotal_krw);

void coupon_write_json(struct json_w *w, const struct coupon *c);
void user_coupon_write_json(struct json_w *w, const struct user_coupon *uc, int64_t now_us);
/* A user's coupons: {"userId", "coupons": [...]}. */
void user_coupons_write_json(struct json_w *w, int64_t user_id, const struct user_coupon *list,
                             size_t count, int64_t now_us);

#endif
