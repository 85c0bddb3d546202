/* tests/fuzz/fuzz_control.c - wd_control_parse (engine/deploy/control.c) on arbitrary bytes: the
 * control API's request line, headers, percent-encoded path and Content-Length body all come
 * from outside (the TCP listener serves anyone who can reach it). Checks the invariants the
 * server relies on. Corpus: corpus/control/. */
#include "engine/deploy/control.h"
#include "engine/base/util.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct wd_control_req req;
    struct wd_buf tmp = {0};
    ssize_t r = wd_control_parse(buf, size, &req, &tmp);
    if (r < 0) {
        if (r != -400 && r != -413 && r != -501 && r != -505)
            abort();
    } else if (r > 0) {
        if ((size_t)r > size || (size_t)r > WD_CONTROL_MAX_HEAD + WD_CONTROL_MAX_BODY)
            abort();
        if (req.method[0] == 0 || req.path[0] != '/' || req.query == NULL || req.trusted)
            abort();
        if (req.body < data || req.body + req.body_len != data + r)
            abort(); /* the body ends the request */
        /* a request is whole only with its last byte: any shorter prefix needs more */
        struct wd_control_req r2;
        if (wd_control_parse(buf, (size_t)r - 1, &r2, &tmp) != 0)
            abort();
        /* and what follows it does not change it */
        char *more = xmalloc((size_t)r + 3);
        memcpy(more, buf, (size_t)r);
        memcpy(more + r, "GET", 3);
        ssize_t r3 = wd_control_parse(more, (size_t)r + 3, &r2, &tmp);
        free(more);
        if (r3 != r)
            abort();
    }
    wd_buf_free(&tmp);
    return 0;
}
