/* Unit tests for engine/deploy/proxy.c, the listener relay, on loopback sockets (no engine needed):
 * a megabyte each way through its 64 KiB buffers, half-closes passed on in both directions,
 * bytes a client sends before the backend has accepted, many connections at once, and a
 * refusal while there is no backend. The relay's loop runs on a thread of its own. */
#include "engine/base/error.h"
#include "engine/base/loop.h"
#include "engine/deploy/proxy.h"
#include "engine/base/util.h"
#include "tests/unit/wd_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BIG (1024 * 1024 + 123)

struct rig {
    struct wd_loop *loop;
    struct wd_proxy *proxy;
    pthread_t loop_th;
    int loop_rc;
    int bfd; /* the backend's listening socket */
    int bport;
};

/* No cmocka assertion off the main thread: it would jump into the main thread's stack. */
static void *loop_main(void *arg)
{
    struct rig *g = arg;
    struct wd_error *err = NULL;
    g->loop_rc = wd_loop_run(g->loop, &err);
    wd_err_free(&err);
    return NULL;
}

static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 128), 0);
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    *port = ntohs(sa.sin_port);
    return fd;
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons((uint16_t)port)};
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void rig_start_split(struct rig *g, bool backend, const char *remote, unsigned pm);
static void rig_start(struct rig *g, bool backend) { rig_start_split(g, backend, NULL, 0); }

/* With a split to @remote for @pm of 1000 connections (set before the loop runs). */
static void rig_start_split(struct rig *g, bool backend, const char *remote, unsigned pm)
{
    struct wd_error *err = NULL;
    memset(g, 0, sizeof *g);
    assert_int_equal(wd_loop_new(NULL, 0, NULL, NULL, &g->loop, &err), 0);
    assert_int_equal(wd_proxy_new(g->loop, "t", "127.0.0.1:0", &g->proxy, &err), 0);
    g->bfd = -1;
    if (backend) {
        g->bfd = listen_any(&g->bport);
        char addr[64];
        snprintf(addr, sizeof addr, "127.0.0.1:%d", g->bport);
        wd_proxy_add_backend(g->proxy, addr, g);
        assert_int_equal(wd_proxy_nbackends(g->proxy), 1);
    }
    if (remote)
        assert_int_equal(wd_proxy_set_split(g->proxy, remote, pm), 0);
    assert_int_equal(pthread_create(&g->loop_th, NULL, loop_main, g), 0);
}

static void stop(void *arg) { wd_loop_stop(arg); }

static void rig_stop(struct rig *g)
{
    wd_loop_post(g->loop, stop, g->loop);
    pthread_join(g->loop_th, NULL);
    assert_int_equal(g->loop_rc, 0);
    wd_proxy_free(g->proxy); /* frees connections still open */
    wd_loop_drain(g->loop);
    wd_loop_free(g->loop);
    if (g->bfd >= 0)
        close(g->bfd);
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(i * 31 + seed + (i >> 9));
}

/* Read until EOF; returns the count, or -1 on an error, a timeout or more than n bytes. */
static ssize_t read_all(int fd, uint8_t *b, size_t n)
{
    size_t got = 0;
    for (;;) {
        uint8_t extra;
        ssize_t r = got < n ? recv(fd, b + got, n - got, 0) : recv(fd, &extra, 1, 0);
        if (r == 0)
            return (ssize_t)got;
        if (r < 0 || got == n)
            return -1;
        got += (size_t)r;
    }
}

static bool write_all(int fd, const uint8_t *b, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        b += w;
        n -= (size_t)w;
    }
    return true;
}

struct peer { /* the backend side of one connection: read all, then answer all, then close */
    int fd;
    ssize_t got;
    bool same; /* it read what the client sent */
};

