/* engine/deploy/rollout.c - the rollout state machine, both roles (rollout.h says who does
 * what; docs/design/rollout.md has the picture).
 *
 * The new version (role TO):
 *
 *   STARTING --main and every listener serve--> PROBING --every backend answers-->
 *   SHIFTING (the old deployer sends k/n of new connections here, one step per interval,
 *   each step after another probe) --> handover: the listening sockets come over --> DONE
 *
 *   Any of: rollout_timeout before SHIFTING, a replica of ours exiting, a probe failing
 *   during the shift, the old deployer not answering, Ctrl-C or `rollout --abort` -> FAILED:
 *   the split is cancelled (all traffic back on the old version), and we stop with the reason:
 *   `up` removes what we made and exits != 0.
 *
 * The old version (role FROM): splits on request; watches the new deployer's pid (a pidfd),
 * and cancels the split itself if that process goes before the handover; after the handover
 * it accepts nothing, lets its open connections finish for `[docker] drain`, and stops. */
#include "engine/deploy/rollout.h"
#include "engine/base/log.h"
#include "engine/base/termout.h"
#include "engine/deploy/control.h"
#include "engine/deploy/deploy.h"
#include "engine/deploy/operate.h"
#include "engine/deploy/proxy.h"
#include "engine/weaver/logfmt.h"
#include "engine/docker/json.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <signal.h>
#include <unistd.h>

#define PROBE_MS 3000        /* one probe's answer */
#define PROBE_RETRY_MS 500   /* before the shift: the next try after a probe failed */
#define CALL_MS 5000         /* a control call to the old deployer */
#define STEP_MIN_MS 1000     /* the shortest step of a gradual shift */
#define MAX_STEPS 20
#define DRAIN_POLL_MS 100
#define PID_POLL_MS 500
#define LEASE_MIN_MS 15000
#define SETTLE_MS 5000
#define TAIL_LINES 12        /* the new version's last log lines, shown when it fails */
#define TAIL_READ 2000       /* of the log file's last entries (weaver's system ones left out) */

/* A request any Go net/http server answers by itself, without calling the app's handlers
 * (OPTIONS *); any other TCP server that answers at all says something or closes. */
static const char probe_req[] = "OPTIONS * HTTP/1.0\r\n\r\n";

enum role { TO, FROM };
enum state { STARTING, PROBING, SHIFTING, DONE, FAILED };

static const char *const state_names[] = {"starting", "probing", "shifting", "done", "failed"};

struct wd_rollout;

struct probe {
    struct wd_rollout *ro;
    int fd;
    struct wd_watch *w;
    bool sent;
    char *what; /* "listener web backend 172.18.0.3:8000" */
};

struct wd_rollout {
    struct wd_deploy *d;
    enum role role;
    /* TO */
    enum state state;
    char *from_control, *from_deployment, *from_listeners;
    long from_pid;
    int64_t t0_ms, serving_ms, done_ms;
    struct wd_timer *timeout, *step_timer;
    int step, nsteps;
    int64_t step_ms;
    unsigned permille;
    struct probe **probes;
    size_t nprobes, probes_left;
    char *probe_fail;
    char *last_fail; /* the last round's first failure, for the timeout's message */
    struct wd_timer *probe_timer;
    bool split_on; /* the old deployer may be sending us connections */
    char *fail_reason;
    char *fail_msg; /* the line `up` ends with */
    int64_t settle_until;
    struct wd_timer *settle_timer;
    bool tail; /* show the new version's last log lines at the end */
    /* FROM */
    char *to_deployment;
    long to_pid;
    int pidfd;
    struct wd_watch *pidw;
    struct wd_timer *pid_timer; /* without pidfd_open (Linux < 5.3) */
    unsigned from_permille;
    bool offered; /* copies of our listening sockets went to it (handover, not committed) */
    bool handed;  /* committed: we accept no more, drain and stop */
    struct wd_timer *lease_timer; /* no word from the new deployer for a while: split to 0 */
    int64_t drain_until;
    struct wd_timer *drain_timer;
    char *public_tmp; /* wd_rollout_public_address's answer */
};

static struct wd_rollout *ro_of(const struct wd_deploy *d) { return d->ro; }

static void say(struct wd_rollout *ro, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct wd_rollout *ro, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    autofree char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    wd_deploy_event(ro->d, "info", "rollout: %s", msg);
}

/* ---------- talking to the old deployer ---------- */

/* One call to the old deployer; 0 and its answer's JSON in *out (may be NULL), or <0 with
 * *why set (caller frees). */
static int call_from(struct wd_rollout *ro, const char *method, const char *path, cJSON *body,
                     cJSON **out, int *fds, size_t maxfds, size_t *nfds, char **why)
{
    autofree char *text = body ? wd_json_print(body) : NULL;
    struct wd_buf resp = {.max = 1 << 20};
    int status = 0;
    autoerr struct wd_error *err = NULL;
    int r = wd_control_call_fds(ro->from_control, method, path, text, text ? strlen(text) : 0,
                                CALL_MS, &status, &resp, fds, maxfds, nfds, &err);
    if (r < 0) {
        *why = xasprintf("the deployer of deployment %.8s (pid %ld) does not answer: %s",
                         ro->from_deployment, ro->from_pid, err->msg);
        wd_buf_free(&resp);
        return r;
    }
    cJSON *j = resp.len ? cJSON_ParseWithLength((const char *)resp.data, resp.len) : NULL;
    wd_buf_free(&resp);
    if (status != 200) {
        const char *e = wd_json_str(j, "error");
        if (status == 404)
            *why = xasprintf("the deployer of deployment %.8s (pid %ld) cannot roll over (an "
                             "older weaver-docker); stop it with 'weaver-docker down %s' and "
                             "run up again",
                             ro->from_deployment, ro->from_pid, ro->d->app);
        else
            *why = xasprintf("the deployer of deployment %.8s (pid %ld) refused: %s",
                             ro->from_deployment, ro->from_pid, e ? e : "no reason given");
        cJSON_Delete(j);
        if (nfds) {
            for (size_t i = 0; i < *nfds; i++)
                close(fds[i]);
            *nfds = 0;
        }
        return -EPROTO;
    }
    if (out)
        *out = j;
    else
        cJSON_Delete(j);
    return 0;
}

