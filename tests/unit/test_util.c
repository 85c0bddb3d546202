#include "tests/unit/wd_test.h"
#include "engine/base/error.h"
#include "engine/base/util.h"

#include <errno.h>
#include <string.h>

static void test_buf_cap(void **state)
{
    (void)state;
    struct wd_buf b = {.max = 4};
    assert_int_equal(wd_buf_append(&b, "abc", 3), 0);
    assert_int_equal(wd_buf_append(&b, "de", 2), -EMSGSIZE);
    assert_int_equal(b.len, 3);
    wd_buf_consume(&b, 1);
    assert_string_equal((char *)b.data, "bc");
    wd_buf_free(&b);
}

static void test_err_wrap(void **state)
{
    (void)state;
    struct wd_error *err = NULL;
    assert_int_equal(wd_err(&err, ENOENT, "open %s", "x"), -ENOENT);
    assert_int_equal(wd_err(&err, EINVAL, "second"), -ENOENT); /* first error wins */
    assert_int_equal(wd_err_wrap(&err, "load"), -ENOENT);
    assert_string_equal(err->msg, "load: open x");
    wd_err_free(&err);
    assert_null(err);
}

static void test_hex(void **state)
{
    (void)state;
    uint8_t raw[3] = {0x00, 0xab, 0x7f}, back[3];
    char s[7];
    wd_hex(raw, 3, s);
    assert_string_equal(s, "00ab7f");
    assert_int_equal(wd_unhex(s, back, 3), 3);
    assert_memory_equal(raw, back, 3);
    assert_int_equal(wd_unhex("0g", back, 3), -1);
    assert_int_equal(wd_unhex("abcdef01", back, 3), -1);
}

/* Two groups "a/x/Foo" and "b/x/Foo" both slug to "x-foo": they must not share a container
 * name (they removed each other's containers in a loop). */
static void test_unique_names(void **state)
{
    (void)state;
    char *v[] = {xstrdup("x-foo"), xstrdup("shop-cart"), xstrdup("x-foo"), xstrdup("x-foo-2"),
                 xstrdup("x-foo")};
    assert_int_equal(wd_unique_names(v, 5), 2);
    assert_string_equal(v[0], "x-foo");
    assert_string_equal(v[1], "shop-cart");
    assert_string_equal(v[2], "x-foo-3"); /* x-foo-2 is taken by a later name */
    assert_string_equal(v[3], "x-foo-2");
    assert_string_equal(v[4], "x-foo-4");
    for (size_t i = 0; i < 5; i++)
        free(v[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_unique_names),
                                       cmocka_unit_test(test_buf_cap),
                                       cmocka_unit_test(test_err_wrap), cmocka_unit_test(test_hex)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
