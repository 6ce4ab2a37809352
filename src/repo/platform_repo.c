#include "repo/platform_repo.h"

#include "core/err.h"
#include "repo/db.h"

#include "core/banned.h"

static const char sql_record[] =
    "INSERT INTO platform_events (event_id, event_type, order_id, occurred_at, received_at) "
    "VALUES (?, ?, ?, ?, ?)";
static const char sql_add_sales[] =
    "INSERT INTO platform_daily_sales (day, paid_orders, revenue_krw) VALUES (DATE(?), ?, ?) "
    "ON DUPLICATE KEY UPDATE paid_orders = paid_orders + VALUES(paid_orders), "
    "revenue_krw = revenue_krw + VALUES(revenue_krw)";

int platform_repo_record(struct db_conn *c, const char *event_id, const char *type,
                         int64_t order_id, int64_t occurred_us, int64_t received_us,
                         bool *duplicate, struct err *e)
{
    struct db_val p[] = {DB_STR(event_id), DB_STR(type), DB_INT(order_id), DB_TIME(occurred_us),
                         DB_TIME(received_us)};

    *duplicate = false;
    if (!db_exec(c, sql_record, p, 5, NULL, NULL, e))
        return 0;
    if (db_last_errno(c) != DB_ER_DUP_ENTRY)
        return -1;
    *duplicate = true;
    return 0;
}

int platform_repo_add_sales(struct db_conn *c, int64_t day_us, int64_t orders, int64_t revenue_krw,
                            struct err *e)
{
    struct db_val p[] = {DB_TIME(day_us), DB_INT(orders), DB_INT(revenue_krw)};

    return db_exec(c, sql_add_sales, p, 3, NULL, NULL, e);
}
