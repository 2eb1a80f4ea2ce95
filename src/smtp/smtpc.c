/*
 * smtpc.c - the outbound SMTP client as an explicit state machine on
 * libevent bufferevents.
 *
 *   CONNECTING -> GREETING -> EHLO --5xx--> HELO
 *                              |             |
 *                              +-> STARTTLS -> TLS -> EHLO (again) -> AUTH
 *                              +-------------------------------------+--> READY
 *   READY --send--> [RSET] -> MAIL -> RCPT (xN) -> DATA -> CONTENT -> DATAEND -> READY
 *   READY --send, refused locally--> REFUSED -> READY (callback deferred)
 *   any --error/timeout/drop--> DEAD;   READY --smtpc_quit--> QUIT -> freed
 *
 * Every state change goes through smtpc_set_state(), which logs "old -> new"
 * at debug level and arms the state's timeout (RFC 5321 4.5.3.2). Replies
 * are dispatched by the state table (smtpc_states[]); a reply in a state
 * that expects none is a protocol error.
 *
 * RFCs: 5321 (SMTP; EHLO with HELO fallback on 5xx, 3.2; reply codes 4.2;
 * timeouts 4.5.3.2; dot-stuffing 4.5.2), 2920 (PIPELINING: MAIL, every RCPT
 * and DATA go out in one write, replies are read in order), 1870 (SIZE),
 * 6152 (8BITMIME; 8-bit content for a peer without 8BITMIME is converted to
 * 7-bit MIME by mime7bit.c - quoted-printable or base64 per part - and sent
 * from a private memory file; a message that cannot be converted, e.g. with
 * 8-bit header fields, is refused with 5.6.3), 6531 (SMTPUTF8, else 5.6.7), 3207
 * (STARTTLS: plain bytes after the 220 are a protocol error, all knowledge
 * from the first EHLO is discarded), 4954 (AUTH PLAIN, initial response,
 * only over TLS), 3461 (DSN parameters passed through when the peer offers
 * DSN), 3463 (enhanced status codes recorded per recipient).
 *
 * Content is streamed from the message fd with pread() in SMTPC_CHUNK
 * pieces; no more than SMTPC_OUT_HIGH bytes are queued, the write callback
 * (low watermark SMTPC_OUT_LOW) queues more. Lines starting with '.' are
 * stuffed, a bare LF becomes CRLF, the content is ended with CRLF if needed,
 * then ".". If the content cannot be read, the connection is dropped
 * without the final "." so that no truncated message is ever delivered.
 *
 * Failure policy: nothing the server sends can crash the client: bad or
 * over-long replies, unexpected replies, drops and timeouts end the session
 * with PST_EAGAIN and a clear why; the one teardown function
 * smtpc_abort() logs the reason once and calls the pending callback.
 * RSET is sent before a transaction only if the previous one failed.
 */
#include "smtpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mime7bit.h"
#include "lib/netaddr.h"
#include "lib/tls.h"
#include "smtp/smtp_parser.h"

#define SMTPC_CMD_MAX 2048            /* one command line we send, CRLF included */
#define SMTPC_CHUNK 65536             /* content bytes read per pread */
#define SMTPC_CONVERT_MAX (64u << 20) /* largest message converted to 7bit in memory */
#define SMTPC_OUT_HIGH (256 * 1024)   /* stop queuing content above this */
#define SMTPC_OUT_LOW (64 * 1024)     /* write callback fires below this */
#define SMTPC_IN_MAX (64 * 1024)      /* read watermark: input buffered at most */
#define SMTPC_WHY_MAX 600
#define SMTPC_AUTH_FIELD_MAX 255 /* user / password length for AUTH PLAIN */
#define SMTPC_ADDR_MAX 512       /* envelope address length */
#define SMTPC_HELO_MAX 255

enum smtpc_policy { SMTPC_TLS_NONE = 0, SMTPC_TLS_MAY, SMTPC_TLS_ENCRYPT, SMTPC_TLS_VERIFY };

enum smtpc_state {
    SMTPC_S_CONNECTING = 0,
    SMTPC_S_GREETING,
    SMTPC_S_EHLO,
    SMTPC_S_HELO,
    SMTPC_S_STARTTLS,
    SMTPC_S_TLS,
    SMTPC_S_AUTH,
    SMTPC_S_READY,
    SMTPC_S_REFUSED,
    SMTPC_S_RSET,
    SMTPC_S_MAIL,
    SMTPC_S_RCPT,
    SMTPC_S_DATA,
    SMTPC_S_CONTENT,
    SMTPC_S_DATAEND,
    SMTPC_S_QUIT,
    SMTPC_S_DEAD,
    SMTPC_S__COUNT
};

enum smtpc_tmo {
    SMTPC_T_NONE = 0,
    SMTPC_T_CONNECT,
    SMTPC_T_GREETING,
    SMTPC_T_COMMAND,
    SMTPC_T_DATAINIT,
    SMTPC_T_DATA,
    SMTPC_T_DATAEND,
    SMTPC_T_QUIT
};

struct smtpc {
    struct event_base *base; /* borrowed */
    struct bufferevent *bev; /* NULL once the connection is closed */
    struct event *timer;     /* the current state's timeout */
    struct event *defer;     /* runs a locally decided msg callback */
    SSL_CTX *tls_ctx;        /* borrowed */
    enum smtpc_state state;
    struct smtp_reply_parser rp;
    struct smtp_ehlo ehlo;
    int esmtp, tls, tls_skip, authed;

    char *helo_name, *server_name, *ca_file, *auth_user, *auth_pass;
    enum smtpc_policy policy;
    unsigned tmo[SMTPC_T_QUIT + 1]; /* seconds per enum smtpc_tmo */
    char addr[64];
    char tlsinfo[128];

    smtpc_conn_cb conn_cb;
    void *conn_arg;

    /* the transaction */
    struct smtpc_msg *msg;
    smtpc_msg_cb msg_cb;
    void *msg_arg;
    int pipelining;   /* this transaction's commands were pipelined */
    size_t rcpt_next; /* index of the recipient whose reply comes next */
    size_t accepted;  /* recipients with a 2xx to RCPT */
    int mail_status;  /* != 0: MAIL failed; replies to RCPT/DATA are drained */
    int empty_data;   /* 354 with no accepted recipient: "." sent alone */
    int need_rset;    /* previous transaction failed */
    int defer_status; /* for SMTPC_S_REFUSED */
    uint64_t content_pos;
    int conv_fd; /* -1, or the 7-bit converted copy of the current message (owned) */
    uint64_t conv_len;
    int at_bol, prev_cr;
    char *obuf; /* 2 * SMTPC_CHUNK + 2: one stuffed chunk */
    char *ibuf; /* SMTPC_CHUNK */
    char why[SMTPC_WHY_MAX];
};

