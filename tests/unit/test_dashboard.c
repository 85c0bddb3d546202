/* tests/unit/test_dashboard.c - the dashboard page rendered from small views: escaping, the call
 * graph's nodes and edges (and a 60-component layout without overlaps), replica rows, the
 * fragment, the log filter, a trace timeline, the output bounds, and data that is missing or of
 * the wrong JSON type. */
#include "tests/unit/wd_test.h"
#include "engine/deploy/dashboard.h"
#include "engine/base/util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char status_json[] =
    "{\"app\":\"shop\",\"deployment\":\"984c87f5-ad5f-4519-8d45-9d3f0d676f34\",\"runtime\":"
    "\"docker\",\"started\":1700000000,\"listeners\":{\"shop\":\"127.0.0.1:36337\"},"
    "\"replicas\":["
    "{\"group\":\"weaver.Main\",\"replica\":0,\"state\":\"running\",\"health\":\"healthy\","
    "\"restarts\":0,\"weavelet\":\"0bdd\",\"last_exit\":\"\",\"container\":\"shop-weaver-main-0\","
    "\"address\":\"172.18.0.2\"},"
    "{\"group\":\"shop.Cart\",\"replica\":0,\"state\":\"running\",\"health\":\"healthy\","
    "\"restarts\":1,\"weavelet\":\"1dcb\",\"last_exit\":\"killed by signal 9\","
    "\"container\":\"shop-shop-cart-0\",\"address\":\"172.18.0.3\"},"
    "{\"group\":\"shop.Cart\",\"replica\":1,\"state\":\"running\",\"health\":\"starting\","
    "\"restarts\":0,\"weavelet\":\"1dcc\",\"last_exit\":\"\",\"pid\":77},"
    "{\"group\":\"shop.Inventory\",\"replica\":0,\"pid\":24254,\"state\":\"running\","
    "\"health\":\"healthy\",\"restarts\":0,\"weavelet\":\"3fef\",\"last_exit\":\"\"}],"
    "\"groups\":[{\"name\":\"github.com/ServiceWeaver/weaver/Main\",\"short\":\"weaver.Main\","
    "\"want\":1,\"active\":true},{\"name\":\"example.com/shop/Cart\",\"short\":\"shop.Cart\","
    "\"want\":2,\"active\":true},{\"name\":\"example.com/shop/Inventory\",\"short\":"
    "\"shop.Inventory\",\"want\":1,\"active\":true}]}";

#define MAIN "github.com/ServiceWeaver/weaver/Main"
static const char graph_json[] =
    "{\"components\":["
    "{\"name\":\"" MAIN "\",\"short\":\"weaver.Main\",\"group\":\"weaver.Main\"},"
    "{\"name\":\"example.com/shop/Cart\",\"short\":\"shop.Cart\",\"group\":\"shop.Cart\"},"
    "{\"name\":\"example.com/shop/Crasher\",\"short\":\"shop.Crasher\",\"group\":"
    "\"shop.Crasher\"},"
    "{\"name\":\"example.com/shop/Inventory\",\"short\":\"shop.Inventory\",\"group\":"
    "\"shop.Inventory\"},"
    "{\"name\":\"example.com/shop/Pricer\",\"short\":\"shop.Pricer\",\"group\":\"weaver.Main\"}],"
    "\"edges\":["
    "{\"caller\":\"example.com/shop/Cart\",\"callee\":\"example.com/shop/Inventory\",\"calls\":10,"
    "\"errors\":0,\"mean_micros\":412.5},"
    "{\"caller\":\"" MAIN "\",\"callee\":\"example.com/shop/Cart\",\"calls\":12,\"errors\":2},"
    "{\"caller\":\"" MAIN "\",\"callee\":\"example.com/shop/Crasher\",\"calls\":0,\"errors\":0},"
    "{\"caller\":\"" MAIN "\",\"callee\":\"example.com/shop/Pricer\",\"calls\":5,\"errors\":0}]}";

