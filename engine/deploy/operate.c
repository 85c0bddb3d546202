/* The control API's routes (docs/design/control-api.md) and the metrics poller. Everything
 * runs on the loop: a route reads the deployment as it is between two events. */
#include "engine/deploy/operate.h"
#include "engine/deploy/rollout.h"
#include "engine/deploy/control.h"
#include "engine/deploy/deploy.h"
#include "engine/docker/json.h"
#include "engine/base/log.h"
#include "engine/deploy/metrics.h"
#include "engine/deploy/pprof.h"
#include "engine/deploy/dashboard.h"

#pragma GCC diagnostic ignored "-Wcast-qual"
#include "runtime.pb-c.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SPANS_KEPT 4096     /* the dashboard's recent traces */
#define TRACES_LISTED 100
#define LOGS_SHOWN 200
#define LOG_TAIL_BYTES (512 << 10)

struct span_rec {
    char trace[33], span[17], parent[17], weavelet[9];
    char *name, *group;
    int kind;
    int64_t start, end;
};

struct wd_operate {
    struct wd_deploy *d;
    struct span_rec *spans; /* a ring of SPANS_KEPT */
    size_t nspans_seen;
    char *dash_token;       /* the dashboard's secret path element, once asked for */
    double *edge_prev;      /* calls per call-graph edge at edge_prev_ms, for the rates */
    double *edge_rate;      /* calls per second over the last window of >= 1 s */
    int64_t edge_prev_ms;
    char *dash_url;
    struct wd_profile_job *profiles; /* in progress */
    struct wd_control *ctl;
    struct wd_metrics *metrics;
    struct wd_timer *poll;
    char *metrics_bound; /* [docker] metrics, as bound */
    uint64_t polls, poll_errors, bad_updates;
};

/* "short/slot/id8": one stream of weaver's incremental metric updates */
static char *replica_key(const struct wd_replica *r)
{
    return xasprintf("%s/%d/%.8s", r->g->short_name, r->slot, r->id);
}

static void get_metrics(struct wd_operate *op, struct wd_control_exchange *x, const char *query,
                        bool prometheus);

/* ---------- metrics ---------- */

static void on_metrics(struct wd_conn *c, const char *errmsg, const uint8_t *pb, size_t len,
                       void *arg)
{
    (void)c;
    struct wd_replica *r = arg;
    struct wd_operate *op = r->d->op;
    r->metrics_inflight = false;
    if (op == NULL)
        return;
    if (errmsg) {
        op->poll_errors++;
        return;
    }
    autofree char *key = replica_key(r);
    if (wd_metrics_update(op->metrics, key, r->g->short_name, pb, len) < 0 &&
        op->bad_updates++ == 0)
        wd_warn("metrics of %s: an update that does not decode (ignored; further ones silently)",
                key);
}

static void poll_tick(struct wd_timer *t, void *arg)
{
    (void)t;
    struct wd_operate *op = arg;
    struct wd_deploy *d = op->d;
    op->poll = NULL;
    Runtime__GetMetricsRequest req = RUNTIME__GET_METRICS_REQUEST__INIT;
    for (size_t i = 0; i < d->ngroups; i++)
        for (int k = 0; k < d->groups[i]->nreplicas; k++) {
            struct wd_replica *r = d->groups[i]->replicas[k];
            if (r == NULL || r->state != WD_R_READY || r->ctl == NULL || r->metrics_inflight)
                continue; /* a replica slow to answer is asked again once it has answered */
            r->metrics_inflight = true;
            op->polls++;
            wd_replica_call(r, WD_M_GET_METRICS, &req.base, on_metrics, r);
        }
    if (!d->stopping)
        op->poll = wd_timer_add(d->loop, WD_METRICS_EVERY_MS, poll_tick, op);
}


/* ---------- profiles ---------- */

#define PROFILE_MAX_NS (600LL * 1000000000) /* 10 minutes */
#define PROFILE_SLACK_MS 15000              /* beyond the CPU duration, for slow answers */

struct profile_part {
    struct wd_replica *r; /* NULL once answered or gone */
    char *label;          /* "shop.Cart/0/1a2b3c4d" */
    uint8_t *data;
    size_t len;
    char *error;
};

struct wd_profile_job {
    struct wd_profile_job *next;
    struct wd_operate *op;
    struct wd_control_exchange *x;
    struct profile_part *parts;
    size_t nparts, pending;
    struct wd_timer *timeout;
};

