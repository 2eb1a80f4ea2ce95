/*
 * smtpd_session.c - one ESMTP session as an explicit state machine.
 *
 * States (enum smtpd_state) and the verbs each allows are in the command
 * table below; the table, not ad-hoc code, rejects unknown and out-of-state
 * verbs (503 5.5.1). Every state change goes through smtpd_set_state(),
 * which logs "old -> new" at debug level.
 *
 *   INIT --HELO/EHLO--> READY --MAIL--> MAIL --RCPT--> RCPT --DATA--> DATA
 *                         ^                              |  \--BDAT--> BDAT <-> CHUNKING
 *                         |                              |           (LAST) |
 *                         +---------- COMMIT <-----------+-------------------+
 *   AUTH / AUTHCHECK: AUTH continuation lines and the password check on a
 *   worker thread.  TLSWAIT: STARTTLS's 220 is being flushed; then the socket
 *   gets a TLS bufferevent and the session is back in INIT.  CLOSING: flush
 *   replies, then free.
 *
 * RFCs: 5321 (SMTP), 2920 (PIPELINING: commands are processed in order from
 * the input buffer and replies are written in order; input processing
 * pauses while a reply depends on asynchronous work: spool commit, password
 * check), 1870 (SIZE), 6152 (8BITMIME), 6531 (SMTPUTF8), 2034/3463
 * (enhanced status codes on every reply after the greeting), 3207
 * (STARTTLS: input buffered after the command is discarded, the session is
 * reset), 4954 (AUTH PLAIN/LOGIN, only over TLS unless configured), 3030
 * (CHUNKING/BDAT: a rejected chunk is still read to stay in sync), 3461
 * (DSN parameters recorded in the envelope).
 *
 * Durability: 250 after DATA/BDAT LAST is sent only from the spool commit
 * callback, i.e. after the message and its directory entry are fsync'd.
 *
 * Limits (from struct cfg): command line length, DATA line length, message
 * size, recipients per message, errors per session (then 421), command
 * timeout (per command line, so a slow drip cannot extend it), data timeout
 * (inactivity while reading content). The output buffer is bounded too: a
 * client that pipelines without reading replies is paused.
 *
 * Failure policy: nothing a client sends can abort the process; internal
 * errors (spool, database) give 4xx replies and are logged.
 */
#include "smtpd_session.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "lib/log.h"
#include "lib/spool.h"
#include "lib/tls.h"
#include "lib/userdb.h"
#include "lib/worker.h"
#include "queue/qmgr.h"
#include "sasl.h"
#include "smtp_data.h"
#include "smtp_parser.h"

/* Replies may pile up while a client pipelines; past this we stop reading. */
#define SMTPD_OUTPUT_HIGH (64 * 1024)
/* Time allowed to flush a final reply (221/421) before the socket is closed. */
#define SMTPD_CLOSE_GRACE_SEC 10
#define SMTPD_HELO_MAX 255

enum smtpd_state {
    SMTPD_S_INIT = 0,
    SMTPD_S_READY,
    SMTPD_S_MAIL,
    SMTPD_S_RCPT,
    SMTPD_S_DATA,
    SMTPD_S_BDAT,
    SMTPD_S_CHUNKING,
    SMTPD_S_COMMIT,
    SMTPD_S_AUTH,
    SMTPD_S_AUTHCHECK,
    SMTPD_S_TLSWAIT,
    SMTPD_S_CLOSING,
    SMTPD_S__COUNT
};

#define ST(x) (1u << SMTPD_S_##x)
#define ST_SESSION (ST(INIT) | ST(READY) | ST(MAIL) | ST(RCPT) | ST(CHUNKING))

static const char *const smtpd_state_names[SMTPD_S__COUNT] = {
    "INIT",     "READY",  "MAIL", "RCPT",      "DATA",    "BDAT",
    "CHUNKING", "COMMIT", "AUTH", "AUTHCHECK", "TLSWAIT", "CLOSING",
};

enum smtpd_auth_mech {
    SMTPD_AUTH_NONE = 0,
    SMTPD_AUTH_PLAIN,
    SMTPD_AUTH_LOGIN_USER,
    SMTPD_AUTH_LOGIN_PASS
};

struct smtpd_auth_job;

struct smtpd_session {
    struct smtpd_server *srv; /* borrowed */
    struct bufferevent *bev;  /* owned */
    struct event *timer;      /* owned */
    enum smtpd_port_kind kind;
    enum smtpd_state state;
    char id[17];
    struct sockaddr_storage peer;
    char addr[NETADDR_STRLEN];
    int tls;
    int esmtp;
    int authed;
    int discarding; /* swallowing the rest of an over-long line */
    int closed;     /* teardown started */
    unsigned errors;
    unsigned ncommands;
    unsigned nmessages;
    char helo[SMTPD_HELO_MAX + 1];
    char user[USERDB_NAME_MAX + 1];

    /* transaction */
    struct spool_env *env;       /* owned, from MAIL until commit/RSET */
    struct spool_writer *writer; /* owned while reading content */
    struct smtp_data data;
    uint64_t bdat_remaining;
    int bdat_last;
    int bdat_failed;                    /* the transaction failed; read and drop chunks */
    struct spool_commit_ticket *ticket; /* while COMMIT */
    time_t content_deadline;            /* DATA/BDAT must be complete by then (data_timeout) */

    /* AUTH */
    enum smtpd_auth_mech auth_mech;
    struct smtpd_auth_job *auth_job;
};

struct smtpd_auth_job {
    struct smtpd_session *s; /* NULL once detached */
    struct worker_job *handle;
    char user[SASL_USER_MAX + 1];
    char pass[SASL_PASS_MAX + 1];
    char hash[USERDB_HASH_MAX];
    int have_hash;
    int result;
};

/* ------------------------------------------------------------------------- */
/* prototypes */

static void smtpd_process_input(struct smtpd_session *s);
static void smtpd_close(struct smtpd_session *s, const char *reason);
static void smtpd_free(struct smtpd_session *s);
static void smtpd_txn_reset(struct smtpd_session *s);
static void smtpd_arm_timer(struct smtpd_session *s, long seconds);
static void smtpd_install_callbacks(struct smtpd_session *s);
static void smtpd_start_content_clock(struct smtpd_session *s);
static void smtpd_arm_content_timer(struct smtpd_session *s);

/* ------------------------------------------------------------------------- */
/* state, replies, logging */

static void smtpd_set_state(struct smtpd_session *s, enum smtpd_state next)
{
    if (s->state == next)
        return;
    log_debug("smtpd state id=%s from=%s to=%s", s->id, smtpd_state_names[s->state],
              smtpd_state_names[next]);
    s->state = next;
}

