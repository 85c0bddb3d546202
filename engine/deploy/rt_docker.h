/* engine/deploy/rt_docker.h - what the docker runtime needs from its caller (cmd/up.c prepares the
 * image and the network; the runtime runs the containers). */
#ifndef WD_RT_DOCKER_H
#define WD_RT_DOCKER_H

#include <stdint.h>

#define WD_SHIM_PATH "/weaver-docker-shim"
#define WD_SHIM_DIR "/tmp/weaver" /* inside the container (a tmpfs) */
#define WD_SHIM_PORT 7071

struct wd_docker;

struct wd_docker_opts {
    struct wd_docker *dk;    /* borrowed; the loop thread's engine connection */
    const char *image;       /* image reference (tag or sha256:id) */
    const char *network;     /* the deployment's network */
    const char *binary_name; /* the app binary is /app/<binary_name> in the image */
    /* [docker] secrets are bind-mounted from here: SECRETS_DIR/NAME, a copy readable by the
     * container user only (cmd/up.c stages them). NULL when there are none. */
    const char *secrets_dir;
};

/* The engine name of [docker] volumes entry NAME of app APP: "APP_NAME" (as docker compose
 * names a project's volumes, so the compose file shares them). Caller frees. */
char *wd_docker_volume_name(const char *app, const char *name);

#endif
