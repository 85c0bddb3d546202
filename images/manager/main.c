/* weaver-docker-manager: the manager service of a file written by `weaver-docker compose`, as
 * one static program (musl; docs/design/compose.md "The manager"). It is `weaver-docker manage`
 * (cmd/manage.c) and nothing else: no engine client, no image builder, no mTLS, no profiles, so
 * the compose image is the app + the shim + this, under 2 MiB for the last two. */
#include "cmd/cmd.h"
#include "engine/base/error.h"
#include "engine/base/log.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    opterr = 0; /* wd_cmd_bad_option says what is wrong in one line */
    struct rlimit rl; /* two descriptors per proxied connection, as in cmd/main.c */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max < 65536 ? rl.rlim_max : 65536;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    const char *env = getenv("WEAVER_LOG");
    wd_log_set_level(env && !strcasecmp(env, "debug")   ? WD_LOG_DEBUG
                     : env && !strcasecmp(env, "error") ? WD_LOG_ERROR
                                                        : WD_LOG_INFO);
    /* the compose file says `weaver-docker-manager manage ...`, as it would to weaver-docker */
    if (argc > 1 && strcmp(argv[1], "manage") == 0) {
        argv[1] = argv[0];
        argc--;
        argv++;
    }
    struct wd_ctx ctx = {0};
    autoerr struct wd_error *err = NULL;
    int r = wd_cmd_manage(&ctx, argc, argv, &err);
    if (r >= 0)
        return r;
    fprintf(stderr, "weaver-docker-manager: %s\n", err ? err->msg : strerror(-r));
    return -r == EINVAL ? 2 : 1;
}
