/*
 * test_bm_node.c - unit tests for src/bitmessage/bm_node.c: several nodes in
 * one process on one event loop, over loopback TCP, each with its own
 * bm_store in a temporary SQLite file.
 *
 *   - A -> B <- C in a line: an object published at A reaches C through B
 *     (stored with its tag for pubkey v4 and broadcast v5);
 *   - C joins later and receives the inventory B already holds;
 *   - max_inbound, max_inbound_per_ip and trusted_only refuse connections
 *     (and trusted_only accepts a configured peer's IP, also by name);
 *   - an outbound peer reconnects once its listener comes back;
 *   - a node configured to connect to itself refuses the handshake;
 *   - bm_node_publish refuses bad PoW, a wrong stream, a bad lifetime and
 *     malformed bytes; bad configurations are refused.
 *
 * Objects carry real PoW at the network minimums (TTL 300 s), made once
 * for the whole file with bm_obj_* and bm_obj_seal.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
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

#include <arpa/inet.h>
#include <cmocka.h>
#include <event2/event.h>

#include "bitmessage/bm_address.h"
#include "bitmessage/bm_encode.h"
#include "bitmessage/bm_node.h"
#include "bitmessage/bm_object.h"
#include "bitmessage/bm_pow.h"
#include "bitmessage/bm_store.h"
#include "bitmessage/bm_wire.h"
#include "lib/buf.h"
#include "lib/netaddr.h"
#include "testutil.h"

#define T_WAIT_MS 5000
#define T_NOBJ 3 /* getpubkey, pubkey v4, broadcast v5 */
#define T_BUF_MAX (64 * 1024)

struct t_obj {
    uint8_t hash[BM_PEER_HASH_LEN];
    uint8_t *data;
    size_t len;
};

static struct t_obj g_obj[T_NOBJ];
static uint8_t g_tag[BM_TAG_LEN]; /* the identity's v4 tag */

