#ifndef SHOPD_SERVICE_IDEM_SVC_H
#define SHOPD_SERVICE_IDEM_SVC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/sha256.h"

/*
 * Idempotency keys (API.md "Idempotency"): one effect per key, whatever the concurrency, and
 * one outcome per key, refusals included.
 *
 * idem_svc_run() runs a service's effect in one MariaDB transaction whose first statement
 * claims the key (inserts its row, unique per user, method, concrete path and key, with no
 * response yet) and whose last stores the response in it. A concurrent duplicate waits on that
 * unique key inside MariaDB, never on the effect's rows, until the first commits, then replays
 * its response; if the first failed (rolled back, nothing stored), the duplicate runs the
 * effect itself. A different body under the same key gets ERR_IDEMPOTENCY_KEY_REUSED.
 *
 * What is stored, and replayed with Idempotent-Replayed: true:
 * - a success of the effect, with its rendered body;
 * - a refusal of the effect (a 404 or 409 it decided, e.g. ERR_INSUFFICIENT_BALANCE): the
 *   effect is rolled back whole and the key row alone is stored with the problem document
 *   that is sent (rendered by the request's render_problem), and idem_svc_run returns -1 with
 *   that error, so that the first answer and every replay are the same bytes.
 * What is not stored, so the client may retry: a 5xx, and any lock time-out.
 *
 * Lock time-outs are told apart by the statement that timed out: on the key's claim, only a
 * request with this very key can be holding it (ERR_IDEMPOTENCY_IN_FLIGHT, 409 with
 * Retry-After); on the effect's rows, it was other work (ERR_UNAVAILABLE, 503, not stored).
 * A distributed lock that timed out before any of that is told apart by
 * idem_svc_lock_timed_out().
 */

struct arena;
struct db_conn;
struct dlock;
struct err;
struct svc;

/* Renders a refusal of the effect as the problem document that is sent and stored (api/
 * supplies it: only http/resp.c turns an error into a problem). */
typedef const char *idem_problem_fn(const struct err *e, struct arena *a);

struct idem_request {
    int64_t user_id;
    const char *method;
    const char *path; /* concrete, canonical */
    const char *key;
    unsigned char fingerprint[SHA256_LEN];
    /* Look the key up before the effect: worth one round trip where duplicates are common
     * and their effect is costly (order creation under its per-key lock). */
    bool lookup_first;
    /* Required by idem_svc_run (idem_svc_prepare leaves it NULL for the caller to set). */
    idem_problem_fn *render_problem;
};

/* The response the first request gave; replayed when it comes from a stored key. */
struct idem_response {
    int status;
    const char *body;
    bool replayed;
};

/* Renders a service result as the response body that is stored and sent (api/ supplies it). */
typedef const char *idem_render_fn(const void *result, struct arena *a);

/* The effect: runs inside the transaction on c and fills out (status and body). */
typedef int idem_effect_fn(struct db_conn *c, void *ctx, struct arena *a, struct idem_response *out,
                           struct err *e);

/*
 * Fills r from a request: the key from the Idempotency-Key header or the body's
 * "idempotencyKey" (equal if both; 1–255 printable ASCII), and the fingerprint of the parsed
 * body without that field. ERR_IDEMPOTENCY_KEY_MISSING or ERR_INVALID_INPUT otherwise.
 */
int idem_svc_prepare(struct idem_request *r, int64_t user_id, const char *method, const char *path,
                     const char *header_key, const char *body, size_t body_len, struct arena *a,
                     struct err *e);

/* SHA-256 of the canonical text of a JSON body without its idempotencyKey member. */
int idem_fingerprint(const char *body, size_t body_len, struct arena *a,
                     unsigned char out[SHA256_LEN], struct err *e);

/*
 * guard (may be NULL) is the distributed lock the caller holds around the effect: if its lease
 * is lost before commit, the transaction rolls back (ERR_UNAVAILABLE) instead of committing,
 * and a refusal is not stored. Returns 0 with out (a fresh success, or a stored response with
 * out->replayed set, which may be a stored refusal: out->status ≥ 400 and a problem body), or
 * -1 with e: a refusal (now stored), ERR_IDEMPOTENCY_KEY_REUSED, ERR_IDEMPOTENCY_IN_FLIGHT, or
 * ERR_UNAVAILABLE / ERR_INTERNAL. Round trips: BEGIN, the claim, the effect, the response
 * with COMMIT (one call); a refusal: BEGIN, the claim, the effect up to its refusal, ROLLBACK,
 * the key row.
 */
int idem_svc_run(struct svc *s, const struct idem_request *r, const struct dlock *guard,
                 idem_effect_fn *effect, void *ctx, struct arena *a, struct idem_response *out,
                 struct err *e);

/* How a write's start went (idem_start_fn). */
enum idem_start {
    IDEM_START_OPEN,      /* begun, key claimed (*key_row_id), effect done, out filled */
    IDEM_START_DUPLICATE, /* rolled back: another request committed the key */
    IDEM_START_REFUSED,   /* rolled back: e is the effect's refusal or a lock time-out */
    IDEM_START_AGAIN,     /* rolled back as a deadlock's victim: worth another try */
};

/*
 * A write that begins its transaction, claims r's key and runs its effect in one call to
 * MariaDB (a stored procedure), setting *how. A lock wait that times out on the claim is
 * refused with ERR_IDEMPOTENCY_IN_FLIGHT, one in the effect with ERR_UNAVAILABLE, as
 * idem_svc_run does. -1 with e when the call failed (the engine then rolls back).
 */
typedef int idem_start_fn(struct db_conn *c, const struct idem_request *r, void *ctx,
                          struct arena *a, struct idem_response *out, enum idem_start *how,
                          int64_t *key_row_id, struct err *e);

/* idem_svc_run for such a write: the same outcomes, in two round trips when it succeeds (the
 * start, then the response with COMMIT). */
int idem_svc_run_started(struct svc *s, const struct idem_request *r, const struct dlock *guard,
                         idem_start_fn *start, void *ctx, struct arena *a,
                         struct idem_response *out, struct err *e);

/*
 * Whether an error of the effect is a refusal that is stored with the key: the effect's 404 and
 * 409 (API.md: every outcome of the effect is stored). Never a 5xx (lock time-outs included),
 * nor ERR_IDEMPOTENCY_IN_FLIGHT; 400/401/403/413/415/422 are decided before the effect runs.
 */
bool idem_svc_stores_refusal(enum err_code code);

/*
 * For a caller whose distributed lock wait ran out before idem_svc_run (e holds that
 * ERR_UNAVAILABLE): was it waiting behind a request with this very key? One locking read that
 * does not wait. Returns 0 with the stored response when the key has finished meanwhile (a
 * replay, or -1 with ERR_IDEMPOTENCY_KEY_REUSED for another body); -1 with
 * ERR_IDEMPOTENCY_IN_FLIGHT when a transaction holds the key now; otherwise -1 with e as it
 * was: a lock time-out behind other work, not stored.
 */
int idem_svc_lock_timed_out(struct svc *s, const struct idem_request *r, struct arena *a,
                            struct idem_response *out, struct err *e);

/* Deletes keys older than max_age_us, in batches; *purged (may be NULL) counts them. */
int idem_svc_purge(struct svc *s, int64_t max_age_us, uint64_t *purged, struct err *e);

#endif
