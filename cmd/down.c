#include "cmd/cmd.h"
#include "engine/docker.h"
#include "engine/state.h"
#include "engine/util.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const char down_usage[] =
    "Usage: weaver-docker down [OPTIONS] [APP]\n"
    "Stop an app started with 'weaver-docker up' (from any terminal) and remove every container\n"
    "and the network it created. Works also when its deployer was killed. Without APP, the one\n"
    "app that is up.\n\n"
    "Options:\n"
    "  --rmi        also remove the app's images\n"
    "  -a, --all    every app that weaver-docker runs\n"
    "  -h, --help   print this help and exit\n\n"
    "Exit status: 0 success (also when nothing was up), 1 error, 2 invalid input.\n";

int wd_cmd_down(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err)
{
    static const struct option opts[] = {{"rmi", no_argument, NULL, 'r'},
                                         {"all", no_argument, NULL, 'a'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    bool rmi = false, all = false;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "ah", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            rmi = true;
            break;
        case 'a':
            all = true;
            break;
        case 'h':
            fputs(down_usage, stdout);
            return 0;
        default:
            return wd_err(err, EINVAL, "down: bad option (see 'weaver-docker down --help')");
        }
    }
    if (argc - optind > 1)
        return wd_err(err, EINVAL, "down: give at most one APP");
    const char *app = optind < argc ? argv[optind] : NULL;
    autodocker struct wd_docker *dk = NULL;
    int r = wd_docker_connect(ctx->host, &dk, err);
    if (r < 0)
        return r;
    struct wd_deployment_rec *recs = NULL;
    size_t n = 0;
    if ((r = wd_state_list(dk, app, &recs, &n, err)) < 0)
        return r;
    if (app == NULL && !all && n > 0) {
        for (size_t i = 1; i < n; i++)
            if (strcmp(recs[i].app, recs[0].app) != 0) {
                wd_state_free(recs, n);
                return wd_err(err, EINVAL,
                              "down: several apps are up; name one (see 'weaver-docker ps') or "
                              "use --all");
            }
    }
    struct wd_cleanup_stats total = {0};
    for (size_t i = 0; i < n && r == 0; i++) {
        /* count first: a live deployer removes its own containers when told to stop */
        autofree char *dl = xasprintf("%s=%s", WD_LABEL_DEPLOYMENT, recs[i].deployment);
        const char *dlabels[1] = {dl};
        struct wd_container_summary *cs = NULL;
        size_t before = 0;
        if (wd_docker_container_list(dk, dlabels, 1, &cs, &before, err) < 0) {
            r = -EIO;
            break;
        }
        wd_container_summaries_free(cs, before);
        struct wd_cleanup_stats st = {0};
        r = wd_state_remove(dk, &recs[i], 20000, &st, err);
        if (st.containers < before)
            st.containers = before;
        st.networks = 1;
        total.containers += st.containers;
        total.networks += st.networks;
        if (r == 0)
            printf("%s: deployment %.8s removed (%zu container%s, %zu network)\n", recs[i].app,
                   recs[i].deployment, st.containers, st.containers == 1 ? "" : "s",
                   st.networks);
    }
    /* containers of a deployment whose network is already gone (a crash between the two) */
    if (r == 0) {
        autofree char *lab = app ? xasprintf("%s=%s", WD_LABEL_APP, app) : xstrdup(WD_LABEL_APP);
        const char *labels[2] = {lab, WD_LABEL_ROLE "=weavelet"};
        struct wd_cleanup_stats st = {0};
        r = wd_docker_cleanup(dk, labels, 2, &st, err);
        if (r == 0 && st.containers)
            printf("removed %zu stray container%s\n", st.containers,
                   st.containers == 1 ? "" : "s");
    }
    if (r == 0 && rmi) {
        /* one label only: Podman 4.3's image list returns nothing for two label filters */
        autofree char *lab = app ? xasprintf("%s=%s", WD_LABEL_APP, app) : xstrdup(WD_LABEL_APP);
        const char *labels[1] = {lab};
        struct wd_cleanup_stats st = {0};
        r = wd_docker_cleanup(dk, labels, 1, &st, err);
        if (r == 0)
            printf("removed %zu image%s\n", st.images, st.images == 1 ? "" : "s");
    }
    if (r == 0 && n == 0)
        printf("%s is not up\n", app ? app : "no app");
    wd_state_free(recs, n);
    return r;
}
