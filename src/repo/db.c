#include "repo/db.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/handoff.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/num.h"
#include "core/round_trips.h"
#include "core/xalloc.h"

#include "core/banned.h"

#define MAX_STMTS          128
#define MAX_PARAMS         (2 + DB_IN_WIDE_MAX) /* the outbox mark: two values and its ids */
#define MAX_COLS           48
#define ACQUIRE_WAIT_S     5
#define CONNECT_BACKOFF_US 500000  /* after a failed connect, fail fast for this long */
#define PROBE_EVERY_US     1000000 /* a pool off its first node asks the ones before it */
#define CAUSAL_WINDOW_US   5000000 /* causal reads this long after the pool (re)chose a node */

struct cached_stmt {
    const char *sql; /* identity: the address of a static string */
    MYSQL_STMT *stmt;
};

struct db_conn {
    struct db_pool *pool;
    MYSQL *mysql; /* NULL until connected */
    int node;     /* the node it is connected to */
    unsigned generation;
    bool in_tx;
    bool fresh;  /* nothing was sent on this checkout yet: a lost connection may be retried */
    bool causal; /* its session reads with wsrep_sync_wait = 1 */
    unsigned last_errno;
    struct cached_stmt stmts[MAX_STMTS];
    int nstmts;
    struct db_conn *next_free;
};

/* A request waiting for a connection. Released connections are handed to the oldest waiter
 * directly, so under overload requests are served in arrival order and none waits out its
 * deadline while later arrivals take the connections it was waiting for. */
struct db_pool {
    struct db_options opt;
    char *hosts[1 + DB_FAILOVER_MAX];
    int ports[1 + DB_FAILOVER_MAX];
    int nnodes;
    atomic_int node; /* where connections go now (single writer) */
    char *user, *pass, *name;
    pthread_mutex_t lock;
    struct handoff line; /* requests waiting for a connection, first come first served */
    struct db_conn *conns;
    struct db_conn *free_list;
    /* Bumped when any connection is found lost: the others are then pinged before use. */
    atomic_uint generation;
    atomic_llong connect_failed_at;
    /* A cluster's transitions (repo/db.h): until then connections read causally; when the
     * nodes before the one in use are next asked whether they are back. */
    atomic_llong causal_until_us, next_probe_us;
};

/* ---- errors ---- */

static bool is_connection_error(unsigned no)
{
    return no == CR_SERVER_GONE_ERROR || no == CR_SERVER_LOST || no == CR_SERVER_LOST_EXTENDED ||
           no == CR_CONNECTION_ERROR || no == CR_CONN_HOST_ERROR || no == CR_ERR_NET_READ ||
           no == CR_ERR_NET_WRITE || no == ER_CONNECTION_KILLED || no == 4031 /* idle kill */ ||
           no == ER_SERVER_SHUTDOWN || no == CR_COMMANDS_OUT_OF_SYNC || no == DB_ER_NOT_READY ||
           (no >= ER_NET_READ_ERROR && no <= ER_NET_WRITE_INTERRUPTED);
}

static void close_conn(struct db_conn *c)
{
    for (int i = 0; i < c->nstmts; i++)
        mysql_stmt_close(c->stmts[i].stmt);
    c->nstmts = 0;
    if (c->mysql)
        mysql_close(c->mysql);
    c->mysql = NULL;
    c->in_tx = false;
}

/* The single place where MariaDB error numbers become our codes. */
static int fail(struct db_pool *p, struct db_conn *c, unsigned no, const char *msg,
                const char *what, struct err *e)
{
    c->last_errno = no;
    /* A duplicate key, a failed CHECK or a missing parent row is expected by the repos that
     * ask for it. */
    if (no != ER_DUP_ENTRY && no != ER_CONSTRAINT_FAILED && no != ER_NO_REFERENCED_ROW_2)
        metrics_inc(METRIC_DB_ERRORS);
    if (no == ER_LOCK_WAIT_TIMEOUT)
        return err_set(e, ERR_UNAVAILABLE, "a lock wait timed out; retry");
    if (no == ER_LOCK_DEADLOCK)
        return err_set(e, ERR_UNAVAILABLE, "a deadlock was resolved by rolling back; retry");
    if (no == ER_QUERY_INTERRUPTED) /* a server shutting down interrupts what runs */
        return err_set(e, ERR_UNAVAILABLE, "%s was interrupted by the server; retry", what);
    if (no == ER_DUP_ENTRY)
        return err_set(e, ERR_INTERNAL, "%s: duplicate key: %s", what, msg);
    if (is_connection_error(no)) {
        int lost = c->node;
        close_conn(c);
        if (p) {
            atomic_fetch_add(&p->generation, 1);
            /* The node is gone or left the primary component: the pool moves on, unless
             * another connection moved it already. */
            if (p->nnodes > 1)
                atomic_compare_exchange_strong(&p->node, &lost, (lost + 1) % p->nnodes);
        }
        return err_set(e, ERR_UNAVAILABLE, "the database connection was lost (%s, error %u); retry",
                       what, no);
    }
    return err_set(e, ERR_INTERNAL, "%s: mariadb error %u: %s", what, no, msg);
}

