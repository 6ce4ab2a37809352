#include "service/platform_svc.h"

#include <stdbool.h>
#include <string.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/metrics.h"
#include "core/round_trips.h"
#include "domain/order_event.h"
#include "redis/event_stream.h"
#include "repo/db.h"
#include "repo/platform_repo.h"
#include "service/svc.h"

#include "core/banned.h"

/* Checks an entry and reads its payload; false (with e) when it is not a valid event. */
static bool read_event(const struct stream_event *ev, struct arena *a, struct order_event *oe,
                       struct err *e)
{
    if (order_event_parse(ev->payload, strlen(ev->payload), a, oe, e))
        return false;
    if (!ev->event_id[0] ||
        strcmp(ev->type, oe->cancelled ? ORDER_EVENT_CANCELLED : ORDER_EVENT_PAID) ||
        ev->order_id != oe->order_id) {
        err_set(e, ERR_INVALID_INPUT, "the entry's fields do not match its payload");
        return false;
    }
    return true;
}

/* Records one event and applies its effect inside the caller's transaction. */
static int apply(struct db_conn *c, const struct stream_event *ev, const struct order_event *oe,
                 bool *duplicate, struct err *e)
{
    int64_t sign = oe->cancelled ? -1 : 1;

    if (platform_repo_record(c, ev->event_id, ev->type, oe->order_id, ev->occurred_us,
                             clock_now_us(), duplicate, e))
        return -1;
    return *duplicate ? 0 : platform_repo_add_sales(c, oe->paid_us, sign, sign * oe->total_krw, e);
}

static enum event_outcome failure(const struct err *e)
{
    return e->code == ERR_UNAVAILABLE ? EVENT_UNAVAILABLE : EVENT_FAILED;
}

/* Once an event is committed: how long it took from the outbox to here. */
static void observe_lag(const struct stream_event *ev)
{
    metrics_observe_us(METRIC_HIST_PLATFORM_LAG, clock_now_us() - ev->occurred_us);
}

/* Adds the effect of the new events of a batch to their UTC days' sales: one statement per
 * day (a batch is almost always of one day). */
static int add_sales(struct db_conn *c, const struct order_event *oes, const size_t *fresh,
                     size_t nfresh, struct err *e)
{
    const int64_t day_us = 86400LL * 1000000;
    bool counted[DB_IN_WIDE_MAX] = {false};

    for (size_t i = 0; i < nfresh; i++) {
        if (counted[i])
            continue;
        int64_t day = oes[fresh[i]].paid_us / day_us;
        int64_t orders = 0;
        int64_t revenue = 0;
        for (size_t j = i; j < nfresh; j++) {
            const struct order_event *oe = &oes[fresh[j]];
            if (counted[j] || oe->paid_us / day_us != day)
                continue;
            int64_t sign = oe->cancelled ? -1 : 1;
            orders += sign;
            revenue += sign * oe->total_krw;
            counted[j] = true;
        }
        if (platform_repo_add_sales(c, oes[fresh[i]].paid_us, orders, revenue, e))
            return -1;
    }
    return 0;
}

/* The valid events of a batch as the platform records them, and where each is in evs. */
static size_t gather(const struct stream_event *evs, const struct order_event *oes, size_t n,
                     const enum event_outcome *outcomes, struct platform_event *pes, size_t *at)
{
    size_t nvalid = 0;

    for (size_t i = 0; i < n; i++)
        if (outcomes[i] == EVENT_DONE) {
            pes[nvalid] = (struct platform_event){
                .event_id = evs[i].event_id,
                .type = evs[i].type,
                .order_id = oes[i].order_id,
                .occurred_us = evs[i].occurred_us,
            };
            at[nvalid++] = i;
        }
    return nvalid;
}

/*
 * The events of a batch in one transaction of a few statements whatever its size (which of
 * them were recorded before, the new ones' rows, their days' sales); false (rolled back) when
 * that failed: another consumer recorded one of them in between, or the batch carries one
 * event twice (a republished entry beside its first), and each then goes on its own.
 */
