/* engine/docker/docker_stream.c - the engine's long-lived streams: container output (logs, attach)
 * and the event follower, which outlives engine restarts (docs/docker-engine.md §5.6, §7). */
#include "engine/docker/docker.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "engine/docker/docker_internal.h"
#include "engine/docker/http.h"
#include "engine/docker/json.h"
#include "engine/base/log.h"
#include "engine/base/util.h"

/* ---- container output ---- */

struct demux_sink {
    struct wd_demux m;
    wd_docker_output_fn cb;
    void *arg;
    struct wd_error *err;
};

static int demux_sink_fn(void *arg, const uint8_t *p, size_t n)
{
    struct demux_sink *s = arg;
    return wd_demux_feed(&s->m, p, n, s->cb, s->arg, &s->err);
}

static int resolve_tty(struct wd_docker *d, const char *id, int tty, bool *out,
                       struct wd_error **err)
{
    if (tty >= 0) {
        *out = tty > 0;
        return 0;
    }
    struct wd_container_info ci = {0};
    int rc = wd_docker_container_inspect(d, id, NULL, &ci, err);
    if (rc < 0)
        return rc;
    *out = ci.tty;
    wd_container_info_free(&ci);
    return 0;
}

static int stream_output(struct wd_docker *d, const char *method, const char *path, bool tty,
                         wd_docker_output_fn cb, void *arg, const char *what, struct wd_error **err)
{
    struct demux_sink s = {.m = {.tty = tty}, .cb = cb, .arg = arg};
    struct wd_docker_call c = {
        .method = method, .path = path, .sink = demux_sink_fn, .sink_arg = &s, .sink_err = &s.err};
    autoresponse struct wd_http_response rs = {0};
    int rc = wd_docker_call(d, &c, &rs, what, err);
    if (rc == 0 && wd_demux_end(&s.m, err) < 0)
        rc = wd_err_wrap(err, "%s", what);
    wd_demux_free(&s.m);
    wd_err_free(&s.err);
    return rc;
}

int wd_docker_container_logs(struct wd_docker *d, const char *id, const struct wd_logs_opts *o,
                             wd_docker_output_fn cb, void *arg, struct wd_error **err)
{
    autofree char *what = xasprintf("logs of container %s", id ? id : "");
    if (wd_docker_check_ref("container", id, err) < 0)
        return -(*err)->errnum;
    struct wd_logs_opts def = {.tty = -1};
    if (o == NULL)
        o = &def;
    bool tty;
    if (resolve_tty(d, id, o->tty, &tty, err) < 0)
        return wd_err_wrap(err, "%s", what);
    char tail[24] = "all";
    if (o->tail > 0)
        snprintf(tail, sizeof tail, "%d", o->tail);
    autofree char *path = xasprintf(
        "/containers/%s/logs?stdout=%d&stderr=%d&follow=%d&timestamps=%d&since=%" PRId64 "&tail=%s",
        id, o->no_stdout ? 0 : 1, o->no_stderr ? 0 : 1, o->follow ? 1 : 0, o->timestamps ? 1 : 0,
        o->since, tail);
    return stream_output(d, "GET", path, tty, cb, arg, what, err);
}

int wd_docker_container_attach(struct wd_docker *d, const char *id, bool logs, int tty,
                               wd_docker_output_fn cb, void *arg, struct wd_error **err)
{
    autofree char *what = xasprintf("attach to container %s", id ? id : "");
    if (wd_docker_check_ref("container", id, err) < 0)
        return -(*err)->errnum;
    bool t;
    if (resolve_tty(d, id, tty, &t, err) < 0)
        return wd_err_wrap(err, "%s", what);
    /* no Upgrade headers: the 200 body is read until EOF (docker-engine.md §5.6) */
    autofree char *path =
        xasprintf("/containers/%s/attach?stream=1&stdout=1&stderr=1&logs=%d", id, logs ? 1 : 0);
    return stream_output(d, "POST", path, t, cb, arg, what, err);
}

/* ---- events ---- */

#define EVENTS_BACKOFF_MIN_MS 100
#define EVENTS_BACKOFF_MAX_MS 5000

