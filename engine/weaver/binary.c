/* engine/weaver/binary.c - inspect a Service Weaver application binary (weaver-protocol.md §5).
 * Everything read from the file is untrusted: every offset and length is range-checked
 * against the mapped size before use, and nothing is ever cast from the file to a struct. */
#include "engine/weaver/binary.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/base/elf.h"
#include "engine/base/sha256.h"
#include "engine/base/util.h"

#define MAIN_COMPONENT "github.com/ServiceWeaver/weaver/Main"
#define WEAVER_MODULE "github.com/ServiceWeaver/weaver"
#define METADATA_PKG "github.com/ServiceWeaver/weaver/metadata"

#define MAX_MARKER_LEN 4096   /* bytes between ⟦ and ⟧; real markers are < 300 */
#define MAX_MARKERS 65536     /* edges + listener markers kept */
#define MAX_MODINFO (1u << 24) /* Go build info module text */

static const char LBRACKET[] = "\xe2\x9f\xa6"; /* ⟦ */
static const char RBRACKET[] = "\xe2\x9f\xa7"; /* ⟧ */
static const char ARROW[] = "\xe2\x86\x92";    /* → */
static const uint8_t BUILDINFO_MAGIC[14] = {0xff, ' ', 'G', 'o', ' ', 'b', 'u',
                                            'i',  'l', 'd', 'i', 'n', 'f', ':'};

static void push_str(char ***v, size_t *n, char *s)
{
    *v = xrealloc(*v, (*n + 1) * sizeof **v); /* *n is capped far below SIZE_MAX / 8 */
    (*v)[(*n)++] = s;
}

/* ---- Go build info (weaver-protocol.md §5.5) ------------------------------------------- */

