#include "service/ranking_svc.h"

#include "core/arena.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "domain/order_event.h"
#include "domain/product.h"
#include "redis/event_stream.h"
#include "redis/ranking.h"
#include "repo/db.h"
#include "repo/sales_repo.h"
#include "service/svc.h"

#include "core/banned.h"

const struct event_group ranking_group = {
    EVENT_GROUP_RANKING,
    ranking_svc_handle,
    METRIC_EVENTS_RANKING_CONSUMED,
    METRIC_EVENTS_RANKING_DUPLICATES,
    METRIC_EVENTS_RANKING_REDELIVERED,
    METRIC_EVENTS_RANKING_FAILED,
    METRIC_EVENTS_RANKING_DEAD,
};

/* Days before this are not kept in Redis: top products reads them from MariaDB. */
static int64_t oldest_kept_day_us(void)
{
    return clock_day_start_us(clock_now_us()) - (RANKING_DAYS_KEPT - 1) * CLOCK_DAY_US;
}

static enum event_outcome handle_one(struct svc *s, const struct stream_event *ev, struct arena *a,
                                     struct err *e)
{
    struct order_event oe;
    enum ranking_applied applied;

    if (order_event_parse(ev->payload, strlen(ev->payload), a, &oe, e))
        return EVENT_FAILED;
    int64_t day_us = clock_day_start_us(oe.paid_us);
    if (day_us < oldest_kept_day_us())
        return EVENT_DONE;
    struct product_sales *d = arena_alloc(a, oe.count * sizeof(*d));
    int64_t sign = oe.cancelled ? -1 : 1;
    for (size_t i = 0; i < oe.count; i++) {
        d[i].product_id = oe.lines[i].product_id;
        d[i].quantity = sign * oe.lines[i].quantity;
        d[i].revenue_krw = sign * oe.lines[i].subtotal_krw;
    }
    if (ranking_apply(s->redis, s->key_prefix, order_event_day(day_us), ev->event_id, d, oe.count,
                      &applied, e))
        return EVENT_UNAVAILABLE;
    if (applied == RANKING_ALREADY_COUNTED)
        return EVENT_DUPLICATE;
    /* Parked: the day is not built yet. Building it counts the parked event; if building fails
     * now, the event stays parked for the next rebuild. */
    if (applied == RANKING_PARKED && ranking_svc_rebuild_day(s, day_us, e))
        log_warn("ranking: rebuilding day %lld failed: %s", (long long)order_event_day(day_us),
                 e->detail);
    return EVENT_DONE;
}

void ranking_svc_handle(struct svc *s, const struct stream_event *evs, size_t n,
                        enum event_outcome *outcomes, struct err *errs, struct arena *a)
{
    /* One script per event: each is atomic in Redis, so nothing to batch for exactness. */
    for (size_t i = 0; i < n; i++)
        outcomes[i] = handle_one(s, &evs[i], a, &errs[i]);
}

int ranking_svc_rebuild_day(struct svc *s, int64_t day_us, struct err *e)
{
    struct arena a = ARENA_INIT;
    struct product_sales *rollup;
    const char **ids;
    struct db_conn *c;
    size_t n;
    size_t nids;
    bool built = false;
    int rc = -1;

    if (db_acquire(s->db, &c, e))
        return -1;
    /* One snapshot: the roll-up rows are exactly the sum of these events. */
    if (db_begin_snapshot(c, e) || sales_repo_day(c, day_us, &a, &rollup, &n, e) ||
        sales_repo_day_events(c, day_us, &a, &ids, &nids, e) || db_commit(c, e)) {
        db_release(s->db, c);
        goto out;
    }
    db_release(s->db, c);
    if (ranking_rebuild(s->redis, s->key_prefix, order_event_day(day_us), rollup, n, ids, nids,
                        &built, e))
        goto out;
    if (built)
        log_info("ranking: day %lld rebuilt from MariaDB (%zu products, %zu events)",
                 (long long)order_event_day(day_us), n, nids);
    rc = 0;
out:
    arena_release(&a);
    return rc;
}

static int top_from_db(struct svc *s, int64_t since_us, int limit, struct arena *a,
                       struct product_rank **out, size_t *count, struct err *e)
{
    struct db_conn *c;

    if (db_acquire(s->db, &c, e))
        return -1;
    int rc = sales_repo_top(c, since_us, limit, a, out, count, e);
    db_release(s->db, c);
    return rc;
}

int ranking_svc_top(struct svc *s, int days, int limit, struct arena *a, struct product_rank **out,
                    size_t *count, struct err *e)
{
    int64_t today_us = clock_day_start_us(clock_now_us());
    int64_t since_us = today_us - (int64_t)(days - 1) * CLOCK_DAY_US;
    int64_t day_keys[RANKING_DAYS_KEPT];
    bool complete = false;
    struct err re;

    if (days > RANKING_DAYS_KEPT)
        return top_from_db(s, since_us, limit, a, out, count, e);
    for (int i = 0; i < days; i++)
        day_keys[i] = order_event_day(since_us + i * CLOCK_DAY_US);
    if (ranking_top(s->redis, s->key_prefix, day_keys, (size_t)days, limit, a, out, count,
                    &complete, &re)) {
        log_debug("ranking: reading Redis failed, reading MariaDB: %s", re.detail);
        return top_from_db(s, since_us, limit, a, out, count, e);
    }
    if (complete) {
        struct db_conn *c;
        if (db_acquire(s->db, &c, e))
            return -1;
        int rc = sales_repo_name_ranks(c, *out, *count, a, e);
        db_release(s->db, c);
        return rc;
    }
    for (int i = 0; i < days; i++)
        if (ranking_svc_rebuild_day(s, since_us + i * CLOCK_DAY_US, &re))
            log_warn("ranking: rebuilding a day failed: %s", re.detail);
    return top_from_db(s, since_us, limit, a, out, count, e);
}
