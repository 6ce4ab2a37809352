#include "domain/order_event.h"

#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/json.h"
#include "domain/order.h"

#include "core/banned.h"

struct event_in {
    const char *type;
    int64_t order_id;
    int64_t total_krw;
    const char *paid_at;
    struct json_objects items;
};

/* clang-format off */
static const struct json_spec line_spec[] = {
    JSON_INT("productId", JSON_REQUIRED, 1, INT64_MAX, ERR_INVALID_INPUT,
             struct order_event_line, product_id),
    JSON_INT("quantity", JSON_REQUIRED, 1, ORDER_QUANTITY_MAX, ERR_INVALID_INPUT,
             struct order_event_line, quantity),
    JSON_INT("subtotal", JSON_REQUIRED, 0, INT64_MAX, ERR_INVALID_INPUT,
             struct order_event_line, subtotal_krw),
    JSON_END,
};
static const struct json_spec event_spec[] = {
    JSON_STR("type", JSON_REQUIRED, 1, 32, struct event_in, type),
    JSON_INT("orderId", JSON_REQUIRED, 1, INT64_MAX, ERR_INVALID_INPUT, struct event_in, order_id),
    JSON_INT("totalAmount", JSON_REQUIRED, 0, INT64_MAX, ERR_INVALID_INPUT, struct event_in,
             total_krw),
    JSON_STR("paidAt", JSON_REQUIRED, 1, 40, struct event_in, paid_at),
    JSON_OBJECTS("items", JSON_REQUIRED, 1, ORDER_LINES_MAX, struct event_in, items, line_spec,
                 struct order_event_line),
    JSON_END,
};
/* clang-format on */

int order_event_parse(const char *payload, size_t len, struct arena *a, struct order_event *out,
                      struct err *e)
{
    struct event_in in = {0};

    if (json_decode(payload, len, event_spec, &in, a, e))
        return -1;
    if (strcmp(in.type, ORDER_EVENT_PAID) && strcmp(in.type, ORDER_EVENT_CANCELLED))
        return err_set(e, ERR_INVALID_INPUT, "type: unknown event type");
    if (clock_parse_rfc3339(in.paid_at, &out->paid_us))
        return err_set(e, ERR_INVALID_INPUT, "paidAt: not an RFC 3339 time");
    out->cancelled = !strcmp(in.type, ORDER_EVENT_CANCELLED);
    out->order_id = in.order_id;
    out->total_krw = in.total_krw;
    out->lines = in.items.items;
    out->count = in.items.count;
    return 0;
}

int64_t order_event_day(int64_t epoch_us)
{
    struct clock_civil c;

    clock_to_civil(epoch_us, &c);
    return (int64_t)c.year * 10000 + (int64_t)c.month * 100 + c.day;
}
