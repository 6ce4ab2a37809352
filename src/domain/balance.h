#ifndef SHOPD_DOMAIN_BALANCE_H
#define SHOPD_DOMAIN_BALANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A user's prepaid balance and the history that explains it: every change is one entry, and
 * the balance always equals the sum of the entries' amounts (payments negative).
 */

enum balance_entry_type { BALANCE_CHARGE, BALANCE_PAYMENT, BALANCE_REFUND };

struct user {
    int64_t user_id;
    const char *name;
    int64_t balance_krw;
};

struct balance_entry {
    int64_t entry_id;
    enum balance_entry_type type;
    int64_t amount_krw;
    int64_t balance_after_krw;
    int64_t order_id; /* 0 for charges */
    int64_t created_us;
};

/* What a charge did: the response of POST /api/users/{userId}/balance/charge. */
struct charge_result {
    int64_t user_id;
    int64_t balance_krw;
    int64_t charged_krw;
    int64_t charged_us;
};

/* "CHARGE", "PAYMENT", "REFUND" (the contract's names and the database's ENUM values). */
const char *balance_entry_type_name(enum balance_entry_type t);
/* The inverse; -1 for an unknown name. */
int balance_entry_type_parse(const char *name, enum balance_entry_type *out);

struct json_w;

/* The contract's JSON of each (API.md "Users and balances"). */
void user_write_json(struct json_w *w, const struct user *u);
void balance_write_json(struct json_w *w, const struct user *u);
void charge_write_json(struct json_w *w, const struct charge_result *r);
void balance_entry_write_json(struct json_w *w, const struct balance_entry *en);
/* A page of history: {"entries": [...], "nextCursor"} (more: another page follows). */
void balance_history_write_json(struct json_w *w, const struct balance_entry *entries, size_t count,
                                bool more);

#endif
