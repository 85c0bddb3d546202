/* tests/unit/test_logfmt.c - weaver's pretty log format (weaver-protocol.md §7.5) and the JSON
 * form. Runs with TZ=UTC. */
#include "tests/unit/wd_test.h"
#include "engine/weaver/logfmt.h"
#include "engine/base/util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* 2023-09-21 10:07:31 UTC */
#define T0 ((int64_t)1695290851 * 1000000)

static const char *const id7[] = {"id", "7"};

static struct wd_log_entry cart_entry(void)
{
    return (struct wd_log_entry){
        .app = "shop",
        .version = "0b4e4d6f-5d8f-4b4b-9a55-1d1e3c0f7a11",
        .component = "example.com/shop/Cart",
        /* the doc does not give the full weavelet id; this one hashes to colour 110 as its
         * golden line requires (the colour is the hash of the full id, not of the 8 shown) */
        .node = "6f1ed002-2c2b-4bd6-a1e7-9d2f0e6c3f0c",
        .time_micros = T0 + 733831,
        .level = "info",
        .file = "/home/u/shop/cart.go",
        .line = 42,
        .msg = "added item",
        .attrs = id7,
        .nattrs = 2,
    };
}

static struct wd_log_entry stdout_entry(void)
{
    return (struct wd_log_entry){
        .component = "stdout",
        .node = "6f1ed002",
        .time_micros = T0 + 801002,
        .level = "stdout",
        .file = "",
        .line = -1,
        .msg = "server started",
    };
}

/* Format e with f into a fresh string; caller frees. */
static char *fmt(struct wd_logfmt *f, const struct wd_log_entry *e)
{
    struct wd_buf b = {0};
    wd_logfmt_format(f, e, &b);
    return wd_buf_steal_str(&b);
}

static void test_golden_plain(void **state)
{
    (void)state;
    struct wd_logfmt *f = wd_logfmt_new(false);
    struct wd_log_entry a = cart_entry(), b = stdout_entry();
    char *s1 = fmt(f, &a), *s2 = fmt(f, &b);
    assert_string_equal(s1, "I0921 10:07:31.733831 shop.Cart            6f1ed002 cart.go:42       "
                            "                  │ added item id=\"7\"");
    assert_string_equal(s2, "S0921 10:07:31.801002 stdout               6f1ed002                 "
                            "     │ server started");
    free(s1);
    free(s2);
    wd_logfmt_free(f);
}

static void test_golden_color(void **state)
{
    (void)state;
    struct wd_logfmt *f = wd_logfmt_new(true);
    struct wd_log_entry a = cart_entry(), b = stdout_entry();
    char *s1 = fmt(f, &a), *s2 = fmt(f, &b);
    assert_string_equal(
        s1, "\x1b[0mI\x1b[0m\x1b[0m0921 10:07:31.733831\x1b[0m \x1b[38;5;163mshop.Cart           "
            "\x1b[0m \x1b[38;5;110m6f1ed002\x1b[0m \x1b[38;5;25mcart.go:42\x1b[0m          "
            "\x1b[38;5;245m │ \x1b[0madded item \x1b[38;5;245mid=\x1b[0m\x1b[38;5;65m\"7\"\x1b[0m");
    /* Same second as the previous line: "MMDD HH:MM:SS." dim, the fraction in the level colour. */
    assert_non_null(strstr(s2, "\x1b[0mS\x1b[0m\x1b[38;5;245m0921 10:07:31.\x1b[0m\x1b[0m801002"
                               "\x1b[0m "));
    free(s1);
    free(s2);
    /* A later second is drawn whole again. */
    struct wd_log_entry c = stdout_entry();
    c.time_micros = T0 + 1000000;
    char *s3 = fmt(f, &c);
    assert_non_null(strstr(s3, "\x1b[0mS\x1b[0m\x1b[0m0921 10:07:32.000000\x1b[0m "));
    free(s3);
    wd_logfmt_free(f);
}

static void test_error_colors(void **state)
{
    (void)state;
    struct wd_logfmt *f = wd_logfmt_new(true);
    static const char *const attrs[] = {"err", "boom", "component", "example.com/shop/Cart",
                                        "serviceweaver/system", ""};
    struct wd_log_entry e = cart_entry();
    e.level = "ERROR";
    e.attrs = attrs;
    e.nattrs = 6;
    char *s = fmt(f, &e);
    const char *head = "\x1b[38;5;9mE\x1b[0m\x1b[38;5;9m0921 10:07:31.733831\x1b[0m ";
    assert_memory_equal(s, head, strlen(head));
    /* the value of "component" is hashed as a whole (here it is the full name) */
    assert_non_null(strstr(s, " \x1b[38;5;245mcomponent=\x1b[0m\x1b[38;5;"));
    assert_non_null(strstr(s, " \x1b[38;5;245merr=\x1b[0m\x1b[38;5;9m\"boom\"\x1b[0m"));
    assert_null(strstr(s, "serviceweaver/system"));
    /* sorted: component before err */
    assert_true(strstr(s, "component=") < strstr(s, "err="));
    free(s);
    wd_logfmt_free(f);
}

