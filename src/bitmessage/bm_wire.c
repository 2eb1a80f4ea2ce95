/*
 * bm_wire.c - Bitmessage protocol v3 message layer (framing and payloads).
 *
 * Sources: the Bitmessage "Protocol specification" (PyBitmessage
 * docs/protocol.rst) and the reference client's behaviour (src/protocol.py,
 * src/network/bmproto.py, src/addresses.py). All integers are big endian.
 *
 * Packet (24-byte header + payload):
 *   magic     u32   0xE9BEB4D9
 *   command   char[12] ASCII, NUL padded; after the first NUL only NULs
 *   length    u32   payload length, <= 1600100 (MAX_MESSAGE_SIZE)
 *   checksum  4     first 4 bytes of SHA-512(payload)
 *
 * var_int: < 0xfd one byte; 0xfd + u16; 0xfe + u32; 0xff + u64. A value
 *   must use the shortest form (protocol v3; addresses.decodeVarint), else
 *   it is malformed. var_str = var_int length + bytes.
 *
 * version:  u32 protocol, u64 services, i64 timestamp, net_addr recv,
 *           net_addr from, u64 nonce, var_str user_agent (<= 5000),
 *           var_int count (<= 160000) + count var_int streams
 *   net_addr (version form, 26 bytes): u64 services, ip[16], u16 port
 * verack, ping, pong: no payload we read
 * addr:     var_int count (<= 1000) + count * { u64 time, u32 stream,
 *           u64 services, ip[16], u16 port } (38 bytes each)
 * inv, getdata, dinv: var_int count (<= 50000) + count * 32-byte vectors
 * error:    var_int fatal, var_int ban_time, var_str inventory vector,
 *           var_str text
 * object:   u64 nonce, u64 expiresTime, u32 objectType, var_int version,
 *           var_int stream, objectPayload (<= 2^18 bytes, as the reference
 *           checks it: the bytes after the header)
 * Inventory vector = first 32 bytes of SHA-512(SHA-512(object)), object
 * being the whole "object" packet payload from the nonce on
 * (highlevelcrypto.calculateInventoryHash over BMProto.payload).
 *
 * Framing failure policy, as PyBitmessage on TCP (bmproto.py
 * state_bm_header / state_bm_command): bad magic closes the connection (it
 * does not hunt for the next magic on a stream); a length over
 * MAX_MESSAGE_SIZE and a bad checksum mark the packet invalid, which closes
 * the connection. Here all three are errors that the caller turns into a
 * close; we reject an oversized length at once instead of first reading it.
 * Unknown but well-formed commands are handed up as BM_WIRE_CMD_UNKNOWN and
 * ignored (spec: nodes must silently ignore unsupported messages).
 *
 * Parsers never read past len and never allocate: every count is checked
 * against its protocol limit and against the bytes that remain (each item
 * takes at least one byte) before it is used. Results are borrowed views.
 * Nothing here aborts on network input.
 *
 * The var_int helpers are private on purpose (bm_encode.c has the public
 * ones; the two share the same strictness and will be merged).
 */
#include "bitmessage/bm_wire.h"

#include "bitmessage/bm_encode.h"

#include <string.h>

#include <openssl/evp.h>

#define BM_WIRE_SHA512_LEN 64

/* Command table: the one place that names the commands we understand. */
static const struct bm_wire_cmd_row {
    enum bm_wire_cmd cmd;
    const char *name;
} bm_wire_cmds[] = {
    {BM_WIRE_CMD_VERSION, "version"}, {BM_WIRE_CMD_VERACK, "verack"},
    {BM_WIRE_CMD_ADDR, "addr"},       {BM_WIRE_CMD_INV, "inv"},
    {BM_WIRE_CMD_GETDATA, "getdata"}, {BM_WIRE_CMD_OBJECT, "object"},
    {BM_WIRE_CMD_PING, "ping"},       {BM_WIRE_CMD_PONG, "pong"},
    {BM_WIRE_CMD_ERROR, "error"},     {BM_WIRE_CMD_DINV, "dinv"},
};

/* ---- bounded reader ---- */

