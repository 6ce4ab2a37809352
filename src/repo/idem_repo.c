#include "repo/idem_repo.h"

#include <string.h>

#include "core/arena.h"
#include "core/array.h"
#include "core/err.h"
#include "core/json.h"
#include "core/metrics.h"
#include "repo/db.h"

#include "core/banned.h"

static const char sql_find[] =
    "SELECT fingerprint, status_code, response_body FROM idempotency_keys "
    "WHERE user_id = ? AND method = ? AND path = ? AND idem_key = ?";
/* A locking read that does not wait: it tells a key that another transaction has claimed and
 * not yet committed (1205 at once) from a finished one or none, and waits for no one. */
static const char sql_find_unless_held[] =
    "SELECT fingerprint, status_code, response_body FROM idempotency_keys "
    "WHERE user_id = ? AND method = ? AND path = ? AND idem_key = ? LOCK IN SHARE MODE NOWAIT";
static const char sql_insert[] =
    "INSERT INTO idempotency_keys (user_id, method, path, idem_key, fingerprint, status_code, "
    "response_body, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
static const char sql_respond_commit[] = "CALL shopd_respond_commit(?, ?, ?)";
static const char sql_respond_commit_event[] =
    "CALL shopd_respond_commit_event(?, ?, ?, ?, ?, ?, ?, ?)";
static const char sql_respond_batch_commit[] = "CALL shopd_respond_batch_commit(?)";
static const char sql_respond_events_batch_commit[] =
    "CALL shopd_respond_events_batch_commit(?, ?)";
static const char sql_purge[] = "DELETE FROM idempotency_keys WHERE created_at < ? LIMIT ?";

static int find(struct db_conn *c, const char *sql, const struct idem_row_key *key, struct arena *a,
                struct idem_row *out, bool *found, struct err *e)
{
    struct db_val p[] = {DB_INT(key->user_id), DB_STR(key->method), DB_STR(key->path),
                         DB_STR(key->key)};
    struct db_rows rows;

    *found = false;
    if (db_query(c, sql, p, 4, a, &rows, e))
        return -1;
    if (!rows.nrows)
        return 0;
    const struct db_val *fp = db_cell(&rows, 0, 0);
    if (fp->type != DB_STR || fp->len != sizeof(out->fingerprint))
        return err_set(e, ERR_INTERNAL, "idempotency fingerprint has the wrong size");
    memcpy(out->fingerprint, fp->s, sizeof(out->fingerprint));
    out->status = (int)db_int(&rows, 0, 1);
    out->body = db_str(&rows, 0, 2);
    *found = true;
    return 0;
}

int idem_repo_find(struct db_conn *c, const struct idem_row_key *key, struct arena *a,
                   struct idem_row *out, bool *found, struct err *e)
{
    return find(c, sql_find, key, a, out, found, e);
}

int idem_repo_find_unless_held(struct db_conn *c, const struct idem_row_key *key, struct arena *a,
                               struct idem_row *out, bool *found, struct err *e)
{
    if (!find(c, sql_find_unless_held, key, a, out, found, e))
        return 0;
    if (db_last_errno(c) == DB_ER_LOCK_WAIT)
        return err_set(e, ERR_IDEMPOTENCY_IN_FLIGHT,
                       "a request with idempotency key '%.64s' is still in progress", key->key);
    return -1;
}

/*
 * The insert waits for a transaction that holds the same key uncommitted; a lock wait that
 * times out on this statement can only have waited for such a request, never for other work.
 */
static int insert(struct db_conn *c, const struct idem_row_key *key, const struct idem_row *row,
                  int64_t now_us, int64_t *row_id, bool *duplicate, struct err *e)
{
    struct db_val p[] = {DB_INT(key->user_id),
                         DB_STR(key->method),
                         DB_STR(key->path),
                         DB_STR(key->key),
                         DB_BYTES(row->fingerprint, sizeof(row->fingerprint)),
                         DB_INT(row->status),
                         DB_STR(row->body),
                         DB_TIME(now_us)};

    *duplicate = false;
    if (!db_exec(c, sql_insert, p, 8, NULL, row_id, e))
        return 0;
    if (db_last_errno(c) == DB_ER_DUP_ENTRY) {
        *duplicate = true;
        return 0;
    }
    if (db_last_errno(c) == DB_ER_LOCK_WAIT)
        return err_set(e, ERR_IDEMPOTENCY_IN_FLIGHT,
                       "timed out behind a request with idempotency key '%.64s'; retry", key->key);
    return -1;
}

