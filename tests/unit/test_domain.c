/*
 * The rules of src/domain/, one group per module. Each rule is pinned at its edges (the last
 * value allowed and the first refused) so that a mutated rule fails a test:
 * scripts/mutate-domain.sh mutates each rule in a copy and checks that this binary fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/arena.h"
#include "core/array.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/json.h"
#include "domain/balance.h"
#include "domain/cart.h"
#include "domain/coupon.h"
#include "domain/money.h"
#include "domain/order.h"
#include "domain/order_event.h"
#include "domain/product.h"

#define SEC 1000000LL /* microseconds */

static struct arena arena;

static int setup(void **state)
{
    arena_init(&arena);
    return 0;
}

static int teardown(void **state)
{
    arena_release(&arena);
    return 0;
}

/* Fails unless text contains needle (a JSON member as json_w writes it: no spaces). */
static void assert_has(const char *text, const char *needle)
{
    if (!strstr(text, needle))
        fail_msg("'%s' not in %s", needle, text);
}

/* ---- domain/money.h ---- */

static void test_money_balance_edges(void **state)
{
    int64_t after = -1;

    assert_true(money_balance_after(0, 0, &after));
    assert_int_equal(after, 0);
    assert_true(money_balance_after(100, -100, &after)); /* spending everything is allowed */
    assert_int_equal(after, 0);
    assert_true(money_balance_after(MONEY_BALANCE_MAX_KRW - 5, 5, &after)); /* up to the cap */
    assert_int_equal(after, MONEY_BALANCE_MAX_KRW);
    assert_true(money_balance_after(7, 3, &after));
    assert_int_equal(after, 10);
}

static void test_money_balance_refused(void **state)
{
    int64_t after = 42;

    assert_false(money_balance_after(100, -101, &after)); /* below zero */
    assert_false(money_balance_after(MONEY_BALANCE_MAX_KRW, 1, &after)); /* past the cap */
    assert_false(money_balance_after(INT64_MAX, 1, &after));             /* overflow */
    assert_false(money_balance_after(INT64_MIN, -1, &after));
    assert_int_equal(after, 42); /* untouched when refused */
}

/* ---- domain/coupon.h ---- */

static struct coupon coupon_of(enum coupon_type type, int64_t value)
{
    struct coupon c = {.coupon_id = 3,
                       .name = "spring",
                       .type = type,
                       .value = value,
                       .total_quantity = 10,
                       .issued_quantity = 3,
                       .starts_us = 1000 * SEC,
                       .ends_us = 2000 * SEC};
    return c;
}

static void test_coupon_names(void **state)
{
    enum coupon_type t = COUPON_FIXED;
    enum coupon_status s = COUPON_AVAILABLE;

    assert_string_equal(coupon_type_name(COUPON_RATE), "RATE");
    assert_string_equal(coupon_type_name(COUPON_FIXED), "FIXED");
    assert_int_equal(coupon_type_parse("RATE", &t), 0);
    assert_int_equal(t, COUPON_RATE);
    assert_int_equal(coupon_type_parse("FIXED", &t), 0);
    assert_int_equal(t, COUPON_FIXED);
    assert_int_equal(coupon_type_parse("rate", &t), -1);
    assert_string_equal(coupon_status_name(COUPON_AVAILABLE), "AVAILABLE");
    assert_string_equal(coupon_status_name(COUPON_USED), "USED");
    assert_string_equal(coupon_status_name(COUPON_EXPIRED), "EXPIRED");
    assert_int_equal(coupon_status_parse("EXPIRED", &s), 0);
    assert_int_equal(s, COUPON_EXPIRED);
    assert_int_equal(coupon_status_parse("USED", &s), 0);
    assert_int_equal(s, COUPON_USED);
    assert_int_equal(coupon_status_parse("GONE", &s), -1);
}

static void assert_valid(const struct coupon *c, int want)
{
    const char *why = NULL;

    assert_int_equal(coupon_validate(c, &why), want);
    if (want)
        assert_non_null(why);
}

static void test_coupon_validate_rate(void **state)
{
    struct coupon c = coupon_of(COUPON_RATE, 0);

    assert_valid(&c, -1);
    c.value = 1;
    assert_valid(&c, 0);
    c.value = COUPON_RATE_MAX;
    assert_valid(&c, 0);
    c.value = COUPON_RATE_MAX + 1;
    assert_valid(&c, -1);
}

