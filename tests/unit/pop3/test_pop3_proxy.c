/*
 * test_pop3_proxy.c - the proxy's merge logic: merged unique-ids (form,
 * injectivity, stability, length), listing tables fed with hostile
 * entries, the merged order and the split of deletions per source; and
 * the merged mailbox against a fake upstream (a thread on 127.0.0.1 that
 * answers in order, with or without PIPELINING, and can hold a reply half
 * sent or die in the middle of one): the one-message read-ahead serves
 * sequential RETRs byte for byte, is drained in step when the client asks
 * for something else (DELE + QUIT, another RETR, TOP), is not done above
 * its cap, and an upstream dying during it gives the client nothing it did
 * not ask for.
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
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "lib/config.h"
#include "lib/db.h"
#include "pop3/pop3_proxy.h"
#include "pop3/pop3_upstream.h"
#include "testutil.h"

static int uidl_ok(const char *u)
{
    size_t n = strlen(u);
    if (n < 1 || n > POP3_UIDL_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)u[i] < 0x21 || (unsigned char)u[i] > 0x7e)
            return 0;
    return 1;
}

static void test_uidl_forms(void **state)
{
    char out[POP3_UIDL_MAX + 1];
    /* local Maildir ids are kept (clients that kept mail do not fetch it again) */
    assert_int_equal(pop3px_uidl(NULL, "1700000000.M1P2.host", 1, 10, 0, out), 0);
    assert_string_equal(out, "1700000000.M1P2.host");
    /* upstream: "<id>:<uid>" */
    assert_int_equal(pop3px_uidl("gmail", "00000001abcd", 7, 10, 0, out), 0);
    assert_string_equal(out, "gmail:00000001abcd");
    /* exactly 70 fits */
    char uid[80];
    memset(uid, 'u', 64);
    uid[64] = '\0';
    assert_int_equal(pop3px_uidl("abcde", uid, 1, 1, 0, out), 0); /* 5 + 1 + 64 = 70 */
    assert_int_equal(strlen(out), 70);
    assert_memory_equal(out, "abcde:", 6);
    /* 71 does not: hashed */
    assert_int_equal(pop3px_uidl("abcdef", uid, 1, 1, 0, out), 0);
    assert_int_equal(out[0], '~');
    assert_int_equal(strlen(out), 1 + POP3PX_HASH_HEX);
    assert_true(uidl_ok(out));
}

static void test_uidl_stable_and_distinct(void **state)
{
    char a[POP3_UIDL_MAX + 1], b[POP3_UIDL_MAX + 1];
    char uid[71];
    memset(uid, 'x', 70);
    uid[70] = '\0';
    assert_int_equal(pop3px_uidl("one", uid, 1, 5, 0, a), 0);
    assert_int_equal(pop3px_uidl("one", uid, 9, 99, 0, b), 0); /* msgno/size do not matter */
    assert_string_equal(a, b);
    assert_int_equal(pop3px_uidl("two", uid, 1, 5, 0, b), 0); /* the source does */
    assert_string_not_equal(a, b);
    assert_int_equal(pop3px_uidl("one", uid, 1, 5, 1, b), 0); /* so does the repeat number */
    assert_string_not_equal(a, b);
    /* ids with dots cannot be confused: "a.b" + "c" vs "a" + "b.c" */
    assert_int_equal(pop3px_uidl("a.b", "c", 1, 1, 0, a), 0);
    assert_int_equal(pop3px_uidl("a", "b.c", 1, 1, 0, b), 0);
    assert_string_not_equal(a, b);
    /* a local id that looks like a hashed one is itself hashed (in another domain) */
    char h[POP3_UIDL_MAX + 1];
    assert_int_equal(pop3px_uidl("one", uid, 1, 5, 0, h), 0);
    assert_int_equal(pop3px_uidl(NULL, h, 1, 5, 0, a), 0);
    assert_int_equal(a[0], '~');
    assert_string_not_equal(a, h);
    /* no UIDL from the server: depends on msgno and size */
    assert_int_equal(pop3px_uidl("one", NULL, 1, 5, 0, a), 0);
    assert_int_equal(pop3px_uidl("one", NULL, 2, 5, 0, b), 0);
    assert_true(uidl_ok(a));
    assert_string_not_equal(a, b);
}

