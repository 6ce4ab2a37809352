/*
 * Connections from accept to close (http/server_int.h): the per-instance and per-address caps
 * (a refusal is a canned 503 written at accept), the head deadline checked on each loop's
 * tick (a 408, then close), and the close that gives the caps their slot back.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <h2o.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "http/addr_count.h"
#include "http/loop_redis.h"
#include "http/server_int.h"

#include "core/banned.h"

static void on_conn_closed(void *data)
{
    struct conn *c = data;
    struct server *s = c->loop->s;

    h2o_linklist_unlink(&c->link);
    addr_count_give(s->per_addr, c->addr);
    atomic_fetch_sub(&s->conns, 1);
    free(c);
    server_maybe_quiet(s);
}

/* Reads and drops what the client sent, so that closing sends a FIN rather than a reset that
 * could destroy the answer before the client reads it. */
static void drain(int fd)
{
    char sink[4096];

    for (int i = 0; i < 16 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
        ;
}

/* Answers a connection that is not taken: over the instance's or its address's cap. */
static void refuse(struct server *s, int fd)
{
    ssize_t n = send(fd, s->refusal, s->refusal_len, MSG_NOSIGNAL | MSG_DONTWAIT);

    (void)n; /* a client that cannot take 300 bytes now gets the close alone */
    drain(fd);
    close(fd);
}

/*
 * Ends a connection from its loop without pulling h2o's state from under it: the 408 goes out
 * directly (the connection is between requests, nothing else is being written), and
 * shutdown() makes h2o read an end of stream and close the connection its own way.
 */
void conns_end(struct server *s, struct conn *c, bool late)
{
    if (c->closing)
        return;
    c->closing = true;
    if (late) {
        ssize_t n = send(c->fd, s->late, s->late_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)n;
    }
    drain(c->fd);
    shutdown(c->fd, SHUT_RDWR);
}

static void take(struct loop *l, int fd, const struct sockaddr_in *peer)
{
    struct server *s = l->s;
    uint32_t addr = ntohl(peer->sin_addr.s_addr);
    int on = 1;

    if (atomic_fetch_add(&s->conns, 1) >= s->max_connections) {
        atomic_fetch_sub(&s->conns, 1);
        refuse(s, fd);
        return;
    }
    if (addr_count_take(s->per_addr, addr, s->opt.max_conns_per_ip)) {
        atomic_fetch_sub(&s->conns, 1);
        refuse(s, fd);
        return;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK); /* the 408 and the refusal are sent without blocking */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    struct conn *c = xcalloc(1, sizeof(*c));
    c->loop = l;
    c->fd = fd;
    c->addr = addr;
    c->sock = h2o_evloop_socket_create(l->ctx.loop, fd, 0);
    c->sock->on_close.cb = on_conn_closed;
    c->sock->on_close.data = c;
    h2o_linklist_insert(&l->conns, &c->link);
    h2o_accept(&l->accept, c->sock);
}

void conns_on_accept(h2o_socket_t *listener, const char *err)
{
    struct loop *l = this_loop;

    (void)listener;
    if (err)
        return;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_in peer = {0};
        socklen_t len = sizeof(peer);
        int fd = accept(l->listen_fd, (struct sockaddr *)&peer, &len);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                log_error("accept: %s", strerror(errno));
            return; /* EAGAIN: another loop took it, or nothing is left */
        }
        take(l, fd, &peer);
    }
}

/* Every TICK_MS: a request whose first bytes came the head timeout ago and which is still not
 * whole gets 408 and its connection closes. Idle keep-alive is h2o's own timeout. */
void conns_on_tick(h2o_timeout_entry_t *entry)
{
    struct loop *l = H2O_STRUCT_FROM_MEMBER(struct loop, tick, entry);
    int64_t now = clock_monotonic_us();

    for (h2o_linklist_t *n = l->conns.next; n != &l->conns; n = n->next) {
        struct conn *c = H2O_STRUCT_FROM_MEMBER(struct conn, link, n);
        if (c->busy || c->sock->input->size == 0) {
            c->arriving_since_us = 0;
            continue;
        }
        if (!c->arriving_since_us)
            c->arriving_since_us = now;
        else if (now - c->arriving_since_us >= l->s->head_timeout_us)
            conns_end(l->s, c, true);
    }
    if (l->redis)
        loop_redis_expire(l->redis, now, LOOP_READ_DEADLINE_US);
    h2o_timeout_link(l->ctx.loop, &l->tick_timeout, &l->tick);
}
