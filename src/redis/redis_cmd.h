#ifndef SHOPD_REDIS_REDIS_CMD_H
#define SHOPD_REDIS_REDIS_CMD_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis.h>

/*
 * The one way a Redis command is sent, for the modules of src/redis/ (the only code that
 * includes hiredis): redis_run() checks a connection out of the pool, sends, reads the reply,
 * counts it (a round trip, and shopd_redis_commands_total by outcome), logs what went wrong
 * (at most a line a second per outcome, with how many it left out) and passes the fault
 * hook (redis/redis_fault.h). Each caller then maps the outcome to what it means for it.
 *
 * The pool's own handshakes (SELECT, ROLE, the Sentinels' questions), the lock subscriber's
 * PSUBSCRIBE on a connection of its own and the event loops' pipelined reads (which pass the
 * fault hook as caller "loop" and count themselves in shopd_loop_reads_total) are the only
 * other commands.
 */

struct err;
struct redis_pool;

struct redis_conn;

/*
 * What a command came to. BUSY and DOWN were not sent: every pooled connection was in use
 * (Redis is healthy: contention, not an outage), or none could be made (refused, or the pool
 * failing fast after such a failure). ERROR: Redis answered with an error, so the command did
 * not run (a script's own error, "EPOCH" say, is in e->detail). SLOW and BROKEN were sent and
 * no reply came, so they may have run, now or later (a stalled Redis still executes what sits
 * in its socket buffers when it wakes up): SLOW is a time-out, where Redis is alive; BROKEN a
 * connection that broke (Redis died or restarted), where it most likely is not.
 */
enum redis_outcome {
    REDIS_OUT_REPLY,
    REDIS_OUT_ERROR,
    REDIS_OUT_BUSY,
    REDIS_OUT_DOWN,
    REDIS_OUT_SLOW,
    REDIS_OUT_BROKEN,
};

struct redis_call {
    const char *caller; /* "cache", "gate", ...: for the log and the fault hook */
    int argc;
    const char **argv;
    const size_t *lens; /* NULL: every argument is text */
    int timeout_ms;     /* the socket time-out for this command; the pool's when 0 */
    bool quiet_errors;  /* an error reply is an answer the caller expects: not logged */
};

/*
 * Runs call on a pooled connection. The reply (the caller frees it: freeReplyObject) when
 * *out is REDIS_OUT_REPLY; otherwise NULL, with e set: ERR_INTERNAL with Redis's message for
 * an error reply, ERR_UNAVAILABLE for the rest. A connection that broke or timed out is
 * closed on release; an error reply from a replica (READONLY, MASTERDOWN) also has the pool
 * find the master again.
 */
redisReply *redis_run(struct redis_pool *p, const struct redis_call *call, enum redis_outcome *out,
                      struct err *e);

/* True when an outcome's command was sent (a round trip was spent on it). */
bool redis_outcome_sent(enum redis_outcome out);

/* One command on a connection the caller checked out: redis_run()'s own step, on which it
 * builds. NULL when the connection failed (now marked broken; the context's err says why). */
redisReply *redis_conn_command(struct redis_pool *p, struct redis_conn *c, int argc,
                               const char **argv, const size_t *lens);

/* An owner token for a lease kept in Redis (a lock, a claim): this process, the moment, and a
 * counter, unique across processes and hosts for as long as a lease lives. */
void redis_owner_token(char *buf, size_t size);

/* redis_run() for a caller that only needs the reply or an error (NULL, e set). */
redisReply *redis_cmd(struct redis_pool *p, const struct redis_call *call, struct err *e);

#endif
