/*
 * qmgr.h - the queue manager process: takes committed messages from the
 * spool, routes each recipient, delivers to local Maildirs and over SMTP,
 * retries, and bounces (see qmgr.c and docs/queue.md).
 *
 * Wake-up: the manager binds a Unix datagram socket <run_dir>/qmgr.sock;
 * any datagram makes it scan incoming/ at once. It also scans every
 * queue_scan_interval seconds and at start, so a lost wake-up only delays.
 */
#ifndef POSTERN_QMGR_H
#define POSTERN_QMGR_H

#include "lib/config.h"
#include "lib/err.h"

/* qmgr_run - run the queue manager's event loop until SIGTERM/SIGINT. Returns 0 or PST_E*. */
PST_MUST_CHECK int qmgr_run(const struct cfg *cfg);

/* qmgr_wake - send a wake-up datagram (non-blocking; failures are ignored: the scan
 * timer covers them). */
void qmgr_wake(const struct cfg *cfg);

/* ---- one delivery pass, without the event loop (qmgr_run and tests) ---- */

struct qmgr;

/* What one pass did (counts of recipients, except messages/removed/quarantined). */
struct qmgr_pass_stats {
    size_t messages;    /* spool files looked at */
    size_t delivered;   /* recipients written to a Maildir in this pass */
    size_t failed;      /* recipients with a final failure (the sender gets a DSN) */
    size_t deferred;    /* recipients left for a later attempt (temporary error) */
    size_t removed;     /* spool files removed (every recipient final) */
    size_t quarantined; /* malformed spool files moved to corrupt/ */
};

/*
 * qmgr_new - a queue manager context for cfg (borrowed, must outlive it):
 * opens the user database. Caller frees with qmgr_free().
 */
PST_MUST_CHECK int qmgr_new(const struct cfg *cfg, struct qmgr **out);
void qmgr_free(struct qmgr **q);

/*
 * qmgr_deliver_pass - scan incoming/ once and deliver everything deliverable
 * in batches of cfg->delivery_batch messages. st (may be NULL) is filled.
 * Returns 0, or PST_E* if the spool cannot be scanned; per-message problems
 * are logged and counted, not returned.
 */
PST_MUST_CHECK int qmgr_deliver_pass(struct qmgr *q, struct qmgr_pass_stats *st);

/* qmgr_base - the manager's event base (remote deliveries and retries run on it); borrowed. */
struct event_base *qmgr_base(struct qmgr *q);

#endif
