#include "cmd/cmd.h"
#include "engine/weaver/binary.h"
#include "engine/weaver/config.h"
#include "engine/deploy/deploy.h"
#include "engine/docker/docker.h"
#include "engine/docker/image.h"
#include "engine/base/log.h"
#include "engine/deploy/plan.h"
#include "engine/deploy/proxy.h"
#include "engine/deploy/rollout.h"
#include "engine/deploy/control.h"
#include "engine/docker/json.h"
#include "engine/deploy/rt_docker.h"
#include "engine/deploy/secrets.h"
#include "engine/deploy/state.h"
#include "engine/base/termout.h"
#include "engine/base/util.h"

#include <cjson/cJSON.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <getopt.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>

static const char up_usage[] =
    "Usage: weaver-docker up [OPTIONS] [weaver.toml | DIR | BINARY]\n"
    "Run a Service Weaver application: one container (or process) per component group and\n"
    "replica, started when the group is first needed (main at once). Logs of every weavelet are\n"
    "printed merged; Ctrl-C (or SIGTERM) stops and removes everything and exits 0. A crashed\n"
    "weavelet is replaced with backoff and routing is updated for everyone.\n\n"
    "Options:\n"
    "  --runtime=RT     where weavelets run: docker (default; Docker or Podman engine) or\n"
    "                   process (local processes, no engine needed)\n"
    "  -f, --file=FILE  the weaver.toml or binary (default: ./weaver.toml; a DIR argument\n"
    "                   means DIR/weaver.toml)\n"
    "  -d, --detach     return once the app answers and keep it running; see 'weaver-docker\n"
    "                   ps', 'logs' and 'down'\n"
    "  --traces=FILE    append received trace spans to FILE as JSON lines\n"
    "  --system         also print Service Weaver's own system log entries\n"
    "  -h, --help       print this help and exit\n\n"
    "Exit status: 0 stopped on request, 1 error, 2 invalid input.\n\n"
    "Examples:\n"
    "  weaver-docker up weaver.toml\n"
    "  weaver-docker up -d weaver.toml && curl localhost:12080/ && weaver-docker down shop\n"
    "  weaver-docker up --runtime=process ./app\n";

#define READY_TIMEOUT_MS 120000

struct docker_run {
    struct wd_docker *dk;
    const char *network;
    const char *log_path;
};

/* Once the listeners are bound: the deployment's network, labelled with everything `ps`,
 * `logs` and `down` need. */
static int create_network(struct wd_deploy *d, void *arg, struct wd_error **err)
{
    struct docker_run *x = arg;
    struct wd_buf lis = {0};
    for (size_t i = 0; i < d->nlisteners; i++) /* where they will be, after a rollout too */
        wd_buf_printf(&lis, "%s%s=%s", i ? ";" : "", d->listeners[i].name,
                      wd_rollout_public_address(d, d->listeners[i].name,
                                                wd_proxy_address(d->listeners[i].proxy)));
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    autofree char *pid = xasprintf("%ld", (long)getpid());
    autofree char *pid_start = xasprintf("%lld", wd_proc_start_ticks((long)getpid()));
    autofree char *started = xasprintf("%lld", (long long)time(NULL));
    autofree char *lstr = wd_buf_steal_str(&lis);
    struct wd_kv labels[] = {
        {WD_LABEL_APP, d->app},       {WD_LABEL_DEPLOYMENT, d->deployment_id},
        {WD_LABEL_ROLE, "network"},   {WD_LABEL_PID, pid},
        {WD_LABEL_HOST, host},        {WD_LABEL_LISTENERS, lstr},
        {WD_LABEL_LOG, x->log_path},  {WD_LABEL_STARTED, started},
        {WD_LABEL_PID_START, pid_start},
    };
    struct wd_network_spec ns = {.name = x->network, .labels = labels,
                                 .nlabels = WD_ARRAY_LEN(labels)};
    int r = wd_docker_network_create(x->dk, &ns, NULL, err);
    if (r == -EEXIST) {
        wd_err_free(err);
        /* a leftover without containers (we cleaned stale deployments before) */
        wd_docker_network_remove(x->dk, x->network, NULL);
        r = wd_docker_network_create(x->dk, &ns, NULL, err);
    }
    return r < 0 ? wd_err_wrap(err, "create network %s", x->network) : 0;
}

