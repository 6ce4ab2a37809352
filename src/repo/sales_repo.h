#ifndef SHOPD_REPO_SALES_REPO_H
#define SHOPD_REPO_SALES_REPO_H

#include <stddef.h>
#include <stdint.h>

/*
 * The daily sales roll-up (product_sales_daily) that top products reads. A payment calls
 * sales_repo_add() in its own transaction; a cancel after payment calls it with negative
 * amounts. Errors as in repo/db.h.
 */

struct arena;
struct db_conn;
struct err;
struct product_rank;
struct product_sales;

/* Adds quantity and revenue (either may be negative) to the product's row for the UTC day of
 * at_us, creating it. */
int sales_repo_add(struct db_conn *c, int64_t at_us, int64_t product_id, int64_t quantity,
                   int64_t revenue_krw, struct err *e);

/* The limit best-selling products over the UTC days from since_us's day on, by quantity sold
 * (ties by lower product id); products that sold nothing are left out. */
int sales_repo_top(struct db_conn *c, int64_t since_us, int limit, struct arena *a,
                   struct product_rank **out, size_t *count, struct err *e);

/* The roll-up rows of the UTC day starting at day_us, and the ids of the outbox events of the
 * orders paid that day (order.paid, and order.cancelled of those later cancelled): read in one
 * snapshot inside the caller's transaction, so the rows are exactly the sum of those events. */
int sales_repo_day(struct db_conn *c, int64_t day_us, struct arena *a, struct product_sales **out,
                   size_t *count, struct err *e);
int sales_repo_day_events(struct db_conn *c, int64_t day_us, struct arena *a,
                          const char ***event_ids, size_t *count, struct err *e);

/* Fills in the names of the ranked products. */
int sales_repo_name_ranks(struct db_conn *c, struct product_rank *ranks, size_t count,
                          struct arena *a, struct err *e);

#endif
