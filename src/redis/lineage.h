#ifndef SHOPD_REDIS_LINEAGE_H
#define SHOPD_REDIS_LINEAGE_H

/*
 * Which master's data Redis holds, for a Redis run by Sentinels. Replication is asynchronous:
 * a replica promoted by a failover may lack the last writes the former master acknowledged
 * (an invalidation of a cached product or cart, a coupon gate's give-back, a sale counted in
 * the ranking, events in the stream). MariaDB decided every effect, so nothing is wrong there,
 * but Redis would go on answering with the older state until a TTL ran out.
 *
 * A master's replication id (INFO replication, master_replid) is new when a replica is
 * promoted and when a Redis starts without its data. "<prefix>redis:lineage" holds the id
 * the namespace's keys were written under. When the master's differs, one instance (a claim
 * with a lease, "<prefix>redis:lineage-claim") drops every key of the namespace except the
 * distributed locks' (fenced in MariaDB, and held by requests in flight), which leaves Redis
 * as a restart leaves it, a state every module recovers from: caches refill from MariaDB,
 * coupon gates are rebuilt, the ranking's days are rebuilt, and the outbox relay, finding no
 * event epoch, begins a new one and publishes again from its safe point. Then the marker
 * takes the new id. A graceful failover (nothing lost) costs the same: a cold cache.
 */

struct err;
struct redis_pool;

/*
 * Compares the master's lineage with the namespace's and, when they differ and no other
 * instance is on it, drops the former master's keys. 0 with *dropped the number of keys
 * dropped (0 when the lineage is the same, another instance reconciles, or the server is not
 * a master); -1 with e set when Redis failed.
 */
int redis_lineage_check(struct redis_pool *p, const char *prefix, long long *dropped,
                        struct err *e);

#endif