static void test_uidl_hostile(void **state)
{
    char out[POP3_UIDL_MAX + 1];
    char longuid[200];
    memset(longuid, 'a', sizeof longuid - 1);
    longuid[sizeof longuid - 1] = '\0';
    assert_int_equal(pop3px_uidl("x", longuid, 1, 1, 0, out), PST_EINVAL);
    assert_int_equal(pop3px_uidl("x", "", 1, 1, 0, out), PST_EINVAL);
    assert_int_equal(pop3px_uidl("x", "a b", 1, 1, 0, out), PST_EINVAL);
    assert_int_equal(pop3px_uidl("x", "a\x7f", 1, 1, 0, out), PST_EINVAL);
    assert_int_equal(pop3px_uidl("x", "\xc3\xa9", 1, 1, 0, out), PST_EINVAL);
    assert_int_equal(pop3px_uidl("", "a", 1, 1, 0, out), PST_EINVAL);
    assert_int_equal(pop3px_uidl("a:b", "a", 1, 1, 0, out), PST_EINVAL);
    assert_int_equal(pop3px_uidl(longuid, "a", 1, 1, 0, out), PST_EINVAL);
}

static void test_table(void **state)
{
    struct pop3px_table t;
    assert_int_equal(pop3px_table_init(&t, 3), 0);
    assert_int_equal(pop3px_table_size(&t, 1, 100), 0);
    assert_int_equal(pop3px_table_size(&t, 1, 100), PST_EINVAL); /* repeated */
    assert_int_equal(pop3px_table_size(&t, 0, 1), PST_EINVAL);
    assert_int_equal(pop3px_table_size(&t, 4, 1), PST_EINVAL); /* beyond STAT's count */
    assert_int_equal(pop3px_table_size(&t, UINT32_MAX, 1), PST_EINVAL);
    assert_int_equal(pop3px_table_uid(&t, 1, "abc"), 0);
    assert_int_equal(pop3px_table_uid(&t, 1, "abd"), PST_EINVAL);
    assert_int_equal(pop3px_table_uid(&t, 2, "has space"), PST_EINVAL);
    assert_int_equal(pop3px_table_uid(&t, 2, NULL), PST_EINVAL);
    assert_int_equal(pop3px_table_uid(&t, 2, ""), PST_EINVAL);
    assert_int_equal(pop3px_table_uid(&t, 9, "x"), PST_EINVAL);
    assert_true(t.msgs[0].has_size && t.msgs[0].has_uid);
    assert_false(t.msgs[1].has_uid);
    pop3px_table_free(&t);
    assert_null(t.msgs);
    assert_int_equal(pop3px_table_init(&t, 0), 0);
    assert_int_equal(pop3px_table_size(&t, 1, 1), PST_EINVAL);
    pop3px_table_free(&t);
    assert_int_equal(pop3px_table_init(&t, UINT32_MAX), PST_ELIMIT);
}

static void fill(struct pop3px_table *t, uint32_t n, const char *const *uids, const int *listed)
{
    assert_int_equal(pop3px_table_init(t, n), 0);
    for (uint32_t i = 0; i < n; i++) {
        if (!listed || listed[i])
            assert_int_equal(pop3px_table_size(t, i + 1, 100 + i), 0);
        if (uids && uids[i])
            assert_int_equal(pop3px_table_uid(t, i + 1, uids[i]), 0);
    }
}

