/*
 * test_bm_wire.c - unit tests for src/bitmessage/bm_wire.c: framing and the
 * version/verack/addr/inv/getdata/error/object payloads.
 *
 * The REF_* packets were produced by PyBitmessage itself (git HEAD 1ee38838
 * of Bitmessage/PyBitmessage): Debian's /usr/bin/python3 imported src/protocol.py
 * from a copy in /tmp (HOME pointed at a scratch dir, config.read() loading
 * default.ini, time.time patched to 1700000000) and printed
 *   assembleVersionMessage('192.0.2.7', 8444, {1}, dandelion_enabled=True,
 *                          server=False, nodeid=b'\1\2\3\4\5\6\7\x08')
 *   assembleVersionMessage('2001:db8::1', 8445, {1, 2, 300},
 *                          dandelion_enabled=False, server=False, nodeid=same)
 *   CreatePacket(b'verack')
 *   assembleErrorMessage(fatal=2, errorText=b"I'm connected to myself. Closing connection.")
 *   assembleAddrMessage([(1, Peer('192.0.2.9', 8444), 1699999000)])
 *   highlevelcrypto.calculateInventoryHash(obj), CreatePacket(b'object', obj)
 * as hex. Our parsers must read them and our builders must reproduce them
 * byte for byte. Hostile input follows: truncation, lying lengths, bad
 * checksums, huge and non-minimal var_ints, over-limit counts, bad commands.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bitmessage/bm_wire.h"

static const char REF_VERSION[] =
    "e9beb4d976657273696f6e00000000000000006967dfedd300000003000000000000000b00000000"
    "6553f100000000000000000100000000000000000000ffffc000020720fc000000000000000b0000"
    "0000000000000000ffff7f00000120fc0102030405060708162f50794269746d6573736167653a30"
    "2e362e332e322f0101";
static const char REF_VERSION2[] =
    "e9beb4d976657273696f6e00000000000000006d30779335000000030000000000000003000000006"
    "553f100000000000000000120010db800000000000000000000000120fd0000000000000003000000"
    "00000000000000ffff7f00000120fc0102030405060708162f50794269746d6573736167653a302e"
    "362e332e322f030102fd012c";
static const char REF_VERACK[] = "e9beb4d976657261636b00000000000000000000cf83e135";
static const char REF_ERROR[] =
    "e9beb4d96572726f720000000000000000000030b17629e30200002c49276d20636f6e6e65637465"
    "6420746f206d7973656c662e20436c6f73696e6720636f6e6e656374696f6e2e";
static const char REF_ADDR[] =
    "e9beb4d9616464720000000000000000000000276c0b7da901000000006553ed18000000010000000"
    "00000000100000000000000000000ffffc000020920fc";
static const char REF_OBJ[] =
    "0001020304050607000000006553ff100000000201016f626a6563747061796c6f6164";
static const char REF_INVHASH[] =
    "9337eaf58d27b9dd0a4c3f879be47c18bd2f6c9b1293a8efc4bb77328a89fc70";
static const char REF_OBJPKT[] =
    "e9beb4d96f626a65637400000000000000000023de3bc1780001020304050607000000006553ff10"
    "0000000201016f626a6563747061796c6f6164";

static const char UA[] = "/PyBitmessage:0.6.3.2/";

static size_t unhex(const char *hex, uint8_t *out, size_t max)
{
    size_t n = strlen(hex) / 2;
    assert_true(n <= max);
    for (size_t i = 0; i < n; i++) {
        unsigned int b = 0;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &b), 1);
        out[i] = (uint8_t)b;
    }
    return n;
}

static void v4mapped(uint8_t ip[16], uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
    memset(ip, 0, 16);
    ip[10] = 0xff;
    ip[11] = 0xff;
    ip[12] = a;
    ip[13] = b;
    ip[14] = c;
    ip[15] = d;
}

/* frame_one - frame exactly one whole packet from p and return its payload. */
static struct bm_wire_packet frame_one(const uint8_t *p, size_t n, enum bm_wire_cmd want)
{
    struct bm_wire_packet pkt;
    size_t used = 0;
    assert_int_equal(bm_wire_frame(p, n, &pkt, &used), 0);
    assert_int_equal(used, n);
    assert_int_equal(pkt.cmd, want);
    assert_int_equal(pkt.payload_len, n - BM_WIRE_HEADER_LEN);
    return pkt;
}

static void assert_packet_equals(buf_t *payload, const char *cmd, const uint8_t *want, size_t n)
{
    buf_t *pkt = buf_new(BM_WIRE_HEADER_LEN + BM_WIRE_MAX_PAYLOAD);
    assert_non_null(pkt);
    assert_int_equal(bm_wire_packet_build(pkt, cmd, (const uint8_t *)payload->data, payload->len),
                     0);
    assert_int_equal(pkt->len, n);
    assert_memory_equal(pkt->data, want, n);
    buf_free(&pkt);
}

