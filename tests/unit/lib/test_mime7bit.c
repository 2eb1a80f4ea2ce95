/*
 * test_mime7bit.c - unit tests for src/lib/mime7bit.c: quoted-printable and
 * base64 re-encoding (decoded back and compared), the MIME walk (multipart,
 * nesting, message/rfc822, digest), byte-identical copies of 7-bit parts,
 * and hostile input (8-bit headers, NUL bytes, over-long lines, boundaries
 * and fields, deep nesting, too many parts, the output limit).
 * Every successful conversion is checked to be 7-bit data.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "lib/mime7bit.h"

#define T_OUT_MAX (8u * 1024 * 1024)

/* ---- helpers ---- */

/* t_assert_7bit - no byte >= 0x80, no NUL, no line over 998, no SP/TAB before CRLF in QP. */
static void t_assert_7bit(const char *b, size_t n)
{
    size_t col = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)b[i];
        assert_true(ch < 0x80);
        assert_true(ch != 0);
        if (ch == '\n') {
            assert_true(col <= MIME7BIT_LINE_MAX + (i > 0 && b[i - 1] == '\r' ? 1u : 0u));
            col = 0;
        } else {
            col++;
        }
    }
    assert_true(col <= MIME7BIT_LINE_MAX);
}

/* t_convert - convert msg (len bytes), expect rc; on success check and return the output. */
static buf_t *t_convert(const char *msg, size_t len, int want)
{
    buf_t *out = buf_new(T_OUT_MAX);

    assert_non_null(out);
    assert_int_equal(mime7bit_convert(msg, len, out), want);
    if (want == 0)
        t_assert_7bit(out->data, out->len);
    return out;
}

static buf_t *t_convert_s(const char *msg, int want)
{
    return t_convert(msg, strlen(msg), want);
}

static int t_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* t_qp_decode - RFC 2045 6.7 decoding of b[0..n); checks the encoder's line rules too. */
static buf_t *t_qp_decode(const char *b, size_t n)
{
    buf_t *d = buf_new(T_OUT_MAX);
    size_t col = 0;

    assert_non_null(d);
    for (size_t i = 0; i < n; i++) {
        if (b[i] == '\r' && i + 1 < n && b[i + 1] == '\n') {
            assert_true(col <= MIME7BIT_ENC_LINE);
            assert_true(i == 0 || (b[i - 1] != ' ' && b[i - 1] != '\t'));
            col = 0;
            assert_int_equal(buf_append(d, "\r\n", 2), 0);
            i++;
            continue;
        }
        col++;
        if (b[i] != '=') {
            assert_true(b[i] == ' ' || b[i] == '\t' || (b[i] > 32 && b[i] < 127));
            assert_int_equal(buf_append(d, b + i, 1), 0);
            continue;
        }
        if (i + 2 < n && b[i + 1] == '\r' && b[i + 2] == '\n') { /* soft line break */
            assert_true(col <= MIME7BIT_ENC_LINE);
            col = 0;
            i += 2;
            continue;
        }
        assert_true(i + 2 < n);
        int hi = t_hex(b[i + 1]), lo = t_hex(b[i + 2]);
        assert_true(hi >= 0 && lo >= 0);
        char ch = (char)(hi * 16 + lo);
        assert_int_equal(buf_append(d, &ch, 1), 0);
        col += 2;
        i += 2;
    }
    assert_true(col <= MIME7BIT_ENC_LINE);
    return d;
}

/* t_b64_decode - base64 of b[0..n) with CRLFs, via OpenSSL; lines must be <= 76. */
static buf_t *t_b64_decode(const char *b, size_t n)
{
    buf_t *d = buf_new(T_OUT_MAX);
    char *flat = malloc(n + 1);
    unsigned char *raw = malloc(n + 1);
    size_t fl = 0, col = 0;

    assert_non_null(d);
    assert_non_null(flat);
    assert_non_null(raw);
    for (size_t i = 0; i < n; i++) {
        if (b[i] == '\r' || b[i] == '\n') {
            assert_true(col <= MIME7BIT_ENC_LINE);
            col = 0;
            continue;
        }
        col++;
        flat[fl++] = b[i];
    }
    assert_int_equal(fl % 4, 0);
    int got = EVP_DecodeBlock(raw, (const unsigned char *)flat, (int)fl);
    assert_true(got >= 0);
    size_t pad = 0;
    if (fl >= 1 && flat[fl - 1] == '=')
        pad++;
    if (fl >= 2 && flat[fl - 2] == '=')
        pad++;
    assert_int_equal(buf_append(d, raw, (size_t)got - pad), 0);
    free(flat);
    free(raw);
    return d;
}

