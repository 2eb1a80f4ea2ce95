/*
 * pop3d_session.c - one POP3 session as an explicit state machine.
 *
 * RFC 1939 states, with the sub-states needed for asynchronous work:
 *
 *   AUTHORIZATION --USER/PASS, APOP, AUTH PLAIN--> CHECKING --ok--> TRANSACTION
 *        |   ^  \--AUTH (no initial response)--> SASL --line--> CHECKING
 *        |   +------------- failure (after the delay) ------------+
 *        +--STLS--> TLSWAIT --flushed--> (TLS) AUTHORIZATION
 *   TRANSACTION --RETR/TOP/LIST/UIDL--> SENDING --done--> TRANSACTION
 *   TRANSACTION --QUIT--> UPDATE --commit done--> CLOSING
 *   any --error, timeout, QUIT in AUTHORIZATION--> CLOSING
 *
 * CHECKING covers the password check on a worker thread, the failure delay
 * and the (possibly asynchronous) mailbox open. Every change goes through
 * pop3d_set_state(), which logs "from -> to" at debug level. The command
 * table lists each verb's allowed states; the table, not ad-hoc code,
 * rejects unknown and out-of-state verbs.
 *
 * RFCs: 1939 (commands, states, "+OK n octets", byte-stuffing, deletion
 * only in UPDATE: a dropped connection deletes nothing), 2449 (CAPA,
 * PIPELINING: commands are taken from the input buffer in order and
 * answered in order; input processing pauses while a reply depends on
 * asynchronous work or the output buffer is over POP3D_OUT_HIGH; RESP-CODES
 * and AUTH-RESP-CODE; LOGIN-DELAY and EXPIRE as configured), 2595 (STLS:
 * input pipelined after STLS is discarded, the session is reset; plaintext
 * USER/PASS and AUTH are refused before TLS unless [pop3]
 * plaintext_on_loopback and the client is on loopback), 5034 (AUTH PLAIN
 * with an initial response or a "+ " continuation; "*" cancels), 3206
 * ([SYS/TEMP], [SYS/PERM], [AUTH], [IN-USE], [LOGIN-DELAY]).
 *
 * APOP (RFC 1939 7, [pop3] apop, off by default): the greeting then ends
 * with a timestamp "<pid.random.time@host>" unique to the session (that is
 * how APOP is signalled; CAPA does not list it). "APOP name digest" follows
 * the USER/PASS rules: refused before TLS unless plaintext is allowed,
 * checked on a worker thread (which opens the database and key file itself
 * and fetches the sealed secret, pop3_apop.h), failures counted toward
 * max_auth_failures and delayed like any other.
 *
 * Message transfer: RETR/TOP pull the backend's wire form in chunks of
 * POP3D_CHUNK into the output buffer until it holds POP3D_OUT_HIGH bytes,
 * then wait until the socket drained it below POP3D_OUT_LOW (the write
 * low-water mark). A slow reader therefore costs at most about
 * POP3D_OUT_HIGH + POP3D_CHUNK of memory, never a whole message. LIST and
 * UIDL without argument are produced the same way.
 *
 * Limits: command line length ([pop3] command_line_limit, CRLF included;
 * longer lines are discarded with -ERR), POP3D_MAX_ERRORS bad commands per
 * session, max_auth_failures per session (then close), a failure delay
 * growing per address (pop3d.c), the idle timeout (command_timeout; re-armed
 * by each command and by transfer progress).
 *
 * Failure policy: nothing a client sends can abort the process; internal
 * errors (database, file system) give "-ERR [SYS/TEMP]" and are logged.
 * Passwords and AUTH payloads are never logged and are wiped after use.
 */
#include "pop3/pop3d_session.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>

#include "lib/db.h"
#include "lib/log.h"
#include "lib/netaddr.h"
#include "lib/tls.h"
#include "lib/userdb.h"
#include "lib/worker.h"
#include "pop3/pop3_proxy.h"
#include "pop3/pop3_apop.h"
#include "pop3/pop3_parser.h"
#include "smtp/sasl.h"

#define POP3D_OUT_HIGH (256 * 1024) /* stop producing output above this */
#define POP3D_OUT_LOW (64 * 1024)   /* ... and resume when the socket drained below this */
#define POP3D_CHUNK (128 * 1024)    /* bytes asked of a stream per read */
#define POP3D_WRITE_IOV 32          /* buffer pieces per direct write */
#define POP3D_MAX_ERRORS 20         /* bad commands per session before it is closed */
#define POP3D_CLOSE_GRACE_SEC 10    /* time to flush a final reply */
#define POP3D_FAIL_DELAY_MAX_SEC 60 /* cap of the growing failure delay */
#define POP3D_SASL_LINE_MAX 2048    /* base64 of authzid, authcid and password (RFC 5034 4) */

enum pop3d_state {
    POP3D_S_AUTHORIZATION = 0,
    POP3D_S_SASL,
    POP3D_S_CHECKING,
    POP3D_S_TRANSACTION,
    POP3D_S_SENDING,
    POP3D_S_UPDATE,
    POP3D_S_TLSWAIT,
    POP3D_S_CLOSING,
    POP3D_S__COUNT
};

#define ST(x) (1u << POP3D_S_##x)

static const char *const pop3d_state_names[POP3D_S__COUNT] = {
    "AUTHORIZATION", "SASL", "CHECKING", "TRANSACTION", "SENDING", "UPDATE", "TLSWAIT", "CLOSING",
};

enum pop3d_send_kind { POP3D_SEND_NONE = 0, POP3D_SEND_MSG, POP3D_SEND_LIST, POP3D_SEND_UIDL };

struct pop3d_auth_job {
    struct pop3d_session *s; /* NULL once detached */
    struct worker_job *handle;
    char user[SASL_USER_MAX + 1];
    char pass[SASL_PASS_MAX + 1];
    char hash[USERDB_HASH_MAX];
    int have_hash;
    int result;
    const char *mech; /* static: "USER", "PLAIN", "APOP" */
    /* APOP: the worker opens the database and key itself (a struct db is per thread) */
    int apop;
    const char *db_path;  /* borrowed from cfg */
    const char *key_path; /* borrowed from cfg */
    char timestamp[POP3_APOP_TIMESTAMP_MAX];
    char digest[POP3_APOP_DIGEST_HEX + 1];
    size_t dlen;
    int apop_err; /* a store problem met on the worker (logged on the loop thread) */
};

struct pop3d_session {
    struct pop3d_server *srv; /* borrowed */
    struct pop3d_session *prev, *next;
    struct bufferevent *bev;   /* owned */
    struct event *timer;       /* owned: idle timeout, close grace */
    struct event *delay_timer; /* owned: failed-login delay */
    enum pop3d_listener kind;
    enum pop3d_state state;
    char id[17];
    struct sockaddr_storage peer;
    char addr[NETADDR_STRLEN];
    int tls;
    int loopback;
    int discarding; /* swallowing the rest of an over-long line */
    int in_input;   /* pop3d_process_input is on the stack: do not recurse into it */
    int closed;
    unsigned errors;
    unsigned auth_failures;
    unsigned ncommands;
    char apop_ts[POP3_APOP_TIMESTAMP_MAX]; /* the greeting's timestamp; "" = no APOP */
    char user_given[SASL_USER_MAX + 1];    /* from USER, until PASS */
    int have_user;
    char user[USERDB_NAME_MAX + 1]; /* logged-in user */
    struct pop3d_auth_job *auth_job;
    struct pop3_open_req *open_req;
    int opening;

