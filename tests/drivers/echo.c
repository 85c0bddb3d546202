/* tests/drivers/echo.c - a tiny TCP echo server / client used as a container payload by
 * tests/integration/test_engine.sh. Built static with musl-gcc (and dynamic with gcc).
 *   echo serve PORT            print to stdout and stderr, echo lines; "exit N" exits with N,
 *                              "err TEXT" writes TEXT to stderr
 *   echo connect HOST PORT MSG send MSG, print the reply line (retries ~10 s)
 *   echo sleep                 sleep until SIGTERM (exit 0) */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void on_term(int sig)
{
    (void)sig;
    _exit(0);
}

static void *conn_main(void *arg)
{
    int c = (int)(intptr_t)arg;
    FILE *in = fdopen(c, "r"); /* reads buffered; replies with write(2) on the same fd */
    char line[512];
    while (in && fgets(line, sizeof line, in)) {
        if (strncmp(line, "exit ", 5) == 0) {
            int code = (int)strtol(line + 5, NULL, 10);
            dprintf(c, "bye %d\n", code);
            printf("exiting with %d\n", code);
            fflush(stdout);
            exit(code);
        }
        if (strncmp(line, "err ", 4) == 0) {
            fputs(line + 4, stderr);
            dprintf(c, "ok\n");
        } else {
            dprintf(c, "%s", line);
        }
    }
    if (in)
        fclose(in);
    return NULL;
}

static int serve(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 16) < 0) {
        fprintf(stderr, "echo: listen %d: %s\n", port, strerror(errno));
        return 2;
    }
    printf("hello stdout port=%d\n", port);
    fflush(stdout);
    fprintf(stderr, "hello stderr port=%d\n", port);
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0)
            continue;
        pthread_t t;
        if (pthread_create(&t, NULL, conn_main, (void *)(intptr_t)c) != 0)
            close(c);
        else
            pthread_detach(t);
    }
}

static int client(const char *host, const char *port, const char *msg)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
        if (getaddrinfo(host, port, &hints, &res) == 0) {
            int s = socket(res->ai_family, SOCK_STREAM, 0);
            if (s >= 0 && connect(s, res->ai_addr, res->ai_addrlen) == 0) {
                FILE *f = fdopen(s, "r");
                char line[512];
                dprintf(s, "%s\n", msg);
                if (fgets(line, sizeof line, f)) {
                    printf("reply: %s", line);
                    return 0;
                }
                fclose(f);
            } else if (s >= 0) {
                close(s);
            }
            freeaddrinfo(res);
        }
        usleep(200000);
    }
    fprintf(stderr, "echo: cannot reach %s:%s\n", host, port);
    return 1;
}

int main(int argc, char **argv)
{
    signal(SIGTERM, on_term);
    if (argc >= 3 && strcmp(argv[1], "serve") == 0)
        return serve(atoi(argv[2]));
    if (argc >= 5 && strcmp(argv[1], "connect") == 0)
        return client(argv[2], argv[3], argv[4]);
    if (argc >= 2 && strcmp(argv[1], "sleep") == 0) {
        for (;;)
            pause();
    }
    fprintf(stderr, "usage: echo serve PORT | connect HOST PORT MSG | sleep\n");
    return 64;
}
