/* engine/deploy/control.c - HTTP/1.1 for the control API on the loop thread, and its client.
 *
 * One connection serves its requests one at a time, in order (pipelined requests wait in its
 * input buffer). A request goes to the handler as an exchange; the answer may come later, so
 * the connection keeps reading only to notice the client leaving: EOF while a request is with
 * the handler means the client is gone (a CLI call that timed out), and the connection is freed
 * at once so that such calls cannot use up the 64 slots. A half-closing client therefore gets
 * only the answers given before its EOF was seen; HTTP clients do not half-close.
 *
 * Reentrancy: a handler may respond at once, later, or respond to another connection's
 * exchange, and may call wd_control_free. Every entry from the loop or from a respond counts
 * in c->depth; a free while depth > 0 closes the listeners at once and frees the rest when the
 * outermost entry returns. A connection is freed only by code working on it, never under its
 * own handler (a respond from inside the handler only queues the answer). */
#include "engine/deploy/control.h"
#include "engine/base/link.h"
#include "engine/base/log.h"
#include "engine/deploy/proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#define IN_MAX (WD_CONTROL_MAX_HEAD + WD_CONTROL_MAX_BODY) /* stop reading beyond this */
#define OUT_HIGH (1024 * 1024) /* queued answers before pipelined requests wait */
#define CALL_MAX_BODY (256u << 20)

/* ---- parsing ---- */

/* What the server needs beyond struct wd_control_req. */
struct meta {
    size_t head_len; /* set once the head is complete, even while the body is not */
    bool expect_continue;
    bool close; /* no keep-alive after this request */
    bool head_method;
};

