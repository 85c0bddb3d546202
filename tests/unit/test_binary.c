/* tests/unit/test_binary.c - engine/weaver/binary.c on synthetic ELF files built here (no Go
 * needed), on /bin/ls (a dynamic executable) and, when tests/apps/build.sh has run, on real weaver
 * apps in build/go/apps/. */
#include "tests/unit/wd_test.h"
#include "engine/weaver/binary.h"
#include "engine/base/error.h"
#include "engine/base/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#define MAIN "github.com/ServiceWeaver/weaver/Main"
#define VERSION_MARKER "\xe2\x9f\xa6wEaVeRvErSiOn:deployer=v0.24.0\xe2\x9f\xa7\n"

/* ---- building synthetic ELF files -------------------------------------------------------- */

struct synth {
    bool is32;
    uint16_t machine; /* 0 = x86-64 (or 386 when is32) */
    const void *rodata;
    size_t rodata_len;
    const void *bi; /* .go.buildinfo contents, NULL = none */
    size_t bi_len;
    const char *interp;
    const char *const *needed;
    size_t nneeded;
    bool no_sections; /* leave the section header table out */
};

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_word(uint8_t *p, bool is32, uint64_t v)
{
    if (is32)
        wd_put_u32le(p, (uint32_t)v);
    else
        wd_put_u64le(p, v);
}

static size_t align16(struct wd_buf *b)
{
    static const uint8_t z[16];
    (void)wd_buf_append(b, z, (16 - b->len % 16) % 16);
    return b->len;
}

#define VBASE 0x400000u

/* Layout: ELF header, program headers, blobs (16-aligned), section headers. One PT_LOAD maps
 * the whole file at VBASE. Caller frees. */
