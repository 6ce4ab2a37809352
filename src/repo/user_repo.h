#ifndef SHOPD_REPO_USER_REPO_H
#define SHOPD_REPO_USER_REPO_H

#include <stdint.h>

/*
 * The users table: accounts and their balances. Called inside the caller's transaction (repos
 * never begin or commit). Errors as in repo/db.h; a missing user is ERR_USER_NOT_FOUND.
 */

struct arena;
struct db_conn;
struct err;
struct user;

int user_repo_insert(struct db_conn *c, const char *name, int64_t now_us, int64_t *user_id,
                     struct err *e);

/* The user with its balance (a plain read); name is copied into the arena. */
int user_repo_get(struct db_conn *c, int64_t user_id, struct arena *a, struct user *out,
                  struct err *e);

/*
 * Adds amount_krw (may be negative) to the balance if the result stays within 0 … max_krw,
 * and returns the new balance. fence is the caller's lock's fencing token (0 when unguarded):
 * the write is refused (ERR_UNAVAILABLE) if a newer holder wrote the row. A missing user gives
 * ERR_USER_NOT_FOUND; a result outside the range gives ERR_BALANCE_LIMIT (for a credit) or
 * ERR_INSUFFICIENT_BALANCE (for a debit). The row is locked until the transaction ends.
 */
int user_repo_add_balance(struct db_conn *c, int64_t user_id, int64_t amount_krw, int64_t max_krw,
                          int64_t fence, int64_t *balance_after_krw, struct err *e);

#endif
