/* tests/unit/test_pipes.c - the pipe protocol of weaver v0.20.0-v0.22.0 (EnvelopeMsg /
 * WeaveletMsg, u32 LE length + protobuf) against the frames captured from real weavelets under
 * weaver's own Go envelope of the same release (tests/fixtures/weaver-v0.2{0,1,2}.*, written by
 * tests/fixtures/harness/regen.sh; docs/design/old-releases.md).
 *
 * First the field numbers: the outer message is walked by hand, every inner message is unpacked
 * with our protobuf-c types (proto/runtime.proto, v0.24.6 field numbers) and packed again byte
 * for byte, the request/reply pairing of the two directions is checked, and every whole frame is
 * re-encoded from its parts. Then the engine's codec (engine/weaver/pipe.c): every message the
 * Go envelope wrote is written again by our encoders byte for byte, every message a weavelet
 * wrote is framed by our reader (fed in pieces) and decoded to the right kind, method and id. */
#include "tests/unit/wd_test.h"
#include "engine/base/util.h"
#include "engine/weaver/conn.h"
#include "engine/weaver/pipe.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <protobuf-c/protobuf-c.h>

#include "pipes.pb-c.h"
#include "runtime.pb-c.h"

/* ---- fixture loading (same format as the control-socket captures) ------------------------ */

struct frame {
    char tag[16]; /* "D>W1", "W1>D" */
    uint8_t *data;
    size_t len;
};

static void load(const char *path, struct frame **out, size_t *n)
{
    FILE *fp = fopen(path, "re");
    if (fp == NULL)
        fail_msg("cannot open fixture %s (run from the repository root)", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t l;
    *out = NULL;
    *n = 0;
    while ((l = getline(&line, &cap, fp)) > 0) {
        while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == '\r'))
            line[--l] = 0;
        if (l == 0 || line[0] == '#')
            continue;
        char *sp = strchr(line, ' ');
        assert_non_null(sp);
        assert_true((size_t)(sp - line) < sizeof(*out)->tag);
        *sp = 0;
        *out = xrealloc(*out, (*n + 1) * sizeof **out);
        struct frame *f = &(*out)[(*n)++];
        memset(f, 0, sizeof *f);
        memcpy(f->tag, line, (size_t)(sp - line) + 1);
        size_t hl = strlen(sp + 1) / 2;
        f->data = xmalloc(hl + 1);
        assert_int_equal(wd_unhex(sp + 1, f->data, hl), (ssize_t)hl);
        f->len = hl;
    }
    free(line);
    fclose(fp);
    assert_true(*n > 0);
}

static void free_frames(struct frame *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(f[i].data);
    free(f);
}

/* ---- a minimal protobuf walker and writer ------------------------------------------------ */

static bool get_varint(const uint8_t *p, size_t n, size_t *pos, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0; shift < 70 && *pos < n; shift += 7) {
        uint8_t b = p[(*pos)++];
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

static void put_varint(struct wd_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    wd_buf_append(b, tmp, n);
}

struct field {
    uint32_t num, wire;
    uint64_t v;        /* wire type 0 */
    const uint8_t *p;  /* wire type 2 */
    size_t len;
};

/* Split one message into its top-level fields (varint and length-delimited only: the pipe
 * envelopes use nothing else). Returns the number of fields. */
static size_t fields(const uint8_t *p, size_t n, struct field *out, size_t max)
{
    size_t pos = 0, k = 0;
    while (pos < n) {
        uint64_t tag;
        assert_true(get_varint(p, n, &pos, &tag));
        assert_true(k < max);
        struct field *f = &out[k++];
        memset(f, 0, sizeof *f);
        f->num = (uint32_t)(tag >> 3);
        f->wire = (uint32_t)(tag & 7);
        if (f->wire == 0) {
            assert_true(get_varint(p, n, &pos, &f->v));
        } else {
            assert_int_equal(f->wire, 2);
            uint64_t l;
            assert_true(get_varint(p, n, &pos, &l));
            assert_true(l <= n - pos);
            f->p = p + pos;
            f->len = (size_t)l;
            pos += (size_t)l;
        }
    }
    return k;
}

/* ---- the two message types (field numbers of weaver v0.22.0 runtime.proto) --------------- */

enum kind { K_ID, K_HANDSHAKE, K_REQUEST, K_REPLY, K_ONEWAY, K_ERROR };

struct body {
    uint32_t num;
    enum kind kind;
    const char *name;
    const ProtobufCMessageDescriptor *d; /* our type with the same field numbers */
    uint32_t pair;                       /* request: field of the reply in the other direction */
};

/* EnvelopeMsg (envelope -> weavelet). envelope_info is decoded as WeaveletArgs: the same
 * numbers except sections (4), which WeaveletArgs reserves; checked separately. */
static const struct body env_msg[] = {
    {1, K_ID, "id", NULL, 0},
    {2, K_HANDSHAKE, "envelope_info", &runtime__weavelet_args__descriptor, 0},
    {3, K_REQUEST, "get_health_request", &runtime__get_health_request__descriptor, 6},
    {4, K_REQUEST, "get_metrics_request", &runtime__get_metrics_request__descriptor, 7},
    {5, K_REQUEST, "get_load_request", &runtime__get_load_request__descriptor, 8},
    {6, K_REQUEST, "get_profile_request", &runtime__get_profile_request__descriptor, 9},
    {7, K_REQUEST, "update_routing_info_request", &runtime__update_routing_info_request__descriptor,
     10},
    {8, K_REQUEST, "update_components_request", &runtime__update_components_request__descriptor,
     11},
    {9, K_ERROR, "error", NULL, 0},
    {10, K_REPLY, "activate_component_reply", &runtime__activate_component_reply__descriptor, 0},
    {11, K_REPLY, "get_listener_address_reply", &runtime__get_listener_address_reply__descriptor,
     0},
    {12, K_REPLY, "export_listener_reply", &runtime__export_listener_reply__descriptor, 0},
    {13, K_REPLY, "verify_client_certificate_reply",
     &runtime__verify_client_certificate_reply__descriptor, 0},
    {14, K_REPLY, "verify_server_certificate_reply",
     &runtime__verify_server_certificate_reply__descriptor, 0},
    {15, K_REPLY, "get_self_certificate_reply", &runtime__get_self_certificate_reply__descriptor,
     0},
};

/* WeaveletMsg (weavelet -> envelope). weavelet_info {dial_addr = 1, version = 3} has the field
 * numbers of InitWeaveletReply. */
static const struct body wl_msg[] = {
    {1, K_ID, "id", NULL, 0},
    {2, K_HANDSHAKE, "weavelet_info", &runtime__init_weavelet_reply__descriptor, 0},
    {3, K_ONEWAY, "log_entry", &runtime__log_entry__descriptor, 0},
    {4, K_ONEWAY, "trace_spans", &runtime__trace_spans__descriptor, 0},
    {5, K_ERROR, "error", NULL, 0},
    {6, K_REPLY, "get_health_reply", &runtime__get_health_reply__descriptor, 0},
    {7, K_REPLY, "get_metrics_reply", &runtime__get_metrics_reply__descriptor, 0},
    {8, K_REPLY, "get_load_reply", &runtime__get_load_reply__descriptor, 0},
    {9, K_REPLY, "get_profile_reply", &runtime__get_profile_reply__descriptor, 0},
    {10, K_REPLY, "update_routing_info_reply", &runtime__update_routing_info_reply__descriptor, 0},
    {11, K_REPLY, "update_components_reply", &runtime__update_components_reply__descriptor, 0},
    {12, K_REQUEST, "activate_component_request",
     &runtime__activate_component_request__descriptor, 10},
    {13, K_REQUEST, "get_listener_address_request",
     &runtime__get_listener_address_request__descriptor, 11},
    {14, K_REQUEST, "export_listener_request", &runtime__export_listener_request__descriptor, 12},
    {15, K_REQUEST, "verify_client_certificate_request",
     &runtime__verify_client_certificate_request__descriptor, 13},
    {16, K_REQUEST, "verify_server_certificate_request",
     &runtime__verify_server_certificate_request__descriptor, 14},
    {17, K_REQUEST, "get_self_certificate_request",
     &runtime__get_self_certificate_request__descriptor, 15},
};

static const struct body *lookup(const struct body *t, size_t n, uint32_t num)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].num == num)
            return &t[i];
    fail_msg("unexpected field %u", num);
    return NULL;
}

