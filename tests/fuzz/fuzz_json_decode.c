/*
 * JSON decoding by spec (core/json.c json_decode), with spec tables shaped as the handlers of
 * src/api/ declare them: a charge (any int64 amount, its own range code), an order (a required
 * array of item objects and an optional id), a product patch (present flags, null refused), a
 * coupon definition (bounded strings) and a product (a string that may be empty). The first
 * input byte picks the spec, the rest is the body. Beyond "no crash, no leak, no UB": after a
 * success every required field is set, every integer lies in its [min, max], every string is
 * valid UTF-8 without NUL whose length in code points lies in its bounds, every array's count
 * in its bounds and present flags say exactly which fields were given; a refusal carries
 * INVALID_INPUT or the spec's range code and a detail that is valid UTF-8. Decoding the
 * canonical text of the body (json_canonical) gives the same outcome and the same values: the
 * decoder reads meaning, not spelling.
 */
#include <stdbool.h>
#include <string.h>

#include "core/arena.h"
#include "core/err.h"
#include "core/json.h"
#include "domain/coupon.h"
#include "domain/order.h"
#include "domain/product.h"
#include "fuzz_common.h"
#include "fuzz_utf8.h"

struct item {
    int64_t product_id;
    int64_t quantity;
    const char *note;
};

struct in {
    int64_t a, b, c, d;
    const char *s, *t, *u, *v;
    bool has_a, has_b, has_s, has_t;
    struct json_objects items;
};

/* clang-format off */
static const struct json_spec item_spec[] = {
    JSON_INT("productId", JSON_REQUIRED, 1, INT64_MAX, ERR_INVALID_INPUT, struct item, product_id),
    JSON_INT("quantity", JSON_REQUIRED, 1, ORDER_QUANTITY_MAX, ERR_INVALID_INPUT, struct item,
             quantity),
    JSON_STR("note", 0, 0, 8, struct item, note),
    JSON_END,
};

static const struct json_spec charge_spec[] = {
    JSON_INT("amount", JSON_REQUIRED, INT64_MIN, INT64_MAX, ERR_INVALID_AMOUNT, struct in, a),
    JSON_END,
};

static const struct json_spec order_spec[] = {
    JSON_INT("userId", JSON_REQUIRED, 1, INT64_MAX, ERR_INVALID_INPUT, struct in, a),
    JSON_OBJECTS("items", JSON_REQUIRED, 1, ORDER_LINES_MAX, struct in, items, item_spec,
                 struct item),
    JSON_INT("couponId", 0, 1, INT64_MAX, ERR_INVALID_INPUT, struct in, b),
    JSON_END,
};

static const struct json_spec patch_spec[] = {
    JSON_STR_P("name", JSON_NOT_NULL, 1, PRODUCT_NAME_MAX, struct in, s, has_s),
    JSON_STR_P("description", JSON_NOT_NULL, 0, PRODUCT_DESCRIPTION_MAX, struct in, t, has_t),
    JSON_INT_P("price", JSON_NOT_NULL, 0, PRODUCT_PRICE_MAX_KRW, ERR_INVALID_INPUT, struct in, a,
               has_a),
    JSON_INT_P("stock", JSON_NOT_NULL, 0, PRODUCT_STOCK_MAX, ERR_INVALID_INPUT, struct in, b,
               has_b),
    JSON_END,
};

static const struct json_spec coupon_spec[] = {
    JSON_STR("name", JSON_REQUIRED, 1, COUPON_NAME_MAX, struct in, s),
    JSON_STR("discountType", JSON_REQUIRED, 1, 16, struct in, t),
    JSON_INT("discountValue", JSON_REQUIRED, 1, COUPON_FIXED_MAX_KRW, ERR_INVALID_INPUT, struct in,
             a),
    JSON_INT("totalQuantity", JSON_REQUIRED, 1, COUPON_QUANTITY_MAX, ERR_INVALID_INPUT, struct in,
             b),
    JSON_STR("startsAt", 0, 1, 64, struct in, u),
    JSON_STR("endsAt", 0, 1, 64, struct in, v),
    JSON_END,
};

static const struct json_spec product_spec[] = {
    JSON_STR("name", JSON_REQUIRED, 1, PRODUCT_NAME_MAX, struct in, s),
    JSON_STR("description", 0, 0, PRODUCT_DESCRIPTION_MAX, struct in, t),
    JSON_INT("price", JSON_REQUIRED, 0, PRODUCT_PRICE_MAX_KRW, ERR_INVALID_INPUT, struct in, a),
    JSON_INT("stock", JSON_REQUIRED, 0, PRODUCT_STOCK_MAX, ERR_INVALID_INPUT, struct in, c),
    JSON_END,
};
/* clang-format on */

static const struct json_spec *const specs[] = {charge_spec, order_spec, patch_spec, coupon_spec,
                                                product_spec};
#define NSPECS (sizeof(specs) / sizeof(specs[0]))

/* What a field that was not given keeps: no decoder writes these. */
#define UNSET_INT ((int64_t)0x5eed5eed5eed5eedLL)
static const char unset_str[] = "<unset>";

static void prefill(const struct json_spec *spec, void *out)
{
    for (const struct json_spec *f = spec; f->type != JSON_TYPE_END; f++) {
        char *p = (char *)out + f->offset;
        if (f->type == JSON_TYPE_INT)
            *(int64_t *)p = UNSET_INT;
        else if (f->type == JSON_TYPE_STRING)
            *(const char **)p = unset_str;
        if (f->present_offset != JSON_NO_FLAG)
            *(bool *)((char *)out + f->present_offset) = false;
    }
}

