/* weaver-docker scale APP GROUP=N...: change the replicas of a running app's groups through its
 * deployer's control API (POST /v1/scale). */
#include "cmd/cmd.h"
#include "engine/weaver/config.h"
#include "engine/docker/json.h"
#include "engine/base/util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char scale_usage[] =
    "Usage: weaver-docker scale APP GROUP=N [GROUP=N...]\n"
    "Run N replicas (1-64) of each GROUP of the running APP from now on. New replicas join\n"
    "routing and the listeners once ready; extra ones leave both at once and stop after a short\n"
    "drain. GROUP is a group's name as 'weaver-docker ps' shows it (\"shop.Cart\"), its slug\n"
    "(\"shop-cart\") or a component's full name.\n";

int wd_cmd_scale(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err)
{
    static const struct option longopts[] = {{"help", no_argument, NULL, 'h'}, {0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        if (c == 'h') {
            fputs(scale_usage, stdout);
            return 0;
        }
        return wd_cmd_bad_option("scale", argv, "+h", err);
    }
    if (argc - optind < 2)
        return wd_err(err, EINVAL, "scale: give APP and at least one GROUP=N, e.g. "
                                   "'weaver-docker scale shop shop.Cart=3'");
    const char *app = argv[optind];
    autojson cJSON *body = wd_json_new_object();
    for (int i = optind + 1; i < argc; i++) {
        const char *eq = strrchr(argv[i], '=');
        if (eq == NULL || eq == argv[i])
            return wd_err(err, EINVAL, "scale: \"%s\" is not GROUP=N (e.g. shop.Cart=3)", argv[i]);
        autofree char *group = xstrndup(argv[i], (size_t)(eq - argv[i]));
        char *end = NULL;
        errno = 0;
        long n = strtol(eq + 1, &end, 10);
        if (eq[1] < '0' || eq[1] > '9' || *end || errno || n < 1 || n > WD_CONFIG_MAX_REPLICAS)
            return wd_err(err, EINVAL,
                          "scale: replicas of %s must be a number from 1 to %d, not \"%s\" (to "
                          "stop the app: weaver-docker down %s)",
                          group, WD_CONFIG_MAX_REPLICAS, eq + 1, app);
        if (cJSON_GetObjectItemCaseSensitive(body, group))
            return wd_err(err, EINVAL, "scale: group %s is named twice", group);
        cJSON_AddNumberToObject(body, group, (double)n);
    }
    autofree char *text = wd_json_print(body);
    struct wd_buf resp = {.max = 4 << 20};
    int status = wd_cmd_control(ctx, "scale", app, "POST", "/v1/scale", text, &resp, err);
    if (status < 0) {
        wd_buf_free(&resp);
        return status;
    }
    if (status != 200) {
        int r = wd_cmd_refused("scale", status, &resp, "the deployer refused", err);
        wd_buf_free(&resp);
        return r;
    }
    wd_buf_free(&resp);
    for (int i = optind + 1; i < argc; i++) {
        const char *eq = strrchr(argv[i], '=');
        printf("%s: %.*s now runs %s replica%s\n", app, (int)(eq - argv[i]), argv[i], eq + 1,
               strcmp(eq + 1, "1") == 0 ? "" : "s");
    }
    return 0;
}
