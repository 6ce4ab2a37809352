#include "http/framing.h"

#include <h2o.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"

#include "core/banned.h"

/*
 * picohttpparser, the HTTP/1 parser inside libh2o: the library exports it (h2o parses every
 * request head with it) but Debian's libh2o-evloop-dev ships no header for it. h2o keeps only
 * the first Content-Length of a head and never shows the framing headers to a handler, so the
 * head is parsed a second time, by the same parser, to see them all (framing_reject()).
 */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len,
                      const char **path, size_t *path_len, int *minor_version,
                      struct phr_header *headers, size_t *num_headers, size_t last_len);

/* Checks the framing fields of a head as picohttpparser split it. */
static int check_framing(const struct phr_header *fields, size_t nfields, struct err *e)
{
    const struct phr_header *length = NULL;
    bool chunked = false;

    for (size_t i = 0; i < nfields; i++) {
        const struct phr_header *f = &fields[i];
        if (f->name_len == 17 && !strncasecmp(f->name, "transfer-encoding", 17))
            chunked = true;
        if (f->name_len != 14 || strncasecmp(f->name, "content-length", 14))
            continue;
        if (length &&
            (length->value_len != f->value_len || memcmp(length->value, f->value, f->value_len)))
            return err_set(e, ERR_INVALID_INPUT, "conflicting Content-Length headers");
        length = f;
    }
    if (length && chunked)
        return err_set(e, ERR_INVALID_INPUT, "Content-Length together with Transfer-Encoding");
    return 0;
}

/*
 * Two Content-Length headers that disagree, or a Content-Length beside a Transfer-Encoding,
 * frame one message two ways (request smuggling behind a proxy that reads the other way):
 * 400, and the connection closes. h2o hides both headers from handlers, so the head is read
 * again from the connection's input, where it still starts.
 */
int framing_reject(h2o_req_t *h, struct err *e)
{
    struct phr_header fields[H2O_MAX_HEADERS];
    size_t nfields = H2O_MAX_HEADERS;
    size_t method_len = 0;
    size_t path_len = 0;
    const char *method = NULL;
    const char *path = NULL;
    int minor = 0;

    if (!h->entity.base)
        return 0; /* neither header came */
    h2o_socket_t *sock = h->conn->callbacks->get_socket(h->conn);
    if (phr_parse_request(sock->input->bytes, sock->input->size, &method, &method_len, &path,
                          &path_len, &minor, fields, &nfields, 0) <= 0)
        return 0;
    return check_framing(fields, nfields, e);
}
