/*
 * test_mailaddr.c - unit tests for src/lib/mailaddr.c (RFC 5321 4.1.2
 * paths). Security-relevant: the relay decision trusts what this parser
 * calls the domain, so hostile forms are tested as carefully as good ones.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/mailaddr.h"

/* put - copy s with its NUL into dst (test buffers are sized by hand). */
static void put(char *dst, const char *s)
{
    memcpy(dst, s, strlen(s) + 1);
}

static int path(const char *s, int flags, struct mailaddr *a, size_t *used)
{
    return mailaddr_parse_path(s, strlen(s), flags, a, used);
}

static void expect_path(const char *s, int flags, const char *local, const char *domain)
{
    struct mailaddr a;
    size_t used;
    int rc = path(s, flags, &a, &used);

    if (rc != 0)
        fail_msg("rejected '%s': %d", s, rc);
    assert_string_equal(a.local, local);
    assert_string_equal(a.domain, domain);
}

static void expect_bad(const char *s, int flags, int err)
{
    struct mailaddr a;
    size_t used = 99;
    int rc = path(s, flags, &a, &used);

    if (rc != err)
        fail_msg("'%s': expected %d, got %d", s, err, rc);
    assert_int_equal(used, 0);
}

static void test_simple(void **state)
{
    struct mailaddr a;
    size_t used;

    assert_int_equal(path("<user@example.org> SIZE=100", 0, &a, &used), 0);
    assert_int_equal(used, strlen("<user@example.org>"));
    assert_string_equal(a.local, "user");
    assert_string_equal(a.domain, "example.org");
    assert_false(a.quoted);
    assert_false(a.is_null);
    assert_false(a.is_literal);
    assert_false(a.has_utf8);
    expect_path("<first.last+tag@sub.example.co.uk>", 0, "first.last+tag", "sub.example.co.uk");
    expect_path("<!#$%&'*+-/=?^_`{|}~@x.example>", 0, "!#$%&'*+-/=?^_`{|}~", "x.example");
    expect_path("<a@b>", 0, "a", "b");
    expect_path("<a@b-c.d1>", 0, "a", "b-c.d1");
    expect_path("<a@123.example>", 0, "a", "123.example");
}

static void test_not_nul_terminated(void **state)
{
    char s[] = {'<', 'a', '@', 'b', '>', 'X'};
    struct mailaddr a;
    size_t used;

    assert_int_equal(mailaddr_parse_path(s, 5, 0, &a, &used), 0);
    assert_int_equal(used, 5);
    assert_int_equal(mailaddr_parse_path(s, 4, 0, &a, &used), PST_EINVAL);
    assert_int_equal(mailaddr_parse_path(s, 0, 0, &a, &used), PST_EINVAL);
}

static void test_null_path(void **state)
{
    struct mailaddr a;
    size_t used;
    char out[8];

    assert_int_equal(path("<>", MAILADDR_ALLOW_NULL, &a, &used), 0);
    assert_true(a.is_null);
    assert_int_equal(used, 2);
    assert_int_equal(mailaddr_format(&a, out, sizeof(out)), 0);
    assert_string_equal(out, "");
    expect_bad("<>", 0, PST_EINVAL);
}

static void test_quoted(void **state)
{
    struct mailaddr a;
    size_t used;
    char out[128];

    assert_int_equal(path("<\"john doe\"@example.org>", 0, &a, &used), 0);
    assert_string_equal(a.local, "john doe");
    assert_true(a.quoted);
    assert_int_equal(mailaddr_format(&a, out, sizeof(out)), 0);
    assert_string_equal(out, "\"john doe\"@example.org");

    assert_int_equal(path("<\"a\\\"b\\\\c\"@x.example>", 0, &a, &used), 0);
    assert_string_equal(a.local, "a\"b\\c");
    assert_int_equal(mailaddr_format(&a, out, sizeof(out)), 0);
    assert_string_equal(out, "\"a\\\"b\\\\c\"@x.example");

    /* a quoted local part that is a valid dot-string is formatted bare */
    assert_int_equal(path("<\"plain\"@x.example>", 0, &a, &used), 0);
    assert_int_equal(mailaddr_format(&a, out, sizeof(out)), 0);
    assert_string_equal(out, "plain@x.example");
    /* dots that would be invalid unquoted keep the quotes */
    assert_int_equal(path("<\".a..b.\"@x.example>", 0, &a, &used), 0);
    assert_int_equal(mailaddr_format(&a, out, sizeof(out)), 0);
    assert_string_equal(out, "\".a..b.\"@x.example");
    /* '@' inside quotes is part of the local part */
    assert_int_equal(path("<\"u@evil\"@x.example>", 0, &a, &used), 0);
    assert_string_equal(a.local, "u@evil");
    assert_string_equal(a.domain, "x.example");
}

