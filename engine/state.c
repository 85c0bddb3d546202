#include "engine/state.h"
#include "engine/json.h"
#include "engine/log.h"
#include "engine/util.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static char *label(const cJSON *labels, const char *key)
{
    const char *v = wd_json_str(labels, key);
    return v ? xstrdup(v) : NULL;
}

bool wd_state_deployer_alive(long pid, const char *host)
{
    if (pid <= 0)
        return false;
    char hn[256] = "";
    gethostname(hn, sizeof hn - 1);
    if (host && *host && strcmp(host, hn) != 0)
        return true; /* another host's deployer: assume it is alive */
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
    char *buf = NULL;
    size_t len = 0;
    if (wd_read_file(path, 1 << 16, &buf, &len) < 0)
        return false;
    bool ok = false;
    /* argv[0] ends in weaver-docker (or weaver, running weaver-docker as `weaver docker`) */
    for (size_t i = 0; i < len; i += strlen(buf + i) + 1)
        if (strstr(buf + i, "weaver-docker") || strcmp(buf + i, "docker") == 0) {
            ok = true;
            break;
        }
    free(buf);
    return ok;
}

static int cmp_rec(const void *a, const void *b)
{
    const struct wd_deployment_rec *x = a, *y = b;
    return x->started < y->started ? -1 : x->started > y->started;
}

int wd_state_list(struct wd_docker *dk, const char *app, struct wd_deployment_rec **out,
                  size_t *n, struct wd_error **err)
{
    autofree char *lab = app ? xasprintf("%s=%s", WD_LABEL_APP, app) : xstrdup(WD_LABEL_APP);
    /* filters={"label":["..."]} */
    autofree char *filters = xasprintf("{\"label\":[\"%s\"]}", lab);
    char *esc = curl_easy_escape(NULL, filters, 0);
    autofree char *path = xasprintf("/networks?filters=%s", esc);
    curl_free(esc);
    cJSON *doc = NULL;
    int r = wd_docker_request(dk, "GET", path, NULL, &doc, "list deployments", err);
    if (r < 0)
        return r;
    struct wd_deployment_rec *v = NULL;
    size_t k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, doc)
    {
        const cJSON *labels = wd_json_obj(it, "Labels");
        const char *dep = wd_json_str(labels, WD_LABEL_DEPLOYMENT);
        const char *name = wd_json_str(it, "Name");
        if (labels == NULL || dep == NULL || name == NULL)
            continue;
        v = xrealloc(v, (k + 1) * sizeof *v);
        struct wd_deployment_rec *d = &v[k++];
        memset(d, 0, sizeof *d);
        d->app = label(labels, WD_LABEL_APP);
        d->deployment = xstrdup(dep);
        d->network = xstrdup(name);
        const char *pid = wd_json_str(labels, WD_LABEL_PID);
        d->pid = pid ? strtol(pid, NULL, 10) : 0;
        d->host = label(labels, WD_LABEL_HOST);
        d->listeners = label(labels, WD_LABEL_LISTENERS);
        d->log_path = label(labels, WD_LABEL_LOG);
        const char *st = wd_json_str(labels, WD_LABEL_STARTED);
        d->started = st ? strtoll(st, NULL, 10) : 0;
        d->deployer_alive = wd_state_deployer_alive(d->pid, d->host);
    }
    cJSON_Delete(doc);
    if (k > 1)
        qsort(v, k, sizeof *v, cmp_rec);
    *out = v;
    *n = k;
    return 0;
}

void wd_state_free(struct wd_deployment_rec *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].app);
        free(v[i].deployment);
        free(v[i].network);
        free(v[i].host);
        free(v[i].listeners);
        free(v[i].log_path);
    }
    free(v);
}

int wd_state_remove(struct wd_docker *dk, const struct wd_deployment_rec *rec, int wait_ms,
                    struct wd_cleanup_stats *st, struct wd_error **err)
{
    if (rec->deployer_alive && rec->pid > 0) {
        char hn[256] = "";
        gethostname(hn, sizeof hn - 1);
        if (rec->host && *rec->host && strcmp(rec->host, hn) != 0)
            return wd_err(err, EPERM,
                          "%s is run by a deployer on host %s; run 'weaver-docker down' there",
                          rec->app, rec->host);
        if (kill((pid_t)rec->pid, SIGTERM) == 0) {
            for (int i = 0; i < wait_ms / 50 && wd_state_deployer_alive(rec->pid, NULL); i++) {
                struct timespec ts = {0, 50000000};
                nanosleep(&ts, NULL);
            }
        }
        if (wd_state_deployer_alive(rec->pid, NULL)) {
            wd_warn("the deployer of %s (pid %ld) did not stop in time; killing it", rec->app,
                    rec->pid);
            kill((pid_t)rec->pid, SIGKILL);
        }
    }
    autofree char *lab = xasprintf("%s=%s", WD_LABEL_DEPLOYMENT, rec->deployment);
    const char *labels[1] = {lab};
    return wd_docker_cleanup(dk, labels, 1, st, err);
}

int wd_state_dir(const char *app, char **out, struct wd_error **err)
{
    const char *base = getenv("XDG_STATE_HOME");
    autofree char *root = NULL;
    if (base && *base) {
        mkdir(base, 0700); /* XDG: create it if it does not exist */
        root = xasprintf("%s/weaver-docker", base);
    } else {
        const char *home = getenv("HOME");
        if (home == NULL || !*home)
            home = "/tmp";
        autofree char *st = xasprintf("%s/.local/state", home);
        autofree char *local = xasprintf("%s/.local", home);
        mkdir(local, 0755);
        mkdir(st, 0755);
        root = xasprintf("%s/weaver-docker", st);
    }
    mkdir(root, 0700);
    char *dir = xasprintf("%s/%s", root, app);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        int e = errno;
        free(dir);
        return wd_err_sys(err, e, "create state directory %s/%s", root, app);
    }
    *out = dir;
    return 0;
}
