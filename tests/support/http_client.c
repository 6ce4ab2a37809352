#include "http_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

struct grow {
    char *data;
    size_t len;
};

static size_t collect(char *ptr, size_t size, size_t n, void *arg)
{
    struct grow *g = arg;
    size_t add = size * n;
    char *data = realloc(g->data, g->len + add + 1);

    if (!data)
        return 0;
    memcpy(data + g->len, ptr, add);
    g->data = data;
    g->len += add;
    g->data[g->len] = '\0';
    return add;
}

void http_client_init(struct http_client *c)
{
    c->curl = curl_easy_init();
}

void http_client_release(struct http_client *c)
{
    if (c->curl)
        curl_easy_cleanup(c->curl);
    c->curl = NULL;
}

int http_do(struct http_client *c, const char *method, const char *url, const char *token,
            const char *content_type, const char *body, size_t body_len, const char *extra_header,
            struct http_result *out)
{
    CURL *curl = c->curl;
    struct curl_slist *headers = NULL;
    struct grow b = {NULL, 0}, h = {NULL, 0};
    char line[8192];

    memset(out, 0, sizeof(*out));
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &h);
    if (token) {
        snprintf(line, sizeof(line), "Authorization: Bearer %s", token);
        headers = curl_slist_append(headers, line);
    }
    if (content_type) {
        snprintf(line, sizeof(line), "Content-Type: %s", content_type);
        headers = curl_slist_append(headers, line);
    }
    if (extra_header)
        headers = curl_slist_append(headers, extra_header);
    headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    if (body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)body_len);
    }
    CURLcode rc = curl_easy_perform(curl);
    curl_slist_free_all(headers);
    out->curl_error = (int)rc;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out->status);
    out->body = b.data ? b.data : calloc(1, 1);
    out->len = b.len;
    out->headers = h.data ? h.data : calloc(1, 1);
    return rc == CURLE_OK ? 0 : -1;
}

int http_once(const char *method, const char *url, const char *token, const char *body,
              const char *extra_header, struct http_result *out)
{
    struct http_client c;

    http_client_init(&c);
    int rc = http_do(&c, method, url, token, body ? "application/json" : NULL, body,
                     body ? strlen(body) : 0, extra_header, out);
    http_client_release(&c);
    return rc;
}

const char *http_header(const struct http_result *r, const char *name, char *buf, size_t size)
{
    size_t n = strlen(name);

    for (const char *p = r->headers; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > n && !strncasecmp(p, name, n) && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            size_t vlen = (size_t)(p + len - v);
            while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == ' '))
                vlen--;
            if (vlen >= size)
                vlen = size - 1;
            memcpy(buf, v, vlen);
            buf[vlen] = '\0';
            return buf;
        }
        p = eol ? eol + 1 : p + len;
    }
    return NULL;
}

void http_result_free(struct http_result *r)
{
    free(r->body);
    free(r->headers);
    r->body = r->headers = NULL;
}
