/*
 * fuzz_bm_object.c - the Bitmessage payload parsers of bm_wire: object,
 * version, addr, inv/getdata, error. The first byte picks the parser; the
 * rest is the payload. Whatever a parser accepts is read through every
 * accessor and built again: the builder must reproduce the accepted bytes
 * exactly (the var_int rules make the encoding canonical).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bitmessage/bm_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fuzz_same - abort unless b holds exactly p[0..n). */
static void fuzz_same(const buf_t *b, const uint8_t *p, size_t n)
{
    if (b->len != n || (n > 0 && memcmp(b->data, p, n) != 0))
        abort();
}

static void fuzz_object(buf_t *b, const uint8_t *p, size_t n)
{
    struct bm_wire_object o;
    uint8_t h[BM_WIRE_INV_LEN];
    if (bm_wire_object_parse(p, n, &o) != 0)
        return;
    if (o.header_len + o.payload_len != n || o.payload != p + o.header_len)
        abort();
    if (bm_wire_inventory_hash(o.data, o.data_len, h) != 0)
        abort();
    if (bm_wire_object_build(b, &o) != 0)
        abort();
    fuzz_same(b, p, n);
}

static void fuzz_version(buf_t *b, const uint8_t *p, size_t n)
{
    struct bm_wire_version v;
    uint64_t *streams = NULL;
    size_t pos = 0;
    size_t i = 0;
    if (bm_wire_version_parse(p, n, &v) != 0)
        return;
    if (v.user_agent_len > BM_WIRE_MAX_USER_AGENT || v.nstreams > BM_WIRE_MAX_STREAMS)
        abort();
    streams = calloc(v.nstreams + 1, sizeof(*streams));
    if (streams == NULL)
        return;
    while (bm_wire_version_stream_next(&v, &pos, &streams[i]) == 0)
        if (++i > v.nstreams)
            abort();
    if (i != v.nstreams)
        abort();
    if (i > 0)
        (void)bm_wire_version_has_stream(&v, streams[i - 1]);
    if (i > 0) {
        if (bm_wire_version_build(b, &v, streams, i) != 0)
            abort();
        /* the parser tolerates trailing bytes; the rest must match */
        fuzz_same(b, p, (size_t)(v.streams_data + v.streams_len - p));
    }
    free(streams);
}

static void fuzz_addr(buf_t *b, const uint8_t *p, size_t n)
{
    struct bm_wire_addr a;
    struct bm_wire_addr_entry *e = NULL;
    if (bm_wire_addr_parse(p, n, &a) != 0)
        return;
    if (a.count > BM_WIRE_MAX_ADDR_COUNT)
        abort();
    e = calloc(a.count + 1, sizeof(*e));
    if (e == NULL)
        return;
    for (size_t i = 0; i < a.count; i++)
        if (bm_wire_addr_get(&a, i, &e[i]) != 0)
            abort();
    if (bm_wire_addr_get(&a, a.count, &e[a.count]) != PST_ENOENT)
        abort();
    if (bm_wire_addr_build(b, e, a.count) != 0)
        abort();
    fuzz_same(b, p, n);
    free(e);
}

static void fuzz_inv(buf_t *b, const uint8_t *p, size_t n)
{
    struct bm_wire_inv inv;
    if (bm_wire_inv_parse(p, n, &inv) != 0)
        return;
    if (inv.count > BM_WIRE_MAX_INV_COUNT)
        abort();
    if (bm_wire_inv_build(b, inv.vectors, inv.count) != 0)
        abort();
    fuzz_same(b, p, n);
}

static void fuzz_error(buf_t *b, const uint8_t *p, size_t n)
{
    struct bm_wire_error e;
    if (bm_wire_error_parse(p, n, &e) != 0)
        return;
    if (e.inv_len != 0 && e.inv_len != BM_WIRE_INV_LEN)
        abort();
    if (bm_wire_error_build(b, &e) != 0)
        abort();
    fuzz_same(b, p, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    buf_t *b = NULL;
    if (size == 0 || size - 1 > BM_WIRE_MAX_PAYLOAD)
        return 0;
    b = buf_new(BM_WIRE_MAX_PAYLOAD);
    if (b == NULL)
        return 0;
    switch (data[0] % 5) {
    case 0:
        fuzz_object(b, data + 1, size - 1);
        break;
    case 1:
        fuzz_version(b, data + 1, size - 1);
        break;
    case 2:
        fuzz_addr(b, data + 1, size - 1);
        break;
    case 3:
        fuzz_inv(b, data + 1, size - 1);
        break;
    default:
        fuzz_error(b, data + 1, size - 1);
        break;
    }
    buf_free(&b);
    return 0;
}
