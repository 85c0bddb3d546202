/* The docker runtime: every replica is a container on a bridge network of the deployment,
 * with our shim as PID 1 (docs/design/shim-link.md). Engine calls block, so they run on a few
 * worker threads, each with its own engine connection; results come back to the loop thread
 * through wd_loop_post. The deployer always dials the shims; nothing is published on the host. */
#include "engine/deploy/deploy.h"
#include "engine/docker/docker.h"
#include "engine/deploy/hostport.h"
#include "engine/docker/image.h"
#include "engine/base/link.h"
#include "engine/base/log.h"
#include "engine/deploy/rt_docker.h"
#include "engine/deploy/state.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define NWORKERS 4
#define LINK_HELLO WD_LINK_HELLO_LEN
#define SHUTDOWN_WAIT_MS 15000 /* for the engine calls still running at shutdown */
#define NPARK_P 2 /* 'P' links kept parked in each shim (host_ports) */

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
    atomic_int cancel; /* set when shutdown stops waiting for the engine */
    struct wd_docker_events *events;
    bool engine_lost;      /* its event stream ended: launches wait, containers get listed */
    int64_t lost_ms;       /* when */
    struct job *held;      /* launches waiting for the engine (counted in inflight) */
    bool ever_ready;
    struct follower *followers; /* running; each joins itself through follower_done */
    struct wd_hostports *hp;    /* NULL without host_ports */
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
    bool abandoned; /* shutdown gave up waiting: the thread frees itself (under follow_mu) */
    struct follower *next;
};

static pthread_mutex_t follow_mu = PTHREAD_MUTEX_INITIALIZER;

struct out_line {
    struct dk_state *s;
    struct wd_replica *r;
    uint64_t gen;
    int stream;
    char *text;
};

