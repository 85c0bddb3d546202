/* The control API's routes (docs/design/control-api.md) and the metrics poller. Everything
 * runs on the loop: a route reads the deployment as it is between two events. */
#include "engine/operate.h"
#include "engine/control.h"
#include "engine/deploy.h"
#include "engine/json.h"
#include "engine/log.h"
#include "engine/metrics.h"

#pragma GCC diagnostic ignored "-Wcast-qual"
#include "runtime.pb-c.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

struct wd_operate {
    struct wd_deploy *d;
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

void wd_operate_replica_gone(struct wd_deploy *d, struct wd_replica *r)
{
    if (d->op == NULL || r->id == NULL)
        return;
    autofree char *key = replica_key(r);
    wd_metrics_replica_gone(d->op->metrics, key);
}

/* ---------- routes ---------- */

static void respond_json(struct wd_control_exchange *x, int status, cJSON *j)
{
    autofree char *text = wd_json_print(j);
    cJSON_Delete(j);
    wd_control_respond(x, status, "application/json", text, strlen(text));
}

static void respond_error(struct wd_control_exchange *x, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void respond_error(struct wd_control_exchange *x, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    autofree char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    cJSON *j = wd_json_new_object();
    wd_json_add_str(j, "error", msg);
    respond_json(x, status, j);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The decoded value of @key in a query string ("a=1&filter=x%20y"), or NULL. Caller frees. */
static char *query_get(const char *query, const char *key)
{
    size_t klen = strlen(key);
    for (const char *p = query; p && *p;) {
        const char *end = strchr(p, '&');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            char *out = xmalloc(n - klen);
            size_t o = 0;
            for (size_t i = klen + 1; i < n; i++) {
                if (p[i] == '+') {
                    out[o++] = ' ';
                } else if (p[i] == '%' && i + 2 < n && hexval(p[i + 1]) >= 0 &&
                           hexval(p[i + 2]) >= 0) {
                    out[o++] = (char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2]));
                    i += 2;
                } else {
                    out[o++] = p[i];
                }
            }
            out[o] = 0;
            return out;
        }
        p = end ? end + 1 : NULL;
    }
    return NULL;
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
    respond_json(x, 200, j);
}

static void get_metrics(struct wd_operate *op, struct wd_control_exchange *x, const char *query,
                        bool prometheus)
{
    autofree char *filter = query_get(query, "filter");
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
        respond_error(x, 400, "the body must be a JSON object of GROUP: REPLICAS, e.g. "
                              "{\"cart\": 3}");
        return;
    }
    if (d->rt->external) {
        respond_error(x, 409, "the %s runtime scales with its orchestrator, not with us",
                      d->rt->name);
        return;
    }
    for (const cJSON *e = body->child; e; e = e->next) {
        struct wd_group *g = find_group(d, e->string);
        if (g == NULL) {
            respond_error(x, 404, "no group %s in %s (see weaver-docker ps %s)", e->string, d->app,
                          d->app);
            return;
        }
        double v = cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (v != (double)(int)v || v < 1 || v > WD_CONFIG_MAX_REPLICAS) {
            respond_error(x, 400, "group %s: replicas must be a whole number from 1 to %d",
                          e->string, WD_CONFIG_MAX_REPLICAS);
            return;
        }
    }
    for (const cJSON *e = body->child; e; e = e->next) {
        struct wd_group *g = find_group(d, e->string);
        if (wd_group_scale(g, (int)e->valuedouble, &err) < 0) {
            respond_error(x, 409, "%s", err->msg);
            return;
        }
    }
    respond_json(x, 200, wd_deploy_status_json(d));
}

static void handle(void *arg, struct wd_control_exchange *x, const struct wd_control_req *req)
{
    struct wd_operate *op = arg;
    bool get = strcmp(req->method, "GET") == 0;
    if (get && strcmp(req->path, "/metrics") == 0) /* public: Prometheus */
        return get_metrics(op, x, req->query, true);
    if (!req->trusted)
        return respond_error(x, 404, "not found");
    if (get && strcmp(req->path, "/v1/status") == 0)
        return get_status(op, x);
    if (get && strcmp(req->path, "/v1/metrics") == 0)
        return get_metrics(op, x, req->query, false);
    if (strcmp(req->method, "POST") == 0 && strcmp(req->path, "/v1/scale") == 0)
        return post_scale(op, x, req);
    respond_error(x, 404, "no route %s %s (see docs/design/control-api.md)", req->method,
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
    d->op = NULL;
    wd_timer_cancel(op->poll);
    wd_control_free(op->ctl);
    wd_metrics_free(op->metrics);
    free(op->metrics_bound);
    free(op);
}