static uint8_t *mkelf(const struct synth *s, size_t *len)
{
    bool is32 = s->is32;
    size_t ehsize = is32 ? 52 : 64, phsz = is32 ? 32 : 56, shsz = is32 ? 40 : 64;
    size_t nph = 1 + (s->interp ? 1 : 0) + (s->nneeded ? 1 : 0);
    struct wd_buf b = {0};
    uint8_t zero[64] = {0};
    (void)wd_buf_append(&b, zero, ehsize);
    for (size_t i = 0; i < nph; i++)
        (void)wd_buf_append(&b, zero, phsz);

    /* blobs */
    struct {
        const char *name;
        uint32_t type;
        size_t off, len;
    } sec[8];
    size_t nsec = 0;
    struct wd_buf shstr = {0};
    (void)wd_buf_append(&shstr, "", 1);
#define BLOB(nm, ty, data, n)                                                                      \
    do {                                                                                           \
        sec[nsec].name = (nm);                                                                     \
        sec[nsec].type = (ty);                                                                     \
        sec[nsec].off = align16(&b);                                                               \
        sec[nsec].len = (n);                                                                       \
        (void)wd_buf_append(&b, (data), (n));                                                      \
        nsec++;                                                                                    \
    } while (0)
    if (s->rodata)
        BLOB(".rodata", 1, s->rodata, s->rodata_len);
    if (s->bi)
        BLOB(".go.buildinfo", 1, s->bi, s->bi_len);
    size_t interp_i = nsec, dynstr_i = 0, dyn_i = 0;
    if (s->interp)
        BLOB(".interp", 1, s->interp, strlen(s->interp) + 1);
    if (s->nneeded) {
        struct wd_buf ds = {0}, dyn = {0};
        (void)wd_buf_append(&ds, "", 1);
        size_t ent = is32 ? 8 : 16;
        uint8_t e[16];
        for (size_t i = 0; i < s->nneeded; i++) {
            memset(e, 0, sizeof e);
            put_word(e, is32, 1); /* DT_NEEDED */
            put_word(e + ent / 2, is32, ds.len);
            (void)wd_buf_append(&dyn, e, ent);
            (void)wd_buf_append(&ds, s->needed[i], strlen(s->needed[i]) + 1);
        }
        dynstr_i = nsec;
        BLOB(".dynstr", 3, ds.data, ds.len);
        /* DT_STRTAB, DT_STRSZ, DT_NULL */
        memset(e, 0, sizeof e);
        put_word(e, is32, 5);
        put_word(e + ent / 2, is32, VBASE + sec[dynstr_i].off);
        (void)wd_buf_append(&dyn, e, ent);
        put_word(e, is32, 10);
        put_word(e + ent / 2, is32, ds.len);
        (void)wd_buf_append(&dyn, e, ent);
        memset(e, 0, sizeof e);
        (void)wd_buf_append(&dyn, e, ent);
        dyn_i = nsec;
        BLOB(".dynamic", 6, dyn.data, dyn.len);
        wd_buf_free(&ds);
        wd_buf_free(&dyn);
    }
    size_t name_off[8];
    for (size_t i = 0; i < nsec; i++) {
        name_off[i] = shstr.len;
        (void)wd_buf_append(&shstr, sec[i].name, strlen(sec[i].name) + 1);
    }
    size_t shstr_name = shstr.len;
    (void)wd_buf_append(&shstr, ".shstrtab", 10);
    BLOB(".shstrtab", 3, shstr.data, shstr.len);
    wd_buf_free(&shstr);
#undef BLOB

    size_t shoff = align16(&b), shnum = nsec + 1;
    if (!s->no_sections) {
        (void)wd_buf_append(&b, zero, shsz); /* SHN_UNDEF */
        for (size_t i = 0; i < nsec; i++) {
            uint8_t h[64] = {0};
            wd_put_u32le(h, (uint32_t)(i == nsec - 1 ? shstr_name : name_off[i]));
            wd_put_u32le(h + 4, sec[i].type);
            if (is32) {
                wd_put_u32le(h + 12, (uint32_t)(VBASE + sec[i].off));
                wd_put_u32le(h + 16, (uint32_t)sec[i].off);
                wd_put_u32le(h + 20, (uint32_t)sec[i].len);
            } else {
                wd_put_u64le(h + 16, VBASE + sec[i].off);
                wd_put_u64le(h + 24, sec[i].off);
                wd_put_u64le(h + 32, sec[i].len);
            }
            (void)wd_buf_append(&b, h, shsz);
        }
    }

    uint8_t *d = b.data;
    memcpy(d, "\x7f" "ELF", 4);
    d[4] = is32 ? 1 : 2;
    d[5] = 1;
    d[6] = 1;
    put16(d + 16, 2); /* ET_EXEC */
    put16(d + 18, s->machine ? s->machine : (is32 ? 3 : 62));
    wd_put_u32le(d + 20, 1);
    if (is32) {
        wd_put_u32le(d + 28, (uint32_t)ehsize);
        wd_put_u32le(d + 32, s->no_sections ? 0 : (uint32_t)shoff);
        put16(d + 40, (uint16_t)ehsize);
        put16(d + 42, (uint16_t)phsz);
        put16(d + 44, (uint16_t)nph);
        put16(d + 46, (uint16_t)shsz);
        put16(d + 48, s->no_sections ? 0 : (uint16_t)shnum);
        put16(d + 50, s->no_sections ? 0 : (uint16_t)nsec);
    } else {
        wd_put_u64le(d + 32, ehsize);
        wd_put_u64le(d + 40, s->no_sections ? 0 : shoff);
        put16(d + 52, (uint16_t)ehsize);
        put16(d + 54, (uint16_t)phsz);
        put16(d + 56, (uint16_t)nph);
        put16(d + 58, (uint16_t)shsz);
        put16(d + 60, s->no_sections ? 0 : (uint16_t)shnum);
        put16(d + 62, s->no_sections ? 0 : (uint16_t)nsec);
    }
    /* program headers: PT_LOAD (whole file), PT_INTERP, PT_DYNAMIC */
    struct {
        uint32_t type;
        size_t off, len;
    } ph[3] = {{1, 0, b.len}};
    size_t k = 1;
    if (s->interp)
        ph[k++] = (typeof(ph[0])){3, sec[interp_i].off, sec[interp_i].len};
    if (s->nneeded)
        ph[k++] = (typeof(ph[0])){2, sec[dyn_i].off, sec[dyn_i].len};
    for (size_t i = 0; i < k; i++) {
        uint8_t *p = d + ehsize + i * phsz;
        wd_put_u32le(p, ph[i].type);
        if (is32) {
            wd_put_u32le(p + 4, (uint32_t)ph[i].off);
            wd_put_u32le(p + 8, (uint32_t)(VBASE + ph[i].off));
            wd_put_u32le(p + 16, (uint32_t)ph[i].len);
            wd_put_u32le(p + 20, (uint32_t)ph[i].len);
        } else {
            wd_put_u64le(p + 8, ph[i].off);
            wd_put_u64le(p + 16, VBASE + ph[i].off);
            wd_put_u64le(p + 32, ph[i].len);
            wd_put_u64le(p + 40, ph[i].len);
        }
    }
    *len = b.len;
    return b.data;
}

static void checksum(const char *tag, const char *a, const char *b, char out[9])
{
    char *s = xasprintf("%s%s\xe2\x86\x92%s", tag, a, b);
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL), 1);
    wd_hex(md, 4, out);
    free(s);
}

/* "⟦<sum>:wEaVeReDgE:src→dst⟧\n"; caller frees. */
static char *edge_marker(const char *src, const char *dst)
{
    char sum[9];
    checksum("wEaVeReDgE:", src, dst, sum);
    return xasprintf("\xe2\x9f\xa6%s:wEaVeReDgE:%s\xe2\x86\x92%s\xe2\x9f\xa7\n", sum, src, dst);
}

static char *listeners_marker(const char *comp, const char *names)
{
    char sum[9];
    checksum("wEaVeRlIsTeNeRs:", comp, names, sum);
    return xasprintf("\xe2\x9f\xa6%s:wEaVeRlIsTeNeRs:%s\xe2\x86\x92%s\xe2\x9f\xa7\n", sum, comp,
                     names);
}

static void put_uvarint(struct wd_buf *b, uint64_t v)
{
    while (v >= 0x80) {
        uint8_t c = (uint8_t)(v | 0x80);
        (void)wd_buf_append(b, &c, 1);
        v >>= 7;
    }
    uint8_t c = (uint8_t)v;
    (void)wd_buf_append(b, &c, 1);
}

/* A Go 1.18+ build info blob (flags 2) whose module text has the weaver dependency at
 * weaver_version (none if NULL), framed by the 16-byte sentinels when framed. */
