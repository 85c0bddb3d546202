/* tests/unit/test_pprof.c - engine/deploy/pprof.c: merging synthetic profiles built with the
 * generated API, the real Go CPU profiles in tests/fixtures/pprof/ (written by runtime/pprof,
 * go1.26), bad input, bounds, and `go tool pprof` reading the result when go is installed. */
#include "tests/unit/wd_test.h"

#include "engine/base/error.h"
#include "engine/deploy/pprof.h"
#include "engine/base/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <protobuf-c/protobuf-c.h>

#pragma GCC diagnostic ignored "-Wcast-qual"
#include "profile.pb-c.h"

#define FIX "tests/fixtures/pprof/"

/* ---- building profiles ------------------------------------------------------------------ */

struct spec_sample {
    uint64_t locs[4];
    size_t nlocs;
    int64_t values[4];
    size_t nvalues;
    int64_t label_key, label_str; /* 0: no label */
};

struct spec {
    const char *strings[16];
    size_t nstrings;
    int64_t types[4][2];
    size_t ntypes;
    uint64_t map_ids[4];
    int64_t map_files[4];
    size_t nmap;
    uint64_t func_ids[4];
    int64_t func_names[4];
    size_t nfunc;
    uint64_t loc_ids[4], loc_map[4], loc_func[4];
    size_t nloc;
    struct spec_sample samples[4];
    size_t nsamples;
    int64_t time_nanos, duration_nanos, period, drop_frames;
};

/* Pack @sp; caller frees. */
static uint8_t *mk_profile(const struct spec *sp, size_t *len)
{
    Perftools__Profiles__Profile p = PERFTOOLS__PROFILES__PROFILE__INIT;
    char *strs[16];
    for (size_t i = 0; i < sp->nstrings; i++)
        strs[i] = (char *)sp->strings[i];
    p.string_table = strs;
    p.n_string_table = sp->nstrings;

    Perftools__Profiles__ValueType vt[4], *vtp[4], period_type;
    for (size_t i = 0; i < sp->ntypes; i++) {
        vt[i] = (Perftools__Profiles__ValueType)PERFTOOLS__PROFILES__VALUE_TYPE__INIT;
        vt[i].type = sp->types[i][0];
        vt[i].unit = sp->types[i][1];
        vtp[i] = &vt[i];
    }
    p.sample_type = vtp;
    p.n_sample_type = sp->ntypes;
    if (sp->ntypes > 0) {
        period_type = vt[sp->ntypes - 1];
        p.period_type = &period_type;
    }

    Perftools__Profiles__Mapping mp[4], *mpp[4];
    for (size_t i = 0; i < sp->nmap; i++) {
        mp[i] = (Perftools__Profiles__Mapping)PERFTOOLS__PROFILES__MAPPING__INIT;
        mp[i].id = sp->map_ids[i];
        mp[i].filename = sp->map_files[i];
        mp[i].memory_start = 0x400000;
        mp[i].memory_limit = 0x800000;
        mp[i].has_functions = 1;
        mpp[i] = &mp[i];
    }
    p.mapping = mpp;
    p.n_mapping = sp->nmap;

    Perftools__Profiles__Function fn[4], *fnp[4];
    for (size_t i = 0; i < sp->nfunc; i++) {
        fn[i] = (Perftools__Profiles__Function)PERFTOOLS__PROFILES__FUNCTION__INIT;
        fn[i].id = sp->func_ids[i];
        fn[i].name = fn[i].system_name = sp->func_names[i];
        fnp[i] = &fn[i];
    }
    p.function = fnp;
    p.n_function = sp->nfunc;

    Perftools__Profiles__Location loc[4], *locp[4];
    Perftools__Profiles__Line line[4], *linep[4];
    for (size_t i = 0; i < sp->nloc; i++) {
        loc[i] = (Perftools__Profiles__Location)PERFTOOLS__PROFILES__LOCATION__INIT;
        loc[i].id = sp->loc_ids[i];
        loc[i].mapping_id = sp->loc_map[i];
        loc[i].address = 0x401000 + 16 * i;
        line[i] = (Perftools__Profiles__Line)PERFTOOLS__PROFILES__LINE__INIT;
        line[i].function_id = sp->loc_func[i];
        line[i].line = (int64_t)(10 + i);
        linep[i] = &line[i];
        loc[i].line = &linep[i];
        loc[i].n_line = 1;
        locp[i] = &loc[i];
    }
    p.location = locp;
    p.n_location = sp->nloc;

    Perftools__Profiles__Sample smp[4], *smpp[4];
    Perftools__Profiles__Label lab[4], *labp[4];
    uint64_t locids[4][4];
    int64_t values[4][4];
    for (size_t i = 0; i < sp->nsamples; i++) {
        const struct spec_sample *ss = &sp->samples[i];
        smp[i] = (Perftools__Profiles__Sample)PERFTOOLS__PROFILES__SAMPLE__INIT;
        memcpy(locids[i], ss->locs, sizeof locids[i]);
        memcpy(values[i], ss->values, sizeof values[i]);
        smp[i].location_id = locids[i];
        smp[i].n_location_id = ss->nlocs;
        smp[i].value = values[i];
        smp[i].n_value = ss->nvalues;
        if (ss->label_key != 0) {
            lab[i] = (Perftools__Profiles__Label)PERFTOOLS__PROFILES__LABEL__INIT;
            lab[i].key = ss->label_key;
            lab[i].str = ss->label_str;
            labp[i] = &lab[i];
            smp[i].label = &labp[i];
            smp[i].n_label = 1;
        }
        smpp[i] = &smp[i];
    }
    p.sample = smpp;
    p.n_sample = sp->nsamples;
    p.time_nanos = sp->time_nanos;
    p.duration_nanos = sp->duration_nanos;
    p.period = sp->period;
    p.drop_frames = sp->drop_frames;

    *len = perftools__profiles__profile__get_packed_size(&p);
    uint8_t *buf = xmalloc(*len);
    perftools__profiles__profile__pack(&p, buf);
    return buf;
}

