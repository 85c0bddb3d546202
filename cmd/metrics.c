/* weaver-docker metrics [--json|--prometheus] [-a] APP [FILTER]: the metrics a running app's
 * deployer collects from its replicas (GET /v1/metrics, or /metrics for the Prometheus text). */
#include "cmd/cmd.h"
#include "engine/deploy/deploy.h"
#include "engine/docker/json.h"
#include "engine/base/util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char metrics_usage[] =
    "Usage: weaver-docker metrics [--json|--prometheus] [-a] APP [FILTER]\n"
    "Show the metrics of the running APP, summed over its replicas (replicas that are gone keep\n"
    "counting): weaver's per-method metrics (calls, errors, latency, bytes; by component and\n"
    "method) and the app's own counters, gauges and histograms. FILTER keeps the metrics whose\n"
    "name contains it.\n"
    "  --json        the deployer's JSON (one entry per metric and label set)\n"
    "  --prometheus  Prometheus text, one series per replica (as [docker] metrics serves it)\n"
    "  -a, --all     also weaver's own labels and calls to the deployer\n";

/* A component label as `ps` names groups: "shop.Cart" for "example.com/shop/Cart". */
static char *label_value(const char *key, const char *v)
{
    if (strcmp(key, "component") == 0 || strcmp(key, "caller") == 0)
        return wd_component_short(v);
    return xstrdup(v);
}

static bool internal(const cJSON *labels, bool all)
{
    if (all)
        return false;
    const char *comp = wd_json_str(labels, "component");
    return comp && strstr(comp, "deployerControl") != NULL; /* our envelope's own calls */
}

static char *fmt_num(double v)
{
    if (v > -1e15 && v < 1e15 && v == (double)(long long)v)
        return xasprintf("%.0f", v);
    return xasprintf("%.4g", v);
}

static void print_table(const cJSON *j, bool all)
{
    struct wd_table t = {.ncols = 4};
    wd_table_add(&t, (const char *const[]){"METRIC", "LABELS", "VALUE", "TYPE"});
    const cJSON *m;
    cJSON_ArrayForEach(m, wd_json_arr(j, "metrics"))
    {
        const cJSON *labels = wd_json_obj(m, "labels");
        if (internal(labels, all))
            continue;
        struct wd_buf lb = {0};
        const cJSON *l;
        cJSON_ArrayForEach(l, labels)
        {
            if (!all && strncmp(l->string, "serviceweaver_", 14) == 0)
                continue;
            if (!cJSON_IsString(l))
                continue;
            autofree char *v = label_value(l->string, l->valuestring);
            wd_buf_printf(&lb, "%s%s=%s", lb.len ? " " : "", l->string, v);
        }
        const char *type = wd_json_str(m, "type");
        autofree char *value = NULL;
        if (type && strcmp(type, "histogram") == 0) {
            double count = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(m, "count"));
            double sum = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(m, "sum"));
            autofree char *c = fmt_num(count);
            autofree char *mean = fmt_num(count > 0 ? sum / count : 0);
            value = xasprintf("count %s mean %s", c, mean);
        } else {
            value = fmt_num(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(m, "value")));
        }
        autofree char *ls = lb.len ? wd_buf_steal_str(&lb) : xstrdup("-");
        wd_buf_free(&lb);
        const char *name = wd_json_str(m, "name");
        wd_table_add(&t, (const char *const[]){name ? name : "?", ls, value, type ? type : ""});
    }
    if (t.nrows <= 1)
        printf("no metrics yet (the deployer asks each replica every second)\n");
    else
        wd_table_print(&t, stdout, "");
    wd_table_free(&t);
}

int wd_cmd_metrics(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err)
{
    static const struct option longopts[] = {{"json", no_argument, NULL, 'j'},
                                             {"prometheus", no_argument, NULL, 'p'},
                                             {"all", no_argument, NULL, 'a'},
                                             {"help", no_argument, NULL, 'h'},
                                             {0}};
    bool json = false, prom = false, all = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "ah", longopts, NULL)) != -1) {
        switch (c) {
        case 'j':
            json = true;
            break;
        case 'p':
            prom = true;
            break;
        case 'a':
            all = true;
            break;
        case 'h':
            fputs(metrics_usage, stdout);
            return 0;
        default:
            return wd_cmd_bad_option("metrics", argv, "ah", err);
        }
    }
    if (json && prom)
        return wd_err(err, EINVAL, "metrics: --json and --prometheus exclude each other");
    if (argc - optind < 1 || argc - optind > 2)
        return wd_err(err, EINVAL, "metrics: give APP and at most one FILTER, e.g. "
                                   "'weaver-docker metrics shop method_count'");
    const char *app = argv[optind];
    const char *filter = argc - optind == 2 ? argv[optind + 1] : "";
    struct wd_buf q = {0};
    wd_buf_printf(&q, "%s?filter=", prom ? "/metrics" : "/v1/metrics");
    for (const char *p = filter; *p; p++) { /* percent-encode all but unreserved bytes */
        unsigned char ch = (unsigned char)*p;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '_' || ch == '-' || ch == '.' || ch == '~')
            wd_buf_append(&q, p, 1);
        else
            wd_buf_printf(&q, "%%%02X", ch);
    }
    autofree char *path = wd_buf_steal_str(&q);
    struct wd_buf resp = {.max = 64 << 20};
    int status = wd_cmd_control(ctx, "metrics", app, "GET", path, NULL, &resp, err);
    if (status < 0) {
        wd_buf_free(&resp);
        return status;
    }
    if (status != 200) {
        wd_buf_free(&resp);
        return wd_err(err, EIO, "metrics: the deployer of %s answered %d", app, status);
    }
    if (json || prom) {
        fwrite(resp.data, 1, resp.len, stdout);
        if (json)
            putchar('\n');
        wd_buf_free(&resp);
        return 0;
    }
    autojson cJSON *j = NULL;
    int r = wd_json_parse(resp.data, resp.len, "the deployer's metrics", &j, err);
    wd_buf_free(&resp);
    if (r < 0)
        return r;
    print_table(j, all);
    return 0;
}
