/* engine/deploy/mtls.h - the certificate authority behind weaver's mTLS data plane ([docker] mtls =
 * true; weaver-protocol.md §3.7), and the call-graph policy its answers follow.
 *
 * Per deployment one CA: an ECDSA P-256 key and a self-signed certificate that exist only in
 * the deployer's memory (never written anywhere). Per colocation group one ECDSA P-256 key and
 * a certificate the CA signs, whose identity is the group's name: one DNS subjectAltName (the
 * name; what wd_mtls_verify returns) and the common name. The weavelet loads the pair with Go's
 * tls.X509KeyPair, so both travel as PEM (CERTIFICATE, and an unencrypted PKCS#8 PRIVATE KEY);
 * the weavelet never checks a peer itself (InsecureSkipVerify) but forwards every peer's DER
 * chain, leaf first, to the deployer, which answers through wd_mtls_verify and the policy
 * functions below.
 *
 * Everything here is synchronous and touches no socket; OpenSSL (libcrypto) does the crypto.
 * Errors: one line, -EINVAL for input that does not verify (bad DER, wrong signer, wrong
 * usage, expired, no or several names), -EMSGSIZE for input over the limits below, -EIO when
 * OpenSSL fails to build what we asked for. */
#ifndef WD_ENGINE_MTLS_H
#define WD_ENGINE_MTLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wd_error;
struct wd_edge;
struct wd_mtls;

#define WD_MTLS_MAX_CHAIN 8             /* certificates in one chain */
#define WD_MTLS_MAX_CERT_BYTES (16u << 10) /* one DER certificate */
#define WD_MTLS_MAX_NAME 63 /* one DNS label; also fits a common name (64) */

/* Which side of a TLS connection presented the chain: the key usage it must allow. */
enum wd_mtls_role {
    WD_MTLS_CLIENT, /* VerifyClientCertificate: the dialing weavelet's chain */
    WD_MTLS_SERVER, /* VerifyServerCertificate: the accepting weavelet's chain */
};

/* A group's identity as issued: all strings NUL-terminated, lengths without the NUL. */
struct wd_mtls_cert {
    char *name;     /* the DNS name (and CN) it carries */
    char *cert_pem; /* "-----BEGIN CERTIFICATE-----..." */
    size_t cert_len;
    char *key_pem; /* "-----BEGIN PRIVATE KEY-----..." (PKCS#8, unencrypted) */
    size_t key_len;
};

/* wd_mtls_new - a new CA for one deployment. @label (borrowed) goes into the CA's common name
 * ("weaver-docker CA <label>"); it may be empty. On success *out is owned by the caller
 * (wd_mtls_free). Returns 0 or -EIO. */
int wd_mtls_new(const char *label, struct wd_mtls **out, struct wd_error **err);
/* wd_mtls_free - NULL-safe; the CA key's memory is cleared as OpenSSL frees it. */
void wd_mtls_free(struct wd_mtls *m);

/* wd_mtls_issue - a fresh key and a certificate signed by @m naming @name (borrowed): 1 to
 * WD_MTLS_MAX_NAME characters of [a-z0-9.-], the DNS subjectAltName and the CN. Valid for
 * client and server authentication. On success *out is owned by the caller
 * (wd_mtls_cert_free). Returns 0, -EINVAL (bad name) or -EIO. */
int wd_mtls_issue(struct wd_mtls *m, const char *name, struct wd_mtls_cert **out,
                  struct wd_error **err);
/* wd_mtls_cert_free - NULL-safe; overwrites the private key before freeing it. */
void wd_mtls_cert_free(struct wd_mtls_cert *c);

/* wd_mtls_ca_pem - the CA certificate as PEM (borrowed, lives as long as @m). Public: only
 * tests use it, to build chains that name our CA. */
const char *wd_mtls_ca_pem(const struct wd_mtls *m);

/* wd_mtls_verify - check a chain as a weavelet forwards it: @n DER certificates (@der[i],
 * @len[i] bytes, borrowed), leaf first; every byte must belong to a certificate. The leaf must
 * chain to @m's CA (and to nothing else), be within its validity, not be a CA, allow @role's
 * usage and carry exactly one DNS name. On success *name is that name (caller frees).
 * Returns 0, -EINVAL (does not verify) or -EMSGSIZE (more than WD_MTLS_MAX_CHAIN certificates,
 * none, or one over WD_MTLS_MAX_CERT_BYTES). */
int wd_mtls_verify(const struct wd_mtls *m, enum wd_mtls_role role, const uint8_t *const *der,
                   const size_t *len, size_t n, char **name, struct wd_error **err);

/* ---- call-graph policy: pure functions over component names ---- */

/* wd_mtls_may_call - whether a weavelet hosting the @ncaller components @caller (borrowed) may
 * call @target: some caller component has an edge to @target in the binary's call graph
 * (@edges, @nedges; weaver-protocol.md §5.2). A component's own group reaches it only through
 * such an edge too (a routed component is called over the network by its own group). */
bool wd_mtls_may_call(const struct wd_edge *edges, size_t nedges, const char *const *caller,
                      size_t ncaller, const char *target);

/* wd_mtls_callable - the components a client hosting @caller may call on a server hosting
 * @server: those of @server it may call (wd_mtls_may_call), in @server's order. *out is a new
 * array of borrowed pointers into @server (caller frees the array only; NULL when *nout is 0). */
void wd_mtls_callable(const struct wd_edge *edges, size_t nedges, const char *const *caller,
                      size_t ncaller, const char *const *server, size_t nserver,
                      const char ***out, size_t *nout);

/* wd_mtls_hosts - whether @target is one of the @n components @comps. */
bool wd_mtls_hosts(const char *const *comps, size_t n, const char *target);

#endif
