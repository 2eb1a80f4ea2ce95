/*
 * pop3c.c - the asynchronous POP3 client as an explicit state machine on
 * libevent bufferevents.
 *
 *   RESOLVING -> CONNECTING [implicit TLS: handshake inside CONNECTING]
 *     -> GREETING -> CAPA --(stls mode)--> STLS -> TLS -> CAPA (again)
 *                     +--> AUTH (SASL PLAIN offered) ---------+
 *                     +--> USER -> PASS ----------------------+--> READY
 *   READY: queued commands are written (pipelined or one at a time) and
 *          their replies read in order: a status line, then for multi-line
 *          replies either entry lines (LIST, UIDL) or a streamed body
 *          (RETR, TOP); QUIT's +OK -> CLOSED
 *   any --error / timeout / drop / garbage--> DEAD
 *
 * Every state change goes through pop3c_set_state(), which logs "old ->
 * new" at debug level. The reply timer runs whenever a reply is awaited and
 * is re-armed after every complete line and every piece of body processed,
 * so a server that stops (or trickles a status line byte by byte) is cut
 * off; CONNECTING has its own timeout that also covers the implicit TLS
 * handshake, and each resolved address is tried in turn.
 *
 * RFCs: 1939 (POP3: greeting, USER/PASS, STAT, LIST, RETR, DELE, NOOP,
 * RSET, QUIT, TOP, UIDL; multi-line responses and byte-stuffing, 3), 2449
 * (CAPA, PIPELINING, response codes; status lines of at most 512 octets -
 * we tolerate POP3_REPLY_LINE_MAX, any line), 2595 (STLS: nothing may follow
 * the +OK in clear text, CAPA is issued again after the handshake), 3206
 * (SYS/TEMP, AUTH, IN-USE, LOGIN-DELAY codes at login), 5034 (AUTH PLAIN
 * with an initial response when the command fits in 255 octets, else after
 * the "+ " continuation), 4616 (PLAIN message).
 *
 * Failure policy: nothing the server sends can crash the client. A status
 * line that is not +OK/-ERR, a malformed listing, a line past the limit,
 * more entries than allowed, a body past max_msg_bytes, data while idle, a
 * drop or a timeout end the session through pop3c_fail(), the one
 * teardown: it closes the connection, logs the reason once and calls every
 * pending callback in order. A -ERR to a transaction command is not fatal.
 * Re-entrancy: callbacks run with c->depth > 0; pop3c_free() from inside
 * one only marks the session (zombie) and the outermost handler frees it.
 */
#include "pop3c.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "lib/log.h"
#include "lib/netaddr.h"
#include "lib/tls.h"
#include "lib/worker.h"

#define POP3C_CMD_MAX 600        /* one command line we send, CRLF included */
#define POP3C_CHUNK 16384        /* body bytes decoded per piece */
#define POP3C_IN_MAX 65536       /* read high watermark */
#define POP3C_LIBEVENT_READ 4096 /* libevent 2.1 reads at most this much per readiness */
#define POP3C_IOV_MAX 16         /* buffer pieces per direct send / body decode */
#define POP3C_WHY_MAX 600        /* local reason text */
#define POP3C_TEXT_MAX 512       /* status-line text kept for a multi-line reply's done_cb */
#define POP3C_ADDRS_MAX 8        /* resolved addresses tried */
#define POP3C_SASL_IR_MAX 255    /* RFC 5034 4: longest AUTH command with initial response */
#define POP3C_ID_MAX 128

enum pop3c_state {
    POP3C_S_RESOLVING = 0,
    POP3C_S_CONNECTING,
    POP3C_S_GREETING,
    POP3C_S_CAPA,
    POP3C_S_STLS,
    POP3C_S_TLS,
    POP3C_S_AUTH,
    POP3C_S_USER,
    POP3C_S_PASS,
    POP3C_S_READY,
    POP3C_S_CLOSED,
    POP3C_S_DEAD,
    POP3C_S__COUNT
};

enum pop3c_phase { POP3C_P_STATUS = 0, POP3C_P_LINES, POP3C_P_BODY };

enum pop3c_verb {
    POP3C_V_STAT = 0,
    POP3C_V_LIST,
    POP3C_V_UIDL,
    POP3C_V_RETR,
    POP3C_V_TOP,
    POP3C_V_DELE,
    POP3C_V_RSET,
    POP3C_V_NOOP,
    POP3C_V_QUIT,
};

static const char *const pop3c_verbs[] = {"STAT", "LIST", "UIDL", "RETR", "TOP",
                                          "DELE", "RSET", "NOOP", "QUIT"};

static const char *const pop3c_state_names[POP3C_S__COUNT] = {
    [POP3C_S_RESOLVING] = "RESOLVING", [POP3C_S_CONNECTING] = "CONNECTING",
    [POP3C_S_GREETING] = "GREETING",   [POP3C_S_CAPA] = "CAPA",
    [POP3C_S_STLS] = "STLS",           [POP3C_S_TLS] = "TLS",
    [POP3C_S_AUTH] = "AUTH",           [POP3C_S_USER] = "USER",
    [POP3C_S_PASS] = "PASS",           [POP3C_S_READY] = "READY",
    [POP3C_S_CLOSED] = "CLOSED",       [POP3C_S_DEAD] = "DEAD",
};

/* Return values of the input handlers. */
#define POP3C_GO 1   /* keep processing input */
#define POP3C_STOP 0 /* stop: need more data, the session changed state, or it is gone */

struct pop3c_cmd {
    struct pop3c_cmd *next;
    enum pop3c_verb verb;
    uint32_t msgno, lines;
    pop3c_entry_cb entry;
    pop3c_data_cb data;
    pop3c_done_cb done;
    void *arg;
};

struct pop3c_resolve {
    struct pop3c *c; /* NULL once detached */
    char host[POP3C_HOST_MAX + 1];
    unsigned port;
    struct sockaddr_storage addrs[POP3C_ADDRS_MAX];
    socklen_t lens[POP3C_ADDRS_MAX];
    int naddr;
    int gai_err;
};

struct pop3c {
    struct event_base *base; /* borrowed */
    struct bufferevent *bev; /* NULL once closed */
    struct event *timer;
    struct event *resume_ev; /* processes buffered input after pop3c_resume */
    SSL_CTX *ctx;            /* borrowed or owned (own_ctx) */
    int own_ctx;
    enum pop3c_state state;
    enum pop3c_phase phase;
    int depth, zombie, paused;
    int corked; /* pop3c_send appends to out (inside pop3c_pump) */
    int tls_up, capa_ok, authed_sasl, sasl_ir;
    unsigned caps;

    /* parameters */
    char *host, *server_name, *user, *pass;
    char id[POP3C_ID_MAX];
    unsigned port;
    enum pop3c_tls tls;
    enum pop3c_verify verify;
    unsigned connect_timeout, reply_timeout;
    uint64_t max_msg;
    uint32_t max_entries;
    int no_sasl;
    struct worker_job *job;
    struct pop3c_resolve *res;

    /* addresses */
    struct sockaddr_storage addrs[POP3C_ADDRS_MAX];
    socklen_t lens[POP3C_ADDRS_MAX];
    int naddr, addr_i;
    char addr[NETADDR_STRLEN];

    pop3c_ready_cb ready_cb;
    void *ready_arg;
    pop3c_close_cb close_cb;
    void *close_arg;

    /* the command queue: head = oldest unanswered; unsent = first not yet written */
    struct pop3c_cmd *head, *tail, *unsent;
    uint32_t nqueued, inflight;
    int quit_queued;

    /* the reply in progress (head command) */
    struct pop3_body body;
    uint64_t body_bytes;
    uint32_t entries;
    char code[POP3_REPLY_CODE_MAX];
    char text[POP3C_TEXT_MAX];

