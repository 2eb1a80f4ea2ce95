/*
 * test_worker.c - the thread pool returns every result to the loop thread,
 * and a detached job gets release() instead of done().
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>
#include <event2/event.h>

#include "lib/worker.h"

#define NJOBS 200

struct job {
    int input;
    int output;
    pthread_t ran_on;
    int done;
    int released;
    int *remaining;
    struct event_base *base;
};

static void job_work(void *arg)
{
    struct job *j = arg;
    j->output = j->input * 2;
    j->ran_on = pthread_self();
}

static void job_done(void *arg)
{
    struct job *j = arg;
    j->done++;
    if (--*j->remaining == 0)
        event_base_loopbreak(j->base);
}

static void job_release(void *arg)
{
    struct job *j = arg;
    j->released++;
    if (--*j->remaining == 0)
        event_base_loopbreak(j->base);
}

static void test_results_come_back(void **state)
{
    struct event_base *base = event_base_new();
    struct worker_pool *p = worker_pool_new(base, 3);
    assert_non_null(p);
    struct job *jobs = calloc(NJOBS, sizeof *jobs);
    int remaining = NJOBS;
    for (int i = 0; i < NJOBS; i++) {
        jobs[i] = (struct job){.input = i, .remaining = &remaining, .base = base};
        assert_non_null(worker_submit(p, job_work, job_done, job_release, &jobs[i]));
    }
    event_base_dispatch(base);
    assert_int_equal(remaining, 0);
    for (int i = 0; i < NJOBS; i++) {
        assert_int_equal(jobs[i].done, 1);
        assert_int_equal(jobs[i].released, 0);
        assert_int_equal(jobs[i].output, 2 * i);
        assert_false(pthread_equal(jobs[i].ran_on, pthread_self()));
    }
    worker_pool_free(&p);
    assert_null(p);
    free(jobs);
    event_base_free(base);
}

static void test_detach_calls_release(void **state)
{
    struct event_base *base = event_base_new();
    struct worker_pool *p = worker_pool_new(base, 1);
    int remaining = 2;
    struct job a = {.input = 1, .remaining = &remaining, .base = base};
    struct job b = {.input = 2, .remaining = &remaining, .base = base};
    struct worker_job *ja = worker_submit(p, job_work, job_done, job_release, &a);
    assert_non_null(worker_submit(p, job_work, job_done, job_release, &b));
    worker_detach(ja);
    event_base_dispatch(base);
    assert_int_equal(a.done, 0);
    assert_int_equal(a.released, 1);
    assert_int_equal(a.output, 2); /* work still ran */
    assert_int_equal(b.done, 1);
    worker_pool_free(&p);
    event_base_free(base);
}

static void test_bad_thread_count(void **state)
{
    struct event_base *base = event_base_new();
    assert_null(worker_pool_new(base, 0));
    assert_null(worker_pool_new(base, 1000));
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_results_come_back),
        cmocka_unit_test(test_detach_calls_release),
        cmocka_unit_test(test_bad_thread_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