static bool read_uvarint(const uint8_t *p, size_t n, size_t *pos, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0, i = 0; i < 10; i++, shift += 7) {
        if (*pos >= n)
            return false;
        uint8_t c = p[(*pos)++];
        if (i == 9 && c > 1)
            return false; /* overflows 64 bits */
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

static bool printable_token(const uint8_t *p, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (p[i] <= ' ' || p[i] >= 0x7f)
            return false;
    return true;
}

/* Parse the module text: find the weaver module's version on a "dep" line, else on the "mod"
 * line (Go's bin.ReadVersions looks at the deps first, then the main module). */
static char *weaver_version_in_modinfo(const uint8_t *m, size_t n)
{
    const uint8_t *mod_v = NULL;
    size_t mod_vlen = 0;
    size_t pos = 0;
    while (pos < n) {
        const uint8_t *line = m + pos, *nl = memchr(line, '\n', n - pos);
        size_t llen = nl ? (size_t)(nl - line) : n - pos;
        pos += llen + 1;
        bool dep = llen > 4 && memcmp(line, "dep\t", 4) == 0;
        bool mod = llen > 4 && memcmp(line, "mod\t", 4) == 0;
        if (!dep && !mod)
            continue;
        const uint8_t *path = line + 4, *tab = memchr(path, '\t', llen - 4);
        if (tab == NULL)
            continue;
        size_t plen = (size_t)(tab - path);
        if (plen != strlen(WEAVER_MODULE) || memcmp(path, WEAVER_MODULE, plen) != 0)
            continue;
        const uint8_t *ver = tab + 1, *end = line + llen;
        const uint8_t *vtab = memchr(ver, '\t', (size_t)(end - ver));
        size_t vlen = (size_t)((vtab ? vtab : end) - ver);
        if (vlen > 128 || !printable_token(ver, vlen))
            continue;
        if (dep)
            return xstrndup((const char *)ver, vlen);
        if (mod_v == NULL) {
            mod_v = ver;
            mod_vlen = vlen;
        }
    }
    return mod_v ? xstrndup((const char *)mod_v, mod_vlen) : NULL;
}

/* Parse a build info blob starting with the magic. Absent or unreadable parts stay NULL: a
 * missing module version is not an error (hdr_fmt then falls back to a string search). */
static void parse_buildinfo(const uint8_t *p, size_t n, struct wd_binary_info *b)
{
    if (n < 32 || memcmp(p, BUILDINFO_MAGIC, sizeof BUILDINFO_MAGIC) != 0)
        return;
    uint8_t flags = p[15];
    if (!(flags & 2))
        return; /* pre-Go 1.18 pointer form: reported as "no build info" */
    size_t pos = 32;
    uint64_t vlen, mlen;
    if (!read_uvarint(p, n, &pos, &vlen) || vlen > n - pos)
        return;
    const uint8_t *ver = p + pos;
    pos += (size_t)vlen;
    if (!read_uvarint(p, n, &pos, &mlen) || mlen > n - pos || mlen > MAX_MODINFO)
        return;
    const uint8_t *mod = p + pos;
    if (vlen > 0 && vlen <= 64 && printable_token(ver, (size_t)vlen))
        b->go_version = xstrndup((const char *)ver, (size_t)vlen);
    size_t ml = (size_t)mlen;
    if (ml >= 33 && mod[ml - 17] == '\n') { /* strip the 16-byte sentinels */
        mod += 16;
        ml -= 32;
    }
    b->module_version = weaver_version_in_modinfo(mod, ml);
}

static void read_buildinfo(const struct wd_elf *e, struct wd_binary_info *b, int found,
                           const uint8_t *sec, size_t secn)
{
    if (found == 1) {
        parse_buildinfo(sec, secn, b);
        return;
    }
    /* No section (stripped headers): search the file at 16-byte aligned offsets. */
    for (size_t off = 0; off + 32 <= e->len; off += 16) {
        if (e->d[off] == 0xff && memcmp(e->d + off, BUILDINFO_MAGIC, sizeof BUILDINFO_MAGIC) == 0) {
            parse_buildinfo(e->d + off, e->len - off, b);
            return;
        }
    }
}

/* ---- versions ---------------------------------------------------------------------------- */

struct semver {
    long maj, min, patch;
    const char *pre; /* borrowed, not NUL-terminated; NULL if none */
    size_t prelen;
};

static bool parse_num(const char *s, size_t n, long *out)
{
    if (n == 0 || n > 9 || (n > 1 && s[0] == '0'))
        return false;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static bool parse_semver(const char *s, struct semver *v)
{
    if (s == NULL || s[0] != 'v')
        return false;
    s++;
    const char *end = s + strcspn(s, "+");
    if (*end == '+' && end[1] == '\0')
        return false;
    const char *dash = memchr(s, '-', (size_t)(end - s));
    const char *core_end = dash ? dash : end;
    const char *d1 = memchr(s, '.', (size_t)(core_end - s));
    if (d1 == NULL)
        return false;
    const char *d2 = memchr(d1 + 1, '.', (size_t)(core_end - d1 - 1));
    if (d2 == NULL)
        return false;
    if (!parse_num(s, (size_t)(d1 - s), &v->maj) ||
        !parse_num(d1 + 1, (size_t)(d2 - d1 - 1), &v->min) ||
        !parse_num(d2 + 1, (size_t)(core_end - d2 - 1), &v->patch))
        return false;
    v->pre = NULL;
    v->prelen = 0;
    if (dash) {
        v->pre = dash + 1;
        v->prelen = (size_t)(end - dash - 1);
        if (v->prelen == 0)
            return false;
    }
    return true;
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return n > 0;
}

static bool is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* A pseudo-version's base (golang.org/x/mod conventions): vX.Y.(Z+1)-0.TIME-HASH has base
 * vX.Y.Z, vX.Y.Z-PRE.0.TIME-HASH has base vX.Y.Z-PRE. vX.0.0-TIME-HASH has no base and
 * compares as the prerelease it is. */
static void pseudo_base(struct semver *v)
{
    /* suffix "TIME-HASH": 14 digits, '-', 12 hex */
    if (v->pre == NULL || v->prelen < 27)
        return;
    const char *sfx = v->pre + v->prelen - 27;
    if (!all_digits(sfx, 14) || sfx[14] != '-' || !is_lower_hex(sfx + 15, 12))
        return;
    size_t head = v->prelen - 27; /* bytes before TIME */
    if (head == 2 && memcmp(v->pre, "0.", 2) == 0 && v->patch > 0) {
        v->patch--;
        v->pre = NULL;
        v->prelen = 0;
    } else if (head > 3 && memcmp(v->pre + head - 3, ".0.", 3) == 0) {
        v->prelen = head - 3;
    }
}

static int cmp_long(long a, long b) { return (a > b) - (a < b); }

/* Semver precedence of prerelease strings; NULL (a release) ranks above any prerelease. */
static int cmp_pre(const char *a, size_t an, const char *b, size_t bn)
{
    if (a == NULL || b == NULL)
        return (a == NULL) - (b == NULL);
    size_t i = 0, j = 0;
    for (;;) {
        bool aend = i >= an, bend = j >= bn;
        if (aend || bend)
            return (bend && !aend) - (aend && !bend); /* more identifiers rank higher */
        size_t ie = i, je = j;
        while (ie < an && a[ie] != '.')
            ie++;
        while (je < bn && b[je] != '.')
            je++;
        size_t al = ie - i, bl = je - j;
        bool anum = all_digits(a + i, al), bnum = all_digits(b + j, bl);
        int c;
        if (anum && bnum) {
            c = (al > bl) - (al < bl); /* no leading zeros: the longer number is larger */
            if (c == 0)
                c = memcmp(a + i, b + j, al);
        } else if (anum != bnum) {
            c = anum ? -1 : 1; /* numeric identifiers rank below alphanumeric ones */
        } else {
            c = memcmp(a + i, b + j, al < bl ? al : bl);
            if (c == 0)
                c = (al > bl) - (al < bl);
        }
        if (c != 0)
            return c < 0 ? -1 : 1;
        i = ie + 1;
        j = je + 1;
    }
}

static int cmp_semver(const struct semver *a, const struct semver *b)
{
    int c = cmp_long(a->maj, b->maj);
    if (c == 0)
        c = cmp_long(a->min, b->min);
    if (c == 0)
        c = cmp_long(a->patch, b->patch);
    if (c == 0)
        c = cmp_pre(a->pre, a->prelen, b->pre, b->prelen);
    return c;
}

/* Compare module version s (with pseudo-versions reduced to their base) against ref. Returns
 * false if s is not a semantic version. */
static bool module_cmp(const char *s, const char *ref, int *out)
{
    struct semver a, r;
    if (!parse_semver(s, &a) || !parse_semver(ref, &r))
        return false;
    pseudo_base(&a);
    *out = cmp_semver(&a, &r);
    return true;
}

/* ---- markers (weaver-protocol.md §5.2-5.4) ---------------------------------------------- */

struct scan {
    const uint8_t *d; /* region scanned for markers */
    size_t len;
    bool have_api, have_old_api;
    int api[3], old_api[3];
    struct wd_edge *edges;
    size_t nedges;
    struct wd_binary_listeners *lis;
    size_t nlis;
    size_t nmarkers;
};

static bool is_name_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '~' || c == '_' || c == '/';
}

/* Span of component-name characters. */
static size_t name_span(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n && is_name_char(p[i]))
        i++;
    return i;
}

