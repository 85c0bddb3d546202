/* tests/drivers/engine_driver.c - command-line front end to engine/docker/docker.h and
 * engine/docker/image.h for tests/integration/test_engine.sh and bench/engine.sh. Built by those
 * scripts against libwd.a. Prints key=value lines; on failure "error: <ERRNAME>: <message>" and
 * exit 1. Also fake engines for the bad-input tests: serve-garbage and a proxy that can be killed. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "engine/docker/docker.h"
#include "engine/base/error.h"
#include "engine/docker/image.h"
#include "engine/base/log.h"
#include "engine/base/util.h"

static const char *errname(int e)
{
    static const struct {
        int e;
        const char *n;
    } t[] = {{ENOENT, "ENOENT"},         {EACCES, "EACCES"},
             {EEXIST, "EEXIST"},         {ECONNREFUSED, "ECONNREFUSED"},
             {EPROTO, "EPROTO"},         {ECONNRESET, "ECONNRESET"},
             {EADDRINUSE, "EADDRINUSE"}, {EINVAL, "EINVAL"},
             {ENOTSUP, "ENOTSUP"},       {EIO, "EIO"},
             {EBUSY, "EBUSY"},           {ENOEXEC, "ENOEXEC"},
             {ELIBACC, "ELIBACC"},       {ENAMETOOLONG, "ENAMETOOLONG"},
             {ETIMEDOUT, "ETIMEDOUT"},   {EMSGSIZE, "EMSGSIZE"}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (t[i].e == e)
            return t[i].n;
    return "E?";
}

static int fail(struct wd_error **err)
{
    fprintf(stderr, "error: %s: %s\n", errname((*err)->errnum), (*err)->msg);
    wd_err_free(err);
    return 1;
}

static struct wd_docker *connect_or_die(void)
{
    struct wd_docker *d = NULL;
    struct wd_error *err = NULL;
    if (wd_docker_connect(getenv("WD_HOST"), &d, &err) < 0)
        exit(fail(&err));
    return d;
}

static double secs(int64_t ns)
{
    return (double)ns / 1e9;
}

/* ---- ping ---- */
static int cmd_ping(void)
{
    autodocker struct wd_docker *d = connect_or_die();
    printf("socket=%s\nsource=%s\napi=%s\nserver=%s\npodman=%d\n", wd_docker_socket(d),
           wd_docker_source(d), wd_docker_api_version(d), wd_docker_server_version(d),
           wd_docker_is_podman(d));
    return 0;
}

/* ---- image ---- */
static int cmd_image(int argc, char **argv)
{
    struct wd_image_spec s = {0};
    for (int i = 0; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--app"))
            s.app = argv[i + 1];
        else if (!strcmp(argv[i], "--binary"))
            s.binary_path = argv[i + 1];
        else if (!strcmp(argv[i], "--shim"))
            s.shim_path = argv[i + 1];
        else if (!strcmp(argv[i], "--name"))
            s.binary_name = argv[i + 1];
        else if (!strcmp(argv[i], "--method"))
            s.method = !strcmp(argv[i + 1], "build") ? WD_IMAGE_BUILD : WD_IMAGE_LOAD;
    }
    autodocker struct wd_docker *d = connect_or_die();
    struct wd_image_result r = {0};
    struct wd_error *err = NULL;
    int64_t t0 = wd_now_ns();
    if (wd_image_ensure(d, &s, &r, &err) < 0)
        return fail(&err);
    printf("tag=%s\nid=%s\nreused=%d\nsize=%" PRId64 "\nupload=%zu\nlibs=%zu\nms=%.1f\n", r.tag,
           r.id, r.reused, r.size_bytes, r.upload_bytes, r.nlibs, (double)(wd_now_ns() - t0) / 1e6);
    wd_image_result_free(&r);
    return 0;
}

/* ---- networks ---- */
static int cmd_net(const char *verb, const char *name)
{
    autodocker struct wd_docker *d = connect_or_die();
    struct wd_error *err = NULL;
    if (!strcmp(verb, "net-create")) {
        struct wd_kv l[] = {{WD_LABEL_APP, "engine-test"}};
        struct wd_network_spec s = {.name = name, .labels = l, .nlabels = 1};
        char *id = NULL;
        if (wd_docker_network_create(d, &s, &id, &err) < 0)
            return fail(&err);
        printf("id=%s\n", id);
        free(id);
    } else if (!strcmp(verb, "net-rm")) {
        if (wd_docker_network_remove(d, name, &err) < 0)
            return fail(&err);
    } else {
        struct wd_network_info n = {0};
        if (wd_docker_network_inspect(d, name, &n, &err) < 0)
            return fail(&err);
        printf("id=%s\nname=%s\ndriver=%s\nsubnet=%s\ngateway=%s\n", n.id, n.name, n.driver,
               n.subnet ? n.subnet : "", n.gateway ? n.gateway : "");
        for (size_t i = 0; i < n.nlabels; i++)
            printf("label.%s=%s\n", n.labels[i].key, n.labels[i].value);
        wd_network_info_free(&n);
    }
    return 0;
}

