/*
 * bm_peer.c - one Bitmessage protocol v3 peer connection as an explicit
 * state machine on a libevent bufferevent, modelled on the reference client
 * PyBitmessage (src/network/bmproto.py, tcp.py, connectionpool.py,
 * downloadthread.py, uploadthread.py).
 *
 *   outbound: CONNECTING --tcp up, send version--> VERSION_SENT
 *   inbound:  CONNECTING (waits for the remote's version)
 *   version accepted: send verack (inbound: then our version) -> VERSION_RECEIVED
 *   verack received after the version: -> ESTABLISHED (a verack that comes
 *     first is remembered; the version then establishes at once)
 *   any error, timeout, hang-up, bm_peer_close() -> CLOSING
 *
 * Every change goes through bm_peer_set_state(), which logs old -> new at
 * debug. Commands go through the table bm_peer_cmds[]: verb, allowed-state
 * mask, handler. As in bmproto.py state_bm_command, anything but version,
 * verack and error before the handshake is complete closes the connection;
 * a command outside the table after it (including dinv: no Dandelion here)
 * is ignored ("Unsupported messages" in the spec).
 *
 * Version checks (bmproto.py peerValidityChecks): protocol version >= 3,
 * |timestamp - now| <= 3600 s, stream 1 among the remote's streams, its
 * nonce is not ours (self-connection). A failed check sends an error
 * message with fatal = 2 and closes once it is written, as the reference.
 *
 * Synchronisation (tcp.py sendBigInv; downloadthread.py; uploadthread.py):
 * on establishment our unexpired stream-1 inventory goes out in inv
 * messages of at most BM_PEER_INV_BATCH hashes. An inv from the remote
 * puts each hash the owner does not have into the pending set (at most
 * BM_PEER_MAX_PENDING outstanding getdata entries, each forgotten after
 * BM_PEER_REQUEST_TIMEOUT s), the rest into a bounded wanted queue that
 * refills the pending set as objects arrive. A getdata queues the hashes
 * (bounded) and they are answered while the output buffer holds less than
 * BM_PEER_OUT_MAX bytes. A received object must parse, carry enough proof
 * of work at the network minimums, be within the lifetime limits
 * (bm_pow_check) and be in stream 1; then it goes to the owner. Objects are
 * rate-limited by a token bucket (BM_PEER_OBJECTS_PER_SEC, burst
 * BM_PEER_OBJECTS_BURST): when it is empty, reading pauses until tokens
 * are back - nothing is dropped. Idle: a silent established connection is
 * pinged after the idle timeout (connectionpool.py pings after 300 s) and
 * closed after a second one; before establishment the handshake timeout
 * (20 s, connectionpool.py) closes it.
 *
 * Failure policy: nothing the remote sends can crash the node or make a
 * buffer grow past its limit. Framing errors (bad magic, bad checksum,
 * declared length > BM_WIRE_MAX_PAYLOAD) close at once (no resync on TCP,
 * bmproto.py). Malformed inv/getdata/addr/object payloads are logged and
 * skipped, as the reference does. Allocation failures close the peer.
 */
#include "bitmessage/bm_peer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <openssl/rand.h>

#include "bitmessage/bm_encode.h"
#include "bitmessage/bm_pow.h"
#include "lib/log.h"
#include "lib/netaddr.h"

#define BM_PEER_TICK_MS 1000        /* maintenance: token refill, request expiry */
#define BM_PEER_CLOSE_FLUSH_MS 5000 /* at most this long to flush a final error */
#define BM_PEER_MAX_ANNOUNCE BM_WIRE_MAX_INV_COUNT
#define BM_PEER_ID_LEN 8

struct bm_peer_req {
    uint8_t hash[BM_PEER_HASH_LEN];
    int64_t at;
};

/* A bounded FIFO of hashes (head..count are live). */
struct bm_peer_hashq {
    uint8_t (*v)[BM_PEER_HASH_LEN];
    size_t head, count, max;
};

struct bm_peer {
    struct event_base *base;
    const struct bm_peer_ops *ops;
    void *ctx;
    struct bufferevent *bev; /* NULL once closed */
    enum bm_peer_state state;
    bool outbound;
    struct sockaddr_storage sa;
    socklen_t salen;
    char id[BM_PEER_ID_LEN + 1];
    char addr[NETADDR_STRLEN];
    uint64_t nonce, remote_nonce;
    uint16_t listen_port;
    unsigned handshake_ms, idle_ms;
    bool version_received, verack_received, ping_outstanding;
    bool paused;      /* reading stopped by the token bucket */
    bool flushing;    /* CLOSING, waiting for the output to drain */
    bool closed_told; /* on_close is scheduled or done */
    const char *close_reason;
    double tokens;
    int64_t refill_ms;
    struct event *handshake_ev, *tick_ev, *flush_ev, *close_ev;
    struct bm_peer_req pending[BM_PEER_MAX_PENDING];
    size_t npending;
    struct bm_peer_hashq wanted, upload, announce;
    buf_t pl;  /* payload under construction */
    buf_t pkt; /* packet under construction */
    struct bm_peer_stats stats;
};

/* ---- helpers ---- */

static const char *const bm_peer_state_names[] = {
    [BM_PEER_CONNECTING] = "CONNECTING",
    [BM_PEER_VERSION_SENT] = "VERSION_SENT",
    [BM_PEER_VERSION_RECEIVED] = "VERSION_RECEIVED",
    [BM_PEER_ESTABLISHED] = "ESTABLISHED",
    [BM_PEER_CLOSING] = "CLOSING",
};

