/*
 * bm_node.c - the Bitmessage connection pool: one listener for inbound
 * peers, one outbound slot per configured peer, and the inventory (kept in
 * bm_store) that every peer connection reads and feeds. The peering policy
 * is written down in bm_node.h; here is how it is carried out.
 *
 * Connections: every live bm_peer belongs to one struct bm_node_conn on the
 * node's list (n->conns); the conn is the ctx of the peer's ops, so every
 * callback knows its connection. A conn leaves the list only in
 * bm_node_on_close (bm_peer calls it from the event loop, never from inside
 * another callback, and allows bm_peer_free() there) or in bm_node_free().
 * Every other callback (on_object, on_established, is_own_nonce, ...) may
 * only ask a peer to close, never free it; so the list never changes under
 * a walk.
 *
 * Outbound (docs/bitmessage.md "Peering", PyBitmessage
 * connectionchooser.py is NOT followed: we never pick peers from addr):
 *   slot idle --start / timer--> connecting (bm_peer_new_outbound to the
 *   slot's next resolved address, round robin) --on_close--> timer armed for
 *   `backoff` seconds, backoff doubled up to reconnect_max. A completed
 *   handshake resets backoff to reconnect_min.
 * Host names are resolved ONCE, synchronously, in bm_node_start() (which
 * runs before the event loop, so blocking there stalls nobody): getaddrinfo
 * with AI_NUMERICHOST first, then a normal lookup. A name that does not
 * resolve at start is logged at error and its slot stays idle until the
 * node is restarted; addresses are not re-resolved later (the loop must
 * not block on DNS).
 *
 * Inbound: evconnlistener on cfg->listen_fd. A new connection is refused
 * (closed at once, counted in inbound_refused, logged) when the node has
 * max_inbound inbound connections, when its IP already has
 * max_inbound_per_ip, or, with trusted_only, when its IP is not one of the
 * configured peers' resolved addresses. IPs are compared in IPv4-mapped
 * IPv6 form, so ::ffff:192.0.2.1 and 192.0.2.1 are the same.
 *
 * Self-connection: is_own_nonce answers 1 for the version nonce of any of
 * this node's connections; bm_peer then refuses the handshake.
 *
 * Inventory: have / get_object / inventory_iter go to bm_store. A new
 * object from a peer is stored (type, stream, expiry, and the tag of
 * pubkey v4 and broadcast v5 objects), announced to every OTHER
 * established peer, then handed to hooks->on_object. Objects published by
 * this node pass bm_peer_object_check() first, exactly as received ones.
 * Expired objects are purged every purge_interval seconds.
 *
 * Failure policy: nothing a peer sends is fatal; store errors are logged
 * (the object is then neither announced nor handed on: the peer may offer
 * it again). bm_node_new() returns PST_EINVAL / PST_ECONFIG for a bad
 * configuration and PST_ENOMEM / PST_EIO when libevent fails. Hooks must
 * not call bm_node_free().
 */
#include "bitmessage/bm_node.h"

#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/listener.h>
#include <event2/util.h>

#include "bitmessage/bm_object.h"
#include "bitmessage/bm_wire.h"
#include "lib/log.h"
#include "lib/netaddr.h"

#define BM_NODE_HEX_LEN 16 /* hex digits of an inventory hash shown in logs */

/* One live peer connection. */
struct bm_node_conn {
    bm_node_t *n;
    bm_peer_t *peer;
    struct bm_node_slot *slot; /* outbound: its slot; inbound: NULL */
    uint8_t ip[16];            /* remote IP, IPv4-mapped form */
    char addr[NETADDR_STRLEN];
    bool established;
    struct bm_node_conn *prev, *next;
};

/* One configured peer: its resolved addresses and its reconnect state. */
struct bm_node_slot {
    bm_node_t *n;
    const struct bm_node_peer_cfg *cfg; /* into n->cfg.peers */
    struct sockaddr_storage addr[BM_NODE_MAX_ADDRS];
    socklen_t addrlen[BM_NODE_MAX_ADDRS];
    size_t naddr, next;
    unsigned backoff;          /* seconds before the next attempt after a close */
    struct bm_node_conn *conn; /* NULL while idle */
    struct event *timer;
};

