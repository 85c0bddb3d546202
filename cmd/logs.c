#include "cmd/cmd.h"
#include "engine/weaver/config.h"
#include "engine/deploy/control.h"
#include "engine/deploy/deploy.h"
#include "engine/docker/docker.h"
#include "engine/docker/json.h"
#include "engine/weaver/logfmt.h"
#include "engine/deploy/state.h"
#include "engine/base/util.h"

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
    "running deployment's file, or the newest one. Entries are printed in time order. During a\n"
    "rollout both versions' entries are shown, each line after its [deployment].\n\n"
    "Options:\n"
    "  -f, --follow          keep printing new entries; if the app is not up, wait for its\n"
    "                        next deployment; ends when the deployment ends\n"
    "  -n, --tail N          only the last N entries (then follow, with -f)\n"
    "      --since T         only entries since T: a duration ago (90s, 5m, 1h30m) or a time\n"
    "                        (2026-12-05T10:00:00, local time unless it ends in Z or +hh:mm)\n"
    "      --until T         only entries before T (same forms)\n"
    "  -t, --timestamps      start each line with the entry's full date and time\n"
    "  -c, --component C     only entries of components whose name contains C, in any case:\n"
    "                        the full name, or the short one ps shows (shop.Cart, weaver.Main)\n"
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
    bool timestamps;
    int64_t since_us, until_us; /* 0: no bound */
    struct wd_logfmt *fmt;
};

/* RFC 3339 (or without a zone: local time) to microseconds since the epoch; 0 if it is not. */
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
    if (*rest == 0) { /* no zone: local time */
        tm.tm_isdst = -1;
        time_t lt = mktime(&tm);
        return lt == (time_t)-1 ? 0 : (int64_t)lt * 1000000 + us;
    }
    long off = 0;
    if (*rest == '+' || *rest == '-') {
        int hh = 0, mm = 0;
        if (strlen(rest) >= 6) {
            hh = (rest[1] - '0') * 10 + (rest[2] - '0');
            mm = (rest[4] - '0') * 10 + (rest[5] - '0');
        }
        off = (hh * 3600 + mm * 60) * (*rest == '-' ? -1 : 1);
    } else if (*rest != 'Z' && *rest != 'z') {
        return 0;
    }
    return ((int64_t)timegm(&tm) - off) * 1000000 + us;
}

/* --since/--until: a duration before now ("90s", "5m", "1h30m", "2.5h") or a time. */
static int parse_when(const char *opt, const char *v, int64_t *out, struct wd_error **err)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_us = (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
    const char *p = v;
    double total = 0;
    bool any = false;
    while (*p) {
        char *end = NULL;
        double x = strtod(p, &end);
        if (end == p || x < 0)
            break;
        double unit = *end == 's' ? 1 : *end == 'm' ? 60 : *end == 'h' ? 3600 : *end == 'd' ? 86400 : 0;
        if (unit == 0)
            break;
        total += x * unit;
        p = end + 1;
        any = true;
    }
    if (any && *p == 0) {
        *out = now_us - (int64_t)(total * 1e6);
        return 0;
    }
    int64_t t = parse_time_us(v);
    if (t == 0)
        return wd_err(err, EINVAL,
                      "logs: --%s \"%s\" is neither a duration (90s, 5m, 1h30m) nor a time "
                      "(2026-12-05T10:00:00)",
                      opt, v);
    *out = t;
    return 0;
}

/* C matches the component's full name, its short name ("shop.Cart") or its slug, in any case. */
static bool component_matches(const char *comp, const char *want)
{
    if (want == NULL)
        return true;
    if (comp == NULL)
        return false;
    if (strcasestr(comp, want))
        return true;
    autofree char *sh = wd_component_short(comp);
    autofree char *slug = wd_component_slug(comp);
    return (sh && strcasestr(sh, want)) || (slug && strcasestr(slug, want));
}

/* One stored line: whether the filter keeps it, and its time. */
static bool keep_line(const char *line, const struct filter *f, int64_t *t_us)
{
    cJSON *j = cJSON_Parse(line);
    if (j == NULL)
        return false;
    const char *comp = wd_json_str(j, "component");
    const char *level = wd_json_str(j, "level");
    int64_t t = parse_time_us(wd_json_str(j, "time"));
    const cJSON *attrs = wd_json_obj(j, "attrs");
    const cJSON *sys = attrs ? cJSON_GetObjectItemCaseSensitive(attrs, WD_LOG_SYSTEM_ATTR) : NULL;
    bool keep = component_matches(comp, f->component) && level_rank(level) >= f->min_level &&
                (f->system || sys == NULL) && (!f->since_us || t >= f->since_us) &&
                (!f->until_us || t < f->until_us);
    cJSON_Delete(j);
    *t_us = t;
    return keep;
}

