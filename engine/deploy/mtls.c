/* The deployment's CA for weaver's mTLS data plane (engine/deploy/mtls.h; the call-graph
 * policy is in mtls_policy.c). Written against OpenSSL 3.0 (Debian 12). What the weavelet (weaver
 * v0.24.6, internal/weaver/remoteweavelet.go) does with our answers, which shapes what is here: -
 * GetSelfCertificate: tls.X509KeyPair(cert, key), so PEM for both; Go accepts a PKCS#8 "PRIVATE
 * KEY" block holding an EC key. It asks again for every handshake. - it sets InsecureSkipVerify and
 * ClientAuth RequireAnyClientCert, so Go checks neither names nor signers: whatever we answer to
 * Verify*Certificate is the whole decision. Go still parses the peer's certificates before it asks,
 * so they must be well-formed X.509. */
#include "engine/deploy/mtls.h"
#include "engine/weaver/binary.h"
#include "engine/base/error.h"
#include "engine/base/util.h"

#include <errno.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* The CA outlives any deployment we run, and leaves have no expiry of their own worth checking:
 * both end with the deployer's memory. 10 years keeps X.509 validity out of the way. */
#define VALID_DAYS 3650
#define BACKDATE_S 300 /* containers share the host clock; a little slack for tests */
#define CN_MAX 64      /* ub-common-name (RFC 5280) */

struct wd_mtls {
    EVP_PKEY *key;
    X509 *cert;
    X509_STORE *store; /* only our CA: no default paths */
    char *cert_pem;
};

static void x509_freep(X509 **p) { X509_free(*p); }
static void pkey_freep(EVP_PKEY **p) { EVP_PKEY_free(*p); }
static void bio_freep(BIO **p) { BIO_free(*p); }
static void ext_freep(X509_EXTENSION **p) { X509_EXTENSION_free(*p); }
static void ctx_freep(X509_STORE_CTX **p) { X509_STORE_CTX_free(*p); }
static void chain_freep(STACK_OF(X509) **p) { sk_X509_pop_free(*p, X509_free); }
static void names_freep(GENERAL_NAMES **p) { GENERAL_NAMES_free(*p); }
static void bn_freep(BIGNUM **p) { BN_free(*p); }
#define autox509 __attribute__((cleanup(x509_freep)))
#define autopkey __attribute__((cleanup(pkey_freep)))
#define autobio __attribute__((cleanup(bio_freep)))
#define autoext __attribute__((cleanup(ext_freep)))
#define autostorectx __attribute__((cleanup(ctx_freep)))
#define autochain __attribute__((cleanup(chain_freep)))
#define autonames __attribute__((cleanup(names_freep)))
#define autobn __attribute__((cleanup(bn_freep)))

/* -EIO with OpenSSL's first queued reason; the queue is emptied either way. */
static int ossl_fail(struct wd_error **err, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "unknown error";
    if (e != 0)
        ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return wd_err(err, EIO, "mtls: %s: %s", what, buf);
}

static bool valid_name(const char *s, size_t len)
{
    if (len == 0 || len > WD_MTLS_MAX_NAME)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
            return false;
    }
    return true;
}

static EVP_PKEY *new_key(void)
{
    return EVP_EC_gen("P-256");
}

/* A positive 127-bit random serial (RFC 5280 allows up to 20 octets; Go rejects negatives). */
static int set_serial(X509 *x)
{
    uint8_t b[16];
    if (wd_random(b, sizeof b) < 0)
        return -1;
    b[0] &= 0x7f;
    b[0] |= 0x40; /* never a short encoding */
    autobn BIGNUM *bn = BN_bin2bn(b, (int)sizeof b, NULL);
    if (bn == NULL)
        return -1;
    ASN1_INTEGER *serial = X509_get_serialNumber(x);
    return BN_to_ASN1_INTEGER(bn, serial) ? 0 : -1;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    autoext X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &v3, nid, value);
    if (ext == NULL || !X509_add_ext(x, ext, -1))
        return -1;
    return 0;
}

/* The common parts of both certificates: version 3, serial, validity, subject CN, public key. */
static X509 *new_cert(EVP_PKEY *key, const char *cn)
{
    X509 *x = X509_new();
    if (x == NULL)
        return NULL;
    X509_NAME *subj = X509_get_subject_name(x);
    if (!X509_set_version(x, 2) || set_serial(x) < 0 ||
        X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_S) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), VALID_DAYS, 0, NULL) == NULL ||
        !X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                    0) ||
        !X509_set_pubkey(x, key)) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* PEM of what write() puts into a memory BIO, as a NUL-terminated heap string. A secure-heap
 * BIO for keys: its buffer is cleared when freed. */