/* ---- containers ---- */
#define MAXV 32
struct cspec {
    struct wd_container_spec s;
    const char *cmd[MAXV], *ent[MAXV], *env[MAXV], *alias[MAXV], *health[MAXV];
    struct wd_kv labels[MAXV];
    struct wd_port_binding ports[MAXV];
    struct wd_tmpfs tmpfs[1];
    struct wd_healthcheck hc;
    bool start;
};

/* create NAME IMAGE [--net N] [--alias A] [--port CP[:HP[:IP]]] [--env K=V] [--label k=v]
 *        [--user U] [--entrypoint P] [--hardened] [--health ARG]... [--memory B] [--start]
 *        [-- CMD...] */
static void parse_cspec(struct cspec *c, int argc, char **argv)
{
    memset(c, 0, sizeof *c);
    c->s.name = argv[0];
    c->s.image = argv[1];
    c->labels[c->s.nlabels++] = (struct wd_kv){WD_LABEL_APP, "engine-test"};
    c->labels[c->s.nlabels++] = (struct wd_kv){WD_LABEL_ROLE, "test"};
    int i;
    for (i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (!strcmp(a, "--start")) {
            c->start = true;
            continue;
        }
        if (!strcmp(a, "--tty")) {
            c->s.tty = true;
            continue;
        }
        if (!strcmp(a, "--hardened")) {
            c->s.read_only = c->s.cap_drop_all = c->s.no_new_privileges = true;
            c->tmpfs[0] = (struct wd_tmpfs){"/tmp", NULL};
            c->s.tmpfs = c->tmpfs;
            c->s.ntmpfs = 1;
            c->s.pids_limit = 64;
            c->s.memory_bytes = 64 << 20;
            c->s.nano_cpus = 500000000;
            continue;
        }
        i++;
        if (!strcmp(a, "--net"))
            c->s.network = v;
        else if (!strcmp(a, "--alias"))
            c->alias[c->s.naliases++] = v;
        else if (!strcmp(a, "--env"))
            c->env[c->s.nenv++] = v;
        else if (!strcmp(a, "--user"))
            c->s.user = v;
        else if (!strcmp(a, "--hostname"))
            c->s.hostname = v;
        else if (!strcmp(a, "--entrypoint"))
            c->ent[c->s.nentrypoint++] = v;
        else if (!strcmp(a, "--health"))
            c->health[c->hc.argc++] = v;
        else if (!strcmp(a, "--memory"))
            c->s.memory_bytes = strtoll(v, NULL, 10);
        else if (!strcmp(a, "--stop-timeout"))
            c->s.stop_timeout_s = atoi(v);
        else if (!strcmp(a, "--label")) {
            char *eq = strchr(v, '=');
            if (eq) {
                *eq = 0;
                c->labels[c->s.nlabels++] = (struct wd_kv){v, eq + 1};
            }
        } else if (!strcmp(a, "--port")) {
            struct wd_port_binding *p = &c->ports[c->s.nports++];
            char *spec = argv[i], *hp = strchr(spec, ':'), *ip = NULL; /* split in place */
            if (hp) {
                *hp++ = 0;
                ip = strchr(hp, ':');
                if (ip)
                    *ip++ = 0;
            }
            p->container_port = (uint16_t)atoi(spec);
            p->host_port = hp ? (uint16_t)atoi(hp) : 0;
            p->host_ip = ip ? ip : "127.0.0.1";
        } else {
            fprintf(stderr, "unknown option %s\n", a);
            exit(2);
        }
    }
    for (; i < argc && c->s.ncmd < MAXV; i++)
        c->cmd[c->s.ncmd++] = argv[i];
    c->s.cmd = c->cmd;
    c->s.entrypoint = c->ent;
    c->s.env = c->env;
    c->s.aliases = c->alias;
    c->s.labels = c->labels;
    c->s.ports = c->ports;
    if (c->hc.argc) {
        c->hc.argv = c->health;
        c->hc.interval_ns = 1000000000;
        c->hc.timeout_ns = 2000000000;
        c->hc.retries = 3;
        c->s.health = &c->hc;
    }
}

