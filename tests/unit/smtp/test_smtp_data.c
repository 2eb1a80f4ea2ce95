/*
 * test_smtp_data.c - DATA/BDAT content reader: dot-unstuffing, the one true
 * end-of-data sequence, bare CR/LF, limits, NUL, and the property that every
 * split of the input gives the same result and the same output.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp_data.h"

struct cap {
    char *buf;
    size_t len;
    size_t cap;
    int calls;
    int fail_at_call; /* 0 = never fail; n = the n-th call fails */
};

static int cap_sink(void *arg, const char *data, size_t len)
{
    struct cap *c = arg;

    c->calls++;
    assert_true(len > 0);
    if (c->fail_at_call != 0 && c->calls >= c->fail_at_call) {
        assert_int_equal(c->calls, c->fail_at_call); /* never called after an error */
        return -2;
    }
    if (c->len + len + 1 > c->cap) {
        size_t ncap = (c->len + len + 1) * 2;
        char *n = realloc(c->buf, ncap);
        assert_non_null(n);
        c->buf = n;
        c->cap = ncap;
    }
    memcpy(c->buf + c->len, data, len);
    c->len += len;
    c->buf[c->len] = '\0';
    return 0;
}

static void cap_free(struct cap *c)
{
    free(c->buf);
    memset(c, 0, sizeof(*c));
}

struct run {
    struct cap out;
    size_t consumed;
    int done;
    enum smtp_data_result result;
    uint64_t total;
};

enum split { SPLIT_ONESHOT, SPLIT_BYTES, SPLIT_RANDOM };

static uint32_t rng_state = 12345;

static uint32_t rng(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return (rng_state >> 8) & 0xffffff;
}

/* run_dot - feed in[0..len) split as asked, stop at done, record everything. */
static void run_feed(struct run *r, enum smtp_data_mode mode, const char *in, size_t len,
                     size_t line_limit, uint64_t size_limit, enum split how, int fail_at)
{
    struct smtp_data d;
    size_t pos = 0;

    memset(r, 0, sizeof(*r));
    r->out.fail_at_call = fail_at;
    smtp_data_init(&d, mode, line_limit, size_limit);
    while (pos < len && !smtp_data_done(&d)) {
        size_t n = len - pos;
        size_t got;

        if (how == SPLIT_BYTES)
            n = 1;
        else if (how == SPLIT_RANDOM)
            n = 1 + rng() % (n < 7 ? n : 7);
        got = smtp_data_feed(&d, in + pos, n, cap_sink, &r->out);
        assert_true(got <= n);
        if (got < n)
            assert_true(smtp_data_done(&d));
        if (mode == SMTP_DATA_RAW)
            assert_int_equal(got, n);
        pos += got;
    }
    if (mode == SMTP_DATA_RAW)
        smtp_data_end_chunk(&d, 1);
    r->consumed = pos;
    r->done = smtp_data_done(&d);
    r->result = smtp_data_result(&d);
    r->total = smtp_data_total(&d);
}

/* check_all_splits - the same outcome for one-shot, byte-by-byte, random and all 2-way splits. */
static void check_all_splits(enum smtp_data_mode mode, const char *in, size_t len,
                             size_t line_limit, uint64_t size_limit, struct run *ref)
{
    struct run r;
    int how;

    run_feed(ref, mode, in, len, line_limit, size_limit, SPLIT_ONESHOT, 0);
    for (how = SPLIT_BYTES; how <= SPLIT_RANDOM; how++) {
        int rep;
        for (rep = 0; rep < (how == SPLIT_RANDOM ? 20 : 1); rep++) {
            run_feed(&r, mode, in, len, line_limit, size_limit, (enum split)how, 0);
            assert_int_equal(r.consumed, ref->consumed);
            assert_int_equal(r.done, ref->done);
            assert_int_equal(r.result, ref->result);
            assert_int_equal(r.total, ref->total);
            assert_int_equal(r.out.len, ref->out.len);
            if (r.out.len > 0)
                assert_memory_equal(r.out.buf, ref->out.buf, r.out.len);
            cap_free(&r.out);
        }
    }
    /* every split into two feeds */
    for (size_t cut = 0; cut <= len; cut++) {
        struct smtp_data d;
        struct cap c;
        size_t got;

        memset(&c, 0, sizeof(c));
        smtp_data_init(&d, mode, line_limit, size_limit);
        got = smtp_data_feed(&d, in, cut, cap_sink, &c);
        if (!smtp_data_done(&d))
            got += smtp_data_feed(&d, in + cut, len - cut, cap_sink, &c);
        if (mode == SMTP_DATA_RAW)
            smtp_data_end_chunk(&d, 1);
        assert_int_equal(got, ref->consumed);
        assert_int_equal(smtp_data_result(&d), ref->result);
        assert_int_equal(c.len, ref->out.len);
        if (c.len > 0)
            assert_memory_equal(c.buf, ref->out.buf, c.len);
        cap_free(&c);
    }
}

