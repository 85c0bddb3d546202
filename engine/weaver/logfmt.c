/* engine/weaver/logfmt.c - the pretty log format of weaver-protocol.md §7.5, byte for byte, and a
 * JSON form. Column widths follow Go's fmt rules: they count runes, while the growth of a
 * column is decided on byte lengths (as weaver does). */
#include "engine/weaver/logfmt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define RESET "\x1b[0m"
#define DIM "\x1b[38;5;245m"
#define ERROR_COLOR "\x1b[38;5;9m"
#define INITIAL_WIDTH 20

/* The 256-colour indices weaver uses for hashed colours (runtime/colors/colors.go, `visible`):
 * readable on light and dark backgrounds. */
static const uint8_t visible[160] = {
    1,   2,   3,   5,   6,   9,   10,  11,  12,  13,  14,  22,  23,  24,  25,  26,
    27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,  41,  42,
    43,  44,  45,  46,  47,  48,  49,  50,  51,  58,  62,  63,  64,  65,  66,  67,
    68,  69,  70,  71,  72,  73,  74,  75,  76,  77,  78,  79,  80,  81,  82,  88,
    89,  90,  91,  92,  93,  94,  95,  96,  97,  98,  99,  100, 101, 103, 104, 105,
    106, 107, 110, 111, 112, 113, 114, 115, 116, 117, 124, 125, 126, 127, 128, 129,
    130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 140, 141, 142, 143, 148, 160,
    161, 162, 163, 164, 165, 166, 167, 168, 169, 170, 171, 172, 173, 174, 175, 176,
    177, 178, 179, 180, 181, 182, 183, 184, 196, 197, 198, 199, 200, 201, 202, 203,
    204, 205, 206, 207, 208, 209, 210, 211, 212, 213, 214, 215, 216, 217, 218, 219,
};

struct wd_logfmt {
    bool color;
    bool has_prev;
    int64_t prev_sec;
    size_t comp_width, src_width;
};

struct wd_logfmt *wd_logfmt_new(bool color)
{
    struct wd_logfmt *f = xzalloc(sizeof *f);
    f->color = color;
    f->comp_width = INITIAL_WIDTH;
    f->src_width = INITIAL_WIDTH;
    return f;
}

void wd_logfmt_free(struct wd_logfmt *f) { free(f); }

static const char *nz(const char *s) { return s ? s : ""; }

/* "\x1b[38;5;<n>m" for the hash of s: the byte sum mod 256, then mod the table size. */
static void color_hash(const char *s, size_t n, char out[16])
{
    uint8_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum = (uint8_t)(sum + (uint8_t)s[i]);
    snprintf(out, 16, "\x1b[38;5;%um", (unsigned)visible[sum % WD_ARRAY_LEN(visible)]);
}

/* Decode one UTF-8 sequence the way Go does: returns the rune and sets *w to its length, or
 * returns -1 with *w = 1 for an invalid byte (overlong forms and surrogates are invalid). */
static int32_t decode_rune(const uint8_t *p, size_t n, size_t *w)
{
    *w = 1;
    uint8_t c = p[0];
    if (c < 0x80)
        return c;
    size_t l;
    int32_t r, min;
    if (c >= 0xc2 && c <= 0xdf) {
        l = 2, r = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        l = 3, r = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        l = 4, r = c & 0x07, min = 0x10000;
    } else {
        return -1;
    }
    if (l > n)
        return -1;
    for (size_t i = 1; i < l; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return -1;
        r = r << 6 | (p[i] & 0x3f);
    }
    if (r < min || r > 0x10ffff || (r >= 0xd800 && r <= 0xdfff))
        return -1;
    *w = l;
    return r;
}

/* Go's utf8.RuneCount: every invalid byte counts as one rune. */
static size_t rune_count(const char *s, size_t n)
{
    size_t count = 0, w;
    for (size_t i = 0; i < n; i += w, count++)
        decode_rune((const uint8_t *)s + i, n - i, &w);
    return count;
}

