#include "domain/cart.h"

#include <string.h>

#include "core/arena.h"
#include "core/err.h"
#include "core/json.h"
#include "domain/product.h"

#include "core/banned.h"

void cart_add_item(struct cart *c, const struct product *p, int64_t quantity)
{
    struct cart_item *it = &c->items[c->count++];

    it->product_id = p->product_id;
    it->name = p->name;
    it->unit_price_krw = p->price_krw;
    it->quantity = quantity;
    /* price <= 1e9 and quantity <= 1000: no overflow below 1e12 per line. */
    it->subtotal_krw = p->price_krw * quantity;
    it->stock_available = p->stock >= quantity;
    c->total_krw += it->subtotal_krw;
}

void cart_write_json(struct json_w *w, const struct cart *c)
{
    json_w_obj_begin(w, NULL);
    json_w_int(w, "userId", c->user_id);
    json_w_arr_begin(w, "items");
    for (size_t i = 0; i < c->count; i++) {
        const struct cart_item *it = &c->items[i];
        json_w_obj_begin(w, NULL);
        json_w_int(w, "productId", it->product_id);
        json_w_str(w, "name", it->name);
        json_w_int(w, "unitPrice", it->unit_price_krw);
        json_w_int(w, "quantity", it->quantity);
        json_w_int(w, "subtotal", it->subtotal_krw);
        json_w_bool(w, "stockAvailable", it->stock_available);
        json_w_obj_end(w);
    }
    json_w_arr_end(w);
    json_w_int(w, "totalAmount", c->total_krw);
    json_w_obj_end(w);
}

const char *cart_lines_to_json(const struct cart_line *lines, size_t count, struct arena *a)
{
    struct json_w w;

    json_w_init(&w, a);
    json_w_obj_begin(&w, NULL);
    json_w_arr_begin(&w, "lines");
    for (size_t i = 0; i < count; i++) {
        json_w_obj_begin(&w, NULL);
        json_w_int(&w, "productId", lines[i].product_id);
        json_w_int(&w, "quantity", lines[i].quantity);
        json_w_obj_end(&w);
    }
    json_w_arr_end(&w);
    json_w_obj_end(&w);
    return json_w_text(&w, NULL);
}

struct lines_doc {
    struct json_objects lines;
};

static const struct json_spec line_spec[] = {
    JSON_INT("productId", JSON_REQUIRED, 1, INT64_MAX, ERR_INVALID_INPUT, struct cart_line,
             product_id),
    JSON_INT("quantity", JSON_REQUIRED, 1, CART_QUANTITY_MAX, ERR_INVALID_INPUT, struct cart_line,
             quantity),
    JSON_END,
};

static const struct json_spec lines_spec[] = {
    JSON_OBJECTS("lines", JSON_REQUIRED, 0, 100000, struct lines_doc, lines, line_spec,
                 struct cart_line),
    JSON_END,
};

int cart_lines_from_json(const char *text, struct arena *a, struct cart_line **lines, size_t *count)
{
    struct lines_doc doc = {{NULL, 0}};
    struct err e;

    if (json_decode(text, strlen(text), lines_spec, &doc, a, &e))
        return -1;
    *lines = doc.lines.items;
    *count = doc.lines.count;
    return 0;
}
