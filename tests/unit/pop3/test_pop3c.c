/*
 * test_pop3c.c - the asynchronous POP3 client against a scripted fake
 * server.
 *
 * The fake server is a thread on 127.0.0.1 that accepts one connection and
 * walks a script: send bytes (at once or one byte at a time, so that the
 * client sees every split), expect exactly one command line, start TLS,
 * close, or wait for the client to go away. The client runs on the main
 * thread's event loop; a driver queues commands once logged in and records
 * every callback. Covered: a full USER/PASS session (STAT, LIST, UIDL,
 * RETR, TOP, DELE, RSET, NOOP, single-message LIST/UIDL, QUIT), AUTH PLAIN
 * with PIPELINING (the server reads every command before answering, so a
 * client that did not pipeline would time out), STLS with a self-signed
 * certificate (verified against it as CA, wrong name refused, STLS not
 * offered), implicit TLS, dot-unstuffing with the terminator split across
 * reads, -ERR keeping the session usable, login refusals ([AUTH], [IN-USE]),
 * flow control (pause / resume), freeing the session from a callback, and
 * hostile servers: garbage greeting, over-long line, bad listing entry, a
 * hang (short reply timeout), a close in the middle of RETR, a body over
 * max_msg_bytes, too many entries, data while idle, connection refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "lib/tls.h"
#include "lib/worker.h"
#include "pop3/pop3c.h"
#include "testutil.h"

#define T_IO_TIMEOUT 10 /* seconds the fake server waits for the client */
#define T_WATCHDOG 30   /* seconds before a test's event loop is stopped */
#define T_SLOTS 32

/* ---- the fake server ---- */

enum fs_op {
    FS_END = 0,
    FS_SEND,   /* send arg */
    FS_SLOW,   /* send arg one byte at a time, with a short pause after each */
    FS_EXPECT, /* read one line, must equal arg (CRLF stripped) */
    FS_TLS,    /* SSL_accept; "fail-ok" = a failure is expected */
    FS_CLOSE,  /* close now */
    FS_WAIT,   /* read until the client closes */
};

struct fs_step {
    enum fs_op op;
    const char *arg;
};

struct fs {
    int lfd, fd;
    unsigned port;
    pthread_t th;
    const struct fs_step *script;
    SSL_CTX *sctx;
    SSL *ssl;
    char rbuf[8192];
    size_t rlen;
    char err[1024];
};

static ssize_t fs_io_read(struct fs *s, char *b, size_t n)
{
    if (s->ssl) {
        int r = SSL_read(s->ssl, b, (int)n);
        return r > 0 ? r : (SSL_get_error(s->ssl, r) == SSL_ERROR_ZERO_RETURN ? 0 : -1);
    }
    return read(s->fd, b, n);
}

static int fs_send(struct fs *s, const char *b, size_t n)
{
    while (n > 0) {
        ssize_t w = s->ssl ? SSL_write(s->ssl, b, (int)n) : write(s->fd, b, n);
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

__attribute__((format(printf, 3, 4))) static void fs_fail(struct fs *s, int step, const char *fmt,
                                                          ...)
{
    if (s->err[0])
        return;
    int n = snprintf(s->err, sizeof(s->err), "step %d: ", step);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err + n, sizeof(s->err) - (size_t)n, fmt, ap);
    va_end(ap);
}

/* fs_line - one line without CRLF into out; -1 on EOF/timeout/over-long/no CRLF. */
static int fs_line(struct fs *s, char *out, size_t outsz)
{
    size_t len = 0;
    for (;;) {
        if (s->rlen == 0) {
            ssize_t r = fs_io_read(s, s->rbuf, sizeof(s->rbuf));
            if (r <= 0)
                return -1;
            s->rlen = (size_t)r;
        }
        char *nl = memchr(s->rbuf, '\n', s->rlen);
        size_t n = nl ? (size_t)(nl - s->rbuf) + 1 : s->rlen;
        if (len + n >= outsz)
            return -1;
        memcpy(out + len, s->rbuf, n);
        len += n;
        memmove(s->rbuf, s->rbuf + n, s->rlen - n);
        s->rlen -= n;
        if (nl) {
            if (len < 2 || out[len - 2] != '\r')
                return -1;
            out[len - 2] = '\0';
            return 0;
        }
    }
}

static int fs_step(struct fs *s, int i, const struct fs_step *st)
{
    char b[1024];
    switch (st->op) {
    case FS_SEND:
        return fs_send(s, st->arg, strlen(st->arg));
    case FS_SLOW:
        for (const char *p = st->arg; *p; p++) {
            if (fs_send(s, p, 1) < 0)
                return -1;
            usleep(2000);
        }
        return 0;
    case FS_EXPECT:
        if (fs_line(s, b, sizeof(b)) < 0) {
            fs_fail(s, i, "expected '%s', got EOF or a bad line", st->arg);
            return -1;
        }
        if (strcmp(b, st->arg) != 0) {
            fs_fail(s, i, "expected '%s', got '%s'", st->arg, b);
            return -1;
        }
        return 0;
    case FS_TLS: {
        int fail_ok = st->arg && strcmp(st->arg, "fail-ok") == 0;
        s->ssl = SSL_new(s->sctx);
        assert_non_null(s->ssl);
        SSL_set_fd(s->ssl, s->fd);
        if (SSL_accept(s->ssl) != 1) {
            if (!fail_ok)
                fs_fail(s, i, "TLS accept failed");
            return -1;
        }
        if (fail_ok)
            fs_fail(s, i, "TLS accept succeeded but should have failed");
        return 0;
    }
    case FS_CLOSE:
        return -1;
    case FS_WAIT:
        while (fs_io_read(s, b, sizeof(b)) > 0)
            ;
        return -1;
    case FS_END:
        break;
    }
    return -1;
}

static void *fs_main(void *arg)
{
    struct fs *s = arg;
    struct pollfd pfd = {.fd = s->lfd, .events = POLLIN};
    if (poll(&pfd, 1, T_IO_TIMEOUT * 1000) != 1) {
        fs_fail(s, -1, "no connection");
        return NULL;
    }
    s->fd = accept(s->lfd, NULL, NULL);
    if (s->fd < 0) {
        fs_fail(s, -1, "accept: %s", strerror(errno));
        return NULL;
    }
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = {.tv_sec = T_IO_TIMEOUT};
    setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    for (int i = 0; s->script[i].op != FS_END; i++)
        if (fs_step(s, i, &s->script[i]) < 0)
            break;
    if (s->ssl) {
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    close(s->fd);
    return NULL;
}

static struct fs *fs_start(const struct fs_step *script, SSL_CTX *sctx)
{
    struct fs *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->fd = -1;
    s->script = script;
    s->sctx = sctx;
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->lfd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(s->lfd, 4), 0);
    socklen_t sl = sizeof(sin);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sin, &sl), 0);
    s->port = ntohs(sin.sin_port);
    assert_int_equal(pthread_create(&s->th, NULL, fs_main, s), 0);
    return s;
}

