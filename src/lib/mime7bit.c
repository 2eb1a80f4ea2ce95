/*
 * mime7bit.c - 8-bit to 7-bit MIME downgrade (see mime7bit.h).
 *
 * RFC 6152 3: a client holding 8-bit content for a server without 8BITMIME
 * must return it or convert it to 7-bit MIME. This file converts, the way
 * Sendmail and Postfix do: walk the MIME tree and re-encode only the leaf
 * bodies that are not 7-bit data, leaving every other byte as it was.
 *
 * Model. An entity is a byte range [start, end) of the message: header
 * fields, an optional blank line, a body. The top level and the body of a
 * message/rfc822 part are entities; so is each body part of a multipart.
 * For each entity:
 *   - if the whole range is 7-bit data (no byte >= 0x80, no NUL, no line
 *     longer than 998 octets) it is copied unchanged: an input needing no
 *     conversion gives byte-identical output;
 *   - otherwise its header fields must themselves be 7-bit data (an 8-bit
 *     header would need RFC 2047 or SMTPUTF8: PST_EINVAL), and:
 *       multipart/...     (RFC 2046 5.1) each part between "--boundary" lines
 *                       is converted as an entity; preamble, delimiter
 *                       lines and epilogue are copied and must be 7-bit;
 *       message/rfc822  (RFC 2046 5.2.1) the body is converted as an entity;
 *       message/partial, message/external-body: must be 7bit (RFC 2046
 *                       5.2.2, 5.2.3): PST_EINVAL;
 *       text/...          body re-encoded as quoted-printable (RFC 2045 6.7);
 *       anything else   body re-encoded as base64 (RFC 2045 6.8).
 *     A leaf is re-encoded only from an identity encoding (7bit, 8bit,
 *     binary, absent; a 7bit label on 8-bit data is treated as 8bit);
 *     8-bit bytes under any other CTE are PST_EINVAL. Composite entities
 *     must have an identity CTE (RFC 2045 6.4); 8bit/binary becomes 7bit.
 *
 * Header fields are copied verbatim, except that Content-Transfer-Encoding
 * fields of a rewritten entity are replaced by one new field (at the place
 * of the first) and MIME-Version / Content-Type fields may be added after
 * the last field (see mime7bit.h). Content-Type is parsed after RFC 2045
 * 5.1 with unfolding, comments and quoted strings; RFC 2231 continuations
 * of boundary are not supported (such a multipart has no usable boundary).
 * A header block ends at a blank line, or at the first line that is neither
 * a field ("name:") nor a continuation; in the latter case a blank line is
 * inserted when the header block is rewritten.
 *
 * Delimiter lines (RFC 2046 5.1.1) are matched exactly: "--" boundary, an
 * optional "--", then only transport padding (SP / HTAB) up to the line end.
 * The CRLF before a delimiter line belongs to the delimiter. A missing close
 * delimiter ends the last part at the end of the enclosing entity; without
 * any delimiter line the whole body is preamble.
 *
 * Encodings: QP output lines are at most 76 octets including a soft break
 * "=", '=', controls (TAB excepted), bytes >= 0x80, and SP/TAB before a line
 * end are encoded; CRLF is a hard break, a bare CR or LF is encoded, so
 * decoding restores the exact bytes. base64 lines hold 76 characters. When
 * an encoded body ends the whole message, a final soft break (QP) or CRLF
 * (base64) makes the output end with CRLF without changing the decoding.
 *
 * Failure policy: pure function; bad or unconvertible input returns
 * PST_EINVAL, limits (mime7bit.h) PST_ELIMIT, out's allocation PST_ENOMEM.
 * Recursion depth is bounded by MIME7BIT_MAX_DEPTH; the work is
 * O(len * depth).
 */
#include "mime7bit.h"

#include <string.h>
#include <strings.h>

#define M7_QP_SOFT_MAX (MIME7BIT_ENC_LINE - 1) /* room left for the "=" of a soft break */
#define M7_B64_IN (MIME7BIT_ENC_LINE / 4 * 3)  /* input bytes per base64 line */

#define M7_F_8BIT 1 /* region has a byte >= 0x80 or a NUL */
#define M7_F_LONG 2 /* region has a line longer than MIME7BIT_LINE_MAX */