const char *bm_peer_state_name(enum bm_peer_state s)
{
    if ((size_t)s >= PST_ARRAY_LEN(bm_peer_state_names))
        return "?";
    return bm_peer_state_names[s];
}

static int64_t bm_peer_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval bm_peer_tv(unsigned ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (long)(ms % 1000) * 1000};
    return tv;
}

static int bm_peer_hashq_push(struct bm_peer_hashq *q, const uint8_t *hash)
{
    if (q->count - q->head >= q->max)
        return PST_ELIMIT;
    if (q->v == NULL) {
        q->v = calloc(q->max, BM_PEER_HASH_LEN);
        if (q->v == NULL)
            return PST_ENOMEM;
    }
    if (q->count == q->max) { /* compact: head > 0 here */
        memmove(q->v, q->v + q->head, (q->count - q->head) * BM_PEER_HASH_LEN);
        q->count -= q->head;
        q->head = 0;
    }
    memcpy(q->v[q->count++], hash, BM_PEER_HASH_LEN);
    return 0;
}

static size_t bm_peer_hashq_len(const struct bm_peer_hashq *q)
{
    return q->count - q->head;
}

static const uint8_t *bm_peer_hashq_pop(struct bm_peer_hashq *q)
{
    if (q->head == q->count)
        return NULL;
    const uint8_t *h = q->v[q->head++];
    if (q->head == q->count)
        q->head = q->count = 0; /* the returned slot stays intact until the next push */
    return h;
}

static void bm_peer_hashq_free(struct bm_peer_hashq *q)
{
    free(q->v);
    q->v = NULL;
    q->head = q->count = 0;
}

static void bm_peer_set_state(bm_peer_t *p, enum bm_peer_state ns)
{
    if (p->state == ns)
        return;
    log_debug("bm_peer state id=%s addr=%s %s -> %s", p->id, p->addr, bm_peer_state_name(p->state),
              bm_peer_state_name(ns));
    p->state = ns;
}

/* ---- teardown ---- */

static void bm_peer_finish(bm_peer_t *p)
{
    if (p->bev != NULL) {
        bufferevent_free(p->bev);
        p->bev = NULL;
    }
    event_del(p->handshake_ev);
    event_del(p->tick_ev);
    event_del(p->flush_ev);
    if (!p->closed_told) {
        p->closed_told = true;
        event_active(p->close_ev, EV_TIMEOUT, 1);
    }
}

/* bm_peer_close_flush - enter CLOSING; with flush, let the output drain first. */
static void bm_peer_close_flush(bm_peer_t *p, const char *reason, bool flush)
{
    if (p->state == BM_PEER_CLOSING)
        return;
    char q[128];
    log_info("bm_peer closed id=%s addr=%s state=%s reason=%s", p->id, p->addr,
             bm_peer_state_name(p->state), log_quote(q, sizeof(q), reason, strlen(reason)));
    p->close_reason = reason;
    bm_peer_set_state(p, BM_PEER_CLOSING);
    if (flush && p->bev != NULL && evbuffer_get_length(bufferevent_get_output(p->bev)) > 0) {
        struct timeval wt = bm_peer_tv(BM_PEER_CLOSE_FLUSH_MS);
        p->flushing = true;
        bufferevent_disable(p->bev, EV_READ);
        bufferevent_set_timeouts(p->bev, NULL, &wt);
        event_del(p->handshake_ev);
        event_del(p->tick_ev);
        return;
    }
    bm_peer_finish(p);
}

void bm_peer_close(bm_peer_t *p, const char *reason)
{
    bm_peer_close_flush(p, reason, false);
}

static void bm_peer_close_cb(evutil_socket_t fd, short what, void *arg)
{
    bm_peer_t *p = arg;
    if (p->ops->on_close != NULL)
        p->ops->on_close(p->ctx, p, p->close_reason); /* may free p: nothing after this */
}

/* ---- sending ---- */

static int bm_peer_send(bm_peer_t *p, const char *cmd, const uint8_t *payload, size_t len)
{
    if (p->bev == NULL || p->state == BM_PEER_CLOSING)
        return PST_EIO;
    buf_reset(&p->pkt);
    int rc = bm_wire_packet_build(&p->pkt, cmd, payload, len);
    if (rc < 0)
        return rc;
    if (bufferevent_write(p->bev, p->pkt.data, p->pkt.len) != 0)
        return PST_ENOMEM;
    return 0;
}

static void bm_peer_sockaddr_ip(const struct sockaddr_storage *ss, uint8_t ip[16], uint16_t *port)
{
    memset(ip, 0, 16);
    *port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        ip[10] = ip[11] = 0xff;
        memcpy(ip + 12, &in->sin_addr, 4);
        *port = ntohs(in->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        memcpy(ip, &in6->sin6_addr, 16);
        *port = ntohs(in6->sin6_port);
    }
}