static void fs_finish(struct fs *s)
{
    pthread_join(s->th, NULL);
    close(s->lfd);
    char err[sizeof(s->err)];
    memcpy(err, s->err, sizeof(err));
    free(s);
    if (err[0])
        fail_msg("fake server: %s", err);
}

/* ---- the client driver ---- */

struct drv;

struct slot {
    struct drv *d;
    int called;
    int status;
    char code[64];
    char text[600];
    uint32_t count, entries;
    uint64_t octets;
    char *body; /* RETR / TOP data, as delivered */
    size_t bodylen;
};

typedef void (*drv_queue_fn)(struct drv *d);

struct drv {
    struct event_base *base;
    struct event *watchdog;
    struct event *resume_ev;
    struct pop3c *c;
    drv_queue_fn queue;
    int ready_status, ready_called;
    char ready_why[700];
    int close_status, close_called;
    struct slot slot[T_SLOTS];
    int nslot;
    char ents[4096]; /* entries as "n size|uid;" */
    size_t entslen;
    int pause_each;   /* pause after every data piece, resume from a timer */
    int free_in_data; /* pop3c_free from inside the first data callback */
    int tls_seen;
    unsigned caps;
};

static void drv_end(struct drv *d)
{
    event_del(d->watchdog);
    event_del(d->resume_ev);
    pop3c_free(&d->c);
}

static void drv_done(void *arg, const struct pop3c_reply *r)
{
    struct slot *s = arg;
    s->called++;
    s->status = r->status;
    snprintf(s->code, sizeof(s->code), "%s", r->code);
    snprintf(s->text, sizeof(s->text), "%s", r->text);
    s->count = r->count;
    s->octets = r->octets;
    s->entries = r->entries;
}

static void drv_quit_done(void *arg, const struct pop3c_reply *r)
{
    struct slot *s = arg;
    drv_done(arg, r);
    drv_end(s->d);
}

static int drv_entry(void *arg, const struct pop3c_entry *e)
{
    struct slot *s = arg;
    struct drv *d = s->d;
    int n = e->uid ? snprintf(d->ents + d->entslen, sizeof(d->ents) - d->entslen, "%u %s;",
                              (unsigned)e->msgno, e->uid)
                   : snprintf(d->ents + d->entslen, sizeof(d->ents) - d->entslen, "%u %llu;",
                              (unsigned)e->msgno, (unsigned long long)e->size);
    assert_true(n > 0 && (size_t)n < sizeof(d->ents) - d->entslen);
    d->entslen += (size_t)n;
    return 0;
}

static void drv_resume(evutil_socket_t fd, short what, void *arg)
{
    struct drv *d = arg;
    pop3c_resume(d->c);
}

static int drv_data(void *arg, const char *data, size_t len)
{
    struct slot *s = arg;
    struct drv *d = s->d;
    assert_true(len > 0);
    s->body = realloc(s->body, s->bodylen + len + 1);
    assert_non_null(s->body);
    memcpy(s->body + s->bodylen, data, len);
    s->bodylen += len;
    s->body[s->bodylen] = '\0';
    if (d->free_in_data) {
        d->free_in_data = 0;
        drv_end(d);
        return 0;
    }
    if (d->pause_each) {
        pop3c_pause(d->c);
        struct timeval tv = {.tv_sec = 0, .tv_usec = 5000};
        evtimer_add(d->resume_ev, &tv);
    }
    return 0;
}

static struct slot *drv_slot(struct drv *d)
{
    assert_true(d->nslot < T_SLOTS);
    struct slot *s = &d->slot[d->nslot++];
    s->d = d;
    s->status = 7777;
    return s;
}

static void drv_ready(void *arg, int status, const char *why)
{
    struct drv *d = arg;
    d->ready_called++;
    d->ready_status = status;
    snprintf(d->ready_why, sizeof(d->ready_why), "%s", why);
    d->tls_seen = pop3c_tls_info(d->c) != NULL;
    d->caps = pop3c_caps(d->c);
    if (status != 0) {
        drv_end(d);
        return;
    }
    if (d->queue)
        d->queue(d);
}

static void drv_close(void *arg, int status, const char *why)
{
    struct drv *d = arg;
    d->close_called++;
    d->close_status = status;
    drv_end(d);
}

static void drv_watchdog(evutil_socket_t fd, short what, void *arg)
{
    struct drv *d = arg;
    pop3c_free(&d->c);
    d->ready_status = 9999;
    event_base_loopbreak(d->base);
}

static struct pop3c_params base_params(unsigned port)
{
    struct pop3c_params p = {.host = "127.0.0.1", .port = port, .user = "alice", .pass = "secret"};
    p.reply_timeout = 5;
    p.connect_timeout = 5;
    return p;
}

static void run(struct drv *d, const struct pop3c_params *p)
{
    d->base = event_base_new();
    assert_non_null(d->base);
    d->watchdog = evtimer_new(d->base, drv_watchdog, d);
    d->resume_ev = evtimer_new(d->base, drv_resume, d);
    struct timeval tv = {.tv_sec = T_WATCHDOG};
    evtimer_add(d->watchdog, &tv);
    d->c = pop3c_connect(d->base, p, drv_ready, d);
    assert_non_null(d->c);
    pop3c_set_close_cb(d->c, drv_close, d);
    event_base_dispatch(d->base);
    pop3c_free(&d->c);
    event_free(d->watchdog);
    event_free(d->resume_ev);
    event_base_free(d->base);
    assert_int_not_equal(d->ready_status, 9999);
    assert_int_equal(d->ready_called, 1);
}

static void drv_release(struct drv *d)
{
    for (int i = 0; i < d->nslot; i++)
        free(d->slot[i].body);
}

