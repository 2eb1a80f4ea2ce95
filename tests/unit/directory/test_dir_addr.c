/*
 * test_dir_addr.c - SMTP address keys (IDNA, case, RFC 5321 limits) and
 * alternative addresses (Bitmessage checksum, dmail URIs), with hostile input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "directory/dir_addr.h"

#define BM1 "BM-2cWy7cvHoq3f1rYMerRJp8PT653jjSuEdY"

static int smtp(const char *in, bool cs, char *out)
{
    const char *why = NULL;
    int rc = dir_addr_smtp_normalize(in, strlen(in), cs, out, DIR_SMTP_MAX + 1, &why);

    if (rc != 0) {
        assert_non_null(why);
        assert_true(strlen(why) > 0);
        assert_string_equal(out, "");
    }
    return rc;
}

static void smtp_ok(const char *in, bool cs, const char *want)
{
    char out[DIR_SMTP_MAX + 1], again[DIR_SMTP_MAX + 1];

    if (smtp(in, cs, out) != 0)
        fail_msg("refused: %s", in);
    assert_string_equal(out, want);
    /* normalising a key gives the key */
    assert_int_equal(smtp(out, cs, again), 0);
    assert_string_equal(again, out);
}

static void smtp_bad(const char *in, int want)
{
    char out[DIR_SMTP_MAX + 1];

    if (smtp(in, false, out) != want)
        fail_msg("not refused as %d: %s", want, in);
}

static void test_smtp_ascii(void **state)
{
    (void)state;
    smtp_ok("alice@example.org", false, "alice@example.org");
    smtp_ok("Alice.Smith@EXAMPLE.Org", false, "alice.smith@example.org");
    smtp_ok("Alice.Smith@EXAMPLE.Org", true, "Alice.Smith@example.org");
    smtp_ok("a+tag@sub.example.co.uk", false, "a+tag@sub.example.co.uk");
    smtp_ok("!#$%&'*+-/=?^_`{|}~@example.org", false, "!#$%&'*+-/=?^_`{|}~@example.org");
    smtp_ok("x@a-b.example", false, "x@a-b.example");
    smtp_ok("x@123.example", false, "x@123.example");
}

static void test_smtp_idna(void **state)
{
    (void)state;
    /* U-labels become A-labels; the A-label form is the same key */
    smtp_ok("info@B\xc3\xbc"
            "cher.Example",
            false, "info@xn--bcher-kva.example");
    smtp_ok("info@xn--bcher-kva.example", false, "info@xn--bcher-kva.example");
    smtp_ok("info@XN--BCHER-KVA.EXAMPLE", false, "info@xn--bcher-kva.example");
    /* IDNA2008 non-transitional: sharp s stays */
    smtp_ok("a@fa\xc3\x9f.de", false, "a@xn--fa-hia.de");
    /* UTS #46 mapping: full-width letters and the ideographic full stop */
    smtp_ok("a@\xef\xbc\xa5\xef\xbc\xb8.com", false, "a@ex.com");
    smtp_ok("a@example\xe3\x80\x82"
            "com",
            false, "a@example.com");
    /* UTF-8 local part kept; only ASCII letters are folded */
    smtp_ok("M\xc3\x9cller@example.org", false, "m\xc3\x9cller@example.org");
    smtp_ok("M\xc3\x9cller@example.org", true, "M\xc3\x9cller@example.org");
    /* invalid A-labels and disallowed code points */
    smtp_bad("a@xn--zz.example", PST_EINVAL);
    smtp_bad("a@xn--.example", PST_EINVAL);
    smtp_bad("a@\xe2\x98\x83.example\xe2\x80\x8b", PST_EINVAL); /* zero-width space */
    smtp_bad("a@ex\xc3"
             "ample.org",
             PST_EINVAL); /* truncated UTF-8 */
    smtp_bad("a@\xc0\xae.org", PST_EINVAL);
}

