#include "http/req.h"

#include <microhttpd.h>

#include "core/err.h"

#include "core/banned.h"

const char *req_header(struct req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *req_query(struct req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

int64_t req_param(const struct req *r, int n)
{
    if (n >= r->match.nparams)
        BUG("route has fewer ids than the handler reads");
    return r->match.params[n];
}
