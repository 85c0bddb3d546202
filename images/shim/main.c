/* images/shim/main.c - weaver-docker-shim, PID 1 of every container (docs/design/shim-link.md).
 *
 * Starts the weavelet, forwards signals to its process group, reaps every child, exits with the
 * weavelet's status, and bridges the weavelet's two control channels to the deployer over an
 * authenticated TCP link. One thread, one level-triggered epoll loop, no allocation after start:
 * connections and their buffers come from static arrays (untouched BSS costs no RSS). */
#include "images/shim/shimcfg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SHIM_VERSION_STR "0.1.0"
#define SHIM_BUF_SIZE 65536    /* per direction per connection */
#define SHIM_MAX_CONNS 128     /* TCP connections, authenticated or not */
#define SHIM_MAX_PENDING 16    /* unauthenticated ones; the oldest is dropped beyond this */
#define SHIM_MAX_WAITING 8     /* weavelet connections to deployer.sock waiting for a 'D' link */
#define SHIM_HELLO_LEN WD_LINK_HELLO_LEN
#define SHIM_MAX_HP_WAITING 16 /* app connections to a host port waiting for a 'P' link */
#define SHIM_HANDSHAKE_MS 5000 /* an unauthenticated connection must send its hello by then */
#define SHIM_KILL_AFTER_MS 5000 /* orphan rule: SIGKILL this long after SIGTERM */
#define SHIM_EXIT_GRACE_MS 1000 /* after the weavelet exits: flush relays for at most this */
#define SHIM_PROBE_MS 200       /* poll for control.sock while the weavelet starts */
#define SHIM_EXIT_SETUP 125     /* the shim itself failed (bad config, bind, fork) */
#define SHIM_HEALTH_SERVING WD_LINK_SERVING /* 'H' hello, byte 5 */
#define SHIM_HEALTH_NOT_SERVING WD_LINK_NOT_SERVING
/* Manager mode (docs/design/compose.md) */
#define SHIM_MGR_ID_MAX 64          /* weavelet id in the manager's answer */
#define SHIM_MGR_ARGS_MAX 65536     /* WEAVELET_ARGS in the manager's answer */
#define SHIM_MGR_TIMEOUT_MS 5000    /* connect, hello and answer, each */
#define SHIM_MGR_BACKOFF_MAX_MS 2000
#define SHIM_DIAL_HELLO_MAX (SHIM_HELLO_LEN + 2 + SHIM_MGR_ID_MAX)

extern char **environ;

enum ev_kind { EV_SIGNAL = 1, EV_TCP_LISTEN, EV_UNIX_LISTEN, EV_SIDE, EV_MGR, EV_HOSTPORT };
/* C_DIAL, C_ACK: manager mode, a link we dial (connecting; hello sent, waiting for 0x01) */
enum conn_state { C_FREE, C_HELLO, C_LINK, C_DIAL, C_ACK };

/* One socket of a connection. epoll_event.data.ptr points at a shim_side (or at a one-byte
 * tag for the listeners and the signalfd); `kind` comes first so the loop can tell them apart. */
struct shim_side {
    uint8_t kind; /* EV_SIDE */
    uint8_t idx;  /* 0: deployer (TCP), 1: weavelet (Unix) */
    bool eof;     /* recv returned 0 */
    bool shut;    /* we sent shutdown(SHUT_WR) */
    bool connecting;
    int fd;
    uint32_t events; /* registered with epoll; 0 = not registered */
    struct shim_conn *conn;
};

/* buf[i] holds bytes read from side[i] that still have to be written to side[1-i]. */
struct shim_buf {
    uint8_t *data; /* SHIM_BUF_SIZE bytes from pool[] */
    size_t start, end;
    bool used; /* touched: give the pages back when the connection is freed */
};

struct shim_conn {
    struct shim_side side[2];
    struct shim_buf buf[2];
    enum conn_state state;
    char chan; /* 'W' or 'D' once authenticated */
    bool dead; /* closed during this epoll batch; freed after it */
    uint64_t seq;
    uint16_t port;    /* manager mode 'P': the host port the app connected to */
    int64_t deadline; /* C_HELLO: handshake timeout; 'W': next connect attempt */
    int retry_ms;
    size_t hello_len;
    uint8_t hello[SHIM_HELLO_LEN];
    char peer[24];
    struct shim_conn *next; /* free list or dead list */
};

/* A listener on the container's loopback for one of WEAVER_SHIM_HOST_PORTS (IPv4 and IPv6). */
struct hp_listener {
    uint8_t kind; /* EV_HOSTPORT */
    uint16_t port;
    int fd;
};

static struct shim_cfg cfg;
static struct hp_listener hpl[2 * WD_LINK_MAX_HOST_PORTS];
static size_t nhpl;
static struct shim_conn conns[SHIM_MAX_CONNS];
static uint8_t pool[2 * SHIM_MAX_CONNS][SHIM_BUF_SIZE] __attribute__((aligned(4096)));
static uint8_t tag_signal = EV_SIGNAL, tag_tcp = EV_TCP_LISTEN, tag_unix = EV_UNIX_LISTEN,
               tag_mgr = EV_MGR;

static struct {
    int ep, sigfd, tcp_fd, unix_fd;
    sigset_t orig_mask;
    pid_t child;
    bool child_exited, stopping, ever_authed, ctl_seen;
    int exit_code;
    int auth_open, pending, pushed;
    int64_t exit_at, orphan_at, kill_at, probe_at;
    int64_t drain_at; /* WEAVER_SHIM_DRAIN_MS after a SIGTERM: pass it on then; 0 = none */
    uint64_t seq;
    struct shim_conn *free_list, *dead_list;
    int waiting[SHIM_MAX_WAITING];
    int nwaiting;
    struct { /* app connections to a host port, accepted while no 'P' link was parked */
        int fd;
        uint16_t port;
    } hp_waiting[SHIM_MAX_HP_WAITING];
    int nhp_waiting;
    struct sockaddr_un ctl_addr, dsock_addr;
    char health_path[SHIM_DIR_MAX + 16], health_tmp[SHIM_DIR_MAX + 16];
    const char *health;
    /* manager mode */
    int mgr_fd; /* the registration ('A') connection, kept for the weavelet's lifetime */
    struct sockaddr_storage mgr_addr;
    socklen_t mgr_addrlen;
    char wid[SHIM_MGR_ID_MAX + 1];
    int64_t dial_at[2]; /* next dial of 'W' [0] and 'D' [1]; 0 = none */
    /* WEAVER_SHIM_PIPES: our end of the weavelet's pipes until a 'W' link takes it; the
     * weavelet's end, given to the child as fds 3 and 4 */
    int pipe_fd, pipe_child;
    int dial_ms[2];     /* backoff */
} S = {.ep = -1, .sigfd = -1, .tcp_fd = -1, .unix_fd = -1, .mgr_fd = -1, .pipe_fd = -1,
       .pipe_child = -1};

/* ---- small helpers ---------------------------------------------------------------------- */

enum { SHIM_LOG_ERROR = SHIM_LOG_WARN + 1 };

