/* engine/deploy/deploy_internal.h - what the envelope core's files share, and no one else:
 * deploy.c (replicas, routing, lifecycle), groups.c (names and groups) and deploy_log.c (the
 * log path and traces). */
#ifndef WD_DEPLOY_INTERNAL_H
#define WD_DEPLOY_INTERNAL_H

#include "engine/deploy/deploy.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ProtobufCMessage;
struct Runtime__LogEntry;
struct wd_worker;

/* engine/deploy/groups.c: the component of that full name, or NULL; a component the binary's
 * call graph did not name, in a group of its own; the groups of the binary and the config. */
struct wd_component *wd_deploy_comp(struct wd_deploy *d, const char *name);
struct wd_component *wd_deploy_comp_alone(struct wd_deploy *d, const char *name);
void wd_deploy_build_groups(struct wd_deploy *d);

/* protobuf-c's pack into a new buffer (*len bytes); aborts on allocation failure. */
uint8_t *wd_deploy_pack(const struct ProtobufCMessage *m, size_t *len);

/* The log thread of @d (engine/base/worker.h), with the log path's bound and priority. */
struct wd_worker *wd_deploy_log_worker_new(struct wd_deploy *d);
/* A LogBatch call of r (@pb copied): logged by the log thread, answered on @c when written (or
 * at once while the thread keeps up). */
void wd_deploy_log_batch(struct wd_deploy *d, struct wd_replica *r, const uint8_t *pb, size_t len,
                         struct wd_conn *c, uint64_t id, enum wd_rpc_method m);
/* One entry (a weavelet's output line, one of ours) by the same path; @quiet: log file only. */
void wd_deploy_log_entry(struct wd_deploy *d, const struct Runtime__LogEntry *e, bool quiet);
/* r or c is going: jobs in flight forget them (no answer, no construct-failure note). */
void wd_deploy_log_forget(struct wd_deploy *d, struct wd_replica *r, struct wd_conn *c);
/* A HandleTraceSpans call of r: to the --traces file and the control API's recent spans. */
void wd_deploy_trace_spans(struct wd_deploy *d, struct wd_replica *r, const uint8_t *pb,
                           size_t len);
/* weaver said a component of r failed to construct: say so, and report r unhealthy. */
void wd_replica_construct_failed(struct wd_replica *r, const char *comp, const char *why);

#endif