struct bm_wire_rd {
    const uint8_t *p;
    size_t left;
};

static int bm_wire_rd_bytes(struct bm_wire_rd *r, size_t n, const uint8_t **out)
{
    if (n > r->left)
        return PST_EINVAL;
    *out = r->p;
    r->p += n;
    r->left -= n;
    return 0;
}

static uint64_t bm_wire_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

static int bm_wire_rd_uint(struct bm_wire_rd *r, size_t n, uint64_t *out)
{
    const uint8_t *p = NULL;
    int rc = bm_wire_rd_bytes(r, n, &p);
    if (rc < 0)
        return rc;
    *out = bm_wire_be(p, n);
    return 0;
}

/* bm_wire_rd_varint - strict var_int (bm_encode's decoder): truncated or non-minimal is PST_EINVAL.
 */
static int bm_wire_rd_varint(struct bm_wire_rd *r, uint64_t *out)
{
    size_t used = 0;
    int rc = bm_varint_decode(r->p, r->left, out, &used);
    if (rc < 0)
        return rc;
    r->p += used;
    r->left -= used;
    return 0;
}

/* bm_wire_rd_count - a var_int count, <= limit (PST_ELIMIT) and small enough
 * that count items of at least item_min bytes fit in what is left (PST_EINVAL). */
static int bm_wire_rd_count(struct bm_wire_rd *r, uint64_t limit, size_t item_min, size_t *count)
{
    uint64_t v = 0;
    int rc = bm_wire_rd_varint(r, &v);
    if (rc < 0)
        return rc;
    if (v > limit)
        return PST_ELIMIT;
    if (item_min > 0 && v > r->left / item_min)
        return PST_EINVAL;
    *count = (size_t)v;
    return 0;
}

/* bm_wire_rd_varstr - var_str of at most limit bytes, as a borrowed view. */
static int bm_wire_rd_varstr(struct bm_wire_rd *r, uint64_t limit, const uint8_t **s, size_t *n)
{
    size_t len = 0;
    int rc = bm_wire_rd_count(r, limit, 1, &len);
    if (rc < 0)
        return rc;
    *n = len;
    return bm_wire_rd_bytes(r, len, s);
}

/* ---- writer helpers ---- */

