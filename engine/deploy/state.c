#include "engine/deploy/state.h"
#include "engine/deploy/control.h"
#include "engine/docker/docker_internal.h"
#include "engine/docker/json.h"
#include "engine/base/log.h"
#include "engine/base/util.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <pwd.h>
#include <unistd.h>

static char *label(const cJSON *labels, const char *key)
{
    const char *v = wd_json_str(labels, key);
    return v ? xstrdup(v) : NULL;
}

long long wd_proc_start_ticks(long pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    char *buf = NULL;
    size_t len = 0;
    if (wd_read_file(path, 4096, &buf, &len) < 0)
        return 0;
    /* "PID (COMM) STATE PPID ...": COMM may hold anything, so count fields from the last ')';
     * the start time is field 22, the 20th after it */
    long long v = 0;
    char *p = strrchr(buf, ')');
    for (int f = 0; p && f < 20; f++)
        p = strchr(p + 1, ' ');
    if (p)
        v = strtoll(p + 1, NULL, 10);
    free(buf);
    return v;
}

bool wd_state_deployer_alive(long pid, long long pid_start, const char *host)
{
    if (pid <= 0)
        return false;
    char hn[256] = "";
    gethostname(hn, sizeof hn - 1);
    if (host && *host && strcmp(host, hn) != 0)
        return true; /* another host's deployer: assume it is alive */
    if (pid_start > 0 && wd_proc_start_ticks(pid) != pid_start)
        return false; /* gone, or the pid now belongs to another process */
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
    /* filters={"label":["..."]}, built by the one JSON writer (the app name is the user's) */
    const char *labs[1] = {lab};
    autofree char *filters = wd_docker_filters_json(labs, 1, NULL, NULL, 0);
    autofree char *esc = wd_url_escape(filters);
    autofree char *path = xasprintf("/networks?filters=%s", esc);
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
        const char *pst = wd_json_str(labels, WD_LABEL_PID_START);
        d->pid_start = pst ? strtoll(pst, NULL, 10) : 0;
        d->host = label(labels, WD_LABEL_HOST);
        d->listeners = label(labels, WD_LABEL_LISTENERS);
        d->log_path = label(labels, WD_LABEL_LOG);
        const char *st = wd_json_str(labels, WD_LABEL_STARTED);
        d->started = st ? strtoll(st, NULL, 10) : 0;
        d->deployer_alive = wd_state_deployer_alive(d->pid, d->pid_start, d->host);
    }
    cJSON_Delete(doc);
    if (k > 1)
        qsort(v, k, sizeof *v, cmp_rec);
    *out = v;
    *n = k;
    return 0;
}

/* ${XDG_STATE_HOME:-~/.local/state}/weaver-docker, without creating anything. */
static char *state_root(void)
{
    const char *base = getenv("XDG_STATE_HOME");
    if (base && *base)
        return xasprintf("%s/weaver-docker", base);
    const char *home = getenv("HOME");
    if (home == NULL || !*home) {
        const struct passwd *pw = getpwuid(geteuid());
        home = pw && pw->pw_dir && *pw->pw_dir ? pw->pw_dir : NULL;
    }
    return home ? xasprintf("%s/.local/state/weaver-docker", home) : NULL;
}

static void read_process_rec(const char *path, struct wd_deployment_rec **v, size_t *k)
{
    char *buf = NULL;
    size_t len = 0;
    if (wd_read_file(path, 1 << 20, &buf, &len) < 0)
        return;
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    const char *app = wd_json_str(j, "app"), *dep = wd_json_str(j, "deployment");
    if (app == NULL || dep == NULL) {
        cJSON_Delete(j);
        return;
    }
    *v = xrealloc(*v, (*k + 1) * sizeof **v);
    struct wd_deployment_rec *d = &(*v)[(*k)++];
    memset(d, 0, sizeof *d);
    d->app = xstrdup(app);
    d->deployment = xstrdup(dep);
    d->pid = (long)wd_json_i64_or(j, "pid", 0);
    d->pid_start = (long long)wd_json_i64_or(j, "pid_start", 0);
    d->started = wd_json_i64_or(j, "started", 0);
    const char *log = wd_json_str(j, "log");
    d->log_path = log && *log ? xstrdup(log) : NULL;
    struct wd_buf lis = {0};
    const cJSON *l;
    cJSON_ArrayForEach(l, wd_json_obj(j, "listeners"))
        if (cJSON_IsString(l))
            wd_buf_printf(&lis, "%s%s=%s", lis.len ? ";" : "", l->string, l->valuestring);
    d->listeners = lis.len ? xstrndup((const char *)lis.data, lis.len) : NULL;
    wd_buf_free(&lis);
    d->process = true;
    d->status_path = xstrdup(path);
    d->deployer_alive = wd_state_deployer_alive(d->pid, d->pid_start, NULL);
    cJSON_Delete(j);
}

