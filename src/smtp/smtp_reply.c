/*
 * smtp_reply.c - incremental parser of SMTP server replies.
 *
 * Wire format (RFC 5321 4.2, 4.2.1; RFC 3463; RFC 2034):
 *
 *   reply      = *( code "-" [ enh SP ] text CRLF ) code [ SP [ enh SP ] text ] CRLF
 *   code       = %x32-35 DIGIT DIGIT          ; 200..599, the same on every line
 *   enh        = class "." 1*3DIGIT "." 1*3DIGIT ; class = first digit of code
 *
 * The parser copies each line into a fixed buffer of SMTP_REPLY_LINE_MAX
 * bytes; a longer line is an error, never growth. The text of all lines is
 * joined with "\n" into struct smtp_reply.text, capped at
 * SMTP_REPLY_TEXT_MAX bytes (the rest is dropped, but lines are still parsed
 * and counted). A reply of more than SMTP_REPLY_LINES_MAX lines is an error.
 *
 * Failure policy: malformed input returns PST_EINVAL, limits PST_ELIMIT;
 * nothing aborts. After an error the parser state is undefined until
 * smtp_reply_init().
 */
#include "smtp_reply.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#define SMTP_REPLY_PEEK_VECS 8 /* evbuffer chunks looked at per round */

static void smtp_reply_clear(struct smtp_reply *r)
{
    r->code = 0;
    r->enh[0] = '\0';
    r->text[0] = '\0';
    r->textlen = 0;
    r->nlines = 0;
    r->truncated = 0;
}

void smtp_reply_init(struct smtp_reply_parser *p)
{
    p->linelen = 0;
    p->complete = 0;
    smtp_reply_clear(&p->reply);
}

/*
 * smtp_reply_enh_len - if s (len n) starts with "c.sss.ddd" followed by end
 * or a space, return the length of the code, else 0.
 */
static size_t smtp_reply_enh_len(const char *s, size_t n)
{
    size_t i = 0;
    if (n < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return 0;
    i = 2;
    for (int part = 0; part < 2; part++) {
        size_t start = i;
        while (i < n && i - start < 4 && isdigit((unsigned char)s[i]))
            i++;
        if (i == start || i - start > 3)
            return 0;
        if (part == 0) {
            if (i >= n || s[i] != '.')
                return 0;
            i++;
        }
    }
    if (i < n && s[i] != ' ')
        return 0;
    return i;
}

/* smtp_reply_add_text - append one line's text, "\n"-separated, within the cap. */
static void smtp_reply_add_text(struct smtp_reply *r, const char *t, size_t n)
{
    if (r->nlines > 1) {
        if (r->textlen >= SMTP_REPLY_TEXT_MAX) {
            r->truncated = 1;
            return;
        }
        r->text[r->textlen++] = '\n';
    }
    size_t room = SMTP_REPLY_TEXT_MAX - r->textlen;
    if (n > room) {
        n = room;
        r->truncated = 1;
    }
    memcpy(r->text + r->textlen, t, n);
    r->textlen += n;
    r->text[r->textlen] = '\0';
}

/*
 * smtp_reply_line - parse the complete line in p->line (LF included).
 * Returns 1 if it was the last line of the reply, 0 if more follow, or an error.
 */
static int smtp_reply_line(struct smtp_reply_parser *p)
{
    struct smtp_reply *r = &p->reply;
    size_t n = p->linelen;
    const char *l = p->line;

    n--; /* the LF */
    if (n > 0 && l[n - 1] == '\r')
        n--;
    if (memchr(l, '\0', n))
        return PST_EINVAL;
    if (n < 3 || !isdigit((unsigned char)l[0]) || !isdigit((unsigned char)l[1]) ||
        !isdigit((unsigned char)l[2]))
        return PST_EINVAL;
    int code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
    if (code < 200 || code > 599)
        return PST_EINVAL;
    if (r->nlines > 0 && code != r->code)
        return PST_EINVAL;
    int last = 1;
    if (n > 3) {
        if (l[3] == '-')
            last = 0;
        else if (l[3] != ' ')
            return PST_EINVAL;
    }
    if (r->nlines >= SMTP_REPLY_LINES_MAX)
        return PST_ELIMIT;
    r->code = code;
    r->nlines++;

    const char *t = n > 4 ? l + 4 : l + n;
    size_t tn = n > 4 ? n - 4 : 0;
    size_t el = smtp_reply_enh_len(t, tn);
    if (r->nlines == 1 && el > 0 && t[0] - '0' == code / 100 && el < SMTP_REPLY_ENH_MAX) {
        memcpy(r->enh, t, el);
        r->enh[el] = '\0';
    }
    if (el > 0 && r->enh[0] != '\0') {
        t += el;
        tn -= el;
        if (tn > 0) { /* the space after the code */
            t++;
            tn--;
        }
    }
    smtp_reply_add_text(r, t, tn);
    return last;
}

int smtp_reply_feed(struct smtp_reply_parser *p, const void *data, size_t len, size_t *used)
{
    const char *d = data;
    size_t i = 0;

    *used = 0;
    if (p->complete) {
        p->complete = 0;
        smtp_reply_clear(&p->reply);
    }
    while (i < len) {
        const char *nl = memchr(d + i, '\n', len - i);
        size_t n = nl ? (size_t)(nl - (d + i)) + 1 : len - i;
        if (p->linelen + n > SMTP_REPLY_LINE_MAX)
            return PST_ELIMIT;
        memcpy(p->line + p->linelen, d + i, n);
        p->linelen += n;
        i += n;
        if (!nl)
            break;
        int r = smtp_reply_line(p);
        p->linelen = 0;
        if (r < 0)
            return r;
        if (r == 1) {
            p->complete = 1;
            *used = i;
            return 1;
        }
    }
    *used = i;
    return 0;
}

int smtp_reply_read(struct smtp_reply_parser *p, struct evbuffer *in)
{
    struct evbuffer_iovec v[SMTP_REPLY_PEEK_VECS];

    for (;;) {
        int n = evbuffer_peek(in, -1, NULL, v, SMTP_REPLY_PEEK_VECS);
        if (n <= 0)
            return 0;
        int lim = n < SMTP_REPLY_PEEK_VECS ? n : SMTP_REPLY_PEEK_VECS;
        size_t total = 0;
        int r = 0;
        for (int k = 0; k < lim && r == 0; k++) {
            size_t used = 0;
            r = smtp_reply_feed(p, v[k].iov_base, v[k].iov_len, &used);
            total += used;
        }
        if (r < 0)
            return r;
        if (evbuffer_drain(in, total) < 0)
            return PST_ENOMEM;
        if (r == 1)
            return 1;
        /* all peeked bytes were taken; with len -1 evbuffer_peek reports at most
         * SMTP_REPLY_PEEK_VECS vectors, so look again until the buffer is empty */
    }
}

/* ---- EHLO keywords ---- */

struct smtp_reply_kw {
    const char *name;
    unsigned bit;
};

static const struct smtp_reply_kw smtp_reply_kws[] = {
    {"PIPELINING", SMTP_EXT_PIPELINING},
    {"SIZE", SMTP_EXT_SIZE},
    {"8BITMIME", SMTP_EXT_8BITMIME},
    {"SMTPUTF8", SMTP_EXT_SMTPUTF8},
    {"STARTTLS", SMTP_EXT_STARTTLS},
    {"AUTH", SMTP_EXT_AUTH},
    {"DSN", SMTP_EXT_DSN},
    {"CHUNKING", SMTP_EXT_CHUNKING},
    {"ENHANCEDSTATUSCODES", SMTP_EXT_ENHANCEDSTATUSCODES},
};

static const struct smtp_reply_kw smtp_reply_mechs[] = {
    {"PLAIN", SMTP_AUTH_M_PLAIN},
    {"LOGIN", SMTP_AUTH_M_LOGIN},
    {"CRAM-MD5", SMTP_AUTH_M_CRAM_MD5},
    {"XOAUTH2", SMTP_AUTH_M_XOAUTH2},
};

static int smtp_reply_word_is(const char *w, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(w, name, n) == 0;
}

/* smtp_reply_size_arg - a decimal SIZE argument, 0 if absent or not a plain number. */
static uint64_t smtp_reply_size_arg(const char *a, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)a[i]))
            return 0;
        unsigned dgt = (unsigned)(a[i] - '0');
        if (v > (UINT64_MAX - dgt) / 10)
            return 0;
        v = v * 10 + dgt;
    }
    return v;
}

