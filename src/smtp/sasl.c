/*
 * sasl.c - server side of SASL PLAIN and LOGIN for SMTP AUTH, and strict
 * base64 on OpenSSL's EVP codec.
 *
 * RFCs: RFC 4648 4 (base64 alphabet and padding), RFC 4954 4 (AUTH
 * responses are base64; "=" is the empty initial response), RFC 4616 2
 * (PLAIN message: [authzid] NUL authcid NUL passwd, each 1..255 octets of
 * UTF-8 without NUL), draft-murchison-sasl-login (LOGIN: one base64 line
 * for the user name, one for the password).
 *
 * base64 strictness: EVP_DecodeBlock() skips leading/trailing blanks,
 * accepts some bytes after padding and always returns a multiple of 3 (the
 * padding bytes decoded as zeros). So the alphabet, the length (multiple of
 * 4), the position of "=" (only one or two, only at the very end) and the
 * unused bits of the last group (must be zero: canonical encoding, RFC 4648
 * 3.5) are checked here first; EVP_DecodeBlock() then only converts, and the
 * padding is subtracted from its result. The last group is decoded into a
 * scratch array so that no write ever goes past the caller's buffer.
 *
 * PLAIN policy: authzid empty or equal to authcid (no proxy authorisation);
 * authcid is 1..SASL_USER_MAX octets of valid UTF-8 without control
 * characters (it ends up in logs and lookups); passwd is 1..SASL_PASS_MAX
 * octets without NUL. An extra NUL anywhere is an error.
 *
 * Failure policy: bad client input returns PST_EINVAL, input or output too
 * long returns PST_ELIMIT; nothing aborts, nothing logs. Every scratch copy
 * of a decoded credential is wiped with explicit_bzero(); on failure the
 * caller's output buffers are wiped too.
 */
#include "smtp/sasl.h"

#include <limits.h>
#include <string.h>

#include <openssl/evp.h>

/* Longest PLAIN message: authzid NUL authcid NUL passwd. */
#define SASL_PLAIN_MAX (SASL_USER_MAX + 1 + SASL_USER_MAX + 1 + SASL_PASS_MAX)
/* Longest base64 text accepted at all (keeps every length inside an int). */
#define SASL_B64_IN_MAX (64 * 1024)

static int sasl_b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/*
 * sasl_b64_check - validate in[0..inlen) as canonical padded base64.
 * Returns the number of padding characters (0..2) or PST_EINVAL.
 */
static int sasl_b64_check(const unsigned char *in, size_t inlen)
{
    size_t pad = 0;
    size_t i;
    int last;

    if (inlen % 4 != 0)
        return PST_EINVAL;
    if (inlen == 0)
        return 0;
    if (in[inlen - 1] == '=') {
        pad = 1;
        if (in[inlen - 2] == '=')
            pad = 2;
    }
    for (i = 0; i < inlen - pad; i++) {
        if (sasl_b64_val(in[i]) < 0)
            return PST_EINVAL;
    }
    /* the bits of the last data character that fall into padding must be 0 */
    last = sasl_b64_val(in[inlen - pad - 1]);
    if (pad == 1 && (last & 0x03) != 0)
        return PST_EINVAL;
    if (pad == 2 && (last & 0x0f) != 0)
        return PST_EINVAL;
    return (int)pad;
}

int sasl_b64_decode(const char *in, size_t inlen, unsigned char *out, size_t outsz)
{
    const unsigned char *u = (const unsigned char *)in;
    unsigned char tail[3];
    size_t full, need;
    int pad;

    /* RFC 4954 4: a lone "=" is the empty response */
    if (inlen == 1 && in[0] == '=')
        return 0;
    if (inlen > SASL_B64_IN_MAX)
        return PST_ELIMIT;
    pad = sasl_b64_check(u, inlen);
    if (pad < 0)
        return pad;
    if (inlen == 0)
        return 0;
    need = inlen / 4 * 3 - (size_t)pad;
    if (need > outsz)
        return PST_ELIMIT;
    full = inlen - 4; /* all groups but the last go straight into out */
    if (full > 0 && EVP_DecodeBlock(out, u, (int)full) != (int)(full / 4 * 3))
        return PST_EINVAL;
    if (EVP_DecodeBlock(tail, u + full, 4) != 3) {
        explicit_bzero(tail, sizeof(tail));
        return PST_EINVAL;
    }
    memcpy(out + full / 4 * 3, tail, 3 - (size_t)pad);
    explicit_bzero(tail, sizeof(tail));
    return (int)need;
}

