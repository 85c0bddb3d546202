/* `weaver-docker compose`: write a compose file that runs the app under docker-compose, Compose
 * (v2, v5), `docker stack deploy` or (--podman) podman-compose, with no weaver-docker process on
 * the host (docs/design/compose.md). The rendering is compose/compose.c; this file gathers its
 * inputs and builds the image. */
#include "compose/compose.h"
#include "cmd/cmd.h"
#include "engine/weaver/binary.h"
#include "engine/weaver/config.h"
#include "engine/deploy/deploy.h"
#include "engine/deploy/plan.h"
#include "engine/docker/docker.h"
#include "engine/docker/http.h"
#include "engine/docker/image.h"
#include "engine/base/log.h"
#include "engine/deploy/proxy.h"
#include "engine/deploy/rt_compose.h"
#include "engine/deploy/secrets.h"
#include "engine/base/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MANAGER_BIN "/weaver-docker-manager"
#define FRONT_BIN "/app/weaver-docker-manager" /* the front image: the manager as its binary */

static const char compose_usage[] =
    "Usage: weaver-docker compose [OPTIONS] [weaver.toml | DIR | BINARY]\n"
    "Write a compose file that runs the app with docker-compose (1.29), docker compose (v2/v5) or\n"
    "'docker stack deploy', with no weaver-docker process on the host: a 'manager' service runs\n"
    "the deployer and serves the listeners; every colocation group is a service whose replicas\n"
    "register with the manager. Builds (or reuses) one image holding the app, the shim and\n"
    "weaver-docker itself, and refers to it by ID, so nothing is pulled. A listener configured\n"
    "at port 0 gets a free port of this host, chosen now. The file holds a secret generated for\n"
    "it (the link token), and the values of [docker] env and env_file: treat it like a\n"
    "password. [docker] secrets are copied to FILE.secrets/, next to it.\n\n"
    "Options:\n"
    "  -o, --output=FILE      where to write (default: docker-compose.yml; '-' = stdout, not\n"
    "                         with [docker] secrets)\n"
    "  --save-images=DIR      also write the image as DIR/<app>-<id>.tar for 'docker load' on\n"
    "                         other machines (every swarm node needs it)\n"
    "  -f, --file=FILE        the weaver.toml or binary (default: ./weaver.toml)\n"
    "  -p, --project=NAME     project or stack name used in the printed commands (default:\n"
    "                         the app name)\n"
    "  --podman               write the file for Podman (podman-compose, or docker compose on\n"
    "                         Podman's socket): no host.docker.internal (podman refuses\n"
    "                         host-gateway; Podman's own name is host.containers.internal).\n"
    "                         The default when the engine is Podman\n"
    "  --swarm                write the file for 'docker stack deploy' (one DNS answer per\n"
    "                         task; listeners on every interface, which Swarm requires);\n"
    "                         without it, for docker compose: a localhost listener is\n"
    "                         published on 127.0.0.1 only\n"
    "  -h, --help             print this help and exit\n\n"
    "Exit status: 0 written, 1 error, 2 invalid input.\n\n"
    "Examples:\n"
    "  weaver-docker compose weaver.toml && docker-compose up -d\n"
    "  weaver-docker compose --swarm -o shop.yml --save-images /tmp/img weaver.toml\n"
    "  DOCKER_HOST=unix:///run/podman/podman.sock weaver-docker compose -o shop.yml weaver.toml\n"
    "  podman-compose -f shop.yml up -d\n"
    "  docker stack deploy --resolve-image never -c shop.yml shop\n";

/* ---- inputs (the same checks as `up`) ---- */

/* ---- listeners ---- */

static int free_port(uint16_t *out, struct wd_error **err)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t al = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return wd_err_sys(err, e, "find a free port");
    }
    close(fd);
    *out = ntohs(a.sin_port);
    return 0;
}

