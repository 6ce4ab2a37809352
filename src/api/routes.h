#ifndef SHOPD_API_ROUTES_H
#define SHOPD_API_ROUTES_H

#include <stddef.h>

/* The route table: the one place to read the API from. */

struct route;

extern const struct route *const routes;
extern const size_t routes_count;

/* The routes' patterns prefixed by method, for the metrics' labels ("GET /healthz"). */
const char *const *routes_names(void);

/* The data platform's (`shopd platform --listen`): /healthz and /metrics. */
extern const struct route *const platform_routes;
extern const size_t platform_routes_count;
const char *const *platform_routes_names(void);

#endif
