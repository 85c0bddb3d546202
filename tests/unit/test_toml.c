#include "tests/unit/wd_test.h"
#include "engine/base/error.h"
#include "engine/weaver/toml.h"
#include "engine/base/util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static struct wd_toml *parse_ok(const char *s)
{
    struct wd_toml *t = NULL;
    struct wd_error *err = NULL;
    int r = wd_toml_parse(s, strlen(s), "t.toml", &t, &err);
    if (r != 0)
        fail_msg("parse failed: %s\ninput:\n%s", err ? err->msg : "?", s);
    return t;
}

/* Parse must fail with EINVAL and exactly the message "t.toml:<line>: <msg>". msg may end in
 * '*' to match a prefix. */
static void expect_err(const char *s, const char *want)
{
    struct wd_toml *t = NULL;
    struct wd_error *err = NULL;
    int r = wd_toml_parse(s, strlen(s), "t.toml", &t, &err);
    if (r == 0)
        fail_msg("parse succeeded, want error %s\ninput:\n%s", want, s);
    assert_int_equal(r, -EINVAL);
    assert_non_null(err);
    assert_null(strchr(err->msg, '\n'));
    size_t n = strlen(want);
    if (n > 0 && want[n - 1] == '*') {
        if (strncmp(err->msg, want, n - 1) != 0)
            fail_msg("got  %s\nwant %s", err->msg, want);
    } else if (strcmp(err->msg, want) != 0) {
        fail_msg("got  %s\nwant %s", err->msg, want);
    }
    wd_err_free(&err);
}

static char *json_of(const char *s)
{
    struct wd_toml *t = parse_ok(s);
    char *j = wd_toml_to_json(wd_toml_root(t));
    wd_toml_free(t);
    return j;
}

static void expect_json(const char *s, const char *want)
{
    char *j = json_of(s);
    if (strcmp(j, want) != 0)
        fail_msg("input:\n%s\ngot  %s\nwant %s", s, j, want);
    free(j);
}

static void test_scalars(void **state)
{
    (void)state;
    struct wd_toml *t = parse_ok("s = \"a\\tb\"\n"
                                 "i = -0\n"
                                 "h = 0xff\n"
                                 "o = 0o17\n"
                                 "b = 0b101\n"
                                 "d = 1_000\n"
                                 "f = 6.5e-1\n"
                                 "ni = -inf\n"
                                 "na = nan\n"
                                 "yes = true\n"
                                 "no = false\n");
    const struct wd_toml_node *r = wd_toml_root(t);
    assert_int_equal(wd_toml_len(r), 11);
    const struct wd_toml_node *s = wd_toml_get(r, "s");
    assert_int_equal(s->type, WD_TOML_STRING);
    assert_string_equal(s->u.str.s, "a\tb");
    assert_int_equal(s->u.str.len, 3);
    assert_int_equal(wd_toml_get(r, "h")->u.i, 255);
    assert_int_equal(wd_toml_get(r, "o")->u.i, 15);
    assert_int_equal(wd_toml_get(r, "b")->u.i, 5);
    assert_int_equal(wd_toml_get(r, "d")->u.i, 1000);
    assert_true(wd_toml_get(r, "f")->u.f == 0.65);
    assert_true(isinf(wd_toml_get(r, "ni")->u.f) && wd_toml_get(r, "ni")->u.f < 0);
    assert_true(isnan(wd_toml_get(r, "na")->u.f));
    assert_true(wd_toml_get(r, "yes")->u.b);
    assert_false(wd_toml_get(r, "no")->u.b);
    assert_int_equal(wd_toml_get(r, "yes")->type, WD_TOML_BOOL);
    assert_null(wd_toml_get(r, "missing"));
    assert_null(wd_toml_get(s, "x")); /* not a table */
    assert_null(wd_toml_find(NULL, "x"));
    assert_null(wd_toml_table_at(r, 11));
    assert_null(wd_toml_array_at(r, 0));
    assert_int_equal(wd_toml_len(s), 0);
    assert_int_equal(wd_toml_len(NULL), 0);
    wd_toml_free(t);
    wd_toml_free(NULL);
}

