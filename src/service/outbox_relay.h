#ifndef SHOPD_SERVICE_OUTBOX_RELAY_H
#define SHOPD_SERVICE_OUTBOX_RELAY_H

/*
 * The outbox relay every `shopd serve` runs (several at once): it claims unpublished outbox
 * rows (FOR UPDATE SKIP LOCKED), appends them to the event stream and marks them published in
 * the same MariaDB transaction, so a row is published at least once whatever crashes; the
 * consumers make a second publication harmless.
 *
 * - Order: a row waits while an older row of its order is unpublished (held by another
 *   relay), so an order's events enter the stream in the order they were written.
 * - Redis down: the transaction rolls back and the relay retries with back-off.
 * - Redis lost its data (restarted without persistence, failed over to a stale replica): the
 *   stream epoch in Redis no longer matches MariaDB's, and the relay that notices first starts
 *   a new epoch and unpublishes every row whose entry may not have been acknowledged by every
 *   consumer group (stream time at or after the safe point, which the relays advance once a
 *   second from the groups' progress).
 *
 * relay_nudge() wakes the relay at once (called after a commit that wrote an event); otherwise
 * it polls every 100 ms while idle.
 */

struct svc;
struct outbox_relay;

struct outbox_relay *outbox_relay_start(struct svc *s);
void outbox_relay_nudge(struct outbox_relay *r);
void outbox_relay_stop(struct outbox_relay *r);

#endif
