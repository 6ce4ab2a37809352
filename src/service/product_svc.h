#ifndef SHOPD_SERVICE_PRODUCT_SVC_H
#define SHOPD_SERVICE_PRODUCT_SVC_H

#include <stddef.h>
#include <stdint.h>

/*
 * The catalog (API.md "Products"): product detail through the product cache, the list
 * straight from MariaDB, admin create and patch (which invalidate after commit), and the top
 * products through the top cache. Thread-safe. Errors: ERR_PRODUCT_NOT_FOUND, ERR_INVALID_INPUT,
 * and ERR_UNAVAILABLE / ERR_INTERNAL from the database (never from Redis).
 */

struct arena;
struct err;
struct product;
struct product_patch;
struct svc;

/* The product and its Product JSON (the cached text itself). */
int product_svc_get(struct svc *s, int64_t product_id, struct arena *a, struct product *out,
                    const char **json, struct err *e);

/*
 * The products of n ids, in order (out[i] for ids[i]), read in batches of at most
 * PRODUCT_SVC_BATCH_MAX: per batch one Redis round trip when all are cached, and on a miss one
 * SELECT for all the missing ones (cache_get_many). ERR_PRODUCT_NOT_FOUND names the first id
 * that matches no product.
 */
#define PRODUCT_SVC_BATCH_MAX 100
int product_svc_get_many(struct svc *s, const int64_t *ids, size_t n, struct arena *a,
                         struct product *out, struct err *e);

int product_svc_list(struct svc *s, int64_t after_id, int limit, struct arena *a,
                     struct product **out, size_t *count, int *more, struct err *e);

int product_svc_create(struct svc *s, const struct product *p, struct arena *a, struct product *out,
                       struct err *e);

int product_svc_patch(struct svc *s, int64_t product_id, const struct product_patch *patch,
                      struct arena *a, struct product *out, struct err *e);

/* The ranking JSON of the top limit products over the last days UTC days. */
int product_svc_top(struct svc *s, int days, int limit, struct arena *a, const char **json,
                    struct err *e);

/* For product detail served from an event loop (http/router.h, struct route_loop_read): the
 * Redis key of the product's cached JSON (-1: read it with product_svc_get), and the JSON in
 * the GET's reply, *len bytes (NULL: product_svc_get answers it). Neither blocks. */
struct redis_value;
int product_svc_loop_key(struct svc *s, int64_t product_id, char *buf, size_t size);
const char *product_svc_loop_value(struct svc *s, const struct redis_value *reply, size_t *len);
/* For a batch on a loop (a cart's products, at most PRODUCT_SVC_BATCH_MAX): the argv of one
 * MGET of their cached JSON (from a; -1: product_svc_get_many), each product from its element
 * of the reply (-1: not cached, or not a Product: product_svc_get_many answers), and the n
 * cache hits to count once the loop answers from them. */
int product_svc_loop_mget(struct svc *s, const int64_t *ids, size_t n, struct arena *a,
                          const char ***argv);
int product_svc_loop_product(struct svc *s, const struct redis_value *element, struct arena *a,
                             struct product *out);
void product_svc_loop_hits(struct svc *s, size_t n);
/* The same for the ranking of product_svc_top. */
int product_svc_top_loop_key(struct svc *s, int days, int limit, char *buf, size_t size);
const char *product_svc_top_loop_value(struct svc *s, const struct redis_value *reply, size_t *len);

/* After a commit that changed the product's stock or fields: drop its cached copy. */
void product_svc_invalidate(struct svc *s, int64_t product_id);
/* The same for the n products of one write, together (one Redis round trip). */
void product_svc_invalidate_many(struct svc *s, size_t n, const int64_t *product_ids);

#endif