static bool apply_batch(struct db_conn *c, const struct stream_event *evs,
                        const struct order_event *oes, size_t n, enum event_outcome *outcomes,
                        bool *dup, struct arena *a)
{
    struct platform_event pes[DB_IN_WIDE_MAX];
    size_t at[DB_IN_WIDE_MAX]; /* of each valid event in evs */
    size_t fresh[DB_IN_WIDE_MAX];
    bool recorded[DB_IN_WIDE_MAX];
    size_t nfresh = 0;
    struct err e;

    if (n > DB_IN_WIDE_MAX)
        return false; /* never: a read is at most DB_IN_WIDE_MAX; each would still work */
    size_t nvalid = gather(evs, oes, n, outcomes, pes, at);
    bool ok = !db_begin(c, &e) && !platform_repo_recorded(c, pes, nvalid, recorded, &e);
    for (size_t k = 0; ok && k < nvalid; k++) {
        dup[at[k]] = recorded[k];
        if (!recorded[k]) {
            pes[nfresh] = pes[k];
            fresh[nfresh++] = at[k];
        }
    }
    ok = ok && !platform_repo_record_many(c, pes, nfresh, clock_now_us(), a, &e) &&
         !add_sales(c, oes, fresh, nfresh, &e) && !db_commit(c, &e);
    if (!ok) {
        db_rollback(c);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if (outcomes[i] == EVENT_DONE && dup[i])
            outcomes[i] = EVENT_DUPLICATE;
        else if (outcomes[i] == EVENT_DONE)
            observe_lag(&evs[i]);
    return true;
}

/* The events of a batch each in a transaction of its own. */
static void apply_each(struct db_conn *c, const struct stream_event *evs,
                       const struct order_event *oes, size_t n, enum event_outcome *outcomes,
                       struct err *errs, bool *dup)
{
    for (size_t i = 0; i < n; i++) {
        if (outcomes[i] != EVENT_DONE)
            continue;
        dup[i] = false;
        if (db_begin(c, &errs[i]) || apply(c, &evs[i], &oes[i], &dup[i], &errs[i]) ||
            db_commit(c, &errs[i])) {
            db_rollback(c);
            outcomes[i] = failure(&errs[i]);
        } else if (dup[i]) {
            outcomes[i] = EVENT_DUPLICATE;
        } else {
            observe_lag(&evs[i]);
        }
    }
}

/*
 * The valid events of a batch in one transaction (one commit, one log flush, for up to a
 * whole batch); if that fails, each in a transaction of its own, so that one bad event cannot
 * hold back the others.
 */
static void handle(struct svc *s, const struct stream_event *evs, size_t n,
                   enum event_outcome *outcomes, struct err *errs, struct arena *a)
{
    struct order_event *oes = arena_alloc(a, n * sizeof(*oes));
    bool *dup = arena_calloc(a, n, sizeof(*dup));
    struct db_conn *c;
    struct err e;
    size_t valid = 0;

    for (size_t i = 0; i < n; i++) {
        outcomes[i] = read_event(&evs[i], a, &oes[i], &errs[i]) ? EVENT_DONE : EVENT_FAILED;
        valid += outcomes[i] == EVENT_DONE;
    }
    if (!valid)
        return;
    round_trips_take(NULL); /* the batch's own round trips, from here */
    if (db_acquire(s->db, &c, &e)) {
        for (size_t i = 0; i < n; i++)
            if (outcomes[i] == EVENT_DONE) {
                outcomes[i] = EVENT_UNAVAILABLE;
                errs[i] = e;
            }
        return;
    }
    if (!apply_batch(c, evs, oes, n, outcomes, dup, a))
        apply_each(c, evs, oes, n, outcomes, errs, dup);
    db_release(s->db, c);
    struct round_trips trips;
    round_trips_take(&trips);
    metrics_add(METRIC_PLATFORM_DB_ROUND_TRIPS, trips.n[ROUND_TRIP_DB]);
}

const struct event_group platform_group = {
    EVENT_GROUP_PLATFORM,
    handle,
    METRIC_EVENTS_PLATFORM_CONSUMED,
    METRIC_EVENTS_PLATFORM_DUPLICATES,
    METRIC_EVENTS_PLATFORM_REDELIVERED,
    METRIC_EVENTS_PLATFORM_FAILED,
    METRIC_EVENTS_PLATFORM_DEAD,
};
