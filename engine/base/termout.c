/* engine/base/termout.c - see termout.h. */
#include "engine/base/termout.h"
#include "engine/base/util.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct chunk {
    struct chunk *next;
    size_t len, lines;
    char data[];
};

struct wd_termout {
    int fd;
    size_t max;
    char *marker;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t more;    /* something to write, or closing */
    pthread_cond_t drained; /* the queue ran empty and nothing is being written */
    struct chunk *head, *tail;
    size_t bytes;
    size_t dropped_pending; /* dropped since the last marker */
    size_t dropped_total;
    bool writing, closing, broken;
    bool orphan; /* closed while stuck: the writer frees it all when it ends */
};

static void free_all(struct wd_termout *t)
{
    while (t->head) {
        struct chunk *c = t->head;
        t->head = c->next;
        free(c);
    }
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->more);
    pthread_cond_destroy(&t->drained);
    free(t->marker);
    free(t);
}

static size_t count_lines(const char *p, size_t len)
{
    size_t n = 0;
    for (const char *e = p + len; (p = memchr(p, '\n', (size_t)(e - p))) != NULL; p++)
        n++;
    return n ? n : 1;
}

/* Blocking write of everything; false once the reader is gone (EPIPE and the like). */
static bool write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) { /* someone set O_NONBLOCK */
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            (void)poll(&pf, 1, -1);
            continue;
        }
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static void *writer_main(void *arg)
{
    struct wd_termout *t = arg;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (!t->head && !t->dropped_pending && !t->closing)
            pthread_cond_wait(&t->more, &t->mu);
        if (t->dropped_pending && !t->broken) {
            /* the dropped lines were older than anything still queued: the marker first */
            char line[512];
            snprintf(line, sizeof line, "\u2026 %zu line%s not shown%s%s%s", t->dropped_pending,
                     t->dropped_pending == 1 ? "" : "s", *t->marker ? " (" : "", t->marker,
                     *t->marker ? ")" : "");
            size_t l = strlen(line);
            if (l + 1 < sizeof line)
                line[l++] = '\n';
            t->dropped_pending = 0;
            t->writing = true;
            pthread_mutex_unlock(&t->mu);
            bool ok = write_all(t->fd, line, l);
            pthread_mutex_lock(&t->mu);
            t->writing = false;
            t->broken = t->broken || !ok;
            continue;
        }
        if (t->head) {
            /* everything queued, in one go: a few large writes, not one per line */
            struct chunk *batch = t->head;
            t->head = t->tail = NULL;
            t->bytes = 0;
            t->writing = true;
            bool ok = !t->broken;
            pthread_mutex_unlock(&t->mu);
            struct wd_buf b = {0};
            while (batch) {
                struct chunk *c = batch;
                batch = c->next;
                if (ok)
                    wd_buf_append(&b, c->data, c->len);
                free(c);
                if (ok && (b.len >= (64u << 10) || batch == NULL)) {
                    ok = write_all(t->fd, (const char *)b.data, b.len);
                    b.len = 0;
                }
            }
            wd_buf_free(&b);
            pthread_mutex_lock(&t->mu);
            t->writing = false;
            t->broken = t->broken || !ok;
            if (t->head == NULL)
                pthread_cond_broadcast(&t->drained);
            continue;
        }
        t->dropped_pending = 0; /* broken: nothing more is shown */
        if (t->closing)
            break;
    }
    pthread_cond_broadcast(&t->drained);
    bool orphan = t->orphan;
    pthread_mutex_unlock(&t->mu);
    if (orphan)
        free_all(t);
    return NULL;
}

struct wd_termout *wd_termout_new(int fd, size_t max_bytes, const char *hint)
{
    struct wd_termout *t = xzalloc(sizeof *t);
    t->fd = fd;
    t->max = max_bytes ? max_bytes : 1;
    t->marker = xstrdup(hint);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->more, NULL);
    pthread_cond_init(&t->drained, NULL);
    /* the writer must not take the deployer's signals (they are read from a signalfd) */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int r = pthread_create(&t->thread, NULL, writer_main, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0) {
        fprintf(stderr, "weaver-docker: cannot start the output thread: %s\n", strerror(r));
        abort();
    }
    return t;
}

void wd_termout_write(struct wd_termout *t, const char *data, size_t len)
{
    if (len == 0)
        return;
    size_t lines = count_lines(data, len);
    pthread_mutex_lock(&t->mu);
    if (t->broken || t->closing) {
        pthread_mutex_unlock(&t->mu);
        return;
    }
    /* full: the oldest lines go (the reader sees the newest once it catches up) */
    while (t->head && t->bytes + len > t->max) {
        struct chunk *c = t->head;
        t->head = c->next;
        if (t->head == NULL)
            t->tail = NULL;
        t->bytes -= c->len;
        t->dropped_pending += c->lines;
        t->dropped_total += c->lines;
        free(c);
    }
    if (len > t->max) {
        t->dropped_pending += lines;
        t->dropped_total += lines;
    } else {
        struct chunk *c = xmalloc(sizeof *c + len);
        c->next = NULL;
        c->len = len;
        c->lines = lines;
        memcpy(c->data, data, len);
        if (t->tail)
            t->tail->next = c;
        else
            t->head = c;
        t->tail = c;
        t->bytes += len;
    }
    if (!t->writing) /* a writer busy writing takes the whole queue when it comes back */
        pthread_cond_signal(&t->more);
    pthread_mutex_unlock(&t->mu);
}

void wd_termout_printf(struct wd_termout *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap);
    va_end(ap);
    wd_termout_write(t, s, strlen(s));
    free(s);
}

size_t wd_termout_dropped(struct wd_termout *t)
{
    pthread_mutex_lock(&t->mu);
    size_t n = t->dropped_total;
    pthread_mutex_unlock(&t->mu);
    return n;
}

void wd_termout_close(struct wd_termout *t, int wait_ms)
{
    if (t == NULL)
        return;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += wait_ms / 1000;
    dl.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&t->mu);
    t->closing = true;
    pthread_cond_signal(&t->more);
    int r = 0;
    while ((t->head || t->writing || t->dropped_pending) && !t->broken && r != ETIMEDOUT)
        r = pthread_cond_timedwait(&t->drained, &t->mu, &dl);
    bool stuck = (t->head || t->writing || t->dropped_pending) && !t->broken;
    if (stuck) { /* its reader does not read: whatever is queued is dropped, the writer left */
        t->broken = true;
        t->orphan = true;
        pthread_detach(t->thread);
    }
    pthread_mutex_unlock(&t->mu);
    if (stuck)
        return;
    pthread_join(t->thread, NULL);
    free_all(t);
}