static void test_widths_grow(void **state)
{
    (void)state;
    struct wd_logfmt *f = wd_logfmt_new(false);
    struct wd_log_entry e = stdout_entry();
    e.component = "example.com/averyveryverylong/ComponentName";
    e.node = "";
    e.level = "";
    e.file = "a/b/some_really_long_file_name.go";
    e.line = 12345;
    char *s1 = fmt(f, &e);
    /* no node: one space between component and source; an empty level is a space. The source
     * is padded to 35 + len("\x1b[38;5;25m") + len(reset) = 49 although colours are off. */
    char *w1 = xasprintf(" 0921 10:07:31.801002 averyveryverylong.ComponentName "
                         "some_really_long_file_name.go:12345%*s │ server started",
                         49 - 35, "");
    assert_string_equal(s1, w1);
    e.component = "x";
    e.file = "";
    char *s2 = fmt(f, &e);
    /* widths stay grown: component 31, source 35 */
    char *w2 = xasprintf(" 0921 10:07:31.801002 x%*s %*s │ server started", 30, "", 35, "");
    assert_string_equal(s2, w2);
    free(w1);
    free(w2);
    free(s1);
    free(s2);
    wd_logfmt_free(f);
}

static void test_quote(void **state)
{
    (void)state;
    struct wd_logfmt *f = wd_logfmt_new(false);
    static const char *const attrs[] = {
        "b", "tab\there \"q\" back\\slash nl\n cr\r bell\a nul\x01 del\x7f",
        "a", ("bad\xff utf8 \xc3\xa9 nbsp\xc2\xa0 emoji\xf0\x9f\x98\x80 pua\xee\x80\x80 "
              "p15\xf3\xb0\x80\x80 surrogate\xed\xa0\x80 overlong\xc0\xaf"),
        "odd"};
    struct wd_log_entry e = stdout_entry();
    e.attrs = attrs;
    e.nattrs = 5;
    char *s = fmt(f, &e);
    const char *want = "server started a=\"bad\\xff utf8 \xc3\xa9 nbsp\\u00a0 emoji\xf0\x9f\x98\x80 "
                       "pua\\ue000 p15\\U000f0000 surrogate\\xed\\xa0\\x80 overlong\\xc0\\xaf\" "
                       "b=\"tab\\there \\\"q\\\" back\\\\slash nl\\n cr\\r bell\\a nul\\x01 "
                       "del\\x7f\"";
    const char *msg = strstr(s, "server started");
    assert_non_null(msg);
    assert_string_equal(msg, want);
    free(s);
    wd_logfmt_free(f);
}

static void test_shorten(void **state)
{
    (void)state;
    struct wd_logfmt *f = wd_logfmt_new(false);
    struct wd_log_entry e = {.component = "github.com/ServiceWeaver/weaver/Main",
                             .node = "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3"
                                     "\xa9\xc3\xa9",
                             .time_micros = 0,
                             .level = "debug",
                             .file = "dir/",
                             .line = 0,
                             .msg = "m"};
    char *s = fmt(f, &e);
    /* 9 runes shortened to 8; the node keeps padding counted in runes; Base("dir/") = "dir" */
    assert_string_equal(s, "D0101 00:00:00.000000 weaver.Main          "
                           "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9 "
                           "dir:0                              │ m");
    free(s);
    /* NULL fields read as "" and a negative time floors */
    struct wd_log_entry z = {.time_micros = -1, .line = -1};
    s = fmt(f, &z);
    char *want = xasprintf(" 1231 23:59:59.999999 %*s %*s │ ", 20, "", 20, "");
    assert_string_equal(s, want);
    free(want);
    free(s);
    wd_logfmt_free(f);
}

static void test_json(void **state)
{
    (void)state;
    static const char *const attrs[] = {"k", "v\"1\n", "k", "dup", "serviceweaver/system", "",
                                        "bad", "\xff"};
    struct wd_log_entry e = cart_entry();
    e.attrs = attrs;
    e.nattrs = 8;
    struct wd_buf b = {0};
    wd_logfmt_json(&e, &b);
    assert_string_equal((char *)b.data,
                        "{\"time\":\"2023-09-21T10:07:31.733831Z\",\"level\":\"info\",\"app\":"
                        "\"shop\",\"deployment\":\"0b4e4d6f-5d8f-4b4b-9a55-1d1e3c0f7a11\","
                        "\"component\":\"example.com/shop/Cart\",\"weavelet\":"
                        "\"6f1ed002-2c2b-4bd6-a1e7-9d2f0e6c3f0c\",\"file\":"
                        "\"/home/u/shop/cart.go\",\"line\":42,\"msg\":\"added item\",\"attrs\":{"
                        "\"k\":\"v\\\"1\\n\",\"serviceweaver/system\":\"\",\"bad\":\"\\ufffd\"}}");
    wd_buf_free(&b);
    assert_true(wd_log_entry_is_system(&e));
    struct wd_log_entry c = cart_entry();
    assert_false(wd_log_entry_is_system(&c));
    struct wd_log_entry z = {.line = -1};
    wd_logfmt_json(&z, &b);
    assert_string_equal((char *)b.data,
                        "{\"time\":\"1970-01-01T00:00:00.000000Z\",\"level\":\"\",\"app\":\"\","
                        "\"deployment\":\"\",\"component\":\"\",\"weavelet\":\"\",\"file\":\"\","
                        "\"line\":-1,\"msg\":\"\",\"attrs\":{}}");
    wd_buf_free(&b);
}

static void test_color_enabled(void **state)
{
    (void)state;
    setenv("NO_COLOR", "", 1);
    assert_false(wd_logfmt_color_enabled());
    unsetenv("NO_COLOR");
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_plain), cmocka_unit_test(test_golden_color),
        cmocka_unit_test(test_error_colors), cmocka_unit_test(test_widths_grow),
        cmocka_unit_test(test_quote),        cmocka_unit_test(test_shorten),
        cmocka_unit_test(test_json),         cmocka_unit_test(test_color_enabled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
