/* tests/unit/test_metrics.c - engine/deploy/metrics.c: GetMetricsReply streams built with
 * protobuf-c, rendered as Prometheus text and JSON. */
#include "tests/unit/wd_test.h"
#include "engine/deploy/metrics.h"
#include "engine/base/util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <protobuf-c/protobuf-c.h>

/* protoc-c's messages hold `char *`: we hand them borrowed literals for packing only. */
#pragma GCC diagnostic ignored "-Wcast-qual"
#include "runtime.pb-c.h"

enum { COUNTER = 1, GAUGE = 2, HIST = 3 };

/* ---- building replies ------------------------------------------------------------------ */

#define MAXD 64
#define MAXL 8

struct reply {
    Runtime__MetricDef defs[MAXD];
    Runtime__MetricDef *dp[MAXD];
    Runtime__MetricDef__LabelsEntry lab[MAXD][MAXL];
    Runtime__MetricDef__LabelsEntry *lp[MAXD][MAXL];
    size_t nd;
    Runtime__MetricValue vals[MAXD];
    Runtime__MetricValue *vp[MAXD];
    size_t nv;
};

/* @kv: key, value, ..., NULL */
static void def(struct reply *r, uint64_t id, const char *name, int typ, const char *help,
                const char *const *kv, const double *bounds, size_t nb)
{
    assert_true(r->nd < MAXD);
    Runtime__MetricDef *d = &r->defs[r->nd];
    runtime__metric_def__init(d);
    d->id = id;
    d->name = (char *)name;
    d->typ = (Runtime__MetricType)typ;
    d->help = (char *)help;
    for (size_t i = 0; kv != NULL && kv[2 * i] != NULL; i++) {
        assert_true(i < MAXL);
        Runtime__MetricDef__LabelsEntry *e = &r->lab[r->nd][i];
        runtime__metric_def__labels_entry__init(e);
        e->key = (char *)kv[2 * i];
        e->value = (char *)kv[2 * i + 1];
        r->lp[r->nd][i] = e;
        d->n_labels = i + 1;
    }
    d->labels = d->n_labels ? r->lp[r->nd] : NULL;
    d->bounds = (double *)bounds;
    d->n_bounds = nb;
    r->dp[r->nd] = d;
    r->nd++;
}

static void val(struct reply *r, uint64_t id, double v, const uint64_t *counts, size_t nc)
{
    assert_true(r->nv < MAXD);
    Runtime__MetricValue *x = &r->vals[r->nv];
    runtime__metric_value__init(x);
    x->id = id;
    x->value = v;
    x->counts = (uint64_t *)counts;
    x->n_counts = nc;
    r->vp[r->nv] = x;
    r->nv++;
}

static uint8_t *pack(struct reply *r, size_t *len)
{
    Runtime__MetricUpdate u = RUNTIME__METRIC_UPDATE__INIT;
    u.defs = r->dp;
    u.n_defs = r->nd;
    u.values = r->vp;
    u.n_values = r->nv;
    Runtime__GetMetricsReply rep = RUNTIME__GET_METRICS_REPLY__INIT;
    rep.update = &u;
    *len = runtime__get_metrics_reply__get_packed_size(&rep);
    uint8_t *buf = xmalloc(*len + 1);
    assert_int_equal(runtime__get_metrics_reply__pack(&rep, buf), *len);
    return buf;
}

static int apply(struct wd_metrics *m, const char *replica, const char *group, struct reply *r)
{
    size_t len;
    uint8_t *pb = pack(r, &len);
    int ret = wd_metrics_update(m, replica, group, pb, len);
    free(pb);
    memset(r, 0, sizeof *r);
    return ret;
}

static char *prom(struct wd_metrics *m, const char *filter)
{
    struct wd_buf b = {0};
    wd_metrics_prometheus(m, filter, &b);
    return wd_buf_steal_str(&b);
}

static char *json_str(struct wd_metrics *m, const char *filter)
{
    struct wd_buf b = {0};
    wd_metrics_json(m, filter, &b);
    return wd_buf_steal_str(&b);
}

static cJSON *json(struct wd_metrics *m, const char *filter)
{
    autofree char *s = json_str(m, filter);
    cJSON *doc = cJSON_Parse(s);
    assert_non_null(doc);
    return doc;
}

static cJSON *metric_at(cJSON *doc, int i)
{
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(doc, "metrics");
    assert_true(cJSON_IsArray(arr));
    cJSON *o = cJSON_GetArrayItem(arr, i);
    assert_non_null(o);
    return o;
}

static int nmetrics(cJSON *doc)
{
    return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "metrics"));
}

static double num(cJSON *o, const char *key)
{
    cJSON *n = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_true(cJSON_IsNumber(n));
    return n->valuedouble;
}

static const char *str(cJSON *o, const char *key)
{
    cJSON *n = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_true(cJSON_IsString(n));
    return n->valuestring;
}

static const char *const node1[] = {"serviceweaver_node", "n1", NULL};
static const char *const node2[] = {"serviceweaver_node", "n2", NULL};

