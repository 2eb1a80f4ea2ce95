/*
 * pop3_reply.h - pure parsers for what a POP3 server sends (client side):
 * status lines, multi-line scan listings and unique-id listings, CAPA lines,
 * and the dot-stuffed multi-line body of RETR / TOP.
 *
 * RFC 1939 3 (status indicators "+OK" / "-ERR", multi-line responses ended
 * by "." with byte-stuffing), 5 and 7 (STAT / LIST "n size", UIDL "n uid":
 * 1..70 characters 0x21..0x7E), RFC 2449 (CAPA, response codes "[CODE/SUB]"
 * after the status indicator, 512-octet status lines), RFC 3206 (SYS/TEMP,
 * SYS/PERM, AUTH), RFC 5034 ("+ " continuation to AUTH).
 *
 * Every function works on one line given without its CRLF (the caller
 * finds the line end) or, for the body decoder, on arbitrary pieces of the
 * byte stream. Nothing here allocates or does I/O; everything is safe on
 * hostile input (NUL bytes, over-long numbers, missing fields).
 * Errors: PST_EINVAL for malformed input, PST_ELIMIT for a number that does
 * not fit or a field that is too long.
 */
#ifndef POSTERN_POP3_REPLY_H
#define POSTERN_POP3_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

#define POP3_REPLY_STATUS_MAX 512         /* RFC 2449 4: status line, CRLF included */
#define POP3_REPLY_LINE_MAX 8192          /* what we tolerate for any one line, CRLF included */
#define POP3_REPLY_CODE_MAX 64            /* response code buffer, NUL included */
#define POP3_UIDL_MAX 70                  /* RFC 1939 7: unique-id length */
#define POP3_MSGNO_MAX 0x7fffffffu        /* largest message number we accept */
#define POP3_SIZE_MAX ((uint64_t)1 << 62) /* largest size / octet count we accept */

enum pop3_status { POP3_ST_OK = 0, POP3_ST_ERR, POP3_ST_CONT };

struct pop3_status_line {
    enum pop3_status status;
    char code[POP3_REPLY_CODE_MAX]; /* "IN-USE", "SYS/TEMP", ... or "" */
    const char *text;               /* borrowed from the line: after status and code */
    size_t textlen;
};

/*
 * pop3_reply_status - parse a status line ("+OK text", "-ERR [CODE] text",
 * "+OK", or the SASL continuation "+ base64"/"+"). The indicator must be
 * followed by the end of the line or a space. A bracketed response code is
 * taken only when it is well formed (RFC 2449 8: levels of 0x21..0x7F except
 * '/' and ']', separated by '/'); otherwise the bracket stays in the text.
 * Returns 0, PST_EINVAL (no indicator, NUL byte, CR inside the line) or
 * PST_ELIMIT (len + 2 > POP3_REPLY_LINE_MAX). out->text points into line.
 */
PST_MUST_CHECK int pop3_reply_status(const char *line, size_t len, struct pop3_status_line *out);

/*
 * pop3_reply_listing - "msgno size" (a LIST entry, or the text of "+OK" to
 * LIST n; anything after a space following the size is ignored, RFC 1939 5).
 * msgno 1..POP3_MSGNO_MAX, size <= POP3_SIZE_MAX. Returns 0, PST_EINVAL or
 * PST_ELIMIT.
 */
PST_MUST_CHECK int pop3_reply_listing(const char *s, size_t len, uint32_t *msgno, uint64_t *size);

/* pop3_reply_stat - "count octets" (the text of "+OK" to STAT); as pop3_reply_listing but count
 * may be 0. */
PST_MUST_CHECK int pop3_reply_stat(const char *s, size_t len, uint32_t *count, uint64_t *octets);

/*
 * pop3_reply_uidl - "msgno uid" (a UIDL entry or the text of "+OK" to UIDL
 * n). uid is 1..POP3_UIDL_MAX bytes of 0x21..0x7E, copied NUL-terminated into
 * uid (POP3_UIDL_MAX + 1 bytes); only spaces may follow it. Returns 0,
 * PST_EINVAL or PST_ELIMIT.
 */
PST_MUST_CHECK int pop3_reply_uidl(const char *s, size_t len, uint32_t *msgno,
                                   char uid[POP3_UIDL_MAX + 1]);

/* CAPA capabilities we act on (RFC 2449 6, RFC 2595 4, RFC 5034 6). */
#define POP3_CAP_TOP 0x01u
#define POP3_CAP_USER 0x02u
#define POP3_CAP_SASL 0x04u
#define POP3_CAP_RESP_CODES 0x08u
#define POP3_CAP_PIPELINING 0x10u
#define POP3_CAP_UIDL 0x20u
#define POP3_CAP_STLS 0x40u
#define POP3_CAP_AUTH_RESP_CODE 0x80u
#define POP3_CAP_SASL_PLAIN 0x100u /* "SASL ... PLAIN ..." */

/*
 * pop3_reply_capa - fold one CAPA line (a capability tag and its arguments,
 * case-insensitive) into *caps. Unknown tags are ignored. Returns 0 or
 * PST_EINVAL (empty line, NUL or control byte).
 */
PST_MUST_CHECK int pop3_reply_capa(const char *line, size_t len, unsigned *caps);

/*
 * pop3_reply_multiline - one line of a multi-line response (line-oriented:
 * CAPA, LIST, UIDL). Returns 1 for the terminating "." (nothing in *out),
 * 0 for a data line with the byte-stuffed leading '.' removed (*out, *outlen
 * point into line).
 */
int pop3_reply_multiline(const char *line, size_t len, const char **out, size_t *outlen);

/*
 * The multi-line body decoder (RETR, TOP): fed pieces of the stream as they
 * arrive, split anywhere, it removes the byte-stuffing and finds the
 * terminating "CRLF.CRLF" even when it is split across reads. A bare LF
 * ends a line as CRLF does (".\n" also terminates). Data is passed through
 * as on the wire otherwise (line ends are not rewritten). The first byte
 * fed is at the start of a line (right after the status line).
 */
struct pop3_body {
    int state; /* private */
};

void pop3_body_init(struct pop3_body *b);

/*
 * pop3_body_feed - decode in[0..len). Writes the message bytes to out (room
 * for at least len + 1 bytes: a held-back CR may be released), sets *outlen,
 * and *used to the input bytes consumed. Returns 1 once the terminator has
 * been consumed (*used stops right after it; later bytes belong to the next
 * reply), else 0 (all of in was consumed).
 */
int pop3_body_feed(struct pop3_body *b, const char *in, size_t len, char *out, size_t *outlen,
                   size_t *used);

#endif
