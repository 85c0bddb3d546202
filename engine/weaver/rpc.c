/* engine/weaver/rpc.c - Service Weaver's RPC wire format (weaver-protocol.md §4): framing, request
 * headers of both generations, argument/result/error-list encodings and method keys.
 * Pure functions over byte buffers. Every length read off the wire is checked against the
 * bytes actually present before it is used. */
#include "engine/weaver/rpc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "engine/base/sha256.h"

/* Bytes of a request header without deadline/trace/metadata in the v0.24.4+ format:
 * key | deadline | has_trace | has_metadata. */
#define PREFIXED_HDR_MIN (WD_RPC_KEY_LEN + 8 + 1 + 1)
#define FIXED49_HDR_LEN (WD_RPC_KEY_LEN + 8 + 16 + 8 + 1)
#define TRACE_LEN (16 + 8 + 1)
#define ERR_TAG_END 0
#define ERR_TAG_VAL 1
#define ERR_TAG_PTR 2
#define ERR_TAG_EMULATED 3

/* ---- framing --------------------------------------------------------------------------- */

int wd_rpc_frame_hdr_decode(const uint8_t p[WD_RPC_FRAME_HDR], struct wd_rpc_frame_hdr *h)
{
    uint64_t w = wd_get_u64le(p + 8);
    uint64_t len = w >> 8;
    if (len > WD_RPC_MAX_FRAME)
        return -EMSGSIZE;
    h->id = wd_get_u64le(p);
    h->type = (uint8_t)w;
    h->len = len;
    return 0;
}

void wd_rpc_frame_hdr_encode(uint8_t p[WD_RPC_FRAME_HDR], uint64_t id, uint8_t type,
                             uint64_t len)
{
    wd_put_u64le(p, id);
    wd_put_u64le(p + 8, (uint64_t)type | (len & 0x00ffffffffffffffu) << 8);
}

void wd_rpc_version_encode(uint8_t out[20])
{
    wd_rpc_frame_hdr_encode(out, 0, WD_RPC_VERSION, 4);
    wd_put_u32le(out + WD_RPC_FRAME_HDR, 0);
}

int wd_rpc_version_check(const struct wd_rpc_frame_hdr *h, const uint8_t *payload)
{
    /* Go's getVersion: id 0, payload >= 4 bytes (extra bytes allowed); any version value is
     * acceptable because both sides use the smaller one and only 0 exists. */
    (void)payload;
    if (h->type != WD_RPC_VERSION || h->id != 0 || h->len < 4)
        return -EPROTO;
    return 0;
}

/* Append a whole frame in one wd_buf_append, so a capped buffer never holds half a frame.
 * If out's cap would be exceeded, or the payload cannot be framed, nothing is appended. */
static void append_frame(struct wd_buf *out, uint64_t id, uint8_t type, const struct wd_buf *pl)
{
    if (pl->len > 0x00ffffffffffffffu || pl->len > SIZE_MAX - WD_RPC_FRAME_HDR)
        return;
    size_t total = WD_RPC_FRAME_HDR + pl->len;
    autofree uint8_t *f = xmalloc(total);
    wd_rpc_frame_hdr_encode(f, id, type, pl->len);
    if (pl->len)
        memcpy(f + WD_RPC_FRAME_HDR, pl->data, pl->len);
    (void)wd_buf_append(out, f, total);
}

void wd_rpc_cancel_encode(struct wd_buf *out, uint64_t id)
{
    struct wd_buf empty = {0};
    append_frame(out, id, WD_RPC_CANCEL, &empty);
}

/* ---- method keys ----------------------------------------------------------------------- */

void wd_rpc_method_key(const char *component, const char *method, uint8_t key[WD_RPC_KEY_LEN])
{
    autofree char *s = xasprintf("%s.%s", component, method);
    uint8_t md[WD_SHA256_LEN];
    wd_sha256(s, strlen(s), md);
    memcpy(key, md, WD_RPC_KEY_LEN);
}

struct control_method {
    const char *name;
    uint8_t key[WD_RPC_KEY_LEN];
};

/* SHA-256("<control component>.<name>")[:16], precomputed (weaver-protocol.md §4.5) so there
 * is no mutable cache; tests/unit/test_rpc.c recomputes every entry with wd_rpc_method_key. */
