#include "engine/base/loop.h"
#include "engine/base/util.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>

struct wd_watch {
    struct wd_loop *loop;
    int fd;
    unsigned events;
    wd_watch_fn fn;
    void *arg;
    bool dead;
    struct wd_watch *next_dead;
    struct wd_timer *resume; /* wd_watch_accept_failed's pause */
    unsigned paused_events;
};

struct wd_timer {
    int64_t due_ms;
    uint64_t seq;
    wd_timer_fn fn;
    void *arg;
    struct wd_timer *next;
};

struct post {
    wd_post_fn fn;
    void *arg;
    struct post *next;
};

struct wd_loop {
    int epfd;
    int sigfd;
    int evfd;
    wd_signal_fn on_signal;
    void *sig_arg;
    bool stop;
    struct wd_timer *timers; /* sorted by due time */
    uint64_t timer_seq;
    struct wd_watch *dead; /* freed after each epoll batch */
    pthread_mutex_t mu;    /* guards posts */
    struct post *posts, **posts_tail;
};

/* Sentinel pointers for the loop's own fds. */
static char sig_tag, ev_tag;

/* RDHUP only with IN: level-triggered, it would fire forever on a half-closed socket whose
 * reader has stopped reading (the proxy, after a client's EOF). */
static uint32_t to_epoll(unsigned ev)
{
    return (ev & WD_EV_IN ? EPOLLIN | EPOLLRDHUP : 0) | (ev & WD_EV_OUT ? EPOLLOUT : 0);
}

int wd_loop_new(const int *sigs, size_t nsigs, wd_signal_fn on_signal, void *arg,
                struct wd_loop **out, struct wd_error **err)
{
    struct wd_loop *l = xzalloc(sizeof *l);
    l->sigfd = l->evfd = -1;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        int e = errno;
        free(l);
        return wd_err_sys(err, e, "epoll_create1");
    }
    pthread_mutex_init(&l->mu, NULL);
    l->posts_tail = &l->posts;
    l->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->evfd < 0) {
        int e = errno;
        wd_loop_free(l);
        return wd_err_sys(err, e, "eventfd");
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &ev_tag};
    epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->evfd, &ev);
    if (nsigs > 0) {
        sigset_t set;
        sigemptyset(&set);
        for (size_t i = 0; i < nsigs; i++)
            sigaddset(&set, sigs[i]);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        l->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
        if (l->sigfd < 0) {
            int e = errno;
            wd_loop_free(l);
            return wd_err_sys(err, e, "signalfd");
        }
        struct epoll_event sev = {.events = EPOLLIN, .data.ptr = &sig_tag};
        epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->sigfd, &sev);
        l->on_signal = on_signal;
        l->sig_arg = arg;
    }
    *out = l;
    return 0;
}

static void reap_dead(struct wd_loop *l)
{
    while (l->dead) {
        struct wd_watch *w = l->dead;
        l->dead = w->next_dead;
        free(w);
    }
}

void wd_loop_free(struct wd_loop *l)
{
    if (l == NULL)
        return;
    reap_dead(l);
    while (l->timers) {
        struct wd_timer *t = l->timers;
        l->timers = t->next;
        free(t);
    }
    while (l->posts) {
        struct post *p = l->posts;
        l->posts = p->next;
        free(p);
    }
    if (l->sigfd >= 0)
        close(l->sigfd);
    if (l->evfd >= 0)
        close(l->evfd);
    close(l->epfd);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

struct wd_watch *wd_watch_add(struct wd_loop *l, int fd, unsigned events, wd_watch_fn fn,
                              void *arg)
{
    struct wd_watch *w = xzalloc(sizeof *w);
    w->loop = l;
    w->fd = fd;
    w->events = events;
    w->fn = fn;
    w->arg = arg;
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = w};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        abort(); /* only fails on a bad fd or ENOMEM: a programming error */
    return w;
}

void wd_watch_set(struct wd_watch *w, unsigned events)
{
    if (w->resume) { /* an explicit setting ends a pause */
        wd_timer_cancel(w->resume);
        w->resume = NULL;
    }
    if (w->dead || w->events == events)
        return;
    w->events = events;
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = w};
    epoll_ctl(w->loop->epfd, EPOLL_CTL_MOD, w->fd, &ev);
}

void wd_watch_free(struct wd_watch *w)
{
    if (w == NULL || w->dead)
        return;
    epoll_ctl(w->loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    wd_timer_cancel(w->resume);
    w->resume = NULL;
    w->dead = true;
    w->next_dead = w->loop->dead;
    w->loop->dead = w;
}

static void watch_resume(struct wd_timer *t, void *arg)
{
    (void)t;
    struct wd_watch *w = arg;
    w->resume = NULL;
    wd_watch_set(w, w->paused_events);
}

bool wd_watch_accept_failed(struct wd_watch *w, int err, int64_t ms)
{
    if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM)
        return false;
    if (w->dead || w->resume)
        return true;
    unsigned ev = w->events;
    wd_watch_set(w, 0);
    w->paused_events = ev;
    w->resume = wd_timer_add(w->loop, ms, watch_resume, w);
    return true;
}

