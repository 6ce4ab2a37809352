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
 * Inserts the row for key with the final response, inside the transaction of the effect.
 * When another transaction holds or has committed the same key, InnoDB makes this wait for
 * it; *duplicate is then set if it committed.
 */
int idem_repo_insert(struct db_conn *c, const struct idem_row_key *key, const struct idem_row *row,
                     int64_t now_us, bool *duplicate, struct err *e);

/* Deletes up to limit rows created before cutoff_us; *deleted says how many. */
int idem_repo_purge(struct db_conn *c, int64_t cutoff_us, int limit, uint64_t *deleted,
                    struct err *e);

#endif