static void test_ref_version(void **state)
{
    uint8_t raw[512];
    size_t n = unhex(REF_VERSION, raw, sizeof(raw));
    struct bm_wire_packet pkt = frame_one(raw, n, BM_WIRE_CMD_VERSION);
    struct bm_wire_version v;
    uint8_t ip[16];
    uint64_t s = 0;
    size_t pos = 0;

    assert_string_equal(pkt.command, "version");
    assert_int_equal(bm_wire_version_parse(pkt.payload, pkt.payload_len, &v), 0);
    assert_int_equal(v.protocol_version, 3);
    assert_int_equal(v.services, BM_WIRE_NODE_NETWORK | BM_WIRE_NODE_SSL | BM_WIRE_NODE_DANDELION);
    assert_int_equal(v.timestamp, 1700000000);
    assert_int_equal(v.addr_recv.services, 1);
    v4mapped(ip, 192, 0, 2, 7);
    assert_memory_equal(v.addr_recv.ip, ip, 16);
    assert_int_equal(v.addr_recv.port, 8444);
    assert_int_equal(v.addr_from.services, 11);
    v4mapped(ip, 127, 0, 0, 1);
    assert_memory_equal(v.addr_from.ip, ip, 16);
    assert_int_equal(v.addr_from.port, 8444);
    assert_int_equal(v.nonce, 0x0102030405060708ull);
    assert_int_equal(v.user_agent_len, strlen(UA));
    assert_memory_equal(v.user_agent, UA, strlen(UA));
    assert_int_equal(v.nstreams, 1);
    assert_int_equal(bm_wire_version_stream_next(&v, &pos, &s), 0);
    assert_int_equal(s, 1);
    assert_int_equal(bm_wire_version_stream_next(&v, &pos, &s), PST_ENOENT);
    assert_true(bm_wire_version_has_stream(&v, 1));
    assert_false(bm_wire_version_has_stream(&v, 2));

    /* Our builder gives the same bytes. */
    buf_t *b = buf_new(BM_WIRE_MAX_PAYLOAD);
    uint64_t streams[] = {1};
    assert_non_null(b);
    assert_int_equal(bm_wire_version_build(b, &v, streams, 1), 0);
    assert_packet_equals(b, "version", raw, n);
    buf_free(&b);
}

static void test_ref_version_ipv6_streams(void **state)
{
    uint8_t raw[512];
    size_t n = unhex(REF_VERSION2, raw, sizeof(raw));
    struct bm_wire_packet pkt = frame_one(raw, n, BM_WIRE_CMD_VERSION);
    struct bm_wire_version v;
    static const uint8_t ip6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    uint64_t got[3] = {0};
    uint64_t s = 0;
    size_t pos = 0;
    size_t i = 0;

    assert_int_equal(bm_wire_version_parse(pkt.payload, pkt.payload_len, &v), 0);
    assert_int_equal(v.services, BM_WIRE_NODE_NETWORK | BM_WIRE_NODE_SSL);
    assert_memory_equal(v.addr_recv.ip, ip6, 16);
    assert_int_equal(v.addr_recv.port, 8445);
    assert_int_equal(v.nstreams, 3);
    while (bm_wire_version_stream_next(&v, &pos, &s) == 0) {
        assert_true(i < 3);
        got[i++] = s;
    }
    assert_int_equal(i, 3);
    assert_int_equal(got[0], 1);
    assert_int_equal(got[1], 2);
    assert_int_equal(got[2], 300);
    assert_true(bm_wire_version_has_stream(&v, 300));

    buf_t *b = buf_new(BM_WIRE_MAX_PAYLOAD);
    assert_non_null(b);
    assert_int_equal(bm_wire_version_build(b, &v, got, 3), 0);
    assert_packet_equals(b, "version", raw, n);
    buf_free(&b);
}

static void test_ref_verack(void **state)
{
    uint8_t raw[64];
    size_t n = unhex(REF_VERACK, raw, sizeof(raw));
    struct bm_wire_packet pkt = frame_one(raw, n, BM_WIRE_CMD_VERACK);
    buf_t *b = buf_new(64);

    assert_int_equal(pkt.payload_len, 0);
    assert_non_null(b);
    assert_packet_equals(b, "verack", raw, n);
    buf_free(&b);
}

static void test_ref_error(void **state)
{
    uint8_t raw[256];
    size_t n = unhex(REF_ERROR, raw, sizeof(raw));
    struct bm_wire_packet pkt = frame_one(raw, n, BM_WIRE_CMD_ERROR);
    struct bm_wire_error e;
    static const char text[] = "I'm connected to myself. Closing connection.";

    assert_int_equal(bm_wire_error_parse(pkt.payload, pkt.payload_len, &e), 0);
    assert_int_equal(e.fatal, BM_WIRE_ERR_FATAL);
    assert_int_equal(e.ban_time, 0);
    assert_int_equal(e.inv_len, 0);
    assert_int_equal(e.text_len, strlen(text));
    assert_memory_equal(e.text, text, strlen(text));

    buf_t *b = buf_new(1024);
    assert_non_null(b);
    assert_int_equal(bm_wire_error_build(b, &e), 0);
    assert_packet_equals(b, "error", raw, n);
    buf_free(&b);
}

