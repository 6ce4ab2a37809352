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
    cart_write_json(&w, c);
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

static int cart_loop_command(struct req *req, struct loop_command *cmd)
{
    char key[256];

    if (cart_svc_loop_key(api_svc(req), req_param(req, 0), key, sizeof(key)))
        return -1;
    loop_command_get(cmd, &req->arena, key);
    return 0;
}

/* First the lines (then, unless the cart is empty, their products), then the cart. */
static enum loop_step cart_loop_answer(struct req *req, const struct redis_value *reply,
                                       struct resp *resp, struct loop_command *next, struct err *e)
{
    struct cart_loop *lines = req->loop_state;
    struct cart c;

    (void)e;
    if (!lines) {
        next->argc = cart_svc_loop_lines(api_svc(req), req_param(req, 0), reply, &req->arena,
                                         &lines, &next->argv);
        next->lens = NULL;
        if (next->argc < 0)
            return LOOP_TO_WORKER;
        req->loop_state = lines;
        if (next->argc > 0)
            return LOOP_AGAIN;
        reply = NULL; /* an empty cart needs no products */
    }
    if (cart_svc_loop_cart(api_svc(req), lines, reply, &req->arena, &c))
        return LOOP_TO_WORKER;
    send_cart(req, resp, &c);
    return LOOP_ANSWERED;
}

const struct route_loop_read api_cart_get_loop = {
    .command = cart_loop_command,
    .answer = cart_loop_answer,
};

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