static void digest_file(EVP_MD_CTX *md, const char *path)
{
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0) {
        EVP_DigestUpdate(md, "-", 1);
        return;
    }
    static char buf[1 << 16];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        EVP_DigestUpdate(md, buf, (size_t)n);
    close(fd);
    EVP_DigestUpdate(md, "|", 1);
}

static void digest_strv(EVP_MD_CTX *md, const struct wd_strv *v)
{
    for (size_t i = 0; i < v->n; i++)
        EVP_DigestUpdate(md, v->v[i], strlen(v->v[i]) + 1);
    EVP_DigestUpdate(md, "|", 1);
}

/* What this up runs, hashed ("sha256:" and 24 hex digits): the runtime, the binary, the config
 * file, and what the config file only names: the environment its env_files give (as loaded)
 * and the secrets' contents. The same = nothing to do; anything else rolls the running
 * version over. */
static char *app_version(const struct wd_config *cfg, const char *runtime)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    EVP_DigestUpdate(md, runtime, strlen(runtime) + 1);
    digest_file(md, cfg->binary);
    digest_file(md, cfg->path);
    digest_strv(md, &cfg->docker_env);
    for (size_t i = 0; i < cfg->ngroups; i++)
        digest_strv(md, &cfg->groups[i].env);
    for (size_t i = 0; i < cfg->nsecrets; i++) {
        EVP_DigestUpdate(md, cfg->secrets[i].name, strlen(cfg->secrets[i].name) + 1);
        digest_file(md, cfg->secrets[i].path);
    }
    unsigned char dig[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    EVP_DigestFinal_ex(md, dig, &dlen);
    EVP_MD_CTX_free(md);
    char hex[25];
    wd_hex(dig, 12, hex);
    return xasprintf("sha256:%s", hex);
}

/* The running version a new up rolls over from (strings owned). */
struct running {
    struct wd_rollout_from from;
    char *control, *deployment, *listeners;
    bool same; /* the same version runs: nothing to do */
};

static void running_free(struct running *x)
{
    free(x->control);
    free(x->deployment);
    free(x->listeners);
}

/* A second `up` of a running app: the same version is nothing to do, another one rolls it
 * over (engine/deploy/rollout.h); a rollout under way or a deployer that does not answer is
 * refused. Records of deployers that are gone were cleaned by the caller. */
static int examine(const struct wd_deployment_rec *recs, size_t n, const char *app,
                   const char *version, struct running *out, struct wd_error **err)
{
    const struct wd_deployment_rec *alive = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!recs[i].deployer_alive)
            continue;
        if (alive)
            return wd_err(err, EBUSY,
                          "a rollout of %s is under way (deployment %.8s to %.8s); wait for it "
                          "to end, or stop it with 'weaver-docker rollout %s --abort'",
                          app, alive->deployment, recs[i].deployment, app);
        alive = &recs[i];
    }
    if (alive == NULL)
        return 0;
    autoerr struct wd_error *e = NULL;
    autojson cJSON *st = wd_cmd_deployer_status(alive, 5000, &e);
    if (st == NULL)
        return wd_err(err, EEXIST,
                      "%s is already up (deployment %.8s, deployer pid %ld) and its deployer "
                      "does not answer%s%s; run 'weaver-docker down %s' first",
                      app, alive->deployment, alive->pid, e ? ": " : "", e ? e->msg : "", app);
    const cJSON *ro = wd_json_obj(st, "rollout");
    const char *rstate = wd_json_str(ro, "state");
    if (rstate && strcmp(rstate, "done") != 0 && strcmp(rstate, "failed") != 0)
        return wd_err(err, EBUSY,
                      "a rollout of %s is under way (deployment %.8s is %s); wait for it to "
                      "end, or stop it with 'weaver-docker rollout %s --abort'",
                      app, alive->deployment, rstate, app);
    const char *v = wd_json_str(st, "version");
    if (v && strcmp(v, version) == 0) {
        out->same = true;
        out->deployment = xstrdup(alive->deployment);
        out->from.pid = alive->pid;
        return 0;
    }
    struct wd_buf lis = {0};
    const cJSON *l;
    cJSON_ArrayForEach(l, wd_json_obj(st, "listeners"))
        if (cJSON_IsString(l))
            wd_buf_printf(&lis, "%s%s=%s", lis.len ? ";" : "", l->string, l->valuestring);
    out->control = wd_state_control_path(alive);
    out->deployment = xstrdup(alive->deployment);
    out->listeners = lis.len ? wd_buf_steal_str(&lis) : xstrdup("");
    wd_buf_free(&lis);
    out->from = (struct wd_rollout_from){.control = out->control, .pid = alive->pid,
                                         .deployment = out->deployment,
                                         .listeners = out->listeners};
    return 0;
}

