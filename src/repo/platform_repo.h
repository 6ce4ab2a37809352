#ifndef SHOPD_REPO_PLATFORM_REPO_H
#define SHOPD_REPO_PLATFORM_REPO_H

#include <stdbool.h>
#include <stdint.h>

/*
 * The data platform's own tables (platform_events, platform_daily_sales), written only by
 * `shopd platform`. Errors as in repo/db.h.
 */

struct db_conn;
struct err;

/* Records an event as received; *duplicate (nothing written) when it was recorded before. */
int platform_repo_record(struct db_conn *c, const char *event_id, const char *type,
                         int64_t order_id, int64_t occurred_us, int64_t received_us,
                         bool *duplicate, struct err *e);

/* Adds to the paid orders and revenue of the UTC day of day_us (negative to take back). */
int platform_repo_add_sales(struct db_conn *c, int64_t day_us, int64_t orders, int64_t revenue_krw,
                            struct err *e);

#endif
