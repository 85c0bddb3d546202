/* tests/fuzz/fuzz_binary.c - engine/weaver/binary.c on arbitrary bytes: ELF headers, section and
 * program header tables, markers, Go build info and the dynamic section are all untrusted.
 * Every successful result is checked for the invariants callers rely on. Corpus:
 * corpus/binary/ (small synthetic ELF files). */
#include "engine/weaver/binary.h"
#include "engine/base/error.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wd_binary_info *b = NULL;
    struct wd_error *err = NULL;
    if (wd_binary_inspect_mem(data, size, "fuzz", &b, &err) < 0) {
        if (err == NULL || err->msg == NULL || strchr(err->msg, '\n') != NULL)
            abort(); /* one line, always set */
        wd_err_free(&err);
        return 0;
    }
    if (err != NULL || b->ncomponents == 0 || b->arch == NULL)
        abort();
    for (size_t i = 1; i < b->ncomponents; i++)
        if (strcmp(b->components[i - 1], b->components[i]) >= 0)
            abort(); /* sorted set */
    for (size_t i = 1; i < b->nedges; i++) {
        int c = strcmp(b->edges[i - 1].src, b->edges[i].src);
        if (c > 0 || (c == 0 && strcmp(b->edges[i - 1].dst, b->edges[i].dst) >= 0))
            abort(); /* sorted, deduplicated */
    }
    for (size_t i = 0; i < b->nlisteners; i++)
        if (b->listeners[i].names.n == 0)
            abort();
    if (b->is_static != (b->interp == NULL && b->needed.n == 0))
        abort();
    (void)wd_binary_check_supported(b, &err);
    wd_err_free(&err);
    wd_binary_info_free(b);
    return 0;
}