/* The app's deployments on this machine, of both runtimes (the engine's only when @dk): those
 * whose deployer was killed are cleaned up, then examine looks at the one that runs (a rollout
 * may change the runtime: the listeners' sockets pass between deployers all the same). */
static int check_running(struct wd_docker *dk, const char *app, const char *version,
                         struct running *out, struct wd_error **err)
{
    struct wd_deployment_rec *recs = NULL;
    size_t n = 0;
    int r = 0;
    if (dk)
        r = wd_state_list_all(dk, app, &recs, &n, err);
    else
        wd_state_list_process(app, &recs, &n);
    for (size_t i = 0; r == 0 && i < n; i++) {
        if (recs[i].deployer_alive)
            continue;
        if (recs[i].process) { /* a deployer that was killed left them */
            autofree char *sock = wd_state_control_path(&recs[i]);
            if (sock)
                unlink(sock);
            unlink(recs[i].status_path);
            continue;
        }
        wd_warn("removing what an earlier deployment of %s left behind (its deployer is gone)",
                app);
        r = wd_state_remove(dk, &recs[i], 0, NULL, err);
    }
    if (r == 0)
        r = examine(recs, n, app, version, out, err);
    wd_state_free(recs, n);
    return r;
}

/* The same version runs: one line, exit 0. */
static int up_to_date(const char *app, const struct running *x)
{
    printf("%s is up to date (deployment %.8s, deployer pid %ld): the same binary and config "
           "run already\n",
           app, x->deployment, x->from.pid);
    return 0;
}

/* How long `up -d` waits for "ready": a rollout may take its timeout, then its duration. */
static int64_t ready_timeout(const struct wd_config *cfg, const struct wd_deploy_opts *o)
{
    if (o->rollout == NULL)
        return READY_TIMEOUT_MS;
    return cfg->rollout_timeout_ms + cfg->rollout_nanos / 1000000 + 30000;
}

/* Detach: the child runs the deployment with its output in the app's state directory; the
 * parent returns once the child reports the app ready (or prints why it failed). */