/* Profile A: dense ids. */
static struct spec spec_a(void)
{
    return (struct spec){
        .strings = {"", "samples", "count", "cpu", "nanoseconds", "main.alpha", "main.beta",
                    "/bin/a"},
        .nstrings = 8,
        .types = {{1, 2}, {3, 4}},
        .ntypes = 2,
        .map_ids = {1},
        .map_files = {7},
        .nmap = 1,
        .func_ids = {1, 2},
        .func_names = {5, 6},
        .nfunc = 2,
        .loc_ids = {1, 2},
        .loc_map = {1, 1},
        .loc_func = {1, 2},
        .nloc = 2,
        .samples = {{{1, 2}, 2, {3, 30000000}, 2, 0, 0}, {{2}, 1, {1, 10000000}, 2, 0, 0}},
        .nsamples = 2,
        .time_nanos = 2000,
        .duration_nanos = 500,
        .period = 10000000,
    };
}

/* Profile B: other string order, sparse ids, and a stale "replica" label. */
static struct spec spec_b(void)
{
    return (struct spec){
        .strings = {"", "main.gamma", "cpu", "nanoseconds", "samples", "count", "/bin/b",
                    "main.alpha", "replica", "stale", "user"},
        .nstrings = 11,
        .types = {{4, 5}, {2, 3}},
        .ntypes = 2,
        .map_ids = {50},
        .map_files = {6},
        .nmap = 1,
        .func_ids = {9, 4},
        .func_names = {1, 7},
        .nfunc = 2,
        .loc_ids = {77, 5},
        .loc_map = {50, 50},
        .loc_func = {9, 4},
        .nloc = 2,
        .samples = {{{77, 5}, 2, {2, 20000000}, 2, 8, 9}, {{5}, 1, {4, 40000000}, 2, 10, 9}},
        .nsamples = 2,
        .time_nanos = 1000,
        .duration_nanos = 900,
        .period = 99,
    };
}