/* Span of listener-list characters: ASCII letters, digits, '_' and ',', plus any well-formed
 * non-ASCII UTF-8 sequence other than the marker delimiters (an approximation of
 * [\p{L}\p{Nd}_,]; the checksum check rejects anything weaver generate did not write). */
static size_t names_span(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c < 0x80) {
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == ','))
                break;
            i++;
            continue;
        }
        size_t l = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
        if (l == 0 || c >= 0xf5 || l > n - i)
            break;
        bool ok = true;
        for (size_t k = 1; k < l; k++)
            ok = ok && (p[i + k] & 0xc0) == 0x80;
        if (!ok || (l == 3 && (memcmp(p + i, LBRACKET, 3) == 0 ||
                               memcmp(p + i, RBRACKET, 3) == 0 || memcmp(p + i, ARROW, 3) == 0)))
            break;
        i += l;
    }
    return i;
}

static bool starts(const uint8_t *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n >= l && memcmp(p, lit, l) == 0;
}

/* Digits "A.B.C" followed by ⟧ (or by end_lit). Returns bytes consumed including the
 * terminator, or 0. */
static size_t parse_triple(const uint8_t *p, size_t n, const char *end_lit, int v[3])
{
    size_t i = 0;
    for (int k = 0; k < 3; k++) {
        size_t start = i;
        long x = 0;
        while (i < n && p[i] >= '0' && p[i] <= '9' && i - start < 9)
            x = x * 10 + (p[i++] - '0');
        if (i == start || (i < n && p[i] >= '0' && p[i] <= '9'))
            return 0;
        v[k] = (int)x;
        if (k < 2) {
            if (i >= n || p[i] != '.')
                return 0;
            i++;
        }
    }
    if (!starts(p + i, n - i, end_lit))
        return 0;
    return i + strlen(end_lit);
}