static void test_quoted_bad(void **state)
{
    expect_bad("<\"\"@x.example>", 0, PST_EINVAL);       /* empty */
    expect_bad("<\"abc@x.example>", 0, PST_EINVAL);      /* unterminated */
    expect_bad("<\"a\rb\"@x.example>", 0, PST_EINVAL);   /* CR */
    expect_bad("<\"a\nb\"@x.example>", 0, PST_EINVAL);   /* LF */
    expect_bad("<\"a\\\rb\"@x.example>", 0, PST_EINVAL); /* quoted CR */
    expect_bad("<\"a\tb\"@x.example>", 0, PST_EINVAL);   /* TAB not in qtextSMTP */
    expect_bad("<\"a\"b@x.example>", 0, PST_EINVAL);     /* junk after quote */
    expect_bad("<\"a\\", 0, PST_EINVAL);                 /* ends in escape */

    struct mailaddr a;
    size_t used;
    char s[] = "<\"a\0b\"@x.example>";
    assert_int_equal(mailaddr_parse_path(s, sizeof(s) - 1, 0, &a, &used), PST_EINVAL);
}

static void test_relay_tricks(void **state)
{
    expect_bad("<user@other@local>", 0, PST_EINVAL);
    expect_bad("<user%other@local@evil>", 0, PST_EINVAL);
    expect_bad("<user@>", 0, PST_EINVAL);
    expect_bad("<@local>", 0, PST_EINVAL);
    expect_bad("<user>", 0, PST_EINVAL);
    expect_bad("<user@local", 0, PST_EINVAL);
    expect_bad("<user@local junk>", 0, PST_EINVAL);
}

static void test_relay_tricks_consumed(void **state)
{
    struct mailaddr a;
    size_t used;

    /* text after '>' is the caller's business (ESMTP parameters); consumed says where it starts */
    assert_int_equal(path("<user@local>junk", 0, &a, &used), 0);
    assert_int_equal(used, strlen("<user@local>"));
}

static void test_dot_string_bad(void **state)
{
    expect_bad("<.user@x.example>", 0, PST_EINVAL);
    expect_bad("<user.@x.example>", 0, PST_EINVAL);
    expect_bad("<us..er@x.example>", 0, PST_EINVAL);
    expect_bad("<@x.example>", 0, PST_EINVAL);
    expect_bad("<us er@x.example>", 0, PST_EINVAL);
    expect_bad("<us\ter@x.example>", 0, PST_EINVAL);
    expect_bad("<us\x01r@x.example>", 0, PST_EINVAL);
    expect_bad("<us\x7fr@x.example>", 0, PST_EINVAL);
    expect_bad("<us(er@x.example>", 0, PST_EINVAL);
    expect_bad("<us,er@x.example>", 0, PST_EINVAL);
    expect_bad("<us\\er@x.example>", 0, PST_EINVAL);
}

static void test_domain_bad(void **state)
{
    expect_bad("<u@.example>", 0, PST_EINVAL);
    expect_bad("<u@example.>", 0, PST_EINVAL);
    expect_bad("<u@ex..ample>", 0, PST_EINVAL);
    expect_bad("<u@-example.org>", 0, PST_EINVAL);
    expect_bad("<u@example-.org>", 0, PST_EINVAL);
    expect_bad("<u@exa_mple.org>", 0, PST_EINVAL);
    expect_bad("<u@exa mple.org>", 0, PST_EINVAL);
    expect_bad("<u@example.org\r\n>", 0, PST_EINVAL);
}

