/*
 * smtp_reply.h - incremental parser of SMTP server replies (client side).
 *
 * RFC 5321 4.2: a reply is one or more lines "ddd-text" ended by one line
 * "ddd text" (or a bare "ddd"). RFC 3463 / RFC 2034: an enhanced status code
 * "c.sss.ddd" may follow the code; it is taken from the first line when its
 * class digit matches the reply code's, and stripped from every line that
 * carries one, so text holds the human text only.
 *
 * Feed bytes as they arrive (any split); the parser stops at the end of one
 * reply so that pipelined replies (RFC 2920) are taken one at a time. After
 * an error the parser must be re-initialised; the caller is expected to drop
 * the connection (a peer that sends garbage cannot be trusted to stay in
 * step).
 *
 * Limits (named below): a reply line may not exceed SMTP_REPLY_LINE_MAX bytes
 * (PST_ELIMIT, no growth), a reply may not have more than SMTP_REPLY_LINES_MAX
 * lines (PST_ELIMIT), and only the first SMTP_REPLY_TEXT_MAX bytes of text are
 * kept (the rest is parsed and dropped; truncated is set).
 * Errors (PST_EINVAL): a code that is not three digits, a code outside
 * 200..599 (1xx replies are not used by SMTP and are refused), a separator
 * other than ' ' or '-', lines of one reply with different codes, a NUL byte.
 * Lines end in CRLF; a bare LF is accepted (the CR is optional).
 */
#ifndef POSTERN_SMTP_REPLY_H
#define POSTERN_SMTP_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

struct evbuffer;

#define SMTP_REPLY_LINE_MAX 4096  /* bytes per reply line, CRLF included */
#define SMTP_REPLY_LINES_MAX 100  /* lines per reply */
#define SMTP_REPLY_TEXT_MAX 16384 /* text bytes kept per reply */
#define SMTP_REPLY_ENH_MAX 16     /* enhanced status code buffer, NUL included */

struct smtp_reply {
    int code;                           /* 200..599 */
    char enh[SMTP_REPLY_ENH_MAX];       /* "2.1.0", or "" when absent */
    char text[SMTP_REPLY_TEXT_MAX + 1]; /* lines' text joined with "\n"; NUL-terminated */
    size_t textlen;                     /* strlen(text) */
    size_t nlines;                      /* lines in the reply */
    int truncated;                      /* text was cut at SMTP_REPLY_TEXT_MAX */
};

struct smtp_reply_parser {
    char line[SMTP_REPLY_LINE_MAX]; /* private: the current partial line */
    size_t linelen;                 /* private */
    int complete;                   /* private: reply holds a finished reply */
    struct smtp_reply reply;        /* the reply; valid when a feed returns 1 */
};

/* smtp_reply_init - reset the parser (also after an error or to start a new reply). */
void smtp_reply_init(struct smtp_reply_parser *p);

/*
 * smtp_reply_feed - parse up to len bytes of data (borrowed).
 * Returns 1 when a reply is complete (in p->reply; *used says how many bytes
 * were taken, the rest belongs to the next reply), 0 when all len bytes were
 * taken and more are needed, or PST_EINVAL / PST_ELIMIT (see above). The next
 * feed after a complete reply starts a new reply.
 */
PST_MUST_CHECK int smtp_reply_feed(struct smtp_reply_parser *p, const void *data, size_t len,
                                   size_t *used);

/*
 * smtp_reply_read - feed from an evbuffer (borrowed), draining exactly the
 * bytes taken. Returns 1 (reply complete, bytes after it stay in the buffer),
 * 0 (buffer drained, need more) or a negative error as smtp_reply_feed.
 */
PST_MUST_CHECK int smtp_reply_read(struct smtp_reply_parser *p, struct evbuffer *in);

/* smtp_reply_class - the class digit of a reply code: 2, 3, 4 or 5. */
static inline int smtp_reply_class(int code)
{
    return code / 100;
}

/* EHLO keywords (RFC 5321 4.1.1.1, 2920, 1870, 6152, 6531, 3207, 4954, 3461, 3030, 2034). */
enum smtp_ext {
    SMTP_EXT_PIPELINING = 1u << 0,
    SMTP_EXT_SIZE = 1u << 1,
    SMTP_EXT_8BITMIME = 1u << 2,
    SMTP_EXT_SMTPUTF8 = 1u << 3,
    SMTP_EXT_STARTTLS = 1u << 4,
    SMTP_EXT_AUTH = 1u << 5,
    SMTP_EXT_DSN = 1u << 6,
    SMTP_EXT_CHUNKING = 1u << 7,
    SMTP_EXT_ENHANCEDSTATUSCODES = 1u << 8,
};

enum smtp_auth_mech {
    SMTP_AUTH_M_PLAIN = 1u << 0,
    SMTP_AUTH_M_LOGIN = 1u << 1,
    SMTP_AUTH_M_CRAM_MD5 = 1u << 2,
    SMTP_AUTH_M_XOAUTH2 = 1u << 3,
    SMTP_AUTH_M_OTHER = 1u << 4,
};

struct smtp_ehlo {
    unsigned ext;      /* SMTP_EXT_* bits */
    uint64_t size_max; /* SIZE argument; 0 = none or unlimited */
    unsigned auth;     /* SMTP_AUTH_M_* bits */
};

/*
 * smtp_reply_ehlo - extract the extension keywords from a 2xx EHLO reply
 * (the first line, the greeting, is skipped). Keywords are matched without
 * regard to case; unknown ones are ignored; "AUTH=..." (pre-standard) is
 * read like "AUTH ...". A SIZE argument that is not a decimal number is
 * treated as no limit. Never fails; *out is zeroed first.
 */
void smtp_reply_ehlo(const struct smtp_reply *r, struct smtp_ehlo *out);

#endif
