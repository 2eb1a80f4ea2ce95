/*
 * mailaddr.c - RFC 5321 paths and mailboxes (see mailaddr.h).
 *
 * Grammar implemented (RFC 5321 4.1.2, 4.1.3; RFC 5322 3.2.3 for atext;
 * RFC 6531 3.3 for UTF-8):
 *
 *   Reverse-path   = Path / "<>"
 *   Forward-path   = Path / "<Postmaster>"   (only with ALLOW_POSTMASTER)
 *   Path           = "<" [ A-d-l ":" ] Mailbox ">"
 *   A-d-l          = At-domain *( "," At-domain )   ; parsed, then dropped
 *   At-domain      = "@" Domain
 *   Mailbox        = Local-part "@" ( Domain / address-literal )
 *   Local-part     = Dot-string / Quoted-string
 *   Dot-string     = Atom *( "." Atom )
 *   Atom           = 1*atext                 ; atext =/ UTF8-non-ascii
 *   Quoted-string  = DQUOTE 1*QcontentSMTP DQUOTE
 *   QcontentSMTP   = qtextSMTP / quoted-pairSMTP
 *   qtextSMTP      = %d32-33 / %d35-91 / %d93-126 ; =/ UTF8-non-ascii
 *   quoted-pairSMTP= %d92 %d32-126
 *   Domain         = sub-domain *( "." sub-domain )
 *   sub-domain     = Let-dig [ Ldh-str ]     ; =/ U-label (UTF-8 letters)
 *   address-literal= "[" ( IPv4-address-literal / "IPv6:" IPv6-addr ) "]"
 *
 * Deliberate restrictions, all security-relevant for relay decisions:
 *   - the empty local part (also `""`) is rejected;
 *   - a sub-domain is at most 63 octets, a domain 255, a local part 64, a
 *     whole path 256 (RFC 5321 4.5.3.1); past them -> PST_ELIMIT;
 *   - address literals must pass inet_pton(); General-address-literal
 *     ("[tag:...]") is rejected;
 *   - non-ASCII bytes are accepted only with MAILADDR_ALLOW_UTF8 and must
 *     be well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF);
 *   - anything after the mailbox inside the brackets is an error, so
 *     "<user@other@local>" and "<a@b c>" never reach the relay check.
 *
 * Failure policy: pure functions; syntax errors return PST_EINVAL,
 * over-long parts PST_ELIMIT. Input is length-bounded and need not be
 * NUL-terminated; a NUL byte is simply an invalid character.
 */
#include "mailaddr.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#define MAILADDR_LABEL_MAX 63
#define MAILADDR_LITERAL_MAX 64 /* "[IPv6:" + 45 + "]" fits comfortably */
#define MAILADDR_POSTMASTER "postmaster"

struct mailaddr_cur {
    const unsigned char *s;
    size_t len;
    size_t pos;
    int utf8;     /* non-ASCII allowed */
    int saw_utf8; /* non-ASCII seen */
};

static int mailaddr_peek(const struct mailaddr_cur *c)
{
    return c->pos < c->len ? c->s[c->pos] : -1;
}

/*
 * mailaddr_utf8_len - length (2..4) of the well-formed UTF-8 sequence at p
 * (avail bytes available), or 0 if it is malformed. RFC 3629 section 4.
 */
static size_t mailaddr_utf8_len(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    unsigned char lo = 0x80, hi = 0xbf;
    size_t n, i;

    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4;
    else
        return 0;
    if (avail < n)
        return 0;
    if (c == 0xe0)
        lo = 0xa0; /* overlong */
    else if (c == 0xed)
        hi = 0x9f; /* surrogates */
    else if (c == 0xf0)
        lo = 0x90; /* overlong */
    else if (c == 0xf4)
        hi = 0x8f; /* > U+10FFFF */
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    }
    return n;
}

/*
 * mailaddr_take_utf8 - if a non-ASCII sequence starts at the cursor and is
 * allowed, advance over it and return its length; 0 if the byte is ASCII;
 * PST_EINVAL if it is non-ASCII but not allowed or malformed.
 */
static int mailaddr_take_utf8(struct mailaddr_cur *c)
{
    size_t n;

    if (c->pos >= c->len || c->s[c->pos] < 0x80)
        return 0;
    if (!c->utf8)
        return PST_EINVAL;
    n = mailaddr_utf8_len(c->s + c->pos, c->len - c->pos);
    if (n == 0)
        return PST_EINVAL;
    c->pos += n;
    c->saw_utf8 = 1;
    return (int)n;
}

static int mailaddr_is_atext(int ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return 1;
    return ch > 0 && strchr("!#$%&'*+-/=?^_`{|}~", ch) != NULL;
}

