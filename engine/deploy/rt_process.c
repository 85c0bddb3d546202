/* The process runtime: every replica is a local child process (the seed's setup, like
 * `weaver multi`). Control sockets live in a private 0700 directory. */
#include "engine/deploy/deploy.h"
#include "engine/base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

extern char **environ;

struct proc_state {
    char *dir;
    unsigned seq;
};

struct proc {
    pid_t pid;
    char *ctl_path;
    char *dep_path;
    int lfd; /* our deployerControl listener for this weavelet */
    struct wd_watch *lw;
    int out_fd[2];
    struct wd_watch *out_w[2];
    struct wd_buf line[2];
    struct wd_timer *dial_timer;
    int dial_ms;
    bool exited;
    int code;
    char *how;
};

/* [docker] keys that only mean something for containers: say once that they do nothing here
 * (env, env_file and host_ports do apply: the weavelets run on the host). */
static void warn_container_keys(struct wd_deploy *d)
{
    const struct wd_config *c = d->cfg;
    bool limits = c->res.memory_bytes || c->res.nano_cpus ||
                  (c->res.pids && c->res.pids != WD_CONFIG_DEFAULT_PIDS);
    for (size_t i = 0; i < c->ngroups && !limits; i++)
        limits = c->groups[i].res.memory_bytes != c->res.memory_bytes ||
                 c->groups[i].res.nano_cpus != c->res.nano_cpus ||
                 c->groups[i].res.pids != c->res.pids;
    struct wd_buf b = {0};
    if (c->nvolumes)
        wd_buf_printf(&b, "%svolumes", b.len ? ", " : "");
    if (c->nsecrets)
        wd_buf_printf(&b, "%ssecrets", b.len ? ", " : "");
    if (c->networks.n)
        wd_buf_printf(&b, "%snetworks", b.len ? ", " : "");
    if (c->extra_hosts.n)
        wd_buf_printf(&b, "%sextra_hosts", b.len ? ", " : "");
    if (limits)
        wd_buf_printf(&b, "%smemory/cpus/pids", b.len ? ", " : "");
    if (b.len) {
        autofree char *keys = wd_buf_steal_str(&b);
        wd_deploy_event(d, "warn",
                        "--runtime=process ignores [docker] %s: they apply to containers only "
                        "(env, env_file and host_ports do apply)",
                        keys);
    }
}

static int p_init(struct wd_deploy *d, struct wd_error **err)
{
    struct proc_state *s = xzalloc(sizeof *s);
    const char *tmp = getenv("TMPDIR");
    char *tmpl = xasprintf("%s/weaver-docker-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(tmpl) == NULL) {
        int e = errno;
        free(tmpl);
        free(s);
        return wd_err_sys(err, e, "create a private directory for control sockets");
    }
    s->dir = tmpl;
    d->rt_state = s;
    warn_container_keys(d);
    return 0;
}

static int unix_listen(const char *path, struct wd_error **err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return wd_err(err, ENAMETOOLONG, "socket path %s is too long (set TMPDIR shorter)", path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return wd_err_sys(err, errno, "socket");
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 16) < 0) {
        int e = errno;
        close(fd);
        return wd_err_sys(err, e, "listen on %s", path);
    }
    return fd;
}

static void on_dep_accept(struct wd_watch *w, int fd, unsigned ev, void *arg)
{
    (void)w;
    (void)ev;
    struct wd_replica *r = arg;
    int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c >= 0)
        wd_replica_attach_deployer(r, c);
}

static void try_dial(struct wd_timer *t, void *arg);

static void schedule_dial(struct wd_replica *r)
{
    struct proc *p = r->rt;
    p->dial_ms = p->dial_ms ? (p->dial_ms * 3 / 2 > 200 ? 200 : p->dial_ms * 3 / 2) : 5;
    p->dial_timer = wd_timer_add(r->d->loop, p->dial_ms, try_dial, r);
}

