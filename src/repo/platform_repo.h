#ifndef SHOPD_REPO_PLATFORM_REPO_H
#define SHOPD_REPO_PLATFORM_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The data platform's own tables (platform_events, platform_daily_sales), written only by
 * `shopd platform`. Errors as in repo/db.h.
 */

struct arena;
struct db_conn;
struct err;

/* An event as the platform records it. */
struct platform_event {
    const char *event_id;
    const char *type;
    int64_t order_id;
    int64_t occurred_us;
};

/* Records an event as received; *duplicate (nothing written) when it was recorded before. */
int platform_repo_record(struct db_conn *c, const char *event_id, const char *type,
                         int64_t order_id, int64_t occurred_us, int64_t received_us,
                         bool *duplicate, struct err *e);

/* Which of events[0..n) (n at most DB_IN_WIDE_MAX) were recorded before: recorded[i]. A plain read:
 * another consumer may record one of them before the caller's insert, which then fails. */
int platform_repo_recorded(struct db_conn *c, const struct platform_event *events, size_t n,
                           bool *recorded, struct err *e);

/* Records events[0..n) as received at received_us in one statement; one of them recorded
 * before fails it whole (ER_DUP_ENTRY), and so does an id or type that is not plain ASCII of
 * the column's width (ERR_INVALID_INPUT): the caller then records them one by one. */
int platform_repo_record_many(struct db_conn *c, const struct platform_event *events, size_t n,
                              int64_t received_us, struct arena *a, struct err *e);

/* Adds to the paid orders and revenue of the UTC day of day_us (negative to take back). */
int platform_repo_add_sales(struct db_conn *c, int64_t day_us, int64_t orders, int64_t revenue_krw,
                            struct err *e);

#endif
