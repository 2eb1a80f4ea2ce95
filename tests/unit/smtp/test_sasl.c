/*
 * test_sasl.c - strict base64, SASL PLAIN (RFC 4616) and LOGIN parsing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/sasl.h"

#define S(x) x, sizeof(x) - 1

static int dec(const char *in, unsigned char *out, size_t outsz)
{
    return sasl_b64_decode(in, strlen(in), out, outsz);
}

static void test_b64_decode_valid(void **state)
{
    unsigned char out[64];

    assert_int_equal(dec("YQ==", out, sizeof(out)), 1);
    assert_memory_equal(out, "a", 1);
    assert_int_equal(dec("YWI=", out, sizeof(out)), 2);
    assert_memory_equal(out, "ab", 2);
    assert_int_equal(dec("YWJj", out, sizeof(out)), 3);
    assert_memory_equal(out, "abc", 3);
    assert_int_equal(dec("YWJjZA==", out, sizeof(out)), 4);
    assert_memory_equal(out, "abcd", 4);
    assert_int_equal(dec("+/+/", out, sizeof(out)), 3);
    assert_memory_equal(out, "\xfb\xff\xbf", 3);
    /* RFC 4954 4: "=" is the empty response; "" is empty too */
    assert_int_equal(dec("=", out, sizeof(out)), 0);
    assert_int_equal(dec("", out, sizeof(out)), 0);
    assert_int_equal(dec("=", out, 0), 0);
}

static void test_b64_decode_exact_fit(void **state)
{
    unsigned char out[4];

    /* EVP_DecodeBlock writes 3 bytes per group; the last group must not overrun */
    memset(out, 'Z', sizeof(out));
    assert_int_equal(dec("YQ==", out, 1), 1);
    assert_int_equal(out[0], 'a');
    assert_int_equal(out[1], 'Z');
    assert_int_equal(dec("YWJjZA==", out, 4), 4);
    assert_memory_equal(out, "abcd", 4);
    assert_int_equal(dec("YWJjZA==", out, 3), PST_ELIMIT);
    assert_int_equal(dec("YWI=", out, 1), PST_ELIMIT);
}

static void test_b64_decode_invalid(void **state)
{
    unsigned char out[64];
    static const char *const bad[] = {
        "Y",        "YQ",    "YQ=",   "YQ===", "====",   "Y===",     "=YQ=",    "YQ==YQ==",
        "YW=j",     "Y Q==", " YQ==", "YQ== ", "YQ==\n", "YQ-_",     "YR==",    "YWJ=",
        "YWI=\r\n", "*",     "==",    "YQ=a",  "a=bc",   "YWJj====", "YWJ\x80", "\xc3\xa4YQ"};

    for (size_t i = 0; i < PST_ARRAY_LEN(bad); i++) {
        int rc = dec(bad[i], out, sizeof(out));
        if (rc != PST_EINVAL)
            fail_msg("accepted bad base64 \"%s\" rc=%d", bad[i], rc);
    }
    /* embedded NUL */
    assert_int_equal(sasl_b64_decode("YQ\0=", 4, out, sizeof(out)), PST_EINVAL);
}

static void test_b64_roundtrip(void **state)
{
    unsigned char in[100] = {0}, back[100];
    char enc[200];

    for (size_t n = 0; n < sizeof(in); n++) {
        int elen, dlen;

        for (size_t i = 0; i < n; i++)
            in[i] = (unsigned char)(i * 37 + n);
        elen = sasl_b64_encode(in, n, enc, sizeof(enc));
        assert_int_equal(elen, (int)((n + 2) / 3 * 4));
        assert_int_equal(strlen(enc), (size_t)elen);
        dlen = sasl_b64_decode(enc, (size_t)elen, back, n);
        assert_int_equal(dlen, (int)n);
        if (n > 0)
            assert_memory_equal(in, back, n);
    }
}

static void test_b64_encode_limits(void **state)
{
    char out[8];

    assert_int_equal(sasl_b64_encode((const unsigned char *)"abc", 3, out, sizeof(out)), 4);
    assert_string_equal(out, "YWJj");
    assert_int_equal(sasl_b64_encode((const unsigned char *)"abc", 3, out, 4), PST_ELIMIT);
    assert_int_equal(sasl_b64_encode((const unsigned char *)"abc", 3, out, 5), 4);
    assert_int_equal(sasl_b64_encode((const unsigned char *)"abcd", 4, out, 8), PST_ELIMIT);
    assert_int_equal(sasl_b64_encode((const unsigned char *)"", 0, out, 1), 0);
    assert_string_equal(out, "");
}

static void test_b64_decode_overlong(void **state)
{
    static char big[70000];
    unsigned char out[16];

    memset(big, 'A', sizeof(big));
    assert_int_equal(sasl_b64_decode(big, sizeof(big), out, sizeof(out)), PST_ELIMIT);
    assert_int_equal(sasl_b64_decode(big, 64, out, sizeof(out)), PST_ELIMIT);
}

