/* engine/deploy/metrics.c - see metrics.h. Each replica key holds its live stream (defs sorted by
 * id, so a value finds its def by binary search) and the retired totals of its earlier streams.
 * Output collects every series into one array, sorts it and walks it once. */
#include "engine/deploy/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <protobuf-c/protobuf-c.h>

#include "engine/base/util.h"

/* protobuf-c's messages hold `char *`; we only read them. */
#pragma GCC diagnostic ignored "-Wcast-qual"
#include "runtime.pb-c.h"

enum { T_COUNTER = 1, T_GAUGE = 2, T_HIST = 3 };

struct label {
    char *key, *val;
};

/* A live def with its latest value, or a retired total of earlier streams. */
struct series {
    uint64_t id;
    char *name, *help;
    int type;
    size_t nlabels;
    struct label *labels; /* sorted by key, keys unique */
    size_t nbounds;
    double *bounds;
    double value;     /* counter/gauge value; histogram sum */
    uint64_t *counts; /* nbounds + 1 for histograms, else NULL */
    size_t bytes;
};

struct replica {
    char *key, *group;
    bool gone;
    uint64_t gone_seq;
    struct series **defs; /* sorted by id */
    size_t ndefs;
    struct series **retired;
    size_t nretired;
    size_t bytes;
};

struct wd_metrics {
    struct replica **reps; /* sorted by key */
    size_t nreps;
    size_t bytes;
    uint64_t seq;
};

/* ---- helpers --------------------------------------------------------------------------- */

static void series_free(struct series *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nlabels; i++) {
        free(s->labels[i].key);
        free(s->labels[i].val);
    }
    free(s->labels);
    free(s->name);
    free(s->help);
    free(s->bounds);
    free(s->counts);
    free(s);
}

static void replica_free(struct replica *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->ndefs; i++)
        series_free(r->defs[i]);
    for (size_t i = 0; i < r->nretired; i++)
        series_free(r->retired[i]);
    free(r->defs);
    free(r->retired);
    free(r->key);
    free(r->group);
    free(r);
}

static bool utf8_ok(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        size_t k;
        unsigned min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, min = 0x10000, c &= 0x07;
        } else {
            return false;
        }
        if (k > n - i - 1)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xc0) != 0x80)
                return false;
            c = c << 6 | (p[i + j] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

/* A protobuf string within the caps: at most WD_METRICS_MAX_STRING bytes of UTF-8. */
static bool str_ok(const char *s, bool nonempty)
{
    if (s == NULL)
        return !nonempty;
    size_t n = strnlen(s, WD_METRICS_MAX_STRING + 1);
    return n <= WD_METRICS_MAX_STRING && (!nonempty || n > 0) && utf8_ok(s, n);
}

static const char *nz(const char *s) { return s != NULL ? s : ""; }

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    uint64_t c;
    return __builtin_add_overflow(a, b, &c) ? UINT64_MAX : c;
}

static int cmp_label(const void *a, const void *b)
{
    return strcmp(((const struct label *)a)->key, ((const struct label *)b)->key);
}

static int cmp_series_id(const void *a, const void *b)
{
    uint64_t x = (*(struct series *const *)a)->id, y = (*(struct series *const *)b)->id;
    return x < y ? -1 : x > y;
}