/* The weavelet creates its control socket only after it has started: retry until it is there
 * (or the process is gone). */
static void try_dial(struct wd_timer *t, void *arg)
{
    (void)t;
    struct wd_replica *r = arg;
    struct proc *p = r->rt;
    p->dial_timer = NULL;
    if (p->exited)
        return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, p->ctl_path, strlen(p->ctl_path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        wd_replica_attach_control(r, fd);
        return;
    }
    if (fd >= 0)
        close(fd);
    schedule_dial(r);
}

static void on_output(struct wd_watch *w, int fd, unsigned ev, void *arg)
{
    (void)ev;
    struct wd_replica *r = arg;
    struct proc *p = r->rt;
    int k = fd == p->out_fd[0] ? 0 : 1;
    char buf[8192];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    struct wd_buf *lb = &p->line[k];
    if (n > 0)
        wd_buf_append(lb, buf, (size_t)n);
    for (;;) {
        uint8_t *nl = lb->data ? memchr(lb->data, '\n', lb->len) : NULL;
        if (nl == NULL && !(n <= 0 && lb->len > 0) && lb->len < 65536)
            break;
        size_t l = nl ? (size_t)(nl - lb->data) : lb->len;
        char *line = xstrndup((char *)lb->data, l);
        wd_replica_output(r, k == 0 ? "stdout" : "stderr", line);
        free(line);
        wd_buf_consume(lb, nl ? l + 1 : l);
        if (lb->len == 0)
            break;
    }
    if (n <= 0) {
        wd_watch_free(w);
        p->out_w[k] = NULL;
        close(fd);
        p->out_fd[k] = -1;
    }
}

