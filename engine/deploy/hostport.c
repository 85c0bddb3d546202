/* engine/deploy/hostport.c - see hostport.h. One relay is two sockets and two 64 KiB buffers; a
 * full buffer stops reading its source until the other side drains it; EOF is passed on as
 * shutdown(SHUT_WR) once its direction is drained (half-close), and the relay ends when both
 * directions are done or either socket fails. */
#include "engine/deploy/hostport.h"
#include "engine/base/link.h"
#include "engine/base/log.h"
#include "engine/base/util.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HP_BUF 65536
#define HP_MAX_CAND 4 /* addresses tried for one connection */

struct hp_dir { /* bytes read from side i, to be written to side 1-i */
    uint8_t *buf;
    size_t start, end;
    bool eof;  /* side i sent EOF */
    bool shut; /* we shut down writing to side 1-i */
};

struct hp_relay {
    struct wd_hostports *h;
    int fd[2]; /* 0: the shim's 'P' link, 1: the host service */
    struct wd_watch *w[2];
    struct hp_dir dir[2];
    uint16_t port;
    bool connecting;
    bool want_port; /* adopted: the port's two bytes are still to come */
    uint8_t pbuf[2];
    size_t pgot;
    struct sockaddr_storage cand[HP_MAX_CAND];
    socklen_t candlen[HP_MAX_CAND];
    size_t ncand, next_cand;
    char *who;
    struct hp_relay *next, **prev;
};

struct wd_hostports {
    struct wd_loop *loop;
    uint16_t *ports;
    bool *warned; /* per port: "nothing listens" said and not answered since */
    size_t nports;
    struct hp_relay *relays;
    size_t nrelays;
    void (*say)(void *arg, const char *line);
    void *say_arg;
    char *target; /* NULL: loopback */
};

struct wd_hostports *wd_hostports_new(struct wd_loop *l, const uint16_t *ports, size_t n,
                                      const char *target,
                                      void (*say)(void *arg, const char *line), void *say_arg)
{
    struct wd_hostports *h = xzalloc(sizeof *h);
    h->target = target ? xstrdup(target) : NULL;
    h->say = say;
    h->say_arg = say_arg;
    h->loop = l;
    h->ports = xcalloc(n ? n : 1, sizeof *h->ports);
    h->warned = xcalloc(n ? n : 1, sizeof *h->warned);
    if (n)
        memcpy(h->ports, ports, n * sizeof *ports);
    h->nports = n;
    return h;
}

static ssize_t port_index(const struct wd_hostports *h, uint16_t port)
{
    for (size_t i = 0; i < h->nports; i++)
        if (h->ports[i] == port)
            return (ssize_t)i;
    return -1;
}

bool wd_hostports_allowed(const struct wd_hostports *h, uint16_t port)
{
    return h != NULL && port != 0 && port_index(h, port) >= 0;
}

size_t wd_hostports_active(const struct wd_hostports *h)
{
    return h ? h->nrelays : 0;
}