static int bm_peer_send_version(bm_peer_t *p)
{
    static const uint64_t streams[] = {BM_PEER_STREAM};
    struct bm_wire_version v = {
        .protocol_version = BM_WIRE_PROTOCOL_VERSION,
        .services = BM_WIRE_NODE_NETWORK,
        .timestamp = (int64_t)time(NULL),
        .nonce = p->nonce,
        .user_agent = (const uint8_t *)BM_PEER_USER_AGENT,
        .user_agent_len = sizeof(BM_PEER_USER_AGENT) - 1,
    };
    v.addr_recv.services = BM_WIRE_NODE_NETWORK;
    bm_peer_sockaddr_ip(&p->sa, v.addr_recv.ip, &v.addr_recv.port);
    /* addr_from: as the reference, loopback and our listening port */
    v.addr_from.services = BM_WIRE_NODE_NETWORK;
    v.addr_from.ip[10] = v.addr_from.ip[11] = 0xff;
    v.addr_from.ip[12] = 127;
    v.addr_from.ip[15] = 1;
    v.addr_from.port = p->listen_port;
    buf_reset(&p->pl);
    int rc = bm_wire_version_build(&p->pl, &v, streams, PST_ARRAY_LEN(streams));
    if (rc < 0)
        return rc;
    return bm_peer_send(p, "version", (const uint8_t *)p->pl.data, p->pl.len);
}

static void bm_peer_send_error(bm_peer_t *p, const char *text)
{
    struct bm_wire_error e = {
        .fatal = BM_WIRE_ERR_FATAL, .text = (const uint8_t *)text, .text_len = strlen(text)};
    buf_reset(&p->pl);
    if (bm_wire_error_build(&p->pl, &e) < 0)
        return;
    (void)bm_peer_send(p, "error", (const uint8_t *)p->pl.data, p->pl.len);
}

/* bm_peer_send_vectors - one inv or getdata with count hashes at vec. */
static int bm_peer_send_vectors(bm_peer_t *p, const char *cmd, const uint8_t *vec, size_t count)
{
    if (count == 0)
        return 0;
    buf_reset(&p->pl);
    int rc = bm_wire_inv_build(&p->pl, vec, count);
    if (rc < 0)
        return rc;
    return bm_peer_send(p, cmd, (const uint8_t *)p->pl.data, p->pl.len);
}

/* ---- inventory announcement ---- */

struct bm_peer_invbatch {
    bm_peer_t *p;
    uint8_t *vec; /* BM_PEER_INV_BATCH hashes */
    size_t count;
    int err;
};

static int bm_peer_invbatch_flush(struct bm_peer_invbatch *b)
{
    int rc = bm_peer_send_vectors(b->p, "inv", b->vec, b->count);
    if (rc == 0)
        b->p->stats.inv_out += b->count;
    b->count = 0;
    return rc;
}

static int bm_peer_invbatch_add(const uint8_t hash[BM_PEER_HASH_LEN], void *arg)
{
    struct bm_peer_invbatch *b = arg;
    memcpy(b->vec + b->count * BM_PEER_HASH_LEN, hash, BM_PEER_HASH_LEN);
    if (++b->count < BM_PEER_INV_BATCH)
        return 0;
    b->err = bm_peer_invbatch_flush(b);
    return b->err;
}

static int bm_peer_send_big_inv(bm_peer_t *p)
{
    if (p->ops->inventory_iter == NULL)
        return 0;
    struct bm_peer_invbatch b = {.p = p,
                                 .vec = malloc((size_t)BM_PEER_INV_BATCH * BM_PEER_HASH_LEN)};
    if (b.vec == NULL)
        return PST_ENOMEM;
    int rc = p->ops->inventory_iter(p->ctx, BM_PEER_STREAM, bm_peer_invbatch_add, &b);
    if (rc == 0 && b.err == 0)
        rc = bm_peer_invbatch_flush(&b);
    else if (b.err < 0)
        rc = b.err;
    free(b.vec);
    return rc;
}

static void bm_peer_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    bm_peer_t *p = arg;
    if (p->state != BM_PEER_ESTABLISHED)
        return;
    while (bm_peer_hashq_len(&p->announce) > 0) {
        size_t n = bm_peer_hashq_len(&p->announce);
        if (n > BM_PEER_INV_BATCH)
            n = BM_PEER_INV_BATCH;
        const uint8_t *vec = p->announce.v[p->announce.head];
        if (bm_peer_send_vectors(p, "inv", vec, n) < 0) {
            bm_peer_close(p, "cannot queue inv");
            return;
        }
        p->stats.inv_out += n;
        p->announce.head += n;
    }
    p->announce.head = p->announce.count = 0;
}

/* ---- downloads ---- */

static bool bm_peer_is_pending(const bm_peer_t *p, const uint8_t *hash)
{
    for (size_t i = 0; i < p->npending; i++)
        if (memcmp(p->pending[i].hash, hash, BM_PEER_HASH_LEN) == 0)
            return true;
    return false;
}

static bool bm_peer_unpend(bm_peer_t *p, const uint8_t *hash)
{
    for (size_t i = 0; i < p->npending; i++) {
        if (memcmp(p->pending[i].hash, hash, BM_PEER_HASH_LEN) != 0)
            continue;
        p->pending[i] = p->pending[--p->npending];
        return true;
    }
    return false;
}

