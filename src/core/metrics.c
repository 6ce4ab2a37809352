#include "core/metrics.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/round_trips.h"

#include "core/banned.h"

#define MAX_ROUTES 64
#define MAX_GAUGES 8

static const struct {
    const char *name;
    const char *help;
} counter_info[] = {
#define X(id, name, help) {name, help},
#include "core/metrics_counters.def"
#undef X
};

static atomic_uint_least64_t counters[METRIC_COUNT];

/* The statuses the contract can answer; anything else is counted as "other". */
static const int statuses[] = {200, 201, 400, 401, 403, 404, 405, 409, 413, 415, 422, 500, 503};
#define STATUS_SLOTS ((int)(sizeof(statuses) / sizeof(statuses[0])) + 1)

/* Latency bucket upper bounds in microseconds, as Prometheus "le" seconds below. */
static const int64_t bucket_us[] = {250,   500,    1000,   2500,   5000,    10000,  25000,
                                    50000, 100000, 250000, 500000, 1000000, 5000000};
#define BUCKETS ((int)(sizeof(bucket_us) / sizeof(bucket_us[0])))

struct route_stats {
    atomic_uint_least64_t by_status[STATUS_SLOTS];
    atomic_uint_least64_t bucket[BUCKETS + 1]; /* last is +Inf */
    atomic_uint_least64_t sum_us;
    atomic_uint_least64_t round_trips[ROUND_TRIP_KINDS];
};

/* The other histograms: bounds in microseconds, each list ended by 0. */
#define HIST_BUCKETS 12
static const struct {
    const char *name;
    const char *help;
    int64_t bucket_us[HIST_BUCKETS + 1];
} hist_info[METRIC_HIST_COUNT] = {
    [METRIC_HIST_PLATFORM_LAG] = {"shopd_platform_event_lag_seconds",
                                  "time from an event's creation in the outbox to its recording "
                                  "by the platform",
                                  {10000, 50000, 100000, 250000, 500000, 1000000, 2500000,
                                   5000000, 10000000, 30000000, 60000000, 300000000, 0}},
};

struct hist_stats {
    atomic_uint_least64_t bucket[HIST_BUCKETS + 1]; /* last is +Inf */
    atomic_uint_least64_t sum_us;
};

static struct hist_stats hists[METRIC_HIST_COUNT];

static const char *route_names[MAX_ROUTES + 1];
static int route_count;
static struct route_stats routes[MAX_ROUTES + 1];

static struct {
    metrics_gauge_fn *fn;
    void *ctx;
} gauges[MAX_GAUGES];
static int gauge_count;

void metrics_inc(enum metric_id id)
{
    atomic_fetch_add_explicit(&counters[id], 1, memory_order_relaxed);
}

void metrics_add(enum metric_id id, uint64_t n)
{
    atomic_fetch_add_explicit(&counters[id], n, memory_order_relaxed);
}

uint64_t metrics_get(enum metric_id id)
{
    return atomic_load_explicit(&counters[id], memory_order_relaxed);
}

void metrics_routes_init(const char *const *names, int count)
{
    if (count > MAX_ROUTES)
        BUG("more routes than metrics can hold");
    for (int i = 0; i < count; i++)
        route_names[i] = names[i];
    route_names[count] = "unmatched";
    route_count = count;
}

void metrics_register_gauge(metrics_gauge_fn *fn, void *ctx)
{
    if (gauge_count == MAX_GAUGES)
        BUG("too many gauges");
    gauges[gauge_count].fn = fn;
    gauges[gauge_count].ctx = ctx;
    gauge_count++;
}

void metrics_unregister_gauge(metrics_gauge_fn *fn, void *ctx)
{
    for (int i = 0; i < gauge_count; i++)
        if (gauges[i].fn == fn && gauges[i].ctx == ctx) {
            memmove(&gauges[i], &gauges[i + 1], (size_t)(gauge_count - i - 1) * sizeof(gauges[0]));
            gauge_count--;
            return;
        }
}

void metrics_observe_us(enum metric_hist_id id, int64_t duration_us)
{
    const int64_t *bounds = hist_info[id].bucket_us;
    int b = 0;

    if (duration_us < 0)
        duration_us = 0; /* clocks of two hosts: a lag is never negative */
    while (b < HIST_BUCKETS && bounds[b] && duration_us > bounds[b])
        b++;
    if (b < HIST_BUCKETS && !bounds[b])
        b = HIST_BUCKETS;
    atomic_fetch_add_explicit(&hists[id].bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&hists[id].sum_us, (uint64_t)duration_us, memory_order_relaxed);
}

static int status_slot(int status)
{
    for (int i = 0; i < STATUS_SLOTS - 1; i++)
        if (statuses[i] == status)
            return i;
    return STATUS_SLOTS - 1;
}

