#include "service/write.h"

#include "core/arena.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/metrics.h"
#include "redis/dlock.h"
#include "repo/db.h"
#include "repo/idem_repo.h"
#include "service/idem_flight.h"
#include "service/idem_svc.h"
#include "service/svc.h"

#include "core/banned.h"

/* Tries of one write: a deadlock's victim starts again, up to this many times in all. */
#define MAX_ATTEMPTS  4
#define LOCK_NAME_MAX 96

/* After a failed call: roll back; a deadlock is worth another try, nothing else is. */
static enum idem_step roll_back(struct db_conn *c)
{
    db_rollback(c);
    return db_last_errno(c) == DB_ER_DEADLOCK ? IDEM_STEP_AGAIN : IDEM_STEP_FAILED;
}

/* The end of a try whose effect ran: the lease checked, the response rendered, stored with
 * the write's event, and committed, in one call. */
static enum idem_step finish(struct db_conn *c, const struct write_op *op,
                             const struct write_req *w, const struct dlock *guard,
                             const void *result, int64_t key_row_id, struct arena *a,
                             struct idem_response *out, struct err *e)
{
    struct idem_event event;
    bool publishes = op->event && op->event(result, w->now_us, a, &event);

    if (guard && !dlock_held(guard)) {
        db_rollback(c);
        err_set(e, ERR_UNAVAILABLE, "the lock's lease ran out before the %s committed; retry",
                op->name);
        return IDEM_STEP_FAILED;
    }
    out->status = w->idem->status;
    out->body = op->render(result, a);
    out->replayed = false;
    if (!op->commit) {
        if (idem_repo_respond_commit(c, key_row_id, out->status, out->body,
                                     publishes ? &event : NULL, e))
            return roll_back(c);
        return IDEM_STEP_DONE;
    }
    if (publishes)
        BUG("a write with its own commit publishes no event");
    enum idem_start how = IDEM_START_AGAIN;
    if (op->commit(c, w, result, key_row_id, out, a, &how, e))
        return roll_back(c);
    if (how == IDEM_START_COMMITTED)
        return IDEM_STEP_DONE;
    return idem_svc_after_start(c, w->idem, how, guard, a, out, e);
}

/* A start that refused before it wrote anything: the refusal stored in its transaction, which
 * holds the key's claim alone, and committed. IDEM_STEP_FAILED with e, the refusal, as
 * idem_svc_store_refusal answers. */
static enum idem_step finish_refusal(struct db_conn *c, const struct write_op *op,
                                     const struct write_req *w, const struct dlock *guard,
                                     int64_t key_row_id, struct arena *a, struct err *e)
{
    struct err stored;

    if (!idem_svc_stores_refusal(e->code)) {
        db_rollback(c);
        return IDEM_STEP_FAILED;
    }
    if (guard && !dlock_held(guard)) {
        db_rollback(c);
        err_set(e, ERR_UNAVAILABLE, "the lock's lease ran out before the %s's refusal was stored",
                op->name);
        return IDEM_STEP_FAILED;
    }
    err_clear(&stored);
    if (idem_repo_respond_commit(c, key_row_id, err_status(e->code), w->idem->render_problem(e, a),
                                 NULL, &stored)) {
        *e = stored;
        return roll_back(c);
    }
    return IDEM_STEP_FAILED;
}

/* One try: the start, then its outcome settled. */
static enum idem_step attempt(struct db_conn *c, const struct write_op *op,
                              const struct write_req *w, const struct dlock *guard, void *result,
                              struct arena *a, struct idem_response *out, struct err *e)
{
    enum idem_start how = IDEM_START_AGAIN;
    int64_t key_row_id = 0;

    if (op->start(c, w, result, a, &how, &key_row_id, e))
        return roll_back(c);
    if (how == IDEM_START_OPEN)
        return finish(c, op, w, guard, result, key_row_id, a, out, e);
    if (how == IDEM_START_REFUSED_OPEN)
        return finish_refusal(c, op, w, guard, key_row_id, a, e);
    return idem_svc_after_start(c, w->idem, how, guard, a, out, e);
}

