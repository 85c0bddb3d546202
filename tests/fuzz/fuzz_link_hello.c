/* Fuzz target for the link hellos the deployer side reads from the network: the compose
 * manager's parser of a shim's hello (wd_compose_hello_parse, engine/deploy/rt_compose.c) and the form
 * check of the 40-byte hello shared with the shim (wd_link_hello_form, engine/base/link.h).
 * Invariants: the parser never reads past len, asks for more than it was given only when it
 * answers 0, and what it accepts is a well-formed hello whose name is printable. */
#include "engine/base/link.h"
#include "engine/deploy/rt_compose.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    uint8_t *buf = malloc(size ? size : 1); /* exact size: ASan sees any over-read */
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    for (size_t len = 0; len <= size; len++) {
        struct wd_compose_hello h;
        size_t need = 0;
        int r = wd_compose_hello_parse(buf, len, &h, &need);
        if (r < 0 && r != -EPROTO)
            abort();
        if (r == 0 && need <= len)
            abort(); /* "more, please" must ask for more than it has */
        if (r > 0) {
            if ((size_t)r > len || !wd_link_hello_form(buf, "AWDPS") || h.token != buf + 8 ||
                strlen(h.name) == 0)
                abort();
            for (const char *p = h.name; *p; p++)
                if (*p <= ' ' || *p > '~')
                    abort();
            break;
        }
        if (r < 0)
            break;
    }
    if (size >= WD_LINK_HELLO_LEN)
        (void)wd_link_hello_form(buf, "WDHP");
    free(buf);
    return 0;
}