/* ---- gzip, and reading the result -------------------------------------------------------- */

static la_ssize_t buf_write(struct archive *a, void *arg, const void *data, size_t n)
{
    (void)a;
    return wd_buf_append(arg, data, n) < 0 ? -1 : (la_ssize_t)n;
}

/* Gzip @len bytes of @data, or of zeros when @data is NULL. */
static void gz(const void *data, size_t len, struct wd_buf *out)
{
    struct archive *a = archive_write_new();
    assert_non_null(a);
    assert_int_equal(archive_write_set_format_raw(a), ARCHIVE_OK);
    assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
    archive_write_set_bytes_in_last_block(a, 1);
    assert_int_equal(archive_write_open(a, out, NULL, buf_write, NULL), ARCHIVE_OK);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "p");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_size(e, (la_int64_t)len);
    assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
    archive_entry_free(e);
    if (data != NULL) {
        assert_int_equal(archive_write_data(a, data, len), (la_ssize_t)len);
    } else {
        uint8_t *zero = xzalloc(1 << 20);
        for (size_t off = 0; off < len; off += 1 << 20) {
            size_t k = len - off < (1 << 20) ? len - off : (1 << 20);
            assert_int_equal(archive_write_data(a, zero, k), (la_ssize_t)k);
        }
        free(zero);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
}

static Perftools__Profiles__Profile *gunzip_decode(const struct wd_buf *b)
{
    assert_true(b->len > 2 && b->data[0] == 0x1f && b->data[1] == 0x8b);
    struct archive *a = archive_read_new();
    archive_read_support_filter_gzip(a);
    archive_read_support_format_raw(a);
    assert_int_equal(archive_read_open_memory(a, b->data, b->len), ARCHIVE_OK);
    struct archive_entry *e = NULL;
    assert_int_equal(archive_read_next_header(a, &e), ARCHIVE_OK);
    struct wd_buf raw = {0};
    uint8_t chunk[8192];
    la_ssize_t r;
    while ((r = archive_read_data(a, chunk, sizeof chunk)) > 0)
        assert_int_equal(wd_buf_append(&raw, chunk, (size_t)r), 0);
    assert_int_equal(r, 0);
    archive_read_free(a);
    Perftools__Profiles__Profile *p = perftools__profiles__profile__unpack(NULL, raw.len, raw.data);
    assert_non_null(p);
    wd_buf_free(&raw);
    return p;
}

static const char *str(const Perftools__Profiles__Profile *p, int64_t i)
{
    assert_true(i >= 0 && (size_t)i < p->n_string_table);
    return p->string_table[i];
}

static const Perftools__Profiles__Location *find_loc(const Perftools__Profiles__Profile *p,
                                                     uint64_t id)
{
    for (size_t i = 0; i < p->n_location; i++)
        if (p->location[i]->id == id)
            return p->location[i];
    fail_msg("no location %" PRIu64, id);
    return NULL;
}

static const char *func_name(const Perftools__Profiles__Profile *p, uint64_t id)
{
    for (size_t i = 0; i < p->n_function; i++)
        if (p->function[i]->id == id)
            return str(p, p->function[i]->name);
    fail_msg("no function %" PRIu64, id);
    return NULL;
}

static const char *map_file(const Perftools__Profiles__Profile *p, uint64_t id)
{
    for (size_t i = 0; i < p->n_mapping; i++)
        if (p->mapping[i]->id == id)
            return str(p, p->mapping[i]->filename);
    fail_msg("no mapping %" PRIu64, id);
    return NULL;
}

/* The one "replica" label of @s. */
static const char *replica_of(const Perftools__Profiles__Profile *p,
                              const Perftools__Profiles__Sample *s)
{
    const char *v = NULL;
    for (size_t i = 0; i < s->n_label; i++) {
        if (strcmp(str(p, s->label[i]->key), "replica") == 0) {
            assert_null(v);
            v = str(p, s->label[i]->str);
        }
    }
    assert_non_null(v);
    return v;
}

