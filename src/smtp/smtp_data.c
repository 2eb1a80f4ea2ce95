/*
 * smtp_data.c - incremental reader for message content (DATA and BDAT).
 *
 * RFCs: RFC 5321 4.1.1.4 (DATA, end-of-data "CRLF . CRLF"), 4.5.2
 * (transparency: dot-stuffing), 2.3.8 (CR and LF only as CRLF), 4.5.3.1.6
 * (text line length incl. CRLF); RFC 3030 (BDAT chunks, no dot handling).
 *
 * Design. One byte at a time through a small state machine, so any split of
 * the input gives the same result and the same sink output (only the
 * boundaries of the sink calls differ). Bytes whose fate depends on the next
 * byte are held in the state, never in a buffer:
 *   - a CR is held until the next byte shows whether it starts a CRLF
 *     (CRLF is then emitted as a pair; anything else makes it a bare CR);
 *   - in DOT mode a "." at the beginning of a line is held until the next
 *     byte: "." CR LF ends the data, "." followed by anything else is the
 *     stuffing dot and is dropped (RFC 5321 4.5.2), so "..x" gives ".x".
 * The beginning of the content counts as a beginning of line, so ".\r\n"
 * right after the DATA command is an empty message. After a bare LF the
 * reader is NOT at the beginning of a line: "\n.\n", "\r.\r", "\n.\r\n" and
 * "\r\n.\n" never end the data (SMTP smuggling, CVE-2023-51766 and kin).
 *
 * DOT mode states:
 *   BOL     beginning of line (start of content or just after CRLF)
 *   TEXT    inside a line
 *   CR      a CR inside a line was seen, held
 *   DOT     "." at BOL seen, held
 *   DOT_CR  "." CR at BOL seen, held; LF now ends the data
 * RAW mode uses only BOL/TEXT/CR; a CR held at the end of one chunk is
 * resolved by the first byte of the next one (smtp_data_end_chunk() with
 * last=1 turns a still-held CR into a bare CR).
 *
 * Counting rules (documented contract):
 *   - line length counts every RECEIVED byte of the line including CR LF
 *     and including a stuffing dot and the bytes of the terminating ".\r\n"
 *     line; it is reset by every LF (bare or not). A line longer than
 *     line_limit is a violation.
 *   - total (and the size limit) counts CONTENT bytes, i.e. after removing
 *     stuffing dots and without the terminator line. It keeps counting after
 *     a violation (so it tells how big the message was), but the sink is no
 *     longer called.
 *
 * Failure policy. Nothing here fails hard: every problem in the client's
 * data is recorded as the FIRST violation (smtp_data_result()), the sink is
 * not called any more, and scanning continues so that the end of the data
 * is still found and the session stays in step with the client. A sink
 * error is recorded the same way (SMTP_DATA_SINK_ERROR).
 */
#include "smtp/smtp_data.h"

#include <string.h>

enum smtp_data_state {
    SMTP_DATA_ST_BOL = 0,
    SMTP_DATA_ST_TEXT,
    SMTP_DATA_ST_CR,
    SMTP_DATA_ST_DOT,
    SMTP_DATA_ST_DOT_CR,
};

/* Bytes gathered on the stack between sink calls within one feed call. */
#define SMTP_DATA_OUTBUF 4096

struct smtp_data_out {
    struct smtp_data *d;
    smtp_data_sink sink;
    void *arg;
    size_t n;
    char buf[SMTP_DATA_OUTBUF];
};

static void smtp_data_violation(struct smtp_data *d, enum smtp_data_result r)
{
    if (d->result == SMTP_DATA_OK)
        d->result = r;
}

static void smtp_data_flush(struct smtp_data_out *o)
{
    if (o->n == 0)
        return;
    if (o->d->result == SMTP_DATA_OK && o->sink != NULL) {
        if (o->sink(o->arg, o->buf, o->n) < 0)
            smtp_data_violation(o->d, SMTP_DATA_SINK_ERROR);
    }
    o->n = 0;
}

/*
 * smtp_data_violation_at - record a violation found while bytes are waiting
 * in the output buffer: bytes confirmed before the bad one still go out, so
 * that the output does not depend on how the input was split.
 */
static void smtp_data_violation_at(struct smtp_data_out *o, enum smtp_data_result r)
{
    smtp_data_flush(o);
    smtp_data_violation(o->d, r);
}

/*
 * smtp_data_emit - count n (1 or 2) content bytes and pass them on unless a
 * violation happened. CR LF goes through as one unit so that a size limit
 * can never cut a line end in half.
 */
static void smtp_data_emit(struct smtp_data_out *o, const char *c, size_t n)
{
    struct smtp_data *d = o->d;

    d->total += n;
    if (d->size_limit != 0 && d->total > d->size_limit)
        smtp_data_violation_at(o, SMTP_DATA_TOO_BIG);
    if (d->result != SMTP_DATA_OK)
        return;
    if (o->n + n > sizeof(o->buf))
        smtp_data_flush(o);
    if (d->result != SMTP_DATA_OK)
        return;
    memcpy(o->buf + o->n, c, n);
    o->n += n;
}

/* smtp_data_count_line - line length bookkeeping for one received byte. */
static void smtp_data_count_line(struct smtp_data_out *o, char c)
{
    struct smtp_data *d = o->d;

    d->line_len++;
    if (d->line_limit != 0 && d->line_len > d->line_limit)
        smtp_data_violation_at(o, SMTP_DATA_LINE_TOO_LONG);
    if (c == '\n')
        d->line_len = 0;
}

