#include "api/api_users.h"

#include <stdio.h>

#include "api/api_common.h"
#include "core/err.h"
#include "core/json.h"
#include "domain/balance.h"
#include "domain/money.h"
#include "http/req.h"
#include "http/resp.h"
#include "service/balance_svc.h"

#include "core/banned.h"

#define HISTORY_DEFAULT_LIMIT 20
#define HISTORY_MAX_LIMIT     100

struct create_in {
    const char *name;
};

static const struct json_spec create_spec[] = {
    JSON_STR("name", JSON_REQUIRED, 1, 100, struct create_in, name),
    JSON_END,
};

struct charge_in {
    int64_t amount_krw;
};

/* The range is checked here, before the idempotency key is asked for: a request that is
 * wrong in itself answers what is wrong with it (400 INVALID_AMOUNT), whether it has a key or
 * not. The service checks it again. */
static const struct json_spec charge_spec[] = {
    JSON_INT("amount", JSON_REQUIRED, MONEY_CHARGE_MIN_KRW, MONEY_CHARGE_MAX_KRW,
             ERR_INVALID_AMOUNT, struct charge_in, amount_krw),
    JSON_END,
};

int api_users_create(struct req *req, struct resp *resp, struct err *e)
{
    struct create_in in = {0};
    struct user user;
    struct json_w w;

    if (json_decode(req->body, req->body_len, create_spec, &in, &req->arena, e) ||
        user_svc_create(api_svc(req), in.name, &req->arena, &user, e))
        return -1;
    json_w_init(&w, &req->arena);
    user_write_json(&w, &user);
    resp_json(resp, req->ok_status, &w);
    return 0;
}

int api_users_balance(struct req *req, struct resp *resp, struct err *e)
{
    struct user user;
    struct json_w w;

    if (balance_svc_get(api_svc(req), req_param(req, 0), &req->arena, &user, e))
        return -1;
    json_w_init(&w, &req->arena);
    balance_write_json(&w, &user);
    resp_json(resp, req->ok_status, &w);
    return 0;
}

int api_users_charge(struct req *req, struct resp *resp, struct err *e)
{
    struct charge_in in = {0};
    struct json_keyed body;
    struct idem_request idem;
    struct idem_response out;
    int64_t user_id = req_param(req, 0);

    if (api_decode_keyed(req, charge_spec, &in, &body, e) ||
        api_idem_prepare(req, user_id, &body, &idem, e) ||
        balance_svc_charge(api_svc(req), &idem, user_id, in.amount_krw, &req->arena, &out, e))
        return -1;
    api_send_idem(resp, &out);
    return 0;
}

int api_users_history(struct req *req, struct resp *resp, struct err *e)
{
    struct balance_entry *entries;
    size_t count;
    int64_t limit;
    int64_t before;
    int more;
    struct json_w w;

    if (api_query_int(req, "limit", HISTORY_DEFAULT_LIMIT, 1, HISTORY_MAX_LIMIT, &limit, e) ||
        api_query_cursor(req, &before, e) ||
        balance_svc_history(api_svc(req), req_param(req, 0), before, (int)limit, &req->arena,
                            &entries, &count, &more, e))
        return -1;
    json_w_init(&w, &req->arena);
    balance_history_write_json(&w, entries, count, more);
    resp_json(resp, req->ok_status, &w);
    return 0;
}
