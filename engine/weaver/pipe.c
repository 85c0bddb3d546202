#include "engine/weaver/pipe.h"

#include <errno.h>
#include <string.h>

#include "pipes.pb-c.h"

/* ---- framing ---------------------------------------------------------------------------- */

int wd_pipe_reader_next(struct wd_pipe_reader *r, const uint8_t **msg, size_t *len)
{
    if (r->done) {
        wd_buf_consume(&r->in, r->done);
        r->done = 0;
    }
    if (r->in.len < WD_PIPE_LEN)
        return 0;
    uint32_t n = wd_get_u32le(r->in.data);
    if (n > WD_PIPE_MAX_MSG)
        return -EMSGSIZE;
    if (r->in.len - WD_PIPE_LEN < n)
        return 0;
    *msg = r->in.data + WD_PIPE_LEN;
    *len = n;
    r->done = WD_PIPE_LEN + (size_t)n;
    return 1;
}

void wd_pipe_reader_free(struct wd_pipe_reader *r)
{
    wd_buf_free(&r->in);
    r->done = 0;
}

/* ---- EnvelopeMsg, written by hand in field order (as Go's marshaller does) --------------- */

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t i = 0;
    while (v >= 0x80) {
        p[i++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[i++] = (uint8_t)v;
    return i;
}

static void put_bytes_field(struct wd_buf *b, unsigned field, const uint8_t *p, size_t n)
{
    uint8_t h[16];
    size_t k = put_varint(h, (uint64_t)field << 3 | 2);
    k += put_varint(h + k, n);
    wd_buf_append(b, h, k);
    if (n)
        wd_buf_append(b, p, n);
}

/* id (field 1) when non-zero, then one LEN field (if field), then error (9) when non-empty:
 * numbers 3-8 < 9 < 10-15, so the order is the field order except for replies (error first). */
static void envelope_msg(struct wd_buf *out, int64_t id, unsigned field, const uint8_t *pb,
                         size_t len, const char *errmsg)
{
    struct wd_buf m = {0};
    if (id != 0) {
        uint8_t h[16];
        size_t k = put_varint(h, 0x08);
        k += put_varint(h + k, (uint64_t)id);
        wd_buf_append(&m, h, k);
    }
    bool has_err = errmsg && *errmsg;
    if (field && field < 9)
        put_bytes_field(&m, field, pb, len);
    if (has_err)
        put_bytes_field(&m, 9, (const uint8_t *)errmsg, strlen(errmsg));
    if (field > 9)
        put_bytes_field(&m, field, pb, len);
    uint8_t l[WD_PIPE_LEN];
    wd_put_u32le(l, (uint32_t)m.len);
    wd_buf_append(out, l, sizeof l);
    wd_buf_append(out, m.data, m.len);
    wd_buf_free(&m);
}

void wd_pipe_handshake_encode(struct wd_buf *out, const uint8_t *info, size_t len)
{
    envelope_msg(out, 0, 2, info, len, NULL);
}

void wd_pipe_log_batch(struct wd_buf *out, const uint8_t *entry, size_t len)
{
    put_bytes_field(out, 1, entry, len); /* LogEntryBatch.entries = 1 */
}

static unsigned request_field(enum wd_rpc_method m)
{
    switch (m) {
    case WD_M_GET_HEALTH: return 3;
    case WD_M_GET_METRICS: return 4;
    case WD_M_GET_LOAD: return 5;
    case WD_M_GET_PROFILE: return 6;
    case WD_M_UPDATE_ROUTING_INFO: return 7;
    case WD_M_UPDATE_COMPONENTS: return 8;
    default: return 0;
    }
}

static unsigned reply_field(enum wd_rpc_method m)
{
    switch (m) {
    case WD_M_ACTIVATE_COMPONENT: return 10;
    case WD_M_GET_LISTENER_ADDRESS: return 11;
    case WD_M_EXPORT_LISTENER: return 12;
    case WD_M_VERIFY_CLIENT_CERTIFICATE: return 13;
    case WD_M_VERIFY_SERVER_CERTIFICATE: return 14;
    case WD_M_GET_SELF_CERTIFICATE: return 15;
    default: return 0;
    }
}

int wd_pipe_request_encode(struct wd_buf *out, int64_t id, enum wd_rpc_method m,
                           const uint8_t *pb, size_t len)
{
    unsigned f = request_field(m);
    if (f == 0 || id <= 0)
        return -ENOTSUP;
    envelope_msg(out, id, f, pb, len, NULL);
    return 0;
}

int wd_pipe_reply_encode(struct wd_buf *out, int64_t id, enum wd_rpc_method m, const uint8_t *pb,
                         size_t len, const char *errmsg)
{
    unsigned f = reply_field(m);
    if (f == 0 || id <= 0)
        return -ENOTSUP;
    if (errmsg && *errmsg)
        envelope_msg(out, -id, 0, NULL, 0, errmsg);
    else
        envelope_msg(out, -id, f, pb, len, NULL);
    return 0;
}

/* ---- WeaveletMsg ------------------------------------------------------------------------ */

int wd_pipe_weavelet_decode(const uint8_t *p, size_t n, struct wd_pipe_msg *out, const char **why)
{
    memset(out, 0, sizeof *out);
    out->m = WD_M_UNKNOWN;
    Pipes__WeaveletMsg *w = pipes__weavelet_msg__unpack(NULL, n, p);
    if (w == NULL) {
        *why = "malformed WeaveletMsg";
        return -EPROTO;
    }
    out->owner = w;
    struct {
        protobuf_c_boolean has;
        ProtobufCBinaryData *v;
        enum wd_pipe_kind kind;
        enum wd_rpc_method m;
    } f[] = {
        {w->has_weavelet_info, &w->weavelet_info, WD_PIPE_HELLO, WD_M_UNKNOWN},
        {w->has_log_entry, &w->log_entry, WD_PIPE_LOG, WD_M_LOG_BATCH},
        {w->has_trace_spans, &w->trace_spans, WD_PIPE_TRACE, WD_M_HANDLE_TRACE_SPANS},
        {w->has_get_health_reply, &w->get_health_reply, WD_PIPE_REPLY, WD_M_GET_HEALTH},
        {w->has_get_metrics_reply, &w->get_metrics_reply, WD_PIPE_REPLY, WD_M_GET_METRICS},
        {w->has_get_load_reply, &w->get_load_reply, WD_PIPE_REPLY, WD_M_GET_LOAD},
        {w->has_get_profile_reply, &w->get_profile_reply, WD_PIPE_REPLY, WD_M_GET_PROFILE},
        {w->has_update_routing_info_reply, &w->update_routing_info_reply, WD_PIPE_REPLY,
         WD_M_UPDATE_ROUTING_INFO},
        {w->has_update_components_reply, &w->update_components_reply, WD_PIPE_REPLY,
         WD_M_UPDATE_COMPONENTS},
        {w->has_activate_component_request, &w->activate_component_request, WD_PIPE_REQUEST,
         WD_M_ACTIVATE_COMPONENT},
        {w->has_get_listener_address_request, &w->get_listener_address_request,
         WD_PIPE_REQUEST, WD_M_GET_LISTENER_ADDRESS},
        {w->has_export_listener_request, &w->export_listener_request, WD_PIPE_REQUEST,
         WD_M_EXPORT_LISTENER},
        {w->has_verify_client_certificate_request, &w->verify_client_certificate_request,
         WD_PIPE_REQUEST, WD_M_VERIFY_CLIENT_CERTIFICATE},
        {w->has_verify_server_certificate_request, &w->verify_server_certificate_request,
         WD_PIPE_REQUEST, WD_M_VERIFY_SERVER_CERTIFICATE},
        {w->has_get_self_certificate_request, &w->get_self_certificate_request, WD_PIPE_REQUEST,
         WD_M_GET_SELF_CERTIFICATE},
    };
    int found = -1;
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (!f[i].has)
            continue;
        if (found >= 0) {
            *why = "a WeaveletMsg with two payloads";
            return -EPROTO;
        }
        found = (int)i;
    }
    int64_t id = w->has_id ? w->id : 0;
    bool has_err = w->error && *w->error;
    if (found >= 0) {
        out->kind = f[found].kind;
        out->m = f[found].m;
        out->pb = f[found].v->data;
        out->len = f[found].v->len;
    } else if (id < 0) {
        out->kind = WD_PIPE_REPLY; /* only the id (and maybe an error) */
    } else {
        *why = id > 0 ? "a WeaveletMsg with an id and no request" : "an empty WeaveletMsg";
        return -EPROTO;
    }
    switch (out->kind) {
    case WD_PIPE_HELLO:
    case WD_PIPE_LOG:
    case WD_PIPE_TRACE:
        if (id != 0 || has_err) {
            *why = "a one-way WeaveletMsg with an id or an error";
            return -EPROTO;
        }
        break;
    case WD_PIPE_REQUEST:
        if (id <= 0 || has_err) {
            *why = "a weavelet request without a positive id";
            return -EPROTO;
        }
        out->id = id;
        break;
    case WD_PIPE_REPLY:
        if (id >= 0 || id == INT64_MIN) {
            *why = "a weavelet reply without a negative id";
            return -EPROTO;
        }
        out->id = -id;
        out->err = has_err ? w->error : NULL;
        break;
    }
    return 0;
}

void wd_pipe_msg_free(struct wd_pipe_msg *m)
{
    if (m->owner)
        pipes__weavelet_msg__free_unpacked(m->owner, NULL);
    memset(m, 0, sizeof *m);
}
