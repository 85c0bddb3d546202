/* tests/fuzz/fuzz_rpc.c - the RPC framing and decoders of engine/weaver/rpc.c on arbitrary bytes:
 * the input is a byte stream fed to a frame reader in varying chunk sizes; each frame's payload
 * goes through every decoder (both request header generations, arguments, results, error
 * lists) and the protoc-c unpackers of the messages the deployer reads. Corpus: corpus/rpc/. */
#include "engine/weaver/rpc.h"
#include "engine/base/util.h"
#include "tests/fuzz/pb_roundtrip.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "runtime.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ProtobufCMessageDescriptor *const descs[] = {
    &runtime__activate_component_request__descriptor,
    &runtime__export_listener_request__descriptor,
    &runtime__get_listener_address_request__descriptor,
    &runtime__log_entry_batch__descriptor,
    &runtime__trace_spans__descriptor,
    &runtime__init_weavelet_reply__descriptor,
    &runtime__get_health_reply__descriptor,
    &runtime__get_load_reply__descriptor,
    &runtime__get_metrics_reply__descriptor,
    &runtime__weavelet_args__descriptor,
};

static void unpack_all(const uint8_t *pb, size_t n)
{
    for (size_t i = 0; i < WD_ARRAY_LEN(descs); i++)
        pb_roundtrip(descs[i], pb, n);
}

static void check_errlist(const uint8_t *p, size_t n)
{
    char *msg = NULL;
    size_t used = 0;
    if (wd_rpc_errlist_decode(p, n, &msg, &used) == 0) {
        if (used > n)
            abort();
        if (msg != NULL) { /* what we decode we can encode again */
            struct wd_buf b = {0};
            wd_rpc_errlist_encode(&b, msg);
            char *back = NULL;
            size_t u2 = 0;
            if (wd_rpc_errlist_decode(b.data, b.len, &back, &u2) < 0 || u2 != b.len ||
                strcmp(back, msg) != 0)
                abort();
            free(back);
            wd_buf_free(&b);
        }
        free(msg);
    } else if (msg != NULL) {
        abort(); /* out-params are written only on success */
    }
}

static void check_payload(const struct wd_rpc_frame_hdr *h, const uint8_t *p)
{
    size_t n = (size_t)h->len;
    (void)wd_rpc_version_check(h, p);
    for (int f = WD_RPC_HDR_PREFIXED; f <= WD_RPC_HDR_FIXED49; f++) {
        struct wd_rpc_reqhdr rh;
        const uint8_t *args = NULL;
        size_t alen = 0;
        if (wd_rpc_request_decode((enum wd_rpc_hdr_fmt)f, p, n, &rh, &args, &alen) < 0)
            continue;
        if (args < p || alen > n || (size_t)(args - p) != n - alen)
            abort();
        (void)wd_rpc_control_lookup(rh.key);
        bool present;
        const uint8_t *pb;
        size_t pblen;
        if (wd_rpc_args_decode(args, alen, &present, &pb, &pblen) == 0 && present) {
            if (pb < args || pblen > alen || (size_t)(pb - args) + pblen > alen)
                abort();
            unpack_all(pb, pblen);
        }
    }
    bool has;
    const uint8_t *pb;
    size_t pblen;
    char *msg = NULL;
    if (wd_rpc_result_decode(p, n, &has, &pb, &pblen, &msg) == 0) {
        if (has && (pb < p || (size_t)(pb - p) + pblen > n))
            abort();
        if (has)
            unpack_all(pb, pblen);
        free(msg);
    }
    check_errlist(p, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Chunk sizes come from the input itself so the fuzzer explores partial frames too. */
    struct wd_rpc_reader r = {.in.max = 1u << 20};
    size_t off = 0, chunk = size ? (size_t)data[0] % 64 + 1 : 1;
    for (;;) {
        struct wd_rpc_frame_hdr h;
        const uint8_t *p;
        int ret;
        while ((ret = wd_rpc_reader_next(&r, &h, &p)) == 1) {
            if (h.type > WD_RPC_CANCEL || h.len > WD_RPC_MAX_FRAME)
                abort();
            check_payload(&h, p);
        }
        if (ret < 0 || off == size)
            break;
        size_t c = chunk < size - off ? chunk : size - off;
        if (wd_buf_append(&r.in, data + off, c) < 0)
            break;
        off += c;
        chunk = chunk * 3 % 97 + 1;
    }
    wd_rpc_reader_free(&r);

    /* The whole input as one payload, too (no framing needed to reach the decoders). */
    if (size <= WD_RPC_MAX_FRAME) {
        struct wd_rpc_frame_hdr h = {.id = 0, .type = WD_RPC_REQUEST, .len = size};
        check_payload(&h, data);
    }
    return 0;
}