/* One node of a test. */
struct t_node {
    char dir[512];
    char path[600];
    struct bm_store *st;
    bm_node_t *node;
    uint16_t port; /* listening port, 0 if none */
    unsigned got;  /* hooks.on_object */
    unsigned up, down;
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

/* t_spin - run the loop for ms whatever happens. */
static bool t_false(void *arg)
{
    return false;
}

static void t_spin(struct event_base *base, int ms)
{
    (void)t_run(base, t_false, NULL, ms);
}

/* ---- nodes ---- */

static void t_hook_object(void *ctx, const uint8_t hash[BM_PEER_HASH_LEN], const uint8_t *obj,
                          size_t len)
{
    struct t_node *tn = ctx;
    struct bm_wire_object o;
    assert_int_equal(bm_wire_object_parse(obj, len, &o), 0);
    tn->got++;
}

static void t_hook_peer(void *ctx, const char *peer_id, int outbound, int up)
{
    struct t_node *tn = ctx;
    assert_non_null(peer_id);
    if (up)
        tn->up++;
    else
        tn->down++;
}

static const struct bm_node_hooks t_hooks = {.on_object = t_hook_object, .on_peer = t_hook_peer};

/* t_listen_fd - a listening socket on 127.0.0.1:port (0 = any); *out gets the port. */
static int t_listen_fd(uint16_t port, uint16_t *out)
{
    char spec[32];
    snprintf(spec, sizeof(spec), "127.0.0.1:%u", port);
    int fd = netaddr_listen(spec, 16);
    assert_true(fd >= 0);
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
    *out = ntohs(sin.sin_port);
    return fd;
}

/* t_free_port - a loopback port nobody listens on (right now). */
static uint16_t t_free_port(void)
{
    uint16_t port;
    int fd = t_listen_fd(0, &port);
    close(fd);
    return port;
}

static void t_cfg(struct bm_node_config *cfg)
{
    bm_node_config_defaults(cfg);
    cfg->reconnect_min = 1;
    cfg->reconnect_max = 2;
}

static void t_cfg_peer(struct bm_node_config *cfg, const char *host, uint16_t port)
{
    assert_true(cfg->npeers < BM_NODE_MAX_PEERS);
    snprintf(cfg->peers[cfg->npeers].host, sizeof(cfg->peers[0].host), "%s", host);
    cfg->peers[cfg->npeers++].port = port;
}

/* t_node_open - store in a fresh directory, node with cfg (listening if listen), started. */
static void t_node_open(struct t_node *tn, struct event_base *base, struct bm_node_config *cfg,
                        bool listen)
{
    memset(tn, 0, sizeof(*tn));
    const char *t = getenv("TMPDIR");
    int n = snprintf(tn->dir, sizeof(tn->dir), "%s/bmnode.XXXXXX", t && *t ? t : "/tmp");
    assert_true(n > 0 && (size_t)n < sizeof(tn->dir));
    assert_non_null(mkdtemp(tn->dir));
    n = snprintf(tn->path, sizeof(tn->path), "%s/state.db", tn->dir);
    assert_true(n > 0 && (size_t)n < sizeof(tn->path));
    assert_int_equal(bm_store_open(tn->path, &tn->st), 0);
    if (listen && cfg->listen_fd < 0)
        cfg->listen_fd = t_listen_fd(0, &tn->port);
    assert_int_equal(bm_node_new(base, tn->st, cfg, &t_hooks, tn, &tn->node), 0);
    assert_int_equal(bm_node_start(tn->node), 0);
}

static void t_node_close(struct t_node *tn)
{
    bm_node_free(&tn->node);
    assert_null(tn->node);
    bm_store_close(&tn->st);
    assert_int_equal(tu_rm_rf(tn->dir), 0);
}

static struct bm_node_stats t_stats(const struct t_node *tn)
{
    struct bm_node_stats s;
    bm_node_get_stats(tn->node, &s);
    return s;
}

static bool t_has(struct t_node *tn, const uint8_t *hash)
{
    bool have = false;
    assert_int_equal(bm_store_inv_exists(tn->st, hash, &have), 0);
    return have;
}

/* ---- objects ---- */

static void t_seal(buf_t *body, struct t_obj *o)
{
    struct bm_pow_search s;
    buf_t out;
    buf_init(&out, T_BUF_MAX);
    bm_pow_search_init(&s, 0);
    assert_int_equal(
        bm_obj_seal(&s, (const uint8_t *)body->data, body->len, (int64_t)time(NULL), NULL, &out),
        0);
    o->len = out.len;
    o->data = malloc(o->len);
    assert_non_null(o->data);
    memcpy(o->data, out.data, o->len);
    assert_int_equal(bm_wire_inventory_hash(o->data, o->len, o->hash), 0);
    buf_release(&out);
}

static int t_group_setup(void **state)
{
    static const char pass[] = "postern bm_node test";
    static const char text[] = "Subject:node test\nBody:hello";
    struct bm_obj_sender_opts opts = {.behavior = BM_OBJ_BITFIELD_DOESACK};
    bm_keys_t id;
    uint64_t nonce = 0;
    buf_t body;
    uint64_t expires = (uint64_t)time(NULL) + 300;

    assert_int_equal(bm_keys_from_passphrase(pass, sizeof(pass) - 1, 4, 1, 1, &nonce, &id), 0);
    assert_int_equal(bm_address_tag(&id.addr, NULL, g_tag), 0);

    buf_init(&body, T_BUF_MAX);
    assert_int_equal(bm_obj_getpubkey_build(&body, expires, &id.addr), 0);
    t_seal(&body, &g_obj[0]);
    buf_reset(&body);
    assert_int_equal(bm_obj_pubkey_build(&body, expires, &id, &opts), 0);
    t_seal(&body, &g_obj[1]);
    buf_reset(&body);
    assert_int_equal(bm_obj_broadcast_build(&body, expires, &id, &opts, BM_OBJ_ENC_SIMPLE,
                                            (const uint8_t *)text, sizeof(text) - 1),
                     0);
    t_seal(&body, &g_obj[2]);
    buf_release(&body);
    memset(&id, 0, sizeof(id));
    return 0;
}

static int t_group_teardown(void **state)
{
    for (int i = 0; i < T_NOBJ; i++)
        free(g_obj[i].data);
    return 0;
}

/* ---- A -> B <- C ---- */

struct t_line {
    struct event_base *base;
    struct t_node a, b, c;
};

static bool t_line_up(void *arg)
{
    struct t_line *l = arg;
    return t_stats(&l->a).peers_established == 1 && t_stats(&l->c).peers_established == 1 &&
           t_stats(&l->b).peers_established == 2;
}

static bool t_b_up1(void *arg)
{
    struct t_line *l = arg;
    return t_stats(&l->a).peers_established == 1 && t_stats(&l->b).peers_established == 1;
}

static bool t_c_has_all(void *arg)
{
    struct t_line *l = arg;
    for (int i = 0; i < T_NOBJ; i++)
        if (!t_has(&l->c, g_obj[i].hash))
            return false;
    return true;
}

static bool t_b_has_all(void *arg)
{
    struct t_line *l = arg;
    for (int i = 0; i < T_NOBJ; i++)
        if (!t_has(&l->b, g_obj[i].hash))
            return false;
    return true;
}

static bool t_ac_down(void *arg)
{
    struct t_line *l = arg;
    return l->a.down == 1 && l->c.down == 1;
}

static void t_line_open(struct t_line *l, bool with_c)
{
    struct bm_node_config cfg;
    memset(l, 0, sizeof(*l));
    l->base = event_base_new();
    assert_non_null(l->base);
    t_cfg(&cfg);
    t_node_open(&l->b, l->base, &cfg, true);
    t_cfg(&cfg);
    t_cfg_peer(&cfg, "127.0.0.1", l->b.port);
    t_node_open(&l->a, l->base, &cfg, false);
    if (with_c) {
        t_cfg(&cfg);
        t_cfg_peer(&cfg, "127.0.0.1", l->b.port);
        t_node_open(&l->c, l->base, &cfg, false);
    }
}

static void t_line_close(struct t_line *l, bool with_c)
{
    t_node_close(&l->a);
    t_node_close(&l->b);
    if (with_c)
        t_node_close(&l->c);
    event_base_free(l->base);
}

static void test_relay_line(void **state)
{
    struct t_line l;
    uint8_t hash[BM_PEER_HASH_LEN];
    t_line_open(&l, true);
    assert_true(t_run(l.base, t_line_up, &l, T_WAIT_MS));
    assert_int_equal(l.a.up, 1);
    assert_int_equal(l.b.up, 2);
    struct bm_node_stats s = t_stats(&l.b);
    assert_int_equal(s.inbound, 2);
    assert_int_equal(s.outbound, 0);
    assert_int_equal(t_stats(&l.a).outbound, 1);

    for (int i = 0; i < T_NOBJ; i++) {
        assert_int_equal(bm_node_publish(l.a.node, g_obj[i].data, g_obj[i].len, hash), 0);
        assert_memory_equal(hash, g_obj[i].hash, BM_PEER_HASH_LEN);
    }
    assert_true(t_run(l.base, t_c_has_all, &l, T_WAIT_MS));
    assert_true(t_b_has_all(&l));
    /* give a stray echo (C or B sending back to A) the chance to show up */
    t_spin(l.base, 100);
    assert_int_equal(l.a.got, 0); /* published objects do not go to our own hook */
    assert_int_equal(l.b.got, T_NOBJ);
    assert_int_equal(l.c.got, T_NOBJ);
    assert_int_equal(t_stats(&l.a).objects_published, T_NOBJ);
    assert_int_equal(t_stats(&l.b).objects_received, T_NOBJ);
    assert_int_equal(t_stats(&l.c).objects_received, T_NOBJ);
    assert_int_equal(t_stats(&l.a).objects_received, 0);

    /* stored with type, stream and tag */
    struct bm_store_object so;
    assert_int_equal(bm_store_inv_get(l.c.st, g_obj[0].hash, &so), 0);
    assert_int_equal(so.type, BM_WIRE_OBJ_GETPUBKEY);
    assert_int_equal(so.stream, 1);
    assert_false(so.has_tag);
    assert_int_equal(so.payload_len, g_obj[0].len);
    assert_memory_equal(so.payload, g_obj[0].data, so.payload_len);
    bm_store_object_free(&so);
    for (int i = 1; i < T_NOBJ; i++) {
        assert_int_equal(bm_store_inv_get(l.c.st, g_obj[i].hash, &so), 0);
        assert_int_equal(so.type, i == 1 ? BM_WIRE_OBJ_PUBKEY : BM_WIRE_OBJ_BROADCAST);
        assert_true(so.has_tag);
        assert_memory_equal(so.tag, g_tag, BM_TAG_LEN);
        bm_store_object_free(&so);
    }

    /* publishing again: no error, not counted as new */
    assert_int_equal(bm_node_publish(l.a.node, g_obj[0].data, g_obj[0].len, NULL), 0);
    assert_int_equal(t_stats(&l.a).objects_published, T_NOBJ);
    t_spin(l.base, 50);
    assert_int_equal(l.c.got, T_NOBJ);

    /* B goes away: A and C see their peer go down */
    bm_node_free(&l.b.node);
    assert_true(t_run(l.base, t_ac_down, &l, T_WAIT_MS));
    assert_int_equal(l.a.down, 1);
    assert_int_equal(l.c.down, 1);
    assert_int_equal(l.b.down, 0); /* freed: no hooks */
    assert_int_equal(t_stats(&l.a).peers_established, 0);
    t_line_close(&l, true);
}

static void test_late_join(void **state)
{
    struct t_line l;
    struct bm_node_config cfg;
    t_line_open(&l, false);
    assert_true(t_run(l.base, t_b_up1, &l, T_WAIT_MS));
    for (int i = 0; i < T_NOBJ; i++)
        assert_int_equal(bm_node_publish(l.a.node, g_obj[i].data, g_obj[i].len, NULL), 0);
    assert_true(t_run(l.base, t_b_has_all, &l, T_WAIT_MS));

    /* C connects now (by name): it gets B's inventory on establishment */
    t_cfg(&cfg);
    t_cfg_peer(&cfg, "localhost", l.b.port);
    t_node_open(&l.c, l.base, &cfg, false);
    assert_true(t_run(l.base, t_c_has_all, &l, T_WAIT_MS));
    assert_int_equal(l.c.got, T_NOBJ);
    assert_int_equal(t_stats(&l.b).peers_established, 2);
    t_line_close(&l, true);
}

/* ---- inbound limits ---- */

/* t_client - a blocking TCP connection to 127.0.0.1:port, from `from` (NULL = any). */
static int t_client(const char *from, uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    if (from != NULL) {
        struct sockaddr_in src = {.sin_family = AF_INET};
        assert_int_equal(inet_pton(AF_INET, from, &src.sin_addr), 1);
        assert_int_equal(bind(fd, (struct sockaddr *)&src, sizeof(src)), 0);
    }
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(port)};
    assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr), 1);
    assert_int_equal(connect(fd, (struct sockaddr *)&dst, sizeof(dst)), 0);
    struct timeval tv = {2, 0};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    return fd;
}

