#include "engine/weaver/conn.h"
#include "engine/base/log.h"
#include "engine/weaver/pipe.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define READ_CHUNK 65536
#define MAX_OUT (256u << 20) /* a stuck peer must not grow us forever */
/* Pipes: log entries and spans not yet written; beyond this we stop reading, so a weavelet that
 * logs faster than we write blocks on its pipe (the socket generations wait for LogBatch's
 * reply instead). */
#define PIPE_ONEWAY_MAX 64

struct call {
    uint64_t id;
    enum wd_rpc_method m;
    wd_call_fn fn;
    void *arg;
    struct call *next;
};

struct wd_conn {
    struct wd_loop *loop;
    struct wd_watch *watch;
    int fd;
    bool client;
    enum wd_rpc_hdr_fmt fmt;
    struct wd_conn_ops ops;
    char *name;
    struct wd_rpc_reader rd;
    struct wd_buf out;     /* bytes ready for the socket */
    struct wd_buf pending; /* client requests waiting for the handshake */
    bool handshaken;
    uint64_t next_id;
    struct call *calls;
    bool closing;
    bool detached; /* closed by its owner: no more callbacks */
    char *close_reason;
    /* the two-pipe protocol of weaver v0.20-v0.22 (engine/weaver/pipe.h): one stream, both
     * roles; requests of the weavelet go to ops.on_request, our calls are EnvelopeMsg requests */
    bool pipes;
    bool hello_seen;   /* the weavelet's WeaveletInfo came */
    bool draining;     /* inside pipe_drain */
    bool force;        /* the stream ended: handle what is buffered, paused or not */
    unsigned oneway;   /* log entries and spans handed on and not yet answered */
    struct wd_pipe_reader prd;
    struct wd_timer *resume;
};

static bool reading_paused(const struct wd_conn *c)
{
    return c->pipes && !c->force && c->oneway >= PIPE_ONEWAY_MAX;
}

static bool trace_frames;
void wd_conn_set_trace(bool on) { trace_frames = on; }

static void trace(const struct wd_conn *c, const char *dir, const uint8_t *p, size_t n)
{
    if (!trace_frames)
        return;
    fprintf(stderr, "trace %s %s ", c->name, dir);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "%02x", p[i]);
    fputc('\n', stderr);
}

static void update_watch(struct wd_conn *c)
{
    if (c->watch)
        wd_watch_set(c->watch, (reading_paused(c) ? 0 : WD_EV_IN) | (c->out.len ? WD_EV_OUT : 0));
}

static void finish(struct wd_conn *c)
{
    wd_watch_free(c->watch);
    c->watch = NULL;
    wd_timer_cancel(c->resume);
    c->resume = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    while (c->calls) {
        struct call *k = c->calls;
        c->calls = k->next;
        if (!c->detached)
            k->fn(c, c->close_reason, NULL, 0, k->arg);
        free(k);
    }
    if (c->ops.on_close && !c->detached)
        c->ops.on_close(c, c->close_reason, c->ops.arg);
    wd_rpc_reader_free(&c->rd);
    wd_pipe_reader_free(&c->prd);
    wd_buf_free(&c->out);
    wd_buf_free(&c->pending);
    free(c->close_reason);
    free(c->name);
    free(c);
}

static void finish_later(struct wd_timer *t, void *arg)
{
    (void)t;
    finish(arg);
}

/* Closing is always completed from a fresh loop turn, so no caller ever sees its connection
 * freed under its feet; until then the connection is inert. */
static void conn_fail(struct wd_conn *c, const char *reason)
{
    if (c->closing)
        return;
    c->closing = true;
    c->close_reason = xasprintf("%s: %s", c->name, reason ? reason : "closed");
    wd_watch_free(c->watch);
    c->watch = NULL;
    wd_timer_add(c->loop, 0, finish_later, c);
}

void wd_conn_close(struct wd_conn *c, const char *reason)
{
    if (c == NULL)
        return;
    c->detached = true;
    conn_fail(c, reason);
}

