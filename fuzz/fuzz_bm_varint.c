/*
 * fuzz_bm_varint.c - libFuzzer target for the Bitmessage wire primitives
 * (src/bitmessage/bm_encode.c).
 *
 * Input: a script byte stream. The first byte of each step picks a getter
 * (var_int, var_str, var_int_list, u8..u64, skip); the same reader then
 * consumes the rest of the input. Checks, besides "no crash / no read past
 * the end" (ASan):
 *   - pos never exceeds len, and a failing getter leaves pos unchanged;
 *   - every var_int decoded re-encodes to exactly the bytes it was read from
 *     (so only minimal encodings are accepted);
 *   - a var_str never extends past the input and honours its maximum.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bitmessage/bm_encode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_LIST_MAX 16
#define FUZZ_STR_MAX 64

static void fuzz_check_varint(bm_reader_t *r)
{
    size_t start = r->pos;
    uint8_t enc[BM_VARINT_MAX_LEN];
    uint64_t v;
    size_t n;

    if (bm_get_varint(r, &v) != 0) {
        if (r->pos != start)
            abort();
        return;
    }
    n = bm_varint_encode(v, enc);
    if (n != r->pos - start || memcmp(enc, r->ptr + start, n) != 0)
        abort();
}

static void fuzz_check_varstr(bm_reader_t *r)
{
    size_t start = r->pos;
    const uint8_t *p;
    size_t n;

    if (bm_get_varstr(r, FUZZ_STR_MAX, &p, &n) != 0) {
        if (r->pos != start)
            abort();
        return;
    }
    if (n > FUZZ_STR_MAX || p + n != r->ptr + r->pos || r->pos > r->len)
        abort();
}

static void fuzz_check_list(bm_reader_t *r)
{
    size_t start = r->pos;
    uint64_t out[FUZZ_LIST_MAX];
    size_t count = 0;

    if (bm_get_varint_list(r, out, FUZZ_LIST_MAX, &count) != 0) {
        if (r->pos != start)
            abort();
        return;
    }
    if (count > FUZZ_LIST_MAX)
        abort();
}

static int fuzz_step(bm_reader_t *r, uint8_t op)
{
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;

    switch (op % 8) {
    case 0:
        fuzz_check_varint(r);
        return 0;
    case 1:
        fuzz_check_varstr(r);
        return 0;
    case 2:
        fuzz_check_list(r);
        return 0;
    case 3:
        return bm_get_u16(r, &u16);
    case 4:
        return bm_get_u32(r, &u32);
    case 5:
        return bm_get_u64(r, &u64);
    case 6:
        return bm_skip(r, op >> 3);
    default:
        return bm_get_u8(r, &u8);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bm_reader_t r;
    uint8_t op;

    bm_reader_init(&r, data, size);
    while (bm_reader_remaining(&r) > 0) {
        size_t before = r.pos;

        if (bm_get_u8(&r, &op) != 0)
            abort();
        if (fuzz_step(&r, op) != 0 && r.pos != before + 1)
            abort();
        if (r.pos > r.len)
            abort();
    }
    return 0;
}