/* Every listener the binary declares gets a fixed port: the configured one, or a free one. */
static int listener_ports(const struct wd_config *cfg, const struct wd_binary_info *bin, bool swarm,
                          struct wd_compose_listener **out, size_t *nout, struct wd_error **err)
{
    struct wd_compose_listener *v = NULL; /* the names are checked (wd_plan_check) */
    size_t n = 0;
    for (size_t j = 0; j < bin->nlisteners; j++)
        for (size_t k = 0; k < bin->listeners[j].names.n; k++) {
            const char *name = bin->listeners[j].names.v[k];
            const char *addr = "localhost:0";
            for (size_t i = 0; i < cfg->nlisteners; i++)
                if (strcmp(cfg->listeners[i].name, name) == 0)
                    addr = cfg->listeners[i].address;
            autofree char *host = NULL;
            autofree char *port = NULL;
            if (wd_split_hostport(addr, &host, &port, err) < 0) {
                free(v);
                return -EINVAL;
            }
            long p = strtol(port, NULL, 10);
            uint16_t chosen = (uint16_t)p;
            if (p == 0) {
                if (free_port(&chosen, err) < 0) {
                    free(v);
                    return -(*err)->errnum;
                }
                fprintf(stderr,
                        "weaver-docker: listener \"%s\" has port 0 (%s) in the config: the file "
                        "publishes port %u, free on this host now\n",
                        name, addr, (unsigned)chosen);
            }
            /* where up would listen, compose publishes: loopback stays loopback */
            const char *ip = NULL;
            unsigned char a6[16];
            if (strcmp(host, "localhost") == 0)
                ip = "127.0.0.1";
            else if (*host && strcmp(host, "0.0.0.0") != 0 && strcmp(host, "::") != 0 &&
                     (inet_pton(AF_INET, host, a6) == 1 || inet_pton(AF_INET6, host, a6) == 1))
                ip = host;
            else if (*host && strcmp(host, "0.0.0.0") != 0 && strcmp(host, "::") != 0)
                fprintf(stderr,
                        "weaver-docker: listener \"%s\": %s is not an IP address; the file "
                        "publishes port %u on every interface\n",
                        name, host, (unsigned)chosen);
            if (ip && swarm)
                fprintf(stderr,
                        "weaver-docker: listener \"%s\" is on %s in the config, but Swarm "
                        "cannot publish on one address: under 'docker stack deploy' port %u is "
                        "open on every interface of the node (firewall it, or run the file "
                        "without --swarm under docker compose)\n",
                        name, ip, (unsigned)chosen);
            v = xrealloc(v, (n + 1) * sizeof *v);
            v[n] = (struct wd_compose_listener){.name = name, .port = chosen};
            if (ip)
                snprintf(v[n].host_ip, sizeof v[n].host_ip, "%s", ip);
            n++;
        }
    *out = v;
    *nout = n;
    return 0;
}

/* ---- output ---- */

static int write_atomic(const char *path, const void *data, size_t len, struct wd_error **err)
{
    if (strcmp(path, "-") == 0) {
        if (fwrite(data, 1, len, stdout) != len || fflush(stdout) != 0)
            return wd_err_sys(err, errno, "write stdout");
        return 0;
    }
    return wd_write_file_atomic(path, data, len, err); /* 0600: it holds a secret */
}

struct save_sink {
    int fd;
    size_t bytes;
    struct wd_error **err;
};

static int save_write(void *arg, const uint8_t *data, size_t len)
{
    struct save_sink *s = arg;
    while (len > 0) {
        ssize_t n = write(s->fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return wd_err_sys(s->err, errno ? errno : EIO, "write image archive");
        data += n;
        len -= (size_t)n;
        s->bytes += (size_t)n;
    }
    return 0;
}

/* GET /images/{id}/get: the `docker save` archive, for `docker load` elsewhere. */
/* This file's stamp: wall-clock ms, so the next version's file (written later) is newer. */
static uint64_t stamp_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int save_image(struct wd_docker *dk, const char *app, const char *id, const char *dir,
                      char **path_out, size_t *bytes, struct wd_error **err)
{
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return wd_err_sys(err, errno, "mkdir %s", dir);
    const char *hex = strncmp(id, "sha256:", 7) == 0 ? id + 7 : id;
    autofree char *path = xasprintf("%s/%s-%.12s.tar", dir, app, hex);
    autofree char *tmp = xasprintf("%s.tmp-%d", path, (int)getpid());
    struct wd_http *h = NULL;
    int r = wd_http_new(wd_docker_socket(dk), &h, err);
    if (r < 0)
        return r;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        wd_http_free(h);
        return wd_err_sys(err, errno, "create %s", tmp);
    }
    autofree char *esc = wd_http_escape(id);
    autofree char *url = xasprintf("/v%s/images/%s/get", wd_docker_api_version(dk), esc);
    struct wd_error *serr = NULL;
    struct save_sink sink = {.fd = fd, .err = &serr};
    struct wd_http_request rq = {
        .method = "GET", .path = url, .sink = save_write, .sink_arg = &sink, .sink_err = &serr};
    autoresponse struct wd_http_response rs = {0};
    r = wd_http_do(h, &rq, &rs, err);
    wd_err_free(&serr);
    wd_http_free(h);
    if (r == 0 && rs.status != 200)
        r = wd_err(err, wd_docker_status_errno(rs.status, NULL), "save image %s: engine %ld", id,
                   rs.status);
    if (close(fd) < 0 && r == 0)
        r = wd_err_sys(err, errno, "write %s", tmp);
    if (r == 0 && rename(tmp, path) < 0)
        r = wd_err_sys(err, errno, "rename %s", tmp);
    if (r < 0) {
        unlink(tmp);
        return r;
    }
    *bytes = sink.bytes;
    *path_out = WD_STEAL(path);
    return 0;
}