static const char metrics_json[] =
    "{\"metrics\":["
    "{\"name\":\"serviceweaver_method_count\",\"type\":\"counter\",\"labels\":{\"caller\":\"" MAIN
    "\",\"component\":\"example.com/shop/Cart\",\"method\":\"Add\",\"remote\":\"true\"},"
    "\"replicas\":1,\"value\":12},"
    "{\"name\":\"serviceweaver_method_error_count\",\"type\":\"counter\",\"labels\":{\"caller\":"
    "\"" MAIN "\",\"component\":\"example.com/shop/Cart\",\"method\":\"Add\"},\"value\":2},"
    "{\"name\":\"serviceweaver_method_latency_micros\",\"type\":\"histogram\",\"labels\":{"
    "\"caller\":\"" MAIN "\",\"component\":\"example.com/shop/Cart\",\"method\":\"Add\"},"
    "\"value\":660,\"bounds\":[10,100,1000],\"counts\":[0,10,0,0],\"count\":10,\"sum\":660},"
    "{\"name\":\"serviceweaver_method_count\",\"type\":\"counter\",\"labels\":{\"caller\":"
    "\"github.com/ServiceWeaver/weaver/deployerControl\",\"component\":"
    "\"github.com/ServiceWeaver/weaver/deployerControl\",\"method\":\"LogBatch\"},\"value\":20},"
    "{\"name\":\"shop_buys\",\"type\":\"counter\",\"help\":\"buys\",\"labels\":{"
    "\"serviceweaver_app\":\"shop\",\"store\":\"q\\\"<'&\"},\"value\":10},"
    "{\"name\":\"shop_flood_lines\",\"type\":\"histogram\",\"labels\":{},\"value\":50,"
    "\"bounds\":[1,10,100],\"counts\":[0,0,1,0],\"count\":1,\"sum\":50}]}";

static const char logs_json[] =
    "[{\"time\":\"2026-12-06T02:14:36.604809Z\",\"level\":\"DEBUG\",\"component\":"
    "\"example.com/shop/Cart\",\"file\":\"c.go\",\"line\":71,\"msg\":\"reserving\",\"attrs\":{"
    "\"traceid\":\"aa529baa94af23ccb6fa2f96f80aa268\",\"item\":\"a\"}},"
    "{\"time\":\"2026-12-06T02:14:36.605182Z\",\"level\":\"DEBUG\",\"component\":"
    "\"example.com/shop/Inventory\",\"msg\":\"took item\",\"attrs\":{\"left\":\"9\"}},"
    "{\"time\":\"2026-12-06T02:14:36.605318Z\",\"level\":\"INFO\",\"component\":"
    "\"example.com/shop/Cart\",\"msg\":\"added item\"},"
    "{\"time\":\"2026-12-06T02:14:37Z\",\"level\":\"ERROR\",\"component\":\"" MAIN "\","
    "\"msg\":\"buy failed: <b>full</b> & \\\"done\\\" 'x'\"}]";

static const char traces_json[] =
    "{\"traces\":[{\"trace_id\":\"aa529baa94af23ccb6fa2f96f80aa268\",\"name\":\"GET /buy\","
    "\"start_micros\":1796523300604000,\"duration_micros\":1900,\"spans\":3,\"groups\":["
    "\"weaver.Main\",\"shop.Cart\"]},{\"trace_id\":\"bb01\",\"name\":\"GET /price\","
    "\"start_micros\":1796523299000000,\"duration_micros\":120,\"spans\":1,\"groups\":[]}]}";

static const char trace_json[] =
    "{\"trace_id\":\"aa529baa94af23ccb6fa2f96f80aa268\",\"spans\":["
    "{\"name\":\"shop.Cart.Add\",\"span_id\":\"s2\",\"parent_span_id\":\"s1\",\"group\":"
    "\"shop.Cart\",\"kind\":\"server\",\"start_micros\":1500,\"end_micros\":2000},"
    "{\"name\":\"GET /buy\",\"span_id\":\"s1\",\"parent_span_id\":\"\",\"group\":\"weaver.Main\","
    "\"kind\":\"server\",\"start_micros\":1000,\"end_micros\":3000},"
    "{\"name\":\"shop.Inventory.Take\",\"span_id\":\"s3\",\"parent_span_id\":\"s2\",\"group\":"
    "\"shop.Inventory\",\"kind\":\"server\",\"start_micros\":1600,\"end_micros\":1700}]}";

struct views {
    cJSON *status, *graph, *metrics, *logs, *traces, *trace;
};

static struct views views_load(void)
{
    struct views v = {cJSON_Parse(status_json), cJSON_Parse(graph_json),
                      cJSON_Parse(metrics_json), cJSON_Parse(logs_json),
                      cJSON_Parse(traces_json), cJSON_Parse(trace_json)};
    assert_non_null(v.status);
    assert_non_null(v.graph);
    assert_non_null(v.metrics);
    assert_non_null(v.logs);
    assert_non_null(v.traces);
    assert_non_null(v.trace);
    return v;
}

static void views_free(struct views *v)
{
    cJSON_Delete(v->status);
    cJSON_Delete(v->graph);
    cJSON_Delete(v->metrics);
    cJSON_Delete(v->logs);
    cJSON_Delete(v->traces);
    cJSON_Delete(v->trace);
}

