/* engine/weaver/rpc.h - Service Weaver's RPC wire format (package internal/net/call), as pure
 * functions over byte buffers: no sockets here (engine/weaver/conn.c does the I/O).
 * Reference: ../shared/docs/weaver-protocol.md §4; fixtures in ../shared/fixtures. */
#ifndef WD_RPC_H
#define WD_RPC_H

#include "engine/base/error.h"
#include "engine/base/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WD_RPC_MAX_FRAME (100u << 20) /* 104857600, as weaver */
#define WD_RPC_FRAME_HDR 16
#define WD_RPC_KEY_LEN 16

enum wd_rpc_type {
    WD_RPC_VERSION = 0,
    WD_RPC_REQUEST = 1,
    WD_RPC_RESPONSE = 2,
    WD_RPC_RESPONSE_ERROR = 3,
    WD_RPC_CANCEL = 4,
};

/* Request header generation, chosen per binary from its weaver module version. */
enum wd_rpc_hdr_fmt {
    WD_RPC_HDR_PREFIXED = 0, /* v0.24.4+: u32 hdrLen | key | deadline | trace? | metadata? */
    WD_RPC_HDR_FIXED49 = 1,  /* v0.23.0-beta ... v0.24.3: key | deadline | trace(25) */
};

struct wd_rpc_frame_hdr {
    uint64_t id;
    uint8_t type;
    uint64_t len; /* payload bytes after the 16-byte header */
};

/* Decode the 16-byte frame header. Returns 0, or -EMSGSIZE if len > WD_RPC_MAX_FRAME. */
int wd_rpc_frame_hdr_decode(const uint8_t p[WD_RPC_FRAME_HDR], struct wd_rpc_frame_hdr *h);
/* Encode the 16-byte frame header. */
void wd_rpc_frame_hdr_encode(uint8_t p[WD_RPC_FRAME_HDR], uint64_t id, uint8_t type,
                             uint64_t len);

/* The 20-byte version message (id 0, type 0, payload u32 0). */
void wd_rpc_version_encode(uint8_t out[20]);
/* Validate a version frame's payload (>= 4 bytes). Returns 0 or -EPROTO. */
int wd_rpc_version_check(const struct wd_rpc_frame_hdr *h, const uint8_t *payload);

/* key = first 16 bytes of SHA-256("<component>.<method>"). */
void wd_rpc_method_key(const char *component, const char *method, uint8_t key[WD_RPC_KEY_LEN]);

/* A decoded request header. Metadata entries are validated and skipped. */
struct wd_rpc_reqhdr {
    uint8_t key[WD_RPC_KEY_LEN];
    int64_t deadline_us; /* 0 = none */
    bool has_trace;
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t trace_flags;
};

/* Decode a request payload (the bytes after the frame header). On success *args and
 * *args_len point into payload (borrowed). Returns 0, or -EPROTO for a malformed header
 * (short payload, short header, flag byte not 0/1, has_trace with zero ids); the caller then
 * closes the connection. */
int wd_rpc_request_decode(enum wd_rpc_hdr_fmt fmt, const uint8_t *payload, size_t len,
                          struct wd_rpc_reqhdr *h, const uint8_t **args, size_t *args_len);

/* Append one complete request frame to out: frame header, request header (no deadline, trace
 * or metadata) and arguments `01 | u32 len | pb`, the encoding of a single pointer-to-protobuf
 * argument. pb may be NULL when pb_len is 0 (an empty message, still sent as present). */
void wd_rpc_request_encode(struct wd_buf *out, enum wd_rpc_hdr_fmt fmt, uint64_t id,
                           const uint8_t key[WD_RPC_KEY_LEN], const uint8_t *pb, size_t pb_len);

/* Append a cancel frame (type 4, empty payload). */
void wd_rpc_cancel_encode(struct wd_buf *out, uint64_t id);

/* Decode arguments of a control method: `01 | u32 len | pb` (present) or `00` (nil pointer).
 * A length of 0xffffffff means an empty message. *pb borrowed from p. Returns 0 or -EPROTO. */
int wd_rpc_args_decode(const uint8_t *p, size_t n, bool *present, const uint8_t **pb,
                       size_t *pb_len);