    char line[POP3_REPLY_LINE_MAX];
    char *chunk;          /* POP3C_CHUNK + 1 */
    struct evbuffer *out; /* commands of one pump, sent together (pop3c_flush) */
    char why[POP3C_WHY_MAX];
    char tlsinfo[128];
};

static int pop3c_fail(struct pop3c *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void pop3c_destroy(struct pop3c *c);
static void pop3c_install(struct pop3c *c);
static int pop3c_start_connect(struct pop3c *c);
static void pop3c_process(struct pop3c *c);

/* ---- helpers ---- */

static void pop3c_enter(struct pop3c *c)
{
    c->depth++;
}

/* pop3c_leave - end of a top-level handler: free a session marked by pop3c_free. */
static void pop3c_leave(struct pop3c *c)
{
    if (--c->depth == 0 && c->zombie)
        pop3c_destroy(c);
}

/* pop3c_gone - 1 if processing must stop at once (freed by a callback, or dead). */
static int pop3c_gone(const struct pop3c *c)
{
    return c->zombie || c->state == POP3C_S_DEAD || c->state == POP3C_S_CLOSED;
}

static int pop3c_awaiting(const struct pop3c *c)
{
    if (c->state == POP3C_S_READY)
        return c->inflight > 0;
    return c->state != POP3C_S_DEAD && c->state != POP3C_S_CLOSED;
}

/* pop3c_timer_update - (re)arm the timeout if a reply is awaited, else stop it. */
static void pop3c_timer_update(struct pop3c *c)
{
    if (!c->timer)
        return;
    if (c->paused || !pop3c_awaiting(c)) {
        evtimer_del(c->timer);
        return;
    }
    unsigned secs = c->reply_timeout;
    if (c->state == POP3C_S_CONNECTING || c->state == POP3C_S_TLS || c->state == POP3C_S_RESOLVING)
        secs = c->connect_timeout;
    else if (c->head && c->head->verb == POP3C_V_QUIT && secs > POP3C_QUIT_TIMEOUT)
        secs = POP3C_QUIT_TIMEOUT;
    struct timeval tv = {.tv_sec = secs, .tv_usec = 0};
    evtimer_add(c->timer, &tv);
}

static void pop3c_set_state(struct pop3c *c, enum pop3c_state s)
{
    if (c->state != s)
        log_debug("pop3c state id=%s %s -> %s", c->id, pop3c_state_names[c->state],
                  pop3c_state_names[s]);
    c->state = s;
    pop3c_timer_update(c);
}

/* pop3c_send - queue one command line (without CRLF); the line buffer is wiped (passwords). */
__attribute__((format(printf, 2, 3))) PST_MUST_CHECK static int pop3c_send(struct pop3c *c,
                                                                           const char *fmt, ...)
{
    char line[POP3C_CMD_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
    va_end(ap);
    int rc = 0;
    if (n < 0 || (size_t)n >= sizeof(line) - 2)
        rc = PST_ELIMIT;
    if (rc == 0) {
        line[n] = '\r';
        line[n + 1] = '\n';
        int w = c->corked ? evbuffer_add(c->out, line, (size_t)n + 2)
                          : bufferevent_write(c->bev, line, (size_t)n + 2);
        rc = w == 0 ? 0 : PST_ENOMEM;
    }
    explicit_bzero(line, sizeof(line));
    return rc;
}

static void pop3c_wipe_pass(struct pop3c *c)
{
    if (c->pass) {
        explicit_bzero(c->pass, strlen(c->pass));
        free(c->pass);
        c->pass = NULL;
    }
}

/* pop3c_detach_job - forget a pending name resolution (its release callback frees it). */
static void pop3c_detach_job(struct pop3c *c)
{
    if (!c->job)
        return;
    c->res->c = NULL;
    worker_detach(c->job);
    c->job = NULL;
    c->res = NULL;
}

static void pop3c_close(struct pop3c *c)
{
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (c->timer)
        evtimer_del(c->timer);
}

/* pop3c_pop - unlink the head command (answered or failed); caller frees it. */
static struct pop3c_cmd *pop3c_pop(struct pop3c *c)
{
    struct pop3c_cmd *cmd = c->head;
    if (!cmd)
        return NULL;
    if (c->unsent == cmd)
        c->unsent = cmd->next;
    else if (c->inflight > 0)
        c->inflight--;
    c->head = cmd->next;
    if (!c->head)
        c->tail = NULL;
    c->nqueued--;
    return cmd;
}

static void pop3c_reply_init(struct pop3c_reply *r, int status, const char *code, const char *text)
{
    memset(r, 0, sizeof(*r));
    r->status = status;
    r->code = code ? code : "";
    r->text = text ? text : "";
}

/*
 * pop3c_fail - the one teardown: close, log the reason once, call ready_cb
 * (if pending) and every queued done_cb with status, or close_cb when
 * nothing was pending. Returns POP3C_STOP.
 */
static int pop3c_fail(struct pop3c *c, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->why, sizeof(c->why), fmt, ap);
    va_end(ap);
    if (n < 0)
        c->why[0] = '\0';
    char q[POP3C_WHY_MAX + 64];
    log_info("pop3c closed id=%s addr=%s state=%s status=%s why=%s", c->id,
             c->addr[0] ? c->addr : "-", pop3c_state_names[c->state], err_str(status),
             log_quote(q, sizeof(q), c->why, strlen(c->why)));
    pop3c_close(c);
    pop3c_detach_job(c);
    pop3c_wipe_pass(c);
    pop3c_set_state(c, POP3C_S_DEAD);
    int called = 0;
    pop3c_enter(c);
    if (c->ready_cb) {
        pop3c_ready_cb cb = c->ready_cb;
        c->ready_cb = NULL;
        called = 1;
        cb(c->ready_arg, status, c->why);
    }
    while (!c->zombie && c->head) {
        struct pop3c_cmd *cmd = pop3c_pop(c);
        struct pop3c_reply r;
        pop3c_reply_init(&r, status, "", c->why);
        r.octets = c->body_bytes;
        r.entries = c->entries;
        c->body_bytes = 0;
        c->entries = 0;
        called = 1;
        pop3c_done_cb cb = cmd->done;
        void *arg = cmd->arg;
        free(cmd);
        cb(arg, &r);
    }
    if (!called && !c->zombie && c->close_cb) {
        pop3c_close_cb cb = c->close_cb;
        c->close_cb = NULL;
        cb(c->close_arg, status, c->why);
    }
    pop3c_leave(c);
    return POP3C_STOP;
}

/* pop3c_login_status - the status for a -ERR at login, by RFC 2449 / 3206 response code. */
static int pop3c_login_status(const char *code)
{
    if (strncasecmp(code, "SYS/", 4) == 0 || strcasecmp(code, "IN-USE") == 0 ||
        strcasecmp(code, "LOGIN-DELAY") == 0)
        return PST_EAGAIN;
    return PST_EAUTH;
}

/* ---- the command queue ---- */

static int pop3c_cmd_write(struct pop3c *c, const struct pop3c_cmd *cmd)
{
    const char *v = pop3c_verbs[cmd->verb];
    switch (cmd->verb) {
    case POP3C_V_LIST:
    case POP3C_V_UIDL:
        if (cmd->msgno == 0)
            return pop3c_send(c, "%s", v);
        return pop3c_send(c, "%s %u", v, (unsigned)cmd->msgno);
    case POP3C_V_RETR:
    case POP3C_V_DELE:
        return pop3c_send(c, "%s %u", v, (unsigned)cmd->msgno);
    case POP3C_V_TOP:
        return pop3c_send(c, "%s %u %u", v, (unsigned)cmd->msgno, (unsigned)cmd->lines);
    default:
        return pop3c_send(c, "%s", v);
    }
}

/* pop3c_plain_fd - the socket of a session without TLS (ever), or -1. */
static evutil_socket_t pop3c_plain_fd(const struct pop3c *c)
{
    if (c->tls != POP3C_TLS_NONE || !c->bev)
        return -1;
    return bufferevent_getfd(c->bev);
}

/*
 * pop3c_flush - send the commands of one pump (c->out). On a plain socket
 * with nothing else queued they go out at once with one sendmsg, which
 * saves a loop turn and two epoll changes per command (a RETR's latency);
 * anything unsent (EAGAIN, or an error the bufferevent then reports) goes
 * through the bufferevent in order. Returns 0 or PST_ENOMEM.
 */
static int pop3c_flush(struct pop3c *c)
{
    evutil_socket_t fd = pop3c_plain_fd(c);
    if (evbuffer_get_length(c->out) == 0)
        return 0;
    if (fd >= 0 && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        struct evbuffer_iovec v[POP3C_IOV_MAX];
        struct iovec iov[POP3C_IOV_MAX];
        int nv = evbuffer_peek(c->out, -1, NULL, v, POP3C_IOV_MAX);
        if (nv > POP3C_IOV_MAX)
            nv = POP3C_IOV_MAX;
        for (int i = 0; i < nv; i++) {
            iov[i].iov_base = v[i].iov_base;
            iov[i].iov_len = v[i].iov_len;
        }
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = nv > 0 ? (size_t)nv : 0};
        ssize_t n = nv > 0 ? sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) : -1;
        if (n > 0)
            evbuffer_drain(c->out, (size_t)n);
    }
    if (evbuffer_get_length(c->out) == 0)
        return 0;
    return bufferevent_write_buffer(c->bev, c->out) == 0 ? 0 : PST_ENOMEM;
}

