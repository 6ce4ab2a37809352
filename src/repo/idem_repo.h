#ifndef SHOPD_REPO_IDEM_REPO_H
#define SHOPD_REPO_IDEM_REPO_H

#include <stdbool.h>
#include <stdint.h>

/*
 * The idempotency_keys table (see db/migrations/0001). Errors as in repo/db.h.
 */

struct arena;
struct db_conn;
struct err;

struct idem_row_key {
    int64_t user_id;
    const char *method;
    const char *path;
    const char *key;
};

struct idem_row {
    unsigned char fingerprint[32];
    int status;
    const char *body;
};

/* Reads the committed row of key, if any (*found says). body is copied into the arena. */
int idem_repo_find(struct db_conn *c, const struct idem_row_key *key, struct arena *a,
                   struct idem_row *out, bool *found, struct err *e);

/*
 * The same, for a request that must not wait: when another transaction holds the key (claimed
 * and not yet committed), ERR_IDEMPOTENCY_IN_FLIGHT at once, without waiting for it.
 */
int idem_repo_find_unless_held(struct db_conn *c, const struct idem_row_key *key, struct arena *a,
                               struct idem_row *out, bool *found, struct err *e);

/*
 * Claims key inside the caller's transaction, before its effect: inserts its row with the
 * fingerprint and no response yet (status 0), *row_id for idem_repo_respond. When another
 * transaction holds the same key, InnoDB makes this wait for it: *duplicate is set if it
 * committed; ERR_IDEMPOTENCY_IN_FLIGHT if the wait timed out (1205 on this statement can only
 * mean a request with this key is still running).
 */
int idem_repo_claim(struct db_conn *c, const struct idem_row_key *key,
                    const unsigned char fingerprint[32], int64_t now_us, int64_t *row_id,
                    bool *duplicate, struct err *e);

/* Stores the final response in the row claimed by this transaction and commits it, in one
 * round trip (shopd_respond_commit, migration 0009): the commit is the service's step
 * (idem_svc's finish), sent with the statement before it; the one other repo call that ends a
 * transaction. On failure the caller rolls back. */
int idem_repo_respond_commit(struct db_conn *c, int64_t row_id, int status, const char *body,
                             struct err *e);

/*
 * Inserts the complete row for key (a refusal, stored on its own after the effect rolled
 * back). Waits, *duplicate and ERR_IDEMPOTENCY_IN_FLIGHT as idem_repo_claim.
 */
int idem_repo_insert(struct db_conn *c, const struct idem_row_key *key, const struct idem_row *row,
                     int64_t now_us, bool *duplicate, struct err *e);

/* Deletes up to limit rows created before cutoff_us; *deleted says how many. */
int idem_repo_purge(struct db_conn *c, int64_t cutoff_us, int limit, uint64_t *deleted,
                    struct err *e);

#endif
