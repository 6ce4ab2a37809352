#include "service/outbox_relay.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/worker.h"
#include "core/xalloc.h"
#include "redis/event_stream.h"
#include "repo/db.h"
#include "repo/outbox_repo.h"
#include "service/event_consumer.h"
#include "service/svc.h"

#include "core/banned.h"

#define IDLE_POLL_MS        100 /* rows committed by other instances wait at most this */
#define DEFERRED_RETRY_MS   20  /* an older event of the same order is being published */
#define SAFE_EVERY_US       1000000
#define STREAM_RETENTION_MS (3600LL * 1000) /* acknowledged entries kept for inspection */
#define BACKOFF_MIN_MS      100
#define BACKOFF_MAX_MS      2000

static const char *const groups[] = {EVENT_GROUP_PLATFORM, EVENT_GROUP_RANKING};
#define NGROUPS (sizeof(groups) / sizeof(groups[0]))

struct outbox_relay {
    struct svc *svc;
    char epoch[48]; /* "" until agreed with MariaDB and Redis */
    int64_t backoff_ms;
    int64_t next_safe_us;
    struct worker *worker;
};

static void new_epoch(char *out, size_t size)
{
    unsigned char raw[16];

    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        memcpy(raw, &ts, sizeof(ts) < sizeof(raw) ? sizeof(ts) : sizeof(raw));
    }
    for (size_t i = 0; i < sizeof(raw) && 2 * i + 2 < size; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

/*
 * Agrees on the epoch: MariaDB's if Redis has the same, else (Redis lost its data, or this is
 * the first start) a new one, with the rows that may not have been consumed unpublished.
 * Holding the state row serialises the relays of every instance here.
 */
static int sync_epoch(struct outbox_relay *r, struct err *e)
{
    struct svc *s = r->svc;
    char db_epoch[48];
    char redis_epoch[48];
    char epoch[48];
    int64_t safe_ms;
    uint64_t republished = 0;
    struct db_conn *c;

    if (db_acquire(s->db, &c, e))
        return -1;
    if (db_begin(c, e) || outbox_repo_relay_state(c, true, db_epoch, &safe_ms, e) ||
        event_stream_epoch(s->redis, s->key_prefix, redis_epoch, sizeof(redis_epoch), e))
        goto fail;
    if (db_epoch[0] && !strcmp(db_epoch, redis_epoch)) {
        db_release(s->db, c);
        snprintf(r->epoch, sizeof(r->epoch), "%s", db_epoch);
        return 0;
    }
    new_epoch(epoch, sizeof(epoch));
    /* Redis first: if MariaDB's commit then fails, the epochs differ and the next sync redoes
     * this; re-publishing twice is harmless. */
    if (outbox_repo_begin_epoch(c, epoch, safe_ms, clock_now_us(), &republished, e) ||
        event_stream_begin_epoch(s->redis, s->key_prefix, epoch, groups, NGROUPS, e) ||
        db_commit(c, e))
        goto fail;
    db_release(s->db, c);
    snprintf(r->epoch, sizeof(r->epoch), "%s", epoch);
    metrics_add(METRIC_EVENTS_REPUBLISHED, republished);
    if (db_epoch[0])
        log_warn("relay: the event stream lost its epoch (Redis lost its data?): epoch %s "
                 "begins, %llu event(s) queued again",
                 epoch, (unsigned long long)republished);
    else
        log_info("relay: event stream epoch %s begins", epoch);
    return 0;
fail:
    db_release(s->db, c); /* rolls back */
    return -1;
}

/* Index of id in ids[0..n), or n. */
static size_t find(const int64_t *ids, size_t n, int64_t id)
{
    size_t i = 0;

    while (i < n && ids[i] != id)
        i++;
    return i;
}

/* The distinct orders of the claimed rows, each with its first (oldest) claimed row's id. */
static size_t group_by_aggregate(const struct outbox_row *rows, size_t n, int64_t *aggregates,
                                 int64_t *first_claimed)
{
    size_t naggregates = 0;

    for (size_t i = 0; i < n; i++)
        if (find(aggregates, naggregates, rows[i].aggregate_id) == naggregates) {
            aggregates[naggregates] = rows[i].aggregate_id;
            first_claimed[naggregates++] = rows[i].id; /* rows come oldest first */
        }
    return naggregates;
}

/* The rows that may go now, as events (and their ids): those with no older unpublished event
 * of their order elsewhere. */
static size_t publishable(const struct outbox_row *rows, size_t n, const int64_t *aggregates,
                          size_t naggregates, const int64_t *oldest, const int64_t *first_claimed,
                          struct stream_event *evs, int64_t *ids)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        size_t g = find(aggregates, naggregates, rows[i].aggregate_id);
        if (oldest[g] && oldest[g] < first_claimed[g]) {
            metrics_inc(METRIC_EVENTS_DEFERRED);
            continue; /* another relay holds an older event of this order */
        }
        evs[k] = (struct stream_event){NULL,
                                       rows[i].event_id,
                                       rows[i].type,
                                       rows[i].aggregate_id,
                                       rows[i].created_us,
                                       rows[i].payload,
                                       0};
        ids[k++] = rows[i].id;
    }
    return k;
}

/*
 * Publishes one batch in one transaction. *claimed: rows claimed (a full batch means more are
 * waiting), *published: rows published. Returns 0, -1 or EVENT_STREAM_EPOCH.
 */
