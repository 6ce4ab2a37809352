#include "service/coupon_svc.h"

#include <stdio.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "domain/balance.h"
#include "domain/coupon.h"
#include "redis/coupon_gate.h"
#include "redis/dlock.h"
#include "repo/coupon_repo.h"
#include "repo/db.h"
#include "repo/user_repo.h"
#include "service/svc.h"

#include "core/banned.h"

#define GATE_ATTEMPTS 3

int coupon_svc_create(struct svc *s, const struct coupon *in, struct coupon *out, struct err *e)
{
    struct db_conn *c;
    const char *why;

    if (coupon_validate(in, &why))
        return err_set(e, ERR_INVALID_INPUT, "%s", why);
    if (db_acquire(s->db, &c, e))
        return -1;
    *out = *in;
    out->issued_quantity = 0;
    int rc = coupon_repo_insert(c, in, clock_now_us(), &out->coupon_id, e);
    db_release(s->db, c);
    return rc;
}

int coupon_svc_get(struct svc *s, int64_t coupon_id, struct arena *a, struct coupon *out,
                   struct err *e)
{
    struct db_conn *c;

    if (db_acquire(s->db, &c, e))
        return -1;
    int rc = coupon_repo_get(c, coupon_id, a, out, e);
    db_release(s->db, c);
    return rc;
}

/* The issue itself, in one MariaDB transaction: the judge of every strategy. */
static int issue_in_db(struct svc *s, int64_t coupon_id, int64_t user_id, const struct dlock *guard,
                       struct arena *a, struct user_coupon *out, struct err *e)
{
    int64_t now = clock_now_us();
    int64_t user_coupon_id;
    struct coupon cp;
    struct db_conn *c;
    int rc = -1;

    if (db_acquire(s->db, &c, e))
        return -1;
    if (db_begin(c, e) || coupon_repo_get_for_update(c, coupon_id, a, &cp, e))
        goto out;
    if (!coupon_active_at(&cp, now)) {
        err_set(e, ERR_COUPON_NOT_ACTIVE, "coupon %lld is outside its issue window",
                (long long)coupon_id);
        goto out;
    }
    if (coupon_repo_issue(c, coupon_id, user_id, guard ? guard->fence : 0, now, &user_coupon_id, e))
        goto out;
    if (guard && !dlock_held(guard)) {
        err_set(e, ERR_UNAVAILABLE, "the coupon lock's lease ran out before commit; retry");
        goto out;
    }
    if (db_commit(c, e))
        goto out;
    rc = coupon_repo_user_coupon(c, user_coupon_id, a, out, e);
out:
    db_release(s->db, c); /* rolls back what was not committed */
    return rc;
}

static int rebuild_gate(struct svc *s, int64_t coupon_id, struct arena *a, struct err *e)
{
    struct coupon cp;
    struct db_conn *c;
    int64_t *holders;
    size_t count;

    if (db_acquire(s->db, &c, e))
        return -1;
    int rc = coupon_repo_get(c, coupon_id, a, &cp, e) ||
             coupon_repo_holders(c, coupon_id, a, &holders, &count, e);
    db_release(s->db, c);
    if (rc)
        return -1;
    coupon_gate_rebuild(s->redis, s->key_prefix, &cp, holders, count);
    return 0;
}

static int gate_rejects(enum gate_result r, int64_t coupon_id, int64_t user_id, struct err *e)
{
    switch (r) {
    case GATE_SOLD_OUT:
        return err_set(e, ERR_COUPON_SOLD_OUT, "coupon %lld has no quantity left",
                       (long long)coupon_id);
    case GATE_ALREADY_ISSUED:
        return err_set(e, ERR_COUPON_ALREADY_ISSUED, "user %lld already has coupon %lld",
                       (long long)user_id, (long long)coupon_id);
    case GATE_NOT_ACTIVE:
        return err_set(e, ERR_COUPON_NOT_ACTIVE, "coupon %lld is outside its issue window",
                       (long long)coupon_id);
    default:
        BUG("not a rejection");
    }
}