#define M7_E_MESSAGE 1 /* entity is a message: may get MIME-Version */
#define M7_E_DIGEST 2  /* entity is a multipart/digest part: default message/rfc822 */

enum m7_cte {
    M7_CTE_NONE, /* no Content-Transfer-Encoding field */
    M7_CTE_7BIT,
    M7_CTE_8BIT,
    M7_CTE_BINARY,
    M7_CTE_QP,
    M7_CTE_BASE64,
    M7_CTE_OTHER,
};

enum m7_kind {
    M7_K_TEXT,      /* text/...: quoted-printable */
    M7_K_BINARY,    /* other leaf: base64 */
    M7_K_MULTIPART, /* multipart/... with a boundary */
    M7_K_RFC822,    /* message/rfc822 */
    M7_K_OPAQUE,    /* must stay 7bit: message/partial, external-body, boundary-less multipart */
};

struct m7_ctx {
    const char *s; /* the whole message; borrowed */
    size_t len;
    buf_t *out; /* borrowed */
};

struct m7_hdr {
    size_t start;    /* entity start = first header field */
    size_t sep;      /* end of the header fields: blank line or first body line */
    size_t body;     /* body start */
    int has_sep;     /* a blank line separates header and body */
    int has_ct;      /* a Content-Type field exists */
    int has_mv;      /* a MIME-Version field exists */
    int has_cte;     /* a Content-Transfer-Encoding field exists */
    enum m7_cte cte; /* from the first CTE field */
    enum m7_kind kind;
    int digest;       /* multipart/digest */
    int bnd_too_long; /* boundary parameter past MIME7BIT_BOUNDARY_MAX */
    size_t bnd_len;
    char bnd[MIME7BIT_BOUNDARY_MAX + 1];
};

static int m7_entity(struct m7_ctx *c, size_t start, size_t end, int depth, int eflags);

int mime7bit_needed(const char *data, size_t len)
{
    const unsigned char *p = (const unsigned char *)data;

    for (size_t i = 0; i < len; i++)
        if (p[i] >= 0x80 || p[i] == 0)
            return 1;
    return 0;
}

/* ---- byte-level helpers ---- */

/* m7_scan - M7_F_* flags for [a, b); lines are counted from a. */
static int m7_scan(const struct m7_ctx *c, size_t a, size_t b)
{
    const unsigned char *s = (const unsigned char *)c->s;
    size_t col = 0;
    int f = 0;

    for (size_t i = a; i < b; i++) {
        if (s[i] >= 0x80 || s[i] == 0)
            f |= M7_F_8BIT;
        if (s[i] == '\n') {
            if (col > MIME7BIT_LINE_MAX + (i > a && s[i - 1] == '\r' ? 1u : 0u))
                f |= M7_F_LONG;
            col = 0;
        } else {
            col++;
        }
    }
    if (col > MIME7BIT_LINE_MAX + (b > a && s[b - 1] == '\r' ? 1u : 0u))
        f |= M7_F_LONG;
    return f;
}

/* m7_check - 0 if [a, b) may be copied unchanged into 7-bit output. */
static int m7_check(const struct m7_ctx *c, size_t a, size_t b)
{
    int f = m7_scan(c, a, b);

    if (f & M7_F_8BIT)
        return PST_EINVAL;
    if (f & M7_F_LONG)
        return PST_ELIMIT;
    return 0;
}

static int m7_copy(struct m7_ctx *c, size_t a, size_t b)
{
    return buf_append(c->out, c->s + a, b - a);
}

/* m7_verbatim - check then copy a region that is not re-encoded. */
static int m7_verbatim(struct m7_ctx *c, size_t a, size_t b)
{
    int rc = m7_check(c, a, b);

    return rc < 0 ? rc : m7_copy(c, a, b);
}

/* m7_line_end - offset just past the LF ending the line at pos, or end. */
static size_t m7_line_end(const struct m7_ctx *c, size_t pos, size_t end)
{
    const char *nl = memchr(c->s + pos, '\n', end - pos);

    return nl ? (size_t)(nl - c->s) + 1 : end;
}

/* m7_content_end - end of a line's content: before its CRLF or LF. */
static size_t m7_content_end(const struct m7_ctx *c, size_t pos, size_t le)
{
    if (le > pos && c->s[le - 1] == '\n') {
        le--;
        if (le > pos && c->s[le - 1] == '\r')
            le--;
    }
    return le;
}