static void test_ref_addr(void **state)
{
    uint8_t raw[256];
    size_t n = unhex(REF_ADDR, raw, sizeof(raw));
    struct bm_wire_packet pkt = frame_one(raw, n, BM_WIRE_CMD_ADDR);
    struct bm_wire_addr a;
    struct bm_wire_addr_entry e;
    uint8_t ip[16];

    assert_int_equal(bm_wire_addr_parse(pkt.payload, pkt.payload_len, &a), 0);
    assert_int_equal(a.count, 1);
    assert_int_equal(bm_wire_addr_get(&a, 0, &e), 0);
    assert_int_equal(bm_wire_addr_get(&a, 1, &e), PST_ENOENT);
    assert_int_equal(bm_wire_addr_get(&a, 0, &e), 0);
    assert_int_equal(e.time, 1699999000);
    assert_int_equal(e.stream, 1);
    assert_int_equal(e.addr.services, 1);
    v4mapped(ip, 192, 0, 2, 9);
    assert_memory_equal(e.addr.ip, ip, 16);
    assert_int_equal(e.addr.port, 8444);

    buf_t *b = buf_new(1024);
    assert_non_null(b);
    assert_int_equal(bm_wire_addr_build(b, &e, 1), 0);
    assert_packet_equals(b, "addr", raw, n);
    buf_free(&b);
}

static void test_ref_object(void **state)
{
    uint8_t obj[128];
    uint8_t hash[BM_WIRE_INV_LEN];
    uint8_t want[BM_WIRE_INV_LEN];
    uint8_t raw[256];
    size_t on = unhex(REF_OBJ, obj, sizeof(obj));
    size_t n = unhex(REF_OBJPKT, raw, sizeof(raw));
    struct bm_wire_packet pkt = frame_one(raw, n, BM_WIRE_CMD_OBJECT);
    struct bm_wire_object o;

    unhex(REF_INVHASH, want, sizeof(want));
    assert_int_equal(pkt.payload_len, on);
    assert_memory_equal(pkt.payload, obj, on);
    assert_int_equal(bm_wire_object_parse(pkt.payload, pkt.payload_len, &o), 0);
    assert_int_equal(o.nonce, 0x0001020304050607ull);
    assert_int_equal(o.expires, 1700003600);
    assert_int_equal(o.type, BM_WIRE_OBJ_MSG);
    assert_int_equal(o.version, 1);
    assert_int_equal(o.stream, 1);
    assert_int_equal(o.header_len, 22);
    assert_int_equal(o.payload_len, strlen("objectpayload"));
    assert_memory_equal(o.payload, "objectpayload", o.payload_len);
    assert_ptr_equal(o.data, pkt.payload);
    assert_int_equal(o.data_len, on);
    assert_int_equal(bm_wire_inventory_hash(o.data, o.data_len, hash), 0);
    assert_memory_equal(hash, want, sizeof(hash));

    buf_t *b = buf_new(1024);
    assert_non_null(b);
    assert_int_equal(bm_wire_object_build(b, &o), 0);
    assert_packet_equals(b, "object", raw, n);
    buf_free(&b);
}

static void test_cmd_table(void **state)
{
    static const char *names[] = {"version", "verack", "addr", "inv",   "getdata",
                                  "object",  "ping",   "pong", "error", "dinv"};
    for (size_t i = 0; i < PST_ARRAY_LEN(names); i++) {
        enum bm_wire_cmd c = bm_wire_cmd_lookup(names[i]);
        assert_int_not_equal(c, BM_WIRE_CMD_UNKNOWN);
        assert_string_equal(bm_wire_cmd_name(c), names[i]);
    }
    assert_int_equal(bm_wire_cmd_lookup("Version"), BM_WIRE_CMD_UNKNOWN);
    assert_int_equal(bm_wire_cmd_lookup("portcheck"), BM_WIRE_CMD_UNKNOWN);
    assert_string_equal(bm_wire_cmd_name(BM_WIRE_CMD_UNKNOWN), "?");
}

/* Feeding a stream one byte at a time: need-more until the packet is whole. */
static void test_frame_incremental(void **state)
{
    uint8_t raw[512];
    size_t n = unhex(REF_VERSION, raw, sizeof(raw));
    struct bm_wire_packet pkt;
    size_t used = 99;

    for (size_t i = 0; i < n; i++) {
        assert_int_equal(bm_wire_frame(raw, i, &pkt, &used), 0);
        assert_int_equal(used, 0);
    }
    assert_int_equal(bm_wire_frame(raw, n, &pkt, &used), 0);
    assert_int_equal(used, n);
}

static void test_frame_two_packets_and_unknown(void **state)
{
    buf_t *b = buf_new(4096);
    struct bm_wire_packet pkt;
    size_t used = 0;
    static const uint8_t pl[] = {1, 2, 3};

    assert_non_null(b);
    assert_int_equal(bm_wire_packet_build(b, "ping", NULL, 0), 0);
    assert_int_equal(bm_wire_packet_build(b, "portcheck", pl, sizeof(pl)), 0);
    assert_int_equal(bm_wire_packet_build(b, "abcdefghijkl", pl, 1), 0);

    assert_int_equal(bm_wire_frame((uint8_t *)b->data, b->len, &pkt, &used), 0);
    assert_int_equal(used, BM_WIRE_HEADER_LEN);
    assert_int_equal(pkt.cmd, BM_WIRE_CMD_PING);
    buf_consume(b, used);
    assert_int_equal(bm_wire_frame((uint8_t *)b->data, b->len, &pkt, &used), 0);
    assert_int_equal(used, BM_WIRE_HEADER_LEN + sizeof(pl));
    assert_int_equal(pkt.cmd, BM_WIRE_CMD_UNKNOWN);
    assert_string_equal(pkt.command, "portcheck");
    assert_memory_equal(pkt.payload, pl, sizeof(pl));
    buf_consume(b, used);
    assert_int_equal(bm_wire_frame((uint8_t *)b->data, b->len, &pkt, &used), 0);
    assert_string_equal(pkt.command, "abcdefghijkl");
    buf_consume(b, used);
    assert_int_equal(b->len, 0);
    buf_free(&b);
}

