/* cmd/cmd.h - subcommands. Each cmd/<name>.c parses its options and calls engine/. */
#ifndef WD_CMD_H
#define WD_CMD_H

#include "engine/base/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct wd_ctx {
    const char *host; /* --host / -H: engine address (unix:///path), or NULL to search */
    int verbose;      /* -v count */
    bool color;       /* stderr/stdout are terminals and NO_COLOR is unset */
};

int wd_cmd_up(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err);
int wd_cmd_down(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err);
int wd_cmd_ps(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err);
int wd_cmd_logs(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err);
int wd_cmd_compose(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err);
int wd_cmd_inspect(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err);
/* internal: the manager service of a compose file (not in the usage listing) */
int wd_cmd_manage(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err);
int wd_cmd_metrics(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err);
int wd_cmd_dashboard(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err);
int wd_cmd_profile(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err);
int wd_cmd_scale(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err);
int wd_cmd_rollout(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err);
int wd_cmd_version(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err);

/* After getopt_long returned '?': one line naming the option, for exit status 2. */
int wd_cmd_bad_option(const char *cmd, char **argv, const char *optstring,
                      struct wd_error **err);

struct wd_buf;
/* wd_cmd_control - one call to the control API of APP's running deployer (engine/deploy/operate.h):
 * @method @path with @body (or NULL). Returns the HTTP status with the answer in @resp, or <0
 * with one line in *err naming @cmd: APP not running, no control socket, no answer. */
int wd_cmd_control(struct wd_ctx *ctx, const char *cmd, const char *app, const char *method,
                   const char *path, const char *body, struct wd_buf *resp,
                   struct wd_error **err);
/* The same, waiting at most @timeout_ms for the answer (wd_cmd_control: 10 s). */
int wd_cmd_control_wait(struct wd_ctx *ctx, const char *cmd, const char *app, const char *method,
                        const char *path, const char *body, int timeout_ms, struct wd_buf *resp,
                        struct wd_error **err);

struct wd_deployment_rec;
struct cJSON;
/* wd_cmd_deployer_status - what @rec's running deployer says of itself (GET /v1/status on its
 * control socket, at most @timeout_ms), or NULL (no socket, no answer, not 200, not JSON; then
 * *err says why when @err is not NULL). Caller frees (cJSON_Delete). */
struct cJSON *wd_cmd_deployer_status(const struct wd_deployment_rec *rec, int timeout_ms,
                                     struct wd_error **err);

/* wd_cmd_refused - the one line for a control API answer that is not a success: "CMD: " and
 * its "error", else @dflt; errnum ENOENT for 404, EINVAL for 400, else EIO. Returns <0. */
int wd_cmd_refused(const char *cmd, int status, const struct wd_buf *resp, const char *dflt,
                   struct wd_error **err);

/* Rows of text cells printed in columns as wide as their widest cell (at most 16 columns). */
struct wd_table {
    size_t ncols;
    char ***rows;
    size_t nrows;
};
void wd_table_add(struct wd_table *t, const char *const *cells);
void wd_table_print(struct wd_table *t, FILE *out, const char *indent);
void wd_table_free(struct wd_table *t);

#endif