/* t_body_after - offset of the body following the first "\r\n\r\n" at or after marker. */
static size_t t_body_after(const buf_t *out, const char *marker)
{
    const char *m = strstr(out->data, marker);
    assert_non_null(m);
    const char *sep = strstr(m, "\r\n\r\n");
    assert_non_null(sep);
    return (size_t)(sep + 4 - out->data);
}

/* t_until - length from off to the next occurrence of stop (or the end). */
static size_t t_until(const buf_t *out, size_t off, const char *stop)
{
    const char *e = stop ? strstr(out->data + off, stop) : NULL;
    return e ? (size_t)(e - out->data) - off : out->len - off;
}

static void t_assert_contains(const buf_t *out, const char *s)
{
    if (strstr(out->data, s) == NULL) {
        print_error("missing \"%s\" in:\n%s\n", s, out->data);
        fail();
    }
}

static void t_assert_identical(const char *msg, size_t len)
{
    buf_t *out = t_convert(msg, len, 0);
    assert_int_equal(out->len, len);
    assert_memory_equal(out->data, msg, len);
    buf_free(&out);
}

/* ---- tests ---- */

static void test_needed(void **state)
{
    assert_int_equal(mime7bit_needed(NULL, 0), 0);
    assert_int_equal(mime7bit_needed("plain ascii\r\n", 13), 0);
    assert_int_equal(mime7bit_needed("caf\xc3\xa9", 5), 1);
    assert_int_equal(mime7bit_needed("a\0b", 3), 1);
    assert_int_equal(mime7bit_needed("\x80", 1), 1);
}

static void test_text_plain_qp(void **state)
{
    const char body[] = "Gr\xc3\xbc\xc3\x9f"
                        "e aus K\xc3\xb6ln\r\nzweite Zeile\r\n";
    char msg[512];
    int n = snprintf(msg, sizeof(msg),
                     "From: a@example.org\r\nSubject: hi\r\nMIME-Version: 1.0\r\n"
                     "Content-Type: text/plain; charset=utf-8\r\n"
                     "Content-Transfer-Encoding: 8bit\r\n\r\n%s",
                     body);
    assert_true(n > 0 && (size_t)n < sizeof(msg));

    buf_t *out = t_convert(msg, (size_t)n, 0);
    t_assert_contains(out, "Content-Transfer-Encoding: quoted-printable\r\n");
    assert_null(strstr(out->data, "8bit"));
    assert_non_null(strstr(out->data, "From: a@example.org\r\nSubject: hi\r\nMIME-Version: 1.0\r\n"
                                      "Content-Type: text/plain; charset=utf-8\r\n"));
    assert_null(strstr(out->data + 20, "MIME-Version: 1.0\r\nMIME")); /* not added twice */
    size_t off = t_body_after(out, "Content-Transfer");
    buf_t *dec = t_qp_decode(out->data + off, out->len - off);
    assert_int_equal(dec->len, strlen(body));
    assert_memory_equal(dec->data, body, strlen(body));
    t_assert_contains(out, "Gr=C3=BC=C3=9Fe aus K=C3=B6ln\r\nzweite Zeile\r\n");
    buf_free(&dec);
    buf_free(&out);
}

static void test_no_mime_headers_added(void **state)
{
    const char *msg = "From: a@example.org\r\nSubject: x\r\n\r\n\xe9t\xe9\r\n";
    buf_t *out = t_convert_s(msg, 0);

    assert_string_equal(out->data, "From: a@example.org\r\nSubject: x\r\n"
                                   "MIME-Version: 1.0\r\n"
                                   "Content-Type: text/plain; charset=unknown-8bit\r\n"
                                   "Content-Transfer-Encoding: quoted-printable\r\n"
                                   "\r\n=E9t=E9\r\n");
    buf_free(&out);

    /* Content-Type present but no MIME-Version: only MIME-Version and CTE added */
    msg = "Content-Type: text/html; charset=latin1\r\n\r\n<p>\xe9</p>\r\n";
    out = t_convert_s(msg, 0);
    assert_string_equal(out->data, "Content-Type: text/html; charset=latin1\r\n"
                                   "MIME-Version: 1.0\r\n"
                                   "Content-Transfer-Encoding: quoted-printable\r\n"
                                   "\r\n<p>=E9</p>\r\n");
    buf_free(&out);
}