static int m7_is_wsp(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* m7_is_tchar - RFC 2045 5.1 token character. */
static int m7_is_tchar(char ch)
{
    unsigned char u = (unsigned char)ch;

    if (u <= 32 || u >= 127)
        return 0;
    return strchr("()<>@,;:\\\"/[]?=", ch) == NULL;
}

/* ---- header fields ---- */

/* m7_field_name - length of the field name if [pos, ce) starts "name:", else 0. */
static size_t m7_field_name(const struct m7_ctx *c, size_t pos, size_t ce)
{
    size_t i = pos;

    while (i < ce && (unsigned char)c->s[i] > 32 && (unsigned char)c->s[i] < 127 && c->s[i] != ':')
        i++;
    if (i == pos)
        return 0;
    size_t n = i - pos;
    while (i < ce && m7_is_wsp(c->s[i])) /* obs-optional: "Name :" */
        i++;
    return i < ce && c->s[i] == ':' ? n : 0;
}

/*
 * m7_next_field - the field at pos: its end (after the last continuation
 * line) in *fend. Returns 1 for a field, 0 at the end of the header block
 * (blank line, non-field line, or end of entity).
 */
static int m7_next_field(const struct m7_ctx *c, size_t pos, size_t end, size_t *fend)
{
    if (pos >= end)
        return 0;
    size_t le = m7_line_end(c, pos, end);
    size_t ce = m7_content_end(c, pos, le);
    if (ce == pos || m7_field_name(c, pos, ce) == 0)
        return 0;
    pos = le;
    while (pos < end && m7_is_wsp(c->s[pos]))
        pos = m7_line_end(c, pos, end);
    *fend = pos;
    return 1;
}

/* m7_field_is - 1 if the field at pos is named name (case-insensitive); *val = after ':'. */
static int m7_field_is(const struct m7_ctx *c, size_t pos, size_t fend, const char *name,
                       size_t *val)
{
    size_t le = m7_line_end(c, pos, fend);
    size_t ce = m7_content_end(c, pos, le);
    size_t n = m7_field_name(c, pos, ce);
    size_t want = strlen(name);

    if (n != want || strncasecmp(c->s + pos, name, n) != 0)
        return 0;
    pos += n;
    while (c->s[pos] != ':')
        pos++;
    *val = pos + 1;
    return 1;
}

/* m7_skip_cfws - skip white space, folding and (nested) comments. */
static size_t m7_skip_cfws(const struct m7_ctx *c, size_t p, size_t q)
{
    size_t depth = 0;

    while (p < q) {
        char ch = c->s[p];
        if (depth > 0) {
            if (ch == '\\' && p + 1 < q)
                p++;
            else if (ch == '(')
                depth++;
            else if (ch == ')')
                depth--;
            p++;
        } else if (m7_is_wsp(ch) || ch == '\r' || ch == '\n') {
            p++;
        } else if (ch == '(') {
            depth = 1;
            p++;
        } else {
            break;
        }
    }
    return p;
}

static size_t m7_token(const struct m7_ctx *c, size_t p, size_t q)
{
    while (p < q && m7_is_tchar(c->s[p]))
        p++;
    return p;
}

static int m7_tok_eq(const struct m7_ctx *c, size_t a, size_t b, const char *word)
{
    return b - a == strlen(word) && strncasecmp(c->s + a, word, b - a) == 0;
}

/* m7_parse_cte - RFC 2045 6.1 mechanism of the field value [p, q). */
static enum m7_cte m7_parse_cte(const struct m7_ctx *c, size_t p, size_t q)
{
    static const struct {
        const char *name;
        enum m7_cte cte;
    } m7_ctes[] = {
        {"7bit", M7_CTE_7BIT},           {"8bit", M7_CTE_8BIT},     {"binary", M7_CTE_BINARY},
        {"quoted-printable", M7_CTE_QP}, {"base64", M7_CTE_BASE64},
    };
    size_t a = m7_skip_cfws(c, p, q);
    size_t b = m7_token(c, a, q);

    if (m7_skip_cfws(c, b, q) != q)
        return M7_CTE_OTHER;
    for (size_t i = 0; i < PST_ARRAY_LEN(m7_ctes); i++)
        if (m7_tok_eq(c, a, b, m7_ctes[i].name))
            return m7_ctes[i].cte;
    return M7_CTE_OTHER;
}

/*
 * m7_param_value - read a token or quoted-string at p; when keep, store it
 * in h->bnd. Returns the offset after the value, or 0 if there is none.
 */
static size_t m7_param_value(const struct m7_ctx *c, size_t p, size_t q, struct m7_hdr *h, int keep)
{
    size_t n = 0;

    if (p < q && c->s[p] != '"') {
        size_t e = m7_token(c, p, q);
        if (e == p)
            return 0;
        if (keep && e - p > MIME7BIT_BOUNDARY_MAX) {
            h->bnd_too_long = 1;
        } else if (keep) {
            h->bnd_len = e - p;
            memcpy(h->bnd, c->s + p, h->bnd_len);
        }
        return e;
    }
    if (p >= q)
        return 0;
    for (p++; p < q; p++) {
        char ch = c->s[p];
        if (ch == '"')
            break;
        if (ch == '\r' || ch == '\n') /* unfolding */
            continue;
        if (ch == '\\' && p + 1 < q)
            ch = c->s[++p];
        if (!keep)
            continue;
        if (n >= MIME7BIT_BOUNDARY_MAX)
            h->bnd_too_long = 1;
        else
            h->bnd[n++] = ch;
    }
    if (p >= q)
        return 0; /* unterminated quoted-string */
    if (keep && !h->bnd_too_long)
        h->bnd_len = n;
    return p + 1;
}

/* m7_parse_params - "; attr=value" list; picks up the first boundary=. */
static void m7_parse_params(const struct m7_ctx *c, size_t p, size_t q, struct m7_hdr *h)
{
    int got_bnd = 0;

    for (;;) {
        p = m7_skip_cfws(c, p, q);
        if (p >= q || c->s[p] != ';')
            return;
        p = m7_skip_cfws(c, p + 1, q);
        size_t a = p;
        p = m7_token(c, p, q);
        if (p == a)
            continue; /* empty parameter (";;"); a stray char ends the loop next round */
        size_t b = p;
        p = m7_skip_cfws(c, p, q);
        if (p >= q || c->s[p] != '=')
            return;
        p = m7_skip_cfws(c, p + 1, q);
        int keep = !got_bnd && m7_tok_eq(c, a, b, "boundary");
        p = m7_param_value(c, p, q, h, keep);
        if (p == 0)
            return;
        got_bnd |= keep;
    }
}

/* m7_parse_ct - RFC 2045 5.1 Content-Type value [p, q); invalid -> text (5.2). */
static void m7_parse_ct(const struct m7_ctx *c, size_t p, size_t q, struct m7_hdr *h)
{
    size_t ta = m7_skip_cfws(c, p, q);
    size_t tb = m7_token(c, ta, q);
    size_t sl = m7_skip_cfws(c, tb, q);
    if (tb == ta || sl >= q || c->s[sl] != '/') {
        h->kind = M7_K_TEXT;
        return;
    }
    size_t sa = m7_skip_cfws(c, sl + 1, q);
    size_t sb = m7_token(c, sa, q);
    if (sb == sa) {
        h->kind = M7_K_TEXT;
        return;
    }
    m7_parse_params(c, sb, q, h);
    if (m7_tok_eq(c, ta, tb, "text")) {
        h->kind = M7_K_TEXT;
    } else if (m7_tok_eq(c, ta, tb, "multipart")) {
        h->kind = M7_K_MULTIPART;
        h->digest = m7_tok_eq(c, sa, sb, "digest");
    } else if (m7_tok_eq(c, ta, tb, "message")) {
        if (m7_tok_eq(c, sa, sb, "rfc822"))
            h->kind = M7_K_RFC822;
        else if (m7_tok_eq(c, sa, sb, "partial") || m7_tok_eq(c, sa, sb, "external-body"))
            h->kind = M7_K_OPAQUE;
        else
            h->kind = M7_K_BINARY; /* message/global etc. may be encoded (RFC 6532 3.5) */
    } else {
        h->kind = M7_K_BINARY;
    }
}

/* m7_field - check one field [pos, fend) and record what it says. */
static int m7_field(const struct m7_ctx *c, size_t pos, size_t fend, struct m7_hdr *h)
{
    size_t val;
    int rc;

    if (fend - pos > MIME7BIT_HEADER_MAX)
        return PST_ELIMIT;
    rc = m7_check(c, pos, fend);
    if (rc < 0)
        return rc;
    if (!h->has_ct && m7_field_is(c, pos, fend, "content-type", &val)) {
        h->has_ct = 1;
        m7_parse_ct(c, val, fend, h);
    } else if (!h->has_cte && m7_field_is(c, pos, fend, "content-transfer-encoding", &val)) {
        h->has_cte = 1;
        h->cte = m7_parse_cte(c, val, fend);
    } else if (m7_field_is(c, pos, fend, "mime-version", &val)) {
        h->has_mv = 1;
    }
    return 0;
}

/* m7_parse_header - fill h for the entity [start, end); errors for unusable fields. */
static int m7_parse_header(const struct m7_ctx *c, size_t start, size_t end, int eflags,
                           struct m7_hdr *h)
{
    size_t pos = start, fend;
    int rc;

    memset(h, 0, sizeof(*h));
    h->start = start;
    h->cte = M7_CTE_NONE;
    h->kind = (eflags & M7_E_DIGEST) ? M7_K_RFC822 : M7_K_TEXT; /* RFC 2046 5.1.5, 5.2 */
    while (m7_next_field(c, pos, end, &fend)) {
        rc = m7_field(c, pos, fend, h);
        if (rc < 0)
            return rc;
        pos = fend;
    }
    h->sep = pos;
    h->body = pos;
    if (pos < end) {
        size_t le = m7_line_end(c, pos, end);
        if (m7_content_end(c, pos, le) == pos) {
            h->has_sep = 1;
            h->body = le;
        }
    }
    if (h->kind == M7_K_MULTIPART && h->bnd_too_long)
        return PST_ELIMIT;
    if (h->kind == M7_K_MULTIPART && h->bnd_len == 0)
        h->kind = M7_K_OPAQUE;
    return 0;
}

/*
 * m7_emit_header - copy h's fields, CTE fields replaced by one "cte" field
 * when cte is not NULL, plus the added fields and the separator.
 */
static int m7_emit_header(struct m7_ctx *c, const struct m7_hdr *h, const char *cte, int add_mv,
                          int add_ct)
{
    size_t pos = h->start, fend, val;
    int done_cte = 0, rc = 0;

    while (rc == 0 && pos < h->sep && m7_next_field(c, pos, h->sep, &fend)) {
        if (cte && m7_field_is(c, pos, fend, "content-transfer-encoding", &val)) {
            if (!done_cte)
                rc = buf_printf(c->out, "Content-Transfer-Encoding: %s\r\n", cte);
            done_cte = 1;
        } else {
            rc = m7_copy(c, pos, fend);
        }
        pos = fend;
    }
    if (rc == 0 && add_mv)
        rc = buf_append_str(c->out, "MIME-Version: 1.0\r\n");
    if (rc == 0 && add_ct)
        rc = buf_append_str(c->out, "Content-Type: text/plain; charset=unknown-8bit\r\n");
    if (rc == 0 && cte && !done_cte)
        rc = buf_printf(c->out, "Content-Transfer-Encoding: %s\r\n", cte);
    if (rc == 0)
        rc = h->has_sep ? m7_copy(c, h->sep, h->body) : buf_append_str(c->out, "\r\n");
    return rc;
}

/* ---- encoders ---- */

static int m7_ends_nl(const struct m7_ctx *c)
{
    return c->out->len > 0 && c->out->data[c->out->len - 1] == '\n';
}

/* m7_qp_literal - may byte i be written as itself? (RFC 2045 6.7 rules 2, 3) */
static int m7_qp_literal(const unsigned char *s, size_t i, size_t b)
{
    unsigned char ch = s[i];

    if (ch >= 33 && ch <= 126)
        return ch != '=';
    if (ch != ' ' && ch != '\t')
        return 0;
    /* white space only when a character follows on the same line */
    return i + 1 < b && !(s[i + 1] == '\r' && i + 2 < b && s[i + 2] == '\n');
}

/* m7_qp - quoted-printable encoding of [a, b); tail: the range ends the message. */
static int m7_qp(struct m7_ctx *c, size_t a, size_t b, int tail)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *s = (const unsigned char *)c->s;
    char line[MIME7BIT_ENC_LINE + 4];
    size_t n = 0;
    int rc;

    for (size_t i = a; i < b; i++) {
        if (s[i] == '\r' && i + 1 < b && s[i + 1] == '\n') { /* hard line break */
            memcpy(line + n, "\r\n", 2);
            rc = buf_append(c->out, line, n + 2);
            if (rc < 0)
                return rc;
            n = 0;
            i++;
            continue;
        }
        int lit = m7_qp_literal(s, i, b);
        size_t t = lit ? 1 : 3;
        int last = i + 1 == b || (s[i + 1] == '\r' && i + 2 < b && s[i + 2] == '\n');
        if (n + t > (last ? MIME7BIT_ENC_LINE : M7_QP_SOFT_MAX)) {
            memcpy(line + n, "=\r\n", 3);
            rc = buf_append(c->out, line, n + 3);
            if (rc < 0)
                return rc;
            n = 0;
        }
        if (lit) {
            line[n++] = (char)s[i];
        } else {
            line[n++] = '=';
            line[n++] = hex[s[i] >> 4];
            line[n++] = hex[s[i] & 15];
        }
    }
    rc = buf_append(c->out, line, n);
    if (rc == 0 && tail && !m7_ends_nl(c))
        rc = buf_append_str(c->out, "=\r\n");
    return rc;
}

