/*
 * smtpd_server.h - state shared by the SMTP server and its sessions
 * (internal to src/smtp; not used elsewhere).
 *
 * One struct smtpd_server per smtpd process. It owns the listeners, the TLS
 * context, the spool committer, the worker pool for password checks, the
 * user database handle, and the per-client-IP connection counts.
 */
#ifndef POSTERN_SMTPD_SERVER_H
#define POSTERN_SMTPD_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "lib/config.h"
#include "lib/netaddr.h"
#include "smtpd.h"

struct event_base;
struct spool_committer;
struct worker_pool;
struct userdb;
struct ipcount;
struct evconnlistener;
struct event;

struct smtpd_server {
    const struct cfg *cfg;             /* borrowed */
    struct event_base *base;           /* owned */
    SSL_CTX *tls;                      /* owned, NULL if TLS could not be set up */
    struct spool_committer *committer; /* owned */
    struct worker_pool *workers;       /* owned */
    struct userdb *users;              /* owned */
    size_t nsessions;
    uint64_t next_session;
    struct ipcount *ipcounts;                      /* owned: sessions per client address */
    struct evconnlistener *lev[SMTPD_PORT__COUNT]; /* owned, NULL when disabled */
    struct event *accept_retry;                    /* owned: re-enables listeners after EMFILE */
    int stopping;
};

/* smtpd_server_ip_release - a session from sa ended: decrement its per-IP count. */
void smtpd_server_ip_release(struct smtpd_server *srv, const struct sockaddr *sa);

#endif
