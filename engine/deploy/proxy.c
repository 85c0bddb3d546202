#include "engine/deploy/proxy.h"
#include "engine/base/log.h"
#include "engine/base/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#define PBUF 65536
#define MAX_CONNS 4096

struct backend {
    char *addr;
    const void *owner;
    struct sockaddr_storage sa;
    socklen_t salen;
};

struct pconn;
struct half { /* one direction: bytes read from `from` waiting to be written to the other fd */
    uint8_t *buf;
    size_t len;
    bool eof;
    bool shut; /* EOF passed on (shutdown of the writing side) */
};

struct pconn {
    struct wd_proxy *p;
    int cfd, bfd; /* client, backend */
    struct wd_watch *cw, *bw;
    bool connected;
    bool remote; /* dialing or relaying to the split's remote (another version) */
    bool placed; /* the split was asked once for this connection */
    struct half up;   /* client -> backend */
    struct half down; /* backend -> client */
    size_t tries;
    struct pconn *next;
};

struct wd_proxy {
    struct wd_loop *loop;
    char *name;
    int lfd;
    struct wd_watch *lw;
    int spare_fd; /* a backend socket made before accepting, so an accept never takes the last
                   * descriptor and leaves none to dial with; -1 = none */
    int spare_family;
    int64_t emfile_warned_ms; /* last "out of descriptors" warning; 0 = never */
    unsigned emfile_quiet;     /* pauses since, not reported */
    char addr[128];
    int port;
    struct backend *be;
    size_t nbe;
    size_t rr;
    size_t nconns;
    uint64_t accepted; /* connections accepted so far */
    struct pconn *conns;
    int xfd; /* a listening socket adopted from another deployer (wd_proxy_adopt_listener) */
    struct wd_watch *xw;
    /* the split of a rollout: @split_permille of new connections go to @remote */
    struct backend remote;
    bool has_remote;
    unsigned split_permille, split_acc;
    uint64_t remote_conns, remote_failed;
};

int wd_split_hostport(const char *addr, char **host, char **port, struct wd_error **err)
{
    const char *colon;
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (end == NULL || end[1] != ':')
            return wd_err(err, EINVAL, "bad address \"%s\" (want host:port)", addr);
        *host = xstrndup(addr + 1, (size_t)(end - addr - 1));
        colon = end + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL)
            return wd_err(err, EINVAL, "bad address \"%s\" (want host:port)", addr);
        *host = xstrndup(addr, (size_t)(colon - addr));
    }
    const char *ps = colon + 1;
    char *end = NULL;
    long v = strtol(ps, &end, 10);
    if (*ps == 0 || *end != 0 || v < 0 || v > 65535) {
        free(*host);
        *host = NULL;
        return wd_err(err, EINVAL, "bad port in address \"%s\"", addr);
    }
    *port = xstrdup(ps);
    return 0;
}

static void fmt_addr(const struct sockaddr *sa, char *out, size_t n, int *port)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        *port = ntohs(s6->sin6_port);
        snprintf(out, n, "[%s]:%d", ip, *port);
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        *port = ntohs(s4->sin_port);
        snprintf(out, n, "%s:%d", ip, *port);
    }
}