/* ---- tests ----------------------------------------------------------------------------- */

static void test_defs_then_values(void **state)
{
    (void)state;
    struct wd_metrics *m = wd_metrics_new();
    struct reply r = {0};
    def(&r, 11, "requests", COUNTER, "Requests.", NULL, NULL, 0);
    def(&r, 12, "inflight", GAUGE, "", NULL, NULL, 0);
    val(&r, 11, 5, NULL, 0);
    assert_int_equal(apply(m, "cart/0/aa", "cart", &r), 0);

    cJSON *doc = json(m, NULL);
    assert_int_equal(nmetrics(doc), 2);
    assert_string_equal(str(metric_at(doc, 0), "name"), "inflight");
    assert_true(num(metric_at(doc, 0), "value") == 0); /* defined, no value yet */
    assert_string_equal(str(metric_at(doc, 1), "type"), "counter");
    assert_true(num(metric_at(doc, 1), "value") == 5);
    assert_true(num(metric_at(doc, 1), "replicas") == 1);
    cJSON_Delete(doc);

    /* values only, absolute */
    val(&r, 11, 7, NULL, 0);
    val(&r, 12, -2.5, NULL, 0);
    assert_int_equal(apply(m, "cart/0/aa", "cart", &r), 0);
    doc = json(m, NULL);
    assert_true(num(metric_at(doc, 0), "value") == -2.5);
    assert_true(num(metric_at(doc, 1), "value") == 7);
    cJSON_Delete(doc);

    /* an empty reply (no update at all) is fine */
    assert_int_equal(wd_metrics_update(m, "cart/0/aa", "cart", NULL, 0), 0);
    struct wd_metrics_stats st;
    wd_metrics_stats(m, &st);
    assert_int_equal(st.replicas, 1);
    assert_int_equal(st.defs, 2);
    assert_int_equal(st.series, 2);
    assert_true(st.bytes > 0);
    wd_metrics_free(m);
    wd_metrics_free(NULL);
}

static void test_histogram(void **state)
{
    (void)state;
    struct wd_metrics *m = wd_metrics_new();
    struct reply r = {0};
    static const double b[] = {1, 2.5};
    static const uint64_t c1[] = {1, 2, 3}, c2[] = {4, 2, 10};
    def(&r, 1, "lat", HIST, "Latency.", NULL, b, 2);
    val(&r, 1, 3.5, c1, 3);
    assert_int_equal(apply(m, "r", "g", &r), 0);
    val(&r, 1, 99.25, c2, 3);
    assert_int_equal(apply(m, "r", "g", &r), 0);

    cJSON *doc = json(m, NULL);
    cJSON *o = metric_at(doc, 0);
    assert_string_equal(str(o, "type"), "histogram");
    assert_true(num(o, "sum") == 99.25);
    assert_true(num(o, "value") == 99.25);
    assert_true(num(o, "count") == 16);
    cJSON *bounds = cJSON_GetObjectItemCaseSensitive(o, "bounds");
    cJSON *counts = cJSON_GetObjectItemCaseSensitive(o, "counts");
    assert_int_equal(cJSON_GetArraySize(bounds), 2);
    assert_true(cJSON_GetArrayItem(bounds, 1)->valuedouble == 2.5);
    assert_int_equal(cJSON_GetArraySize(counts), 3);
    assert_true(cJSON_GetArrayItem(counts, 0)->valuedouble == 4);
    assert_true(cJSON_GetArrayItem(counts, 2)->valuedouble == 10);
    cJSON_Delete(doc);

    autofree char *p = prom(m, NULL);
    assert_non_null(strstr(p, "lat_bucket{replica=\"r\",group=\"g\",le=\"1\"} 4\n"
                              "lat_bucket{replica=\"r\",group=\"g\",le=\"2.5\"} 6\n"
                              "lat_bucket{replica=\"r\",group=\"g\",le=\"+Inf\"} 16\n"
                              "lat_sum{replica=\"r\",group=\"g\"} 99.25\n"
                              "lat_count{replica=\"r\",group=\"g\"} 16\n"));
    wd_metrics_free(m);
}

