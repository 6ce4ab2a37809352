#include "domain/balance.h"

#include <string.h>

#include "core/json.h"

#include "core/banned.h"

static const char *const names[] = {"CHARGE", "PAYMENT", "REFUND"};

const char *balance_entry_type_name(enum balance_entry_type t)
{
    return names[t];
}

int balance_entry_type_parse(const char *name, enum balance_entry_type *out)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(names[i], name)) {
            *out = (enum balance_entry_type)i;
            return 0;
        }
    return -1;
}

void user_write_json(struct json_w *w, const struct user *u)
{
    json_w_obj_begin(w, NULL);
    json_w_int(w, "userId", u->user_id);
    json_w_str(w, "name", u->name);
    json_w_int(w, "balance", u->balance_krw);
    json_w_obj_end(w);
}

void balance_write_json(struct json_w *w, const struct user *u)
{
    json_w_obj_begin(w, NULL);
    json_w_int(w, "userId", u->user_id);
    json_w_int(w, "balance", u->balance_krw);
    json_w_obj_end(w);
}

void charge_write_json(struct json_w *w, const struct charge_result *r)
{
    json_w_obj_begin(w, NULL);
    json_w_int(w, "userId", r->user_id);
    json_w_int(w, "balance", r->balance_krw);
    json_w_int(w, "chargedAmount", r->charged_krw);
    json_w_time(w, "chargedAt", r->charged_us);
    json_w_obj_end(w);
}

void balance_entry_write_json(struct json_w *w, const struct balance_entry *en)
{
    json_w_obj_begin(w, NULL);
    json_w_int(w, "entryId", en->entry_id);
    json_w_str(w, "type", balance_entry_type_name(en->type));
    json_w_int(w, "amount", en->amount_krw);
    json_w_int(w, "balanceAfter", en->balance_after_krw);
    if (en->order_id)
        json_w_int(w, "orderId", en->order_id);
    else
        json_w_null(w, "orderId");
    json_w_time(w, "createdAt", en->created_us);
    json_w_obj_end(w);
}

void balance_history_write_json(struct json_w *w, const struct balance_entry *entries, size_t count,
                                bool more)
{
    json_w_obj_begin(w, NULL);
    json_w_arr_begin(w, "entries");
    for (size_t i = 0; i < count; i++)
        balance_entry_write_json(w, &entries[i]);
    json_w_arr_end(w);
    json_w_cursor(w, "nextCursor", more, count ? entries[count - 1].entry_id : 0);
    json_w_obj_end(w);
}
