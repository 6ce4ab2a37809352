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

/*
 * A detail cut to fit the buffer may end inside a UTF-8 sequence: drop that partial character,
 * so that the detail stays valid UTF-8 (and its problem+json valid JSON) when what was cut was.
 */
static void cut_on_boundary(char *s)
{
    size_t len = strlen(s);
    size_t i = len;

    /* Back over at most three continuation bytes (10xxxxxx) to the last lead byte. */
    while (i > 0 && len - i < 3 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
        i--;
    if (i == 0)
        return;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
    if (len - (i - 1) < need)
        s[i - 1] = '\0';
}

int err_set(struct err *e, enum err_code code, const char *fmt, ...)
{
    va_list ap;

    e->code = code;
    va_start(ap, fmt);
    int n = vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof(e->detail))
        cut_on_boundary(e->detail);
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
    cut_on_boundary(prefix);
    memcpy(old, e->detail, sizeof(old));
    int room = (int)(sizeof(e->detail) - strlen(prefix) - 3);
    snprintf(e->detail, sizeof(e->detail), "%s: %.*s", prefix, room > 0 ? room : 0, old);
    /* The old detail is the tail: a cut there may split a character. */
    cut_on_boundary(e->detail);
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
