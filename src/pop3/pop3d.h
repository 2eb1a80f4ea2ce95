/*
 * pop3d.h - the POP3 server process (RFC 1939 with RFC 2449 CAPA, RFC 2595
 * STLS, RFC 5034 SASL PLAIN, RFC 3206 response codes), serving local
 * Maildirs through the mailbox interface of pop3_mbox.h.
 *
 * The supervisor binds the listening sockets (and loads the TLS context
 * while still privileged) and passes them in; the server runs one libevent
 * loop until SIGTERM/SIGINT, then stops. Open sessions are dropped without
 * entering UPDATE, so a shutdown never deletes mail (RFC 1939 6).
 */
#ifndef POSTERN_POP3D_H
#define POSTERN_POP3D_H

#include "lib/config.h"
#include "lib/err.h"

enum pop3d_listener {
    POP3D_LISTEN_POP3 = 0, /* port 110 style: plain, STLS offered ([pop3] listen) */
    POP3D_LISTEN_POP3S,    /* port 995 style: implicit TLS ([pop3] pop3s_listen) */
    POP3D_LISTEN__COUNT
};

struct ssl_ctx_st;

struct pop3d_listen_fds {
    int fd[POP3D_LISTEN__COUNT]; /* listening sockets, -1 when disabled; borrowed (not closed) */
    struct ssl_ctx_st *tls;      /* server TLS context; borrowed; NULL: no STLS, no pop3s */
};

/* pop3d_run - serve until SIGTERM/SIGINT. Returns 0, or PST_E* if start-up failed. */
PST_MUST_CHECK int pop3d_run(const struct cfg *cfg, const struct pop3d_listen_fds *fds);

/* pop3d_listener_name - "pop3" or "pop3s". */
const char *pop3d_listener_name(enum pop3d_listener k);

#endif