static int stmt_fail(struct db_conn *c, MYSQL_STMT *st, const char *what, struct err *e)
{
    return fail(c->pool, c, mysql_stmt_errno(st), mysql_stmt_error(st), what, e);
}

static int conn_fail(struct db_conn *c, const char *what, struct err *e)
{
    return fail(c->pool, c, mysql_errno(c->mysql), mysql_error(c->mysql), what, e);
}

/* ---- pool ---- */

int db_library_init(void)
{
    return mysql_library_init(0, NULL, NULL) ? -1 : 0;
}

void db_library_end(void)
{
    mysql_library_end();
}

struct db_pool *db_pool_new(const struct db_options *o)
{
    struct db_pool *p = xcalloc(1, sizeof(*p));

    p->opt = *o;
    p->hosts[0] = xstrdup(o->host);
    p->ports[0] = o->port;
    p->nnodes = 1;
    for (int i = 0; i < o->nfailover && i < DB_FAILOVER_MAX; i++) {
        p->hosts[p->nnodes] = xstrdup(o->failover[i].host);
        p->ports[p->nnodes++] = o->failover[i].port;
    }
    p->user = xstrdup(o->user);
    p->pass = xstrdup(o->pass);
    p->name = xstrdup(o->name);
    /* A new process may join peers that write through another node: read causally at first. */
    if (p->nnodes > 1)
        atomic_store(&p->causal_until_us, clock_monotonic_us() + CAUSAL_WINDOW_US);
    pthread_mutex_init(&p->lock, NULL);
    handoff_init(&p->line);
    p->conns = xcalloc((size_t)o->size, sizeof(*p->conns));
    for (int i = o->size - 1; i >= 0; i--) {
        p->conns[i].pool = p;
        p->conns[i].next_free = p->free_list;
        p->free_list = &p->conns[i];
    }
    return p;
}

void db_pool_free(struct db_pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->opt.size; i++)
        close_conn(&p->conns[i]);
    free(p->conns);
    for (int i = 0; i < p->nnodes; i++)
        free(p->hosts[i]);
    free(p->user);
    free(p->pass);
    free(p->name);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static int session_setup(struct db_pool *p, struct db_conn *c, struct err *e)
{
    char sql[320];

    /* Built from our own integer configuration, not from input. READ COMMITTED avoids the gap
     * locks of REPEATABLE READ; every invariant is held by conditional updates and keys. */
    int n = snprintf(sql, sizeof(sql),
                     "SET SESSION innodb_lock_wait_timeout = %d, idle_transaction_timeout = %d, "
                     "time_zone = '+00:00', tx_isolation = 'READ-COMMITTED', "
                     "sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ENGINE_SUBSTITUTION'",
                     p->opt.lock_wait_s, p->opt.idle_trx_timeout_s);
    if (n < 0 || (size_t)n >= sizeof(sql))
        BUG("session setup statement truncated");
    if (mysql_real_query(c->mysql, sql, (unsigned long)n))
        return conn_fail(c, "session setup", e);
    return 0;
}

/*
 * True when the node of c may take work: always for a server that is not a Galera node
 * (wsrep off); for a Galera node, when it is Synced in the primary component (wsrep_ready).
 * Asked only of clusters, once per connection, as a causal read (wsrep_sync_wait): it returns
 * once the node has applied every transaction the cluster committed before it, so a connection
 * that the pool moved here after a node was lost sees every write acknowledged through that
 * node (an order created there, then paid here). Later statements do not wait: the pool's
 * connections write and read through this one node.
 */