static int detach(const char *app, const char *dir, const char *rolled_from, int64_t timeout_ms,
                  int *ready_fd, struct wd_error **err)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return wd_err_sys(err, errno, "pipe");
    autofree char *logp = xasprintf("%s/deployer.log", dir);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        return wd_err_sys(err, e, "fork");
    }
    if (pid == 0) {
        close(p[0]);
        setsid();
        int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
        int lf = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (nul >= 0) {
            dup2(nul, 0);
            close(nul);
        }
        if (lf >= 0) {
            dup2(lf, 1);
            dup2(lf, 2);
            close(lf);
        }
        *ready_fd = p[1];
        return 1; /* child: go on */
    }
    close(p[1]);
    /* Wait for "ready", printing "log" lines (errors of the weavelets) as they come. Ctrl-C or
     * a timeout stops the deployer, which removes what it made. */
    sigset_t sigs, old;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    sigprocmask(SIG_BLOCK, &sigs, &old);
    int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
    char buf[8192];
    size_t len = 0;
    int64_t deadline = wd_now_ms() + timeout_ms;
    const char *why = NULL;
    bool ready = false;
    autofree char *failure = NULL;
    while (!ready && !why && failure == NULL) {
        struct pollfd pf[2] = {{.fd = p[0], .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
        int64_t left = deadline - wd_now_ms();
        if (left <= 0 || poll(pf, sfd >= 0 ? 2 : 1, (int)left) == 0) {
            why = "did not become ready in time";
            break;
        }
        if (sfd >= 0 && (pf[1].revents & POLLIN)) {
            why = "was interrupted";
            break;
        }
        ssize_t n = read(p[0], buf + len, sizeof buf - 1 - len);
        if (n <= 0) {
            failure = xasprintf("the deployer of %s stopped before the app was ready; see %s", app,
                                logp);
            break;
        }
        len += (size_t)n;
        buf[len] = 0;
        char *nl;
        while (!ready && failure == NULL && (nl = memchr(buf, '\n', len)) != NULL) {
            *nl = 0;
            if (strncmp(buf, "log ", 4) == 0) {
                fprintf(stderr, "%s\n", buf + 4);
                /* weaver never retries a component that failed to construct (e.g. a typo in
                 * its config section): the app cannot become ready */
                if (strstr(buf, "Failed to construct") && deadline > wd_now_ms() + 3000)
                    deadline = wd_now_ms() + 3000;
                /* our own word on it (engine/deploy/deploy.c note_construct_failure): no need to wait */
                if (strstr(buf, "weaver does not retry it"))
                    deadline = wd_now_ms();
            } else if (strncmp(buf, "ready", 5) == 0) {
                ready = true;
                if (rolled_from)
                    printf("%s rolled over from deployment %.8s (deployer pid %d serves it now)\n",
                           app, rolled_from, (int)pid);
                else
                    printf("%s is up (deployer pid %d)\n", app, (int)pid);
                char *save = NULL;
                for (char *t = strtok_r(buf + 5, " ;", &save); t; t = strtok_r(NULL, " ;", &save)) {
                    char *eq = strchr(t, '=');
                    if (eq) {
                        *eq = 0;
                        printf("listener %s at %s\n", t, eq + 1);
                    }
                }
                printf("logs: weaver-docker logs %s    stop: weaver-docker down %s\n", app, app);
                break;
            } else if (strncmp(buf, "error ", 6) == 0) {
                failure = xstrdup(buf + 6);
            }
            size_t used = (size_t)(nl - buf) + 1;
            memmove(buf, buf + used, len - used);
            len -= used;
        }
        if (len == sizeof buf - 1)
            len = 0; /* an over-long line: drop it */
    }
    close(p[0]);
    if (sfd >= 0)
        close(sfd);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (ready)
        return 0;
    if (why) {
        kill(pid, SIGTERM);
        fprintf(stderr, "weaver-docker: %s %s; stopping it\n", app, why);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (failure)
        return wd_err(err, EIO, "%s", failure);
    return wd_err(err, why[0] == 'w' ? EINTR : ETIMEDOUT,
                  "%s %s (the errors above say why; full log: weaver-docker logs --system %s)",
                  app, why, app);
}

/* [docker] networks must exist before anything is made (the engine's own error comes only at
 * container start, after the image and the network). */
static int check_networks(struct wd_docker *dk, const struct wd_config *cfg, struct wd_error **err)
{
    for (size_t i = 0; i < cfg->networks.n; i++) {
        struct wd_network_info ni = {0};
        autoerr struct wd_error *nerr = NULL;
        int r = wd_docker_network_inspect(dk, cfg->networks.v[i], &ni, &nerr);
        wd_network_info_free(&ni);
        if (r == -ENOENT)
            return wd_err(err, ENOENT,
                          "%s: [docker] networks: network \"%s\" does not exist on the engine; "
                          "create it (docker network create %s) or remove it from the list",
                          cfg->path_shown ? cfg->path_shown : cfg->binary, cfg->networks.v[i],
                          cfg->networks.v[i]);
        if (r < 0) {
            *err = WD_STEAL(nerr);
            return r;
        }
    }
    return 0;
}

/* Named [docker] volumes: made once, labelled as ours, kept across down/up (down --volumes
 * removes them). */
static int ensure_volumes(struct wd_docker *dk, const struct wd_config *cfg, struct wd_error **err)
{
    for (size_t i = 0; i < cfg->nvolumes; i++) {
        if (cfg->volumes[i].bind)
            continue;
        autofree char *name = wd_docker_volume_name(cfg->name, cfg->volumes[i].source);
        struct wd_kv labels[] = {{WD_LABEL_APP, cfg->name}, {WD_LABEL_ROLE, "volume"}};
        bool created = false;
        int r = wd_docker_volume_create(dk, name, labels, WD_ARRAY_LEN(labels), &created, err);
        if (r < 0)
            return r;
        if (created)
            wd_info("volume %s created", name);
    }
    return 0;
}

/* The running deployment's terminal writers (engine/base/termout.h): while they exist, our lines go
 * through them, so a paused terminal blocks nobody. */
static struct wd_termout *term_err;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap);
    va_end(ap);
    if (term_err)
        wd_termout_write(term_err, s, strlen(s));
    else
        fputs(s, stderr);
    free(s);
}