/* ---- [docker] volumes, secrets, networks ---- */

struct world {
    struct wd_compose_volume *volumes;
    struct wd_compose_secret *secrets;
    char **secret_files;
    char *secrets_dir;     /* OUTPUT.secrets: the copies docker-compose and stack read */
    const char *owned[64]; /* named-volume targets, owned by the app's user in the image */
    size_t nowned;
};

static void world_of(const struct wd_config *cfg, const char *output, struct world *w)
{
    w->volumes = xcalloc(cfg->nvolumes + 1, sizeof *w->volumes);
    for (size_t i = 0; i < cfg->nvolumes; i++) {
        const struct wd_volume_cfg *v = &cfg->volumes[i];
        w->volumes[i] = (struct wd_compose_volume){
            .bind = v->bind, .source = v->source, .target = v->target, .read_only = v->read_only};
        if (!v->bind && w->nowned < WD_ARRAY_LEN(w->owned))
            w->owned[w->nowned++] = v->target;
    }
    w->secrets = xcalloc(cfg->nsecrets + 1, sizeof *w->secrets);
    w->secret_files = xcalloc(cfg->nsecrets + 1, sizeof *w->secret_files);
    if (cfg->nsecrets == 0)
        return;
    w->secrets_dir = xasprintf("%s.secrets", output);
    /* relative to the compose file, which docker-compose and stack both resolve against the
     * file's directory: the file and its secrets move together */
    const char *base = strrchr(output, '/') ? strrchr(output, '/') + 1 : output;
    for (size_t i = 0; i < cfg->nsecrets; i++) {
        w->secret_files[i] = xasprintf("./%s.secrets/%s", base, cfg->secrets[i].name);
        w->secrets[i] = (struct wd_compose_secret){cfg->secrets[i].name, w->secret_files[i]};
    }
}

static void world_free(struct world *w)
{
    for (size_t i = 0; w->secret_files && w->secret_files[i]; i++)
        free(w->secret_files[i]);
    free(w->secret_files);
    free(w->secrets);
    free(w->volumes);
    free(w->secrets_dir);
}

/* [docker] networks are external to the file: say so when this engine lacks one (the file may
 * well be meant for another engine, so it is no error). */
static void check_networks(struct wd_docker *dk, const struct wd_config *cfg)
{
    for (size_t i = 0; i < cfg->networks.n; i++) {
        struct wd_network_info ni = {0};
        autoerr struct wd_error *nerr = NULL;
        int r = wd_docker_network_inspect(dk, cfg->networks.v[i], &ni, &nerr);
        wd_network_info_free(&ni);
        if (r == -ENOENT)
            fprintf(stderr,
                    "weaver-docker: [docker] networks: \"%s\" does not exist on this engine; "
                    "create it before starting the file (swarm: an overlay network)\n",
                    cfg->networks.v[i]);
    }
}

/* ---- the command ---- */

struct compose_opts {
    const char *output;
    const char *save_dir;
    const char *project;
    bool swarm;
    bool podman;
};

