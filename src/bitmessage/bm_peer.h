/*
 * bm_peer.h - one Bitmessage protocol v3 peer connection (inbound or
 * outbound) as an explicit state machine on a libevent bufferevent.
 *
 * The peer speaks the handshake (version / verack), then synchronises
 * stream 1: it announces the owner's inventory in inv messages, asks with
 * getdata for announced objects the owner does not have, answers getdata
 * with the owner's objects, validates received objects (framing, object
 * header, proof of work at the network minimums, expiry, stream) and hands
 * them to the owner, hands addr entries to the owner and answers ping.
 * It owns no inventory: everything goes through struct bm_peer_ops.
 *
 * Lifetime: a peer is created by bm_peer_new_outbound()/_inbound() and
 * freed by bm_peer_free(). When the connection ends (error, timeout, peer
 * hung up, bm_peer_close()) the socket is closed at once and on_close is
 * called once, later, from the event loop (never from inside another
 * callback); on_close may call bm_peer_free(). Other callbacks must NOT
 * free the peer: they may call bm_peer_close().
 */
#ifndef POSTERN_BM_PEER_H
#define POSTERN_BM_PEER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "bitmessage/bm_wire.h"
#include "lib/buf.h"
#include "lib/err.h"

#define BM_PEER_HASH_LEN BM_WIRE_INV_LEN
#define BM_PEER_STREAM 1u /* the only stream this node serves */
#define BM_PEER_USER_AGENT "/Postern:0.1.0/"
#define BM_PEER_DEFAULT_PORT 8444 /* advertised in version.addr_from */

/* Limits (reference values from PyBitmessage src/network/: tcp.py,
 * connectionpool.py, downloadthread.py, uploadthread.py, protocol.py). */
#define BM_PEER_IN_MAX (BM_WIRE_HEADER_LEN + BM_WIRE_MAX_PAYLOAD) /* one whole packet */
#define BM_PEER_OUT_MAX (2u * 1024 * 1024) /* stop answering getdata past this (uploadthread) */
#define BM_PEER_INV_BATCH (BM_WIRE_MAX_INV_COUNT - 1) /* tcp.py sendBigInv: 49999 for old peers */
#define BM_PEER_MAX_PENDING 1000                      /* outstanding getdata (maxRequestChunk) */
#define BM_PEER_MAX_WANTED BM_WIRE_MAX_INV_COUNT      /* announced, not yet requested */
#define BM_PEER_MAX_UPLOAD BM_WIRE_MAX_INV_COUNT      /* requested by the peer, not yet sent */
#define BM_PEER_REQUEST_TIMEOUT 60                    /* s: forget an unanswered getdata entry */
#define BM_PEER_OBJECTS_PER_SEC 100                   /* token bucket refill per peer */
#define BM_PEER_OBJECTS_BURST 500                     /* token bucket size */
#define BM_PEER_HANDSHAKE_TIMEOUT_MS 20000 /* connectionpool.py: 20 s before established */
#define BM_PEER_IDLE_TIMEOUT_MS 300000     /* ping after 300 s silent; close after twice that */
#define BM_PEER_MAX_TIME_OFFSET 3600       /* protocol.py MAX_TIME_OFFSET */
#define BM_PEER_ADDRESS_ALIVE 10800 /* protocol.py ADDRESS_ALIVE: addr entries older are dropped   \
                                     */

enum bm_peer_state {
    BM_PEER_CONNECTING = 0,   /* outbound: TCP connect; inbound: waiting for version */
    BM_PEER_VERSION_SENT,     /* our version is out, theirs not yet accepted */
    BM_PEER_VERSION_RECEIVED, /* versions exchanged, our verack sent, theirs awaited */
    BM_PEER_ESTABLISHED,
    BM_PEER_CLOSING,
};

typedef struct bm_peer bm_peer_t;

/* Same shape as bm_store_hash_cb: return 0 to go on, negative to stop. */
typedef int (*bm_peer_hash_cb)(const uint8_t hash[BM_PEER_HASH_LEN], void *arg);

/*
 * The owner's side. ctx is passed back unchanged. All pointers given to a
 * callback are borrowed for the duration of the call.
 */