static struct series *find_id(struct series **v, size_t n, uint64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid]->id == id)
            return v[mid];
        if (v[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Index of @key in m->reps, or where it would go (*found false). */
static size_t find_rep(const struct wd_metrics *m, const char *key, bool *found)
{
    size_t lo = 0, hi = m->nreps;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->reps[mid]->key, key);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static int cmp_labels(const struct series *a, const struct series *b)
{
    for (size_t i = 0; i < a->nlabels && i < b->nlabels; i++) {
        int c = strcmp(a->labels[i].key, b->labels[i].key);
        if (c == 0)
            c = strcmp(a->labels[i].val, b->labels[i].val);
        if (c != 0)
            return c;
    }
    return a->nlabels < b->nlabels ? -1 : a->nlabels > b->nlabels;
}

static bool same_bounds(const struct series *a, const struct series *b)
{
    if (a->nbounds != b->nbounds)
        return false;
    for (size_t i = 0; i < a->nbounds; i++)
        if (a->bounds[i] != b->bounds[i])
            return false;
    return true;
}

/* Same metric: a retired total and a later stream's series add up. */
static bool same_identity(const struct series *a, const struct series *b)
{
    return a->type == b->type && strcmp(a->name, b->name) == 0 && cmp_labels(a, b) == 0 &&
           same_bounds(a, b);
}

/* ---- validation ------------------------------------------------------------------------ */

/* A checked copy of one def, not yet in the store. NULL if the def is malformed. */
static struct series *def_build(const Runtime__MetricDef *d)
{
    int type = (int)d->typ;
    if (type != T_COUNTER && type != T_GAUGE && type != T_HIST)
        return NULL;
    if (!str_ok(d->name, true) || !str_ok(d->help, false))
        return NULL;
    if (d->n_labels > WD_METRICS_MAX_LABELS)
        return NULL;
    if (type == T_HIST ? d->n_bounds + 1 > WD_METRICS_MAX_BUCKETS : d->n_bounds != 0)
        return NULL;
    for (size_t i = 0; i < d->n_bounds; i++)
        if (!isfinite(d->bounds[i]) || (i > 0 && !(d->bounds[i - 1] < d->bounds[i])))
            return NULL;
    for (size_t i = 0; i < d->n_labels; i++) {
        const Runtime__MetricDef__LabelsEntry *e = d->labels[i];
        if (e == NULL || !str_ok(e->key, true) || !str_ok(e->value, false))
            return NULL;
    }

    struct series *s = xzalloc(sizeof *s);
    s->id = d->id;
    s->type = type;
    s->name = xstrdup(d->name);
    s->help = xstrdup(nz(d->help));
    s->bytes = sizeof *s + strlen(s->name) + strlen(s->help) + 2;
    if (d->n_labels) {
        s->labels = xcalloc(d->n_labels, sizeof *s->labels);
        for (size_t i = 0; i < d->n_labels; i++) {
            s->labels[i].key = xstrdup(d->labels[i]->key);
            s->labels[i].val = xstrdup(nz(d->labels[i]->value));
            s->nlabels++;
            s->bytes +=
                sizeof *s->labels + strlen(s->labels[i].key) + strlen(s->labels[i].val) + 2;
        }
        qsort(s->labels, s->nlabels, sizeof *s->labels, cmp_label);
        for (size_t i = 1; i < s->nlabels; i++) {
            if (strcmp(s->labels[i - 1].key, s->labels[i].key) == 0) {
                series_free(s);
                return NULL;
            }
        }
    }
    if (type == T_HIST) {
        s->nbounds = d->n_bounds;
        if (d->n_bounds) {
            s->bounds = xcalloc(d->n_bounds, sizeof *s->bounds);
            memcpy(s->bounds, d->bounds, d->n_bounds * sizeof *s->bounds);
        }
        s->counts = xcalloc(d->n_bounds + 1, sizeof *s->counts);
        s->bytes += (2 * d->n_bounds + 1) * sizeof(double);
    }
    return s;
}

static bool value_fits(const struct series *s, const Runtime__MetricValue *v)
{
    switch (s->type) {
    case T_COUNTER:
        return v->n_counts == 0 && isfinite(v->value) && v->value >= 0;
    case T_GAUGE:
        return v->n_counts == 0;
    default:
        return v->n_counts == s->nbounds + 1 && !isnan(v->value);
    }
}

/* ---- applying ------------------------------------------------------------------------ */

static void add_values(struct series *dst, const struct series *src)
{
    dst->value += src->value;
    if (dst->counts != NULL)
        for (size_t i = 0; i <= dst->nbounds; i++)
            dst->counts[i] = sat_add(dst->counts[i], src->counts[i]);
}

/* Fold the live stream of a key that came back into its retired totals: counters and histograms
 * only (a dead weavelet's gauge means nothing). Never grows r->bytes: a series is moved or
 * merged; past WD_METRICS_MAX_DEFS it merges into a total of the same name, type and bounds
 * (labels then come from the older total), or is dropped. */
static void retire(struct wd_metrics *m, struct replica *r)
{
    for (size_t i = 0; i < r->ndefs; i++) {
        struct series *s = r->defs[i];
        struct series *into = NULL, *near = NULL;
        if (s->type != T_GAUGE) {
            for (size_t j = 0; j < r->nretired && into == NULL; j++) {
                struct series *t = r->retired[j];
                if (same_identity(t, s))
                    into = t;
                else if (near == NULL && t->type == s->type && strcmp(t->name, s->name) == 0 &&
                         same_bounds(t, s))
                    near = t;
            }
            if (into == NULL && r->nretired < WD_METRICS_MAX_DEFS) {
                r->retired[r->nretired++] = s;
                continue;
            }
            if (into == NULL)
                into = near;
            if (into != NULL)
                add_values(into, s);
        }
        r->bytes -= s->bytes;
        m->bytes -= s->bytes;
        series_free(s);
    }
    r->ndefs = 0;
}

static size_t replica_overhead(const char *key, const char *group)
{
    return sizeof(struct replica) + strlen(key) + strlen(group) + 2 +
           2 * WD_METRICS_MAX_DEFS * sizeof(struct series *);
}

static void drop_oldest_gone(struct wd_metrics *m)
{
    size_t ngone = 0, oldest = 0;
    for (size_t i = 0; i < m->nreps; i++) {
        if (!m->reps[i]->gone)
            continue;
        if (ngone == 0 || m->reps[i]->gone_seq < m->reps[oldest]->gone_seq)
            oldest = i;
        ngone++;
    }
    if (ngone <= WD_METRICS_MAX_GONE)
        return;
    m->bytes -= m->reps[oldest]->bytes;
    replica_free(m->reps[oldest]);
    memmove(&m->reps[oldest], &m->reps[oldest + 1], (m->nreps - oldest - 1) * sizeof *m->reps);
    m->nreps--;
}

struct wd_metrics *wd_metrics_new(void)
{
    struct wd_metrics *m = xzalloc(sizeof *m);
    m->reps = xcalloc(WD_METRICS_MAX_REPLICAS + WD_METRICS_MAX_GONE + 1, sizeof *m->reps);
    m->bytes = sizeof *m + (WD_METRICS_MAX_REPLICAS + WD_METRICS_MAX_GONE + 1) * sizeof *m->reps;
    return m;
}

void wd_metrics_free(struct wd_metrics *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nreps; i++)
        replica_free(m->reps[i]);
    free(m->reps);
    free(m);
}

static void reply_freep(Runtime__GetMetricsReply **p)
{
    if (*p != NULL)
        runtime__get_metrics_reply__free_unpacked(*p, NULL);
}

struct newdefs {
    struct series **v;
    size_t n;
};

static void newdefs_free(struct newdefs *nd)
{
    for (size_t i = 0; i < nd->n; i++)
        series_free(nd->v[i]);
    free(nd->v);
}

int wd_metrics_update(struct wd_metrics *m, const char *replica, const char *group,
                      const uint8_t *pb, size_t len)
{
    static const uint8_t empty[1];
    if (replica == NULL || group == NULL || !str_ok(replica, true) || !str_ok(group, true) ||
        (pb == NULL && len > 0))
        return -EINVAL;
    __attribute__((cleanup(reply_freep))) Runtime__GetMetricsReply *rep =
        runtime__get_metrics_reply__unpack(NULL, len, pb != NULL ? pb : empty);
    if (rep == NULL)
        return -EPROTO;
    const Runtime__MetricUpdate *u = rep->update;
    size_t ndefs_in = u ? u->n_defs : 0, nvals = u ? u->n_values : 0;

    bool found;
    size_t at = find_rep(m, replica, &found);
    struct replica *r = found ? m->reps[at] : NULL;
    bool fresh = r == NULL || r->gone; /* the ids of a gone stream mean nothing now */
    if (fresh) {
        size_t live = 0;
        for (size_t i = 0; i < m->nreps; i++)
            live += !m->reps[i]->gone;
        if (live >= WD_METRICS_MAX_REPLICAS)
            return -EPROTO;
    }
    size_t have = fresh ? 0 : r->ndefs;
    if (ndefs_in > WD_METRICS_MAX_DEFS - have)
        return -EPROTO;

    __attribute__((cleanup(newdefs_free))) struct newdefs nd = {0};
    size_t add_bytes = r == NULL ? replica_overhead(replica, group) : 0;
    if (r != NULL && strcmp(r->group, group) != 0)
        add_bytes += strlen(group);
    if (ndefs_in) {
        nd.v = xcalloc(ndefs_in, sizeof *nd.v);
        for (size_t i = 0; i < ndefs_in; i++) {
            if (u->defs[i] == NULL)
                return -EPROTO;
            struct series *s = def_build(u->defs[i]);
            if (s == NULL)
                return -EPROTO;
            nd.v[nd.n++] = s;
            add_bytes += s->bytes;
            if (!fresh && find_id(r->defs, r->ndefs, s->id) != NULL)
                return -EPROTO; /* a def is sent once */
        }
        qsort(nd.v, nd.n, sizeof *nd.v, cmp_series_id);
        for (size_t i = 1; i < nd.n; i++)
            if (nd.v[i - 1]->id == nd.v[i]->id)
                return -EPROTO;
    }
    /* Conservative: retiring a stream never adds bytes, so r->bytes bounds what stays. The
     * caps are invariants: r->bytes and m->bytes never exceed them. */
    size_t cur = r ? r->bytes : 0;
    if (add_bytes > WD_METRICS_MAX_REPLICA_BYTES - cur ||
        add_bytes > WD_METRICS_MAX_BYTES - m->bytes)
        return -EPROTO;
    for (size_t i = 0; i < nvals; i++) {
        const Runtime__MetricValue *v = u->values[i];
        if (v == NULL)
            return -EPROTO;
        const struct series *s = find_id(nd.v, nd.n, v->id);
        if (s == NULL && !fresh)
            s = find_id(r->defs, r->ndefs, v->id);
        if (s == NULL || !value_fits(s, v))
            return -EPROTO;
    }

    /* Everything checked: apply. */
    if (r == NULL) {
        r = xzalloc(sizeof *r);
        r->key = xstrdup(replica);
        r->group = xstrdup(group);
        r->defs = xcalloc(WD_METRICS_MAX_DEFS, sizeof *r->defs);
        r->retired = xcalloc(WD_METRICS_MAX_DEFS, sizeof *r->retired);
        r->bytes = replica_overhead(replica, group);
        m->bytes += r->bytes;
        memmove(&m->reps[at + 1], &m->reps[at], (m->nreps - at) * sizeof *m->reps);
        m->reps[at] = r;
        m->nreps++;
    } else if (r->gone) {
        retire(m, r);
        r->gone = false;
    }
    if (strcmp(r->group, group) != 0) {
        size_t old = strlen(r->group);
        free(r->group);
        r->group = xstrdup(group);
        r->bytes = r->bytes - old + strlen(group);
        m->bytes = m->bytes - old + strlen(group);
    }
    if (nd.n) {
        for (size_t i = 0; i < nd.n; i++) {
            r->defs[r->ndefs++] = nd.v[i];
            r->bytes += nd.v[i]->bytes;
            m->bytes += nd.v[i]->bytes;
        }
        nd.n = 0;
        qsort(r->defs, r->ndefs, sizeof *r->defs, cmp_series_id);
    }
    for (size_t i = 0; i < nvals; i++) {
        const Runtime__MetricValue *v = u->values[i];
        struct series *s = find_id(r->defs, r->ndefs, v->id);
        s->value = v->value;
        if (s->counts != NULL)
            memcpy(s->counts, v->counts, v->n_counts * sizeof *s->counts);
    }
    return 0;
}

void wd_metrics_replica_gone(struct wd_metrics *m, const char *replica)
{
    bool found;
    size_t at = find_rep(m, replica, &found);
    if (!found || m->reps[at]->gone)
        return;
    m->reps[at]->gone = true;
    m->reps[at]->gone_seq = ++m->seq;
    drop_oldest_gone(m);
}

void wd_metrics_stats(struct wd_metrics *m, struct wd_metrics_stats *st)
{
    memset(st, 0, sizeof *st);
    st->replicas = m->nreps;
    for (size_t i = 0; i < m->nreps; i++) {
        st->defs += m->reps[i]->ndefs;
        st->series += m->reps[i]->ndefs + m->reps[i]->nretired;
    }
    st->bytes = m->bytes;
}

/* ---- output ---------------------------------------------------------------------------- */

struct ent {
    const struct series *s;
    const struct replica *r;
    char *sname;   /* sanitized name (Prometheus) */
    char *slabels; /* k="v",... with sanitized, renamed keys (Prometheus) */
};

struct ents {
    struct ent *v;
    size_t n;
};

static void ents_free(struct ents *e)
{
    for (size_t i = 0; i < e->n; i++) {
        free(e->v[i].sname);
        free(e->v[i].slabels);
    }
    free(e->v);
}

static char *sanitize(const char *s, bool colon)
{
    size_t n = strlen(s);
    char *o = xmalloc(n + 2), *p = o;
    if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
        *p++ = '_';
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || (colon && c == ':');
        *p++ = ok ? c : '_';
    }
    *p = 0;
    return o;
}