static struct wd_buf buildinfo(const char *gover, const char *weaver_version, bool framed)
{
    struct wd_buf b = {0};
    uint8_t hdr[32] = {0xff, ' ', 'G', 'o', ' ', 'b', 'u', 'i', 'l', 'd', 'i', 'n', 'f', ':', 8, 2};
    (void)wd_buf_append(&b, hdr, sizeof hdr);
    put_uvarint(&b, strlen(gover));
    (void)wd_buf_append(&b, gover, strlen(gover));
    struct wd_buf m = {0};
    if (framed)
        (void)wd_buf_append(&m, "0123456789abcdef", 16);
    wd_buf_printf(&m, "path\texample.com/shop\nmod\texample.com/shop\t(devel)\t\n");
    wd_buf_printf(&m, "dep\tgithub.com/BurntSushi/toml\tv1.3.2\th1:x=\n");
    if (weaver_version)
        wd_buf_printf(&m, "dep\tgithub.com/ServiceWeaver/weaver\t%s\th1:KSIbxVab=\n",
                      weaver_version);
    wd_buf_printf(&m, "build\t-compiler=gc\nbuild\tGOARCH=amd64\n");
    if (framed) {
        (void)wd_buf_append(&m, "fedcba9876543210", 16);
        m.data[m.len - 17] = '\n';
    }
    put_uvarint(&b, m.len);
    (void)wd_buf_append(&b, m.data, m.len);
    wd_buf_free(&m);
    return b;
}

/* rodata: the version marker (or `version`), edges of the shop app, plus noise. */
static char *shop_rodata(const char *version)
{
    char *e1 = edge_marker(MAIN, "example.com/shop/Pricer");
    char *e2 = edge_marker(MAIN, "example.com/shop/Cart");
    char *e3 = edge_marker("example.com/shop/Cart", "example.com/shop/Inventory");
    char *l1 = listeners_marker(MAIN, "shop");
    char *l2 = listeners_marker("example.com/shop/Cart", "admin,\xc3\xb1\x61me,metrics_2");
    char *bad = xasprintf("%s", e1);
    memcpy(bad + 3, "00000000", 8); /* wrong checksum: ignored */
    char *upper = edge_marker("example.com/x/A", "example.com/x/B");
    bool has_letter = false;
    for (char *p = upper + 3; p < upper + 11; p++) { /* upper-case hex fails the comparison */
        if (*p >= 'a' && *p <= 'f') {
            *p = (char)(*p - 'a' + 'A');
            has_letter = true;
        }
    }
    char *r = xasprintf("noise\xe2\x9f\xa6 \xe2\x9f\xa6wEaVeRvErSiOn:deployer=v\xe2\x9f\xa7"
                        "%s%s%s%s%s%s%s%s%s%s\xe2\x9f\xa6",
                        version ? version : VERSION_MARKER, e2, e1, e3, e2 /* duplicate */, l1,
                        l2, l1 /* duplicate */, bad, has_letter ? upper : "");
    free(e1);
    free(e2);
    free(e3);
    free(l1);
    free(l2);
    free(bad);
    free(upper);
    return r;
}

static int inspect_synth(const struct synth *s, struct wd_binary_info **out,
                         struct wd_error **err)
{
    size_t n;
    uint8_t *d = mkelf(s, &n);
    int r = wd_binary_inspect_mem(d, n, "app", out, err);
    free(d);
    return r;
}

static void check_shop_graph(const struct wd_binary_info *b)
{
    assert_int_equal(b->ncomponents, 4);
    assert_string_equal(b->components[0], "example.com/shop/Cart");
    assert_string_equal(b->components[1], "example.com/shop/Inventory");
    assert_string_equal(b->components[2], "example.com/shop/Pricer");
    assert_string_equal(b->components[3], MAIN);
    assert_int_equal(b->nedges, 3);
    assert_string_equal(b->edges[0].src, "example.com/shop/Cart");
    assert_string_equal(b->edges[0].dst, "example.com/shop/Inventory");
    assert_string_equal(b->edges[1].src, MAIN);
    assert_string_equal(b->edges[1].dst, "example.com/shop/Cart");
    assert_string_equal(b->edges[2].dst, "example.com/shop/Pricer");
    assert_int_equal(b->nlisteners, 2);
    assert_string_equal(b->listeners[0].component, "example.com/shop/Cart");
    assert_int_equal(b->listeners[0].names.n, 3);
    assert_string_equal(b->listeners[0].names.v[0], "admin");
    assert_string_equal(b->listeners[0].names.v[1], "\xc3\xb1\x61me");
    assert_string_equal(b->listeners[0].names.v[2], "metrics_2");
    assert_string_equal(b->listeners[1].component, MAIN);
    assert_int_equal(b->listeners[1].names.n, 1);
    assert_string_equal(b->listeners[1].names.v[0], "shop");
}

/* ---- tests ---------------------------------------------------------------------------- */

