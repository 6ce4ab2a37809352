#include "json_check.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http_client.h"

json_t *parse_body(const char *body)
{
    json_t *j = json_loads(body, 0, NULL);

    if (!j)
        fail_msg("response is not JSON: %.200s", body);
    return j;
}

int64_t jint(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);

    if (!json_is_integer(v))
        fail_msg("'%s' is not an integer", key);
    return json_integer_value(v);
}

bool jbool(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);

    if (!json_is_boolean(v))
        fail_msg("'%s' is not a boolean", key);
    return json_is_true(v);
}

const char *jstr(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

long call_json_v(struct http_client *c, const char *base_url, const char *method, const char *token,
                 const char *body, json_t **out, const char *fmt, va_list ap)
{
    char path[512], url[600];
    struct http_result r;

    vsnprintf(path, sizeof(path), fmt, ap);
    snprintf(url, sizeof(url), "%s%s", base_url, path);
    int rc = http_do(c, method, url, token, body ? "application/json" : NULL, body,
                     body ? strlen(body) : 0, NULL, &r);
    long status = r.status;
    json_t *j = rc ? NULL : json_loads(r.body, 0, NULL);
    if (rc || (out && !j)) {
        char msg[1024];
        snprintf(msg, sizeof(msg), "%s %s: curl error %d, status %ld, body %.150s", method, path,
                 r.curl_error, r.status, r.body);
        http_result_free(&r);
        json_decref(j);
        fail_msg("%s", msg);
    }
    http_result_free(&r);
    if (out)
        *out = j;
    else
        json_decref(j);
    return status;
}