static bool name_match(const char *name, const char *sname, const char *filter)
{
    return filter == NULL || strstr(name, filter) != NULL || strstr(sname, filter) != NULL;
}

static void collect(struct wd_metrics *m, const char *filter, struct ents *e)
{
    size_t cap = 0;
    for (size_t i = 0; i < m->nreps; i++)
        cap += m->reps[i]->ndefs + m->reps[i]->nretired;
    e->v = xcalloc(cap + 1, sizeof *e->v);
    for (size_t i = 0; i < m->nreps; i++) {
        const struct replica *r = m->reps[i];
        for (size_t k = 0; k < r->ndefs + r->nretired; k++) {
            const struct series *s = k < r->ndefs ? r->defs[k] : r->retired[k - r->ndefs];
            if (r->gone && k < r->ndefs && s->type == T_GAUGE)
                continue;
            char *sname = sanitize(s->name, true);
            if (!name_match(s->name, sname, filter)) {
                free(sname);
                continue;
            }
            e->v[e->n++] = (struct ent){.s = s, .r = r, .sname = sname};
        }
    }
}

struct out {
    struct wd_buf *b;
    bool failed;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (!o->failed && wd_buf_append(o->b, s, n) < 0)
        o->failed = true;
}

static void puts_(struct out *o, const char *s) { put(o, s, strlen(s)); }

