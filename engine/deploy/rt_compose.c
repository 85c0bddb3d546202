/* The compose runtime (docs/design/compose.md): the envelope runs in the manager container of a
 * compose file or swarm stack, and compose/swarm start the weavelets' containers. Their shims
 * cannot be dialed (we do not know their addresses in advance), so they dial us: an 'A' hello
 * registers a new replica of a group and gets its WEAVELET_ARGS back; 'W' and 'D' hellos carry
 * the weavelet id and become its weaveletControl and deployerControl connections. The 'A'
 * connection stays open for the weavelet's lifetime: its EOF (with the exit status byte before
 * it, when the shim could send it) is the replica's death; health pushes go the other way. */
#include "engine/deploy/rt_compose.h"
#include "engine/deploy/deploy.h"
#include "engine/deploy/hostport.h"
#include "engine/base/log.h"
#include "engine/base/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CM_HELLO_TIMEOUT_MS 5000
#define CM_HELLO_MAX (WD_COMPOSE_HELLO_LEN + 2 + WD_COMPOSE_NAME_MAX + 2 + WD_COMPOSE_IP_MAX)
#define CM_DIR "/tmp/weaver" /* the shim's default WEAVER_SHIM_DIR */
#define CM_READY_POLL_MS 200

static struct wd_compose_rt_opts g_opts = {.port = WD_COMPOSE_MANAGER_PORT};

void wd_runtime_compose_configure(const struct wd_compose_rt_opts *o)
{
    g_opts = *o;
}

/* ---------- the hello (pure) ---------- */

static bool printable(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] <= ' ' || p[i] > '~')
            return false;
    return true;
}

int wd_compose_hello_parse(const uint8_t *buf, size_t len, struct wd_compose_hello *out,
                           size_t *need)
{
    const size_t h = WD_COMPOSE_HELLO_LEN;
    *need = h + 2;
    if (len >= 8) {
        if (!wd_link_hello_form(buf, "AWDPS")) /* only 8 bytes are there: the form needs no more */
            return -EPROTO;
    } else if (len >= 4 && memcmp(buf, WD_LINK_MAGIC, 4) != 0) {
        return -EPROTO;
    }
    if (len < h + 2)
        return 0;
    size_t nl = wd_be16(buf + h);
    if (nl == 0 || nl > WD_COMPOSE_NAME_MAX)
        return -EPROTO;
    *need = h + 2 + nl + (buf[4] == 'A' ? 2 : 0);
    if (len < *need)
        return 0;
    if (!printable(buf + h + 2, nl))
        return -EPROTO;
    size_t il = 0;
    if (buf[4] == 'A') {
        il = wd_be16(buf + h + 2 + nl);
        if (il > WD_COMPOSE_IP_MAX)
            return -EPROTO;
        *need = h + 4 + nl + il;
        if (len < *need)
            return 0;
        if (!printable(buf + h + 4 + nl, il))
            return -EPROTO;
    }
    memset(out, 0, sizeof *out);
    out->chan = (char)buf[4];
    out->token = buf + 8;
    memcpy(out->name, buf + h + 2, nl);
    if (il)
        memcpy(out->ip, buf + h + 4 + nl, il);
    return (int)*need;
}

/* ---------- the status query (the front, `manage --health`) ---------- */

static int wait_for(int fd, short ev, int64_t deadline)
{
    for (;;) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t left = deadline - ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = ev};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

int wd_compose_status(const struct sockaddr *sa, unsigned salen, int timeout_ms, bool *ready,
                      uint64_t *stamp)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t deadline = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + timeout_ms;
    autoclose int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, sa, (socklen_t)salen) < 0) {
        if (errno != EINPROGRESS)
            return -errno;
        int e = wait_for(fd, POLLOUT, deadline);
        socklen_t el = sizeof e;
        if (e == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) == 0 && e)
            e = -e;
        if (e)
            return e;
    }
    static const uint8_t zero[WD_LINK_TOKEN_LEN];
    uint8_t h[WD_COMPOSE_HELLO_LEN + 2 + 6];
    wd_link_hello(h, WD_LINK_S, 0, zero);
    wd_put_be16(h + WD_COMPOSE_HELLO_LEN, 6);
    memcpy(h + WD_COMPOSE_HELLO_LEN + 2, "status", 6);
    if (send(fd, h, sizeof h, MSG_NOSIGNAL) != (ssize_t)sizeof h)
        return -EIO;
    uint8_t b[WD_COMPOSE_STATUS_LEN];
    size_t have = 0;
    while (have < sizeof b) {
        int e = wait_for(fd, POLLIN, deadline);
        if (e < 0)
            return e;
        ssize_t n = recv(fd, b + have, sizeof b - have, 0);
        if (n == 0)
            return -ECONNRESET;
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -errno;
        if (n > 0)
            have += (size_t)n;
    }
    *ready = b[0] == 1;
    *stamp = 0;
    for (int i = 0; i < 8; i++)
        *stamp = *stamp << 8 | b[1 + i];
    return 0;
}

