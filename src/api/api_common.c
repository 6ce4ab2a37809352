#include "api/api_common.h"

#include <string.h>

#include "core/err.h"
#include "core/num.h"
#include "http/req.h"
#include "http/resp.h"
#include "service/idem_svc.h"

#include "core/banned.h"

struct svc *api_svc(struct req *r)
{
    return r->app;
}

int api_query_int(struct req *r, const char *name, int64_t dflt, int64_t min, int64_t max,
                  int64_t *out, struct err *e)
{
    const char *v = req_query(r, name);

    if (!v) {
        *out = dflt;
        return 0;
    }
    if (num_parse_i64(v, min, max, out))
        return err_set(e, ERR_INVALID_INPUT, "'%s' must be an integer between %lld and %lld", name,
                       (long long)min, (long long)max);
    return 0;
}

int api_query_cursor(struct req *r, int64_t *before_id, struct err *e)
{
    const char *v = req_query(r, "cursor");

    *before_id = 0;
    if (!v || !*v)
        return 0;
    if (num_parse_i64(v, 1, INT64_MAX, before_id))
        return err_set(e, ERR_INVALID_INPUT, "'cursor' is not a cursor this API returned");
    return 0;
}

int api_require_user(struct req *r, int64_t user_id, struct err *e)
{
    if (r->auth.is_admin || r->auth.user_id == user_id)
        return 0;
    return err_set(e, ERR_FORBIDDEN, "token is not for user %lld", (long long)user_id);
}

void api_send_idem(struct resp *resp, const struct idem_response *out)
{
    resp_body(resp, out->status, "application/json; charset=utf-8", out->body, strlen(out->body));
    if (out->replayed)
        resp_header(resp, "Idempotent-Replayed", "true");
}
