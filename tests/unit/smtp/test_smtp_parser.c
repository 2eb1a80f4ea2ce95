/*
 * test_smtp_parser.c - SMTP command line parsing: every verb, every MAIL/RCPT
 * parameter, case-insensitivity, error replies with RFC 3463 codes,
 * relay-trick addresses, length limits and NUL bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp_parser.h"

static struct smtp_cmd cmd;

/* ok - parse a NUL-terminated line that must succeed. */
static void ok_len(const char *line, size_t len, enum smtp_verb verb)
{
    const char *reply = "unset";
    int rc = smtp_cmd_parse(line, len, &cmd, &reply);

    if (rc != 0)
        fail_msg("\"%s\" failed rc=%d reply=%s", line, rc, reply ? reply : "(null)");
    assert_null(reply);
    assert_int_equal(cmd.verb, verb);
}

static void ok(const char *line, enum smtp_verb verb)
{
    ok_len(line, strlen(line), verb);
}

/* err - parse a line that must fail with rc and a reply starting with want. */
static void err_len(const char *line, size_t len, int want_rc, const char *want)
{
    const char *reply = NULL;
    int rc = smtp_cmd_parse(line, len, &cmd, &reply);

    if (rc != want_rc)
        fail_msg("\"%s\": rc=%d, want %d (reply %s)", line, rc, want_rc, reply ? reply : "(null)");
    assert_non_null(reply);
    if (strncmp(reply, want, strlen(want)) != 0)
        fail_msg("\"%s\": reply \"%s\", want \"%s...\"", line, reply, want);
}

static void err(const char *line, int want_rc, const char *want)
{
    err_len(line, strlen(line), want_rc, want);
}

static void test_verbs_and_case(void **state)
{
    static const struct {
        const char *line;
        enum smtp_verb verb;
    } t[] = {
        {"HELO mx.example", SMTP_V_HELO},
        {"EHLO mx.example", SMTP_V_EHLO},
        {"MAIL FROM:<a@b.example>", SMTP_V_MAIL},
        {"RCPT TO:<a@b.example>", SMTP_V_RCPT},
        {"DATA", SMTP_V_DATA},
        {"BDAT 10", SMTP_V_BDAT},
        {"RSET", SMTP_V_RSET},
        {"NOOP", SMTP_V_NOOP},
        {"QUIT", SMTP_V_QUIT},
        {"VRFY user", SMTP_V_VRFY},
        {"EXPN list", SMTP_V_EXPN},
        {"HELP", SMTP_V_HELP},
        {"STARTTLS", SMTP_V_STARTTLS},
        {"AUTH PLAIN", SMTP_V_AUTH},
        {"helo mx.example", SMTP_V_HELO},
        {"eHlO mx.example", SMTP_V_EHLO},
        {"mail from:<a@b.example>", SMTP_V_MAIL},
        {"Rcpt To:<a@b.example>", SMTP_V_RCPT},
        {"data", SMTP_V_DATA},
        {"bdat 1 last", SMTP_V_BDAT},
        {"rset", SMTP_V_RSET},
        {"noop", SMTP_V_NOOP},
        {"quit", SMTP_V_QUIT},
        {"vrfy x", SMTP_V_VRFY},
        {"expn x", SMTP_V_EXPN},
        {"help", SMTP_V_HELP},
        {"StartTls", SMTP_V_STARTTLS},
        {"auth login", SMTP_V_AUTH},
    };

    for (size_t i = 0; i < PST_ARRAY_LEN(t); i++)
        ok(t[i].line, t[i].verb);
    ok("eHlO x", SMTP_V_EHLO);
    assert_string_equal(cmd.verb_text, "eHlO");
}

static void test_verb_names(void **state)
{
    assert_string_equal(smtp_verb_name(SMTP_V_MAIL), "MAIL");
    assert_string_equal(smtp_verb_name(SMTP_V_STARTTLS), "STARTTLS");
    assert_string_equal(smtp_verb_name(SMTP_V_UNKNOWN), "UNKNOWN");
    assert_string_equal(smtp_verb_name(SMTP_V__COUNT), "UNKNOWN");
    for (int v = SMTP_V_HELO; v < SMTP_V__COUNT; v++)
        assert_string_not_equal(smtp_verb_name((enum smtp_verb)v), "UNKNOWN");
}