static void log_to_term(void *arg, const char *line, size_t len)
{
    wd_termout_write(arg, line, len);
}

/* Terminal writers for a deployment of @app: made after any fork (threads do not survive it). */
static void terms_open(struct wd_deploy_opts *o, const char *app)
{
    autofree char *hint = xasprintf("all are in the log file: weaver-docker logs %s", app);
    o->term_out = wd_termout_new(fileno(o->out ? o->out : stdout), WD_TERM_QUEUE_BYTES, hint);
    o->term_err = wd_termout_new(2, WD_TERM_QUEUE_BYTES, hint);
    term_err = o->term_err;
    wd_log_set_sink(log_to_term, o->term_err);
}

static void terms_close(struct wd_deploy_opts *o)
{
    wd_log_set_sink(NULL, NULL);
    term_err = NULL;
    wd_termout_close(o->term_out, WD_TERM_CLOSE_MS);
    wd_termout_close(o->term_err, WD_TERM_CLOSE_MS);
    o->term_out = o->term_err = NULL;
}

/* Whatever is left of this deployment, and only of it (the same app may run elsewhere from a
 * compose file, with the same app label): normally nothing but the network. An engine that does
 * not answer (paused, restarting) is waited for: calls it queued meanwhile may still create
 * containers, so after it answers once more, one more pass a little later. Ctrl-C leaves the
 * rest to `down`. */
static bool final_cleanup(struct wd_docker *dk, const char *app, const char *dep,
                          struct wd_deploy_opts *o, const struct wd_error *failed)
{
    bool said = false, announced = false;
    int conflicts = 0;
    autofree char *lab = xasprintf("%s=%s", WD_LABEL_DEPLOYMENT, dep);
    const char *labels[1] = {lab};
    /* calls that timed out may still be carried out: look again after the first clean pass */
    bool recheck = wd_docker_timeouts() > 0;
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGHUP);
    for (;;) {
        autoerr struct wd_error *cerr = NULL;
        int rc = wd_docker_cleanup(dk, labels, 1, NULL, &cerr);
        if (rc == 0 && !recheck) {
            if (announced)
                say("weaver-docker: deployment %.8s of %s removed\n", dep, app);
            return said;
        }
        /* after engine trouble, the removals it queued meanwhile are still running ("removal
         * already in progress", a network still in use): give them a little time */
        bool settling = rc < 0 && (recheck || announced) && ++conflicts <= 20;
        if (rc < 0 && !(wd_docker_unreachable(rc) || rc == -ENOENT) && !settling) {
            wd_warn("cleanup: %s", cerr->msg);
            return said;
        }
        if (rc < 0 && !announced && wd_docker_unreachable(rc)) {
            if (failed && o->ready_fd >= 0) { /* the failure first, not after the wait */
                dprintf(o->ready_fd, "error %s\n", failed->msg);
                close(o->ready_fd);
                o->ready_fd = -1;
            } else if (failed) {
                say("weaver-docker: %s\n", failed->msg);
                said = true;
            }
            say("weaver-docker: %s\nweaver-docker: removing deployment %.8s of %s "
                    "once the engine answers (Ctrl-C leaves it to 'weaver-docker down %s')\n",
                    cerr->msg, dep, app, app);
            announced = true;
        }
        if (rc == 0)
            recheck = false; /* one more pass after the pause below */
        else
            recheck = true;
        /* blocked since the deployment's loop took them: wait for them here */
        sigset_t old;
        sigprocmask(SIG_BLOCK, &stop, &old);
        struct timespec ts = {rc == 0 ? 3 : 2, 0};
        int sig = sigtimedwait(&stop, NULL, &ts);
        sigprocmask(SIG_SETMASK, &old, NULL);
        if (sig > 0) {
            say("weaver-docker: not waiting; remove what is left with "
                            "'weaver-docker down %s'\n",
                    app);
            return said;
        }
    }
}

