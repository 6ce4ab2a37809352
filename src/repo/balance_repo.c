#include "repo/balance_repo.h"

#include <string.h>

#include "core/arena.h"
#include "core/array.h"
#include "core/err.h"
#include "core/json.h"
#include "core/metrics.h"
#include "domain/balance.h"
#include "repo/db.h"
#include "repo/idem_repo.h"

#include "core/banned.h"

static const char sql_append[] =
    "INSERT INTO balance_history (user_id, type, amount_krw, balance_after_krw, order_id, "
    "created_at) VALUES (?, ?, ?, ?, ?, ?)";
static const char sql_charge_begin[] = "CALL shopd_charge_begin(?, ?, ?, ?, ?, ?, ?, ?, ?)";
static const char sql_charge_batch[] = "CALL shopd_charge_batch(?, ?)";
static const char sql_page[] =
    "SELECT id, type, amount_krw, balance_after_krw, order_id, created_at "
    "FROM balance_history WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?";

int balance_repo_append(struct db_conn *c, int64_t user_id, const struct balance_entry *entry,
                        int64_t *entry_id, struct err *e)
{
    struct db_val p[] = {DB_INT(user_id),
                         DB_STR(balance_entry_type_name(entry->type)),
                         DB_INT(entry->amount_krw),
                         DB_INT(entry->balance_after_krw),
                         entry->order_id ? DB_INT(entry->order_id) : DB_NULLV,
                         DB_TIME(entry->created_us)};

    return db_exec(c, sql_append, p, 6, NULL, entry_id, e);
}

int balance_repo_page(struct db_conn *c, int64_t user_id, int64_t before_id, int limit,
                      struct arena *a, struct balance_entry **entries, size_t *count, struct err *e)
{
    struct db_val p[] = {DB_INT(user_id), DB_INT(before_id ? before_id : INT64_MAX), DB_INT(limit)};
    struct db_rows rows;

    if (db_query(c, sql_page, p, 3, a, &rows, e))
        return -1;
    struct balance_entry *out = arena_calloc(a, rows.nrows, sizeof(*out));
    for (size_t i = 0; i < rows.nrows; i++) {
        out[i].entry_id = db_int(&rows, i, 0);
        if (balance_entry_type_parse(db_str(&rows, i, 1), &out[i].type))
            return err_set(e, ERR_INTERNAL, "unknown history type '%s'", db_str(&rows, i, 1));
        out[i].amount_krw = db_int(&rows, i, 2);
        out[i].balance_after_krw = db_int(&rows, i, 3);
        out[i].order_id = db_is_null(&rows, i, 4) ? 0 : db_int(&rows, i, 4);
        out[i].created_us = db_cell(&rows, i, 5)->i;
    }
    *entries = out;
    *count = rows.nrows;
    return 0;
}

/* Why shopd_charge_begin refused, from the row it read, into e; ERR_INTERNAL for an outcome
 * it should never give. */
static void refusal(const char *outcome, int64_t user_id, int64_t balance, int64_t row_fence,
                    int64_t fence, int64_t amount_krw, int64_t max_krw, struct err *e)
{
    if (!strcmp(outcome, "no_user")) {
        err_set(e, ERR_USER_NOT_FOUND, "user %lld does not exist", (long long)user_id);
    } else if (strcmp(outcome, "refused")) {
        err_set(e, ERR_INTERNAL, "shopd_charge_begin answered '%.32s'", outcome);
    } else if (fence && row_fence > fence) {
        metrics_inc(METRIC_LOCK_FENCE_REJECTIONS);
        err_set(e, ERR_UNAVAILABLE, "the lock on user %lld was lost to a newer holder",
                (long long)user_id);
    } else {
        err_set(e, ERR_BALANCE_LIMIT, "balance %lld + %lld would exceed the limit of %lld KRW",
                (long long)balance, (long long)amount_krw, (long long)max_krw);
    }
}