static struct wd_dashboard_data data_of(const struct views *v)
{
    return (struct wd_dashboard_data){v->status, v->graph, v->metrics, v->logs,
                                      v->traces, NULL,     NULL,       NULL};
}

static char *render(const struct wd_dashboard_data *dd, bool fragment)
{
    struct wd_buf b = {0};
    wd_dashboard_render(dd, fragment, &b);
    char *s = wd_buf_steal_str(&b);
    assert_non_null(s);
    return s;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void test_page_and_fragment(void **state)
{
    (void)state;
    struct views v = views_load();
    struct wd_dashboard_data dd = data_of(&v);
    char *page = render(&dd, false), *frag = render(&dd, true);
    assert_true(strncmp(page, "<!DOCTYPE html>", 15) == 0);
    assert_non_null(strstr(page, "<link rel=\"icon\" href=\"data:,\">"));
    assert_int_equal(count(page, "<script"), 1);
    assert_null(strstr(page, "src=")); /* nothing fetched from elsewhere */
    assert_non_null(strstr(page, "<div id=\"content\">"));
    assert_non_null(strstr(page, "fragment"));
    assert_null(strstr(frag, "<html"));
    assert_null(strstr(frag, "<script"));
    assert_null(strstr(frag, "<!DOCTYPE"));
    assert_non_null(strstr(frag, "id=\"replicas\""));
    assert_non_null(strstr(frag, "<h1>shop</h1>"));
    assert_non_null(strstr(frag, "<code>984c87f5</code>")); /* deployment: 8 chars */
    assert_null(strstr(frag, "984c87f5-"));
    assert_non_null(strstr(frag, "runtime <b>docker</b>"));
    assert_non_null(strstr(frag, "href=\"http://127.0.0.1:36337/\""));
    assert_non_null(strstr(page, frag)); /* the page's content is the fragment */
    free(page);
    free(frag);
    views_free(&v);
}

static void test_replica_rows(void **state)
{
    (void)state;
    struct views v = views_load();
    struct wd_dashboard_data dd = data_of(&v);
    char *s = render(&dd, true);
    assert_int_equal(count(s, "<tr data-group="), 4);
    assert_non_null(strstr(s, "<tr data-group=\"shop.Cart\" data-replica=\"0\" "
                              "data-restarts=\"1\""));
    assert_non_null(strstr(s, "<tr data-group=\"shop.Cart\" data-replica=\"1\" "
                              "data-restarts=\"0\""));
    assert_non_null(strstr(s, "data-group=\"weaver.Main\" data-replica=\"0\""));
    assert_non_null(strstr(s, "<code>shop-shop-cart-0</code> 172.18.0.3"));
    assert_non_null(strstr(s, "pid 24254"));
    assert_non_null(strstr(s, "killed by signal 9"));
    assert_non_null(strstr(s, "shop.Cart &times;2"));
    free(s);
    views_free(&v);
}

static void test_graph_nodes_edges(void **state)
{
    (void)state;
    struct views v = views_load();
    struct wd_dashboard_data dd = data_of(&v);
    char *s = render(&dd, true);
    assert_int_equal(count(s, "<g class=\"node\""), 5);
    assert_int_equal(count(s, "<g class=\"edge"), 4);
    assert_int_equal(count(s, "<svg"), 1);
    assert_non_null(strstr(s, "<g class=\"node\" data-component=\"" MAIN "\""));
    assert_non_null(strstr(s, "data-caller=\"" MAIN "\" data-callee=\"example.com/shop/Cart\""));
    assert_non_null(strstr(s, ">12 calls, 2 errors</text>"));
    assert_non_null(strstr(s, ">10 calls, 0 errors</text>"));
    assert_non_null(strstr(s, "<g class=\"edge err\"")); /* errors are marked */
    free(s);
    /* the deployer's live rate, when it has one, joins the label */
    cJSON *e0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(v.graph, "edges"), 0);
    cJSON_AddNumberToObject(e0, "rate", 12.34);
    s = render(&dd, true);
    assert_non_null(strstr(s, " errors, 12/s</text>"));
    cJSON_ReplaceItemInObjectCaseSensitive(e0, "rate", cJSON_CreateNumber(0.25));
    free(s);
    s = render(&dd, true);
    assert_non_null(strstr(s, " errors, 0.2/s</text>"));
    assert_non_null(strstr(s, ">shop.Pricer</text>"));
    assert_non_null(strstr(s, "in weaver.Main</text>")); /* colocated: its group shown */
    /* an edge to a component not in the list still gets a node and one edge */
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "caller", "example.com/shop/Cart");
    cJSON_AddStringToObject(e, "callee", "example.com/other/Ghost");
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(v.graph, "edges"), e);
    char *s2 = render(&dd, true);
    assert_int_equal(count(s2, "<g class=\"node\""), 6);
    assert_int_equal(count(s2, "<g class=\"edge"), 5);
    assert_non_null(strstr(s2, ">other.Ghost</text>"));
    free(s2);
    free(s);
    views_free(&v);
}

