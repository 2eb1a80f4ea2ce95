/*
 * bm_node.h - the Bitmessage connection pool: a listener for inbound peers,
 * outbound connections to configured peers only, the object inventory
 * shared between all peers (in bm_store), and relay of every new valid
 * object to every other established peer.
 *
 * Peering policy (docs/bitmessage.md "Peering"):
 *   - outbound: only to the configured peers ([bitmessage] peers). A peer
 *     that is down is retried with exponential backoff (reconnect_min ..
 *     reconnect_max seconds). addr messages are accepted but never used to
 *     connect anywhere: this node never connects to an address it was not
 *     given in its configuration.
 *   - inbound: at most max_inbound connections (more are closed at once),
 *     at most max_inbound_per_ip from one IP address. With trusted_only, an
 *     inbound connection is accepted only from the IP of a configured peer.
 *   - self-connections are detected by the version nonce of any of this
 *     node's connections and closed.
 *
 * Inventory: bm_peer asks "have" / "get_object" / "inventory_iter"; the
 * node answers from bm_store. A valid object from a peer (bm_peer checked
 * framing, PoW at the network minimums, lifetime and stream) that is not yet
 * in the inventory is stored, announced to every other established peer and
 * handed to hooks->on_object. bm_node_publish() does the same for objects
 * made by this node (after checking them just as bm_peer does). Expired
 * objects are purged every purge_interval seconds.
 *
 * Memory: each peer is bounded by bm_peer's limits (BM_PEER_IN_MAX,
 * BM_PEER_OUT_MAX, BM_PEER_MAX_WANTED ...), so the node's memory is bounded
 * by (max_inbound + number of peers) times that.
 *
 * Single-threaded: every function runs on the event loop's thread.
 */
#ifndef POSTERN_BM_NODE_H
#define POSTERN_BM_NODE_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "bitmessage/bm_peer.h"
#include "bitmessage/bm_store.h"
#include "lib/err.h"

#define BM_NODE_MAX_PEERS 64 /* configured outbound peers */
#define BM_NODE_MAX_ADDRS 8  /* resolved addresses kept per configured peer (tried in turn) */

/* Defaults filled in by bm_node_config_defaults(). */
#define BM_NODE_DEFAULT_MAX_INBOUND 32
#define BM_NODE_DEFAULT_MAX_INBOUND_PER_IP 4
#define BM_NODE_DEFAULT_RECONNECT_MIN 5    /* s */
#define BM_NODE_DEFAULT_RECONNECT_MAX 300  /* s */
#define BM_NODE_DEFAULT_PURGE_INTERVAL 300 /* s */

struct bm_node_peer_cfg {
    char host[256]; /* numeric IPv4/IPv6 address or a name (resolved with getaddrinfo at connect) */
    uint16_t port;
};

struct bm_node_config {
    int listen_fd;        /* bound, listening socket (taken over; closed by the node) or -1 */
    uint16_t listen_port; /* advertised in our version messages (default 8444) */
    struct bm_node_peer_cfg peers[BM_NODE_MAX_PEERS];
    size_t npeers;
    int trusted_only;            /* accept inbound only from the configured peers' IPs */
    unsigned max_inbound;        /* default 32 */
    unsigned max_inbound_per_ip; /* default 4 */
    unsigned reconnect_min;      /* seconds, default 5 */
    unsigned reconnect_max;      /* seconds, default 300 */
    unsigned purge_interval;     /* seconds, default 300 */
    unsigned handshake_ms;       /* 0 = bm_peer's default */
    unsigned idle_ms;            /* 0 = bm_peer's default */
};

/* bm_node_config_defaults - fill c with the defaults above (no peers, listen_fd -1). */
void bm_node_config_defaults(struct bm_node_config *c);

struct bm_node_hooks {
    /* on_object - a new valid object entered the inventory from a peer (not for
     * objects given to bm_node_publish). obj is the whole object, nonce included;
     * borrowed for the call. May call bm_node_publish(). */
    void (*on_object)(void *ctx, const uint8_t hash[BM_PEER_HASH_LEN], const uint8_t *obj,
                      size_t len);
    /* on_peer - optional: a peer finished its handshake (up = 1) or went away (up = 0). */
    void (*on_peer)(void *ctx, const char *peer_id, int outbound, int up);
};

typedef struct bm_node bm_node_t;

/* bm_node_new - a node on base using st (both borrowed, must outlive the node) and cfg
 * (copied; cfg->listen_fd is taken over even on failure). Nothing happens until
 * bm_node_start(). Caller frees with bm_node_free(). */
PST_MUST_CHECK int bm_node_new(struct event_base *base, struct bm_store *st,
                               const struct bm_node_config *cfg, const struct bm_node_hooks *hooks,
                               void *ctx, bm_node_t **out);

/* bm_node_start - start accepting and connecting. Resolves the configured
 * peers' host names here, once, with getaddrinfo (numeric first, then a
 * blocking lookup: call it before the event loop runs); a name that does not
 * resolve is logged and that peer is not connected until restart. Its IPs
 * are also the trusted ones for trusted_only. PST_EINVAL if called twice,
 * PST_EIO if libevent fails. */
PST_MUST_CHECK int bm_node_start(bm_node_t *n);

/*
 * bm_node_publish - add an object made by this node (whole object, nonce
 * included; borrowed): check it as a received one would be checked (object
 * header, PoW at the network minimums, lifetime, stream 1), store it and
 * announce it to every established peer. hash (may be NULL) gets its
 * inventory hash. PST_EINVAL for an object that fails the checks;
 * publishing an object already present is not an error (announced again).
 */
PST_MUST_CHECK int bm_node_publish(bm_node_t *n, const uint8_t *obj, size_t len,
                                   uint8_t hash[BM_PEER_HASH_LEN]);

struct bm_node_stats {
    unsigned peers_established; /* now */
    unsigned inbound;           /* connections now */
    unsigned outbound;          /* connections now (any state) */
    uint64_t objects_received;  /* new valid objects from peers */
    uint64_t objects_published; /* new objects by this node (a re-publish is not counted) */
    uint64_t inbound_refused;   /* over the limits or not trusted */
    /* additions */
    uint64_t outbound_attempts; /* outbound connections started */
    uint64_t self_connections;  /* handshakes refused: the remote nonce was ours */
    uint64_t addr_ignored;      /* addr entries received (never used to connect) */
};

void bm_node_get_stats(const bm_node_t *n, struct bm_node_stats *out);

/* bm_node_free - close every connection and the listener, free *n, *n = NULL. Accepts NULL.
 * Not from inside a hook (the calling peer would be freed under its own callback). */
void bm_node_free(bm_node_t **n);

#endif
