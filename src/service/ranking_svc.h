#ifndef SHOPD_SERVICE_RANKING_SVC_H
#define SHOPD_SERVICE_RANKING_SVC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "service/event_consumer.h"

/*
 * The real-time ranking (redis/ranking.h) fed by the "ranking" consumer group that every
 * `shopd serve` runs, and read by top products. MariaDB's roll-up (product_sales_daily) stays
 * the truth: a day missing from Redis is rebuilt from it, and read from it meanwhile.
 */

struct arena;
struct err;
struct product_rank;
struct svc;

/* The ranking group's handler: adds a paid order's lines to its day, takes a cancelled one's
 * off. */
void ranking_svc_handle(struct svc *s, const struct stream_event *evs, size_t n,
                        enum event_outcome *outcomes, struct err *errs, struct arena *a);

extern const struct event_group ranking_group;

/* The best limit products over the last days UTC days (today included), names filled in: from
 * Redis when every day is complete there, else from MariaDB (and the missing days are rebuilt
 * for next time). */
int ranking_svc_top(struct svc *s, int days, int limit, struct arena *a, struct product_rank **out,
                    size_t *count, struct err *e);

/* Builds the UTC day of day_us in Redis from MariaDB unless it is complete already. */
int ranking_svc_rebuild_day(struct svc *s, int64_t day_us, struct err *e);

#endif