static void test_escaping(void **state)
{
    (void)state;
    static const char evil[] = "x<y>&\"'z";
    cJSON *st = cJSON_CreateObject();
    cJSON_AddStringToObject(st, "app", evil);
    cJSON_AddStringToObject(st, "deployment", "<&\"'>abcdef");
    cJSON *ls = cJSON_AddObjectToObject(st, "listeners");
    cJSON_AddStringToObject(ls, evil, "1.2.3.4:5\"><script>");
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "group", evil);
    cJSON_AddNumberToObject(r, "replica", 0);
    cJSON_AddStringToObject(r, "state", evil);
    cJSON_AddStringToObject(r, "last_exit", evil);
    cJSON_AddStringToObject(r, "container", evil);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(st, "replicas"), r);
    cJSON *g = cJSON_Parse("{\"components\":[{\"name\":\"a/<b>/C\\\"'&\"}],\"edges\":[{\"caller"
                           "\":\"a/<b>/C\\\"'&\",\"callee\":\"a/<b>/C\\\"'&\",\"calls\":1}]}");
    cJSON *m = cJSON_Parse("{\"metrics\":[{\"name\":\"app_<m>\",\"type\":\"gauge\",\"help\":"
                           "\"h\\\"<\",\"labels\":{\"k<\":\"v\\\"'&<\"},\"value\":1}]}");
    cJSON *logs = cJSON_Parse("[{\"level\":\"<i>\",\"component\":\"a/<b>/c\",\"msg\":\"<script>"
                              "alert('x')</script> & \\\"q\\\"\",\"attrs\":{\"<k>\":\"<v>\","
                              "\"traceid\":\"\\\"><x>\"}}]");
    cJSON *tr = cJSON_Parse("{\"traces\":[{\"trace_id\":\"t\\\"<>&'\",\"name\":\"<n>\","
                            "\"groups\":[\"<g>\"]}]}");
    cJSON *one = cJSON_Parse("{\"spans\":[{\"name\":\"<sp>\",\"span_id\":\"\\\"'\",\"group\":"
                             "\"<g>\",\"kind\":\"<k>\",\"start_micros\":1,\"end_micros\":2}]}");
    assert_non_null(g);
    assert_non_null(m);
    assert_non_null(logs);
    assert_non_null(tr);
    assert_non_null(one);
    struct wd_dashboard_data dd = {st, g, m, logs, tr, one, "t\"<>&'", "& \"q"};
    char *s = render(&dd, false);
    /* no markup from the data survives: every < from it is escaped */
    assert_null(strstr(s, "<y>"));
    assert_null(strstr(s, "<b>/"));
    assert_null(strstr(s, "<script>alert"));
    assert_null(strstr(s, "<m>"));
    assert_null(strstr(s, "<i>"));
    assert_null(strstr(s, "<k>"));
    assert_null(strstr(s, "<v>"));
    assert_null(strstr(s, "<n>"));
    assert_null(strstr(s, "<g>"));
    assert_null(strstr(s, "<sp>"));
    assert_null(strstr(s, "<x>"));
    assert_null(strstr(s, "\"><script>"));
    assert_int_equal(count(s, "<script"), 1); /* ours */
    assert_non_null(strstr(s, "<h1>x&lt;y&gt;&amp;&quot;&#39;z</h1>"));
    assert_non_null(strstr(s, "<title>x&lt;y&gt;&amp;&quot;&#39;z "));
    assert_non_null(strstr(s, "data-group=\"x&lt;y&gt;&amp;&quot;&#39;z\""));
    assert_non_null(strstr(s, "data-component=\"a/&lt;b&gt;/C&quot;&#39;&amp;\""));
    assert_non_null(strstr(s, "data-caller=\"a/&lt;b&gt;/C&quot;&#39;&amp;\""));
    assert_non_null(strstr(s, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; "
                              "&quot;q&quot;"));
    assert_non_null(strstr(s, "k&lt;=v&quot;&#39;&amp;&lt;"));
    assert_non_null(strstr(s, "value=\"&amp; &quot;q\"")); /* the filter box */
    assert_non_null(strstr(s, "&amp;log=%26%20%22q#trace"));
    assert_non_null(strstr(s, "?trace=t%22%3C%3E%26%27")); /* query values percent-encoded */
    assert_non_null(strstr(s, "<code>&lt;&amp;&quot;&#39;&gt;abc</code>"));
    free(s);
    cJSON_Delete(st);
    cJSON_Delete(g);
    cJSON_Delete(m);
    cJSON_Delete(logs);
    cJSON_Delete(tr);
    cJSON_Delete(one);
}

