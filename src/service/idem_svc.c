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

#define KEY_MAX_LEN  255
#define MAX_ATTEMPTS 4
#define PURGE_BATCH  1000

static const char body_key_field[] = "idempotencyKey";

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

int idem_fingerprint(const char *body, size_t body_len, struct arena *a,
                     unsigned char out[SHA256_LEN], struct err *e)
{
    char *canonical;

    if (json_canonical(body, body_len, body_key_field, a, &canonical, e))
        return -1;
    sha256(canonical, strlen(canonical), out);
    return 0;
}

int idem_svc_prepare(struct idem_request *r, int64_t user_id, const char *method, const char *path,
                     const char *header_key, const char *body, size_t body_len, struct arena *a,
                     struct err *e)
{
    const char *body_key = NULL;

    if (json_get_string(body, body_len, body_key_field, a, &body_key, e))
        return -1;
    if (header_key && body_key && strcmp(header_key, body_key))
        return err_set(e, ERR_INVALID_INPUT,
                       "Idempotency-Key header and body idempotencyKey differ");
    r->key = header_key ? header_key : body_key;
    if (!r->key)
        return err_set(e, ERR_IDEMPOTENCY_KEY_MISSING,
                       "an Idempotency-Key header or idempotencyKey field is required");
    if (check_key(r->key, e))
        return -1;
    r->user_id = user_id;
    r->lookup_first = false;
    r->method = method;
    r->path = path;
    return idem_fingerprint(body, body_len, a, r->fingerprint, e);
}

/* Answers from a committed key row: the stored response, or 422 for another body. */
static int replay(const struct idem_request *r, const struct idem_row *row,
                  struct idem_response *out, struct err *e)
{
    if (memcmp(row->fingerprint, r->fingerprint, SHA256_LEN)) {
        metrics_inc(METRIC_IDEM_CONFLICTS);
        return err_set(e, ERR_IDEMPOTENCY_KEY_REUSED,
                       "idempotency key '%.64s' was used with a different request body", r->key);
    }
    metrics_inc(METRIC_IDEM_REPLAYS);
    out->status = row->status;
    out->body = row->body;
    out->replayed = true;
    return 0;
}

enum attempt_result { ATTEMPT_DONE, ATTEMPT_AGAIN, ATTEMPT_FAILED };

/*
 * After a failed effect or a duplicate key: if the key was committed meanwhile, the request is
 * a duplicate of one that finished, and gets its response. Otherwise the original error
 * stands (or, after a duplicate key whose holder rolled back, the caller tries again).
 */
static enum attempt_result settle(struct db_conn *c, const struct idem_request *r, struct arena *a,
                                  struct idem_response *out, bool duplicate, struct err *e)
{
    struct idem_row_key key = {r->user_id, r->method, r->path, r->key};
    struct idem_row row;
    struct err lookup;
    bool found;

    if (idem_repo_find(c, &key, a, &row, &found, &lookup)) {
        if (duplicate)
            *e = lookup;
        return ATTEMPT_FAILED;
    }
    if (!found)
        return duplicate ? ATTEMPT_AGAIN : ATTEMPT_FAILED;
    return replay(r, &row, out, e) ? ATTEMPT_FAILED : ATTEMPT_DONE;
}

/*
 * A lock wait that timed out most likely waited for a request with this very key that is
 * still running; either way nothing happened and the client may retry with the same key. The
 * contract wants no 5xx for an in-flight duplicate, so this is a 409 with Retry-After.
 */
static void in_flight_on_timeout(struct db_conn *c, const struct idem_request *r, struct err *e)
{
    if (db_last_errno(c) == DB_ER_LOCK_WAIT)
        err_set(e, ERR_IDEMPOTENCY_IN_FLIGHT,
                "timed out behind a concurrent request (idempotency key '%.64s'); retry", r->key);
}

/*
 * One try: begin, the effect, the key row with the final response, commit. The key goes in
 * last so that a request costs no more round trips than its effect needs; a concurrent
 * duplicate is still stopped by the row locks of the effect (it waits for the first to
 * commit) or, at the latest, by the unique key, and its own effect is rolled back.
 */
static enum attempt_result attempt(struct db_conn *c, const struct idem_request *r,
                                   const struct dlock *guard, idem_effect_fn *effect, void *ctx,
                                   struct arena *a, struct idem_response *out, struct err *e)
{
    struct idem_row_key key = {r->user_id, r->method, r->path, r->key};
    struct idem_row row;
    bool duplicate = false;

    if (db_begin(c, e))
        return ATTEMPT_FAILED;
    if (effect(c, ctx, a, out, e)) {
        db_rollback(c);
        if (db_last_errno(c) == DB_ER_DEADLOCK)
            return ATTEMPT_AGAIN;
        in_flight_on_timeout(c, r, e);
        return settle(c, r, a, out, false, e);
    }
    memcpy(row.fingerprint, r->fingerprint, SHA256_LEN);
    row.status = out->status;
    row.body = out->body;
    if (idem_repo_insert(c, &key, &row, clock_now_us(), &duplicate, e))
        goto failed;
    if (duplicate) {
        db_rollback(c);
        return settle(c, r, a, out, true, e);
    }
    if (guard && !dlock_held(guard)) {
        db_rollback(c);
        err_set(e, ERR_UNAVAILABLE, "the lock's lease ran out before commit; retry");
        return ATTEMPT_FAILED;
    }
    if (db_commit(c, e))
        return ATTEMPT_FAILED;
    out->replayed = false;
    return ATTEMPT_DONE;
failed:
    db_rollback(c);
    if (db_last_errno(c) == DB_ER_DEADLOCK)
        return ATTEMPT_AGAIN;
    in_flight_on_timeout(c, r, e);
    return ATTEMPT_FAILED;
}

int idem_svc_run(struct svc *s, const struct idem_request *r, const struct dlock *guard,
                 idem_effect_fn *effect, void *ctx, struct arena *a, struct idem_response *out,
                 struct err *e)
{
    struct db_conn *c;
    int rc = -1;

    if (db_acquire(s->db, &c, e))
        return -1;
    err_clear(e);
    if (r->lookup_first) {
        /* Done already: replayed. Another body, or the lookup failed: e says so. */
        enum attempt_result res = settle(c, r, a, out, false, e);
        if (res == ATTEMPT_DONE || e->code != ERR_NONE) {
            db_release(s->db, c);
            return res == ATTEMPT_DONE ? 0 : -1;
        }
    }
    for (int i = 0; i < MAX_ATTEMPTS; i++) {
        enum attempt_result res = attempt(c, r, guard, effect, ctx, a, out, e);
        if (res == ATTEMPT_DONE) {
            rc = 0;
            break;
        }
        if (res == ATTEMPT_FAILED)
            break;
        metrics_inc(METRIC_DB_DEADLOCK_RETRIES);
        if (i == MAX_ATTEMPTS - 1)
            err_set(e, ERR_UNAVAILABLE, "idempotency key '%.64s' is contended; retry", r->key);
    }
    db_release(s->db, c);
    return rc;
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
