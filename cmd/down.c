#include "cmd/cmd.h"
#include "engine/docker/docker.h"
#include "engine/docker/docker_internal.h"
#include "engine/docker/json.h"
#include "engine/deploy/state.h"
#include "engine/base/util.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const char down_usage[] =
    "Usage: weaver-docker down [OPTIONS] [APP]\n"
    "Stop an app started with 'weaver-docker up' (from any terminal) and remove every container\n"
    "and the network it created. Works also when its deployer was killed. Apps run by a\n"
    "compose file are left alone (use docker compose down).\n\n"
    "Options:\n"
    "  --rmi          also remove the app's images\n"
    "  -v, --volumes  also remove the app's named volumes ([docker] volumes; kept otherwise)\n"
    "  -a, --all      every app that weaver-docker runs\n"
    "  -h, --help     print this help and exit\n\n"
    "Exit status: 0 success (also when nothing was up), 1 error, 2 invalid input.\n";

int wd_cmd_down(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err)
{
    static const struct option opts[] = {{"rmi", no_argument, NULL, 'r'},
                                         {"all", no_argument, NULL, 'a'},
                                         {"volumes", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    bool rmi = false, all = false, volumes = false;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "ahv", opts, NULL)) != -1) {
        switch (c) {
        case 'v':
            volumes = true;
            break;
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
            return wd_cmd_bad_option("down", argv, "ahv", err);
        }
    }
    if (argc - optind > 1)
        return wd_err(err, EINVAL, "down: give at most one APP");
    const char *app = optind < argc ? argv[optind] : NULL;
    autodocker struct wd_docker *dk = NULL;
    int r = wd_docker_connect(ctx->host, &dk, err);
    struct wd_deployment_rec *recs = NULL;
    size_t n = 0;
    if (r < 0) { /* no engine: process-runtime deployments can still be stopped */
        wd_state_list_process(app, &recs, &n);
        if (n == 0 || rmi || volumes) {
            wd_state_free(recs, n);
            return r;
        }
        wd_err_free(err);
        dk = NULL;
        r = 0;
    } else if ((r = wd_state_list_all(dk, app, &recs, &n, err)) < 0) {
        return r;
    }
    if (app == NULL && !all) { /* never guess on an engine others share */
        wd_state_free(recs, n);
        return wd_err(err, EINVAL,
                      "down: name the APP to stop (see 'weaver-docker ps'), or use --all");
    }
    if (n == 0) /* first: what --rmi or --volumes then remove is not a deployment */
        printf(app ? "%s is not up\n" : "no app is up\n", app);
    struct wd_cleanup_stats total = {0};
    for (size_t i = 0; i < n && r == 0; i++) {
        /* count first: a live deployer removes its own containers when told to stop */
        if (recs[i].process) {
            r = wd_state_remove(dk, &recs[i], 20000, NULL, err);
            if (r == 0)
                printf("%s: deployment %.8s removed (processes)\n", recs[i].app,
                       recs[i].deployment);
            continue;
        }
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
    /* Containers of one of our deployments whose network is already gone (a crash between
     * the two removals). Only containers with a deployment label: those made by a compose
     * file have none and belong to docker compose. */
    if (r == 0 && dk) {
        autofree char *lab = app ? xasprintf("%s=%s", WD_LABEL_APP, app) : xstrdup(WD_LABEL_APP);
        const char *labels[2] = {lab, WD_LABEL_DEPLOYMENT};
        struct wd_container_summary *cs = NULL;
        size_t nc = 0, gone = 0;
        r = wd_docker_container_list(dk, labels, 2, &cs, &nc, err);
        for (size_t i = 0; r == 0 && i < nc; i++)
            if (wd_docker_container_remove(dk, cs[i].id, true, NULL) == 0)
                gone++;
        if (r == 0)
            wd_container_summaries_free(cs, nc);
        if (gone)
            printf("removed %zu stray container%s\n", gone, gone == 1 ? "" : "s");
    }
    if (r == 0 && rmi) {
        /* one label only: Podman 4.3's image list returns nothing for two label filters */
        autofree char *lab = app ? xasprintf("%s=%s", WD_LABEL_APP, app) : xstrdup(WD_LABEL_APP);
        const char *labs[1] = {lab};
        autofree char *filters = wd_docker_filters_json(labs, 1, NULL, NULL, 0);
        char *esc = curl_easy_escape(NULL, filters, 0);
        autofree char *path = xasprintf("/images/json?filters=%s", esc);
        curl_free(esc);
        cJSON *imgs = NULL;
        size_t removed = 0;
        r = wd_docker_request(dk, "GET", path, NULL, &imgs, "list images", err);
        const cJSON *it;
        cJSON_ArrayForEach(it, imgs)
        {
            const char *id = wd_json_str(it, "Id");
            if (id && wd_docker_image_remove(dk, id, false, NULL) == 0)
                removed++;
        }
        cJSON_Delete(imgs);
        if (r == 0)
            printf("removed %zu image%s\n", removed, removed == 1 ? "" : "s");
    }
    if (r == 0 && volumes) {
        autofree char *lab = app ? xasprintf("%s=%s", WD_LABEL_APP, app) : xstrdup(WD_LABEL_APP);
        const char *labels[2] = {lab, WD_LABEL_ROLE "=volume"};
        char **names = NULL;
        size_t nv = 0, removed = 0;
        r = wd_docker_volume_list(dk, labels, 2, &names, &nv, err);
        for (size_t i = 0; i < nv; i++) {
            autoerr struct wd_error *verr = NULL;
            if (wd_docker_volume_remove(dk, names[i], &verr) == 0)
                removed++;
            else
                fprintf(stderr, "weaver-docker: %s\n", verr->msg);
            free(names[i]);
        }
        free(names);
        if (r == 0)
            printf("removed %zu volume%s\n", removed, removed == 1 ? "" : "s");
    }
    wd_state_free(recs, n);
    return r;
}