struct bm_node {
    struct event_base *base;
    struct bm_store *st;
    struct bm_node_config cfg;
    struct bm_node_hooks hooks;
    void *ctx;
    struct evconnlistener *listener;
    struct event *purge_ev;
    struct bm_node_slot slots[BM_NODE_MAX_PEERS];
    struct bm_node_conn *conns;
    bool started;
    struct bm_node_stats stats; /* counters; the "now" fields are computed */
};

/* ---- helpers ---- */

void bm_node_config_defaults(struct bm_node_config *c)
{
    memset(c, 0, sizeof(*c));
    c->listen_fd = -1;
    c->listen_port = BM_PEER_DEFAULT_PORT;
    c->max_inbound = BM_NODE_DEFAULT_MAX_INBOUND;
    c->max_inbound_per_ip = BM_NODE_DEFAULT_MAX_INBOUND_PER_IP;
    c->reconnect_min = BM_NODE_DEFAULT_RECONNECT_MIN;
    c->reconnect_max = BM_NODE_DEFAULT_RECONNECT_MAX;
    c->purge_interval = BM_NODE_DEFAULT_PURGE_INTERVAL;
}

/* bm_node_ip16 - the IP of sa in IPv4-mapped IPv6 form; false if not IP. */
static bool bm_node_ip16(const struct sockaddr *sa, uint8_t ip[16])
{
    memset(ip, 0, 16);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        ip[10] = ip[11] = 0xff;
        memcpy(ip + 12, &in->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        memcpy(ip, &in6->sin6_addr, 16);
        return true;
    }
    return false;
}

static void bm_node_hash_hex(const uint8_t *hash, char out[BM_NODE_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < BM_NODE_HEX_LEN / 2; i++) {
        out[2 * i] = hex[hash[i] >> 4];
        out[2 * i + 1] = hex[hash[i] & 0x0f];
    }
    out[BM_NODE_HEX_LEN] = '\0';
}

static const char *bm_node_host_q(const struct bm_node_slot *s, char *q, size_t qsz)
{
    return log_quote(q, qsz, s->cfg->host, strlen(s->cfg->host));
}

static void bm_node_conn_link(bm_node_t *n, struct bm_node_conn *c)
{
    c->prev = NULL;
    c->next = n->conns;
    if (n->conns != NULL)
        n->conns->prev = c;
    n->conns = c;
}