/* "wEaVeReDgE:" + a + "→" + b (or the listeners tag), SHA-256, first 8 lowercase hex. */
static void checksum8(const char *tag, const uint8_t *a, size_t an, const uint8_t *b, size_t bn,
                      char out[9])
{
    struct wd_sha256 ctx;
    uint8_t md[WD_SHA256_LEN];
    wd_sha256_init(&ctx);
    wd_sha256_update(&ctx, tag, strlen(tag));
    wd_sha256_update(&ctx, a, an);
    wd_sha256_update(&ctx, ARROW, 3);
    wd_sha256_update(&ctx, b, bn);
    wd_sha256_final(&ctx, md);
    wd_hex(md, 4, out);
}

static void add_edge(struct scan *s, const uint8_t *src, size_t sn, const uint8_t *dst,
                     size_t dn)
{
    s->edges = xrealloc(s->edges, (s->nedges + 1) * sizeof *s->edges);
    s->edges[s->nedges].src = xstrndup((const char *)src, sn);
    s->edges[s->nedges].dst = xstrndup((const char *)dst, dn);
    s->nedges++;
}

static void add_listeners(struct scan *s, const uint8_t *c, size_t cn, const uint8_t *names,
                          size_t nn)
{
    s->lis = xrealloc(s->lis, (s->nlis + 1) * sizeof *s->lis);
    struct wd_binary_listeners *l = &s->lis[s->nlis++];
    memset(l, 0, sizeof *l);
    l->component = xstrndup((const char *)c, cn);
    size_t start = 0;
    for (size_t i = 0; i <= nn; i++) {
        if (i == nn || names[i] == ',') { /* like strings.Split: empty names are kept */
            push_str(&l->names.v, &l->names.n, xstrndup((const char *)names + start, i - start));
            start = i + 1;
        }
    }
}

/* Try to parse one marker whose body starts at p (just after ⟦); n bytes are available up to
 * the end of the region. Returns the body length consumed including ⟧, or 0 if not a marker. */