int balance_repo_charge_begin(struct db_conn *c, int64_t user_id, const struct idem_row_key *key,
                              const unsigned char fingerprint[32], int64_t now_us,
                              int64_t amount_krw, int64_t max_krw, int64_t fence,
                              enum idem_start *how, int64_t *key_row_id, int64_t *balance_after_krw,
                              struct err *e)
{
    struct db_val p[] = {DB_INT(user_id),    DB_STR(key->method),       DB_STR(key->path),
                         DB_STR(key->key),   DB_BYTES(fingerprint, 32), DB_TIME(now_us),
                         DB_INT(amount_krw), DB_INT(max_krw),           DB_INT(fence)};
    struct arena a = ARENA_INIT;
    struct db_rows rows;
    int rc = -1;

    /* Nothing is committed by the call: on a lost connection it may be sent again. */
    if (db_call(c, sql_charge_begin, p, ARRAY_SIZE(p), true, &a, &rows, 1, e))
        goto out;
    if (rows.nrows != 1 || rows.ncols != 4) {
        err_set(e, ERR_INTERNAL, "shopd_charge_begin answered %zu rows", rows.nrows);
        goto out;
    }
    const char *outcome = db_str(&rows, 0, 0);
    rc = 0;
    if (!strcmp(outcome, "charged")) {
        *how = IDEM_START_OPEN;
        *key_row_id = db_int(&rows, 0, 1);
        *balance_after_krw = db_int(&rows, 0, 2);
    } else if (!idem_repo_shared_outcome(outcome, key->key, how, e)) {
        *how = IDEM_START_REFUSED;
        refusal(outcome, user_id, db_int(&rows, 0, 2), db_int(&rows, 0, 3), fence, amount_krw,
                max_krw, e);
        if (e->code == ERR_INTERNAL)
            rc = -1; /* not a refusal to store */
    }
out:
    arena_release(&a);
    return rc;
}

/* The items as shopd_charge_batch takes them (the fingerprint in hex). */
static const char *batch_json(const struct balance_batch_charge *items, size_t n, struct arena *a)
{
    struct json_w w;

    json_w_init(&w, a);
    json_w_arr_begin(&w, NULL);
    for (size_t i = 0; i < n; i++) {
        json_w_obj_begin(&w, NULL);
        idem_repo_key_json(&w, items[i].key, items[i].fingerprint);
        json_w_int(&w, "a", items[i].amount_krw);
        json_w_int(&w, "x", items[i].max_krw);
        json_w_obj_end(&w);
    }
    json_w_arr_end(&w);
    return json_w_text(&w, NULL);
}

int balance_repo_charge_batch(struct db_conn *c, struct balance_batch_charge *items, size_t n,
                              int64_t now_us, struct arena *a, bool *open, struct err *e)
{
    struct db_val p[] = {DB_STR(batch_json(items, n, a)), DB_TIME(now_us)};
    struct db_rows rows;

    *open = false;
    if (db_call(c, sql_charge_batch, p, ARRAY_SIZE(p), true, a, &rows, 1, e))
        return -1;
    if (rows.nrows == 1 && !strcmp(db_str(&rows, 0, 0), "deadlock")) {
        metrics_inc(METRIC_DB_ERRORS);
        for (size_t i = 0; i < n; i++)
            items[i].how = IDEM_START_AGAIN;
        return 0;
    }
    if (rows.nrows != n)
        return err_set(e, ERR_INTERNAL, "shopd_charge_batch answered %zu of %zu", rows.nrows, n);
    for (size_t i = 0; i < n; i++) {
        struct balance_batch_charge *it = &items[i];
        const char *outcome = db_str(&rows, i, 0);
        it->balance_krw = db_int(&rows, i, 2);
        it->busy = !strcmp(outcome, "busy");
        if (!strcmp(outcome, "charged")) {
            it->how = IDEM_START_OPEN;
            it->key_row_id = db_int(&rows, i, 1);
            *open = true;
        } else if (it->busy) {
            it->how = IDEM_START_AGAIN;
        } else if (!idem_repo_shared_outcome(outcome, it->key->key, &it->how, it->e)) {
            it->how = IDEM_START_REFUSED;
            refusal(outcome, it->key->user_id, it->balance_krw, 0, 0, it->amount_krw, it->max_krw,
                    it->e);
        }
    }
    return 0;
}
