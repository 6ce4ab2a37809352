#ifndef SHOPD_REPO_DB_H
#define SHOPD_REPO_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/*
 * MariaDB access: a pool of connections, transactions, and prepared statements with bound
 * parameters (never SQL built from input). This module and the repos are the only code that
 * sees <mysql.h>.
 *
 * A connection is checked out by one service call at a time (db_acquire/db_release) and is
 * never shared between threads meanwhile. Each connection keeps its prepared statements, keyed
 * by the address of the static SQL string, so a statement is prepared once per connection.
 * A connection that died while it rested in the pool (a server restart, a KILL, an idle
 * time-out) is replaced before the checkout's first statement: each checkout polls the socket
 * (no round trip; a resting connection has nothing to read, a dead one has the end of the
 * stream or the server's notice) and, after another connection was found lost, pings it.
 * Should the first statement still meet a lost connection, it runs once more on a new one when
 * nothing can have run (not sent, a read, or START TRANSACTION); a write whose reply was lost
 * fails with ERR_UNAVAILABLE, since it may have committed. Replacements count in
 * shopd_db_reconnects_total.
 *
 * Errors: every fallible call returns 0 or -1 with e set. MariaDB error numbers are mapped in
 * one place: lock wait timeout, deadlock, an interrupted statement and lost connections become
 * ERR_UNAVAILABLE (503 with Retry-After), anything else ERR_INTERNAL; the server's message
 * stays in e->detail, which the HTTP layer logs and never sends. A repo that expects a
 * duplicate key asks db_last_errno() and maps it to its own conflict code.
 */

struct arena;
struct err;
struct db_pool;
struct db_conn;

/* A node of a cluster; host is a name, an address, or a Unix socket's path ('/' first). */
struct db_node {
    const char *host;
    int port;
};

#define DB_FAILOVER_MAX 3

struct db_options {
    const char *host; /* the first, preferred node */
    int port;
    /* The other nodes of a Galera cluster, tried in turn: every connection of the pool goes to
     * one node at a time (Galera's single writer, so that certification conflicts stay rare);
     * when that node is lost, refuses connections, or is not ready (not Synced in the primary
     * component: "WSREP has not yet prepared node for application use"), the pool moves to
     * the next, and its connections follow on their next checkout. Off the first node, the
     * pool asks once a second whether an earlier one is back and returns to it, so that every
     * instance converges on the first node of the list that takes work. Reads are causal
     * (wsrep_sync_wait) only where a read could miss an acknowledged write: off the first
     * node, for a few seconds after a move or the pool's start, and once per new connection. */
    struct db_node failover[DB_FAILOVER_MAX];
    int nfailover;
    const char *user;
    const char *pass;
    const char *name;
    int size;        /* connections at most */
    int lock_wait_s; /* innodb_lock_wait_timeout of each session */
    /* How long a statement's answer may take: 0 = lock_wait_s + 2, so that a server that hangs
     * (stopped, partitioned) is given up before a proxy in front gives up on us. */
    int read_timeout_s;
    /* idle_transaction_timeout of each session (0 = none): MariaDB ends a transaction left
     * idle this long, so that a client process that froze mid-transaction (SIGSTOP, a VM
     * pause) does not hold its row locks, and every other instance with them, indefinitely. */
    int idle_trx_timeout_s;
};

enum db_type { DB_NULL, DB_INT, DB_STR, DB_TIME };

/* A parameter or a result cell. DB_TIME is UTC microseconds since the epoch in i. */
struct db_val {
    enum db_type type;
    int64_t i;
    const char *s;
    size_t len;
};

#define DB_INT(v)      ((struct db_val){DB_INT, (int64_t)(v), NULL, 0})
#define DB_STR(v)      ((struct db_val){DB_STR, 0, (v), strlen(v)})
#define DB_BYTES(v, n) ((struct db_val){DB_STR, 0, (const char *)(v), (n)})
#define DB_TIME(us)    ((struct db_val){DB_TIME, (us), NULL, 0})
#define DB_NULLV       ((struct db_val){DB_NULL, 0, NULL, 0})

/* Rows copied into an arena: cells[row * ncols + col]. */
struct db_rows {
    size_t nrows;
    size_t ncols;
    struct db_val *cells;
};

/* "(?, …, ?)" with DB_IN_MAX placeholders, for a fixed statement that takes up to that many
 * ids; callers pad the unused places with an id that matches nothing (0). */
#define DB_IN_MAX 64
#define DB_IN_8   "?,?,?,?,?,?,?,?"
#define DB_IN_64                                                                        \
    "(" DB_IN_8 "," DB_IN_8 "," DB_IN_8 "," DB_IN_8 "," DB_IN_8 "," DB_IN_8 "," DB_IN_8 \
    "," DB_IN_8 ")"
/* The same with DB_IN_WIDE_MAX places, for the event batches (the relay's, the platform's):
 * under load a batch waits in MariaDB's queue about as long whatever its size, so a wide one
 * does more per wait. */
#define DB_IN_WIDE_MAX 256
#define DB_IN_32       DB_IN_8 "," DB_IN_8 "," DB_IN_8 "," DB_IN_8
#define DB_IN_256                                                                              \
    "(" DB_IN_32 "," DB_IN_32 "," DB_IN_32 "," DB_IN_32 "," DB_IN_32 "," DB_IN_32 "," DB_IN_32 \
    "," DB_IN_32 ")"

#define DB_ER_DUP_ENTRY 1062
#define DB_ER_LOCK_WAIT 1205
#define DB_ER_DEADLOCK  1213
#define DB_ER_NOT_READY                                                       \
    1047 /* ER_UNKNOWN_COM_ERROR: a Galera node outside the primary component \
          */

/* Once per process, before any thread uses the database, and once at exit. */
int db_library_init(void);
void db_library_end(void);

struct db_pool *db_pool_new(const struct db_options *o);
void db_pool_free(struct db_pool *p);

/* Checks out a connection, waiting at most a few seconds for one to be free. */
int db_acquire(struct db_pool *p, struct db_conn **out, struct err *e);
/* Returns it; a transaction left open is rolled back. c may be NULL. */
void db_release(struct db_pool *p, struct db_conn *c);

int db_begin(struct db_conn *c, struct err *e);
/* A read-only transaction whose every read sees the same snapshot, taken now. */
int db_begin_snapshot(struct db_conn *c, struct err *e);
int db_commit(struct db_conn *c, struct err *e);
void db_rollback(struct db_conn *c);

/* Runs a statement that returns no rows; affected and insert_id may be NULL. Affected counts
 * matched rows (CLIENT_FOUND_ROWS), so a conditional UPDATE that matched is 1. */
int db_exec(struct db_conn *c, const char *sql, const struct db_val *params, size_t nparams,
            uint64_t *affected, int64_t *insert_id, struct err *e);

/* Runs a query and copies every row into the arena. */
int db_query(struct db_conn *c, const char *sql, const struct db_val *params, size_t nparams,
             struct arena *a, struct db_rows *out, struct err *e);

/*
 * Runs a CALL of a stored procedure: its first nsets result sets are copied into sets[] (as
 * db_query; the sets it did not send are left empty), the results after them read and dropped.
 * retry_safe says that a connection lost on the checkout's first statement may be replaced
 * and the CALL sent again (it commits nothing). A procedure may begin or commit the
 * connection's transaction: afterwards the connection knows whether one is open from the
 * server's own status, as db_release and the retry rules need.
 */
int db_call(struct db_conn *c, const char *sql, const struct db_val *params, size_t nparams,
            bool retry_safe, struct arena *a, struct db_rows *sets, size_t nsets, struct err *e);

/* Runs a trusted multi-statement script (a migration file), not a prepared statement. */
int db_exec_script(struct db_conn *c, const char *sql, struct err *e);

/* The MariaDB error number of the last failed call on c, 0 if it succeeded. */
unsigned db_last_errno(const struct db_conn *c);

/* True when the last failure was a deadlock or lock wait time-out that a retry may clear. */
bool db_last_was_retryable(const struct db_conn *c);

/* True when the last failure lost the connection (its node died, shut down, or is not ready:
 * the pool has moved on). What ran on it is rolled back, or was committed whole. */
bool db_last_lost_connection(const struct db_conn *c);

/* The index of the node the pool's connections go to now: 0 for db_options.host, i + 1 for
 * failover[i]. */
int db_pool_node(struct db_pool *p);

/* Pings the server; for readiness checks. */
int db_ping(struct db_pool *p, struct err *e);

/* Cell accessors; the caller knows the row and column exist. */
static inline const struct db_val *db_cell(const struct db_rows *r, size_t row, size_t col)
{
    return &r->cells[row * r->ncols + col];
}
int64_t db_int(const struct db_rows *r, size_t row, size_t col);     /* parses DECIMAL text too */
const char *db_str(const struct db_rows *r, size_t row, size_t col); /* "" for NULL */
bool db_is_null(const struct db_rows *r, size_t row, size_t col);

#endif