/* Structural checks every merge result passes: "" first, no duplicate string, ids 1..n. */
static void check_shape(const Perftools__Profiles__Profile *p)
{
    assert_true(p->n_string_table > 0);
    assert_string_equal(p->string_table[0], "");
    for (size_t i = 0; i < p->n_string_table; i++)
        for (size_t j = i + 1; j < p->n_string_table; j++)
            assert_string_not_equal(p->string_table[i], p->string_table[j]);
    for (size_t i = 0; i < p->n_mapping; i++)
        assert_int_equal(p->mapping[i]->id, i + 1);
    for (size_t i = 0; i < p->n_function; i++)
        assert_int_equal(p->function[i]->id, i + 1);
    for (size_t i = 0; i < p->n_location; i++)
        assert_int_equal(p->location[i]->id, i + 1);
    for (size_t i = 0; i < p->n_sample; i++) {
        assert_int_equal(p->sample[i]->n_value, p->n_sample_type);
        for (size_t j = 0; j < p->sample[i]->n_location_id; j++) {
            const Perftools__Profiles__Location *l = find_loc(p, p->sample[i]->location_id[j]);
            for (size_t k = 0; k < l->n_line; k++)
                (void)func_name(p, l->line[k]->function_id);
        }
    }
}

/* Merge @n parts; asserts the return code; on success decodes the result. */
static Perftools__Profiles__Profile *merge(const struct wd_pprof_part *parts, size_t n,
                                           size_t *skipped, int want, struct wd_buf *out)
{
    struct wd_error *err = NULL;
    int rc = wd_pprof_merge(parts, n, skipped, out, &err);
    if (rc != want)
        fail_msg("merge: got %d (%s), want %d", rc, err ? err->msg : "no error", want);
    if (rc < 0) {
        assert_non_null(err);
        assert_int_equal(err->errnum, -rc);
        assert_null(strchr(err->msg, '\n'));
        wd_err_free(&err);
        return NULL;
    }
    assert_null(err);
    Perftools__Profiles__Profile *p = gunzip_decode(out);
    check_shape(p);
    return p;
}