static int run_deployment(struct wd_config *cfg, struct wd_binary_info *bin,
                          struct wd_deploy_opts *o, struct wd_docker *dk, const char *image,
                          const char *bname, const char *log_path, const char *secrets_dir,
                          struct wd_error **err)
{
    /* one network per deployment: Docker 20.10 can keep a stale endpoint on a removed app's
     * network, which must not block the next up */
    autofree char *dep = wd_deploy_new_id();
    o->deployment_id = dep;
    autofree char *network = xasprintf("weaver-docker-%s-%.8s", cfg->name, dep);
    struct wd_docker_opts dopts = {
        .dk = dk, .image = image, .network = network, .binary_name = bname,
        .secrets_dir = secrets_dir};
    struct docker_run run = {.dk = dk, .network = network, .log_path = log_path};
    o->docker = &dopts;
    o->log_path = log_path;
    /* the deployer's own view of its replicas (health as soon as GetHealth answers), for ps */
    autofree char *ldir = xstrdup(log_path);
    if (strrchr(ldir, '/'))
        *strrchr(ldir, '/') = 0;
    autofree char *status = xasprintf("%s/" WD_STATE_STATUS_PREFIX "%d.json", ldir, (int)getpid());
    o->status_path = status;
    autofree char *control =
        xasprintf("%s/" WD_STATE_CONTROL_PREFIX "%d.sock", ldir, (int)getpid());
    o->control_path = control;
    o->on_start = create_network;
    o->on_start_arg = &run;
    terms_open(o, cfg->name);
    int r = wd_deploy_run(cfg, bin, o, err);
    bool said = final_cleanup(dk, cfg->name, dep, o, r < 0 ? *err : NULL);
    terms_close(o);
    if (said) {
        wd_err_free(err); /* said already, before the wait */
        return 1;
    }
    return r;
}