static const struct control_method control_methods[WD_M_COUNT] = {
    [WD_M_ACTIVATE_COMPONENT] = {"ActivateComponent",
                                 {0xb2, 0x73, 0x3b, 0xe2, 0x4e, 0x8e, 0xb9, 0xd4, 0x69, 0xf7,
                                  0xe6, 0x80, 0xa9, 0x88, 0x38, 0xdc}},
    [WD_M_EXPORT_LISTENER] = {"ExportListener",
                              {0x44, 0xe4, 0x3f, 0xe9, 0x09, 0xf6, 0x3f, 0xfb, 0x97, 0xa7, 0x5a,
                               0x58, 0x0a, 0x3c, 0x95, 0x22}},
    [WD_M_GET_LISTENER_ADDRESS] = {"GetListenerAddress",
                                   {0xdd, 0x38, 0x92, 0xfb, 0xd8, 0x23, 0x47, 0x79, 0x93, 0xfd,
                                    0xee, 0xaf, 0x39, 0x65, 0x5d, 0xe6}},
    [WD_M_GET_SELF_CERTIFICATE] = {"GetSelfCertificate",
                                   {0x38, 0xe4, 0xcd, 0xf2, 0x4c, 0xb0, 0x92, 0xa6, 0xe0, 0xe1,
                                    0xa8, 0xbd, 0xde, 0xfb, 0x86, 0x15}},
    [WD_M_HANDLE_TRACE_SPANS] = {"HandleTraceSpans",
                                 {0x4f, 0xc0, 0x40, 0xb0, 0x19, 0xff, 0x9f, 0xbb, 0x33, 0xd1,
                                  0x8b, 0x28, 0x0d, 0x0b, 0x9c, 0x1f}},
    [WD_M_LOG_BATCH] = {"LogBatch",
                        {0xbb, 0x92, 0xf8, 0xf5, 0xcf, 0x34, 0x07, 0xaf, 0x06, 0x1e, 0xf2, 0xeb,
                         0xdf, 0x81, 0xb9, 0x51}},
    [WD_M_VERIFY_CLIENT_CERTIFICATE] = {"VerifyClientCertificate",
                                        {0x1d, 0xeb, 0xab, 0xed, 0x60, 0xd0, 0x6d, 0x66, 0x6b,
                                         0x7d, 0x0a, 0x38, 0x8f, 0x99, 0x71, 0xf5}},
    [WD_M_VERIFY_SERVER_CERTIFICATE] = {"VerifyServerCertificate",
                                        {0x90, 0xf4, 0x48, 0x71, 0xcf, 0xbb, 0xaa, 0xbc, 0xd5,
                                         0x81, 0x7e, 0xdf, 0x97, 0x44, 0x11, 0xb6}},
    [WD_M_GET_HEALTH] = {"GetHealth",
                         {0x98, 0x00, 0x42, 0x07, 0x19, 0x6b, 0xf4, 0xfa, 0xf2, 0xcf, 0x4c, 0xfb,
                          0x87, 0x85, 0x24, 0x23}},
    [WD_M_GET_LOAD] = {"GetLoad",
                       {0x77, 0x4f, 0xc4, 0x4e, 0xa2, 0x44, 0x25, 0x41, 0x84, 0x84, 0x13, 0x3f,
                        0x73, 0x01, 0x53, 0x38}},
    [WD_M_GET_METRICS] = {"GetMetrics",
                          {0xb2, 0x7b, 0x1c, 0xce, 0xea, 0x54, 0xaa, 0x6a, 0xb3, 0x6f, 0xc3,
                           0x39, 0x87, 0x8d, 0x1e, 0x84}},
    [WD_M_GET_PROFILE] = {"GetProfile",
                          {0x55, 0xcd, 0xe6, 0xc4, 0x4f, 0x6c, 0xfb, 0x60, 0xb4, 0x14, 0x39,
                           0x6a, 0x94, 0x01, 0xf0, 0xbd}},
    [WD_M_INIT_WEAVELET] = {"InitWeavelet",
                            {0xdb, 0xec, 0x91, 0x98, 0x34, 0xfa, 0xbd, 0xd9, 0x7e, 0x23, 0xa2,
                             0x65, 0xf7, 0xf0, 0xdb, 0xa9}},
    [WD_M_UPDATE_COMPONENTS] = {"UpdateComponents",
                                {0x1d, 0xf3, 0x43, 0xdd, 0x9c, 0xe4, 0xe3, 0xe5, 0x5a, 0x33,
                                 0x46, 0x93, 0x72, 0x0c, 0xf3, 0xf1}},
    [WD_M_UPDATE_ROUTING_INFO] = {"UpdateRoutingInfo",
                                  {0xe5, 0xd2, 0xfb, 0x17, 0x5e, 0x99, 0x2f, 0x7b, 0x4c, 0xf8,
                                   0x36, 0x06, 0xc5, 0x5a, 0x50, 0x7a}},
};

