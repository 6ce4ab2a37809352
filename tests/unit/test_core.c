#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/handoff.h"
#include "core/log.h"
#include "core/num.h"
#include "domain/money.h"

/* ---- core/num.h ---- */

static int parse(const char *s, int64_t *out)
{
    return num_parse_i64(s, INT64_MIN, INT64_MAX, out);
}

static void assert_parses(const char *s, int64_t want)
{
    int64_t v = 12345;

    if (parse(s, &v))
        fail_msg("'%s' did not parse", s);
    assert_int_equal(v, want);
}

static void assert_rejected(const char *s)
{
    int64_t v = 12345;

    if (!parse(s, &v))
        fail_msg("'%s' parsed as %lld", s, (long long)v);
    assert_int_equal(v, 12345); /* untouched on failure */
}

static void test_num_plain(void **state)
{
    (void)state;
    assert_parses("0", 0);
    assert_parses("1", 1);
    assert_parses("42", 42);
    assert_parses("-42", -42);
    assert_parses("-0", 0);
}

static void test_num_leading_zeros_allowed(void **state)
{
    (void)state;
    /* The contract is "1 to 19 digits", so "01" is 1 (the router canonicalises it). */
    assert_parses("01", 1);
    assert_parses("007", 7);
    assert_parses("0000000000000000001", 1); /* 19 digits */
    assert_rejected("00000000000000000001"); /* 20 digits */
}

static void test_num_limits(void **state)
{
    (void)state;
    assert_parses("9223372036854775807", INT64_MAX);
    assert_parses("-9223372036854775808", INT64_MIN);
    assert_rejected("9223372036854775808");
    assert_rejected("-9223372036854775809");
    assert_rejected("9999999999999999999");
    assert_rejected("18446744073709551615");
    assert_rejected("18446744073709551616");
    assert_rejected("99999999999999999999");
}

