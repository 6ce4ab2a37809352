#ifndef SHOPD_HTTP_FRAMING_H
#define SHOPD_HTTP_FRAMING_H

/*
 * The framing headers of a request with a body, read as h2o cannot show them: two
 * Content-Length headers that disagree, or Content-Length beside Transfer-Encoding (request
 * smuggling behind a proxy that reads the other way), are refused.
 */

struct err;
typedef struct st_h2o_req_t h2o_req_t;

/* -1 with e (ERR_INVALID_INPUT) when h's head frames its body two ways; the caller answers 400
 * and closes the connection. */
int framing_reject(h2o_req_t *h, struct err *e);

#endif
