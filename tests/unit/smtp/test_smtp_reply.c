/*
 * test_smtp_reply.c - SMTP reply parser: single and multi-line replies,
 * enhanced status codes, mixed codes, over-long lines, too many lines,
 * garbage, NUL bytes, pipelined replies, evbuffer reading, the text cap,
 * EHLO keyword extraction, and the property that every split of the input
 * gives the same result.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "smtp/smtp_reply.h"

/* parse_all - feed s whole; returns the feed result; *used set. */
static int parse_all(struct smtp_reply_parser *p, const char *s, size_t n, size_t *used)
{
    smtp_reply_init(p);
    return smtp_reply_feed(p, s, n, used);
}

static void test_single(void **st)
{
    static struct smtp_reply_parser p;
    size_t used;
    const char *s = "250 2.1.0 Sender ok\r\n";
    assert_int_equal(parse_all(&p, s, strlen(s), &used), 1);
    assert_int_equal(used, strlen(s));
    assert_int_equal(p.reply.code, 250);
    assert_string_equal(p.reply.enh, "2.1.0");
    assert_string_equal(p.reply.text, "Sender ok");
    assert_int_equal(p.reply.nlines, 1);

    s = "220\r\n"; /* bare code is legal (RFC 5321 4.2) */
    assert_int_equal(parse_all(&p, s, strlen(s), &used), 1);
    assert_int_equal(p.reply.code, 220);
    assert_string_equal(p.reply.text, "");
    assert_string_equal(p.reply.enh, "");

    s = "554 no service\n"; /* bare LF accepted */
    assert_int_equal(parse_all(&p, s, strlen(s), &used), 1);
    assert_int_equal(p.reply.code, 554);
    assert_string_equal(p.reply.text, "no service");
    assert_string_equal(p.reply.enh, "");

    s = "550 2.1.0 class mismatch\r\n"; /* enh class must match code */
    assert_int_equal(parse_all(&p, s, strlen(s), &used), 1);
    assert_string_equal(p.reply.enh, "");
    assert_string_equal(p.reply.text, "2.1.0 class mismatch");

    s = "250 2.1000.0 not enh\r\n";
    assert_int_equal(parse_all(&p, s, strlen(s), &used), 1);
    assert_string_equal(p.reply.enh, "");

    s = "451 4.3.0\r\n";
    assert_int_equal(parse_all(&p, s, strlen(s), &used), 1);
    assert_string_equal(p.reply.enh, "4.3.0");
    assert_string_equal(p.reply.text, "");
}

static void test_multiline(void **st)
{
    static struct smtp_reply_parser p;
    size_t used;
    const char *s = "250-mx.example Hello\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n";
    assert_int_equal(parse_all(&p, s, strlen(s), &used), 1);
    assert_int_equal(p.reply.code, 250);
    assert_int_equal(p.reply.nlines, 4);
    assert_string_equal(p.reply.text, "mx.example Hello\nPIPELINING\nSIZE 1000\n8BITMIME");

    s = "550-5.1.1 first\r\n550-5.1.1 second\r\n550 5.1.1 third\r\n";
    assert_int_equal(parse_all(&p, s, strlen(s), &used), 1);
    assert_string_equal(p.reply.enh, "5.1.1");
    assert_string_equal(p.reply.text, "first\nsecond\nthird");

    s = "250-\r\n250 \r\n"; /* empty texts */
    assert_int_equal(parse_all(&p, s, strlen(s), &used), 1);
    assert_int_equal(p.reply.nlines, 2);
    assert_string_equal(p.reply.text, "\n");
}

static void test_pipelined(void **st)
{
    static struct smtp_reply_parser p;
    const char *s = "250 ok\r\n250-a\r\n250 b\r\n354 go\r\n";
    size_t n = strlen(s), off = 0, used;
    int codes[3], k = 0;
    smtp_reply_init(&p);
    while (off < n) {
        int r = smtp_reply_feed(&p, s + off, n - off, &used);
        assert_int_equal(r, 1);
        off += used;
        codes[k++] = p.reply.code;
    }
    assert_int_equal(k, 3);
    assert_int_equal(codes[0], 250);
    assert_int_equal(codes[1], 250);
    assert_int_equal(codes[2], 354);
    assert_string_equal(p.reply.text, "go");
}

static void test_errors(void **st)
{
    static struct smtp_reply_parser p;
    size_t used;

#define BADCASE(s)                                                                                 \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }
    static const struct {
        const char *s;
        size_t n;
    } bad[] = {
        BADCASE("25O ok\r\n"),       /* non-digit */
        BADCASE("199 too low\r\n"),  /* outside 200..599 */
        BADCASE("100 continue\r\n"), /* 1xx refused */
        BADCASE("600 too high\r\n"),
        BADCASE("250_ok\r\n"),         /* bad separator */
        BADCASE("250-a\r\n251 b\r\n"), /* mixed codes */
        BADCASE("25\r\n"),             /* short */
        BADCASE("\r\n"),               /* empty */
        BADCASE("hello world\r\n"),    /* garbage */
        BADCASE("250 a\0b\r\n"),       /* NUL */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = parse_all(&p, bad[i].s, bad[i].n, &used);
        if (r != PST_EINVAL)
            fail_msg("case %zu: got %d", i, r);
    }
}