static void test_smtp_refused(void **state)
{
    (void)state;
    smtp_bad("", PST_EINVAL);
    smtp_bad("alice", PST_EINVAL);
    smtp_bad("@example.org", PST_EINVAL);
    smtp_bad("alice@", PST_EINVAL);
    smtp_bad("a@b@example.org", PST_EINVAL);
    smtp_bad("\"a b\"@example.org", PST_EINVAL);
    smtp_bad("\"ab\"@example.org", PST_EINVAL);
    smtp_bad("a b@example.org", PST_EINVAL);
    smtp_bad(" a@example.org", PST_EINVAL);
    smtp_bad("a@example.org ", PST_EINVAL);
    smtp_bad("a\t@example.org", PST_EINVAL);
    smtp_bad("a\r\n@example.org", PST_EINVAL);
    smtp_bad("a\x7f@example.org", PST_EINVAL);
    smtp_bad("a\xc2\x85@example.org", PST_EINVAL); /* C1 control NEL */
    smtp_bad("a\xff@example.org", PST_EINVAL);
    smtp_bad("a\xed\xa0\x80@example.org", PST_EINVAL); /* surrogate */
    smtp_bad("a\xe0\x80\xaf@example.org", PST_EINVAL); /* overlong */
    smtp_bad(".a@example.org", PST_EINVAL);
    smtp_bad("a.@example.org", PST_EINVAL);
    smtp_bad("a..b@example.org", PST_EINVAL);
    smtp_bad("a(comment)@example.org", PST_EINVAL);
    smtp_bad("<a@example.org>", PST_EINVAL);
    smtp_bad("@relay.example:a@example.org", PST_EINVAL);
    smtp_bad("a,b@example.org", PST_EINVAL);
    smtp_bad("a<x>@example.org", PST_EINVAL);
    smtp_bad("a\\b@example.org", PST_EINVAL);
    smtp_bad("a@[192.0.2.1]", PST_EINVAL);
    smtp_bad("a@[IPv6:2001:db8::1]", PST_EINVAL);
    smtp_bad("a@192.0.2.1", PST_EINVAL);
    smtp_bad("a@localhost", PST_EINVAL);
    smtp_bad("a@example.org.", PST_EINVAL);
    smtp_bad("a@.example.org", PST_EINVAL);
    smtp_bad("a@example..org", PST_EINVAL);
    smtp_bad("a@-example.org", PST_EINVAL);
    smtp_bad("a@example-.org", PST_EINVAL);
    smtp_bad("a@exa_mple.org", PST_EINVAL);
    smtp_bad("a@exa mple.org", PST_EINVAL);
    smtp_bad("a@example.org;DROP", PST_EINVAL);
    smtp_bad("x'); DROP TABLE dir_records; --@example.org", PST_EINVAL);
}

static void test_smtp_nul_bytes(void **state)
{
    char out[DIR_SMTP_MAX + 1];
    const char *why = NULL;
    static const char in[] = "alice@example.org\0evil.example";

    (void)state;
    assert_int_equal(dir_addr_smtp_normalize(in, sizeof(in) - 1, false, out, sizeof(out), &why),
                     PST_EINVAL);
    assert_int_equal(dir_addr_smtp_normalize("a\0@example.org", 14, false, out, sizeof(out), &why),
                     PST_EINVAL);
    /* not NUL-terminated input is read only up to len */
    assert_int_equal(
        dir_addr_smtp_normalize("alice@example.orgXYZ", 17, false, out, sizeof(out), &why), 0);
    assert_string_equal(out, "alice@example.org");
    assert_int_equal(dir_addr_smtp_normalize(NULL, 0, false, out, sizeof(out), &why), PST_EINVAL);
    /* why may be NULL */
    assert_int_equal(dir_addr_smtp_normalize("x", 1, false, out, sizeof(out), NULL), PST_EINVAL);
}