__attribute__((format(printf, 2, 3))) static void shim_log(int level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    if (level < (int)cfg.log_level)
        return;
    char line[320];
    int n = snprintf(line, sizeof line, "weaver-docker-shim: %s: ", names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    (void)!write(STDERR_FILENO, line, len);
}

__attribute__((noreturn, format(printf, 1, 2))) static void shim_die(const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    shim_log(SHIM_LOG_ERROR, "%s", msg);
    exit(SHIM_EXIT_SETUP);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool again(int e) { return e == EAGAIN || e == EINTR; }

static size_t buf_len(const struct shim_buf *b) { return b->end - b->start; }
static bool buf_room(const struct shim_buf *b) { return b->end < SHIM_BUF_SIZE || b->start > 0; }

static void kill_group(int sig)
{
    if (S.child_exited)
        return;
    if (kill(-S.child, sig) < 0 && errno == ESRCH)
        (void)kill(S.child, sig); /* it left its process group */
}

/* ---- health file ------------------------------------------------------------------------ */

/* $DIR/health holds one word; `--health` exits 0 iff it is "ok". */
static void health_update(void)
{
    const char *st;
    if (S.child_exited)
        st = "exited";
    else if (S.stopping)
        st = "stopping";
    else if (!S.ctl_seen)
        st = "starting";
    else if (cfg.link && S.auth_open == 0)
        st = "nolink";
    else if (S.pushed == SHIM_HEALTH_NOT_SERVING)
        st = "unhealthy";
    else
        st = "ok";
    if (st == S.health)
        return;
    S.health = st;
    shim_log(SHIM_LOG_DEBUG, "health: %s", st);
    int fd = open(S.health_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        shim_log(SHIM_LOG_WARN, "%s: %s", S.health_tmp, strerror(errno));
        return;
    }
    char line[16];
    int n = snprintf(line, sizeof line, "%s\n", st);
    bool ok = write(fd, line, (size_t)n) == n;
    close(fd);
    if (!ok || rename(S.health_tmp, S.health_path) < 0)
        shim_log(SHIM_LOG_WARN, "%s: %s", S.health_path, strerror(errno));
}

static int health_main(void)
{
    char path[SHIM_DIR_MAX + 16], b[64];
    snprintf(path, sizeof path, "%s/health", cfg.dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        printf("%s: %s\n", path, strerror(errno));
        return 1;
    }
    ssize_t n = read(fd, b, sizeof b - 1);
    close(fd);
    b[n > 0 ? n : 0] = '\0';
    fputs(b, stdout);
    return strcmp(b, "ok\n") == 0 ? 0 : 1;
}

/* ---- connections ------------------------------------------------------------------------ */

static void side_watch(struct shim_side *s, uint32_t want)
{
    if (s->fd < 0 || want == s->events)
        return;
    struct epoll_event ev = {.events = want, .data.ptr = s};
    int op = !s->events ? EPOLL_CTL_ADD : want ? EPOLL_CTL_MOD : EPOLL_CTL_DEL;
    if (epoll_ctl(S.ep, op, s->fd, &ev) < 0)
        shim_log(SHIM_LOG_WARN, "epoll_ctl: %s", strerror(errno));
    s->events = want;
}

static void side_close(struct shim_side *s)
{
    if (s->fd < 0)
        return;
    side_watch(s, 0);
    close(s->fd);
    s->fd = -1;
    s->events = 0;
}

static void side_attach(struct shim_side *s, int fd)
{
    s->fd = fd;
    s->eof = s->shut = s->connecting = false;
    s->events = 0;
}

static void links_changed(void)
{
    if (S.auth_open > 0)
        S.orphan_at = 0;
    else if (S.ever_authed && cfg.orphan_secs && !S.child_exited && !S.stopping)
        S.orphan_at = now_ms() + (int64_t)cfg.orphan_secs * 1000;
    health_update();
}

static void mgr_link_closed(char chan, bool established);

static struct shim_conn *conn_alloc(void)
{
    struct shim_conn *c = S.free_list;
    if (!c)
        return NULL;
    S.free_list = c->next;
    size_t slot = (size_t)(c - conns);
    memset(c, 0, sizeof *c);
    for (int k = 0; k < 2; k++) {
        c->side[k].kind = EV_SIDE;
        c->side[k].idx = (uint8_t)k;
        c->side[k].fd = -1;
        c->side[k].conn = c;
        c->buf[k].data = pool[2 * slot + (size_t)k];
    }
    c->seq = ++S.seq;
    return c;
}

static void conn_close(struct shim_conn *c, const char *why)
{
    if (c->dead || c->state == C_FREE)
        return;
    side_close(&c->side[0]);
    side_close(&c->side[1]);
    c->dead = true;
    c->next = S.dead_list;
    S.dead_list = c;
    if (c->state == C_HELLO) {
        S.pending--;
        shim_log(SHIM_LOG_DEBUG, "connection #%llu from %s closed: %s",
                 (unsigned long long)c->seq, c->peer, why);
    } else if (c->state == C_LINK) {
        S.auth_open--;
        shim_log(SHIM_LOG_INFO, "link %c#%llu %s %s closed: %s", c->chan,
                 (unsigned long long)c->seq, cfg.manager ? "to" : "from", c->peer, why);
        links_changed();
    } else {
        shim_log(SHIM_LOG_DEBUG, "dial %c#%llu to the manager failed: %s", c->chan,
                 (unsigned long long)c->seq, why);
    }
    if (cfg.manager)
        mgr_link_closed(c->chan, c->state == C_LINK);
}

/* Called after each epoll batch: only now may a slot be reused. */
static void conn_free_dead(void)
{
    while (S.dead_list) {
        struct shim_conn *c = S.dead_list;
        S.dead_list = c->next;
        for (int k = 0; k < 2; k++)
            if (c->buf[k].used)
                (void)madvise(c->buf[k].data, SHIM_BUF_SIZE, MADV_DONTNEED);
        c->state = C_FREE;
        c->dead = false;
        c->next = S.free_list;
        S.free_list = c;
    }
}

static void conn_update(struct shim_conn *c)
{
    if (c->dead)
        return;
    for (int i = 0; i < 2; i++) {
        struct shim_side *s = &c->side[i];
        uint32_t want = 0;
        if ((c->state == C_DIAL || c->state == C_ACK) && i == 1)
            want = 0; /* a 'P' dial: the app's side waits for the link */
        else if (c->state == C_HELLO || c->state == C_ACK)
            want = EPOLLIN;
        else if (c->state == C_DIAL)
            want = EPOLLOUT;
        else if (s->connecting)
            want = EPOLLOUT;
        else {
            if (!s->eof && buf_room(&c->buf[i]))
                want |= EPOLLIN;
            if (buf_len(&c->buf[1 - i]) && !s->shut)
                want |= EPOLLOUT;
        }
        side_watch(s, want);
    }
}

/* Write what can be written both ways; propagate EOF once a direction is drained. */
static void conn_pump(struct shim_conn *c)
{
    for (int i = 0; i < 2 && !c->dead; i++) {
        struct shim_buf *b = &c->buf[i];
        struct shim_side *dst = &c->side[1 - i];
        while (buf_len(b) && dst->fd >= 0 && !dst->connecting && !dst->shut) {
            ssize_t n = send(dst->fd, b->data + b->start, buf_len(b), MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0) {
                if (again(errno))
                    break;
                conn_close(c, strerror(errno));
                return;
            }
            b->start += (size_t)n;
            if (b->start == b->end)
                b->start = b->end = 0;
        }
        if (c->side[i].eof && !buf_len(b)) {
            if (dst->fd < 0) { /* 'W' not connected yet, or 'D' still parked */
                conn_close(c, "closed before the weavelet side was connected");
                return;
            }
            if (!dst->connecting && !dst->shut) {
                (void)shutdown(dst->fd, SHUT_WR);
                dst->shut = true;
            }
        }
    }
    if (!c->dead && c->side[0].eof && c->side[1].eof && c->side[0].shut && c->side[1].shut)
        conn_close(c, "both directions done");
}

static void conn_kick(struct shim_conn *c)
{
    conn_pump(c);
    conn_update(c);
}

static void side_read(struct shim_conn *c, int i)
{
    struct shim_buf *b = &c->buf[i];
    if (b->end == SHIM_BUF_SIZE && b->start > 0) {
        memmove(b->data, b->data + b->start, buf_len(b));
        b->end -= b->start;
        b->start = 0;
    }
    ssize_t n = recv(c->side[i].fd, b->data + b->end, SHIM_BUF_SIZE - b->end, 0);
    if (n > 0) {
        b->end += (size_t)n;
        b->used = true;
    } else if (n == 0) {
        c->side[i].eof = true;
    } else if (!again(errno)) {
        conn_close(c, strerror(errno));
    }
}

static void ctl_ready(void)
{
    if (!S.ctl_seen) {
        S.ctl_seen = true;
        health_update();
    }
}

static void w_retry(struct shim_conn *c, int e)
{
    if (e != ENOENT && e != ECONNREFUSED && e != EAGAIN) {
        conn_close(c, strerror(e));
        return;
    }
    c->retry_ms = c->retry_ms ? (c->retry_ms * 2 > 200 ? 200 : c->retry_ms * 2) : 10;
    c->deadline = now_ms() + c->retry_ms;
}

/* 'W': connect to the weavelet's control socket, retrying while the weavelet starts. */
static void w_connect(struct shim_conn *c)
{
    c->deadline = 0;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        conn_close(c, strerror(errno));
        return;
    }
    if (connect(fd, (const struct sockaddr *)&S.ctl_addr, sizeof S.ctl_addr) == 0) {
        side_attach(&c->side[1], fd);
        ctl_ready();
        shim_log(SHIM_LOG_DEBUG, "link W#%llu connected to the weavelet",
                 (unsigned long long)c->seq);
    } else if (errno == EINPROGRESS) {
        side_attach(&c->side[1], fd);
        c->side[1].connecting = true;
    } else {
        int e = errno;
        close(fd);
        w_retry(c, e);
    }
    if (!c->dead)
        conn_kick(c);
}

static void w_connect_done(struct shim_conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->side[1].fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == 0) {
        c->side[1].connecting = false;
        ctl_ready();
    } else {
        side_close(&c->side[1]);
        w_retry(c, err);
    }
    if (!c->dead)
        conn_kick(c);
}