static void test_coupon_validate_fixed(void **state)
{
    struct coupon c = coupon_of(COUPON_FIXED, 0);

    assert_valid(&c, -1);
    c.value = 1;
    assert_valid(&c, 0);
    c.value = 5000; /* above the RATE maximum: a FIXED amount is not a percentage */
    assert_valid(&c, 0);
    c.value = COUPON_FIXED_MAX_KRW;
    assert_valid(&c, 0);
    c.value = COUPON_FIXED_MAX_KRW + 1;
    assert_valid(&c, -1);
}

static void test_coupon_validate_window(void **state)
{
    struct coupon c = coupon_of(COUPON_FIXED, 100);

    c.ends_us = c.starts_us + 1;
    assert_valid(&c, 0);
    c.ends_us = c.starts_us; /* an empty window */
    assert_valid(&c, -1);
    c.ends_us = c.starts_us - 1;
    assert_valid(&c, -1);
    c.ends_us = 0; /* no end */
    assert_valid(&c, 0);
}

static void test_coupon_active_window(void **state)
{
    struct coupon c = coupon_of(COUPON_RATE, 10);

    assert_false(coupon_active_at(&c, c.starts_us - 1));
    assert_true(coupon_active_at(&c, c.starts_us)); /* the start is inside */
    assert_true(coupon_active_at(&c, c.ends_us - 1));
    assert_false(coupon_active_at(&c, c.ends_us)); /* the end is not */
    c.ends_us = 0;
    assert_true(coupon_active_at(&c, INT64_MAX)); /* no end: active for ever */
    assert_false(coupon_active_at(&c, c.starts_us - 1));
}

static void test_user_coupon_expiry(void **state)
{
    struct user_coupon uc = {.user_coupon_id = 9, .user_id = 1, .status = COUPON_AVAILABLE};

    uc.coupon = coupon_of(COUPON_RATE, 10);
    assert_int_equal(user_coupon_status_at(&uc, uc.coupon.ends_us - 1), COUPON_AVAILABLE);
    assert_int_equal(user_coupon_status_at(&uc, uc.coupon.ends_us), COUPON_EXPIRED);
    assert_int_equal(user_coupon_status_at(&uc, uc.coupon.ends_us + 1), COUPON_EXPIRED);
    uc.status = COUPON_USED; /* a used coupon stays used after the window */
    assert_int_equal(user_coupon_status_at(&uc, uc.coupon.ends_us + 1), COUPON_USED);
    uc.status = COUPON_AVAILABLE;
    uc.coupon.ends_us = 0; /* no end: never expires */
    assert_int_equal(user_coupon_status_at(&uc, INT64_MAX), COUPON_AVAILABLE);
}

static void test_coupon_discount_rate_floors(void **state)
{
    struct coupon c = coupon_of(COUPON_RATE, 10);

    assert_int_equal(coupon_discount(&c, 999), 99); /* 99.9 floors, never rounds up */
    assert_int_equal(coupon_discount(&c, 1000), 100);
    assert_int_equal(coupon_discount(&c, 9), 0);
    c.value = 33;
    assert_int_equal(coupon_discount(&c, 100), 33);
    assert_int_equal(coupon_discount(&c, 101), 33); /* 33.33 */
    assert_int_equal(coupon_discount(&c, 199), 65); /* 65.67 */
    c.value = 100;
    assert_int_equal(coupon_discount(&c, 12345), 12345); /* 100 % is the whole subtotal */
    c.value = 1;
    assert_int_equal(coupon_discount(&c, 50LL * 1000000000000LL), 500000000000LL); /* no overflow */
}

static void test_coupon_discount_fixed_capped(void **state)
{
    struct coupon c = coupon_of(COUPON_FIXED, 5000);

    assert_int_equal(coupon_discount(&c, 20000), 5000);
    assert_int_equal(coupon_discount(&c, 5000), 5000);
    assert_int_equal(coupon_discount(&c, 3000), 3000); /* never more than the subtotal */
    assert_int_equal(coupon_discount(&c, 0), 0);
}

