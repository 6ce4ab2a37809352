#include "core/clock.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/banned.h"

int64_t clock_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void clock_monotonic_deadline(int64_t after_us, struct timespec *out)
{
    clock_gettime(CLOCK_MONOTONIC, out);
    out->tv_sec += after_us / 1000000;
    out->tv_nsec += (long)(after_us % 1000000) * 1000;
    if (out->tv_nsec >= 1000000000L) {
        out->tv_sec++;
        out->tv_nsec -= 1000000000L;
    }
}

void clock_cond_init(pthread_cond_t *c)
{
    pthread_condattr_t attr;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(c, &attr);
    pthread_condattr_destroy(&attr);
}

int64_t clock_monotonic_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * Days since 1970-01-01 for a proleptic Gregorian date and back, by Howard Hinnant's
 * era-based algorithm: exact for every year we can meet, and free of gmtime's static buffer.
 */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && ((a < 0) != (b < 0)));
}

void clock_to_civil(int64_t epoch_us, struct clock_civil *out)
{
    int64_t secs = floor_div(epoch_us, 1000000);
    int64_t days = floor_div(secs, 86400);
    int64_t rem = secs - days * 86400;

    civil_from_days(days, &out->year, &out->month, &out->day);
    out->hour = (int)(rem / 3600);
    out->minute = (int)(rem / 60 % 60);
    out->second = (int)(rem % 60);
    /* From the remainder, not epoch_us - secs * 1000000: near INT64_MIN that product overflows
     * (found by fuzz_rfc3339). */
    int64_t us = epoch_us % 1000000;
    out->microsecond = (int)(us < 0 ? us + 1000000 : us);
}

int64_t clock_from_civil(const struct clock_civil *c)
{
    int64_t days = days_from_civil(c->year, c->month, c->day);
    int64_t secs = days * 86400 + (int64_t)c->hour * 3600 + (int64_t)c->minute * 60 + c->second;
    return secs * 1000000 + c->microsecond;
}

void clock_format_rfc3339(int64_t epoch_us, char *buf, size_t size)
{
    struct clock_civil c;

    clock_to_civil(epoch_us, &c);
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02dZ", c.year, c.month, c.day, c.hour, c.minute,
             c.second);
}

static int digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        char ch = (*p)[i];
        if (ch < '0' || ch > '9')
            return -1;
        v = v * 10 + (ch - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int expect(const char **p, char ch)
{
    if (**p != ch)
        return -1;
    (*p)++;
    return 0;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 ? 28 + leap : days[m - 1];
}

/* API.md's range for a client's times, which is also MariaDB DATETIME's: once in UTC, a time
 * outside it could not be stored (a 500) or would be silently clipped. */
static const struct clock_civil range_min = {1000, 1, 1, 0, 0, 0, 0};
static const struct clock_civil range_max = {9999, 12, 31, 23, 59, 59, 0};

/* "YYYY-MM-DD": digits and dashes only; the ranges are checked by fields_in_range(). */
static int parse_date(const char **p, struct clock_civil *c)
{
    if (digits(p, 4, &c->year) || expect(p, '-') || digits(p, 2, &c->month) || expect(p, '-') ||
        digits(p, 2, &c->day))
        return -1;
    return 0;
}

/* "Thh:mm:ss" and an optional fraction, whose digits past the sixth are read and dropped. */
static int parse_time(const char **p, struct clock_civil *c)
{
    if (**p != 'T' && **p != 't')
        return -1;
    (*p)++;
    if (digits(p, 2, &c->hour) || expect(p, ':') || digits(p, 2, &c->minute) || expect(p, ':') ||
        digits(p, 2, &c->second))
        return -1;
    if (**p != '.')
        return 0;
    (*p)++;
    if (**p < '0' || **p > '9')
        return -1;
    for (int scale = 100000; **p >= '0' && **p <= '9'; (*p)++, scale /= 10)
        c->microsecond += (**p - '0') * scale;
    return 0;
}

/* "Z" or "+hh:mm" / "-hh:mm", as minutes east of UTC. */
static int parse_offset(const char **p, int *offset_min)
{
    int sign;
    int oh;
    int om;

    if (**p == 'Z' || **p == 'z') {
        (*p)++;
        *offset_min = 0;
        return 0;
    }
    if (**p != '+' && **p != '-')
        return -1;
    sign = **p == '-' ? -1 : 1;
    (*p)++;
    if (digits(p, 2, &oh) || expect(p, ':') || digits(p, 2, &om) || oh > 23 || om > 59)
        return -1;
    *offset_min = sign * (oh * 60 + om);
    return 0;
}

/* The calendar and clock ranges, checked once every field is read (the day needs the month). */
static int fields_in_range(const struct clock_civil *c)
{
    if (c->month < 1 || c->month > 12 || c->day < 1 || c->day > days_in_month(c->year, c->month) ||
        c->hour > 23 || c->minute > 59 || c->second > 59)
        return -1;
    return 0;
}

int clock_parse_rfc3339(const char *s, int64_t *epoch_us)
{
    struct clock_civil c = {0};
    const char *p = s;
    int offset_min = 0;

    if (parse_date(&p, &c) || parse_time(&p, &c) || parse_offset(&p, &offset_min) || *p != '\0' ||
        fields_in_range(&c))
        return -1;
    int64_t t = clock_from_civil(&c) - (int64_t)offset_min * 60 * 1000000;
    if (t < clock_from_civil(&range_min) || t > clock_from_civil(&range_max))
        return -1;
    *epoch_us = t;
    return 0;
}

int64_t clock_day_start_us(int64_t epoch_us)
{
    int64_t r = epoch_us % CLOCK_DAY_US;

    /* The day before INT64_MIN's cannot be represented: clamp instead of overflowing. */
    if (r < 0 && epoch_us < INT64_MIN + CLOCK_DAY_US)
        return INT64_MIN;
    return epoch_us - (r < 0 ? r + CLOCK_DAY_US : r);
}