int wd_state_list_process(const char *app, struct wd_deployment_rec **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    autofree char *root = state_root();
    if (root == NULL)
        return 0;
    struct wd_deployment_rec *v = NULL;
    size_t k = 0;
    DIR *rd = opendir(root);
    struct dirent *ae;
    while (rd && (ae = readdir(rd)) != NULL) {
        if (ae->d_name[0] == '.' || (app && strcmp(ae->d_name, app) != 0))
            continue;
        autofree char *dir = xasprintf("%s/%s", root, ae->d_name);
        DIR *dd = opendir(dir);
        struct dirent *fe;
        while (dd && (fe = readdir(dd)) != NULL) {
            size_t l = strlen(fe->d_name);
            if (strncmp(fe->d_name, WD_STATE_PROCESS_PREFIX, strlen(WD_STATE_PROCESS_PREFIX)) ||
                l < 5 || strcmp(fe->d_name + l - 5, ".json"))
                continue;
            autofree char *path = xasprintf("%s/%s", dir, fe->d_name);
            read_process_rec(path, &v, &k);
        }
        if (dd)
            closedir(dd);
    }
    if (rd)
        closedir(rd);
    if (k > 1)
        qsort(v, k, sizeof *v, cmp_rec);
    *out = v;
    *n = k;
    return 0;
}

int wd_state_list_all(struct wd_docker *dk, const char *app, struct wd_deployment_rec **out,
                      size_t *n, struct wd_error **err)
{
    struct wd_deployment_rec *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    if (dk && wd_state_list(dk, app, &a, &na, err) < 0)
        return -(*err)->errnum;
    wd_state_list_process(app, &b, &nb);
    if (nb) {
        a = xrealloc(a, (na + nb) * sizeof *a);
        memcpy(a + na, b, nb * sizeof *b);
        na += nb;
    }
    free(b);
    *out = a;
    *n = na;
    return 0;
}

void wd_state_free(struct wd_deployment_rec *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].status_path);
        free(v[i].app);
        free(v[i].deployment);
        free(v[i].network);
        free(v[i].host);
        free(v[i].listeners);
        free(v[i].log_path);
    }
    free(v);
}

/* Ask a live deployer to stop through its control API (POST /v1/stop, the reason goes to its
 * log); false if it does not answer in 2 s (then a signal does it). */
char *wd_state_control_path(const struct wd_deployment_rec *rec)
{
    const char *file = rec->log_path ? rec->log_path : rec->status_path;
    const char *slash = file ? strrchr(file, '/') : NULL;
    if (slash == NULL || rec->pid <= 0)
        return NULL;
    return xasprintf("%.*s/" WD_STATE_CONTROL_PREFIX "%ld.sock", (int)(slash - file), file,
                     rec->pid);
}