static char *pem_of(BIO *b, size_t *len)
{
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    if (n <= 0 || p == NULL)
        return NULL;
    *len = (size_t)n;
    char *out = xmalloc(*len + 1);
    memcpy(out, p, *len);
    out[*len] = 0;
    return out;
}

int wd_mtls_new(const char *label, struct wd_mtls **out, struct wd_error **err)
{
    autopkey EVP_PKEY *key = new_key();
    if (key == NULL)
        return ossl_fail(err, "generate the CA key");
    /* printable ASCII only, cut to the CN's limit: nothing OpenSSL could refuse */
    char cn[CN_MAX + 1];
    int k = snprintf(cn, sizeof cn, "weaver-docker CA%s", *label ? " " : "");
    for (const char *p = label; *p && k < CN_MAX; p++)
        cn[k++] = *p >= ' ' && *p <= '~' ? *p : '?';
    cn[k] = 0;
    autox509 X509 *x = new_cert(key, cn);
    if (x == NULL)
        return ossl_fail(err, "build the CA certificate");
    if (!X509_set_issuer_name(x, X509_get_subject_name(x)) ||
        add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") < 0 ||
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
        add_ext(x, x, NID_subject_key_identifier, "hash") < 0 ||
        X509_sign(x, key, EVP_sha256()) <= 0)
        return ossl_fail(err, "sign the CA certificate");
    autobio BIO *b = BIO_new(BIO_s_mem());
    size_t len = 0;
    char *pem = b && PEM_write_bio_X509(b, x) ? pem_of(b, &len) : NULL;
    if (pem == NULL)
        return ossl_fail(err, "encode the CA certificate");
    X509_STORE *store = X509_STORE_new();
    if (store == NULL || !X509_STORE_add_cert(store, x)) {
        X509_STORE_free(store);
        free(pem);
        return ossl_fail(err, "make the trust store");
    }
    struct wd_mtls *m = xzalloc(sizeof *m);
    m->key = WD_STEAL(key);
    m->cert = WD_STEAL(x);
    m->store = store;
    m->cert_pem = pem;
    *out = m;
    return 0;
}

void wd_mtls_free(struct wd_mtls *m)
{
    if (m == NULL)
        return;
    EVP_PKEY_free(m->key);
    X509_free(m->cert);
    X509_STORE_free(m->store);
    free(m->cert_pem);
    free(m);
}

const char *wd_mtls_ca_pem(const struct wd_mtls *m) { return m->cert_pem; }

void wd_mtls_cert_free(struct wd_mtls_cert *c)
{
    if (c == NULL)
        return;
    if (c->key_pem)
        OPENSSL_cleanse(c->key_pem, c->key_len);
    free(c->key_pem);
    free(c->cert_pem);
    free(c->name);
    free(c);
}

int wd_mtls_issue(struct wd_mtls *m, const char *name, struct wd_mtls_cert **out,
                  struct wd_error **err)
{
    size_t nlen = strlen(name);
    /* the name also goes into an OpenSSL config string ("DNS:<name>"): nothing but [a-z0-9.-] */
    if (!valid_name(name, nlen))
        return wd_err(err, EINVAL, "mtls: \"%s\" cannot name a certificate (1-%d of a-z 0-9 . -)",
                      name, WD_MTLS_MAX_NAME);
    autopkey EVP_PKEY *key = new_key();
    if (key == NULL)
        return ossl_fail(err, "generate a key");
    autox509 X509 *x = new_cert(key, name);
    if (x == NULL)
        return ossl_fail(err, "build a certificate");
    autofree char *san = xasprintf("DNS:%s", name);
    if (!X509_set_issuer_name(x, X509_get_subject_name(m->cert)) ||
        add_ext(x, m->cert, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
        add_ext(x, m->cert, NID_key_usage, "critical,digitalSignature") < 0 ||
        add_ext(x, m->cert, NID_ext_key_usage, "serverAuth,clientAuth") < 0 ||
        add_ext(x, m->cert, NID_subject_key_identifier, "hash") < 0 ||
        add_ext(x, m->cert, NID_authority_key_identifier, "keyid:always") < 0 ||
        add_ext(x, m->cert, NID_subject_alt_name, san) < 0 || X509_sign(x, m->key, EVP_sha256()) <= 0)
        return ossl_fail(err, "sign a certificate");
    autobio BIO *cb = BIO_new(BIO_s_mem());
    autobio BIO *kb = BIO_new(BIO_s_secmem());
    size_t clen = 0, klen = 0;
    autofree char *cpem = cb && PEM_write_bio_X509(cb, x) ? pem_of(cb, &clen) : NULL;
    if (cpem == NULL)
        return ossl_fail(err, "encode a certificate");
    /* PEM_write_bio_PrivateKey writes PKCS#8 ("PRIVATE KEY") in OpenSSL 3 */
    char *kpem = kb && PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL)
                     ? pem_of(kb, &klen)
                     : NULL;
    if (kpem == NULL)
        return ossl_fail(err, "encode a key");
    struct wd_mtls_cert *c = xzalloc(sizeof *c);
    c->name = xstrdup(name);
    c->cert_pem = WD_STEAL(cpem);
    c->cert_len = clen;
    c->key_pem = kpem;
    c->key_len = klen;
    *out = c;
    return 0;
}