static void profile_free(struct wd_profile_job *j)
{
    for (struct wd_profile_job **p = &j->op->profiles; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            break;
        }
    wd_timer_cancel(j->timeout);
    for (size_t i = 0; i < j->nparts; i++) {
        if (j->parts[i].r)
            j->parts[i].r->profile = NULL; /* its answer, if it comes, is ignored */
        free(j->parts[i].label);
        free(j->parts[i].data);
        free(j->parts[i].error);
    }
    free(j->parts);
    free(j);
}

/* Every part answered, failed or timed out: merge what came and answer. */
static void profile_finish(struct wd_profile_job *j)
{
    struct wd_pprof_part *in = xcalloc(j->nparts + 1, sizeof *in);
    size_t n = 0, failed = 0;
    struct wd_buf why = {0};
    for (size_t i = 0; i < j->nparts; i++) {
        struct profile_part *p = &j->parts[i];
        if (p->data) {
            in[n++] = (struct wd_pprof_part){.data = p->data, .len = p->len, .label = p->label};
        } else {
            failed++;
            wd_buf_printf(&why, "%s%s: %s", why.len ? "; " : "", p->label,
                          p->error ? p->error : "no answer in time");
        }
    }
    struct wd_buf out = {0};
    size_t skipped = 0;
    autoerr struct wd_error *err = NULL;
    if (n == 0) {
        autofree char *w = why.len ? wd_buf_steal_str(&why) : xstrdup("no replica is ready");
        wd_operate_respond_error(j->x, 503, "no profile: %s", w);
    } else if (wd_pprof_merge(in, n, &skipped, &out, &err) < 0) {
        wd_operate_respond_error(j->x, 502, "%s", err->msg);
    } else {
        if (failed || skipped)
            wd_warn("profile: %zu of %zu replicas left out%s%.*s", failed + skipped, j->nparts,
                    why.len ? ": " : "", (int)why.len, why.data ? (const char *)why.data : "");
        wd_control_respond(j->x, 200, "application/octet-stream", out.data, out.len);
    }
    j->x = NULL;
    wd_buf_free(&out);
    wd_buf_free(&why);
    free(in);
    profile_free(j);
}

static void profile_part_done(struct wd_profile_job *j, struct profile_part *p)
{
    if (p->r)
        p->r->profile = NULL;
    p->r = NULL;
    if (--j->pending == 0)
        profile_finish(j);
}

static struct profile_part *part_of(struct wd_profile_job *j, const struct wd_replica *r)
{
    for (size_t i = 0; i < j->nparts; i++)
        if (j->parts[i].r == r)
            return &j->parts[i];
    return NULL;
}

static void on_profile(struct wd_conn *c, const char *errmsg, const uint8_t *pb, size_t len,
                       void *arg)
{
    (void)c;
    struct wd_replica *r = arg;
    struct wd_profile_job *j = r->profile;
    struct profile_part *p = j ? part_of(j, r) : NULL;
    if (p == NULL) /* its job ended (timed out) before this answer */
        return;
    Runtime__GetProfileReply *rep =
        errmsg ? NULL : runtime__get_profile_reply__unpack(NULL, len, pb);
    if (rep && rep->data.len) {
        p->data = memcpy(xmalloc(rep->data.len), rep->data.data, rep->data.len);
        p->len = rep->data.len;
    } else {
        p->error = xstrdup(errmsg ? errmsg : "an empty or undecodable answer");
    }
    if (rep)
        runtime__get_profile_reply__free_unpacked(rep, NULL);
    profile_part_done(j, p);
}

static void profile_timeout(struct wd_timer *t, void *arg)
{
    (void)t;
    struct wd_profile_job *j = arg;
    j->timeout = NULL;
    profile_finish(j); /* parts still out are left out; their late answers are ignored */
}

/* "10s", "500ms", "2m", or seconds ("10"): nanoseconds, or -1. */
static int64_t parse_duration_ns(const char *s)
{
    char *end = NULL;
    errno = 0;
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    double v = strtod(s, &end);
    if (errno || end == s)
        return -1;
    double mult = 1e9;
    if (*end == 0 || strcmp(end, "s") == 0)
        mult = 1e9;
    else if (strcmp(end, "ms") == 0)
        mult = 1e6;
    else if (strcmp(end, "m") == 0)
        mult = 60e9;
    else
        return -1;
    double ns = v * mult;
    return ns >= 1 && ns <= (double)PROFILE_MAX_NS ? (int64_t)ns : -1;
}

/* GET /v1/profile?type=cpu|heap&duration=10s: GetProfile of every ready replica at once, merged
 * (engine/deploy/pprof.c) into one gzipped pprof; answered when all have answered. */
