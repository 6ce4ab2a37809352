#ifndef SHOPD_SERVICE_IDEM_SVC_H
#define SHOPD_SERVICE_IDEM_SVC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/sha256.h"

/*
 * Idempotency keys (API.md "Idempotency"): one effect per key, whatever the concurrency.
 *
 * idem_svc_run() runs a service's effect in one MariaDB transaction that first inserts the key
 * row (unique per user, method, concrete path and key) and last stores the final response in
 * it. A concurrent duplicate blocks on that unique key inside MariaDB until the first commits,
 * then replays its response; if the first failed (rolled back, nothing stored), the duplicate
 * runs the effect itself. A different body under the same key gets ERR_IDEMPOTENCY_KEY_REUSED;
 * a duplicate that waited past the lock wait time-out gets ERR_IDEMPOTENCY_IN_FLIGHT.
 */

struct arena;
struct db_conn;
struct dlock;
struct dlock;
struct err;
struct svc;

struct idem_request {
    int64_t user_id;
    const char *method;
    const char *path; /* concrete, canonical */
    const char *key;
    unsigned char fingerprint[SHA256_LEN];
    /* Look the key up before the effect: worth one round trip where duplicates are common
     * and their effect is costly (order creation under its per-key lock). */
    bool lookup_first;
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
 * is lost before commit, the transaction rolls back (ERR_UNAVAILABLE) instead of committing.
 */
int idem_svc_run(struct svc *s, const struct idem_request *r, const struct dlock *guard,
                 idem_effect_fn *effect, void *ctx, struct arena *a, struct idem_response *out,
                 struct err *e);

/* Deletes keys older than max_age_us, in batches; *purged (may be NULL) counts them. */
int idem_svc_purge(struct svc *s, int64_t max_age_us, uint64_t *purged, struct err *e);

#endif