static void relay_free(struct hp_relay *r, bool reset)
{
    *r->prev = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->h->nrelays--;
    for (int i = 0; i < 2; i++) {
        wd_watch_free(r->w[i]);
        if (r->fd[i] >= 0) {
            if (reset) { /* RST, not FIN: the app learns the host refused */
                struct linger lg = {.l_onoff = 1, .l_linger = 0};
                setsockopt(r->fd[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            }
            close(r->fd[i]);
        }
        free(r->dir[i].buf);
    }
    free(r->who);
    free(r);
}

void wd_hostports_free(struct wd_hostports *h)
{
    if (h == NULL)
        return;
    while (h->relays)
        relay_free(h->relays, false);
    free(h->ports);
    free(h->warned);
    free(h->target);
    free(h);
}

static size_t dlen(const struct hp_dir *d)
{
    return d->end - d->start;
}

static void relay_update(struct hp_relay *r)
{
    for (int i = 0; i < 2; i++) {
        unsigned want = 0;
        if (i == 1 && r->connecting) {
            want = WD_EV_OUT;
        } else {
            if (!r->dir[i].eof && r->dir[i].end < HP_BUF)
                want |= WD_EV_IN;
            if (dlen(&r->dir[1 - i]) && !r->dir[1 - i].shut)
                want |= WD_EV_OUT;
        }
        wd_watch_set(r->w[i], want);
    }
}

/* Move what can be moved; returns false when the relay was freed. */
static bool relay_pump(struct hp_relay *r)
{
    for (int i = 0; i < 2; i++) {
        struct hp_dir *d = &r->dir[i];
        int out = r->fd[1 - i];
        while (dlen(d) && !d->shut && !(i == 0 && r->connecting)) {
            ssize_t n = send(out, d->buf + d->start, dlen(d), MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    break;
                relay_free(r, true);
                return false;
            }
            d->start += (size_t)n;
            if (d->start == d->end)
                d->start = d->end = 0;
        }
        if (d->eof && !dlen(d) && !d->shut && !(i == 0 && r->connecting)) {
            shutdown(out, SHUT_WR);
            d->shut = true;
        }
    }
    if (r->dir[0].shut && r->dir[1].shut) {
        relay_free(r, false);
        return false;
    }
    relay_update(r);
    return true;
}

static bool relay_read(struct hp_relay *r, int i)
{
    struct hp_dir *d = &r->dir[i];
    if (d->end == HP_BUF && d->start > 0) {
        memmove(d->buf, d->buf + d->start, dlen(d));
        d->end -= d->start;
        d->start = 0;
    }
    if (d->end == HP_BUF)
        return true;
    ssize_t n = recv(r->fd[i], d->buf + d->end, HP_BUF - d->end, 0);
    if (n > 0)
        d->end += (size_t)n;
    else if (n == 0)
        d->eof = true;
    else if (errno != EAGAIN && errno != EINTR) {
        relay_free(r, true);
        return false;
    }
    return true;
}

/* The addresses to try for r->port: the loopback, or what the target name resolves to. */
static void find_candidates(struct hp_relay *r)
{
    r->ncand = r->next_cand = 0;
    if (r->h->target == NULL) {
        struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(r->port)};
        a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(r->port)};
        a6.sin6_addr = in6addr_loopback;
        memcpy(&r->cand[0], &a4, sizeof a4);
        r->candlen[0] = sizeof a4;
        memcpy(&r->cand[1], &a6, sizeof a6);
        r->candlen[1] = sizeof a6;
        r->ncand = 2;
        return;
    }
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)r->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(r->h->target, port, &hints, &res) != 0)
        return;
    for (struct addrinfo *ai = res; ai && r->ncand < HP_MAX_CAND; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof r->cand[0])
            continue;
        memcpy(&r->cand[r->ncand], ai->ai_addr, ai->ai_addrlen);
        r->candlen[r->ncand++] = ai->ai_addrlen;
    }
    freeaddrinfo(res);
}

/* Start connecting to the next candidate; -1 with errno when none is left. */
static int dial_next(struct hp_relay *r)
{
    int e = EHOSTUNREACH;
    while (r->next_cand < r->ncand) {
        const struct sockaddr_storage *sa = &r->cand[r->next_cand];
        socklen_t len = r->candlen[r->next_cand++];
        int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, (const struct sockaddr *)sa, len) < 0 && errno != EINPROGRESS) {
            e = errno;
            close(fd);
            continue;
        }
        return fd;
    }
    errno = e;
    return -1;
}

static void on_relay(struct wd_watch *w, int fd, unsigned ev, void *arg);
static void start_dial(struct hp_relay *r);

/* The host refused (or the dial failed): try the next address, then give up on this
 * connection. */
