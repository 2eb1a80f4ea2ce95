/*
 * test_pop3d_session.c - real POP3 sessions over a socketpair against a
 * pop3d server struct on a private event loop: login (USER/PASS, AUTH
 * PLAIN), the TRANSACTION commands, UPDATE only on QUIT, the mailbox lock,
 * wrong-state and malformed commands, long lines, pipelining, failed-login
 * limits and the refusal of plaintext logins; APOP on (timestamp in the
 * greeting, unique per session, not in CAPA, right / wrong / foreign
 * digests, users without a secret, failure limit, refused before TLS) and
 * off (no timestamp, APOP refused).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "../testutil.h"
#include "lib/log.h"
#include "lib/userdb.h"
#include "lib/db.h"
#include "pop3/pop3_apop.h"
#include "pop3/pop3d_session.h"

#define T_WAIT_SEC 30 /* safety bound for a reply that never comes; not a timing assertion */

struct fx {
    char dir[256];
    char maildir[512];
    struct cfg *cfg;
    struct event_base *base;
    struct pop3d_server srv;
    int srv_ok;
};

struct client {
    struct fx *f;
    int fd;
    char buf[1 << 21];
    size_t len;
    int eof;
};

static struct cfg *load_cfg(const char *dir, const char *extra)
{
    char text[2048], err[256];
    snprintf(text, sizeof text,
             "[server]\nhostname = pop.test\nvar_dir = %s/var\n"
             "[local]\nmail_dir = %s/mail\n"
             "[pop3]\nauth_failure_delay = 0\nmax_auth_failures = 2\n%s",
             dir, dir, extra);
    struct cfg *c = cfg_load_string(text, "test", err, sizeof err);
    if (!c)
        fprintf(stderr, "cfg: %s\n", err);
    return c;
}

static int fx_start(void **state, const char *extra)
{
    struct fx *f = calloc(1, sizeof *f);
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/pop3d.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(f->dir))
        return -1;
    char p[600];
    snprintf(p, sizeof p, "%s/var", f->dir);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/mail", f->dir);
    mkdir(p, 0700);
    snprintf(f->maildir, sizeof f->maildir, "%s/mail/alice", f->dir);
    f->cfg = load_cfg(f->dir, extra);
    if (!f->cfg)
        return -1;
    struct userdb *db = NULL;
    if (userdb_open(f->cfg->db_path, &db) < 0 || userdb_add(db, "alice", "alice pw") < 0 ||
        userdb_add(db, "bob", "bob-pw") < 0)
        return -1;
    userdb_close(&db);
    f->base = event_base_new();
    if (!f->base || pop3d_server_init(&f->srv, f->cfg, f->base, NULL) < 0)
        return -1;
    f->srv_ok = 1;
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return fx_start(state, "plaintext_on_loopback = yes\n");
}

static int setup_noplain(void **state)
{
    return fx_start(state, "plaintext_on_loopback = no\n");
}

/* setup_apop* - APOP on; alice has the APOP secret "alice apop secret", bob has none. */
static int fx_start_apop(void **state, const char *extra)
{
    if (fx_start(state, extra) < 0)
        return -1;
    struct fx *f = *state;
    struct db *db = NULL;
    struct pop3u_key key;
    if (db_open(f->cfg->db_path, &db) < 0 || pop3u_key_load(f->cfg->pop3_upstream_key, 1, &key) < 0)
        return -1;
    int rc = pop3_apop_set(db, &key, "alice", "alice apop secret", 17);
    pop3u_key_wipe(&key);
    db_close(&db);
    return rc;
}

static int setup_apop(void **state)
{
    return fx_start_apop(state, "plaintext_on_loopback = yes\napop = yes\n");
}

static int setup_apop_noplain(void **state)
{
    return fx_start_apop(state, "plaintext_on_loopback = no\napop = yes\n");
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->srv_ok)
        pop3d_server_fini(&f->srv);
    if (f->base)
        event_base_free(f->base);
    cfg_free(&f->cfg);
    tu_rm_rf(f->dir);
    free(f);
    return 0;
}

static void put_msg(struct fx *f, const char *name, const char *content)
{
    char p[1024];
    snprintf(p, sizeof p, "%s", f->maildir);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/new", f->maildir);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/new/%s", f->maildir, name);
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    fputs(content, fp);
    fclose(fp);
}

