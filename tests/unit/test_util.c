#include "tests/unit/wd_test.h"
#include "engine/base/error.h"
#include "engine/base/sha256.h"
#include "engine/base/util.h"

#include <errno.h>
#include <openssl/sha.h>
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

static void sha_hex(const void *p, size_t n, char out[65])
{
    uint8_t md[WD_SHA256_LEN];
    wd_sha256(p, n, md);
    wd_hex(md, sizeof md, out);
}

/* FIPS 180-4 examples, then every length 0-300 fed in odd pieces against OpenSSL's digest. */
static void test_sha256(void **state)
{
    (void)state;
    char h[65];
    sha_hex("", 0, h);
    assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha_hex("abc", 3, h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha_hex(two, strlen(two), h);
    assert_string_equal(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    struct wd_sha256 s;
    uint8_t md[WD_SHA256_LEN], ref[SHA256_DIGEST_LENGTH], buf[1000];
    memset(buf, 'a', sizeof buf);
    wd_sha256_init(&s);
    for (int i = 0; i < 1000; i++)
        wd_sha256_update(&s, buf, sizeof buf);
    wd_sha256_final(&s, md);
    wd_hex(md, sizeof md, h);
    assert_string_equal(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    for (size_t n = 0; n <= 300; n++) {
        wd_sha256_init(&s);
        for (size_t off = 0, step = 1; off < n; off += step, step = step * 3 % 71 + 1)
            wd_sha256_update(&s, buf + off, step < n - off ? step : n - off);
        wd_sha256_final(&s, md);
        SHA256(buf, n, ref);
        assert_memory_equal(md, ref, sizeof md);
    }
}

/* RFC 4648 §10 vectors; RFC 3986 unreserved characters pass, everything else is %XX. */
static void test_base64_url(void **state)
{
    (void)state;
    static const char *const want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                                       "Zm9vYmFy"};
    for (size_t n = 0; n < WD_ARRAY_LEN(want); n++) {
        autofree char *b = wd_base64((const uint8_t *)"foobar", n);
        assert_string_equal(b, want[n]);
    }
    uint8_t hi[3] = {0xfb, 0xff, 0x3e};
    autofree char *b = wd_base64(hi, 3);
    assert_string_equal(b, "+/8+");
    autofree char *u = wd_url_escape("{\"label\":[\"a=b c\"]}-._~\xc3\xa9");
    assert_string_equal(u, "%7B%22label%22%3A%5B%22a%3Db%20c%22%5D%7D-._~%C3%A9");
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
                                       cmocka_unit_test(test_err_wrap), cmocka_unit_test(test_hex),
                                       cmocka_unit_test(test_sha256),
                                       cmocka_unit_test(test_base64_url)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