/* bm_peer_request - move wanted hashes into the pending set and send one getdata. */
static void bm_peer_request(bm_peer_t *p)
{
    size_t first = p->npending;
    int64_t now = (int64_t)time(NULL);
    while (p->npending < BM_PEER_MAX_PENDING) {
        const uint8_t *h = bm_peer_hashq_pop(&p->wanted);
        if (h == NULL)
            break;
        if (bm_peer_is_pending(p, h) || p->ops->have(p->ctx, h))
            continue;
        memcpy(p->pending[p->npending].hash, h, BM_PEER_HASH_LEN);
        p->pending[p->npending++].at = now;
    }
    size_t n = p->npending - first;
    if (n == 0)
        return;
    /* the pending entries are contiguous structs, not vectors: copy them out */
    uint8_t *vec = malloc(n * BM_PEER_HASH_LEN);
    if (vec == NULL) {
        bm_peer_close(p, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++)
        memcpy(vec + i * BM_PEER_HASH_LEN, p->pending[first + i].hash, BM_PEER_HASH_LEN);
    int rc = bm_peer_send_vectors(p, "getdata", vec, n);
    free(vec);
    if (rc < 0) {
        bm_peer_close(p, "cannot queue getdata");
        return;
    }
    p->stats.getdata_out += n;
}

static void bm_peer_expire_requests(bm_peer_t *p, int64_t now)
{
    for (size_t i = 0; i < p->npending;) {
        if (now - p->pending[i].at > BM_PEER_REQUEST_TIMEOUT)
            p->pending[i] = p->pending[--p->npending];
        else
            i++;
    }
}

/* ---- uploads ---- */

static void bm_peer_pump_uploads(bm_peer_t *p)
{
    while (p->state == BM_PEER_ESTABLISHED &&
           evbuffer_get_length(bufferevent_get_output(p->bev)) < BM_PEER_OUT_MAX) {
        const uint8_t *h = bm_peer_hashq_pop(&p->upload);
        if (h == NULL)
            return;
        buf_reset(&p->pl);
        int rc = p->ops->get_object(p->ctx, h, &p->pl);
        if (rc < 0) {
            log_debug("bm_peer getdata id=%s addr=%s unknown=1 err=%s", p->id, p->addr,
                      err_str(rc));
            continue;
        }
        if (bm_peer_send(p, "object", (const uint8_t *)p->pl.data, p->pl.len) < 0) {
            bm_peer_close(p, "cannot queue object");
            return;
        }
        p->stats.objects_out++;
    }
}

/* ---- token bucket ---- */

static void bm_peer_refill(bm_peer_t *p)
{
    int64_t now = bm_peer_mono_ms();
    p->tokens += (double)(now - p->refill_ms) * BM_PEER_OBJECTS_PER_SEC / 1000.0;
    if (p->tokens > BM_PEER_OBJECTS_BURST)
        p->tokens = BM_PEER_OBJECTS_BURST;
    p->refill_ms = now;
}

static bool bm_peer_take_token(bm_peer_t *p)
{
    bm_peer_refill(p);
    if (p->tokens < 1.0)
        return false;
    p->tokens -= 1.0;
    return true;
}

/* ---- handshake ---- */

static void bm_peer_established(bm_peer_t *p)
{
    struct timeval idle = bm_peer_tv(p->idle_ms);
    event_del(p->handshake_ev);
    bm_peer_set_state(p, BM_PEER_ESTABLISHED);
    bufferevent_set_timeouts(p->bev, &idle, NULL);
    log_info("bm_peer established id=%s addr=%s outbound=%d", p->id, p->addr, p->outbound);
    if (p->ops->on_established != NULL) {
        p->ops->on_established(p->ctx, p);
        if (p->state != BM_PEER_ESTABLISHED)
            return;
    }
    if (bm_peer_send_big_inv(p) < 0)
        bm_peer_close(p, "cannot send inventory");
}

/* bm_peer_version_check - NULL if acceptable, else the error text for the remote. */
static const char *bm_peer_version_check(bm_peer_t *p, const struct bm_wire_version *v)
{
    int64_t offset = v->timestamp - (int64_t)time(NULL);
    if (v->protocol_version < BM_WIRE_PROTOCOL_VERSION)
        return "Your node is using an old protocol. Closing connection.";
    if (offset > BM_PEER_MAX_TIME_OFFSET)
        return "Your time is too far in the future compared to mine. Closing connection.";
    if (offset < -BM_PEER_MAX_TIME_OFFSET)
        return "Your time is too far in the past compared to mine. Closing connection.";
    if (!bm_wire_version_has_stream(v, BM_PEER_STREAM))
        return "We don't have shared stream interests. Closing connection.";
    bool own = v->nonce == p->nonce;
    if (!own && p->ops->is_own_nonce != NULL)
        own = p->ops->is_own_nonce(p->ctx, v->nonce) != 0;
    if (own)
        return "I'm connected to myself. Closing connection.";
    return NULL;
}

static void bm_peer_cmd_version(bm_peer_t *p, const struct bm_wire_packet *pkt)
{
    struct bm_wire_version v;
    if (p->version_received) {
        bm_peer_close(p, "duplicate version");
        return;
    }
    if (bm_wire_version_parse(pkt->payload, pkt->payload_len, &v) < 0) {
        bm_peer_close(p, "malformed version");
        return;
    }
    char ua[96];
    log_debug("bm_peer version id=%s addr=%s protocol=%u services=%llu offset=%lld ua=%s", p->id,
              p->addr, v.protocol_version, (unsigned long long)v.services,
              (long long)(v.timestamp - (int64_t)time(NULL)),
              log_quote(ua, sizeof(ua), (const char *)v.user_agent, v.user_agent_len));
    const char *why = bm_peer_version_check(p, &v);
    if (why != NULL) {
        bm_peer_send_error(p, why);
        bm_peer_close_flush(p, why, true);
        return;
    }
    p->version_received = true;
    p->remote_nonce = v.nonce;
    if (bm_peer_send(p, "verack", NULL, 0) < 0 || (!p->outbound && bm_peer_send_version(p) < 0)) {
        bm_peer_close(p, "cannot queue handshake");
        return;
    }
    if (p->verack_received) {
        bm_peer_established(p);
        return;
    }
    bm_peer_set_state(p, BM_PEER_VERSION_RECEIVED);
}

static void bm_peer_cmd_verack(bm_peer_t *p, const struct bm_wire_packet *pkt)
{
    if (p->verack_received)
        return;
    p->verack_received = true;
    if (p->version_received)
        bm_peer_established(p);
}

/* ---- established commands ---- */

static void bm_peer_cmd_inv(bm_peer_t *p, const struct bm_wire_packet *pkt)
{
    struct bm_wire_inv inv;
    if (bm_wire_inv_parse(pkt->payload, pkt->payload_len, &inv) < 0) {
        log_debug("bm_peer inv id=%s addr=%s malformed=1", p->id, p->addr);
        return;
    }
    size_t dropped = 0;
    for (size_t i = 0; i < inv.count; i++) {
        const uint8_t *h = inv.vectors + i * BM_PEER_HASH_LEN;
        if (p->ops->have(p->ctx, h) || bm_peer_is_pending(p, h))
            continue;
        if (bm_peer_hashq_push(&p->wanted, h) < 0)
            dropped++;
    }
    if (dropped > 0)
        log_debug("bm_peer inv id=%s addr=%s dropped=%zu", p->id, p->addr, dropped);
    bm_peer_request(p);
}

static void bm_peer_cmd_getdata(bm_peer_t *p, const struct bm_wire_packet *pkt)
{
    struct bm_wire_inv inv;
    if (bm_wire_inv_parse(pkt->payload, pkt->payload_len, &inv) < 0) {
        log_debug("bm_peer getdata id=%s addr=%s malformed=1", p->id, p->addr);
        return;
    }
    size_t dropped = 0;
    for (size_t i = 0; i < inv.count; i++)
        if (bm_peer_hashq_push(&p->upload, inv.vectors + i * BM_PEER_HASH_LEN) < 0)
            dropped++;
    if (dropped > 0)
        log_debug("bm_peer getdata id=%s addr=%s dropped=%zu", p->id, p->addr, dropped);
    bm_peer_pump_uploads(p);
}

const char *bm_peer_object_check(const uint8_t *obj, size_t len, int64_t now,
                                 struct bm_wire_object *o)
{
    int rc = bm_wire_object_parse(obj, len, o);
    if (rc == PST_ELIMIT)
        return "too large";
    if (rc < 0)
        return "malformed";
    if (o->stream != BM_PEER_STREAM)
        return "unwanted stream";
    if (bm_pow_eol_check(o->expires, now) < 0)
        return "lifetime";
    if (bm_pow_check(o->data, o->data_len, now, NULL) < 0)
        return "insufficient pow";
    return NULL;
}

static void bm_peer_cmd_object(bm_peer_t *p, const struct bm_wire_packet *pkt)
{
    struct bm_wire_object o;
    uint8_t hash[BM_PEER_HASH_LEN];
    const char *why = bm_peer_object_check(pkt->payload, pkt->payload_len, (int64_t)time(NULL), &o);
    if (why == NULL && bm_wire_inventory_hash(o.data, o.data_len, hash) < 0)
        why = "hash failed";
    if (why != NULL) {
        char q[64];
        p->stats.objects_refused++;
        log_debug("bm_peer object id=%s addr=%s refused=%s", p->id, p->addr,
                  log_quote(q, sizeof(q), why, strlen(why)));
        return; /* a pending entry for it expires by itself */
    }
    bool asked = bm_peer_unpend(p, hash);
    if (!p->ops->have(p->ctx, hash)) {
        p->stats.objects_in++;
        p->ops->on_object(p->ctx, p, hash, o.data, o.data_len);
        if (p->state != BM_PEER_ESTABLISHED)
            return;
    }
    if (asked && p->npending <= BM_PEER_MAX_PENDING / 2)
        bm_peer_request(p);
}

static void bm_peer_cmd_addr(bm_peer_t *p, const struct bm_wire_packet *pkt)
{
    struct bm_wire_addr a;
    if (bm_wire_addr_parse(pkt->payload, pkt->payload_len, &a) < 0) {
        log_debug("bm_peer addr id=%s addr=%s malformed=1", p->id, p->addr);
        return;
    }
    int64_t now = (int64_t)time(NULL);
    for (size_t i = 0; i < a.count && p->state == BM_PEER_ESTABLISHED; i++) {
        struct bm_wire_addr_entry e;
        if (bm_wire_addr_get(&a, i, &e) < 0)
            return;
        /* bmproto.py bm_command_addr: our stream, seen in the past but within
         * ADDRESS_ALIVE, a port; the owner judges the IP itself */
        if (e.stream != BM_PEER_STREAM || e.addr.port == 0)
            continue;
        if (e.time > (uint64_t)INT64_MAX || (int64_t)e.time >= now ||
            (int64_t)e.time <= now - BM_PEER_ADDRESS_ALIVE)
            continue;
        if (p->ops->on_addr != NULL)
            p->ops->on_addr(p->ctx, p, &e);
    }
}

static void bm_peer_cmd_ping(bm_peer_t *p, const struct bm_wire_packet *pkt)
{
    if (bm_peer_send(p, "pong", NULL, 0) < 0)
        bm_peer_close(p, "cannot queue pong");
}

static void bm_peer_cmd_ignore(bm_peer_t *p, const struct bm_wire_packet *pkt)
{
}

static void bm_peer_cmd_error(bm_peer_t *p, const struct bm_wire_packet *pkt)
{
    struct bm_wire_error e;
    char q[160];
    if (bm_wire_error_parse(pkt->payload, pkt->payload_len, &e) < 0) {
        log_debug("bm_peer error id=%s addr=%s malformed=1", p->id, p->addr);
        return;
    }
    log_info("bm_peer remote-error id=%s addr=%s fatal=%llu text=%s", p->id, p->addr,
             (unsigned long long)e.fatal,
             log_quote(q, sizeof(q), (const char *)e.text, e.text_len));
}

/* ---- the command table ---- */

#define BM_PEER_S(s) (1u << (s))
#define BM_PEER_S_HANDSHAKE                                                                        \
    (BM_PEER_S(BM_PEER_CONNECTING) | BM_PEER_S(BM_PEER_VERSION_SENT) |                             \
     BM_PEER_S(BM_PEER_VERSION_RECEIVED))
#define BM_PEER_S_EST BM_PEER_S(BM_PEER_ESTABLISHED)
#define BM_PEER_S_ANY (BM_PEER_S_HANDSHAKE | BM_PEER_S_EST)

struct bm_peer_cmd {
    enum bm_wire_cmd cmd;
    unsigned states; /* mask of states in which the command is accepted */
    void (*fn)(bm_peer_t *p, const struct bm_wire_packet *pkt);
};

static const struct bm_peer_cmd bm_peer_cmds[] = {
    {BM_WIRE_CMD_VERSION, BM_PEER_S_ANY, bm_peer_cmd_version},
    {BM_WIRE_CMD_VERACK, BM_PEER_S_ANY, bm_peer_cmd_verack},
    {BM_WIRE_CMD_ERROR, BM_PEER_S_ANY, bm_peer_cmd_error},
    {BM_WIRE_CMD_INV, BM_PEER_S_EST, bm_peer_cmd_inv},
    {BM_WIRE_CMD_GETDATA, BM_PEER_S_EST, bm_peer_cmd_getdata},
    {BM_WIRE_CMD_OBJECT, BM_PEER_S_EST, bm_peer_cmd_object},
    {BM_WIRE_CMD_ADDR, BM_PEER_S_EST, bm_peer_cmd_addr},
    {BM_WIRE_CMD_PING, BM_PEER_S_EST, bm_peer_cmd_ping},
    {BM_WIRE_CMD_PONG, BM_PEER_S_EST, bm_peer_cmd_ignore},
    {BM_WIRE_CMD_DINV, BM_PEER_S_EST, bm_peer_cmd_ignore}, /* no Dandelion: as if off */
    {BM_WIRE_CMD_UNKNOWN, BM_PEER_S_EST, bm_peer_cmd_ignore},
};

static void bm_peer_dispatch(bm_peer_t *p, const struct bm_wire_packet *pkt)
{
    p->stats.packets_in++;
    p->ping_outstanding = false;
    for (size_t i = 0; i < PST_ARRAY_LEN(bm_peer_cmds); i++) {
        const struct bm_peer_cmd *c = &bm_peer_cmds[i];
        if (c->cmd != pkt->cmd)
            continue;
        if (!(c->states & BM_PEER_S(p->state))) {
            char q[40];
            log_debug("bm_peer command id=%s addr=%s cmd=%s state=%s", p->id, p->addr,
                      log_quote(q, sizeof(q), pkt->command, strlen(pkt->command)),
                      bm_peer_state_name(p->state));
            bm_peer_close(p, "command before handshake");
            return;
        }
        c->fn(p, pkt);
        return;
    }
    bm_peer_close(p, "command not in table"); /* unreachable: UNKNOWN is in the table */
}

/* ---- libevent callbacks ---- */

static void bm_peer_pause(bm_peer_t *p)
{
    p->paused = true;
    bufferevent_disable(p->bev, EV_READ);
    log_debug("bm_peer throttled id=%s addr=%s", p->id, p->addr);
}

static void bm_peer_process_input(bm_peer_t *p)
{
    while (p->state != BM_PEER_CLOSING && !p->paused && p->bev != NULL) {
        struct evbuffer *in = bufferevent_get_input(p->bev);
        size_t avail = evbuffer_get_length(in);
        if (avail < BM_WIRE_HEADER_LEN)
            return;
        struct bm_wire_packet pkt;
        size_t consumed = 0;
        const uint8_t *hdr = evbuffer_pullup(in, BM_WIRE_HEADER_LEN);
        if (hdr == NULL) {
            bm_peer_close(p, "out of memory");
            return;
        }
        /* judge the header alone first: a lying length fails before we wait for it */
        if (bm_wire_frame(hdr, BM_WIRE_HEADER_LEN, &pkt, &consumed) < 0) {
            bm_peer_close(p, pkt.error != NULL ? pkt.error : "framing error");
            return;
        }
        size_t need = BM_WIRE_HEADER_LEN + bm_be32_load(hdr + 16);
        if (avail < need)
            return;
        const uint8_t *data = evbuffer_pullup(in, (ev_ssize_t)need);
        if (data == NULL) {
            bm_peer_close(p, "out of memory");
            return;
        }
        if (bm_wire_frame(data, need, &pkt, &consumed) < 0 || consumed != need) {
            bm_peer_close(p, pkt.error != NULL ? pkt.error : "framing error");
            return;
        }
        if (pkt.cmd == BM_WIRE_CMD_OBJECT && p->state == BM_PEER_ESTABLISHED &&
            !bm_peer_take_token(p)) {
            bm_peer_pause(p);
            return;
        }
        bm_peer_dispatch(p, &pkt);
        if (p->state == BM_PEER_CLOSING || p->bev == NULL)
            return;
        evbuffer_drain(in, need);
    }
}

static void bm_peer_read_cb(struct bufferevent *bev, void *arg)
{
    bm_peer_process_input(arg);
}

static void bm_peer_write_cb(struct bufferevent *bev, void *arg)
{
    bm_peer_t *p = arg;
    if (p->flushing) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            bm_peer_finish(p);
        return;
    }
    if (p->state == BM_PEER_ESTABLISHED)
        bm_peer_pump_uploads(p);
}

