#ifndef SHOPD_REDIS_DLOCK_H
#define SHOPD_REDIS_DLOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * Distributed locks in Redis with owner tokens, leases, renewal and fencing tokens; used as
 * lock → begin → work → commit → unlock. They calm contention; MariaDB stays the judge.
 *
 * - dlock_acquire() takes "<prefix>lock:<name>" with SET NX PX and a random owner token, and
 *   in the same Lua script a fencing token that only ever grows for that name (the counter
 *   never goes back, even after Redis loses it: it restarts from Redis's clock in µs).
 * - Waiters sleep until a release is published on "<prefix>lock-released:<name>" (one
 *   subscriber thread per process wakes them), with a 50 ms timed fallback in case a message
 *   is missed; they never spin, and give up after wait_ms with ERR_UNAVAILABLE.
 * - While held, a watchdog thread renews the lease every lease/3 (only if the token is still
 *   ours). If renewal finds the lock gone, or the lease ran out, dlock_held() turns false and
 *   the holder must roll back instead of committing.
 * - dlock_release() stops renewal first, then deletes the lock only if the token is ours
 *   (compare-and-delete in Lua). Releasing twice, or after the lease was lost, is harmless.
 *   NEEDSWORK: renewals run one after another under the held-list mutex, so a slow Redis
 *   delays other locks' hold and release; a per-lock renewal state would lift that.
 * - Fencing: rows protected by a lock carry the highest fence that wrote them, and protected
 *   writes are conditional on "fence <= mine", so a holder paused past its lease is rejected.
 * - Redis down is not Redis slow. Down is known: no connection can be made (refused, or the
 *   pool failing fast after that), or Redis answered with an error, so nothing was set. Then
 *   the lock is granted as "unguarded" (fence 0, dlock_fenced() false) and the write goes on
 *   under MariaDB's own conditions alone: correct, only less calm.
 *   A try that was sent and got no reply (a time-out, or a connection that broke) leaves the
 *   state unknown: Redis may have run our SET NX, or may run it later (a stalled Redis runs
 *   what sits in its socket buffers when it wakes up). Such a try is never taken for "down":
 *   - each try waits for Redis's answer up to the remaining wait (at most 1 s a try), not the
 *     pool's 200 ms, so a slow Redis is waited for like a busy lock;
 *   - the acquire script is idempotent for a token (a lock that holds our token is ours, with
 *     the fence that try drew), so the next try, on a fresh connection, is the check: ours →
 *     held; another owner → wait as usual; absent → taken now;
 *   - "down" right after a time-out is still unknown (tried again until wait_ms); "down" after
 *     a broken connection is down (Redis died, and what it held went with it);
 *   - when wait_ms runs out still unknown, the answer is ERR_UNAVAILABLE (503, Retry-After),
 *     never an unguarded grant while Redis may hold the lock;
 *   - every token that may sit in Redis without a holder (a give-up, an unguarded grant or a
 *     release after an unanswered try, or a release without an answer) goes to the manager's
 *     watchdog, which deletes it by token (compare-and-delete, telling waiters) until Redis
 *     has answered twice, the second time a second after: our lease is never left to make
 *     the next requests wait out its 10 s.
 *   Why not unguarded when unknown, as for down: the fence path would allow it (fence 0 writes
 *   are judged by MariaDB alone), but if our SET NX did run, our lease would then stand with
 *   no holder renewing or releasing it, and the next requests for that name wait 5 s and fail:
 *   the outage of one slow reply would be spread over 10 s. Waiting for the answer costs only
 *   latency while Redis is slow, and a 503 only when it stays silent longer than wait_ms.
 *   A time-out never marks Redis down for other callers (redis/redis_pool.h).
 *
 * Thread-safe. A struct dlock belongs to the caller (usually on the stack) from acquire to
 * release.
 */

struct err;
struct redis_pool;
struct dlock_manager;

struct dlock_options {
    const char *prefix; /* namespace, e.g. the database name and a colon */
};

struct dlock {
    char name[160];
    char token[64];
    int64_t fence; /* 0 when unguarded */
    int64_t lease_ms;
    atomic_llong expires_us; /* monotonic; moved on by each renewal */
    atomic_bool lost;
    bool held;
    bool unguarded;
    bool unanswered;    /* a try got no reply: our token may be set by it, even later */
    struct dlock *next; /* the manager's list of held locks */
};

struct dlock_manager *dlock_manager_new(struct redis_pool *pool, const struct dlock_options *o);
void dlock_manager_free(struct dlock_manager *m);

/* Takes the lock name, waiting at most wait_ms (and one Redis time-out); ERR_UNAVAILABLE when
 * it stays taken, or when Redis stays silent so that whether it is taken stays unknown. */
int dlock_acquire(struct dlock_manager *m, const char *name, int64_t wait_ms, int64_t lease_ms,
                  struct dlock *out, struct err *e);

/* False once the lease is known lost or ran out: roll back instead of committing. */
bool dlock_held(const struct dlock *l);

/* True when the lock carries a fencing token (Redis was reachable). */
bool dlock_fenced(const struct dlock *l);

void dlock_release(struct dlock_manager *m, struct dlock *l);

/* For tests: stop renewing l (as if its process were paused) without releasing it. */
void dlock_forget(struct dlock_manager *m, struct dlock *l);

#endif