/* Unpack with our type and pack again: same bytes. */
static void roundtrip(const ProtobufCMessageDescriptor *d, const uint8_t *pb, size_t n,
                      struct wd_buf *out)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, n, pb);
    assert_non_null(m);
    size_t sz = protobuf_c_message_get_packed_size(m);
    assert_int_equal(sz, n);
    uint8_t *back = xmalloc(sz + 1);
    assert_int_equal(protobuf_c_message_pack(m, back), sz);
    assert_memory_equal(back, pb, n);
    wd_buf_append(out, back, sz);
    free(back);
    protobuf_c_message_free_unpacked(m, NULL);
}

/* EnvelopeInfo: fields 1, 2, 3, 7, 8, 10, 12 as in WeaveletArgs; 4 = map<string, string>
 * sections, whose entries are re-tagged as field 1 and unpacked as InitWeaveletRequest. */
static void check_envelope_info(const uint8_t *pb, size_t n, const char *label, bool redirects,
                                struct wd_buf *out)
{
    struct field fs[64];
    size_t k = fields(pb, n, fs, WD_ARRAY_LEN(fs));
    struct wd_buf known = {0}, sections = {0};
    uint32_t last = 0;
    for (size_t i = 0; i < k; i++) {
        assert_true(fs[i].num >= last); /* Go writes fields in number order */
        last = fs[i].num;
        struct wd_buf *dst = fs[i].num == 4 ? &sections : &known;
        if (fs[i].num == 4)
            put_varint(dst, 1 << 3 | 2);
        else
            put_varint(dst, (uint64_t)fs[i].num << 3 | fs[i].wire);
        if (fs[i].wire == 0) {
            put_varint(dst, fs[i].v);
        } else {
            put_varint(dst, fs[i].len);
            wd_buf_append(dst, fs[i].p, fs[i].len);
        }
        assert_true(fs[i].num == 1 || fs[i].num == 2 || fs[i].num == 3 || fs[i].num == 4 ||
                    fs[i].num == 7 || fs[i].num == 8 || fs[i].num == 10 ||
                    (redirects && fs[i].num == 12));
    }
    Runtime__WeaveletArgs *a =
        runtime__weavelet_args__unpack(NULL, known.len, (const uint8_t *)known.data);
    assert_non_null(a);
    assert_int_equal(a->base.n_unknown_fields, 0);
    assert_string_equal(a->app, "shop");
    assert_string_equal(a->deployment_id, "11111111-2222-4333-8444-555555555555");
    assert_true(strncmp(a->id, "00000000-0000-4000-8000-00000000000", 35) == 0);
    assert_int_equal(a->run_main, strcmp(label, "W1") == 0);
    assert_string_equal(a->internal_address, "localhost:0");
    runtime__weavelet_args__free_unpacked(a, NULL);
    Runtime__InitWeaveletRequest *s = runtime__init_weavelet_request__unpack(
        NULL, sections.len, (const uint8_t *)sections.data);
    assert_non_null(s);
    assert_int_equal(s->n_sections, 2);
    bool cart = false;
    for (size_t i = 0; i < s->n_sections; i++)
        if (strcmp(s->sections[i]->key, "example.com/shop/Cart") == 0) {
            assert_string_equal(s->sections[i]->value, "Max = 10\n");
            cart = true;
        }
    assert_true(cart);
    runtime__init_weavelet_request__free_unpacked(s, NULL);
    wd_buf_append(out, pb, n); /* field order checked above */
    wd_buf_free(&known);
    wd_buf_free(&sections);
}

/* ---- one version ------------------------------------------------------------------------- */

struct pending {
    char label[8];
    bool from_envelope;
    int64_t id;
    uint32_t reply_field;
    uint32_t req_field;
};

struct stats {
    size_t frames, requests, replies, oneway, errors, id_only;
};

