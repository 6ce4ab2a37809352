#ifndef SHOPD_DOMAIN_ORDER_EVENT_H
#define SHOPD_DOMAIN_ORDER_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The order events as their consumers read them back (the payload order_write_event() wrote
 * into the outbox): what was paid or cancelled, for how much, and the payment's time, which is
 * the UTC day a paid order counts on and its cancellation is taken off. Pure.
 */

struct arena;
struct err;

#define ORDER_EVENT_PAID      "order.paid"
#define ORDER_EVENT_CANCELLED "order.cancelled"

struct order_event_line {
    int64_t product_id;
    int64_t quantity;
    int64_t subtotal_krw;
};

struct order_event {
    bool cancelled; /* order.cancelled: undoes an earlier order.paid */
    int64_t order_id;
    int64_t total_krw;
    int64_t paid_us;
    struct order_event_line *lines;
    size_t count;
};

/* Reads an event payload; ERR_INVALID_INPUT (naming the field) when it is not one. */
int order_event_parse(const char *payload, size_t len, struct arena *a, struct order_event *out,
                      struct err *e);

/* The UTC day of epoch_us as the number YYYYMMDD (the ranking's day keys). */
int64_t order_event_day(int64_t epoch_us);

#endif
