/*
 * qmgr_smtp.h - the queue manager's SMTP transport: destinations, DNS,
 * connections with reuse and per-destination concurrency, and the
 * per-recipient results of each transaction. Internal to src/queue.
 */
#ifndef POSTERN_QMGR_SMTP_H
#define POSTERN_QMGR_SMTP_H

#include <stddef.h>

#include "lib/config.h"
#include "lib/err.h"

struct event_base;
struct qmgr_msg;
struct router_route;
struct qmgr_smtp;

/* qmgr_smtp_new - borrowed: base, cfg. NULL on failure (logged). Free with qmgr_smtp_free. */
struct qmgr_smtp *qmgr_smtp_new(struct event_base *base, const struct cfg *cfg);

/* qmgr_smtp_free - drop every connection and queued job without callbacks. */
void qmgr_smtp_free(struct qmgr_smtp **s);

/*
 * qmgr_smtp_submit - deliver recipients idx[0..n) of m (their state is
 * QMGR_R_BUSY) over route rt. On success m->jobs is incremented and, later and
 * never from inside this call, qmgr_rcpt_result() is called for each of them
 * and then qmgr_job_done(m) once. Returns PST_ENOMEM if nothing was queued.
 */
PST_MUST_CHECK int qmgr_smtp_submit(struct qmgr_smtp *s, struct qmgr_msg *m,
                                    const struct router_route *rt, const size_t *idx, size_t n);

#endif