static void bm_node_conn_unlink(bm_node_t *n, struct bm_node_conn *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        n->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* bm_node_announce - queue hash for every established peer except `except` (may be NULL). */
static void bm_node_announce(bm_node_t *n, const uint8_t *hash, const bm_peer_t *except)
{
    for (struct bm_node_conn *c = n->conns; c != NULL; c = c->next) {
        if (c->peer == except || bm_peer_state(c->peer) != BM_PEER_ESTABLISHED)
            continue;
        int rc = bm_peer_announce(c->peer, hash);
        if (rc < 0)
            log_debug("bm_node announce id=%s addr=%s err=%s", bm_peer_id(c->peer), c->addr,
                      err_str(rc));
    }
}

/* bm_node_store - put the parsed object o (inventory hash `hash`) into the inventory. */
static int bm_node_store(bm_node_t *n, const uint8_t *hash, const struct bm_wire_object *o,
                         bool *is_new)
{
    struct bm_store_object so;
    memset(&so, 0, sizeof(so));
    if (o->expires > (uint64_t)INT64_MAX)
        return PST_EINVAL;
    memcpy(so.hash, hash, BM_STORE_HASH_LEN);
    so.type = o->type;
    so.stream = o->stream;
    so.expires = (int64_t)o->expires;
    so.payload = (uint8_t *)o->data; /* borrowed: bm_store_inv_put copies it */
    so.payload_len = o->data_len;
    so.received = (int64_t)time(NULL);
    if (o->type == BM_WIRE_OBJ_PUBKEY && o->version == BM_OBJ_PUBKEY_VERSION)
        so.has_tag = bm_obj_pubkey_tag(o, so.tag) == 0;
    else if (o->type == BM_WIRE_OBJ_BROADCAST && o->version == BM_OBJ_BROADCAST_VERSION)
        so.has_tag = bm_obj_broadcast_tag(o, so.tag) == 0;
    return bm_store_inv_put(n->st, &so, is_new);
}

/* ---- bm_peer ops (ctx is the struct bm_node_conn) ---- */

static int bm_node_have(void *ctx, const uint8_t hash[BM_PEER_HASH_LEN])
{
    struct bm_node_conn *c = ctx;
    bool have = false;
    int rc = bm_store_inv_exists(c->n->st, hash, &have);
    if (rc < 0) {
        log_warn("bm_node inventory err=%s op=exists", err_str(rc));
        return 1; /* cannot store it either: do not ask for it */
    }
    return have ? 1 : 0;
}

static int bm_node_get_object(void *ctx, const uint8_t hash[BM_PEER_HASH_LEN], buf_t *out)
{
    struct bm_node_conn *c = ctx;
    struct bm_store_object o;
    int rc = bm_store_inv_get(c->n->st, hash, &o);
    if (rc < 0)
        return rc;
    rc = buf_append(out, o.payload, o.payload_len);
    bm_store_object_free(&o);
    return rc;
}

static void bm_node_on_object(void *ctx, bm_peer_t *peer, const uint8_t hash[BM_PEER_HASH_LEN],
                              const uint8_t *obj, size_t len)
{
    struct bm_node_conn *c = ctx;
    bm_node_t *n = c->n;
    struct bm_wire_object o;
    char hx[BM_NODE_HEX_LEN + 1];
    bool is_new = false;
    bm_node_hash_hex(hash, hx);
    int rc = bm_wire_object_parse(obj, len, &o);
    if (rc == 0)
        rc = bm_node_store(n, hash, &o, &is_new);
    if (rc < 0) {
        log_warn("bm_node object id=%s addr=%s hash=%s err=%s", bm_peer_id(peer), c->addr, hx,
                 err_str(rc));
        return;
    }
    if (!is_new)
        return; /* raced in from another peer */
    n->stats.objects_received++;
    log_debug("bm_node object id=%s addr=%s hash=%s type=%u len=%zu", bm_peer_id(peer), c->addr, hx,
              o.type, len);
    bm_node_announce(n, hash, peer);
    if (n->hooks.on_object != NULL)
        n->hooks.on_object(n->ctx, hash, obj, len);
}

static void bm_node_on_addr(void *ctx, bm_peer_t *peer, const struct bm_wire_addr_entry *e)
{
    struct bm_node_conn *c = ctx;
    c->n->stats.addr_ignored++;
    log_debug("bm_node addr id=%s addr=%s ignored=1 port=%u", bm_peer_id(peer), c->addr,
              e->addr.port);
}

static int bm_node_inventory_iter(void *ctx, uint64_t stream, bm_peer_hash_cb cb, void *arg)
{
    struct bm_node_conn *c = ctx;
    return bm_store_inv_hashes(c->n->st, stream, (int64_t)time(NULL), cb, arg);
}

static int bm_node_is_own_nonce(void *ctx, uint64_t nonce)
{
    struct bm_node_conn *c = ctx;
    for (const struct bm_node_conn *o = c->n->conns; o != NULL; o = o->next) {
        if (bm_peer_nonce(o->peer) == nonce) {
            c->n->stats.self_connections++;
            return 1;
        }
    }
    return 0;
}

static void bm_node_on_established(void *ctx, bm_peer_t *peer)
{
    struct bm_node_conn *c = ctx;
    bm_node_t *n = c->n;
    c->established = true;
    if (c->slot != NULL)
        c->slot->backoff = n->cfg.reconnect_min;
    log_info("bm_node peer-up id=%s addr=%s outbound=%d", bm_peer_id(peer), c->addr,
             c->slot != NULL);
    if (n->hooks.on_peer != NULL)
        n->hooks.on_peer(n->ctx, bm_peer_id(peer), c->slot != NULL, 1);
}

static void bm_node_slot_retry(struct bm_node_slot *s);

static void bm_node_on_close(void *ctx, bm_peer_t *peer, const char *reason)
{
    struct bm_node_conn *c = ctx;
    bm_node_t *n = c->n;
    struct bm_node_slot *s = c->slot;
    bool was_up = c->established;
    char id[32], q[128];
    int w = snprintf(id, sizeof(id), "%s", bm_peer_id(peer));
    if (w < 0 || (size_t)w >= sizeof(id))
        id[0] = '\0';
    log_info("bm_node disconnected id=%s addr=%s outbound=%d reason=%s", id, c->addr, s != NULL,
             log_quote(q, sizeof(q), reason, strlen(reason)));
    bm_node_conn_unlink(n, c);
    bm_peer_free(&c->peer);
    free(c);
    if (s != NULL) {
        s->conn = NULL;
        bm_node_slot_retry(s);
    }
    if (was_up && n->hooks.on_peer != NULL)
        n->hooks.on_peer(n->ctx, id, s != NULL, 0);
}

static const struct bm_peer_ops bm_node_peer_ops = {
    .have = bm_node_have,
    .get_object = bm_node_get_object,
    .on_object = bm_node_on_object,
    .on_addr = bm_node_on_addr,
    .inventory_iter = bm_node_inventory_iter,
    .on_close = bm_node_on_close,
    .is_own_nonce = bm_node_is_own_nonce,
    .on_established = bm_node_on_established,
};

/* bm_node_conn_new - an unlinked conn for a peer at sa (not yet created). */
static struct bm_node_conn *bm_node_conn_new(bm_node_t *n, const struct sockaddr *sa)
{
    struct bm_node_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->n = n;
    (void)bm_node_ip16(sa, c->ip);
    netaddr_to_str(sa, c->addr, sizeof(c->addr));
    return c;
}

/* bm_node_conn_attach - configure the new peer of c and put c on the list. */
static void bm_node_conn_attach(bm_node_t *n, struct bm_node_conn *c)
{
    bm_peer_set_listen_port(c->peer, n->cfg.listen_port);
    if (n->cfg.handshake_ms > 0 || n->cfg.idle_ms > 0)
        bm_peer_set_timeouts(c->peer, n->cfg.handshake_ms, n->cfg.idle_ms);
    bm_node_conn_link(n, c);
}

/* ---- outbound ---- */

static void bm_node_slot_connect(struct bm_node_slot *s)
{
    bm_node_t *n = s->n;
    char q[96];
    if (s->conn != NULL || s->naddr == 0)
        return;
    size_t i = s->next++ % s->naddr;
    const struct sockaddr *sa = (const struct sockaddr *)&s->addr[i];
    struct bm_node_conn *c = bm_node_conn_new(n, sa);
    n->stats.outbound_attempts++;
    if (c != NULL) {
        c->slot = s;
        c->peer = bm_peer_new_outbound(n->base, sa, s->addrlen[i], &bm_node_peer_ops, c);
    }
    if (c == NULL || c->peer == NULL) {
        log_warn("bm_node connect host=%s port=%u err=cannot-start",
                 bm_node_host_q(s, q, sizeof(q)), s->cfg->port);
        free(c);
        bm_node_slot_retry(s);
        return;
    }
    bm_node_conn_attach(n, c);
    s->conn = c;
    log_info("bm_node connecting id=%s host=%s addr=%s port=%u", bm_peer_id(c->peer),
             bm_node_host_q(s, q, sizeof(q)), c->addr, s->cfg->port);
}

static void bm_node_slot_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    bm_node_slot_connect(arg);
}

