#include "api/api_products.h"

#include <string.h>

#include "api/api_common.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/json.h"
#include "domain/product.h"
#include "http/req.h"
#include "http/resp.h"
#include "http/router.h"
#include "service/product_svc.h"

#include "core/banned.h"

#define LIST_DEFAULT_LIMIT 20
#define LIST_MAX_LIMIT     100
#define TOP_DEFAULT_DAYS   3
#define TOP_DEFAULT_LIMIT  5

static const struct json_spec create_spec[] = {
    JSON_STR("name", JSON_REQUIRED, 1, PRODUCT_NAME_MAX, struct product, name),
    JSON_STR("description", 0, 0, PRODUCT_DESCRIPTION_MAX, struct product, description),
    JSON_INT("price", JSON_REQUIRED, 0, PRODUCT_PRICE_MAX_KRW, ERR_INVALID_INPUT, struct product,
             price_krw),
    JSON_INT("stock", JSON_REQUIRED, 0, PRODUCT_STOCK_MAX, ERR_INVALID_INPUT, struct product,
             stock),
    JSON_END,
};

static const struct json_spec patch_spec[] = {
    JSON_STR_P("name", JSON_NOT_NULL, 1, PRODUCT_NAME_MAX, struct product_patch, name, has_name),
    JSON_STR_P("description", JSON_NOT_NULL, 0, PRODUCT_DESCRIPTION_MAX, struct product_patch,
               description, has_description),
    JSON_INT_P("price", JSON_NOT_NULL, 0, PRODUCT_PRICE_MAX_KRW, ERR_INVALID_INPUT,
               struct product_patch, price_krw, has_price),
    JSON_INT_P("stock", JSON_NOT_NULL, 0, PRODUCT_STOCK_MAX, ERR_INVALID_INPUT,
               struct product_patch, stock, has_stock),
    JSON_END,
};

static void send_product(struct req *req, struct resp *resp, const struct product *p)
{
    const char *json = product_to_json(p, &req->arena);

    resp_body(resp, req->ok_status, "application/json; charset=utf-8", json, strlen(json));
}

int api_products_list(struct req *req, struct resp *resp, struct err *e)
{
    struct product *items;
    size_t count;
    int64_t limit;
    int64_t after;
    int more;
    struct json_w w;

    if (api_query_int(req, "limit", LIST_DEFAULT_LIMIT, 1, LIST_MAX_LIMIT, &limit, e) ||
        api_query_cursor(req, &after, e) ||
        product_svc_list(api_svc(req), after, (int)limit, &req->arena, &items, &count, &more, e))
        return -1;
    json_w_init(&w, &req->arena);
    product_page_write_json(&w, items, count, more);
    resp_json(resp, req->ok_status, &w);
    return 0;
}

int api_products_get(struct req *req, struct resp *resp, struct err *e)
{
    struct product p;
    const char *json;

    if (product_svc_get(api_svc(req), req_param(req, 0), &req->arena, &p, &json, e))
        return -1;
    resp_body(resp, req->ok_status, "application/json; charset=utf-8", json, strlen(json));
    return 0;
}

static int product_loop_command(struct req *req, struct loop_command *cmd)
{
    char key[256];

    if (product_svc_loop_key(api_svc(req), req_param(req, 0), key, sizeof(key)))
        return -1;
    loop_command_get(cmd, &req->arena, key);
    return 0;
}

/* A cached JSON body as the answer (copied: the loop's reply lives only during the call); to
 * the handler when there is none. */
static enum loop_step cached_answer(struct req *req, struct resp *resp, const char *json,
                                    size_t len)
{
    if (!json)
        return LOOP_TO_WORKER;
    resp_body(resp, req->ok_status, "application/json; charset=utf-8",
              arena_memdup(&req->arena, json, len), len);
    return LOOP_ANSWERED;
}

static enum loop_step product_loop_answer(struct req *req, const struct redis_value *reply,
                                          struct resp *resp, struct loop_command *next,
                                          struct err *e)
{
    size_t len = 0;
    const char *json = product_svc_loop_value(api_svc(req), reply, &len);

    (void)next;
    (void)e;
    return cached_answer(req, resp, json, len);
}

const struct route_loop_read api_products_get_loop = {
    .command = product_loop_command,
    .answer = product_loop_answer,
};

/* The ranking's days and limit; -1 for a query the handler must refuse (it says why). */
static int top_query(struct req *req, int64_t *days, int64_t *limit, struct err *e)
{
    return api_query_int(req, "days", TOP_DEFAULT_DAYS, 1, PRODUCT_TOP_DAYS_MAX, days, e) ||
                   api_query_int(req, "limit", TOP_DEFAULT_LIMIT, 1, PRODUCT_TOP_LIMIT_MAX, limit,
                                 e)
               ? -1
               : 0;
}

static int top_loop_command(struct req *req, struct loop_command *cmd)
{
    int64_t days;
    int64_t limit;
    struct err e;
    char key[256];

    if (top_query(req, &days, &limit, &e) ||
        product_svc_top_loop_key(api_svc(req), (int)days, (int)limit, key, sizeof(key)))
        return -1;
    loop_command_get(cmd, &req->arena, key);
    return 0;
}

static enum loop_step top_loop_answer(struct req *req, const struct redis_value *reply,
                                      struct resp *resp, struct loop_command *next, struct err *e)
{
    size_t len = 0;
    const char *json = product_svc_top_loop_value(api_svc(req), reply, &len);

    (void)next;
    (void)e;
    return cached_answer(req, resp, json, len);
}

const struct route_loop_read api_products_top_loop = {
    .command = top_loop_command,
    .answer = top_loop_answer,
};

int api_products_top(struct req *req, struct resp *resp, struct err *e)
{
    int64_t days;
    int64_t limit;
    const char *json;

    if (top_query(req, &days, &limit, e) ||
        product_svc_top(api_svc(req), (int)days, (int)limit, &req->arena, &json, e))
        return -1;
    resp_body(resp, req->ok_status, "application/json; charset=utf-8", json, strlen(json));
    return 0;
}

int api_products_create(struct req *req, struct resp *resp, struct err *e)
{
    struct product in = {0};
    struct product out;

    in.description = "";
    if (json_decode(req->body, req->body_len, create_spec, &in, &req->arena, e) ||
        product_svc_create(api_svc(req), &in, &req->arena, &out, e))
        return -1;
    send_product(req, resp, &out);
    return 0;
}

int api_products_patch(struct req *req, struct resp *resp, struct err *e)
{
    struct product_patch patch = {0};
    struct product out;

    if (json_decode(req->body, req->body_len, patch_spec, &patch, &req->arena, e) ||
        product_svc_patch(api_svc(req), req_param(req, 0), &patch, &req->arena, &out, e))
        return -1;
    send_product(req, resp, &out);
    return 0;
}