static void get_profile(struct wd_operate *op, struct wd_control_exchange *x, const char *query)
{
    struct wd_deploy *d = op->d;
    autofree char *type = wd_control_query(query, "type");
    autofree char *dur = wd_control_query(query, "duration");
    bool cpu = type == NULL || *type == 0 || strcmp(type, "cpu") == 0;
    if (!cpu && strcmp(type, "heap") != 0)
        return wd_operate_respond_error(x, 400, "type must be cpu or heap, not \"%s\"", type);
    int64_t ns = dur && *dur ? parse_duration_ns(dur) : 10 * 1000000000LL;
    if (cpu && ns < 0)
        return wd_operate_respond_error(x, 400, "duration must be like 10s, 500ms or 2m (at most 10m), not "
                                     "\"%s\"", dur);
    for (size_t i = 0; i < d->ngroups; i++)
        for (int k = 0; k < d->groups[i]->nreplicas; k++)
            if (d->groups[i]->replicas[k] && d->groups[i]->replicas[k]->profile)
                return wd_operate_respond_error(x, 409, "a profile is being taken already; try again when "
                                             "it is done");
    struct wd_profile_job *j = xzalloc(sizeof *j);
    j->op = op;
    j->x = x;
    for (size_t i = 0; i < d->ngroups; i++)
        for (int k = 0; k < d->groups[i]->nreplicas; k++) {
            struct wd_replica *r = d->groups[i]->replicas[k];
            if (r == NULL || r->state != WD_R_READY || r->ctl == NULL || r->retiring)
                continue;
            j->parts = xrealloc(j->parts, (j->nparts + 1) * sizeof *j->parts);
            j->parts[j->nparts++] = (struct profile_part){
                .r = r, .label = xasprintf("%s/%d/%.8s", r->g->short_name, r->slot, r->id)};
        }
    j->next = op->profiles;
    op->profiles = j;
    if (j->nparts == 0) {
        profile_finish(j);
        return;
    }
    j->pending = j->nparts;
    j->timeout = wd_timer_add(d->loop, (cpu ? ns / 1000000 : 0) + PROFILE_SLACK_MS,
                              profile_timeout, j);
    Runtime__GetProfileRequest req = RUNTIME__GET_PROFILE_REQUEST__INIT;
    req.profile_type = cpu ? RUNTIME__PROFILE_TYPE__CPU : RUNTIME__PROFILE_TYPE__Heap;
    req.cpu_duration_ns = cpu ? ns : 0;
    size_t n = j->nparts;
    for (size_t i = 0; i < n && op->profiles == j; i++) { /* a call may fail at once */
        struct wd_replica *r = j->parts[i].r;
        r->profile = j;
        wd_replica_call(r, WD_M_GET_PROFILE, &req.base, on_profile, r);
    }
}

void wd_operate_replica_gone(struct wd_deploy *d, struct wd_replica *r)
{
    if (d->op == NULL || r->id == NULL)
        return;
    if (r->profile) { /* its answer will never come: the job goes on without it */
        struct wd_profile_job *j = r->profile;
        struct profile_part *p = part_of(j, r);
        if (p) {
            p->error = xstrdup("the replica went away");
            profile_part_done(j, p);
        }
        r->profile = NULL;
    }
    autofree char *key = replica_key(r);
    wd_metrics_replica_gone(d->op->metrics, key);
}

/* ---------- traces ---------- */

void wd_operate_spans(struct wd_deploy *d, struct wd_replica *r, Runtime__Span **spans, size_t n)
{
    struct wd_operate *op = d->op;
    if (op == NULL)
        return;
    if (op->spans == NULL)
        op->spans = xcalloc(SPANS_KEPT, sizeof *op->spans);
    for (size_t i = 0; i < n; i++) {
        const Runtime__Span *s = spans[i];
        struct span_rec *x = &op->spans[op->nspans_seen++ % SPANS_KEPT];
        free(x->name);
        free(x->group);
        *x = (struct span_rec){.kind = (int)s->kind, .start = s->start_micros,
                               .end = s->end_micros};
        if (s->trace_id.len == 16)
            wd_hex(s->trace_id.data, 16, x->trace);
        if (s->span_id.len == 8)
            wd_hex(s->span_id.data, 8, x->span);
        if (s->parent_span_id.len == 8)
            wd_hex(s->parent_span_id.data, 8, x->parent);
        snprintf(x->weavelet, sizeof x->weavelet, "%.8s", r->id ? r->id : "");
        x->name = xstrndup(s->name ? s->name : "", 256);
        x->group = xstrdup(r->g->short_name);
    }
}

