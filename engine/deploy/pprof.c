/* engine/deploy/pprof.c - merge the pprof profiles of an app's replicas into one
 * (engine/deploy/pprof.h).
 *
 * Each part is gunzipped (libarchive: raw format + gzip filter) into a buffer capped at
 * WD_PPROF_MAX_DECODED, then unpacked by protobuf-c through an allocator with a byte budget, so
 * neither a gzip bomb nor a small message of many empty submessages can exhaust memory. The merge
 * rewrites ids and string indexes in place in the decoded messages, and the output message
 * borrows them: nothing but the sample structs (which get one more label) is copied. */
#include "engine/deploy/pprof.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>
#include <protobuf-c/protobuf-c.h>

#include "engine/base/error.h"
#include "engine/base/util.h"

/* protobuf-c's INIT macros cast away const. */
#pragma GCC diagnostic ignored "-Wcast-qual"
#include "profile.pb-c.h"

#define MIB (1u << 20)

/* ---- bounded decoding ------------------------------------------------------------------- */

/* protobuf-c allocates through this during unpack; a refused allocation fails the unpack. The
 * count never goes down: unpack frees only when it fails. */
struct budget {
    size_t used, max;
    bool hit;
};

static void *budget_alloc(void *data, size_t size)
{
    struct budget *b = data;
    if (size > b->max - b->used) {
        b->hit = true;
        return NULL;
    }
    b->used += size;
    return xmalloc(size);
}

static void budget_free(void *data, void *p)
{
    (void)data;
    free(p);
}

static void rarchive_freep(struct archive **a)
{
    if (*a)
        archive_read_free(*a);
}
#define autorarchive __attribute__((cleanup(rarchive_freep)))

static void warchive_freep(struct archive **a)
{
    if (*a)
        archive_write_free(*a);
}
#define autowarchive __attribute__((cleanup(warchive_freep)))

#define autobuf __attribute__((cleanup(wd_buf_free)))

static const char *aerr(struct archive *a)
{
    const char *s = archive_error_string(a);
    return s ? s : "unknown error";
}

/* Decompress @data into @out (capped at WD_PPROF_MAX_DECODED). */
static int gunzip(const uint8_t *data, size_t len, const char *label, struct wd_buf *out,
                  struct wd_error **err)
{
    autorarchive struct archive *a = archive_read_new();
    if (a == NULL)
        abort(); /* only fails on allocation */
    archive_read_support_filter_gzip(a);
    archive_read_support_format_raw(a);
    struct archive_entry *e = NULL;
    if (archive_read_open_memory(a, data, len) != ARCHIVE_OK ||
        archive_read_next_header(a, &e) != ARCHIVE_OK)
        return wd_err(err, EPROTO, "profile %s: gunzip: %s", label, aerr(a));
    if (archive_filter_code(a, 0) != ARCHIVE_FILTER_GZIP)
        return wd_err(err, EPROTO, "profile %s: gunzip: not gzip data", label);
    out->max = WD_PPROF_MAX_DECODED;
    uint8_t chunk[16384];
    for (;;) {
        la_ssize_t r = archive_read_data(a, chunk, sizeof chunk);
        if (r == 0)
            return 0;
        if (r < 0)
            return wd_err(err, EPROTO, "profile %s: gunzip: %s", label, aerr(a));
        if (wd_buf_append(out, chunk, (size_t)r) < 0)
            return wd_err(err, EMSGSIZE, "profile %s: over %u MiB decompressed", label,
                          WD_PPROF_MAX_DECODED / MIB);
    }
}

struct part {
    char *label;                     /* a copy: it goes into the string table */
    Perftools__Profiles__Profile *p; /* NULL: unusable or skipped */
    struct budget budget;
    ProtobufCAllocator alloc;
    int64_t *smap;                      /* the part's string index -> the output's */
    Perftools__Profiles__Label replica; /* shared by all its samples */
};

static void part_drop(struct part *pt)
{
    if (pt->p != NULL)
        perftools__profiles__profile__free_unpacked(pt->p, &pt->alloc);
    pt->p = NULL;
}

