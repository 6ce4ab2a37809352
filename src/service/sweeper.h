#ifndef SHOPD_SERVICE_SWEEPER_H
#define SHOPD_SERVICE_SWEEPER_H

/*
 * The housekeeping thread every `shopd serve` runs: each second it expires the unpaid orders
 * whose time ran out (and, with Redis Sentinels, checks the Redis master's lineage:
 * redis/lineage.h), and once a minute it purges idempotency keys older than 24 hours. Every
 * instance sweeps; orders are claimed with SKIP LOCKED and moved conditionally, so several at
 * once is safe. sweeper_stop() wakes it and joins it.
 */

struct svc;
struct sweeper;

struct sweeper *sweeper_start(struct svc *s);
void sweeper_stop(struct sweeper *w);

#endif