static void pconn_free(struct pconn *c)
{
    struct wd_proxy *p = c->p;
    for (struct pconn **pp = &p->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    wd_watch_free(c->cw);
    wd_watch_free(c->bw);
    if (c->cfd >= 0)
        close(c->cfd);
    if (c->bfd >= 0)
        close(c->bfd);
    free(c->up.buf);
    free(c->down.buf);
    free(c);
    p->nconns--;
}

static void on_backend(struct wd_watch *w, int fd, unsigned ev, void *arg);
static void on_client(struct wd_watch *w, int fd, unsigned ev, void *arg);

/* Dials the next backend, with the proxy's spare socket when its family fits. */
static bool dial(struct pconn *c, const struct backend *b)
{
    struct wd_proxy *p = c->p;
    int fd;
    if (p->spare_fd >= 0 && p->spare_family == b->sa.ss_family) {
        fd = p->spare_fd;
        p->spare_fd = -1;
    } else {
        fd = socket(b->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    }
    if (fd < 0)
        return false;
    if (connect(fd, (const struct sockaddr *)&b->sa, b->salen) < 0 && errno != EINPROGRESS) {
        close(fd);
        return false;
    }
    c->bfd = fd;
    c->bw = wd_watch_add(p->loop, fd, WD_EV_OUT, on_backend, c);
    return true;
}

/* A new connection's first dial: to the split's remote for its share (spread evenly: an
 * accumulator, not a coin, so every 1000 connections give exactly the share). */
static bool take_remote(struct wd_proxy *p)
{
    if (!p->has_remote || p->split_permille == 0)
        return false;
    if (p->nbe == 0 || p->split_permille >= 1000)
        return true;
    p->split_acc += p->split_permille;
    if (p->split_acc >= 1000) {
        p->split_acc -= 1000;
        return true;
    }
    return false;
}

static bool connect_backend(struct pconn *c)
{
    struct wd_proxy *p = c->p;
    bool first = !c->placed;
    c->placed = true;
    if (first && take_remote(p)) {
        c->remote = true;
        p->remote_conns++;
        if (dial(c, &p->remote))
            return true;
        c->remote = false; /* not even a socket: this version serves it */
        p->remote_failed++;
    }
    while (c->tries < p->nbe) {
        c->tries++;
        if (dial(c, &p->be[p->rr++ % p->nbe]))
            return true;
    }
    return false;
}

/* Recompute interest: read a side only while its buffer has room; write while data waits. */
static void rearm(struct pconn *c)
{
    unsigned ce = 0, be = 0;
    if (!c->up.eof && c->up.len < PBUF)
        ce |= WD_EV_IN;
    if (c->down.len > 0)
        ce |= WD_EV_OUT;
    if (c->connected) {
        if (!c->down.eof && c->down.len < PBUF)
            be |= WD_EV_IN;
        if (c->up.len > 0)
            be |= WD_EV_OUT;
        wd_watch_set(c->bw, be);
    }
    wd_watch_set(c->cw, ce);
}

/* Move bytes: read from `from` into h (can_read), write h to `to` (to >= 0). Returns false when
 * the pair is done. Each call costs at most one recv and one send: a relayed request is one
 * event on the side it arrives at, and the other direction is left to its own events (level-
 * triggered, so nothing is missed); pumping both on every event cost a recv that only said
 * EAGAIN per request, a sixth of the relay's system calls (bench/listener.sh). */
static bool pump(int from, int to, struct half *h, bool can_read)
{
    if (can_read && !h->eof && h->len < PBUF) {
        ssize_t n = recv(from, h->buf + h->len, PBUF - h->len, 0);
        if (n > 0)
            h->len += (size_t)n;
        else if (n == 0)
            h->eof = true;
        else if (errno != EAGAIN && errno != EINTR)
            return false;
    }
    if (to >= 0 && h->len > 0) {
        ssize_t n = send(to, h->buf, h->len, MSG_NOSIGNAL);
        if (n > 0) {
            h->len -= (size_t)n;
            if (h->len > 0)
                memmove(h->buf, h->buf + n, h->len);
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            return false;
        }
    }
    if (h->eof && h->len == 0 && to >= 0 && !h->shut) {
        h->shut = true;
        shutdown(to, SHUT_WR);
    }
    return true;
}

/* After an event: free a pair that is done, else set what to wait for next. */
static void settle(struct pconn *c, bool ok)
{
    if (!ok || (c->up.eof && c->down.eof && c->up.len == 0 && c->down.len == 0)) {
        pconn_free(c);
        return;
    }
    rearm(c);
}

/* Client events: IN reads the request side (and passes it on once the backend is connected),
 * OUT flushes what the backend sent that did not fit into the client's socket at once. */
static void on_client(struct wd_watch *w, int fd, unsigned ev, void *arg)
{
    (void)w;
    (void)fd;
    struct pconn *c = arg;
    bool ok = true;
    if (ev & (WD_EV_IN | WD_EV_ERR))
        ok = pump(c->cfd, c->connected ? c->bfd : -1, &c->up, true);
    if (ok && (ev & WD_EV_OUT) && c->connected)
        ok = pump(c->bfd, c->cfd, &c->down, false);
    settle(c, ok);
}

static void on_backend(struct wd_watch *w, int fd, unsigned ev, void *arg)
{
    (void)w;
    struct pconn *c = arg;
    if (!c->connected) {
        int e = 0;
        socklen_t el = sizeof e;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el);
        if (e != 0 || (ev & WD_EV_ERR)) { /* that backend is gone: try the next one */
            wd_watch_free(c->bw);
            c->bw = NULL;
            close(c->bfd);
            c->bfd = -1;
            if (c->remote) { /* the other version did not take it: this one serves it */
                c->remote = false;
                c->p->remote_failed++;
            }
            if (!connect_backend(c))
                pconn_free(c);
            return;
        }
        c->connected = true;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        /* what the client sent while we connected (and its EOF) goes out now */
        settle(c, pump(c->cfd, c->bfd, &c->up, false));
        return;
    }
    bool ok = true;
    if (ev & (WD_EV_IN | WD_EV_ERR))
        ok = pump(c->bfd, c->cfd, &c->down, true);
    if (ok && (ev & WD_EV_OUT))
        ok = pump(c->cfd, c->bfd, &c->up, false);
    settle(c, ok);
}

/* Out of descriptors (err): the connections stay queued in the kernel; pause accepting rather
 * than spin. Returns false for any other error. One line per episode: a storm alternates short
 * accepts and pauses, and a line per pause would flood the log it is trying to warn on. */
static bool pause_accepting(struct wd_proxy *p, struct wd_watch *w, int err)
{
    if (!wd_watch_accept_failed(w, err, 100))
        return false;
    int64_t now = wd_now_ms();
    if (p->emfile_warned_ms && now - p->emfile_warned_ms < 30000) {
        p->emfile_quiet++;
        return true;
    }
    if (p->emfile_quiet)
        wd_warn("listener %s: %s again (%u pauses in the last %lld s); not accepting for 100 ms "
                "at a time until some close",
                p->name, strerror(err), p->emfile_quiet,
                (long long)((now - p->emfile_warned_ms) / 1000));
    else
        wd_warn("listener %s: %s; not accepting for 100 ms at a time until some close", p->name,
                strerror(err));
    p->emfile_warned_ms = now;
    p->emfile_quiet = 0;
    return true;
}

static void on_accept(struct wd_watch *w, int fd, unsigned ev, void *arg)
{
    (void)w;
    (void)ev;
    struct wd_proxy *p = arg;
    for (;;) {
        /* The backend's socket first: out of descriptors, the client stays queued in the
         * kernel instead of being accepted and then dropped for want of a second one. */
        if (p->spare_fd < 0 && p->nbe > 0) {
            int family = p->be[p->rr % p->nbe].sa.ss_family;
            p->spare_fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            p->spare_family = family;
            if (p->spare_fd < 0 && pause_accepting(p, w, errno))
                return;
        }
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            pause_accepting(p, w, errno);
            return;
        }
        if ((p->nbe == 0 && !(p->has_remote && p->split_permille > 0)) ||
            p->nconns >= MAX_CONNS) {
            close(cfd); /* nothing to serve it yet: a quick refusal beats a hang */
            continue;
        }
        int one = 1;
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct pconn *c = xzalloc(sizeof *c);
        c->p = p;
        c->cfd = cfd;
        c->bfd = -1;
        c->up.buf = xmalloc(PBUF);
        c->down.buf = xmalloc(PBUF);
        c->next = p->conns;
        p->conns = c;
        p->nconns++;
        p->accepted++;
        c->cw = wd_watch_add(p->loop, cfd, WD_EV_IN, on_client, c);
        if (!connect_backend(c))
            pconn_free(c);
    }
}

