/* engine/deploy/deploy_log.c - the deployment's log path and traces (engine/deploy/deploy.c
 * hands them over through deploy_internal.h): weavelets' log batches, their output lines and our
 * own events go to the log file and the terminal by way of the log thread; trace spans go to
 * the --traces file and the control API's recent traces. */
#include "engine/base/log.h"
#include "engine/base/termout.h"
#include "engine/base/worker.h"
#include "engine/deploy/deploy.h"
#include "engine/deploy/deploy_internal.h"
#include "engine/deploy/operate.h"

/* protobuf-c's INIT macros cast away const and its messages hold `char *`: we hand it borrowed
 * strings for packing only. */
#pragma GCC diagnostic ignored "-Wcast-qual"
#include "runtime.pb-c.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* ---------- the log path (issue 16) ----------
 * The loop only copies a weavelet's LogEntryBatch into a job; the log worker decodes it, appends
 * it to the log file, formats it and hands it to the terminal writer (which never blocks). The
 * weavelet gets its answer once the batch is written, so a weavelet that floods logs waits for
 * the disk, not for the loop, and routing, health, activations and listener traffic keep their
 * latency (while the thread keeps up, under LOG_EAGER_BYTES waiting, the answer goes at once,
 * so writing overlaps the weavelet's next batch). Output lines of weavelets and our own events
 * take the same path, so the log file
 * keeps one order. Everything the worker touches (logstore, logfmt, plainfmt) is its own while
 * it runs; what it learns for the loop (a component that failed to construct) comes back in the
 * job, to its done function. */
#define LOG_QUEUE_BYTES (64u << 20)
#define LOG_EAGER_BYTES (4u << 20) /* below this much waiting, a batch is answered at once */
#define LOG_WORKER_NICE 5

struct logjob {
    struct logjob *prev, *next; /* d->logjobs: submitted, done not yet run */
    struct wd_deploy *d;
    struct wd_replica *r;       /* whose batch (NULL: ours, or the replica is gone) */
    struct wd_conn *c;          /* answer the LogBatch here when written (NULL: no answer) */
    uint64_t id;
    enum wd_rpc_method m;
    uint8_t *pb;                /* a packed LogEntryBatch */
    size_t len;
    bool announced_ready;       /* the loop's view when submitted */
    bool quiet;                 /* to the log file only: the terminal has it already */
    char *broken_comp, *broken_why; /* set by the worker: "Failed to construct" seen */
};

/* Append an entry to the deployment's log file (opened on first use, so a failed start
 * leaves no empty file behind). Worker thread. */
static void store_entry(struct wd_deploy *d, const struct wd_log_entry *le)
{
    if (d->logstore == NULL && d->opts.log_path && !d->logstore_failed) {
        /* no symlink followed: the directory is ours (wd_state_dir), the file must be too */
        int fd = open(d->opts.log_path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
                      0600);
        d->logstore = fd >= 0 ? fdopen(fd, "a") : NULL;
        if (fd >= 0 && d->logstore == NULL)
            close(fd);
        if (d->logstore)
            setvbuf(d->logstore, NULL, _IOFBF, 64 << 10);
        if (d->logstore == NULL) {
            d->logstore_failed = true;
            wd_warn("cannot write logs to %s: %s", d->opts.log_path, strerror(errno));
            return;
        }
    }
    if (d->logstore == NULL)
        return;
    struct wd_buf b = {0};
    wd_logfmt_json(le, &b);
    wd_buf_append(&b, "\n", 1);
    fwrite(b.data, 1, b.len, d->logstore);
    wd_buf_free(&b);
}

static const char *entry_attr(const Runtime__LogEntry *e, const char *key)
{
    for (size_t i = 0; i + 1 < e->n_attrs; i += 2)
        if (strcmp(e->attrs[i], key) == 0)
            return e->attrs[i + 1];
    return NULL;
}

/* One entry: to the log file, and (unless it is weaver's own chatter) formatted into @term.
 * Worker thread. */
static void log_entry(struct logjob *j, const Runtime__LogEntry *e, struct wd_buf *term)
{
    struct wd_deploy *d = j->d;
    struct wd_log_entry le = {
        .app = e->app,
        .version = e->version,
        .component = e->component,
        .node = e->node,
        .time_micros = e->time_micros,
        .level = e->level,
        .file = e->file,
        .line = e->line,
        .msg = e->msg,
        .attrs = (const char *const *)e->attrs,
        .nattrs = e->n_attrs,
    };
    store_entry(d, &le);
    /* weaver's own entries are hidden unless asked for, except errors: a component that fails
     * to construct (e.g. a typo in its config section) says so only there */
    bool is_error = e->level && strcasecmp(e->level, "error") == 0;
    if (is_error && j->r && j->broken_comp == NULL && e->msg &&
        strncmp(e->msg, "Failed to construct", 19) == 0) {
        const char *comp = entry_attr(e, "component");
        j->broken_comp = xstrdup(comp ? comp : "a component");
        const char *why = entry_attr(e, "err");
        j->broken_why = xstrdup(why ? why : e->msg);
    }
    if (j->quiet || (!d->opts.show_system && wd_log_entry_is_system(&le) && !is_error))
        return;
    if (is_error && !j->announced_ready && d->opts.ready_fd >= 0) {
        /* `up -d` is still waiting: let it show the user why the app is not ready */
        struct wd_buf m = {0};
        wd_buf_printf(&m, "log ");
        wd_logfmt_format(d->plainfmt, &le, &m);
        wd_buf_append(&m, "\n", 1);
        (void)!write(d->opts.ready_fd, m.data, m.len);
        wd_buf_free(&m);
    }
    wd_logfmt_format(d->logfmt, &le, term);
    wd_buf_append(term, "\n", 1);
}

/* Worker thread: the whole batch, then one flush and one write to the terminal. */
static void log_work(void *arg)
{
    struct logjob *j = arg;
    struct wd_deploy *d = j->d;
    Runtime__LogEntryBatch *b = runtime__log_entry_batch__unpack(NULL, j->len, j->pb);
    struct wd_buf term = {0};
    for (size_t i = 0; b && i < b->n_entries; i++)
        log_entry(j, b->entries[i], &term);
    if (d->logstore)
        fflush(d->logstore);
    if (term.len)
        wd_termout_write(d->tout, (const char *)term.data, term.len);
    wd_buf_free(&term);
    if (b)
        runtime__log_entry_batch__free_unpacked(b, NULL);
}

/* Loop thread: answer the weavelet, act on what the worker saw, free the job. */
static void log_done(void *arg)
{
    struct logjob *j = arg;
    struct wd_deploy *d = j->d;
    if (j->prev)
        j->prev->next = j->next;
    else
        d->logjobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    if (j->c)
        wd_conn_reply(j->c, j->id, j->m, NULL, 0, NULL);
    if (j->r && j->broken_comp)
        wd_replica_construct_failed(j->r, j->broken_comp, j->broken_why);
    free(j->broken_comp);
    free(j->broken_why);
    free(j->pb);
    free(j);
}

/* Hand @pb (taken) to the log worker; @c/@id/@m: the LogBatch call to answer once written. */
static void log_submit(struct wd_deploy *d, struct wd_replica *r, uint8_t *pb, size_t len,
                       struct wd_conn *c, uint64_t id, enum wd_rpc_method m, bool quiet)
{
    struct logjob *j = xzalloc(sizeof *j);
    j->quiet = quiet;
    j->d = d;
    j->r = r;
    j->c = c;
    j->id = id;
    j->m = m;
    j->pb = pb;
    j->len = len;
    j->announced_ready = d->announced_ready;
    j->next = d->logjobs;
    if (d->logjobs)
        d->logjobs->prev = j;
    d->logjobs = j;
    if (d->logworker) {
        /* while the thread keeps up, answer at once: the weavelet's next batch then overlaps
         * the writing of this one; once it falls behind, the answer waits for the write */
        if (c && wd_worker_pending(d->logworker) < LOG_EAGER_BYTES) {
            wd_conn_reply(c, id, m, NULL, 0, NULL);
            j->c = NULL;
        }
        wd_worker_submit(d->logworker, log_work, log_done, j, len + sizeof *j);
    } else { /* before the worker starts or after it ended: nothing else writes now */
        log_work(j);
        log_done(j);
    }
}

/* A replica or its connection is going: the jobs still in flight must not touch them. */
void wd_deploy_log_forget(struct wd_deploy *d, struct wd_replica *r, struct wd_conn *c)
{
    for (struct logjob *j = d->logjobs; j; j = j->next) {
        if (r && j->r == r)
            j->r = NULL, j->c = NULL;
        if (c && j->c == c)
            j->c = NULL;
    }
}

/* One entry of ours or a weavelet's output line, packed as a batch of one. */
void wd_deploy_log_entry(struct wd_deploy *d, const Runtime__LogEntry *e, bool quiet)
{
    Runtime__LogEntryBatch b = RUNTIME__LOG_ENTRY_BATCH__INIT;
    Runtime__LogEntry *es[1] = {(Runtime__LogEntry *)e};
    b.n_entries = 1;
    b.entries = es;
    size_t len = 0;
    uint8_t *pb = wd_deploy_pack(&b.base, &len);
    log_submit(d, NULL, pb, len, NULL, 0, 0, quiet);
}

/* Our own events (a replica died, restarts) go to the log store too, as weaver multi does,
 * with component "deployer". */
void wd_deploy_event(struct wd_deploy *d, const char *level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    wd_termout_printf(d->terr, "weaver-docker: %s\n", msg);
    if (!d->announced_ready && d->opts.ready_fd >= 0 && strcmp(level, "info") != 0) {
        /* `up -d` is still waiting: our warnings (a host port nothing answers on, a component
         * that failed to construct) are often the reason the app is not ready */
        autofree char *line = xasprintf("log weaver-docker: %s\n", msg);
        (void)!write(d->opts.ready_fd, line, strlen(line));
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    Runtime__LogEntry e = RUNTIME__LOG_ENTRY__INIT;
    e.app = d->app;
    e.version = d->deployment_id;
    e.component = (char *)"deployer";
    e.node = (char *)"";
    e.time_micros = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    e.level = (char *)level;
    e.file = (char *)"";
    e.line = -1;
    e.msg = msg;
    if (d->opts.log_path) /* nothing else to do with it: stderr has it already */
        wd_deploy_log_entry(d, &e, true);
    free(msg);
}

void wd_deploy_trace_spans(struct wd_deploy *d, struct wd_replica *r, const uint8_t *pb,
                           size_t len)
{
    Runtime__TraceSpans *ts = runtime__trace_spans__unpack(NULL, len, pb);
    if (ts == NULL)
        return;
    d->nspans += ts->n_span;
    wd_operate_spans(d, r, ts->span, ts->n_span);
    for (size_t i = 0; d->traces && i < ts->n_span; i++) {
        const Runtime__Span *s = ts->span[i];
        char tid[33] = "", sid[17] = "", pid[17] = "";
        if (s->trace_id.len == 16)
            wd_hex(s->trace_id.data, 16, tid);
        if (s->span_id.len == 8)
            wd_hex(s->span_id.data, 8, sid);
        if (s->parent_span_id.len == 8)
            wd_hex(s->parent_span_id.data, 8, pid);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", s->name ? s->name : "");
        cJSON_AddStringToObject(o, "trace_id", tid);
        cJSON_AddStringToObject(o, "span_id", sid);
        cJSON_AddStringToObject(o, "parent_span_id", pid);
        cJSON_AddNumberToObject(o, "kind", (double)s->kind);
        /* µs since the epoch stay below 2^53: exact as doubles */
        cJSON_AddNumberToObject(o, "start_micros", (double)s->start_micros);
        cJSON_AddNumberToObject(o, "end_micros", (double)s->end_micros);
        char *line = cJSON_PrintUnformatted(o);
        fprintf(d->traces, "%s\n", line);
        free(line);
        cJSON_Delete(o);
    }
    if (d->traces)
        fflush(d->traces);
    runtime__trace_spans__free_unpacked(ts, NULL);
}

void wd_deploy_log_batch(struct wd_deploy *d, struct wd_replica *r, const uint8_t *pb, size_t len,
                         struct wd_conn *c, uint64_t id, enum wd_rpc_method m)
{
    log_submit(d, r, memcpy(xmalloc(len ? len : 1), pb, len), len, c, id, m, false);
}

struct wd_worker *wd_deploy_log_worker_new(struct wd_deploy *d)
{
    return wd_worker_new(d->loop, LOG_QUEUE_BYTES, LOG_WORKER_NICE);
}