static void put_rune(struct wd_buf *b, int32_t r)
{
    uint8_t u[4];
    size_t n;
    if (r < 0x80) {
        u[0] = (uint8_t)r, n = 1;
    } else if (r < 0x800) {
        u[0] = (uint8_t)(0xc0 | r >> 6), u[1] = (uint8_t)(0x80 | (r & 0x3f)), n = 2;
    } else if (r < 0x10000) {
        u[0] = (uint8_t)(0xe0 | r >> 12), u[1] = (uint8_t)(0x80 | (r >> 6 & 0x3f));
        u[2] = (uint8_t)(0x80 | (r & 0x3f)), n = 3;
    } else {
        u[0] = (uint8_t)(0xf0 | r >> 18), u[1] = (uint8_t)(0x80 | (r >> 12 & 0x3f));
        u[2] = (uint8_t)(0x80 | (r >> 6 & 0x3f)), u[3] = (uint8_t)(0x80 | (r & 0x3f)), n = 4;
    }
    (void)wd_buf_append(b, u, n);
}

static void puts_n(struct wd_buf *b, const char *s, size_t n) { (void)wd_buf_append(b, s, n); }
static void puts_(struct wd_buf *b, const char *s) { puts_n(b, s, strlen(s)); }

static void spaces(struct wd_buf *b, size_t n)
{
    static const char sp[] = "                                ";
    while (n > 0) {
        size_t k = n < sizeof sp - 1 ? n : sizeof sp - 1;
        puts_n(b, sp, k);
        n -= k;
    }
}

/* Go's %-*s: the text, then spaces up to width runes. */
static void pad_right(struct wd_buf *b, const char *s, size_t n, size_t width)
{
    puts_n(b, s, n);
    size_t runes = rune_count(s, n);
    if (runes < width)
        spaces(b, width - runes);
}

/* colour + text + reset when colouring, else the text. */
static void colorize(const struct wd_logfmt *f, struct wd_buf *b, const char *code, const char *s,
                     size_t n)
{
    if (f->color)
        puts_(b, code);
    puts_n(b, s, n);
    if (f->color)
        puts_(b, RESET);
}

/* The last two path elements joined by '.' (weaver's ShortenComponent). */
static void shorten_component(const char *c, struct wd_buf *out)
{
    const char *last = strrchr(c, '/');
    if (last == NULL) {
        puts_(out, c);
        return;
    }
    const char *prev = last;
    while (prev > c && prev[-1] != '/')
        prev--;
    puts_n(out, prev, (size_t)(last - prev));
    puts_(out, ".");
    puts_(out, last + 1);
}

/* The first 8 runes (Go's []rune conversion: invalid bytes become U+FFFD), or s unchanged if
 * it has at most 8. */
static void shorten_node(const char *s, struct wd_buf *out)
{
    size_t n = strlen(s);
    if (rune_count(s, n) <= 8) {
        puts_n(out, s, n);
        return;
    }
    size_t w;
    for (size_t i = 0, k = 0; k < 8; i += w, k++) {
        int32_t r = decode_rune((const uint8_t *)s + i, n - i, &w);
        put_rune(out, r < 0 ? 0xfffd : r);
    }
}

/* Go's filepath.Base for a non-empty path. */
static void base_name(const char *p, const char **s, size_t *n)
{
    size_t len = strlen(p);
    while (len > 1 && p[len - 1] == '/')
        len--;
    if (len == 1 && p[0] == '/') {
        *s = p;
        *n = 1;
        return;
    }
    size_t start = len;
    while (start > 0 && p[start - 1] != '/')
        start--;
    *s = p + start;
    *n = len - start;
}

/* An approximation of Go's strconv.IsPrint for non-ASCII runes: letters, marks, numbers,
 * punctuation and symbols are printable; controls, separators, format characters, private use
 * and noncharacters are not. Unassigned code points count as printable (Go escapes them). */