typedef int (*smtpc_reply_fn)(struct smtpc *c, const struct smtp_reply *r);

static int smtpc_on_greeting(struct smtpc *c, const struct smtp_reply *r);
static int smtpc_on_ehlo(struct smtpc *c, const struct smtp_reply *r);
static int smtpc_on_helo(struct smtpc *c, const struct smtp_reply *r);
static int smtpc_on_starttls(struct smtpc *c, const struct smtp_reply *r);
static int smtpc_on_auth(struct smtpc *c, const struct smtp_reply *r);
static int smtpc_on_rset(struct smtpc *c, const struct smtp_reply *r);
static int smtpc_on_mail(struct smtpc *c, const struct smtp_reply *r);
static int smtpc_on_rcpt(struct smtpc *c, const struct smtp_reply *r);
static int smtpc_on_data(struct smtpc *c, const struct smtp_reply *r);
static int smtpc_on_dataend(struct smtpc *c, const struct smtp_reply *r);
static int smtpc_on_quit(struct smtpc *c, const struct smtp_reply *r);
static int smtpc_abort(struct smtpc *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int smtpc_abort_why(struct smtpc *c, int status);
static void smtpc_destroy(struct smtpc *c);
static void smtpc_install_callbacks(struct smtpc *c);

/* The state table: name for logs, timeout, reply handler (NULL = no reply expected). */
static const struct {
    const char *name;
    enum smtpc_tmo tmo;
    smtpc_reply_fn on_reply;
} smtpc_states[SMTPC_S__COUNT] = {
    [SMTPC_S_CONNECTING] = {"CONNECTING", SMTPC_T_CONNECT, NULL},
    [SMTPC_S_GREETING] = {"GREETING", SMTPC_T_GREETING, smtpc_on_greeting},
    [SMTPC_S_EHLO] = {"EHLO", SMTPC_T_COMMAND, smtpc_on_ehlo},
    [SMTPC_S_HELO] = {"HELO", SMTPC_T_COMMAND, smtpc_on_helo},
    [SMTPC_S_STARTTLS] = {"STARTTLS", SMTPC_T_COMMAND, smtpc_on_starttls},
    [SMTPC_S_TLS] = {"TLS", SMTPC_T_COMMAND, NULL},
    [SMTPC_S_AUTH] = {"AUTH", SMTPC_T_COMMAND, smtpc_on_auth},
    [SMTPC_S_READY] = {"READY", SMTPC_T_NONE, NULL},
    [SMTPC_S_REFUSED] = {"REFUSED", SMTPC_T_NONE, NULL},
    [SMTPC_S_RSET] = {"RSET", SMTPC_T_COMMAND, smtpc_on_rset},
    [SMTPC_S_MAIL] = {"MAIL", SMTPC_T_COMMAND, smtpc_on_mail},
    [SMTPC_S_RCPT] = {"RCPT", SMTPC_T_COMMAND, smtpc_on_rcpt},
    [SMTPC_S_DATA] = {"DATA", SMTPC_T_DATAINIT, smtpc_on_data},
    [SMTPC_S_CONTENT] = {"CONTENT", SMTPC_T_DATA, NULL},
    [SMTPC_S_DATAEND] = {"DATAEND", SMTPC_T_DATAEND, smtpc_on_dataend},
    [SMTPC_S_QUIT] = {"QUIT", SMTPC_T_QUIT, smtpc_on_quit},
    [SMTPC_S_DEAD] = {"DEAD", SMTPC_T_NONE, NULL},
};

/* ---- helpers ---- */

static void smtpc_arm_timer(struct smtpc *c)
{
    unsigned secs = c->tmo[smtpc_states[c->state].tmo];
    if (secs == 0) {
        evtimer_del(c->timer);
        return;
    }
    struct timeval tv = {.tv_sec = secs, .tv_usec = 0};
    evtimer_add(c->timer, &tv);
}

static void smtpc_set_state(struct smtpc *c, enum smtpc_state s)
{
    if (c->state != s)
        log_debug("smtpc state addr=%s %s -> %s", c->addr, smtpc_states[c->state].name,
                  smtpc_states[s].name);
    c->state = s;
    smtpc_arm_timer(c);
}

/* smtpc_cmd - queue one command line (without CRLF). */
__attribute__((format(printf, 2, 3))) PST_MUST_CHECK static int smtpc_cmd(struct smtpc *c,
                                                                          const char *fmt, ...)
{
    char line[SMTPC_CMD_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line) - 2)
        return PST_ELIMIT;
    line[n] = '\r';
    line[n + 1] = '\n';
    int rc = bufferevent_write(c->bev, line, (size_t)n + 2) == 0 ? 0 : PST_ENOMEM;
    explicit_bzero(line, sizeof(line)); /* may have held an AUTH response */
    return rc;
}

/* smtpc_reply_why - "550 5.1.1 text" (first line) into c->why, prefixed by what. */
static const char *smtpc_reply_why(struct smtpc *c, const char *what, const struct smtp_reply *r)
{
    const char *nl = memchr(r->text, '\n', r->textlen);
    int tl = nl ? (int)(nl - r->text) : (int)r->textlen;
    int n = snprintf(c->why, sizeof(c->why), "%s: %d%s%s %.*s", what, r->code, r->enh[0] ? " " : "",
                     r->enh, tl, r->text);
    if (n < 0)
        c->why[0] = '\0';
    /* truncation is acceptable here: why is for humans; snprintf terminated it */
    return c->why;
}

static int smtpc_status_of(int code)
{
    return code >= 500 ? PST_EPERM : PST_EAGAIN;
}

/* smtpc_close - drop the connection now (no QUIT). */
static void smtpc_close(struct smtpc *c)
{
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    evtimer_del(c->timer);
}

/*
 * smtpc_abort_why - the one teardown: the connection is closed, the reason
 * (already in c->why) is logged once, and the pending callback (connection
 * or message) is called with status. Returns 1 ("stop": c may be freed).
 * smtpc_abort formats the reason first.
 */
static int smtpc_abort_why(struct smtpc *c, int status)
{
    enum smtpc_state was = c->state;
    char q[256];
    log_info("smtpc closed addr=%s state=%s why=%s", c->addr, smtpc_states[was].name,
             log_quote(q, sizeof(q), c->why, strlen(c->why)));
    smtpc_close(c);
    smtpc_set_state(c, SMTPC_S_DEAD);
    if (was == SMTPC_S_QUIT) {
        smtpc_destroy(c);
        return 1;
    }
    if (c->conn_cb) {
        smtpc_conn_cb cb = c->conn_cb;
        c->conn_cb = NULL;
        cb(c->conn_arg, status, c->why);
        return 1;
    }
    if (c->msg_cb) {
        smtpc_msg_cb cb = c->msg_cb;
        c->msg_cb = NULL;
        c->msg = NULL;
        cb(c->msg_arg, status, c->why);
    }
    return 1;
}