/* The kept spans, newest first: calls fn for each until it returns false. */
static void each_span(struct wd_operate *op, bool (*fn)(const struct span_rec *, void *), void *arg)
{
    size_t n = op->nspans_seen < SPANS_KEPT ? op->nspans_seen : SPANS_KEPT;
    for (size_t k = 0; k < n; k++) {
        const struct span_rec *x = &op->spans[(op->nspans_seen - 1 - k) % SPANS_KEPT];
        if (x->trace[0] && !fn(x, arg))
            return;
    }
}

struct trace_sum {
    char id[33];
    const char *name; /* the root's, else the earliest span's */
    bool root;
    int64_t start, end;
    int nspans;
    cJSON *groups;
};

struct traces_acc {
    struct trace_sum v[TRACES_LISTED];
    size_t n;
};

static bool add_to_traces(const struct span_rec *x, void *arg)
{
    struct traces_acc *a = arg;
    struct trace_sum *t = NULL;
    for (size_t i = 0; i < a->n && t == NULL; i++)
        if (strcmp(a->v[i].id, x->trace) == 0)
            t = &a->v[i];
    if (t == NULL) {
        if (a->n == TRACES_LISTED)
            return true; /* older traces than the listed ones: only their own spans count */
        t = &a->v[a->n++];
        *t = (struct trace_sum){.start = x->start, .end = x->end, .groups = cJSON_CreateArray()};
        memcpy(t->id, x->trace, sizeof t->id);
    }
    t->nspans++;
    if (x->start < t->start)
        t->start = x->start;
    if (x->end > t->end)
        t->end = x->end;
    bool is_root = x->parent[0] == 0 || strcmp(x->parent, "0000000000000000") == 0;
    if (t->name == NULL || (is_root && !t->root) || (!t->root && x->start <= t->start)) {
        t->name = x->name;
        t->root = is_root;
    }
    bool have = false;
    const cJSON *g;
    cJSON_ArrayForEach(g, t->groups)
        have = have || strcmp(g->valuestring, x->group) == 0;
    if (!have)
        wd_json_arr_add_str(t->groups, x->group);
    return true;
}

static cJSON *traces_json(struct wd_operate *op)
{
    struct traces_acc *a = xzalloc(sizeof *a);
    if (op->spans)
        each_span(op, add_to_traces, a);
    cJSON *j = wd_json_new_object();
    cJSON *arr = wd_json_add_array(j, "traces");
    for (size_t i = 0; i < a->n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, o);
        wd_json_add_str(o, "trace_id", a->v[i].id);
        wd_json_add_str(o, "name", a->v[i].name ? a->v[i].name : "");
        wd_json_add_i64(o, "start_micros", a->v[i].start);
        wd_json_add_i64(o, "duration_micros", a->v[i].end - a->v[i].start);
        wd_json_add_i64(o, "spans", a->v[i].nspans);
        cJSON_AddItemToObject(o, "groups", a->v[i].groups);
    }
    free(a);
    return j;
}

struct trace_acc {
    const char *id;
    cJSON *spans;
};

static bool add_to_trace(const struct span_rec *x, void *arg)
{
    struct trace_acc *a = arg;
    if (strcmp(x->trace, a->id) != 0)
        return true;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToArray(a->spans, o);
    wd_json_add_str(o, "name", x->name);
    wd_json_add_str(o, "span_id", x->span);
    wd_json_add_str(o, "parent_span_id", x->parent);
    wd_json_add_str(o, "group", x->group);
    wd_json_add_str(o, "weavelet", x->weavelet);
    wd_json_add_i64(o, "kind", x->kind);
    wd_json_add_i64(o, "start_micros", x->start);
    wd_json_add_i64(o, "end_micros", x->end);
    return true;
}

static cJSON *trace_json(struct wd_operate *op, const char *id)
{
    cJSON *j = wd_json_new_object();
    wd_json_add_str(j, "trace_id", id);
    struct trace_acc a = {.id = id, .spans = wd_json_add_array(j, "spans")};
    if (op->spans)
        each_span(op, add_to_trace, &a);
    return j;
}

/* ---------- graph and logs ---------- */

/* The binary's components and call-graph edges, with calls, errors and mean latency summed
 * from weaver's per-method metrics. */