/* expect_dot - DOT mode, all splits, expected output / result / consumed. */
static void expect_dot_lim(const char *in, size_t len, size_t line_limit, uint64_t size_limit,
                           const char *out, size_t outlen, enum smtp_data_result res,
                           size_t consumed, int done)
{
    struct run r;

    check_all_splits(SMTP_DATA_DOT, in, len, line_limit, size_limit, &r);
    assert_int_equal(r.result, res);
    assert_int_equal(r.done, done);
    assert_int_equal(r.consumed, consumed);
    if (res == SMTP_DATA_OK) {
        assert_int_equal(r.out.len, outlen);
        if (outlen > 0)
            assert_memory_equal(r.out.buf, out, outlen);
        assert_int_equal(r.total, outlen);
    }
    cap_free(&r.out);
}

#define S(x) x, sizeof(x) - 1

static void expect_dot(const char *in, size_t len, const char *out, size_t outlen,
                       enum smtp_data_result res, size_t consumed)
{
    expect_dot_lim(in, len, 1000, 0, out, outlen, res, consumed, 1);
}

static void test_simple(void **state)
{
    expect_dot(S("Hello\r\n.\r\n"), S("Hello\r\n"), SMTP_DATA_OK, 10);
    expect_dot(S("Subject: x\r\n\r\nbody\r\nline 2\r\n.\r\n"),
               S("Subject: x\r\n\r\nbody\r\nline 2\r\n"), SMTP_DATA_OK, 31);
}

static void test_empty_message(void **state)
{
    /* the start of content is a beginning of line */
    expect_dot(S(".\r\n"), "", 0, SMTP_DATA_OK, 3);
    /* one empty line, then the terminator */
    expect_dot(S("\r\n.\r\n"), S("\r\n"), SMTP_DATA_OK, 5);
}

static void test_dot_unstuffing(void **state)
{
    expect_dot(S("..x\r\n.\r\n"), S(".x\r\n"), SMTP_DATA_OK, 8);
    expect_dot(S("a\r\n..\r\n.\r\n"), S("a\r\n.\r\n"), SMTP_DATA_OK, 10);
    expect_dot(S("a\r\n...\r\n.\r\n"), S("a\r\n..\r\n"), SMTP_DATA_OK, 11);
    expect_dot(S(".x\r\n.\r\n"), S("x\r\n"), SMTP_DATA_OK, 7);
    /* a dot inside a line is data */
    expect_dot(S("a.\r\n.b.\r\nc\r\n.\r\n"), S("a.\r\nb.\r\nc\r\n"), SMTP_DATA_OK, 15);
    /* ". " is not a terminator */
    expect_dot(S(". \r\n.\r\n"), S(" \r\n"), SMTP_DATA_OK, 7);
}

static void test_trailing_bytes_not_consumed(void **state)
{
    const char in[] = "x\r\n.\r\nQUIT\r\n";
    struct smtp_data d;
    struct cap c;
    size_t got;

    expect_dot(S("x\r\n.\r\nQUIT\r\n"), S("x\r\n"), SMTP_DATA_OK, 6);
    memset(&c, 0, sizeof(c));
    smtp_data_init(&d, SMTP_DATA_DOT, 0, 0);
    got = smtp_data_feed(&d, in, sizeof(in) - 1, cap_sink, &c);
    assert_int_equal(got, 6);
    assert_true(smtp_data_done(&d));
    assert_string_equal(in + got, "QUIT\r\n");
    /* once done, nothing more is consumed */
    assert_int_equal(smtp_data_feed(&d, in + got, 6, cap_sink, &c), 0);
    assert_int_equal(c.len, 3);
    cap_free(&c);
}

static void test_not_terminated(void **state)
{
    struct run r;

    check_all_splits(SMTP_DATA_DOT, S("abc\r\n.\r"), 0, 0, &r);
    assert_false(r.done);
    assert_int_equal(r.consumed, 7);
    assert_int_equal(r.result, SMTP_DATA_OK);
    assert_int_equal(r.out.len, 5);
    cap_free(&r.out);
}

