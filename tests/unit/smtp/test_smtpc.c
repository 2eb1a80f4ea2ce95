/*
 * test_smtpc.c - the outbound SMTP client against a scripted fake server.
 *
 * The fake server is a thread on 127.0.0.1 that accepts one connection and
 * walks a script: send these bytes, expect exactly this command line, read
 * DATA content into a buffer (checked byte for byte), start TLS, close, wait
 * for the client to go away. The client runs on the main thread's event
 * loop. Covered: PIPELINING (the server reads all commands before it
 * answers, so a client that did not pipeline would time out), lock-step
 * with HELO fallback, per-RCPT 4xx/5xx, 552 at MAIL, connection reuse and
 * RSET only after a failed transaction, local refusals (SIZE, SMTPUTF8,
 * 8-bit without 8BITMIME), dot-stuffing and CRLF repair, a large message
 * through the bounded output buffer, STARTTLS with a self-signed
 * certificate (encrypt, verify ok, verify with the wrong name), AUTH PLAIN,
 * TLS required but not offered, garbage and over-long replies, a silent
 * server (short timeout), a drop in the middle of DATA, a 5xx greeting, and
 * an end-to-end run against Postfix's smtp-sink when it is installed.
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
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "lib/tls.h"
#include "smtp/smtp_parser.h"
#include "smtp/smtpc.h"

#define T_IO_TIMEOUT 10 /* seconds the fake server waits for the client */
#define T_WATCHDOG 30   /* seconds before a test's event loop is stopped */
#define T_MAXMSG 4

/* ---- the fake server ---- */

