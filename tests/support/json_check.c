#include "json_check.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

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
