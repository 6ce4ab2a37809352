#include "service/idem_svc.h"

#include <string.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/json.h"
#include "core/metrics.h"
#include "redis/dlock.h"
#include "repo/db.h"
#include "repo/idem_repo.h"
#include "service/svc.h"

#include "core/banned.h"

#define KEY_MAX_LEN 255
#define PURGE_BATCH 1000

static int check_key(const char *key, struct err *e)
{
    size_t len = strlen(key);

    if (len < 1 || len > KEY_MAX_LEN)
        return err_set(e, ERR_INVALID_INPUT, "idempotency key must be 1 to %d characters",
                       KEY_MAX_LEN);
    for (size_t i = 0; i < len; i++)
        if (key[i] < 0x20 || key[i] > 0x7e)
            return err_set(e, ERR_INVALID_INPUT,
                           "idempotency key must be printable ASCII characters");
    return 0;
}

void idem_fingerprint(const char *canonical, unsigned char out[SHA256_LEN])
{
    sha256(canonical, strlen(canonical), out);
}

int idem_svc_prepare(struct idem_request *r, int64_t user_id, const char *method, const char *path,
                     const char *header_key, const struct json_keyed *body, struct err *e)
{
    if (body->key_not_string)
        return err_set(e, ERR_INVALID_INPUT, "'" IDEM_BODY_KEY_FIELD "' must be a string");
    if (header_key && body->key && strcmp(header_key, body->key))
        return err_set(e, ERR_INVALID_INPUT,
                       "Idempotency-Key header and body idempotencyKey differ");
    r->key = header_key ? header_key : body->key;
    if (!r->key)
        return err_set(e, ERR_IDEMPOTENCY_KEY_MISSING,
                       "an Idempotency-Key header or idempotencyKey field is required");
    if (check_key(r->key, e))
        return -1;
    r->user_id = user_id;
    r->status = 0;
    r->render_problem = NULL;
    r->method = method;
    r->path = path;
    idem_fingerprint(body->canonical, r->fingerprint);
    return 0;
}

int idem_svc_replay(const struct idem_request *r, const struct idem_row *row,
                    struct idem_response *out, struct err *e)
{
    if (memcmp(row->fingerprint, r->fingerprint, SHA256_LEN)) {
        metrics_inc(METRIC_IDEM_CONFLICTS);
        return err_set(e, ERR_IDEMPOTENCY_KEY_REUSED,
                       "idempotency key '%.64s' was used with a different request body", r->key);
    }
    /* A claim is committed only with its response; a row without one is not ours to send. */
    if (row->status < 200)
        return err_set(e, ERR_INTERNAL, "idempotency key '%.64s' has no stored response", r->key);
    metrics_inc(METRIC_IDEM_REPLAYS);
    out->status = row->status;
    out->body = row->body;
    out->replayed = true;
    return 0;
}

struct idem_row_key idem_svc_row_key(const struct idem_request *r)
{
    return (struct idem_row_key){r->user_id, r->method, r->path, r->key};
}

/*
 * The key was committed by another request: its response, or 422 for another body. Should the
 * row be gone again (purged meanwhile), the caller tries again.
 */
enum idem_step idem_svc_settle(struct db_conn *c, const struct idem_request *r, struct arena *a,
                               struct idem_response *out, struct err *e)
{
    struct idem_row_key key = idem_svc_row_key(r);
    struct idem_row row;
    bool found;

    if (idem_repo_find(c, &key, a, &row, &found, e))
        return IDEM_STEP_FAILED;
    if (!found)
        return IDEM_STEP_AGAIN;
    return idem_svc_replay(r, &row, out, e) ? IDEM_STEP_FAILED : IDEM_STEP_DONE;
}

/* The effect's own refusals are decided from what it read: outcomes, so stored. A 5xx, a lock
 * time-out and a lost lease are not outcomes of the effect. */
bool idem_svc_stores_refusal(enum err_code code)
{
    int status = err_status(code);

    return (status == 404 || status == 409) && code != ERR_IDEMPOTENCY_IN_FLIGHT;
}

/*
 * The effect refused and was rolled back whole; the key row goes in alone, with the problem
 * the client is sent, in one autocommitted INSERT (the ROLLBACK plus this statement cost one
 * round trip fewer than a savepoint after the claim, which every request would pay). Between
 * the two, a duplicate waiting on our claim may have claimed the key: the INSERT waits for it
 * and replays what it stored, or answers ERR_IDEMPOTENCY_IN_FLIGHT if it is still running.
 */
