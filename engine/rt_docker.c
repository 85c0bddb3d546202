/* The docker runtime: every replica is a container on a bridge network of the deployment,
 * with our shim as PID 1 (docs/design/shim-link.md). Engine calls block, so they run on a few
 * worker threads, each with its own engine connection; results come back to the loop thread
 * through wd_loop_post. The deployer always dials the shims; nothing is published on the host. */
#include "engine/deploy.h"
#include "engine/docker.h"
#include "engine/image.h"
#include "engine/log.h"
#include "engine/rt_docker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define NWORKERS 4
#define LINK_HELLO 40

struct job {
    void (*run)(struct wd_docker *dk, struct job *j); /* on a worker */
    void (*done)(struct job *j);                       /* on the loop; frees j */
    struct dk_state *s;
    struct wd_replica *r; /* may be NULL; never dereferenced on a worker */
    uint64_t gen;         /* replica generation when queued */
    char *name, *id, *ip;
    char *msg;
    int rc;
    struct job *next;
};

struct follower;

struct dk_state {
    struct wd_deploy *d;
    struct wd_docker *dk; /* loop thread's connection */
    const struct wd_docker_opts *opts;
    char *image;
    char *network;
    uint8_t token[32];
    char token_hex[65];
    pthread_t workers[NWORKERS];
    size_t nworkers;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head, **tail;
    size_t inflight;
    bool quit;
    struct wd_docker_events *events;
    bool ever_ready;
    struct follower *followers; /* joined at shutdown */
};

/* One thread per container follows its stdout/stderr (panic traces, prints) into our logs. */
struct follower {
    struct dk_state *s;
    struct wd_docker *dk;
    char *id;
    struct wd_replica *r;
    uint64_t gen;
    pthread_t th;
    struct wd_buf line[2];
    struct follower *next;
};

struct out_line {
    struct dk_state *s;
    struct wd_replica *r;
    uint64_t gen;
    int stream;
    char *text;
};

struct dk_replica {
    char *name;
    char *container_id;
    char *ip;
    int exit_code;
    bool gone;
    bool died_early;
    int wfd, dfd; /* links being set up */
    struct wd_watch *ww, *dw;
    uint8_t whello[LINK_HELLO], dhello[LINK_HELLO];
    size_t wsent, dsent;
    struct wd_timer *wt, *dt;
    int wtries, dtries;
    int pushed_health; /* last health pushed to the shim (0 = none yet) */
};

/* A health push to the shim ('H' hello, docs/design/shim-link.md): fire and forget. */
struct hpush {
    int fd;
    struct wd_watch *w;
    uint8_t hello[LINK_HELLO];
    size_t sent;
};

/* ---------- worker pool ---------- */

static void *worker_main(void *arg)
{
    struct dk_state *s = arg;
    struct wd_docker *dk = wd_docker_clone(s->dk);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->head == NULL && !s->quit)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->head == NULL && s->quit)
            break;
        struct job *j = s->head;
        s->head = j->next;
        if (s->head == NULL)
            s->tail = &s->head;
        pthread_mutex_unlock(&s->mu);
        j->run(dk, j);
        wd_loop_post(s->d->loop, (wd_post_fn)j->done, j);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    wd_docker_free(dk);
    return NULL;
}