static struct shim_conn *oldest_parked(char chan)
{
    struct shim_conn *best = NULL;
    for (size_t i = 0; i < SHIM_MAX_CONNS; i++) {
        struct shim_conn *c = &conns[i];
        if (c->state == C_LINK && !c->dead && c->chan == chan && c->side[1].fd < 0 &&
            !c->side[0].eof && (!best || c->seq < best->seq))
            best = c;
    }
    return best;
}

/* A 'P' link and an app connection to host port `port` meet: the port goes to the deployer
 * (after the ack, if that is still queued), then bytes flow both ways. */
static void hp_pair(struct shim_conn *c, int fd, uint16_t port)
{
    side_attach(&c->side[1], fd);
    struct shim_buf *b = &c->buf[1];
    wd_put_be16(b->data + b->end, port);
    b->end += 2;
    b->used = true;
    shim_log(SHIM_LOG_DEBUG, "link P#%llu relays host port %u", (unsigned long long)c->seq,
             (unsigned)port);
    conn_kick(c);
}

static void hello_done(struct shim_conn *c)
{
    const uint8_t *h = c->hello;
    char chan = (char)h[4];
    bool token_ok = wd_ct_equal(h + 8, cfg.token, SHIM_TOKEN_LEN);
    bool form_ok = wd_link_hello_form(h, cfg.nhost_ports ? "WDHP" : "WDH");
    if (!form_ok || !token_ok) {
        shim_log(SHIM_LOG_WARN, "rejected connection from %s: %s", c->peer,
                 form_ok ? "wrong token" : "malformed hello");
        conn_close(c, "rejected");
        return;
    }
    if (chan == 'H') { /* health push: answer, record, close */
        (void)send(c->side[0].fd, "\1", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        S.pushed = h[5];
        health_update();
        conn_close(c, "health pushed");
        return;
    }
    S.pending--;
    S.auth_open++;
    S.ever_authed = true;
    c->state = C_LINK;
    c->chan = chan;
    c->deadline = 0;
    c->buf[1].data[0] = 1; /* the answer goes out ahead of anything the weavelet sends */
    c->buf[1].end = 1;
    c->buf[1].used = true;
    shim_log(SHIM_LOG_INFO, "link %c#%llu from %s authenticated", chan,
             (unsigned long long)c->seq, c->peer);
    links_changed();
    if (chan == 'W' && cfg.pipes) {
        /* weaver v0.20-v0.22: the link is the weavelet's pipe stream, once */
        if (S.pipe_fd < 0) {
            conn_close(c, "the weavelet's pipes are already linked");
            return;
        }
        side_attach(&c->side[1], S.pipe_fd);
        S.pipe_fd = -1;
        ctl_ready();
        conn_kick(c);
        return;
    }
    if (chan == 'W') {
        w_connect(c);
        return;
    }
    if (chan == 'P') {
        if (S.nhp_waiting > 0) {
            int fd = S.hp_waiting[0].fd;
            uint16_t port = S.hp_waiting[0].port;
            memmove(S.hp_waiting, S.hp_waiting + 1, (size_t)--S.nhp_waiting * sizeof S.hp_waiting[0]);
            hp_pair(c, fd, port);
        } else {
            conn_kick(c);
        }
        return;
    }
    if (S.nwaiting > 0) {
        side_attach(&c->side[1], S.waiting[0]);
        memmove(S.waiting, S.waiting + 1, (size_t)--S.nwaiting * sizeof S.waiting[0]);
    }
    conn_kick(c);
}

static void hello_read(struct shim_conn *c)
{
    ssize_t n = recv(c->side[0].fd, c->hello + c->hello_len, SHIM_HELLO_LEN - c->hello_len, 0);
    if (n == 0)
        conn_close(c, "closed during the hello");
    else if (n < 0 && !again(errno))
        conn_close(c, strerror(errno));
    else if (n > 0 && (c->hello_len += (size_t)n) == SHIM_HELLO_LEN)
        hello_done(c);
}

/* ---- manager mode: links we dial -------------------------------------------------------- */

static void mgr_schedule(int k, bool reset)
{
    if (S.mgr_fd < 0 || S.child_exited || S.stopping || S.dial_at[k])
        return;
    if (reset)
        S.dial_ms[k] = 0;
    S.dial_at[k] = now_ms() + S.dial_ms[k];
    S.dial_ms[k] = S.dial_ms[k] ? S.dial_ms[k] * 2 : 50;
    if (S.dial_ms[k] > SHIM_MGR_BACKOFF_MAX_MS)
        S.dial_ms[k] = SHIM_MGR_BACKOFF_MAX_MS;
}

static void mgr_stop_weavelet(const char *why)
{
    if (S.child_exited || S.stopping)
        return;
    shim_log(SHIM_LOG_WARN, "%s: stopping the weavelet", why);
    S.stopping = true;
    S.orphan_at = 0;
    S.kill_at = now_ms() + SHIM_KILL_AFTER_MS;
    S.dial_at[0] = S.dial_at[1] = 0;
    health_update();
    kill_group(SIGTERM);
}

/* 'D' is dialed again whenever the previous one closed (the weavelet re-dials its deployer);
 * 'W' only until it was established once: a lost control link ends the weavelet. */
static void mgr_link_closed(char chan, bool established)
{
    if (chan == 'P')
        return; /* one app connection: nothing to dial again */
    if (chan == 'D')
        mgr_schedule(1, established);
    else if (!established)
        mgr_schedule(0, false);
    else
        mgr_stop_weavelet("the manager's control link closed");
}

/* k: 0 'W', 1 'D', 2 'P' (app_fd is the app's connection to host port `port`) */
static void mgr_dial_chan(int k, int app_fd, uint16_t port)
{
    char chan = k == 0 ? 'W' : k == 1 ? 'D' : 'P';
    struct shim_conn *c = conn_alloc();
    int fd = c ? socket(S.mgr_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) : -1;
    if (fd < 0) {
        shim_log(SHIM_LOG_WARN, "dial %c: %s", chan, c ? strerror(errno) : "too many connections");
        if (c) { /* never used: straight back to the free list */
            c->next = S.free_list;
            S.free_list = c;
        }
        if (k < 2)
            mgr_schedule(k, false);
        else
            close(app_fd);
        return;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = C_DIAL;
    c->chan = chan;
    c->deadline = now_ms() + SHIM_MGR_TIMEOUT_MS;
    snprintf(c->peer, sizeof c->peer, "the manager");
    side_attach(&c->side[0], fd);
    if (k == 2) {
        side_attach(&c->side[1], app_fd);
        c->port = port;
    }
    if (connect(fd, (const struct sockaddr *)&S.mgr_addr, S.mgr_addrlen) < 0 &&
        errno != EINPROGRESS) {
        conn_close(c, strerror(errno));
        return;
    }
    conn_update(c);
}

/* Connected: send the hello (40 bytes, then u16 length + weavelet id) in one go; a fresh
 * socket's send buffer always has room for it. */
static void dial_connected(struct shim_conn *c)
{
    int e = 0;
    socklen_t el = sizeof e;
    if (getsockopt(c->side[0].fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
        e = errno;
    if (e) {
        conn_close(c, strerror(e));
        return;
    }
    uint8_t h[SHIM_DIAL_HELLO_MAX];
    size_t idl = strlen(S.wid);
    wd_link_hello(h, c->chan, 0, cfg.token);
    h[40] = (uint8_t)(idl >> 8);
    h[41] = (uint8_t)idl;
    memcpy(h + 42, S.wid, idl);
    ssize_t n = send(c->side[0].fd, h, 42 + idl, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n != (ssize_t)(42 + idl)) {
        conn_close(c, n < 0 ? strerror(errno) : "short write of the hello");
        return;
    }
    c->state = C_ACK;
    conn_update(c);
}

static void mgr_dial(int k)
{
    mgr_dial_chan(k, -1, 0);
}

static void dial_ack(struct shim_conn *c)
{
    uint8_t b = 0;
    ssize_t n = recv(c->side[0].fd, &b, 1, 0); /* exactly one byte: RPC bytes may follow */
    if (n < 0 && again(errno))
        return;
    if (n != 1 || b != 1) {
        conn_close(c, n < 0 ? strerror(errno) : "the manager refused the link");
        return;
    }
    if (c->chan != 'P')
        S.dial_ms[c->chan == 'W' ? 0 : 1] = 0;
    S.auth_open++;
    S.ever_authed = true;
    c->state = C_LINK;
    c->deadline = 0;
    shim_log(SHIM_LOG_INFO, "link %c#%llu to the manager established", c->chan,
             (unsigned long long)c->seq);
    links_changed();
    if (c->chan == 'W') {
        w_connect(c);
        return;
    }
    if (c->chan == 'P') { /* the app's side is attached already: send the port, then relay */
        struct shim_buf *out = &c->buf[1];
        wd_put_be16(out->data + out->end, c->port);
        out->end += 2;
        out->used = true;
        conn_kick(c);
        return;
    }
    if (S.nwaiting > 0) {
        side_attach(&c->side[1], S.waiting[0]);
        memmove(S.waiting, S.waiting + 1, (size_t)--S.nwaiting * sizeof S.waiting[0]);
    }
    conn_kick(c);
}

/* The registration connection: health pushes (one byte, 1 or 2) in, EOF = the manager is
 * gone, and with it the deployment this weavelet belongs to. */
static void on_mgr(void)
{
    uint8_t b[16];
    ssize_t n = recv(S.mgr_fd, b, sizeof b, 0);
    if (n < 0 && again(errno))
        return;
    if (n > 0) {
        for (ssize_t i = 0; i < n; i++)
            if (b[i] == SHIM_HEALTH_SERVING || b[i] == SHIM_HEALTH_NOT_SERVING)
                S.pushed = b[i];
        health_update();
        return;
    }
    const char *why = n == 0 ? "closed" : strerror(errno);
    shim_log(SHIM_LOG_INFO, "registration link to the manager %s", why);
    (void)epoll_ctl(S.ep, EPOLL_CTL_DEL, S.mgr_fd, NULL);
    close(S.mgr_fd);
    S.mgr_fd = -1;
    S.auth_open--;
    mgr_stop_weavelet("lost the manager");
    links_changed();
}

static void on_side(struct shim_side *s, uint32_t ev)
{
    struct shim_conn *c = s->conn;
    if (c->dead || s->fd < 0)
        return;
    if (c->state == C_HELLO) {
        hello_read(c);
        return;
    }
    if (c->state == C_DIAL) {
        dial_connected(c);
        return;
    }
    if (c->state == C_ACK) {
        dial_ack(c);
        return;
    }
    if (s->connecting) {
        w_connect_done(c);
        return;
    }
    if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && (s->events & EPOLLIN))
        side_read(c, s->idx);
    if (!c->dead)
        conn_kick(c);
}

static void on_tcp_accept(void)
{
    for (int k = 0; k < 8; k++) {
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        int fd = accept4(S.tcp_fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == ECONNABORTED || errno == EINTR)
                continue;
            if (errno != EAGAIN)
                shim_log(SHIM_LOG_WARN, "accept: %s", strerror(errno));
            return;
        }
        if (S.pending >= SHIM_MAX_PENDING) {
            struct shim_conn *old = NULL;
            for (size_t i = 0; i < SHIM_MAX_CONNS; i++)
                if (conns[i].state == C_HELLO && !conns[i].dead &&
                    (!old || conns[i].seq < old->seq))
                    old = &conns[i];
            if (old)
                conn_close(old, "too many unauthenticated connections");
        }
        struct shim_conn *c = conn_alloc();
        if (!c) {
            shim_log(SHIM_LOG_WARN, "too many connections (%d): refusing one", SHIM_MAX_CONNS);
            close(fd);
            continue;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char ip[INET_ADDRSTRLEN] = "?";
        inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
        snprintf(c->peer, sizeof c->peer, "%s:%u", ip, (unsigned)ntohs(peer.sin_port));
        c->state = C_HELLO;
        c->deadline = now_ms() + SHIM_HANDSHAKE_MS;
        S.pending++;
        c->side[0].fd = fd;
        conn_update(c);
        shim_log(SHIM_LOG_DEBUG, "connection #%llu from %s", (unsigned long long)c->seq, c->peer);
    }
}

/* The weavelet dialed its deployer control address: pair with the oldest parked 'D' link. */
static void on_unix_accept(void)
{
    for (int k = 0; k < 8; k++) {
        int fd = accept4(S.unix_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == ECONNABORTED || errno == EINTR)
                continue;
            if (errno != EAGAIN)
                shim_log(SHIM_LOG_WARN, "accept deployer.sock: %s", strerror(errno));
            return;
        }
        struct shim_conn *d = oldest_parked('D');
        if (d) {
            side_attach(&d->side[1], fd);
            shim_log(SHIM_LOG_DEBUG, "link D#%llu paired with the weavelet",
                     (unsigned long long)d->seq);
            conn_kick(d);
            continue;
        }
        if (S.nwaiting == SHIM_MAX_WAITING) {
            shim_log(SHIM_LOG_WARN, "too many unpaired weavelet connections: dropping the oldest");
            close(S.waiting[0]);
            memmove(S.waiting, S.waiting + 1, (size_t)--S.nwaiting * sizeof S.waiting[0]);
        }
        S.waiting[S.nwaiting++] = fd;
        shim_log(SHIM_LOG_DEBUG, "weavelet connection waits for a D link");
    }
}

/* The app connected to localhost:PORT: pair with the oldest parked 'P' link, or wait for one. */
static void on_hostport_accept(struct hp_listener *l)
{
    for (int k = 0; k < 8; k++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == ECONNABORTED || errno == EINTR)
                continue;
            if (errno != EAGAIN)
                shim_log(SHIM_LOG_WARN, "accept on host port %u: %s", (unsigned)l->port,
                         strerror(errno));
            return;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (cfg.manager) { /* we dial the manager for each connection */
            mgr_dial_chan(2, fd, l->port);
            continue;
        }
        struct shim_conn *p = oldest_parked('P');
        if (p) {
            hp_pair(p, fd, l->port);
            continue;
        }
        if (S.nhp_waiting == SHIM_MAX_HP_WAITING) {
            shim_log(SHIM_LOG_WARN, "host port %u: too many connections wait for the deployer; "
                     "dropping the oldest", (unsigned)l->port);
            close(S.hp_waiting[0].fd);
            memmove(S.hp_waiting, S.hp_waiting + 1, (size_t)--S.nhp_waiting * sizeof S.hp_waiting[0]);
        }
        S.hp_waiting[S.nhp_waiting].fd = fd;
        S.hp_waiting[S.nhp_waiting++].port = l->port;
        shim_log(SHIM_LOG_DEBUG, "host port %u: connection waits for a P link", (unsigned)l->port);
    }
}

/* ---- the child -------------------------------------------------------------------------- */

static void on_child_exit(void)
{
    S.exit_at = now_ms() + SHIM_EXIT_GRACE_MS;
    S.orphan_at = S.kill_at = 0;
    if (S.tcp_fd >= 0) {
        close(S.tcp_fd);
        S.tcp_fd = -1;
    }
    if (S.unix_fd >= 0) {
        close(S.unix_fd);
        S.unix_fd = -1;
        (void)unlink(S.dsock_addr.sun_path);
    }
    while (S.nwaiting > 0)
        close(S.waiting[--S.nwaiting]);
    S.dial_at[0] = S.dial_at[1] = 0;
    for (size_t i = 0; i < SHIM_MAX_CONNS; i++) {
        struct shim_conn *c = &conns[i];
        if (c->state == C_HELLO || c->state == C_DIAL || c->state == C_ACK ||
            (c->state == C_LINK && c->side[1].fd < 0))
            conn_close(c, "the weavelet exited");
    }
    if (S.mgr_fd >= 0) { /* tell the manager how it ended: one byte, the exit status */
        uint8_t code = (uint8_t)S.exit_code;
        (void)send(S.mgr_fd, &code, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    health_update();
}

static void reap(void)
{
    int st;
    pid_t p;
    while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
        if (p != S.child || S.child_exited) {
            shim_log(SHIM_LOG_DEBUG, "reaped process %d", (int)p);
            continue;
        }
        S.child_exited = true;
        if (WIFEXITED(st))
            S.exit_code = WEXITSTATUS(st);
        else if (WIFSIGNALED(st))
            S.exit_code = 128 + WTERMSIG(st);
        else
            S.exit_code = 1;
        shim_log(SHIM_LOG_INFO, "weavelet %d exited with status %d", (int)p, S.exit_code);
        on_child_exit();
    }
}

static void on_signal(void)
{
    struct signalfd_siginfo si;
    while (read(S.sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        int sig = (int)si.ssi_signo;
        if (sig == SIGCHLD) {
            reap();
        } else if (sig == SIGTERM && cfg.drain_ms && !S.drain_at && !S.stopping &&
                   !S.child_exited) {
            /* a rolling update stops us once the next version serves: what is in flight here
             * finishes first (a second SIGTERM passes on at once) */
            shim_log(SHIM_LOG_INFO, "SIGTERM: the weavelet serves %u ms more, then stops",
                     cfg.drain_ms);
            S.drain_at = now_ms() + cfg.drain_ms;
        } else if (sig != SIGPIPE && !S.child_exited) {
            shim_log(SHIM_LOG_DEBUG, "forwarding signal %d", sig);
            if (sig == SIGTERM || sig == SIGINT) {
                S.drain_at = 0; /* the stop goes on now; any other signal leaves the drain on */
                S.stopping = true;
                S.orphan_at = 0;
                health_update();
            }
            kill_group(sig);
        }
    }
}

static pid_t spawn(char **argv)
{
    pid_t pid = fork();
    if (pid > 0)
        setpgid(pid, pid); /* parent too: no race with kill(-pid) */
    if (pid != 0)
        return pid;
    /* The weavelet starts with default dispositions (a shell that ran us in the background
     * left SIGINT ignored, and SIG_IGN survives exec) and the mask we were started with. */
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            (void)signal(sig, SIG_DFL);
    sigprocmask(SIG_SETMASK, &S.orig_mask, NULL);
    setpgid(0, 0);
    if (S.pipe_child >= 0) { /* the weavelet reads fd 3 and writes fd 4: one socket for both */
        int t = fcntl(S.pipe_child, F_DUPFD, 10);
        if (t < 0 || dup2(t, 3) < 0 || dup2(t, 4) < 0)
            _exit(126);
        close(t);
    }
    execvp(argv[0], argv);
    int e = errno;
    char msg[256];
    int n = snprintf(msg, sizeof msg, "weaver-docker-shim: exec %s: %s\n", argv[0], strerror(e));
    (void)!write(STDERR_FILENO, msg, n > 0 && (size_t)n < sizeof msg ? (size_t)n : 0);
    _exit(e == ENOENT || e == ENOTDIR ? 127 : 126);
}

/* ---- setup ------------------------------------------------------------------------------ */

/* The weavelet must not see the token: blank it in place (so /proc/1/environ does not show it
 * either), drop it from the environment the child inherits, and make us non-dumpable. */
static void hide_token(void)
{
    static const char key[] = "WEAVER_SHIM_TOKEN=";
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, key, sizeof key - 1) == 0)
            memset(*e + sizeof key - 1, 0, strlen(*e + sizeof key - 1));
    unsetenv("WEAVER_SHIM_TOKEN");
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

static void unix_path(struct sockaddr_un *a, const char *name)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    snprintf(a->sun_path, sizeof a->sun_path, "%s/%s", cfg.dir, name);
}

static void unlink_stale_socket(const char *path)
{
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        (void)unlink(path);
}

static void watch_fd(int fd, uint8_t *tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = tag};
    if (epoll_ctl(S.ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        shim_die("epoll_ctl: %s", strerror(errno));
}

static void setup_listeners(void)
{
    if (mkdir(cfg.dir, 0700) < 0 && errno != EEXIST)
        shim_die("mkdir %s: %s", cfg.dir, strerror(errno));
    unix_path(&S.ctl_addr, "control.sock");
    unix_path(&S.dsock_addr, "deployer.sock");
    snprintf(S.health_path, sizeof S.health_path, "%s/health", cfg.dir);
    snprintf(S.health_tmp, sizeof S.health_tmp, "%s/.health.tmp", cfg.dir);
    unlink_stale_socket(S.ctl_addr.sun_path); /* the weavelet will not bind over it */
    unlink_stale_socket(S.dsock_addr.sun_path);
    (void)unlink(S.health_path);

    S.unix_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (S.unix_fd < 0 ||
        bind(S.unix_fd, (const struct sockaddr *)&S.dsock_addr, sizeof S.dsock_addr) < 0 ||
        listen(S.unix_fd, 16) < 0)
        shim_die("listen %s: %s", S.dsock_addr.sun_path, strerror(errno));
    watch_fd(S.unix_fd, &tag_unix);

    if (!cfg.link) {
        shim_log(SHIM_LOG_DEBUG, "WEAVER_SHIM_TOKEN not set: no TCP link");
        return;
    }
    int one = 1;
    /* host ports: 127.0.0.1 always; ::1 where the container has IPv6 (Docker turns it off on
     * networks without IPv6) */
    for (size_t i = 0; i < cfg.nhost_ports; i++) {
        uint16_t port = cfg.host_ports[i];
        struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(port)};
        a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
        a6.sin6_addr = in6addr_loopback;
        for (int v6 = 0; v6 < 2; v6++) {
            int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0 && v6)
                continue;
            if (v6)
                (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
            (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (fd < 0 ||
                (v6 ? bind(fd, (const struct sockaddr *)&a6, sizeof a6)
                    : bind(fd, (const struct sockaddr *)&a4, sizeof a4)) < 0 ||
                listen(fd, 64) < 0) {
                int e = errno;
                if (fd >= 0)
                    close(fd);
                if (v6 && (e == EADDRNOTAVAIL || e == EAFNOSUPPORT))
                    continue;
                shim_die("listen on %s:%u (host_ports): %s", v6 ? "[::1]" : "127.0.0.1",
                         (unsigned)port, strerror(e));
            }
            hpl[nhpl] = (struct hp_listener){.kind = EV_HOSTPORT, .port = port, .fd = fd};
            watch_fd(fd, &hpl[nhpl].kind);
            nhpl++;
        }
    }
    if (cfg.manager)
        return; /* we dial the manager; nothing listens on TCP */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(cfg.port)};
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    S.tcp_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (S.tcp_fd < 0 || setsockopt(S.tcp_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(S.tcp_fd, (const struct sockaddr *)&a, sizeof a) < 0 || listen(S.tcp_fd, 16) < 0)
        shim_die("listen on TCP port %u: %s", (unsigned)cfg.port, strerror(errno));
    watch_fd(S.tcp_fd, &tag_tcp);
}

/* ---- manager mode: registration (before the weavelet exists) ----------------------------- */

/* Signals that arrive before there is a weavelet: a stop request ends us at once. */
static void pre_child_signals(void)
{
    struct signalfd_siginfo si;
    while (read(S.sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        int sig = (int)si.ssi_signo;
        if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP || sig == SIGQUIT) {
            shim_log(SHIM_LOG_INFO, "signal %d before the weavelet started: exiting", sig);
            exit(128 + sig);
        }
    }
}

/* Wait until fd (may be -1: just sleep) has events, the deadline passes (0), or a stop signal
 * arrives (exits). */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        struct pollfd p[2] = {{.fd = S.sigfd, .events = POLLIN}, {.fd = fd, .events = events}};
        int n = poll(p, fd >= 0 ? 2 : 1, left <= 0 ? 0 : left > 60000 ? 60000 : (int)left);
        if (n < 0 && errno != EINTR)
            shim_die("poll: %s", strerror(errno));
        if (n > 0 && p[0].revents)
            pre_child_signals();
        if (n > 0 && fd >= 0 && p[1].revents)
            return 1;
        if (now_ms() >= deadline)
            return 0;
    }
}