enum idem_step idem_svc_store_refusal(struct db_conn *c, const struct idem_request *r,
                                      const struct dlock *guard, struct arena *a,
                                      struct idem_response *out, struct err *e)
{
    struct idem_row_key key = idem_svc_row_key(r);
    struct idem_row row;
    struct err stored;
    bool duplicate;

    if (guard && !dlock_held(guard)) {
        err_set(e, ERR_UNAVAILABLE, "the lock's lease ran out before the refusal was stored");
        return IDEM_STEP_FAILED;
    }
    memcpy(row.fingerprint, r->fingerprint, SHA256_LEN);
    row.status = err_status(e->code);
    row.body = r->render_problem(e, a);
    err_clear(&stored);
    if (idem_repo_insert(c, &key, &row, clock_now_us(), &duplicate, &stored)) {
        *e = stored;
        return db_last_errno(c) == DB_ER_DEADLOCK ? IDEM_STEP_AGAIN : IDEM_STEP_FAILED;
    }
    if (!duplicate)
        return IDEM_STEP_FAILED; /* with e, the refusal, as it is now stored */
    err_clear(e);
    return idem_svc_settle(c, r, a, out, e);
}

enum idem_step idem_svc_after_start(struct db_conn *c, const struct idem_request *r,
                                    enum idem_start how, const struct dlock *guard, struct arena *a,
                                    struct idem_response *out, struct err *e)
{
    switch (how) {
    case IDEM_START_DUPLICATE:
        return idem_svc_settle(c, r, a, out, e);
    case IDEM_START_REFUSED:
        return idem_svc_stores_refusal(e->code) ? idem_svc_store_refusal(c, r, guard, a, out, e)
                                                : IDEM_STEP_FAILED;
    case IDEM_START_AGAIN:
        return IDEM_STEP_AGAIN;
    case IDEM_START_OPEN:
    case IDEM_START_REFUSED_OPEN:
    case IDEM_START_COMMITTED:
        break;
    }
    BUG("a write's open transaction is its engine's to finish");
}

int idem_svc_settle_batched(struct svc *s, const struct idem_request *r, enum idem_start how,
                            struct arena *a, struct idem_response *out, struct err *e)
{
    enum idem_step step;
    struct db_conn *c;

    if (how == IDEM_START_REFUSED && !idem_svc_stores_refusal(e->code))
        return -1; /* a lock wait: not stored */
    if (db_acquire(s->db, &c, e))
        return -1;
    step = idem_svc_after_start(c, r, how, NULL, a, out, e);
    db_release(s->db, c);
    if (step == IDEM_STEP_AGAIN) /* the key purged between the batch and this */
        return err_set(e, ERR_UNAVAILABLE, "idempotency key '%.64s' is contended; retry", r->key);
    return step == IDEM_STEP_DONE ? 0 : -1;
}

int idem_svc_lock_timed_out(struct svc *s, const struct idem_request *r, struct arena *a,
                            struct idem_response *out, struct err *e)
{
    struct idem_row_key key = idem_svc_row_key(r);
    struct idem_row row;
    struct err probe;
    struct db_conn *c;
    bool found = false;

    err_clear(&probe);
    if (db_acquire(s->db, &c, &probe))
        return -1; /* e, the lock's time-out, stands */
    int rc = idem_repo_find_unless_held(c, &key, a, &row, &found, &probe);
    db_release(s->db, c);
    if (rc) {
        if (probe.code == ERR_IDEMPOTENCY_IN_FLIGHT)
            *e = probe;
        return -1;
    }
    if (!found)
        return -1;
    err_clear(e);
    return idem_svc_replay(r, &row, out, e);
}

int idem_svc_purge(struct svc *s, int64_t max_age_us, uint64_t *purged, struct err *e)
{
    struct db_conn *c;
    uint64_t deleted = 0;
    uint64_t total = 0;
    int64_t cutoff = clock_now_us() - max_age_us;
    int rc = 0;

    if (db_acquire(s->db, &c, e))
        return -1;
    do {
        rc = idem_repo_purge(c, cutoff, PURGE_BATCH, &deleted, e);
        total += deleted;
    } while (!rc && deleted == PURGE_BATCH);
    db_release(s->db, c);
    metrics_add(METRIC_IDEM_PURGED, total);
    if (purged)
        *purged = total;
    return rc;
}
