/*
 * dir_query.c - bounded parser for query strings and urlencoded form bodies.
 *
 * Grammar accepted (WHATWG application/x-www-form-urlencoded, made strict):
 *   input   = [ segment *( "&" segment ) ]
 *   segment = "" / key [ "=" value ]        ; empty segments are skipped
 *   key     = 1*( ALPHA / DIGIT / "_" / "." / "-" )
 *   value   = *( unreserved-ish byte / "+" / "%" HEXDIG HEXDIG )
 * Keys are taken literally (no percent-decoding: none of ours needs it).
 * Values: "+" is a space, %XX is the byte XX; a "%" not followed by two hex
 * digits is an error (RFC 3986 2.1). Raw bytes other than printable ASCII
 * are refused before decoding (a conforming client percent-encodes them);
 * the decoded value must be UTF-8 without control characters (RFC 3629 3).
 *
 * Failure policy: returns PST_EINVAL / PST_ELIMIT with a static reason; no
 * allocation, no logging, never aborts on input.
 */
#include "directory/dir_query.h"

#include <stdint.h>
#include <string.h>

#define DIR_Q_WHY_TOOLONG "the request is too long"
#define DIR_Q_WHY_TOOMANY "too many parameters"
#define DIR_Q_WHY_KEY "a parameter name is malformed"
#define DIR_Q_WHY_KEYLONG "a parameter name is too long"
#define DIR_Q_WHY_DUP "a parameter is given twice"
#define DIR_Q_WHY_PCT "a %-escape is malformed"
#define DIR_Q_WHY_RAW "the request holds characters that must be %-escaped"
#define DIR_Q_WHY_VALLONG "a parameter value is too long"
#define DIR_Q_WHY_UTF8 "a parameter value is not valid UTF-8 text"

static int dir_query_hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int dir_query_key_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

/* dir_utf8_seq - length of the valid, non-control UTF-8 sequence at s (avail bytes), or 0. */
static size_t dir_utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return (c < 0x20 || c == 0x7f) ? 0 : 1;
    size_t n;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2, cp = c & 0x1fu, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, cp = c & 0x0fu, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, cp = c & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0u) != 0x80u)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp < 0xa0))
        return 0;
    return n;
}

int dir_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t n = dir_utf8_seq(p + i, len - i);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

static int dir_query_fail(int rc, const char *reason, const char **why)
{
    if (why)
        *why = reason;
    return rc;
}

/* dir_query_key - copy and check the key of one segment into the store. */
static int dir_query_key(struct dir_query *q, const char *k, size_t klen, const char **why)
{
    if (klen == 0)
        return dir_query_fail(PST_EINVAL, DIR_Q_WHY_KEY, why);
    if (klen > DIR_QUERY_KEY_MAX)
        return dir_query_fail(PST_ELIMIT, DIR_Q_WHY_KEYLONG, why);
    for (size_t i = 0; i < klen; i++)
        if (!dir_query_key_char((unsigned char)k[i]))
            return dir_query_fail(PST_EINVAL, DIR_Q_WHY_KEY, why);
    char *dst = q->store + q->used;
    memcpy(dst, k, klen);
    dst[klen] = '\0';
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->p[i].key, dst) == 0)
            return dir_query_fail(PST_EINVAL, DIR_Q_WHY_DUP, why);
    q->p[q->n].key = dst;
    q->used += klen + 1;
    return 0;
}

/* dir_query_value - percent-decode one value into the store and check it. */
static int dir_query_value(struct dir_query *q, const char *v, size_t vlen, const char **why)
{
    char *dst = q->store + q->used;
    size_t o = 0;
    for (size_t i = 0; i < vlen; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == '%') {
            if (i + 2 >= vlen)
                return dir_query_fail(PST_EINVAL, DIR_Q_WHY_PCT, why);
            int h = dir_query_hex((unsigned char)v[i + 1]);
            int l = dir_query_hex((unsigned char)v[i + 2]);
            if (h < 0 || l < 0)
                return dir_query_fail(PST_EINVAL, DIR_Q_WHY_PCT, why);
            c = (unsigned char)(h * 16 + l);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        } else if (c <= 0x20 || c >= 0x7f) {
            return dir_query_fail(PST_EINVAL, DIR_Q_WHY_RAW, why);
        }
        if (o >= DIR_QUERY_VALUE_MAX)
            return dir_query_fail(PST_ELIMIT, DIR_Q_WHY_VALLONG, why);
        dst[o++] = (char)c;
    }
    if (!dir_utf8_valid(dst, o))
        return dir_query_fail(PST_EINVAL, DIR_Q_WHY_UTF8, why);
    dst[o] = '\0';
    q->p[q->n].value = dst;
    q->p[q->n].vlen = o;
    q->used += o + 1;
    return 0;
}

int dir_query_parse(struct dir_query *q, const char *s, size_t len, const char **why)
{
    q->n = 0;
    q->used = 0;
    if (len > DIR_QUERY_MAX_LEN)
        return dir_query_fail(PST_ELIMIT, DIR_Q_WHY_TOOLONG, why);
    size_t i = 0;
    while (i < len) {
        const char *seg = s + i;
        const char *amp = memchr(seg, '&', len - i);
        size_t slen = amp ? (size_t)(amp - seg) : len - i;
        i += slen + 1;
        if (slen == 0)
            continue;
        if (q->n >= DIR_QUERY_MAX_PARAMS)
            return dir_query_fail(PST_ELIMIT, DIR_Q_WHY_TOOMANY, why);
        const char *eq = memchr(seg, '=', slen);
        size_t klen = eq ? (size_t)(eq - seg) : slen;
        int rc = dir_query_key(q, seg, klen, why);
        if (rc == 0)
            rc = eq ? dir_query_value(q, eq + 1, slen - klen - 1, why)
                    : dir_query_value(q, "", 0, why);
        if (rc != 0)
            return rc;
        q->n++;
    }
    return 0;
}

const char *dir_query_get(const struct dir_query *q, const char *key)
{
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->p[i].key, key) == 0)
            return q->p[i].value;
    return NULL;
}
