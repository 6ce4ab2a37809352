#ifndef SHOPD_CORE_ERR_H
#define SHOPD_CORE_ERR_H

/*
 * The error every fallible call that crosses a layer fills in: a code from the contract and a
 * human-readable detail. The fixed buffer means the error path never allocates. Functions return
 * -1 after err_set(); callers may add context with err_prefix() but never change the code.
 */

enum err_code {
#define X(name, status, title) ERR_##name,
#include "core/err_codes.def"
#undef X
    ERR_CODE_COUNT
};

struct err {
    enum err_code code;
    char detail[192];
};

/* Sets code and a printf-style detail (truncated to fit); always returns -1. */
int err_set(struct err *e, enum err_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Puts "prefix: " before the detail, keeping the code; returns -1. */
int err_prefix(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void err_clear(struct err *e);

int err_status(enum err_code code);
const char *err_name(enum err_code code);
const char *err_title(enum err_code code);

/* Maps a contract code name ("OUT_OF_STOCK") back to the enum; ERR_CODE_COUNT if unknown. */
enum err_code err_from_name(const char *name);

/*
 * BUG() is for paths that must never run: it logs where and aborts.
 */
#define BUG(msg) err_bug(__FILE__, __LINE__, (msg))
_Noreturn void err_bug(const char *file, int line, const char *msg);

#endif
