/* Unit tests for engine/docker/http.c: header parsing, escaping, and the transport error mapping
 * against a canned HTTP server on a private unix socket (no engine needed). */
#include "engine/base/error.h"
#include "engine/docker/http.h"
#include "engine/base/util.h"
#include "tests/unit/wd_test.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void test_header_value(void **state)
{
    (void)state;
    const char *l = "api-version:  1.41 \r\n";
    char *v = wd_http_header_value(l, strlen(l), "Api-Version");
    assert_string_equal(v, "1.41");
    free(v);
    assert_null(wd_http_header_value(l, strlen(l), "Api-Versio"));
    assert_null(wd_http_header_value(l, strlen(l), "Server"));
    const char *e = "Server:\r\n";
    v = wd_http_header_value(e, strlen(e), "Server");
    assert_string_equal(v, "");
    free(v);
}

static void test_escape(void **state)
{
    (void)state;
    char *s = wd_http_escape("{\"label\":[\"a=b c\"]}/~-._");
    assert_string_equal(s, "%7B%22label%22%3A%5B%22a%3Db%20c%22%5D%7D%2F~-._");
    free(s);
    s = wd_http_escape("");
    assert_string_equal(s, "");
    free(s);
}

static void test_path_too_long(void **state)
{
    (void)state;
    char p[200];
    memset(p, 'a', sizeof p - 1);
    p[0] = '/';
    p[sizeof p - 1] = 0;
    struct wd_http *h = NULL;
    struct wd_error *err = NULL;
    assert_int_equal(wd_http_new(p, &h, &err), -ENAMETOOLONG);
    assert_non_null(strstr(err->msg, "107"));
    wd_err_free(&err);
}

/* ---- a canned server ---- */
struct server {
    char path[108];
    int fd;
    const char *reply; /* written after the request headers, then the connection closes */
    size_t reply_len;
    pthread_t thr;
};

