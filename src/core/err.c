#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/banned.h"

static const struct {
    const char *name;
    int status;
    const char *title;
} table[] = {
#define X(name, status, title) {#name, status, title},
#include "core/err_codes.def"
#undef X
};

int err_set(struct err *e, enum err_code code, const char *fmt, ...)
{
    va_list ap;

    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
    va_end(ap);
    return -1;
}

int err_prefix(struct err *e, const char *fmt, ...)
{
    char prefix[96];
    char old[sizeof(e->detail)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, e->detail, sizeof(old));
    int room = (int)(sizeof(e->detail) - strlen(prefix) - 3);
    snprintf(e->detail, sizeof(e->detail), "%s: %.*s", prefix, room > 0 ? room : 0, old);
    return -1;
}

void err_clear(struct err *e)
{
    e->code = ERR_NONE;
    e->detail[0] = '\0';
}

int err_status(enum err_code code)
{
    return code < ERR_CODE_COUNT ? table[code].status : 500;
}

const char *err_name(enum err_code code)
{
    return code < ERR_CODE_COUNT ? table[code].name : "INTERNAL";
}

const char *err_title(enum err_code code)
{
    return code < ERR_CODE_COUNT ? table[code].title : "Internal Server Error";
}

enum err_code err_from_name(const char *name)
{
    for (int i = 0; i < ERR_CODE_COUNT; i++)
        if (!strcmp(table[i].name, name))
            return (enum err_code)i;
    return ERR_CODE_COUNT;
}

void err_bug(const char *file, int line, const char *msg)
{
    fprintf(stderr, "BUG: %s:%d: %s\n", file, line, msg);
    abort();
}