static void test_merge(void **state)
{
    struct pop3px_table local, up1, up2, up3;
    const char *lu[] = {"L1", "L2"};
    const char *u1[] = {"a", "b", "c"};
    const char *u3[] = {"z", "dup", "dup", NULL};
    const int l3[] = {1, 1, 1, 1};
    const int l1[] = {1, 0, 1}; /* message 2 missing from LIST: left out */
    fill(&local, 2, lu, NULL);
    fill(&up1, 3, u1, l1);
    fill(&up2, 5, NULL, NULL); /* "down": not passed */
    fill(&up3, 4, u3, l3);
    const char *ids[] = {NULL, "one", "two", "three"};
    const struct pop3px_table *tabs[] = {&local, &up1, NULL, &up3};
    struct pop3px_msg *m = NULL;
    size_t n = 0;
    assert_int_equal(pop3px_merge(ids, tabs, 4, &m, &n), 0);
    assert_int_equal(n, 2 + 2 + 4);
    /* order: local, then upstreams in order, messages in their order */
    const uint32_t want_src[] = {0, 0, 1, 1, 3, 3, 3, 3};
    const uint32_t want_no[] = {1, 2, 1, 3, 1, 2, 3, 4};
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(m[i].src, want_src[i]);
        assert_int_equal(m[i].msgno, want_no[i]);
        assert_int_equal(m[i].info.size, 100 + want_no[i] - 1);
        assert_true(uidl_ok(m[i].info.uidl));
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(m[i].info.uidl, m[j].info.uidl);
    }
    assert_string_equal(m[0].info.uidl, "L1");
    assert_string_equal(m[2].info.uidl, "one:a");
    assert_string_equal(m[3].info.uidl, "one:c");
    assert_string_equal(m[4].info.uidl, "three:z");
    assert_string_equal(m[5].info.uidl, "three:dup"); /* first occurrence keeps its form */
    assert_int_equal(m[6].info.uidl[0], '~');         /* the repeat is hashed */
    assert_int_equal(m[7].info.uidl[0], '~');         /* no uid given */

    /* the same input gives the same ids (stability) */
    struct pop3px_msg *m2 = NULL;
    size_t n2 = 0;
    assert_int_equal(pop3px_merge(ids, tabs, 4, &m2, &n2), 0);
    assert_int_equal(n2, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(m[i].info.uidl, m2[i].info.uidl);
    free(m2);

    /* deletions split per source, in upstream numbers */
    unsigned char del[8] = {0, 1, 1, 1, 0, 0, 1, 0};
    uint32_t no[8];
    assert_int_equal(pop3px_deletions(m, n, del, 0, no), 1);
    assert_int_equal(no[0], 2);
    assert_int_equal(pop3px_deletions(m, n, del, 1, no), 2);
    assert_int_equal(no[0], 1);
    assert_int_equal(no[1], 3);
    assert_int_equal(pop3px_deletions(m, n, del, 2, no), 0);
    assert_int_equal(pop3px_deletions(m, n, del, 3, no), 1);
    assert_int_equal(no[0], 3);
    free(m);
    pop3px_table_free(&local);
    pop3px_table_free(&up1);
    pop3px_table_free(&up2);
    pop3px_table_free(&up3);
}

static void test_merge_collisions(void **state)
{
    /* a local id equal to what an upstream's would be if it used '.' cannot collide */
    struct pop3px_table local, up;
    const char *lu[] = {"one.a", "~x"};
    const char *uu[] = {"a", "x"};
    fill(&local, 2, lu, NULL);
    fill(&up, 2, uu, NULL);
    const char *ids[] = {NULL, "one"};
    const struct pop3px_table *tabs[] = {&local, &up};
    struct pop3px_msg *m = NULL;
    size_t n = 0;
    assert_int_equal(pop3px_merge(ids, tabs, 2, &m, &n), 0);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(m[i].info.uidl, m[j].info.uidl);
    free(m);
    /* nothing at all */
    const struct pop3px_table *none[] = {NULL, NULL};
    assert_int_equal(pop3px_merge(ids, none, 2, &m, &n), 0);
    assert_int_equal(n, 0);
    free(m);
    pop3px_table_free(&local);
    pop3px_table_free(&up);
}

static void test_merge_many_dups(void **state)
{
    /* a broken server repeating one uid for every message: all merged ids still distinct */
    enum { N = 500 };
    struct pop3px_table t;
    assert_int_equal(pop3px_table_init(&t, N), 0);
    for (uint32_t i = 1; i <= N; i++) {
        assert_int_equal(pop3px_table_size(&t, i, i), 0);
        assert_int_equal(pop3px_table_uid(&t, i, "same"), 0);
    }
    const char *ids[] = {"bad"};
    const struct pop3px_table *tabs[] = {&t};
    struct pop3px_msg *m = NULL;
    size_t n = 0;
    assert_int_equal(pop3px_merge(ids, tabs, 1, &m, &n), 0);
    assert_int_equal(n, N);
    assert_string_equal(m[0].info.uidl, "bad:same");
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(m[i].info.uidl, m[j].info.uidl);
    free(m);
    pop3px_table_free(&t);
}

/* ------------------------------------------------------------------------- */
/* the merged mailbox against a fake upstream: the one-message read-ahead */

#define FU_MSGS_MAX 16
#define FU_LOG_MAX 8192
#define FU_BIG (1536 * 1024) /* larger than the read-ahead cap (1 MiB) */
#define FU_WATCHDOG 30       /* seconds a test waits for anything */

/* the fake upstream: answers every command in order (pipelined or not) */
struct fu {
    int lfd, fd;
    unsigned port;
    pthread_t th;
    int pipelining;
    uint32_t nmsg;
    char *msg[FU_MSGS_MAX + 1]; /* stored form (CRLF), 1-based */
    size_t len[FU_MSGS_MAX + 1];
    uint32_t hold; /* RETR of this message: half the body, then wait for the next command */
    uint32_t die;  /* RETR of this message: half the body, then close */
    int deleted[FU_MSGS_MAX + 1];
    int quit_ok;
    pthread_mutex_t mu;
    char log[FU_LOG_MAX]; /* commands received, "RETR 1|RETR 2|..." */
    char rbuf[4096];
    size_t rlen;
};

