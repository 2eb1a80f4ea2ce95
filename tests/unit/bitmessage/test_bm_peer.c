/*
 * test_bm_peer.c - unit tests for src/bitmessage/bm_peer.c: two peers in one
 * process over loopback TCP (handshake, inventory sync via inv / getdata /
 * object, announcements, refusal of an object with insufficient proof of
 * work), and one peer against a raw socket of the test (garbage bytes, a
 * lying length field, a peer that never sends version, a version with a bad
 * clock or our own nonce, commands before the handshake, ping).
 *
 * The objects carry real proof of work at the network minimums (small
 * payloads, TTL 300 s: about a million double SHA-512 trials each), made
 * once for the whole file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "bitmessage/bm_encode.h"
#include "bitmessage/bm_peer.h"
#include "bitmessage/bm_pow.h"
#include "bitmessage/bm_wire.h"
#include "lib/buf.h"
#include "lib/netaddr.h"

#define T_MAX_OBJ 8
#define T_VALID 4 /* valid objects made at setup */
#define T_WAIT_MS 20000

struct t_obj {
    uint8_t hash[BM_PEER_HASH_LEN];
    uint8_t *data;
    size_t len;
};

/* One node: its inventory and what happened to its peer. */
struct t_node {
    struct t_obj objs[T_MAX_OBJ];
    size_t nobj;
    bm_peer_t *peer;
    int established;
    int closed;
    char reason[128];
    size_t addrs;
};

static struct t_obj g_valid[T_VALID];
static struct t_obj g_bad; /* insufficient PoW */

/* ---- node callbacks ---- */

static struct t_obj *t_find(struct t_node *n, const uint8_t *hash)
{
    for (size_t i = 0; i < n->nobj; i++)
        if (memcmp(n->objs[i].hash, hash, BM_PEER_HASH_LEN) == 0)
            return &n->objs[i];
    return NULL;
}

static void t_node_add(struct t_node *n, const struct t_obj *o)
{
    assert_true(n->nobj < T_MAX_OBJ);
    n->objs[n->nobj++] = *o; /* borrowed data: the globals own it */
}

static int t_have(void *ctx, const uint8_t hash[BM_PEER_HASH_LEN])
{
    return t_find(ctx, hash) != NULL;
}

static int t_get_object(void *ctx, const uint8_t hash[BM_PEER_HASH_LEN], buf_t *out)
{
    struct t_obj *o = t_find(ctx, hash);
    if (o == NULL)
        return PST_ENOENT;
    return buf_append(out, o->data, o->len);
}

static void t_on_object(void *ctx, bm_peer_t *peer, const uint8_t hash[BM_PEER_HASH_LEN],
                        const uint8_t *obj, size_t len)
{
    struct t_node *n = ctx;
    /* keep a pointer to the global copy with the same bytes */
    for (size_t i = 0; i < T_VALID; i++) {
        if (memcmp(g_valid[i].hash, hash, BM_PEER_HASH_LEN) == 0) {
            assert_int_equal(len, g_valid[i].len);
            assert_memory_equal(obj, g_valid[i].data, len);
            t_node_add(n, &g_valid[i]);
            return;
        }
    }
    fail_msg("unexpected object");
}

static void t_on_addr(void *ctx, bm_peer_t *peer, const struct bm_wire_addr_entry *e)
{
    ((struct t_node *)ctx)->addrs++;
}