/* Gunzip if gzipped and unpack @in into pt->p, charging *memory_left. */
static int decode(const struct wd_pprof_part *in, struct part *pt, size_t *memory_left,
                  struct wd_error **err)
{
    const uint8_t *pb = in->data;
    size_t len = in->len;
    autobuf struct wd_buf raw = {0};
    if (len >= 2 && pb[0] == 0x1f && pb[1] == 0x8b) {
        int rc = gunzip(pb, len, pt->label, &raw, err);
        if (rc < 0)
            return rc;
        pb = raw.data;
        len = raw.len;
    } else if (len > WD_PPROF_MAX_DECODED) {
        return wd_err(err, EMSGSIZE, "profile %s: over %u MiB", pt->label,
                      WD_PPROF_MAX_DECODED / MIB);
    }
    size_t max = 0;
    if (__builtin_mul_overflow(len, (size_t)WD_PPROF_UNPACK_FACTOR, &max) ||
        __builtin_add_overflow(max, (size_t)MIB, &max) || max > *memory_left)
        max = *memory_left;
    pt->budget = (struct budget){.max = max};
    pt->alloc = (ProtobufCAllocator){
        .alloc = budget_alloc, .free = budget_free, .allocator_data = &pt->budget};
    pt->p = perftools__profiles__profile__unpack(&pt->alloc, len, len ? pb : NULL);
    *memory_left -= pt->budget.used;
    if (pt->p == NULL && pt->budget.hit)
        return wd_err(err, EMSGSIZE, "profile %s: decoded messages over %zu MiB", pt->label,
                      max / MIB);
    if (pt->p == NULL)
        return wd_err(err, EPROTO, "profile %s: not a pprof profile", pt->label);
    return 0;
}

/* ---- strings ---------------------------------------------------------------------------- */

/* The output string table, deduplicated; the strings are borrowed from the decoded parts. */
struct strtab {
    char **s;
    size_t n, cap;
    size_t *slot; /* open addressing: index + 1, 0 = empty; nslot is a power of two */
    size_t nslot;
};

static size_t str_hash(const char *s)
{
    uint64_t h = 14695981039346656037u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211u;
    return (size_t)h;
}

static void strtab_grow(struct strtab *t)
{
    size_t nslot = t->nslot ? t->nslot * 2 : 1024;
    size_t *slot = xcalloc(nslot, sizeof *slot);
    for (size_t i = 0; i < t->n; i++) {
        size_t h = str_hash(t->s[i]) & (nslot - 1);
        while (slot[h])
            h = (h + 1) & (nslot - 1);
        slot[h] = i + 1;
    }
    free(t->slot);
    t->slot = slot;
    t->nslot = nslot;
}

static int64_t intern(struct strtab *t, char *s)
{
    if ((t->n + 1) * 2 > t->nslot)
        strtab_grow(t);
    size_t h = str_hash(s) & (t->nslot - 1);
    for (; t->slot[h]; h = (h + 1) & (t->nslot - 1))
        if (strcmp(t->s[t->slot[h] - 1], s) == 0)
            return (int64_t)(t->slot[h] - 1);
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 256;
        t->s = xrealloc(t->s, t->cap * sizeof *t->s);
    }
    t->s[t->n] = s;
    t->slot[h] = t->n + 1;
    return (int64_t)t->n++;
}

static bool str_ok(const struct part *pt, int64_t idx)
{
    return idx >= 0 && (uint64_t)idx < pt->p->n_string_table;
}

static const char *str_at(const struct part *pt, int64_t idx)
{
    return pt->p->string_table[idx];
}

/* Rewrite *idx, a string index of @pt, to the output's. */
static int map_str(const struct part *pt, int64_t *idx, const char *what, struct wd_error **err)
{
    if (!str_ok(pt, *idx))
        return wd_err(err, EPROTO, "profile %s: %s: string index %" PRId64 " out of range",
                      pt->label, what, *idx);
    *idx = pt->smap[*idx];
    return 0;
}

/* ---- ids -------------------------------------------------------------------------------- */

struct idref {
    uint64_t id;
    size_t pos;
};

/* A part's ids of one kind -> their positions. Ids are usually 1..n in order (Go writes them
 * so); anything else is sorted and binary-searched. */
struct idmap {
    struct idref *v;
    size_t n;
    bool dense;
};

