#ifndef SHOPD_SERVICE_CART_SVC_H
#define SHOPD_SERVICE_CART_SVC_H

#include <stdint.h>

/*
 * Carts (API.md "Cart"). The cart cache holds a user's lines; every read builds the view from
 * them and the products (through the product cache, all of a cart's products in one batch: one
 * Redis round trip for the lines and one for the products when warm, one SELECT for the
 * products missing when cold), so prices and stock are current. A change
 * invalidates the user's cart after it commits. Thread-safe. Errors: ERR_USER_NOT_FOUND,
 * ERR_PRODUCT_NOT_FOUND, ERR_INVALID_INPUT (a line above 1,000), and the database's.
 */

struct arena;
struct cart;
struct err;
struct svc;

int cart_svc_get(struct svc *s, int64_t user_id, struct arena *a, struct cart *out, struct err *e);

/* Adds quantity (1 … 1,000) to the product's line, then returns the cart. */
int cart_svc_add(struct svc *s, int64_t user_id, int64_t product_id, int64_t quantity,
                 struct arena *a, struct cart *out, struct err *e);

/* Sets the product's line to quantity (0 … 1,000; 0 removes it), then returns the cart. */
int cart_svc_set(struct svc *s, int64_t user_id, int64_t product_id, int64_t quantity,
                 struct arena *a, struct cart *out, struct err *e);

#endif
