#include "domain/coupon.h"

#include <string.h>

#include "core/json.h"

#include "core/banned.h"

static const char *const type_names[] = {"RATE", "FIXED"};
static const char *const status_names[] = {"AVAILABLE", "USED", "EXPIRED"};

const char *coupon_type_name(enum coupon_type t)
{
    return type_names[t];
}

int coupon_type_parse(const char *name, enum coupon_type *out)
{
    for (int i = 0; i < 2; i++)
        if (!strcmp(name, type_names[i])) {
            *out = (enum coupon_type)i;
            return 0;
        }
    return -1;
}

const char *coupon_status_name(enum coupon_status s)
{
    return status_names[s];
}

int coupon_status_parse(const char *name, enum coupon_status *out)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, status_names[i])) {
            *out = (enum coupon_status)i;
            return 0;
        }
    return -1;
}

int coupon_validate(const struct coupon *c, const char **why)
{
    if (c->type == COUPON_RATE && (c->value < 1 || c->value > COUPON_RATE_MAX)) {
        *why = "'discountValue' of a RATE coupon must be a percentage from 1 to 100";
        return -1;
    }
    if (c->type == COUPON_FIXED && (c->value < 1 || c->value > COUPON_FIXED_MAX_KRW)) {
        *why = "'discountValue' of a FIXED coupon must be from 1 to 1000000000 KRW";
        return -1;
    }
    if (c->ends_us && c->ends_us <= c->starts_us) {
        *why = "'endsAt' must be after 'startsAt'";
        return -1;
    }
    return 0;
}

bool coupon_active_at(const struct coupon *c, int64_t now_us)
{
    return now_us >= c->starts_us && (!c->ends_us || now_us < c->ends_us);
}

enum coupon_status user_coupon_status_at(const struct user_coupon *uc, int64_t now_us)
{
    if (uc->status == COUPON_AVAILABLE && uc->coupon.ends_us && now_us >= uc->coupon.ends_us)
        return COUPON_EXPIRED;
    return uc->status;
}

int64_t coupon_discount(const struct coupon *c, int64_t subtotal_krw)
{
    if (c->type == COUPON_RATE)
        return subtotal_krw * c->value / 100; /* ≤ 5e13 × 100: no overflow; floors */
    return c->value < subtotal_krw ? c->value : subtotal_krw;
}

void coupon_write_json(struct json_w *w, const struct coupon *c)
{
    json_w_obj_begin(w, NULL);
    json_w_int(w, "couponId", c->coupon_id);
    json_w_str(w, "name", c->name);
    json_w_str(w, "discountType", coupon_type_name(c->type));
    json_w_int(w, "discountValue", c->value);
    json_w_int(w, "totalQuantity", c->total_quantity);
    json_w_int(w, "issuedQuantity", c->issued_quantity);
    json_w_int(w, "remainingQuantity", c->total_quantity - c->issued_quantity);
    json_w_time(w, "startsAt", c->starts_us);
    json_w_time_or_null(w, "endsAt", c->ends_us, !c->ends_us);
    json_w_obj_end(w);
}

void user_coupon_write_json(struct json_w *w, const struct user_coupon *uc, int64_t now_us)
{
    json_w_obj_begin(w, NULL);
    json_w_int(w, "userCouponId", uc->user_coupon_id);
    json_w_int(w, "couponId", uc->coupon.coupon_id);
    json_w_int(w, "userId", uc->user_id);
    json_w_str(w, "name", uc->coupon.name);
    json_w_str(w, "discountType", coupon_type_name(uc->coupon.type));
    json_w_int(w, "discountValue", uc->coupon.value);
    json_w_str(w, "status", coupon_status_name(user_coupon_status_at(uc, now_us)));
    json_w_time(w, "issuedAt", uc->issued_us);
    json_w_time_or_null(w, "usedAt", uc->used_us, !uc->used_us);
    json_w_time_or_null(w, "expiresAt", uc->coupon.ends_us, !uc->coupon.ends_us);
    json_w_obj_end(w);
}

void user_coupons_write_json(struct json_w *w, int64_t user_id, const struct user_coupon *list,
                             size_t count, int64_t now_us)
{
    json_w_obj_begin(w, NULL);
    json_w_int(w, "userId", user_id);
    json_w_arr_begin(w, "coupons");
    for (size_t i = 0; i < count; i++)
        user_coupon_write_json(w, &list[i], now_us);
    json_w_arr_end(w);
    json_w_obj_end(w);
}