static cJSON *split_body(struct wd_rollout *ro, unsigned permille)
{
    struct wd_deploy *d = ro->d;
    cJSON *b = wd_json_new_object();
    wd_json_add_str(b, "to", d->deployment_id);
    wd_json_add_i64(b, "pid", (int64_t)getpid());
    wd_json_add_i64(b, "permille", permille);
    /* no word from us for this long: the old deployer takes every connection back (a new
     * deployer stopped with Ctrl-Z, or wedged, still completes handshakes in its backlog) */
    wd_json_add_i64(b, "lease_ms", ro->step_ms * 3 > LEASE_MIN_MS ? ro->step_ms * 3 : LEASE_MIN_MS);
    cJSON *l = wd_json_add_object(b, "listeners");
    for (size_t i = 0; i < d->nlisteners; i++)
        wd_json_add_str(l, d->listeners[i].name, wd_proxy_address(d->listeners[i].proxy));
    return b;
}

static void cancel_split(struct wd_rollout *ro, const char *why)
{
    if (!ro->split_on)
        return;
    ro->split_on = false;
    cJSON *b = wd_json_new_object();
    wd_json_add_str(b, "to", ro->d->deployment_id);
    wd_json_add_str(b, "reason", why);
    autofree char *e = NULL;
    if (call_from(ro, "POST", "/v1/rollout/cancel", b, NULL, NULL, 0, NULL, &e) < 0)
        wd_warn("rollout: cancel: %s", e);
    cJSON_Delete(b);
}

/* ---------- failing ---------- */

/* The new version's last log lines, to the terminal (and to `up -d`, which is waiting). */
static void show_tail(struct wd_rollout *ro)
{
    struct wd_deploy *d = ro->d;
    autojson cJSON *entries = wd_log_tail_json(d->opts.log_path, TAIL_READ);
    char *lines[TAIL_LINES] = {0};
    size_t n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, entries)
    {
        const char *comp = wd_json_str(e, "component");
        const char *msg = wd_json_str(e, "msg");
        if (comp == NULL || msg == NULL || strcmp(comp, "deployer") == 0)
            continue; /* ours are on the terminal already */
        const char *level = wd_json_str(e, "level");
        bool err = level && strcmp(level, "error") == 0;
        if (!err && cJSON_GetObjectItemCaseSensitive(wd_json_obj(e, "attrs"), WD_LOG_SYSTEM_ATTR))
            continue; /* weaver's own chatter, as the terminal hides it */
        free(lines[n % TAIL_LINES]);
        const char *dot = strrchr(comp, '/');
        struct wd_buf l = {0};
        wd_buf_printf(&l, "  %s: %s", dot ? dot + 1 : comp, msg);
        const cJSON *a;
        cJSON_ArrayForEach(a, wd_json_obj(e, "attrs"))
            if (cJSON_IsString(a) && l.len < 300)
                wd_buf_printf(&l, " %s=\"%.200s\"", a->string, a->valuestring);
        lines[n % TAIL_LINES] = wd_buf_steal_str(&l);
        wd_buf_free(&l);
        n++;
    }
    if (n == 0)
        return;
    struct wd_buf b = {0};
    wd_buf_printf(&b, "weaver-docker: the last log lines of deployment %.8s:\n",
                  d->deployment_id);
    for (size_t i = n > TAIL_LINES ? n - TAIL_LINES : 0; i < n; i++)
        wd_buf_printf(&b, "%s\n", lines[i % TAIL_LINES]);
    wd_termout_write(d->terr, (const char *)b.data, b.len);
    if (d->opts.ready_fd >= 0) {
        struct wd_buf p = {0};
        for (char *s = (char *)b.data, *nl; s < (char *)b.data + b.len && (nl = strchr(s, '\n'));
             s = nl + 1)
            wd_buf_printf(&p, "log %.*s\n", (int)(nl - s), s);
        (void)!write(d->opts.ready_fd, p.data, p.len);
        wd_buf_free(&p);
    }
    wd_buf_free(&b);
    for (size_t i = 0; i < TAIL_LINES; i++)
        free(lines[i]);
}

static void probes_free(struct wd_rollout *ro);

static size_t open_conns(struct wd_deploy *d);

/* A failed rollout: wait (up to SETTLE_MS) for the connections already on this version, then
 * stop with the message. */
static void settle(struct wd_timer *t, void *arg)
{
    (void)t;
    struct wd_rollout *ro = arg;
    ro->settle_timer = NULL;
    if (!ro->d->stopping && open_conns(ro->d) > 0 && wd_now_ms() < ro->settle_until) {
        ro->settle_timer = wd_timer_add(ro->d->loop, DRAIN_POLL_MS, settle, ro);
        return;
    }
    if (ro->d->stopping) { /* stopped meanwhile (Ctrl-C): it ends with the message all the same */
        if (ro->d->fatal == NULL)
            ro->d->fatal = xstrdup(ro->fail_msg);
        return;
    }
    wd_deploy_fail(ro->d, "%s", ro->fail_msg);
}

