#include "service/balance_svc.h"

#include <stdio.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/err.h"
#include "domain/balance.h"
#include "domain/money.h"
#include "redis/dlock.h"
#include "repo/balance_repo.h"
#include "repo/db.h"
#include "repo/idem_repo.h"
#include "repo/user_repo.h"
#include "service/svc.h"

#include "core/banned.h"

int user_svc_create(struct svc *s, const char *name, struct arena *a, struct user *out,
                    struct err *e)
{
    struct db_conn *c;
    int64_t id;

    if (db_acquire(s->db, &c, e))
        return -1;
    int rc = user_repo_insert(c, name, clock_now_us(), &id, e);
    db_release(s->db, c);
    if (rc)
        return -1;
    out->user_id = id;
    out->name = arena_strdup(a, name);
    out->balance_krw = 0;
    return 0;
}

int balance_svc_get(struct svc *s, int64_t user_id, struct arena *a, struct user *out,
                    struct err *e)
{
    struct db_conn *c;

    if (db_acquire(s->db, &c, e))
        return -1;
    int rc = user_repo_get(c, user_id, a, out, e);
    db_release(s->db, c);
    return rc;
}

struct charge_ctx {
    int64_t user_id;
    int64_t amount_krw;
    int64_t fence;
    idem_render_fn *render;
};

/* The charge in one call (shopd_charge_begin): begin, claim, balance and history together. */
static int charge_start(struct db_conn *c, const struct idem_request *r, void *arg,
                        struct arena *a, struct idem_response *out, enum idem_start *how,
                        int64_t *key_row_id, struct err *e)
{
    static const enum idem_start outcomes[] = {
        [BALANCE_CHARGE_OPEN] = IDEM_START_OPEN,
        [BALANCE_CHARGE_DUPLICATE] = IDEM_START_DUPLICATE,
        [BALANCE_CHARGE_REFUSED] = IDEM_START_REFUSED,
        [BALANCE_CHARGE_DEADLOCK] = IDEM_START_AGAIN,
    };
    struct charge_ctx *ctx = arg;
    struct charge_result res = {
        .user_id = ctx->user_id, .charged_krw = ctx->amount_krw, .charged_us = clock_now_us()};
    struct idem_row_key key = {
        .user_id = r->user_id, .method = r->method, .path = r->path, .key = r->key};
    enum balance_charge_start started;

    if (balance_repo_charge_begin(c, ctx->user_id, &key, r->fingerprint, res.charged_us,
                                  ctx->amount_krw, MONEY_BALANCE_MAX_KRW, ctx->fence, &started,
                                  key_row_id, &res.balance_krw, e))
        return -1;
    *how = outcomes[started];
    if (started == BALANCE_CHARGE_OPEN) {
        out->status = 200;
        out->body = ctx->render(&res, a);
    }
    return 0;
}

int balance_svc_charge(struct svc *s, const struct idem_request *idem, int64_t user_id,
                       int64_t amount_krw, idem_render_fn *render, struct arena *a,
                       struct idem_response *out, struct err *e)
{
    struct charge_ctx ctx = {user_id, amount_krw, 0, render};
    struct dlock lock;
    char name[48];

    if (amount_krw < MONEY_CHARGE_MIN_KRW || amount_krw > MONEY_CHARGE_MAX_KRW)
        return err_set(e, ERR_INVALID_AMOUNT, "amount must be between %lld and %lld KRW",
                       MONEY_CHARGE_MIN_KRW, MONEY_CHARGE_MAX_KRW);
    /* Per user, as the reference system did: lock → begin → work → commit → unlock. */
    snprintf(name, sizeof(name), "user:%lld", (long long)user_id);
    if (svc_lock(s, name, &lock, e))
        /* Behind this very key (409 IN_FLIGHT, or its answer), or behind other work (503)? */
        return idem_svc_lock_timed_out(s, idem, a, out, e);
    ctx.fence = lock.fence;
    int rc = idem_svc_run_started(s, idem, svc_guard(s, &lock), charge_start, &ctx, a, out, e);
    dlock_release(s->locks, &lock);
    return rc;
}

int balance_svc_history(struct svc *s, int64_t user_id, int64_t before_id, int limit,
                        struct arena *a, struct balance_entry **entries, size_t *count, int *more,
                        struct err *e)
{
    struct db_conn *c;
    struct user user;
    int rc = -1;

    if (db_acquire(s->db, &c, e))
        return -1;
    if (user_repo_get(c, user_id, a, &user, e))
        goto out;
    /* One extra row tells whether another page follows. */
    if (balance_repo_page(c, user_id, before_id, limit + 1, a, entries, count, e))
        goto out;
    *more = *count > (size_t)limit;
    if (*more)
        *count = (size_t)limit;
    rc = 0;
out:
    db_release(s->db, c);
    return rc;
}
