#ifndef SHOPD_SERVICE_EVENT_CONSUMER_H
#define SHOPD_SERVICE_EVENT_CONSUMER_H

#include <stddef.h>

#include "core/metrics.h"

/*
 * A consumer of the event stream (redis/event_stream.h) in one consumer group, on its own
 * thread: reads new entries, hands each to the group's handler and acknowledges it only after
 * the handler's effect is committed. Entries another consumer (or this one) left pending for
 * SHOPD_EVENTS_CLAIM_IDLE_MS are taken over (XAUTOCLAIM); one delivered more than
 * SHOPD_EVENTS_MAX_DELIVERIES times without success goes to the dead-letter stream. While
 * MariaDB or Redis is away the consumer backs off and claims nothing, so an outage never
 * dead-letters good events.
 *
 * Delivery is at least once; each handler makes a redelivery a no-op (the platform by its
 * event-id key, the ranking by its per-day set of counted ids).
 */

struct arena;
struct err;
struct stream_event;
struct svc;

/* The consumer groups every relay keeps entries for (service/outbox_relay.h). */
#define EVENT_GROUP_RANKING  "ranking"
#define EVENT_GROUP_PLATFORM "platform"

enum event_outcome {
    EVENT_DONE,        /* its effect is committed */
    EVENT_DUPLICATE,   /* its effect was committed before: nothing done */
    EVENT_FAILED,      /* this event cannot be processed (left pending, retried, then dead) */
    EVENT_UNAVAILABLE, /* MariaDB or Redis is away: back off, retry later */
};

/* Handles the n entries of a batch, in order, setting outcomes[i] for each; errs[i] says why
 * for EVENT_FAILED and EVENT_UNAVAILABLE. A handler may commit a batch in one transaction. */
typedef void event_handler_fn(struct svc *s, const struct stream_event *evs, size_t n,
                              enum event_outcome *outcomes, struct err *errs, struct arena *a);

struct event_group {
    const char *name;
    event_handler_fn *handle;
    enum metric_id consumed, duplicates, redelivered, failed, dead_lettered;
};

struct event_consumer;

struct event_consumer *event_consumer_start(struct svc *s, const struct event_group *g);
/* Stops taking entries, lets the one in hand finish, joins the thread. */
void event_consumer_stop(struct event_consumer *c);

#endif
