#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "core/clock.h"

#include "core/banned.h"

static enum log_level min_level = LOG_INFO;

void log_set_level(enum log_level level)
{
    min_level = level;
}

char *log_escape(char *dst, size_t size, const char *src, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    if (!size)
        return dst;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)src[i];
        char esc[4];
        size_t n = 0;

        if (ch == '"' || ch == '\\') {
            esc[n++] = '\\';
            esc[n++] = (char)ch;
        } else if (ch < 0x20 || ch >= 0x7f) {
            esc[n++] = '\\';
            esc[n++] = 'x';
            esc[n++] = hex[ch >> 4];
            esc[n++] = hex[ch & 15];
        } else {
            esc[n++] = (char)ch;
        }
        if (o + n >= size)
            break;
        for (size_t k = 0; k < n; k++)
            dst[o++] = esc[k];
    }
    dst[o] = '\0';
    return dst;
}

void log_line(const char *line, int len)
{
    char buf[2048];

    if (len < 0)
        return;
    if ((size_t)len >= sizeof(buf))
        len = (int)sizeof(buf) - 1;
    for (int i = 0; i < len; i++)
        buf[i] = line[i];
    buf[len] = '\n';
    /* A failed log write has nowhere better to go; the request goes on. */
    if (write(STDERR_FILENO, buf, (size_t)len + 1) < 0)
        return;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    char ts[CLOCK_RFC3339_LEN];
    char buf[1536];
    va_list ap;

    if (level < min_level)
        return;
    clock_format_rfc3339(clock_now_us(), ts, sizeof(ts));
    int n = snprintf(buf, sizeof(buf), "%s %s pid=%d ", ts, names[level], (int)getpid());
    if (n < 0 || (size_t)n >= sizeof(buf))
        return;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    n += m;
    if ((size_t)n >= sizeof(buf))
        n = (int)sizeof(buf) - 1; /* truncated: still one line */
    log_line(buf, n);
}
