#ifndef SHOPD_DOMAIN_PRODUCT_H
#define SHOPD_DOMAIN_PRODUCT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Products of the catalog and the rules on their fields (API.md "Products"). The JSON form is
 * the contract's Product object; it is also what the product cache holds. Pure: no I/O.
 */

struct arena;
struct json_w;

#define PRODUCT_NAME_MAX        100
#define PRODUCT_DESCRIPTION_MAX 1000
#define PRODUCT_PRICE_MAX_KRW   1000000000LL
#define PRODUCT_STOCK_MAX       1000000000LL

struct product {
    int64_t product_id;
    const char *name;
    const char *description;
    int64_t price_krw;
    int64_t stock;
};

/* A partial update: only the fields whose has_ flag is set change. */
struct product_patch {
    const char *name;
    const char *description;
    int64_t price_krw;
    int64_t stock;
    bool has_name, has_description, has_price, has_stock;
};

/* A product's sales on one day, or a change to them (negative for a cancelled payment). */
struct product_sales {
    int64_t product_id;
    int64_t quantity;
    int64_t revenue_krw;
};

/* One line of the top-products ranking. */
struct product_rank {
    int64_t product_id;
    const char *name;
    int64_t sales_count;
    int64_t revenue_krw;
};

#define PRODUCT_TOP_DAYS_MAX  30
#define PRODUCT_TOP_LIMIT_MAX 100

/* The contract's top-products object: {period:"<days>days", products:[{rank, ...}]}. */
const char *product_top_to_json(int days, const struct product_rank *ranks, size_t count,
                                struct arena *a);

void product_apply_patch(struct product *p, const struct product_patch *patch);

/* Writes p as the contract's Product object. */
void product_write_json(struct json_w *w, const struct product *p);
/* A page of products: {"products": [...], "nextCursor"} (more: another page follows). */
void product_page_write_json(struct json_w *w, const struct product *items, size_t count,
                             bool more);

/* The Product JSON text of p, in the arena. */
const char *product_to_json(const struct product *p, struct arena *a);

/* Parses Product JSON (as product_to_json writes it) back; strings go into the arena.
 * Returns -1 when the text is not a Product. */
int product_from_json(const char *text, struct arena *a, struct product *out);

#endif
