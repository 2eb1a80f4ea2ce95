/*
 * test_bm_engine.c - the Bitmessage mail workflow between two engines on one
 * event loop, each with its own store in a temporary SQLite file. Each
 * engine's ops->publish checks the object as bm_node_publish would (PoW and
 * lifetime at the test clock), stores it in its own inventory and hands it,
 * through a deferred event, to the other engine (stored in its inventory,
 * then bm_engine_on_object), mimicking the network.
 *
 * Covered: A -> B with getpubkey / pubkey / msg / ack; a restart of A while
 * the message is in doingpow; resend with a doubled TTL when the ack is
 * dropped, then failure after max_attempts; pubkey announcement found in the
 * inventory by tag (no getpubkey); a message to ourselves; tampered, forged,
 * foreign and malformed objects ignored; getpubkey rate limit. Small TTLs
 * keep each PoW well under a second.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "bitmessage/bm_address.h"
#include "bitmessage/bm_crypto.h"
#include "bitmessage/bm_encode.h"
#include "bitmessage/bm_engine.h"
#include "bitmessage/bm_object.h"
#include "bitmessage/bm_pow.h"
#include "bitmessage/bm_store.h"
#include "bitmessage/bm_wire.h"
#include "testutil.h"

#define RUN_LIMIT_MS 60000 /* a stuck test fails instead of hanging */

struct net;

struct node {
    struct net *net;
    int idx;
    char path[600];
    struct bm_store *st;
    bm_engine_t *e;
    struct bm_engine_config cfg;
    bm_keys_t keys;
    char addr[BM_ADDRESS_STR_MAX];
    bool drop_msgs; /* do not deliver msg-type objects we publish (acks) */
    unsigned published[4];
    unsigned received_hook, sent_hook, acked_hook, failed_hook;
};

struct net {
    struct event_base *base;
    char dir[512];
    int64_t now;
    struct node n[2];
    unsigned inflight;
};

struct delivery {
    struct node *to;
    uint8_t *obj;
    size_t len;
};

static int64_t net_clock(void *arg)
{
    return ((struct net *)arg)->now;
}

/* ---- the fake network ---------------------------------------------------- */

static int store_object(struct bm_store *st, const uint8_t *obj, size_t len, int64_t now,
                        uint8_t hash[32], bool *is_new)
{
    struct bm_wire_object o;
    struct bm_store_object so;

    if (bm_wire_object_parse(obj, len, &o) != 0)
        return PST_EINVAL;
    if (bm_wire_inventory_hash(obj, len, hash) != 0)
        return PST_EIO;
    memset(&so, 0, sizeof(so));
    memcpy(so.hash, hash, 32);
    so.type = o.type;
    so.stream = o.stream;
    so.expires = (int64_t)o.expires;
    so.has_tag = o.type == BM_WIRE_OBJ_PUBKEY && bm_obj_pubkey_tag(&o, so.tag) == 0;
    so.payload = (uint8_t *)obj;
    so.payload_len = len;
    so.received = now;
    return bm_store_inv_put(st, &so, is_new);
}

static void deliver_cb(evutil_socket_t fd, short what, void *arg)
{
    struct delivery *d = arg;
    struct node *to = d->to;
    uint8_t hash[32];
    bool is_new = false;

    to->net->inflight--;
    if (store_object(to->st, d->obj, d->len, to->net->now, hash, &is_new) == 0 && is_new &&
        to->e != NULL)
        bm_engine_on_object(to->e, hash, d->obj, d->len);
    free(d->obj);
    free(d);
}

static void send_to(struct node *to, const uint8_t *obj, size_t len)
{
    struct delivery *d = calloc(1, sizeof(*d));
    struct timeval tv = {0, 0};

    assert_non_null(d);
    d->to = to;
    d->obj = malloc(len);
    assert_non_null(d->obj);
    memcpy(d->obj, obj, len);
    d->len = len;
    to->net->inflight++;
    assert_int_equal(event_base_once(to->net->base, -1, EV_TIMEOUT, deliver_cb, d, &tv), 0);
}

