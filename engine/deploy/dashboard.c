/* engine/deploy/dashboard.c - see dashboard.h. The data comes from replicas and the log file, so
 * every string is escaped where it is written, and every field is read through the typed getters
 * below (a missing or wrongly typed field reads as absent). */
#include "engine/deploy/dashboard.h"
#include "engine/deploy/deploy.h"
#include "engine/base/util.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define put(o, s) put_str((o), (s))
#define putf(o, ...) ((void)wd_buf_printf((o), __VA_ARGS__))

static void put_str(struct wd_buf *o, const char *s) { (void)wd_buf_append(o, s, strlen(s)); }

/* ---- reading the views ---- */

static const cJSON *get(const cJSON *o, const char *key)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}
static const char *gstr(const cJSON *o, const char *key)
{
    const cJSON *s = get(o, key);
    return cJSON_IsString(s) && s->valuestring ? s->valuestring : NULL;
}
static const char *gstr0(const cJSON *o, const char *key)
{
    const char *s = gstr(o, key);
    return s ? s : "";
}
static double gnum(const cJSON *o, const char *key, double dflt)
{
    const cJSON *n = get(o, key);
    return cJSON_IsNumber(n) && isfinite(n->valuedouble) ? n->valuedouble : dflt;
}
/* An integer field; values beyond ±2^53 (not exact in a double) read as dflt. */
static int64_t gint(const cJSON *o, const char *key, int64_t dflt)
{
    double d = gnum(o, key, NAN);
    if (isnan(d) || d > 9007199254740992.0 || d < -9007199254740992.0)
        return dflt;
    return (int64_t)d;
}
static const cJSON *gobj(const cJSON *o, const char *key)
{
    const cJSON *x = get(o, key);
    return cJSON_IsObject(x) ? x : NULL;
}
static const cJSON *garr(const cJSON *o, const char *key)
{
    const cJSON *a = get(o, key);
    return cJSON_IsArray(a) ? a : NULL;
}

/* ---- writing ---- */

/* HTML-escape s for text and for quoted attribute values alike. */
static void esc_n(struct wd_buf *o, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n && s[i]; i++) {
        const char *rep = NULL;
        switch (s[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: break;
        }
        if (rep == NULL) {
            run++;
            continue;
        }
        (void)wd_buf_append(o, s + i - run, run);
        run = 0;
        put(o, rep);
    }
    size_t len = strnlen(s, n);
    (void)wd_buf_append(o, s + len - run, run);
}
static void esc(struct wd_buf *o, const char *s)
{
    if (s)
        esc_n(o, s, strlen(s));
}
/* At most max characters of s (bytes, moved back to a UTF-8 boundary), then an ellipsis. */
static void esc_trunc(struct wd_buf *o, const char *s, size_t max)
{
    size_t len = strlen(s);
    if (len <= max) {
        esc_n(o, s, len);
        return;
    }
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    esc_n(o, s, max);
    put(o, "\xe2\x80\xa6");
}
/* Percent-encode a query value; the result needs no further escaping in an attribute. */
static void urlenc(struct wd_buf *o, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            (void)wd_buf_append(o, p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            (void)wd_buf_append(o, e, 3);
        }
    }
}

static void fmt_micros(char *buf, size_t n, double us)
{
    if (!isfinite(us) || us < 0)
        snprintf(buf, n, "-");
    else if (us < 1000)
        snprintf(buf, n, "%.0f\xc2\xb5s", us);
    else if (us < 1e6)
        snprintf(buf, n, "%.1fms", us / 1e3);
    else
        snprintf(buf, n, "%.2fs", us / 1e6);
}
static void fmt_num(char *buf, size_t n, double v)
{
    if (v == (double)(int64_t)v && v < 1e15 && v > -1e15)
        snprintf(buf, n, "%" PRId64, (int64_t)v);
    else
        snprintf(buf, n, "%.6g", v);
}

/* A colour per group, the same in the graph and the trace timeline. */
static const char *const palette[] = {"#4e79a7", "#f28e2b", "#59a14f", "#b07aa1",
                                      "#76b7b2", "#edc948", "#e15759", "#9c755f",
                                      "#5b8fd9", "#8cd17d", "#d37295", "#86bcb6"};
static const char *group_color(const char *group)
{
    uint32_t h = 5381;
    for (const char *p = group ? group : ""; *p; p++)
        h = h * 33 + (unsigned char)*p;
    return palette[h % WD_ARRAY_LEN(palette)];
}

/* ---- header, listeners, replicas ---- */

static void fmt_uptime(char *buf, size_t n, int64_t secs)
{
    if (secs < 0)
        snprintf(buf, n, "-");
    else if (secs < 60)
        snprintf(buf, n, "%" PRId64 "s", secs);
    else if (secs < 3600)
        snprintf(buf, n, "%" PRId64 "m %" PRId64 "s", secs / 60, secs % 60);
    else if (secs < 86400)
        snprintf(buf, n, "%" PRId64 "h %" PRId64 "m", secs / 3600, secs / 60 % 60);
    else
        snprintf(buf, n, "%" PRId64 "d %" PRId64 "h", secs / 86400, secs / 3600 % 24);
}

static void render_header(struct wd_buf *o, const cJSON *st)
{
    const char *app = gstr(st, "app");
    put(o, "<header><h1>");
    esc(o, app ? app : "(no status)");
    put(o, "</h1><div class=\"meta\"><span>deployment <code>");
    esc_n(o, gstr0(st, "deployment"), 8);
    put(o, "</code></span><span>runtime <b>");
    esc(o, gstr(st, "runtime") ? gstr(st, "runtime") : "-");
    int64_t started = gint(st, "started", 0);
    char up[64];
    fmt_uptime(up, sizeof up, started > 0 ? (int64_t)time(NULL) - started : -1);
    putf(o, "</b></span><span>up <b class=\"uptime\">%s</b></span>", up);
    put(o, "<span>listeners ");
    int nl = 0;
    const cJSON *l;
    cJSON_ArrayForEach(l, gobj(st, "listeners"))
    {
        if (!cJSON_IsString(l) || !l->string)
            continue;
        put(o, nl++ ? ", " : "");
        put(o, "<b>");
        esc(o, l->string);
        put(o, "</b> <a class=\"listener\" href=\"http://");
        esc(o, l->valuestring);
        put(o, "/\">");
        esc(o, l->valuestring);
        put(o, "</a>");
    }
    put(o, nl ? "</span>" : "none</span>");
    put(o, "</div></header>\n");
}

