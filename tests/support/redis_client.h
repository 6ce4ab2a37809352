#ifndef SHOPD_TESTS_REDIS_CLIENT_H
#define SHOPD_TESTS_REDIS_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

/*
 * A direct hiredis connection for the integration tests, to look at what shopd keeps in Redis
 * (streams, sorted sets) and to put things there behind its back. It connects lazily and
 * reconnects on the next command after an error, so it survives a Redis restart. One client
 * belongs to one thread. Replies are hiredis's redisReply: include <hiredis.h> to read them.
 */

struct redisContext;
struct redisReply;

struct redis_client {
    struct redisContext *ctx;
    char host[128];
    int port;
    int db;
};

/* Parses url (redis://host:port/db); connects on the first command. 0, or -1 on a bad URL. */
int redis_client_init(struct redis_client *c, const char *url);
void redis_client_release(struct redis_client *c);

/*
 * Sends one command (hiredis's printf-like format: %s a C string, %b a buffer and its length,
 * %lld a long long; not printf's, so the compiler cannot check them). Returns the reply for the
 * caller to freeReplyObject(), or NULL when Redis could not be reached or did not answer within two
 * seconds (the connection is then dropped and made again on the next call). A Redis error reply is
 * returned as a reply.
 */
struct redisReply *redis_client_cmd(struct redis_client *c, const char *fmt, ...);

/* The same with an argument vector (argv[i] NUL-terminated). */
struct redisReply *redis_client_cmd_argv(struct redis_client *c, int argc, const char **argv);

/* One command's integer reply (EXISTS, SCARD, PTTL...), or otherwise when the command failed
 * or answered anything else. */
long long redis_client_integer(struct redis_client *c, long long otherwise, const char *fmt, ...);

/* Deletes every key matching pattern (SCAN + DEL); the number deleted, or -1. */
int64_t redis_client_delete_matching(struct redis_client *c, const char *pattern);

#endif