static void fail(struct wd_rollout *ro, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct wd_rollout *ro, const char *fmt, ...)
{
    if (ro->state == FAILED || ro->state == DONE)
        return;
    va_list ap;
    va_start(ap, fmt);
    autofree char *why = xvasprintf(fmt, ap);
    va_end(ap);
    ro->state = FAILED;
    ro->fail_reason = xstrdup(why);
    wd_timer_cancel(ro->timeout);
    ro->timeout = NULL;
    wd_timer_cancel(ro->step_timer);
    ro->step_timer = NULL;
    probes_free(ro);
    cancel_split(ro, why);
    ro->tail = true; /* at the end, once the log thread wrote everything (wd_rollout_free) */
    bool old_gone = kill((pid_t)ro->from_pid, 0) < 0 && errno == ESRCH;
    if (old_gone)
        ro->fail_msg = xasprintf("rollout of %s to deployment %.8s failed: %s; the deployer of "
                                 "deployment %.8s is gone too, so nothing serves %s: run "
                                 "'weaver-docker up' again",
                                 ro->d->app, ro->d->deployment_id, why, ro->from_deployment,
                                 ro->d->app);
    else
        ro->fail_msg = xasprintf("rollout of %s to deployment %.8s failed: %s; deployment %.8s "
                                 "still serves every request, and what the new version made "
                                 "is removed",
                                 ro->d->app, ro->d->deployment_id, why, ro->from_deployment);
    /* requests already on this version finish first (a little while), then it stops */
    ro->settle_until = wd_now_ms() + SETTLE_MS;
    settle(NULL, ro);
}

/* ---------- probing the new version's listeners ---------- */

static void probes_free(struct wd_rollout *ro)
{
    for (size_t i = 0; i < ro->nprobes; i++) {
        struct probe *p = ro->probes[i];
        if (p == NULL)
            continue;
        wd_watch_free(p->w);
        if (p->fd >= 0)
            close(p->fd);
        free(p->what);
        free(p);
    }
    free(ro->probes);
    ro->probes = NULL;
    ro->nprobes = ro->probes_left = 0;
    wd_timer_cancel(ro->probe_timer);
    ro->probe_timer = NULL;
}

static void probes_done(struct wd_rollout *ro);

static void probe_end(struct probe *p, const char *failed)
{
    struct wd_rollout *ro = p->ro;
    wd_watch_free(p->w);
    p->w = NULL;
    close(p->fd);
    p->fd = -1;
    if (failed && ro->probe_fail == NULL)
        ro->probe_fail = xasprintf("%s %s", p->what, failed);
    if (--ro->probes_left == 0)
        probes_done(ro);
}

static void on_probe(struct wd_watch *w, int fd, unsigned ev, void *arg)
{
    (void)w;
    struct probe *p = arg;
    if (!p->sent) {
        int e = 0;
        socklen_t el = sizeof e;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el);
        if (e != 0)
            return probe_end(p, strerror(e));
        if (send(fd, probe_req, sizeof probe_req - 1, MSG_NOSIGNAL) < 0)
            return probe_end(p, strerror(errno));
        p->sent = true;
        wd_watch_set(p->w, WD_EV_IN);
        return;
    }
    char b[256];
    ssize_t n = recv(fd, b, sizeof b, 0);
    if (n > 0 || (n == 0 && !(ev & WD_EV_ERR)))
        return probe_end(p, NULL); /* it said something, or closed in order: it answers */
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    probe_end(p, n < 0 ? strerror(errno) : "reset the connection");
}

static void probe_timeout(struct wd_timer *t, void *arg)
{
    (void)t;
    struct wd_rollout *ro = arg;
    ro->probe_timer = NULL;
    for (size_t i = 0; i < ro->nprobes && ro->probes_left > 0; i++)
        if (ro->probes[i]->fd >= 0)
            probe_end(ro->probes[i], "did not answer within 3 s");
}

static void add_probe(struct wd_rollout *ro, const char *listener, const char *addr)
{
    struct probe *p = xzalloc(sizeof *p);
    p->ro = ro;
    p->fd = -1;
    p->what = xasprintf("listener %s (backend %s)", listener, addr);
    ro->probes = xrealloc(ro->probes, (ro->nprobes + 1) * sizeof *ro->probes);
    ro->probes[ro->nprobes++] = p;
    ro->probes_left++;
    autofree char *host = NULL, *port = NULL;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    if (wd_split_hostport(addr, &host, &port, NULL) == 0 &&
        getaddrinfo(host, port, &hints, &ai) == 0 && ai) {
        p->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (p->fd >= 0 &&
            (connect(p->fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS)) {
            freeaddrinfo(ai);
            p->w = wd_watch_add(ro->d->loop, p->fd, WD_EV_OUT, on_probe, p);
            return;
        }
    }
    if (ai)
        freeaddrinfo(ai);
    if (p->fd < 0)
        p->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); /* probe_end closes one */
    probe_end(p, "cannot be dialed");
}

/* Probe every backend of every listener; probes_done follows (maybe at once). */
static void probe_all(struct wd_rollout *ro)
{
    struct wd_deploy *d = ro->d;
    probes_free(ro);
    free(ro->probe_fail);
    ro->probe_fail = NULL;
    ro->probes_left = 1; /* held while adding: no early "done" */
    ro->probe_timer = wd_timer_add(d->loop, PROBE_MS, probe_timeout, ro);
    for (size_t i = 0; i < d->nlisteners; i++) {
        if (wd_proxy_backend(d->listeners[i].proxy, 0) == NULL && ro->probe_fail == NULL)
            ro->probe_fail = xasprintf("listener %s has no backend", d->listeners[i].name);
        for (size_t k = 0; wd_proxy_backend(d->listeners[i].proxy, k); k++)
            add_probe(ro, d->listeners[i].name, wd_proxy_backend(d->listeners[i].proxy, k));
    }
    if (--ro->probes_left == 0)
        probes_done(ro);
}

/* ---------- the shift ---------- */

static void step(struct wd_timer *t, void *arg);
static void handover(struct wd_rollout *ro);

