#ifndef SHOPD_SERVICE_IDEM_FLIGHT_H
#define SHOPD_SERVICE_IDEM_FLIGHT_H

#include <stdint.h>

/*
 * Duplicates of a keyed write inside one instance, answered without MariaDB. A request whose
 * key (user, method, path, key) another request of this process is writing with the same body
 * waits for it, on a condition variable and never spinning, and replays its response; one that
 * comes within keep_ms (SHOPD_IDEM_KEEP_MS) after such a response replays it from here. A burst of
 * one key (a client's retries, a double click sent through many connections) so costs MariaDB one
 * write, not one claim, rollback and read per copy.
 *
 * MariaDB stays the truth, and this only saves it work it would answer the same way:
 * - only a success that was committed with its key is kept: a committed key row never changes
 *   until it is purged after 24 hours, so its replay is what MariaDB would send;
 * - a refusal, a failure or a time-out of the leader is not kept: its waiters go to MariaDB on
 *   their own, which replays what was stored, or runs the write if nothing was;
 * - a request with another body never waits here: MariaDB answers it (409 in flight, 422);
 * - a waiter still waiting when the lock wait (what it would have waited in MariaDB) is over
 *   gets 409 IDEMPOTENCY_IN_FLIGHT, as it would from MariaDB;
 * - other instances know nothing of it: their duplicates go to MariaDB, as before.
 * At most IDEM_FLIGHT_MAX keys are held (and bodies of IDEM_FLIGHT_BODY_MAX bytes, so about 64 MiB
 * at worst); past that, requests write on their own. Thread-safe.
 */

#define IDEM_FLIGHT_MAX      4096
#define IDEM_FLIGHT_BODY_MAX 16384 /* a larger response is not kept: its duplicates read it */

struct arena;
struct err;
struct flight;
struct idem_flights;
struct idem_request;
struct idem_response;

/* A request's place in its key's flight: the leader's, or none. */
struct idem_ticket {
    struct idem_flights *flights;
    struct flight *leads; /* NULL: this request does not lead */
};

/* wait_ms: how long a duplicate would wait for its key in MariaDB or for its lock; keep_ms:
 * how long a success is kept (> 0). */
struct idem_flights *idem_flights_new(int64_t wait_ms, int64_t keep_ms);
void idem_flights_free(struct idem_flights *t);

/*
 * Before a keyed write. 1 with out: answered here (a replay). -1 with e: 409 IN_FLIGHT after
 * the wait, or 422 for a kept response of another body. 0: write it; pass *ticket to
 * idem_flight_leave afterwards whatever happens.
 */
int idem_flight_join(struct idem_flights *t, const struct idem_request *r, struct arena *a,
                     struct idem_response *out, struct idem_ticket *ticket, struct err *e);

/* After the write: rc and out as write_run answered. Wakes the key's waiters. */
void idem_flight_leave(struct idem_ticket *ticket, int rc, const struct idem_response *out);

#endif