/* m7_b64 - base64 encoding of [a, b) in lines of MIME7BIT_ENC_LINE characters. */
static int m7_b64(struct m7_ctx *c, size_t a, size_t b, int tail)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *s = (const unsigned char *)c->s;
    char line[MIME7BIT_ENC_LINE + 2];
    int rc = 0;

    while (a < b && rc == 0) {
        size_t take = b - a < M7_B64_IN ? b - a : M7_B64_IN, n = 0;
        for (size_t i = 0; i < take; i += 3) {
            unsigned v = (unsigned)s[a + i] << 16;
            if (i + 1 < take)
                v |= (unsigned)s[a + i + 1] << 8;
            if (i + 2 < take)
                v |= s[a + i + 2];
            line[n++] = tab[(v >> 18) & 63];
            line[n++] = tab[(v >> 12) & 63];
            line[n++] = i + 1 < take ? tab[(v >> 6) & 63] : '=';
            line[n++] = i + 2 < take ? tab[v & 63] : '=';
        }
        a += take;
        if (a < b || tail) {
            line[n++] = '\r';
            line[n++] = '\n';
        }
        rc = buf_append(c->out, line, n);
    }
    return rc;
}

/* ---- structure ---- */

/* m7_delim - 0, 1 (delimiter) or 2 (close delimiter) for the line [pos, le). */
static int m7_delim(const struct m7_ctx *c, size_t pos, size_t le, const struct m7_hdr *h)
{
    size_t ce = m7_content_end(c, pos, le);
    size_t p = pos + 2 + h->bnd_len;
    int kind = 1;

    if (ce - pos < 2 + h->bnd_len || c->s[pos] != '-' || c->s[pos + 1] != '-' ||
        memcmp(c->s + pos + 2, h->bnd, h->bnd_len) != 0)
        return 0;
    if (ce - p >= 2 && c->s[p] == '-' && c->s[p + 1] == '-') {
        kind = 2;
        p += 2;
    }
    while (p < ce && m7_is_wsp(c->s[p]))
        p++;
    return p == ce ? kind : 0;
}