const uint8_t *wd_rpc_control_key(enum wd_rpc_method m)
{
    if ((int)m < 0 || m >= WD_M_COUNT)
        return NULL;
    return control_methods[m].key;
}

enum wd_rpc_method wd_rpc_control_lookup(const uint8_t key[WD_RPC_KEY_LEN])
{
    for (int i = 0; i < WD_M_COUNT; i++)
        if (memcmp(control_methods[i].key, key, WD_RPC_KEY_LEN) == 0)
            return (enum wd_rpc_method)i;
    return WD_M_UNKNOWN;
}

const char *wd_rpc_method_name(enum wd_rpc_method m)
{
    if ((int)m < 0 || m >= WD_M_COUNT)
        return "unknown";
    return control_methods[m].name;
}

/* ---- request header -------------------------------------------------------------------- */

static bool all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

/* Read a flag byte that must be 0 or 1 (codegen's Decoder.Bool). */
static int get_bool(const uint8_t *p, size_t n, size_t *off, bool *v)
{
    if (*off >= n || p[*off] > 1)
        return -EPROTO;
    *v = p[(*off)++] == 1;
    return 0;
}

/* Skip a codegen string: u32 LE length, then that many bytes. */
static int skip_string(const uint8_t *p, size_t n, size_t *off)
{
    if (n - *off < 4)
        return -EPROTO;
    uint32_t l = wd_get_u32le(p + *off);
    *off += 4;
    if (l > n - *off)
        return -EPROTO;
    *off += l;
    return 0;
}

/* Decode the v0.24.4+ header h (exactly hdrLen bytes; trailing bytes are ignored as Go does). */
static int decode_prefixed(const uint8_t *p, size_t n, struct wd_rpc_reqhdr *h)
{
    if (n < WD_RPC_KEY_LEN + 8)
        return -EPROTO;
    memcpy(h->key, p, WD_RPC_KEY_LEN);
    h->deadline_us = (int64_t)wd_get_u64le(p + WD_RPC_KEY_LEN);
    size_t off = WD_RPC_KEY_LEN + 8;
    if (get_bool(p, n, &off, &h->has_trace) < 0)
        return -EPROTO;
    if (h->has_trace) {
        if (n - off < TRACE_LEN)
            return -EPROTO;
        memcpy(h->trace_id, p + off, 16);
        memcpy(h->span_id, p + off + 16, 8);
        h->trace_flags = p[off + 24];
        off += TRACE_LEN;
        /* Go closes the connection: "invalid span context". */
        if (all_zero(h->trace_id, 16) || all_zero(h->span_id, 8))
            return -EPROTO;
    }
    bool has_md = false;
    if (get_bool(p, n, &off, &has_md) < 0)
        return -EPROTO;
    if (!has_md)
        return 0;
    if (n - off < 4)
        return -EPROTO;
    int32_t count = (int32_t)wd_get_u32le(p + off);
    off += 4;
    if (count < -1) /* -1 is a nil map */
        return -EPROTO;
    for (int32_t i = 0; i < count; i++)
        if (skip_string(p, n, &off) < 0 || skip_string(p, n, &off) < 0)
            return -EPROTO;
    return 0;
}

