/* tests/unit/test_mtls.c - engine/deploy/mtls.c: the deployment CA, group certificates, chain
 * verification (good, forged, malformed) and the call-graph policy, on the shop app's graph. */
#include "tests/unit/wd_test.h"
#include "engine/weaver/binary.h"
#include "engine/base/error.h"
#include "engine/deploy/mtls.h"
#include "engine/base/util.h"

#include <errno.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define MAIN "github.com/ServiceWeaver/weaver/Main"
#define CART "example.com/shop/Cart"
#define INV "example.com/shop/Inventory"
#define PRICER "example.com/shop/Pricer"
#define CRASHER "example.com/shop/Crasher"

/* A DER certificate in a heap buffer. */
struct der {
    uint8_t *p;
    size_t n;
};

static X509 *parse_pem(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    assert_non_null(b);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_non_null(x);
    return x;
}

static struct der der_of(X509 *x)
{
    unsigned char *buf = NULL;
    int n = i2d_X509(x, &buf);
    assert_true(n > 0);
    struct der d = {.p = xmalloc((size_t)n), .n = (size_t)n};
    memcpy(d.p, buf, d.n);
    OPENSSL_free(buf);
    return d;
}

static struct der der_of_pem(const char *pem)
{
    X509 *x = parse_pem(pem);
    struct der d = der_of(x);
    X509_free(x);
    return d;
}

/* Verify a chain of DER certificates; returns the result, *name set on success. */
static int verify(struct wd_mtls *m, enum wd_mtls_role role, const struct der *chain, size_t n,
                  char **name)
{
    const uint8_t *ptrs[16];
    size_t lens[16];
    for (size_t i = 0; i < n && i < 16; i++) {
        ptrs[i] = chain[i].p;
        lens[i] = chain[i].n;
    }
    struct wd_error *err = NULL;
    *name = NULL;
    int r = wd_mtls_verify(m, role, ptrs, lens, n, name, &err);
    if (r < 0) {
        assert_non_null(err);
        assert_non_null(strstr(err->msg, "mtls: "));
        assert_null(*name);
    }
    wd_err_free(&err);
    return r;
}

static struct wd_mtls *new_ca(const char *label)
{
    struct wd_mtls *m = NULL;
    struct wd_error *err = NULL;
    assert_int_equal(wd_mtls_new(label, &m, &err), 0);
    assert_null(err);
    return m;
}

static struct wd_mtls_cert *issue(struct wd_mtls *m, const char *name)
{
    struct wd_mtls_cert *c = NULL;
    struct wd_error *err = NULL;
    assert_int_equal(wd_mtls_issue(m, name, &c, &err), 0);
    assert_null(err);
    return c;
}

static void test_ca_and_cert(void **state)
{
    (void)state;
    struct wd_mtls *m = new_ca("shop 5b676e48");
    X509 *ca = parse_pem(wd_mtls_ca_pem(m));
    assert_int_equal(X509_check_ca(ca), 1);
    char cn[128];
    X509_NAME_get_text_by_NID(X509_get_subject_name(ca), NID_commonName, cn, sizeof cn);
    assert_string_equal(cn, "weaver-docker CA shop 5b676e48");
    EVP_PKEY *capub = X509_get0_pubkey(ca);
    assert_int_equal(EVP_PKEY_get_base_id(capub), EVP_PKEY_EC);
    assert_int_equal(EVP_PKEY_get_bits(capub), 256);
    assert_int_equal(X509_verify(ca, capub), 1); /* self-signed */

    struct wd_mtls_cert *c = issue(m, "shop-cart");
    assert_string_equal(c->name, "shop-cart");
    assert_int_equal(strlen(c->cert_pem), c->cert_len);
    assert_int_equal(strlen(c->key_pem), c->key_len);
    /* what Go's tls.X509KeyPair accepts: one CERTIFICATE block, a PKCS#8 PRIVATE KEY block */
    assert_int_equal(strncmp(c->cert_pem, "-----BEGIN CERTIFICATE-----\n", 28), 0);
    assert_int_equal(strncmp(c->key_pem, "-----BEGIN PRIVATE KEY-----\n", 28), 0);
    assert_null(strstr(c->cert_pem, "PRIVATE"));
    X509 *leaf = parse_pem(c->cert_pem);
    BIO *kb = BIO_new_mem_buf(c->key_pem, (int)c->key_len);
    EVP_PKEY *key = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
    BIO_free(kb);
    assert_non_null(key);
    assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
    assert_int_equal(EVP_PKEY_get_bits(key), 256);
    assert_int_equal(X509_check_private_key(leaf, key), 1);
    assert_int_equal(X509_verify(leaf, capub), 1); /* signed by the CA */
    assert_int_equal(X509_check_ca(leaf), 0);
    assert_int_equal(X509_check_host(leaf, "shop-cart", 0, 0, NULL), 1);
    assert_int_equal(X509_check_purpose(leaf, X509_PURPOSE_SSL_CLIENT, 0), 1);
    assert_int_equal(X509_check_purpose(leaf, X509_PURPOSE_SSL_SERVER, 0), 1);
    X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn, sizeof cn);
    assert_string_equal(cn, "shop-cart");
    assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(ca)), 0);

    /* two groups never share a key or a serial */
    struct wd_mtls_cert *c2 = issue(m, "shop-inventory");
    assert_string_not_equal(c->key_pem, c2->key_pem);
    X509 *leaf2 = parse_pem(c2->cert_pem);
    assert_int_not_equal(
        ASN1_INTEGER_cmp(X509_get0_serialNumber(leaf), X509_get0_serialNumber(leaf2)), 0);

    X509_free(leaf2);
    X509_free(leaf);
    EVP_PKEY_free(key);
    X509_free(ca);
    wd_mtls_cert_free(c2);
    wd_mtls_cert_free(c);
    wd_mtls_free(m);
}