static void test_unknown_verbs(void **state)
{
    ok("FOO bar", SMTP_V_UNKNOWN);
    assert_string_equal(cmd.verb_text, "FOO");
    ok("MAILX FROM:<a@b>", SMTP_V_UNKNOWN);
    ok("MAIL:FROM:<a@b>", SMTP_V_UNKNOWN);
    ok("", SMTP_V_UNKNOWN);
    ok(" DATA", SMTP_V_UNKNOWN);
    ok("D4TA", SMTP_V_UNKNOWN);
    ok("\xc3\xa4HLO x", SMTP_V_UNKNOWN);
    ok("GET / HTTP/1.1", SMTP_V_UNKNOWN);
    ok("ABCDEFGHIJKLMNOPQRSTUVWXYZ", SMTP_V_UNKNOWN);
    assert_string_equal(cmd.verb_text, "ABCDEFGHIJKLMNO"); /* truncated to 15 */
}

static void test_helo_ehlo(void **state)
{
    char line[600];

    ok("EHLO mx.example.org", SMTP_V_EHLO);
    assert_string_equal(cmd.arg, "mx.example.org");
    ok("HELO [192.0.2.1]", SMTP_V_HELO);
    assert_string_equal(cmd.arg, "[192.0.2.1]");
    ok("EHLO x  ", SMTP_V_EHLO); /* trailing spaces ignored */
    assert_string_equal(cmd.arg, "x");
    err("EHLO", PST_EINVAL, "501 5.5.4 Syntax: EHLO");
    err("HELO", PST_EINVAL, "501 5.5.4 Syntax: HELO");
    err("EHLO ", PST_EINVAL, "501 5.5.4");
    err("EHLO  x", PST_EINVAL, "501 5.5.4");
    err("EHLO a b", PST_EINVAL, "501 5.5.4");
    err("EHLO a\tb", PST_EINVAL, "501 5.5.4");
    assert_int_equal(cmd.verb, SMTP_V_EHLO); /* verb still known on error */

    /* exactly SMTP_ARG_MAX is fine, one more is too long */
    memcpy(line, "EHLO ", 5);
    memset(line + 5, 'a', SMTP_ARG_MAX);
    line[5 + SMTP_ARG_MAX] = '\0';
    ok(line, SMTP_V_EHLO);
    assert_int_equal(strlen(cmd.arg), SMTP_ARG_MAX);
    line[5 + SMTP_ARG_MAX] = 'a';
    line[6 + SMTP_ARG_MAX] = '\0';
    err(line, PST_ELIMIT, "501 5.5.4");
}

static void test_no_argument_verbs(void **state)
{
    ok("DATA", SMTP_V_DATA);
    ok("DATA   ", SMTP_V_DATA);
    ok("RSET", SMTP_V_RSET);
    ok("QUIT", SMTP_V_QUIT);
    ok("STARTTLS", SMTP_V_STARTTLS);
    err("DATA x", PST_EINVAL, "501 5.5.4");
    err("RSET now", PST_EINVAL, "501 5.5.4");
    err("QUIT bye", PST_EINVAL, "501 5.5.4");
    err("STARTTLS x", PST_EINVAL, "501 5.5.4");
    assert_int_equal(cmd.verb, SMTP_V_STARTTLS);
}

static void test_optional_and_required_args(void **state)
{
    char line[600];

    ok("NOOP", SMTP_V_NOOP);
    assert_string_equal(cmd.arg, "");
    ok("NOOP anything at all", SMTP_V_NOOP);
    assert_string_equal(cmd.arg, "anything at all");
    ok("HELP", SMTP_V_HELP);
    ok("HELP MAIL", SMTP_V_HELP);
    assert_string_equal(cmd.arg, "MAIL");
    err("HELP a\x01", PST_EINVAL, "501 5.5.4");
    ok("VRFY John Smith", SMTP_V_VRFY);
    assert_string_equal(cmd.arg, "John Smith");
    ok("EXPN staff", SMTP_V_EXPN);
    assert_string_equal(cmd.arg, "staff");
    err("VRFY", PST_EINVAL, "501 5.5.4 Syntax: VRFY");
    err("EXPN", PST_EINVAL, "501 5.5.4 Syntax: EXPN");
    err("VRFY a\x7f", PST_EINVAL, "501 5.5.4");

    memcpy(line, "NOOP ", 5);
    memset(line + 5, 'n', SMTP_ARG_MAX + 1);
    line[6 + SMTP_ARG_MAX] = '\0';
    err(line, PST_ELIMIT, "501 5.5.4");
}