static void bm_peer_idle(bm_peer_t *p)
{
    if (p->state != BM_PEER_ESTABLISHED || p->ping_outstanding) {
        bm_peer_close(p, p->state == BM_PEER_ESTABLISHED ? "idle timeout" : "handshake timeout");
        return;
    }
    p->ping_outstanding = true;
    if (bm_peer_send(p, "ping", NULL, 0) < 0) {
        bm_peer_close(p, "cannot queue ping");
        return;
    }
    bufferevent_enable(p->bev, EV_READ);
}

static void bm_peer_event_cb(struct bufferevent *bev, short what, void *arg)
{
    bm_peer_t *p = arg;
    if (p->state == BM_PEER_CLOSING) {
        bm_peer_finish(p); /* flush timed out or failed */
        return;
    }
    if (what & BEV_EVENT_CONNECTED) {
        if (bm_peer_send_version(p) < 0) {
            bm_peer_close(p, "cannot queue version");
            return;
        }
        bm_peer_set_state(p, BM_PEER_VERSION_SENT);
        return;
    }
    if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING)) {
        bm_peer_idle(p);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        bm_peer_close(p, "closed by peer");
        return;
    }
    bm_peer_close(p, p->state == BM_PEER_CONNECTING && p->outbound ? "connect failed"
                                                                   : "connection error");
}