/* Shortest of %.15g / %.17g that reads back as @d; Prometheus spellings for the rest. */
static void fmt_double(char buf[32], double d)
{
    if (isnan(d)) {
        snprintf(buf, 32, "NaN");
    } else if (isinf(d)) {
        snprintf(buf, 32, d > 0 ? "+Inf" : "-Inf");
    } else {
        snprintf(buf, 32, "%.15g", d);
        if (strtod(buf, NULL) != d)
            snprintf(buf, 32, "%.17g", d);
    }
}

/* Escape for a label value (quote true) or for HELP text. */
static void put_escaped(struct out *o, const char *s, bool quote)
{
    const char *run = s;
    for (; *s; s++) {
        const char *rep = NULL;
        if (*s == '\\')
            rep = "\\\\";
        else if (*s == '\n')
            rep = "\\n";
        else if (quote && *s == '"')
            rep = "\\\"";
        else
            continue;
        put(o, run, (size_t)(s - run));
        puts_(o, rep);
        run = s + 1;
    }
    put(o, run, (size_t)(s - run));
}

static bool key_taken(char **keys, size_t n, const char *k, bool hist)
{
    if (strcmp(k, "replica") == 0 || strcmp(k, "group") == 0 || (hist && strcmp(k, "le") == 0))
        return true;
    for (size_t i = 0; i < n; i++)
        if (keys[i] != NULL && strcmp(keys[i], k) == 0)
            return true;
    return false;
}