static void test_frame_bad_magic(void **state)
{
    uint8_t raw[64];
    size_t n = unhex(REF_VERACK, raw, sizeof(raw));
    struct bm_wire_packet pkt;
    size_t used = 0;

    raw[3] ^= 1;
    assert_int_equal(bm_wire_frame(raw, n, &pkt, &used), PST_EINVAL);
    assert_int_equal(used, 0);
    assert_string_equal(pkt.error, "bad magic");
    /* Detected as soon as the first wrong byte is there. */
    assert_int_equal(bm_wire_frame(raw, 4, &pkt, &used), PST_EINVAL);
    assert_int_equal(bm_wire_frame(raw, 3, &pkt, &used), 0);
    raw[3] ^= 1;
    raw[0] = 'G'; /* "GET / HTTP/1.0" */
    assert_int_equal(bm_wire_frame(raw, 1, &pkt, &used), PST_EINVAL);
    assert_int_equal(bm_wire_frame(raw, 0, &pkt, &used), 0);
}

static void test_frame_bad_commands(void **state)
{
    static const char *bad[] = {
        "7665720073696f6e00000000", /* "ver\0sion" */
        "76657273696f6e0000000001", /* junk in padding */
        "7665722073696f6e00000000", /* space */
        "76657273696f6e0a00000000", /* newline */
        "76657273696f6eff00000000", /* 8-bit */
        "000000000000000000000000", /* all NUL */
    };
    uint8_t raw[64];
    size_t n = unhex(REF_VERACK, raw, sizeof(raw));
    struct bm_wire_packet pkt;
    size_t used = 0;

    for (size_t i = 0; i < PST_ARRAY_LEN(bad); i++) {
        uint8_t cp[64];
        memcpy(cp, raw, n);
        unhex(bad[i], cp + 4, 12);
        assert_int_equal(bm_wire_frame(cp, n, &pkt, &used), PST_EINVAL);
        assert_string_equal(pkt.error, "malformed command");
    }
    buf_t *b = buf_new(1024);
    assert_non_null(b);
    assert_int_equal(bm_wire_packet_build(b, "", NULL, 0), PST_EINVAL);
    assert_int_equal(bm_wire_packet_build(b, "abcdefghijklm", NULL, 0), PST_EINVAL);
    assert_int_equal(bm_wire_packet_build(b, "ver sion", NULL, 0), PST_EINVAL);
    assert_int_equal(bm_wire_packet_build(b, "ver\x01", NULL, 0), PST_EINVAL);
    assert_int_equal(b->len, 0);
    buf_free(&b);
}

static void test_frame_lengths_and_checksum(void **state)
{
    uint8_t raw[256];
    size_t n = unhex(REF_ERROR, raw, sizeof(raw));
    struct bm_wire_packet pkt;
    size_t used = 0;

    /* Bad checksum: the whole packet is there, but it is refused. */
    raw[n - 1] ^= 0x20;
    assert_int_equal(bm_wire_frame(raw, n, &pkt, &used), PST_EINVAL);
    assert_string_equal(pkt.error, "bad checksum");
    raw[n - 1] ^= 0x20;
    raw[20] ^= 0x80;
    assert_int_equal(bm_wire_frame(raw, n, &pkt, &used), PST_EINVAL);
    raw[20] ^= 0x80;

    /* Length one too short: the checksum no longer matches. */
    raw[19] -= 1;
    assert_int_equal(bm_wire_frame(raw, n, &pkt, &used), PST_EINVAL);
    raw[19] += 1;

    /* Lying length: more than we have is "need more", never a read past len. */
    raw[18] = 0x10;
    assert_int_equal(bm_wire_frame(raw, n, &pkt, &used), 0);
    assert_int_equal(used, 0);

    /* Over the limit: refused on the header alone. */
    raw[16] = 0xff;
    raw[17] = 0xff;
    raw[18] = 0xff;
    raw[19] = 0xff;
    assert_int_equal(bm_wire_frame(raw, BM_WIRE_HEADER_LEN, &pkt, &used), PST_ELIMIT);
    assert_string_equal(pkt.error, "payload too large");
    raw[16] = 0;
    raw[17] = 0x18;
    raw[18] = 0x6a;
    raw[19] = 0x65; /* 1600101 */
    assert_int_equal(bm_wire_frame(raw, BM_WIRE_HEADER_LEN, &pkt, &used), PST_ELIMIT);
    raw[19] = 0x64; /* 1600100: allowed, needs more */
    assert_int_equal(bm_wire_frame(raw, BM_WIRE_HEADER_LEN, &pkt, &used), 0);
    assert_int_equal(used, 0);

    buf_t *b = buf_new(BM_WIRE_HEADER_LEN + BM_WIRE_MAX_PAYLOAD + 1);
    uint8_t *big = calloc(1, BM_WIRE_MAX_PAYLOAD + 1);
    assert_non_null(b);
    assert_non_null(big);
    assert_int_equal(bm_wire_packet_build(b, "object", big, BM_WIRE_MAX_PAYLOAD + 1), PST_ELIMIT);
    assert_int_equal(bm_wire_packet_build(b, "object", big, BM_WIRE_MAX_PAYLOAD), 0);
    assert_int_equal(bm_wire_frame((uint8_t *)b->data, b->len, &pkt, &used), 0);
    assert_int_equal(pkt.payload_len, BM_WIRE_MAX_PAYLOAD);
    free(big);
    buf_free(&b);
}

