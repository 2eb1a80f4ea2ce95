/*
 * dir_addr.c - normalising and checking the addresses the directory holds
 * (see dir_addr.h).
 *
 * SMTP addresses, RFC 5321 4.1.2 Mailbox with RFC 6531 3.3 (SMTPUTF8):
 *   Mailbox    = Local-part "@" Domain
 *   Local-part = Dot-string            (Quoted-string refused, see below)
 *   Dot-string = Atom *("." Atom)
 *   Atom       = 1*atext               atext: RFC 5322 3.2.3, plus UTF8-non-ascii (RFC 6531)
 *   Domain     = sub-domain *("." sub-domain), Let-dig [Ldh-str]
 * Refused on purpose: quoted local parts (the directory key must be one
 * plain string, and quoting allows spaces and '@'), source routes and
 * comments (not atext), address literals ("[192.0.2.1]": a public
 * directory lists domains), single-label domains and all-numeric top
 * labels, C0/C1 control characters, invalid or overlong UTF-8, and every
 * address over the limits in dir_addr.h (local 64, domain 255, whole 254
 * octets). The input is never trimmed: the caller trims form fields.
 *
 * The domain: an ASCII domain without "xn--" labels is checked as LDH and
 * lower-cased here (the fast path taken by nearly every lookup); any other
 * goes through libidn2 (idn2_to_ascii_8z, IDN2_NFC_INPUT |
 * IDN2_NONTRANSITIONAL: IDNA2008 with UTS #46 non-transitional mapping,
 * which lower-cases and validates existing A-labels), and the result is
 * checked as LDH again. The key is local "@" A-label domain; the local part
 * is ASCII lower-cased unless case_sensitive (non-ASCII bytes are kept).
 *
 * Alternative addresses: "bitmessage" is decoded by bm_address_decode
 * (checksum, version 3/4) and re-encoded, so "BM-" is always present and
 * there is one text per address. "dmail" is dmail://host[:port]/path
 * (RFC 3986 syntax): scheme lower-cased, host an ASCII domain name
 * (lower-cased, single labels allowed), a dotted IPv4 address or a
 * bracketed IPv6 address (written in RFC 5952 form), port 1..65535 without
 * leading zeros, path "/" followed by RFC 3986 pchar / "/" / "?" with valid
 * %HH escapes; userinfo and fragments are refused.
 *
 * Failure policy: every function is pure (no I/O, no global state besides
 * libidn2's tables) and returns PST_EINVAL (syntax) or PST_ELIMIT (too
 * long, or out too small) with a static reason in *why.
 */
#include "directory/dir_addr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <idn2.h>

#include "bitmessage/bm_address.h"

#define DIR_ADDR_LABEL_MAX 63
#define DIR_DMAIL_SCHEME "dmail://"
#define DIR_DMAIL_SCHEME_LEN (sizeof(DIR_DMAIL_SCHEME) - 1)
#define DIR_DMAIL_HOST_MAX 255
#define DIR_DMAIL_PORT_MAX 65535u
#define DIR_BM_PREFIX "BM-"

static int dir_addr_fail(const char **why, const char *reason, int rc)
{
    if (why != NULL)
        *why = reason;
    return rc;
}

static char dir_addr_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static int dir_addr_is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* RFC 5322 3.2.3 atext, ASCII part. */
static int dir_addr_is_atext(unsigned char c)
{
    return dir_addr_is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/*
 * dir_addr_utf8_len - length (2..4) of the valid UTF-8 sequence at s (avail
 * bytes), 0 if invalid: overlong forms, surrogates, > U+10FFFF and the C1
 * controls U+0080..U+009F are refused.
 */
static size_t dir_addr_utf8_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    size_t n, i;
    unsigned long cp;

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0fu;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07u;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
        return 0;
    return n;
}

/*
 * dir_addr_local_check - Dot-string of RFC 5321 with UTF-8 atoms (RFC 6531).
 */