static void test_coupon_json(void **state)
{
    struct coupon c = coupon_of(COUPON_FIXED, 5000);
    struct json_w w;

    json_w_init(&w, &arena);
    coupon_write_json(&w, &c);
    const char *text = json_w_text(&w, NULL);
    assert_has(text, "\"discountType\":\"FIXED\"");
    assert_has(text, "\"discountValue\":5000");
    assert_has(text, "\"totalQuantity\":10");
    assert_has(text, "\"issuedQuantity\":3");
    assert_has(text, "\"remainingQuantity\":7");
    assert_has(text, "\"startsAt\":\"1970-01-01T00:16:40");

    c.ends_us = 0;
    json_w_init(&w, &arena);
    coupon_write_json(&w, &c);
    assert_has(json_w_text(&w, NULL), "\"endsAt\":null");
}

static void test_user_coupon_json_shows_expiry(void **state)
{
    struct user_coupon uc = {.user_coupon_id = 9, .user_id = 1, .status = COUPON_AVAILABLE};
    struct json_w w;

    uc.coupon = coupon_of(COUPON_RATE, 10);
    json_w_init(&w, &arena);
    user_coupon_write_json(&w, &uc, uc.coupon.ends_us);
    const char *text = json_w_text(&w, NULL);
    assert_has(text, "\"status\":\"EXPIRED\"");
    assert_has(text, "\"usedAt\":null");
    json_w_init(&w, &arena);
    user_coupon_write_json(&w, &uc, uc.coupon.starts_us);
    assert_has(json_w_text(&w, NULL), "\"status\":\"AVAILABLE\"");
}

/* ---- domain/order.h ---- */

static void test_order_status_names(void **state)
{
    static const char *const names[] = {"PENDING", "PAID", "CANCELLED", "EXPIRED"};
    enum order_status s;

    for (int i = 0; i < 4; i++) {
        assert_string_equal(order_status_name((enum order_status)i), names[i]);
        s = ORDER_PENDING;
        assert_int_equal(order_status_parse(names[i], &s), 0);
        assert_int_equal(s, i);
    }
    assert_int_equal(order_status_parse("REFUNDED", &s), -1);
    assert_int_equal(order_status_parse("", &s), -1);
}

/* The state machine: PENDING → PAID | CANCELLED | EXPIRED, PAID → CANCELLED; nothing else. */
static void test_order_can_pay_only_pending(void **state)
{
    assert_true(order_can_pay(ORDER_PENDING));
    assert_false(order_can_pay(ORDER_PAID)); /* no second payment */
    assert_false(order_can_pay(ORDER_CANCELLED));
    assert_false(order_can_pay(ORDER_EXPIRED)); /* an expired order cannot be paid */
}

static void test_order_can_cancel(void **state)
{
    assert_true(order_can_cancel(ORDER_PENDING));
    assert_true(order_can_cancel(ORDER_PAID)); /* refunded */
    assert_false(order_can_cancel(ORDER_CANCELLED)); /* no second cancel (no second refund) */
    assert_false(order_can_cancel(ORDER_EXPIRED));
}

static void test_order_lines_sorted(void **state)
{
    struct order_item items[] = {{.product_id = 30}, {.product_id = 10}, {.product_id = 20}};
    int64_t dup = 0;

    assert_int_equal(order_lines_normalise(items, 3, &dup), 0);
    assert_int_equal(items[0].product_id, 10);
    assert_int_equal(items[1].product_id, 20);
    assert_int_equal(items[2].product_id, 30);
    assert_int_equal(dup, 0);
    assert_int_equal(order_lines_normalise(items, 1, &dup), 0);
    assert_int_equal(order_lines_normalise(items, 0, &dup), 0);
}

static void test_order_lines_duplicate(void **state)
{
    struct order_item items[] = {
        {.product_id = 7}, {.product_id = 3}, {.product_id = 9}, {.product_id = 3}};
    struct order_item last[] = {{.product_id = 5}, {.product_id = 8}, {.product_id = 8}};
    int64_t dup = 0;

    assert_int_equal(order_lines_normalise(items, 4, &dup), -1);
    assert_int_equal(dup, 3);
    dup = 0;
    assert_int_equal(order_lines_normalise(last, 3, &dup), -1); /* the last pair counts too */
    assert_int_equal(dup, 8);
}