static size_t parse_marker(struct scan *s, const uint8_t *p, size_t n)
{
    static const char VER[] = "wEaVeRvErSiOn:";
    if (starts(p, n, VER)) {
        size_t i = sizeof VER - 1, used;
        int v[3];
        if (starts(p + i, n - i, "deployer=v")) {
            i += 10;
            if ((used = parse_triple(p + i, n - i, RBRACKET, v)) == 0)
                return 0;
            if (!s->have_api) {
                s->have_api = true;
                memcpy(s->api, v, sizeof v);
            }
            return i + used;
        }
        if (starts(p + i, n - i, "module=v")) { /* v0.17.0 ... v0.21.2 */
            i += 8;
            int m[3];
            if ((used = parse_triple(p + i, n - i, ";deployer=v", m)) == 0)
                return 0;
            i += used;
            if ((used = parse_triple(p + i, n - i, RBRACKET, v)) == 0)
                return 0;
        } else if ((used = parse_triple(p + i, n - i, RBRACKET, v)) == 0) { /* <= v0.16.1 */
            return 0;
        }
        if (!s->have_old_api) {
            s->have_old_api = true;
            memcpy(s->old_api, v, sizeof v);
        }
        return i + used;
    }
    /* <checksum>:wEaVeReDgE:... or <checksum>:wEaVeRlIsTeNeRs:... */
    size_t h = 0;
    while (h < n && h < 64 && ((p[h] >= '0' && p[h] <= '9') || (p[h] >= 'a' && p[h] <= 'f') ||
                               (p[h] >= 'A' && p[h] <= 'F')))
        h++;
    if (h == 0 || h >= n || p[h] != ':')
        return 0;
    const uint8_t *sum = p;
    size_t i = h + 1;
    bool edge = starts(p + i, n - i, "wEaVeReDgE:");
    bool lis = !edge && starts(p + i, n - i, "wEaVeRlIsTeNeRs:");
    if (!edge && !lis)
        return 0;
    i += edge ? 11 : 16;
    const uint8_t *a = p + i;
    size_t an = name_span(a, n - i);
    i += an;
    if (!starts(p + i, n - i, ARROW))
        return 0;
    i += 3;
    const uint8_t *b = p + i;
    size_t bn = edge ? name_span(b, n - i) : names_span(b, n - i);
    i += bn;
    if (!starts(p + i, n - i, RBRACKET))
        return 0;
    i += 3;
    /* Go compares the whole hex string with the 8 lowercase digits. Empty names pass the Go
     * reader but are useless to a deployer, so they are dropped here. */
    char want[9];
    checksum8(edge ? "wEaVeReDgE:" : "wEaVeRlIsTeNeRs:", a, an, b, bn, want);
    if (h != 8 || memcmp(sum, want, 8) != 0 || an == 0 || bn == 0)
        return i;
    if (s->nmarkers >= MAX_MARKERS)
        return i;
    s->nmarkers++;
    if (edge)
        add_edge(s, a, an, b, bn);
    else
        add_listeners(s, a, an, b, bn);
    return i;
}

static void scan_markers(struct scan *s)
{
    size_t pos = 0;
    while (pos < s->len) {
        const uint8_t *m = memmem(s->d + pos, s->len - pos, LBRACKET, 3);
        if (m == NULL)
            break;
        size_t body = (size_t)(m - s->d) + 3;
        size_t avail = s->len - body;
        if (avail > MAX_MARKER_LEN)
            avail = MAX_MARKER_LEN;
        size_t used = parse_marker(s, s->d + body, avail);
        pos = used ? body + used : body;
    }
}

/* ---- assembling the result -------------------------------------------------------------- */

static int cmp_edge(const void *x, const void *y)
{
    const struct wd_edge *a = x, *b = y;
    int c = strcmp(a->src, b->src);
    return c ? c : strcmp(a->dst, b->dst);
}