static int io_all(int fd, void *buf, size_t len, bool out, int64_t deadline)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = out ? send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT)
                        : recv(fd, p, len, MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n == 0)
            return -ECONNRESET;
        if (!again(errno))
            return -errno;
        if (!wait_fd(fd, out ? POLLOUT : POLLIN, deadline))
            return -ETIMEDOUT;
    }
    return 0;
}

/* Connect to one of the manager's addresses; -1 with why set. */
static int mgr_connect(const struct addrinfo *a, char *why, size_t whylen)
{
    int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, whylen, "socket: %s", strerror(errno));
        return -1;
    }
    int e = 0;
    if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
        e = errno;
        if (e == EINPROGRESS) {
            e = ETIMEDOUT;
            socklen_t el = sizeof e;
            if (wait_fd(fd, POLLOUT, now_ms() + SHIM_MGR_TIMEOUT_MS) &&
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
                e = errno;
        }
    }
    if (e) {
        snprintf(why, whylen, "connect: %s", strerror(e));
        close(fd);
        return -1;
    }
    return fd;
}

static char mgr_args[SHIM_MGR_ARGS_MAX + 1];

/* Register on a connected fd: send the 'A' hello, read the answer. Returns fd or -1 (closed). */
static int mgr_register_on(int fd, char *why, size_t whylen)
{
    /* our own address on the path to the manager: the one peers reach us at (the manager
     * may see a NAT address, e.g. behind a swarm VIP) */
    char ip[INET6_ADDRSTRLEN] = "";
    struct sockaddr_storage me;
    socklen_t ml = sizeof me;
    if (getsockname(fd, (struct sockaddr *)&me, &ml) == 0) {
        if (me.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&me)->sin_addr, ip, sizeof ip);
        else if (me.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&me)->sin6_addr, ip, sizeof ip);
    }
    uint8_t h[SHIM_HELLO_LEN + 2 + SHIM_GROUP_MAX + 2 + INET6_ADDRSTRLEN];
    size_t gl = strlen(cfg.group), il = strlen(ip), n = 0;
    wd_link_hello(h, WD_LINK_A, 0, cfg.token);
    n = SHIM_HELLO_LEN;
    h[n++] = (uint8_t)(gl >> 8);
    h[n++] = (uint8_t)gl;
    memcpy(h + n, cfg.group, gl);
    n += gl;
    h[n++] = (uint8_t)(il >> 8);
    h[n++] = (uint8_t)il;
    memcpy(h + n, ip, il);
    n += il;
    int64_t dl = now_ms() + SHIM_MGR_TIMEOUT_MS;
    uint8_t st = 0, l2[2], l4[4];
    int rc = io_all(fd, h, n, true, dl);
    if (rc == 0)
        rc = io_all(fd, &st, 1, false, dl);
    if (rc == 0 && st != 1) { /* refused: u16 length + reason */
        char msg[128] = "";
        size_t ml2 = 0;
        if (io_all(fd, l2, 2, false, dl) == 0) {
            ml2 = (size_t)l2[0] << 8 | l2[1];
            if (ml2 >= sizeof msg || io_all(fd, msg, ml2, false, dl) < 0)
                ml2 = 0;
        }
        msg[ml2] = '\0';
        snprintf(why, whylen, "refused: %s", ml2 ? msg : "no reason given");
        close(fd);
        return -1;
    }
    size_t idl = 0, al = 0;
    if (rc == 0 && (rc = io_all(fd, l2, 2, false, dl)) == 0) {
        idl = (size_t)l2[0] << 8 | l2[1];
        if (idl == 0 || idl > SHIM_MGR_ID_MAX)
            rc = -EPROTO;
    }
    if (rc == 0)
        rc = io_all(fd, S.wid, idl, false, dl);
    if (rc == 0 && (rc = io_all(fd, l4, 4, false, dl)) == 0) {
        al = (size_t)l4[0] << 24 | (size_t)l4[1] << 16 | (size_t)l4[2] << 8 | l4[3];
        if (al == 0 || al > SHIM_MGR_ARGS_MAX)
            rc = -EPROTO;
    }
    if (rc == 0)
        rc = io_all(fd, mgr_args, al, false, dl);
    if (rc < 0) {
        snprintf(why, whylen, "registration: %s",
                 rc == -EPROTO ? "malformed answer" : strerror(-rc));
        close(fd);
        return -1;
    }
    S.wid[idl] = '\0';
    mgr_args[al] = '\0';
    for (size_t i = 0; i < idl; i++)
        if (S.wid[i] <= ' ' || S.wid[i] > '~') {
            snprintf(why, whylen, "registration: malformed weavelet id");
            close(fd);
            return -1;
        }
    /* notice a manager (or its node) that vanished without closing the connection */
    int one = 1, idle = 15, intvl = 5, cnt = 3;
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    return fd;
}

