/* What the static compose manager leaves out, in place of engine/deploy/mtls.c and pprof.c
 * (which need OpenSSL and libarchive, too big for a 2 MiB manager; docs/design/compose.md):
 * `weaver-docker compose` refuses [docker] mtls = true, so no certificate is ever issued here,
 * and a compose file has no control socket on the host to ask for a merged profile. Each stub
 * answers the way its real function fails, so a caller that gets here says why in one line. */
#include "engine/base/error.h"
#include "engine/deploy/mtls.h"
#include "engine/deploy/pprof.h"

#include <errno.h>

#define NO_MTLS "mTLS needs 'weaver-docker up': the compose manager has no certificate authority"

int wd_mtls_new(const char *label, struct wd_mtls **out, struct wd_error **err)
{
    (void)label;
    *out = NULL;
    return wd_err(err, EIO, NO_MTLS);
}

void wd_mtls_free(struct wd_mtls *m) { (void)m; }

int wd_mtls_issue(struct wd_mtls *m, const char *name, struct wd_mtls_cert **out,
                  struct wd_error **err)
{
    (void)m;
    (void)name;
    *out = NULL;
    return wd_err(err, EIO, NO_MTLS);
}

void wd_mtls_cert_free(struct wd_mtls_cert *c) { (void)c; }

int wd_mtls_verify(const struct wd_mtls *m, enum wd_mtls_role role, const uint8_t *const *der,
                   const size_t *len, size_t n, char **name, struct wd_error **err)
{
    (void)m;
    (void)role;
    (void)der;
    (void)len;
    (void)n;
    *name = NULL;
    return wd_err(err, EINVAL, NO_MTLS);
}

int wd_pprof_merge(const struct wd_pprof_part *parts, size_t n, size_t *skipped, struct wd_buf *out,
                   struct wd_error **err)
{
    (void)parts;
    (void)n;
    (void)skipped;
    (void)out;
    return wd_err(err, ENOTSUP, "profiles are merged by 'weaver-docker up', not by the compose "
                                "manager");
}
