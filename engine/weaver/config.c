/* engine/weaver/config.c - weaver.toml (protocol §6). The application section and our [docker]
 * section are read through small key tables (struct field), so adding a key is one line plus
 * one apply function. Keys match exactly first, then case-insensitively (BurntSushi's rule).
 *
 * [docker] keys: replicas, listeners, groups (replicas, env, env_file, memory, cpus, pids),
 * env, env_file, host_ports, volumes, secrets, networks, extra_hosts, memory, cpus, pids, mtls,
 * metrics.
 * Files named there (env_file, bind sources, secrets) are resolved against the directory of
 * weaver.toml ("~/" = $HOME) and checked at load time; env files are read then. Keys may come
 * in any order, so environment lists and group limits are put together once the whole section
 * has been read (read_docker). */
#include "engine/weaver/config.h"
#include "engine/base/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/base/error.h"
#include "engine/base/link.h"
#include "engine/weaver/toml.h"
#include "engine/base/util.h"

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

/* s as it is when it has no blanks, quotes or control characters, else quoted (qs). Paths in
 * messages read better bare, and the message must stay one line whatever they contain. */
static char *shown(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p == 0x7f || *p == '"' || *p == '\\')
            return qs(s);
    return *s ? xstrdup(s) : qs(s);
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

/* The environment of one table ([docker] or one groups entry) as written: env_file entries
 * (every file, in order) and env entries, merged once the section has been read. */
struct envparts {
    struct wd_strv file, table;
};

/* What [docker] collects before it can be merged (read_docker). */
struct docker_tmp {
    struct envparts sec;
    struct envparts *groups; /* parallel to c->groups */
    size_t ngroups;
};

struct ctx {
    const char *file;  /* as given, for messages */
    const char *label; /* "[docker]", "[\"github.com/ServiceWeaver/weaver\"]" */
    const char *key;   /* key path inside the section for messages, e.g. "listeners.shop" */
    const char *dir;   /* directory of the config file (absolute): relative paths start here */
    struct wd_config *c;
    void *target; /* the listener or group being filled */
    struct docker_tmp *tmp; /* [docker] only */
    unsigned flags;         /* WD_CONFIG_NO_FILES, ... */
    struct wd_error **err;
};

struct field {
    const char *key;
    int (*apply)(struct ctx *x, const struct wd_toml_kv *kv);
};