static int dir_addr_local_check(const unsigned char *s, size_t len, const char **why)
{
    size_t i = 0, n;
    int atom_len = 0;

    if (len == 0)
        return dir_addr_fail(why, "the address has no local part (before the @)", PST_EINVAL);
    if (len > DIR_ADDR_LOCAL_MAX)
        return dir_addr_fail(why, "the local part (before the @) is longer than 64 bytes",
                             PST_ELIMIT);
    if (s[0] == '"')
        return dir_addr_fail(why, "quoted local parts are not accepted", PST_EINVAL);
    while (i < len) {
        if (s[i] == '.') {
            if (atom_len == 0)
                return dir_addr_fail(why, "the local part has an empty part between dots",
                                     PST_EINVAL);
            atom_len = 0;
            i++;
            continue;
        }
        if (s[i] < 0x80) {
            if (!dir_addr_is_atext(s[i]))
                return dir_addr_fail(why, "the local part holds a character not allowed there",
                                     PST_EINVAL);
            i++;
        } else {
            n = dir_addr_utf8_len(s + i, len - i);
            if (n == 0)
                return dir_addr_fail(why, "the local part is not valid UTF-8", PST_EINVAL);
            i += n;
        }
        atom_len++;
    }
    if (atom_len == 0)
        return dir_addr_fail(why, "the local part ends with a dot", PST_EINVAL);
    return 0;
}

/*
 * dir_addr_ldh_check - s (NUL-terminated, ASCII) is an LDH domain: labels of
 * 1..63 letters, digits and hyphens, no hyphen at either end, total <= 255.
 * need_dot: at least two labels and a top label that is not all digits.
 * Lower-cases s in place.
 */
static int dir_addr_ldh_check(char *s, int need_dot, const char **why)
{
    size_t i, label = 0, len = strlen(s), top = 0;
    int dots = 0, top_digits = 1;

    if (len == 0)
        return dir_addr_fail(why, "the domain is empty", PST_EINVAL);
    if (len > DIR_ADDR_DOMAIN_MAX)
        return dir_addr_fail(why, "the domain is longer than 255 bytes", PST_ELIMIT);
    for (i = 0; i <= len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '.' || c == '\0') {
            if (label == 0)
                return dir_addr_fail(why, "the domain has an empty label", PST_EINVAL);
            if (s[i - 1] == '-' || s[i - label] == '-')
                return dir_addr_fail(why, "a domain label starts or ends with a hyphen",
                                     PST_EINVAL);
            if (c == '.')
                dots++;
            top = i - label;
            label = 0;
            continue;
        }
        if (!dir_addr_is_alnum(c) && c != '-')
            return dir_addr_fail(why, "the domain holds a character not allowed in a host name",
                                 PST_EINVAL);
        if (++label > DIR_ADDR_LABEL_MAX)
            return dir_addr_fail(why, "a domain label is longer than 63 bytes", PST_ELIMIT);
        s[i] = dir_addr_lower((char)c);
    }
    for (i = top; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            top_digits = 0;
    if (need_dot && dots == 0)
        return dir_addr_fail(why, "the domain is not fully qualified", PST_EINVAL);
    if (need_dot && top_digits)
        return dir_addr_fail(why, "the domain's top label is numeric (not a domain name)",
                             PST_EINVAL);
    return 0;
}

/* dir_addr_needs_idna - non-ASCII bytes, or a label starting "xn--" (checked by libidn2). */
static int dir_addr_needs_idna(const unsigned char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (s[i] >= 0x80)
            return 1;
        if ((i == 0 || s[i - 1] == '.') && len - i >= 4 && dir_addr_lower((char)s[i]) == 'x' &&
            dir_addr_lower((char)s[i + 1]) == 'n' && s[i + 2] == '-' && s[i + 3] == '-')
            return 1;
    }
    return 0;
}

/*
 * dir_addr_domain - normalise the domain in s[0..len) into out (A-labels,
 * lower case). ascii_only: refuse non-ASCII input (dmail hosts).
 */
