/*
 * smtpc.h - the outbound SMTP client: one connection to one server, any
 * number of sequential transactions (connection reuse).
 *
 * Life of a session:
 *   smtpc_connect() -> conn_cb(0)  [greeting, EHLO/HELO, STARTTLS + EHLO, AUTH done]
 *   smtpc_send(msg) -> msg_cb(...) -> smtpc_send(next) -> ... -> smtpc_quit()
 * Callbacks may call smtpc_send(), smtpc_quit() or smtpc_free() on the
 * session; the client never touches the session after a callback returns
 * from inside its own handlers. At most one of conn_cb / msg_cb is pending.
 *
 * Status codes given to callbacks:
 *   0           success (conn: ready for smtpc_send; msg: the server answered
 *               every recipient - see msg->rcpt[i] for each result)
 *   PST_EAGAIN  temporary: connection-level (timeout, drop, garbage, 421,
 *               TLS failure, 4xx greeting) or a 4xx to MAIL/DATA
 *   PST_EPERM   permanent: 5xx greeting, 5xx to MAIL or DATA, or a local
 *               refusal (SIZE over the peer's limit 552 5.3.4, 8-bit content
 *               to a peer without 8BITMIME 554 5.6.3, SMTPUTF8 message to a
 *               peer without SMTPUTF8 554 5.6.7)
 * why is a short human-readable reason ("250 2.0.0 Ok queued", "timeout in
 * state RCPT", ...), valid only during the callback; it may contain server
 * text, so log it through log_quote().
 */
#ifndef POSTERN_SMTPC_H
#define POSTERN_SMTPC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "lib/err.h"
#include "smtp/smtp_reply.h"

struct event_base;
struct smtpc;

/* RFC 5321 4.5.3.2 defaults, seconds (used when a params field is 0). */
#define SMTPC_CONNECT_TIMEOUT 30
#define SMTPC_GREETING_TIMEOUT 300
#define SMTPC_COMMAND_TIMEOUT 300  /* EHLO, STARTTLS, AUTH, RSET, MAIL, RCPT */
#define SMTPC_DATAINIT_TIMEOUT 120 /* waiting for 354 */
#define SMTPC_DATA_TIMEOUT 180     /* per data block written */
#define SMTPC_DATAEND_TIMEOUT 600  /* waiting for the reply to "." */
#define SMTPC_QUIT_TIMEOUT 5       /* smtpc_quit lingers at most this long */

#define SMTPC_RCPT_TEXT_MAX 512

struct smtpc_params {
    const char *helo_name;   /* required; our host name for EHLO/HELO */
    const char *tls_policy;  /* "none" | "may" | "encrypt" | "verify"; NULL = "may" */
    const char *ca_file;     /* PEM trust anchors for "verify"; NULL = tls_ctx's store */
    const char *server_name; /* peer host name: SNI, log host=, checked name for "verify" */
    const char *auth_user;   /* NULL = no AUTH; AUTH PLAIN only ever over TLS */
    const char *auth_pass;
    unsigned connect_timeout, greeting_timeout, command_timeout; /* 0 = default above */
    unsigned datainit_timeout, data_timeout, dataend_timeout;
};

struct smtpc_rcpt {
    const char *addr;  /* in: mailbox without <>, borrowed */
    unsigned notify;   /* in: SMTP_NOTIFY_* bits (smtp_parser.h), 0 = none */
    const char *orcpt; /* in: "rfc822;xtext" as received, NULL or "" = none */
    /* out (reset by smtpc_send): */
    int code;                       /* the server's (or a local) reply code; 0 = none */
    char enh[SMTP_REPLY_ENH_MAX];   /* enhanced status code or "" */
    char text[SMTPC_RCPT_TEXT_MAX]; /* reply text (lines joined with "\n"), truncated */
    int done;                       /* 1 = code is final for this recipient */
};