static const char *state_class(const char *state)
{
    if (strcmp(state, "running") == 0)
        return "ok";
    if (strcmp(state, "starting") == 0 || strcmp(state, "restarting") == 0 ||
        strcmp(state, "created") == 0)
        return "warn";
    return "bad";
}

static void render_replicas(struct wd_buf *o, const cJSON *st)
{
    put(o, "<section id=\"replicas\"><h2>Groups and replicas</h2>");
    const cJSON *groups = garr(st, "groups"), *g;
    if (groups && cJSON_GetArraySize(groups) > 0) {
        put(o, "<div class=\"groups\">");
        cJSON_ArrayForEach(g, groups)
        {
            const char *sh = gstr(g, "short") ? gstr(g, "short") : gstr0(g, "name");
            const cJSON *active = get(g, "active");
            put(o, "<span class=\"chip\" data-group=\"");
            esc(o, sh);
            put(o, "\" title=\"");
            esc(o, gstr0(g, "name"));
            putf(o, "\"><i style=\"background:%s\"></i>", group_color(sh));
            esc(o, sh);
            putf(o, " &times;%" PRId64 "%s</span>", gint(g, "want", 0),
                 cJSON_IsFalse(active) ? " (inactive)" : "");
        }
        put(o, "</div>");
    }
    const cJSON *reps = garr(st, "replicas"), *r;
    if (reps == NULL || cJSON_GetArraySize(reps) == 0) {
        put(o, "<p class=\"none\">No replicas.</p></section>\n");
        return;
    }
    put(o, "<table class=\"replicas\"><thead><tr><th>Group</th><th>#</th><th>State</th>"
           "<th>Health</th><th class=\"num\">Restarts</th><th>Address</th><th>Last exit</th>"
           "</tr></thead>"
           "<tbody>");
    cJSON_ArrayForEach(r, reps)
    {
        const char *grp = gstr0(r, "group"), *state = gstr0(r, "state");
        const char *health = gstr0(r, "health");
        int64_t idx = gint(r, "replica", -1), restarts = gint(r, "restarts", 0);
        char idxs[32] = "";
        if (idx >= 0)
            snprintf(idxs, sizeof idxs, "%" PRId64, idx);
        put(o, "<tr data-group=\"");
        esc(o, grp);
        putf(o, "\" data-replica=\"%s\" data-restarts=\"%" PRId64 "\"%s><td>", idxs, restarts,
             cJSON_IsTrue(get(r, "retiring")) ? " class=\"retiring\"" : "");
        putf(o, "<i class=\"dot\" style=\"background:%s\"></i>", group_color(grp));
        esc(o, grp);
        putf(o, "</td><td>%s</td><td class=\"%s\">", idxs, state_class(state));
        esc(o, *state ? state : "-");
        if (cJSON_IsTrue(get(r, "retiring")))
            put(o, " (retiring)");
        putf(o, "</td><td class=\"%s\">",
             strncmp(health, "healthy", 7) == 0 ? "ok" : (*health ? "warn" : ""));
        esc(o, *health ? health : "-");
        putf(o, "</td><td class=\"num%s\">%" PRId64 "</td><td>", restarts > 0 ? " warn" : "",
             restarts);
        const char *ctr = gstr(r, "container"), *addr = gstr(r, "address");
        if (ctr || addr) {
            if (ctr) {
                put(o, "<code>");
                esc(o, ctr);
                put(o, "</code> ");
            }
            esc(o, addr);
        } else if (gint(r, "pid", 0) > 0) {
            putf(o, "pid %" PRId64, gint(r, "pid", 0));
        } else {
            put(o, "-");
        }
        put(o, "</td><td class=\"exit\">");
        esc(o, gstr0(r, "last_exit"));
        put(o, "</td></tr>");
    }
    put(o, "</tbody></table></section>\n");
}

/* ---- call graph: a layered layout, drawn as SVG ---- */

#define BOX_W 150
#define BOX_H 38
#define COL_W 178
#define ROW_H 96
#define MAX_COLS 7
#define MARGIN 16

struct node {
    const char *name;
    char *shortn;
    char *group; /* short name of its group */
    int layer;
    double key; /* order within the layer */
    double x, y;
    bool main;
};
struct edge {
    size_t from, to;
    const cJSON *j;
};

static size_t node_find(const struct node *nodes, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(nodes[i].name, name) == 0)
            return i;
    return SIZE_MAX;
}

static size_t node_add(struct node *nodes, size_t *n, const char *name, const char *shortn,
                       const char *group)
{
    size_t i = node_find(nodes, *n, name);
    if (i != SIZE_MAX || *n >= WD_DASH_MAX_NODES)
        return i;
    struct node *x = &nodes[(*n)++];
    x->name = name;
    x->shortn = shortn && *shortn ? xstrdup(shortn) : wd_component_short(name);
    x->group = group && *group ? xstrdup(group) : xstrdup(x->shortn);
    x->main = strcmp(x->shortn, "weaver.Main") == 0;
    return (size_t)(x - nodes);
}

static int node_cmp(const void *a, const void *b)
{
    const struct node *x = *(const struct node *const *)a, *y = *(const struct node *const *)b;
    if (x->layer != y->layer)
        return x->layer < y->layer ? -1 : 1;
    if (x->main != y->main)
        return x->main ? -1 : 1;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    int c = strcmp(x->group, y->group);
    return c ? c : strcmp(x->name, y->name);
}

/* Layers by longest call path from the roots (Main on top); within a layer, callees sit under
 * the mean x of their callers; wide layers wrap into rows of MAX_COLS, odd rows shifted by half
 * a column so lines from above pass between boxes. Box positions depend only on the data. */
