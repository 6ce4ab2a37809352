#include "service/idem_flight.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/array.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/metrics.h"
#include "core/xalloc.h"
#include "repo/idem_repo.h"
#include "service/idem_svc.h"

#include "core/banned.h"

#define BUCKETS 1024 /* a power of two */

enum flight_state {
    FLIGHT_WRITING, /* its leader is writing it */
    FLIGHT_KEPT,    /* its committed success, kept for keep_ms */
    FLIGHT_GONE,    /* out of the table: freed by the last waiter */
};

struct flight {
    struct flight *next;          /* in its bucket */
    struct flight *older, *newer; /* in the table's list of kept ones, oldest first */
    char *key;                    /* "user method path key", malloc'd */
    uint64_t hash;
    unsigned char fingerprint[SHA256_LEN];
    enum flight_state state;
    int waiters;
    int status;
    char *body; /* when kept, malloc'd */
    int64_t kept_until_us;
};

struct idem_flights {
    pthread_mutex_t mu;
    pthread_cond_t settled; /* broadcast when a flight leaves FLIGHT_WRITING */
    struct flight *buckets[BUCKETS];
    struct flight *oldest, *newest; /* the kept ones */
    size_t count;
    int64_t wait_ms, keep_ms;
};

/* FNV-1a: the keys are the client's, so the table is sized to stay short either way. */
static uint64_t hash_of(const char *s)
{
    uint64_t h = 14695981039346656037ULL;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

struct idem_flights *idem_flights_new(int64_t wait_ms, int64_t keep_ms)
{
    struct idem_flights *t = xcalloc(1, sizeof(*t));

    pthread_mutex_init(&t->mu, NULL);
    clock_cond_init(&t->settled);
    t->wait_ms = wait_ms;
    t->keep_ms = keep_ms;
    return t;
}

static void flight_free(struct flight *f)
{
    free(f->key);
    free(f->body);
    free(f);
}

void idem_flights_free(struct idem_flights *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < ARRAY_SIZE(t->buckets); i++)
        for (struct flight *f = t->buckets[i], *next; f; f = next) {
            next = f->next;
            flight_free(f);
        }
    pthread_cond_destroy(&t->settled);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static struct flight **slot_of(struct idem_flights *t, const char *key, uint64_t hash)
{
    struct flight **p = &t->buckets[hash & (BUCKETS - 1)];

    while (*p && ((*p)->hash != hash || strcmp((*p)->key, key)))
        p = &(*p)->next;
    return p;
}

/* Out of the table (and of the kept list); freed now unless waiters hold it. */
static void drop(struct idem_flights *t, struct flight *f)
{
    struct flight **p = slot_of(t, f->key, f->hash);

    *p = f->next;
    t->count--;
    if (f->state == FLIGHT_KEPT) {
        if (f->older)
            f->older->newer = f->newer;
        else
            t->oldest = f->newer;
        if (f->newer)
            f->newer->older = f->older;
        else
            t->newest = f->older;
    }
    f->state = FLIGHT_GONE;
    if (!f->waiters)
        flight_free(f);
}

/* The kept responses past their time go; when the table is full, the oldest kept one too. */
static void expire(struct idem_flights *t, int64_t now_us, bool make_room)
{
    while (t->oldest && t->oldest->kept_until_us <= now_us)
        drop(t, t->oldest);
    if (make_room && t->count >= IDEM_FLIGHT_MAX && t->oldest)
        drop(t, t->oldest);
}

/* The kept response as MariaDB would replay it (the body copied into the request's arena). */
static int replay_kept(const struct flight *f, const struct idem_request *r, struct arena *a,
                       struct idem_response *out, struct err *e)
{
    struct idem_row row = {.status = f->status, .body = arena_strdup(a, f->body)};

    memcpy(row.fingerprint, f->fingerprint, SHA256_LEN);
    if (idem_svc_replay(r, &row, out, e))
        return -1;
    metrics_inc(METRIC_IDEM_COALESCED);
    return 1;
}

/* Waits, holding t->mu, until f's leader is done or the wait is over. */
static void wait_for_leader(struct idem_flights *t, struct flight *f)
{
    struct timespec deadline;

    clock_monotonic_deadline(t->wait_ms * 1000, &deadline);
    f->waiters++;
    while (f->state == FLIGHT_WRITING)
        if (pthread_cond_timedwait(&t->settled, &t->mu, &deadline) == ETIMEDOUT)
            break;
    f->waiters--;
}

int idem_flight_join(struct idem_flights *t, const struct idem_request *r, struct arena *a,
                     struct idem_response *out, struct idem_ticket *ticket, struct err *e)
{
    char *key = arena_printf(a, "%lld %s %s %s", (long long)r->user_id, r->method, r->path, r->key);
    uint64_t hash = hash_of(key);
    int rc = 0;

    *ticket = (struct idem_ticket){.flights = t};
    pthread_mutex_lock(&t->mu);
    expire(t, clock_monotonic_us(), true);
    struct flight **slot = slot_of(t, key, hash);
    struct flight *f = *slot;
    if (!f) {
        if (t->count < IDEM_FLIGHT_MAX) {
            f = xcalloc(1, sizeof(*f));
            f->key = xstrdup(key);
            f->hash = hash;
            memcpy(f->fingerprint, r->fingerprint, SHA256_LEN);
            f->state = FLIGHT_WRITING;
            *slot = f;
            t->count++;
            ticket->leads = f;
        }
    } else if (f->state == FLIGHT_KEPT) {
        rc = replay_kept(f, r, a, out, e);
    } else if (!memcmp(f->fingerprint, r->fingerprint, SHA256_LEN)) {
        wait_for_leader(t, f);
        if (f->state == FLIGHT_KEPT) {
            rc = replay_kept(f, r, a, out, e);
        } else if (f->state == FLIGHT_WRITING) {
            rc = err_set(e, ERR_IDEMPOTENCY_IN_FLIGHT,
                         "a request with idempotency key '%.64s' is still in progress", r->key);
        } else if (!f->waiters) {
            flight_free(f); /* gone, and this was its last waiter: write on our own */
        }
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

void idem_flight_leave(struct idem_ticket *ticket, int rc, const struct idem_response *out)
{
    struct idem_flights *t = ticket->flights;
    struct flight *f = ticket->leads;

    if (!f)
        return;
    ticket->leads = NULL;
    pthread_mutex_lock(&t->mu);
    if (!rc && out->status >= 200 && out->status < 300 && out->body &&
        strlen(out->body) <= IDEM_FLIGHT_BODY_MAX) {
        f->state = FLIGHT_KEPT;
        f->status = out->status;
        f->body = xstrdup(out->body);
        f->kept_until_us = clock_monotonic_us() + t->keep_ms * 1000;
        f->older = t->newest;
        if (t->newest)
            t->newest->newer = f;
        else
            t->oldest = f;
        t->newest = f;
    } else {
        drop(t, f);
    }
    pthread_cond_broadcast(&t->settled);
    pthread_mutex_unlock(&t->mu);
}
