/* The call-graph policy of weaver's mTLS data plane (engine/deploy/mtls.h): which components a
 * caller may reach, read off the binary's call graph. No OpenSSL here: the static compose manager
 * (images/manager) links this file without the certificate half in mtls.c. */
#include "engine/deploy/mtls.h"
#include "engine/weaver/binary.h"
#include "engine/base/util.h"

#include <string.h>

bool wd_mtls_hosts(const char *const *comps, size_t n, const char *target)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(comps[i], target) == 0)
            return true;
    return false;
}

bool wd_mtls_may_call(const struct wd_edge *edges, size_t nedges, const char *const *caller,
                      size_t ncaller, const char *target)
{
    for (size_t e = 0; e < nedges; e++)
        if (strcmp(edges[e].dst, target) == 0 && wd_mtls_hosts(caller, ncaller, edges[e].src))
            return true;
    return false;
}

void wd_mtls_callable(const struct wd_edge *edges, size_t nedges, const char *const *caller,
                      size_t ncaller, const char *const *server, size_t nserver,
                      const char ***out, size_t *nout)
{
    const char **v = NULL;
    size_t k = 0;
    for (size_t i = 0; i < nserver; i++) {
        if (!wd_mtls_may_call(edges, nedges, caller, ncaller, server[i]))
            continue;
        if (v == NULL)
            v = xcalloc(nserver, sizeof *v);
        v[k++] = server[i];
    }
    *out = v;
    *nout = k;
}