static void *backend_one(void *arg)
{
    struct peer *pe = arg;
    uint8_t *in = xmalloc(BIG), *out = xmalloc(BIG);
    pe->got = read_all(pe->fd, in, BIG);
    fill(out, BIG, 3);
    pe->same = pe->got == BIG && memcmp(in, out, BIG) == 0;
    if (pe->same) {
        fill(out, BIG, 7);
        write_all(pe->fd, out, BIG);
    }
    shutdown(pe->fd, SHUT_WR);
    free(in);
    free(out);
    return NULL;
}

/* A megabyte each way, each side reading only after the other's EOF: the relay must apply
 * back-pressure through its full buffers, pass both half-closes on and end the pair. */
static void test_big_both_ways(void **state)
{
    (void)state;
    struct rig g;
    rig_start(&g, true);
    int c = dial(wd_proxy_port(g.proxy));
    struct peer pe = {.fd = accept4(g.bfd, NULL, NULL, SOCK_CLOEXEC)};
    assert_true(pe.fd >= 0);
    pthread_t th;
    pthread_create(&th, NULL, backend_one, &pe);
    uint8_t *buf = xmalloc(BIG);
    fill(buf, BIG, 3);
    assert_true(write_all(c, buf, BIG));
    shutdown(c, SHUT_WR);
    memset(buf, 0, BIG);
    assert_int_equal(read_all(c, buf, BIG), BIG);
    pthread_join(th, NULL);
    assert_int_equal(pe.got, BIG);
    assert_true(pe.same);
    uint8_t *want = xmalloc(BIG);
    fill(want, BIG, 7);
    assert_memory_equal(buf, want, BIG);
    close(c);
    close(pe.fd);
    free(buf);
    free(want);
    rig_stop(&g);
}

/* The client speaks first and closes its side before the backend has even accepted; the
 * backend answers after the EOF reached it. */
