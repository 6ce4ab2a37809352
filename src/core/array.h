#ifndef SHOPD_CORE_ARRAY_H
#define SHOPD_CORE_ARRAY_H

/*
 * ARRAY_SIZE(a): the number of elements of the array a, as a size_t constant expression, so
 * that a count passed beside an array (db_exec(c, sql, p, ARRAY_SIZE(p), ...)) cannot drift
 * from it. a must be an array, not a pointer: given a pointer it compiles to a wrong count,
 * which GCC and Clang report as -Wsizeof-pointer-div (in -Wall, an error with -Werror).
 */
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