static void test_two_replicas_summed(void **state)
{
    (void)state;
    struct wd_metrics *m = wd_metrics_new();
    struct reply r = {0};
    static const char *const lab[] = {"method", "GET", NULL};
    static const char *const lab2[] = {"method", "PUT", NULL};
    static const double b[] = {10};
    static const uint64_t c1[] = {1, 1}, c2[] = {2, 5};
    def(&r, 1, "req", COUNTER, "h", lab, NULL, 0);
    def(&r, 2, "lat", HIST, "", lab, b, 1);
    val(&r, 1, 3, NULL, 0);
    val(&r, 2, 20, c1, 2);
    assert_int_equal(apply(m, "cart/0/aa", "cart", &r), 0);
    def(&r, 900, "req", COUNTER, "h", lab, NULL, 0); /* ids are per weavelet */
    def(&r, 901, "lat", HIST, "", lab, b, 1);
    def(&r, 902, "req", COUNTER, "h", lab2, NULL, 0); /* other labels: its own series */
    val(&r, 900, 4, NULL, 0);
    val(&r, 901, 100, c2, 2);
    val(&r, 902, 1, NULL, 0);
    assert_int_equal(apply(m, "cart/1/bb", "cart", &r), 0);

    cJSON *doc = json(m, NULL);
    assert_int_equal(nmetrics(doc), 3);
    cJSON *lat = metric_at(doc, 0), *req1 = metric_at(doc, 1), *req2 = metric_at(doc, 2);
    assert_string_equal(str(lat, "name"), "lat");
    assert_true(num(lat, "replicas") == 2);
    assert_true(num(lat, "sum") == 120);
    assert_true(num(lat, "count") == 9);
    assert_true(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(lat, "counts"), 1)
                    ->valuedouble == 6);
    /* sorted by labels: method=GET before method=PUT */
    assert_string_equal(str(cJSON_GetObjectItemCaseSensitive(req1, "labels"), "method"), "GET");
    assert_true(num(req1, "value") == 7);
    assert_true(num(req1, "replicas") == 2);
    assert_true(num(req2, "value") == 1);
    assert_true(num(req2, "replicas") == 1);
    cJSON_Delete(doc);
    wd_metrics_free(m);
}

static void test_replica_gone_keeps(void **state)
{
    (void)state;
    struct wd_metrics *m = wd_metrics_new();
    struct reply r = {0};
    def(&r, 1, "req", COUNTER, "", NULL, NULL, 0);
    def(&r, 2, "up", GAUGE, "", NULL, NULL, 0);
    val(&r, 1, 10, NULL, 0);
    val(&r, 2, 1, NULL, 0);
    assert_int_equal(apply(m, "a", "g", &r), 0);
    def(&r, 1, "req", COUNTER, "", NULL, NULL, 0);
    def(&r, 2, "up", GAUGE, "", NULL, NULL, 0);
    val(&r, 1, 5, NULL, 0);
    val(&r, 2, 1, NULL, 0);
    assert_int_equal(apply(m, "b", "g", &r), 0);

    wd_metrics_replica_gone(m, "a");
    wd_metrics_replica_gone(m, "a");       /* twice: no-op */
    wd_metrics_replica_gone(m, "unknown"); /* ignored */
    cJSON *doc = json(m, NULL);
    assert_int_equal(nmetrics(doc), 2);
    assert_true(num(metric_at(doc, 0), "value") == 15); /* req: a's last value kept */
    assert_true(num(metric_at(doc, 0), "replicas") == 2);
    assert_true(num(metric_at(doc, 1), "value") == 1); /* up: only b's gauge */
    assert_true(num(metric_at(doc, 1), "replicas") == 1);
    cJSON_Delete(doc);
    autofree char *p = prom(m, NULL);
    assert_non_null(strstr(p, "req{replica=\"a\",group=\"g\"} 10\n"));
    assert_null(strstr(p, "up{replica=\"a\""));
    struct wd_metrics_stats st;
    wd_metrics_stats(m, &st);
    assert_int_equal(st.replicas, 2);
    wd_metrics_free(m);
}

static void test_restart_monotonic(void **state)
{
    (void)state;
    struct wd_metrics *m = wd_metrics_new();
    struct reply r = {0};
    static const double b[] = {1};
    static const uint64_t c1[] = {3, 4}, c2[] = {1, 0};
    def(&r, 1, "req", COUNTER, "", NULL, NULL, 0);
    def(&r, 2, "lat", HIST, "", NULL, b, 1);
    def(&r, 3, "req", COUNTER, "", node1, NULL, 0);
    def(&r, 4, "mem", GAUGE, "", NULL, NULL, 0);
    val(&r, 1, 10, NULL, 0);
    val(&r, 2, 8, c1, 2);
    val(&r, 3, 2, NULL, 0);
    val(&r, 4, 100, NULL, 0);
    assert_int_equal(apply(m, "cart/0/aa", "cart", &r), 0);
    wd_metrics_replica_gone(m, "cart/0/aa");

    /* same key, fresh stream: old ids are unknown now, ids may be reused */
    val(&r, 1, 1, NULL, 0);
    assert_int_equal(apply(m, "cart/0/aa", "cart", &r), -EPROTO);
    def(&r, 1, "lat", HIST, "", NULL, b, 1);
    def(&r, 7, "req", COUNTER, "", NULL, NULL, 0);
    def(&r, 8, "req", COUNTER, "", node2, NULL, 0);
    def(&r, 9, "mem", GAUGE, "", NULL, NULL, 0);
    val(&r, 1, 0.5, c2, 2);
    val(&r, 7, 3, NULL, 0);
    val(&r, 8, 1, NULL, 0);
    val(&r, 9, 5, NULL, 0);
    assert_int_equal(apply(m, "cart/0/aa", "cart", &r), 0);

    cJSON *doc = json(m, NULL);
    assert_int_equal(nmetrics(doc), 3);
    cJSON *lat = metric_at(doc, 0);
    assert_string_equal(str(lat, "name"), "lat");
    assert_true(num(lat, "sum") == 8.5);
    assert_true(num(lat, "count") == 8);
    assert_true(num(lat, "replicas") == 1);
    assert_string_equal(str(metric_at(doc, 1), "name"), "mem");
    assert_true(num(metric_at(doc, 1), "value") == 5); /* gauge: new stream only */
    /* the JSON sums over weavelets: serviceweaver_node (n1 retired, n2 live) is not a series */
    assert_true(num(metric_at(doc, 2), "value") == 13 + 2 + 1);
    assert_null(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(metric_at(doc, 2), "labels"), "serviceweaver_node"));
    cJSON_Delete(doc);

    autofree char *p = prom(m, "req");
    assert_string_equal(p, "# TYPE req counter\n"
                           "req{replica=\"cart/0/aa\",group=\"cart\"} 13\n"
                           "req{serviceweaver_node=\"n1\",replica=\"cart/0/aa\",group=\"cart\"} "
                           "2\n"
                           "req{serviceweaver_node=\"n2\",replica=\"cart/0/aa\",group=\"cart\"} "
                           "1\n");

    /* restart again: the retired totals keep adding up */
    wd_metrics_replica_gone(m, "cart/0/aa");
    def(&r, 5, "req", COUNTER, "", NULL, NULL, 0);
    val(&r, 5, 1, NULL, 0);
    assert_int_equal(apply(m, "cart/0/aa", "cart", &r), 0);
    doc = json(m, "req");
    assert_int_equal(nmetrics(doc), 1);
    assert_true(num(metric_at(doc, 0), "value") == 14 + 2 + 1);
    cJSON_Delete(doc);
    struct wd_metrics_stats st;
    wd_metrics_stats(m, &st);
    assert_int_equal(st.replicas, 1);
    assert_int_equal(st.defs, 1);
    assert_int_equal(st.series, 5); /* req, lat, req{n1}, req{n2} retired + live req */
    wd_metrics_free(m);
}