static void test_limits(void **st)
{
    static struct smtp_reply_parser p;
    size_t used;
    char *big = malloc(SMTP_REPLY_LINE_MAX + 10);
    assert_non_null(big);
    memcpy(big, "250 ", 4);
    memset(big + 4, 'x', SMTP_REPLY_LINE_MAX + 6 - 4);
    /* exactly the limit incl. CRLF is fine */
    big[SMTP_REPLY_LINE_MAX - 2] = '\r';
    big[SMTP_REPLY_LINE_MAX - 1] = '\n';
    assert_int_equal(parse_all(&p, big, SMTP_REPLY_LINE_MAX, &used), 1);
    assert_int_equal(p.reply.textlen, SMTP_REPLY_LINE_MAX - 6);
    /* one more byte is an error, even without a line end yet */
    memset(big + 4, 'x', SMTP_REPLY_LINE_MAX + 6 - 4);
    assert_int_equal(parse_all(&p, big, SMTP_REPLY_LINE_MAX + 1, &used), PST_ELIMIT);
    /* also when fed byte by byte */
    smtp_reply_init(&p);
    int r = 0;
    for (size_t i = 0; i < SMTP_REPLY_LINE_MAX + 5 && r == 0; i++)
        r = smtp_reply_feed(&p, big + i, 1, &used);
    assert_int_equal(r, PST_ELIMIT);
    free(big);

    /* too many lines */
    smtp_reply_init(&p);
    r = 0;
    for (int i = 0; i < SMTP_REPLY_LINES_MAX && r == 0; i++)
        r = smtp_reply_feed(&p, "250-x\r\n", 7, &used);
    assert_int_equal(r, 0);
    assert_int_equal(smtp_reply_feed(&p, "250 x\r\n", 7, &used), PST_ELIMIT);

    /* exactly the maximum number of lines */
    smtp_reply_init(&p);
    for (int i = 0; i < SMTP_REPLY_LINES_MAX - 1; i++)
        assert_int_equal(smtp_reply_feed(&p, "250-x\r\n", 7, &used), 0);
    assert_int_equal(smtp_reply_feed(&p, "250 x\r\n", 7, &used), 1);
    assert_int_equal(p.reply.nlines, SMTP_REPLY_LINES_MAX);

    /* text cap: 100 lines of 4000 bytes: parsed, text truncated */
    char *line = malloc(4010);
    assert_non_null(line);
    smtp_reply_init(&p);
    for (int i = 0; i < SMTP_REPLY_LINES_MAX; i++) {
        memcpy(line, i == SMTP_REPLY_LINES_MAX - 1 ? "250 " : "250-", 4);
        memset(line + 4, 'a' + i % 26, 4000);
        memcpy(line + 4004, "\r\n", 2);
        r = smtp_reply_feed(&p, line, 4006, &used);
        assert_int_equal(used, 4006);
    }
    assert_int_equal(r, 1);
    assert_int_equal(p.reply.textlen, SMTP_REPLY_TEXT_MAX);
    assert_int_equal(strlen(p.reply.text), SMTP_REPLY_TEXT_MAX);
    assert_true(p.reply.truncated);
    assert_int_equal(p.reply.nlines, SMTP_REPLY_LINES_MAX);
    free(line);
}

/* every split point of a multi-reply input gives identical replies */
static void test_split_every_byte(void **st)
{
    static struct smtp_reply_parser whole, part;
    const char *s = "250-mx.example greets you\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n"
                    "250-AUTH PLAIN LOGIN\r\n250 2.0.0 ENHANCEDSTATUSCODES\r\n"
                    "550-5.1.1 no\r\n550 5.1.1 such user\r\n354 go ahead\n";
    size_t n = strlen(s);
    for (size_t cut = 0; cut <= n; cut++) {
        size_t off_w = 0, off_p = 0, used;
        smtp_reply_init(&whole);
        smtp_reply_init(&part);
        for (int k = 0; k < 3; k++) {
            int rw = smtp_reply_feed(&whole, s + off_w, n - off_w, &used);
            assert_int_equal(rw, 1);
            off_w += used;
            int rp;
            /* first piece ends at cut (if inside), then the rest */
            if (off_p < cut) {
                rp = smtp_reply_feed(&part, s + off_p, cut - off_p, &used);
                off_p += used;
                if (rp == 0) {
                    rp = smtp_reply_feed(&part, s + off_p, n - off_p, &used);
                    off_p += used;
                }
            } else {
                rp = smtp_reply_feed(&part, s + off_p, n - off_p, &used);
                off_p += used;
            }
            assert_int_equal(rp, 1);
            assert_int_equal(off_p, off_w);
            assert_int_equal(part.reply.code, whole.reply.code);
            assert_string_equal(part.reply.enh, whole.reply.enh);
            assert_string_equal(part.reply.text, whole.reply.text);
            assert_int_equal(part.reply.nlines, whole.reply.nlines);
        }
    }
    /* and one byte at a time */
    size_t off = 0, used;
    int got = 0;
    smtp_reply_init(&part);
    for (; off < n; off++) {
        int r = smtp_reply_feed(&part, s + off, 1, &used);
        assert_int_equal(used, 1);
        if (r == 1) {
            got++;
            if (got == 1)
                assert_string_equal(part.reply.text, "mx.example greets you\nPIPELINING\n"
                                                     "SIZE 52428800\nAUTH PLAIN LOGIN\n"
                                                     "2.0.0 ENHANCEDSTATUSCODES");
        }
    }
    assert_int_equal(got, 3);
}