/* pop3c_pump - write queued commands: all of them up to the window with PIPELINING, else one. */
static int pop3c_pump(struct pop3c *c)
{
    if (c->state != POP3C_S_READY || !c->bev)
        return POP3C_GO;
    int was_idle = c->inflight == 0;
    uint32_t window = (c->caps & POP3_CAP_PIPELINING) ? POP3C_PIPE_WINDOW : 1;
    c->corked = 1;
    while (c->unsent && c->inflight < window) {
        struct pop3c_cmd *cmd = c->unsent;
        if (pop3c_cmd_write(c, cmd) < 0) {
            c->corked = 0;
            return pop3c_fail(c, PST_ENOMEM, "cannot queue %s", pop3c_verbs[cmd->verb]);
        }
        c->unsent = cmd->next;
        c->inflight++;
        if (cmd->verb == POP3C_V_QUIT)
            break;
    }
    c->corked = 0;
    if (pop3c_flush(c) < 0)
        return pop3c_fail(c, PST_ENOMEM, "cannot send the queued commands");
    if (was_idle && c->inflight > 0)
        pop3c_timer_update(c);
    return POP3C_GO;
}

static int pop3c_enqueue(struct pop3c *c, enum pop3c_verb verb, uint32_t msgno, uint32_t lines,
                         pop3c_entry_cb entry, pop3c_data_cb data, pop3c_done_cb done, void *arg)
{
    if (!c || !done)
        return PST_EINVAL;
    if (c->state == POP3C_S_DEAD || c->zombie)
        return PST_EAGAIN;
    if (c->quit_queued || c->state == POP3C_S_CLOSED)
        return PST_EINVAL;
    if (msgno > POP3_MSGNO_MAX)
        return PST_EINVAL;
    if (c->nqueued >= POP3C_QUEUE_MAX)
        return PST_ELIMIT;
    struct pop3c_cmd *cmd = calloc(1, sizeof(*cmd));
    if (!cmd)
        return PST_ENOMEM;
    cmd->verb = verb;
    cmd->msgno = msgno;
    cmd->lines = lines;
    cmd->entry = entry;
    cmd->data = data;
    cmd->done = done;
    cmd->arg = arg;
    if (c->tail)
        c->tail->next = cmd;
    else
        c->head = cmd;
    c->tail = cmd;
    if (!c->unsent)
        c->unsent = cmd;
    c->nqueued++;
    if (verb == POP3C_V_QUIT)
        c->quit_queued = 1;
    if (c->depth == 0) {
        pop3c_enter(c);
        (void)pop3c_pump(c);
        pop3c_leave(c);
    } else {
        (void)pop3c_pump(c);
    }
    return 0;
}

/*
 * pop3c_complete - the head command's reply is complete: call its done_cb.
 * Returns POP3C_GO to keep reading (the next pipelined reply) or STOP.
 */
static int pop3c_complete(struct pop3c *c, struct pop3c_reply *r)
{
    struct pop3c_cmd *cmd = pop3c_pop(c);
    PST_ASSERT(cmd != NULL);
    c->phase = POP3C_P_STATUS;
    c->body_bytes = 0;
    c->entries = 0;
    if (cmd->verb == POP3C_V_QUIT) {
        pop3c_close(c);
        pop3c_set_state(c, POP3C_S_CLOSED);
        log_debug("pop3c quit id=%s status=%s", c->id, err_str(r->status));
    }
    pop3c_done_cb cb = cmd->done;
    void *arg = cmd->arg;
    free(cmd);
    cb(arg, r);
    if (pop3c_gone(c))
        return POP3C_STOP;
    (void)pop3c_pump(c);
    if (pop3c_gone(c))
        return POP3C_STOP;
    pop3c_timer_update(c);
    return POP3C_GO;
}

/* ---- login ---- */

static int pop3c_ready(struct pop3c *c)
{
    pop3c_wipe_pass(c);
    pop3c_set_state(c, POP3C_S_READY);
    log_info("pop3c connected id=%s addr=%s tls=%s auth=%s pipelining=%s", c->id, c->addr,
             c->tls_up ? "yes" : "no", c->authed_sasl ? "sasl-plain" : "user",
             (c->caps & POP3_CAP_PIPELINING) ? "yes" : "no");
    snprintf(c->why, sizeof(c->why), "logged in");
    if (c->ready_cb) {
        pop3c_ready_cb cb = c->ready_cb;
        c->ready_cb = NULL;
        cb(c->ready_arg, 0, c->why);
        if (pop3c_gone(c))
            return POP3C_STOP;
    }
    (void)pop3c_pump(c);
    return pop3c_gone(c) ? POP3C_STOP : POP3C_GO;
}

/* pop3c_sasl_plain - the base64 of "\0user\0pass" into out (size outsz); length or <0. */
static int pop3c_sasl_plain(struct pop3c *c, char *out, size_t outsz)
{
    unsigned char raw[2 * POP3C_FIELD_MAX + 2];
    size_t ul = strlen(c->user), pl = strlen(c->pass);
    if (((ul + pl + 2 + 2) / 3) * 4 + 1 > outsz)
        return PST_ELIMIT;
    raw[0] = '\0';
    memcpy(raw + 1, c->user, ul);
    raw[1 + ul] = '\0';
    memcpy(raw + 2 + ul, c->pass, pl);
    int n = EVP_EncodeBlock((unsigned char *)out, raw, (int)(ul + pl + 2));
    explicit_bzero(raw, sizeof(raw));
    return n > 0 ? n : PST_EINVAL;
}