int wd_rpc_request_decode(enum wd_rpc_hdr_fmt fmt, const uint8_t *payload, size_t len,
                          struct wd_rpc_reqhdr *h, const uint8_t **args, size_t *args_len)
{
    struct wd_rpc_reqhdr r = {0};
    size_t hdr_end;
    if (fmt == WD_RPC_HDR_PREFIXED) {
        if (len < 4)
            return -EPROTO; /* "missing request header length" */
        uint32_t hlen = wd_get_u32le(payload);
        if (hlen > len - 4)
            return -EPROTO; /* "missing request header" */
        if (decode_prefixed(payload + 4, hlen, &r) < 0)
            return -EPROTO;
        hdr_end = 4 + (size_t)hlen;
    } else if (fmt == WD_RPC_HDR_FIXED49) {
        if (len < FIXED49_HDR_LEN)
            return -EPROTO;
        memcpy(r.key, payload, WD_RPC_KEY_LEN);
        r.deadline_us = (int64_t)wd_get_u64le(payload + WD_RPC_KEY_LEN);
        const uint8_t *t = payload + WD_RPC_KEY_LEN + 8;
        /* A trace context is used only when both ids are non-zero; no error otherwise. */
        if (!all_zero(t, 16) && !all_zero(t + 16, 8)) {
            r.has_trace = true;
            memcpy(r.trace_id, t, 16);
            memcpy(r.span_id, t + 16, 8);
            r.trace_flags = t[24];
        }
        hdr_end = FIXED49_HDR_LEN;
    } else {
        return -EPROTO;
    }
    *h = r;
    *args = payload + hdr_end;
    *args_len = len - hdr_end;
    return 0;
}

/* Append `01 | u32 len | pb` (a present pointer to a protobuf message). The caller has
 * checked pb_len < UINT32_MAX; pb may be NULL only when pb_len is 0. */
static void put_present_pb(struct wd_buf *b, const uint8_t *pb, size_t pb_len)
{
    uint8_t hdr[5] = {1};
    wd_put_u32le(hdr + 1, (uint32_t)pb_len);
    (void)wd_buf_append(b, hdr, sizeof hdr);
    if (pb_len && pb)
        (void)wd_buf_append(b, pb, pb_len);
}

void wd_rpc_request_encode(struct wd_buf *out, enum wd_rpc_hdr_fmt fmt, uint64_t id,
                           const uint8_t key[WD_RPC_KEY_LEN], const uint8_t *pb, size_t pb_len)
{
    if (pb_len >= UINT32_MAX) /* 0xffffffff would read back as an empty message */
        return;
    struct wd_buf pl = {0};
    if (fmt == WD_RPC_HDR_PREFIXED) {
        uint8_t h[4 + PREFIXED_HDR_MIN] = {0};
        wd_put_u32le(h, PREFIXED_HDR_MIN);
        memcpy(h + 4, key, WD_RPC_KEY_LEN);
        (void)wd_buf_append(&pl, h, sizeof h);
    } else {
        uint8_t h[FIXED49_HDR_LEN] = {0};
        memcpy(h, key, WD_RPC_KEY_LEN);
        (void)wd_buf_append(&pl, h, sizeof h);
    }
    put_present_pb(&pl, pb, pb_len);
    append_frame(out, id, WD_RPC_REQUEST, &pl);
    wd_buf_free(&pl);
}

/* ---- arguments and results ------------------------------------------------------------- */

/* Decode `01 | u32 len | pb` or `00` at p; *used = bytes consumed. */
static int get_pb_ptr(const uint8_t *p, size_t n, bool *present, const uint8_t **pb,
                      size_t *pb_len, size_t *used)
{
    if (n < 1 || p[0] > 1)
        return -EPROTO;
    if (p[0] == 0) {
        *present = false;
        *pb = NULL;
        *pb_len = 0;
        *used = 1;
        return 0;
    }
    if (n - 1 < 4)
        return -EPROTO;
    uint32_t l = wd_get_u32le(p + 1);
    if (l == UINT32_MAX) { /* int32 -1: a nil []byte, i.e. an empty message */
        *present = true;
        *pb = p + 5;
        *pb_len = 0;
        *used = 5;
        return 0;
    }
    if (l > n - 5)
        return -EPROTO;
    *present = true;
    *pb = p + 5;
    *pb_len = l;
    *used = 5 + (size_t)l;
    return 0;
}

int wd_rpc_args_decode(const uint8_t *p, size_t n, bool *present, const uint8_t **pb,
                       size_t *pb_len)
{
    /* Like weaver's generated stubs, bytes after the argument are ignored. */
    size_t used;
    return get_pb_ptr(p, n, present, pb, pb_len, &used);
}