static void bm_wire_put_be(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = n; i > 0; i--) {
        p[i - 1] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

static int bm_wire_put_uint(buf_t *out, uint64_t v, size_t n)
{
    uint8_t tmp[8];
    bm_wire_put_be(tmp, v, n);
    return buf_append(out, tmp, n);
}

static int bm_wire_put_varint(buf_t *out, uint64_t v)
{
    return bm_put_varint(out, v);
}

static int bm_wire_put_varstr(buf_t *out, const uint8_t *s, size_t n)
{
    return bm_put_varstr(out, s, n);
}

/* ---- hashing ---- */

static int bm_wire_sha512(const uint8_t *data, size_t len, uint8_t out[BM_WIRE_SHA512_LEN])
{
    unsigned int outlen = 0;
    static const uint8_t empty[1] = {0};
    if (EVP_Digest(len ? data : empty, len, out, &outlen, EVP_sha512(), NULL) != 1 ||
        outlen != BM_WIRE_SHA512_LEN)
        return PST_ENOMEM;
    return 0;
}

int bm_wire_checksum(const uint8_t *data, size_t len, uint8_t out[BM_WIRE_CHECKSUM_LEN])
{
    uint8_t md[BM_WIRE_SHA512_LEN];
    int rc = bm_wire_sha512(data, len, md);
    if (rc < 0)
        return rc;
    memcpy(out, md, BM_WIRE_CHECKSUM_LEN);
    return 0;
}

int bm_wire_inventory_hash(const uint8_t *object, size_t len, uint8_t out[BM_WIRE_INV_LEN])
{
    uint8_t md[BM_WIRE_SHA512_LEN];
    uint8_t md2[BM_WIRE_SHA512_LEN];
    int rc = bm_wire_sha512(object, len, md);
    if (rc < 0)
        return rc;
    rc = bm_wire_sha512(md, sizeof(md), md2);
    if (rc < 0)
        return rc;
    memcpy(out, md2, BM_WIRE_INV_LEN);
    return 0;
}

/* ---- commands and framing ---- */

const char *bm_wire_cmd_name(enum bm_wire_cmd cmd)
{
    for (size_t i = 0; i < PST_ARRAY_LEN(bm_wire_cmds); i++)
        if (bm_wire_cmds[i].cmd == cmd)
            return bm_wire_cmds[i].name;
    return "?";
}

enum bm_wire_cmd bm_wire_cmd_lookup(const char *name)
{
    for (size_t i = 0; i < PST_ARRAY_LEN(bm_wire_cmds); i++)
        if (strcmp(bm_wire_cmds[i].name, name) == 0)
            return bm_wire_cmds[i].cmd;
    return BM_WIRE_CMD_UNKNOWN;
}

static int bm_wire_cmd_char_ok(uint8_t c)
{
    return c > 0x20 && c < 0x7f;
}

/* bm_wire_command_decode - 12 raw bytes to a C string: 1..12 printable
 * characters, then only NULs. */
static int bm_wire_command_decode(const uint8_t *raw, char out[BM_WIRE_COMMAND_LEN + 1])
{
    size_t n = 0;
    while (n < BM_WIRE_COMMAND_LEN && raw[n] != 0) {
        if (!bm_wire_cmd_char_ok(raw[n]))
            return PST_EINVAL;
        out[n] = (char)raw[n];
        n++;
    }
    out[n] = '\0';
    if (n == 0)
        return PST_EINVAL;
    for (size_t i = n; i < BM_WIRE_COMMAND_LEN; i++)
        if (raw[i] != 0)
            return PST_EINVAL;
    return 0;
}

static int bm_wire_frame_fail(struct bm_wire_packet *pkt, int rc, const char *why)
{
    pkt->error = why;
    return rc;
}

int bm_wire_frame(const uint8_t *in, size_t len, struct bm_wire_packet *pkt, size_t *consumed)
{
    uint8_t sum[BM_WIRE_CHECKSUM_LEN];
    uint64_t plen = 0;
    int rc = 0;

    *consumed = 0;
    pkt->error = NULL;
    if (len < BM_WIRE_HEADER_LEN) {
        /* Judge the magic early: garbage need not wait for 24 bytes. */
        for (size_t i = 0; i < len && i < 4; i++)
            if (in[i] != (uint8_t)(BM_WIRE_MAGIC >> (24 - 8 * i)))
                return bm_wire_frame_fail(pkt, PST_EINVAL, "bad magic");
        return 0;
    }
    if (bm_wire_be(in, 4) != BM_WIRE_MAGIC)
        return bm_wire_frame_fail(pkt, PST_EINVAL, "bad magic");
    if (bm_wire_command_decode(in + 4, pkt->command) < 0)
        return bm_wire_frame_fail(pkt, PST_EINVAL, "malformed command");
    plen = bm_wire_be(in + 16, 4);
    if (plen > BM_WIRE_MAX_PAYLOAD)
        return bm_wire_frame_fail(pkt, PST_ELIMIT, "payload too large");
    if (len - BM_WIRE_HEADER_LEN < plen)
        return 0;
    rc = bm_wire_checksum(in + BM_WIRE_HEADER_LEN, (size_t)plen, sum);
    if (rc < 0)
        return bm_wire_frame_fail(pkt, rc, "checksum failed");
    if (memcmp(sum, in + 20, BM_WIRE_CHECKSUM_LEN) != 0)
        return bm_wire_frame_fail(pkt, PST_EINVAL, "bad checksum");
    pkt->cmd = bm_wire_cmd_lookup(pkt->command);
    pkt->payload = in + BM_WIRE_HEADER_LEN;
    pkt->payload_len = (size_t)plen;
    *consumed = BM_WIRE_HEADER_LEN + (size_t)plen;
    return 0;
}

int bm_wire_packet_build(buf_t *out, const char *command, const uint8_t *payload,
                         size_t payload_len)
{
    uint8_t hdr[BM_WIRE_HEADER_LEN];
    size_t n = strnlen(command, BM_WIRE_COMMAND_LEN + 1);
    int rc = 0;

    if (n == 0 || n > BM_WIRE_COMMAND_LEN)
        return PST_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!bm_wire_cmd_char_ok((uint8_t)command[i]))
            return PST_EINVAL;
    if (payload_len > BM_WIRE_MAX_PAYLOAD)
        return PST_ELIMIT;
    memset(hdr, 0, sizeof(hdr));
    bm_wire_put_be(hdr, BM_WIRE_MAGIC, 4);
    memcpy(hdr + 4, command, n);
    bm_wire_put_be(hdr + 16, payload_len, 4);
    rc = bm_wire_checksum(payload, payload_len, hdr + 20);
    if (rc < 0)
        return rc;
    rc = buf_append(out, hdr, sizeof(hdr));
    if (rc < 0 || payload_len == 0)
        return rc;
    return buf_append(out, payload, payload_len);
}