static void test_inv_roundtrip_and_limits(void **state)
{
    size_t max = BM_WIRE_MAX_INV_COUNT + 1;
    uint8_t *vec = malloc(max * BM_WIRE_INV_LEN);
    buf_t *b = buf_new(BM_WIRE_MAX_PAYLOAD);
    struct bm_wire_inv inv;

    assert_non_null(vec);
    assert_non_null(b);
    for (size_t i = 0; i < max * BM_WIRE_INV_LEN; i++)
        vec[i] = (uint8_t)(i * 7);

    assert_int_equal(bm_wire_inv_build(b, vec, 3), 0);
    assert_int_equal(b->len, 1 + 3 * BM_WIRE_INV_LEN);
    assert_int_equal(bm_wire_inv_parse((uint8_t *)b->data, b->len, &inv), 0);
    assert_int_equal(inv.count, 3);
    assert_memory_equal(inv.vectors, vec, 3 * BM_WIRE_INV_LEN);
    /* trailing byte, missing byte */
    assert_int_equal(bm_wire_inv_parse((uint8_t *)b->data, b->len - 1, &inv), PST_EINVAL);
    assert_int_equal(buf_append(b, "x", 1), 0);
    assert_int_equal(bm_wire_inv_parse((uint8_t *)b->data, b->len, &inv), PST_EINVAL);

    buf_reset(b);
    assert_int_equal(bm_wire_inv_build(b, NULL, 0), 0);
    assert_int_equal(bm_wire_inv_parse((uint8_t *)b->data, b->len, &inv), 0);
    assert_int_equal(inv.count, 0);
    assert_int_equal(bm_wire_inv_parse((uint8_t *)b->data, 0, &inv), PST_EINVAL);

    /* 50000 is the limit; it still fits a packet. */
    buf_reset(b);
    assert_int_equal(bm_wire_inv_build(b, vec, BM_WIRE_MAX_INV_COUNT), 0);
    assert_int_equal(bm_wire_inv_parse((uint8_t *)b->data, b->len, &inv), 0);
    assert_int_equal(inv.count, BM_WIRE_MAX_INV_COUNT);
    assert_int_equal(b->len, 1600003); /* the spec's largest inv */
    assert_int_equal(bm_wire_inv_build(b, vec, max), PST_ELIMIT);

    /* 50001 entries on the wire (hand-built: fd c351 + vectors). */
    buf_reset(b);
    static const uint8_t cnt[] = {0xfd, 0xc3, 0x51};
    assert_int_equal(buf_append(b, cnt, sizeof(cnt)), 0);
    assert_int_equal(buf_append(b, vec, max * BM_WIRE_INV_LEN), 0);
    assert_int_equal(bm_wire_inv_parse((uint8_t *)b->data, b->len, &inv), PST_ELIMIT);

    free(vec);
    buf_free(&b);
}

static void test_inv_hostile_counts(void **state)
{
    struct bm_wire_inv inv;
    /* huge var_int */
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    /* count 1000 with 10 bytes */
    static const uint8_t lying[] = {0xfd, 0x03, 0xe8, 1, 2, 3, 4, 5, 6, 7};
    /* non-minimal encodings of 1 */
    static const uint8_t nm16[3 + 32] = {0xfd, 0x00, 0x01};
    static const uint8_t nm32[5 + 32] = {0xfe, 0x00, 0x00, 0x00, 0x01};
    static const uint8_t nm64[9 + 32] = {0xff, 0, 0, 0, 0, 0, 0, 0, 1};
    /* 0xfd 0x00 0xfc (252) is also non-minimal; 0xfd 0x00 0xfd (253) is fine */
    static const uint8_t nm252[] = {0xfd, 0x00, 0xfc};
    /* truncated var_ints */
    static const uint8_t tr[] = {0xfe, 0x00, 0x01};

    assert_int_equal(bm_wire_inv_parse(huge, sizeof(huge), &inv), PST_ELIMIT);
    assert_int_equal(bm_wire_inv_parse(lying, sizeof(lying), &inv), PST_EINVAL);
    assert_int_equal(bm_wire_inv_parse(nm16, sizeof(nm16), &inv), PST_EINVAL);
    assert_int_equal(bm_wire_inv_parse(nm32, sizeof(nm32), &inv), PST_EINVAL);
    assert_int_equal(bm_wire_inv_parse(nm64, sizeof(nm64), &inv), PST_EINVAL);
    assert_int_equal(bm_wire_inv_parse(nm252, sizeof(nm252), &inv), PST_EINVAL);
    assert_int_equal(bm_wire_inv_parse(tr, sizeof(tr), &inv), PST_EINVAL);
    assert_int_equal(bm_wire_inv_parse(tr, 1, &inv), PST_EINVAL);
}