static void test_bad_names(void **state)
{
    (void)state;
    struct wd_mtls *m = new_ca("");
    const char *bad[] = {"", "Shop-Cart", "shop/cart", "shop cart", "a,DNS:evil",
                         "0123456789012345678901234567890123456789012345678901234567890123"};
    for (size_t i = 0; i < WD_ARRAY_LEN(bad); i++) {
        struct wd_mtls_cert *c = NULL;
        struct wd_error *err = NULL;
        assert_int_equal(wd_mtls_issue(m, bad[i], &c, &err), -EINVAL);
        assert_null(c);
        assert_non_null(err);
        wd_err_free(&err);
    }
    /* 63 characters is the limit, and a long label still makes a CA */
    wd_mtls_cert_free(issue(m, "012345678901234567890123456789012345678901234567890123456789012"));
    wd_mtls_free(m);
    wd_mtls_free(new_ca("a label far longer than the sixty-four characters a common name may "
                        "hold, with \xc3\xa9 non-ASCII"));
}

static void test_verify_good(void **state)
{
    (void)state;
    struct wd_mtls *m = new_ca("good");
    struct wd_mtls_cert *c = issue(m, "shop-cart");
    struct der leaf = der_of_pem(c->cert_pem);
    struct der ca = der_of_pem(wd_mtls_ca_pem(m));
    char *name = NULL;
    assert_int_equal(verify(m, WD_MTLS_CLIENT, &leaf, 1, &name), 0);
    assert_string_equal(name, "shop-cart");
    free(name);
    assert_int_equal(verify(m, WD_MTLS_SERVER, &leaf, 1, &name), 0);
    assert_string_equal(name, "shop-cart");
    free(name);
    struct der chain[2] = {leaf, ca}; /* with the CA itself appended: still fine */
    assert_int_equal(verify(m, WD_MTLS_CLIENT, chain, 2, &name), 0);
    assert_string_equal(name, "shop-cart");
    free(name);
    free(leaf.p);
    free(ca.p);
    wd_mtls_cert_free(c);
    wd_mtls_free(m);
}

/* A self-signed certificate naming `name`, as `openssl req -x509` would make one. */
static struct der self_signed(const char *name, bool ca)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    assert_non_null(k);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 42);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)name, -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, k);
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    char san[128];
    snprintf(san, sizeof san, "DNS:%s", name);
    X509_EXTENSION *e = X509V3_EXT_nconf_nid(NULL, &v3, NID_subject_alt_name, san);
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    e = X509V3_EXT_nconf_nid(NULL, &v3, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    struct der d = der_of(x);
    X509_free(x);
    EVP_PKEY_free(k);
    return d;
}

