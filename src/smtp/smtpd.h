/*
 * smtpd.h - the SMTP server process (RFC 5321 ESMTP with PIPELINING, SIZE,
 * 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES, STARTTLS, AUTH, CHUNKING, DSN).
 *
 * The supervisor binds the listening sockets and passes them in; the server
 * runs one libevent loop until SIGTERM/SIGINT, then stops accepting, lets
 * in-flight spool commits finish, and returns.
 */
#ifndef POSTERN_SMTPD_H
#define POSTERN_SMTPD_H

#include "lib/config.h"
#include "lib/err.h"

enum smtpd_port_kind {
    SMTPD_PORT_MX = 0,     /* port 25 style: relay policy, STARTTLS offered */
    SMTPD_PORT_SUBMISSION, /* port 587 style: AUTH required, STARTTLS offered */
    SMTPD_PORT_SMTPS,      /* port 465 style: implicit TLS, AUTH required */
    SMTPD_PORT__COUNT
};

struct ssl_ctx_st;

struct smtpd_listen_fds {
    int fd[SMTPD_PORT__COUNT]; /* -1 when the listener is disabled; borrowed */
    struct ssl_ctx_st *tls;    /* server TLS context loaded before privileges were dropped
                                  (keys stay readable by root only); borrowed; NULL: no TLS */
};

/* smtpd_run - serve until SIGTERM/SIGINT. Returns 0, or PST_E* if start-up failed. */
PST_MUST_CHECK int smtpd_run(const struct cfg *cfg, const struct smtpd_listen_fds *fds);

/* smtpd_port_name - "smtp", "submission" or "smtps". */
const char *smtpd_port_name(enum smtpd_port_kind k);

#endif
