/* weaver-docker dashboard [--open] APP: the address of the running app's dashboard, served by
 * its deployer on a loopback port under a secret path (POST /v1/dashboard). */
#include "cmd/cmd.h"
#include "engine/docker/json.h"
#include "engine/base/util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>

extern char **environ;

static const char dashboard_usage[] =
    "Usage: weaver-docker dashboard [--open] APP\n"
    "Print the address of the running APP's dashboard: groups and replicas, listeners, the call\n"
    "graph with live call counts, per-method latency and errors, the app's metrics, the last log\n"
    "lines and recent traces. Served by APP's deployer on 127.0.0.1 under a secret path; it\n"
    "refreshes by itself and its tables work without JavaScript.\n"
    "  --open  also open it in a browser (xdg-open)\n";

int wd_cmd_dashboard(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err)
{
    static const struct option longopts[] = {
        {"open", no_argument, NULL, 'O'}, {"help", no_argument, NULL, 'h'}, {0}};
    bool open_it = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'O':
            open_it = true;
            break;
        case 'h':
            fputs(dashboard_usage, stdout);
            return 0;
        default:
            return wd_cmd_bad_option("dashboard", argv, "h", err);
        }
    }
    if (argc - optind != 1)
        return wd_err(err, EINVAL, "dashboard: give one APP, e.g. 'weaver-docker dashboard shop'");
    const char *app = argv[optind];
    struct wd_buf resp = {.max = 1 << 20};
    int status = wd_cmd_control(ctx, "dashboard", app, "POST", "/v1/dashboard", "{}", &resp, err);
    if (status < 0) {
        wd_buf_free(&resp);
        return status;
    }
    if (status != 200) {
        int r = wd_cmd_refused("dashboard", status, &resp, "the deployer has no dashboard", err);
        wd_buf_free(&resp);
        return r;
    }
    autojson cJSON *j = NULL;
    autoerr struct wd_error *perr = NULL;
    int pr = wd_json_parse(resp.data, resp.len, "the deployer's answer", &j, &perr);
    wd_buf_free(&resp);
    const char *url = pr == 0 ? wd_json_str(j, "url") : NULL;
    if (url == NULL)
        return wd_err(err, EPROTO, "dashboard: the deployer's answer has no address");
    printf("%s: dashboard at %s\n", app, url);
    fflush(stdout);
    if (open_it) {
        autofree char *prog = xstrdup("xdg-open"), *arg = xstrdup(url);
        char *args[] = {prog, arg, NULL};
        pid_t pid;
        int rc = posix_spawnp(&pid, "xdg-open", NULL, NULL, args, environ);
        int st = 0;
        if (rc != 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            return wd_err(err, rc ? rc : EIO,
                          "dashboard: could not open a browser (xdg-open%s); open the address "
                          "above yourself",
                          rc == ENOENT ? " is not installed" : " failed");
    }
    return 0;
}
