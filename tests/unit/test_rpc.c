/* tests/unit/test_rpc.c - engine/weaver/rpc.c against the captured weaver v0.24.6 / v0.24.3 traffic
 * in tests/fixtures/ (copied from shared/fixtures) and the worked examples of weaver-protocol.md. */
#include "tests/unit/wd_test.h"
#include "engine/weaver/rpc.h"
#include "engine/base/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <protobuf-c/protobuf-c.h>

#include "runtime.pb-c.h"

#define FIX6 "tests/fixtures/weaver-v0.24.6/"
#define FIX3 "tests/fixtures/weaver-v0.24.3/"
#define FIX232 "tests/fixtures/weaver-v0.23.2/"
/* A mutable copy of a string literal, for protoc-c's `char *` fields. */
#define S(lit) ((char[]){lit})

/* ---- fixture loading ------------------------------------------------------------------- */

struct frame {
    char tag[16];  /* "W1>D", "send", "protobuf", ... */
    char *comment; /* the preceding "# <seq> ..." or "## ..." line, or NULL */
    uint8_t *data;
    size_t len;
};

struct fixture {
    struct frame *f;
    size_t n;
};

static uint8_t *unhex_alloc(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2;
    uint8_t *out = xmalloc(n + 1);
    ssize_t r = wd_unhex(hex, out, n);
    assert_true(r >= 0 && (size_t)r == n);
    *len = n;
    return out;
}

/* Skip '#' lines, split at the first space, hex-decode the rest. */
static void load_fixture(const char *path, struct fixture *fx)
{
    FILE *fp = fopen(path, "re");
    if (fp == NULL)
        fail_msg("cannot open fixture %s (run from the repository root)", path);
    char *line = NULL, *comment = NULL;
    size_t cap = 0;
    ssize_t l;
    fx->f = NULL;
    fx->n = 0;
    while ((l = getline(&line, &cap, fp)) > 0) {
        while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == '\r'))
            line[--l] = 0;
        if (l == 0)
            continue;
        if (line[0] == '#') {
            if ((line[1] == ' ' && line[2] >= '0' && line[2] <= '9') || line[1] == '#') {
                free(comment);
                comment = xstrdup(line);
            }
            continue;
        }
        char *sp = strchr(line, ' ');
        if (sp == NULL || (size_t)(sp - line) >= sizeof fx->f->tag)
            continue;
        *sp = 0;
        if (strcmp(line, "base64") == 0)
            continue; /* weavelet-args: handled separately */
        fx->f = xrealloc(fx->f, (fx->n + 1) * sizeof *fx->f);
        struct frame *f = &fx->f[fx->n++];
        memset(f, 0, sizeof *f);
        memcpy(f->tag, line, (size_t)(sp - line) + 1);
        f->comment = comment ? xstrdup(comment) : NULL;
        f->data = unhex_alloc(sp + 1, &f->len);
    }
    free(line);
    free(comment);
    fclose(fp);
    assert_true(fx->n > 0);
}

static void free_fixture(struct fixture *fx)
{
    for (size_t i = 0; i < fx->n; i++) {
        free(fx->f[i].comment);
        free(fx->f[i].data);
    }
    free(fx->f);
    fx->f = NULL;
    fx->n = 0;
}

/* Frame with "# <seq> " comment. */
static const struct frame *by_seq(const struct fixture *fx, int seq)
{
    char want[32];
    int w = snprintf(want, sizeof want, "# %d ", seq);
    for (size_t i = 0; i < fx->n; i++)
        if (fx->f[i].comment && strncmp(fx->f[i].comment, want, (size_t)w) == 0)
            return &fx->f[i];
    fail_msg("no frame #%d", seq);
    return NULL;
}

/* Value of " key=<decimal>" in a comment. */
static bool comment_u64(const char *c, const char *key, uint64_t *v)
{
    char k[64];
    snprintf(k, sizeof k, " %s=", key);
    const char *p = c ? strstr(c, k) : NULL;
    if (p == NULL)
        return false;
    *v = strtoull(p + strlen(k), NULL, 10);
    return true;
}

static bool comment_has(const char *c, const char *s) { return c && strstr(c, s) != NULL; }

static void assert_hex(const uint8_t *got, size_t n, const char *hex)
{
    size_t l = 0;
    autofree uint8_t *want = unhex_alloc(hex, &l);
    assert_int_equal(n, l);
    assert_memory_equal(got, want, n);
}

/* ---- method keys ----------------------------------------------------------------------- */

static const struct {
    enum wd_rpc_method m;
    const char *comp, *name, *hex;
} keys[] = {
    {WD_M_ACTIVATE_COMPONENT, WD_DEPLOYER_CONTROL, "ActivateComponent",
     "b2733be24e8eb9d469f7e680a98838dc"},
    {WD_M_EXPORT_LISTENER, WD_DEPLOYER_CONTROL, "ExportListener",
     "44e43fe909f63ffb97a75a580a3c9522"},
    {WD_M_GET_LISTENER_ADDRESS, WD_DEPLOYER_CONTROL, "GetListenerAddress",
     "dd3892fbd823477993fdeeaf39655de6"},
    {WD_M_GET_SELF_CERTIFICATE, WD_DEPLOYER_CONTROL, "GetSelfCertificate",
     "38e4cdf24cb092a6e0e1a8bddefb8615"},
    {WD_M_HANDLE_TRACE_SPANS, WD_DEPLOYER_CONTROL, "HandleTraceSpans",
     "4fc040b019ff9fbb33d18b280d0b9c1f"},
    {WD_M_LOG_BATCH, WD_DEPLOYER_CONTROL, "LogBatch", "bb92f8f5cf3407af061ef2ebdf81b951"},
    {WD_M_VERIFY_CLIENT_CERTIFICATE, WD_DEPLOYER_CONTROL, "VerifyClientCertificate",
     "1debabed60d06d666b7d0a388f9971f5"},
    {WD_M_VERIFY_SERVER_CERTIFICATE, WD_DEPLOYER_CONTROL, "VerifyServerCertificate",
     "90f44871cfbbaabcd5817edf974411b6"},
    {WD_M_GET_HEALTH, WD_WEAVELET_CONTROL, "GetHealth", "98004207196bf4faf2cf4cfb87852423"},
    {WD_M_GET_LOAD, WD_WEAVELET_CONTROL, "GetLoad", "774fc44ea24425418484133f73015338"},
    {WD_M_GET_METRICS, WD_WEAVELET_CONTROL, "GetMetrics", "b27b1cceea54aa6ab36fc339878d1e84"},
    {WD_M_GET_PROFILE, WD_WEAVELET_CONTROL, "GetProfile", "55cde6c44f6cfb60b414396a9401f0bd"},
    {WD_M_INIT_WEAVELET, WD_WEAVELET_CONTROL, "InitWeavelet",
     "dbec919834fabdd97e23a265f7f0dba9"},
    {WD_M_UPDATE_COMPONENTS, WD_WEAVELET_CONTROL, "UpdateComponents",
     "1df343dd9ce4e3e55a334693720cf3f1"},
    {WD_M_UPDATE_ROUTING_INFO, WD_WEAVELET_CONTROL, "UpdateRoutingInfo",
     "e5d2fb175e992f7b4cf83606c55a507a"},
};

static void test_method_keys(void **state)
{
    (void)state;
    assert_int_equal(WD_ARRAY_LEN(keys), WD_M_COUNT);
    for (size_t i = 0; i < WD_ARRAY_LEN(keys); i++) {
        uint8_t k[WD_RPC_KEY_LEN];
        wd_rpc_method_key(keys[i].comp, keys[i].name, k);
        assert_hex(k, sizeof k, keys[i].hex);
        assert_memory_equal(wd_rpc_control_key(keys[i].m), k, WD_RPC_KEY_LEN);
        assert_int_equal(wd_rpc_control_lookup(k), keys[i].m);
        assert_string_equal(wd_rpc_method_name(keys[i].m), keys[i].name);
    }
    uint8_t k[WD_RPC_KEY_LEN];
    wd_rpc_method_key("", "ready", k); /* the pre-v0.24.1 server-wide probe */
    assert_hex(k, sizeof k, "e6dd070f74fc6d65214e5e9314a371d2");
    assert_int_equal(wd_rpc_control_lookup(k), WD_M_UNKNOWN);
    wd_rpc_method_key("example.com/shop/Cart", "ready", k);
    assert_hex(k, sizeof k, "e47ebe6cf655321a69c4fc5319b17bfc");
    assert_null(wd_rpc_control_key(WD_M_COUNT));
    assert_null(wd_rpc_control_key(WD_M_UNKNOWN));
}