/* One attempt over every address the manager's name has: the first that registers us wins.
 * During a Swarm rollover the name holds both versions' managers; the other version's refuses
 * our token, and we go on to ours. */
static int mgr_try(char *why, size_t whylen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int gr = getaddrinfo(cfg.mgr_host, cfg.mgr_port, &hints, &ai);
    if (gr != 0) {
        snprintf(why, whylen, "resolve %.60s: %s", cfg.mgr_host, gai_strerror(gr));
        return -1;
    }
    int fd = -1;
    snprintf(why, whylen, "no address");
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = mgr_connect(a, why, whylen);
        if (fd >= 0)
            fd = mgr_register_on(fd, why, whylen);
        if (fd >= 0) {
            memcpy(&S.mgr_addr, a->ai_addr, a->ai_addrlen);
            S.mgr_addrlen = a->ai_addrlen;
        }
    }
    freeaddrinfo(ai);
    return fd;
}

/* Register with the manager, retrying with backoff until it answers (it may start after us,
 * or restart). On success the weavelet's WEAVELET_ARGS is in the environment. */
static void mgr_register(void)
{
    int delay = 100;
    for (unsigned attempt = 1;; attempt++) {
        char why[320];
        int fd = mgr_try(why, sizeof why);
        if (fd >= 0) {
            S.mgr_fd = fd;
            if (setenv("WEAVELET_ARGS", mgr_args, 1) < 0)
                shim_die("setenv: %s", strerror(errno));
            shim_log(SHIM_LOG_INFO, "registered with the manager %s:%s as weavelet %s of %s",
                     cfg.mgr_host, cfg.mgr_port, S.wid, cfg.group);
            return;
        }
        if (attempt == 1 || attempt % 30 == 0)
            shim_log(attempt == 1 ? SHIM_LOG_INFO : SHIM_LOG_WARN,
                     "manager %s:%s: %s (attempt %u); retrying", cfg.mgr_host, cfg.mgr_port, why,
                     attempt);
        wait_fd(-1, 0, now_ms() + delay);
        delay = delay * 2 > SHIM_MGR_BACKOFF_MAX_MS ? SHIM_MGR_BACKOFF_MAX_MS : delay * 2;
    }
}

