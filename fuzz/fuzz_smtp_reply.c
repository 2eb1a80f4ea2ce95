/*
 * fuzz_smtp_reply.c - feed arbitrary bytes to the SMTP reply parser, first
 * whole, then split at a position taken from the input, and check that both
 * ways agree; run the EHLO keyword extractor on every complete reply.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fuzz_run - parse all replies in data, split into pieces of at most step bytes; returns a digest.
 */
static unsigned long fuzz_run(struct smtp_reply_parser *p, const uint8_t *data, size_t size,
                              size_t step)
{
    unsigned long h = 5381;
    size_t off = 0;
    smtp_reply_init(p);
    while (off < size) {
        size_t n = size - off < step ? size - off : step;
        size_t used = 0;
        int r = smtp_reply_feed(p, data + off, n, &used);
        if (r < 0)
            return h * 33 + (unsigned long)(-r);
        off += used;
        if (r == 1) {
            struct smtp_ehlo e;
            smtp_reply_ehlo(&p->reply, &e);
            h = h * 33 + (unsigned long)p->reply.code;
            h = h * 33 + p->reply.nlines + p->reply.textlen + e.ext;
            if (strlen(p->reply.text) != p->reply.textlen)
                abort();
        }
    }
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct smtp_reply_parser p;
    size_t step = size > 0 ? (size_t)data[0] % 17 + 1 : 1;
    unsigned long a = fuzz_run(&p, data, size, size > 0 ? size : 1);
    unsigned long b = fuzz_run(&p, data, size, step);
    if (a != b)
        abort();
    return 0;
}
