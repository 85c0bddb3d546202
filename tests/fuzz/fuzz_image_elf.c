/* Fuzz target: the ELF reader (engine/base/elf.c) as the image builder calls it (PT_INTERP,
 * DT_NEEDED, e_machine). */
#include "engine/base/error.h"
#include "engine/docker/image.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wd_elf_info e;
    struct wd_error *err = NULL;
    if (wd_elf_inspect(data, size, "fuzz", &e, &err) == 0) {
        if (e.is_static != (e.interp == NULL && e.nneeded == 0))
            __builtin_trap();
        for (size_t i = 0; i < e.nneeded; i++)
            if (strlen(e.needed[i]) == 0)
                __builtin_trap();
        wd_elf_info_free(&e);
    }
    wd_err_free(&err);
    return 0;
}