struct wd_docker_events {
    struct wd_docker *d;
    pthread_t thr;
    atomic_int stop;
    char *path;
    unsigned mask;
    wd_docker_event_fn cb;
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* ready changes; stop during a backoff */
    int ready;         /* 0 waiting for the first answer, 1 streaming, -1 the first try failed */
    int rc;            /* the first try's failure */
    struct wd_error *err;
    bool streaming; /* this try got its headers */
    bool lost;      /* a stream ended: the next one that is accepted delivers WD_EV_BACK */
    struct wd_lines lines;
    struct wd_error *sink_err;
};

static void deliver_state(struct wd_docker_events *ev, enum wd_event_action a, const char *text,
                          const char *detail)
{
    struct wd_docker_event e = {
        .action = a, .action_text = text, .type = "", .exit_code = -1, .detail = detail};
    ev->cb(ev->arg, &e);
}

static void events_headers(void *arg, long status)
{
    struct wd_docker_events *ev = arg;
    if (status >= 300)
        return;
    pthread_mutex_lock(&ev->mu);
    ev->streaming = true;
    bool back = ev->lost;
    ev->lost = false;
    if (ev->ready == 0) {
        ev->ready = 1;
        pthread_cond_broadcast(&ev->cv);
    }
    pthread_mutex_unlock(&ev->mu);
    /* before any event of the new stream: the consumer reconciles from here on */
    if (back)
        deliver_state(ev, WD_EV_BACK, "back", "");
}

static int events_line(void *arg, const char *line, size_t len)
{
    struct wd_docker_events *ev = arg;
    autojson cJSON *doc = cJSON_ParseWithLength(line, len);
    if (doc == NULL) {
        wd_warn("events: skipping a line that is not JSON");
        return 0;
    }
    struct wd_docker_event e;
    struct wd_label *attrs = NULL;
    autoerr struct wd_error *perr = NULL;
    if (wd_docker_parse_event(doc, &e, &attrs, &perr) < 0) {
        wd_warn("events: %s", perr->msg); /* one odd line does not end the stream */
        return 0;
    }
    if (e.action & ev->mask && (e.type[0] == 0 || strcmp(e.type, "container") == 0))
        ev->cb(ev->arg, &e);
    free(attrs);
    return 0;
}

static int events_sink(void *arg, const uint8_t *p, size_t n)
{
    struct wd_docker_events *ev = arg;
    return wd_lines_feed(&ev->lines, p, n, events_line, ev, &ev->sink_err);
}

/* Sleep @ms unless stopped first; true if stopped. */
static bool backoff_wait(struct wd_docker_events *ev, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&ev->mu);
    while (!atomic_load(&ev->stop))
        if (pthread_cond_timedwait(&ev->cv, &ev->mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&ev->mu);
    return atomic_load(&ev->stop) != 0;
}

/* Follows the stream; when it ends (engine stopped or restarted, socket error, a line over
 * WD_MAX_JSON_LINE) it says so once (WD_EV_LOST) and reconnects with backoff until stopped;
 * events of the gap are lost, so the consumer reconciles on WD_EV_BACK. */