static int mailaddr_is_letdig(int ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

/* mailaddr_dot_string - parse Dot-string at the cursor; raw bytes are s[start..pos). */
static int mailaddr_dot_string(struct mailaddr_cur *c)
{
    size_t start = c->pos, atom_len = 0;
    int ch, rc;

    for (;;) {
        if (c->pos - start > MAILADDR_LOCAL_MAX)
            return PST_ELIMIT;
        ch = mailaddr_peek(c);
        if (mailaddr_is_atext(ch)) {
            c->pos++;
            atom_len++;
            continue;
        }
        if (ch == '.') {
            if (atom_len == 0)
                return PST_EINVAL; /* leading or double dot */
            c->pos++;
            atom_len = 0;
            continue;
        }
        rc = mailaddr_take_utf8(c);
        if (rc < 0)
            return rc;
        if (rc == 0)
            break;
        atom_len++;
    }
    if (c->pos - start > MAILADDR_LOCAL_MAX)
        return PST_ELIMIT;
    if (atom_len == 0)
        return PST_EINVAL; /* empty, or trailing dot */
    return 0;
}

/* mailaddr_quoted - parse Quoted-string; write unquoted content into out (MAILADDR_LOCAL_MAX+1). */
static int mailaddr_quoted(struct mailaddr_cur *c, char *out)
{
    size_t start = c->pos, n = 0, before;
    int ch, rc;

    c->pos++; /* opening DQUOTE */
    for (;;) {
        if (c->pos - start > MAILADDR_LOCAL_MAX)
            return PST_ELIMIT;
        ch = mailaddr_peek(c);
        if (ch < 0)
            return PST_EINVAL; /* unterminated */
        if (ch == '"') {
            c->pos++;
            break;
        }
        if (ch == '\\') {
            c->pos++;
            ch = mailaddr_peek(c);
            if (ch < 32 || ch > 126)
                return PST_EINVAL;
            out[n++] = (char)ch;
            c->pos++;
            continue;
        }
        if (ch >= 32 && ch <= 126) {
            out[n++] = (char)ch;
            c->pos++;
            continue;
        }
        before = c->pos;
        rc = mailaddr_take_utf8(c);
        if (rc <= 0)
            return PST_EINVAL; /* control character, NUL, CR, LF, bad UTF-8 */
        if (c->pos - start > MAILADDR_LOCAL_MAX)
            return PST_ELIMIT; /* checked before copying: out has LOCAL_MAX + 1 bytes */
        memcpy(out + n, c->s + before, (size_t)rc);
        n += (size_t)rc;
    }
    if (c->pos - start > MAILADDR_LOCAL_MAX)
        return PST_ELIMIT;
    if (n == 0)
        return PST_EINVAL; /* empty local part */
    out[n] = '\0';
    return 0;
}

static int mailaddr_local_part(struct mailaddr_cur *c, struct mailaddr *out)
{
    size_t start = c->pos;
    int rc;

    if (mailaddr_peek(c) == '"') {
        rc = mailaddr_quoted(c, out->local);
        if (rc < 0)
            return rc;
        out->quoted = 1;
        return 0;
    }
    rc = mailaddr_dot_string(c);
    if (rc < 0)
        return rc;
    memcpy(out->local, c->s + start, c->pos - start);
    out->local[c->pos - start] = '\0';
    return 0;
}

/*
 * mailaddr_domain - parse Domain at the cursor (stops at the first byte
 * that cannot continue it). Returns 0, PST_EINVAL or PST_ELIMIT.
 */
static int mailaddr_domain(struct mailaddr_cur *c)
{
    size_t start = c->pos, label = 0;
    int ch, rc, last_letdig = 0;

    for (;;) {
        if (c->pos - start > MAILADDR_DOMAIN_MAX)
            return PST_ELIMIT;
        if (label > MAILADDR_LABEL_MAX)
            return PST_ELIMIT;
        ch = mailaddr_peek(c);
        if (mailaddr_is_letdig(ch)) {
            c->pos++;
            label++;
            last_letdig = 1;
            continue;
        }
        if (ch == '-') {
            if (label == 0)
                return PST_EINVAL; /* label starts with '-' */
            c->pos++;
            label++;
            last_letdig = 0;
            continue;
        }
        if (ch == '.') {
            if (label == 0 || !last_letdig)
                return PST_EINVAL; /* empty label, or ends with '-' */
            c->pos++;
            label = 0;
            continue;
        }
        size_t before = c->pos;
        rc = mailaddr_take_utf8(c);
        if (rc < 0)
            return rc;
        if (rc == 0)
            break;
        label += c->pos - before;
        last_letdig = 1;
    }
    if (c->pos - start > MAILADDR_DOMAIN_MAX || label > MAILADDR_LABEL_MAX)
        return PST_ELIMIT;
    if (label == 0 || !last_letdig)
        return PST_EINVAL; /* empty, trailing dot or trailing '-' */
    return 0;
}

/* mailaddr_literal - parse "[...]" at the cursor and validate the address inside. */
static int mailaddr_literal(struct mailaddr_cur *c)
{
    char text[MAILADDR_LITERAL_MAX + 1];
    unsigned char bin[16];
    size_t start = c->pos, n;
    int ch;

    c->pos++; /* '[' */
    for (;;) {
        ch = mailaddr_peek(c);
        if (ch < 0)
            return PST_EINVAL;
        if (ch == ']')
            break;
        /* dcontent = %d33-90 / %d94-126 */
        if (ch < 33 || ch > 126 || ch == '[' || ch == '\\')
            return PST_EINVAL;
        if (c->pos - start > MAILADDR_LITERAL_MAX)
            return PST_ELIMIT;
        c->pos++;
    }
    n = c->pos - start - 1;
    c->pos++; /* ']' */
    if (n == 0 || n > MAILADDR_LITERAL_MAX)
        return n == 0 ? PST_EINVAL : PST_ELIMIT;
    memcpy(text, c->s + start + 1, n);
    text[n] = '\0';
    if (n > 5 && strncasecmp(text, "IPv6:", 5) == 0)
        return inet_pton(AF_INET6, text + 5, bin) == 1 ? 0 : PST_EINVAL;
    return inet_pton(AF_INET, text, bin) == 1 ? 0 : PST_EINVAL;
}

/* mailaddr_mailbox - Local-part "@" ( Domain / address-literal ). */
static int mailaddr_mailbox(struct mailaddr_cur *c, struct mailaddr *out)
{
    size_t dstart;
    int rc;

    rc = mailaddr_local_part(c, out);
    if (rc < 0)
        return rc;
    if (mailaddr_peek(c) != '@')
        return PST_EINVAL;
    c->pos++;
    dstart = c->pos;
    if (mailaddr_peek(c) == '[') {
        rc = mailaddr_literal(c);
        out->is_literal = 1;
    } else {
        rc = mailaddr_domain(c);
    }
    if (rc < 0)
        return rc;
    if (c->pos - dstart > MAILADDR_DOMAIN_MAX)
        return PST_ELIMIT;
    memcpy(out->domain, c->s + dstart, c->pos - dstart);
    out->domain[c->pos - dstart] = '\0';
    return 0;
}

/* mailaddr_source_route - A-d-l ":" ; parsed and discarded (RFC 5321 4.1.2, C.). */
static int mailaddr_source_route(struct mailaddr_cur *c)
{
    int rc;

    for (;;) {
        if (mailaddr_peek(c) != '@')
            return PST_EINVAL;
        c->pos++;
        if (mailaddr_peek(c) == '[')
            rc = mailaddr_literal(c);
        else
            rc = mailaddr_domain(c);
        if (rc < 0)
            return rc;
        if (c->pos > MAILADDR_PATH_MAX)
            return PST_ELIMIT;
        if (mailaddr_peek(c) == ':') {
            c->pos++;
            return 0;
        }
        if (mailaddr_peek(c) != ',')
            return PST_EINVAL;
        c->pos++;
    }
}

/* mailaddr_postmaster - "<Postmaster>" (case-insensitive), cursor just after '<'. */
static int mailaddr_postmaster(struct mailaddr_cur *c, struct mailaddr *out)
{
    size_t n = sizeof(MAILADDR_POSTMASTER) - 1;

    if (c->len - c->pos < n + 1 || c->s[c->pos + n] != '>')
        return 0;
    if (strncasecmp((const char *)c->s + c->pos, MAILADDR_POSTMASTER, n) != 0)
        return 0;
    memcpy(out->local, c->s + c->pos, n);
    out->local[n] = '\0';
    c->pos += n;
    return 1;
}

static void mailaddr_finish(const struct mailaddr_cur *c, struct mailaddr *out)
{
    out->has_utf8 = c->saw_utf8;
}

int mailaddr_parse_path(const char *s, size_t len, int flags, struct mailaddr *out,
                        size_t *consumed)
{
    struct mailaddr_cur c = {(const unsigned char *)s, len, 0, !!(flags & MAILADDR_ALLOW_UTF8), 0};
    int rc, ch;

    if (out == NULL || consumed == NULL)
        return PST_EINVAL;
    memset(out, 0, sizeof(*out));
    *consumed = 0;
    if (s == NULL || len == 0)
        return PST_EINVAL;
    if (s[0] != '<') {
        if (!(flags & MAILADDR_ALLOW_NOBRACKET))
            return PST_EINVAL;
        rc = mailaddr_mailbox(&c, out);
        if (rc < 0)
            return rc;
        ch = mailaddr_peek(&c);
        if (ch != -1 && ch != ' ')
            return PST_EINVAL;
        if (c.pos > MAILADDR_PATH_MAX)
            return PST_ELIMIT;
        mailaddr_finish(&c, out);
        *consumed = c.pos;
        return 0;
    }
    c.pos = 1;
    if (mailaddr_peek(&c) == '>') {
        if (!(flags & MAILADDR_ALLOW_NULL))
            return PST_EINVAL;
        out->is_null = 1;
        *consumed = 2;
        return 0;
    }
    if ((flags & MAILADDR_ALLOW_POSTMASTER) && mailaddr_postmaster(&c, out)) {
        *consumed = c.pos + 1;
        return 0;
    }
    if (mailaddr_peek(&c) == '@') {
        rc = mailaddr_source_route(&c);
        if (rc < 0)
            return rc;
    }
    rc = mailaddr_mailbox(&c, out);
    if (rc < 0)
        return rc;
    if (mailaddr_peek(&c) != '>')
        return PST_EINVAL; /* missing '>' or junk after the mailbox */
    c.pos++;
    if (c.pos > MAILADDR_PATH_MAX)
        return PST_ELIMIT;
    mailaddr_finish(&c, out);
    *consumed = c.pos;
    return 0;
}

int mailaddr_parse(const char *s, int flags, struct mailaddr *out)
{
    struct mailaddr_cur c;
    int rc;

    if (out == NULL)
        return PST_EINVAL;
    memset(out, 0, sizeof(*out));
    if (s == NULL)
        return PST_EINVAL;
    c = (struct mailaddr_cur){(const unsigned char *)s, strlen(s), 0,
                              !!(flags & MAILADDR_ALLOW_UTF8), 0};
    if (c.len == 0) {
        if (!(flags & MAILADDR_ALLOW_NULL))
            return PST_EINVAL;
        out->is_null = 1;
        return 0;
    }
    if ((flags & MAILADDR_ALLOW_POSTMASTER) && strcasecmp(s, MAILADDR_POSTMASTER) == 0) {
        memcpy(out->local, s, sizeof(MAILADDR_POSTMASTER));
        return 0;
    }
    if (c.len > MAILADDR_PATH_MAX)
        return PST_ELIMIT;
    rc = mailaddr_mailbox(&c, out);
    if (rc < 0)
        return rc;
    if (c.pos != c.len)
        return PST_EINVAL;
    mailaddr_finish(&c, out);
    return 0;
}

/* mailaddr_local_is_dot_string - 1 if local can be written without quotes. */
static int mailaddr_local_is_dot_string(const char *local)
{
    struct mailaddr_cur c = {(const unsigned char *)local, strlen(local), 0, 1, 0};

    return mailaddr_dot_string(&c) == 0 && c.pos == c.len;
}

int mailaddr_format(const struct mailaddr *a, char *out, size_t outsz)
{
    size_t pos = 0, i, dlen;
    const char *l;

    if (a == NULL || out == NULL || outsz == 0)
        return PST_EINVAL;
    out[0] = '\0';
    if (a->is_null)
        return 0;
    l = a->local;
    if (mailaddr_local_is_dot_string(l)) {
        size_t n = strlen(l);
        if (n >= outsz)
            return PST_ELIMIT;
        memcpy(out, l, n);
        pos = n;
    } else {
        if (pos + 1 >= outsz)
            return PST_ELIMIT;
        out[pos++] = '"';
        for (i = 0; l[i] != '\0'; i++) {
            int esc = (l[i] == '"' || l[i] == '\\');
            if (pos + 1 + (size_t)esc >= outsz)
                return PST_ELIMIT;
            if (esc)
                out[pos++] = '\\';
            out[pos++] = l[i];
        }
        if (pos + 1 >= outsz)
            return PST_ELIMIT;
        out[pos++] = '"';
    }
    dlen = strlen(a->domain);
    if (dlen > 0) {
        if (pos + 1 + dlen >= outsz)
            return PST_ELIMIT;
        out[pos++] = '@';
        memcpy(out + pos, a->domain, dlen);
        pos += dlen;
    }
    out[pos] = '\0';
    return 0;
}

int mailaddr_domain_valid(const char *s, int allow_utf8)
{
    struct mailaddr_cur c;

    if (s == NULL)
        return 0;
    c = (struct mailaddr_cur){(const unsigned char *)s, strlen(s), 0, !!allow_utf8, 0};
    if (c.len == 0 || c.len > MAILADDR_DOMAIN_MAX)
        return 0;
    if (mailaddr_domain(&c) < 0)
        return 0;
    return c.pos == c.len;
}
