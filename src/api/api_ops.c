#include "api/api_ops.h"

#include "api/api_common.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/metrics.h"
#include "http/req.h"
#include "http/resp.h"
#include "service/ops_svc.h"

#include "core/banned.h"

/* docs/openapi.yaml, compiled in by cmake/embed_file.cmake. */
extern const char openapi_yaml[];
extern const size_t openapi_yaml_len;

int api_ops_healthz(struct req *req, struct resp *resp, struct err *e)
{
    static const char ok[] = "{\"status\":\"ok\"}";

    resp_body(resp, req->ok_status, "application/json; charset=utf-8", ok, sizeof(ok) - 1);
    return 0;
}

int api_ops_readyz(struct req *req, struct resp *resp, struct err *e)
{
    struct ops_readiness r;
    struct json_w w;

    ops_svc_readiness(api_svc(req), &r);
    json_w_init(&w, &req->arena);
    json_w_obj_begin(&w, NULL);
    json_w_str(&w, "status", !r.mariadb_ok ? "unavailable" : r.redis_ok ? "ok" : "degraded");
    json_w_str(&w, "mariadb", r.mariadb_ok ? "ok" : "down");
    json_w_str(&w, "redis", r.redis_ok ? "ok" : "down");
    json_w_obj_end(&w);
    resp_json(resp, r.mariadb_ok ? req->ok_status : 503, &w);
    if (!r.mariadb_ok)
        resp_header(resp, "Retry-After", "1");
    return 0;
}

int api_ops_metrics(struct req *req, struct resp *resp, struct err *e)
{
    struct buf b;

    buf_init(&b, &req->arena, 16384);
    metrics_render(&b);
    resp_body(resp, req->ok_status, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    return 0;
}

int api_ops_openapi(struct req *req, struct resp *resp, struct err *e)
{
    resp_body(resp, req->ok_status, "application/yaml", openapi_yaml, openapi_yaml_len);
    return 0;
}
