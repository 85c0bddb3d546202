#include "cmd/cmd.h"
#include "engine/weaver/binary.h"
#include "engine/weaver/config.h"
#include "engine/base/util.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const char inspect_usage[] =
    "Usage: weaver-docker inspect [BINARY | weaver.toml | DIR]\n"
    "Show what a Service Weaver application binary declares: weaver module and deployer API\n"
    "versions, request header format, components, call-graph edges and listeners. A weaver.toml\n"
    "(or a directory holding one; default: the current one) means the binary it names.\n\n"
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
        return wd_cmd_bad_option("inspect", argv, "h", err);
    }
    if (argc - optind > 1)
        return wd_err(err, EINVAL, "inspect: give one app binary, weaver.toml or directory");
    autofree char *input = NULL;
    int r = wd_config_resolve_input(optind < argc ? argv[optind] : NULL, &input, err);
    if (r < 0)
        return r;
    autofree char *binary = NULL;
    size_t il = strlen(input);
    if (il > 5 && strcmp(input + il - 5, ".toml") == 0) {
        struct wd_config *cfg = NULL;
        if ((r = wd_config_load(input, &cfg, err)) < 0)
            return r;
        if ((r = wd_config_check_binary(cfg, err)) < 0) {
            wd_config_free(cfg);
            return r;
        }
        binary = xstrdup(cfg->binary);
        wd_config_free(cfg);
    } else {
        binary = xstrdup(input);
    }
    struct wd_binary_info *b = NULL;
    r = wd_binary_inspect(binary, &b, err);
    if (r < 0)
        return r;
    printf("binary:        %s\n", b->path);
    printf("arch:          %s%s\n", b->arch, b->is_static ? " (static)" : " (dynamic)");
    printf("go:            %s\n", b->go_version ? b->go_version : "(no build info)");
    printf("weaver module: %s\n", b->module_version ? b->module_version : "(unknown)");
    printf("deployer API:  v%d.%d.%d\n", b->api_major, b->api_minor, b->api_patch);
    printf("rpc header:    %s\n",
           b->hdr_fmt == WD_RPC_HDR_PREFIXED ? "length-prefixed (v0.24.4+)" : "fixed 49 bytes");
    printf("protocol:      %s\n", wd_binary_generation(b));
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