static int cmp_strp(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static int cmp_names(const struct wd_binary_listeners *a, const struct wd_binary_listeners *b)
{
    for (size_t i = 0; i < a->names.n && i < b->names.n; i++) {
        int c = strcmp(a->names.v[i], b->names.v[i]);
        if (c)
            return c;
    }
    return (a->names.n > b->names.n) - (a->names.n < b->names.n);
}

static int cmp_lis(const void *x, const void *y)
{
    const struct wd_binary_listeners *a = x, *b = y;
    int c = strcmp(a->component, b->component);
    return c ? c : cmp_names(a, b);
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void finish_graph(struct scan *s, struct wd_binary_info *b)
{
    if (s->nedges > 1)
        qsort(s->edges, s->nedges, sizeof *s->edges, cmp_edge);
    size_t k = 0;
    for (size_t i = 0; i < s->nedges; i++) {
        if (k > 0 && cmp_edge(&s->edges[k - 1], &s->edges[i]) == 0) {
            free(s->edges[i].src);
            free(s->edges[i].dst);
            continue;
        }
        s->edges[k++] = s->edges[i];
    }
    b->edges = WD_STEAL(s->edges);
    b->nedges = k;

    char **c = xcalloc(2 * k + 1, sizeof *c);
    size_t nc = 0;
    c[nc++] = xstrdup(MAIN_COMPONENT);
    for (size_t i = 0; i < k; i++) {
        c[nc++] = xstrdup(b->edges[i].src);
        c[nc++] = xstrdup(b->edges[i].dst);
    }
    qsort(c, nc, sizeof *c, cmp_strp);
    size_t u = 0;
    for (size_t i = 0; i < nc; i++) {
        if (u > 0 && strcmp(c[u - 1], c[i]) == 0) {
            free(c[i]);
            continue;
        }
        c[u++] = c[i];
    }
    b->components = c;
    b->ncomponents = u;

    if (s->nlis > 1)
        qsort(s->lis, s->nlis, sizeof *s->lis, cmp_lis);
    k = 0;
    for (size_t i = 0; i < s->nlis; i++) {
        if (k > 0 && cmp_lis(&s->lis[k - 1], &s->lis[i]) == 0) {
            free(s->lis[i].component);
            free_strv(s->lis[i].names.v, s->lis[i].names.n);
            continue;
        }
        s->lis[k++] = s->lis[i];
    }
    b->listeners = WD_STEAL(s->lis);
    b->nlisteners = k;
}

int wd_binary_inspect_mem(const uint8_t *data, size_t len, const char *name,
                          struct wd_binary_info **out, struct wd_error **err)
{
    if (name == NULL)
        name = "<memory>";
    if (len > WD_BINARY_MAX_SIZE)
        return wd_err(err, EMSGSIZE, "%s is larger than 2 GiB; give a Service Weaver app binary",
                      name);
    struct wd_elf e;
    int r = wd_elf_open(&e, data, len, name, err);
    if (r < 0)
        return r;

    const uint8_t *rodata = NULL, *bi = NULL;
    size_t rodata_n = 0, bi_n = 0;
    int have_rodata = wd_elf_section(&e, ".rodata", &rodata, &rodata_n, err);
    if (have_rodata < 0)
        return have_rodata;
    int have_bi = wd_elf_section(&e, ".go.buildinfo", &bi, &bi_n, err);
    if (have_bi < 0)
        return have_bi;

    /* Go reads only .rodata; without it (no section headers) scan the whole file and rely on
     * deduplication. */
    struct scan s = {.d = have_rodata ? rodata : e.d, .len = have_rodata ? rodata_n : e.len};
    scan_markers(&s);

    autobinary struct wd_binary_info *b = xzalloc(sizeof *b);
    b->path = xstrdup(name);
    finish_graph(&s, b); /* takes the edges and listeners; s holds nothing more to free */
    if (!s.have_api && !s.have_old_api)
        return wd_err(err, EINVAL,
                      "%s is not a Service Weaver application (no weaver version marker); did "
                      "you run 'weaver generate' and build with github.com/ServiceWeaver/weaver?",
                      name);
    const int *api = s.have_api ? s.api : s.old_api;
    b->api_major = api[0];
    b->api_minor = api[1];
    b->api_patch = api[2];

    const char *arch = wd_elf_goarch(&e);
    b->arch = arch ? xstrdup(arch) : xasprintf("elf-machine-%u", (unsigned)e.machine);
    wd_elf_dynamic(&e, &b->interp, &b->needed.v, &b->needed.n);
    b->is_static = b->interp == NULL && b->needed.n == 0;
    read_buildinfo(&e, b, have_bi, bi, bi_n);

    int c;
    if (b->module_version && module_cmp(b->module_version, "v0.24.4", &c))
        b->hdr_fmt = c >= 0 ? WD_RPC_HDR_PREFIXED : WD_RPC_HDR_FIXED49;
    else
        b->hdr_fmt = e.len && memmem(e.d, e.len, METADATA_PKG, strlen(METADATA_PKG))
                         ? WD_RPC_HDR_PREFIXED
                         : WD_RPC_HDR_FIXED49;
    *out = WD_STEAL(b);
    return 0;
}

int wd_binary_inspect(const char *path, struct wd_binary_info **out, struct wd_error **err)
{
    autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return wd_err(err, ENOENT,
                          "%s does not exist; give the path of a Service Weaver app binary or of "
                          "its weaver.toml",
                          path);
        return wd_err_sys(err, e, "open %s", path);
    }
    struct stat st;
    if (fstat(fd, &st) < 0)
        return wd_err_sys(err, errno, "stat %s", path);
    if (S_ISDIR(st.st_mode))
        return wd_err(err, EISDIR,
                      "%s is a directory; give the path of a Service Weaver app binary or of its "
                      "weaver.toml",
                      path);
    if (!S_ISREG(st.st_mode))
        return wd_err(err, EINVAL,
                      "%s is not a regular file; give the path of a Service Weaver app binary",
                      path);
    if (st.st_size < 0 || (uint64_t)st.st_size > WD_BINARY_MAX_SIZE)
        return wd_err(err, EMSGSIZE,
                      "%s is larger than 2 GiB (%" PRId64 " bytes); give a Service Weaver app "
                      "binary",
                      path, (int64_t)st.st_size);
    size_t len = (size_t)st.st_size;
    if (len == 0)
        return wd_binary_inspect_mem(NULL, 0, path, out, err);
    /* A file truncated while mapped raises SIGBUS; app binaries are not rewritten in place by
     * 'go build' (it writes a new file and renames it), so this is accepted. */
    void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED)
        return wd_err_sys(err, errno, "mmap %s", path);
    int r = wd_binary_inspect_mem(m, len, path, out, err);
    munmap(m, len);
    return r;
}

