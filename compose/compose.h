/* compose/compose.h - render the compose file of `weaver-docker compose` (docs/design/compose.md)
 * with libyaml's emitter. Pure: no I/O, no engine; tests/unit/test_compose.c checks it.
 * The file uses only keys valid for docker-compose 1.29, Compose v2 and `docker stack deploy`
 * (../shared/docs/docker-engine.md §8). */
#ifndef WD_COMPOSE_COMPOSE_H
#define WD_COMPOSE_COMPOSE_H

#include "engine/docker.h"
#include "engine/error.h"
#include "engine/util.h"

#include <stddef.h>
#include <stdint.h>

#define WD_COMPOSE_VERSION "3.8"
#define WD_COMPOSE_MANAGER "manager"    /* service name, also the shims' WEAVER_SHIM_MANAGER host */
#define WD_COMPOSE_NETWORK "weaver"     /* the file's one network (<project>_weaver) */
#define WD_COMPOSE_TMPFS_BYTES 67108864 /* /tmp of every container */

struct wd_compose_group {
    const char *name;    /* full name of its first component: the shims' WEAVER_SHIM_GROUP */
    const char *service; /* service name: the group's slug, e.g. "shop-cart" */
    int replicas;
};

struct wd_compose_listener {
    const char *name;
    uint16_t port; /* inside the manager and published on the host */
};

struct wd_compose_spec {
    const char *app;
    const char *image;       /* image ID, "sha256:<64 hex>": nothing is pulled */
    const char *binary_name; /* the app binary is /app/<binary_name> in the image */
    const char *manager_bin; /* weaver-docker in the image, e.g. "/weaver-docker" */
    const char *shim_bin;    /* the shim in the image, "/weaver-docker-shim" */
    const char *token_hex;   /* 64 hex chars: the link secret of this file */
    const char *config_text; /* weaver.toml text for the manager, or NULL */
    uint16_t manager_port;
    const struct wd_compose_group *groups;
    size_t ngroups;
    const struct wd_compose_listener *listeners;
    size_t nlisteners;
    const char *const *args; /* [serviceweaver] args of the weavelets */
    size_t nargs;
    const char *const *env; /* [serviceweaver] env of the weavelets, "K=V" */
    size_t nenv;
    const struct wd_label *labels; /* extra labels on everything (WEAVER_DOCKER_LABELS) */
    size_t nlabels;
};

/* wd_compose_render - append the YAML document to @out. Returns 0 or <0 with *err set (-EINVAL
 * for a bad spec, -EIO if libyaml fails). */
int wd_compose_render(const struct wd_compose_spec *s, struct wd_buf *out, struct wd_error **err);

/* wd_compose_escape - a copy of @s with '$' doubled, so compose's variable interpolation gives
 * back @s. Caller frees. */
char *wd_compose_escape(const char *s);

#endif