static void test_mail_basic(void **state)
{
    ok("MAIL FROM:<user@example.org>", SMTP_V_MAIL);
    assert_string_equal(cmd.addr.local, "user");
    assert_string_equal(cmd.addr.domain, "example.org");
    assert_false(cmd.addr.is_null);
    assert_false(cmd.has_size);
    assert_int_equal(cmd.body, SMTP_BODY_NONE);
    assert_false(cmd.smtputf8);

    ok("MAIL FROM:<>", SMTP_V_MAIL);
    assert_true(cmd.addr.is_null);

    /* a single space after the colon is a tolerated client bug */
    ok("MAIL FROM: <user@example.org>", SMTP_V_MAIL);
    assert_string_equal(cmd.addr.local, "user");
    ok("mail from: <>", SMTP_V_MAIL);
    assert_true(cmd.addr.is_null);
    ok("MAIL FROM:<a@b.example>   ", SMTP_V_MAIL);

    /* but nothing else odd */
    err("MAIL FROM:  <a@b.example>", PST_EINVAL, "501 5.1.7");
    err("MAIL FROM:a@b.example", PST_EINVAL, "501 5.1.7");
    err("MAIL FROM:<a@b.example", PST_EINVAL, "501 5.1.7");
    err("MAIL FROM:<a@b.example>x", PST_EINVAL, "501 5.1.7");
    err("MAIL FROM:<a@b.example><c@d.example>", PST_EINVAL, "501 5.1.7");
    err("MAIL FROM:<a@b.example>  SIZE=10", PST_EINVAL, "501 5.5.4");
    err("MAIL FROM:<a@b.example> SIZE=10  BODY=7BIT", PST_EINVAL, "501 5.5.4");
    err("MAIL FROM :<a@b.example>", PST_EINVAL, "501 5.5.4 Syntax: MAIL");
    err("MAIL  FROM:<a@b.example>", PST_EINVAL, "501 5.5.4 Syntax: MAIL");
    err("MAIL FROM<a@b.example>", PST_EINVAL, "501 5.5.4 Syntax: MAIL");
    err("MAIL TO:<a@b.example>", PST_EINVAL, "501 5.5.4 Syntax: MAIL");
    err("MAIL FROM:", PST_EINVAL, "501 5.5.4 Syntax: MAIL");
    err("MAIL FROM: ", PST_EINVAL, "501 5.5.4 Syntax: MAIL");
    err("MAIL", PST_EINVAL, "501 5.5.4 Syntax: MAIL");
    err("MAIL FROM:<a b@c.example>", PST_EINVAL, "501 5.1.7");
    err("MAIL FROM:<@>", PST_EINVAL, "501 5.1.7");
    err("MAIL FROM:<a@>", PST_EINVAL, "501 5.1.7");
    err("MAIL FROM:<Postmaster>", PST_EINVAL, "501 5.1.7");
}

static void test_mail_all_params(void **state)
{
    ok("MAIL FROM:<a@b.example> SIZE=123 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x", SMTP_V_MAIL);
    assert_true(cmd.has_size);
    assert_int_equal(cmd.size, 123);
    assert_int_equal(cmd.body, SMTP_BODY_8BITMIME);
    assert_true(cmd.smtputf8);
    assert_int_equal(cmd.ret, 2);
    assert_string_equal(cmd.envid, "x");

    /* keywords and keyword values are case-insensitive */
    ok("mail from:<a@b.example> size=7 body=7bit smtputf8 ret=full envid=Q+2BR auth=<>",
       SMTP_V_MAIL);
    assert_int_equal(cmd.size, 7);
    assert_int_equal(cmd.body, SMTP_BODY_7BIT);
    assert_true(cmd.smtputf8);
    assert_int_equal(cmd.ret, 1);
    assert_string_equal(cmd.envid, "Q+2BR");

    /* parameters in any order */
    ok("MAIL FROM:<> ENVID=abc SIZE=0", SMTP_V_MAIL);
    assert_true(cmd.addr.is_null);
    assert_true(cmd.has_size);
    assert_int_equal(cmd.size, 0);
}