static void test_order_total(void **state)
{
    struct order_item items[] = {{.product_id = 1, .quantity = 2, .unit_price_krw = 1500,
                                  .subtotal_krw = 3000},
                                 {.product_id = 2, .quantity = 1, .unit_price_krw = 700,
                                  .subtotal_krw = 700}};
    struct order o = {.items = items, .count = 2};

    order_total(&o, 370);
    assert_int_equal(o.subtotal_krw, 3700);
    assert_int_equal(o.discount_krw, 370);
    assert_int_equal(o.total_krw, 3330);
    order_total(&o, 0); /* recomputed from scratch, not added to */
    assert_int_equal(o.subtotal_krw, 3700);
    assert_int_equal(o.total_krw, 3700);
    o.count = 0;
    order_total(&o, 0);
    assert_int_equal(o.subtotal_krw, 0);
    assert_int_equal(o.total_krw, 0);
}

static struct order sample_order(struct order_item *items)
{
    items[0] = (struct order_item){.product_id = 4,
                                   .product_name = "mug",
                                   .quantity = 2,
                                   .unit_price_krw = 1500,
                                   .subtotal_krw = 3000};
    struct order o = {.order_id = 77,
                      .user_id = 5,
                      .status = ORDER_PAID,
                      .items = items,
                      .count = 1,
                      .subtotal_krw = 3000,
                      .discount_krw = 300,
                      .total_krw = 2700,
                      .created_us = 1700000000 * SEC,
                      .expires_us = 1700000900 * SEC,
                      .paid_us = 1700000100 * SEC};
    return o;
}

static void test_order_json(void **state)
{
    struct order_item items[1];
    struct order o = sample_order(items);
    struct json_w w;

    json_w_init(&w, &arena);
    order_write_json(&w, &o);
    const char *text = json_w_text(&w, NULL);
    assert_has(text, "\"status\":\"PAID\"");
    assert_has(text, "\"subtotalAmount\":3000");
    assert_has(text, "\"discountAmount\":300");
    assert_has(text, "\"totalAmount\":2700");
    assert_has(text, "\"couponId\":null");
    assert_has(text, "\"unitPrice\":1500");
    assert_has(text, "\"paidAt\":\"2023-11-14T22:15:00");

    o.paid_us = 0;
    o.coupon_id = 12;
    json_w_init(&w, &arena);
    order_write_json(&w, &o);
    text = json_w_text(&w, NULL);
    assert_has(text, "\"paidAt\":null");
    assert_has(text, "\"couponId\":12");
}

static void test_payment_json(void **state)
{
    struct payment p = {.payment_id = 8, .order_id = 77, .paid_krw = 2700,
                        .remaining_balance_krw = 300, .paid_us = 1700000100 * SEC};
    struct json_w w;

    json_w_init(&w, &arena);
    payment_write_json(&w, &p);
    const char *text = json_w_text(&w, NULL);
    assert_has(text, "\"paidAmount\":2700");
    assert_has(text, "\"remainingBalance\":300");
    assert_has(text, "\"status\":\"PAID\"");
}

/* ---- domain/order_event.h ---- */

static void round_trip_event(const char *type, struct order_event *out)
{
    struct order_item items[1];
    struct order o = sample_order(items);
    struct json_w w;
    size_t len;
    struct err e;

    json_w_init(&w, &arena);
    order_write_event(&w, type, &o, o.paid_us + 5 * SEC);
    const char *text = json_w_text(&w, &len);
    if (order_event_parse(text, len, &arena, out, &e))
        fail_msg("%s: %s", text, e.detail);
}

static void test_order_event_round_trip(void **state)
{
    struct order_event ev;

    round_trip_event(ORDER_EVENT_PAID, &ev);
    assert_false(ev.cancelled);
    assert_int_equal(ev.order_id, 77);
    assert_int_equal(ev.total_krw, 2700);
    assert_int_equal(ev.paid_us, 1700000100 * SEC); /* the payment's time, not the event's */
    assert_int_equal(ev.count, 1);
    assert_int_equal(ev.lines[0].product_id, 4);
    assert_int_equal(ev.lines[0].quantity, 2);
    assert_int_equal(ev.lines[0].subtotal_krw, 3000);

    round_trip_event(ORDER_EVENT_CANCELLED, &ev);
    assert_true(ev.cancelled);
    assert_int_equal(ev.paid_us, 1700000100 * SEC);
}