static int op_publish(void *ctx, const uint8_t *obj, size_t len, uint8_t hash[32])
{
    struct node *me = ctx;
    struct bm_wire_object o;
    uint8_t h[32];
    int rc;

    if (bm_wire_object_parse(obj, len, &o) != 0)
        return PST_EINVAL;
    if ((rc = bm_pow_check(obj, len, me->net->now, NULL)) != 0)
        return rc;
    if ((rc = store_object(me->st, obj, len, me->net->now, h, NULL)) != 0)
        return rc;
    if (hash != NULL)
        memcpy(hash, h, 32);
    if (o.type < 4)
        me->published[o.type]++;
    if (o.type == BM_WIRE_OBJ_MSG && me->drop_msgs)
        return 0;
    send_to(&me->net->n[1 - me->idx], obj, len);
    return 0;
}

static void op_received(void *ctx, int64_t id)
{
    ((struct node *)ctx)->received_hook++;
}

static void op_sent(void *ctx, int64_t id)
{
    ((struct node *)ctx)->sent_hook++;
}

static void op_acked(void *ctx, int64_t id)
{
    ((struct node *)ctx)->acked_hook++;
}

static void op_failed(void *ctx, int64_t id, const char *why)
{
    assert_non_null(why);
    ((struct node *)ctx)->failed_hook++;
}

static const struct bm_engine_ops test_ops = {
    .publish = op_publish,
    .on_received = op_received,
    .on_sent = op_sent,
    .on_acked = op_acked,
    .on_failed = op_failed,
};

/* ---- fixture -------------------------------------------------------------- */

/* Three identities made once (deriving them costs ~0.4 s each under the sanitizers). */
static bm_keys_t test_keys[3];
static char test_addrs[3][BM_ADDRESS_STR_MAX];

