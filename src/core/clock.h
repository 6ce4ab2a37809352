#ifndef SHOPD_CORE_CLOCK_H
#define SHOPD_CORE_CLOCK_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Time in the units the service stores and shows. Wall-clock time is UTC microseconds since the
 * epoch (what MariaDB DATETIME(6) columns hold); durations come from the monotonic clock.
 * All functions are thread-safe and never allocate.
 */

int64_t clock_now_us(void);       /* wall clock, UTC */
int64_t clock_monotonic_us(void); /* for durations and deadlines only */

/* The monotonic time after_us from now, as pthread_cond_timedwait() takes it on a condition
 * variable made by clock_cond_init(). */
void clock_monotonic_deadline(int64_t after_us, struct timespec *out);
/* A condition variable whose timed waits run on the monotonic clock: a step of the wall clock
 * neither cuts nor stretches them. */
void clock_cond_init(pthread_cond_t *c);

#define CLOCK_DAY_US (86400LL * 1000000)
/* The start of the UTC day of epoch_us. */
int64_t clock_day_start_us(int64_t epoch_us);

struct clock_civil {
    int year, month, day, hour, minute, second, microsecond;
};

void clock_to_civil(int64_t epoch_us, struct clock_civil *out);
int64_t clock_from_civil(const struct clock_civil *c);

/* Writes "2026-11-23T21:40:17Z" (seconds precision, as the contract shows) into buf, which
 * must hold CLOCK_RFC3339_LEN bytes. */
#define CLOCK_RFC3339_LEN 32
void clock_format_rfc3339(int64_t epoch_us, char *buf, size_t size);

/* Parses an RFC 3339 time with a "Z" or "+hh:mm" offset and optional fraction; 0 or -1.
 * A time that, once converted to UTC, lies outside 1000-01-01T00:00:00Z …
 * 9999-12-31T23:59:59Z (API.md's range for client times, MariaDB DATETIME's) is -1 too. */
int clock_parse_rfc3339(const char *s, int64_t *epoch_us);

#endif
