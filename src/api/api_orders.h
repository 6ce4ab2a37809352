#ifndef SHOPD_API_API_ORDERS_H
#define SHOPD_API_API_ORDERS_H

/* Handlers of API.md "Orders and payments". */

struct err;
struct req;
struct resp;

int api_orders_create(struct req *req, struct resp *resp, struct err *e);
int api_orders_get(struct req *req, struct resp *resp, struct err *e);
int api_orders_mine(struct req *req, struct resp *resp, struct err *e);
int api_orders_pay(struct req *req, struct resp *resp, struct err *e);
int api_orders_cancel(struct req *req, struct resp *resp, struct err *e);

#endif
