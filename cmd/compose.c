#include "cmd/cmd.h"

#include <errno.h>

int wd_cmd_compose(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err)
{
    (void)ctx;
    (void)argc;
    (void)argv;
    return wd_err(err, ENOSYS, "compose: not implemented yet");
}