static int vcfail(struct ctx *x, int errnum, int line, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
static int vcfail(struct ctx *x, int errnum, int line, const char *fmt, va_list ap)
{
    autofree char *m = xvasprintf(fmt, ap);
    if (line > 0)
        return wd_err(x->err, errnum, "%s:%d: %s %s", x->file, line, x->label, m);
    return wd_err(x->err, errnum, "%s: %s %s", x->file, x->label, m);
}

static int cfail(struct ctx *x, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int cfail(struct ctx *x, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vcfail(x, EINVAL, line, fmt, ap);
    va_end(ap);
    return r;
}

/* Like cfail for a file named in the config that a system call refused: errnum is its errno. */
static int cfail_errno(struct ctx *x, int errnum, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int cfail_errno(struct ctx *x, int errnum, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vcfail(x, errnum, line, fmt, ap);
    va_end(ap);
    return r;
}

/* "<key path>.<key>" for messages: "env" in [docker], "groups.\"a/B\".env" in a group. */
static char *keypath(const struct ctx *x, const char *key)
{
    return x->key ? xasprintf("%s.%s", x->key, key) : xstrdup(key);
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

/* ---------- lists ---------- */

static void strv_push(struct wd_strv *s, char *str)
{
    s->v = xrealloc(s->v, (s->n + 2) * sizeof *s->v);
    s->v[s->n++] = str;
    s->v[s->n] = NULL;
}

static void strv_free(struct wd_strv *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

/* ---------- environment ---------- */

#define ENV_FILE_MAX (1u << 20) /* bytes of one env file */
#define ENV_MAX_VARS 4096       /* variables in one merged list (far above any real use) */

static const char white[] = " \t\n\v\f\r";

/* NULL when name[0..len) can name an environment variable, else what is wrong with it. */
static const char *env_name_problem(const char *name, size_t len)
{
    if (len == 0)
        return "the name is empty";
    if (memchr(name, 0, len) != NULL)
        return "the name has a NUL character";
    if (memchr(name, '=', len) != NULL)
        return "the name has '='";
    for (size_t i = 0; i < len; i++)
        if (strchr(white, name[i]) != NULL)
            return "the name has white space";
    return NULL;
}

/* Set "KEY=VALUE" in s: a KEY already there keeps its place and takes the new value, a new KEY
 * is appended. false when s already holds ENV_MAX_VARS variables. */
static bool env_set(struct wd_strv *s, const char *kv)
{
    size_t klen = strcspn(kv, "=");
    for (size_t i = 0; i < s->n; i++)
        if (strncmp(s->v[i], kv, klen) == 0 && s->v[i][klen] == '=') {
            free(s->v[i]);
            s->v[i] = xstrdup(kv);
            return true;
        }
    if (s->n >= ENV_MAX_VARS)
        return false;
    strv_push(s, xstrdup(kv));
    return true;
}

/* docker's env-file format (docker/cli opts.ParseEnvFile): a UTF-8 BOM is dropped, lines end
 * in \n or \r\n, leading white space is dropped, blank and '#' lines are skipped, the rest is
 * KEY=VALUE taken literally, or KEY alone (from our environment, left out when unset).
 * label ("[docker] env_file") goes after "PATH:LINE: " in messages. */
static int parse_env(const char *text, size_t len, const char *path, const char *label,
                     struct wd_strv *out, struct wd_error **err)
{
    autofree char *where = shown(path);
    autofree char *pre = label ? xasprintf("%s: ", label) : xstrdup("");
    struct wd_strv got = {0};
    const char *p = text, *end = text + len;
    if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
        p += 3;
    int line = 0;
    for (const char *next = p; p < end; p = next) {
        line++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        next = nl ? nl + 1 : end;
        if (e > p && e[-1] == '\r')
            e--;
        while (p < e && *p != 0 && strchr(white, *p) != NULL)
            p++;
        if (p == e || *p == '#')
            continue;
        size_t n = (size_t)(e - p);
        if (memchr(p, 0, n) != NULL) {
            strv_free(&got);
            return wd_err(err, EINVAL, "%s:%d: %sthe line has a NUL character; an env file is text",
                          where, line, pre);
        }
        const char *eq = memchr(p, '=', n);
        size_t klen = eq ? (size_t)(eq - p) : n;
        const char *why = env_name_problem(p, klen);
        if (why != NULL) {
            strv_free(&got);
            autofree char *l = xstrndup(p, n);
            autofree char *q = qs(l);
            return wd_err(err, EINVAL, "%s:%d: %s%s is not KEY=VALUE (%s)", where, line, pre, q,
                          why);
        }
        if (eq != NULL) {
            strv_push(&got, xstrndup(p, n));
            continue;
        }
        autofree char *key = xstrndup(p, klen);
        const char *v = getenv(key);
        if (v != NULL)
            strv_push(&got, xasprintf("%s=%s", key, v));
    }
    for (size_t i = 0; i < got.n; i++)
        strv_push(out, got.v[i]);
    free(got.v);
    return 0;
}

int wd_parse_env_file(const char *text, size_t len, const char *path, struct wd_strv *out,
                      struct wd_error **err)
{
    return parse_env(text, len, path, NULL, out, err);
}

/* A file of at most max bytes (wd_read_file: a FIFO or a terminal named by mistake does not
 * hang the load). Returns 0 or -errno (-EMSGSIZE when larger). Caller frees *out. */
static int read_small_file(const char *path, size_t max, char **out, size_t *len)
{
    return wd_read_file(path, max, out, len);
}

/* A host path written in the config: "~" and "~/..." are under $HOME, others relative to the
 * config's directory; made absolute and cleaned. NULL when $HOME is needed but not absolute. */
static char *host_path(const struct ctx *x, const char *p)
{
    if (p[0] == '~' && (p[1] == 0 || p[1] == '/')) {
        const char *home = getenv("HOME");
        if (home == NULL || home[0] != '/')
            return NULL;
        autofree char *joined = xasprintf("%s/%s", home, p + 1);
        return path_clean(joined);
    }
    return path_abs(x->dir, p);
}

static int no_home(struct ctx *x, int line, const char *what, const char *p)
{
    autofree char *q = qs(p);
    return cfail(x, line, "%s %s: ~ stands for $HOME, which is not set to an absolute path; "
                          "write the full path",
                 what, q);
}

/* The envparts / resources of the table being read: [docker] itself or one groups entry. */
static struct envparts *parts_of(struct ctx *x)
{
    if (x->target == NULL)
        return &x->tmp->sec;
    return &x->tmp->groups[(struct wd_group_cfg *)x->target - x->c->groups];
}

static struct wd_resources *res_of(struct ctx *x)
{
    if (x->target == NULL)
        return &x->c->res;
    return &((struct wd_group_cfg *)x->target)->res;
}

/* env = {KEY = "value", ...} */
static int apply_env(struct ctx *x, const struct wd_toml_kv *kv)
{
    if (kv->val->type != WD_TOML_TABLE)
        return type_err(x, kv, "a table like {KEY = \"value\"}");
    autofree char *what = keypath(x, kv->key);
    struct envparts *ep = parts_of(x);
    for (size_t i = 0; i < wd_toml_len(kv->val); i++) {
        const struct wd_toml_kv *e = wd_toml_table_at(kv->val, i);
        autofree char *k = tkey(e->key);
        const char *why = env_name_problem(e->key, e->key_len);
        if (why != NULL) {
            autofree char *q = qs(e->key);
            return cfail(x, e->line,
                         "%s: %s is not a variable name (%s); use a name without '=' or white "
                         "space",
                         what, q, why);
        }
        const struct wd_toml_node *v = e->val;
        if (v->type != WD_TOML_STRING) {
            const char *t = wd_toml_type_name(v->type);
            return cfail(x, e->line, "%s.%s must be a string, not %s %s; quote the value", what,
                         k, article(t), t);
        }
        if (strlen(v->u.str.s) != v->u.str.len)
            return cfail(x, e->line, "%s.%s must not contain NUL characters", what, k);
        strv_push(&ep->table, xasprintf("%s=%s", e->key, v->u.str.s));
    }
    return 0;
}

/* One env file, appended to out. line: where it is named. */
static int read_env_file(struct ctx *x, int line, const char *what, const char *name,
                         struct wd_strv *out)
{
    if (x->flags & WD_CONFIG_NO_FILES)
        return 0; /* the file is not here (the compose manager): its values are not needed */
    autofree char *abs = host_path(x, name);
    if (abs == NULL)
        return no_home(x, line, what, name);
    autofree char *q = qs(name);
    autofree char *where = shown(abs);
    autofree char *text = NULL;
    size_t len = 0;
    int r = read_small_file(abs, ENV_FILE_MAX, &text, &len);
    if (r == -EMSGSIZE)
        return cfail_errno(x, EMSGSIZE, line, "%s %s: %s is larger than %u MiB; an env file is "
                                              "a short list of KEY=VALUE lines",
                           what, q, where, ENV_FILE_MAX >> 20);
    if (r == -ENOENT || r == -ENOTDIR)
        return cfail_errno(x, -r, line,
                           "%s %s: cannot read %s: %s; create it or fix the path (relative to %s)",
                           what, q, where, strerror(-r), x->file);
    if (r < 0)
        return cfail_errno(x, -r, line, "%s %s: cannot read %s: %s; give a readable file", what,
                           q, where, strerror(-r));
    autofree char *label = xasprintf("%s %s", x->label, what);
    return parse_env(text, len, abs, label, out, x->err);
}

/* env_file = "path" or ["a.env", "b.env"] */
static int apply_env_file(struct ctx *x, const struct wd_toml_kv *kv)
{
    autofree char *what = keypath(x, kv->key);
    struct envparts *ep = parts_of(x);
    const struct wd_toml_node *v = kv->val;
    if (v->type == WD_TOML_STRING) {
        autofree char *name = NULL;
        int r = get_string(x, kv, &name);
        if (r < 0)
            return r;
        if (name[0] == 0)
            return cfail(x, kv->line, "%s is empty; give the path of a file of KEY=VALUE lines",
                         what);
        return read_env_file(x, kv->line, what, name, &ep->file);
    }
    if (v->type != WD_TOML_ARRAY)
        return type_err(x, kv, "a path or an array of paths");
    struct wd_strv names = {0};
    int r = get_strv(x, kv, v, &names);
    for (size_t i = 0; r == 0 && i < names.n; i++) {
        int line = wd_toml_array_at(v, i)->line;
        if (names.v[i][0] == 0)
            r = cfail(x, line, "%s item %zu is empty; give the path of a file of KEY=VALUE lines",
                      what, i + 1);
        else
            r = read_env_file(x, line, what, names.v[i], &ep->file);
    }
    strv_free(&names);
    return r;
}

/* dst gets each list of srcs in turn (env_set). line: for the error. */
static int env_merge(struct ctx *x, int line, const char *what, struct wd_strv *dst,
                     const struct wd_strv *const *srcs, size_t nsrcs)
{
    for (size_t i = 0; i < nsrcs; i++)
        for (size_t j = 0; j < srcs[i]->n; j++)
            if (!env_set(dst, srcs[i]->v[j]))
                return cfail(x, line, "%s has more than %d environment variables; pass fewer",
                             what, ENV_MAX_VARS);
    return 0;
}

/* ---------- [docker] resource limits ---------- */

#define MEMORY_MIN (6ll << 20) /* docker's minimum */
#define MEMORY_MAX (1ll << 40)
#define CPUS_MAX 1024
#define PIDS_MIN 16
#define PIDS_MAX 4194304

/* "256m": digits and an optional unit b, k, m or g (any case) to bytes; values past int64 are
 * INT64_MAX. -EINVAL when it is no such thing. */
static int parse_size(const char *s, int64_t *out)
{
    uint64_t v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++)
        v = v > (uint64_t)INT64_MAX / 10 ? (uint64_t)INT64_MAX : v * 10 + (uint64_t)(*p - '0');
    if (p == s)
        return -EINVAL;
    static const char units[] = "bkmg";
    unsigned shift = 0;
    if (*p != 0) {
        const char *u = strchr(units, *p | 0x20);
        if (u == NULL || p[1] != 0)
            return -EINVAL;
        shift = 10u * (unsigned)(u - units);
    }
    *out = v > ((uint64_t)INT64_MAX >> shift) ? INT64_MAX : (int64_t)(v << shift);
    return 0;
}

/* memory = "256m" or an integer of bytes */
static int apply_memory(struct ctx *x, const struct wd_toml_kv *kv)
{
    const struct wd_toml_node *v = kv->val;
    autofree char *what = keypath(x, kv->key);
    autofree char *val = NULL;
    int64_t bytes = 0;
    if (v->type == WD_TOML_INTEGER) {
        bytes = v->u.i;
        val = xasprintf("%" PRId64, bytes);
    } else if (v->type == WD_TOML_STRING) {
        val = qs(v->u.str.s);
        if (strlen(v->u.str.s) != v->u.str.len || parse_size(v->u.str.s, &bytes) < 0)
            return cfail(x, kv->line,
                         "%s %s is not a size; write e.g. \"512m\" or \"2g\" (units b, k, m, g) "
                         "or an integer of bytes",
                         what, val);
    } else {
        return type_err(x, kv, "a size like \"512m\" or an integer of bytes");
    }
    if (bytes < MEMORY_MIN)
        return cfail(x, kv->line, "%s %s is below docker's minimum of 6 MiB; give at least \"6m\"",
                     what, val);
    if (bytes > MEMORY_MAX)
        return cfail(x, kv->line, "%s %s is above 1 TiB; give at most \"1024g\"", what, val);
    res_of(x)->memory_bytes = bytes;
    return 0;
}

/* cpus = 0.5 (float or integer) */
static int apply_cpus(struct ctx *x, const struct wd_toml_kv *kv)
{
    const struct wd_toml_node *v = kv->val;
    double d;
    if (v->type == WD_TOML_INTEGER)
        d = (double)v->u.i;
    else if (v->type == WD_TOML_FLOAT)
        d = v->u.f;
    else
        return type_err(x, kv, "a number of CPUs like 0.5 or 2");
    /* rounded to whole nano CPUs; too small to be one is as wrong as 0 */
    int64_t nano = d > 0 && d <= CPUS_MAX ? (int64_t)(d * 1e9 + 0.5) : 0;
    if (nano < 1) {
        autofree char *what = keypath(x, kv->key);
        autofree char *val =
            v->type == WD_TOML_INTEGER ? xasprintf("%" PRId64, v->u.i) : xasprintf("%g", d);
        return cfail(x, kv->line, "%s must be more than 0 and at most %d, not %s", what, CPUS_MAX,
                     val);
    }
    res_of(x)->nano_cpus = nano;
    return 0;
}

/* pids = 512 */
static int apply_pids(struct ctx *x, const struct wd_toml_kv *kv)
{
    int v = 0;
    int r = get_int(x, kv, PIDS_MIN, PIDS_MAX, &v);
    if (r == 0)
        res_of(x)->pids = v;
    return r;
}

/* ---------- [docker] host_ports, volumes, secrets, networks, extra_hosts ---------- */

/* [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most max bytes (0: any length): docker's rule for volume and
 * network names. */
static bool valid_name(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || (max > 0 && n > max))
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool alnum =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum && (i == 0 || (ch != '_' && ch != '.' && ch != '-')))
            return false;
    }
    return true;
}

/* host_ports = [5432, 3306] */
static int docker_host_ports(struct ctx *x, const struct wd_toml_kv *kv)
{
    const struct wd_toml_node *a = kv->val;
    if (a->type != WD_TOML_ARRAY)
        return type_err(x, kv, "an array of port numbers");
    size_t n = wd_toml_len(a);
    if (n > WD_LINK_MAX_HOST_PORTS)
        return cfail(x, kv->line, "host_ports lists %zu ports; at most %d are supported", n,
                     WD_LINK_MAX_HOST_PORTS);
    x->c->host_ports = xcalloc(n ? n : 1, sizeof *x->c->host_ports);
    for (size_t i = 0; i < n; i++) {
        const struct wd_toml_node *v = wd_toml_array_at(a, i);
        if (v->type != WD_TOML_INTEGER) {
            const char *t = wd_toml_type_name(v->type);
            return cfail(x, v->line,
                         "host_ports must be an array of port numbers (item %zu is %s %s)", i + 1,
                         article(t), t);
        }
        if (v->u.i < 1 || v->u.i > 65535)
            return cfail(x, v->line,
                         "host_ports item %zu must be between 1 and 65535, not %" PRId64, i + 1,
                         v->u.i);
        for (size_t j = 0; j < x->c->nhost_ports; j++)
            if (x->c->host_ports[j] == v->u.i)
                return cfail(x, v->line, "host_ports: port %" PRId64 " is listed twice; list each "
                                         "port once",
                             v->u.i);
        x->c->host_ports[x->c->nhost_ports++] = (uint16_t)v->u.i;
    }
    return 0;
}

/* Directories of ours in every container: a volume there would hide them. */
static const char *const reserved_dirs[] = {"/app", "/weaver-docker-shim", "/tmp"};

static bool has_dotdot(const char *path)
{
    for (const char *p = path; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return true;
        p += n;
        p += strspn(p, "/");
    }
    return false;
}

/* One volumes item "SOURCE:TARGET[:ro|:rw]" into v. */
static int parse_volume(struct ctx *x, const char *s, int line, struct wd_volume_cfg *v)
{
    autofree char *q = qs(s);
    const char *c1 = strchr(s, ':');
    const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (c1 == NULL || c1 == s || c1[1] == 0 || c1[1] == ':' || (c2 && strchr(c2 + 1, ':')))
        return cfail(x, line,
                     "volumes: %s is not SOURCE:TARGET[:ro]; write e.g. \"./data:/data\" or "
                     "\"cache:/var/cache:ro\"",
                     q);
    if (c2 != NULL && strcmp(c2 + 1, "ro") != 0 && strcmp(c2 + 1, "rw") != 0) {
        autofree char *m = qs(c2 + 1);
        return cfail(x, line,
                     "volumes: %s has the mode %s; write :ro (read-only), :rw or nothing (rw)", q,
                     m);
    }
    v->read_only = c2 != NULL && strcmp(c2 + 1, "ro") == 0;
    autofree char *src = xstrndup(s, (size_t)(c1 - s));
    autofree char *tgt = c2 ? xstrndup(c1 + 1, (size_t)(c2 - c1 - 1)) : xstrdup(c1 + 1);
    autofree char *qt = qs(tgt);
    if (tgt[0] != '/')
        return cfail(x, line,
                     "volumes: target %s in %s must be an absolute path in the container, like "
                     "\"/data\"",
                     qt, q);
    if (has_dotdot(tgt))
        return cfail(x, line,
                     "volumes: target %s must not contain \"..\"; write the path without it", qt);
    autofree char *target = path_clean(tgt);
    if (strcmp(target, "/") == 0)
        return cfail(x, line,
                     "volumes: target \"/\" would cover the whole container; mount at a directory "
                     "such as /data");
    for (size_t i = 0; i < WD_ARRAY_LEN(reserved_dirs); i++) {
        const char *r = reserved_dirs[i];
        size_t rn = strlen(r);
        if (strncmp(target, r, rn) == 0 && (target[rn] == 0 || target[rn] == '/')) {
            autofree char *t = shown(target);
            return cfail(x, line,
                         "volumes: target %s is inside %s, which weaver-docker uses (so are /app, "
                         "/weaver-docker-shim and /tmp); choose another path",
                         t, r);
        }
    }
    autofree char *ssrc = shown(src);
    if (src[0] == '.' || src[0] == '/' || src[0] == '~') {
        if (src[0] == '~' && src[1] != 0 && src[1] != '/')
            return cfail(x, line,
                         "volumes: bind source %s: only ~ and ~/ (your home directory) are "
                         "understood; write the full path",
                         ssrc);
        autofree char *abs = host_path(x, src);
        if (x->flags & WD_CONFIG_NO_FILES) { /* kept as written, made absolute where possible */
            v->bind = true;
            v->source = abs ? WD_STEAL(abs) : xstrdup(src);
            v->target = WD_STEAL(target);
            v->line = line;
            return 0;
        }
        if (abs == NULL)
            return no_home(x, line, "volumes: bind source", src);
        autofree char *sabs = shown(abs);
        char *real = realpath(abs, NULL);
        int e = errno;
        if (real == NULL && (e == ENOENT || e == ENOTDIR))
            return cfail_errno(x, e, line,
                               "volumes: bind source %s (%s) does not exist; create it or fix the "
                               "path (relative to %s)",
                               ssrc, sabs, x->file);
        if (real == NULL)
            return cfail_errno(x, e, line, "volumes: bind source %s (%s): %s; fix the path or its "
                                           "permissions",
                               ssrc, sabs, strerror(e));
        v->bind = true;
        v->source = real;
        if (strchr(real, ':') != NULL) {
            autofree char *sreal = shown(real);
            return cfail(x, line,
                         "volumes: bind source %s is %s, whose ':' docker cannot mount; use a "
                         "path without ':'",
                         ssrc, sreal);
        }
    } else {
        if (!valid_name(src, 64))
            return cfail(x, line,
                         "volumes: %s is not a volume name (letters, digits, '_', '.', '-', "
                         "starting with a letter or digit, at most 64); start a host path with "
                         "./ or /",
                         ssrc);
        v->source = xstrdup(src);
    }
    v->target = WD_STEAL(target);
    v->line = line;
    return 0;
}

/* volumes = ["./keys:/keys:ro", "data:/var/lib/app"] */
static int docker_volumes(struct ctx *x, const struct wd_toml_kv *kv)
{
    struct wd_strv items = {0};
    int r = get_strv(x, kv, kv->val, &items);
    if (r < 0)
        return r;
    struct wd_config *c = x->c;
    c->volumes = xcalloc(items.n ? items.n : 1, sizeof *c->volumes);
    for (size_t i = 0; r == 0 && i < items.n; i++) {
        int line = wd_toml_array_at(kv->val, i)->line;
        c->nvolumes = i + 1;
        r = parse_volume(x, items.v[i], line, &c->volumes[i]);
        for (size_t j = 0; r == 0 && j < i; j++)
            if (strcmp(c->volumes[j].target, c->volumes[i].target) == 0) {
                autofree char *t = shown(c->volumes[i].target);
                r = cfail(x, line,
                          "volumes: target %s is used twice (items %zu and %zu); give each "
                          "volume its own target",
                          t, j + 1, i + 1);
            }
    }
    strv_free(&items);
    return r;
}

/* [a-zA-Z0-9_.-]+, not "." or "..": the file name under /run/secrets. */
static bool valid_secret_name(const char *s, size_t len)
{
    if (len == 0 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return false;
    }
    return true;
}

/* One secret: e is NAME = "path". */
static int parse_secret(struct ctx *x, const struct wd_toml_kv *e, struct wd_secret_cfg *s)
{
    autofree char *k = tkey(e->key);
    if (!valid_secret_name(e->key, e->key_len)) {
        autofree char *q = qs(e->key);
        return cfail(x, e->line,
                     "secrets: %s is not a secret name (letters, digits, '_', '.', '-'; not \".\" "
                     "or \"..\"); rename it",
                     q);
    }
    const struct wd_toml_node *v = e->val;
    if (v->type != WD_TOML_STRING) {
        const char *t = wd_toml_type_name(v->type);
        return cfail(x, e->line, "secrets.%s must be a string (the path of a file), not %s %s", k,
                     article(t), t);
    }
    if (strlen(v->u.str.s) != v->u.str.len)
        return cfail(x, e->line, "secrets.%s must not contain NUL characters", k);
    if (v->u.str.len == 0)
        return cfail(x, e->line, "secrets.%s is empty; give the path of the file", k);
    s->name = xstrdup(e->key);
    s->line = e->line;
    autofree char *what = xasprintf("secrets.%s", k);
    autofree char *abs = host_path(x, v->u.str.s);
    if (x->flags & WD_CONFIG_NO_FILES) {
        s->path = abs ? WD_STEAL(abs) : xstrdup(v->u.str.s);
        return 0;
    }
    if (abs == NULL)
        return no_home(x, e->line, what, v->u.str.s);
    autofree char *sabs = shown(abs);
    struct stat st;
    if (stat(abs, &st) < 0) {
        int err = errno;
        if (err == ENOENT || err == ENOTDIR)
            return cfail_errno(x, err, e->line,
                               "%s: %s does not exist; create it or fix the path (relative to %s)",
                               what, sabs, x->file);
        return cfail_errno(x, err, e->line, "%s: cannot read %s: %s; fix the path or its "
                                            "permissions",
                           what, sabs, strerror(err));
    }
    if (S_ISDIR(st.st_mode))
        return cfail_errno(x, EISDIR, e->line, "%s: %s is a directory; a secret must be a file",
                           what, sabs);
    if (!S_ISREG(st.st_mode))
        return cfail(x, e->line, "%s: %s is not a regular file; a secret must be a file", what,
                     sabs);
    int fd = open(abs, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int err = errno;
        return cfail_errno(x, err, e->line, "%s: cannot read %s: %s; make it readable by this user",
                           what, sabs, strerror(err));
    }
    close(fd);
    s->path = realpath(abs, NULL);
    if (s->path == NULL)
        s->path = WD_STEAL(abs);
    return 0;
}

/* secrets = {NAME = "path"} */
static int docker_secrets(struct ctx *x, const struct wd_toml_kv *kv)
{
    if (kv->val->type != WD_TOML_TABLE)
        return type_err(x, kv, "a table like {NAME = \"path\"}");
    size_t n = wd_toml_len(kv->val);
    x->c->secrets = xcalloc(n ? n : 1, sizeof *x->c->secrets);
    for (size_t i = 0; i < n; i++) {
        x->c->nsecrets = i + 1;
        int r = parse_secret(x, wd_toml_table_at(kv->val, i), &x->c->secrets[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

/* networks = ["dbnet"] */
static int docker_networks(struct ctx *x, const struct wd_toml_kv *kv)
{
    struct wd_strv *nets = &x->c->networks;
    int r = get_strv(x, kv, kv->val, nets);
    for (size_t i = 0; r == 0 && i < nets->n; i++) {
        int line = wd_toml_array_at(kv->val, i)->line;
        autofree char *q = qs(nets->v[i]);
        if (!valid_name(nets->v[i], 0))
            return cfail(x, line,
                         "networks: %s is not a network name (letters, digits, '_', '.', '-', "
                         "starting with a letter or digit); use a name from docker network ls",
                         q);
        if (strcmp(nets->v[i], "host") == 0 || strcmp(nets->v[i], "none") == 0)
            return cfail(x, line,
                         "networks: %s cannot be joined besides the app's own network; use a "
                         "user-defined network (docker network create)",
                         q);
        for (size_t j = 0; j < i; j++)
            if (strcmp(nets->v[j], nets->v[i]) == 0)
                return cfail(x, line, "networks: %s is listed twice; list each network once", q);
    }
    return r;
}

static bool valid_hostname(const char *s, size_t len)
{
    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '-'))
            return false;
    }
    return true;
}

/* extra_hosts = {"db.local" = "10.1.2.3"} */
static int docker_extra_hosts(struct ctx *x, const struct wd_toml_kv *kv)
{
    if (kv->val->type != WD_TOML_TABLE)
        return type_err(x, kv, "a table like {\"db.local\" = \"10.1.2.3\"}");
    for (size_t i = 0; i < wd_toml_len(kv->val); i++) {
        const struct wd_toml_kv *e = wd_toml_table_at(kv->val, i);
        autofree char *k = tkey(e->key);
        if (!valid_hostname(e->key, e->key_len)) {
            autofree char *q = qs(e->key);
            return cfail(x, e->line,
                         "extra_hosts: %s is not a host name (letters, digits, '.', '-', at most "
                         "253); fix the name",
                         q);
        }
        const struct wd_toml_node *v = e->val;
        if (v->type != WD_TOML_STRING) {
            const char *t = wd_toml_type_name(v->type);
            return cfail(x, e->line,
                         "extra_hosts.%s must be a string (an IP address), not %s %s; quote host "
                         "names with dots: extra_hosts = {\"db.local\" = \"10.1.2.3\"}",
                         k, article(t), t);
        }
        const char *addr = v->u.str.s;
        unsigned char buf[16];
        bool ok = strlen(addr) == v->u.str.len &&
                  (strcmp(addr, "host-gateway") == 0 || inet_pton(AF_INET, addr, buf) == 1 ||
                   inet_pton(AF_INET6, addr, buf) == 1);
        if (!ok) {
            autofree char *q = qs(addr);
            return cfail(x, e->line,
                         "extra_hosts.%s = %s is not an IP address; write an IPv4 or IPv6 "
                         "address, or \"host-gateway\" for the host",
                         k, q);
        }
        strv_push(&x->c->extra_hosts, xasprintf("%s:%s", e->key, addr));
    }
    return 0;
}

static int group_replicas(struct ctx *x, const struct wd_toml_kv *kv)
{
    struct wd_group_cfg *g = x->target;
    return get_int(x, kv, 1, WD_CONFIG_MAX_REPLICAS, &g->replicas);
}

static const struct field group_fields[] = {
    {"replicas", group_replicas}, {"env", apply_env},   {"env_file", apply_env_file},
    {"memory", apply_memory},     {"cpus", apply_cpus}, {"pids", apply_pids},
};

static int docker_replicas(struct ctx *x, const struct wd_toml_kv *kv)
{
    return get_int(x, kv, 1, WD_CONFIG_MAX_REPLICAS, &x->c->replicas);
}

/* mtls = true */
static int docker_mtls(struct ctx *x, const struct wd_toml_kv *kv)
{
    if (kv->val->type != WD_TOML_BOOL)
        return type_err(x, kv, "true or false");
    x->c->mtls = kv->val->u.b;
    return 0;
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
    if (x->c->groups == NULL) {
        x->c->groups = xcalloc(n, sizeof *x->c->groups);
        x->tmp->groups = xcalloc(n, sizeof *x->tmp->groups);
        x->tmp->ngroups = n;
    }
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

/* metrics = "localhost:9090": serve the app's metrics for Prometheus there */
static int docker_metrics(struct ctx *x, const struct wd_toml_kv *kv)
{
    int r = get_string(x, kv, &x->c->metrics_addr);
    if (r < 0)
        return r;
    if (!valid_hostport(x->c->metrics_addr)) {
        autofree char *q = qs(x->c->metrics_addr);
        return cfail(x, kv->line,
                     "metrics %s is not host:port (port 0-65535); write e.g. "
                     "\"localhost:9090\"",
                     q);
    }
    return 0;
}

/* drain = "10s", rollout_timeout = "2m": durations of a rollout (engine/deploy/rollout.c) */
static int docker_duration(struct ctx *x, const struct wd_toml_kv *kv, int64_t *out_ms,
                           const char *example)
{
    const struct wd_toml_node *v = kv->val;
    int64_t ns = 0;
    if (v->type != WD_TOML_STRING)
        return type_err(x, kv, "a duration string like \"10s\"");
    if (wd_config_parse_duration(v->u.str.s, &ns) < 0 || ns < 0) {
        autofree char *q = qs(v->u.str.s);
        return cfail(x, kv->line, "%s %s is not a valid duration; write e.g. \"%s\"", kv->key, q,
                     example);
    }
    if (ns > (int64_t)24 * 3600 * 1000000000LL)
        return cfail(x, kv->line, "%s: at most \"24h\"", kv->key);
    *out_ms = ns / 1000000;
    return 0;
}

static int docker_drain(struct ctx *x, const struct wd_toml_kv *kv)
{
    return docker_duration(x, kv, &x->c->drain_ms, "10s");
}

static int docker_rollout_timeout(struct ctx *x, const struct wd_toml_kv *kv)
{
    int r = docker_duration(x, kv, &x->c->rollout_timeout_ms, "2m");
    if (r == 0 && x->c->rollout_timeout_ms < 1000)
        return cfail(x, kv->line, "rollout_timeout: at least \"1s\"");
    return r;
}

static const struct field docker_fields[] = {
    {"replicas", docker_replicas},
    {"listeners", docker_listeners},
    {"groups", docker_groups},
    {"env", apply_env},
    {"env_file", apply_env_file},
    {"host_ports", docker_host_ports},
    {"volumes", docker_volumes},
    {"secrets", docker_secrets},
    {"networks", docker_networks},
    {"extra_hosts", docker_extra_hosts},
    {"memory", apply_memory},
    {"cpus", apply_cpus},
    {"pids", apply_pids},
    {"mtls", docker_mtls},
    {"metrics", docker_metrics},
    {"drain", docker_drain},
    {"rollout_timeout", docker_rollout_timeout},
};

/* The part of [docker] that needs the whole section: environment lists (env_file entries, then
 * env; a later KEY takes the place of an earlier one), the pids default, what groups inherit,
 * and secrets against volumes. */
static int docker_finish(struct ctx *x, int line, struct docker_tmp *t)
{
    struct wd_config *c = x->c;
    const struct wd_strv *sec[] = {&t->sec.file, &t->sec.table};
    int r = env_merge(x, line, "env_file and env", &c->docker_env, sec, WD_ARRAY_LEN(sec));
    if (r < 0)
        return r;
    if (c->res.pids == 0)
        c->res.pids = WD_CONFIG_DEFAULT_PIDS;
    for (size_t i = 0; i < c->ngroups; i++) {
        struct wd_group_cfg *g = &c->groups[i];
        if (g->replicas == 0)
            g->replicas = c->replicas;
        if (g->res.memory_bytes == 0)
            g->res.memory_bytes = c->res.memory_bytes;
        if (g->res.nano_cpus == 0)
            g->res.nano_cpus = c->res.nano_cpus;
        if (g->res.pids == 0)
            g->res.pids = c->res.pids;
        const struct wd_strv *own[] = {&c->docker_env, &t->groups[i].file, &t->groups[i].table};
        autofree char *name = tkey(g->component);
        autofree char *what = xasprintf("groups.%s", name);
        r = env_merge(x, g->line, what, &g->env, own, WD_ARRAY_LEN(own));
        if (r < 0)
            return r;
    }
    for (size_t i = 0; i < c->nvolumes; i++)
        for (size_t j = 0; j < c->nsecrets; j++) {
            const char *tg = c->volumes[i].target;
            if (strncmp(tg, "/run/secrets/", 13) == 0 && strcmp(tg + 13, c->secrets[j].name) == 0) {
                autofree char *st = shown(tg);
                return cfail(x, c->volumes[i].line,
                             "volumes: target %s is where the secret %s is mounted; choose "
                             "another path",
                             st, c->secrets[j].name);
            }
        }
    return 0;
}

static void docker_tmp_free(struct docker_tmp *t)
{
    strv_free(&t->sec.file);
    strv_free(&t->sec.table);
    for (size_t i = 0; i < t->ngroups; i++) {
        strv_free(&t->groups[i].file);
        strv_free(&t->groups[i].table);
    }
    free(t->groups);
}

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

/* Edit distance (insertions, deletions, substitutions), for "did you mean". */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return 99;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] == b[j - 1] ? 0 : 1);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* Sections are components (full paths with a '/') or deployers' own ([docker], [multi], ...):
 * a near miss of ours is a typo that would silently drop its keys. */
static int check_section_names(const char *file, const struct wd_toml_node *root,
                               struct wd_error **err)
{
    static const char *const known[] = {WD_CONFIG_APP_SHORT, WD_CONFIG_DOCKER_SHORT,
                                        "single", "multi", "ssh", "gke", "gke-local", "kube"};
    static const char *const ours[] = {WD_CONFIG_APP_SHORT, WD_CONFIG_DOCKER_SHORT};
    size_t n = wd_toml_len(root);
    for (size_t i = 0; i < n; i++) {
        const struct wd_toml_kv *kv = wd_toml_table_at(root, i);
        if (strchr(kv->key, '/'))
            continue;
        bool is_known = false;
        for (size_t k = 0; k < WD_ARRAY_LEN(known); k++)
            is_known = is_known || strcmp(kv->key, known[k]) == 0;
        if (is_known)
            continue;
        for (size_t k = 0; k < WD_ARRAY_LEN(ours); k++) {
            autofree char *lower = xstrdup(kv->key);
            for (char *p = lower; *p; p++)
                *p = (char)((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p);
            if (edit_distance(lower, ours[k]) <= 2)
                return wd_err(err, EINVAL,
                              "%s:%d: unknown section [%s]; did you mean [%s]? (its keys would "
                              "be ignored)",
                              file, kv->line, kv->key, ours[k]);
        }
        wd_warn("%s:%d: section [%s] is ignored: it is not a component (those are full names "
                "such as \"example.com/app/Cart\") nor a deployer's section",
                file, kv->line, kv->key);
    }
    return 0;
}

static int read_app(const char *file, const struct wd_toml_node *root, struct wd_config *c,
                    unsigned flags, struct wd_error **err)
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
    (void)flags;
    const struct wd_toml_kv *bkv = wd_toml_find(sec->val, "binary");
    c->binary_line = bkv ? bkv->line : sec->val->line;
    c->binary_given = xstrdup(c->binary);
    free(c->binary);
    c->binary = abs;
    if (c->name == NULL || c->name[0] == 0) {
        free(c->name);
        c->name = xstrdup(path_base(c->binary));
    }
    return 0;
}

static int read_docker(const char *file, const struct wd_toml_node *root, struct wd_config *c,
                       unsigned flags, struct wd_error **err)
{
    const struct wd_toml_kv *sec = NULL;
    int r = find_section(file, root, WD_CONFIG_DOCKER_SHORT, WD_CONFIG_DOCKER_SECTION, &sec, err);
    if (r < 0)
        return r;
    if (sec == NULL) {
        c->res.pids = WD_CONFIG_DEFAULT_PIDS;
        return 0;
    }
    autofree char *label = section_label(sec->key);
    autofree char *dir = path_dir(c->path);
    struct docker_tmp tmp = {0};
    struct ctx x = {
        .file = file, .label = label, .dir = dir, .c = c, .tmp = &tmp, .flags = flags, .err = err};
    r = apply_fields(&x, sec->val, docker_fields, WD_ARRAY_LEN(docker_fields));
    if (r == 0)
        r = docker_finish(&x, sec->val->line, &tmp);
    docker_tmp_free(&tmp);
    return r;
}

int wd_config_parse(const char *text, size_t len, const char *path, struct wd_config **out,
                    struct wd_error **err)
{
    return wd_config_parse_ex(text, len, path, 0, out, err);
}

int wd_config_parse_ex(const char *text, size_t len, const char *path, unsigned flags,
                       struct wd_config **out, struct wd_error **err)
{
    if (flags & ~(unsigned)WD_CONFIG_NO_FILES)
        return wd_err(err, EINVAL, "%s: unknown config parse flags %#x", path, flags);
    struct wd_toml *doc = NULL;
    int r = wd_toml_parse(text, len, path, &doc, err);
    if (r < 0)
        return r;
    struct wd_config *c = xzalloc(sizeof *c);
    c->path = path_abs(NULL, path);
    c->path_shown = xstrdup(path);
    c->replicas = 1;
    c->drain_ms = WD_CONFIG_DEFAULT_DRAIN_MS;
    c->rollout_timeout_ms = WD_CONFIG_DEFAULT_ROLLOUT_TIMEOUT_MS;
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
        r = check_section_names(path, root, err);
    if (r == 0)
        r = read_app(path, root, c, flags, err);
    if (r == 0)
        r = read_docker(path, root, c, flags, err);
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
    c->drain_ms = WD_CONFIG_DEFAULT_DRAIN_MS;
    c->rollout_timeout_ms = WD_CONFIG_DEFAULT_ROLLOUT_TIMEOUT_MS;
    c->res.pids = WD_CONFIG_DEFAULT_PIDS;
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

void wd_config_free(struct wd_config *c)
{
    if (c == NULL)
        return;
    free(c->path);
    free(c->metrics_addr);
    free(c->name);
    free(c->binary);
    strv_free(&c->args);
    strv_free(&c->env);
    for (size_t i = 0; i < c->ncolocate; i++)
        strv_free(&c->colocate[i]);
    free(c->colocate);
    free(c->binary_given);
    free(c->path_shown);
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
    for (size_t i = 0; i < c->ngroups; i++) {
        free(c->groups[i].component);
        strv_free(&c->groups[i].env);
    }
    free(c->groups);
    strv_free(&c->docker_env);
    free(c->host_ports);
    for (size_t i = 0; i < c->nvolumes; i++) {
        free(c->volumes[i].source);
        free(c->volumes[i].target);
    }
    free(c->volumes);
    for (size_t i = 0; i < c->nsecrets; i++) {
        free(c->secrets[i].name);
        free(c->secrets[i].path);
    }
    free(c->secrets);
    strv_free(&c->networks);
    strv_free(&c->extra_hosts);
    free(c);
}

/* The groups entry for the group that holds component: one naming it, or naming a component
 * colocated with it; the first such entry, as the deployer picks its replicas. */
static const struct wd_group_cfg *group_of(const struct wd_config *c, const char *component)
{
    if (component == NULL)
        return NULL;
    const struct wd_strv *coloc = NULL;
    for (size_t i = 0; coloc == NULL && i < c->ncolocate; i++)
        for (size_t j = 0; j < c->colocate[i].n; j++)
            if (strcmp(c->colocate[i].v[j], component) == 0)
                coloc = &c->colocate[i];
    for (size_t i = 0; i < c->ngroups; i++) {
        const char *named = c->groups[i].component;
        if (strcmp(named, component) == 0)
            return &c->groups[i];
        for (size_t j = 0; coloc != NULL && j < coloc->n; j++)
            if (strcmp(named, coloc->v[j]) == 0)
                return &c->groups[i];
    }
    return NULL;
}

const struct wd_strv *wd_config_group_env(const struct wd_config *c, const char *component)
{
    const struct wd_group_cfg *g = group_of(c, component);
    return g ? &g->env : &c->docker_env;
}

struct wd_resources wd_config_group_res(const struct wd_config *c, const char *component)
{
    const struct wd_group_cfg *g = group_of(c, component);
    return g ? g->res : c->res;
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

int wd_config_check_binary(const struct wd_config *c, struct wd_error **err)
{
    if (access(c->binary, F_OK) == 0 || c->path == NULL || c->binary_given == NULL)
        return 0; /* exists, or it is the argument itself: the binary's own check speaks */
    int e = errno;
    return wd_err(err, e == ENOENT ? ENOENT : e,
                  "%s:%d: [serviceweaver] binary \"%s\" is %s, which %s (a relative binary is "
                  "relative to the toml's directory; build the app or fix the path)",
                  c->path_shown ? c->path_shown : c->path, c->binary_line, c->binary_given,
                  c->binary, e == ENOENT ? "does not exist" : strerror(e));
}

int wd_config_resolve_input(const char *arg, char **out, struct wd_error **err)
{
    const char *dir = arg ? arg : ".";
    struct stat st;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
        char *p = strcmp(dir, ".") == 0 ? xstrdup("weaver.toml")
                                        : xasprintf("%s%sweaver.toml", dir,
                                                    dir[strlen(dir) - 1] == '/' ? "" : "/");
        if (access(p, F_OK) != 0) {
            free(p);
            return wd_err(err, ENOENT,
                          "%s has no weaver.toml; give the app's weaver.toml or binary%s",
                          arg ? arg : "this directory", arg ? "" : " (or run it where the toml is)");
        }
        *out = p;
        return wd_config_check_input(*out, err);
    }
    *out = xstrdup(arg);
    int r = wd_config_check_input(*out, err);
    if (r < 0) {
        free(*out);
        *out = NULL;
    }
    return r;
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

int wd_config_check_app_name(const char *s, struct wd_error **err)
{
    size_t n = strlen(s);
    if (n == 0)
        return wd_err(err, EINVAL, "the app name is empty; set [serviceweaver] name");
    if (n > 40)
        return wd_err(err, EINVAL,
                      "app name \"%s\" is %zu characters long, at most 40 fit in container "
                      "and network names; set a shorter [serviceweaver] name",
                      s, n);
    if (s[0] == '.')
        return wd_err(err, EINVAL,
                      "app name \"%s\" starts with '.'; set [serviceweaver] name to start with "
                      "a letter or digit",
                      s);
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
              *p == '.'))
            return wd_err(err, EINVAL,
                          "app name \"%s\" has '%c' at position %zu; set [serviceweaver] name "
                          "to lowercase letters, digits, '-', '_' or '.'",
                          s, *p, (size_t)(p - s) + 1);
    return 0;
}

bool wd_env_has_key(const struct wd_strv *env, const char *kv)
{
    const char *eq = strchr(kv, '=');
    size_t kl = eq ? (size_t)(eq - kv) : strlen(kv);
    for (size_t i = 0; i < env->n; i++)
        if (strncmp(env->v[i], kv, kl) == 0 && env->v[i][kl] == '=')
            return true;
    return false;
}