static int t_inventory_iter(void *ctx, uint64_t stream, bm_peer_hash_cb cb, void *arg)
{
    struct t_node *n = ctx;
    assert_int_equal(stream, 1);
    for (size_t i = 0; i < n->nobj; i++) {
        int rc = cb(n->objs[i].hash, arg);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void t_on_close(void *ctx, bm_peer_t *peer, const char *reason)
{
    struct t_node *n = ctx;
    n->closed++;
    snprintf(n->reason, sizeof(n->reason), "%s", reason);
}

static void t_on_established(void *ctx, bm_peer_t *peer)
{
    ((struct t_node *)ctx)->established++;
}

static const struct bm_peer_ops t_ops = {
    .have = t_have,
    .get_object = t_get_object,
    .on_object = t_on_object,
    .on_addr = t_on_addr,
    .inventory_iter = t_inventory_iter,
    .on_close = t_on_close,
    .on_established = t_on_established,
};

/* ---- loop helpers ---- */

static void t_tick(evutil_socket_t fd, short what, void *arg)
{
}

static int64_t t_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* t_run - run the loop until cond(arg) holds or ms pass; returns cond's last value. */
static bool t_run(struct event_base *base, bool (*cond)(void *), void *arg, int ms)
{
    struct event *tick = event_new(base, -1, EV_PERSIST, t_tick, NULL);
    struct timeval tv = {0, 10000};
    assert_non_null(tick);
    assert_int_equal(event_add(tick, &tv), 0);
    int64_t end = t_now_ms() + ms;
    bool ok = cond(arg);
    while (!ok && t_now_ms() < end) {
        event_base_loop(base, EVLOOP_ONCE);
        ok = cond(arg);
    }
    event_free(tick);
    return ok;
}

/* ---- objects ---- */

static void t_make_object(struct t_obj *o, uint8_t tag, bool good)
{
    buf_t *body = buf_new(256);
    buf_t *obj = buf_new(256);
    uint64_t nonce = 0;
    int64_t now = (int64_t)time(NULL);
    assert_non_null(body);
    assert_non_null(obj);
    assert_int_equal(bm_put_u64(body, (uint64_t)(now + 300)), 0);
    assert_int_equal(bm_put_u32(body, BM_WIRE_OBJ_GETPUBKEY), 0);
    assert_int_equal(bm_put_varint(body, 4), 0);
    assert_int_equal(bm_put_varint(body, 1), 0);
    for (int i = 0; i < 32; i++)
        assert_int_equal(bm_put_u8(body, (uint8_t)(tag + i)), 0);
    if (good) {
        struct bm_pow_search s;
        bm_pow_search_init(&s, 0);
        assert_int_equal(
            bm_pow_solve(&s, (const uint8_t *)body->data, body->len, 300, NULL, &nonce), 0);
    }
    assert_int_equal(bm_put_u64(obj, nonce), 0);
    assert_int_equal(bm_put_bytes(obj, body->data, body->len), 0);
    if (!good) /* nonce 0 is all but certainly insufficient; make sure */
        while (bm_pow_sufficient((const uint8_t *)obj->data, obj->len, now, NULL) == 0)
            bm_be64_store((uint8_t *)obj->data, ++nonce);
    o->len = obj->len;
    o->data = malloc(o->len);
    assert_non_null(o->data);
    memcpy(o->data, obj->data, o->len);
    assert_int_equal(bm_wire_inventory_hash(o->data, o->len, o->hash), 0);
    buf_free(&body);
    buf_free(&obj);
}

static int t_group_setup(void **state)
{
    for (int i = 0; i < T_VALID; i++)
        t_make_object(&g_valid[i], (uint8_t)(i * 40), true);
    t_make_object(&g_bad, 0xee, false);
    return 0;
}

static int t_group_teardown(void **state)
{
    for (int i = 0; i < T_VALID; i++)
        free(g_valid[i].data);
    free(g_bad.data);
    return 0;
}

/* ---- two peers over loopback TCP ---- */

struct t_pair {
    struct event_base *base;
    int lfd;
    struct event *accept_ev;
    struct t_node a, b; /* a connects out, b accepts */
};

static void t_accept_cb(evutil_socket_t fd, short what, void *arg)
{
    struct t_pair *tp = arg;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int c = accept(fd, (struct sockaddr *)&ss, &sl);
    if (c < 0)
        return;
    assert_null(tp->b.peer);
    tp->b.peer = bm_peer_new_inbound(tp->base, c, (struct sockaddr *)&ss, sl, &t_ops, &tp->b);
    assert_non_null(tp->b.peer);
}

static void t_pair_start(struct t_pair *tp)
{
    memset(tp, 0, sizeof(*tp));
    tp->base = event_base_new();
    assert_non_null(tp->base);
    tp->lfd = netaddr_listen("127.0.0.1:0", 4);
    assert_true(tp->lfd >= 0);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    assert_int_equal(getsockname(tp->lfd, (struct sockaddr *)&ss, &sl), 0);
    tp->accept_ev = event_new(tp->base, tp->lfd, EV_READ | EV_PERSIST, t_accept_cb, tp);
    assert_non_null(tp->accept_ev);
    assert_int_equal(event_add(tp->accept_ev, NULL), 0);
    tp->a.peer = bm_peer_new_outbound(tp->base, (struct sockaddr *)&ss, sl, &t_ops, &tp->a);
    assert_non_null(tp->a.peer);
    assert_int_equal(bm_peer_state(tp->a.peer), BM_PEER_CONNECTING);
}

static void t_pair_end(struct t_pair *tp)
{
    bm_peer_free(&tp->a.peer);
    bm_peer_free(&tp->b.peer);
    assert_null(tp->a.peer);
    event_free(tp->accept_ev);
    close(tp->lfd);
    event_base_free(tp->base);
}

static bool t_both_established(void *arg)
{
    struct t_pair *tp = arg;
    return tp->a.established == 1 && tp->b.established == 1;
}

static bool t_both_closed(void *arg)
{
    struct t_pair *tp = arg;
    return tp->a.closed > 0 && tp->b.closed > 0;
}

static void test_handshake(void **state)
{
    struct t_pair tp;
    t_pair_start(&tp);
    assert_true(t_run(tp.base, t_both_established, &tp, T_WAIT_MS));
    assert_int_equal(bm_peer_state(tp.a.peer), BM_PEER_ESTABLISHED);
    assert_int_equal(bm_peer_state(tp.b.peer), BM_PEER_ESTABLISHED);
    assert_true(bm_peer_is_outbound(tp.a.peer));
    assert_false(bm_peer_is_outbound(tp.b.peer));
    /* each saw the other's nonce */
    assert_int_equal(bm_peer_remote_nonce(tp.a.peer), bm_peer_nonce(tp.b.peer));
    assert_int_equal(bm_peer_remote_nonce(tp.b.peer), bm_peer_nonce(tp.a.peer));
    assert_int_equal(tp.a.closed + tp.b.closed, 0);

    /* closing one side: both learn of it, once */
    bm_peer_close(tp.a.peer, "test done");
    assert_int_equal(bm_peer_state(tp.a.peer), BM_PEER_CLOSING);
    assert_int_equal(tp.a.closed, 0); /* on_close comes from the loop */
    assert_true(t_run(tp.base, t_both_closed, &tp, T_WAIT_MS));
    assert_int_equal(tp.a.closed, 1);
    assert_int_equal(tp.b.closed, 1);
    assert_string_equal(tp.a.reason, "test done");
    assert_string_equal(tp.b.reason, "closed by peer");
    t_pair_end(&tp);
}

static bool t_b_synced(void *arg)
{
    struct t_pair *tp = arg;
    struct bm_peer_stats st;
    if (tp->b.peer == NULL)
        return false;
    bm_peer_get_stats(tp->b.peer, &st);
    return tp->b.nobj == 3 && st.objects_refused == 1;
}

static bool t_b_has4(void *arg)
{
    struct t_pair *tp = arg;
    return tp->b.nobj == 4;
}

static void test_sync_and_refuse(void **state)
{
    struct t_pair tp;
    t_pair_start(&tp);
    for (int i = 0; i < 3; i++)
        t_node_add(&tp.a, &g_valid[i]);
    t_node_add(&tp.a, &g_bad);
    assert_true(t_run(tp.base, t_b_synced, &tp, T_WAIT_MS));
    for (int i = 0; i < 3; i++)
        assert_non_null(t_find(&tp.b, g_valid[i].hash));
    assert_null(t_find(&tp.b, g_bad.hash));

    struct bm_peer_stats sa, sb;
    bm_peer_get_stats(tp.a.peer, &sa);
    bm_peer_get_stats(tp.b.peer, &sb);
    assert_int_equal(sa.inv_out, 4);
    assert_int_equal(sa.objects_out, 4);
    assert_int_equal(sb.getdata_out, 4);
    assert_int_equal(sb.objects_in, 3);
    assert_int_equal(sb.inv_out, 0);

    /* a new object on A is announced and fetched */
    t_node_add(&tp.a, &g_valid[3]);
    assert_int_equal(bm_peer_announce(tp.a.peer, g_valid[3].hash), 0);
    assert_true(t_run(tp.base, t_b_has4, &tp, T_WAIT_MS));
    assert_int_equal(tp.a.closed + tp.b.closed, 0);
    t_pair_end(&tp);
}

/* ---- one peer against a raw socket ---- */

struct t_raw {
    struct event_base *base;
    int fd; /* the test's end */
    struct t_node n;
};

static void t_raw_start(struct t_raw *r)
{
    int sv[2];
    memset(r, 0, sizeof(*r));
    r->base = event_base_new();
    assert_non_null(r->base);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    r->fd = sv[0];
    r->n.peer = bm_peer_new_inbound(r->base, sv[1], NULL, 0, &t_ops, &r->n);
    assert_non_null(r->n.peer);
    assert_int_equal(bm_peer_state(r->n.peer), BM_PEER_CONNECTING);
}

static void t_raw_end(struct t_raw *r)
{
    bm_peer_free(&r->n.peer);
    close(r->fd);
    event_base_free(r->base);
}

static void t_raw_write(struct t_raw *r, const void *p, size_t len)
{
    assert_int_equal(write(r->fd, p, len), (ssize_t)len);
}

static void t_raw_packet(struct t_raw *r, const char *cmd, const buf_t *payload)
{
    buf_t *b = buf_new(BM_PEER_IN_MAX);
    assert_non_null(b);
    assert_int_equal(bm_wire_packet_build(b, cmd, payload ? (const uint8_t *)payload->data : NULL,
                                          payload ? payload->len : 0),
                     0);
    t_raw_write(r, b->data, b->len);
    buf_free(&b);
}

static void t_raw_version(struct t_raw *r, int64_t skew, uint64_t nonce, uint32_t proto)
{
    static const uint64_t streams[] = {1};
    struct bm_wire_version v = {
        .protocol_version = proto,
        .services = BM_WIRE_NODE_NETWORK,
        .timestamp = (int64_t)time(NULL) + skew,
        .nonce = nonce,
        .user_agent = (const uint8_t *)"/test:1/",
        .user_agent_len = 8,
    };
    buf_t *b = buf_new(4096);
    assert_non_null(b);
    assert_int_equal(bm_wire_version_build(b, &v, streams, 1), 0);
    t_raw_packet(r, "version", b);
    buf_free(&b);
}

static bool t_closed(void *arg)
{
    return ((struct t_node *)arg)->closed > 0;
}

static bool t_established(void *arg)
{
    return ((struct t_node *)arg)->established > 0;
}

/* t_raw_read_all - what the peer wrote to us (until EOF or nothing more), into b. */
static void t_raw_read_all(struct t_raw *r, buf_t *b)
{
    uint8_t tmp[4096];
    for (;;) {
        ssize_t n = recv(r->fd, tmp, sizeof(tmp), MSG_DONTWAIT);
        if (n <= 0)
            return;
        assert_int_equal(buf_append(b, tmp, (size_t)n), 0);
    }
}

/* t_has_command - 1 if the byte stream holds a well-framed packet with cmd. */
static bool t_has_command(const buf_t *b, enum bm_wire_cmd cmd)
{
    size_t off = 0;
    while (off < b->len) {
        struct bm_wire_packet pkt;
        size_t used = 0;
        if (bm_wire_frame((const uint8_t *)b->data + off, b->len - off, &pkt, &used) < 0 ||
            used == 0)
            return false;
        if (pkt.cmd == cmd)
            return true;
        off += used;
    }
    return false;
}

static void test_garbage_closes(void **state)
{
    struct t_raw r;
    t_raw_start(&r);
    static const char junk[] = "GET / HTTP/1.1\r\nHost: example\r\n\r\n";
    t_raw_write(&r, junk, sizeof(junk) - 1);
    assert_true(t_run(r.base, t_closed, &r.n, T_WAIT_MS));
    assert_int_equal(r.n.closed, 1);
    assert_int_equal(bm_peer_state(r.n.peer), BM_PEER_CLOSING);
    char c;
    assert_int_equal(read(r.fd, &c, 1), 0); /* socket closed */
    t_raw_end(&r);
}

static void test_lying_length_closes(void **state)
{
    struct t_raw r;
    t_raw_start(&r);
    uint8_t hdr[BM_WIRE_HEADER_LEN] = {0};
    bm_be32_store(hdr, BM_WIRE_MAGIC);
    memcpy(hdr + 4, "version", 7);
    bm_be32_store(hdr + 16, BM_WIRE_MAX_PAYLOAD + 1);
    t_raw_write(&r, hdr, sizeof(hdr)); /* no payload follows: judged on the header */
    assert_true(t_run(r.base, t_closed, &r.n, T_WAIT_MS));
    assert_int_equal(r.n.established, 0);
    t_raw_end(&r);
}

static void test_short_length_closes(void **state)
{
    /* a length shorter than the payload: the checksum fails */
    struct t_raw r;
    t_raw_start(&r);
    buf_t *b = buf_new(4096);
    assert_non_null(b);
    static const uint64_t streams[] = {1};
    struct bm_wire_version v = {
        .protocol_version = 3, .timestamp = (int64_t)time(NULL), .nonce = 7};
    assert_int_equal(bm_wire_version_build(b, &v, streams, 1), 0);
    buf_t *pk = buf_new(4096);
    assert_non_null(pk);
    assert_int_equal(bm_wire_packet_build(pk, "version", (const uint8_t *)b->data, b->len), 0);
    bm_be32_store((uint8_t *)pk->data + 16, (uint32_t)b->len - 10);
    t_raw_write(&r, pk->data, pk->len);
    assert_true(t_run(r.base, t_closed, &r.n, T_WAIT_MS));
    assert_int_equal(r.n.established, 0);
    buf_free(&b);
    buf_free(&pk);
    t_raw_end(&r);
}

static void test_handshake_timeout(void **state)
{
    struct t_raw r;
    t_raw_start(&r);
    bm_peer_set_timeouts(r.n.peer, 100, 0);
    assert_true(t_run(r.base, t_closed, &r.n, T_WAIT_MS));
    assert_string_equal(r.n.reason, "handshake timeout");
    t_raw_end(&r);
}

static void t_expect_refused_version(int64_t skew, uint64_t nonce, uint32_t proto, bool own)
{
    struct t_raw r;
    t_raw_start(&r);
    t_raw_version(&r, skew, own ? bm_peer_nonce(r.n.peer) : nonce, proto);
    assert_true(t_run(r.base, t_closed, &r.n, T_WAIT_MS));
    assert_int_equal(r.n.established, 0);
    buf_t *in = buf_new(65536);
    assert_non_null(in);
    t_raw_read_all(&r, in);
    assert_true(t_has_command(in, BM_WIRE_CMD_ERROR)); /* told why, as the reference */
    assert_false(t_has_command(in, BM_WIRE_CMD_VERACK));
    buf_free(&in);
    t_raw_end(&r);
}

static void test_version_refused(void **state)
{
    t_expect_refused_version(7200, 42, 3, false);  /* clock in the future */
    t_expect_refused_version(-3700, 42, 3, false); /* clock in the past */
    t_expect_refused_version(0, 42, 2, false);     /* old protocol */
    t_expect_refused_version(0, 0, 3, true);       /* ourselves */
}

static void test_command_before_handshake(void **state)
{
    struct t_raw r;
    t_raw_start(&r);
    t_raw_packet(&r, "ping", NULL);
    assert_true(t_run(r.base, t_closed, &r.n, T_WAIT_MS));
    assert_string_equal(r.n.reason, "command before handshake");
    t_raw_end(&r);
}

static void test_raw_established_ping_inv(void **state)
{
    struct t_raw r;
    t_raw_start(&r);
    t_node_add(&r.n, &g_valid[0]); /* announced to us on establishment */
    t_raw_version(&r, 0, 42, 3);
    t_raw_packet(&r, "verack", NULL);
    assert_true(t_run(r.base, t_established, &r.n, T_WAIT_MS));
    /* unknown commands are ignored once established */
    t_raw_packet(&r, "portcheck", NULL);
    t_raw_packet(&r, "ping", NULL);
    /* an inv with one hash it lacks and one it has: one getdata entry */
    buf_t *inv = buf_new(1024);
    assert_non_null(inv);
    uint8_t vec[2 * BM_PEER_HASH_LEN];
    memcpy(vec, g_valid[1].hash, BM_PEER_HASH_LEN);
    memcpy(vec + BM_PEER_HASH_LEN, g_valid[0].hash, BM_PEER_HASH_LEN);
    assert_int_equal(bm_wire_inv_build(inv, vec, 2), 0);
    t_raw_packet(&r, "inv", inv);
    /* a stale addr entry (ignored) and a fresh one */
    struct bm_wire_addr_entry e[2] = {{.time = (uint64_t)time(NULL) - 60, .stream = 1},
                                      {.time = 1000, .stream = 1}};
    e[0].addr.port = e[1].addr.port = 8444;
    buf_t *ab = buf_new(1024);
    assert_non_null(ab);
    assert_int_equal(bm_wire_addr_build(ab, e, 2), 0);
    t_raw_packet(&r, "addr", ab);
    /* a malformed inv is skipped, not fatal */
    static const uint8_t bad_inv[] = {0x05, 1, 2, 3};
    buf_t *bi = buf_new(64);
    assert_non_null(bi);
    assert_int_equal(buf_append(bi, bad_inv, sizeof(bad_inv)), 0);
    t_raw_packet(&r, "inv", bi);
    struct bm_peer_stats st = {0};
    for (int i = 0; i < 200 && st.packets_in < 7; i++) {
        event_base_loop(r.base, EVLOOP_NONBLOCK);
        bm_peer_get_stats(r.n.peer, &st);
        usleep(5000);
    }
    assert_int_equal(st.packets_in, 7);
    assert_int_equal(st.getdata_out, 1);
    assert_int_equal(st.inv_out, 1);
    assert_int_equal(r.n.addrs, 1);
    assert_int_equal(r.n.closed, 0);
    buf_t *in = buf_new(1 << 20);
    assert_non_null(in);
    t_raw_read_all(&r, in);
    assert_true(t_has_command(in, BM_WIRE_CMD_VERSION));
    assert_true(t_has_command(in, BM_WIRE_CMD_VERACK));
    assert_true(t_has_command(in, BM_WIRE_CMD_PONG));
    assert_true(t_has_command(in, BM_WIRE_CMD_INV));
    assert_true(t_has_command(in, BM_WIRE_CMD_GETDATA));
    buf_free(&in);
    buf_free(&inv);
    buf_free(&ab);
    buf_free(&bi);
    t_raw_end(&r);
}

static void test_connect_refused(void **state)
{
    struct event_base *base = event_base_new();
    assert_non_null(base);
    int lfd = netaddr_listen("127.0.0.1:0", 1);
    assert_true(lfd >= 0);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&ss, &sl), 0);
    close(lfd); /* nobody listens there now */
    struct t_node n = {0};
    n.peer = bm_peer_new_outbound(base, (struct sockaddr *)&ss, sl, &t_ops, &n);
    assert_non_null(n.peer);
    assert_true(t_run(base, t_closed, &n, T_WAIT_MS));
    assert_string_equal(n.reason, "connect failed");
    bm_peer_free(&n.peer);
    event_base_free(base);
}