static void test_addr_roundtrip_and_limits(void **state)
{
    size_t max = BM_WIRE_MAX_ADDR_COUNT + 1;
    struct bm_wire_addr_entry *e = calloc(max, sizeof(*e));
    struct bm_wire_addr_entry got;
    struct bm_wire_addr a;
    buf_t *b = buf_new(BM_WIRE_MAX_PAYLOAD);

    assert_non_null(e);
    assert_non_null(b);
    for (size_t i = 0; i < max; i++) {
        e[i].time = 1700000000 + i;
        e[i].stream = (uint32_t)(i % 3 + 1);
        e[i].addr.services = i;
        v4mapped(e[i].addr.ip, 10, 0, (uint8_t)(i >> 8), (uint8_t)i);
        e[i].addr.port = (uint16_t)(8444 + i);
    }
    assert_int_equal(bm_wire_addr_build(b, e, BM_WIRE_MAX_ADDR_COUNT), 0);
    assert_int_equal(bm_wire_addr_parse((uint8_t *)b->data, b->len, &a), 0);
    assert_int_equal(a.count, BM_WIRE_MAX_ADDR_COUNT);
    for (size_t i = 0; i < a.count; i += 97) {
        assert_int_equal(bm_wire_addr_get(&a, i, &got), 0);
        assert_int_equal(got.time, e[i].time);
        assert_int_equal(got.stream, e[i].stream);
        assert_int_equal(got.addr.services, e[i].addr.services);
        assert_memory_equal(got.addr.ip, e[i].addr.ip, 16);
        assert_int_equal(got.addr.port, e[i].addr.port);
    }
    assert_int_equal(bm_wire_addr_parse((uint8_t *)b->data, b->len - 1, &a), PST_EINVAL);
    assert_int_equal(bm_wire_addr_build(b, e, max), PST_ELIMIT);

    /* 1001 on the wire */
    buf_reset(b);
    static const uint8_t cnt[] = {0xfd, 0x03, 0xe9};
    assert_int_equal(buf_append(b, cnt, sizeof(cnt)), 0);
    for (size_t i = 0; i < max; i++)
        assert_int_equal(buf_append(b, "0123456789012345678901234567890123456789", 38), 0);
    assert_int_equal(bm_wire_addr_parse((uint8_t *)b->data, b->len, &a), PST_ELIMIT);
    /* lying count: 2 entries announced, 1 present */
    static const uint8_t two[1 + 38] = {2};
    assert_int_equal(bm_wire_addr_parse(two, sizeof(two), &a), PST_EINVAL);
    free(e);
    buf_free(&b);
}

static struct bm_wire_version sample_version(void)
{
    struct bm_wire_version v;
    memset(&v, 0, sizeof(v));
    v.protocol_version = BM_WIRE_PROTOCOL_VERSION;
    v.services = BM_WIRE_NODE_NETWORK;
    v.timestamp = -5; /* signed on the wire: must round-trip */
    v4mapped(v.addr_recv.ip, 198, 51, 100, 1);
    v.addr_recv.port = 8444;
    v.addr_from.services = 1;
    v.nonce = UINT64_MAX;
    v.user_agent = (const uint8_t *)UA;
    v.user_agent_len = strlen(UA);
    return v;
}

static void test_version_roundtrip_and_truncation(void **state)
{
    struct bm_wire_version v = sample_version();
    struct bm_wire_version w;
    uint64_t streams[] = {1, 252, 253, 65535, 65536, 0xffffffffull, 0x100000000ull, UINT64_MAX};
    buf_t *b = buf_new(BM_WIRE_MAX_PAYLOAD);
    uint64_t s = 0;
    size_t pos = 0;

    assert_non_null(b);
    assert_int_equal(bm_wire_version_build(b, &v, streams, PST_ARRAY_LEN(streams)), 0);
    assert_int_equal(bm_wire_version_parse((uint8_t *)b->data, b->len, &w), 0);
    assert_int_equal(w.timestamp, -5);
    assert_int_equal(w.nonce, UINT64_MAX);
    assert_int_equal(w.nstreams, PST_ARRAY_LEN(streams));
    for (size_t i = 0; i < PST_ARRAY_LEN(streams); i++) {
        assert_int_equal(bm_wire_version_stream_next(&w, &pos, &s), 0);
        assert_int_equal(s, streams[i]);
    }
    assert_int_equal(bm_wire_version_stream_next(&w, &pos, &s), PST_ENOENT);

    /* Every proper prefix is refused. */
    for (size_t n = 0; n < b->len; n++)
        assert_int_not_equal(bm_wire_version_parse((uint8_t *)b->data, n, &w), 0);
    /* Trailing bytes are tolerated (as the reference does). */
    assert_int_equal(buf_append(b, "zz", 2), 0);
    assert_int_equal(bm_wire_version_parse((uint8_t *)b->data, b->len, &w), 0);
    assert_int_equal(w.nstreams, PST_ARRAY_LEN(streams));

    /* Builder limits. */
    buf_reset(b);
    assert_int_equal(bm_wire_version_build(b, &v, streams, 0), PST_EINVAL);
    v.user_agent_len = BM_WIRE_MAX_USER_AGENT + 1;
    assert_int_equal(bm_wire_version_build(b, &v, streams, 1), PST_ELIMIT);
    v.user_agent_len = strlen(UA);
    assert_int_equal(bm_wire_version_build(b, &v, streams, BM_WIRE_MAX_STREAMS + 1), PST_ELIMIT);
    buf_free(&b);
}

