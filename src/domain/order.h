#ifndef SHOPD_DOMAIN_ORDER_H
#define SHOPD_DOMAIN_ORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Orders and payments (API.md "Orders and payments"): the lines, the amounts, and the state
 * machine PENDING → PAID | CANCELLED | EXPIRED, PAID → CANCELLED. Pure.
 */

struct json_w;

#define ORDER_LINES_MAX    50
#define ORDER_QUANTITY_MAX 1000

enum order_status { ORDER_PENDING, ORDER_PAID, ORDER_CANCELLED, ORDER_EXPIRED };

struct order_item {
    int64_t product_id;
    const char *product_name;
    int64_t quantity;
    int64_t unit_price_krw;
    int64_t subtotal_krw;
};

struct order {
    int64_t order_id;
    int64_t user_id;
    enum order_status status;
    struct order_item *items;
    size_t count;
    int64_t subtotal_krw;
    int64_t discount_krw;
    int64_t total_krw;
    int64_t coupon_id; /* 0: none */
    int64_t user_coupon_id;
    int64_t created_us;
    int64_t expires_us;
    int64_t paid_us; /* 0 while unpaid */
};

struct payment {
    int64_t payment_id;
    int64_t order_id;
    int64_t paid_krw;
    int64_t remaining_balance_krw;
    int64_t paid_us;
};

const char *order_status_name(enum order_status s);
int order_status_parse(const char *name, enum order_status *out);

/* Sorts lines by product id (the order rows are locked in) and refuses a product twice. */
int order_lines_normalise(struct order_item *items, size_t count, int64_t *duplicate_id);

bool order_can_pay(enum order_status s);
bool order_can_cancel(enum order_status s);

/* Sums the lines' subtotals into the order's amounts, less discount_krw. */
void order_total(struct order *o, int64_t discount_krw);

void order_write_json(struct json_w *w, const struct order *o);
void payment_write_json(struct json_w *w, const struct payment *p);
/* A page of orders: {"orders": [...], "nextCursor"} (more: another page follows). */
void order_page_write_json(struct json_w *w, const struct order *orders, size_t count, bool more);

/* The data platform's event for a paid or cancelled order (which was paid: paidAt is the day
 * both count on); read back by domain/order_event.h. */
void order_write_event(struct json_w *w, const char *type, const struct order *o, int64_t at_us);

#endif
