#include "domain/product.h"

#include <stdio.h>
#include <string.h>

#include "core/arena.h"
#include "core/err.h"
#include "core/json.h"

#include "core/banned.h"

void product_apply_patch(struct product *p, const struct product_patch *patch)
{
    if (patch->has_name)
        p->name = patch->name;
    if (patch->has_description)
        p->description = patch->description;
    if (patch->has_price)
        p->price_krw = patch->price_krw;
    if (patch->has_stock)
        p->stock = patch->stock;
}

void product_write_json(struct json_w *w, const struct product *p)
{
    json_w_obj_begin(w, NULL);
    json_w_int(w, "productId", p->product_id);
    json_w_str(w, "name", p->name);
    json_w_str(w, "description", p->description);
    json_w_int(w, "price", p->price_krw);
    json_w_int(w, "stock", p->stock);
    json_w_obj_end(w);
}

void product_page_write_json(struct json_w *w, const struct product *items, size_t count, bool more)
{
    json_w_obj_begin(w, NULL);
    json_w_arr_begin(w, "products");
    for (size_t i = 0; i < count; i++)
        product_write_json(w, &items[i]);
    json_w_arr_end(w);
    json_w_cursor(w, "nextCursor", more, count ? items[count - 1].product_id : 0);
    json_w_obj_end(w);
}

const char *product_to_json(const struct product *p, struct arena *a)
{
    struct json_w w;

    json_w_init(&w, a);
    product_write_json(&w, p);
    return json_w_text(&w, NULL);
}

static const struct json_spec product_spec[] = {
    JSON_INT("productId", JSON_REQUIRED, 1, INT64_MAX, ERR_INVALID_INPUT, struct product,
             product_id),
    JSON_STR("name", JSON_REQUIRED, 0, PRODUCT_NAME_MAX, struct product, name),
    JSON_STR("description", JSON_REQUIRED, 0, PRODUCT_DESCRIPTION_MAX, struct product, description),
    JSON_INT("price", JSON_REQUIRED, 0, PRODUCT_PRICE_MAX_KRW, ERR_INVALID_INPUT, struct product,
             price_krw),
    JSON_INT("stock", JSON_REQUIRED, 0, PRODUCT_STOCK_MAX, ERR_INVALID_INPUT, struct product,
             stock),
    JSON_END,
};

int product_from_json(const char *text, struct arena *a, struct product *out)
{
    struct err e;

    memset(out, 0, sizeof(*out));
    return json_decode(text, strlen(text), product_spec, out, a, &e);
}

const char *product_top_to_json(int days, const struct product_rank *ranks, size_t count,
                                struct arena *a)
{
    struct json_w w;
    char period[24];

    snprintf(period, sizeof(period), "%ddays", days);
    json_w_init(&w, a);
    json_w_obj_begin(&w, NULL);
    json_w_str(&w, "period", period);
    json_w_arr_begin(&w, "products");
    for (size_t i = 0; i < count; i++) {
        json_w_obj_begin(&w, NULL);
        json_w_int(&w, "rank", (int64_t)i + 1);
        json_w_int(&w, "productId", ranks[i].product_id);
        json_w_str(&w, "name", ranks[i].name);
        json_w_int(&w, "salesCount", ranks[i].sales_count);
        json_w_int(&w, "revenue", ranks[i].revenue_krw);
        json_w_obj_end(&w);
    }
    json_w_arr_end(&w);
    json_w_obj_end(&w);
    return json_w_text(&w, NULL);
}
