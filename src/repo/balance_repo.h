#ifndef SHOPD_REPO_BALANCE_REPO_H
#define SHOPD_REPO_BALANCE_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "repo/idem_repo.h"

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

/*
 * A charge of user_id up to its response in one round trip (shopd_charge_begin, migration
 * 0009): begin, the key's claim with fingerprint, the balance raised by amount_krw if it stays
 * within max_krw (fenced as user_repo_add_balance: fence 0 is unguarded), its history entry.
 * The transaction is begun inside MariaDB, at the service's request: the one exception to
 * "repos never begin a transaction", as the round trip it saves is the point. *how says what
 * happened (repo/idem_repo.h); OPEN leaves the transaction open with *key_row_id and
 * *balance_after_krw, for idem_repo_respond_commit. REFUSED: ERR_USER_NOT_FOUND, ERR_BALANCE_LIMIT,
 * ERR_UNAVAILABLE (a newer lock holder wrote the row, or a row-lock wait timed out in the effect)
 * or ERR_IDEMPOTENCY_IN_FLIGHT (the wait timed out on the claim). -1 with e when the call failed;
 * the caller rolls back.
 */
int balance_repo_charge_begin(struct db_conn *c, int64_t user_id, const struct idem_row_key *key,
                              const unsigned char fingerprint[32], int64_t now_us,
                              int64_t amount_krw, int64_t max_krw, int64_t fence,
                              enum idem_start *how, int64_t *key_row_id, int64_t *balance_after_krw,
                              struct err *e);

/* One charge of a batch (balance_repo_charge_batch): what to do, and what became of it. */
struct balance_batch_charge {
    const struct idem_row_key *key;
    const unsigned char *fingerprint; /* 32 bytes */
    int64_t amount_krw;
    int64_t max_krw;
    enum idem_start how; /* OPEN: charged, in the transaction left open */
    bool busy;           /* not tried: another transaction held its row or key */
    int64_t key_row_id;
    int64_t balance_krw; /* after the charge; REFUSED: the balance that stood */
    struct err *e;       /* REFUSED: why (a lock wait as idem_repo_shared_outcome) */
};

/*
 * Group commit: the charges of items[] (ascending user id, the caller's order) in one
 * transaction and one round trip (shopd_charge_batch, migration 0011), each behind a savepoint
 * of its own, so that each gets its own outcome in items[i].how (or busy, for the caller to
 * run on its own: the batch waits on no lock other work holds). *open says whether any went
 * in: the transaction is then left open for idem_repo_respond_batch_commit. A deadlock rolls
 * everything back (every how AGAIN). -1 with e when the call failed; the caller rolls back.
 */
int balance_repo_charge_batch(struct db_conn *c, struct balance_batch_charge *items, size_t n,
                              int64_t now_us, struct arena *a, bool *open, struct err *e);

/* Up to limit entries of the user older than before_id (0: from the newest), newest first,
 * into an arena array. */
int balance_repo_page(struct db_conn *c, int64_t user_id, int64_t before_id, int limit,
                      struct arena *a, struct balance_entry **entries, size_t *count,
                      struct err *e);

#endif
