/*
 * pop3c.h - an asynchronous POP3 client: one connection to one server
 * (an upstream mailbox of the aggregating proxy).
 *
 * Life of a session:
 *   pop3c_connect() -> [connect, TLS, greeting, CAPA, STLS + CAPA, login]
 *                   -> ready_cb(0)
 *   pop3c_stat / list / uidl / retr / top / dele / rset / noop -> done_cb each
 *   pop3c_quit -> done_cb (status 0 = the server answered +OK: UPDATE done)
 * Commands may be queued at any time after pop3c_connect (also before
 * ready_cb: they are sent once logged in); they are answered strictly in
 * order. With PIPELINING (RFC 2449) queued commands are written without
 * waiting for replies (at most POP3C_PIPE_WINDOW outstanding), else one
 * at a time.
 *
 * Status codes given to callbacks:
 *   0            +OK
 *   PST_EPERM    -ERR to a command (the session stays usable); the response
 *                code, if any, is in r->code
 *   PST_EAUTH    login refused (-ERR to PASS / AUTH, or [AUTH] code)
 *   PST_EAGAIN   connection-level failure: connect failed, timeout, closed
 *                by the server, -ERR greeting, [SYS/TEMP] / [IN-USE] /
 *                [LOGIN-DELAY] at login
 *   PST_EINVAL   protocol error: garbage, bad status line, bad listing entry,
 *                unexpected data
 *   PST_ELIMIT   a limit was passed: line too long, too many entries,
 *                message larger than max_msg_bytes
 *   PST_ETLS     TLS failed (handshake, certificate, STLS not offered/refused)
 * Any status other than 0 and PST_EPERM closes the connection: every
 * pending callback (ready_cb, then each queued command's done_cb in order)
 * is called once with that status, then the session is dead
 * (pop3c_usable() = 0) and only pop3c_free() remains. The reason text is
 * logged once.
 *
 * Callbacks may call any pop3c function on the session, pop3c_free()
 * included (no later callback runs then; the memory is released after the
 * callback returns). Strings given to callbacks are borrowed for the call
 * and may contain server text: log them through log_quote().
 *
 * TLS: implicit (TLS from the first byte, RFC 8314 style on port 995) or
 * STLS (RFC 2595; STLS is mandatory in that mode - never a silent
 * downgrade; CAPA is re-issued after the handshake). Certificate checking
 * is on by default (POP3C_VERIFY_CA: the chain against ca_file or the
 * system store, and the host name / IP against server_name or host);
 * POP3C_VERIFY_NONE accepts any certificate (loopback, tests).
 *
 * Login: AUTH PLAIN (RFC 5034, initial response when it fits in 255
 * octets) when CAPA lists "SASL ... PLAIN", else USER / PASS. Passwords
 * are never logged and are wiped from memory after use.
 */
#ifndef POSTERN_POP3C_H
#define POSTERN_POP3C_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "lib/err.h"
#include "pop3/pop3_reply.h"

struct event_base;
struct worker_pool;
struct pop3c;

#define POP3C_CONNECT_TIMEOUT 30            /* seconds, connect + TLS handshake (default) */
#define POP3C_REPLY_TIMEOUT 30              /* seconds waiting for (the next piece of) a reply */
#define POP3C_QUIT_TIMEOUT 10               /* seconds waiting for the reply to QUIT */
#define POP3C_MSG_MAX ((uint64_t)256 << 20) /* default max bytes of one RETR/TOP body */
#define POP3C_ENTRIES_MAX 1000000u          /* default max entries of one LIST/UIDL/CAPA */
#define POP3C_QUEUE_MAX 2000000u            /* commands queued and not yet answered */
#define POP3C_PIPE_WINDOW 64                /* pipelined commands outstanding at most */
#define POP3C_FIELD_MAX 255                 /* user / password length */
#define POP3C_HOST_MAX 255

enum pop3c_tls { POP3C_TLS_NONE = 0, POP3C_TLS_STLS, POP3C_TLS_IMPLICIT };
enum pop3c_verify { POP3C_VERIFY_CA = 0, POP3C_VERIFY_NONE };

struct pop3c_params {
    const char *host; /* numeric address or host name (resolved, see pop3c_connect) */
    unsigned port;    /* 1..65535 */
    enum pop3c_tls tls;
    enum pop3c_verify verify;     /* default (0) = POP3C_VERIFY_CA */
    const char *ca_file;          /* trust anchors for VERIFY_CA; NULL = system store */
    const char *server_name;      /* SNI and checked name; NULL = host */
    SSL_CTX *tls_ctx;             /* optional, borrowed (must outlive the session); NULL = own */
    const char *user, *pass;      /* required, 1..POP3C_FIELD_MAX bytes, no CR/LF/NUL */
    const char *log_id;           /* label for log lines (e.g. "alice/gmail"), NULL = host */
    struct worker_pool *resolver; /* resolves host names off the loop; NULL = blocking */
    unsigned connect_timeout, reply_timeout; /* seconds, 0 = default */
    uint64_t max_msg_bytes;                  /* 0 = POP3C_MSG_MAX */
    uint32_t max_entries;                    /* 0 = POP3C_ENTRIES_MAX */
    int no_sasl; /* 1 = always USER/PASS, even when SASL PLAIN is offered */
};