static int p_launch(struct wd_deploy *d, struct wd_replica *r, struct wd_error **err)
{
    struct proc_state *s = d->rt_state;
    struct proc *p = xzalloc(sizeof *p);
    p->lfd = -1;
    p->out_fd[0] = p->out_fd[1] = -1;
    r->rt = p;
    unsigned n = ++s->seq;
    p->ctl_path = xasprintf("%s/w%u.sock", s->dir, n);
    p->dep_path = xasprintf("%s/d%u.sock", s->dir, n);
    /* weaver v0.20-v0.22: one socket stands for both pipes (the weavelet reads fd 3 and writes
     * fd 4; it does not care that they are one socket), and the handshake replaces
     * WEAVELET_ARGS */
    bool pipes = wd_binary_pipes(d->bin);
    int sp[2] = {-1, -1};
    autofree char *args = NULL;
    if (pipes) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
            return wd_err_sys(err, errno, "socketpair");
    } else {
        if (strlen(p->ctl_path) > 107)
            return wd_err(err, ENAMETOOLONG,
                          "control socket path %s is over 107 bytes (set TMPDIR)", p->ctl_path);
        int lfd = unix_listen(p->dep_path, err);
        if (lfd < 0)
            return lfd;
        p->lfd = lfd;
        p->lw = wd_watch_add(d->loop, lfd, WD_EV_IN, on_dep_accept, r);
        autofree char *redirect = xasprintf("unix://%s", p->dep_path);
        args = wd_replica_weavelet_args(r, p->ctl_path, redirect, "localhost:0");
    }

    /* envp: ours, then WEAVELET_ARGS, then [serviceweaver] env, then the group's [docker] env
     * and env_file (later entries win, as in Go): the same variables as in a container */
    const struct wd_strv *genv = wd_config_group_env(d->cfg, r->g->name);
    const struct wd_strv *lists[2] = {&d->cfg->env, genv};
    size_t ne = 0;
    while (environ[ne])
        ne++;
    char **envp = xcalloc(ne + d->cfg->env.n + genv->n + 3, sizeof *envp);
    size_t k = 0;
    for (size_t i = 0; i < ne; i++) {
        char *e = environ[i];
        bool overridden = strncmp(e, "WEAVELET_ARGS=", 14) == 0 ||
                          strncmp(e, "ENVELOPE_TO_WEAVELET_FD=", 24) == 0 ||
                          strncmp(e, "WEAVELET_TO_ENVELOPE_FD=", 24) == 0;
        for (size_t l = 0; l < 2 && !overridden; l++)
            overridden = wd_env_has_key(lists[l], e);
        if (!overridden)
            envp[k++] = e;
    }
    char *wa = pipes ? xstrdup("ENVELOPE_TO_WEAVELET_FD=3") : xasprintf("WEAVELET_ARGS=%s", args);
    autofree char *wa2 = pipes ? xstrdup("WEAVELET_TO_ENVELOPE_FD=4") : NULL;
    envp[k++] = wa;
    if (pipes)
        envp[k++] = wa2;
    /* Go keeps the first of two entries with one name: leave out what [docker] env replaces */
    for (size_t j = 0; j < d->cfg->env.n; j++)
        if (!wd_env_has_key(genv, d->cfg->env.v[j]))
            envp[k++] = d->cfg->env.v[j];
    for (size_t j = 0; j < genv->n; j++)
        envp[k++] = genv->v[j];
    char **argv = xcalloc(d->cfg->args.n + 2, sizeof *argv);
    argv[0] = d->cfg->binary;
    for (size_t j = 0; j < d->cfg->args.n; j++)
        argv[j + 1] = d->cfg->args.v[j];

    int pout[2] = {-1, -1}, perr[2] = {-1, -1};
    if (pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0) {
        int e = errno;
        for (int i = 0; i < 2; i++) {
            if (pout[i] >= 0)
                close(pout[i]);
            if (perr[i] >= 0)
                close(perr[i]);
            if (sp[i] >= 0)
                close(sp[i]);
        }
        free(envp);
        free(argv);
        free(wa);
        return wd_err_sys(err, e, "pipe");
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* child: own process group (so a terminal's Ctrl-C reaches only the deployer, which
         * then stops weavelets in order), die with the deployer, default signal state */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        int pipefd = pipes ? fcntl(sp[1], F_DUPFD, 10) : -1; /* above 0-4 before they move */
        if (pipes && pipefd < 0)
            _exit(126);
        int devnull = open("/dev/null", O_RDONLY); /* may be 0 itself: no O_CLOEXEC */
        if (devnull > 0) {
            dup2(devnull, 0);
            if (devnull > 2)
                close(devnull);
        }
        dup2(pout[1], 1);
        dup2(perr[1], 2);
        if (pipes) {
            dup2(pipefd, 3);
            dup2(pipefd, 4);
            close(pipefd);
        }
        execve(argv[0], argv, envp);
        dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    int fe = errno;
    close(pout[1]);
    close(perr[1]);
    if (pipes)
        close(sp[1]);
    free(envp);
    free(argv);
    free(wa);
    if (pid < 0) {
        close(pout[0]);
        close(perr[0]);
        if (pipes)
            close(sp[0]);
        return wd_err_sys(err, fe, "fork");
    }
    setpgid(pid, pid);
    p->pid = pid;
    p->out_fd[0] = pout[0];
    p->out_fd[1] = perr[0];
    for (int i = 0; i < 2; i++) {
        fcntl(p->out_fd[i], F_SETFL, fcntl(p->out_fd[i], F_GETFL) | O_NONBLOCK);
        p->out_w[i] = wd_watch_add(d->loop, p->out_fd[i], WD_EV_IN, on_output, r);
    }
    wd_debug("group %s replica %d: pid %d, weavelet %s", r->g->short_name, r->slot, (int)pid,
             r->id);
    if (pipes) {
        fcntl(sp[0], F_SETFL, fcntl(sp[0], F_GETFL) | O_NONBLOCK);
        wd_replica_attach_pipe(r, sp[0], "localhost:0");
    } else {
        schedule_dial(r);
    }
    return 0;
}