static void smtpd_reply(struct smtpd_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void smtpd_reply(struct smtpd_session *s, const char *fmt, ...)
{
    struct evbuffer *out = bufferevent_get_output(s->bev);
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(out, fmt, ap);
    va_end(ap);
    evbuffer_add(out, "\r\n", 2);
}

/*
 * smtpd_reject - send an error reply, count it, and close the session with
 * 421 once max_errors is reached (the reply itself is still sent first).
 * Returns 1 if the session is now closing.
 */
static int smtpd_reject(struct smtpd_session *s, const char *reply)
{
    smtpd_reply(s, "%s", reply);
    char q[80];
    log_info("smtpd rejected id=%s state=%s reply=%s", s->id, smtpd_state_names[s->state],
             log_quote(q, sizeof q, reply, strlen(reply)));
    s->errors++;
    if (s->errors < (unsigned)s->srv->cfg->max_errors)
        return 0;
    smtpd_reply(s, "421 4.7.0 %s Too many errors, closing connection", s->srv->cfg->hostname);
    smtpd_close(s, "too many errors");
    return 1;
}

/* ------------------------------------------------------------------------- */
/* policy */

static int smtpd_lookup_user(struct smtpd_session *s, const struct mailaddr *a, char *name,
                             size_t namesz)
{
    if (a->quoted || strlen(a->local) >= namesz)
        return 0;
    for (size_t i = 0; a->local[i]; i++)
        name[i] = (char)tolower((unsigned char)a->local[i]);
    name[strlen(a->local)] = '\0';
    if (!userdb_name_valid(name))
        return 0;
    int rc = userdb_exists(s->srv->users, name);
    if (rc < 0)
        return rc;
    return rc;
}

static int smtpd_may_relay(const struct smtpd_session *s)
{
    return s->authed || cfg_is_trusted(s->srv->cfg, (const struct sockaddr *)&s->peer);
}

static const char *smtpd_proto(const struct smtpd_session *s)
{
    static const char *const names[2][2][2] = {
        {{"SMTP", "SMTP"}, {"SMTP", "SMTP"}},
        {{"ESMTP", "ESMTPA"}, {"ESMTPS", "ESMTPSA"}},
    };
    return names[s->esmtp ? 1 : 0][s->tls ? 1 : 0][s->authed ? 1 : 0];
}

/* ------------------------------------------------------------------------- */
/* command handlers; each returns after writing exactly the replies it owes */

static void smtpd_cmd_helo(struct smtpd_session *s, const struct smtp_cmd *c)
{
    for (const char *p = c->arg; *p; p++) {
        if (!isprint((unsigned char)*p) || *p == ' ') {
            smtpd_reject(s, "501 5.5.4 Invalid domain name");
            return;
        }
    }
    if (strlen(c->arg) > SMTPD_HELO_MAX) {
        smtpd_reject(s, "501 5.5.4 Domain name too long");
        return;
    }
    memcpy(s->helo, c->arg, strlen(c->arg) + 1);
    smtpd_txn_reset(s);
    s->esmtp = c->verb == SMTP_V_EHLO;
    smtpd_set_state(s, SMTPD_S_READY);
    const struct cfg *cfg = s->srv->cfg;
    if (!s->esmtp) {
        smtpd_reply(s, "250 %s", cfg->hostname);
        return;
    }
    smtpd_reply(s, "250-%s Hello %s [%s]", cfg->hostname, s->helo, s->addr);
    smtpd_reply(s, "250-PIPELINING");
    smtpd_reply(s, "250-SIZE %lld", (long long)cfg->message_size_limit);
    smtpd_reply(s, "250-8BITMIME");
    smtpd_reply(s, "250-SMTPUTF8");
    smtpd_reply(s, "250-ENHANCEDSTATUSCODES");
    if (!s->tls && s->srv->tls && cfg->starttls)
        smtpd_reply(s, "250-STARTTLS");
    if (s->tls || !cfg->auth_requires_tls)
        smtpd_reply(s, "250-AUTH PLAIN LOGIN");
    if (cfg->vrfy)
        smtpd_reply(s, "250-VRFY");
    smtpd_reply(s, "250-DSN");
    smtpd_reply(s, "250 CHUNKING");
}

static void smtpd_cmd_mail(struct smtpd_session *s, const struct smtp_cmd *c)
{
    const struct cfg *cfg = s->srv->cfg;
    if (s->kind != SMTPD_PORT_MX && !s->authed) {
        smtpd_reject(s, "530 5.7.0 Authentication required");
        return;
    }
    if (c->has_size && c->size > (uint64_t)cfg->message_size_limit) {
        smtpd_reject(s, "552 5.3.4 Message size exceeds fixed maximum message size");
        return;
    }
    if (!s->esmtp && (c->has_size || c->body || c->smtputf8 || c->ret || c->envid[0])) {
        smtpd_reject(s, "555 5.5.4 ESMTP parameters require EHLO");
        return;
    }
    char from[MAILADDR_PATH_MAX + 8];
    if (mailaddr_format(&c->addr, from, sizeof from) < 0) {
        smtpd_reject(s, "501 5.1.7 Bad sender address syntax");
        return;
    }
    s->env = spool_env_new();
    if (!s->env) {
        smtpd_reject(s, "451 4.3.0 Local error in processing");
        return;
    }
    free(s->env->sender);
    s->env->sender = strdup(from);
    s->env->client = strdup(s->addr);
    s->env->helo = strdup(s->helo[0] ? s->helo : s->addr);
    s->env->proto = strdup(smtpd_proto(s));
    s->env->auth = s->authed ? strdup(s->user) : NULL;
    s->env->body = c->body == SMTP_BODY_8BITMIME ? 2 : c->body == SMTP_BODY_7BIT ? 1 : 0;
    s->env->smtputf8 = c->smtputf8;
    s->env->ret = c->ret;
    s->env->envid = c->envid[0] ? strdup(c->envid) : NULL;
    if (!s->env->sender || !s->env->client || !s->env->helo || !s->env->proto ||
        (s->authed && !s->env->auth) || (c->envid[0] && !s->env->envid)) {
        spool_env_free(&s->env);
        smtpd_reject(s, "451 4.3.0 Local error in processing");
        return;
    }
    smtpd_set_state(s, SMTPD_S_MAIL);
    smtpd_reply(s, "250 2.1.0 Ok");
}

static void smtpd_cmd_rcpt(struct smtpd_session *s, const struct smtp_cmd *c)
{
    const struct cfg *cfg = s->srv->cfg;
    char to[MAILADDR_PATH_MAX + 8];
    char reply[MAILADDR_PATH_MAX + 80];
    struct mailaddr a = c->addr;

    if (s->env->nrcpt >= (size_t)cfg->max_recipients) {
        /* Not counted as an error: RFC 5321 4.5.3.1.10 expects the client to send the
         * remaining recipients in a later transaction. */
        smtpd_reply(s, "452 4.5.3 Too many recipients");
        return;
    }
    if (!s->esmtp && (c->notify || c->orcpt[0])) {
        smtpd_reject(s, "555 5.5.4 ESMTP parameters require EHLO");
        return;
    }
    if (a.domain[0] == '\0') /* <Postmaster> (RFC 5321 4.1.1.3) */
        snprintf(a.domain, sizeof a.domain, "%s", cfg->hostname);
    if (a.has_utf8 && !s->env->smtputf8) {
        smtpd_reject(s, "553 5.6.7 Non-ASCII address requires SMTPUTF8");
        return;
    }
    if (mailaddr_format(&a, to, sizeof to) < 0) {
        smtpd_reject(s, "501 5.1.3 Bad recipient address syntax");
        return;
    }
    if (!a.is_literal && cfg_is_local_domain(cfg, a.domain)) {
        char name[USERDB_NAME_MAX + 1];
        int rc = smtpd_lookup_user(s, &a, name, sizeof name);
        if (rc < 0) {
            smtpd_reject(s, "451 4.3.0 Temporary lookup failure");
            return;
        }
        if (rc == 0) {
            snprintf(reply, sizeof reply,
                     "550 5.1.1 <%s>: Recipient address rejected: User unknown", to);
            smtpd_reject(s, reply);
            return;
        }
    } else if (!smtpd_may_relay(s)) {
        snprintf(reply, sizeof reply, "554 5.7.1 <%s>: Relay access denied", to);
        smtpd_reject(s, reply);
        return;
    }
    if (spool_env_add_rcpt(s->env, to, c->orcpt[0] ? c->orcpt : NULL, c->notify) < 0) {
        smtpd_reject(s, "452 4.3.1 Insufficient system resources");
        return;
    }
    smtpd_set_state(s, SMTPD_S_RCPT);
    smtpd_reply(s, "250 2.1.5 Ok");
}

static void smtpd_rfc5322_date(char *out, size_t outsz)
{
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    if (strftime(out, outsz, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
        out[0] = '\0';
}

/* smtpd_open_message - create the spool file and write our Received: header (RFC 5321 4.4). */
static int smtpd_open_message(struct smtpd_session *s)
{
    int rc = spool_writer_open(s->srv->cfg->spool_dir, s->env, &s->writer);
    if (rc < 0)
        return rc;
    char date[64];
    smtpd_rfc5322_date(date, sizeof date);
    char tlsinfo[160] = "";
    if (s->tls) {
        SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
        char desc[128];
        if (ssl)
            snprintf(tlsinfo, sizeof tlsinfo, "\r\n\t(using %s)",
                     tls_describe(ssl, desc, sizeof desc));
    }
    char forpart[MAILADDR_PATH_MAX + 16] = "";
    if (s->env->nrcpt == 1)
        snprintf(forpart, sizeof forpart, "\r\n\tfor <%s>", s->env->rcpt[0].addr);
    char hdr[2048];
    int n = snprintf(hdr, sizeof hdr,
                     "Received: from %s ([%s])\r\n\tby %s (Postern) with %s id %s%s%s;\r\n\t%s\r\n",
                     s->helo[0] ? s->helo : "unknown", s->addr, s->srv->cfg->hostname,
                     s->env->proto, spool_writer_qid(s->writer), tlsinfo, forpart, date);
    if (n < 0 || (size_t)n >= sizeof hdr)
        return PST_ELIMIT;
    return spool_writer_write(s->writer, hdr, (size_t)n);
}

static void smtpd_cmd_data(struct smtpd_session *s, const struct smtp_cmd *c)
{
    if (smtpd_open_message(s) < 0) {
        log_error("smtpd spool_open_failed id=%s errno=%d", s->id, errno);
        spool_writer_abort(&s->writer);
        smtpd_txn_reset(s);
        smtpd_set_state(s, SMTPD_S_READY);
        smtpd_reject(s, "451 4.3.0 Local error in processing");
        return;
    }
    const struct cfg *cfg = s->srv->cfg;
    smtp_data_init(&s->data, SMTP_DATA_DOT, (size_t)cfg->data_line_limit,
                   (uint64_t)cfg->message_size_limit);
    smtpd_set_state(s, SMTPD_S_DATA);
    smtpd_start_content_clock(s);
    smtpd_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void smtpd_cmd_bdat(struct smtpd_session *s, const struct smtp_cmd *c)
{
    const struct cfg *cfg = s->srv->cfg;
    s->bdat_remaining = c->chunk_size;
    s->bdat_last = c->last;
    if (s->state == SMTPD_S_RCPT) {
        /* first chunk of this transaction */
        s->bdat_failed = 0;
        smtp_data_init(&s->data, SMTP_DATA_RAW, (size_t)cfg->data_line_limit,
                       (uint64_t)cfg->message_size_limit);
        if (smtpd_open_message(s) < 0) {
            log_error("smtpd spool_open_failed id=%s errno=%d", s->id, errno);
            spool_writer_abort(&s->writer);
            s->bdat_failed = 1;
        }
    }
    int first = s->state == SMTPD_S_RCPT;
    smtpd_set_state(s, SMTPD_S_BDAT);
    if (first)
        smtpd_start_content_clock(s); /* data_timeout covers all chunks of the message */
    else
        smtpd_arm_content_timer(s);
}

/* BDAT outside a transaction: the chunk must still be read and dropped (RFC 3030 2). */
static void smtpd_bdat_discard(struct smtpd_session *s, const struct smtp_cmd *c, const char *reply)
{
    s->bdat_remaining = c->chunk_size;
    s->bdat_last = c->last;
    s->bdat_failed = 2; /* 2: reply `reply` after the chunk, keep state */
    smtp_data_init(&s->data, SMTP_DATA_RAW, 0, 0);
    smtpd_reject(s, reply);
    if (s->closed)
        return;
    smtpd_set_state(s, SMTPD_S_BDAT);
}

static void smtpd_cmd_rset(struct smtpd_session *s, const struct smtp_cmd *c)
{
    smtpd_txn_reset(s);
    if (s->state != SMTPD_S_INIT)
        smtpd_set_state(s, SMTPD_S_READY);
    smtpd_reply(s, "250 2.0.0 Ok");
}

static void smtpd_cmd_noop(struct smtpd_session *s, const struct smtp_cmd *c)
{
    smtpd_reply(s, "250 2.0.0 Ok");
}

static void smtpd_cmd_quit(struct smtpd_session *s, const struct smtp_cmd *c)
{
    smtpd_reply(s, "221 2.0.0 %s closing connection", s->srv->cfg->hostname);
    smtpd_close(s, "quit");
}

static void smtpd_cmd_vrfy(struct smtpd_session *s, const struct smtp_cmd *c)
{
    if (!s->srv->cfg->vrfy) {
        smtpd_reply(s, "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery");
        return;
    }
    struct mailaddr a;
    char arg[SMTP_ARG_MAX + 1];
    char full[SMTP_ARG_MAX + 2 + MAILADDR_DOMAIN_MAX];
    size_t len = strlen(c->arg);
    const char *p = c->arg;
    if (len >= 2 && p[0] == '<' && p[len - 1] == '>') {
        p++;
        len -= 2;
    }
    memcpy(arg, p, len);
    arg[len] = '\0';
    int n = strchr(arg, '@') ? snprintf(full, sizeof full, "%s", arg)
                             : snprintf(full, sizeof full, "%s@%s", arg, s->srv->cfg->hostname);
    if (n < 0 || (size_t)n >= sizeof full) {
        smtpd_reject(s, "501 5.5.4 Argument too long");
        return;
    }
    char name[USERDB_NAME_MAX + 1];
    if (mailaddr_parse(full, 0, &a) < 0 || !cfg_is_local_domain(s->srv->cfg, a.domain) ||
        smtpd_lookup_user(s, &a, name, sizeof name) != 1) {
        smtpd_reject(s, "550 5.1.1 User unknown");
        return;
    }
    smtpd_reply(s, "250 2.1.5 <%s@%s>", name, a.domain);
}

static void smtpd_cmd_expn(struct smtpd_session *s, const struct smtp_cmd *c)
{
    smtpd_reject(s, "502 5.5.1 EXPN not supported");
}

static void smtpd_cmd_help(struct smtpd_session *s, const struct smtp_cmd *c)
{
    smtpd_reply(s, "214-2.0.0 Postern ESMTP. Commands:");
    smtpd_reply(s, "214-2.0.0   HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP");
    smtpd_reply(s, "214 2.0.0   STARTTLS AUTH; see RFC 5321");
}

/* ---- STARTTLS (RFC 3207) ---- */

/* smtpd_attach_tls - put a server-side TLS bufferevent on fd (owned from now on). */
static int smtpd_attach_tls(struct smtpd_session *s, int fd)
{
    SSL *ssl = SSL_new(s->srv->tls);
    if (!ssl) {
        close(fd);
        return PST_ETLS;
    }
    struct bufferevent *bev =
        bufferevent_openssl_socket_new(s->srv->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                       BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!bev) {
        /* libevent 2.1 frees the SSL and closes fd itself on this failure (BEV_OPT_CLOSE_ON_FREE).
         */
        return PST_ETLS;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    s->bev = bev;
    s->tls = 1;
    smtpd_install_callbacks(s);
    return 0;
}

/*
 * smtpd_starttls_switch - the 220 is flushed and nothing was read after it:
 * move the socket from the plain bufferevent to a TLS one. Using a socket
 * TLS bufferevent rather than a filter keeps one layer and means "output
 * empty" really is "written to the kernel".
 */
static void smtpd_starttls_switch(struct smtpd_session *s)
{
    evutil_socket_t fd = bufferevent_getfd(s->bev);
    bufferevent_setfd(s->bev, -1);
    bufferevent_free(s->bev);
    s->bev = NULL;
    if (smtpd_attach_tls(s, fd) < 0) {
        tls_log_errors("starttls");
        s->closed = 1;
        smtpd_free(s);
        return;
    }
    /* RFC 3207 4.2: the server must discard prior knowledge and go back to INIT. */
    smtpd_txn_reset(s);
    s->helo[0] = '\0';
    s->esmtp = 0;
    s->authed = 0;
    s->user[0] = '\0';
    s->auth_mech = SMTPD_AUTH_NONE;
    smtpd_set_state(s, SMTPD_S_INIT);
}

static void smtpd_cmd_starttls(struct smtpd_session *s, const struct smtp_cmd *c)
{
    if (s->tls) {
        smtpd_reject(s, "503 5.5.1 TLS already active");
        return;
    }
    if (!s->srv->tls || !s->srv->cfg->starttls) {
        smtpd_reject(s, "454 4.7.0 TLS not available");
        return;
    }
    smtpd_reply(s, "220 2.0.0 Ready to start TLS");
    /* RFC 3207 6: anything pipelined after STARTTLS is discarded (command injection). */
    struct evbuffer *in = bufferevent_get_input(s->bev);
    size_t junk = evbuffer_get_length(in);
    if (junk) {
        evbuffer_drain(in, junk);
        log_warn("smtpd starttls_injection id=%s discarded=%zu", s->id, junk);
    }
    /* Read nothing more in clear: the next bytes are the client's TLS handshake. */
    bufferevent_disable(s->bev, EV_READ);
    smtpd_set_state(s, SMTPD_S_TLSWAIT);
}

/* ---- AUTH (RFC 4954) ---- */

static void smtpd_auth_work(void *arg)
{
    struct smtpd_auth_job *j = arg;
    j->result = userdb_hash_verify(j->have_hash ? j->hash : NULL, j->pass);
}

static void smtpd_auth_job_free(void *arg)
{
    struct smtpd_auth_job *j = arg;
    explicit_bzero(j, sizeof *j);
    free(j);
}

static void smtpd_auth_done(void *arg)
{
    struct smtpd_auth_job *j = arg;
    struct smtpd_session *s = j->s;
    char q[USERDB_NAME_MAX * 4 + 8];
    log_quote(q, sizeof q, j->user, strlen(j->user));
    s->auth_job = NULL;
    smtpd_set_state(s, SMTPD_S_READY);
    if (j->result == 0) {
        s->authed = 1;
        size_t ulen = strnlen(j->user, sizeof s->user - 1); /* valid names are <= 64 bytes */
        memcpy(s->user, j->user, ulen);
        s->user[ulen] = '\0';
        log_info("smtpd auth id=%s user=%s result=ok", s->id, q);
        smtpd_reply(s, "235 2.7.0 Authentication successful");
    } else {
        log_info("smtpd auth id=%s user=%s result=fail", s->id, q);
        smtpd_reject(s, "535 5.7.8 Authentication credentials invalid");
    }
    smtpd_auth_job_free(j);
    if (!s->closed && !s->srv->stopping) {
        bufferevent_enable(s->bev, EV_READ);
        smtpd_process_input(s);
    }
}

/* smtpd_auth_check - look up the hash (fast) and verify on a worker thread (slow by design). */
static void smtpd_auth_check(struct smtpd_session *s, struct smtpd_auth_job *j)
{
    for (char *p = j->user; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    int rc = userdb_name_valid(j->user)
                 ? userdb_get_hash(s->srv->users, j->user, j->hash, sizeof j->hash)
                 : PST_ENOENT;
    if (rc < 0 && rc != PST_ENOENT) {
        log_error("smtpd auth_lookup_failed id=%s err=\"%s\"", s->id, err_str(rc));
        smtpd_auth_job_free(j);
        smtpd_set_state(s, SMTPD_S_READY);
        smtpd_reject(s, "454 4.7.0 Temporary authentication failure");
        return;
    }
    j->have_hash = rc == 0;
    j->s = s;
    j->handle =
        worker_submit(s->srv->workers, smtpd_auth_work, smtpd_auth_done, smtpd_auth_job_free, j);
    if (!j->handle) {
        smtpd_auth_job_free(j);
        smtpd_set_state(s, SMTPD_S_READY);
        smtpd_reject(s, "454 4.7.0 Temporary authentication failure");
        return;
    }
    s->auth_job = j;
    smtpd_set_state(s, SMTPD_S_AUTHCHECK);
    bufferevent_disable(s->bev, EV_READ);
}

/* smtpd_auth_response - one client response line in state AUTH. */
static void smtpd_auth_response(struct smtpd_session *s, const char *line, size_t len)
{
    struct smtpd_auth_job *j = s->auth_job;
    if (len == 1 && line[0] == '*') {
        s->auth_job = NULL;
        smtpd_auth_job_free(j);
        smtpd_set_state(s, SMTPD_S_READY);
        smtpd_reject(s, "501 5.0.0 Authentication cancelled");
        return;
    }
    int rc;
    switch (s->auth_mech) {
    case SMTPD_AUTH_PLAIN:
        rc = sasl_plain_parse(line, len, j->user, sizeof j->user, j->pass, sizeof j->pass);
        break;
    case SMTPD_AUTH_LOGIN_USER:
        rc = sasl_login_parse(line, len, j->user, sizeof j->user);
        if (rc >= 0) {
            s->auth_mech = SMTPD_AUTH_LOGIN_PASS;
            smtpd_reply(s, "334 UGFzc3dvcmQ6");
            return;
        }
        break;
    case SMTPD_AUTH_LOGIN_PASS:
        rc = sasl_login_parse(line, len, j->pass, sizeof j->pass);
        break;
    default:
        rc = PST_EINVAL;
    }
    s->auth_job = NULL;
    if (rc < 0) {
        smtpd_auth_job_free(j);
        smtpd_set_state(s, SMTPD_S_READY);
        smtpd_reject(s, "501 5.5.2 Cannot decode AUTH response");
        return;
    }
    smtpd_auth_check(s, j);
}

static void smtpd_cmd_auth(struct smtpd_session *s, const struct smtp_cmd *c)
{
    if (s->authed) {
        smtpd_reject(s, "503 5.5.1 Already authenticated");
        return;
    }
    if (!s->tls && s->srv->cfg->auth_requires_tls) {
        smtpd_reject(s, "538 5.7.11 Encryption required for requested authentication mechanism");
        return;
    }
    char mech[32];
    const char *ir = strchr(c->arg, ' ');
    size_t mlen = ir ? (size_t)(ir - c->arg) : strlen(c->arg);
    if (mlen == 0 || mlen >= sizeof mech) {
        smtpd_reject(s, "504 5.5.4 Unrecognized authentication type");
        return;
    }
    for (size_t i = 0; i < mlen; i++)
        mech[i] = (char)toupper((unsigned char)c->arg[i]);
    mech[mlen] = '\0';
    if (ir)
        ir++;
    if (strcmp(mech, "PLAIN") == 0)
        s->auth_mech = SMTPD_AUTH_PLAIN;
    else if (strcmp(mech, "LOGIN") == 0)
        s->auth_mech = SMTPD_AUTH_LOGIN_USER;
    else {
        smtpd_reject(s, "504 5.5.4 Unrecognized authentication type");
        return;
    }
    struct smtpd_auth_job *j = calloc(1, sizeof *j);
    if (!j) {
        smtpd_reject(s, "454 4.7.0 Temporary authentication failure");
        return;
    }
    s->auth_job = j;
    smtpd_set_state(s, SMTPD_S_AUTH);
    if (ir && *ir) {
        smtpd_auth_response(s, ir, strlen(ir));
        return;
    }
    smtpd_reply(s, s->auth_mech == SMTPD_AUTH_PLAIN ? "334 " : "334 VXNlcm5hbWU6");
}

/* ------------------------------------------------------------------------- */
/* the command table */

typedef void (*smtpd_handler)(struct smtpd_session *s, const struct smtp_cmd *c);

struct smtpd_command {
    enum smtp_verb verb;
    unsigned states; /* mask of states in which the verb is allowed */
    smtpd_handler run;
};

/*
 * RFC 5321 4.1.4: MAIL needs a prior EHLO/HELO; RCPT needs MAIL; DATA needs
 * at least one successful RCPT (else 503 / 554). RFC 2920 3.1: EHLO, DATA,
 * BDAT LAST, QUIT, RSET, NOOP, STARTTLS, AUTH end a pipelined group; since
 * we answer strictly in order and never read past a command whose reply
 * depends on asynchronous work, no per-verb flag is needed here.
 */
static const struct smtpd_command smtpd_commands[] = {
    {SMTP_V_HELO, ST_SESSION, smtpd_cmd_helo},
    {SMTP_V_EHLO, ST_SESSION, smtpd_cmd_helo},
    {SMTP_V_MAIL, ST(READY), smtpd_cmd_mail},
    {SMTP_V_RCPT, ST(MAIL) | ST(RCPT), smtpd_cmd_rcpt},
    {SMTP_V_DATA, ST(RCPT), smtpd_cmd_data},
    {SMTP_V_BDAT, ST(RCPT) | ST(CHUNKING), smtpd_cmd_bdat},
    {SMTP_V_RSET, ST_SESSION, smtpd_cmd_rset},
    {SMTP_V_NOOP, ST_SESSION, smtpd_cmd_noop},
    {SMTP_V_QUIT, ST_SESSION, smtpd_cmd_quit},
    {SMTP_V_VRFY, ST_SESSION, smtpd_cmd_vrfy},
    {SMTP_V_EXPN, ST_SESSION, smtpd_cmd_expn},
    {SMTP_V_HELP, ST_SESSION, smtpd_cmd_help},
    {SMTP_V_STARTTLS, ST(INIT) | ST(READY), smtpd_cmd_starttls},
    {SMTP_V_AUTH, ST(READY), smtpd_cmd_auth},
};

static const struct smtpd_command *smtpd_find_command(enum smtp_verb v)
{
    for (size_t i = 0; i < PST_ARRAY_LEN(smtpd_commands); i++)
        if (smtpd_commands[i].verb == v)
            return &smtpd_commands[i];
    return NULL;
}

/* smtpd_out_of_state - the reply for a verb given in the wrong state. */
static const char *smtpd_out_of_state(const struct smtpd_session *s, enum smtp_verb v)
{
    if (s->state == SMTPD_S_INIT && v != SMTP_V_AUTH)
        return "503 5.5.1 Error: send HELO/EHLO first";
    switch (v) {
    case SMTP_V_MAIL:
        return "503 5.5.1 Error: nested MAIL command";
    case SMTP_V_RCPT:
        return "503 5.5.1 Error: need MAIL command";
    case SMTP_V_DATA:
        if (s->state == SMTPD_S_MAIL)
            return "554 5.5.1 Error: no valid recipients";
        if (s->state == SMTPD_S_CHUNKING)
            return "503 5.5.1 Error: DATA not allowed after BDAT";
        return "503 5.5.1 Error: need RCPT command";
    case SMTP_V_AUTH:
        if (s->state == SMTPD_S_INIT)
            return "503 5.5.1 Error: send EHLO first";
        return "503 5.5.1 Error: AUTH not allowed during a mail transaction";
    case SMTP_V_STARTTLS:
        return "503 5.5.1 Error: STARTTLS not allowed during a mail transaction";
    default:
        return "503 5.5.1 Error: bad sequence of commands";
    }
}

static void smtpd_command_line(struct smtpd_session *s, const char *line, size_t len)
{
    s->ncommands++;
    if (s->state == SMTPD_S_AUTH) {
        smtpd_auth_response(s, line, len);
        return;
    }
    struct smtp_cmd cmd;
    const char *reply = NULL;
    if (smtp_cmd_parse(line, len, &cmd, &reply) < 0) {
        /* A malformed BDAT cannot be skipped safely: we do not know its size. */
        if (cmd.verb == SMTP_V_BDAT || (len >= 5 && strncasecmp(line, "BDAT ", 5) == 0)) {
            smtpd_reply(s, "%s", reply ? reply : "501 5.5.4 Syntax: BDAT <size> [LAST]");
            smtpd_reply(s, "421 4.5.0 %s Cannot synchronize after bad BDAT", s->srv->cfg->hostname);
            smtpd_close(s, "bad bdat");
            return;
        }
        smtpd_reject(s, reply ? reply : "500 5.5.2 Syntax error");
        return;
    }
    if (cmd.verb == SMTP_V_UNKNOWN) {
        smtpd_reject(s, "500 5.5.2 Error: command not recognized");
        return;
    }
    const struct smtpd_command *c = smtpd_find_command(cmd.verb);
    if (!c) {
        smtpd_reject(s, "502 5.5.1 Error: command not implemented");
        return;
    }
    if (cmd.verb == SMTP_V_BDAT && !s->esmtp && s->state != SMTPD_S_INIT) {
        smtpd_bdat_discard(s, &cmd, "503 5.5.1 Error: BDAT requires EHLO");
        return;
    }
    if (!(c->states & (1u << s->state))) {
        if (cmd.verb == SMTP_V_BDAT) {
            smtpd_bdat_discard(s, &cmd, smtpd_out_of_state(s, cmd.verb));
            return;
        }
        smtpd_reject(s, smtpd_out_of_state(s, cmd.verb));
        return;
    }
    c->run(s, &cmd);
}

/* ------------------------------------------------------------------------- */
/* content: DATA and BDAT */

static int smtpd_content_sink(void *arg, const char *data, size_t len)
{
    struct smtpd_session *s = arg;
    if (!s->writer)
        return 0; /* discarding */
    return spool_writer_write(s->writer, data, len);
}

static void smtpd_commit_done(void *arg, int err, const char *qid)
{
    struct smtpd_session *s = arg;
    s->ticket = NULL;
    if (err == 0) {
        char from[MAILADDR_PATH_MAX * 4 + 8];
        log_quote(from, sizeof from, s->env->sender, strlen(s->env->sender));
        log_info("smtpd accepted id=%s qid=%s from=%s nrcpt=%zu size=%llu proto=%s", s->id, qid,
                 from, s->env->nrcpt, (unsigned long long)smtp_data_total(&s->data), s->env->proto);
        s->nmessages++;
        smtpd_reply(s, "250 2.0.0 Ok: queued as %s", qid);
        qmgr_wake(s->srv->cfg);
    } else {
        log_error("smtpd commit_failed id=%s qid=%s err=%s errno=%d", s->id, qid, err_str(err),
                  errno);
        smtpd_reply(s, "451 4.3.0 Error: queue file write error");
    }
    smtpd_txn_reset(s);
    smtpd_set_state(s, SMTPD_S_READY);
    smtpd_arm_timer(s, (long)s->srv->cfg->command_timeout);
    if (s->srv->stopping)
        return; /* shutting down: the reply is best effort, take no new commands */
    bufferevent_enable(s->bev, EV_READ);
    smtpd_process_input(s);
}

/* smtpd_finish_message - content complete: commit, or reject with the reader's verdict. */
static void smtpd_finish_message(struct smtpd_session *s)
{
    enum smtp_data_result r = smtp_data_result(&s->data);
    smtpd_arm_timer(s, (long)s->srv->cfg->command_timeout);
    if (r != SMTP_DATA_OK || !s->writer || s->bdat_failed) {
        spool_writer_abort(&s->writer);
        smtpd_txn_reset(s);
        smtpd_set_state(s, SMTPD_S_READY);
        smtpd_reject(s, r != SMTP_DATA_OK ? smtp_data_result_reply(r)
                                          : "451 4.3.0 Local error in processing");
        return;
    }
    smtpd_set_state(s, SMTPD_S_COMMIT);
    bufferevent_disable(s->bev, EV_READ);
    s->ticket = spool_commit(s->srv->committer, &s->writer, smtpd_commit_done, s);
    if (!s->ticket) {
        smtpd_txn_reset(s);
        smtpd_set_state(s, SMTPD_S_READY);
        bufferevent_enable(s->bev, EV_READ);
        smtpd_reject(s, "451 4.3.0 Local error in processing");
    }
}

/* smtpd_read_data - feed DATA content from the input buffer. Returns 1 if more input is needed. */
static int smtpd_read_data(struct smtpd_session *s, struct evbuffer *in)
{
    struct evbuffer_iovec v[16];
    int n = evbuffer_peek(in, -1, NULL, v, PST_ARRAY_LEN(v));
    size_t used = 0;
    for (int i = 0; i < n && i < (int)PST_ARRAY_LEN(v) && !smtp_data_done(&s->data); i++) {
        used += smtp_data_feed(&s->data, v[i].iov_base, v[i].iov_len, smtpd_content_sink, s);
    }
    evbuffer_drain(in, used);
    if (!smtp_data_done(&s->data))
        return evbuffer_get_length(in) == 0;
    smtpd_finish_message(s);
    return 0;
}

/* smtpd_read_bdat - feed BDAT chunk bytes. Returns 1 if more input is needed. */
static int smtpd_read_bdat(struct smtpd_session *s, struct evbuffer *in)
{
    while (s->bdat_remaining > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
            return 1;
        size_t take = v.iov_len < s->bdat_remaining ? v.iov_len : (size_t)s->bdat_remaining;
        smtp_data_feed(&s->data, v.iov_base, take, smtpd_content_sink, s);
        evbuffer_drain(in, take);
        s->bdat_remaining -= take;
    }
    if (s->bdat_failed == 2) {
        /* chunk for a rejected BDAT: dropped, reply already sent */
        s->bdat_failed = 0;
        smtpd_set_state(s, s->env ? (s->env->nrcpt ? SMTPD_S_RCPT : SMTPD_S_MAIL)
                                  : (s->helo[0] ? SMTPD_S_READY : SMTPD_S_INIT));
        return 0;
    }
    smtp_data_end_chunk(&s->data, s->bdat_last);
    if (s->bdat_last || s->bdat_failed || smtp_data_result(&s->data) != SMTP_DATA_OK) {
        /* LAST, or a failed transaction: report now rather than take more chunks (RFC 3030 2). */
        smtpd_finish_message(s);
        return 0;
    }
    smtpd_set_state(s, SMTPD_S_CHUNKING);
    smtpd_arm_timer(s, (long)s->srv->cfg->command_timeout);
    smtpd_reply(s, "250 2.0.0 %llu octets received", (unsigned long long)smtp_data_total(&s->data));
    return 0;
}

/* ------------------------------------------------------------------------- */
/* input loop */

/* smtpd_read_line - handle one command line, or note that none is complete. Returns 1 if more input
 * is needed. */
static int smtpd_read_line(struct smtpd_session *s, struct evbuffer *in)
{
    size_t limit = (size_t)s->srv->cfg->command_line_limit;
    size_t eol_len = 0;
    struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
    if (eol.pos < 0) {
        size_t have = evbuffer_get_length(in);
        if (have >= limit) {
            /* RFC 5321 4.5.3.1.4 / 4.2.2: line too long; drop it and resync at the next LF. */
            evbuffer_drain(in, have);
            if (!s->discarding) {
                s->discarding = 1;
                smtpd_reject(s, "500 5.5.2 Error: line too long");
            }
        }
        return 1;
    }
    size_t len = (size_t)eol.pos;
    if (s->discarding || len + eol_len > limit) {
        evbuffer_drain(in, len + eol_len);
        if (!s->discarding)
            smtpd_reject(s, "500 5.5.2 Error: line too long");
        s->discarding = 0;
        return 0;
    }
    char *line = (char *)evbuffer_pullup(in, (ev_ssize_t)(len + eol_len));
    if (!line) {
        smtpd_close(s, "out of memory");
        return 1;
    }
    smtpd_arm_timer(s, (long)s->srv->cfg->command_timeout);
    /* The parser gets a copy: handlers may reply and thereby not touch `in`, but be safe. */
    char stackbuf[1024];
    char *copy = len < sizeof stackbuf ? stackbuf : malloc(len + 1);
    if (!copy) {
        smtpd_close(s, "out of memory");
        return 1;
    }
    memcpy(copy, line, len);
    copy[len] = '\0';
    evbuffer_drain(in, len + eol_len);
    smtpd_command_line(s, copy, len);
    if (copy != stackbuf) {
        explicit_bzero(copy, len);
        free(copy);
    } else {
        explicit_bzero(stackbuf, len); /* may hold an AUTH response */
    }
    return 0;
}

static void smtpd_process_input(struct smtpd_session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    struct evbuffer *out = bufferevent_get_output(s->bev);
    while (!s->closed) {
        if (evbuffer_get_length(out) > SMTPD_OUTPUT_HIGH) {
            /* The client pipelines without reading; resume from the write callback. */
            bufferevent_disable(s->bev, EV_READ);
            return;
        }
        int need_more;
        switch (s->state) {
        case SMTPD_S_DATA:
            need_more = smtpd_read_data(s, in);
            break;
        case SMTPD_S_BDAT:
            need_more = smtpd_read_bdat(s, in);
            break;
        case SMTPD_S_COMMIT:
        case SMTPD_S_AUTHCHECK:
        case SMTPD_S_TLSWAIT:
        case SMTPD_S_CLOSING:
            return; /* resumed by the async completion */
        default:
            if (evbuffer_get_length(in) == 0)
                return;
            need_more = smtpd_read_line(s, in);
            break;
        }
        if (need_more)
            return;
    }
}

/* ------------------------------------------------------------------------- */
/* libevent callbacks */

static void smtpd_on_read(struct bufferevent *bev, void *arg)
{
    struct smtpd_session *s = arg;
    if (s->state == SMTPD_S_DATA || s->state == SMTPD_S_BDAT)
        smtpd_arm_content_timer(s);
    smtpd_process_input(s);
}

static void smtpd_on_write(struct bufferevent *bev, void *arg)
{
    struct smtpd_session *s = arg;
    if (s->state == SMTPD_S_CLOSING) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            smtpd_free(s);
        return;
    }
    if (s->state == SMTPD_S_TLSWAIT) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            smtpd_starttls_switch(s);
        return;
    }
    if (s->state != SMTPD_S_COMMIT && s->state != SMTPD_S_AUTHCHECK) {
        bufferevent_enable(bev, EV_READ);
        smtpd_process_input(s);
    }
}

static void smtpd_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct smtpd_session *s = arg;
    if (what & BEV_EVENT_CONNECTED) {
        if (s->tls) {
            SSL *ssl = bufferevent_openssl_get_ssl(bev);
            char desc[128];
            log_info("smtpd tls id=%s %s", s->id, ssl ? tls_describe(ssl, desc, sizeof desc) : "");
        }
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        unsigned long e = bufferevent_get_openssl_error(bev);
        if (e) {
            char buf[160], q[200];
            ERR_error_string_n(e, buf, sizeof buf);
            log_info("smtpd tls_error id=%s detail=%s", s->id,
                     log_quote(q, sizeof q, buf, strlen(buf)));
            while (bufferevent_get_openssl_error(bev))
                ;
        }
    }
    s->closed = 1;
    smtpd_free(s);
}

static void smtpd_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct smtpd_session *s = arg;
    if (s->state == SMTPD_S_CLOSING) {
        smtpd_free(s);
        return;
    }
    if (s->state == SMTPD_S_COMMIT || s->state == SMTPD_S_AUTHCHECK) {
        smtpd_arm_timer(s, (long)s->srv->cfg->command_timeout);
        return; /* our own work is slow, not the client */
    }
    SSL *ssl = s->tls ? bufferevent_openssl_get_ssl(s->bev) : NULL;
    if (ssl && !SSL_is_init_finished(ssl)) {
        /* No reply can be sent over a handshake that never finished. */
        log_info("smtpd tls_timeout id=%s addr=%s", s->id, s->addr);
        smtpd_close(s, "tls handshake timeout");
        evbuffer_drain(bufferevent_get_output(s->bev), (size_t)-1);
        smtpd_arm_timer(s, 0);
        return;
    }
    smtpd_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->srv->cfg->hostname);
    smtpd_close(s, "timeout");
}

static void smtpd_arm_timer(struct smtpd_session *s, long seconds)
{
    struct timeval tv = {seconds, 0};
    event_add(s->timer, &tv);
}

/*
 * Content timing: while reading DATA/BDAT, silence longer than command_timeout
 * (RFC 5321 4.5.3.2.7) ends the session, and the whole content must arrive
 * within data_timeout of the DATA/first BDAT command, so a client dripping a
 * line every few seconds cannot hold a session, a spool file and a buffer forever.
 */
static void smtpd_start_content_clock(struct smtpd_session *s)
{
    s->content_deadline = time(NULL) + (time_t)s->srv->cfg->data_timeout;
    smtpd_arm_content_timer(s);
}

static void smtpd_arm_content_timer(struct smtpd_session *s)
{
    time_t left = s->content_deadline - time(NULL);
    long idle = (long)s->srv->cfg->command_timeout;
    smtpd_arm_timer(s, left < 0 ? 0 : (left < idle ? (long)left : idle));
}

static void smtpd_install_callbacks(struct smtpd_session *s)
{
    bufferevent_setcb(s->bev, smtpd_on_read, smtpd_on_write, smtpd_on_event, s);
    bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/* ------------------------------------------------------------------------- */
/* transaction and session teardown */

static void smtpd_txn_reset(struct smtpd_session *s)
{
    if (s->ticket) {
        spool_commit_detach(s->ticket);
        s->ticket = NULL;
    }
    spool_writer_abort(&s->writer);
    spool_env_free(&s->env);
    s->bdat_remaining = 0;
    s->bdat_last = 0;
    s->bdat_failed = 0;
}

/* smtpd_close - stop reading, flush what is queued, then free. Logs once. */
static void smtpd_close(struct smtpd_session *s, const char *reason)
{
    if (s->closed)
        return;
    s->closed = 1;
    log_info("smtpd disconnected id=%s addr=%s reason=\"%s\" commands=%u messages=%u errors=%u",
             s->id, s->addr, reason, s->ncommands, s->nmessages, s->errors);
    smtpd_set_state(s, SMTPD_S_CLOSING);
    bufferevent_disable(s->bev, EV_READ);
    /* Never free here: callers are still on the stack. The write callback or the timer frees. */
    int flushed = evbuffer_get_length(bufferevent_get_output(s->bev)) == 0;
    smtpd_arm_timer(s, flushed ? 0 : SMTPD_CLOSE_GRACE_SEC);
}

static void smtpd_free(struct smtpd_session *s)
{
    if (!s->closed || s->state != SMTPD_S_CLOSING)
        log_info("smtpd disconnected id=%s addr=%s reason=\"peer closed\" commands=%u messages=%u "
                 "errors=%u",
                 s->id, s->addr, s->ncommands, s->nmessages, s->errors);
    smtpd_txn_reset(s);
    if (s->auth_job) {
        s->auth_job->s = NULL;
        if (s->auth_job->handle)
            worker_detach(s->auth_job->handle);
        else
            smtpd_auth_job_free(s->auth_job);
        s->auth_job = NULL;
    }
    if (s->timer)
        event_free(s->timer);
    if (s->bev)
        bufferevent_free(s->bev);
    smtpd_server_ip_release(s->srv, (const struct sockaddr *)&s->peer);
    s->srv->nsessions--;
    free(s);
}

/* ------------------------------------------------------------------------- */

int smtpd_session_start(struct smtpd_server *srv, int fd, const struct sockaddr *sa,
                        socklen_t salen, enum smtpd_port_kind kind)
{
    struct smtpd_session *s = calloc(1, sizeof *s);
    if (!s) {
        close(fd);
        smtpd_server_ip_release(srv, sa);
        srv->nsessions--;
        return PST_ENOMEM;
    }
    s->srv = srv;
    s->kind = kind;
    s->state = SMTPD_S_INIT;
    memcpy(&s->peer, sa, salen < sizeof s->peer ? salen : sizeof s->peer);
    netaddr_to_str(sa, s->addr, sizeof s->addr);
    snprintf(s->id, sizeof s->id, "%016llx", (unsigned long long)++srv->next_session);
    s->timer = event_new(srv->base, -1, 0, smtpd_on_timer, s);
    if (!s->timer)
        goto fail;
    int rc;
    if (kind == SMTPD_PORT_SMTPS) {
        if (!srv->tls)
            goto fail;
        rc = smtpd_attach_tls(s, fd);
        fd = -1; /* owned (or closed) by smtpd_attach_tls */
    } else {
        s->bev =
            bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        rc = s->bev ? 0 : PST_ENOMEM;
        if (rc == 0)
            smtpd_install_callbacks(s);
    }
    if (rc < 0)
        goto fail;
    fd = -1; /* owned by the bufferevent now */
    log_info("smtpd connected id=%s addr=%s port=%u listener=%s", s->id, s->addr, netaddr_port(sa),
             smtpd_port_name(kind));
    smtpd_arm_timer(s, (long)srv->cfg->command_timeout);
    smtpd_reply(s, "220 %s %s", srv->cfg->hostname, srv->cfg->banner);
    return 0;

fail:
    if (fd >= 0)
        close(fd);
    s->closed = 1;
    s->state = SMTPD_S_CLOSING;
    smtpd_free(s);
    return PST_ENOMEM;
}