/* A 'P' link parked in a shim: hello out, then ack + port in; then it becomes a relay. */
struct plink {
    struct wd_replica *r;
    int fd;
    struct wd_watch *w;
    struct wd_timer *t;
    uint8_t hello[LINK_HELLO];
    size_t sent;
    uint8_t in[3]; /* ack, port (u16 big-endian) */
    size_t got;
    int tries;
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
    bool oom;          /* the engine reported an out-of-memory kill in its cgroup */
    struct plink p[NPARK_P];
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
    wd_docker_set_cancel(dk, &s->cancel);
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

static void follower_free(struct follower *f)
{
    wd_docker_free(f->dk);
    wd_buf_free(&f->line[0]);
    wd_buf_free(&f->line[1]);
    free(f->id);
    free(f);
}

/* On the loop: a follower's stream ended (its container is gone): join it now, so a replica
 * that restarts for hours does not pile up threads and engine connections. */
static void follower_done(void *arg)
{
    struct follower *f = arg;
    for (struct follower **pp = &f->s->followers; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    pthread_join(f->th, NULL);
    follower_free(f);
}

static void *follower_main(void *arg)
{
    struct follower *f = arg;
    struct wd_logs_opts lo = {.follow = true, .tty = 0};
    wd_docker_container_logs(f->dk, f->id, &lo, on_output, f, NULL);
    pthread_mutex_lock(&follow_mu);
    bool abandoned = f->abandoned;
    if (!abandoned) {
        for (int k = 0; k < 2; k++)
            if (f->line[k].len)
                emit_line(f, k + 1, (const char *)f->line[k].data, f->line[k].len);
        wd_loop_post(f->s->d->loop, follower_done, f);
    }
    pthread_mutex_unlock(&follow_mu);
    if (abandoned)
        follower_free(f);
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
        if (wd_binary_pipes(r->d->bin)) { /* the link carries the weavelet's two pipes */
            autofree char *internal = xasprintf("%s:0", x->name);
            wd_replica_attach_pipe(r, f, internal);
        } else {
            wd_replica_attach_control(r, f);
        }
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

static void link_start(struct wd_replica *r, char chan)
{
    struct dk_replica *x = r->rt;
    struct dk_state *s = r->d->rt_state;
    if (x->gone || x->ip == NULL)
        return;
    uint8_t *hello = chan == 'W' ? x->whello : x->dhello;
    wd_link_hello(hello, chan, 0, s->token);
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

/* ---------- host ports: 'P' links ---------- */

static void plink_start(struct plink *p);

static void plink_retry(struct wd_timer *t, void *arg)
{
    (void)t;
    struct plink *p = arg;
    p->t = NULL;
    plink_start(p);
}

static void plink_close(struct plink *p)
{
    wd_watch_free(p->w);
    p->w = NULL;
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    wd_timer_cancel(p->t);
    p->t = NULL;
}

/* Closed or refused before it carried anything: park again after a backoff (the shim may not
 * listen yet, or it is going away with its container). */
static void plink_fail(struct plink *p)
{
    plink_close(p);
    struct dk_replica *x = p->r->rt;
    if (x->gone || p->r->d->stopping)
        return;
    int delay = 5 << (p->tries < 7 ? p->tries : 7); /* 5 ms ... 640 ms */
    p->tries++;
    p->t = wd_timer_add(p->r->d->loop, delay, plink_retry, p);
}

static void on_plink(struct wd_watch *w, int fd, unsigned ev, void *arg)
{
    (void)w;
    (void)ev;
    struct plink *p = arg;
    struct dk_state *s = p->r->d->rt_state;
    struct dk_replica *x = p->r->rt;
    if (p->sent < LINK_HELLO) {
        int e = 0;
        socklen_t el = sizeof e;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el);
        ssize_t n = e ? -1 : send(fd, p->hello + p->sent, LINK_HELLO - p->sent, MSG_NOSIGNAL);
        if (n < 0 && !e && (errno == EAGAIN || errno == EINTR))
            return;
        if (n < 0) {
            plink_fail(p);
            return;
        }
        p->sent += (size_t)n;
        if (p->sent == LINK_HELLO)
            wd_watch_set(p->w, WD_EV_IN);
        return;
    }
    /* exactly the 3 bytes: what follows belongs to the app's connection */
    ssize_t n = recv(fd, p->in + p->got, sizeof p->in - p->got, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0 || p->in[0] != WD_LINK_ACK) {
        plink_fail(p);
        return;
    }
    p->got += (size_t)n;
    if (p->got < sizeof p->in)
        return;
    p->tries = 0;
    uint16_t port = wd_be16(p->in + 1);
    wd_watch_free(p->w);
    p->w = NULL;
    int link = WD_STEAL_FD(p->fd);
    if (!wd_hostports_allowed(s->hp, port)) {
        wd_warn("%s asked for host port %u, which is not in [docker] host_ports: refused",
                x->name, (unsigned)port);
        close(link);
    } else {
        wd_hostports_relay(s->hp, link, port, x->name);
    }
    plink_start(p); /* park a new one */
}

static void plink_start(struct plink *p)
{
    struct dk_replica *x = p->r->rt;
    struct dk_state *s = p->r->d->rt_state;
    if (x->gone || x->ip == NULL || p->r->d->stopping || p->fd >= 0 || p->t)
        return;
    wd_link_hello(p->hello, WD_LINK_P, 0, s->token);
    p->sent = p->got = 0;
    p->fd = shim_dial(x);
    if (p->fd < 0) {
        plink_fail(p);
        return;
    }
    p->w = wd_watch_add(p->r->d->loop, p->fd, WD_EV_OUT, on_plink, p);
}

static void hp_say(void *arg, const char *line)
{
    wd_deploy_event(arg, "warn", "%s", line);
}

static void plinks_start(struct wd_replica *r)
{
    struct dk_state *s = r->d->rt_state;
    struct dk_replica *x = r->rt;
    if (s->hp == NULL)
        return;
    for (int k = 0; k < NPARK_P; k++) {
        x->p[k].r = r;
        plink_start(&x->p[k]);
    }
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
    wd_link_hello(h->hello, 'H', (uint8_t)v, s->token);
    h->w = wd_watch_add(d->loop, fd, WD_EV_OUT, on_hpush, h);
    x->pushed_health = v;
}

/* ---------- launch ---------- */

struct launch_ctx {
    struct wd_container_spec spec;
    char **env;
    size_t nenv;
    struct wd_mount *mounts;
    char **mount_strs; /* sources and targets the mounts point into */
    size_t nmounts, nmount_strs;
    char **hosts;
    size_t nhosts;
    char **networks; /* joined after create, before start */
    size_t nnetworks;
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
    free(c->env);
    for (size_t i = 0; i < c->nmount_strs; i++)
        free(c->mount_strs[i]);
    free(c->mount_strs);
    free(c->mounts);
    for (size_t i = 0; i < c->nhosts; i++)
        free(c->hosts[i]);
    free(c->hosts);
    for (size_t i = 0; i < c->nnetworks; i++)
        free(c->networks[i]);
    free(c->networks);
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

/* Podman 4.3 writes "host-gateway" into /etc/hosts literally: give it the deployment network's
 * gateway, the host's address on that bridge (Docker resolves host-gateway itself). */
static void podman_host_gateway(struct wd_docker *dk, const char *network, struct launch_ctx *c)
{
    if (!wd_docker_is_podman(dk))
        return;
    struct wd_network_info ni = {0};
    if (wd_docker_network_inspect(dk, network, &ni, NULL) == 0 && ni.gateway && *ni.gateway) {
        for (size_t i = 0; i < c->nhosts; i++) {
            char *colon = strrchr(c->hosts[i], ':');
            if (colon && strcmp(colon + 1, "host-gateway") == 0) {
                *colon = 0;
                char *h = xasprintf("%s:%s", c->hosts[i], ni.gateway);
                free(c->hosts[i]);
                c->hosts[i] = h;
            }
        }
    }
    wd_network_info_free(&ni);
}

static void run_launch(struct wd_docker *dk, struct job *j)
{
    struct launch_job *lj = (struct launch_job *)j;
    autoerr struct wd_error *err = NULL;
    podman_host_gateway(dk, j->s->network, lj->c);
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
    for (size_t i = 0; j->rc == 0 && i < lj->c->nnetworks; i++)
        j->rc = wd_docker_network_connect(dk, lj->c->networks[i], j->id, NULL, 0, &err);
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
    if (!wd_binary_pipes(s->d->bin))
        link_start(r, 'D'); /* weaver v0.20-v0.22 has no deployerControl: all on 'W' */
    plinks_start(r);
}

/* The [docker] groups."..." entry naming one of the group's components, or NULL. */
static const struct wd_group_cfg *group_cfg(const struct wd_config *c, const struct wd_group *g)
{
    for (size_t i = 0; i < c->ngroups; i++)
        for (size_t k = 0; k < g->ncomps; k++)
            if (strcmp(c->groups[i].component, g->comps[k]->name) == 0)
                return &c->groups[i];
    return NULL;
}

char *wd_docker_volume_name(const char *app, const char *name)
{
    return xasprintf("%s_%s", app, name);
}

/* APP-GROUP-SLOT; a version started beside the running one (a rollout) adds its short
 * deployment id, as the running one's containers keep their names meanwhile. */
static char *container_name(struct wd_deploy *d, struct wd_replica *r)
{
    if (d->opts.rollout)
        return xasprintf("%s-%s-%d-%.8s", d->app, r->g->slug, r->slot, d->deployment_id);
    return xasprintf("%s-%s-%d", d->app, r->g->slug, r->slot);
}

static int d_launch(struct wd_deploy *d, struct wd_replica *r, struct wd_error **err)
{
    (void)err;
    struct dk_state *s = d->rt_state;
    struct dk_replica *x = xzalloc(sizeof *x);
    x->wfd = x->dfd = -1;
    x->exit_code = -1;
    for (int k = 0; k < NPARK_P; k++)
        x->p[k] = (struct plink){.r = r, .fd = -1};
    r->rt = x;
    x->name = container_name(d, r);
    struct launch_ctx *c = xzalloc(sizeof *c);
    autofree char *internal = xasprintf("%s:0", x->name);
    bool pipes = wd_binary_pipes(d->bin); /* weaver v0.20-v0.22: the handshake carries these */
    autofree char *args = pipes ? NULL
                                : wd_replica_weavelet_args(r, WD_SHIM_DIR "/control.sock",
                                                           "unix://" WD_SHIM_DIR "/deployer.sock",
                                                           internal);
    const struct wd_config *cfg = d->cfg;
    const struct wd_group_cfg *gc = group_cfg(cfg, r->g);
    const struct wd_strv *denv = gc ? &gc->env : &cfg->docker_env;
    struct wd_resources res = gc ? gc->res : cfg->res;
    c->env = xcalloc(cfg->env.n + denv->n + 4, sizeof *c->env);
    /* the app's own first, so ours win where a name repeats */
    for (size_t i = 0; i < cfg->env.n; i++) /* Go keeps the first of one name: [docker] wins */
        if (!wd_env_has_key(denv, cfg->env.v[i]))
            c->env[c->nenv++] = xstrdup(cfg->env.v[i]);
    for (size_t i = 0; i < denv->n; i++)
        c->env[c->nenv++] = xstrdup(denv->v[i]);
    /* weaver v0.20-v0.22: no WEAVELET_ARGS; the shim hands the weavelet its pipes */
    c->env[c->nenv++] = pipes ? xstrdup("WEAVER_SHIM_PIPES=1")
                              : xasprintf("WEAVELET_ARGS=%s", args);
    c->env[c->nenv++] = xasprintf("WEAVER_SHIM_TOKEN=%s", s->token_hex);
    /* weaver's packages create $HOME/.local at init; the rootfs is read-only, /tmp a tmpfs */
    c->env[c->nenv++] = xstrdup("HOME=/tmp");
    if (cfg->nhost_ports) {
        struct wd_buf b = {0};
        for (size_t i = 0; i < cfg->nhost_ports; i++)
            wd_buf_printf(&b, "%s%u", i ? "," : "", (unsigned)cfg->host_ports[i]);
        autofree char *ports = wd_buf_steal_str(&b);
        c->env = xrealloc(c->env, (c->nenv + 1) * sizeof *c->env);
        c->env[c->nenv++] = xasprintf("WEAVER_SHIM_HOST_PORTS=%s", ports);
    }
    /* mounts: volumes (bind or named), then secrets */
    c->mounts = xcalloc(cfg->nvolumes + cfg->nsecrets + 1, sizeof *c->mounts);
    c->mount_strs = xcalloc(2 * (cfg->nvolumes + cfg->nsecrets) + 1, sizeof *c->mount_strs);
    for (size_t i = 0; i < cfg->nvolumes; i++) {
        const struct wd_volume_cfg *v = &cfg->volumes[i];
        char *src = v->bind ? xstrdup(v->source) : wd_docker_volume_name(d->app, v->source);
        c->mount_strs[c->nmount_strs++] = src;
        c->mounts[c->nmounts++] = (struct wd_mount){
            .volume = !v->bind, .source = src, .target = v->target, .read_only = v->read_only};
    }
    for (size_t i = 0; i < cfg->nsecrets && s->opts->secrets_dir; i++) {
        char *src = xasprintf("%s/%s", s->opts->secrets_dir, cfg->secrets[i].name);
        char *dst = xasprintf("/run/secrets/%s", cfg->secrets[i].name);
        c->mount_strs[c->nmount_strs++] = src;
        c->mount_strs[c->nmount_strs++] = dst;
        c->mounts[c->nmounts++] =
            (struct wd_mount){.source = src, .target = dst, .read_only = true};
    }
    /* host.docker.internal reaches the host on Docker and Podman alike */
    c->hosts = xcalloc(cfg->extra_hosts.n + 1, sizeof *c->hosts);
    c->hosts[c->nhosts++] = xstrdup("host.docker.internal:host-gateway");
    for (size_t i = 0; i < cfg->extra_hosts.n; i++)
        c->hosts[c->nhosts++] = xstrdup(cfg->extra_hosts.v[i]);
    c->networks = xcalloc(cfg->networks.n + 1, sizeof *c->networks);
    for (size_t i = 0; i < cfg->networks.n; i++)
        c->networks[c->nnetworks++] = xstrdup(cfg->networks.v[i]);
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
    if (r->last_exit) { /* ps shows why the slot was restarted */
        c->label_vals[nl] = xstrdup(r->last_exit);
        c->labels[nl] = (struct wd_kv){WD_LABEL_LAST_EXIT, c->label_vals[nl]}, nl++;
    }
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
        .mounts = c->mounts,
        .nmounts = c->nmounts,
        .extra_hosts = (const char *const *)c->hosts,
        .nextra_hosts = c->nhosts,
        .memory_bytes = res.memory_bytes,
        .nano_cpus = res.nano_cpus,
        .pids_limit = res.pids,
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
    if (s->engine_lost) { /* it would only fail: wait until the engine is back */
        lj->j.s = s;
        pthread_mutex_lock(&s->mu);
        s->inflight++;
        pthread_mutex_unlock(&s->mu);
        lj->j.next = s->held;
        s->held = &lj->j;
        return 0;
    }
    submit(s, &lj->j);
    return 0;
}

/* Held launches go to the workers; on shutdown they end as "not started". */
static void release_held(struct dk_state *s, bool run)
{
    struct job *j = s->held;
    s->held = NULL;
    while (j) {
        struct job *next = j->next;
        if (run) {
            pthread_mutex_lock(&s->mu);
            s->inflight--; /* submit counts it again */
            pthread_mutex_unlock(&s->mu);
            submit(s, j);
        } else {
            j->rc = -ECANCELED;
            j->msg = xstrdup("not started: the engine was unreachable");
            j->done(j);
        }
        j = next;
    }
}

/* ---------- stop, remove ---------- */

static void run_kill(struct wd_docker *dk, struct job *j)
{
    autoerr struct wd_error *err = NULL;
    j->rc = wd_docker_container_kill(dk, j->id, j->msg, &err);
}

/* A kill the engine could not take while stopping (paused, gone): no die event will come, so
 * the replica is gone as far as we can tell; the final clean-up removes its container. */
static void done_kill(struct job *j)
{
    struct dk_state *s = j->s;
    struct wd_deploy *d = s->d;
    if (d->stopping && wd_docker_unreachable(j->rc))
        for (size_t i = 0; i < d->ngroups; i++)
            for (int k = 0; k < d->groups[i]->nreplicas; k++) {
                struct wd_replica *r = d->groups[i]->replicas[k];
                struct dk_replica *x = r ? r->rt : NULL;
                if (x && !x->gone && strcmp(x->name, j->name) == 0)
                    wd_replica_exited(r, "could not be stopped: the engine does not answer", -1);
            }
    job_free(j);
}

static void run_remove(struct wd_docker *dk, struct job *j)
{
    autoerr struct wd_error *err = NULL;
    j->rc = wd_docker_container_remove(dk, j->id, true, &err);
    if (j->rc < 0 && j->rc != -ENOENT)
        wd_warn("%s", err->msg);
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
    struct dk_state *s = d->rt_state;
    struct dk_replica *x = r->rt;
    if (x == NULL || x->gone)
        return;
    for (struct job **pp = &s->held; *pp; pp = &(*pp)->next)
        if ((*pp)->r == r && (*pp)->gen == r->gen) { /* never sent to the engine */
            struct job *j = *pp;
            *pp = j->next;
            j->rc = -ECANCELED;
            j->msg = xstrdup("stopped before it started (the engine was unreachable)");
            wd_loop_post(d->loop, (wd_post_fn)j->done, j);
            return;
        }
    /* not created yet: the launch's completion notices the replica is gone */
    struct job *j = xzalloc(sizeof *j);
    j->run = run_kill;
    j->done = done_kill;
    j->id = xstrdup(x->container_id ? x->container_id : x->name);
    j->name = xstrdup(x->name);
    j->msg = xstrdup(force ? "SIGKILL" : "SIGTERM");
    submit(s, j);
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
    for (int k = 0; k < NPARK_P; k++)
        plink_close(&x->p[k]);
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
            if (n->oom) { /* an "oom" event: comes before the container's "die" */
                x->oom = true;
                continue;
            }
            if (x->oom)
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

/* ---------- the engine's event stream lost and back ---------- */

struct stream_note {
    struct dk_state *s;
    bool back;
    char *detail;
};

struct recon_job {
    struct job j;
    struct wd_container_summary *cs;
    size_t n;
    int64_t *codes; /* per container: exit code when not running, else -1 */
    bool *ooms;
};

static void run_reconcile(struct wd_docker *dk, struct job *j)
{
    struct recon_job *rj = (struct recon_job *)j;
    autoerr struct wd_error *err = NULL;
    const char *labels[1] = {j->name}; /* the deployment label */
    j->rc = wd_docker_container_list(dk, labels, 1, &rj->cs, &rj->n, &err);
    if (j->rc < 0) {
        j->msg = xstrdup(err->msg);
        return;
    }
    rj->codes = xcalloc(rj->n ? rj->n : 1, sizeof *rj->codes);
    rj->ooms = xcalloc(rj->n ? rj->n : 1, sizeof *rj->ooms);
    for (size_t i = 0; i < rj->n; i++) {
        rj->codes[i] = -1;
        if (strcmp(rj->cs[i].state, "running") == 0)
            continue;
        struct wd_container_info ci = {0};
        if (wd_docker_container_inspect(dk, rj->cs[i].id, NULL, &ci, NULL) == 0) {
            rj->codes[i] = ci.exit_code;
            rj->ooms[i] = ci.oom_killed;
        }
        wd_container_info_free(&ci);
    }
}

static void reconcile_retry(struct wd_timer *t, void *arg);

static void done_reconcile(struct job *j)
{
    struct recon_job *rj = (struct recon_job *)j;
    struct dk_state *s = j->s;
    struct wd_deploy *d = s->d;
    if (j->rc < 0 && !d->stopping) { /* gone again: the stream says so too; try once more */
        wd_warn("list containers after the engine came back: %s; trying again in 1 s", j->msg);
        wd_timer_add(d->loop, 1000, reconcile_retry, s);
    } else if (j->rc == 0) {
        int lost = 0, seen = 0;
        for (size_t i = 0; i < d->ngroups; i++)
            for (int k = 0; k < d->groups[i]->nreplicas; k++) {
                struct wd_replica *r = d->groups[i]->replicas[k];
                struct dk_replica *x = r ? r->rt : NULL;
                if (x == NULL || x->gone || x->container_id == NULL)
                    continue; /* not created yet: its launch reports */
                seen++;
                size_t c = 0;
                while (c < rj->n && strcmp(rj->cs[c].id, x->container_id) != 0)
                    c++;
                char how[128];
                if (c == rj->n)
                    snprintf(how, sizeof how, "was gone when the engine came back");
                else if (strcmp(rj->cs[c].state, "running") != 0)
                    snprintf(how, sizeof how, "%s while the engine was unreachable (status %lld)",
                             rj->ooms[c] ? "was killed: out of memory" : "exited",
                             (long long)rj->codes[c]);
                else
                    continue;
                lost++;
                wd_replica_exited(r, how, c == rj->n ? -1 : (int)rj->codes[c]);
            }
        double secs = (double)(wd_now_ms() - s->lost_ms) / 1000.0;
        if (lost)
            wd_deploy_event(d, "warn", "engine events are back after %.1f s; %d of %d containers %s",
                            secs, lost, seen,
                            lost == 1 ? "was lost and is being replaced"
                                      : "were lost and are being replaced");
        else
            wd_deploy_event(d, "info",
                            "engine events are back after %.1f s; all %d running containers "
                            "are still there",
                            secs, seen);
        s->engine_lost = false;
        if (!d->stopping)
            release_held(s, true);
    }
    wd_container_summaries_free(rj->cs, rj->n);
    free(rj->codes);
    free(rj->ooms);
    job_free(j);
}

static void reconcile(struct dk_state *s)
{
    struct recon_job *rj = xzalloc(sizeof *rj);
    rj->j.run = run_reconcile;
    rj->j.done = done_reconcile;
    rj->j.name = xasprintf("%s=%s", WD_LABEL_DEPLOYMENT, s->d->deployment_id);
    submit(s, &rj->j);
}

static void reconcile_retry(struct wd_timer *t, void *arg)
{
    (void)t;
    struct dk_state *s = arg;
    if (s->engine_lost && !s->d->stopping)
        reconcile(s);
}

static void on_stream(void *arg)
{
    struct stream_note *n = arg;
    struct dk_state *s = n->s;
    if (!n->back) {
        if (!s->engine_lost) {
            s->engine_lost = true;
            s->lost_ms = wd_now_ms();
            wd_deploy_event(s->d, "warn",
                            "lost the engine's event stream (%s); reconnecting, and restarts "
                            "wait until it is back",
                            n->detail);
        }
    } else if (s->engine_lost) {
        reconcile(s); /* events of the gap are lost: ask for the state instead */
    }
    free(n->detail);
    free(n);
}

static void on_event(void *arg, const struct wd_docker_event *ev)
{
    struct dk_state *s = arg;
    if (ev->action & (WD_EV_LOST | WD_EV_BACK)) {
        struct stream_note *n = xzalloc(sizeof *n);
        n->s = s;
        n->back = (ev->action & WD_EV_BACK) != 0;
        n->detail = xstrdup(ev->detail ? ev->detail : "");
        wd_loop_post(s->d->loop, on_stream, n);
        return;
    }
    if (!(ev->action & (WD_EV_DIE | WD_EV_OOM)) || ev->id == NULL || ev->name == NULL)
        return;
    struct die_note *n = xzalloc(sizeof *n);
    n->s = s;
    n->id = xstrdup(ev->id);
    n->name = xstrdup(ev->name);
    n->code = ev->exit_code;
    n->oom = (ev->action & WD_EV_OOM) != 0;
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
    if (d->cfg->nhost_ports)
        s->hp = wd_hostports_new(d->loop, d->cfg->host_ports, d->cfg->nhost_ports, NULL,
                                 hp_say, d);
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
        wd_docker_events_stop(s->events);
    s->events = NULL;
    release_held(s, false);
    /* Finish every queued engine call (removals of the last containers) and run its completion
     * (which may queue more), then stop the workers. */
    int64_t give_up_calls = wd_now_ms() + SHUTDOWN_WAIT_MS;
    for (;;) {
        wd_loop_run_posts(d->loop);
        pthread_mutex_lock(&s->mu);
        size_t n = s->inflight;
        pthread_mutex_unlock(&s->mu);
        if (n == 0)
            break;
        if (wd_now_ms() > give_up_calls && !atomic_load(&s->cancel)) {
            /* a paused or hung engine: what is left goes to the caller's clean-up */
            wd_warn("the engine has not finished %zu call%s in %d s; not waiting for %s", n,
                    n == 1 ? "" : "s", SHUTDOWN_WAIT_MS / 1000, n == 1 ? "it" : "them");
            atomic_store(&s->cancel, 1);
        }
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    /* followers end when their containers are gone (removed above) and join themselves
     * through a post; one whose container could not be removed must not hang the exit */
    int64_t give_up = wd_now_ms() + 10000;
    while (s->followers && wd_now_ms() < give_up) {
        wd_loop_run_posts(d->loop);
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    /* Under the lock no follower can pass from "streaming" to "posted its done": join those
     * that posted (they are past the lock), abandon the rest (they free themselves). */
    pthread_mutex_lock(&follow_mu);
    wd_loop_run_posts(d->loop);
    for (struct follower *f = s->followers; f; f = f->next) {
        wd_warn("the output of container %.12s is still open; not waiting for it", f->id);
        f->abandoned = true;
        pthread_detach(f->th);
    }
    s->followers = NULL;
    pthread_mutex_unlock(&follow_mu);
    wd_loop_run_posts(d->loop);
    pthread_mutex_lock(&s->mu);
    s->quit = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i], NULL);
    wd_hostports_free(s->hp);
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