static int up_docker(struct wd_ctx *ctx, struct wd_config *cfg, struct wd_binary_info *bin,
                     struct wd_deploy_opts *o, bool detached, struct wd_error **err)
{
    if (wd_config_check_app_name(cfg->name, err) < 0)
        return -EINVAL;
    autofree char *shim = wd_image_find_shim();
    if (shim == NULL)
        return wd_err(err, ENOENT,
                      "cannot find weaver-docker-shim; build it with 'make' or set "
                      "WEAVER_DOCKER_SHIM");
    autodocker struct wd_docker *dk = NULL;
    int r = wd_docker_connect(ctx->host, &dk, err);
    if (r < 0)
        return r;
    struct running running __attribute__((cleanup(running_free))) = {0};
    if ((r = check_running(dk, cfg->name, o->version, &running, err)) < 0)
        return r;
    if (running.same)
        return up_to_date(cfg->name, &running);
    if (running.control)
        o->rollout = &running.from;
    if ((r = check_networks(dk, cfg, err)) < 0)
        return r;
    const char *owned[64];
    size_t nowned = 0;
    for (size_t i = 0; i < cfg->nvolumes && nowned < WD_ARRAY_LEN(owned); i++)
        if (!cfg->volumes[i].bind)
            owned[nowned++] = cfg->volumes[i].target;
    const char *bname = strrchr(cfg->binary, '/') ? strrchr(cfg->binary, '/') + 1 : cfg->binary;
    struct wd_kv ilabels[] = {{WD_LABEL_ROLE, "image"}};
    struct wd_image_spec is = {
        .app = cfg->name,
        .binary_path = cfg->binary,
        .binary_name = bname,
        .shim_path = shim,
        .interp = bin->interp,
        .needed = (const char *const *)bin->needed.v,
        .nneeded = bin->needed.n,
        .labels = ilabels,
        .nlabels = 1,
        .owned_dirs = owned,
        .nowned_dirs = nowned,
    };
    struct wd_image_result img = {0};
    if ((r = wd_image_ensure(dk, &is, &img, err)) < 0)
        return wd_err_wrap(err, "image for %s", cfg->name);
    wd_info("image %s %s (%lld ms)", img.tag, img.reused ? "reused" : "built",
            (long long)img.elapsed_ms);
    autofree char *dir = NULL;
    if ((r = wd_state_dir(cfg->name, &dir, err)) < 0) {
        wd_image_result_free(&img);
        return r;
    }
    wd_state_prune_logs(dir, WD_STATE_KEEP_LOGS - 1); /* room for this one */
    autofree char *log_path = xasprintf("%s/%lld-%d.log", dir, (long long)time(NULL), (int)getpid());
    /* copies of the secrets only the container user can read, bind-mounted at
     * /run/secrets/NAME; nothing of them reaches the engine's configuration but the path */
    autofree char *secrets_dir = cfg->nsecrets ? xasprintf("%s/secrets", dir) : NULL;
    if ((r = wd_secrets_stage(cfg, secrets_dir, err)) < 0 ||
        (r = ensure_volumes(dk, cfg, err)) < 0) {
        wd_secrets_remove(cfg, secrets_dir);
        wd_image_result_free(&img);
        return r;
    }
    if (detached) {
        r = detach(cfg->name, dir, running.control ? running.deployment : NULL,
                   ready_timeout(cfg, o), &o->ready_fd, err);
        if (r <= 0) { /* parent: done */
            wd_image_result_free(&img);
            return r;
        }
        /* child: a fresh engine connection (libcurl handles do not survive fork) */
        wd_docker_free(dk);
        dk = NULL;
        if ((r = wd_docker_connect(ctx->host, &dk, err)) < 0)
            goto report; /* no locals are declared between here and the label */
        free(log_path);
        log_path = xasprintf("%s/%lld-%d.log", dir, (long long)time(NULL), (int)getpid());
    }
    r = run_deployment(cfg, bin, o, dk, img.tag, bname, log_path, secrets_dir, err);
    wd_secrets_remove(cfg, secrets_dir);
report:
    if (detached && o->ready_fd >= 0) {
        if (r < 0 && err && *err)
            dprintf(o->ready_fd, "error %s\n", (*err)->msg);
        close(o->ready_fd);
        o->ready_fd = -1;
    }
    wd_image_result_free(&img);
    return r;
}

/* The process runtime: weavelets as local processes. It records itself in a status file of the
 * app's state directory, which `ps`, `logs` and `down` read as they read engine labels. */
