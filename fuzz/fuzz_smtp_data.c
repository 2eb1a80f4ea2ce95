/*
 * fuzz_smtp_data.c - libFuzzer target for the DATA/BDAT content reader.
 *
 * Input layout: byte 0 picks the mode (bit 0) and whether limits apply
 * (bit 1), byte 1 the line limit, byte 2 the size limit, byte 3 seeds the
 * random split; the rest is the content. The same content is fed one-shot,
 * byte by byte and in pseudo-random pieces; any difference in consumed
 * bytes, done flag, result, total or sink output is a bug and abort()s.
 * Also checks invariants of the output: only CRLF line ends, no NUL.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_out {
    char *buf;
    size_t len;
    size_t cap;
};

struct fz_run {
    struct fz_out out;
    size_t consumed;
    int done;
    enum smtp_data_result result;
    uint64_t total;
};

static int fz_sink(void *arg, const char *d, size_t len)
{
    struct fz_out *o = arg;

    if (len == 0 || o->len + len > o->cap)
        abort(); /* output can never be longer than the input */
    memcpy(o->buf + o->len, d, len);
    o->len += len;
    return 0;
}

static void fz_feed(struct fz_run *r, enum smtp_data_mode mode, size_t line_limit,
                    uint64_t size_limit, const char *in, size_t len, int how, uint32_t seed)
{
    struct smtp_data d;
    size_t pos = 0;

    smtp_data_init(&d, mode, line_limit, size_limit);
    while (pos < len && !smtp_data_done(&d)) {
        size_t n = len - pos;
        size_t got;

        if (how == 1) {
            n = 1;
        } else if (how == 2) {
            seed = seed * 1103515245u + 12345u;
            n = 1 + (seed >> 16) % (n < 13 ? n : 13);
        }
        got = smtp_data_feed(&d, in + pos, n, fz_sink, &r->out);
        if (got > n || (got < n && !smtp_data_done(&d)))
            abort();
        if (mode == SMTP_DATA_RAW && got != n)
            abort();
        pos += got;
        if (mode == SMTP_DATA_RAW && how == 2 && (seed & 0x100))
            smtp_data_end_chunk(&d, 0); /* chunk boundaries must not matter */
    }
    if (mode == SMTP_DATA_RAW)
        smtp_data_end_chunk(&d, 1);
    r->consumed = pos;
    r->done = smtp_data_done(&d);
    r->result = smtp_data_result(&d);
    r->total = smtp_data_total(&d);
}

static void fz_check_output(const struct fz_run *r)
{
    for (size_t i = 0; i < r->out.len; i++) {
        char c = r->out.buf[i];
        if (c == '\0')
            abort();
        if (c == '\r' && (i + 1 >= r->out.len || r->out.buf[i + 1] != '\n'))
            abort();
        if (c == '\n' && (i == 0 || r->out.buf[i - 1] != '\r'))
            abort();
    }
    if (r->result == SMTP_DATA_OK && r->out.len != r->total)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_run runs[3];
    enum smtp_data_mode mode;
    size_t line_limit = 0;
    uint64_t size_limit = 0;
    const char *in;
    size_t len;
    uint32_t seed;

    if (size < 4)
        return 0;
    mode = (data[0] & 1) ? SMTP_DATA_RAW : SMTP_DATA_DOT;
    if (data[0] & 2) {
        line_limit = (size_t)data[1] + 1;
        size_limit = (uint64_t)data[2] * 4;
    }
    seed = data[3];
    in = (const char *)data + 4;
    len = size - 4;

    for (int how = 0; how < 3; how++) {
        memset(&runs[how], 0, sizeof(runs[how]));
        runs[how].out.cap = len;
        runs[how].out.buf = malloc(len + 1);
        if (runs[how].out.buf == NULL)
            abort();
        fz_feed(&runs[how], mode, line_limit, size_limit, in, len, how, seed);
        fz_check_output(&runs[how]);
    }
    for (int how = 1; how < 3; how++) {
        if (runs[how].consumed != runs[0].consumed || runs[how].done != runs[0].done ||
            runs[how].result != runs[0].result || runs[how].total != runs[0].total ||
            runs[how].out.len != runs[0].out.len ||
            memcmp(runs[how].out.buf, runs[0].out.buf, runs[0].out.len) != 0)
            abort();
    }
    for (int how = 0; how < 3; how++)
        free(runs[how].out.buf);
    return 0;
}
