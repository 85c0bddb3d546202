/* engine/state.h - deployments as the engine records them. The engine's labels are the source
 * of truth: each deployment's network carries who runs it (deployer pid and host), its listeners
 * and where its log file is; each container carries app, deployment, group, replica, restarts.
 * So `ps`, `logs` and `down` work from any terminal, and after the deployer died. */
#ifndef WD_STATE_H
#define WD_STATE_H

#include "engine/docker.h"

#include <stdbool.h>
#include <sys/types.h>

#define WD_LABEL_PID WD_LABEL_PREFIX "deployer-pid"
#define WD_LABEL_HOST WD_LABEL_PREFIX "deployer-host"
#define WD_LABEL_LISTENERS WD_LABEL_PREFIX "listeners" /* "name=addr;name2=addr2" */
#define WD_LABEL_LOG WD_LABEL_PREFIX "log"             /* log file of the deployment */
#define WD_LABEL_STARTED WD_LABEL_PREFIX "started"     /* unix seconds */
#define WD_LABEL_RESTARTS WD_LABEL_PREFIX "restarts"
#define WD_LABEL_RUNTIME_TEST WD_LABEL_PREFIX "test"

struct wd_deployment_rec {
    char *app;
    char *deployment;
    char *network; /* name */
    long pid;
    char *host;
    char *listeners;
    char *log_path;
    int64_t started;
    bool deployer_alive; /* pid runs weaver-docker on this host */
};

/* All deployments (of @app, or of every app when NULL), oldest first. Caller frees with
 * wd_state_free. */
int wd_state_list(struct wd_docker *dk, const char *app, struct wd_deployment_rec **out,
                  size_t *n, struct wd_error **err);
void wd_state_free(struct wd_deployment_rec *v, size_t n);

/* Whether pid is a live weaver-docker process on this host. */
bool wd_state_deployer_alive(long pid, const char *host);

/* Stop the deployer of @rec (SIGTERM, waiting up to @wait_ms for it to clean up), then remove
 * whatever of the deployment is left (containers, network). Counts go to *st. */
int wd_state_remove(struct wd_docker *dk, const struct wd_deployment_rec *rec, int wait_ms,
                    struct wd_cleanup_stats *st, struct wd_error **err);

/* Directory for an app's logs: ${XDG_STATE_HOME:-$HOME/.local/state}/weaver-docker/<app>,
 * created. Caller frees. */
int wd_state_dir(const char *app, char **out, struct wd_error **err);

#endif
