/* Unit tests for engine/docker/image.c: the ELF reader on crafted binaries, the content-addressed
 * tag, deterministic layer/archive bytes, the docker-archive layout and the /build context. */
#include "engine/docker/docker.h"
#include "engine/base/error.h"
#include "engine/docker/image.h"
#include "engine/base/util.h"
#include "tests/unit/wd_test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <cjson/cJSON.h>
#include <openssl/evp.h>

static void put(uint8_t *b, size_t off, uint64_t v, unsigned w)
{
    for (unsigned i = 0; i < w; i++)
        b[off + i] = (uint8_t)(v >> (8 * i));
}

/* A minimal ELF64 LE executable: PT_LOAD [+ PT_INTERP + PT_DYNAMIC with DT_NEEDED]. */
static size_t make_elf(uint8_t *b, size_t cap, uint16_t machine, const char *interp,
                       const char *const *needed, size_t nneeded)
{
    memset(b, 0, cap);
    memcpy(b, "\177ELF", 4);
    b[4] = 2, b[5] = 1, b[6] = 1;
    put(b, 16, 2, 2);
    put(b, 18, machine, 2);
    put(b, 20, 1, 4);
    put(b, 32, 64, 8); /* e_phoff */
    put(b, 52, 64, 2);
    put(b, 54, 56, 2);
    unsigned nph = interp ? 3 : 1;
    put(b, 56, nph, 2);
    size_t off = 64 + 56 * nph;
    const uint64_t base = 0x400000;
    size_t interp_off = 0, str_off = 0, dyn_off = 0, strsz = 1;
    if (interp) {
        interp_off = off;
        memcpy(b + off, interp, strlen(interp) + 1);
        off += strlen(interp) + 1;
        str_off = off;
        b[off++] = 0;
        size_t name_off[8];
        for (size_t i = 0; i < nneeded; i++) {
            name_off[i] = off - str_off;
            memcpy(b + off, needed[i], strlen(needed[i]) + 1);
            off += strlen(needed[i]) + 1;
        }
        strsz = off - str_off;
        off = (off + 7) & ~(size_t)7;
        dyn_off = off;
        for (size_t i = 0; i < nneeded; i++, off += 16) {
            put(b, off, 1, 8);
            put(b, off + 8, name_off[i], 8);
        }
        put(b, off, 5, 8), put(b, off + 8, base + str_off, 8), off += 16;
        put(b, off, 10, 8), put(b, off + 8, strsz, 8), off += 16;
        off += 16; /* DT_NULL */
    }
    size_t total = off + 16;
    /* PT_LOAD covering the file */
    put(b, 64, 1, 4);
    put(b, 64 + 16, base, 8);
    put(b, 64 + 32, total, 8);
    put(b, 64 + 40, total, 8);
    if (interp) {
        size_t ph = 64 + 56;
        put(b, ph, 3, 4), put(b, ph + 8, interp_off, 8), put(b, ph + 32, strlen(interp) + 1, 8);
        ph += 56;
        put(b, ph, 2, 4), put(b, ph + 8, dyn_off, 8), put(b, ph + 16, base + dyn_off, 8);
        put(b, ph + 32, (nneeded + 3) * 16, 8);
    }
    return total;
}

static void test_elf_inspect(void **state)
{
    (void)state;
    uint8_t b[1024];
    struct wd_elf_info e;
    struct wd_error *err = NULL;
    size_t n = make_elf(b, sizeof b, 62, NULL, NULL, 0);
    assert_int_equal(wd_elf_inspect(b, n, "t", &e, &err), 0);
    assert_true(e.is_static);
    assert_int_equal(e.machine, 62);
    assert_int_equal(e.elf_class, 2);
    wd_elf_info_free(&e);
    const char *needed[] = {"libfoo.so.1", "libc.so.6"};
    n = make_elf(b, sizeof b, 183, "/lib/ld-linux-aarch64.so.1", needed, 2);
    assert_int_equal(wd_elf_inspect(b, n, "t", &e, &err), 0);
    assert_false(e.is_static);
    assert_int_equal(e.machine, 183);
    assert_string_equal(e.interp, "/lib/ld-linux-aarch64.so.1");
    assert_int_equal(e.nneeded, 2);
    assert_string_equal(e.needed[0], "libfoo.so.1");
    assert_string_equal(e.needed[1], "libc.so.6");
    wd_elf_info_free(&e);
    /* every truncation is an error or a clean parse, never a crash */
    for (size_t cut = 0; cut < n; cut++) {
        if (wd_elf_inspect(b, cut, "t", &e, &err) == 0)
            wd_elf_info_free(&e);
        else
            wd_err_free(&err);
    }
    assert_int_equal(wd_elf_inspect((const uint8_t *)"#!/bin/sh\n", 10, "t", &e, &err), -EINVAL);
    wd_err_free(&err);
    n = make_elf(b, sizeof b, 62, NULL, NULL, 0);
    assert_int_equal(wd_elf_inspect(b, n, "t", &e, &err), 0);
    assert_string_equal(e.goarch, "amd64");
    wd_elf_info_free(&e);
}

