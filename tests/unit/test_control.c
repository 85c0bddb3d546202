/* Unit tests for engine/deploy/control.c: the request parser on its own, then a real server on a
 * loop (its own thread) in a temporary directory, called with wd_control_call and raw sockets. */
#include "engine/deploy/control.h"
#include "engine/base/error.h"
#include "engine/base/loop.h"
#include "engine/base/util.h"
#include "tests/unit/wd_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- parser ---- */

/* Parse a heap copy of exactly n bytes, so ASan sees any read past the end. */
static ssize_t parse_n(const char *s, size_t n, struct wd_control_req *req, struct wd_buf *tmp)
{
    char *copy = xmalloc(n);
    memcpy(copy, s, n);
    ssize_t r = wd_control_parse(copy, n, req, tmp);
    free(copy);
    return r;
}

static ssize_t parse_s(const char *s)
{
    struct wd_control_req req;
    struct wd_buf tmp = {0};
    ssize_t r = parse_n(s, strlen(s), &req, &tmp);
    wd_buf_free(&tmp);
    return r;
}

static void test_parse_complete(void **state)
{
    (void)state;
    const char *s = "GET /v1/status HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n";
    struct wd_control_req req;
    struct wd_buf tmp = {0};
    assert_int_equal(wd_control_parse(s, strlen(s), &req, &tmp), (ssize_t)strlen(s));
    assert_string_equal(req.method, "GET");
    assert_string_equal(req.path, "/v1/status");
    assert_string_equal(req.query, "");
    assert_int_equal(req.body_len, 0);
    assert_non_null(req.body);
    assert_false(req.trusted);
    /* bare LF line endings and leading empty lines are accepted */
    const char *lf = "\r\n\nDELETE /x HTTP/1.0\nA: b\n\n";
    assert_int_equal(wd_control_parse(lf, strlen(lf), &req, &tmp), (ssize_t)strlen(lf));
    assert_string_equal(req.method, "DELETE");
    assert_string_equal(req.path, "/x");
    wd_buf_free(&tmp);
}