static void test_mail_size(void **state)
{
    ok("MAIL FROM:<a@b.example> SIZE=12345678901234567890", SMTP_V_MAIL);
    assert_true(cmd.size == 12345678901234567890ull);
    ok("MAIL FROM:<a@b.example> SIZE=18446744073709551615", SMTP_V_MAIL);
    assert_true(cmd.size == UINT64_MAX);
    /* 20 digits beyond uint64_t: clamped, the session answers 552 */
    ok("MAIL FROM:<a@b.example> SIZE=99999999999999999999", SMTP_V_MAIL);
    assert_true(cmd.size == UINT64_MAX);
    err("MAIL FROM:<a@b.example> SIZE=123456789012345678901", PST_EINVAL, "501 5.5.4");
    err("MAIL FROM:<a@b.example> SIZE=", PST_EINVAL, "501 5.5.4");
    err("MAIL FROM:<a@b.example> SIZE", PST_EINVAL, "501 5.5.4");
    err("MAIL FROM:<a@b.example> SIZE=abc", PST_EINVAL, "501 5.5.4");
    err("MAIL FROM:<a@b.example> SIZE=-1", PST_EINVAL, "501 5.5.4");
    err("MAIL FROM:<a@b.example> SIZE=+1", PST_EINVAL, "501 5.5.4");
    err("MAIL FROM:<a@b.example> SIZE=1k", PST_EINVAL, "501 5.5.4");
    err("MAIL FROM:<a@b.example> SIZE==1", PST_EINVAL, "501 5.5.4");
}

static void test_mail_body_ret_envid_auth(void **state)
{
    char line[300];
    int n;

    err("MAIL FROM:<a@b.example> BODY=BINARYMIME", PST_EINVAL, "555 5.5.4");
    err("MAIL FROM:<a@b.example> BODY=8BIT", PST_EINVAL, "501 5.5.4");
    err("MAIL FROM:<a@b.example> BODY", PST_EINVAL, "501 5.5.4");
    err("MAIL FROM:<a@b.example> RET=ALL", PST_EINVAL, "501 5.5.4");
    err("MAIL FROM:<a@b.example> RET", PST_EINVAL, "501 5.5.4");
    err("MAIL FROM:<a@b.example> SMTPUTF8=yes", PST_EINVAL, "501 5.5.4");

    /* ENVID is xtext: "+" then two UPPER hex digits */
    ok("MAIL FROM:<a@b.example> ENVID=a+2Bb+3D", SMTP_V_MAIL);
    assert_string_equal(cmd.envid, "a+2Bb+3D");
    err("MAIL FROM:<a@b.example> ENVID=a+2b", PST_EINVAL, "501 5.5.4");
    err("MAIL FROM:<a@b.example> ENVID=a+", PST_EINVAL, "501 5.5.4");
    err("MAIL FROM:<a@b.example> ENVID=a+4", PST_EINVAL, "501 5.5.4");
    err("MAIL FROM:<a@b.example> ENVID=a+G0", PST_EINVAL, "501 5.5.4");
    err("MAIL FROM:<a@b.example> ENVID=a+b", PST_EINVAL, "501 5.5.4");
    err("MAIL FROM:<a@b.example> ENVID=", PST_EINVAL, "501 5.5.4");
    err("MAIL FROM:<a@b.example> ENVID", PST_EINVAL, "501 5.5.4");
    err("MAIL FROM:<a@b.example> ENVID=\xc3\xa4", PST_EINVAL, "501 5.5.4");
    /* 100 characters is the maximum */
    n = snprintf(line, sizeof(line), "MAIL FROM:<a@b.example> ENVID=");
    assert_true(n > 0 && (size_t)n < sizeof(line));
    memset(line + n, 'e', SMTP_ENVID_MAX);
    line[n + SMTP_ENVID_MAX] = '\0';
    ok(line, SMTP_V_MAIL);
    assert_int_equal(strlen(cmd.envid), SMTP_ENVID_MAX);
    line[n + SMTP_ENVID_MAX] = 'e';
    line[n + SMTP_ENVID_MAX + 1] = '\0';
    err(line, PST_ELIMIT, "501 5.5.4");

    ok("MAIL FROM:<a@b.example> AUTH=<>", SMTP_V_MAIL);
    ok("MAIL FROM:<a@b.example> AUTH=user+40b.example", SMTP_V_MAIL);
    err("MAIL FROM:<a@b.example> AUTH=", PST_EINVAL, "501 5.5.4");
    err("MAIL FROM:<a@b.example> AUTH=a+zz", PST_EINVAL, "501 5.5.4");
}

