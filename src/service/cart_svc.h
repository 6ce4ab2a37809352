#ifndef SHOPD_SERVICE_CART_SVC_H
#define SHOPD_SERVICE_CART_SVC_H

#include <stddef.h>
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

/*
 * The same read on an event loop (http/router.h, struct route_loop_read), in the same two
 * Redis round trips, neither blocking: the key of the user's cached lines (-1: cart_svc_get);
 * from its reply, the lines (in *lines, from a) and the argv of the MGET of their products
 * (its count; 0 for an empty cart, which needs none; -1: cart_svc_get answers); and the cart
 * from that MGET's reply (-1: cart_svc_get answers).
 */
struct cart_loop;
struct redis_value;
int cart_svc_loop_key(struct svc *s, int64_t user_id, char *buf, size_t size);
int cart_svc_loop_lines(struct svc *s, int64_t user_id, const struct redis_value *reply,
                        struct arena *a, struct cart_loop **lines, const char ***argv);
int cart_svc_loop_cart(struct svc *s, const struct cart_loop *lines,
                       const struct redis_value *reply, struct arena *a, struct cart *out);

/* Adds quantity (1 … 1,000) to the product's line, then returns the cart. */
int cart_svc_add(struct svc *s, int64_t user_id, int64_t product_id, int64_t quantity,
                 struct arena *a, struct cart *out, struct err *e);

/* Sets the product's line to quantity (0 … 1,000; 0 removes it), then returns the cart. */
int cart_svc_set(struct svc *s, int64_t user_id, int64_t product_id, int64_t quantity,
                 struct arena *a, struct cart *out, struct err *e);

#endif