int wd_rpc_result_decode(const uint8_t *p, size_t n, bool *has_reply, const uint8_t **pb,
                         size_t *pb_len, char **errmsg)
{
    bool present = false;
    const uint8_t *b = NULL;
    size_t bl = 0, used = 0, eused = 0;
    if (get_pb_ptr(p, n, &present, &b, &bl, &used) < 0)
        return -EPROTO;
    char *msg = NULL;
    if (wd_rpc_errlist_decode(p + used, n - used, &msg, &eused) < 0)
        return -EPROTO;
    *has_reply = present;
    *pb = b;
    *pb_len = bl;
    *errmsg = msg;
    return 0;
}

/* ---- errors ---------------------------------------------------------------------------- */

static void put_string(struct wd_buf *b, const char *s, size_t n)
{
    uint8_t l[4];
    wd_put_u32le(l, (uint32_t)n);
    (void)wd_buf_append(b, l, sizeof l);
    if (n)
        (void)wd_buf_append(b, s, n);
}

/* Decode one UTF-8 sequence as Go's utf8.DecodeRune does: *w = 1 and -1 for an invalid
 * byte (overlong forms, surrogates and values above U+10FFFF are invalid). */
static int32_t decode_rune(const uint8_t *p, size_t n, size_t *w)
{
    uint8_t c = p[0];
    *w = 1;
    if (c < 0x80)
        return c;
    size_t need;
    uint32_t r;
    uint8_t lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1, r = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2, r = c & 0x0fu;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3, r = c & 0x07u;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return -1;
    }
    if (n - 1 < need)
        return -1;
    for (size_t i = 1; i <= need; i++) {
        uint8_t cc = p[i];
        if (cc < (i == 1 ? lo : 0x80) || cc > (i == 1 ? hi : 0xbf))
            return -1;
        r = r << 6 | (cc & 0x3fu);
    }
    *w = need + 1;
    return (int32_t)r;
}

/* An approximation of Go's unicode.IsPrint for non-ASCII runes: everything except the
 * C1 controls, spaces other than U+0020, line/paragraph separators, common format characters,
 * private-use areas and noncharacters. Only the errors.Is "format" string depends on it. */
static bool rune_printable(uint32_t r)
{
    if (r < 0xa1 || r == 0xad)
        return false;
    if (r == 0x1680 || (r >= 0x2000 && r <= 0x200f) || (r >= 0x2028 && r <= 0x202f) ||
        (r >= 0x205f && r <= 0x206f) || r == 0x3000 || r == 0xfeff ||
        (r >= 0xfff9 && r <= 0xfffb))
        return false;
    if ((r >= 0xe000 && r <= 0xf8ff) || r >= 0xf0000 || (r >= 0xfdd0 && r <= 0xfdef) ||
        (r & 0xfffe) == 0xfffe)
        return false;
    return true;
}

/* Append s quoted as Go's strconv.Quote (what %q and %#v produce for a string). */
static void go_quote(struct wd_buf *b, const uint8_t *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    (void)wd_buf_append(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        size_t w;
        int32_t r = decode_rune(s + i, n - i, &w);
        char e[12];
        size_t el = 0;
        if (r < 0) {
            e[el++] = '\\', e[el++] = 'x', e[el++] = hex[s[i] >> 4], e[el++] = hex[s[i] & 15];
        } else if (r == '"' || r == '\\') {
            e[el++] = '\\', e[el++] = (char)r;
        } else if (r >= 0x20 && r < 0x7f) {
            e[el++] = (char)r;
        } else if (r >= 0x80 && rune_printable((uint32_t)r)) {
            memcpy(e, s + i, w);
            el = w;
        } else {
            static const char esc[] = "\a\b\f\n\r\t\v", letter[] = "abfnrtv";
            const char *q = r > 0 && r < 0x20 ? strchr(esc, (char)r) : NULL;
            if (q != NULL) {
                e[el++] = '\\', e[el++] = letter[q - esc];
            } else if (r < 0x20 || r == 0x7f) {
                e[el++] = '\\', e[el++] = 'x', e[el++] = hex[r >> 4], e[el++] = hex[r & 15];
            } else {
                int digits = r < 0x10000 ? 4 : 8;
                e[el++] = '\\', e[el++] = digits == 4 ? 'u' : 'U';
                for (int d = digits - 1; d >= 0; d--)
                    e[el++] = hex[((uint32_t)r >> (4 * d)) & 15];
            }
        }
        (void)wd_buf_append(b, e, el);
        i += w;
    }
    (void)wd_buf_append(b, "\"", 1);
}

