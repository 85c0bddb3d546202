/* engine/weaver/toml.c - TOML 1.0 reader and re-encoder (see toml.h).
 *
 * A recursive-descent parser straight over the input bytes. Recursion is bounded by
 * WD_TOML_MAX_DEPTH (checked before a table or array is created), so the recursive free, JSON and
 * emit walks are bounded too. Large tables get a hash index so lookups stay O(1).
 *
 * Redefinition rules, as node flags on tables and arrays:
 *   F_EXPLICIT  table defined by a [header] (or an element of [[array]]): no second header,
 *               no dotted keys from another table
 *   F_IMPLICIT  table created as a parent of a header: a later [header] may define it
 *   F_DOTTED    table created or extended by a dotted key: no [header] may define it later
 *   F_INLINE    inline table: nothing may be added to it or below it
 *   F_AOT       array created by [[header]]: only [[header]] may append to it; arrays without
 *               it are static (immutable)
 */
#include "engine/weaver/toml.h"
#include "engine/base/link.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/base/error.h"
#include "engine/base/util.h"

enum { F_EXPLICIT = 1, F_IMPLICIT = 2, F_DOTTED = 4, F_INLINE = 8, F_AOT = 16 };

struct wd_toml {
    struct wd_toml_node *root;
};

struct keypart {
    char *s;
    size_t len;
};

struct keypath {
    struct keypart *v;
    size_t n, cap;
    int line;
};

struct parser {
    const char *s;
    size_t len, pos;
    int line;
    const char *file;
    struct wd_error **err;
    struct wd_toml_node *root, *cur;
};

/* ---------- small helpers ---------- */

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap : 4;
    while (c < need)
        c *= 2;
    size_t bytes;
    if (__builtin_mul_overflow(c, elem, &bytes))
        abort();
    *cap = c;
    return xrealloc(p, bytes);
}

static void buf_add(struct wd_buf *b, const void *p, size_t n)
{
    if (wd_buf_append(b, p, n) < 0)
        abort(); /* unlimited buffers never fail */
}

static void buf_str(struct wd_buf *b, const char *s) { buf_add(b, s, strlen(s)); }

static void buf_ch(struct wd_buf *b, char c) { buf_add(b, &c, 1); }

static bool is_digit(int c) { return c >= '0' && c <= '9'; }

static bool is_bare(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '_' ||
           c == '-';
}

static bool is_ctrl(int c) { return (c >= 0 && c < 0x20) || c == 0x7f; }