static void test_plain_rfc4616(void **state)
{
    char user[SASL_USER_MAX + 1], pass[SASL_PASS_MAX + 1];

    /* RFC 4616 4: "\0tim\0tanstaaftanstaaf" */
    assert_int_equal(
        sasl_plain_parse(S("AHRpbQB0YW5zdGFhZnRhbnN0YWFm"), user, sizeof(user), pass, sizeof(pass)),
        0);
    assert_string_equal(user, "tim");
    assert_string_equal(pass, "tanstaaftanstaaf");

    /* RFC 4616 4: "Ursel\0Kurt\0xipj3plmq" - proxy authorisation is refused */
    assert_int_equal(
        sasl_plain_parse(S("VXJzZWwAS3VydAB4aXBqM3BsbXE="), user, sizeof(user), pass, sizeof(pass)),
        PST_EINVAL);
    assert_string_equal(user, "");
    assert_string_equal(pass, "");

    /* authzid equal to authcid is fine: "Kurt\0Kurt\0xipj3plmq" */
    assert_int_equal(
        sasl_plain_parse(S("S3VydABLdXJ0AHhpcGozcGxtcQ=="), user, sizeof(user), pass, sizeof(pass)),
        0);
    assert_string_equal(user, "Kurt");
    assert_string_equal(pass, "xipj3plmq");
}

/* plain_of - base64 of a raw PLAIN message m[0..len) into out. */
static void plain_of(const char *m, size_t len, char *out, size_t outsz)
{
    assert_true(sasl_b64_encode((const unsigned char *)m, len, out, outsz) >= 0);
}

static int plain_raw(const char *m, size_t len, char *user, size_t usz, char *pass, size_t psz)
{
    char b64[2048];

    plain_of(m, len, b64, sizeof(b64));
    return sasl_plain_parse(b64, strlen(b64), user, usz, pass, psz);
}

static void test_plain_bad(void **state)
{
    char user[SASL_USER_MAX + 1], pass[SASL_PASS_MAX + 1];

    /* missing NULs */
    assert_int_equal(plain_raw(S("tim"), user, sizeof(user), pass, sizeof(pass)), PST_EINVAL);
    assert_int_equal(plain_raw(S("tim\0tanstaaf"), user, sizeof(user), pass, sizeof(pass)),
                     PST_EINVAL);
    /* empty authcid / empty password */
    assert_int_equal(plain_raw(S("\0\0pass"), user, sizeof(user), pass, sizeof(pass)), PST_EINVAL);
    assert_int_equal(plain_raw(S("\0tim\0"), user, sizeof(user), pass, sizeof(pass)), PST_EINVAL);
    /* an extra NUL */
    assert_int_equal(plain_raw(S("\0tim\0tans\0taaf"), user, sizeof(user), pass, sizeof(pass)),
                     PST_EINVAL);
    assert_int_equal(plain_raw(S("\0tim\0pw\0"), user, sizeof(user), pass, sizeof(pass)),
                     PST_EINVAL);
    /* authzid differs */
    assert_int_equal(plain_raw(S("admin\0tim\0pw"), user, sizeof(user), pass, sizeof(pass)),
                     PST_EINVAL);
    assert_int_equal(plain_raw(S("tim2\0tim\0pw"), user, sizeof(user), pass, sizeof(pass)),
                     PST_EINVAL);
    /* bad UTF-8 / control characters in the user name */
    assert_int_equal(plain_raw(S("\0ti\xffm\0pw"), user, sizeof(user), pass, sizeof(pass)),
                     PST_EINVAL);
    assert_int_equal(plain_raw(S("\0ti\r\nm\0pw"), user, sizeof(user), pass, sizeof(pass)),
                     PST_EINVAL);
    assert_int_equal(plain_raw(S("\0\xc0\xaf\0pw"), user, sizeof(user), pass, sizeof(pass)),
                     PST_EINVAL);
    /* "=" is empty: no NULs at all */
    assert_int_equal(sasl_plain_parse(S("="), user, sizeof(user), pass, sizeof(pass)), PST_EINVAL);
    assert_int_equal(sasl_plain_parse(S(""), user, sizeof(user), pass, sizeof(pass)), PST_EINVAL);
    /* bad base64 */
    assert_int_equal(sasl_plain_parse(S("AHRpbQB0YW5zdGFhZnRhbnN0YWFm="), user, sizeof(user), pass,
                                      sizeof(pass)),
                     PST_EINVAL);
    assert_int_equal(sasl_plain_parse(S("*"), user, sizeof(user), pass, sizeof(pass)), PST_EINVAL);
}