int sasl_b64_encode(const unsigned char *in, size_t inlen, char *out, size_t outsz)
{
    size_t need;

    if (inlen > (size_t)SASL_B64_IN_MAX)
        return PST_ELIMIT;
    need = (inlen + 2) / 3 * 4;
    if (outsz < need + 1)
        return PST_ELIMIT;
    if (inlen == 0) {
        out[0] = '\0';
        return 0;
    }
    return EVP_EncodeBlock((unsigned char *)out, in, (int)inlen);
}

/* sasl_utf8_name_ok - 1 if s[0..len) is valid UTF-8 (RFC 3629) with no C0/DEL controls. */
static int sasl_utf8_name_ok(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t n, k;
        unsigned int cp;

        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return 0;
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (len - i <= n)
            return 0;
        for (k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        /* overlong, surrogates, beyond U+10FFFF */
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += n + 1;
    }
    return 1;
}

/* sasl_copy_str - copy src[0..len) into dst as a C string; PST_ELIMIT if it does not fit. */
static int sasl_copy_str(char *dst, size_t dsz, const unsigned char *src, size_t len)
{
    if (dsz == 0 || len > dsz - 1)
        return PST_ELIMIT;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return 0;
}

/* sasl_plain_split - split the decoded PLAIN message and check it. */
static int sasl_plain_split(const unsigned char *m, size_t len, char *user, size_t usz, char *pass,
                            size_t psz)
{
    const unsigned char *nul1, *nul2, *authcid, *passwd;
    size_t zlen, clen, plen;
    int rc;

    nul1 = memchr(m, '\0', len);
    if (nul1 == NULL)
        return PST_EINVAL;
    zlen = (size_t)(nul1 - m);
    authcid = nul1 + 1;
    nul2 = memchr(authcid, '\0', len - zlen - 1);
    if (nul2 == NULL)
        return PST_EINVAL;
    clen = (size_t)(nul2 - authcid);
    passwd = nul2 + 1;
    plen = len - zlen - 1 - clen - 1;
    if (clen == 0 || plen == 0)
        return PST_EINVAL;
    if (memchr(passwd, '\0', plen) != NULL)
        return PST_EINVAL;
    if (clen > SASL_USER_MAX || plen > SASL_PASS_MAX || zlen > SASL_USER_MAX)
        return PST_ELIMIT;
    if (zlen != 0 && (zlen != clen || memcmp(m, authcid, clen) != 0))
        return PST_EINVAL;
    if (!sasl_utf8_name_ok(authcid, clen))
        return PST_EINVAL;
    rc = sasl_copy_str(user, usz, authcid, clen);
    if (rc < 0)
        return rc;
    return sasl_copy_str(pass, psz, passwd, plen);
}

int sasl_plain_parse(const char *b64, size_t len, char *user, size_t usz, char *pass, size_t psz)
{
    unsigned char m[SASL_PLAIN_MAX];
    int n, rc;

    n = sasl_b64_decode(b64, len, m, sizeof(m));
    if (n < 0) {
        explicit_bzero(m, sizeof(m));
        return n;
    }
    rc = sasl_plain_split(m, (size_t)n, user, usz, pass, psz);
    explicit_bzero(m, sizeof(m));
    if (rc < 0) {
        if (usz > 0)
            explicit_bzero(user, usz);
        if (psz > 0)
            explicit_bzero(pass, psz);
    }
    return rc;
}

int sasl_login_parse(const char *b64, size_t len, char *out, size_t outsz)
{
    int n;

    if (outsz == 0)
        return PST_ELIMIT;
    n = sasl_b64_decode(b64, len, (unsigned char *)out, outsz - 1);
    if (n < 0) {
        explicit_bzero(out, outsz);
        return n;
    }
    if (n == 0 || memchr(out, '\0', (size_t)n) != NULL) {
        explicit_bzero(out, outsz);
        return PST_EINVAL;
    }
    out[n] = '\0';
    return 0;
}
