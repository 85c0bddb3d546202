/* engine/base/elf.h - the one ELF reader (32- and 64-bit, little-endian), bounds-checked: every
 * offset and length read off the file is checked against its size before use, and nothing is
 * cast from the file to a struct. engine/weaver/binary.c reads a Service Weaver binary with it
 * (sections, build info, markers); engine/docker/image.c the libraries an image needs. The host
 * architecture table is here too, so both name architectures the same way. */
#ifndef WD_ELF_H
#define WD_ELF_H

#include "engine/base/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WD_ELF_MAX_NEEDED 4096 /* DT_NEEDED entries kept */

struct wd_elf {
    const uint8_t *d;
    size_t len;
    const char *name; /* for messages */
    bool is64;
    uint16_t machine; /* e_machine: 62 x86-64, 183 aarch64 ... */
    uint64_t phoff, shoff;
    size_t phentsize, shentsize;
    size_t phnum, shnum, shstrndx;
};

/* wd_elf_open - check the header and the section and program header tables of the @len bytes
 * at @d (borrowed; @name too) and fill *e. Returns 0 or -EINVAL with one line naming @name: not
 * ELF, big-endian, not an executable or shared object, or truncated/corrupt. */
int wd_elf_open(struct wd_elf *e, const uint8_t *d, size_t len, const char *name,
                struct wd_error **err);
/* wd_elf_section - the contents of section @want: 1 (found, *data and *n set), 0 (absent or
 * SHT_NOBITS), or <0 with *err (out of the file). */
int wd_elf_section(const struct wd_elf *e, const char *want, const uint8_t **data, size_t *n,
                   struct wd_error **err);
/* wd_elf_dynamic - PT_INTERP (*interp, NULL if none) and the DT_NEEDED names (*needed, *nneeded,
 * at most WD_ELF_MAX_NEEDED), all caller-owned. Malformed dynamic data is skipped rather than
 * fatal: it only feeds an image's library list, and a binary that cannot load says so when it
 * runs. */
void wd_elf_dynamic(const struct wd_elf *e, char **interp, char ***needed, size_t *nneeded);
/* wd_elf_goarch - GOARCH of the file's machine ("amd64", "arm64", ...; also the OCI
 * architecture name) or NULL if unknown. */
const char *wd_elf_goarch(const struct wd_elf *e);
/* wd_host_goarch - uname(2)'s machine as GOARCH; a static string, "unknown" if unknown. */
const char *wd_host_goarch(void);
/* wd_elf_host_machine - the e_machine a binary for this host has; 0 if unknown. */
uint16_t wd_elf_host_machine(void);

/* What an image needs of one file: wd_elf_open + wd_elf_dynamic in one call. */
struct wd_elf_info {
    uint16_t machine;   /* e_machine */
    uint8_t elf_class;  /* 1 = 32-bit, 2 = 64-bit */
    const char *goarch; /* wd_elf_goarch, NULL if unknown (static string) */
    bool is_static;     /* no PT_INTERP and no DT_NEEDED */
    char *interp;       /* PT_INTERP or NULL */
    char **needed;      /* DT_NEEDED names */
    size_t nneeded;
};
/* wd_elf_inspect - Returns 0 or wd_elf_open's error; caller frees *out (wd_elf_info_free). */
int wd_elf_inspect(const uint8_t *buf, size_t len, const char *name, struct wd_elf_info *out,
                   struct wd_error **err);
void wd_elf_info_free(struct wd_elf_info *e);

#endif
