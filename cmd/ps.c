#include "cmd/cmd.h"
#include "engine/deploy/control.h"
#include "engine/docker/docker.h"
#include "engine/docker/json.h"
#include "engine/deploy/state.h"
#include "engine/base/util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const char ps_usage[] =
    "Usage: weaver-docker ps [OPTIONS] [APP]\n"
    "List the apps weaver-docker runs, with one row per replica: group, replica, container,\n"
    "state, health, address on the app's network, restarts; and each app's listeners.\n\n"
    "Options:\n"
    "  --json, --format json  print one JSON document (--format table: the default)\n"
    "  -a, --all              accepted for docker compose habits: stopped and restarting\n"
    "                         replicas are always listed\n"
    "  -h, --help             print this help and exit\n\n"
    "Exit status: 0 success, 1 error, 2 invalid input.\n";

static const char *lab(const struct wd_label *l, size_t n, const char *k)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(l[i].key, k) == 0)
            return l[i].value;
    return "";
}

static int cmp_replica(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    int c = strcmp(wd_json_str(x, "group"), wd_json_str(y, "group"));
    if (c)
        return c;
    int64_t rx = wd_json_i64_or(x, "replica", 0), ry = wd_json_i64_or(y, "replica", 0);
    return rx < ry ? -1 : rx > ry;
}

/* Rows by group, then replica. */
static void sort_replicas(cJSON *arr)
{
    int n = cJSON_GetArraySize(arr);
    if (n < 2)
        return;
    cJSON **v = xcalloc((size_t)n, sizeof *v);
    for (int i = 0; i < n; i++)
        v[i] = cJSON_DetachItemFromArray(arr, 0);
    qsort(v, (size_t)n, sizeof *v, cmp_replica);
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, v[i]);
    free(v);
}

#define PS_CONTROL_MS 2000 /* a deployer that does not answer by then: its status file */

/* What a running deployer says of its replicas: GET /v1/status on its control socket, else
 * @status_file, the copy it rewrites when they change.
 * NULL if neither is there. Caller frees. */
static cJSON *deployer_view(const struct wd_deployment_rec *d, const char *status_file)
{
    cJSON *j = wd_cmd_deployer_status(d, PS_CONTROL_MS, NULL);
    if (j)
        return j;
    char *buf = NULL;
    size_t blen = 0;
    cJSON *st = NULL;
    if (status_file && wd_read_file(status_file, 1 << 20, &buf, &blen) == 0)
        st = cJSON_Parse(buf);
    free(buf);
    return st;
}

/* A rollout the deployer takes part in (engine/deploy/rollout.h), and what it runs. */
static void add_rollout(cJSON *jd, const cJSON *view)
{
    const cJSON *ro = wd_json_obj(view, "rollout");
    if (ro)
        cJSON_AddItemToObject(jd, "rollout", cJSON_Duplicate(ro, true));
    const char *v = wd_json_str(view, "version");
    if (v && *v)
        cJSON_AddStringToObject(jd, "version", v);
}

/* "  rollout: ..." under a deployment's line, while one is under way. */
static void print_rollout(const cJSON *jd)
{
    const cJSON *ro = wd_json_obj(jd, "rollout");
    const char *role = wd_json_str(ro, "role"), *state = wd_json_str(ro, "state");
    if (role == NULL || state == NULL || !strcmp(state, "done") || !strcmp(state, "failed"))
        return;
    long long share = (long long)wd_json_i64_or(ro, "permille", 0) / 10;
    if (strcmp(role, "new") == 0)
        printf("  rollout: new version (from deployment %.8s): %s, takes %lld %% of new "
               "connections\n",
               wd_json_str(ro, "from") ? wd_json_str(ro, "from") : "?", state, share);
    else
        printf("  rollout: old version (to deployment %.8s): %s, keeps %lld %% of new "
               "connections, %lld open here\n",
               wd_json_str(ro, "to") ? wd_json_str(ro, "to") : "?", state, 100 - share,
               (long long)wd_json_i64_or(ro, "open_connections", 0));
}

