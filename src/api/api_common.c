#include "api/api_common.h"

#include <string.h>

#include "core/err.h"
#include "core/json.h"
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

/* Only 4xx refusals are stored, and resp_problem gives them the same bytes whoever renders
 * them: this is the body the client is sent for the first refusal, so the one that is stored. */
static const char *render_problem(const struct err *e, struct arena *a)
{
    struct resp r = {0};

    resp_problem(&r, a, e, "", NULL);
    return r.body;
}

int api_decode_keyed(struct req *r, const struct json_spec *spec, void *out,
                     struct json_keyed *body, struct err *e)
{
    return json_decode_keyed(r->body, r->body_len, spec, out, IDEM_BODY_KEY_FIELD, &r->arena, body,
                             e);
}

int api_idem_prepare(struct req *r, int64_t user_id, const struct json_keyed *body,
                     struct idem_request *idem, struct err *e)
{
    if (idem_svc_prepare(idem, user_id, r->method, r->match.canonical,
                         req_header(r, "Idempotency-Key"), body, e))
        return -1;
    idem->status = r->ok_status;
    idem->render_problem = render_problem;
    return 0;
}

void api_send_idem(struct resp *resp, const struct idem_response *out)
{
    /* A stored refusal is a problem document, and goes out as one. */
    const char *type =
        out->status >= 400 ? "application/problem+json" : "application/json; charset=utf-8";

    resp_body(resp, out->status, type, out->body, strlen(out->body));
    if (out->replayed)
        resp_header(resp, "Idempotent-Replayed", "true");
}
