#ifndef SHOPD_SERVICE_SWEEPER_H
#define SHOPD_SERVICE_SWEEPER_H

/*
 * The housekeeping thread every `shopd serve` runs: it purges idempotency keys older than
 * 24 hours once a minute. Every instance sweeps; the work is idempotent, so several at once is
 * safe. sweeper_stop() wakes it and joins it.
 */

struct svc;
struct sweeper;

struct sweeper *sweeper_start(struct svc *s);
void sweeper_stop(struct sweeper *w);

#endif