static cJSON *graph_json(struct wd_operate *op)
{
    struct wd_deploy *d = op->d;
    struct wd_buf b = {0};
    wd_metrics_json(op->metrics, "serviceweaver_method_", &b);
    autojson cJSON *m = NULL;
    autoerr struct wd_error *err = NULL;
    (void)wd_json_parse(b.data ? (const char *)b.data : "{}", b.len ? b.len : 2, "metrics", &m,
                        &err);
    wd_buf_free(&b);
    cJSON *j = wd_json_new_object();
    cJSON *comps = wd_json_add_array(j, "components");
    for (size_t i = 0; i < d->ncomps; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(comps, o);
        wd_json_add_str(o, "name", d->comps[i]->name);
        autofree char *sh = wd_component_short(d->comps[i]->name);
        wd_json_add_str(o, "short", sh);
        wd_json_add_str(o, "group", d->comps[i]->group ? d->comps[i]->group->short_name : "");
    }
    cJSON *edges = wd_json_add_array(j, "edges");
    int64_t now = wd_now_ms();
    bool roll = op->edge_prev == NULL || now - op->edge_prev_ms >= 1000;
    if (op->edge_prev == NULL && d->bin->nedges) {
        op->edge_prev = xcalloc(d->bin->nedges, sizeof *op->edge_prev);
        op->edge_rate = xcalloc(d->bin->nedges, sizeof *op->edge_rate);
        op->edge_prev_ms = 0; /* no window yet: no rate */
    }
    for (size_t e = 0; e < d->bin->nedges; e++) {
        const char *src = d->bin->edges[e].src, *dst = d->bin->edges[e].dst;
        double calls = 0, errors = 0, lat_sum = 0, lat_n = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, wd_json_arr(m, "metrics"))
        {
            const cJSON *l = wd_json_obj(x, "labels");
            const char *caller = wd_json_str(l, "caller"), *callee = wd_json_str(l, "component");
            const char *name = wd_json_str(x, "name");
            if (!caller || !callee || !name || strcmp(caller, src) || strcmp(callee, dst))
                continue;
            double v = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(x, "value"));
            if (strcmp(name, "serviceweaver_method_count") == 0)
                calls += v;
            else if (strcmp(name, "serviceweaver_method_error_count") == 0)
                errors += v;
            else if (strcmp(name, "serviceweaver_method_latency_micros") == 0) {
                lat_sum += v;
                lat_n += cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(x, "count"));
            }
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(edges, o);
        wd_json_add_str(o, "caller", src);
        wd_json_add_str(o, "callee", dst);
        cJSON_AddNumberToObject(o, "calls", calls);
        cJSON_AddNumberToObject(o, "errors", errors);
        cJSON_AddNumberToObject(o, "mean_micros", lat_n > 0 ? lat_sum / lat_n : 0);
        if (roll) {
            if (op->edge_prev_ms > 0)
                op->edge_rate[e] = (calls - op->edge_prev[e]) * 1000.0 /
                                   (double)(now - op->edge_prev_ms);
            op->edge_prev[e] = calls;
        }
        if (op->edge_prev_ms > 0 || !roll) /* a rate once there is a window */
            cJSON_AddNumberToObject(o, "rate", op->edge_rate[e] < 0 ? 0 : op->edge_rate[e]);
    }
    if (roll)
        op->edge_prev_ms = now;
    return j;
}

/* The last @max entries of the deployment's log file, oldest first. */
static cJSON *logs_json(struct wd_operate *op, size_t max)
{
    return wd_log_tail_json(op->d->opts.log_path, max);
}

cJSON *wd_log_tail_json(const char *path, size_t max)
{
    cJSON *arr = wd_json_new_array();
    FILE *f = path ? fopen(path, "re") : NULL;
    if (f == NULL)
        return arr;
    if (fseeko(f, 0, SEEK_END) == 0) {
        off_t size = ftello(f);
        off_t from = size > LOG_TAIL_BYTES ? size - LOG_TAIL_BYTES : 0;
        (void)fseeko(f, from, SEEK_SET);
        char *buf = xmalloc(LOG_TAIL_BYTES + 1);
        size_t n = fread(buf, 1, LOG_TAIL_BYTES, f);
        buf[n] = 0;
        /* whole lines only: skip a first partial one */
        char *p = from > 0 ? strchr(buf, '\n') : buf;
        size_t nlines = 0;
        char **lines = NULL;
        for (char *q = p ? p + (from > 0) : NULL; q && *q;) {
            char *nl = strchr(q, '\n');
            if (nl == NULL)
                break; /* being written */
            *nl = 0;
            lines = xrealloc(lines, (nlines + 1) * sizeof *lines);
            lines[nlines++] = q;
            q = nl + 1;
        }
        for (size_t i = nlines > max ? nlines - max : 0; i < nlines; i++) {
            cJSON *e = cJSON_Parse(lines[i]);
            if (e)
                cJSON_AddItemToArray(arr, e);
        }
        free(lines);
        free(buf);
    }
    fclose(f);
    return arr;
}