static bool is_tchar(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return true;
    return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static bool eq_ci(const char *p, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(p, lit, n) == 0;
}

/* The index just past the first empty line (LF or CRLF endings), or 0 if none yet. */
static size_t head_end(const char *b, size_t len, size_t from)
{
    for (size_t i = from; i < len; i++) {
        if (b[i] != '\n')
            continue;
        if (i + 1 < len && b[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && b[i + 1] == '\r' && b[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* The line at *pos (before its end, *end); its text without CR/LF is [*pos, eol). */
static bool next_line(const char *b, size_t end, size_t *pos, const char **line, size_t *n)
{
    const char *nl = memchr(b + *pos, '\n', end - *pos);
    if (nl == NULL)
        return false;
    *line = b + *pos;
    *n = (size_t)(nl - *line);
    if (*n > 0 && (*line)[*n - 1] == '\r')
        (*n)--;
    *pos = (size_t)(nl - b) + 1;
    return true;
}

/* Decimal without sign or spaces: 0, or -1 bad, or -2 over max. */
static int parse_len(const char *v, size_t n, uint64_t max, uint64_t *out)
{
    if (n == 0)
        return -1;
    uint64_t x = 0;
    bool big = false;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        if (!big)
            x = x * 10 + (uint64_t)(v[i] - '0');
        if (x > max)
            big = true;
    }
    if (big)
        return -2;
    *out = x;
    return 0;
}

/* "close" / "keep-alive" in a comma-separated Connection header. */
static void connection_tokens(const char *v, size_t n, bool *want_close, bool *keep)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
            i++;
        if (eq_ci(v + s, i - s, "close"))
            *want_close = true;
        else if (eq_ci(v + s, i - s, "keep-alive"))
            *keep = true;
    }
}

/* Percent-decode [p, p+n) into out (n+1 bytes). Returns the length, or -1 for a bad escape or
 * a NUL (it would cut the C string short). */
static ssize_t pct_decode(const char *p, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = wd_hex_digit(p[i + 1]), lo = wd_hex_digit(p[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            ch = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        out[o++] = (char)ch;
    }
    out[o] = 0;
    return (ssize_t)o;
}

char *wd_control_query(const char *query, const char *key)
{
    size_t klen = strlen(key);
    for (const char *p = query; p && *p;) {
        const char *end = strchr(p, '&');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            char *raw = xstrndup(p + klen + 1, n - klen - 1);
            for (char *q = raw; *q; q++) /* a form's spaces */
                if (*q == '+')
                    *q = ' ';
            char *out = xmalloc(strlen(raw) + 1);
            if (pct_decode(raw, strlen(raw), out) < 0) {
                free(out);
                out = NULL;
            }
            free(raw);
            return out;
        }
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

static ssize_t parse(const char *buf, size_t len, struct wd_control_req *req, struct wd_buf *tmp,
                     struct meta *m)
{
    memset(m, 0, sizeof *m);
    size_t start = 0; /* RFC 9112 2.2: ignore empty lines before the request line */
    while (start < len && (buf[start] == '\r' || buf[start] == '\n'))
        start++;
    size_t hend = head_end(buf, len, start);
    if (hend == 0)
        return len > WD_CONTROL_MAX_HEAD ? -413 : 0;
    if (hend > WD_CONTROL_MAX_HEAD)
        return -413;

    /* request line: METHOD SP target SP HTTP/1.x */
    size_t pos = start;
    const char *line;
    size_t n;
    if (!next_line(buf, hend, &pos, &line, &n))
        return -400;
    const char *sp1 = memchr(line, ' ', n);
    if (sp1 == NULL || sp1 == line)
        return -400;
    size_t mlen = (size_t)(sp1 - line);
    for (size_t i = 0; i < mlen; i++)
        if (!is_tchar((unsigned char)line[i]))
            return -400;
    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', (size_t)(line + n - target));
    if (sp2 == NULL || sp2 == target)
        return -400;
    size_t tlen = (size_t)(sp2 - target);
    for (size_t i = 0; i < tlen; i++)
        if ((unsigned char)target[i] <= 0x20 || (unsigned char)target[i] >= 0x7f)
            return -400;
    const char *ver = sp2 + 1;
    size_t vlen = (size_t)(line + n - ver);
    if (vlen < 5 || memcmp(ver, "HTTP/", 5) != 0)
        return -400;
    if (vlen != 8 || ver[5] < '0' || ver[5] > '9' || ver[6] != '.' || ver[7] < '0' ||
        ver[7] > '9')
        return -400;
    if (ver[5] != '1')
        return -505;
    bool http10 = ver[7] == '0';

    /* headers */
    bool te = false, want_close = false, keep = false, have_cl = false, cl_big = false;
    uint64_t cl = 0;
    for (;;) {
        if (!next_line(buf, hend, &pos, &line, &n))
            return -400;
        if (n == 0)
            break;
        if (line[0] == ' ' || line[0] == '\t')
            return -400; /* obsolete line folding */
        const char *colon = memchr(line, ':', n);
        if (colon == NULL || colon == line)
            return -400;
        size_t nlen = (size_t)(colon - line);
        for (size_t i = 0; i < nlen; i++)
            if (!is_tchar((unsigned char)line[i]))
                return -400; /* also whitespace before the colon */
        const char *v = colon + 1, *vend = line + n;
        while (v < vend && (*v == ' ' || *v == '\t'))
            v++;
        while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
            vend--;
        size_t vl = (size_t)(vend - v);
        for (size_t i = 0; i < vl; i++) {
            unsigned char ch = (unsigned char)v[i];
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                return -400;
        }
        if (eq_ci(line, nlen, "content-length")) {
            uint64_t x = 0;
            int r = parse_len(v, vl, WD_CONTROL_MAX_BODY, &x);
            if (r == -1 || (have_cl && !cl_big && (r == -2 || x != cl)) || (cl_big && r == 0))
                return -400; /* unreadable, or two that disagree */
            have_cl = true;
            if (r == -2)
                cl_big = true;
            else
                cl = x;
        } else if (eq_ci(line, nlen, "transfer-encoding")) {
            te = true;
        } else if (eq_ci(line, nlen, "connection")) {
            connection_tokens(v, vl, &want_close, &keep);
        } else if (eq_ci(line, nlen, "expect")) {
            if (eq_ci(v, vl, "100-continue"))
                m->expect_continue = true;
        }
    }
    if (te)
        return -501; /* our clients send Content-Length; chunked bodies are not worth a parser */
    if (cl_big)
        return -413;

    /* target: origin form, or absolute form whose authority we ignore */
    const char *p = target, *tend = target + tlen;
    if (*p != '/') {
        size_t skip = tlen >= 7 && strncasecmp(p, "http://", 7) == 0    ? 7
                      : tlen >= 8 && strncasecmp(p, "https://", 8) == 0 ? 8
                                                                        : 0;
        if (skip == 0)
            return -400;
        p += skip;
        while (p < tend && *p != '/' && *p != '?')
            p++;
    }
    const char *q = memchr(p, '?', (size_t)(tend - p));
    const char *pend = q ? q : tend;
    autofree char *path = xmalloc((size_t)(pend - p) + 2);
    ssize_t plen;
    if (p == pend) { /* "http://host" or "http://host?x": the path is "/" */
        memcpy(path, "/", 2);
        plen = 1;
    } else {
        plen = pct_decode(p, (size_t)(pend - p), path);
        if (plen < 0)
            return -400;
    }

    if (len - hend < cl) {
        m->head_len = hend;
        return 0;
    }
    tmp->len = 0;
    size_t off_m = 0, off_p = mlen + 1, off_q = off_p + (size_t)plen + 1;
    const char *qs = q ? q + 1 : "";
    size_t qlen = q ? (size_t)(tend - q - 1) : 0;
    if (wd_buf_append(tmp, buf + start, mlen) < 0 ||
        wd_buf_append(tmp, "", 1) < 0 || wd_buf_append(tmp, path, (size_t)plen + 1) < 0 ||
        wd_buf_append(tmp, qs, qlen) < 0 || wd_buf_append(tmp, "", 1) < 0)
        return -413; /* the caller's scratch has a cap smaller than the head */
    req->method = (const char *)tmp->data + off_m;
    req->path = (const char *)tmp->data + off_p;
    req->query = (const char *)tmp->data + off_q;
    req->body = (const uint8_t *)buf + hend;
    req->body_len = (size_t)cl;
    req->trusted = false;
    m->head_len = hend;
    m->close = want_close || (http10 && !keep);
    m->head_method = mlen == 4 && memcmp(buf + start, "HEAD", 4) == 0;
    return (ssize_t)(hend + cl);
}

ssize_t wd_control_parse(const char *buf, size_t len, struct wd_control_req *req,
                         struct wd_buf *tmp)
{
    struct meta m;
    return parse(buf, len, req, tmp, &m);
}

/* ---- server ---- */

struct lsn {
    struct wd_control *c;
    int fd;
    struct wd_watch *w;
    bool is_unix;
    char *addr;        /* for messages */
    int64_t warned_ms; /* last "out of descriptors" warning */
    struct lsn *next;
};

struct conn {
    struct wd_control *c;
    int fd;
    struct wd_watch *w;
    bool trusted;
    struct wd_buf in;  /* bytes read, not yet a whole request or not yet served */
    struct wd_buf out; /* answers not yet written, from out_off on */
    size_t out_off;
    struct wd_buf tmp;                   /* the parser's scratch */
    struct wd_control_exchange *pending; /* the request with the handler */
    bool in_handler;
    bool eof;       /* the client sent EOF */
    bool closing;   /* close once out is written; read no more */
    bool continued; /* "100 Continue" sent for the request being received */
    int64_t last_ms;
    struct wd_timer *idle;
    struct conn *prev, *next;
    int pass[WD_CONTROL_MAX_FDS]; /* descriptors sent with the next bytes (SCM_RIGHTS) */
    size_t npass;
};

struct wd_control_exchange {
    struct conn *conn; /* NULL once the connection is gone */
    bool close;
    bool head;
};

struct wd_control {
    struct wd_loop *loop;
    wd_control_fn fn;
    void *arg;
    char *path; /* the unix socket, unlinked at free if still ours */
    dev_t dev;
    ino_t ino;
    struct lsn *lsns;
    struct conn *conns;
    size_t nconns;
    int64_t idle_ms;
    unsigned depth;
    bool dying;
};

static const char *reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Status";
    }
}

static void destroy(struct wd_control *c);

static void enter(struct wd_control *c) { c->depth++; }

/* After this, c may be gone. */
static void leave(struct wd_control *c)
{
    if (--c->depth == 0 && c->dying)
        destroy(c);
}

static void drop_pass(struct conn *k)
{
    for (size_t i = 0; i < k->npass; i++)
        close(k->pass[i]);
    k->npass = 0;
}

static void conn_free(struct conn *k)
{
    struct wd_control *c = k->c;
    drop_pass(k);
    if (k->prev)
        k->prev->next = k->next;
    else
        c->conns = k->next;
    if (k->next)
        k->next->prev = k->prev;
    c->nconns--;
    if (k->pending)
        k->pending->conn = NULL; /* its respond drops the answer */
    wd_watch_free(k->w);
    close(k->fd);
    wd_timer_cancel(k->idle);
    wd_buf_free(&k->in);
    wd_buf_free(&k->out);
    wd_buf_free(&k->tmp);
    free(k);
}

static void append_response(struct conn *k, int status, const char *ctype, const void *body,
                            size_t len, bool want_close, bool head)
{
    if (status < 200 || status > 999)
        status = 500; /* an interim or impossible status would leave the client waiting */
    if (ctype == NULL)
        ctype = "application/json";
    else if (strpbrk(ctype, "\r\n") != NULL)
        ctype = "application/octet-stream"; /* no header injection from a handler */
    (void)wd_buf_printf(&k->out,
                        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n",
                        status, reason(status), ctype, len,
                        want_close ? "Connection: close\r\n" : "");
    if (!head && len > 0)
        (void)wd_buf_append(&k->out, body, len);
}

static void bad_request(struct conn *k, int status)
{
    char body[64];
    int n = snprintf(body, sizeof body, "{\"error\":\"%s\"}", reason(status));
    append_response(k, status, "application/json", body, (size_t)n, true, false);
    k->closing = true;
    wd_buf_consume(&k->in, k->in.len);
}

/* Hand whole requests to the handler, one at a time, in order. */
static void serve(struct conn *k)
{
    struct wd_control *c = k->c;
    while (!k->pending && !k->closing && !c->dying && k->in.len > 0 &&
           k->out.len - k->out_off < OUT_HIGH) {
        struct wd_control_req req;
        struct meta m;
        ssize_t n = parse((const char *)k->in.data, k->in.len, &req, &k->tmp, &m);
        if (n == 0) {
            /* curl waits a second for this before it sends a body it announced */
            if (m.head_len && m.expect_continue && !k->continued) {
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                (void)wd_buf_append(&k->out, cont, sizeof cont - 1);
                k->continued = true;
            }
            return;
        }
        if (n < 0) {
            bad_request(k, (int)-n);
            return;
        }
        k->continued = false;
        struct wd_control_exchange *x = xzalloc(sizeof *x);
        x->conn = k;
        x->close = m.close;
        x->head = m.head_method;
        k->pending = x;
        req.trusted = k->trusted;
        k->in_handler = true;
        c->fn(c->arg, x, &req);
        k->in_handler = false;
        wd_buf_consume(&k->in, (size_t)n);
    }
}

/* Write what is queued. False: the connection is broken. */
static bool flush(struct conn *k)
{
    while (k->out_off < k->out.len) {
        ssize_t n;
        if (k->npass > 0) { /* the descriptors ride on the answer's first bytes */
            struct iovec iov = {k->out.data + k->out_off, k->out.len - k->out_off};
            union {
                char buf[CMSG_SPACE(sizeof(int) * WD_CONTROL_MAX_FDS)];
                struct cmsghdr align;
            } u;
            memset(&u, 0, sizeof u);
            struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                                .msg_controllen = (socklen_t)CMSG_SPACE(sizeof(int) * k->npass)};
            struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = (socklen_t)CMSG_LEN(sizeof(int) * k->npass); /* socklen_t in musl */
            memcpy(CMSG_DATA(cm), k->pass, sizeof(int) * k->npass);
            n = sendmsg(k->fd, &mh, MSG_NOSIGNAL);
            if (n > 0)
                drop_pass(k); /* the peer holds them now */
        } else {
            n = send(k->fd, k->out.data + k->out_off, k->out.len - k->out_off, MSG_NOSIGNAL);
        }
        if (n > 0) {
            k->out_off += (size_t)n;
            k->last_ms = wd_now_ms();
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            return true;
        } else {
            return false;
        }
    }
    k->out.len = k->out_off = 0;
    return true;
}

static void rearm(struct conn *k)
{
    unsigned ev = 0;
    if (!k->closing && !k->eof && k->in.len < IN_MAX)
        ev |= WD_EV_IN; /* also while a request is with the handler: to see the client leave */
    if (k->out_off < k->out.len)
        ev |= WD_EV_OUT;
    wd_watch_set(k->w, ev);
}

/* After anything happened on k: serve what is whole, write what is queued, then wait for what
 * comes next, or close. */
static void progress(struct conn *k)
{
    serve(k);
    if (k->c->dying)
        return;
    if (k->eof) {
        if (k->pending) { /* gone before its answer */
            conn_free(k);
            return;
        }
        k->closing = true;
    }
    if (!flush(k) || (k->closing && k->out_off == k->out.len)) {
        conn_free(k);
        return;
    }
    rearm(k);
}

static void on_conn(struct wd_watch *w, int fd, unsigned ev, void *arg)
{
    (void)w;
    struct conn *k = arg;
    struct wd_control *c = k->c;
    enter(c);
    bool gone = false;
    if ((ev & WD_EV_IN) && !k->closing && !k->eof && k->in.len < IN_MAX) {
        char b[16384];
        ssize_t n = recv(fd, b, sizeof b, 0);
        if (n > 0) {
            (void)wd_buf_append(&k->in, b, (size_t)n);
            k->last_ms = wd_now_ms();
        } else if (n == 0) {
            k->eof = true;
        } else if (errno != EAGAIN && errno != EINTR) {
            gone = true;
        }
    } else if (ev & WD_EV_ERR) {
        gone = true;
    }
    if (gone)
        conn_free(k);
    else
        progress(k);
    leave(c);
}

/* Closes a connection without progress for idle_ms while none of its requests is with the
 * handler: a partial request, a kept-alive one, or one whose client stopped reading. */
static void on_idle(struct wd_timer *t, void *arg)
{
    (void)t;
    struct conn *k = arg;
    struct wd_control *c = k->c;
    k->idle = NULL;
    int64_t left = k->last_ms + c->idle_ms - wd_now_ms();
    if (k->pending || left > 0) {
        k->idle = wd_timer_add(c->loop, k->pending ? c->idle_ms : left, on_idle, k);
        return;
    }
    enter(c);
    conn_free(k);
    leave(c);
}

/* Another user's connection: one short answer, best effort, and close. */
static void refuse(int fd)
{
    static const char body[] = "{\"error\":\"this socket serves its owner and root only\"}";
    char msg[256];
    int n = snprintf(msg, sizeof msg,
                     "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     sizeof body - 1, body);
    (void)!send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
}

static void on_accept(struct wd_watch *w, int fd, unsigned ev, void *arg)
{
    (void)ev;
    struct lsn *s = arg;
    struct wd_control *c = s->c;
    for (;;) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            int e = errno;
            if (e == EINTR || e == ECONNABORTED)
                continue;
            /* out of descriptors: the clients stay queued; pause instead of spinning */
            if (wd_watch_accept_failed(w, e, 100)) {
                int64_t now = wd_now_ms();
                if (s->warned_ms == 0 || now - s->warned_ms >= 30000) {
                    wd_warn("control %s: %s; not accepting for 100 ms at a time until some close",
                            s->addr, strerror(e));
                    s->warned_ms = now;
                }
            }
            return;
        }
        if (c->nconns >= WD_CONTROL_MAX_CONNS) {
            close(cfd);
            continue;
        }
        bool trusted = false;
        if (s->is_unix) {
            struct ucred cr;
            socklen_t cl = sizeof cr;
            if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 ||
                (cr.uid != geteuid() && cr.uid != 0)) {
                refuse(cfd);
                continue;
            }
            trusted = true;
        } else {
            int one = 1;
            setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        struct conn *k = xzalloc(sizeof *k);
        k->c = c;
        k->fd = cfd;
        k->trusted = trusted;
        k->last_ms = wd_now_ms();
        k->next = c->conns;
        if (c->conns)
            c->conns->prev = k;
        c->conns = k;
        c->nconns++;
        k->w = wd_watch_add(c->loop, cfd, WD_EV_IN, on_conn, k);
        k->idle = wd_timer_add(c->loop, c->idle_ms, on_idle, k);
    }
}

static void add_listener(struct wd_control *c, int fd, bool is_unix, const char *addr)
{
    struct lsn *s = xzalloc(sizeof *s);
    s->c = c;
    s->fd = fd;
    s->is_unix = is_unix;
    s->addr = xstrdup(addr);
    s->next = c->lsns;
    c->lsns = s;
    s->w = wd_watch_add(c->loop, fd, WD_EV_IN, on_accept, s);
}

void wd_control_respond(struct wd_control_exchange *x, int status, const char *content_type,
                        const void *body, size_t len)
{
    (void)wd_control_respond_fds(x, status, content_type, body, len, NULL, 0);
}

int wd_control_respond_fds(struct wd_control_exchange *x, int status, const char *content_type,
                           const void *body, size_t len, const int *fds, size_t nfds)
{
    struct conn *k = x->conn;
    bool want_close = x->close, head = x->head;
    free(x);
    if (k == NULL)
        return -ECONNRESET; /* the client went away, or the server was freed */
    k->pending = NULL;
    struct wd_control *c = k->c;
    if (c->dying)
        return -ECONNRESET;
    int r = 0;
    if (nfds > 0 && !k->trusted) {
        status = 403; /* descriptors go to our own uid only */
        body = "{\"error\":\"not on this socket\"}";
        len = strlen(body);
        nfds = 0;
        r = -EPERM;
    }
    if (k->npass + nfds > WD_CONTROL_MAX_FDS) {
        status = 500;
        body = "{\"error\":\"too many descriptors\"}";
        len = strlen(body);
        nfds = 0;
        r = -E2BIG;
    }
    size_t had = k->npass;
    for (size_t i = 0; i < nfds; i++) {
        int d = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
        if (d < 0) { /* all or none: the names in the body count on them */
            r = -errno;
            while (k->npass > had)
                close(k->pass[--k->npass]);
            status = 500;
            body = "{\"error\":\"out of descriptors\"}";
            len = strlen(body);
            break;
        }
        k->pass[k->npass++] = d;
    }
    append_response(k, status, content_type, body, len, want_close, head);
    if (want_close)
        k->closing = true;
    k->last_ms = wd_now_ms();
    if (k->in_handler)
        return r; /* serve() goes on when the handler returns */
    enter(c);
    progress(k);
    leave(c);
    return r;
}

static int unix_addr(const char *path, struct sockaddr_un *sa, struct wd_error **err)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof sa->sun_path)
        return wd_err(err, ENAMETOOLONG,
                      "control socket %s: a unix socket path must have 1 to %zu bytes", path,
                      sizeof sa->sun_path - 1);
    memcpy(sa->sun_path, path, n + 1);
    return 0;
}