/* ---- framing basics -------------------------------------------------------------------- */

static void test_frame_basics(void **state)
{
    (void)state;
    uint8_t v[20];
    wd_rpc_version_encode(v);
    assert_hex(v, sizeof v, "0000000000000000000400000000000000000000");
    struct wd_rpc_frame_hdr h;
    assert_int_equal(wd_rpc_frame_hdr_decode(v, &h), 0);
    assert_int_equal(h.id, 0);
    assert_int_equal(h.type, WD_RPC_VERSION);
    assert_int_equal(h.len, 4);
    assert_int_equal(wd_rpc_version_check(&h, v + 16), 0);
    /* probe P2: version 7 plus 4 extra bytes is accepted */
    size_t n;
    autofree uint8_t *p2 = unhex_alloc("0000000000000000000800000000000007000000aabbccdd", &n);
    assert_int_equal(wd_rpc_frame_hdr_decode(p2, &h), 0);
    assert_int_equal(wd_rpc_version_check(&h, p2 + 16), 0);
    struct wd_rpc_frame_hdr bad = {.id = 1, .type = 0, .len = 4};
    assert_int_equal(wd_rpc_version_check(&bad, v + 16), -EPROTO);
    bad = (struct wd_rpc_frame_hdr){.id = 0, .type = 0, .len = 3};
    assert_int_equal(wd_rpc_version_check(&bad, v + 16), -EPROTO);

    uint8_t b[16];
    wd_rpc_frame_hdr_encode(b, 0x0102030405060708u, 2, WD_RPC_MAX_FRAME);
    assert_int_equal(wd_rpc_frame_hdr_decode(b, &h), 0);
    assert_int_equal(h.id, 0x0102030405060708u);
    assert_int_equal(h.type, 2);
    assert_int_equal(h.len, WD_RPC_MAX_FRAME);
    wd_rpc_frame_hdr_encode(b, 1, 1, WD_RPC_MAX_FRAME + 1);
    assert_int_equal(wd_rpc_frame_hdr_decode(b, &h), -EMSGSIZE);
    memset(b + 8, 0xff, 8); /* 56-bit length 2^56-1 */
    assert_int_equal(wd_rpc_frame_hdr_decode(b, &h), -EMSGSIZE);

    struct wd_buf out = {0};
    wd_rpc_cancel_encode(&out, 10); /* W2-weaveletControl.txt #106 */
    assert_hex(out.data, out.len, "0a000000000000000400000000000000");
    wd_buf_free(&out);
}

/* ---- the captured connections ---------------------------------------------------------- */

static const ProtobufCMessageDescriptor *req_desc(enum wd_rpc_method m)
{
    switch (m) {
    case WD_M_ACTIVATE_COMPONENT: return &runtime__activate_component_request__descriptor;
    case WD_M_EXPORT_LISTENER: return &runtime__export_listener_request__descriptor;
    case WD_M_GET_LISTENER_ADDRESS: return &runtime__get_listener_address_request__descriptor;
    case WD_M_GET_SELF_CERTIFICATE: return &runtime__get_self_certificate_request__descriptor;
    case WD_M_HANDLE_TRACE_SPANS: return &runtime__trace_spans__descriptor;
    case WD_M_LOG_BATCH: return &runtime__log_entry_batch__descriptor;
    case WD_M_VERIFY_CLIENT_CERTIFICATE:
        return &runtime__verify_client_certificate_request__descriptor;
    case WD_M_VERIFY_SERVER_CERTIFICATE:
        return &runtime__verify_server_certificate_request__descriptor;
    case WD_M_GET_HEALTH: return &runtime__get_health_request__descriptor;
    case WD_M_GET_LOAD: return &runtime__get_load_request__descriptor;
    case WD_M_GET_METRICS: return &runtime__get_metrics_request__descriptor;
    case WD_M_GET_PROFILE: return &runtime__get_profile_request__descriptor;
    case WD_M_INIT_WEAVELET: return &runtime__init_weavelet_request__descriptor;
    case WD_M_UPDATE_COMPONENTS: return &runtime__update_components_request__descriptor;
    case WD_M_UPDATE_ROUTING_INFO: return &runtime__update_routing_info_request__descriptor;
    default: return NULL;
    }
}

/* NULL for the error-only methods. */
static const ProtobufCMessageDescriptor *reply_desc(enum wd_rpc_method m)
{
    switch (m) {
    case WD_M_ACTIVATE_COMPONENT: return &runtime__activate_component_reply__descriptor;
    case WD_M_EXPORT_LISTENER: return &runtime__export_listener_reply__descriptor;
    case WD_M_GET_LISTENER_ADDRESS: return &runtime__get_listener_address_reply__descriptor;
    case WD_M_GET_SELF_CERTIFICATE: return &runtime__get_self_certificate_reply__descriptor;
    case WD_M_VERIFY_CLIENT_CERTIFICATE:
        return &runtime__verify_client_certificate_reply__descriptor;
    case WD_M_VERIFY_SERVER_CERTIFICATE:
        return &runtime__verify_server_certificate_reply__descriptor;
    case WD_M_GET_HEALTH: return &runtime__get_health_reply__descriptor;
    case WD_M_GET_LOAD: return &runtime__get_load_reply__descriptor;
    case WD_M_GET_METRICS: return &runtime__get_metrics_reply__descriptor;
    case WD_M_GET_PROFILE: return &runtime__get_profile_reply__descriptor;
    case WD_M_INIT_WEAVELET: return &runtime__init_weavelet_reply__descriptor;
    case WD_M_UPDATE_COMPONENTS: return &runtime__update_components_reply__descriptor;
    case WD_M_UPDATE_ROUTING_INFO: return &runtime__update_routing_info_reply__descriptor;
    default: return NULL;
    }
}

/* Unpack pb as d, pack it again and compare (Go and protoc-c both write fields in number
 * order, so the bytes must survive the round trip). */
static void pb_roundtrip(const ProtobufCMessageDescriptor *d, const uint8_t *pb, size_t n)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, n, pb);
    assert_non_null(m);
    size_t sz = protobuf_c_message_get_packed_size(m);
    assert_int_equal(sz, n);
    autofree uint8_t *back = xmalloc(sz + 1);
    assert_int_equal(protobuf_c_message_pack(m, back), sz);
    assert_memory_equal(back, pb, n);
    protobuf_c_message_free_unpacked(m, NULL);
}

static uint64_t rng_state = 88172645463325252u;
static size_t rnd(size_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (size_t)(rng_state % n);
}

/* Feed every frame sent by `from` through a reader in chunks of 1..maxchunk bytes and check
 * that the reader returns exactly those frames. */
static size_t check_reader(const struct fixture *fx, const char *from, size_t maxchunk)
{
    struct wd_buf all = {0};
    size_t want = 0;
    for (size_t i = 0; i < fx->n; i++)
        if (strncmp(fx->f[i].tag, from, strlen(from)) == 0 && fx->f[i].tag[strlen(from)] == '>') {
            assert_int_equal(wd_buf_append(&all, fx->f[i].data, fx->f[i].len), 0);
            want++;
        }
    struct wd_rpc_reader r = {0};
    size_t off = 0, got = 0, fi = 0;
    for (;;) {
        struct wd_rpc_frame_hdr h;
        const uint8_t *pl;
        int ret;
        while ((ret = wd_rpc_reader_next(&r, &h, &pl)) == 1) {
            while (!(strncmp(fx->f[fi].tag, from, strlen(from)) == 0 &&
                     fx->f[fi].tag[strlen(from)] == '>'))
                fi++;
            const struct frame *f = &fx->f[fi++];
            assert_int_equal(16 + h.len, f->len);
            assert_int_equal(h.id, wd_get_u64le(f->data));
            assert_int_equal(h.type, f->data[8]);
            assert_memory_equal(pl, f->data + 16, h.len);
            got++;
        }
        assert_int_equal(ret, 0);
        if (off == all.len)
            break;
        size_t c = 1 + rnd(maxchunk);
        if (c > all.len - off)
            c = all.len - off;
        assert_int_equal(wd_buf_append(&r.in, all.data + off, c), 0);
        off += c;
    }
    assert_int_equal(got, want);
    assert_int_equal(r.in.len, 0);
    wd_rpc_reader_free(&r);
    wd_buf_free(&all);
    return got;
}