/* ---------- the dashboard ---------- */

/* POST /v1/dashboard: serve the dashboard on a loopback port (once), under a secret path. */
static void post_dashboard(struct wd_operate *op, struct wd_control_exchange *x)
{
    if (op->dash_url == NULL) {
        char *bound = NULL;
        autoerr struct wd_error *err = NULL;
        if (wd_control_listen_tcp(op->ctl, "127.0.0.1:0", &bound, &err) < 0)
            return wd_operate_respond_error(x, 500, "dashboard: %s", err->msg);
        uint8_t tok[16];
        wd_random(tok, sizeof tok);
        char hex[33];
        wd_hex(tok, sizeof tok, hex);
        op->dash_token = xstrdup(hex);
        op->dash_url = xasprintf("http://%s/%s/", bound, hex);
        free(bound);
        wd_info("dashboard at %s", op->dash_url);
    }
    cJSON *j = wd_json_new_object();
    wd_json_add_str(j, "url", op->dash_url);
    wd_operate_respond_json(x, 200, j);
}

static cJSON *status_json(struct wd_operate *op)
{
    return wd_deploy_status_json(op->d);
}

/* GET /TOKEN/..., the dashboard's page, fragment and JSON (engine/deploy/dashboard.c renders). */
static void get_dashboard(struct wd_operate *op, struct wd_control_exchange *x, const char *rest,
                          const char *query)
{
    if (strcmp(rest, "api/status") == 0)
        return wd_operate_respond_json(x, 200, status_json(op));
    if (strcmp(rest, "api/graph") == 0)
        return wd_operate_respond_json(x, 200, graph_json(op));
    if (strcmp(rest, "api/metrics") == 0)
        return get_metrics(op, x, query, false);
    if (strcmp(rest, "api/logs") == 0)
        return wd_operate_respond_json(x, 200, logs_json(op, LOGS_SHOWN));
    if (strcmp(rest, "api/traces") == 0)
        return wd_operate_respond_json(x, 200, traces_json(op));
    autofree char *tid = wd_control_query(query, "trace");
    autofree char *id = wd_control_query(query, "id");
    if (strcmp(rest, "api/trace") == 0)
        return wd_operate_respond_json(x, 200, trace_json(op, id ? id : ""));
    bool fragment = strcmp(rest, "fragment") == 0;
    if (!fragment && rest[0] != 0)
        return wd_operate_respond_error(x, 404, "not found");
    autofree char *logf = wd_control_query(query, "log");
    autojson cJSON *status = status_json(op);
    autojson cJSON *graph = graph_json(op);
    autojson cJSON *logs = logs_json(op, LOGS_SHOWN);
    autojson cJSON *traces = traces_json(op);
    autojson cJSON *trace = tid && *tid ? trace_json(op, tid) : NULL;
    autojson cJSON *metrics = NULL;
    struct wd_buf mb = {0};
    wd_metrics_json(op->metrics, NULL, &mb);
    autoerr struct wd_error *err = NULL;
    (void)wd_json_parse(mb.data ? (const char *)mb.data : "{}", mb.len ? mb.len : 2, "metrics",
                        &metrics, &err);
    wd_buf_free(&mb);
    struct wd_dashboard_data dd = {
        .status = status, .graph = graph, .metrics = metrics, .logs = logs, .traces = traces,
        .trace = trace, .selected_trace = tid && *tid ? tid : NULL,
        .log_filter = logf && *logf ? logf : NULL};
    struct wd_buf out = {0};
    wd_dashboard_render(&dd, fragment, &out);
    wd_control_respond(x, 200, "text/html; charset=utf-8", out.data ? (const char *)out.data : "",
                       out.len);
    wd_buf_free(&out);
}

/* ---------- routes ---------- */

void wd_operate_respond_json(struct wd_control_exchange *x, int status, struct cJSON *j)
{
    autofree char *text = wd_json_print(j);
    cJSON_Delete(j);
    wd_control_respond(x, status, "application/json", text, strlen(text));
}

void wd_operate_respond_error(struct wd_control_exchange *x, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    autofree char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    cJSON *j = wd_json_new_object();
    wd_json_add_str(j, "error", msg);
    wd_operate_respond_json(x, status, j);
}