static void probe_retry(struct wd_timer *t, void *arg)
{
    (void)t;
    struct wd_rollout *ro = arg;
    ro->step_timer = NULL;
    probe_all(ro);
}

static void probes_done(struct wd_rollout *ro)
{
    wd_timer_cancel(ro->probe_timer);
    ro->probe_timer = NULL;
    if (ro->state == PROBING) {
        if (ro->probe_fail) { /* not yet: it may still be starting to serve */
            wd_debug("rollout: %s; probing again", ro->probe_fail);
            free(ro->last_fail);
            ro->last_fail = xstrdup(ro->probe_fail);
            ro->step_timer = wd_timer_add(ro->d->loop, PROBE_RETRY_MS, probe_retry, ro);
            return;
        }
        ro->serving_ms = wd_now_ms();
        wd_timer_cancel(ro->timeout);
        ro->timeout = NULL;
        int64_t total = ro->d->cfg->rollout_nanos / 1000000;
        if (total <= 0) {
            ro->nsteps = 0; /* at once: the sockets come over now */
            ro->step_ms = 0;
        } else {
            ro->step_ms = total / MAX_STEPS > STEP_MIN_MS ? total / MAX_STEPS : STEP_MIN_MS;
            ro->nsteps = (int)((total + ro->step_ms - 1) / ro->step_ms);
        }
        ro->state = SHIFTING;
        say(ro, "deployment %.8s serves (after %lld ms); moving new connections to it %s",
            ro->d->deployment_id, (long long)(ro->serving_ms - ro->t0_ms),
            ro->nsteps ? "gradually" : "at once");
        step(NULL, ro);
        return;
    }
    if (ro->state != SHIFTING)
        return;
    if (ro->probe_fail) {
        autofree char *why = xasprintf("%s during the shift", ro->probe_fail);
        return fail(ro, "%s", why);
    }
    /* the probe before this step passed: take it */
    ro->step++;
    unsigned pm = (unsigned)(1000 * ro->step / ro->nsteps);
    cJSON *b = split_body(ro, pm);
    autofree char *e = NULL;
    ro->split_on = true;
    int r = call_from(ro, "POST", "/v1/rollout", b, NULL, NULL, 0, NULL, &e);
    cJSON_Delete(b);
    if (r < 0)
        return fail(ro, "%s", e);
    ro->permille = pm;
    say(ro, "%u %% of new connections go to deployment %.8s", pm / 10, ro->d->deployment_id);
    ro->step_timer = wd_timer_add(ro->d->loop, ro->step_ms, step, ro);
}

static void step(struct wd_timer *t, void *arg)
{
    (void)t; /* the loop frees a timer before its callback: the pointer goes here */
    struct wd_rollout *ro = arg;
    ro->step_timer = NULL;
    if (ro->state != SHIFTING)
        return;
    if (ro->step >= ro->nsteps)
        return handover(ro);
    probe_all(ro); /* then probes_done takes the step */
}

static void to_free(struct wd_deploy *d);

/* At 100 %: the old deployer sends copies of its listening sockets (and keeps accepting on
 * them); once we accept on them too, we commit and it stops accepting, drains and goes. An
 * answer lost on the way leaves the old one serving alone: the port never closes. */