/* t_closed_by_server - the server closed fd (EOF or reset) without sending anything. */
static bool t_closed_by_server(int fd)
{
    char b[64];
    ssize_t r = recv(fd, b, sizeof(b), 0);
    return r == 0 || (r < 0 && errno == ECONNRESET);
}

struct t_wait {
    struct t_node *tn;
    uint64_t refused;
    unsigned inbound;
};

static bool t_refused_n(void *arg)
{
    struct t_wait *w = arg;
    return t_stats(w->tn).inbound_refused >= w->refused;
}

static bool t_inbound_n(void *arg)
{
    struct t_wait *w = arg;
    return t_stats(w->tn).inbound == w->inbound;
}

static void test_max_inbound(void **state)
{
    struct event_base *base = event_base_new();
    struct bm_node_config cfg;
    struct t_node b;
    assert_non_null(base);
    t_cfg(&cfg);
    cfg.max_inbound = 2;
    cfg.max_inbound_per_ip = 10;
    t_node_open(&b, base, &cfg, true);

    int c1 = t_client(NULL, b.port), c2 = t_client(NULL, b.port);
    struct t_wait w = {.tn = &b, .inbound = 2, .refused = 1};
    assert_true(t_run(base, t_inbound_n, &w, T_WAIT_MS));
    int c3 = t_client(NULL, b.port);
    assert_true(t_run(base, t_refused_n, &w, T_WAIT_MS));
    assert_true(t_closed_by_server(c3));
    assert_int_equal(t_stats(&b).inbound, 2);
    close(c3);

    /* a slot frees up when one closes: the next one is accepted */
    close(c1);
    w.inbound = 1;
    assert_true(t_run(base, t_inbound_n, &w, T_WAIT_MS));
    int c4 = t_client(NULL, b.port);
    w.inbound = 2;
    assert_true(t_run(base, t_inbound_n, &w, T_WAIT_MS));
    assert_int_equal(t_stats(&b).inbound_refused, 1);
    close(c2);
    close(c4);
    t_node_close(&b);

    /* per IP: the second connection from 127.0.0.1 is refused, 127.0.0.2 is fine */
    t_cfg(&cfg);
    cfg.max_inbound_per_ip = 1;
    t_node_open(&b, base, &cfg, true);
    c1 = t_client("127.0.0.1", b.port);
    w = (struct t_wait){.tn = &b, .inbound = 1, .refused = 1};
    assert_true(t_run(base, t_inbound_n, &w, T_WAIT_MS));
    c2 = t_client("127.0.0.1", b.port);
    assert_true(t_run(base, t_refused_n, &w, T_WAIT_MS));
    assert_true(t_closed_by_server(c2));
    c3 = t_client("127.0.0.2", b.port);
    w.inbound = 2;
    assert_true(t_run(base, t_inbound_n, &w, T_WAIT_MS));
    assert_int_equal(t_stats(&b).inbound_refused, 1);
    close(c1);
    close(c2);
    close(c3);
    t_node_close(&b);
    event_base_free(base);
}