int wd_cmd_ps(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                         {"format", required_argument, NULL, 'F'},
                                         {"all", no_argument, NULL, 'a'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    bool json = false;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "ah", opts, NULL)) != -1) {
        switch (c) {
        case 'a': /* docker compose's habit: stopped containers are always listed here */
            break;
        case 'j':
            json = true;
            break;
        case 'F':
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "table") != 0)
                return wd_err(err, EINVAL, "ps: --format is json or table, not \"%s\"", optarg);
            json = strcmp(optarg, "json") == 0;
            break;
        case 'h':
            fputs(ps_usage, stdout);
            return 0;
        default:
            return wd_cmd_bad_option("ps", argv, "ah", err);
        }
    }
    if (argc - optind > 1)
        return wd_err(err, EINVAL, "ps: give at most one APP");
    const char *app = optind < argc ? argv[optind] : NULL;
    autodocker struct wd_docker *dk = NULL;
    int r = wd_docker_connect(ctx->host, &dk, err);
    struct wd_deployment_rec *recs = NULL;
    size_t n = 0;
    if (r < 0) { /* no engine: process-runtime deployments may still be up */
        wd_state_list_process(app, &recs, &n);
        if (n == 0)
            return r;
        wd_err_free(err);
        dk = NULL;
        r = 0;
    } else if ((r = wd_state_list_all(dk, app, &recs, &n, err)) < 0) {
        return r;
    }
    cJSON *root = cJSON_CreateArray();
    for (size_t i = 0; i < n && r == 0; i++) {
        struct wd_deployment_rec *d = &recs[i];
        cJSON *jd = cJSON_CreateObject();
        cJSON_AddItemToArray(root, jd);
        cJSON_AddStringToObject(jd, "app", d->app ? d->app : "");
        cJSON_AddStringToObject(jd, "deployment", d->deployment);
        cJSON_AddStringToObject(jd, "network", d->network);
        cJSON_AddNumberToObject(jd, "deployer_pid", (double)d->pid);
        cJSON_AddBoolToObject(jd, "deployer_alive", d->deployer_alive);
        cJSON *jl = cJSON_AddObjectToObject(jd, "listeners");
        if (d->listeners) {
            autofree char *copy = xstrdup(d->listeners);
            char *save = NULL;
            for (char *t = strtok_r(copy, ";", &save); t; t = strtok_r(NULL, ";", &save)) {
                char *eq = strchr(t, '=');
                if (eq) {
                    *eq = 0;
                    cJSON_AddStringToObject(jl, t, eq + 1);
                }
            }
        }
        cJSON_AddStringToObject(jd, "runtime", d->process ? "process" : "docker");
        cJSON *jr = cJSON_AddArrayToObject(jd, "replicas");
        if (d->process) { /* the deployer's own word: its control API, else its status file */
            cJSON *st = d->deployer_alive ? deployer_view(d, d->status_path) : NULL;
            add_rollout(jd, st);
            const cJSON *x;
            cJSON_ArrayForEach(x, wd_json_arr(st, "replicas"))
                cJSON_AddItemToArray(jr, cJSON_Duplicate(x, true));
            cJSON_Delete(st);
            sort_replicas(jr);
            continue;
        }
        /* the deployer's view, when it runs here: health as soon as GetHealth answered */
        cJSON *dview = NULL;
        if (d->deployer_alive && d->log_path && strrchr(d->log_path, '/')) {
            autofree char *sp = xasprintf("%.*s/" WD_STATE_STATUS_PREFIX "%ld.json",
                                          (int)(strrchr(d->log_path, '/') - d->log_path),
                                          d->log_path, d->pid);
            dview = deployer_view(d, sp);
        }
        add_rollout(jd, dview);
        autofree char *l0 = xasprintf("%s=%s", WD_LABEL_DEPLOYMENT, d->deployment);
        const char *labels[1] = {l0};
        struct wd_container_summary *cs = NULL;
        size_t nc = 0;
        if ((r = wd_docker_container_list(dk, labels, 1, &cs, &nc, err)) < 0) {
            cJSON_Delete(dview);
            break;
        }
        for (size_t k = 0; k < nc; k++) {
            struct wd_container_info info = {0};
            autoerr struct wd_error *ierr = NULL;
            bool have = wd_docker_container_inspect(dk, cs[k].id, d->network, &info, &ierr) == 0;
            cJSON *x = cJSON_CreateObject();
            cJSON_AddItemToArray(jr, x);
            cJSON_AddStringToObject(x, "group", lab(cs[k].labels, cs[k].nlabels, WD_LABEL_GROUP));
            cJSON_AddNumberToObject(
                x, "replica",
                (double)strtol(lab(cs[k].labels, cs[k].nlabels, WD_LABEL_REPLICA), NULL, 10));
            cJSON_AddStringToObject(x, "container", cs[k].name);
            const char *health = have && info.health ? info.health : "";
            const char *wl = lab(cs[k].labels, cs[k].nlabels, WD_LABEL_PREFIX "weavelet");
            const char *state = cs[k].state;
            const cJSON *v;
            cJSON_ArrayForEach(v, wd_json_arr(dview, "replicas"))
            {
                const char *vs = wd_json_str(v, "state");
                if (*wl && vs && strcmp(vs, "retiring") == 0 &&
                    strcmp(wd_json_str(v, "weavelet") ? wd_json_str(v, "weavelet") : "", wl) == 0)
                    state = "retiring"; /* scaled away, draining */
                /* the same weavelet, seen healthy by the deployer before the engine's check */
                if (strcmp(wd_json_str(v, "weavelet") ? wd_json_str(v, "weavelet") : "", wl) == 0 &&
                    *wl && !strcmp(health, "starting") &&
                    !strcmp(wd_json_str(v, "health") ? wd_json_str(v, "health") : "", "healthy"))
                    health = "healthy (engine: starting)";
            }
            cJSON_AddStringToObject(x, "state", state);
            cJSON_AddStringToObject(x, "health", health);
            cJSON_AddStringToObject(x, "address", have && info.ip ? info.ip : "");
            cJSON_AddNumberToObject(
                x, "restarts",
                (double)strtol(lab(cs[k].labels, cs[k].nlabels, WD_LABEL_RESTARTS), NULL, 10));
            cJSON_AddStringToObject(x, "weavelet",
                                    lab(cs[k].labels, cs[k].nlabels, WD_LABEL_PREFIX "weavelet"));
            cJSON_AddStringToObject(x, "last_exit",
                                    lab(cs[k].labels, cs[k].nlabels, WD_LABEL_LAST_EXIT));
            if (have)
                wd_container_info_free(&info);
        }
        wd_container_summaries_free(cs, nc);
        cJSON_Delete(dview);
        sort_replicas(jr);
    }
    if (r == 0 && json) {
        char *s = cJSON_Print(root);
        puts(s);
        free(s);
    } else if (r == 0) {
        if (n == 0)
        {
            if (app)
                printf("%s is not up\n", app);
            else
                printf("no app is up\n");
        }
        const cJSON *jd;
        cJSON_ArrayForEach(jd, root)
        {
            printf("%s  deployment %.8s  %sdeployer %s (pid %lld)\n", wd_json_str(jd, "app"),
                   wd_json_str(jd, "deployment"),
                   strcmp(wd_json_str(jd, "runtime"), "process") == 0 ? "processes  " : "",
                   wd_json_bool(jd, "deployer_alive", false) ? "running" : "GONE (run down)",
                   (long long)wd_json_i64_or(jd, "deployer_pid", 0));
            print_rollout(jd);
            const cJSON *l;
            cJSON_ArrayForEach(l, wd_json_obj(jd, "listeners"))
                printf("  listener %-12s %s\n", l->string, l->valuestring);
            struct wd_table t = {.ncols = 8};
            const char *head[] = {"GROUP",  "#",       "CONTAINER", "STATE",
                                  "HEALTH", "ADDRESS", "RESTARTS",  "LAST EXIT"};
            wd_table_add(&t, head);
            const cJSON *x;
            cJSON_ArrayForEach(x, wd_json_arr(jd, "replicas"))
            {
                const char *h = wd_json_str(x, "health");
                const char *le = wd_json_str(x, "last_exit");
                const char *ad = wd_json_str(x, "address");
                char num[24], rs[24];
                snprintf(num, sizeof num, "%lld", (long long)wd_json_i64_or(x, "replica", 0));
                snprintf(rs, sizeof rs, "%lld", (long long)wd_json_i64_or(x, "restarts", 0));
                char pidbuf[32];
                const char *cont = wd_json_str(x, "container");
                if (cont == NULL || !*cont) {
                    snprintf(pidbuf, sizeof pidbuf, "pid %lld", (long long)wd_json_i64_or(x, "pid", 0));
                    cont = pidbuf;
                }
                const char *row[] = {wd_json_str(x, "group"), num, cont,
                                     wd_json_str(x, "state"), h && *h ? h : "-",
                                     ad && *ad ? ad : "-", rs, le && *le ? le : "-"};
                wd_table_add(&t, row);
            }
            if (t.nrows == 1)
                printf("  no replicas (%s)\n", wd_json_bool(jd, "deployer_alive", false)
                                                   ? "the deployer is starting or stopping them"
                                                   : "run 'weaver-docker down' to remove the rest");
            else
                wd_table_print(&t, stdout, "  ");
            wd_table_free(&t);
        }
    }
    cJSON_Delete(root);
    wd_state_free(recs, n);
    return r;
}