static void test_parse_partial_every_byte(void **state)
{
    (void)state;
    const char *s = "POST /v1/scale?dry=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    "Content-Length: 34\r\n\r\n{\"group\":\"shop.Cart\",\"replicas\":3}";
    size_t n = strlen(s);
    struct wd_control_req req;
    struct wd_buf tmp = {0};
    for (size_t i = 0; i < n; i++)
        assert_int_equal(parse_n(s, i, &req, &tmp), 0);
    assert_int_equal(parse_n(s, n, &req, &tmp), (ssize_t)n);
    wd_buf_free(&tmp);
}

static void test_parse_body_pipelined(void **state)
{
    (void)state;
    const char *s = "POST /v1/stop HTTP/1.1\r\ncontent-length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n";
    struct wd_control_req req;
    struct wd_buf tmp = {0};
    ssize_t r = wd_control_parse(s, strlen(s), &req, &tmp);
    assert_int_equal(r, (ssize_t)(strlen(s) - strlen("GET / HTTP/1.1\r\n\r\n")));
    assert_string_equal(req.method, "POST");
    assert_int_equal(req.body_len, 5);
    assert_memory_equal(req.body, "hello", 5);
    assert_int_equal(wd_control_parse(s + r, strlen(s + r), &req, &tmp), (ssize_t)strlen(s + r));
    assert_string_equal(req.method, "GET");
    assert_string_equal(req.path, "/");
    /* equal duplicates are fine */
    assert_true(parse_s("PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx") > 0);
    wd_buf_free(&tmp);
}

static void test_parse_query_decode(void **state)
{
    (void)state;
    struct wd_control_req req;
    struct wd_buf tmp = {0};
    const char *s = "GET /v1/a%2Fb%20c%c3%a9?x=1&y=%20&z=a?b HTTP/1.1\r\n\r\n";
    assert_true(wd_control_parse(s, strlen(s), &req, &tmp) > 0);
    assert_string_equal(req.path, "/v1/a/b c\xc3\xa9");
    assert_string_equal(req.query, "x=1&y=%20&z=a?b");
    const char *abs = "GET http://localhost/v1/logs?follow=1 HTTP/1.1\r\n\r\n";
    assert_true(wd_control_parse(abs, strlen(abs), &req, &tmp) > 0);
    assert_string_equal(req.path, "/v1/logs");
    assert_string_equal(req.query, "follow=1");
    const char *bare = "GET http://localhost HTTP/1.1\r\n\r\n";
    assert_true(wd_control_parse(bare, strlen(bare), &req, &tmp) > 0);
    assert_string_equal(req.path, "/");
    const char *emptyq = "GET /m? HTTP/1.1\r\n\r\n";
    assert_true(wd_control_parse(emptyq, strlen(emptyq), &req, &tmp) > 0);
    assert_string_equal(req.path, "/m");
    assert_string_equal(req.query, "");
    wd_buf_free(&tmp);
}

static void test_parse_bad(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        ssize_t want;
    } cases[] = {
        {"GET /x%zz HTTP/1.1\r\n\r\n", -400},
        {"GET /x%2 HTTP/1.1\r\n\r\n", -400},
        {"GET /x% HTTP/1.1\r\n\r\n", -400},
        {"GET /a%00b HTTP/1.1\r\n\r\n", -400},
        {"GET /\r\n\r\n", -400},
        {"GET / \r\n\r\n", -400},
        {"GET  / HTTP/1.1\r\n\r\n", -400},
        {" GET / HTTP/1.1\r\n\r\n", -400},
        {"G(T / HTTP/1.1\r\n\r\n", -400},
        {"GET x HTTP/1.1\r\n\r\n", -400},
        {"GET / HTTP/1.1 \r\n\r\n", -400},
        {"GET / HTTP/1.10\r\n\r\n", -400},
        {"GET / HTTPS/1.1\r\n\r\n", -400},
        {"GET / HTTP/2.0\r\n\r\n", -505},
        {"GET / HTTP/0.9\r\n\r\n", -505},
        {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nName : v\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\n: v\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", -400},
        {"GET /\x01 HTTP/1.1\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy", -400},
        {"POST / HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n", -413},
        {"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", -413},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", -501},
        {"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", -501},
    };
    for (size_t i = 0; i < WD_ARRAY_LEN(cases); i++) {
        ssize_t r = parse_s(cases[i].in);
        if (r != cases[i].want)
            fail_msg("case %zu (%s): got %zd, want %zd", i, cases[i].in, r, cases[i].want);
    }
    /* a NUL inside a header value */
    static const char nul[] = "GET / HTTP/1.1\r\nA: b\0c\r\n\r\n";
    struct wd_control_req req;
    struct wd_buf tmp = {0};
    assert_int_equal(parse_n(nul, sizeof nul - 1, &req, &tmp), -400);
    wd_buf_free(&tmp);
}

static void test_parse_limits(void **state)
{
    (void)state;
    struct wd_control_req req;
    struct wd_buf tmp = {0};
    size_t big = WD_CONTROL_MAX_HEAD + 100;
    char *b = xmalloc(big);
    memset(b, 'a', big);
    memcpy(b, "GET / HTTP/1.1\r\nX: ", 19);
    /* no end of head yet, but already too long */
    assert_int_equal(parse_n(b, WD_CONTROL_MAX_HEAD, &req, &tmp), 0);
    assert_int_equal(parse_n(b, WD_CONTROL_MAX_HEAD + 1, &req, &tmp), -413);
    memcpy(b + big - 4, "\r\n\r\n", 4);
    assert_int_equal(parse_n(b, big, &req, &tmp), -413);
    free(b);
    /* the largest body: 0 until it is all there */
    const char *h = "POST / HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n";
    size_t hl = strlen(h), n = hl + WD_CONTROL_MAX_BODY;
    b = xmalloc(n);
    memcpy(b, h, hl);
    memset(b + hl, 'x', WD_CONTROL_MAX_BODY);
    assert_int_equal(parse_n(b, n - 1, &req, &tmp), 0);
    assert_int_equal(parse_n(b, n, &req, &tmp), (ssize_t)n);
    assert_int_equal(req.body_len, WD_CONTROL_MAX_BODY);
    free(b);
    /* a scratch buffer with a cap too small for the path */
    struct wd_buf small = {.max = 4};
    const char *s = "GET /long/path HTTP/1.1\r\n\r\n";
    assert_int_equal(wd_control_parse(s, strlen(s), &req, &small), -413);
    wd_buf_free(&small);
    wd_buf_free(&tmp);
}

/* ---- server ---- */

struct srv {
    struct wd_loop *loop;
    struct wd_control *ctl;
    pthread_t th;
    char dir[64];
    char sock[100];
    /* touched on the loop thread only; read after the join */
    int calls;
    int deferred;            /* answers given from a timer */
    struct wd_control_exchange *held; /* /v1/never: answered at stop */
    size_t nconns_at_stop;
};

static struct srv *S;

/* No cmocka assertion off the main thread: it would jump into the main thread's stack. */
static void *loop_main(void *arg)
{
    struct srv *s = arg;
    struct wd_error *err = NULL;
    (void)wd_loop_run(s->loop, &err);
    wd_err_free(&err);
    return NULL;
}

static void later_fire(struct wd_timer *t, void *arg)
{
    (void)t;
    S->deferred++;
    wd_control_respond(arg, 200, "text/plain", "later", 5);
}

static void handler(void *arg, struct wd_control_exchange *x, const struct wd_control_req *req)
{
    struct srv *s = arg;
    s->calls++;
    if (strcmp(req->path, "/v1/echo") == 0) {
        char *b = xasprintf("{\"m\":\"%s\",\"p\":\"%s\",\"q\":\"%s\",\"t\":%d,\"b\":\"%.*s\"}",
                            req->method, req->path, req->query, req->trusted ? 1 : 0,
                            (int)req->body_len, (const char *)req->body);
        wd_control_respond(x, 200, NULL, b, strlen(b));
        free(b);
    } else if (strcmp(req->path, "/v1/later") == 0) {
        wd_timer_add(s->loop, 50, later_fire, x);
    } else if (strcmp(req->path, "/v1/slow") == 0) {
        wd_timer_add(s->loop, 300, later_fire, x);
    } else if (strcmp(req->path, "/v1/never") == 0) {
        s->held = x;
    } else if (strcmp(req->path, "/v1/fds") == 0) { /* two pipe ends, as a handover passes */
        int p[2];
        if (pipe(p) == 0) {
            static const char b[] = "{\"n\":2}";
            wd_control_respond_fds(x, 200, NULL, b, sizeof b - 1, p, 2);
            close(p[0]); /* the answer holds its own copies */
            close(p[1]);
        }
    } else {
        static const char nf[] = "{\"error\":\"no such route\"}";
        wd_control_respond(x, 404, NULL, nf, sizeof nf - 1);
    }
}

static void srv_start(struct srv *s)
{
    memset(s, 0, sizeof *s);
    S = s;
    snprintf(s->dir, sizeof s->dir, "/tmp/wdctl-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    snprintf(s->sock, sizeof s->sock, "%s/control-1.sock", s->dir);
    struct wd_error *err = NULL;
    assert_int_equal(wd_loop_new(NULL, 0, NULL, NULL, &s->loop, &err), 0);
    int r = wd_control_listen_unix(s->loop, s->sock, handler, s, &s->ctl, &err);
    if (r < 0)
        fail_msg("listen: %s", err->msg);
}

static void srv_run(struct srv *s)
{
    assert_int_equal(pthread_create(&s->th, NULL, loop_main, s), 0);
}

static void stop_cb(void *arg)
{
    struct srv *s = arg;
    s->nconns_at_stop = wd_control_nconns(s->ctl);
    wd_loop_stop(s->loop);
}

static void srv_stop(struct srv *s)
{
    wd_loop_post(s->loop, stop_cb, s);
    pthread_join(s->th, NULL);
    wd_control_free(s->ctl);
    struct stat st;
    assert_int_equal(stat(s->sock, &st), -1); /* unlinked */
    if (s->held)
        wd_control_respond(s->held, 200, NULL, "{}", 2); /* dropped: the server is gone */
    wd_loop_drain(s->loop); /* timers still due answer into the void */
    wd_loop_free(s->loop);
    rmdir(s->dir);
    S = NULL;
}

static int dial_unix(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void send_all(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        assert_true(w > 0);
        s += w;
        n -= (size_t)w;
    }
}

/* Read one whole answer (head + Content-Length body) from fd into out (NUL-terminated).
 * Returns its status, or 0 on EOF before any byte. Leftover bytes stay in *rest. */
static int read_answer(int fd, struct wd_buf *rest, char **out)
{
    for (;;) {
        if (rest->len > 0) {
            const char *h = (const char *)rest->data;
            const char *e = strstr(h, "\r\n\r\n");
            if (e != NULL) {
                size_t hl = (size_t)(e - h) + 4;
                const char *cl = strstr(h, "Content-Length: ");
                assert_non_null(cl);
                size_t blen = (size_t)strtoul(cl + 16, NULL, 10);
                if (rest->len >= hl + blen) {
                    int st = (int)strtol(h + 9, NULL, 10);
                    *out = xstrndup(h, hl + blen);
                    wd_buf_consume(rest, hl + blen);
                    return st;
                }
            }
        }
        char b[4096];
        ssize_t n = recv(fd, b, sizeof b, 0);
        if (n <= 0) {
            assert_int_equal(rest->len, 0);
            return 0;
        }
        assert_int_equal(wd_buf_append(rest, b, (size_t)n), 0);
    }
}

static bool at_eof(int fd)
{
    char b[64];
    return recv(fd, b, sizeof b, 0) == 0;
}

static void call_ok(const char *sock, const char *method, const char *path, const char *body,
                    int want_status, const char *want_body)
{
    struct wd_error *err = NULL;
    struct wd_buf resp = {0};
    int st = 0;
    int r = wd_control_call(sock, method, path, body, body ? strlen(body) : 0, 5000, &st, &resp,
                            &err);
    if (r < 0)
        fail_msg("call %s %s: %s", method, path, err->msg);
    assert_int_equal(st, want_status);
    if (want_body)
        assert_string_equal((const char *)resp.data, want_body);
    wd_buf_free(&resp);
}

static void test_server_basic(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s);
    struct stat st;
    assert_int_equal(stat(s.sock, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    srv_run(&s);
    call_ok(s.sock, "POST", "/v1/echo?a=1", "{\"x\":1}", 200,
            "{\"m\":\"POST\",\"p\":\"/v1/echo\",\"q\":\"a=1\",\"t\":1,\"b\":\"{\"x\":1}\"}");
    call_ok(s.sock, "GET", "/v1/%65cho", NULL, 200,
            "{\"m\":\"GET\",\"p\":\"/v1/echo\",\"q\":\"\",\"t\":1,\"b\":\"\"}");
    call_ok(s.sock, "GET", "/nope", NULL, 404, "{\"error\":\"no such route\"}");
    /* a bad request gets its status and the connection closes */
    int fd = dial_unix(s.sock);
    send_all(fd, "GET / HTTP/2.0\r\n\r\n");
    struct wd_buf rest = {0};
    char *a = NULL;
    assert_int_equal(read_answer(fd, &rest, &a), 505);
    assert_non_null(strstr(a, "Connection: close\r\n"));
    assert_non_null(strstr(a, "Content-Type: application/json\r\n"));
    free(a);
    assert_true(at_eof(fd));
    close(fd);
    wd_buf_free(&rest);
    /* Expect: 100-continue gets its interim answer before the body is sent */
    fd = dial_unix(s.sock);
    send_all(fd, "POST /v1/echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    char b[64];
    ssize_t n = recv(fd, b, sizeof b - 1, 0);
    assert_true(n > 0);
    b[n] = 0;
    assert_string_equal(b, "HTTP/1.1 100 Continue\r\n\r\n");
    send_all(fd, "hi");
    assert_int_equal(read_answer(fd, &rest, &a), 200);
    assert_non_null(strstr(a, "\"b\":\"hi\""));
    free(a);
    close(fd);
    wd_buf_free(&rest);
    srv_stop(&s);
    assert_int_equal(s.calls, 4);
}

static void test_deferred(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s);
    srv_run(&s);
    call_ok(s.sock, "GET", "/v1/later", NULL, 200, "later");
    call_ok(s.sock, "GET", "/v1/later", NULL, 200, "later");
    srv_stop(&s);
    assert_int_equal(s.deferred, 2);
}

static void test_keepalive(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s);
    srv_run(&s);
    int fd = dial_unix(s.sock);
    struct wd_buf rest = {0};
    char *a = NULL;
    send_all(fd, "GET /v1/echo?n=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(read_answer(fd, &rest, &a), 200);
    assert_null(strstr(a, "Connection: close"));
    assert_non_null(strstr(a, "\"q\":\"n=1\""));
    free(a);
    send_all(fd, "GET /v1/later HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(read_answer(fd, &rest, &a), 200);
    assert_non_null(strstr(a, "\r\n\r\nlater"));
    free(a);
    /* pipelined: answers come in order, the deferred one first */
    send_all(fd, "GET /v1/later HTTP/1.1\r\n\r\nGET /v1/echo?n=2 HTTP/1.1\r\n\r\n"
                 "GET /v1/echo?n=3 HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_int_equal(read_answer(fd, &rest, &a), 200);
    assert_non_null(strstr(a, "\r\n\r\nlater"));
    free(a);
    assert_int_equal(read_answer(fd, &rest, &a), 200);
    assert_non_null(strstr(a, "\"q\":\"n=2\""));
    free(a);
    assert_int_equal(read_answer(fd, &rest, &a), 200);
    assert_non_null(strstr(a, "\"q\":\"n=3\""));
    assert_non_null(strstr(a, "Connection: close\r\n"));
    free(a);
    assert_true(at_eof(fd));
    close(fd);
    /* HTTP/1.0 closes unless asked to keep alive */
    fd = dial_unix(s.sock);
    send_all(fd, "GET /v1/echo HTTP/1.0\r\n\r\n");
    assert_int_equal(read_answer(fd, &rest, &a), 200);
    free(a);
    assert_true(at_eof(fd));
    close(fd);
    wd_buf_free(&rest);
    srv_stop(&s);
    assert_int_equal(s.calls, 6);
}

static void test_client_gone(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s);
    srv_run(&s);
    int fd = dial_unix(s.sock);
    send_all(fd, "GET /v1/slow HTTP/1.1\r\n\r\n");
    close(fd); /* before the answer (300 ms) */
    /* and one still pending when the server goes: answered from wd_loop_drain after free */
    fd = dial_unix(s.sock);
    send_all(fd, "GET /v1/slow HTTP/1.1\r\n\r\n");
    poll(NULL, 0, 100);
    int fd2 = dial_unix(s.sock); /* and one held by the handler, answered after the free */
    send_all(fd2, "GET /v1/never HTTP/1.1\r\n\r\n");
    poll(NULL, 0, 50);
    call_ok(s.sock, "GET", "/v1/later", NULL, 200, "later");
    poll(NULL, 0, 300); /* the first /v1/slow fires into a gone connection */
    srv_stop(&s);
    close(fd);
    close(fd2);
    assert_int_equal(s.calls, 4);
    assert_int_equal(s.deferred, 3); /* later, and both slow ones (the first dropped) */
    assert_int_equal(s.nconns_at_stop, 2);
}

static void test_idle_and_max_conns(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s);
    wd_control_set_idle_ms(s.ctl, 200);
    srv_run(&s);
    int fd = dial_unix(s.sock);
    send_all(fd, "GET /v1/echo HT");
    int64_t t0 = wd_now_ms();
    assert_true(at_eof(fd)); /* closed for idling with a partial request */
    assert_true(wd_now_ms() - t0 < 5000);
    close(fd);
    srv_stop(&s);

    srv_start(&s);
    srv_run(&s);
    int fds[WD_CONTROL_MAX_CONNS];
    struct wd_buf rest = {0};
    char *a = NULL;
    for (int i = 0; i < WD_CONTROL_MAX_CONNS; i++) {
        fds[i] = dial_unix(s.sock);
        send_all(fds[i], "GET /v1/echo HTTP/1.1\r\n\r\n");
        assert_int_equal(read_answer(fds[i], &rest, &a), 200); /* accepted and served */
        free(a);
    }
    fd = dial_unix(s.sock); /* the 65th: closed at accept */
    assert_true(at_eof(fd));
    close(fd);
    close(fds[0]);
    poll(NULL, 0, 100); /* a slot is free again */
    fd = dial_unix(s.sock);
    send_all(fd, "GET /v1/echo HTTP/1.1\r\n\r\n");
    assert_int_equal(read_answer(fd, &rest, &a), 200);
    free(a);
    close(fd);
    for (int i = 1; i < WD_CONTROL_MAX_CONNS; i++)
        close(fds[i]);
    wd_buf_free(&rest);
    srv_stop(&s);
}

/* A client that sends requests but never reads: the answers queue up, the loop goes on. */
static void test_slow_reader(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s);
    srv_run(&s);
    int fd = dial_unix(s.sock);
    char *big = xmalloc(64 * 1024);
    memset(big, 'x', 64 * 1024 - 1);
    big[64 * 1024 - 1] = 0;
    char *req = xasprintf("POST /v1/echo HTTP/1.1\r\nContent-Length: %zu\r\n\r\n%s",
                          strlen(big), big);
    for (int i = 0; i < 20; i++)
        send_all(fd, req); /* 1.3 MB of echoes that nobody reads yet */
    call_ok(s.sock, "GET", "/v1/echo", NULL, 200, NULL); /* the loop still serves others */
    struct wd_buf rest = {0};
    char *a = NULL;
    for (int i = 0; i < 20; i++) {
        assert_int_equal(read_answer(fd, &rest, &a), 200);
        free(a);
    }
    close(fd);
    wd_buf_free(&rest);
    free(req);
    free(big);
    srv_stop(&s);
}

static void test_tcp(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s);
    struct wd_error *err = NULL;
    char *bound = NULL;
    int r = wd_control_listen_tcp(s.ctl, "127.0.0.1:0", &bound, &err);
    if (r < 0)
        fail_msg("listen tcp: %s", err->msg);
    assert_true(strncmp(bound, "127.0.0.1:", 10) == 0);
    int port = (int)strtol(bound + 10, NULL, 10);
    assert_true(port > 0);
    srv_run(&s);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons((uint16_t)port)};
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    send_all(fd, "GET /v1/echo HTTP/1.1\r\nHost: x\r\n\r\n");
    struct wd_buf rest = {0};
    char *a = NULL;
    assert_int_equal(read_answer(fd, &rest, &a), 200);
    assert_non_null(strstr(a, "\"t\":0"));
    free(a);
    close(fd);
    wd_buf_free(&rest);

    /* the port in use: an error naming the address */
    char *again = NULL;
    assert_int_equal(wd_control_listen_tcp(s.ctl, bound, &again, &err), -EADDRINUSE);
    assert_non_null(strstr(err->msg, bound));
    wd_err_free(&err);
    assert_int_equal(wd_control_listen_tcp(s.ctl, "nonsense", &again, &err), -EINVAL);
    wd_err_free(&err);
    free(bound);
    srv_stop(&s);
}