static void test_unknown_and_repeated_params(void **state)
{
    err("MAIL FROM:<a@b.example> FOO=bar", PST_EINVAL, "555 5.5.4");
    err("MAIL FROM:<a@b.example> XYZ", PST_EINVAL, "555 5.5.4");
    err("MAIL FROM:<a@b.example> NOTIFY=NEVER", PST_EINVAL, "555 5.5.4");
    err("MAIL FROM:<a@b.example> ORCPT=rfc822;a@b", PST_EINVAL, "555 5.5.4");
    err("RCPT TO:<a@b.example> SIZE=1", PST_EINVAL, "555 5.5.4");
    err("RCPT TO:<a@b.example> BODY=7BIT", PST_EINVAL, "555 5.5.4");
    err("MAIL FROM:<a@b.example> SIZE=1 SIZE=2", PST_EINVAL, "555 5.5.4");
    err("MAIL FROM:<a@b.example> SMTPUTF8 smtputf8", PST_EINVAL, "555 5.5.4");
    err("RCPT TO:<a@b.example> NOTIFY=NEVER NOTIFY=NEVER", PST_EINVAL, "555 5.5.4");
    /* malformed keyword or value */
    err("MAIL FROM:<a@b.example> -SIZE=1", PST_EINVAL, "501 5.5.4");
    err("MAIL FROM:<a@b.example> SI_ZE=1", PST_EINVAL, "501 5.5.4");
    err("MAIL FROM:<a@b.example> =1", PST_EINVAL, "501 5.5.4");
    err("MAIL FROM:<a@b.example> FOO=a\tb", PST_EINVAL, "501 5.5.4");
    err("MAIL FROM:<a@b.example> FOO=", PST_EINVAL, "501 5.5.4");
}

static void test_smtputf8(void **state)
{
    ok("MAIL FROM:<j\xc3\xb6rg@b\xc3\xbc\x63her.example> SMTPUTF8", SMTP_V_MAIL);
    assert_true(cmd.smtputf8);
    assert_true(cmd.addr.has_utf8);
    assert_string_equal(cmd.addr.local, "j\xc3\xb6rg");
    err("MAIL FROM:<j\xc3\xb6rg@example.org>", PST_EINVAL, "553 5.6.7");
    err("MAIL FROM:<j\xc3\xb6rg@example.org> SIZE=10", PST_EINVAL, "553 5.6.7");
    /* invalid UTF-8 even with SMTPUTF8 */
    err("MAIL FROM:<j\xff@example.org> SMTPUTF8", PST_EINVAL, "501 5.1.7");
    /* RCPT cannot know the transaction state: accepted, has_utf8 reported */
    ok("RCPT TO:<j\xc3\xb6rg@example.org>", SMTP_V_RCPT);
    assert_true(cmd.addr.has_utf8);
    ok("RCPT TO:<jorg@example.org>", SMTP_V_RCPT);
    assert_false(cmd.addr.has_utf8);
    assert_memory_equal(SMTP_REPLY_NEED_SMTPUTF8, "553 5.6.7 ", 10);
}

static void test_rcpt_basic(void **state)
{
    ok("RCPT TO:<user@example.org>", SMTP_V_RCPT);
    assert_string_equal(cmd.addr.local, "user");
    assert_string_equal(cmd.addr.domain, "example.org");
    assert_int_equal(cmd.notify, 0);
    assert_string_equal(cmd.orcpt, "");
    ok("RCPT TO: <user@example.org>", SMTP_V_RCPT);
    ok("rcpt to:<user@example.org>", SMTP_V_RCPT);
    ok("RCPT TO:<Postmaster>", SMTP_V_RCPT);
    ok("RCPT TO:<postmaster>", SMTP_V_RCPT);
    err("RCPT TO:<>", PST_EINVAL, "501 5.1.3");
    err("RCPT TO:user@example.org", PST_EINVAL, "501 5.1.3");
    err("RCPT TO:  <user@example.org>", PST_EINVAL, "501 5.1.3");
    err("RCPT TO:<user@example.org>junk", PST_EINVAL, "501 5.1.3");
    err("RCPT TO:<user>", PST_EINVAL, "501 5.1.3");
    err("RCPT FROM:<user@example.org>", PST_EINVAL, "501 5.5.4 Syntax: RCPT");
    err("RCPT TO", PST_EINVAL, "501 5.5.4 Syntax: RCPT");
    err("RCPT", PST_EINVAL, "501 5.5.4 Syntax: RCPT");
    err("RCPT TO:", PST_EINVAL, "501 5.5.4 Syntax: RCPT");
}

