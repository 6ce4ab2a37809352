#ifndef SHOPD_REDIS_REDIS_CMD_H
#define SHOPD_REDIS_REDIS_CMD_H

#include <stddef.h>

#include <hiredis.h>

/*
 * One command on a pooled connection, for the modules of src/redis/ (the only code that
 * includes hiredis). A failed connection is marked broken (ERR_UNAVAILABLE); an error reply
 * is ERR_INTERNAL with Redis's message in e->detail (a script's own error, "EPOCH" say, can be
 * recognised there). The reply belongs to the caller: freeReplyObject().
 */

struct err;
struct redis_pool;

struct redis_conn;

/*
 * One command on a connection the caller checked out (one round trip, noted). A failed
 * connection is marked broken (NULL, ctx->err says why); an error reply is returned as it
 * is, except that a READONLY or MASTERDOWN one (the connection reached a replica) also marks
 * the connection broken and has the pool find the master again.
 */
redisReply *redis_conn_command(struct redis_pool *p, struct redis_conn *c, int argc,
                               const char **argv, const size_t *lens);

/* An owner token for a lease kept in Redis (a lock, a claim): this process, the moment, and a
 * counter, unique across processes and hosts for as long as a lease lives. */
void redis_owner_token(char *buf, size_t size);

redisReply *redis_cmd(struct redis_pool *p, int argc, const char **argv, const size_t *lens,
                      struct err *e);

/* The same with a socket time-out of timeout_ms for this command (the pool's when <= 0): a
 * blocking read passes its BLOCK plus a margin, so that an idle stream is never an error. */
redisReply *redis_cmd_timeout(struct redis_pool *p, int timeout_ms, int argc, const char **argv,
                              const size_t *lens, struct err *e);

#endif