static void layout(struct node *nodes, size_t n, const struct edge *edges, size_t ne,
                   double *width, double *height)
{
    for (size_t pass = 0; pass < n; pass++) {
        bool changed = false;
        for (size_t e = 0; e < ne; e++) {
            struct node *u = &nodes[edges[e].from], *v = &nodes[edges[e].to];
            if (u == v || v->main || u->layer + 1 > (int)n || v->layer >= u->layer + 1)
                continue;
            v->layer = u->layer + 1;
            changed = true;
        }
        if (!changed)
            break;
    }
    size_t widest = 1;
    for (int L = 0, seen = 0; (size_t)seen < n; L++) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            k += nodes[i].layer == L;
        seen += (int)k;
        widest = k > widest ? k : widest;
    }
    size_t cols = widest < MAX_COLS ? widest : MAX_COLS;
    bool wraps = widest > MAX_COLS;
    double inner = (double)cols * COL_W + (wraps ? COL_W / 2.0 : 0);
    struct node **order = xcalloc(n ? n : 1, sizeof *order);
    double y = MARGIN;
    for (int L = 0, placed = 0; (size_t)placed < n; L++) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            struct node *v = &nodes[i];
            if (v->layer != L)
                continue;
            double sum = 0;
            int callers = 0;
            for (size_t e = 0; e < ne; e++) {
                const struct node *u = &nodes[edges[e].from];
                if (&nodes[edges[e].to] == v && u->layer < L) {
                    sum += u->x;
                    callers++;
                }
            }
            v->key = callers ? sum / callers : 0;
            order[k++] = v;
        }
        qsort(order, k, sizeof *order, node_cmp);
        for (size_t j = 0; j < k; j++) {
            size_t row = j / cols, col = j % cols;
            size_t in_row = k - row * cols < cols ? k - row * cols : cols;
            double x0 = MARGIN + (inner - (double)in_row * COL_W) / 2;
            if (wraps) /* rows flush left, odd ones half a column right; a short row centred */
                x0 = MARGIN + (row % 2 ? COL_W / 2.0 : 0) + (double)(cols - in_row) * COL_W / 2;
            order[j]->x = x0 + (double)col * COL_W + (COL_W - BOX_W) / 2.0;
            order[j]->y = y + (double)row * ROW_H;
        }
        if (k)
            y += (double)((k + cols - 1) / cols) * ROW_H;
        placed += (int)k;
    }
    free(order);
    *width = inner + 2 * MARGIN;
    *height = y - ROW_H + BOX_H + 2 * MARGIN;
    if (n == 0)
        *height = 2 * MARGIN;
}

static void render_edge(struct wd_buf *o, const struct node *u, const struct node *v,
                        const cJSON *j)
{
    int64_t calls = gint(j, "calls", 0), errors = gint(j, "errors", 0);
    double mean = gnum(j, "mean_micros", NAN);
    put(o, "<g class=\"edge");
    put(o, errors > 0 ? " err" : "");
    put(o, "\" data-caller=\"");
    esc(o, u->name);
    put(o, "\" data-callee=\"");
    esc(o, v->name);
    put(o, "\"><title>");
    esc(o, u->shortn);
    put(o, " \xe2\x86\x92 ");
    esc(o, v->shortn);
    if (!isnan(mean)) {
        char m[32];
        fmt_micros(m, sizeof m, mean);
        putf(o, ", mean %s", m);
    }
    put(o, "</title>");
    double x1, y1, x2, y2, lx, ly;
    if (u == v) {
        x1 = u->x + BOX_W;
        y1 = u->y + 8;
        putf(o,
             "<path d=\"M%.1f %.1fC%.1f %.1f %.1f %.1f %.1f %.1f\" marker-end=\"url(#arr)\"/>",
             x1, y1, x1 + 34, y1 - 18, x1 + 34, y1 + BOX_H + 2, x1 + 2, y1 + BOX_H - 14);
        lx = x1 + 30;
        ly = u->y + BOX_H / 2.0 + 4;
    } else {
        x1 = u->x + BOX_W / 2.0;
        x2 = v->x + BOX_W / 2.0;
        if (v->y > u->y) {
            y1 = u->y + BOX_H;
            y2 = v->y;
        } else if (v->y < u->y) {
            y1 = u->y;
            y2 = v->y + BOX_H;
        } else {
            y1 = y2 = u->y + BOX_H / 2.0;
            x1 = v->x > u->x ? u->x + BOX_W : u->x;
            x2 = v->x > u->x ? v->x : v->x + BOX_W;
        }
        putf(o, "<path d=\"M%.1f %.1fL%.1f %.1f\" marker-end=\"url(#arr)\"/>", x1, y1, x2, y2);
        /* the label just before the arrowhead, in the gap above (below) the callee's row: a
         * long line crosses other rows, whose boxes would hide a label at its middle */
        double dy = y2 > y1 ? y2 - y1 : y1 - y2, t = dy > 0 ? (dy - 16) / dy : 0.5;
        t = t < 0.5 ? 0.5 : t > 0.8 && dy < ROW_H ? 0.8 : t;
        lx = x1 + (x2 - x1) * t;
        ly = y1 + (y2 - y1) * t + 4;
    }
    putf(o, "<text class=\"elabel\" x=\"%.1f\" y=\"%.1f\">%" PRId64 " calls, %" PRId64 " errors",
         lx, ly, calls, errors);
    double rate = gnum(j, "rate", NAN); /* calls per second lately, from the deployer */
    if (!isnan(rate) && rate >= 0)
        putf(o, rate >= 10 ? ", %.0f/s" : ", %.1f/s", rate);
    put(o, "</text></g>\n");
}