struct wd_timer *wd_timer_add(struct wd_loop *l, int64_t delay_ms, wd_timer_fn fn, void *arg)
{
    struct wd_timer *t = xzalloc(sizeof *t);
    t->due_ms = wd_now_ms() + (delay_ms < 0 ? 0 : delay_ms);
    t->seq = l->timer_seq++;
    t->fn = fn;
    t->arg = arg;
    struct wd_timer **pp = &l->timers;
    while (*pp && (*pp)->due_ms <= t->due_ms)
        pp = &(*pp)->next;
    t->next = *pp;
    *pp = t;
    return t;
}

/* Timers are few (a handful per replica): a sorted list is enough. A cancelled timer stays in
 * the list, marked, and is freed when it comes due. */
void wd_timer_cancel(struct wd_timer *t)
{
    if (t)
        t->fn = NULL;
}

void wd_loop_post(struct wd_loop *l, wd_post_fn fn, void *arg)
{
    struct post *p = xzalloc(sizeof *p);
    p->fn = fn;
    p->arg = arg;
    pthread_mutex_lock(&l->mu);
    *l->posts_tail = p;
    l->posts_tail = &p->next;
    pthread_mutex_unlock(&l->mu);
    uint64_t one = 1;
    (void)!write(l->evfd, &one, sizeof one);
}

static void run_posts(struct wd_loop *l)
{
    uint64_t v;
    (void)!read(l->evfd, &v, sizeof v);
    pthread_mutex_lock(&l->mu);
    struct post *p = l->posts;
    l->posts = NULL;
    l->posts_tail = &l->posts;
    pthread_mutex_unlock(&l->mu);
    while (p) {
        struct post *next = p->next;
        p->fn(p->arg);
        free(p);
        p = next;
    }
}

void wd_loop_run_posts(struct wd_loop *l) { run_posts(l); }

static void run_signals(struct wd_loop *l)
{
    struct signalfd_siginfo si;
    while (read(l->sigfd, &si, sizeof si) == (ssize_t)sizeof si)
        if (l->on_signal)
            l->on_signal((int)si.ssi_signo, l->sig_arg);
}

static void run_timers(struct wd_loop *l)
{
    int64_t now = wd_now_ms();
    while (l->timers && l->timers->due_ms <= now && !l->stop) {
        struct wd_timer *t = l->timers;
        l->timers = t->next;
        wd_timer_fn fn = t->fn;
        void *arg = t->arg;
        free(t);
        if (fn)
            fn(NULL, arg);
    }
}

void wd_loop_drain(struct wd_loop *l)
{
    for (int rounds = 0; rounds < 1000 && (l->timers || l->posts); rounds++) {
        run_posts(l);
        while (l->timers) {
            struct wd_timer *t = l->timers;
            l->timers = t->next;
            wd_timer_fn fn = t->fn;
            void *arg = t->arg;
            free(t);
            if (fn)
                fn(NULL, arg);
        }
        reap_dead(l);
    }
}

int wd_loop_run(struct wd_loop *l, struct wd_error **err)
{
    struct epoll_event evs[64];
    /* a stop requested before the loop ran (a start that failed at once) ends it at once */
    while (!l->stop) {
        int timeout = -1;
        while (l->timers && l->timers->fn == NULL) { /* drop cancelled timers at the head */
            struct wd_timer *t = l->timers;
            l->timers = t->next;
            free(t);
        }
        if (l->timers) {
            int64_t d = l->timers->due_ms - wd_now_ms();
            timeout = d < 0 ? 0 : d > 60000 ? 60000 : (int)d;
        }
        int n = epoll_wait(l->epfd, evs, (int)WD_ARRAY_LEN(evs), timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return wd_err_sys(err, errno, "epoll_wait");
        }
        for (int i = 0; i < n && !l->stop; i++) {
            void *p = evs[i].data.ptr;
            if (p == &sig_tag) {
                run_signals(l);
                continue;
            }
            if (p == &ev_tag) {
                run_posts(l);
                continue;
            }
            struct wd_watch *w = p;
            if (w->dead)
                continue;
            unsigned ev = 0;
            if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP))
                ev |= WD_EV_IN;
            if (evs[i].events & EPOLLOUT)
                ev |= WD_EV_OUT;
            if (evs[i].events & (EPOLLERR | EPOLLHUP))
                ev |= WD_EV_ERR | WD_EV_IN;
            w->fn(w, w->fd, ev, w->arg);
        }
        reap_dead(l);
        run_timers(l);
    }
    return 0;
}

void wd_loop_stop(struct wd_loop *l) { l->stop = true; }
