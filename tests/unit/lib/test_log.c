/*
 * test_log.c - unit tests for src/lib/log.c: log_quote escaping and
 * truncation, level parsing, and the stderr line format (stderr is
 * redirected to a temporary file with dup2).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/err.h"
#include "lib/log.h"

static const char *q(char *out, size_t outsz, const char *s)
{
    return log_quote(out, outsz, s, strlen(s));
}

static void test_quote_plain(void **state)
{
    char out[64];

    assert_string_equal(q(out, sizeof(out), "mx.example.org"), "mx.example.org");
    assert_string_equal(q(out, sizeof(out), "user@example.org"), "user@example.org");
}

static void test_quote_empty(void **state)
{
    char out[64];

    assert_string_equal(log_quote(out, sizeof(out), "", 0), "\"\"");
    assert_string_equal(log_quote(out, sizeof(out), NULL, 0), "\"\"");
}

static void test_quote_spaces_quotes_backslash(void **state)
{
    char out[64];

    assert_string_equal(q(out, sizeof(out), "a b"), "\"a b\"");
    assert_string_equal(q(out, sizeof(out), "say \"hi\""), "\"say \\\"hi\\\"\"");
    assert_string_equal(q(out, sizeof(out), "c:\\x"), "\"c:\\\\x\"");
}

static void test_quote_control_and_crlf(void **state)
{
    char out[64];

    assert_string_equal(q(out, sizeof(out), "a\r\nb"), "\"a\\x0d\\x0ab\"");
    assert_string_equal(q(out, sizeof(out), "\x1b[31m"), "\"\\x1b[31m\"");
    assert_string_equal(q(out, sizeof(out), "\x7f"), "\"\\x7f\"");
    assert_string_equal(q(out, sizeof(out), "caf\xc3\xa9"), "\"caf\\xc3\\xa9\"");
    /* forged log line attempt stays on one line */
    q(out, sizeof(out), "x\n2026-01-01T00:00:00.000Z postern[1]: info fake");
    assert_null(strchr(out, '\n'));
}

static void test_quote_nul_bytes(void **state)
{
    char out[64];

    log_quote(out, sizeof(out), "a\0b", 3);
    assert_string_equal(out, "\"a\\x00b\"");
}

static void test_quote_truncation(void **state)
{
    char out[12];
    char big[100];

    memset(big, 'a', sizeof(big));
    log_quote(out, sizeof(out), big, sizeof(big));
    assert_int_equal(strlen(out), sizeof(out) - 1);
    assert_string_equal(out, "aaaaaaaa...");

    /* quoted and truncated: still ends with ..." */
    memset(big, ' ', sizeof(big));
    log_quote(out, sizeof(out), big, sizeof(big));
    assert_true(strlen(out) < sizeof(out));
    assert_int_equal(out[0], '"');
    assert_string_equal(out + strlen(out) - 4, "...\"");

    /* an escape sequence is never cut in half */
    log_quote(out, sizeof(out), "\x01\x01\x01\x01\x01", 5);
    assert_string_equal(out, "\"\\x01...\"");
}

static void test_quote_exact_fit(void **state)
{
    char out[6];

    /* "abcde" needs 6 bytes with the NUL: fits without truncation */
    assert_string_equal(q(out, sizeof(out), "abcde"), "abcde");
    assert_string_equal(q(out, sizeof(out), "abcdef"), "ab...");
}

static void test_quote_tiny_buffers(void **state)
{
    char out[4];

    memset(out, 'Z', sizeof(out));
    log_quote(out, 1, "abc def", 7);
    assert_string_equal(out, "");
    log_quote(out, 2, "abc def", 7);
    assert_true(strlen(out) <= 1);
    log_quote(out, 4, "abc def", 7);
    assert_true(strlen(out) <= 3);
    assert_ptr_equal(log_quote(out, 0, "x", 1), out);
}

static void test_level_parse(void **state)
{
    enum log_level l;

    assert_int_equal(log_level_parse("debug", &l), 0);
    assert_int_equal(l, LOG_LVL_DEBUG);
    assert_int_equal(log_level_parse("INFO", &l), 0);
    assert_int_equal(l, LOG_LVL_INFO);
    assert_int_equal(log_level_parse("warn", &l), 0);
    assert_int_equal(l, LOG_LVL_WARN);
    assert_int_equal(log_level_parse("warning", &l), 0);
    assert_int_equal(l, LOG_LVL_WARN);
    assert_int_equal(log_level_parse("error", &l), 0);
    assert_int_equal(l, LOG_LVL_ERROR);
    assert_int_equal(log_level_parse("fatal", &l), 0);
    assert_int_equal(l, LOG_LVL_FATAL);
    assert_int_equal(log_level_parse("", &l), PST_EINVAL);
    assert_int_equal(log_level_parse("verbose", &l), PST_EINVAL);
    assert_int_equal(log_level_parse("info ", &l), PST_EINVAL);
    assert_int_equal(log_level_parse(NULL, &l), PST_EINVAL);
}