int wd_tcp_listen(const char *hostport, int backlog, int *out, struct wd_error **err)
{
    autofree char *host = NULL;
    autofree char *port = NULL;
    if (wd_split_hostport(hostport, &host, &port, err) < 0)
        return -EINVAL;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    int gr = getaddrinfo(*host ? host : NULL, port, &hints, &ai);
    if (gr != 0)
        return wd_err(err, EINVAL, "cannot resolve \"%s\": %s", hostport, gai_strerror(gr));
    int fd = -1, e = 0;
    /* An empty host binds the IPv6 wildcard (dual stack) when available, like Go does. */
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        if (!*host && a->ai_family != AF_INET6 && a->ai_next)
            continue;
        fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, backlog) == 0)
            break;
        e = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        if (e == EADDRINUSE)
            return wd_err(err, EADDRINUSE, "address %s is already in use", hostport);
        return wd_err_sys(err, e ? e : EINVAL, "listen on %s", hostport);
    }
    *out = fd;
    return 0;
}

int wd_proxy_new(struct wd_loop *l, const char *name, const char *address, struct wd_proxy **out,
                 struct wd_error **err)
{
    int fd = -1;
    int r = wd_tcp_listen(address, 512, &fd, err);
    if (r == -EADDRINUSE) {
        wd_err_free(err); /* say it with our context and what to do */
        return wd_err(err, EADDRINUSE,
                      "listener %s: address %s is already in use; stop what holds it or choose "
                      "another [docker] listeners.%s.address",
                      name, address, name);
    }
    if (r < 0)
        return wd_err_wrap(err, "listener %s", name);
    struct wd_proxy *p = xzalloc(sizeof *p);
    p->loop = l;
    p->name = xstrdup(name);
    p->lfd = fd;
    p->xfd = -1;
    p->spare_fd = -1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    fmt_addr((struct sockaddr *)&ss, p->addr, sizeof p->addr, &p->port);
    p->lw = wd_watch_add(l, fd, WD_EV_IN, on_accept, p);
    *out = p;
    return 0;
}