static int cmd_create(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    struct cspec c;
    parse_cspec(&c, argc, argv);
    autodocker struct wd_docker *d = connect_or_die();
    struct wd_error *err = NULL;
    char *id = NULL;
    if (wd_docker_container_create(d, &c.s, &id, &err) < 0)
        return fail(&err);
    printf("id=%s\n", id);
    fflush(stdout);
    int rc = 0;
    if (c.start && wd_docker_container_start(d, id, &err) < 0)
        rc = fail(&err);
    free(id);
    return rc;
}

static void print_info(const struct wd_container_info *ci)
{
    printf("id=%s\nname=%s\nstatus=%s\nrunning=%d\nexit=%" PRId64 "\nhealth=%s\nip=%s\n", ci->id,
           ci->name, ci->status, ci->running, ci->exit_code, ci->health, ci->ip ? ci->ip : "");
    printf("oom=%d\ntty=%d\nerror=%s\n", ci->oom_killed, ci->tty, ci->error ? ci->error : "");
    for (size_t i = 0; i < ci->nports; i++)
        printf("port.%u/%s=%s:%u\n", ci->ports[i].container_port, ci->ports[i].proto,
               ci->ports[i].host_ip, ci->ports[i].host_port);
    for (size_t i = 0; i < ci->nlabels; i++)
        printf("label.%s=%s\n", ci->labels[i].key, ci->labels[i].value);
}

struct outbuf {
    struct wd_buf b[3];
};
static int collect(void *arg, int stream, const uint8_t *data, size_t len)
{
    struct outbuf *o = arg;
    return wd_buf_append(&o->b[stream == 2 ? 2 : 1], data, len);
}
static void print_lines(const char *tag, struct wd_buf *b)
{
    const char *p = (const char *)b->data;
    size_t n = b->len;
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t l = nl ? (size_t)(nl - p) : n;
        printf("%s: %.*s\n", tag, (int)l, p);
        p += l + (nl ? 1 : 0);
        n -= l + (nl ? 1 : 0);
    }
    wd_buf_free(b);
}

static int cmd_container(const char *verb, int argc, char **argv)
{
    if (argc < 1)
        return 2;
    const char *id = argv[0], *arg = argc > 1 ? argv[1] : NULL;
    autodocker struct wd_docker *d = connect_or_die();
    struct wd_error *err = NULL;
    int rc = 0;
    if (!strcmp(verb, "start"))
        rc = wd_docker_container_start(d, id, &err);
    else if (!strcmp(verb, "stop"))
        rc = wd_docker_container_stop(d, id, arg ? atoi(arg) : -1, &err);
    else if (!strcmp(verb, "kill"))
        rc = wd_docker_container_kill(d, id, arg, &err);
    else if (!strcmp(verb, "rm"))
        rc = wd_docker_container_remove(d, id, arg && !strcmp(arg, "force"), &err);
    else if (!strcmp(verb, "wait")) {
        int64_t code = 0;
        rc = wd_docker_container_wait(d, id, arg, &code, &err);
        if (rc == 0)
            printf("exit=%" PRId64 "\n", code);
    } else if (!strcmp(verb, "inspect")) {
        struct wd_container_info ci = {0};
        rc = wd_docker_container_inspect(d, id, arg, &ci, &err);
        if (rc == 0)
            print_info(&ci);
        wd_container_info_free(&ci);
    } else if (!strcmp(verb, "logs") || !strcmp(verb, "attach")) {
        struct outbuf o = {0};
        struct wd_logs_opts lo = {.tty = -1, .follow = arg && !strcmp(arg, "follow")};
        if (!strcmp(verb, "logs"))
            rc = wd_docker_container_logs(d, id, &lo, collect, &o, &err);
        else
            rc = wd_docker_container_attach(d, id, false, -1, collect, &o, &err);
        print_lines("stdout", &o.b[1]);
        print_lines("stderr", &o.b[2]);
    } else if (!strcmp(verb, "connect")) {
        const char *alias = argc > 2 ? argv[2] : NULL;
        rc = wd_docker_network_connect(d, arg, id, &alias, alias ? 1 : 0, &err);
    } else {
        return 2;
    }
    return rc < 0 ? fail(&err) : 0;
}

static int cmd_ps(int argc, char **argv)
{
    autodocker struct wd_docker *d = connect_or_die();
    struct wd_error *err = NULL;
    struct wd_container_summary *s = NULL;
    size_t n = 0;
    if (wd_docker_container_list(d, (const char *const *)argv, (size_t)argc, &s, &n, &err) < 0)
        return fail(&err);
    for (size_t i = 0; i < n; i++)
        printf("%s %s %s\n", s[i].id, s[i].name, s[i].state);
    printf("count=%zu\n", n);
    wd_container_summaries_free(s, n);
    return 0;
}

