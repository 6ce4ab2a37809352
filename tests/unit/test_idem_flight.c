/*
 * service/idem_flight.h without MariaDB: what a leader's outcome leaves for the duplicates of
 * its key, a waiter woken by its leader, a waiter whose leader is too slow, and a full table.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/err.h"
#include "service/idem_flight.h"
#include "service/idem_svc.h"

#define LONG_WAIT_MS 30000
#define KEEP_MS      600000 /* past any test's length: nothing expires by chance */

static const char created[] = "{\"orderId\":7}";

/* A request of user 7 to POST /api/orders with key, its body's fingerprint all `body`. */
static struct idem_request request(const char *key, unsigned char body)
{
    struct idem_request r = {
        .user_id = 7, .method = "POST", .path = "/api/orders", .key = key, .status = 201};

    memset(r.fingerprint, body, sizeof(r.fingerprint));
    return r;
}

struct joined {
    int rc;
    struct idem_ticket ticket;
    struct idem_response out;
    struct err e;
};

static void join(struct idem_flights *t, const struct idem_request *r, struct arena *a,
                 struct joined *j)
{
    memset(j, 0, sizeof(*j));
    err_clear(&j->e);
    j->rc = idem_flight_join(t, r, a, &j->out, &j->ticket, &j->e);
}

static void leave(struct joined *j, int rc, int status, const char *body)
{
    struct idem_response out = {.status = status, .body = body};

    idem_flight_leave(&j->ticket, rc, &out);
}

static void a_success_is_replayed_and_another_body_refused(void **state)
{
    struct idem_flights *t = idem_flights_new(LONG_WAIT_MS, KEEP_MS);
    struct idem_request r = request("k", 1), other = request("k", 2);
    struct arena a = ARENA_INIT;
    struct joined first, again, reused;

    (void)state;
    join(t, &r, &a, &first);
    assert_int_equal(first.rc, 0);
    assert_non_null(first.ticket.leads);
    leave(&first, 0, 201, created);

    join(t, &r, &a, &again);
    assert_int_equal(again.rc, 1);
    assert_null(again.ticket.leads);
    assert_int_equal(again.out.status, 201);
    assert_string_equal(again.out.body, created);
    assert_true(again.out.replayed);

    join(t, &other, &a, &reused);
    assert_int_equal(reused.rc, -1);
    assert_int_equal(reused.e.code, ERR_IDEMPOTENCY_KEY_REUSED);
    arena_release(&a);
    idem_flights_free(t);
}

/* A refusal, a failure, a replayed refusal and a response too large to keep are MariaDB's to
 * answer again. */
static void only_successes_are_kept(void **state)
{
    struct idem_flights *t = idem_flights_new(LONG_WAIT_MS, KEEP_MS);
    struct idem_request r = request("refused", 1);
    struct arena a = ARENA_INIT;
    struct joined j;

    (void)state;
    join(t, &r, &a, &j);
    leave(&j, -1, 0, NULL);
    join(t, &r, &a, &j);
    assert_int_equal(j.rc, 0);
    assert_non_null(j.ticket.leads);
    leave(&j, 0, 409, "{\"code\":\"OUT_OF_STOCK\"}");
    join(t, &r, &a, &j);
    assert_int_equal(j.rc, 0);
    assert_non_null(j.ticket.leads);
    char *big = arena_alloc(&a, IDEM_FLIGHT_BODY_MAX + 2);
    memset(big, 'x', IDEM_FLIGHT_BODY_MAX + 1);
    big[IDEM_FLIGHT_BODY_MAX + 1] = '\0';
    leave(&j, 0, 201, big); /* too large to keep: its duplicates read it from MariaDB */
    join(t, &r, &a, &j);
    assert_int_equal(j.rc, 0);
    assert_non_null(j.ticket.leads);
    leave(&j, -1, 0, NULL);
    arena_release(&a);
    idem_flights_free(t);
}

/* Another body never waits behind a key: MariaDB tells it 409 or 422. */
static void another_body_goes_its_own_way(void **state)
{
    struct idem_flights *t = idem_flights_new(LONG_WAIT_MS, KEEP_MS);
    struct idem_request r = request("k", 1), other = request("k", 2);
    struct arena a = ARENA_INIT;
    struct joined first, second;

    (void)state;
    join(t, &r, &a, &first);
    join(t, &other, &a, &second);
    assert_int_equal(second.rc, 0);
    assert_null(second.ticket.leads);
    leave(&first, 0, 201, created);
    arena_release(&a);
    idem_flights_free(t);
}

struct waiter {
    struct idem_flights *t;
    struct idem_request r;
    struct joined j;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    struct arena a = ARENA_INIT;

    join(w->t, &w->r, &a, &w->j);
    if (w->j.rc == 1) /* the body lives in the arena */
        w->j.out.body = strcmp(w->j.out.body, created) ? "other" : created;
    if (w->j.ticket.leads)
        leave(&w->j, -1, 0, NULL);
    arena_release(&a);
    return NULL;
}