static void test_integer_limits(void **state)
{
    (void)state;
    expect_json("a = 9223372036854775807\nb = -9223372036854775808\nc = 0x7fffffffffffffff\n",
                "{\"a\":{\"type\":\"integer\",\"value\":\"9223372036854775807\"},"
                "\"b\":{\"type\":\"integer\",\"value\":\"-9223372036854775808\"},"
                "\"c\":{\"type\":\"integer\",\"value\":\"9223372036854775807\"}}");
    expect_err("a = 9223372036854775808\n",
               "t.toml:1: integer 9223372036854775808 does not fit in 64 bits");
    expect_err("\n\na = -9223372036854775809\n",
               "t.toml:3: integer -9223372036854775809 does not fit in 64 bits");
    expect_err("a = 0x8000000000000000\n", "t.toml:1: integer 0x8000000000000000 does not fit*");
    expect_err("a = 0b11111111111111111111111111111111111111111111111111111111111111111\n",
               "t.toml:1: integer 0b1111*");
}

static void test_strings(void **state)
{
    (void)state;
    expect_json("a = \"\\u00e9\\U0001F600\\u0000\"\n",
                "{\"a\":{\"type\":\"string\",\"value\":\"\xc3\xa9\xf0\x9f\x98\x80\\u0000\"}}");
    struct wd_toml *t = parse_ok("a = \"x\\u0000y\"\n");
    assert_int_equal(wd_toml_get(wd_toml_root(t), "a")->u.str.len, 3);
    wd_toml_free(t);
    expect_json("a = \"\"\"\n  one\\\n    two \\\n\n  three\"\"\"\n",
                "{\"a\":{\"type\":\"string\",\"value\":\"  onetwo three\"}}");
    expect_json("a = '''\nC:\\x\n'''\n", "{\"a\":{\"type\":\"string\",\"value\":\"C:\\\\x\\n\"}}");
    expect_json("a = \"\"\"q\"\"\"\"\"\n", "{\"a\":{\"type\":\"string\",\"value\":\"q\\\"\\\"\"}}");
    expect_json("a = '''''x'''''\n", "{\"a\":{\"type\":\"string\",\"value\":\"''x''\"}}");
    expect_json("a = \"\"\"\r\nx\r\ny\"\"\"\r\n", "{\"a\":{\"type\":\"string\",\"value\":\"x\\ny\"}}");
    expect_json("a = \"tab\there\"\n", "{\"a\":{\"type\":\"string\",\"value\":\"tab\\there\"}}");
}

static void test_datetimes(void **state)
{
    (void)state;
    struct wd_toml *t = parse_ok("a = 1979-05-27T07:32:00.5-07:30\n"
                                 "b = 1979-05-27 07:32:00\n"
                                 "c = 2024-02-29\n"
                                 "d = 23:59:59.1234567891\n");
    const struct wd_toml_node *r = wd_toml_root(t);
    const struct wd_toml_node *a = wd_toml_get(r, "a");
    assert_int_equal(a->type, WD_TOML_DATETIME);
    assert_int_equal(a->u.dt.year, 1979);
    assert_int_equal(a->u.dt.month, 5);
    assert_int_equal(a->u.dt.day, 27);
    assert_int_equal(a->u.dt.hour, 7);
    assert_int_equal(a->u.dt.nanos, 500000000);
    assert_int_equal(a->u.dt.offset_minutes, -450);
    assert_int_equal(wd_toml_get(r, "b")->type, WD_TOML_DATETIME_LOCAL);
    assert_int_equal(wd_toml_get(r, "c")->type, WD_TOML_DATE_LOCAL);
    const struct wd_toml_node *d = wd_toml_get(r, "d");
    assert_int_equal(d->type, WD_TOML_TIME_LOCAL);
    assert_int_equal(d->u.dt.nanos, 123456789);
    assert_int_equal(d->u.dt.frac_digits, 9);
    char *j = wd_toml_to_json(r);
    assert_string_equal(j, "{\"a\":{\"type\":\"datetime\",\"value\":\"1979-05-27T07:32:00.5-07:30\"},"
                           "\"b\":{\"type\":\"datetime-local\",\"value\":\"1979-05-27T07:32:00\"},"
                           "\"c\":{\"type\":\"date-local\",\"value\":\"2024-02-29\"},"
                           "\"d\":{\"type\":\"time-local\",\"value\":\"23:59:59.123456789\"}}");
    free(j);
    wd_toml_free(t);
    expect_json("a = 1979-05-27t07:32:00z\nb = 1979-05-27T07:32:00-00:00\n",
                "{\"a\":{\"type\":\"datetime\",\"value\":\"1979-05-27T07:32:00Z\"},"
                "\"b\":{\"type\":\"datetime\",\"value\":\"1979-05-27T07:32:00Z\"}}");
}