    /* TRANSACTION */
    struct pop3_mbox *mb;   /* owned */
    unsigned char *deleted; /* owned: one flag per message */
    size_t nmsgs;
    size_t ndeleted;

    /* SENDING */
    enum pop3d_send_kind send_kind;
    struct pop3_stream *stream; /* owned */
    struct evbuffer *stage;     /* owned: a stream's bytes before the +OK is known to be right */
    int send_started;
    size_t send_msg; /* message being sent (0-based) / next LIST/UIDL entry */
    unsigned long nretr;
    uint64_t bytes_out;
};

/* ------------------------------------------------------------------------- */
/* prototypes */

static void pop3d_process_input(struct pop3d_session *s);
static void pop3d_close(struct pop3d_session *s, const char *reason);
static void pop3d_free(struct pop3d_session *s);
static void pop3d_arm_timer(struct pop3d_session *s, long seconds);
static void pop3d_install_callbacks(struct pop3d_session *s);
static void pop3d_pump(struct pop3d_session *s);

/* ------------------------------------------------------------------------- */
/* state, replies */

static void pop3d_set_state(struct pop3d_session *s, enum pop3d_state next)
{
    if (s->state == next)
        return;
    log_debug("pop3d state id=%s from=%s to=%s", s->id, pop3d_state_names[s->state],
              pop3d_state_names[next]);
    s->state = next;
}

static void pop3d_reply(struct pop3d_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void pop3d_reply(struct pop3d_session *s, const char *fmt, ...)
{
    struct evbuffer *out = bufferevent_get_output(s->bev);
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(out, fmt, ap);
    va_end(ap);
    evbuffer_add(out, "\r\n", 2);
}

/*
 * pop3d_reject - send an -ERR line, count it, and close the session once
 * POP3D_MAX_ERRORS is reached. Returns 1 if the session is now closing.
 */
static int pop3d_reject(struct pop3d_session *s, const char *reply)
{
    pop3d_reply(s, "%s", reply);
    char q[96];
    log_info("pop3d rejected id=%s state=%s reply=%s", s->id, pop3d_state_names[s->state],
             log_quote(q, sizeof q, reply, strlen(reply)));
    if (++s->errors < POP3D_MAX_ERRORS)
        return 0;
    pop3d_close(s, "too many errors");
    return 1;
}

/* pop3d_resume - asynchronous work finished: take the next pipelined command. */
static void pop3d_resume(struct pop3d_session *s)
{
    if (s->closed || s->srv->stopping)
        return;
    pop3d_arm_timer(s, (long)s->srv->cfg->pop3_command_timeout);
    bufferevent_enable(s->bev, EV_READ);
    if (!s->in_input) /* else the loop on the stack takes the next command */
        pop3d_process_input(s);
}

/* pop3d_apop_enabled - [pop3] apop (srv->apop is also honoured, for callers that set it). */
static int pop3d_apop_enabled(const struct pop3d_server *srv)
{
    return srv->apop || srv->cfg->pop3_apop;
}

static int pop3d_plaintext_ok(const struct pop3d_session *s)
{
    return s->tls || (s->srv->cfg->pop3_plain_loopback && s->loopback);
}

static int pop3d_stls_offered(const struct pop3d_session *s)
{
    return !s->tls && s->srv->tls && s->srv->cfg->pop3_stls;
}

static int pop3d_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return 1;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return sa->sa_family == AF_UNIX; /* socketpairs (tests) are local */
}

/* ------------------------------------------------------------------------- */
/* mailbox helpers */

static uint64_t pop3d_total_octets(struct pop3d_session *s, size_t *count)
{
    uint64_t total = 0;
    size_t n = 0;
    for (size_t i = 0; i < s->nmsgs; i++) {
        if (s->deleted[i])
            continue;
        total += pop3_mbox_info(s->mb, i)->size;
        n++;
    }
    *count = n;
    return total;
}

/* pop3d_msg_arg - validate a message number; replies and returns -1 if bad, else the index. */
static long pop3d_msg_arg(struct pop3d_session *s, unsigned long msg)
{
    if (msg == 0 || msg > s->nmsgs) {
        pop3d_reject(s, "-ERR No such message");
        return -1;
    }
    if (s->deleted[msg - 1]) {
        pop3d_reject(s, "-ERR Message already deleted");
        return -1;
    }
    return (long)(msg - 1);
}

/* ------------------------------------------------------------------------- */
/* AUTHORIZATION: login */

static void pop3d_auth_job_free(void *arg)
{
    struct pop3d_auth_job *j = arg;
    explicit_bzero(j, sizeof *j);
    free(j);
}

/*
 * pop3d_apop_work - on a worker thread: fetch the user's sealed APOP secret
 * (own database connection), load the key, check the digest. The same
 * steps run for unknown users and users without a secret.
 */
static void pop3d_apop_work(struct pop3d_auth_job *j)
{
    struct pop3_apop_sealed sealed;
    struct pop3u_key key;
    struct db *db = NULL;
    char secret[POP3_APOP_SECRET_MAX + 1];
    size_t len = 0;
    int rc = db_open(j->db_path, &db);
    if (rc == 0)
        rc = pop3_apop_fetch(db, j->user, &sealed);
    db_close(&db);
    int have = rc == 0;
    if (rc < 0 && rc != PST_ENOENT && rc != PST_EINVAL)
        j->apop_err = rc;
    if (have) {
        rc = pop3u_key_load(j->key_path, 0, &key);
        if (rc == 0) {
            rc = pop3_apop_unseal(&key, j->user, &sealed, secret, &len);
            pop3u_key_wipe(&key);
        }
        if (rc < 0)
            j->apop_err = rc; /* a secret exists but the key is missing, unusable or wrong */
        have = rc == 0;
    }
    if (have)
        rc = pop3_apop_check(j->timestamp, secret, len, j->digest, j->dlen);
    else /* the same digest work, then a certain failure */
        rc = pop3_apop_verify_sealed(NULL, j->user, NULL, j->timestamp, j->digest, j->dlen);
    j->result = j->have_hash && rc == 0 ? 0 : PST_EAUTH;
    explicit_bzero(&sealed, sizeof sealed);
    explicit_bzero(secret, sizeof secret);
}

static void pop3d_auth_work(void *arg)
{
    struct pop3d_auth_job *j = arg;
    if (j->apop) {
        pop3d_apop_work(j);
        return;
    }
    j->result = userdb_hash_verify(j->have_hash ? j->hash : NULL, j->pass);
}