static void submit(struct dk_state *s, struct job *j)
{
    j->s = s;
    pthread_mutex_lock(&s->mu);
    j->next = NULL;
    *s->tail = j;
    s->tail = &j->next;
    s->inflight++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void job_free(struct job *j)
{
    pthread_mutex_lock(&j->s->mu);
    j->s->inflight--;
    pthread_mutex_unlock(&j->s->mu);
    free(j->name);
    free(j->id);
    free(j->ip);
    free(j->msg);
    free(j);
}

/* ---------- container output ---------- */

static struct wd_replica *live_replica(struct wd_deploy *d, struct wd_replica *r, uint64_t gen);

static void on_out_line(void *arg)
{
    struct out_line *o = arg;
    struct wd_replica *r = live_replica(o->s->d, o->r, o->gen);
    if (r)
        wd_replica_output(r, o->stream == 2 ? "stderr" : "stdout", o->text);
    free(o->text);
    free(o);
}

static void emit_line(struct follower *f, int stream, const char *p, size_t n)
{
    /* the shim's own diagnostics are ours, not the app's */
    if (n >= 19 && memcmp(p, "weaver-docker-shim:", 19) == 0 && wd_log_get_level() < WD_LOG_DEBUG)
        return;
    struct out_line *o = xzalloc(sizeof *o);
    o->s = f->s;
    o->r = f->r;
    o->gen = f->gen;
    o->stream = stream;
    o->text = xstrndup(p, n);
    wd_loop_post(f->s->d->loop, on_out_line, o);
}

static int on_output(void *arg, int stream, const uint8_t *data, size_t len)
{
    struct follower *f = arg;
    struct wd_buf *b = &f->line[stream == 2 ? 1 : 0];
    wd_buf_append(b, data, len);
    for (;;) {
        uint8_t *nl = memchr(b->data, '\n', b->len);
        if (nl == NULL && b->len < 65536)
            break;
        size_t l = nl ? (size_t)(nl - b->data) : b->len;
        emit_line(f, stream, (const char *)b->data, l);
        wd_buf_consume(b, nl ? l + 1 : l);
        if (b->len == 0)
            break;
    }
    return 0;
}

static void *follower_main(void *arg)
{
    struct follower *f = arg;
    struct wd_logs_opts lo = {.follow = true, .tty = 0};
    wd_docker_container_logs(f->dk, f->id, &lo, on_output, f, NULL);
    for (int k = 0; k < 2; k++)
        if (f->line[k].len)
            emit_line(f, k + 1, (const char *)f->line[k].data, f->line[k].len);
    return NULL;
}

/* Called on the loop thread. */
static void follow(struct dk_state *s, struct wd_replica *r, const char *id)
{
    struct follower *f = xzalloc(sizeof *f);
    f->s = s;
    f->dk = wd_docker_clone(s->dk);
    f->id = xstrdup(id);
    f->r = r;
    f->gen = r->gen;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int e = pthread_create(&f->th, NULL, follower_main, f);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        wd_docker_free(f->dk);
        free(f->id);
        free(f);
        return;
    }
    f->next = s->followers;
    s->followers = f;
}

/* ---------- links to the shim ---------- */

static void link_start(struct wd_replica *r, char chan);

/* One callback per channel: a timer does not say which of the two fired. */
static void link_retry_w(struct wd_timer *t, void *arg)
{
    (void)t;
    struct wd_replica *r = arg;
    struct dk_replica *x = r->rt;
    x->wt = NULL;
    if (x->wfd < 0 && r->ctl == NULL)
        link_start(r, 'W');
}

static void link_retry_d(struct wd_timer *t, void *arg)
{
    (void)t;
    struct wd_replica *r = arg;
    struct dk_replica *x = r->rt;
    x->dt = NULL;
    if (x->dfd < 0)
        link_start(r, 'D');
}

static void link_fail(struct wd_replica *r, char chan)
{
    struct dk_replica *x = r->rt;
    struct wd_watch **w = chan == 'W' ? &x->ww : &x->dw;
    int *fd = chan == 'W' ? &x->wfd : &x->dfd;
    int *tries = chan == 'W' ? &x->wtries : &x->dtries;
    wd_watch_free(*w);
    *w = NULL;
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
    if (x->gone || r->d->stopping)
        return;
    int delay = 5 << (*tries < 6 ? *tries : 6); /* 5 ms ... 320 ms */
    (*tries)++;
    if (chan == 'W') {
        wd_timer_cancel(x->wt);
        x->wt = wd_timer_add(r->d->loop, delay, link_retry_w, r);
    } else {
        wd_timer_cancel(x->dt);
        x->dt = wd_timer_add(r->d->loop, delay, link_retry_d, r);
    }
}

