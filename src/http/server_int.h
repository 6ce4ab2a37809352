#ifndef SHOPD_HTTP_SERVER_INT_H
#define SHOPD_HTTP_SERVER_INT_H

/*
 * The server's own state, shared by its three files and by nobody else: server.c (the loops,
 * the listener, start and stop), conns.c (a connection from accept to close: the caps, the
 * head deadline, the refusals written at accept) and exchange.c (one request from h2o to its
 * answer: admission on the loop, a read on the loop's Redis, a worker, the answer). A loop's
 * state is touched by its own thread only, except where a field says otherwise.
 */

#include <h2o.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/round_trips.h"
#include "http/req.h"
#include "http/resp.h"
#include "http/server.h"
#include "http/work_pool.h"

#define HEAD_TIMEOUT_S 10  /* API.md: the head within 10 s of its first byte */
#define IDLE_TIMEOUT_S 60  /* API.md: idle keep-alive closes after 60 s */
#define TICK_MS        250 /* how often a loop looks for late requests */
#define ACCEPT_BATCH   64  /* connections taken per wake of a listener */
#define FDS_KEPT       512 /* descriptors left for MariaDB, Redis, logs when sizing the cap */
/* A read waiting on a loop's Redis connection this long (plus up to a tick) gives it up: the
 * connection is dropped and its reads go to the workers. */
#define LOOP_READ_DEADLINE_US ((int64_t)200 * 1000)
#define LOOP_REDIS_RETRY_US                                               \
    ((int64_t)1000 * 1000) /* between attempts to connect a loop to Redis \
                            */

enum loop_stage { LOOP_SERVING, LOOP_DRAINING, LOOP_QUIT };

struct server;

/* One event loop: its thread, its h2o context and the connections it owns. */
struct loop {
    struct server *s;
    pthread_t thread;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept;
    h2o_socket_t *listener;
    int listen_fd;
    h2o_multithread_receiver_t answers;  /* exchanges coming back from the workers */
    h2o_multithread_receiver_t control;  /* server_stop()'s drain and quit */
    h2o_multithread_receiver_t handover; /* a Redis connection a worker made for the loop */
    h2o_multithread_message_t drain_msg, quit_msg;
    h2o_timeout_t tick_timeout;
    h2o_timeout_entry_t tick;
    h2o_linklist_t conns;
    _Atomic enum loop_stage stage;
    struct loop_redis *redis; /* NULL: no reads are served on the loop */
    bool redis_connecting;    /* a worker is connecting it */
    int64_t redis_tried_us;   /* when the last attempt ended */
};

/* A connection this process accepted; freed when h2o closes its socket (on_conn_closed). */
struct conn {
    h2o_linklist_t link;
    struct loop *loop;
    h2o_socket_t *sock;
    int fd;
    uint32_t addr;
    int64_t arriving_since_us; /* bytes of a request seen while idle (0: none) */
    bool busy;                 /* one of its requests is being served */
    bool closing;
};

/* One request from its arrival to its answer: the loop fills it, at most one worker runs its
 * handler, the loop answers it. */
struct exchange {
    struct req req;
    struct resp resp;
    struct err e;
    struct round_trips trips;
    h2o_req_t *h;
    struct conn *conn;
    struct loop *loop;
    struct work_item work;
    h2o_multithread_message_t done;
    bool connect_redis; /* after answering, the worker connects the loop to Redis */
};

/* A Redis connection made on a worker, on its way to the loop that asked for it. */
struct redis_handover {
    h2o_multithread_message_t msg;
    struct loop *loop;
    int fd;
    unsigned generation;
};

struct server {
    struct server_options opt;
    h2o_globalconf_t h2o;
    int listen_fd;
    struct loop *loops;
    int nloops;
    struct work_pool *workers;
    struct addr_count *per_addr;
    int max_connections;
    int64_t head_timeout_us;
    sem_t loops_ready; /* posted by each loop once it takes messages */
    atomic_int conns;
    atomic_int inflight;
    /* server_stop() sleeps on quiet (monotonic) until conns and inflight are both 0 or the
     * grace ends. */
    pthread_mutex_t quiet_lock;
    pthread_cond_t quiet;
    atomic_uint_least64_t next_request;
    unsigned instance_tag;
    char refusal[512]; /* the whole 503 answer of a connection refused at accept */
    size_t refusal_len;
    char late[512]; /* the whole 408 answer of a request that came too slowly */
    size_t late_len;
};

/* The loop the calling thread runs (NULL on other threads). */
extern _Thread_local struct loop *this_loop;

/* server.c: wakes server_stop() once conns and inflight are both 0 (call after either went
 * down); the reason phrase of a status line. */
void server_maybe_quiet(struct server *s);
const char *server_reason(int status);

/* conns.c: a listener's accepts, a loop's tick (late heads, the loop's Redis deadline), and
 * the end of a connection from its loop (with the 408 first when late). */
void conns_on_accept(h2o_socket_t *listener, const char *err);
void conns_on_tick(h2o_timeout_entry_t *entry);
void conns_end(struct server *s, struct conn *c, bool late);

/* exchange.c: h2o's request handler; the receivers of answers from the workers and of Redis
 * connections made for a loop; the loop Redis's reply callback; a request id for h2o's own
 * error answers. */
int exchange_on_request(h2o_handler_t *self, h2o_req_t *h);
void exchange_on_answers(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);
void exchange_on_handover(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);
struct redis_value;
void exchange_on_loop_read(void *cookie, const struct redis_value *reply);
void exchange_fresh_request_id(void *ctx, char *buf, size_t size);

#endif