static void pop3d_open_done(void *arg, int rc, struct pop3_mbox *mb)
{
    struct pop3d_session *s = arg;
    s->opening = 0;
    s->open_req = NULL;
    pop3d_set_state(s, POP3D_S_AUTHORIZATION);
    if (rc < 0) {
        log_warn("pop3d mailbox_open_failed id=%s user=%s err=\"%s\" errno=%d", s->id, s->user,
                 err_str(rc), rc == PST_EIO ? errno : 0);
        s->user[0] = '\0';
        pop3d_reject(s, rc == PST_EAGAIN ? "-ERR [IN-USE] Mailbox is locked by another session"
                                         : "-ERR [SYS/TEMP] Cannot open the mailbox");
        pop3d_resume(s);
        return;
    }
    s->mb = mb;
    s->nmsgs = pop3_mbox_count(mb);
    s->deleted = calloc(s->nmsgs ? s->nmsgs : 1, 1);
    if (!s->deleted) {
        pop3_mbox_close(&s->mb);
        s->user[0] = '\0';
        pop3d_reject(s, "-ERR [SYS/TEMP] Out of memory");
        pop3d_resume(s);
        return;
    }
    pop3d_login_note(s->srv, s->user);
    size_t n;
    uint64_t octets = pop3d_total_octets(s, &n);
    log_info("pop3d login id=%s user=%s backend=%s messages=%zu octets=%llu tls=%s", s->id, s->user,
             mb->ops->name, n, (unsigned long long)octets, s->tls ? "yes" : "no");
    pop3d_set_state(s, POP3D_S_TRANSACTION);
    const char *note = pop3px_mbox_note(mb); /* merged mailbox: sources left out */
    pop3d_reply(s, "+OK Logged in, %zu messages (%llu octets)%s%s%s", n, (unsigned long long)octets,
                note[0] ? " (" : "", note, note[0] ? ")" : "");
    pop3d_resume(s);
}

/* pop3d_open_mailbox - credentials are good: LOGIN-DELAY, then open through the backend. */
static void pop3d_open_mailbox(struct pop3d_session *s)
{
    if (!pop3d_login_allowed(s->srv, s->user)) {
        log_info("pop3d login_delayed id=%s user=%s", s->id, s->user);
        s->user[0] = '\0';
        pop3d_set_state(s, POP3D_S_AUTHORIZATION);
        pop3d_reject(s, "-ERR [LOGIN-DELAY] Minimum time between logins not yet elapsed");
        pop3d_resume(s);
        return;
    }
    struct pop3_backend *be = &s->srv->backend;
    struct pop3_open_req *req = NULL;
    s->opening = 1;
    int rc = be->ops->open(be->ctx, s->user, pop3d_open_done, s, &req);
    if (rc < 0) {
        s->opening = 0;
        pop3d_open_done(s, rc, NULL);
        return;
    }
    if (s->opening)
        s->open_req = req; /* still pending: done() comes later */
}

static void pop3d_on_delay(evutil_socket_t fd, short what, void *arg)
{
    struct pop3d_session *s = arg;
    pop3d_set_state(s, POP3D_S_AUTHORIZATION);
    if (s->auth_failures >= (unsigned)s->srv->cfg->pop3_max_auth_failures) {
        pop3d_reply(s, "-ERR [AUTH] Authentication failed, too many failures");
        pop3d_close(s, "too many authentication failures");
        return;
    }
    pop3d_reject(s, "-ERR [AUTH] Authentication failed");
    pop3d_resume(s);
}

/* pop3d_login_failed - count the failure and answer after the (growing) delay. */
static void pop3d_login_failed(struct pop3d_session *s)
{
    s->auth_failures++;
    unsigned recent = pop3d_ip_fail(s->srv, (const struct sockaddr *)&s->peer);
    long delay = (long)s->srv->cfg->pop3_auth_failure_delay;
    for (unsigned k = 1; k < recent && delay < POP3D_FAIL_DELAY_MAX_SEC; k++)
        delay *= 2;
    if (delay > POP3D_FAIL_DELAY_MAX_SEC)
        delay = POP3D_FAIL_DELAY_MAX_SEC;
    pop3d_set_state(s, POP3D_S_CHECKING);
    bufferevent_disable(s->bev, EV_READ);
    struct timeval tv = {delay, 0};
    event_add(s->delay_timer, &tv);
}

static void pop3d_auth_done(void *arg)
{
    struct pop3d_auth_job *j = arg;
    struct pop3d_session *s = j->s;
    char q[USERDB_NAME_MAX * 4 + 8];
    log_quote(q, sizeof q, j->user, strlen(j->user));
    s->auth_job = NULL;
    if (j->apop_err)
        log_error("pop3d apop_store_error id=%s user=%s err=\"%s\"", s->id, q,
                  err_str(j->apop_err));
    if (j->result != 0) {
        log_info("pop3d auth id=%s addr=%s user=%s mech=%s result=fail", s->id, s->addr, q,
                 j->mech);
        pop3d_auth_job_free(j);
        pop3d_login_failed(s);
        return;
    }
    size_t ulen = strnlen(j->user, sizeof s->user - 1); /* valid names are <= 64 bytes */
    memcpy(s->user, j->user, ulen);
    s->user[ulen] = '\0';
    log_info("pop3d auth id=%s user=%s mech=%s result=ok", s->id, q, j->mech);
    pop3d_auth_job_free(j);
    pop3d_open_mailbox(s);
}

