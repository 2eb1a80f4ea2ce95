/*
 * fuzz_bm_packet.c - the Bitmessage packet framer (bm_wire_frame).
 *
 * 1. Frame the raw input as a stream, packet after packet, with the framer
 *    seeing it grow in steps of a size taken from the input; the result must
 *    match framing the whole input at once (same packets, same error).
 * 2. Random checksums almost never match, so also wrap the input into a
 *    packet with bm_wire_packet_build (command from the first bytes) and
 *    check that the framer gives back exactly that command and payload.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bitmessage/bm_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fuzz_stream - frame data revealed step bytes at a time; returns a digest
 * of the packets seen and the final status. */
static unsigned long fuzz_stream(const uint8_t *data, size_t size, size_t step)
{
    unsigned long h = 5381;
    size_t off = 0;
    size_t avail = 0;

    for (;;) {
        struct bm_wire_packet pkt;
        size_t used = 0;
        int rc = bm_wire_frame(data + off, avail - off, &pkt, &used);
        if (rc < 0)
            return h * 33 + (unsigned long)(-rc);
        if (used == 0) {
            if (avail == size)
                return h * 33 + 99;
            avail = size - avail < step ? size : avail + step;
            continue;
        }
        if (used > avail - off || used != BM_WIRE_HEADER_LEN + pkt.payload_len)
            abort();
        if (pkt.payload != data + off + BM_WIRE_HEADER_LEN)
            abort();
        if (strlen(pkt.command) == 0 || strlen(pkt.command) > BM_WIRE_COMMAND_LEN)
            abort();
        if (pkt.cmd != bm_wire_cmd_lookup(pkt.command))
            abort();
        h = h * 33 + (unsigned long)pkt.cmd;
        h = h * 33 + pkt.payload_len;
        off += used;
    }
}

static void fuzz_wrap(const uint8_t *data, size_t size)
{
    char cmd[BM_WIRE_COMMAND_LEN + 1];
    size_t n = 0;
    buf_t *b = NULL;
    struct bm_wire_packet pkt;
    size_t used = 0;

    while (n < size && n < BM_WIRE_COMMAND_LEN && data[n] > 0x20 && data[n] < 0x7f) {
        cmd[n] = (char)data[n];
        n++;
    }
    cmd[n] = '\0';
    b = buf_new(BM_WIRE_HEADER_LEN + size);
    if (b == NULL)
        return;
    if (bm_wire_packet_build(b, cmd, data + n, size - n) < 0) {
        if (n != 0)
            abort();
        buf_free(&b);
        return;
    }
    if (bm_wire_frame((const uint8_t *)b->data, b->len, &pkt, &used) != 0 || used != b->len)
        abort();
    if (strcmp(pkt.command, cmd) != 0 || pkt.payload_len != size - n)
        abort();
    if (pkt.payload_len > 0 && memcmp(pkt.payload, data + n, pkt.payload_len) != 0)
        abort();
    buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t step = size > 0 ? (size_t)data[0] % 31 + 1 : 1;
    if (fuzz_stream(data, size, size > 0 ? size : 1) != fuzz_stream(data, size, step))
        abort();
    if (size <= BM_WIRE_MAX_PAYLOAD)
        fuzz_wrap(data, size);
    return 0;
}
