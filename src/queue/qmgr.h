/*
 * qmgr.h - the queue manager process: takes committed messages from the
 * spool and delivers them (issue 3: local Maildir delivery; the router and
 * outbound transports come later).
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

/* qmgr_wake - send a wake-up datagram (non-blocking; failures ignored: the scan timer covers them). */
void qmgr_wake(const struct cfg *cfg);

#endif