static int msg_exists(struct fx *f, const char *name)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/new/%s", f->maildir, name);
    return access(p, F_OK) == 0;
}

static struct client *connect_client(struct fx *f)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    struct client *c = calloc(1, sizeof *c);
    c->f = f;
    c->fd = sv[1];
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_family = AF_UNIX;
    pop3d_accept(&f->srv, sv[0], (struct sockaddr *)&ss, sizeof(sa_family_t), POP3D_LISTEN_POP3);
    return c;
}

static void client_close(struct client **c)
{
    close((*c)->fd);
    free(*c);
    *c = NULL;
}

static void client_send(struct client *c, const char *s)
{
    size_t len = strlen(s), off = 0;
    time_t deadline = time(NULL) + T_WAIT_SEC;
    while (off < len && time(NULL) < deadline) {
        ssize_t w = write(c->fd, s + off, len - off);
        if (w > 0)
            off += (size_t)w;
        if (w < 0 && errno != EAGAIN)
            return; /* the server closed; the caller checks the replies */
        event_base_loop(c->f->base, EVLOOP_NONBLOCK);
    }
    assert_int_equal(off, len);
}

/* pump - run the loop and read what the server sent; 1 if anything arrived. */
static int pump(struct client *c)
{
    event_base_loop(c->f->base, EVLOOP_NONBLOCK);
    ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
    if (r > 0) {
        c->len += (size_t)r;
        c->buf[c->len] = '\0';
        return 1;
    }
    if (r == 0)
        c->eof = 1;
    return 0;
}

