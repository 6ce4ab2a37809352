#ifndef SHOPD_CORE_LOG_H
#define SHOPD_CORE_LOG_H

#include <stddef.h>

/*
 * Line-oriented logging to stderr. Each call writes one whole line with one write(2), so lines
 * from many threads and processes never interleave. Messages follow git's style: lower case,
 * no final period. Thread-safe.
 */

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/*
 * Copies len bytes of src into dst (size bytes, always NUL-terminated) for a log line: control
 * bytes, DEL and bytes >= 0x80 become \xHH, '"' and '\\' become \" and \\, so that a field a
 * client chose can neither end the line nor its quotes. A field cut for room stops between
 * escapes. 4 * len + 1 bytes always suffice. Returns dst.
 */
char *log_escape(char *dst, size_t size, const char *src, size_t len);

/* Writes an already formatted line (a newline is added); used by the access log. */
void log_line(const char *line, int len);

#endif
