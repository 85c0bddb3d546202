/* compose/compose.h - render the compose file of `weaver-docker compose` (docs/design/compose.md)
 * with libyaml's emitter. Pure: no I/O, no engine; tests/unit/test_compose.c checks it.
 * The file uses only keys valid for docker-compose 1.29, Compose v2+ (checked with v5.6.0) and
 * `docker stack deploy` (../shared/docs/docker-engine.md §8), except pids_limit (a group's
 * pids > 0) with mem_limit/cpus, which stack rejects. `version` is written with swarm only. */
#ifndef WD_COMPOSE_COMPOSE_H
#define WD_COMPOSE_COMPOSE_H

#include "engine/docker/docker.h"
#include "engine/base/error.h"
#include "engine/base/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WD_COMPOSE_VERSION "3.8"        /* written in the swarm file only */
#define WD_COMPOSE_MANAGER "manager"    /* service name, also the shims' WEAVER_SHIM_MANAGER host */
#define WD_COMPOSE_FRONT "front"        /* --swarm: the service that publishes the listeners */
#define WD_COMPOSE_DRAIN_MS 3000        /* --swarm: old tasks serve this long after SIGTERM */
#define WD_COMPOSE_NETWORK "weaver"     /* the file's one network (<project>_weaver) */
#define WD_COMPOSE_TMPFS_BYTES 67108864 /* /tmp of every container */
#define WD_COMPOSE_SECRET_UID "65532"   /* owner of /run/secrets/NAME: the image user */
/* nofile and nproc of every container, as `up` sets them (engine/docker/docker_parse.c): Podman
 * otherwise asks for 1048576 of each, which a rootful Podman without CAP_SYS_RESOURCE (or with
 * lower hard limits) cannot set, and every start fails */
#define WD_COMPOSE_ULIMIT 4096
/* the name Podman puts in every container's /etc/hosts for the host: the Podman file's
 * stand-in for host.docker.internal (Podman 4.3 has no host-gateway) */
#define WD_COMPOSE_PODMAN_HOST "host.containers.internal"

struct wd_compose_group {
    const char *name;    /* full name of its first component: the shims' WEAVER_SHIM_GROUP */
    const char *service; /* service name: the group's slug, e.g. "shop-cart" */
    int replicas;
    /* [docker] env of this group, "K=V" (env_file values already merged in, see
     * wd_config_group_env); applied after the spec's [serviceweaver] env */
    const char *const *env;
    size_t nenv;
    int64_t memory_bytes; /* deploy.resources.limits.memory (mem_limit if pids); 0 = none */
    int64_t nano_cpus;    /* deploy.resources.limits.cpus (cpus if pids); 0 = none */
    int64_t pids;         /* pids_limit (docker-compose only: stack rejects it); 0 = none */
};

/* [docker] volumes: a bind mount of an absolute host path, or a named volume NAME, which the
 * file declares as the engine volume "APP_NAME" (shared with `weaver-docker up`). */
struct wd_compose_volume {
    bool bind;
    const char *source; /* bind: absolute host path; else the volume's name in weaver.toml */
    const char *target; /* absolute path in the container */
    bool read_only;
};

/* [docker] secrets: NAME is /run/secrets/NAME in every group's containers (uid/gid 65532, mode
 * 0400 under swarm; docker-compose bind-mounts file as it is). */
struct wd_compose_secret {
    const char *name;
    const char *file; /* the file compose reads: a copy made for it, relative to the file */
};

struct wd_compose_listener {
    const char *name;
    uint16_t port;       /* inside the manager and published on the host */
    char host_ip[46]; /* publish on this address only ("127.0.0.1"); "": every interface */
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
    /* [docker] world keys; group services get all of them, the manager only extra_hosts */
    const struct wd_compose_volume *volumes;
    size_t nvolumes;
    const struct wd_compose_secret *secrets;
    size_t nsecrets;
    const char *const *networks; /* existing networks: declared external */
    size_t nnetworks;
    /* "NAME:ADDRESS", after host.docker.internal:host-gateway (not with podman) */
    const char *const *extra_hosts;
    size_t nextra_hosts;
    const uint16_t *host_ports; /* WEAVER_SHIM_HOST_PORTS of the shims */
    size_t nhost_ports;
    /* for 'docker stack deploy': one DNS answer per task (endpoint_mode dnsrr, which
     * docker-compose 1.29 warns about) and host-mode ports on every interface (Swarm cannot
     * publish on one address); otherwise for docker compose, host_ip kept */
    bool swarm;
    /* for Podman (podman-compose; the Go Compose CLI on Podman's socket): no
     * host.docker.internal:host-gateway, which podman 4.3 refuses ("invalid IP address in
     * add-host"); the manager relays host_ports to WD_COMPOSE_PODMAN_HOST instead. No
     * healthchecks either (compose.c, group()) */
    bool podman;
    /* --swarm: the front's image (the manager alone, so its ID outlives app versions), its
     * path there, and this file's stamp (ms; the front prefers the newest ready manager).
     * With a front the manager publishes nothing, and the manager and groups update
     * start-first, draining WD_COMPOSE_DRAIN_MS after SIGTERM (docs/design/rollout.md) */
    const char *front_image;
    const char *front_bin;
    uint64_t stamp;
};

/* wd_compose_render - append the YAML document to @out. Returns 0 or <0 with *err set (-EINVAL
 * for a bad spec, -EIO if libyaml fails). */
int wd_compose_render(const struct wd_compose_spec *s, struct wd_buf *out, struct wd_error **err);

/* wd_compose_escape - a copy of @s with '$' doubled, so compose's variable interpolation gives
 * back @s. Caller frees. */
char *wd_compose_escape(const char *s);

#endif
