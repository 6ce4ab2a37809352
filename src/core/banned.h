#ifndef SHOPD_CORE_BANNED_H
#define SHOPD_CORE_BANNED_H

/*
 * Functions that are too easy to misuse. Included last by every .c file, so that a use anywhere
 * in our code fails to compile (git's banned.h). Use snprintf, strtoll with range checks and
 * clock_format_rfc3339() instead.
 */

#define BANNED(func) sorry_##func##_is_a_banned_function

/* The macros take the banned functions' own (lower-case) names: that is how they ban them. */
/* NOLINTBEGIN(readability-identifier-naming) */

#undef strcpy
#define strcpy(x, y) BANNED(strcpy)
#undef strcat
#define strcat(x, y) BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) BANNED(strncpy)
#undef sprintf
#define sprintf(...) BANNED(sprintf)
#undef strtok
#define strtok(x, y) BANNED(strtok)
#undef gmtime
#define gmtime(t) BANNED(gmtime)
#undef localtime
#define localtime(t) BANNED(localtime)
#undef atoi
#define atoi(x) BANNED(atoi)
#undef atol
#define atol(x) BANNED(atol)
/* NOLINTEND(readability-identifier-naming) */

#endif
