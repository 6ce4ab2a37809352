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

struct idem_row_key;

enum idem_start;

/*
 * A charge of user_id up to its response in one round trip (shopd_charge_begin, migration
 * 0009): begin, the key's claim with fingerprint, the balance raised by amount_krw if it stays
 * within max_krw (fenced as user_repo_add_balance: fence 0 is unguarded), its history entry.
 * The transaction is begun inside MariaDB, at the service's request: the one exception to
 * "repos never begin a transaction", as the round trip it saves is the point. *how says what
 * happened (repo/idem_repo.h); OPEN leaves the transaction open with *key_row_id and *balance_after_krw, for
 * idem_repo_respond_commit. REFUSED: ERR_USER_NOT_FOUND, ERR_BALANCE_LIMIT, ERR_UNAVAILABLE (a
 * newer lock holder wrote the row, or a row-lock wait timed out in the effect) or
 * ERR_IDEMPOTENCY_IN_FLIGHT (the wait timed out on the claim). -1 with e when the call failed;
 * the caller rolls back.
 */
int balance_repo_charge_begin(struct db_conn *c, int64_t user_id, const struct idem_row_key *key,
                              const unsigned char fingerprint[32], int64_t now_us,
                              int64_t amount_krw, int64_t max_krw, int64_t fence,
                              enum idem_start *how, int64_t *key_row_id,
                              int64_t *balance_after_krw, struct err *e);

/* Up to limit entries of the user older than before_id (0: from the newest), newest first,
 * into an arena array. */
int balance_repo_page(struct db_conn *c, int64_t user_id, int64_t before_id, int limit,
                      struct arena *a, struct balance_entry **entries, size_t *count,
                      struct err *e);

#endif
