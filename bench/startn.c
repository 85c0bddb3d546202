/* bench/startn.c - `make bench` baseline: a bare create+start of N containers from one image
 * through our engine client (engine/docker/docker.h, wd_docker_run_jobs with the default parallelism),
 * on a fresh user-defined network. The container spec is the one engine/deploy/rt_docker.c gives a
 * weavelet (read-only rootfs, tmpfs /tmp, no capabilities, healthcheck, alias, numeric user)
 * minus what only a deployment has (WEAVELET_ARGS, the shim token), so the difference to
 * `weaver-docker up` is the deployer's own work. Labels: WEAVER_DOCKER_LABELS plus
 * org.weaver-docker.role=bench-baseline (the client adds the former to everything).
 *
 * usage: startn IMAGE N PREFIX BINARY_NAME     -> prints "ms=<total> connect_ms=.. network_ms=..
 *                                                 jobs_ms=.. create_avg_ms=.. start_avg_ms=.."
 *        startn --cleanup                       -> removes everything carrying WEAVER_DOCKER_LABELS
 *                                                 and role=bench-baseline
 * Built by bench/run.sh against $BUILD/libwd.a. Not a test: no assertions on times. */
#include "engine/docker/docker.h"
#include "engine/base/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROLE_LABEL "org.weaver-docker.role=bench-baseline"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cleanup(void)
{
    struct wd_docker *dk = NULL;
    struct wd_error *err = NULL;
    if (wd_docker_connect(NULL, &dk, &err) < 0) {
        fprintf(stderr, "startn: %s\n", err->msg);
        return 1;
    }
    const char *env = getenv("WEAVER_DOCKER_LABELS");
    if (env == NULL || *env == 0 || strchr(env, ',') != NULL) {
        fprintf(stderr, "startn: --cleanup needs exactly one WEAVER_DOCKER_LABELS label\n");
        wd_docker_free(dk);
        return 2;
    }
    const char *labels[2] = {env, ROLE_LABEL};
    struct wd_cleanup_stats st = {0};
    int r = wd_docker_cleanup(dk, labels, 2, &st, &err);
    if (r < 0)
        fprintf(stderr, "startn: cleanup: %s\n", err->msg);
    else
        printf("removed containers=%zu networks=%zu\n", st.containers, st.networks);
    wd_err_free(&err);
    wd_docker_free(dk);
    return r < 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--cleanup") == 0)
        return cleanup();
    if (argc != 5) {
        fprintf(stderr, "usage: startn IMAGE N PREFIX BINARY_NAME | startn --cleanup\n");
        return 2;
    }
    const char *image = argv[1];
    long n = strtol(argv[2], NULL, 10);
    const char *prefix = argv[3];
    if (n <= 0 || n > 1000) {
        fprintf(stderr, "startn: bad N\n");
        return 2;
    }
    char app_bin[256];
    snprintf(app_bin, sizeof app_bin, "/app/%s", argv[4]);

    struct wd_error *err = NULL;
    struct wd_docker *dk = NULL;
    double t0 = now_ms();
    if (wd_docker_connect(NULL, &dk, &err) < 0) {
        fprintf(stderr, "startn: %s\n", err->msg);
        return 1;
    }
    double t1 = now_ms();

    char net[128];
    snprintf(net, sizeof net, "%s-net", prefix);
    struct wd_kv nlabels[] = {{"org.weaver-docker.role", "bench-baseline"}};
    struct wd_network_spec ns = {.name = net, .labels = nlabels, .nlabels = 1};
    if (wd_docker_network_create(dk, &ns, NULL, &err) < 0) {
        fprintf(stderr, "startn: network %s: %s\n", net, err->msg);
        return 1;
    }
    double t2 = now_ms();

    const char *entry[] = {"/weaver-docker-shim", "--", app_bin};
    const char *env[] = {"HOME=/tmp"};
    const char *health_argv[] = {"/weaver-docker-shim", "--health"};
    struct wd_healthcheck health = {.argv = health_argv,
                                    .argc = 2,
                                    .interval_ns = 5000000000LL,
                                    .timeout_ns = 2000000000LL,
                                    .start_period_ns = 1000000000LL,
                                    .retries = 3};
    struct wd_tmpfs tmpfs = {.path = "/tmp", .options = "rw,nosuid,nodev,mode=1777,size=64m"};
    struct wd_kv labels[] = {{"org.weaver-docker.role", "bench-baseline"}};
    struct wd_container_spec *specs = calloc((size_t)n, sizeof *specs);
    struct wd_docker_job *jobs = calloc((size_t)n, sizeof *jobs);
    char (*names)[128] = calloc((size_t)n, sizeof *names);
    const char **aliases = calloc((size_t)n, sizeof *aliases);
    if (!specs || !jobs || !names || !aliases)
        return 1;
    for (long i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "%s-%ld", prefix, i);
        aliases[i] = names[i];
        specs[i] = (struct wd_container_spec){
            .name = names[i],
            .image = image,
            .entrypoint = entry,
            .nentrypoint = 3,
            .env = env,
            .nenv = 1,
            .labels = labels,
            .nlabels = 1,
            .user = "65532:65532",
            .hostname = names[i],
            .read_only = true,
            .cap_drop_all = true,
            .no_new_privileges = true,
            .tmpfs = &tmpfs,
            .ntmpfs = 1,
            .network = net,
            .aliases = &aliases[i],
            .naliases = 1,
            .health = &health,
            .stop_timeout_s = 5,
        };
        jobs[i] = (struct wd_docker_job){.spec = &specs[i], .start = true};
    }
    int r = wd_docker_run_jobs(dk, jobs, (size_t)n, 0, &err);
    double t3 = now_ms();
    if (r < 0) {
        fprintf(stderr, "startn: %s\n", err->msg);
        return 1;
    }
    double cs = 0, ss = 0;
    for (long i = 0; i < n; i++) {
        cs += (double)jobs[i].create_us;
        ss += (double)jobs[i].start_us;
    }
    printf("ms=%.1f connect_ms=%.1f network_ms=%.1f jobs_ms=%.1f create_avg_ms=%.1f "
           "start_avg_ms=%.1f threads=%u\n",
           t3 - t0, t1 - t0, t2 - t1, t3 - t2, cs / (double)n / 1e3, ss / (double)n / 1e3,
           wd_docker_default_parallelism());
    wd_docker_jobs_clear(jobs, (size_t)n);
    free(jobs);
    free(specs);
    free(names);
    free(aliases);
    wd_docker_free(dk);
    return 0;
}