static int run(struct wd_ctx *ctx, const char *input, const struct compose_opts *co,
               struct wd_config *cfg, struct wd_binary_info *bin, struct wd_error **err)
{
    (void)input;
    if (wd_config_check_app_name(cfg->name, err) < 0)
        return -EINVAL;
    if (cfg->mtls) /* the weavelets ask the deployer for their keys and for every peer check */
        return wd_err(err, EINVAL,
                      "%s: [docker] mtls = true needs weaver-docker up: a compose file has no "
                      "deployer to issue and check the weavelets' certificates",
                      cfg->path_shown ? cfg->path_shown : cfg->binary);
    if (cfg->metrics_addr) /* the manager container serves no host port of its own */
        wd_warn("%s: [docker] metrics is left out of the compose file (it needs weaver-docker "
                "up); scrape the weavelets another way",
                cfg->path_shown ? cfg->path_shown : cfg->binary);
    if (cfg->nsecrets && strcmp(co->output, "-") == 0)
        return wd_err(err, EINVAL,
                      "%s: [docker] secrets need an output file (-o FILE): compose puts their "
                      "copies next to it, in FILE.secrets/",
                      cfg->path_shown ? cfg->path_shown : cfg->binary);
    size_t nl = 0;
    autofree struct wd_compose_listener *ls = NULL;
    int r = listener_ports(cfg, bin, co->swarm, &ls, &nl, err);
    if (r < 0)
        return r;
    size_t ng = 0;
    struct wd_group_plan *g = wd_groups_plan(cfg, bin, &ng); /* as up forms them */
    struct wd_compose_group *cg = xcalloc(ng + 1, sizeof *cg);
    bool pids_set = false;
    for (size_t i = 0; i < ng; i++) {
        const struct wd_strv *env = wd_config_group_env(cfg, g[i].name);
        struct wd_resources res = wd_config_group_res(cfg, g[i].name);
        cg[i] = (struct wd_compose_group){.name = g[i].name,
                                          .service = g[i].slug,
                                          .replicas = g[i].replicas,
                                          .env = (const char *const *)env->v,
                                          .nenv = env->n,
                                          .memory_bytes = res.memory_bytes,
                                          .nano_cpus = res.nano_cpus,
                                          .pids = res.pids};
        pids_set = pids_set || (res.pids != 0 && res.pids != WD_CONFIG_DEFAULT_PIDS);
    }
    /* pids_limit is valid for the compose tools only ('docker stack deploy' rejects the key,
     * and deploy.resources.limits.pids is 3.9 only and rejected by docker-compose 1.29): written
     * only when weaver.toml asks for a limit other than up's default */
    for (size_t i = 0; i < ng && (!pids_set || co->swarm); i++)
        cg[i].pids = 0;
    struct world w = {0};
    world_of(cfg, co->output, &w);

    autofree char *config_text = NULL;
    size_t clen = 0;
    if (cfg->path && (r = wd_read_file(cfg->path, 1u << 20, &config_text, &clen)) < 0)
        r = wd_err_sys(err, -r, "read %s", cfg->path);
    autofree char *shim = r == 0 ? wd_image_find_shim() : NULL;
    if (r == 0 && shim == NULL)
        r = wd_err(err, ENOENT,
                   "cannot find weaver-docker-shim; build it with 'make' or set "
                   "WEAVER_DOCKER_SHIM");
    autofree char *manager = r == 0 ? wd_image_find_manager() : NULL;
    if (r == 0 && manager == NULL)
        r = wd_err(err, ENOENT,
                   "cannot find weaver-docker-manager; build it with 'make' or set "
                   "WEAVER_DOCKER_MANAGER");

