/*
 * RFC 3339 times (core/clock.c), as clients send them in coupon windows and the platform's
 * events carry them. Beyond "no crash, no UB": a time that parses is checked against an
 * independent reading of the same text: its date and time fields through glibc's timegm(), its
 * fraction as the first six digits after the point, and its offset as a plain subtraction. A
 * parsed instant formats back (seconds precision, "Z") to text that parses to the same second,
 * and a canonical "YYYY-MM-DDTHH:MM:SSZ" text formats back byte for byte. Any 64-bit instant
 * formats without overflow, a time outside API.md's range (1000-01-01T00:00:00Z to
 * 9999-12-31T23:59:59Z in UTC) is refused and every second inside it is accepted, and civil
 * time round-trips through clock_to_civil/from_civil.
 */
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "fuzz_common.h"

/* API.md: a client's times lie in 1000-01-01T00:00:00Z … 9999-12-31T23:59:59Z once in UTC. */
#define RANGE_MIN_US (-30610224000LL * 1000000)
#define RANGE_MAX_US (253402300799LL * 1000000)

static int field(const char *s, int n)
{
    int v = 0;

    for (int i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

static int64_t floor_second(int64_t us)
{
    int64_t r = us % 1000000;

    return us - (r < 0 ? r + 1000000 : r);
}

/* The instant the first 19 characters name, read by glibc. */
static int64_t reference_us(const char *s)
{
    struct tm tm = {0};

    tm.tm_year = field(s, 4) - 1900;
    tm.tm_mon = field(s + 5, 2) - 1;
    tm.tm_mday = field(s + 8, 2);
    tm.tm_hour = field(s + 11, 2);
    tm.tm_min = field(s + 14, 2);
    tm.tm_sec = field(s + 17, 2);
    return (int64_t)timegm(&tm) * 1000000;
}

static void check_parsed(const char *s, size_t len, int64_t us)
{
    char out[CLOCK_RFC3339_LEN];
    int64_t again;
    int64_t frac = 0, offset_min = 0;
    size_t end = len;

    FUZZ_CHECK(len >= 20, "'%s' is too short to be a time", s);
    /* The offset: "Z" or "±hh:mm" at the end. */
    if (s[end - 1] == 'Z' || s[end - 1] == 'z') {
        end -= 1;
    } else {
        FUZZ_CHECK(len >= 25 && (s[end - 6] == '+' || s[end - 6] == '-'), "offset of '%s'", s);
        offset_min = field(s + end - 5, 2) * 60 + field(s + end - 2, 2);
        if (s[end - 6] == '-')
            offset_min = -offset_min;
        end -= 6;
    }
    /* The fraction: "." and at least one digit; digits past the sixth do not count. */
    if (end > 19) {
        FUZZ_CHECK(s[19] == '.' && end > 20, "fraction of '%s'", s);
        int64_t scale = 100000;
        for (size_t i = 20; i < end; i++, scale /= 10) {
            FUZZ_CHECK(s[i] >= '0' && s[i] <= '9', "fraction digit in '%s'", s);
            frac += (s[i] - '0') * scale;
        }
    }
    int64_t want = reference_us(s) + frac - offset_min * 60 * 1000000;
    FUZZ_CHECK(us == want, "'%s' parsed to %lld, timegm says %lld", s, (long long)us,
               (long long)want);

    FUZZ_CHECK(us >= RANGE_MIN_US && us <= RANGE_MAX_US, "'%s' is outside API.md's range", s);
    clock_format_rfc3339(us, out, sizeof(out));
    FUZZ_CHECK(clock_parse_rfc3339(out, &again) == 0, "'%s' (from '%s') does not parse", out, s);
    FUZZ_CHECK(again == floor_second(us), "'%s' → %lld → '%s' → %lld", s, (long long)us, out,
               (long long)again);
    if (len == 20 && s[10] == 'T' && s[19] == 'Z')
        FUZZ_CHECK(!strcmp(out, s), "'%s' formats back as '%s'", s, out);
}

static void check_instant(int64_t us)
{
    char out[CLOCK_RFC3339_LEN];
    struct clock_civil c;
    int64_t again;

    /* Any instant at all converts and formats without undefined behaviour (UBSan judges; the
     * remainder of INT64_MIN once overflowed in clock_to_civil). */
    clock_to_civil(us, &c);
    clock_format_rfc3339(us, out, sizeof(out));
    (void)clock_day_start_us(us);
    /* The round trips within ±12,000 years: no time the service stores or shows lies beyond
     * (MariaDB DATETIME holds 1000..9999), and the civil fields are ints. */
    if (us <= -400000000000000000LL || us >= 400000000000000000LL)
        return;
    clock_format_rfc3339(us, out, sizeof(out));
    FUZZ_CHECK(memchr(out, '\0', sizeof(out)) != NULL, "unterminated");
    clock_to_civil(us, &c);
    FUZZ_CHECK(clock_from_civil(&c) == us, "civil round trip of %lld", (long long)us);
    if (us >= RANGE_MIN_US && us <= RANGE_MAX_US) {
        FUZZ_CHECK(clock_parse_rfc3339(out, &again) == 0 && again == floor_second(us),
                   "%lld formats as '%s'", (long long)us, out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[128];
    int64_t us;

    if (size >= sizeof(s))
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (clock_parse_rfc3339(s, &us) == 0)
        check_parsed(s, strlen(s), us);
    if (size >= 8) {
        uint64_t raw;
        memcpy(&raw, data, sizeof(raw));
        check_instant((int64_t)raw);
    }
    return 0;
}