static int smtpc_abort(struct smtpc *c, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->why, sizeof(c->why), fmt, ap);
    va_end(ap);
    if (n < 0)
        c->why[0] = '\0';
    return smtpc_abort_why(c, status);
}

/* smtpc_txn_done - the transaction is over; the session is idle again. Returns 1. */
static int smtpc_txn_done(struct smtpc *c, int status)
{
    if (status != 0 && c->state != SMTPC_S_REFUSED) /* a local refusal sent nothing */
        c->need_rset = 1;
    smtpc_msg_cb cb = c->msg_cb;
    c->msg_cb = NULL;
    c->msg = NULL;
    smtpc_set_state(c, SMTPC_S_READY);
    if (cb)
        cb(c->msg_arg, status, c->why);
    return 1;
}

static void smtpc_rcpt_set(struct smtpc_rcpt *rc, const struct smtp_reply *r, int done)
{
    rc->code = r->code;
    snprintf(rc->enh, sizeof(rc->enh), "%s", r->enh);
    size_t n = r->textlen < sizeof(rc->text) - 1 ? r->textlen : sizeof(rc->text) - 1;
    memcpy(rc->text, r->text, n);
    rc->text[n] = '\0';
    rc->done = done;
}

/* smtpc_rcpt_set_all - give every recipient without a final answer the reply r. */
static void smtpc_rcpt_set_all(struct smtpc *c, const struct smtp_reply *r)
{
    for (size_t i = 0; i < c->msg->nrcpt; i++)
        if (!c->msg->rcpt[i].done)
            smtpc_rcpt_set(&c->msg->rcpt[i], r, 1);
}

/* ---- connection setup ---- */

static int smtpc_send_ehlo(struct smtpc *c)
{
    if (smtpc_cmd(c, "EHLO %s", c->helo_name) < 0)
        return smtpc_abort(c, PST_EAGAIN, "cannot queue EHLO");
    smtpc_set_state(c, SMTPC_S_EHLO);
    return 0;
}

static int smtpc_on_greeting(struct smtpc *c, const struct smtp_reply *r)
{
    if (r->code != 220) {
        smtpc_reply_why(c, "greeting", r);
        return smtpc_abort_why(c, smtpc_status_of(r->code));
    }
    return smtpc_send_ehlo(c);
}

/* smtpc_ready - setup is complete: log, tell the caller. Returns 1. */
static int smtpc_ready(struct smtpc *c)
{
    char host[300];
    const char *name = c->server_name ? c->server_name : "-";
    log_info("smtpc connected host=%s addr=%s tls=%s esmtp=%s auth=%s",
             log_quote(host, sizeof(host), name, strlen(name)), c->addr, c->tls ? "yes" : "no",
             c->esmtp ? "yes" : "no", c->authed ? "yes" : "no");
    smtpc_set_state(c, SMTPC_S_READY);
    smtpc_conn_cb cb = c->conn_cb;
    c->conn_cb = NULL;
    snprintf(c->why, sizeof(c->why), "connected");
    if (cb)
        cb(c->conn_arg, 0, c->why);
    return 1;
}

/* smtpc_auth_plain - send "AUTH PLAIN <base64(\0user\0pass)>" (RFC 4954, 4616). */
static int smtpc_auth_plain(struct smtpc *c)
{
    unsigned char raw[2 * SMTPC_AUTH_FIELD_MAX + 2];
    char b64[((sizeof(raw) + 2) / 3) * 4 + 1];
    size_t ul = strlen(c->auth_user), pl = strlen(c->auth_pass);
    raw[0] = '\0';
    memcpy(raw + 1, c->auth_user, ul);
    raw[1 + ul] = '\0';
    memcpy(raw + 2 + ul, c->auth_pass, pl);
    int n = EVP_EncodeBlock((unsigned char *)b64, raw, (int)(ul + pl + 2));
    explicit_bzero(raw, sizeof(raw));
    int rc = n > 0 ? smtpc_cmd(c, "AUTH PLAIN %s", b64) : PST_EINVAL;
    explicit_bzero(b64, sizeof(b64));
    if (rc < 0)
        return smtpc_abort(c, PST_EAGAIN, "cannot queue AUTH");
    smtpc_set_state(c, SMTPC_S_AUTH);
    return 0;
}

/* smtpc_after_ehlo - EHLO/HELO done: STARTTLS, AUTH or ready. */
static int smtpc_after_ehlo(struct smtpc *c)
{
    if (!c->tls && !c->tls_skip && c->policy != SMTPC_TLS_NONE) {
        if ((c->ehlo.ext & SMTP_EXT_STARTTLS) && c->tls_ctx) {
            if (smtpc_cmd(c, "STARTTLS") < 0)
                return smtpc_abort(c, PST_EAGAIN, "cannot queue STARTTLS");
            smtpc_set_state(c, SMTPC_S_STARTTLS);
            return 0;
        }
        if (c->policy >= SMTPC_TLS_ENCRYPT)
            return smtpc_abort(c, PST_EAGAIN, "TLS required but %s",
                               c->tls_ctx ? "STARTTLS not offered" : "no TLS context");
    }
    if (c->auth_user && !c->authed) {
        if (!c->tls)
            return smtpc_abort(c, PST_EAGAIN, "AUTH credentials configured but no TLS");
        if (c->ehlo.ext & SMTP_EXT_AUTH) {
            if (!(c->ehlo.auth & SMTP_AUTH_M_PLAIN))
                return smtpc_abort(c, PST_EAGAIN, "no common AUTH mechanism (need PLAIN)");
            return smtpc_auth_plain(c);
        }
        /* AUTH not offered: go on without (the server may relay by address). */
    }
    return smtpc_ready(c);
}

static int smtpc_on_ehlo(struct smtpc *c, const struct smtp_reply *r)
{
    if (r->code >= 200 && r->code < 300) {
        smtp_reply_ehlo(r, &c->ehlo);
        c->esmtp = 1;
        return smtpc_after_ehlo(c);
    }
    if (r->code >= 500) { /* RFC 5321 3.2: fall back to HELO */
        if (smtpc_cmd(c, "HELO %s", c->helo_name) < 0)
            return smtpc_abort(c, PST_EAGAIN, "cannot queue HELO");
        smtpc_set_state(c, SMTPC_S_HELO);
        return 0;
    }
    smtpc_reply_why(c, "EHLO", r);
    return smtpc_abort_why(c, PST_EAGAIN);
}

static int smtpc_on_helo(struct smtpc *c, const struct smtp_reply *r)
{
    if (r->code >= 200 && r->code < 300) {
        memset(&c->ehlo, 0, sizeof(c->ehlo));
        c->esmtp = 0;
        return smtpc_after_ehlo(c);
    }
    smtpc_reply_why(c, "HELO", r);
    return smtpc_abort_why(c, smtpc_status_of(r->code));
}

