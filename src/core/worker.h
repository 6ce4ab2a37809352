#ifndef SHOPD_CORE_WORKER_H
#define SHOPD_CORE_WORKER_H

#include <stdint.h>

/*
 * A background thread that calls step(ctx) over and over, sleeping between calls as long as
 * step asks (on a monotonic clock, woken early by worker_nudge() or worker_stop()). The
 * sweeper, the outbox relay and the event consumers are workers.
 */

struct worker;

/* Does one round of work; returns how many ms to sleep before the next (0: go on at once). */
typedef int64_t worker_step_fn(void *ctx);

struct worker *worker_start(worker_step_fn *step, void *ctx);
/* Ends the current sleep early (e.g. new work was committed in this process). */
void worker_nudge(struct worker *w);
/* Lets the step in progress finish, then joins the thread and frees w. */
void worker_stop(struct worker *w);

#endif