/* Expect @want from merging one part made of @sp, and the error to name "bad". */
static void expect_fail(const struct spec *sp, int want, const char *needle)
{
    size_t len = 0;
    uint8_t *pb = mk_profile(sp, &len);
    struct wd_pprof_part part = {pb, len, "bad"};
    struct wd_buf out = {0};
    struct wd_error *err = NULL;
    assert_int_equal(wd_pprof_merge(&part, 1, NULL, &out, &err), want);
    assert_non_null(err);
    assert_non_null(strstr(err->msg, "profile bad"));
    if (needle != NULL && strstr(err->msg, needle) == NULL)
        fail_msg("error %s lacks %s", err->msg, needle);
    assert_int_equal(out.len, 0);
    wd_err_free(&err);
    free(pb);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_merge_two_plain(void **state)
{
    (void)state;
    struct spec a = spec_a(), b = spec_b();
    size_t la = 0, lb = 0;
    uint8_t *pa = mk_profile(&a, &la), *pb = mk_profile(&b, &lb);
    struct wd_pprof_part parts[] = {{pa, la, "a"}, {pb, lb, "b"}};
    struct wd_buf out = {0};
    size_t skipped = 99;
    Perftools__Profiles__Profile *p = merge(parts, 2, &skipped, 0, &out);
    assert_int_equal(skipped, 0);

    assert_int_equal(p->n_sample_type, 2);
    assert_string_equal(str(p, p->sample_type[0]->type), "samples");
    assert_string_equal(str(p, p->sample_type[0]->unit), "count");
    assert_string_equal(str(p, p->sample_type[1]->type), "cpu");
    assert_string_equal(str(p, p->sample_type[1]->unit), "nanoseconds");
    assert_non_null(p->period_type);
    assert_string_equal(str(p, p->period_type->type), "cpu");
    assert_int_equal(p->period, 10000000);    /* from the first */
    assert_int_equal(p->time_nanos, 1000);    /* the earliest */
    assert_int_equal(p->duration_nanos, 900); /* the longest */
    assert_int_equal(p->n_mapping, 2);
    assert_int_equal(p->n_function, 4);
    assert_int_equal(p->n_location, 4);
    assert_int_equal(p->n_sample, 4);

    /* strings: "" + a's 7 + "replica" + b's new ones (main.gamma, /bin/b, stale, user) + labels */
    assert_int_equal(p->n_string_table, 1 + 7 + 1 + 1 + 4 + 1);

    static const char *const want_funcs[4][2] = {
        {"main.alpha", "main.beta"}, {"main.beta"}, {"main.gamma", "main.alpha"}, {"main.alpha"}};
    static const int64_t want_values[4] = {3, 1, 2, 4};
    for (size_t i = 0; i < 4; i++) {
        const Perftools__Profiles__Sample *s = p->sample[i];
        assert_string_equal(replica_of(p, s), i < 2 ? "a" : "b");
        assert_int_equal(s->value[0], want_values[i]);
        for (size_t j = 0; j < s->n_location_id; j++) {
            const Perftools__Profiles__Location *l = find_loc(p, s->location_id[j]);
            assert_int_equal(l->n_line, 1);
            assert_string_equal(func_name(p, l->line[0]->function_id), want_funcs[i][j]);
            assert_string_equal(map_file(p, l->mapping_id), i < 2 ? "/bin/a" : "/bin/b");
        }
    }
    /* b's stale replica label was replaced; its other label kept */
    assert_int_equal(p->sample[2]->n_label, 1);
    assert_int_equal(p->sample[3]->n_label, 2);
    assert_string_equal(str(p, p->sample[3]->label[0]->key), "user");
    assert_string_equal(str(p, p->sample[3]->label[0]->str), "stale");

    perftools__profiles__profile__free_unpacked(p, NULL);
    wd_buf_free(&out);
    free(pa);
    free(pb);
}

static void test_merge_gzipped_and_plain(void **state)
{
    (void)state;
    struct spec a = spec_a(), b = spec_b();
    size_t la = 0, lb = 0;
    uint8_t *pa = mk_profile(&a, &la), *pb = mk_profile(&b, &lb);
    struct wd_buf za = {0};
    gz(pa, la, &za);
    struct wd_pprof_part parts[] = {{za.data, za.len, "gz"}, {pb, lb, "plain"}};
    struct wd_buf out = {0};
    Perftools__Profiles__Profile *p = merge(parts, 2, NULL, 0, &out);
    assert_int_equal(p->n_sample, 4);
    assert_string_equal(replica_of(p, p->sample[0]), "gz");
    assert_string_equal(replica_of(p, p->sample[3]), "plain");
    perftools__profiles__profile__free_unpacked(p, NULL);

    /* The result merges again, as one gzipped part; its labels are replaced. */
    struct wd_pprof_part again = {out.data, out.len, "all"};
    struct wd_buf out2 = {.max = 1 << 20};
    p = merge(&again, 1, NULL, 0, &out2);
    assert_int_equal(p->n_sample, 4);
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(replica_of(p, p->sample[i]), "all");
    perftools__profiles__profile__free_unpacked(p, NULL);

    /* out is appended to, and its max applies */
    struct wd_buf small = {.max = 16};
    assert_int_equal(wd_buf_append(&small, "x", 1), 0);
    merge(&again, 1, NULL, -EMSGSIZE, &small);
    assert_int_equal(small.len, 1);

    wd_buf_free(&small);
    wd_buf_free(&out2);
    wd_buf_free(&out);
    wd_buf_free(&za);
    free(pa);
    free(pb);
}

static void test_mismatched_types_skipped(void **state)
{
    (void)state;
    struct spec a = spec_a(), b = spec_b(), c = spec_a(), none = spec_a();
    c.strings[4] = "microseconds"; /* cpu/microseconds */
    none.ntypes = 0;
    none.nsamples = 0;
    size_t la = 0, lb = 0, lc = 0, ln = 0;
    uint8_t *pa = mk_profile(&a, &la), *pb = mk_profile(&b, &lb), *pc = mk_profile(&c, &lc),
            *pn = mk_profile(&none, &ln);
    struct wd_pprof_part parts[] = {{(const uint8_t *)"", 0, "empty"},
                                    {pn, ln, "none"},
                                    {pa, la, "a"},
                                    {pc, lc, "c"},
                                    {pb, lb, "b"}};
    struct wd_buf out = {0};
    size_t skipped = 0;
    Perftools__Profiles__Profile *p = merge(parts, 5, &skipped, 0, &out);
    assert_int_equal(skipped, 3);
    assert_int_equal(p->n_sample, 4);
    for (size_t i = 0; i < p->n_sample; i++)
        assert_string_not_equal(replica_of(p, p->sample[i]), "c");
    for (size_t i = 0; i < p->n_string_table; i++)
        assert_string_not_equal(p->string_table[i], "microseconds");
    perftools__profiles__profile__free_unpacked(p, NULL);
    wd_buf_free(&out);

    /* Order decides: with c first, a and b are the odd ones. */
    struct wd_pprof_part parts2[] = {{pc, lc, "c"}, {pa, la, "a"}, {pb, lb, "b"}};
    p = merge(parts2, 3, &skipped, 0, &out);
    assert_int_equal(skipped, 2);
    assert_int_equal(p->n_sample, 2);
    perftools__profiles__profile__free_unpacked(p, NULL);
    wd_buf_free(&out);

    /* Nothing usable */
    merge(NULL, 0, NULL, -ENODATA, &out);
    merge(parts, 2, &skipped, -ENODATA, &out);
    assert_int_equal(out.len, 0);
    free(pa);
    free(pb);
    free(pc);
    free(pn);
}

static void test_bad_bytes(void **state)
{
    (void)state;
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x12};
    static const uint8_t badgz[] = {0x1f, 0x8b, 0x08, 0x00, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    struct spec a = spec_a();
    size_t la = 0;
    uint8_t *pa = mk_profile(&a, &la);
    struct wd_buf za = {0};
    gz(pa, la, &za);
    const struct wd_pprof_part cases[] = {
        {junk, sizeof junk, "junk"},
        {badgz, sizeof badgz, "badgz"},
        {za.data, za.len / 2, "truncated"}, /* gzip cut in half */
        {pa, la - 1, "short"},              /* protobuf cut by one byte */
    };
    for (size_t i = 0; i < WD_ARRAY_LEN(cases); i++) {
        struct wd_pprof_part parts[] = {{pa, la, "ok"}, cases[i]};
        struct wd_buf out = {0};
        struct wd_error *err = NULL;
        size_t skipped = 7;
        int rc = wd_pprof_merge(parts, 2, &skipped, &out, &err);
        if (rc != -EPROTO)
            fail_msg("%s: got %d (%s)", cases[i].label, rc, err ? err->msg : "");
        assert_non_null(strstr(err->msg, cases[i].label));
        assert_int_equal(skipped, 7); /* untouched on failure */
        assert_int_equal(out.len, 0);
        wd_err_free(&err);
    }
    wd_buf_free(&za);
    free(pa);
}

static void test_out_of_range(void **state)
{
    (void)state;
    struct spec s;

    s = spec_a();
    s.loc_func[1] = 3; /* no function 3 */
    expect_fail(&s, -EPROTO, "no function 3");
    s = spec_a();
    s.loc_map[0] = 2;
    expect_fail(&s, -EPROTO, "no mapping 2");
    s = spec_a();
    s.samples[1].locs[0] = 9;
    expect_fail(&s, -EPROTO, "no location 9");
    s = spec_a();
    s.func_names[0] = 8; /* one past the table */
    expect_fail(&s, -EPROTO, "string index 8");
    s = spec_a();
    s.func_names[1] = -1;
    expect_fail(&s, -EPROTO, "string index -1");
    s = spec_a();
    s.types[1][1] = 100; /* a sample type's unit */
    expect_fail(&s, -EPROTO, "sample type 1");
    s = spec_a();
    s.map_files[0] = 8;
    expect_fail(&s, -EPROTO, "mapping filename");
    s = spec_a();
    s.samples[0].label_key = 5;
    s.samples[0].label_str = 50;
    expect_fail(&s, -EPROTO, "label value");
    s = spec_a();
    s.drop_frames = 8;
    expect_fail(&s, -EPROTO, "drop frames");
    s = spec_a();
    s.samples[0].nvalues = 1;
    expect_fail(&s, -EPROTO, "1 values for 2 types");
    s = spec_a();
    s.func_ids[1] = 1; /* duplicate */
    expect_fail(&s, -EPROTO, "duplicate function id 1");
    s = spec_a();
    s.loc_ids[0] = 0;
    expect_fail(&s, -EPROTO, "location id 0");
    s = spec_a();
    s.strings[0] = "x";
    expect_fail(&s, -EPROTO, "string table");
}

static void test_bounds(void **state)
{
    (void)state;
    /* A gzip bomb: 65 MiB of zeros in ~65 KiB. */
    struct wd_buf bomb = {0};
    gz(NULL, (size_t)WD_PPROF_MAX_DECODED + (1u << 20), &bomb);
    assert_true(bomb.len < 256 * 1024);
    struct wd_pprof_part part = {bomb.data, bomb.len, "bomb"};
    struct wd_buf out = {0};
    struct wd_error *err = NULL;
    assert_int_equal(wd_pprof_merge(&part, 1, NULL, &out, &err), -EMSGSIZE);
    assert_non_null(strstr(err->msg, "profile bomb"));
    wd_err_free(&err);
    wd_buf_free(&bomb);

    /* 2 MiB of empty samples ("12 00"): 1M messages of 72+ bytes each, beyond 16x + 1 MiB. */
    size_t n = 2u << 20;
    uint8_t *empties = xmalloc(n);
    for (size_t i = 0; i < n; i += 2) {
        empties[i] = 0x12;
        empties[i + 1] = 0;
    }
    part = (struct wd_pprof_part){empties, n, "empties"};
    assert_int_equal(wd_pprof_merge(&part, 1, NULL, &out, &err), -EMSGSIZE);
    assert_non_null(strstr(err->msg, "decoded messages"));
    wd_err_free(&err);
    free(empties);
    assert_int_equal(out.len, 0);
}

/* ---- real profiles and go tool pprof ---------------------------------------------------- */

static void read_fixture(const char *path, struct wd_buf *b)
{
    char *data = NULL;
    size_t len = 0;
    if (wd_read_file(path, 1 << 20, &data, &len) < 0)
        fail_msg("cannot read %s (run from the repository root)", path);
    b->data = (uint8_t *)data;
    b->len = b->cap = len;
}

/* The go binary, or NULL. */
static const char *find_go(void)
{
    if (access("/usr/local/go/bin/go", X_OK) == 0)
        return "/usr/local/go/bin/go";
    if (system("command -v go >/dev/null 2>&1") == 0)
        return "go";
    return NULL;
}

/* Run `go tool pprof ARGS FILE` on @b and return its output (caller frees), or NULL to skip. */
static char *go_pprof(const struct wd_buf *b, const char *args)
{
    const char *go = find_go();
    if (go == NULL) {
        print_message("go not found: skipping the go tool pprof check\n");
        return NULL;
    }
    char path[] = "/tmp/wd-test-pprof-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b->data, b->len), (ssize_t)b->len);
    close(fd);
    char *cmd = xasprintf("%s tool pprof %s %s 2>&1", go, args, path);
    FILE *fp = popen(cmd, "r");
    assert_non_null(fp);
    struct wd_buf text = {.max = 1 << 20};
    char chunk[4096];
    size_t r;
    while ((r = fread(chunk, 1, sizeof chunk, fp)) > 0)
        assert_int_equal(wd_buf_append(&text, chunk, r), 0);
    int st = pclose(fp);
    unlink(path);
    free(cmd);
    char *s = wd_buf_steal_str(&text);
    if (st != 0)
        fail_msg("go tool pprof %s: status %d:\n%s", args, st, s);
    return s;
}

static void test_real_profiles(void **state)
{
    (void)state;
    struct wd_buf fa = {0}, fb = {0};
    read_fixture(FIX "a.pb.gz", &fa);
    read_fixture(FIX "b.pb.gz", &fb);
    struct wd_buf one = {0};
    struct wd_pprof_part pa = {fa.data, fa.len, "a"}, pb = {fb.data, fb.len, "b"};
    Perftools__Profiles__Profile *p = merge(&pa, 1, NULL, 0, &one);
    size_t na = p->n_sample, nla = p->n_location;
    perftools__profiles__profile__free_unpacked(p, NULL);
    wd_buf_free(&one);
    p = merge(&pb, 1, NULL, 0, &one);
    size_t nb = p->n_sample, nlb = p->n_location;
    perftools__profiles__profile__free_unpacked(p, NULL);
    wd_buf_free(&one);
    assert_true(na > 0 && nb > 0);

    struct wd_pprof_part parts[] = {pa, pb};
    struct wd_buf out = {0};
    size_t skipped = 9;
    p = merge(parts, 2, &skipped, 0, &out);
    assert_int_equal(skipped, 0);
    assert_int_equal(p->n_sample, na + nb);
    assert_int_equal(p->n_location, nla + nlb);
    assert_string_equal(str(p, p->sample_type[1]->type), "cpu");
    bool fib = false, sieve = false;
    for (size_t i = 0; i < p->n_function; i++) {
        fib |= strcmp(str(p, p->function[i]->name), "main.spinFib") == 0;
        sieve |= strcmp(str(p, p->function[i]->name), "main.spinSieve") == 0;
    }
    assert_true(fib && sieve);
    perftools__profiles__profile__free_unpacked(p, NULL);

    char *top = go_pprof(&out, "-top");
    if (top != NULL) {
        if (strstr(top, "main.spinFib") == NULL || strstr(top, "main.spinSieve") == NULL)
            fail_msg("go tool pprof -top lacks the functions:\n%s", top);
        free(top);
        char *tags = go_pprof(&out, "-tags");
        if (strstr(tags, "replica") == NULL)
            fail_msg("go tool pprof -tags lacks replica:\n%s", tags);
        free(tags);
    }
    wd_buf_free(&out);
    wd_buf_free(&fa);
    wd_buf_free(&fb);
}

static void test_go_reads_synthetic(void **state)
{
    (void)state;
    struct spec a = spec_a(), b = spec_b();
    size_t la = 0, lb = 0;
    uint8_t *pa = mk_profile(&a, &la), *pb = mk_profile(&b, &lb);
    struct wd_pprof_part parts[] = {{pa, la, "a"}, {pb, lb, "b"}};
    struct wd_buf out = {0};
    struct wd_error *err = NULL;
    assert_int_equal(wd_pprof_merge(parts, 2, NULL, &out, &err), 0);
    char *top = go_pprof(&out, "-top -sample_index=cpu");
    if (top != NULL && strstr(top, "main.gamma") == NULL)
        fail_msg("go tool pprof -top lacks main.gamma:\n%s", top);
    free(top);
    wd_buf_free(&out);
    free(pa);
    free(pb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_two_plain),
        cmocka_unit_test(test_merge_gzipped_and_plain),
        cmocka_unit_test(test_mismatched_types_skipped),
        cmocka_unit_test(test_bad_bytes),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_real_profiles),
        cmocka_unit_test(test_go_reads_synthetic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