/* Whether field f is unset in out (items come zeroed from the arena, not prefilled). */
static bool is_unset(const struct json_spec *f, const void *out, bool zeroed)
{
    const char *p = (const char *)out + f->offset;

    if (f->type == JSON_TYPE_INT)
        return *(const int64_t *)p == (zeroed ? 0 : UNSET_INT);
    if (f->type == JSON_TYPE_STRING)
        return *(const char *const *)p == (zeroed ? NULL : unset_str);
    return ((const struct json_objects *)p)->items == NULL;
}

static void check_decoded(const struct json_spec *spec, const void *out, bool zeroed)
{
    for (const struct json_spec *f = spec; f->type != JSON_TYPE_END; f++) {
        const char *p = (const char *)out + f->offset;
        bool unset = is_unset(f, out, zeroed);

        if (f->present_offset != JSON_NO_FLAG)
            FUZZ_CHECK(*(const bool *)((const char *)out + f->present_offset) == !unset,
                       "present flag of '%s' does not match its value", f->name);
        if (unset) {
            FUZZ_CHECK(!(f->flags & JSON_REQUIRED), "required '%s' not set", f->name);
            continue;
        }
        if (f->type == JSON_TYPE_INT) {
            int64_t v = *(const int64_t *)p;
            FUZZ_CHECK(v >= f->min && v <= f->max, "'%s' = %lld out of range", f->name,
                       (long long)v);
        } else if (f->type == JSON_TYPE_STRING) {
            const char *s = *(const char *const *)p;
            size_t cps = 0;
            FUZZ_CHECK(fuzz_utf8_valid(s, strlen(s), &cps), "'%s' is not UTF-8", f->name);
            FUZZ_CHECK((int64_t)cps >= f->min && (int64_t)cps <= f->max, "'%s' has %zu code points",
                       f->name, cps);
        } else {
            const struct json_objects *o = (const struct json_objects *)p;
            FUZZ_CHECK((int64_t)o->count >= f->min && (int64_t)o->count <= f->max,
                       "'%s' has %zu items", f->name, o->count);
            for (size_t i = 0; i < o->count; i++)
                check_decoded(f->items, (const char *)o->items + i * f->item_size, true);
        }
    }
}

static bool same_decoded(const struct json_spec *spec, const void *x, const void *y)
{
    for (const struct json_spec *f = spec; f->type != JSON_TYPE_END; f++) {
        const char *p = (const char *)x + f->offset, *q = (const char *)y + f->offset;

        if (f->type == JSON_TYPE_INT) {
            if (*(const int64_t *)p != *(const int64_t *)q)
                return false;
        } else if (f->type == JSON_TYPE_STRING) {
            const char *s = *(const char *const *)p, *t = *(const char *const *)q;
            if ((s == NULL) != (t == NULL) || (s && strcmp(s, t)))
                return false;
        } else {
            const struct json_objects *o = (const void *)p, *r = (const void *)q;
            if (o->count != r->count)
                return false;
            for (size_t i = 0; i < o->count; i++)
                if (!same_decoded(f->items, (const char *)o->items + i * f->item_size,
                                  (const char *)r->items + i * f->item_size))
                    return false;
        }
        if (f->present_offset != JSON_NO_FLAG &&
            *(const bool *)((const char *)x + f->present_offset) !=
                *(const bool *)((const char *)y + f->present_offset))
            return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct arena a;
    struct in first, second;
    struct err e, e2;
    char *canonical;

    if (size < 1)
        return 0;
    const struct json_spec *spec = specs[data[0] % NSPECS];
    const char *body = (const char *)data + 1;
    size_t len = size - 1;

    arena_init(&a);
    memset(&first, 0, sizeof(first));
    memset(&second, 0, sizeof(second));
    prefill(spec, &first);
    prefill(spec, &second);
    err_clear(&e);
    err_clear(&e2);
    int rc = json_decode(body, len, spec, &first, &a, &e);
    if (rc == 0) {
        check_decoded(spec, &first, false);
    } else {
        FUZZ_CHECK(e.code == ERR_INVALID_INPUT || e.code == ERR_INVALID_AMOUNT, "code %d",
                   (int)e.code);
        FUZZ_CHECK(e.detail[0] != '\0', "refusal without a detail");
        FUZZ_CHECK(fuzz_utf8_valid(e.detail, strlen(e.detail), NULL),
                   "detail '%s' is not valid UTF-8", e.detail);
    }
    if (json_canonical(body, len, NULL, &a, &canonical, &e2) == 0) {
        int rc2 = json_decode(canonical, strlen(canonical), spec, &second, &a, &e2);
        FUZZ_CHECK(rc2 == rc, "decode of the canonical '%s' gives %d, of the body %d", canonical,
                   rc2, rc);
        if (rc == 0)
            FUZZ_CHECK(same_decoded(spec, &first, &second), "canonical '%s' decodes otherwise",
                       canonical);
        else
            FUZZ_CHECK(e2.code == e.code, "canonical refusal %d, body refusal %d", (int)e2.code,
                       (int)e.code);
    } else {
        FUZZ_CHECK(rc != 0, "a body that decodes has no canonical text: %s", e2.detail);
    }
    arena_release(&a);
    return 0;
}