/* ---- the loop --------------------------------------------------------------------------- */

static int64_t earliest(int64_t a, int64_t b) { return !a ? b : !b ? a : a < b ? a : b; }

/* Fire due timers; return the next deadline (0 = none). */
static int64_t run_timers(int64_t now)
{
    int64_t next = 0;
    for (size_t i = 0; i < SHIM_MAX_CONNS; i++) {
        struct shim_conn *c = &conns[i];
        if (c->state == C_FREE || c->dead || !c->deadline)
            continue;
        if (now >= c->deadline) {
            if (c->state == C_HELLO) {
                conn_close(c, "no hello within 5 s");
                continue;
            }
            if (c->state == C_DIAL || c->state == C_ACK) {
                conn_close(c, "no answer within 5 s");
                continue;
            }
            w_connect(c);
            if (c->dead || !c->deadline)
                continue;
        }
        next = earliest(next, c->deadline);
    }
    if (S.orphan_at && now >= S.orphan_at) {
        shim_log(SHIM_LOG_WARN, "no deployer link for %u s: stopping the weavelet",
                 cfg.orphan_secs);
        S.orphan_at = 0;
        S.stopping = true;
        S.kill_at = now + SHIM_KILL_AFTER_MS;
        health_update();
        kill_group(SIGTERM);
    }
    if (S.drain_at && now >= S.drain_at) {
        S.drain_at = 0;
        if (!S.stopping && !S.child_exited) {
            S.stopping = true;
            S.orphan_at = 0;
            S.kill_at = now + SHIM_KILL_AFTER_MS;
            health_update();
            kill_group(SIGTERM);
        }
    }
    if (S.kill_at && now >= S.kill_at) {
        S.kill_at = 0;
        shim_log(SHIM_LOG_WARN, "the weavelet ignored SIGTERM: sending SIGKILL");
        kill_group(SIGKILL);
    }
    if (!S.ctl_seen && !S.child_exited && !cfg.pipes) {
        if (now >= S.probe_at) {
            struct stat st;
            if (stat(S.ctl_addr.sun_path, &st) == 0 && S_ISSOCK(st.st_mode))
                ctl_ready();
            S.probe_at = now + SHIM_PROBE_MS;
        }
        if (!S.ctl_seen)
            next = earliest(next, S.probe_at);
    }
    for (int k = 0; k < 2; k++) {
        if (S.dial_at[k] && now >= S.dial_at[k]) {
            S.dial_at[k] = 0;
            mgr_dial(k);
        }
        next = earliest(next, S.dial_at[k]);
    }
    next = earliest(next, S.orphan_at);
    next = earliest(next, S.kill_at);
    next = earliest(next, S.drain_at);
    if (S.child_exited)
        next = earliest(next, S.exit_at);
    return next;
}