    autodocker struct wd_docker *dk = NULL;
    struct wd_image_result img = {0};
    if (r == 0)
        r = wd_docker_connect(ctx->host, &dk, err);
    const char *bname = strrchr(cfg->binary, '/') ? strrchr(cfg->binary, '/') + 1 : cfg->binary;
    if (r == 0) {
        check_networks(dk, cfg);
        struct wd_kv ilabels[] = {{WD_LABEL_ROLE, "image"}};
        struct wd_image_extra extra[] = {{manager, MANAGER_BIN}};
        struct wd_image_spec is = {
            .app = cfg->name,
            .binary_path = cfg->binary,
            .binary_name = bname,
            .shim_path = shim,
            .interp = bin->interp,
            .needed = (const char *const *)bin->needed.v,
            .nneeded = bin->needed.n,
            .labels = ilabels,
            .nlabels = 1,
            .extra = extra,
            .nextra = 1,
            /* a new named volume takes the owner of its target in the image: the app's user */
            .owned_dirs = w.owned,
            .nowned_dirs = w.nowned,
        };
        if ((r = wd_image_ensure(dk, &is, &img, err)) < 0)
            wd_err_wrap(err, "image for %s", cfg->name);
    }
    /* --swarm: the front's image holds the manager alone, so its ID (and the front service)
     * stays the same from one version's file to the next (docs/design/rollout.md) */
    struct wd_image_result front = {0};
    bool with_front = co->swarm && !co->podman && nl > 0;
    if (r == 0 && with_front) {
        struct wd_kv flabels[] = {{WD_LABEL_ROLE, "front-image"}};
        struct wd_image_spec fs = {
            .app = cfg->name,
            .binary_path = manager,
            .binary_name = "weaver-docker-manager",
            .labels = flabels,
            .nlabels = 1,
        };
        if ((r = wd_image_ensure(dk, &fs, &front, err)) < 0)
            wd_err_wrap(err, "front image for %s", cfg->name);
    }
    struct wd_buf yml = {0};
    autofree char *token = wd_random_hex(32);
    /* the image is in this engine's store: a file made on Podman is for Podman's tools */
    bool podman = co->podman || (!co->swarm && dk && wd_docker_is_podman(dk));
    if (r == 0) {
        size_t nextra = 0;
        const struct wd_label *extra = wd_docker_extra_labels(dk, &nextra);
        /* the owner label names the weaver-docker version; keep only the user's own labels */
        struct wd_label *lab = xcalloc(nextra + 1, sizeof *lab);
        size_t nlab = 0;
        for (size_t i = 0; i < nextra; i++)
            if (strcmp(extra[i].key, WD_LABEL_OWNER) != 0)
                lab[nlab++] = extra[i];
        struct wd_compose_spec spec = {
            .app = cfg->name,
            .image = img.id,
            .binary_name = bname,
            .manager_bin = MANAGER_BIN,
            .shim_bin = WD_IMAGE_SHIM_PATH,
            .token_hex = token,
            .config_text = config_text,
            .manager_port = WD_COMPOSE_MANAGER_PORT,
            .groups = cg,
            .ngroups = ng,
            .listeners = ls,
            .nlisteners = nl,
            .args = (const char *const *)cfg->args.v,
            .nargs = cfg->args.n,
            .env = (const char *const *)cfg->env.v,
            .nenv = cfg->env.n,
            .labels = lab,
            .nlabels = nlab,
            .volumes = w.volumes,
            .nvolumes = cfg->nvolumes,
            .secrets = w.secrets,
            .nsecrets = cfg->nsecrets,
            .networks = (const char *const *)cfg->networks.v,
            .nnetworks = cfg->networks.n,
            .extra_hosts = (const char *const *)cfg->extra_hosts.v,
            .nextra_hosts = cfg->extra_hosts.n,
            .host_ports = cfg->host_ports,
            .swarm = co->swarm,
            .podman = podman,
            .nhost_ports = cfg->nhost_ports,
            .front_image = with_front ? front.id : NULL,
            .front_bin = FRONT_BIN,
            .stamp = stamp_ms(),
        };
        const char *hdr =
            podman ? "# Written by weaver-docker compose for Podman: runs this Service Weaver\n"
                     "# app with podman-compose, or docker compose on Podman's socket.\n"
                     "# It holds a secret (the link token): do not publish it.\n"
                   : "# Written by weaver-docker compose: runs this Service Weaver app with\n"
                     "# docker-compose, docker compose or docker stack deploy.\n"
                     "# It holds a secret (the link token): do not publish it.\n";
        wd_buf_append(&yml, hdr, strlen(hdr));
        r = wd_compose_render(&spec, &yml, err);
        free(lab);
    }
    /* the secrets' copies first: the file must not name copies that are not there */
    if (r == 0)
        r = wd_secrets_stage(cfg, w.secrets_dir, err);
    if (r == 0 && (r = write_atomic(co->output, yml.data, yml.len, err)) < 0)
        wd_secrets_remove(cfg, w.secrets_dir);
    wd_buf_free(&yml);
    if (r == 0 && pids_set && co->swarm)
        fprintf(stderr,
                "weaver-docker: [docker] pids is left out: 'docker stack deploy' rejects "
                "pids_limit (without --swarm, the file sets it for docker compose)\n");
    autofree char *saved = NULL;
    size_t saved_bytes = 0;
    if (r == 0 && co->save_dir)
        r = save_image(dk, cfg->name, img.id, co->save_dir, &saved, &saved_bytes, err);
    autofree char *fsaved = NULL;
    size_t fsaved_bytes = 0;
    if (r == 0 && co->save_dir && with_front) {
        autofree char *fname = xasprintf("%s-front", cfg->name);
        r = save_image(dk, fname, front.id, co->save_dir, &fsaved, &fsaved_bytes, err);
    }
    if (r == 0 && strcmp(co->output, "-") != 0) {
        const char *proj = co->project ? co->project : cfg->name;
        FILE *o = stdout;
        fprintf(o, "wrote %s: services %smanager", co->output, with_front ? "front, " : "");
        for (size_t i = 0; i < ng; i++)
            fprintf(o, ", %s (x%d)", cg[i].service, cg[i].replicas);
        fprintf(o, "\nimage %s (%s)\n", img.id, img.tag);
        for (size_t i = 0; i < nl; i++)
            fprintf(o, "listener %s on port %u\n", ls[i].name, (unsigned)ls[i].port);
        if (with_front)
            fprintf(o, "front image %s (the manager alone: the same for every version)\n",
                    front.id);
        if (saved)
            fprintf(o, "saved the image to %s (%zu bytes): '%s load -i %s' on each machine\n",
                    saved, saved_bytes, podman ? "podman" : "docker", saved);
        if (fsaved)
            fprintf(o, "saved the front image to %s (%zu bytes): 'docker load -i %s' too\n",
                    fsaved, fsaved_bytes, fsaved);
        if (cfg->nsecrets)
            fprintf(o,
                    "secrets: copies in %s/ (readable by the container user only; keep them "
                    "next to the file)\n",
                    w.secrets_dir);
        if (co->swarm)
            fprintf(o, "run:   docker stack deploy --resolve-image never -c %s %s\n", co->output,
                    proj);
        else if (podman)
            fprintf(o, "run:   podman-compose -f %s -p %s up -d\n", co->output, proj);
        else
            fprintf(o, "run:   docker-compose -f %s -p %s up -d\n", co->output, proj);
    }
    wd_image_result_free(&img);
    wd_image_result_free(&front);
    world_free(&w);
    free(cg);
    wd_groups_plan_free(g, ng);
    return r;
}

