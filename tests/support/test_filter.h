#ifndef SHOPD_TESTS_TEST_FILTER_H
#define SHOPD_TESTS_TEST_FILTER_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <cmocka.h>

/* Whether TEST_FILTER (a glob, as cmocka_set_test_filter takes it) selects one of the group's
 * tests: cmocka runs a group's setup, which starts servers, even when it selects none. */
bool test_filter_selects_any(const struct CMUnitTest *tests, size_t n);

#endif