static int peek(const struct parser *p)
{
    return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

static int peek_at(const struct parser *p, size_t off)
{
    return p->pos + off < p->len ? (unsigned char)p->s[p->pos + off] : -1;
}

static void describe(int c, char out[24])
{
    if (c < 0)
        snprintf(out, 24, "end of file");
    else if (c == '\n')
        snprintf(out, 24, "end of line");
    else if (c == '\r')
        snprintf(out, 24, "a carriage return");
    else if (c > 0x20 && c < 0x7f)
        snprintf(out, 24, "'%c'", c);
    else if (c == ' ')
        snprintf(out, 24, "a space");
    else if (c == '\t')
        snprintf(out, 24, "a tab");
    else
        snprintf(out, 24, "byte 0x%02x", (unsigned)c);
}

static int fail(struct parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct parser *p, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *m = xvasprintf(fmt, ap);
    va_end(ap);
    int r = wd_err(p->err, EINVAL, "%s:%d: %s", p->file, line, m);
    free(m);
    return r;
}

static int fail_found(struct parser *p, const char *what)
{
    char d[24];
    describe(peek(p), d);
    return fail(p, p->line, "expected %s, found %s", what, d);
}

/* ---------- nodes ---------- */

static struct wd_toml_node *node_new(enum wd_toml_type t, int line, int depth)
{
    struct wd_toml_node *n = xzalloc(sizeof *n);
    n->type = t;
    n->line = line;
    n->depth = depth;
    return n;
}

static void node_free(struct wd_toml_node *n)
{
    if (n == NULL)
        return;
    if (n->type == WD_TOML_TABLE) {
        for (size_t i = 0; i < n->u.table.n; i++) {
            free(n->u.table.kv[i].key);
            node_free(n->u.table.kv[i].val);
        }
        free(n->u.table.kv);
        free(n->u.table.index);
    } else if (n->type == WD_TOML_ARRAY) {
        for (size_t i = 0; i < n->u.array.n; i++)
            node_free(n->u.array.v[i]);
        free(n->u.array.v);
    } else if (n->type == WD_TOML_STRING) {
        free(n->u.str.s);
    }
    free(n);
}

static uint64_t hash_key(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

enum { INDEX_MIN = 8 };

static void index_put(struct wd_toml_node *t, size_t i)
{
    const struct wd_toml_kv *kv = &t->u.table.kv[i];
    size_t mask = t->u.table.index_cap - 1;
    size_t h = (size_t)hash_key(kv->key, kv->key_len) & mask;
    while (t->u.table.index[h] != 0)
        h = (h + 1) & mask;
    t->u.table.index[h] = i + 1;
}

static struct wd_toml_kv *tab_find(const struct wd_toml_node *t, const char *k, size_t n)
{
    if (t->u.table.index == NULL) {
        for (size_t i = 0; i < t->u.table.n; i++) {
            struct wd_toml_kv *kv = &t->u.table.kv[i];
            if (kv->key_len == n && memcmp(kv->key, k, n) == 0)
                return kv;
        }
        return NULL;
    }
    size_t mask = t->u.table.index_cap - 1;
    for (size_t h = (size_t)hash_key(k, n) & mask; t->u.table.index[h] != 0; h = (h + 1) & mask) {
        struct wd_toml_kv *kv = &t->u.table.kv[t->u.table.index[h] - 1];
        if (kv->key_len == n && memcmp(kv->key, k, n) == 0)
            return kv;
    }
    return NULL;
}

/* Append key (copied) -> v to table t; the caller has checked the key is new. */
static struct wd_toml_kv *tab_add(struct wd_toml_node *t, const char *key, size_t klen, int line,
                                  struct wd_toml_node *v)
{
    t->u.table.kv = grow(t->u.table.kv, &t->u.table.cap, t->u.table.n + 1, sizeof *t->u.table.kv);
    size_t i = t->u.table.n++;
    struct wd_toml_kv *kv = &t->u.table.kv[i];
    kv->key = xmalloc(klen + 1);
    memcpy(kv->key, key, klen);
    kv->key[klen] = 0;
    kv->key_len = klen;
    kv->line = line;
    kv->val = v;
    size_t n = t->u.table.n;
    if (n < INDEX_MIN)
        return kv;
    if (t->u.table.index == NULL || n * 2 > t->u.table.index_cap) {
        size_t cap = 16;
        while (cap < n * 4)
            cap *= 2;
        free(t->u.table.index);
        t->u.table.index = xcalloc(cap, sizeof *t->u.table.index);
        t->u.table.index_cap = cap;
        for (size_t j = 0; j < n; j++)
            index_put(t, j);
    } else {
        index_put(t, i);
    }
    return kv;
}

static void arr_add(struct wd_toml_node *a, struct wd_toml_node *v)
{
    a->u.array.v = grow(a->u.array.v, &a->u.array.cap, a->u.array.n + 1, sizeof *a->u.array.v);
    a->u.array.v[a->u.array.n++] = v;
}

/* ---------- encoding helpers shared by errors, JSON and the emitter ---------- */

static void utf8_put(struct wd_buf *b, uint32_t cp)
{
    char o[4];
    size_t n;
    if (cp < 0x80) {
        o[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        o[0] = (char)(0xf0 | cp >> 18);
        o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    buf_add(b, o, n);
}

/* A TOML basic string (also valid JSON when json is set: JSON has no \e, same escapes here). */
static void quote_str(struct wd_buf *b, const char *s, size_t n)
{
    buf_ch(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            buf_str(b, "\\\"");
            break;
        case '\\':
            buf_str(b, "\\\\");
            break;
        case '\b':
            buf_str(b, "\\b");
            break;
        case '\t':
            buf_str(b, "\\t");
            break;
        case '\n':
            buf_str(b, "\\n");
            break;
        case '\f':
            buf_str(b, "\\f");
            break;
        case '\r':
            buf_str(b, "\\r");
            break;
        default:
            if (is_ctrl(c)) {
                char e[8];
                snprintf(e, sizeof e, "\\u%04x", c);
                buf_str(b, e);
            } else {
                buf_ch(b, (char)c);
            }
        }
    }
    buf_ch(b, '"');
}

static bool bare_key(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_bare((unsigned char)s[i]))
            return false;
    return true;
}

static void put_key(struct wd_buf *b, const char *s, size_t n)
{
    if (bare_key(s, n))
        buf_add(b, s, n);
    else
        quote_str(b, s, n);
}

/* "a.b" (first n parts of kp) for error messages; caller frees. */
static char *key_text(const struct keypath *kp, size_t n)
{
    struct wd_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_ch(&b, '.');
        put_key(&b, kp->v[i].s, kp->v[i].len);
    }
    return wd_buf_steal_str(&b);
}

static void keypath_free(struct keypath *kp)
{
    for (size_t i = 0; i < kp->n; i++)
        free(kp->v[i].s);
    free(kp->v);
    kp->v = NULL;
    kp->n = kp->cap = 0;
}

/* Shortest text that reads back as the same double, in fixed notation for exponents -4..15
 * (like Python's repr) and always recognizable as a TOML float. */
static void format_float(double d, char out[40])
{
    if (isnan(d)) {
        snprintf(out, 40, "nan");
        return;
    }
    if (isinf(d)) {
        snprintf(out, 40, "%s", d < 0 ? "-inf" : "inf");
        return;
    }
    int prec = 0;
    for (; prec < 17; prec++) {
        snprintf(out, 40, "%.*e", prec, d);
        if (strtod(out, NULL) == d)
            break;
    }
    const char *e = strchr(out, 'e');
    int exp = 0;
    bool neg = e[1] == '-';
    for (const char *q = e + 2; *q; q++)
        exp = exp * 10 + (*q - '0');
    if (neg)
        exp = -exp;
    if (exp >= -4 && exp < 16) {
        int dec = prec - exp;
        snprintf(out, 40, "%.*f", dec < 1 ? 1 : dec, d);
    }
}

static void format_dt(const struct wd_toml_node *n, struct wd_buf *b)
{
    const struct wd_toml_datetime *d = &n->u.dt;
    char tmp[64];
    if (n->type != WD_TOML_TIME_LOCAL) {
        snprintf(tmp, sizeof tmp, "%04d-%02d-%02d", d->year, d->month, d->day);
        buf_str(b, tmp);
    }
    if (n->type == WD_TOML_DATE_LOCAL)
        return;
    if (n->type != WD_TOML_TIME_LOCAL)
        buf_ch(b, 'T');
    snprintf(tmp, sizeof tmp, "%02d:%02d:%02d", d->hour, d->minute, d->second);
    buf_str(b, tmp);
    if (d->frac_digits > 0) {
        int v = d->nanos;
        for (int i = d->frac_digits; i < 9; i++)
            v /= 10;
        snprintf(tmp, sizeof tmp, ".%0*d", d->frac_digits, v);
        buf_str(b, tmp);
    }
    if (n->type == WD_TOML_DATETIME) {
        int off = d->offset_minutes;
        if (off == 0) {
            buf_ch(b, 'Z');
        } else {
            snprintf(tmp, sizeof tmp, "%c%02d:%02d", off < 0 ? '-' : '+', abs(off) / 60,
                     abs(off) % 60);
            buf_str(b, tmp);
        }
    }
}

/* ---------- lexical layer ---------- */

/* Validate UTF-8 (no overlongs, no surrogates, <= U+10FFFF). Returns the offset of the first
 * bad byte, or len. */
static size_t utf8_check(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            n = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            n = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            n = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return i;
        }
        if (n > len - i)
            return i;
        for (size_t k = 1; k < n; k++) {
            unsigned char cc = (unsigned char)s[i + k];
            if ((cc & 0xc0) != 0x80)
                return i;
            cp = cp << 6 | (cc & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return i;
        i += n;
    }
    return len;
}

static void skip_ws(struct parser *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t'))
        p->pos++;
}

static bool at_newline(const struct parser *p)
{
    return peek(p) == '\n' || (peek(p) == '\r' && peek_at(p, 1) == '\n');
}

static void eat_newline(struct parser *p)
{
    p->pos += peek(p) == '\r' ? 2 : 1;
    p->line++;
}

static int skip_comment(struct parser *p)
{
    if (peek(p) != '#')
        return 0;
    p->pos++;
    while (p->pos < p->len && !at_newline(p)) {
        int c = peek(p);
        if (is_ctrl(c) && c != '\t')
            return fail(p, p->line, "control character U+%04X in comment", (unsigned)c);
        p->pos++;
    }
    return 0;
}

/* After a key/value pair or header: whitespace, an optional comment, then newline or EOF. */
static int end_of_line(struct parser *p, const char *after)
{
    skip_ws(p);
    int r = skip_comment(p);
    if (r < 0)
        return r;
    if (p->pos >= p->len)
        return 0;
    if (at_newline(p)) {
        eat_newline(p);
        return 0;
    }
    char d[24];
    describe(peek(p), d);
    return fail(p, p->line, "expected end of line after %s, found %s", after, d);
}

/* Whitespace, comments and newlines (inside arrays). */
static int skip_ws_nl(struct parser *p)
{
    for (;;) {
        skip_ws(p);
        int r = skip_comment(p);
        if (r < 0)
            return r;
        if (!at_newline(p))
            return 0;
        eat_newline(p);
    }
}

/* ---------- strings ---------- */

static int hexval(int c)
{
    return c < 0 || c > 127 ? -1 : wd_hex_digit((char)c);
}

/* At a backslash inside a basic string. */
static int parse_escape(struct parser *p, struct wd_buf *out, bool multiline)
{
    int line = p->line;
    p->pos++;
    int c = peek(p);
    switch (c) {
    case 'b':
        buf_ch(out, '\b');
        break;
    case 't':
        buf_ch(out, '\t');
        break;
    case 'n':
        buf_ch(out, '\n');
        break;
    case 'f':
        buf_ch(out, '\f');
        break;
    case 'r':
        buf_ch(out, '\r');
        break;
    case '"':
        buf_ch(out, '"');
        break;
    case '\\':
        buf_ch(out, '\\');
        break;
    case 'u':
    case 'U': {
        size_t n = c == 'u' ? 4 : 8;
        uint32_t cp = 0;
        for (size_t i = 1; i <= n; i++) {
            int h = hexval(peek_at(p, i));
            if (h < 0)
                return fail(p, line, "\\%c escape needs %zu hex digits", c, n);
            cp = cp << 4 | (uint32_t)h;
        }
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return fail(p, line, "\\%c escape %.*s is not a Unicode scalar value", c, (int)n,
                        p->s + p->pos + 1);
        utf8_put(out, cp);
        p->pos += n;
        break;
    }
    case ' ':
    case '\t':
    case '\n':
    case '\r':
        if (!multiline)
            break;
        /* line-ending backslash: drop whitespace and newlines up to the next text */
        skip_ws(p);
        if (!at_newline(p))
            return fail(p, line, "a '\\' followed by whitespace must end the line");
        for (;;) {
            skip_ws(p);
            if (!at_newline(p))
                return 0;
            eat_newline(p);
        }
    default:
        break;
    }
    if (c <= 0 || !strchr("btnfr\"\\uU", c)) {
        char d[24];
        describe(c, d);
        return fail(p, line, "invalid escape sequence: backslash followed by %s", d);
    }
    p->pos++;
    return 0;
}

/* Any string at p->pos (a quote). Appends the content to out. */
static int parse_string(struct parser *p, struct wd_buf *out, bool allow_multiline)
{
    int start_line = p->line;
    char q = p->s[p->pos];
    bool literal = q == '\'';
    bool ml = peek_at(p, 1) == q && peek_at(p, 2) == q;
    if (ml && !allow_multiline)
        return fail(p, p->line, "a multi-line string cannot be a key");
    p->pos += ml ? 3 : 1;
    if (ml && at_newline(p))
        eat_newline(p); /* a newline right after the opening quotes is trimmed */
    for (;;) {
        int c = peek(p);
        if (c < 0)
            return fail(p, start_line, "unterminated string (no closing %s)",
                        ml ? (literal ? "'''" : "\"\"\"") : (literal ? "'" : "\""));
        if (c == q) {
            if (!ml) {
                p->pos++;
                return 0;
            }
            size_t k = 0;
            while (peek_at(p, k) == q)
                k++;
            if (k >= 3) {
                if (k > 5)
                    return fail(p, p->line, "too many quotes at the end of a multi-line string");
                buf_add(out, p->s + p->pos, k - 3);
                p->pos += k;
                return 0;
            }
            buf_add(out, p->s + p->pos, k);
            p->pos += k;
            continue;
        }
        if (c == '\\' && !literal) {
            int r = parse_escape(p, out, ml);
            if (r < 0)
                return r;
            continue;
        }
        if (at_newline(p)) {
            if (!ml)
                return fail(p, p->line, "unterminated string (strings end on the same line; use "
                                        "\"\"\" for multi-line strings)");
            buf_ch(out, '\n');
            eat_newline(p);
            continue;
        }
        if (is_ctrl(c) && c != '\t')
            return fail(p, p->line, "control character U+%04X in string; use an escape",
                        (unsigned)c);
        p->pos++;
        buf_ch(out, (char)c);
    }
}

/* ---------- keys ---------- */

static int parse_key(struct parser *p, struct keypath *kp)
{
    kp->line = p->line;
    for (;;) {
        if (kp->n > WD_TOML_MAX_DEPTH)
            return fail(p, p->line, "key has too many parts (limit %d)", WD_TOML_MAX_DEPTH);
        struct wd_buf b = {0};
        int c = peek(p);
        if (c == '"' || c == '\'') {
            int r = parse_string(p, &b, false);
            if (r < 0) {
                wd_buf_free(&b);
                return r;
            }
        } else {
            size_t st = p->pos;
            while (p->pos < p->len && is_bare((unsigned char)p->s[p->pos]))
                p->pos++;
            if (p->pos == st)
                return fail_found(p, "a key");
            buf_add(&b, p->s + st, p->pos - st);
        }
        kp->v = grow(kp->v, &kp->cap, kp->n + 1, sizeof *kp->v);
        kp->v[kp->n].len = b.len;
        kp->v[kp->n].s = wd_buf_steal_str(&b);
        kp->n++;
        skip_ws(p);
        if (peek(p) != '.')
            return 0;
        p->pos++;
        skip_ws(p);
    }
}

/* ---------- numbers, dates, times ---------- */

static int digits_at(const struct parser *p, size_t off, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        int c = peek_at(p, off + i);
        if (!is_digit(c))
            return -1;
        v = v * 10 + (c - '0');
    }
    return v;
}