static void test_rcpt_notify(void **state)
{
    ok("RCPT TO:<a@b.example> NOTIFY=NEVER", SMTP_V_RCPT);
    assert_int_equal(cmd.notify, SMTP_NOTIFY_NEVER);
    ok("RCPT TO:<a@b.example> NOTIFY=SUCCESS,FAILURE,DELAY", SMTP_V_RCPT);
    assert_int_equal(cmd.notify, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY);
    ok("RCPT TO:<a@b.example> notify=delay,failure", SMTP_V_RCPT);
    assert_int_equal(cmd.notify, SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY);
    err("RCPT TO:<a@b.example> NOTIFY=NEVER,SUCCESS", PST_EINVAL, "501 5.5.4");
    err("RCPT TO:<a@b.example> NOTIFY=SUCCESS,NEVER", PST_EINVAL, "501 5.5.4");
    err("RCPT TO:<a@b.example> NOTIFY=SUCCESS,SUCCESS", PST_EINVAL, "501 5.5.4");
    err("RCPT TO:<a@b.example> NOTIFY=SUCCESS,", PST_EINVAL, "501 5.5.4");
    err("RCPT TO:<a@b.example> NOTIFY=,SUCCESS", PST_EINVAL, "501 5.5.4");
    err("RCPT TO:<a@b.example> NOTIFY=SUCCESS,,DELAY", PST_EINVAL, "501 5.5.4");
    err("RCPT TO:<a@b.example> NOTIFY=ALWAYS", PST_EINVAL, "501 5.5.4");
    err("RCPT TO:<a@b.example> NOTIFY=", PST_EINVAL, "501 5.5.4");
    err("RCPT TO:<a@b.example> NOTIFY", PST_EINVAL, "501 5.5.4");
}

static void test_rcpt_orcpt(void **state)
{
    char line[700];
    int n;

    ok("RCPT TO:<a@b.example> ORCPT=rfc822;a+40b.example", SMTP_V_RCPT);
    assert_string_equal(cmd.orcpt, "rfc822;a+40b.example");
    ok("RCPT TO:<a@b.example> NOTIFY=FAILURE ORCPT=rfc822;a@b.example", SMTP_V_RCPT);
    assert_int_equal(cmd.notify, SMTP_NOTIFY_FAILURE);
    assert_string_equal(cmd.orcpt, "rfc822;a@b.example");
    ok("RCPT TO:<a@b.example> ORCPT=utf-8;j\\x{00F6}rg@b.example", SMTP_V_RCPT);
    err("RCPT TO:<a@b.example> ORCPT=rfc822", PST_EINVAL, "501 5.5.4");
    err("RCPT TO:<a@b.example> ORCPT=;a@b", PST_EINVAL, "501 5.5.4");
    err("RCPT TO:<a@b.example> ORCPT=rfc822;", PST_EINVAL, "501 5.5.4");
    err("RCPT TO:<a@b.example> ORCPT=rf(c;a@b", PST_EINVAL, "501 5.5.4");
    err("RCPT TO:<a@b.example> ORCPT=rfc822;a+4", PST_EINVAL, "501 5.5.4");
    err("RCPT TO:<a@b.example> ORCPT=rfc822;a+4g", PST_EINVAL, "501 5.5.4");
    err("RCPT TO:<a@b.example> ORCPT", PST_EINVAL, "501 5.5.4");

    /* 500 characters is the maximum */
    n = snprintf(line, sizeof(line), "RCPT TO:<a@b.example> ORCPT=rfc822;");
    assert_true(n > 0 && (size_t)n < sizeof(line));
    memset(line + n, 'o', SMTP_ORCPT_MAX - 7);
    line[n + SMTP_ORCPT_MAX - 7] = '\0';
    ok(line, SMTP_V_RCPT);
    assert_int_equal(strlen(cmd.orcpt), SMTP_ORCPT_MAX);
    line[n + SMTP_ORCPT_MAX - 7] = 'o';
    line[n + SMTP_ORCPT_MAX - 6] = '\0';
    err(line, PST_ELIMIT, "501 5.5.4");
}