static void handover(struct wd_rollout *ro)
{
    struct wd_deploy *d = ro->d;
    cJSON *b = wd_json_new_object();
    wd_json_add_str(b, "to", d->deployment_id);
    wd_json_add_i64(b, "pid", (int64_t)getpid());
    cJSON *names = wd_json_add_array(b, "listeners");
    for (size_t i = 0; i < d->nlisteners; i++)
        wd_json_arr_add_str(names, d->listeners[i].name);
    int fds[WD_CONTROL_MAX_FDS];
    size_t nfds = 0;
    cJSON *ans = NULL;
    autofree char *e = NULL;
    ro->split_on = true; /* a handover that fails half way: cancel it */
    int r = call_from(ro, "POST", "/v1/rollout/handover", b, &ans, fds, WD_CONTROL_MAX_FDS,
                      &nfds, &e);
    cJSON_Delete(b);
    if (r < 0)
        return fail(ro, "%s", e);
    const cJSON *got = wd_json_arr(ans, "listeners");
    bool *adopted = xcalloc(d->nlisteners + 1, sizeof *adopted);
    size_t k = 0;
    const cJSON *it;
    if (cJSON_GetArraySize(got) != (int)nfds) {
        for (size_t i = 0; i < nfds; i++)
            close(fds[i]);
        free(adopted);
        cJSON_Delete(ans);
        return fail(ro, "the deployer of deployment %.8s sent %zu sockets for %d listeners",
                    ro->from_deployment, nfds, cJSON_GetArraySize(got));
    }
    cJSON_ArrayForEach(it, got)
    {
        for (size_t i = 0; cJSON_IsString(it) && i < d->nlisteners; i++)
            if (!adopted[i] && strcmp(d->listeners[i].name, it->valuestring) == 0) {
                wd_proxy_adopt_listener(d->listeners[i].proxy, fds[k]);
                fds[k] = -1;
                adopted[i] = true;
            }
        k++;
    }
    for (size_t i = 0; i < nfds; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    cJSON_Delete(ans);
    /* we accept on them now: the old one may stop (a lost commit: it goes on accepting too,
     * with its split at 100 % to us, until its deployer sees ours go or is stopped) */
    cJSON *cb = wd_json_new_object();
    wd_json_add_str(cb, "to", d->deployment_id);
    autofree char *ce = NULL;
    if (call_from(ro, "POST", "/v1/rollout/commit", cb, NULL, NULL, 0, NULL, &ce) < 0)
        wd_deploy_event(d, "warn", "rollout: %s", ce);
    cJSON_Delete(cb);
    ro->split_on = false;
    /* listeners the old version did not have: their configured addresses, now */
    for (size_t i = 0; i < d->nlisteners; i++) {
        if (adopted[i])
            continue;
        const char *want = NULL;
        for (size_t c = 0; c < d->cfg->nlisteners; c++)
            if (strcmp(d->cfg->listeners[c].name, d->listeners[i].name) == 0)
                want = d->cfg->listeners[c].address;
        if (want == NULL)
            continue; /* localhost:0 would do: the loopback one is that */
        int fd = -1;
        autoerr struct wd_error *le = NULL;
        if (wd_tcp_listen(want, 512, &fd, &le) < 0)
            wd_deploy_event(d, "warn", "listener %s: %s; it stays at %s", d->listeners[i].name,
                            le->msg, wd_proxy_address(d->listeners[i].proxy));
        else
            wd_proxy_adopt_listener(d->listeners[i].proxy, fd);
    }
    free(adopted);
    ro->state = DONE;
    ro->done_ms = wd_now_ms();
    say(ro, "%s now runs deployment %.8s (%lld ms after it started, %lld ms of shift); "
            "deployment %.8s drains its open connections and stops",
        d->app, d->deployment_id, (long long)(ro->done_ms - ro->t0_ms),
        (long long)(ro->done_ms - ro->serving_ms), ro->from_deployment);
    wd_deploy_announce_ready(d);
    to_free(d); /* done: this deployment is the app's, and may itself be rolled over */
}

static void start_timeout(struct wd_timer *t, void *arg)
{
    (void)t;
    struct wd_rollout *ro = arg;
    ro->timeout = NULL;
    int64_t s = ro->d->cfg->rollout_timeout_ms;
    if (ro->state == STARTING)
        fail(ro, "deployment %.8s did not become ready within %lld s ([docker] "
                 "rollout_timeout)",
             ro->d->deployment_id, (long long)(s / 1000));
    else if (ro->state == PROBING) {
        autofree char *pending = NULL; /* a probe still waiting says as much as a failed one */
        for (size_t i = 0; ro->last_fail == NULL && pending == NULL && i < ro->nprobes; i++)
            if (ro->probes[i] && ro->probes[i]->fd >= 0)
                pending = xasprintf("%s did not answer", ro->probes[i]->what);
        fail(ro, "%s (for %lld s: [docker] rollout_timeout)",
             ro->last_fail ? ro->last_fail : pending ? pending : "its listeners do not answer",
             (long long)(s / 1000));
    }
}

/* The loop's first turn: tell the old deployer (a split of 0 %): from now on it shows the
 * rollout and watches our pid; one that cannot roll over is found before our groups serve. */
static void announce(struct wd_timer *t, void *arg)
{
    (void)t;
    struct wd_rollout *ro = arg;
    ro->step_timer = NULL;
    if (ro->state != STARTING)
        return;
    cJSON *b = split_body(ro, 0);
    autofree char *e = NULL;
    ro->split_on = true; /* from now on a failure tells it */
    int r = call_from(ro, "POST", "/v1/rollout", b, NULL, NULL, 0, NULL, &e);
    cJSON_Delete(b);
    if (r < 0) {
        ro->split_on = false; /* it never took it */
        fail(ro, "%s", e);
    }
}

void wd_rollout_start(struct wd_deploy *d)
{
    const struct wd_rollout_from *f = d->opts.rollout;
    if (f == NULL)
        return;
    struct wd_rollout *ro = xzalloc(sizeof *ro);
    ro->d = d;
    ro->role = TO;
    ro->state = STARTING;
    ro->pidfd = -1;
    ro->from_control = xstrdup(f->control);
    ro->from_deployment = xstrdup(f->deployment ? f->deployment : "");
    ro->from_listeners = xstrdup(f->listeners ? f->listeners : "");
    ro->from_pid = f->pid;
    ro->t0_ms = wd_now_ms();
    ro->timeout = wd_timer_add(d->loop, d->cfg->rollout_timeout_ms, start_timeout, ro);
    ro->step_timer = wd_timer_add(d->loop, 0, announce, ro);
    d->ro = ro;
    say(ro, "starting deployment %.8s beside deployment %.8s (deployer pid %ld)",
        d->deployment_id, ro->from_deployment, ro->from_pid);
}

void wd_rollout_ready(struct wd_deploy *d)
{
    struct wd_rollout *ro = ro_of(d);
    if (ro == NULL || ro->role != TO || ro->state != STARTING)
        return;
    ro->state = PROBING;
    probe_all(ro);
}

bool wd_rollout_pending(const struct wd_deploy *d)
{
    const struct wd_rollout *ro = ro_of(d);
    return ro && ro->role == TO && ro->state != DONE;
}

void wd_rollout_replica_exited(struct wd_deploy *d, const char *group, const char *how)
{
    struct wd_rollout *ro = ro_of(d);
    if (ro == NULL || ro->role != TO || ro->state == DONE || ro->state == FAILED)
        return;
    fail(ro, "group %s of the new version %s", group, how);
}

void wd_rollout_stopping(struct wd_deploy *d)
{
    struct wd_rollout *ro = ro_of(d);
    if (ro == NULL)
        return;
    if (ro->role == FROM) { /* down or Ctrl-C of the old one: its timers poll no more */
        wd_timer_cancel(ro->pid_timer);
        ro->pid_timer = NULL;
        wd_timer_cancel(ro->lease_timer);
        ro->lease_timer = NULL;
        return;
    }
    if (ro->state != DONE && ro->state != FAILED) { /* Ctrl-C, down, SIGTERM of the new one */
        ro->state = FAILED;
        ro->fail_reason = xstrdup("stopped before it finished");
        cancel_split(ro, "the new version is stopping");
        if (d->fatal == NULL) /* not a clean stop: the rollout did not happen */
            d->fatal = xasprintf("rollout of %s to deployment %.8s stopped before it finished; "
                                 "deployment %.8s serves every new connection",
                                 d->app, d->deployment_id, ro->from_deployment);
    }
}

const char *wd_rollout_public_address(struct wd_deploy *d, const char *name, const char *bound)
{
    struct wd_rollout *ro = ro_of(d);
    if (ro == NULL || ro->role != TO || ro->state == DONE)
        return bound;
    size_t nl = strlen(name);
    for (const char *p = ro->from_listeners; p && *p;) {
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            free(ro->public_tmp);
            ro->public_tmp = xstrndup(p + nl + 1, len - nl - 1);
            return ro->public_tmp;
        }
        p = end ? end + 1 : NULL;
    }
    return bound;
}