static void test_prometheus_exact(void **state)
{
    (void)state;
    struct wd_metrics *m = wd_metrics_new();
    struct reply r = {0};
    static const char *const lab[] = {"method", "GET", NULL};
    static const double b[] = {1, 10};
    static const uint64_t c[] = {2, 1, 1};
    def(&r, 1, "requests", COUNTER, "Requests served.", lab, NULL, 0);
    def(&r, 2, "inflight", GAUGE, "", NULL, NULL, 0);
    def(&r, 3, "latency_ms", HIST, "Latency.", NULL, b, 2);
    val(&r, 1, 3, NULL, 0);
    val(&r, 2, 1.5, NULL, 0);
    val(&r, 3, 25, c, 3);
    assert_int_equal(apply(m, "cart/0/aa", "cart", &r), 0);
    autofree char *p = prom(m, NULL);
    assert_string_equal(p, "# TYPE inflight gauge\n"
                           "inflight{replica=\"cart/0/aa\",group=\"cart\"} 1.5\n"
                           "# HELP latency_ms Latency.\n"
                           "# TYPE latency_ms histogram\n"
                           "latency_ms_bucket{replica=\"cart/0/aa\",group=\"cart\",le=\"1\"} 2\n"
                           "latency_ms_bucket{replica=\"cart/0/aa\",group=\"cart\",le=\"10\"} 3\n"
                           "latency_ms_bucket{replica=\"cart/0/aa\",group=\"cart\",le=\"+Inf\"} 4\n"
                           "latency_ms_sum{replica=\"cart/0/aa\",group=\"cart\"} 25\n"
                           "latency_ms_count{replica=\"cart/0/aa\",group=\"cart\"} 4\n"
                           "# HELP requests Requests served.\n"
                           "# TYPE requests counter\n"
                           "requests{method=\"GET\",replica=\"cart/0/aa\",group=\"cart\"} 3\n");

    /* a second replica: one HELP/TYPE per name, series sorted by replica */
    def(&r, 5, "requests", COUNTER, "Requests served.", lab, NULL, 0);
    def(&r, 6, "inflight", GAUGE, "", NULL, NULL, 0);
    val(&r, 5, 0.1, NULL, 0);
    val(&r, 6, NAN, NULL, 0);
    assert_int_equal(apply(m, "cart/1/bb", "cart", &r), 0);
    autofree char *p2 = prom(m, "i");
    assert_string_equal(p2, "# TYPE inflight gauge\n"
                            "inflight{replica=\"cart/0/aa\",group=\"cart\"} 1.5\n"
                            "inflight{replica=\"cart/1/bb\",group=\"cart\"} NaN\n");
    autofree char *p3 = prom(m, "requests");
    assert_string_equal(p3, "# HELP requests Requests served.\n"
                            "# TYPE requests counter\n"
                            "requests{method=\"GET\",replica=\"cart/0/aa\",group=\"cart\"} 3\n"
                            "requests{method=\"GET\",replica=\"cart/1/bb\",group=\"cart\"} 0.1\n");
    /* an empty store renders nothing; JSON an empty list */
    struct wd_metrics *e = wd_metrics_new();
    autofree char *p4 = prom(e, NULL);
    autofree char *j4 = json_str(e, NULL);
    assert_string_equal(p4, "");
    assert_string_equal(j4, "{\"metrics\":[]}");
    wd_metrics_free(e);
    wd_metrics_free(m);
}

