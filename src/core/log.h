#ifndef SHOPD_CORE_LOG_H
#define SHOPD_CORE_LOG_H

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

/* Writes an already formatted line (a newline is added); used by the access log. */
void log_line(const char *line, int len);

#endif