struct bm_peer_ops {
    /* have - 1 if the owner holds the object (or does not want it), 0 if it wants it. */
    int (*have)(void *ctx, const uint8_t hash[BM_PEER_HASH_LEN]);
    /* get_object - append the whole object (nonce on) to out; 0, PST_ENOENT, or another error. */
    int (*get_object)(void *ctx, const uint8_t hash[BM_PEER_HASH_LEN], buf_t *out);
    /* on_object - a valid object (PoW, expiry, stream checked); obj is the whole object. */
    void (*on_object)(void *ctx, bm_peer_t *peer, const uint8_t hash[BM_PEER_HASH_LEN],
                      const uint8_t *obj, size_t len);
    /* on_addr - one addr entry for our stream, fresh, with a port (may be NULL). */
    void (*on_addr)(void *ctx, bm_peer_t *peer, const struct bm_wire_addr_entry *e);
    /* inventory_iter - call cb(hash, arg) for each unexpired object of stream. */
    int (*inventory_iter)(void *ctx, uint64_t stream, bm_peer_hash_cb cb, void *arg);
    /* on_close - the connection is over (reason: static text). May call bm_peer_free(). */
    void (*on_close)(void *ctx, bm_peer_t *peer, const char *reason);
    /* Optional (may be NULL): */
    /* is_own_nonce - 1 if nonce is one of this node's version nonces (self-connection).
     * NULL: only this peer's own nonce counts. */
    int (*is_own_nonce)(void *ctx, uint64_t nonce);
    /* on_established - the handshake is complete. */
    void (*on_established)(void *ctx, bm_peer_t *peer);
};

/* Counters for the owner and the tests. */
struct bm_peer_stats {
    uint64_t packets_in;
    uint64_t objects_in;      /* valid objects handed to on_object */
    uint64_t objects_refused; /* malformed, bad PoW, expired, wrong stream */
    uint64_t objects_out;     /* objects sent for getdata */
    uint64_t inv_out;         /* hashes announced */
    uint64_t getdata_out;     /* hashes requested */
};

/*
 * bm_peer_new_outbound - connect to sa (borrowed, copied) and run the
 * handshake. base, ops (borrowed, must outlive the peer) and ctx are the
 * owner's. NULL on failure (connect errors that come later reach on_close).
 * Caller frees with bm_peer_free().
 */
bm_peer_t *bm_peer_new_outbound(struct event_base *base, const struct sockaddr *sa, socklen_t salen,
                                const struct bm_peer_ops *ops, void *ctx);

/*
 * bm_peer_new_inbound - take over the connected socket fd (TAKES OWNERSHIP:
 * closed by the peer, also on failure) accepted from sa (borrowed, copied;
 * may be NULL). NULL on failure. Caller frees with bm_peer_free().
 */
bm_peer_t *bm_peer_new_inbound(struct event_base *base, evutil_socket_t fd,
                               const struct sockaddr *sa, socklen_t salen,
                               const struct bm_peer_ops *ops, void *ctx);

/* bm_peer_set_timeouts - override the handshake and idle timeouts (ms, > 0; tests).
 * Call right after creation. */
void bm_peer_set_timeouts(bm_peer_t *p, unsigned handshake_ms, unsigned idle_ms);

/* bm_peer_set_listen_port - the port advertised in our version (default 8444). */
void bm_peer_set_listen_port(bm_peer_t *p, uint16_t port);

/*
 * bm_peer_announce - queue hash for an inv to this peer (sent from the
 * event loop, batched). Ignored before ESTABLISHED (the inventory is sent
 * in full on establishment). PST_ELIMIT if the queue is full.
 */
PST_MUST_CHECK int bm_peer_announce(bm_peer_t *p, const uint8_t hash[BM_PEER_HASH_LEN]);

/* bm_peer_close - end the connection (reason: static text); on_close follows from the loop. */
void bm_peer_close(bm_peer_t *p, const char *reason);

enum bm_peer_state bm_peer_state(const bm_peer_t *p);
const char *bm_peer_state_name(enum bm_peer_state s);
int bm_peer_is_outbound(const bm_peer_t *p);
/* bm_peer_nonce - the nonce of our version message on this connection. */
uint64_t bm_peer_nonce(const bm_peer_t *p);
/* bm_peer_remote_nonce - the remote's version nonce (0 before its version). */
uint64_t bm_peer_remote_nonce(const bm_peer_t *p);
void bm_peer_get_stats(const bm_peer_t *p, struct bm_peer_stats *out);
/* bm_peer_id - short hex id used in this peer's log lines (static storage of the peer). */
const char *bm_peer_id(const bm_peer_t *p);

/*
 * bm_peer_object_check - the checks every received object passes before it
 * reaches the owner, exported so that the owner applies the same ones to
 * objects it makes (bm_node_publish): obj (whole object, nonce included;
 * borrowed) must parse as an object (*o gets its views into obj), be in
 * stream BM_PEER_STREAM, be within the lifetime limits at now and carry
 * enough proof of work at the network minimums (bm_pow_check). Returns NULL
 * if acceptable, else a static reason: "malformed", "too large",
 * "unwanted stream", "lifetime" or "insufficient pow".
 */
const char *bm_peer_object_check(const uint8_t *obj, size_t len, int64_t now,
                                 struct bm_wire_object *o);

/* bm_peer_free - close if needed (no on_close then), free *p, set *p = NULL. Accepts NULL. */
void bm_peer_free(bm_peer_t **p);

#endif