static bool is_print(int32_t r)
{
    static const struct {
        int32_t lo, hi;
    } np[] = {
        {0x80, 0xa0},       {0xad, 0xad},       {0x600, 0x605},     {0x61c, 0x61c},
        {0x6dd, 0x6dd},     {0x70f, 0x70f},     {0x890, 0x891},     {0x8e2, 0x8e2},
        {0x1680, 0x1680},   {0x180e, 0x180e},   {0x2000, 0x200f},   {0x2028, 0x202f},
        {0x205f, 0x2064},   {0x2066, 0x206f},   {0x3000, 0x3000},   {0xd800, 0xf8ff},
        {0xfeff, 0xfeff},   {0xfff9, 0xfffb},   {0xfffe, 0xffff},   {0x110bd, 0x110bd},
        {0x110cd, 0x110cd}, {0x13430, 0x1343f}, {0x1bca0, 0x1bca3}, {0x1d173, 0x1d17a},
        {0xe0000, 0xe0fff}, {0xf0000, 0x10ffff},
    };
    if (r < 0x80)
        return r >= 0x20 && r < 0x7f;
    if ((r & 0xfffe) == 0xfffe)
        return false; /* noncharacters U+xFFFE, U+xFFFF in every plane */
    for (size_t i = 0; i < WD_ARRAY_LEN(np); i++)
        if (r >= np[i].lo && r <= np[i].hi)
            return false;
    return true;
}

/* Go's %q of a string (strconv.Quote). */
static void go_quote(const char *s, struct wd_buf *b)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(s), w;
    puts_(b, "\"");
    for (size_t i = 0; i < n; i += w) {
        const uint8_t *p = (const uint8_t *)s + i;
        int32_t r = decode_rune(p, n - i, &w);
        char e[11];
        if (r < 0) {
            char x[4] = {'\\', 'x', hex[p[0] >> 4], hex[p[0] & 15]};
            puts_n(b, x, 4);
            continue;
        }
        if (r == '"' || r == '\\') {
            char x[2] = {'\\', (char)r};
            puts_n(b, x, 2);
            continue;
        }
        if (is_print(r)) {
            puts_n(b, (const char *)p, w);
            continue;
        }
        switch (r) {
        case '\a': puts_(b, "\\a"); continue;
        case '\b': puts_(b, "\\b"); continue;
        case '\f': puts_(b, "\\f"); continue;
        case '\n': puts_(b, "\\n"); continue;
        case '\r': puts_(b, "\\r"); continue;
        case '\t': puts_(b, "\\t"); continue;
        case '\v': puts_(b, "\\v"); continue;
        default: break;
        }
        if (r < ' ' || r == 0x7f)
            snprintf(e, sizeof e, "\\x%02x", (unsigned)r);
        else if (r < 0x10000)
            snprintf(e, sizeof e, "\\u%04x", (unsigned)r);
        else
            snprintf(e, sizeof e, "\\U%08x", (unsigned)r);
        puts_(b, e);
    }
    puts_(b, "\"");
}

struct attr {
    const char *k, *v;
};

/* Attribute pairs without the system marker, stably sorted by key (insertion sort: the lists
 * are short, and a stable order keeps repeated keys in their given order, as Go's sort does
 * for short slices). Caller frees. */
static struct attr *sorted_attrs(const struct wd_log_entry *e, size_t *np)
{
    size_t n = 0;
    struct attr *a = xcalloc(e->nattrs / 2 + 1, sizeof *a);
    for (size_t i = 0; e->attrs && i + 1 < e->nattrs; i += 2) {
        const char *k = nz(e->attrs[i]), *v = nz(e->attrs[i + 1]);
        if (strcmp(k, WD_LOG_SYSTEM_ATTR) == 0)
            continue;
        size_t j = n++;
        while (j > 0 && strcmp(a[j - 1].k, k) > 0) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = (struct attr){k, v};
    }
    *np = n;
    return a;
}

static void split_time(int64_t us, int64_t *sec, int32_t *frac)
{
    int64_t s = us / 1000000, f = us % 1000000;
    if (f < 0) {
        f += 1000000;
        s--;
    }
    *sec = s;
    *frac = (int32_t)f;
}

static void local_tm(int64_t sec, struct tm *tm)
{
    time_t t = (time_t)sec;
    if (localtime_r(&t, tm) == NULL)
        memset(tm, 0, sizeof *tm);
}