struct skey {
    char *key;
    const char *val;
};

static int cmp_skey(const void *a, const void *b)
{
    return strcmp(((const struct skey *)a)->key, ((const struct skey *)b)->key);
}

/* The label part of a Prometheus series for @s: keys valid as sent keep their name (first, in
 * key order); the others, in key order, get the sanitized key or its smallest free "_N". */
static char *prom_labels(const struct series *s)
{
    size_t n = s->nlabels;
    autofree char **keys = xcalloc(n + 1, sizeof *keys);
    bool hist = s->type == T_HIST;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            if (keys[i] != NULL)
                continue;
            char *k = sanitize(s->labels[i].key, false);
            bool valid = strcmp(k, s->labels[i].key) == 0;
            if (pass == 0 && (!valid || key_taken(keys, n, k, hist))) {
                free(k);
                continue;
            }
            for (unsigned sfx = 2; key_taken(keys, n, k, hist); sfx++) {
                char *base = sanitize(s->labels[i].key, false);
                free(k);
                k = xasprintf("%s_%u", base, sfx);
                free(base);
            }
            keys[i] = k;
        }
    }
    autofree struct skey *sk = xcalloc(n + 1, sizeof *sk);
    for (size_t i = 0; i < n; i++)
        sk[i] = (struct skey){.key = keys[i], .val = s->labels[i].val};
    qsort(sk, n, sizeof *sk, cmp_skey);
    struct wd_buf b = {0};
    struct out o = {.b = &b};
    for (size_t i = 0; i < n; i++) {
        puts_(&o, sk[i].key);
        puts_(&o, "=\"");
        put_escaped(&o, sk[i].val, true);
        puts_(&o, "\",");
        free(sk[i].key);
    }
    return wd_buf_steal_str(&b);
}