static int pop3c_login(struct pop3c *c)
{
    if (!c->no_sasl && (c->caps & POP3_CAP_SASL_PLAIN)) {
        char b64[((2 * POP3C_FIELD_MAX + 2 + 2) / 3) * 4 + 1];
        int n = pop3c_sasl_plain(c, b64, sizeof(b64));
        int rc = n < 0 ? n : 0;
        c->sasl_ir = n > 0 && (size_t)n + strlen("AUTH PLAIN ") + 2 <= POP3C_SASL_IR_MAX;
        if (rc == 0)
            rc = c->sasl_ir ? pop3c_send(c, "AUTH PLAIN %s", b64) : pop3c_send(c, "AUTH PLAIN");
        explicit_bzero(b64, sizeof(b64));
        if (rc < 0)
            return pop3c_fail(c, PST_ENOMEM, "cannot queue AUTH");
        c->authed_sasl = 1;
        pop3c_set_state(c, POP3C_S_AUTH);
        return POP3C_GO;
    }
    if (pop3c_send(c, "USER %s", c->user) < 0)
        return pop3c_fail(c, PST_ENOMEM, "cannot queue USER");
    pop3c_set_state(c, POP3C_S_USER);
    return POP3C_GO;
}

static int pop3c_after_capa(struct pop3c *c)
{
    if (c->tls == POP3C_TLS_STLS && !c->tls_up) {
        /* RFC 2595 4: a server that answers CAPA but does not list STLS does not have it. */
        if (c->capa_ok && !(c->caps & POP3_CAP_STLS))
            return pop3c_fail(c, PST_ETLS, "STLS required but not offered");
        if (pop3c_send(c, "STLS") < 0)
            return pop3c_fail(c, PST_ENOMEM, "cannot queue STLS");
        pop3c_set_state(c, POP3C_S_STLS);
        return POP3C_GO;
    }
    return pop3c_login(c);
}

static int pop3c_send_capa(struct pop3c *c)
{
    c->caps = 0;
    c->capa_ok = 0;
    c->entries = 0;
    c->phase = POP3C_P_STATUS;
    if (pop3c_send(c, "CAPA") < 0)
        return pop3c_fail(c, PST_ENOMEM, "cannot queue CAPA");
    pop3c_set_state(c, POP3C_S_CAPA);
    return POP3C_GO;
}

static int pop3c_is_ip(const char *s)
{
    unsigned char tmp[16];
    return inet_pton(AF_INET, s, tmp) == 1 || inet_pton(AF_INET6, s, tmp) == 1;
}

/* pop3c_ssl_new - an SSL with SNI and, unless VERIFY_NONE, peer and name checks. */
static SSL *pop3c_ssl_new(struct pop3c *c)
{
    SSL *ssl = SSL_new(c->ctx);
    if (!ssl)
        return NULL;
    const char *name = c->server_name ? c->server_name : c->host;
    int ip = pop3c_is_ip(name);
    if (!ip && !SSL_set_tlsext_host_name(ssl, name))
        goto fail;
    if (c->verify == POP3C_VERIFY_NONE) {
        SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
        return ssl;
    }
    SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
    if (ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) != 1
           : SSL_set1_host(ssl, name) != 1)
        goto fail;
    return ssl;
fail:
    SSL_free(ssl);
    return NULL;
}

/* pop3c_start_tls - STLS accepted: put a TLS filter over the connection. */
static int pop3c_start_tls(struct pop3c *c)
{
    SSL *ssl = pop3c_ssl_new(c);
    if (!ssl) {
        tls_log_errors("pop3c");
        return pop3c_fail(c, PST_ETLS, "cannot set up TLS");
    }
    struct bufferevent *f =
        bufferevent_openssl_filter_new(c->base, c->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
                                       BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!f)
        return pop3c_fail(c, PST_ETLS, "cannot create the TLS filter");
    c->bev = f;
    bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    pop3c_install(c);
    pop3c_set_state(c, POP3C_S_TLS);
    return POP3C_STOP; /* the old input buffer is no longer ours */
}

/* pop3c_printable - server text for a why string: control bytes become '?'; truncated. */
static const char *pop3c_printable(char *out, size_t outsz, const char *s, size_t len)
{
    size_t n = len < outsz - 1 ? len : outsz - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    out[n] = '\0';
    return out;
}

/* pop3c_on_login_status - a status line in GREETING, CAPA, STLS, AUTH, USER or PASS. */
static int pop3c_on_login_status(struct pop3c *c, const struct pop3_status_line *st)
{
    char q[200];
    const char *txt = pop3c_printable(q, sizeof(q), st->text, st->textlen);
    int ok = st->status == POP3_ST_OK;
    if (st->status == POP3_ST_CONT && !(c->state == POP3C_S_AUTH && !c->sasl_ir))
        return pop3c_fail(c, PST_EINVAL, "unexpected continuation in state %s",
                          pop3c_state_names[c->state]);
    switch (c->state) {
    case POP3C_S_GREETING:
        if (!ok)
            return pop3c_fail(c, PST_EAGAIN, "greeting: -ERR %s", txt);
        return pop3c_send_capa(c);
    case POP3C_S_CAPA:
        if (!ok)
            return pop3c_after_capa(c); /* no CAPA: nothing known */
        c->capa_ok = 1;
        c->phase = POP3C_P_LINES;
        return POP3C_GO;
    case POP3C_S_STLS:
        if (!ok)
            return pop3c_fail(c, PST_ETLS, "STLS refused: %s", txt);
        /* RFC 2595 4: nothing may follow the +OK in clear text. */
        if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
            return pop3c_fail(c, PST_EINVAL, "data after the STLS reply");
        return pop3c_start_tls(c);
    case POP3C_S_AUTH:
        if (st->status == POP3_ST_CONT) { /* RFC 5034 4: no initial response was sent */
            char b64[((2 * POP3C_FIELD_MAX + 2 + 2) / 3) * 4 + 1];
            int n = pop3c_sasl_plain(c, b64, sizeof(b64));
            int rc = n < 0 ? n : pop3c_send(c, "%s", b64);
            explicit_bzero(b64, sizeof(b64));
            if (rc < 0)
                return pop3c_fail(c, PST_ENOMEM, "cannot queue the AUTH response");
            c->sasl_ir = 1; /* a second continuation is a protocol error */
            pop3c_timer_update(c);
            return POP3C_GO;
        }
        if (!ok)
            return pop3c_fail(c, pop3c_login_status(st->code), "AUTH PLAIN refused: %s%s%s%s",
                              st->code[0] ? "[" : "", st->code, st->code[0] ? "] " : "", txt);
        return pop3c_ready(c);
    case POP3C_S_USER:
        if (!ok)
            return pop3c_fail(c, pop3c_login_status(st->code), "USER refused: %s%s%s%s",
                              st->code[0] ? "[" : "", st->code, st->code[0] ? "] " : "", txt);
        if (pop3c_send(c, "PASS %s", c->pass) < 0)
            return pop3c_fail(c, PST_ENOMEM, "cannot queue PASS");
        pop3c_set_state(c, POP3C_S_PASS);
        return POP3C_GO;
    case POP3C_S_PASS:
        if (!ok)
            return pop3c_fail(c, pop3c_login_status(st->code), "login refused: %s%s%s%s",
                              st->code[0] ? "[" : "", st->code, st->code[0] ? "] " : "", txt);
        return pop3c_ready(c);
    default:
        return pop3c_fail(c, PST_EINVAL, "unexpected reply in state %s: %s",
                          pop3c_state_names[c->state], txt);
    }
}

/* ---- replies in READY ---- */

static void pop3c_keep_text(struct pop3c *c, const struct pop3_status_line *st)
{
    size_t n = st->textlen < sizeof(c->text) - 1 ? st->textlen : sizeof(c->text) - 1;
    memcpy(c->text, st->text, n);
    c->text[n] = '\0';
    snprintf(c->code, sizeof(c->code), "%s", st->code);
}