static void test_label_escaping(void **state)
{
    (void)state;
    struct wd_metrics *m = wd_metrics_new();
    struct reply r = {0};
    static const char *const lab[] = {"path", "a\\b\"c\nd", NULL};
    def(&r, 1, "c", COUNTER, "line1\nback\\slash \"q\"", lab, NULL, 0);
    val(&r, 1, 1e21, NULL, 0);
    assert_int_equal(apply(m, "r\"1", "g\\", &r), 0);
    autofree char *p = prom(m, NULL);
    assert_string_equal(p, "# HELP c line1\\nback\\\\slash \"q\"\n"
                           "# TYPE c counter\n"
                           "c{path=\"a\\\\b\\\"c\\nd\",replica=\"r\\\"1\","
                           "group=\"g\\\\\"} 1e+21\n");
    cJSON *doc = json(m, NULL);
    cJSON *labels = cJSON_GetObjectItemCaseSensitive(metric_at(doc, 0), "labels");
    assert_string_equal(str(labels, "path"), "a\\b\"c\nd"); /* JSON keeps labels as sent */
    cJSON_Delete(doc);
    wd_metrics_free(m);
}

static void test_sanitize_collisions(void **state)
{
    (void)state;
    struct wd_metrics *m = wd_metrics_new();
    struct reply r = {0};
    static const char *const lab[] = {"a.b", "1", "a_b", "2", "replica", "3",
                                      "1x",  "4", "group", "5", NULL};
    static const char *const hl[] = {"le", "x", "le_2", "y", NULL};
    static const double b[] = {0.5};
    static const uint64_t c[] = {1, 0};
    def(&r, 1, "my.metric-1", COUNTER, "", lab, NULL, 0);
    def(&r, 2, "9lives", HIST, "", hl, b, 1);
    def(&r, 3, "ns:name", GAUGE, "", NULL, NULL, 0);
    val(&r, 1, 1, NULL, 0);
    val(&r, 2, 0.25, c, 2);
    assert_int_equal(apply(m, "r", "g", &r), 0);
    autofree char *p = prom(m, NULL);
    assert_string_equal(
        p, "# TYPE _9lives histogram\n"
           "_9lives_bucket{le_2=\"y\",le_3=\"x\",replica=\"r\",group=\"g\",le=\"0.5\"} 1\n"
           "_9lives_bucket{le_2=\"y\",le_3=\"x\",replica=\"r\",group=\"g\",le=\"+Inf\"} 1\n"
           "_9lives_sum{le_2=\"y\",le_3=\"x\",replica=\"r\",group=\"g\"} 0.25\n"
           "_9lives_count{le_2=\"y\",le_3=\"x\",replica=\"r\",group=\"g\"} 1\n"
           "# TYPE my_metric_1 counter\n"
           "my_metric_1{_1x=\"4\",a_b=\"2\",a_b_2=\"1\",group_2=\"5\",replica_2=\"3\","
           "replica=\"r\",group=\"g\"} 1\n"
           "# TYPE ns:name gauge\n"
           "ns:name{replica=\"r\",group=\"g\"} 0\n");
    /* filter matches the name as sent or as sanitized */
    autofree char *f1 = prom(m, "my.metric");
    autofree char *f2 = prom(m, "my_metric");
    assert_string_equal(f1, f2);
    assert_non_null(strstr(f1, "my_metric_1{"));
    assert_null(strstr(f1, "9lives"));

    /* two names that sanitize alike, different types: one TYPE, the odd one skipped */
    struct wd_metrics *m2 = wd_metrics_new();
    def(&r, 1, "x.y", COUNTER, "", NULL, NULL, 0);
    def(&r, 2, "x-y", COUNTER, "", node1, NULL, 0);
    def(&r, 3, "x_y", GAUGE, "", node2, NULL, 0);
    val(&r, 1, 1, NULL, 0);
    val(&r, 2, 2, NULL, 0);
    val(&r, 3, 3, NULL, 0);
    assert_int_equal(apply(m2, "r", "g", &r), 0);
    autofree char *p2 = prom(m2, NULL);
    assert_string_equal(p2, "# TYPE x_y counter\n"
                            "x_y{replica=\"r\",group=\"g\"} 1\n"
                            "x_y{serviceweaver_node=\"n1\",replica=\"r\",group=\"g\"} 2\n");
    wd_metrics_free(m2);
    wd_metrics_free(m);
}