static void test_relay_tricks(void **state)
{
    /* % hack parses fine; relay policy is decided elsewhere */
    ok("RCPT TO:<user%other.example@local.example>", SMTP_V_RCPT);
    assert_string_equal(cmd.addr.local, "user%other.example");
    assert_string_equal(cmd.addr.domain, "local.example");
    /* source route dropped */
    ok("RCPT TO:<@a.example,@b.example:u@c.example>", SMTP_V_RCPT);
    assert_string_equal(cmd.addr.local, "u");
    assert_string_equal(cmd.addr.domain, "c.example");
    ok("MAIL FROM:<@a.example:u@c.example>", SMTP_V_MAIL);
    assert_string_equal(cmd.addr.domain, "c.example");
    /* quoted local part holding an @ */
    ok("RCPT TO:<\"u@x.example\"@local.example>", SMTP_V_RCPT);
    assert_string_equal(cmd.addr.local, "u@x.example");
    assert_true(cmd.addr.quoted);
    assert_string_equal(cmd.addr.domain, "local.example");
    /* a '>' inside quotes does not end the path */
    ok("MAIL FROM:<\"a>b\"@c.example> SIZE=5", SMTP_V_MAIL);
    assert_string_equal(cmd.addr.local, "a>b");
    assert_int_equal(cmd.size, 5);
    ok("MAIL FROM:<\"a\\\">b\"@c.example> SIZE=6", SMTP_V_MAIL);
    assert_string_equal(cmd.addr.local, "a\">b");
    assert_int_equal(cmd.size, 6);
    /* two @ is an error */
    err("RCPT TO:<u@x.example@y.example>", PST_EINVAL, "501 5.1.3");
    err("MAIL FROM:<u@x.example@y.example>", PST_EINVAL, "501 5.1.7");
    /* unterminated quote */
    err("MAIL FROM:<\"a@b.example>", PST_EINVAL, "501 5.1.7");
    err("RCPT TO:<a@[192.0.2.1]x>", PST_EINVAL, "501 5.1.3");
    ok("RCPT TO:<a@[192.0.2.1]>", SMTP_V_RCPT);
    assert_true(cmd.addr.is_literal);
}

static void test_address_lengths(void **state)
{
    char line[700];
    int n;

    /* local part of 64 is fine, 65 is too long */
    n = snprintf(line, sizeof(line), "MAIL FROM:<");
    memset(line + n, 'l', MAILADDR_LOCAL_MAX);
    snprintf(line + n + MAILADDR_LOCAL_MAX, sizeof(line) - (size_t)n - MAILADDR_LOCAL_MAX,
             "@b.example>");
    ok(line, SMTP_V_MAIL);
    assert_int_equal(strlen(cmd.addr.local), MAILADDR_LOCAL_MAX);
    memset(line + n, 'l', MAILADDR_LOCAL_MAX + 1);
    snprintf(line + n + MAILADDR_LOCAL_MAX + 1, sizeof(line) - (size_t)n - MAILADDR_LOCAL_MAX - 1,
             "@b.example>");
    err(line, PST_ELIMIT, "501 5.1.7");

    n = snprintf(line, sizeof(line), "RCPT TO:<");
    memset(line + n, 'l', MAILADDR_LOCAL_MAX + 1);
    snprintf(line + n + MAILADDR_LOCAL_MAX + 1, sizeof(line) - (size_t)n - MAILADDR_LOCAL_MAX - 1,
             "@b.example>");
    err(line, PST_ELIMIT, "501 5.1.3");

    /* a huge path with many labels */
    n = snprintf(line, sizeof(line), "RCPT TO:<a@");
    for (int i = 0; i < 100; i++)
        n += snprintf(line + n, sizeof(line) - (size_t)n, "abcde.");
    snprintf(line + n, sizeof(line) - (size_t)n, "example>");
    err(line, PST_ELIMIT, "501 5.1.3");
}

static void test_nul_and_control(void **state)
{
    err_len("MAIL FROM:<a\0b@c.example>", 25, PST_EINVAL, "500 5.5.2");
    err_len("NOOP\0", 5, PST_EINVAL, "500 5.5.2");
    err_len("\0", 1, PST_EINVAL, "500 5.5.2");
    err_len("XYZZY\0", 6, PST_EINVAL, "500 5.5.2");
    err_len("RCPT TO:<a@b.example> NOTIFY=NEVER\0", 35, PST_EINVAL, "500 5.5.2");
    err("DATA\r", PST_EINVAL, "500 5.5.2");
    err("MAIL FROM:<a@b.example>\nRCPT TO:<c@d.example>", PST_EINVAL, "500 5.5.2");
    /* length is honoured: bytes past len are not looked at */
    ok_len("QUITX", 4, SMTP_V_QUIT);
    ok_len("MAIL FROM:<a@b.example>>>>", 23, SMTP_V_MAIL);
}