/* Build a version payload by hand up to the user agent (80 fixed bytes). */
static size_t version_fixed(uint8_t *p)
{
    memset(p, 0, 80);
    p[3] = 3;
    return 80;
}

static void test_version_hostile(void **state)
{
    static uint8_t p[6000];
    struct bm_wire_version v;
    size_t n = version_fixed(p);

    /* user agent of 5001 bytes: over the limit */
    p[n] = 0xfd;
    p[n + 1] = 0x13;
    p[n + 2] = 0x89;
    memset(p + n + 3, 'a', 5001);
    p[n + 3 + 5001] = 1;
    p[n + 4 + 5001] = 1;
    assert_int_equal(bm_wire_version_parse(p, n + 5 + 5001, &v), PST_ELIMIT);
    /* 5000 is fine */
    p[n + 2] = 0x88;
    p[n + 3 + 5000] = 1;
    p[n + 4 + 5000] = 1;
    assert_int_equal(bm_wire_version_parse(p, n + 5 + 5000, &v), 0);
    assert_int_equal(v.user_agent_len, 5000);
    /* user agent length lying past the end */
    assert_int_equal(bm_wire_version_parse(p, n + 100, &v), PST_EINVAL);
    /* non-minimal user agent length (fd 00 05) */
    p[n] = 0xfd;
    p[n + 1] = 0;
    p[n + 2] = 5;
    p[n + 8] = 1;
    p[n + 9] = 1;
    assert_int_equal(bm_wire_version_parse(p, n + 10, &v), PST_EINVAL);

    /* stream count 160001: limit; 160000 with few bytes: lying */
    p[n] = 0;
    uint8_t c1[] = {0xfe, 0x00, 0x02, 0x71, 0x01};
    memcpy(p + n + 1, c1, sizeof(c1));
    memset(p + n + 6, 1, 100);
    assert_int_equal(bm_wire_version_parse(p, n + 106, &v), PST_ELIMIT);
    p[n + 5] = 0x00;
    assert_int_equal(bm_wire_version_parse(p, n + 106, &v), PST_EINVAL);
    /* huge count */
    memset(p + n + 1, 0xff, 9);
    assert_int_equal(bm_wire_version_parse(p, n + 106, &v), PST_ELIMIT);
    /* non-minimal stream value: count 1, stream fd 00 01 */
    uint8_t c2[] = {1, 0xfd, 0x00, 0x01};
    memcpy(p + n + 1, c2, sizeof(c2));
    assert_int_equal(bm_wire_version_parse(p, n + 5, &v), PST_EINVAL);
    /* two streams announced, one present */
    uint8_t c3[] = {2, 1};
    memcpy(p + n + 1, c3, sizeof(c3));
    assert_int_equal(bm_wire_version_parse(p, n + 3, &v), PST_EINVAL);
}

static void test_error_roundtrip_and_hostile(void **state)
{
    uint8_t inv[BM_WIRE_INV_LEN];
    struct bm_wire_error e = {
        BM_WIRE_ERR_ERROR, 3600, inv, sizeof(inv), (const uint8_t *)"bad\0\x1b[31mtext", 13};
    struct bm_wire_error f;
    buf_t *b = buf_new(1024);

    memset(inv, 0xab, sizeof(inv));
    assert_non_null(b);
    assert_int_equal(bm_wire_error_build(b, &e), 0);
    assert_int_equal(bm_wire_error_parse((uint8_t *)b->data, b->len, &f), 0);
    assert_int_equal(f.fatal, 1);
    assert_int_equal(f.ban_time, 3600);
    assert_int_equal(f.inv_len, BM_WIRE_INV_LEN);
    assert_memory_equal(f.inv, inv, sizeof(inv));
    assert_int_equal(f.text_len, 13);
    assert_memory_equal(f.text, "bad\0\x1b[31mtext", 13);
    for (size_t n = 0; n < b->len; n++)
        assert_int_not_equal(bm_wire_error_parse((uint8_t *)b->data, n, &f), 0);
    assert_int_equal(buf_append(b, "x", 1), 0);
    assert_int_equal(bm_wire_error_parse((uint8_t *)b->data, b->len, &f), PST_EINVAL);

    e.inv_len = 5;
    assert_int_equal(bm_wire_error_build(b, &e), PST_EINVAL);
    static const uint8_t inv5[] = {0, 0, 5, 1, 2, 3, 4, 5, 0};
    assert_int_not_equal(bm_wire_error_parse(inv5, sizeof(inv5), &f), 0);
    static const uint8_t lying[] = {0, 0, 0, 0xfd, 0xff, 0xff, 'a'};
    assert_int_equal(bm_wire_error_parse(lying, sizeof(lying), &f), PST_EINVAL);
    buf_free(&b);
}