/* The leader joins, a waiter with the same key and body races it, and the leader leaves with
 * (rc, status, body) before (leave_first) or after the waiter is done. Returns the waiter's. */
static struct joined race_a_waiter(struct idem_flights *t, bool leave_first, int rc, int status,
                                   const char *body)
{
    struct waiter w = {.t = t, .r = request("k", 1)};
    struct arena a = ARENA_INIT;
    struct joined first;
    pthread_t thread;

    join(t, &w.r, &a, &first);
    assert_int_equal(pthread_create(&thread, NULL, waiter_main, &w), 0);
    if (leave_first)
        leave(&first, rc, status, body);
    pthread_join(thread, NULL);
    if (!leave_first)
        leave(&first, rc, status, body);
    arena_release(&a);
    return w.j;
}

/* Whether the duplicate joined before or after its leader left, it replays the success. */
static void a_duplicate_replays_its_leaders_success(void **state)
{
    struct idem_flights *t = idem_flights_new(LONG_WAIT_MS, KEEP_MS);
    struct joined w;

    (void)state;
    w = race_a_waiter(t, true, 0, 201, created);
    assert_int_equal(w.rc, 1);
    assert_ptr_equal(w.out.body, created);
    assert_true(w.out.replayed);
    idem_flights_free(t);
}

/* A leader that failed leaves its duplicates to write on their own. */
static void a_failed_leader_lets_its_duplicates_write(void **state)
{
    struct idem_flights *t = idem_flights_new(LONG_WAIT_MS, KEEP_MS);
    struct joined w;

    (void)state;
    w = race_a_waiter(t, true, -1, 0, NULL);
    assert_int_equal(w.rc, 0); /* led afterwards, or went on without leading */
    idem_flights_free(t);
}

/* A duplicate waits no longer than it would in MariaDB: then it is told the key is in flight. */
static void a_slow_leader_leaves_its_duplicate_in_flight(void **state)
{
    struct idem_flights *t = idem_flights_new(50, KEEP_MS);
    struct joined w;

    (void)state;
    w = race_a_waiter(t, false, 0, 201, created);
    assert_int_equal(w.rc, -1);
    assert_int_equal(w.e.code, ERR_IDEMPOTENCY_IN_FLIGHT);
    idem_flights_free(t);
}

/* A kept success goes after keep_ms: the next request with its key writes again (and MariaDB
 * replays it). Polled until then, within a bound, never a fixed sleep. */
static void a_kept_success_expires(void **state)
{
    struct idem_flights *t = idem_flights_new(LONG_WAIT_MS, 1);
    struct idem_request r = request("k", 1);
    struct arena a = ARENA_INIT;
    struct joined j;
    int64_t give_up = clock_monotonic_us() + 5000000;

    (void)state;
    join(t, &r, &a, &j);
    leave(&j, 0, 201, created);
    do {
        join(t, &r, &a, &j);
        assert_true(j.rc == 1 || j.ticket.leads);
    } while (!j.ticket.leads && clock_monotonic_us() < give_up);
    assert_non_null(j.ticket.leads);
    leave(&j, -1, 0, NULL);
    arena_release(&a);
    idem_flights_free(t);
}

/* Past IDEM_FLIGHT_MAX keys being written, a request writes without a flight. */
static void a_full_table_leads_no_more(void **state)
{
    static struct joined leaders[IDEM_FLIGHT_MAX];
    struct idem_flights *t = idem_flights_new(LONG_WAIT_MS, KEEP_MS);
    struct arena a = ARENA_INIT;
    struct joined extra;
    char key[32];

    (void)state;
    for (int i = 0; i < IDEM_FLIGHT_MAX; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        struct idem_request r = request(key, 1);
        join(t, &r, &a, &leaders[i]);
        assert_non_null(leaders[i].ticket.leads);
    }
    struct idem_request r = request("one more", 1);
    join(t, &r, &a, &extra);
    assert_int_equal(extra.rc, 0);
    assert_null(extra.ticket.leads);
    /* A kept success makes room: the oldest kept one goes for a new key. */
    leave(&leaders[0], 0, 201, created);
    join(t, &r, &a, &extra);
    assert_non_null(extra.ticket.leads);
    leave(&extra, -1, 0, NULL);
    for (int i = 1; i < IDEM_FLIGHT_MAX; i++)
        leave(&leaders[i], -1, 0, NULL);
    arena_release(&a);
    idem_flights_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_success_is_replayed_and_another_body_refused),
        cmocka_unit_test(only_successes_are_kept),
        cmocka_unit_test(another_body_goes_its_own_way),
        cmocka_unit_test(a_duplicate_replays_its_leaders_success),
        cmocka_unit_test(a_failed_leader_lets_its_duplicates_write),
        cmocka_unit_test(a_slow_leader_leaves_its_duplicate_in_flight),
        cmocka_unit_test(a_kept_success_expires),
        cmocka_unit_test(a_full_table_leads_no_more),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
