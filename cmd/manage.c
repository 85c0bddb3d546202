/* `weaver-docker manage`: the manager service of a compose file (docs/design/compose.md). Not
 * meant to be run by hand: `weaver-docker compose` writes its command line and environment. */
#include "cmd/cmd.h"
#include "engine/weaver/binary.h"
#include "engine/weaver/config.h"
#include "engine/deploy/deploy.h"
#include "engine/base/log.h"
#include "engine/deploy/rt_compose.h"
#include "engine/deploy/front.h"
#include "engine/base/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char manage_usage[] =
    "Usage: weaver-docker manage [OPTIONS] BINARY\n"
    "       weaver-docker manage --front [--manager=HOST] [--port=N] --listener=NAME=PORT...\n"
    "Internal: the manager service of a file written by 'weaver-docker compose'. Runs the\n"
    "envelope for BINARY: weavelets' shims register with it on --port, it serves the app's\n"
    "listeners and prints the weavelets' logs. The config is read from $WEAVER_COMPOSE_CONFIG\n"
    "(weaver.toml text), the link secret from $WEAVER_COMPOSE_TOKEN (64 hex characters),\n"
    "the file's stamp from $WEAVER_COMPOSE_STAMP and a drain after SIGTERM (ms) from\n"
    "$WEAVER_COMPOSE_DRAIN_MS. --front runs a Swarm stack's front instead: it publishes the\n"
    "listeners and sends new connections to the newest ready manager task of HOST\n"
    "(default manager).\n\n"
    "Options:\n"
    "  --port=N               port for the shims (default 7070)\n"
    "  --listener=NAME=PORT   serve listener NAME on 0.0.0.0:PORT (repeatable)\n"
    "  --host-name=NAME       relay [docker] host_ports to NAME (default\n"
    "                         host.docker.internal)\n"
    "  --health               exit 0 if a manager answers on --port of this host\n"
    "  --front                run the front of a Swarm stack (no BINARY)\n"
    "  --manager=HOST         the managers' service name, for --front (default manager)\n"
    "  -h, --help             print this help and exit\n\n"
    "Exit status: 0 stopped on request, 1 error, 2 invalid input.\n";

/* The healthcheck: the manager answers on --port. Not "the deployment serves": Swarm puts a
 * task in its service's DNS only once it is healthy, and the shims find the manager by name.
 * (The front asks for "serves" itself; the groups' health waits for it.) */
static int health(uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ready = false;
    uint64_t stamp = 0;
    int r = wd_compose_status((const struct sockaddr *)&a, sizeof a, 2000, &ready, &stamp);
    puts(r < 0 ? "no manager" : ready ? "ok" : "ok (not every group serves yet)");
    return r == 0 ? 0 : 1;
}

/* NAME=PORT of --listener: 0, or -EINVAL. */
static int parse_listener(const char *spec, char **name, uint16_t *port, struct wd_error **err)
{
    const char *eq = strrchr(spec, '=');
    char *end = NULL;
    long p = eq ? strtol(eq + 1, &end, 10) : -1;
    if (eq == NULL || eq == spec || end == eq + 1 || *end || p < 1 || p > 65535)
        return wd_err(err, EINVAL, "manage: --listener wants NAME=PORT, not \"%s\"", spec);
    *name = xstrndup(spec, (size_t)(eq - spec));
    *port = (uint16_t)p;
    return 0;
}

static int run_front(const char *manager, uint16_t port, const char *const *specs, size_t n,
                     struct wd_error **err)
{
    if (n == 0)
        return wd_err(err, EINVAL, "manage: --front needs at least one --listener=NAME=PORT");
    struct wd_front_listener ls[64];
    char *names[64] = {NULL};
    int r = 0;
    size_t k = 0;
    for (; r == 0 && k < n; k++) {
        r = parse_listener(specs[k], &names[k], &ls[k].port, err);
        ls[k].name = names[k];
    }
    if (r == 0) {
        if (wd_log_get_level() < WD_LOG_INFO)
            wd_log_set_level(WD_LOG_INFO);
        setvbuf(stdout, NULL, _IOLBF, 0);
        struct wd_front_opts fo = {
            .manager_host = manager, .manager_port = port, .listeners = ls, .nlisteners = n};
        r = wd_front_run(&fo, err);
    }
    for (size_t i = 0; i < k; i++)
        free(names[i]);
    return r;
}