#define Q(call) assert_int_equal((call), 0)

/* ---- scripts and tests ---- */

#define GREET                                                                                      \
    {                                                                                              \
        FS_SEND, "+OK POP3 ready <1896.697170952@dbc.mtview.ca.us>\r\n"                            \
    }
#define LOGIN_USER                                                                                 \
    {FS_EXPECT, "USER alice"}, {FS_SEND, "+OK\r\n"}, {FS_EXPECT, "PASS secret"},                   \
    {                                                                                              \
        FS_SEND, "+OK maildrop has 2 messages\r\n"                                                 \
    }

static const char msg1_wire[] = "Subject: one\r\n\r\n..dotted\r\nplain\r\n...\r\n.\r\n";
static const char msg1[] = "Subject: one\r\n\r\n.dotted\r\nplain\r\n..\r\n";

static void queue_full(struct drv *d)
{
    Q(pop3c_stat(d->c, drv_done, drv_slot(d)));
    struct slot *s = drv_slot(d);
    Q(pop3c_list(d->c, 0, drv_entry, drv_done, s));
    s = drv_slot(d);
    Q(pop3c_uidl(d->c, 0, drv_entry, drv_done, s));
    s = drv_slot(d);
    Q(pop3c_retr(d->c, 1, drv_data, drv_done, s));
    s = drv_slot(d);
    Q(pop3c_top(d->c, 2, 0, drv_data, drv_done, s));
    Q(pop3c_dele(d->c, 1, drv_done, drv_slot(d)));
    Q(pop3c_rset(d->c, drv_done, drv_slot(d)));
    Q(pop3c_noop(d->c, drv_done, drv_slot(d)));
    s = drv_slot(d);
    Q(pop3c_list(d->c, 2, drv_entry, drv_done, s));
    s = drv_slot(d);
    Q(pop3c_uidl(d->c, 2, drv_entry, drv_done, s));
    Q(pop3c_retr(d->c, 9, drv_data, drv_done, drv_slot(d)));
    Q(pop3c_quit(d->c, drv_quit_done, drv_slot(d)));
    assert_int_equal(pop3c_noop(d->c, drv_done, &d->slot[0]), PST_EINVAL); /* after QUIT */
}

static void test_full_session(void **st)
{
    const struct fs_step script[] = {
        GREET,
        {FS_EXPECT, "CAPA"},
        {FS_SEND, "+OK Capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\nRESP-CODES\r\n.\r\n"},
        LOGIN_USER,
        {FS_EXPECT, "STAT"},
        {FS_SEND, "+OK 2 320\r\n"},
        {FS_EXPECT, "LIST"},
        {FS_SEND, "+OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n.\r\n"},
        {FS_EXPECT, "UIDL"},
        {FS_SEND, "+OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n2 QhdPYR:00WBw1Ph7x7\r\n.\r\n"},
        {FS_EXPECT, "RETR 1"},
        {FS_SEND, "+OK 120 octets\r\n"},
        {FS_SEND, msg1_wire},
        {FS_EXPECT, "TOP 2 0"},
        {FS_SEND, "+OK\r\nSubject: two\r\n\r\n.\r\n"},
        {FS_EXPECT, "DELE 1"},
        {FS_SEND, "+OK message 1 deleted\r\n"},
        {FS_EXPECT, "RSET"},
        {FS_SEND, "+OK\r\n"},
        {FS_EXPECT, "NOOP"},
        {FS_SEND, "+OK\r\n"},
        {FS_EXPECT, "LIST 2"},
        {FS_SEND, "+OK 2 200\r\n"},
        {FS_EXPECT, "UIDL 2"},
        {FS_SEND, "+OK 2 QhdPYR:00WBw1Ph7x7\r\n"},
        {FS_EXPECT, "RETR 9"},
        {FS_SEND, "-ERR [SYS/PERM] no such message\r\n"},
        {FS_EXPECT, "QUIT"},
        {FS_SEND, "+OK dewey POP3 server signing off\r\n"},
        {FS_WAIT, NULL},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, NULL);
    struct drv d = {.queue = queue_full};
    struct pop3c_params p = base_params(s->port);
    run(&d, &p);
    fs_finish(s);
    assert_int_equal(d.ready_status, 0);
    assert_int_equal(d.tls_seen, 0);
    assert_int_equal(d.caps & POP3_CAP_PIPELINING, 0);
    assert_int_equal(d.nslot, 12);
    for (int i = 0; i < d.nslot; i++)
        assert_int_equal(d.slot[i].called, 1);
    assert_int_equal(d.slot[0].status, 0);
    assert_int_equal(d.slot[0].count, 2);
    assert_int_equal(d.slot[0].octets, 320);
    assert_int_equal(d.slot[1].entries, 2);
    assert_string_equal(d.slot[1].text, "2 messages (320 octets)");
    assert_int_equal(d.slot[2].entries, 2);
    assert_string_equal(d.ents, "1 120;2 200;1 whqtswO00WBw418f9t5JxYwZ;2 QhdPYR:00WBw1Ph7x7;"
                                "2 200;2 QhdPYR:00WBw1Ph7x7;");
    assert_int_equal(d.slot[3].status, 0);
    assert_int_equal(d.slot[3].bodylen, strlen(msg1));
    assert_string_equal(d.slot[3].body, msg1);
    assert_int_equal(d.slot[3].octets, strlen(msg1));
    assert_string_equal(d.slot[4].body, "Subject: two\r\n\r\n");
    for (int i = 5; i < 10; i++)
        assert_int_equal(d.slot[i].status, 0);
    assert_int_equal(d.slot[8].entries, 1);
    assert_int_equal(d.slot[10].status, PST_EPERM);
    assert_string_equal(d.slot[10].code, "SYS/PERM");
    assert_string_equal(d.slot[10].text, "no such message");
    assert_null(d.slot[10].body);
    assert_int_equal(d.slot[11].status, 0);
    assert_int_equal(d.close_called, 0);
    drv_release(&d);
}

static void queue_pipelined(struct drv *d)
{
    Q(pop3c_stat(d->c, drv_done, drv_slot(d)));
    struct slot *s = drv_slot(d);
    Q(pop3c_uidl(d->c, 0, drv_entry, drv_done, s));
    s = drv_slot(d);
    Q(pop3c_retr(d->c, 1, drv_data, drv_done, s));
    Q(pop3c_dele(d->c, 1, drv_done, drv_slot(d)));
    Q(pop3c_quit(d->c, drv_quit_done, drv_slot(d)));
}