static void test_trusted_only(void **state)
{
    struct event_base *base = event_base_new();
    struct bm_node_config cfg;
    struct t_node b;
    assert_non_null(base);
    uint16_t dead = t_free_port();
    t_cfg(&cfg);
    cfg.trusted_only = 1;
    t_cfg_peer(&cfg, "127.0.0.2", dead); /* trusted; B's own attempts to it fail */
    t_node_open(&b, base, &cfg, true);

    int c1 = t_client("127.0.0.1", b.port);
    struct t_wait w = {.tn = &b, .refused = 1, .inbound = 1};
    assert_true(t_run(base, t_refused_n, &w, T_WAIT_MS));
    assert_true(t_closed_by_server(c1));
    int c2 = t_client("127.0.0.2", b.port);
    assert_true(t_run(base, t_inbound_n, &w, T_WAIT_MS));
    assert_int_equal(t_stats(&b).inbound_refused, 1);
    close(c1);
    close(c2);
    t_node_close(&b);

    /* a peer given by name: its resolved address is trusted */
    t_cfg(&cfg);
    cfg.trusted_only = 1;
    t_cfg_peer(&cfg, "localhost", dead);
    t_node_open(&b, base, &cfg, true);
    c1 = t_client("127.0.0.1", b.port);
    w = (struct t_wait){.tn = &b, .refused = 1, .inbound = 1};
    assert_true(t_run(base, t_inbound_n, &w, T_WAIT_MS));
    c2 = t_client("127.0.0.2", b.port);
    assert_true(t_run(base, t_refused_n, &w, T_WAIT_MS));
    assert_true(t_closed_by_server(c2));
    close(c1);
    close(c2);
    t_node_close(&b);
    event_base_free(base);
}