static void test_literals(void **state)
{
    struct mailaddr a;
    size_t used;

    assert_int_equal(path("<u@[192.0.2.1]>", 0, &a, &used), 0);
    assert_string_equal(a.domain, "[192.0.2.1]");
    assert_true(a.is_literal);
    assert_int_equal(path("<u@[IPv6:2001:db8::1]>", 0, &a, &used), 0);
    assert_string_equal(a.domain, "[IPv6:2001:db8::1]");
    assert_true(a.is_literal);
    assert_int_equal(path("<u@[ipv6:::1]>", 0, &a, &used), 0);

    expect_bad("<u@[192.0.2.256]>", 0, PST_EINVAL);
    expect_bad("<u@[192.0.2]>", 0, PST_EINVAL);
    expect_bad("<u@[2001:db8::1]>", 0, PST_EINVAL); /* v6 needs the tag */
    expect_bad("<u@[IPv6:2001:db8::g]>", 0, PST_EINVAL);
    expect_bad("<u@[IPv6:192.0.2.1]>", 0, PST_EINVAL);
    expect_bad("<u@[]>", 0, PST_EINVAL);
    expect_bad("<u@[192.0.2.1>", 0, PST_EINVAL);
    expect_bad("<u@[192.0.2.1]x>", 0, PST_EINVAL);
    expect_bad("<u@[x-tag:stuff]>", 0, PST_EINVAL);
    expect_bad("<u@[192.0.2.1 ]>", 0, PST_EINVAL);
    expect_bad("<u@[1[2]>", 0, PST_EINVAL);

    char lit[200];
    memset(lit, '1', sizeof(lit));
    memcpy(lit, "<u@[", 4);
    memcpy(lit + sizeof(lit) - 3, "]>", 3);
    expect_bad(lit, 0, PST_ELIMIT);
}

static void test_source_route(void **state)
{
    struct mailaddr a;
    size_t used;
    const char *s = "<@relay1.example,@[192.0.2.1]:user@final.example>";

    assert_int_equal(path(s, 0, &a, &used), 0);
    assert_int_equal(used, strlen(s));
    assert_string_equal(a.local, "user");
    assert_string_equal(a.domain, "final.example");
    expect_path("<@a.example:u@b.example>", 0, "u", "b.example");

    expect_bad("<@a.example u@b.example>", 0, PST_EINVAL);
    expect_bad("<@a.example,u@b.example>", 0, PST_EINVAL);
    expect_bad("<@:u@b.example>", 0, PST_EINVAL);
    expect_bad("<@a.example,:u@b.example>", 0, PST_EINVAL);
    expect_bad("<@a.example:>", 0, PST_EINVAL);
    expect_bad("<@a.example:@b.example:u@c.example>", 0, PST_EINVAL);
}

static void test_postmaster(void **state)
{
    struct mailaddr a;
    size_t used;
    char out[32];

    assert_int_equal(path("<Postmaster>", MAILADDR_ALLOW_POSTMASTER, &a, &used), 0);
    assert_string_equal(a.local, "Postmaster");
    assert_string_equal(a.domain, "");
    assert_int_equal(used, 12);
    assert_int_equal(mailaddr_format(&a, out, sizeof(out)), 0);
    assert_string_equal(out, "Postmaster");
    assert_int_equal(path("<POSTMASTER>", MAILADDR_ALLOW_POSTMASTER, &a, &used), 0);
    expect_bad("<Postmaster>", 0, PST_EINVAL);
    expect_bad("<Postmasterx>", MAILADDR_ALLOW_POSTMASTER, PST_EINVAL);
    expect_bad("<@a.example:Postmaster>", MAILADDR_ALLOW_POSTMASTER, PST_EINVAL);
    /* with a domain it is an ordinary mailbox */
    expect_path("<postmaster@x.example>", MAILADDR_ALLOW_POSTMASTER, "postmaster", "x.example");

    assert_int_equal(mailaddr_parse("postmaster", MAILADDR_ALLOW_POSTMASTER, &a), 0);
    assert_string_equal(a.local, "postmaster");
    assert_int_equal(mailaddr_parse("postmaster", 0, &a), PST_EINVAL);
}

static void test_nobracket(void **state)
{
    struct mailaddr a;
    size_t used;

    assert_int_equal(path("user@x.example SIZE=1", MAILADDR_ALLOW_NOBRACKET, &a, &used), 0);
    assert_int_equal(used, strlen("user@x.example"));
    assert_string_equal(a.domain, "x.example");
    assert_int_equal(path("user@x.example", MAILADDR_ALLOW_NOBRACKET, &a, &used), 0);
    expect_bad("user@x.example", 0, PST_EINVAL);
    expect_bad("user@x.example>", MAILADDR_ALLOW_NOBRACKET, PST_EINVAL);
    expect_bad("user@x@y", MAILADDR_ALLOW_NOBRACKET, PST_EINVAL);
}