/* The one DNS name of a verified leaf, or NULL with *why set. */
static char *leaf_name(X509 *leaf, const char **why)
{
    int crit = 0;
    autonames GENERAL_NAMES *gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, &crit, NULL);
    if (gens == NULL) {
        *why = crit == -2 ? "several subjectAltName extensions" : "no subjectAltName";
        return NULL;
    }
    if (sk_GENERAL_NAME_num(gens) != 1) {
        *why = "not exactly one subjectAltName";
        return NULL;
    }
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, 0);
    if (g->type != GEN_DNS) {
        *why = "its subjectAltName is not a DNS name";
        return NULL;
    }
    const ASN1_IA5STRING *s = g->d.dNSName;
    int len = ASN1_STRING_length(s);
    const char *data = (const char *)ASN1_STRING_get0_data(s);
    if (len <= 0 || data == NULL || !valid_name(data, (size_t)len)) {
        *why = "its DNS name is not one we issue";
        return NULL;
    }
    return xstrndup(data, (size_t)len);
}

int wd_mtls_verify(const struct wd_mtls *m, enum wd_mtls_role role, const uint8_t *const *der,
                   const size_t *len, size_t n, char **name, struct wd_error **err)
{
    const char *who = role == WD_MTLS_CLIENT ? "client" : "server";
    if (n == 0)
        return wd_err(err, EMSGSIZE, "mtls: the %s sent no certificate", who);
    if (n > WD_MTLS_MAX_CHAIN)
        return wd_err(err, EMSGSIZE, "mtls: the %s's chain has %zu certificates (at most %d)",
                      who, n, WD_MTLS_MAX_CHAIN);
    autox509 X509 *leaf = NULL;
    autochain STACK_OF(X509) *rest = sk_X509_new_null();
    if (rest == NULL)
        return ossl_fail(err, "start a verification");
    for (size_t i = 0; i < n; i++) {
        if (len[i] == 0 || len[i] > WD_MTLS_MAX_CERT_BYTES)
            return wd_err(err, EMSGSIZE, "mtls: the %s's certificate %zu has %zu bytes (1-%u)",
                          who, i + 1, len[i], WD_MTLS_MAX_CERT_BYTES);
        const unsigned char *p = der[i];
        X509 *x = d2i_X509(NULL, &p, (long)len[i]);
        if (x == NULL || p != der[i] + len[i]) {
            X509_free(x);
            ERR_clear_error();
            return wd_err(err, EINVAL, "mtls: the %s's certificate %zu is not one DER certificate",
                          who, i + 1);
        }
        if (i == 0)
            leaf = x;
        else if (!sk_X509_push(rest, x)) {
            X509_free(x);
            return ossl_fail(err, "start a verification");
        }
    }
    autostorectx X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    if (ctx == NULL || !X509_STORE_CTX_init(ctx, m->store, leaf, rest))
        return ossl_fail(err, "start a verification");
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT);
    /* a depth that lets OpenSSL name what is wrong with a longer chain; the chain it built
     * must still be exactly [leaf, our CA], checked below */
    X509_VERIFY_PARAM_set_depth(param, WD_MTLS_MAX_CHAIN);
    X509_STORE_CTX_set_purpose(ctx, role == WD_MTLS_CLIENT ? X509_PURPOSE_SSL_CLIENT
                                                           : X509_PURPOSE_SSL_SERVER);
    int ok = X509_verify_cert(ctx);
    int verr = X509_STORE_CTX_get_error(ctx);
    ERR_clear_error();
    if (ok != 1)
        return wd_err(err, EINVAL, "mtls: the %s's certificate does not verify: %s", who,
                      X509_verify_cert_error_string(verr));
    STACK_OF(X509) *built = X509_STORE_CTX_get0_chain(ctx); /* borrowed */
    if (built == NULL || sk_X509_num(built) != 2 || X509_cmp(sk_X509_value(built, 1), m->cert) != 0)
        return wd_err(err, EINVAL, "mtls: the %s's certificate is not signed by the deployment CA "
                      "itself", who);
    if (X509_check_ca(leaf) != 0) /* our CA itself, presented as a leaf */
        return wd_err(err, EINVAL, "mtls: the %s presented a CA certificate", who);
    const char *why = NULL;
    char *nm = leaf_name(leaf, &why);
    if (nm == NULL)
        return wd_err(err, EINVAL, "mtls: the %s's certificate names no group: %s", who, why);
    *name = nm;
    return 0;
}
