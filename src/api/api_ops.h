#ifndef SHOPD_API_API_OPS_H
#define SHOPD_API_API_OPS_H

/* Handlers of API.md "Operations": health, readiness, metrics and the OpenAPI document. */

struct err;
struct req;
struct resp;

int api_ops_healthz(struct req *req, struct resp *resp, struct err *e);
int api_ops_readyz(struct req *req, struct resp *resp, struct err *e);
int api_ops_metrics(struct req *req, struct resp *resp, struct err *e);
int api_ops_openapi(struct req *req, struct resp *resp, struct err *e);

#endif