struct smtpc_msg {
    const char *sender; /* envelope sender without <>, "" = null sender; borrowed */
    int body_8bit;      /* content has (or may have) 8-bit bytes */
    int smtputf8;       /* needs SMTPUTF8 (RFC 6531) */
    int ret;            /* DSN RET: 0 none, 1 FULL, 2 HDRS */
    const char *envid;  /* DSN ENVID as xtext, NULL/"" = none */
    uint64_t size;      /* content size for SIZE= (0 = unknown, not sent) */
    int content_fd;     /* borrowed; read with pread, never closed or moved */
    off_t content_offset;
    uint64_t content_len; /* bytes of content (CRLF lines, not dot-stuffed) */
    size_t nrcpt;         /* >= 1 */
    struct smtpc_rcpt *rcpt;
};

typedef void (*smtpc_conn_cb)(void *arg, int status, const char *why);
typedef void (*smtpc_msg_cb)(void *arg, int status, const char *why);

/*
 * smtpc_tls_ctx_new - a client SSL_CTX (TLS 1.2+) trusting ca_file, or the
 * system's default store when ca_file is NULL. Caller frees with
 * SSL_CTX_free(). NULL on error (logged).
 */
SSL_CTX *smtpc_tls_ctx_new(const char *ca_file);

/*
 * smtpc_connect - start connecting to sa (copied). tls_ctx is borrowed (must
 * outlive the session; NULL = TLS unavailable), p's strings are copied.
 * cb is called exactly once unless the session is freed first: status 0
 * when the session is ready for smtpc_send, else PST_EAGAIN / PST_EPERM.
 * TLS: STARTTLS is used whenever offered and the policy is not "none"; with
 * "may" a failed handshake is PST_EAGAIN why "tls failed: ..." (retrying
 * without TLS is the caller's choice); with "encrypt"/"verify" no TLS is a
 * temporary failure; "verify" checks the chain and server_name.
 * Returns the session (caller frees with smtpc_quit() or smtpc_free()) or
 * NULL on immediate failure (bad params, no memory, socket error; logged,
 * cb not called).
 */
struct smtpc *smtpc_connect(struct event_base *base, const struct sockaddr *sa, socklen_t salen,
                            SSL_CTX *tls_ctx, const struct smtpc_params *p, smtpc_conn_cb cb,
                            void *arg);

/*
 * smtpc_send - run one mail transaction on a ready, idle session. m (and
 * everything it points to) is borrowed until cb runs; results are written
 * into m->rcpt[i]. cb is called exactly once (never from inside
 * smtpc_send), unless the session is freed first.
 * Returns 0, PST_EINVAL (session busy or not yet connected, or a bad
 * message: no recipients, CR/LF/control bytes in an address, parameter too
 * long) or PST_EAGAIN (the connection is gone: reconnect). cb not called then.
 */
PST_MUST_CHECK int smtpc_send(struct smtpc *c, struct smtpc_msg *m, smtpc_msg_cb cb, void *arg);

/* smtpc_usable - 1 if the session is connected and idle (smtpc_send may be called). */
int smtpc_usable(const struct smtpc *c);

/*
 * smtpc_quit - send QUIT if the session is idle, then free it: *c is set to
 * NULL at once, the connection lingers on the event base for at most
 * SMTPC_QUIT_TIMEOUT seconds waiting for the 221. No callbacks are called.
 */
void smtpc_quit(struct smtpc **c);

/* smtpc_free - drop the connection and free at once, without callbacks. Accepts NULL. */
void smtpc_free(struct smtpc **c);

/* smtpc_tls_info - "TLSv1.3 TLS_AES_256_GCM_SHA384" once TLS is up, else NULL. Owned by c. */
const char *smtpc_tls_info(const struct smtpc *c);

/* smtpc_ehlo - the peer's extensions (zero before EHLO / after HELO). Owned by c. */
const struct smtp_ehlo *smtpc_ehlo(const struct smtpc *c);

#endif