static void test_tables_and_lines(void **state)
{
    (void)state;
    struct wd_toml *t = parse_ok("# comment\n"
                                 "top = 1\n"
                                 "\n"
                                 "[a.b]\n"
                                 "x = [\n"
                                 "  1,\n"
                                 "  2,\n"
                                 "]\n"
                                 "y.z = 'q'\n"
                                 "[[arr]]\n"
                                 "n = 1\n"
                                 "[[arr]]\n"
                                 "n = 2\n"
                                 "[a]\n"
                                 "c = {d = 1}\n");
    const struct wd_toml_node *r = wd_toml_root(t);
    assert_int_equal(wd_toml_find(r, "top")->line, 2);
    const struct wd_toml_node *a = wd_toml_get(r, "a");
    assert_int_equal(a->type, WD_TOML_TABLE);
    assert_int_equal(a->line, 14); /* implicit on line 4, defined on line 14 */
    const struct wd_toml_node *b = wd_toml_get(a, "b");
    assert_int_equal(b->line, 4);
    const struct wd_toml_node *x = wd_toml_get(b, "x");
    assert_int_equal(x->type, WD_TOML_ARRAY);
    assert_int_equal(x->line, 5);
    assert_int_equal(wd_toml_len(x), 2);
    assert_int_equal(wd_toml_array_at(x, 1)->line, 7);
    assert_int_equal(wd_toml_array_at(x, 1)->u.i, 2);
    assert_null(wd_toml_array_at(x, 2));
    assert_int_equal(wd_toml_get(wd_toml_get(b, "y"), "z")->line, 9);
    const struct wd_toml_node *arr = wd_toml_get(r, "arr");
    assert_int_equal(wd_toml_len(arr), 2);
    assert_int_equal(wd_toml_array_at(arr, 0)->line, 10);
    assert_int_equal(wd_toml_get(wd_toml_array_at(arr, 1), "n")->line, 13);
    assert_int_equal(wd_toml_get(wd_toml_get(a, "c"), "d")->u.i, 1);
    assert_int_equal(wd_toml_table_at(a, 1)->line, 15);
    assert_string_equal(wd_toml_table_at(a, 1)->key, "c");
    wd_toml_free(t);
}

static void test_type_names(void **state)
{
    (void)state;
    assert_string_equal(wd_toml_type_name(WD_TOML_TABLE), "table");
    assert_string_equal(wd_toml_type_name(WD_TOML_ARRAY), "array");
    assert_string_equal(wd_toml_type_name(WD_TOML_STRING), "string");
    assert_string_equal(wd_toml_type_name(WD_TOML_INTEGER), "integer");
    assert_string_equal(wd_toml_type_name(WD_TOML_FLOAT), "float");
    assert_string_equal(wd_toml_type_name(WD_TOML_BOOL), "boolean");
    assert_string_equal(wd_toml_type_name(WD_TOML_DATETIME), "offset date-time");
    assert_string_equal(wd_toml_type_name(WD_TOML_DATETIME_LOCAL), "local date-time");
    assert_string_equal(wd_toml_type_name(WD_TOML_DATE_LOCAL), "local date");
    assert_string_equal(wd_toml_type_name(WD_TOML_TIME_LOCAL), "local time");
}