static int dir_addr_domain(const char *s, size_t len, int need_dot, int ascii_only, char *out,
                           size_t outsz, const char **why)
{
    char in[DIR_ADDR_INPUT_MAX + 1];
    char *ace = NULL;
    size_t i;
    int rc;

    if (len == 0)
        return dir_addr_fail(why, "the domain is empty", PST_EINVAL);
    if (len > DIR_ADDR_INPUT_MAX)
        return dir_addr_fail(why, "the domain is too long", PST_ELIMIT);
    if (s[0] == '[')
        return dir_addr_fail(why, "address literals are not accepted, give a domain name",
                             PST_EINVAL);
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x21 || c == 0x7f)
            return dir_addr_fail(why, "the domain holds a space or control character", PST_EINVAL);
        if (c >= 0x80 && ascii_only)
            return dir_addr_fail(why, "the host name must be ASCII (use its xn-- form)",
                                 PST_EINVAL);
    }
    memcpy(in, s, len);
    in[len] = '\0';
    if (!dir_addr_needs_idna((const unsigned char *)s, len)) {
        if (len >= outsz)
            return dir_addr_fail(why, "the domain is too long", PST_ELIMIT);
        if ((rc = dir_addr_ldh_check(in, need_dot, why)) != 0)
            return rc;
        memcpy(out, in, len + 1);
        return 0;
    }
    for (i = 0; i < len;) {
        size_t n = 1;

        if ((unsigned char)s[i] >= 0x80 &&
            (n = dir_addr_utf8_len((const unsigned char *)s + i, len - i)) == 0)
            return dir_addr_fail(why, "the domain is not valid UTF-8", PST_EINVAL);
        i += n;
    }
    rc = idn2_to_ascii_8z(in, &ace, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
    if (rc != IDN2_OK) {
        idn2_free(ace);
        return dir_addr_fail(why, "the domain is not a valid internationalised domain name",
                             rc == IDN2_TOO_BIG_DOMAIN || rc == IDN2_TOO_BIG_LABEL ? PST_ELIMIT
                                                                                   : PST_EINVAL);
    }
    if (strlen(ace) >= outsz) {
        idn2_free(ace);
        return dir_addr_fail(why, "the domain is too long", PST_ELIMIT);
    }
    memcpy(out, ace, strlen(ace) + 1);
    idn2_free(ace);
    return dir_addr_ldh_check(out, need_dot, why);
}

int dir_addr_smtp_normalize(const char *in, size_t len, bool case_sensitive, char *out,
                            size_t outsz, const char **why)
{
    char domain[DIR_ADDR_DOMAIN_MAX + 1];
    const char *at;
    size_t i, llen, dlen;
    int rc;

    if (in == NULL || out == NULL || outsz == 0)
        return dir_addr_fail(why, "no address", PST_EINVAL);
    out[0] = '\0';
    if (len == 0)
        return dir_addr_fail(why, "the address is empty", PST_EINVAL);
    if (len > DIR_ADDR_INPUT_MAX)
        return dir_addr_fail(why, "the address is too long", PST_ELIMIT);
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];

        if (c < 0x20 || c == 0x7f)
            return dir_addr_fail(why, "the address holds a control character", PST_EINVAL);
        if (c == ' ')
            return dir_addr_fail(why, "the address holds a space", PST_EINVAL);
    }
    if (in[0] == '"')
        return dir_addr_fail(why, "quoted local parts are not accepted", PST_EINVAL);
    at = memchr(in, '@', len);
    if (at == NULL)
        return dir_addr_fail(why, "the address has no @", PST_EINVAL);
    if (memchr(at + 1, '@', len - (size_t)(at - in) - 1) != NULL)
        return dir_addr_fail(why, "the address holds more than one @", PST_EINVAL);
    llen = (size_t)(at - in);
    if ((rc = dir_addr_local_check((const unsigned char *)in, llen, why)) != 0)
        return rc;
    rc = dir_addr_domain(at + 1, len - llen - 1, 1, 0, domain, sizeof(domain), why);
    if (rc != 0)
        return rc;
    dlen = strlen(domain);
    if (llen + 1 + dlen > DIR_ADDR_PATH_MAX)
        return dir_addr_fail(why, "the address is longer than 254 bytes", PST_ELIMIT);
    if (llen + 1 + dlen >= outsz)
        return dir_addr_fail(why, "the address is too long", PST_ELIMIT);
    for (i = 0; i < llen; i++)
        out[i] = case_sensitive ? in[i] : dir_addr_lower(in[i]);
    out[llen] = '@';
    memcpy(out + llen + 1, domain, dlen + 1);
    return 0;
}

int dir_addr_type_valid(const char *type)
{
    return type != NULL && (strcmp(type, "bitmessage") == 0 || strcmp(type, "dmail") == 0);
}

static int dir_addr_bitmessage(const char *in, size_t len, char *out, size_t outsz,
                               const char **why)
{
    enum bm_addr_status status = BM_ADDR_OK;
    bm_address_t a;

    if (len > BM_ADDRESS_INPUT_MAX)
        return dir_addr_fail(why, "the Bitmessage address is too long", PST_ELIMIT);
    if (bm_address_decode(in, len, &a, &status) != 0) {
        switch (status) {
        case BM_ADDR_CHECKSUM_FAILED:
            return dir_addr_fail(why, "the Bitmessage address has a bad checksum (mistyped?)",
                                 PST_EINVAL);
        case BM_ADDR_VERSION_UNSUPPORTED:
            return dir_addr_fail(why, "the Bitmessage address version is not 3 or 4", PST_EINVAL);
        case BM_ADDR_TOO_LONG:
            return dir_addr_fail(why, "the Bitmessage address is too long", PST_ELIMIT);
        default:
            return dir_addr_fail(why, "not a valid Bitmessage address", PST_EINVAL);
        }
    }
    if (bm_address_encode(&a, out, outsz) != 0)
        return dir_addr_fail(why, "the Bitmessage address is too long", PST_ELIMIT);
    return 0;
}