/* End of a run of digits (of base) with single underscores between digits, starting at i,
 * which must be a digit; returns SIZE_MAX if malformed. */
static size_t digit_run(const char *t, size_t i, size_t n, int base)
{
    if (i >= n || hexval((unsigned char)t[i]) < 0 || hexval((unsigned char)t[i]) >= base)
        return SIZE_MAX;
    while (i < n) {
        int v = hexval((unsigned char)t[i]);
        if (v >= 0 && v < base) {
            i++;
        } else if (t[i] == '_') {
            if (i + 1 >= n || hexval((unsigned char)t[i + 1]) < 0 ||
                hexval((unsigned char)t[i + 1]) >= base)
                return SIZE_MAX;
            i++;
        } else {
            break;
        }
    }
    return i;
}

static int bad_number(struct parser *p, int line, const char *t, size_t n)
{
    return fail(p, line, "invalid number '%.*s'", (int)(n < 60 ? n : 60), t);
}

static int parse_number(struct parser *p, struct wd_toml_node **out)
{
    int line = p->line;
    size_t st = p->pos;
    while (p->pos < p->len &&
           (is_bare((unsigned char)p->s[p->pos]) || p->s[p->pos] == '+' || p->s[p->pos] == '.'))
        p->pos++;
    const char *t = p->s + st;
    size_t n = p->pos - st;
    if (n == 0)
        return fail_found(p, "a value");
    size_t i = (t[0] == '+' || t[0] == '-') ? 1 : 0;
    bool neg = t[0] == '-';
    if (n - i == 3 && (memcmp(t + i, "inf", 3) == 0 || memcmp(t + i, "nan", 3) == 0)) {
        struct wd_toml_node *v = node_new(WD_TOML_FLOAT, line, 0);
        v->u.f = t[i] == 'i' ? (neg ? -INFINITY : INFINITY) : (neg ? -NAN : NAN);
        *out = v;
        return 0;
    }
    int base = 10;
    if (n > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'o' || t[1] == 'b')) {
        base = t[1] == 'x' ? 16 : t[1] == 'o' ? 8 : 2;
        i = 2;
    }
    bool is_float = false;
    size_t e = digit_run(t, i, n, base);
    if (e == SIZE_MAX)
        return bad_number(p, line, t, n);
    if (base == 10) {
        if (t[i] == '0' && e > i + 1)
            return fail(p, line, "leading zeros are not allowed in '%.*s'", (int)n, t);
        if (e < n && t[e] == '.') {
            e = digit_run(t, e + 1, n, 10);
            if (e == SIZE_MAX)
                return bad_number(p, line, t, n);
            is_float = true;
        }
        if (e < n && (t[e] == 'e' || t[e] == 'E')) {
            e++;
            if (e < n && (t[e] == '+' || t[e] == '-'))
                e++;
            e = digit_run(t, e, n, 10);
            if (e == SIZE_MAX)
                return bad_number(p, line, t, n);
            is_float = true;
        }
    }
    if (e != n)
        return bad_number(p, line, t, n);

    char tmp[128];
    struct wd_buf clean = {0};
    for (size_t k = 0; k < n; k++)
        if (t[k] != '_')
            buf_ch(&clean, t[k]);
    if (is_float) {
        struct wd_toml_node *v = node_new(WD_TOML_FLOAT, line, 0);
        v->u.f = strtod((char *)clean.data, NULL);
        wd_buf_free(&clean);
        *out = v;
        return 0;
    }
    uint64_t mag = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    bool over = false;
    for (size_t k = base == 10 ? (size_t)(clean.data[0] == '+' || clean.data[0] == '-') : 2;
         k < clean.len; k++) {
        uint64_t d = (uint64_t)hexval(clean.data[k]);
        if (mag > (lim - d) / (uint64_t)base)
            over = true;
        else
            mag = mag * (uint64_t)base + d;
    }
    snprintf(tmp, sizeof tmp, "%.*s", (int)(n < 60 ? n : 60), t);
    wd_buf_free(&clean);
    if (over)
        return fail(p, line, "integer %s%s does not fit in 64 bits", tmp, n < 60 ? "" : "...");
    struct wd_toml_node *v = node_new(WD_TOML_INTEGER, line, 0);
    v->u.i = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    *out = v;
    return 0;
}

static bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/* HH:MM:SS[.frac] at p->pos. */
static int parse_time(struct parser *p, struct wd_toml_datetime *d, int line)
{
    int h = digits_at(p, 0, 2), m = digits_at(p, 3, 2), s = digits_at(p, 6, 2);
    if (h < 0 || m < 0 || s < 0 || peek_at(p, 2) != ':' || peek_at(p, 5) != ':')
        return fail(p, line, "invalid time: expected HH:MM:SS");
    if (h > 23 || m > 59 || s > 59)
        return fail(p, line, "invalid time %02d:%02d:%02d: out of range", h, m, s);
    d->hour = h, d->minute = m, d->second = s;
    p->pos += 8;
    if (peek(p) == '.') {
        p->pos++;
        if (!is_digit(peek(p)))
            return fail(p, line, "invalid time: expected digits after '.'");
        int nd = 0, ns = 0;
        while (is_digit(peek(p))) {
            if (nd < 9) {
                ns = ns * 10 + (peek(p) - '0');
                nd++;
            }
            p->pos++;
        }
        d->frac_digits = nd;
        for (int k = nd; k < 9; k++)
            ns *= 10;
        d->nanos = ns;
    }
    return 0;
}

static int parse_datetime(struct parser *p, struct wd_toml_node **out)
{
    int line = p->line;
    struct wd_toml_datetime d = {0};
    enum wd_toml_type type;
    if (peek_at(p, 2) == ':') {
        int r = parse_time(p, &d, line);
        if (r < 0)
            return r;
        type = WD_TOML_TIME_LOCAL;
    } else {
        int y = digits_at(p, 0, 4), mo = digits_at(p, 5, 2), da = digits_at(p, 8, 2);
        if (y < 0 || mo < 0 || da < 0 || peek_at(p, 7) != '-')
            return fail(p, line, "invalid date: expected YYYY-MM-DD");
        static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        if (mo < 1 || mo > 12 || da < 1 ||
            da > dim[mo > 0 && mo <= 12 ? mo - 1 : 0] + (mo == 2 && leap(y)))
            return fail(p, line, "invalid date %04d-%02d-%02d: %s out of range", y, mo, da,
                        mo < 1 || mo > 12 ? "month" : "day");
        d.year = y, d.month = mo, d.day = da;
        p->pos += 10;
        type = WD_TOML_DATE_LOCAL;
        int c = peek(p);
        if (c == 'T' || c == 't' ||
            (c == ' ' && is_digit(peek_at(p, 1)) && is_digit(peek_at(p, 2)) &&
             peek_at(p, 3) == ':')) {
            p->pos++;
            int r = parse_time(p, &d, line);
            if (r < 0)
                return r;
            type = WD_TOML_DATETIME_LOCAL;
            c = peek(p);
            if (c == 'Z' || c == 'z') {
                p->pos++;
                type = WD_TOML_DATETIME;
            } else if (c == '+' || c == '-') {
                int oh = digits_at(p, 1, 2), om = digits_at(p, 4, 2);
                if (oh < 0 || om < 0 || peek_at(p, 3) != ':')
                    return fail(p, line, "invalid date-time offset: expected +HH:MM or -HH:MM");
                if (oh > 23 || om > 59)
                    return fail(p, line, "invalid date-time offset: out of range");
                d.offset_minutes = (c == '-' ? -1 : 1) * (oh * 60 + om);
                p->pos += 6;
                type = WD_TOML_DATETIME;
            }
        }
    }
    struct wd_toml_node *v = node_new(type, line, 0);
    v->u.dt = d;
    *out = v;
    return 0;
}

