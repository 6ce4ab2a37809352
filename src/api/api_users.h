#ifndef SHOPD_API_API_USERS_H
#define SHOPD_API_API_USERS_H

/* Handlers of API.md "Users and balances". */

struct err;
struct req;
struct resp;

int api_users_create(struct req *req, struct resp *resp, struct err *e);
int api_users_balance(struct req *req, struct resp *resp, struct err *e);
int api_users_charge(struct req *req, struct resp *resp, struct err *e);
int api_users_history(struct req *req, struct resp *resp, struct err *e);

#endif