static int cmd_cleanup(int argc, char **argv)
{
    autodocker struct wd_docker *d = connect_or_die();
    struct wd_error *err = NULL;
    struct wd_cleanup_stats st;
    if (wd_docker_cleanup(d, (const char *const *)argv, (size_t)argc, &st, &err) < 0)
        return fail(&err);
    printf("containers=%zu\nnetworks=%zu\nimages=%zu\nimages_kept=%zu\n", st.containers,
           st.networks, st.images, st.images_kept);
    return 0;
}

/* ---- events ---- */
struct evstate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int seen;
    bool done;
    const char *until; /* stop after the first event whose action starts with this */
};
static void on_event(void *arg, const struct wd_docker_event *ev)
{
    struct evstate *s = arg;
    if (ev->action & (WD_EV_LOST | WD_EV_BACK)) {
        printf("stream %s %s\n", ev->action_text, ev->detail);
        fflush(stdout);
        return;
    }
    printf("event action=%s name=%s exit=%" PRId64 " health=%s\n", ev->action_text, ev->name,
           ev->exit_code, ev->health ? ev->health : "");
    fflush(stdout);
    pthread_mutex_lock(&s->mu);
    s->seen++;
    if (strncmp(ev->action_text, s->until, strlen(s->until)) == 0 ||
        (!strcmp(s->until, "die") && ev->action == WD_EV_DIE))
        s->done = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* events LABEL UNTIL_ACTION TIMEOUT_S: prints "ready" once subscribed, then every event */
static int cmd_events(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    autodocker struct wd_docker *d = connect_or_die();
    struct wd_error *err = NULL;
    struct evstate s = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false, argv[1]};
    struct wd_docker_events *ev = NULL;
    const char *labels[] = {argv[0]};
    if (wd_docker_events_start(d, labels, 1, WD_EV_START | WD_EV_DIE | WD_EV_HEALTH | WD_EV_OOM,
                               on_event, &s, &ev, &err) < 0)
        return fail(&err);
    printf("ready\n");
    fflush(stdout);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += atoi(argv[2]);
    pthread_mutex_lock(&s.mu);
    while (!s.done)
        if (pthread_cond_timedwait(&s.cv, &s.mu, &dl) != 0)
            break;
    int seen = s.seen;
    bool done = s.done;
    pthread_mutex_unlock(&s.mu);
    wd_docker_events_stop(ev);
    printf("seen=%d\n", seen);
    return done ? 0 : 1;
}

/* ---- bench: create+start N containers ---- */
static int cmd_bench(const char *mode, int argc, char **argv)
{
    if (argc < 3)
        return 2;
    int n = atoi(argv[0]);
    const char *image = argv[1], *net = argv[2], *prefix = argc > 3 ? argv[3] : "wdb";
    unsigned threads = argc > 4 ? (unsigned)atoi(argv[4]) : 0;
    autodocker struct wd_docker *d = connect_or_die();
    struct wd_container_spec *specs = xcalloc((size_t)n, sizeof *specs);
    struct wd_docker_job *jobs = xcalloc((size_t)n, sizeof *jobs);
    char **names = xcalloc((size_t)n, sizeof *names);
    static const char *cmd[] = {"sleep"};
    /* WD_BENCH_ENTRYPOINT overrides the image's entrypoint (e.g. /app/echo) */
    const char *ep[] = {getenv("WD_BENCH_ENTRYPOINT")};
    size_t nep = ep[0] && *ep[0] ? 1 : 0;
    static const struct wd_kv labels[] = {{WD_LABEL_ROLE, "bench"}};
    for (int i = 0; i < n; i++) {
        names[i] = xasprintf("%s-%d", prefix, i);
        specs[i] = (struct wd_container_spec){.name = names[i],
                                              .image = image,
                                              .cmd = cmd,
                                              .ncmd = 1,
                                              .entrypoint = ep,
                                              .nentrypoint = nep,
                                              .network = net,
                                              .labels = labels,
                                              .nlabels = 1,
                                              .stop_timeout_s = 1};
        jobs[i] = (struct wd_docker_job){.spec = &specs[i], .start = true};
    }
    struct wd_error *err = NULL;
    int64_t t0 = wd_now_ns();
    int rc = 0;
    if (!strcmp(mode, "bench-par")) {
        rc = wd_docker_run_jobs(d, jobs, (size_t)n, threads, &err);
    } else {
        for (int i = 0; i < n && rc == 0; i++) {
            rc = wd_docker_container_create(d, &specs[i], &jobs[i].id, &err);
            if (rc == 0)
                rc = wd_docker_container_start(d, jobs[i].id, &err);
        }
    }
    int64_t t1 = wd_now_ns();
    printf("mode=%s n=%d threads=%u seconds=%.3f\n", mode, n,
           !strcmp(mode, "bench-par") ? (threads ? threads : wd_docker_default_parallelism()) : 1u,
           secs(t1 - t0));
    wd_docker_jobs_clear(jobs, (size_t)n);
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(jobs);
    free(specs);
    return rc < 0 ? fail(&err) : 0;
}

