#include "repo/idem_repo.h"

#include "core/arena.h"
#include "core/err.h"
#include "repo/db.h"

#include "core/banned.h"

static const char sql_find[] =
    "SELECT fingerprint, status_code, response_body FROM idempotency_keys "
    "WHERE user_id = ? AND method = ? AND path = ? AND idem_key = ?";
static const char sql_insert[] =
    "INSERT INTO idempotency_keys (user_id, method, path, idem_key, fingerprint, status_code, "
    "response_body, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
static const char sql_purge[] = "DELETE FROM idempotency_keys WHERE created_at < ? LIMIT ?";

int idem_repo_find(struct db_conn *c, const struct idem_row_key *key, struct arena *a,
                   struct idem_row *out, bool *found, struct err *e)
{
    struct db_val p[] = {DB_INT(key->user_id), DB_STR(key->method), DB_STR(key->path),
                         DB_STR(key->key)};
    struct db_rows rows;

    *found = false;
    if (db_query(c, sql_find, p, 4, a, &rows, e))
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

int idem_repo_insert(struct db_conn *c, const struct idem_row_key *key, const struct idem_row *row,
                     int64_t now_us, bool *duplicate, struct err *e)
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
    if (db_exec(c, sql_insert, p, 8, NULL, NULL, e)) {
        if (db_last_errno(c) != DB_ER_DUP_ENTRY)
            return -1;
        *duplicate = true;
    }
    return 0;
}

int idem_repo_purge(struct db_conn *c, int64_t cutoff_us, int limit, uint64_t *deleted,
                    struct err *e)
{
    struct db_val p[] = {DB_TIME(cutoff_us), DB_INT(limit)};

    return db_exec(c, sql_purge, p, 2, deleted, NULL, e);
}