static void bm_peer_handshake_cb(evutil_socket_t fd, short what, void *arg)
{
    bm_peer_t *p = arg;
    if (p->state != BM_PEER_ESTABLISHED)
        bm_peer_close(p, "handshake timeout");
}

static void bm_peer_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    bm_peer_t *p = arg;
    if (p->state != BM_PEER_ESTABLISHED)
        return;
    size_t before = p->npending;
    bm_peer_expire_requests(p, (int64_t)time(NULL));
    if (p->npending < before)
        bm_peer_request(p);
    if (p->state != BM_PEER_ESTABLISHED || !p->paused)
        return;
    bm_peer_refill(p);
    if (p->tokens < 1.0)
        return;
    p->paused = false;
    bufferevent_enable(p->bev, EV_READ);
    bm_peer_process_input(p);
}

/* ---- construction ---- */

static bm_peer_t *bm_peer_alloc(struct event_base *base, const struct sockaddr *sa, socklen_t salen,
                                const struct bm_peer_ops *ops, void *ctx)
{
    if (base == NULL || ops == NULL || ops->have == NULL || ops->get_object == NULL ||
        ops->on_object == NULL || salen > sizeof(struct sockaddr_storage))
        return NULL;
    bm_peer_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->base = base;
    p->ops = ops;
    p->ctx = ctx;
    p->listen_port = BM_PEER_DEFAULT_PORT;
    p->handshake_ms = BM_PEER_HANDSHAKE_TIMEOUT_MS;
    p->idle_ms = BM_PEER_IDLE_TIMEOUT_MS;
    p->tokens = BM_PEER_OBJECTS_BURST;
    p->refill_ms = bm_peer_mono_ms();
    p->close_reason = "closed";
    p->wanted.max = BM_PEER_MAX_WANTED;
    p->upload.max = BM_PEER_MAX_UPLOAD;
    p->announce.max = BM_PEER_MAX_ANNOUNCE;
    buf_init(&p->pl, BM_WIRE_MAX_PAYLOAD);
    buf_init(&p->pkt, BM_PEER_IN_MAX);
    snprintf(p->addr, sizeof(p->addr), "-");
    if (sa != NULL && salen > 0) {
        memcpy(&p->sa, sa, salen);
        p->salen = salen;
        netaddr_to_str(sa, p->addr, sizeof(p->addr));
    }
    uint8_t rnd[12];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        bm_peer_free(&p);
        return NULL;
    }
    p->nonce = bm_be64_load(rnd);
    int n = snprintf(p->id, sizeof(p->id), "%08x", (unsigned)bm_be32_load(rnd + 8));
    PST_ASSERT(n == BM_PEER_ID_LEN);
    p->handshake_ev = evtimer_new(base, bm_peer_handshake_cb, p);
    p->tick_ev = event_new(base, -1, EV_PERSIST, bm_peer_tick_cb, p);
    p->flush_ev = event_new(base, -1, 0, bm_peer_flush_cb, p);
    p->close_ev = event_new(base, -1, 0, bm_peer_close_cb, p);
    if (p->handshake_ev == NULL || p->tick_ev == NULL || p->flush_ev == NULL ||
        p->close_ev == NULL) {
        bm_peer_free(&p);
        return NULL;
    }
    return p;
}