static void test_limits(void **state)
{
    char s[600], out[300];
    struct mailaddr a;
    size_t used;

    /* local part: 64 ok, 65 too long */
    memset(s, 0, sizeof(s));
    s[0] = '<';
    memset(s + 1, 'a', 64);
    put(s + 65, "@x.example>");
    assert_int_equal(path(s, 0, &a, &used), 0);
    assert_int_equal(strlen(a.local), 64);
    memset(s + 1, 'a', 65);
    put(s + 66, "@x.example>");
    expect_bad(s, 0, PST_ELIMIT);

    /* quoted local part: 64 octets including quotes */
    s[1] = '"';
    memset(s + 2, 'b', 62);
    put(s + 64, "\"@x.example>");
    assert_int_equal(path(s, 0, &a, &used), 0);
    assert_int_equal(strlen(a.local), 62);
    memset(s + 2, 'b', 63);
    put(s + 65, "\"@x.example>");
    expect_bad(s, 0, PST_ELIMIT);

    /* label: 63 ok, 64 too long */
    put(s, "<u@");
    memset(s + 3, 'c', 63);
    put(s + 66, ".example>");
    assert_int_equal(path(s, 0, &a, &used), 0);
    memset(s + 3, 'c', 64);
    put(s + 67, ".example>");
    expect_bad(s, 0, PST_ELIMIT);

    /* domain over 255 */
    put(s, "<u@");
    for (size_t i = 0; i < 5; i++) {
        memset(s + 3 + i * 60, 'd', 59);
        s[3 + i * 60 + 59] = '.';
    }
    put(s + 3 + 300, "example>");
    expect_bad(s, 0, PST_ELIMIT);

    /* whole path over 256: 64 local + 190 domain + brackets + '@' = 257 */
    s[0] = '<';
    memset(s + 1, 'a', 64);
    s[65] = '@';
    for (size_t i = 0; i < 3; i++) {
        memset(s + 66 + i * 63, 'e', 62);
        s[66 + i * 63 + 62] = '.';
    }
    memset(s + 66 + 189, 'f', 1);
    put(s + 66 + 190, ">");
    assert_int_equal(strlen(s), 257);
    expect_bad(s, 0, PST_ELIMIT);
    /* one byte shorter fits exactly */
    put(s + 66 + 189, ">");
    s[66 + 188] = 'f';
    assert_int_equal(path(s, 0, &a, &used), 0);
    assert_int_equal(used, 256);
    assert_int_equal(mailaddr_format(&a, out, sizeof(out)), 0);
    assert_int_equal(mailaddr_format(&a, out, 254), PST_ELIMIT);
}

static void test_utf8(void **state)
{
    struct mailaddr a;
    size_t used;
    char out[64];

    expect_bad("<j\xc3\xb6rg@example.org>", 0, PST_EINVAL);
    assert_int_equal(path("<j\xc3\xb6rg@b\xc3\xbc"
                          "cher.example>",
                          MAILADDR_ALLOW_UTF8, &a, &used),
                     0);
    assert_true(a.has_utf8);
    assert_string_equal(a.local, "j\xc3\xb6rg");
    assert_int_equal(mailaddr_format(&a, out, sizeof(out)), 0);
    assert_string_equal(out, "j\xc3\xb6rg@b\xc3\xbc"
                             "cher.example");
    assert_int_equal(path("<\"\xe2\x82\xac x\"@e.example>", MAILADDR_ALLOW_UTF8, &a, &used), 0);
    assert_int_equal(path("<\xf0\x9f\x93\xa7@e.example>", MAILADDR_ALLOW_UTF8, &a, &used), 0);

    /* malformed */
    expect_bad("<\xc0\xafx@e.example>", MAILADDR_ALLOW_UTF8, PST_EINVAL);        /* overlong '/' */
    expect_bad("<\xe0\x80\xafx@e.example>", MAILADDR_ALLOW_UTF8, PST_EINVAL);    /* overlong */
    expect_bad("<\xed\xa0\x80x@e.example>", MAILADDR_ALLOW_UTF8, PST_EINVAL);    /* surrogate */
    expect_bad("<\xf4\x90\x80\x80@e.example>", MAILADDR_ALLOW_UTF8, PST_EINVAL); /* > 10FFFF */
    expect_bad("<\xc3@e.example>", MAILADDR_ALLOW_UTF8, PST_EINVAL);             /* truncated */
    expect_bad("<\x80@e.example>", MAILADDR_ALLOW_UTF8, PST_EINVAL);             /* bare cont. */
    expect_bad("<\xff@e.example>", MAILADDR_ALLOW_UTF8, PST_EINVAL);
    expect_bad("<u@e.example\xc3>", MAILADDR_ALLOW_UTF8, PST_EINVAL);
    char s[] = {'<', 'x', '@', 'e', (char)0xc3};
    assert_int_equal(mailaddr_parse_path(s, sizeof(s), MAILADDR_ALLOW_UTF8, &a, &used), PST_EINVAL);
}