static int cmp_prom(const void *a, const void *b)
{
    const struct ent *x = a, *y = b;
    int c = strcmp(x->sname, y->sname);
    if (c == 0)
        c = strcmp(x->slabels, y->slabels);
    if (c == 0)
        c = strcmp(x->r->key, y->r->key);
    return c;
}

/* The type most series of [i, j) have; ties go to the lower type. */
static int major_type(const struct ent *v, size_t i, size_t j)
{
    size_t cnt[4] = {0};
    for (size_t k = i; k < j; k++)
        cnt[v[k].s->type]++;
    int best = T_COUNTER;
    for (int t = T_GAUGE; t <= T_HIST; t++)
        if (cnt[t] > cnt[best])
            best = t;
    return best;
}

/* A series being summed from one or more entries. */
struct acc {
    const struct series *first;
    double value;
    uint64_t *counts;
    size_t replicas;
};

static void acc_start(struct acc *a, const struct series *s)
{
    a->first = s;
    a->value = s->value;
    a->replicas = 1;
    if (s->counts) {
        a->counts = xcalloc(s->nbounds + 1, sizeof *a->counts);
        memcpy(a->counts, s->counts, (s->nbounds + 1) * sizeof *a->counts);
    }
}

static bool acc_add(struct acc *a, const struct series *s)
{
    if (s->type != a->first->type || !same_bounds(s, a->first))
        return false;
    a->value += s->value;
    for (size_t i = 0; a->counts && i <= s->nbounds; i++)
        a->counts[i] = sat_add(a->counts[i], s->counts[i]);
    return true;
}

