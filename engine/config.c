/* engine/config.c - weaver.toml (protocol §6). The application section and our [docker]
 * section are read through small key tables (struct field), so adding a key is one line plus
 * one apply function. Keys match exactly first, then case-insensitively (BurntSushi's rule). */
#include "engine/config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "engine/error.h"
#include "engine/toml.h"
#include "engine/util.h"

/* ---------- paths ---------- */

/* Lexically clean an absolute path: collapse "//", drop ".", resolve "..". Caller frees. */
static char *path_clean(const char *abs)
{
    size_t n = strlen(abs);
    char *out = xmalloc(n + 2);
    size_t o = 0;
    const char *p = abs;
    while (*p) {
        while (*p == '/')
            p++;
        const char *e = p;
        while (*e && *e != '/')
            e++;
        size_t len = (size_t)(e - p);
        if (len == 0 || (len == 1 && p[0] == '.')) {
            /* skip */
        } else if (len == 2 && p[0] == '.' && p[1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--; /* the slash before the dropped element */
        } else {
            out[o++] = '/';
            memcpy(out + o, p, len);
            o += len;
        }
        p = e;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = 0;
    return out;
}

/* path made absolute against dir (or the current directory when dir is NULL), cleaned. */
static char *path_abs(const char *dir, const char *path)
{
    if (path[0] == '/')
        return path_clean(path);
    autofree char *cwd = NULL;
    if (dir == NULL) {
        cwd = getcwd(NULL, 0);
        if (cwd == NULL)
            cwd = xstrdup("/");
        dir = cwd;
    }
    autofree char *joined = xasprintf("%s/%s", dir, path);
    return path_clean(joined);
}

static char *path_dir(const char *abs)
{
    const char *s = strrchr(abs, '/');
    if (s == NULL || s == abs)
        return xstrdup("/");
    return xstrndup(abs, (size_t)(s - abs));
}

static const char *path_base(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* ---------- quoting user text in messages (errors are one line) ---------- */

/* s as a double-quoted string with control characters escaped, cut after 200 bytes. */
static char *qs(const char *s)
{
    struct wd_buf b = {0};
    wd_buf_append(&b, "\"", 1);
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++) {
        if (n == 200) {
            wd_buf_append(&b, "...", 3);
            break;
        }
        if (*p == '"' || *p == '\\')
            wd_buf_printf(&b, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            wd_buf_printf(&b, "\\u%04x", *p);
        else
            wd_buf_append(&b, p, 1);
    }
    wd_buf_append(&b, "\"", 1);
    return wd_buf_steal_str(&b);
}

static bool is_bare_key(const char *s)
{
    if (*s == 0)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return false;
    return true;
}

/* s as a TOML key: bare when possible, else quoted. */
static char *tkey(const char *s) { return is_bare_key(s) ? xstrdup(s) : qs(s); }

/* ---------- Go durations ---------- */

int wd_config_parse_duration(const char *s, int64_t *out_ns)
{
    static const struct {
        const char *name;
        uint64_t ns;
    } units[] = {
        {"ns", 1},
        {"us", 1000},
        {"\xc2\xb5s", 1000}, /* U+00B5 micro sign */
        {"\xce\xbcs", 1000}, /* U+03BC Greek mu */
        {"ms", 1000000},
        {"s", 1000000000ull},
        {"m", 60ull * 1000000000ull},
        {"h", 3600ull * 1000000000ull},
    };
    if (s == NULL)
        return -EINVAL;
    if (*s == '+')
        s++;
    else if (*s == '-')
        return -EINVAL; /* negative durations make no sense here */
    if (strcmp(s, "0") == 0) {
        *out_ns = 0;
        return 0;
    }
    if (*s == 0)
        return -EINVAL;
    uint64_t total = 0;
    while (*s) {
        uint64_t whole = 0, frac = 0, scale = 1;
        bool any = false, over = false;
        while (*s >= '0' && *s <= '9') {
            if (whole > (UINT64_MAX - 9) / 10)
                over = true;
            else
                whole = whole * 10 + (uint64_t)(*s - '0');
            s++;
            any = true;
        }
        if (*s == '.') {
            s++;
            while (*s >= '0' && *s <= '9') {
                if (scale < 1000000000000000000ull) { /* further digits are below 1ns */
                    frac = frac * 10 + (uint64_t)(*s - '0');
                    scale *= 10;
                }
                s++;
                any = true;
            }
        }
        if (!any || over)
            return -EINVAL;
        const char *u = s;
        while (*s && *s != '.' && (*s < '0' || *s > '9'))
            s++;
        size_t ulen = (size_t)(s - u);
        uint64_t mult = 0;
        for (size_t i = 0; i < WD_ARRAY_LEN(units); i++)
            if (strlen(units[i].name) == ulen && memcmp(units[i].name, u, ulen) == 0)
                mult = units[i].ns;
        if (mult == 0)
            return -EINVAL;
        uint64_t v;
        if (__builtin_mul_overflow(whole, mult, &v))
            return -EINVAL;
        uint64_t f = (uint64_t)((unsigned __int128)frac * mult / scale);
        if (__builtin_add_overflow(v, f, &v) || __builtin_add_overflow(total, v, &total))
            return -EINVAL;
        if (total > (uint64_t)INT64_MAX)
            return -EINVAL;
    }
    *out_ns = (int64_t)total;
    return 0;
}

/* ---------- schema machinery ---------- */

struct ctx {
    const char *file;  /* as given, for messages */
    const char *label; /* "[docker]", "[\"github.com/ServiceWeaver/weaver\"]" */
    const char *key;   /* key path inside the section for messages, e.g. "listeners.shop" */
    struct wd_config *c;
    void *target; /* the listener or group being filled */
    struct wd_error **err;
};

struct field {
    const char *key;
    int (*apply)(struct ctx *x, const struct wd_toml_kv *kv);
};

static int cfail(struct ctx *x, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int cfail(struct ctx *x, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    autofree char *m = xvasprintf(fmt, ap);
    va_end(ap);
    if (line > 0)
        return wd_err(x->err, EINVAL, "%s:%d: %s %s", x->file, line, x->label, m);
    return wd_err(x->err, EINVAL, "%s: %s %s", x->file, x->label, m);
}

static const char *article(const char *noun)
{
    return strchr("aeiou", noun[0]) ? "an" : "a";
}

/* "<label> <key path>.<kv key> must be <want>, not <a type>" */
static int type_err(struct ctx *x, const struct wd_toml_kv *kv, const char *want)
{
    const char *t = wd_toml_type_name(kv->val->type);
    return cfail(x, kv->line, "%s%s%s must be %s, not %s %s", x->key ? x->key : "",
                 x->key ? "." : "", kv->key, want, article(t), t);
}

static const struct field *match(const struct field *f, size_t nf, const char *key)
{
    for (size_t i = 0; i < nf; i++)
        if (strcmp(f[i].key, key) == 0)
            return &f[i];
    for (size_t i = 0; i < nf; i++)
        if (strcasecmp(f[i].key, key) == 0)
            return &f[i];
    return NULL;
}

/* Check every key of table against the field table, then apply them in document order. */
static int apply_fields(struct ctx *x, const struct wd_toml_node *table, const struct field *f,
                        size_t nf)
{
    struct wd_buf unknown = {0}, valid = {0};
    size_t nunknown = 0;
    int first_line = 0;
    for (size_t i = 0; i < wd_toml_len(table); i++) {
        const struct wd_toml_kv *kv = wd_toml_table_at(table, i);
        if (match(f, nf, kv->key) != NULL)
            continue;
        if (nunknown++ == 0)
            first_line = kv->line;
        autofree char *q = qs(kv->key);
        wd_buf_printf(&unknown, "%s%s", nunknown > 1 ? ", " : "", q);
    }
    if (nunknown > 0) {
        for (size_t i = 0; i < nf; i++)
            wd_buf_printf(&valid, "%s%s", i ? ", " : "", f[i].key);
        int r = cfail(x, first_line, "unknown key%s %s%s%s (valid keys: %s)",
                      nunknown > 1 ? "s" : "", (char *)unknown.data, x->key ? " in " : "",
                      x->key ? x->key : "", (char *)valid.data);
        wd_buf_free(&unknown);
        wd_buf_free(&valid);
        return r;
    }
    /* two spellings of one key ("binary" and "Binary") */
    for (size_t i = 0; i < wd_toml_len(table); i++) {
        const struct wd_toml_kv *a = wd_toml_table_at(table, i);
        for (size_t j = 0; j < i; j++) {
            const struct wd_toml_kv *b = wd_toml_table_at(table, j);
            if (match(f, nf, a->key) == match(f, nf, b->key))
                return cfail(x, a->line, "key \"%s\" repeats \"%s\" (line %d); keep one", a->key,
                             b->key, b->line); /* both matched a field name: plain ASCII */
        }
    }
    for (size_t i = 0; i < wd_toml_len(table); i++) {
        const struct wd_toml_kv *kv = wd_toml_table_at(table, i);
        int r = match(f, nf, kv->key)->apply(x, kv);
        if (r < 0)
            return r;
    }
    return 0;
}

static int get_string(struct ctx *x, const struct wd_toml_kv *kv, char **out)
{
    if (kv->val->type != WD_TOML_STRING)
        return type_err(x, kv, "a string");
    if (strlen(kv->val->u.str.s) != kv->val->u.str.len)
        return cfail(x, kv->line, "%s must not contain NUL characters", kv->key);
    free(*out);
    *out = xstrdup(kv->val->u.str.s);
    return 0;
}

static int get_strv(struct ctx *x, const struct wd_toml_kv *kv, const struct wd_toml_node *arr,
                    struct wd_strv *out)
{
    if (arr->type != WD_TOML_ARRAY)
        return type_err(x, kv, "an array of strings");
    size_t n = wd_toml_len(arr);
    for (size_t i = 0; i < n; i++) {
        const struct wd_toml_node *v = wd_toml_array_at(arr, i);
        const char *t = wd_toml_type_name(v->type);
        if (v->type != WD_TOML_STRING)
            return cfail(x, v->line, "%s must be an array of strings (item %zu is %s %s)",
                         kv->key, i + 1, article(t), t);
        if (strlen(v->u.str.s) != v->u.str.len)
            return cfail(x, v->line, "%s item %zu must not contain NUL characters", kv->key,
                         i + 1);
    }
    out->v = xcalloc(n + 1, sizeof *out->v);
    for (size_t i = 0; i < n; i++)
        out->v[out->n++] = xstrdup(wd_toml_array_at(arr, i)->u.str.s);
    return 0;
}

static int get_int(struct ctx *x, const struct wd_toml_kv *kv, int64_t min, int64_t max,
                   int *out)
{
    if (kv->val->type != WD_TOML_INTEGER)
        return type_err(x, kv, "an integer");
    int64_t v = kv->val->u.i;
    if (v < min || v > max)
        return cfail(x, kv->line, "%s%s%s must be between %" PRId64 " and %" PRId64 ", not %" PRId64,
                     x->key ? x->key : "", x->key ? "." : "", kv->key, min, max, v);
    *out = (int)v;
    return 0;
}

/* ---------- [serviceweaver] ---------- */

static int app_name(struct ctx *x, const struct wd_toml_kv *kv)
{
    return get_string(x, kv, &x->c->name);
}

static int app_binary(struct ctx *x, const struct wd_toml_kv *kv)
{
    int r = get_string(x, kv, &x->c->binary);
    if (r == 0 && x->c->binary[0] == 0)
        return cfail(x, kv->line, "binary is empty; set it to the path of the application binary");
    return r;
}

static int app_args(struct ctx *x, const struct wd_toml_kv *kv)
{
    return get_strv(x, kv, kv->val, &x->c->args);
}

static int app_env(struct ctx *x, const struct wd_toml_kv *kv)
{
    int r = get_strv(x, kv, kv->val, &x->c->env);
    if (r < 0)
        return r;
    for (size_t i = 0; i < x->c->env.n; i++) {
        const char *e = x->c->env.v[i];
        const char *eq = strchr(e, '=');
        if (eq == NULL || eq == e) {
            autofree char *q = qs(e);
            return cfail(x, wd_toml_array_at(kv->val, i)->line,
                         "env entry %s is not of form KEY=VALUE", q);
        }
    }
    return 0;
}

static int app_colocate(struct ctx *x, const struct wd_toml_kv *kv)
{
    const struct wd_toml_node *a = kv->val;
    if (a->type != WD_TOML_ARRAY)
        return type_err(x, kv, "an array of arrays of component names");
    size_t n = wd_toml_len(a);
    x->c->colocate = xcalloc(n ? n : 1, sizeof *x->c->colocate);
    for (size_t i = 0; i < n; i++) {
        const struct wd_toml_node *g = wd_toml_array_at(a, i);
        if (g->type != WD_TOML_ARRAY)
            return cfail(x, g->line,
                         "colocate must be an array of arrays of component names (item %zu is "
                         "%s %s)",
                         i + 1, article(wd_toml_type_name(g->type)), wd_toml_type_name(g->type));
        int r = get_strv(x, kv, g, &x->c->colocate[i]);
        x->c->ncolocate = i + 1;
        if (r < 0)
            return r;
        for (size_t j = 0; j < x->c->colocate[i].n; j++) {
            const char *comp = x->c->colocate[i].v[j];
            for (size_t gi = 0; gi <= i; gi++)
                for (size_t gj = 0; gj < (gi == i ? j : x->c->colocate[gi].n); gj++)
                    if (strcmp(x->c->colocate[gi].v[gj], comp) == 0) {
                        autofree char *q = qs(comp);
                        return cfail(x, wd_toml_array_at(g, j)->line,
                                     "colocate: component %s placed multiple times; list "
                                     "each component in at most one group",
                                     q);
                    }
        }
    }
    return 0;
}

static int app_rollout(struct ctx *x, const struct wd_toml_kv *kv)
{
    const struct wd_toml_node *v = kv->val;
    if (v->type == WD_TOML_INTEGER) {
        if (v->u.i < 0)
            return cfail(x, kv->line, "rollout must not be negative");
        x->c->rollout_nanos = v->u.i;
        return 0;
    }
    if (v->type != WD_TOML_STRING)
        return type_err(x, kv, "a duration string like \"5m\" or an integer of nanoseconds");
    if (wd_config_parse_duration(v->u.str.s, &x->c->rollout_nanos) < 0) {
        autofree char *q = qs(v->u.str.s);
        return cfail(x, kv->line,
                     "rollout %s is not a valid duration; write e.g. \"30s\", \"5m\" or "
                     "\"1h30m\"",
                     q);
    }
    return 0;
}

static const struct field app_fields[] = {
    {"name", app_name},         {"binary", app_binary},   {"args", app_args},
    {"env", app_env},           {"colocate", app_colocate}, {"rollout", app_rollout},
};

/* ---------- [docker] ---------- */

/* host:port, [v6]:port or :port; port 0..65535. */
static bool valid_hostport(const char *a)
{
    const char *port;
    if (a[0] == '[') {
        const char *e = strchr(a, ']');
        if (e == NULL || e == a + 1 || e[1] != ':')
            return false;
        port = e + 2;
    } else {
        const char *c = strrchr(a, ':');
        if (c == NULL || memchr(a, ':', (size_t)(c - a)) != NULL)
            return false;
        port = c + 1;
        for (const char *h = a; h < c; h++)
            if (*h == ' ' || *h == '/' || *h == '[' || *h == ']')
                return false;
    }
    size_t n = strlen(port);
    if (n == 0 || n > 5 || strspn(port, "0123456789") != n)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (unsigned)(port[i] - '0');
    return v <= 65535;
}

static int listener_address(struct ctx *x, const struct wd_toml_kv *kv)
{
    struct wd_listener_cfg *l = x->target;
    int r = get_string(x, kv, &l->address);
    if (r < 0)
        return r;
    if (!valid_hostport(l->address)) {
        autofree char *q = qs(l->address);
        return cfail(x, kv->line,
                     "%s.address %s is not host:port (port 0-65535); write e.g. "
                     "\"localhost:9000\" or \":9000\"",
                     x->key, q);
    }
    return 0;
}

static const struct field listener_fields[] = {{"address", listener_address}};

static int group_replicas(struct ctx *x, const struct wd_toml_kv *kv)
{
    struct wd_group_cfg *g = x->target;
    return get_int(x, kv, 1, WD_CONFIG_MAX_REPLICAS, &g->replicas);
}

static const struct field group_fields[] = {{"replicas", group_replicas}};

static int docker_replicas(struct ctx *x, const struct wd_toml_kv *kv)
{
    return get_int(x, kv, 1, WD_CONFIG_MAX_REPLICAS, &x->c->replicas);
}

/* kv is a table of NAME -> table. slot(x, i, n, entry) returns the i-th of n records to fill;
 * each entry is checked against fields and applied to it. */
static int sub_tables(struct ctx *x, const struct wd_toml_kv *kv, const char *example,
                      const struct field *fields, size_t nf,
                      void *(*slot)(struct ctx *, size_t, size_t, const struct wd_toml_kv *))
{
    if (kv->val->type != WD_TOML_TABLE)
        return type_err(x, kv, "a table");
    size_t n = wd_toml_len(kv->val);
    for (size_t i = 0; i < n; i++) {
        const struct wd_toml_kv *e = wd_toml_table_at(kv->val, i);
        autofree char *name = tkey(e->key);
        autofree char *path = xasprintf("%s.%s", kv->key, name);
        if (e->val->type != WD_TOML_TABLE)
            return cfail(x, e->line, "%s must be a table like %s, not %s %s", path, example,
                         article(wd_toml_type_name(e->val->type)),
                         wd_toml_type_name(e->val->type));
        if (strlen(e->key) != e->key_len)
            return cfail(x, e->line, "%s: names must not contain NUL characters", kv->key);
        struct ctx sub = *x;
        sub.key = path;
        sub.target = slot(x, i, n, e);
        int r = apply_fields(&sub, e->val, fields, nf);
        if (r < 0)
            return r;
    }
    return 0;
}

static void *listener_slot(struct ctx *x, size_t i, size_t n, const struct wd_toml_kv *e)
{
    if (x->c->listeners == NULL)
        x->c->listeners = xcalloc(n, sizeof *x->c->listeners);
    struct wd_listener_cfg *l = &x->c->listeners[i];
    l->name = xstrdup(e->key);
    l->line = e->line;
    x->c->nlisteners = i + 1;
    return l;
}

static int docker_listeners(struct ctx *x, const struct wd_toml_kv *kv)
{
    int r = sub_tables(x, kv, "{address = \"host:port\"}", listener_fields,
                       WD_ARRAY_LEN(listener_fields), listener_slot);
    for (size_t i = 0; r == 0 && i < x->c->nlisteners; i++) {
        const struct wd_listener_cfg *l = &x->c->listeners[i];
        if (l->address == NULL) {
            autofree char *name = tkey(l->name);
            r = cfail(x, l->line, "%s.%s has no address; write %s.%s = {address = \"host:port\"}",
                      kv->key, name, kv->key, name);
        }
    }
    return r;
}

static void *group_slot(struct ctx *x, size_t i, size_t n, const struct wd_toml_kv *e)
{
    if (x->c->groups == NULL)
        x->c->groups = xcalloc(n, sizeof *x->c->groups);
    struct wd_group_cfg *g = &x->c->groups[i];
    g->component = xstrdup(e->key);
    g->line = e->line;
    x->c->ngroups = i + 1;
    return g;
}

static int docker_groups(struct ctx *x, const struct wd_toml_kv *kv)
{
    return sub_tables(x, kv, "{replicas = N}", group_fields, WD_ARRAY_LEN(group_fields),
                      group_slot);
}

static const struct field docker_fields[] = {
    {"replicas", docker_replicas},
    {"listeners", docker_listeners},
    {"groups", docker_groups},
};

/* ---------- sections ---------- */

static char *section_label(const char *name)
{
    autofree char *k = tkey(name);
    return xasprintf("[%s]", k);
}

/* The section under its short or long name; both present is an error. */
static int find_section(const char *file, const struct wd_toml_node *root, const char *shortname,
                        const char *longname, const struct wd_toml_kv **out,
                        struct wd_error **err)
{
    const struct wd_toml_kv *s = wd_toml_find(root, shortname);
    const struct wd_toml_kv *l = wd_toml_find(root, longname);
    if (s != NULL && l != NULL) {
        const struct wd_toml_kv *later = s->line > l->line ? s : l;
        return wd_err(err, EINVAL,
                      "%s:%d: conflicting sections \"%s\" and \"%s\"; keep only one of them",
                      file, later->line, shortname, longname);
    }
    *out = s ? s : l;
    return 0;
}

static int read_app(const char *file, const struct wd_toml_node *root, struct wd_config *c,
                    struct wd_error **err)
{
    const struct wd_toml_kv *sec = NULL;
    int r = find_section(file, root, WD_CONFIG_APP_SHORT, WD_CONFIG_APP_SECTION, &sec, err);
    if (r < 0)
        return r;
    if (sec == NULL)
        return wd_err(err, EINVAL,
                      "%s: no [serviceweaver] section; add one with binary = \"./path/to/app\"",
                      file);
    autofree char *label = section_label(sec->key);
    struct ctx x = {.file = file, .label = label, .c = c, .err = err};
    r = apply_fields(&x, sec->val, app_fields, WD_ARRAY_LEN(app_fields));
    if (r < 0)
        return r;
    if (c->binary == NULL)
        return cfail(&x, sec->val->line,
                     "has no binary; add binary = \"./path/to/app\" (relative to %s)", file);
    autofree char *dir = path_dir(c->path);
    char *abs = path_abs(dir, c->binary);
    free(c->binary);
    c->binary = abs;
    if (c->name == NULL || c->name[0] == 0) {
        free(c->name);
        c->name = xstrdup(path_base(c->binary));
    }
    return 0;
}

static int read_docker(const char *file, const struct wd_toml_node *root, struct wd_config *c,
                       struct wd_error **err)
{
    const struct wd_toml_kv *sec = NULL;
    int r = find_section(file, root, WD_CONFIG_DOCKER_SHORT, WD_CONFIG_DOCKER_SECTION, &sec, err);
    if (r < 0 || sec == NULL)
        return r;
    autofree char *label = section_label(sec->key);
    struct ctx x = {.file = file, .label = label, .c = c, .err = err};
    r = apply_fields(&x, sec->val, docker_fields, WD_ARRAY_LEN(docker_fields));
    if (r < 0)
        return r;
    for (size_t i = 0; i < c->ngroups; i++)
        if (c->groups[i].replicas == 0)
            c->groups[i].replicas = c->replicas;
    return 0;
}

int wd_config_parse(const char *text, size_t len, const char *path, struct wd_config **out,
                    struct wd_error **err)
{
    struct wd_toml *doc = NULL;
    int r = wd_toml_parse(text, len, path, &doc, err);
    if (r < 0)
        return r;
    struct wd_config *c = xzalloc(sizeof *c);
    c->path = path_abs(NULL, path);
    c->replicas = 1;
    const struct wd_toml_node *root = wd_toml_root(doc);
    size_t n = wd_toml_len(root);
    c->sections = xcalloc(n ? n : 1, sizeof *c->sections);
    for (size_t i = 0; i < n && r == 0; i++) {
        const struct wd_toml_kv *kv = wd_toml_table_at(root, i);
        if (kv->val->type != WD_TOML_TABLE) {
            autofree char *q = qs(kv->key);
            r = wd_err(err, EINVAL,
                       "%s:%d: top-level key %s is not in a section; move it under a "
                       "[section] header such as [serviceweaver]",
                       path, kv->line, q);
            break;
        }
        c->sections[i].name = xstrdup(kv->key);
        c->sections[i].text = wd_toml_emit_table(kv->val);
        c->nsections = i + 1;
    }
    if (r == 0)
        r = read_app(path, root, c, err);
    if (r == 0)
        r = read_docker(path, root, c, err);
    wd_toml_free(doc);
    if (r < 0) {
        wd_config_free(c);
        return r;
    }
    *out = c;
    return 0;
}

static int load_binary(const char *path, struct wd_config **out)
{
    struct wd_config *c = xzalloc(sizeof *c);
    c->binary = path_abs(NULL, path);
    c->name = xstrdup(path_base(c->binary));
    c->replicas = 1;
    c->sections = xcalloc(1, sizeof *c->sections);
    *out = c;
    return 0;
}

int wd_config_load(const char *path, struct wd_config **out, struct wd_error **err)
{
    autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return wd_err_sys(err, errno, "%s: cannot open config file", path);
    unsigned char magic[4];
    ssize_t got;
    do
        got = read(fd, magic, sizeof magic);
    while (got < 0 && errno == EINTR);
    if (got < 0)
        return wd_err_sys(err, errno, "%s: cannot read config file", path);
    if (got == 4 && memcmp(magic, "\x7f" "ELF", 4) == 0)
        return load_binary(path, out);
    autofree char *text = NULL;
    size_t len = 0;
    int r = wd_read_file(path, WD_TOML_MAX_FILE, &text, &len);
    if (r == -EMSGSIZE)
        return wd_err(err, EMSGSIZE, "%s: config file is larger than the %u MiB limit", path,
                      WD_TOML_MAX_FILE >> 20);
    if (r < 0)
        return wd_err_sys(err, -r, "%s: cannot read config file", path);
    return wd_config_parse(text, len, path, out, err);
}

static void strv_free(struct wd_strv *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

void wd_config_free(struct wd_config *c)
{
    if (c == NULL)
        return;
    free(c->path);
    free(c->name);
    free(c->binary);
    strv_free(&c->args);
    strv_free(&c->env);
    for (size_t i = 0; i < c->ncolocate; i++)
        strv_free(&c->colocate[i]);
    free(c->colocate);
    for (size_t i = 0; i < c->nsections; i++) {
        free(c->sections[i].name);
        free(c->sections[i].text);
    }
    free(c->sections);
    for (size_t i = 0; i < c->nlisteners; i++) {
        free(c->listeners[i].name);
        free(c->listeners[i].address);
    }
    free(c->listeners);
    for (size_t i = 0; i < c->ngroups; i++)
        free(c->groups[i].component);
    free(c->groups);
    free(c);
}

int wd_config_check_input(const char *path, struct wd_error **err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return wd_err(err, ENOENT, "%s does not exist; give the app's weaver.toml or binary",
                          path);
        return wd_err_sys(err, e, "open %s", path);
    }
    unsigned char m[4] = {0};
    ssize_t n = read(fd, m, sizeof m);
    close(fd);
    size_t l = strlen(path);
    if (n == 4 && m[0] == 0x7f && m[1] == 'E' && m[2] == 'L' && m[3] == 'F')
        return 0;
    if (l > 5 && strcmp(path + l - 5, ".toml") == 0)
        return 0;
    return wd_err(err, EINVAL,
                  "%s is not an ELF executable; give weaver.toml (a *.toml file) or a Service "
                  "Weaver app binary built for linux",
                  path);
}

bool wd_config_valid_app_name(const char *s)
{
    if (!*s || strlen(s) > 40)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
              (*p == '.' && p != s)))
            return false;
    return true;
}