static void flush(struct wd_conn *c)
{
    while (c->out.len > 0) {
        ssize_t n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == ENOTCONN)
                break;
            conn_fail(c, strerror(errno));
            return;
        }
        wd_buf_consume(&c->out, (size_t)n);
    }
    update_watch(c);
}

static void queue(struct wd_conn *c, const uint8_t *p, size_t n)
{
    if (c->closing)
        return;
    trace(c, ">", p, n);
    if (wd_buf_append(&c->out, p, n) < 0) {
        conn_fail(c, "peer is not reading (output buffer full)");
        return;
    }
    flush(c);
}

static void handle_frame(struct wd_conn *c, const struct wd_rpc_frame_hdr *h, const uint8_t *p)
{
    if (h->type == WD_RPC_VERSION) {
        if (wd_rpc_version_check(h, p) < 0) {
            conn_fail(c, "bad version message");
            return;
        }
        if (!c->client) { /* a server answers every version message */
            uint8_t v[20];
            wd_rpc_version_encode(v);
            queue(c, v, sizeof v);
        } else if (!c->handshaken) {
            c->handshaken = true;
            if (c->pending.len) {
                struct wd_buf b = c->pending;
                c->pending = (struct wd_buf){0};
                queue(c, b.data, b.len);
                wd_buf_free(&b);
            }
        }
        return;
    }
    if (c->client) {
        if (h->type != WD_RPC_RESPONSE && h->type != WD_RPC_RESPONSE_ERROR) {
            conn_fail(c, "unexpected message type from server");
            return;
        }
        struct call **pp = &c->calls;
        while (*pp && (*pp)->id != h->id)
            pp = &(*pp)->next;
        if (*pp == NULL)
            return; /* a reply to a call we gave up on */
        struct call *k = *pp;
        *pp = k->next;
        if (h->type == WD_RPC_RESPONSE_ERROR) {
            char *msg = NULL;
            size_t used = 0;
            if (wd_rpc_errlist_decode(p, h->len, &msg, &used) < 0 || msg == NULL) {
                free(msg);
                msg = xstrdup("malformed error reply");
            }
            k->fn(c, msg, NULL, 0, k->arg);
            free(msg);
        } else {
            bool has = false;
            const uint8_t *pb = NULL;
            size_t n = 0;
            char *msg = NULL;
            if (wd_rpc_result_decode(p, h->len, &has, &pb, &n, &msg) < 0)
                k->fn(c, "malformed reply", NULL, 0, k->arg);
            else
                k->fn(c, msg, pb, n, k->arg);
            free(msg);
        }
        free(k);
        return;
    }
    /* server */
    if (h->type == WD_RPC_CANCEL)
        return; /* our handlers answer promptly; nothing to cancel */
    if (h->type != WD_RPC_REQUEST) {
        conn_fail(c, "unexpected message type from client");
        return;
    }
    struct wd_rpc_reqhdr rh;
    const uint8_t *args = NULL;
    size_t alen = 0;
    if (wd_rpc_request_decode(c->fmt, p, h->len, &rh, &args, &alen) < 0) {
        conn_fail(c, "malformed request header");
        return;
    }
    enum wd_rpc_method m = wd_rpc_control_lookup(rh.key);
    if (m == WD_M_UNKNOWN || m >= WD_M_GET_HEALTH) {
        struct wd_buf b = {0};
        wd_rpc_response_error_encode(&b, h->id, "internal error: unknown function");
        queue(c, b.data, b.len);
        wd_buf_free(&b);
        return;
    }
    bool present = false;
    const uint8_t *pb = NULL;
    size_t n = 0;
    if (wd_rpc_args_decode(args, alen, &present, &pb, &n) < 0) {
        struct wd_buf b = {0};
        wd_rpc_response_error_encode(&b, h->id, "decoder: malformed arguments");
        queue(c, b.data, b.len);
        wd_buf_free(&b);
        return;
    }
    c->ops.on_request(c, h->id, m, pb, n, c->ops.arg);
}


/* ---- the two-pipe protocol (weaver v0.20-v0.22) ---------------------------------------- */

static struct call *take_call(struct wd_conn *c, uint64_t id)
{
    struct call **pp = &c->calls;
    while (*pp && (*pp)->id != id)
        pp = &(*pp)->next;
    struct call *k = *pp;
    if (k)
        *pp = k->next;
    return k;
}

