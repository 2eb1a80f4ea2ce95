/*
 * smtpd_session.h - one SMTP session: the RFC 5321 state machine.
 */
#ifndef POSTERN_SMTPD_SESSION_H
#define POSTERN_SMTPD_SESSION_H

#include <sys/socket.h>

#include "smtpd.h"
#include "smtpd_server.h"

/*
 * smtpd_session_start - take ownership of the connected socket fd and start
 * a session (greeting, or the TLS handshake first on an implicit-TLS port).
 * On failure the fd is closed and PST_E* returned; the caller has already
 * counted the session and the per-IP slot, and the session releases both
 * when it ends (also on this failure path).
 */
PST_MUST_CHECK int smtpd_session_start(struct smtpd_server *srv, int fd, const struct sockaddr *sa,
                                       socklen_t salen, enum smtpd_port_kind kind);

#endif