static const char *a_type(const struct wd_toml_node *n);

/* ---------- values ---------- */

static int parse_value(struct parser *p, int depth, struct wd_toml_node **out);
static int insert_kv(struct parser *p, struct wd_toml_node *t, const struct keypath *kp,
                     struct wd_toml_node *v);

static int too_deep(struct parser *p, int line)
{
    return fail(p, line, "nesting too deep (limit %d levels)", WD_TOML_MAX_DEPTH);
}

static int array_items(struct parser *p, int depth, int line, struct wd_toml_node *a)
{
    for (;;) {
        int r = skip_ws_nl(p);
        if (r < 0)
            return r;
        if (peek(p) == ']') {
            p->pos++;
            return 0;
        }
        struct wd_toml_node *v = NULL;
        r = parse_value(p, depth + 1, &v);
        if (r < 0)
            return r;
        arr_add(a, v);
        r = skip_ws_nl(p);
        if (r < 0)
            return r;
        if (peek(p) == ',') {
            p->pos++;
            continue;
        }
        if (peek(p) == ']') {
            p->pos++;
            return 0;
        }
        if (p->pos >= p->len)
            return fail(p, line, "unterminated array (no closing ']')");
        return fail_found(p, "',' or ']' in array");
    }
}

static int parse_array(struct parser *p, int depth, struct wd_toml_node **out)
{
    int line = p->line;
    if (depth > WD_TOML_MAX_DEPTH)
        return too_deep(p, line);
    struct wd_toml_node *a = node_new(WD_TOML_ARRAY, line, depth);
    p->pos++;
    int r = array_items(p, depth, line, a);
    if (r < 0) {
        node_free(a);
        return r;
    }
    *out = a;
    return 0;
}

/* One "key = value" of an inline table, and the separator after it. 1 = more, 0 = closed. */
static int inline_entry(struct parser *p, int depth, struct wd_toml_node *t)
{
    struct keypath kp = {0};
    struct wd_toml_node *v = NULL;
    skip_ws(p);
    if (at_newline(p) || peek(p) < 0)
        return fail(p, p->line, "inline table must close with '}' on the same line");
    int r = parse_key(p, &kp);
    if (r == 0 && peek(p) != '=')
        r = fail_found(p, "'=' after key");
    if (r == 0) {
        p->pos++;
        skip_ws(p);
        r = parse_value(p, depth + (int)kp.n, &v);
    }
    if (r == 0)
        r = insert_kv(p, t, &kp, v);
    keypath_free(&kp);
    if (r < 0)
        return r;
    skip_ws(p);
    if (peek(p) == ',') {
        p->pos++;
        return 1;
    }
    if (peek(p) == '}') {
        p->pos++;
        return 0;
    }
    if (at_newline(p) || peek(p) < 0)
        return fail(p, p->line, "inline table must close with '}' on the same line");
    return fail_found(p, "',' or '}' in inline table");
}

static int parse_inline_table(struct parser *p, int depth, struct wd_toml_node **out)
{
    int line = p->line;
    if (depth > WD_TOML_MAX_DEPTH)
        return too_deep(p, line);
    struct wd_toml_node *t = node_new(WD_TOML_TABLE, line, depth);
    t->flags = F_EXPLICIT;
    p->pos++;
    skip_ws(p);
    int r = 0;
    if (peek(p) == '}')
        p->pos++;
    else
        while ((r = inline_entry(p, depth, t)) > 0)
            ;
    if (r < 0) {
        node_free(t);
        return r;
    }
    t->flags |= F_INLINE;
    *out = t;
    return 0;
}

static int parse_value(struct parser *p, int depth, struct wd_toml_node **out)
{
    int line = p->line;
    int c = peek(p);
    if (c == '"' || c == '\'') {
        struct wd_buf b = {0};
        int r = parse_string(p, &b, true);
        if (r < 0) {
            wd_buf_free(&b);
            return r;
        }
        struct wd_toml_node *v = node_new(WD_TOML_STRING, line, 0);
        v->u.str.len = b.len;
        v->u.str.s = wd_buf_steal_str(&b);
        *out = v;
        return 0;
    }
    if (c == '[')
        return parse_array(p, depth, out);
    if (c == '{')
        return parse_inline_table(p, depth, out);
    if (c == 't' || c == 'f') {
        const char *w = c == 't' ? "true" : "false";
        size_t n = strlen(w);
        if (p->len - p->pos >= n && memcmp(p->s + p->pos, w, n) == 0) {
            p->pos += n;
            struct wd_toml_node *v = node_new(WD_TOML_BOOL, line, 0);
            v->u.b = c == 't';
            *out = v;
            return 0;
        }
    }
    if (is_digit(c) && is_digit(peek_at(p, 1)) &&
        (peek_at(p, 2) == ':' ||
         (is_digit(peek_at(p, 2)) && is_digit(peek_at(p, 3)) && peek_at(p, 4) == '-')))
        return parse_datetime(p, out);
    if (is_digit(c) || c == '+' || c == '-' || c == 'i' || c == 'n')
        return parse_number(p, out);
    if (c == 't' || c == 'f' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
        size_t st = p->pos, e = st;
        while (e < p->len && e - st < 40 && is_bare((unsigned char)p->s[e]))
            e++;
        return fail(p, line, "invalid value '%.*s' (strings must be quoted)", (int)(e - st),
                    p->s + st);
    }
    return fail_found(p, "a value");
}