/* pop3c_entry - parse one LIST/UIDL entry (from a listing line or a single-line +OK). */
static int pop3c_entry(struct pop3c *c, const char *s, size_t len)
{
    struct pop3c_cmd *cmd = c->head;
    struct pop3c_entry e = {0};
    char uid[POP3_UIDL_MAX + 1];
    int rc;
    if (cmd->verb == POP3C_V_LIST) {
        rc = pop3_reply_listing(s, len, &e.msgno, &e.size);
    } else {
        rc = pop3_reply_uidl(s, len, &e.msgno, uid);
        e.uid = uid;
    }
    if (rc < 0) {
        char q[200];
        return pop3c_fail(c, rc, "bad %s entry: %s", pop3c_verbs[cmd->verb],
                          log_quote(q, sizeof(q), s, len));
    }
    if (cmd->msgno != 0 && e.msgno != cmd->msgno)
        return pop3c_fail(c, PST_EINVAL, "%s %u answered for message %u", pop3c_verbs[cmd->verb],
                          (unsigned)cmd->msgno, (unsigned)e.msgno);
    if (++c->entries > c->max_entries)
        return pop3c_fail(c, PST_ELIMIT, "more than %u %s entries", (unsigned)c->max_entries,
                          pop3c_verbs[cmd->verb]);
    if (!cmd->entry)
        return POP3C_GO;
    rc = cmd->entry(cmd->arg, &e);
    if (pop3c_gone(c))
        return POP3C_STOP;
    if (rc < 0)
        return pop3c_fail(c, rc, "%s entry refused by the caller", pop3c_verbs[cmd->verb]);
    return POP3C_GO;
}

static int pop3c_on_status(struct pop3c *c, const struct pop3_status_line *st)
{
    struct pop3c_cmd *cmd = c->head;
    char q[200];
    if (!cmd || c->inflight == 0)
        return pop3c_fail(c, PST_EINVAL, "unexpected data while idle: %s",
                          log_quote(q, sizeof(q), st->text, st->textlen));
    if (st->status == POP3_ST_CONT)
        return pop3c_fail(c, PST_EINVAL, "unexpected continuation to %s", pop3c_verbs[cmd->verb]);
    pop3c_keep_text(c, st);
    struct pop3c_reply r;
    pop3c_reply_init(&r, 0, c->code, c->text);
    if (st->status == POP3_ST_ERR) {
        r.status = PST_EPERM;
        return pop3c_complete(c, &r);
    }
    switch (cmd->verb) {
    case POP3C_V_STAT:
        if (pop3_reply_stat(st->text, st->textlen, &r.count, &r.octets) < 0)
            return pop3c_fail(c, PST_EINVAL, "bad STAT reply: %s",
                              log_quote(q, sizeof(q), st->text, st->textlen));
        return pop3c_complete(c, &r);
    case POP3C_V_LIST:
    case POP3C_V_UIDL:
        if (cmd->msgno == 0) {
            c->phase = POP3C_P_LINES;
            return POP3C_GO;
        }
        if (pop3c_entry(c, st->text, st->textlen) != POP3C_GO)
            return POP3C_STOP;
        r.entries = 1;
        return pop3c_complete(c, &r);
    case POP3C_V_RETR:
    case POP3C_V_TOP:
        c->phase = POP3C_P_BODY;
        pop3_body_init(&c->body);
        return POP3C_GO;
    default:
        return pop3c_complete(c, &r);
    }
}

/* pop3c_on_mline - one line of a multi-line reply (CAPA, LIST, UIDL). */
static int pop3c_on_mline(struct pop3c *c, const char *line, size_t len)
{
    const char *s;
    size_t n;
    int end = pop3_reply_multiline(line, len, &s, &n);
    if (c->state == POP3C_S_CAPA) {
        if (end) {
            c->phase = POP3C_P_STATUS;
            return pop3c_after_capa(c);
        }
        if (++c->entries > c->max_entries || pop3_reply_capa(s, n, &c->caps) < 0)
            return pop3c_fail(c, PST_EINVAL, "bad CAPA response");
        return POP3C_GO;
    }
    if (!end)
        return pop3c_entry(c, s, n);
    struct pop3c_reply r;
    pop3c_reply_init(&r, 0, c->code, c->text);
    r.entries = c->entries;
    return pop3c_complete(c, &r);
}

/* pop3c_read_line - the next line (without CRLF/LF) into c->line: 1, 0 = incomplete, <0 failed. */
static int pop3c_read_line(struct pop3c *c, size_t *len)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t eol_len = 0;
    struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
    if (p.pos < 0) {
        if (evbuffer_get_length(in) + 2 > sizeof(c->line)) {
            pop3c_fail(c, PST_ELIMIT, "line too long in state %s", pop3c_state_names[c->state]);
            return -1;
        }
        return 0;
    }
    if ((size_t)p.pos + 2 > sizeof(c->line)) {
        pop3c_fail(c, PST_ELIMIT, "line too long in state %s", pop3c_state_names[c->state]);
        return -1;
    }
    if (evbuffer_remove(in, c->line, (size_t)p.pos) != (int)p.pos) {
        pop3c_fail(c, PST_EIO, "cannot read the input buffer");
        return -1;
    }
    evbuffer_drain(in, eol_len);
    *len = (size_t)p.pos;
    return 1;
}

/* pop3c_on_line - dispatch one complete line by state and phase. */
static int pop3c_on_line(struct pop3c *c, size_t len)
{
    if (c->phase == POP3C_P_LINES)
        return pop3c_on_mline(c, c->line, len);
    struct pop3_status_line st;
    int rc = pop3_reply_status(c->line, len, &st);
    if (rc < 0) {
        char q[200];
        return pop3c_fail(c, PST_EINVAL, "bad status line in state %s: %s",
                          pop3c_state_names[c->state], log_quote(q, sizeof(q), c->line, len));
    }
    if (c->state == POP3C_S_READY)
        return pop3c_on_status(c, &st);
    return pop3c_on_login_status(c, &st);
}

/*
 * pop3c_body_decode - decode buffered body bytes (across the input's
 * pieces) into c->chunk, at most POP3C_CHUNK bytes: one data callback per
 * read rather than per libevent chain. Sets *outlen; returns 1 at the
 * terminator, 0 if more is to come, -1 if nothing was buffered.
 */
static int pop3c_body_decode(struct pop3c *c, size_t *outlen)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer_iovec v[POP3C_IOV_MAX];
    int nv = evbuffer_peek(in, -1, NULL, v, POP3C_IOV_MAX);
    if (nv > POP3C_IOV_MAX)
        nv = POP3C_IOV_MAX;
    size_t consumed = 0;
    int end = 0;
    *outlen = 0;
    for (int i = 0; i < nv && !end; i++) {
        size_t room = POP3C_CHUNK - *outlen; /* pop3_body_feed may write len + 1 */
        if (room < 2)
            break;
        size_t len = v[i].iov_len < room - 1 ? v[i].iov_len : room - 1;
        size_t o = 0, used = 0;
        end = pop3_body_feed(&c->body, v[i].iov_base, len, c->chunk + *outlen, &o, &used);
        *outlen += o;
        consumed += used;
        if (used < v[i].iov_len)
            break;
    }
    if (consumed == 0)
        return -1;
    evbuffer_drain(in, consumed);
    return end;
}