static void test_sasl_pipelining(void **st)
{
    const struct fs_step script[] = {
        GREET,
        {FS_EXPECT, "CAPA"},
        {FS_SEND, "+OK\r\nSASL LOGIN PLAIN\r\nPIPELINING\r\nUIDL\r\n.\r\n"},
        {FS_EXPECT, "AUTH PLAIN AGFsaWNlAHNlY3JldA=="},
        {FS_SEND, "+OK logged in\r\n"},
        /* every command arrives before any reply is sent */
        {FS_EXPECT, "STAT"},
        {FS_EXPECT, "UIDL"},
        {FS_EXPECT, "RETR 1"},
        {FS_EXPECT, "DELE 1"},
        {FS_EXPECT, "QUIT"},
        {FS_SEND, "+OK 1 40\r\n+OK\r\n1 u-1\r\n.\r\n+OK\r\n"},
        {FS_SEND, msg1_wire},
        {FS_SEND, "+OK deleted\r\n+OK bye\r\n"},
        {FS_WAIT, NULL},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, NULL);
    struct drv d = {.queue = queue_pipelined};
    struct pop3c_params p = base_params(s->port);
    run(&d, &p);
    fs_finish(s);
    assert_int_equal(d.ready_status, 0);
    assert_true(d.caps & POP3_CAP_PIPELINING);
    assert_true(d.caps & POP3_CAP_SASL_PLAIN);
    assert_int_equal(d.nslot, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(d.slot[i].called, 1);
        assert_int_equal(d.slot[i].status, 0);
    }
    assert_int_equal(d.slot[0].count, 1);
    assert_string_equal(d.ents, "1 u-1;");
    assert_string_equal(d.slot[2].body, msg1);
    drv_release(&d);
}

/* AUTH PLAIN without an initial response when the command would pass 255 octets. */
static void test_sasl_continuation(void **st)
{
    char user[200], expect_b64[400];
    memset(user, 'u', sizeof(user) - 1);
    user[sizeof(user) - 1] = '\0';
    /* base64("\0" user "\0secret") computed by OpenSSL */
    unsigned char raw[300];
    raw[0] = 0;
    memcpy(raw + 1, user, 199);
    raw[200] = 0;
    memcpy(raw + 201, "secret", 6);
    assert_true(EVP_EncodeBlock((unsigned char *)expect_b64, raw, 207) > 0);
    const struct fs_step script[] = {
        GREET,
        {FS_EXPECT, "CAPA"},
        {FS_SEND, "+OK\r\nSASL PLAIN\r\n.\r\n"},
        {FS_EXPECT, "AUTH PLAIN"},
        {FS_SEND, "+ \r\n"},
        {FS_EXPECT, expect_b64},
        {FS_SEND, "+OK\r\n"},
        {FS_EXPECT, "QUIT"},
        {FS_SEND, "+OK\r\n"},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, NULL);
    struct drv d = {0};
    struct pop3c_params p = base_params(s->port);
    p.user = user;
    /* queue QUIT right after connecting: it waits for the login */
    d.base = event_base_new();
    assert_non_null(d.base);
    d.watchdog = evtimer_new(d.base, drv_watchdog, &d);
    d.resume_ev = evtimer_new(d.base, drv_resume, &d);
    struct timeval tv = {.tv_sec = T_WATCHDOG};
    evtimer_add(d.watchdog, &tv);
    d.c = pop3c_connect(d.base, &p, drv_ready, &d);
    assert_non_null(d.c);
    Q(pop3c_quit(d.c, drv_quit_done, drv_slot(&d)));
    event_base_dispatch(d.base);
    pop3c_free(&d.c);
    event_free(d.watchdog);
    event_free(d.resume_ev);
    event_base_free(d.base);
    fs_finish(s);
    assert_int_equal(d.ready_status, 0);
    assert_int_equal(d.slot[0].status, 0);
}

/* ---- TLS ---- */

struct tlsfix {
    char dir[64], cert[128], key[128];
    SSL_CTX *sctx;
};

