#include "api/api_coupons.h"

#include "api/api_common.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/json.h"
#include "domain/coupon.h"
#include "http/req.h"
#include "http/resp.h"
#include "service/coupon_svc.h"

#include "core/banned.h"

struct create_in {
    const char *name;
    const char *type;
    int64_t value;
    int64_t total_quantity;
    const char *starts_at;
    const char *ends_at;
};

static const struct json_spec create_spec[] = {
    JSON_STR("name", JSON_REQUIRED, 1, COUPON_NAME_MAX, struct create_in, name),
    JSON_STR("discountType", JSON_REQUIRED, 1, 16, struct create_in, type),
    JSON_INT("discountValue", JSON_REQUIRED, 1, COUPON_FIXED_MAX_KRW, ERR_INVALID_INPUT,
             struct create_in, value),
    JSON_INT("totalQuantity", JSON_REQUIRED, 1, COUPON_QUANTITY_MAX, ERR_INVALID_INPUT,
             struct create_in, total_quantity),
    JSON_STR("startsAt", 0, 1, 64, struct create_in, starts_at),
    JSON_STR("endsAt", 0, 1, 64, struct create_in, ends_at),
    JSON_END,
};

struct issue_in {
    int64_t user_id;
};

static const struct json_spec issue_spec[] = {
    JSON_INT("userId", JSON_REQUIRED, 1, INT64_MAX, ERR_INVALID_INPUT, struct issue_in, user_id),
    JSON_END,
};

static int parse_time(const char *text, const char *field, int64_t *out, struct err *e)
{
    if (clock_parse_rfc3339(text, out))
        return err_set(e, ERR_INVALID_INPUT,
                       "'%s' must be an RFC 3339 time between 1000-01-01T00:00:00Z and "
                       "9999-12-31T23:59:59Z",
                       field);
    return 0;
}

/* The request's coupon definition; the window defaults to "from now, no end". */
static int decode_coupon(struct req *req, struct coupon *out, struct err *e)
{
    struct create_in in = {0};

    if (json_decode(req->body, req->body_len, create_spec, &in, &req->arena, e))
        return -1;
    if (coupon_type_parse(in.type, &out->type))
        return err_set(e, ERR_INVALID_INPUT, "'discountType' must be RATE or FIXED");
    out->name = in.name;
    out->value = in.value;
    out->total_quantity = in.total_quantity;
    out->starts_us = clock_now_us();
    out->ends_us = 0;
    if (in.starts_at && parse_time(in.starts_at, "startsAt", &out->starts_us, e))
        return -1;
    if (in.ends_at && parse_time(in.ends_at, "endsAt", &out->ends_us, e))
        return -1;
    return 0;
}

int api_coupons_create(struct req *req, struct resp *resp, struct err *e)
{
    struct coupon in = {0};
    struct coupon out;
    struct json_w w;

    if (decode_coupon(req, &in, e) || coupon_svc_create(api_svc(req), &in, &out, e))
        return -1;
    json_w_init(&w, &req->arena);
    coupon_write_json(&w, &out);
    resp_json(resp, req->ok_status, &w);
    return 0;
}

int api_coupons_get(struct req *req, struct resp *resp, struct err *e)
{
    struct coupon c;
    struct json_w w;

    if (coupon_svc_get(api_svc(req), req_param(req, 0), &req->arena, &c, e))
        return -1;
    json_w_init(&w, &req->arena);
    coupon_write_json(&w, &c);
    resp_json(resp, req->ok_status, &w);
    return 0;
}

int api_coupons_issue(struct req *req, struct resp *resp, struct err *e)
{
    struct issue_in decoded = {0};
    const struct issue_in *in = req->loop_state; /* the loop decoded the body already */
    struct user_coupon uc;
    struct json_w w;

    if (!in) {
        if (json_decode(req->body, req->body_len, issue_spec, &decoded, &req->arena, e))
            return -1;
        in = &decoded;
    }
    if (api_require_user(req, in->user_id, e) ||
        coupon_svc_issue(api_svc(req), req_param(req, 0), in->user_id, &req->arena, &uc, e))
        return -1;
    json_w_init(&w, &req->arena);
    user_coupon_write_json(&w, &uc, clock_now_us());
    resp_json(resp, req->ok_status, &w);
    return 0;
}

/* The gate's refusals on the loop: a sold-out rush never waits for a worker. */
static int issue_loop_command(struct req *req, struct loop_command *cmd)
{
    struct issue_in *in = arena_calloc(&req->arena, 1, sizeof(*in));
    struct err e;

    if (json_decode(req->body, req->body_len, issue_spec, in, &req->arena, &e))
        return -1; /* the handler says what is wrong with it */
    req->loop_state = in;
    if (api_require_user(req, in->user_id, &e))
        return -1;
    cmd->argc = coupon_svc_loop_check(api_svc(req), req_param(req, 0), in->user_id, &req->arena,
                                      &cmd->argv);
    cmd->lens = NULL;
    return cmd->argc < 0 ? -1 : 0;
}

static enum loop_step issue_loop_answer(struct req *req, const struct redis_value *reply,
                                        struct resp *resp, struct loop_command *next, struct err *e)
{
    const struct issue_in *in = req->loop_state;

    (void)resp;
    (void)next;
    return coupon_svc_loop_refusal(reply, req_param(req, 0), in->user_id, e) ? LOOP_REFUSED
                                                                             : LOOP_TO_WORKER;
}

const struct route_loop_read api_coupons_issue_loop = {
    .command = issue_loop_command,
    .answer = issue_loop_answer,
};

int api_coupons_mine(struct req *req, struct resp *resp, struct err *e)
{
    const char *status = req_query(req, "status");
    enum coupon_status wanted = COUPON_AVAILABLE;
    struct user_coupon *list;
    size_t count;
    struct json_w w;
    int64_t now = clock_now_us();

    if (status && *status && coupon_status_parse(status, &wanted))
        return err_set(e, ERR_INVALID_INPUT, "'status' must be AVAILABLE, USED or EXPIRED");
    if (coupon_svc_list(api_svc(req), req_param(req, 0), status && *status, (int)wanted,
                        &req->arena, &list, &count, e))
        return -1;
    json_w_init(&w, &req->arena);
    user_coupons_write_json(&w, req_param(req, 0), list, count, now);
    resp_json(resp, req->ok_status, &w);
    return 0;
}
