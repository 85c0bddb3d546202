/* cmd/cmd.h - subcommands. Each cmd/<name>.c parses its options and calls engine/. */
#ifndef WD_CMD_H
#define WD_CMD_H

#include "engine/error.h"

#include <stdbool.h>

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
int wd_cmd_version(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err);

#endif
