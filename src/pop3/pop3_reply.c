/*
 * pop3_reply.c - pure parsers for POP3 server output (client side).
 *
 * See pop3_reply.h for the grammar handled and the RFC sections. Invariants:
 * no function reads outside [s, s + len), none allocates, none trusts a
 * length or a number from the peer without checking it against the named
 * limits. Numbers are plain decimal digits (no sign, no leading spaces
 * inside the number); overflow is PST_ELIMIT, never wrap-around.
 *
 * The body decoder is a four-state machine over bytes:
 *   BOL   at the start of a line: '.' -> DOT, else emit and go to MID
 *         (or stay at BOL for an empty line)
 *   MID   inside a line: emit; '\n' -> BOL (memchr fast path)
 *   DOT   saw '.' at BOL: '\r' -> DOTCR, '\n' -> end, else the '.' was
 *         stuffing: drop it, emit the byte, MID
 *   DOTCR saw ".\r" at BOL: '\n' -> end, else the '.' was stuffing before a
 *         bare CR: emit '\r', then handle the byte in MID
 * so at most one byte (the CR of DOTCR) is held back between pieces.
 */
#include "pop3_reply.h"

#include <string.h>
#include <strings.h>

enum pop3_body_state { POP3_B_BOL = 0, POP3_B_MID, POP3_B_DOT, POP3_B_DOTCR, POP3_B_END };

/* pop3_reply_num - decimal digits at s[*i..len) into *out (<= max); advances *i. */
static int pop3_reply_num(const char *s, size_t len, size_t *i, uint64_t max, uint64_t *out)
{
    size_t p = *i;
    uint64_t v = 0;
    if (p >= len || s[p] < '0' || s[p] > '9')
        return PST_EINVAL;
    for (; p < len && s[p] >= '0' && s[p] <= '9'; p++) {
        uint64_t d = (uint64_t)(s[p] - '0');
        if (v > (max - d) / 10)
            return PST_ELIMIT;
        v = v * 10 + d;
    }
    *i = p;
    *out = v;
    return 0;
}

/* pop3_reply_spaces - skip at least one space or tab; PST_EINVAL if there is none. */
static int pop3_reply_spaces(const char *s, size_t len, size_t *i)
{
    size_t p = *i;
    while (p < len && (s[p] == ' ' || s[p] == '\t'))
        p++;
    if (p == *i)
        return PST_EINVAL;
    *i = p;
    return 0;
}

/* pop3_reply_two - "a b[ rest]" with a <= amax, b <= POP3_SIZE_MAX; rest follows a space. */
static int pop3_reply_two(const char *s, size_t len, uint64_t amax, uint64_t *a, uint64_t *b)
{
    size_t i = 0;
    int rc = pop3_reply_num(s, len, &i, amax, a);
    if (rc == 0)
        rc = pop3_reply_spaces(s, len, &i);
    if (rc == 0)
        rc = pop3_reply_num(s, len, &i, POP3_SIZE_MAX, b);
    if (rc < 0)
        return rc;
    if (i < len && s[i] != ' ' && s[i] != '\t')
        return PST_EINVAL; /* "12 345x" */
    for (; i < len; i++)
        if (s[i] == '\0' || s[i] == '\r' || s[i] == '\n')
            return PST_EINVAL;
    return 0;
}

int pop3_reply_listing(const char *s, size_t len, uint32_t *msgno, uint64_t *size)
{
    uint64_t a, b;
    int rc = pop3_reply_two(s, len, POP3_MSGNO_MAX, &a, &b);
    if (rc < 0)
        return rc;
    if (a == 0)
        return PST_EINVAL;
    *msgno = (uint32_t)a;
    *size = b;
    return 0;
}

int pop3_reply_stat(const char *s, size_t len, uint32_t *count, uint64_t *octets)
{
    uint64_t a, b;
    int rc = pop3_reply_two(s, len, POP3_MSGNO_MAX, &a, &b);
    if (rc < 0)
        return rc;
    *count = (uint32_t)a;
    *octets = b;
    return 0;
}

int pop3_reply_uidl(const char *s, size_t len, uint32_t *msgno, char uid[POP3_UIDL_MAX + 1])
{
    size_t i = 0;
    uint64_t n;
    int rc = pop3_reply_num(s, len, &i, POP3_MSGNO_MAX, &n);
    if (rc == 0)
        rc = pop3_reply_spaces(s, len, &i);
    if (rc < 0)
        return rc;
    if (n == 0)
        return PST_EINVAL;
    size_t start = i;
    while (i < len && (unsigned char)s[i] >= 0x21 && (unsigned char)s[i] <= 0x7e)
        i++;
    size_t ulen = i - start;
    if (ulen == 0)
        return PST_EINVAL;
    if (ulen > POP3_UIDL_MAX)
        return PST_ELIMIT;
    for (size_t j = i; j < len; j++)
        if (s[j] != ' ' && s[j] != '\t')
            return PST_EINVAL;
    memcpy(uid, s + start, ulen);
    uid[ulen] = '\0';
    *msgno = (uint32_t)n;
    return 0;
}

/* pop3_reply_code - a well-formed "[level/level]" at s (len bytes)? Copies it; returns its length
 * incl. brackets, or 0. */
static size_t pop3_reply_code(const char *s, size_t len, char *code, size_t codesz)
{
    if (len < 3 || s[0] != '[')
        return 0;
    size_t i = 1, level = 0;
    for (; i < len && s[i] != ']'; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '/') {
            if (level == 0)
                return 0; /* empty level */
            level = 0;
            continue;
        }
        if (ch < 0x21 || ch > 0x7f)
            return 0;
        level++;
    }
    if (i >= len || level == 0 || i - 1 >= codesz)
        return 0;
    memcpy(code, s + 1, i - 1);
    code[i - 1] = '\0';
    return i + 1;
}