static void pipe_reply(struct wd_conn *c, const struct wd_pipe_msg *pm)
{
    struct call *k = take_call(c, (uint64_t)pm->id);
    if (k == NULL)
        return; /* an unknown id: dropped, as the Go envelope does */
    if (pm->err) {
        k->fn(c, pm->err, NULL, 0, k->arg);
    } else if (pm->m == WD_M_UNKNOWN) {
        /* only the id: how these weavelets answer a local UpdateRoutingInfo (nil reply, no
         * error; docs/design/old-releases.md §4.5) */
        if (k->m == WD_M_UPDATE_ROUTING_INFO) {
            k->fn(c, NULL, NULL, 0, k->arg);
        } else {
            char msg[96];
            snprintf(msg, sizeof msg, "nil %sReply received from weavelet",
                     wd_rpc_method_name(k->m));
            k->fn(c, msg, NULL, 0, k->arg);
        }
    } else if (pm->m != k->m) {
        k->fn(c, "the weavelet answered with a reply of another method", NULL, 0, k->arg);
    } else {
        k->fn(c, NULL, pm->pb, pm->len, k->arg);
    }
    free(k);
}

static void pipe_msg(struct wd_conn *c, const uint8_t *p, size_t n, bool oneway_only)
{
    struct wd_pipe_msg pm;
    const char *why = NULL;
    if (wd_pipe_weavelet_decode(p, n, &pm, &why) < 0) {
        wd_pipe_msg_free(&pm);
        conn_fail(c, why);
        return;
    }
    if (oneway_only && pm.kind != WD_PIPE_LOG && pm.kind != WD_PIPE_TRACE) {
        wd_pipe_msg_free(&pm);
        return;
    }
    if (!c->hello_seen && pm.kind != WD_PIPE_HELLO) {
        wd_pipe_msg_free(&pm);
        conn_fail(c, "the first message from the weavelet must contain weavelet info");
        return;
    }
    switch (pm.kind) {
    case WD_PIPE_HELLO: {
        struct call *k = c->hello_seen ? NULL : take_call(c, 0);
        if (k == NULL) {
            conn_fail(c, "weavelet info without a handshake, or twice");
            break;
        }
        c->hello_seen = true;
        k->fn(c, NULL, pm.pb, pm.len, k->arg);
        free(k);
        break;
    }
    case WD_PIPE_LOG: { /* handed on as a LogBatch of one entry */
        struct wd_buf b = {0};
        wd_pipe_log_batch(&b, pm.pb, pm.len);
        c->oneway++;
        c->ops.on_request(c, 0, WD_M_LOG_BATCH, b.data, b.len, c->ops.arg);
        wd_buf_free(&b);
        break;
    }
    case WD_PIPE_TRACE:
        c->oneway++;
        c->ops.on_request(c, 0, WD_M_HANDLE_TRACE_SPANS, pm.pb, pm.len, c->ops.arg);
        break;
    case WD_PIPE_REQUEST:
        c->ops.on_request(c, (uint64_t)pm.id, pm.m, pm.pb, pm.len, c->ops.arg);
        break;
    case WD_PIPE_REPLY:
        pipe_reply(c, &pm);
        break;
    }
    wd_pipe_msg_free(&pm);
}

/* Handle the whole messages buffered, while reading is not paused (oneway_only: the weavelet
 * is gone; only its last log entries and spans still matter). */
static void pipe_drain(struct wd_conn *c, bool oneway_only)
{
    const uint8_t *p;
    size_t n;
    int r;
    c->draining = true;
    while (!c->closing && !reading_paused(c) && (r = wd_pipe_reader_next(&c->prd, &p, &n)) != 0) {
        if (r < 0) {
            conn_fail(c, "message too large");
            break;
        }
        if (trace_frames) {
            uint8_t l[WD_PIPE_LEN];
            wd_put_u32le(l, (uint32_t)n);
            struct wd_buf t = {0};
            wd_buf_append(&t, l, sizeof l);
            wd_buf_append(&t, p, n);
            trace(c, "<", t.data, t.len);
            wd_buf_free(&t);
        }
        pipe_msg(c, p, n, oneway_only);
    }
    c->draining = false;
    if (!c->closing)
        update_watch(c);
}