struct pending {
    uint64_t id;
    enum wd_rpc_method m;
    bool data_plane;
};

/* Decode one frame of a capture: request header, arguments, results or error lists, checked
 * against the decoded comment; re-encode what we would produce ourselves and compare. */
static void check_frame(const struct frame *f, enum wd_rpc_hdr_fmt fmt, bool control,
                        struct pending *pend, size_t *npend, int *reencoded)
{
    struct wd_rpc_frame_hdr h;
    assert_int_equal(wd_rpc_frame_hdr_decode(f->data, &h), 0);
    assert_int_equal(16 + h.len, f->len);
    const uint8_t *pl = f->data + 16;
    const char *c = f->comment;
    uint64_t cv = 0;
    switch (h.type) {
    case WD_RPC_VERSION:
        assert_int_equal(wd_rpc_version_check(&h, pl), 0);
        break;
    case WD_RPC_REQUEST: {
        struct wd_rpc_reqhdr rh;
        const uint8_t *args;
        size_t alen;
        assert_int_equal(wd_rpc_request_decode(fmt, pl, h.len, &rh, &args, &alen), 0);
        /* the wrong generation never decodes to a known method */
        struct wd_rpc_reqhdr rh2;
        const uint8_t *a2;
        size_t l2;
        enum wd_rpc_hdr_fmt other = fmt == WD_RPC_HDR_PREFIXED ? WD_RPC_HDR_FIXED49
                                                               : WD_RPC_HDR_PREFIXED;
        if (wd_rpc_request_decode(other, pl, h.len, &rh2, &a2, &l2) == 0)
            assert_int_equal(wd_rpc_control_lookup(rh2.key), WD_M_UNKNOWN);
        assert_true(comment_u64(c, "deadline_us", &cv));
        assert_int_equal(rh.deadline_us, (int64_t)cv);
        if (fmt == WD_RPC_HDR_PREFIXED) {
            assert_true(comment_u64(c, "hdrLen", &cv));
            assert_int_equal(wd_get_u32le(pl), cv);
            assert_int_equal(rh.has_trace, !comment_has(c, " trace=-"));
        } else {
            assert_int_equal(rh.has_trace,
                             !comment_has(c, " trace=000000000000000000000000000000000000"));
        }
        if (rh.has_trace) {
            char hex[33];
            wd_hex(rh.trace_id, 16, hex);
            assert_true(comment_has(c, hex));
            wd_hex(rh.span_id, 8, hex);
            assert_true(comment_has(c, hex));
            assert_int_equal(rh.trace_flags, 1);
        }
        enum wd_rpc_method m = wd_rpc_control_lookup(rh.key);
        pend[*npend] = (struct pending){h.id, m, !control};
        (*npend)++;
        if (!control) {
            assert_int_equal(m, WD_M_UNKNOWN);
            break;
        }
        assert_int_not_equal(m, WD_M_UNKNOWN);
        char want[64];
        snprintf(want, sizeof want, "Control.%s ", wd_rpc_method_name(m));
        assert_true(comment_has(c, want));
        bool present;
        const uint8_t *pb;
        size_t pblen;
        assert_int_equal(wd_rpc_args_decode(args, alen, &present, &pb, &pblen), 0);
        assert_true(present);
        assert_true(comment_u64(c, "pblen", &cv));
        assert_int_equal(pblen, cv);
        assert_ptr_equal(pb + pblen, args + alen);
        pb_roundtrip(req_desc(m), pb, pblen);
        /* Requests the deployer sends (no deadline/trace): we produce identical bytes. */
        if (rh.deadline_us == 0 && !rh.has_trace &&
            (fmt == WD_RPC_HDR_FIXED49 || wd_get_u32le(pl) == 26)) {
            struct wd_buf out = {0};
            wd_rpc_request_encode(&out, fmt, h.id, rh.key, pblen ? pb : NULL, pblen);
            assert_int_equal(out.len, f->len);
            assert_memory_equal(out.data, f->data, f->len);
            (*reencoded)++;
            wd_buf_free(&out);
        }
        break;
    }
    case WD_RPC_RESPONSE:
    case WD_RPC_RESPONSE_ERROR: {
        struct pending *p = NULL;
        for (size_t i = 0; i < *npend; i++)
            if (pend[i].id == h.id)
                p = &pend[i];
        assert_non_null(p);
        struct wd_buf out = {0};
        char *msg = NULL;
        if (h.type == WD_RPC_RESPONSE_ERROR) {
            size_t used = 0;
            assert_int_equal(wd_rpc_errlist_decode(pl, h.len, &msg, &used), 0);
            assert_int_equal(used, h.len);
            assert_non_null(msg);
            if (strcmp(msg, "unreachable") != 0) {
                wd_rpc_response_error_encode(&out, h.id, msg);
                assert_int_equal(out.len, f->len);
                assert_memory_equal(out.data, f->data, f->len);
                (*reencoded)++;
            }
        } else if (p->data_plane) {
            /* application results: `ready` has none at all, Add returns (int, error) */
            assert_true(h.len == 0 || h.len == 9);
        } else if (reply_desc(p->m) == NULL) {
            size_t used = 0;
            assert_int_equal(wd_rpc_errlist_decode(pl, h.len, &msg, &used), 0);
            assert_int_equal(used, h.len);
            assert_true(comment_has(c, msg ? "err=[tag3" : "err=nil"));
            wd_rpc_response_err_only_encode(&out, h.id, msg);
            assert_int_equal(out.len, f->len);
            assert_memory_equal(out.data, f->data, f->len);
            (*reencoded)++;
        } else {
            bool has;
            const uint8_t *pb;
            size_t pblen;
            assert_int_equal(wd_rpc_result_decode(pl, h.len, &has, &pb, &pblen, &msg), 0);
            assert_true(comment_has(c, has ? "reply=present" : "reply=nil"));
            assert_true(comment_has(c, msg ? "err=[tag3" : "err=nil"));
            if (has) {
                assert_true(comment_u64(c, "pblen", &cv));
                assert_int_equal(pblen, cv);
                pb_roundtrip(reply_desc(p->m), pb, pblen);
            }
            /* Single errorString errors re-encode exactly; joined ones carry pointers. */
            if (!comment_has(c, "joinError")) {
                wd_rpc_response_encode(&out, h.id, has, pb, pblen, msg);
                assert_int_equal(out.len, f->len);
                assert_memory_equal(out.data, f->data, f->len);
                (*reencoded)++;
            }
        }
        free(msg);
        wd_buf_free(&out);
        break;
    }
    case WD_RPC_CANCEL: {
        assert_int_equal(h.len, 0);
        struct wd_buf out = {0};
        wd_rpc_cancel_encode(&out, h.id);
        assert_memory_equal(out.data, f->data, f->len);
        wd_buf_free(&out);
        break;
    }
    default:
        fail_msg("unexpected type %u", h.type);
    }
}

static void check_version_dir(const char *dir, enum wd_rpc_hdr_fmt fmt)
{
    static const char *const files[] = {"W1-deployerControl.txt", "W1-weaveletControl.txt",
                                        "W2-deployerControl.txt", "W2-weaveletControl.txt",
                                        "dataplane-W1-to-W2.txt"};
    size_t total = 0, read = 0;
    int reencoded = 0;
    for (size_t i = 0; i < WD_ARRAY_LEN(files); i++) {
        char path[256];
        snprintf(path, sizeof path, "%s%s", dir, files[i]);
        struct fixture fx;
        load_fixture(path, &fx);
        struct pending *pend = xcalloc(fx.n, sizeof *pend);
        size_t npend = 0;
        bool control = strncmp(files[i], "dataplane", 9) != 0;
        for (size_t j = 0; j < fx.n; j++)
            check_frame(&fx.f[j], fmt, control, pend, &npend, &reencoded);
        free(pend);
        static const char *const ends[] = {"D", "W1", "W2"};
        for (size_t e = 0; e < WD_ARRAY_LEN(ends); e++) {
            read += check_reader(&fx, ends[e], 7);
            read += check_reader(&fx, ends[e], 4096);
            read += check_reader(&fx, ends[e], 1u << 20);
        }
        total += fx.n;
        free_fixture(&fx);
    }
    assert_int_equal(read, 3 * total);
    assert_true(total >= 100);
    assert_true(reencoded >= 40);
    print_message("%s: %zu frames decoded, %d re-encoded byte-exact\n", dir, total, reencoded);
}