void wd_proxy_free(struct wd_proxy *p)
{
    if (p == NULL)
        return;
    while (p->conns)
        pconn_free(p->conns);
    wd_watch_free(p->lw);
    if (p->lfd >= 0)
        close(p->lfd);
    wd_watch_free(p->xw);
    if (p->xfd >= 0)
        close(p->xfd);
    free(p->remote.addr);
    if (p->spare_fd >= 0)
        close(p->spare_fd);
    for (size_t i = 0; i < p->nbe; i++)
        free(p->be[i].addr);
    free(p->be);
    free(p->name);
    free(p);
}

const char *wd_proxy_address(const struct wd_proxy *p) { return p->addr; }
int wd_proxy_port(const struct wd_proxy *p) { return p->port; }
size_t wd_proxy_nbackends(const struct wd_proxy *p) { return p->nbe; }

static bool resolve(const char *addr, struct backend *b);

void wd_proxy_add_backend(struct wd_proxy *p, const char *addr, const void *owner)
{
    struct backend b = {0};
    if (!resolve(addr, &b))
        return;
    b.addr = xstrdup(addr);
    b.owner = owner;
    p->be = xrealloc(p->be, (p->nbe + 1) * sizeof *p->be);
    p->be[p->nbe++] = b;
}

void wd_proxy_remove_backends(struct wd_proxy *p, const void *owner)
{
    size_t j = 0;
    for (size_t i = 0; i < p->nbe; i++) {
        if (p->be[i].owner == owner)
            free(p->be[i].addr);
        else
            p->be[j++] = p->be[i];
    }
    p->nbe = j;
}

/* A numeric "ip:port" (or "[v6]:port") into b's address; false if it is not one. */
static bool resolve(const char *addr, struct backend *b)
{
    char *host = NULL, *port = NULL;
    if (wd_split_hostport(addr, &host, &port, NULL) < 0)
        return false;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    bool ok = getaddrinfo(host, port, &hints, &ai) == 0 && ai;
    if (ok) {
        memcpy(&b->sa, ai->ai_addr, ai->ai_addrlen);
        b->salen = ai->ai_addrlen;
    }
    if (ai)
        freeaddrinfo(ai);
    free(host);
    free(port);
    return ok;
}

int wd_proxy_set_split(struct wd_proxy *p, const char *remote, unsigned permille)
{
    if (remote == NULL) {
        free(p->remote.addr);
        memset(&p->remote, 0, sizeof p->remote);
        p->has_remote = false;
        p->split_permille = 0;
        return 0;
    }
    if (!p->has_remote || strcmp(p->remote.addr, remote) != 0) {
        struct backend b = {0};
        if (!resolve(remote, &b))
            return -EINVAL;
        free(p->remote.addr);
        p->remote = b;
        p->remote.addr = xstrdup(remote);
        p->has_remote = true;
        p->split_acc = 0;
    }
    p->split_permille = permille > 1000 ? 1000 : permille;
    return 0;
}

void wd_proxy_split_stats(const struct wd_proxy *p, uint64_t *sent, uint64_t *failed)
{
    *sent = p->remote_conns;
    *failed = p->remote_failed;
}

const char *wd_proxy_backend(const struct wd_proxy *p, size_t i)
{
    return i < p->nbe ? p->be[i].addr : NULL;
}

int wd_proxy_listener_fd(const struct wd_proxy *p)
{
    return p->xfd >= 0 ? p->xfd : p->lfd;
}

void wd_proxy_close_listeners(struct wd_proxy *p)
{
    wd_watch_free(p->lw);
    p->lw = NULL;
    wd_watch_free(p->xw);
    p->xw = NULL;
    if (p->lfd >= 0)
        close(p->lfd);
    if (p->xfd >= 0)
        close(p->xfd);
    p->lfd = p->xfd = -1;
}

void wd_proxy_adopt_listener(struct wd_proxy *p, int fd)
{
    wd_watch_free(p->xw);
    if (p->xfd >= 0)
        close(p->xfd);
    p->xfd = fd;
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        fmt_addr((struct sockaddr *)&ss, p->addr, sizeof p->addr, &p->port);
    p->xw = wd_watch_add(p->loop, fd, WD_EV_IN, on_accept, p);
}

size_t wd_proxy_nconns(const struct wd_proxy *p) { return p->nconns; }

uint64_t wd_proxy_accepted(const struct wd_proxy *p) { return p->accepted; }