/* wait_for - until buf holds `marker` (after `from`), or EOF; returns the offset past it or 0. */
static size_t wait_for(struct client *c, size_t from, const char *marker)
{
    time_t deadline = time(NULL) + T_WAIT_SEC;
    while (time(NULL) < deadline) {
        char *p = c->len > from ? strstr(c->buf + from, marker) : NULL;
        if (p)
            return (size_t)(p - c->buf) + strlen(marker);
        if (c->eof)
            return 0;
        if (!pump(c)) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    return 0;
}

/* line - the next reply line (without CRLF), consumed from the buffer. */
static char *line(struct client *c, char *out, size_t outsz)
{
    size_t end = wait_for(c, 0, "\r\n");
    assert_true(end > 0);
    size_t n = end - 2 < outsz - 1 ? end - 2 : outsz - 1;
    memcpy(out, c->buf, n);
    out[n] = '\0';
    memmove(c->buf, c->buf + end, c->len - end + 1);
    c->len -= end;
    return out;
}

/* multi - a whole multi-line reply including the first line, consumed. Caller frees. */
static char *multi(struct client *c)
{
    size_t end = wait_for(c, 0, "\r\n.\r\n");
    assert_true(end > 0);
    char *s = malloc(end + 1);
    memcpy(s, c->buf, end);
    s[end] = '\0';
    memmove(c->buf, c->buf + end, c->len - end + 1);
    c->len -= end;
    return s;
}

static void expect(struct client *c, const char *cmd, const char *prefix)
{
    char l[1024];
    if (cmd)
        client_send(c, cmd);
    line(c, l, sizeof l);
    if (strncmp(l, prefix, strlen(prefix)) != 0)
        fail_msg("after %s expected '%s', got '%s'", cmd ? cmd : "(greeting)", prefix, l);
}

static void wait_eof(struct client *c)
{
    time_t deadline = time(NULL) + T_WAIT_SEC;
    while (!c->eof && time(NULL) < deadline) {
        if (!pump(c)) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    assert_true(c->eof);
}

static void login(struct client *c)
{
    expect(c, NULL, "+OK");
    expect(c, "USER alice\r\n", "+OK");
    expect(c, "PASS alice pw\r\n", "+OK Logged in");
}

/* ---- tests ---- */

static void test_full_session(void **state)
{
    struct fx *f = *state;
    put_msg(f, "1700000001.Qa.h,S=21", "Subject: a\n\nhello\n.x\n");
    put_msg(f, "1700000002.Qb.h", "Subject: b\n\nbody b\n");
    struct client *c = connect_client(f);
    expect(c, NULL, "+OK pop.test POP3 server ready");
    client_send(c, "CAPA\r\n");
    char *m = multi(c);
    assert_non_null(strstr(m, "\r\nUSER\r\n"));
    assert_non_null(strstr(m, "\r\nSASL PLAIN\r\n"));
    assert_non_null(strstr(m, "\r\nPIPELINING\r\n"));
    assert_non_null(strstr(m, "\r\nRESP-CODES\r\n"));
    assert_null(strstr(m, "STLS")); /* no TLS context here */
    free(m);
    expect(c, "STAT\r\n", "-ERR Not logged in");
    expect(c, "USER alice\r\n", "+OK");
    expect(c, "PASS alice pw\r\n", "+OK Logged in, 2 messages (47 octets)");
    expect(c, "STAT\r\n", "+OK 2 47");
    client_send(c, "LIST\r\n");
    m = multi(c);
    assert_string_equal(m, "+OK 2 messages (47 octets)\r\n1 25\r\n2 22\r\n.\r\n");
    free(m);
    client_send(c, "UIDL\r\n");
    m = multi(c);
    assert_non_null(strstr(m, "\r\n1 1700000001.Qa.h,S=21\r\n2 1700000002.Qb.h\r\n.\r\n"));
    free(m);
    expect(c, "LIST 2\r\n", "+OK 2 22");
    expect(c, "UIDL 1\r\n", "+OK 1 1700000001.Qa.h,S=21");
    client_send(c, "RETR 1\r\n");
    m = multi(c);
    assert_string_equal(m, "+OK 25 octets\r\nSubject: a\r\n\r\nhello\r\n..x\r\n.\r\n");
    free(m);
    client_send(c, "TOP 2 0\r\n");
    m = multi(c);
    assert_string_equal(m, "+OK Top of message follows\r\nSubject: b\r\n\r\n.\r\n");
    free(m);
    expect(c, "DELE 1\r\n", "+OK");
    expect(c, "DELE 1\r\n", "-ERR Message already deleted");
    expect(c, "RETR 1\r\n", "-ERR Message already deleted");
    expect(c, "STAT\r\n", "+OK 1 22");
    expect(c, "RSET\r\n", "+OK Maildrop has 2 messages");
    expect(c, "DELE 2\r\n", "+OK");
    expect(c, "NOOP\r\n", "+OK");
    expect(c, "USER bob\r\n", "-ERR Command not valid now");
    assert_true(msg_exists(f, "1700000002.Qb.h")); /* not before UPDATE */
    expect(c, "QUIT\r\n", "+OK Bye, 1 messages deleted");
    wait_eof(c);
    assert_false(msg_exists(f, "1700000002.Qb.h"));
    assert_true(msg_exists(f, "1700000001.Qa.h,S=21"));
    client_close(&c);
}

static void test_drop_deletes_nothing(void **state)
{
    struct fx *f = *state;
    put_msg(f, "1.a", "a\n");
    struct client *c = connect_client(f);
    login(c);
    expect(c, "DELE 1\r\n", "+OK");
    client_close(&c); /* connection dropped: no UPDATE */
    for (int i = 0; i < 20; i++)
        event_base_loop(f->base, EVLOOP_NONBLOCK);
    assert_true(msg_exists(f, "1.a"));
    /* the lock is free again and the message is still there */
    c = connect_client(f);
    login(c);
    expect(c, "STAT\r\n", "+OK 1 3");
    expect(c, "QUIT\r\n", "+OK");
    client_close(&c);
    assert_true(msg_exists(f, "1.a"));
}

static void test_lock_in_use(void **state)
{
    struct fx *f = *state;
    struct client *a = connect_client(f);
    login(a);
    struct client *b = connect_client(f);
    expect(b, NULL, "+OK");
    expect(b, "USER alice\r\n", "+OK");
    expect(b, "PASS alice pw\r\n", "-ERR [IN-USE]");
    expect(b, "STAT\r\n", "-ERR Not logged in"); /* still in AUTHORIZATION */
    expect(a, "QUIT\r\n", "+OK");
    wait_eof(a);
    expect(b, "USER alice\r\n", "+OK");
    expect(b, "PASS alice pw\r\n", "+OK Logged in");
    client_close(&a);
    client_close(&b);
}

static void test_bad_input(void **state)
{
    struct fx *f = *state;
    put_msg(f, "1.a", "a\n");
    struct client *c = connect_client(f);
    login(c);
    expect(c, "RETR 2\r\n", "-ERR No such message");
    expect(c, "RETR 0\r\n", "-ERR Syntax error");
    expect(c, "RETR -1\r\n", "-ERR Syntax error");
    expect(c, "RETR 99999999999\r\n", "-ERR Syntax error");
    expect(c, "TOP 1\r\n", "-ERR Syntax error");
    expect(c, "FOO\r\n", "-ERR Unknown command");
    expect(c, "PASS x\r\n", "-ERR Command not valid now");
    /* an over-long line is refused and the session goes on */
    char big[3000];
    memset(big, 'A', sizeof big - 3);
    memcpy(big + sizeof big - 3, "\r\n", 3);
    expect(c, big, "-ERR Line too long");
    expect(c, "STAT\r\n", "+OK 1 3");
    /* NUL byte */
    client_send(c, "NO");
    assert_int_equal(write(c->fd, "\0", 1), 1);
    expect(c, "OP\r\n", "-ERR Syntax error");
    /* pipelined commands are answered in order */
    client_send(c, "NOOP\r\nSTAT\r\nLIST 1\r\nUIDL 1\r\nNOOP\r\n");
    expect(c, NULL, "+OK");
    expect(c, NULL, "+OK 1 3");
    expect(c, NULL, "+OK 1 3");
    expect(c, NULL, "+OK 1 1.a");
    expect(c, NULL, "+OK");
    expect(c, "QUIT\r\n", "+OK");
    client_close(&c);
}

static void test_pipelined_flood(void **state)
{
    struct fx *f = *state;
    put_msg(f, "1.a", "hello\n");
    struct client *c = connect_client(f);
    login(c);
    /* many RETRs at once: replies come in order, bounded output buffering */
    enum { N = 300 };
    static char cmds[N * 8 + 8];
    size_t o = 0;
    for (int i = 0; i < N; i++)
        o += (size_t)snprintf(cmds + o, sizeof cmds - o, "RETR 1\r\n");
    client_send(c, cmds);
    for (int i = 0; i < N; i++) {
        char *m = multi(c);
        assert_string_equal(m, "+OK 7 octets\r\nhello\r\n.\r\n");
        free(m);
    }
    expect(c, "QUIT\r\n", "+OK");
    client_close(&c);
}

static void test_big_message(void **state)
{
    struct fx *f = *state;
    size_t n = 1 << 20;
    char *content = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        content[i] = i % 64 == 63 ? '\n' : 'a' + (char)(i % 26);
    content[n] = '\0';
    put_msg(f, "1.big", content);
    struct client *c = connect_client(f);
    login(c);
    client_send(c, "RETR 1\r\n");
    char *m = multi(c);
    char want[64];
    snprintf(want, sizeof want, "+OK %zu octets\r\n", n + n / 64);
    assert_memory_equal(m, want, strlen(want));
    assert_int_equal(strlen(m), strlen(want) + n + n / 64 + 3);
    free(m);
    free(content);
    expect(c, "QUIT\r\n", "+OK");
    client_close(&c);
}

static void test_auth_plain(void **state)
{
    struct fx *f = *state;
    struct client *c = connect_client(f);
    expect(c, NULL, "+OK");
    expect(c, "AUTH CRAM-MD5\r\n", "-ERR");
    expect(c, "AUTH PLAIN\r\n", "+ ");
    expect(c, "*\r\n", "-ERR [AUTH] Authentication cancelled");
    expect(c, "AUTH PLAIN\r\n", "+ ");
    expect(c, "!!!notbase64\r\n", "-ERR [AUTH]");
    /* "\0alice\0alice pw" */
    expect(c, "AUTH PLAIN\r\n", "+ ");
    expect(c, "AGFsaWNlAGFsaWNlIHB3\r\n", "+OK Logged in");
    expect(c, "QUIT\r\n", "+OK");
    client_close(&c);
    c = connect_client(f);
    expect(c, NULL, "+OK");
    expect(c, "AUTH PLAIN AGFsaWNlAGFsaWNlIHB3\r\n", "+OK Logged in");
    expect(c, "QUIT\r\n", "+OK");
    client_close(&c);
}

static void test_failed_logins(void **state)
{
    struct fx *f = *state;
    struct client *c = connect_client(f);
    expect(c, NULL, "+OK");
    expect(c, "PASS x\r\n", "-ERR USER first");
    expect(c, "USER alice\r\n", "+OK");
    expect(c, "PASS wrong\r\n", "-ERR [AUTH] Authentication failed");
    expect(c, "USER nosuchuser\r\n", "+OK");
    expect(c, "PASS wrong\r\n", "-ERR [AUTH] Authentication failed, too many failures");
    wait_eof(c);
    client_close(&c);
    /* USER then something else: PASS no longer applies */
    c = connect_client(f);
    expect(c, NULL, "+OK");
    expect(c, "USER alice\r\n", "+OK");
    expect(c, "NOOP\r\n", "-ERR Not logged in");
    expect(c, "PASS alice pw\r\n", "-ERR USER first");
    expect(c, "APOP alice 0123456789abcdef0123456789abcdef\r\n", "-ERR [AUTH] APOP not available");
    /* user@local-domain works, upper case too */
    expect(c, "USER ALICE@pop.test\r\n", "+OK");
    expect(c, "PASS alice pw\r\n", "+OK Logged in");
    client_close(&c);
}

static void test_plaintext_refused(void **state)
{
    struct fx *f = *state;
    struct client *c = connect_client(f);
    expect(c, NULL, "+OK");
    client_send(c, "CAPA\r\n");
    char *m = multi(c);
    assert_null(strstr(m, "USER"));
    assert_null(strstr(m, "SASL"));
    free(m);
    expect(c, "USER alice\r\n", "-ERR [AUTH] Plaintext authentication disallowed");
    expect(c, "AUTH PLAIN AGFsaWNlAGFsaWNlIHB3\r\n", "-ERR [AUTH] Plaintext");
    expect(c, "STLS\r\n", "-ERR [SYS/PERM] TLS not available");
    expect(c, "QUIT\r\n", "+OK Bye");
    wait_eof(c);
    client_close(&c);
}

static void test_too_many_errors(void **state)
{
    struct fx *f = *state;
    struct client *c = connect_client(f);
    expect(c, NULL, "+OK");
    for (int i = 0; i < 100 && !c->eof; i++) {
        client_send(c, "JUNK\r\n");
        pump(c);
    }
    wait_eof(c);
    assert_non_null(strstr(c->buf, "-ERR Unknown command"));
    client_close(&c);
}

/* ---- APOP ---- */

/* greeting_ts - read the greeting; copy its "<...>" timestamp into ts ("" if none). */
static void greeting_ts(struct client *c, char *ts, size_t tssz)
{
    char l[1024];
    line(c, l, sizeof l);
    assert_true(strncmp(l, "+OK", 3) == 0);
    ts[0] = '\0';
    char *lt = strchr(l, '<'), *gt = lt ? strchr(lt, '>') : NULL;
    if (!lt || !gt)
        return;
    size_t n = (size_t)(gt - lt) + 1;
    assert_true(n < tssz);
    memcpy(ts, lt, n);
    ts[n] = '\0';
    assert_null(strchr(gt + 1, '<')); /* exactly one timestamp */
}

static void apop_cmd(char *out, size_t outsz, const char *user, const char *ts, const char *secret)
{
    char hex[POP3_APOP_DIGEST_HEX + 1];
    assert_int_equal(pop3_apop_digest(ts, secret, strlen(secret), hex), 0);
    assert_true(snprintf(out, outsz, "APOP %s %s\r\n", user, hex) < (int)outsz);
}

static void test_apop_login(void **state)
{
    struct fx *f = *state;
    put_msg(f, "1700000001.Qa.h", "Subject: a\n\nhello\n");
    struct client *c = connect_client(f);
    char ts[POP3_APOP_TIMESTAMP_MAX], ts2[POP3_APOP_TIMESTAMP_MAX], cmd[512];
    greeting_ts(c, ts, sizeof ts);
    assert_true(ts[0] == '<');
    assert_non_null(strstr(ts, "@pop.test>"));
    /* APOP is signalled by the timestamp, not listed in CAPA */
    client_send(c, "CAPA\r\n");
    char *m = multi(c);
    assert_null(strstr(m, "APOP"));
    free(m);
    /* the digest of another timestamp fails */
    apop_cmd(cmd, sizeof cmd, "alice", "<1.2.3@pop.test>", "alice apop secret");
    expect(c, cmd, "-ERR [AUTH] Authentication failed");
    /* a second session gets another timestamp */
    struct client *c2 = connect_client(f);
    greeting_ts(c2, ts2, sizeof ts2);
    assert_string_not_equal(ts, ts2);
    client_close(&c2);
    /* the right digest, user name in upper case with the local domain */
    apop_cmd(cmd, sizeof cmd, "ALICE@pop.test", ts, "alice apop secret");
    expect(c, cmd, "+OK Logged in, 1 messages");
    expect(c, "STAT\r\n", "+OK 1 ");
    expect(c, "APOP alice 0123456789abcdef0123456789abcdef\r\n", "-ERR Command not valid now");
    expect(c, "QUIT\r\n", "+OK");
    wait_eof(c);
    client_close(&c);
}

static void test_apop_failures(void **state)
{
    struct fx *f = *state;
    char ts[POP3_APOP_TIMESTAMP_MAX], cmd[512];
    struct client *c = connect_client(f);
    greeting_ts(c, ts, sizeof ts);
    /* the login password is not the APOP secret */
    apop_cmd(cmd, sizeof cmd, "alice", ts, "alice pw");
    expect(c, cmd, "-ERR [AUTH] Authentication failed");
    /* syntax: both arguments are needed; a syntax error is not a login failure */
    expect(c, "APOP alice\r\n", "-ERR");
    /* bob has no APOP secret: refused like a wrong digest, counted (limit 2: closed) */
    apop_cmd(cmd, sizeof cmd, "bob", ts, "bob-pw");
    expect(c, cmd, "-ERR [AUTH] Authentication failed, too many failures");
    wait_eof(c);
    client_close(&c);

    c = connect_client(f);
    greeting_ts(c, ts, sizeof ts);
    /* unknown user, hostile digests: short, long, not hex, upper-case of a wrong one */
    apop_cmd(cmd, sizeof cmd, "nosuchuser", ts, "alice apop secret");
    expect(c, cmd, "-ERR [AUTH] Authentication failed");
    expect(c, "APOP alice 0123\r\n", "-ERR [AUTH] Authentication failed, too many failures");
    wait_eof(c);
    client_close(&c);

    c = connect_client(f);
    greeting_ts(c, ts, sizeof ts);
    expect(c, "APOP alice 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n",
           "-ERR [AUTH] Authentication failed");
    /* USER/PASS still works after a failed APOP; upper-case hex digest accepted */
    char hex[POP3_APOP_DIGEST_HEX + 1];
    assert_int_equal(pop3_apop_digest(ts, "alice apop secret", 17, hex), 0);
    for (char *p = hex; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    snprintf(cmd, sizeof cmd, "APOP alice %s\r\n", hex);
    expect(c, cmd, "+OK Logged in");
    client_close(&c);
}

static void test_apop_before_tls(void **state)
{
    struct fx *f = *state;
    char ts[POP3_APOP_TIMESTAMP_MAX], cmd[512];
    struct client *c = connect_client(f);
    greeting_ts(c, ts, sizeof ts);
    assert_true(ts[0] == '<');
    apop_cmd(cmd, sizeof cmd, "alice", ts, "alice apop secret");
    expect(c, cmd, "-ERR [AUTH] Plaintext authentication disallowed");
    expect(c, "QUIT\r\n", "+OK Bye");
    wait_eof(c);
    client_close(&c);
}

static void test_apop_off(void **state)
{
    struct fx *f = *state;
    char ts[POP3_APOP_TIMESTAMP_MAX];
    struct client *c = connect_client(f);
    greeting_ts(c, ts, sizeof ts);
    assert_string_equal(ts, ""); /* no timestamp: clients do not try APOP */
    expect(c, "APOP alice 0123456789abcdef0123456789abcdef\r\n", "-ERR [AUTH] APOP not available");
    expect(c, "QUIT\r\n", "+OK Bye");
    wait_eof(c);
    client_close(&c);
}

int main(void)
{
    log_init("test", LOG_LVL_ERROR, LOG_TO_STDERR);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_deletes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_in_use, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_flood, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_logins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plaintext_refused, setup_noplain, teardown),
        cmocka_unit_test_setup_teardown(test_too_many_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apop_login, setup_apop, teardown),
        cmocka_unit_test_setup_teardown(test_apop_failures, setup_apop, teardown),
        cmocka_unit_test_setup_teardown(test_apop_before_tls, setup_apop_noplain, teardown),
        cmocka_unit_test_setup_teardown(test_apop_off, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