/* bm_node_slot_retry - arm the reconnect timer for the current backoff, then double it. */
static void bm_node_slot_retry(struct bm_node_slot *s)
{
    bm_node_t *n = s->n;
    unsigned delay = s->backoff;
    struct timeval tv = {.tv_sec = delay, .tv_usec = 0};
    char q[96];
    s->backoff = delay > n->cfg.reconnect_max / 2 ? n->cfg.reconnect_max : delay * 2;
    if (evtimer_add(s->timer, &tv) != 0) {
        log_error("bm_node reconnect host=%s err=timer", bm_node_host_q(s, q, sizeof(q)));
        return;
    }
    log_info("bm_node reconnect host=%s port=%u delay=%u", bm_node_host_q(s, q, sizeof(q)),
             s->cfg->port, delay);
}

/* bm_node_resolve - fill s->addr from getaddrinfo: numeric first, then a (blocking) lookup. */
static int bm_node_resolve(struct bm_node_slot *s)
{
    struct addrinfo hints, *res = NULL;
    char port[8], q[96];
    int w = snprintf(port, sizeof(port), "%u", s->cfg->port);
    if (w < 0 || (size_t)w >= sizeof(port))
        return PST_EINVAL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    int rc = getaddrinfo(s->cfg->host, port, &hints, &res);
    if (rc == EAI_NONAME) {
        hints.ai_flags = AI_NUMERICSERV;
        rc = getaddrinfo(s->cfg->host, port, &hints, &res);
    }
    if (rc != 0) {
        char eq[96];
        const char *es = gai_strerror(rc);
        log_error("bm_node resolve host=%s err=%s", bm_node_host_q(s, q, sizeof(q)),
                  log_quote(eq, sizeof(eq), es, strlen(es)));
        return PST_ENOENT;
    }
    s->naddr = 0;
    for (const struct addrinfo *ai = res; ai != NULL && s->naddr < BM_NODE_MAX_ADDRS;
         ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof(s->addr[0]))
            continue;
        memcpy(&s->addr[s->naddr], ai->ai_addr, ai->ai_addrlen);
        s->addrlen[s->naddr++] = (socklen_t)ai->ai_addrlen;
    }
    freeaddrinfo(res);
    if (s->naddr == 0)
        return PST_ENOENT;
    log_debug("bm_node resolved host=%s addrs=%zu", bm_node_host_q(s, q, sizeof(q)), s->naddr);
    return 0;
}