int wd_cmd_compose(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},  {"save-images", required_argument, NULL, 's'},
        {"project", required_argument, NULL, 'p'}, {"file", required_argument, NULL, 'f'},
        {"swarm", no_argument, NULL, 'S'},         {"podman", no_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    struct compose_opts co = {.output = "docker-compose.yml"};
    int c;
    optind = 0;
    const char *file = NULL;
    while ((c = getopt_long(argc, argv, "o:p:f:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            file = optarg;
            break;
        case 'S':
            co.swarm = true;
            break;
        case 'P':
            co.podman = true;
            break;
        case 'o':
            co.output = optarg;
            break;
        case 's':
            co.save_dir = optarg;
            break;
        case 'p':
            co.project = optarg;
            break;
        case 'h':
            fputs(compose_usage, stdout);
            return 0;
        default:
            return wd_cmd_bad_option("compose", argv, "o:p:f:h", err);
        }
    }
    if (co.swarm && co.podman)
        return wd_err(err, EINVAL,
                      "compose: --swarm and --podman exclude each other: Swarm is Docker's");
    if (argc - optind > (file ? 0 : 1))
        return wd_err(err, EINVAL,
                      "compose: give one weaver.toml, directory or app binary (see "
                      "'weaver-docker compose --help')");
    autofree char *input = NULL;
    struct wd_config *cfg = NULL;
    struct wd_binary_info *bin = NULL;
    int r = wd_config_resolve_input(file ? file : optind < argc ? argv[optind] : NULL, &input, err);
    if (r == 0)
        r = wd_config_load(input, &cfg, err);
    if (r == 0)
        r = wd_config_check_binary(cfg, err);
    if (r == 0)
        r = wd_binary_inspect(cfg->binary, &bin, err);
    if (r == 0)
        r = wd_binary_check_supported(bin, err);
    if (r == 0)
        r = wd_binary_check_compose(bin, err);
    if (r == 0)
        r = wd_plan_check(cfg, bin, err); /* what up checks, with the same lines */
    if (r == 0)
        r = run(ctx, input, &co, cfg, bin, err);
    wd_binary_info_free(bin);
    wd_config_free(cfg);
    return r;
}
