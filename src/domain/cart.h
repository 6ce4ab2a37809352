#ifndef SHOPD_DOMAIN_CART_H
#define SHOPD_DOMAIN_CART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A user's cart (API.md "Cart"): the lines the user chose, shown with the products' current
 * price and stock. The cart cache holds only the lines (cart_lines_to_json); the view is built
 * from them and the products at read time, so a price change shows in every cart at once.
 * Pure: no I/O.
 */

struct arena;
struct product;

#define CART_QUANTITY_MAX 1000
#define CART_LINES_MAX    100 /* distinct products in one cart (API.md "Cart"): else CART_FULL */

struct cart_line {
    int64_t product_id;
    int64_t quantity;
};

struct cart_item {
    int64_t product_id;
    const char *name;
    int64_t unit_price_krw;
    int64_t quantity;
    int64_t subtotal_krw;
    bool stock_available;
};

struct cart {
    int64_t user_id;
    struct cart_item *items;
    size_t count;
    int64_t total_krw;
};

/* Appends a line for product p to the cart (items must have room). */
void cart_add_item(struct cart *c, const struct product *p, int64_t quantity);

struct json_w;

/* The cart as the contract's JSON (API.md "Cart"). */
void cart_write_json(struct json_w *w, const struct cart *c);

/* The lines as JSON text for the cache, and back (strings and arrays in the arena). */
const char *cart_lines_to_json(const struct cart_line *lines, size_t count, struct arena *a);
int cart_lines_from_json(const char *text, struct arena *a, struct cart_line **lines,
                         size_t *count);

#endif