/* ---- inbound ---- */

static bool bm_node_ip_trusted(const bm_node_t *n, const uint8_t ip[16])
{
    for (size_t i = 0; i < n->cfg.npeers; i++) {
        const struct bm_node_slot *s = &n->slots[i];
        for (size_t j = 0; j < s->naddr; j++) {
            uint8_t a[16];
            if (bm_node_ip16((const struct sockaddr *)&s->addr[j], a) && memcmp(a, ip, 16) == 0)
                return true;
        }
    }
    return false;
}

/* bm_node_inbound_check - NULL if a connection from ip may be accepted, else why not. */
static const char *bm_node_inbound_check(const bm_node_t *n, const uint8_t ip[16])
{
    unsigned total = 0, same = 0;
    for (const struct bm_node_conn *c = n->conns; c != NULL; c = c->next) {
        if (c->slot != NULL)
            continue;
        total++;
        if (memcmp(c->ip, ip, 16) == 0)
            same++;
    }
    if (total >= n->cfg.max_inbound)
        return "max_inbound";
    if (same >= n->cfg.max_inbound_per_ip)
        return "max_inbound_per_ip";
    if (n->cfg.trusted_only && !bm_node_ip_trusted(n, ip))
        return "untrusted";
    return NULL;
}

static void bm_node_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                              int salen, void *arg)
{
    bm_node_t *n = arg;
    char addr[NETADDR_STRLEN];
    uint8_t ip[16];
    netaddr_to_str(sa, addr, sizeof(addr));
    const char *why = bm_node_ip16(sa, ip) ? bm_node_inbound_check(n, ip) : "not ip";
    if (why != NULL) {
        evutil_closesocket(fd);
        n->stats.inbound_refused++;
        log_info("bm_node refused addr=%s reason=%s", addr, why);
        return;
    }
    struct bm_node_conn *c = bm_node_conn_new(n, sa);
    if (c == NULL) {
        evutil_closesocket(fd);
        log_warn("bm_node accept addr=%s err=%s", addr, err_str(PST_ENOMEM));
        return;
    }
    c->peer = bm_peer_new_inbound(n->base, fd, sa, (socklen_t)salen, &bm_node_peer_ops, c);
    if (c->peer == NULL) { /* fd already closed by bm_peer */
        free(c);
        log_warn("bm_node accept addr=%s err=cannot-start", addr);
        return;
    }
    bm_node_conn_attach(n, c);
    log_info("bm_node accepted id=%s addr=%s", bm_peer_id(c->peer), addr);
}