static void test_plain_utf8_user(void **state)
{
    char user[SASL_USER_MAX + 1], pass[SASL_PASS_MAX + 1];

    assert_int_equal(
        plain_raw(S("\0j\xc3\xbcrgen\0p\xe4ss"), user, sizeof(user), pass, sizeof(pass)), 0);
    assert_string_equal(user, "j\xc3\xbcrgen");
    assert_string_equal(pass, "p\xe4ss"); /* the password is opaque octets */
}

static void test_plain_lengths(void **state)
{
    char user[SASL_USER_MAX + 1], pass[SASL_PASS_MAX + 1];
    char m[1 + 300 + 1 + 300];
    size_t n;

    /* exactly at the limits */
    n = 0;
    m[n++] = '\0';
    memset(m + n, 'u', SASL_USER_MAX);
    n += SASL_USER_MAX;
    m[n++] = '\0';
    memset(m + n, 'p', SASL_PASS_MAX);
    n += SASL_PASS_MAX;
    assert_int_equal(plain_raw(m, n, user, sizeof(user), pass, sizeof(pass)), 0);
    assert_int_equal(strlen(user), SASL_USER_MAX);
    assert_int_equal(strlen(pass), SASL_PASS_MAX);

    /* password one over */
    memset(m + n, 'p', 1);
    assert_int_equal(plain_raw(m, n + 1, user, sizeof(user), pass, sizeof(pass)), PST_ELIMIT);

    /* user one over */
    n = 0;
    m[n++] = '\0';
    memset(m + n, 'u', SASL_USER_MAX + 1);
    n += SASL_USER_MAX + 1;
    m[n++] = '\0';
    m[n++] = 'p';
    assert_int_equal(plain_raw(m, n, user, sizeof(user), pass, sizeof(pass)), PST_ELIMIT);

    /* caller buffers too small */
    assert_int_equal(
        sasl_plain_parse(S("AHRpbQB0YW5zdGFhZnRhbnN0YWFm"), user, 3, pass, sizeof(pass)),
        PST_ELIMIT);
    assert_int_equal(
        sasl_plain_parse(S("AHRpbQB0YW5zdGFhZnRhbnN0YWFm"), user, sizeof(user), pass, 16),
        PST_ELIMIT);
    assert_int_equal(sasl_plain_parse(S("AHRpbQB0YW5zdGFhZnRhbnN0YWFm"), user, 4, pass, 17), 0);
}

static void test_plain_overlong_b64(void **state)
{
    char user[SASL_USER_MAX + 1], pass[SASL_PASS_MAX + 1];
    char big[4096];
    char raw[3000];

    memset(raw, 'x', sizeof(raw));
    raw[0] = '\0';
    raw[10] = '\0';
    plain_of(raw, sizeof(raw), big, sizeof(big));
    assert_int_equal(sasl_plain_parse(big, strlen(big), user, sizeof(user), pass, sizeof(pass)),
                     PST_ELIMIT);
}

static void test_login(void **state)
{
    char out[SASL_USER_MAX + 1];

    assert_int_equal(sasl_login_parse(S("dGlt"), out, sizeof(out)), 0);
    assert_string_equal(out, "tim");
    assert_int_equal(sasl_login_parse(S("dGFuc3RhYWY="), out, sizeof(out)), 0);
    assert_string_equal(out, "tanstaaf");
    /* empty, NUL inside, bad base64, cancel */
    assert_int_equal(sasl_login_parse(S("="), out, sizeof(out)), PST_EINVAL);
    assert_int_equal(sasl_login_parse(S(""), out, sizeof(out)), PST_EINVAL);
    assert_int_equal(sasl_login_parse(S("AHRpbQ=="), out, sizeof(out)), PST_EINVAL);
    assert_int_equal(sasl_login_parse(S("dGltAA=="), out, sizeof(out)), PST_EINVAL);
    assert_int_equal(sasl_login_parse(S("dGl"), out, sizeof(out)), PST_EINVAL);
    assert_int_equal(sasl_login_parse(S("*"), out, sizeof(out)), PST_EINVAL);
    /* room for the NUL is required */
    assert_int_equal(sasl_login_parse(S("dGlt"), out, 3), PST_ELIMIT);
    assert_int_equal(sasl_login_parse(S("dGlt"), out, 4), 0);
    assert_string_equal(out, "tim");
    assert_int_equal(sasl_login_parse(S("dGlt"), out, 0), PST_ELIMIT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_decode_valid),   cmocka_unit_test(test_b64_decode_exact_fit),
        cmocka_unit_test(test_b64_decode_invalid), cmocka_unit_test(test_b64_roundtrip),
        cmocka_unit_test(test_b64_encode_limits),  cmocka_unit_test(test_b64_decode_overlong),
        cmocka_unit_test(test_plain_rfc4616),      cmocka_unit_test(test_plain_bad),
        cmocka_unit_test(test_plain_utf8_user),    cmocka_unit_test(test_plain_lengths),
        cmocka_unit_test(test_plain_overlong_b64), cmocka_unit_test(test_login),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