/* smtpc_is_ip - a literal address is not a valid SNI name (RFC 6066 3). */
static int smtpc_is_ip(const char *s)
{
    unsigned char tmp[16];
    return inet_pton(AF_INET, s, tmp) == 1 || inet_pton(AF_INET6, s, tmp) == 1;
}

/* smtpc_ssl_new - an SSL for this connection with SNI and, for "verify", peer checks. */
static SSL *smtpc_ssl_new(struct smtpc *c)
{
    SSL *ssl = SSL_new(c->tls_ctx);
    if (!ssl)
        return NULL;
    if (c->server_name && !smtpc_is_ip(c->server_name) &&
        !SSL_set_tlsext_host_name(ssl, c->server_name))
        goto fail;
    if (c->policy != SMTPC_TLS_VERIFY) {
        SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
        return ssl;
    }
    SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
    if (!SSL_set1_host(ssl, c->server_name))
        goto fail;
    if (c->ca_file) {
        X509_STORE *st = X509_STORE_new();
        int ok = st && X509_STORE_load_file(st, c->ca_file) == 1 &&
                 SSL_set1_verify_cert_store(ssl, st) == 1;
        X509_STORE_free(st);
        if (!ok)
            goto fail;
    }
    return ssl;
fail:
    SSL_free(ssl);
    return NULL;
}

/* smtpc_start_tls - the 220 to STARTTLS is in: move the socket to a TLS bufferevent. */
static int smtpc_start_tls(struct smtpc *c)
{
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    SSL *ssl = smtpc_ssl_new(c);
    if (!ssl) {
        tls_log_errors("smtpc");
        return smtpc_abort(c, PST_EAGAIN, "tls failed: cannot set up TLS");
    }
    bufferevent_setfd(c->bev, -1);
    bufferevent_free(c->bev);
    c->bev = bufferevent_openssl_socket_new(c->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING,
                                            BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!c->bev) /* libevent frees ssl and closes fd on this failure */
        return smtpc_abort(c, PST_EAGAIN, "tls failed: cannot create TLS bufferevent");
    bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    smtpc_install_callbacks(c);
    smtpc_set_state(c, SMTPC_S_TLS);
    return 1; /* the old input buffer is gone: stop reading it */
}

static int smtpc_on_starttls(struct smtpc *c, const struct smtp_reply *r)
{
    if (r->code == 220) {
        /* RFC 3207 5: nothing may follow the 220 in plain text. */
        if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
            return smtpc_abort(c, PST_EAGAIN, "data after the STARTTLS reply");
        return smtpc_start_tls(c);
    }
    if (c->policy == SMTPC_TLS_MAY) {
        char q[200];
        log_info("smtpc starttls refused addr=%s code=%d text=%s", c->addr, r->code,
                 log_quote(q, sizeof(q), r->text, r->textlen));
        c->tls_skip = 1;
        return smtpc_after_ehlo(c);
    }
    smtpc_reply_why(c, "TLS required but STARTTLS refused", r);
    return smtpc_abort_why(c, PST_EAGAIN);
}

/* smtpc_tls_up - the handshake finished: forget the first EHLO, say EHLO again. */
static int smtpc_tls_up(struct smtpc *c)
{
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    c->tls = 1;
    if (ssl)
        tls_describe(ssl, c->tlsinfo, sizeof(c->tlsinfo));
    memset(&c->ehlo, 0, sizeof(c->ehlo));
    c->esmtp = 0;
    smtp_reply_init(&c->rp);
    return smtpc_send_ehlo(c);
}

static int smtpc_on_auth(struct smtpc *c, const struct smtp_reply *r)
{
    if (r->code >= 200 && r->code < 300) {
        c->authed = 1;
        return smtpc_ready(c);
    }
    /* A rejected login is a configuration problem: defer (soft bounce), never bounce. */
    smtpc_reply_why(c, "AUTH failed", r);
    return smtpc_abort_why(c, PST_EAGAIN);
}

/* ---- the transaction ---- */

static const char *smtpc_notify_str(unsigned n, char *out, size_t outsz)
{
    if (n & SMTP_NOTIFY_NEVER) {
        snprintf(out, outsz, "NEVER");
        return out;
    }
    int w = snprintf(out, outsz, "%s%s%s", (n & SMTP_NOTIFY_SUCCESS) ? "SUCCESS," : "",
                     (n & SMTP_NOTIFY_FAILURE) ? "FAILURE," : "",
                     (n & SMTP_NOTIFY_DELAY) ? "DELAY," : "");
    if (w > 0 && (size_t)w < outsz)
        out[w - 1] = '\0'; /* the last comma */
    return out;
}

static int smtpc_cmd_mail(struct smtpc *c)
{
    const struct smtpc_msg *m = c->msg;
    char size[32] = "", envid[SMTP_ENVID_MAX + 16] = "";
    uint64_t msize = c->conv_fd >= 0 ? c->conv_len : m->size;
    if ((c->ehlo.ext & SMTP_EXT_SIZE) && msize > 0)
        snprintf(size, sizeof(size), " SIZE=%llu", (unsigned long long)msize);
    int dsn = (c->ehlo.ext & SMTP_EXT_DSN) != 0;
    if (dsn && m->envid && m->envid[0])
        snprintf(envid, sizeof(envid), " ENVID=%s", m->envid);
    return smtpc_cmd(c, "MAIL FROM:<%s>%s%s%s%s%s", m->sender, size,
                     (m->body_8bit && (c->ehlo.ext & SMTP_EXT_8BITMIME)) ? " BODY=8BITMIME" : "",
                     m->smtputf8 ? " SMTPUTF8" : "",
                     dsn && m->ret == 1   ? " RET=FULL"
                     : dsn && m->ret == 2 ? " RET=HDRS"
                                          : "",
                     envid);
}

static int smtpc_cmd_rcpt(struct smtpc *c, size_t i)
{
    const struct smtpc_rcpt *rc = &c->msg->rcpt[i];
    char notify[48] = "", nbuf[40];
    int dsn = (c->ehlo.ext & SMTP_EXT_DSN) != 0;
    if (dsn && rc->notify)
        snprintf(notify, sizeof(notify), " NOTIFY=%s",
                 smtpc_notify_str(rc->notify, nbuf, sizeof(nbuf)));
    int orcpt = dsn && rc->orcpt && rc->orcpt[0];
    return smtpc_cmd(c, "RCPT TO:<%s>%s%s%s", rc->addr, notify, orcpt ? " ORCPT=" : "",
                     orcpt ? rc->orcpt : "");
}

