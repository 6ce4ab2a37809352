#ifndef SHOPD_API_API_CART_H
#define SHOPD_API_API_CART_H

/* Handlers of API.md "Cart". */

struct err;
struct req;
struct resp;
struct route_loop_read;

int api_cart_get(struct req *req, struct resp *resp, struct err *e);
/* The cart read on the event loop when its lines and products are cached (http/router.h). */
extern const struct route_loop_read api_cart_get_loop;
int api_cart_add(struct req *req, struct resp *resp, struct err *e);
int api_cart_set(struct req *req, struct resp *resp, struct err *e);
int api_cart_remove(struct req *req, struct resp *resp, struct err *e);

#endif
