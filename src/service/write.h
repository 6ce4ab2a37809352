#ifndef SHOPD_SERVICE_WRITE_H
#define SHOPD_SERVICE_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "repo/idem_repo.h"

/*
 * The write engine: every keyed write (a charge, an order, a payment, a cancel) is a small
 * description, a struct write_op, run by write_run(), which holds the sequence once:
 *
 *   lock -> start (begin, the key's claim, the effect) -> render -> lease check ->
 *   the response stored (with the write's event) and COMMIT -> unlock -> committed
 *
 * The start is one or two calls to a stored procedure (migrations 0009, 0010, 0014), so a write
 * is two or three MariaDB round trips. An op with its own commit ends in one call that does the
 * rest of its effect with the response (an order: its stock is taken there, so that its
 * products' rows are held for that call alone). A start that refuses before it wrote anything
 * leaves its transaction open, and the refusal is stored in it. (Charges and payments with
 * SHOPD_GROUP_COMMIT go through service/charge_batch.h and service/pay_batch.h instead, which
 * settle each outcome the same way.) The idempotency
 * rules (one effect per key, refusals stored and replayed, a duplicate in flight 409, a row-lock
 * time-out 503) are idem_svc.h's; the response's status is the route's (idem_request.status), its
 * body the op's render of the result.
 *
 * The lock is the write's distributed lock in SHOPD_LOCKS=redis (its fence goes to the start,
 * which writes it with the rows) and nothing in SHOPD_LOCKS=db, where MariaDB's row locks,
 * conditional updates and unique keys alone keep writes apart.
 */

struct arena;
struct db_conn;
struct err;
struct idem_request;
struct idem_response;
struct svc;
struct write_op;

/* What the engine hands a write's start. */
struct write_req {
    struct svc *svc;
    const struct idem_request *idem;
    const void *args; /* the op's own input */
    int64_t fence;    /* the lock's (0 when none was taken: unguarded) */
    int64_t now_us;
};

/* Begins, claims w->idem's key and does the effect (repo/idem_repo.h enum idem_start),
 * filling result and, on OPEN, *key_row_id. -1 with e when a call failed. */
typedef int write_start_fn(struct db_conn *c, const struct write_req *w, void *result,
                           struct arena *a, enum idem_start *how, int64_t *key_row_id,
                           struct err *e);

/* The last call of a write whose start left its transaction open: the rest of the effect, the
 * response stored with key_row_id's key, COMMIT. *how COMMITTED, or as a start's when it
 * refused or failed (rolled back). -1 with e when the call failed. */
typedef int write_commit_fn(struct db_conn *c, const struct write_req *w, const void *result,
                            int64_t key_row_id, const struct idem_response *response,
                            struct arena *a, enum idem_start *how, struct err *e);

/* The result as the response body stored with the key. */
typedef const char *write_render_fn(const void *result, struct arena *a);

/* The event a result publishes through the outbox, if any: true with *out. */
typedef bool write_event_fn(const void *result, int64_t now_us, struct arena *a,
                            struct idem_event *out);

/* After a fresh success committed: caches invalidated, the relay nudged. */
typedef void write_committed_fn(struct svc *s, const void *result);

/* A write that may go through a group commit instead (service/charge_batch.h,
 * service/pay_batch.h): its outcomes as write_run's (result filled on a fresh success), or 1
 * when it is to run on its own. */
typedef int write_batch_fn(const struct write_op *op, const struct write_req *w, void *result,
                           struct arena *a, struct idem_response *out, struct err *e);

/* The name of the write's distributed lock ("user:7"). */
typedef void write_lock_name_fn(const struct write_req *w, char *buf, size_t size);

struct write_op {
    const char *name; /* for errors: "charge" */
    write_lock_name_fn *lock_name;
    /* Only requests with this very key take the lock: a time-out waiting for it means that
     * key is in flight (409). (A duplicate that comes after is still not looked up first: its
     * claim finds the key at once, before any effect, for the same round trip.) */
    bool lock_per_key;
    write_batch_fn *batch; /* NULL: never batched */
    write_start_fn *start;
    write_commit_fn *commit; /* NULL: the response stored and committed alone */
    write_render_fn *render;
    write_event_fn *event;         /* NULL: publishes nothing */
    write_committed_fn *committed; /* NULL: nothing to do */
};

/*
 * Runs op for r with args; a duplicate of a request this instance is writing, or has just
 * written, is answered without MariaDB (service/idem_flight.h, when s->flights is set).
 * 0 with out: a fresh success (result filled), or a stored or kept response (out->replayed;
 * a stored refusal has out->status >= 400 and a problem body, and result is not filled).
 * -1 with e: the refusal (now stored), or as idem_svc.h says.
 */
int write_run(struct svc *s, const struct write_op *op, const struct idem_request *r,
              const void *args, void *result, struct arena *a, struct idem_response *out,
              struct err *e);

#endif
