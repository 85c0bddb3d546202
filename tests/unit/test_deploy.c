#include "tests/unit/wd_test.h"
#include "engine/deploy/deploy.h"
#include "engine/base/error.h"

#include <errno.h>
#include <string.h>

/* WEAVER_DOCKER_RESTART_BACKOFF_MS: "MIN,MAX" in milliseconds, or unset for the defaults. */
static void test_restart_backoff_parse(void **state)
{
    (void)state;
    int64_t lo = -1, hi = -1;
    struct wd_error *err = NULL;
    assert_int_equal(wd_restart_backoff_parse(NULL, &lo, &hi, &err), 0);
    assert_true(lo == 100 && hi == 10000);
    assert_int_equal(wd_restart_backoff_parse("", &lo, &hi, &err), 0);
    assert_true(lo == 100 && hi == 10000);
    assert_int_equal(wd_restart_backoff_parse("10,50", &lo, &hi, &err), 0);
    assert_true(lo == 10 && hi == 50);
    assert_int_equal(wd_restart_backoff_parse("1,1", &lo, &hi, &err), 0);
    assert_true(lo == 1 && hi == 1);
    assert_int_equal(wd_restart_backoff_parse("5,3600000", &lo, &hi, &err), 0);
    assert_true(lo == 5 && hi == 3600000);
    assert_null(err);

    static const char *const bad[] = {
        "10",         "10,",       ",10",     "0,10",       "50,10",       "10,3600001",
        "-1,10",      "10,-1",     " 10,20",  "10, 20",     "+10,20",      "10,20,30",
        "10,20x",     "a,b",       "10;20",   "99999999999999999999,1", "10,99999999999999999999",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lo = hi = -1;
        assert_int_equal(wd_restart_backoff_parse(bad[i], &lo, &hi, &err), -EINVAL);
        assert_non_null(err);
        assert_non_null(strstr(err->msg, "WEAVER_DOCKER_RESTART_BACKOFF_MS"));
        assert_non_null(strstr(err->msg, bad[i]));
        assert_true(lo == 100 && hi == 10000); /* the defaults stay on an error */
        wd_err_free(&err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_restart_backoff_parse)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
