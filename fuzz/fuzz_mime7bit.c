/*
 * fuzz_mime7bit.c - libFuzzer target for the 8-bit to 7-bit MIME downgrade.
 *
 * Input: a message (any bytes). Checks, besides "no crash":
 *   - on success the output is 7-bit data: no byte >= 0x80, no NUL, no line
 *     (bytes between LFs, a CR before the LF not counted) longer than
 *     MIME7BIT_LINE_MAX;
 *   - input without 8-bit/NUL bytes and without long lines comes back
 *     byte for byte;
 *   - converting the output again gives the same bytes (it is 7-bit data);
 *   - failures are only PST_EINVAL / PST_ELIMIT (and PST_ENOMEM).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mime7bit.h"

#define FUZZ_OUT_MAX (16u * 1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fuzz_clean - 1 if b[0..n) is 7-bit data as mime7bit.h defines it. */
static int fuzz_clean(const char *b, size_t n)
{
    size_t col = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)b[i];
        if (ch >= 0x80 || ch == 0)
            return 0;
        if (ch == '\n') {
            if (col > MIME7BIT_LINE_MAX + (i > 0 && b[i - 1] == '\r' ? 1u : 0u))
                return 0;
            col = 0;
        } else {
            col++;
        }
    }
    return col <= MIME7BIT_LINE_MAX + (n > 0 && b[n - 1] == '\r' ? 1u : 0u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *msg = (const char *)data;
    buf_t *out = buf_new(FUZZ_OUT_MAX);
    buf_t *again = buf_new(FUZZ_OUT_MAX);
    int rc;

    if (out == NULL || again == NULL)
        abort();
    rc = mime7bit_convert(msg, size, out);
    if (rc == 0) {
        if (!fuzz_clean(out->data, out->len))
            abort();
        if (fuzz_clean(msg, size) && (out->len != size || memcmp(out->data, msg, size) != 0))
            abort();
        if (mime7bit_convert(out->data, out->len, again) != 0 || again->len != out->len ||
            memcmp(again->data, out->data, out->len) != 0)
            abort();
    } else if (rc != PST_EINVAL && rc != PST_ELIMIT && rc != PST_ENOMEM) {
        abort();
    }
    buf_free(&again);
    buf_free(&out);
    return 0;
}
