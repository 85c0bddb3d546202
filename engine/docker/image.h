/* engine/docker/image.h - FROM-scratch images for weaver-docker: the app binary at /app/<name>, the
 * shim at /weaver-docker-shim (entrypoint), numeric non-root user, our labels. The tag is
 * content-addressed, weaver-docker/<app>:<first 12 hex of sha256(binary + shim + settings)>, so an
 * unchanged app is never uploaded again. Dynamically linked binaries get their ELF interpreter
 * and DT_NEEDED libraries (resolved on the host, recursively) or fail naming CGO_ENABLED=0.
 *
 * Upload: POST /images/load of a docker-archive we write (default; faster than /build on Docker
 * 20.10 and Podman 4.3, see bench/engine.sh), or POST /build of a tar context. */
#ifndef WD_ENGINE_IMAGE_H
#define WD_ENGINE_IMAGE_H

#include "engine/docker/docker.h"
#include "engine/base/elf.h"
#include "engine/base/error.h"
#include "engine/base/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WD_IMAGE_SHIM_PATH "/weaver-docker-shim"
#define WD_IMAGE_USER "65532:65532"
#define WD_IMAGE_UID 65532
#define WD_IMAGE_REPO_PREFIX "weaver-docker/"
#define WD_MAX_IMAGE_FILE (512u << 20) /* one file put into an image */
#define WD_MAX_IMAGE_LIBS 256

enum wd_image_method {
    WD_IMAGE_LOAD = 0,  /* POST /images/load (docker-archive) */
    WD_IMAGE_BUILD = 1, /* POST /build (tar context + FROM scratch Dockerfile) */
};

struct wd_image_spec {
    const char *app;         /* [a-z0-9][a-z0-9._-]*, at most 64 chars: part of the tag */
    const char *binary_path; /* the app binary on the host */
    const char *binary_name; /* file name under /app/ (NULL: basename of binary_path) */
    const char *shim_path;   /* static shim -> /weaver-docker-shim, the entrypoint. NULL: the
                                entrypoint is the binary itself */
    /* ELF facts of the binary, e.g. from engine/weaver/binary.h. When both are unset, image.c reads
     * them itself. The architecture is always checked against the host's. */
    const char *interp;
    const char *const *needed;
    size_t nneeded;
    const char *const *cmd; /* image Cmd (NULL: ["/app/<name>"] when there is a shim) */
    size_t ncmd;
    const char *const *env; /* "K=V" */
    size_t nenv;
    const struct wd_kv *labels; /* plus app, owner and WEAVER_DOCKER_LABELS */
    size_t nlabels;
    const char *user; /* NULL: WD_IMAGE_USER */
    enum wd_image_method method;
    /* More host files (e.g. weaver-docker itself for a compose manager). A dynamically linked
     * one brings its ELF interpreter and libraries along, resolved like the binary's. */
    const struct wd_image_extra *extra;
    size_t nextra;
    /* Empty directories owned by the image user (mode 0755), e.g. the targets of named volumes:
     * the engine gives a new volume the owner of the directory it is first mounted on. */
    const char *const *owned_dirs;
    size_t nowned_dirs;
};

struct wd_image_extra {
    const char *host_path;  /* read from the host (symlinks followed) */
    const char *image_path; /* absolute path in the image, e.g. "/weaver-docker" */
};

struct wd_image_result {
    char *tag;          /* weaver-docker/<app>:<12 hex> */
    char *id;           /* sha256:... as the engine reports it */
    bool reused;        /* the tag existed: nothing was uploaded */
    int64_t size_bytes; /* engine's Size */
    size_t upload_bytes;
    size_t nlibs; /* shared objects added (interpreter included) */
    int64_t elapsed_ms;
};
void wd_image_result_free(struct wd_image_result *r);

/* wd_image_ensure - make sure the image for @s exists on the engine; build/load it if not.
 * Caller frees *out (wd_image_result_free). Errors: -ENOENT binary/shim missing, -ENOEXEC wrong
 * architecture, -EINVAL not ELF or corrupt (engine/base/elf.h) or a bad app name, -ELIBACC a
 * shared library cannot be found (message names CGO_ENABLED=0), engine errors as in docker.h. */
int wd_image_ensure(struct wd_docker *d, const struct wd_image_spec *s, struct wd_image_result *out,
                    struct wd_error **err);

/* wd_image_find_shim - the static shim to put into images: $WEAVER_DOCKER_SHIM, shim/ next to
 * our executable, or ../lib/weaver-docker/ from it. Caller frees; NULL if none is readable. */
char *wd_image_find_shim(void);
/* wd_image_find_manager - the static compose manager, found the same way:
 * $WEAVER_DOCKER_MANAGER, manager/ next to our executable, or ../lib/weaver-docker/. */
char *wd_image_find_manager(void);

/* ---- pure parts, exposed for tests and tools ---- */

/* One file of the image rootfs. */
struct wd_image_file {
    char *path; /* in the image, absolute ("/app/x") */
    uint32_t mode;
    uint8_t *data;
    size_t len;
};
/* Everything that goes into the image, decided before talking to the engine. */
struct wd_image_plan {
    struct wd_image_file *files;
    size_t nfiles;
    size_t nlibs;
    char *tag;
    char hash[65];  /* full sha256 hex of binary + shim + settings */
    char *settings; /* canonical JSON of the config settings (hashed) */
    const char *arch;
    int64_t created;   /* the app binary's mtime: the image's creation time, stable per binary */
    char **owned_dirs; /* absolute, sorted */
    size_t nowned_dirs;
};
void wd_image_plan_free(struct wd_image_plan *p);
/* wd_image_plan_make - read the files, resolve libraries, compute the tag. @extra are labels
 * added to the spec's (the engine handle's owner + WEAVER_DOCKER_LABELS). */
int wd_image_plan_make(const struct wd_image_spec *s, const struct wd_label *extra, size_t nextra,
                       struct wd_image_plan *out, struct wd_error **err);
/* Deterministic layer tar (sorted entries, uid/gid 0, mtime 0). */
int wd_image_layer_tar(const struct wd_image_plan *p, struct wd_buf *out, struct wd_error **err);
/* docker-archive for /images/load; *config_hex gets the future image ID (sha256 of the config). */
int wd_image_archive(const struct wd_image_plan *p, struct wd_buf *out, char config_hex[65],
                     struct wd_error **err);
/* Build context for /build: Dockerfile + rootfs/. */
int wd_image_context(const struct wd_image_plan *p, struct wd_buf *out, struct wd_error **err);

#endif