static void test_order_event_rejected(void **state)
{
    static const char *const bad[] = {
        "{\"type\":\"order.shipped\",\"orderId\":1,\"totalAmount\":5,"
        "\"paidAt\":\"2024-01-01T00:00:00Z\",\"items\":[{\"productId\":1,\"quantity\":1,"
        "\"subtotal\":5}]}",
        "{\"type\":\"order.paid\",\"orderId\":1,\"totalAmount\":5,"
        "\"paidAt\":\"yesterday\",\"items\":[{\"productId\":1,\"quantity\":1,\"subtotal\":5}]}",
        "{\"type\":\"order.paid\",\"orderId\":1,\"totalAmount\":5,"
        "\"paidAt\":\"2024-01-01T00:00:00Z\",\"items\":[]}",
        "{\"type\":\"order.paid\",\"orderId\":0,\"totalAmount\":5,"
        "\"paidAt\":\"2024-01-01T00:00:00Z\",\"items\":[{\"productId\":1,\"quantity\":1,"
        "\"subtotal\":5}]}",
    };
    struct order_event ev;
    struct err e;

    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        err_clear(&e);
        if (!order_event_parse(bad[i], strlen(bad[i]), &arena, &ev, &e))
            fail_msg("accepted: %s", bad[i]);
        assert_int_equal(e.code, ERR_INVALID_INPUT);
    }
}

static void test_order_event_day_utc(void **state)
{
    int64_t midnight = 1704067200 * SEC; /* 2024-01-01T00:00:00Z */

    assert_int_equal(order_event_day(midnight), 20240101);
    assert_int_equal(order_event_day(midnight - 1), 20231231); /* the last microsecond before */
    assert_int_equal(order_event_day(midnight + 86400 * SEC - 1), 20240101);
    assert_int_equal(order_event_day(951782400 * SEC), 20000229); /* a leap day */
}

/* ---- domain/balance.h ---- */

static void test_balance_entry_types(void **state)
{
    static const char *const names[] = {"CHARGE", "PAYMENT", "REFUND"};
    enum balance_entry_type t;

    for (int i = 0; i < 3; i++) {
        assert_string_equal(balance_entry_type_name((enum balance_entry_type)i), names[i]);
        t = BALANCE_CHARGE;
        assert_int_equal(balance_entry_type_parse(names[i], &t), 0);
        assert_int_equal(t, i);
    }
    assert_int_equal(balance_entry_type_parse("charge", &t), -1);
    assert_int_equal(balance_entry_type_parse("WITHDRAWAL", &t), -1);
}

/* ---- domain/cart.h ---- */

static void test_cart_add_item(void **state)
{
    struct cart_item items[2];
    struct cart c = {.user_id = 1, .items = items};
    struct product mug = {.product_id = 4, .name = "mug", .price_krw = 1500, .stock = 3};
    struct product pen = {.product_id = 6, .name = "pen", .price_krw = 700, .stock = 1};

    cart_add_item(&c, &mug, 3);
    cart_add_item(&c, &pen, 2);
    assert_int_equal(c.count, 2);
    assert_int_equal(items[0].subtotal_krw, 4500);
    assert_int_equal(items[0].unit_price_krw, 1500);
    assert_true(items[0].stock_available); /* exactly the stock is available */
    assert_int_equal(items[1].subtotal_krw, 1400);
    assert_false(items[1].stock_available); /* one short */
    assert_int_equal(c.total_krw, 5900);
}