static void get_status(struct wd_operate *op, struct wd_control_exchange *x)
{
    cJSON *j = wd_deploy_status_json(op->d);
    wd_json_add_str(j, "metrics_address", op->metrics_bound ? op->metrics_bound : "");
    struct wd_metrics_stats st;
    wd_metrics_stats(op->metrics, &st);
    cJSON *m = wd_json_add_object(j, "metrics_store");
    wd_json_add_i64(m, "replicas", (int64_t)st.replicas);
    wd_json_add_i64(m, "series", (int64_t)st.series);
    wd_json_add_i64(m, "bytes", (int64_t)st.bytes);
    wd_json_add_i64(m, "polls", (int64_t)op->polls);
    wd_json_add_i64(m, "poll_errors", (int64_t)op->poll_errors);
    wd_operate_respond_json(x, 200, j);
}

static void get_metrics(struct wd_operate *op, struct wd_control_exchange *x, const char *query,
                        bool prometheus)
{
    autofree char *filter = wd_control_query(query, "filter");
    struct wd_buf b = {0};
    if (prometheus)
        wd_metrics_prometheus(op->metrics, filter && *filter ? filter : NULL, &b);
    else
        wd_metrics_json(op->metrics, filter && *filter ? filter : NULL, &b);
    wd_control_respond(x, 200, prometheus ? "text/plain; version=0.0.4; charset=utf-8"
                                          : "application/json",
                       b.data ? (const char *)b.data : "", b.len);
    wd_buf_free(&b);
}

/* A group by the names wd_deploy_find_group knows, or by its first component's last name
 * ("cart" for "example.com/shop/Cart") when only one group has that. */
static struct wd_group *find_group(struct wd_deploy *d, const char *name)
{
    struct wd_group *g = wd_deploy_find_group(d, name), *found = NULL;
    if (g)
        return g;
    for (size_t i = 0; i < d->ngroups; i++) {
        const char *last = strrchr(d->groups[i]->name, '/');
        last = last ? last + 1 : d->groups[i]->name;
        if (strcasecmp(last, name) == 0) {
            if (found)
                return NULL; /* ambiguous */
            found = d->groups[i];
        }
    }
    return found;
}

/* POST /v1/scale {"GROUP": N, ...}: all checked before any is applied. */
static void post_scale(struct wd_operate *op, struct wd_control_exchange *x,
                       const struct wd_control_req *req)
{
    struct wd_deploy *d = op->d;
    autojson cJSON *body = NULL;
    autoerr struct wd_error *err = NULL;
    if (wd_json_parse(req->body, req->body_len, "scale request", &body, &err) < 0 ||
        !cJSON_IsObject(body) || body->child == NULL) {
        wd_operate_respond_error(x, 400, "the body must be a JSON object of GROUP: REPLICAS, e.g. "
                              "{\"cart\": 3}");
        return;
    }
    if (d->rt->external) {
        wd_operate_respond_error(x, 409, "the %s runtime scales with its orchestrator, not with us",
                      d->rt->name);
        return;
    }
    for (const cJSON *e = body->child; e; e = e->next) {
        struct wd_group *g = find_group(d, e->string);
        if (g == NULL) {
            wd_operate_respond_error(x, 404, "no group %s in %s (see weaver-docker ps %s)", e->string, d->app,
                          d->app);
            return;
        }
        double v = cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (v != (double)(int)v || v < 1 || v > WD_CONFIG_MAX_REPLICAS) {
            wd_operate_respond_error(x, 400, "group %s: replicas must be a whole number from 1 to %d",
                          e->string, WD_CONFIG_MAX_REPLICAS);
            return;
        }
    }
    for (const cJSON *e = body->child; e; e = e->next) {
        struct wd_group *g = find_group(d, e->string);
        if (wd_group_scale(g, (int)e->valuedouble, &err) < 0) {
            wd_operate_respond_error(x, 409, "%s", err->msg);
            return;
        }
    }
    wd_operate_respond_json(x, 200, wd_deploy_status_json(d));
}

/* POST /v1/stop {"reason": "..."}: what SIGTERM does, with the reason in the log. */
static void post_stop(struct wd_operate *op, struct wd_control_exchange *x,
                      const struct wd_control_req *req)
{
    autojson cJSON *body = NULL;
    autoerr struct wd_error *err = NULL;
    const char *why = NULL;
    if (req->body_len && wd_json_parse(req->body, req->body_len, "stop", &body, &err) == 0)
        why = wd_json_str(body, "reason");
    autofree char *clean = xstrndup(why && *why ? why : "asked through the control API", 200);
    for (char *p = clean; *p; p++) /* one line in the log, whatever the caller sent */
        if ((unsigned char)*p < 0x20)
            *p = ' ';
    bool was = op->d->stopping;
    cJSON *j = wd_json_new_object();
    cJSON_AddBoolToObject(j, "stopping", true);
    cJSON_AddBoolToObject(j, "already", was);
    wd_operate_respond_json(x, 202, j);
    wd_deploy_stop(op->d, clean);
}