/* ---- plans: files in a private temp dir ---- */
static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/wd-test-image.XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static char *write_file(const char *name, const uint8_t *data, size_t len)
{
    char *p = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    return p;
}

static void test_plan_tag_and_determinism(void **state)
{
    (void)state;
    uint8_t b[1024];
    size_t n = make_elf(b, sizeof b, wd_elf_host_machine(), NULL, NULL, 0);
    char *bin = write_file("server", b, n);
    b[200] ^= 1; /* a different but valid static file for the shim */
    char *shim = write_file("shim", b, n);
    struct wd_kv labels[] = {{WD_LABEL_DEPLOYMENT, "d1"}};
    struct wd_image_spec s = {
        .app = "demo", .binary_path = bin, .shim_path = shim, .labels = labels, .nlabels = 1};
    char ek[] = "org.weaver-docker.test", ev[] = "x";
    struct wd_label extra[] = {{ek, ev}};
    struct wd_image_plan p1, p2;
    struct wd_error *err = NULL;
    assert_int_equal(wd_image_plan_make(&s, extra, 1, &p1, &err), 0);
    assert_int_equal(wd_image_plan_make(&s, extra, 1, &p2, &err), 0);
    assert_string_equal(p1.tag, p2.tag);
    assert_int_equal(strlen(p1.tag), strlen("weaver-docker/demo:") + 12);
    assert_true(strncmp(p1.tag, "weaver-docker/demo:", 19) == 0);
    assert_int_equal(strncmp(p1.tag + 19, p1.hash, 12), 0);
    assert_int_equal(p1.nfiles, 2);
    assert_string_equal(p1.files[0].path, "/app/server");
    assert_string_equal(p1.files[1].path, WD_IMAGE_SHIM_PATH);

    struct wd_buf a1 = {0}, a2 = {0};
    char h1[65], h2[65];
    assert_int_equal(wd_image_archive(&p1, &a1, h1, &err), 0);
    assert_int_equal(wd_image_archive(&p2, &a2, h2, &err), 0);
    assert_int_equal(a1.len, a2.len);
    assert_memory_equal(a1.data, a2.data, a1.len); /* byte-identical: same image ID */
    assert_string_equal(h1, h2);

    /* read the archive back */
    struct archive *ar = archive_read_new();
    archive_read_support_format_tar(ar);
    assert_int_equal(archive_read_open_memory(ar, a1.data, a1.len), ARCHIVE_OK);
    struct archive_entry *e;
    bool saw_manifest = false, saw_config = false, saw_layer = false;
    char cfgname[80];
    snprintf(cfgname, sizeof cfgname, "%s.json", h1);
    while (archive_read_next_header(ar, &e) == ARCHIVE_OK) {
        const char *path = archive_entry_pathname(e);
        size_t sz = (size_t)archive_entry_size(e);
        uint8_t *buf = xmalloc(sz + 1);
        assert_int_equal(archive_read_data(ar, buf, sz), (la_ssize_t)sz);
        buf[sz] = 0;
        if (strcmp(path, "manifest.json") == 0) {
            saw_manifest = true;
            cJSON *m = cJSON_Parse((char *)buf);
            cJSON *m0 = cJSON_GetArrayItem(m, 0);
            cJSON *tags = cJSON_GetObjectItemCaseSensitive(m0, "RepoTags");
            assert_string_equal(cJSON_GetArrayItem(tags, 0)->valuestring, p1.tag);
            assert_string_equal(cJSON_GetObjectItemCaseSensitive(m0, "Config")->valuestring,
                                cfgname);
            cJSON_Delete(m);
        } else if (strcmp(path, cfgname) == 0) {
            saw_config = true;
            unsigned char dig[32];
            unsigned dl;
            char hex[65];
            EVP_Digest(buf, sz, dig, &dl, EVP_sha256(), NULL);
            wd_hex(dig, 32, hex);
            assert_string_equal(hex, h1); /* image ID = sha256 of the config bytes */
            cJSON *c = cJSON_Parse((char *)buf);
            cJSON *cfg = cJSON_GetObjectItemCaseSensitive(c, "config");
            assert_string_equal(cJSON_GetObjectItemCaseSensitive(cfg, "User")->valuestring,
                                WD_IMAGE_USER);
            cJSON *ep = cJSON_GetObjectItemCaseSensitive(cfg, "Entrypoint");
            assert_string_equal(cJSON_GetArrayItem(ep, 0)->valuestring, WD_IMAGE_SHIM_PATH);
            cJSON *l = cJSON_GetObjectItemCaseSensitive(cfg, "Labels");
            assert_string_equal(cJSON_GetObjectItemCaseSensitive(l, WD_LABEL_APP)->valuestring,
                                "demo");
            assert_string_equal(
                cJSON_GetObjectItemCaseSensitive(l, "org.weaver-docker.test")->valuestring, "x");
            assert_string_equal(cJSON_GetObjectItemCaseSensitive(c, "os")->valuestring, "linux");
            assert_non_null(cJSON_GetObjectItemCaseSensitive(c, "rootfs"));
            cJSON_Delete(c);
        } else if (strstr(path, "/layer.tar")) {
            saw_layer = true;
            /* the layer: sorted, root-owned, mtime 0, /tmp sticky */
            struct archive *lr = archive_read_new();
            archive_read_support_format_tar(lr);
            assert_int_equal(archive_read_open_memory(lr, buf, sz), ARCHIVE_OK);
            struct archive_entry *le;
            char prev[256] = "";
            int count = 0;
            while (archive_read_next_header(lr, &le) == ARCHIVE_OK) {
                const char *lp = archive_entry_pathname(le);
                assert_true(strcmp(prev, lp) < 0);
                snprintf(prev, sizeof prev, "%s", lp);
                assert_int_equal(archive_entry_uid(le), 0);
                assert_int_equal(archive_entry_mtime(le), 0);
                if (strcmp(lp, "tmp/") == 0)
                    assert_int_equal(archive_entry_perm(le), 01777);
                if (strcmp(lp, "app/server") == 0)
                    assert_int_equal(archive_entry_perm(le), 0755);
                count++;
            }
            assert_int_equal(count, 4); /* app/ app/server tmp/ weaver-docker-shim */
            archive_read_free(lr);
        }
        free(buf);
    }
    archive_read_free(ar);
    assert_true(saw_manifest && saw_config && saw_layer);
    wd_buf_free(&a1);
    wd_buf_free(&a2);

    /* the build context carries a FROM scratch Dockerfile */
    struct wd_buf ctx = {0};
    assert_int_equal(wd_image_context(&p1, &ctx, &err), 0);
    assert_non_null(memmem(ctx.data, ctx.len, "FROM scratch", 12));
    assert_non_null(memmem(ctx.data, ctx.len, "rootfs/app/server", 17));
    wd_buf_free(&ctx);

    /* any change of settings or extra labels changes the tag */
    const char *env[] = {"A=1"};
    s.env = env;
    s.nenv = 1;
    struct wd_image_plan p3;
    assert_int_equal(wd_image_plan_make(&s, extra, 1, &p3, &err), 0);
    assert_string_not_equal(p1.tag, p3.tag);
    wd_image_plan_free(&p3);
    s.nenv = 0;
    assert_int_equal(wd_image_plan_make(&s, NULL, 0, &p3, &err), 0);
    assert_string_not_equal(p1.tag, p3.tag);
    wd_image_plan_free(&p3);

    wd_image_plan_free(&p1);
    wd_image_plan_free(&p2);
    free(bin);
    free(shim);
}