static void render_graph(struct wd_buf *o, const cJSON *graph)
{
    put(o, "<section id=\"graph\"><h2>Call graph</h2>");
    const cJSON *comps = garr(graph, "components"), *edges_j = garr(graph, "edges"), *c;
    if (!comps && !edges_j) {
        put(o, "<p class=\"none\">No call graph.</p></section>\n");
        return;
    }
    struct node *nodes = xcalloc(WD_DASH_MAX_NODES, sizeof *nodes);
    struct edge *edges = xcalloc(WD_DASH_MAX_EDGES, sizeof *edges);
    size_t n = 0, ne = 0;
    cJSON_ArrayForEach(c, comps)
    {
        const char *name = gstr(c, "name");
        if (name && *name)
            node_add(nodes, &n, name, gstr(c, "short"), gstr(c, "group"));
    }
    cJSON_ArrayForEach(c, edges_j)
    {
        const char *from = gstr(c, "caller"), *to = gstr(c, "callee");
        if (!from || !to || !*from || !*to || ne >= WD_DASH_MAX_EDGES)
            continue;
        size_t u = node_add(nodes, &n, from, NULL, NULL), v = node_add(nodes, &n, to, NULL, NULL);
        if (u == SIZE_MAX || v == SIZE_MAX)
            continue;
        edges[ne++] = (struct edge){u, v, c};
    }
    double w, h;
    layout(nodes, n, edges, ne, &w, &h);
    bool self = false;
    for (size_t e = 0; e < ne; e++)
        self |= edges[e].from == edges[e].to;
    if (self)
        w += 40;
    putf(o,
         "<div class=\"graphbox\"><svg class=\"graph\" xmlns=\"http://www.w3.org/2000/svg\" "
         "viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" height=\"%.0f\" role=\"img\">"
         "<defs><marker id=\"arr\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" "
         "markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">"
         "<path d=\"M0 0L10 5L0 10z\"/></marker></defs>\n",
         w, h, w, h);
    for (size_t e = 0; e < ne; e++)
        render_edge(o, &nodes[edges[e].from], &nodes[edges[e].to], edges[e].j);
    for (size_t i = 0; i < n; i++) {
        const struct node *x = &nodes[i];
        bool colocated = strcmp(x->group, x->shortn) != 0;
        put(o, "<g class=\"node\" data-component=\"");
        esc(o, x->name);
        put(o, "\" data-group=\"");
        esc(o, x->group);
        put(o, "\"><title>");
        esc(o, x->name);
        put(o, " (group ");
        esc(o, x->group);
        putf(o,
             ")</title><rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\" rx=\"6\" "
             "style=\"stroke:%s\"/><rect x=\"%.1f\" y=\"%.1f\" width=\"6\" height=\"%d\" "
             "rx=\"2\" style=\"fill:%s\"/>",
             x->x, x->y, BOX_W, BOX_H, group_color(x->group), x->x, x->y, BOX_H,
             group_color(x->group));
        putf(o, "<text x=\"%.1f\" y=\"%.1f\" class=\"nname\">", x->x + BOX_W / 2.0 + 3,
             x->y + (colocated ? 16 : 23));
        esc_trunc(o, x->shortn, 20);
        put(o, "</text>");
        if (colocated) {
            putf(o, "<text x=\"%.1f\" y=\"%.1f\" class=\"ngroup\">in ", x->x + BOX_W / 2.0 + 3,
                 x->y + 30);
            esc_trunc(o, x->group, 20);
            put(o, "</text>");
        }
        put(o, "</g>\n");
    }
    put(o, "</svg></div></section>\n");
    for (size_t i = 0; i < n; i++) {
        free(nodes[i].shortn);
        free(nodes[i].group);
    }
    free(nodes);
    free(edges);
}

/* ---- metrics ---- */

#define MAX_BUCKETS 1025

struct mrow {
    const char *caller, *component, *method;
    char *caller_s, *component_s;
    double calls, errors, lat_count, lat_sum;
    const cJSON *bounds;
    double *counts; /* len(bounds)+1 */
    size_t nb;
};

static bool is_internal(const char *comp) { return strstr(comp, "deployerControl") != NULL; }

/* The q-quantile of a histogram, interpolated linearly inside its bucket; the overflow bucket
 * reads as the last bound. */
static double quantile(const struct mrow *r, double q)
{
    double total = 0;
    for (size_t i = 0; i <= r->nb; i++)
        total += r->counts[i];
    if (total <= 0)
        return NAN;
    double rank = q * total, cum = 0;
    for (size_t i = 0; i <= r->nb; i++) {
        double c = r->counts[i];
        if (c > 0 && cum + c >= rank) {
            double lo = i == 0 ? 0 : cJSON_GetArrayItem(r->bounds, (int)i - 1)->valuedouble;
            if (i == r->nb)
                return lo;
            double hi = cJSON_GetArrayItem(r->bounds, (int)i)->valuedouble;
            return lo + (hi - lo) * (rank - cum) / c;
        }
        cum += c;
    }
    return NAN;
}

/* bounds: an array of finite increasing numbers; counts: one more number than bounds. */
static size_t hist_ok(const cJSON *m)
{
    const cJSON *b = garr(m, "bounds"), *c = garr(m, "counts"), *x;
    if (!b || !c)
        return 0;
    int nb = cJSON_GetArraySize(b);
    if (nb < 1 || nb >= MAX_BUCKETS || cJSON_GetArraySize(c) != nb + 1)
        return 0;
    double prev = -INFINITY;
    cJSON_ArrayForEach(x, b)
    {
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || x->valuedouble <= prev)
            return 0;
        prev = x->valuedouble;
    }
    cJSON_ArrayForEach(x, c) if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble)) return 0;
    return (size_t)nb;
}

static int mrow_cmp(const void *a, const void *b)
{
    const struct mrow *x = a, *y = b;
    int c = strcmp(x->component_s, y->component_s);
    if (c == 0)
        c = strcmp(x->method, y->method);
    return c ? c : strcmp(x->caller_s, y->caller_s);
}