static void test_log_filter(void **state)
{
    (void)state;
    struct views v = views_load();
    struct wd_dashboard_data dd = data_of(&v);
    char *all = render(&dd, true);
    assert_int_equal(count(all, "<tr class=\"log "), 4);
    /* newest last */
    assert_true(strstr(all, "reserving") < strstr(all, "took item"));
    assert_true(strstr(all, "added item") < strstr(all, "buy failed"));
    assert_non_null(strstr(all, "<td class=\"c\" title=\"c.go:71\">shop.Cart</td>"));
    assert_non_null(strstr(all, "<tr class=\"log error\">"));
    assert_non_null(strstr(all, "href=\"?trace=aa529baa94af23ccb6fa2f96f80aa268#trace\""));
    assert_non_null(strstr(all, "<form class=\"logf\" method=\"get\">"));
    assert_non_null(strstr(all, "name=\"log\""));
    free(all);

    const struct {
        const char *filter;
        size_t n;
        const char *has;
    } cases[] = {
        {"inventory", 1, "took item"}, /* component short name, any case */
        {"shop.cart", 2, "reserving"},
        {"error", 1, "buy failed"}, /* level */
        {"ADDED", 1, "added item"}, /* message */
        {"weaver.Main", 1, "buy failed"},
        {"", 4, "reserving"},
        {"no such thing", 0, "No log lines match."},
    };
    for (size_t i = 0; i < WD_ARRAY_LEN(cases); i++) {
        dd.log_filter = cases[i].filter;
        char *s = render(&dd, true);
        assert_int_equal(count(s, "<tr class=\"log "), cases[i].n);
        assert_non_null(strstr(s, cases[i].has));
        free(s);
    }
    /* the filter keeps the selected trace in the form and in the trace links */
    dd.log_filter = "cart";
    dd.selected_trace = "bb01";
    char *s = render(&dd, true);
    assert_non_null(strstr(s, "<input type=\"hidden\" name=\"trace\" value=\"bb01\">"));
    assert_non_null(strstr(s, "href=\"?trace=aa529baa94af23ccb6fa2f96f80aa268&amp;log=cart#trace\""));
    free(s);
    views_free(&v);
}

static void test_log_bound(void **state)
{
    (void)state;
    cJSON *logs = cJSON_CreateArray();
    for (int i = 0; i < 250; i++) {
        cJSON *e = cJSON_CreateObject();
        char msg[32];
        snprintf(msg, sizeof msg, "line %03d;", i);
        cJSON_AddStringToObject(e, "level", "INFO");
        cJSON_AddStringToObject(e, "component", "example.com/shop/Cart");
        cJSON_AddStringToObject(e, "msg", msg);
        cJSON_AddItemToArray(logs, e);
    }
    struct wd_dashboard_data dd = {.logs = logs};
    char *s = render(&dd, true);
    assert_int_equal(count(s, "<tr class=\"log "), WD_DASH_MAX_LOG_LINES);
    assert_null(strstr(s, "line 049;"));
    assert_non_null(strstr(s, "line 050;"));
    assert_non_null(strstr(s, "line 249;"));
    assert_non_null(strstr(s, "last 200 of 250 lines"));
    free(s);
    cJSON_Delete(logs);
}