static void prom_series(struct out *o, const struct ent *e, const struct acc *a)
{
    char num[32];
    autofree char *tail = NULL; /* replica="..",group=".." */
    struct wd_buf tb = {0};
    struct out t = {.b = &tb};
    puts_(&t, "replica=\"");
    put_escaped(&t, e->r->key, true);
    puts_(&t, "\",group=\"");
    put_escaped(&t, e->r->group, true);
    puts_(&t, "\"");
    tail = wd_buf_steal_str(&tb);
    if (e->s->type != T_HIST) {
        fmt_double(num, a->value);
        puts_(o, e->sname);
        puts_(o, "{");
        puts_(o, e->slabels);
        puts_(o, tail);
        puts_(o, "} ");
        puts_(o, num);
        puts_(o, "\n");
        return;
    }
    uint64_t cum = 0;
    for (size_t i = 0; i <= e->s->nbounds; i++) {
        cum = sat_add(cum, a->counts[i]);
        if (i < e->s->nbounds)
            fmt_double(num, e->s->bounds[i]);
        else
            snprintf(num, sizeof num, "+Inf");
        char cbuf[32];
        snprintf(cbuf, sizeof cbuf, "%" PRIu64, cum);
        puts_(o, e->sname);
        puts_(o, "_bucket{");
        puts_(o, e->slabels);
        puts_(o, tail);
        puts_(o, ",le=\"");
        puts_(o, num);
        puts_(o, "\"} ");
        puts_(o, cbuf);
        puts_(o, "\n");
    }
    fmt_double(num, a->value);
    puts_(o, e->sname);
    puts_(o, "_sum{");
    puts_(o, e->slabels);
    puts_(o, tail);
    puts_(o, "} ");
    puts_(o, num);
    puts_(o, "\n");
    snprintf(num, sizeof num, "%" PRIu64, cum);
    puts_(o, e->sname);
    puts_(o, "_count{");
    puts_(o, e->slabels);
    puts_(o, tail);
    puts_(o, "} ");
    puts_(o, num);
    puts_(o, "\n");
}

static const char *type_name(int t)
{
    return t == T_COUNTER ? "counter" : t == T_GAUGE ? "gauge" : "histogram";
}

void wd_metrics_prometheus(struct wd_metrics *m, const char *filter, struct wd_buf *out)
{
    __attribute__((cleanup(ents_free))) struct ents e = {0};
    collect(m, filter, &e);
    for (size_t i = 0; i < e.n; i++)
        e.v[i].slabels = prom_labels(e.v[i].s);
    qsort(e.v, e.n, sizeof *e.v, cmp_prom);

    size_t start = out->len;
    struct out o = {.b = out};
    for (size_t i = 0, j; i < e.n; i = j) {
        for (j = i + 1; j < e.n && strcmp(e.v[j].sname, e.v[i].sname) == 0; j++)
            ;
        int type = major_type(e.v, i, j);
        bool head = false;
        for (size_t k = i, l; k < j; k = l) {
            l = k + 1;
            if (e.v[k].s->type != type)
                continue;
            struct acc a = {0};
            acc_start(&a, e.v[k].s);
            /* the same series after sanitizing (a retired total, or a name or key collision) */
            for (; l < j && strcmp(e.v[l].slabels, e.v[k].slabels) == 0 &&
                   strcmp(e.v[l].r->key, e.v[k].r->key) == 0;
                 l++)
                (void)acc_add(&a, e.v[l].s);
            if (!head) {
                head = true;
                if (e.v[k].s->help[0]) {
                    puts_(&o, "# HELP ");
                    puts_(&o, e.v[k].sname);
                    puts_(&o, " ");
                    put_escaped(&o, e.v[k].s->help, false);
                    puts_(&o, "\n");
                }
                puts_(&o, "# TYPE ");
                puts_(&o, e.v[k].sname);
                puts_(&o, " ");
                puts_(&o, type_name(type));
                puts_(&o, "\n");
            }
            prom_series(&o, &e.v[k], &a);
            free(a.counts);
        }
    }
    if (o.failed) {
        out->len = start;
        if (out->data)
            out->data[start] = 0;
    }
}

/* weaver labels every series with its weavelet's id (serviceweaver_node): the JSON sums over
 * replicas, so it ignores that one. */
static bool per_weavelet(const char *key)
{
    return strcmp(key, "serviceweaver_node") == 0;
}

static int cmp_labels_json(const struct series *a, const struct series *b)
{
    size_t i = 0, j = 0;
    for (;;) {
        while (i < a->nlabels && per_weavelet(a->labels[i].key))
            i++;
        while (j < b->nlabels && per_weavelet(b->labels[j].key))
            j++;
        if (i == a->nlabels || j == b->nlabels)
            return (i < a->nlabels) - (j < b->nlabels);
        int c = strcmp(a->labels[i].key, b->labels[j].key);
        if (c == 0)
            c = strcmp(a->labels[i].val, b->labels[j].val);
        if (c != 0)
            return c;
        i++, j++;
    }
}

