/* weaver-docker profile [--type cpu|heap] [--duration 10s] [-o FILE] APP: a CPU or heap
 * profile of every replica of a running app, merged into one pprof file (GET /v1/profile). */
#include "cmd/cmd.h"
#include "engine/base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char profile_usage[] =
    "Usage: weaver-docker profile [--type cpu|heap] [--duration D] [-o FILE] APP\n"
    "Profile every replica of the running APP at once and merge the profiles into one pprof\n"
    "file (every sample labeled with its replica), for `go tool pprof FILE`.\n"
    "  --type T      cpu (default) or heap\n"
    "  --duration D  how long a CPU profile runs: 10s (default), 500ms, 2m (at most 10m)\n"
    "  -o FILE       where to write it (default APP-TYPE-YYYYMMDD-HHMMSS.pb.gz)\n";

/* Seconds of a duration like "10s", "500ms", "2m" for our own wait; -1 if malformed (the
 * deployer checks it again and says what is wrong). */
static long duration_ms(const char *s)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *s < '0' || *s > '9')
        return -1;
    if (*end == 0 || strcmp(end, "s") == 0)
        return (long)(v * 1000);
    if (strcmp(end, "ms") == 0)
        return (long)v;
    if (strcmp(end, "m") == 0)
        return (long)(v * 60000);
    return -1;
}

int wd_cmd_profile(struct wd_ctx *ctx, int argc, char **argv, struct wd_error **err)
{
    static const struct option longopts[] = {{"type", required_argument, NULL, 't'},
                                             {"duration", required_argument, NULL, 'd'},
                                             {"output", required_argument, NULL, 'o'},
                                             {"help", no_argument, NULL, 'h'},
                                             {0}};
    const char *type = "cpu", *dur = "10s", *output = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:d:o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 't':
            type = optarg;
            break;
        case 'd':
            dur = optarg;
            break;
        case 'o':
            output = optarg;
            break;
        case 'h':
            fputs(profile_usage, stdout);
            return 0;
        default:
            return wd_cmd_bad_option("profile", argv, "t:d:o:h", err);
        }
    }
    if (argc - optind != 1)
        return wd_err(err, EINVAL, "profile: give one APP, e.g. 'weaver-docker profile shop'");
    const char *app = argv[optind];
    if (strcmp(type, "cpu") != 0 && strcmp(type, "heap") != 0)
        return wd_err(err, EINVAL, "profile: --type must be cpu or heap, not \"%s\"", type);
    long ms = duration_ms(dur);
    if (ms < 1 || ms > 600000)
        return wd_err(err, EINVAL,
                      "profile: --duration must be like 10s, 500ms or 2m (at most 10m), not \"%s\"",
                      dur);
    autofree char *name = NULL;
    if (output == NULL) {
        char stamp[32];
        time_t now = time(NULL);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&now));
        name = xasprintf("%s-%s-%s.pb.gz", app, type, stamp);
        output = name;
    }
    struct wd_buf probe = {.max = 4 << 20}; /* is it running? (before we say we profile it) */
    int st = wd_cmd_control(ctx, "profile", app, "GET", "/v1/status", NULL, &probe, err);
    wd_buf_free(&probe);
    if (st < 0)
        return st;
    /* fail on a bad output path before the profile runs, not after */
    int fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return wd_err_sys(err, errno, "profile: cannot write %s", output);
    autofree char *path = xasprintf("/v1/profile?type=%s&duration=%s", type, dur);
    if (strcmp(type, "cpu") == 0)
        fprintf(stderr, "weaver-docker: profiling %s for %s...\n", app, dur);
    struct wd_buf resp = {.max = 1u << 30};
    int status = wd_cmd_control_wait(ctx, "profile", app, "GET", path, NULL,
                                     (strcmp(type, "cpu") == 0 ? (int)ms : 0) + 30000, &resp, err);
    if (status != 200) {
        close(fd);
        unlink(output);
        if (status < 0) {
            wd_buf_free(&resp);
            return status;
        }
        int r = wd_cmd_refused("profile", status, &resp, "the deployer refused", err);
        wd_buf_free(&resp);
        return r;
    }
    size_t off = 0;
    while (off < resp.len) {
        ssize_t n = write(fd, resp.data + off, resp.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            unlink(output);
            wd_buf_free(&resp);
            return wd_err_sys(err, e, "profile: write %s", output);
        }
        off += (size_t)n;
    }
    close(fd);
    printf("%s: %s profile of every replica written to %s (%zu bytes); read it with: go tool "
           "pprof %s\n",
           app, type, output, resp.len, output);
    wd_buf_free(&resp);
    return 0;
}