static void bm_node_accept_error_cb(struct evconnlistener *l, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();
    log_warn("bm_node accept err=%s", evutil_socket_error_to_string(err));
}

/* ---- purge ---- */

static void bm_node_purge_cb(evutil_socket_t fd, short what, void *arg)
{
    bm_node_t *n = arg;
    uint64_t removed = 0;
    int rc = bm_store_inv_purge(n->st, (int64_t)time(NULL), &removed);
    if (rc < 0) {
        log_warn("bm_node purge err=%s", err_str(rc));
        return;
    }
    if (removed > 0)
        log_info("bm_node purge removed=%llu", (unsigned long long)removed);
}

/* ---- public ---- */

static int bm_node_config_check(const struct bm_node_config *cfg)
{
    if (cfg->npeers > BM_NODE_MAX_PEERS || cfg->reconnect_min == 0 ||
        cfg->reconnect_max < cfg->reconnect_min || cfg->purge_interval == 0)
        return PST_ECONFIG;
    for (size_t i = 0; i < cfg->npeers; i++) {
        const struct bm_node_peer_cfg *p = &cfg->peers[i];
        size_t hl = strnlen(p->host, sizeof(p->host));
        if (hl == 0 || hl == sizeof(p->host) || p->port == 0)
            return PST_ECONFIG;
    }
    return 0;
}

static int bm_node_init(bm_node_t *n)
{
    n->purge_ev = event_new(n->base, -1, EV_PERSIST, bm_node_purge_cb, n);
    if (n->purge_ev == NULL)
        return PST_ENOMEM;
    for (size_t i = 0; i < n->cfg.npeers; i++) {
        struct bm_node_slot *s = &n->slots[i];
        s->n = n;
        s->cfg = &n->cfg.peers[i];
        s->backoff = n->cfg.reconnect_min;
        s->timer = evtimer_new(n->base, bm_node_slot_timer_cb, s);
        if (s->timer == NULL)
            return PST_ENOMEM;
    }
    return 0;
}

static int bm_node_listen(bm_node_t *n, int fd)
{
    if (evutil_make_socket_nonblocking(fd) != 0) {
        evutil_closesocket(fd);
        return PST_EIO;
    }
    n->listener = evconnlistener_new(
        n->base, bm_node_accept_cb, n,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_DISABLED, -1, fd);
    if (n->listener == NULL) {
        evutil_closesocket(fd);
        return PST_EIO;
    }
    evconnlistener_set_error_cb(n->listener, bm_node_accept_error_cb);
    return 0;
}

int bm_node_new(struct event_base *base, struct bm_store *st, const struct bm_node_config *cfg,
                const struct bm_node_hooks *hooks, void *ctx, bm_node_t **out)
{
    int fd = cfg != NULL ? cfg->listen_fd : -1;
    if (out != NULL)
        *out = NULL;
    int rc = base == NULL || st == NULL || cfg == NULL || out == NULL ? PST_EINVAL
                                                                      : bm_node_config_check(cfg);
    bm_node_t *n = rc == 0 ? calloc(1, sizeof(*n)) : NULL;
    if (rc == 0 && n == NULL)
        rc = PST_ENOMEM;
    if (rc < 0) {
        if (fd >= 0)
            close(fd);
        return rc;
    }
    n->base = base;
    n->st = st;
    n->cfg = *cfg;
    n->cfg.listen_fd = -1; /* owned by the listener from here */
    if (hooks != NULL)
        n->hooks = *hooks;
    n->ctx = ctx;
    rc = fd >= 0 ? bm_node_listen(n, fd) : 0;
    if (rc == 0)
        rc = bm_node_init(n);
    if (rc < 0) {
        bm_node_free(&n);
        return rc;
    }
    *out = n;
    return 0;
}