/* smtpc_start_mail - MAIL (and with PIPELINING every RCPT and DATA) in one write. */
PST_MUST_CHECK static int smtpc_queue_mail(struct smtpc *c)
{
    c->pipelining = (c->ehlo.ext & SMTP_EXT_PIPELINING) != 0;
    int rc = smtpc_cmd_mail(c);
    for (size_t i = 0; rc == 0 && c->pipelining && i < c->msg->nrcpt; i++)
        rc = smtpc_cmd_rcpt(c, i);
    if (rc == 0 && c->pipelining)
        rc = smtpc_cmd(c, "DATA");
    if (rc < 0)
        return rc;
    smtpc_set_state(c, SMTPC_S_MAIL);
    return 0;
}

static int smtpc_start_mail(struct smtpc *c)
{
    int rc = smtpc_queue_mail(c);
    if (rc < 0)
        return smtpc_abort(c, PST_EAGAIN, "cannot queue MAIL: %s", err_str(rc));
    return 0;
}

static int smtpc_on_rset(struct smtpc *c, const struct smtp_reply *r)
{
    if (r->code < 200 || r->code >= 300) {
        smtpc_reply_why(c, "RSET", r);
        return smtpc_abort_why(c, PST_EAGAIN);
    }
    c->need_rset = 0;
    return smtpc_start_mail(c);
}

/* smtpc_conn_lost - 421 (RFC 5321 3.8): the server is closing; defer everything left. */
static int smtpc_conn_lost(struct smtpc *c, const char *what, const struct smtp_reply *r)
{
    smtpc_reply_why(c, what, r);
    return smtpc_abort_why(c, PST_EAGAIN);
}

static int smtpc_on_mail(struct smtpc *c, const struct smtp_reply *r)
{
    if (r->code == 421)
        return smtpc_conn_lost(c, "MAIL FROM", r);
    if (r->code >= 200 && r->code < 300) {
        smtpc_set_state(c, SMTPC_S_RCPT);
        if (!c->pipelining && smtpc_cmd_rcpt(c, 0) < 0)
            return smtpc_abort(c, PST_EAGAIN, "cannot queue RCPT");
        return 0;
    }
    smtpc_rcpt_set_all(c, r);
    smtpc_reply_why(c, "MAIL FROM", r);
    c->mail_status = smtpc_status_of(r->code);
    if (!c->pipelining)
        return smtpc_txn_done(c, c->mail_status);
    smtpc_set_state(c, SMTPC_S_RCPT); /* drain the pipelined replies */
    return 0;
}

/* smtpc_send_data - all RCPT replies are in (lock-step): DATA, or stop if none was accepted. */
static int smtpc_after_rcpts(struct smtpc *c)
{
    smtpc_set_state(c, SMTPC_S_DATA);
    if (c->pipelining)
        return 0;
    if (c->accepted == 0) {
        snprintf(c->why, sizeof(c->why), "no recipient accepted");
        c->need_rset = 1;
        return smtpc_txn_done(c, 0);
    }
    if (smtpc_cmd(c, "DATA") < 0)
        return smtpc_abort(c, PST_EAGAIN, "cannot queue DATA");
    return 0;
}

static int smtpc_on_rcpt(struct smtpc *c, const struct smtp_reply *r)
{
    if (r->code == 421)
        return smtpc_conn_lost(c, "RCPT TO", r);
    struct smtpc_rcpt *rc = &c->msg->rcpt[c->rcpt_next];
    if (!c->mail_status) {
        int ok = r->code >= 200 && r->code < 300;
        smtpc_rcpt_set(rc, r, !ok);
        if (ok)
            c->accepted++;
    }
    c->rcpt_next++;
    if (c->rcpt_next >= c->msg->nrcpt)
        return smtpc_after_rcpts(c);
    smtpc_arm_timer(c);
    if (!c->pipelining && smtpc_cmd_rcpt(c, c->rcpt_next) < 0)
        return smtpc_abort(c, PST_EAGAIN, "cannot queue RCPT");
    return 0;
}

static int smtpc_pump(struct smtpc *c);

static int smtpc_on_data(struct smtpc *c, const struct smtp_reply *r)
{
    if (r->code == 421)
        return smtpc_conn_lost(c, "DATA", r);
    int go = r->code == 354;
    if (c->mail_status) {
        if (go) /* a server that takes DATA after refusing MAIL is out of step */
            return smtpc_abort(c, PST_EAGAIN, "354 to DATA after MAIL was refused");
        return smtpc_txn_done(c, c->mail_status); /* why still holds the MAIL reply */
    }
    if (c->accepted == 0) {
        c->need_rset = 1;
        snprintf(c->why, sizeof(c->why), "no recipient accepted");
        if (!go)
            return smtpc_txn_done(c, 0);
        /* RFC 2920 3.1: with no valid recipient the client sends just "." */
        c->empty_data = 1;
        if (bufferevent_write(c->bev, ".\r\n", 3) < 0)
            return smtpc_abort(c, PST_EAGAIN, "cannot queue end of data");
        smtpc_set_state(c, SMTPC_S_DATAEND);
        return 0;
    }
    if (!go) {
        for (size_t i = 0; i < c->msg->nrcpt; i++)
            if (!c->msg->rcpt[i].done)
                smtpc_rcpt_set(&c->msg->rcpt[i], r, 1);
        smtpc_reply_why(c, "DATA", r);
        return smtpc_txn_done(c, smtpc_status_of(r->code));
    }
    c->content_pos = 0;
    c->at_bol = 1;
    c->prev_cr = 0;
    smtpc_set_state(c, SMTPC_S_CONTENT);
    return smtpc_pump(c);
}

/*
 * smtpc_stuff - copy n content bytes into out (room 2n+1), dot-stuffing lines
 * that start with '.' and turning a bare LF into CRLF (RFC 5321 4.5.2, 2.3.8).
 * Returns the output length.
 */
static size_t smtpc_stuff(struct smtpc *c, const char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = in[i];
        if (c->at_bol && ch == '.')
            out[o++] = '.';
        if (ch == '\n' && !c->prev_cr)
            out[o++] = '\r';
        out[o++] = ch;
        c->prev_cr = ch == '\r';
        c->at_bol = ch == '\n';
    }
    return o;
}

