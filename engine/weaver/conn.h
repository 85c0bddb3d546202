/* engine/weaver/conn.h - one weaver RPC connection on the event loop: the version handshake,
 * framing, whole-frame writes, request ids, and dispatch. A connection is either a client (we call
 * weaveletControl) or a server (we serve deployerControl). */
#ifndef WD_CONN_H
#define WD_CONN_H

#include "engine/base/loop.h"
#include "engine/weaver/rpc.h"

struct wd_conn;

/* Called with the outcome of a call: errmsg NULL on success (pb/len = reply protobuf, may be
 * empty), else a transport or application error text. Borrowed pointers. */
typedef void (*wd_call_fn)(struct wd_conn *c, const char *errmsg, const uint8_t *pb, size_t len,
                           void *arg);
/* Server side: a request for method m with argument pb (borrowed). Reply with wd_conn_reply
 * (now or later) using id. */
typedef void (*wd_request_fn)(struct wd_conn *c, uint64_t id, enum wd_rpc_method m,
                              const uint8_t *pb, size_t len, void *arg);
/* The connection closed (peer EOF, protocol error, or wd_conn_close). reason is borrowed. The
 * connection is freed right after this returns. */
typedef void (*wd_close_fn)(struct wd_conn *c, const char *reason, void *arg);

struct wd_conn_ops {
    wd_request_fn on_request; /* servers */
    wd_close_fn on_close;
    void *arg;
};

/* Take ownership of a connected (or connecting) non-blocking fd. A client sends the version
 * message at once; calls made before the peer's version reply are queued. */
struct wd_conn *wd_conn_new(struct wd_loop *l, int fd, bool client, enum wd_rpc_hdr_fmt fmt,
                            const struct wd_conn_ops *ops, const char *name);
/* The same over the one stream of a weavelet of weaver v0.20.0-v0.22.0 (two pipes, or a socket
 * standing for both: engine/weaver/pipe.h). It plays both roles: our calls become EnvelopeMsg
 * requests, and the weavelet's requests, log entries (as a LogBatch of one) and spans reach
 * ops.on_request. The first call must be WD_M_INIT_WEAVELET with a packed pipes.EnvelopeInfo
 * (not an InitWeaveletRequest); its reply is the WeaveletInfo, whose numbers are those of
 * InitWeaveletReply. Replies to LogBatch and HandleTraceSpans send nothing: they let reading go
 * on once fewer than 64 are unanswered. */
struct wd_conn *wd_conn_new_pipe(struct wd_loop *l, int fd, const struct wd_conn_ops *ops,
                                 const char *name);
/* Pipes: the weavelet exited; read what its stream still holds and hand on its last log
 * entries and spans (requests and replies are dropped). No-op for other connections. */
void wd_conn_flush_input(struct wd_conn *c);
/* Call a weaveletControl method with argument pb. fn runs exactly once (also on close). */
void wd_conn_call(struct wd_conn *c, enum wd_rpc_method m, const uint8_t *pb, size_t len,
                  wd_call_fn fn, void *arg);
/* Reply to request id: for (reply, error) methods pass has_reply; error-only methods
 * (LogBatch, HandleTraceSpans) ignore pb. errmsg NULL = success. */
void wd_conn_reply(struct wd_conn *c, uint64_t id, enum wd_rpc_method m, const uint8_t *pb,
                   size_t len, const char *errmsg);
/* Close and forget: no callback of this connection runs any more (pending calls are dropped,
 * on_close is not called); the fd is closed and the memory freed on the next loop turn.
 * NULL-safe. (A close the peer causes does run the callbacks.) */
void wd_conn_close(struct wd_conn *c, const char *reason);
const char *wd_conn_name(const struct wd_conn *c);
/* Hex-dump every frame to stderr (WEAVER_DOCKER_TRACE=1). */
void wd_conn_set_trace(bool on);

#endif