static void test_verify_forged(void **state)
{
    (void)state;
    struct wd_mtls *m = new_ca("shop");
    struct wd_mtls *other = new_ca("shop"); /* same label, same CN: another key */
    struct wd_mtls_cert *forged = issue(other, "shop-cart");
    struct der fleaf = der_of_pem(forged->cert_pem);
    struct der ours = der_of_pem(wd_mtls_ca_pem(m));
    struct der theirs = der_of_pem(wd_mtls_ca_pem(other));
    char *name = NULL;
    /* signed by a look-alike CA */
    assert_int_equal(verify(m, WD_MTLS_CLIENT, &fleaf, 1, &name), -EINVAL);
    assert_int_equal(verify(m, WD_MTLS_SERVER, &fleaf, 1, &name), -EINVAL);
    /* ... with our real CA certificate, or theirs, appended */
    struct der c1[2] = {fleaf, ours};
    assert_int_equal(verify(m, WD_MTLS_CLIENT, c1, 2, &name), -EINVAL);
    struct der c2[2] = {fleaf, theirs};
    assert_int_equal(verify(m, WD_MTLS_CLIENT, c2, 2, &name), -EINVAL);
    /* self-signed leaves naming a group, as the openssl CLI makes them */
    struct der ss = self_signed("shop-cart", false);
    assert_int_equal(verify(m, WD_MTLS_CLIENT, &ss, 1, &name), -EINVAL);
    struct der ssca = self_signed("shop-cart", true);
    assert_int_equal(verify(m, WD_MTLS_SERVER, &ssca, 1, &name), -EINVAL);
    /* our own CA certificate presented as a leaf: trusted, but not a group */
    assert_int_equal(verify(m, WD_MTLS_CLIENT, &ours, 1, &name), -EINVAL);
    /* a genuine leaf with a tampered signature byte */
    struct wd_mtls_cert *real = issue(m, "shop-cart");
    struct der t = der_of_pem(real->cert_pem);
    t.p[t.n - 3] ^= 0x01;
    assert_int_equal(verify(m, WD_MTLS_CLIENT, &t, 1, &name), -EINVAL);
    /* the same leaf untouched does verify with this CA, and not with the other */
    t.p[t.n - 3] ^= 0x01;
    assert_int_equal(verify(m, WD_MTLS_CLIENT, &t, 1, &name), 0);
    free(name);
    assert_int_equal(verify(other, WD_MTLS_CLIENT, &t, 1, &name), -EINVAL);
    free(t.p);
    free(ss.p);
    free(ssca.p);
    free(fleaf.p);
    free(ours.p);
    free(theirs.p);
    wd_mtls_cert_free(real);
    wd_mtls_cert_free(forged);
    wd_mtls_free(other);
    wd_mtls_free(m);
}

static void test_verify_malformed(void **state)
{
    (void)state;
    struct wd_mtls *m = new_ca("x");
    struct wd_mtls_cert *c = issue(m, "shop-cart");
    struct der leaf = der_of_pem(c->cert_pem);
    char *name = NULL;
    assert_int_equal(verify(m, WD_MTLS_CLIENT, NULL, 0, &name), -EMSGSIZE);
    struct der many[WD_MTLS_MAX_CHAIN + 1];
    for (size_t i = 0; i < WD_ARRAY_LEN(many); i++)
        many[i] = leaf;
    assert_int_equal(verify(m, WD_MTLS_CLIENT, many, WD_ARRAY_LEN(many), &name), -EMSGSIZE);
    /* trailing bytes after the certificate, a truncated one, garbage, an empty one */
    struct der longer = {.p = xmalloc(leaf.n + 1), .n = leaf.n + 1};
    memcpy(longer.p, leaf.p, leaf.n);
    longer.p[leaf.n] = 0;
    assert_int_equal(verify(m, WD_MTLS_CLIENT, &longer, 1, &name), -EINVAL);
    struct der shorter = {.p = leaf.p, .n = leaf.n - 1};
    assert_int_equal(verify(m, WD_MTLS_CLIENT, &shorter, 1, &name), -EINVAL);
    uint8_t junk[] = {0x30, 0x03, 0x02, 0x01, 0x00};
    struct der j = {.p = junk, .n = sizeof junk};
    assert_int_equal(verify(m, WD_MTLS_CLIENT, &j, 1, &name), -EINVAL);
    struct der empty = {.p = junk, .n = 0};
    assert_int_equal(verify(m, WD_MTLS_CLIENT, &empty, 1, &name), -EMSGSIZE);
    struct der huge = {.p = junk, .n = WD_MTLS_MAX_CERT_BYTES + 1};
    assert_int_equal(verify(m, WD_MTLS_CLIENT, &huge, 1, &name), -EMSGSIZE);
    /* a good leaf followed by junk in the chain */
    struct der mixed[2] = {leaf, j};
    assert_int_equal(verify(m, WD_MTLS_CLIENT, mixed, 2, &name), -EINVAL);
    free(longer.p);
    free(leaf.p);
    wd_mtls_cert_free(c);
    wd_mtls_free(m);
}

/* The shop app's call graph (tests/apps/shop): Main -> Cart, Crasher, Pricer; Cart -> Inventory.
 * Groups: Main + Pricer, Cart, Inventory (routed), Crasher. */
static char s_main[] = MAIN, s_cart[] = CART, s_inv[] = INV, s_pricer[] = PRICER,
            s_crasher[] = CRASHER; /* struct wd_edge holds `char *` */
static const struct wd_edge shop_edges[] = {
    {s_cart, s_inv},
    {s_main, s_cart},
    {s_main, s_crasher},
    {s_main, s_pricer},
};
static const char *const g_main[] = {MAIN, PRICER};
static const char *const g_cart[] = {CART};
static const char *const g_inv[] = {INV};
static const char *const g_crash[] = {CRASHER};