static void *serve_one(void *arg)
{
    struct server *s = arg;
    int c = accept(s->fd, NULL, NULL);
    if (c < 0)
        return NULL;
    char buf[8192];
    size_t got = 0;
    while (got < sizeof buf - 1) {
        ssize_t n = read(c, buf + got, sizeof buf - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = 0;
        if (strstr(buf, "\r\n\r\n"))
            break;
    }
    if (s->reply_len)
        (void)!write(c, s->reply, s->reply_len);
    close(c);
    return NULL;
}

static void server_start(struct server *s, const char *reply)
{
    static int seq;
    snprintf(s->path, sizeof s->path, "/tmp/wd-test-http-%d-%d.sock", (int)getpid(), seq++);
    unlink(s->path);
    s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", s->path);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->fd, 4), 0);
    s->reply = reply;
    s->reply_len = strlen(reply);
    assert_int_equal(pthread_create(&s->thr, NULL, serve_one, s), 0);
}

static void server_stop(struct server *s)
{
    shutdown(s->fd, SHUT_RDWR);
    pthread_join(s->thr, NULL);
    close(s->fd);
    unlink(s->path);
}

static int do_get(struct server *s, const char *reply, struct wd_http_response *rs,
                  wd_http_sink_fn sink, void *arg, size_t max_body, struct wd_error **err)
{
    server_start(s, reply);
    struct wd_http *h = NULL;
    assert_int_equal(wd_http_new(s->path, &h, err), 0);
    struct wd_http_request rq = {.method = "GET",
                                 .path = "/_ping",
                                 .timeout_ms = 5000,
                                 .sink = sink,
                                 .sink_arg = arg,
                                 .max_body = max_body};
    int rc = wd_http_do(h, &rq, rs, err);
    wd_http_free(h);
    server_stop(s);
    return rc;
}

static void test_ok_reply(void **state)
{
    (void)state;
    struct server s;
    struct wd_http_response rs = {0};
    struct wd_error *err = NULL;
    const char *r = "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nServer: Docker/20.10.24 (linux)\r\n"
                    "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "1\r\nO\r\n1\r\nK\r\n0\r\n\r\n";
    assert_int_equal(do_get(&s, r, &rs, NULL, NULL, 0, &err), 0);
    assert_int_equal(rs.status, 200);
    assert_string_equal(rs.api_version, "1.41");
    assert_string_equal(rs.server, "Docker/20.10.24 (linux)");
    assert_null(rs.libpod_api_version);
    assert_string_equal((char *)rs.body.data, "OK");
    wd_http_response_free(&rs);
}

static void test_body_cap(void **state)
{
    (void)state;
    struct server s;
    struct wd_http_response rs = {0};
    struct wd_error *err = NULL;
    const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789";
    assert_int_equal(do_get(&s, r, &rs, NULL, NULL, 4, &err), -EMSGSIZE);
    wd_err_free(&err);
    wd_http_response_free(&rs);
}

static void test_garbage(void **state)
{
    (void)state;
    struct server s;
    struct wd_http_response rs = {0};
    struct wd_error *err = NULL;
    assert_int_equal(do_get(&s, "SSH-2.0-OpenSSH\r\n\r\n", &rs, NULL, NULL, 0, &err), -EPROTO);
    wd_err_free(&err);
    wd_http_response_free(&rs);
    /* closes without a byte */
    struct wd_http_response rs2 = {0};
    assert_int_equal(do_get(&s, "", &rs2, NULL, NULL, 0, &err), -ECONNRESET);
    wd_err_free(&err);
    wd_http_response_free(&rs2);
}

static void test_closed_mid_body(void **state)
{
    (void)state;
    struct server s;
    struct wd_http_response rs = {0};
    struct wd_error *err = NULL;
    const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial";
    assert_int_equal(do_get(&s, r, &rs, NULL, NULL, 0, &err), -ECONNRESET);
    assert_non_null(strstr(err->msg, "closed mid-request"));
    wd_err_free(&err);
    wd_http_response_free(&rs);
}

static int refuse(void *arg, const uint8_t *data, size_t len)
{
    (void)data, (void)len;
    (*(int *)arg)++;
    return -ENOSPC;
}

static void test_sink_abort_and_error_bodies(void **state)
{
    (void)state;
    struct server s;
    struct wd_http_response rs = {0};
    struct wd_error *err = NULL;
    int calls = 0;
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    assert_int_equal(do_get(&s, ok, &rs, refuse, &calls, 0, &err), -ENOSPC);
    assert_int_equal(calls, 1);
    wd_err_free(&err);
    wd_http_response_free(&rs);
    /* error statuses are buffered, never streamed to the sink */
    struct wd_http_response rs2 = {0};
    calls = 0;
    const char *nf =
        "HTTP/1.1 404 Not Found\r\nContent-Length: 26\r\n\r\n{\"message\":\"no such x\"}\n\n\n";
    assert_int_equal(do_get(&s, nf, &rs2, refuse, &calls, 0, &err), 0);
    assert_int_equal(rs2.status, 404);
    assert_int_equal(calls, 0);
    assert_non_null(strstr((char *)rs2.body.data, "no such x"));
    wd_http_response_free(&rs2);
}

static void test_no_socket(void **state)
{
    (void)state;
    struct wd_http *h = NULL;
    struct wd_error *err = NULL;
    assert_int_equal(wd_http_new("/tmp/wd-test-http-does-not-exist.sock", &h, &err), 0);
    struct wd_http_request rq = {.method = "GET", .path = "/_ping", .timeout_ms = 2000};
    struct wd_http_response rs = {0};
    assert_int_equal(wd_http_do(h, &rq, &rs, &err), -ENOENT);
    wd_err_free(&err);
    wd_http_response_free(&rs);
    wd_http_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_value),    cmocka_unit_test(test_escape),
        cmocka_unit_test(test_path_too_long),   cmocka_unit_test(test_ok_reply),
        cmocka_unit_test(test_body_cap),        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_closed_mid_body), cmocka_unit_test(test_sink_abort_and_error_bodies),
        cmocka_unit_test(test_no_socket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
