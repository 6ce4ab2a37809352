#ifndef SHOPD_REPO_BALANCE_REPO_H
#define SHOPD_REPO_BALANCE_REPO_H

#include <stddef.h>
#include <stdint.h>

/*
 * The balance_history table: one entry per change of a balance, appended in the transaction of
 * the change. Errors as in repo/db.h.
 */

struct arena;
struct balance_entry;
struct db_conn;
struct err;

int balance_repo_append(struct db_conn *c, int64_t user_id, const struct balance_entry *entry,
                        int64_t *entry_id, struct err *e);

/* Up to limit entries of the user older than before_id (0: from the newest), newest first,
 * into an arena array. */
int balance_repo_page(struct db_conn *c, int64_t user_id, int64_t before_id, int limit,
                      struct arena *a, struct balance_entry **entries, size_t *count,
                      struct err *e);

#endif