static int dir_addr_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 3986 unreserved / sub-delims / ":" / "@" (pchar without pct-encoded), plus "/" and "?". */
static int dir_addr_path_char(unsigned char c)
{
    return dir_addr_is_alnum(c) || (c != '\0' && strchr("-._~!$&'()*+,;=:@/?", c) != NULL);
}

/* dir_addr_dmail_host - host of a dmail URI into out (canonical). */
static int dir_addr_dmail_host(const char *h, size_t len, char *out, size_t outsz, const char **why)
{
    char tmp[INET6_ADDRSTRLEN + 1];
    unsigned char bin[16];
    size_t i;

    if (len == 0)
        return dir_addr_fail(why, "the dmail URI has no host", PST_EINVAL);
    if (h[0] == '[') {
        if (len < 3 || h[len - 1] != ']' || len - 2 >= sizeof(tmp))
            return dir_addr_fail(why, "the dmail URI has a bad IPv6 address", PST_EINVAL);
        memcpy(tmp, h + 1, len - 2);
        tmp[len - 2] = '\0';
        if (inet_pton(AF_INET6, tmp, bin) != 1 ||
            inet_ntop(AF_INET6, bin, tmp, sizeof(tmp)) == NULL)
            return dir_addr_fail(why, "the dmail URI has a bad IPv6 address", PST_EINVAL);
        if (strlen(tmp) + 3 > outsz)
            return dir_addr_fail(why, "the dmail URI is too long", PST_ELIMIT);
        out[0] = '[';
        memcpy(out + 1, tmp, strlen(tmp));
        out[strlen(tmp) + 1] = ']';
        out[strlen(tmp) + 2] = '\0';
        return 0;
    }
    for (i = 0; i < len && ((h[i] >= '0' && h[i] <= '9') || h[i] == '.'); i++)
        ;
    if (i == len && len < sizeof(tmp)) {
        memcpy(tmp, h, len);
        tmp[len] = '\0';
        if (inet_pton(AF_INET, tmp, bin) != 1)
            return dir_addr_fail(why, "the dmail URI has a bad IPv4 address", PST_EINVAL);
        if (len >= outsz)
            return dir_addr_fail(why, "the dmail URI is too long", PST_ELIMIT);
        memcpy(out, tmp, len + 1);
        return 0;
    }
    if (len > DIR_DMAIL_HOST_MAX)
        return dir_addr_fail(why, "the dmail URI's host is too long", PST_ELIMIT);
    return dir_addr_domain(h, len, 0, 1, out, outsz, why);
}