static int publish_batch(struct outbox_relay *r, struct arena *a, size_t *claimed,
                         size_t *published, struct err *e)
{
    struct svc *s = r->svc;
    struct outbox_row *rows;
    struct db_conn *c;
    int64_t aggregates[OUTBOX_CLAIM_MAX];
    int64_t first_claimed[OUTBOX_CLAIM_MAX];
    int64_t oldest[OUTBOX_CLAIM_MAX];
    int64_t ids[OUTBOX_CLAIM_MAX];
    int64_t last_ms = 0;
    struct stream_event evs[OUTBOX_CLAIM_MAX];
    size_t n;
    size_t naggregates;
    size_t k;
    int rc = -1;

    *claimed = *published = 0;
    if (db_acquire(s->db, &c, e))
        return -1;
    if (db_begin(c, e) || outbox_repo_claim(c, OUTBOX_CLAIM_MAX, a, &rows, &n, e))
        goto out;
    *claimed = n;
    if (!n) {
        rc = 0;
        goto out;
    }
    naggregates = group_by_aggregate(rows, n, aggregates, first_claimed);
    if (outbox_repo_oldest_unpublished(c, aggregates, naggregates, oldest, e))
        goto out;
    k = publishable(rows, n, aggregates, naggregates, oldest, first_claimed, evs, ids);
    if (!k) {
        rc = 0;
        goto out;
    }
    rc = event_stream_publish(s->redis, s->key_prefix, r->epoch, evs, k, &last_ms, e);
    if (rc)
        goto out;
    rc = -1;
    if (outbox_repo_mark_published(c, ids, k, clock_now_us(), last_ms, e) || db_commit(c, e))
        goto out; /* published but not marked: published again later, consumers dedupe */
    metrics_add(METRIC_EVENTS_PUBLISHED, k);
    *published = k;
    rc = 0;
out:
    db_release(s->db, c); /* rolls back what was not committed */
    return rc;
}

/* Records how far every group has acknowledged, and trims what nobody needs any more. */
static void advance_safe_point(struct outbox_relay *r)
{
    struct svc *s = r->svc;
    struct db_conn *c;
    int64_t safe_ms;
    struct err e;

    if (event_stream_safe_ms(s->redis, s->key_prefix, groups, NGROUPS, &safe_ms, &e) || !safe_ms)
        return;
    if (db_acquire(s->db, &c, &e))
        return;
    int rc = outbox_repo_advance_safe(c, r->epoch, safe_ms, &e);
    db_release(s->db, c);
    if (rc)
        return;
    int64_t below = clock_now_us() / 1000 - STREAM_RETENTION_MS;
    if (event_stream_trim(s->redis, s->key_prefix, below < safe_ms ? below : safe_ms, &e))
        log_debug("relay: trimming the stream failed: %s", e.detail);
}

static int64_t back_off(struct outbox_relay *r, const struct err *e)
{
    r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (r->backoff_ms > BACKOFF_MAX_MS)
        r->backoff_ms = BACKOFF_MAX_MS;
    log_warn("relay: %s; retrying in %lld ms", e->detail, (long long)r->backoff_ms);
    return r->backoff_ms;
}

static int64_t step(void *arg)
{
    struct outbox_relay *r = arg;
    struct arena a = ARENA_INIT;
    size_t claimed;
    size_t published;
    struct err e;

    if (!r->epoch[0] && sync_epoch(r, &e))
        return back_off(r, &e);
    int rc = publish_batch(r, &a, &claimed, &published, &e);
    arena_release(&a);
    if (rc == EVENT_STREAM_EPOCH) {
        r->epoch[0] = '\0';
        return 0;
    }
    if (rc)
        return back_off(r, &e);
    r->backoff_ms = 0;
    if (clock_monotonic_us() >= r->next_safe_us) {
        advance_safe_point(r);
        r->next_safe_us = clock_monotonic_us() + SAFE_EVERY_US;
    }
    if (claimed == OUTBOX_CLAIM_MAX && published)
        return 0;
    return claimed > published ? DEFERRED_RETRY_MS : IDLE_POLL_MS;
}

/* /metrics: how far behind publication is, read from MariaDB at each scrape. */
static void write_backlog(struct buf *b, void *arg)
{
    struct svc *s = arg;
    struct db_conn *c;
    int64_t count = 0;
    int64_t oldest_us = 0;
    struct err e;

    if (db_acquire(s->db, &c, &e))
        return;
    int rc = outbox_repo_backlog(c, &count, &oldest_us, &e);
    db_release(s->db, c);
    if (rc)
        return;
    double age_s = oldest_us ? (double)(clock_now_us() - oldest_us) / 1e6 : 0;
    buf_addf(b,
             "# HELP shopd_outbox_backlog outbox rows not yet published to the event stream\n"
             "# TYPE shopd_outbox_backlog gauge\n"
             "shopd_outbox_backlog %lld\n"
             "# HELP shopd_outbox_oldest_age_seconds age of the oldest unpublished outbox row\n"
             "# TYPE shopd_outbox_oldest_age_seconds gauge\n"
             "shopd_outbox_oldest_age_seconds %.3f\n",
             (long long)count, age_s < 0 ? 0 : age_s);
}

struct outbox_relay *outbox_relay_start(struct svc *s)
{
    struct outbox_relay *r = xcalloc(1, sizeof(*r));
    static bool gauge_registered;

    if (!gauge_registered) {
        metrics_register_gauge(write_backlog, s);
        gauge_registered = true;
    }
    r->svc = s;
    r->worker = worker_start(step, r);
    return r;
}

void outbox_relay_nudge(struct outbox_relay *r)
{
    worker_nudge(r->worker);
}

void outbox_relay_stop(struct outbox_relay *r)
{
    worker_stop(r->worker);
    free(r);
}
