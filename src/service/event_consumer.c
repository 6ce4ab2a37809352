#include "service/event_consumer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/worker.h"
#include "core/xalloc.h"
#include "redis/event_stream.h"
#include "repo/db.h"
#include "service/svc.h"

#include "core/banned.h"

#define BATCH              256 /* entries per read: the platform writes them in one transaction */
#define READ_BLOCK_MS      100 /* the read's own socket time-out is this plus a margin */
#define BACKOFF_MIN_MS     100
#define BACKOFF_MAX_MS     2000
#define CLAIM_EVERY_MS_MAX 1000

struct event_consumer {
    struct svc *svc;
    const struct event_group *group;
    char name[128];  /* the consumer's name in its group: host and pid */
    char cursor[48]; /* where the next XAUTOCLAIM pass resumes */
    int64_t next_claim_us;
    int64_t backoff_ms;
    struct worker *worker;
};

static int64_t back_off(struct event_consumer *c, const char *what, const struct err *e)
{
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (c->backoff_ms > BACKOFF_MAX_MS)
        c->backoff_ms = BACKOFF_MAX_MS;
    log_warn("events[%s]: %s: %s; retrying in %lld ms", c->group->name, what, e->detail,
             (long long)c->backoff_ms);
    return c->backoff_ms;
}

/*
 * Hands each entry to the handler and acknowledges those done. Returns 0, or -1 (with e) when
 * MariaDB or Redis went away: the entries not done stay pending and come back later.
 */
static int process(struct event_consumer *c, struct stream_event *evs, size_t n, struct arena *a,
                   struct err *e)
{
    const struct event_group *g = c->group;
    const char **done = arena_alloc(a, (n + 1) * sizeof(*done));
    enum event_outcome *outcomes = arena_alloc(a, (n + 1) * sizeof(*outcomes));
    struct err *errs = arena_alloc(a, (n + 1) * sizeof(*errs));
    size_t ndone = 0;
    int rc = 0;

    if (!n)
        return 0;
    g->handle(c->svc, evs, n, outcomes, errs, a);
    for (size_t i = 0; i < n && !rc; i++) {
        switch (outcomes[i]) {
        case EVENT_DONE:
            metrics_inc(g->consumed);
            done[ndone++] = evs[i].stream_id;
            break;
        case EVENT_DUPLICATE:
            metrics_inc(g->duplicates);
            done[ndone++] = evs[i].stream_id;
            break;
        case EVENT_FAILED:
            metrics_inc(g->failed);
            log_warn("events[%s]: entry %s (%s) failed, delivery %lld: %s", g->name,
                     evs[i].stream_id, evs[i].event_id, (long long)evs[i].deliveries,
                     errs[i].detail);
            break;
        case EVENT_UNAVAILABLE:
            *e = errs[i];
            rc = -1;
            break;
        }
    }
    if (event_stream_ack(c->svc->redis, c->svc->key_prefix, g->name, done, ndone, e))
        return -1; /* unacknowledged entries are redelivered; their handlers see duplicates */
    return rc;
}

/* Takes over entries left pending too long; those delivered too often go to dead letters. */
static int claim_pending(struct event_consumer *c, struct arena *a, struct err *e)
{
    const struct config *cfg = c->svc->cfg;
    const struct event_group *g = c->group;
    struct stream_event *evs;
    size_t n;

    if (event_stream_claim(c->svc->redis, c->svc->key_prefix, g->name, c->name,
                           cfg->events_claim_idle_ms, BATCH, c->cursor, a, &evs, &n, e))
        return -1;
    size_t keep = 0;
    for (size_t i = 0; i < n; i++) {
        metrics_inc(g->redelivered);
        if (evs[i].deliveries <= cfg->events_max_deliveries) {
            evs[keep++] = evs[i];
            continue;
        }
        char reason[96];
        snprintf(reason, sizeof(reason), "delivered %lld times without success",
                 (long long)evs[i].deliveries - 1);
        if (event_stream_dead_letter(c->svc->redis, c->svc->key_prefix, g->name, &evs[i], reason,
                                     e))
            return -1;
        metrics_inc(g->dead_lettered);
        log_error("events[%s]: entry %s (%s) moved to the dead-letter stream: %s", g->name,
                  evs[i].stream_id, evs[i].event_id, reason);
    }
    if (process(c, evs, keep, a, e))
        return -1;
    /* A full page means more may be waiting; the end of the list waits for the next round. */
    int64_t every_ms = cfg->events_claim_idle_ms / 2;
    if (every_ms > CLAIM_EVERY_MS_MAX)
        every_ms = CLAIM_EVERY_MS_MAX;
    if (!strcmp(c->cursor, "0-0"))
        c->next_claim_us = clock_monotonic_us() + every_ms * 1000;
    return 0;
}

static int64_t step(void *arg)
{
    struct event_consumer *c = arg;
    struct arena a = ARENA_INIT;
    struct stream_event *evs;
    struct err e;
    size_t n = 0;
    int64_t sleep_ms = 0;

    if (c->backoff_ms && db_ping(c->svc->db, &e)) {
        sleep_ms = back_off(c, "MariaDB is unavailable", &e);
        goto out;
    }
    if (clock_monotonic_us() >= c->next_claim_us && claim_pending(c, &a, &e)) {
        sleep_ms = back_off(c, "taking over pending entries failed", &e);
        goto out;
    }
    if (event_stream_read(c->svc->redis, c->svc->key_prefix, c->group->name, c->name, BATCH,
                          READ_BLOCK_MS, &a, &evs, &n, &e) ||
        process(c, evs, n, &a, &e)) {
        sleep_ms = back_off(c, "consuming failed", &e);
        goto out;
    }
    c->backoff_ms = 0;
out:
    arena_release(&a);
    return sleep_ms;
}

struct event_consumer *event_consumer_start(struct svc *s, const struct event_group *g)
{
    struct event_consumer *c = xcalloc(1, sizeof(*c));
    char host[64] = "localhost";

    gethostname(host, sizeof(host) - 1);
    c->svc = s;
    c->group = g;
    snprintf(c->name, sizeof(c->name), "%s-%ld", host, (long)getpid());
    snprintf(c->cursor, sizeof(c->cursor), "0-0");
    c->worker = worker_start(step, c);
    return c;
}

void event_consumer_stop(struct event_consumer *c)
{
    worker_stop(c->worker);
    free(c);
}