/* ---- reconnect ---- */

static bool t_a_failed_once(void *arg)
{
    struct t_node *a = arg;
    struct bm_node_stats s = t_stats(a);
    return s.outbound_attempts >= 1 && s.outbound == 0;
}

static bool t_a_up(void *arg)
{
    return t_stats(arg).peers_established == 1;
}

static bool t_a_down(void *arg)
{
    return t_stats(arg).peers_established == 0;
}

static void test_reconnect(void **state)
{
    struct event_base *base = event_base_new();
    struct bm_node_config cfg;
    struct t_node a, b;
    assert_non_null(base);
    uint16_t port = t_free_port();
    t_cfg(&cfg);
    t_cfg_peer(&cfg, "127.0.0.1", port);
    t_node_open(&a, base, &cfg, false);
    assert_true(t_run(base, t_a_failed_once, &a, T_WAIT_MS));
    assert_int_equal(t_stats(&a).peers_established, 0);

    /* the listener comes back on the same port: A finds it after its backoff */
    t_cfg(&cfg);
    cfg.listen_fd = t_listen_fd(port, &b.port);
    t_node_open(&b, base, &cfg, true);
    assert_true(t_run(base, t_a_up, &a, T_WAIT_MS));
    assert_true(t_stats(&a).outbound_attempts >= 2);
    assert_int_equal(a.up, 1);
    t_node_close(&a);
    t_node_close(&b);
    event_base_free(base);
}