static int dir_addr_dmail(const char *in, size_t len, char *out, size_t outsz, const char **why)
{
    char host[DIR_DMAIL_HOST_MAX + 1];
    const char *auth, *slash, *colon, *p;
    size_t i, alen, hlen, plen, used;
    unsigned long port = 0;
    int n;

    if (len > DIR_ALT_MAX)
        return dir_addr_fail(why, "the dmail URI is longer than 512 bytes", PST_ELIMIT);
    if (len < DIR_DMAIL_SCHEME_LEN || strncasecmp(in, DIR_DMAIL_SCHEME, DIR_DMAIL_SCHEME_LEN) != 0)
        return dir_addr_fail(why, "a dmail address starts with dmail://", PST_EINVAL);
    for (i = 0; i < len; i++)
        if ((unsigned char)in[i] < 0x21 || (unsigned char)in[i] > 0x7e)
            return dir_addr_fail(why,
                                 "the dmail URI holds a space, control or non-ASCII "
                                 "character",
                                 PST_EINVAL);
    auth = in + DIR_DMAIL_SCHEME_LEN;
    slash = memchr(auth, '/', len - DIR_DMAIL_SCHEME_LEN);
    if (slash == NULL)
        return dir_addr_fail(why, "the dmail URI has no path (dmail://host/path)", PST_EINVAL);
    alen = (size_t)(slash - auth);
    if (memchr(auth, '@', alen) != NULL)
        return dir_addr_fail(why, "the dmail URI must not hold a user name", PST_EINVAL);
    colon = NULL;
    if (alen > 0 && auth[0] == '[') {
        p = memchr(auth, ']', alen);
        if (p == NULL)
            return dir_addr_fail(why, "the dmail URI has a bad IPv6 address", PST_EINVAL);
        if (p + 1 < slash) {
            if (p[1] != ':')
                return dir_addr_fail(why, "the dmail URI has a bad host", PST_EINVAL);
            colon = p + 1;
        }
    } else {
        colon = memchr(auth, ':', alen);
    }
    hlen = colon != NULL ? (size_t)(colon - auth) : alen;
    if (colon != NULL) {
        size_t plen_digits = (size_t)(slash - colon - 1);

        if (plen_digits == 0 || plen_digits > 5 || colon[1] == '0')
            return dir_addr_fail(why, "the dmail URI has a bad port", PST_EINVAL);
        for (p = colon + 1; p < slash; p++) {
            if (*p < '0' || *p > '9')
                return dir_addr_fail(why, "the dmail URI has a bad port", PST_EINVAL);
            port = port * 10 + (unsigned long)(*p - '0');
        }
        if (port > DIR_DMAIL_PORT_MAX)
            return dir_addr_fail(why, "the dmail URI has a bad port", PST_EINVAL);
    }
    if ((n = dir_addr_dmail_host(auth, hlen, host, sizeof(host), why)) != 0)
        return n;
    plen = len - (size_t)(slash - in);
    for (i = 0; i < plen; i++) {
        unsigned char c = (unsigned char)slash[i];

        if (c == '#')
            return dir_addr_fail(why, "the dmail URI must not hold a fragment (#)", PST_EINVAL);
        if (c == '%') {
            if (i + 2 >= plen || !dir_addr_hex((unsigned char)slash[i + 1]) ||
                !dir_addr_hex((unsigned char)slash[i + 2]))
                return dir_addr_fail(why, "the dmail URI has a bad %-escape", PST_EINVAL);
            continue;
        }
        if (!dir_addr_path_char(c))
            return dir_addr_fail(why,
                                 "the dmail URI's path holds a character not allowed "
                                 "there",
                                 PST_EINVAL);
    }
    if (port != 0)
        n = snprintf(out, outsz, "%s%s:%lu", DIR_DMAIL_SCHEME, host, port);
    else
        n = snprintf(out, outsz, "%s%s", DIR_DMAIL_SCHEME, host);
    if (n < 0 || (size_t)n >= outsz)
        return dir_addr_fail(why, "the dmail URI is too long", PST_ELIMIT);
    used = (size_t)n;
    if (used + plen >= outsz || used + plen > DIR_ALT_MAX)
        return dir_addr_fail(why, "the dmail URI is longer than 512 bytes", PST_ELIMIT);
    memcpy(out + used, slash, plen);
    out[used + plen] = '\0';
    return 0;
}

int dir_addr_alt_normalize(const char *type, const char *in, size_t len, char *out, size_t outsz,
                           const char **why)
{
    int rc;

    if (in == NULL || out == NULL || outsz == 0)
        return dir_addr_fail(why, "no address", PST_EINVAL);
    out[0] = '\0';
    if (len == 0)
        return dir_addr_fail(why, "the alternative address is empty", PST_EINVAL);
    if (type != NULL && strcmp(type, "bitmessage") == 0)
        rc = dir_addr_bitmessage(in, len, out, outsz, why);
    else if (type != NULL && strcmp(type, "dmail") == 0)
        rc = dir_addr_dmail(in, len, out, outsz, why);
    else
        rc = dir_addr_fail(why, "unknown type of alternative address", PST_EINVAL);
    if (rc != 0)
        out[0] = '\0';
    return rc;
}

const char *dir_addr_guess_type(const char *in, size_t len)
{
    if (in == NULL)
        return NULL;
    if (len >= sizeof(DIR_BM_PREFIX) - 1 &&
        memcmp(in, DIR_BM_PREFIX, sizeof(DIR_BM_PREFIX) - 1) == 0)
        return "bitmessage";
    if (len >= DIR_DMAIL_SCHEME_LEN && strncasecmp(in, DIR_DMAIL_SCHEME, DIR_DMAIL_SCHEME_LEN) == 0)
        return "dmail";
    return NULL;
}