static void tlsfix_init(struct tlsfix *f)
{
    snprintf(f->dir, sizeof(f->dir), "/tmp/pop3c_tls_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->cert, sizeof(f->cert), "%s/cert.pem", f->dir);
    snprintf(f->key, sizeof(f->key), "%s/key.pem", f->dir);
    assert_int_equal(tls_ensure_selfsigned(f->cert, f->key, "pop.test"), 0);
    f->sctx = tls_server_ctx_new(f->cert, f->key, "1.2");
    assert_non_null(f->sctx);
}

static void tlsfix_free(struct tlsfix *f)
{
    SSL_CTX_free(f->sctx);
    assert_int_equal(tu_rm_rf(f->dir), 0);
}

static void queue_quit(struct drv *d)
{
    Q(pop3c_quit(d->c, drv_quit_done, drv_slot(d)));
}

static void test_stls(void **st)
{
    struct tlsfix f;
    tlsfix_init(&f);
    const struct fs_step script[] = {
        GREET,
        {FS_EXPECT, "CAPA"},
        {FS_SEND, "+OK\r\nSTLS\r\nPIPELINING\r\n.\r\n"},
        {FS_EXPECT, "STLS"},
        {FS_SEND, "+OK Begin TLS negotiation\r\n"},
        {FS_TLS, NULL},
        {FS_EXPECT, "CAPA"}, /* RFC 2595: asked again; PIPELINING now absent */
        {FS_SEND, "+OK\r\nUSER\r\n.\r\n"},
        LOGIN_USER,
        {FS_EXPECT, "QUIT"},
        {FS_SEND, "+OK\r\n"},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, f.sctx);
    struct drv d = {.queue = queue_quit};
    struct pop3c_params p = base_params(s->port);
    p.tls = POP3C_TLS_STLS;
    p.ca_file = f.cert;
    p.server_name = "pop.test";
    run(&d, &p);
    fs_finish(s);
    assert_int_equal(d.ready_status, 0);
    assert_int_equal(d.tls_seen, 1);
    assert_int_equal(d.caps, POP3_CAP_USER);
    assert_int_equal(d.slot[0].status, 0);
    tlsfix_free(&f);
}

static void test_stls_wrong_name(void **st)
{
    struct tlsfix f;
    tlsfix_init(&f);
    const struct fs_step script[] = {
        GREET,
        {FS_EXPECT, "CAPA"},
        {FS_SEND, "+OK\r\nSTLS\r\n.\r\n"},
        {FS_EXPECT, "STLS"},
        {FS_SEND, "+OK\r\n"},
        {FS_TLS, "fail-ok"},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, f.sctx);
    struct drv d = {.queue = queue_quit};
    struct pop3c_params p = base_params(s->port);
    p.tls = POP3C_TLS_STLS;
    p.ca_file = f.cert;
    p.server_name = "other.test"; /* the default: verify, and the name does not match */
    run(&d, &p);
    fs_finish(s);
    assert_int_equal(d.ready_status, PST_ETLS);
    assert_non_null(strstr(d.ready_why, "certificate"));
    tlsfix_free(&f);
}

static void test_stls_not_offered(void **st)
{
    const struct fs_step script[] = {
        GREET,           {FS_EXPECT, "CAPA"}, {FS_SEND, "+OK\r\nUSER\r\n.\r\n"},
        {FS_WAIT, NULL}, {FS_END, NULL},
    };
    struct fs *s = fs_start(script, NULL);
    struct drv d = {.queue = queue_quit};
    struct pop3c_params p = base_params(s->port);
    p.tls = POP3C_TLS_STLS;
    p.verify = POP3C_VERIFY_NONE;
    run(&d, &p);
    fs_finish(s);
    assert_int_equal(d.ready_status, PST_ETLS);
    assert_non_null(strstr(d.ready_why, "STLS"));
}

static void test_implicit_tls(void **st)
{
    struct tlsfix f;
    tlsfix_init(&f);
    const struct fs_step script[] = {
        {FS_TLS, NULL},       GREET,
        {FS_EXPECT, "CAPA"},  {FS_SEND, "-ERR unknown command\r\n"},
        LOGIN_USER,           {FS_EXPECT, "RETR 1"},
        {FS_SEND, "+OK\r\n"}, {FS_SEND, msg1_wire},
        {FS_EXPECT, "QUIT"},  {FS_SEND, "+OK\r\n"},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, f.sctx);
    struct drv d = {0};
    struct pop3c_params p = base_params(s->port);
    p.tls = POP3C_TLS_IMPLICIT;
    p.verify = POP3C_VERIFY_NONE; /* accept any certificate */
    /* queue RETR and QUIT before the login finishes */
    d.base = event_base_new();
    d.watchdog = evtimer_new(d.base, drv_watchdog, &d);
    d.resume_ev = evtimer_new(d.base, drv_resume, &d);
    struct timeval tv = {.tv_sec = T_WATCHDOG};
    evtimer_add(d.watchdog, &tv);
    d.c = pop3c_connect(d.base, &p, drv_ready, &d);
    assert_non_null(d.c);
    struct slot *sl = drv_slot(&d);
    Q(pop3c_retr(d.c, 1, drv_data, drv_done, sl));
    Q(pop3c_quit(d.c, drv_quit_done, drv_slot(&d)));
    event_base_dispatch(d.base);
    pop3c_free(&d.c);
    event_free(d.watchdog);
    event_free(d.resume_ev);
    event_base_free(d.base);
    fs_finish(s);
    assert_int_equal(d.ready_status, 0);
    assert_int_equal(d.tls_seen, 1);
    assert_string_equal(d.slot[0].body, msg1);
    assert_int_equal(d.slot[1].status, 0);
    drv_release(&d);
    tlsfix_free(&f);
}

/* ---- streaming ---- */

static void queue_retr_quit(struct drv *d)
{
    struct slot *s = drv_slot(d);
    Q(pop3c_retr(d->c, 1, drv_data, drv_done, s));
    Q(pop3c_quit(d->c, drv_quit_done, drv_slot(d)));
}

static void test_split_reads(void **st)
{
    const struct fs_step script[] = {
        GREET,
        {FS_EXPECT, "CAPA"},
        {FS_SEND, "-ERR\r\n"},
        LOGIN_USER,
        {FS_EXPECT, "RETR 1"},
        {FS_SLOW, "+OK\r\n..a\r\n.\r\r\n..\r\n.b\r\n"},
        {FS_SLOW, ".\r"},
        {FS_SLOW, "\n"},
        {FS_EXPECT, "QUIT"},
        {FS_SLOW, "+OK bye\r\n"},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, NULL);
    struct drv d = {.queue = queue_retr_quit};
    struct pop3c_params p = base_params(s->port);
    run(&d, &p);
    fs_finish(s);
    assert_int_equal(d.slot[0].status, 0);
    assert_string_equal(d.slot[0].body, ".a\r\n\r\r\n.\r\nb\r\n");
    assert_int_equal(d.slot[1].status, 0);
    drv_release(&d);
}

static void test_pause_resume(void **st)
{
    static char wire[200000], want[200000];
    size_t wl = 0, bl = 0;
    for (int i = 0; wl < 150000; i++) {
        bl += (size_t)snprintf(want + bl, sizeof(want) - bl, "%s%06d xxxxxxxxxxxxxxxxxxxxxx\r\n",
                               i % 3 ? "" : ".", i);
        wl += (size_t)snprintf(wire + wl, sizeof(wire) - wl, "%s%06d xxxxxxxxxxxxxxxxxxxxxx\r\n",
                               i % 3 ? "" : "..", i);
    }
    memcpy(wire + wl, ".\r\n", 4);
    const struct fs_step script[] = {
        GREET,           {FS_EXPECT, "CAPA"},   {FS_SEND, "-ERR\r\n"},
        LOGIN_USER,      {FS_EXPECT, "RETR 1"}, {FS_SEND, "+OK\r\n"},
        {FS_SEND, wire}, {FS_EXPECT, "QUIT"},   {FS_SEND, "+OK\r\n"},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, NULL);
    struct drv d = {.queue = queue_retr_quit, .pause_each = 1};
    struct pop3c_params p = base_params(s->port);
    run(&d, &p);
    fs_finish(s);
    assert_int_equal(d.slot[0].status, 0);
    assert_int_equal(d.slot[0].bodylen, bl);
    assert_memory_equal(d.slot[0].body, want, bl);
    assert_int_equal(d.slot[1].status, 0);
    drv_release(&d);
}

static void queue_two_retr_quit(struct drv *d)
{
    struct slot *s = drv_slot(d);
    Q(pop3c_retr(d->c, 1, drv_data, drv_done, s));
    s = drv_slot(d);
    Q(pop3c_retr(d->c, 2, drv_data, drv_done, s));
    Q(pop3c_quit(d->c, drv_quit_done, drv_slot(d)));
}

/* body bytes (want, unstuffed) and their wire form, lines of a varying length, every 5th dotted */
static size_t big_body(char *want, size_t *bl, char *wire, size_t cap, size_t size, int tag)
{
    size_t wl = 0;
    *bl = 0;
    for (int i = 0; *bl < size; i++) {
        int pad = i % 70;
        *bl += (size_t)snprintf(
            want + *bl, cap - *bl, "%s%d-%06d %.*s\r\n", i % 5 ? "" : ".", tag, i, pad,
            "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy");
        wl += (size_t)snprintf(
            wire + wl, cap - wl, "%s%d-%06d %.*s\r\n", i % 5 ? "" : "..", tag, i, pad,
            "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy");
    }
    return wl;
}

/*
 * Two pipelined RETR replies and the QUIT reply arrive in one send, each
 * body larger than one libevent read and than one decode piece: the
 * bodies must come out exact, and the reply boundaries must hold.
 */
static void test_pipelined_bodies_one_send(void **st)
{
    static char want1[40000], want2[40000], all[90000];
    static char wire1[40000], wire2[40000];
    size_t bl1, bl2;
    size_t wl1 = big_body(want1, &bl1, wire1, sizeof wire1, 21000, 1);
    size_t wl2 = big_body(want2, &bl2, wire2, sizeof wire2, 9000, 2);
    int n = snprintf(all, sizeof all, "+OK\r\n%.*s.\r\n+OK %zu octets\r\n%.*s.\r\n+OK bye\r\n",
                     (int)wl1, wire1, bl2, (int)wl2, wire2);
    assert_true(n > 0 && (size_t)n < sizeof all);
    const struct fs_step script[] = {
        GREET,
        {FS_EXPECT, "CAPA"},
        {FS_SEND, "+OK\r\nUSER\r\nPIPELINING\r\n.\r\n"},
        LOGIN_USER,
        {FS_EXPECT, "RETR 1"},
        {FS_EXPECT, "RETR 2"},
        {FS_EXPECT, "QUIT"},
        {FS_SEND, all},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, NULL);
    struct drv d = {.queue = queue_two_retr_quit};
    struct pop3c_params p = base_params(s->port);
    run(&d, &p);
    fs_finish(s);
    assert_int_equal(d.ready_status, 0);
    assert_int_equal(d.slot[0].status, 0);
    assert_int_equal(d.slot[0].bodylen, bl1);
    assert_memory_equal(d.slot[0].body, want1, bl1);
    assert_int_equal(d.slot[0].octets, bl1);
    assert_int_equal(d.slot[1].status, 0);
    assert_int_equal(d.slot[1].bodylen, bl2);
    assert_memory_equal(d.slot[1].body, want2, bl2);
    assert_int_equal(d.slot[2].status, 0);
    drv_release(&d);
}

static void test_free_in_callback(void **st)
{
    const struct fs_step script[] = {
        GREET,
        {FS_EXPECT, "CAPA"},
        {FS_SEND, "-ERR\r\n"},
        LOGIN_USER,
        {FS_EXPECT, "RETR 1"},
        {FS_SEND, "+OK\r\nline one\r\n"},
        {FS_SEND, "line two\r\n.\r\n"},
        {FS_WAIT, NULL},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, NULL);
    struct drv d = {.queue = queue_retr_quit, .free_in_data = 1};
    struct pop3c_params p = base_params(s->port);
    run(&d, &p);
    fs_finish(s);
    assert_int_equal(d.slot[0].called, 0); /* freed: no more callbacks */
    assert_int_equal(d.slot[1].called, 0);
    assert_int_equal(d.close_called, 0);
    assert_non_null(d.slot[0].body);
    drv_release(&d);
}

/* ---- login failures ---- */

static void login_fail(const char *reply, int want)
{
    const struct fs_step script[] = {
        GREET,
        {FS_EXPECT, "CAPA"},
        {FS_SEND, "-ERR\r\n"},
        {FS_EXPECT, "USER alice"},
        {FS_SEND, "+OK\r\n"},
        {FS_EXPECT, "PASS secret"},
        {FS_SEND, reply},
        {FS_WAIT, NULL},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, NULL);
    struct drv d = {.queue = queue_quit};
    struct pop3c_params p = base_params(s->port);
    run(&d, &p);
    fs_finish(s);
    assert_int_equal(d.ready_status, want);
    assert_null(strstr(d.ready_why, "secret"));
}

static void test_login_refused(void **st)
{
    login_fail("-ERR [AUTH] invalid password\r\n", PST_EAUTH);
    login_fail("-ERR invalid password\r\n", PST_EAUTH);
    login_fail("-ERR [IN-USE] locked\r\n", PST_EAGAIN);
    login_fail("-ERR [SYS/TEMP] later\r\n", PST_EAGAIN);
}

/* ---- hostile servers ---- */

/* hostile - run a session whose server ends with reply_tail after RETR 1 (or at greeting). */
static void hostile(const struct fs_step *script, struct pop3c_params *p, int want_ready,
                    int want_retr, struct drv *d)
{
    struct fs *s = fs_start(script, NULL);
    d->queue = queue_retr_quit;
    p->port = s->port;
    run(d, p);
    fs_finish(s);
    assert_int_equal(d->ready_status, want_ready);
    if (want_ready == 0) {
        assert_int_equal(d->slot[0].called, 1);
        assert_int_equal(d->slot[0].status, want_retr);
        assert_int_equal(d->slot[1].called, 1); /* QUIT gets the same failure */
        assert_int_equal(d->slot[1].status, want_retr);
    }
}

static void test_hostile_garbage_greeting(void **st)
{
    const struct fs_step script[] = {
        {FS_SEND, "* OK IMAP4rev1 ready\r\n"},
        {FS_WAIT, NULL},
        {FS_END, NULL},
    };
    struct drv d = {0};
    struct pop3c_params p = base_params(0);
    hostile(script, &p, PST_EINVAL, 0, &d);
    assert_non_null(strstr(d.ready_why, "bad status line"));
}

static void test_hostile_err_greeting(void **st)
{
    const struct fs_step script[] = {
        {FS_SEND, "-ERR go away\r\n"},
        {FS_WAIT, NULL},
        {FS_END, NULL},
    };
    struct drv d = {0};
    struct pop3c_params p = base_params(0);
    hostile(script, &p, PST_EAGAIN, 0, &d);
}

static void test_hostile_long_line(void **st)
{
    static char longl[POP3_REPLY_LINE_MAX + 100];
    memset(longl, 'A', sizeof(longl) - 1);
    memcpy(longl, "+OK ", 4);
    const struct fs_step script[] = {
        {FS_SEND, longl},
        {FS_WAIT, NULL},
        {FS_END, NULL},
    };
    struct drv d = {0};
    struct pop3c_params p = base_params(0);
    hostile(script, &p, PST_ELIMIT, 0, &d);
}

static void test_hostile_long_line_with_crlf(void **st)
{
    static char longl[POP3_REPLY_LINE_MAX + 100];
    memset(longl, 'A', sizeof(longl) - 1);
    memcpy(longl, "+OK ", 4);
    memcpy(longl + sizeof(longl) - 3, "\r\n", 2);
    const struct fs_step script[] = {
        GREET,           {FS_EXPECT, "CAPA"},   {FS_SEND, "-ERR\r\n"},
        LOGIN_USER,      {FS_EXPECT, "RETR 1"}, {FS_SEND, longl},
        {FS_WAIT, NULL}, {FS_END, NULL},
    };
    struct drv d = {0};
    struct pop3c_params p = base_params(0);
    hostile(script, &p, 0, PST_ELIMIT, &d);
}

static void test_hostile_hang(void **st)
{
    const struct fs_step script[] = {
        GREET,           {FS_EXPECT, "CAPA"},   {FS_SEND, "-ERR\r\n"},
        LOGIN_USER,      {FS_EXPECT, "RETR 1"}, {FS_SEND, "+OK\r\nsome of the body\r\n"},
        {FS_WAIT, NULL}, {FS_END, NULL},
    };
    struct drv d = {0};
    struct pop3c_params p = base_params(0);
    p.reply_timeout = 1;
    hostile(script, &p, 0, PST_EAGAIN, &d);
    assert_non_null(strstr(d.slot[0].text, "timeout"));
    assert_string_equal(d.slot[0].body, "some of the body\r\n");
    assert_int_equal(d.slot[0].octets, strlen("some of the body\r\n"));
    drv_release(&d);
}

static void test_hostile_hang_greeting(void **st)
{
    const struct fs_step script[] = {
        {FS_SLOW, "+OK slow"}, /* never a line end */
        {FS_WAIT, NULL},
        {FS_END, NULL},
    };
    struct drv d = {0};
    struct pop3c_params p = base_params(0);
    p.reply_timeout = 1;
    hostile(script, &p, PST_EAGAIN, 0, &d);
    assert_non_null(strstr(d.ready_why, "timeout in state GREETING"));
}

static void test_hostile_close_mid_retr(void **st)
{
    const struct fs_step script[] = {
        GREET,
        {FS_EXPECT, "CAPA"},
        {FS_SEND, "-ERR\r\n"},
        LOGIN_USER,
        {FS_EXPECT, "RETR 1"},
        {FS_SEND, "+OK\r\nhalf a mess"},
        {FS_CLOSE, NULL},
        {FS_END, NULL},
    };
    struct drv d = {0};
    struct pop3c_params p = base_params(0);
    hostile(script, &p, 0, PST_EAGAIN, &d);
    assert_non_null(strstr(d.slot[0].text, "closed by the server"));
    assert_string_equal(d.slot[0].body, "half a mess");
    drv_release(&d);
}

static void test_hostile_too_big(void **st)
{
    const struct fs_step script[] = {
        GREET,
        {FS_EXPECT, "CAPA"},
        {FS_SEND, "-ERR\r\n"},
        LOGIN_USER,
        {FS_EXPECT, "RETR 1"},
        {FS_SEND, "+OK\r\n0123456789\r\n0123456789\r\n.\r\n"},
        {FS_WAIT, NULL},
        {FS_END, NULL},
    };
    struct drv d = {0};
    struct pop3c_params p = base_params(0);
    p.max_msg_bytes = 16;
    hostile(script, &p, 0, PST_ELIMIT, &d);
    assert_true(d.slot[0].bodylen <= 16);
    drv_release(&d);
}

static void test_hostile_bad_status_to_retr(void **st)
{
    const struct fs_step script[] = {
        GREET,           {FS_EXPECT, "CAPA"},   {FS_SEND, "-ERR\r\n"},
        LOGIN_USER,      {FS_EXPECT, "RETR 1"}, {FS_SEND, "OK here it comes\r\n"},
        {FS_WAIT, NULL}, {FS_END, NULL},
    };
    struct drv d = {0};
    struct pop3c_params p = base_params(0);
    hostile(script, &p, 0, PST_EINVAL, &d);
}

static void queue_uidl_quit(struct drv *d)
{
    struct slot *s = drv_slot(d);
    Q(pop3c_uidl(d->c, 0, drv_entry, drv_done, s));
    Q(pop3c_quit(d->c, drv_quit_done, drv_slot(d)));
}

static void uidl_hostile(const char *listing, uint32_t max_entries, int want)
{
    const struct fs_step script[] = {
        GREET,
        {FS_EXPECT, "CAPA"},
        {FS_SEND, "-ERR\r\n"},
        LOGIN_USER,
        {FS_EXPECT, "UIDL"},
        {FS_SEND, listing},
        {FS_EXPECT, "QUIT"},
        {FS_SEND, "+OK\r\n"},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, NULL);
    struct drv d = {.queue = queue_uidl_quit};
    struct pop3c_params p = base_params(s->port);
    p.max_entries = max_entries;
    run(&d, &p);
    pthread_join(s->th, NULL); /* the script may stop early: only the client matters here */
    close(s->lfd);
    free(s);
    assert_int_equal(d.slot[0].status, want);
}

static void test_hostile_listings(void **st)
{
    uidl_hostile("+OK\r\n1 abc\r\n2 def\r\n.\r\n", 0, 0);
    uidl_hostile("+OK\r\n1 abc\r\n2 def\r\n.\r\n", 1, PST_ELIMIT);
    uidl_hostile("+OK\r\n1 abc\r\nxyz\r\n.\r\n", 0, PST_EINVAL);
    uidl_hostile("+OK\r\n1 has space\r\n.\r\n", 0, PST_EINVAL);
    uidl_hostile("+OK\r\n1 "
                 "0123456789012345678901234567890123456789012345678901234567890123456789x\r\n.\r\n",
                 0, PST_ELIMIT);
    uidl_hostile("+OK\r\n99999999999 a\r\n.\r\n", 0, PST_ELIMIT);
}

static void queue_noop(struct drv *d)
{
    Q(pop3c_noop(d->c, drv_done, drv_slot(d)));
}

static void test_hostile_data_while_idle(void **st)
{
    const struct fs_step script[] = {
        GREET,           {FS_EXPECT, "CAPA"}, {FS_SEND, "-ERR\r\n"},
        LOGIN_USER,      {FS_EXPECT, "NOOP"}, {FS_SEND, "+OK\r\n+OK surprise\r\n"},
        {FS_WAIT, NULL}, {FS_END, NULL},
    };
    struct fs *s = fs_start(script, NULL);
    struct drv d = {.queue = queue_noop};
    struct pop3c_params p = base_params(s->port);
    run(&d, &p);
    fs_finish(s);
    assert_int_equal(d.slot[0].status, 0);
    assert_int_equal(d.close_called, 1);
    assert_int_equal(d.close_status, PST_EINVAL);
}

/* A host name resolved on a worker pool ("localhost": maybe ::1 first, refused, then 127.0.0.1). */
static void test_resolver_pool(void **st)
{
    const struct fs_step script[] = {
        GREET,          {FS_EXPECT, "CAPA"}, {FS_SEND, "-ERR\r\n"},
        LOGIN_USER,     {FS_EXPECT, "QUIT"}, {FS_SEND, "+OK\r\n"},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, NULL);
    struct drv d = {.queue = queue_quit};
    struct pop3c_params p = base_params(s->port);
    p.host = "localhost";
    d.base = event_base_new();
    assert_non_null(d.base);
    struct worker_pool *pool = worker_pool_new(d.base, 1);
    assert_non_null(pool);
    p.resolver = pool;
    d.watchdog = evtimer_new(d.base, drv_watchdog, &d);
    d.resume_ev = evtimer_new(d.base, drv_resume, &d);
    struct timeval tv = {.tv_sec = T_WATCHDOG};
    evtimer_add(d.watchdog, &tv);
    d.c = pop3c_connect(d.base, &p, drv_ready, &d);
    assert_non_null(d.c);
    /* the pool's pipe event keeps the loop alive: stop once the session is over */
    while (d.c)
        event_base_loop(d.base, EVLOOP_ONCE);
    worker_pool_free(&pool);
    event_free(d.watchdog);
    event_free(d.resume_ev);
    event_base_free(d.base);
    fs_finish(s);
    assert_int_equal(d.ready_status, 0);
    assert_int_equal(d.slot[0].status, 0);
}

/* Freed while the name is still being resolved: the job is detached, nothing leaks. */
static void test_resolver_detach(void **st)
{
    struct event_base *base = event_base_new();
    struct worker_pool *pool = worker_pool_new(base, 1);
    assert_non_null(pool);
    struct pop3c_params p = base_params(110);
    p.host = "localhost";
    p.resolver = pool;
    struct drv d = {0};
    struct pop3c *c = pop3c_connect(base, &p, drv_ready, &d);
    assert_non_null(c);
    pop3c_free(&c);
    assert_null(c);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    worker_pool_free(&pool);
    event_base_free(base);
    assert_int_equal(d.ready_called, 0);
}

static void test_connect_refused(void **st)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    socklen_t sl = sizeof(sin);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
    struct drv d = {.queue = queue_quit};
    struct pop3c_params p = base_params(ntohs(sin.sin_port)); /* bound, not listening */
    run(&d, &p);
    close(fd);
    assert_int_equal(d.ready_status, PST_EAGAIN);
}

