#ifndef SHOPD_CORE_METRICS_H
#define SHOPD_CORE_METRICS_H

#include <stdint.h>

/*
 * Process-wide counters and the per-route request histograms behind /metrics. Every update is
 * one relaxed atomic add: safe from any thread, and cheap enough for every request.
 */

struct buf;
struct round_trips;

enum metric_id {
#define X(id, name, help) METRIC_##id,
#include "core/metrics_counters.def"
#undef X
    METRIC_COUNT
};

void metrics_inc(enum metric_id id);
void metrics_add(enum metric_id id, uint64_t n);
uint64_t metrics_get(enum metric_id id);

/*
 * Request metrics are kept per route: routes are numbered 0..count-1 by the caller and named
 * once at start-up (the names must outlive the process's serving). metrics_routes_init() must be
 * called before serving; observing an unknown route index is ignored.
 */
void metrics_routes_init(const char *const *route_names, int count);
/* trips: the request's round trips to MariaDB and Redis (core/round_trips.h). */
void metrics_observe_request(int route, int status, int64_t duration_us,
                             const struct round_trips *trips);

/*
 * Histograms of other durations, shown in seconds: metrics_observe_us(METRIC_HIST_X, us) from
 * any thread.
 */
enum metric_hist_id {
    METRIC_HIST_PLATFORM_LAG, /* an event's creation to its recording by the platform */
    METRIC_HIST_COUNT
};
void metrics_observe_us(enum metric_hist_id id, int64_t duration_us);

/* Appends the Prometheus text exposition of everything to b. */
void metrics_render(struct buf *b);

/*
 * A gauge provider, called at render time (e.g. pool sizes); at most 8 may be registered. It
 * writes its own HELP and TYPE lines. Register and unregister before serving or after it (not
 * thread-safe against metrics_render); unregistering one that is not registered does nothing.
 */
typedef void metrics_gauge_fn(struct buf *b, void *ctx);
void metrics_register_gauge(metrics_gauge_fn *fn, void *ctx);
void metrics_unregister_gauge(metrics_gauge_fn *fn, void *ctx);

#endif
