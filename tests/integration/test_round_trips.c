/*
 * The round trips each write costs, as /metrics counts them per route (core/round_trips.h):
 * shopd_db_round_trips_total, shopd_db_prepares_total and shopd_redis_round_trips_total. A
 * count, deterministic, never a timing: one `shopd serve` alone on a fresh database, each write
 * sent once to warm its statements and caches, then once more and measured. The expected
 * figures are today's, written out statement by statement beside each test; a change that
 * adds a round trip to a write fails here and has to say why. Issue 13's budgets are charge
 * <= 2 MariaDB round trips, order <= 3, payment <= 3, cancel <= 3, the expiry of one order <= 2
 * amortised over its sweep; every write meets its budget through stored procedures
 * (db/migrations/0009, 0010 and 0014).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>
#include <jansson.h>

#include "harness.h"
#include "it_main.h"
#include "json_check.h"

static struct harness h;
/* Kept duplicates outlive any test here, so that their count is not a race with the clock. */
static const char *const keep_long[] = {"SHOPD_IDEM_KEEP_MS=60000", NULL};
static struct harness_server srv;
static bool srv_stopped; /* by the expiry's test, which needs a sweeper of its own */
static int64_t user;
static char *token;
static int64_t products[2];

struct trips {
    int64_t db, prepares, redis;
};

/* With SHOPD_LOCKS=db (the default; SHOPD_TEST_LOCKS=redis for the other), no write takes a
 * Redis lock. */
static bool locks_db;
/* The Redis round trips of a write's lock: its script and its release (0 without locks). */
static int64_t lock_trips;

static int group_setup(void **state)
{
    (void)state;
    locks_db = harness_locks_db();
    lock_trips = locks_db ? 0 : 2;
    if (harness_setup(&h) || harness_server_start(&h, &srv, keep_long))
        return -1;
    user = harness_create_user(&h, &srv, "round-trips");
    token = harness_token(&h, user);
    products[0] = harness_create_product(&h, &srv, "rt-a", 1000, 1000);
    products[1] = harness_create_product(&h, &srv, "rt-b", 2000, 1000);
    return user > 0 && products[0] > 0 && products[1] > 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    int rc = srv_stopped ? 0 : harness_server_stop(&srv);

    free(token);
    harness_teardown(&h);
    return rc ? -1 : 0;
}

/* One of the three series of route; a route not served yet has none (0). */
static int64_t series(const char *name, const char *route)
{
    char s[256];

    snprintf(s, sizeof(s), "%s{route=\"%s\"}", name, route);
    int64_t v = harness_metric(&srv, s);
    return v < 0 ? 0 : v;
}

static struct trips read_trips(const char *route)
{
    return (struct trips){series("shopd_db_round_trips_total", route),
                          series("shopd_db_prepares_total", route),
                          series("shopd_redis_round_trips_total", route)};
}

static struct trips since(const char *route, struct trips before)
{
    struct trips now = read_trips(route);

    return (struct trips){now.db - before.db, now.prepares - before.prepares,
                          now.redis - before.redis};
}

/* Prints what a write cost and asserts its MariaDB and Redis round trips. */
static void expect_trips(const char *what, struct trips t, int64_t db, int64_t redis)
{
    print_message("    %s: %lld MariaDB round trips, %lld Redis, %lld prepares\n", what,
                  (long long)t.db, (long long)t.redis, (long long)t.prepares);
    assert_int_equal(t.db, db);
    assert_int_equal(t.redis, redis);
}

static int key_seq;

static long charge(void)
{
    char body[128];

    snprintf(body, sizeof(body), "{\"amount\":100000,\"idempotencyKey\":\"rt-charge-%d\"}",
             ++key_seq);
    return it_call(&srv, "POST", token, body, NULL, "/api/users/%lld/balance/charge",
                   (long long)user);
}

/* An order of one unit of each product, sent to server; its id. */
static int64_t order_on(struct harness_server *server)
{
    char body[256];
    json_t *j = NULL;

    snprintf(body, sizeof(body),
             "{\"userId\":%lld,\"items\":[{\"productId\":%lld,\"quantity\":1},"
             "{\"productId\":%lld,\"quantity\":1}],\"idempotencyKey\":\"rt-order-%d\"}",
             (long long)user, (long long)products[0], (long long)products[1], ++key_seq);
    assert_int_equal(it_call(server, "POST", token, body, &j, "/api/orders"), 201);
    int64_t id = jint(j, "orderId");
    json_decref(j);
    return id;
}

static int64_t order(void)
{
    return order_on(&srv);
}