static void test_early_bytes_and_eof(void **state)
{
    (void)state;
    struct rig g;
    rig_start(&g, true);
    int c = dial(wd_proxy_port(g.proxy));
    assert_true(write_all(c, (const uint8_t *)"hello", 5));
    shutdown(c, SHUT_WR);
    int b = accept4(g.bfd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(b >= 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(b, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    uint8_t in[16];
    assert_int_equal(read_all(b, in, sizeof in), 5);
    assert_memory_equal(in, "hello", 5);
    assert_true(write_all(b, (const uint8_t *)"world", 5));
    close(b);
    assert_int_equal(read_all(c, in, sizeof in), 5);
    assert_memory_equal(in, "world", 5);
    close(c);
    rig_stop(&g);
}

/* 64 connections open at once, each a request and an answer in turns (keep-alive style),
 * then closed by the client: every answer comes back on its own connection. */
static void test_many_request_response(void **state)
{
    (void)state;
    enum { N = 64, ROUNDS = 20 };
    struct rig g;
    rig_start(&g, true);
    int cl[N], be[N];
    for (int i = 0; i < N; i++) {
        cl[i] = dial(wd_proxy_port(g.proxy));
        be[i] = accept4(g.bfd, NULL, NULL, SOCK_CLOEXEC);
        assert_true(be[i] >= 0);
        struct timeval tv = {.tv_sec = 10};
        setsockopt(be[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    /* accept order may differ from dial order: pair them by a first message */
    int peer_of[N];
    for (int i = 0; i < N; i++) {
        uint8_t id = (uint8_t)i;
        assert_true(write_all(cl[i], &id, 1));
    }
    for (int k = 0; k < N; k++) {
        uint8_t id;
        assert_int_equal(recv(be[k], &id, 1, 0), 1);
        peer_of[id] = be[k];
    }
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < N; i++) {
            char m[32];
            int n = snprintf(m, sizeof m, "req %d %d", i, r);
            assert_true(write_all(cl[i], (const uint8_t *)m, (size_t)n));
        }
        for (int i = 0; i < N; i++) {
            char m[32], want[32];
            int n = snprintf(want, sizeof want, "req %d %d", i, r);
            ssize_t got = 0;
            while (got < n) {
                ssize_t x = recv(peer_of[i], m + got, (size_t)(n - got), 0);
                assert_true(x > 0);
                got += x;
            }
            assert_memory_equal(m, want, (size_t)n);
            m[0] = 'R';
            assert_true(write_all(peer_of[i], (const uint8_t *)m, (size_t)n));
        }
        for (int i = 0; i < N; i++) {
            char m[32], want[32];
            int n = snprintf(want, sizeof want, "Req %d %d", i, r);
            ssize_t got = 0;
            while (got < n) {
                ssize_t x = recv(cl[i], m + got, (size_t)(n - got), 0);
                assert_true(x > 0);
                got += x;
            }
            assert_memory_equal(m, want, (size_t)n);
        }
    }
    for (int i = 0; i < N; i++) {
        close(cl[i]);
        uint8_t x;
        assert_int_equal(recv(peer_of[i], &x, 1, 0), 0); /* the client's close reached it */
        close(peer_of[i]);
    }
    rig_stop(&g);
}

/* No backend yet: a connection is closed at once rather than left hanging. */
static void test_no_backend_refuses(void **state)
{
    (void)state;
    struct rig g;
    rig_start(&g, false);
    int c = dial(wd_proxy_port(g.proxy));
    uint8_t x;
    ssize_t r = recv(c, &x, 1, 0);
    assert_true(r == 0 || (r < 0 && errno == ECONNRESET));
    close(c);
    rig_stop(&g);
}

/* wd_proxy_free with connections still open closes them (ASan and valgrind see no leak). */
static void test_free_with_open_connections(void **state)
{
    (void)state;
    struct rig g;
    rig_start(&g, true);
    int c = dial(wd_proxy_port(g.proxy));
    assert_true(write_all(c, (const uint8_t *)"x", 1));
    int b = accept4(g.bfd, NULL, NULL, SOCK_CLOEXEC);
    uint8_t x;
    assert_int_equal(recv(b, &x, 1, 0), 1);
    rig_stop(&g);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t r = recv(c, &x, 1, 0);
    assert_true(r == 0 || (r < 0 && errno == ECONNRESET));
    close(c);
    close(b);
}


/* Which of two listening sockets gets the next connection (10 s at most): 0, 1, or -1. */
static int which_accepts(int a, int b, int *fd)
{
    struct pollfd pf[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
    if (poll(pf, 2, 10000) <= 0)
        return -1;
    int k = (pf[0].revents & POLLIN) ? 0 : 1;
    *fd = accept4(k ? b : a, NULL, NULL, SOCK_CLOEXEC);
    return *fd >= 0 ? k : -1;
}

/* A rollout's split: 250 of 1000 new connections go to the remote (the next version), spread
 * evenly: of 40 connections one after another, exactly 10; the rest to our backend. */
static void test_split_share(void **state)
{
    (void)state;
    int rport = 0;
    int rfd = listen_any(&rport);
    char remote[64];
    snprintf(remote, sizeof remote, "127.0.0.1:%d", rport);
    struct rig g;
    rig_start_split(&g, true, remote, 250);
    int n_remote = 0, n_local = 0;
    for (int i = 0; i < 40; i++) {
        int c = dial(wd_proxy_port(g.proxy));
        assert_true(write_all(c, (const uint8_t *)"x", 1));
        int b = -1;
        int k = which_accepts(g.bfd, rfd, &b);
        assert_true(k >= 0);
        if (k)
            n_remote++;
        else
            n_local++;
        uint8_t x;
        assert_int_equal(recv(b, &x, 1, 0), 1);
        close(b);
        close(c);
    }
    assert_int_equal(n_remote, 10);
    assert_int_equal(n_local, 30);
    rig_stop(&g);
    close(rfd);
}

/* A remote that refuses (the next version's deployer is gone): our backend serves every
 * connection, and the proxy counts the refusals. */
static void test_split_remote_refused(void **state)
{
    (void)state;
    int rport = 0;
    int rfd = listen_any(&rport);
    close(rfd); /* nothing listens there now */
    char remote[64];
    snprintf(remote, sizeof remote, "127.0.0.1:%d", rport);
    struct rig g;
    rig_start_split(&g, true, remote, 1000);
    for (int i = 0; i < 5; i++) {
        int c = dial(wd_proxy_port(g.proxy));
        assert_true(write_all(c, (const uint8_t *)"y", 1));
        int b = accept4(g.bfd, NULL, NULL, SOCK_CLOEXEC);
        assert_true(b >= 0);
        uint8_t x;
        assert_int_equal(recv(b, &x, 1, 0), 1);
        assert_int_equal(x, 'y');
        close(b);
        close(c);
    }
    uint64_t sent = 0, failed = 0; /* settled: every connection reached our backend */
    wd_proxy_split_stats(g.proxy, &sent, &failed);
    assert_int_equal(sent, 5);
    assert_int_equal(failed, 5);
    rig_stop(&g);
}

struct handoff {
    struct wd_loop *loop;
    struct wd_proxy *a, *b;
    int bport; /* b's backend */
    int wfd;
};

/* On the loop thread: a second proxy (the next version's) takes over the first's socket. */
static void do_handoff(void *arg)
{
    struct handoff *h = arg;
    struct wd_error *err = NULL;
    if (wd_proxy_new(h->loop, "b", "127.0.0.1:0", &h->b, &err) == 0) {
        char addr[64];
        snprintf(addr, sizeof addr, "127.0.0.1:%d", h->bport);
        wd_proxy_add_backend(h->b, addr, h);
        /* a copy, as SCM_RIGHTS gives it; the old one then stops accepting on its own */
        wd_proxy_adopt_listener(h->b, fcntl(wd_proxy_listener_fd(h->a), F_DUPFD_CLOEXEC, 0));
        wd_proxy_close_listeners(h->a);
    }
    wd_err_free(&err);
    (void)!write(h->wfd, "k", 1);
}

/* The handover of a rollout: the listening socket moves to another proxy; a client that
 * connects after it reaches the new proxy's backend, at the same port, and none is lost. */
static void test_take_and_adopt(void **state)
{
    (void)state;
    struct rig g;
    rig_start(&g, true);
    int port = wd_proxy_port(g.proxy);
    struct handoff h = {.loop = g.loop, .a = g.proxy};
    int b2 = listen_any(&h.bport);
    int p[2];
    assert_int_equal(pipe(p), 0);
    h.wfd = p[1];
    wd_loop_post(g.loop, do_handoff, &h);
    char k;
    assert_int_equal(read(p[0], &k, 1), 1);
    assert_non_null(h.b);
    assert_int_equal(wd_proxy_port(h.b), port);
    assert_int_equal(wd_proxy_listener_fd(g.proxy), -1); /* closed: given away */
    for (int i = 0; i < 3; i++) {
        int c = dial(port);
        assert_true(write_all(c, (const uint8_t *)"z", 1));
        int b = -1;
        assert_int_equal(which_accepts(g.bfd, b2, &b), 1);
        uint8_t x;
        assert_int_equal(recv(b, &x, 1, 0), 1);
        close(b);
        close(c);
    }
    wd_loop_post(g.loop, stop, g.loop);
    pthread_join(g.loop_th, NULL);
    wd_proxy_free(h.b);
    wd_proxy_free(g.proxy);
    wd_loop_drain(g.loop);
    wd_loop_free(g.loop);
    close(g.bfd);
    close(b2);
    close(p[0]);
    close(p[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_big_both_ways),
        cmocka_unit_test(test_early_bytes_and_eof),
        cmocka_unit_test(test_many_request_response),
        cmocka_unit_test(test_no_backend_refuses),
        cmocka_unit_test(test_free_with_open_connections),
        cmocka_unit_test(test_split_share),
        cmocka_unit_test(test_split_remote_refused),
        cmocka_unit_test(test_take_and_adopt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