void wd_rpc_errlist_encode(struct wd_buf *out, const char *msg)
{
    if (msg == NULL) {
        (void)wd_buf_append(out, "", 1); /* the single 00 of a nil error */
        return;
    }
    size_t n = strlen(msg);
    struct wd_buf fmt = {0};
    (void)wd_buf_append(&fmt, "(:&errors.errorString{s:", 24);
    go_quote(&fmt, (const uint8_t *)msg, n);
    (void)wd_buf_append(&fmt, "})", 2);
    if (n <= UINT32_MAX && fmt.len <= UINT32_MAX) {
        uint8_t tag = ERR_TAG_EMULATED;
        (void)wd_buf_append(out, &tag, 1);
        put_string(out, msg, n);
        put_string(out, (const char *)fmt.data, fmt.len);
    }
    (void)wd_buf_append(out, "", 1); /* end of list */
    wd_buf_free(&fmt);
}

int wd_rpc_errlist_decode(const uint8_t *p, size_t n, char **msg, size_t *used)
{
    autofree char *first = NULL;
    size_t off = 0;
    for (;;) {
        if (off >= n)
            return -EPROTO;
        uint8_t tag = p[off++];
        if (tag == ERR_TAG_END)
            break;
        if (tag == ERR_TAG_VAL || tag == ERR_TAG_PTR) {
            /* A registered error type: its encoding has no length, so the rest of the
             * payload cannot be parsed further. */
            if (first == NULL)
                first = xstrdup("undecodable error");
            off = n;
            break;
        }
        if (tag != ERR_TAG_EMULATED)
            return -EPROTO;
        size_t m = off;
        if (skip_string(p, n, &off) < 0 || skip_string(p, n, &off) < 0)
            return -EPROTO;
        if (first == NULL)
            first = xstrndup((const char *)p + m + 4, wd_get_u32le(p + m));
    }
    *msg = WD_STEAL(first);
    *used = off;
    return 0;
}

/* ---- responses ------------------------------------------------------------------------- */

void wd_rpc_response_encode(struct wd_buf *out, uint64_t id, bool has_reply, const uint8_t *pb,
                            size_t pb_len, const char *errmsg)
{
    if (has_reply && pb_len >= UINT32_MAX)
        return;
    struct wd_buf pl = {0};
    if (has_reply)
        put_present_pb(&pl, pb, pb_len);
    else
        (void)wd_buf_append(&pl, "", 1);
    wd_rpc_errlist_encode(&pl, errmsg);
    append_frame(out, id, WD_RPC_RESPONSE, &pl);
    wd_buf_free(&pl);
}

void wd_rpc_response_err_only_encode(struct wd_buf *out, uint64_t id, const char *errmsg)
{
    struct wd_buf pl = {0};
    wd_rpc_errlist_encode(&pl, errmsg);
    append_frame(out, id, WD_RPC_RESPONSE, &pl);
    wd_buf_free(&pl);
}

void wd_rpc_response_error_encode(struct wd_buf *out, uint64_t id, const char *errmsg)
{
    struct wd_buf pl = {0};
    wd_rpc_errlist_encode(&pl, errmsg);
    append_frame(out, id, WD_RPC_RESPONSE_ERROR, &pl);
    wd_buf_free(&pl);
}

/* ---- incremental reader ---------------------------------------------------------------- */

int wd_rpc_reader_next(struct wd_rpc_reader *r, struct wd_rpc_frame_hdr *h,
                       const uint8_t **payload)
{
    if (r->done) {
        wd_buf_consume(&r->in, r->done);
        r->done = 0;
    }
    if (r->in.len < WD_RPC_FRAME_HDR)
        return 0;
    struct wd_rpc_frame_hdr fh;
    int ret = wd_rpc_frame_hdr_decode(r->in.data, &fh);
    if (ret < 0)
        return ret;
    if (fh.type > WD_RPC_CANCEL)
        return -EPROTO;
    /* fh.len <= WD_RPC_MAX_FRAME, so the additions below cannot overflow. */
    if (r->in.len - WD_RPC_FRAME_HDR < fh.len)
        return 0;
    *h = fh;
    *payload = r->in.data + WD_RPC_FRAME_HDR;
    r->done = WD_RPC_FRAME_HDR + (size_t)fh.len;
    return 1;
}

void wd_rpc_reader_free(struct wd_rpc_reader *r)
{
    wd_buf_free(&r->in);
    r->done = 0;
}