static void check_message(const struct frame *f, const char *label, bool from_envelope, int minor,
                          bool first, struct pending *pend, size_t *npend, struct stats *st)
{
    assert_true(f->len >= 4);
    assert_int_equal(wd_get_u32le(f->data), f->len - 4);
    const uint8_t *pb = f->data + 4;
    size_t n = f->len - 4;
    struct field fs[8];
    size_t k = fields(pb, n, fs, WD_ARRAY_LEN(fs));
    const struct body *tab = from_envelope ? env_msg : wl_msg;
    size_t tabn = from_envelope ? WD_ARRAY_LEN(env_msg) : WD_ARRAY_LEN(wl_msg);

    int64_t id = 0;
    const char *err = NULL;
    size_t errlen = 0;
    const struct body *body = NULL;
    const struct field *bf = NULL;
    struct wd_buf re = {0}, inner = {0};
    uint32_t last = 0;
    for (size_t i = 0; i < k; i++) {
        const struct body *b = lookup(tab, tabn, fs[i].num);
        assert_true(fs[i].num > last); /* each field once, in number order */
        last = fs[i].num;
        put_varint(&re, (uint64_t)fs[i].num << 3 | fs[i].wire);
        switch (b->kind) {
        case K_ID:
            assert_int_equal(fs[i].wire, 0);
            id = (int64_t)fs[i].v;
            assert_int_not_equal(id, 0); /* 0 is not written */
            put_varint(&re, (uint64_t)id);
            continue;
        case K_ERROR:
            assert_int_equal(fs[i].wire, 2);
            err = (const char *)fs[i].p;
            errlen = fs[i].len;
            assert_true(errlen > 0);
            put_varint(&re, errlen);
            wd_buf_append(&re, fs[i].p, errlen);
            continue;
        default:
            assert_int_equal(fs[i].wire, 2);
            assert_null(body); /* at most one body */
            body = b;
            bf = &fs[i];
        }
        if (b->kind == K_HANDSHAKE && from_envelope)
            check_envelope_info(bf->p, bf->len, label, minor >= 22, &inner);
        else
            roundtrip(b->d, bf->p, bf->len, &inner);
        put_varint(&re, inner.len);
        wd_buf_append(&re, inner.data, inner.len);
    }
    /* The whole message, rebuilt from its parts, has the captured bytes. */
    assert_int_equal(re.len, n);
    assert_memory_equal(re.data, pb, n);
    wd_buf_free(&re);

    if (first) { /* the handshake opens each direction, with id 0 */
        assert_non_null(body);
        assert_int_equal(body->kind, K_HANDSHAKE);
        assert_int_equal(id, 0);
        if (!from_envelope) {
            Runtime__InitWeaveletReply *w = runtime__init_weavelet_reply__unpack(
                NULL, inner.len, (const uint8_t *)inner.data);
            assert_non_null(w);
            assert_true(strncmp(w->dial_addr, "tcp://127.0.0.1:", 16) == 0);
            assert_non_null(w->version);
            assert_int_equal(w->version->major, 0);
            assert_int_equal(w->version->minor, minor);
            assert_int_equal(w->version->patch, 0);
            runtime__init_weavelet_reply__free_unpacked(w, NULL);
        }
        wd_buf_free(&inner);
        st->frames++;
        return;
    }
    wd_buf_free(&inner);
    assert_true(body == NULL || body->kind != K_HANDSHAKE);
    st->frames++;
    if (id > 0) { /* a request: remember which reply field must answer it */
        assert_non_null(body);
        assert_int_equal(body->kind, K_REQUEST);
        assert_null(err);
        for (size_t i = 0; i < *npend; i++) /* ids are not reused */
            assert_false(pend[i].from_envelope == from_envelope && pend[i].id == id &&
                         strcmp(pend[i].label, label) == 0);
        struct pending *p = &pend[(*npend)++];
        snprintf(p->label, sizeof p->label, "%s", label);
        p->from_envelope = from_envelope;
        p->id = id;
        p->reply_field = body->pair;
        p->req_field = body->num;
        st->requests++;
    } else if (id < 0) { /* a reply to the other side's request -id */
        struct pending *p = NULL;
        for (size_t i = 0; i < *npend; i++)
            if (pend[i].from_envelope != from_envelope && pend[i].id == -id &&
                strcmp(pend[i].label, label) == 0)
                p = &pend[i];
        assert_non_null(p);
        if (body == NULL) {
            /* Only the id: the weavelet's answer to a local UpdateRoutingInfo (its handler
             * returns a nil reply), or an error reply from the envelope. */
            if (err == NULL) {
                assert_false(from_envelope);
                assert_int_equal(p->req_field, 7);
                st->id_only++;
            }
        } else {
            assert_int_equal(body->kind, K_REPLY);
            assert_int_equal(body->num, p->reply_field);
        }
        if (err)
            st->errors++;
        p->id = 0; /* answered */
        st->replies++;
    } else { /* id 0 after the handshake: log entries and trace spans, weavelet -> envelope */
        assert_false(from_envelope);
        assert_non_null(body);
        assert_int_equal(body->kind, K_ONEWAY);
        assert_null(err);
        st->oneway++;
    }
    (void)errlen;
}