struct pop3c_reply {
    int status;       /* see above */
    const char *code; /* RFC 2449 response code ("IN-USE", "SYS/TEMP") or "" */
    const char *text; /* server text after the indicator, or the local reason; never NULL */
    uint32_t count;   /* STAT: messages */
    uint64_t octets;  /* STAT: octets; RETR/TOP: body bytes delivered */
    uint32_t entries; /* LIST/UIDL: entries delivered */
};

struct pop3c_entry {
    uint32_t msgno;
    uint64_t size;   /* LIST; 0 for UIDL */
    const char *uid; /* UIDL (1..70 chars 0x21..0x7E); NULL for LIST */
};

typedef void (*pop3c_ready_cb)(void *arg, int status, const char *why);
typedef void (*pop3c_done_cb)(void *arg, const struct pop3c_reply *r);
/* Return 0 to go on, or a negative PST_E* code to abort the session with that status. */
typedef int (*pop3c_entry_cb)(void *arg, const struct pop3c_entry *e);
typedef int (*pop3c_data_cb)(void *arg, const char *data, size_t len);
typedef void (*pop3c_close_cb)(void *arg, int status, const char *why);

/*
 * pop3c_tls_ctx_new - a client SSL_CTX (TLS 1.2+) trusting ca_file, or the
 * system store when NULL. Caller frees with SSL_CTX_free(). NULL on error
 * (logged).
 */
SSL_CTX *pop3c_tls_ctx_new(const char *ca_file);

/*
 * pop3c_connect - start a session. p's strings are copied (the password is
 * wiped when no longer needed). A numeric host is used as is; a host name
 * is resolved with getaddrinfo() on the resolver pool when given, else
 * synchronously inside this call; each address is tried in turn.
 * ready_cb is called exactly once (never from inside pop3c_connect) unless
 * the session is freed first. Returns the session (caller frees with
 * pop3c_free()) or NULL (bad parameters, no memory, name not found when
 * resolving synchronously; logged, ready_cb not called).
 */
struct pop3c *pop3c_connect(struct event_base *base, const struct pop3c_params *p,
                            pop3c_ready_cb ready_cb, void *arg);

/*
 * pop3c_set_close_cb - cb(arg, status, why) when the connection ends with
 * no callback pending (e.g. the server drops an idle session). NULL = none.
 */
void pop3c_set_close_cb(struct pop3c *c, pop3c_close_cb cb, void *arg);

/*
 * Commands. Each queues one command; done (required) is called exactly once
 * with its reply unless the session is freed first. entry / data are called
 * zero or more times before done (0 = continue). msgno 1..POP3_MSGNO_MAX;
 * 0 for LIST / UIDL means "all" (multi-line). RETR / TOP bodies are streamed
 * to data in pieces, byte-stuffing removed, CRLFs as sent by the server,
 * never buffered whole. Return 0, PST_EINVAL (bad argument, or after QUIT),
 * PST_ELIMIT (queue full) or PST_EAGAIN (the session is dead); done is not
 * called then.
 */
PST_MUST_CHECK int pop3c_stat(struct pop3c *c, pop3c_done_cb done, void *arg);
PST_MUST_CHECK int pop3c_list(struct pop3c *c, uint32_t msgno, pop3c_entry_cb entry,
                              pop3c_done_cb done, void *arg);
PST_MUST_CHECK int pop3c_uidl(struct pop3c *c, uint32_t msgno, pop3c_entry_cb entry,
                              pop3c_done_cb done, void *arg);
PST_MUST_CHECK int pop3c_retr(struct pop3c *c, uint32_t msgno, pop3c_data_cb data,
                              pop3c_done_cb done, void *arg);
PST_MUST_CHECK int pop3c_top(struct pop3c *c, uint32_t msgno, uint32_t lines, pop3c_data_cb data,
                             pop3c_done_cb done, void *arg);
PST_MUST_CHECK int pop3c_dele(struct pop3c *c, uint32_t msgno, pop3c_done_cb done, void *arg);
PST_MUST_CHECK int pop3c_rset(struct pop3c *c, pop3c_done_cb done, void *arg);
PST_MUST_CHECK int pop3c_noop(struct pop3c *c, pop3c_done_cb done, void *arg);
/* pop3c_quit - QUIT after everything queued; the connection is closed after the reply. */
PST_MUST_CHECK int pop3c_quit(struct pop3c *c, pop3c_done_cb done, void *arg);

/*
 * pop3c_pause / pop3c_resume - stop / restart reading from the server (flow
 * control while a RETR body is forwarded to a slow reader). No reply
 * timeout runs while paused. May be called from a data callback.
 */
void pop3c_pause(struct pop3c *c);
void pop3c_resume(struct pop3c *c);

/* pop3c_usable - 1 if commands can still be queued (not dead, no QUIT queued). */
int pop3c_usable(const struct pop3c *c);

/* pop3c_caps - the CAPA bits (POP3_CAP_*) from the last CAPA (0 if none). */
unsigned pop3c_caps(const struct pop3c *c);

/* pop3c_tls_info - "TLSv1.3 TLS_AES_256_GCM_SHA384" once TLS is up, else NULL. Owned by c. */
const char *pop3c_tls_info(const struct pop3c *c);

/* pop3c_free - close at once (no QUIT, no callbacks) and free; *c = NULL. Accepts NULL. */
void pop3c_free(struct pop3c **c);

#endif