/* After the weavelet exited: has everything it wrote reached the deployer? */
static bool all_flushed(void)
{
    for (size_t i = 0; i < SHIM_MAX_CONNS; i++) {
        const struct shim_conn *c = &conns[i];
        if (c->state == C_FREE || c->dead)
            continue;
        if (buf_len(&c->buf[1]) || (c->side[1].fd >= 0 && !c->side[1].eof))
            return false;
    }
    return true;
}

static void loop(void)
{
    struct epoll_event evs[32];
    for (;;) {
        int64_t now = now_ms();
        int64_t next = run_timers(now);
        conn_free_dead();
        if (S.child_exited && (all_flushed() || now >= S.exit_at))
            return;
        int timeout = -1;
        if (next)
            timeout = next <= now ? 0 : next - now > 60000 ? 60000 : (int)(next - now);
        int n = epoll_wait(S.ep, evs, (int)(sizeof evs / sizeof evs[0]), timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            shim_die("epoll_wait: %s", strerror(errno));
        }
        for (int i = 0; i < n; i++) {
            uint8_t kind = *(const uint8_t *)evs[i].data.ptr;
            if (kind == EV_SIGNAL)
                on_signal();
            else if (kind == EV_TCP_LISTEN && S.tcp_fd >= 0)
                on_tcp_accept();
            else if (kind == EV_UNIX_LISTEN && S.unix_fd >= 0)
                on_unix_accept();
            else if (kind == EV_SIDE)
                on_side(evs[i].data.ptr, evs[i].events);
            else if (kind == EV_MGR && S.mgr_fd >= 0)
                on_mgr();
            else if (kind == EV_HOSTPORT)
                on_hostport_accept(evs[i].data.ptr);
        }
        conn_free_dead();
    }
}