static void test_capture_v0246(void **state)
{
    (void)state;
    check_version_dir(FIX6, WD_RPC_HDR_PREFIXED);
}

static void test_capture_v0243(void **state)
{
    (void)state;
    check_version_dir(FIX3, WD_RPC_HDR_FIXED49);
}

/* weaver v0.23.2 (deployer API v0.23.0): the same control components, method keys and 49-byte
 * header as v0.24.3 (captured by tests/fixtures/harness/regen.sh). */
static void test_capture_v0232(void **state)
{
    (void)state;
    check_version_dir(FIX232, WD_RPC_HDR_FIXED49);
}

/* ---- requests we build from scratch ---------------------------------------------------- */

static void expect_request(const struct frame *f, enum wd_rpc_hdr_fmt fmt,
                           enum wd_rpc_method m, const ProtobufCMessage *msg)
{
    size_t n = msg ? protobuf_c_message_get_packed_size(msg) : 0;
    autofree uint8_t *pb = xmalloc(n + 1);
    if (msg)
        protobuf_c_message_pack(msg, pb);
    struct wd_buf out = {0};
    wd_rpc_request_encode(&out, fmt, wd_get_u64le(f->data), wd_rpc_control_key(m), pb, n);
    assert_int_equal(out.len, f->len);
    assert_memory_equal(out.data, f->data, f->len);
    wd_buf_free(&out);
}

static void test_requests_from_scratch(void **state)
{
    (void)state;
    struct fixture w1, w2;
    load_fixture(FIX6 "W1-weaveletControl.txt", &w1);
    load_fixture(FIX6 "W2-weaveletControl.txt", &w2);

    /* InitWeavelet (#3, §4.10 Example 5): map entries in the captured wire order (the decoded
     * comment in the fixture lists them sorted, as Go's text format does) */
    Runtime__InitWeaveletRequest init;
    runtime__init_weavelet_request__init(&init);
    Runtime__InitWeaveletRequest__SectionsEntry e1;
    runtime__init_weavelet_request__sections_entry__init(&e1);
    Runtime__InitWeaveletRequest__SectionsEntry e2;
    runtime__init_weavelet_request__sections_entry__init(&e2);
    e2.key = S("example.com/shop/Cart");
    e2.value = S("Max = 10\n");
    e1.key = S("serviceweaver");
    e1.value = S("binary = \"./shop\"\ncolocate = [[\"github.com/ServiceWeaver/weaver/Main\", "
                 "\"example.com/shop/Pricer\"], [\"example.com/shop/Cart\", "
                 "\"example.com/shop/Inventory\"]]\n");
    Runtime__InitWeaveletRequest__SectionsEntry *ents[] = {&e1, &e2};
    init.n_sections = 2;
    init.sections = ents;
    expect_request(by_seq(&w1, 3), WD_RPC_HDR_PREFIXED, WD_M_INIT_WEAVELET, &init.base);

    /* UpdateComponents (#17) */
    Runtime__UpdateComponentsRequest uc;
    runtime__update_components_request__init(&uc);
    char *comps[] = {S("example.com/shop/Pricer"), S("github.com/ServiceWeaver/weaver/Main")};
    uc.n_components = 2;
    uc.components = comps;
    expect_request(by_seq(&w1, 17), WD_RPC_HDR_PREFIXED, WD_M_UPDATE_COMPONENTS, &uc.base);

    /* UpdateRoutingInfo, local (#14) and remote (#36, §4.10 Example 4) */
    Runtime__UpdateRoutingInfoRequest ur;
    runtime__update_routing_info_request__init(&ur);
    Runtime__RoutingInfo ri;
    runtime__routing_info__init(&ri);
    ur.routing_info = &ri;
    ri.component = S("example.com/shop/Pricer");
    ri.local = true;
    expect_request(by_seq(&w1, 14), WD_RPC_HDR_PREFIXED, WD_M_UPDATE_ROUTING_INFO, &ur.base);
    char *reps[] = {S("tcp://127.0.0.1:36327")};
    ri.component = S("example.com/shop/Cart");
    ri.local = false;
    ri.n_replicas = 1;
    ri.replicas = reps;
    expect_request(by_seq(&w1, 36), WD_RPC_HDR_PREFIXED, WD_M_UPDATE_ROUTING_INFO, &ur.base);

    /* routed, with an assignment (W2 #54) */
    char *reps2[] = {S("tcp://127.0.0.1:34331")};
    Runtime__Assignment as;
    runtime__assignment__init(&as);
    Runtime__Assignment__Slice sl;
    runtime__assignment__slice__init(&sl);
    Runtime__Assignment__Slice *sls[] = {&sl};
    sl.n_replicas = 1;
    sl.replicas = reps2;
    as.n_slices = 1;
    as.slices = sls;
    as.version = 1;
    ri.component = S("example.com/shop/Inventory");
    ri.replicas = reps2;
    ri.assignment = &as;
    expect_request(by_seq(&w2, 54), WD_RPC_HDR_PREFIXED, WD_M_UPDATE_ROUTING_INFO, &ur.base);

    /* GetHealth (#85): empty message, sent present; pb may be NULL */
    expect_request(by_seq(&w1, 85), WD_RPC_HDR_PREFIXED, WD_M_GET_HEALTH, NULL);
    free_fixture(&w1);
    free_fixture(&w2);

    /* v0.24.3: the same GetHealth in the fixed 49-byte header (#89, id 5) */
    struct fixture o2;
    load_fixture(FIX3 "W2-weaveletControl.txt", &o2);
    expect_request(by_seq(&o2, 89), WD_RPC_HDR_FIXED49, WD_M_GET_HEALTH, NULL);
    free_fixture(&o2);

    /* probe P3-P5: the document's computed requests, accepted by a live weavelet */
    struct fixture pr;
    load_fixture(FIX6 "probe.txt", &pr);
    size_t hits = 0;
    for (size_t i = 0; i < pr.n; i++) {
        const struct frame *f = &pr.f[i];
        if (strcmp(f->tag, "send") || !f->comment || f->len < 16 || f->data[8] != 1)
            continue;
        if (!(strstr(f->comment, "## P3 ") || strstr(f->comment, "## P4 ") ||
              strstr(f->comment, "## P5 ")))
            continue;
        struct wd_rpc_reqhdr rh;
        const uint8_t *args, *pb;
        size_t alen, pblen;
        bool present;
        assert_int_equal(wd_rpc_request_decode(WD_RPC_HDR_PREFIXED, f->data + 16, f->len - 16,
                                               &rh, &args, &alen),
                         0);
        assert_int_equal(wd_rpc_args_decode(args, alen, &present, &pb, &pblen), 0);
        struct wd_buf out = {0};
        wd_rpc_request_encode(&out, WD_RPC_HDR_PREFIXED, wd_get_u64le(f->data), rh.key, pb,
                              pblen);
        assert_int_equal(out.len, f->len);
        assert_memory_equal(out.data, f->data, f->len);
        wd_buf_free(&out);
        hits++;
    }
    assert_int_equal(hits, 3);
    free_fixture(&pr);
}

/* ---- errors ---------------------------------------------------------------------------- */

static const char example8[] =
    "0600000000000000026d000000000000"
    "0003230000006163746976617469"
    "6f6e2064656665727265642062792074657374206861726e6573733f000000283a26"
    "6572726f72732e6572726f72537472696e677b733a22"
    "61637469766174696f6e2064656665727265642062792074657374206861726e657373"
    "227d2900";

static const char unknown_fn[] =
    "0700000000000000036600000000000003200000"
    "00696e7465726e616c206572726f723a20756e6b6e6f776e2066756e6374696f6e3c000000283a"
    "266572726f72732e6572726f72537472696e677b733a22696e7465726e616c206572726f723a20"
    "756e6b6e6f776e2066756e6374696f6e227d2900";

