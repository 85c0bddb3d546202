/* engine/base/termout.c: a reader that does not read never blocks the writer; the queue stays
 * within its bound by dropping the oldest lines, and one marker says how many once the reader
 * drains. */
#include "engine/base/termout.h"
#include "tests/unit/wd_test.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Read what the pipe holds until it stays empty for a while. */
static size_t drain(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    for (int idle = 0; idle < 50;) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n > 0) {
            len += (size_t)n;
            idle = 0;
            if (len >= cap - 1)
                break;
        } else {
            usleep(10000);
            idle++;
        }
    }
    buf[len] = 0;
    return len;
}

static void test_unread_pipe_never_blocks(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct wd_termout *t = wd_termout_new(p[1], 64 << 10, "all are in the log file");
    char line[128];
    for (int i = 0; i < 200000; i++) { /* ~8 MB into a 64 KiB pipe and a 64 KiB queue */
        int n = snprintf(line, sizeof line, "line %06d of the flood, padded to forty\n", i);
        wd_termout_write(t, line, (size_t)n);
    }
    /* (a blocked writer would never get here: the run's timeout would end the test) */
    assert_true(wd_termout_dropped(t) > 150000);
    static char buf[1 << 20];
    size_t len = drain(p[0], buf, sizeof buf);
    assert_true(len > 0);
    /* the marker, then the newest lines, ending with the very last one */
    assert_non_null(strstr(buf, " lines not shown (all are in the log file)\n"));
    assert_non_null(strstr(buf, "line 199999 of the flood"));
    wd_termout_close(t, 1000);
    close(p[0]);
    close(p[1]);
}

static void test_reader_keeps_up(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct wd_termout *t = wd_termout_new(p[1], 1 << 20, "");
    for (int i = 0; i < 100; i++)
        wd_termout_printf(t, "l%d\n", i);
    wd_termout_close(t, 5000); /* all of it, in order */
    close(p[1]);
    static char buf[4096];
    size_t len = 0;
    ssize_t n;
    while ((n = read(p[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = 0;
    assert_int_equal(strncmp(buf, "l0\nl1\nl2\n", 9), 0);
    assert_non_null(strstr(buf, "l98\nl99\n"));
    assert_null(strstr(buf, "not shown"));
    close(p[0]);
}

static void test_close_does_not_wait_for_a_stuck_reader(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct wd_termout *t = wd_termout_new(p[1], 1 << 20, "");
    static char big[256 << 10];
    memset(big, 'x', sizeof big);
    big[sizeof big - 1] = '\n';
    wd_termout_write(t, big, sizeof big); /* more than the pipe takes: the writer blocks */
    wd_termout_close(t, 300); /* returns though the writer is stuck (a hang fails the run) */
    close(p[0]); /* the stuck writer gets EPIPE (ignored signal) and ends */
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unread_pipe_never_blocks),
        cmocka_unit_test(test_reader_keeps_up),
        cmocka_unit_test(test_close_does_not_wait_for_a_stuck_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