/* pop3c_body_piece - decode and deliver one piece of a RETR/TOP body. */
static int pop3c_body_piece(struct pop3c *c)
{
    size_t outlen = 0;
    int end = pop3c_body_decode(c, &outlen);
    if (end < 0)
        return POP3C_STOP;
    struct pop3c_cmd *cmd = c->head;
    if (outlen > c->max_msg - c->body_bytes)
        return pop3c_fail(c, PST_ELIMIT, "%s %u: message larger than %llu bytes",
                          pop3c_verbs[cmd->verb], (unsigned)cmd->msgno,
                          (unsigned long long)c->max_msg);
    c->body_bytes += outlen;
    if (outlen > 0 && cmd->data) {
        int rc = cmd->data(cmd->arg, c->chunk, outlen);
        if (pop3c_gone(c))
            return POP3C_STOP;
        if (rc < 0)
            return pop3c_fail(c, rc, "%s body refused by the caller", pop3c_verbs[cmd->verb]);
    }
    if (!end)
        return POP3C_GO;
    struct pop3c_reply r;
    pop3c_reply_init(&r, 0, c->code, c->text);
    r.octets = c->body_bytes;
    return pop3c_complete(c, &r);
}

/* pop3c_process - handle buffered input until it runs out, or the session pauses/changes. */
static void pop3c_process(struct pop3c *c)
{
    while (!pop3c_gone(c) && !c->paused && c->bev &&
           evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
        if (c->state == POP3C_S_READY && c->inflight == 0) {
            (void)pop3c_fail(c, PST_EINVAL, "unexpected data while idle");
            return;
        }
        if (c->state == POP3C_S_CONNECTING || c->state == POP3C_S_TLS ||
            c->state == POP3C_S_RESOLVING)
            return;
        int r;
        if (c->phase == POP3C_P_BODY) {
            r = pop3c_body_piece(c);
        } else {
            size_t len = 0;
            int got = pop3c_read_line(c, &len);
            if (got <= 0)
                return;
            r = pop3c_on_line(c, len);
        }
        if (r != POP3C_GO)
            return;
        if (!pop3c_gone(c))
            pop3c_timer_update(c); /* progress: the reply timeout starts again */
    }
}

/* ---- libevent callbacks ---- */

/*
 * pop3c_fill - libevent 2.1 reads at most POP3C_LIBEVENT_READ bytes per
 * readiness, so a 10 KiB reply took three loop turns. When that read was
 * full, take what else a plain socket holds (up to the high watermark) with
 * one readv, so a reply is usually handled - and forwarded - in one turn.
 * End of file and errors are left to the bufferevent's next read.
 */
static void pop3c_fill(struct pop3c *c)
{
    evutil_socket_t fd = pop3c_plain_fd(c);
    if (fd < 0 || c->paused || c->state != POP3C_S_READY)
        return;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t have = evbuffer_get_length(in);
    if (have < POP3C_LIBEVENT_READ || have + 1 >= POP3C_IN_MAX)
        return; /* a short read emptied the socket / the watermark is near */
    size_t want = POP3C_IN_MAX - 1 - have;
    struct evbuffer_iovec v[2];
    struct iovec iov[2];
    /* the bufferevent freezes its input's end; libevent's own read thaws it the same way */
    evbuffer_unfreeze(in, 0);
    int nv = evbuffer_reserve_space(in, (ev_ssize_t)want, v, 2);
    if (nv < 1) {
        evbuffer_freeze(in, 0);
        return;
    }
    size_t room = want;
    for (int i = 0; i < nv; i++) {
        if (v[i].iov_len > room)
            v[i].iov_len = room;
        room -= v[i].iov_len;
        iov[i].iov_base = v[i].iov_base;
        iov[i].iov_len = v[i].iov_len;
    }
    ssize_t n = readv(fd, iov, nv);
    if (n <= 0) {
        (void)evbuffer_commit_space(in, v, 0);
        evbuffer_freeze(in, 0);
        return;
    }
    size_t left = (size_t)n;
    int used = 0;
    for (; used < nv && left > 0; used++) {
        if (v[used].iov_len > left)
            v[used].iov_len = left;
        left -= v[used].iov_len;
    }
    (void)evbuffer_commit_space(in, v, used);
    evbuffer_freeze(in, 0);
}

static void pop3c_read_cb(struct bufferevent *bev, void *arg)
{
    struct pop3c *c = arg;
    pop3c_enter(c);
    pop3c_fill(c);
    pop3c_process(c);
    pop3c_leave(c);
}

/* pop3c_tls_error - describe a failed handshake into a fail() call. */
static int pop3c_tls_error(struct pop3c *c, struct bufferevent *bev)
{
    unsigned long e = bufferevent_get_openssl_error(bev);
    char eb[256] = "handshake failed";
    if (e)
        ERR_error_string_n(e, eb, sizeof(eb));
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (vr != X509_V_OK)
        return pop3c_fail(c, PST_ETLS, "TLS failed: certificate: %s",
                          X509_verify_cert_error_string(vr));
    return pop3c_fail(c, PST_ETLS, "TLS failed: %s", eb);
}

static void pop3c_connected(struct pop3c *c)
{
    if (c->state == POP3C_S_CONNECTING) {
        /* commands are written whole: no Nagle delay behind the server's delayed ACK */
        evutil_socket_t fd = bufferevent_getfd(c->bev);
        int one = 1;
        if (fd >= 0)
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (c->tls == POP3C_TLS_IMPLICIT) {
            SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
            c->tls_up = 1;
            if (ssl)
                tls_describe(ssl, c->tlsinfo, sizeof(c->tlsinfo));
        }
        pop3c_set_state(c, POP3C_S_GREETING);
        pop3c_process(c); /* the greeting may already be buffered */
        return;
    }
    if (c->state == POP3C_S_TLS) {
        SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
        c->tls_up = 1;
        if (ssl)
            tls_describe(ssl, c->tlsinfo, sizeof(c->tlsinfo));
        if (pop3c_send_capa(c) == POP3C_GO)
            pop3c_process(c);
    }
}

static void pop3c_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct pop3c *c = arg;
    pop3c_enter(c);
    if (what & BEV_EVENT_CONNECTED) {
        pop3c_connected(c);
        pop3c_leave(c);
        return;
    }
    int tls_err = bufferevent_get_openssl_error(bev) != 0;
    if (c->state == POP3C_S_TLS || (c->state == POP3C_S_CONNECTING && tls_err)) {
        (void)pop3c_tls_error(c, bev);
    } else if (c->state == POP3C_S_CONNECTING) {
        int err = EVUTIL_SOCKET_ERROR();
        log_info("pop3c connect_failed id=%s addr=%s error=\"%s\"", c->id, c->addr,
                 evutil_socket_error_to_string(err));
        c->addr_i++;
        (void)pop3c_start_connect(c);
    } else {
        if (!pop3c_gone(c) && c->bev)
            pop3c_process(c); /* what arrived just before the close */
        if (!pop3c_gone(c))
            (void)pop3c_fail(c, PST_EAGAIN, "connection %s in state %s",
                             (what & BEV_EVENT_EOF) ? "closed by the server" : "lost",
                             pop3c_state_names[c->state]);
    }
    pop3c_leave(c);
}

static void pop3c_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pop3c *c = arg;
    pop3c_enter(c);
    if (c->state == POP3C_S_CONNECTING && c->addr_i + 1 < c->naddr) {
        log_info("pop3c connect_timeout id=%s addr=%s", c->id, c->addr);
        c->addr_i++;
        (void)pop3c_start_connect(c);
    } else {
        const char *verb = c->state == POP3C_S_READY && c->head ? pop3c_verbs[c->head->verb] : "";
        (void)pop3c_fail(c, PST_EAGAIN, "timeout in state %s%s%s", pop3c_state_names[c->state],
                         verb[0] ? " waiting for " : "", verb);
    }
    pop3c_leave(c);
}

static void pop3c_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pop3c *c = arg;
    pop3c_enter(c);
    pop3c_process(c);
    pop3c_leave(c);
}

static void pop3c_install(struct pop3c *c)
{
    bufferevent_setcb(c->bev, pop3c_read_cb, NULL, pop3c_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, POP3C_IN_MAX);
    bufferevent_enable(c->bev, c->paused ? EV_WRITE : EV_READ | EV_WRITE);
}