/* A socket at path that nobody answers on may go; anything else stays. */
static int check_stale(const char *path, const struct sockaddr_un *sa, struct wd_error **err)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        return wd_err_sys(err, errno, "control socket %s", path);
    }
    if (!S_ISSOCK(st.st_mode))
        return wd_err(err, EEXIST,
                      "control socket %s: the path exists and is not a socket; remove it or "
                      "choose another",
                      path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return wd_err_sys(err, errno, "control socket %s: socket", path);
    int r = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
    int e = errno;
    close(fd);
    if (r == 0 || e == EAGAIN) /* EAGAIN: a full backlog, so someone listens */
        return wd_err(err, EADDRINUSE,
                      "control socket %s: another process serves on it (a deployer of the same "
                      "deployment still running?)",
                      path);
    if (e != ECONNREFUSED)
        return wd_err_sys(err, e, "control socket %s: check whether it is in use", path);
    return 0; /* stale: the rename below replaces it */
}

int wd_control_listen_unix(struct wd_loop *l, const char *path, wd_control_fn fn, void *arg,
                           struct wd_control **out, struct wd_error **err)
{
    struct sockaddr_un sa;
    int r = unix_addr(path, &sa, err);
    if (r < 0)
        return r;
    r = check_stale(path, &sa, err);
    if (r < 0)
        return r;
    /* Bind in a private directory beside path, set the mode while nobody else can reach the
     * socket, then rename it into place: never reachable with a wider mode, and no umask
     * change, which would race with files other threads create. */
    const char *slash = strrchr(path, '/');
    autofree char *dir = slash == NULL   ? xstrdup(".")
                         : slash == path ? xstrdup("/")
                                         : xstrndup(path, (size_t)(slash - path));
    autofree char *tdir = xasprintf("%s/.wdc-XXXXXX", strcmp(dir, "/") == 0 ? "" : dir);
    if (mkdtemp(tdir) == NULL)
        return wd_err_sys(err, errno, "control socket %s: make a private directory in %s", path,
                          dir);
    autofree char *tpath = xasprintf("%s/s", tdir);
    struct sockaddr_un tsa;
    autoclose int fd = -1;
    r = unix_addr(tpath, &tsa, err);
    if (r < 0) {
        rmdir(tdir);
        return wd_err_wrap(err, "control socket %s (bound beside it first)", path);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const char *what = fd < 0                                                      ? "socket"
                       : bind(fd, (const struct sockaddr *)&tsa, sizeof tsa) < 0 ? "bind"
                       : chmod(tpath, 0600) < 0                                    ? "chmod"
                       : listen(fd, 128) < 0                                       ? "listen"
                       : rename(tpath, path) < 0                                   ? "rename"
                                                                                   : NULL;
    if (what != NULL) {
        int e = errno;
        unlink(tpath);
        rmdir(tdir);
        return wd_err_sys(err, e, "control socket %s: %s", path, what);
    }
    rmdir(tdir);
    struct wd_control *c = xzalloc(sizeof *c);
    c->loop = l;
    c->fn = fn;
    c->arg = arg;
    c->idle_ms = WD_CONTROL_IDLE_MS;
    c->path = xstrdup(path);
    struct stat st;
    if (stat(path, &st) == 0) {
        c->dev = st.st_dev;
        c->ino = st.st_ino;
    }
    add_listener(c, WD_STEAL_FD(fd), true, path);
    *out = c;
    return 0;
}

static char *fmt_addr(const struct sockaddr_storage *ss)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        return xasprintf("[%s]:%d", ip, ntohs(s6->sin6_port));
    }
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)ss;
    inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
    return xasprintf("%s:%d", ip, ntohs(s4->sin_port));
}