int idem_repo_respond_commit(struct db_conn *c, int64_t row_id, int status, const char *body,
                             const struct idem_event *event, struct err *e)
{
    struct db_val p[] = {DB_INT(row_id), DB_INT(status), DB_STR(body)};
    struct arena a = ARENA_INIT;
    struct db_rows none;
    int rc;

    if (event) {
        struct db_val q[] = {DB_INT(row_id),         DB_INT(status),
                             DB_STR(body),           DB_STR(event->event_id),
                             DB_STR(event->type),    DB_INT(event->aggregate_id),
                             DB_STR(event->payload), DB_TIME(event->at_us)};
        rc = db_call(c, sql_respond_commit_event, q, ARRAY_SIZE(q), false, &a, &none, 1, e);
    } else {
        rc = db_call(c, sql_respond_commit, p, ARRAY_SIZE(p), false, &a, &none, 1, e);
    }
    arena_release(&a);
    return rc;
}

void idem_repo_key_json(struct json_w *w, const struct idem_row_key *key,
                        const unsigned char fingerprint[32])
{
    static const char hex[] = "0123456789abcdef";
    char text[65];

    for (size_t j = 0; j < 32; j++) {
        text[2 * j] = hex[fingerprint[j] >> 4];
        text[2 * j + 1] = hex[fingerprint[j] & 15];
    }
    text[64] = '\0';
    json_w_int(w, "u", key->user_id);
    json_w_str(w, "m", key->method);
    json_w_str(w, "p", key->path);
    json_w_str(w, "k", key->key);
    json_w_str(w, "f", text);
}

int idem_repo_respond_batch_commit(struct db_conn *c, const struct idem_response_row *rows,
                                   size_t n, struct err *e)
{
    const struct idem_event *first = NULL;
    struct arena a = ARENA_INIT;
    struct db_rows none;
    struct json_w w;
    int rc;

    json_w_init(&w, &a);
    json_w_arr_begin(&w, NULL);
    for (size_t i = 0; i < n; i++) {
        const struct idem_event *ev = rows[i].event;
        json_w_obj_begin(&w, NULL);
        json_w_int(&w, "id", rows[i].row_id);
        json_w_int(&w, "s", rows[i].status);
        json_w_str(&w, "b", rows[i].body);
        if (ev) {
            if (first && ev->at_us != first->at_us)
                BUG("the events of one batch at different times");
            first = first ? first : ev;
            json_w_str(&w, "e", ev->event_id);
            json_w_str(&w, "t", ev->type);
            json_w_int(&w, "a", ev->aggregate_id);
            json_w_str(&w, "l", ev->payload);
        }
        json_w_obj_end(&w);
    }
    json_w_arr_end(&w);
    if (first) {
        struct db_val p[] = {DB_STR(json_w_text(&w, NULL)), DB_TIME(first->at_us)};
        rc = db_call(c, sql_respond_events_batch_commit, p, ARRAY_SIZE(p), false, &a, &none, 1, e);
    } else {
        struct db_val p[] = {DB_STR(json_w_text(&w, NULL))};
        rc = db_call(c, sql_respond_batch_commit, p, ARRAY_SIZE(p), false, &a, &none, 1, e);
    }
    arena_release(&a);
    return rc;
}

bool idem_repo_shared_outcome(const char *outcome, const char *key, enum idem_start *how,
                              struct err *e)
{
    if (!strcmp(outcome, "duplicate")) {
        *how = IDEM_START_DUPLICATE;
    } else if (!strcmp(outcome, "deadlock")) {
        metrics_inc(METRIC_DB_ERRORS); /* caught in the procedure: db.c did not count it */
        *how = IDEM_START_AGAIN;
    } else if (!strcmp(outcome, "claim_wait")) {
        metrics_inc(METRIC_DB_ERRORS);
        *how = IDEM_START_REFUSED;
        err_set(e, ERR_IDEMPOTENCY_IN_FLIGHT,
                "timed out behind a request with idempotency key '%.64s'; retry", key);
    } else if (!strcmp(outcome, "effect_wait")) {
        metrics_inc(METRIC_DB_ERRORS);
        *how = IDEM_START_REFUSED;
        err_set(e, ERR_UNAVAILABLE, "a lock wait timed out; retry");
    } else {
        return false;
    }
    return true;
}

int idem_repo_insert(struct db_conn *c, const struct idem_row_key *key, const struct idem_row *row,
                     int64_t now_us, bool *duplicate, struct err *e)
{
    int64_t row_id;

    return insert(c, key, row, now_us, &row_id, duplicate, e);
}

int idem_repo_purge(struct db_conn *c, int64_t cutoff_us, int limit, uint64_t *deleted,
                    struct err *e)
{
    struct db_val p[] = {DB_TIME(cutoff_us), DB_INT(limit)};

    return db_exec(c, sql_purge, p, 2, deleted, NULL, e);
}
