/*
 * bmd.h - the Bitmessage node process, a child of `postern serve`.
 *
 * One libevent loop holds the connection pool (bm_node.h), the mail
 * workflow (bm_engine.h, whose proof of work runs on its own threads) and
 * delivery of received messages to local Maildirs (bm_deliver.h), all on
 * the state database (bm_store.h). SIGUSR1 (sent by bm_api_notify() after
 * `postern bm send`) makes it scan the outbox and deliver at once;
 * SIGTERM/SIGINT stop it: a message in the middle of its proof of work is
 * simply redone at the next start.
 */
#ifndef POSTERN_BMD_H
#define POSTERN_BMD_H

#include "lib/config.h"
#include "lib/err.h"

#define BMD_DELIVER_INTERVAL_MS 5000 /* retry failed Maildir deliveries */

/* bmd_run - serve until SIGTERM/SIGINT. listen_fd: the bound P2P listener (taken
 * over) or -1. Returns 0, or PST_E* if start-up failed. */
PST_MUST_CHECK int bmd_run(const struct cfg *cfg, int listen_fd);

#endif