/* ---------- tables ---------- */

/* Insert v under the dotted key kp into table t; takes ownership of v (freed on error). */
static int insert_kv(struct parser *p, struct wd_toml_node *t, const struct keypath *kp,
                     struct wd_toml_node *v)
{
    int line = kp->line;
    if (t->depth + (int)kp->n - 1 > WD_TOML_MAX_DEPTH) {
        node_free(v);
        return too_deep(p, line);
    }
    for (size_t i = 0; i + 1 < kp->n; i++) {
        struct wd_toml_kv *kv = tab_find(t, kp->v[i].s, kp->v[i].len);
        if (kv == NULL) {
            struct wd_toml_node *n = node_new(WD_TOML_TABLE, line, t->depth + 1);
            n->flags = F_DOTTED;
            tab_add(t, kp->v[i].s, kp->v[i].len, line, n);
            t = n;
            continue;
        }
        struct wd_toml_node *x = kv->val;
        if (x->type != WD_TOML_TABLE || (x->flags & (F_INLINE | F_EXPLICIT))) {
            autofree char *k = key_text(kp, i + 1);
            int r;
            if (x->type != WD_TOML_TABLE)
                r = fail(p, line, "cannot use dotted key: %s is already %s (line %d)", k,
                         a_type(x), kv->line);
            else if (x->flags & F_INLINE)
                r = fail(p, line,
                         "cannot add keys to inline table %s (line %d): inline tables are "
                         "immutable",
                         k, x->line);
            else
                r = fail(p, line,
                         "cannot use dotted key to add to table [%s]: it is defined by a header "
                         "on line %d",
                         k, x->line);
            node_free(v);
            return r;
        }
        x->flags |= F_DOTTED;
        t = x;
    }
    const struct keypart *last = &kp->v[kp->n - 1];
    struct wd_toml_kv *kv = tab_find(t, last->s, last->len);
    if (kv != NULL) {
        autofree char *k = key_text(kp, kp->n);
        node_free(v);
        return fail(p, line, "duplicate key %s (first defined on line %d)", k, kv->line);
    }
    tab_add(t, last->s, last->len, line, v);
    return 0;
}

/* Find or create the table a [header] or [[header]] names and make it current. */
static int define_table(struct parser *p, const struct keypath *kp, bool aot, int line)
{
    struct wd_toml_node *t = p->root;
    for (size_t i = 0; i < kp->n; i++) {
        bool last = i + 1 == kp->n;
        struct wd_toml_kv *kv = tab_find(t, kp->v[i].s, kp->v[i].len);
        if (t->depth + 1 + (aot && last) > WD_TOML_MAX_DEPTH)
            return too_deep(p, line);
        if (kv == NULL) {
            struct wd_toml_node *n = node_new(WD_TOML_TABLE, line, t->depth + 1);
            n->flags = last ? F_EXPLICIT : F_IMPLICIT;
            if (last && aot) {
                struct wd_toml_node *a = node_new(WD_TOML_ARRAY, line, t->depth + 1);
                a->flags = F_AOT;
                n->depth++;
                arr_add(a, n);
                tab_add(t, kp->v[i].s, kp->v[i].len, line, a);
            } else {
                tab_add(t, kp->v[i].s, kp->v[i].len, line, n);
            }
            t = n;
            continue;
        }
        struct wd_toml_node *x = kv->val;
        autofree char *k = NULL; /* the key so far, only for messages */
        if (last && aot) {
            if (x->type != WD_TOML_ARRAY || !(x->flags & F_AOT)) {
                k = key_text(kp, i + 1);
                return fail(p, line,
                            "cannot define [[%s]]: %s is already %s (line %d), not an array of "
                            "tables",
                            k, k, a_type(x), kv->line);
            }
            struct wd_toml_node *n = node_new(WD_TOML_TABLE, line, x->depth + 1);
            n->flags = F_EXPLICIT;
            arr_add(x, n);
            t = n;
            continue;
        }
        if (x->type == WD_TOML_ARRAY && (x->flags & F_AOT)) {
            if (last) {
                k = key_text(kp, i + 1);
                return fail(p, line,
                            "cannot define table [%s]: it is an array of tables (line %d)", k,
                            kv->line);
            }
            t = x->u.array.v[x->u.array.n - 1];
            continue;
        }
        if (x->type != WD_TOML_TABLE) {
            k = key_text(kp, i + 1);
            return fail(p, line, "cannot define table [%s]: %s is already %s (line %d)", k, k,
                        a_type(x), kv->line);
        }
        if (x->flags & F_INLINE) {
            k = key_text(kp, i + 1);
            return fail(p, line,
                        "cannot extend inline table %s (line %d) with a header: inline tables "
                        "are immutable",
                        k, x->line);
        }
        if (last) {
            if (x->flags & (F_EXPLICIT | F_DOTTED)) {
                k = key_text(kp, i + 1);
                if (x->flags & F_EXPLICIT)
                    return fail(p, line, "table [%s] is defined twice (first on line %d)", k,
                                x->line);
                return fail(p, line,
                            "cannot define table [%s]: it was already defined with dotted keys "
                            "(line %d)",
                            k, x->line);
            }
            x->flags = (x->flags & ~(unsigned)F_IMPLICIT) | F_EXPLICIT;
            x->line = line;
        }
        t = x;
    }
    p->cur = t;
    return 0;
}