static void test_redefinition_errors(void **state)
{
    (void)state;
    expect_err("a = 1\nb = 2\na = 3\n", "t.toml:3: duplicate key a (first defined on line 1)");
    expect_err("[t]\nx.y = 1\nx.y = 2\n",
               "t.toml:3: duplicate key x.y (first defined on line 2)");
    expect_err("[a]\n[b]\n[a]\n", "t.toml:3: table [a] is defined twice (first on line 1)");
    expect_err("[a]\nb.c = 1\n[a.b]\n",
               "t.toml:3: cannot define table [a.b]: it was already defined with dotted keys "
               "(line 2)");
    expect_err("[a.b.c]\n[a]\nb.c.d = 1\n",
               "t.toml:3: cannot use dotted key to add to table [b.c]: it is defined by a "
               "header on line 1");
    expect_err("a = {b = 1}\na.c = 2\n",
               "t.toml:2: cannot add keys to inline table a (line 1): inline tables are "
               "immutable");
    expect_err("a = {b = 1}\n[a]\n",
               "t.toml:2: cannot extend inline table a (line 1) with a header: inline "
               "tables are immutable");
    expect_err("a = {b = {c = 1}}\n[a.b.d]\n", "t.toml:2: cannot extend inline table a*");
    expect_err("a = {b = {c = 1}, b.d = 2}\n", "t.toml:1: cannot add keys to inline table b*");
    expect_err("a = 1\na.b = 2\n",
               "t.toml:2: cannot use dotted key: a is already an integer (line 1)");
    expect_err("a = 1\n[a]\n",
               "t.toml:2: cannot define table [a]: a is already an integer (line 1)");
    expect_err("a = 'x'\n[a.b]\n",
               "t.toml:2: cannot define table [a]: a is already a string (line 1)");
    expect_err("a = []\n[[a]]\n",
               "t.toml:2: cannot define [[a]]: a is already a static array (line 1), not an "
               "array of tables");
    expect_err("a = [{}]\n[a.b]\n",
               "t.toml:2: cannot define table [a]: a is already a static array (line 1)");
    expect_err("[a]\n[[a]]\n",
               "t.toml:2: cannot define [[a]]: a is already a table (line 1), not an array "
               "of tables");
    expect_err("[[a]]\n[a]\n",
               "t.toml:2: cannot define table [a]: it is an array of tables (line 1)");
    expect_err("[[a]]\nb = 1\n[[a]]\nb = 1\nb = 2\n",
               "t.toml:5: duplicate key b (first defined on line 4)");
    expect_err("[a.b]\n[a]\nb = 1\n", "t.toml:3: duplicate key b (first defined on line 1)");
    expect_err("a = 1\n\"a\" = 2\n", "t.toml:2: duplicate key a*");
    expect_err("\"a.b\" = 1\n'a.b' = 2\n", "t.toml:2: duplicate key \"a.b\" (first defined on line 1)");
    expect_err("x = 1979-05-27\nx.y = 1\n", "t.toml:2: cannot use dotted key: x is already a "
                                            "local date (line 1)");
    expect_err("x = 1.5\n[x.y]\n", "t.toml:2: cannot define table [x]: x is already a float*");
    expect_err("x = true\n[[x]]\n", "t.toml:2: cannot define [[x]]: x is already a boolean*");
    /* allowed: implicit tables may be defined later; sub-tables of dotted tables by header */
    expect_json("[x.y]\n[x]\n", "{\"x\":{\"y\":{}}}");
    expect_json("[a]\nb.c = 1\n[a.b.d]\n",
                "{\"a\":{\"b\":{\"c\":{\"type\":\"integer\",\"value\":\"1\"},\"d\":{}}}}");
    expect_json("[[a]]\n[a.b]\n[[a]]\n[a.b]\n", "{\"a\":[{\"b\":{}},{\"b\":{}}]}");
}

