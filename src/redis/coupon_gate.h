#ifndef SHOPD_REDIS_COUPON_GATE_H
#define SHOPD_REDIS_COUPON_GATE_H

#include <stddef.h>
#include <stdint.h>

/*
 * The Redis admission step in front of coupon issue (strategy "gate"): one Lua script per
 * request answers "already issued?", "any left?", "in its window?" and takes one, so that a
 * rush of 10,000 users costs MariaDB only the admitted requests. It only turns requests away
 * early; MariaDB decides every admission (conditional count, unique (coupon, user)).
 *
 * State per coupon: "<prefix>coupon:<id>:gate" (remaining, window) and ":holders" (a set of
 * user ids). When it is missing (first use, Redis restarted, or dropped after a disagreement
 * with MariaDB) admission answers GATE_UNKNOWN and the caller rebuilds it from MariaDB.
 * Thread-safe.
 */

struct coupon;
struct redis_pool;

enum gate_result {
    GATE_ADMITTED,
    GATE_SOLD_OUT,
    GATE_ALREADY_ISSUED,
    GATE_NOT_ACTIVE,
    GATE_UNKNOWN, /* no state: rebuild it */
    GATE_ERROR,   /* Redis failed: go on with MariaDB alone */
};

enum gate_result coupon_gate_admit(struct redis_pool *pool, const char *prefix, int64_t coupon_id,
                                   int64_t user_id, int64_t now_us);

/*
 * For the event loops, which send commands on their own pipeline (redis/pipeline.h): the argv
 * (from a; *argv, the count returned) of the admission's checks alone, which take nothing, and
 * what its reply says: GATE_ADMITTED there means only that coupon_gate_admit() would try,
 * GATE_ERROR that there is no answer. A sold-out rush is then refused without a worker.
 */
struct arena;
struct redis_value;
int coupon_gate_check_command(const char *prefix, int64_t coupon_id, int64_t user_id,
                              int64_t now_us, struct arena *a, const char ***argv);
enum gate_result coupon_gate_check_result(const struct redis_value *reply);

/* Gives an admission back (MariaDB failed for a reason that is not final). */
void coupon_gate_undo(struct redis_pool *pool, const char *prefix, int64_t coupon_id,
                      int64_t user_id);

/* Drops the state so that the next request rebuilds it from MariaDB. */
void coupon_gate_forget(struct redis_pool *pool, const char *prefix, int64_t coupon_id);

/* Builds the state from MariaDB's view (unless another request built it meanwhile). */
int coupon_gate_rebuild(struct redis_pool *pool, const char *prefix, const struct coupon *c,
                        const int64_t *holders, size_t count);

#endif
