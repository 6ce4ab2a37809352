#ifndef SHOPD_SERVICE_IDEM_SVC_H
#define SHOPD_SERVICE_IDEM_SVC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/sha256.h"
#include "repo/idem_repo.h"

/*
 * Idempotency keys (API.md "Idempotency"): one effect per key, whatever the concurrency, and
 * one outcome per key, refusals included. The write engine (service/write.h) runs every keyed
 * write in one MariaDB transaction whose first statement claims the key (inserts its row,
 * unique per user, method, concrete path and key, with no response yet) and whose last stores
 * the response in it. A concurrent duplicate waits on that unique key inside MariaDB, never on
 * the effect's rows, until the first commits, then replays its response; if the first failed
 * (rolled back, nothing stored), the duplicate runs the effect itself. A different body under
 * the same key gets ERR_IDEMPOTENCY_KEY_REUSED.
 *
 * What is stored, and replayed with Idempotent-Replayed: true:
 * - a success of the effect, with its rendered body;
 * - a refusal of the effect (a 404 or 409 it decided, e.g. ERR_INSUFFICIENT_BALANCE): the
 *   effect is rolled back whole and the key row alone is stored with the problem document
 *   that is sent (rendered by the request's render_problem), so that the first answer and
 *   every replay are the same bytes.
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
struct json_keyed;
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
    /* Required by the write engine; idem_svc_prepare leaves them for the caller (api/) to
     * set: the status of a success (the route's), and how a refusal is rendered. */
    int status;
    idem_problem_fn *render_problem;
};

/* The response the first request gave; replayed when it comes from a stored key. */
struct idem_response {
    int status;
    const char *body;
    bool replayed;
};

/* The body member that may carry the key instead of the Idempotency-Key header. */
#define IDEM_BODY_KEY_FIELD "idempotencyKey"

/*
 * Fills r from a request: the key from the Idempotency-Key header or the body's
 * IDEM_BODY_KEY_FIELD (equal if both; 1–255 printable ASCII), and the fingerprint of the body
 * without that field, both as json_decode_keyed() read them in the body's one parse.
 * ERR_IDEMPOTENCY_KEY_MISSING or ERR_INVALID_INPUT otherwise.
 */
int idem_svc_prepare(struct idem_request *r, int64_t user_id, const char *method, const char *path,
                     const char *header_key, const struct json_keyed *body, struct err *e);

/* SHA-256 of a body's canonical text without its key member (json_keyed.canonical). */
void idem_fingerprint(const char *canonical, unsigned char out[SHA256_LEN]);

/*
 * Whether an error of the effect is a refusal that is stored with the key: the effect's 404 and
 * 409 (API.md: every outcome of the effect is stored). Never a 5xx (lock time-outs included),
 * nor ERR_IDEMPOTENCY_IN_FLIGHT; 400/401/403/413/415/422 are decided before the effect runs.
 */
bool idem_svc_stores_refusal(enum err_code code);

/* The key's row as repo/idem_repo.h names it. */
struct idem_row_key idem_svc_row_key(const struct idem_request *r);

/* The answer from a stored row of r's key: its response (out->replayed), or -1 with e, 422
 * IDEMPOTENCY_KEY_REUSED, when it was stored for another body. */
int idem_svc_replay(const struct idem_request *r, const struct idem_row *row,
                    struct idem_response *out, struct err *e);

/* How a step of the engine with a key went. */
enum idem_step {
    IDEM_STEP_DONE,   /* out is the answer */
    IDEM_STEP_AGAIN,  /* worth another try (a deadlock's victim, a key purged meanwhile) */
    IDEM_STEP_FAILED, /* e is the answer */
};

/* The key was committed by another request: its response (replayed), or
 * ERR_IDEMPOTENCY_KEY_REUSED for another body. */
enum idem_step idem_svc_settle(struct db_conn *c, const struct idem_request *r, struct arena *a,
                               struct idem_response *out, struct err *e);

/*
 * The effect refused with e (idem_svc_stores_refusal) and was rolled back: the key row goes
 * in alone, with the problem sent, in one autocommitted INSERT (so that every request does not
 * pay for a savepoint after its claim). A duplicate that claimed the key between the two is
 * waited for and replayed. FAILED with e, the refusal as it is now stored; ERR_UNAVAILABLE
 * (not stored) when guard's lease ran out.
 */
enum idem_step idem_svc_store_refusal(struct db_conn *c, const struct idem_request *r,
                                      const struct dlock *guard, struct arena *a,
                                      struct idem_response *out, struct err *e);

/*
 * What a write's start that did not leave its transaction open means for its key (how as
 * repo/idem_repo.h): a duplicate settled, a refusal stored (or, a lock wait, not), a deadlock
 * AGAIN. The one place both the write engine and the group commit settle an outcome.
 */
enum idem_step idem_svc_after_start(struct db_conn *c, const struct idem_request *r,
                                    enum idem_start how, const struct dlock *guard, struct arena *a,
                                    struct idem_response *out, struct err *e);

/*
 * What a group commit's outcome other than OPEN (how) means for its request, on the request's
 * own thread and a connection of its own; e holds the batch's refusal or lock wait on entry.
 * A duplicate replayed (its first may have been in that very batch, committed now), a refusal
 * stored, a lock wait not. 0 with out (a replay), or -1 with e.
 */
int idem_svc_settle_batched(struct svc *s, const struct idem_request *r, enum idem_start how,
                            struct arena *a, struct idem_response *out, struct err *e);

/*
 * For a caller whose distributed lock wait ran out before its write began (e holds that
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
