#include "api/api_cart.h"

#include "api/api_common.h"
#include "core/err.h"
#include "core/json.h"
#include "domain/cart.h"
#include "http/req.h"
#include "http/resp.h"
#include "service/cart_svc.h"

#include "core/banned.h"

struct add_in {
    int64_t product_id;
    int64_t quantity;
};

static const struct json_spec add_spec[] = {
    JSON_INT("productId", JSON_REQUIRED, 1, INT64_MAX, ERR_INVALID_INPUT, struct add_in,
             product_id),
    JSON_INT("quantity", JSON_REQUIRED, 1, CART_QUANTITY_MAX, ERR_INVALID_INPUT, struct add_in,
             quantity),
    JSON_END,
};

static const struct json_spec set_spec[] = {
    JSON_INT("quantity", JSON_REQUIRED, 0, CART_QUANTITY_MAX, ERR_INVALID_INPUT, struct add_in,
             quantity),
    JSON_END,
};

static void send_cart(struct req *req, struct resp *resp, const struct cart *c)
{
    struct json_w w;

    json_w_init(&w, &req->arena);
    json_w_obj_begin(&w, NULL);
    json_w_int(&w, "userId", c->user_id);
    json_w_arr_begin(&w, "items");
    for (size_t i = 0; i < c->count; i++) {
        const struct cart_item *it = &c->items[i];
        json_w_obj_begin(&w, NULL);
        json_w_int(&w, "productId", it->product_id);
        json_w_str(&w, "name", it->name);
        json_w_int(&w, "unitPrice", it->unit_price_krw);
        json_w_int(&w, "quantity", it->quantity);
        json_w_int(&w, "subtotal", it->subtotal_krw);
        json_w_bool(&w, "stockAvailable", it->stock_available);
        json_w_obj_end(&w);
    }
    json_w_arr_end(&w);
    json_w_int(&w, "totalAmount", c->total_krw);
    json_w_obj_end(&w);
    resp_json(resp, req->ok_status, &w);
}

int api_cart_get(struct req *req, struct resp *resp, struct err *e)
{
    struct cart c;

    if (cart_svc_get(api_svc(req), req_param(req, 0), &req->arena, &c, e))
        return -1;
    send_cart(req, resp, &c);
    return 0;
}

int api_cart_add(struct req *req, struct resp *resp, struct err *e)
{
    struct add_in in = {0};
    struct cart c;

    if (json_decode(req->body, req->body_len, add_spec, &in, &req->arena, e) ||
        cart_svc_add(api_svc(req), req_param(req, 0), in.product_id, in.quantity, &req->arena, &c,
                     e))
        return -1;
    send_cart(req, resp, &c);
    return 0;
}

int api_cart_set(struct req *req, struct resp *resp, struct err *e)
{
    struct add_in in = {0};
    struct cart c;

    if (json_decode(req->body, req->body_len, set_spec, &in, &req->arena, e) ||
        cart_svc_set(api_svc(req), req_param(req, 0), req_param(req, 1), in.quantity, &req->arena,
                     &c, e))
        return -1;
    send_cart(req, resp, &c);
    return 0;
}

int api_cart_remove(struct req *req, struct resp *resp, struct err *e)
{
    struct cart c;

    if (cart_svc_set(api_svc(req), req_param(req, 0), req_param(req, 1), 0, &req->arena, &c, e))
        return -1;
    send_cart(req, resp, &c);
    return 0;
}
