/*
 * bm_wire.h - Bitmessage protocol v3 message layer: packet framing and the
 * payloads of version, verack, addr, inv, getdata, error and object.
 *
 * Pure functions over byte arrays: no sockets, no global state, and no heap
 * allocation at all. Parsers fill structs whose pointer fields are BORROWED
 * views into the caller's input; they stay valid only as long as that input
 * does (for the framer: until the caller consumes the bytes from its buf_t).
 * Builders append to a bounded buf_t; on failure the buf_t may hold a partial
 * append (callers discard it).
 *
 * Every function returns 0 or a negative PST_E* code: PST_EINVAL for
 * malformed input, PST_ELIMIT for a protocol limit exceeded, PST_ENOMEM or
 * PST_ELIMIT from buf_append when building.
 */
#ifndef POSTERN_BM_WIRE_H
#define POSTERN_BM_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/err.h"

/* Packet header: magic || command[12] || length (u32 BE) || checksum[4]. */
#define BM_WIRE_MAGIC 0xE9BEB4D9u
#define BM_WIRE_COMMAND_LEN 12
#define BM_WIRE_CHECKSUM_LEN 4
#define BM_WIRE_HEADER_LEN 24

/* Protocol limits (PyBitmessage src/protocol.py, docs/protocol.rst). */
#define BM_WIRE_MAX_PAYLOAD 1600100u       /* MAX_MESSAGE_SIZE */
#define BM_WIRE_MAX_ADDR_COUNT 1000        /* entries in one addr */
#define BM_WIRE_MAX_INV_COUNT 50000        /* vectors in one inv/getdata/dinv */
#define BM_WIRE_MAX_USER_AGENT 5000        /* bytes of version.user_agent */
#define BM_WIRE_MAX_STREAMS 160000         /* entries of version.stream_numbers */
#define BM_WIRE_MAX_OBJECT_PAYLOAD 262144u /* 2^18: objectPayload after the header */

#define BM_WIRE_PROTOCOL_VERSION 3
#define BM_WIRE_INV_LEN 32           /* inventory vector: first half of double SHA-512 */
#define BM_WIRE_NET_ADDR_LEN 26      /* services + ip + port (version message) */
#define BM_WIRE_ADDR_ENTRY_LEN 38    /* time + stream + services + ip + port (addr) */
#define BM_WIRE_OBJECT_MIN_HEADER 22 /* nonce + expires + type + 1-byte version + stream */

/* Service bits. */
#define BM_WIRE_NODE_NETWORK 1u
#define BM_WIRE_NODE_SSL 2u
#define BM_WIRE_NODE_DANDELION 8u

/* Object types. */
#define BM_WIRE_OBJ_GETPUBKEY 0u
#define BM_WIRE_OBJ_PUBKEY 1u
#define BM_WIRE_OBJ_MSG 2u
#define BM_WIRE_OBJ_BROADCAST 3u

/* error message "fatal" values. */
#define BM_WIRE_ERR_WARNING 0u
#define BM_WIRE_ERR_ERROR 1u
#define BM_WIRE_ERR_FATAL 2u

enum bm_wire_cmd {
    BM_WIRE_CMD_UNKNOWN = 0, /* well-formed but not ours: the spec says ignore it silently */
    BM_WIRE_CMD_VERSION,
    BM_WIRE_CMD_VERACK,
    BM_WIRE_CMD_ADDR,
    BM_WIRE_CMD_INV,
    BM_WIRE_CMD_GETDATA,
    BM_WIRE_CMD_OBJECT,
    BM_WIRE_CMD_PING,
    BM_WIRE_CMD_PONG,
    BM_WIRE_CMD_ERROR,
    BM_WIRE_CMD_DINV,
};

/* A framed packet; payload is a borrowed view into the framer's input. */
struct bm_wire_packet {
    enum bm_wire_cmd cmd;
    char command[BM_WIRE_COMMAND_LEN + 1]; /* NUL-terminated, printable ASCII */
    const uint8_t *payload;
    size_t payload_len;
    const char *error; /* on a framing error: static reason for the log, else NULL */
};

