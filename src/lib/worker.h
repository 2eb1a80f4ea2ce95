/*
 * worker.h - run blocking jobs (password hashing, ...) on a small thread
 * pool and get the result back in the libevent loop thread.
 *
 * work() runs on a pool thread and must touch only its own argument;
 * done() runs later in the loop thread. A job whose owner goes away is
 * detached: work() still runs, done() is replaced by a call to the job's
 * free function. Nothing here blocks the loop.
 */
#ifndef POSTERN_WORKER_H
#define POSTERN_WORKER_H

#include "err.h"

struct event_base;
struct worker_pool;
struct worker_job;

typedef void (*worker_fn)(void *arg);

/* worker_pool_new - nthreads >= 1 threads. Borrowed: base. Caller frees with worker_pool_free(). */
struct worker_pool *worker_pool_new(struct event_base *base, int nthreads);

/* worker_pool_free - stop the threads after the queued jobs; pending done() callbacks are not run.
 */
void worker_pool_free(struct worker_pool **p);

/*
 * worker_submit - queue work(arg) on a pool thread, then done(arg) in the
 * loop thread. If the job is detached first, release(arg) runs instead of
 * done (release may be NULL). Returns a handle valid until done/release
 * runs, or NULL on allocation failure (nothing is called).
 */
struct worker_job *worker_submit(struct worker_pool *p, worker_fn work, worker_fn done,
                                 worker_fn release, void *arg);

/* worker_detach - the caller no longer wants done(); see worker_submit. Loop thread only. */
void worker_detach(struct worker_job *job);

#endif