void metrics_observe_request(int route, int status, int64_t duration_us,
                             const struct round_trips *trips)
{
    if (route < 0 || route > route_count)
        route = route_count;
    struct route_stats *s = &routes[route];
    int b = 0;

    while (b < BUCKETS && duration_us > bucket_us[b])
        b++;
    atomic_fetch_add_explicit(&s->by_status[status_slot(status)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum_us, (uint64_t)(duration_us > 0 ? duration_us : 0),
                              memory_order_relaxed);
    for (int k = 0; k < ROUND_TRIP_KINDS; k++)
        if (trips->n[k])
            atomic_fetch_add_explicit(&s->round_trips[k], trips->n[k], memory_order_relaxed);
}

static uint64_t load(atomic_uint_least64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

static void render_requests(struct buf *b)
{
    buf_addstr(b, "# HELP shopd_http_requests_total HTTP requests by route and status\n"
                  "# TYPE shopd_http_requests_total counter\n");
    for (int r = 0; r <= route_count; r++)
        for (int i = 0; i < STATUS_SLOTS; i++) {
            uint64_t n = load(&routes[r].by_status[i]);
            if (!n)
                continue;
            if (i < STATUS_SLOTS - 1)
                buf_addf(b, "shopd_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                         route_names[r], statuses[i], (unsigned long long)n);
            else
                buf_addf(b, "shopd_http_requests_total{route=\"%s\",status=\"other\"} %llu\n",
                         route_names[r], (unsigned long long)n);
        }
}

static void render_latency(struct buf *b)
{
    buf_addstr(b, "# HELP shopd_http_request_duration_seconds request latency by route\n"
                  "# TYPE shopd_http_request_duration_seconds histogram\n");
    for (int r = 0; r <= route_count; r++) {
        uint64_t cumulative = 0;
        for (int i = 0; i <= BUCKETS; i++)
            cumulative += load(&routes[r].bucket[i]);
        if (!cumulative)
            continue;
        cumulative = 0;
        for (int i = 0; i <= BUCKETS; i++) {
            cumulative += load(&routes[r].bucket[i]);
            if (i < BUCKETS)
                buf_addf(b,
                         "shopd_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} "
                         "%llu\n",
                         route_names[r], (double)bucket_us[i] / 1e6,
                         (unsigned long long)cumulative);
            else
                buf_addf(b,
                         "shopd_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} "
                         "%llu\n",
                         route_names[r], (unsigned long long)cumulative);
        }
        buf_addf(b, "shopd_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", route_names[r],
                 (double)load(&routes[r].sum_us) / 1e6);
        buf_addf(b, "shopd_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                 route_names[r], (unsigned long long)cumulative);
    }
}

/* The round trips of each route's requests (core/round_trips.h), for routes that had any. */
static void render_round_trips(struct buf *b)
{
    static const struct {
        const char *name;
        const char *help;
    } kinds[ROUND_TRIP_KINDS] = {
        [ROUND_TRIP_DB] = {"shopd_db_round_trips_total",
                           "MariaDB round trips (statements, commits, rollbacks, pings) made "
                           "by requests, by route"},
        [ROUND_TRIP_DB_PREPARE] = {"shopd_db_prepares_total",
                                   "statements prepared by requests (once per connection and "
                                   "statement), by route"},
        [ROUND_TRIP_REDIS] = {"shopd_redis_round_trips_total",
                              "Redis commands and scripts sent by requests, by route"},
    };

    for (int k = 0; k < ROUND_TRIP_KINDS; k++) {
        buf_addf(b, "# HELP %s %s\n# TYPE %s counter\n", kinds[k].name, kinds[k].help,
                 kinds[k].name);
        for (int r = 0; r <= route_count; r++) {
            uint64_t n = load(&routes[r].round_trips[k]);
            if (n)
                buf_addf(b, "%s{route=\"%s\"} %llu\n", kinds[k].name, route_names[r],
                         (unsigned long long)n);
        }
    }
}

static void render_hists(struct buf *b)
{
    for (int h = 0; h < METRIC_HIST_COUNT; h++) {
        const char *name = hist_info[h].name;
        uint64_t cumulative = 0;

        buf_addf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, hist_info[h].help, name);
        for (int i = 0; i < HIST_BUCKETS && hist_info[h].bucket_us[i]; i++) {
            cumulative += load(&hists[h].bucket[i]);
            buf_addf(b, "%s_bucket{le=\"%g\"} %llu\n", name,
                     (double)hist_info[h].bucket_us[i] / 1e6, (unsigned long long)cumulative);
        }
        cumulative += load(&hists[h].bucket[HIST_BUCKETS]);
        buf_addf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cumulative);
        buf_addf(b, "%s_sum %.6f\n", name, (double)load(&hists[h].sum_us) / 1e6);
        buf_addf(b, "%s_count %llu\n", name, (unsigned long long)cumulative);
    }
}

/* The metric name without its labels, for the HELP/TYPE header. */
static size_t base_len(const char *name)
{
    const char *brace = strchr(name, '{');
    return brace ? (size_t)(brace - name) : strlen(name);
}

/* A counter of seconds, kept in microseconds (see metrics_counters.def). */
static bool is_seconds(const char *name, size_t len)
{
    static const char suffix[] = "_seconds_total";
    size_t n = sizeof(suffix) - 1;

    return len >= n && !memcmp(name + len - n, suffix, n);
}

static void render_counters(struct buf *b)
{
    for (int i = 0; i < METRIC_COUNT; i++) {
        size_t n = base_len(counter_info[i].name);
        bool new_name = i == 0 || base_len(counter_info[i - 1].name) != n ||
                        strncmp(counter_info[i - 1].name, counter_info[i].name, n);
        if (new_name)
            buf_addf(b, "# HELP %.*s %s\n# TYPE %.*s counter\n", (int)n, counter_info[i].name,
                     counter_info[i].help, (int)n, counter_info[i].name);
        if (is_seconds(counter_info[i].name, n))
            buf_addf(b, "%s %.6f\n", counter_info[i].name, (double)load(&counters[i]) / 1e6);
        else
            buf_addf(b, "%s %llu\n", counter_info[i].name,
                     (unsigned long long)load(&counters[i]));
    }
}

void metrics_render(struct buf *b)
{
    render_requests(b);
    render_latency(b);
    render_round_trips(b);
    render_counters(b);
    render_hists(b);
    for (int i = 0; i < gauge_count; i++)
        gauges[i].fn(b, gauges[i].ctx);
}
