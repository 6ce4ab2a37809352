/*
 * service/batcher.h without MariaDB: a lone request writes its own batch, requests that arrive
 * while a batch is written go into the next one together, no batch is larger than BATCHER_MAX,
 * and a waiter the write puts back goes into the next batch until its attempts run out.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/clock.h"
#include "service/batcher.h"

#define WAIT_LIMIT_US (30 * 1000000LL)

struct waiter {
    struct batch_waiter base; /* first */
    int id;
    int batches;     /* how many batches it was written in */
    int again_until; /* the write puts it back while it was in fewer batches than this */
};

/* What the test's write saw, and the gate the first batch waits at. */
struct recorder {
    struct batcher *b;
    pthread_mutex_t lock;
    size_t sizes[16];
    size_t nbatches;
    pthread_t writers[16];
    size_t hold_first_until; /* the first batch waits until this many are queued (0: not) */
};

static void wait_until_queued(struct batcher *b, size_t n)
{
    int64_t deadline = clock_now_us() + WAIT_LIMIT_US;
    struct timespec tick = {.tv_nsec = 1000000};

    while (batcher_queued(b) < n && clock_now_us() < deadline)
        nanosleep(&tick, NULL);
    assert_true(batcher_queued(b) >= n);
}

static void record(void *ctx, struct batch_waiter **batch, size_t n)
{
    struct recorder *r = ctx;

    pthread_mutex_lock(&r->lock);
    size_t index = r->nbatches++;
    assert_true(index < 16);
    r->sizes[index] = n;
    r->writers[index] = pthread_self();
    pthread_mutex_unlock(&r->lock);
    if (index == 0 && r->hold_first_until)
        wait_until_queued(r->b, r->hold_first_until);
    assert_true(n >= 1 && n <= BATCHER_MAX);
    for (size_t i = 0; i < n; i++) {
        struct waiter *w = (struct waiter *)batch[i];
        w->batches++;
        w->base.again = w->batches < w->again_until;
    }
}

static void recorder_init(struct recorder *r, int max_attempts)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    r->b = batcher_new(
        &(struct batcher_options){.write = record, .ctx = r, .max_attempts = max_attempts});
}

static void recorder_release(struct recorder *r)
{
    batcher_free(r->b);
    pthread_mutex_destroy(&r->lock);
}

static size_t batches_begun(struct recorder *r)
{
    pthread_mutex_lock(&r->lock);
    size_t n = r->nbatches;
    pthread_mutex_unlock(&r->lock);
    return n;
}

struct runner {
    struct recorder *r;
    struct waiter w;
};

static void *run_main(void *arg)
{
    struct runner *k = arg;

    batcher_run(k->r->b, &k->w.base);
    return NULL;
}

static void a_lone_request_writes_its_own_batch(void **state)
{
    struct recorder r;
    struct waiter w = {.id = 1};

    (void)state;
    recorder_init(&r, 4);
    batcher_run(r.b, &w.base);
    assert_int_equal(r.nbatches, 1);
    assert_int_equal(r.sizes[0], 1);
    assert_true(pthread_equal(r.writers[0], pthread_self()));
    assert_int_equal(w.batches, 1);
    assert_false(w.base.again);
    assert_int_equal(batcher_queued(r.b), 0);
    recorder_release(&r);
}

/* While the first batch is written, BATCHER_MAX + 5 more arrive: they go in two batches, the
 * first full. */
#define LATE (BATCHER_MAX + 5)

static void requests_arriving_during_a_batch_go_into_the_next_together(void **state)
{
    static struct runner runners[1 + LATE];
    pthread_t threads[1 + LATE];
    struct recorder r;

    (void)state;
    recorder_init(&r, 4);
    r.hold_first_until = LATE;
    for (int i = 0; i < 1 + LATE; i++) {
        runners[i] = (struct runner){.r = &r, .w = {.id = i}};
        if (i == 0) {
            assert_int_equal(pthread_create(&threads[0], NULL, run_main, &runners[0]), 0);
            /* The first leads alone: wait until its batch is being written. */
            while (!batches_begun(&r))
                nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
            continue;
        }
        assert_int_equal(pthread_create(&threads[i], NULL, run_main, &runners[i]), 0);
    }
    for (int i = 0; i < 1 + LATE; i++)
        pthread_join(threads[i], NULL);
    assert_int_equal(r.nbatches, 3);
    assert_int_equal(r.sizes[0], 1);
    assert_int_equal(r.sizes[1], BATCHER_MAX);
    assert_int_equal(r.sizes[2], LATE - BATCHER_MAX);
    for (int i = 0; i < 1 + LATE; i++)
        assert_int_equal(runners[i].w.batches, 1);
    recorder_release(&r);
}

static void a_waiter_put_back_goes_again_until_its_attempts_run_out(void **state)
{
    struct recorder r;
    struct waiter twice = {.id = 1, .again_until = 2};
    struct waiter always = {.id = 2, .again_until = 100};

    (void)state;
    recorder_init(&r, 3);
    batcher_run(r.b, &twice.base);
    assert_int_equal(twice.batches, 2);
    assert_int_equal(twice.base.attempts, 2);
    assert_false(twice.base.again);
    batcher_run(r.b, &always.base);
    assert_int_equal(always.batches, 3);
    assert_int_equal(always.base.attempts, 3);
    assert_true(always.base.again); /* gave up: the caller answers it */
    recorder_release(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_lone_request_writes_its_own_batch),
        cmocka_unit_test(requests_arriving_during_a_batch_go_into_the_next_together),
        cmocka_unit_test(a_waiter_put_back_goes_again_until_its_attempts_run_out),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