static void check_version(const char *dir, int minor)
{
    static const char *const labels[] = {"W1", "W2"};
    struct stats st = {0};
    for (size_t w = 0; w < WD_ARRAY_LEN(labels); w++) {
        char p1[256], p2[256];
        snprintf(p1, sizeof p1, "%s/%s-envelope-to-weavelet.txt", dir, labels[w]);
        snprintf(p2, sizeof p2, "%s/%s-weavelet-to-envelope.txt", dir, labels[w]);
        struct frame *e, *l;
        size_t ne, nl;
        load(p1, &e, &ne);
        load(p2, &l, &nl);
        struct pending *pend = xcalloc(ne + nl, sizeof *pend);
        size_t npend = 0;
        char want_e[16], want_l[16];
        snprintf(want_e, sizeof want_e, "D>%s", labels[w]);
        snprintf(want_l, sizeof want_l, "%s>D", labels[w]);
        /* Requests of one direction are registered before the replies of the other are
         * checked: take both files in their own order, requests first. */
        for (int pass = 0; pass < 2; pass++) {
            for (size_t i = 0; i < ne; i++) {
                assert_string_equal(e[i].tag, want_e);
                int64_t id = 0;
                size_t pos = 4;
                uint64_t tag, v;
                if (e[i].len > 5 && get_varint(e[i].data, e[i].len, &pos, &tag) && tag == 8 &&
                    get_varint(e[i].data, e[i].len, &pos, &v))
                    id = (int64_t)v;
                if ((pass == 0) == (id >= 0))
                    check_message(&e[i], labels[w], true, minor, i == 0, pend, &npend, &st);
            }
            for (size_t i = 0; i < nl; i++) {
                assert_string_equal(l[i].tag, want_l);
                int64_t id = 0;
                size_t pos = 4;
                uint64_t tag, v;
                if (l[i].len > 5 && get_varint(l[i].data, l[i].len, &pos, &tag) && tag == 8 &&
                    get_varint(l[i].data, l[i].len, &pos, &v))
                    id = (int64_t)v;
                if ((pass == 0) == (id >= 0))
                    check_message(&l[i], labels[w], false, minor, i == 0, pend, &npend, &st);
            }
        }
        for (size_t i = 0; i < npend; i++) /* every request was answered */
            assert_int_equal(pend[i].id, 0);
        free(pend);
        free_frames(e, ne);
        free_frames(l, nl);
    }
    assert_int_equal(st.requests, st.replies);
    assert_true(st.frames >= 90);
    assert_true(st.requests >= 20);
    assert_true(st.oneway >= 40);
    assert_true(st.errors >= 3);   /* deferred activation, unknown component, profile type */
    assert_true(st.id_only >= 1); /* the local UpdateRoutingInfo */
    print_message("%s: %zu messages (%zu requests, %zu one-way, %zu errors, %zu id-only replies) "
                  "decoded and re-encoded byte for byte\n",
                  dir, st.frames, st.requests, st.oneway, st.errors, st.id_only);
}

/* probe.txt (tests/fixtures/harness/pipeprobe): every message the weavelet sent back is a
 * well-formed WeaveletMsg whose body decodes and re-encodes with our types. */
static void check_probe(const char *dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/probe.txt", dir);
    struct frame *f;
    size_t n, recv = 0;
    load(path, &f, &n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(f[i].tag, "recv") != 0)
            continue;
        assert_true(f[i].len >= 4);
        assert_int_equal(wd_get_u32le(f[i].data), f[i].len - 4);
        struct field fs[8];
        size_t k = fields(f[i].data + 4, f[i].len - 4, fs, WD_ARRAY_LEN(fs));
        for (size_t j = 0; j < k; j++) {
            const struct body *b = lookup(wl_msg, WD_ARRAY_LEN(wl_msg), fs[j].num);
            if (b->d) {
                struct wd_buf out = {0};
                roundtrip(b->d, fs[j].p, fs[j].len, &out);
                wd_buf_free(&out);
            }
        }
        recv++;
    }
    assert_true(recv >= 10);
    free_frames(f, n);
}

static void test_pipes_v0220(void **state)
{
    (void)state;
    check_version("tests/fixtures/weaver-v0.22.0", 22);
    check_probe("tests/fixtures/weaver-v0.22.0");
}

static void test_pipes_v0212(void **state)
{
    (void)state;
    check_version("tests/fixtures/weaver-v0.21.2", 20);
    check_probe("tests/fixtures/weaver-v0.21.2");
}

static void test_pipes_v0200(void **state)
{
    (void)state;
    check_version("tests/fixtures/weaver-v0.20.0", 20);
    check_probe("tests/fixtures/weaver-v0.20.0");
}

/* A few exact encodings worth pinning: the handshake reply, a negative id, an id-only reply. */
static void test_pipes_exact(void **state)
{
    (void)state;
    /* WeaveletMsg{weavelet_info{dial_addr "tcp://127.0.0.1:37519", version{minor 22}}} */
    static const char *const hs =
        "1d000000121b0a157463703a2f2f3132372e302e302e313a33373531391a021016";
    uint8_t b[64];
    ssize_t n = wd_unhex(hs, b, sizeof b);
    assert_int_equal(n, 33);
    assert_int_equal(wd_get_u32le(b), 29);
    assert_int_equal(b[4], 2 << 3 | 2); /* field 2 (weavelet_info), LEN */
    assert_int_equal(b[5], 27);
    Runtime__InitWeaveletReply *w = runtime__init_weavelet_reply__unpack(NULL, b[5], b + 6);
    assert_non_null(w);
    assert_string_equal(w->dial_addr, "tcp://127.0.0.1:37519");
    assert_int_equal(w->version->minor, 22);
    runtime__init_weavelet_reply__free_unpacked(w, NULL);
    /* id -2 is a 10-byte varint: the id-only reply is 4 + 11 bytes */
    struct wd_buf r = {0};
    wd_buf_append(&r, "\x0b\x00\x00\x00", 4);
    put_varint(&r, 1 << 3);
    put_varint(&r, (uint64_t)(int64_t)-2);
    assert_int_equal(r.len, 15);
    uint8_t want[15];
    assert_int_equal(wd_unhex("0b00000008feffffffffffffffff01", want, sizeof want), 15);
    assert_memory_equal(r.data, want, 15);
    wd_buf_free(&r);
}


/* ---- the engine's codec against the captures --------------------------------------------- */

static enum wd_rpc_method env_request_method(uint32_t f)
{
    static const enum wd_rpc_method m[] = {
        [3] = WD_M_GET_HEALTH,   [4] = WD_M_GET_METRICS,          [5] = WD_M_GET_LOAD,
        [6] = WD_M_GET_PROFILE,  [7] = WD_M_UPDATE_ROUTING_INFO,  [8] = WD_M_UPDATE_COMPONENTS,
    };
    assert_true(f >= 3 && f <= 8);
    return m[f];
}

