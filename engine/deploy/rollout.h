/* engine/deploy/rollout.h - `up` of a changed app rolls the running version over
 * (docs/design/rollout.md). Two deployers take part, each on its own loop:
 *
 *  - the new version's deployer (the new `up`) drives: it starts its groups on a network of
 *    their own with its listeners on loopback ports, waits until they serve and every listener
 *    answers, then asks the old deployer (POST /v1/rollout) to send a growing share of new
 *    connections to those ports, and at 100 % takes the listening sockets themselves
 *    (POST /v1/rollout/handover, SCM_RIGHTS): the host ports never close, no connection waiting
 *    in a backlog is lost. Any failure before that sends every connection back to the old
 *    version and removes the new one.
 *  - the old version's deployer obeys: it splits, cancels, hands over, then drains its open
 *    connections for `[docker] drain` and stops. It watches the new deployer's pid: gone
 *    before the handover, the split ends and it serves everything again.
 *
 * A connection enters one version and, inside, meets only that version's weavelets (each
 * version has its own network and routing), so a request never crosses versions.
 * Loop thread only. */
#ifndef WD_ENGINE_ROLLOUT_H
#define WD_ENGINE_ROLLOUT_H

#include <stdbool.h>

struct wd_deploy;
struct wd_replica;
struct wd_control_exchange;
struct wd_control_req;
struct cJSON;

/* The running version a new deployment takes over from (wd_deploy_opts.rollout). */
struct wd_rollout_from {
    const char *control; /* its control socket */
    long pid;
    const char *deployment;
    const char *listeners; /* its listeners, "name=addr;name2=addr2" */
};

/* The new version: called once the loop runs (before anything starts): the rollout timeout
 * starts. */
void wd_rollout_start(struct wd_deploy *d);
/* The new version serves (main and all listeners): probe, shift, hand over. Idempotent. */
void wd_rollout_ready(struct wd_deploy *d);
/* True while a rollout of this (new) version has not finished: `ready` waits for it. */
bool wd_rollout_pending(const struct wd_deploy *d);
/* A replica of @group exited (@how): while the new version is not all in, that fails the
 * rollout. */
void wd_rollout_replica_exited(struct wd_deploy *d, const char *group, const char *how);
/* d is stopping (Ctrl-C, down, a failure): a rollout not finished gives all traffic back. */
void wd_rollout_stopping(struct wd_deploy *d);
/* The address a listener will have once this version serves: the old version's for a name it
 * has, else the one bound now. Borrowed: valid until the next call. */
const char *wd_rollout_public_address(struct wd_deploy *d, const char *name, const char *bound);

/* The control API's /v1/rollout routes (both roles). Returns false if @req is not one. */
bool wd_rollout_route(struct wd_deploy *d, struct wd_control_exchange *x,
                      const struct wd_control_req *req);
/* The rollout's state for /v1/status ("rollout"), or NULL when there is none. */
struct cJSON *wd_rollout_json(struct wd_deploy *d);

/* Timers, watches and peers of either role; at the end of the run, after the log thread (a
 * failed rollout shows the new version's last log lines then). */
void wd_rollout_free(struct wd_deploy *d);

#endif