/* Append a type-2 response for a (reply, error) method: `01 | u32 len | pb | errlist` when
 * has_reply, else `00 | errlist`. errmsg NULL = nil error (`00`). */
void wd_rpc_response_encode(struct wd_buf *out, uint64_t id, bool has_reply, const uint8_t *pb,
                            size_t pb_len, const char *errmsg);
/* Append a type-2 response for an error-only method (LogBatch, HandleTraceSpans). */
void wd_rpc_response_err_only_encode(struct wd_buf *out, uint64_t id, const char *errmsg);
/* Append a type-3 frame (handler failure, e.g. "internal error: unknown function"). */
void wd_rpc_response_error_encode(struct wd_buf *out, uint64_t id, const char *errmsg);

/* Append an error list holding one tag-3 entry (message, Go-like format string), or just
 * `00` when msg is NULL. */
void wd_rpc_errlist_encode(struct wd_buf *out, const char *msg);
/* Decode an error list at p. *msg = NULL for a nil error, else the first entry's message
 * (caller frees). Tags 1/2 give *msg = "undecodable error". *used = bytes consumed.
 * Returns 0 or -EPROTO (truncated). */
int wd_rpc_errlist_decode(const uint8_t *p, size_t n, char **msg, size_t *used);

/* Decode the payload of a type-2 response to a (reply, error) method. On success: *has_reply,
 * *pb and *pb_len (borrowed; an empty message when absent), *errmsg (NULL = nil error, else
 * caller frees). Returns 0 or -EPROTO. */
int wd_rpc_result_decode(const uint8_t *p, size_t n, bool *has_reply, const uint8_t **pb,
                         size_t *pb_len, char **errmsg);

/* Incremental frame reader over a byte stream. Feed bytes with wd_buf_append(&r->in, ...),
 * then call wd_rpc_reader_next until it returns 0. */
struct wd_rpc_reader {
    struct wd_buf in;
    size_t done; /* bytes of the frame last returned; dropped at the next call (zero-init) */
};
/* Returns 1 and fills *h and *payload (borrowed, valid until the next call) when a whole frame
 * is buffered; 0 when more bytes are needed; -EMSGSIZE for an oversize length, -EPROTO for an
 * unknown type (both: close the connection). */
int wd_rpc_reader_next(struct wd_rpc_reader *r, struct wd_rpc_frame_hdr *h,
                       const uint8_t **payload);
void wd_rpc_reader_free(struct wd_rpc_reader *r);

/* Names of the control components and the method-name strings used in keys. */
#define WD_DEPLOYER_CONTROL "github.com/ServiceWeaver/weaver/deployerControl"
#define WD_WEAVELET_CONTROL "github.com/ServiceWeaver/weaver/weaveletControl"
#define WD_MAIN_COMPONENT "github.com/ServiceWeaver/weaver/Main"

enum wd_rpc_method {
    /* deployerControl, served by us */
    WD_M_ACTIVATE_COMPONENT,
    WD_M_EXPORT_LISTENER,
    WD_M_GET_LISTENER_ADDRESS,
    WD_M_GET_SELF_CERTIFICATE,
    WD_M_HANDLE_TRACE_SPANS,
    WD_M_LOG_BATCH,
    WD_M_VERIFY_CLIENT_CERTIFICATE,
    WD_M_VERIFY_SERVER_CERTIFICATE,
    /* weaveletControl, called by us */
    WD_M_GET_HEALTH,
    WD_M_GET_LOAD,
    WD_M_GET_METRICS,
    WD_M_GET_PROFILE,
    WD_M_INIT_WEAVELET,
    WD_M_UPDATE_COMPONENTS,
    WD_M_UPDATE_ROUTING_INFO,
    WD_M_COUNT,
    WD_M_UNKNOWN = -1,
};
/* The key of a control method (computed once, cached). */
const uint8_t *wd_rpc_control_key(enum wd_rpc_method m);
/* Find the control method with this key, or WD_M_UNKNOWN. */
enum wd_rpc_method wd_rpc_control_lookup(const uint8_t key[WD_RPC_KEY_LEN]);
/* "ActivateComponent" etc. */
const char *wd_rpc_method_name(enum wd_rpc_method m);

#endif