static void pipe_resume(struct wd_timer *t, void *arg)
{
    (void)t;
    struct wd_conn *c = arg;
    c->resume = NULL;
    pipe_drain(c, false);
}

/* The stream ended (EOF or an error): what the weavelet wrote before it is still handled, in
 * full, before the connection closes. */
static void pipe_end(struct wd_conn *c, const char *reason)
{
    c->force = true;
    pipe_drain(c, false);
    conn_fail(c, reason);
}

void wd_conn_flush_input(struct wd_conn *c)
{
    if (c == NULL || !c->pipes || c->closing)
        return;
    c->force = true;
    uint8_t buf[READ_CHUNK];
    ssize_t n;
    while ((n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
        if (wd_buf_append(&c->prd.in, buf, (size_t)n) < 0)
            break;
    pipe_drain(c, true);
}

static void on_io(struct wd_watch *w, int fd, unsigned ev, void *arg)
{
    (void)w;
    struct wd_conn *c = arg;
    if (c->closing)
        return;
    if (ev & WD_EV_OUT)
        flush(c);
    if ((ev & WD_EV_IN) && !c->closing) {
        uint8_t buf[READ_CHUNK];
        for (int rounds = 0; rounds < 16 && !c->closing; rounds++) {
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno != EAGAIN)
                    (c->pipes ? pipe_end : conn_fail)(c, strerror(errno));
                break;
            }
            if (n == 0) {
                (c->pipes ? pipe_end : conn_fail)(c, "connection closed by peer");
                break;
            }
            if (c->pipes) {
                if (wd_buf_append(&c->prd.in, buf, (size_t)n) < 0) {
                    conn_fail(c, "message too large");
                    break;
                }
                pipe_drain(c, false);
                if (reading_paused(c))
                    break;
                if ((size_t)n < sizeof buf)
                    break;
                continue;
            }
            wd_buf_append(&c->rd.in, buf, (size_t)n);
            struct wd_rpc_frame_hdr h;
            const uint8_t *payload;
            int r;
            while (!c->closing && (r = wd_rpc_reader_next(&c->rd, &h, &payload)) != 0) {
                if (r < 0) {
                    conn_fail(c, r == -EMSGSIZE ? "frame too large" : "malformed frame");
                    break;
                }
                if (trace_frames) {
                    uint8_t hdr[WD_RPC_FRAME_HDR];
                    wd_rpc_frame_hdr_encode(hdr, h.id, h.type, h.len);
                    struct wd_buf t = {0};
                    wd_buf_append(&t, hdr, sizeof hdr);
                    wd_buf_append(&t, payload, h.len);
                    trace(c, "<", t.data, t.len);
                    wd_buf_free(&t);
                }
                handle_frame(c, &h, payload);
            }
            if ((size_t)n < sizeof buf)
                break;
        }
    }
}

static struct wd_conn *conn_new(struct wd_loop *l, int fd, bool client, bool pipes,
                                enum wd_rpc_hdr_fmt fmt, const struct wd_conn_ops *ops,
                                const char *name)
{
    struct wd_conn *c = xzalloc(sizeof *c);
    c->loop = l;
    c->fd = fd;
    c->client = client;
    c->pipes = pipes;
    c->handshaken = pipes; /* no version message on pipes */
    c->fmt = fmt;
    c->ops = *ops;
    c->name = xstrdup(name);
    c->next_id = 1;
    c->rd.in.max = WD_RPC_MAX_FRAME + WD_RPC_FRAME_HDR + READ_CHUNK;
    c->prd.in.max = WD_PIPE_MAX_MSG + WD_PIPE_LEN + READ_CHUNK;
    c->out.max = MAX_OUT;
    c->watch = wd_watch_add(l, fd, WD_EV_IN, on_io, c);
    return c;
}