static void test_smuggling_sequences(void **state)
{
    /* each of these must NOT end the data; only the final CRLF.CRLF does */
    expect_dot(S("a\n.\nb\r\n.\r\n"), NULL, 0, SMTP_DATA_BARE_LF, 10);
    expect_dot(S("a\r.\rb\r\n.\r\n"), NULL, 0, SMTP_DATA_BARE_CR, 10);
    expect_dot(S("a\n.\r\nb\r\n.\r\n"), NULL, 0, SMTP_DATA_BARE_LF, 11);
    expect_dot(S("a\r\n.\nb\r\n.\r\n"), NULL, 0, SMTP_DATA_BARE_LF, 11);
    expect_dot(S("a\r\n.\rb\r\n.\r\n"), NULL, 0, SMTP_DATA_BARE_CR, 11);
    expect_dot(S("a\r.\r\nb\r\n.\r\n"), NULL, 0, SMTP_DATA_BARE_CR, 11);
    /* at the very start too */
    expect_dot(S(".\nx\r\n.\r\n"), NULL, 0, SMTP_DATA_BARE_LF, 8);
    expect_dot(S("\n.\r\nx\r\n.\r\n"), NULL, 0, SMTP_DATA_BARE_LF, 10);
    /* a bare CR before a proper CRLF: the CRLF still counts as a line end */
    expect_dot(S("a\r\r\n.\r\n"), NULL, 0, SMTP_DATA_BARE_CR, 7);
    /* never terminated at all */
    expect_dot_lim(S("a\n.\n"), 0, 0, NULL, 0, SMTP_DATA_BARE_LF, 4, 0);
    expect_dot_lim(S("a\r.\r"), 0, 0, NULL, 0, SMTP_DATA_BARE_CR, 4, 0);
}

static void test_violation_stops_sink(void **state)
{
    struct run r;

    check_all_splits(SMTP_DATA_DOT, S("good\r\nba\nd\r\nmore\r\n.\r\nNEXT"), 0, 0, &r);
    assert_int_equal(r.result, SMTP_DATA_BARE_LF);
    assert_true(r.done);
    assert_int_equal(r.consumed, 21);
    /* bytes before the violation may have been passed on; nothing after it */
    assert_true(r.out.len <= 8);
    assert_memory_equal(r.out.buf, "good\r\nba", r.out.len);
    /* the total still covers the whole message */
    assert_int_equal(r.total, 18);
    cap_free(&r.out);
}

static void test_line_limit(void **state)
{
    /* line length includes CRLF: "abc\r\n" is 5 */
    expect_dot_lim(S("abc\r\n.\r\n"), 5, 0, S("abc\r\n"), SMTP_DATA_OK, 8, 1);
    expect_dot_lim(S("abcd\r\n.\r\n"), 5, 0, NULL, 0, SMTP_DATA_LINE_TOO_LONG, 9, 1);
    /* the stuffing dot is a received byte and counts */
    expect_dot_lim(S("..a\r\n.\r\n"), 5, 0, S(".a\r\n"), SMTP_DATA_OK, 8, 1);
    expect_dot_lim(S("..ab\r\n.\r\n"), 5, 0, NULL, 0, SMTP_DATA_LINE_TOO_LONG, 9, 1);
    /* per line: many short lines are fine */
    expect_dot_lim(S("abc\r\nabc\r\nabc\r\n.\r\n"), 5, 0, S("abc\r\nabc\r\nabc\r\n"), SMTP_DATA_OK,
                   18, 1);
    /* the terminator is found after a too long line */
    expect_dot_lim(S("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n.\r\nRSET\r\n"), 10, 0, NULL, 0,
                   SMTP_DATA_LINE_TOO_LONG, 37, 1);
}

static void test_size_limit(void **state)
{
    /* the size limit counts output bytes: ".ab\r\n" is 5 */
    expect_dot_lim(S("..ab\r\n.\r\n"), 0, 5, S(".ab\r\n"), SMTP_DATA_OK, 9, 1);
    expect_dot_lim(S("..ab\r\n.\r\n"), 0, 4, NULL, 0, SMTP_DATA_TOO_BIG, 9, 1);
    expect_dot_lim(S("abcdefgh\r\nabcdefgh\r\n.\r\nX"), 0, 12, NULL, 0, SMTP_DATA_TOO_BIG, 23, 1);
    expect_dot_lim(S(".\r\n"), 0, 1, "", 0, SMTP_DATA_OK, 3, 1);
}

