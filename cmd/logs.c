#include "cmd/cmd.h"
#include "engine/docker.h"
#include "engine/json.h"
#include "engine/logfmt.h"
#include "engine/state.h"
#include "engine/util.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

static const char logs_usage[] =
    "Usage: weaver-docker logs [OPTIONS] [APP]\n"
    "Show the logs of an app run by 'weaver-docker up', from any terminal, while it runs and\n"
    "after. Every deployment writes its weavelets' log entries (and their stdout/stderr lines)\n"
    "as JSON lines to ${XDG_STATE_HOME:-~/.local/state}/weaver-docker/APP/; this reads the\n"
    "current deployment's file, or the newest one.\n\n"
    "Options:\n"
    "  -f, --follow          keep printing new entries until interrupted\n"
    "  -c, --component C     only entries of components whose name contains C\n"
    "  -l, --level L         only entries at level L or above (debug, info, warn, error)\n"
    "      --system          include Service Weaver's own system entries\n"
    "      --json            print the entries as JSON lines\n"
    "  -h, --help            print this help and exit\n\n"
    "Exit status: 0 success, 1 error, 2 invalid input.\n";

static int level_rank(const char *l)
{
    if (l == NULL)
        return 1;
    if (!strncasecmp(l, "debug", 5))
        return 0;
    if (!strncasecmp(l, "info", 4))
        return 1;
    if (!strncasecmp(l, "warn", 4))
        return 2;
    if (!strncasecmp(l, "error", 5))
        return 3;
    return 1; /* stdout, stderr */
}

struct filter {
    const char *component;
    int min_level;
    bool system;
    bool json;
    struct wd_logfmt *fmt;
};

static int64_t parse_time_us(const char *t)
{
    if (t == NULL)
        return 0;
    struct tm tm = {0};
    const char *rest = strptime(t, "%Y-%m-%dT%H:%M:%S", &tm);
    if (rest == NULL)
        return 0;
    int64_t us = 0;
    if (*rest == '.') {
        int digits = 0;
        for (rest++; *rest >= '0' && *rest <= '9'; rest++, digits++)
            if (digits < 6)
                us = us * 10 + (*rest - '0');
        for (; digits < 6; digits++)
            us *= 10;
    }
    long off = 0;
    if (*rest == '+' || *rest == '-') {
        int hh = 0, mm = 0;
        if (strlen(rest) >= 6) {
            hh = (rest[1] - '0') * 10 + (rest[2] - '0');
            mm = (rest[4] - '0') * 10 + (rest[5] - '0');
        }
        off = (hh * 3600 + mm * 60) * (*rest == '-' ? -1 : 1);
    }
    return ((int64_t)timegm(&tm) - off) * 1000000 + us;
}

static void show(const char *line, struct filter *f, struct wd_buf *out)
{
    cJSON *j = cJSON_Parse(line);
    if (j == NULL)
        return;
    const char *comp = wd_json_str(j, "component");
    const char *level = wd_json_str(j, "level");
    const cJSON *attrs = wd_json_obj(j, "attrs");
    const char *kv[128];
    size_t n = 0;
    const cJSON *a;
    cJSON_ArrayForEach(a, attrs)
    {
        if (n + 2 > WD_ARRAY_LEN(kv) || !cJSON_IsString(a))
            continue;
        kv[n++] = a->string;
        kv[n++] = a->valuestring;
    }
    struct wd_log_entry e = {
        .app = wd_json_str(j, "app"),
        .version = wd_json_str(j, "deployment"),
        .component = comp,
        .node = wd_json_str(j, "weavelet"),
        .time_micros = parse_time_us(wd_json_str(j, "time")),
        .level = level,
        .file = wd_json_str(j, "file"),
        .line = (int32_t)wd_json_i64_or(j, "line", -1),
        .msg = wd_json_str(j, "msg"),
        .attrs = kv,
        .nattrs = n,
    };
    bool keep = (!f->component || (comp && strstr(comp, f->component))) &&
                level_rank(level) >= f->min_level && (f->system || !wd_log_entry_is_system(&e));
    if (keep) {
        out->len = 0;
        if (f->json)
            wd_buf_append(out, line, strcspn(line, "\n"));
        else
            wd_logfmt_format(f->fmt, &e, out);
        wd_buf_append(out, "\n", 1);
        fwrite(out->data, 1, out->len, stdout);
    }
    cJSON_Delete(j);
}

/* The newest *.log file of the app's state directory. Caller frees. */
static char *newest_log(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return NULL;
    char *best = NULL;
    time_t best_t = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 4, ".log") != 0 ||
            strcmp(e->d_name, "deployer.log") == 0)
            continue;
        char *p = xasprintf("%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && (best == NULL || st.st_mtime >= best_t)) {
            free(best);
            best = p;
            best_t = st.st_mtime;
        } else {
            free(p);
        }
    }
    closedir(d);
    return best;
}