/* smtpc_pump - queue content until the output is full or the content ends. */
static int smtpc_pump(struct smtpc *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    const struct smtpc_msg *m = c->msg;
    int fd = c->conv_fd >= 0 ? c->conv_fd : m->content_fd;
    off_t base = c->conv_fd >= 0 ? 0 : m->content_offset;
    uint64_t total = c->conv_fd >= 0 ? c->conv_len : m->content_len;
    while (evbuffer_get_length(out) < SMTPC_OUT_HIGH && c->content_pos < total) {
        uint64_t left = total - c->content_pos;
        size_t want = left < SMTPC_CHUNK ? (size_t)left : SMTPC_CHUNK;
        ssize_t got = pread(fd, c->ibuf, want, base + (off_t)c->content_pos);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) /* drop without "." so that nothing truncated is delivered */
            return smtpc_abort(c, PST_EAGAIN, "cannot read message content: %s",
                               got < 0 ? strerror(errno) : "unexpected end of file");
        c->content_pos += (uint64_t)got;
        size_t o = smtpc_stuff(c, c->ibuf, (size_t)got, c->obuf);
        if (evbuffer_add(out, c->obuf, o) < 0)
            return smtpc_abort(c, PST_EAGAIN, "out of memory queuing content");
        smtpc_arm_timer(c); /* data block timeout */
    }
    if (c->content_pos < total)
        return 0; /* the write callback continues */
    int rc = 0;
    if (c->prev_cr) /* content ended in a bare CR: complete the line */
        rc = evbuffer_add(out, "\n", 1);
    else if (!c->at_bol)
        rc = evbuffer_add(out, "\r\n", 2);
    if (rc == 0)
        rc = evbuffer_add(out, ".\r\n", 3);
    if (rc < 0)
        return smtpc_abort(c, PST_EAGAIN, "out of memory queuing end of data");
    smtpc_set_state(c, SMTPC_S_DATAEND);
    return 0;
}

static int smtpc_on_dataend(struct smtpc *c, const struct smtp_reply *r)
{
    if (c->empty_data)
        return smtpc_txn_done(c, 0); /* why: "no recipient accepted" */
    for (size_t i = 0; i < c->msg->nrcpt; i++)
        if (!c->msg->rcpt[i].done)
            smtpc_rcpt_set(&c->msg->rcpt[i], r, 1);
    smtpc_reply_why(c, "end of data", r);
    if (r->code >= 200 && r->code < 300)
        return smtpc_txn_done(c, 0);
    if (r->code == 421) {
        return smtpc_abort_why(c, PST_EAGAIN);
    }
    return smtpc_txn_done(c, smtpc_status_of(r->code));
}

static int smtpc_on_quit(struct smtpc *c, const struct smtp_reply *r)
{
    smtpc_destroy(c);
    return 1;
}

/* ---- libevent callbacks ---- */

static void smtpc_read_cb(struct bufferevent *bev, void *arg)
{
    struct smtpc *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (evbuffer_get_length(in) > 0) {
        int r = smtp_reply_read(&c->rp, in);
        if (r < 0) {
            smtpc_abort(c, PST_EAGAIN, "bad reply in state %s: %s", smtpc_states[c->state].name,
                        r == PST_ELIMIT ? "reply line or reply too long" : "syntax error");
            return;
        }
        if (r == 0)
            return;
        smtpc_reply_fn fn = smtpc_states[c->state].on_reply;
        if (!fn) {
            char q[200];
            smtpc_abort(c, PST_EAGAIN, "unexpected reply in state %s: %d %s",
                        smtpc_states[c->state].name, c->rp.reply.code,
                        log_quote(q, sizeof(q), c->rp.reply.text, c->rp.reply.textlen));
            return;
        }
        if (fn(c, &c->rp.reply) != 0)
            return; /* a callback ran or the bufferevent changed: c may be gone */
    }
}

static void smtpc_write_cb(struct bufferevent *bev, void *arg)
{
    struct smtpc *c = arg;
    if (c->state == SMTPC_S_CONTENT)
        (void)smtpc_pump(c);
}

static void smtpc_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct smtpc *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        if (c->state == SMTPC_S_CONNECTING) {
            smtpc_set_state(c, SMTPC_S_GREETING);
            return;
        }
        if (c->state == SMTPC_S_TLS) {
            (void)smtpc_tls_up(c);
            return;
        }
        return;
    }
    if (c->state == SMTPC_S_QUIT) {
        smtpc_destroy(c);
        return;
    }
    if (c->state == SMTPC_S_TLS) {
        unsigned long e = bufferevent_get_openssl_error(bev);
        char eb[256] = "handshake failed";
        if (e)
            ERR_error_string_n(e, eb, sizeof(eb));
        SSL *ssl = bufferevent_openssl_get_ssl(bev);
        long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
        if (vr != X509_V_OK)
            smtpc_abort(c, PST_EAGAIN, "tls failed: certificate: %s",
                        X509_verify_cert_error_string(vr));
        else
            smtpc_abort(c, PST_EAGAIN, "tls failed: %s", eb);
        return;
    }
    if (c->state == SMTPC_S_CONNECTING) {
        int err = EVUTIL_SOCKET_ERROR();
        smtpc_abort(c, PST_EAGAIN, "connect failed: %s", evutil_socket_error_to_string(err));
        return;
    }
    smtpc_abort(c, PST_EAGAIN, "connection %s in state %s",
                (what & BEV_EVENT_EOF) ? "closed by server" : "lost", smtpc_states[c->state].name);
}

static void smtpc_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct smtpc *c = arg;
    if (c->state == SMTPC_S_QUIT) {
        smtpc_destroy(c);
        return;
    }
    smtpc_abort(c, PST_EAGAIN, "timeout in state %s", smtpc_states[c->state].name);
}

static void smtpc_defer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct smtpc *c = arg;
    if (c->state == SMTPC_S_REFUSED)
        (void)smtpc_txn_done(c, c->defer_status);
}

static void smtpc_install_callbacks(struct smtpc *c)
{
    bufferevent_setcb(c->bev, smtpc_read_cb, smtpc_write_cb, smtpc_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, SMTPC_IN_MAX);
    bufferevent_setwatermark(c->bev, EV_WRITE, SMTPC_OUT_LOW, 0);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* ---- public API ---- */

SSL_CTX *smtpc_tls_ctx_new(const char *ca_file)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        tls_log_errors("smtpc_tls_ctx_new");
        return NULL;
    }
    int ok = SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1;
    if (ok)
        ok = ca_file ? SSL_CTX_load_verify_file(ctx, ca_file) == 1
                     : SSL_CTX_set_default_verify_paths(ctx) == 1;
    if (!ok) {
        tls_log_errors("smtpc_tls_ctx_new");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static int smtpc_policy_parse(const char *s, enum smtpc_policy *out)
{
    static const char *const names[] = {"none", "may", "encrypt", "verify"};
    if (!s) {
        *out = SMTPC_TLS_MAY;
        return 0;
    }
    for (size_t i = 0; i < PST_ARRAY_LEN(names); i++) {
        if (strcasecmp(s, names[i]) == 0) {
            *out = (enum smtpc_policy)i;
            return 0;
        }
    }
    return PST_EINVAL;
}

/* smtpc_clean - s is non-empty-or-allowed, printable, without <>, and at most max bytes. */
static int smtpc_clean(const char *s, size_t max, int allow_empty)
{
    if (!s)
        return 0;
    size_t n = strlen(s);
    if (n > max || (n == 0 && !allow_empty))
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x21 || ch == 0x7f || ch == '<' || ch == '>')
            return 0;
    }
    return 1;
}