/* m7_before_break - start of the line break that ends just before pos (RFC 2046 5.1.1). */
static size_t m7_before_break(const struct m7_ctx *c, size_t pos, size_t floor)
{
    if (pos >= floor + 2 && c->s[pos - 2] == '\r' && c->s[pos - 1] == '\n')
        return pos - 2;
    if (pos >= floor + 1 && c->s[pos - 1] == '\n')
        return pos - 1;
    return pos;
}

/* m7_multipart - convert the multipart body [b, e) delimited by h's boundary. */
static int m7_multipart(struct m7_ctx *c, size_t b, size_t e, const struct m7_hdr *h, int depth)
{
    int eflags = h->digest ? M7_E_DIGEST : 0;
    size_t pos = b, copied = b, cs = 0, nparts = 0;
    int in_part = 0, rc;

    while (pos < e) {
        size_t le = m7_line_end(c, pos, e);
        int dk = m7_delim(c, pos, le, h);
        if (dk != 0 && in_part) {
            size_t ce = m7_before_break(c, pos, cs);
            rc = m7_entity(c, cs, ce, depth + 1, eflags);
            if (rc < 0)
                return rc;
            copied = ce;
            in_part = 0;
        }
        if (dk == 2)
            return m7_verbatim(c, copied, e); /* close delimiter and epilogue */
        if (dk == 1) {
            if (++nparts > MIME7BIT_PARTS_MAX)
                return PST_ELIMIT;
            rc = m7_verbatim(c, copied, le); /* preamble or CRLF, and the delimiter line */
            if (rc < 0)
                return rc;
            copied = cs = le;
            in_part = 1;
        }
        pos = le;
    }
    if (in_part) { /* no close delimiter: the last part runs to the end */
        rc = m7_entity(c, cs, e, depth + 1, eflags);
        if (rc < 0)
            return rc;
        copied = e;
    }
    return m7_verbatim(c, copied, e);
}