enum fs_op {
    FS_END = 0,
    FS_SEND,   /* send arg */
    FS_EXPECT, /* read one line, must equal arg (CRLF stripped) */
    FS_DATA,   /* read content up to "." into data */
    FS_TLS,    /* SSL_accept; a failure ends the script quietly if arg is "fail-ok" */
    FS_CLOSE,  /* close now */
    FS_WAIT,   /* read until the client closes */
    FS_QUIT,   /* expect QUIT, send 221, close */
    FS_DROP,   /* read one line, then close (mid-DATA drop) */
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
    size_t datalen[T_MAXMSG]; /* DATA content received as on the wire (stuffed), */
    char *datas[T_MAXMSG];    /* without the "." line */
    int ndata;
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

/* fs_line - read one line incl. LF into a malloc'd string; NULL on EOF/error/timeout. */
static char *fs_line(struct fs *s, size_t *lenp)
{
    size_t cap = 1024, len = 0;
    char *l = malloc(cap);
    assert_non_null(l);
    for (;;) {
        if (s->rlen == 0) {
            ssize_t r = fs_io_read(s, s->rbuf, sizeof(s->rbuf));
            if (r <= 0) {
                free(l);
                return NULL;
            }
            s->rlen = (size_t)r;
        }
        char *nl = memchr(s->rbuf, '\n', s->rlen);
        size_t n = nl ? (size_t)(nl - s->rbuf) + 1 : s->rlen;
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            l = realloc(l, cap);
            assert_non_null(l);
        }
        memcpy(l + len, s->rbuf, n);
        len += n;
        memmove(s->rbuf, s->rbuf + n, s->rlen - n);
        s->rlen -= n;
        if (nl) {
            l[len] = '\0';
            *lenp = len;
            return l;
        }
    }
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

static int fs_expect(struct fs *s, int i, const char *want)
{
    size_t len;
    char *l = fs_line(s, &len);
    if (!l) {
        fs_fail(s, i, "expected '%s', got EOF", want);
        return -1;
    }
    if (len >= 2 && l[len - 2] == '\r')
        l[len - 2] = '\0';
    else
        fs_fail(s, i, "line without CRLF: '%s'", l);
    int ok = strcmp(l, want) == 0;
    if (!ok)
        fs_fail(s, i, "expected '%s', got '%s'", want, l);
    free(l);
    return ok ? 0 : -1;
}

static int fs_data(struct fs *s, int i)
{
    size_t cap = 4096, len = 0;
    char *d = malloc(cap);
    assert_non_null(d);
    for (;;) {
        size_t n;
        char *l = fs_line(s, &n);
        if (!l) {
            fs_fail(s, i, "EOF in DATA");
            free(d);
            return -1;
        }
        if (strcmp(l, ".\r\n") == 0) {
            free(l);
            break;
        }
        if (len + n > cap) {
            cap = (len + n) * 2;
            d = realloc(d, cap);
            assert_non_null(d);
        }
        memcpy(d + len, l, n);
        len += n;
        free(l);
    }
    if (s->ndata < T_MAXMSG) {
        s->datas[s->ndata] = d;
        s->datalen[s->ndata++] = len;
    } else {
        free(d);
    }
    return 0;
}

static void fs_close(struct fs *s)
{
    if (s->ssl) {
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

static int fs_step(struct fs *s, int i, const struct fs_step *st)
{
    char b[256];
    switch (st->op) {
    case FS_SEND:
        return fs_send(s, st->arg, strlen(st->arg));
    case FS_EXPECT:
        return fs_expect(s, i, st->arg);
    case FS_DATA:
        return fs_data(s, i);
    case FS_TLS:
        s->ssl = SSL_new(s->sctx);
        assert_non_null(s->ssl);
        SSL_set_fd(s->ssl, s->fd);
        if (SSL_accept(s->ssl) != 1) {
            if (!st->arg || strcmp(st->arg, "fail-ok") != 0)
                fs_fail(s, i, "TLS accept failed");
            return -1;
        }
        if (st->arg && strcmp(st->arg, "fail-ok") == 0)
            fs_fail(s, i, "TLS accept succeeded but should have failed");
        return 0;
    case FS_CLOSE:
        fs_close(s);
        return -1;
    case FS_WAIT:
        while (fs_io_read(s, b, sizeof(b)) > 0)
            ;
        return -1;
    case FS_QUIT:
        if (fs_expect(s, i, "QUIT") < 0)
            return -1;
        (void)fs_send(s, "221 2.0.0 bye\r\n", 15);
        return -1;
    case FS_DROP: {
        size_t n;
        free(fs_line(s, &n));
        shutdown(s->fd, SHUT_RDWR);
        fs_close(s);
        return -1;
    }
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
    struct timeval tv = {.tv_sec = T_IO_TIMEOUT};
    setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    for (int i = 0; s->script[i].op != FS_END; i++)
        if (fs_step(s, i, &s->script[i]) < 0)
            break;
    fs_close(s);
    return NULL;
}

static int fs_listen(unsigned *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(fd, 4), 0);
    socklen_t sl = sizeof(sin);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

static struct fs *fs_start(const struct fs_step *script, SSL_CTX *sctx)
{
    struct fs *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->fd = -1;
    s->script = script;
    s->sctx = sctx;
    s->lfd = fs_listen(&s->port);
    assert_int_equal(pthread_create(&s->th, NULL, fs_main, s), 0);
    return s;
}

/* fs_finish - join the server; fail the test on any script mismatch. */
static void fs_finish(struct fs *s)
{
    pthread_join(s->th, NULL);
    close(s->lfd);
    char err[sizeof(s->err)];
    memcpy(err, s->err, sizeof(err));
    for (int i = 0; i < s->ndata; i++)
        free(s->datas[i]);
    free(s);
    if (err[0])
        fail_msg("fake server: %s", err);
}

/* ---- the client driver ---- */

struct drv {
    struct event_base *base;
    struct event *watchdog;
    struct smtpc *c;
    struct smtpc_msg *msgs[T_MAXMSG];
    int nmsg, cur;
    int conn_status, conn_called;
    char conn_why[700];
    int msg_status[T_MAXMSG];
    char msg_why[T_MAXMSG][700];
    int tls_seen;
};

static void drv_finish(struct drv *d)
{
    event_del(d->watchdog);
    if (smtpc_usable(d->c))
        smtpc_quit(&d->c);
    else
        smtpc_free(&d->c);
}

static void drv_msg_cb(void *arg, int status, const char *why);

static void drv_send(struct drv *d)
{
    if (d->cur >= d->nmsg || !smtpc_usable(d->c)) {
        drv_finish(d);
        return;
    }
    int rc = smtpc_send(d->c, d->msgs[d->cur], drv_msg_cb, d);
    if (rc < 0) {
        d->msg_status[d->cur] = 1000 + rc;
        drv_finish(d);
    }
}

static void drv_msg_cb(void *arg, int status, const char *why)
{
    struct drv *d = arg;
    d->msg_status[d->cur] = status;
    snprintf(d->msg_why[d->cur], sizeof(d->msg_why[0]), "%s", why);
    d->cur++;
    drv_send(d);
}

static void drv_conn_cb(void *arg, int status, const char *why)
{
    struct drv *d = arg;
    d->conn_called++;
    d->conn_status = status;
    snprintf(d->conn_why, sizeof(d->conn_why), "%s", why);
    d->tls_seen = smtpc_tls_info(d->c) != NULL;
    if (status != 0) {
        drv_finish(d);
        return;
    }
    drv_send(d);
}

static void drv_watchdog(evutil_socket_t fd, short what, void *arg)
{
    struct drv *d = arg;
    smtpc_free(&d->c);
    d->conn_status = 9999;
    event_base_loopbreak(d->base);
}

/* run - connect to 127.0.0.1:port with p and send the messages in order. */
static void run(struct drv *d, unsigned port, SSL_CTX *cctx, const struct smtpc_params *p)
{
    d->base = event_base_new();
    assert_non_null(d->base);
    d->watchdog = evtimer_new(d->base, drv_watchdog, d);
    struct timeval tv = {.tv_sec = T_WATCHDOG};
    evtimer_add(d->watchdog, &tv);
    for (int i = 0; i < T_MAXMSG; i++)
        d->msg_status[i] = 7777; /* "callback not called" */
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    d->c = smtpc_connect(d->base, (struct sockaddr *)&sin, sizeof(sin), cctx, p, drv_conn_cb, d);
    assert_non_null(d->c);
    event_base_dispatch(d->base);
    smtpc_free(&d->c);
    event_free(d->watchdog);
    event_base_free(d->base);
    assert_int_not_equal(d->conn_status, 9999);
    assert_int_equal(d->conn_called, 1);
}

static struct smtpc_params base_params(void)
{
    struct smtpc_params p = {.helo_name = "client.test", .tls_policy = "none"};
    p.greeting_timeout = 5;
    p.command_timeout = 5;
    return p;
}

/* ---- messages ---- */

static char tmpdir[256];

struct tmsg {
    struct smtpc_msg m;
    struct smtpc_rcpt r[4];
    int fd;
};

static void tmsg_init(struct tmsg *t, const char *sender, const char *content, size_t len,
                      const char *r0, const char *r1, const char *r2)
{
    memset(t, 0, sizeof(*t));
    char path[300];
    snprintf(path, sizeof(path), "%s/msgXXXXXX", tmpdir);
    t->fd = mkstemp(path);
    assert_true(t->fd >= 0);
    unlink(path);
    /* a prefix the client must skip via content_offset */
    assert_int_equal(write(t->fd, "ENVELOPE\n", 9), 9);
    assert_int_equal(write(t->fd, content, len), (ssize_t)len);
    t->m.sender = sender;
    t->m.content_fd = t->fd;
    t->m.content_offset = 9;
    t->m.content_len = len;
    t->m.size = len;
    t->m.rcpt = t->r;
    const char *rs[3] = {r0, r1, r2};
    for (int i = 0; i < 3 && rs[i]; i++) {
        t->r[i].addr = rs[i];
        t->m.nrcpt++;
    }
}

static void tmsg_free(struct tmsg *t)
{
    close(t->fd);
}

static const char dotmsg[] =
    "Subject: dots\r\n\r\n.hello\r\n..two\r\nbare\nlf\r\n.\r\n8bit \xc3\xa9\r\nend";
static const char dotmsg_wire[] =
    "Subject: dots\r\n\r\n..hello\r\n...two\r\nbare\r\nlf\r\n..\r\n8bit \xc3\xa9\r\nend\r\n";

/* ---- tests ---- */

static const char ehlo_full[] = "250-mx.test hello\r\n250-PIPELINING\r\n250-SIZE 10000000\r\n"
                                "250-8BITMIME\r\n250-DSN\r\n250 ENHANCEDSTATUSCODES\r\n";

static void test_pipelining(void **st)
{
    struct tmsg t;
    tmsg_init(&t, "a@x.test", dotmsg, sizeof(dotmsg) - 1, "b@y.test", "c@y.test", "d@y.test");
    t.m.body_8bit = 1;
    t.m.ret = 2;
    t.m.envid = "abc+2Bd";
    t.r[0].notify = SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE;
    t.r[0].orcpt = "rfc822;b@y.test";
    t.r[1].notify = SMTP_NOTIFY_NEVER;
    char mail[200];
    snprintf(mail, sizeof(mail),
             "MAIL FROM:<a@x.test> SIZE=%zu BODY=8BITMIME RET=HDRS ENVID=abc+2Bd",
             sizeof(dotmsg) - 1);
    const struct fs_step script[] = {
        {FS_SEND, "220 mx.test ESMTP\r\n"},
        {FS_EXPECT, "EHLO client.test"},
        {FS_SEND, ehlo_full},
        {FS_EXPECT, mail},
        {FS_EXPECT, "RCPT TO:<b@y.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@y.test"},
        {FS_EXPECT, "RCPT TO:<c@y.test> NOTIFY=NEVER"},
        {FS_EXPECT, "RCPT TO:<d@y.test>"},
        {FS_EXPECT, "DATA"},
        {FS_SEND, "250 2.1.0 ok\r\n250 2.1.5 ok\r\n450 4.2.0 busy\r\n550-5.1.1 no such\r\n"
                  "550 5.1.1 user\r\n354 go ahead\r\n"},
        {FS_DATA, NULL},
        {FS_SEND, "250 2.0.0 queued as X1\r\n"},
        {FS_QUIT, NULL},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, NULL);
    struct drv d = {.nmsg = 1};
    d.msgs[0] = &t.m;
    struct smtpc_params p = base_params();
    run(&d, s->port, NULL, &p);
    pthread_join(s->th, NULL);
    s->th = 0;
    assert_string_equal(s->err, "");
    assert_int_equal(s->ndata, 1);
    assert_int_equal(s->datalen[0], sizeof(dotmsg_wire) - 1);
    assert_memory_equal(s->datas[0], dotmsg_wire, sizeof(dotmsg_wire) - 1);
    close(s->lfd);
    free(s->datas[0]);
    free(s);

    assert_int_equal(d.conn_status, 0);
    assert_int_equal(d.msg_status[0], 0);
    assert_int_equal(t.r[0].code, 250);
    assert_string_equal(t.r[0].enh, "2.0.0");
    assert_string_equal(t.r[0].text, "queued as X1");
    assert_int_equal(t.r[0].done, 1);
    assert_int_equal(t.r[1].code, 450);
    assert_string_equal(t.r[1].enh, "4.2.0");
    assert_int_equal(t.r[1].done, 1);
    assert_int_equal(t.r[2].code, 550);
    assert_string_equal(t.r[2].text, "no such\nuser");
    assert_int_equal(t.r[2].done, 1);
    tmsg_free(&t);
}

/* lock-step, HELO fallback, no DSN/SIZE params without the extensions, reuse, RSET after failure */
static void test_lockstep_reuse(void **st)
{
    struct tmsg t1, t2, t3;
    tmsg_init(&t1, "", "x\r\n", 3, "b@y.test", "c@y.test", NULL);
    t1.r[0].notify = SMTP_NOTIFY_SUCCESS;
    t1.m.ret = 1;
    tmsg_init(&t2, "a@x.test", "y\r\n", 3, "b@y.test", NULL, NULL);
    tmsg_init(&t3, "a@x.test", "", 0, "e@y.test", NULL, NULL);
    const struct fs_step script[] = {
        {FS_SEND, "220 old.test\r\n"},
        {FS_EXPECT, "EHLO client.test"},
        {FS_SEND, "500 5.5.1 what?\r\n"},
        {FS_EXPECT, "HELO client.test"},
        {FS_SEND, "250 old.test\r\n"},
        {FS_EXPECT, "MAIL FROM:<>"},
        {FS_SEND, "250 ok\r\n"},
        {FS_EXPECT, "RCPT TO:<b@y.test>"},
        {FS_SEND, "550 no\r\n"},
        {FS_EXPECT, "RCPT TO:<c@y.test>"},
        {FS_SEND, "250 ok\r\n"},
        {FS_EXPECT, "DATA"},
        {FS_SEND, "354 go\r\n"},
        {FS_DATA, NULL},
        {FS_SEND, "250 done\r\n"},
        /* message 2: no RSET (1 succeeded); the only recipient is refused: no DATA */
        {FS_EXPECT, "MAIL FROM:<a@x.test>"},
        {FS_SEND, "250 ok\r\n"},
        {FS_EXPECT, "RCPT TO:<b@y.test>"},
        {FS_SEND, "551 gone\r\n"},
        /* message 3: RSET first; empty content */
        {FS_EXPECT, "RSET"},
        {FS_SEND, "250 reset\r\n"},
        {FS_EXPECT, "MAIL FROM:<a@x.test>"},
        {FS_SEND, "250 ok\r\n"},
        {FS_EXPECT, "RCPT TO:<e@y.test>"},
        {FS_SEND, "250 ok\r\n"},
        {FS_EXPECT, "DATA"},
        {FS_SEND, "354 go\r\n"},
        {FS_DATA, NULL},
        {FS_SEND, "451 4.3.0 try later\r\n"},
        {FS_QUIT, NULL},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, NULL);
    struct drv d = {.nmsg = 3};
    d.msgs[0] = &t1.m;
    d.msgs[1] = &t2.m;
    d.msgs[2] = &t3.m;
    struct smtpc_params p = base_params();
    run(&d, s->port, NULL, &p);
    pthread_join(s->th, NULL);
    s->th = 0;
    assert_string_equal(s->err, "");
    assert_int_equal(s->ndata, 2);
    assert_int_equal(s->datalen[0], 3);
    assert_memory_equal(s->datas[0], "x\r\n", 3);
    assert_int_equal(s->datalen[1], 0);
    close(s->lfd);
    free(s->datas[0]);
    free(s->datas[1]);
    free(s);

    assert_int_equal(d.conn_status, 0);
    assert_int_equal(d.msg_status[0], 0);
    assert_int_equal(t1.r[0].code, 550);
    assert_int_equal(t1.r[1].code, 250);
    assert_string_equal(t1.r[1].text, "done");
    assert_int_equal(d.msg_status[1], 0);
    assert_int_equal(t2.r[0].code, 551);
    assert_int_equal(t2.r[0].done, 1);
    assert_int_equal(d.msg_status[2], PST_EAGAIN);
    assert_int_equal(t3.r[0].code, 451);
    assert_true(strstr(d.msg_why[2], "451 4.3.0 try later") != NULL);
    tmsg_free(&t1);
    tmsg_free(&t2);
    tmsg_free(&t3);
}

static void test_mail_552(void **st)
{
    struct tmsg t;
    tmsg_init(&t, "a@x.test", "x\r\n", 3, "b@y.test", "c@y.test", NULL);
    const struct fs_step script[] = {
        {FS_SEND, "220 mx.test\r\n"},
        {FS_EXPECT, "EHLO client.test"},
        {FS_SEND, "250-mx.test\r\n250 PIPELINING\r\n"},
        {FS_EXPECT, "MAIL FROM:<a@x.test>"},
        {FS_EXPECT, "RCPT TO:<b@y.test>"},
        {FS_EXPECT, "RCPT TO:<c@y.test>"},
        {FS_EXPECT, "DATA"},
        {FS_SEND, "552 5.3.4 too big\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n"
                  "503 5.5.1 need RCPT\r\n"},
        {FS_QUIT, NULL},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, NULL);
    struct drv d = {.nmsg = 1};
    d.msgs[0] = &t.m;
    struct smtpc_params p = base_params();
    run(&d, s->port, NULL, &p);
    fs_finish(s);
    assert_int_equal(d.msg_status[0], PST_EPERM);
    assert_true(strstr(d.msg_why[0], "552 5.3.4 too big") != NULL);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(t.r[i].code, 552);
        assert_string_equal(t.r[i].enh, "5.3.4");
        assert_int_equal(t.r[i].done, 1);
    }
    tmsg_free(&t);
}

/* 8-bit body to a peer without 8BITMIME: converted to quoted-printable (RFC 6152 3) */
static void test_8bit_downgrade(void **st)
{
    static const char msg[] = "From: a@x.test\r\nSubject: hi\r\n\r\ncaf\xc3\xa9 = ok\r\n";
    static const char wire[] = "From: a@x.test\r\nSubject: hi\r\n"
                               "MIME-Version: 1.0\r\n"
                               "Content-Type: text/plain; charset=unknown-8bit\r\n"
                               "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                               "caf=C3=A9 =3D ok\r\n";
    struct tmsg t;
    tmsg_init(&t, "a@x.test", msg, sizeof(msg) - 1, "b@y.test", NULL, NULL);
    t.m.body_8bit = 1;
    const struct fs_step script[] = {
        {FS_SEND, "220 mx.test\r\n"},
        {FS_EXPECT, "EHLO client.test"},
        {FS_SEND, "250-mx.test\r\n250 PIPELINING\r\n"},
        {FS_EXPECT, "MAIL FROM:<a@x.test>"},
        {FS_EXPECT, "RCPT TO:<b@y.test>"},
        {FS_EXPECT, "DATA"},
        {FS_SEND, "250 ok\r\n250 ok\r\n354 go\r\n"},
        {FS_DATA, NULL},
        {FS_SEND, "250 done\r\n"},
        {FS_QUIT, NULL},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, NULL);
    struct drv d = {.nmsg = 1};
    d.msgs[0] = &t.m;
    struct smtpc_params p = base_params();
    run(&d, s->port, NULL, &p);
    pthread_join(s->th, NULL);
    s->th = 0;
    assert_string_equal(s->err, "");
    assert_int_equal(s->ndata, 1);
    assert_int_equal(s->datalen[0], sizeof(wire) - 1);
    assert_memory_equal(s->datas[0], wire, sizeof(wire) - 1);
    close(s->lfd);
    free(s->datas[0]);
    free(s);
    assert_int_equal(d.msg_status[0], 0);
    assert_int_equal(t.r[0].code, 250);
    tmsg_free(&t);
}

/* SIZE over the peer's limit, SMTPUTF8 and 8-bit content to a peer without support */
static void test_local_refusals(void **st)
{
    struct tmsg big, utf, eight, clean;
    tmsg_init(&big, "a@x.test", "x\r\n", 3, "b@y.test", NULL, NULL);
    big.m.size = 101;
    tmsg_init(&utf, "a@x.test", "x\r\n", 3, "b@y.test", NULL, NULL);
    utf.m.smtputf8 = 1;
    /* an 8-bit header field cannot be converted to 7bit without RFC 2047: refused */
    tmsg_init(&eight, "a@x.test", "Subject: caf\xc3\xa9\r\n\r\nx\r\n", 22, "b@y.test", NULL, NULL);
    eight.m.body_8bit = 1;
    tmsg_init(&clean, "a@x.test", "cafe\r\n", 6, "b@y.test", NULL, NULL);
    clean.m.body_8bit = 1; /* claimed, but the content is 7-bit: sent without BODY= */
    const struct fs_step script[] = {
        {FS_SEND, "220 mx.test\r\n"},
        {FS_EXPECT, "EHLO client.test"},
        {FS_SEND, "250-mx.test\r\n250 SIZE 100\r\n"},
        {FS_EXPECT, "MAIL FROM:<a@x.test> SIZE=6"},
        {FS_SEND, "250 ok\r\n"},
        {FS_EXPECT, "RCPT TO:<b@y.test>"},
        {FS_SEND, "250 ok\r\n"},
        {FS_EXPECT, "DATA"},
        {FS_SEND, "354 go\r\n"},
        {FS_DATA, NULL},
        {FS_SEND, "250 done\r\n"},
        {FS_QUIT, NULL},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, NULL);
    struct drv d = {.nmsg = 4};
    d.msgs[0] = &big.m;
    d.msgs[1] = &utf.m;
    d.msgs[2] = &eight.m;
    d.msgs[3] = &clean.m;
    struct smtpc_params p = base_params();
    run(&d, s->port, NULL, &p);
    fs_finish(s);
    assert_int_equal(d.msg_status[0], PST_EPERM);
    assert_int_equal(big.r[0].code, 552);
    assert_string_equal(big.r[0].enh, "5.3.4");
    assert_int_equal(d.msg_status[1], PST_EPERM);
    assert_string_equal(utf.r[0].enh, "5.6.7");
    assert_int_equal(d.msg_status[2], PST_EPERM);
    assert_string_equal(eight.r[0].enh, "5.6.3");
    assert_int_equal(eight.r[0].done, 1);
    assert_int_equal(d.msg_status[3], 0);
    assert_int_equal(clean.r[0].code, 250);
    tmsg_free(&big);
    tmsg_free(&utf);
    tmsg_free(&eight);
    tmsg_free(&clean);
}

/* a large message through the bounded output buffer, byte-exact */
static void test_big_message(void **st)
{
    size_t n = 3 * 1024 * 1024;
    char *c = malloc(n);
    char *w = malloc(2 * n + 8);
    assert_non_null(c);
    assert_non_null(w);
    for (size_t i = 0; i < n; i++)
        c[i] = (i % 77 == 76) ? '\n' : (i % 77 == 0) ? '.' : (char)('a' + i % 26);
    /* expected: LF -> CRLF, leading dot doubled, final CRLF added */
    size_t o = 0;
    int bol = 1;
    for (size_t i = 0; i < n; i++) {
        if (bol && c[i] == '.')
            w[o++] = '.';
        if (c[i] == '\n')
            w[o++] = '\r';
        w[o++] = c[i];
        bol = c[i] == '\n';
    }
    if (!bol) {
        w[o++] = '\r';
        w[o++] = '\n';
    }
    struct tmsg t;
    tmsg_init(&t, "a@x.test", c, n, "b@y.test", NULL, NULL);
    t.m.size = 0;
    const struct fs_step script[] = {
        {FS_SEND, "220 mx.test\r\n"},
        {FS_EXPECT, "EHLO client.test"},
        {FS_SEND, ehlo_full},
        {FS_EXPECT, "MAIL FROM:<a@x.test>"},
        {FS_EXPECT, "RCPT TO:<b@y.test>"},
        {FS_EXPECT, "DATA"},
        {FS_SEND, "250 ok\r\n250 ok\r\n354 go\r\n"},
        {FS_DATA, NULL},
        {FS_SEND, "250 ok\r\n"},
        {FS_QUIT, NULL},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, NULL);
    struct drv d = {.nmsg = 1};
    d.msgs[0] = &t.m;
    struct smtpc_params p = base_params();
    run(&d, s->port, NULL, &p);
    pthread_join(s->th, NULL);
    s->th = 0;
    assert_string_equal(s->err, "");
    assert_int_equal(s->ndata, 1);
    assert_int_equal(s->datalen[0], o);
    assert_memory_equal(s->datas[0], w, o);
    close(s->lfd);
    free(s->datas[0]);
    free(s);
    assert_int_equal(d.msg_status[0], 0);
    free(c);
    free(w);
    tmsg_free(&t);
}

/* ---- TLS ---- */

struct tlsfix {
    char dir[300], cert[350], key[350];
    SSL_CTX *sctx;
};

static void tlsfix_init(struct tlsfix *f)
{
    snprintf(f->dir, sizeof(f->dir), "%s/tlsXXXXXX", tmpdir);
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->cert, sizeof(f->cert), "%s/cert.pem", f->dir);
    snprintf(f->key, sizeof(f->key), "%s/key.pem", f->dir);
    assert_int_equal(tls_ensure_selfsigned(f->cert, f->key, "mx.test"), 0);
    f->sctx = tls_server_ctx_new(f->cert, f->key, "1.2");
    assert_non_null(f->sctx);
}

static void tlsfix_free(struct tlsfix *f)
{
    SSL_CTX_free(f->sctx);
    unlink(f->cert);
    unlink(f->key);
    rmdir(f->dir);
}

static void test_starttls_verify_auth(void **st)
{
    struct tlsfix f;
    tlsfix_init(&f);
    SSL_CTX *cctx = smtpc_tls_ctx_new(NULL);
    assert_non_null(cctx);
    struct tmsg t;
    tmsg_init(&t, "a@x.test", "hi\r\n", 4, "b@y.test", NULL, NULL);
    const struct fs_step script[] = {
        {FS_SEND, "220 mx.test\r\n"},
        {FS_EXPECT, "EHLO client.test"},
        {FS_SEND, "250-mx.test\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n"},
        {FS_EXPECT, "STARTTLS"},
        {FS_SEND, "220 2.0.0 go\r\n"},
        {FS_TLS, NULL},
        {FS_EXPECT, "EHLO client.test"},
        {FS_SEND, "250-mx.test\r\n250-PIPELINING\r\n250 AUTH LOGIN PLAIN\r\n"},
        {FS_EXPECT, "AUTH PLAIN AHVzZXIAcGFzcw=="},
        {FS_SEND, "235 2.7.0 ok\r\n"},
        {FS_EXPECT, "MAIL FROM:<a@x.test>"},
        {FS_EXPECT, "RCPT TO:<b@y.test>"},
        {FS_EXPECT, "DATA"},
        {FS_SEND, "250 ok\r\n250 ok\r\n354 go\r\n"},
        {FS_DATA, NULL},
        {FS_SEND, "250 ok\r\n"},
        {FS_QUIT, NULL},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, f.sctx);
    struct drv d = {.nmsg = 1};
    d.msgs[0] = &t.m;
    struct smtpc_params p = base_params();
    p.tls_policy = "verify";
    p.ca_file = f.cert;
    p.server_name = "mx.test";
    p.auth_user = "user";
    p.auth_pass = "pass";
    run(&d, s->port, cctx, &p);
    fs_finish(s);
    assert_int_equal(d.conn_status, 0);
    assert_true(d.tls_seen);
    assert_int_equal(d.msg_status[0], 0);
    assert_int_equal(t.r[0].code, 250);
    tmsg_free(&t);
    SSL_CTX_free(cctx);
    tlsfix_free(&f);
}

static void test_starttls_wrong_name(void **st)
{
    struct tlsfix f;
    tlsfix_init(&f);
    SSL_CTX *cctx = smtpc_tls_ctx_new(f.cert);
    assert_non_null(cctx);
    const struct fs_step script[] = {
        {FS_SEND, "220 mx.test\r\n"},
        {FS_EXPECT, "EHLO client.test"},
        {FS_SEND, "250-mx.test\r\n250 STARTTLS\r\n"},
        {FS_EXPECT, "STARTTLS"},
        {FS_SEND, "220 2.0.0 go\r\n"},
        {FS_TLS, "fail-ok"},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, f.sctx);
    struct drv d = {.nmsg = 0};
    struct smtpc_params p = base_params();
    p.tls_policy = "verify";
    p.server_name = "other.test";
    run(&d, s->port, cctx, &p);
    fs_finish(s);
    assert_int_equal(d.conn_status, PST_EAGAIN);
    assert_true(strstr(d.conn_why, "tls failed") != NULL);
    SSL_CTX_free(cctx);
    tlsfix_free(&f);
}

/* encrypt: TLS without verification; also: AUTH creds but the server offers no AUTH */
static void test_starttls_encrypt(void **st)
{
    struct tlsfix f;
    tlsfix_init(&f);
    SSL_CTX *cctx = smtpc_tls_ctx_new(NULL);
    assert_non_null(cctx);
    const struct fs_step script[] = {
        {FS_SEND, "220 mx.test\r\n"},
        {FS_EXPECT, "EHLO client.test"},
        {FS_SEND, "250-mx.test\r\n250 STARTTLS\r\n"},
        {FS_EXPECT, "STARTTLS"},
        {FS_SEND, "220 2.0.0 go\r\n"},
        {FS_TLS, NULL},
        {FS_EXPECT, "EHLO client.test"},
        {FS_SEND, "250 mx.test\r\n"},
        {FS_QUIT, NULL},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, f.sctx);
    struct drv d = {.nmsg = 0};
    struct smtpc_params p = base_params();
    p.tls_policy = "encrypt";
    run(&d, s->port, cctx, &p);
    fs_finish(s);
    assert_int_equal(d.conn_status, 0);
    assert_true(d.tls_seen);
    SSL_CTX_free(cctx);
    tlsfix_free(&f);
}

static void test_tls_required_not_offered(void **st)
{
    SSL_CTX *cctx = smtpc_tls_ctx_new(NULL);
    assert_non_null(cctx);
    const struct fs_step script[] = {
        {FS_SEND, "220 mx.test\r\n"},
        {FS_EXPECT, "EHLO client.test"},
        {FS_SEND, "250-mx.test\r\n250 PIPELINING\r\n"},
        {FS_WAIT, NULL},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, NULL);
    struct drv d = {.nmsg = 0};
    struct smtpc_params p = base_params();
    p.tls_policy = "encrypt";
    run(&d, s->port, cctx, &p);
    fs_finish(s);
    assert_int_equal(d.conn_status, PST_EAGAIN);
    assert_true(strstr(d.conn_why, "TLS required") != NULL);
    SSL_CTX_free(cctx);
}

/* STARTTLS 220 followed by plaintext (injection): refused */
static void test_starttls_injection(void **st)
{
    SSL_CTX *cctx = smtpc_tls_ctx_new(NULL);
    assert_non_null(cctx);
    const struct fs_step script[] = {
        {FS_SEND, "220 mx.test\r\n"},
        {FS_EXPECT, "EHLO client.test"},
        {FS_SEND, "250-mx.test\r\n250 STARTTLS\r\n"},
        {FS_EXPECT, "STARTTLS"},
        {FS_SEND, "220 go\r\n250 injected\r\n"},
        {FS_WAIT, NULL},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, NULL);
    struct drv d = {.nmsg = 0};
    struct smtpc_params p = base_params();
    p.tls_policy = "may";
    run(&d, s->port, cctx, &p);
    fs_finish(s);
    assert_int_equal(d.conn_status, PST_EAGAIN);
    assert_true(strstr(d.conn_why, "after the STARTTLS") != NULL);
    SSL_CTX_free(cctx);
}

/* policy "may": a refused STARTTLS means going on in plain text */
static void test_starttls_may_refused(void **st)
{
    SSL_CTX *cctx = smtpc_tls_ctx_new(NULL);
    assert_non_null(cctx);
    const struct fs_step script[] = {
        {FS_SEND, "220 mx.test\r\n"},
        {FS_EXPECT, "EHLO client.test"},
        {FS_SEND, "250-mx.test\r\n250 STARTTLS\r\n"},
        {FS_EXPECT, "STARTTLS"},
        {FS_SEND, "454 4.7.0 TLS not available\r\n"},
        {FS_QUIT, NULL},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, NULL);
    struct drv d = {.nmsg = 0};
    struct smtpc_params p = base_params();
    p.tls_policy = "may";
    run(&d, s->port, cctx, &p);
    fs_finish(s);
    assert_int_equal(d.conn_status, 0);
    assert_false(d.tls_seen);
    SSL_CTX_free(cctx);
}

/* 421 to a RCPT (lock-step): connection-level deferral; the rest has no answer */
static void test_rcpt_421(void **st)
{
    struct tmsg t;
    tmsg_init(&t, "a@x.test", "x\r\n", 3, "b@y.test", "c@y.test", NULL);
    const struct fs_step script[] = {
        {FS_SEND, "220 mx.test\r\n"},
        {FS_EXPECT, "EHLO client.test"},
        {FS_SEND, "250 mx.test\r\n"},
        {FS_EXPECT, "MAIL FROM:<a@x.test>"},
        {FS_SEND, "250 ok\r\n"},
        {FS_EXPECT, "RCPT TO:<b@y.test>"},
        {FS_SEND, "250 ok\r\n"},
        {FS_EXPECT, "RCPT TO:<c@y.test>"},
        {FS_SEND, "421 4.3.2 shutting down\r\n"},
        {FS_WAIT, NULL},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, NULL);
    struct drv d = {.nmsg = 1};
    d.msgs[0] = &t.m;
    struct smtpc_params p = base_params();
    run(&d, s->port, NULL, &p);
    fs_finish(s);
    assert_int_equal(d.msg_status[0], PST_EAGAIN);
    assert_true(strstr(d.msg_why[0], "421 4.3.2") != NULL);
    assert_int_equal(t.r[0].done, 0);
    assert_int_equal(t.r[1].done, 0);
    tmsg_free(&t);
}

/* ---- hostile / broken servers ---- */

static void expect_conn_fail(const struct fs_step *script, int status, const char *why_part,
                             struct smtpc_params *p)
{
    struct fs *s = fs_start(script, NULL);
    struct drv d = {.nmsg = 0};
    run(&d, s->port, NULL, p);
    fs_finish(s);
    assert_int_equal(d.conn_status, status);
    if (!strstr(d.conn_why, why_part))
        fail_msg("why '%s' lacks '%s'", d.conn_why, why_part);
}

static void test_garbage(void **st)
{
    const struct fs_step script[] = {
        {FS_SEND, "220 mx.test\r\n"},
        {FS_EXPECT, "EHLO client.test"},
        {FS_SEND, "hello there\r\n"},
        {FS_WAIT, NULL},
        {FS_END, NULL},
    };
    struct smtpc_params p = base_params();
    expect_conn_fail(script, PST_EAGAIN, "bad reply in state EHLO: syntax error", &p);

    const struct fs_step mixed[] = {
        {FS_SEND, "220-mx.test\r\n221 bye\r\n"},
        {FS_WAIT, NULL},
        {FS_END, NULL},
    };
    expect_conn_fail(mixed, PST_EAGAIN, "syntax error", &p);
}

static void test_overlong(void **st)
{
    char *big = malloc(SMTP_REPLY_LINE_MAX + 100);
    assert_non_null(big);
    memcpy(big, "250-", 4);
    memset(big + 4, 'x', SMTP_REPLY_LINE_MAX + 50);
    memcpy(big + SMTP_REPLY_LINE_MAX + 54, "\r\n", 3);
    const struct fs_step script[] = {
        {FS_SEND, "220 mx.test\r\n"},
        {FS_EXPECT, "EHLO client.test"},
        {FS_SEND, big},
        {FS_WAIT, NULL},
        {FS_END, NULL},
    };
    struct smtpc_params p = base_params();
    expect_conn_fail(script, PST_EAGAIN, "too long", &p);
    free(big);
}

static void test_silent_server(void **st)
{
    const struct fs_step script[] = {{FS_WAIT, NULL}, {FS_END, NULL}};
    struct smtpc_params p = base_params();
    p.greeting_timeout = 1;
    expect_conn_fail(script, PST_EAGAIN, "timeout in state GREETING", &p);

    const struct fs_step script2[] = {
        {FS_SEND, "220 mx.test\r\n"},
        {FS_EXPECT, "EHLO client.test"},
        {FS_WAIT, NULL},
        {FS_END, NULL},
    };
    p.command_timeout = 1;
    expect_conn_fail(script2, PST_EAGAIN, "timeout in state EHLO", &p);
}

static void test_greeting_5xx(void **st)
{
    const struct fs_step script[] = {
        {FS_SEND, "554 5.7.1 go away\r\n"}, {FS_WAIT, NULL}, {FS_END, NULL}};
    struct smtpc_params p = base_params();
    expect_conn_fail(script, PST_EPERM, "554 5.7.1 go away", &p);
    const struct fs_step script2[] = {{FS_SEND, "421 busy\r\n"}, {FS_CLOSE, NULL}, {FS_END, NULL}};
    expect_conn_fail(script2, PST_EAGAIN, "421", &p);
    const struct fs_step script3[] = {{FS_CLOSE, NULL}, {FS_END, NULL}};
    expect_conn_fail(script3, PST_EAGAIN, "connection closed by server in state GREETING", &p);
}

static void test_drop_mid_data(void **st)
{
    size_t n = 2 * 1024 * 1024;
    char *c = malloc(n);
    assert_non_null(c);
    for (size_t i = 0; i < n; i++)
        c[i] = (i % 60 == 59) ? '\n' : 'z';
    struct tmsg t;
    tmsg_init(&t, "a@x.test", c, n, "b@y.test", NULL, NULL);
    const struct fs_step script[] = {
        {FS_SEND, "220 mx.test\r\n"},
        {FS_EXPECT, "EHLO client.test"},
        {FS_SEND, ehlo_full},
        {FS_EXPECT, "MAIL FROM:<a@x.test> SIZE=2097152"},
        {FS_EXPECT, "RCPT TO:<b@y.test>"},
        {FS_EXPECT, "DATA"},
        {FS_SEND, "250 ok\r\n250 ok\r\n354 go\r\n"},
        {FS_DROP, NULL},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, NULL);
    struct drv d = {.nmsg = 1};
    d.msgs[0] = &t.m;
    struct smtpc_params p = base_params();
    run(&d, s->port, NULL, &p);
    fs_finish(s);
    assert_int_equal(d.conn_status, 0);
    assert_int_equal(d.msg_status[0], PST_EAGAIN);
    assert_true(strstr(d.msg_why[0], "connection") != NULL);
    assert_int_equal(t.r[0].done, 0); /* accepted at RCPT, no final answer: deferred */
    free(c);
    tmsg_free(&t);
}

static void test_bad_params(void **st)
{
    struct event_base *b = event_base_new();
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(25)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct smtpc_params p = base_params();
    p.helo_name = "bad name\r\nRSET";
    assert_null(smtpc_connect(b, (struct sockaddr *)&sin, sizeof(sin), NULL, &p, NULL, NULL));
    p = base_params();
    p.tls_policy = "sometimes";
    assert_null(smtpc_connect(b, (struct sockaddr *)&sin, sizeof(sin), NULL, &p, NULL, NULL));
    p = base_params();
    p.tls_policy = "verify"; /* needs server_name */
    assert_null(smtpc_connect(b, (struct sockaddr *)&sin, sizeof(sin), NULL, &p, NULL, NULL));
    event_base_free(b);
}

/* a recipient with CR/LF is refused before anything is sent */
static void test_injection_refused(void **st)
{
    struct tmsg t;
    tmsg_init(&t, "a@x.test", "x\r\n", 3, "b@y.test\r\nRCPT TO:<evil@x>", NULL, NULL);
    const struct fs_step script[] = {
        {FS_SEND, "220 mx.test\r\n"},
        {FS_EXPECT, "EHLO client.test"},
        {FS_SEND, ehlo_full},
        {FS_QUIT, NULL},
        {FS_END, NULL},
    };
    struct fs *s = fs_start(script, NULL);
    struct drv d = {.nmsg = 1};
    d.msgs[0] = &t.m;
    struct smtpc_params p = base_params();
    run(&d, s->port, NULL, &p);
    fs_finish(s);
    assert_int_equal(d.msg_status[0], 1000 + PST_EINVAL);
    tmsg_free(&t);
}

/* ---- end to end with Postfix's smtp-sink ---- */

static void test_smtp_sink(void **st)
{
    const char *sink = "/usr/sbin/smtp-sink";
    if (access(sink, X_OK) != 0)
        skip();
    unsigned port;
    int lfd = fs_listen(&port);
    close(lfd); /* smtp-sink binds it again (small race, fine for a test) */
    char spec[64];
    snprintf(spec, sizeof(spec), "127.0.0.1:%u", port);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int dn = open("/dev/null", O_WRONLY);
        if (dn >= 0) {
            dup2(dn, 1);
            dup2(dn, 2);
        }
        if (getuid() == 0) /* smtp-sink refuses to run as root without -u */
            execl(sink, "smtp-sink", "-u", "nobody", "-c", spec, "10", (char *)NULL);
        else
            execl(sink, "smtp-sink", "-c", spec, "10", (char *)NULL);
        _exit(127);
    }
    /* wait until it listens */
    int up = 0;
    for (int i = 0; i < 100 && !up; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        up = connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
        close(fd);
        if (!up)
            usleep(50 * 1000);
    }
    if (!up) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        skip();
    }
    struct tmsg t1, t2;
    tmsg_init(&t1, "a@x.test", dotmsg, sizeof(dotmsg) - 1, "b@y.test", "c@y.test", NULL);
    t1.m.body_8bit = 1;
    tmsg_init(&t2, "", "Subject: second\r\n\r\nbody\r\n", 25, "d@y.test", NULL, NULL);
    struct drv d = {.nmsg = 2};
    d.msgs[0] = &t1.m;
    d.msgs[1] = &t2.m;
    struct smtpc_params p = base_params();
    p.tls_policy = "may";
    run(&d, port, NULL, &p);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    if (d.conn_status != 0)
        fail_msg("connect to smtp-sink: %s", d.conn_why);
    assert_int_equal(d.msg_status[0], 0);
    assert_int_equal(d.msg_status[1], 0);
    assert_int_equal(t1.r[0].code, 250);
    assert_int_equal(t1.r[1].code, 250);
    assert_int_equal(t2.r[0].code, 250);
    tmsg_free(&t1);
    tmsg_free(&t2);
}

static int setup_all(void **st)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof(tmpdir), "%s/smtpcXXXXXX", base && base[0] ? base : "/tmp");
    if (!mkdtemp(tmpdir))
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static int teardown_all(void **st)
{
    rmdir(tmpdir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelining),
        cmocka_unit_test(test_lockstep_reuse),
        cmocka_unit_test(test_mail_552),
        cmocka_unit_test(test_local_refusals),
        cmocka_unit_test(test_8bit_downgrade),
        cmocka_unit_test(test_big_message),
        cmocka_unit_test(test_starttls_verify_auth),
        cmocka_unit_test(test_starttls_wrong_name),
        cmocka_unit_test(test_starttls_encrypt),
        cmocka_unit_test(test_tls_required_not_offered),
        cmocka_unit_test(test_starttls_injection),
        cmocka_unit_test(test_starttls_may_refused),
        cmocka_unit_test(test_rcpt_421),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_overlong),
        cmocka_unit_test(test_silent_server),
        cmocka_unit_test(test_greeting_5xx),
        cmocka_unit_test(test_drop_mid_data),
        cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_injection_refused),
        cmocka_unit_test(test_smtp_sink),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
