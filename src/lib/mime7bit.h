/*
 * mime7bit.h - 8-bit to 7-bit MIME downgrade of a message (RFC 6152 3,
 * RFC 2045, RFC 2046), for an SMTP client whose peer lacks 8BITMIME.
 *
 * Pure functions: no I/O, no global state. The message is read from the
 * caller's memory and the result appended to the caller's buf_t.
 *
 * What is "7-bit data" here (RFC 2045 2.7): no byte >= 0x80, no NUL, and no
 * line longer than MIME7BIT_LINE_MAX octets (a line is what lies between two
 * LF bytes, not counting a CR just before the LF). An entity that already is
 * 7-bit data is copied byte for byte; so is the whole message.
 */
#ifndef POSTERN_MIME7BIT_H
#define POSTERN_MIME7BIT_H

#include <stddef.h>

#include "buf.h"
#include "err.h"

#define MIME7BIT_LINE_MAX 998           /* RFC 5322 2.1.1, without CRLF */
#define MIME7BIT_HEADER_MAX (64 * 1024) /* one header field, folded lines included */
#define MIME7BIT_MAX_DEPTH 20           /* nested multipart / message/rfc822 levels */
#define MIME7BIT_BOUNDARY_MAX 70        /* RFC 2046 5.1.1 */
#define MIME7BIT_PARTS_MAX 10000        /* body parts in one multipart */
#define MIME7BIT_ENC_LINE 76            /* QP and base64 line length, RFC 2045 6.7, 6.8 */

/*
 * mime7bit_needed - 1 if data[0..len) contains a byte >= 0x80 or a NUL
 * anywhere, else 0. data is borrowed and may be NULL when len is 0.
 */
int mime7bit_needed(const char *data, size_t len);

/*
 * mime7bit_convert - rewrite the RFC 5322 message msg[0..len) (CRLF line
 * ends, as stored in the spool: not dot-stuffed) so that it is 7-bit data,
 * appending the result to out. msg is borrowed and need not be
 * NUL-terminated; out is borrowed, its maximum bounds the output.
 *
 * Leaf parts (not multipart/..., not message/rfc822) that are not 7-bit data
 * and whose Content-Transfer-Encoding is 7bit, 8bit, binary or absent are
 * re-encoded: text/... as quoted-printable (CRLF kept as hard line breaks;
 * bare CR / LF encoded as =0D / =0A), everything else as base64. Composite
 * parts are walked; an 8bit/binary CTE on them becomes 7bit. A message or
 * part without Content-Type that gets encoded receives
 * "Content-Type: text/plain; charset=unknown-8bit"; a message (top level or
 * message/rfc822) that gets rewritten receives "MIME-Version: 1.0" if it
 * had none. Decoding every re-encoded body gives back its original bytes.
 *
 * Returns 0, or:
 *   PST_EINVAL  the message cannot be downgraded without changing its
 *               meaning: 8-bit or NUL bytes in a header field, a preamble,
 *               an epilogue or a delimiter line; such bytes under a
 *               quoted-printable/base64/unknown CTE, in a composite part
 *               with such a CTE, in message/partial or message/external-
 *               body, or in a multipart without a usable boundary;
 *   PST_ELIMIT  out's maximum reached, nesting deeper than
 *               MIME7BIT_MAX_DEPTH, more than MIME7BIT_PARTS_MAX parts, a
 *               boundary longer than MIME7BIT_BOUNDARY_MAX, a header field
 *               longer than MIME7BIT_HEADER_MAX, or a line that would be
 *               copied unchanged (header, delimiter, preamble) longer than
 *               MIME7BIT_LINE_MAX;
 *   PST_ENOMEM  allocation failed while growing out.
 * On failure out may hold part of the result: the caller discards it
 * (buf_reset()). A multipart without its closing delimiter ends with its
 * last part at the end of the enclosing entity; one without any delimiter
 * line is all preamble.
 */
PST_MUST_CHECK int mime7bit_convert(const char *msg, size_t len, buf_t *out);

#endif
