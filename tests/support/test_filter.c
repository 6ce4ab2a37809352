#include "test_filter.h"

#include <fnmatch.h>
#include <stdlib.h>

bool test_filter_selects_any(const struct CMUnitTest *tests, size_t n)
{
    const char *filter = getenv("TEST_FILTER");

    for (size_t i = 0; i < n; i++)
        if (!filter || !fnmatch(filter, tests[i].name, 0))
            return true;
    return false;
}