static void test_idle_ping_then_close(void **state)
{
    struct t_raw r;
    t_raw_start(&r);
    t_raw_version(&r, 0, 42, 3);
    t_raw_packet(&r, "verack", NULL);
    assert_true(t_run(r.base, t_established, &r.n, T_WAIT_MS));
    bm_peer_set_timeouts(r.n.peer, 0, 100);
    assert_true(t_run(r.base, t_closed, &r.n, T_WAIT_MS));
    assert_string_equal(r.n.reason, "idle timeout");
    buf_t *in = buf_new(1 << 20);
    assert_non_null(in);
    t_raw_read_all(&r, in);
    assert_true(t_has_command(in, BM_WIRE_CMD_PING)); /* asked once before giving up */
    buf_free(&in);
    t_raw_end(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake),
        cmocka_unit_test(test_sync_and_refuse),
        cmocka_unit_test(test_garbage_closes),
        cmocka_unit_test(test_lying_length_closes),
        cmocka_unit_test(test_short_length_closes),
        cmocka_unit_test(test_handshake_timeout),
        cmocka_unit_test(test_version_refused),
        cmocka_unit_test(test_command_before_handshake),
        cmocka_unit_test(test_raw_established_ping_inv),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_idle_ping_then_close),
    };
    return cmocka_run_group_tests(tests, t_group_setup, t_group_teardown);
}