static unsigned smtp_reply_auth_args(const char *a, size_t n)
{
    unsigned bits = 0;
    size_t i = 0;
    while (i < n) {
        while (i < n && (a[i] == ' ' || a[i] == '='))
            i++;
        size_t s = i;
        while (i < n && a[i] != ' ')
            i++;
        if (i == s)
            break;
        unsigned bit = SMTP_AUTH_M_OTHER;
        for (size_t k = 0; k < PST_ARRAY_LEN(smtp_reply_mechs); k++)
            if (smtp_reply_word_is(a + s, i - s, smtp_reply_mechs[k].name))
                bit = smtp_reply_mechs[k].bit;
        bits |= bit;
    }
    return bits;
}

static void smtp_reply_ehlo_line(const char *l, size_t n, struct smtp_ehlo *out)
{
    size_t kw = 0;
    while (kw < n && l[kw] != ' ' && l[kw] != '=')
        kw++;
    const char *arg = kw < n ? l + kw + 1 : l + n;
    size_t argn = kw < n ? n - kw - 1 : 0;
    /* trailing spaces and CR-less junk: trim spaces */
    while (argn > 0 && arg[argn - 1] == ' ')
        argn--;
    for (size_t k = 0; k < PST_ARRAY_LEN(smtp_reply_kws); k++) {
        if (!smtp_reply_word_is(l, kw, smtp_reply_kws[k].name))
            continue;
        out->ext |= smtp_reply_kws[k].bit;
        if (smtp_reply_kws[k].bit == SMTP_EXT_SIZE)
            out->size_max = smtp_reply_size_arg(arg, argn);
        if (smtp_reply_kws[k].bit == SMTP_EXT_AUTH)
            out->auth |= smtp_reply_auth_args(arg, argn);
    }
}

void smtp_reply_ehlo(const struct smtp_reply *r, struct smtp_ehlo *out)
{
    memset(out, 0, sizeof(*out));
    const char *p = memchr(r->text, '\n', r->textlen);
    const char *end = r->text + r->textlen;
    while (p && p < end) {
        p++; /* skip the '\n' ending the previous line */
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        smtp_reply_ehlo_line(p, n, out);
        p = nl;
    }
}