static void test_synthetic_v0246(void **state)
{
    (void)state;
    char *ro = shop_rodata(NULL);
    struct wd_buf bi = buildinfo("go1.26.8", "v0.24.6", true);
    struct synth s = {.rodata = ro, .rodata_len = strlen(ro), .bi = bi.data, .bi_len = bi.len};
    struct wd_binary_info *b = NULL;
    struct wd_error *err = NULL;
    assert_int_equal(inspect_synth(&s, &b, &err), 0);
    assert_null(err);
    assert_string_equal(b->path, "app");
    assert_string_equal(b->arch, "amd64");
    assert_int_equal(b->api_major, 0);
    assert_int_equal(b->api_minor, 24);
    assert_int_equal(b->api_patch, 0);
    assert_string_equal(b->module_version, "v0.24.6");
    assert_string_equal(b->go_version, "go1.26.8");
    assert_int_equal(b->hdr_fmt, WD_RPC_HDR_PREFIXED);
    assert_true(b->is_static);
    assert_null(b->interp);
    assert_int_equal(b->needed.n, 0);
    check_shop_graph(b);
    if (strcmp(wd_host_goarch(), "amd64") == 0)
        assert_int_equal(wd_binary_check_supported(b, &err), 0);
    wd_binary_info_free(b);

    /* The same file with the section headers stripped: whole-file scan, build info found by its
     * magic at a 16-byte aligned offset. */
    s.no_sections = true;
    assert_int_equal(inspect_synth(&s, &b, &err), 0);
    assert_string_equal(b->module_version, "v0.24.6");
    check_shop_graph(b);
    wd_binary_info_free(b);
    wd_buf_free(&bi);
    free(ro);
}

struct hdr_case {
    const char *version;
    bool framed;
    enum wd_rpc_hdr_fmt want;
};

static void test_module_versions(void **state)
{
    (void)state;
    static const struct hdr_case cases[] = {
        {"v0.24.6", true, WD_RPC_HDR_PREFIXED},
        {"v0.24.4", false, WD_RPC_HDR_PREFIXED},
        {"v0.24.3", true, WD_RPC_HDR_FIXED49},
        {"v0.24.1", true, WD_RPC_HDR_FIXED49},
        {"v0.23.0-beta", true, WD_RPC_HDR_FIXED49},
        {"v0.24.4-rc.1", true, WD_RPC_HDR_FIXED49},
        {"v0.25.0-alpha", true, WD_RPC_HDR_PREFIXED},
        {"v0.24.7-0.20240601120000-0123456789ab", true, WD_RPC_HDR_PREFIXED},
        {"v0.24.4-0.20240601120000-0123456789ab", true, WD_RPC_HDR_FIXED49}, /* base v0.24.3 */
        {"v0.24.5-0.20240601120000-0123456789ab", true, WD_RPC_HDR_PREFIXED}, /* base v0.24.4 */
        {"v0.24.4-rc.1.0.20240601120000-0123456789ab", true, WD_RPC_HDR_FIXED49},
        {"v0.0.0-20240601120000-0123456789ab", true, WD_RPC_HDR_FIXED49},
        {"v1.0.0", true, WD_RPC_HDR_PREFIXED},
        {"(devel)", true, WD_RPC_HDR_FIXED49}, /* not semver, and no metadata string */
    };
    char *ro = shop_rodata(NULL);
    for (size_t i = 0; i < WD_ARRAY_LEN(cases); i++) {
        struct wd_buf bi = buildinfo("go1.23.1", cases[i].version, cases[i].framed);
        struct synth s = {.rodata = ro, .rodata_len = strlen(ro), .bi = bi.data, .bi_len = bi.len};
        struct wd_binary_info *b = NULL;
        struct wd_error *err = NULL;
        assert_int_equal(inspect_synth(&s, &b, &err), 0);
        assert_string_equal(b->module_version, cases[i].version);
        if (b->hdr_fmt != cases[i].want)
            fail_msg("%s: hdr_fmt %d, want %d", cases[i].version, b->hdr_fmt, cases[i].want);
        wd_binary_info_free(b);
        wd_buf_free(&bi);
    }
    free(ro);
}

static void test_no_buildinfo_fallback(void **state)
{
    (void)state;
    char *ro = shop_rodata(NULL);
    struct wd_binary_info *b = NULL;
    struct wd_error *err = NULL;
    /* no build info, no metadata package path */
    struct synth s = {.rodata = ro, .rodata_len = strlen(ro)};
    assert_int_equal(inspect_synth(&s, &b, &err), 0);
    assert_null(b->module_version);
    assert_null(b->go_version);
    assert_int_equal(b->hdr_fmt, WD_RPC_HDR_FIXED49);
    wd_binary_info_free(b);

    /* the metadata package path anywhere in the file means v0.24.4+ */
    char *ro2 = xasprintf("%sgithub.com/ServiceWeaver/weaver/metadata.NewContext", ro);
    s.rodata = ro2;
    s.rodata_len = strlen(ro2);
    assert_int_equal(inspect_synth(&s, &b, &err), 0);
    assert_int_equal(b->hdr_fmt, WD_RPC_HDR_PREFIXED);
    wd_binary_info_free(b);

    /* pre-Go 1.18 pointer form (flags 0): reported as no build info */
    uint8_t old[64] = {0xff, ' ', 'G', 'o', ' ', 'b', 'u', 'i', 'l', 'd', 'i', 'n', 'f', ':', 8, 0};
    s.bi = old;
    s.bi_len = sizeof old;
    assert_int_equal(inspect_synth(&s, &b, &err), 0);
    assert_null(b->module_version);
    assert_null(b->go_version);
    assert_int_equal(b->hdr_fmt, WD_RPC_HDR_PREFIXED); /* from the string */
    wd_binary_info_free(b);

    /* build info without the weaver module (and broken varints) */
    struct wd_buf bi = buildinfo("go1.22.0", NULL, true);
    s.rodata = ro;
    s.rodata_len = strlen(ro);
    s.bi = bi.data;
    s.bi_len = bi.len;
    assert_int_equal(inspect_synth(&s, &b, &err), 0);
    assert_null(b->module_version);
    assert_string_equal(b->go_version, "go1.22.0");
    wd_binary_info_free(b);
    bi.data[32] = 0xff; /* version length varint runs past the blob */
    assert_int_equal(inspect_synth(&s, &b, &err), 0);
    assert_null(b->go_version);
    wd_binary_info_free(b);
    wd_buf_free(&bi);
    free(ro2);
    free(ro);
}