static void render_methods(struct wd_buf *o, const cJSON *metrics)
{
    put(o, "<section id=\"methods\"><h2>Methods</h2>");
    struct mrow *rows = xcalloc(WD_DASH_MAX_ROWS, sizeof *rows);
    size_t n = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, garr(metrics, "metrics"))
    {
        const char *name = gstr(m, "name");
        int kind = !name                                                        ? -1
                   : strcmp(name, "serviceweaver_method_count") == 0            ? 0
                   : strcmp(name, "serviceweaver_method_error_count") == 0      ? 1
                   : strcmp(name, "serviceweaver_method_latency_micros") == 0 ? 2
                                                                                : -1;
        const cJSON *labels = get(m, "labels");
        const char *caller = gstr(labels, "caller"), *comp = gstr(labels, "component"),
                   *method = gstr(labels, "method");
        if (kind < 0 || !comp || !method || is_internal(comp))
            continue;
        if (!caller)
            caller = "";
        size_t i;
        for (i = 0; i < n; i++)
            if (!strcmp(rows[i].caller, caller) && !strcmp(rows[i].component, comp) &&
                !strcmp(rows[i].method, method))
                break;
        if (i == n) {
            if (n >= WD_DASH_MAX_ROWS)
                continue;
            rows[n++] = (struct mrow){.caller = caller, .component = comp, .method = method};
        }
        struct mrow *r = &rows[i];
        double v = gnum(m, "value", 0);
        if (kind == 0)
            r->calls += v;
        else if (kind == 1)
            r->errors += v;
        else {
            r->lat_count += gnum(m, "count", 0);
            r->lat_sum += gnum(m, "sum", v);
            size_t nb = hist_ok(m);
            if (nb && r->counts == NULL) {
                r->bounds = garr(m, "bounds");
                r->nb = nb;
                r->counts = xcalloc(nb + 1, sizeof *r->counts);
            }
            if (nb && nb == r->nb) { /* same layout (checked by length): add the buckets */
                size_t k = 0;
                const cJSON *x;
                cJSON_ArrayForEach(x, garr(m, "counts")) r->counts[k++] += x->valuedouble;
            }
        }
    }
    if (n == 0) {
        put(o, "<p class=\"none\">No method calls recorded.</p></section>\n");
        free(rows);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        rows[i].caller_s = wd_component_short(rows[i].caller);
        rows[i].component_s = wd_component_short(rows[i].component);
    }
    qsort(rows, n, sizeof *rows, mrow_cmp);
    put(o, "<table class=\"methods\"><thead><tr><th>Caller</th><th>Method</th><th class=\"num\">"
           "Calls</th><th class=\"num\">Errors</th><th class=\"num\">Mean</th><th class=\"num\">"
           "p50</th><th class=\"num\">p99</th></tr></thead><tbody>");
    for (size_t i = 0; i < n; i++) {
        struct mrow *r = &rows[i];
        char calls[32], errs[32], mean[32], p50[32], p99[32];
        fmt_num(calls, sizeof calls, r->calls);
        fmt_num(errs, sizeof errs, r->errors);
        fmt_micros(mean, sizeof mean, r->lat_count > 0 ? r->lat_sum / r->lat_count : NAN);
        fmt_micros(p50, sizeof p50, r->counts ? quantile(r, 0.5) : NAN);
        fmt_micros(p99, sizeof p99, r->counts ? quantile(r, 0.99) : NAN);
        put(o, "<tr data-component=\"");
        esc(o, r->component);
        put(o, "\" data-method=\"");
        esc(o, r->method);
        put(o, "\"><td>");
        esc(o, *r->caller_s ? r->caller_s : "-");
        put(o, " \xe2\x86\x92</td><td>");
        esc(o, r->component_s);
        put(o, ".<b>");
        esc(o, r->method);
        putf(o,
             "</b></td><td class=\"num\">%s</td><td class=\"num%s\">%s</td>"
             "<td class=\"num\">%s</td><td class=\"num\">%s</td><td class=\"num\">%s</td></tr>",
             calls, r->errors > 0 ? " bad" : "", errs, mean, p50, p99);
    }
    put(o, "</tbody></table></section>\n");
    for (size_t i = 0; i < n; i++) {
        free(rows[i].caller_s);
        free(rows[i].component_s);
        free(rows[i].counts);
    }
    free(rows);
}

static void render_app_metrics(struct wd_buf *o, const cJSON *metrics)
{
    put(o, "<section id=\"metrics\"><h2>Application metrics</h2>");
    size_t n = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, garr(metrics, "metrics"))
    {
        const char *name = gstr(m, "name");
        if (!name || strncmp(name, "serviceweaver_", 14) == 0)
            continue;
        if (n == 0)
            put(o, "<table class=\"appmetrics\"><thead><tr><th>Name</th><th>Labels</th>"
                   "<th>Type</th><th class=\"num\">Value</th></tr></thead><tbody>");
        if (n++ >= WD_DASH_MAX_ROWS)
            break;
        put(o, "<tr data-metric=\"");
        esc(o, name);
        put(o, "\"><td title=\"");
        esc(o, gstr0(m, "help"));
        put(o, "\">");
        esc(o, name);
        put(o, "</td><td class=\"labels\">");
        const cJSON *l;
        int nl = 0;
        cJSON_ArrayForEach(l, gobj(m, "labels"))
        {
            if (!l->string || strncmp(l->string, "serviceweaver_", 14) == 0)
                continue;
            put(o, nl++ ? ", " : "");
            esc(o, l->string);
            put(o, "=");
            if (cJSON_IsString(l))
                esc(o, l->valuestring);
        }
        put(o, "</td><td>");
        const char *type = gstr0(m, "type");
        esc(o, type);
        put(o, "</td><td class=\"num\">");
        char v[32];
        if (strcmp(type, "histogram") == 0) {
            double count = gnum(m, "count", 0), sum = gnum(m, "sum", gnum(m, "value", 0));
            char c[32], s[32], mean[32];
            fmt_num(c, sizeof c, count);
            fmt_num(s, sizeof s, sum);
            fmt_num(mean, sizeof mean, count > 0 ? sum / count : 0);
            putf(o, "count %s, sum %s, mean %s", c, s, mean);
        } else {
            fmt_num(v, sizeof v, gnum(m, "value", 0));
            put(o, v);
        }
        put(o, "</td></tr>");
    }
    put(o, n ? "</tbody></table></section>\n"
             : "<p class=\"none\">No application metrics.</p></section>\n");
}

/* ---- traces ---- */

static void fmt_clock(char *buf, size_t n, double micros)
{
    time_t secs = (time_t)(micros / 1e6);
    struct tm tm;
    if (!isfinite(micros) || micros < 0 || gmtime_r(&secs, &tm) == NULL) {
        snprintf(buf, n, "-");
        return;
    }
    snprintf(buf, n, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)((int64_t)(micros / 1000) % 1000));
}

/* href="?trace=ID[&log=F]#trace" */
static void trace_href(struct wd_buf *o, const char *id, const char *log_filter)
{
    put(o, "?trace=");
    urlenc(o, id);
    if (log_filter && *log_filter) {
        put(o, "&amp;log=");
        urlenc(o, log_filter);
    }
    put(o, "#trace");
}