static void test_smtp_limits(void **state)
{
    char in[2048], out[DIR_SMTP_MAX + 1], label[64];
    const char *why;
    int n;

    (void)state;
    /* local part: 64 ok, 65 too long */
    memset(in, 'a', 64);
    snprintf(in + 64, sizeof(in) - 64, "@example.org");
    assert_int_equal(smtp(in, false, out), 0);
    memset(in, 'a', 65);
    snprintf(in + 65, sizeof(in) - 65, "@example.org");
    assert_int_equal(smtp(in, false, out), PST_ELIMIT);
    /* label: 63 ok, 64 too long */
    memset(label, 'b', 63);
    label[63] = '\0';
    snprintf(in, sizeof(in), "a@%s.org", label);
    assert_int_equal(smtp(in, false, out), 0);
    snprintf(in, sizeof(in), "a@%sb.org", label);
    assert_int_equal(smtp(in, false, out), PST_ELIMIT);
    /* whole address: 254 ok, 255 too long (RFC 5321 path of 256 with <>) */
    memset(label, 'c', 61);
    label[61] = '\0';
    memset(in, 'a', 64);
    snprintf(in + 64, sizeof(in) - 64, "@%s.%s.%s.org", label, label, label);
    assert_int_equal(strlen(in), 254);
    assert_int_equal(smtp(in, false, out), 0);
    snprintf(in + 64, sizeof(in) - 64, "@%sc.%s.%s.org", label, label, label);
    assert_int_equal(strlen(in), 255);
    assert_int_equal(smtp(in, false, out), PST_ELIMIT);
    /* huge input is refused before parsing */
    memset(in, 'a', sizeof(in) - 1);
    in[sizeof(in) - 1] = '\0';
    in[10] = '@';
    assert_int_equal(smtp(in, false, out), PST_ELIMIT);
    /* an output buffer too small is a limit, not an overflow */
    assert_int_equal(dir_addr_smtp_normalize("alice@example.org", 17, false, out, 10, &why),
                     PST_ELIMIT);
    /* a long non-ASCII domain whose A-label form is too long */
    in[0] = '\0';
    n = snprintf(in, sizeof(in), "a@");
    for (int i = 0; i < 30; i++)
        n += snprintf(in + n, sizeof(in) - (size_t)n, "\xc3\xbc\xc3\xbc\xc3\xbc.");
    snprintf(in + n, sizeof(in) - (size_t)n, "org");
    assert_int_equal(smtp(in, false, out), PST_ELIMIT);
}

static void alt_ok(const char *type, const char *in, const char *want)
{
    char out[DIR_ALT_MAX + 1], again[DIR_ALT_MAX + 1];
    const char *why = NULL;

    if (dir_addr_alt_normalize(type, in, strlen(in), out, sizeof(out), &why) != 0)
        fail_msg("refused %s (%s): %s", in, type, why);
    assert_string_equal(out, want);
    assert_int_equal(dir_addr_alt_normalize(type, out, strlen(out), again, sizeof(again), &why), 0);
    assert_string_equal(again, out);
}

static void alt_bad(const char *type, const char *in, size_t len, int want)
{
    char out[DIR_ALT_MAX + 1];
    const char *why = NULL;
    int rc = dir_addr_alt_normalize(type, in, len, out, sizeof(out), &why);

    if (rc != want)
        fail_msg("%s (%s): got %d, want %d", in, type, rc, want);
    assert_non_null(why);
    assert_string_equal(out, "");
}

static void test_bitmessage(void **state)
{
    char bad[64];

    (void)state;
    alt_ok("bitmessage", BM1, BM1);
    alt_ok("bitmessage", &BM1[3], BM1); /* without the prefix, canonical form has it */
    /* a changed character breaks the checksum */
    snprintf(bad, sizeof(bad), "%s", BM1);
    bad[10] = bad[10] == 'a' ? 'b' : 'a';
    alt_bad("bitmessage", bad, strlen(bad), PST_EINVAL);
    alt_bad("bitmessage", "BM-", 3, PST_EINVAL);
    alt_bad("bitmessage", "BM-0OIl", 7, PST_EINVAL);
    alt_bad("bitmessage", " " BM1, strlen(BM1) + 1, PST_EINVAL);
    alt_bad("bitmessage", BM1 "\n", strlen(BM1) + 1, PST_EINVAL);
    alt_bad("bitmessage", "BM-<script>", 11, PST_EINVAL);
    alt_bad("bitmessage", BM1 "\0x", strlen(BM1) + 2, PST_EINVAL);
    memset(bad, '2', sizeof(bad));
    alt_bad("bitmessage", bad, sizeof(bad), PST_ELIMIT);
}

