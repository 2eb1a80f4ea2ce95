/*
 * bm_encode.c - Bitmessage wire primitives (see bm_encode.h for the formats).
 *
 * Reference: Bitmessage wiki "Protocol specification" (Variable length
 * integer, Variable length string, Variable length list of integers), and
 * PyBitmessage src/addresses.py decodeVarint(), which rejects a var_int not
 * encoded in the fewest bytes ("non-minimal"); we do the same so that every
 * value has exactly one encoding.
 *
 * Invariants: a reader's pos never exceeds len; every getter checks the
 * remaining length before touching a byte and commits pos only on success.
 * Lengths read from the wire are compared against the remaining bytes
 * without arithmetic that could overflow (remaining is always computed as
 * len - pos, never pos + n).
 *
 * Failure policy: malformed or truncated input returns PST_EINVAL, a length
 * or count over the caller's maximum PST_ELIMIT. Nothing here aborts except
 * PST_ASSERT on NULL arguments (a programming error).
 */
#include "bm_encode.h"

#include <string.h>

/* var_int prefixes and the smallest value each longer form may carry. */
#define BM_VARINT_P16 0xfdu
#define BM_VARINT_P32 0xfeu
#define BM_VARINT_P64 0xffu
#define BM_VARINT_MIN16 UINT64_C(0xfd)
#define BM_VARINT_MIN32 UINT64_C(0x10000)
#define BM_VARINT_MIN64 UINT64_C(0x100000000)

uint16_t bm_be16_load(const uint8_t *p)
{
    return (uint16_t)(((uint16_t)p[0] << 8) | p[1]);
}