static enum wd_rpc_method env_reply_method(uint32_t f)
{
    static const enum wd_rpc_method m[] = {
        [10] = WD_M_ACTIVATE_COMPONENT,        [11] = WD_M_GET_LISTENER_ADDRESS,
        [12] = WD_M_EXPORT_LISTENER,           [13] = WD_M_VERIFY_CLIENT_CERTIFICATE,
        [14] = WD_M_VERIFY_SERVER_CERTIFICATE, [15] = WD_M_GET_SELF_CERTIFICATE,
    };
    assert_true(f >= 10 && f <= 15);
    return m[f];
}

/* The Go envelope's message, written again by wd_pipe_*_encode. For a failed reply without its
 * field the method does not matter to the bytes: ActivateComponent stands in. */
static void reencode_envelope(const struct frame *f, size_t *n_handshake, size_t *n_req,
                              size_t *n_rep)
{
    struct field fs[8];
    size_t k = fields(f->data + 4, f->len - 4, fs, WD_ARRAY_LEN(fs));
    int64_t id = 0;
    const struct field *body = NULL;
    char *err = NULL;
    for (size_t i = 0; i < k; i++) {
        if (fs[i].num == 1)
            id = (int64_t)fs[i].v;
        else if (fs[i].num == 9)
            err = xstrndup((const char *)fs[i].p, fs[i].len);
        else
            body = &fs[i];
    }
    struct wd_buf out = {0};
    if (id == 0) {
        assert_non_null(body);
        assert_int_equal(body->num, 2);
        /* our EnvelopeInfo type packs what it unpacked, map order kept */
        Pipes__EnvelopeInfo *info = pipes__envelope_info__unpack(NULL, body->len, body->p);
        assert_non_null(info);
        assert_int_equal(info->n_sections, 2);
        size_t sz = pipes__envelope_info__get_packed_size(info);
        uint8_t *packed = xmalloc(sz + 1);
        pipes__envelope_info__pack(info, packed);
        wd_pipe_handshake_encode(&out, packed, sz);
        free(packed);
        pipes__envelope_info__free_unpacked(info, NULL);
        (*n_handshake)++;
    } else if (id > 0) {
        assert_non_null(body);
        assert_int_equal(wd_pipe_request_encode(&out, id, env_request_method(body->num), body->p,
                                                body->len),
                         0);
        (*n_req)++;
    } else {
        enum wd_rpc_method m = body ? env_reply_method(body->num) : WD_M_ACTIVATE_COMPONENT;
        assert_int_equal(wd_pipe_reply_encode(&out, -id, m, body ? body->p : NULL,
                                              body ? body->len : 0, err),
                         0);
        (*n_rep)++;
    }
    assert_int_equal(out.len, f->len);
    assert_memory_equal(out.data, f->data, f->len);
    wd_buf_free(&out);
    free(err);
}

static void codec_version(const char *dir)
{
    static const char *const labels[] = {"W1", "W2"};
    size_t hs = 0, req = 0, rep = 0, kinds[WD_PIPE_REPLY + 1] = {0}, id_only = 0, failed = 0;
    for (size_t w = 0; w < WD_ARRAY_LEN(labels); w++) {
        char p1[256], p2[256];
        snprintf(p1, sizeof p1, "%s/%s-envelope-to-weavelet.txt", dir, labels[w]);
        snprintf(p2, sizeof p2, "%s/%s-weavelet-to-envelope.txt", dir, labels[w]);
        struct frame *e, *l;
        size_t ne, nl;
        load(p1, &e, &ne);
        load(p2, &l, &nl);
        for (size_t i = 0; i < ne; i++)
            reencode_envelope(&e[i], &hs, &req, &rep);
        /* the weavelet's stream, fed to the reader in pieces of 1, 2, 3 ... 7 bytes */
        struct wd_buf all = {0};
        for (size_t i = 0; i < nl; i++)
            wd_buf_append(&all, l[i].data, l[i].len);
        struct wd_pipe_reader rd = {0};
        size_t pos = 0, got = 0, step = 1;
        while (pos < all.len || rd.in.len > rd.done) {
            size_t take = all.len - pos < step ? all.len - pos : step;
            wd_buf_append(&rd.in, all.data + pos, take);
            pos += take;
            step = step % 7 + 1;
            const uint8_t *msg;
            size_t len;
            int r;
            while ((r = wd_pipe_reader_next(&rd, &msg, &len)) == 1) {
                assert_true(got < nl);
                assert_int_equal(len, l[got].len - 4);
                assert_memory_equal(msg, l[got].data + 4, len);
                struct wd_pipe_msg pm;
                const char *why = NULL;
                assert_int_equal(wd_pipe_weavelet_decode(msg, len, &pm, &why), 0);
                assert_true(got > 0 || pm.kind == WD_PIPE_HELLO); /* the handshake first */
                kinds[pm.kind]++;
                if (pm.kind == WD_PIPE_REPLY && pm.m == WD_M_UNKNOWN && pm.err == NULL)
                    id_only++;
                if (pm.err)
                    failed++;
                if (pm.kind == WD_PIPE_REQUEST || pm.kind == WD_PIPE_REPLY)
                    assert_true(pm.id > 0);
                if (pm.kind == WD_PIPE_HELLO) {
                    Runtime__InitWeaveletReply *h =
                        runtime__init_weavelet_reply__unpack(NULL, pm.len, pm.pb);
                    assert_non_null(h);
                    assert_true(strncmp(h->dial_addr, "tcp://", 6) == 0);
                    runtime__init_weavelet_reply__free_unpacked(h, NULL);
                }
                wd_pipe_msg_free(&pm);
                got++;
            }
            assert_int_equal(r, 0);
            if (take == 0)
                break;
        }
        assert_int_equal(got, nl);
        wd_pipe_reader_free(&rd);
        wd_buf_free(&all);
        free_frames(e, ne);
        free_frames(l, nl);
    }
    assert_int_equal(hs, 2);
    assert_true(req >= 6 && rep >= 6);
    assert_int_equal(kinds[WD_PIPE_HELLO], 2);
    assert_true(kinds[WD_PIPE_LOG] >= 20 && kinds[WD_PIPE_REQUEST] >= 3 &&
                kinds[WD_PIPE_REPLY] >= 6);
    assert_true(id_only >= 1 && failed >= 2);
    print_message("%s: %zu envelope messages written again byte for byte; weavelet messages: %zu "
                  "requests, %zu replies (%zu id-only, %zu errors), %zu log entries, %zu span "
                  "batches\n",
                  dir, hs + req + rep, kinds[WD_PIPE_REQUEST], kinds[WD_PIPE_REPLY], id_only,
                  failed, kinds[WD_PIPE_LOG], kinds[WD_PIPE_TRACE]);
}