static int cmp_idref(const void *a, const void *b)
{
    const struct idref *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int idmap_finish(struct idmap *m, const char *what, const struct part *pt,
                        struct wd_error **err)
{
    m->dense = true;
    for (size_t i = 0; i < m->n && m->dense; i++)
        m->dense = m->v[i].id == i + 1;
    if (m->dense)
        return 0;
    qsort(m->v, m->n, sizeof *m->v, cmp_idref);
    for (size_t i = 0; i < m->n; i++) {
        if (m->v[i].id == 0)
            return wd_err(err, EPROTO, "profile %s: %s id 0", pt->label, what);
        if (i > 0 && m->v[i].id == m->v[i - 1].id)
            return wd_err(err, EPROTO, "profile %s: duplicate %s id %" PRIu64, pt->label, what,
                          m->v[i].id);
    }
    return 0;
}

static bool idmap_find(const struct idmap *m, uint64_t id, size_t *pos)
{
    if (m->dense) {
        if (id == 0 || id > m->n)
            return false;
        *pos = id - 1;
        return true;
    }
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->v[mid].id == id) {
            *pos = m->v[mid].pos;
            return true;
        }
        if (m->v[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

struct idmaps {
    struct idmap mapping, location, function;
};

static void idmaps_free(struct idmaps *x)
{
    free(x->mapping.v);
    free(x->location.v);
    free(x->function.v);
}
#define autoidmaps __attribute__((cleanup(idmaps_free)))

/* ---- the merge -------------------------------------------------------------------------- */

struct merge {
    struct part *parts;
    size_t n;
    struct strtab strs;
    char empty[1];
    char replica_key[sizeof WD_PPROF_REPLICA_KEY];
    int64_t replica_idx;
    size_t nmapping, nlocation, nfunction, nsample, nlabel, ncomment;
};

static void merge_free(struct merge *m)
{
    for (size_t i = 0; i < m->n; i++) {
        part_drop(&m->parts[i]);
        free(m->parts[i].label);
        free(m->parts[i].smap);
    }
    free(m->parts);
    free(m->strs.s);
    free(m->strs.slot);
}
#define automerge __attribute__((cleanup(merge_free)))

/* A usable part starts its string table with "" and names its sample types in range. */
static int check_types(const struct part *pt, struct wd_error **err)
{
    const Perftools__Profiles__Profile *p = pt->p;
    if (p->n_string_table == 0 || p->string_table[0][0] != '\0')
        return wd_err(err, EPROTO, "profile %s: string table does not start with \"\"", pt->label);
    for (size_t i = 0; i < p->n_sample_type; i++) {
        if (p->sample_type[i] == NULL || !str_ok(pt, p->sample_type[i]->type) ||
            !str_ok(pt, p->sample_type[i]->unit))
            return wd_err(err, EPROTO, "profile %s: sample type %zu: string index out of range",
                          pt->label, i);
    }
    return 0;
}

static bool same_types(const struct part *a, const struct part *b)
{
    if (a->p->n_sample_type != b->p->n_sample_type)
        return false;
    for (size_t i = 0; i < a->p->n_sample_type; i++) {
        const Perftools__Profiles__ValueType *x = a->p->sample_type[i], *y = b->p->sample_type[i];
        if (strcmp(str_at(a, x->type), str_at(b, y->type)) != 0 ||
            strcmp(str_at(a, x->unit), str_at(b, y->unit)) != 0)
            return false;
    }
    return true;
}

/* Rewrite the ids of @pt's mappings, functions and locations to follow those of the parts
 * before it, and every string index to the output table's. */
static int remap_ids(struct merge *m, struct part *pt, struct wd_error **err)
{
    Perftools__Profiles__Profile *p = pt->p;
    autoidmaps struct idmaps ix = {0};
    ix.mapping =
        (struct idmap){.v = xcalloc(p->n_mapping, sizeof(struct idref)), .n = p->n_mapping};
    for (size_t i = 0; i < p->n_mapping; i++)
        ix.mapping.v[i] = (struct idref){p->mapping[i]->id, i};
    ix.function =
        (struct idmap){.v = xcalloc(p->n_function, sizeof(struct idref)), .n = p->n_function};
    for (size_t i = 0; i < p->n_function; i++)
        ix.function.v[i] = (struct idref){p->function[i]->id, i};
    ix.location =
        (struct idmap){.v = xcalloc(p->n_location, sizeof(struct idref)), .n = p->n_location};
    for (size_t i = 0; i < p->n_location; i++)
        ix.location.v[i] = (struct idref){p->location[i]->id, i};
    int rc = idmap_finish(&ix.mapping, "mapping", pt, err);
    if (rc == 0)
        rc = idmap_finish(&ix.function, "function", pt, err);
    if (rc == 0)
        rc = idmap_finish(&ix.location, "location", pt, err);
    if (rc < 0)
        return rc;

    for (size_t i = 0; i < p->n_mapping; i++) {
        Perftools__Profiles__Mapping *mp = p->mapping[i];
        if (map_str(pt, &mp->filename, "mapping filename", err) < 0 ||
            map_str(pt, &mp->build_id, "mapping build id", err) < 0)
            return -EPROTO;
        mp->id = m->nmapping + i + 1;
    }
    for (size_t i = 0; i < p->n_function; i++) {
        Perftools__Profiles__Function *f = p->function[i];
        if (map_str(pt, &f->name, "function name", err) < 0 ||
            map_str(pt, &f->system_name, "function system name", err) < 0 ||
            map_str(pt, &f->filename, "function filename", err) < 0)
            return -EPROTO;
        f->id = m->nfunction + i + 1;
    }
    for (size_t i = 0; i < p->n_location; i++) {
        Perftools__Profiles__Location *l = p->location[i];
        size_t pos = 0;
        if (l->mapping_id != 0) { /* 0: no mapping */
            if (!idmap_find(&ix.mapping, l->mapping_id, &pos))
                return wd_err(err, EPROTO, "profile %s: location %" PRIu64 ": no mapping %" PRIu64,
                              pt->label, l->id, l->mapping_id);
            l->mapping_id = m->nmapping + pos + 1;
        }
        for (size_t j = 0; j < l->n_line; j++) {
            Perftools__Profiles__Line *ln = l->line[j];
            if (ln->function_id == 0) /* no function */
                continue;
            if (!idmap_find(&ix.function, ln->function_id, &pos))
                return wd_err(err, EPROTO, "profile %s: location %" PRIu64 ": no function %" PRIu64,
                              pt->label, l->id, ln->function_id);
            ln->function_id = m->nfunction + pos + 1;
        }
        l->id = m->nlocation + i + 1;
    }
    for (size_t i = 0; i < p->n_sample; i++) {
        Perftools__Profiles__Sample *s = p->sample[i];
        if (s->n_value != p->n_sample_type)
            return wd_err(err, EPROTO, "profile %s: sample %zu: %zu values for %zu types",
                          pt->label, i, s->n_value, p->n_sample_type);
        for (size_t j = 0; j < s->n_location_id; j++) {
            size_t pos = 0;
            if (!idmap_find(&ix.location, s->location_id[j], &pos))
                return wd_err(err, EPROTO, "profile %s: sample %zu: no location %" PRIu64,
                              pt->label, i, s->location_id[j]);
            s->location_id[j] = m->nlocation + pos + 1;
        }
        for (size_t j = 0; j < s->n_label; j++) {
            Perftools__Profiles__Label *lb = s->label[j];
            if (map_str(pt, &lb->key, "label key", err) < 0 ||
                map_str(pt, &lb->str, "label value", err) < 0 ||
                map_str(pt, &lb->num_unit, "label unit", err) < 0)
                return -EPROTO;
        }
        m->nlabel += s->n_label + 1;
    }
    for (size_t i = 0; i < p->n_comment; i++)
        if (map_str(pt, &p->comment[i], "comment", err) < 0)
            return -EPROTO;
    m->nmapping += p->n_mapping;
    m->nfunction += p->n_function;
    m->nlocation += p->n_location;
    m->nsample += p->n_sample;
    m->ncomment += p->n_comment;
    return 0;
}

static int remap(struct merge *m, struct part *pt, bool first, struct wd_error **err)
{
    Perftools__Profiles__Profile *p = pt->p;
    pt->smap = xcalloc(p->n_string_table, sizeof *pt->smap);
    for (size_t i = 0; i < p->n_string_table; i++)
        pt->smap[i] = intern(&m->strs, p->string_table[i]);
    pt->replica = (Perftools__Profiles__Label)PERFTOOLS__PROFILES__LABEL__INIT;
    pt->replica.key = m->replica_idx;
    pt->replica.str = intern(&m->strs, pt->label);
    if (first) {
        /* The output takes these from the first part; the others' are not read. */
        for (size_t i = 0; i < p->n_sample_type; i++) {
            p->sample_type[i]->type = pt->smap[p->sample_type[i]->type]; /* checked */
            p->sample_type[i]->unit = pt->smap[p->sample_type[i]->unit];
        }
        if (map_str(pt, &p->drop_frames, "drop frames", err) < 0 ||
            map_str(pt, &p->keep_frames, "keep frames", err) < 0 ||
            map_str(pt, &p->default_sample_type, "default sample type", err) < 0)
            return -EPROTO;
        if (p->period_type != NULL && (map_str(pt, &p->period_type->type, "period type", err) < 0 ||
                                       map_str(pt, &p->period_type->unit, "period unit", err) < 0))
            return -EPROTO;
    }
    return remap_ids(m, pt, err);
}

/* ---- output ----------------------------------------------------------------------------- */

struct sink {
    struct wd_buf *b;
    bool full;
};

static la_ssize_t sink_write(struct archive *a, void *arg, const void *data, size_t n)
{
    (void)a;
    struct sink *s = arg;
    if (wd_buf_append(s->b, data, n) < 0) {
        s->full = true;
        return -1;
    }
    return (la_ssize_t)n;
}

/* Gzip @data (one raw entry) and append it to @out. */
static int gzip_to(const uint8_t *data, size_t len, struct wd_buf *out, struct wd_error **err)
{
    autobuf struct wd_buf z = {.max = out->max};
    struct sink sink = {.b = &z};
    autowarchive struct archive *a = archive_write_new();
    if (a == NULL)
        abort(); /* only fails on allocation */
    if (archive_write_set_format_raw(a) != ARCHIVE_OK ||
        archive_write_add_filter_gzip(a) != ARCHIVE_OK)
        return wd_err(err, EIO, "gzip profile: %s", aerr(a));
    (void)archive_write_set_options(a, "gzip:!timestamp"); /* reproducible output */
    archive_write_set_bytes_in_last_block(a, 1);           /* no padding after the stream */
    if (archive_write_open(a, &sink, NULL, sink_write, NULL) != ARCHIVE_OK)
        return wd_err(err, EIO, "gzip profile: %s", aerr(a));
    struct archive_entry *e = archive_entry_new();
    if (e == NULL)
        abort();
    archive_entry_set_pathname(e, "profile.pb");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, (la_int64_t)len);
    int rc = archive_write_header(a, e);
    archive_entry_free(e);
    if (rc != ARCHIVE_OK)
        return wd_err(err, EIO, "gzip profile: %s", aerr(a));
    for (size_t off = 0; off < len && !sink.full;) {
        la_ssize_t w = archive_write_data(a, data + off, len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    /* style.md §3: a failed write may surface only at close */
    if (archive_write_close(a) != ARCHIVE_OK || sink.full) {
        if (sink.full)
            return wd_err(err, EMSGSIZE, "gzip profile: over %zu bytes", out->max);
        return wd_err(err, EIO, "gzip profile: %s", aerr(a));
    }
    if (wd_buf_append(out, z.data, z.len) < 0)
        return wd_err(err, EMSGSIZE, "gzip profile: over %zu bytes", out->max);
    return 0;
}

/* Copy @n pointers from @src to @dst + @at; returns the new count. */
static size_t append_ptrs(void **dst, size_t at, void **src, size_t n)
{
    if (n > 0) /* memcpy's pointers must not be NULL, even for 0 bytes */
        memcpy(dst + at, src, n * sizeof *dst);
    return at + n;
}

int wd_pprof_merge(const struct wd_pprof_part *parts, size_t n, size_t *skipped, struct wd_buf *out,
                   struct wd_error **err)
{
    automerge struct merge m = {.n = n, .replica_key = WD_PPROF_REPLICA_KEY};
    m.parts = xcalloc(n, sizeof *m.parts);
    size_t nskipped = 0, memory_left = WD_PPROF_MAX_MEMORY;
    struct part *first = NULL;
    for (size_t i = 0; i < n; i++) {
        struct part *pt = &m.parts[i];
        pt->label = xstrdup(parts[i].label);
        if (parts[i].len == 0) {
            nskipped++;
            continue;
        }
        int rc = decode(&parts[i], pt, &memory_left, err);
        if (rc < 0)
            return rc;
        if (pt->p->n_sample_type == 0) {
            part_drop(pt);
            nskipped++;
            continue;
        }
        rc = check_types(pt, err);
        if (rc < 0)
            return rc;
        if (first != NULL && !same_types(first, pt)) {
            part_drop(pt);
            nskipped++;
            continue;
        }
        if (first == NULL)
            first = pt;
    }
    if (first == NULL)
        return wd_err(err, ENODATA, "merge profiles: no usable profile among %zu", n);

    (void)intern(&m.strs, m.empty);
    m.replica_idx = intern(&m.strs, m.replica_key);
    Perftools__Profiles__Profile o = PERFTOOLS__PROFILES__PROFILE__INIT;
    o.n_sample_type = first->p->n_sample_type;
    o.sample_type = first->p->sample_type;
    for (size_t i = 0; i < n; i++) {
        struct part *pt = &m.parts[i];
        if (pt->p == NULL)
            continue;
        int rc = remap(&m, pt, pt == first, err);
        if (rc < 0)
            return rc;
        if (pt->p->time_nanos != 0 && (o.time_nanos == 0 || pt->p->time_nanos < o.time_nanos))
            o.time_nanos = pt->p->time_nanos;
        if (pt->p->duration_nanos > o.duration_nanos)
            o.duration_nanos = pt->p->duration_nanos;
    }
    o.period_type = first->p->period_type;
    o.period = first->p->period;
    o.drop_frames = first->p->drop_frames;
    o.keep_frames = first->p->keep_frames;
    o.default_sample_type = first->p->default_sample_type;

    autofree Perftools__Profiles__Mapping **mappings = xcalloc(m.nmapping, sizeof *mappings);
    autofree Perftools__Profiles__Location **locations = xcalloc(m.nlocation, sizeof *locations);
    autofree Perftools__Profiles__Function **functions = xcalloc(m.nfunction, sizeof *functions);
    autofree Perftools__Profiles__Sample **samples = xcalloc(m.nsample, sizeof *samples);
    autofree Perftools__Profiles__Sample *sample_v = xcalloc(m.nsample, sizeof *sample_v);
    autofree Perftools__Profiles__Label **labels = xcalloc(m.nlabel, sizeof *labels);
    autofree int64_t *comments = xcalloc(m.ncomment, sizeof *comments);
    size_t lpos = 0;
    for (size_t i = 0; i < n; i++) {
        struct part *pt = &m.parts[i];
        const Perftools__Profiles__Profile *p = pt->p;
        if (p == NULL)
            continue;
        o.n_mapping =
            append_ptrs((void **)mappings, o.n_mapping, (void **)p->mapping, p->n_mapping);
        o.n_location =
            append_ptrs((void **)locations, o.n_location, (void **)p->location, p->n_location);
        o.n_function =
            append_ptrs((void **)functions, o.n_function, (void **)p->function, p->n_function);
        if (p->n_comment > 0) /* memcpy's pointers must not be NULL, even for 0 bytes */
            memcpy(comments + o.n_comment, p->comment, p->n_comment * sizeof *comments);
        o.n_comment += p->n_comment;
        for (size_t j = 0; j < p->n_sample; j++) {
            const Perftools__Profiles__Sample *src = p->sample[j];
            Perftools__Profiles__Sample *s = &sample_v[o.n_sample];
            *s = (Perftools__Profiles__Sample)PERFTOOLS__PROFILES__SAMPLE__INIT;
            s->n_location_id = src->n_location_id;
            s->location_id = src->location_id;
            s->n_value = src->n_value;
            s->value = src->value;
            s->label = labels + lpos;
            for (size_t k = 0; k < src->n_label; k++)
                if (src->label[k]->key != m.replica_idx) /* ours replaces it */
                    s->label[s->n_label++] = src->label[k];
            s->label[s->n_label++] = &pt->replica;
            lpos += s->n_label;
            samples[o.n_sample++] = s;
        }
    }
    o.mapping = mappings;
    o.location = locations;
    o.function = functions;
    o.sample = samples;
    o.comment = comments;
    o.n_string_table = m.strs.n;
    o.string_table = m.strs.s;

    size_t size = perftools__profiles__profile__get_packed_size(&o);
    autofree uint8_t *pb = xmalloc(size);
    perftools__profiles__profile__pack(&o, pb);
    int rc = gzip_to(pb, size, out, err);
    if (rc < 0)
        return wd_err_wrap(err, "merge profiles");
    if (skipped != NULL)
        *skipped = nskipped;
    return 0;
}
