#ifndef SHOPD_HTTP_ENGINE_ERRORS_H
#define SHOPD_HTTP_ENGINE_ERRORS_H

#include <stddef.h>

/*
 * The answers h2o gives on its own, before any handler runs: a Content-Length or a chunked body
 * past the limit (413), a broken chunked encoding or Content-Length (400), an Expect it does not
 * know (417, answered 400 here). h2o writes them as text/plain; API.md wants every error as a
 * problem with a contract code, so a response filter on the host's fallback path (where h2o binds a
 * request it answers itself) rewrites them into one. Only a head h2o cannot parse at all is still
 * answered with its plain "400 Bad Request": it is written to the socket directly, past every
 * filter.
 */

typedef struct st_h2o_hostconf_t h2o_hostconf_t;

/* Fills buf with a fresh request id for such an answer. */
typedef void engine_request_id_fn(void *ctx, char *buf, size_t size);

void engine_errors_register(h2o_hostconf_t *host, engine_request_id_fn *request_id, void *ctx);

#endif
