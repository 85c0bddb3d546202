/* `weaver-docker manage`: the manager service of a compose file (docs/design/compose.md). Not
 * meant to be run by hand: `weaver-docker compose` writes its command line and environment. */
#include "cmd/cmd.h"
#include "engine/weaver/binary.h"
#include "engine/weaver/config.h"
#include "engine/deploy/deploy.h"
#include "engine/base/log.h"
#include "engine/deploy/rt_compose.h"
#include "engine/base/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char manage_usage[] =
    "Usage: weaver-docker manage [OPTIONS] BINARY\n"
    "Internal: the manager service of a file written by 'weaver-docker compose'. Runs the\n"
    "envelope for BINARY: weavelets' shims register with it on --port, it serves the app's\n"
    "listeners and prints the weavelets' logs. The config is read from $WEAVER_COMPOSE_CONFIG\n"
    "(weaver.toml text), the link secret from $WEAVER_COMPOSE_TOKEN (64 hex characters).\n\n"
    "Options:\n"
    "  --port=N               port for the shims (default 7070)\n"
    "  --listener=NAME=PORT   serve listener NAME on 0.0.0.0:PORT (repeatable)\n"
    "  --host-name=NAME       relay [docker] host_ports to NAME (default\n"
    "                         host.docker.internal)\n"
    "  --health               exit 0 if a manager answers on --port of this host\n"
    "  -h, --help             print this help and exit\n\n"
    "Exit status: 0 stopped on request, 1 error, 2 invalid input.\n";

static int health(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    puts(ok ? "ok" : "no manager");
    return ok ? 0 : 1;
}

/* NAME=PORT: serve listener NAME on all interfaces of the manager container. */
static int set_listener(struct wd_config *cfg, const char *spec, struct wd_error **err)
{
    const char *eq = strrchr(spec, '=');
    char *end = NULL;
    long port = eq ? strtol(eq + 1, &end, 10) : -1;
    if (eq == NULL || eq == spec || end == eq + 1 || *end || port < 1 || port > 65535)
        return wd_err(err, EINVAL, "manage: --listener wants NAME=PORT, not \"%s\"", spec);
    autofree char *name = xstrndup(spec, (size_t)(eq - spec));
    char *addr = xasprintf("0.0.0.0:%ld", port);
    for (size_t i = 0; i < cfg->nlisteners; i++)
        if (strcmp(cfg->listeners[i].name, name) == 0) {
            free(cfg->listeners[i].address);
            cfg->listeners[i].address = addr;
            return 0;
        }
    cfg->listeners = xrealloc(cfg->listeners, (cfg->nlisteners + 1) * sizeof *cfg->listeners);
    cfg->listeners[cfg->nlisteners++] =
        (struct wd_listener_cfg){.name = WD_STEAL(name), .address = addr, .line = 0};
    return 0;
}

int wd_cmd_manage(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err)
{
    (void)ctx;
    static const struct option opts[] = {
        {"port", required_argument, NULL, 'p'}, {"listener", required_argument, NULL, 'l'},
        {"health", no_argument, NULL, 'H'},     {"host-name", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0}};
    long port = WD_COMPOSE_MANAGER_PORT;
    bool want_health = false;
    const char *host_name = NULL;
    const char *listeners[64];
    size_t nl = 0;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': {
            char *end = NULL;
            port = strtol(optarg, &end, 10);
            if (end == optarg || *end || port < 1 || port > 65535)
                return wd_err(err, EINVAL, "manage: --port %s is not 1-65535", optarg);
            break;
        }
        case 'l':
            if (nl == WD_ARRAY_LEN(listeners))
                return wd_err(err, EINVAL, "manage: too many --listener options");
            listeners[nl++] = optarg;
            break;
        case 'H':
            want_health = true;
            break;
        case 'n':
            host_name = optarg;
            break;
        case 'h':
            fputs(manage_usage, stdout);
            return 0;
        default:
            return wd_cmd_bad_option("manage", argv, "h", err);
        }
    }
    if (want_health)
        return health((uint16_t)port);
    if (optind != argc - 1)
        return wd_err(err, EINVAL, "manage: give the app binary (see --help)");
    const char *binary = argv[optind];

    struct wd_compose_rt_opts ro = {.port = (uint16_t)port, .host_name = host_name};
    const char *tok = getenv("WEAVER_COMPOSE_TOKEN");
    if (tok == NULL || strlen(tok) != 2 * sizeof ro.token)
        return wd_err(err, EINVAL, "manage: WEAVER_COMPOSE_TOKEN must be %zu hex characters",
                      2 * sizeof ro.token);
    if (wd_unhex(tok, ro.token, sizeof ro.token) != (ssize_t)sizeof ro.token)
        return wd_err(err, EINVAL, "manage: WEAVER_COMPOSE_TOKEN must be hex");
    unsetenv("WEAVER_COMPOSE_TOKEN"); /* nothing we start needs it */

    struct wd_config *cfg = NULL;
    const char *text = getenv("WEAVER_COMPOSE_CONFIG");
    /* the env files, bind sources and secrets named in [docker] are on the host that wrote the
     * file, not in this container: compose carried them into the file itself */
    int r = text && *text ? wd_config_parse_ex(text, strlen(text), "weaver.toml",
                                               WD_CONFIG_NO_FILES, &cfg, err)
                          : wd_config_load(binary, &cfg, err);
    if (r < 0)
        return r;
    free(cfg->binary);
    cfg->binary = xstrdup(binary);
    for (size_t i = 0; r == 0 && i < nl; i++)
        r = set_listener(cfg, listeners[i], err);
    struct wd_binary_info *bin = NULL;
    if (r == 0)
        r = wd_binary_inspect(cfg->binary, &bin, err);
    if (r == 0)
        r = wd_binary_check_supported(bin, err);
    if (r == 0) {
        if (wd_log_get_level() < WD_LOG_INFO)
            wd_log_set_level(WD_LOG_INFO); /* registrations and replica changes: worth a line */
        setvbuf(stdout, NULL, _IOLBF, 0);
        wd_runtime_compose_configure(&ro);
        struct wd_deploy_opts o = {.rt = &wd_runtime_compose, .ready_fd = -1, .out = stdout};
        r = wd_deploy_run(cfg, bin, &o, err);
    }
    wd_binary_info_free(bin);
    wd_config_free(cfg);
    return r;
}
