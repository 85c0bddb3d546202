/* The front of a Swarm stack (engine/deploy/front.h). The event loop runs the listener proxies
 * (engine/deploy/proxy.c); a thread asks every manager task for its status (the 'S' hello,
 * engine/deploy/rt_compose.c) and posts the choice to the loop: the ready manager with the
 * newest file, else the one chosen before. */
#include "engine/deploy/front.h"
#include "engine/deploy/proxy.h"
#include "engine/deploy/rt_compose.h"
#include "engine/base/log.h"
#include "engine/base/loop.h"
#include "engine/base/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define FRONT_STATUS_TIMEOUT_MS 500

struct front {
    const struct wd_front_opts *o;
    struct wd_loop *loop;
    struct wd_proxy **proxies;
    char current[INET6_ADDRSTRLEN]; /* loop thread */
    atomic_bool stop;
};

struct choice {
    struct front *f;
    char ip[INET6_ADDRSTRLEN];
    uint64_t stamp;
};

static void on_choice(void *arg)
{
    struct choice *c = arg;
    struct front *f = c->f;
    if (strcmp(f->current, c->ip) != 0) {
        for (size_t i = 0; i < f->o->nlisteners; i++) {
            wd_proxy_remove_backends(f->proxies[i], f);
            autofree char *be = xasprintf(strchr(c->ip, ':') ? "[%s]:%u" : "%s:%u", c->ip,
                                          (unsigned)f->o->listeners[i].port);
            wd_proxy_add_backend(f->proxies[i], be, f);
        }
        wd_info("front: new connections go to the manager at %s (its file's stamp %llu)", c->ip,
                (unsigned long long)c->stamp);
        snprintf(f->current, sizeof f->current, "%s", c->ip);
    }
    free(c);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* One round: the ready manager with the newest stamp (ties: the lowest address), or none. */
static bool pick(struct front *f, char ip[INET6_ADDRSTRLEN], uint64_t *stamp)
{
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)f->o->manager_port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(f->o->manager_host, port, &hints, &ai) != 0)
        return false;
    bool found = false;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        char here[INET6_ADDRSTRLEN] = "";
        const void *in = a->ai_family == AF_INET
                             ? (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr
                             : (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
        if (inet_ntop(a->ai_family, in, here, sizeof here) == NULL)
            continue;
        bool ready = false;
        uint64_t st = 0;
        if (wd_compose_status(a->ai_addr, a->ai_addrlen, FRONT_STATUS_TIMEOUT_MS, &ready, &st) <
                0 ||
            !ready)
            continue;
        if (!found || st > *stamp || (st == *stamp && strcmp(here, ip) < 0)) {
            found = true;
            *stamp = st;
            memcpy(ip, here, sizeof here);
        }
    }
    freeaddrinfo(ai);
    return found;
}

static void *poller(void *arg)
{
    struct front *f = arg;
    char last[INET6_ADDRSTRLEN] = "";
    while (!atomic_load(&f->stop)) {
        char ip[INET6_ADDRSTRLEN];
        uint64_t stamp = 0;
        if (pick(f, ip, &stamp) && strcmp(ip, last) != 0) {
            memcpy(last, ip, sizeof last);
            struct choice *c = xzalloc(sizeof *c);
            c->f = f;
            c->stamp = stamp;
            memcpy(c->ip, ip, sizeof c->ip);
            wd_loop_post(f->loop, on_choice, c);
        }
        for (unsigned waited = 0; waited < f->o->poll_ms && !atomic_load(&f->stop); waited += 50)
            sleep_ms(50);
    }
    return NULL;
}

static void on_signal(int sig, void *arg)
{
    struct front *f = arg;
    wd_info("front: signal %d: stopping", sig);
    wd_loop_stop(f->loop);
}

int wd_front_run(const struct wd_front_opts *opts, struct wd_error **err)
{
    struct wd_front_opts o = *opts;
    if (o.poll_ms == 0)
        o.poll_ms = 250;
    struct front f = {.o = &o};
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    int r = wd_loop_new(sigs, WD_ARRAY_LEN(sigs), on_signal, &f, &f.loop, err);
    if (r < 0)
        return r;
    f.proxies = xcalloc(o.nlisteners + 1, sizeof *f.proxies);
    for (size_t i = 0; r == 0 && i < o.nlisteners; i++) {
        autofree char *addr = xasprintf(":%u", (unsigned)o.listeners[i].port);
        r = wd_proxy_new(f.loop, o.listeners[i].name, addr, &f.proxies[i], err);
    }
    pthread_t th;
    bool started = false;
    if (r == 0) {
        int e = pthread_create(&th, NULL, poller, &f);
        if (e)
            r = wd_err_sys(err, e, "front: thread");
        started = e == 0;
    }
    if (r == 0) {
        wd_info("front: serving %zu listener(s); managers at %s:%u", o.nlisteners, o.manager_host,
                (unsigned)o.manager_port);
        r = wd_loop_run(f.loop, err);
    }
    atomic_store(&f.stop, true);
    if (started)
        pthread_join(th, NULL);
    wd_loop_drain(f.loop); /* posted choices: freed by on_choice */
    for (size_t i = 0; i < o.nlisteners; i++)
        wd_proxy_free(f.proxies[i]);
    free(f.proxies);
    wd_loop_drain(f.loop);
    wd_loop_free(f.loop);
    return r;
}