static void test_long_lines_soft_breaks(void **state)
{
    char body[4096];
    size_t n = 0;
    for (int i = 0; i < 300; i++) /* one 600-byte line of 2-byte UTF-8 */
        n += (size_t)snprintf(body + n, sizeof(body) - n, "\xc3\xa4");
    memcpy(body + n, "\r\n", 2);
    n += 2;
    for (int i = 0; i < 1500; i++) /* a 1500-byte ASCII line */
        body[n++] = (char)('a' + i % 26);
    body[n++] = '\xff';
    memcpy(body + n, "\r\n", 2);
    n += 2;

    char msg[8192];
    const char *hdr = "Subject: long\r\n\r\n";
    memcpy(msg, hdr, strlen(hdr));
    memcpy(msg + strlen(hdr), body, n);
    buf_t *out = t_convert(msg, strlen(hdr) + n, 0);
    size_t off = t_body_after(out, "Content-Transfer");
    buf_t *dec = t_qp_decode(out->data + off, out->len - off);
    assert_int_equal(dec->len, n);
    assert_memory_equal(dec->data, body, n);
    assert_non_null(strstr(out->data, "=\r\n")); /* soft breaks were used */
    buf_free(&dec);
    buf_free(&out);
}

static void test_long_7bit_line_is_encoded(void **state)
{
    /* 7-bit bytes but a 2000-octet line: not 7-bit data (RFC 2045 2.7), so QP */
    char msg[3000];
    size_t n = (size_t)snprintf(msg, sizeof(msg), "Subject: x\r\n\r\n");
    memset(msg + n, 'x', 2000);
    n += 2000;
    memcpy(msg + n, "\r\n", 2);
    n += 2;
    buf_t *out = t_convert(msg, n, 0);
    size_t off = t_body_after(out, "Content-Transfer");
    buf_t *dec = t_qp_decode(out->data + off, out->len - off);
    assert_int_equal(dec->len, 2002);
    assert_memory_equal(dec->data, msg + n - 2002, 2002);
    buf_free(&dec);
    buf_free(&out);
}

static void test_equals_and_trailing_space(void **state)
{
    const char body[] = "a=b \xe9 \r\ntrail tab\t\r\nend space \r\n\r\nx = y\r\n"
                        "crlf\rbare cr, bare lf\nnul\0byte\r\nlast ";
    size_t blen = sizeof(body) - 1;
    char msg[512];
    const char *hdr = "Content-Type: text/plain\r\n\r\n";
    memcpy(msg, hdr, strlen(hdr));
    memcpy(msg + strlen(hdr), body, blen);

    buf_t *out = t_convert(msg, strlen(hdr) + blen, 0);
    t_assert_contains(out, "a=3Db =E9=20\r\n");
    t_assert_contains(out, "trail tab=09\r\n");
    t_assert_contains(out, "crlf=0Dbare cr, bare lf=0Anul=00byte\r\n");
    size_t off = t_body_after(out, "Content-Transfer");
    buf_t *dec = t_qp_decode(out->data + off, out->len - off);
    assert_int_equal(dec->len, blen);
    assert_memory_equal(dec->data, body, blen);
    /* the message did not end with CRLF: a final soft break makes the output end with one */
    assert_memory_equal(out->data + out->len - 10, "last=20=\r\n", 10);
    buf_free(&dec);
    buf_free(&out);
}

static const char t_alt[] = "MIME-Version: 1.0\r\n"
                            "Content-Type: multipart/alternative;\r\n"
                            "\tboundary=\"=_b (x) 1\" (a comment)\r\n"
                            "\r\n"
                            "This is a preamble.\r\n"
                            "--=_b (x) 1\r\n"
                            "Content-Type: text/plain; charset=us-ascii\r\n"
                            "\r\n"
                            "plain 7-bit  \r\n"
                            "with = signs and a very long line "
                            "..............................................................."
                            "...........................................\r\n"
                            "--=_b (x) 1 \t\r\n"
                            "Content-Type: text/html; charset=\"utf-8\"\r\n"
                            "Content-Transfer-Encoding: 8BIT (yes)\r\n"
                            "\r\n"
                            "<p>\xe2\x82\xac 5</p>\r\n"
                            "--=_b (x) 1--\r\n"
                            "epilogue\r\n";