static void test_codec_captures(void **state)
{
    (void)state;
    codec_version("tests/fixtures/weaver-v0.22.0");
    codec_version("tests/fixtures/weaver-v0.21.2");
    codec_version("tests/fixtures/weaver-v0.20.0");
}

/* What the decoder refuses, and the reader's cap. */
static void test_codec_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *hex, *why;
    } bad[] = {
        {"ffffff", "malformed WeaveletMsg"},
        {"", "an empty WeaveletMsg"},
        {"0803", "a WeaveletMsg with an id and no request"},
        {"08033200", "a weavelet reply without a negative id"},       /* id 3 + health reply */
        {"08fdffffffffffffffff016200", "a weavelet request without a positive id"},
        {"1a001a00", NULL},                                            /* log twice: last wins */
        {"1a002200", "a WeaveletMsg with two payloads"},
        {"08011a00", "a one-way WeaveletMsg with an id or an error"},
        {"2a016f1200", "a one-way WeaveletMsg with an id or an error"}, /* error + info */
    };
    for (size_t i = 0; i < WD_ARRAY_LEN(bad); i++) {
        uint8_t b[32];
        ssize_t n = wd_unhex(bad[i].hex, b, sizeof b);
        assert_true(n >= 0);
        struct wd_pipe_msg pm;
        const char *why = NULL;
        int r = wd_pipe_weavelet_decode(b, (size_t)n, &pm, &why);
        if (bad[i].why == NULL) {
            assert_int_equal(r, 0);
        } else {
            assert_int_equal(r, -EPROTO);
            assert_string_equal(why, bad[i].why);
        }
        wd_pipe_msg_free(&pm);
    }
    /* a length over the cap is refused before any data; a length at the cap waits */
    struct wd_pipe_reader rd = {0};
    const uint8_t *msg;
    size_t len;
    uint8_t l[4];
    wd_put_u32le(l, WD_PIPE_MAX_MSG + 1);
    wd_buf_append(&rd.in, l, 3);
    assert_int_equal(wd_pipe_reader_next(&rd, &msg, &len), 0);
    wd_buf_append(&rd.in, l + 3, 1);
    assert_int_equal(wd_pipe_reader_next(&rd, &msg, &len), -EMSGSIZE);
    wd_pipe_reader_free(&rd);
    wd_put_u32le(l, WD_PIPE_MAX_MSG);
    wd_buf_append(&rd.in, l, 4);
    assert_int_equal(wd_pipe_reader_next(&rd, &msg, &len), 0);
    wd_pipe_reader_free(&rd);
    /* methods the pipes do not carry that way */
    struct wd_buf out = {0};
    assert_int_equal(wd_pipe_request_encode(&out, 1, WD_M_INIT_WEAVELET, NULL, 0), -ENOTSUP);
    assert_int_equal(wd_pipe_request_encode(&out, 1, WD_M_ACTIVATE_COMPONENT, NULL, 0), -ENOTSUP);
    assert_int_equal(wd_pipe_reply_encode(&out, 1, WD_M_LOG_BATCH, NULL, 0, NULL), -ENOTSUP);
    assert_int_equal(wd_pipe_reply_encode(&out, 0, WD_M_ACTIVATE_COMPONENT, NULL, 0, NULL),
                     -ENOTSUP);
    assert_int_equal(out.len, 0);
    /* an empty successful reply still carries its field: 52 00 */
    assert_int_equal(wd_pipe_reply_encode(&out, 1, WD_M_ACTIVATE_COMPONENT, NULL, 0, NULL), 0);
    uint8_t want[17];
    assert_int_equal(wd_unhex("0d00000008ffffffffffffffffff015200", want, sizeof want), 17);
    assert_int_equal(out.len, 17);
    assert_memory_equal(out.data, want, 17);
    wd_buf_free(&out);
}

/* ---- the connection (engine/weaver/conn.c, pipe mode) on a socketpair ------------------- */

/* WeaveletMsg{id, field: body}, framed: what a weavelet writes. */
static void wmsg(struct wd_buf *b, int64_t id, unsigned field, const void *body, size_t n)
{
    struct wd_buf m = {0};
    if (id) {
        put_varint(&m, 1 << 3);
        put_varint(&m, (uint64_t)id);
    }
    if (field) {
        put_varint(&m, (uint64_t)field << 3 | 2);
        put_varint(&m, n);
        wd_buf_append(&m, body, n);
    }
    uint8_t l[4];
    wd_put_u32le(l, (uint32_t)m.len);
    wd_buf_append(b, l, 4);
    wd_buf_append(b, m.data, m.len);
    wd_buf_free(&m);
}

struct cstate {
    struct wd_loop *loop;
    struct wd_conn *c;
    char *init, *health, *routing, *load; /* "ok:<len>" or the error */
    size_t logs, spans, unanswered_logs;
    uint64_t activate_id;
    char *closed;
    int sp[2];
    int phase;
    bool answer_logs; /* from phase 1 on, log entries are answered as they come */
    struct wd_conn_ops ops;
};

static void note(char **dst, const char *err, size_t len)
{
    free(*dst);
    *dst = err ? xstrdup(err) : xasprintf("ok:%zu", len);
}