/* pop3d_normalize_user - lower-case; "user@local.domain" -> "user". */
static void pop3d_normalize_user(const struct pop3d_server *srv, char *user)
{
    for (char *p = user; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    char *at = strrchr(user, '@');
    if (at && cfg_is_local_domain(srv->cfg, at + 1))
        *at = '\0';
}

/* pop3d_auth_check - look up the hash (fast) and verify on a worker thread (slow). Takes j. */
static void pop3d_auth_check(struct pop3d_session *s, struct pop3d_auth_job *j)
{
    pop3d_normalize_user(s->srv, j->user);
    int rc = userdb_name_valid(j->user)
                 ? userdb_get_hash(s->srv->users, j->user, j->hash, sizeof j->hash)
                 : PST_ENOENT;
    if (rc < 0 && rc != PST_ENOENT) {
        log_error("pop3d auth_lookup_failed id=%s err=\"%s\"", s->id, err_str(rc));
        pop3d_auth_job_free(j);
        pop3d_set_state(s, POP3D_S_AUTHORIZATION);
        pop3d_reject(s, "-ERR [SYS/TEMP] Temporary authentication failure");
        return;
    }
    j->have_hash = rc == 0;
    j->s = s;
    j->handle =
        worker_submit(s->srv->workers, pop3d_auth_work, pop3d_auth_done, pop3d_auth_job_free, j);
    if (!j->handle) {
        pop3d_auth_job_free(j);
        pop3d_set_state(s, POP3D_S_AUTHORIZATION);
        pop3d_reject(s, "-ERR [SYS/TEMP] Temporary authentication failure");
        return;
    }
    s->auth_job = j;
    pop3d_set_state(s, POP3D_S_CHECKING);
    bufferevent_disable(s->bev, EV_READ);
}

static int pop3d_need_tls(struct pop3d_session *s)
{
    if (pop3d_plaintext_ok(s))
        return 0;
    pop3d_reject(s, pop3d_stls_offered(s)
                        ? "-ERR [AUTH] Plaintext authentication disallowed, use STLS first"
                        : "-ERR [AUTH] Plaintext authentication disallowed on this connection");
    return 1;
}

/* ------------------------------------------------------------------------- */
/* command handlers; each writes exactly the replies it owes */

static void pop3d_cmd_user(struct pop3d_session *s, const struct pop3_cmd *c)
{
    if (pop3d_need_tls(s))
        return;
    if (c->arglen[0] > SASL_USER_MAX) {
        pop3d_reject(s, "-ERR User name too long");
        return;
    }
    memcpy(s->user_given, c->arg[0], c->arglen[0] + 1);
    s->have_user = 1;
    pop3d_reply(s, "+OK Send your password");
}

static void pop3d_cmd_pass(struct pop3d_session *s, const struct pop3_cmd *c)
{
    if (pop3d_need_tls(s))
        return;
    if (!s->have_user) {
        pop3d_reject(s, "-ERR USER first");
        return;
    }
    s->have_user = 0;
    if (c->arglen[0] > SASL_PASS_MAX) {
        pop3d_reject(s, "-ERR [AUTH] Password too long");
        return;
    }
    struct pop3d_auth_job *j = calloc(1, sizeof *j);
    if (!j) {
        pop3d_reject(s, "-ERR [SYS/TEMP] Out of memory");
        return;
    }
    memcpy(j->user, s->user_given, strlen(s->user_given) + 1);
    memcpy(j->pass, c->arg[0], c->arglen[0] + 1);
    j->mech = "USER";
    explicit_bzero(s->user_given, sizeof s->user_given);
    pop3d_auth_check(s, j);
}

/*
 * APOP name digest (RFC 1939 7), only when [pop3] apop is on (the greeting
 * then carried s->apop_ts). The secret never crosses the wire, but the same
 * plaintext rule as USER/PASS applies: before TLS, an eavesdropper could
 * record the exchange and guess the secret offline at MD5 speed, and the
 * rest of the session (the mail) would be in clear anyway.
 */
static void pop3d_cmd_apop(struct pop3d_session *s, const struct pop3_cmd *c)
{
    if (!s->apop_ts[0]) {
        pop3d_reject(s, "-ERR [AUTH] APOP not available");
        return;
    }
    if (pop3d_need_tls(s))
        return;
    if (c->arglen[0] > SASL_USER_MAX) {
        pop3d_reject(s, "-ERR User name too long");
        return;
    }
    struct pop3d_auth_job *j = calloc(1, sizeof *j);
    if (!j) {
        pop3d_reject(s, "-ERR [SYS/TEMP] Out of memory");
        return;
    }
    memcpy(j->user, c->arg[0], c->arglen[0] + 1);
    /* a longer digest is wrong anyway: keep its first 32 bytes and a length that fails */
    j->dlen = c->arglen[1] <= POP3_APOP_DIGEST_HEX ? c->arglen[1] : POP3_APOP_DIGEST_HEX + 1;
    memcpy(j->digest, c->arg[1], j->dlen < POP3_APOP_DIGEST_HEX ? j->dlen : POP3_APOP_DIGEST_HEX);
    memcpy(j->timestamp, s->apop_ts, sizeof j->timestamp);
    j->apop = 1;
    j->db_path = s->srv->cfg->db_path;
    j->key_path = s->srv->cfg->pop3_upstream_key;
    j->mech = "APOP";
    pop3d_auth_check(s, j);
}

/* pop3d_sasl_response - one base64 PLAIN response (initial or continuation). */
static void pop3d_sasl_response(struct pop3d_session *s, const char *line, size_t len)
{
    pop3d_set_state(s, POP3D_S_AUTHORIZATION);
    if (len == 1 && line[0] == '*') {
        pop3d_reject(s, "-ERR [AUTH] Authentication cancelled");
        return;
    }
    struct pop3d_auth_job *j = calloc(1, sizeof *j);
    if (!j) {
        pop3d_reject(s, "-ERR [SYS/TEMP] Out of memory");
        return;
    }
    j->mech = "PLAIN";
    if (sasl_plain_parse(line, len, j->user, sizeof j->user, j->pass, sizeof j->pass) < 0) {
        pop3d_auth_job_free(j);
        pop3d_reject(s, "-ERR [AUTH] Cannot decode the PLAIN response");
        return;
    }
    pop3d_auth_check(s, j);
}

static void pop3d_cmd_auth(struct pop3d_session *s, const struct pop3_cmd *c)
{
    if (c->nargs == 0) {
        if (!pop3d_plaintext_ok(s)) {
            pop3d_reply(s, "+OK\r\n.");
            return;
        }
        pop3d_reply(s, "+OK Mechanisms follow\r\nPLAIN\r\n.");
        return;
    }
    if (strcmp(c->arg[0], "PLAIN") != 0) {
        pop3d_reject(s, "-ERR Unsupported authentication mechanism");
        return;
    }
    if (pop3d_need_tls(s))
        return;
    if (c->nargs == 2) {
        pop3d_sasl_response(s, c->arg[1], c->arglen[1]);
        return;
    }
    pop3d_set_state(s, POP3D_S_SASL);
    pop3d_reply(s, "+ ");
}

static void pop3d_cmd_capa(struct pop3d_session *s, const struct pop3_cmd *c)
{
    const struct cfg *cfg = s->srv->cfg;
    pop3d_reply(s, "+OK Capability list follows");
    pop3d_reply(s, "TOP");
    pop3d_reply(s, "UIDL");
    pop3d_reply(s, "RESP-CODES");
    pop3d_reply(s, "AUTH-RESP-CODE");
    pop3d_reply(s, "PIPELINING");
    if (s->state == POP3D_S_AUTHORIZATION && pop3d_plaintext_ok(s)) {
        pop3d_reply(s, "USER");
        pop3d_reply(s, "SASL PLAIN");
    }
    if (s->state == POP3D_S_AUTHORIZATION && pop3d_stls_offered(s))
        pop3d_reply(s, "STLS");
    const char *exp = cfg->pop3_expire;
    int exp_ok = exp && exp[0] && strlen(exp) <= 9;
    for (const char *p = exp; exp_ok && *p; p++)
        exp_ok = isdigit((unsigned char)*p);
    if (exp && strcmp(exp, "NEVER") == 0)
        exp_ok = 1;
    if (exp_ok)
        pop3d_reply(s, "EXPIRE %s", exp);
    if (cfg->pop3_login_delay > 0)
        pop3d_reply(s, "LOGIN-DELAY %lld", (long long)cfg->pop3_login_delay);
    pop3d_reply(s, "IMPLEMENTATION Postern");
    pop3d_reply(s, ".");
}

static void pop3d_starttls_switch(struct pop3d_session *s);

static void pop3d_cmd_stls(struct pop3d_session *s, const struct pop3_cmd *c)
{
    if (s->tls) {
        pop3d_reject(s, "-ERR TLS already active");
        return;
    }
    if (!pop3d_stls_offered(s)) {
        pop3d_reject(s, "-ERR [SYS/PERM] TLS not available");
        return;
    }
    pop3d_reply(s, "+OK Begin TLS negotiation");
    /* RFC 2595 4 / RFC 3207 6: nothing pipelined after STLS may be acted on. */
    struct evbuffer *in = bufferevent_get_input(s->bev);
    size_t junk = evbuffer_get_length(in);
    if (junk) {
        evbuffer_drain(in, junk);
        log_warn("pop3d stls_injection id=%s discarded=%zu", s->id, junk);
    }
    bufferevent_disable(s->bev, EV_READ);
    pop3d_set_state(s, POP3D_S_TLSWAIT);
}

static void pop3d_cmd_stat(struct pop3d_session *s, const struct pop3_cmd *c)
{
    size_t n;
    uint64_t octets = pop3d_total_octets(s, &n);
    pop3d_reply(s, "+OK %zu %llu", n, (unsigned long long)octets);
}

static void pop3d_start_listing(struct pop3d_session *s, enum pop3d_send_kind kind)
{
    size_t n;
    uint64_t octets = pop3d_total_octets(s, &n);
    if (kind == POP3D_SEND_LIST)
        pop3d_reply(s, "+OK %zu messages (%llu octets)", n, (unsigned long long)octets);
    else
        pop3d_reply(s, "+OK Unique-ID listing follows");
    s->send_kind = kind;
    s->send_msg = 0;
    pop3d_set_state(s, POP3D_S_SENDING);
    bufferevent_disable(s->bev, EV_READ);
    pop3d_pump(s);
}

static void pop3d_cmd_list(struct pop3d_session *s, const struct pop3_cmd *c)
{
    if (!c->has_msg) {
        pop3d_start_listing(s, POP3D_SEND_LIST);
        return;
    }
    long i = pop3d_msg_arg(s, c->msg);
    if (i >= 0)
        pop3d_reply(s, "+OK %lu %llu", c->msg,
                    (unsigned long long)pop3_mbox_info(s->mb, (size_t)i)->size);
}

static void pop3d_cmd_uidl(struct pop3d_session *s, const struct pop3_cmd *c)
{
    if (!c->has_msg) {
        pop3d_start_listing(s, POP3D_SEND_UIDL);
        return;
    }
    long i = pop3d_msg_arg(s, c->msg);
    if (i >= 0)
        pop3d_reply(s, "+OK %lu %s", c->msg, pop3_mbox_info(s->mb, (size_t)i)->uidl);
}

static void pop3d_stream_wake(void *arg)
{
    struct pop3d_session *s = arg;
    if (s->state == POP3D_S_SENDING)
        pop3d_pump(s);
}

/* pop3d_start_message - RETR (lines < 0) or TOP. */
static void pop3d_start_message(struct pop3d_session *s, unsigned long msg, long lines)
{
    long i = pop3d_msg_arg(s, msg);
    if (i < 0)
        return;
    int rc = s->mb->ops->stream_open(s->mb, (size_t)i, lines, pop3d_stream_wake, s, &s->stream);
    if (rc < 0) {
        log_warn("pop3d message_unavailable id=%s user=%s msg=%lu err=\"%s\"", s->id, s->user, msg,
                 err_str(rc));
        pop3d_reject(s, rc == PST_ENOENT ? "-ERR [SYS/PERM] Message was removed by another client"
                                         : "-ERR [SYS/TEMP] Cannot read the message");
        return;
    }
    s->send_kind = POP3D_SEND_MSG;
    s->send_msg = (size_t)i;
    s->send_started = lines >= 0 ? 2 : 0; /* 2: TOP, +OK text without a size */
    pop3d_set_state(s, POP3D_S_SENDING);
    pop3d_pump(s);
    /* Still sending (an asynchronous backend, a slow reader): no commands meanwhile. A message
     * sent at once (Maildir) costs no epoll change for this. */
    if (!s->closed && s->state == POP3D_S_SENDING)
        bufferevent_disable(s->bev, EV_READ);
}

static void pop3d_cmd_retr(struct pop3d_session *s, const struct pop3_cmd *c)
{
    pop3d_start_message(s, c->msg, -1);
}

static void pop3d_cmd_top(struct pop3d_session *s, const struct pop3_cmd *c)
{
    pop3d_start_message(s, c->msg, (long)c->lines);
}

static void pop3d_cmd_dele(struct pop3d_session *s, const struct pop3_cmd *c)
{
    long i = pop3d_msg_arg(s, c->msg);
    if (i < 0)
        return;
    s->deleted[i] = 1;
    s->ndeleted++;
    pop3d_reply(s, "+OK Message %lu deleted", c->msg);
}

static void pop3d_cmd_noop(struct pop3d_session *s, const struct pop3_cmd *c)
{
    pop3d_reply(s, "+OK");
}

static void pop3d_cmd_rset(struct pop3d_session *s, const struct pop3_cmd *c)
{
    memset(s->deleted, 0, s->nmsgs);
    s->ndeleted = 0;
    size_t n;
    uint64_t octets = pop3d_total_octets(s, &n);
    pop3d_reply(s, "+OK Maildrop has %zu messages (%llu octets)", n, (unsigned long long)octets);
}

static void pop3d_commit_done(void *arg, int rc, const char *note)
{
    struct pop3d_session *s = arg;
    if (rc < 0) {
        log_error("pop3d update_failed id=%s user=%s err=\"%s\" note=\"%s\"", s->id, s->user,
                  err_str(rc), note ? note : "");
        pop3d_reply(s, "-ERR [SYS/TEMP] Some deleted messages were not removed: %s",
                    note ? note : "internal error");
    } else {
        log_info("pop3d update id=%s user=%s deleted=%zu", s->id, s->user, s->ndeleted);
        pop3d_reply(s, "+OK Bye, %zu messages deleted", s->ndeleted);
    }
    pop3_mbox_close(&s->mb); /* release the lock at once */
    pop3d_close(s, "quit");
}

static void pop3d_cmd_quit(struct pop3d_session *s, const struct pop3_cmd *c)
{
    if (s->state == POP3D_S_AUTHORIZATION) {
        pop3d_reply(s, "+OK Bye");
        pop3d_close(s, "quit");
        return;
    }
    /* RFC 1939 6: QUIT in TRANSACTION enters UPDATE, the only place mail is removed. */
    pop3d_set_state(s, POP3D_S_UPDATE);
    bufferevent_disable(s->bev, EV_READ);
    if (s->ndeleted == 0) {
        pop3d_commit_done(s, 0, NULL);
        return;
    }
    int rc = s->mb->ops->commit(s->mb, s->deleted, pop3d_commit_done, s);
    if (rc < 0)
        pop3d_commit_done(s, rc, "cannot start the update");
}

/* ------------------------------------------------------------------------- */
/* sending: messages and listings, bounded by the output high-water mark */

/* pop3d_send_done - the multi-line reply, terminator included, is queued. */
static void pop3d_send_done(struct pop3d_session *s)
{
    if (s->stream) {
        s->mb->ops->stream_close(&s->stream);
        s->nretr++;
    }
    s->send_kind = POP3D_SEND_NONE;
    pop3d_set_state(s, POP3D_S_TRANSACTION);
    pop3d_resume(s);
}

/* pop3d_send_finished - the multi-line reply is complete: the terminator. */
static void pop3d_send_finished(struct pop3d_session *s)
{
    evbuffer_add(bufferevent_get_output(s->bev), ".\r\n", 3);
    pop3d_send_done(s);
}

static void pop3d_pump_listing(struct pop3d_session *s, struct evbuffer *out)
{
    while (s->send_msg < s->nmsgs && evbuffer_get_length(out) < POP3D_OUT_HIGH) {
        size_t i = s->send_msg++;
        if (s->deleted[i])
            continue;
        const struct pop3_msginfo *mi = pop3_mbox_info(s->mb, i);
        if (s->send_kind == POP3D_SEND_LIST)
            evbuffer_add_printf(out, "%zu %llu\r\n", i + 1, (unsigned long long)mi->size);
        else
            evbuffer_add_printf(out, "%zu %s\r\n", i + 1, mi->uidl);
    }
    if (s->send_msg >= s->nmsgs)
        pop3d_send_finished(s);
}

/* pop3d_stream_failed - the backend could not deliver the message. */
static void pop3d_stream_failed(struct pop3d_session *s, int rc)
{
    log_warn("pop3d stream_failed id=%s user=%s msg=%zu err=\"%s\" started=%s", s->id, s->user,
             s->send_msg + 1, err_str(rc), s->send_started == 1 ? "yes" : "no");
    s->mb->ops->stream_close(&s->stream);
    s->send_kind = POP3D_SEND_NONE;
    if (s->send_started == 1) {
        /* Part of the message is out; POP3 has no way to say so: drop the connection. */
        pop3d_close(s, "message stream failed");
        return;
    }
    pop3d_set_state(s, POP3D_S_TRANSACTION);
    pop3d_reject(s, "-ERR [SYS/TEMP] Cannot read the message");
    pop3d_resume(s);
}

/*
 * pop3d_write_now - write what a plain socket takes of b right away (one
 * sendmsg; EAGAIN or an error leaves the rest, and the error, to the
 * bufferevent). Only called when the output buffer is empty, so order holds.
 */
static void pop3d_write_now(struct pop3d_session *s, struct evbuffer *b)
{
    evutil_socket_t fd = bufferevent_getfd(s->bev);
    if (s->tls || fd < 0)
        return;
    struct evbuffer_iovec v[POP3D_WRITE_IOV];
    struct iovec iov[POP3D_WRITE_IOV];
    int nv = evbuffer_peek(b, -1, NULL, v, POP3D_WRITE_IOV);
    if (nv > POP3D_WRITE_IOV)
        nv = POP3D_WRITE_IOV;
    if (nv < 1)
        return;
    for (int i = 0; i < nv; i++) {
        iov[i].iov_base = v[i].iov_base;
        iov[i].iov_len = v[i].iov_len;
    }
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)nv};
    ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0)
        evbuffer_drain(b, (size_t)n);
}

