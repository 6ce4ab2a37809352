#include "http/resp.h"

#include "core/arena.h"
#include "core/err.h"
#include "core/json.h"

#include "core/banned.h"

void resp_header(struct resp *r, const char *name, const char *value)
{
    if (r->nheaders == RESP_MAX_HEADERS)
        BUG("too many response headers");
    r->headers[r->nheaders].name = name;
    r->headers[r->nheaders].value = value;
    r->nheaders++;
}

void resp_body(struct resp *r, int status, const char *content_type, const char *body, size_t len)
{
    r->status = status;
    r->content_type = content_type;
    r->body = body;
    r->body_len = len;
}

void resp_json(struct resp *r, int status, struct json_w *w)
{
    size_t len;
    const char *text = json_w_text(w, &len);

    resp_body(r, status, "application/json; charset=utf-8", text, len);
}

void resp_problem(struct resp *r, struct arena *a, const struct err *e, const char *request_id,
                  const char *allow)
{
    struct json_w w;
    int status = err_status(e->code);
    const char *detail = e->detail;

    if (e->code == ERR_NONE)
        BUG("problem response without an error code");
    /* A 5xx detail may carry a server's message or an address: it is for the log only. */
    if (status == 500)
        detail = arena_printf(a, "internal error; request id %s", request_id);
    else if (status > 500)
        detail =
            arena_printf(a, "temporarily unavailable, retry shortly; request id %s", request_id);
    json_w_init(&w, a);
    json_w_obj_begin(&w, NULL);
    json_w_str(&w, "type", "about:blank");
    json_w_str(&w, "title", err_title(e->code));
    json_w_int(&w, "status", status);
    json_w_str(&w, "code", err_name(e->code));
    json_w_str(&w, "detail", detail);
    json_w_obj_end(&w);

    r->nheaders = 0;
    size_t len;
    const char *text = json_w_text(&w, &len);
    resp_body(r, status, "application/problem+json", text, len);
    if (status == 401)
        resp_header(r, "WWW-Authenticate", "Bearer realm=\"shopd\"");
    if (status == 503 || e->code == ERR_IDEMPOTENCY_IN_FLIGHT)
        resp_header(r, "Retry-After", "1");
    if (status == 405 && allow)
        resp_header(r, "Allow", allow);
}