static int group_setup(void **state)
{
    static const char *const pass[3] = {"postern engine test A", "postern engine test B",
                                        "postern engine test C"};
    uint64_t nonce;
    int i;

    for (i = 0; i < 3; i++) {
        nonce = 0;
        if (bm_keys_from_passphrase(pass[i], strlen(pass[i]), 4, 1, 1, &nonce, &test_keys[i]) !=
                0 ||
            bm_address_encode(&test_keys[i].addr, test_addrs[i], BM_ADDRESS_STR_MAX) != 0)
            return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    OPENSSL_cleanse(test_keys, sizeof(test_keys));
    return 0;
}

static void make_keys(int which, bm_keys_t *k, char addr[BM_ADDRESS_STR_MAX])
{
    *k = test_keys[which];
    memcpy(addr, test_addrs[which], BM_ADDRESS_STR_MAX);
}

static void add_key(struct bm_store *st, const bm_keys_t *k, const char *addr)
{
    struct bm_store_key sk;

    memset(&sk, 0, sizeof(sk));
    snprintf(sk.address, sizeof(sk.address), "%s", addr);
    snprintf(sk.label, sizeof(sk.label), "test");
    sk.version = (uint32_t)k->addr.version;
    sk.stream = k->addr.stream;
    memcpy(sk.ripe, k->addr.ripe, 20);
    assert_int_equal(bm_address_tag(&k->addr, NULL, sk.tag), 0);
    memcpy(sk.signing_priv, k->priv_signing, 32);
    memcpy(sk.encryption_priv, k->priv_encryption, 32);
    sk.created = 1;
    assert_int_equal(bm_store_key_add(st, &sk), 0);
    bm_store_key_clear(&sk);
}

static void test_config(struct bm_engine_config *c)
{
    bm_engine_config_defaults(c);
    c->msg_ttl = 600;
    c->getpubkey_ttl = 300;
    c->pubkey_ttl = 600;
    c->pubkey_resend = 3600;
    c->tick_interval_ms = 50;
    c->announce_pubkeys = false;
}

static int setup(void **state)
{
    struct net *net = calloc(1, sizeof(*net));
    const char *t = getenv("TMPDIR");
    int i, n;

    if (net == NULL)
        return -1;
    n = snprintf(net->dir, sizeof(net->dir), "%s/bmengine.XXXXXX", t && *t ? t : "/tmp");
    if (n < 0 || (size_t)n >= sizeof(net->dir) || mkdtemp(net->dir) == NULL)
        return -1;
    net->base = event_base_new();
    if (net->base == NULL)
        return -1;
    net->now = (int64_t)time(NULL);
    for (i = 0; i < 2; i++) {
        struct node *nd = &net->n[i];

        nd->net = net;
        nd->idx = i;
        n = snprintf(nd->path, sizeof(nd->path), "%s/state%d.db", net->dir, i);
        if (n < 0 || (size_t)n >= sizeof(nd->path) || bm_store_open(nd->path, &nd->st) != 0)
            return -1;
        make_keys(i, &nd->keys, nd->addr);
        add_key(nd->st, &nd->keys, nd->addr);
        test_config(&nd->cfg);
    }
    *state = net;
    return 0;
}

static void start(struct node *nd)
{
    assert_int_equal(bm_engine_new(nd->net->base, nd->st, &nd->cfg, &test_ops, nd, &nd->e), 0);
    bm_engine_set_clock(nd->e, net_clock, nd->net);
}

static int teardown(void **state)
{
    struct net *net = *state;
    int i;

    for (i = 0; i < 2; i++)
        bm_engine_free(&net->n[i].e);
    while (net->inflight > 0)
        event_base_loop(net->base, EVLOOP_NONBLOCK);
    for (i = 0; i < 2; i++)
        bm_store_close(&net->n[i].st);
    event_base_free(net->base);
    tu_rm_rf(net->dir);
    free(net);
    return 0;
}

/* ---- helpers -------------------------------------------------------------- */

static int64_t ms_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef bool (*pred_fn)(struct net *net, void *arg);

static void run_until(struct net *net, pred_fn pred, void *arg)
{
    int64_t start = ms_now();

    while (!pred(net, arg)) {
        assert_true(ms_now() - start < RUN_LIMIT_MS);
        event_base_loop(net->base, EVLOOP_ONCE);
    }
}

static void run_for(struct net *net, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    event_base_loopexit(net->base, &tv);
    event_base_dispatch(net->base);
}

struct state_arg {
    struct node *nd;
    int64_t msgid;
    enum bm_outbox_state state;
};

static bool outbox_in(struct net *net, void *arg)
{
    struct state_arg *a = arg;
    struct bm_store_outmsg m;
    bool ok;

    assert_int_equal(bm_store_outbox_get(a->nd->st, a->msgid, &m), 0);
    ok = m.state == a->state;
    bm_store_outmsg_free(&m);
    return ok;
}

static void wait_state(struct node *nd, int64_t msgid, enum bm_outbox_state s)
{
    struct state_arg a = {nd, msgid, s};

    run_until(nd->net, outbox_in, &a);
}

static struct bm_store_outmsg get_out(struct node *nd, int64_t msgid)
{
    struct bm_store_outmsg m;

    assert_int_equal(bm_store_outbox_get(nd->st, msgid, &m), 0);
    return m;
}

static int64_t queue_msg(struct node *from, const char *to, const char *subject, const char *body,
                         int64_t ttl)
{
    uint8_t ackdata[32];
    int64_t id = 0;

    assert_int_equal(RAND_bytes(ackdata, sizeof(ackdata)), 1);
    assert_int_equal(bm_store_outbox_add(from->st, from->addr, to, subject, strlen(subject), body,
                                         strlen(body), ackdata, ttl, from->net->now, &id),
                     0);
    return id;
}

struct inbox_list {
    unsigned n;
    char subject[128], body[256], from[80], to[80];
};

static int inbox_cb(const struct bm_store_inmsg *m, void *arg)
{
    struct inbox_list *l = arg;

    l->n++;
    snprintf(l->subject, sizeof(l->subject), "%.*s", (int)m->subject_len, m->subject);
    snprintf(l->body, sizeof(l->body), "%.*s", (int)m->body_len, m->body);
    snprintf(l->from, sizeof(l->from), "%s", m->from_addr);
    snprintf(l->to, sizeof(l->to), "%s", m->to_addr);
    return 0;
}

static struct inbox_list inbox(struct node *nd)
{
    struct inbox_list l;

    memset(&l, 0, sizeof(l));
    assert_int_equal(bm_store_inbox_undelivered(nd->st, inbox_cb, &l), 0);
    return l;
}

static struct bm_engine_stats stats(struct node *nd)
{
    struct bm_engine_stats s;

    bm_engine_get_stats(nd->e, &s);
    return s;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_send_receive(void **state)
{
    struct net *net = *state;
    struct node *a = &net->n[0], *b = &net->n[1];
    struct bm_store_pubkey pk;
    struct inbox_list l;
    int64_t id;

    id = queue_msg(a, b->addr, "hello B", "first line\nsecond line", 600);
    start(a);
    start(b);
    wait_state(a, id, BM_OUTBOX_ACKED);

    l = inbox(b);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.subject, "hello B");
    assert_string_equal(l.body, "first line\nsecond line");
    assert_string_equal(l.from, a->addr);
    assert_string_equal(l.to, b->addr);

    assert_int_equal(stats(a).getpubkeys_sent, 1);
    assert_int_equal(stats(b).pubkeys_sent, 1);
    assert_int_equal(stats(a).msgs_sent, 1);
    assert_int_equal(stats(b).msgs_received, 1);
    assert_int_equal(stats(b).acks_sent, 1);
    assert_int_equal(stats(a).acks_received, 1);
    assert_true(stats(a).pow_jobs >= 3);
    assert_int_equal(a->sent_hook, 1);
    assert_int_equal(a->acked_hook, 1);
    assert_int_equal(b->received_hook, 1);
    assert_int_equal(a->failed_hook, 0);
    /* each side now knows the other's keys */
    assert_int_equal(bm_store_pubkey_by_addr(a->st, b->addr, &pk), 0);
    assert_int_equal(bm_store_pubkey_by_addr(b->st, a->addr, &pk), 0);
    assert_int_equal(pk.nonce_trials, BM_POW_NONCE_TRIALS_DEFAULT);
}

static bool a_in_doingpow(struct net *net, void *arg)
{
    struct bm_store_outmsg m = get_out(&net->n[0], *(int64_t *)arg);
    bool ok = m.state == BM_OUTBOX_DOINGPOW && stats(&net->n[0]).pow_busy;

    bm_store_outmsg_free(&m);
    return ok;
}

static void test_restart_in_doingpow(void **state)
{
    struct net *net = *state;
    struct node *a = &net->n[0], *b = &net->n[1];
    struct bm_store_outmsg m;
    int64_t id;

    id = queue_msg(a, b->addr, "restart", "body survives a restart", 600);
    start(a);
    start(b);
    run_until(net, a_in_doingpow, &id);
    bm_engine_free(&a->e); /* cancels the running search */
    assert_null(a->e);
    m = get_out(a, id);
    assert_int_equal(m.state, BM_OUTBOX_DOINGPOW);
    bm_store_outmsg_free(&m);

    start(a);
    wait_state(a, id, BM_OUTBOX_ACKED);
    assert_int_equal(inbox(b).n, 1);
    assert_string_equal(inbox(b).body, "body survives a restart");
    m = get_out(a, id);
    assert_int_equal(m.attempts, 1);
    bm_store_outmsg_free(&m);
}

static bool a_sent_twice(struct net *net, void *arg)
{
    return stats(&net->n[0]).msgs_sent >= 2;
}

static void test_resend_then_fail(void **state)
{
    struct net *net = *state;
    struct node *a = &net->n[0], *b = &net->n[1];
    struct bm_store_outmsg m;
    int64_t id;

    a->cfg.max_attempts = 2;
    b->drop_msgs = true; /* B's acks never reach A */
    id = queue_msg(a, b->addr, "resend", "are you there?", 300);
    start(a);
    start(b);
    wait_state(a, id, BM_OUTBOX_SENT);
    m = get_out(a, id);
    assert_int_equal(m.attempts, 1);
    assert_int_equal(m.ttl, 300);
    /* TTL * 1.1 after the send, the TTL blurred by up to 10 % (bm_engine_jitter) */
    assert_true(m.next_attempt >= net->now + 300 * 9 / 10 * 11 / 10);
    bm_store_outmsg_free(&m);
    /* the recipient got it and published an ack that was lost */
    assert_int_equal(inbox(b).n, 1);
    assert_int_equal(b->published[BM_WIRE_OBJ_MSG], 1);

    /* no ack by TTL * 1.1: sent again with the TTL doubled */
    net->now += 300 + 30 + 10 + 30;
    bm_engine_kick(a->e);
    run_until(net, a_sent_twice, NULL);
    wait_state(a, id, BM_OUTBOX_SENT);
    m = get_out(a, id);
    assert_int_equal(m.attempts, 2);
    assert_int_equal(m.ttl, 600);
    assert_true(m.next_attempt >= net->now + 600 * 9 / 10 * 11 / 10);
    bm_store_outmsg_free(&m);

    /* still no ack: max_attempts reached, failed */
    net->now += 600 + 60 + 60 + 60;
    bm_engine_kick(a->e);
    wait_state(a, id, BM_OUTBOX_FAILED);
    assert_int_equal(a->failed_hook, 1);
    assert_int_equal(a->acked_hook, 0);
    assert_int_equal(stats(a).msgs_sent, 2);
    assert_int_equal(stats(a).getpubkeys_sent, 1); /* the pubkey was asked for once */
}

static bool b_announced(struct net *net, void *arg)
{
    return stats(&net->n[1]).pubkeys_sent >= 1 && net->inflight == 0;
}

static void test_announce_and_inventory(void **state)
{
    struct net *net = *state;
    struct node *a = &net->n[0], *b = &net->n[1];
    int64_t id;

    b->cfg.announce_pubkeys = true;
    start(a);
    start(b);
    run_until(net, b_announced, NULL);
    /* A did not want it yet: only in A's inventory, not in its cache */
    {
        struct bm_store_pubkey pk;
        assert_int_equal(bm_store_pubkey_by_addr(a->st, b->addr, &pk), PST_ENOENT);
    }
    id = queue_msg(a, b->addr, "found by tag", "no getpubkey needed", 600);
    bm_engine_kick(a->e);
    wait_state(a, id, BM_OUTBOX_ACKED);
    assert_int_equal(stats(a).getpubkeys_sent, 0);
    assert_int_equal(stats(b).pubkeys_sent, 1);
    assert_string_equal(inbox(b).subject, "found by tag");
}

static void test_send_to_self(void **state)
{
    struct net *net = *state;
    struct node *a = &net->n[0];
    int64_t id;

    id = queue_msg(a, a->addr, "note to self", "remember the milk", 600);
    start(a);
    wait_state(a, id, BM_OUTBOX_ACKED);
    assert_int_equal(inbox(a).n, 1);
    assert_string_equal(inbox(a).subject, "note to self");
    assert_int_equal(stats(a).getpubkeys_sent, 0);
    assert_int_equal(a->received_hook, 1);
}

/* build_msg - a msg object (nonce 0, no PoW: the engine leaves PoW to the node) from
 * `from` with dest_ripe, encrypted to enc_pub. */
static void build_msg(buf_t *out, int64_t now, const bm_keys_t *from, const uint8_t *dest_ripe,
                      const uint8_t *enc_pub, const char *text)
{
    buf_t body;

    buf_init(&body, 1 << 19);
    assert_int_equal(bm_obj_msg_build(&body, (uint64_t)now + 600, 1, from, NULL, dest_ripe, enc_pub,
                                      BM_OBJ_ENC_SIMPLE, (const uint8_t *)text, strlen(text), NULL,
                                      0),
                     0);
    buf_reset(out);
    assert_int_equal(bm_obj_with_nonce(out, 0, (const uint8_t *)body.data, body.len), 0);
    buf_release(&body);
}

static void feed(struct node *nd, const uint8_t *obj, size_t len)
{
    uint8_t hash[32];

    assert_int_equal(bm_wire_inventory_hash(obj, len, hash), 0);
    bm_engine_on_object(nd->e, hash, obj, len);
}

static void test_hostile_objects(void **state)
{
    struct net *net = *state;
    struct node *a = &net->n[0], *b = &net->n[1];
    bm_keys_t c;
    char caddr[BM_ADDRESS_STR_MAX];
    uint8_t junk[300];
    buf_t obj;
    size_t i;

    start(b);
    buf_init(&obj, 1 << 19);
    make_keys(2, &c, caddr);

    /* a good one first, so the checks below can fail */
    build_msg(&obj, net->now, &a->keys, b->keys.addr.ripe, b->keys.pub_encryption,
              "Subject:ok\nBody:fine");
    feed(b, (const uint8_t *)obj.data, obj.len);
    assert_int_equal(inbox(b).n, 1);

    /* tampered ciphertext: the MAC fails, treated as not ours */
    build_msg(&obj, net->now, &a->keys, b->keys.addr.ripe, b->keys.pub_encryption,
              "Subject:bad\nBody:tampered");
    obj.data[obj.len - 40] ^= 0x01;
    feed(b, (const uint8_t *)obj.data, obj.len);
    /* tampered header (signed, not encrypted): signature fails */
    build_msg(&obj, net->now, &a->keys, b->keys.addr.ripe, b->keys.pub_encryption,
              "Subject:bad\nBody:tampered header");
    obj.data[15] ^= 0x01; /* expires, covered by the signature */
    feed(b, (const uint8_t *)obj.data, obj.len);
    /* encrypted to B but naming C as destination (surreptitious forwarding) */
    build_msg(&obj, net->now, &a->keys, c.addr.ripe, b->keys.pub_encryption,
              "Subject:bad\nBody:forwarded");
    feed(b, (const uint8_t *)obj.data, obj.len);
    /* for a key B does not have */
    build_msg(&obj, net->now, &a->keys, c.addr.ripe, c.pub_encryption,
              "Subject:bad\nBody:not for B");
    feed(b, (const uint8_t *)obj.data, obj.len);
    /* malformed and truncated objects of every type */
    for (i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 37 + 11);
    for (i = 0; i < 40; i++) {
        junk[12] = (uint8_t)(i % 4);
        junk[13] = 0;
        junk[14] = 0;
        junk[15] = 0;
        feed(b, junk, i * 7);
    }
    feed(b, (const uint8_t *)obj.data, 30);
    feed(b, (const uint8_t *)obj.data, obj.len / 2);

    run_for(net, 100);
    assert_int_equal(inbox(b).n, 1);
    assert_string_equal(inbox(b).subject, "ok");
    assert_int_equal(stats(b).msgs_received, 1);
    assert_int_equal(stats(b).acks_sent, 0); /* no ack was carried */
    buf_release(&obj);
    OPENSSL_cleanse(&c, sizeof(c));
}

static bool b_idle_after(struct net *net, void *arg)
{
    struct bm_engine_stats s = stats(&net->n[1]);

    return s.pow_jobs >= *(uint64_t *)arg && !s.pow_busy && net->inflight == 0;
}

static void getpubkey_obj(buf_t *out, int64_t expires, const bm_address_t *addr)
{
    buf_t body;

    buf_init(&body, 1024);
    assert_int_equal(bm_obj_getpubkey_build(&body, (uint64_t)expires, addr), 0);
    buf_reset(out);
    assert_int_equal(bm_obj_with_nonce(out, 7, (const uint8_t *)body.data, body.len), 0);
    buf_release(&body);
}

static void test_getpubkey_rate_limit(void **state)
{
    struct net *net = *state;
    struct node *b = &net->n[1];
    bm_address_t other, v3;
    uint64_t want = 1;
    buf_t obj;

    start(b);
    buf_init(&obj, 4096);
    getpubkey_obj(&obj, net->now + 300, &b->keys.addr);
    feed(b, (const uint8_t *)obj.data, obj.len);
    run_until(net, b_idle_after, &want);
    assert_int_equal(stats(b).pubkeys_sent, 1);
    assert_int_equal(b->published[BM_WIRE_OBJ_PUBKEY], 1);

    /* asked again within pubkey_resend: ignored */
    getpubkey_obj(&obj, net->now + 301, &b->keys.addr);
    feed(b, (const uint8_t *)obj.data, obj.len);
    /* for someone else, and for a v3 address with our ripe: ignored */
    other = b->keys.addr;
    other.ripe[5] ^= 0xff;
    getpubkey_obj(&obj, net->now + 302, &other);
    feed(b, (const uint8_t *)obj.data, obj.len);
    v3 = b->keys.addr;
    v3.version = 3;
    getpubkey_obj(&obj, net->now + 303, &v3);
    feed(b, (const uint8_t *)obj.data, obj.len);
    run_for(net, 150);
    assert_int_equal(stats(b).pow_jobs, 1);
    assert_int_equal(stats(b).pubkeys_sent, 1);

    /* after pubkey_resend: answered again */
    net->now += 3601;
    getpubkey_obj(&obj, net->now + 300, &b->keys.addr);
    feed(b, (const uint8_t *)obj.data, obj.len);
    want = 2;
    run_until(net, b_idle_after, &want);
    assert_int_equal(stats(b).pubkeys_sent, 2);
    buf_release(&obj);
}

/*
 * An announcement does not stop the answer to a getpubkey: a sender that dropped the
 * announced pubkey (PyBitmessage ignores pubkeys it was not waiting for, then asks) must
 * get one at once. Answers alone are rate limited.
 */
static void test_getpubkey_after_announce(void **state)
{
    struct net *net = *state;
    struct node *b = &net->n[1];
    uint64_t want = 1;
    buf_t obj;

    b->cfg.announce_pubkeys = true;
    start(b);
    run_until(net, b_idle_after, &want); /* the announcement */
    assert_int_equal(stats(b).pubkeys_sent, 1);

    buf_init(&obj, 4096);
    getpubkey_obj(&obj, net->now + 300, &b->keys.addr);
    feed(b, (const uint8_t *)obj.data, obj.len);
    want = 2;
    run_until(net, b_idle_after, &want);
    assert_int_equal(stats(b).pubkeys_sent, 2);

    getpubkey_obj(&obj, net->now + 301, &b->keys.addr); /* again: rate limited */
    feed(b, (const uint8_t *)obj.data, obj.len);
    run_for(net, 150);
    assert_int_equal(stats(b).pubkeys_sent, 2);
    buf_release(&obj);
}

/* v3_pubkey_obj - an unencrypted version 3 pubkey object of k, signed as the reference
 * signs it (from expires to the end of the extra-bytes field); nonce 0. */
static void v3_pubkey_obj(buf_t *out, int64_t expires, const bm_keys_t *k)
{
    buf_t sig;
    bm_key_t *key = NULL;

    buf_reset(out);
    buf_init(&sig, BM_SIG_MAX_LEN);
    assert_int_equal(bm_put_u64(out, 0), 0);
    assert_int_equal(bm_put_u64(out, (uint64_t)expires), 0);
    assert_int_equal(bm_put_u32(out, BM_WIRE_OBJ_PUBKEY), 0);
    assert_int_equal(bm_put_varint(out, 3), 0);
    assert_int_equal(bm_put_varint(out, 1), 0);
    assert_int_equal(bm_put_u32(out, BM_OBJ_BITFIELD_DOESACK), 0);
    assert_int_equal(bm_put_bytes(out, k->pub_signing + 1, 64), 0);
    assert_int_equal(bm_put_bytes(out, k->pub_encryption + 1, 64), 0);
    assert_int_equal(bm_put_varint(out, 2000), 0);
    assert_int_equal(bm_put_varint(out, 1500), 0);
    assert_int_equal(bm_key_from_private(k->priv_signing, &key), 0);
    assert_int_equal(bm_sign(key, out->data + 8, out->len - 8, &sig), 0);
    assert_int_equal(bm_put_varstr(out, sig.data, sig.len), 0);
    bm_key_free(&key);
    buf_release(&sig);
}

static void test_v3_pubkey(void **state)
{
    struct net *net = *state;
    struct node *a = &net->n[0];
    struct bm_store_pubkey pk;
    bm_keys_t k3;
    char addr3[BM_ADDRESS_STR_MAX];
    uint64_t nonce = 0;
    buf_t obj;

    assert_int_equal(bm_keys_from_passphrase("v3", 2, 3, 1, 1, &nonce, &k3), 0);
    assert_int_equal(bm_address_encode(&k3.addr, addr3, sizeof(addr3)), 0);
    start(a);
    buf_init(&obj, 4096);

    /* tampered (demanded PoW changed after signing): not cached */
    v3_pubkey_obj(&obj, net->now + 600, &k3);
    obj.data[22 + 4 + 128 + 1] ^= 0x01;
    feed(a, (const uint8_t *)obj.data, obj.len);
    assert_int_equal(bm_store_pubkey_by_addr(a->st, addr3, &pk), PST_ENOENT);
    /* truncated: not cached */
    v3_pubkey_obj(&obj, net->now + 600, &k3);
    feed(a, (const uint8_t *)obj.data, obj.len - 10);
    assert_int_equal(bm_store_pubkey_by_addr(a->st, addr3, &pk), PST_ENOENT);

    /* good: cached under its v3 address with the demanded difficulty */
    feed(a, (const uint8_t *)obj.data, obj.len);
    assert_int_equal(bm_store_pubkey_by_addr(a->st, addr3, &pk), 0);
    assert_false(pk.has_tag);
    assert_int_equal(pk.nonce_trials, 2000);
    assert_int_equal(pk.extra_bytes, 1500);
    assert_memory_equal(pk.ripe, k3.addr.ripe, 20);
    assert_memory_equal(pk.encryption_pub, k3.pub_encryption + 1, 64);
    buf_release(&obj);
    OPENSSL_cleanse(&k3, sizeof(k3));
}

static void test_config_checks(void **state)
{
    struct net *net = *state;
    struct node *a = &net->n[0];
    struct bm_engine_config c;
    struct bm_engine_ops noops = {0};
    bm_engine_t *e = (bm_engine_t *)1;

    bm_engine_config_defaults(&c);
    assert_int_equal(c.msg_ttl, 4 * 86400);
    assert_int_equal(c.getpubkey_ttl, 216000);
    assert_int_equal(c.max_attempts, 8);
    c.max_attempts = 0;
    assert_int_equal(bm_engine_new(net->base, a->st, &c, &test_ops, a, &e), PST_ECONFIG);
    assert_null(e);
    bm_engine_config_defaults(&c);
    c.msg_ttl = BM_STORE_TTL_MAX + 1;
    assert_int_equal(bm_engine_new(net->base, a->st, &c, &test_ops, a, &e), PST_ECONFIG);
    bm_engine_config_defaults(&c);
    assert_int_equal(bm_engine_new(net->base, a->st, &c, &noops, a, &e), PST_EINVAL);
    bm_engine_free(&e);
    bm_engine_free(NULL);
    bm_engine_kick(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_send_receive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_in_doingpow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resend_then_fail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_announce_and_inventory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_to_self, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_objects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_getpubkey_rate_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_getpubkey_after_announce, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v3_pubkey, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_checks, setup, teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
