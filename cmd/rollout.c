/* weaver-docker rollout APP [--abort]: the state of a rollout of a running app (`up` of a changed
 * binary or config; engine/deploy/rollout.h), or stop one under way: traffic goes back to the
 * running version and the new one is removed. Through the newest deployer's control API. */
#include "cmd/cmd.h"
#include "engine/docker/json.h"
#include "engine/base/util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <string.h>

static const char rollout_usage[] =
    "Usage: weaver-docker rollout APP [--abort]\n"
    "Show the rollout of APP under way ('weaver-docker up' of a changed binary or config rolls\n"
    "the running version over), or with --abort stop it: every new connection goes back to the\n"
    "running version and the new one is removed; the 'up' that started it exits 1.\n\n"
    "Options:\n"
    "  --abort     stop the rollout under way\n"
    "  -h, --help  print this help and exit\n\n"
    "Exit status: 0 success, 1 error (no rollout under way with --abort), 2 invalid input.\n";

int wd_cmd_rollout(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err)
{
    static const struct option longopts[] = {
        {"abort", no_argument, NULL, 'a'}, {"help", no_argument, NULL, 'h'}, {0}};
    bool abort_it = false;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'h') {
            fputs(rollout_usage, stdout);
            return 0;
        }
        if (c == 'a') {
            abort_it = true;
            continue;
        }
        return wd_cmd_bad_option("rollout", argv, "h", err);
    }
    if (argc - optind != 1)
        return wd_err(err, EINVAL, "rollout: give one APP (see 'weaver-docker rollout --help')");
    const char *app = argv[optind];
    struct wd_buf resp = {.max = 1 << 20};
    int status = wd_cmd_control(ctx, "rollout", app, abort_it ? "POST" : "GET",
                                abort_it ? "/v1/rollout/abort" : "/v1/rollout", NULL, &resp, err);
    if (status < 0) {
        wd_buf_free(&resp);
        return status;
    }
    if (status != 200) {
        int r = wd_cmd_refused("rollout", status, &resp,
                               abort_it ? "no rollout is under way" : "the deployer refused", err);
        wd_buf_free(&resp);
        return r;
    }
    autojson cJSON *j = cJSON_ParseWithLength(resp.data ? (const char *)resp.data : "", resp.len);
    wd_buf_free(&resp);
    if (abort_it) {
        printf("%s: rollout aborted; the running version serves every new connection, the new "
               "one is being removed\n",
               app);
        return 0;
    }
    const char *state = wd_json_str(j, "state");
    if (state == NULL) {
        printf("%s: no rollout under way\n", app);
        return 0;
    }
    bool is_new = strcmp(wd_json_str(j, "role") ? wd_json_str(j, "role") : "", "new") == 0;
    const char *peer = wd_json_str(j, is_new ? "from" : "to");
    long long pm = (long long)wd_json_i64_or(j, "permille", 0);
    if (is_new)
        printf("%s: rollout from deployment %.8s: %s, the new version takes %lld %% of new "
               "connections\n",
               app, peer ? peer : "?", state, pm / 10);
    else
        printf("%s: rollout to deployment %.8s: %s, the new version takes %lld %% of new "
               "connections\n",
               app, peer ? peer : "?", state, pm / 10);
    return 0;
}