static void test_bdat(void **state)
{
    ok("BDAT 100", SMTP_V_BDAT);
    assert_int_equal(cmd.chunk_size, 100);
    assert_false(cmd.last);
    ok("BDAT 0 LAST", SMTP_V_BDAT);
    assert_int_equal(cmd.chunk_size, 0);
    assert_true(cmd.last);
    ok("bdat 5 last", SMTP_V_BDAT);
    assert_true(cmd.last);
    ok("BDAT 18446744073709551615", SMTP_V_BDAT);
    assert_true(cmd.chunk_size == UINT64_MAX);
    err("BDAT 18446744073709551616", PST_ELIMIT, "501 5.5.4");
    err("BDAT 123456789012345678901", PST_EINVAL, "501 5.5.4");
    err("BDAT", PST_EINVAL, "501 5.5.4");
    err("BDAT x", PST_EINVAL, "501 5.5.4");
    err("BDAT -1", PST_EINVAL, "501 5.5.4");
    err("BDAT 1 LAST x", PST_EINVAL, "501 5.5.4");
    err("BDAT 1  LAST", PST_EINVAL, "501 5.5.4");
    err("BDAT 1 FIRST", PST_EINVAL, "501 5.5.4");
    err("BDAT  1", PST_EINVAL, "501 5.5.4");
    err("BDAT 1x", PST_EINVAL, "501 5.5.4");
}

static void test_auth(void **state)
{
    char line[700];
    int n;

    ok("AUTH PLAIN", SMTP_V_AUTH);
    assert_string_equal(cmd.arg, "PLAIN");
    ok("auth plain AHRpbQB0YW5zdGFhZnRhbnN0YWFm", SMTP_V_AUTH);
    assert_string_equal(cmd.arg, "PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
    ok("AUTH login", SMTP_V_AUTH);
    assert_string_equal(cmd.arg, "LOGIN");
    ok("AUTH PLAIN =", SMTP_V_AUTH);
    assert_string_equal(cmd.arg, "PLAIN =");
    ok("AUTH SCRAM-SHA-256", SMTP_V_AUTH);
    assert_string_equal(cmd.arg, "SCRAM-SHA-256");
    err("AUTH", PST_EINVAL, "501 5.5.4");
    err("AUTH PLAIN a b", PST_EINVAL, "501 5.5.4");
    err("AUTH PLAIN  abc", PST_EINVAL, "501 5.5.4");
    err("AUTH PL@IN", PST_EINVAL, "501 5.5.4");
    err("AUTH PLAIN a*b=", PST_EINVAL, "501 5.5.4");
    err("AUTH ABCDEFGHIJKLMNOPQRSTU", PST_EINVAL, "501 5.5.4"); /* 21 chars */
    ok("AUTH ABCDEFGHIJKLMNOPQRST", SMTP_V_AUTH);               /* 20 chars */

    n = snprintf(line, sizeof(line), "AUTH PLAIN ");
    memset(line + n, 'A', SMTP_ARG_MAX);
    line[n + SMTP_ARG_MAX] = '\0';
    err(line, PST_ELIMIT, "501 5.5.4");
}

static void test_reply_codes_are_wellformed(void **state)
{
    static const char *const bad[] = {
        "MAIL FROM:x",
        "RCPT TO:x",
        "MAIL FROM:<a@b.example> X=1",
        "MAIL FROM:<a@b.example> SIZE=x",
        "DATA x",
        "EHLO",
        "BDAT",
        "AUTH",
    };

    for (size_t i = 0; i < PST_ARRAY_LEN(bad); i++) {
        const char *reply = NULL;
        assert_true(smtp_cmd_parse(bad[i], strlen(bad[i]), &cmd, &reply) < 0);
        assert_non_null(reply);
        /* "5yz 5.y.z text" */
        assert_true(strlen(reply) > 10);
        assert_int_equal(reply[0], '5');
        assert_int_equal(reply[3], ' ');
        assert_int_equal(reply[4], '5');
        assert_int_equal(reply[5], '.');
        assert_null(strchr(reply, '\r'));
        assert_null(strchr(reply, '\n'));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verbs_and_case),
        cmocka_unit_test(test_verb_names),
        cmocka_unit_test(test_unknown_verbs),
        cmocka_unit_test(test_helo_ehlo),
        cmocka_unit_test(test_no_argument_verbs),
        cmocka_unit_test(test_optional_and_required_args),
        cmocka_unit_test(test_mail_basic),
        cmocka_unit_test(test_mail_all_params),
        cmocka_unit_test(test_mail_size),
        cmocka_unit_test(test_mail_body_ret_envid_auth),
        cmocka_unit_test(test_unknown_and_repeated_params),
        cmocka_unit_test(test_smtputf8),
        cmocka_unit_test(test_rcpt_basic),
        cmocka_unit_test(test_rcpt_notify),
        cmocka_unit_test(test_rcpt_orcpt),
        cmocka_unit_test(test_relay_tricks),
        cmocka_unit_test(test_address_lengths),
        cmocka_unit_test(test_nul_and_control),
        cmocka_unit_test(test_bdat),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_reply_codes_are_wellformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