static void test_errors(void **state)
{
    (void)state;
    struct wd_buf out = {0};
    wd_rpc_response_encode(&out, 6, false, NULL, 0, "activation deferred by test harness");
    assert_int_equal(out.len, 125);
    assert_hex(out.data, out.len, example8);
    bool has;
    const uint8_t *pb;
    size_t pblen;
    char *msg = NULL;
    assert_int_equal(wd_rpc_result_decode(out.data + 16, out.len - 16, &has, &pb, &pblen, &msg),
                     0);
    assert_false(has);
    assert_int_equal(pblen, 0);
    assert_string_equal(msg, "activation deferred by test harness");
    free(msg);
    wd_buf_free(&out);

    /* type 3, unknown function (probe P9) */
    size_t n;
    autofree uint8_t *f = unhex_alloc(unknown_fn, &n);
    assert_int_equal(n, 118);
    struct wd_rpc_frame_hdr h;
    assert_int_equal(wd_rpc_frame_hdr_decode(f, &h), 0);
    assert_int_equal(h.type, WD_RPC_RESPONSE_ERROR);
    size_t used = 0;
    msg = NULL;
    assert_int_equal(wd_rpc_errlist_decode(f + 16, h.len, &msg, &used), 0);
    assert_int_equal(used, h.len);
    assert_string_equal(msg, "internal error: unknown function");
    free(msg);
    wd_rpc_response_error_encode(&out, 7, "internal error: unknown function");
    assert_memory_equal(out.data, f, n);
    wd_buf_free(&out);

    /* success reply, LogBatch reply, GetListenerAddress reply (§4.10 Examples 3 and 7) */
    wd_rpc_response_encode(&out, 9, true, NULL, 0, NULL);
    assert_hex(out.data, out.len, "09000000000000000206000000000000010000000000");
    wd_buf_free(&out);
    wd_rpc_response_err_only_encode(&out, 1, NULL);
    assert_hex(out.data, out.len, "0100000000000000020100000000000000");
    wd_buf_free(&out);
    Runtime__GetListenerAddressReply la;
    runtime__get_listener_address_reply__init(&la);
    la.address = S("localhost:0");
    uint8_t buf[64];
    size_t bl = runtime__get_listener_address_reply__pack(&la, buf);
    wd_rpc_response_encode(&out, 14, true, buf, bl, NULL);
    assert_hex(out.data, out.len,
               "0e000000000000000213000000000000"
               "010d0000000a0b6c6f63616c686f73743a3000");
    wd_buf_free(&out);

    /* nil error list; present-but-nil (0xffffffff) reply */
    wd_rpc_errlist_encode(&out, NULL);
    assert_hex(out.data, out.len, "00");
    char dummy[] = "x";
    msg = dummy;
    assert_int_equal(wd_rpc_errlist_decode(out.data, out.len, &msg, &used), 0);
    assert_null(msg);
    assert_int_equal(used, 1);
    wd_buf_free(&out);
    static const uint8_t nilpb[] = {1, 0xff, 0xff, 0xff, 0xff, 0};
    assert_int_equal(wd_rpc_result_decode(nilpb, sizeof nilpb, &has, &pb, &pblen, &msg), 0);
    assert_true(has);
    assert_int_equal(pblen, 0);
    assert_null(msg);
    static const uint8_t nilnil[] = {0, 0}; /* local UpdateRoutingInfo reply */
    assert_int_equal(wd_rpc_result_decode(nilnil, sizeof nilnil, &has, &pb, &pblen, &msg), 0);
    assert_false(has);
    assert_null(msg);
}

static void test_error_quoting(void **state)
{
    (void)state;
    static const struct {
        const char *msg, *fmt;
    } cases[] = {
        {"plain", "(:&errors.errorString{s:\"plain\"})"},
        {"q\"b\\s", "(:&errors.errorString{s:\"q\\\"b\\\\s\"})"},
        {"a\nb\tc\x01\x7f", "(:&errors.errorString{s:\"a\\nb\\tc\\x01\\x7f\"})"},
        {"caf\xc3\xa9 \xff\xc3", "(:&errors.errorString{s:\"caf\xc3\xa9 \\xff\\xc3\"})"},
        {"\xc2\xa0\xe2\x80\xa8\xf0\x9f\x98\x80",
         "(:&errors.errorString{s:\"\\u00a0\\u2028\xf0\x9f\x98\x80\"})"},
        {"\xed\xa0\x80", "(:&errors.errorString{s:\"\\xed\\xa0\\x80\"})"}, /* surrogate */
        {"\xc0\xaf", "(:&errors.errorString{s:\"\\xc0\\xaf\"})"},          /* overlong */
        {"\xf3\xb0\x80\x80", "(:&errors.errorString{s:\"\\U000f0000\"})"}, /* private use */
    };
    for (size_t i = 0; i < WD_ARRAY_LEN(cases); i++) {
        struct wd_buf out = {0};
        wd_rpc_errlist_encode(&out, cases[i].msg);
        size_t ml = strlen(cases[i].msg), fl = strlen(cases[i].fmt);
        assert_int_equal(out.len, 1 + 4 + ml + 4 + fl + 1);
        assert_int_equal(out.data[0], 3);
        assert_int_equal(wd_get_u32le(out.data + 1), ml);
        assert_memory_equal(out.data + 5, cases[i].msg, ml);
        assert_int_equal(wd_get_u32le(out.data + 5 + ml), fl);
        assert_memory_equal(out.data + 9 + ml, cases[i].fmt, fl);
        assert_int_equal(out.data[out.len - 1], 0);
        char *msg = NULL;
        size_t used = 0;
        assert_int_equal(wd_rpc_errlist_decode(out.data, out.len, &msg, &used), 0);
        assert_string_equal(msg, cases[i].msg);
        assert_int_equal(used, out.len);
        free(msg);
        wd_buf_free(&out);
    }
}

static void test_errlist_edge_cases(void **state)
{
    (void)state;
    char *msg = NULL;
    size_t used = 0;
    /* tags 1/2 cannot be skipped: "undecodable error", rest consumed */
    static const uint8_t tag1[] = {1, 3, 0, 0, 0, 'a', 'b', 'c', 9, 9};
    assert_int_equal(wd_rpc_errlist_decode(tag1, sizeof tag1, &msg, &used), 0);
    assert_string_equal(msg, "undecodable error");
    assert_int_equal(used, sizeof tag1);
    free(msg);
    static const uint8_t tag2[] = {2};
    assert_int_equal(wd_rpc_errlist_decode(tag2, sizeof tag2, &msg, &used), 0);
    assert_string_equal(msg, "undecodable error");
    free(msg);
    /* first of several tag-3 entries */
    static const uint8_t two[] = {3, 1, 0, 0, 0, 'x', 0, 0, 0, 0, /* entry 1 */
                                  3, 1, 0, 0, 0, 'y', 0, 0, 0, 0, /* entry 2 */
                                  0};
    assert_int_equal(wd_rpc_errlist_decode(two, sizeof two, &msg, &used), 0);
    assert_string_equal(msg, "x");
    assert_int_equal(used, sizeof two);
    free(msg);
    /* malformed: empty, unknown tag, truncated strings, missing end, huge length */
    msg = NULL;
    static const uint8_t bad4[] = {4};
    static const uint8_t trunc1[] = {3, 5, 0, 0, 0, 'a'};
    static const uint8_t trunc2[] = {3, 1, 0, 0, 0, 'a', 0, 0};
    static const uint8_t noend[] = {3, 1, 0, 0, 0, 'a', 0, 0, 0, 0};
    static const uint8_t huge[] = {3, 0xff, 0xff, 0xff, 0xff, 'a', 0, 0, 0, 0, 0};
    assert_int_equal(wd_rpc_errlist_decode(bad4, 0, &msg, &used), -EPROTO);
    assert_int_equal(wd_rpc_errlist_decode(bad4, sizeof bad4, &msg, &used), -EPROTO);
    assert_int_equal(wd_rpc_errlist_decode(trunc1, sizeof trunc1, &msg, &used), -EPROTO);
    assert_int_equal(wd_rpc_errlist_decode(trunc2, sizeof trunc2, &msg, &used), -EPROTO);
    assert_int_equal(wd_rpc_errlist_decode(noend, sizeof noend, &msg, &used), -EPROTO);
    assert_int_equal(wd_rpc_errlist_decode(huge, sizeof huge, &msg, &used), -EPROTO);
    assert_null(msg);

    /* results: bad presence flag, truncated lengths, missing error list */
    bool has;
    const uint8_t *pb;
    size_t pblen;
    static const uint8_t r1[] = {2, 0};
    static const uint8_t r2[] = {1, 2, 0, 0};
    static const uint8_t r3[] = {1, 2, 0, 0, 0, 8, 1};
    static const uint8_t r4[] = {1, 0, 0, 0x80, 0, 0};
    assert_int_equal(wd_rpc_result_decode(r1, 0, &has, &pb, &pblen, &msg), -EPROTO);
    assert_int_equal(wd_rpc_result_decode(r1, sizeof r1, &has, &pb, &pblen, &msg), -EPROTO);
    assert_int_equal(wd_rpc_result_decode(r2, sizeof r2, &has, &pb, &pblen, &msg), -EPROTO);
    assert_int_equal(wd_rpc_result_decode(r3, sizeof r3, &has, &pb, &pblen, &msg), -EPROTO);
    assert_int_equal(wd_rpc_result_decode(r4, sizeof r4, &has, &pb, &pblen, &msg), -EPROTO);
    assert_null(msg);
}