static void test_syntax_errors(void **state)
{
    (void)state;
    expect_err("a = \n", "t.toml:1: expected a value, found end of line");
    expect_err("a = ", "t.toml:1: expected a value, found end of file");
    expect_err("a\n", "t.toml:1: expected '=' after key, found end of line");
    expect_err("a b = 1\n", "t.toml:1: expected '=' after key, found 'b'");
    expect_err("= 1\n", "t.toml:1: expected a key before '='");
    expect_err("a = 1 b = 2\n", "t.toml:1: expected end of line after value, found 'b'");
    expect_err("[a] x\n", "t.toml:1: expected end of line after table header, found 'x'");
    expect_err("[a\n", "t.toml:1: expected ']' after table name, found end of line");
    expect_err("[[a]\n", "t.toml:1: expected ']]' after table name, found end of line");
    expect_err("[[a] ]\n", "t.toml:1: expected ']]' after table name, found a space");
    expect_err("[]\n", "t.toml:1: expected a key, found ']'");
    expect_err("a.\n", "t.toml:1: expected a key, found end of line");
    expect_err("\"\"\"k\"\"\" = 1\n", "t.toml:1: a multi-line string cannot be a key");
    expect_err("a = \"x\n", "t.toml:1: unterminated string (strings end on the same line; use "
                            "\"\"\" for multi-line strings)");
    expect_err("a = \"x", "t.toml:1: unterminated string (no closing \")");
    expect_err("a = '''x\n\n", "t.toml:1: unterminated string (no closing ''')");
    expect_err("a = \"\"\"x\n\n", "t.toml:1: unterminated string (no closing \"\"\")");
    expect_err("a = \"\"\"x\"\"\"\"\"\"\n",
               "t.toml:1: too many quotes at the end of a multi-line string");
    expect_err("a = \"\\q\"\n", "t.toml:1: invalid escape sequence: backslash followed by 'q'");
    expect_err("a = \"\\ x\"\n",
               "t.toml:1: invalid escape sequence: backslash followed by a space");
    expect_err("a = \"\"\"\\ x\"\"\"\n", "t.toml:1: a '\\' followed by whitespace must end the line");
    expect_err("a = \"\\u12g4\"\n", "t.toml:1: \\u escape needs 4 hex digits");
    expect_err("a = \"\\U0000123\"\n", "t.toml:1: \\U escape needs 8 hex digits");
    expect_err("a = \"\\uDFFF\"\n", "t.toml:1: \\u escape DFFF is not a Unicode scalar value");
    expect_err("a = \"\\U00110000\"\n",
               "t.toml:1: \\U escape 00110000 is not a Unicode scalar value");
    expect_err("a = \"\x01\"\n", "t.toml:1: control character U+0001 in string; use an escape");
    expect_err("a = '\x7f'\n", "t.toml:1: control character U+007F in string; use an escape");
    expect_err("a = 1 # \x02\n", "t.toml:1: control character U+0002 in comment");
    expect_err("a = 1\r", "t.toml:1: expected end of line after value, found a carriage return");
    expect_err("\r", "t.toml:1: carriage return not followed by a newline");
    expect_err("a = \"\xc3\x28\"\n", "t.toml:1: invalid UTF-8 (byte 0xc3 at offset 5)");
    expect_err("\n\n# \xed\xa0\x80\n", "t.toml:3: invalid UTF-8 (byte 0xed at offset 4)");
    expect_err("a = \"\xf4\x90\x80\x80\"\n", "t.toml:1: invalid UTF-8*");
    expect_err("a = \"\xe2\x82\"\n", "t.toml:1: invalid UTF-8*");
    expect_err("a = hello\n", "t.toml:1: invalid value 'hello' (strings must be quoted)");
    expect_err("a = True\n", "t.toml:1: invalid value 'True' (strings must be quoted)");
    expect_err("a = @\n", "t.toml:1: expected a value, found '@'");
    expect_err("a = \x01\n", "t.toml:1: expected a value, found byte 0x01");
    expect_err("a = 01\n", "t.toml:1: leading zeros are not allowed in '01'");
    expect_err("a = 1__2\n", "t.toml:1: invalid number '1__2'");
    expect_err("a = _1\n", "t.toml:1: expected a value, found '_'");
    expect_err("a = 1_\n", "t.toml:1: invalid number '1_'");
    expect_err("a = 0x\n", "t.toml:1: invalid number '0x'");
    expect_err("a = 0xg\n", "t.toml:1: invalid number '0xg'");
    expect_err("a = -0x1\n", "t.toml:1: invalid number '-0x1'");
    expect_err("a = 1.\n", "t.toml:1: invalid number '1.'");
    expect_err("a = 1e\n", "t.toml:1: invalid number '1e'");
    expect_err("a = 1e+\n", "t.toml:1: invalid number '1e+'");
    expect_err("a = 1.5.5\n", "t.toml:1: invalid number '1.5.5'");
    expect_err("a = infinity\n", "t.toml:1: invalid number 'infinity'");
    expect_err("a = +\n", "t.toml:1: invalid number '+'");
    expect_err("a = 1979-5-27\n", "t.toml:1: invalid date: expected YYYY-MM-DD");
    expect_err("a = 1979-05-2\n", "t.toml:1: invalid date: expected YYYY-MM-DD");
    expect_err("a = 1979-00-10\n", "t.toml:1: invalid date 1979-00-10: month out of range");
    expect_err("a = 1979-04-31\n", "t.toml:1: invalid date 1979-04-31: day out of range");
    expect_err("a = 1900-02-29\n", "t.toml:1: invalid date 1900-02-29: day out of range");
    expect_err("a = 1979-05-27T\n", "t.toml:1: invalid time: expected HH:MM:SS");
    expect_err("a = 12:60:00\n", "t.toml:1: invalid time 12:60:00: out of range");
    expect_err("a = 12:00:60\n", "t.toml:1: invalid time 12:00:60: out of range");
    expect_err("a = 12:00:00.\n", "t.toml:1: invalid time: expected digits after '.'");
    expect_err("a = 1979-05-27T00:00:00+24:00\n",
               "t.toml:1: invalid date-time offset: out of range");
    expect_err("a = 1979-05-27T00:00:00+0100\n",
               "t.toml:1: invalid date-time offset: expected +HH:MM or -HH:MM");
    expect_err("a = 1979-05-27 x\n", "t.toml:1: expected end of line after value, found 'x'");
    expect_err("a = [1 2]\n", "t.toml:1: expected ',' or ']' in array, found '2'");
    expect_err("a = [1,\n2\n", "t.toml:1: unterminated array (no closing ']')");
    expect_err("a = [,]\n", "t.toml:1: expected a value, found ','");
    expect_err("a = [1, # \x03\n]\n", "t.toml:1: control character U+0003 in comment");
    expect_err("a = {b = 1,}\n", "t.toml:1: expected a key, found '}'");
    expect_err("a = {b = 1\n}\n", "t.toml:1: inline table must close with '}' on the same line");
    expect_err("a = {\n}\n", "t.toml:1: inline table must close with '}' on the same line");
    expect_err("a = {b = 1 c = 2}\n", "t.toml:1: expected ',' or '}' in inline table, found 'c'");
    expect_err("a = {b 1}\n", "t.toml:1: expected '=' after key, found '1'");
    expect_err("a = {b = 1, b = 2}\n", "t.toml:1: duplicate key b (first defined on line 1)");
    expect_err("\n\n\na = [\n\n{b = 1,\n", "t.toml:6: inline table must close*");
}