/* the first @n bytes of @a are the token, compared in constant time */
static bool token_is(const char *a, const char *token, size_t n)
{
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ token[i]);
    return diff == 0;
}

static void handle(void *arg, struct wd_control_exchange *x, const struct wd_control_req *req)
{
    struct wd_operate *op = arg;
    bool get = strcmp(req->method, "GET") == 0;
    if (get && strcmp(req->path, "/metrics") == 0) /* public: Prometheus */
        return get_metrics(op, x, req->query, true);
    size_t tl = op->dash_token ? strlen(op->dash_token) : 0;
    if (get && tl && strlen(req->path) > tl + 1 && token_is(req->path + 1, op->dash_token, tl) &&
        req->path[tl + 1] == '/') /* the dashboard, by its secret path, also over TCP */
        return get_dashboard(op, x, req->path + tl + 2, req->query);
    if (!req->trusted)
        return wd_operate_respond_error(x, 404, "not found");
    if (strcmp(req->method, "POST") == 0 && strcmp(req->path, "/v1/dashboard") == 0)
        return post_dashboard(op, x);
    if (strcmp(req->method, "POST") == 0 && strcmp(req->path, "/v1/stop") == 0)
        return post_stop(op, x, req);
    if (get && strcmp(req->path, "/v1/graph") == 0)
        return wd_operate_respond_json(x, 200, graph_json(op));
    if (get && strcmp(req->path, "/v1/traces") == 0)
        return wd_operate_respond_json(x, 200, traces_json(op));
    if (get && strcmp(req->path, "/v1/trace") == 0) {
        autofree char *id = wd_control_query(req->query, "id");
        return wd_operate_respond_json(x, 200, trace_json(op, id ? id : ""));
    }
    if (get && strcmp(req->path, "/v1/logs") == 0)
        return wd_operate_respond_json(x, 200, logs_json(op, LOGS_SHOWN));
    if (get && strcmp(req->path, "/v1/status") == 0)
        return get_status(op, x);
    if (get && strcmp(req->path, "/v1/metrics") == 0)
        return get_metrics(op, x, req->query, false);
    if (get && strcmp(req->path, "/v1/profile") == 0)
        return get_profile(op, x, req->query);
    if (strcmp(req->method, "POST") == 0 && strcmp(req->path, "/v1/scale") == 0)
        return post_scale(op, x, req);
    if (wd_rollout_route(op->d, x, req))
        return;
    wd_operate_respond_error(x, 404, "no route %s %s (see docs/design/control-api.md)", req->method,
                  req->path);
}

/* ---------- life ---------- */

int wd_operate_start(struct wd_deploy *d, struct wd_error **err)
{
    struct wd_operate *op = xzalloc(sizeof *op);
    op->d = d;
    op->metrics = wd_metrics_new();
    d->op = op;
    int r;
    if (d->opts.control_path &&
        (r = wd_control_listen_unix(d->loop, d->opts.control_path, handle, op, &op->ctl, err)) < 0)
        return r;
    if (d->cfg->metrics_addr && op->ctl &&
        (r = wd_control_listen_tcp(op->ctl, d->cfg->metrics_addr, &op->metrics_bound, err)) < 0)
        return wd_err_wrap(err, "[docker] metrics");
    if (op->metrics_bound)
        wd_deploy_event(d, "info", "metrics for Prometheus at http://%s/metrics",
                        op->metrics_bound);
    op->poll = wd_timer_add(d->loop, WD_METRICS_EVERY_MS, poll_tick, op);
    return 0;
}

void wd_operate_stop(struct wd_deploy *d)
{
    struct wd_operate *op = d->op;
    if (op == NULL)
        return;
    while (op->profiles) {
        struct wd_profile_job *j = op->profiles;
        wd_operate_respond_error(j->x, 503, "%s is stopping", d->app);
        j->x = NULL;
        profile_free(j);
    }
    d->op = NULL;
    wd_timer_cancel(op->poll);
    wd_control_free(op->ctl);
    wd_metrics_free(op->metrics);
    free(op->metrics_bound);
    for (size_t i = 0; op->spans && i < SPANS_KEPT; i++) {
        free(op->spans[i].name);
        free(op->spans[i].group);
    }
    free(op->spans);
    free(op->dash_token);
    free(op->edge_prev);
    free(op->edge_rate);
    free(op->dash_url);
    free(op);
}
