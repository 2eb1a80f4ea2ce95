/*
 * pop3d_session.h - the POP3 server's shared state and one POP3 session
 * (internal to src/pop3 and its tests).
 *
 * One struct pop3d_server per pop3d process: the event base (borrowed),
 * TLS context, worker pool for password checks, user database, mailbox
 * backend, per-client-address counts (connections, recent login
 * failures), per-user last-login times (LOGIN-DELAY) and the list of open
 * sessions. pop3d_run() owns one; the unit tests make their own.
 */
#ifndef POSTERN_POP3D_SESSION_H
#define POSTERN_POP3D_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/ssl.h>

#include "lib/config.h"
#include "pop3/pop3_mbox.h"
#include "pop3/pop3d.h"

struct event_base;
struct event;
struct worker_pool;
struct userdb;
struct pop3d_ipent;
struct pop3d_login;
struct pop3d_session;

struct pop3d_server {
    const struct cfg *cfg;       /* borrowed */
    struct event_base *base;     /* borrowed */
    SSL_CTX *tls;                /* borrowed; NULL: no STLS and no implicit TLS */
    struct worker_pool *workers; /* owned */
    struct userdb *users;        /* owned */
    struct pop3_backend backend; /* owned (backend.ops->free(backend.ctx)) */
    int apop; /* APOP offered; sessions offer it when this or cfg->pop3_apop is set */
    size_t nsessions;
    uint64_t next_session;
    struct pop3d_session *sessions; /* list of open sessions (owned) */
    struct pop3d_ipent **ipbuckets; /* owned: client address -> counts */
    struct pop3d_login **logins;    /* owned: user -> last login time (LOGIN-DELAY) */
    struct event *sweep;            /* owned: prunes stale entries */
    int stopping;
};

/*
 * pop3d_server_init - set up srv for cfg (borrowed) on base (borrowed) with
 * tls (borrowed, may be NULL): open the user database, start the worker
 * pool and the Maildir backend. Returns 0 or PST_E*; on failure call
 * pop3d_server_fini anyway.
 */
PST_MUST_CHECK int pop3d_server_init(struct pop3d_server *srv, const struct cfg *cfg,
                                     struct event_base *base, SSL_CTX *tls);

/* pop3d_server_fini - drop open sessions (no UPDATE: nothing is deleted) and free everything. */
void pop3d_server_fini(struct pop3d_server *srv);

/*
 * pop3d_accept - admission control then pop3d_session_start: refuses (with
 * "-ERR [SYS/TEMP] ..." and close) over max_connections or
 * max_connections_per_ip. Takes ownership of fd in every case.
 */
void pop3d_accept(struct pop3d_server *srv, int fd, const struct sockaddr *sa, socklen_t salen,
                  enum pop3d_listener kind);

/*
 * pop3d_session_start - take ownership of the connected socket fd and start
 * a session (greeting, or the TLS handshake first on POP3D_LISTEN_POP3S).
 * The caller has already counted the connection (nsessions and the per-IP
 * count); the session releases both when it ends, also on failure, where
 * fd is closed and PST_E* returned.
 */
PST_MUST_CHECK int pop3d_session_start(struct pop3d_server *srv, int fd, const struct sockaddr *sa,
                                       socklen_t salen, enum pop3d_listener kind);

/* ---- shared counters (pop3d.c) ---- */

/* pop3d_ip_acquire - count one connection from sa: 0, or PST_ELIMIT / PST_ENOMEM. */
PST_MUST_CHECK int pop3d_ip_acquire(struct pop3d_server *srv, const struct sockaddr *sa);
void pop3d_ip_release(struct pop3d_server *srv, const struct sockaddr *sa);

/* pop3d_ip_fail - note a failed login from sa; returns the recent failures from sa (>= 1). */
unsigned pop3d_ip_fail(struct pop3d_server *srv, const struct sockaddr *sa);

/*
 * pop3d_login_allowed - LOGIN-DELAY (RFC 2449 6.8): 1 if user (borrowed)
 * may log in now (always when login_delay is 0), else 0. pop3d_login_note
 * records a successful login.
 */
int pop3d_login_allowed(struct pop3d_server *srv, const char *user);
void pop3d_login_note(struct pop3d_server *srv, const char *user);

/* pop3d_session_unlink / free helpers used by pop3d_server_fini. */
void pop3d_session_drop(struct pop3d_session *s);

#endif