/* ---- fake engines ---- */
static int listen_unix(const char *path)
{
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    unlink(path);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 16) < 0) {
        perror("listen");
        exit(1);
    }
    return s;
}

static int cmd_serve_garbage(const char *path)
{
    int s = listen_unix(path);
    printf("listening\n");
    fflush(stdout);
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0)
            continue;
        char buf[4096];
        (void)!read(c, buf, sizeof buf);
        static const char junk[] = "SSH-2.0-OpenSSH_9.2 not http at all\r\n\r\n";
        (void)!write(c, junk, sizeof junk - 1);
        close(c);
    }
    return 0;
}

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

/* fds: from, to, and 1 to print the request line of each HTTP request that passes (so a test
 * can tell when a call is in flight) */
static void *pump(void *arg)
{
    int *fds = arg;
    char buf[65536];
    for (;;) {
        ssize_t n = read(fds[0], buf, sizeof buf);
        if (n <= 0)
            break;
        if (fds[2] && n > 4 && (!memcmp(buf, "GET ", 4) || !memcmp(buf, "POST", 4))) {
            char *eol = memchr(buf, '\r', (size_t)n);
            pthread_mutex_lock(&log_mu);
            printf("request %.*s\n", (int)(eol ? eol - buf : n), buf);
            fflush(stdout);
            pthread_mutex_unlock(&log_mu);
        }
        if (write(fds[1], buf, (size_t)n) != n)
            break;
    }
    shutdown(fds[1], SHUT_WR);
    return NULL;
}

/* proxy LISTEN TARGET: forwards each connection to TARGET until killed */
static int cmd_proxy(const char *path, const char *target)
{
    int s = listen_unix(path);
    printf("listening\n");
    fflush(stdout);
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0)
            continue;
        int t = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        snprintf(a.sun_path, sizeof a.sun_path, "%s", target);
        if (connect(t, (struct sockaddr *)&a, sizeof a) < 0) {
            close(c);
            close(t);
            continue;
        }
        int *f1 = xcalloc(3, sizeof(int)), *f2 = xcalloc(3, sizeof(int));
        f1[0] = c, f1[1] = t, f1[2] = 1, f2[0] = t, f2[1] = c;
        pthread_t a1, a2;
        pthread_create(&a1, NULL, pump, f1);
        pthread_create(&a2, NULL, pump, f2);
        pthread_detach(a1);
        pthread_detach(a2);
    }
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (getenv("WD_DEBUG"))
        wd_log_set_level(WD_LOG_DEBUG);
    if (argc < 2) {
        fprintf(stderr, "usage: engine_driver CMD ...\n");
        return 2;
    }
    const char *c = argv[1];
    int rc;
    if (!strcmp(c, "ping"))
        rc = cmd_ping();
    else if (!strcmp(c, "image"))
        rc = cmd_image(argc - 2, argv + 2);
    else if (!strncmp(c, "net-", 4) && argc > 2)
        rc = cmd_net(c, argv[2]);
    else if (!strcmp(c, "create"))
        rc = cmd_create(argc - 2, argv + 2);
    else if (!strcmp(c, "ps"))
        rc = cmd_ps(argc - 2, argv + 2);
    else if (!strcmp(c, "cleanup"))
        rc = cmd_cleanup(argc - 2, argv + 2);
    else if (!strcmp(c, "events"))
        rc = cmd_events(argc - 2, argv + 2);
    else if (!strncmp(c, "bench-", 6))
        rc = cmd_bench(c, argc - 2, argv + 2);
    else if (!strcmp(c, "serve-garbage") && argc > 2)
        rc = cmd_serve_garbage(argv[2]);
    else if (!strcmp(c, "proxy") && argc > 3)
        rc = cmd_proxy(argv[2], argv[3]);
    else
        rc = cmd_container(c, argc - 2, argv + 2);
    if (rc == 2)
        fprintf(stderr, "engine_driver: bad usage of %s\n", c);
    curl_global_cleanup();
    return rc;
}