static int m7_cte_identity(enum m7_cte cte)
{
    return cte == M7_CTE_NONE || cte == M7_CTE_7BIT || cte == M7_CTE_8BIT || cte == M7_CTE_BINARY;
}

/* m7_composite - multipart or message/rfc822 entity whose body is not 7-bit data. */
static int m7_composite(struct m7_ctx *c, const struct m7_hdr *h, size_t end, int depth, int add_mv)
{
    const char *cte = NULL;
    int rc;

    if (!m7_cte_identity(h->cte))
        return PST_EINVAL;
    if (h->cte == M7_CTE_8BIT || h->cte == M7_CTE_BINARY)
        cte = "7bit";
    rc = m7_emit_header(c, h, cte, add_mv, 0);
    if (rc < 0)
        return rc;
    if (h->kind == M7_K_MULTIPART)
        return m7_multipart(c, h->body, end, h, depth);
    return m7_entity(c, h->body, end, depth + 1, M7_E_MESSAGE);
}

/* m7_leaf - re-encode a leaf entity whose body is not 7-bit data. */
static int m7_leaf(struct m7_ctx *c, const struct m7_hdr *h, size_t end, int add_mv)
{
    int text = h->kind == M7_K_TEXT;
    int rc;

    if (!m7_cte_identity(h->cte))
        return PST_EINVAL;
    rc = m7_emit_header(c, h, text ? "quoted-printable" : "base64", add_mv, !h->has_ct && text);
    if (rc < 0)
        return rc;
    if (text)
        return m7_qp(c, h->body, end, end == c->len);
    return m7_b64(c, h->body, end, end == c->len);
}