/* ---------- the old version ---------- */

static struct wd_listener *listener_named(struct wd_deploy *d, const char *name)
{
    for (size_t i = 0; i < d->nlisteners; i++)
        if (strcmp(d->listeners[i].name, name) == 0)
            return &d->listeners[i];
    return NULL;
}

static void end_split(struct wd_rollout *ro)
{
    struct wd_deploy *d = ro->d;
    for (size_t i = 0; i < d->nlisteners; i++)
        wd_proxy_set_split(d->listeners[i].proxy, NULL, 0);
    wd_watch_free(ro->pidw);
    ro->pidw = NULL;
    wd_timer_cancel(ro->pid_timer);
    ro->pid_timer = NULL;
    if (ro->pidfd >= 0)
        close(ro->pidfd);
    ro->pidfd = -1;
}

static void from_free(struct wd_deploy *d)
{
    struct wd_rollout *ro = ro_of(d);
    end_split(ro);
    wd_timer_cancel(ro->drain_timer);
    wd_timer_cancel(ro->lease_timer);
    free(ro->to_deployment);
    free(ro->public_tmp);
    free(ro);
    d->ro = NULL;
}

/* The new deployer's process ended: before the handover, that ends the rollout. */
static void on_to_gone(struct wd_watch *w, int fd, unsigned ev, void *arg)
{
    (void)w;
    (void)fd;
    (void)ev;
    struct wd_deploy *d = arg;
    struct wd_rollout *ro = ro_of(d);
    if (ro->handed) {
        wd_watch_free(ro->pidw);
        ro->pidw = NULL;
        return;
    }
    wd_deploy_event(d, "warn",
                    "rollout to deployment %.8s ended: its deployer (pid %ld) is gone; "
                    "deployment %.8s serves every new connection again",
                    ro->to_deployment, ro->to_pid, d->deployment_id);
    from_free(d);
}

static void pid_poll(struct wd_timer *t, void *arg)
{
    (void)t;
    struct wd_deploy *d = arg;
    struct wd_rollout *ro = ro_of(d);
    ro->pid_timer = NULL;
    if (d->stopping)
        return;
    if (kill((pid_t)ro->to_pid, 0) < 0 && errno == ESRCH)
        return on_to_gone(NULL, -1, 0, d);
    if (!ro->handed)
        ro->pid_timer = wd_timer_add(d->loop, PID_POLL_MS, pid_poll, d);
}

/* The new deployer said nothing for its lease: until it does, we serve every connection. */
static void lease_expired(struct wd_timer *t, void *arg)
{
    (void)t;
    struct wd_deploy *d = arg;
    struct wd_rollout *ro = ro_of(d);
    ro->lease_timer = NULL;
    if (ro->handed || d->stopping || ro->from_permille == 0)
        return;
    for (size_t i = 0; i < d->nlisteners; i++)
        wd_proxy_set_split(d->listeners[i].proxy, NULL, 0);
    ro->from_permille = 0;
    wd_deploy_event(d, "warn",
                    "rollout to deployment %.8s: no word from its deployer (pid %ld) in time; "
                    "deployment %.8s serves every new connection until it speaks again",
                    ro->to_deployment, ro->to_pid, d->deployment_id);
}

static size_t open_conns(struct wd_deploy *d)
{
    size_t n = 0;
    for (size_t i = 0; i < d->nlisteners; i++)
        n += wd_proxy_nconns(d->listeners[i].proxy);
    return n;
}

static void drain_tick(struct wd_timer *t, void *arg)
{
    (void)t;
    struct wd_deploy *d = arg;
    struct wd_rollout *ro = ro_of(d);
    ro->drain_timer = NULL;
    if (d->stopping)
        return; /* stopped meanwhile (down, Ctrl-C): no more polling */
    size_t n = open_conns(d);
    if (n > 0 && wd_now_ms() < ro->drain_until) {
        ro->drain_timer = wd_timer_add(d->loop, DRAIN_POLL_MS, drain_tick, d);
        return;
    }
    autofree char *why =
        n ? xasprintf("rolled over to deployment %.8s (deployer pid %ld); %zu connection%s "
                      "still open after the drain ([docker] drain)",
                      ro->to_deployment, ro->to_pid, n, n == 1 ? "" : "s")
          : xasprintf("rolled over to deployment %.8s (deployer pid %ld)", ro->to_deployment,
                      ro->to_pid);
    wd_deploy_stop(d, why);
}