/* ---- net_addr ---- */

static int bm_wire_rd_net_addr(struct bm_wire_rd *r, struct bm_wire_net_addr *a)
{
    const uint8_t *ip = NULL;
    uint64_t port = 0;
    int rc = bm_wire_rd_uint(r, 8, &a->services);
    if (rc == 0)
        rc = bm_wire_rd_bytes(r, sizeof(a->ip), &ip);
    if (rc == 0)
        rc = bm_wire_rd_uint(r, 2, &port);
    if (rc < 0)
        return rc;
    memcpy(a->ip, ip, sizeof(a->ip));
    a->port = (uint16_t)port;
    return 0;
}

static int bm_wire_put_net_addr(buf_t *out, const struct bm_wire_net_addr *a)
{
    int rc = bm_wire_put_uint(out, a->services, 8);
    if (rc == 0)
        rc = buf_append(out, a->ip, sizeof(a->ip));
    if (rc == 0)
        rc = bm_wire_put_uint(out, a->port, 2);
    return rc;
}

/* ---- version ---- */

int bm_wire_version_build(buf_t *out, const struct bm_wire_version *v, const uint64_t *streams,
                          size_t nstreams)
{
    int rc = 0;
    if (v->user_agent_len > BM_WIRE_MAX_USER_AGENT || nstreams > BM_WIRE_MAX_STREAMS)
        return PST_ELIMIT;
    if (nstreams == 0)
        return PST_EINVAL;
    rc = bm_wire_put_uint(out, v->protocol_version, 4);
    if (rc == 0)
        rc = bm_wire_put_uint(out, v->services, 8);
    if (rc == 0)
        rc = bm_wire_put_uint(out, (uint64_t)v->timestamp, 8);
    if (rc == 0)
        rc = bm_wire_put_net_addr(out, &v->addr_recv);
    if (rc == 0)
        rc = bm_wire_put_net_addr(out, &v->addr_from);
    if (rc == 0)
        rc = bm_wire_put_uint(out, v->nonce, 8);
    if (rc == 0)
        rc = bm_wire_put_varstr(out, v->user_agent, v->user_agent_len);
    if (rc == 0)
        rc = bm_wire_put_varint(out, nstreams);
    for (size_t i = 0; rc == 0 && i < nstreams; i++)
        rc = bm_wire_put_varint(out, streams[i]);
    return rc;
}