static void test_elf32_and_arch(void **state)
{
    (void)state;
    char *ro = shop_rodata(NULL);
    struct wd_buf bi = buildinfo("go1.26.8", "v0.24.6", true);
    struct synth s = {.is32 = true,
                      .machine = 40,
                      .rodata = ro,
                      .rodata_len = strlen(ro),
                      .bi = bi.data,
                      .bi_len = bi.len};
    struct wd_binary_info *b = NULL;
    struct wd_error *err = NULL;
    assert_int_equal(inspect_synth(&s, &b, &err), 0);
    assert_string_equal(b->arch, "arm");
    assert_string_equal(b->module_version, "v0.24.6");
    check_shop_graph(b);
    const char *host = wd_host_goarch();
    char *want = xasprintf("app is built for arm but this engine runs %s; rebuild with GOARCH=%s",
                           host, host);
    assert_int_equal(wd_binary_check_supported(b, &err), -ENOEXEC);
    assert_string_equal(err->msg, want);
    wd_err_free(&err);
    free(want);
    wd_binary_info_free(b);

    s.is32 = false;
    s.machine = 183; /* EM_AARCH64 */
    assert_int_equal(inspect_synth(&s, &b, &err), 0);
    assert_string_equal(b->arch, "arm64");
    if (strcmp(host, "amd64") == 0) {
        assert_int_equal(wd_binary_check_supported(b, &err), -ENOEXEC);
        assert_string_equal(err->msg,
                            "app is built for arm64 but this engine runs amd64; rebuild with "
                            "GOARCH=amd64");
        wd_err_free(&err);
    }
    wd_binary_info_free(b);

    s.machine = 0x9999;
    assert_int_equal(inspect_synth(&s, &b, &err), 0);
    assert_string_equal(b->arch, "elf-machine-39321");
    assert_int_equal(wd_binary_check_supported(b, &err), -ENOEXEC);
    wd_err_free(&err);
    wd_binary_info_free(b);
    wd_buf_free(&bi);
    free(ro);
}

static void test_not_elf_and_truncated(void **state)
{
    (void)state;
    struct wd_binary_info *b = NULL;
    struct wd_error *err = NULL;
    static const char text[] = "[serviceweaver]\nbinary = \"./app\"\n";
    assert_int_equal(wd_binary_inspect_mem((const uint8_t *)text, sizeof text - 1, "weaver.toml",
                                           &b, &err),
                     -EINVAL);
    assert_string_equal(err->msg, "weaver.toml is not an ELF executable; give weaver.toml or a "
                                  "Service Weaver app binary built for linux");
    wd_err_free(&err);
    assert_int_equal(wd_binary_inspect_mem(NULL, 0, "empty", &b, &err), -EINVAL);
    wd_err_free(&err);

    char *ro = shop_rodata(NULL);
    struct wd_buf bi = buildinfo("go1.26.8", "v0.24.6", true);
    struct synth s = {.rodata = ro, .rodata_len = strlen(ro), .bi = bi.data, .bi_len = bi.len};
    size_t n;
    uint8_t *d = mkelf(&s, &n);
    assert_int_equal(wd_binary_inspect_mem(d, 40, "app", &b, &err), -EINVAL);
    assert_non_null(strstr(err->msg, "app is a truncated or corrupt ELF file"));
    wd_err_free(&err);
    assert_int_equal(wd_binary_inspect_mem(d, n - 1, "app", &b, &err), -EINVAL);
    assert_string_equal(err->msg, "app is a truncated or corrupt ELF file (section headers out "
                                  "of range); rebuild the app binary or copy it again");
    wd_err_free(&err);
    /* every prefix either fails cleanly or parses */
    for (size_t len = 0; len < n; len++) {
        if (wd_binary_inspect_mem(d, len, "app", &b, &err) == 0)
            wd_binary_info_free(b);
        else
            wd_err_free(&err);
    }
    /* big-endian */
    d[5] = 2;
    assert_int_equal(wd_binary_inspect_mem(d, n, "app", &b, &err), -EINVAL);
    assert_non_null(strstr(err->msg, "big-endian"));
    wd_err_free(&err);
    d[5] = 1;
    /* a relocatable object is not an executable */
    d[16] = 1;
    assert_int_equal(wd_binary_inspect_mem(d, n, "app.o", &b, &err), -EINVAL);
    assert_non_null(strstr(err->msg, "app.o is not an ELF executable"));
    wd_err_free(&err);
    free(d);
    wd_buf_free(&bi);
    free(ro);
}