static void test_trace_timeline(void **state)
{
    (void)state;
    struct views v = views_load();
    struct wd_dashboard_data dd = data_of(&v);
    char *none = render(&dd, true);
    assert_null(strstr(none, "class=\"timeline\""));
    assert_int_equal(count(none, "<tr data-trace="), 2);
    assert_non_null(strstr(none, "href=\"?trace=aa529baa94af23ccb6fa2f96f80aa268#trace\""));
    free(none);

    dd.selected_trace = "aa529baa94af23ccb6fa2f96f80aa268";
    dd.trace = v.trace;
    char *s = render(&dd, true);
    assert_int_equal(count(s, "<div class=\"bar\""), 3);
    assert_non_null(strstr(s, "<tr class=\"sel\" data-trace=\"aa529baa94af23ccb6fa2f96f80aa268\""));
    /* the root spans the whole trace; children are indented by depth, in tree order */
    assert_non_null(strstr(s, "style=\"left:0.000%;width:100.000%;"));
    assert_non_null(strstr(s, "style=\"left:25.000%;width:25.000%;")); /* 1500..2000 of 1000..3000 */
    assert_non_null(strstr(s, "style=\"left:30.000%;width:5.000%;"));
    const char *a = strstr(s, "data-span=\"s1\" data-depth=\"0\"");
    const char *b = strstr(s, "data-span=\"s2\" data-depth=\"1\"");
    const char *c = strstr(s, "data-span=\"s3\" data-depth=\"2\"");
    assert_true(a && b && c && a < b && b < c);
    assert_non_null(strstr(s, "GET /buy <span class=\"sg\">weaver.Main</span>"));
    assert_non_null(strstr(s, "padding-left:32px"));
    free(s);

    /* selected but not found (NULL, or no spans): a note, no bars */
    dd.trace = NULL;
    s = render(&dd, true);
    assert_null(strstr(s, "class=\"bar\""));
    assert_non_null(strstr(s, "no spans here"));
    free(s);

    /* bounded: 2500 spans, each the parent of the next (a deep chain), render 2000 */
    cJSON *big = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(big, "spans");
    for (int i = 0; i < 2500; i++) {
        cJSON *x = cJSON_CreateObject();
        char id[16], pid[16];
        snprintf(id, sizeof id, "s%d", i);
        snprintf(pid, sizeof pid, "s%d", i - 1);
        cJSON_AddStringToObject(x, "span_id", id);
        cJSON_AddStringToObject(x, "parent_span_id", pid);
        cJSON_AddNumberToObject(x, "start_micros", i);
        cJSON_AddNumberToObject(x, "end_micros", i + 10);
        cJSON_AddItemToArray(arr, x);
    }
    /* and a cycle: s0's parent is the last one kept */
    cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetArrayItem(arr, 0), "parent_span_id",
                                           cJSON_CreateString("s1999"));
    dd.trace = big;
    s = render(&dd, true);
    assert_int_equal(count(s, "<div class=\"bar\""), WD_DASH_MAX_SPANS);
    assert_non_null(strstr(s, "(truncated)"));
    free(s);
    cJSON_Delete(big);
    views_free(&v);
}

static void test_traces_bound(void **state)
{
    (void)state;
    cJSON *t = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(t, "traces");
    for (int i = 0; i < 150; i++) {
        cJSON *x = cJSON_CreateObject();
        char id[16];
        snprintf(id, sizeof id, "t%d", i);
        cJSON_AddStringToObject(x, "trace_id", id);
        cJSON_AddItemToArray(arr, x);
    }
    struct wd_dashboard_data dd = {.traces = t};
    char *s = render(&dd, true);
    assert_int_equal(count(s, "<tr data-trace="), WD_DASH_MAX_TRACES);
    free(s);
    cJSON_Delete(t);
}

static void test_methods_and_metrics(void **state)
{
    (void)state;
    struct views v = views_load();
    struct wd_dashboard_data dd = data_of(&v);
    char *s = render(&dd, true);
    const char *row = strstr(s, "<tr data-component=\"example.com/shop/Cart\" data-method=\"Add\">");
    assert_non_null(row);
    assert_non_null(strstr(row, "weaver.Main \xe2\x86\x92</td><td>shop.Cart.<b>Add</b>"));
    /* 12 calls, 2 errors, mean 660/10, p50 in (10,100]: 10 + 90 * 5/10, p99: 10 + 90 * 9.9/10 */
    assert_non_null(strstr(row, "<td class=\"num\">12</td><td class=\"num bad\">2</td>"
                                "<td class=\"num\">66\xc2\xb5s</td><td class=\"num\">55\xc2\xb5s"
                                "</td><td class=\"num\">99\xc2\xb5s</td>"));
    assert_null(strstr(s, "LogBatch")); /* the deployer's own calls */
    const char *apps = strstr(s, "id=\"metrics\"");
    assert_non_null(apps);
    assert_non_null(strstr(apps, "data-metric=\"shop_buys\""));
    assert_non_null(strstr(apps, ">store=q&quot;&lt;&#39;&amp;</td>"));
    assert_null(strstr(apps, "serviceweaver_app"));
    assert_null(strstr(apps, "serviceweaver_method"));
    assert_non_null(strstr(apps, "count 1, sum 50, mean 50"));
    free(s);
    views_free(&v);
}

