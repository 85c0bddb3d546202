/* engine/base/worker.c: jobs run in order on another thread, their done functions on the loop's
 * thread, and the byte bound holds the submitter back instead of growing without end. */
#include "engine/base/loop.h"
#include "engine/base/worker.h"
#include "tests/unit/wd_test.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

struct rec {
    pthread_t main_thread;
    int next_work, next_done;
    int bad_order, work_on_main, done_off_main;
    int running, max_running;
    pthread_mutex_t mu;
};

struct item {
    struct rec *rec;
    int n;
};

static void work(void *arg)
{
    struct item *it = arg;
    struct rec *r = it->rec;
    pthread_mutex_lock(&r->mu);
    if (pthread_equal(pthread_self(), r->main_thread))
        r->work_on_main++;
    if (it->n != r->next_work++)
        r->bad_order++;
    r->running++;
    if (r->running > r->max_running)
        r->max_running = r->running;
    pthread_mutex_unlock(&r->mu);
    usleep(100);
    pthread_mutex_lock(&r->mu);
    r->running--;
    pthread_mutex_unlock(&r->mu);
}

static void done(void *arg)
{
    struct item *it = arg;
    struct rec *r = it->rec;
    if (!pthread_equal(pthread_self(), r->main_thread))
        r->done_off_main++;
    if (it->n != r->next_done++)
        r->bad_order++;
    free(it);
}

static struct wd_loop *new_loop(void)
{
    struct wd_loop *l = NULL;
    struct wd_error *err = NULL;
    assert_int_equal(wd_loop_new(NULL, 0, NULL, NULL, &l, &err), 0);
    return l;
}

static void run_jobs(size_t max_bytes, size_t bytes_each, int n)
{
    struct wd_loop *l = new_loop();
    struct rec r = {.main_thread = pthread_self()};
    pthread_mutex_init(&r.mu, NULL);
    struct wd_worker *w = wd_worker_new(l, max_bytes, 5);
    assert_non_null(w);
    for (int i = 0; i < n; i++) {
        struct item *it = malloc(sizeof *it);
        it->rec = &r;
        it->n = i;
        wd_worker_submit(w, work, done, it, bytes_each);
        if (i % 50 == 0)
            wd_loop_run_posts(l); /* some done functions run while jobs are still queued */
    }
    wd_worker_free(w);
    wd_loop_drain(l);
    assert_int_equal(r.next_work, n);
    assert_int_equal(r.next_done, n);
    assert_int_equal(r.bad_order, 0);
    assert_int_equal(r.work_on_main, 0);
    assert_int_equal(r.done_off_main, 0);
    assert_int_equal(r.max_running, 1);
    pthread_mutex_destroy(&r.mu);
    wd_loop_free(l);
}

static void test_order_and_threads(void **state)
{
    (void)state;
    run_jobs(1 << 20, 100, 500);
}

/* A bound of 3 jobs: every submit past it waits for the thread; nothing is lost or reordered. */
static void test_bound_holds_back(void **state)
{
    (void)state;
    run_jobs(300, 100, 300);
}

/* A job larger than the whole bound still runs (alone). */
static void test_job_larger_than_bound(void **state)
{
    (void)state;
    run_jobs(10, 1000, 20);
}

/* Freeing a worker with nothing queued returns at once; NULL is fine. */
static void test_free_idle(void **state)
{
    (void)state;
    struct wd_loop *l = new_loop();
    struct wd_worker *w = wd_worker_new(l, 1, 0);
    assert_non_null(w);
    wd_worker_free(w);
    wd_worker_free(NULL);
    wd_loop_drain(l);
    wd_loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_threads),
        cmocka_unit_test(test_bound_holds_back),
        cmocka_unit_test(test_job_larger_than_bound),
        cmocka_unit_test(test_free_idle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