static void usage(FILE *f)
{
    fputs("usage: weaver-docker-shim [--] PROGRAM [ARGS...]\n"
          "       weaver-docker-shim --health | --version | --help\n"
          "environment: WEAVER_SHIM_TOKEN (64 hex chars; enables the TCP link),\n"
          "  WEAVER_SHIM_PORT (7071), WEAVER_SHIM_DIR (/tmp/weaver),\n"
          "  WEAVER_SHIM_ORPHAN_SECS (30; 0 = never), WEAVER_SHIM_LOG (debug|info|warn),\n"
          "  WEAVER_SHIM_MANAGER (HOST:PORT: register with a manager and dial it),\n"
          "  WEAVER_SHIM_GROUP (the colocation group to register as),\n"
          "  WEAVER_SHIM_HOST_PORTS (5432,3306: localhost ports relayed to the host),\n"
          "  WEAVER_SHIM_DRAIN_MS (0: after SIGTERM, serve this long before passing it on),\n"
          "  WEAVER_SHIM_PIPES (1: a weaver v0.20-v0.22 weavelet, on fds 3 and 4)\n",
          f);
}

int main(int argc, char **argv)
{
    if (shim_cfg_parse(&cfg, argc, argv, environ) < 0) {
        fprintf(stderr, "weaver-docker-shim: %s\n", cfg.err);
        return argc > 1 && strcmp(argv[1], "--health") == 0 ? 1 : SHIM_EXIT_SETUP;
    }
    switch (cfg.mode) {
    case SHIM_HEALTH:
        return health_main();
    case SHIM_VERSION:
        puts("weaver-docker-shim " SHIM_VERSION_STR);
        return 0;
    case SHIM_HELP:
        usage(stdout);
        return 0;
    case SHIM_RUN:
        break;
    }
    hide_token();

    /* Startup order: style.md 2.9. */
    sigset_t all;
    sigfillset(&all);
    static const int sync_sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS};
    for (size_t i = 0; i < sizeof sync_sigs / sizeof sync_sigs[0]; i++)
        sigdelset(&all, sync_sigs[i]);
    if (sigprocmask(SIG_SETMASK, &all, &S.orig_mask) < 0)
        shim_die("sigprocmask: %s", strerror(errno));
    if ((S.sigfd = signalfd(-1, &all, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
        shim_die("signalfd: %s", strerror(errno));
    if ((S.ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        shim_die("epoll_create1: %s", strerror(errno));
    if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
        shim_log(SHIM_LOG_WARN, "PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
    watch_fd(S.sigfd, &tag_signal);
    for (size_t i = SHIM_MAX_CONNS; i-- > 0;) {
        conns[i].next = S.free_list;
        S.free_list = &conns[i];
    }
    setup_listeners();
    if (cfg.manager)
        mgr_register(); /* blocks until the manager gave us WEAVELET_ARGS */

    if (cfg.pipes) {
        int sp[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
            shim_die("socketpair: %s", strerror(errno));
        (void)fcntl(sp[0], F_SETFL, fcntl(sp[0], F_GETFL) | O_NONBLOCK); /* ours only */
        S.pipe_fd = sp[0];
        S.pipe_child = sp[1];
        unsetenv("WEAVER_SHIM_PIPES");
        if (setenv("ENVELOPE_TO_WEAVELET_FD", "3", 1) < 0 ||
            setenv("WEAVELET_TO_ENVELOPE_FD", "4", 1) < 0)
            shim_die("setenv: %s", strerror(errno));
    }
    S.child = spawn(argv + cfg.prog);
    if (S.child < 0)
        shim_die("fork: %s", strerror(errno));
    if (S.pipe_child >= 0) {
        close(S.pipe_child);
        S.pipe_child = -1;
    }
    shim_log(SHIM_LOG_DEBUG, "started %s as %d", argv[cfg.prog], (int)S.child);
    health_update();
    if (cfg.manager) {
        watch_fd(S.mgr_fd, &tag_mgr);
        S.auth_open++; /* the registration link counts as a link */
        S.ever_authed = true;
        mgr_schedule(0, true);
        mgr_schedule(1, true);
    }
    loop();
    reap(); /* anything that exited meanwhile */
    return S.exit_code;
}