static void on_link(struct wd_watch *w, int fd, unsigned ev, void *arg)
{
    (void)ev;
    struct wd_replica *r = arg;
    struct dk_replica *x = r->rt;
    char chan = w == x->ww ? 'W' : 'D';
    size_t *sent = chan == 'W' ? &x->wsent : &x->dsent;
    uint8_t *hello = chan == 'W' ? x->whello : x->dhello;
    if (*sent < LINK_HELLO) {
        int e = 0;
        socklen_t el = sizeof e;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el);
        if (e) {
            link_fail(r, chan);
            return;
        }
        ssize_t n = send(fd, hello + *sent, LINK_HELLO - *sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR)
                link_fail(r, chan);
            return;
        }
        *sent += (size_t)n;
        if (*sent == LINK_HELLO)
            wd_watch_set(w, WD_EV_IN);
        return;
    }
    uint8_t ack = 0;
    ssize_t n = recv(fd, &ack, 1, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n != 1 || ack != 1) {
        if (n == 0 && *sent == LINK_HELLO && chan == 'W' && x->wtries > 200)
            wd_warn("shim of %s refuses the link (bad token?)", x->name);
        link_fail(r, chan);
        return;
    }
    wd_watch_free(w);
    if (chan == 'W') {
        x->ww = NULL;
        x->wtries = 0;
        int f = WD_STEAL_FD(x->wfd);
        wd_replica_attach_control(r, f);
    } else {
        x->dw = NULL;
        x->dtries = 0;
        int f = WD_STEAL_FD(x->dfd);
        wd_replica_attach_deployer(r, f);
    }
}

