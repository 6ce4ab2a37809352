#ifndef SHOPD_API_API_COMMON_H
#define SHOPD_API_API_COMMON_H

#include <stdint.h>

/*
 * What every handler shares: the service environment, query parameters with their ranges,
 * authorisation for a user named in a body, and sending an idempotent response.
 */

struct err;
struct idem_request;
struct json_keyed;
struct json_spec;
struct idem_response;
struct req;
struct resp;
struct svc;

/* The service environment the server was started with. */
struct svc *api_svc(struct req *r);

/* The integer query parameter name in [min, max], or dflt when absent. */
int api_query_int(struct req *r, const char *name, int64_t dflt, int64_t min, int64_t max,
                  int64_t *out, struct err *e);

/* The "cursor" query parameter as the id to continue below; 0 when absent. */
int api_query_cursor(struct req *r, int64_t *before_id, struct err *e);

/* The token must be for user_id, or an admin's (ERR_FORBIDDEN otherwise). */
int api_require_user(struct req *r, int64_t user_id, struct err *e);

/* Decodes a keyed write's body by spec into out, and from the same parse what its
 * idempotency key needs (json_decode_keyed): the body is parsed once. */
int api_decode_keyed(struct req *r, const struct json_spec *spec, void *out,
                     struct json_keyed *body, struct err *e);

/* Fills idem for the request (idem_svc_prepare with its Idempotency-Key header and the body
 * api_decode_keyed read) and gives it the renderer of the problems that idem_svc stores. */
int api_idem_prepare(struct req *r, int64_t user_id, const struct json_keyed *body,
                     struct idem_request *idem, struct err *e);

/* Sends a stored or fresh idempotent response, marking a replay; a stored refusal (≥ 400) as
 * application/problem+json. */
void api_send_idem(struct resp *resp, const struct idem_response *out);

#endif