static void test_not_weaver(void **state)
{
    (void)state;
    struct wd_buf bi = buildinfo("go1.26.8", NULL, true);
    static const char ro[] = "hello, world\n\xe2\x9f\xa6wEaVeRvErSiOn:deployer=vx.y.z\xe2\x9f\xa7";
    struct synth s = {.rodata = ro, .rodata_len = sizeof ro - 1, .bi = bi.data, .bi_len = bi.len};
    struct wd_binary_info *b = NULL;
    struct wd_error *err = NULL;
    assert_int_equal(inspect_synth(&s, &b, &err), -EINVAL);
    assert_string_equal(err->msg, "app is not a Service Weaver application (no weaver version "
                                  "marker); did you run 'weaver generate' and build with "
                                  "github.com/ServiceWeaver/weaver?");
    wd_err_free(&err);
    wd_buf_free(&bi);
}

static void test_unsupported_api(void **state)
{
    (void)state;
    static const struct {
        const char *marker, *module, *want;
    } cases[] = {
        {"\xe2\x9f\xa6wEaVeRvErSiOn:deployer=v0.22.0\xe2\x9f\xa7", "v0.23.0-beta",
         "app uses deployer API v0.22.0 with weaver module v0.23.0-beta, which no weaver release "
         "this engine knows has; supported: weaver v0.20.0-v0.24.6 (deployer API v0.20.0, "
         "v0.22.0, v0.23.0, v0.24.0): rebuild the app with github.com/ServiceWeaver/weaver "
         "v0.24.6"},
        {"\xe2\x9f\xa6wEaVeRvErSiOn:0.14.0\xe2\x9f\xa7", "v0.16.1",
         "app: unsupported weaver version v0.16.1 (deployer API v0.14.0); supported: weaver "
         "v0.20.0-v0.24.6: rebuild the app with github.com/ServiceWeaver/weaver v0.24.6"},
        {"\xe2\x9f\xa6wEaVeRvErSiOn:deployer=v0.25.0\xe2\x9f\xa7", "v0.25.0",
         "app uses deployer API v0.25.0 with weaver module v0.25.0, which no weaver release this "
         "engine knows has; supported: weaver v0.20.0-v0.24.6 (deployer API v0.20.0, v0.22.0, "
         "v0.23.0, v0.24.0): rebuild the app with github.com/ServiceWeaver/weaver v0.24.6"},
    };
    for (size_t i = 0; i < WD_ARRAY_LEN(cases); i++) {
        char *ro = shop_rodata(cases[i].marker);
        struct wd_buf bi = buildinfo("go1.21.0", cases[i].module, true);
        struct synth s = {.rodata = ro, .rodata_len = strlen(ro), .bi = bi.data, .bi_len = bi.len};
        struct wd_binary_info *b = NULL;
        struct wd_error *err = NULL;
        assert_int_equal(inspect_synth(&s, &b, &err), 0);
        assert_int_equal(wd_binary_check_supported(b, &err), -ENOTSUP);
        assert_string_equal(err->msg, cases[i].want);
        wd_err_free(&err);
        wd_binary_info_free(b);
        wd_buf_free(&bi);
        free(ro);
    }
}

/* The pipe releases are deployed by `up`; `compose` refuses them in one line. */
static void test_pipe_releases(void **state)
{
    (void)state;
    static const struct {
        const char *marker, *module, *proto, *compose;
    } cases[] = {
        {"\xe2\x9f\xa6wEaVeRvErSiOn:deployer=v0.22.0\xe2\x9f\xa7", "v0.22.0",
         "two pipes, deployer API v0.22.0, 49-byte RPC headers (weaver v0.22.0)",
         "app uses weaver v0.22.0, whose weavelets talk to their deployer over two pipes: compose "
         "files need weaver v0.23.0 or later; run it with 'weaver-docker up', or rebuild the app "
         "with github.com/ServiceWeaver/weaver v0.24.6"},
        {"\xe2\x9f\xa6wEaVeRvErSiOn:module=v0.21.2;deployer=v0.20.0\xe2\x9f\xa7", NULL,
         "two pipes, deployer API v0.20.0, 49-byte RPC headers (weaver v0.20.0-v0.21.x)",
         "app uses weaver v0.20-v0.22, whose weavelets talk to their deployer over two pipes: "
         "compose files need weaver v0.23.0 or later; run it with 'weaver-docker up', or rebuild "
         "the app with github.com/ServiceWeaver/weaver v0.24.6"},
    };
    for (size_t i = 0; i < WD_ARRAY_LEN(cases); i++) {
        char *ro = shop_rodata(cases[i].marker);
        struct wd_buf bi = buildinfo("go1.21.0", cases[i].module, true);
        struct synth s = {.rodata = ro, .rodata_len = strlen(ro), .bi = bi.data, .bi_len = bi.len};
        struct wd_binary_info *b = NULL;
        struct wd_error *err = NULL;
        assert_int_equal(inspect_synth(&s, &b, &err), 0);
        assert_int_equal(wd_binary_check_supported(b, &err), 0);
        assert_true(wd_binary_pipes(b));
        assert_int_equal(b->hdr_fmt, WD_RPC_HDR_FIXED49);
        assert_string_equal(wd_binary_generation(b), cases[i].proto);
        assert_int_equal(wd_binary_check_compose(b, &err), -ENOTSUP);
        assert_string_equal(err->msg, cases[i].compose);
        wd_err_free(&err);
        wd_binary_info_free(b);
        wd_buf_free(&bi);
        free(ro);
    }
}