/* Every view and field NULL, absent or of the wrong type: no crash, every section says so. */
static void test_missing_and_wrong_types(void **state)
{
    (void)state;
    char *s = render(NULL, false);
    free(s);
    struct wd_dashboard_data empty = {0};
    s = render(&empty, false);
    assert_non_null(strstr(s, "No replicas."));
    assert_non_null(strstr(s, "No call graph."));
    assert_non_null(strstr(s, "No log lines."));
    assert_non_null(strstr(s, "No traces."));
    free(s);
    empty.selected_trace = "";
    s = render(&empty, true);
    free(s);

    static const char *const docs[] = {
        "[]", "\"x\"", "3", "null", "true", "{}",
        "{\"app\":3,\"deployment\":[],\"runtime\":{},\"started\":\"x\",\"listeners\":[1,2],"
        "\"replicas\":{\"a\":1},\"groups\":\"g\"}",
        "{\"app\":\"a\",\"started\":1e300,\"listeners\":{\"a\":1,\"b\":null},\"replicas\":[1,"
        "\"x\",null,{},{\"group\":5,\"replica\":\"0\",\"restarts\":-1e300,\"pid\":1e30,\"state\":"
        "[],\"health\":{},\"retiring\":\"yes\"}],\"groups\":[1,{},{\"short\":[],\"want\":\"2\"}]}",
        "{\"components\":{},\"edges\":\"e\"}",
        "{\"components\":[1,null,{\"name\":5},{\"name\":\"\"},{\"name\":\"/\"},{\"name\":\"a\"},"
        "{\"name\":\"a\"}],\"edges\":[1,{\"caller\":\"a\"},{\"caller\":\"a\",\"callee\":\"a\","
        "\"calls\":\"x\",\"errors\":1e300,\"mean_micros\":-5},{\"caller\":\"b\",\"callee\":\"a\"},"
        "{\"caller\":\"a\",\"callee\":\"b\"}]}",
        "{\"metrics\":{}}",
        "{\"metrics\":[1,null,{},{\"name\":7},{\"name\":\"serviceweaver_method_count\",\"labels"
        "\":[]},{\"name\":\"serviceweaver_method_count\",\"labels\":{\"component\":\"c\","
        "\"method\":\"m\"},\"value\":\"1\"},{\"name\":\"serviceweaver_method_latency_micros\","
        "\"labels\":{\"component\":\"c\",\"method\":\"m\"},\"bounds\":[3,2],\"counts\":[1,2,3]},"
        "{\"name\":\"serviceweaver_method_latency_micros\",\"labels\":{\"component\":\"c\","
        "\"method\":\"m\"},\"bounds\":[1,2],\"counts\":[1,2]},{\"name\":"
        "\"serviceweaver_method_latency_micros\",\"labels\":{\"component\":\"c\",\"method\":"
        "\"m\"},\"bounds\":[\"1\",2],\"counts\":[1,2,\"x\"]},{\"name\":"
        "\"serviceweaver_method_latency_micros\",\"labels\":{\"component\":\"c\",\"method\":"
        "\"m\"},\"bounds\":[1,2],\"counts\":[0,0,5]},{\"name\":\"app\",\"type\":\"histogram\","
        "\"labels\":{\"a\":1}}]}",
        "[1,null,\"x\",{},{\"level\":\"\",\"time\":\"T\",\"component\":\"\",\"line\":\"x\","
        "\"attrs\":[1]},{\"level\":5,\"msg\":{},\"attrs\":{\"traceid\":5,\"x\":null}}]",
        "{\"traces\":{}}",
        "{\"traces\":[1,{},{\"trace_id\":5},{\"trace_id\":\"t\",\"start_micros\":-1,"
        "\"duration_micros\":\"d\",\"spans\":1e300,\"groups\":{}},{\"trace_id\":\"u\","
        "\"start_micros\":1e300,\"groups\":[1,null]}]}",
        "{\"spans\":{}}",
        "{\"spans\":[1,null,{},{\"span_id\":\"a\",\"parent_span_id\":\"a\"},{\"span_id\":\"b\","
        "\"parent_span_id\":\"c\",\"start_micros\":5,\"end_micros\":1},{\"span_id\":\"c\","
        "\"parent_span_id\":\"b\",\"start_micros\":1e300,\"end_micros\":\"x\"},{\"name\":[],"
        "\"span_id\":7}]}",
    };
    for (size_t i = 0; i < WD_ARRAY_LEN(docs); i++) {
        cJSON *j = cJSON_Parse(docs[i]);
        assert_non_null(j);
        struct wd_dashboard_data dd = {j, j, j, j, j, j, "t", "x"};
        for (int frag = 0; frag < 2; frag++) {
            s = render(&dd, frag);
            assert_non_null(strstr(s, "id=\"logs\""));
            free(s);
        }
        dd.log_filter = NULL;
        s = render(&dd, true);
        free(s);
        cJSON_Delete(j);
    }
}