static void on_init_c(struct wd_conn *c, const char *e, const uint8_t *p, size_t n, void *a)
{
    (void)c;
    (void)p;
    note(&((struct cstate *)a)->init, e, n);
}
static void on_health_c(struct wd_conn *c, const char *e, const uint8_t *p, size_t n, void *a)
{
    (void)c;
    (void)p;
    note(&((struct cstate *)a)->health, e, n);
}
static void on_routing_c(struct wd_conn *c, const char *e, const uint8_t *p, size_t n, void *a)
{
    (void)c;
    (void)p;
    note(&((struct cstate *)a)->routing, e, n);
}
static void on_load_c(struct wd_conn *c, const char *e, const uint8_t *p, size_t n, void *a)
{
    (void)c;
    (void)p;
    note(&((struct cstate *)a)->load, e, n);
}

static void on_req_c(struct wd_conn *c, uint64_t id, enum wd_rpc_method m, const uint8_t *pb,
                     size_t len, void *arg)
{
    (void)c;
    struct cstate *st = arg;
    if (m == WD_M_LOG_BATCH) { /* a batch of one entry: 0a <len> entry */
        Runtime__LogEntryBatch *b = runtime__log_entry_batch__unpack(NULL, len, pb);
        assert_non_null(b);
        assert_int_equal(b->n_entries, 1);
        runtime__log_entry_batch__free_unpacked(b, NULL);
        assert_int_equal(id, 0);
        st->logs++;
        if (st->answer_logs)
            wd_conn_reply(c, id, m, NULL, 0, NULL);
        else
            st->unanswered_logs++; /* answered later, by the test */
    } else if (m == WD_M_HANDLE_TRACE_SPANS) {
        st->spans++;
        wd_conn_reply(c, id, m, NULL, 0, NULL);
    } else {
        assert_int_equal(m, WD_M_ACTIVATE_COMPONENT);
        st->activate_id = id;
    }
}

static void on_close_c(struct wd_conn *c, const char *reason, void *arg)
{
    (void)c;
    struct cstate *st = arg;
    free(st->closed);
    st->closed = xstrdup(reason);
}

static const uint8_t info[] = {0x0a, 0x01, 'a'}; /* EnvelopeInfo{app "a"} */
static const uint8_t entry[] = {0x0a, 0x01, 'a'};  /* LogEntry{app "a"} */

/* The loop runs once (wd_loop_stop is final): the test goes on in phases, a timer apart. */
static void phase(struct wd_timer *t, void *arg);

static void next_phase(struct cstate *st, int ms) { wd_timer_add(st->loop, ms, phase, st); }

/* What the weavelet's side reads: the framed EnvelopeMsgs, split. */
static size_t read_envelope(int fd, Pipes__EnvelopeMsg **out, size_t max)
{
    uint8_t buf[8192];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    assert_true(n > 0);
    struct wd_pipe_reader r = {0};
    wd_buf_append(&r.in, buf, (size_t)n);
    const uint8_t *m;
    size_t len, k = 0;
    while (wd_pipe_reader_next(&r, &m, &len) == 1) {
        assert_true(k < max);
        out[k] = pipes__envelope_msg__unpack(NULL, len, m);
        assert_non_null(out[k]);
        k++;
    }
    assert_int_equal(r.in.len, r.done); /* nothing partial */
    wd_pipe_reader_free(&r);
    return k;
}

static void test_conn_pipe(void **state)
{
    (void)state;
    struct cstate st = {0};
    struct wd_error *err = NULL;
    assert_int_equal(wd_loop_new(NULL, 0, NULL, NULL, &st.loop, &err), 0);
    assert_int_equal(
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, st.sp), 0);
    st.ops = (struct wd_conn_ops){.on_request = on_req_c, .on_close = on_close_c, .arg = &st};
    st.c = wd_conn_new_pipe(st.loop, st.sp[0], &st.ops, "test pipes");
    wd_conn_call(st.c, WD_M_INIT_WEAVELET, info, sizeof info, on_init_c, &st);
    wd_conn_call(st.c, WD_M_GET_HEALTH, NULL, 0, on_health_c, &st);          /* id 1 */
    wd_conn_call(st.c, WD_M_UPDATE_ROUTING_INFO, NULL, 0, on_routing_c, &st); /* id 2 */
    wd_conn_call(st.c, WD_M_GET_LOAD, NULL, 0, on_load_c, &st);               /* id 3 */

    /* the weavelet: its info, 100 log entries, a span batch, the replies, a request */
    static const uint8_t winfo[] = {0x0a, 0x03, 't', 'c', 'p', 0x1a, 0x02, 0x10, 0x16};
    static const uint8_t health[] = {0x08, 0x01};
    static const uint8_t activate[] = {0x0a, 0x01, 'C'};
    struct wd_buf w = {0};
    wmsg(&w, 0, 2, winfo, sizeof winfo);
    for (int i = 0; i < 100; i++)
        wmsg(&w, 0, 3, entry, sizeof entry);
    wmsg(&w, 0, 4, "", 0);
    wmsg(&w, -2, 0, NULL, 0);                    /* local UpdateRoutingInfo: only the id */
    wmsg(&w, -1, 6, health, sizeof health);      /* GetHealth: HEALTHY */
    wmsg(&w, -3, 0, NULL, 0);                    /* GetLoad with only the id: an error */
    wmsg(&w, -99, 6, health, sizeof health);     /* an unknown id: dropped */
    wmsg(&w, 5, 12, activate, sizeof activate);  /* ActivateComponent, id 5 */
    assert_int_equal(send(st.sp[1], w.data, w.len, 0), (ssize_t)w.len);
    wd_buf_free(&w);

    next_phase(&st, 100);
    assert_int_equal(wd_loop_run(st.loop, &err), 0);
    assert_int_equal(st.phase, 8);
    wd_loop_drain(st.loop);
    wd_loop_free(st.loop);
    free(st.init);
    free(st.health);
    free(st.routing);
    free(st.load);
    free(st.closed);
}