static void show_tagged(const char *line, struct filter *f, struct wd_buf *out, bool tag);

static void show(const char *line, struct filter *f, struct wd_buf *out)
{
    show_tagged(line, f, out, false);
}

/* @tag: several versions' entries are shown together (a rollout): each pretty line starts with
 * its deployment's short id. */
static void show_tagged(const char *line, struct filter *f, struct wd_buf *out, bool tag)
{
    cJSON *j = cJSON_Parse(line);
    if (j == NULL)
        return;
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
        .component = wd_json_str(j, "component"),
        .node = wd_json_str(j, "weavelet"),
        .time_micros = parse_time_us(wd_json_str(j, "time")),
        .level = wd_json_str(j, "level"),
        .file = wd_json_str(j, "file"),
        .line = (int32_t)wd_json_i64_or(j, "line", -1),
        .msg = wd_json_str(j, "msg"),
        .attrs = kv,
        .nattrs = n,
    };
    out->len = 0;
    if (f->json) {
        wd_buf_append(out, line, strcspn(line, "\n"));
    } else {
        if (f->timestamps) {
            const char *t = wd_json_str(j, "time");
            wd_buf_printf(out, "%s ", t ? t : "-");
        }
        if (tag)
            wd_buf_printf(out, "[%.8s] ", e.version ? e.version : "?");
        wd_logfmt_format(f->fmt, &e, out);
    }
    wd_buf_append(out, "\n", 1);
    fwrite(out->data, 1, out->len, stdout);
    cJSON_Delete(j);
}

struct kept {
    int64_t t;
    size_t seq;
    char *line;
};

static int cmp_kept(const void *a, const void *b)
{
    const struct kept *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* What the files hold now (several: the versions of a rollout), merged in time order (arrival
 * order between equal times), filtered, the last @tail of it (tail < 0: all). Leaves each fp
 * after its last complete line. */
static void dump_all(FILE **fps, size_t nfp, struct filter *f, long tail, struct wd_buf *out)
{
    struct kept *v = NULL;
    size_t n = 0, cap_v = 0;
    char *line = NULL;
    size_t cap = 0;
    for (size_t k = 0; k < nfp; k++) {
        for (;;) {
            ssize_t len = getline(&line, &cap, fps[k]);
            if (len <= 0)
                break;
            if (line[len - 1] != '\n') { /* still being written: the follower reads it */
                fseek(fps[k], -len, SEEK_CUR);
                break;
            }
            int64_t t = 0;
            if (!keep_line(line, f, &t))
                continue;
            if (n == cap_v) {
                cap_v = cap_v ? 2 * cap_v : 256;
                v = xrealloc(v, cap_v * sizeof *v);
            }
            v[n] = (struct kept){.t = t, .seq = n, .line = xstrdup(line)};
            n++;
        }
    }
    free(line);
    if (n > 1) /* qsort wants a non-NULL base even for nothing */
        qsort(v, n, sizeof *v, cmp_kept);
    size_t from = tail >= 0 && (size_t)tail < n ? n - (size_t)tail : 0;
    for (size_t i = 0; i < n; i++) {
        if (i >= from)
            show_tagged(v[i].line, f, out, nfp > 1);
        free(v[i].line);
    }
    free(v);
    fflush(stdout);
}

static void dump(FILE *fp, struct filter *f, long tail, struct wd_buf *out)
{
    dump_all(&fp, 1, f, tail, out);
}

/* The newest deployment log of the app's state directory, or NULL. Caller frees. */
static char *newest_log(const char *dir)
{
    size_t n = 0;
    char **v = wd_state_logs(dir, &n);
    char *best = n ? WD_STEAL(v[0]) : NULL;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
    return best;
}

/* The deployment of @app (every app when NULL) whose log to read: a running one whose log file
 * exists, else none. Sets *several when @app is NULL and more than one app is up. */
struct target {
    char *app, *deployment, *log_path;
    char *older_log; /* a rollout under way: the running old version's log file, or NULL */
};

static void target_free(struct target *t)
{
    free(t->app);
    free(t->deployment);
    free(t->log_path);
    free(t->older_log);
    *t = (struct target){0};
}

/* The log file a running deployer names through its control API (GET /v1/status, 2 s), or
 * NULL (then the labels' word holds). Caller frees. */
static char *live_log_path(const struct wd_deployment_rec *rec)
{
    autojson cJSON *j = wd_cmd_deployer_status(rec, 2000, NULL);
    const char *log = wd_json_str(j, "log");
    return log && *log ? xstrdup(log) : NULL;
}

static int find_running(struct wd_docker *dk, const char *app, struct target *t,
                        struct wd_error **err)
{
    struct wd_deployment_rec *recs = NULL;
    size_t n = 0;
    autoerr struct wd_error *lerr = NULL;
    if (wd_state_list_all(dk, app, &recs, &n, &lerr) < 0)
        return 0;
    const struct wd_deployment_rec *pick = NULL, *older = NULL;
    autofree char *apps = NULL;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (!recs[i].deployer_alive || recs[i].log_path == NULL || stat(recs[i].log_path, &st) < 0)
            continue; /* its deployer is gone (run down), or it left no log file */
        if (pick && strcmp(pick->app, recs[i].app) != 0) {
            char *more = xasprintf("%s%s%s", apps ? apps : pick->app, ", ", recs[i].app);
            free(apps);
            apps = more;
        }
        older = pick && strcmp(pick->app, recs[i].app) == 0 ? pick : NULL;
        pick = &recs[i]; /* the newest of them */
    }
    int r = 0;
    if (apps)
        r = wd_err(err, EINVAL, "logs: several apps are up (%s); name one", apps);
    else if (pick) {
        autofree char *live = live_log_path(pick);
        *t = (struct target){xstrdup(pick->app), xstrdup(pick->deployment),
                             xstrdup(live ? live : pick->log_path), NULL};
        if (older) { /* two versions of the app run: a rollout */
            autofree char *olive = live_log_path(older);
            t->older_log = xstrdup(olive ? olive : older->log_path);
        }
    }
    wd_state_free(recs, n);
    return r;
}