/* pop3d_status_first - put the +OK line of RETR / TOP in front of the first staged bytes. */
static int pop3d_status_first(struct pop3d_session *s)
{
    char line[64];
    int n = s->send_started == 2
                ? snprintf(line, sizeof line, "+OK Top of message follows\r\n")
                : snprintf(line, sizeof line, "+OK %llu octets\r\n",
                           (unsigned long long)pop3_mbox_info(s->mb, s->send_msg)->size);
    PST_ASSERT(n > 0 && (size_t)n < sizeof line);
    if (evbuffer_prepend(s->stage, line, (size_t)n) < 0)
        return PST_ENOMEM;
    s->send_started = 1;
    return 0;
}

/*
 * pop3d_pump_message - read the stream into the stage and hand it on. The
 * end of a message goes out with one direct write when nothing is queued:
 * for a small message status line, body and terminator together, without
 * a loop turn and two epoll changes (most of a small RETR's cost). Partial
 * data (a backend that has to wait, the high-water mark) goes through the
 * bufferevent, whose write callback drives the rest.
 */
static void pop3d_pump_message(struct pop3d_session *s, struct evbuffer *out)
{
    int rc = 0;
    while (evbuffer_get_length(out) + evbuffer_get_length(s->stage) < POP3D_OUT_HIGH) {
        size_t before = evbuffer_get_length(s->stage);
        rc = s->mb->ops->stream_read(s->stream, s->stage, POP3D_CHUNK);
        size_t got = evbuffer_get_length(s->stage) - before;
        if (rc < 0 && rc != PST_EAGAIN) {
            if (s->send_started == 1)
                evbuffer_add_buffer(out, s->stage);
            else
                evbuffer_drain(s->stage, evbuffer_get_length(s->stage));
            pop3d_stream_failed(s, rc);
            return;
        }
        s->bytes_out += got;
        if ((rc >= 0 || got > 0) && s->send_started != 1 && pop3d_status_first(s) < 0) {
            evbuffer_drain(s->stage, evbuffer_get_length(s->stage));
            pop3d_stream_failed(s, PST_ENOMEM);
            return;
        }
        if (rc == PST_EAGAIN)
            break; /* the backend calls pop3d_stream_wake */
        if (rc == 1) {
            evbuffer_add(s->stage, ".\r\n", 3);
            break;
        }
    }
    if (rc == 1 && evbuffer_get_length(out) == 0)
        pop3d_write_now(s, s->stage);
    evbuffer_add_buffer(out, s->stage);
    if (rc == 1)
        pop3d_send_done(s);
}