static bool ask_to_stop(const struct wd_deployment_rec *rec)
{
    autofree char *sock = wd_state_control_path(rec);
    if (sock == NULL)
        return false;
    autofree char *body = xasprintf("{\"reason\": \"weaver-docker down (pid %d, uid %d)\"}",
                                    (int)getpid(), (int)getuid());
    struct wd_buf resp = {.max = 1 << 16};
    int status = 0;
    autoerr struct wd_error *e = NULL;
    int r = wd_control_call(sock, "POST", "/v1/stop", body, strlen(body), 2000, &status, &resp,
                            &e);
    wd_buf_free(&resp);
    return r == 0 && status == 202;
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
        if (ask_to_stop(rec) || kill((pid_t)rec->pid, SIGTERM) == 0) {
            for (int i = 0; i < wait_ms / 50 && wd_state_deployer_alive(rec->pid, rec->pid_start, NULL); i++) {
                struct timespec ts = {0, 50000000};
                nanosleep(&ts, NULL);
            }
        }
        if (wd_state_deployer_alive(rec->pid, rec->pid_start, NULL)) {
            wd_warn("the deployer of %s (pid %ld) did not stop in time; killing it", rec->app,
                    rec->pid);
            kill((pid_t)rec->pid, SIGKILL);
        }
    }
    if (rec->process) { /* its weavelets die with it (PR_SET_PDEATHSIG); its file stays */
        if (rec->status_path)
            unlink(rec->status_path);
        return 0;
    }
    autofree char *lab = xasprintf("%s=%s", WD_LABEL_DEPLOYMENT, rec->deployment);
    const char *labels[1] = {lab};
    return wd_docker_cleanup(dk, labels, 1, st, err);
}

/* Our own directories (logs, secret copies) must be ours: a real directory, not a symlink,
 * owned by us and writable by nobody else, or another user could read or redirect them. */
static int check_own_dir(const char *path, struct wd_error **err)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return wd_err_sys(err, errno, "state directory %s", path);
    if (!S_ISDIR(st.st_mode))
        return wd_err(err, ENOTDIR,
                      "state directory %s is not a directory (a symlink?); remove it or set "
                      "XDG_STATE_HOME",
                      path);
    if (st.st_uid != geteuid() || (st.st_mode & 022))
        return wd_err(err, EPERM,
                      "state directory %s is not yours alone (owner uid %u, mode %03o); remove "
                      "it or set XDG_STATE_HOME",
                      path, (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777));
    return 0;
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
        if (home == NULL || !*home) { /* never a shared /tmp: the account's own home */
            const struct passwd *pw = getpwuid(geteuid());
            home = pw && pw->pw_dir && *pw->pw_dir ? pw->pw_dir : NULL;
        }
        if (home == NULL)
            return wd_err(err, ENOENT,
                          "no home directory for our logs: set HOME or XDG_STATE_HOME");
        autofree char *st = xasprintf("%s/.local/state", home);
        autofree char *local = xasprintf("%s/.local", home);
        mkdir(local, 0755);
        mkdir(st, 0755);
        root = xasprintf("%s/weaver-docker", st);
    }
    mkdir(root, 0700);
    int r = check_own_dir(root, err);
    if (r < 0)
        return r;
    char *dir = xasprintf("%s/%s", root, app);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        int e = errno;
        free(dir);
        return wd_err_sys(err, e, "create state directory %s/%s", root, app);
    }
    if ((r = check_own_dir(dir, err)) < 0) {
        free(dir);
        return r;
    }
    *out = dir;
    return 0;
}

struct logf {
    char *path;
    time_t mtime;
};

static int cmp_logf(const void *a, const void *b)
{
    const struct logf *x = a, *y = b;
    if (x->mtime != y->mtime) /* newest first; names ("<unix time>-<pid>.log") break ties */
        return x->mtime > y->mtime ? -1 : 1;
    return -strcmp(x->path, y->path);
}

char **wd_state_logs(const char *dir, size_t *n)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return NULL;
    struct logf *v = NULL;
    size_t k = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 4, ".log") != 0 ||
            strcmp(e->d_name, "deployer.log") == 0)
            continue;
        char *p = xasprintf("%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) < 0 || !S_ISREG(st.st_mode)) {
            free(p);
            continue;
        }
        v = xrealloc(v, (k + 1) * sizeof *v);
        v[k++] = (struct logf){p, st.st_mtime};
    }
    closedir(d);
    if (k > 1)
        qsort(v, k, sizeof *v, cmp_logf);
    char **out = xcalloc(k + 1, sizeof *out);
    for (size_t i = 0; i < k; i++)
        out[i] = v[i].path;
    free(v);
    *n = k;
    return out;
}

size_t wd_state_prune_logs(const char *dir, size_t keep)
{
    size_t n = 0, removed = 0;
    char **v = wd_state_logs(dir, &n);
    for (size_t i = 0; i < n; i++)
        if (i >= keep && unlink(v[i]) == 0)
            removed++;
    wd_strv_free(v, n);
    return removed;
}