/* Under a Swarm rollover a draining manager holds on while no other manager (another file's
 * stamp) serves: until then the front, which skips a draining manager but keeps its last
 * choice while none serves, still sends new connections here. Asked as the front
 * asks (a status hello to every task of "manager"), with short timeouts: it runs on the loop,
 * during the drain only. */
struct hold {
    uint16_t port;
    uint64_t stamp;
};

static bool no_other_manager(struct wd_deploy *d, void *arg)
{
    (void)d;
    const struct hold *h = arg;
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)h->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    if (getaddrinfo("manager", port, &hints, &ai) != 0)
        return true;
    bool newer = false;
    for (struct addrinfo *a = ai; a && !newer; a = a->ai_next) {
        bool ready = false;
        uint64_t stamp = 0;
        newer = wd_compose_status(a->ai_addr, a->ai_addrlen, 200, &ready, &stamp) == 0 && ready &&
                stamp != h->stamp;
    }
    freeaddrinfo(ai);
    return !newer;
}

/* A decimal environment value up to max, or def when unset. -EINVAL when malformed. */
static int env_u64(const char *name, uint64_t max, uint64_t def, uint64_t *out,
                   struct wd_error **err)
{
    const char *v = getenv(name);
    *out = def;
    if (v == NULL || *v == 0)
        return 0;
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || x > max || v[0] == '-')
        return wd_err(err, EINVAL, "manage: %s \"%.30s\" is not a number 0-%llu", name, v,
                      (unsigned long long)max);
    *out = x;
    return 0;
}

/* NAME=PORT: serve listener NAME on all interfaces of the manager container. */
static int set_listener(struct wd_config *cfg, const char *spec, struct wd_error **err)
{
    autofree char *name = NULL;
    uint16_t port = 0;
    if (parse_listener(spec, &name, &port, err) < 0)
        return -EINVAL;
    char *addr = xasprintf("0.0.0.0:%u", (unsigned)port);
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
        {"front", no_argument, NULL, 'F'},      {"manager", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0}};
    long port = WD_COMPOSE_MANAGER_PORT;
    bool want_health = false, front = false;
    const char *host_name = NULL, *manager = "manager"; /* compose.h's service name */
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
        case 'F':
            front = true;
            break;
        case 'm':
            manager = optarg;
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
    if (front) {
        if (optind != argc)
            return wd_err(err, EINVAL, "manage: --front takes no BINARY (see --help)");
        return run_front(manager, (uint16_t)port, listeners, nl, err);
    }
    if (optind != argc - 1)
        return wd_err(err, EINVAL, "manage: give the app binary (see --help)");
    const char *binary = argv[optind];

    struct wd_compose_rt_opts ro = {.port = (uint16_t)port, .host_name = host_name};
    uint64_t drain_ms = 0;
    if (env_u64("WEAVER_COMPOSE_STAMP", UINT64_MAX, 0, &ro.stamp, err) < 0 ||
        env_u64("WEAVER_COMPOSE_DRAIN_MS", 600000, 0, &drain_ms, err) < 0)
        return -EINVAL;
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
    if (r == 0)
        r = wd_binary_check_compose(bin, err);
    if (r == 0) {
        if (wd_log_get_level() < WD_LOG_INFO)
            wd_log_set_level(WD_LOG_INFO); /* registrations and replica changes: worth a line */
        setvbuf(stdout, NULL, _IOLBF, 0);
        wd_runtime_compose_configure(&ro);
        struct hold hold = {.port = (uint16_t)port, .stamp = ro.stamp};
        struct wd_deploy_opts o = {.rt = &wd_runtime_compose,
                                   .ready_fd = -1,
                                   .out = stdout,
                                   .drain_on_term_ms = (unsigned)drain_ms,
                                   .drain_hold = ro.stamp ? no_other_manager : NULL,
                                   .drain_hold_arg = &hold};
        r = wd_deploy_run(cfg, bin, &o, err);
    }
    wd_binary_info_free(bin);
    wd_config_free(cfg);
    return r;
}