static int parse_header(struct parser *p)
{
    int line = p->line;
    struct keypath kp = {0};
    p->pos++;
    bool aot = peek(p) == '[';
    if (aot)
        p->pos++;
    skip_ws(p);
    int r = parse_key(p, &kp);
    if (r == 0 && peek(p) != ']')
        r = fail_found(p, aot ? "']]' after table name" : "']' after table name");
    if (r == 0) {
        p->pos++;
        if (aot && peek(p) != ']')
            r = fail_found(p, "']]' after table name");
        else if (aot)
            p->pos++;
    }
    if (r == 0)
        r = end_of_line(p, "table header");
    if (r == 0)
        r = define_table(p, &kp, aot, line);
    keypath_free(&kp);
    return r;
}

static int parse_keyval(struct parser *p)
{
    struct keypath kp = {0};
    struct wd_toml_node *v = NULL;
    int r = parse_key(p, &kp);
    if (r == 0 && peek(p) != '=')
        r = fail_found(p, "'=' after key");
    if (r == 0) {
        p->pos++;
        skip_ws(p);
        r = parse_value(p, p->cur->depth + (int)kp.n, &v);
    }
    if (r == 0)
        r = insert_kv(p, p->cur, &kp, v);
    if (r == 0)
        r = end_of_line(p, "value");
    keypath_free(&kp);
    return r;
}

int wd_toml_parse(const char *text, size_t len, const char *filename, struct wd_toml **out,
                  struct wd_error **err)
{
    if (filename == NULL)
        filename = "<toml>";
    if (len > WD_TOML_MAX_FILE)
        return wd_err(err, EMSGSIZE, "%s: file is %zu bytes, larger than the %u MiB limit",
                      filename, len, WD_TOML_MAX_FILE >> 20);
    struct parser p = {.s = text, .len = len, .line = 1, .file = filename, .err = err};
    size_t bad = utf8_check(text, len);
    if (bad < len) {
        int line = 1;
        for (size_t i = 0; i < bad; i++)
            line += text[i] == '\n';
        return fail(&p, line, "invalid UTF-8 (byte 0x%02x at offset %zu)",
                    (unsigned)(unsigned char)text[bad], bad);
    }
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        p.pos = 3; /* byte order mark */
    p.root = node_new(WD_TOML_TABLE, 1, 0);
    p.root->flags = F_EXPLICIT;
    p.cur = p.root;
    int r = 0;
    for (;;) {
        skip_ws(&p);
        if (p.pos >= p.len)
            break;
        int c = peek(&p);
        if (c == '#' || at_newline(&p)) {
            r = end_of_line(&p, "comment");
        } else if (c == '[') {
            r = parse_header(&p);
        } else if (c == '\r') {
            r = fail(&p, p.line, "carriage return not followed by a newline");
        } else if (c == '=') {
            r = fail(&p, p.line, "expected a key before '='");
        } else {
            r = parse_keyval(&p);
        }
        if (r < 0)
            break;
    }
    if (r < 0) {
        node_free(p.root);
        return r;
    }
    struct wd_toml *t = xzalloc(sizeof *t);
    t->root = p.root;
    *out = t;
    return 0;
}

void wd_toml_free(struct wd_toml *t)
{
    if (t == NULL)
        return;
    node_free(t->root);
    free(t);
}

/* ---------- accessors ---------- */

const struct wd_toml_node *wd_toml_root(const struct wd_toml *t) { return t ? t->root : NULL; }

const struct wd_toml_kv *wd_toml_find(const struct wd_toml_node *table, const char *key)
{
    if (table == NULL || table->type != WD_TOML_TABLE || key == NULL)
        return NULL;
    return tab_find(table, key, strlen(key));
}

const struct wd_toml_node *wd_toml_get(const struct wd_toml_node *table, const char *key)
{
    const struct wd_toml_kv *kv = wd_toml_find(table, key);
    return kv ? kv->val : NULL;
}

size_t wd_toml_len(const struct wd_toml_node *n)
{
    if (n == NULL)
        return 0;
    if (n->type == WD_TOML_TABLE)
        return n->u.table.n;
    if (n->type == WD_TOML_ARRAY)
        return n->u.array.n;
    return 0;
}

const struct wd_toml_kv *wd_toml_table_at(const struct wd_toml_node *table, size_t i)
{
    if (table == NULL || table->type != WD_TOML_TABLE || i >= table->u.table.n)
        return NULL;
    return &table->u.table.kv[i];
}

const struct wd_toml_node *wd_toml_array_at(const struct wd_toml_node *array, size_t i)
{
    if (array == NULL || array->type != WD_TOML_ARRAY || i >= array->u.array.n)
        return NULL;
    return array->u.array.v[i];
}

/* "an integer", "a string", ... for messages */
static const char *a_type(const struct wd_toml_node *n)
{
    switch (n->type) {
    case WD_TOML_ARRAY:
        return n->flags & F_AOT ? "an array of tables" : "a static array";
    case WD_TOML_INTEGER:
        return "an integer";
    case WD_TOML_DATETIME:
        return "an offset date-time";
    default:
        break;
    }
    return n->type == WD_TOML_TABLE ? "a table" : n->type == WD_TOML_STRING ? "a string"
           : n->type == WD_TOML_FLOAT                                   ? "a float"
           : n->type == WD_TOML_BOOL                                    ? "a boolean"
           : n->type == WD_TOML_DATETIME_LOCAL                          ? "a local date-time"
           : n->type == WD_TOML_DATE_LOCAL                              ? "a local date"
                                                                        : "a local time";
}

const char *wd_toml_type_name(enum wd_toml_type t)
{
    switch (t) {
    case WD_TOML_TABLE:
        return "table";
    case WD_TOML_ARRAY:
        return "array";
    case WD_TOML_STRING:
        return "string";
    case WD_TOML_INTEGER:
        return "integer";
    case WD_TOML_FLOAT:
        return "float";
    case WD_TOML_BOOL:
        return "boolean";
    case WD_TOML_DATETIME:
        return "offset date-time";
    case WD_TOML_DATETIME_LOCAL:
        return "local date-time";
    case WD_TOML_DATE_LOCAL:
        return "local date";
    case WD_TOML_TIME_LOCAL:
        return "local time";
    }
    return "unknown";
}

/* ---------- JSON ---------- */