static void test_reconnect_after_drop(void **state)
{
    struct event_base *base = event_base_new();
    struct bm_node_config cfg;
    struct t_node a, b;
    uint16_t port;
    assert_non_null(base);
    t_cfg(&cfg);
    cfg.listen_fd = t_listen_fd(0, &port);
    t_node_open(&b, base, &cfg, true);
    t_cfg(&cfg);
    t_cfg_peer(&cfg, "127.0.0.1", port);
    t_node_open(&a, base, &cfg, false);
    assert_true(t_run(base, t_a_up, &a, T_WAIT_MS));
    uint64_t attempts = t_stats(&a).outbound_attempts;
    assert_int_equal(attempts, 1);

    /* B restarts: A goes down and comes back after reconnect_min */
    t_node_close(&b);
    assert_true(t_run(base, t_a_down, &a, T_WAIT_MS));
    assert_int_equal(a.down, 1);
    t_cfg(&cfg);
    cfg.listen_fd = t_listen_fd(port, &b.port);
    t_node_open(&b, base, &cfg, true);
    assert_true(t_run(base, t_a_up, &a, T_WAIT_MS));
    assert_true(t_stats(&a).outbound_attempts > attempts);
    assert_int_equal(a.up, 2);
    assert_int_equal(a.down, 1);
    t_node_close(&a);
    t_node_close(&b);
    event_base_free(base);
}

/* ---- self-connection ---- */

static bool t_self_refused(void *arg)
{
    struct bm_node_stats s = t_stats(arg);
    return s.self_connections >= 1 && s.inbound == 0 && s.outbound == 0;
}

static void test_self_connection(void **state)
{
    struct event_base *base = event_base_new();
    struct bm_node_config cfg;
    struct t_node a;
    assert_non_null(base);
    t_cfg(&cfg);
    uint16_t port;
    cfg.listen_fd = t_listen_fd(0, &port);
    t_cfg_peer(&cfg, "127.0.0.1", port);
    t_node_open(&a, base, &cfg, true);
    assert_true(t_run(base, t_self_refused, &a, T_WAIT_MS));
    assert_int_equal(t_stats(&a).peers_established, 0);
    assert_int_equal(a.up, 0);
    t_node_close(&a);
    event_base_free(base);
}

/* ---- publish checks ---- */

/* t_raw_object - nonce 0 || expires || getpubkey header for stream, with a 32-byte payload. */
static void t_raw_object(buf_t *out, uint64_t expires, uint64_t stream)
{
    buf_init(out, T_BUF_MAX);
    assert_int_equal(bm_put_u64(out, 0), 0);
    assert_int_equal(bm_put_u64(out, expires), 0);
    assert_int_equal(bm_put_u32(out, BM_WIRE_OBJ_GETPUBKEY), 0);
    assert_int_equal(bm_put_varint(out, 4), 0);
    assert_int_equal(bm_put_varint(out, stream), 0);
    for (int i = 0; i < 32; i++)
        assert_int_equal(bm_put_u8(out, (uint8_t)i), 0);
}

