#include "cmd/cmd.h"
#include "engine/binary.h"
#include "engine/config.h"
#include "engine/deploy.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>

static const char up_usage[] =
    "Usage: weaver-docker up [OPTIONS] <weaver.toml | BINARY>\n"
    "Run a Service Weaver application: one weavelet per component group and replica, started\n"
    "when the group is first needed (main at once). Logs of every weavelet are printed merged;\n"
    "Ctrl-C (or SIGTERM) stops every weavelet and exits 0. A crashed weavelet is restarted with\n"
    "backoff and routing is updated for everyone.\n\n"
    "Options:\n"
    "  --runtime=RT     where weavelets run: process (local processes)\n"
    "  --traces=FILE    append received trace spans to FILE as JSON lines\n"
    "  --system         also print Service Weaver's own system log entries\n"
    "  -h, --help       print this help and exit\n\n"
    "Exit status: 0 stopped on request, 1 error, 2 invalid input.\n\n"
    "Examples:\n"
    "  weaver-docker up --runtime=process weaver.toml\n"
    "  weaver-docker up --runtime=process ./app\n";

/* The argument is a weaver.toml (by its name, as weaver requires) or an ELF binary. */
static int check_input(const char *path, struct wd_error **err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return wd_err(err, ENOENT, "%s does not exist; give the app's weaver.toml or binary",
                          path);
        return wd_err_sys(err, e, "open %s", path);
    }
    unsigned char m[4] = {0};
    ssize_t n = read(fd, m, sizeof m);
    close(fd);
    size_t l = strlen(path);
    if (n == 4 && m[0] == 0x7f && m[1] == 'E' && m[2] == 'L' && m[3] == 'F')
        return 0;
    if (l > 5 && strcmp(path + l - 5, ".toml") == 0)
        return 0;
    return wd_err(err, EINVAL,
                  "%s is not an ELF executable; give weaver.toml (a *.toml file) or a Service "
                  "Weaver app binary built for linux",
                  path);
}

/* Every [docker] listener must be one the app declares. */
static int check_listeners(const struct wd_config *cfg, const struct wd_binary_info *bin,
                           struct wd_error **err)
{
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        bool found = false;
        char known[1024] = "";
        size_t kl = 0;
        for (size_t j = 0; j < bin->nlisteners; j++)
            for (size_t k = 0; k < bin->listeners[j].names.n; k++) {
                const char *n = bin->listeners[j].names.v[k];
                if (strcmp(n, cfg->listeners[i].name) == 0)
                    found = true;
                int w = snprintf(known + kl, sizeof known - kl, "%s%s", kl ? ", " : "", n);
                if (w > 0 && (size_t)w < sizeof known - kl)
                    kl += (size_t)w;
            }
        if (!found)
            return wd_err(err, EINVAL,
                          "%s:%d: [docker] listener \"%s\" is not declared by the app (it "
                          "declares: %s)",
                          cfg->path ? cfg->path : "config", cfg->listeners[i].line,
                          cfg->listeners[i].name, kl ? known : "no listeners");
    }
    return 0;
}

int wd_cmd_up(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err)
{
    static const struct option opts[] = {{"runtime", required_argument, NULL, 'r'},
                                         {"traces", required_argument, NULL, 't'},
                                         {"system", no_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *runtime = "process";
    struct wd_deploy_opts o = {.color = ctx->color, .ready_fd = -1};
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            runtime = optarg;
            break;
        case 't':
            o.traces_path = optarg;
            break;
        case 's':
            o.show_system = true;
            break;
        case 'h':
            fputs(up_usage, stdout);
            return 0;
        default:
            return wd_err(err, EINVAL, "up: bad option (see 'weaver-docker up --help')");
        }
    }
    if (optind != argc - 1)
        return wd_err(err, EINVAL,
                      "up: give exactly one weaver.toml or app binary (see 'weaver-docker up "
                      "--help')");
    if (strcmp(runtime, "process") != 0)
        return wd_err(err, EINVAL, "up: unknown runtime \"%s\" (use --runtime=process)", runtime);
    o.runtime = runtime;

    struct wd_config *cfg = NULL;
    struct wd_binary_info *bin = NULL;
    int r = check_input(argv[optind], err);
    if (r < 0)
        return r;
    if ((r = wd_config_load(argv[optind], &cfg, err)) < 0)
        return r;
    r = wd_binary_inspect(cfg->binary, &bin, err);
    if (r == 0)
        r = wd_binary_check_supported(bin, err);
    if (r == 0)
        r = check_listeners(cfg, bin, err);
    if (r == 0)
        r = wd_deploy_run(cfg, bin, &o, err);
    wd_binary_info_free(bin);
    wd_config_free(cfg);
    return r;
}