/* ---- protobuf -------------------------------------------------------------------------- */

static void reply_pb(const struct frame *f, const uint8_t **pb, size_t *n)
{
    bool has;
    char *msg = NULL;
    assert_int_equal(wd_rpc_result_decode(f->data + 16, f->len - 16, &has, pb, n, &msg), 0);
    assert_true(has);
    assert_null(msg);
}

static void args_pb(const struct frame *f, const uint8_t **pb, size_t *n)
{
    struct wd_rpc_reqhdr rh;
    const uint8_t *a;
    size_t al;
    bool present;
    assert_int_equal(
        wd_rpc_request_decode(WD_RPC_HDR_PREFIXED, f->data + 16, f->len - 16, &rh, &a, &al), 0);
    assert_int_equal(wd_rpc_args_decode(a, al, &present, pb, n), 0);
    assert_true(present);
}

static void test_protobuf_payloads(void **state)
{
    (void)state;
    struct fixture w1c, w1d, w2c;
    load_fixture(FIX6 "W1-weaveletControl.txt", &w1c);
    load_fixture(FIX6 "W1-deployerControl.txt", &w1d);
    load_fixture(FIX6 "W2-weaveletControl.txt", &w2c);
    const uint8_t *pb;
    size_t n;

    reply_pb(by_seq(&w1c, 4), &pb, &n);
    Runtime__InitWeaveletReply *ir = runtime__init_weavelet_reply__unpack(NULL, n, pb);
    assert_non_null(ir);
    assert_string_equal(ir->dial_addr, "tcp://127.0.0.1:40917");
    assert_non_null(ir->version);
    assert_int_equal(ir->version->major, 0);
    assert_int_equal(ir->version->minor, 24);
    assert_int_equal(ir->version->patch, 0);
    runtime__init_weavelet_reply__free_unpacked(ir, NULL);

    args_pb(by_seq(&w1d, 9), &pb, &n);
    Runtime__LogEntryBatch *lb = runtime__log_entry_batch__unpack(NULL, n, pb);
    assert_non_null(lb);
    assert_true(lb->n_entries >= 2);
    Runtime__LogEntry *e = lb->entries[0];
    assert_string_equal(e->app, "shop");
    assert_string_equal(e->version, "11111111-2222-4333-8444-555555555555");
    assert_string_equal(e->component, "weavelet");
    assert_string_equal(e->node, "00000000-0000-4000-8000-000000000001");
    assert_int_equal(e->time_micros, INT64_C(1795654687561230));
    assert_string_equal(e->level, "DEBUG");
    assert_int_equal(e->line, 524);
    assert_string_equal(e->msg, "Connecting to remote");
    assert_int_equal(e->n_attrs, 4);
    assert_string_equal(e->attrs[0], "serviceweaver/system");
    assert_string_equal(e->attrs[1], "");
    runtime__log_entry_batch__free_unpacked(lb, NULL);

    reply_pb(by_seq(&w2c, 90), &pb, &n);
    Runtime__GetHealthReply *hr = runtime__get_health_reply__unpack(NULL, n, pb);
    assert_non_null(hr);
    assert_int_equal(hr->status, RUNTIME__HEALTH_STATUS__HEALTHY);
    assert_int_equal(hr->n_healthy_components, 2);
    assert_string_equal(hr->healthy_components[0], "example.com/shop/Cart");
    assert_string_equal(hr->healthy_components[1], "example.com/shop/Inventory");
    runtime__get_health_reply__free_unpacked(hr, NULL);

    reply_pb(by_seq(&w2c, 96), &pb, &n);
    Runtime__GetLoadReply *gl = runtime__get_load_reply__unpack(NULL, n, pb);
    assert_non_null(gl);
    assert_non_null(gl->load);
    assert_int_equal(gl->load->n_loads, 1);
    assert_string_equal(gl->load->loads[0]->key, "example.com/shop/Inventory");
    Runtime__LoadReport__ComponentLoad *cl = gl->load->loads[0]->value;
    assert_int_equal(cl->version, 1);
    assert_int_equal(cl->n_load, 1);
    assert_true(cl->load[0]->end == UINT64_MAX);
    assert_int_equal(cl->load[0]->size, 2);
    assert_true(cl->load[0]->load > 0.3 && cl->load[0]->load < 0.4);
    runtime__get_load_reply__free_unpacked(gl, NULL);

    reply_pb(by_seq(&w2c, 109), &pb, &n);
    Runtime__GetMetricsReply *gm = runtime__get_metrics_reply__unpack(NULL, n, pb);
    assert_non_null(gm);
    assert_non_null(gm->update);
    assert_true(gm->update->n_defs > 0);
    bool hist = false;
    for (size_t i = 0; i < gm->update->n_defs; i++)
        if (gm->update->defs[i]->typ == RUNTIME__METRIC_TYPE__HISTOGRAM &&
            gm->update->defs[i]->n_bounds > 0)
            hist = true;
    assert_true(hist);
    runtime__get_metrics_reply__free_unpacked(gm, NULL);

    args_pb(by_seq(&w1d, 81), &pb, &n);
    Runtime__TraceSpans *ts = runtime__trace_spans__unpack(NULL, n, pb);
    assert_non_null(ts);
    assert_true(ts->n_span > 0);
    assert_string_equal(ts->span[0]->name, "main.Pricer.Price");
    assert_int_equal(ts->span[0]->trace_id.len, 16);
    assert_int_equal(ts->span[0]->span_id.len, 8);
    runtime__trace_spans__free_unpacked(ts, NULL);

    free_fixture(&w1c);
    free_fixture(&w1d);
    free_fixture(&w2c);

    /* §10.3: LogEntry{line: -1, time_micros: 1} */
    Runtime__LogEntry le;
    runtime__log_entry__init(&le);
    le.line = -1;
    le.time_micros = 1;
    uint8_t buf[64];
    size_t bl = runtime__log_entry__pack(&le, buf);
    assert_hex(buf, bl, "29010000000000000040ffffffffffffffffff01");

    /* truncated protobuf is rejected */
    assert_null(runtime__log_entry__unpack(NULL, bl - 1, buf));
}

