#include "cmd/cmd.h"

#include <stdio.h>

int wd_cmd_version(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err)
{
    (void)ctx;
    (void)err;
    if (argc > 1 && argv[1] && (argv[1][1] == 'h' || argv[1][2] == 'h')) {
        fputs("Usage: weaver-docker version\nPrint weaver-docker's version and the Service Weaver "
              "deployer API versions it supports.\n",
              stdout);
        return 0;
    }
    printf("weaver-docker %s\n", WD_VERSION);
    printf("deployer API: v0.24.0 (weaver module v0.24.1 ... v0.24.6, control sockets)\n");
    return 0;
}