static long order_action(int64_t id, const char *action)
{
    char body[128];

    snprintf(body, sizeof(body), "{\"userId\":%lld,\"idempotencyKey\":\"rt-%s-%d\"}",
             (long long)user, action, ++key_seq);
    return it_call(&srv, "POST", token, body, NULL, "/api/orders/%lld/%s", (long long)id, action);
}

static const char charge_route[] = "POST /api/users/{userId}/balance/charge";
static const char order_route[] = "POST /api/orders";
static const char pay_route[] = "POST /api/orders/{orderId}/payment";
static const char cancel_route[] = "POST /api/orders/{orderId}/cancel";

/*
 * A charge. With SHOPD_LOCKS=db (group commit): a batch of one, shopd_charge_batch (begin,
 * the key and the user's row read without waiting, the claim, the balance's conditional
 * UPDATE, the history INSERT, inside MariaDB), then shopd_respond_batch_commit (the responses
 * and COMMIT) = 2; Redis none. With redis: shopd_charge_begin, then shopd_respond_commit = 2;
 * Redis: the user's lock script and its release = 2.
 */
static void test_charge(void **state)
{
    (void)state;
    assert_int_equal(charge(), 200);
    struct trips before = read_trips(charge_route);
    int64_t batches = harness_metric(&srv, "shopd_charge_batches_total");
    assert_int_equal(charge(), 200);
    expect_trips("charge", since(charge_route, before), 2, lock_trips);
    /* With locks in MariaDB every charge goes through a group commit; never with Redis's. */
    assert_int_equal(harness_metric(&srv, "shopd_charge_batches_total") - batches,
                     locks_db ? 1 : 0);
}

/*
 * An order of 2 lines. With SHOPD_LOCKS=db (group commit; the lines' names and prices as this
 * instance read them before, service/price_memo.h): a batch of one, shopd_order_place_batch
 * (begin, then behind a savepoint the claim, the user, the order's row, per line in ascending
 * product id the stock's conditional UPDATE, on the price and name too, and the line's row),
 * then shopd_respond_batch_commit (the responses, COMMIT) = 2; Redis: one invalidation of both
 * products together = 1. With redis: shopd_order_open (begin, the key's claim, the lines' stock,
 * names and prices read without a lock, the coupon's locking read, the user, the order's row),
 * then shopd_order_commit with the amounts shopd priced (per line in ascending product id the
 * stock's conditional UPDATE and the line's row, the order's amounts, its coupon used, the
 * response, COMMIT) = 2: the products' rows are held for that one call. Redis: one invalidation of
 * both products together = 1 (it was one per product), and with SHOPD_LOCKS=redis the key's
 * lock and release.
 *
 * Its payment. With SHOPD_LOCKS=db (group commit): a batch of one, shopd_pay_batch (begin, then
 * behind a savepoint the claim, the order locked and checked, the PENDING -> PAID UPDATE, the
 * balance UPDATE and its history row, the payment row, per line the sold stock and the day's
 * sales), then shopd_respond_events_batch_commit (the outbox events, the responses, COMMIT)
 * = 2. With redis: shopd_order_settle (the same statements), then shopd_respond_commit_event
 * = 2. Redis: as the order (the order's lock).
 *
 * The cancel of a pending order, and of a paid one. MariaDB: shopd_order_settle (the lines'
 * stock given back, or the refund, the sold stock back and the day's sales corrected; the
 * coupon given back), then the response with COMMIT (and, for a paid order, its event) = 2.
 * Redis: as the payment.
 *
 * Statements prepared are printed, not asserted: which pooled connection a request gets, and
 * so whether it has prepared them already, is the pool's business.
 */
static void test_order_pay_cancel(void **state)
{
    (void)state;
    /* Warm: every statement of the three writes prepared, both products cached. */
    assert_int_equal(charge(), 200);
    assert_int_equal(order_action(order(), "payment"), 200);
    assert_int_equal(order_action(order(), "cancel"), 200);

    struct trips before = read_trips(order_route);
    int64_t orders = harness_metric(&srv, "shopd_order_batches_total");
    int64_t id = order();
    expect_trips("order of 2 lines", since(order_route, before), 2, 1 + lock_trips);
    assert_int_equal(harness_metric(&srv, "shopd_order_batches_total") - orders, locks_db ? 1 : 0);

    before = read_trips(pay_route);
    int64_t batches = harness_metric(&srv, "shopd_payment_batches_total");
    assert_int_equal(order_action(id, "payment"), 200);
    expect_trips("payment", since(pay_route, before), 2, 1 + lock_trips);
    /* With locks in MariaDB every payment goes through a group commit; never with Redis's. */
    assert_int_equal(harness_metric(&srv, "shopd_payment_batches_total") - batches,
                     locks_db ? 1 : 0);

    before = read_trips(cancel_route);
    assert_int_equal(order_action(id, "cancel"), 200);
    expect_trips("cancel of a paid order", since(cancel_route, before), 2, 1 + lock_trips);

    id = order();
    before = read_trips(cancel_route);
    assert_int_equal(order_action(id, "cancel"), 200);
    expect_trips("cancel of a pending order", since(cancel_route, before), 2, 1 + lock_trips);
}

