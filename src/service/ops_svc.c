#include "service/ops_svc.h"

#include "core/err.h"
#include "redis/redis_pool.h"
#include "repo/db.h"
#include "service/svc.h"

#include "core/banned.h"

void ops_svc_readiness(struct svc *s, struct ops_readiness *out)
{
    struct err e;

    out->mariadb_ok = db_ping(s->db, &e) == 0;
    out->redis_ok = redis_ping(s->redis, &e) == 0;
}
