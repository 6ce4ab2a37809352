#include "http/engine_errors.h"

#include <h2o.h>
#include <string.h>

#include "core/arena.h"
#include "core/err.h"
#include "http/resp.h"
#include "http/server.h"

#include "core/banned.h"

struct engine_errors {
    h2o_filter_t super;
    engine_request_id_fn *request_id;
    void *ctx;
};

/* Sends the problem in place of h2o's own text (h2o_send_inline gives one final buffer). */
struct problem_ostream {
    h2o_ostream_t super;
    h2o_iovec_t body;
};

static enum err_code code_of(int status)
{
    switch (status) {
    case 404:
        return ERR_NOT_FOUND;
    case 503:
        return ERR_UNAVAILABLE;
    default:
        return status >= 500 ? ERR_INTERNAL : ERR_INVALID_INPUT;
    }
}

static void send_problem(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
                         h2o_send_state_t state)
{
    struct problem_ostream *p = (struct problem_ostream *)self;

    (void)bufs;
    /* A HEAD request is answered with no body at all; anything else with the problem. */
    h2o_ostream_send_next(self, req, bufcnt ? &p->body : NULL, bufcnt ? 1 : 0, state);
}

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    struct engine_errors *f = (struct engine_errors *)self;
    struct arena a = ARENA_INIT;
    struct resp r = {0};
    struct err e;
    char id[40];

    if (req->res.status < 400) {
        h2o_setup_next_ostream(req, slot);
        return;
    }
    f->request_id(f->ctx, id, sizeof(id));
    if (req->res.status == 413) /* the same words as a Content-Length refused by the server */
        err_set(&e, ERR_PAYLOAD_TOO_LARGE, "request body exceeds %zu bytes", SERVER_MAX_BODY);
    else
        err_set(&e, code_of(req->res.status), "%s", req->res.reason);
    resp_problem(&r, &a, &e, id, NULL);
    /* The status is the problem's: a 417 for an unknown Expect becomes a 400 INVALID_INPUT,
     * the contract having no code for it. */
    req->res.status = r.status;
    req->res.reason = err_title(e.code);

    struct problem_ostream *p = (struct problem_ostream *)h2o_add_ostream(req, sizeof(*p), slot);
    p->super.do_send = send_problem;
    p->body = h2o_strdup(&req->pool, r.body, r.body_len);
    memset(&req->res.headers, 0, sizeof(req->res.headers));
    req->res.content_length = r.body_len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/problem+json"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("X-Request-Id"), 0, NULL,
                          h2o_strdup(&req->pool, id, strlen(id)).base, strlen(id));
    for (int i = 0; i < r.nheaders; i++)
        h2o_add_header_by_str(
            &req->pool, &req->res.headers, h2o_strdup(&req->pool, r.headers[i].name, SIZE_MAX).base,
            strlen(r.headers[i].name), 0, NULL,
            h2o_strdup(&req->pool, r.headers[i].value, SIZE_MAX).base, strlen(r.headers[i].value));
    arena_release(&a);
    h2o_setup_next_ostream(req, &p->super.next);
}

void engine_errors_register(h2o_hostconf_t *host, engine_request_id_fn *request_id, void *ctx)
{
    struct engine_errors *f =
        (struct engine_errors *)h2o_create_filter(&host->fallback_path, sizeof(*f));

    f->super.on_setup_ostream = on_setup_ostream;
    f->request_id = request_id;
    f->ctx = ctx;
}
