#ifndef SHOPD_API_API_PRODUCTS_H
#define SHOPD_API_API_PRODUCTS_H

/* Handlers of API.md "Products". */

struct err;
struct req;
struct resp;
struct route_loop_read;

int api_products_list(struct req *req, struct resp *resp, struct err *e);
int api_products_get(struct req *req, struct resp *resp, struct err *e);
/* Product detail from the loop's pipeline when it is cached (http/router.h). */
extern const struct route_loop_read api_products_get_loop;
/* The same for the top products. */
extern const struct route_loop_read api_products_top_loop;
int api_products_top(struct req *req, struct resp *resp, struct err *e);
int api_products_create(struct req *req, struct resp *resp, struct err *e);
int api_products_patch(struct req *req, struct resp *resp, struct err *e);

#endif