static void test_dmail(void **state)
{
    char big[DIR_ALT_MAX + 16];

    (void)state;
    alt_ok("dmail", "dmail://example.org/alice", "dmail://example.org/alice");
    alt_ok("dmail", "DMAIL://Example.ORG:8443/Alice", "dmail://example.org:8443/Alice");
    alt_ok("dmail", "dmail://localhost/x", "dmail://localhost/x");
    alt_ok("dmail", "dmail://192.0.2.1:25/", "dmail://192.0.2.1:25/");
    alt_ok("dmail", "dmail://[2001:DB8:0:0::1]/a", "dmail://[2001:db8::1]/a");
    alt_ok("dmail", "dmail://h.example/a%2Fb?x=1&y='z'", "dmail://h.example/a%2Fb?x=1&y='z'");
    alt_ok("dmail", "dmail://xn--bcher-kva.example/p", "dmail://xn--bcher-kva.example/p");
    alt_bad("dmail", "dmail://example.org", 19, PST_EINVAL);
    alt_bad("dmail", "http://example.org/a", 20, PST_EINVAL);
    alt_bad("dmail", "dmail:/example.org/a", 20, PST_EINVAL);
    alt_bad("dmail", "dmail:///a", 10, PST_EINVAL);
    alt_bad("dmail", "dmail://user@example.org/a", 26, PST_EINVAL);
    alt_bad("dmail", "dmail://example.org/a#frag", 26, PST_EINVAL);
    alt_bad("dmail", "dmail://example.org/a b", 23, PST_EINVAL);
    alt_bad("dmail", "dmail://example.org/<x>", 23, PST_EINVAL);
    alt_bad("dmail", "dmail://example.org/a\"b", 23, PST_EINVAL);
    alt_bad("dmail", "dmail://example.org/%zz", 23, PST_EINVAL);
    alt_bad("dmail", "dmail://example.org/%2", 22, PST_EINVAL);
    alt_bad("dmail", "dmail://example.org:0/a", 23, PST_EINVAL);
    alt_bad("dmail", "dmail://example.org:080/a", 25, PST_EINVAL);
    alt_bad("dmail", "dmail://example.org:65536/a", 27, PST_EINVAL);
    alt_bad("dmail", "dmail://example.org:/a", 22, PST_EINVAL);
    alt_bad("dmail", "dmail://example.org:8x/a", 24, PST_EINVAL);
    alt_bad("dmail", "dmail://exa_mple.org/a", 22, PST_EINVAL);
    alt_bad("dmail",
            "dmail://B\xc3\xbc"
            "cher.example/a",
            24, PST_EINVAL);
    alt_bad("dmail", "dmail://[::1/a", 14, PST_EINVAL);
    alt_bad("dmail", "dmail://[zz::1]/a", 17, PST_EINVAL);
    alt_bad("dmail", "dmail://[::1]x/a", 16, PST_EINVAL);
    alt_bad("dmail", "dmail://999.1.1.1/a", 19, PST_EINVAL);
    alt_bad("dmail", "dmail://01.2.3.4/a", 18, PST_EINVAL);
    alt_bad("dmail", "dmail://example.org/a\0b", 23, PST_EINVAL);
    memset(big, 'a', sizeof(big));
    memcpy(big, "dmail://example.org/", 20);
    alt_bad("dmail", big, sizeof(big), PST_ELIMIT);
    /* exactly DIR_ALT_MAX is fine */
    big[DIR_ALT_MAX] = '\0';
    alt_ok("dmail", big, big);
}

static void test_types(void **state)
{
    char out[DIR_ALT_MAX + 1];
    const char *why = NULL;

    (void)state;
    assert_true(dir_addr_type_valid("bitmessage"));
    assert_true(dir_addr_type_valid("dmail"));
    assert_false(dir_addr_type_valid("Bitmessage"));
    assert_false(dir_addr_type_valid(""));
    assert_false(dir_addr_type_valid(NULL));
    assert_int_equal(dir_addr_alt_normalize("smtp", "a", 1, out, sizeof(out), &why), PST_EINVAL);
    assert_int_equal(dir_addr_alt_normalize(NULL, "a", 1, out, sizeof(out), &why), PST_EINVAL);
    assert_int_equal(dir_addr_alt_normalize("dmail", "", 0, out, sizeof(out), &why), PST_EINVAL);
    assert_int_equal(dir_addr_alt_normalize("bitmessage", BM1, strlen(BM1), out, 10, &why),
                     PST_ELIMIT);
    assert_string_equal(dir_addr_guess_type(BM1, strlen(BM1)), "bitmessage");
    assert_string_equal(dir_addr_guess_type("dmail://x/y", 11), "dmail");
    assert_string_equal(dir_addr_guess_type("DMail://x/y", 11), "dmail");
    assert_null(dir_addr_guess_type("BM", 2));
    assert_null(dir_addr_guess_type("BM-x", 2));
    assert_null(dir_addr_guess_type("a@example.org", 13));
    assert_null(dir_addr_guess_type(NULL, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smtp_ascii),   cmocka_unit_test(test_smtp_idna),
        cmocka_unit_test(test_smtp_refused), cmocka_unit_test(test_smtp_nul_bytes),
        cmocka_unit_test(test_smtp_limits),  cmocka_unit_test(test_bitmessage),
        cmocka_unit_test(test_dmail),        cmocka_unit_test(test_types),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