static char *smtpc_dup(const char *s, int *err)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *err = 1;
    return d;
}

static int smtpc_params_ok(const struct smtpc_params *p, enum smtpc_policy *pol)
{
    if (smtpc_policy_parse(p->tls_policy, pol) < 0)
        return 0;
    if (!smtpc_clean(p->helo_name, SMTPC_HELO_MAX, 0))
        return 0;
    if (*pol == SMTPC_TLS_VERIFY && (!p->server_name || !p->server_name[0]))
        return 0;
    if ((p->auth_user == NULL) != (p->auth_pass == NULL))
        return 0;
    if (p->auth_user && (strlen(p->auth_user) > SMTPC_AUTH_FIELD_MAX ||
                         strlen(p->auth_pass) > SMTPC_AUTH_FIELD_MAX))
        return 0;
    return 1;
}

static void smtpc_set_timeouts(struct smtpc *c, const struct smtpc_params *p)
{
    c->tmo[SMTPC_T_NONE] = 0;
    c->tmo[SMTPC_T_CONNECT] = p->connect_timeout ? p->connect_timeout : SMTPC_CONNECT_TIMEOUT;
    c->tmo[SMTPC_T_GREETING] = p->greeting_timeout ? p->greeting_timeout : SMTPC_GREETING_TIMEOUT;
    c->tmo[SMTPC_T_COMMAND] = p->command_timeout ? p->command_timeout : SMTPC_COMMAND_TIMEOUT;
    c->tmo[SMTPC_T_DATAINIT] = p->datainit_timeout ? p->datainit_timeout : SMTPC_DATAINIT_TIMEOUT;
    c->tmo[SMTPC_T_DATA] = p->data_timeout ? p->data_timeout : SMTPC_DATA_TIMEOUT;
    c->tmo[SMTPC_T_DATAEND] = p->dataend_timeout ? p->dataend_timeout : SMTPC_DATAEND_TIMEOUT;
    c->tmo[SMTPC_T_QUIT] = SMTPC_QUIT_TIMEOUT;
}

struct smtpc *smtpc_connect(struct event_base *base, const struct sockaddr *sa, socklen_t salen,
                            SSL_CTX *tls_ctx, const struct smtpc_params *p, smtpc_conn_cb cb,
                            void *arg)
{
    enum smtpc_policy pol;
    if (!p || !sa || !smtpc_params_ok(p, &pol)) {
        log_warn("smtpc connect error=\"bad parameters\"");
        return NULL;
    }
    struct smtpc *c = calloc(1, sizeof(*c));
    if (c)
        c->conv_fd = -1;
    if (!c)
        return NULL;
    int err = 0;
    c->base = base;
    c->tls_ctx = tls_ctx;
    c->policy = pol;
    c->conn_cb = cb;
    c->conn_arg = arg;
    c->helo_name = smtpc_dup(p->helo_name, &err);
    c->server_name = smtpc_dup(p->server_name, &err);
    c->ca_file = smtpc_dup(p->ca_file, &err);
    c->auth_user = smtpc_dup(p->auth_user, &err);
    c->auth_pass = smtpc_dup(p->auth_pass, &err);
    smtpc_set_timeouts(c, p);
    smtp_reply_init(&c->rp);
    netaddr_to_str(sa, c->addr, sizeof(c->addr));
    c->obuf = malloc(2 * SMTPC_CHUNK + 2);
    c->ibuf = malloc(SMTPC_CHUNK);
    c->timer = evtimer_new(base, smtpc_timer_cb, c);
    c->defer = event_new(base, -1, 0, smtpc_defer_cb, c);
    c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (err || !c->obuf || !c->ibuf || !c->timer || !c->defer || !c->bev) {
        smtpc_destroy(c);
        return NULL;
    }
    smtpc_install_callbacks(c);
    smtpc_set_state(c, SMTPC_S_CONNECTING);
    if (bufferevent_socket_connect(c->bev, sa, (int)salen) < 0) {
        log_warn("smtpc connect addr=%s error=\"%s\"", c->addr, strerror(errno));
        smtpc_destroy(c);
        return NULL;
    }
    return c;
}

/* smtpc_has_8bit - 1 if the content has a byte >= 0x80, 0 if not, <0 on read error. */
static int smtpc_has_8bit(struct smtpc *c, const struct smtpc_msg *m)
{
    uint64_t pos = 0;
    while (pos < m->content_len) {
        uint64_t left = m->content_len - pos;
        size_t want = left < SMTPC_CHUNK ? (size_t)left : SMTPC_CHUNK;
        ssize_t got = pread(m->content_fd, c->ibuf, want, m->content_offset + (off_t)pos);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return PST_EIO;
        for (ssize_t i = 0; i < got; i++)
            if ((unsigned char)c->ibuf[i] >= 0x80)
                return 1;
        pos += (uint64_t)got;
    }
    return 0;
}

/* smtpc_refuse - the message cannot go to this peer; report through the deferred callback. */
static int smtpc_refuse(struct smtpc *c, int status, int code, const char *enh, const char *text)
{
    struct smtp_reply r;
    r.code = code;
    snprintf(r.enh, sizeof(r.enh), "%s", enh);
    int n = snprintf(r.text, sizeof(r.text), "%s", text);
    r.textlen = n > 0 ? (size_t)n : 0;
    r.nlines = 1;
    r.truncated = 0;
    smtpc_rcpt_set_all(c, &r);
    snprintf(c->why, sizeof(c->why), "%d %s %s", code, enh, text);
    c->defer_status = status;
    smtpc_set_state(c, SMTPC_S_REFUSED);
    event_active(c->defer, 0, 1);
    return 0;
}

static int smtpc_msg_ok(const struct smtpc_msg *m)
{
    if (!m || m->nrcpt == 0 || !m->rcpt || m->content_fd < 0)
        return 0;
    if (!smtpc_clean(m->sender, SMTPC_ADDR_MAX, 1))
        return 0;
    if (m->envid && !smtpc_clean(m->envid, SMTP_ENVID_MAX, 1))
        return 0;
    for (size_t i = 0; i < m->nrcpt; i++) {
        if (!smtpc_clean(m->rcpt[i].addr, SMTPC_ADDR_MAX, 0))
            return 0;
        if (m->rcpt[i].orcpt && !smtpc_clean(m->rcpt[i].orcpt, SMTP_ORCPT_MAX, 1))
            return 0;
    }
    return 1;
}

static void smtpc_conv_release(struct smtpc *c)
{
    if (c->conv_fd >= 0)
        close(c->conv_fd);
    c->conv_fd = -1;
    c->conv_len = 0;
}