static void test_limits(void **state)
{
    (void)state;
    /* depth: 128 nested arrays are fine, 129 are not */
    char *s = xmalloc(400);
    for (int deep = 128; deep <= 129; deep++) {
        size_t o = 0;
        memcpy(s, "a = ", 4);
        o = 4;
        for (int i = 0; i < deep; i++)
            s[o++] = '[';
        for (int i = 0; i < deep; i++)
            s[o++] = ']';
        s[o] = 0;
        if (deep == 128)
            wd_toml_free(parse_ok(s));
        else
            expect_err(s, "t.toml:1: nesting too deep (limit 128 levels)");
    }
    free(s);
    /* header key depth */
    struct wd_buf b = {0};
    wd_buf_printf(&b, "[a");
    for (int i = 1; i < 129; i++)
        wd_buf_printf(&b, ".a");
    wd_buf_printf(&b, "]\n");
    expect_err((char *)b.data, "t.toml:1: nesting too deep (limit 128 levels)");
    wd_buf_free(&b);
    wd_buf_printf(&b, "x.y = 1\na");
    for (int i = 1; i < 200; i++)
        wd_buf_printf(&b, ".a");
    wd_buf_printf(&b, " = 1\n");
    expect_err((char *)b.data, "t.toml:2: key has too many parts (limit 128)");
    wd_buf_free(&b);
    wd_buf_printf(&b, "a = ");
    for (int i = 0; i < 130; i++)
        wd_buf_printf(&b, "{b = ");
    expect_err((char *)b.data, "t.toml:1: nesting too deep (limit 128 levels)");
    wd_buf_free(&b);
    /* size */
    size_t big = WD_TOML_MAX_FILE + 1;
    char *text = xmalloc(big);
    memset(text, '\n', big);
    struct wd_toml *t = NULL;
    struct wd_error *err = NULL;
    assert_int_equal(wd_toml_parse(text, big, "big.toml", &t, &err), -EMSGSIZE);
    assert_string_equal(err->msg, "big.toml: file is 4194305 bytes, larger than the 4 MiB limit");
    wd_err_free(&err);
    assert_int_equal(wd_toml_parse(text, big - 1, "big.toml", &t, &err), 0);
    wd_toml_free(t);
    free(text);
}

