#ifndef SHOPD_SERVICE_PRICE_MEMO_H
#define SHOPD_SERVICE_PRICE_MEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The names and prices of products as this instance last read them, to price an order before
 * its group commit (service/order_batch.h) without a read per order: the product cache is
 * invalidated by every order that takes stock, so the next order of the same product would
 * miss it. Never trusted: the batch takes a line's stock only if the product still has the
 * price and name the order carries, and an order that finds it changed runs alone, after
 * which its products are forgotten here. A fixed table (PRICE_MEMO_SLOTS, one product a slot,
 * the newest wins), thread-safe.
 */

#define PRICE_MEMO_SLOTS    4096
#define PRICE_MEMO_NAME_MAX 400 /* bytes: 100 characters of utf8mb4, as the column */

struct arena;
struct order_item;
struct price_memo;

struct price_memo *price_memo_new(void);
void price_memo_free(struct price_memo *m);

/* Fills the names (copied into a) and prices of items[0..n) from the memo: true when every one
 * was there. */
bool price_memo_get(struct price_memo *m, struct order_item *items, size_t n, struct arena *a);

/* Remembers the names and prices of items[0..n) (a name too long is not remembered). */
void price_memo_put(struct price_memo *m, const struct order_item *items, size_t n);

/* Forgets the products of items[0..n). */
void price_memo_forget(struct price_memo *m, const struct order_item *items, size_t n);

#endif