void wd_logfmt_format(struct wd_logfmt *f, const struct wd_log_entry *e, struct wd_buf *out)
{
    struct wd_buf b = {0};
    const char *level = nz(e->level);
    const char *lcolor = strcasecmp(level, "error") == 0 ? ERROR_COLOR : RESET;

    /* Level: the first byte upper-cased; Go's ToUpper turns a lone non-ASCII byte into U+FFFD. */
    char lv[4] = " ";
    if ((uint8_t)level[0] >= 0x80)
        memcpy(lv, "\xef\xbf\xbd", 4);
    else if (level[0] != 0)
        lv[0] = (char)(level[0] >= 'a' && level[0] <= 'z' ? level[0] - 'a' + 'A' : level[0]);
    colorize(f, &b, lcolor, lv, strlen(lv));

    int64_t sec;
    int32_t frac;
    split_time(e->time_micros, &sec, &frac);
    struct tm tm;
    local_tm(sec, &tm);
    char ts[64], us[16];
    snprintf(ts, sizeof ts, "%02d%02d %02d:%02d:%02d.", tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec);
    snprintf(us, sizeof us, "%06d", (int)frac);
    if (f->has_prev && f->prev_sec == sec) {
        colorize(f, &b, DIM, ts, strlen(ts));
        colorize(f, &b, lcolor, us, strlen(us));
    } else {
        char both[80];
        snprintf(both, sizeof both, "%s%s", ts, us);
        colorize(f, &b, lcolor, both, strlen(both));
    }
    puts_(&b, " ");

    /* Component column: grows on byte length, pads in runes, padding inside the colour. */
    struct wd_buf c = {0};
    shorten_component(nz(e->component), &c);
    const char *cs = c.data ? (const char *)c.data : "";
    if (c.len > f->comp_width)
        f->comp_width = c.len;
    char code[16];
    color_hash(cs, c.len, code);
    struct wd_buf padded = {0};
    pad_right(&padded, cs, c.len, f->comp_width);
    colorize(f, &b, code, padded.data ? (const char *)padded.data : "", padded.len);
    wd_buf_free(&padded);
    wd_buf_free(&c);

    const char *node = nz(e->node);
    if (node[0] != 0) {
        puts_(&b, " ");
        struct wd_buf sn = {0};
        shorten_node(node, &sn);
        color_hash(node, strlen(node), code);
        colorize(f, &b, code, (const char *)sn.data, sn.len);
        wd_buf_free(&sn);
    }

    /* Source column. Quirk kept from weaver: the width includes the length of the colour code
     * and of the reset even when colours are off. */
    puts_(&b, " ");
    const char *file = nz(e->file);
    if (file[0] != 0 && e->line != -1) {
        const char *bn;
        size_t bl;
        base_name(file, &bn, &bl);
        char *loc = xasprintf("%.*s:%" PRId32, (int)bl, bn, e->line);
        size_t ll = strlen(loc);
        if (ll > f->src_width)
            f->src_width = ll;
        color_hash(bn, bl, code);
        struct wd_buf s = {0};
        colorize(f, &s, code, loc, ll);
        pad_right(&b, (const char *)s.data, s.len, f->src_width + strlen(code) + strlen(RESET));
        wd_buf_free(&s);
        free(loc);
    } else {
        spaces(&b, f->src_width);
    }

    colorize(f, &b, DIM, " \xe2\x94\x82 ", 5);
    puts_(&b, nz(e->msg));

    size_t na;
    struct attr *a = sorted_attrs(e, &na);
    for (size_t i = 0; i < na; i++) {
        const char *acode = code;
        if (strcmp(a[i].k, "component") == 0)
            color_hash(a[i].v, strlen(a[i].v), code);
        else if (strcmp(a[i].k, "err") == 0)
            acode = ERROR_COLOR;
        else
            color_hash(a[i].k, strlen(a[i].k), code);
        puts_(&b, " ");
        char *kq = xasprintf("%s=", a[i].k);
        colorize(f, &b, DIM, kq, strlen(kq));
        free(kq);
        struct wd_buf q = {0};
        go_quote(a[i].v, &q);
        colorize(f, &b, acode, (const char *)q.data, q.len);
        wd_buf_free(&q);
    }
    free(a);

    f->has_prev = true;
    f->prev_sec = sec;
    (void)wd_buf_append(out, b.data, b.len);
    wd_buf_free(&b);
}

