#ifndef SHOPD_REDIS_REDIS_FAULT_H
#define SHOPD_REDIS_REDIS_FAULT_H

#include <stdbool.h>

/*
 * A test hook in the one place every Redis command passes (redis_run(), redis/redis_cmd.h):
 * it makes chosen commands fail or stall the ways a real Redis does, so that a test can
 * reach each failure path of each caller on purpose, and assert exact totals afterwards,
 * instead of hoping a SIGSTOP lands at the right moment. Process-wide; off unless set (in
 * tests, or with SHOPD_REDIS_FAULT for a server a test starts). Thread-safe.
 *
 * The callers, as named in a fault and in the log: "cache" (the read-through caches), "gate"
 * (the coupon gate), "dlock" (the distributed locks), "stream" (the order-event stream),
 * "ranking", "lineage", "ping" and "loop" (the event loops' pipelined cache reads: any fault
 * sends the read to a worker, as a lost reply does there, since a loop never sleeps).
 */

struct err;

enum redis_fault_kind {
    REDIS_FAULT_NONE,
    REDIS_FAULT_DOWN,  /* not sent: the caller is told no connection could be made */
    REDIS_FAULT_LOST,  /* sent and run, then the reply is lost and the connection dropped */
    REDIS_FAULT_STALL, /* held stall_ms before it is sent; a stall longer than the command's
                          time-out loses its reply as a timed-out read does */
};

struct redis_fault {
    enum redis_fault_kind kind;
    char caller[16]; /* only this caller's commands; "": every caller's */
    int every;       /* every n-th matching command, counting from the first (<= 1: each) */
    long limit;      /* at most this many faults, then none (0: no end) */
    int stall_ms;    /* REDIS_FAULT_STALL only */
};

/* Arms f (copied), or disarms the hook when f is NULL or of kind NONE; either way the count of
 * matching commands starts again. */
void redis_fault_set(const struct redis_fault *f);

/*
 * Parses spec, "caller:kind[:every=N][:limit=N][:ms=N]" (caller "*" for all; kind "down",
 * "lost" or "stall"), as SHOPD_REDIS_FAULT spells it: "gate:lost:every=3" loses the reply of
 * every third command of the coupon gate. 0, or -1 with e set (ERR_INVALID_INPUT).
 */
int redis_fault_parse(const char *spec, struct redis_fault *f, struct err *e);

/*
 * What the hook does to caller's next command: NONE when it is not armed or this command is
 * not picked; *stall_ms is set for a stall. Counts the faults it hands out.
 */
enum redis_fault_kind redis_fault_take(const char *caller, int *stall_ms);

#endif