static void fu_log(struct fu *u, const char *line)
{
    pthread_mutex_lock(&u->mu);
    size_t l = strlen(u->log);
    snprintf(u->log + l, sizeof u->log - l, "%s|", line);
    pthread_mutex_unlock(&u->mu);
}

static int fu_has(struct fu *u, const char *what)
{
    pthread_mutex_lock(&u->mu);
    int r = strstr(u->log, what) != NULL;
    pthread_mutex_unlock(&u->mu);
    return r;
}

static void fu_send(struct fu *u, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(u->fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void fu_sendf(struct fu *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fu_sendf(struct fu *u, const char *fmt, ...)
{
    char b[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b, sizeof b, fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < sizeof b)
        fu_send(u, b, (size_t)n);
}

/* fu_line - the next command line (CRLF stripped) into out; 0 at end of input. */
static int fu_line(struct fu *u, char *out, size_t outsz)
{
    for (;;) {
        char *nl = memchr(u->rbuf, '\n', u->rlen);
        if (nl) {
            size_t n = (size_t)(nl - u->rbuf);
            size_t k = n > 0 && u->rbuf[n - 1] == '\r' ? n - 1 : n;
            if (k >= outsz)
                k = outsz - 1;
            memcpy(out, u->rbuf, k);
            out[k] = '\0';
            memmove(u->rbuf, nl + 1, u->rlen - n - 1);
            u->rlen -= n + 1;
            return 1;
        }
        if (u->rlen == sizeof u->rbuf)
            return 0;
        struct pollfd p = {.fd = u->fd, .events = POLLIN};
        if (poll(&p, 1, FU_WATCHDOG * 1000) <= 0)
            return 0;
        ssize_t r = recv(u->fd, u->rbuf + u->rlen, sizeof u->rbuf - u->rlen, 0);
        if (r <= 0)
            return 0;
        u->rlen += (size_t)r;
    }
}

/* fu_body - the byte-stuffed bytes of message k from offset a to b. */
static void fu_body(struct fu *u, uint32_t k, size_t a, size_t b)
{
    const char *m = u->msg[k];
    size_t start = a;
    for (size_t i = a; i < b; i++) {
        if (m[i] == '.' && (i == 0 || m[i - 1] == '\n')) {
            fu_send(u, m + start, i - start);
            fu_send(u, ".", 1);
            start = i;
        }
    }
    fu_send(u, m + start, b - start);
}

static void fu_retr(struct fu *u, uint32_t k)
{
    fu_sendf(u, "+OK %zu octets\r\n", u->len[k]);
    size_t half = u->len[k] / 2;
    if (k == u->hold || k == u->die) {
        fu_body(u, k, 0, half);
        if (k == u->die) {
            shutdown(u->fd, SHUT_RDWR);
            return;
        }
        if (!memchr(u->rbuf, '\n', u->rlen)) { /* the proxy's next command, or a pause */
            struct pollfd p = {.fd = u->fd, .events = POLLIN};
            (void)poll(&p, 1, 2000);
        }
    }
    fu_body(u, k, k == u->hold ? half : 0, u->len[k]);
    fu_send(u, ".\r\n", 3);
}

static void fu_top(struct fu *u, uint32_t k, unsigned lines)
{
    const char *m = u->msg[k];
    const char *hdr_end = strstr(m, "\r\n\r\n");
    size_t end = hdr_end ? (size_t)(hdr_end - m) + 4 : u->len[k];
    for (unsigned l = 0; l < lines && end < u->len[k]; l++) {
        const char *nl = memchr(m + end, '\n', u->len[k] - end);
        end = nl ? (size_t)(nl - m) + 1 : u->len[k];
    }
    fu_send(u, "+OK\r\n", 5);
    fu_body(u, k, 0, end);
    fu_send(u, ".\r\n", 3);
}

static int fu_command(struct fu *u, const char *line)
{
    unsigned long a = 0, b = 0;
    fu_log(u, line);
    if (strcmp(line, "CAPA") == 0) {
        fu_sendf(u, "+OK\r\nUSER\r\nUIDL\r\nTOP\r\n%s.\r\n", u->pipelining ? "PIPELINING\r\n" : "");
    } else if (strncmp(line, "USER ", 5) == 0 || strncmp(line, "PASS ", 5) == 0 ||
               strcmp(line, "NOOP") == 0) {
        fu_send(u, "+OK\r\n", 5);
    } else if (strcmp(line, "STAT") == 0) {
        size_t total = 0;
        for (uint32_t k = 1; k <= u->nmsg; k++)
            total += u->len[k];
        fu_sendf(u, "+OK %u %zu\r\n", (unsigned)u->nmsg, total);
    } else if (strcmp(line, "LIST") == 0 || strcmp(line, "UIDL") == 0) {
        fu_send(u, "+OK\r\n", 5);
        for (uint32_t k = 1; k <= u->nmsg; k++) {
            if (line[0] == 'L')
                fu_sendf(u, "%u %zu\r\n", (unsigned)k, u->len[k]);
            else
                fu_sendf(u, "%u uid-%u\r\n", (unsigned)k, (unsigned)k);
        }
        fu_send(u, ".\r\n", 3);
    } else if (sscanf(line, "RETR %lu", &a) == 1 && a >= 1 && a <= u->nmsg) {
        fu_retr(u, (uint32_t)a);
        return a != u->die;
    } else if (sscanf(line, "TOP %lu %lu", &a, &b) == 2 && a >= 1 && a <= u->nmsg) {
        fu_top(u, (uint32_t)a, (unsigned)b);
    } else if (sscanf(line, "DELE %lu", &a) == 1 && a >= 1 && a <= u->nmsg) {
        u->deleted[a] = 1;
        fu_send(u, "+OK\r\n", 5);
    } else if (strcmp(line, "QUIT") == 0) {
        u->quit_ok = 1;
        fu_send(u, "+OK bye\r\n", 9);
        return 0;
    } else {
        fu_send(u, "-ERR no\r\n", 9);
    }
    return 1;
}

static void *fu_main(void *arg)
{
    struct fu *u = arg;
    struct pollfd p = {.fd = u->lfd, .events = POLLIN};
    if (poll(&p, 1, FU_WATCHDOG * 1000) <= 0)
        return NULL;
    u->fd = accept(u->lfd, NULL, NULL);
    if (u->fd < 0)
        return NULL;
    fu_send(u, "+OK fake ready\r\n", 16);
    char line[512];
    while (fu_line(u, line, sizeof line) && fu_command(u, line)) {
    }
    close(u->fd);
    u->fd = -1;
    return NULL;
}

/* fu_message - message k: header, blank line, lines of text; some start with '.'. */
static char *fu_message(uint32_t k, size_t want, size_t *len)
{
    char *m = malloc(want + 256);
    assert_non_null(m);
    size_t n =
        (size_t)snprintf(m, 256, "Subject: message %u\r\nFrom: a@b.example\r\n\r\n", (unsigned)k);
    for (unsigned j = 0; n < want; j++) {
        int w = snprintf(m + n, want + 256 - n, "%s%u-%u the quick brown fox jumps\r\n",
                         j % 5 == 0   ? "."
                         : j % 7 == 0 ? ".."
                                      : "",
                         (unsigned)k, j);
        assert_true(w > 0);
        n += (size_t)w;
    }
    *len = n;
    return m;
}

/* fu_wire - message k as the proxy's stream must produce it: dot-stuffed, no terminator. */
static char *fu_wire(const struct fu *u, uint32_t k, size_t upto, size_t *len)
{
    const char *m = u->msg[k];
    char *w = malloc(2 * upto + 1);
    assert_non_null(w);
    size_t n = 0;
    for (size_t i = 0; i < upto; i++) {
        if (m[i] == '.' && (i == 0 || m[i - 1] == '\n'))
            w[n++] = '.';
        w[n++] = m[i];
    }
    *len = n;
    return w;
}

/* the test fixture: a state database with alice's profile pointing at the fake upstream */
struct pxf {
    char dir[256], keypath[300], dbpath[300], maildir[300];
    struct cfg cfg;
    struct event_base *base;
    struct pop3_backend be;
    struct pop3_mbox *mb;
    int opened, woken, committed, commit_rc;
    struct fu u;
};

static void pxf_open_done(void *arg, int rc, struct pop3_mbox *mb)
{
    struct pxf *f = arg;
    f->opened = rc == 0 ? 1 : -1;
    f->mb = mb;
}

static void pxf_wake(void *arg)
{
    ((struct pxf *)arg)->woken = 1;
}

static void pxf_commit_done(void *arg, int rc, const char *note)
{
    struct pxf *f = arg;
    f->committed = 1;
    f->commit_rc = rc;
}

/* pxf_run_until - run the loop until *flag is set (watchdog: fails the test). */
static void pxf_run_until(struct pxf *f, const int *flag)
{
    time_t end = time(NULL) + FU_WATCHDOG;
    while (!*flag) {
        assert_true(time(NULL) < end);
        struct timeval tv = {0, 20000};
        event_base_loopexit(f->base, &tv);
        event_base_loop(f->base, EVLOOP_ONCE);
    }
}

/* pxf_settle - run the loop for about ms milliseconds. */
static void pxf_settle(struct pxf *f, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(f->base, &tv);
    event_base_dispatch(f->base);
}

/*
 * pxf_start - the fake upstream with n messages of about `size` bytes
 * (message `big`, if not 0, FU_BIG bytes), alice's profile, the backend,
 * and alice's merged mailbox opened.
 */
static struct pxf *pxf_start(uint32_t n, size_t size, uint32_t big, int pipelining)
{
    struct pxf *f = calloc(1, sizeof *f);
    assert_non_null(f);
    const char *t = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/pop3px_XXXXXX", t && t[0] ? t : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->keypath, sizeof f->keypath, "%s/key", f->dir);
    snprintf(f->dbpath, sizeof f->dbpath, "%s/postern.db", f->dir);
    snprintf(f->maildir, sizeof f->maildir, "%s/mail", f->dir);
    /* the fake upstream */
    struct fu *u = &f->u;
    pthread_mutex_init(&u->mu, NULL);
    u->pipelining = pipelining;
    u->nmsg = n;
    u->fd = -1;
    for (uint32_t k = 1; k <= n; k++)
        u->msg[k] = fu_message(k, k == big ? FU_BIG : size + k * 37, &u->len[k]);
    u->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(u->lfd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    assert_int_equal(bind(u->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(u->lfd, 4), 0);
    assert_int_equal(getsockname(u->lfd, (struct sockaddr *)&sa, &sl), 0);
    u->port = ntohs(sa.sin_port);
    /* alice's profile */
    struct db *db = NULL;
    struct pop3u_key key;
    assert_int_equal(db_open(f->dbpath, &db), 0);
    assert_int_equal(pop3u_key_load(f->keypath, 1, &key), 0);
    struct pop3u_upstream up;
    memset(&up, 0, sizeof up);
    snprintf(up.user, sizeof up.user, "alice");
    snprintf(up.id, sizeof up.id, "old");
    snprintf(up.host, sizeof up.host, "127.0.0.1");
    up.port = u->port;
    up.tls = POP3U_TLS_NONE;
    snprintf(up.username, sizeof up.username, "alice");
    assert_int_equal(pop3u_add(db, &key, &up, "pw"), 0);
    pop3u_key_wipe(&key);
    db_close(&db);
    return f;
}

/* pxf_open - start the server thread and open alice's merged mailbox. */
static void pxf_open(struct pxf *f)
{
    assert_int_equal(pthread_create(&f->u.th, NULL, fu_main, &f->u), 0);
    f->cfg.db_path = f->dbpath;
    f->cfg.mail_dir = f->maildir;
    f->cfg.pop3_upstream_key = f->keypath;
    f->cfg.pop3_upstream_timeout = 10;
    f->base = event_base_new();
    assert_non_null(f->base);
    assert_int_equal(mkdir(f->maildir, 0700), 0);
    assert_int_equal(pop3px_backend_init(&f->be, &f->cfg, f->base, NULL), 0);
    struct pop3_open_req *req = NULL;
    assert_int_equal(f->be.ops->open(f->be.ctx, "alice", pxf_open_done, f, &req), 0);
    pxf_run_until(f, &f->opened);
    assert_int_equal(f->opened, 1);
    assert_string_equal(pop3px_mbox_note(f->mb), "");
    assert_int_equal(pop3_mbox_count(f->mb), f->u.nmsg);
}

static void pxf_finish(struct pxf *f)
{
    if (f->mb)
        pop3_mbox_close(&f->mb);
    f->be.ops->free(f->be.ctx);
    if (f->u.fd >= 0)
        shutdown(f->u.fd, SHUT_RDWR);
    pthread_join(f->u.th, NULL);
    close(f->u.lfd);
    event_base_free(f->base);
    for (uint32_t k = 1; k <= f->u.nmsg; k++)
        free(f->u.msg[k]);
    pthread_mutex_destroy(&f->u.mu);
    assert_int_equal(tu_rm_rf(f->dir), 0);
    free(f);
}

/* pxf_fetch - RETR (lines < 0) or TOP of message k (1-based) through the mailbox: the
 * stream's result (1 = complete) and its bytes in *got (caller frees). */
static int pxf_fetch(struct pxf *f, uint32_t k, long lines, char **got, size_t *glen)
{
    struct pop3_stream *st = NULL;
    *got = NULL;
    *glen = 0;
    int rc = f->mb->ops->stream_open(f->mb, k - 1, lines, pxf_wake, f, &st);
    if (rc < 0)
        return rc;
    struct evbuffer *out = evbuffer_new();
    assert_non_null(out);
    for (;;) {
        rc = f->mb->ops->stream_read(st, out, 16384);
        if (rc == PST_EAGAIN) {
            f->woken = 0;
            pxf_run_until(f, &f->woken);
            continue;
        }
        if (rc != 0)
            break;
    }
    f->mb->ops->stream_close(&st);
    *glen = evbuffer_get_length(out);
    *got = malloc(*glen + 1);
    assert_non_null(*got);
    evbuffer_remove(out, *got, *glen);
    evbuffer_free(out);
    return rc;
}

/* pxf_check_retr - RETR k gives exactly the upstream's message. */
static void pxf_check_retr(struct pxf *f, uint32_t k)
{
    char *got = NULL;
    size_t glen = 0, wlen = 0;
    assert_int_equal(pxf_fetch(f, k, -1, &got, &glen), 1);
    char *want = fu_wire(&f->u, k, f->u.len[k], &wlen);
    assert_int_equal(glen, wlen);
    assert_memory_equal(got, want, wlen);
    free(got);
    free(want);
}

/* pxf_wait_log - wait until the upstream has received `what`. */
static void pxf_wait_log(struct pxf *f, const char *what)
{
    time_t end = time(NULL) + FU_WATCHDOG;
    while (!fu_has(&f->u, what)) {
        assert_true(time(NULL) < end);
        pxf_settle(f, 10);
    }
}

static void pxf_commit(struct pxf *f, const unsigned char *deleted)
{
    assert_int_equal(f->mb->ops->commit(f->mb, deleted, pxf_commit_done, f), 0);
    pxf_run_until(f, &f->committed);
}

static void test_prefetch_sequential(void **state)
{
    for (int pipe = 1; pipe >= 0; pipe--) {
        struct pxf *f = pxf_start(6, 3000, 0, pipe);
        f->u.hold = 4; /* arrives in two halves, the second only after RETR 4 was asked */
        pxf_open(f);
        for (uint32_t k = 1; k <= 6; k++) {
            pxf_check_retr(f, k);
            if (k < 6) {
                char want[32];
                snprintf(want, sizeof want, "|RETR %u|", (unsigned)k + 1);
                pxf_wait_log(f, want); /* read ahead before the client asked */
            }
        }
        unsigned char del[6] = {0};
        pxf_commit(f, del);
        assert_int_equal(f->commit_rc, 0);
        /* each message fetched once, in order, no extra command */
        assert_string_equal(f->u.log, "CAPA|USER alice|PASS pw|STAT|LIST|UIDL|RETR 1|RETR 2|RETR 3|"
                                      "RETR 4|RETR 5|RETR 6|QUIT|");
        pxf_finish(f);
    }
}

/* RETR 1 (read-ahead of 2 held half-sent), then DELE 2 and QUIT: the drained reply keeps sync */
static void test_prefetch_then_dele_quit(void **state)
{
    struct pxf *f = pxf_start(4, 5000, 0, 1);
    f->u.hold = 2;
    pxf_open(f);
    pxf_check_retr(f, 1);
    pxf_wait_log(f, "|RETR 2|");
    unsigned char del[4] = {0, 1, 0, 0};
    pxf_commit(f, del);
    assert_int_equal(f->commit_rc, 0);
    assert_true(f->u.quit_ok);
    assert_int_equal(f->u.deleted[2], 1);
    assert_int_equal(f->u.deleted[1] + f->u.deleted[3] + f->u.deleted[4], 0);
    assert_string_equal(f->u.log,
                        "CAPA|USER alice|PASS pw|STAT|LIST|UIDL|RETR 1|RETR 2|DELE 2|QUIT|");
    pxf_finish(f);
}

/* RETR 1, then RETR 5 / TOP 2 with the read-ahead of 2 in flight: right bytes, in sync */
static void test_prefetch_other_commands(void **state)
{
    struct pxf *f = pxf_start(8, 4000, 0, 1);
    f->u.hold = 2;
    pxf_open(f);
    pxf_check_retr(f, 1);
    pxf_wait_log(f, "|RETR 2|");
    pxf_check_retr(f, 6); /* n + 5: the read-ahead of 2 is drained first */
    pxf_check_retr(f, 7); /* read ahead after 6 */
    /* TOP 8 with the read-ahead of 8 in flight */
    char *got = NULL;
    size_t glen = 0, wlen = 0;
    assert_int_equal(pxf_fetch(f, 8, 2, &got, &glen), 1);
    const char *m = f->u.msg[8];
    size_t hdr = (size_t)(strstr(m, "\r\n\r\n") - m) + 4;
    const char *l1 = strchr(m + hdr, '\n');
    const char *l2 = strchr(l1 + 1, '\n');
    char *want = fu_wire(&f->u, 8, (size_t)(l2 + 1 - m), &wlen);
    assert_int_equal(glen, wlen);
    assert_memory_equal(got, want, wlen);
    free(got);
    free(want);
    /* TOP is never read ahead from; RETR 1 again after it works */
    pxf_check_retr(f, 1);
    pxf_check_retr(f, 2);
    unsigned char del[8] = {0};
    pxf_commit(f, del);
    assert_int_equal(f->commit_rc, 0);
    assert_string_equal(f->u.log, "CAPA|USER alice|PASS pw|STAT|LIST|UIDL|RETR 1|RETR 2|RETR 6|"
                                  "RETR 7|RETR 8|TOP 8 2|RETR 1|RETR 2|RETR 3|QUIT|");
    pxf_finish(f);
}

/* a message above the cap is not read ahead; it is still served when asked */
static void test_prefetch_cap(void **state)
{
    struct pxf *f = pxf_start(3, 2000, 2, 1);
    pxf_open(f);
    assert_true(pop3_mbox_info(f->mb, 1)->size > 1024 * 1024);
    pxf_check_retr(f, 1);
    pxf_settle(f, 200);
    assert_false(fu_has(&f->u, "RETR 2"));
    pxf_check_retr(f, 2); /* streamed with flow control */
    pxf_wait_log(f, "|RETR 3|");
    pxf_check_retr(f, 3);
    unsigned char del[3] = {0};
    pxf_commit(f, del);
    assert_string_equal(f->u.log,
                        "CAPA|USER alice|PASS pw|STAT|LIST|UIDL|RETR 1|RETR 2|RETR 3|QUIT|");
    pxf_finish(f);
}

/* the upstream dies during the read-ahead: nothing for the client until it asks; then
 * the message (and the rest of that upstream) is unavailable ([SYS/TEMP]) */
static void test_prefetch_upstream_dies(void **state)
{
    struct pxf *f = pxf_start(4, 3000, 0, 1);
    f->u.die = 2;
    pxf_open(f);
    pxf_check_retr(f, 1);
    pxf_wait_log(f, "|RETR 2|");
    pxf_settle(f, 100);
    char *got = NULL;
    size_t glen = 0;
    assert_int_equal(pxf_fetch(f, 2, -1, &got, &glen), PST_EAGAIN);
    assert_int_equal(pxf_fetch(f, 3, -1, &got, &glen), PST_EAGAIN);
    unsigned char del[4] = {1, 0, 0, 0};
    pxf_commit(f, del);
    assert_int_equal(f->commit_rc, PST_EAGAIN); /* the deletion cannot be claimed */
    pxf_finish(f);
}

/* the upstream dies during the read-ahead while the client's RETR of it waits */
static void test_prefetch_dies_while_read(void **state)
{
    struct pxf *f = pxf_start(4, 3000, 0, 1);
    f->u.die = 2;
    pxf_open(f);
    pxf_check_retr(f, 1);
    char *got = NULL;
    size_t glen = 0;
    int rc = pxf_fetch(f, 2, -1, &got, &glen);
    /* unavailable before the stream starts, or failing after part of it: never "complete" */
    assert_true(rc == PST_EAGAIN || rc == PST_EIO);
    free(got);
    pxf_finish(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uidl_forms),
        cmocka_unit_test(test_uidl_stable_and_distinct),
        cmocka_unit_test(test_uidl_hostile),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_merge_collisions),
        cmocka_unit_test(test_merge_many_dups),
        cmocka_unit_test(test_prefetch_sequential),
        cmocka_unit_test(test_prefetch_then_dele_quit),
        cmocka_unit_test(test_prefetch_other_commands),
        cmocka_unit_test(test_prefetch_cap),
        cmocka_unit_test(test_prefetch_upstream_dies),
        cmocka_unit_test(test_prefetch_dies_while_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
