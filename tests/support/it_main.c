#include "it_main.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "harness.h"
#include "http_client.h"
#include "json_check.h"

struct http_client it_client;

static void release_client(void)
{
    http_client_release(&it_client);
}

int it_main_begin(void)
{
    if (getenv("TEST_FILTER"))
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    if (!getenv("SHOPD_TEST_DB") || !*getenv("SHOPD_TEST_DB")) {
        /* The line scripts/test.sh counts: a suite that could not run is not a pass. */
        printf("SHOPD_TEST_DB is not set: the integration tests cannot run\n");
        printf("[  FAILED  ] 1 test(s), listed below:\n[  FAILED  ] integration suite\n");
        return -1;
    }
    http_client_init(&it_client);
    atexit(release_client);
    return 0;
}

bool it_filter_selects_any(const struct CMUnitTest *tests, size_t n)
{
    const char *filter = getenv("TEST_FILTER");

    for (size_t i = 0; i < n; i++)
        if (!filter || !fnmatch(filter, tests[i].name, 0))
            return true;
    return false;
}

long it_call(const struct harness_server *s, const char *method, const char *token,
             const char *body, struct json_t **out, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    long status = call_json_v(&it_client, s->url, method, token, body, out, fmt, ap);
    va_end(ap);
    return status;
}