/* net_addr without time and stream (26 bytes). ip is IPv6 or IPv4-mapped. */
struct bm_wire_net_addr {
    uint64_t services;
    uint8_t ip[16];
    uint16_t port;
};

/* One addr entry (38 bytes). */
struct bm_wire_addr_entry {
    uint64_t time;
    uint32_t stream;
    struct bm_wire_net_addr addr;
};

struct bm_wire_version {
    uint32_t protocol_version;
    uint64_t services;
    int64_t timestamp;
    struct bm_wire_net_addr addr_recv;
    struct bm_wire_net_addr addr_from;
    uint64_t nonce;
    const uint8_t *user_agent; /* borrowed; not NUL-terminated; may contain any byte */
    size_t user_agent_len;
    /* parse: borrowed view of the validated var_int list, read it with
     * bm_wire_version_stream_next() / bm_wire_version_has_stream().
     * build: ignored (the builder takes a uint64_t array). */
    const uint8_t *streams_data;
    size_t streams_len;
    size_t nstreams;
};

/* addr payload: count entries of BM_WIRE_ADDR_ENTRY_LEN bytes each. */
struct bm_wire_addr {
    const uint8_t *entries; /* borrowed */
    size_t count;
};

/* inv / getdata / dinv payload: count vectors of BM_WIRE_INV_LEN bytes. */
struct bm_wire_inv {
    const uint8_t *vectors; /* borrowed; vector i at vectors + i * BM_WIRE_INV_LEN */
    size_t count;
};

struct bm_wire_error {
    uint64_t fatal;
    uint64_t ban_time;
    const uint8_t *inv; /* borrowed; inv_len is 0 or BM_WIRE_INV_LEN */
    size_t inv_len;
    const uint8_t *text; /* borrowed; not NUL-terminated; untrusted */
    size_t text_len;
};

/* Object header and views. data/data_len cover the whole object (from nonce
 * on): that is what the inventory hash and the PoW are computed over. */
struct bm_wire_object {
    uint64_t nonce;
    uint64_t expires;
    uint32_t type;
    uint64_t version;
    uint64_t stream;
    const uint8_t *data; /* borrowed */
    size_t data_len;
    size_t header_len;      /* offset of objectPayload within data */
    const uint8_t *payload; /* borrowed: data + header_len */
    size_t payload_len;
};

/* bm_wire_cmd_name - static name of a command ("version", ...); "?" for UNKNOWN. */
const char *bm_wire_cmd_name(enum bm_wire_cmd cmd);

/* bm_wire_cmd_lookup - command for a NUL-terminated name; BM_WIRE_CMD_UNKNOWN if none. */
enum bm_wire_cmd bm_wire_cmd_lookup(const char *name);

/*
 * bm_wire_frame - try to cut one packet off the front of in[0..len).
 *   0 and *consumed == 0: more bytes are needed (nothing else is set).
 *   0 and *consumed > 0: *pkt describes a packet (payload borrowed from in);
 *     after handling it the caller drops *consumed bytes (buf_consume()).
 *   PST_EINVAL: bad magic, malformed command or bad checksum;
 *   PST_ELIMIT: declared payload length > BM_WIRE_MAX_PAYLOAD.
 *   On error pkt->error names the reason. The header is judged as soon as
 *   its 24 bytes are present, so a lying length fails before any payload is
 *   buffered. Errors are fatal to the stream: like PyBitmessage on TCP, the
 *   caller closes the connection (there is no resync).
 * A well-formed command outside the table gives cmd BM_WIRE_CMD_UNKNOWN,
 * which the caller must ignore (spec: "Unsupported messages").
 * A receive buffer needs at most BM_WIRE_HEADER_LEN + BM_WIRE_MAX_PAYLOAD bytes.
 */
PST_MUST_CHECK int bm_wire_frame(const uint8_t *in, size_t len, struct bm_wire_packet *pkt,
                                 size_t *consumed);

