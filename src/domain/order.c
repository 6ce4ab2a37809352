#include "domain/order.h"

#include <stdlib.h>
#include <string.h>

#include "core/json.h"

#include "core/banned.h"

static const char *const status_names[] = {"PENDING", "PAID", "CANCELLED", "EXPIRED"};

const char *order_status_name(enum order_status s)
{
    return status_names[s];
}

int order_status_parse(const char *name, enum order_status *out)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, status_names[i])) {
            *out = (enum order_status)i;
            return 0;
        }
    return -1;
}

static int by_product(const void *a, const void *b)
{
    const struct order_item *x = a;
    const struct order_item *y = b;
    return (x->product_id > y->product_id) - (x->product_id < y->product_id);
}

int order_lines_normalise(struct order_item *items, size_t count, int64_t *duplicate_id)
{
    qsort(items, count, sizeof(*items), by_product);
    for (size_t i = 1; i < count; i++)
        if (items[i].product_id == items[i - 1].product_id) {
            *duplicate_id = items[i].product_id;
            return -1;
        }
    return 0;
}

bool order_can_pay(enum order_status s)
{
    return s == ORDER_PENDING;
}

bool order_can_cancel(enum order_status s)
{
    return s == ORDER_PENDING || s == ORDER_PAID;
}

void order_total(struct order *o, int64_t discount_krw)
{
    o->subtotal_krw = 0;
    for (size_t i = 0; i < o->count; i++)
        o->subtotal_krw += o->items[i].subtotal_krw; /* ≤ 50 × 1e12: no overflow */
    o->discount_krw = discount_krw;
    o->total_krw = o->subtotal_krw - discount_krw;
}

static void write_items(struct json_w *w, const struct order *o)
{
    json_w_arr_begin(w, "items");
    for (size_t i = 0; i < o->count; i++) {
        const struct order_item *it = &o->items[i];
        json_w_obj_begin(w, NULL);
        json_w_int(w, "productId", it->product_id);
        json_w_str(w, "productName", it->product_name);
        json_w_int(w, "quantity", it->quantity);
        json_w_int(w, "unitPrice", it->unit_price_krw);
        json_w_int(w, "subtotal", it->subtotal_krw);
        json_w_obj_end(w);
    }
    json_w_arr_end(w);
}

void order_write_json(struct json_w *w, const struct order *o)
{
    json_w_obj_begin(w, NULL);
    json_w_int(w, "orderId", o->order_id);
    json_w_int(w, "userId", o->user_id);
    json_w_str(w, "status", order_status_name(o->status));
    write_items(w, o);
    json_w_int(w, "subtotalAmount", o->subtotal_krw);
    json_w_int(w, "discountAmount", o->discount_krw);
    json_w_int(w, "totalAmount", o->total_krw);
    if (o->coupon_id)
        json_w_int(w, "couponId", o->coupon_id);
    else
        json_w_null(w, "couponId");
    json_w_time(w, "createdAt", o->created_us);
    json_w_time(w, "expiresAt", o->expires_us);
    json_w_time_or_null(w, "paidAt", o->paid_us, !o->paid_us);
    json_w_obj_end(w);
}

void order_page_write_json(struct json_w *w, const struct order *orders, size_t count, bool more)
{
    json_w_obj_begin(w, NULL);
    json_w_arr_begin(w, "orders");
    for (size_t i = 0; i < count; i++)
        order_write_json(w, &orders[i]);
    json_w_arr_end(w);
    json_w_cursor(w, "nextCursor", more, count ? orders[count - 1].order_id : 0);
    json_w_obj_end(w);
}

void payment_write_json(struct json_w *w, const struct payment *p)
{
    json_w_obj_begin(w, NULL);
    json_w_int(w, "paymentId", p->payment_id);
    json_w_int(w, "orderId", p->order_id);
    json_w_int(w, "paidAmount", p->paid_krw);
    json_w_int(w, "remainingBalance", p->remaining_balance_krw);
    json_w_str(w, "status", "PAID");
    json_w_time(w, "paidAt", p->paid_us);
    json_w_obj_end(w);
}

void order_write_event(struct json_w *w, const char *type, const struct order *o, int64_t at_us)
{
    json_w_obj_begin(w, NULL);
    json_w_str(w, "type", type);
    json_w_int(w, "orderId", o->order_id);
    json_w_int(w, "userId", o->user_id);
    json_w_int(w, "totalAmount", o->total_krw);
    json_w_time(w, "occurredAt", at_us);
    json_w_time(w, "paidAt", o->paid_us);
    write_items(w, o);
    json_w_obj_end(w);
}