static void test_bad_params(void **st)
{
    struct event_base *base = event_base_new();
    struct pop3c_params p = base_params(110);
    p.user = "a\r\nDELE 1";
    assert_null(pop3c_connect(base, &p, drv_ready, NULL));
    p = base_params(110);
    p.pass = "";
    assert_null(pop3c_connect(base, &p, drv_ready, NULL));
    p = base_params(0);
    assert_null(pop3c_connect(base, &p, drv_ready, NULL));
    p = base_params(110);
    p.host = "no such host.invalid";
    assert_null(pop3c_connect(base, &p, drv_ready, NULL));
    p.host = "127.0.0.1";
    p.tls = 7;
    assert_null(pop3c_connect(base, &p, drv_ready, NULL));
    event_base_free(base);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_session),
        cmocka_unit_test(test_sasl_pipelining),
        cmocka_unit_test(test_sasl_continuation),
        cmocka_unit_test(test_stls),
        cmocka_unit_test(test_stls_wrong_name),
        cmocka_unit_test(test_stls_not_offered),
        cmocka_unit_test(test_implicit_tls),
        cmocka_unit_test(test_split_reads),
        cmocka_unit_test(test_pause_resume),
        cmocka_unit_test(test_pipelined_bodies_one_send),
        cmocka_unit_test(test_free_in_callback),
        cmocka_unit_test(test_login_refused),
        cmocka_unit_test(test_hostile_garbage_greeting),
        cmocka_unit_test(test_hostile_err_greeting),
        cmocka_unit_test(test_hostile_long_line),
        cmocka_unit_test(test_hostile_long_line_with_crlf),
        cmocka_unit_test(test_hostile_hang),
        cmocka_unit_test(test_hostile_hang_greeting),
        cmocka_unit_test(test_hostile_close_mid_retr),
        cmocka_unit_test(test_hostile_too_big),
        cmocka_unit_test(test_hostile_bad_status_to_retr),
        cmocka_unit_test(test_hostile_listings),
        cmocka_unit_test(test_hostile_data_while_idle),
        cmocka_unit_test(test_resolver_pool),
        cmocka_unit_test(test_resolver_detach),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_bad_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
