/*
 * test_bm_encode.c - unit tests for src/bitmessage/bm_encode.c: var_int
 * boundaries in all four sizes, rejection of non-minimal and truncated
 * encodings (as PyBitmessage decodeVarint does), var_str and var_int_list
 * with lengths beyond the input, reader position left unchanged on error,
 * big-endian helpers, writers at the buffer limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "bitmessage/bm_encode.h"

struct varint_case {
    uint64_t v;
    size_t len;
    const char *hex;
};

/* Boundary values and their only valid encodings. */
static const struct varint_case varint_cases[] = {
    {0, 1, "00"},
    {1, 1, "01"},
    {0xfc, 1, "fc"},
    {0xfd, 3, "fd00fd"},
    {0xfe, 3, "fd00fe"},
    {0xff, 3, "fd00ff"},
    {0x100, 3, "fd0100"},
    {0xffff, 3, "fdffff"},
    {0x10000, 5, "fe00010000"},
    {0xffffffffu, 5, "feffffffff"},
    {UINT64_C(0x100000000), 9, "ff0000000100000000"},
    {UINT64_MAX, 9, "ffffffffffffffffff"},
};

static size_t unhex(const char *hex, uint8_t *out, size_t outsz)
{
    size_t n = strlen(hex) / 2;
    size_t i;
    unsigned int byte;

    assert_true(n <= outsz);
    for (i = 0; i < n; i++) {
        char two[3] = {hex[2 * i], hex[2 * i + 1], '\0'};
        assert_int_equal(sscanf(two, "%02x", &byte), 1);
        out[i] = (uint8_t)byte;
    }
    return n;
}

static void test_varint_roundtrip(void **state)
{
    size_t i;

    for (i = 0; i < PST_ARRAY_LEN(varint_cases); i++) {
        const struct varint_case *c = &varint_cases[i];
        uint8_t want[16], enc[BM_VARINT_MAX_LEN];
        size_t wlen = unhex(c->hex, want, sizeof(want));
        uint64_t v = 0;
        size_t used = 0;
        bm_reader_t r;

        assert_int_equal(bm_varint_size(c->v), c->len);
        assert_int_equal(bm_varint_encode(c->v, enc), c->len);
        assert_int_equal(wlen, c->len);
        assert_memory_equal(enc, want, wlen);

        assert_int_equal(bm_varint_decode(want, wlen, &v, &used), 0);
        assert_true(v == c->v);
        assert_int_equal(used, c->len);

        bm_reader_init(&r, want, wlen);
        assert_int_equal(bm_get_varint(&r, &v), 0);
        assert_true(v == c->v);
        assert_int_equal(bm_reader_remaining(&r), 0);
    }
}

static void test_varint_nonminimal(void **state)
{
    /* each of these encodes a value that fits a shorter form */
    static const char *bad[] = {
        "fd0000", "fd00fc", "fe00000000", "fe0000ffff", "ff0000000000000000", "ff00000000ffffffff",
    };
    size_t i;

    for (i = 0; i < PST_ARRAY_LEN(bad); i++) {
        uint8_t in[16];
        size_t n = unhex(bad[i], in, sizeof(in));
        uint64_t v = 77;
        size_t used = 99;
        bm_reader_t r;

        assert_int_equal(bm_varint_decode(in, n, &v, &used), PST_EINVAL);
        assert_true(v == 77);
        assert_int_equal(used, 99);
        bm_reader_init(&r, in, n);
        assert_int_equal(bm_get_varint(&r, &v), PST_EINVAL);
        assert_int_equal(r.pos, 0);
    }
}

static void test_varint_truncated(void **state)
{
    uint8_t full[9] = {0xff, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};
    uint8_t p16[3] = {0xfd, 0x01, 0x00};
    uint8_t p32[5] = {0xfe, 0x01, 0x00, 0x00, 0x00};
    uint64_t v;
    size_t used, n;
    bm_reader_t r;

    for (n = 0; n < sizeof(full); n++)
        assert_int_equal(bm_varint_decode(full, n, &v, &used), PST_EINVAL);
    assert_int_equal(bm_varint_decode(full, 9, &v, &used), 0);
    assert_true(v == UINT64_C(0x0102030405060708));
    for (n = 1; n < sizeof(p16); n++)
        assert_int_equal(bm_varint_decode(p16, n, &v, &used), PST_EINVAL);
    for (n = 1; n < sizeof(p32); n++)
        assert_int_equal(bm_varint_decode(p32, n, &v, &used), PST_EINVAL);

    bm_reader_init(&r, NULL, 0); /* empty reader over NULL */
    assert_int_equal(bm_get_varint(&r, &v), PST_EINVAL);
    assert_int_equal(bm_get_u8(&r, (uint8_t *)&used), PST_EINVAL);
}