static bool node_ready(struct db_conn *c)
{
    static const char wait_on[] = "SET SESSION wsrep_sync_wait = 1";
    static const char wait_off[] = "SET SESSION wsrep_sync_wait = 0";
    static const char sql[] = "SELECT @@wsrep_on = 0 OR (SELECT VARIABLE_VALUE FROM "
                              "information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = "
                              "'WSREP_READY') = 'ON'";

    if (mysql_real_query(c->mysql, wait_on, sizeof(wait_on) - 1) ||
        mysql_real_query(c->mysql, sql, sizeof(sql) - 1))
        return false;
    MYSQL_RES *res = mysql_store_result(c->mysql);
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    bool ready = row && row[0] && !strcmp(row[0], "1");
    if (res)
        mysql_free_result(res);
    return ready && !mysql_real_query(c->mysql, wait_off, sizeof(wait_off) - 1);
}

/* Connects c to node i: 0, or -1 with e set (nothing left open). */
static int connect_node(struct db_pool *p, struct db_conn *c, int i, struct err *e)
{
    unsigned connect_timeout = 2;
    unsigned rw_timeout =
        (unsigned)(p->opt.read_timeout_s > 0 ? p->opt.read_timeout_s : p->opt.lock_wait_s + 2);
    const char *host = p->hosts[i];

    c->mysql = mysql_init(NULL);
    if (!c->mysql)
        return err_set(e, ERR_INTERNAL, "mysql_init failed");
    mysql_options(c->mysql, MYSQL_OPT_CONNECT_TIMEOUT, &connect_timeout);
    mysql_options(c->mysql, MYSQL_OPT_READ_TIMEOUT, &rw_timeout);
    mysql_options(c->mysql, MYSQL_OPT_WRITE_TIMEOUT, &rw_timeout);
    mysql_options(c->mysql, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    bool local = host[0] == '/'; /* a Unix socket's path (core/config.h) */
    if (!mysql_real_connect(c->mysql, local ? "localhost" : host, p->user, p->pass, p->name,
                            (unsigned)p->ports[i], local ? host : NULL,
                            CLIENT_FOUND_ROWS | CLIENT_MULTI_RESULTS)) {
        err_set(e, ERR_UNAVAILABLE, "cannot connect to mariadb at %s:%d: %s", host, p->ports[i],
                mysql_error(c->mysql));
        metrics_inc(METRIC_DB_ERRORS);
        mysql_close(c->mysql);
        c->mysql = NULL;
        return -1;
    }
    c->node = i;
    c->causal = false;
    if (p->nnodes > 1 && !node_ready(c)) {
        close_conn(c);
        metrics_inc(METRIC_DB_ERRORS);
        return err_set(e, ERR_UNAVAILABLE,
                       "mariadb at %s:%d is not ready (a Galera node not Synced)", host,
                       p->ports[i]);
    }
    if (session_setup(p, c, e)) {
        close_conn(c);
        return -1;
    }
    return 0;
}

/* Moves the pool from node from to node to, unless another thread moved it already. */
static void move_to(struct db_pool *p, int from, int to)
{
    if (!atomic_compare_exchange_strong(&p->node, &from, to))
        return;
    atomic_store(&p->causal_until_us, clock_monotonic_us() + CAUSAL_WINDOW_US);
    metrics_inc(METRIC_DB_NODE_CHANGES);
    log_warn("db: node %s:%d is in use now", p->hosts[to], p->ports[to]);
}

/* Connects c to the node in use, or, when that one fails, to the next that takes it (which
 * the pool then uses). */
static int connect_conn(struct db_pool *p, struct db_conn *c, struct err *e)
{
    long long failed_at = atomic_load(&p->connect_failed_at);
    int first = atomic_load(&p->node);

    if (failed_at && clock_monotonic_us() - failed_at < CONNECT_BACKOFF_US)
        return err_set(e, ERR_UNAVAILABLE, "the database is unreachable; retry");
    for (int k = 0; k < p->nnodes; k++) {
        int i = (first + k) % p->nnodes;
        if (connect_node(p, c, i, e))
            continue;
        if (i != first)
            move_to(p, first, i);
        atomic_store(&p->connect_failed_at, 0);
        c->generation = atomic_load(&p->generation);
        return 0;
    }
    atomic_store(&p->connect_failed_at, clock_monotonic_us());
    return -1;
}

/*
 * True when the server closed c or sent it something unasked. A connection at rest in the
 * pool has nothing to read: what a dead one has is the end of the stream (a server that
 * restarted or went away) or the notice of a kill, an idle time-out or a shutdown. One poll()
 * and no round trip, so it runs on every checkout.
 */
static bool closed_by_server(struct db_conn *c)
{
    struct pollfd fd = {.fd = (int)mysql_get_socket(c->mysql), .events = POLLIN};

    return poll(&fd, 1, 0) != 0;
}

/*
 * Makes c usable: connected, not closed by the server while it rested in the pool, and
 * pinged if another connection was lately found lost. So a connection that died during an
 * outage (all of them, after a restart or KILL) is replaced before the request's first
 * statement instead of failing it.
 */
static int ensure_connected(struct db_pool *p, struct db_conn *c, struct err *e)
{
    unsigned gen = atomic_load(&p->generation);

    /* The pool moved to another node: this connection follows (one writer at a time). */
    if (c->mysql && c->node != atomic_load(&p->node)) {
        close_conn(c);
        metrics_inc(METRIC_DB_RECONNECTS);
    }
    if (c->mysql && closed_by_server(c)) {
        close_conn(c);
        metrics_inc(METRIC_DB_RECONNECTS);
    }
    if (c->mysql && c->generation != gen) {
        round_trip_note(ROUND_TRIP_DB);
        if (mysql_ping(c->mysql)) {
            close_conn(c);
            metrics_inc(METRIC_DB_RECONNECTS);
        } else {
            c->generation = gen;
        }
    }
    if (!c->mysql)
        return connect_conn(p, c, e);
    return 0;
}

/*
 * A cluster's pool that runs on a later node asks, once a second, whether a node before it
 * is back (Synced again), and moves there: every instance so converges on the first node of
 * the list that takes work, and writes through one node again after a node rejoins or an
 * instance restarts. NEEDSWORK: the asking thread is a request's, which a node that hangs
 * delays by the connect time-out (2 s) once a second; a background prober would not.
 */
static void probe_earlier_nodes(struct db_pool *p)
{
    int node = atomic_load(&p->node);
    long long now = clock_monotonic_us();
    long long due = atomic_load(&p->next_probe_us);

    if (node == 0 || now < due ||
        !atomic_compare_exchange_strong(&p->next_probe_us, &due, now + PROBE_EVERY_US))
        return;
    for (int i = 0; i < node; i++) {
        struct db_conn probe = {.pool = p};
        struct err ignored;
        if (connect_node(p, &probe, i, &ignored))
            continue;
        close_conn(&probe);
        move_to(p, node, i);
        return;
    }
}

/*
 * Causal reads where they are needed: while the pool runs on a node that is not the first
 * (failed over: another instance may be back on the first, and its writes reach this node
 * a moment after it answered) and for a few seconds after the pool chose a node (its peers
 * may still write through the one it left). Then every read waits until the node has applied
 * what the cluster committed before it (wsrep_sync_wait = 1). Otherwise reads do not wait:
 * one node takes every write, and it sees its own. One statement when the mode changes.
 */
static int set_causal(struct db_pool *p, struct db_conn *c, struct err *e)
{
    bool want =
        atomic_load(&p->node) != 0 || clock_monotonic_us() < atomic_load(&p->causal_until_us);
    static const char on[] = "SET SESSION wsrep_sync_wait = 1";
    static const char off[] = "SET SESSION wsrep_sync_wait = 0";

    if (want == c->causal)
        return 0;
    round_trip_note(ROUND_TRIP_DB);
    if (mysql_real_query(c->mysql, want ? on : off, want ? sizeof(on) - 1 : sizeof(off) - 1))
        return conn_fail(c, "causal reads", e);
    c->causal = want;
    return 0;
}

int db_acquire(struct db_pool *p, struct db_conn **out, struct err *e)
{
    struct db_conn *c;

    pthread_mutex_lock(&p->lock);
    c = p->free_list;
    if (c && !handoff_waiting(&p->line))
        p->free_list = c->next_free;
    else
        c = handoff_wait(&p->line, &p->lock, ACQUIRE_WAIT_S * 1000);
    pthread_mutex_unlock(&p->lock);
    /* A literal -1 rather than err_set()'s (also -1): err_set() lives in another file, and the
     * analyser must see that 0 always comes with *out set. */
    if (!c) {
        err_set(e, ERR_UNAVAILABLE, "all %d database connections are busy", p->opt.size);
        return -1;
    }

    c->last_errno = 0;
    if (p->nnodes > 1)
        probe_earlier_nodes(p);
    if (ensure_connected(p, c, e) || (p->nnodes > 1 && set_causal(p, c, e))) {
        db_release(p, c);
        return -1;
    }
    c->fresh = true;
    *out = c;
    return 0;
}

void db_release(struct db_pool *p, struct db_conn *c)
{
    if (!c)
        return;
    if (c->in_tx)
        db_rollback(c);
    pthread_mutex_lock(&p->lock);
    if (!handoff_give(&p->line, c)) {
        c->next_free = p->free_list;
        p->free_list = c;
    }
    pthread_mutex_unlock(&p->lock);
}

int db_ping(struct db_pool *p, struct err *e)
{
    struct db_conn *c = NULL;

    if (db_acquire(p, &c, e))
        return -1;
    round_trip_note(ROUND_TRIP_DB);
    int rc = mysql_ping(c->mysql) ? conn_fail(c, "ping", e) : 0;
    db_release(p, c);
    return rc;
}

/* ---- transactions ---- */

/* A connection lost earlier in this checkout stays unusable until it is released. */
static int lost(struct err *e)
{
    return err_set(e, ERR_UNAVAILABLE, "the database connection was lost; retry");
}

/*
 * After the checkout's first statement failed (e set): reconnects c and says whether to run
 * the statement again. Only for a lost connection, and only when nothing can have run:
 * the server never got it (not reached, or CR_SERVER_GONE_ERROR: it could not be sent), or it
 * changes nothing (a read, a START TRANSACTION whose transaction died with the connection).
 * A write whose reply was lost (CR_SERVER_LOST) may have been committed, so it is left to
 * fail (503): the client's idempotency key settles it. closed_by_server() catches the dead
 * connections of an outage before this; this covers one that died in between.
 */
static bool retry_fresh(struct db_conn *c, bool reached, bool changes_nothing, struct err *e)
{
    unsigned no = c->last_errno;

    if (!is_connection_error(no) || (reached && !changes_nothing && no != CR_SERVER_GONE_ERROR))
        return false;
    if (c->mysql)
        close_conn(c);
    metrics_inc(METRIC_DB_RECONNECTS);
    return connect_conn(c->pool, c, e) == 0;
}

static int begin_with(struct db_conn *c, const char *const *statements, size_t n, struct err *e)
{
    bool fresh = c->fresh;

    c->fresh = false;
    if (!c->mysql)
        return lost(e);
    if (c->in_tx)
        BUG("nested transaction");
    for (size_t i = 0; i < n; i++) {
        round_trip_note(ROUND_TRIP_DB);
        if (!mysql_real_query(c->mysql, statements[i], strlen(statements[i])))
            continue;
        conn_fail(c, "begin", e);
        if (!fresh || !retry_fresh(c, true, true, e))
            return -1;
        fresh = false;
        i = (size_t)-1; /* once more from the first, on the new connection */
    }
    c->in_tx = true;
    return 0;
}

int db_begin(struct db_conn *c, struct err *e)
{
    static const char *const begin[] = {"START TRANSACTION"};

    return begin_with(c, begin, 1, e);
}

int db_begin_snapshot(struct db_conn *c, struct err *e)
{
    /* The session's READ COMMITTED would give each statement its own view; this transaction
     * alone reads one view, taken at its start. */
    static const char *const begin[] = {"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
                                        "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"};

    return begin_with(c, begin, 2, e);
}

int db_commit(struct db_conn *c, struct err *e)
{
    c->in_tx = false;
    if (!c->mysql)
        return lost(e);
    round_trip_note(ROUND_TRIP_DB);
    if (mysql_commit(c->mysql))
        return conn_fail(c, "commit", e);
    return 0;
}

void db_rollback(struct db_conn *c)
{
    c->in_tx = false;
    if (!c->mysql)
        return;
    round_trip_note(ROUND_TRIP_DB);
    if (mysql_rollback(c->mysql)) {
        struct err ignored;
        conn_fail(c, "rollback", &ignored);
    }
}

/* ---- statements ---- */

static MYSQL_STMT *prepared(struct db_conn *c, const char *sql, struct err *e)
{
    if (!c->mysql) {
        lost(e);
        return NULL;
    }
    for (int i = 0; i < c->nstmts; i++)
        if (c->stmts[i].sql == sql)
            return c->stmts[i].stmt;
    if (c->nstmts == MAX_STMTS)
        BUG("more distinct statements than the per-connection cache holds");
    MYSQL_STMT *st = mysql_stmt_init(c->mysql);
    if (!st) {
        conn_fail(c, "mysql_stmt_init", e);
        return NULL;
    }
    round_trip_note(ROUND_TRIP_DB_PREPARE);
    if (mysql_stmt_prepare(st, sql, (unsigned long)strlen(sql))) {
        stmt_fail(c, st, "prepare", e);
        mysql_stmt_close(st);
        return NULL;
    }
    bool update_max = true;
    mysql_stmt_attr_set(st, STMT_ATTR_UPDATE_MAX_LENGTH, &update_max);
    c->stmts[c->nstmts].sql = sql;
    c->stmts[c->nstmts].stmt = st;
    c->nstmts++;
    return st;
}

static void to_mysql_time(int64_t us, MYSQL_TIME *t)
{
    struct clock_civil cv;

    clock_to_civil(us, &cv);
    memset(t, 0, sizeof(*t));
    t->year = (unsigned)cv.year;
    t->month = (unsigned)cv.month;
    t->day = (unsigned)cv.day;
    t->hour = (unsigned)cv.hour;
    t->minute = (unsigned)cv.minute;
    t->second = (unsigned)cv.second;
    t->second_part = (unsigned long)cv.microsecond;
    t->time_type = MYSQL_TIMESTAMP_DATETIME;
}

static int64_t from_mysql_time(const MYSQL_TIME *t)
{
    struct clock_civil cv = {(int)t->year,   (int)t->month,  (int)t->day,        (int)t->hour,
                             (int)t->minute, (int)t->second, (int)t->second_part};
    return clock_from_civil(&cv);
}

static int bind_and_execute(struct db_conn *c, MYSQL_STMT *st, const struct db_val *params,
                            size_t n, struct err *e)
{
    MYSQL_BIND bind[MAX_PARAMS];
    MYSQL_TIME times[MAX_PARAMS];
    unsigned long lengths[MAX_PARAMS];

    if (n > MAX_PARAMS || n != mysql_stmt_param_count(st))
        BUG("statement parameter count does not match");
    memset(bind, 0, sizeof(bind[0]) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        switch (params[i].type) {
        case DB_NULL:
            bind[i].buffer_type = MYSQL_TYPE_NULL;
            break;
        case DB_INT:
            bind[i].buffer_type = MYSQL_TYPE_LONGLONG;
            /* The connector reads input buffers only; MYSQL_BIND has no const member. */
            bind[i].buffer = (void *)(uintptr_t)&params[i].i;
            break;
        case DB_STR:
            bind[i].buffer_type = MYSQL_TYPE_STRING;
            bind[i].buffer = (void *)(uintptr_t)params[i].s;
            lengths[i] = (unsigned long)params[i].len;
            bind[i].buffer_length = lengths[i];
            bind[i].length = &lengths[i];
            break;
        case DB_TIME:
            to_mysql_time(params[i].i, &times[i]);
            bind[i].buffer_type = MYSQL_TYPE_DATETIME;
            bind[i].buffer = &times[i];
            break;
        }
    }
    if (n && mysql_stmt_bind_param(st, bind))
        return stmt_fail(c, st, "bind", e);
    round_trip_note(ROUND_TRIP_DB);
    if (mysql_stmt_execute(st))
        return stmt_fail(c, st, "execute", e);
    return 0;
}

/* Prepares sql (once per connection) and runs it with params; on the checkout's first
 * statement, a lost connection is retried once on a new one where that is safe. */
static MYSQL_STMT *run_stmt(struct db_conn *c, const char *sql, const struct db_val *params,
                            size_t nparams, bool changes_nothing, struct err *e)
{
    bool fresh = c->fresh && !c->in_tx;

    c->fresh = false;
    for (;;) {
        c->last_errno = 0;
        MYSQL_STMT *st = prepared(c, sql, e);
        if (st && !bind_and_execute(c, st, params, nparams, e))
            return st;
        if (!fresh || !retry_fresh(c, st != NULL, changes_nothing, e))
            return NULL;
        fresh = false;
    }
}

int db_exec(struct db_conn *c, const char *sql, const struct db_val *params, size_t nparams,
            uint64_t *affected, int64_t *insert_id, struct err *e)
{
    MYSQL_STMT *st = run_stmt(c, sql, params, nparams, false, e);

    if (!st)
        return -1;
    if (affected)
        *affected = mysql_stmt_affected_rows(st);
    if (insert_id)
        *insert_id = (int64_t)mysql_stmt_insert_id(st);
    return 0;
}

static bool is_int_type(enum enum_field_types t)
{
    return t == MYSQL_TYPE_TINY || t == MYSQL_TYPE_SHORT || t == MYSQL_TYPE_LONG ||
           t == MYSQL_TYPE_LONGLONG || t == MYSQL_TYPE_INT24 || t == MYSQL_TYPE_YEAR;
}

static bool is_time_type(enum enum_field_types t)
{
    return t == MYSQL_TYPE_DATETIME || t == MYSQL_TYPE_TIMESTAMP || t == MYSQL_TYPE_DATE;
}

/* Members by size, largest first, so that MAX_COLS of them on the stack carry little padding. */
struct column {
    int64_t i;
    char *s;
    unsigned long len;
    MYSQL_TIME t;
    enum db_type type;
    my_bool is_null;
    my_bool error;
};

static void copy_row(struct column *cols, size_t ncols, struct db_val *out, struct arena *a)
{
    for (size_t j = 0; j < ncols; j++) {
        struct column *col = &cols[j];
        if (col->is_null) {
            out[j] = DB_NULLV;
        } else if (col->type == DB_INT) {
            out[j] = DB_INT(col->i);
        } else if (col->type == DB_TIME) {
            out[j] = DB_TIME(from_mysql_time(&col->t));
        } else {
            out[j].type = DB_STR;
            out[j].s = arena_memdup(a, col->s, col->len);
            out[j].len = col->len;
            out[j].i = 0;
        }
    }
}

static int fetch_all(struct db_conn *c, MYSQL_STMT *st, MYSQL_RES *meta, struct arena *a,
                     struct db_rows *out, struct err *e)
{
    size_t ncols = mysql_num_fields(meta);
    MYSQL_FIELD *fields = mysql_fetch_fields(meta);
    MYSQL_BIND bind[MAX_COLS];
    struct column cols[MAX_COLS];

    if (ncols > MAX_COLS)
        BUG("query returns more columns than db_query binds");
    memset(bind, 0, sizeof(bind));
    memset(cols, 0, sizeof(cols));
    for (size_t j = 0; j < ncols; j++) {
        bind[j].is_null = &cols[j].is_null;
        bind[j].error = &cols[j].error;
        bind[j].length = &cols[j].len;
        if (is_int_type(fields[j].type)) {
            cols[j].type = DB_INT;
            bind[j].buffer_type = MYSQL_TYPE_LONGLONG;
            bind[j].buffer = &cols[j].i;
        } else if (is_time_type(fields[j].type)) {
            cols[j].type = DB_TIME;
            bind[j].buffer_type = MYSQL_TYPE_DATETIME;
            bind[j].buffer = &cols[j].t;
        } else {
            cols[j].type = DB_STR;
            bind[j].buffer_type = MYSQL_TYPE_STRING;
            bind[j].buffer_length = fields[j].max_length + 1;
            cols[j].s = arena_alloc(a, bind[j].buffer_length);
            bind[j].buffer = cols[j].s;
        }
    }
    if (mysql_stmt_bind_result(st, bind))
        return stmt_fail(c, st, "bind result", e);
    out->ncols = ncols;
    out->nrows = (size_t)mysql_stmt_num_rows(st);
    out->cells = arena_calloc(a, out->nrows * ncols + 1, sizeof(struct db_val));
    for (size_t r = 0; r < out->nrows; r++) {
        int rc = mysql_stmt_fetch(st);
        if (rc == 1)
            return stmt_fail(c, st, "fetch", e);
        if (rc == MYSQL_NO_DATA) {
            out->nrows = r;
            break;
        }
        copy_row(cols, ncols, out->cells + r * ncols, a);
    }
    return 0;
}

int db_query(struct db_conn *c, const char *sql, const struct db_val *params, size_t nparams,
             struct arena *a, struct db_rows *out, struct err *e)
{
    int rc = -1;

    memset(out, 0, sizeof(*out));
    MYSQL_STMT *st = run_stmt(c, sql, params, nparams, true, e);
    if (!st)
        return -1;
    if (mysql_stmt_store_result(st))
        return stmt_fail(c, st, "store result", e);
    MYSQL_RES *meta = mysql_stmt_result_metadata(st);
    if (!meta) {
        rc = stmt_fail(c, st, "result metadata", e);
        goto out;
    }
    rc = fetch_all(c, st, meta, a, out, e);
    mysql_free_result(meta);
out:
    if (c->mysql)
        mysql_stmt_free_result(st);
    return rc;
}

/* Copies the result set st now holds into out (as db_query does) and frees it on the server's
 * side. */
static int store_set(struct db_conn *c, MYSQL_STMT *st, struct arena *a, struct db_rows *out,
                     struct err *e)
{
    MYSQL_RES *meta = NULL;
    int rc;

    if (mysql_stmt_store_result(st) || !(meta = mysql_stmt_result_metadata(st)))
        rc = stmt_fail(c, st, "call result", e);
    else
        rc = fetch_all(c, st, meta, a, out, e);
    if (meta)
        mysql_free_result(meta);
    if (c->mysql)
        mysql_stmt_free_result(st);
    return rc;
}

/* Reads every result set the CALL on st sends, keeping the first nsets; the last result is the
 * CALL's own status. */
static int read_sets(struct db_conn *c, MYSQL_STMT *st, struct arena *a, struct db_rows *sets,
                     size_t nsets, struct err *e)
{
    struct err ignored; /* after a failure, the one already in e stands */
    size_t stored = 0;
    int next = 0;
    int rc = 0;

    do {
        if (!c->mysql || !mysql_stmt_field_count(st))
            continue;
        if (stored < nsets && !rc) {
            rc = store_set(c, st, a, &sets[stored++], e);
        } else {
            mysql_stmt_store_result(st);
            mysql_stmt_free_result(st);
        }
    } while (c->mysql && (next = mysql_stmt_next_result(st)) == 0);
    if (c->mysql && next > 0)
        rc = stmt_fail(c, st, "next result", rc ? &ignored : e);
    return rc;
}

int db_call(struct db_conn *c, const char *sql, const struct db_val *params, size_t nparams,
            bool retry_safe, struct arena *a, struct db_rows *sets, size_t nsets, struct err *e)
{
    memset(sets, 0, nsets * sizeof(*sets));
    MYSQL_STMT *st = run_stmt(c, sql, params, nparams, retry_safe, e);
    if (!st)
        return -1;
    int rc = read_sets(c, st, a, sets, nsets, e);
    /* A procedure may begin or end the transaction: the server's status says which. */
    unsigned int status = 0;
    if (c->mysql && !mariadb_get_infov(c->mysql, MARIADB_CONNECTION_SERVER_STATUS, &status))
        c->in_tx = (status & SERVER_STATUS_IN_TRANS) != 0;
    return rc;
}

int db_exec_script(struct db_conn *c, const char *sql, struct err *e)
{
    int status;

    if (!c->mysql)
        return lost(e);
    if (mysql_set_server_option(c->mysql, MYSQL_OPTION_MULTI_STATEMENTS_ON))
        return conn_fail(c, "enable multi statements", e);
    round_trip_note(ROUND_TRIP_DB);
    if (mysql_real_query(c->mysql, sql, (unsigned long)strlen(sql)))
        return conn_fail(c, "script", e);
    do {
        MYSQL_RES *res = mysql_store_result(c->mysql);
        if (res)
            mysql_free_result(res);
        status = mysql_next_result(c->mysql);
        if (status > 0)
            return conn_fail(c, "script", e);
    } while (status == 0);
    if (mysql_set_server_option(c->mysql, MYSQL_OPTION_MULTI_STATEMENTS_OFF))
        return conn_fail(c, "disable multi statements", e);
    return 0;
}

unsigned db_last_errno(const struct db_conn *c)
{
    return c->last_errno;
}

bool db_last_was_retryable(const struct db_conn *c)
{
    return c->last_errno == ER_LOCK_DEADLOCK || c->last_errno == ER_LOCK_WAIT_TIMEOUT;
}

bool db_last_lost_connection(const struct db_conn *c)
{
    return is_connection_error(c->last_errno);
}

int64_t db_int(const struct db_rows *r, size_t row, size_t col)
{
    const struct db_val *v = db_cell(r, row, col);
    int64_t n = 0;

    if (v->type == DB_STR) {
        /* SUM() of BIGINT comes back as DECIMAL text: whole numbers only in this schema. */
        if (num_parse_i64_n(v->s, v->len, INT64_MIN, INT64_MAX, &n))
            BUG("integer column holds a non-integer");
        return n;
    }
    return v->i;
}

const char *db_str(const struct db_rows *r, size_t row, size_t col)
{
    const struct db_val *v = db_cell(r, row, col);
    return v->type == DB_STR ? v->s : "";
}

bool db_is_null(const struct db_rows *r, size_t row, size_t col)
{
    return db_cell(r, row, col)->type == DB_NULL;
}

int db_pool_node(struct db_pool *p)
{
    return atomic_load(&p->node);
}