static void test_policy(void **state)
{
    (void)state;
    const struct wd_edge *e = shop_edges;
    size_t ne = WD_ARRAY_LEN(shop_edges);
    assert_true(wd_mtls_may_call(e, ne, g_main, 2, CART));
    assert_true(wd_mtls_may_call(e, ne, g_main, 2, CRASHER));
    assert_true(wd_mtls_may_call(e, ne, g_cart, 1, INV));
    assert_false(wd_mtls_may_call(e, ne, g_main, 2, INV)); /* only Cart reaches Inventory */
    assert_false(wd_mtls_may_call(e, ne, g_cart, 1, MAIN));
    assert_false(wd_mtls_may_call(e, ne, g_cart, 1, CART)); /* not even itself: no edge */
    assert_false(wd_mtls_may_call(e, ne, g_inv, 1, CART));
    assert_false(wd_mtls_may_call(e, ne, g_crash, 1, CART));
    assert_false(wd_mtls_may_call(e, ne, g_main, 2, "example.com/shop/Unknown"));
    assert_false(wd_mtls_may_call(NULL, 0, g_main, 2, CART));

    const char **v = NULL;
    size_t n = 99;
    wd_mtls_callable(e, ne, g_main, 2, g_cart, 1, &v, &n); /* Main's weavelet dials Cart */
    assert_int_equal(n, 1);
    assert_string_equal(v[0], CART);
    free(v);
    wd_mtls_callable(e, ne, g_cart, 1, g_inv, 1, &v, &n);
    assert_int_equal(n, 1);
    assert_string_equal(v[0], INV);
    free(v);
    wd_mtls_callable(e, ne, g_cart, 1, g_main, 2, &v, &n); /* Cart may not call into Main */
    assert_int_equal(n, 0);
    assert_null(v);
    wd_mtls_callable(e, ne, g_crash, 1, g_cart, 1, &v, &n);
    assert_int_equal(n, 0);
    assert_null(v);
    wd_mtls_callable(e, ne, g_inv, 1, g_inv, 1, &v, &n);
    assert_int_equal(n, 0);
    /* a server group hosting several components: only the reachable ones, in its order */
    const char *const both[] = {PRICER, MAIN, CART};
    wd_mtls_callable(e, ne, g_main, 2, both, 3, &v, &n);
    assert_int_equal(n, 2);
    assert_string_equal(v[0], PRICER);
    assert_string_equal(v[1], CART);
    free(v);

    assert_true(wd_mtls_hosts(g_main, 2, PRICER));
    assert_false(wd_mtls_hosts(g_cart, 1, INV));
    assert_false(wd_mtls_hosts(NULL, 0, INV));
}

/* What the deployer does for VerifyServerCertificate: the leaf must name the group that hosts
 * the target; a genuine certificate of another group is refused. */
static void test_wrong_group(void **state)
{
    (void)state;
    struct wd_mtls *m = new_ca("shop");
    struct wd_mtls_cert *cart = issue(m, "shop-cart");
    struct wd_mtls_cert *inv = issue(m, "shop-inventory");
    struct der dc = der_of_pem(cart->cert_pem), di = der_of_pem(inv->cert_pem);
    struct {
        const char *name;
        const char *const *comps;
        size_t n;
    } groups[] = {{"shop-cart", g_cart, 1}, {"shop-inventory", g_inv, 1}};
    char *name = NULL;
    /* Main dials Inventory's address, but the server presents Cart's certificate */
    assert_int_equal(verify(m, WD_MTLS_SERVER, &dc, 1, &name), 0);
    bool hosts = false;
    for (size_t i = 0; i < WD_ARRAY_LEN(groups); i++)
        if (strcmp(groups[i].name, name) == 0)
            hosts = wd_mtls_hosts(groups[i].comps, groups[i].n, INV);
    assert_false(hosts);
    free(name);
    assert_int_equal(verify(m, WD_MTLS_SERVER, &di, 1, &name), 0);
    hosts = false;
    for (size_t i = 0; i < WD_ARRAY_LEN(groups); i++)
        if (strcmp(groups[i].name, name) == 0)
            hosts = wd_mtls_hosts(groups[i].comps, groups[i].n, INV);
    assert_true(hosts);
    free(name);
    free(dc.p);
    free(di.p);
    wd_mtls_cert_free(inv);
    wd_mtls_cert_free(cart);
    wd_mtls_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ca_and_cert),    cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_verify_good),    cmocka_unit_test(test_verify_forged),
        cmocka_unit_test(test_verify_malformed), cmocka_unit_test(test_policy),
        cmocka_unit_test(test_wrong_group),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