/* out->max reached: the output just stops. */
static void test_output_cap(void **state)
{
    (void)state;
    struct views v = views_load();
    struct wd_dashboard_data dd = data_of(&v);
    struct wd_buf b = {.max = 1000};
    wd_dashboard_render(&dd, false, &b);
    assert_true(b.len <= 1000);
    wd_buf_free(&b);
    views_free(&v);
}

/* 60 components (Main calls 50, chains below, a cycle, a self call): one node each, no two
 * boxes overlap, and the same data gives the same page. */
static void test_wide_layout(void **state)
{
    (void)state;
    cJSON *g = cJSON_CreateObject(), *comps = cJSON_AddArrayToObject(g, "components"),
          *edges = cJSON_AddArrayToObject(g, "edges");
    char names[60][48];
    for (int i = 0; i < 60; i++) {
        if (i == 0)
            snprintf(names[i], sizeof names[i], "%s", MAIN);
        else
            snprintf(names[i], sizeof names[i], "example.com/wide/Component%02d", i);
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "name", names[i]);
        cJSON_AddItemToArray(comps, c);
    }
    size_t nedges = 0;
    for (int i = 1; i < 60; i++) {
        int from = i <= 50 ? 0 : i - 9;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "caller", names[from]);
        cJSON_AddStringToObject(e, "callee", names[i]);
        cJSON_AddNumberToObject(e, "calls", i);
        cJSON_AddItemToArray(edges, e);
        nedges++;
    }
    static const int extra[][2] = {{51, 42}, {7, 7}, {3, 0}};
    for (size_t k = 0; k < WD_ARRAY_LEN(extra); k++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "caller", names[extra[k][0]]);
        cJSON_AddStringToObject(e, "callee", names[extra[k][1]]);
        cJSON_AddItemToArray(edges, e);
        nedges++;
    }
    struct wd_dashboard_data dd = {.graph = g};
    char *s = render(&dd, true), *again = render(&dd, true);
    assert_string_equal(s, again);
    assert_int_equal(count(s, "<g class=\"node\""), 60);
    assert_int_equal(count(s, "<g class=\"edge"), nedges);
    double x[60], y[60];
    size_t n = 0;
    for (const char *p = strstr(s, "<g class=\"node\""); p; p = strstr(p + 1, "<g class=\"node\"")) {
        const char *r = strstr(p, "<rect x=\"");
        assert_non_null(r);
        char *end;
        x[n] = strtod(r + 9, &end);
        assert_true(strncmp(end, "\" y=\"", 5) == 0);
        y[n] = strtod(end + 5, NULL);
        assert_true(x[n] >= 0 && y[n] >= 0);
        n++;
    }
    assert_int_equal(n, 60);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            bool apart = x[i] + 150 <= x[j] || x[j] + 150 <= x[i] || y[i] + 38 <= y[j] ||
                         y[j] + 38 <= y[i];
            if (!apart)
                fail_msg("boxes %zu (%g,%g) and %zu (%g,%g) overlap", i, x[i], y[i], j, x[j], y[j]);
        }
    /* inside the view box */
    const char *vb = strstr(s, "viewBox=\"0 0 ");
    assert_non_null(vb);
    char *end;
    double w = strtod(vb + 13, &end), h = strtod(end, NULL);
    for (size_t i = 0; i < n; i++)
        assert_true(x[i] + 150 <= w && y[i] + 38 <= h);
    /* Main on top */
    const char *mainbox = strstr(s, "data-component=\"" MAIN "\"");
    assert_non_null(mainbox);
    double ymain = strtod(strstr(strstr(mainbox, "<rect x=\""), "\" y=\"") + 5, NULL);
    for (size_t i = 0; i < n; i++)
        assert_true(ymain <= y[i]);
    free(s);
    free(again);
    cJSON_Delete(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page_and_fragment),
        cmocka_unit_test(test_replica_rows),
        cmocka_unit_test(test_graph_nodes_edges),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_log_filter),
        cmocka_unit_test(test_log_bound),
        cmocka_unit_test(test_trace_timeline),
        cmocka_unit_test(test_traces_bound),
        cmocka_unit_test(test_methods_and_metrics),
        cmocka_unit_test(test_missing_and_wrong_types),
        cmocka_unit_test(test_output_cap),
        cmocka_unit_test(test_wide_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
