#include "repo/platform_repo.h"

#include <string.h>

#include "core/arena.h"
#include "core/array.h"
#include "core/err.h"
#include "core/json.h"
#include "repo/db.h"

#include "core/banned.h"

static const char sql_record[] =
    "INSERT INTO platform_events (event_id, event_type, order_id, occurred_at, received_at) "
    "VALUES (?, ?, ?, ?, ?)";
/* The padding places hold '', which no event id is (the consumer refuses an empty one). */
static const char sql_recorded[] =
    "SELECT event_id FROM platform_events WHERE event_id IN " DB_IN_256;
/* A batch's rows from one JSON array of [event_id, type, order_id, occurred_us]: one
 * statement whatever the batch's size, every value inside the bound parameter. */
static const char sql_record_many[] =
    "INSERT INTO platform_events (event_id, event_type, order_id, occurred_at, received_at) "
    "SELECT j.event_id, j.event_type, j.order_id, "
    "FROM_UNIXTIME(j.occurred_us DIV 1000000) + INTERVAL (j.occurred_us MOD 1000000) MICROSECOND, "
    "? "
    "FROM JSON_TABLE(?, '$[*]' COLUMNS (event_id VARCHAR(64) CHARACTER SET ascii PATH '$[0]', "
    "event_type VARCHAR(32) CHARACTER SET ascii PATH '$[1]', order_id BIGINT PATH '$[2]', "
    "occurred_us BIGINT PATH '$[3]')) AS j";
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

int platform_repo_recorded(struct db_conn *c, const struct platform_event *events, size_t n,
                           bool *recorded, struct err *e)
{
    struct db_val p[DB_IN_WIDE_MAX];
    struct arena a = ARENA_INIT;
    struct db_rows rows;

    if (n > DB_IN_WIDE_MAX)
        return err_set(e, ERR_INTERNAL, "at most %d events at once", DB_IN_WIDE_MAX);
    for (size_t i = 0; i < DB_IN_WIDE_MAX; i++)
        p[i] = DB_STR(i < n ? events[i].event_id : "");
    if (db_query(c, sql_recorded, p, DB_IN_WIDE_MAX, &a, &rows, e)) {
        arena_release(&a);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        recorded[i] = false;
        for (size_t r = 0; r < rows.nrows && !recorded[i]; r++)
            recorded[i] = !strcmp(db_str(&rows, r, 0), events[i].event_id);
    }
    arena_release(&a);
    return 0;
}

/* Whether s fits a JSON_TABLE column of max ASCII characters unchanged: printable ASCII, not
 * empty. Anything else is left to the single-row statement, whose bound value the column
 * refuses (an error) rather than converting or truncating it. */
static bool fits_ascii(const char *s, size_t max)
{
    size_t n = 0;

    for (; s[n]; n++)
        if (n == max || (unsigned char)s[n] < 0x21 || (unsigned char)s[n] > 0x7e)
            return false;
    return n > 0;
}

int platform_repo_record_many(struct db_conn *c, const struct platform_event *events, size_t n,
                              int64_t received_us, struct arena *a, struct err *e)
{
    struct json_w w;

    if (!n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!fits_ascii(events[i].event_id, 64) || !fits_ascii(events[i].type, 32))
            return err_set(e, ERR_INVALID_INPUT, "event %zu of the batch does not fit a row", i);
    json_w_init(&w, a);
    json_w_arr_begin(&w, NULL);
    for (size_t i = 0; i < n; i++) {
        json_w_arr_begin(&w, NULL);
        json_w_str(&w, NULL, events[i].event_id);
        json_w_str(&w, NULL, events[i].type);
        json_w_int(&w, NULL, events[i].order_id);
        json_w_int(&w, NULL, events[i].occurred_us);
        json_w_arr_end(&w);
    }
    json_w_arr_end(&w);
    struct db_val p[] = {DB_TIME(received_us), DB_STR(json_w_text(&w, NULL))};

    return db_exec(c, sql_record_many, p, ARRAY_SIZE(p), NULL, NULL, e);
}