int wd_control_listen_tcp(struct wd_control *c, const char *hostport, char **bound,
                          struct wd_error **err)
{
    int fd = -1;
    int r = wd_tcp_listen(hostport, 128, &fd, err);
    if (r == -EADDRINUSE) {
        wd_err_free(err); /* say it with our context and what to do */
        return wd_err(err, EADDRINUSE,
                      "control: address %s is already in use; stop what holds it or choose "
                      "another",
                      hostport);
    }
    if (r < 0)
        return wd_err_wrap(err, "control");
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    memset(&ss, 0, sizeof ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    char *addr = fmt_addr(&ss);
    add_listener(c, fd, false, addr);
    *bound = addr;
    return 0;
}

void wd_control_set_idle_ms(struct wd_control *c, int64_t ms) { c->idle_ms = ms > 0 ? ms : 1; }

size_t wd_control_nconns(const struct wd_control *c) { return c->nconns; }

static void destroy(struct wd_control *c)
{
    while (c->conns)
        conn_free(c->conns);
    free(c->path);
    free(c);
}

void wd_control_free(struct wd_control *c)
{
    if (c == NULL || c->dying)
        return;
    c->dying = true;
    while (c->lsns) {
        struct lsn *s = c->lsns;
        c->lsns = s->next;
        wd_watch_free(s->w);
        close(s->fd);
        free(s->addr);
        free(s);
    }
    struct stat st;
    if (c->path && stat(c->path, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino)
        unlink(c->path); /* only our own: never a successor's */
    if (c->depth == 0)
        destroy(c);
}

/* ---- client ---- */

/* The answer's head in b[0, n): 1 when whole (*hlen, *status, *clen or -1 without one), 0 when
 * more is needed, -1 when malformed, -2 for a chunked answer. */
static int parse_answer_head(const char *b, size_t n, size_t *hlen, int *status, int64_t *clen)
{
    size_t hend = head_end(b, n, 0);
    if (hend == 0)
        return n > WD_CONTROL_MAX_HEAD ? -1 : 0;
    size_t pos = 0;
    const char *line;
    size_t ln;
    if (!next_line(b, hend, &pos, &line, &ln))
        return -1;
    /* HTTP/1.x SP 3DIGIT [SP reason] */
    if (ln < 12 || memcmp(line, "HTTP/1.", 7) != 0 || line[8] != ' ' ||
        (ln > 12 && line[12] != ' '))
        return -1;
    int st = 0;
    for (int i = 9; i < 12; i++) {
        if (line[i] < '0' || line[i] > '9')
            return -1;
        st = st * 10 + (line[i] - '0');
    }
    int64_t cl = -1;
    bool chunked = false;
    while (next_line(b, hend, &pos, &line, &ln) && ln > 0) {
        const char *colon = memchr(line, ':', ln);
        if (colon == NULL)
            return -1;
        size_t nl = (size_t)(colon - line);
        const char *v = colon + 1, *vend = line + ln;
        while (v < vend && (*v == ' ' || *v == '\t'))
            v++;
        while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
            vend--;
        if (eq_ci(line, nl, "content-length")) {
            uint64_t x;
            if (parse_len(v, (size_t)(vend - v), CALL_MAX_BODY, &x) < 0)
                return -1;
            cl = (int64_t)x;
        } else if (eq_ci(line, nl, "transfer-encoding")) {
            chunked = true;
        }
    }
    if (chunked)
        return -2;
    *hlen = hend;
    *status = st;
    *clen = cl;
    return 1;
}

static int call_wait(int fd, short events, int64_t deadline_ms)
{
    for (;;) {
        int64_t left = deadline_ms - wd_now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (r > 0)
            return 1;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

static int call_connect(int fd, const char *sock, const struct sockaddr_un *sa,
                        int64_t deadline_ms, int timeout_ms, struct wd_error **err)
{
    for (;;) {
        if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0)
            return 0;
        int e = errno;
        if (e == EINTR)
            continue;
        if (e == EAGAIN) { /* its backlog is full: the deployer is busy, try again shortly */
            if (wd_now_ms() + 10 > deadline_ms)
                return wd_err(err, ETIMEDOUT,
                              "control socket %s: the deployer did not accept within %d ms", sock,
                              timeout_ms);
            poll(NULL, 0, 10);
            continue;
        }
        switch (e) {
        case ENOENT:
            return wd_err(err, ENOENT,
                          "no control socket at %s (is the deployment running, and is this its "
                          "state directory?)",
                          sock);
        case ECONNREFUSED:
            return wd_err(err, ECONNREFUSED,
                          "nothing serves on control socket %s: its deployer is gone (the next "
                          "deployer replaces the stale socket)",
                          sock);
        case EACCES:
        case EPERM:
            return wd_err(err, EACCES,
                          "control socket %s: permission denied (it belongs to another user; run "
                          "as that user or root)",
                          sock);
        default:
            return wd_err_sys(err, e, "connect to control socket %s", sock);
        }
    }
}

int wd_control_call(const char *sock, const char *method, const char *path, const void *body,
                    size_t len, int timeout_ms, int *status, struct wd_buf *resp,
                    struct wd_error **err)
{
    return wd_control_call_fds(sock, method, path, body, len, timeout_ms, status, resp, NULL, 0,
                               NULL, err);
}

/* Descriptors that came with the answer: kept while there is room, else closed. */
static void take_fds(struct msghdr *mh, int *fds, size_t maxfds, size_t *nfds)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
            if (fds && *nfds < maxfds)
                fds[(*nfds)++] = fd;
            else
                close(fd);
        }
    }
}