static void *events_main(void *arg)
{
    struct wd_docker_events *ev = arg;
    int64_t backoff = EVENTS_BACKOFF_MIN_MS;
    for (;;) {
        struct wd_docker_call c = {.method = "GET",
                                   .path = ev->path,
                                   .sink = events_sink,
                                   .sink_arg = ev,
                                   .sink_err = &ev->sink_err,
                                   .on_headers = events_headers,
                                   .headers_arg = ev,
                                   .cancel = &ev->stop};
        autoresponse struct wd_http_response rs = {0};
        struct wd_error *e = NULL;
        int rc = wd_docker_call(ev->d, &c, &rs, "follow engine events", &e);
        wd_lines_free(&ev->lines);
        if (atomic_load(&ev->stop)) {
            wd_err_free(&e);
            break;
        }
        if (rc == 0)
            rc = wd_err(&e, ECONNRESET, "follow engine events: the engine closed the stream");
        pthread_mutex_lock(&ev->mu);
        bool first = ev->ready == 0, streamed = ev->streaming, say = !ev->lost;
        ev->streaming = false;
        if (first) {
            ev->rc = rc;
            ev->err = e;
            ev->ready = -1;
            pthread_cond_broadcast(&ev->cv);
        } else {
            ev->lost = true;
        }
        pthread_mutex_unlock(&ev->mu);
        if (first)
            return NULL;
        if (say)
            deliver_state(ev, WD_EV_LOST, "lost", ev->sink_err ? ev->sink_err->msg : e->msg);
        wd_err_free(&e);
        wd_err_free(&ev->sink_err);
        if (streamed)
            backoff = EVENTS_BACKOFF_MIN_MS;
        if (backoff_wait(ev, backoff))
            break;
        backoff = backoff * 2 > EVENTS_BACKOFF_MAX_MS ? EVENTS_BACKOFF_MAX_MS : backoff * 2;
    }
    return NULL;
}

int wd_docker_events_start(struct wd_docker *d, const char *const *labels, size_t nlabels,
                           unsigned mask, wd_docker_event_fn cb, void *arg,
                           struct wd_docker_events **out, struct wd_error **err)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{WD_EV_CREATE, "create"}, {WD_EV_START, "start"},
                 {WD_EV_DIE, "die"},       {WD_EV_HEALTH, "health_status"},
                 {WD_EV_OOM, "oom"},       {WD_EV_KILL, "kill"},
                 {WD_EV_STOP, "stop"},     {WD_EV_DESTROY, "destroy"}};
    const char *evs[WD_ARRAY_LEN(names)];
    size_t nev = 0;
    /* Podman 4.3 does not map event=die (docker-engine.md §7): filter actions here instead */
    if (!wd_docker_is_podman(d) && !(mask & WD_EV_OTHER))
        for (size_t i = 0; i < WD_ARRAY_LEN(names); i++)
            if (mask & names[i].bit)
                evs[nev++] = names[i].name;
    autofree char *f = wd_docker_filters_json(labels, nlabels, "container", evs, nev);
    autofree char *ef = wd_http_escape(f);
    struct wd_docker_events *ev = xzalloc(sizeof *ev);
    ev->d = wd_docker_clone(d);
    ev->path = xasprintf("/events?filters=%s", ef);
    ev->mask = mask;
    ev->cb = cb;
    ev->arg = arg;
    atomic_init(&ev->stop, 0);
    pthread_mutex_init(&ev->mu, NULL);
    pthread_cond_init(&ev->cv, NULL);
    int prc = pthread_create(&ev->thr, NULL, events_main, ev);
    if (prc != 0) {
        wd_docker_free(ev->d);
        free(ev->path);
        free(ev);
        return wd_err_sys(err, prc, "events: start thread");
    }
    pthread_mutex_lock(&ev->mu);
    while (ev->ready == 0)
        pthread_cond_wait(&ev->cv, &ev->mu);
    int ready = ev->ready;
    pthread_mutex_unlock(&ev->mu);
    if (ready < 0) {
        pthread_join(ev->thr, NULL);
        int rc = ev->rc;
        *err = WD_STEAL(ev->err);
        ev->thr = 0;
        (void)wd_docker_events_stop(ev);
        return rc < 0 ? rc : wd_err(err, EIO, "events: stream ended at once");
    }
    *out = ev;
    return 0;
}

void wd_docker_events_stop(struct wd_docker_events *ev)
{
    if (ev == NULL)
        return;
    pthread_mutex_lock(&ev->mu);
    atomic_store(&ev->stop, 1);
    pthread_cond_broadcast(&ev->cv);
    pthread_mutex_unlock(&ev->mu);
    if (ev->thr)
        pthread_join(ev->thr, NULL);
    wd_err_free(&ev->err);
    wd_err_free(&ev->sink_err);
    wd_lines_free(&ev->lines);
    pthread_mutex_destroy(&ev->mu);
    pthread_cond_destroy(&ev->cv);
    wd_docker_free(ev->d);
    free(ev->path);
    free(ev);
}