/* POST /v1/rollout {to, pid, permille, listeners: {name: addr}}: split. */
static void post_split(struct wd_deploy *d, struct wd_control_exchange *x, const cJSON *b)
{
    struct wd_rollout *ro = ro_of(d);
    const char *to = wd_json_str(b, "to");
    int64_t pid = wd_json_i64_or(b, "pid", 0), pm = wd_json_i64_or(b, "permille", -1);
    const cJSON *ls = wd_json_obj(b, "listeners");
    if (to == NULL || pid <= 0 || pm < 0 || pm > 1000 || ls == NULL)
        return wd_operate_respond_error(x, 400, "want {to, pid, permille 0..1000, listeners}");
    if (d->stopping)
        return wd_operate_respond_error(x, 409, "%s is stopping", d->app);
    if (ro && ro->role == TO)
        return wd_operate_respond_error(x, 409, "deployment %.8s is itself being rolled out", d->deployment_id);
    if (ro && (ro->handed || strcmp(ro->to_deployment, to) != 0))
        return wd_operate_respond_error(x, 409, "a rollout to deployment %.8s is under way",
                           ro->to_deployment);
    if (ro == NULL) {
        int pfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
        if (pfd < 0 && errno == ESRCH)
            return wd_operate_respond_error(x, 409, "process %lld is gone", (long long)pid);
        ro = xzalloc(sizeof *ro);
        ro->d = d;
        ro->role = FROM;
        ro->to_deployment = xstrdup(to);
        ro->to_pid = (long)pid;
        ro->pidfd = pfd;
        if (pfd >= 0)
            ro->pidw = wd_watch_add(d->loop, pfd, WD_EV_IN, on_to_gone, d);
        else /* no pidfd (Linux < 5.3, a seccomp filter): look every half second */
            ro->pid_timer = wd_timer_add(d->loop, PID_POLL_MS, pid_poll, d);
        d->ro = ro;
        wd_deploy_event(d, "info", "rollout: deployment %.8s (deployer pid %lld) takes over",
                        to, (long long)pid);
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, ls)
    {
        struct wd_listener *l = listener_named(d, it->string);
        if (l && cJSON_IsString(it) &&
            wd_proxy_set_split(l->proxy, it->valuestring, (unsigned)pm) < 0)
            return wd_operate_respond_error(x, 400, "listener %s: bad address", it->string);
    }
    if (ro->from_permille != (unsigned)pm)
        wd_deploy_event(d, "info", "rollout: deployment %.8s takes %lld %% of new connections",
                        to, (long long)pm / 10);
    ro->from_permille = (unsigned)pm;
    int64_t lease = wd_json_i64_or(b, "lease_ms", LEASE_MIN_MS);
    wd_timer_cancel(ro->lease_timer);
    ro->lease_timer = wd_timer_add(d->loop, lease < 1000 ? 1000 : lease > 600000 ? 600000 : lease,
                                   lease_expired, d);
    cJSON *j = wd_json_new_object();
    uint64_t sent = 0, failed = 0;
    for (size_t i = 0; i < d->nlisteners; i++) {
        uint64_t s, f;
        wd_proxy_split_stats(d->listeners[i].proxy, &s, &f);
        sent += s;
        failed += f;
    }
    wd_json_add_i64(j, "sent", (int64_t)sent);
    wd_json_add_i64(j, "refused", (int64_t)failed);
    wd_operate_respond_json(x, 200, j);
}