/* smtp_data_text - one byte inside a line (not held CR, not a BOL dot). */
static void smtp_data_text(struct smtp_data_out *o, char c)
{
    struct smtp_data *d = o->d;

    switch (c) {
    case '\r':
        d->state = SMTP_DATA_ST_CR;
        return;
    case '\n':
        d->total++;
        smtp_data_violation_at(o, SMTP_DATA_BARE_LF);
        break;
    case '\0':
        d->total++;
        smtp_data_violation_at(o, SMTP_DATA_NUL);
        break;
    default:
        smtp_data_emit(o, &c, 1);
        break;
    }
    d->state = SMTP_DATA_ST_TEXT;
}

/* smtp_data_after_cr - the byte after a held CR. */
static void smtp_data_after_cr(struct smtp_data_out *o, char c)
{
    if (c == '\n') {
        smtp_data_emit(o, "\r\n", 2);
        o->d->state = SMTP_DATA_ST_BOL;
        return;
    }
    o->d->total++; /* the bare CR itself */
    smtp_data_violation_at(o, SMTP_DATA_BARE_CR);
    smtp_data_text(o, c);
}

/* smtp_data_step_dot - one byte in DOT mode. Returns 1 when the data has ended. */
static int smtp_data_step_dot(struct smtp_data_out *o, char c)
{
    struct smtp_data *d = o->d;

    switch (d->state) {
    case SMTP_DATA_ST_BOL:
        if (c == '.') {
            d->state = SMTP_DATA_ST_DOT;
            return 0;
        }
        smtp_data_text(o, c);
        return 0;
    case SMTP_DATA_ST_DOT:
        if (c == '\r') {
            d->state = SMTP_DATA_ST_DOT_CR;
            return 0;
        }
        smtp_data_text(o, c); /* the dot was stuffing: dropped */
        return 0;
    case SMTP_DATA_ST_DOT_CR:
        if (c == '\n')
            return 1;
        smtp_data_after_cr(o, c); /* "." CR x: a stuffed line holding a bare CR */
        return 0;
    case SMTP_DATA_ST_CR:
        smtp_data_after_cr(o, c);
        return 0;
    default:
        smtp_data_text(o, c);
        return 0;
    }
}

/* smtp_data_step_raw - one byte in RAW mode. */
static void smtp_data_step_raw(struct smtp_data_out *o, char c)
{
    if (o->d->state == SMTP_DATA_ST_CR)
        smtp_data_after_cr(o, c);
    else
        smtp_data_text(o, c);
}

void smtp_data_init(struct smtp_data *d, enum smtp_data_mode mode, size_t line_limit,
                    uint64_t size_limit)
{
    memset(d, 0, sizeof(*d));
    d->mode = mode;
    d->state = SMTP_DATA_ST_BOL;
    d->line_limit = line_limit;
    d->size_limit = size_limit;
    d->result = SMTP_DATA_OK;
}

size_t smtp_data_feed(struct smtp_data *d, const char *in, size_t len, smtp_data_sink sink,
                      void *arg)
{
    struct smtp_data_out o;
    size_t i;

    if (d->done)
        return 0;
    o.d = d;
    o.sink = sink;
    o.arg = arg;
    o.n = 0;
    for (i = 0; i < len; i++) {
        char c = in[i];

        smtp_data_count_line(&o, c);
        if (d->mode == SMTP_DATA_RAW) {
            smtp_data_step_raw(&o, c);
            continue;
        }
        if (smtp_data_step_dot(&o, c)) {
            d->done = 1;
            i++;
            break;
        }
    }
    smtp_data_flush(&o);
    d->pending_cr = d->state == SMTP_DATA_ST_CR;
    return i;
}

void smtp_data_end_chunk(struct smtp_data *d, int last)
{
    if (d->mode != SMTP_DATA_RAW || !last || d->done)
        return;
    if (d->state == SMTP_DATA_ST_CR) {
        d->total++;
        smtp_data_violation(d, SMTP_DATA_BARE_CR);
        d->state = SMTP_DATA_ST_TEXT;
        d->pending_cr = 0;
    }
    d->done = 1;
}

int smtp_data_done(const struct smtp_data *d)
{
    return d->done;
}

enum smtp_data_result smtp_data_result(const struct smtp_data *d)
{
    return d->result;
}

uint64_t smtp_data_total(const struct smtp_data *d)
{
    return d->total;
}

const char *smtp_data_result_reply(enum smtp_data_result r)
{
    switch (r) {
    case SMTP_DATA_OK:
        return "250 2.0.0 Ok";
    case SMTP_DATA_LINE_TOO_LONG:
        return "554 5.6.0 Message has a line longer than allowed (RFC 5321 4.5.3.1.6)";
    case SMTP_DATA_TOO_BIG:
        return "552 5.3.4 Message too big";
    case SMTP_DATA_BARE_LF:
        return "554 5.5.2 Bare LF in message; line ends must be CRLF (RFC 5321 2.3.8)";
    case SMTP_DATA_BARE_CR:
        return "554 5.5.2 Bare CR in message; line ends must be CRLF (RFC 5321 2.3.8)";
    case SMTP_DATA_NUL:
        return "554 5.6.0 NUL byte in message";
    case SMTP_DATA_SINK_ERROR:
        return "451 4.3.0 Local error while storing the message";
    }
    return "451 4.3.0 Local error";
}
