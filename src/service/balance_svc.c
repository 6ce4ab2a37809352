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

static int charge_effect(struct db_conn *c, void *arg, struct arena *a, struct idem_response *out,
                         struct err *e)
{
    struct charge_ctx *ctx = arg;
    struct charge_result res = {ctx->user_id, 0, ctx->amount_krw, clock_now_us()};
    struct balance_entry entry = {0};

    if (user_repo_add_balance(c, ctx->user_id, ctx->amount_krw, MONEY_BALANCE_MAX_KRW, ctx->fence,
                              &res.balance_krw, e))
        return -1;
    entry.type = BALANCE_CHARGE;
    entry.amount_krw = ctx->amount_krw;
    entry.balance_after_krw = res.balance_krw;
    entry.created_us = res.charged_us;
    if (balance_repo_append(c, ctx->user_id, &entry, &entry.entry_id, e))
        return -1;
    out->status = 200;
    out->body = ctx->render(&res, a);
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
    int rc = idem_svc_run(s, idem, svc_guard(s, &lock), charge_effect, &ctx, a, out, e);
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
