/* engine/deploy/dashboard.h - the dashboard page: one HTML document rendered server-side from the
 * deployer's JSON views (status, call graph, metrics, logs, traces). Everything is readable with
 * JavaScript off; a small embedded script refreshes the content from `fragment` every 2 s.
 * Pure: no I/O, so it is tested without a deployer. */
#ifndef WD_ENGINE_DASHBOARD_H
#define WD_ENGINE_DASHBOARD_H

#include <stdbool.h>

struct cJSON;
struct wd_buf;

/* Output bounds: what one render shows at most. */
#define WD_DASH_MAX_LOG_LINES 200
#define WD_DASH_MAX_TRACES 100
#define WD_DASH_MAX_SPANS 2000
#define WD_DASH_MAX_NODES 500  /* call-graph components */
#define WD_DASH_MAX_EDGES 2000 /* call-graph edges */
#define WD_DASH_MAX_ROWS 500   /* rows of the method and metric tables */

/* The views a page is drawn from; all borrowed. Any of them may be NULL or of the wrong JSON
 * type: that section then says it has no data. */
struct wd_dashboard_data {
    /* {app, deployment, runtime, started, listeners{name:addr}, replicas[{group, replica, pid,
     * state, health, restarts, weavelet, last_exit, retiring, container, address}],
     * groups[{name, short, want, active}]} */
    const struct cJSON *status;
    /* {"components":[{name, short, group}], "edges":[{caller, callee, calls, errors,
     * mean_micros}]} */
    const struct cJSON *graph;
    /* {"metrics":[{name, type, help, labels{}, replicas, value, bounds, counts, count, sum}]} */
    const struct cJSON *metrics;
    /* an array of log entries, oldest first: {time, level, component, weavelet, file, line,
     * msg, attrs{}} */
    const struct cJSON *logs;
    /* {"traces":[{trace_id, name, start_micros, duration_micros, spans, groups[]}]}, newest
     * first */
    const struct cJSON *traces;
    /* NULL, or {trace_id, spans:[{name, span_id, parent_span_id, group, weavelet, kind,
     * start_micros, end_micros}]} */
    const struct cJSON *trace;
    const char *selected_trace; /* the ?trace= value, or NULL */
    const char *log_filter;     /* ?log=: a case-insensitive substring of a line's component
                                 * short name, level or message; NULL or "" shows all */
};

/* wd_dashboard_render - append the page to @out: the whole HTML document, or with @fragment
 * only the inner content that the page's script swaps in (no <html>, no script). Every string
 * from @dd is escaped. Output stops quietly where @out's cap (out->max) is reached. */
void wd_dashboard_render(const struct wd_dashboard_data *dd, bool fragment, struct wd_buf *out);

#endif