static void pop3d_pump(struct pop3d_session *s)
{
    if (s->closed || s->state != POP3D_S_SENDING)
        return;
    pop3d_arm_timer(s, (long)s->srv->cfg->pop3_command_timeout); /* progress */
    struct evbuffer *out = bufferevent_get_output(s->bev);
    if (s->send_kind == POP3D_SEND_MSG)
        pop3d_pump_message(s, out);
    else
        pop3d_pump_listing(s, out);
}

/* ------------------------------------------------------------------------- */
/* the command table */

typedef void (*pop3d_handler)(struct pop3d_session *s, const struct pop3_cmd *c);

struct pop3d_command {
    enum pop3_verb verb;
    unsigned states; /* mask of states in which the verb is allowed */
    pop3d_handler run;
};

/*
 * RFC 1939 4-6: USER, PASS, APOP (and AUTH, RFC 5034; STLS, RFC 2595) only
 * in AUTHORIZATION; STAT, LIST, RETR, DELE, NOOP, RSET, TOP, UIDL only in
 * TRANSACTION; QUIT in both; CAPA (RFC 2449 5) in both.
 */
static const struct pop3d_command pop3d_commands[] = {
    {POP3_V_USER, ST(AUTHORIZATION), pop3d_cmd_user},
    {POP3_V_PASS, ST(AUTHORIZATION), pop3d_cmd_pass},
    {POP3_V_APOP, ST(AUTHORIZATION), pop3d_cmd_apop},
    {POP3_V_AUTH, ST(AUTHORIZATION), pop3d_cmd_auth},
    {POP3_V_STLS, ST(AUTHORIZATION), pop3d_cmd_stls},
    {POP3_V_CAPA, ST(AUTHORIZATION) | ST(TRANSACTION), pop3d_cmd_capa},
    {POP3_V_QUIT, ST(AUTHORIZATION) | ST(TRANSACTION), pop3d_cmd_quit},
    {POP3_V_STAT, ST(TRANSACTION), pop3d_cmd_stat},
    {POP3_V_LIST, ST(TRANSACTION), pop3d_cmd_list},
    {POP3_V_UIDL, ST(TRANSACTION), pop3d_cmd_uidl},
    {POP3_V_RETR, ST(TRANSACTION), pop3d_cmd_retr},
    {POP3_V_TOP, ST(TRANSACTION), pop3d_cmd_top},
    {POP3_V_DELE, ST(TRANSACTION), pop3d_cmd_dele},
    {POP3_V_NOOP, ST(TRANSACTION), pop3d_cmd_noop},
    {POP3_V_RSET, ST(TRANSACTION), pop3d_cmd_rset},
};