int wd_control_call_fds(const char *sock, const char *method, const char *path, const void *body,
                        size_t len, int timeout_ms, int *status, struct wd_buf *resp, int *fds,
                        size_t maxfds, size_t *nfds, struct wd_error **err)
{
    size_t nfds_dummy = 0;
    if (nfds == NULL)
        nfds = &nfds_dummy;
    *nfds = 0;
    size_t ml = strlen(method);
    for (size_t i = 0; i < ml; i++)
        if (!is_tchar((unsigned char)method[i]))
            ml = 0;
    if (ml == 0)
        return wd_err(err, EINVAL, "control call: bad method \"%s\"", method);
    bool ok = path[0] == '/';
    for (const char *p = path; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            ok = false;
    if (!ok)
        return wd_err(err, EINVAL, "control call: bad path \"%s\" (want /..., encoded)", path);
    if (len > 0 && body == NULL)
        return wd_err(err, EINVAL, "control call %s %s: no body", method, path);
    struct sockaddr_un sa;
    int r = unix_addr(sock, &sa, err);
    if (r < 0)
        return r;
    int64_t deadline = wd_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    autoclose int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return wd_err_sys(err, errno, "control socket %s: socket", sock);
    r = call_connect(fd, sock, &sa, deadline, timeout_ms, err);
    if (r < 0)
        return r;

    struct wd_buf req = {0};
    (void)wd_buf_printf(&req,
                        "%s %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: weaver-docker\r\n"
                        "Connection: close\r\nContent-Length: %zu\r\n%s\r\n",
                        method, path, len, len ? "Content-Type: application/json\r\n" : "");
    if (len > 0)
        (void)wd_buf_append(&req, body, len);
    struct wd_buf in = {0};
    size_t sent = 0, hlen = 0;
    int st = 0;
    int64_t clen = -1;
    bool have_head = false, eof = false, send_failed = false;
    r = 0;
    while (r == 0) {
        bool sending = sent < req.len && !send_failed;
        int w = call_wait(fd, (short)(POLLIN | (sending ? POLLOUT : 0)), deadline);
        if (w == 0) {
            r = wd_err(err, ETIMEDOUT, "control socket %s: %s %s: no whole answer within %d ms",
                       sock, method, path, timeout_ms);
            break;
        }
        if (w < 0) {
            r = wd_err_sys(err, errno, "control socket %s: poll", sock);
            break;
        }
        if (sending) {
            ssize_t n = send(fd, req.data + sent, req.len - sent, MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
            else if (n < 0 && errno != EAGAIN && errno != EINTR)
                send_failed = true; /* it may have answered early (413): read that */
        }
        char b[16384];
        struct iovec iov = {b, sizeof b};
        union {
            char buf[CMSG_SPACE(sizeof(int) * WD_CONTROL_MAX_FDS)];
            struct cmsghdr align;
        } u;
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                            .msg_controllen = sizeof u.buf};
        ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
        if (n >= 0)
            take_fds(&mh, fds, maxfds, nfds);
        if (n >= 0 && (mh.msg_flags & MSG_CTRUNC)) {
            r = wd_err(err, EMSGSIZE, "control socket %s: %s %s: descriptors cut off", sock,
                       method, path);
            break;
        }
        if (n > 0) {
            if (in.len + (size_t)n > CALL_MAX_BODY + WD_CONTROL_MAX_HEAD) {
                r = wd_err(err, EMSGSIZE, "control socket %s: %s %s: answer over %u bytes", sock,
                           method, path, CALL_MAX_BODY);
                break;
            }
            (void)wd_buf_append(&in, b, (size_t)n);
        } else if (n == 0) {
            eof = true;
        } else if (errno != EAGAIN && errno != EINTR) {
            if (in.len == 0)
                r = wd_err_sys(err, errno, "control socket %s: %s %s: read the answer", sock,
                               method, path);
            eof = true; /* after some of the answer: judged by what came */
        }
        while (!have_head) {
            int h = parse_answer_head((const char *)in.data, in.len, &hlen, &st, &clen);
            if (h == 0)
                break;
            if (h < 0) {
                r = wd_err(err, EPROTO, "control socket %s: %s %s: %s", sock, method, path,
                           h == -2 ? "a chunked answer (not supported here)"
                                   : "malformed answer");
                break;
            }
            if (st >= 100 && st < 200) { /* interim (100 Continue): the real one follows */
                wd_buf_consume(&in, hlen);
                continue;
            }
            have_head = true;
        }
        if (r < 0)
            break;
        if (have_head && clen >= 0 && in.len - hlen >= (uint64_t)clen)
            break; /* whole */
        if (eof) {
            if (have_head && clen < 0)
                break; /* the body runs to EOF */
            if (r == 0)
                r = wd_err(err, EPROTO,
                           "control socket %s: %s %s: the deployer closed the connection %s",
                           sock, method, path, in.len ? "in the middle of its answer"
                                                      : "without answering");
        }
    }
    if (r == 0) {
        size_t blen = clen >= 0 ? (size_t)clen : in.len - hlen;
        if (wd_buf_append(resp, in.data + hlen, blen) < 0)
            r = wd_err(err, EMSGSIZE, "control socket %s: %s %s: answer of %zu bytes over %zu",
                       sock, method, path, blen, resp->max);
        else
            *status = st;
    }
    if (r < 0) {
        for (size_t i = 0; fds && i < *nfds; i++)
            close(fds[i]);
        *nfds = 0;
    }
    wd_buf_free(&req);
    wd_buf_free(&in);
    return r;
}