static int up_process(struct wd_ctx *ctx, struct wd_config *cfg, struct wd_binary_info *bin,
                      struct wd_deploy_opts *o, bool detached, struct wd_error **err)
{
    autofree char *dir = NULL;
    int r = wd_state_dir(cfg->name, &dir, err);
    if (r < 0)
        return r;
    /* a deployment under the engine too, when one answers (a rollout may change the runtime) */
    autodocker struct wd_docker *dk = NULL;
    autoerr struct wd_error *cerr = NULL;
    if (wd_docker_connect(ctx->host, &dk, &cerr) < 0)
        dk = NULL;
    struct running running __attribute__((cleanup(running_free))) = {0};
    if ((r = check_running(dk, cfg->name, o->version, &running, err)) < 0)
        return r;
    wd_docker_free(dk); /* not across the fork below */
    dk = NULL;
    if (running.same)
        return up_to_date(cfg->name, &running);
    if (running.control)
        o->rollout = &running.from;
    if (detached) {
        r = detach(cfg->name, dir, running.control ? running.deployment : NULL,
                   ready_timeout(cfg, o), &o->ready_fd, err);
        if (r <= 0) /* parent: done */
            return r;
    }
    wd_state_prune_logs(dir, WD_STATE_KEEP_LOGS - 1);
    autofree char *lp = xasprintf("%s/%lld-%d.log", dir, (long long)time(NULL), (int)getpid());
    autofree char *sp =
        xasprintf("%s/" WD_STATE_PROCESS_PREFIX "%d.json", dir, (int)getpid());
    autofree char *cp = xasprintf("%s/" WD_STATE_CONTROL_PREFIX "%d.sock", dir, (int)getpid());
    o->log_path = lp;
    o->status_path = sp;
    o->control_path = cp;
    terms_open(o, cfg->name);
    r = wd_deploy_run(cfg, bin, o, err);
    terms_close(o);
    if (detached && o->ready_fd >= 0) {
        if (r < 0 && err && *err)
            dprintf(o->ready_fd, "error %s\n", (*err)->msg);
        close(o->ready_fd);
        o->ready_fd = -1;
    }
    return r;
}

int wd_cmd_up(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err)
{
    static const struct option opts[] = {{"runtime", required_argument, NULL, 'r'},
                                         {"detach", no_argument, NULL, 'd'},
                                         {"traces", required_argument, NULL, 't'},
                                         {"system", no_argument, NULL, 's'},
                                         {"file", required_argument, NULL, 'f'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *runtime = "docker";
    const char *file = NULL;
    bool detached = false;
    struct wd_deploy_opts o = {.color = ctx->color, .ready_fd = -1};
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "df:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            file = optarg;
            break;
        case 'r':
            runtime = optarg;
            break;
        case 'd':
            detached = true;
            break;
        case 't':
            o.traces_path = optarg;
            break;
        case 's':
            o.show_system = true;
            break;
        case 'h':
            fputs(up_usage, stdout);
            return 0;
        default:
            return wd_cmd_bad_option("up", argv, "df:h", err);
        }
    }
    if (argc - optind > (file ? 0 : 1))
        return wd_err(err, EINVAL,
                      "up: give one weaver.toml, directory or app binary (see 'weaver-docker up "
                      "--help')");
    if (strcmp(runtime, "process") != 0 && strcmp(runtime, "docker") != 0)
        return wd_err(err, EINVAL, "up: unknown runtime \"%s\" (use docker or process)", runtime);
    o.rt = strcmp(runtime, "docker") == 0 ? &wd_runtime_docker : &wd_runtime_process;

    struct wd_config *cfg = NULL;
    struct wd_binary_info *bin = NULL;
    autofree char *input = NULL;
    int r = wd_config_resolve_input(file ? file : optind < argc ? argv[optind] : NULL, &input, err);
    if (r < 0)
        return r;
    if ((r = wd_config_load(input, &cfg, err)) < 0)
        return r;
    r = wd_config_check_binary(cfg, err);
    if (r == 0)
        r = wd_binary_inspect(cfg->binary, &bin, err);
    if (r == 0)
        r = wd_binary_check_supported(bin, err);
    if (r == 0)
        r = wd_plan_check(cfg, bin, err);
    autofree char *version = r == 0 ? app_version(cfg, runtime) : NULL;
    o.version = version;
    if (r == 0 && strcmp(runtime, "docker") == 0)
        r = up_docker(ctx, cfg, bin, &o, detached, err);
    else if (r == 0)
        r = up_process(ctx, cfg, bin, &o, detached, err);
    wd_binary_info_free(bin);
    wd_config_free(cfg);
    return r;
}