static int bm_peer_start(bm_peer_t *p)
{
    struct timeval hs = bm_peer_tv(p->handshake_ms);
    struct timeval tick = bm_peer_tv(BM_PEER_TICK_MS);
    bufferevent_setcb(p->bev, bm_peer_read_cb, bm_peer_write_cb, bm_peer_event_cb, p);
    bufferevent_setwatermark(p->bev, EV_READ, 0, BM_PEER_IN_MAX);
    bufferevent_setwatermark(p->bev, EV_WRITE, BM_PEER_OUT_MAX / 2, 0);
    if (bufferevent_enable(p->bev, EV_READ | EV_WRITE) != 0)
        return PST_EIO;
    if (evtimer_add(p->handshake_ev, &hs) != 0 || event_add(p->tick_ev, &tick) != 0)
        return PST_EIO;
    return 0;
}

bm_peer_t *bm_peer_new_outbound(struct event_base *base, const struct sockaddr *sa, socklen_t salen,
                                const struct bm_peer_ops *ops, void *ctx)
{
    if (sa == NULL)
        return NULL;
    bm_peer_t *p = bm_peer_alloc(base, sa, salen, ops, ctx);
    if (p == NULL)
        return NULL;
    p->outbound = true;
    p->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (p->bev == NULL || bm_peer_start(p) < 0 ||
        bufferevent_socket_connect(p->bev, (struct sockaddr *)&p->sa, (int)p->salen) != 0) {
        bm_peer_free(&p);
        return NULL;
    }
    log_debug("bm_peer connecting id=%s addr=%s port=%u", p->id, p->addr, netaddr_port(sa));
    return p;
}