static void test_multipart_alternative(void **state)
{
    buf_t *out = t_convert(t_alt, sizeof(t_alt) - 1, 0);
    const char *plain = strstr(t_alt, "\r\n--=_b (x) 1\r\n");
    const char *plain_end = strstr(t_alt, "\r\n--=_b (x) 1 \t\r\n");
    size_t plen = (size_t)(plain_end - plain) + 17;

    /* everything up to and including the 7-bit part and the next delimiter is unchanged */
    assert_true(out->len > (size_t)(plain - t_alt) + plen);
    assert_memory_equal(out->data, t_alt, (size_t)(plain - t_alt) + plen);
    t_assert_contains(out, "Content-Type: text/html; charset=\"utf-8\"\r\n"
                           "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                           "<p>=E2=82=AC 5</p>\r\n--=_b (x) 1--\r\nepilogue\r\n");
    assert_null(strstr(out->data, "8BIT"));
    /* the multipart header itself was left alone (no CTE on it) */
    assert_null(strstr(out->data, "Content-Transfer-Encoding: 7bit"));
    buf_free(&out);
}

static void test_nested_multipart(void **state)
{
    const char *msg = "Content-Type: multipart/mixed; boundary=outer\r\n"
                      "Content-Transfer-Encoding: 8bit\r\n"
                      "\r\n"
                      "--outer\r\n"
                      "Content-Type: multipart/alternative; boundary=\"inner\"\r\n"
                      "Content-Transfer-Encoding: binary\r\n"
                      "\r\n"
                      "--inner\r\n"
                      "\r\n"
                      "caf\xc3\xa9\r\n"
                      "--inner\r\n"
                      "Content-Type: text/plain\r\n"
                      "\r\n"
                      "ascii\r\n"
                      "--inner--\r\n"
                      "--outer\r\n"
                      "Content-Type: image/png\r\n"
                      "\r\n"
                      "\x89PNG\r\n"
                      "--outer--\r\n";
    buf_t *out = t_convert_s(msg, 0);
    assert_string_equal(out->data, "Content-Type: multipart/mixed; boundary=outer\r\n"
                                   "Content-Transfer-Encoding: 7bit\r\n"
                                   "MIME-Version: 1.0\r\n"
                                   "\r\n"
                                   "--outer\r\n"
                                   "Content-Type: multipart/alternative; boundary=\"inner\"\r\n"
                                   "Content-Transfer-Encoding: 7bit\r\n"
                                   "\r\n"
                                   "--inner\r\n"
                                   "Content-Type: text/plain; charset=unknown-8bit\r\n"
                                   "Content-Transfer-Encoding: quoted-printable\r\n"
                                   "\r\n"
                                   "caf=C3=A9\r\n"
                                   "--inner\r\n"
                                   "Content-Type: text/plain\r\n"
                                   "\r\n"
                                   "ascii\r\n"
                                   "--inner--\r\n"
                                   "--outer\r\n"
                                   "Content-Type: image/png\r\n"
                                   "Content-Transfer-Encoding: base64\r\n"
                                   "\r\n"
                                   "iVBORw==\r\n"
                                   "--outer--\r\n");
    buf_free(&out);
}

static void test_message_rfc822(void **state)
{
    const char *msg = "MIME-Version: 1.0\r\n"
                      "Content-Type: multipart/mixed; boundary=b\r\n"
                      "\r\n"
                      "--b\r\n"
                      "Content-Type: message/rfc822\r\n"
                      "Content-Transfer-Encoding: 8bit\r\n"
                      "\r\n"
                      "Subject: inner\r\n"
                      "\r\n"
                      "\xe4\r\n"
                      "--b--\r\n";
    buf_t *out = t_convert_s(msg, 0);
    assert_string_equal(out->data, "MIME-Version: 1.0\r\n"
                                   "Content-Type: multipart/mixed; boundary=b\r\n"
                                   "\r\n"
                                   "--b\r\n"
                                   "Content-Type: message/rfc822\r\n"
                                   "Content-Transfer-Encoding: 7bit\r\n"
                                   "\r\n"
                                   "Subject: inner\r\n"
                                   "MIME-Version: 1.0\r\n"
                                   "Content-Type: text/plain; charset=unknown-8bit\r\n"
                                   "Content-Transfer-Encoding: quoted-printable\r\n"
                                   "\r\n"
                                   "=E4\r\n"
                                   "--b--\r\n");
    buf_free(&out);

    /* an 8-bit header in the embedded message cannot be downgraded */
    msg = "Content-Type: message/rfc822\r\n\r\nSubject: \xc3\xa9\r\n\r\nbody\r\n";
    out = t_convert_s(msg, PST_EINVAL);
    buf_free(&out);

    /* message/rfc822 under base64 with raw 8-bit content: not ours to fix */
    msg = "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n\xe9\r\n";
    out = t_convert_s(msg, PST_EINVAL);
    buf_free(&out);
}

static void test_digest_default_rfc822(void **state)
{
    const char *msg = "Content-Type: multipart/digest; boundary=d\r\n"
                      "\r\n"
                      "--d\r\n"
                      "\r\n"
                      "Subject: one\r\n"
                      "\r\n"
                      "\xf6\r\n"
                      "--d--\r\n";
    buf_t *out = t_convert_s(msg, 0);
    t_assert_contains(out, "--d\r\n\r\nSubject: one\r\nMIME-Version: 1.0\r\n"
                           "Content-Type: text/plain; charset=unknown-8bit\r\n"
                           "Content-Transfer-Encoding: quoted-printable\r\n\r\n=F6\r\n--d--\r\n");
    buf_free(&out);
}

static void test_octet_stream_base64(void **state)
{
    unsigned char bin[1000];
    for (size_t i = 0; i < sizeof(bin); i++)
        bin[i] = (unsigned char)(i * 7 + 3);
    char msg[2048];
    const char *hdr =
        "MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
        "Content-Transfer-Encoding: 8bit\r\nContent-Transfer-Encoding: binary\r\n\r\n";
    size_t hl = strlen(hdr);
    memcpy(msg, hdr, hl);
    memcpy(msg + hl, bin, sizeof(bin));

    buf_t *out = t_convert(msg, hl + sizeof(bin), 0);
    t_assert_contains(out, "Content-Type: application/octet-stream\r\n"
                           "Content-Transfer-Encoding: base64\r\n\r\n");
    assert_null(strstr(out->data, "binary")); /* the second CTE field is dropped */
    size_t off = t_body_after(out, "Content-Transfer");
    /* the message ends with the body: output still ends with CRLF */
    assert_memory_equal(out->data + out->len - 2, "\r\n", 2);
    buf_t *dec = t_b64_decode(out->data + off, out->len - off);
    assert_int_equal(dec->len, sizeof(bin));
    assert_memory_equal(dec->data, bin, sizeof(bin));
    buf_free(&dec);
    buf_free(&out);
}

static void test_base64_in_multipart(void **state)
{
    const char *msg = "Content-Type: multipart/mixed; boundary=zz\r\n\r\n"
                      "--zz\r\nContent-Type: application/pdf\r\n\r\n"
                      "%PDF\x80\x81\x82\x83\r\n\r\n"
                      "--zz--\r\n";
    buf_t *out = t_convert_s(msg, 0);
    size_t off = t_body_after(out, "base64");
    size_t n = t_until(out, off, "\r\n--zz--");
    buf_t *dec = t_b64_decode(out->data + off, n);
    const char want[] = "%PDF\x80\x81\x82\x83\r\n"; /* the CRLF before "--zz" is the delimiter's */
    assert_int_equal(dec->len, sizeof(want) - 1);
    assert_memory_equal(dec->data, want, sizeof(want) - 1);
    buf_free(&dec);
    buf_free(&out);
}

static void test_8bit_header_einval(void **state)
{
    buf_t *out = t_convert_s("Subject: Gr\xc3\xbc\xc3\x9f\x65\r\n\r\nbody\r\n", PST_EINVAL);
    buf_free(&out);
    /* folded continuation line with 8-bit */
    out = t_convert_s("Subject: a\r\n b\xe9\r\n\r\n\xe9\r\n", PST_EINVAL);
    buf_free(&out);
    /* 8-bit in a part header */
    out = t_convert_s("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
                      "Content-Type: text/plain; name=\"\xe9.txt\"\r\n\r\nx\r\n--b--\r\n",
                      PST_EINVAL);
    buf_free(&out);
}

static void test_unconvertible_einval(void **state)
{
    static const char *const bad[] = {
        /* 8-bit bytes in a quoted-printable part */
        "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\xe9\r\n",
        /* unknown encoding */
        "Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n\xe9\r\n",
        /* 8-bit preamble and epilogue */
        "Content-Type: multipart/mixed; boundary=b\r\n\r\npre \xe9\r\n--b\r\n\r\nx\r\n--b--\r\n",
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n\xe9\r\n",
        /* multipart with base64 CTE (RFC 2045 6.4 forbids it) */
        ("Content-Type: multipart/mixed; boundary=b\r\nContent-Transfer-Encoding: base64\r\n\r\n"
         "--b\r\n\r\n\xe9\r\n--b--\r\n"),
        /* multipart without a boundary, and with an unterminated quoted boundary */
        "Content-Type: multipart/mixed\r\n\r\n\xe9\r\n",
        "Content-Type: multipart/mixed; boundary=\"abc\r\n\r\n--abc\r\n\r\n\xe9\r\n",
        /* message/partial must stay 7bit */
        "Content-Type: message/partial; id=\"x\"; number=1\r\n\r\n\xe9\r\n",
        /* no delimiter line at all: everything is preamble */
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n--bb\r\n\r\n\xe9\r\n",
    };
    for (size_t i = 0; i < PST_ARRAY_LEN(bad); i++) {
        buf_t *out = buf_new(T_OUT_MAX);
        assert_non_null(out);
        if (mime7bit_convert(bad[i], strlen(bad[i]), out) != PST_EINVAL) {
            print_error("case %zu not rejected\n", i);
            fail();
        }
        buf_free(&out);
    }
}

static void test_missing_close_boundary(void **state)
{
    /* the last part runs to the end of the message (RFC 2046 leaves this open; like MUAs) */
    const char *msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
                      "--b\r\n\r\nfirst\r\n"
                      "--b\r\nContent-Type: text/plain\r\n\r\nl\xe4st\r\npart\r\n";
    buf_t *out = t_convert_s(msg, 0);
    assert_string_equal(out->data, "Content-Type: multipart/mixed; boundary=b\r\n"
                                   "MIME-Version: 1.0\r\n\r\n"
                                   "--b\r\n\r\nfirst\r\n"
                                   "--b\r\nContent-Type: text/plain\r\n"
                                   "Content-Transfer-Encoding: quoted-printable\r\n"
                                   "\r\nl=E4st\r\npart\r\n");
    buf_free(&out);

    /* nested multipart cut short: the outer delimiter still ends the inner part */
    msg = "Content-Type: multipart/mixed; boundary=o\r\n\r\n"
          "--o\r\nContent-Type: multipart/mixed; boundary=i\r\n\r\n--i\r\n\r\n\xe4\r\n"
          "--o\r\n\r\nascii\r\n--o--\r\n";
    out = t_convert_s(msg, 0);
    t_assert_contains(out, "--i\r\nContent-Type: text/plain; charset=unknown-8bit\r\n"
                           "Content-Transfer-Encoding: quoted-printable\r\n\r\n=E4\r\n"
                           "--o\r\n\r\nascii\r\n--o--\r\n");
    buf_free(&out);
}

static void test_output_limit(void **state)
{
    const char *msg = "Subject: x\r\n\r\n\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\r\n";
    buf_t *out = buf_new(40);
    assert_non_null(out);
    assert_int_equal(mime7bit_convert(msg, strlen(msg), out), PST_ELIMIT);
    buf_free(&out);

    /* even an unchanged copy is bounded by the buffer */
    out = buf_new(5);
    assert_non_null(out);
    assert_int_equal(mime7bit_convert("Subject: x\r\n\r\nascii\r\n", 21, out), PST_ELIMIT);
    buf_free(&out);
}

static void test_already_7bit_identical(void **state)
{
    t_assert_identical(t_alt, 0);
    const char *plain = "From: <a@b>\r\nSubject: x\r\n\r\nhello\r\n.\r\n";
    t_assert_identical(plain, strlen(plain));
    /* labelled 8bit but clean: left as it is */
    const char *lab = "Content-Type: multipart/mixed; boundary=b\r\n"
                      "Content-Transfer-Encoding: 8bit\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n";
    t_assert_identical(lab, strlen(lab));
    /* garbage but 7-bit */
    const char *junk = "no header here\nbare lf\rcr -- --\r\n\r\n\r\n";
    t_assert_identical(junk, strlen(junk));
    /* the alternative (8-bit) message converts to something that then stays identical */
    buf_t *out = t_convert(t_alt, sizeof(t_alt) - 1, 0);
    t_assert_identical(out->data, out->len);
    buf_free(&out);
    out = t_convert("", 0, 0);
    assert_int_equal(out->len, 0);
    buf_free(&out);
}

static void test_no_blank_line(void **state)
{
    /* the first non-field line starts the body; a blank line is inserted */
    buf_t *out = t_convert_s("Subject: x\r\nnot a header \xe9\r\n", 0);
    assert_string_equal(out->data, "Subject: x\r\nMIME-Version: 1.0\r\n"
                                   "Content-Type: text/plain; charset=unknown-8bit\r\n"
                                   "Content-Transfer-Encoding: quoted-printable\r\n"
                                   "\r\nnot a header =E9\r\n");
    buf_free(&out);
    /* a message that is all body, ending without CRLF: a final soft break is added */
    out = t_convert_s("\xe9", 0);
    assert_string_equal(out->data, "MIME-Version: 1.0\r\n"
                                   "Content-Type: text/plain; charset=unknown-8bit\r\n"
                                   "Content-Transfer-Encoding: quoted-printable\r\n"
                                   "\r\n=E9=\r\n");
    buf_free(&out);
}

static void test_limits(void **state)
{
    buf_t *out;
    char *msg = malloc(MIME7BIT_HEADER_MAX + 4096);
    size_t n;
    assert_non_null(msg);

    /* boundary of 71 characters */
    n = (size_t)snprintf(msg, 4096, "Content-Type: multipart/mixed; boundary=");
    memset(msg + n, 'b', 71);
    n += 71;
    n += (size_t)snprintf(msg + n, 4096, "\r\n\r\n\xe9\r\n");
    out = t_convert(msg, n, PST_ELIMIT);
    buf_free(&out);
    /* 70 is fine */
    n = (size_t)snprintf(msg, 4096, "Content-Type: multipart/mixed; boundary=\"");
    memset(msg + n, 'b', 70);
    n += 70;
    n += (size_t)snprintf(msg + n, 4096, "\"\r\n\r\n--");
    memset(msg + n, 'b', 70);
    n += 70;
    n += (size_t)snprintf(msg + n, 4096, "\r\n\r\n\xe9\r\n");
    out = t_convert(msg, n, 0);
    buf_free(&out);

    /* a header line over 998 octets cannot be copied into 7-bit output */
    n = (size_t)snprintf(msg, 4096, "X-Long: ");
    memset(msg + n, 'x', 1200);
    n += 1200;
    n += (size_t)snprintf(msg + n, 4096, "\r\n\r\n\xe9\r\n");
    out = t_convert(msg, n, PST_ELIMIT);
    buf_free(&out);

    /* a folded field past MIME7BIT_HEADER_MAX */
    n = (size_t)snprintf(msg, 4096, "X-Fold: a");
    while (n < MIME7BIT_HEADER_MAX + 100) {
        memcpy(msg + n, "\r\n aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 48);
        n += 48;
    }
    n += (size_t)snprintf(msg + n, 4096, "\r\n\r\n\xe9\r\n");
    out = t_convert(msg, n, PST_ELIMIT);
    buf_free(&out);

    /* a delimiter line padded past 998 */
    n = (size_t)snprintf(msg, 4096, "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b");
    memset(msg + n, ' ', 1000);
    n += 1000;
    n += (size_t)snprintf(msg + n, 4096, "\r\n\r\n\xe9\r\n--b--\r\n");
    out = t_convert(msg, n, PST_ELIMIT);
    buf_free(&out);
    free(msg);
}

static void test_depth_limit(void **state)
{
    buf_t *m = buf_new(T_OUT_MAX);
    assert_non_null(m);
    /* depth levels of nested multiparts, 8-bit at the bottom */
    for (int depth = MIME7BIT_MAX_DEPTH; depth <= MIME7BIT_MAX_DEPTH + 1; depth++) {
        buf_reset(m);
        for (int i = 0; i < depth; i++)
            assert_int_equal(
                buf_printf(m, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i),
                0);
        assert_int_equal(buf_append_str(m, "\r\n\xe9\r\n"), 0);
        buf_t *out = t_convert(m->data, m->len, depth > MIME7BIT_MAX_DEPTH ? PST_ELIMIT : 0);
        buf_free(&out);
    }
    /* message/rfc822 nesting counts too */
    buf_reset(m);
    for (int i = 0; i <= MIME7BIT_MAX_DEPTH; i++)
        assert_int_equal(buf_append_str(m, "Content-Type: message/rfc822\r\n\r\n"), 0);
    assert_int_equal(buf_append_str(m, "\r\n\xe9\r\n"), 0);
    buf_t *out = t_convert(m->data, m->len, PST_ELIMIT);
    buf_free(&out);
    buf_free(&m);
}

static void test_parts_limit(void **state)
{
    buf_t *m = buf_new(T_OUT_MAX);
    assert_non_null(m);
    assert_int_equal(buf_append_str(m, "Content-Type: multipart/mixed; boundary=p\r\n\r\n"), 0);
    for (int i = 0; i < MIME7BIT_PARTS_MAX; i++)
        assert_int_equal(buf_append_str(m, "--p\r\n\r\nx\r\n"), 0);
    assert_int_equal(buf_append_str(m, "--p\r\n\r\n\xe9\r\n--p--\r\n"), 0);
    buf_t *out = t_convert(m->data, m->len, PST_ELIMIT);
    buf_free(&out);
    buf_free(&m);
}

static void test_content_type_syntax(void **state)
{
    /* case, comments, folding and an escaped quote inside the boundary */
    const char *msg = "content-type: (c) MULTIPART (x) / Mixed ; foo=\"a;b\";\r\n"
                      " BOUNDARY = \"q\\\"x\" ; boundary=ignored\r\n"
                      "\r\n"
                      "--q\"x\r\n\r\n\xe9\r\n--q\"x--\r\n";
    buf_t *out = t_convert_s(msg, 0);
    t_assert_contains(out,
                      "--q\"x\r\nContent-Type: text/plain; charset=unknown-8bit\r\n"
                      "Content-Transfer-Encoding: quoted-printable\r\n\r\n=E9\r\n--q\"x--\r\n");
    buf_free(&out);

    /* an invalid Content-Type is text/plain (RFC 2045 5.2): QP, no second Content-Type */
    out = t_convert_s("Content-Type: garbage\r\n\r\n\xe9\r\n", 0);
    assert_string_equal(out->data, "Content-Type: garbage\r\nMIME-Version: 1.0\r\n"
                                   "Content-Transfer-Encoding: quoted-printable\r\n\r\n=E9\r\n");
    buf_free(&out);

    /* message/global may be encoded: base64 */
    out = t_convert_s("Content-Type: message/global\r\n\r\nSubject: \xc3\xa9\r\n\r\nx\r\n", 0);
    t_assert_contains(out, "Content-Transfer-Encoding: base64\r\n");
    buf_free(&out);
}

static void test_bare_lf_message(void **state)
{
    /* LF-only line ends are accepted for structure; bytes are preserved by encoding */
    const char *msg = "Content-Type: multipart/mixed; boundary=b\n\n--b\n\n\xe9\n--b--\n";
    buf_t *out = t_convert_s(msg, 0);
    assert_string_equal(out->data, "Content-Type: multipart/mixed; boundary=b\n"
                                   "MIME-Version: 1.0\r\n\n--b\n"
                                   "Content-Type: text/plain; charset=unknown-8bit\r\n"
                                   "Content-Transfer-Encoding: quoted-printable\r\n"
                                   "\n=E9\n--b--\n");
    buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_needed),
        cmocka_unit_test(test_text_plain_qp),
        cmocka_unit_test(test_no_mime_headers_added),
        cmocka_unit_test(test_long_lines_soft_breaks),
        cmocka_unit_test(test_long_7bit_line_is_encoded),
        cmocka_unit_test(test_equals_and_trailing_space),
        cmocka_unit_test(test_multipart_alternative),
        cmocka_unit_test(test_nested_multipart),
        cmocka_unit_test(test_message_rfc822),
        cmocka_unit_test(test_digest_default_rfc822),
        cmocka_unit_test(test_octet_stream_base64),
        cmocka_unit_test(test_base64_in_multipart),
        cmocka_unit_test(test_8bit_header_einval),
        cmocka_unit_test(test_unconvertible_einval),
        cmocka_unit_test(test_missing_close_boundary),
        cmocka_unit_test(test_output_limit),
        cmocka_unit_test(test_already_7bit_identical),
        cmocka_unit_test(test_no_blank_line),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_parts_limit),
        cmocka_unit_test(test_content_type_syntax),
        cmocka_unit_test(test_bare_lf_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