int bm_wire_version_parse(const uint8_t *p, size_t len, struct bm_wire_version *v)
{
    struct bm_wire_rd r = {p, len};
    uint64_t u = 0;
    int rc = 0;

    memset(v, 0, sizeof(*v));
    rc = bm_wire_rd_uint(&r, 4, &u);
    if (rc < 0)
        return rc;
    v->protocol_version = (uint32_t)u;
    rc = bm_wire_rd_uint(&r, 8, &v->services);
    if (rc == 0)
        rc = bm_wire_rd_uint(&r, 8, &u);
    if (rc < 0)
        return rc;
    v->timestamp = (int64_t)u;
    rc = bm_wire_rd_net_addr(&r, &v->addr_recv);
    if (rc == 0)
        rc = bm_wire_rd_net_addr(&r, &v->addr_from);
    if (rc == 0)
        rc = bm_wire_rd_uint(&r, 8, &v->nonce);
    if (rc == 0)
        rc = bm_wire_rd_varstr(&r, BM_WIRE_MAX_USER_AGENT, &v->user_agent, &v->user_agent_len);
    if (rc == 0)
        rc = bm_wire_rd_count(&r, BM_WIRE_MAX_STREAMS, 1, &v->nstreams);
    if (rc < 0)
        return rc;
    v->streams_data = r.p;
    for (size_t i = 0; i < v->nstreams; i++) {
        rc = bm_wire_rd_varint(&r, &u);
        if (rc < 0)
            return rc;
    }
    v->streams_len = (size_t)(r.p - v->streams_data);
    return 0;
}

int bm_wire_version_stream_next(const struct bm_wire_version *v, size_t *pos, uint64_t *stream)
{
    struct bm_wire_rd r;
    int rc = 0;
    if (*pos >= v->streams_len)
        return PST_ENOENT;
    r.p = v->streams_data + *pos;
    r.left = v->streams_len - *pos;
    rc = bm_wire_rd_varint(&r, stream);
    if (rc < 0)
        return rc;
    *pos = (size_t)(r.p - v->streams_data);
    return 0;
}

int bm_wire_version_has_stream(const struct bm_wire_version *v, uint64_t stream)
{
    size_t pos = 0;
    uint64_t s = 0;
    while (bm_wire_version_stream_next(v, &pos, &s) == 0)
        if (s == stream)
            return 1;
    return 0;
}

/* ---- addr ---- */

int bm_wire_addr_build(buf_t *out, const struct bm_wire_addr_entry *entries, size_t count)
{
    int rc = 0;
    if (count > BM_WIRE_MAX_ADDR_COUNT)
        return PST_ELIMIT;
    rc = bm_wire_put_varint(out, count);
    for (size_t i = 0; rc == 0 && i < count; i++) {
        rc = bm_wire_put_uint(out, entries[i].time, 8);
        if (rc == 0)
            rc = bm_wire_put_uint(out, entries[i].stream, 4);
        if (rc == 0)
            rc = bm_wire_put_net_addr(out, &entries[i].addr);
    }
    return rc;
}

int bm_wire_addr_parse(const uint8_t *p, size_t len, struct bm_wire_addr *a)
{
    struct bm_wire_rd r = {p, len};
    size_t count = 0;
    int rc = bm_wire_rd_count(&r, BM_WIRE_MAX_ADDR_COUNT, BM_WIRE_ADDR_ENTRY_LEN, &count);
    if (rc < 0)
        return rc;
    if (r.left != count * BM_WIRE_ADDR_ENTRY_LEN)
        return PST_EINVAL;
    a->entries = r.p;
    a->count = count;
    return 0;
}

int bm_wire_addr_get(const struct bm_wire_addr *a, size_t i, struct bm_wire_addr_entry *e)
{
    struct bm_wire_rd r;
    uint64_t stream = 0;
    int rc = 0;
    if (i >= a->count)
        return PST_ENOENT;
    r.p = a->entries + i * BM_WIRE_ADDR_ENTRY_LEN;
    r.left = BM_WIRE_ADDR_ENTRY_LEN;
    rc = bm_wire_rd_uint(&r, 8, &e->time);
    if (rc == 0)
        rc = bm_wire_rd_uint(&r, 4, &stream);
    if (rc == 0)
        rc = bm_wire_rd_net_addr(&r, &e->addr);
    e->stream = (uint32_t)stream;
    return rc;
}

/* ---- inv / getdata / dinv ---- */

int bm_wire_inv_build(buf_t *out, const uint8_t *vectors, size_t count)
{
    int rc = 0;
    if (count > BM_WIRE_MAX_INV_COUNT)
        return PST_ELIMIT;
    rc = bm_wire_put_varint(out, count);
    if (rc < 0 || count == 0)
        return rc;
    return buf_append(out, vectors, count * BM_WIRE_INV_LEN);
}