static int issue_through_gate(struct svc *s, int64_t coupon_id, int64_t user_id, struct arena *a,
                              struct user_coupon *out, struct err *e)
{
    for (int i = 0; i < GATE_ATTEMPTS; i++) {
        enum gate_result r =
            coupon_gate_admit(s->redis, s->key_prefix, coupon_id, user_id, clock_now_us());
        switch (r) {
        case GATE_ADMITTED:
            if (!issue_in_db(s, coupon_id, user_id, NULL, a, out, e))
                return 0;
            if (e->code == ERR_COUPON_SOLD_OUT || e->code == ERR_COUPON_ALREADY_ISSUED)
                coupon_gate_forget(s->redis, s->key_prefix, coupon_id); /* Redis was wrong */
            else
                coupon_gate_undo(s->redis, s->key_prefix, coupon_id, user_id);
            return -1;
        case GATE_UNKNOWN:
            if (rebuild_gate(s, coupon_id, a, e))
                return -1;
            continue;
        case GATE_ERROR:
            return issue_in_db(s, coupon_id, user_id, NULL, a, out, e);
        default:
            return gate_rejects(r, coupon_id, user_id, e);
        }
    }
    /* The state keeps vanishing (Redis restarting?): MariaDB alone decides. */
    return issue_in_db(s, coupon_id, user_id, NULL, a, out, e);
}

static int issue_under_lock(struct svc *s, int64_t coupon_id, int64_t user_id, struct arena *a,
                            struct user_coupon *out, struct err *e)
{
    struct dlock lock;
    struct coupon cp;
    char name[48];

    /* A plain read first: once the coupon is gone, nobody needs to queue for its lock. */
    if (coupon_svc_get(s, coupon_id, a, &cp, e))
        return -1;
    if (cp.issued_quantity >= cp.total_quantity)
        return err_set(e, ERR_COUPON_SOLD_OUT, "coupon %lld has no quantity left",
                       (long long)coupon_id);
    snprintf(name, sizeof(name), "coupon:%lld", (long long)coupon_id);
    if (dlock_acquire(s->locks, name, svc_lock_wait_ms(s), SVC_LOCK_LEASE_MS, &lock, e))
        return -1;
    int rc = issue_in_db(s, coupon_id, user_id, &lock, a, out, e);
    dlock_release(s->locks, &lock);
    return rc;
}

int coupon_svc_loop_check(struct svc *s, int64_t coupon_id, int64_t user_id, struct arena *a,
                          const char ***argv)
{
    if (s->cfg->coupon_strategy != CONFIG_COUPON_GATE || !s->redis)
        return -1;
    return coupon_gate_check_command(s->key_prefix, coupon_id, user_id, clock_now_us(), a, argv);
}

int coupon_svc_loop_refusal(const struct redis_value *reply, int64_t coupon_id, int64_t user_id,
                            struct err *e)
{
    enum gate_result r = coupon_gate_check_result(reply);

    if (r != GATE_SOLD_OUT && r != GATE_ALREADY_ISSUED && r != GATE_NOT_ACTIVE)
        return 0;
    return gate_rejects(r, coupon_id, user_id, e);
}

int coupon_svc_issue(struct svc *s, int64_t coupon_id, int64_t user_id, struct arena *a,
                     struct user_coupon *out, struct err *e)
{
    switch (s->cfg->coupon_strategy) {
    case CONFIG_COUPON_GATE:
        return issue_through_gate(s, coupon_id, user_id, a, out, e);
    case CONFIG_COUPON_LOCK:
        return issue_under_lock(s, coupon_id, user_id, a, out, e);
    case CONFIG_COUPON_DB:
        break;
    }
    return issue_in_db(s, coupon_id, user_id, NULL, a, out, e);
}

int coupon_svc_list(struct svc *s, int64_t user_id, bool filter, int status, struct arena *a,
                    struct user_coupon **out, size_t *count, struct err *e)
{
    struct db_conn *c;
    struct user user;
    struct user_coupon *all;
    size_t n;
    int64_t now = clock_now_us();

    if (db_acquire(s->db, &c, e))
        return -1;
    int rc = user_repo_get(c, user_id, a, &user, e) ||
             coupon_repo_user_coupons(c, user_id, a, &all, &n, e);
    db_release(s->db, c);
    if (rc)
        return -1;
    *out = arena_calloc(a, n, sizeof(**out));
    *count = 0;
    for (size_t i = 0; i < n; i++)
        if (!filter || (int)user_coupon_status_at(&all[i], now) == status)
            (*out)[(*count)++] = all[i];
    return 0;
}