/*
 * smtpc_downgrade - RFC 6152 3: convert m's content to 7-bit MIME into a
 * private memory file (c->conv_fd), sent instead of the original. Returns 0,
 * PST_EINVAL/PST_ELIMIT (cannot be converted), PST_ENOMEM or PST_EIO.
 */
static int smtpc_downgrade(struct smtpc *c, const struct smtpc_msg *m)
{
    if (m->content_len > SMTPC_CONVERT_MAX)
        return PST_ELIMIT;
    size_t len = (size_t)m->content_len;
    char *raw = malloc(len ? len : 1);
    buf_t *o = buf_new(len * 4 + 65536);
    int rc = (!raw || !o) ? PST_ENOMEM : 0;
    size_t have = 0;
    while (rc == 0 && have < len) {
        ssize_t got = pread(m->content_fd, raw + have, len - have, m->content_offset + (off_t)have);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            rc = PST_EIO;
        else
            have += (size_t)got;
    }
    if (rc == 0)
        rc = mime7bit_convert(raw, len, o);
    int fd = -1;
    if (rc == 0) {
        fd = memfd_create("postern-7bit", MFD_CLOEXEC);
        size_t off = 0;
        while (fd >= 0 && off < o->len) {
            ssize_t w = write(fd, o->data + off, o->len - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        if (fd < 0 || off < o->len) {
            rc = PST_EIO;
            if (fd >= 0)
                close(fd);
            fd = -1;
        }
    }
    if (rc == 0) {
        smtpc_conv_release(c);
        c->conv_fd = fd;
        c->conv_len = o->len;
        log_info("smtpc converted host=%s from=%zu to=%zu reason=\"peer lacks 8BITMIME\"",
                 c->server_name ? c->server_name : "-", len, o->len);
    }
    free(raw);
    buf_free(&o);
    return rc;
}

int smtpc_send(struct smtpc *c, struct smtpc_msg *m, smtpc_msg_cb cb, void *arg)
{
    if (!c || c->state == SMTPC_S_DEAD || !c->bev)
        return PST_EAGAIN;
    if (c->state != SMTPC_S_READY || !smtpc_msg_ok(m))
        return PST_EINVAL;
    for (size_t i = 0; i < m->nrcpt; i++) {
        m->rcpt[i].code = 0;
        m->rcpt[i].enh[0] = '\0';
        m->rcpt[i].text[0] = '\0';
        m->rcpt[i].done = 0;
    }
    smtpc_conv_release(c);
    c->msg = m;
    c->msg_cb = cb;
    c->msg_arg = arg;
    c->rcpt_next = 0;
    c->accepted = 0;
    c->mail_status = 0;
    c->empty_data = 0;
    c->why[0] = '\0';

    if ((c->ehlo.ext & SMTP_EXT_SIZE) && c->ehlo.size_max > 0 && m->size > c->ehlo.size_max)
        return smtpc_refuse(c, PST_EPERM, 552, "5.3.4",
                            "message size exceeds fixed limit of the receiving server");
    if (m->smtputf8 && !(c->ehlo.ext & SMTP_EXT_SMTPUTF8))
        return smtpc_refuse(c, PST_EPERM, 554, "5.6.7",
                            "SMTPUTF8 required but not supported by the receiving server");
    if (m->body_8bit && !(c->ehlo.ext & SMTP_EXT_8BITMIME)) {
        int h = smtpc_has_8bit(c, m);
        if (h < 0)
            return smtpc_refuse(c, PST_EAGAIN, 451, "4.3.0", "cannot read message content");
        if (h > 0) {
            int rc = smtpc_downgrade(c, m);
            if (rc == PST_ENOMEM || rc == PST_EIO)
                return smtpc_refuse(c, PST_EAGAIN, 451, "4.3.0",
                                    "cannot convert the message to 7bit now");
            if (rc < 0)
                return smtpc_refuse(c, PST_EPERM, 554, "5.6.3",
                                    "conversion to 7bit not possible (8-bit header fields or "
                                    "unconvertible MIME structure) and no 8BITMIME at the "
                                    "receiving server");
            if ((c->ehlo.ext & SMTP_EXT_SIZE) && c->ehlo.size_max > 0 &&
                c->conv_len > c->ehlo.size_max)
                return smtpc_refuse(c, PST_EPERM, 552, "5.3.4",
                                    "converted message exceeds the receiving server's size limit");
        }
    }
    if (c->need_rset) {
        if (smtpc_cmd(c, "RSET") < 0)
            return PST_EAGAIN;
        smtpc_set_state(c, SMTPC_S_RSET);
        return 0;
    }
    int rc = smtpc_queue_mail(c);
    if (rc < 0) { /* part of the commands may be queued: the session is out of step */
        c->msg = NULL;
        c->msg_cb = NULL;
        smtpc_close(c);
        smtpc_set_state(c, SMTPC_S_DEAD);
        return rc == PST_ELIMIT ? PST_EINVAL : PST_EAGAIN;
    }
    return 0;
}

int smtpc_usable(const struct smtpc *c)
{
    return c && c->bev && c->state == SMTPC_S_READY;
}

static void smtpc_free_secret(char **s)
{
    if (*s) {
        explicit_bzero(*s, strlen(*s));
        free(*s);
        *s = NULL;
    }
}

static void smtpc_destroy(struct smtpc *c)
{
    smtpc_conv_release(c);
    if (c->bev)
        bufferevent_free(c->bev);
    if (c->timer)
        event_free(c->timer);
    if (c->defer)
        event_free(c->defer);
    free(c->helo_name);
    free(c->server_name);
    free(c->ca_file);
    smtpc_free_secret(&c->auth_user);
    smtpc_free_secret(&c->auth_pass);
    free(c->obuf);
    free(c->ibuf);
    free(c);
}

void smtpc_free(struct smtpc **cp)
{
    if (!cp || !*cp)
        return;
    smtpc_destroy(*cp);
    *cp = NULL;
}

void smtpc_quit(struct smtpc **cp)
{
    if (!cp || !*cp)
        return;
    struct smtpc *c = *cp;
    *cp = NULL;
    c->conn_cb = NULL;
    c->msg_cb = NULL;
    c->msg = NULL;
    if (c->state != SMTPC_S_READY || !c->bev || smtpc_cmd(c, "QUIT") < 0) {
        smtpc_destroy(c);
        return;
    }
    smtpc_set_state(c, SMTPC_S_QUIT);
}

const char *smtpc_tls_info(const struct smtpc *c)
{
    return c && c->tls && c->tlsinfo[0] ? c->tlsinfo : NULL;
}

const struct smtp_ehlo *smtpc_ehlo(const struct smtpc *c)
{
    return &c->ehlo;
}