static void post_cancel(struct wd_deploy *d, struct wd_control_exchange *x, const cJSON *b)
{
    struct wd_rollout *ro = ro_of(d);
    if (ro == NULL || ro->role != FROM)
        return wd_operate_respond_json(x, 200, wd_json_new_object()); /* nothing to cancel */
    if (ro->handed)
        return wd_operate_respond_error(x, 409, "the listeners went to deployment %.8s already",
                           ro->to_deployment);
    const char *to = wd_json_str(b, "to");
    if (to && strcmp(to, ro->to_deployment) != 0)
        return wd_operate_respond_error(x, 409, "the rollout under way is to deployment %.8s",
                           ro->to_deployment);
    const char *why = wd_json_str(b, "reason");
    autofree char *clean = xstrndup(why && *why ? why : "cancelled", 300);
    for (char *p = clean; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = ' ';
    wd_deploy_event(d, "info",
                    "rollout to deployment %.8s cancelled (%s); deployment %.8s serves every "
                    "new connection again",
                    ro->to_deployment, clean, d->deployment_id);
    from_free(d);
    wd_operate_respond_json(x, 200, wd_json_new_object());
}

/* POST /v1/rollout/handover {to, pid, listeners: [names]}: copies of our listening sockets go
 * with the answer; we keep accepting on them until the commit. */
static void post_handover(struct wd_deploy *d, struct wd_control_exchange *x, const cJSON *b)
{
    struct wd_rollout *ro = ro_of(d);
    const char *to = wd_json_str(b, "to");
    if (ro == NULL || ro->role != FROM || to == NULL || strcmp(to, ro->to_deployment) != 0)
        return wd_operate_respond_error(x, 409, "no rollout to that deployment is under way");
    if (ro->handed)
        return wd_operate_respond_error(x, 409, "handed over already");
    if (d->stopping)
        return wd_operate_respond_error(x, 409, "%s is stopping", d->app);
    int fds[WD_CONTROL_MAX_FDS];
    size_t n = 0;
    cJSON *j = wd_json_new_object();
    cJSON *names = wd_json_add_array(j, "listeners");
    const cJSON *it;
    cJSON_ArrayForEach(it, wd_json_arr(b, "listeners"))
    {
        struct wd_listener *l = cJSON_IsString(it) ? listener_named(d, it->valuestring) : NULL;
        if (l == NULL || n >= WD_CONTROL_MAX_FDS)
            continue;
        int fd = wd_proxy_listener_fd(l->proxy);
        if (fd < 0)
            continue;
        fds[n++] = fd; /* ours still: respond_fds sends copies */
        wd_json_arr_add_str(names, l->name);
    }
    autofree char *t = wd_json_print(j);
    cJSON_Delete(j);
    if (wd_control_respond_fds(x, 200, NULL, t, strlen(t), fds, n) < 0)
        return; /* answered 500: nothing was offered */
    ro->offered = true;
    wd_deploy_event(d, "info",
                    "rollout: listening sockets offered to deployment %.8s (deployer pid %ld)",
                    ro->to_deployment, ro->to_pid);
}

/* POST /v1/rollout/commit {to}: the new deployer accepts on the sockets: we stop, drain, go. */
static void post_commit(struct wd_deploy *d, struct wd_control_exchange *x, const cJSON *b)
{
    struct wd_rollout *ro = ro_of(d);
    const char *to = wd_json_str(b, "to");
    if (ro == NULL || ro->role != FROM || !ro->offered || to == NULL ||
        strcmp(to, ro->to_deployment) != 0)
        return wd_operate_respond_error(x, 409, "no handover to that deployment is under way");
    if (ro->handed)
        return wd_operate_respond_json(x, 200, wd_json_new_object());
    for (size_t i = 0; i < d->nlisteners; i++) /* this version accepts no more */
        wd_proxy_close_listeners(d->listeners[i].proxy);
    ro->handed = true;
    wd_timer_cancel(ro->lease_timer);
    ro->lease_timer = NULL;
    wd_operate_respond_json(x, 200, wd_json_new_object());
    ro->drain_until = wd_now_ms() + d->cfg->drain_ms;
    size_t open = open_conns(d);
    wd_deploy_event(d, "info",
                    "rollout: listeners handed to deployment %.8s (deployer pid %ld); %zu open "
                    "connection%s may finish for %lld ms ([docker] drain)",
                    ro->to_deployment, ro->to_pid, open, open == 1 ? "" : "s",
                    (long long)d->cfg->drain_ms);
    ro->drain_timer = wd_timer_add(d->loop, DRAIN_POLL_MS, drain_tick, d);
}

static void post_abort(struct wd_deploy *d, struct wd_control_exchange *x)
{
    struct wd_rollout *ro = ro_of(d);
    if (ro == NULL || ro->role != TO || ro->state == DONE || ro->state == FAILED)
        return wd_operate_respond_error(x, 409, "no rollout of this deployment is under way");
    wd_operate_respond_json(x, 200, wd_json_new_object());
    fail(ro, "aborted ('weaver-docker rollout --abort')");
}

bool wd_rollout_route(struct wd_deploy *d, struct wd_control_exchange *x,
                      const struct wd_control_req *req)
{
    if (strncmp(req->path, "/v1/rollout", 11) != 0 || (req->path[11] && req->path[11] != '/'))
        return false;
    const char *rest = req->path + 11;
    bool post = strcmp(req->method, "POST") == 0;
    if (strcmp(req->method, "GET") == 0 && *rest == 0) {
        cJSON *j = wd_rollout_json(d);
        wd_operate_respond_json(x, 200, j ? j : wd_json_new_object());
        return true;
    }
    if (!post) {
        wd_operate_respond_error(x, 405, "%s %s: use POST", req->method, req->path);
        return true;
    }
    autojson cJSON *b = NULL;
    autoerr struct wd_error *err = NULL;
    if (strcmp(rest, "/abort") != 0 &&
        wd_json_parse(req->body, req->body_len, "rollout", &b, &err) < 0) {
        wd_operate_respond_error(x, 400, "%s", err->msg);
        return true;
    }
    if (*rest == 0)
        post_split(d, x, b);
    else if (strcmp(rest, "/cancel") == 0)
        post_cancel(d, x, b);
    else if (strcmp(rest, "/handover") == 0)
        post_handover(d, x, b);
    else if (strcmp(rest, "/commit") == 0)
        post_commit(d, x, b);
    else if (strcmp(rest, "/abort") == 0)
        post_abort(d, x);
    else
        wd_operate_respond_error(x, 404, "no route %s %s", req->method, req->path);
    return true;
}

cJSON *wd_rollout_json(struct wd_deploy *d)
{
    struct wd_rollout *ro = ro_of(d);
    if (ro == NULL)
        return NULL;
    cJSON *j = wd_json_new_object();
    if (ro->role == TO) {
        wd_json_add_str(j, "role", "new");
        wd_json_add_str(j, "state", state_names[ro->state]);
        wd_json_add_str(j, "from", ro->from_deployment);
        wd_json_add_i64(j, "from_pid", ro->from_pid);
        wd_json_add_i64(j, "permille", ro->state == DONE ? 1000 : ro->permille);
        if (ro->fail_reason)
            wd_json_add_str(j, "error", ro->fail_reason);
        if (ro->done_ms)
            wd_json_add_i64(j, "took_ms", ro->done_ms - ro->t0_ms);
    } else {
        wd_json_add_str(j, "role", "old");
        wd_json_add_str(j, "state", ro->handed              ? "draining"
                                    : ro->offered            ? "handing over"
                                    : ro->from_permille == 0 ? "starting"
                                                             : "shifting");
        wd_json_add_str(j, "to", ro->to_deployment);
        wd_json_add_i64(j, "to_pid", ro->to_pid);
        wd_json_add_i64(j, "permille", ro->handed ? 1000 : ro->from_permille);
        wd_json_add_i64(j, "open_connections", (int64_t)open_conns(d));
    }
    return j;
}

void wd_rollout_free(struct wd_deploy *d)
{
    struct wd_rollout *ro = ro_of(d);
    if (ro == NULL)
        return;
    if (ro->role == FROM)
        return from_free(d);
    if (ro->tail)
        show_tail(ro);
    to_free(d);
}

static void to_free(struct wd_deploy *d)
{
    struct wd_rollout *ro = ro_of(d);
    wd_timer_cancel(ro->timeout);
    wd_timer_cancel(ro->settle_timer);
    free(ro->fail_msg);
    wd_timer_cancel(ro->step_timer);
    probes_free(ro);
    free(ro->probe_fail);
    free(ro->last_fail);
    free(ro->from_control);
    free(ro->from_deployment);
    free(ro->from_listeners);
    free(ro->fail_reason);
    free(ro->public_tmp);
    free(ro);
    d->ro = NULL;
}