static void render_traces(struct wd_buf *o, const struct wd_dashboard_data *dd)
{
    put(o, "<section id=\"traces\"><h2>Recent traces</h2>");
    const cJSON *t;
    size_t n = 0;
    cJSON_ArrayForEach(t, garr(dd->traces, "traces"))
    {
        const char *id = gstr(t, "trace_id");
        if (!id)
            continue;
        if (n == 0)
            put(o, "<table class=\"traces\"><thead><tr><th>Trace</th><th>Name</th>"
                   "<th>Start (UTC)</th><th class=\"num\">Duration</th><th class=\"num\">Spans</th>"
                   "<th>Groups</th></tr>"
                   "</thead><tbody>");
        if (n++ >= WD_DASH_MAX_TRACES)
            break;
        bool sel = dd->selected_trace && strcmp(dd->selected_trace, id) == 0;
        put(o, sel ? "<tr class=\"sel\" data-trace=\"" : "<tr data-trace=\"");
        esc(o, id);
        put(o, "\"><td><a href=\"");
        trace_href(o, id, dd->log_filter);
        put(o, "\"><code>");
        esc_n(o, id, 16);
        put(o, "</code></a></td><td>");
        esc(o, gstr0(t, "name"));
        char start[32], dur[32];
        fmt_clock(start, sizeof start, gnum(t, "start_micros", NAN));
        fmt_micros(dur, sizeof dur, gnum(t, "duration_micros", NAN));
        putf(o, "</td><td>%s</td><td class=\"num\">%s</td><td class=\"num\">%" PRId64 "</td><td>",
             start, dur, gint(t, "spans", 0));
        const cJSON *g;
        int ng = 0;
        cJSON_ArrayForEach(g, garr(t, "groups"))
        {
            if (!cJSON_IsString(g))
                continue;
            put(o, ng++ ? ", " : "");
            esc(o, g->valuestring);
        }
        put(o, "</td></tr>");
    }
    put(o, n ? "</tbody></table>" : "<p class=\"none\">No traces.</p>");
    put(o, "</section>\n");
}

struct span {
    const cJSON *j;
    double start, end;
    size_t parent; /* SIZE_MAX: a root */
    int depth;
    bool done;
};

