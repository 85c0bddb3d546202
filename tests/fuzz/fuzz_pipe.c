/* tests/fuzz/fuzz_pipe.c - the pipe protocol of weaver v0.20-v0.22 (engine/weaver/pipe.c) on
 * arbitrary bytes: the input is the weavelet's side of the stream, fed to the reader in varying
 * chunk sizes; every message goes through the WeaveletMsg decoder, its body through the
 * protoc-c unpacker of the message the engine would read for that kind and method, and every
 * request is answered through the reply encoder, whose output must frame and parse again.
 * Corpus: corpus/pipe/ (captured streams and single messages). */
#include "engine/weaver/pipe.h"
#include "engine/base/util.h"
#include "tests/fuzz/pb_roundtrip.h"

#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "pipes.pb-c.h"
#include "runtime.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ProtobufCMessageDescriptor *body_type(const struct wd_pipe_msg *m)
{
    switch (m->kind) {
    case WD_PIPE_HELLO: return &runtime__init_weavelet_reply__descriptor;
    case WD_PIPE_LOG: return &runtime__log_entry__descriptor;
    case WD_PIPE_TRACE: return &runtime__trace_spans__descriptor;
    case WD_PIPE_REQUEST:
        switch (m->m) {
        case WD_M_ACTIVATE_COMPONENT: return &runtime__activate_component_request__descriptor;
        case WD_M_GET_LISTENER_ADDRESS: return &runtime__get_listener_address_request__descriptor;
        case WD_M_EXPORT_LISTENER: return &runtime__export_listener_request__descriptor;
        case WD_M_VERIFY_CLIENT_CERTIFICATE:
            return &runtime__verify_client_certificate_request__descriptor;
        case WD_M_VERIFY_SERVER_CERTIFICATE:
            return &runtime__verify_server_certificate_request__descriptor;
        case WD_M_GET_SELF_CERTIFICATE: return &runtime__get_self_certificate_request__descriptor;
        default: return NULL;
        }
    case WD_PIPE_REPLY:
        switch (m->m) {
        case WD_M_GET_HEALTH: return &runtime__get_health_reply__descriptor;
        case WD_M_GET_LOAD: return &runtime__get_load_reply__descriptor;
        case WD_M_GET_METRICS: return &runtime__get_metrics_reply__descriptor;
        case WD_M_GET_PROFILE: return &runtime__get_profile_reply__descriptor;
        default: return NULL;
        }
    }
    return NULL;
}

static void check_message(const uint8_t *p, size_t n)
{
    struct wd_pipe_msg pm;
    const char *why = NULL;
    if (wd_pipe_weavelet_decode(p, n, &pm, &why) < 0) {
        if (why == NULL)
            abort();
        wd_pipe_msg_free(&pm);
        return;
    }
    if (pm.pb && (pm.len > n))
        abort();
    if ((pm.kind == WD_PIPE_REQUEST || pm.kind == WD_PIPE_REPLY) && pm.id <= 0)
        abort();
    const ProtobufCMessageDescriptor *d = body_type(&pm);
    if (d && pm.pb)
        pb_roundtrip(d, pm.pb, pm.len);
    if (pm.kind == WD_PIPE_REQUEST) { /* our answer frames and parses as an EnvelopeMsg */
        struct wd_buf b = {0};
        if (wd_pipe_reply_encode(&b, pm.id, pm.m, pm.pb, pm.len, pm.len & 1 ? "no" : NULL) < 0)
            abort();
        struct wd_pipe_reader r = {0};
        wd_buf_append(&r.in, b.data, b.len);
        const uint8_t *msg;
        size_t len;
        if (wd_pipe_reader_next(&r, &msg, &len) != 1 || len + WD_PIPE_LEN != b.len)
            abort();
        Pipes__EnvelopeMsg *e = pipes__envelope_msg__unpack(NULL, len, msg);
        if (e == NULL || !e->has_id || e->id != -pm.id)
            abort();
        pipes__envelope_msg__free_unpacked(e, NULL);
        wd_pipe_reader_free(&r);
        wd_buf_free(&b);
    }
    wd_pipe_msg_free(&pm);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wd_pipe_reader r = {.in.max = 1u << 20};
    size_t off = 0, chunk = size ? (size_t)data[0] % 64 + 1 : 1;
    for (;;) {
        const uint8_t *p;
        size_t n;
        int ret;
        while ((ret = wd_pipe_reader_next(&r, &p, &n)) == 1)
            check_message(p, n);
        if (ret < 0 || off == size)
            break;
        size_t c = chunk < size - off ? chunk : size - off;
        if (wd_buf_append(&r.in, data + off, c) < 0)
            break;
        off += c;
        chunk = chunk * 3 % 97 + 1;
    }
    wd_pipe_reader_free(&r);
    /* the whole input as one message, and as the envelope's side */
    check_message(data, size);
    pb_roundtrip(&pipes__envelope_msg__descriptor, data, size);
    return 0;
}