static int cmp_json(const void *a, const void *b)
{
    const struct ent *x = a, *y = b;
    int c = strcmp(x->s->name, y->s->name);
    if (c == 0)
        c = cmp_labels_json(x->s, y->s);
    if (c == 0)
        c = strcmp(x->r->key, y->r->key);
    return c;
}

static void add_u64(cJSON *arr_or_obj, const char *key, uint64_t v)
{
    char num[32];
    snprintf(num, sizeof num, "%" PRIu64, v);
    if (key)
        cJSON_AddItemToObject(arr_or_obj, key, cJSON_CreateRaw(num));
    else
        cJSON_AddItemToArray(arr_or_obj, cJSON_CreateRaw(num));
}

static cJSON *json_series(const struct acc *a)
{
    const struct series *s = a->first;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "name", cJSON_CreateString(s->name));
    cJSON_AddItemToObject(o, "type", cJSON_CreateString(type_name(s->type)));
    cJSON_AddItemToObject(o, "help", cJSON_CreateString(s->help));
    cJSON *labels = cJSON_CreateObject();
    for (size_t i = 0; i < s->nlabels; i++)
        if (!per_weavelet(s->labels[i].key))
            cJSON_AddItemToObject(labels, s->labels[i].key,
                                  cJSON_CreateString(s->labels[i].val));
    cJSON_AddItemToObject(o, "labels", labels);
    add_u64(o, "replicas", a->replicas);
    cJSON_AddItemToObject(o, "value", cJSON_CreateNumber(a->value));
    if (s->type == T_HIST) {
        cJSON *bounds = cJSON_CreateArray(), *counts = cJSON_CreateArray();
        uint64_t total = 0;
        for (size_t i = 0; i < s->nbounds; i++)
            cJSON_AddItemToArray(bounds, cJSON_CreateNumber(s->bounds[i]));
        for (size_t i = 0; i <= s->nbounds; i++) {
            add_u64(counts, NULL, a->counts[i]);
            total = sat_add(total, a->counts[i]);
        }
        cJSON_AddItemToObject(o, "bounds", bounds);
        cJSON_AddItemToObject(o, "counts", counts);
        add_u64(o, "count", total);
        cJSON_AddItemToObject(o, "sum", cJSON_CreateNumber(a->value));
    }
    return o;
}

void wd_metrics_json(struct wd_metrics *m, const char *filter, struct wd_buf *out)
{
    __attribute__((cleanup(ents_free))) struct ents e = {0};
    collect(m, filter, &e);
    qsort(e.v, e.n, sizeof *e.v, cmp_json);

    cJSON *doc = cJSON_CreateObject();
    cJSON *arr = cJSON_CreateArray();
    cJSON_AddItemToObject(doc, "metrics", arr);
    for (size_t i = 0, j; i < e.n; i = j) {
        for (j = i + 1; j < e.n && strcmp(e.v[j].s->name, e.v[i].s->name) == 0; j++)
            ;
        int type = major_type(e.v, i, j);
        for (size_t k = i, l; k < j; k = l) {
            for (l = k + 1; l < j && cmp_labels_json(e.v[l].s, e.v[k].s) == 0; l++)
                ;
            struct acc a = {0};
            const struct replica *last = NULL;
            for (size_t x = k; x < l; x++) {
                if (e.v[x].s->type != type)
                    continue;
                bool ok = true;
                if (a.first == NULL)
                    acc_start(&a, e.v[x].s);
                else
                    ok = acc_add(&a, e.v[x].s);
                if (ok && last != NULL && last != e.v[x].r)
                    a.replicas++;
                if (ok)
                    last = e.v[x].r;
            }
            if (a.first != NULL)
                cJSON_AddItemToArray(arr, json_series(&a));
            free(a.counts);
        }
    }
    char *s = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    if (s == NULL)
        abort(); /* cJSON fails only when out of memory */
    (void)wd_buf_append(out, s, strlen(s)); /* unchanged if over the cap */
    free(s);
}