static void test_stale_and_live(void **state)
{
    (void)state;
    struct srv s;
    memset(&s, 0, sizeof s);
    char dir[] = "/tmp/wdctl-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = xasprintf("%s/control-2.sock", dir);
    /* a stale socket: bound, then its owner died */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
    struct wd_error *err = NULL;
    int st = 0;
    struct wd_buf resp = {0};
    assert_int_equal(wd_control_call(path, "GET", "/", NULL, 0, 1000, &st, &resp, &err),
                     -ECONNREFUSED);
    wd_err_free(&err);

    struct wd_loop *loop = NULL;
    assert_int_equal(wd_loop_new(NULL, 0, NULL, NULL, &loop, &err), 0);
    s.loop = loop;
    S = &s;
    struct wd_control *c1 = NULL, *c2 = NULL;
    int r = wd_control_listen_unix(loop, path, handler, &s, &c1, &err);
    if (r < 0)
        fail_msg("stale socket not replaced: %s", err->msg);
    /* a live one is not stolen */
    assert_int_equal(wd_control_listen_unix(loop, path, handler, &s, &c2, &err), -EADDRINUSE);
    assert_non_null(strstr(err->msg, path));
    wd_err_free(&err);
    s.ctl = c1;
    snprintf(s.sock, sizeof s.sock, "%s", path);
    snprintf(s.dir, sizeof s.dir, "%s", dir);
    srv_run(&s);
    call_ok(path, "GET", "/v1/echo", NULL, 200, NULL);
    srv_stop(&s); /* also rmdir: only the socket was in there (no leftover temp dir) */
    struct stat sb;
    assert_int_equal(stat(dir, &sb), -1);

    /* not a socket: left alone */
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(wd_write_file_atomic(path, "x", 1, &err), 0);
    assert_int_equal(wd_loop_new(NULL, 0, NULL, NULL, &loop, &err), 0);
    assert_int_equal(wd_control_listen_unix(loop, path, handler, &s, &c2, &err), -EEXIST);
    wd_err_free(&err);
    assert_int_equal(stat(path, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    wd_loop_free(loop);
    unlink(path);
    rmdir(dir);
    free(path);
    S = NULL;
}


/* Descriptors ride on an answer (a rollout's handover): the client gets working copies. */
static void test_pass_fds(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s);
    srv_run(&s);
    struct wd_error *err = NULL;
    struct wd_buf resp = {0};
    int st = 0, fds[4] = {-1, -1, -1, -1};
    size_t n = 0;
    int r = wd_control_call_fds(s.sock, "POST", "/v1/fds", NULL, 0, 5000, &st, &resp, fds, 4, &n,
                                &err);
    if (r < 0)
        fail_msg("call: %s", err->msg);
    assert_int_equal(st, 200);
    assert_int_equal(n, 2);
    assert_string_equal((const char *)resp.data, "{\"n\":2}");
    assert_int_equal(write(fds[1], "q", 1), 1); /* the pipe works across the two processes' fds */
    char c = 0;
    assert_int_equal(read(fds[0], &c, 1), 1);
    assert_int_equal(c, 'q');
    close(fds[0]);
    close(fds[1]);
    wd_buf_free(&resp);
    /* a plain call to the same route closes what it is not asked to keep */
    call_ok(s.sock, "POST", "/v1/fds", NULL, 200, "{\"n\":2}");
    srv_stop(&s);
}

static void test_call_errors(void **state)
{
    (void)state;
    struct wd_error *err = NULL;
    struct wd_buf resp = {0};
    int st = 0;
    assert_int_equal(
        wd_control_call("/nonexistent/x.sock", "GET", "/", NULL, 0, 1000, &st, &resp, &err),
        -ENOENT);
    assert_non_null(strstr(err->msg, "/nonexistent/x.sock"));
    wd_err_free(&err);
    assert_int_equal(wd_control_call("/tmp/x.sock", "GET", "no slash", NULL, 0, 1000, &st, &resp,
                                     &err),
                     -EINVAL);
    wd_err_free(&err);
    assert_int_equal(wd_control_call("/tmp/x.sock", "GE T", "/", NULL, 0, 1000, &st, &resp, &err),
                     -EINVAL);
    wd_err_free(&err);

    struct srv s;
    srv_start(&s);
    srv_run(&s);
    int64_t t0 = wd_now_ms();
    assert_int_equal(wd_control_call(s.sock, "GET", "/v1/never", NULL, 0, 200, &st, &resp, &err),
                     -ETIMEDOUT);
    assert_true(wd_now_ms() - t0 < 2000);
    wd_err_free(&err);
    /* a body over the caller's cap */
    struct wd_buf small = {.max = 4};
    assert_int_equal(wd_control_call(s.sock, "GET", "/v1/echo", NULL, 0, 2000, &st, &small, &err),
                     -EMSGSIZE);
    wd_err_free(&err);
    wd_buf_free(&small);
    srv_stop(&s);
    assert_int_equal(resp.len, 0);
}

/* Another uid: 403 and closed. Needs root, to become someone else in a child. */
static void test_foreign_uid(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        skip();
        return;
    }
    struct srv s;
    srv_start(&s);
    /* let the child reach the socket at all: the peer check is what is tested */
    assert_int_equal(chmod(s.dir, 0755), 0);
    assert_int_equal(chmod(s.sock, 0666), 0);
    srv_run(&s);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgid(65534) < 0 || setuid(65534) < 0)
            _exit(3);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", s.sock);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
            _exit(4);
        static const char rq[] = "GET /v1/echo HTTP/1.1\r\n\r\n";
        (void)!send(fd, rq, sizeof rq - 1, MSG_NOSIGNAL);
        char b[512];
        size_t got = 0;
        ssize_t n;
        while (got < sizeof b - 1 && (n = recv(fd, b + got, sizeof b - 1 - got, 0)) > 0)
            got += (size_t)n;
        b[got] = 0;
        const char *e = strstr(b, "\r\n\r\n"), *cl = strstr(b, "Content-Length: ");
        if (strncmp(b, "HTTP/1.1 403 ", 13) != 0 || e == NULL || cl == NULL)
            _exit(5);
        _exit(strtoul(cl + 16, NULL, 10) == strlen(e + 4) ? 0 : 6);
    }
    int wst = 0;
    assert_int_equal(waitpid(pid, &wst, 0), pid);
    assert_true(WIFEXITED(wst));
    assert_int_equal(WEXITSTATUS(wst), 0);
    srv_stop(&s);
    assert_int_equal(s.calls, 0);
}

