/* weaver-docker: a Service Weaver deployer for the Docker and Podman engines. */
#include "cmd/cmd.h"
#include "engine/base/log.h"
#include "engine/base/util.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct command {
    const char *name;
    int (*fn)(struct wd_ctx *, int, char **, struct wd_error **);
    const char *summary;
};

static const struct command commands[] = {
    {"up", wd_cmd_up, "run an app: one container (or process) per component group"},
    {"down", wd_cmd_down, "stop and remove everything an app's deployment created"},
    {"ps", wd_cmd_ps, "list running apps, groups and replicas"},
    {"logs", wd_cmd_logs, "show an app's logs"},
    {"metrics", wd_cmd_metrics, "show a running app's metrics (or serve them to Prometheus)"},
    {"dashboard", wd_cmd_dashboard, "a running app's dashboard: call graph, metrics, logs, traces"},
    {"profile", wd_cmd_profile, "profile a running app's replicas into one pprof file"},
    {"scale", wd_cmd_scale, "change the replicas of a running app's groups"},
    {"rollout", wd_cmd_rollout, "show or abort the rollout of a new version"},
    {"compose", wd_cmd_compose, "write a compose file that runs the app without weaver-docker"},
    {"inspect", wd_cmd_inspect, "show what a weaver binary contains (components, listeners)"},
    {"version", wd_cmd_version, "print versions"},
    {"manage", wd_cmd_manage, NULL}, /* internal: a compose file's manager; not listed */
};

static void usage(FILE *f)
{
    fputs("Usage: weaver-docker [-H HOST] [-v] COMMAND [ARGS...]\n"
          "Run Service Weaver applications on the Docker or Podman engine.\n\n"
          "Commands:\n",
          f);
    for (size_t i = 0; i < WD_ARRAY_LEN(commands); i++)
        if (commands[i].summary)
            fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fputs("\nOptions:\n"
          "  -H, --host URL   engine socket (unix:///path); default: $DOCKER_HOST,\n"
          "                   $CONTAINER_HOST, /var/run/docker.sock, then Podman's sockets\n"
          "  -v, --verbose    more diagnostics (-vv: debug); WEAVER_LOG=debug does the same\n"
          "  -h, --help       print this help\n\n"
          "Run 'weaver-docker COMMAND --help' for a command's options.\n"
          "Exit status: 0 success, 1 error, 2 usage error or invalid input.\n",
          f);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"host", required_argument, NULL, 'H'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    struct wd_ctx ctx = {0};
    int c;
    signal(SIGPIPE, SIG_IGN);
    opterr = 0; /* each command says what is wrong in one line of its own */
    /* a deployer holds two descriptors per proxied connection: take what the hard limit
     * allows (listeners pause rather than spin when even that runs out) */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max < 65536 ? rl.rlim_max : 65536;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    while ((c = getopt_long(argc, argv, "+H:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'H':
            ctx.host = optarg;
            break;
        case 'v':
            ctx.verbose++;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("weaver-docker %s\n", WD_VERSION);
            return 0;
        default:
            fprintf(stderr, "weaver-docker: %s '%s' (see 'weaver-docker --help')\n",
                    optopt && strchr("H", optopt) ? "missing value for option" : "unknown option",
                    argv[optind - 1]);
            return 2;
        }
    }
    enum wd_log_level lvl = ctx.verbose >= 2 ? WD_LOG_DEBUG : ctx.verbose ? WD_LOG_INFO : WD_LOG_WARN;
    const char *env = getenv("WEAVER_LOG");
    if (env && !strcasecmp(env, "debug"))
        lvl = WD_LOG_DEBUG;
    else if (env && !strcasecmp(env, "info"))
        lvl = WD_LOG_INFO;
    else if (env && !strcasecmp(env, "error"))
        lvl = WD_LOG_ERROR;
    wd_log_set_level(lvl);
    const char *nc = getenv("NO_COLOR");
    const char *term = getenv("TERM");
    ctx.color = (nc == NULL || !*nc) && !(term && !strcmp(term, "dumb")) && isatty(1) && isatty(2);

    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[optind];
    for (size_t i = 0; i < WD_ARRAY_LEN(commands); i++) {
        if (strcmp(commands[i].name, name) != 0)
            continue;
        autoerr struct wd_error *err = NULL;
        int r = commands[i].fn(&ctx, argc - optind, argv + optind, &err);
        if (r >= 0)
            return r; /* a command may return a positive exit status of its own */
        fprintf(stderr, "weaver-docker: %s\n", err ? err->msg : strerror(-r));
        return -r == EINVAL ? 2 : 1;
    }
    fprintf(stderr, "weaver-docker: unknown command '%s' (see 'weaver-docker --help')\n", name);
    return 2;
}