static void test_dynamic_synthetic(void **state)
{
    (void)state;
    static const char *const needed[] = {"libc.so.6", "libpthread.so.0"};
    char *ro = shop_rodata(NULL);
    for (int is32 = 0; is32 <= 1; is32++) {
        struct synth s = {.is32 = is32,
                          .rodata = ro,
                          .rodata_len = strlen(ro),
                          .interp = "/lib64/ld-linux-x86-64.so.2",
                          .needed = needed,
                          .nneeded = 2};
        struct wd_binary_info *b = NULL;
        struct wd_error *err = NULL;
        assert_int_equal(inspect_synth(&s, &b, &err), 0);
        assert_false(b->is_static);
        assert_string_equal(b->interp, "/lib64/ld-linux-x86-64.so.2");
        assert_int_equal(b->needed.n, 2);
        assert_string_equal(b->needed.v[0], "libc.so.6");
        assert_string_equal(b->needed.v[1], "libpthread.so.0");
        assert_string_equal(b->arch, is32 ? "386" : "amd64");
        wd_binary_info_free(b);
    }
    free(ro);
}

/* /bin/ls with a version marker written over the start of its .rodata: a real dynamic
 * executable. */
static void test_bin_ls(void **state)
{
    (void)state;
    char *d = NULL;
    size_t n = 0;
    if (wd_read_file("/bin/ls", 16u << 20, &d, &n) < 0 || n < 64 || memcmp(d, "\x7f" "ELF", 4) ||
        d[4] != 2 || d[5] != 1)
        skip();
    const uint8_t *u = (const uint8_t *)d;
    uint64_t shoff = wd_get_u64le(u + 40);
    size_t shentsize = u[58] | (size_t)u[59] << 8, shnum = u[60] | (size_t)u[61] << 8,
           shstrndx = u[62] | (size_t)u[63] << 8;
    assert_true(shoff + shnum * shentsize <= n);
    const uint8_t *strs = u + shoff + shstrndx * shentsize;
    uint64_t stroff = wd_get_u64le(strs + 24);
    uint64_t rodata = 0, rodata_len = 0;
    for (size_t i = 0; i < shnum; i++) {
        const uint8_t *h = u + shoff + i * shentsize;
        if (strcmp(d + stroff + wd_get_u32le(h), ".rodata") == 0) {
            rodata = wd_get_u64le(h + 24);
            rodata_len = wd_get_u64le(h + 32);
        }
    }
    assert_true(rodata_len > sizeof VERSION_MARKER);
    memcpy(d + rodata, VERSION_MARKER, sizeof VERSION_MARKER - 1);

    struct wd_binary_info *b = NULL;
    struct wd_error *err = NULL;
    assert_int_equal(wd_binary_inspect_mem((uint8_t *)d, n, "/bin/ls", &b, &err), 0);
    assert_false(b->is_static);
    assert_non_null(b->interp);
    assert_true(strncmp(b->interp, "/lib", 4) == 0);
    bool libc = false;
    for (size_t i = 0; i < b->needed.n; i++)
        libc = libc || strcmp(b->needed.v[i], "libc.so.6") == 0;
    assert_true(libc);
    assert_null(b->module_version);
    assert_int_equal(b->ncomponents, 1);
    assert_string_equal(b->components[0], MAIN);
    assert_int_equal(b->nedges, 0);
    assert_string_equal(b->arch, wd_host_goarch());
    wd_binary_info_free(b);
    free(d);

    /* unmodified, it is not a weaver app */
    assert_int_equal(wd_binary_inspect("/bin/ls", &b, &err), -EINVAL);
    assert_non_null(strstr(err->msg, "is not a Service Weaver application"));
    wd_err_free(&err);
}