bm_peer_t *bm_peer_new_inbound(struct event_base *base, evutil_socket_t fd,
                               const struct sockaddr *sa, socklen_t salen,
                               const struct bm_peer_ops *ops, void *ctx)
{
    bm_peer_t *p = bm_peer_alloc(base, sa, salen, ops, ctx);
    if (p == NULL || evutil_make_socket_nonblocking(fd) != 0) {
        evutil_closesocket(fd);
        bm_peer_free(&p);
        return NULL;
    }
    p->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (p->bev == NULL) {
        evutil_closesocket(fd);
        bm_peer_free(&p);
        return NULL;
    }
    if (bm_peer_start(p) < 0) {
        bm_peer_free(&p);
        return NULL;
    }
    log_debug("bm_peer accepted id=%s addr=%s", p->id, p->addr);
    return p;
}

/* ---- public accessors ---- */

void bm_peer_set_timeouts(bm_peer_t *p, unsigned handshake_ms, unsigned idle_ms)
{
    if (handshake_ms > 0) {
        struct timeval hs = bm_peer_tv(handshake_ms);
        p->handshake_ms = handshake_ms;
        if (p->state != BM_PEER_ESTABLISHED && p->state != BM_PEER_CLOSING)
            (void)evtimer_add(p->handshake_ev, &hs);
    }
    if (idle_ms > 0) {
        p->idle_ms = idle_ms;
        if (p->state == BM_PEER_ESTABLISHED && p->bev != NULL) {
            struct timeval idle = bm_peer_tv(idle_ms);
            bufferevent_set_timeouts(p->bev, &idle, NULL);
        }
    }
}

void bm_peer_set_listen_port(bm_peer_t *p, uint16_t port)
{
    p->listen_port = port;
}

int bm_peer_announce(bm_peer_t *p, const uint8_t hash[BM_PEER_HASH_LEN])
{
    if (p->state != BM_PEER_ESTABLISHED)
        return 0;
    int rc = bm_peer_hashq_push(&p->announce, hash);
    if (rc < 0)
        return rc;
    if (!event_pending(p->flush_ev, EV_TIMEOUT, NULL))
        event_active(p->flush_ev, EV_TIMEOUT, 1);
    return 0;
}

enum bm_peer_state bm_peer_state(const bm_peer_t *p)
{
    return p->state;
}

int bm_peer_is_outbound(const bm_peer_t *p)
{
    return p->outbound;
}

uint64_t bm_peer_nonce(const bm_peer_t *p)
{
    return p->nonce;
}

uint64_t bm_peer_remote_nonce(const bm_peer_t *p)
{
    return p->remote_nonce;
}

void bm_peer_get_stats(const bm_peer_t *p, struct bm_peer_stats *out)
{
    *out = p->stats;
}

const char *bm_peer_id(const bm_peer_t *p)
{
    return p->id;
}

static void bm_peer_event_free(struct event **ev)
{
    if (*ev != NULL)
        event_free(*ev);
    *ev = NULL;
}

void bm_peer_free(bm_peer_t **pp)
{
    if (pp == NULL || *pp == NULL)
        return;
    bm_peer_t *p = *pp;
    if (p->bev != NULL)
        bufferevent_free(p->bev);
    bm_peer_event_free(&p->handshake_ev);
    bm_peer_event_free(&p->tick_ev);
    bm_peer_event_free(&p->flush_ev);
    bm_peer_event_free(&p->close_ev);
    bm_peer_hashq_free(&p->wanted);
    bm_peer_hashq_free(&p->upload);
    bm_peer_hashq_free(&p->announce);
    buf_release(&p->pl);
    buf_release(&p->pkt);
    free(p);
    *pp = NULL;
}