/*
 * A duplicate of a write this instance has just committed (service/idem_flight.h): its
 * response replayed from the instance, 0 MariaDB round trips and 0 Redis, whatever the lock
 * mode (the key is looked up before any lock). A charge and an order, each sent twice with
 * one key and one body.
 */
static void test_duplicate(void **state)
{
    char body[256];
    json_t *first = NULL, *again = NULL;

    (void)state;
    snprintf(body, sizeof(body), "{\"amount\":1000,\"idempotencyKey\":\"rt-dup-charge\"}");
    assert_int_equal(it_call(&srv, "POST", token, body, &first, "/api/users/%lld/balance/charge",
                             (long long)user),
                     200);
    int64_t coalesced = harness_metric(&srv, "shopd_idempotency_coalesced_total");
    struct trips before = read_trips(charge_route);
    assert_int_equal(it_call(&srv, "POST", token, body, &again, "/api/users/%lld/balance/charge",
                             (long long)user),
                     200);
    expect_trips("duplicate charge", since(charge_route, before), 0, 0);
    assert_true(json_equal(first, again));
    json_decref(first);
    json_decref(again);

    snprintf(body, sizeof(body),
             "{\"userId\":%lld,\"items\":[{\"productId\":%lld,\"quantity\":1}],"
             "\"idempotencyKey\":\"rt-dup-order\"}",
             (long long)user, (long long)products[0]);
    assert_int_equal(it_call(&srv, "POST", token, body, &first, "/api/orders"), 201);
    before = read_trips(order_route);
    assert_int_equal(it_call(&srv, "POST", token, body, &again, "/api/orders"), 201);
    expect_trips("duplicate order", since(order_route, before), 0, 0);
    assert_true(json_equal(first, again));
    json_decref(first);
    json_decref(again);
    assert_int_equal(harness_metric(&srv, "shopd_idempotency_coalesced_total") - coalesced, 2);
}

#define EXPIRING 12

static bool all_expired(void *arg)
{
    return harness_metric(arg, "shopd_orders_expired_total") >= EXPIRING;
}

/*
 * The expiry of unpaid orders: one call of shopd_expire_due per batch of up to 50 orders
 * (each expired, its stock and coupon given back, all committed inside MariaDB), and a last
 * call that finds fewer. A sweep of n orders is ceil((n + 1) / 50) round trips: at most 2 per
 * order whatever n, and far less in a batch. The sweeper of a server of its own (the group's is
 * stopped, so that no other process expires these orders) counts its sweeps that expired any.
 */
static void test_expiry(void **state)
{
    static const char *const short_ttl[] = {"SHOPD_ORDER_TTL=1", NULL};
    struct harness_server sweeping;

    (void)state;
    assert_int_equal(harness_server_stop(&srv), 0);
    srv_stopped = true;
    assert_int_equal(harness_server_start(&h, &sweeping, short_ttl), 0);
    for (int i = 0; i < EXPIRING; i++)
        order_on(&sweeping);
    assert_true(harness_wait_for(all_expired, &sweeping, 30000));
    int64_t expired = harness_metric(&sweeping, "shopd_orders_expired_total");
    int64_t trips = harness_metric(&sweeping, "shopd_expiry_db_round_trips_total");
    print_message("    expiry: %lld orders, %lld MariaDB round trips\n", (long long)expired,
                  (long long)trips);
    assert_int_equal(expired, EXPIRING);
    assert_true(trips >= 1 && trips <= 2 * expired);
    assert_int_equal(harness_server_stop(&sweeping), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_charge), cmocka_unit_test(test_order_pay_cancel),
        cmocka_unit_test(test_duplicate),
        cmocka_unit_test(test_expiry), /* last: it stops the group's server */
    };
    int failed = 0;

    if (it_main_begin() < 0)
        return 1;
    IT_RUN_GROUP(failed, "round trips", tests, group_setup, group_teardown);
    return failed ? 1 : 0;
}