static const struct pop3d_command *pop3d_find_command(enum pop3_verb v)
{
    for (size_t i = 0; i < PST_ARRAY_LEN(pop3d_commands); i++)
        if (pop3d_commands[i].verb == v)
            return &pop3d_commands[i];
    return NULL;
}

static void pop3d_command_line(struct pop3d_session *s, const char *line, size_t len)
{
    s->ncommands++;
    if (s->state == POP3D_S_SASL) {
        pop3d_sasl_response(s, line, len);
        return;
    }
    struct pop3_cmd cmd;
    const char *reply = NULL;
    int rc = pop3_cmd_parse(line, len, &cmd, &reply);
    int keep_user = cmd.verb == POP3_V_PASS;
    if (!keep_user) {
        s->have_user = 0; /* RFC 1939 7: PASS must follow USER directly */
        explicit_bzero(&s->user_given, sizeof s->user_given);
    }
    if (rc < 0) {
        pop3d_reject(s, reply ? reply : "-ERR Syntax error");
    } else if (cmd.verb == POP3_V_UNKNOWN) {
        pop3d_reject(s, "-ERR Unknown command");
    } else {
        const struct pop3d_command *c = pop3d_find_command(cmd.verb);
        PST_ASSERT(c != NULL);
        if (c->states & (1u << s->state))
            c->run(s, &cmd);
        else
            pop3d_reject(s, s->state == POP3D_S_AUTHORIZATION ? "-ERR Not logged in"
                                                              : "-ERR Command not valid now");
    }
    explicit_bzero(&cmd, sizeof cmd); /* may hold a password */
}

/* ------------------------------------------------------------------------- */
/* input loop */

/* pop3d_read_line - handle one command line. Returns 1 if more input is needed. */
static int pop3d_read_line(struct pop3d_session *s, struct evbuffer *in)
{
    size_t limit = (size_t)s->srv->cfg->pop3_line_limit;
    if (s->state == POP3D_S_SASL && limit < POP3D_SASL_LINE_MAX)
        limit = POP3D_SASL_LINE_MAX;
    size_t eol_len = 0;
    struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
    if (eol.pos < 0) {
        size_t have = evbuffer_get_length(in);
        if (have >= limit) {
            evbuffer_drain(in, have);
            if (!s->discarding) {
                s->discarding = 1;
                pop3d_reject(s, "-ERR Line too long");
            }
        }
        return 1;
    }
    size_t len = (size_t)eol.pos;
    if (s->discarding || len + eol_len > limit) {
        evbuffer_drain(in, len + eol_len);
        if (!s->discarding)
            pop3d_reject(s, "-ERR Line too long");
        s->discarding = 0;
        return 0;
    }
    char line[POP3D_SASL_LINE_MAX > 65536 ? POP3D_SASL_LINE_MAX : 65536];
    if (evbuffer_remove(in, line, len + eol_len) != (int)(len + eol_len)) {
        pop3d_close(s, "input error");
        return 1;
    }
    line[len] = '\0';
    pop3d_arm_timer(s, (long)s->srv->cfg->pop3_command_timeout);
    pop3d_command_line(s, line, len);
    explicit_bzero(line, len); /* may hold a password */
    return 0;
}

static void pop3d_process_input(struct pop3d_session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    struct evbuffer *out = bufferevent_get_output(s->bev);
    if (s->in_input)
        return;
    s->in_input = 1;
    while (!s->closed) {
        if (s->state != POP3D_S_AUTHORIZATION && s->state != POP3D_S_TRANSACTION &&
            s->state != POP3D_S_SASL)
            break; /* resumed by the asynchronous completion */
        if (evbuffer_get_length(out) > POP3D_OUT_HIGH) {
            bufferevent_disable(s->bev, EV_READ); /* resumed from the write callback */
            break;
        }
        if (evbuffer_get_length(in) == 0 || pop3d_read_line(s, in))
            break;
    }
    s->in_input = 0;
}

/* ------------------------------------------------------------------------- */
/* TLS */

static int pop3d_attach_tls(struct pop3d_session *s, int fd)
{
    SSL *ssl = SSL_new(s->srv->tls);
    if (!ssl) {
        close(fd);
        return PST_ETLS;
    }
    struct bufferevent *bev =
        bufferevent_openssl_socket_new(s->srv->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                       BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!bev)
        return PST_ETLS; /* libevent 2.1 freed the SSL and closed fd */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    s->bev = bev;
    s->tls = 1;
    pop3d_install_callbacks(s);
    return 0;
}

/* pop3d_starttls_switch - the +OK is flushed: move the socket to a TLS bufferevent. */
static void pop3d_starttls_switch(struct pop3d_session *s)
{
    evutil_socket_t fd = bufferevent_getfd(s->bev);
    bufferevent_setfd(s->bev, -1);
    bufferevent_free(s->bev);
    s->bev = NULL;
    if (pop3d_attach_tls(s, fd) < 0) {
        tls_log_errors("pop3d stls");
        s->closed = 1;
        pop3d_free(s);
        return;
    }
    s->have_user = 0;
    explicit_bzero(s->user_given, sizeof s->user_given);
    pop3d_set_state(s, POP3D_S_AUTHORIZATION);
}

/* ------------------------------------------------------------------------- */
/* libevent callbacks */

static void pop3d_on_read(struct bufferevent *bev, void *arg)
{
    pop3d_process_input(arg);
}

static void pop3d_on_write(struct bufferevent *bev, void *arg)
{
    struct pop3d_session *s = arg;
    size_t pending = evbuffer_get_length(bufferevent_get_output(bev));
    switch (s->state) {
    case POP3D_S_CLOSING:
        if (pending == 0)
            pop3d_free(s);
        return;
    case POP3D_S_TLSWAIT:
        if (pending == 0)
            pop3d_starttls_switch(s);
        return;
    case POP3D_S_SENDING:
        pop3d_pump(s);
        return;
    case POP3D_S_AUTHORIZATION:
    case POP3D_S_TRANSACTION:
    case POP3D_S_SASL:
        if (!s->closed && !s->srv->stopping) {
            bufferevent_enable(bev, EV_READ);
            pop3d_process_input(s);
        }
        return;
    default:
        return;
    }
}

static void pop3d_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct pop3d_session *s = arg;
    if (what & BEV_EVENT_CONNECTED) {
        SSL *ssl = s->tls ? bufferevent_openssl_get_ssl(bev) : NULL;
        char desc[128];
        if (ssl)
            log_info("pop3d tls id=%s %s", s->id, tls_describe(ssl, desc, sizeof desc));
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        unsigned long e = bufferevent_get_openssl_error(bev);
        if (e) {
            char buf[160], q[200];
            ERR_error_string_n(e, buf, sizeof buf);
            log_info("pop3d tls_error id=%s detail=%s", s->id,
                     log_quote(q, sizeof q, buf, strlen(buf)));
            while (bufferevent_get_openssl_error(bev))
                ;
        }
    }
    pop3d_free(s);
}