static bool still_running(struct wd_docker *dk, const struct target *t)
{
    struct wd_deployment_rec *recs = NULL;
    size_t n = 0;
    autoerr struct wd_error *lerr = NULL;
    if (wd_state_list_all(dk, t->app, &recs, &n, &lerr) < 0)
        return true; /* an engine hiccup: keep following */
    bool alive = false;
    for (size_t i = 0; i < n; i++)
        alive = alive || (strcmp(recs[i].deployment, t->deployment) == 0 && recs[i].deployer_alive);
    wd_state_free(recs, n);
    return alive;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Print what is added to fp until the deployment ends (checked every 2 s). */
static void follow_file(FILE *fp, struct wd_docker *dk, const struct target *t, struct filter *f,
                        struct wd_buf *out)
{
    char *line = NULL;
    size_t cap = 0;
    bool more = true;
    for (unsigned polls = 1;; polls++) {
        ssize_t len;
        while ((len = getline(&line, &cap, fp)) > 0) {
            if (line[len - 1] != '\n') { /* a partial line: wait for the rest */
                fseek(fp, -len, SEEK_CUR);
                break;
            }
            int64_t ts = 0;
            if (keep_line(line, f, &ts))
                show(line, f, out);
        }
        fflush(stdout);
        clearerr(fp);
        if (!more)
            break;
        if (polls % 10 == 0 && !still_running(dk, t))
            more = false; /* one more pass reads what was written last */
        else
            pause_ms(200);
    }
    free(line);
}

int wd_cmd_logs(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err)
{
    static const struct option opts[] = {{"follow", no_argument, NULL, 'f'},
                                         {"component", required_argument, NULL, 'c'},
                                         {"level", required_argument, NULL, 'l'},
                                         {"tail", required_argument, NULL, 'n'},
                                         {"since", required_argument, NULL, 'S'},
                                         {"until", required_argument, NULL, 'U'},
                                         {"timestamps", no_argument, NULL, 't'},
                                         {"system", no_argument, NULL, 's'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct filter f = {0};
    bool follow = false;
    long tail = -1;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "fc:l:n:th", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            follow = true;
            break;
        case 'c':
            f.component = optarg;
            break;
        case 'l':
            if (strcasecmp(optarg, "debug") && strcasecmp(optarg, "info") &&
                strcasecmp(optarg, "warn") && strcasecmp(optarg, "warning") &&
                strcasecmp(optarg, "error"))
                return wd_err(err, EINVAL,
                              "logs: unknown level \"%s\" (use debug, info, warn or error)",
                              optarg);
            f.min_level = level_rank(optarg);
            break;
        case 'n': {
            char *end = NULL;
            errno = 0;
            tail = strtol(optarg, &end, 10);
            if (!strcmp(optarg, "all"))
                tail = -1;
            else if (end == optarg || *end || errno || tail < 0)
                return wd_err(err, EINVAL, "logs: --tail wants a number of entries or 'all', not \"%s\"",
                              optarg);
            break;
        }
        case 'S':
            if (parse_when("since", optarg, &f.since_us, err) < 0)
                return -EINVAL;
            break;
        case 'U':
            if (parse_when("until", optarg, &f.until_us, err) < 0)
                return -EINVAL;
            break;
        case 't':
            f.timestamps = true;
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
            return wd_cmd_bad_option("logs", argv, "fc:l:n:th", err);
        }
    }
    if (argc - optind > 1)
        return wd_err(err, EINVAL, "logs: give at most one APP");
    const char *app = optind < argc ? argv[optind] : NULL;
    if (app && !wd_config_valid_app_name(app))
        return wd_err(err, EINVAL, "logs: \"%s\" is not an app name (see 'weaver-docker ps')", app);
    /* The running deployment names its log file; without one (or without an engine), the
     * app's newest file. */
    autodocker struct wd_docker *dk = NULL;
    autoerr struct wd_error *cerr = NULL;
    if (wd_docker_connect(ctx->host, &dk, &cerr) < 0)
        dk = NULL;
    struct target t = {0};
    if (find_running(dk, app, &t, err) < 0)
        return -EINVAL;
    autofree char *path = t.log_path ? xstrdup(t.log_path) : NULL;
    if (path == NULL) {
        if (app == NULL)
            return wd_err(err, EINVAL, "logs: no app is up; name the app whose logs to show");
        autofree char *dir = NULL;
        if (wd_state_dir(app, &dir, err) < 0)
            return -EIO;
        path = newest_log(dir);
        if (path == NULL && !follow)
            return wd_err(err, ENOENT, "logs: no logs of %s yet (run 'weaver-docker up' first)",
                          app);
    }
    f.fmt = wd_logfmt_new(ctx->color);
    struct wd_buf out = {0};
    int r = 0;
    FILE *ofp = NULL;
    FILE *fp = path ? fopen(path, "re") : NULL;
    if (path && fp == NULL) {
        r = wd_err_sys(err, errno, "logs: open %s", path);
        goto done;
    }
    ofp = t.older_log ? fopen(t.older_log, "re") : NULL;
    if (fp && ofp) { /* both versions, each line with its deployment */
        FILE *both[2] = {ofp, fp};
        dump_all(both, 2, &f, tail, &out);
        fclose(ofp);
    } else if (fp) {
        dump(fp, &f, tail, &out);
    }
    while (follow && r == 0) {
        if (t.log_path == NULL) {
            /* not up: wait for its next deployment, and follow that one from its start */
            fprintf(stderr, "weaver-docker: %s is not up; waiting for its next deployment "
                            "(Ctrl-C stops)\n", app);
            while (t.log_path == NULL) {
                pause_ms(500);
                if (dk == NULL && wd_docker_connect(ctx->host, &dk, NULL) < 0)
                    dk = NULL;
                if (find_running(dk, app, &t, err) < 0)
                    r = -EINVAL;
                if (r < 0)
                    break;
            }
            if (r < 0)
                break;
            if (fp)
                fclose(fp);
            fp = fopen(t.log_path, "re");
            if (fp == NULL) {
                r = wd_err_sys(err, errno, "logs: open %s", t.log_path);
                break;
            }
        }
        follow_file(fp, dk, &t, &f, &out);
        break; /* the deployment ended */
    }
done:
    if (fp)
        fclose(fp);
    target_free(&t);
    wd_buf_free(&out);
    wd_logfmt_free(f.fmt);
    return r;
}