static void test_num_rejects_non_decimal(void **state)
{
    static const char *const bad[] = {
        "",     "-",   "+1",  "+",     " 1",  "1 ",  "1\n", "\t1", "1a",    "a1",
        "0x10", "1e3", "1.0", "1,000", "--1", "-+1", "+-1", "١",   "1_000",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_rejected(bad[i]);
}

static void test_num_range(void **state)
{
    int64_t v = 0;

    (void)state;
    assert_int_equal(num_parse_i64("1", 1, 10, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(num_parse_i64("10", 1, 10, &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(num_parse_i64("0", 1, 10, &v), -1);
    assert_int_equal(num_parse_i64("11", 1, 10, &v), -1);
    assert_int_equal(num_parse_i64("-1", 1, 10, &v), -1);
    assert_int_equal(v, 10);
}

static void test_num_n_not_nul_terminated(void **state)
{
    static const char s[] = "12345/abc";
    int64_t v = 0;

    (void)state;
    assert_int_equal(num_parse_i64_n(s, 5, 1, INT64_MAX, &v), 0);
    assert_int_equal(v, 12345);
    assert_int_equal(num_parse_i64_n(s, 2, 1, INT64_MAX, &v), 0);
    assert_int_equal(v, 12);
    assert_int_equal(num_parse_i64_n(s, 6, 1, INT64_MAX, &v), -1);
    assert_int_equal(num_parse_i64_n(s, 0, INT64_MIN, INT64_MAX, &v), -1);
    assert_int_equal(num_parse_i64_n("-5", 1, INT64_MIN, INT64_MAX, &v), -1);
}

/* ---- core/clock.h ---- */

#define US 1000000LL

static int64_t parse_time(const char *s)
{
    int64_t us = 0;

    if (clock_parse_rfc3339(s, &us))
        fail_msg("'%s' did not parse", s);
    return us;
}

static void assert_time_rejected(const char *s)
{
    int64_t us = 777;

    if (!clock_parse_rfc3339(s, &us))
        fail_msg("'%s' parsed as %lld", s, (long long)us);
    assert_int_equal(us, 777);
}

static void assert_formats(int64_t us, const char *want)
{
    char buf[CLOCK_RFC3339_LEN];

    clock_format_rfc3339(us, buf, sizeof(buf));
    assert_string_equal(buf, want);
}

static void test_clock_format_known(void **state)
{
    (void)state;
    assert_formats(0, "1970-01-01T00:00:00Z");
    assert_formats(1795470017 * US, "2026-11-23T21:40:17Z");
    assert_formats(1795470017 * US + 999999, "2026-11-23T21:40:17Z");
    assert_formats(1709208000 * US, "2024-02-29T12:00:00Z");
    assert_formats(951868799 * US, "2000-02-29T23:59:59Z");
    assert_formats(253402300799 * US, "9999-12-31T23:59:59Z");
}

static void test_clock_format_negative_epoch(void **state)
{
    (void)state;
    assert_formats(-1, "1969-12-31T23:59:59Z");
    assert_formats(-1 * US, "1969-12-31T23:59:59Z");
    assert_formats(-US - 1, "1969-12-31T23:59:58Z");
    assert_formats(-2208988800 * US, "1900-01-01T00:00:00Z");
    assert_formats(-62135596800 * US, "0001-01-01T00:00:00Z");
}

static void test_clock_civil_negative_microseconds(void **state)
{
    struct clock_civil c;

    (void)state;
    clock_to_civil(-1, &c);
    assert_int_equal(c.year, 1969);
    assert_int_equal(c.month, 12);
    assert_int_equal(c.day, 31);
    assert_int_equal(c.hour, 23);
    assert_int_equal(c.minute, 59);
    assert_int_equal(c.second, 59);
    assert_int_equal(c.microsecond, 999999);
    assert_int_equal(clock_from_civil(&c), -1);
}

static void test_clock_civil_round_trip(void **state)
{
    static const int64_t samples[] = {
        0,
        1,
        -1,
        86399999999,
        86400 * US,
        951868799 * US + 123456,
        1795470017 * US + 5,
        -2208988800 * US - 1,
        253402300799 * US + 999999,
        -62135596800 * US,
    };
    struct clock_civil c;

    (void)state;
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        clock_to_civil(samples[i], &c);
        assert_int_equal(clock_from_civil(&c), samples[i]);
    }
}

static void test_clock_parse_format_round_trip(void **state)
{
    static const char *const times[] = {
        "1970-01-01T00:00:00Z", "2026-11-23T21:40:17Z", "2024-02-29T00:00:00Z",
        "2000-02-29T23:59:59Z", "1969-12-31T23:59:59Z", "1900-03-01T12:34:56Z",
        "9999-12-31T23:59:59Z", "1000-01-01T00:00:00Z",
    };
    char buf[CLOCK_RFC3339_LEN];

    (void)state;
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        clock_format_rfc3339(parse_time(times[i]), buf, sizeof(buf));
        assert_string_equal(buf, times[i]);
    }
}

/* API.md: a client's time must lie in 1000-01-01T00:00:00Z … 9999-12-31T23:59:59Z once in UTC
 * (MariaDB DATETIME's range; outside it, coupon dates answered 500). */
static void test_clock_parse_range(void **state)
{
    static const char *const outside[] = {
        "0999-12-31T23:59:59Z",        "0000-01-01T00:00:00Z",      "0001-01-01T00:00:00Z",
        "1000-01-01T00:30:00+01:00",   "9999-12-31T23:59:59-00:01", "9999-12-31T23:59:59.5Z",
        "9999-12-31T23:59:59.000001Z",
    };
    int64_t us;

    (void)state;
    for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++)
        if (clock_parse_rfc3339(outside[i], &us) != -1)
            fail_msg("'%s' is outside the range but parsed", outside[i]);
    /* The bounds themselves, and times that only an offset brings inside. */
    assert_int_equal(parse_time("1000-01-01T00:00:00Z"), parse_time("0999-12-31T23:00:00-01:00"));
    assert_int_equal(parse_time("9999-12-31T23:59:59Z"), parse_time("9999-12-31T23:59:59+00:00"));
    assert_int_equal(parse_time("9999-12-31T23:00:59Z"), parse_time("9999-12-31T23:59:59+00:59"));
}

static void test_clock_parse_known(void **state)
{
    (void)state;
    assert_int_equal(parse_time("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(parse_time("2026-11-23T21:40:17Z"), 1795470017 * US);
    assert_int_equal(parse_time("2026-11-23t21:40:17z"), 1795470017 * US);
    assert_int_equal(parse_time("1969-12-31T23:59:59Z"), -US);
}

static void test_clock_parse_offsets(void **state)
{
    (void)state;
    assert_int_equal(parse_time("2026-01-01T09:00:00+09:00"), parse_time("2026-01-01T00:00:00Z"));
    assert_int_equal(parse_time("2025-12-31T19:30:00-04:30"), parse_time("2026-01-01T00:00:00Z"));
    assert_int_equal(parse_time("2026-01-01T00:00:00+00:00"), parse_time("2026-01-01T00:00:00Z"));
    assert_int_equal(parse_time("2026-01-01T00:00:00-00:00"), parse_time("2026-01-01T00:00:00Z"));
    assert_int_equal(parse_time("2024-03-01T08:59:59+09:00"), parse_time("2024-02-29T23:59:59Z"));
    assert_int_equal(parse_time("1970-01-01T00:00:00+23:59"), -(23 * 3600 + 59 * 60) * US);
}

static void test_clock_parse_fractions(void **state)
{
    int64_t base = parse_time("2026-11-23T21:40:17Z");

    (void)state;
    assert_int_equal(parse_time("2026-11-23T21:40:17.5Z"), base + 500000);
    assert_int_equal(parse_time("2026-11-23T21:40:17.000001Z"), base + 1);
    assert_int_equal(parse_time("2026-11-23T21:40:17.123456Z"), base + 123456);
    assert_int_equal(parse_time("2026-11-23T21:40:17.1234567899Z"), base + 123456);
    assert_int_equal(parse_time("2026-11-23T21:40:17.0Z"), base);
    assert_int_equal(parse_time("2026-11-23T21:40:17.25+09:00"), base + 250000 - 9 * 3600 * US);
    assert_int_equal(parse_time("1969-12-31T23:59:59.5Z"), -500000);
}

static void test_clock_parse_leap_days(void **state)
{
    (void)state;
    assert_int_equal(parse_time("2024-02-29T12:00:00Z"), 1709208000 * US);
    assert_int_equal(parse_time("2000-02-29T23:59:59Z"), 951868799 * US);
    assert_time_rejected("2023-02-29T00:00:00Z");
    assert_time_rejected("1900-02-29T00:00:00Z");
    assert_time_rejected("2100-02-29T00:00:00Z");
    assert_time_rejected("2024-02-30T00:00:00Z");
}

static void test_clock_parse_invalid_dates(void **state)
{
    static const char *const bad[] = {
        "2026-02-30T00:00:00Z", "2026-04-31T00:00:00Z", "2026-13-01T00:00:00Z",
        "2026-00-10T00:00:00Z", "2026-01-00T00:00:00Z", "2026-01-32T00:00:00Z",
        "2026-01-01T24:00:00Z", "2026-01-01T00:60:00Z", "2026-01-01T00:00:60Z",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_time_rejected(bad[i]);
}

static void test_clock_parse_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "2026-01-01",
        "2026-01-01T00:00:00",
        "2026-01-01 00:00:00Z",
        "2026-1-01T00:00:00Z",
        "26-01-01T00:00:00Z",
        "2026-01-01T0:00:00Z",
        "2026-01-01T00:00Z",
        "2026-01-01T00:00:00.Z",
        "2026-01-01T00:00:00ZZ",
        "2026-01-01T00:00:00Z ",
        " 2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00+0900",
        "2026-01-01T00:00:00+09",
        "2026-01-01T00:00:00+24:00",
        "2026-01-01T00:00:00+09:60",
        "2026-01-01T00:00:00+9:00",
        "2026/01/01T00:00:00Z",
        "2026-01-01T00:00:00UTC",
        "+2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00.12a",
        "abcd-ef-ghTij:kl:mnZ",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_time_rejected(bad[i]);
}

static void test_clock_now_is_sane(void **state)
{
    int64_t now = clock_now_us();
    int64_t m1 = clock_monotonic_us();
    int64_t m2 = clock_monotonic_us();

    (void)state;
    assert_true(now > parse_time("2024-01-01T00:00:00Z"));
    assert_true(m2 >= m1);
}

/* ---- core/arena.h ---- */

static void test_arena_many_allocations(void **state)
{
    struct arena a = ARENA_INIT;
    int *ptrs[5000];

    (void)state;
    for (int i = 0; i < 5000; i++) {
        ptrs[i] = arena_alloc(&a, sizeof(int) * 3);
        ptrs[i][0] = i;
        ptrs[i][2] = -i;
    }
    for (int i = 0; i < 5000; i++) {
        assert_int_equal(ptrs[i][0], i);
        assert_int_equal(ptrs[i][2], -i);
    }
    arena_release(&a);
}

static void test_arena_alignment_16(void **state)
{
    static const size_t sizes[] = {1, 3, 7, 8, 15, 16, 17, 31, 100, 2047, 2048, 2049, 9000, 0};
    struct arena a;

    (void)state;
    arena_init(&a);
    for (int round = 0; round < 50; round++) {
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            void *p = arena_alloc(&a, sizes[i]);
            assert_int_equal((uintptr_t)p % 16, 0);
            if (sizes[i])
                memset(p, 0x5A, sizes[i]);
        }
        assert_int_equal((uintptr_t)arena_strdup(&a, "x") % 16, 0);
        assert_int_equal((uintptr_t)arena_calloc(&a, 3, 5) % 16, 0);
    }
    arena_release(&a);
}

static void test_arena_allocations_do_not_overlap(void **state)
{
    struct arena a;
    unsigned char *prev = NULL;
    size_t prev_size = 0;

    (void)state;
    arena_init(&a);
    for (int i = 0; i < 3000; i++) {
        size_t size = (size_t)(i % 97) + 1;
        unsigned char *p = arena_alloc(&a, size);
        memset(p, (int)(i & 0xff), size);
        if (prev) {
            for (size_t k = 0; k < prev_size; k++)
                assert_int_equal(prev[k], (unsigned)((i - 1) & 0xff));
        }
        prev = p;
        prev_size = size;
    }
    arena_release(&a);
}

static void test_arena_large_allocation(void **state)
{
    struct arena a;

    (void)state;
    arena_init(&a);
    char *small1 = arena_strdup(&a, "before");
    unsigned char *big = arena_alloc(&a, 1 << 20);
    memset(big, 0xEE, 1 << 20);
    char *small2 = arena_strdup(&a, "after");
    unsigned char *big2 = arena_alloc(&a, 100000);
    memset(big2, 0x11, 100000);
    assert_string_equal(small1, "before");
    assert_string_equal(small2, "after");
    assert_int_equal(big[0], 0xEE);
    assert_int_equal(big[(1 << 20) - 1], 0xEE);
    assert_int_equal(big2[99999], 0x11);
    /* The small allocations after a large one keep using the current block. */
    assert_true(small2 > small1 && small2 - small1 < 8192);
    arena_release(&a);
}

static void test_arena_large_first(void **state)
{
    struct arena a;

    (void)state;
    arena_init(&a);
    unsigned char *big = arena_alloc(&a, 50000);
    memset(big, 1, 50000);
    char *s = arena_strdup(&a, "small");
    memset(big, 2, 50000);
    assert_string_equal(s, "small");
    assert_int_equal(big[49999], 2);
    arena_release(&a);
}

static void test_arena_exactly_block_sized(void **state)
{
    struct arena a;

    (void)state;
    arena_init(&a);
    for (size_t size = 2040; size <= 2064; size++) {
        unsigned char *p = arena_alloc(&a, size);
        memset(p, 0x33, size);
    }
    unsigned char *block = arena_alloc(&a, 8192);
    memset(block, 0x44, 8192);
    unsigned char *over = arena_alloc(&a, 8193);
    memset(over, 0x55, 8193);
    assert_int_equal(block[8191], 0x44);
    arena_release(&a);
}

static void test_arena_calloc_zeroed(void **state)
{
    struct arena a;

    (void)state;
    arena_init(&a);
    unsigned char *junk = arena_alloc(&a, 4000);
    memset(junk, 0xFF, 4000);
    unsigned char *z = arena_calloc(&a, 100, 30);
    for (size_t i = 0; i < 3000; i++)
        assert_int_equal(z[i], 0);
    unsigned char *zbig = arena_calloc(&a, 1000, 100);
    for (size_t i = 0; i < 100000; i += 997)
        assert_int_equal(zbig[i], 0);
    arena_release(&a);
}

static void test_arena_memdup_adds_nul(void **state)
{
    struct arena a;

    (void)state;
    arena_init(&a);
    char *s = arena_memdup(&a, "hello world", 5);
    assert_string_equal(s, "hello");
    char *empty = arena_memdup(&a, NULL, 0);
    assert_string_equal(empty, "");
    char *dup = arena_strdup(&a, "한글");
    assert_string_equal(dup, "한글");
    arena_release(&a);
}

static void test_arena_printf(void **state)
{
    struct arena a;

    (void)state;
    arena_init(&a);
    assert_string_equal(arena_printf(&a, "%s[%zu].%s", "items", (size_t)3, "quantity"),
                        "items[3].quantity");
    assert_string_equal(arena_printf(&a, "%lld", (long long)INT64_MIN), "-9223372036854775808");
    assert_string_equal(arena_printf(&a, "%s", ""), "");
    arena_release(&a);
}

static void test_arena_printf_long(void **state)
{
    struct arena a;
    char chunk[1001];

    (void)state;
    memset(chunk, 'q', 1000);
    chunk[1000] = '\0';
    arena_init(&a);
    /* 255, 256 and 257 characters straddle the small stack buffer; 10000 is a large block. */
    for (int n = 250; n < 262; n++) {
        char *s = arena_printf(&a, "%.*s", n, chunk);
        assert_int_equal(strlen(s), (size_t)n);
    }
    char *big = arena_printf(&a, "%s%s%s%s%s%s%s%s%s%s|%d", chunk, chunk, chunk, chunk, chunk,
                             chunk, chunk, chunk, chunk, chunk, 42);
    assert_int_equal(strlen(big), 10003);
    assert_string_equal(big + 10000, "|42");
    arena_release(&a);
}

static void test_arena_release_and_reuse(void **state)
{
    struct arena a;

    (void)state;
    arena_init(&a);
    arena_alloc(&a, 100);
    arena_alloc(&a, 100000);
    arena_release(&a);
    assert_null(a.head);
    assert_int_equal(a.used, 0);
    assert_string_equal(arena_strdup(&a, "again"), "again");
    arena_release(&a);
    arena_release(&a); /* releasing an empty arena is harmless */
}

/* ---- domain/money.h ---- */

static void test_money_within_limits(void **state)
{
    int64_t after = -1;

    (void)state;
    assert_true(money_balance_after(0, 0, &after));
    assert_int_equal(after, 0);
    assert_true(money_balance_after(0, MONEY_CHARGE_MAX_KRW, &after));
    assert_int_equal(after, MONEY_CHARGE_MAX_KRW);
    assert_true(money_balance_after(500, -500, &after));
    assert_int_equal(after, 0);
    assert_true(money_balance_after(MONEY_BALANCE_MAX_KRW - 1, 1, &after));
    assert_int_equal(after, MONEY_BALANCE_MAX_KRW);
    assert_true(money_balance_after(MONEY_BALANCE_MAX_KRW, 0, &after));
    assert_true(money_balance_after(MONEY_BALANCE_MAX_KRW, -MONEY_BALANCE_MAX_KRW, &after));
    assert_int_equal(after, 0);
}

static void test_money_over_limit(void **state)
{
    int64_t after = -7;

    (void)state;
    assert_false(money_balance_after(MONEY_BALANCE_MAX_KRW, 1, &after));
    assert_false(money_balance_after(MONEY_BALANCE_MAX_KRW - 5, MONEY_CHARGE_MAX_KRW, &after));
    assert_false(money_balance_after(0, MONEY_BALANCE_MAX_KRW + 1, &after));
    assert_int_equal(after, -7);
}

static void test_money_below_zero(void **state)
{
    int64_t after = -7;

    (void)state;
    assert_false(money_balance_after(0, -1, &after));
    assert_false(money_balance_after(100, -101, &after));
    assert_int_equal(after, -7);
}

static void test_money_overflow(void **state)
{
    int64_t after = -7;

    (void)state;
    assert_false(money_balance_after(INT64_MAX, 1, &after));
    assert_false(money_balance_after(1, INT64_MAX, &after));
    assert_false(money_balance_after(INT64_MAX, INT64_MAX, &after));
    assert_false(money_balance_after(INT64_MIN, -1, &after));
    assert_false(money_balance_after(0, INT64_MIN, &after));
    assert_false(money_balance_after(INT64_MIN, INT64_MAX, &after)); /* -1 */
    assert_int_equal(after, -7);
}

static void test_money_constants_match_contract(void **state)
{
    (void)state;
    assert_int_equal(MONEY_CHARGE_MIN_KRW, 1);
    assert_int_equal(MONEY_CHARGE_MAX_KRW, 10000000);
    assert_int_equal(MONEY_BALANCE_MAX_KRW, 1000000000000LL);
}

/* A CR/LF decoded from a path once went raw into the access log, forging lines: every
 * control byte, quote and backslash of a logged field is escaped. */
static void test_log_escape(void **state)
{
    static const char evil[] =
        "/api/x\r\n2026-01-01T00:00:00Z access rid=forged \"q\" \\ \x01\x7f\xff";
    char out[4 * sizeof(evil) + 1];

    (void)state;
    log_escape(out, sizeof(out), evil, sizeof(evil) - 1);
    assert_null(strchr(out, '\r'));
    assert_null(strchr(out, '\n'));
    assert_string_equal(out,
                        "/api/x\\x0d\\x0a2026-01-01T00:00:00Z access rid=forged \\\"q\\\" \\\\ "
                        "\\x01\\x7f\\xff");
    for (const char *p = out; *p; p++)
        assert_true(*p >= 0x20 && *p < 0x7f);
    /* Cut for room between escapes, never inside one; always terminated. */
    char small[6];
    log_escape(small, sizeof(small), "ab\ncd", 5);
    assert_string_equal(small, "ab");
    log_escape(small, sizeof(small), "abcdefgh", 8);
    assert_string_equal(small, "abcde");
    /* The length bounds what is read: a NUL inside is escaped too. */
    log_escape(out, sizeof(out), "a\0b", 3);
    assert_string_equal(out, "a\\x00b");
}

/* ---- core/handoff: the line in front of a pool ---- */

struct line_test {
    pthread_mutex_t lock;
    struct handoff line;
    void *got[2];
};

struct line_waiter {
    struct line_test *t;
    int slot;
};

static void *wait_in_line_main(void *arg)
{
    struct line_waiter *w = arg;

    pthread_mutex_lock(&w->t->lock);
    w->t->got[w->slot] = handoff_wait(&w->t->line, &w->t->lock, 10000);
    pthread_mutex_unlock(&w->t->lock);
    return NULL;
}

/* Yields until n threads wait in line (a condition, not a sleep). */
static void until_length(struct line_test *t, int n)
{
    for (;;) {
        pthread_mutex_lock(&t->lock);
        int len = handoff_length(&t->line);
        pthread_mutex_unlock(&t->lock);
        if (len == n)
            return;
        sched_yield();
    }
}

static void test_clock_monotonic_deadline_is_normalised(void **state)
{
    struct timespec now, at;

    (void)state;
    clock_gettime(CLOCK_MONOTONIC, &now);
    clock_monotonic_deadline(2999999, &at); /* 2.999999 s: a carry into the seconds at times */
    assert_true(at.tv_nsec >= 0 && at.tv_nsec < 1000000000L);
    int64_t delta_us =
        (int64_t)(at.tv_sec - now.tv_sec) * 1000000 + (at.tv_nsec - now.tv_nsec) / 1000;
    assert_true(delta_us >= 2999999 && delta_us < 2999999 + 1000000);
}

static void test_handoff_first_come_first_served(void **state)
{
    static int first, second;
    struct line_test t = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct line_waiter a = {&t, 0}, b = {&t, 1};
    pthread_t ta, tb;

    (void)state;
    handoff_init(&t.line);
    assert_int_equal(pthread_create(&ta, NULL, wait_in_line_main, &a), 0);
    until_length(&t, 1);
    assert_int_equal(pthread_create(&tb, NULL, wait_in_line_main, &b), 0);
    until_length(&t, 2);
    pthread_mutex_lock(&t.lock);
    assert_true(handoff_give(&t.line, &first));
    assert_true(handoff_give(&t.line, &second));
    assert_false(handoff_give(&t.line, &first)); /* no one left: the caller keeps it */
    pthread_mutex_unlock(&t.lock);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_ptr_equal(t.got[0], &first);
    assert_ptr_equal(t.got[1], &second);
}

static void test_handoff_timeout_leaves_the_line(void **state)
{
    struct line_test t = {.lock = PTHREAD_MUTEX_INITIALIZER};
    int item;

    (void)state;
    handoff_init(&t.line);
    pthread_mutex_lock(&t.lock);
    assert_null(handoff_wait(&t.line, &t.lock, 20));
    assert_false(handoff_waiting(&t.line));
    assert_false(handoff_give(&t.line, &item));
    pthread_mutex_unlock(&t.lock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clock_monotonic_deadline_is_normalised),
        cmocka_unit_test(test_handoff_first_come_first_served),
        cmocka_unit_test(test_handoff_timeout_leaves_the_line),
        cmocka_unit_test(test_num_plain),
        cmocka_unit_test(test_num_leading_zeros_allowed),
        cmocka_unit_test(test_num_limits),
        cmocka_unit_test(test_num_rejects_non_decimal),
        cmocka_unit_test(test_num_range),
        cmocka_unit_test(test_num_n_not_nul_terminated),
        cmocka_unit_test(test_clock_format_known),
        cmocka_unit_test(test_clock_format_negative_epoch),
        cmocka_unit_test(test_clock_civil_negative_microseconds),
        cmocka_unit_test(test_clock_civil_round_trip),
        cmocka_unit_test(test_clock_parse_format_round_trip),
        cmocka_unit_test(test_clock_parse_known),
        cmocka_unit_test(test_log_escape),
        cmocka_unit_test(test_clock_parse_range),
        cmocka_unit_test(test_clock_parse_offsets),
        cmocka_unit_test(test_clock_parse_fractions),
        cmocka_unit_test(test_clock_parse_leap_days),
        cmocka_unit_test(test_clock_parse_invalid_dates),
        cmocka_unit_test(test_clock_parse_malformed),
        cmocka_unit_test(test_clock_now_is_sane),
        cmocka_unit_test(test_arena_many_allocations),
        cmocka_unit_test(test_arena_alignment_16),
        cmocka_unit_test(test_arena_allocations_do_not_overlap),
        cmocka_unit_test(test_arena_large_allocation),
        cmocka_unit_test(test_arena_large_first),
        cmocka_unit_test(test_arena_exactly_block_sized),
        cmocka_unit_test(test_arena_calloc_zeroed),
        cmocka_unit_test(test_arena_memdup_adds_nul),
        cmocka_unit_test(test_arena_printf),
        cmocka_unit_test(test_arena_printf_long),
        cmocka_unit_test(test_arena_release_and_reuse),
        cmocka_unit_test(test_money_within_limits),
        cmocka_unit_test(test_money_over_limit),
        cmocka_unit_test(test_money_below_zero),
        cmocka_unit_test(test_money_overflow),
        cmocka_unit_test(test_money_constants_match_contract),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
