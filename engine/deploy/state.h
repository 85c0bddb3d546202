/* engine/deploy/state.h - deployments as the engine records them. The engine's labels are the
 * source of truth: each deployment's network carries who runs it (deployer pid and host), its
 * listeners and where its log file is; each container carries app, deployment, group, replica,
 * restarts. So `ps`, `logs` and `down` work from any terminal, and after the deployer died. */
#ifndef WD_STATE_H
#define WD_STATE_H

#include "engine/docker/docker.h"

#include <stdbool.h>
#include <sys/types.h>

#define WD_LABEL_PID WD_LABEL_PREFIX "deployer-pid"
#define WD_LABEL_HOST WD_LABEL_PREFIX "deployer-host"
#define WD_LABEL_LISTENERS WD_LABEL_PREFIX "listeners" /* "name=addr;name2=addr2" */
#define WD_LABEL_LOG WD_LABEL_PREFIX "log"             /* log file of the deployment */
#define WD_LABEL_STARTED WD_LABEL_PREFIX "started"     /* unix seconds */
#define WD_LABEL_RESTARTS WD_LABEL_PREFIX "restarts"
#define WD_LABEL_LAST_EXIT WD_LABEL_PREFIX "last-exit" /* how the slot's previous replica ended */
#define WD_LABEL_RUNTIME_TEST WD_LABEL_PREFIX "test"
/* the deployer's start time (/proc/PID/stat field 22, clock ticks since boot): a pid alone may
 * have been reused by an unrelated process since */
#define WD_LABEL_PID_START WD_LABEL_PREFIX "deployer-start"

struct wd_deployment_rec {
    char *app;
    char *deployment;
    char *network; /* name */
    long pid;
    long long pid_start; /* 0 when the label is missing (older deployments) */
    char *host;
    char *listeners;
    char *log_path;
    int64_t started;
    bool deployer_alive; /* pid runs weaver-docker on this host */
    /* the process runtime: no engine objects; the deployer's status file says it all */
    bool process;
    char *status_path;
};

/* The status file of a process-runtime deployer: APP's state directory, process-PID.json. */
#define WD_STATE_PROCESS_PREFIX "process-"
/* The same file of a docker-runtime deployer, status-PID.json: what it knows before the engine
 * does (a replica healthy as soon as GetHealth answers). */
#define WD_STATE_STATUS_PREFIX "status-"
/* The control API of a running deployer (engine/deploy/operate.h): control-PID.sock beside them. */
#define WD_STATE_CONTROL_PREFIX "control-"

/* All deployments (of @app, or of every app when NULL), oldest first. Caller frees with
 * wd_state_free. */
int wd_state_list(struct wd_docker *dk, const char *app, struct wd_deployment_rec **out,
                  size_t *n, struct wd_error **err);
void wd_state_free(struct wd_deployment_rec *v, size_t n);
/* The control socket of @rec's deployer (control-PID.sock beside its log or status file), or
 * NULL if the record names neither. Caller frees. */
char *wd_state_control_path(const struct wd_deployment_rec *rec);
/* Deployments of the process runtime, from their status files (of @app, or of every app). */
int wd_state_list_process(const char *app, struct wd_deployment_rec **out, size_t *n);
/* Both kinds, the engine's first (none when @dk is NULL), each oldest first. */
int wd_state_list_all(struct wd_docker *dk, const char *app, struct wd_deployment_rec **out,
                      size_t *n, struct wd_error **err);

/* Whether pid is a live weaver-docker process on this host: with pid_start > 0, the process
 * with that pid must have started at that time (so a reused pid is not taken for ours). */
bool wd_state_deployer_alive(long pid, long long pid_start, const char *host);
/* The start time of process pid in clock ticks since boot, or 0 if it does not exist. */
long long wd_proc_start_ticks(long pid);

/* Stop the deployer of @rec (SIGTERM, waiting up to @wait_ms for it to clean up), then remove
 * whatever of the deployment is left (containers, network). Counts go to *st. */
int wd_state_remove(struct wd_docker *dk, const struct wd_deployment_rec *rec, int wait_ms,
                    struct wd_cleanup_stats *st, struct wd_error **err);

/* Directory for an app's logs: ${XDG_STATE_HOME:-$HOME/.local/state}/weaver-docker/<app>,
 * created. Caller frees. */
int wd_state_dir(const char *app, char **out, struct wd_error **err);

/* Remove all but the @keep newest deployment log files (*.log but deployer.log) of an app's
 * state directory; returns how many went. */
#define WD_STATE_KEEP_LOGS 20
/* The deployment log files of an app's state directory, newest first: free each, then the array. */
char **wd_state_logs(const char *dir, size_t *n);
size_t wd_state_prune_logs(const char *dir, size_t keep);

#endif