static void test_big_table(void **state)
{
    (void)state;
    struct wd_buf b = {0};
    for (int i = 0; i < 5000; i++)
        wd_buf_printf(&b, "k%d = %d\n", i, i);
    struct wd_toml *t = parse_ok((char *)b.data);
    const struct wd_toml_node *r = wd_toml_root(t);
    assert_int_equal(wd_toml_len(r), 5000);
    assert_int_equal(wd_toml_get(r, "k4321")->u.i, 4321);
    assert_int_equal(wd_toml_get(r, "k0")->u.i, 0);
    assert_null(wd_toml_get(r, "k5000"));
    wd_toml_free(t);
    wd_buf_printf(&b, "k777 = 1\n");
    expect_err((char *)b.data, "t.toml:5001: duplicate key k777 (first defined on line 778)");
    wd_buf_free(&b);
}

static void test_bom_and_crlf(void **state)
{
    (void)state;
    expect_json("\xef\xbb\xbf" "a = 1\r\n[b]\r\nc = 'd' # x\r\n",
                "{\"a\":{\"type\":\"integer\",\"value\":\"1\"},\"b\":{\"c\":{\"type\":\"string\","
                "\"value\":\"d\"}}}");
    struct wd_toml *t = parse_ok("a = 1\r\n\r\nb = 2\r\n");
    assert_int_equal(wd_toml_find(wd_toml_root(t), "b")->line, 3);
    wd_toml_free(t);
    /* not NUL-terminated input */
    const char text[] = {'a', '=', '1'};
    struct wd_error *err = NULL;
    assert_int_equal(wd_toml_parse(text, sizeof text, NULL, &t, &err), 0);
    assert_int_equal(wd_toml_get(wd_toml_root(t), "a")->u.i, 1);
    wd_toml_free(t);
    assert_int_equal(wd_toml_parse("a=", 2, NULL, &t, &err), -EINVAL);
    assert_string_equal(err->msg, "<toml>:1: expected a value, found end of file");
    wd_err_free(&err);
}

static char *emit_of(const char *s, const char *section)
{
    struct wd_toml *t = parse_ok(s);
    const struct wd_toml_node *n = wd_toml_root(t);
    if (section)
        n = wd_toml_get(n, section);
    char *out = wd_toml_emit_table(n);
    wd_toml_free(t);
    return out;
}

static void expect_emit(const char *s, const char *section, const char *want)
{
    char *got = emit_of(s, section);
    if (strcmp(got, want) != 0)
        fail_msg("input:\n%s\ngot:\n%s\nwant:\n%s", s, got, want);
    /* the output parses back to the same tree */
    struct wd_toml *t = parse_ok(got);
    char *again = wd_toml_emit_table(wd_toml_root(t));
    assert_string_equal(again, got);
    free(again);
    wd_toml_free(t);
    free(got);
}

static void test_emit_reroot(void **state)
{
    (void)state;
    const char *doc = "[serviceweaver]\n"
                      "binary = './shop'\n"
                      "[\"example.com/shop/Cart\"]\n"
                      "Max = 10\n"
                      "[\"example.com/shop/Cart\".limits]\n"
                      "Items = 3\n";
    expect_emit(doc, "example.com/shop/Cart", "Max = 10\n\n[limits]\n  Items = 3\n");
    expect_emit(doc, "serviceweaver", "binary = \"./shop\"\n");
    expect_emit("[a]\nx.y.z = 1\nw = 2\n", "a", "w = 2\n\n  [x.y]\n    z = 1\n");
    expect_emit("[a]\n[a.\"b c\".\"d.e\"]\nf = 1\n", "a", "  [\"b c\".\"d.e\"]\n    f = 1\n");
    expect_emit("[a]\n[a.b]\n", "a", "[b]\n");
    expect_emit("[a]\n", "a", "");
    char *none = wd_toml_emit_table(NULL);
    assert_string_equal(none, "");
    free(none);
}