static void test_fixed_getters(void **state)
{
    static const uint8_t in[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
                                 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0xff,
                                 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe};
    bm_reader_t r;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    int64_t i64;

    bm_reader_init(&r, in, sizeof(in));
    assert_int_equal(bm_get_u8(&r, &u8), 0);
    assert_int_equal(u8, 1);
    assert_int_equal(bm_get_u16(&r, &u16), 0);
    assert_int_equal(u16, 0x0203);
    assert_int_equal(bm_get_u32(&r, &u32), 0);
    assert_int_equal(u32, 0x04050607);
    assert_int_equal(bm_get_u64(&r, &u64), 0);
    assert_true(u64 == UINT64_C(0x08090a0b0c0d0e0f));
    assert_int_equal(bm_get_i64(&r, &i64), 0);
    assert_true(i64 == -2);
    assert_int_equal(bm_reader_remaining(&r), 0);
    assert_int_equal(bm_get_u8(&r, &u8), PST_EINVAL);

    /* each getter refuses one byte short and leaves pos alone */
    bm_reader_init(&r, in, 1);
    assert_int_equal(bm_get_u16(&r, &u16), PST_EINVAL);
    bm_reader_init(&r, in, 3);
    assert_int_equal(bm_get_u32(&r, &u32), PST_EINVAL);
    bm_reader_init(&r, in, 7);
    assert_int_equal(bm_get_u64(&r, &u64), PST_EINVAL);
    assert_int_equal(bm_get_i64(&r, &i64), PST_EINVAL);
    assert_int_equal(r.pos, 0);
}

static void test_bytes_view_skip(void **state)
{
    static const uint8_t in[] = "abcdef";
    uint8_t out[4] = {0};
    const uint8_t *p = NULL;
    size_t n = 0;
    bm_reader_t r;

    bm_reader_init(&r, in, 6);
    assert_int_equal(bm_get_bytes(&r, out, 2), 0);
    assert_memory_equal(out, "ab", 2);
    assert_int_equal(bm_get_view(&r, 1, &p), 0);
    assert_int_equal(p[0], 'c');
    assert_int_equal(bm_skip(&r, 4), PST_EINVAL);
    assert_int_equal(bm_skip(&r, SIZE_MAX), PST_EINVAL);
    assert_int_equal(bm_get_view(&r, SIZE_MAX, &p), PST_EINVAL);
    assert_int_equal(r.pos, 3);
    assert_int_equal(bm_skip(&r, 1), 0);
    bm_get_rest(&r, &p, &n);
    assert_int_equal(n, 2);
    assert_memory_equal(p, "ef", 2);
    assert_int_equal(bm_reader_remaining(&r), 0);
    assert_int_equal(bm_get_bytes(&r, out, 0), 0);
}