/*
 * After a try that lost its connection (the node died or is not ready, and the pool moved to
 * the next): another connection, on which the same key either replays what the lost try
 * committed or, finding it rolled back, does the write again. True when there is one.
 */
static bool reconnected(struct db_pool *pool, struct db_conn **c, struct err *e)
{
    struct err ignored;

    db_release(pool, *c);
    *c = NULL;
    if (db_acquire(pool, c, &ignored))
        return false;
    metrics_inc(METRIC_DB_LOST_WRITE_RETRIES);
    err_clear(e);
    return true;
}

static int run(const struct write_op *op, const struct write_req *w, const struct dlock *guard,
               void *result, struct arena *a, struct idem_response *out, struct err *e)
{
    enum idem_step step = IDEM_STEP_AGAIN;
    struct db_conn *c;

    if (db_acquire(w->svc->db, &c, e))
        return -1;
    err_clear(e);
    for (int i = 0; step == IDEM_STEP_AGAIN && i < MAX_ATTEMPTS; i++) {
        step = attempt(c, op, w, guard, result, a, out, e);
        if (step == IDEM_STEP_AGAIN) {
            metrics_inc(METRIC_DB_DEADLOCK_RETRIES);
        } else if (step == IDEM_STEP_FAILED && i + 1 < MAX_ATTEMPTS && db_last_lost_connection(c)) {
            if (!reconnected(w->svc->db, &c, e))
                return -1;
            step = IDEM_STEP_AGAIN;
        }
    }
    if (step == IDEM_STEP_AGAIN)
        err_set(e, ERR_UNAVAILABLE, "idempotency key '%.64s' is contended; retry", w->idem->key);
    db_release(w->svc->db, c);
    return step == IDEM_STEP_DONE ? 0 : -1;
}

/* The write itself: through its group commit, or lock -> the tries -> unlock. */
static int write_one(struct svc *s, const struct write_op *op, const struct idem_request *r,
                     const void *args, void *result, struct arena *a, struct idem_response *out,
                     struct err *e)
{
    struct write_req w = {.svc = s, .idem = r, .args = args, .now_us = clock_now_us()};
    struct dlock lock;
    char name[LOCK_NAME_MAX];

    if (op->batch) {
        int rc = op->batch(op, &w, result, a, out, e);
        if (rc < 0)
            return rc;
        if (!rc) {
            if (!out->replayed && op->committed)
                op->committed(s, result);
            return 0;
        }
    }
    op->lock_name(&w, name, sizeof(name));
    if (svc_lock(s, name, &lock, e)) {
        if (!op->lock_per_key)
            /* Behind this very key (409 IN_FLIGHT, or its answer), or other work (503)? */
            return idem_svc_lock_timed_out(s, r, a, out, e);
        return err_set(e, ERR_IDEMPOTENCY_IN_FLIGHT,
                       "a request with idempotency key '%.64s' is still in progress", r->key);
    }
    w.fence = lock.fence;
    int rc = run(op, &w, svc_guard(s, &lock), result, a, out, e);
    dlock_release(s->locks, &lock);
    if (!rc && !out->replayed && op->committed)
        op->committed(s, result);
    return rc;
}

int write_run(struct svc *s, const struct write_op *op, const struct idem_request *r,
              const void *args, void *result, struct arena *a, struct idem_response *out,
              struct err *e)
{
    struct idem_ticket ticket = {0};

    if (!r->render_problem || !r->status)
        BUG("keyed write without its route's status and problem renderer");
    if (s->flights) {
        int joined = idem_flight_join(s->flights, r, a, out, &ticket, e);
        if (joined)
            return joined > 0 ? 0 : -1;
    }
    int rc = write_one(s, op, r, args, result, a, out, e);
    idem_flight_leave(&ticket, rc, out);
    return rc;
}