struct wd_conn *wd_conn_new(struct wd_loop *l, int fd, bool client, enum wd_rpc_hdr_fmt fmt,
                            const struct wd_conn_ops *ops, const char *name)
{
    struct wd_conn *c = conn_new(l, fd, client, false, fmt, ops, name);
    if (client) {
        uint8_t v[20];
        wd_rpc_version_encode(v);
        queue(c, v, sizeof v);
    }
    return c;
}

struct wd_conn *wd_conn_new_pipe(struct wd_loop *l, int fd, const struct wd_conn_ops *ops,
                                 const char *name)
{
    return conn_new(l, fd, true, true, WD_RPC_HDR_FIXED49, ops, name);
}

static void pipe_call(struct wd_conn *c, struct call *k, const uint8_t *pb, size_t len)
{
    struct wd_buf b = {0};
    const char *refuse = NULL;
    if (k->m == WD_M_INIT_WEAVELET) { /* its answer is the WeaveletInfo */
        bool pending = false;
        for (struct call *o = c->calls; o; o = o->next)
            pending = pending || o->id == 0;
        if (c->hello_seen || pending)
            refuse = "the pipe handshake happens once per weavelet";
        else
            wd_pipe_handshake_encode(&b, pb, len);
    } else if (wd_pipe_request_encode(&b, (int64_t)k->id, k->m, pb, len) < 0) {
        refuse = "not in the pipe protocol of weaver v0.20-v0.22";
    }
    if (refuse) {
        wd_buf_free(&b);
        k->fn(c, refuse, NULL, 0, k->arg);
        free(k);
        return;
    }
    k->next = c->calls;
    c->calls = k;
    queue(c, b.data, b.len);
    wd_buf_free(&b);
}

void wd_conn_call(struct wd_conn *c, enum wd_rpc_method m, const uint8_t *pb, size_t len,
                  wd_call_fn fn, void *arg)
{
    if (c->closing) {
        fn(c, c->close_reason, NULL, 0, arg);
        return;
    }
    struct call *k = xzalloc(sizeof *k);
    k->m = m;
    k->fn = fn;
    k->arg = arg;
    if (c->pipes) { /* the handshake has id 0; requests count from 1, as the Go envelope's */
        k->id = m == WD_M_INIT_WEAVELET ? 0 : c->next_id++;
        pipe_call(c, k, pb, len);
        return;
    }
    k->id = c->next_id++;
    k->next = c->calls;
    c->calls = k;
    struct wd_buf b = {0};
    wd_rpc_request_encode(&b, c->fmt, k->id, wd_rpc_control_key(m), pb, len);
    if (c->handshaken) {
        queue(c, b.data, b.len);
    } else {
        trace(c, "> (queued)", b.data, b.len);
        wd_buf_append(&c->pending, b.data, b.len);
    }
    wd_buf_free(&b);
}

void wd_conn_reply(struct wd_conn *c, uint64_t id, enum wd_rpc_method m, const uint8_t *pb,
                   size_t len, const char *errmsg)
{
    struct wd_buf b = {0};
    if (c->pipes) {
        if (m == WD_M_LOG_BATCH || m == WD_M_HANDLE_TRACE_SPANS) { /* one-way: no answer */
            bool was = reading_paused(c);
            if (c->oneway)
                c->oneway--;
            if (was && !reading_paused(c) && !c->closing && !c->draining && !c->resume)
                c->resume = wd_timer_add(c->loop, 0, pipe_resume, c);
            return;
        }
        if (wd_pipe_reply_encode(&b, (int64_t)id, m, pb, len, errmsg) == 0)
            queue(c, b.data, b.len);
        wd_buf_free(&b);
        return;
    }
    if (m == WD_M_LOG_BATCH || m == WD_M_HANDLE_TRACE_SPANS)
        wd_rpc_response_err_only_encode(&b, id, errmsg);
    else if (errmsg && pb == NULL)
        wd_rpc_response_encode(&b, id, false, NULL, 0, errmsg);
    else
        wd_rpc_response_encode(&b, id, true, pb, len, errmsg); /* always present on success */
    queue(c, b.data, b.len);
    wd_buf_free(&b);
}

const char *wd_conn_name(const struct wd_conn *c) { return c->name; }
