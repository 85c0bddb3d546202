#include "cmd/cmd.h"
#include "engine/binary.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const char inspect_usage[] =
    "Usage: weaver-docker inspect BINARY\n"
    "Show what a Service Weaver application binary declares: weaver module and deployer API\n"
    "versions, request header format, components, call-graph edges and listeners.\n\n"
    "Options:\n"
    "  -h, --help   print this help and exit\n\n"
    "Exit status: 0 success, 1 error, 2 invalid input.\n";

int wd_cmd_inspect(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err)
{
    (void)ctx;
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(inspect_usage, stdout);
            return 0;
        }
        return wd_err(err, EINVAL, "inspect: bad option (see 'weaver-docker inspect --help')");
    }
    if (optind != argc - 1)
        return wd_err(err, EINVAL, "inspect: give one app binary");
    struct wd_binary_info *b = NULL;
    int r = wd_binary_inspect(argv[optind], &b, err);
    if (r < 0)
        return r;
    printf("binary:        %s\n", b->path);
    printf("arch:          %s%s\n", b->arch, b->is_static ? " (static)" : " (dynamic)");
    printf("go:            %s\n", b->go_version ? b->go_version : "(no build info)");
    printf("weaver module: %s\n", b->module_version ? b->module_version : "(unknown)");
    printf("deployer API:  v%d.%d.%d\n", b->api_major, b->api_minor, b->api_patch);
    printf("rpc header:    %s\n",
           b->hdr_fmt == WD_RPC_HDR_PREFIXED ? "length-prefixed (v0.24.4+)" : "fixed 49 bytes");
    printf("components:\n");
    for (size_t i = 0; i < b->ncomponents; i++)
        printf("  %s\n", b->components[i]);
    printf("calls:\n");
    for (size_t i = 0; i < b->nedges; i++)
        printf("  %s -> %s\n", b->edges[i].src, b->edges[i].dst);
    printf("listeners:\n");
    for (size_t i = 0; i < b->nlisteners; i++)
        for (size_t j = 0; j < b->listeners[i].names.n; j++)
            printf("  %s (%s)\n", b->listeners[i].names.v[j], b->listeners[i].component);
    wd_binary_info_free(b);
    return 0;
}