int pop3_reply_status(const char *line, size_t len, struct pop3_status_line *out)
{
    memset(out, 0, sizeof(*out));
    if (len + 2 > POP3_REPLY_LINE_MAX)
        return PST_ELIMIT;
    if (memchr(line, '\0', len) || memchr(line, '\r', len) || memchr(line, '\n', len))
        return PST_EINVAL;
    size_t ind;
    if (len >= 3 && memcmp(line, "+OK", 3) == 0) {
        out->status = POP3_ST_OK;
        ind = 3;
    } else if (len >= 4 && memcmp(line, "-ERR", 4) == 0) {
        out->status = POP3_ST_ERR;
        ind = 4;
    } else if (len >= 1 && line[0] == '+' && (len == 1 || line[1] == ' ')) {
        out->status = POP3_ST_CONT; /* RFC 5034 4: "+" SP base64 */
        ind = 1;
    } else {
        return PST_EINVAL;
    }
    if (ind < len && line[ind] != ' ')
        return PST_EINVAL; /* "+OKAY", "-ERROR" */
    size_t i = ind < len ? ind + 1 : ind;
    if (out->status != POP3_ST_CONT) {
        size_t cl = pop3_reply_code(line + i, len - i, out->code, sizeof(out->code));
        if (cl > 0) {
            i += cl;
            if (i < len && line[i] == ' ')
                i++;
        }
    }
    out->text = line + i;
    out->textlen = len - i;
    return 0;
}

/* pop3_reply_word - does the token [s, s+n) equal w (case-insensitive)? */
static int pop3_reply_word(const char *s, size_t n, const char *w)
{
    return strlen(w) == n && strncasecmp(s, w, n) == 0;
}

int pop3_reply_capa(const char *line, size_t len, unsigned *caps)
{
    static const struct {
        const char *tag;
        unsigned bit;
    } tags[] = {
        {"TOP", POP3_CAP_TOP},
        {"USER", POP3_CAP_USER},
        {"SASL", POP3_CAP_SASL},
        {"RESP-CODES", POP3_CAP_RESP_CODES},
        {"PIPELINING", POP3_CAP_PIPELINING},
        {"UIDL", POP3_CAP_UIDL},
        {"STLS", POP3_CAP_STLS},
        {"AUTH-RESP-CODE", POP3_CAP_AUTH_RESP_CODE},
    };
    if (len == 0)
        return PST_EINVAL;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
            return PST_EINVAL;
    size_t i = 0, tl = 0;
    while (tl < len && line[tl] != ' ' && line[tl] != '\t')
        tl++;
    unsigned bit = 0;
    for (size_t t = 0; t < PST_ARRAY_LEN(tags); t++)
        if (pop3_reply_word(line, tl, tags[t].tag))
            bit = tags[t].bit;
    *caps |= bit;
    if (bit != POP3_CAP_SASL)
        return 0;
    for (i = tl; i < len;) { /* the mechanisms */
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
            i++;
        size_t st = i;
        while (i < len && line[i] != ' ' && line[i] != '\t')
            i++;
        if (i > st && pop3_reply_word(line + st, i - st, "PLAIN"))
            *caps |= POP3_CAP_SASL_PLAIN;
    }
    return 0;
}

int pop3_reply_multiline(const char *line, size_t len, const char **out, size_t *outlen)
{
    if (len == 1 && line[0] == '.') {
        *out = line + 1;
        *outlen = 0;
        return 1;
    }
    if (len > 0 && line[0] == '.') {
        *out = line + 1;
        *outlen = len - 1;
        return 0;
    }
    *out = line;
    *outlen = len;
    return 0;
}

void pop3_body_init(struct pop3_body *b)
{
    b->state = POP3_B_BOL;
}

int pop3_body_feed(struct pop3_body *b, const char *in, size_t len, char *out, size_t *outlen,
                   size_t *used)
{
    size_t i = 0, o = 0;
    while (i < len && b->state != POP3_B_END) {
        char ch = in[i];
        switch (b->state) {
        case POP3_B_MID: {
            const char *nl = memchr(in + i, '\n', len - i);
            size_t n = nl ? (size_t)(nl - (in + i)) + 1 : len - i;
            memcpy(out + o, in + i, n);
            o += n;
            i += n;
            if (nl)
                b->state = POP3_B_BOL;
            continue;
        }
        case POP3_B_BOL:
            i++;
            if (ch == '.') {
                b->state = POP3_B_DOT;
                continue;
            }
            out[o++] = ch;
            b->state = ch == '\n' ? POP3_B_BOL : POP3_B_MID;
            continue;
        case POP3_B_DOT:
            i++;
            if (ch == '\r') {
                b->state = POP3_B_DOTCR;
            } else if (ch == '\n') {
                b->state = POP3_B_END;
            } else {
                out[o++] = ch; /* the '.' was stuffing */
                b->state = POP3_B_MID;
            }
            continue;
        case POP3_B_DOTCR:
            if (ch == '\n') {
                i++;
                b->state = POP3_B_END;
                continue;
            }
            out[o++] = '\r'; /* ".\r" + not LF: the CR is data; ch is handled in MID */
            b->state = POP3_B_MID;
            continue;
        default:
            break;
        }
    }
    *outlen = o;
    *used = i;
    return b->state == POP3_B_END;
}
