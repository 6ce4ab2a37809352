#ifndef SHOPD_REPO_IDEM_REPO_H
#define SHOPD_REPO_IDEM_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The idempotency_keys table (see db/migrations/0001). Errors as in repo/db.h.
 */

struct arena;
struct db_conn;
struct json_w;
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

/* An event that a keyed write publishes through the outbox, committed with its response. */
struct idem_event {
    const char *event_id; /* unique: "order-42-paid" */
    const char *type;
    int64_t aggregate_id;
    const char *payload;
    int64_t at_us;
};

/*
 * Stores the final response in the row claimed by this transaction, with event (may be NULL)
 * into the outbox, and commits, in one round trip (shopd_respond_commit or
 * shopd_respond_commit_event, migrations 0009 and 0010): the commit is the write engine's
 * step, sent with the statements before it; the one other repo call that ends a transaction.
 * On failure the caller rolls back.
 */
int idem_repo_respond_commit(struct db_conn *c, int64_t row_id, int status, const char *body,
                             const struct idem_event *event, struct err *e);

/* One key's response, for idem_repo_respond_batch_commit. */
struct idem_response_row {
    int64_t row_id;
    int status;
    const char *body;
    const struct idem_event *event; /* NULL: none; a batch's events share one at_us */
};

/* The responses of many keys claimed by this transaction stored, with their events into the
 * outbox, and the commit, in one round trip (shopd_respond_batch_commit, migration 0011, or
 * with events shopd_respond_events_batch_commit, 0015): the end of a group commit. */
int idem_repo_respond_batch_commit(struct db_conn *c, const struct idem_response_row *rows,
                                   size_t n, struct err *e);

/* How the start of a keyed write went: the call to its procedure, which begins the
 * transaction, claims the key and runs the effect (migrations 0009 and 0010). */
enum idem_start {
    IDEM_START_OPEN,      /* begun, key claimed, effect done: the transaction is open */
    IDEM_START_DUPLICATE, /* rolled back: another request committed the key */
    IDEM_START_REFUSED,   /* rolled back: e is the effect's refusal or a lock time-out */
    IDEM_START_AGAIN,     /* rolled back as a deadlock's victim: worth another try */
    /* e is the effect's refusal, decided before it wrote anything: the transaction is open
     * holding the key's claim alone, for the refusal to be stored in (migration 0014). */
    IDEM_START_REFUSED_OPEN,
    /* A write's last call (write_op.commit): its response stored and committed. */
    IDEM_START_COMMITTED,
};

/* A key and its fingerprint as the group commits' procedures read an item's: "u", "m", "p",
 * "k" and "f" (hex) into the JSON object w is writing. */
void idem_repo_key_json(struct json_w *w, const struct idem_row_key *key,
                        const unsigned char fingerprint[32]);

/*
 * The outcomes every write procedure shares (migration 0010's header): true for one of them,
 * with *how and, for a lock wait that timed out, e: on the claim ERR_IDEMPOTENCY_IN_FLIGHT (only
 * a request with this key can hold it), in the effect ERR_UNAVAILABLE. False for an outcome
 * that is the procedure's own.
 */
bool idem_repo_shared_outcome(const char *outcome, const char *key, enum idem_start *how,
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