static void test_size_limit_keeps_crlf_whole(void **state)
{
    struct run r;

    /* the limit falls between CR and LF: the CR must not be passed on alone */
    check_all_splits(SMTP_DATA_DOT, S("abc\r\n.\r\n"), 0, 4, &r);
    assert_int_equal(r.result, SMTP_DATA_TOO_BIG);
    assert_int_equal(r.out.len, 3);
    assert_memory_equal(r.out.buf, "abc", 3);
    cap_free(&r.out);
}

static void test_total_after_violation(void **state)
{
    struct run r;

    check_all_splits(SMTP_DATA_DOT, S("abcdefgh\r\nabcdefgh\r\n.\r\n"), 0, 12, &r);
    assert_int_equal(r.result, SMTP_DATA_TOO_BIG);
    assert_int_equal(r.total, 20);
    assert_true(r.out.len <= 12);
    cap_free(&r.out);
}

static void test_nul(void **state)
{
    expect_dot(S("a\0b\r\n.\r\n"), NULL, 0, SMTP_DATA_NUL, 8);
    expect_dot(S("\0\r\n.\r\n"), NULL, 0, SMTP_DATA_NUL, 6);
    expect_dot(S(".\0\r\n.\r\n"), NULL, 0, SMTP_DATA_NUL, 7);
}

static void test_first_violation_wins(void **state)
{
    expect_dot(S("a\0\nb\r\n.\r\n"), NULL, 0, SMTP_DATA_NUL, 9);
    expect_dot(S("a\n\0b\r\n.\r\n"), NULL, 0, SMTP_DATA_BARE_LF, 9);
}

static void test_sink_error(void **state)
{
    struct run r;

    run_feed(&r, SMTP_DATA_DOT, S("line1\r\nline2\r\n.\r\nX"), 0, 0, SPLIT_BYTES, 2);
    assert_int_equal(r.result, SMTP_DATA_SINK_ERROR);
    assert_true(r.done);
    assert_int_equal(r.consumed, 17);
    assert_int_equal(r.out.calls, 2);
    cap_free(&r.out);
}

static void test_raw_basic(void **state)
{
    struct run r;

    /* no dot handling in RAW mode, everything consumed */
    check_all_splits(SMTP_DATA_RAW, S(".\r\n..x\r\n.\r\nafter\r\n"), 0, 0, &r);
    assert_int_equal(r.result, SMTP_DATA_OK);
    assert_int_equal(r.consumed, 18);
    assert_int_equal(r.out.len, 18);
    assert_memory_equal(r.out.buf, ".\r\n..x\r\n.\r\nafter\r\n", 18);
    cap_free(&r.out);

    check_all_splits(SMTP_DATA_RAW, S("a\nb\r\n"), 0, 0, &r);
    assert_int_equal(r.result, SMTP_DATA_BARE_LF);
    cap_free(&r.out);
    check_all_splits(SMTP_DATA_RAW, S("a\rb\r\n"), 0, 0, &r);
    assert_int_equal(r.result, SMTP_DATA_BARE_CR);
    cap_free(&r.out);
    check_all_splits(SMTP_DATA_RAW, S("ab\r"), 0, 0, &r);
    assert_int_equal(r.result, SMTP_DATA_BARE_CR);
    assert_int_equal(r.out.len, 2);
    cap_free(&r.out);
    check_all_splits(SMTP_DATA_RAW, S("a\0b"), 0, 0, &r);
    assert_int_equal(r.result, SMTP_DATA_NUL);
    cap_free(&r.out);
    check_all_splits(SMTP_DATA_RAW, S("abcdef\r\n"), 5, 0, &r);
    assert_int_equal(r.result, SMTP_DATA_LINE_TOO_LONG);
    cap_free(&r.out);
    check_all_splits(SMTP_DATA_RAW, S("abcdef\r\n"), 0, 7, &r);
    assert_int_equal(r.result, SMTP_DATA_TOO_BIG);
    cap_free(&r.out);
}

