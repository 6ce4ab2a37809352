#ifndef SHOPD_CORE_HANDOFF_H
#define SHOPD_CORE_HANDOFF_H

#include <pthread.h>
#include <stdbool.h>

/*
 * The line in front of a pool of connections (MariaDB's in repo/db.c, Redis's in
 * redis/redis_pool.c): first come, first served, and a released item goes straight to the
 * first waiter, so that a thread arriving just then cannot take it past the ones in line. A
 * wait is bounded on the monotonic clock (a change of the wall clock neither cuts nor stretches
 * it) and never spins. The pool's own mutex guards the line: every call is made holding it.
 */

struct handoff_waiter;

struct handoff {
    struct handoff_waiter *head, **tail;
};

void handoff_init(struct handoff *h);

/* Whether anyone waits: a free item is then theirs, not the caller's. */
bool handoff_waiting(const struct handoff *h);

/* How many wait (lock held). */
int handoff_length(const struct handoff *h);

/* Waits in line (lock held; released while waiting) up to timeout_ms for an item given by
 * handoff_give(); NULL when none came in time. */
void *handoff_wait(struct handoff *h, pthread_mutex_t *lock, int timeout_ms);

/* Gives item to the first in line (lock held); false when no one waits: the caller keeps it. */
bool handoff_give(struct handoff *h, void *item);

#endif