static void host_failed(struct hp_relay *r, int e)
{
    if (r->w[1]) {
        wd_watch_free(r->w[1]);
        r->w[1] = NULL;
    }
    if (r->fd[1] >= 0)
        close(r->fd[1]);
    r->fd[1] = -1;
    int fd = dial_next(r);
    if (fd >= 0) {
        r->fd[1] = fd;
        r->w[1] = wd_watch_add(r->h->loop, fd, WD_EV_OUT, on_relay, r);
        return;
    }
    ssize_t k = port_index(r->h, r->port);
    if (k >= 0 && !r->h->warned[k]) {
        r->h->warned[k] = true;
        autofree char *line = xasprintf(
            "host_ports: %s connected to localhost:%u, but nothing answers at the host's "
            "%s:%u (%s); start the service there or fix [docker] host_ports",
            r->who, (unsigned)r->port, r->h->target ? r->h->target : "localhost",
            (unsigned)r->port, strerror(e));
        if (r->h->say)
            r->h->say(r->h->say_arg, line);
        else
            wd_warn("%s", line);
    }
    relay_free(r, true);
}

static void on_relay(struct wd_watch *w, int fd, unsigned ev, void *arg)
{
    (void)fd;
    struct hp_relay *r = arg;
    int i = w == r->w[0] ? 0 : 1;
    if (r->want_port) {
        ssize_t n = recv(r->fd[0], r->pbuf + r->pgot, sizeof r->pbuf - r->pgot, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            relay_free(r, false);
            return;
        }
        if ((r->pgot += (size_t)n) < sizeof r->pbuf)
            return;
        r->want_port = false;
        r->port = wd_be16(r->pbuf);
        if (!wd_hostports_allowed(r->h, r->port)) {
            wd_warn("%s asked for host port %u, which is not in [docker] host_ports: refused",
                    r->who, (unsigned)r->port);
            relay_free(r, true);
            return;
        }
        start_dial(r);
        return;
    }
    if (i == 1 && r->connecting) {
        int e = 0;
        socklen_t el = sizeof e;
        if (getsockopt(r->fd[1], SOL_SOCKET, SO_ERROR, &e, &el) < 0)
            e = errno;
        if (e == EINPROGRESS || e == EALREADY)
            return;
        if (e) {
            host_failed(r, e);
            return;
        }
        r->connecting = false;
        ssize_t k = port_index(r->h, r->port);
        if (k >= 0)
            r->h->warned[k] = false;
        relay_pump(r);
        return;
    }
    if ((ev & (WD_EV_IN | WD_EV_ERR)) && !relay_read(r, i))
        return;
    relay_pump(r);
}

static void start_dial(struct hp_relay *r)
{
    find_candidates(r);
    int fd = dial_next(r);
    if (fd < 0) {
        host_failed(r, errno);
        return;
    }
    r->fd[1] = fd;
    r->w[1] = wd_watch_add(r->h->loop, fd, WD_EV_OUT, on_relay, r);
}

static struct hp_relay *relay_new(struct wd_hostports *h, int link_fd, uint16_t port,
                                  const char *who)
{
    struct hp_relay *r = xzalloc(sizeof *r);
    r->h = h;
    r->port = port;
    r->who = xstrdup(who);
    r->fd[0] = link_fd;
    r->fd[1] = -1;
    r->connecting = true;
    for (int i = 0; i < 2; i++)
        r->dir[i].buf = xmalloc(HP_BUF);
    r->next = h->relays;
    if (h->relays)
        h->relays->prev = &r->next;
    r->prev = &h->relays;
    h->relays = r;
    h->nrelays++;
    int one = 1;
    setsockopt(link_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    r->w[0] = wd_watch_add(h->loop, link_fd, WD_EV_IN, on_relay, r);
    return r;
}

void wd_hostports_relay(struct wd_hostports *h, int link_fd, uint16_t port, const char *who)
{
    start_dial(relay_new(h, link_fd, port, who));
}

void wd_hostports_adopt(struct wd_hostports *h, int link_fd, const char *who)
{
    struct hp_relay *r = relay_new(h, link_fd, 0, who);
    r->want_port = true;
}