int bm_wire_inv_parse(const uint8_t *p, size_t len, struct bm_wire_inv *inv)
{
    struct bm_wire_rd r = {p, len};
    size_t count = 0;
    int rc = bm_wire_rd_count(&r, BM_WIRE_MAX_INV_COUNT, BM_WIRE_INV_LEN, &count);
    if (rc < 0)
        return rc;
    if (r.left != count * BM_WIRE_INV_LEN)
        return PST_EINVAL;
    inv->vectors = r.p;
    inv->count = count;
    return 0;
}

/* ---- error ---- */

int bm_wire_error_build(buf_t *out, const struct bm_wire_error *e)
{
    int rc = 0;
    if (e->inv_len != 0 && e->inv_len != BM_WIRE_INV_LEN)
        return PST_EINVAL;
    if (e->text_len > BM_WIRE_MAX_PAYLOAD)
        return PST_ELIMIT;
    rc = bm_wire_put_varint(out, e->fatal);
    if (rc == 0)
        rc = bm_wire_put_varint(out, e->ban_time);
    if (rc == 0)
        rc = bm_wire_put_varstr(out, e->inv, e->inv_len);
    if (rc == 0)
        rc = bm_wire_put_varstr(out, e->text, e->text_len);
    return rc;
}

int bm_wire_error_parse(const uint8_t *p, size_t len, struct bm_wire_error *e)
{
    struct bm_wire_rd r = {p, len};
    int rc = 0;
    memset(e, 0, sizeof(*e));
    rc = bm_wire_rd_varint(&r, &e->fatal);
    if (rc == 0)
        rc = bm_wire_rd_varint(&r, &e->ban_time);
    if (rc == 0)
        rc = bm_wire_rd_varstr(&r, BM_WIRE_INV_LEN, &e->inv, &e->inv_len);
    if (rc == 0 && e->inv_len != 0 && e->inv_len != BM_WIRE_INV_LEN)
        rc = PST_EINVAL;
    if (rc == 0)
        rc = bm_wire_rd_varstr(&r, BM_WIRE_MAX_PAYLOAD, &e->text, &e->text_len);
    if (rc == 0 && r.left != 0)
        rc = PST_EINVAL;
    return rc;
}

/* ---- object ---- */

int bm_wire_object_build(buf_t *out, const struct bm_wire_object *o)
{
    int rc = 0;
    if (o->payload_len > BM_WIRE_MAX_OBJECT_PAYLOAD)
        return PST_ELIMIT;
    rc = bm_wire_put_uint(out, o->nonce, 8);
    if (rc == 0)
        rc = bm_wire_put_uint(out, o->expires, 8);
    if (rc == 0)
        rc = bm_wire_put_uint(out, o->type, 4);
    if (rc == 0)
        rc = bm_wire_put_varint(out, o->version);
    if (rc == 0)
        rc = bm_wire_put_varint(out, o->stream);
    if (rc == 0 && o->payload_len > 0)
        rc = buf_append(out, o->payload, o->payload_len);
    return rc;
}

int bm_wire_object_parse(const uint8_t *p, size_t len, struct bm_wire_object *o)
{
    struct bm_wire_rd r = {p, len};
    uint64_t type = 0;
    int rc = 0;

    memset(o, 0, sizeof(*o));
    rc = bm_wire_rd_uint(&r, 8, &o->nonce);
    if (rc == 0)
        rc = bm_wire_rd_uint(&r, 8, &o->expires);
    if (rc == 0)
        rc = bm_wire_rd_uint(&r, 4, &type);
    if (rc == 0)
        rc = bm_wire_rd_varint(&r, &o->version);
    if (rc == 0)
        rc = bm_wire_rd_varint(&r, &o->stream);
    if (rc < 0)
        return rc;
    if (r.left > BM_WIRE_MAX_OBJECT_PAYLOAD)
        return PST_ELIMIT;
    o->type = (uint32_t)type;
    o->data = p;
    o->data_len = len;
    o->header_len = len - r.left;
    o->payload = r.p;
    o->payload_len = r.left;
    return 0;
}
