/* engine/deploy/operate.h - operating a running deployment (issue 11): the control API served on
 * the deployment's unix socket (docs/design/control-api.md), the app's metrics polled from every
 * replica, and the Prometheus endpoint of [docker] metrics. Loop thread only. */
#ifndef WD_ENGINE_OPERATE_H
#define WD_ENGINE_OPERATE_H

#include "engine/base/error.h"

#include <stddef.h>

struct wd_deploy;
struct wd_replica;

/* How often every ready replica is asked for its metrics (weaver multi: also 1 s). */
#define WD_METRICS_EVERY_MS 1000

/* wd_operate_start - serve d->opts.control_path (if set) and d->cfg->metrics_addr (if set)
 * and start polling metrics. Sets d->op. Returns 0 or <0 with *err (socket or port taken). */
int wd_operate_start(struct wd_deploy *d, struct wd_error **err);

/* wd_operate_stop - close the sockets (the unix one is removed), stop polling, free. */
void wd_operate_stop(struct wd_deploy *d);

/* wd_operate_spans - keep the newest spans r sent (HandleTraceSpans) for the dashboard. */
struct Runtime__Span;
void wd_operate_spans(struct wd_deploy *d, struct wd_replica *r, struct Runtime__Span **spans,
                      size_t n);

/* wd_operate_replica_gone - r is exiting: its metrics stay counted, its stream ends. */
void wd_operate_replica_gone(struct wd_deploy *d, struct wd_replica *r);

/* wd_log_tail_json - the last @max entries of a deployment log file (JSON lines; at most its
 * last 512 KiB are read), oldest first, as a JSON array; empty without a file (@path NULL). */
struct cJSON;
struct cJSON *wd_log_tail_json(const char *path, size_t max);

/* Answers of the control API's routes (also engine/deploy/rollout.c): @j as JSON (freed here),
 * or {"error": MSG}. */
struct wd_control_exchange;
struct cJSON;
void wd_operate_respond_json(struct wd_control_exchange *x, int status, struct cJSON *j);
void wd_operate_respond_error(struct wd_control_exchange *x, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
