#include "repo/outbox_repo.h"

#include <stdio.h>

#include "core/arena.h"
#include "core/err.h"
#include "repo/db.h"

#include "core/banned.h"

_Static_assert(OUTBOX_CLAIM_MAX == DB_IN_WIDE_MAX, "a claimed batch is marked in one statement");

/* SKIP LOCKED: the relays of every instance claim at once, each what nobody else holds. */
static const char sql_claim[] =
    "SELECT id, event_id, event_type, aggregate_id, payload, created_at FROM outbox "
    "WHERE published_at IS NULL ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED";
/* A plain read: it sees the rows other relays hold but have not published yet. */
static const char sql_oldest[] =
    "SELECT aggregate_id, MIN(id) FROM outbox "
    "WHERE published_at IS NULL AND aggregate_id IN " DB_IN_256 " GROUP BY aggregate_id";
static const char sql_mark[] = "UPDATE outbox SET published_at = ?, stream_ms = ? WHERE "
                               "published_at IS NULL AND id IN " DB_IN_256;
static const char sql_state[] = "SELECT epoch, safe_ms FROM outbox_relay WHERE id = 1";
static const char sql_state_for_update[] =
    "SELECT epoch, safe_ms FROM outbox_relay WHERE id = 1 FOR UPDATE";
static const char sql_unpublish[] =
    "UPDATE outbox SET published_at = NULL, stream_ms = NULL WHERE stream_ms >= ?";
static const char sql_set_epoch[] =
    "UPDATE outbox_relay SET epoch = ?, safe_ms = 0, changed_at = ? WHERE id = 1";
static const char sql_advance[] =
    "UPDATE outbox_relay SET safe_ms = ? WHERE id = 1 AND epoch = ? AND safe_ms < ?";
static const char sql_backlog[] =
    "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE published_at IS NULL";

int outbox_repo_claim(struct db_conn *c, size_t limit, struct arena *a, struct outbox_row **out,
                      size_t *n, struct err *e)
{
    struct db_val p[] = {DB_INT(limit)};
    struct db_rows rows;

    if (db_query(c, sql_claim, p, 1, a, &rows, e))
        return -1;
    *out = arena_calloc(a, rows.nrows + 1, sizeof(**out));
    for (size_t i = 0; i < rows.nrows; i++) {
        struct outbox_row *r = &(*out)[i];
        r->id = db_int(&rows, i, 0);
        r->event_id = db_str(&rows, i, 1);
        r->type = db_str(&rows, i, 2);
        r->aggregate_id = db_int(&rows, i, 3);
        r->payload = db_str(&rows, i, 4);
        r->created_us = db_cell(&rows, i, 5)->i;
    }
    *n = rows.nrows;
    return 0;
}

/* Binds ids into the DB_IN_WIDE_MAX places after the first skip parameters, padding with 0. */
static void bind_in(struct db_val *p, size_t skip, const int64_t *ids, size_t n)
{
    for (size_t i = 0; i < DB_IN_WIDE_MAX; i++)
        p[skip + i] = DB_INT(i < n ? ids[i] : 0);
}

int outbox_repo_oldest_unpublished(struct db_conn *c, const int64_t *aggregate_ids, size_t n,
                                   int64_t *oldest, struct err *e)
{
    struct db_val p[DB_IN_WIDE_MAX];
    struct arena a = ARENA_INIT;
    struct db_rows rows;

    if (n > DB_IN_WIDE_MAX)
        return err_set(e, ERR_INTERNAL, "at most %d aggregates at once", DB_IN_WIDE_MAX);
    bind_in(p, 0, aggregate_ids, n);
    if (db_query(c, sql_oldest, p, DB_IN_WIDE_MAX, &a, &rows, e)) {
        arena_release(&a);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        oldest[i] = 0;
        for (size_t r = 0; r < rows.nrows; r++)
            if (db_int(&rows, r, 0) == aggregate_ids[i])
                oldest[i] = db_int(&rows, r, 1);
    }
    arena_release(&a);
    return 0;
}

int outbox_repo_mark_published(struct db_conn *c, const int64_t *ids, size_t n, int64_t at_us,
                               int64_t stream_ms, struct err *e)
{
    struct db_val p[2 + DB_IN_WIDE_MAX];

    if (n > DB_IN_WIDE_MAX)
        return err_set(e, ERR_INTERNAL, "at most %d rows at once", DB_IN_WIDE_MAX);
    p[0] = DB_TIME(at_us);
    p[1] = DB_INT(stream_ms);
    bind_in(p, 2, ids, n);
    return db_exec(c, sql_mark, p, 2 + DB_IN_WIDE_MAX, NULL, NULL, e);
}

int outbox_repo_relay_state(struct db_conn *c, bool for_update, char *epoch, int64_t *safe_ms,
                            struct err *e)
{
    struct arena a = ARENA_INIT;
    struct db_rows rows;
    int rc = -1;

    if (db_query(c, for_update ? sql_state_for_update : sql_state, NULL, 0, &a, &rows, e))
        goto out;
    if (rows.nrows != 1) {
        err_set(e, ERR_INTERNAL, "outbox_relay has no state row");
        goto out;
    }
    snprintf(epoch, 48, "%s", db_str(&rows, 0, 0));
    *safe_ms = db_int(&rows, 0, 1);
    rc = 0;
out:
    arena_release(&a);
    return rc;
}

int outbox_repo_begin_epoch(struct db_conn *c, const char *epoch, int64_t safe_ms, int64_t now_us,
                            uint64_t *republished, struct err *e)
{
    struct db_val unpublish[] = {DB_INT(safe_ms)};
    struct db_val set[] = {DB_STR(epoch), DB_TIME(now_us)};

    if (db_exec(c, sql_unpublish, unpublish, 1, republished, NULL, e))
        return -1;
    return db_exec(c, sql_set_epoch, set, 2, NULL, NULL, e);
}

int outbox_repo_advance_safe(struct db_conn *c, const char *epoch, int64_t safe_ms, struct err *e)
{
    struct db_val p[] = {DB_INT(safe_ms), DB_STR(epoch), DB_INT(safe_ms)};

    return db_exec(c, sql_advance, p, 3, NULL, NULL, e);
}

int outbox_repo_backlog(struct db_conn *c, int64_t *count, int64_t *oldest_us, struct err *e)
{
    struct arena a = ARENA_INIT;
    struct db_rows rows;

    if (db_query(c, sql_backlog, NULL, 0, &a, &rows, e)) {
        arena_release(&a);
        return -1;
    }
    *count = db_int(&rows, 0, 0);
    *oldest_us = db_is_null(&rows, 0, 1) ? 0 : db_cell(&rows, 0, 1)->i;
    arena_release(&a);
    return 0;
}
