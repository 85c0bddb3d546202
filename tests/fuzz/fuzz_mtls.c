/* tests/fuzz/fuzz_mtls.c - the certificate chains weavelets forward (VerifyClientCertificate,
 * VerifyServerCertificate) through engine/deploy/mtls.c's verifier, as arbitrary bytes.
 * Input: one mode byte, then the rest.
 *   mode & 3 == 0  the rest is a chain: certificates as [u16 big-endian length][DER bytes]...
 *                  (a length past the end takes what is left); more than WD_MTLS_MAX_CHAIN
 *                  certificates are passed on as they are
 *   mode & 3 == 1  the rest is a VerifyServerCertificateRequest / VerifyClientCertificateRequest
 *                  protobuf, unpacked as the deployer does (engine/deploy/deploy.c)
 *   mode & 3 == 2  our own genuine leaf, its bytes XORed with the rest (tampered certificates)
 *   mode & 3 == 3  our genuine leaf first, then the rest framed as in mode 0 (junk chains)
 *   mode & 4       verify as the server side's chain (else the client's)
 * Invariants: the verifier never reads out of bounds (ASan), answers 0 or -EINVAL/-EMSGSIZE,
 * and whatever it accepts names a certificate we issued: a name of [a-z0-9.-], 1-63 bytes.
 * Corpus: corpus/mtls/. */
#include "engine/base/error.h"
#include "engine/deploy/mtls.h"
#include "engine/base/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <protobuf-c/protobuf-c.h>

#include "runtime.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME "shop-cart"
#define MAX_IN (WD_MTLS_MAX_CHAIN + 4)

/* One CA and one leaf for the whole run: making a key per input would be most of the time.
 * The fuzzer's process is the only user; nothing here is shared with the engine. */
struct fixture {
    struct wd_mtls *ca;
    uint8_t *leaf;
    size_t leaf_len;
};

static struct fixture *fixture(void)
{
    static struct fixture fx;
    if (fx.ca)
        return &fx;
    struct wd_error *err = NULL;
    struct wd_mtls_cert *c = NULL;
    if (wd_mtls_new("fuzz", &fx.ca, &err) < 0 || wd_mtls_issue(fx.ca, NAME, &c, &err) < 0)
        abort();
    BIO *b = BIO_new_mem_buf(c->cert_pem, (int)c->cert_len);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    unsigned char *der = NULL;
    int n = x ? i2d_X509(x, &der) : -1;
    if (n <= 0)
        abort();
    fx.leaf = xmalloc((size_t)n);
    memcpy(fx.leaf, der, (size_t)n);
    fx.leaf_len = (size_t)n;
    OPENSSL_free(der);
    X509_free(x);
    BIO_free(b);
    wd_mtls_cert_free(c);
    return &fx;
}

static void check(const struct fixture *fx, enum wd_mtls_role role, const uint8_t *const *der,
                  const size_t *len, size_t n)
{
    struct wd_error *err = NULL;
    char *name = NULL;
    int r = wd_mtls_verify(fx->ca, role, der, len, n, &name, &err);
    if (r == 0) {
        size_t k = strlen(name);
        if (err != NULL || k == 0 || k > WD_MTLS_MAX_NAME)
            abort();
        for (size_t i = 0; i < k; i++)
            if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
                  name[i] == '-' || name[i] == '.'))
                abort();
        /* the one leaf this CA ever signed */
        if (strcmp(name, NAME) != 0)
            abort();
    } else if ((r != -EINVAL && r != -EMSGSIZE) || err == NULL || name != NULL) {
        abort();
    }
    free(name);
    wd_err_free(&err);
}

/* Split p into [u16 len][bytes] records; copies each into its own exact-size buffer so ASan
 * sees any over-read. Returns how many, at most max. */
static size_t split(const uint8_t *p, size_t n, uint8_t **bufs, size_t *lens, size_t max)
{
    size_t k = 0;
    while (n >= 2 && k < max) {
        size_t l = (size_t)p[0] << 8 | p[1];
        p += 2;
        n -= 2;
        if (l > n)
            l = n;
        bufs[k] = xmalloc(l ? l : 1);
        memcpy(bufs[k], p, l);
        lens[k++] = l;
        p += l;
        n -= l;
    }
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    const struct fixture *fx = fixture();
    uint8_t mode = data[0];
    const uint8_t *rest = data + 1;
    size_t nrest = size - 1;
    enum wd_mtls_role role = mode & 4 ? WD_MTLS_SERVER : WD_MTLS_CLIENT;
    uint8_t *bufs[MAX_IN] = {0};
    const uint8_t *der[MAX_IN];
    size_t len[MAX_IN];
    size_t n = 0;

    switch (mode & 3) {
    case 0:
        n = split(rest, nrest, bufs, len, MAX_IN);
        break;
    case 1: {
        ProtobufCMessage *m = protobuf_c_message_unpack(
            role == WD_MTLS_SERVER ? &runtime__verify_server_certificate_request__descriptor
                                   : &runtime__verify_client_certificate_request__descriptor,
            NULL, nrest, rest);
        if (m == NULL)
            return 0;
        size_t nc = 0;
        ProtobufCBinaryData *chain = NULL;
        if (role == WD_MTLS_SERVER) {
            Runtime__VerifyServerCertificateRequest *q = (void *)m;
            nc = q->n_cert_chain;
            chain = q->cert_chain;
        } else {
            Runtime__VerifyClientCertificateRequest *q = (void *)m;
            nc = q->n_cert_chain;
            chain = q->cert_chain;
        }
        for (size_t i = 0; i < nc && n < MAX_IN; i++) {
            bufs[n] = xmalloc(chain[i].len ? chain[i].len : 1);
            if (chain[i].len) /* protobuf-c leaves data NULL for empty bytes */
                memcpy(bufs[n], chain[i].data, chain[i].len);
            len[n++] = chain[i].len;
        }
        protobuf_c_message_free_unpacked(m, NULL);
        break;
    }
    case 2: {
        bufs[0] = xmalloc(fx->leaf_len);
        memcpy(bufs[0], fx->leaf, fx->leaf_len);
        for (size_t i = 0; i < nrest; i++)
            bufs[0][i % fx->leaf_len] ^= rest[i];
        len[0] = fx->leaf_len;
        n = 1;
        break;
    }
    default:
        bufs[0] = xmalloc(fx->leaf_len);
        memcpy(bufs[0], fx->leaf, fx->leaf_len);
        len[0] = fx->leaf_len;
        n = 1 + split(rest, nrest, bufs + 1, len + 1, MAX_IN - 1);
        break;
    }
    for (size_t i = 0; i < n; i++)
        der[i] = bufs[i];
    check(fx, role, der, len, n);
    for (size_t i = 0; i < n; i++)
        free(bufs[i]);
    return 0;
}