/* m7_entity - convert the entity [start, end) (see the top of the file). */
static int m7_entity(struct m7_ctx *c, size_t start, size_t end, int depth, int eflags)
{
    struct m7_hdr h;
    int rc, add_mv;

    if (m7_scan(c, start, end) == 0)
        return m7_copy(c, start, end);
    if (depth > MIME7BIT_MAX_DEPTH)
        return PST_ELIMIT;
    rc = m7_parse_header(c, start, end, eflags, &h);
    if (rc < 0)
        return rc;
    add_mv = (eflags & M7_E_MESSAGE) && !h.has_mv;
    switch (h.kind) {
    case M7_K_MULTIPART:
    case M7_K_RFC822:
        return m7_composite(c, &h, end, depth, add_mv);
    case M7_K_TEXT:
    case M7_K_BINARY:
        return m7_leaf(c, &h, end, add_mv);
    case M7_K_OPAQUE:
        break;
    }
    return PST_EINVAL;
}

int mime7bit_convert(const char *msg, size_t len, buf_t *out)
{
    struct m7_ctx c;

    PST_ASSERT(out != NULL);
    PST_ASSERT(msg != NULL || len == 0);
    if (len == 0)
        return 0;
    c.s = msg;
    c.len = len;
    c.out = out;
    return m7_entity(&c, 0, len, 0, M7_E_MESSAGE);
}