/* capture - run log calls with stderr redirected to a temp file; returns its text (static). */
static char captured[8192];

static int capture_begin(void)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    int fd, saved;

    if (dir == NULL || dir[0] == '\0')
        dir = "/tmp";
    assert_true(snprintf(path, sizeof(path), "%s/postern-test-log-XXXXXX", dir) <
                (int)sizeof(path));
    fd = mkstemp(path);

    assert_true(fd >= 0);
    unlink(path);
    fflush(stderr);
    saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    close(fd);
    return saved;
}

static const char *capture_end(int saved)
{
    ssize_t n;

    assert_int_equal(lseek(STDERR_FILENO, 0, SEEK_SET), 0);
    n = read(STDERR_FILENO, captured, sizeof(captured) - 1);
    assert_true(n >= 0);
    captured[n] = '\0';
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    return captured;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static void test_stderr_line_format(void **state)
{
    char expect_tail[128];
    const char *out, *p;
    int saved, n;

    log_init("posttest", LOG_LVL_INFO, LOG_TO_STDERR);
    saved = capture_begin();
    log_info("smtpd connected id=%s addr=%s", "5f1c", "192.0.2.7");
    out = capture_end(saved);

    /* 2026-11-24T20:49:00.123Z posttest[1234]: info smtpd connected ... */
    assert_true(strlen(out) > 25);
    for (p = out; p < out + 24; p++) {
        size_t i = (size_t)(p - out);
        if (i == 4 || i == 7)
            assert_int_equal(*p, '-');
        else if (i == 10)
            assert_int_equal(*p, 'T');
        else if (i == 13 || i == 16)
            assert_int_equal(*p, ':');
        else if (i == 19)
            assert_int_equal(*p, '.');
        else if (i == 23)
            assert_int_equal(*p, 'Z');
        else
            assert_true(is_digit(*p));
    }
    n = snprintf(expect_tail, sizeof(expect_tail),
                 " posttest[%ld]: info smtpd connected id=5f1c addr=192.0.2.7\n", (long)getpid());
    assert_true(n > 0 && (size_t)n < sizeof(expect_tail));
    assert_string_equal(out + 24, expect_tail);
}

static void test_stderr_level_filter_and_sanitize(void **state)
{
    const char *out;
    int saved;

    log_init("posttest", LOG_LVL_WARN, LOG_TO_STDERR);
    assert_false(log_enabled(LOG_LVL_INFO));
    assert_true(log_enabled(LOG_LVL_ERROR));
    saved = capture_begin();
    log_info("dropped");
    log_debug("dropped too");
    log_warn("kept %s", "evil\r\nforged line");
    log_set_tag("posttest/child");
    log_error("second");
    out = capture_end(saved);
    assert_null(strstr(out, "dropped"));
    assert_non_null(strstr(out, "posttest[")); /* first line, first tag */
    assert_non_null(strstr(out, ": warn kept evil??forged line\n"));
    assert_non_null(strstr(out, "posttest/child["));
    assert_non_null(strstr(out, ": error second\n"));
    /* exactly two lines */
    assert_non_null(strchr(out, '\n'));
    assert_null(strchr(strchr(strchr(out, '\n') + 1, '\n') + 1, '\n'));
    log_init("posttest", LOG_LVL_INFO, LOG_TO_STDERR);
}

static void test_stderr_long_message_truncated(void **state)
{
    static char big[10000];
    const char *out;
    int saved;

    memset(big, 'x', sizeof(big) - 1);
    log_init("posttest", LOG_LVL_INFO, LOG_TO_STDERR);
    saved = capture_begin();
    log_info("big %s", big);
    out = capture_end(saved);
    assert_true(strlen(out) < 8192);
    assert_string_equal(out + strlen(out) - 4, "...\n");
    assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quote_plain),
        cmocka_unit_test(test_quote_empty),
        cmocka_unit_test(test_quote_spaces_quotes_backslash),
        cmocka_unit_test(test_quote_control_and_crlf),
        cmocka_unit_test(test_quote_nul_bytes),
        cmocka_unit_test(test_quote_truncation),
        cmocka_unit_test(test_quote_exact_fit),
        cmocka_unit_test(test_quote_tiny_buffers),
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test(test_stderr_line_format),
        cmocka_unit_test(test_stderr_level_filter_and_sanitize),
        cmocka_unit_test(test_stderr_long_message_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