static void test_parse_bare(void **state)
{
    struct mailaddr a;

    assert_int_equal(mailaddr_parse("user@x.example", 0, &a), 0);
    assert_string_equal(a.local, "user");
    assert_string_equal(a.domain, "x.example");
    assert_int_equal(mailaddr_parse("<user@x.example>", 0, &a), PST_EINVAL);
    assert_int_equal(mailaddr_parse("user@x.example ", 0, &a), PST_EINVAL);
    assert_int_equal(mailaddr_parse("user", 0, &a), PST_EINVAL);
    assert_int_equal(mailaddr_parse("", 0, &a), PST_EINVAL);
    assert_int_equal(mailaddr_parse("", MAILADDR_ALLOW_NULL, &a), 0);
    assert_true(a.is_null);
    assert_int_equal(mailaddr_parse(NULL, 0, &a), PST_EINVAL);
    assert_int_equal(mailaddr_parse("a@b@c", 0, &a), PST_EINVAL);
}

static void test_format_small(void **state)
{
    struct mailaddr a;
    char out[16];

    assert_int_equal(mailaddr_parse("abc@d.ef", 0, &a), 0);
    assert_int_equal(mailaddr_format(&a, out, 9), 0);
    assert_int_equal(mailaddr_format(&a, out, 8), PST_ELIMIT);
    assert_int_equal(mailaddr_format(&a, out, 1), PST_ELIMIT);
    memset(&a, 0, sizeof(a));
    put(a.local, "a b");
    put(a.domain, "x");
    assert_int_equal(mailaddr_format(&a, out, 8), 0);
    assert_string_equal(out, "\"a b\"@x");
    assert_int_equal(mailaddr_format(&a, out, 7), PST_ELIMIT);
}

static void test_domain_valid(void **state)
{
    assert_true(mailaddr_domain_valid("example.org", 0));
    assert_true(mailaddr_domain_valid("localhost", 0));
    assert_true(mailaddr_domain_valid("a-b.c", 0));
    assert_false(mailaddr_domain_valid("", 0));
    assert_false(mailaddr_domain_valid("example.org.", 0));
    assert_false(mailaddr_domain_valid("-a.org", 0));
    assert_false(mailaddr_domain_valid("a..org", 0));
    assert_false(mailaddr_domain_valid("a_b.org", 0));
    assert_false(mailaddr_domain_valid("[192.0.2.1]", 0));
    assert_false(mailaddr_domain_valid("b\xc3\xbc"
                                       "cher.example",
                                       0));
    assert_true(mailaddr_domain_valid("b\xc3\xbc"
                                      "cher.example",
                                      1));
    assert_false(mailaddr_domain_valid(NULL, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple),
        cmocka_unit_test(test_not_nul_terminated),
        cmocka_unit_test(test_null_path),
        cmocka_unit_test(test_quoted),
        cmocka_unit_test(test_quoted_bad),
        cmocka_unit_test(test_relay_tricks),
        cmocka_unit_test(test_relay_tricks_consumed),
        cmocka_unit_test(test_dot_string_bad),
        cmocka_unit_test(test_domain_bad),
        cmocka_unit_test(test_literals),
        cmocka_unit_test(test_source_route),
        cmocka_unit_test(test_postmaster),
        cmocka_unit_test(test_nobracket),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_parse_bare),
        cmocka_unit_test(test_format_small),
        cmocka_unit_test(test_domain_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
