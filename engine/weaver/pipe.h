/* engine/weaver/pipe.h - the two-pipe control protocol of weaver v0.20.0-v0.22.0, as pure
 * functions over byte buffers (engine/weaver/conn.c does the I/O).
 *
 * Every message, both ways, is a u32 little-endian length and that many bytes of protobuf:
 * EnvelopeMsg from us, WeaveletMsg from the weavelet (proto/pipes.proto). The inner messages
 * are those of v0.24.6 (proto/runtime.proto), so the engine's handlers serve both generations:
 * a request of the weavelet maps to the deployerControl method of the same name, and our
 * weaveletControl calls map to the envelope's request fields.
 * Reference: docs/design/old-releases.md §4 (captured from real weavelets). */
#ifndef WD_PIPE_H
#define WD_PIPE_H

#include "engine/weaver/rpc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WD_PIPE_LEN 4
/* Longest message read: as the call protocol's frames (weaver's own limit is 2^31-1, which
 * would let one bad length pin 2 GiB). */
#define WD_PIPE_MAX_MSG WD_RPC_MAX_FRAME

/* Incremental reader: feed r->in with wd_buf_append, then call wd_pipe_reader_next until 0. */
struct wd_pipe_reader {
    struct wd_buf in;
    size_t done; /* bytes of the message last returned; dropped at the next call */
};
/* 1 with *msg and *len (borrowed, valid until the next call) when a whole message is buffered, 0
 * when more bytes are needed, -EMSGSIZE for a length over WD_PIPE_MAX_MSG. */
int wd_pipe_reader_next(struct wd_pipe_reader *r, const uint8_t **msg, size_t *len);
/* Free the buffer; the reader may be used again (zeroed). */
void wd_pipe_reader_free(struct wd_pipe_reader *r);

/* Append one framed EnvelopeMsg to out. */
/* The handshake: EnvelopeMsg{envelope_info} with id 0; info = a packed pipes.EnvelopeInfo. */
void wd_pipe_handshake_encode(struct wd_buf *out, const uint8_t *info, size_t len);
/* The next two return 0, or -ENOTSUP (out unchanged) for a method the pipes do not carry that
 * way or an id <= 0. A request of ours (id > 0): GetHealth, GetMetrics, GetLoad, GetProfile,
 * UpdateRoutingInfo, UpdateComponents, with their v0.24.6 argument message pb. */
int wd_pipe_request_encode(struct wd_buf *out, int64_t id, enum wd_rpc_method m,
                           const uint8_t *pb, size_t len);
/* Our reply to the weavelet's request id (written as -id): success carries the reply field
 * (present even when empty); failure carries only `error`, as weaver's Go envelope does. */
int wd_pipe_reply_encode(struct wd_buf *out, int64_t id, enum wd_rpc_method m, const uint8_t *pb,
                         size_t len, const char *errmsg);

/* A weavelet's log_entry as the LogEntryBatch of one entry that the LogBatch handler of the
 * socket releases takes, appended to out. */
void wd_pipe_log_batch(struct wd_buf *out, const uint8_t *entry, size_t len);

/* What a WeaveletMsg is. */
enum wd_pipe_kind {
    WD_PIPE_HELLO = 1, /* weavelet_info: the answer to the handshake */
    WD_PIPE_LOG,       /* log_entry, one-way */
    WD_PIPE_TRACE,     /* trace_spans, one-way */
    WD_PIPE_REQUEST,   /* the weavelet calls m with id > 0 */
    WD_PIPE_REPLY,     /* the weavelet answers our request id (>0: the sign is undone) */
};

/* A decoded WeaveletMsg; pb and err stay valid until wd_pipe_msg_free. */
struct wd_pipe_msg {
    enum wd_pipe_kind kind;
    int64_t id;           /* REQUEST, REPLY */
    enum wd_rpc_method m; /* REQUEST: the method; REPLY: the reply's method, WD_M_UNKNOWN when
                           * only id (and maybe error) came */
    const uint8_t *pb;    /* the inner message (HELLO, LOG, TRACE, REQUEST, REPLY with a field) */
    size_t len;
    const char *err;      /* REPLY: the error text, NULL when none or empty */
    void *owner;          /* the unpacked message */
};

/* Decode one WeaveletMsg (the bytes after the length). Returns 0, or -EPROTO with *why set (a
 * static string) for bytes that are not a WeaveletMsg, or one this engine cannot act on: a
 * request or reply without an id, a message with several payloads, id > 0 without a request, an
 * id-0 message that is none of hello, log or trace. Either way *out may own memory: call
 * wd_pipe_msg_free after. */
int wd_pipe_weavelet_decode(const uint8_t *p, size_t n, struct wd_pipe_msg *out, const char **why);
/* Free what a decode left in m (its body and error) and zero it. */
void wd_pipe_msg_free(struct wd_pipe_msg *m);

#endif