int bm_node_start(bm_node_t *n)
{
    if (n == NULL || n->started)
        return PST_EINVAL;
    n->started = true;
    for (size_t i = 0; i < n->cfg.npeers; i++)
        (void)bm_node_resolve(&n->slots[i]); /* logged; the slot stays idle */
    if (n->listener != NULL && evconnlistener_enable(n->listener) != 0)
        return PST_EIO;
    struct timeval pt = {.tv_sec = n->cfg.purge_interval, .tv_usec = 0};
    if (event_add(n->purge_ev, &pt) != 0)
        return PST_EIO;
    log_info("bm_node started listen=%d peers=%zu trusted_only=%d max_inbound=%u",
             n->listener != NULL, n->cfg.npeers, n->cfg.trusted_only != 0, n->cfg.max_inbound);
    for (size_t i = 0; i < n->cfg.npeers; i++)
        bm_node_slot_connect(&n->slots[i]);
    return 0;
}

int bm_node_publish(bm_node_t *n, const uint8_t *obj, size_t len, uint8_t hash[BM_PEER_HASH_LEN])
{
    struct bm_wire_object o;
    uint8_t h[BM_PEER_HASH_LEN];
    char hx[BM_NODE_HEX_LEN + 1];
    bool is_new = false;
    if (n == NULL || obj == NULL)
        return PST_EINVAL;
    const char *why = bm_peer_object_check(obj, len, (int64_t)time(NULL), &o);
    if (why != NULL) {
        log_warn("bm_node publish refused=%s len=%zu", why, len);
        return PST_EINVAL;
    }
    int rc = bm_wire_inventory_hash(obj, len, h);
    if (rc == 0)
        rc = bm_node_store(n, h, &o, &is_new);
    if (rc < 0) {
        log_warn("bm_node publish err=%s", err_str(rc));
        return rc;
    }
    if (is_new)
        n->stats.objects_published++;
    bm_node_hash_hex(h, hx);
    log_info("bm_node published hash=%s type=%u len=%zu new=%d", hx, o.type, len, is_new);
    bm_node_announce(n, h, NULL);
    if (hash != NULL)
        memcpy(hash, h, BM_PEER_HASH_LEN);
    return 0;
}

void bm_node_get_stats(const bm_node_t *n, struct bm_node_stats *out)
{
    *out = n->stats;
    out->peers_established = out->inbound = out->outbound = 0;
    for (const struct bm_node_conn *c = n->conns; c != NULL; c = c->next) {
        if (c->slot != NULL)
            out->outbound++;
        else
            out->inbound++;
        if (bm_peer_state(c->peer) == BM_PEER_ESTABLISHED)
            out->peers_established++;
    }
}

void bm_node_free(bm_node_t **np)
{
    if (np == NULL || *np == NULL)
        return;
    bm_node_t *n = *np;
    while (n->conns != NULL) {
        struct bm_node_conn *c = n->conns;
        bm_node_conn_unlink(n, c);
        bm_peer_free(&c->peer); /* no on_close for it */
        free(c);
    }
    for (size_t i = 0; i < BM_NODE_MAX_PEERS; i++) {
        if (n->slots[i].timer != NULL)
            event_free(n->slots[i].timer);
        n->slots[i].timer = NULL;
    }
    if (n->listener != NULL)
        evconnlistener_free(n->listener);
    if (n->purge_ev != NULL)
        event_free(n->purge_ev);
    free(n);
    *np = NULL;
}