/* ---------- state ---------- */

struct cm_pending {
    struct cm_state *s;
    int fd;
    struct wd_watch *w;
    struct wd_timer *t;
    uint8_t buf[CM_HELLO_MAX];
    size_t have;
    char peer[INET6_ADDRSTRLEN];
    struct cm_pending *next;
};

struct cm_state {
    struct wd_deploy *d;
    int lfd;
    struct wd_watch *lw;
    struct cm_pending *pending;
    struct wd_hostports *hp; /* [docker] host_ports, relayed to host.docker.internal */
    /* The whole deployment serves: latched. Until then every replica is pushed "not serving",
     * so a Swarm start-first update keeps the old version until the new one can take over. */
    bool ready;
    struct wd_timer *ready_timer;
};

struct cm_replica {
    int afd; /* the registration link */
    struct wd_watch *aw;
    char *ip;
    int exit_code; /* reported by the shim, -1 unknown */
    bool stopping;
    int pushed_health;
    struct wd_timer *gone_timer;
};

static void pending_free(struct cm_pending *p, bool close_fd)
{
    struct cm_state *s = p->s;
    for (struct cm_pending **pp = &s->pending; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    wd_watch_free(p->w);
    wd_timer_cancel(p->t);
    if (close_fd && p->fd >= 0)
        close(p->fd);
    free(p);
}

/* ---------- registration link ---------- */

static void replica_gone(struct wd_replica *r)
{
    struct cm_replica *x = r->rt;
    char how[96];
    if (x->exit_code > 128)
        snprintf(how, sizeof how, "exited with status %d (signal %d)", x->exit_code,
                 x->exit_code - 128);
    else if (x->exit_code >= 0)
        snprintf(how, sizeof how, "exited with status %d%s", x->exit_code,
                 x->exit_code == 2 ? " (a Go panic)" : "");
    else if (x->stopping)
        snprintf(how, sizeof how, "was stopped");
    else
        snprintf(how, sizeof how, "lost its link (container gone)");
    /* status 0 is not "main returned" here: compose restarts the container either way */
    wd_replica_exited(r, how, x->exit_code > 0 ? x->exit_code : -1);
}

static void on_alink(struct wd_watch *w, int fd, unsigned ev, void *arg)
{
    (void)w;
    (void)ev;
    struct wd_replica *r = arg;
    struct cm_replica *x = r->rt;
    uint8_t b[16];
    ssize_t n = recv(fd, b, sizeof b, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n > 0) {
        x->exit_code = b[n - 1];
        return;
    }
    replica_gone(r);
}

static void gone_tick(struct wd_timer *t, void *arg)
{
    (void)t;
    struct wd_replica *r = arg;
    struct cm_replica *x = r->rt;
    x->gone_timer = NULL;
    replica_gone(r);
}

static void refuse(int fd, const char *why)
{
    uint8_t b[3 + 128];
    size_t n = strlen(why);
    if (n > 128)
        n = 128;
    b[0] = 0;
    b[1] = (uint8_t)(n >> 8);
    b[2] = (uint8_t)n;
    memcpy(b + 3, why, n);
    (void)!send(fd, b, 3 + n, MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
}

static void do_register(struct cm_state *s, int fd, const struct wd_compose_hello *h,
                        const char *peer)
{
    struct wd_deploy *d = s->d;
    if (d->stopping) {
        refuse(fd, "the manager is stopping");
        return;
    }
    struct wd_group *g = wd_deploy_find_group(d, h->name);
    if (g == NULL) {
        char why[WD_COMPOSE_NAME_MAX + 32];
        snprintf(why, sizeof why, "unknown group %s", h->name);
        wd_warn("a shim at %s asked for %s", peer, why);
        refuse(fd, why);
        return;
    }
    /* the shim's own address on the path to us; what we see may be a NAT (swarm VIP) */
    uint8_t tmp[sizeof(struct in6_addr)];
    const char *ip =
        h->ip[0] && (inet_pton(AF_INET, h->ip, tmp) == 1 || inet_pton(AF_INET6, h->ip, tmp) == 1)
            ? h->ip
            : peer;
    struct wd_replica *r = wd_group_add_replica(g);
    struct cm_replica *x = xzalloc(sizeof *x);
    x->afd = fd;
    x->ip = xstrdup(ip);
    x->exit_code = -1;
    r->rt = x;
    bool v6 = strchr(ip, ':') != NULL;
    autofree char *internal = xasprintf(v6 ? "[%s]:0" : "%s:0", ip);
    autofree char *args = wd_replica_weavelet_args(r, CM_DIR "/control.sock",
                                                   "unix://" CM_DIR "/deployer.sock", internal);
    size_t idl = strlen(r->id), al = strlen(args);
    struct wd_buf b = {0};
    uint8_t hdr[3] = {1, (uint8_t)(idl >> 8), (uint8_t)idl};
    wd_buf_append(&b, hdr, 3);
    wd_buf_append(&b, r->id, idl);
    uint8_t l4[4] = {(uint8_t)(al >> 24), (uint8_t)(al >> 16), (uint8_t)(al >> 8), (uint8_t)al};
    wd_buf_append(&b, l4, 4);
    wd_buf_append(&b, args, al);
    ssize_t n = send(fd, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    bool sent = n == (ssize_t)b.len;
    wd_buf_free(&b);
    int one = 1, idle = 15, intvl = 5, cnt = 3; /* notice a vanished node */
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    x->aw = wd_watch_add(d->loop, fd, WD_EV_IN, on_alink, r);
    wd_info("group %s replica %d registered from %s (weavelet %.8s)", g->short_name, r->slot, ip,
            r->id);
    if (!sent)
        x->gone_timer = wd_timer_add(d->loop, 0, gone_tick, r);
}

static struct wd_replica *find_weavelet(struct wd_deploy *d, const char *id)
{
    for (size_t i = 0; i < d->ngroups; i++)
        for (int k = 0; k < d->groups[i]->nreplicas; k++) {
            struct wd_replica *r = d->groups[i]->replicas[k];
            if (r && r->state != WD_R_DEAD && r->rt && strcmp(r->id, id) == 0)
                return r;
        }
    return NULL;
}

static void hello_complete(struct cm_pending *p, const struct wd_compose_hello *h)
{
    struct cm_state *s = p->s;
    int fd = p->fd;
    char peer[INET6_ADDRSTRLEN];
    memcpy(peer, p->peer, sizeof peer);
    pending_free(p, false);
    if (h->chan == WD_LINK_S) { /* no secret in it: whether we serve, and our file's stamp */
        /* stopping or draining (SIGTERM): not a manager the front should move to */
        bool serves = s->ready && !s->d->stopping && s->d->drain_timer == NULL;
        uint8_t b[WD_COMPOSE_STATUS_LEN] = {serves ? 1 : 0};
        for (int i = 0; i < 8; i++)
            b[1 + i] = (uint8_t)(g_opts.stamp >> (56 - 8 * i));
        (void)!send(fd, b, sizeof b, MSG_NOSIGNAL | MSG_DONTWAIT);
        close(fd);
        return;
    }
    if (!wd_ct_equal(h->token, g_opts.token, sizeof g_opts.token)) {
        /* during a Swarm rollover the other version's shims try us first: they go on to
         * their own manager */
        wd_info("refused a shim at %s: its token is another compose file's", peer);
        if (h->chan == 'A')
            refuse(fd, "wrong token (another compose file's manager)");
        else
            close(fd);
        return;
    }
    if (h->chan == 'A') {
        do_register(s, fd, h, peer);
        return;
    }
    struct wd_replica *r = find_weavelet(s->d, h->name);
    struct cm_replica *x = r ? r->rt : NULL;
    if (r == NULL || x->stopping || s->d->stopping) {
        wd_debug("%c link from %s for unknown weavelet %.8s: closed", h->chan, peer, h->name);
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (send(fd, "\1", 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) {
        close(fd);
        return;
    }
    if (h->chan == 'P') {
        if (s->hp == NULL) {
            close(fd);
            return;
        }
        autofree char *who = xasprintf("group %s replica %d", r->g->short_name, r->slot);
        wd_hostports_adopt(s->hp, fd, who);
    } else if (h->chan == 'W') {
        wd_replica_attach_control(r, fd);
    } else {
        wd_replica_attach_deployer(r, fd);
    }
}

static void on_pending(struct wd_watch *w, int fd, unsigned ev, void *arg)
{
    (void)w;
    (void)ev;
    struct cm_pending *p = arg;
    for (;;) {
        struct wd_compose_hello h;
        size_t need = 0;
        int rc = wd_compose_hello_parse(p->buf, p->have, &h, &need);
        if (rc < 0) {
            wd_warn("rejected a connection from %s: malformed hello", p->peer);
            pending_free(p, true);
            return;
        }
        if (rc > 0) {
            hello_complete(p, &h);
            return;
        }
        /* read no further than the hello: link bytes may follow it */
        ssize_t n = recv(fd, p->buf + p->have, need - p->have, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            /* a healthcheck probe (`manage --health`) connects and closes: not worth a word */
            if (p->have)
                wd_debug("connection from %s closed during the hello", p->peer);
            pending_free(p, true);
            return;
        }
        p->have += (size_t)n;
    }
}

static void pending_timeout(struct wd_timer *t, void *arg)
{
    (void)t;
    struct cm_pending *p = arg;
    p->t = NULL;
    wd_debug("connection from %s sent no hello within %d s", p->peer, CM_HELLO_TIMEOUT_MS / 1000);
    pending_free(p, true);
}

static void on_accept(struct wd_watch *w, int lfd, unsigned ev, void *arg)
{
    (void)w;
    (void)ev;
    struct cm_state *s = arg;
    for (int k = 0; k < 16; k++) {
        struct sockaddr_storage sa;
        socklen_t sl = sizeof sa;
        int fd = accept4(lfd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == ECONNABORTED || errno == EINTR)
                continue;
            if (errno != EAGAIN && !wd_watch_accept_failed(s->lw, errno, 100))
                wd_warn("accept: %s", strerror(errno));
            return;
        }
        struct cm_pending *p = xzalloc(sizeof *p);
        p->s = s;
        p->fd = fd;
        if (sa.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, p->peer, sizeof p->peer);
        else if (sa.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, p->peer, sizeof p->peer);
        p->next = s->pending;
        s->pending = p;
        p->w = wd_watch_add(s->d->loop, fd, WD_EV_IN, on_pending, p);
        p->t = wd_timer_add(s->d->loop, CM_HELLO_TIMEOUT_MS, pending_timeout, p);
    }
}

/* ---------- runtime ops ---------- */

static void c_health(struct wd_deploy *d, struct wd_replica *r, int status);

/* Every group has a ready replica and every listener a backend (check_ready's "announced"). */
static bool all_serving(struct wd_deploy *d)
{
    if (!d->announced_ready)
        return false;
    for (size_t i = 0; i < d->ngroups; i++) {
        bool any = false;
        for (int j = 0; j < d->groups[i]->nreplicas && !any; j++)
            any = d->groups[i]->replicas[j] && d->groups[i]->replicas[j]->state == WD_R_READY;
        if (!any)
            return false;
    }
    return true;
}

static void ready_tick(struct wd_timer *t, void *arg)
{
    (void)t; /* NULL: the loop frees a timer before its callback */
    struct cm_state *s = arg;
    struct wd_deploy *d = s->d;
    s->ready_timer = NULL;
    if (d->stopping)
        return;
    if (!all_serving(d)) {
        s->ready_timer = wd_timer_add(d->loop, CM_READY_POLL_MS, ready_tick, s);
        return;
    }
    s->ready = true;
    wd_info("manager: every group serves; replicas report healthy from now on");
    for (size_t i = 0; i < d->ngroups; i++)
        for (int j = 0; j < d->groups[i]->nreplicas; j++) {
            struct wd_replica *r = d->groups[i]->replicas[j];
            if (r && r->rt && r->state != WD_R_DEAD)
                c_health(d, r, r->health);
        }
}

static int c_init(struct wd_deploy *d, struct wd_error **err)
{
    struct cm_state *s = xzalloc(sizeof *s);
    d->rt_state = s;
    s->d = d;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->lfd < 0)
        return wd_err_sys(err, errno, "manager socket");
    int one = 1;
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(g_opts.port)};
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(s->lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(s->lfd, 128) < 0)
        return wd_err_sys(err, errno, "manager: listen on port %u", (unsigned)g_opts.port);
    s->lw = wd_watch_add(d->loop, s->lfd, WD_EV_IN, on_accept, s);
    if (d->cfg->nhost_ports) /* the compose file gives every service host-gateway */
        s->hp = wd_hostports_new(d->loop, d->cfg->host_ports, d->cfg->nhost_ports,
                                 g_opts.host_name ? g_opts.host_name : "host.docker.internal", NULL,
                                 NULL);
    /* the health gate serves a Swarm rollover (a front and a stamp): without one, a replica's
     * health is its own, and a group that never starts does not hold the others back */
    if (g_opts.stamp)
        s->ready_timer = wd_timer_add(d->loop, CM_READY_POLL_MS, ready_tick, s);
    else
        s->ready = true;
    wd_info("manager: waiting for shims on port %u", (unsigned)g_opts.port);
    return 0;
}

static int c_launch(struct wd_deploy *d, struct wd_replica *r, struct wd_error **err)
{
    (void)d;
    return wd_err(err, ENOTSUP, "group %s: replicas of a compose app register themselves",
                  r->g->short_name);
}

static void c_stop(struct wd_deploy *d, struct wd_replica *r, bool force)
{
    struct cm_replica *x = r->rt;
    if (x == NULL || x->afd < 0)
        return;
    x->stopping = true;
    if (!force) {
        /* the shim takes EOF on its registration link as "stop the weavelet"; it reports the
         * exit status and closes, and on_alink finishes the replica */
        shutdown(x->afd, SHUT_WR);
        return;
    }
    wd_watch_free(x->aw);
    x->aw = NULL;
    close(x->afd);
    x->afd = -1;
    if (x->gone_timer == NULL)
        x->gone_timer = wd_timer_add(d->loop, 0, gone_tick, r);
}

static const char *c_listen_address(struct wd_deploy *d, struct wd_replica *r)
{
    (void)d;
    (void)r;
    return ":0"; /* all of the container's interfaces; we reach it at its address */
}

static char *c_backend_address(struct wd_deploy *d, struct wd_replica *r, const char *bound)
{
    (void)d;
    struct cm_replica *x = r->rt;
    const char *colon = strrchr(bound, ':');
    if (x == NULL || colon == NULL)
        return xstrdup(bound);
    return xasprintf(strchr(x->ip, ':') ? "[%s]%s" : "%s%s", x->ip, colon);
}

static void c_release(struct wd_deploy *d, struct wd_replica *r)
{
    (void)d;
    struct cm_replica *x = r->rt;
    if (x == NULL)
        return;
    wd_timer_cancel(x->gone_timer);
    wd_watch_free(x->aw);
    if (x->afd >= 0)
        close(x->afd);
    free(x->ip);
    free(x);
    r->rt = NULL;
}

static void c_health(struct wd_deploy *d, struct wd_replica *r, int status)
{
    struct cm_state *s = d->rt_state;
    struct cm_replica *x = r->rt;
    uint8_t v = status == 1 /* HEALTHY */ && s && s->ready ? 1 : 2;
    if (x == NULL || x->afd < 0 || x->stopping || x->pushed_health == v)
        return;
    if (send(x->afd, &v, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
        x->pushed_health = v;
}

static void c_shutdown(struct wd_deploy *d)
{
    struct cm_state *s = d->rt_state;
    if (s == NULL)
        return;
    while (s->pending)
        pending_free(s->pending, true);
    wd_timer_cancel(s->ready_timer);
    wd_hostports_free(s->hp);
    wd_watch_free(s->lw);
    if (s->lfd >= 0)
        close(s->lfd);
    free(s);
    d->rt_state = NULL;
}

const struct wd_runtime_ops wd_runtime_compose = {
    .name = "compose",
    .init = c_init,
    .launch = c_launch,
    .stop = c_stop,
    .listen_address = c_listen_address,
    .backend_address = c_backend_address,
    .release = c_release,
    .shutdown = c_shutdown,
    .health = c_health,
    .external = true,
};