static int span_cmp(const void *a, const void *b)
{
    const struct span *x = *(const struct span *const *)a, *y = *(const struct span *const *)b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Parents before their children, siblings by start time; depth bounded so the indent is too. */
static void span_visit(struct span *sp, struct span **by_start, size_t n, size_t i, int depth,
                       struct span **out, size_t *nout)
{
    sp[i].done = true;
    sp[i].depth = depth;
    out[(*nout)++] = &sp[i];
    for (size_t k = 0; k < n; k++) {
        struct span *c = by_start[k];
        if (!c->done && c->parent == i)
            span_visit(sp, by_start, n, (size_t)(c - sp), depth < 40 ? depth + 1 : 40, out,
                       nout);
    }
}

static void render_timeline(struct wd_buf *o, const struct wd_dashboard_data *dd)
{
    if (!dd->selected_trace)
        return;
    put(o, "<section id=\"trace\"><h2>Trace <code>");
    esc(o, dd->selected_trace);
    put(o, "</code> <a class=\"close\" href=\"?");
    if (dd->log_filter && *dd->log_filter) {
        put(o, "log=");
        urlenc(o, dd->log_filter);
    }
    put(o, "\">close</a></h2>");
    const cJSON *spans = garr(dd->trace, "spans"), *s;
    size_t n = 0, total = 0;
    cJSON_ArrayForEach(s, spans) total += cJSON_IsObject(s);
    if (total == 0) {
        put(o, "<p class=\"none\">This trace has no spans here (it may have been dropped).</p>"
               "</section>\n");
        return;
    }
    size_t cap = total < WD_DASH_MAX_SPANS ? total : WD_DASH_MAX_SPANS;
    struct span *sp = xcalloc(cap, sizeof *sp);
    double t0 = INFINITY, t1 = -INFINITY;
    cJSON_ArrayForEach(s, spans)
    {
        if (!cJSON_IsObject(s))
            continue;
        if (n >= cap)
            break;
        struct span *x = &sp[n++];
        x->j = s;
        x->start = gnum(s, "start_micros", 0);
        x->end = gnum(s, "end_micros", x->start);
        if (x->end < x->start)
            x->end = x->start;
        t0 = x->start < t0 ? x->start : t0;
        t1 = x->end > t1 ? x->end : t1;
    }
    for (size_t i = 0; i < n; i++) {
        sp[i].parent = SIZE_MAX;
        const char *pid = gstr(sp[i].j, "parent_span_id");
        if (!pid || !*pid)
            continue;
        for (size_t k = 0; k < n; k++) {
            const char *id = gstr(sp[k].j, "span_id");
            if (k != i && id && strcmp(id, pid) == 0) {
                sp[i].parent = k;
                break;
            }
        }
    }
    struct span **by_start = xcalloc(n, sizeof *by_start), **out = xcalloc(n, sizeof *out);
    for (size_t i = 0; i < n; i++)
        by_start[i] = &sp[i];
    qsort(by_start, n, sizeof *by_start, span_cmp);
    size_t nout = 0;
    for (size_t k = 0; k < n; k++) /* roots first, then spans stuck in a parent cycle */
        if (!by_start[k]->done && by_start[k]->parent == SIZE_MAX)
            span_visit(sp, by_start, n, (size_t)(by_start[k] - sp), 0, out, &nout);
    for (size_t k = 0; k < n; k++)
        if (!by_start[k]->done)
            span_visit(sp, by_start, n, (size_t)(by_start[k] - sp), 0, out, &nout);
    double span_us = t1 - t0 > 0 ? t1 - t0 : 1;
    char all[32];
    fmt_micros(all, sizeof all, t1 - t0);
    putf(o, "<p class=\"tlhead\">%zu spans%s, %s</p><div class=\"timeline\">", n,
         n < total ? " (truncated)" : "", all);
    for (size_t k = 0; k < nout; k++) {
        const struct span *x = out[k];
        const char *group = gstr0(x->j, "group");
        double left = (x->start - t0) / span_us * 100, width = (x->end - x->start) / span_us * 100;
        if (width < 0.3)
            width = 0.3;
        if (left > 99.7)
            left = 99.7;
        if (left + width > 100)
            width = 100 - left;
        char dur[32];
        fmt_micros(dur, sizeof dur, x->end - x->start);
        put(o, "<div class=\"span\" data-span=\"");
        esc(o, gstr0(x->j, "span_id"));
        putf(o, "\" data-depth=\"%d\"><div class=\"sl\" style=\"padding-left:%dpx\">", x->depth,
             4 + 14 * x->depth);
        esc(o, gstr0(x->j, "name"));
        put(o, " <span class=\"sg\">");
        esc(o, group);
        put(o, "</span></div><div class=\"track\"><div class=\"bar\" title=\"");
        esc(o, gstr0(x->j, "kind"));
        putf(o, " %s\" style=\"left:%.3f%%;width:%.3f%%;background:%s\"></div>", dur, left, width,
             group_color(group));
        if (left + width <= 85) /* the duration after the bar, else before it, else inside */
            putf(o, "<span class=\"dur\" style=\"left:calc(%.3f%% + 4px)\">", left + width);
        else if (left >= 8)
            putf(o, "<span class=\"dur\" style=\"right:calc(%.3f%% + 4px)\">", 100 - left);
        else
            putf(o, "<span class=\"dur in\" style=\"left:calc(%.3f%% + 4px)\">", left);
        putf(o, "%s</span></div></div>\n", dur);
    }
    put(o, "</div></section>\n");
    free(out);
    free(by_start);
    free(sp);
}

/* ---- logs ---- */

static const char *level_class(const char *level)
{
    switch (level[0] | 0x20) {
    case 'd': return "debug";
    case 'i': return "info";
    case 'w': return "warn";
    case 'e': return "error";
    default: return "other";
    }
}

static bool log_matches(const cJSON *e, const char *filter, char **shortn)
{
    *shortn = wd_component_short(gstr0(e, "component"));
    if (!filter || !*filter)
        return true;
    return strcasestr(*shortn, filter) || strcasestr(gstr0(e, "level"), filter) ||
           strcasestr(gstr0(e, "msg"), filter);
}

static void render_logs(struct wd_buf *o, const struct wd_dashboard_data *dd)
{
    const char *filter = dd->log_filter;
    put(o, "<section id=\"logs\"><h2>Logs</h2><form class=\"logf\" method=\"get\">"
           "<input type=\"search\" name=\"log\" placeholder=\"component, level or text\" value=\"");
    esc(o, filter);
    put(o, "\">");
    if (dd->selected_trace) {
        put(o, "<input type=\"hidden\" name=\"trace\" value=\"");
        esc(o, dd->selected_trace);
        put(o, "\">");
    }
    put(o, "<button type=\"submit\">Filter</button>");
    if (filter && *filter) {
        put(o, " <a href=\"?");
        if (dd->selected_trace) {
            put(o, "trace=");
            urlenc(o, dd->selected_trace);
        }
        put(o, "\">clear</a>");
    }
    put(o, "</form>");
    const cJSON *logs = cJSON_IsArray(dd->logs) ? dd->logs : NULL, *e;
    size_t matched = 0, seen = 0;
    cJSON_ArrayForEach(e, logs)
    {
        autofree char *sh = NULL;
        matched += cJSON_IsObject(e) && log_matches(e, filter, &sh);
    }
    if (matched == 0) {
        put(o, filter && *filter ? "<p class=\"none\">No log lines match.</p></section>\n"
                                 : "<p class=\"none\">No log lines.</p></section>\n");
        return;
    }
    size_t skip = matched > WD_DASH_MAX_LOG_LINES ? matched - WD_DASH_MAX_LOG_LINES : 0;
    putf(o, "<p class=\"lhead\">last %zu of %zu lines%s</p><div class=\"logs\"><table>",
         matched - skip, matched, filter && *filter ? " matching the filter" : "");
    cJSON_ArrayForEach(e, logs)
    {
        autofree char *sh = NULL;
        if (!cJSON_IsObject(e) || !log_matches(e, filter, &sh) || seen++ < skip)
            continue;
        const char *level = gstr0(e, "level"), *tm = gstr0(e, "time");
        const char *tpos = strchr(tm, 'T');
        putf(o, "<tr class=\"log %s\"><td class=\"t\" title=\"", level_class(level));
        esc(o, tm);
        put(o, "\">");
        if (tpos && strlen(tpos + 1) >= 12)
            esc_n(o, tpos + 1, 12);
        else
            esc(o, tm);
        put(o, "</td><td class=\"lv\">");
        esc_trunc(o, level, 5);
        put(o, "</td><td class=\"c\" title=\"");
        esc(o, gstr0(e, "file"));
        int64_t line = gint(e, "line", -1);
        if (line >= 0)
            putf(o, ":%" PRId64, line);
        put(o, "\">");
        esc(o, sh);
        put(o, "</td><td class=\"m\">");
        esc(o, gstr0(e, "msg"));
        const cJSON *a;
        cJSON_ArrayForEach(a, gobj(e, "attrs"))
        {
            if (!a->string)
                continue;
            put(o, " <span class=\"attr\">");
            esc(o, a->string);
            put(o, "=");
            if (strcmp(a->string, "traceid") == 0 && cJSON_IsString(a)) {
                put(o, "<a href=\"");
                trace_href(o, a->valuestring, filter);
                put(o, "\">");
                esc_n(o, a->valuestring, 8);
                put(o, "</a>");
            } else if (cJSON_IsString(a)) {
                esc(o, a->valuestring);
            }
            put(o, "</span>");
        }
        put(o, "</td></tr>\n");
    }
    put(o, "</table></div></section>\n");
}

/* ---- the page ---- */

static const char css[] =
    "*{box-sizing:border-box}"
    "body{margin:0;font:13px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;"
    "color:#1f2328;background:#f6f8fa}"
    "#content{max-width:1360px;margin:0 auto;padding:12px 20px 40px}"
    "body.stale #content{opacity:.55}"
    "header{display:flex;align-items:baseline;gap:24px;flex-wrap:wrap;padding:6px 0 10px;"
    "border-bottom:1px solid #d0d7de}"
    "h1{font-size:22px;margin:0}h2{font-size:15px;margin:0 0 8px}"
    ".meta{display:flex;gap:18px;flex-wrap:wrap;color:#57606a}.meta b{color:#1f2328}"
    "section{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:12px 14px;"
    "margin-top:14px}"
    "table{border-collapse:collapse;width:100%}"
    "th{text-align:left;font-weight:600;color:#57606a;border-bottom:1px solid #d0d7de;"
    "padding:4px 8px}"
    "td{padding:3px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}"
    "td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}"
    "code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}"
    ".ok{color:#1a7f37}.warn{color:#9a6700}.bad{color:#cf222e}"
    "tr.retiring{opacity:.6}.none{color:#6e7781;margin:0}"
    ".groups{display:flex;flex-wrap:wrap;gap:6px;margin-bottom:8px}"
    ".chip{border:1px solid #d0d7de;border-radius:12px;padding:1px 9px}"
    ".chip i,.dot{display:inline-block;width:9px;height:9px;border-radius:50%;"
    "margin-right:5px}"
    ".graphbox{overflow-x:auto}svg.graph{max-width:100%;height:auto;display:block;margin:auto}"
    ".node rect{fill:#fff;stroke-width:1.5}.nname{font-size:12px;font-weight:600;"
    "text-anchor:middle;fill:#1f2328}.ngroup{font-size:10px;text-anchor:middle;fill:#6e7781}"
    ".edge path{fill:none;stroke:#8c959f;stroke-width:1.3}.edge.err path{stroke:#cf222e}"
    "marker path{fill:#8c959f}"
    ".elabel{font-size:10px;fill:#57606a;text-anchor:middle;paint-order:stroke;stroke:#fff;"
    "stroke-width:3px}.edge.err .elabel{fill:#cf222e}"
    "tr.sel td{background:#ddf4ff}a{color:#0969da;text-decoration:none}a:hover{text-decoration:"
    "underline}.close{font-size:12px;font-weight:400;margin-left:8px}"
    ".timeline{font-size:12px}.span{display:flex;align-items:center;height:20px}"
    ".span:hover{background:#f6f8fa}"
    ".sl{flex:0 0 330px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}"
    ".sg{color:#6e7781;font-size:11px}"
    ".track{position:relative;flex:1;height:14px;background:#f6f8fa;border-radius:2px}"
    ".bar{position:absolute;top:1px;height:12px;border-radius:2px;min-width:2px}"
    ".dur{position:absolute;top:0;font-size:10px;color:#57606a;white-space:nowrap}"
    ".dur.in{color:#fff}"
    ".tlhead,.lhead{color:#57606a;margin:0 0 6px}"
    ".logf{margin-bottom:8px}.logf input{width:280px;padding:3px 6px;border:1px solid #d0d7de;"
    "border-radius:4px}.logf button{margin-left:4px}"
    ".logs{max-height:420px;overflow-y:auto;font:12px ui-monospace,SFMono-Regular,Menlo,"
    "Consolas,monospace}.logs td{padding:1px 6px;border:0}.logs .t,.logs .c{white-space:nowrap;"
    "color:#57606a}.logs .m{width:100%;word-break:break-word}.attr{color:#6e7781}"
    ".lv{font-weight:600;text-transform:uppercase}.debug .lv{color:#8c959f}.info .lv{color:"
    "#0969da}.warn .lv{color:#9a6700}.error .lv{color:#cf222e}.error .m{color:#cf222e}";

/* Refresh: every 2 s fetch `fragment` next to the page (keeping ?trace= and ?log=) and swap it
 * in; not while the user types in the filter box; a failed fetch greys the page until the next
 * one works. Off for file:// pages (nothing to fetch). */
static const char script[] =
    "(function(){'use strict';"
    "if(!/^https?:$/.test(location.protocol))return;"
    "var c=document.getElementById('content'),busy=false;"
    "function bottom(){var l=c.querySelector('.logs');if(l)l.scrollTop=l.scrollHeight;}"
    "bottom();"
    "function tick(){"
    "var a=document.activeElement;"
    "if(busy||(a&&a.tagName==='INPUT'&&c.contains(a)))return;"
    "var p=new URLSearchParams(location.search),q=new URLSearchParams();"
    "['trace','log'].forEach(function(k){var v=p.get(k);if(v!==null)q.set(k,v);});"
    "var u=new URL('fragment',location.href);u.search=q.toString();u.hash='';"
    "busy=true;"
    "fetch(u.toString(),{cache:'no-store',credentials:'same-origin'})"
    ".then(function(r){if(!r.ok)throw new Error('status '+r.status);return r.text();})"
    ".then(function(t){var l=c.querySelector('.logs'),"
    "end=!l||l.scrollTop+l.clientHeight>=l.scrollHeight-4;"
    "c.innerHTML=t;document.body.classList.remove('stale');if(end)bottom();})"
    ".catch(function(){document.body.classList.add('stale');})"
    ".then(function(){busy=false;});}"
    "setInterval(tick,2000);})();";

static void render_content(struct wd_buf *o, const struct wd_dashboard_data *dd)
{
    render_header(o, dd->status);
    render_replicas(o, dd->status);
    render_graph(o, dd->graph);
    if (dd->selected_trace)
        render_timeline(o, dd);
    render_methods(o, dd->metrics);
    render_traces(o, dd);
    render_app_metrics(o, dd->metrics);
    render_logs(o, dd);
}

void wd_dashboard_render(const struct wd_dashboard_data *dd, bool fragment, struct wd_buf *out)
{
    static const struct wd_dashboard_data empty = {0};
    struct wd_dashboard_data d = dd ? *dd : empty;
    if (d.selected_trace && !*d.selected_trace)
        d.selected_trace = NULL;
    if (fragment) {
        render_content(out, &d);
        return;
    }
    const char *app = gstr(d.status, "app");
    put(out, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
             "<link rel=\"icon\" href=\"data:,\"><title>");
    esc(out, app ? app : "weaver-docker");
    put(out, " \xe2\x80\x94 weaver-docker dashboard</title><style>");
    put(out, css);
    put(out, "</style></head><body><div id=\"content\">\n");
    render_content(out, &d);
    put(out, "</div><script>");
    put(out, script);
    put(out, "</script></body></html>\n");
}