/*
 * bm_wire_packet_build - append header + payload for command (1..12
 * printable ASCII characters, any, not only those in the table).
 * PST_EINVAL for a bad command, PST_ELIMIT for payload_len > BM_WIRE_MAX_PAYLOAD.
 */
PST_MUST_CHECK int bm_wire_packet_build(buf_t *out, const char *command, const uint8_t *payload,
                                        size_t payload_len);

/* bm_wire_checksum - first 4 bytes of SHA-512(data). */
PST_MUST_CHECK int bm_wire_checksum(const uint8_t *data, size_t len,
                                    uint8_t out[BM_WIRE_CHECKSUM_LEN]);

/* version: the builder appends the payload for v (streams: nstreams values,
 * 1..BM_WIRE_MAX_STREAMS; user agent <= BM_WIRE_MAX_USER_AGENT). The parser
 * tolerates trailing bytes after the stream list, as PyBitmessage does. */
PST_MUST_CHECK int bm_wire_version_build(buf_t *out, const struct bm_wire_version *v,
                                         const uint64_t *streams, size_t nstreams);
PST_MUST_CHECK int bm_wire_version_parse(const uint8_t *p, size_t len, struct bm_wire_version *v);

/* bm_wire_version_stream_next - iterate a parsed stream list: *pos starts at
 * 0; returns 0 and sets *stream, or PST_ENOENT at the end. */
PST_MUST_CHECK int bm_wire_version_stream_next(const struct bm_wire_version *v, size_t *pos,
                                               uint64_t *stream);

/* bm_wire_version_has_stream - 1 if the parsed list holds stream, else 0. */
int bm_wire_version_has_stream(const struct bm_wire_version *v, uint64_t stream);

/* addr: count <= BM_WIRE_MAX_ADDR_COUNT; the payload must be exactly the entries. */
PST_MUST_CHECK int bm_wire_addr_build(buf_t *out, const struct bm_wire_addr_entry *entries,
                                      size_t count);
PST_MUST_CHECK int bm_wire_addr_parse(const uint8_t *p, size_t len, struct bm_wire_addr *a);
/* bm_wire_addr_get - decode entry i (i < a->count) into *e. */
PST_MUST_CHECK int bm_wire_addr_get(const struct bm_wire_addr *a, size_t i,
                                    struct bm_wire_addr_entry *e);

/* inv / getdata / dinv: vectors is count * BM_WIRE_INV_LEN bytes,
 * count <= BM_WIRE_MAX_INV_COUNT; the payload must be exactly the vectors. */
PST_MUST_CHECK int bm_wire_inv_build(buf_t *out, const uint8_t *vectors, size_t count);
PST_MUST_CHECK int bm_wire_inv_parse(const uint8_t *p, size_t len, struct bm_wire_inv *inv);

/* error: inv_len must be 0 or BM_WIRE_INV_LEN; nothing may follow the text. */
PST_MUST_CHECK int bm_wire_error_build(buf_t *out, const struct bm_wire_error *e);
PST_MUST_CHECK int bm_wire_error_parse(const uint8_t *p, size_t len, struct bm_wire_error *e);

/*
 * object: the builder appends nonce, expires, type, version, stream and then
 * payload (o->payload, o->payload_len <= BM_WIRE_MAX_OBJECT_PAYLOAD; other
 * view fields are ignored). The parser reads the header of a whole object
 * (the "object" packet payload) and fills the views; PST_ELIMIT if the
 * objectPayload exceeds BM_WIRE_MAX_OBJECT_PAYLOAD. It checks neither PoW,
 * expiry nor stream: that is policy for the caller.
 */
PST_MUST_CHECK int bm_wire_object_build(buf_t *out, const struct bm_wire_object *o);
PST_MUST_CHECK int bm_wire_object_parse(const uint8_t *p, size_t len, struct bm_wire_object *o);

/* bm_wire_inventory_hash - first 32 bytes of SHA-512(SHA-512(object)), where
 * object is the whole object from the nonce on. */
PST_MUST_CHECK int bm_wire_inventory_hash(const uint8_t *object, size_t len,
                                          uint8_t out[BM_WIRE_INV_LEN]);

#endif