static void test_weavelet_args(void **state)
{
    (void)state;
    Runtime__WeaveletArgs a;
    runtime__weavelet_args__init(&a);
    Runtime__WeaveletArgs__Redirect r;
    runtime__weavelet_args__redirect__init(&r);
    Runtime__WeaveletArgs__Redirect *rs[] = {&r};
    a.app = S("shop");
    a.deployment_id = S("dep-1");
    a.id = S("w-1");
    a.run_main = true;
    a.internal_address = S("10.0.0.7:0");
    r.component = S(WD_DEPLOYER_CONTROL);
    r.target = S(WD_DEPLOYER_CONTROL);
    r.address = S("unix:///run/wv/d.sock");
    a.n_redirects = 1;
    a.redirects = rs;
    a.control_socket = S("/run/wv/w1.sock");
    size_t n = runtime__weavelet_args__get_packed_size(&a);
    assert_int_equal(n, 172);
    uint8_t pb[172];
    assert_int_equal(runtime__weavelet_args__pack(&a, pb), 172);
    assert_hex(pb, n,
               "0a0473686f7012056465702d311a03772d313801520a31302e302e302e373a3062790a2f67697468"
               "75622e636f6d2f536572766963655765617665722f7765617665722f6465706c6f796572436f6e74"
               "726f6c122f6769746875622e636f6d2f536572766963655765617665722f7765617665722f646570"
               "6c6f796572436f6e74726f6c1a15756e69783a2f2f2f72756e2f77762f642e736f636b6a0f2f7275"
               "6e2f77762f77312e736f636b");
    char b64[4 * ((172 + 2) / 3) + 1];
    int bn = EVP_EncodeBlock((unsigned char *)b64, pb, (int)n);
    assert_int_equal(bn, 232);
    assert_string_equal(
        b64, "CgRzaG9wEgVkZXAtMRoDdy0xOAFSCjEwLjAuMC43OjBieQovZ2l0aHViLmNvbS9TZXJ2aWNlV2VhdmVy"
             "L3dlYXZlci9kZXBsb3llckNvbnRyb2wSL2dpdGh1Yi5jb20vU2VydmljZVdlYXZlci93ZWF2ZXIvZGVw"
             "bG95ZXJDb250cm9sGhV1bml4Oi8vL3J1bi93di9kLnNvY2tqDy9ydW4vd3YvdzEuc29jaw==");

    /* the captured WEAVELET_ARGS: round trip through protoc-c */
    static const char *const files[] = {FIX6 "weavelet-args-w1.txt", FIX6 "weavelet-args-w2.txt",
                                        FIX3 "weavelet-args-w1.txt", FIX3 "weavelet-args-w2.txt"};
    for (size_t i = 0; i < WD_ARRAY_LEN(files); i++) {
        struct fixture fx;
        load_fixture(files[i], &fx);
        assert_string_equal(fx.f[0].tag, "protobuf");
        Runtime__WeaveletArgs *w = runtime__weavelet_args__unpack(NULL, fx.f[0].len, fx.f[0].data);
        assert_non_null(w);
        assert_string_equal(w->app, "shop");
        assert_int_equal(w->n_redirects, 1);
        assert_string_equal(w->redirects[0]->component, WD_DEPLOYER_CONTROL);
        assert_int_equal(w->run_main, i % 2 == 0);
        runtime__weavelet_args__free_unpacked(w, NULL);
        pb_roundtrip(&runtime__weavelet_args__descriptor, fx.f[0].data, fx.f[0].len);
        free_fixture(&fx);
    }
}

/* ---- malformed input ------------------------------------------------------------------- */

static int decode_hex_req(enum wd_rpc_hdr_fmt fmt, const char *hex)
{
    size_t n;
    autofree uint8_t *f = unhex_alloc(hex, &n);
    struct wd_rpc_frame_hdr h;
    if (n < 16 || wd_rpc_frame_hdr_decode(f, &h) < 0 || h.len != n - 16)
        fail_msg("bad test frame");
    struct wd_rpc_reqhdr rh = {.deadline_us = 42};
    const uint8_t *args = NULL;
    size_t alen = 99;
    int r = wd_rpc_request_decode(fmt, f + 16, n - 16, &rh, &args, &alen);
    if (r < 0) { /* out-params untouched on failure */
        assert_int_equal(rh.deadline_us, 42);
        assert_null(args);
        assert_int_equal(alen, 99);
    }
    return r;
}

/* Feed one hex frame to a fresh reader. */
static int read_hex(const char *hex)
{
    size_t n;
    autofree uint8_t *f = unhex_alloc(hex, &n);
    struct wd_rpc_reader r = {0};
    assert_int_equal(wd_buf_append(&r.in, f, n), 0);
    struct wd_rpc_frame_hdr h;
    const uint8_t *p;
    int ret = wd_rpc_reader_next(&r, &h, &p);
    wd_rpc_reader_free(&r);
    return ret;
}

