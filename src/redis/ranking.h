#ifndef SHOPD_REDIS_RANKING_H
#define SHOPD_REDIS_RANKING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The real-time sales ranking: per UTC day D (YYYYMMDD) the sorted sets "<prefix>rank:D:qty"
 * and ":rev" (member product id, score units / KRW), the set ":seen" of event ids counted, and
 * ":ready", which says the day is complete. Keys live 8 days.
 *
 * A day is complete only after ranking_rebuild() built it from a MariaDB snapshot (the roll-up
 * of that day and the ids of the events it already contains). Until then ranking_apply()
 * parks events in ":pending", and the rebuild adds those the snapshot did not contain. So an
 * event counts exactly once, whether it arrives before, during or after a rebuild, and after
 * Redis lost the keys the day is simply rebuilt.
 *
 * Errors: 0 or -1 with e set (ERR_UNAVAILABLE when Redis is unreachable).
 */

struct arena;
struct err;
struct product_rank;
struct product_sales;
struct redis_pool;

#define RANKING_DAYS_KEPT 8

enum ranking_applied { RANKING_COUNTED, RANKING_ALREADY_COUNTED, RANKING_PARKED };

int ranking_apply(struct redis_pool *p, const char *prefix, int64_t day, const char *event_id,
                  const struct product_sales *d, size_t n, enum ranking_applied *out,
                  struct err *e);

/* Builds day from the roll-up rows and the ids of the events they contain, unless it is
 * complete already; *built says whether it did. */
int ranking_rebuild(struct redis_pool *p, const char *prefix, int64_t day,
                    const struct product_sales *rollup, size_t n, const char *const *event_ids,
                    size_t nids, bool *built, struct err *e);

/* The best limit products over days (by units, then lower id; those at 0 left out), with
 * names unset. *complete is false (and nothing read) when one of the days is not complete. */
int ranking_top(struct redis_pool *p, const char *prefix, const int64_t *days, size_t ndays,
                int limit, struct arena *a, struct product_rank **out, size_t *count,
                bool *complete, struct err *e);

#endif
