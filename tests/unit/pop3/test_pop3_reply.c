/*
 * test_pop3_reply.c - the POP3 reply parsers: status lines with response
 * codes, STAT / LIST / UIDL entries with their limits, CAPA lines, the
 * line-oriented multi-line helper and the streaming body decoder fed in
 * every possible split (and byte by byte), plus hostile input: NUL bytes,
 * bare CRs, over-long lines and numbers, bad characters in UIDs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pop3/pop3_reply.h"

static int status(const char *s, struct pop3_status_line *st)
{
    return pop3_reply_status(s, strlen(s), st);
}

static void test_status_ok_err(void **state)
{
    struct pop3_status_line st;
    assert_int_equal(status("+OK POP3 ready <1.2@x>", &st), 0);
    assert_int_equal(st.status, POP3_ST_OK);
    assert_string_equal(st.code, "");
    assert_int_equal(st.textlen, strlen("POP3 ready <1.2@x>"));
    assert_memory_equal(st.text, "POP3 ready", 10);

    assert_int_equal(status("+OK", &st), 0);
    assert_int_equal(st.status, POP3_ST_OK);
    assert_int_equal(st.textlen, 0);

    assert_int_equal(status("-ERR", &st), 0);
    assert_int_equal(st.status, POP3_ST_ERR);

    assert_int_equal(status("-ERR [IN-USE] mailbox locked", &st), 0);
    assert_int_equal(st.status, POP3_ST_ERR);
    assert_string_equal(st.code, "IN-USE");
    assert_int_equal(st.textlen, strlen("mailbox locked"));

    assert_int_equal(status("-ERR [SYS/TEMP] try later", &st), 0);
    assert_string_equal(st.code, "SYS/TEMP");

    assert_int_equal(status("-ERR [AUTH]", &st), 0);
    assert_string_equal(st.code, "AUTH");
    assert_int_equal(st.textlen, 0);
}

static void test_status_bad_codes_stay_text(void **state)
{
    struct pop3_status_line st;
    const char *cases[] = {"-ERR [] x",   "-ERR [A//B] x",        "-ERR [/A] x",
                           "-ERR [A/] x", "-ERR [unterminated x", "-ERR [A B] x"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(status(cases[i], &st), 0);
        assert_string_equal(st.code, "");
        assert_true(st.textlen > 0 && st.text[0] == '[');
    }
    /* a code longer than the buffer is left in the text */
    char line[200];
    memset(line, 'A', sizeof(line));
    memcpy(line, "-ERR [", 6);
    line[150] = ']';
    assert_int_equal(pop3_reply_status(line, 160, &st), 0);
    assert_string_equal(st.code, "");
}

static void test_status_continuation(void **state)
{
    struct pop3_status_line st;
    assert_int_equal(status("+ ", &st), 0);
    assert_int_equal(st.status, POP3_ST_CONT);
    assert_int_equal(status("+", &st), 0);
    assert_int_equal(st.status, POP3_ST_CONT);
    assert_int_equal(status("+ dGVzdA==", &st), 0);
    assert_int_equal(st.status, POP3_ST_CONT);
    assert_int_equal(st.textlen, 8);
}

