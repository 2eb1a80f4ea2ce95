/*
 * worker.c - a small thread pool whose results come back to a libevent loop.
 *
 * Jobs sit in a FIFO guarded by a mutex and condition variable. A pool
 * thread runs job->work(arg) and writes the job pointer into a pipe; the
 * loop thread reads pointers from the pipe (an EV_READ|EV_PERSIST event)
 * and calls done(arg), or release(arg) if the owner detached the job.
 * Writes of one pointer are atomic (< PIPE_BUF), so no framing is needed.
 *
 * Invariants: `detached` is read and written only in the loop thread; a
 * job is freed only in the loop thread after its done/release ran.
 * Failure policy: allocation or thread creation failure at start returns
 * NULL; a failing pipe write is retried on EINTR and otherwise a bug.
 */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"

#define WORKER_MAX_THREADS 64

struct worker_job {
    worker_fn work;
    worker_fn done;
    worker_fn release;
    void *arg;
    int detached;
    struct worker_job *next;
};

struct worker_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct worker_job *head, *tail;
    int stopping;
    int nthreads;
    pthread_t threads[WORKER_MAX_THREADS];
    int pipefd[2];
    struct event *ev;
};

static void worker_post(struct worker_pool *p, struct worker_job *job)
{
    for (;;) {
        ssize_t n = write(p->pipefd[1], &job, sizeof job);
        if (n == (ssize_t)sizeof job)
            return;
        PST_ASSERT(n < 0 && errno == EINTR);
    }
}

static void *worker_main(void *arg)
{
    struct worker_pool *p = arg;

    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        struct worker_job *job = p->head;
        if (!job) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        p->head = job->next;
        if (!p->head)
            p->tail = NULL;
        pthread_mutex_unlock(&p->mu);

        job->work(job->arg);
        worker_post(p, job);
    }
}

static void worker_finish(struct worker_job *job)
{
    if (job->detached) {
        if (job->release)
            job->release(job->arg);
    } else if (job->done) {
        job->done(job->arg);
    }
    free(job);
}

static void worker_on_pipe(evutil_socket_t fd, short what, void *arg)
{
    struct worker_job *jobs[64];

    for (;;) {
        ssize_t n = read(fd, jobs, sizeof jobs);
        if (n <= 0)
            return; /* EAGAIN: drained */
        for (size_t i = 0; i < (size_t)n / sizeof jobs[0]; i++)
            worker_finish(jobs[i]);
    }
}

struct worker_pool *worker_pool_new(struct event_base *base, int nthreads)
{
    if (nthreads < 1 || nthreads > WORKER_MAX_THREADS)
        return NULL;
    struct worker_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pipe2(p->pipefd, O_CLOEXEC) < 0)
        goto fail_free;
    /* Only the read end is non-blocking: a full pipe must stall a thread, not drop a result. */
    if (fcntl(p->pipefd[0], F_SETFL, O_NONBLOCK) < 0)
        goto fail_pipe;
    p->ev = event_new(base, p->pipefd[0], EV_READ | EV_PERSIST, worker_on_pipe, p);
    if (!p->ev || event_add(p->ev, NULL) < 0)
        goto fail_pipe;
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
            log_error("worker thread_create_failed n=%d", i);
            break;
        }
        p->nthreads++;
    }
    if (p->nthreads == 0)
        goto fail_pipe;
    return p;

fail_pipe:
    if (p->ev)
        event_free(p->ev);
    close(p->pipefd[0]);
    close(p->pipefd[1]);
fail_free:
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
    return NULL;
}

void worker_pool_free(struct worker_pool **pp)
{
    struct worker_pool *p = *pp;
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    /* Threads finish the queued jobs first; the pipe (64 KiB = 8192 results) holds their results.
     */
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    struct worker_job *jobs[64];
    ssize_t n;
    while ((n = read(p->pipefd[0], jobs, sizeof jobs)) > 0) {
        for (size_t i = 0; i < (size_t)n / sizeof jobs[0]; i++) {
            if (jobs[i]->release)
                jobs[i]->release(jobs[i]->arg);
            free(jobs[i]);
        }
    }
    event_free(p->ev);
    close(p->pipefd[0]);
    close(p->pipefd[1]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
    *pp = NULL;
}

struct worker_job *worker_submit(struct worker_pool *p, worker_fn work, worker_fn done,
                                 worker_fn release, void *arg)
{
    struct worker_job *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    job->work = work;
    job->done = done;
    job->release = release;
    job->arg = arg;
    pthread_mutex_lock(&p->mu);
    if (p->tail)
        p->tail->next = job;
    else
        p->head = job;
    p->tail = job;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return job;
}

void worker_detach(struct worker_job *job)
{
    job->detached = 1;
}