/* A new connection whose weavelet sends its info and n log entries (then closes, if end). */
static void open_logger(struct cstate *st, int n, bool end)
{
    static const uint8_t winfo[] = {0x0a, 0x03, 't', 'c', 'p', 0x1a, 0x02, 0x10, 0x16};
    free(st->closed);
    st->closed = NULL;
    st->logs = st->unanswered_logs = 0;
    st->answer_logs = false;
    assert_int_equal(
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, st->sp), 0);
    st->c = wd_conn_new_pipe(st->loop, st->sp[0], &st->ops, "test logger");
    wd_conn_call(st->c, WD_M_INIT_WEAVELET, info, sizeof info, on_init_c, st);
    struct wd_buf w = {0};
    wmsg(&w, 0, 2, winfo, sizeof winfo);
    for (int i = 0; i < n; i++)
        wmsg(&w, 0, 3, entry, sizeof entry);
    assert_int_equal(send(st->sp[1], w.data, w.len, 0), (ssize_t)w.len);
    wd_buf_free(&w);
    if (end) {
        uint8_t junk[256]; /* the handshake, read so that the close is an EOF, not a reset */
        for (int i = 0; i < 20 && recv(st->sp[1], junk, sizeof junk, MSG_DONTWAIT) <= 0; i++)
            usleep(1000);
        close(st->sp[1]);
    }
}

static void phase(struct wd_timer *t, void *arg)
{
    (void)t;
    struct cstate *st = arg;
    switch (st->phase++) {
    case 0:
        assert_string_equal(st->init, "ok:9");
        /* reading stops once 64 entries are unanswered: nothing after them was read yet */
        assert_int_equal(st->logs, 64);
        assert_null(st->health);
        for (; st->unanswered_logs; st->unanswered_logs--)
            wd_conn_reply(st->c, 0, WD_M_LOG_BATCH, NULL, 0, NULL);
        st->answer_logs = true;
        next_phase(st, 100);
        break;
    case 1:
        assert_int_equal(st->logs, 100);
        assert_int_equal(st->spans, 1);
        assert_string_equal(st->health, "ok:2");
        assert_string_equal(st->routing, "ok:0");
        assert_string_equal(st->load, "nil GetLoadReply received from weavelet");
        assert_int_equal(st->activate_id, 5);
        wd_conn_reply(st->c, 5, WD_M_ACTIVATE_COMPONENT, NULL, 0, NULL);
        wd_conn_reply(st->c, 0, WD_M_LOG_BATCH, NULL, 0, NULL); /* one-way: writes nothing */
        next_phase(st, 30);
        break;
    case 2: {
        /* what the weavelet read: the handshake, three requests, the reply {id -5, 52 00} */
        Pipes__EnvelopeMsg *e[8];
        size_t n = read_envelope(st->sp[1], e, WD_ARRAY_LEN(e));
        assert_int_equal(n, 5);
        assert_false(e[0]->has_id);
        assert_non_null(e[0]->envelope_info);
        assert_string_equal(e[0]->envelope_info->app, "a");
        assert_true(e[1]->has_id && e[1]->id == 1 && e[1]->has_get_health_request);
        assert_true(e[2]->has_id && e[2]->id == 2 && e[2]->has_update_routing_info_request);
        assert_true(e[3]->has_id && e[3]->id == 3 && e[3]->has_get_load_request);
        assert_true(e[4]->has_id && e[4]->id == -5 && e[4]->has_activate_component_reply);
        assert_int_equal(e[4]->activate_component_reply.len, 0);
        assert_null(e[4]->error);
        for (size_t i = 0; i < n; i++)
            pipes__envelope_msg__free_unpacked(e[i], NULL);
        /* a second handshake is refused at once, without writing */
        wd_conn_call(st->c, WD_M_INIT_WEAVELET, info, sizeof info, on_init_c, st);
        assert_string_equal(st->init, "the pipe handshake happens once per weavelet");
        /* the weavelet goes away: the connection closes, a pending call learns why */
        wd_conn_call(st->c, WD_M_GET_HEALTH, NULL, 0, on_health_c, st);
        next_phase(st, 20);
        break;
    }
    case 3: {
        uint8_t junk[256]; /* read it first: closing with unread bytes would be a reset */
        assert_true(recv(st->sp[1], junk, sizeof junk, MSG_DONTWAIT) > 0);
        close(st->sp[1]);
        next_phase(st, 50);
        break;
    }
    case 4: {
        assert_non_null(st->closed);
        assert_non_null(strstr(st->closed, "connection closed by peer"));
        assert_non_null(strstr(st->health, "connection closed by peer"));
        /* a weavelet whose first message is not its info is dropped */
        free(st->closed);
        st->closed = NULL;
        assert_int_equal(
            socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, st->sp), 0);
        st->c = wd_conn_new_pipe(st->loop, st->sp[0], &st->ops, "test pipes 2");
        wd_conn_call(st->c, WD_M_INIT_WEAVELET, info, sizeof info, on_init_c, st);
        struct wd_buf w = {0};
        wmsg(&w, 0, 3, entry, sizeof entry);
        assert_int_equal(send(st->sp[1], w.data, w.len, 0), (ssize_t)w.len);
        wd_buf_free(&w);
        next_phase(st, 50);
        break;
    }
    case 5:
        assert_non_null(st->closed);
        assert_non_null(
            strstr(st->closed, "the first message from the weavelet must contain weavelet info"));
        assert_non_null(
            strstr(st->init, "the first message from the weavelet must contain weavelet info"));
        close(st->sp[1]);
        /* a weavelet that logs 80 entries and exits: all 80 arrive, paused or not */
        open_logger(st, 80, true);
        next_phase(st, 50);
        break;
    case 6:
        assert_int_equal(st->logs, 80);
        assert_non_null(st->closed);
        /* one that logs 70 and is still connected: 64 are read (paused) until it is declared
         * gone; then wd_conn_flush_input hands on the rest */
        open_logger(st, 70, false);
        next_phase(st, 50);
        break;
    case 7:
        assert_int_equal(st->logs, 64);
        assert_null(st->closed);
        wd_conn_flush_input(st->c);
        assert_int_equal(st->logs, 70);
        wd_conn_close(st->c, "test over");
        close(st->sp[1]);
        wd_loop_stop(st->loop);
        break;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipes_v0220),
        cmocka_unit_test(test_pipes_v0212),
        cmocka_unit_test(test_pipes_v0200),
        cmocka_unit_test(test_pipes_exact),
        cmocka_unit_test(test_codec_captures),
        cmocka_unit_test(test_codec_refusals),
        cmocka_unit_test(test_conn_pipe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
