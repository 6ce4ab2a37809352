#ifndef SHOPD_REDIS_EVENT_STREAM_H
#define SHOPD_REDIS_EVENT_STREAM_H

#include <stddef.h>
#include <stdint.h>

/*
 * The event stream "<prefix>events" (Redis Streams) between the outbox relays and the
 * consumer groups, and its dead-letter stream "<prefix>events:dead".
 *
 * An epoch key "<prefix>events:epoch" holds a random token that the relays also keep in
 * MariaDB. A Redis that lost its data has no epoch: a publish naming the old one fails with
 * EVENT_STREAM_EPOCH, and the relay re-publishes what may not have been consumed yet
 * (service/outbox_relay.h).
 *
 * Every call returns 0 or -1 with e set (ERR_UNAVAILABLE when Redis is unreachable).
 */

struct arena;
struct err;
struct redis_pool;

/* One entry. Strings are in the arena of the call that read it (or the caller's, to publish). */
struct stream_event {
    const char *stream_id; /* "<ms>-<seq>", set by Redis */
    const char *event_id;
    const char *type;
    int64_t order_id;
    int64_t occurred_us;
    const char *payload;
    int64_t deliveries; /* how often the group has handed it out, this time included */
};

#define EVENT_STREAM_EPOCH 1 /* publish: the epoch in Redis is not the caller's */

/* The epoch stored in Redis into out ("" when there is none). */
int event_stream_epoch(struct redis_pool *p, const char *prefix, char *out, size_t size,
                       struct err *e);

/* Sets the epoch and creates the groups (reading from the start) if they do not exist. */
int event_stream_begin_epoch(struct redis_pool *p, const char *prefix, const char *epoch,
                             const char *const *groups, size_t ngroups, struct err *e);

/* Appends the events in order, atomically, if the epoch in Redis is epoch; returns 0,
 * EVENT_STREAM_EPOCH (nothing appended) or -1. *last_ms: the Redis time of the last entry. */
int event_stream_publish(struct redis_pool *p, const char *prefix, const char *epoch,
                         const struct stream_event *evs, size_t n, int64_t *last_ms, struct err *e);

/* The Redis time (ms) below which every entry has been acknowledged by every one of groups:
 * 0 when a group is missing. */
int event_stream_safe_ms(struct redis_pool *p, const char *prefix, const char *const *groups,
                         size_t ngroups, int64_t *safe_ms, struct err *e);

/* Drops the entries older than below_ms (approximately: never one at or after it). */
int event_stream_trim(struct redis_pool *p, const char *prefix, int64_t below_ms, struct err *e);

/* Creates the group (reading from the start of the stream) unless it exists. */
int event_stream_ensure_group(struct redis_pool *p, const char *prefix, const char *group,
                              struct err *e);

/* Up to count entries never delivered to the group, waiting at most block_ms for one. The
 * connection's time-out for this call is block_ms plus a margin, so a read that found nothing
 * (the idle case) is a success with *n == 0, never an error. */
int event_stream_read(struct redis_pool *p, const char *prefix, const char *group,
                      const char *consumer, size_t count, int block_ms, struct arena *a,
                      struct stream_event **out, size_t *n, struct err *e);

/* Takes over up to count entries of the group left unacknowledged for min_idle_ms (by any
 * consumer, this one included), with their delivery counts. *cursor starts at "0-0" and is
 * advanced (back to "0-0" at the end of the pending list); it must hold 48 bytes. */
int event_stream_claim(struct redis_pool *p, const char *prefix, const char *group,
                       const char *consumer, int64_t min_idle_ms, size_t count, char *cursor,
                       struct arena *a, struct stream_event **out, size_t *n, struct err *e);

int event_stream_ack(struct redis_pool *p, const char *prefix, const char *group,
                     const char *const *stream_ids, size_t n, struct err *e);

/* Moves an entry to the dead-letter stream with the reason, and acknowledges it, atomically. */
int event_stream_dead_letter(struct redis_pool *p, const char *prefix, const char *group,
                             const struct stream_event *ev, const char *reason, struct err *e);

#endif