static void test_type_disagreement(void **state)
{
    (void)state;
    struct wd_metrics *m = wd_metrics_new();
    struct reply r = {0};
    static const double b1[] = {1}, b2[] = {2};
    static const uint64_t c[] = {1, 1};
    for (int i = 0; i < 3; i++) {
        char key[8];
        snprintf(key, sizeof key, "r%d", i);
        def(&r, 1, "c", i == 1 ? GAUGE : COUNTER, "", NULL, NULL, 0);
        def(&r, 2, "h", HIST, "", NULL, i == 2 ? b2 : b1, 1);
        val(&r, 1, 1, NULL, 0);
        val(&r, 2, 1, c, 2);
        assert_int_equal(apply(m, key, "g", &r), 0);
    }
    autofree char *p = prom(m, "c");
    assert_string_equal(p, "# TYPE c counter\n"
                           "c{replica=\"r0\",group=\"g\"} 1\n"
                           "c{replica=\"r2\",group=\"g\"} 1\n");
    cJSON *doc = json(m, NULL);
    assert_int_equal(nmetrics(doc), 2);
    assert_true(num(metric_at(doc, 0), "value") == 2);
    assert_true(num(metric_at(doc, 0), "replicas") == 2);
    assert_true(num(metric_at(doc, 1), "count") == 4); /* r2's other bounds skipped */
    assert_true(num(metric_at(doc, 1), "replicas") == 2);
    cJSON_Delete(doc);
    wd_metrics_free(m);
}

struct snap {
    char *prom, *json;
    struct wd_metrics_stats st;
};

static void snap_take(struct wd_metrics *m, struct snap *s)
{
    s->prom = prom(m, NULL);
    s->json = json_str(m, NULL);
    wd_metrics_stats(m, &s->st);
}

static void snap_same(struct wd_metrics *m, const struct snap *s)
{
    struct snap now;
    snap_take(m, &now);
    assert_string_equal(now.prom, s->prom);
    assert_string_equal(now.json, s->json);
    assert_memory_equal(&now.st, &s->st, sizeof now.st);
    free(now.prom);
    free(now.json);
}

static void test_eproto_unchanged(void **state)
{
    (void)state;
    struct wd_metrics *m = wd_metrics_new();
    struct reply r = {0};
    static const double b[] = {1, 2}, bad_b[] = {2, 1}, nan_b[] = {NAN}, inf_b[] = {INFINITY};
    static const uint64_t c3[] = {1, 2, 3}, c2[] = {1, 2};
    def(&r, 1, "req", COUNTER, "", NULL, NULL, 0);
    def(&r, 2, "lat", HIST, "", NULL, b, 2);
    val(&r, 1, 5, NULL, 0);
    val(&r, 2, 1, c3, 3);
    assert_int_equal(apply(m, "a", "g", &r), 0);
    wd_metrics_replica_gone(m, "a");
    def(&r, 1, "req", COUNTER, "", NULL, NULL, 0);
    val(&r, 1, 1, NULL, 0);
    assert_int_equal(apply(m, "a", "g", &r), 0); /* a retired total exists too */
    struct snap s0;
    snap_take(m, &s0);

    static const uint8_t garbage[] = {0x0a, 0x05, 0x12, 0x03, 0xff}; /* truncated */
    assert_int_equal(wd_metrics_update(m, "a", "g", garbage, sizeof garbage), -EPROTO);
    assert_int_equal(wd_metrics_update(m, "new", "g", garbage, sizeof garbage), -EPROTO);
    snap_same(m, &s0);

    /* each case carries a valid def and value first, which must not land either */
#define BAD(replica, ...)                                                                          \
    do {                                                                                           \
        def(&r, 100, "ok", COUNTER, "", NULL, NULL, 0);                                            \
        val(&r, 100, 1, NULL, 0);                                                                  \
        __VA_ARGS__;                                                                               \
        assert_int_equal(apply(m, replica, "g", &r), -EPROTO);                                     \
        snap_same(m, &s0);                                                                         \
    } while (0)
    BAD("a", val(&r, 77, 1, NULL, 0));                         /* unknown id */
    BAD("new", val(&r, 1, 1, NULL, 0));                        /* unknown id, new replica */
    BAD("a", def(&r, 1, "req", COUNTER, "", NULL, NULL, 0));   /* def sent twice */
    BAD("a", def(&r, 100, "x", GAUGE, "", NULL, NULL, 0));     /* same id twice in a reply */
    BAD("a", def(&r, 5, "x", 0, "", NULL, NULL, 0));           /* INVALID type */
    BAD("a", def(&r, 5, "x", 7, "", NULL, NULL, 0));           /* unknown type */
    BAD("a", def(&r, 5, "", COUNTER, "", NULL, NULL, 0));      /* empty name */
    BAD("a", def(&r, 5, "x", HIST, "", NULL, bad_b, 2));       /* bounds not increasing */
    BAD("a", def(&r, 5, "x", HIST, "", NULL, nan_b, 1));       /* NaN bound */
    BAD("a", def(&r, 5, "x", HIST, "", NULL, inf_b, 1));       /* +Inf bound */
    BAD("a", def(&r, 5, "x", GAUGE, "", NULL, b, 2));          /* bounds on a gauge */
    BAD("a", def(&r, 5, "x\xff", COUNTER, "", NULL, NULL, 0)); /* invalid UTF-8 */
    BAD("a", def(&r, 5, "x", COUNTER, "\xc0\x80", NULL, NULL, 0)); /* overlong */
    static const char *const dup[] = {"k", "1", "k", "2", NULL};
    BAD("a", def(&r, 5, "x", COUNTER, "", dup, NULL, 0)); /* duplicate label key */
    static const char *const emptyk[] = {"", "1", NULL};
    BAD("a", def(&r, 5, "x", COUNTER, "", emptyk, NULL, 0)); /* empty label key */
    static const char *const badv[] = {"k", "\xed\xa0\x80", NULL};
    BAD("a", def(&r, 5, "x", COUNTER, "", badv, NULL, 0)); /* surrogate */
    BAD("new", val(&r, 100, -1, NULL, 0));                  /* negative counter */
    BAD("a", val(&r, 100, NAN, NULL, 0));                   /* NaN counter */
    BAD("a", val(&r, 100, INFINITY, NULL, 0));              /* Inf counter */
    BAD("a", val(&r, 100, 1, c2, 2));                       /* counts on a counter */
    BAD("a", def(&r, 6, "h", HIST, "", NULL, b, 2); val(&r, 6, 1, c2, 2)); /* counts short */
    BAD("gone-never", def(&r, 6, "h", HIST, "", NULL, b, 0); val(&r, 6, 1, c3, 3));
#undef BAD
    /* the retired stream's histogram id 2 is unknown to the live stream */
    val(&r, 2, 1, c3, 3);
    assert_int_equal(apply(m, "a", "g", &r), -EPROTO);
    snap_same(m, &s0);
    /* bad arguments */
    assert_int_equal(wd_metrics_update(m, "", "g", NULL, 0), -EINVAL);
    assert_int_equal(wd_metrics_update(m, "a", "", NULL, 0), -EINVAL);
    assert_int_equal(wd_metrics_update(m, "a", "g", NULL, 3), -EINVAL);
    snap_same(m, &s0);

    /* and the store still works */
    val(&r, 1, 2, NULL, 0);
    assert_int_equal(apply(m, "a", "g", &r), 0);
    cJSON *doc = json(m, "req");
    assert_true(num(metric_at(doc, 0), "value") == 7);
    cJSON_Delete(doc);
    free(s0.prom);
    free(s0.json);
    wd_metrics_free(m);
}