/* Start a non-blocking TCP connection to the shim of x. Returns the fd, or -1. */
static int shim_dial(const struct dk_replica *x)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(WD_SHIM_PORT)};
    if (x->ip == NULL || inet_pton(AF_INET, x->ip, &sa.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The 40-byte link hello (docs/design/shim-link.md). */
static void shim_hello(uint8_t hello[LINK_HELLO], char chan, uint8_t arg, const uint8_t *token)
{
    memcpy(hello, "WDL1", 4);
    hello[4] = (uint8_t)chan;
    hello[5] = arg;
    hello[6] = hello[7] = 0;
    memcpy(hello + 8, token, 32);
}

static void link_start(struct wd_replica *r, char chan)
{
    struct dk_replica *x = r->rt;
    struct dk_state *s = r->d->rt_state;
    if (x->gone || x->ip == NULL)
        return;
    uint8_t *hello = chan == 'W' ? x->whello : x->dhello;
    shim_hello(hello, chan, 0, s->token);
    int fd = shim_dial(x);
    if (fd < 0) {
        link_fail(r, chan);
        return;
    }
    if (chan == 'W') {
        x->wfd = fd;
        x->wsent = 0;
    } else {
        x->dfd = fd;
        x->dsent = 0;
    }
    struct wd_watch *w = wd_watch_add(r->d->loop, fd, WD_EV_OUT, on_link, r);
    if (chan == 'W')
        x->ww = w;
    else
        x->dw = w;
}

static void hpush_done(struct hpush *h)
{
    wd_watch_free(h->w);
    close(h->fd);
    free(h);
}

static void on_hpush(struct wd_watch *w, int fd, unsigned ev, void *arg)
{
    (void)w;
    (void)ev;
    struct hpush *h = arg;
    if (h->sent < LINK_HELLO) {
        int e = 0;
        socklen_t el = sizeof e;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el);
        ssize_t n = e ? -1 : send(fd, h->hello + h->sent, LINK_HELLO - h->sent, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR) && !e)
            return;
        if (n < 0) {
            hpush_done(h);
            return;
        }
        h->sent += (size_t)n;
        if (h->sent == LINK_HELLO)
            wd_watch_set(h->w, WD_EV_IN);
        return;
    }
    uint8_t b;
    ssize_t n = recv(fd, &b, 1, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    hpush_done(h); /* ack or EOF: done either way */
}

static void d_health(struct wd_deploy *d, struct wd_replica *r, int status)
{
    struct dk_state *s = d->rt_state;
    struct dk_replica *x = r->rt;
    int v = status == 1 /* HEALTHY */ ? 1 : 2;
    if (x == NULL || x->ip == NULL || x->gone || x->pushed_health == v)
        return;
    int fd = shim_dial(x);
    if (fd < 0)
        return;
    struct hpush *h = xzalloc(sizeof *h);
    h->fd = fd;
    shim_hello(h->hello, 'H', (uint8_t)v, s->token);
    h->w = wd_watch_add(d->loop, fd, WD_EV_OUT, on_hpush, h);
    x->pushed_health = v;
}

/* ---------- launch ---------- */

struct launch_ctx {
    struct wd_container_spec spec;
    char *env[64];
    size_t nenv;
    char *cmd[64];
    size_t ncmd;
    struct wd_kv labels[9];
    char *label_vals[9];
    const char *aliases[2];
    const char *health_argv[2];
    struct wd_healthcheck health;
    struct wd_tmpfs tmpfs;
    char *own_name;
};

static void launch_ctx_free(struct launch_ctx *c)
{
    for (size_t i = 0; i < c->nenv; i++)
        free(c->env[i]);
    for (size_t i = 0; i < c->ncmd; i++)
        free(c->cmd[i]);
    for (size_t i = 0; i < 9; i++)
        free(c->label_vals[i]);
    free(c->own_name);
    free(c);
}

struct launch_job {
    struct job j;
    struct launch_ctx *c;
};

static void run_launch(struct wd_docker *dk, struct job *j)
{
    struct launch_job *lj = (struct launch_job *)j;
    autoerr struct wd_error *err = NULL;
    /* a leftover of an earlier replica with this name (it is removed on death, but removal
     * is asynchronous) */
    wd_docker_container_remove(dk, j->name, true, NULL);
    j->rc = wd_docker_container_create(dk, &lj->c->spec, &j->id, &err);
    /* the engine may still be removing the old one ("removal ... already in progress") */
    for (int i = 0; j->rc == -EEXIST && i < 40; i++) {
        wd_err_free(&err);
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
        wd_docker_container_remove(dk, j->name, true, NULL);
        j->rc = wd_docker_container_create(dk, &lj->c->spec, &j->id, &err);
    }
    if (j->rc < 0 || (j->rc = wd_docker_container_start(dk, j->id, &err)) < 0) {
        j->msg = xstrdup(err->msg);
        return;
    }
    struct wd_container_info info = {0};
    if ((j->rc = wd_docker_container_inspect(dk, j->id, j->s->network, &info, &err)) < 0) {
        j->msg = xstrdup(err->msg);
        return;
    }
    j->ip = info.ip ? xstrdup(info.ip) : NULL;
    if (!info.running)
        j->rc = -ECHILD; /* died at once: the die event reports it */
    wd_container_info_free(&info);
}

/* r if it is still the replica the job was made for (it may have been freed and its memory
 * reused by a newer replica meanwhile). */
static struct wd_replica *live_replica(struct wd_deploy *d, struct wd_replica *r, uint64_t gen)
{
    for (size_t i = 0; i < d->ngroups; i++)
        for (int k = 0; k < d->groups[i]->nreplicas; k++)
            if (d->groups[i]->replicas[k] == r && r->gen == gen)
                return r;
    return NULL;
}

static void submit_simple(struct dk_state *s, void (*run)(struct wd_docker *, struct job *),
                          const char *id, const char *name, const char *arg);
static void run_remove(struct wd_docker *dk, struct job *j);

static void d_stop(struct wd_deploy *d, struct wd_replica *r, bool force);

static void done_launch(struct job *j)
{
    struct launch_job *lj = (struct launch_job *)j;
    struct dk_state *s = j->s;
    struct wd_replica *r = live_replica(s->d, j->r, j->gen);
    launch_ctx_free(lj->c);
    if (r == NULL || r->rt == NULL) { /* stopped meanwhile: remove what we made */
        if (j->id && s->d->rt_state)
            submit_simple(s, run_remove, j->id, j->name, NULL);
        job_free(j);
        return;
    }
    struct dk_replica *x = r->rt;
    if (j->rc < 0 && j->rc != -ECHILD) {
        /* before anything ever served, a failed start is a failed deployment; either way
         * the replica is gone (exited removes whatever container exists by its name) */
        if (!s->ever_ready)
            wd_deploy_fail(s->d, "start container %s: %s", j->name, j->msg);
        wd_replica_exited(r, j->msg ? j->msg : "could not start", -1);
        job_free(j);
        return;
    }
    x->container_id = WD_STEAL(j->id);
    x->ip = WD_STEAL(j->ip);
    job_free(j);
    if (x->died_early) { /* its die event came first */
        follow(s, r, x->container_id); /* its last words */
        char how[64];
        snprintf(how, sizeof how, "exited at once with status %d", x->exit_code);
        wd_replica_exited(r, how, x->exit_code);
        return;
    }
    wd_debug("%s started at %s", x->name, x->ip ? x->ip : "?");
    follow(s, r, x->container_id);
    if (s->d->stopping) { /* the stop came while it was being created: kill it now */
        d_stop(s->d, r, true);
        return;
    }
    link_start(r, 'W');
    link_start(r, 'D');
}

static char *container_name(struct wd_deploy *d, struct wd_replica *r)
{
    return xasprintf("%s-%s-%d", d->app, r->g->slug, r->slot);
}

static int d_launch(struct wd_deploy *d, struct wd_replica *r, struct wd_error **err)
{
    (void)err;
    struct dk_state *s = d->rt_state;
    struct dk_replica *x = xzalloc(sizeof *x);
    x->wfd = x->dfd = -1;
    x->exit_code = -1;
    r->rt = x;
    x->name = container_name(d, r);
    struct launch_ctx *c = xzalloc(sizeof *c);
    autofree char *internal = xasprintf("%s:0", x->name);
    autofree char *args = wd_replica_weavelet_args(r, WD_SHIM_DIR "/control.sock",
                                                   "unix://" WD_SHIM_DIR "/deployer.sock",
                                                   internal);
    c->env[c->nenv++] = xasprintf("WEAVELET_ARGS=%s", args);
    c->env[c->nenv++] = xasprintf("WEAVER_SHIM_TOKEN=%s", s->token_hex);
    /* weaver's packages create $HOME/.local at init; the rootfs is read-only, /tmp a tmpfs */
    c->env[c->nenv++] = xstrdup("HOME=/tmp");
    for (size_t i = 0; i < d->cfg->env.n && c->nenv < 60; i++)
        c->env[c->nenv++] = xstrdup(d->cfg->env.v[i]);
    c->cmd[c->ncmd++] = xstrdup(WD_SHIM_PATH);
    c->cmd[c->ncmd++] = xstrdup("--");
    c->cmd[c->ncmd++] = xasprintf("/app/%s", s->opts->binary_name);
    for (size_t i = 0; i < d->cfg->args.n && c->ncmd < 60; i++)
        c->cmd[c->ncmd++] = xstrdup(d->cfg->args.v[i]);
    size_t nl = 0;
    c->label_vals[nl] = xstrdup(d->app);
    c->labels[nl] = (struct wd_kv){WD_LABEL_APP, c->label_vals[nl]}, nl++;
    c->label_vals[nl] = xstrdup(d->deployment_id);
    c->labels[nl] = (struct wd_kv){WD_LABEL_DEPLOYMENT, c->label_vals[nl]}, nl++;
    c->label_vals[nl] = xstrdup(r->g->short_name);
    c->labels[nl] = (struct wd_kv){WD_LABEL_GROUP, c->label_vals[nl]}, nl++;
    c->label_vals[nl] = xasprintf("%d", r->slot);
    c->labels[nl] = (struct wd_kv){WD_LABEL_REPLICA, c->label_vals[nl]}, nl++;
    c->label_vals[nl] = xstrdup("weavelet");
    c->labels[nl] = (struct wd_kv){WD_LABEL_ROLE, c->label_vals[nl]}, nl++;
    c->label_vals[nl] = xstrdup(r->id);
    c->labels[nl] = (struct wd_kv){WD_LABEL_PREFIX "weavelet", c->label_vals[nl]}, nl++;
    c->label_vals[nl] = xasprintf("%d", r->restarts);
    c->labels[nl] = (struct wd_kv){WD_LABEL_PREFIX "restarts", c->label_vals[nl]}, nl++;
    c->aliases[0] = r->g->slug;
    c->health_argv[0] = WD_SHIM_PATH;
    c->health_argv[1] = "--health";
    c->health = (struct wd_healthcheck){.argv = c->health_argv,
                                        .argc = 2,
                                        .interval_ns = 5000000000LL,
                                        .timeout_ns = 2000000000LL,
                                        .start_period_ns = 1000000000LL,
                                        .retries = 3};
    c->tmpfs = (struct wd_tmpfs){.path = "/tmp", .options = "rw,nosuid,nodev,mode=1777,size=64m"};
    c->spec = (struct wd_container_spec){
        .name = x->name,
        .image = s->image,
        .entrypoint = (const char *const *)c->cmd,
        .nentrypoint = c->ncmd,
        .env = (const char *const *)c->env,
        .nenv = c->nenv,
        .labels = c->labels,
        .nlabels = nl,
        .user = "65532:65532",
        .hostname = x->name,
        .read_only = true,
        .cap_drop_all = true,
        .no_new_privileges = true,
        .tmpfs = &c->tmpfs,
        .ntmpfs = 1,
        .network = s->network,
        .aliases = c->aliases,
        .naliases = 1,
        .health = &c->health,
        .stop_timeout_s = 5,
        .memory_bytes = s->opts->memory_bytes,
        .nano_cpus = s->opts->nano_cpus,
    };
    struct launch_job *lj = xzalloc(sizeof *lj);
    lj->c = c;
    /* the worker reads the spec: it must not point into x, which the loop thread owns */
    c->own_name = xstrdup(x->name);
    c->spec.name = c->own_name;
    c->spec.hostname = c->own_name;
    lj->j.run = run_launch;
    lj->j.done = done_launch;
    lj->j.r = r;
    lj->j.gen = r->gen;
    lj->j.name = xstrdup(x->name);
    submit(s, &lj->j);
    return 0;
}

/* ---------- stop, remove ---------- */

static void run_kill(struct wd_docker *dk, struct job *j)
{
    autoerr struct wd_error *err = NULL;
    j->rc = wd_docker_container_kill(dk, j->id, j->msg, &err);
}

static void run_remove(struct wd_docker *dk, struct job *j)
{
    autoerr struct wd_error *err = NULL;
    j->rc = wd_docker_container_remove(dk, j->id, true, &err);
    if (j->rc < 0 && j->rc != -ENOENT)
        wd_warn("remove container %s: %s", j->name, err->msg);
}

static void submit_simple(struct dk_state *s, void (*run)(struct wd_docker *, struct job *),
                          const char *id, const char *name, const char *arg)
{
    struct job *j = xzalloc(sizeof *j);
    j->run = run;
    j->done = job_free;
    j->id = xstrdup(id);
    j->name = xstrdup(name);
    j->msg = arg ? xstrdup(arg) : NULL;
    submit(s, j);
}

static void d_stop(struct wd_deploy *d, struct wd_replica *r, bool force)
{
    struct dk_replica *x = r->rt;
    if (x == NULL || x->gone)
        return;
    /* not created yet: the launch's completion notices the replica is gone */
    submit_simple(d->rt_state, run_kill, x->container_id ? x->container_id : x->name, x->name,
                  force ? "SIGKILL" : "SIGTERM");
}

static void d_release(struct wd_deploy *d, struct wd_replica *r)
{
    struct dk_replica *x = r->rt;
    if (x == NULL)
        return;
    x->gone = true;
    wd_timer_cancel(x->wt);
    wd_timer_cancel(x->dt);
    wd_watch_free(x->ww);
    wd_watch_free(x->dw);
    if (x->wfd >= 0)
        close(x->wfd);
    if (x->dfd >= 0)
        close(x->dfd);
    submit_simple(d->rt_state, run_remove, x->container_id ? x->container_id : x->name, x->name,
                  NULL);
    free(x->name);
    free(x->container_id);
    free(x->ip);
    free(x);
    r->rt = NULL;
}

static const char *d_listen_address(struct wd_deploy *d, struct wd_replica *r)
{
    (void)d;
    (void)r;
    return ":0"; /* all interfaces of the container; we reach it at the container's address */
}

static char *d_backend_address(struct wd_deploy *d, struct wd_replica *r, const char *bound)
{
    (void)d;
    struct dk_replica *x = r->rt;
    const char *colon = strrchr(bound, ':');
    if (x == NULL || x->ip == NULL || colon == NULL)
        return xstrdup(bound);
    return xasprintf("%s%s", x->ip, colon);
}

static void d_dep_lost(struct wd_deploy *d, struct wd_replica *r)
{
    struct dk_replica *x = r->rt;
    if (x && !x->gone && !d->stopping && x->dfd < 0 && x->dt == NULL)
        link_start(r, 'D'); /* keep one deployerControl link parked in the shim */
}

/* ---------- events ---------- */

struct die_note {
    struct dk_state *s;
    char *id;
    char *name;
    int64_t code;
    bool oom;
};

static void on_die(void *arg)
{
    struct die_note *n = arg;
    struct wd_deploy *d = n->s->d;
    for (size_t i = 0; i < d->ngroups; i++)
        for (int k = 0; k < d->groups[i]->nreplicas; k++) {
            struct wd_replica *r = d->groups[i]->replicas[k];
            struct dk_replica *x = r ? r->rt : NULL;
            if (x == NULL || x->gone || strcmp(x->name, n->name) != 0)
                continue;
            if (x->container_id && strcmp(x->container_id, n->id) != 0)
                continue; /* an older container of the same name */
            x->exit_code = (int)n->code;
            if (x->container_id == NULL) { /* die before the launch job returned */
                x->died_early = true;
                continue;
            }
            char how[96];
            if (n->oom)
                snprintf(how, sizeof how, "was killed: out of memory");
            else if (n->code > 128)
                snprintf(how, sizeof how, "exited with status %lld (signal %lld)",
                         (long long)n->code, (long long)n->code - 128);
            else
                snprintf(how, sizeof how, "exited with status %lld%s", (long long)n->code,
                         n->code == 2 ? " (a Go panic)" : "");
            wd_replica_exited(r, how, (int)n->code);
        }
    free(n->id);
    free(n->name);
    free(n);
}

static void on_event(void *arg, const struct wd_docker_event *ev)
{
    struct dk_state *s = arg;
    if (!(ev->action & WD_EV_DIE) || ev->id == NULL || ev->name == NULL)
        return;
    struct die_note *n = xzalloc(sizeof *n);
    n->s = s;
    n->id = xstrdup(ev->id);
    n->name = xstrdup(ev->name);
    n->code = ev->exit_code;
    wd_loop_post(s->d->loop, on_die, n);
}

/* ---------- init / shutdown ---------- */

static int d_init(struct wd_deploy *d, struct wd_error **err)
{
    const struct wd_docker_opts *o = d->opts.docker;
    struct dk_state *s = xzalloc(sizeof *s);
    d->rt_state = s;
    s->d = d;
    s->opts = o;
    s->dk = o->dk;
    s->image = xstrdup(o->image);
    s->network = xstrdup(o->network);
    s->tail = &s->head;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    wd_random(s->token, sizeof s->token);
    wd_hex(s->token, sizeof s->token, s->token_hex);
    const char *labels[1];
    autofree char *l0 = xasprintf("%s=%s", WD_LABEL_DEPLOYMENT, d->deployment_id);
    labels[0] = l0;
    int r = wd_docker_events_start(s->dk, labels, 1, WD_EV_DIE | WD_EV_OOM, on_event, s,
                                   &s->events, err);
    if (r < 0)
        return wd_err_wrap(err, "follow engine events");
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* workers never take our signals */
    for (s->nworkers = 0; s->nworkers < NWORKERS; s->nworkers++)
        if (pthread_create(&s->workers[s->nworkers], NULL, worker_main, s) != 0)
            break;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return 0;
}

static void d_ready(struct wd_deploy *d, struct wd_replica *r)
{
    (void)r;
    struct dk_state *s = d->rt_state;
    s->ever_ready = true;
}

static void d_shutdown(struct wd_deploy *d)
{
    struct dk_state *s = d->rt_state;
    if (s == NULL)
        return;
    if (s->events)
        wd_docker_events_stop(s->events, NULL);
    s->events = NULL;
    /* Finish every queued engine call (removals of the last containers) and run its completion
     * (which may queue more), then stop the workers. */
    for (;;) {
        wd_loop_run_posts(d->loop);
        pthread_mutex_lock(&s->mu);
        size_t n = s->inflight;
        pthread_mutex_unlock(&s->mu);
        if (n == 0)
            break;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    /* followers end when their containers are gone (removed above) */
    while (s->followers) {
        struct follower *f = s->followers;
        s->followers = f->next;
        pthread_join(f->th, NULL);
        wd_docker_free(f->dk);
        wd_buf_free(&f->line[0]);
        wd_buf_free(&f->line[1]);
        free(f->id);
        free(f);
    }
    wd_loop_run_posts(d->loop);
    pthread_mutex_lock(&s->mu);
    s->quit = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i], NULL);
    free(s->image);
    free(s->network);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    d->rt_state = NULL;
}

const struct wd_runtime_ops wd_runtime_docker = {
    .name = "docker",
    .init = d_init,
    .launch = d_launch,
    .stop = d_stop,
    .listen_address = d_listen_address,
    .backend_address = d_backend_address,
    .release = d_release,
    .shutdown = d_shutdown,
    .dep_lost = d_dep_lost,
    .ready = d_ready,
    .health = d_health,
};
