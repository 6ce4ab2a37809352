#include "repo/check_repo.h"

#include "core/arena.h"
#include "core/err.h"
#include "repo/db.h"

#include "core/banned.h"

/* clang-format off */
const struct check_invariant check_invariants[] = {
    {"balance = sum of history, for every user",
     "SELECT COUNT(*) FROM users u WHERE u.balance_krw <> "
     "(SELECT COALESCE(SUM(h.amount_krw), 0) FROM balance_history h WHERE h.user_id = u.id)"},
    {"no balance below 0", "SELECT COUNT(*) FROM users WHERE balance_krw < 0"},
    /* A refund may pass the limit (API.md: it is always applied); a charge never does. */
    {"no charge took a balance above the limit",
     "SELECT COUNT(*) FROM balance_history "
     "WHERE type = 'CHARGE' AND balance_after_krw > 1000000000000"},
    {"stock, reserved and sold never negative",
     "SELECT COUNT(*) FROM products WHERE stock < 0 OR reserved < 0 OR sold < 0"},
    {"stock + reserved + sold = stock ever added",
     "SELECT COUNT(*) FROM products WHERE stock + reserved + sold <> stock_added"},
    {"reserved = quantities of PENDING orders",
     "SELECT COUNT(*) FROM products p WHERE p.reserved <> (SELECT COALESCE(SUM(i.quantity), 0) "
     "FROM order_items i JOIN orders o ON o.id = i.order_id "
     "WHERE i.product_id = p.id AND o.status = 'PENDING')"},
    {"sold = quantities of PAID orders",
     "SELECT COUNT(*) FROM products p WHERE p.sold <> (SELECT COALESCE(SUM(i.quantity), 0) "
     "FROM order_items i JOIN orders o ON o.id = i.order_id "
     "WHERE i.product_id = p.id AND o.status = 'PAID')"},
    {"issued = coupons held, and never more than the quantity",
     "SELECT COUNT(*) FROM coupons c WHERE c.issued_quantity > c.total_quantity OR "
     "c.issued_quantity <> (SELECT COUNT(*) FROM user_coupons u WHERE u.coupon_id = c.id)"},
    {"each PAID order has exactly one payment and one order.paid event",
     "SELECT COUNT(*) FROM orders o WHERE o.status = 'PAID' AND ("
     "(SELECT COUNT(*) FROM payments p WHERE p.order_id = o.id AND p.status = 'PAID') <> 1 OR "
     "(SELECT COUNT(*) FROM outbox x WHERE x.aggregate_id = o.id "
     "AND x.event_type = 'order.paid') <> 1)"},
    {"no payment stands for an order that is not PAID",
     "SELECT COUNT(*) FROM payments p JOIN orders o ON o.id = p.order_id "
     "WHERE p.status = 'PAID' AND o.status <> 'PAID'"},
    {"each paid-then-cancelled order was refunded exactly once",
     "SELECT COUNT(*) FROM orders o WHERE o.status = 'CANCELLED' AND o.paid_at IS NOT NULL AND "
     "o.total_krw > 0 AND (SELECT COUNT(*) FROM balance_history h WHERE h.order_id = o.id "
     "AND h.type = 'REFUND') <> 1"},
    {"each USED coupon is on exactly one live order",
     "SELECT COUNT(*) FROM user_coupons u WHERE u.status = 'USED' AND "
     "(SELECT COUNT(*) FROM orders o WHERE o.user_coupon_id = u.id AND o.id = u.order_id "
     "AND o.status IN ('PENDING', 'PAID')) <> 1"},
    {"each live order with a coupon holds it",
     "SELECT COUNT(*) FROM orders o JOIN user_coupons u ON u.id = o.user_coupon_id "
     "WHERE o.status IN ('PENDING', 'PAID') AND (u.status <> 'USED' OR u.order_id <> o.id)"},
    {"no idempotency key has two effects (orders, payments)",
     "SELECT COUNT(*) FROM (SELECT k.path, JSON_VALUE(k.response_body, '$.orderId') AS target, "
     "JSON_VALUE(k.response_body, '$.paymentId') AS payment FROM idempotency_keys k "
     "WHERE k.status_code IN (200, 201) AND (k.path = '/api/orders' OR k.path LIKE '%/payment') "
     "GROUP BY k.path, target, payment HAVING COUNT(*) > 1) d"},
    {"every order of the last 23 h came from exactly one idempotency key",
     /* One pass over the keys, grouped, then joined: a subquery per order read every key of
      * its user again (hundreds per user under load ran past the read time-out). */
     "SELECT COUNT(*) FROM orders o LEFT JOIN ("
     "SELECT k.user_id, CAST(JSON_VALUE(k.response_body, '$.orderId') AS SIGNED) AS order_id, "
     "COUNT(*) AS n FROM idempotency_keys k WHERE k.method = 'POST' AND k.path = '/api/orders' "
     "GROUP BY 1, 2) x ON x.user_id = o.user_id AND x.order_id = o.id "
     "WHERE o.created_at > UTC_TIMESTAMP(6) - INTERVAL 23 HOUR AND COALESCE(x.n, 0) <> 1"},
};
/* clang-format on */

const size_t check_invariants_count = sizeof(check_invariants) / sizeof(check_invariants[0]);

int check_repo_count(struct db_conn *c, const struct check_invariant *inv, int64_t *violations,
                     struct err *e)
{
    struct arena a = ARENA_INIT;
    struct db_rows rows;
    int rc = db_query(c, inv->sql, NULL, 0, &a, &rows, e);

    if (!rc)
        *violations = rows.nrows ? db_int(&rows, 0, 0) : 0;
    arena_release(&a);
    return rc;
}