enum generation { GEN_SOCKETS_24, GEN_SOCKETS_23, GEN_PIPES, GEN_ANCIENT, GEN_OTHER };

static enum generation generation(const struct wd_binary_info *b)
{
    int c = 0;
    if (b->api_major == 0 && b->api_patch == 0 && b->api_minor == WD_BINARY_API_MINOR)
        return GEN_SOCKETS_24;
    if (b->api_major == 0 && b->api_patch == 0 && b->api_minor == WD_BINARY_API_MINOR_OLDEST)
        return GEN_SOCKETS_23;
    bool known = b->module_version && module_cmp(b->module_version, "v0.20.0", &c);
    if ((known && c < 0) || (b->api_major == 0 && b->api_minor < 20))
        return GEN_ANCIENT;
    /* v0.23.0-beta already has control sockets but still reports API v0.22.0 */
    bool sockets = b->module_version && module_cmp(b->module_version, "v0.23.0-beta", &c) && c >= 0;
    if (b->api_major == 0 && b->api_minor <= 22 && !sockets)
        return GEN_PIPES;
    return GEN_OTHER;
}

bool wd_binary_pipes(const struct wd_binary_info *b) { return generation(b) == GEN_PIPES; }

int wd_binary_check_compose(const struct wd_binary_info *b, struct wd_error **err)
{
    if (!wd_binary_pipes(b))
        return 0;
    return wd_err(err, ENOTSUP,
                  "%s uses weaver %s, whose weavelets talk to their deployer over two pipes: "
                  "compose files need weaver v0.23.0 or later; run it with 'weaver-docker up', "
                  "or rebuild the app with github.com/ServiceWeaver/weaver v0.24.6",
                  b->path, b->module_version ? b->module_version : "v0.20-v0.22");
}