static void test_emit_values(void **state)
{
    (void)state;
    expect_emit("s = \"q\\\"\\\\\\b\\t\\n\\f\\r\\u0001\\u007f\u00e9\"\n"
                "\"\" = 1\n"
                "\"a b\" = 2\n"
                "\"k\\u0000\" = 3\n"
                "bare-Key_9 = 4\n",
                NULL,
                "s = \"q\\\"\\\\\\b\\t\\n\\f\\r\\u0001\\u007f\u00e9\"\n"
                "\"\" = 1\n"
                "\"a b\" = 2\n"
                "\"k\\u0000\" = 3\n"
                "bare-Key_9 = 4\n");
    expect_emit("f = [1.0, 0.1, -0.0, 1e300, 5e-324, inf, -inf, nan, 100.0, 1.5e16]\n", NULL,
                "f = [1.0, 0.1, -0.0, 1e+300, 5e-324, inf, -inf, nan, 100.0, 1.5e+16]\n");
    expect_emit("i = [0, -1, 0xff, 9223372036854775807]\nb = [true, false]\n", NULL,
                "i = [0, -1, 255, 9223372036854775807]\nb = [true, false]\n");
    expect_emit("d = [1979-05-27T07:32:00.250Z, 1979-05-27 07:32:00+01:30, 1979-05-27, "
                "07:32:00.000001, 2000-01-01T00:00:00]\n",
                NULL,
                "d = [1979-05-27T07:32:00.250Z, 1979-05-27T07:32:00+01:30, 1979-05-27, "
                "07:32:00.000001, 2000-01-01T00:00:00]\n");
    expect_emit("a = [[1, 'x'], [], [{b = 1, c = {d = [2]}}, 3]]\n", NULL,
                "a = [[1, \"x\"], [], [{b = 1, c = {d = [2]}}, 3]]\n");
    expect_emit("t = {a = 1, b.c = 2}\nz = 0\n", NULL, "z = 0\n\n[t]\n  a = 1\n\n  [t.b]\n    c = 2\n");
    expect_emit("p = [{x = 1}, {x = 2, y = {z = 3}}]\n", NULL,
                "[[p]]\n  x = 1\n\n[[p]]\n  x = 2\n\n  [p.y]\n    z = 3\n");
    expect_emit("[[a]]\n[[a.b]]\nc = 1\n[a.d]\n[[a]]\n", NULL,
                "[[a]]\n\n  [[a.b]]\n    c = 1\n\n  [a.d]\n\n[[a]]\n");
    expect_emit("e = []\nf = {}\n", NULL, "e = []\n\n[f]\n");
}

static void test_json(void **state)
{
    (void)state;
    expect_json("", "{}");
    expect_json("a = [1, 'x', [true], {b = 2.5}]\n",
                "{\"a\":[{\"type\":\"integer\",\"value\":\"1\"},{\"type\":\"string\",\"value\":"
                "\"x\"},[{\"type\":\"bool\",\"value\":\"true\"}],{\"b\":{\"type\":\"float\","
                "\"value\":\"2.5\"}}]}");
    expect_json("\"q\\\"k\" = \"\\u001f\"\n",
                "{\"q\\\"k\":{\"type\":\"string\",\"value\":\"\\u001f\"}}");
    expect_json("f = [-nan, +inf, 1e400]\n",
                "{\"f\":[{\"type\":\"float\",\"value\":\"nan\"},{\"type\":\"float\",\"value\":"
                "\"inf\"},{\"type\":\"float\",\"value\":\"inf\"}]}");
    char *j = wd_toml_to_json(NULL);
    assert_string_equal(j, "");
    free(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_integer_limits),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_datetimes),
        cmocka_unit_test(test_tables_and_lines),
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_redefinition_errors),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_big_table),
        cmocka_unit_test(test_bom_and_crlf),
        cmocka_unit_test(test_emit_reroot),
        cmocka_unit_test(test_emit_values),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
