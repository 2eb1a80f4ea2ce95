/*
 * smtp_data.h - incremental reader for message content (DATA and BDAT).
 *
 * A byte-at-a-time state machine that can be fed any split of the input.
 * DATA mode (RFC 5321 4.1.1.4, 4.5.2): removes dot-stuffing and stops after
 * the end-of-data sequence CRLF "." CRLF, which is the ONLY sequence that ends
 * the data; "\n.\n", "\r.\r" and the like never do (protection against SMTP
 * smuggling). RAW mode (BDAT, RFC 3030): no dot handling, the caller says how
 * many bytes belong to the chunk.
 *
 * Content is passed to a sink with CRLF line ends exactly as received.
 * The reader keeps scanning after a violation so the session stays in sync
 * with the client, but stops calling the sink; the first violation is
 * reported by smtp_data_result():
 *   SMTP_DATA_LINE_TOO_LONG  a line longer than line_limit (incl. CRLF)
 *   SMTP_DATA_TOO_BIG        more than size_limit content bytes
 *   SMTP_DATA_BARE_LF / BARE_CR  a LF not preceded by CR, a CR not followed by LF
 *   SMTP_DATA_NUL            a NUL byte
 *   SMTP_DATA_SINK_ERROR     the sink returned an error
 *
 * Counting: the line length counts RECEIVED bytes of a line including CRLF,
 * the stuffing dot and the terminating ".\r\n" line; the size limit and
 * smtp_data_total() count CONTENT bytes (after unstuffing, without the
 * terminator), and the total keeps counting after a violation. CR LF is
 * passed to the sink as a unit; a sink never sees a lone CR or LF, nor NUL.
 */
#ifndef POSTERN_SMTP_DATA_H
#define POSTERN_SMTP_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

enum smtp_data_mode { SMTP_DATA_DOT = 0, SMTP_DATA_RAW };

enum smtp_data_result {
    SMTP_DATA_OK = 0,
    SMTP_DATA_LINE_TOO_LONG,
    SMTP_DATA_TOO_BIG,
    SMTP_DATA_BARE_LF,
    SMTP_DATA_BARE_CR,
    SMTP_DATA_NUL,
    SMTP_DATA_SINK_ERROR,
};

/* sink - receives content bytes; returns 0 or a negative PST_E* code (stops further calls). */
typedef int (*smtp_data_sink)(void *arg, const char *data, size_t len);

struct smtp_data {
    /* private */
    enum smtp_data_mode mode;
    int state;
    size_t line_limit;
    uint64_t size_limit;
    uint64_t line_len;
    uint64_t total; /* content bytes produced (after unstuffing) */
    enum smtp_data_result result;
    int done;
    int pending_cr; /* RAW mode: last byte of previous chunk was CR */
};

/* smtp_data_init - start reading one message. A limit of 0 means "no limit". */
void smtp_data_init(struct smtp_data *d, enum smtp_data_mode mode, size_t line_limit,
                    uint64_t size_limit);

/*
 * smtp_data_feed - process in[0..len). DOT mode: returns the number of bytes
 * consumed, which is less than len only when the end-of-data sequence was
 * seen (the rest belongs to the next command); smtp_data_done() is then 1.
 * RAW mode: consumes everything given.
 */
size_t smtp_data_feed(struct smtp_data *d, const char *in, size_t len, smtp_data_sink sink,
                      void *arg);

/*
 * smtp_data_end_chunk - RAW mode: call at the end of every BDAT chunk. With
 * last=0 nothing changes (a CR ending this chunk may still meet its LF in
 * the next one); with last=1 (BDAT ... LAST) a trailing CR is a bare CR and
 * smtp_data_done() becomes 1. No-op in DOT mode.
 */
void smtp_data_end_chunk(struct smtp_data *d, int last);

int smtp_data_done(const struct smtp_data *d);
enum smtp_data_result smtp_data_result(const struct smtp_data *d);
uint64_t smtp_data_total(const struct smtp_data *d);

/* smtp_data_result_reply - the reply line (no CRLF) for a non-OK result, e.g. "552 5.3.4 Message
 * too big". */
const char *smtp_data_result_reply(enum smtp_data_result r);

#endif
