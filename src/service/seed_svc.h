#ifndef SHOPD_SERVICE_SEED_SVC_H
#define SHOPD_SERVICE_SEED_SVC_H

/*
 * Demo data for `shopd seed` and `make run`: a few users with a charged balance and a few
 * products. Idempotent: a demo user or product that exists already (by name) is left alone.
 */

struct err;
struct svc;

int seed_svc_run(struct svc *s, int *created, struct err *e);

#endif