/* A JSON string; invalid UTF-8 becomes U+FFFD. */
static void json_str(struct wd_buf *b, const char *s)
{
    size_t n = strlen(s), w;
    puts_(b, "\"");
    for (size_t i = 0; i < n; i += w) {
        const uint8_t *p = (const uint8_t *)s + i;
        int32_t r = decode_rune(p, n - i, &w);
        char e[16];
        if (r < 0) {
            puts_(b, "\\ufffd");
        } else if (r == '"' || r == '\\') {
            char x[2] = {'\\', (char)r};
            puts_n(b, x, 2);
        } else if (r == '\n') {
            puts_(b, "\\n");
        } else if (r == '\r') {
            puts_(b, "\\r");
        } else if (r == '\t') {
            puts_(b, "\\t");
        } else if (r < 0x20 || r == 0x2028 || r == 0x2029) {
            snprintf(e, sizeof e, "\\u%04x", (unsigned)r);
            puts_(b, e);
        } else {
            puts_n(b, (const char *)p, w);
        }
    }
    puts_(b, "\"");
}

static void json_kv(struct wd_buf *b, const char *k, const char *v, bool comma)
{
    if (comma)
        puts_(b, ",");
    json_str(b, k);
    puts_(b, ":");
    json_str(b, v);
}

void wd_logfmt_json(const struct wd_log_entry *e, struct wd_buf *out)
{
    struct wd_buf b = {0};
    int64_t sec;
    int32_t frac;
    split_time(e->time_micros, &sec, &frac);
    struct tm tm;
    local_tm(sec, &tm);
    char ts[96], zone[32] = "Z";
    long off = tm.tm_gmtoff / 60; /* minutes; |off| < 24 h on every real system */
    if (off != 0)
        snprintf(zone, sizeof zone, "%c%02ld:%02ld", off < 0 ? '-' : '+', labs(off) / 60,
                 labs(off) % 60);
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%06d%s", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac, zone);

    puts_(&b, "{");
    json_kv(&b, "time", ts, false);
    json_kv(&b, "level", nz(e->level), true);
    json_kv(&b, "app", nz(e->app), true);
    json_kv(&b, "deployment", nz(e->version), true);
    json_kv(&b, "component", nz(e->component), true);
    json_kv(&b, "weavelet", nz(e->node), true);
    json_kv(&b, "file", nz(e->file), true);
    wd_buf_printf(&b, ",\"line\":%" PRId32, e->line);
    json_kv(&b, "msg", nz(e->msg), true);
    puts_(&b, ",\"attrs\":{");
    bool first = true;
    for (size_t i = 0; e->attrs && i + 1 < e->nattrs; i += 2) {
        const char *k = nz(e->attrs[i]);
        bool dup = false;
        for (size_t j = 0; j < i && !dup; j += 2)
            dup = strcmp(nz(e->attrs[j]), k) == 0;
        if (dup)
            continue;
        json_kv(&b, k, nz(e->attrs[i + 1]), !first);
        first = false;
    }
    puts_(&b, "}}");
    (void)wd_buf_append(out, b.data, b.len);
    wd_buf_free(&b);
}

bool wd_log_entry_is_system(const struct wd_log_entry *e)
{
    for (size_t i = 0; e->attrs && i + 1 < e->nattrs; i += 2)
        if (e->attrs[i] && strcmp(e->attrs[i], WD_LOG_SYSTEM_ATTR) == 0)
            return true;
    return false;
}

bool wd_logfmt_color_enabled(void)
{
    const char *term = getenv("TERM");
    return getenv("NO_COLOR") == NULL && !(term && strcmp(term, "dumb") == 0) && isatty(1) &&
           isatty(2);
}