static void pop3d_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct pop3d_session *s = arg;
    if (s->state == POP3D_S_CLOSING) {
        pop3d_free(s);
        return;
    }
    if (s->state == POP3D_S_CHECKING || s->state == POP3D_S_UPDATE) {
        pop3d_arm_timer(s, (long)s->srv->cfg->pop3_command_timeout);
        return; /* our own work is slow, not the client */
    }
    SSL *ssl = s->tls ? bufferevent_openssl_get_ssl(s->bev) : NULL;
    if (ssl && !SSL_is_init_finished(ssl)) {
        log_info("pop3d tls_timeout id=%s addr=%s", s->id, s->addr);
        evbuffer_drain(bufferevent_get_output(s->bev), (size_t)-1);
        pop3d_close(s, "tls handshake timeout");
        return;
    }
    /* RFC 1939 3: the autologout timer closes without entering UPDATE. */
    if (s->state != POP3D_S_SENDING)
        pop3d_reply(s, "-ERR Autologout: idle for too long");
    else
        evbuffer_drain(bufferevent_get_output(s->bev), (size_t)-1); /* the reader is gone */
    pop3d_close(s, "timeout");
}

static void pop3d_arm_timer(struct pop3d_session *s, long seconds)
{
    struct timeval tv = {seconds, 0};
    event_add(s->timer, &tv);
}

static void pop3d_install_callbacks(struct pop3d_session *s)
{
    bufferevent_setcb(s->bev, pop3d_on_read, pop3d_on_write, pop3d_on_event, s);
    bufferevent_setwatermark(s->bev, EV_WRITE, POP3D_OUT_LOW, 0);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/* ------------------------------------------------------------------------- */
/* teardown */

/* pop3d_close - stop reading, flush what is queued, then free. Logs once. */
static void pop3d_close(struct pop3d_session *s, const char *reason)
{
    if (s->closed)
        return;
    s->closed = 1;
    log_info("pop3d disconnected id=%s addr=%s user=%s reason=\"%s\" commands=%u retrieved=%lu "
             "bytes=%llu deleted=%zu errors=%u",
             s->id, s->addr, s->user[0] ? s->user : "-", reason, s->ncommands, s->nretr,
             (unsigned long long)s->bytes_out, s->state == POP3D_S_UPDATE ? s->ndeleted : 0,
             s->errors);
    if (s->stream)
        s->mb->ops->stream_close(&s->stream);
    pop3d_set_state(s, POP3D_S_CLOSING);
    bufferevent_disable(s->bev, EV_READ);
    /* Never free here: callers are still on the stack. The write callback or the timer frees. */
    int flushed = evbuffer_get_length(bufferevent_get_output(s->bev)) == 0;
    pop3d_arm_timer(s, flushed ? 0 : POP3D_CLOSE_GRACE_SEC);
}

static void pop3d_free(struct pop3d_session *s)
{
    if (!s->closed)
        log_info("pop3d disconnected id=%s addr=%s user=%s reason=\"peer closed\" commands=%u "
                 "retrieved=%lu bytes=%llu deleted=0 errors=%u",
                 s->id, s->addr, s->user[0] ? s->user : "-", s->ncommands, s->nretr,
                 (unsigned long long)s->bytes_out, s->errors);
    if (s->auth_job) {
        s->auth_job->s = NULL;
        worker_detach(s->auth_job->handle);
        s->auth_job = NULL;
    }
    if (s->opening && s->open_req)
        s->srv->backend.ops->cancel(s->srv->backend.ctx, s->open_req);
    if (s->stream)
        s->mb->ops->stream_close(&s->stream);
    pop3_mbox_close(&s->mb); /* no UPDATE: nothing is deleted */
    free(s->deleted);
    if (s->stage)
        evbuffer_free(s->stage);
    if (s->timer)
        event_free(s->timer);
    if (s->delay_timer)
        event_free(s->delay_timer);
    if (s->bev)
        bufferevent_free(s->bev);
    if (s->prev)
        s->prev->next = s->next;
    else if (s->srv->sessions == s)
        s->srv->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    pop3d_ip_release(s->srv, (const struct sockaddr *)&s->peer);
    s->srv->nsessions--;
    explicit_bzero(s, sizeof *s);
    free(s);
}

void pop3d_session_drop(struct pop3d_session *s)
{
    pop3d_free(s);
}

/* ------------------------------------------------------------------------- */

int pop3d_session_start(struct pop3d_server *srv, int fd, const struct sockaddr *sa,
                        socklen_t salen, enum pop3d_listener kind)
{
    struct pop3d_session *s = calloc(1, sizeof *s);
    if (!s) {
        close(fd);
        pop3d_ip_release(srv, sa);
        srv->nsessions--;
        return PST_ENOMEM;
    }
    s->srv = srv;
    s->kind = kind;
    s->state = POP3D_S_AUTHORIZATION;
    memcpy(&s->peer, sa, salen < sizeof s->peer ? salen : sizeof s->peer);
    s->loopback = pop3d_is_loopback(sa);
    if (sa->sa_family == AF_UNIX)
        snprintf(s->addr, sizeof s->addr, "local");
    else
        netaddr_to_str(sa, s->addr, sizeof s->addr);
    snprintf(s->id, sizeof s->id, "%016llx", (unsigned long long)++srv->next_session);
    s->next = srv->sessions;
    if (s->next)
        s->next->prev = s;
    srv->sessions = s;
    s->timer = event_new(srv->base, -1, 0, pop3d_on_timer, s);
    s->delay_timer = event_new(srv->base, -1, 0, pop3d_on_delay, s);
    s->stage = evbuffer_new();
    int rc = s->timer && s->delay_timer && s->stage ? 0 : PST_ENOMEM;
    if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
        /* replies are written whole: no Nagle delay behind the client's delayed ACK */
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (rc == 0 && kind == POP3D_LISTEN_POP3S) {
        rc = srv->tls ? pop3d_attach_tls(s, fd) : PST_ETLS;
        if (!srv->tls)
            close(fd);
        fd = -1; /* owned (or closed) by pop3d_attach_tls */
    } else if (rc == 0) {
        s->bev =
            bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        rc = s->bev ? 0 : PST_ENOMEM;
        if (rc == 0) {
            fd = -1;
            pop3d_install_callbacks(s);
        }
    }
    if (rc < 0) {
        if (fd >= 0)
            close(fd);
        s->closed = 1;
        pop3d_free(s);
        return rc;
    }
    log_info("pop3d connected id=%s addr=%s port=%u listener=%s", s->id, s->addr, netaddr_port(sa),
             pop3d_listener_name(kind));
    pop3d_arm_timer(s, (long)srv->cfg->pop3_command_timeout);
    /* RFC 1939 7: the APOP timestamp, unique per session, is the greeting's signal for APOP */
    if (pop3d_apop_enabled(srv) &&
        pop3_apop_timestamp(s->apop_ts, sizeof s->apop_ts, srv->cfg->hostname) < 0)
        s->apop_ts[0] = '\0'; /* no randomness: no APOP for this session */
    if (s->apop_ts[0])
        pop3d_reply(s, "+OK %s POP3 server ready %s", srv->cfg->hostname, s->apop_ts);
    else
        pop3d_reply(s, "+OK %s POP3 server ready", srv->cfg->hostname);
    return 0;
}
