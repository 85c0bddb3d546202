/* tests/shim/peer.c - a fake weavelet for tests/integration/test_shim.sh. Built static with
 * musl-gcc so it also runs in a FROM-scratch image next to the shim.
 *
 *   peer DIR [--delay MS] [--exit CODE] [--ignore-term] [--no-dial] [--orphans N]
 *
 * After MS milliseconds (default 300) it listens on DIR/control.sock and echoes every
 * connection (half-close aware: EOF from the client -> shutdown(SHUT_WR) once all is echoed).
 * Unless --no-dial, it dials DIR/deployer.sock (retrying), sends "weavelet-hello\n", echoes what
 * it receives and re-dials 100 ms after the connection ends, as a weavelet does.
 * --orphans N: fork N children that each fork a grandchild sleeping 1 s and exit at once, so
 * the grandchildren are orphaned onto the shim. It never exits on its own (except --exit). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXC 16

static void msleep(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void addr(struct sockaddr_un *a, const char *dir, const char *name)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    snprintf(a->sun_path, sizeof a->sun_path, "%s/%s", dir, name);
}

static int dial(const struct sockaddr_un *a)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (const struct sockaddr *)a, sizeof *a) == 0 &&
        write_all(fd, "weavelet-hello\n", 15) == 0)
        return fd;
    if (fd >= 0)
        close(fd);
    return -1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs("usage: peer DIR [--delay MS] [--exit CODE] [--ignore-term] [--no-dial] "
              "[--orphans N]\n",
              stderr);
        return 2;
    }
    const char *dir = argv[1];
    long delay = 300;
    int dial_on = 1, orphans = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--delay") == 0 && i + 1 < argc)
            delay = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--exit") == 0 && i + 1 < argc)
            return (int)strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--ignore-term") == 0)
            signal(SIGTERM, SIG_IGN);
        else if (strcmp(argv[i], "--no-dial") == 0)
            dial_on = 0;
        else if (strcmp(argv[i], "--orphans") == 0 && i + 1 < argc)
            orphans = (int)strtol(argv[++i], NULL, 10);
    }
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < orphans; i++) {
        pid_t p = fork();
        if (p == 0) {
            if (fork() == 0) {
                msleep(1000);
                _exit(0);
            }
            _exit(0);
        }
        if (p > 0)
            waitpid(p, NULL, 0);
    }

    struct sockaddr_un ctl, dep;
    addr(&ctl, dir, "control.sock");
    addr(&dep, dir, "deployer.sock");
    msleep(delay);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (const struct sockaddr *)&ctl, sizeof ctl) < 0 || listen(lfd, 8) < 0) {
        perror("peer: listen control.sock");
        return 3;
    }
    fprintf(stderr, "peer: listening on %s\n", ctl.sun_path);

    int conns[MAXC], nconn = 0, dfd = -1;
    long next_dial = 0;
    for (;;) {
        if (dial_on && dfd < 0 && next_dial <= 0) {
            dfd = dial(&dep);
            next_dial = 100;
        }
        struct pollfd p[MAXC + 2];
        int n = 0;
        p[n++] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (int i = 0; i < nconn; i++)
            p[n++] = (struct pollfd){.fd = conns[i], .events = POLLIN};
        if (dfd >= 0)
            p[n++] = (struct pollfd){.fd = dfd, .events = POLLIN};
        int r = poll(p, (nfds_t)n, dial_on && dfd < 0 ? 100 : -1);
        if (r < 0 && errno != EINTR)
            return 4;
        if (dial_on && dfd < 0)
            next_dial -= 100;
        if (r <= 0)
            continue;
        char buf[65536];
        if (p[0].revents & POLLIN) {
            int fd = accept(lfd, NULL, NULL);
            if (fd >= 0 && nconn < MAXC)
                conns[nconn++] = fd;
            else if (fd >= 0)
                close(fd);
        }
        for (int i = 1; i < n; i++) {
            if (!p[i].revents)
                continue;
            ssize_t got = read(p[i].fd, buf, sizeof buf);
            if (got > 0 && write_all(p[i].fd, buf, (size_t)got) == 0)
                continue;
            if (p[i].fd == dfd) { /* deployer link ended: re-dial later */
                close(dfd);
                dfd = -1;
                next_dial = 100;
                continue;
            }
            if (got == 0) /* half-close: answer with our own EOF, keep nothing open */
                shutdown(p[i].fd, SHUT_WR);
            close(p[i].fd);
            for (int k = 0; k < nconn; k++)
                if (conns[k] == p[i].fd)
                    conns[k] = conns[--nconn];
        }
    }
}