/* ---- connecting ---- */

/* pop3c_start_connect - connect to addrs[addr_i], or the next that can be tried; else fail. */
static int pop3c_start_connect(struct pop3c *c)
{
    pop3c_close(c);
    pop3c_set_state(c, POP3C_S_CONNECTING);
    for (; c->addr_i < c->naddr; c->addr_i++) {
        const struct sockaddr *sa = (const struct sockaddr *)&c->addrs[c->addr_i];
        netaddr_to_str(sa, c->addr, sizeof(c->addr));
        int opts = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
        if (c->tls == POP3C_TLS_IMPLICIT) {
            SSL *ssl = pop3c_ssl_new(c);
            if (!ssl) {
                tls_log_errors("pop3c");
                return pop3c_fail(c, PST_ETLS, "cannot set up TLS");
            }
            c->bev =
                bufferevent_openssl_socket_new(c->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, opts);
            if (c->bev)
                bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
        } else {
            c->bev = bufferevent_socket_new(c->base, -1, opts);
        }
        if (!c->bev)
            return pop3c_fail(c, PST_ENOMEM, "cannot create a bufferevent");
        pop3c_install(c);
        if (bufferevent_socket_connect(c->bev, sa, (int)c->lens[c->addr_i]) == 0) {
            pop3c_timer_update(c);
            return POP3C_GO;
        }
        log_info("pop3c connect_failed id=%s addr=%s error=\"%s\"", c->id, c->addr,
                 strerror(errno));
        pop3c_close(c);
    }
    return pop3c_fail(c, PST_EAGAIN, "cannot connect to %s port %u", c->host, c->port);
}

/* pop3c_resolve_now - getaddrinfo for r (any thread: touches only r). */
static void pop3c_resolve_now(struct pop3c_resolve *r)
{
    char port[16];
    snprintf(port, sizeof(port), "%u", r->port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
    struct addrinfo *res = NULL;
    r->gai_err = getaddrinfo(r->host, port, &hints, &res);
    if (r->gai_err != 0)
        return;
    for (struct addrinfo *a = res; a && r->naddr < POP3C_ADDRS_MAX; a = a->ai_next) {
        if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) ||
            a->ai_addrlen > sizeof(r->addrs[0]))
            continue;
        memcpy(&r->addrs[r->naddr], a->ai_addr, a->ai_addrlen);
        r->lens[r->naddr++] = a->ai_addrlen;
    }
    freeaddrinfo(res);
}

static void pop3c_resolve_work(void *arg)
{
    pop3c_resolve_now(arg);
}

static void pop3c_resolve_release(void *arg)
{
    struct pop3c_resolve *r = arg;
    if (r->c) { /* the pool went away first: the session learns it at its next step */
        r->c->job = NULL;
        r->c->res = NULL;
    }
    free(r);
}

/* pop3c_take_addrs - copy r's result into c; PST_ENOENT if there is none. */
static int pop3c_take_addrs(struct pop3c *c, const struct pop3c_resolve *r)
{
    c->naddr = r->naddr;
    for (int i = 0; i < r->naddr; i++) {
        c->addrs[i] = r->addrs[i];
        c->lens[i] = r->lens[i];
    }
    return c->naddr > 0 ? 0 : PST_ENOENT;
}

static void pop3c_resolve_done(void *arg)
{
    struct pop3c_resolve *r = arg;
    struct pop3c *c = r->c;
    c->job = NULL;
    c->res = NULL;
    pop3c_enter(c);
    int rc = pop3c_take_addrs(c, r);
    int gai = r->gai_err;
    free(r);
    if (rc < 0)
        (void)pop3c_fail(c, PST_EAGAIN, "cannot resolve %s: %s", c->host,
                         gai ? gai_strerror(gai) : "no address");
    else
        (void)pop3c_start_connect(c);
    pop3c_leave(c);
}

/* pop3c_numeric - a numeric host into addrs[0]; 0 or PST_EINVAL. */
static int pop3c_numeric(struct pop3c *c)
{
    struct sockaddr_in *s4 = (struct sockaddr_in *)&c->addrs[0];
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&c->addrs[0];
    memset(&c->addrs[0], 0, sizeof(c->addrs[0]));
    if (inet_pton(AF_INET, c->host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)c->port);
        c->lens[0] = sizeof(*s4);
    } else if (inet_pton(AF_INET6, c->host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)c->port);
        c->lens[0] = sizeof(*s6);
    } else {
        return PST_EINVAL;
    }
    c->naddr = 1;
    return 0;
}

/* ---- public API ---- */

SSL_CTX *pop3c_tls_ctx_new(const char *ca_file)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        tls_log_errors("pop3c_tls_ctx_new");
        return NULL;
    }
    int ok = SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1;
    if (ok)
        ok = ca_file ? SSL_CTX_load_verify_file(ctx, ca_file) == 1
                     : SSL_CTX_set_default_verify_paths(ctx) == 1;
    if (!ok) {
        tls_log_errors("pop3c_tls_ctx_new");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* pop3c_field_ok - 1..max bytes, no NUL/CR/LF (they would split a command). */
static int pop3c_field_ok(const char *s, size_t max)
{
    if (!s)
        return 0;
    size_t n = strlen(s);
    return n > 0 && n <= max && !strpbrk(s, "\r\n");
}

static int pop3c_params_ok(const struct pop3c_params *p)
{
    if (!p || !pop3c_field_ok(p->host, POP3C_HOST_MAX) || strpbrk(p->host, " \t"))
        return 0;
    if (p->port == 0 || p->port > 65535)
        return 0;
    if (p->tls != POP3C_TLS_NONE && p->tls != POP3C_TLS_STLS && p->tls != POP3C_TLS_IMPLICIT)
        return 0;
    if (p->verify != POP3C_VERIFY_CA && p->verify != POP3C_VERIFY_NONE)
        return 0;
    if (p->server_name && !pop3c_field_ok(p->server_name, POP3C_HOST_MAX))
        return 0;
    return pop3c_field_ok(p->user, POP3C_FIELD_MAX) && pop3c_field_ok(p->pass, POP3C_FIELD_MAX);
}

static char *pop3c_dup(const char *s, int *err)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *err = 1;
    return d;
}

static void pop3c_set_params(struct pop3c *c, const struct pop3c_params *p, int *err)
{
    c->host = pop3c_dup(p->host, err);
    c->server_name = pop3c_dup(p->server_name, err);
    c->user = pop3c_dup(p->user, err);
    c->pass = pop3c_dup(p->pass, err);
    c->port = p->port;
    c->tls = p->tls;
    c->verify = p->verify;
    c->no_sasl = p->no_sasl;
    c->connect_timeout = p->connect_timeout ? p->connect_timeout : POP3C_CONNECT_TIMEOUT;
    c->reply_timeout = p->reply_timeout ? p->reply_timeout : POP3C_REPLY_TIMEOUT;
    c->max_msg = p->max_msg_bytes ? p->max_msg_bytes : POP3C_MSG_MAX;
    c->max_entries = p->max_entries ? p->max_entries : POP3C_ENTRIES_MAX;
    int n = p->log_id ? snprintf(c->id, sizeof(c->id), "%s", p->log_id)
                      : snprintf(c->id, sizeof(c->id), "%s:%u", p->host, p->port);
    if (n < 0 || (size_t)n >= sizeof(c->id))
        snprintf(c->id, sizeof(c->id), "pop3c");
    char q[sizeof(c->id)];
    log_quote(q, sizeof(q), c->id, strlen(c->id)); /* the id goes into log lines */
    memcpy(c->id, q, sizeof(q));
}