static void test_files(void **state)
{
    (void)state;
    struct wd_binary_info *b = NULL;
    struct wd_error *err = NULL;
    assert_int_equal(wd_binary_inspect("/nonexistent/app", &b, &err), -ENOENT);
    assert_string_equal(err->msg, "/nonexistent/app does not exist; give the path of a Service "
                                  "Weaver app binary or of its weaver.toml");
    wd_err_free(&err);
    assert_int_equal(wd_binary_inspect("/", &b, &err), -EISDIR);
    wd_err_free(&err);

    char dir[] = "/tmp/wd-test-binary-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = xasprintf("%s/app", dir);
    char *ro = shop_rodata(NULL);
    struct wd_buf bi = buildinfo("go1.26.8", "v0.24.6", true);
    struct synth s = {.rodata = ro, .rodata_len = strlen(ro), .bi = bi.data, .bi_len = bi.len};
    size_t n;
    uint8_t *d = mkelf(&s, &n);
    FILE *f = fopen(path, "wbe");
    assert_non_null(f);
    assert_int_equal(fwrite(d, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(wd_binary_inspect(path, &b, &err), 0);
    assert_string_equal(b->path, path);
    check_shop_graph(b);
    wd_binary_info_free(b);
    /* an empty file is not an ELF file */
    f = fopen(path, "we");
    assert_non_null(f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(wd_binary_inspect(path, &b, &err), -EINVAL);
    wd_err_free(&err);
    unlink(path);
    rmdir(dir);
    free(d);
    free(path);
    free(ro);
    wd_buf_free(&bi);
}

/* Real apps built by tests/apps/build.sh (skipped when absent). */
static void test_real_apps(void **state)
{
    (void)state;
    struct stat st;
    if (stat("build/go/apps/shop", &st) < 0 || stat("build/go/apps/shop-v0243", &st) < 0)
        skip();
    struct wd_binary_info *b = NULL;
    struct wd_error *err = NULL;
    assert_int_equal(wd_binary_inspect("build/go/apps/shop", &b, &err), 0);
    assert_string_equal(b->module_version, "v0.24.6");
    assert_int_equal(b->hdr_fmt, WD_RPC_HDR_PREFIXED);
    assert_int_equal(b->api_minor, 24);
    assert_true(b->is_static);
    assert_non_null(b->go_version);
    bool cart = false;
    for (size_t i = 0; i < b->nedges; i++)
        cart = cart || (strcmp(b->edges[i].src, MAIN) == 0 &&
                        strcmp(b->edges[i].dst, "example.com/shop/Cart") == 0);
    assert_true(cart);
    assert_true(b->nlisteners >= 1);
    wd_binary_info_free(b);
    assert_int_equal(wd_binary_inspect("build/go/apps/shop-v0243", &b, &err), 0);
    assert_string_equal(b->module_version, "v0.24.3");
    assert_int_equal(b->hdr_fmt, WD_RPC_HDR_FIXED49);
    wd_binary_info_free(b);
}

/* The version matrix (tests/apps/matrix*, built by tests/apps/build.sh; skipped when absent):
 * module version, deployer API version, header format, the call edge and the listener are read
 * from every generation's binary, v0.19.0 included. Whether a generation is supported is not
 * asserted here (issue 14 changes it). */
static void test_matrix_apps(void **state)
{
    (void)state;
    static const struct {
        const char *name, *module;
        int api_minor;
        enum wd_rpc_hdr_fmt hdr;
    } apps[] = {
        {"matrix", "v0.24.6", 24, WD_RPC_HDR_PREFIXED},
        {"matrix-v0243", "v0.24.3", 24, WD_RPC_HDR_FIXED49},
        {"matrix-v0232", "v0.23.2", 23, WD_RPC_HDR_FIXED49},
        {"matrix-v0220", "v0.22.0", 22, WD_RPC_HDR_FIXED49},
        {"matrix-v0212", "v0.21.2", 20, WD_RPC_HDR_FIXED49},
        {"matrix-v0200", "v0.20.0", 20, WD_RPC_HDR_FIXED49},
        {"matrix-v0190", "v0.19.0", 18, WD_RPC_HDR_FIXED49},
    };
    struct stat st;
    for (size_t i = 0; i < WD_ARRAY_LEN(apps); i++) {
        char path[128];
        snprintf(path, sizeof path, "build/go/apps/%s", apps[i].name);
        if (stat(path, &st) < 0)
            skip();
    }
    for (size_t i = 0; i < WD_ARRAY_LEN(apps); i++) {
        char path[128];
        snprintf(path, sizeof path, "build/go/apps/%s", apps[i].name);
        struct wd_binary_info *b = NULL;
        struct wd_error *err = NULL;
        assert_int_equal(wd_binary_inspect(path, &b, &err), 0);
        assert_string_equal(b->module_version, apps[i].module);
        assert_int_equal(b->api_major, 0);
        assert_int_equal(b->api_minor, apps[i].api_minor);
        assert_int_equal(b->api_patch, 0);
        assert_int_equal(b->hdr_fmt, apps[i].hdr);
        assert_true(b->is_static);
        assert_int_equal(b->nedges, 1);
        assert_string_equal(b->edges[0].src, MAIN);
        assert_string_equal(b->edges[0].dst, "example.com/matrix/Greeter");
        assert_int_equal(b->nlisteners, 1);
        /* v0.20.0-v0.24.6 run (pipes below v0.23); v0.19 is refused */
        int rc = wd_binary_check_supported(b, &err);
        assert_int_equal(rc, apps[i].api_minor >= 20 ? 0 : -ENOTSUP);
        assert_int_equal(wd_binary_pipes(b), apps[i].api_minor == 20 || apps[i].api_minor == 22);
        wd_err_free(&err);
        wd_binary_info_free(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_synthetic_v0246),   cmocka_unit_test(test_module_versions),
        cmocka_unit_test(test_no_buildinfo_fallback), cmocka_unit_test(test_elf32_and_arch),
        cmocka_unit_test(test_not_elf_and_truncated), cmocka_unit_test(test_not_weaver),
        cmocka_unit_test(test_unsupported_api),
        cmocka_unit_test(test_pipe_releases),
        cmocka_unit_test(test_dynamic_synthetic),
        cmocka_unit_test(test_bin_ls),            cmocka_unit_test(test_files),
        cmocka_unit_test(test_real_apps),         cmocka_unit_test(test_matrix_apps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