static void test_object_roundtrip_and_hostile(void **state)
{
    uint8_t *big = calloc(1, BM_WIRE_MAX_OBJECT_PAYLOAD + 1);
    struct bm_wire_object o;
    struct bm_wire_object p;
    buf_t *b = buf_new(BM_WIRE_MAX_PAYLOAD);

    assert_non_null(big);
    assert_non_null(b);
    memset(&o, 0, sizeof(o));
    o.nonce = 42;
    o.expires = 1700000000;
    o.type = 0x61646472; /* unknown types are carried as they are */
    o.version = 70000;
    o.stream = 300;
    o.payload = big;
    o.payload_len = BM_WIRE_MAX_OBJECT_PAYLOAD;
    assert_int_equal(bm_wire_object_build(b, &o), 0);
    assert_int_equal(bm_wire_object_parse((uint8_t *)b->data, b->len, &p), 0);
    assert_int_equal(p.nonce, 42);
    assert_int_equal(p.type, 0x61646472);
    assert_int_equal(p.version, 70000);
    assert_int_equal(p.stream, 300);
    assert_int_equal(p.header_len, 20 + 5 + 3);
    assert_int_equal(p.payload_len, BM_WIRE_MAX_OBJECT_PAYLOAD);
    assert_int_equal(p.data_len, b->len);
    for (size_t n = 0; n < p.header_len; n++)
        assert_int_equal(bm_wire_object_parse((uint8_t *)b->data, n, &p), PST_EINVAL);
    assert_int_equal(bm_wire_object_parse((uint8_t *)b->data, 28, &p), 0);
    assert_int_equal(p.payload_len, 0);
    /* one byte too many */
    assert_int_equal(buf_append(b, "x", 1), 0);
    assert_int_equal(bm_wire_object_parse((uint8_t *)b->data, b->len, &p), PST_ELIMIT);
    o.payload_len = BM_WIRE_MAX_OBJECT_PAYLOAD + 1;
    assert_int_equal(bm_wire_object_build(b, &o), PST_ELIMIT);

    /* non-minimal version var_int */
    static const uint8_t nm[] = {0, 0, 0, 0, 0, 0, 0, 0,    0, 0, 0, 0, 0,
                                 0, 0, 0, 0, 0, 0, 2, 0xfe, 0, 0, 0, 4, 1};
    assert_int_equal(bm_wire_object_parse(nm, sizeof(nm), &p), PST_EINVAL);
    free(big);
    buf_free(&b);
}

static void test_hash_vectors(void **state)
{
    /* spec: double SHA-512 of "hello" starts 0592a105... */
    uint8_t h[BM_WIRE_INV_LEN];
    uint8_t c[BM_WIRE_CHECKSUM_LEN];
    static const uint8_t want[] = {0x05, 0x92, 0xa1, 0x05, 0x84, 0xff, 0xab, 0xf9};
    static const uint8_t empty_sum[] = {0xcf, 0x83, 0xe1, 0x35};

    assert_int_equal(bm_wire_inventory_hash((const uint8_t *)"hello", 5, h), 0);
    assert_memory_equal(h, want, sizeof(want));
    assert_int_equal(bm_wire_checksum(NULL, 0, c), 0);
    assert_memory_equal(c, empty_sum, sizeof(c));
}

static void test_builders_respect_buf_limit(void **state)
{
    struct bm_wire_version v = sample_version();
    uint64_t one = 1;
    buf_t *b = buf_new(40);
    uint8_t vec[2 * BM_WIRE_INV_LEN] = {0};

    assert_non_null(b);
    assert_int_equal(bm_wire_version_build(b, &v, &one, 1), PST_ELIMIT);
    buf_reset(b);
    assert_int_equal(bm_wire_inv_build(b, vec, 2), PST_ELIMIT);
    buf_reset(b);
    assert_int_equal(bm_wire_packet_build(b, "inv", vec, sizeof(vec)), PST_ELIMIT);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref_version),
        cmocka_unit_test(test_ref_version_ipv6_streams),
        cmocka_unit_test(test_ref_verack),
        cmocka_unit_test(test_ref_error),
        cmocka_unit_test(test_ref_addr),
        cmocka_unit_test(test_ref_object),
        cmocka_unit_test(test_cmd_table),
        cmocka_unit_test(test_frame_incremental),
        cmocka_unit_test(test_frame_two_packets_and_unknown),
        cmocka_unit_test(test_frame_bad_magic),
        cmocka_unit_test(test_frame_bad_commands),
        cmocka_unit_test(test_frame_lengths_and_checksum),
        cmocka_unit_test(test_inv_roundtrip_and_limits),
        cmocka_unit_test(test_inv_hostile_counts),
        cmocka_unit_test(test_addr_roundtrip_and_limits),
        cmocka_unit_test(test_version_roundtrip_and_truncation),
        cmocka_unit_test(test_version_hostile),
        cmocka_unit_test(test_error_roundtrip_and_hostile),
        cmocka_unit_test(test_object_roundtrip_and_hostile),
        cmocka_unit_test(test_hash_vectors),
        cmocka_unit_test(test_builders_respect_buf_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
