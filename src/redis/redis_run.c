/*
 * redis_run(): the one seam every Redis command of the pool passes (redis/redis_cmd.h).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <hiredis.h>

#include "core/array.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "redis/redis_cmd.h"
#include "redis/redis_fault.h"
#include "redis/redis_pool.h"

#include "core/banned.h"

#define LOG_EVERY_US ((int64_t)1000 * 1000)

static const struct {
    const char *name;
    enum metric_id metric;
} outcomes[] = {
    [REDIS_OUT_REPLY] = {"reply", METRIC_REDIS_COMMANDS_REPLY},
    [REDIS_OUT_ERROR] = {"an error reply", METRIC_REDIS_COMMANDS_ERROR},
    [REDIS_OUT_BUSY] = {"not sent, every connection busy", METRIC_REDIS_COMMANDS_BUSY},
    [REDIS_OUT_DOWN] = {"not sent, redis unreachable", METRIC_REDIS_COMMANDS_DOWN},
    [REDIS_OUT_SLOW] = {"no reply in time", METRIC_REDIS_COMMANDS_SLOW},
    [REDIS_OUT_BROKEN] = {"the connection broke", METRIC_REDIS_COMMANDS_BROKEN},
};

/* Per outcome: when it was last logged, and how many went unlogged since. */
static struct {
    atomic_llong logged_at;
    atomic_long left_out;
} logs[ARRAY_SIZE(outcomes)];

bool redis_outcome_sent(enum redis_outcome out)
{
    return out != REDIS_OUT_BUSY && out != REDIS_OUT_DOWN;
}

/*
 * One line for a failed command, unless this outcome was logged less than a second ago: an
 * outage fails every request, and a line each would bury the log (the counters have them).
 */
static void log_failure(const struct redis_call *call, enum redis_outcome out, const char *why)
{
    int64_t now = clock_monotonic_us();
    long long last = atomic_load(&logs[out].logged_at);

    if ((last && now - last < LOG_EVERY_US) ||
        !atomic_compare_exchange_strong(&logs[out].logged_at, &last, now)) {
        atomic_fetch_add(&logs[out].left_out, 1);
        return;
    }
    long left_out = atomic_exchange(&logs[out].left_out, 0);
    if (left_out)
        log_warn("redis %s %s: %s: %s (and %ld more such since the last line)", call->caller,
                 call->argv[0], outcomes[out].name, why, left_out);
    else
        log_warn("redis %s %s: %s: %s", call->caller, call->argv[0], outcomes[out].name, why);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
}

/*
 * Sends call on conn, with the fault hook's say; the reply or NULL, with *out and why (copied:
 * a broken connection's context is freed on release).
 */
static redisReply *send_call(struct redis_pool *p, struct redis_conn *conn,
                             const struct redis_call *call, enum redis_outcome *out, char *why,
                             size_t why_size)
{
    int stall_ms = 0;
    enum redis_fault_kind fault = redis_fault_take(call->caller, &stall_ms);
    int timeout_ms = call->timeout_ms > 0 ? call->timeout_ms : redis_pool_timeout_ms(p);

    if (fault == REDIS_FAULT_DOWN) {
        *out = REDIS_OUT_DOWN;
        snprintf(why, why_size, "a test's fault");
        return NULL;
    }
    if (fault == REDIS_FAULT_STALL)
        sleep_ms(stall_ms);
    redis_conn_set_timeout(conn, call->timeout_ms);
    redisContext *ctx = redis_conn_context(conn);
    redisReply *r = redis_conn_command(p, conn, call->argc, call->argv, call->lens);
    bool lost = fault == REDIS_FAULT_LOST || (fault == REDIS_FAULT_STALL && stall_ms >= timeout_ms);
    if (r && lost) {
        /* It ran; the caller must not learn how, exactly as when a reply never arrives. */
        freeReplyObject(r);
        redis_conn_failed(p, conn);
        *out = fault == REDIS_FAULT_LOST ? REDIS_OUT_BROKEN : REDIS_OUT_SLOW;
        snprintf(why, why_size, "a test's fault");
        return NULL;
    }
    if (!r) {
        bool timed_out = ctx->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
        *out = timed_out ? REDIS_OUT_SLOW : REDIS_OUT_BROKEN;
        snprintf(why, why_size, "%s", ctx->errstr);
        return NULL;
    }
    *out = r->type == REDIS_REPLY_ERROR ? REDIS_OUT_ERROR : REDIS_OUT_REPLY;
    return r;
}

redisReply *redis_run(struct redis_pool *p, const struct redis_call *call, enum redis_outcome *out,
                      struct err *e)
{
    struct redis_conn *conn;
    char why[sizeof(e->detail)] = "";
    redisReply *r = NULL;

    if (redis_acquire(p, &conn, e)) {
        *out = redis_pool_healthy(p) ? REDIS_OUT_BUSY : REDIS_OUT_DOWN;
        snprintf(why, sizeof(why), "%s", e->detail);
    } else {
        r = send_call(p, conn, call, out, why, sizeof(why));
        redis_release(p, conn);
    }
    metrics_inc(outcomes[*out].metric);
    switch (*out) {
    case REDIS_OUT_REPLY:
        return r;
    case REDIS_OUT_ERROR:
        err_set(e, ERR_INTERNAL, "redis %s: %s", call->argv[0], r->str);
        if (!call->quiet_errors)
            log_failure(call, *out, r->str);
        freeReplyObject(r);
        return NULL;
    default:
        err_set(e, ERR_UNAVAILABLE, "redis %s: %s: %s", call->argv[0], outcomes[*out].name, why);
        log_failure(call, *out, why);
        return NULL;
    }
}

redisReply *redis_cmd(struct redis_pool *p, const struct redis_call *call, struct err *e)
{
    enum redis_outcome out;

    return redis_run(p, call, &out, e);
}