static void test_raw_cr_across_chunks(void **state)
{
    struct smtp_data d;
    struct cap c;

    memset(&c, 0, sizeof(c));
    smtp_data_init(&d, SMTP_DATA_RAW, 1000, 0);
    assert_int_equal(smtp_data_feed(&d, "ab\r", 3, cap_sink, &c), 3);
    smtp_data_end_chunk(&d, 0); /* BDAT chunk ended, not LAST */
    assert_false(smtp_data_done(&d));
    assert_int_equal(smtp_data_result(&d), SMTP_DATA_OK);
    assert_int_equal(smtp_data_feed(&d, "\ncd\r\n", 5, cap_sink, &c), 5);
    smtp_data_end_chunk(&d, 1);
    assert_true(smtp_data_done(&d));
    assert_int_equal(smtp_data_result(&d), SMTP_DATA_OK);
    assert_int_equal(c.len, 8);
    assert_memory_equal(c.buf, "ab\r\ncd\r\n", 8);
    assert_int_equal(smtp_data_total(&d), 8);
    cap_free(&c);

    /* a CR at the end of the LAST chunk is bare */
    smtp_data_init(&d, SMTP_DATA_RAW, 1000, 0);
    assert_int_equal(smtp_data_feed(&d, "ab\r", 3, cap_sink, &c), 3);
    smtp_data_end_chunk(&d, 1);
    assert_int_equal(smtp_data_result(&d), SMTP_DATA_BARE_CR);
    cap_free(&c);

    /* a CR at the end of a chunk followed by a non-LF is bare */
    smtp_data_init(&d, SMTP_DATA_RAW, 1000, 0);
    assert_int_equal(smtp_data_feed(&d, "ab\r", 3, cap_sink, &c), 3);
    smtp_data_end_chunk(&d, 0);
    assert_int_equal(smtp_data_feed(&d, "x", 1, cap_sink, &c), 1);
    assert_int_equal(smtp_data_result(&d), SMTP_DATA_BARE_CR);
    cap_free(&c);

    /* BDAT 0 LAST: empty message */
    smtp_data_init(&d, SMTP_DATA_RAW, 1000, 0);
    smtp_data_end_chunk(&d, 1);
    assert_true(smtp_data_done(&d));
    assert_int_equal(smtp_data_result(&d), SMTP_DATA_OK);
    assert_int_equal(smtp_data_total(&d), 0);
}

static void test_random_split_property(void **state)
{
    static const char alpha[] = {'\r', '\n', '.', 'a', '\0', '\r', '\n', '.'};
    char in[48];
    int iter;

    rng_state = 777;
    for (iter = 0; iter < 3000; iter++) {
        size_t len = rng() % sizeof(in);
        struct run r;
        size_t i;

        for (i = 0; i < len; i++)
            in[i] = alpha[rng() % sizeof(alpha)];
        check_all_splits(SMTP_DATA_DOT, in, len, (iter % 3) ? 6 : 0, (iter % 5) ? 20 : 0, &r);
        /* the output never contains a bare CR or LF */
        for (i = 0; i < r.out.len; i++) {
            if (r.out.buf[i] == '\r')
                assert_true(i + 1 < r.out.len && r.out.buf[i + 1] == '\n');
            if (r.out.buf[i] == '\n')
                assert_true(i > 0 && r.out.buf[i - 1] == '\r');
            assert_int_not_equal(r.out.buf[i], '\0');
        }
        /* done means the consumed input ends with CRLF.CRLF or is ".CRLF" */
        if (r.done) {
            assert_true(r.consumed >= 3);
            assert_memory_equal(in + r.consumed - 3, ".\r\n", 3);
            assert_true(r.consumed == 3 || (r.consumed >= 5 && in[r.consumed - 5] == '\r' &&
                                            in[r.consumed - 4] == '\n'));
        } else {
            assert_int_equal(r.consumed, len);
        }
        cap_free(&r.out);
        check_all_splits(SMTP_DATA_RAW, in, len, 0, 0, &r);
        cap_free(&r.out);
    }
}

static void test_result_replies(void **state)
{
    assert_string_equal(smtp_data_result_reply(SMTP_DATA_TOO_BIG), "552 5.3.4 Message too big");
    for (int r = SMTP_DATA_LINE_TOO_LONG; r <= SMTP_DATA_SINK_ERROR; r++) {
        const char *s = smtp_data_result_reply((enum smtp_data_result)r);
        assert_non_null(s);
        assert_true(s[0] == '4' || s[0] == '5');
        assert_int_equal(s[3], ' ');
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple),
        cmocka_unit_test(test_empty_message),
        cmocka_unit_test(test_dot_unstuffing),
        cmocka_unit_test(test_trailing_bytes_not_consumed),
        cmocka_unit_test(test_not_terminated),
        cmocka_unit_test(test_smuggling_sequences),
        cmocka_unit_test(test_violation_stops_sink),
        cmocka_unit_test(test_line_limit),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_size_limit_keeps_crlf_whole),
        cmocka_unit_test(test_total_after_violation),
        cmocka_unit_test(test_nul),
        cmocka_unit_test(test_first_violation_wins),
        cmocka_unit_test(test_sink_error),
        cmocka_unit_test(test_raw_basic),
        cmocka_unit_test(test_raw_cr_across_chunks),
        cmocka_unit_test(test_random_split_property),
        cmocka_unit_test(test_result_replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