/* Query values: percent-decoded, '+' a space, the right key only, bad escapes refused. */
static void test_query(void **state)
{
    (void)state;
    char *v = wd_control_query("a=1&filter=x%20y+z&log=shop.Cart", "filter");
    assert_string_equal(v, "x y z");
    free(v);
    v = wd_control_query("a=1&filter=x", "a");
    assert_string_equal(v, "1");
    free(v);
    v = wd_control_query("type=cpu&duration=3s", "duration");
    assert_string_equal(v, "3s");
    free(v);
    assert_null(wd_control_query("afilter=1&filterx=2", "filter"));
    assert_null(wd_control_query("filter=%zz", "filter"));
    assert_null(wd_control_query("filter=%00", "filter"));
    assert_null(wd_control_query("", "filter"));
    v = wd_control_query("filter=", "filter");
    assert_string_equal(v, ""); /* present, empty */
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_parse_complete),
        cmocka_unit_test(test_parse_partial_every_byte),
        cmocka_unit_test(test_parse_body_pipelined),
        cmocka_unit_test(test_parse_query_decode),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_parse_limits),
        cmocka_unit_test(test_server_basic),
        cmocka_unit_test(test_deferred),
        cmocka_unit_test(test_keepalive),
        cmocka_unit_test(test_client_gone),
        cmocka_unit_test(test_idle_and_max_conns),
        cmocka_unit_test(test_slow_reader),
        cmocka_unit_test(test_tcp),
        cmocka_unit_test(test_stale_and_live),
        cmocka_unit_test(test_call_errors),
        cmocka_unit_test(test_pass_fds),
        cmocka_unit_test(test_foreign_uid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
