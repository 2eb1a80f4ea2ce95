/*
 * qmgr_msg.h - what the queue manager (qmgr.c) and its SMTP transport
 * (qmgr_smtp.c) share: a message being delivered and its recipients'
 * results. Internal to src/queue.
 *
 * A message is "active" from the pass that loads it until every delivery
 * job started for it has finished; then qmgr_msg_finish() records the
 * outcome: removed (every recipient final, notifications sent), or moved
 * to deferred/ with its next attempt time.
 */
#ifndef POSTERN_QMGR_MSG_H
#define POSTERN_QMGR_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "lib/spool.h"
#include "lib/userdb.h"

struct qmgr;
struct router_route;

enum qmgr_rstate {
    QMGR_R_PENDING = 0, /* not final yet */
    QMGR_R_BUSY,        /* a delivery is in progress in this attempt */
    QMGR_R_DELIVERED,   /* final: delivered (Maildir or remote 2xx) */
    QMGR_R_FAILED,      /* final: permanent failure, the sender gets a DSN */
};

struct qmgr_rcpt {
    enum qmgr_rstate state;
    int dsn_sent;     /* the failure (or success) notification is out */
    int recorded;     /* its final result is in the state file */
    int item;         /* local Maildir batch index, -1 if none */
    char status[16];  /* RFC 3463 "5.1.1" */
    char remote[128]; /* remote MTA host, "" for local */
    char diag[512];   /* diagnostic text (remote reply or local reason) */
    char mailbox[USERDB_NAME_MAX + 1];
};

struct qmgr_msg {
    struct qmgr *q; /* borrowed */
    char qid[SPOOL_QID_LEN + 1];
    enum spool_queue queue; /* where its file is */
    struct spool_env *env;  /* owned */
    int fd;                 /* spool file, positioned anywhere: use pread */
    uint64_t off, len;      /* content offset and length */
    struct qmgr_rcpt *r;    /* owned, env->nrcpt entries */
    unsigned attempts;      /* earlier attempts (from the state file) */
    int warned;             /* delay warning sent */
    size_t jobs;            /* remote delivery jobs outstanding */
    char tls[64];           /* TLS of the session reporting results now ("" = none) */
    int has_state;          /* state/<qid> exists (records loaded or written) */
    struct qmgr_msg *hnext; /* active-table chain */
};

/*
 * qmgr_rcpt_result - record recipient i's outcome of this attempt. final_state
 * is QMGR_R_DELIVERED, QMGR_R_FAILED, or QMGR_R_PENDING (deferred). The result
 * is appended to the message's state file before anything depends on it, and
 * logged (one line per recipient: status=sent|bounced|deferred).
 */
void qmgr_rcpt_result(struct qmgr_msg *m, size_t i, enum qmgr_rstate final_state,
                      const char *status, const char *remote, const char *diag);

/* qmgr_job_done - one remote job of m ended; when none is left, m is finished. */
void qmgr_job_done(struct qmgr_msg *m);

#endif