uint32_t bm_be32_load(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

uint64_t bm_be64_load(const uint8_t *p)
{
    return ((uint64_t)bm_be32_load(p) << 32) | bm_be32_load(p + 4);
}

void bm_be16_store(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

void bm_be32_store(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

void bm_be64_store(uint8_t *p, uint64_t v)
{
    bm_be32_store(p, (uint32_t)(v >> 32));
    bm_be32_store(p + 4, (uint32_t)v);
}

void bm_reader_init(bm_reader_t *r, const void *data, size_t len)
{
    PST_ASSERT(r != NULL);
    PST_ASSERT(data != NULL || len == 0);
    r->ptr = data;
    r->len = len;
    r->pos = 0;
}

size_t bm_reader_remaining(const bm_reader_t *r)
{
    PST_ASSERT(r != NULL && r->pos <= r->len);
    return r->len - r->pos;
}

/* bm_reader_take - borrow the next n bytes and consume them, or PST_EINVAL. */
static int bm_reader_take(bm_reader_t *r, size_t n, const uint8_t **out)
{
    if (n > bm_reader_remaining(r))
        return PST_EINVAL;
    if (r->ptr == NULL) { /* empty reader over NULL: no pointer arithmetic on NULL */
        *out = NULL;
        return 0;
    }
    *out = r->ptr + r->pos;
    r->pos += n;
    return 0;
}

int bm_get_u8(bm_reader_t *r, uint8_t *out)
{
    const uint8_t *p;

    if (bm_reader_take(r, 1, &p) != 0)
        return PST_EINVAL;
    *out = p[0];
    return 0;
}

int bm_get_u16(bm_reader_t *r, uint16_t *out)
{
    const uint8_t *p;

    if (bm_reader_take(r, 2, &p) != 0)
        return PST_EINVAL;
    *out = bm_be16_load(p);
    return 0;
}

int bm_get_u32(bm_reader_t *r, uint32_t *out)
{
    const uint8_t *p;

    if (bm_reader_take(r, 4, &p) != 0)
        return PST_EINVAL;
    *out = bm_be32_load(p);
    return 0;
}

int bm_get_u64(bm_reader_t *r, uint64_t *out)
{
    const uint8_t *p;

    if (bm_reader_take(r, 8, &p) != 0)
        return PST_EINVAL;
    *out = bm_be64_load(p);
    return 0;
}

int bm_get_i64(bm_reader_t *r, int64_t *out)
{
    uint64_t u;

    if (bm_get_u64(r, &u) != 0)
        return PST_EINVAL;
    /* two's complement reinterpretation without implementation-defined conversion */
    memcpy(out, &u, sizeof(*out));
    return 0;
}

int bm_get_bytes(bm_reader_t *r, void *out, size_t n)
{
    const uint8_t *p;

    if (bm_reader_take(r, n, &p) != 0)
        return PST_EINVAL;
    if (n > 0)
        memcpy(out, p, n);
    return 0;
}

int bm_get_view(bm_reader_t *r, size_t n, const uint8_t **out)
{
    return bm_reader_take(r, n, out);
}

int bm_skip(bm_reader_t *r, size_t n)
{
    const uint8_t *p;

    return bm_reader_take(r, n, &p);
}

void bm_get_rest(bm_reader_t *r, const uint8_t **out, size_t *outlen)
{
    *outlen = bm_reader_remaining(r);
    *out = r->ptr == NULL ? NULL : r->ptr + r->pos;
    r->pos = r->len;
}

int bm_varint_decode(const void *data, size_t len, uint64_t *out, size_t *used)
{
    const uint8_t *p = data;
    uint64_t v;
    uint64_t min;
    size_t n;

    if (len < 1)
        return PST_EINVAL;
    switch (p[0]) {
    case BM_VARINT_P16:
        n = 3;
        min = BM_VARINT_MIN16;
        break;
    case BM_VARINT_P32:
        n = 5;
        min = BM_VARINT_MIN32;
        break;
    case BM_VARINT_P64:
        n = 9;
        min = BM_VARINT_MIN64;
        break;
    default:
        *out = p[0];
        *used = 1;
        return 0;
    }
    if (len < n)
        return PST_EINVAL; /* truncated */
    if (n == 3)
        v = bm_be16_load(p + 1);
    else if (n == 5)
        v = bm_be32_load(p + 1);
    else
        v = bm_be64_load(p + 1);
    if (v < min)
        return PST_EINVAL; /* non-minimal encoding */
    *out = v;
    *used = n;
    return 0;
}

int bm_get_varint(bm_reader_t *r, uint64_t *out)
{
    uint64_t v;
    size_t used;

    if (bm_reader_remaining(r) == 0)
        return PST_EINVAL;
    if (bm_varint_decode(r->ptr + r->pos, bm_reader_remaining(r), &v, &used) != 0)
        return PST_EINVAL;
    r->pos += used;
    *out = v;
    return 0;
}

int bm_get_varstr(bm_reader_t *r, size_t max, const uint8_t **out, size_t *outlen)
{
    size_t start = r->pos;
    uint64_t n;

    if (bm_get_varint(r, &n) != 0)
        return PST_EINVAL;
    if (n > bm_reader_remaining(r)) {
        r->pos = start;
        return PST_EINVAL; /* claims more bytes than there are */
    }
    if (n > max) {
        r->pos = start;
        return PST_ELIMIT;
    }
    *outlen = (size_t)n;
    return bm_reader_take(r, (size_t)n, out); /* cannot fail: checked above */
}

int bm_get_varint_list(bm_reader_t *r, uint64_t *out, size_t max_count, size_t *count)
{
    size_t start = r->pos;
    uint64_t n;
    size_t i;

    PST_ASSERT(out != NULL || max_count == 0);
    if (bm_get_varint(r, &n) != 0)
        return PST_EINVAL;
    if (n > bm_reader_remaining(r)) {
        r->pos = start;
        return PST_EINVAL; /* each element takes at least one byte */
    }
    if (n > max_count) {
        r->pos = start;
        return PST_ELIMIT;
    }
    for (i = 0; i < (size_t)n; i++) {
        if (bm_get_varint(r, &out[i]) != 0) {
            r->pos = start;
            return PST_EINVAL;
        }
    }
    *count = (size_t)n;
    return 0;
}

size_t bm_varint_size(uint64_t v)
{
    if (v < BM_VARINT_MIN16)
        return 1;
    if (v < BM_VARINT_MIN32)
        return 3;
    if (v < BM_VARINT_MIN64)
        return 5;
    return 9;
}

size_t bm_varint_encode(uint64_t v, uint8_t out[BM_VARINT_MAX_LEN])
{
    size_t n = bm_varint_size(v);

    switch (n) {
    case 1:
        out[0] = (uint8_t)v;
        break;
    case 3:
        out[0] = BM_VARINT_P16;
        bm_be16_store(out + 1, (uint16_t)v);
        break;
    case 5:
        out[0] = BM_VARINT_P32;
        bm_be32_store(out + 1, (uint32_t)v);
        break;
    default:
        out[0] = BM_VARINT_P64;
        bm_be64_store(out + 1, v);
        break;
    }
    return n;
}

int bm_put_u8(buf_t *b, uint8_t v)
{
    return buf_append(b, &v, 1);
}

int bm_put_u16(buf_t *b, uint16_t v)
{
    uint8_t tmp[2];

    bm_be16_store(tmp, v);
    return buf_append(b, tmp, sizeof(tmp));
}

int bm_put_u32(buf_t *b, uint32_t v)
{
    uint8_t tmp[4];

    bm_be32_store(tmp, v);
    return buf_append(b, tmp, sizeof(tmp));
}

int bm_put_u64(buf_t *b, uint64_t v)
{
    uint8_t tmp[8];

    bm_be64_store(tmp, v);
    return buf_append(b, tmp, sizeof(tmp));
}

int bm_put_i64(buf_t *b, int64_t v)
{
    uint64_t u;

    memcpy(&u, &v, sizeof(u));
    return bm_put_u64(b, u);
}

int bm_put_bytes(buf_t *b, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    return buf_append(b, data, len);
}

int bm_put_varint(buf_t *b, uint64_t v)
{
    uint8_t tmp[BM_VARINT_MAX_LEN];
    size_t n = bm_varint_encode(v, tmp);

    return buf_append(b, tmp, n);
}

int bm_put_varstr(buf_t *b, const void *data, size_t len)
{
    int rc = bm_put_varint(b, (uint64_t)len);

    if (rc != 0)
        return rc;
    return bm_put_bytes(b, data, len);
}

int bm_put_varint_list(buf_t *b, const uint64_t *v, size_t n)
{
    int rc = bm_put_varint(b, (uint64_t)n);
    size_t i;

    for (i = 0; rc == 0 && i < n; i++)
        rc = bm_put_varint(b, v[i]);
    return rc;
}
