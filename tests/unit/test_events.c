/* The pieces of the event pipeline that need no server: the event payload read back by the
 * consumers, UTC days, and the worker thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/json.h"
#include "core/worker.h"
#include "domain/order.h"
#include "domain/order_event.h"

static const int64_t paid_us = 1764000000000000LL; /* 2025-11-24T16:00:00Z */

static struct order sample_order(struct order_item *items)
{
    items[0] = (struct order_item){7, "Keyboard", 2, 30000, 60000};
    items[1] = (struct order_item){9, "Mouse \"pro\"", 1, 15000, 15000};
    struct order o = {0};
    o.order_id = 42;
    o.user_id = 3;
    o.status = ORDER_PAID;
    o.items = items;
    o.count = 2;
    o.subtotal_krw = 75000;
    o.discount_krw = 5000;
    o.total_krw = 70000;
    o.paid_us = paid_us;
    return o;
}

static void test_event_round_trip(void **state)
{
    (void)state;
    struct arena a = ARENA_INIT;
    struct order_item items[2];
    struct order o = sample_order(items);
    struct order_event ev;
    struct json_w w;
    struct err e;
    size_t len;

    for (int cancelled = 0; cancelled <= 1; cancelled++) {
        json_w_init(&w, &a);
        order_write_event(&w, cancelled ? ORDER_EVENT_CANCELLED : ORDER_EVENT_PAID, &o,
                          paid_us + 5 * CLOCK_DAY_US);
        const char *text = json_w_text(&w, &len);
        assert_int_equal(order_event_parse(text, len, &a, &ev, &e), 0);
        assert_int_equal(ev.cancelled, cancelled);
        assert_int_equal(ev.order_id, 42);
        assert_int_equal(ev.total_krw, 70000);
        assert_int_equal(ev.paid_us, paid_us); /* the payment's time, not the event's */
        assert_int_equal(ev.count, 2);
        assert_int_equal(ev.lines[1].product_id, 9);
        assert_int_equal(ev.lines[0].quantity, 2);
        assert_int_equal(ev.lines[0].subtotal_krw, 60000);
    }
    arena_release(&a);
}

static void test_event_rejects_what_is_not_one(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "not json",
        "{}",
        "{\"type\":\"order.shipped\",\"orderId\":1,\"totalAmount\":1,"
        "\"paidAt\":\"2025-11-24T16:00:00Z\",\"items\":[{\"productId\":1,\"quantity\":1,"
        "\"subtotal\":1}]}",
        "{\"type\":\"order.paid\",\"orderId\":1,\"totalAmount\":1,\"paidAt\":\"yesterday\","
        "\"items\":[{\"productId\":1,\"quantity\":1,\"subtotal\":1}]}",
        "{\"type\":\"order.paid\",\"orderId\":1,\"totalAmount\":1,"
        "\"paidAt\":\"2025-11-24T16:00:00Z\",\"items\":[]}",
        "{\"type\":\"order.paid\",\"orderId\":0,\"totalAmount\":1,"
        "\"paidAt\":\"2025-11-24T16:00:00Z\",\"items\":[{\"productId\":1,\"quantity\":1,"
        "\"subtotal\":1}]}",
    };
    struct arena a = ARENA_INIT;
    struct order_event ev;
    struct err e;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(order_event_parse(bad[i], strlen(bad[i]), &a, &ev, &e), -1);
        assert_int_equal(e.code, ERR_INVALID_INPUT);
    }
    arena_release(&a);
}

static void test_days(void **state)
{
    (void)state;
    assert_int_equal(order_event_day(paid_us), 20251124);
    assert_int_equal(clock_day_start_us(paid_us), paid_us - 16LL * 3600 * 1000000);
    assert_int_equal(clock_day_start_us(clock_day_start_us(paid_us)), clock_day_start_us(paid_us));
    assert_int_equal(clock_day_start_us(paid_us - 16LL * 3600 * 1000000 - 1),
                     paid_us - 16LL * 3600 * 1000000 - CLOCK_DAY_US);
    assert_int_equal(clock_day_start_us(-1), -CLOCK_DAY_US);
    assert_int_equal(order_event_day(0), 19700101);
}

struct counting {
    atomic_int steps;
    int64_t sleep_ms;
};

static int64_t count_step(void *arg)
{
    struct counting *c = arg;

    atomic_fetch_add(&c->steps, 1);
    return c->sleep_ms;
}

static void wait_for_steps(struct counting *c, int at_least)
{
    struct timespec tick = {0, 1000000};
    int64_t deadline = clock_monotonic_us() + 5000000;

    while (atomic_load(&c->steps) < at_least && clock_monotonic_us() < deadline)
        nanosleep(&tick, NULL);
}

static void test_worker_sleeps_until_nudged_and_stops_promptly(void **state)
{
    (void)state;
    struct counting c = {0, 60000}; /* a minute: only a nudge or a stop ends the sleep */

    struct worker *w = worker_start(count_step, &c);
    wait_for_steps(&c, 1);
    assert_int_equal(atomic_load(&c.steps), 1);
    worker_nudge(w);
    wait_for_steps(&c, 2);
    assert_int_equal(atomic_load(&c.steps), 2);
    int64_t before = clock_monotonic_us();
    worker_stop(w);
    assert_true(clock_monotonic_us() - before < 30000000); /* not the minute */
    assert_int_equal(atomic_load(&c.steps), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_round_trip),
        cmocka_unit_test(test_event_rejects_what_is_not_one),
        cmocka_unit_test(test_days),
        cmocka_unit_test(test_worker_sleeps_until_nudged_and_stops_promptly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
