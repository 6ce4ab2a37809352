#ifndef SHOPD_SERVICE_OPS_SVC_H
#define SHOPD_SERVICE_OPS_SVC_H

#include <stdbool.h>

/* Readiness of the parts the service depends on, for /readyz. Thread-safe. */

struct svc;

struct ops_readiness {
    bool mariadb_ok;
    bool redis_ok;
};

void ops_svc_readiness(struct svc *s, struct ops_readiness *out);

#endif
