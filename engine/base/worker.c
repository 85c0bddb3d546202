/* A FIFO of jobs served by one thread. The queue is a singly linked list under one mutex: jobs
 * are few and large (a log batch each), so a lock-free ring would buy nothing here. */
#include "engine/base/worker.h"
#include "engine/base/util.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

struct job {
    struct job *next;
    wd_work_fn work;
    wd_done_fn done;
    void *arg;
    size_t bytes;
};

struct wd_worker {
    struct wd_loop *loop;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t more;  /* a job was queued, or stop */
    pthread_cond_t room;  /* the queue shrank */
    struct job *head, *tail;
    size_t bytes, max_bytes;
    int nice_incr;
    bool stop;
};

static void *serve(void *arg)
{
    struct wd_worker *w = arg;
    if (w->nice_incr) /* per thread on Linux: the tid is a PRIO_PROCESS id */
        (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), w->nice_incr);
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->head == NULL && !w->stop)
            pthread_cond_wait(&w->more, &w->mu);
        struct job *j = w->head;
        if (j == NULL) /* stopping, and everything queued is done */
            break;
        pthread_mutex_unlock(&w->mu);
        j->work(j->arg);
        if (j->done)
            wd_loop_post(w->loop, j->done, j->arg);
        pthread_mutex_lock(&w->mu);
        w->head = j->next; /* dequeued only now: the byte count covers the running job too */
        if (w->head == NULL)
            w->tail = NULL;
        w->bytes -= j->bytes;
        pthread_cond_broadcast(&w->room);
        free(j);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

struct wd_worker *wd_worker_new(struct wd_loop *l, size_t max_bytes, int nice_incr)
{
    struct wd_worker *w = xzalloc(sizeof *w);
    w->loop = l;
    w->max_bytes = max_bytes;
    w->nice_incr = nice_incr;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->more, NULL);
    pthread_cond_init(&w->room, NULL);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the new thread inherits the mask */
    int rc = pthread_create(&w->thread, NULL, serve, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&w->room);
        pthread_cond_destroy(&w->more);
        pthread_mutex_destroy(&w->mu);
        free(w);
        errno = rc;
        return NULL;
    }
    return w;
}

void wd_worker_submit(struct wd_worker *w, wd_work_fn work, wd_done_fn done, void *arg,
                      size_t bytes)
{
    struct job *j = xzalloc(sizeof *j);
    j->work = work;
    j->done = done;
    j->arg = arg;
    j->bytes = bytes;
    pthread_mutex_lock(&w->mu);
    /* a job larger than the whole bound still goes in once the queue is empty */
    while (w->head && w->bytes + bytes > w->max_bytes)
        pthread_cond_wait(&w->room, &w->mu);
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    w->bytes += bytes;
    pthread_cond_signal(&w->more);
    pthread_mutex_unlock(&w->mu);
}

size_t wd_worker_pending(struct wd_worker *w)
{
    pthread_mutex_lock(&w->mu);
    size_t n = w->bytes;
    pthread_mutex_unlock(&w->mu);
    return n;
}

void wd_worker_free(struct wd_worker *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->more);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->room);
    pthread_cond_destroy(&w->more);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