const char *wd_binary_generation(const struct wd_binary_info *b)
{
    switch (generation(b)) {
    case GEN_SOCKETS_24:
        return b->hdr_fmt == WD_RPC_HDR_PREFIXED
                   ? "control sockets, deployer API v0.24.0, length-prefixed RPC headers "
                     "(weaver v0.24.4-v0.24.6)"
                   : "control sockets, deployer API v0.24.0, 49-byte RPC headers (weaver "
                     "v0.24.1-v0.24.3)";
    case GEN_SOCKETS_23:
        return "control sockets, deployer API v0.23.0, 49-byte RPC headers (weaver v0.23.x)";
    case GEN_PIPES:
        return b->api_minor == 22 ? "two pipes, deployer API v0.22.0, 49-byte RPC headers (weaver "
                                    "v0.22.0)"
                                  : "two pipes, deployer API v0.20.0, 49-byte RPC headers (weaver "
                                    "v0.20.0-v0.21.x)";
    case GEN_ANCIENT:
        return "older than weaver v0.20.0: unsupported";
    case GEN_OTHER:
        break;
    }
    return "unknown deployer API: unsupported";
}

int wd_binary_check_supported(const struct wd_binary_info *b, struct wd_error **err)
{
    const char *mv = b->module_version ? b->module_version : "unknown";
    switch (generation(b)) {
    case GEN_SOCKETS_24:
    case GEN_SOCKETS_23:
        break;
    case GEN_PIPES:
        break;
    case GEN_ANCIENT:
        return wd_err(err, ENOTSUP,
                      "%s: unsupported weaver version %s (deployer API v%d.%d.%d); supported: "
                      "weaver " WD_BINARY_SUPPORTED ": rebuild the app with "
                      "github.com/ServiceWeaver/weaver v0.24.6",
                      b->path, mv, b->api_major, b->api_minor, b->api_patch);
    case GEN_OTHER:
        return wd_err(err, ENOTSUP,
                      "%s uses deployer API v%d.%d.%d with weaver module %s, which no weaver "
                      "release this engine knows has; supported: weaver " WD_BINARY_SUPPORTED
                      " (deployer API v0.20.0, v0.22.0, v0.23.0, v0.24.0): rebuild the app "
                      "with github.com/ServiceWeaver/weaver v0.24.6",
                      b->path, b->api_major, b->api_minor, b->api_patch, mv);
    }
    const char *host = wd_host_goarch();
    if (strcmp(b->arch, host) != 0)
        return wd_err(err, ENOEXEC,
                      "%s is built for %s but this engine runs %s; rebuild with GOARCH=%s",
                      b->path, b->arch, host, host);
    return 0;
}

void wd_binary_info_free(struct wd_binary_info *b)
{
    if (b == NULL)
        return;
    free(b->path);
    free(b->arch);
    free(b->module_version);
    free(b->go_version);
    free_strv(b->components, b->ncomponents);
    for (size_t i = 0; i < b->nedges; i++) {
        free(b->edges[i].src);
        free(b->edges[i].dst);
    }
    free(b->edges);
    for (size_t i = 0; i < b->nlisteners; i++) {
        free(b->listeners[i].component);
        free_strv(b->listeners[i].names.v, b->listeners[i].names.n);
    }
    free(b->listeners);
    free(b->interp);
    free_strv(b->needed.v, b->needed.n);
    free(b);
}

bool wd_binary_has_component(const struct wd_binary_info *b, const char *name)
{
    for (size_t i = 0; i < b->ncomponents; i++)
        if (strcmp(b->components[i], name) == 0)
            return true;
    return false;
}

bool wd_binary_has_listener(const struct wd_binary_info *b, const char *name)
{
    for (size_t j = 0; j < b->nlisteners; j++)
        for (size_t k = 0; k < b->listeners[j].names.n; k++)
            if (strcmp(b->listeners[j].names.v[k], name) == 0)
                return true;
    return false;
}