static void test_publish_refused(void **state)
{
    struct event_base *base = event_base_new();
    struct bm_node_config cfg;
    struct t_node a;
    uint64_t count = 1;
    int64_t now = (int64_t)time(NULL);
    buf_t b;
    assert_non_null(base);
    t_cfg(&cfg);
    t_node_open(&a, base, &cfg, false);

    /* bad PoW: a valid object with its nonce changed until the work is insufficient */
    uint8_t *bad = malloc(g_obj[0].len);
    assert_non_null(bad);
    memcpy(bad, g_obj[0].data, g_obj[0].len);
    uint64_t nonce = bm_be64_load(bad);
    do
        bm_be64_store(bad, ++nonce);
    while (bm_pow_sufficient(bad, g_obj[0].len, now, NULL) == 0);
    assert_int_equal(bm_node_publish(a.node, bad, g_obj[0].len, NULL), PST_EINVAL);
    free(bad);

    /* wrong stream, too far in the future, long expired */
    t_raw_object(&b, (uint64_t)now + 300, 2);
    assert_int_equal(bm_node_publish(a.node, (const uint8_t *)b.data, b.len, NULL), PST_EINVAL);
    buf_release(&b);
    t_raw_object(&b, (uint64_t)now + 40 * 24 * 3600, 1);
    assert_int_equal(bm_node_publish(a.node, (const uint8_t *)b.data, b.len, NULL), PST_EINVAL);
    buf_release(&b);
    t_raw_object(&b, (uint64_t)now - 2 * 3600, 1);
    assert_int_equal(bm_node_publish(a.node, (const uint8_t *)b.data, b.len, NULL), PST_EINVAL);
    /* truncated, empty, NUL bytes, NULL */
    assert_int_equal(bm_node_publish(a.node, (const uint8_t *)b.data, 10, NULL), PST_EINVAL);
    assert_int_equal(bm_node_publish(a.node, (const uint8_t *)b.data, 0, NULL), PST_EINVAL);
    buf_release(&b);
    static const uint8_t zeros[64];
    assert_int_equal(bm_node_publish(a.node, zeros, sizeof(zeros), NULL), PST_EINVAL);
    assert_int_equal(bm_node_publish(a.node, NULL, 10, NULL), PST_EINVAL);

    assert_int_equal(bm_store_inv_stats(a.st, &count, NULL), 0);
    assert_int_equal(count, 0);
    assert_int_equal(t_stats(&a).objects_published, 0);

    /* and a good one still goes in */
    assert_int_equal(bm_node_publish(a.node, g_obj[1].data, g_obj[1].len, NULL), 0);
    assert_int_equal(bm_store_inv_stats(a.st, &count, NULL), 0);
    assert_int_equal(count, 1);
    t_node_close(&a);
    event_base_free(base);
}

/* ---- purge ---- */

static bool t_purged(void *arg)
{
    struct t_node *tn = arg;
    uint64_t count = 1;
    assert_int_equal(bm_store_inv_stats(tn->st, &count, NULL), 0);
    return count == 1; /* only the unexpired one is left */
}

static void test_purge(void **state)
{
    struct event_base *base = event_base_new();
    struct bm_node_config cfg;
    struct t_node a;
    int64_t now = (int64_t)time(NULL);
    bool is_new = false;
    assert_non_null(base);
    t_cfg(&cfg);
    cfg.purge_interval = 1;
    t_node_open(&a, base, &cfg, false);
    assert_int_equal(bm_node_publish(a.node, g_obj[0].data, g_obj[0].len, NULL), 0);
    /* an object long expired, put straight into the store */
    struct bm_store_object so = {.type = BM_WIRE_OBJ_GETPUBKEY,
                                 .stream = 1,
                                 .expires = now - BM_STORE_PURGE_GRACE - 60,
                                 .payload = g_obj[1].data,
                                 .payload_len = g_obj[1].len,
                                 .received = now - BM_STORE_PURGE_GRACE - 600};
    memset(so.hash, 0xab, sizeof(so.hash));
    assert_int_equal(bm_store_inv_put(a.st, &so, &is_new), 0);
    assert_true(is_new);
    assert_false(t_purged(&a));
    assert_true(t_run(base, t_purged, &a, T_WAIT_MS));
    assert_true(t_has(&a, g_obj[0].hash));
    assert_false(t_has(&a, so.hash));
    t_node_close(&a);
    event_base_free(base);
}

/* ---- configuration ---- */

static bool t_fd_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