static void test_status_garbage(void **state)
{
    struct pop3_status_line st;
    const char *bad[] = {"",          "OK",       "+ok", "-err", "+OKAY", "-ERROR x",
                         "* OK imap", "220 smtp", "+X",  " +OK", "+OK\rx"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(status(bad[i], &st), PST_EINVAL);
    assert_int_equal(pop3_reply_status("+OK a\0b", 7, &st), PST_EINVAL);
    assert_int_equal(pop3_reply_status("+OK a\nb", 7, &st), PST_EINVAL);
    /* over-long */
    size_t n = POP3_REPLY_LINE_MAX;
    char *l = malloc(n);
    assert_non_null(l);
    memset(l, 'x', n);
    memcpy(l, "+OK ", 4);
    assert_int_equal(pop3_reply_status(l, n - 2, &st), 0);
    assert_int_equal(pop3_reply_status(l, n - 1, &st), PST_ELIMIT);
    assert_int_equal(pop3_reply_status(l, n, &st), PST_ELIMIT);
    free(l);
}

static void test_listing(void **state)
{
    uint32_t n;
    uint64_t sz;
    assert_int_equal(pop3_reply_listing("1 120", 5, &n, &sz), 0);
    assert_int_equal(n, 1);
    assert_int_equal(sz, 120);
    assert_int_equal(pop3_reply_listing("7 0 extra info", 14, &n, &sz), 0);
    assert_int_equal(n, 7);
    assert_int_equal(sz, 0);
    assert_int_equal(pop3_reply_listing("2147483647 4611686018427387904", 30, &n, &sz), 0);
    assert_int_equal(n, 2147483647u);
    assert_true(sz == ((uint64_t)1 << 62));
    const char *bad[] = {"",     "0 12", "1",     "1 ",   "x 1",    "1 x",
                         "-1 5", "1 -5", "1 12x", " 1 2", "1\x00 2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(pop3_reply_listing(bad[i], strlen(bad[i]), &n, &sz), PST_EINVAL);
    assert_int_equal(pop3_reply_listing("1 2\0", 4, &n, &sz), PST_EINVAL);
    assert_int_equal(pop3_reply_listing("2147483648 1", 12, &n, &sz), PST_ELIMIT);
    assert_int_equal(pop3_reply_listing("1 4611686018427387905", 21, &n, &sz), PST_ELIMIT);
    assert_int_equal(pop3_reply_listing("1 99999999999999999999999999", 28, &n, &sz), PST_ELIMIT);
}

static void test_stat(void **state)
{
    uint32_t n;
    uint64_t sz;
    assert_int_equal(pop3_reply_stat("0 0", 3, &n, &sz), 0);
    assert_int_equal(n, 0);
    assert_int_equal(pop3_reply_stat("2 320 more", 10, &n, &sz), 0);
    assert_int_equal(n, 2);
    assert_int_equal(sz, 320);
    assert_int_equal(pop3_reply_stat("2", 1, &n, &sz), PST_EINVAL);
    assert_int_equal(pop3_reply_stat("", 0, &n, &sz), PST_EINVAL);
}

static void test_uidl(void **state)
{
    uint32_t n;
    char uid[POP3_UIDL_MAX + 1];
    assert_int_equal(pop3_reply_uidl("1 whqtswO00WBw418f9t5JxYwZ", 26, &n, uid), 0);
    assert_int_equal(n, 1);
    assert_string_equal(uid, "whqtswO00WBw418f9t5JxYwZ");
    assert_int_equal(pop3_reply_uidl("3 a  ", 5, &n, uid), 0);
    assert_string_equal(uid, "a");
    assert_int_equal(pop3_reply_uidl("3 !~", 4, &n, uid), 0);
    assert_string_equal(uid, "!~");

    char l[100];
    memset(l, 'u', sizeof(l));
    l[0] = '9';
    l[1] = ' ';
    assert_int_equal(pop3_reply_uidl(l, 2 + POP3_UIDL_MAX, &n, uid), 0);
    assert_int_equal(strlen(uid), POP3_UIDL_MAX);
    assert_int_equal(pop3_reply_uidl(l, 3 + POP3_UIDL_MAX, &n, uid), PST_ELIMIT);

    const char *bad[] = {"1", "1 ", "0 abc", "x abc", "1 ab c", "1 ab\x7f", "1 \x80x", "1 a\tb"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(pop3_reply_uidl(bad[i], strlen(bad[i]), &n, uid), PST_EINVAL);
    assert_int_equal(pop3_reply_uidl("1 ab\0cd", 7, &n, uid), PST_EINVAL);
}

static void test_capa(void **state)
{
    unsigned caps = 0;
    const char *lines[] = {"TOP",  "USER", "SASL LOGIN plain", "RESP-CODES", "pipelining",
                           "UIDL", "STLS", "AUTH-RESP-CODE",   "EXPIRE 30",  "IMPLEMENTATION x y"};
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        assert_int_equal(pop3_reply_capa(lines[i], strlen(lines[i]), &caps), 0);
    assert_int_equal(caps, POP3_CAP_TOP | POP3_CAP_USER | POP3_CAP_SASL | POP3_CAP_SASL_PLAIN |
                               POP3_CAP_RESP_CODES | POP3_CAP_PIPELINING | POP3_CAP_UIDL |
                               POP3_CAP_STLS | POP3_CAP_AUTH_RESP_CODE);
    caps = 0;
    assert_int_equal(pop3_reply_capa("SASL PLAINX XPLAIN", 18, &caps), 0);
    assert_int_equal(caps, POP3_CAP_SASL);
    caps = 0;
    assert_int_equal(pop3_reply_capa("STLSX", 5, &caps), 0);
    assert_int_equal(caps, 0);
    assert_int_equal(pop3_reply_capa("", 0, &caps), PST_EINVAL);
    assert_int_equal(pop3_reply_capa("TOP\0", 4, &caps), PST_EINVAL);
    assert_int_equal(pop3_reply_capa("TO\x01P", 4, &caps), PST_EINVAL);
}

static void test_multiline(void **state)
{
    const char *o;
    size_t n;
    assert_int_equal(pop3_reply_multiline(".", 1, &o, &n), 1);
    assert_int_equal(pop3_reply_multiline("..", 2, &o, &n), 0);
    assert_int_equal(n, 1);
    assert_memory_equal(o, ".", 1);
    assert_int_equal(pop3_reply_multiline("1 2", 3, &o, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(pop3_reply_multiline("", 0, &o, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(pop3_reply_multiline(". ", 2, &o, &n), 0);
    assert_int_equal(n, 1);
}

/* body_run - feed wire in pieces of step bytes; returns the decoded body, sets *used total. */
static char *body_run(const char *wire, size_t len, size_t step, size_t *outlen, size_t *used,
                      int *ended)
{
    struct pop3_body b;
    pop3_body_init(&b);
    char *out = malloc(len + 2);
    assert_non_null(out);
    size_t o = 0, off = 0;
    *ended = 0;
    while (off < len && !*ended) {
        size_t n = len - off < step ? len - off : step;
        char tmp[64 + 1];
        char *dst = n + 1 <= sizeof(tmp) ? tmp : malloc(n + 1);
        assert_non_null(dst);
        size_t ol, u;
        *ended = pop3_body_feed(&b, wire + off, n, dst, &ol, &u);
        assert_true(ol <= n + 1);
        assert_true(u <= n);
        if (!*ended)
            assert_int_equal(u, n);
        memcpy(out + o, dst, ol);
        o += ol;
        off += u;
        if (dst != tmp)
            free(dst);
    }
    *outlen = o;
    *used = off;
    return out;
}

static void body_check(const char *wire, const char *want, size_t wire_used)
{
    size_t len = strlen(wire);
    for (size_t step = 1; step <= len + 1; step++) {
        size_t ol, used;
        int ended;
        char *out = body_run(wire, len, step, &ol, &used, &ended);
        assert_int_equal(ended, 1);
        assert_int_equal(used, wire_used);
        assert_int_equal(ol, strlen(want));
        assert_memory_equal(out, want, ol);
        free(out);
    }
}

static void test_body_splits(void **state)
{
    body_check(".\r\n", "", 3);
    body_check("a\r\n.\r\n", "a\r\n", 6);
    body_check("..\r\n.\r\n", ".\r\n", 7);
    body_check("..hidden\r\n...\r\n.\r\nNEXT", ".hidden\r\n..\r\n", 18);
    body_check("line\r\n.x\r\n.\r\n", "line\r\nx\r\n", 13);
    body_check("a.\r\n.b.\r\n\r\n.\r\n", "a.\r\nb.\r\n\r\n", 14);
    body_check("lf\n..\n.\n+OK", "lf\n.\n", 8);
    body_check(".\rX\r\n.\r\n", "\rX\r\n", 8);
    body_check("x\r\n.\r\r\n.\r\n", "x\r\n\r\r\n", 10);
    body_check("\r\n\r\n.\r\n", "\r\n\r\n", 7);
}

static void test_body_unterminated(void **state)
{
    const char *wire = "abc\r\n.\r";
    for (size_t step = 1; step < 9; step++) {
        size_t ol, used;
        int ended;
        char *out = body_run(wire, strlen(wire), step, &ol, &used, &ended);
        assert_int_equal(ended, 0);
        assert_int_equal(used, strlen(wire));
        assert_int_equal(ol, 5); /* the ".\r" is held back */
        free(out);
    }
}

static void test_body_large(void **state)
{
    /* 200 KiB of lines, half of them starting with a dot */
    size_t cap = 300000, wl = 0, bl = 0;
    char *wire = malloc(cap), *want = malloc(cap);
    assert_non_null(wire);
    assert_non_null(want);
    for (int i = 0; wl < 200000; i++) {
        int n = snprintf(want + bl, cap - bl, "%s%d line\r\n", i % 2 ? "." : "", i);
        bl += (size_t)n;
        n = snprintf(wire + wl, cap - wl, "%s%d line\r\n", i % 2 ? ".." : "", i);
        wl += (size_t)n;
    }
    memcpy(wire + wl, ".\r\n", 3);
    wl += 3;
    size_t steps[] = {1, 7, 4096, 65536, wl};
    for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
        size_t ol, used;
        int ended;
        char *out = body_run(wire, wl, steps[s], &ol, &used, &ended);
        assert_int_equal(ended, 1);
        assert_int_equal(used, wl);
        assert_int_equal(ol, bl);
        assert_memory_equal(out, want, bl);
        free(out);
    }
    free(wire);
    free(want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_ok_err),
        cmocka_unit_test(test_status_bad_codes_stay_text),
        cmocka_unit_test(test_status_continuation),
        cmocka_unit_test(test_status_garbage),
        cmocka_unit_test(test_listing),
        cmocka_unit_test(test_stat),
        cmocka_unit_test(test_uidl),
        cmocka_unit_test(test_capa),
        cmocka_unit_test(test_multiline),
        cmocka_unit_test(test_body_splits),
        cmocka_unit_test(test_body_unterminated),
        cmocka_unit_test(test_body_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