static void test_plan_errors(void **state)
{
    (void)state;
    uint8_t b[1024];
    struct wd_image_plan p;
    struct wd_error *err = NULL;
    uint16_t other = wd_elf_host_machine() == 62 ? 183 : 62;
    size_t n = make_elf(b, sizeof b, other, NULL, NULL, 0);
    char *arm = write_file("foreign", b, n);
    struct wd_image_spec s = {.app = "demo", .binary_path = arm};
    assert_int_equal(wd_image_plan_make(&s, NULL, 0, &p, &err), -ENOEXEC);
    assert_non_null(strstr(err->msg, "GOARCH"));
    wd_err_free(&err);

    const char *needed[] = {"libwd-surely-missing.so.7"};
    n = make_elf(b, sizeof b, wd_elf_host_machine(), "/nonexistent/ld.so", needed, 1);
    char *dyn = write_file("dyn", b, n);
    s.binary_path = dyn;
    assert_int_equal(wd_image_plan_make(&s, NULL, 0, &p, &err), -ELIBACC);
    assert_non_null(strstr(err->msg, "CGO_ENABLED=0"));
    wd_err_free(&err);
    /* facts supplied by the caller (engine/weaver/binary.h) take precedence over the file's */
    s.interp = NULL;
    s.needed = needed;
    s.nneeded = 1;
    assert_int_equal(wd_image_plan_make(&s, NULL, 0, &p, &err), -ELIBACC);
    assert_non_null(strstr(err->msg, "libwd-surely-missing.so.7"));
    wd_err_free(&err);

    s = (struct wd_image_spec){.app = "Bad/Name", .binary_path = dyn};
    assert_int_equal(wd_image_plan_make(&s, NULL, 0, &p, &err), -EINVAL);
    wd_err_free(&err);
    s = (struct wd_image_spec){.app = "demo", .binary_path = "/nonexistent/bin"};
    assert_int_equal(wd_image_plan_make(&s, NULL, 0, &p, &err), -ENOENT);
    wd_err_free(&err);
    s = (struct wd_image_spec){.app = "demo", .binary_path = dyn, .shim_path = dyn};
    n = make_elf(b, sizeof b, wd_elf_host_machine(), NULL, NULL, 0);
    char *st = write_file("static", b, n);
    s.binary_path = st; /* the shim must be static */
    assert_int_equal(wd_image_plan_make(&s, NULL, 0, &p, &err), -ENOEXEC);
    wd_err_free(&err);
    free(arm);
    free(dyn);
    free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_elf_inspect),
        cmocka_unit_test(test_plan_tag_and_determinism),
        cmocka_unit_test(test_plan_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