static void test_evbuffer(void **st)
{
    static struct smtp_reply_parser p;
    struct evbuffer *b = evbuffer_new();
    assert_non_null(b);
    smtp_reply_init(&p);
    assert_int_equal(evbuffer_add(b, "250-a\r\n25", 9), 0);
    assert_int_equal(smtp_reply_read(&p, b), 0);
    assert_int_equal(evbuffer_get_length(b), 0);
    /* several chunks so that peek returns more than one vector */
    for (int i = 0; i < 20; i++) {
        struct evbuffer *t = evbuffer_new();
        assert_non_null(t);
        assert_int_equal(evbuffer_add(t, i == 0 ? "0-b\r\n" : "250-c\r\n", i == 0 ? 5 : 7), 0);
        evbuffer_add_buffer(b, t);
        evbuffer_free(t);
    }
    assert_int_equal(evbuffer_add(b, "250 end\r\n221 bye\r\n", 18), 0);
    assert_int_equal(smtp_reply_read(&p, b), 1);
    assert_int_equal(p.reply.code, 250);
    assert_int_equal(p.reply.nlines, 22);
    assert_int_equal(evbuffer_get_length(b), 9);
    assert_int_equal(smtp_reply_read(&p, b), 1);
    assert_int_equal(p.reply.code, 221);
    assert_int_equal(evbuffer_get_length(b), 0);
    assert_int_equal(evbuffer_add(b, "xyz\r\n", 5), 0);
    assert_int_equal(smtp_reply_read(&p, b), PST_EINVAL);
    evbuffer_free(b);
}

static void test_ehlo(void **st)
{
    static struct smtp_reply_parser p;
    size_t used;
    struct smtp_ehlo e;
    const char *s =
        "250-mx.example Hello SIZE PIPELINING\r\n250-pipelining\r\n250-SIZE 52428800\r\n"
        "250-8BITMIME\r\n250-SMTPUTF8\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN GSSAPI\r\n"
        "250-AUTH=CRAM-MD5\r\n250-DSN\r\n250-CHUNKING\r\n250-X-FOO bar\r\n"
        "250 ENHANCEDSTATUSCODES\r\n";
    assert_int_equal(parse_all(&p, s, strlen(s), &used), 1);
    smtp_reply_ehlo(&p.reply, &e);
    assert_int_equal(e.ext, SMTP_EXT_PIPELINING | SMTP_EXT_SIZE | SMTP_EXT_8BITMIME |
                                SMTP_EXT_SMTPUTF8 | SMTP_EXT_STARTTLS | SMTP_EXT_AUTH |
                                SMTP_EXT_DSN | SMTP_EXT_CHUNKING | SMTP_EXT_ENHANCEDSTATUSCODES);
    assert_int_equal(e.size_max, 52428800);
    assert_int_equal(e.auth, SMTP_AUTH_M_PLAIN | SMTP_AUTH_M_LOGIN | SMTP_AUTH_M_OTHER |
                                 SMTP_AUTH_M_CRAM_MD5);

    /* the greeting line is not a keyword; SIZE without number = no limit */
    s = "250-STARTTLS\r\n250-SIZE\r\n250 SIZEX 5\r\n";
    assert_int_equal(parse_all(&p, s, strlen(s), &used), 1);
    smtp_reply_ehlo(&p.reply, &e);
    assert_int_equal(e.ext, SMTP_EXT_SIZE);
    assert_int_equal(e.size_max, 0);

    s = "250-x\r\n250 SIZE 99999999999999999999999\r\n"; /* overflow = no limit */
    assert_int_equal(parse_all(&p, s, strlen(s), &used), 1);
    smtp_reply_ehlo(&p.reply, &e);
    assert_int_equal(e.size_max, 0);

    s = "250 only greeting\r\n";
    assert_int_equal(parse_all(&p, s, strlen(s), &used), 1);
    smtp_reply_ehlo(&p.reply, &e);
    assert_int_equal(e.ext, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single),    cmocka_unit_test(test_multiline),
        cmocka_unit_test(test_pipelined), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_limits),    cmocka_unit_test(test_split_every_byte),
        cmocka_unit_test(test_evbuffer),  cmocka_unit_test(test_ehlo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