static void test_cart_lines_round_trip(void **state)
{
    const struct cart_line lines[] = {{4, 1}, {6, CART_QUANTITY_MAX}};
    struct cart_line *back = NULL;
    size_t n = 0;

    const char *text = cart_lines_to_json(lines, 2, &arena);
    assert_int_equal(cart_lines_from_json(text, &arena, &back, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(back[0].product_id, 4);
    assert_int_equal(back[0].quantity, 1);
    assert_int_equal(back[1].product_id, 6);
    assert_int_equal(back[1].quantity, CART_QUANTITY_MAX);
    text = cart_lines_to_json(lines, 0, &arena);
    assert_int_equal(cart_lines_from_json(text, &arena, &back, &n), 0);
    assert_int_equal(n, 0);
}

static void test_cart_lines_rejected(void **state)
{
    static const char *const bad[] = {
        "{\"lines\":[{\"productId\":4,\"quantity\":0}]}",
        "{\"lines\":[{\"productId\":4,\"quantity\":1001}]}",
        "{\"lines\":[{\"productId\":0,\"quantity\":1}]}",
        "{\"lines\":[{\"quantity\":1}]}",
        "{}",
        "not json",
    };
    struct cart_line *lines;
    size_t n;

    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        if (!cart_lines_from_json(bad[i], &arena, &lines, &n))
            fail_msg("accepted: %s", bad[i]);
}

/* ---- domain/product.h ---- */

static void test_product_patch(void **state)
{
    struct product p = {.product_id = 4, .name = "mug", .description = "white", .price_krw = 1500,
                        .stock = 3};
    struct product_patch none = {.name = "x", .description = "y", .price_krw = 1, .stock = 1};
    struct product_patch price = {.price_krw = 1800, .has_price = true};
    struct product_patch all = {.name = "cup", .description = "", .price_krw = 0, .stock = 0,
                                .has_name = true, .has_description = true, .has_price = true,
                                .has_stock = true};

    product_apply_patch(&p, &none); /* fields without their flag do not change */
    assert_string_equal(p.name, "mug");
    assert_string_equal(p.description, "white");
    assert_int_equal(p.price_krw, 1500);
    assert_int_equal(p.stock, 3);
    product_apply_patch(&p, &price);
    assert_int_equal(p.price_krw, 1800);
    assert_int_equal(p.stock, 3);
    product_apply_patch(&p, &all);
    assert_string_equal(p.name, "cup");
    assert_string_equal(p.description, "");
    assert_int_equal(p.price_krw, 0);
    assert_int_equal(p.stock, 0);
    assert_int_equal(p.product_id, 4);
}

static void test_product_json_round_trip(void **state)
{
    struct product p = {.product_id = 4, .name = "mug \"big\"", .description = "",
                        .price_krw = PRODUCT_PRICE_MAX_KRW, .stock = 0};
    struct product back;

    const char *text = product_to_json(&p, &arena);
    assert_int_equal(product_from_json(text, &arena, &back), 0);
    assert_int_equal(back.product_id, 4);
    assert_string_equal(back.name, "mug \"big\"");
    assert_string_equal(back.description, "");
    assert_int_equal(back.price_krw, PRODUCT_PRICE_MAX_KRW);
    assert_int_equal(back.stock, 0);
    assert_int_equal(product_from_json("{\"productId\":4}", &arena, &back), -1);
    assert_int_equal(product_from_json("{\"productId\":4,\"name\":\"a\",\"description\":\"\","
                                       "\"price\":-1,\"stock\":0}",
                                       &arena, &back),
                     -1);
}

static void test_product_top_json(void **state)
{
    const struct product_rank ranks[] = {{4, "mug", 9, 13500}, {6, "pen", 2, 1400}};

    const char *text = product_top_to_json(3, ranks, 2, &arena);
    assert_has(text, "\"period\":\"3days\"");
    assert_has(text, "{\"rank\":1,\"productId\":4,\"name\":\"mug\",\"salesCount\":9,"
                     "\"revenue\":13500}");
    assert_has(text, "{\"rank\":2,\"productId\":6");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_money_balance_edges),
        cmocka_unit_test(test_money_balance_refused),
        cmocka_unit_test(test_coupon_names),
        cmocka_unit_test(test_coupon_validate_rate),
        cmocka_unit_test(test_coupon_validate_fixed),
        cmocka_unit_test(test_coupon_validate_window),
        cmocka_unit_test(test_coupon_active_window),
        cmocka_unit_test(test_user_coupon_expiry),
        cmocka_unit_test(test_coupon_discount_rate_floors),
        cmocka_unit_test(test_coupon_discount_fixed_capped),
        cmocka_unit_test(test_coupon_json),
        cmocka_unit_test(test_user_coupon_json_shows_expiry),
        cmocka_unit_test(test_order_status_names),
        cmocka_unit_test(test_order_can_pay_only_pending),
        cmocka_unit_test(test_order_can_cancel),
        cmocka_unit_test(test_order_lines_sorted),
        cmocka_unit_test(test_order_lines_duplicate),
        cmocka_unit_test(test_order_total),
        cmocka_unit_test(test_order_json),
        cmocka_unit_test(test_payment_json),
        cmocka_unit_test(test_order_event_round_trip),
        cmocka_unit_test(test_order_event_rejected),
        cmocka_unit_test(test_order_event_day_utc),
        cmocka_unit_test(test_balance_entry_types),
        cmocka_unit_test(test_cart_add_item),
        cmocka_unit_test(test_cart_lines_round_trip),
        cmocka_unit_test(test_cart_lines_rejected),
        cmocka_unit_test(test_product_patch),
        cmocka_unit_test(test_product_json_round_trip),
        cmocka_unit_test(test_product_top_json),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
