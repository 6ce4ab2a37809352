#ifndef SHOPD_CORE_ROUND_TRIPS_H
#define SHOPD_CORE_ROUND_TRIPS_H

#include <stdint.h>

/*
 * Round trips to MariaDB and Redis, tallied per thread so that a request's own can be told
 * from everything else the process does (the sweeper, the relay, the lock watchdog run on
 * threads of their own). The HTTP layer clears the tally when a request starts and takes it
 * when the answer is sent; /metrics sums the tallies per route (shopd_db_round_trips_total and
 * friends), and the integration tests assert them per write: a count, not a timing.
 *
 * One round trip is one request sent and its answer read: a statement executed, a COMMIT, a
 * ROLLBACK, a ping, one Redis command (a batch read of many keys is one). Preparing a statement
 * is counted apart: it happens once per connection and statement, not per request. Setting up
 * a connection (the handshake, the session's SET, Redis's SELECT) is not counted: it happens
 * after a failure only, and shopd_db_reconnects_total / shopd_redis_reconnects_total count it.
 */

enum round_trip_kind {
    ROUND_TRIP_DB,         /* MariaDB: execute, commit, rollback, text query, ping */
    ROUND_TRIP_DB_PREPARE, /* MariaDB: a statement prepared on a connection for the first time */
    ROUND_TRIP_REDIS,      /* Redis: one command or script */
    ROUND_TRIP_KINDS
};

struct round_trips {
    uint32_t n[ROUND_TRIP_KINDS];
};

/* Counts one round trip of kind on the calling thread. */
void round_trip_note(enum round_trip_kind kind);

/* Copies the calling thread's tally into *out (when not NULL) and clears it. */
void round_trips_take(struct round_trips *out);

/* Adds the calling thread's tally to *out and clears it: a request an event loop began (its
 * pipelined commands are in *out already) and a worker finished. */
void round_trips_take_more(struct round_trips *out);

#endif
