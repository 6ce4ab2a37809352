#include "service/balance_svc.h"

#include <stdio.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/json.h"
#include "domain/balance.h"
#include "domain/money.h"
#include "repo/balance_repo.h"
#include "repo/db.h"
#include "repo/idem_repo.h"
#include "repo/user_repo.h"
#include "service/charge_batch.h"
#include "service/svc.h"
#include "service/write.h"

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

struct charge_args {
    int64_t user_id;
    int64_t amount_krw;
};

/* Per user, as the reference system did: lock -> begin -> work -> commit -> unlock. */
static void charge_lock_name(const struct write_req *w, char *buf, size_t size)
{
    const struct charge_args *args = w->args;

    snprintf(buf, size, "user:%lld", (long long)args->user_id);
}

/* The charge in one call (shopd_charge_begin): begin, claim, balance and history together. */
static int charge_start(struct db_conn *c, const struct write_req *w, void *result, struct arena *a,
                        enum idem_start *how, int64_t *key_row_id, struct err *e)
{
    const struct charge_args *args = w->args;
    const struct idem_request *r = w->idem;
    struct charge_result *res = result;
    struct idem_row_key key = idem_svc_row_key(r);

    (void)a;
    *res = (struct charge_result){
        .user_id = args->user_id, .charged_krw = args->amount_krw, .charged_us = w->now_us};
    return balance_repo_charge_begin(c, args->user_id, &key, r->fingerprint, w->now_us,
                                     args->amount_krw, MONEY_BALANCE_MAX_KRW, w->fence, how,
                                     key_row_id, &res->balance_krw, e);
}

static const char *render_charge(const void *result, struct arena *a)
{
    struct json_w w;

    json_w_init(&w, a);
    charge_write_json(&w, result);
    return json_w_text(&w, NULL);
}

/* Through the group commit when this instance has one. */
static int charge_batched(const struct write_op *op, const struct write_req *w, void *result,
                          struct arena *a, struct idem_response *out, struct err *e)
{
    const struct charge_args *args = w->args;

    (void)op;
    (void)result; /* the batch renders its response itself */

    if (!w->svc->charges)
        return 1;
    return charge_batcher_run(w->svc->charges, w->idem, args->user_id, args->amount_krw, a, out, e);
}

static const struct write_op charge_op = {
    .name = "charge",
    .lock_name = charge_lock_name,
    .batch = charge_batched,
    .start = charge_start,
    .render = render_charge,
};

int balance_svc_charge(struct svc *s, const struct idem_request *idem, int64_t user_id,
                       int64_t amount_krw, struct arena *a, struct idem_response *out,
                       struct err *e)
{
    struct charge_args args = {user_id, amount_krw};
    struct charge_result result;

    if (amount_krw < MONEY_CHARGE_MIN_KRW || amount_krw > MONEY_CHARGE_MAX_KRW)
        return err_set(e, ERR_INVALID_AMOUNT, "amount must be between %lld and %lld KRW",
                       MONEY_CHARGE_MIN_KRW, MONEY_CHARGE_MAX_KRW);
    return write_run(s, &charge_op, idem, &args, &result, a, out, e);
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
