#ifndef SHOPD_API_API_COUPONS_H
#define SHOPD_API_API_COUPONS_H

/* Handlers of API.md "Coupons". */

struct err;
struct req;
struct resp;
struct route_loop_read;

int api_coupons_create(struct req *req, struct resp *resp, struct err *e);
int api_coupons_get(struct req *req, struct resp *resp, struct err *e);
int api_coupons_issue(struct req *req, struct resp *resp, struct err *e);
/* Issue's refusals the gate already knows, answered on the event loop (http/router.h). */
extern const struct route_loop_read api_coupons_issue_loop;
int api_coupons_mine(struct req *req, struct resp *resp, struct err *e);

#endif