static void test_malformed(void **state)
{
    (void)state;
    const enum wd_rpc_hdr_fmt P = WD_RPC_HDR_PREFIXED, F = WD_RPC_HDR_FIXED49;
    /* P18 payload shorter than 4 bytes */
    assert_int_equal(decode_hex_req(P, "010000000000000001020000000000000100"), -EPROTO);
    /* P20 has_trace byte 2 */
    assert_int_equal(decode_hex_req(P, "010000000000000001230000000000001a00000098004207196bf4faf2"
                                       "cf4cfb87852423000000000000000002000100000000"),
                     -EPROTO);
    /* P16 has_trace with all-zero ids */
    assert_int_equal(
        decode_hex_req(P, "0100000000000000013c0000000000003300000098004207196bf4faf2cf4cfb87852423"
                          "00000000000000000100000000000000000000000000000000000000000000000000"
                          "000100000000"),
        -EPROTO);
    /* trace id set, span id zero */
    assert_int_equal(
        decode_hex_req(P, "0100000000000000013c0000000000003300000098004207196bf4faf2cf4cfb87852423"
                          "00000000000000000101000000000000000000000000000000000000000000000000"
                          "000100000000"),
        -EPROTO);
    /* P21 header truncated: hdrLen 25, has_metadata missing */
    assert_int_equal(decode_hex_req(P, "0100000000000000011d0000000000001900000098004207196bf4faf2"
                                       "cf4cfb87852423000000000000000000"),
                     -EPROTO);
    /* hdrLen beyond the payload; P17: the old header sent to a new server */
    assert_int_equal(decode_hex_req(P, "010000000000000001230000000000002000000098004207196bf4faf2"
                                       "cf4cfb87852423000000000000000000000100000000"),
                     -EPROTO);
    assert_int_equal(decode_hex_req(P, "0100000000000000013600000000000098004207196bf4faf2cf4cfb87"
                                       "8524230000000000000000000000000000000000000000000000000000"
                                       "000000000000000100000000"),
                     -EPROTO);
    /* M1: new-format GetHealth (35 bytes) sent to an old server */
    assert_int_equal(decode_hex_req(F, "010000000000000001230000000000001a00000098004207196bf4faf2"
                                       "cf4cfb87852423000000000000000000000100000000"),
                     -EPROTO);
    /* P12: hdrLen 30, 4 trailing bytes ignored */
    assert_int_equal(decode_hex_req(P, "0a0000000000000001270000000000001e00000098004207196bf4faf2"
                                       "cf4cfb8785242300000000000000000000000000000100000000"),
                     0);
    /* metadata: truncated count, truncated key, value length past the header */
    assert_int_equal(decode_hex_req(P, "01000000000000000120000000000000"
                                       "1c00000098004207196bf4faf2cf4cfb87852423"
                                       "000000000000000000010100"),
                     -EPROTO);
    assert_int_equal(decode_hex_req(P, "01000000000000000127000000000000"
                                       "2300000098004207196bf4faf2cf4cfb87852423"
                                       "00000000000000000001010000000200000061"),
                     -EPROTO);
    assert_int_equal(decode_hex_req(P, "0100000000000000012c000000000000"
                                       "2800000098004207196bf4faf2cf4cfb87852423"
                                       "000000000000000000010100000001000000610500000076"),
                     -EPROTO);
    /* count 0, count -1 (a nil map) are fine; -2 is not */
    assert_int_equal(decode_hex_req(P, "01000000000000000122000000000000"
                                       "1e00000098004207196bf4faf2cf4cfb87852423"
                                       "0000000000000000000100000000"),
                     0);
    assert_int_equal(decode_hex_req(P, "01000000000000000122000000000000"
                                       "1e00000098004207196bf4faf2cf4cfb87852423"
                                       "00000000000000000001ffffffff"),
                     0);
    assert_int_equal(decode_hex_req(P, "01000000000000000122000000000000"
                                       "1e00000098004207196bf4faf2cf4cfb87852423"
                                       "00000000000000000001feffffff"),
                     -EPROTO);
    /* metadata flag 2 */
    assert_int_equal(decode_hex_req(P, "0100000000000000011e000000000000"
                                       "1a00000098004207196bf4faf2cf4cfb87852423"
                                       "00000000000000000002"),
                     -EPROTO);
    /* fixed49: 48 bytes is too short; 49 is a request without arguments */
    uint8_t buf[49] = {0};
    struct wd_rpc_reqhdr rh;
    const uint8_t *args;
    size_t alen;
    assert_int_equal(wd_rpc_request_decode(F, buf, 48, &rh, &args, &alen), -EPROTO);
    assert_int_equal(wd_rpc_request_decode(F, buf, 49, &rh, &args, &alen), 0);
    assert_int_equal(alen, 0);
    assert_false(rh.has_trace);
    buf[24] = 1; /* trace id set but span id zero: no trace, no error (old format) */
    assert_int_equal(wd_rpc_request_decode(F, buf, 49, &rh, &args, &alen), 0);
    assert_false(rh.has_trace);
    assert_int_equal(wd_rpc_request_decode(P, buf, 0, &rh, &args, &alen), -EPROTO);
    assert_int_equal(wd_rpc_request_decode((enum wd_rpc_hdr_fmt)7, buf, 49, &rh, &args, &alen),
                     -EPROTO);

    /* arguments */
    bool present = true;
    const uint8_t *pb = NULL;
    size_t pblen = 0;
    static const uint8_t nilarg[] = {0};           /* P8 / P11 */
    static const uint8_t p10[] = {1, 0xff, 0xff, 0, 0}; /* P10 */
    static const uint8_t flag2[] = {2, 0, 0, 0, 0};
    static const uint8_t shortlen[] = {1, 0, 0};
    static const uint8_t empty[] = {1, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(wd_rpc_args_decode(nilarg, 1, &present, &pb, &pblen), 0);
    assert_false(present);
    assert_int_equal(wd_rpc_args_decode(nilarg, 0, &present, &pb, &pblen), -EPROTO);
    assert_int_equal(wd_rpc_args_decode(p10, sizeof p10, &present, &pb, &pblen), -EPROTO);
    assert_int_equal(wd_rpc_args_decode(flag2, sizeof flag2, &present, &pb, &pblen), -EPROTO);
    assert_int_equal(wd_rpc_args_decode(shortlen, sizeof shortlen, &present, &pb, &pblen),
                     -EPROTO);
    assert_int_equal(wd_rpc_args_decode(empty, sizeof empty, &present, &pb, &pblen), 0);
    assert_true(present);
    assert_int_equal(pblen, 0);

    /* reader: P15 unknown type 9, P19 length over 100 MiB, short header */
    assert_int_equal(read_hex("0b000000000000000900000000000000"), -EPROTO);
    assert_int_equal(read_hex("01000000000000000101004006000000"), -EMSGSIZE);
    assert_int_equal(read_hex("0100000000000000010000"), 0);
    assert_int_equal(read_hex("0100000000000000050000000000000000"), -EPROTO);
    assert_int_equal(read_hex("010000000000000001ffffffffffffff"), -EMSGSIZE);
    /* exactly the limit is fine, and only needs more bytes */
    uint8_t hdr[16];
    wd_rpc_frame_hdr_encode(hdr, 1, 1, WD_RPC_MAX_FRAME);
    char hex[33];
    wd_hex(hdr, 16, hex);
    assert_int_equal(read_hex(hex), 0);
}

/* Every frame of probe.txt: what the live weavelet did (closed the connection, crashed, or
 * answered) must match what our decoder says about the same bytes. */
static void check_probe(const char *path, enum wd_rpc_hdr_fmt fmt, const char *const *bad,
                        size_t nbad)
{
    struct fixture fx;
    load_fixture(path, &fx);
    int rejected = 0, answered = 0;
    for (size_t i = 0; i < fx.n; i++) {
        const struct frame *f = &fx.f[i];
        bool expect_bad = false;
        for (size_t b = 0; b < nbad; b++)
            if (f->comment && strncmp(f->comment + 3, bad[b], strlen(bad[b])) == 0 &&
                f->comment[3 + strlen(bad[b])] == ' ')
                expect_bad = true;
        struct wd_rpc_reader r = {0};
        assert_int_equal(wd_buf_append(&r.in, f->data, f->len), 0);
        struct wd_rpc_frame_hdr h;
        const uint8_t *pl;
        int ret = wd_rpc_reader_next(&r, &h, &pl);
        if (ret < 0) {
            assert_true(expect_bad && strcmp(f->tag, "send") == 0);
            rejected++;
            wd_rpc_reader_free(&r);
            continue;
        }
        assert_int_equal(ret, 1);
        assert_int_equal(16 + h.len, f->len);
        if (strcmp(f->tag, "recv") == 0) {
            char *msg = NULL;
            size_t used;
            bool has;
            const uint8_t *pb;
            size_t pblen;
            if (h.type == WD_RPC_RESPONSE_ERROR) {
                assert_int_equal(wd_rpc_errlist_decode(pl, h.len, &msg, &used), 0);
                assert_int_equal(used, h.len);
                assert_non_null(msg);
            } else if (h.type == WD_RPC_RESPONSE) {
                assert_int_equal(wd_rpc_result_decode(pl, h.len, &has, &pb, &pblen, &msg), 0);
            } else {
                assert_int_equal(h.type, WD_RPC_VERSION);
                assert_int_equal(wd_rpc_version_check(&h, pl), 0);
            }
            free(msg);
            answered++;
        } else if (h.type == WD_RPC_REQUEST) {
            struct wd_rpc_reqhdr rh;
            const uint8_t *args;
            size_t alen;
            int d = wd_rpc_request_decode(fmt, pl, h.len, &rh, &args, &alen);
            assert_int_equal(d, expect_bad ? -EPROTO : 0);
            if (d < 0)
                rejected++;
        }
        wd_rpc_reader_free(&r);
    }
    assert_true(rejected >= 1 && answered >= 1);
    free_fixture(&fx);
}

static void test_probe_files(void **state)
{
    (void)state;
    /* v0.24.6: the weavelet closed the connection or crashed on these (P15 and P19 at the
     * framing level); all other requests were answered. */
    static const char *const bad6[] = {"P15", "P16", "P17", "P18", "P19", "P20", "P21"};
    check_probe(FIX6 "probe.txt", WD_RPC_HDR_PREFIXED, bad6, WD_ARRAY_LEN(bad6));
    static const char *const bad3[] = {"M1"};
    check_probe(FIX3 "probe.txt", WD_RPC_HDR_FIXED49, bad3, WD_ARRAY_LEN(bad3));
}

static void test_reader_sequence(void **state)
{
    (void)state;
    /* two frames in one buffer, then a partial third: payloads stay valid until the next call */
    struct wd_buf b = {0};
    wd_rpc_response_err_only_encode(&b, 1, NULL);
    wd_rpc_response_encode(&b, 2, true, (const uint8_t *)"\x08\x01", 2, "boom");
    wd_rpc_cancel_encode(&b, 3);
    struct wd_rpc_reader r = {.in.max = 1u << 16};
    assert_int_equal(wd_buf_append(&r.in, b.data, b.len - 5), 0);
    struct wd_rpc_frame_hdr h;
    const uint8_t *p;
    assert_int_equal(wd_rpc_reader_next(&r, &h, &p), 1);
    assert_int_equal(h.id, 1);
    assert_int_equal(h.len, 1);
    assert_int_equal(p[0], 0);
    assert_int_equal(wd_rpc_reader_next(&r, &h, &p), 1);
    assert_int_equal(h.id, 2);
    bool has;
    const uint8_t *pb;
    size_t pblen;
    char *msg = NULL;
    assert_int_equal(wd_rpc_result_decode(p, h.len, &has, &pb, &pblen, &msg), 0);
    assert_true(has);
    assert_memory_equal(pb, "\x08\x01", 2);
    assert_string_equal(msg, "boom");
    free(msg);
    assert_int_equal(wd_rpc_reader_next(&r, &h, &p), 0);
    assert_int_equal(wd_rpc_reader_next(&r, &h, &p), 0); /* idempotent */
    assert_int_equal(r.in.len, 11);
    assert_int_equal(wd_buf_append(&r.in, b.data + b.len - 5, 5), 0);
    assert_int_equal(wd_rpc_reader_next(&r, &h, &p), 1);
    assert_int_equal(h.type, WD_RPC_CANCEL);
    assert_int_equal(h.id, 3);
    assert_int_equal(wd_rpc_reader_next(&r, &h, &p), 0);
    assert_int_equal(r.in.len, 0);
    wd_rpc_reader_free(&r);
    wd_buf_free(&b);

    /* a capped output buffer never receives half a frame */
    struct wd_buf capped = {.max = 20};
    wd_rpc_response_encode(&capped, 1, false, NULL, 0, "too long for the cap");
    assert_int_equal(capped.len, 0);
    wd_buf_free(&capped);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_method_keys),
        cmocka_unit_test(test_frame_basics),
        cmocka_unit_test(test_capture_v0246),
        cmocka_unit_test(test_capture_v0243),
        cmocka_unit_test(test_capture_v0232),
        cmocka_unit_test(test_requests_from_scratch),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_error_quoting),
        cmocka_unit_test(test_errlist_edge_cases),
        cmocka_unit_test(test_protobuf_payloads),
        cmocka_unit_test(test_weavelet_args),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_probe_files),
        cmocka_unit_test(test_reader_sequence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