static void p_stop(struct wd_deploy *d, struct wd_replica *r, bool force)
{
    (void)d;
    struct proc *p = r->rt;
    if (p && p->pid > 0 && !p->exited)
        kill(-p->pid, force ? SIGKILL : SIGTERM);
}

static const char *p_listen_address(struct wd_deploy *d, struct wd_replica *r)
{
    (void)d;
    (void)r;
    return "localhost:0";
}

static char *p_backend_address(struct wd_deploy *d, struct wd_replica *r, const char *bound)
{
    (void)d;
    (void)r;
    return xstrdup(bound);
}

static void p_release(struct wd_deploy *d, struct wd_replica *r)
{
    (void)d;
    struct proc *p = r->rt;
    if (p == NULL)
        return;
    wd_timer_cancel(p->dial_timer);
    wd_watch_free(p->lw);
    if (p->lfd >= 0)
        close(p->lfd);
    for (int i = 0; i < 2; i++) {
        wd_watch_free(p->out_w[i]);
        if (p->out_fd[i] >= 0)
            close(p->out_fd[i]);
        wd_buf_free(&p->line[i]);
    }
    unlink(p->ctl_path);
    unlink(p->dep_path);
    free(p->ctl_path);
    free(p->dep_path);
    free(p->how);
    free(p);
    r->rt = NULL;
}

/* One pass over what the pipes hold now (a process that inherited them may keep them open:
 * never wait for EOF here). */
static void drain_output(struct wd_replica *r)
{
    struct proc *p = r->rt;
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 64 && p->out_w[i]; k++) {
            int avail = 0;
            if (ioctl(p->out_fd[i], FIONREAD, &avail) < 0 || avail <= 0)
                break;
            on_output(p->out_w[i], p->out_fd[i], WD_EV_IN, r);
        }
}

static void p_on_signal(struct wd_deploy *d, int sig)
{
    if (sig != SIGCHLD)
        return;
    for (;;) {
        int st = 0;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid <= 0)
            return;
        for (size_t i = 0; i < d->ngroups; i++) {
            struct wd_group *g = d->groups[i];
            for (int j = 0; j < g->nreplicas; j++) {
                struct wd_replica *r = g->replicas[j];
                struct proc *p = r ? r->rt : NULL;
                if (p == NULL || p->pid != pid)
                    continue;
                p->exited = true;
                kill(-pid, SIGKILL); /* anything the weavelet left in its group */
                /* the weavelet's last words (a panic trace) come before the exit report */
                drain_output(r);
                char how[96];
                int code;
                if (WIFSIGNALED(st)) {
                    snprintf(how, sizeof how, "was killed by signal %d (%s)", WTERMSIG(st),
                             strsignal(WTERMSIG(st)));
                    code = 128 + WTERMSIG(st);
                } else {
                    code = WEXITSTATUS(st);
                    snprintf(how, sizeof how, "exited with status %d%s", code,
                             code == 2 ? " (a Go panic)" : "");
                }
                wd_replica_exited(r, how, code);
                goto next;
            }
        }
    next:;
    }
}

static void p_shutdown(struct wd_deploy *d)
{
    struct proc_state *s = d->rt_state;
    if (s == NULL)
        return;
    rmdir(s->dir);
    free(s->dir);
    free(s);
    d->rt_state = NULL;
}

static long p_pid(struct wd_deploy *d, struct wd_replica *r)
{
    (void)d;
    const struct proc *p = r->rt;
    return p && !p->exited ? (long)p->pid : 0;
}

const struct wd_runtime_ops wd_runtime_process = {
    .name = "process",
    .init = p_init,
    .launch = p_launch,
    .stop = p_stop,
    .listen_address = p_listen_address,
    .backend_address = p_backend_address,
    .release = p_release,
    .shutdown = p_shutdown,
    .on_signal = p_on_signal,
    .pid = p_pid,
};
