#ifndef SHOPD_REPO_OUTBOX_REPO_H
#define SHOPD_REPO_OUTBOX_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The outbox as the relays see it (rows are written by order_repo_add_event()), and the relay
 * state row (outbox_relay: the stream epoch and the safe point). Errors as in repo/db.h.
 */

struct arena;
struct db_conn;
struct err;

#define OUTBOX_CLAIM_MAX 256 /* DB_IN_WIDE_MAX: one statement marks a whole batch */

struct outbox_row {
    int64_t id;
    const char *event_id;
    const char *type;
    int64_t aggregate_id;
    const char *payload;
    int64_t created_us;
};

/* Locks up to limit unpublished rows, oldest first, skipping rows another relay holds. */
int outbox_repo_claim(struct db_conn *c, size_t limit, struct arena *a, struct outbox_row **out,
                      size_t *n, struct err *e);

/* For each of the aggregates (at most OUTBOX_CLAIM_MAX), the id of its oldest unpublished row
 * as committed now (0 if none): a row may be published only if no older one of its aggregate
 * is still waiting. */
int outbox_repo_oldest_unpublished(struct db_conn *c, const int64_t *aggregate_ids, size_t n,
                                   int64_t *oldest, struct err *e);

/* Marks rows published at at_us, as entries of stream time stream_ms at most. */
int outbox_repo_mark_published(struct db_conn *c, const int64_t *ids, size_t n, int64_t at_us,
                               int64_t stream_ms, struct err *e);

/* The relay state; locked until the transaction ends when for_update. epoch holds 48 bytes. */
int outbox_repo_relay_state(struct db_conn *c, bool for_update, char *epoch, int64_t *safe_ms,
                            struct err *e);

/* Starts a new epoch (the caller holds the state row): every row whose entry may not have been
 * consumed by every group (stream time at or after the safe point) is unpublished again. */
int outbox_repo_begin_epoch(struct db_conn *c, const char *epoch, int64_t safe_ms, int64_t now_us,
                            uint64_t *republished, struct err *e);

/* Raises the safe point of the epoch (never lowers it; a stale epoch changes nothing). */
int outbox_repo_advance_safe(struct db_conn *c, const char *epoch, int64_t safe_ms, struct err *e);

/* Unpublished rows and the creation time of the oldest (0 when none). */
int outbox_repo_backlog(struct db_conn *c, int64_t *count, int64_t *oldest_us, struct err *e);

#endif