static void test_limits(void **state)
{
    (void)state;
    struct wd_metrics *m = wd_metrics_new();
    struct reply r = {0};
    char name[32];

    /* WD_METRICS_MAX_DEFS per replica, over several replies */
    size_t n = 0;
    while (n < WD_METRICS_MAX_DEFS) {
        static char names[MAXD][32];
        for (size_t i = 0; i < MAXD && n < WD_METRICS_MAX_DEFS; i++, n++) {
            snprintf(names[i], sizeof names[i], "m%zu", n);
            def(&r, n + 1, names[i], COUNTER, "", NULL, NULL, 0);
        }
        assert_int_equal(apply(m, "big", "g", &r), 0);
    }
    def(&r, 99999, "one-more", COUNTER, "", NULL, NULL, 0);
    assert_int_equal(apply(m, "big", "g", &r), -EPROTO);
    struct wd_metrics_stats st;
    wd_metrics_stats(m, &st);
    assert_int_equal(st.defs, WD_METRICS_MAX_DEFS);
    val(&r, 4096, 1, NULL, 0); /* lookups still work */
    assert_int_equal(apply(m, "big", "g", &r), 0);

    /* labels */
    static char keys[WD_METRICS_MAX_LABELS + 1][8];
    Runtime__MetricDef__LabelsEntry le[WD_METRICS_MAX_LABELS + 1];
    Runtime__MetricDef__LabelsEntry *lp[WD_METRICS_MAX_LABELS + 1];
    for (size_t i = 0; i <= WD_METRICS_MAX_LABELS; i++) {
        snprintf(keys[i], sizeof keys[i], "k%zu", i);
        runtime__metric_def__labels_entry__init(&le[i]);
        le[i].key = keys[i];
        lp[i] = &le[i];
    }
    def(&r, 1, "lab", COUNTER, "", NULL, NULL, 0);
    r.defs[0].labels = lp;
    r.defs[0].n_labels = WD_METRICS_MAX_LABELS;
    assert_int_equal(apply(m, "labels", "g", &r), 0);
    def(&r, 2, "lab2", COUNTER, "", NULL, NULL, 0);
    r.defs[0].labels = lp;
    r.defs[0].n_labels = WD_METRICS_MAX_LABELS + 1;
    assert_int_equal(apply(m, "labels", "g", &r), -EPROTO);

    /* buckets */
    static double bounds[WD_METRICS_MAX_BUCKETS];
    static uint64_t counts[WD_METRICS_MAX_BUCKETS + 1];
    for (size_t i = 0; i < WD_METRICS_MAX_BUCKETS; i++)
        bounds[i] = (double)i;
    def(&r, 3, "h", HIST, "", NULL, bounds, WD_METRICS_MAX_BUCKETS - 1);
    counts[WD_METRICS_MAX_BUCKETS - 1] = 7;
    val(&r, 3, 1, counts, WD_METRICS_MAX_BUCKETS);
    assert_int_equal(apply(m, "labels", "g", &r), 0);
    def(&r, 4, "h2", HIST, "", NULL, bounds, WD_METRICS_MAX_BUCKETS);
    assert_int_equal(apply(m, "labels", "g", &r), -EPROTO);
    autofree char *hp = prom(m, "h");
    assert_non_null(strstr(hp, "le=\"1022\"} 0\n"));
    assert_non_null(strstr(hp, "le=\"+Inf\"} 7\n"));

    /* strings */
    autofree char *s = xmalloc(WD_METRICS_MAX_STRING + 2);
    memset(s, 'x', WD_METRICS_MAX_STRING);
    s[WD_METRICS_MAX_STRING] = 0;
    def(&r, 5, s, COUNTER, s, NULL, NULL, 0);
    assert_int_equal(apply(m, "labels", "g", &r), 0);
    s[WD_METRICS_MAX_STRING] = 'x';
    s[WD_METRICS_MAX_STRING + 1] = 0;
    def(&r, 6, "ok", COUNTER, s, NULL, NULL, 0);
    assert_int_equal(apply(m, "labels", "g", &r), -EPROTO);
    assert_int_equal(wd_metrics_update(m, s, "g", NULL, 0), -EINVAL);

    /* bytes: 64 labels of 4 KiB values and a 4 KiB help make ~270 KiB a def; 64 of them pass
     * WD_METRICS_MAX_REPLICA_BYTES (16 MiB) */
    s[WD_METRICS_MAX_STRING] = 0;
    for (size_t i = 0; i < WD_METRICS_MAX_LABELS; i++)
        le[i].value = s;
    for (size_t i = 0; i < MAXD; i++) {
        def(&r, 1000 + i, "fat", GAUGE, s, NULL, NULL, 0);
        r.defs[i].labels = lp;
        r.defs[i].n_labels = WD_METRICS_MAX_LABELS;
    }
    assert_int_equal(apply(m, "fat", "g", &r), -EPROTO);
    wd_metrics_free(m);

    /* replicas: 64 live, then a 65th fails until one is gone */
    m = wd_metrics_new();
    for (int i = 0; i < WD_METRICS_MAX_REPLICAS; i++) {
        snprintf(name, sizeof name, "r%02d", i);
        assert_int_equal(wd_metrics_update(m, name, "g", NULL, 0), 0);
    }
    assert_int_equal(wd_metrics_update(m, "r99", "g", NULL, 0), -EPROTO);
    wd_metrics_replica_gone(m, "r00");
    assert_int_equal(wd_metrics_update(m, "r99", "g", NULL, 0), 0);
    assert_int_equal(wd_metrics_update(m, "r00", "g", NULL, 0), -EPROTO); /* back: 65 live */
    assert_int_equal(wd_metrics_update(m, "r01", "g", NULL, 0), 0);       /* still live */
    /* gone ones are kept up to WD_METRICS_MAX_GONE, the oldest dropped first */
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof name, "churn%03d", i);
        def(&r, 1, "c", COUNTER, "", NULL, NULL, 0);
        val(&r, 1, 1, NULL, 0);
        wd_metrics_replica_gone(m, "r99");
        assert_int_equal(apply(m, name, "g", &r), 0);
        wd_metrics_replica_gone(m, name);
    }
    wd_metrics_stats(m, &st);
    assert_int_equal(st.replicas, WD_METRICS_MAX_REPLICAS - 1 + WD_METRICS_MAX_GONE);
    autofree char *cp = prom(m, "c");
    assert_null(strstr(cp, "churn135"));
    assert_non_null(strstr(cp, "churn136"));
    assert_non_null(strstr(cp, "churn199"));
    wd_metrics_free(m);
}

static void test_output_cap(void **state)
{
    (void)state;
    struct wd_metrics *m = wd_metrics_new();
    struct reply r = {0};
    def(&r, 1, "requests_total", COUNTER, "Requests.", NULL, NULL, 0);
    assert_int_equal(apply(m, "r", "g", &r), 0);
    struct wd_buf b = {.max = 40};
    assert_int_equal(wd_buf_append(&b, "keep", 4), 0);
    wd_metrics_prometheus(m, NULL, &b);
    assert_int_equal(b.len, 4);
    assert_string_equal((char *)b.data, "keep");
    wd_metrics_json(m, NULL, &b);
    assert_int_equal(b.len, 4);
    wd_buf_free(&b);
    wd_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defs_then_values),  cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_two_replicas_summed), cmocka_unit_test(test_replica_gone_keeps),
        cmocka_unit_test(test_restart_monotonic), cmocka_unit_test(test_prometheus_exact),
        cmocka_unit_test(test_label_escaping),    cmocka_unit_test(test_sanitize_collisions),
        cmocka_unit_test(test_type_disagreement), cmocka_unit_test(test_eproto_unchanged),
        cmocka_unit_test(test_limits),            cmocka_unit_test(test_output_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