static void test_config(void **state)
{
    struct event_base *base = event_base_new();
    struct bm_node_config cfg;
    struct t_node a;
    bm_node_t *n = (bm_node_t *)&cfg; /* must be cleared on failure */
    uint16_t port;
    assert_non_null(base);
    memset(&a, 0, sizeof(a));
    const char *t = getenv("TMPDIR");
    snprintf(a.dir, sizeof(a.dir), "%s/bmnode.XXXXXX", t && *t ? t : "/tmp");
    assert_non_null(mkdtemp(a.dir));
    snprintf(a.path, sizeof(a.path), "%s/state.db", a.dir);
    assert_int_equal(bm_store_open(a.path, &a.st), 0);

    /* reconnect_max below reconnect_min: refused, the listening fd is closed */
    t_cfg(&cfg);
    cfg.reconnect_min = 10;
    cfg.reconnect_max = 5;
    cfg.listen_fd = t_listen_fd(0, &port);
    int fd = cfg.listen_fd;
    assert_int_equal(bm_node_new(base, a.st, &cfg, NULL, NULL, &n), PST_ECONFIG);
    assert_null(n);
    assert_false(t_fd_open(fd));

    t_cfg(&cfg);
    cfg.reconnect_min = 0;
    assert_int_equal(bm_node_new(base, a.st, &cfg, NULL, NULL, &n), PST_ECONFIG);
    t_cfg(&cfg);
    cfg.purge_interval = 0;
    assert_int_equal(bm_node_new(base, a.st, &cfg, NULL, NULL, &n), PST_ECONFIG);
    t_cfg(&cfg);
    cfg.npeers = BM_NODE_MAX_PEERS + 1;
    assert_int_equal(bm_node_new(base, a.st, &cfg, NULL, NULL, &n), PST_ECONFIG);
    t_cfg(&cfg);
    t_cfg_peer(&cfg, "127.0.0.1", 0); /* port 0 */
    assert_int_equal(bm_node_new(base, a.st, &cfg, NULL, NULL, &n), PST_ECONFIG);
    t_cfg(&cfg);
    t_cfg_peer(&cfg, "", 8444); /* empty host */
    assert_int_equal(bm_node_new(base, a.st, &cfg, NULL, NULL, &n), PST_ECONFIG);
    t_cfg(&cfg);
    memset(cfg.peers[0].host, 'a', sizeof(cfg.peers[0].host)); /* not terminated */
    cfg.peers[0].port = 8444;
    cfg.npeers = 1;
    assert_int_equal(bm_node_new(base, a.st, &cfg, NULL, NULL, &n), PST_ECONFIG);
    t_cfg(&cfg);
    assert_int_equal(bm_node_new(NULL, a.st, &cfg, NULL, NULL, &n), PST_EINVAL);
    assert_int_equal(bm_node_new(base, NULL, &cfg, NULL, NULL, &n), PST_EINVAL);
    assert_int_equal(bm_node_new(base, a.st, NULL, NULL, NULL, &n), PST_EINVAL);

    /* defaults */
    bm_node_config_defaults(&cfg);
    assert_int_equal(cfg.listen_fd, -1);
    assert_int_equal(cfg.listen_port, 8444);
    assert_int_equal(cfg.max_inbound, 32);
    assert_int_equal(cfg.max_inbound_per_ip, 4);
    assert_int_equal(cfg.reconnect_min, 5);
    assert_int_equal(cfg.reconnect_max, 300);
    assert_int_equal(cfg.purge_interval, 300);
    assert_int_equal(cfg.npeers, 0);

    /* a good one; start twice is refused; hooks may be NULL; free twice is harmless */
    assert_int_equal(bm_node_new(base, a.st, &cfg, NULL, NULL, &n), 0);
    assert_int_equal(bm_node_start(n), 0);
    assert_int_equal(bm_node_start(n), PST_EINVAL);
    bm_node_free(&n);
    assert_null(n);
    bm_node_free(&n);
    bm_node_free(NULL);

    bm_store_close(&a.st);
    assert_int_equal(tu_rm_rf(a.dir), 0);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relay_line),      cmocka_unit_test(test_late_join),
        cmocka_unit_test(test_max_inbound),     cmocka_unit_test(test_trusted_only),
        cmocka_unit_test(test_reconnect),       cmocka_unit_test(test_reconnect_after_drop),
        cmocka_unit_test(test_self_connection), cmocka_unit_test(test_publish_refused),
        cmocka_unit_test(test_purge),           cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, t_group_setup, t_group_teardown);
}