static void test_varstr(void **state)
{
    static const uint8_t ok[] = {0x05, 'h', 'e', '\0', 'l', 'o', 'X'};
    static const uint8_t empty[] = {0x00};
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 'a'};
    static const uint8_t toolong[] = {0x06, 'a', 'b', 'c', 'd', 'e'};
    static const uint8_t nonmin[] = {0xfd, 0x00, 0x01, 'a'};
    const uint8_t *p = NULL;
    size_t n = 0;
    bm_reader_t r;

    bm_reader_init(&r, ok, sizeof(ok));
    assert_int_equal(bm_get_varstr(&r, 100, &p, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(p, "he\0lo", 5); /* NUL bytes are data */
    assert_int_equal(bm_reader_remaining(&r), 1);

    bm_reader_init(&r, ok, sizeof(ok));
    assert_int_equal(bm_get_varstr(&r, 4, &p, &n), PST_ELIMIT);
    assert_int_equal(r.pos, 0);

    bm_reader_init(&r, empty, sizeof(empty));
    assert_int_equal(bm_get_varstr(&r, 0, &p, &n), 0);
    assert_int_equal(n, 0);

    bm_reader_init(&r, huge, sizeof(huge));
    assert_int_equal(bm_get_varstr(&r, SIZE_MAX, &p, &n), PST_EINVAL);
    assert_int_equal(r.pos, 0);

    bm_reader_init(&r, toolong, sizeof(toolong));
    assert_int_equal(bm_get_varstr(&r, 100, &p, &n), PST_EINVAL);
    assert_int_equal(r.pos, 0);

    bm_reader_init(&r, nonmin, sizeof(nonmin));
    assert_int_equal(bm_get_varstr(&r, 100, &p, &n), PST_EINVAL);
    assert_int_equal(r.pos, 0);
}

static void test_varint_list(void **state)
{
    static const uint8_t ok[] = {0x03, 0x01, 0xfd, 0x01, 0x00, 0xfe, 0x00, 0x01, 0x00, 0x00};
    static const uint8_t huge[] = {0xfe, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02};
    static const uint8_t short_elem[] = {0x02, 0x01, 0xfd, 0x01};
    static const uint8_t nonmin_elem[] = {0x02, 0x01, 0xfd, 0x00, 0x01};
    uint64_t out[4];
    size_t count = 0;
    bm_reader_t r;

    bm_reader_init(&r, ok, sizeof(ok));
    assert_int_equal(bm_get_varint_list(&r, out, 4, &count), 0);
    assert_int_equal(count, 3);
    assert_true(out[0] == 1 && out[1] == 0x100 && out[2] == 0x10000);
    assert_int_equal(bm_reader_remaining(&r), 0);

    bm_reader_init(&r, ok, sizeof(ok));
    assert_int_equal(bm_get_varint_list(&r, out, 2, &count), PST_ELIMIT);
    assert_int_equal(r.pos, 0);
    assert_int_equal(bm_get_varint_list(&r, NULL, 0, &count), PST_ELIMIT);

    bm_reader_init(&r, huge, sizeof(huge));
    assert_int_equal(bm_get_varint_list(&r, out, 4, &count), PST_EINVAL);
    assert_int_equal(r.pos, 0);

    bm_reader_init(&r, short_elem, sizeof(short_elem));
    assert_int_equal(bm_get_varint_list(&r, out, 4, &count), PST_EINVAL);
    assert_int_equal(r.pos, 0);

    bm_reader_init(&r, nonmin_elem, sizeof(nonmin_elem));
    assert_int_equal(bm_get_varint_list(&r, out, 4, &count), PST_EINVAL);
    assert_int_equal(r.pos, 0);
}

static void test_writers(void **state)
{
    static const uint64_t streams[] = {1, 300};
    static const uint8_t want[] = {
        0x7f,                                           /* u8 */
        0x12, 0x34,                                     /* u16 */
        0xde, 0xad, 0xbe, 0xef,                         /* u32 */
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* u64 */
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* i64 -1 */
        0xfd, 0x01, 0x2c,                               /* varint 300 */
        0x03, 'a',  '\0', 'c',                          /* varstr */
        0x02, 0x01, 0xfd, 0x01, 0x2c,                   /* varint list */
        0x00,                                           /* empty varstr */
    };
    buf_t *b = buf_new(256);
    bm_reader_t r;
    const uint8_t *p;
    size_t n;
    uint64_t list[2];
    uint64_t v;

    assert_non_null(b);
    assert_int_equal(bm_put_u8(b, 0x7f), 0);
    assert_int_equal(bm_put_u16(b, 0x1234), 0);
    assert_int_equal(bm_put_u32(b, 0xdeadbeef), 0);
    assert_int_equal(bm_put_u64(b, UINT64_C(0x0102030405060708)), 0);
    assert_int_equal(bm_put_i64(b, -1), 0);
    assert_int_equal(bm_put_varint(b, 300), 0);
    assert_int_equal(bm_put_varstr(b, "a\0c", 3), 0);
    assert_int_equal(bm_put_varint_list(b, streams, 2), 0);
    assert_int_equal(bm_put_varstr(b, NULL, 0), 0);
    assert_int_equal(b->len, sizeof(want));
    assert_memory_equal(b->data, want, sizeof(want));

    /* read it back */
    bm_reader_init(&r, b->data, b->len);
    assert_int_equal(bm_skip(&r, 23), 0);
    assert_int_equal(bm_get_varint(&r, &v), 0);
    assert_true(v == 300);
    assert_int_equal(bm_get_varstr(&r, 3, &p, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(bm_get_varint_list(&r, list, 2, &n), 0);
    assert_true(n == 2 && list[0] == 1 && list[1] == 300);
    buf_free(&b);

    /* at the limit: refused */
    b = buf_new(4);
    assert_non_null(b);
    assert_int_equal(bm_put_u32(b, 1), 0);
    assert_int_equal(bm_put_u8(b, 1), PST_ELIMIT);
    assert_int_equal(bm_put_varint(b, UINT64_MAX), PST_ELIMIT);
    assert_int_equal(b->len, 4);
    buf_free(&b);
}

static void test_be_helpers(void **state)
{
    uint8_t p[8];

    bm_be16_store(p, 0xabcd);
    assert_int_equal(p[0], 0xab);
    assert_int_equal(bm_be16_load(p), 0xabcd);
    bm_be32_store(p, 0x80000001u);
    assert_int_equal(p[0], 0x80);
    assert_int_equal(p[3], 0x01);
    assert_true(bm_be32_load(p) == 0x80000001u);
    bm_be64_store(p, UINT64_C(0x8000000000000001));
    assert_int_equal(p[0], 0x80);
    assert_int_equal(p[7], 0x01);
    assert_true(bm_be64_load(p) == UINT64_C(0x8000000000000001));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_varint_roundtrip), cmocka_unit_test(test_varint_nonminimal),
        cmocka_unit_test(test_varint_truncated), cmocka_unit_test(test_fixed_getters),
        cmocka_unit_test(test_bytes_view_skip),  cmocka_unit_test(test_varstr),
        cmocka_unit_test(test_varint_list),      cmocka_unit_test(test_writers),
        cmocka_unit_test(test_be_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