/* pop3c_setup_tls - the SSL_CTX: the caller's, or our own. */
static int pop3c_setup_tls(struct pop3c *c, const struct pop3c_params *p)
{
    if (c->tls == POP3C_TLS_NONE)
        return 0;
    if (p->tls_ctx) {
        c->ctx = p->tls_ctx;
        return 0;
    }
    c->ctx = pop3c_tls_ctx_new(p->ca_file);
    c->own_ctx = c->ctx != NULL;
    return c->ctx ? 0 : PST_ETLS;
}

/* pop3c_begin - numeric host: connect now; name: resolve (pool or inline) first. */
static int pop3c_begin(struct pop3c *c, struct worker_pool *pool)
{
    if (pop3c_numeric(c) == 0)
        return 0;
    struct pop3c_resolve *r = calloc(1, sizeof(*r));
    if (!r)
        return PST_ENOMEM;
    snprintf(r->host, sizeof(r->host), "%s", c->host);
    r->port = c->port;
    if (pool) {
        r->c = c;
        c->res = r;
        c->job =
            worker_submit(pool, pop3c_resolve_work, pop3c_resolve_done, pop3c_resolve_release, r);
        if (!c->job) {
            c->res = NULL;
            free(r);
            return PST_ENOMEM;
        }
        return 1;
    }
    pop3c_resolve_now(r);
    int rc = pop3c_take_addrs(c, r);
    if (rc < 0) {
        char q[300];
        log_warn("pop3c resolve_failed id=%s host=%s error=\"%s\"", c->id,
                 log_quote(q, sizeof(q), c->host, strlen(c->host)),
                 r->gai_err ? gai_strerror(r->gai_err) : "no address");
    }
    free(r);
    return rc;
}

struct pop3c *pop3c_connect(struct event_base *base, const struct pop3c_params *p,
                            pop3c_ready_cb ready_cb, void *arg)
{
    if (!base || !ready_cb || !pop3c_params_ok(p)) {
        log_warn("pop3c connect error=\"bad parameters\"");
        return NULL;
    }
    struct pop3c *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    int err = 0;
    c->base = base;
    c->ready_cb = ready_cb;
    c->ready_arg = arg;
    pop3c_set_params(c, p, &err);
    c->chunk = malloc(POP3C_CHUNK + 1);
    c->out = evbuffer_new();
    c->timer = evtimer_new(base, pop3c_timer_cb, c);
    c->resume_ev = event_new(base, -1, 0, pop3c_resume_cb, c);
    if (err || !c->chunk || !c->out || !c->timer || !c->resume_ev || pop3c_setup_tls(c, p) < 0) {
        pop3c_destroy(c);
        return NULL;
    }
    int rc = pop3c_begin(c, p->resolver);
    if (rc == 1) {
        pop3c_set_state(c, POP3C_S_RESOLVING);
        return c;
    }
    if (rc < 0) {
        pop3c_destroy(c);
        return NULL;
    }
    c->depth++; /* no callback may run from inside pop3c_connect */
    c->ready_cb = NULL;
    int st = pop3c_start_connect(c);
    c->depth--;
    if (st != POP3C_GO) {
        pop3c_destroy(c);
        return NULL;
    }
    c->ready_cb = ready_cb;
    return c;
}

void pop3c_set_close_cb(struct pop3c *c, pop3c_close_cb cb, void *arg)
{
    if (!c)
        return;
    c->close_cb = cb;
    c->close_arg = arg;
}

int pop3c_stat(struct pop3c *c, pop3c_done_cb done, void *arg)
{
    return pop3c_enqueue(c, POP3C_V_STAT, 0, 0, NULL, NULL, done, arg);
}

int pop3c_list(struct pop3c *c, uint32_t msgno, pop3c_entry_cb entry, pop3c_done_cb done, void *arg)
{
    return pop3c_enqueue(c, POP3C_V_LIST, msgno, 0, entry, NULL, done, arg);
}

int pop3c_uidl(struct pop3c *c, uint32_t msgno, pop3c_entry_cb entry, pop3c_done_cb done, void *arg)
{
    return pop3c_enqueue(c, POP3C_V_UIDL, msgno, 0, entry, NULL, done, arg);
}

int pop3c_retr(struct pop3c *c, uint32_t msgno, pop3c_data_cb data, pop3c_done_cb done, void *arg)
{
    if (msgno == 0)
        return PST_EINVAL;
    return pop3c_enqueue(c, POP3C_V_RETR, msgno, 0, NULL, data, done, arg);
}

int pop3c_top(struct pop3c *c, uint32_t msgno, uint32_t lines, pop3c_data_cb data,
              pop3c_done_cb done, void *arg)
{
    if (msgno == 0 || lines > POP3_MSGNO_MAX)
        return PST_EINVAL;
    return pop3c_enqueue(c, POP3C_V_TOP, msgno, lines, NULL, data, done, arg);
}

int pop3c_dele(struct pop3c *c, uint32_t msgno, pop3c_done_cb done, void *arg)
{
    if (msgno == 0)
        return PST_EINVAL;
    return pop3c_enqueue(c, POP3C_V_DELE, msgno, 0, NULL, NULL, done, arg);
}

int pop3c_rset(struct pop3c *c, pop3c_done_cb done, void *arg)
{
    return pop3c_enqueue(c, POP3C_V_RSET, 0, 0, NULL, NULL, done, arg);
}

int pop3c_noop(struct pop3c *c, pop3c_done_cb done, void *arg)
{
    return pop3c_enqueue(c, POP3C_V_NOOP, 0, 0, NULL, NULL, done, arg);
}

int pop3c_quit(struct pop3c *c, pop3c_done_cb done, void *arg)
{
    return pop3c_enqueue(c, POP3C_V_QUIT, 0, 0, NULL, NULL, done, arg);
}

void pop3c_pause(struct pop3c *c)
{
    if (!c || c->paused)
        return;
    c->paused = 1;
    if (c->bev)
        bufferevent_disable(c->bev, EV_READ);
    pop3c_timer_update(c);
}

void pop3c_resume(struct pop3c *c)
{
    if (!c || !c->paused)
        return;
    c->paused = 0;
    if (pop3c_gone(c))
        return;
    if (c->bev)
        bufferevent_enable(c->bev, EV_READ);
    pop3c_timer_update(c);
    event_active(c->resume_ev, 0, 1); /* input already buffered is handled from the loop */
}

int pop3c_usable(const struct pop3c *c)
{
    return c && !pop3c_gone(c) && !c->quit_queued;
}

unsigned pop3c_caps(const struct pop3c *c)
{
    return c ? c->caps : 0;
}

const char *pop3c_tls_info(const struct pop3c *c)
{
    return c && c->tls_up && c->tlsinfo[0] ? c->tlsinfo : NULL;
}

static void pop3c_destroy(struct pop3c *c)
{
    pop3c_detach_job(c);
    pop3c_close(c);
    while (c->head)
        free(pop3c_pop(c));
    if (c->timer)
        event_free(c->timer);
    if (c->resume_ev)
        event_free(c->resume_ev);
    if (c->own_ctx)
        SSL_CTX_free(c->ctx);
    pop3c_wipe_pass(c);
    free(c->host);
    free(c->server_name);
    free(c->user);
    free(c->chunk);
    if (c->out)
        evbuffer_free(c->out);
    free(c);
}

void pop3c_free(struct pop3c **cp)
{
    struct pop3c *c = cp ? *cp : NULL;
    if (!c)
        return;
    *cp = NULL;
    if (c->depth > 0) { /* inside one of our handlers: the outermost one frees it */
        c->zombie = 1;
        if (c->bev)
            bufferevent_disable(c->bev, EV_READ | EV_WRITE);
        if (c->timer)
            evtimer_del(c->timer);
        return;
    }
    pop3c_destroy(c);
}