static void scalar_text(const struct wd_toml_node *n, struct wd_buf *b)
{
    char tmp[40];
    switch (n->type) {
    case WD_TOML_STRING:
        quote_str(b, n->u.str.s, n->u.str.len);
        break;
    case WD_TOML_INTEGER:
        snprintf(tmp, sizeof tmp, "%" PRId64, n->u.i);
        buf_str(b, tmp);
        break;
    case WD_TOML_FLOAT:
        format_float(n->u.f, tmp);
        buf_str(b, tmp);
        break;
    case WD_TOML_BOOL:
        buf_str(b, n->u.b ? "true" : "false");
        break;
    case WD_TOML_DATETIME:
    case WD_TOML_DATETIME_LOCAL:
    case WD_TOML_DATE_LOCAL:
    case WD_TOML_TIME_LOCAL:
        format_dt(n, b);
        break;
    case WD_TOML_TABLE:
    case WD_TOML_ARRAY:
        break;
    }
}

static void json_value(const struct wd_toml_node *n, struct wd_buf *b)
{
    static const char *const names[] = {
        [WD_TOML_STRING] = "string",         [WD_TOML_INTEGER] = "integer",
        [WD_TOML_FLOAT] = "float",           [WD_TOML_BOOL] = "bool",
        [WD_TOML_DATETIME] = "datetime",     [WD_TOML_DATETIME_LOCAL] = "datetime-local",
        [WD_TOML_DATE_LOCAL] = "date-local", [WD_TOML_TIME_LOCAL] = "time-local",
    };
    if (n->type == WD_TOML_TABLE) {
        buf_ch(b, '{');
        for (size_t i = 0; i < n->u.table.n; i++) {
            if (i)
                buf_ch(b, ',');
            quote_str(b, n->u.table.kv[i].key, n->u.table.kv[i].key_len);
            buf_ch(b, ':');
            json_value(n->u.table.kv[i].val, b);
        }
        buf_ch(b, '}');
        return;
    }
    if (n->type == WD_TOML_ARRAY) {
        buf_ch(b, '[');
        for (size_t i = 0; i < n->u.array.n; i++) {
            if (i)
                buf_ch(b, ',');
            json_value(n->u.array.v[i], b);
        }
        buf_ch(b, ']');
        return;
    }
    buf_str(b, "{\"type\":\"");
    buf_str(b, names[n->type]);
    buf_str(b, "\",\"value\":");
    if (n->type == WD_TOML_STRING) {
        scalar_text(n, b);
    } else {
        buf_ch(b, '"');
        scalar_text(n, b);
        buf_ch(b, '"');
    }
    buf_ch(b, '}');
}

char *wd_toml_to_json(const struct wd_toml_node *n)
{
    struct wd_buf b = {0};
    if (n != NULL)
        json_value(n, &b);
    return wd_buf_steal_str(&b);
}

/* ---------- TOML emitter ---------- */

static bool is_aot(const struct wd_toml_node *n)
{
    if (n->type != WD_TOML_ARRAY || n->u.array.n == 0)
        return false;
    for (size_t i = 0; i < n->u.array.n; i++)
        if (n->u.array.v[i]->type != WD_TOML_TABLE)
            return false;
    return true;
}

static bool is_section(const struct wd_toml_node *n) { return n->type == WD_TOML_TABLE || is_aot(n); }

static void emit_inline(const struct wd_toml_node *n, struct wd_buf *b)
{
    if (n->type == WD_TOML_TABLE) {
        buf_ch(b, '{');
        for (size_t i = 0; i < n->u.table.n; i++) {
            buf_str(b, i ? ", " : "");
            put_key(b, n->u.table.kv[i].key, n->u.table.kv[i].key_len);
            buf_str(b, " = ");
            emit_inline(n->u.table.kv[i].val, b);
        }
        buf_ch(b, '}');
    } else if (n->type == WD_TOML_ARRAY) {
        buf_ch(b, '[');
        for (size_t i = 0; i < n->u.array.n; i++) {
            buf_str(b, i ? ", " : "");
            emit_inline(n->u.array.v[i], b);
        }
        buf_ch(b, ']');
    } else {
        scalar_text(n, b);
    }
}

struct path {
    const struct wd_toml_kv **v;
    size_t n, cap;
};

static void indent(struct wd_buf *b, size_t levels)
{
    for (size_t i = 0; i < levels; i++)
        buf_str(b, "  ");
}

static void put_path(struct wd_buf *b, const struct path *path)
{
    for (size_t i = 0; i < path->n; i++) {
        if (i)
            buf_ch(b, '.');
        put_key(b, path->v[i]->key, path->v[i]->key_len);
    }
}

static void emit_body(const struct wd_toml_node *t, struct path *path, struct wd_buf *b);

static void emit_header(struct wd_buf *b, const struct path *path, bool aot)
{
    if (b->len)
        buf_ch(b, '\n');
    indent(b, path->n - 1);
    buf_str(b, aot ? "[[" : "[");
    put_path(b, path);
    buf_str(b, aot ? "]]\n" : "]\n");
}

static void emit_body(const struct wd_toml_node *t, struct path *path, struct wd_buf *b)
{
    for (size_t i = 0; i < t->u.table.n; i++) {
        const struct wd_toml_kv *kv = &t->u.table.kv[i];
        if (is_section(kv->val))
            continue;
        indent(b, path->n);
        put_key(b, kv->key, kv->key_len);
        buf_str(b, " = ");
        emit_inline(kv->val, b);
        buf_ch(b, '\n');
    }
    for (size_t i = 0; i < t->u.table.n; i++) {
        const struct wd_toml_kv *kv = &t->u.table.kv[i];
        const struct wd_toml_node *v = kv->val;
        if (!is_section(v))
            continue;
        path->v = grow(path->v, &path->cap, path->n + 1, sizeof *path->v);
        path->v[path->n++] = kv;
        if (v->type == WD_TOML_TABLE) {
            bool plain = v->u.table.n == 0;
            for (size_t j = 0; j < v->u.table.n && !plain; j++)
                plain = !is_section(v->u.table.kv[j].val);
            if (plain)
                emit_header(b, path, false);
            emit_body(v, path, b);
        } else {
            for (size_t j = 0; j < v->u.array.n; j++) {
                emit_header(b, path, true);
                emit_body(v->u.array.v[j], path, b);
            }
        }
        path->n--;
    }
}

char *wd_toml_emit_table(const struct wd_toml_node *table)
{
    struct wd_buf b = {0};
    if (table == NULL || table->type != WD_TOML_TABLE)
        return wd_buf_steal_str(&b);
    struct path path = {0};
    emit_body(table, &path, &b);
    free(path.v);
    return wd_buf_steal_str(&b);
}
