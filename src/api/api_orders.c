#include "api/api_orders.h"

#include "api/api_common.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/json.h"
#include "domain/order.h"
#include "http/req.h"
#include "http/resp.h"
#include "service/order_svc.h"

#include "core/banned.h"

#define LIST_DEFAULT_LIMIT 20
#define LIST_MAX_LIMIT     100

struct create_in {
    int64_t user_id;
    struct json_objects items;
    int64_t coupon_id;
};

static const struct json_spec item_spec[] = {
    JSON_INT("productId", JSON_REQUIRED, 1, INT64_MAX, ERR_INVALID_INPUT, struct order_item,
             product_id),
    JSON_INT("quantity", JSON_REQUIRED, 1, ORDER_QUANTITY_MAX, ERR_INVALID_INPUT, struct order_item,
             quantity),
    JSON_END,
};

static const struct json_spec create_spec[] = {
    JSON_INT("userId", JSON_REQUIRED, 1, INT64_MAX, ERR_INVALID_INPUT, struct create_in, user_id),
    JSON_OBJECTS("items", JSON_REQUIRED, 1, ORDER_LINES_MAX, struct create_in, items, item_spec,
                 struct order_item),
    JSON_INT("couponId", 0, 1, INT64_MAX, ERR_INVALID_INPUT, struct create_in, coupon_id),
    JSON_END,
};

struct user_in {
    int64_t user_id;
};

static const struct json_spec user_spec[] = {
    JSON_INT("userId", JSON_REQUIRED, 1, INT64_MAX, ERR_INVALID_INPUT, struct user_in, user_id),
    JSON_END,
};

/* Checks the token is the body's user's, and reads the idempotency key. */
static int prepare(struct req *req, int64_t user_id, const struct json_keyed *body,
                   struct idem_request *idem, struct err *e)
{
    if (api_require_user(req, user_id, e))
        return -1;
    return api_idem_prepare(req, user_id, body, idem, e);
}

/* Every 400 a body can earn comes before the idempotency key is asked for (the order of
 * checks on each idempotent route: input, token, key). */
static int check_lines(struct create_in *in, struct err *e)
{
    int64_t dup;

    if (order_lines_normalise(in->items.items, in->items.count, &dup))
        return err_set(e, ERR_INVALID_INPUT, "product %lld appears twice in 'items'",
                       (long long)dup);
    return 0;
}

int api_orders_create(struct req *req, struct resp *resp, struct err *e)
{
    struct create_in in = {0};
    struct json_keyed body;
    struct idem_request idem;
    struct idem_response out;

    if (api_decode_keyed(req, create_spec, &in, &body, e) || check_lines(&in, e) ||
        prepare(req, in.user_id, &body, &idem, e))
        return -1;
    struct order_request rq = {in.user_id, in.items.items, in.items.count, in.coupon_id};
    if (order_svc_create(api_svc(req), &idem, &rq, &req->arena, &out, e))
        return -1;
    api_send_idem(resp, &out);
    return 0;
}

int api_orders_pay(struct req *req, struct resp *resp, struct err *e)
{
    struct user_in in = {0};
    struct json_keyed body;
    struct idem_request idem;
    struct idem_response out;

    if (api_decode_keyed(req, user_spec, &in, &body, e) ||
        prepare(req, in.user_id, &body, &idem, e) ||
        order_svc_pay(api_svc(req), &idem, req_param(req, 0), &req->arena, &out, e))
        return -1;
    api_send_idem(resp, &out);
    return 0;
}

int api_orders_cancel(struct req *req, struct resp *resp, struct err *e)
{
    struct user_in in = {0};
    struct json_keyed body;
    struct idem_request idem;
    struct idem_response out;

    if (api_decode_keyed(req, user_spec, &in, &body, e) ||
        prepare(req, in.user_id, &body, &idem, e) ||
        order_svc_cancel(api_svc(req), &idem, req_param(req, 0), &req->arena, &out, e))
        return -1;
    api_send_idem(resp, &out);
    return 0;
}

int api_orders_get(struct req *req, struct resp *resp, struct err *e)
{
    struct order o;
    struct json_w w;

    if (order_svc_get(api_svc(req), req_param(req, 0), req->auth.user_id, req->auth.is_admin,
                      &req->arena, &o, e))
        return -1;
    json_w_init(&w, &req->arena);
    order_write_json(&w, &o);
    resp_json(resp, req->ok_status, &w);
    return 0;
}

int api_orders_mine(struct req *req, struct resp *resp, struct err *e)
{
    const char *status = req_query(req, "status");
    enum order_status wanted = ORDER_PENDING;
    int64_t limit;
    int64_t before;
    struct order *orders;
    size_t count;
    int more;
    struct json_w w;

    if (status && *status && order_status_parse(status, &wanted))
        return err_set(e, ERR_INVALID_INPUT,
                       "'status' must be PENDING, PAID, CANCELLED or EXPIRED");
    if (api_query_int(req, "limit", LIST_DEFAULT_LIMIT, 1, LIST_MAX_LIMIT, &limit, e) ||
        api_query_cursor(req, &before, e) ||
        order_svc_list(api_svc(req), req_param(req, 0), status && *status, (int)wanted, before,
                       (int)limit, &req->arena, &orders, &count, &more, e))
        return -1;
    json_w_init(&w, &req->arena);
    order_page_write_json(&w, orders, count, more);
    resp_json(resp, req->ok_status, &w);
    return 0;
}
