/*
 * fuzz_pop3_parser.c - libFuzzer target for the POP3 command line parser
 * and the Maildir -> POP3 wire encoder.
 *
 * Input byte 0 selects the target. Parser: the rest is one command line
 * without CRLF; success gives a NULL reply, NUL-terminated bounded
 * arguments and message numbers >= 1; failure gives an "-ERR " reply
 * without CR or LF; parsing is deterministic. Encoder: the rest is a
 * message in LF form, fed in chunks whose sizes come from the data; the
 * output must end in CRLF (or be empty), contain no bare LF, never a line
 * that is a lone "." and, with dot-stuffing removed, be as long as
 * pop3_wire_size_chunk() says.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pop3/pop3_mbox.h"
#include "pop3/pop3_parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fz_parser(const char *line, size_t len)
{
    struct pop3_cmd a, b;
    const char *ra = NULL, *rb = NULL;
    int rc = pop3_cmd_parse(line, len, &a, &ra);
    int rc2 = pop3_cmd_parse(line, len, &b, &rb);
    if (rc != rc2 || ra != rb || a.verb != b.verb || a.nargs != b.nargs)
        abort();
    if (rc == 0) {
        if (ra != NULL || a.nargs > POP3_NARGS_MAX)
            abort();
        for (size_t i = 0; i < a.nargs; i++)
            if (a.arglen[i] > POP3_ARG_MAX || strlen(a.arg[i]) != a.arglen[i])
                abort();
        if (a.has_msg && a.msg == 0)
            abort();
        return;
    }
    if (!ra || strncmp(ra, "-ERR ", 5) != 0 || strchr(ra, '\r') || strchr(ra, '\n'))
        abort();
}

static void fz_wire(const uint8_t *data, size_t size)
{
    if (size < 2)
        return;
    long lines = data[0] == 0xff ? -1 : data[0] % 8;
    size_t chunk = (size_t)data[1] % 64 + 1;
    const char *in = (const char *)data + 2;
    size_t len = size - 2;
    char *out = malloc(POP3_WIRE_OUT_MAX(len) + 2);
    if (!out)
        return;
    struct pop3_wire w;
    pop3_wire_init(&w, lines);
    size_t o = 0;
    for (size_t i = 0; i < len; i += chunk)
        o += pop3_wire_encode(&w, in + i, len - i < chunk ? len - i : chunk, out + o);
    o += pop3_wire_finish(&w, out + o);
    if (o > POP3_WIRE_OUT_MAX(len) + 2)
        abort();
    if (o > 0 && (o < 2 || out[o - 2] != '\r' || out[o - 1] != '\n'))
        abort();
    size_t unstuffed = o;
    int bol = 1;
    for (size_t i = 0; i < o; i++) {
        if (out[i] == '\n' && (i == 0 || out[i - 1] != '\r'))
            abort();
        if (bol && out[i] == '.') {
            if (i + 1 >= o || out[i + 1] != '.')
                abort(); /* every line starting with '.' is stuffed */
            unstuffed--;
        }
        bol = out[i] == '\n';
    }
    if (lines < 0) {
        int prev_cr = 0, sbol = 1;
        uint64_t n = len ? pop3_wire_size_chunk(in, len, &prev_cr, &sbol) : 0;
        n += sbol ? 0 : prev_cr ? 1 : 2;
        if (n != unstuffed)
            abort();
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 1)
        fz_wire(data + 1, size - 1);
    else
        fz_parser((const char *)data + 1, size - 1);
    return 0;
}