int wd_cmd_logs(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err)
{
    static const struct option opts[] = {{"follow", no_argument, NULL, 'f'},
                                         {"component", required_argument, NULL, 'c'},
                                         {"level", required_argument, NULL, 'l'},
                                         {"system", no_argument, NULL, 's'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct filter f = {0};
    bool follow = false;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "fc:l:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            follow = true;
            break;
        case 'c':
            f.component = optarg;
            break;
        case 'l':
            if (strcasecmp(optarg, "debug") && strcasecmp(optarg, "info") &&
                strcasecmp(optarg, "warn") && strcasecmp(optarg, "error"))
                return wd_err(err, EINVAL,
                              "logs: unknown level \"%s\" (use debug, info, warn or error)",
                              optarg);
            f.min_level = level_rank(optarg);
            break;
        case 's':
            f.system = true;
            break;
        case 'j':
            f.json = true;
            break;
        case 'h':
            fputs(logs_usage, stdout);
            return 0;
        default:
            return wd_err(err, EINVAL, "logs: bad option (see 'weaver-docker logs --help')");
        }
    }
    if (argc - optind > 1)
        return wd_err(err, EINVAL, "logs: give at most one APP");
    const char *app = optind < argc ? argv[optind] : NULL;
    autofree char *path = NULL;
    autofree char *dep = NULL;   /* the running deployment we read, if any */
    autofree char *dep_app = NULL;
    /* The running deployment names its log file; without an engine, fall back to the newest. */
    autodocker struct wd_docker *dk = NULL;
    autoerr struct wd_error *cerr = NULL;
    if (wd_docker_connect(ctx->host, &dk, &cerr) == 0) {
        struct wd_deployment_rec *recs = NULL;
        size_t n = 0;
        if (wd_state_list(dk, app, &recs, &n, &cerr) == 0 && n > 0) {
            if (app == NULL)
                for (size_t i = 1; i < n; i++)
                    if (strcmp(recs[i].app, recs[0].app) != 0) {
                        wd_state_free(recs, n);
                        return wd_err(err, EINVAL, "logs: several apps are up; name one");
                    }
            if (recs[n - 1].log_path) {
                path = xstrdup(recs[n - 1].log_path);
                dep = xstrdup(recs[n - 1].deployment);
                dep_app = xstrdup(recs[n - 1].app);
            }
        }
        wd_state_free(recs, n);
    }
    if (path == NULL) {
        if (app == NULL)
            return wd_err(err, EINVAL, "logs: no app is up; name the app whose logs to show");
        autofree char *dir = NULL;
        if (wd_state_dir(app, &dir, err) < 0)
            return -EIO;
        path = newest_log(dir);
        if (path == NULL)
            return wd_err(err, ENOENT, "logs: no logs of %s yet (run 'weaver-docker up' first)",
                          app);
    }
    FILE *fp = fopen(path, "re");
    if (fp == NULL)
        return wd_err_sys(err, errno, "logs: open %s", path);
    f.fmt = wd_logfmt_new(ctx->color);
    struct wd_buf out = {0};
    char *line = NULL;
    size_t cap = 0;
    unsigned polls = 0;
    for (;;) {
        ssize_t len = getline(&line, &cap, fp);
        if (len > 0) {
            if (line[len - 1] != '\n' && follow) { /* a partial line: wait for the rest */
                fseek(fp, -len, SEEK_CUR);
            } else {
                show(line, &f, &out);
                continue;
            }
        }
        if (!follow)
            break;
        /* -f ends with the deployment (checked every 2 s): after `down` nothing will come */
        if (dep && dk && ++polls % 10 == 0) {
            struct wd_deployment_rec *recs = NULL;
            size_t n = 0;
            bool alive = false;
            autoerr struct wd_error *lerr = NULL;
            if (wd_state_list(dk, dep_app, &recs, &n, &lerr) == 0)
                for (size_t i = 0; i < n; i++)
                    alive = alive || strcmp(recs[i].deployment, dep) == 0;
            else
                alive = true; /* engine hiccup: keep following */
            wd_state_free(recs, n);
            if (!alive)
                follow = false; /* one more pass reads what was written last */
        }
        fflush(stdout);
        clearerr(fp);
        struct timespec ts = {0, 200000000};
        nanosleep(&ts, NULL);
    }
    free(line);
    fclose(fp);
    wd_buf_free(&out);
    wd_logfmt_free(f.fmt);
    return 0;
}
