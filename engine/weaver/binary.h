/* engine/weaver/binary.h - what a deployer learns from a Service Weaver application binary alone:
 * deployer API version, weaver module version (Go build info), call graph, listeners, CPU
 * architecture and dynamic-linking needs, read with engine/base/elf.c; the file is untrusted
 * input.
 * Reference: ../shared/docs/weaver-protocol.md §5 and the version map in §0. */
#ifndef WD_ENGINE_BINARY_H
#define WD_ENGINE_BINARY_H

#include "engine/base/elf.h"
#include "engine/base/error.h"
#include "engine/weaver/rpc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WD_BINARY_MAX_SIZE ((size_t)2 << 30) /* 2 GiB: larger files are refused (EMSGSIZE) */

/* The deployer API version this engine speaks (weaver v0.24.1 ... v0.24.6). */
#define WD_BINARY_API_MAJOR 0
#define WD_BINARY_API_MINOR 24
#define WD_BINARY_API_PATCH 0
/* ... and the older ones it speaks too: v0.23.0 = weaver v0.23.0-v0.23.2 (control sockets, the
 * same messages; docs/design/old-releases.md §3), v0.22.0 and v0.20.0 = weaver v0.20.0-v0.22.0
 * (two pipes, engine/weaver/pipe.h; §4) */
#define WD_BINARY_API_MINOR_OLDEST 23
#define WD_BINARY_SUPPORTED "v0.20.0-v0.24.6" /* weaver module versions */

struct wd_edge {
    char *src, *dst; /* full component names */
};

struct wd_binary_listeners {
    char *component;
    struct {
        char **v;
        size_t n;
    } names; /* as in the marker: sorted by weaver generate, split at ',' */
};

struct wd_binary_info {
    char *path;
    char *arch; /* GOARCH-style: "amd64", "arm64", "386", "arm", ...; else "elf-machine-<n>" */
    int api_major, api_minor, api_patch; /* deployer API version from the version marker */
    char *module_version;                /* weaver module version ("v0.24.6"), NULL if absent */
    char *go_version;                    /* "go1.26.8", NULL without (readable) build info */
    /* PREFIXED for module >= v0.24.4, else FIXED49 (semver precedence, pseudo-versions use their
     * base). Without a semver module version (no build info, "(devel)"): PREFIXED if the string
     * "github.com/ServiceWeaver/weaver/metadata" occurs in the file, else FIXED49. */
    enum wd_rpc_hdr_fmt hdr_fmt;
    char **components; /* sorted set: Main and every edge endpoint */
    size_t ncomponents;
    struct wd_edge *edges; /* sorted by (src, dst), deduplicated, checksums verified */
    size_t nedges;
    struct wd_binary_listeners *listeners; /* sorted by component, then names; deduplicated */
    size_t nlisteners;
    bool is_static; /* no PT_INTERP and no DT_NEEDED */
    char *interp;   /* PT_INTERP, NULL if none */
    struct {
        char **v;
        size_t n;
    } needed; /* DT_NEEDED entries in file order */
};

/* wd_binary_inspect - mmap @path read-only (at most WD_BINARY_MAX_SIZE) and inspect it.
 * @path is borrowed. On success *out is owned by the caller (wd_binary_info_free).
 * Returns 0, or <0 with *err set to one line saying what is wrong and what to do:
 * -ENOENT no such file, -EISDIR/-EACCES..., -EMSGSIZE over 2 GiB, -EINVAL not an ELF file, a
 * corrupt ELF file, or not a Service Weaver application (no version marker). */
int wd_binary_inspect(const char *path, struct wd_binary_info **out, struct wd_error **err);

/* wd_binary_inspect_mem - the same over a buffer (@data borrowed, @name used in messages and
 * copied into info->path). Used by tests and the fuzzer. */
int wd_binary_inspect_mem(const uint8_t *data, size_t len, const char *name,
                          struct wd_binary_info **out, struct wd_error **err);

/* wd_binary_generation - the protocol generation @b speaks, in words, for `inspect`: "control
 * sockets, ...", "two pipes, ..." or "older than weaver v0.20.0: unsupported". A static
 * string. */
const char *wd_binary_generation(const struct wd_binary_info *b);
/* Whether @b's weavelets speak the two-pipe protocol (weaver v0.20.0-v0.22.0). */
bool wd_binary_pipes(const struct wd_binary_info *b);
/* 0 if `compose` (its manager and shims) can run @b: not for the pipe releases (-ENOTSUP with
 * one line saying so and what to do). */
int wd_binary_check_compose(const struct wd_binary_info *b, struct wd_error **err);
/* wd_binary_check_supported - 0 if this engine can deploy @b: weaver v0.20.0-v0.24.6 (deployer
 * API v0.20.0, v0.22.0, v0.23.0, v0.24.0) and the architecture of the host. Otherwise -ENOTSUP
 * (API version) or -ENOEXEC (architecture) with *err set. */
int wd_binary_check_supported(const struct wd_binary_info *b, struct wd_error **err);


/* Whether the binary declares this component (full name) / this listener name. */
bool wd_binary_has_component(const struct wd_binary_info *b, const char *name);
bool wd_binary_has_listener(const struct wd_binary_info *b, const char *name);

/* wd_binary_info_free - NULL-safe. */
void wd_binary_info_free(struct wd_binary_info *b);
static inline void wd_binary_info_freep(struct wd_binary_info **b) { wd_binary_info_free(*b); }
#define autobinary __attribute__((cleanup(wd_binary_info_freep)))

#endif
