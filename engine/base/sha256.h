/* engine/base/sha256.h - SHA-256 (FIPS 180-4) for the short strings the weaver protocol hashes:
 * method keys and the call-graph checksums of a binary. libc only, so the static compose manager
 * has it without libcrypto. Bulk hashing (image contents, a whole binary) stays on OpenSSL's
 * accelerated code in the host-side commands. */
#ifndef WD_SHA256_H
#define WD_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define WD_SHA256_LEN 32

struct wd_sha256 {
    uint32_t h[8];
    uint64_t total; /* bytes hashed so far */
    uint8_t block[64];
    size_t fill; /* bytes in block */
};

void wd_sha256_init(struct wd_sha256 *s);
void wd_sha256_update(struct wd_sha256 *s, const void *data, size_t n);
void wd_sha256_final(struct wd_sha256 *s, uint8_t out[WD_SHA256_LEN]);
/* One call: the digest of n bytes at data. */
void wd_sha256(const void *data, size_t n, uint8_t out[WD_SHA256_LEN]);

#endif
