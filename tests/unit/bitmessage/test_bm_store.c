/*
 * test_bm_store.c - the Bitmessage state tables on a temporary database:
 * inventory (duplicates, expiry purge, inv listing, stats), keys, pubkeys,
 * outbox state machine (allowed and refused moves, resend TTL doubling),
 * inbox dedupe/delivery, persistence across close/reopen, input limits and
 * a damaged row read back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitmessage/bm_store.h"

#define T0 1700000000

struct fx {
    char dir[512];
    char path[600];
    struct bm_store *st;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    const char *t = getenv("TMPDIR");
    int n;

    if (f == NULL)
        return -1;
    n = snprintf(f->dir, sizeof(f->dir), "%s/bmstore.XXXXXX", t && *t ? t : "/tmp");
    if (n < 0 || (size_t)n >= sizeof(f->dir) || mkdtemp(f->dir) == NULL)
        return -1;
    n = snprintf(f->path, sizeof(f->path), "%s/state.db", f->dir);
    if (n < 0 || (size_t)n >= sizeof(f->path))
        return -1;
    if (bm_store_open(f->path, &f->st) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char p[700];

    bm_store_close(&f->st);
    unlink(f->path);
    snprintf(p, sizeof(p), "%s-wal", f->path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", f->path);
    unlink(p);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void reopen(struct fx *f)
{
    bm_store_close(&f->st);
    assert_null(f->st);
    assert_int_equal(bm_store_open(f->path, &f->st), 0);
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    size_t i;

    for (i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 7);
}

/* ---- inventory ---------------------------------------------------------- */

static void make_obj(struct bm_store_object *o, uint8_t seed, uint64_t stream, int64_t expires,
                     uint8_t *payload, size_t len)
{
    memset(o, 0, sizeof(*o));
    fill(o->hash, sizeof(o->hash), seed);
    o->type = 2;
    o->stream = stream;
    o->expires = expires;
    o->payload = payload;
    o->payload_len = len;
    o->received = T0;
}

static void test_schema(void **state)
{
    struct fx *f = *state;
    int v = 0;

    assert_int_equal(db_schema_version(bm_store_db(f->st), &v), 0);
    assert_true(v >= 2);
}

static void test_inv_put_get(void **state)
{
    struct fx *f = *state;
    struct bm_store_object o, got;
    uint8_t payload[100], other[3] = {1, 2, 3};
    bool is_new = false, ex = true;
    uint64_t count = 9, bytes = 9;

    fill(payload, sizeof(payload), 3);
    payload[10] = 0; /* binary-safe */
    make_obj(&o, 1, 1, T0 + 3600, payload, sizeof(payload));
    o.has_tag = true;
    fill(o.tag, sizeof(o.tag), 99);
    assert_int_equal(bm_store_inv_exists(f->st, o.hash, &ex), 0);
    assert_false(ex);
    assert_int_equal(bm_store_inv_put(f->st, &o, &is_new), 0);
    assert_true(is_new);
    assert_int_equal(bm_store_inv_exists(f->st, o.hash, &ex), 0);
    assert_true(ex);

    /* duplicate hash: ignored, original kept */
    o.payload = other;
    o.payload_len = sizeof(other);
    assert_int_equal(bm_store_inv_put(f->st, &o, &is_new), 0);
    assert_false(is_new);
    assert_int_equal(bm_store_inv_put(f->st, &o, NULL), 0);

    assert_int_equal(bm_store_inv_get(f->st, o.hash, &got), 0);
    assert_memory_equal(got.hash, o.hash, BM_STORE_HASH_LEN);
    assert_int_equal(got.type, 2);
    assert_int_equal(got.stream, 1);
    assert_int_equal(got.expires, T0 + 3600);
    assert_true(got.has_tag);
    assert_memory_equal(got.tag, o.tag, BM_STORE_TAG_LEN);
    assert_int_equal(got.payload_len, sizeof(payload));
    assert_memory_equal(got.payload, payload, sizeof(payload));
    assert_int_equal(got.received, T0);
    bm_store_object_free(&got);
    assert_null(got.payload);
    bm_store_object_free(NULL);

    /* no tag */
    make_obj(&o, 2, 1, T0 + 3600, other, sizeof(other));
    assert_int_equal(bm_store_inv_put(f->st, &o, &is_new), 0);
    assert_true(is_new);
    assert_int_equal(bm_store_inv_get(f->st, o.hash, &got), 0);
    assert_false(got.has_tag);
    bm_store_object_free(&got);

    assert_int_equal(bm_store_inv_stats(f->st, &count, &bytes), 0);
    assert_int_equal(count, 2);
    assert_int_equal(bytes, sizeof(payload) + sizeof(other));

    /* absent */
    make_obj(&o, 3, 1, T0, other, sizeof(other));
    assert_int_equal(bm_store_inv_get(f->st, o.hash, &got), PST_ENOENT);
    assert_null(got.payload);
}

static void test_inv_limits(void **state)
{
    struct fx *f = *state;
    struct bm_store_object o;
    uint8_t *big = calloc(1, BM_STORE_OBJECT_MAX + 1);
    bool is_new = true;
    uint64_t count = 9;

    assert_non_null(big);
    make_obj(&o, 5, 1, T0, big, BM_STORE_OBJECT_MAX + 1);
    assert_int_equal(bm_store_inv_put(f->st, &o, &is_new), PST_ELIMIT);
    assert_false(is_new);
    o.payload_len = BM_STORE_OBJECT_MAX; /* exactly the limit is fine */
    assert_int_equal(bm_store_inv_put(f->st, &o, &is_new), 0);
    assert_true(is_new);
    make_obj(&o, 6, 1, T0, big, 0);
    assert_int_equal(bm_store_inv_put(f->st, &o, NULL), PST_EINVAL);
    make_obj(&o, 6, 1, T0, NULL, 5);
    assert_int_equal(bm_store_inv_put(f->st, &o, NULL), PST_EINVAL);
    assert_int_equal(bm_store_inv_put(f->st, NULL, NULL), PST_EINVAL);
    make_obj(&o, 6, UINT64_MAX, T0, big, 5); /* stream beyond int64 */
    assert_int_equal(bm_store_inv_put(f->st, &o, NULL), PST_ELIMIT);
    assert_int_equal(bm_store_inv_stats(f->st, &count, NULL), 0);
    assert_int_equal(count, 1);
    free(big);
}

struct hash_seen {
    int n;
    uint8_t seen[8][BM_STORE_HASH_LEN];
    int stop_after;
};

static int collect_hash(const uint8_t hash[BM_STORE_HASH_LEN], void *arg)
{
    struct hash_seen *h = arg;

    if (h->n < 8)
        memcpy(h->seen[h->n], hash, BM_STORE_HASH_LEN);
    h->n++;
    if (h->stop_after != 0 && h->n >= h->stop_after)
        return 42;
    return 0;
}

static int seen_seed(const struct hash_seen *h, uint8_t seed)
{
    uint8_t want[BM_STORE_HASH_LEN];
    int i;

    fill(want, sizeof(want), seed);
    for (i = 0; i < h->n && i < 8; i++)
        if (memcmp(h->seen[i], want, sizeof(want)) == 0)
            return 1;
    return 0;
}

static void test_inv_hashes_purge(void **state)
{
    struct fx *f = *state;
    struct bm_store_object o;
    struct hash_seen h;
    uint8_t p[4] = {9, 9, 9, 9};
    uint64_t removed = 99, count = 0;
    bool ex = false;
    int64_t now = T0;

    /* seed 1: live, stream 1; seed 2: expired 1 h ago (kept, not announced);
     * seed 3: expired 4 h ago (purged); seed 4: live, stream 2 */
    make_obj(&o, 1, 1, now + 600, p, sizeof(p));
    assert_int_equal(bm_store_inv_put(f->st, &o, NULL), 0);
    make_obj(&o, 2, 1, now - 3600, p, sizeof(p));
    assert_int_equal(bm_store_inv_put(f->st, &o, NULL), 0);
    make_obj(&o, 3, 1, now - 4 * 3600, p, sizeof(p));
    assert_int_equal(bm_store_inv_put(f->st, &o, NULL), 0);
    make_obj(&o, 4, 2, now + 600, p, sizeof(p));
    assert_int_equal(bm_store_inv_put(f->st, &o, NULL), 0);
    make_obj(&o, 5, 1, now, p, sizeof(p)); /* expires exactly now: not announced */
    assert_int_equal(bm_store_inv_put(f->st, &o, NULL), 0);

    memset(&h, 0, sizeof(h));
    assert_int_equal(bm_store_inv_hashes(f->st, 1, now, collect_hash, &h), 0);
    assert_int_equal(h.n, 1);
    assert_true(seen_seed(&h, 1));
    memset(&h, 0, sizeof(h));
    assert_int_equal(bm_store_inv_hashes(f->st, 2, now, collect_hash, &h), 0);
    assert_int_equal(h.n, 1);
    assert_true(seen_seed(&h, 4));
    memset(&h, 0, sizeof(h));
    assert_int_equal(bm_store_inv_hashes(f->st, 1, now - 7200, collect_hash, &h), 0);
    assert_int_equal(h.n, 3); /* 1, 2 and 5 were live two hours earlier */
    /* a callback's non-zero result stops the walk and is returned */
    memset(&h, 0, sizeof(h));
    h.stop_after = 1;
    assert_int_equal(bm_store_inv_hashes(f->st, 1, now - 7200, collect_hash, &h), 42);
    assert_int_equal(h.n, 1);
    assert_int_equal(bm_store_inv_hashes(f->st, 1, now, NULL, NULL), PST_EINVAL);

    /* purge keeps 3 h of grace */
    assert_int_equal(bm_store_inv_purge(f->st, now, &removed), 0);
    assert_int_equal(removed, 1);
    fill(o.hash, sizeof(o.hash), 3);
    assert_int_equal(bm_store_inv_exists(f->st, o.hash, &ex), 0);
    assert_false(ex);
    fill(o.hash, sizeof(o.hash), 2);
    assert_int_equal(bm_store_inv_exists(f->st, o.hash, &ex), 0);
    assert_true(ex);
    assert_int_equal(bm_store_inv_purge(f->st, now + 3 * 3600, &removed), 0);
    assert_int_equal(removed, 1); /* seed 2 now past its grace; seed 5 just at it */
    assert_int_equal(bm_store_inv_purge(f->st, now + 3 * 3600 + 1, NULL), 0);
    assert_int_equal(bm_store_inv_stats(f->st, &count, NULL), 0);
    assert_int_equal(count, 2);
    assert_int_equal(bm_store_inv_purge(f->st, INT64_MIN, NULL), PST_EINVAL);
}

/* ---- keys --------------------------------------------------------------- */

static void make_key(struct bm_store_key *k, const char *addr, uint8_t seed)
{
    memset(k, 0, sizeof(*k));
    snprintf(k->address, sizeof(k->address), "%s", addr);
    snprintf(k->label, sizeof(k->label), "label %u", seed);
    k->version = 4;
    k->stream = 1;
    fill(k->ripe, sizeof(k->ripe), seed);
    fill(k->tag, sizeof(k->tag), (uint8_t)(seed + 100));
    fill(k->signing_priv, sizeof(k->signing_priv), (uint8_t)(seed + 1));
    fill(k->encryption_priv, sizeof(k->encryption_priv), (uint8_t)(seed + 2));
    k->deterministic = seed % 2 == 0;
    k->created = T0 + seed;
}

struct key_seen {
    int n;
    char addrs[4][BM_STORE_ADDR_MAX + 1];
};

static int collect_key(const struct bm_store_key *k, void *arg)
{
    struct key_seen *s = arg;

    if (s->n < 4)
        snprintf(s->addrs[s->n], sizeof(s->addrs[0]), "%s", k->address);
    s->n++;
    return 0;
}

static void test_keys(void **state)
{
    struct fx *f = *state;
    struct bm_store_key a, b, got;
    struct key_seen seen;

    make_key(&a, "BM-2cWzSnwjJ7yRP3nLEWUV5LisTZyREWSzUK", 10);
    make_key(&b, "BM-2cTux3PGRqHTEH6wyUP2sWeT4LrsGgy63z", 21);
    assert_int_equal(bm_store_key_add(f->st, &a), 0);
    assert_int_equal(bm_store_key_add(f->st, &b), 0);
    assert_int_equal(bm_store_key_add(f->st, &a), PST_EEXIST);

    assert_int_equal(bm_store_key_by_ripe(f->st, a.ripe, &got), 0);
    assert_memory_equal(&got, &a, sizeof(got));
    bm_store_key_clear(&got);
    assert_int_equal(bm_store_key_by_tag(f->st, b.tag, &got), 0);
    assert_string_equal(got.address, b.address);
    assert_string_equal(got.label, "label 21");
    assert_memory_equal(got.signing_priv, b.signing_priv, BM_STORE_PRIVKEY_LEN);
    assert_memory_equal(got.encryption_priv, b.encryption_priv, BM_STORE_PRIVKEY_LEN);
    assert_false(got.deterministic);
    assert_int_equal(got.created, T0 + 21);
    bm_store_key_clear(&got);
    assert_int_equal(got.signing_priv[0], 0);
    assert_int_equal(bm_store_key_by_addr(f->st, a.address, &got), 0);
    assert_true(got.deterministic);
    bm_store_key_clear(&got);

    {
        uint8_t other_tag[BM_STORE_TAG_LEN];

        fill(other_tag, sizeof(other_tag), 1);
        assert_int_equal(bm_store_key_by_tag(f->st, other_tag, &got), PST_ENOENT);
    }
    assert_int_equal(bm_store_key_by_addr(f->st, "BM-nope", &got), PST_ENOENT);

    memset(&seen, 0, sizeof(seen));
    assert_int_equal(bm_store_key_list(f->st, collect_key, &seen), 0);
    assert_int_equal(seen.n, 2);
    assert_string_equal(seen.addrs[0], b.address); /* ordered by address */
    assert_string_equal(seen.addrs[1], a.address);

    /* limits: empty and over-long address, unterminated label */
    make_key(&a, "", 30);
    assert_int_equal(bm_store_key_add(f->st, &a), PST_EINVAL);
    make_key(&a, "x", 30);
    memset(a.address, 'A', sizeof(a.address)); /* no terminator within the array */
    assert_int_equal(bm_store_key_add(f->st, &a), PST_ELIMIT);
    make_key(&a, "BM-ok", 30);
    memset(a.label, 'L', sizeof(a.label));
    assert_int_equal(bm_store_key_add(f->st, &a), PST_ELIMIT);
    assert_int_equal(bm_store_key_by_addr(f->st, NULL, &got), PST_EINVAL);
    bm_store_key_clear(&a);
    bm_store_key_clear(&b);
}

/* ---- pubkeys ------------------------------------------------------------ */

static void make_pk(struct bm_store_pubkey *pk, const char *addr, uint8_t seed, bool tag)
{
    memset(pk, 0, sizeof(*pk));
    snprintf(pk->address, sizeof(pk->address), "%s", addr);
    fill(pk->ripe, sizeof(pk->ripe), seed);
    pk->has_tag = tag;
    if (tag)
        fill(pk->tag, sizeof(pk->tag), (uint8_t)(seed + 50));
    fill(pk->signing_pub, sizeof(pk->signing_pub), (uint8_t)(seed + 1));
    fill(pk->encryption_pub, sizeof(pk->encryption_pub), (uint8_t)(seed + 2));
    pk->nonce_trials = 1000;
    pk->extra_bytes = 1000;
    pk->behavior = 1;
    pk->last_seen = T0;
}

static void test_pubkeys(void **state)
{
    struct fx *f = *state;
    struct bm_store_pubkey a, b, got;
    char longaddr[BM_STORE_ADDR_MAX + 2];

    make_pk(&a, "BM-2cWzSnwjJ7yRP3nLEWUV5LisTZyREWSzUK", 1, true);
    make_pk(&b, "BM-2DAjcCFrqFrp88FUxExhJ9kPqHdunQmiyn", 2, false); /* v3: no tag */
    assert_int_equal(bm_store_pubkey_put(f->st, &a), 0);
    assert_int_equal(bm_store_pubkey_put(f->st, &b), 0);

    assert_int_equal(bm_store_pubkey_by_addr(f->st, a.address, &got), 0);
    assert_memory_equal(&got, &a, sizeof(got));
    assert_int_equal(bm_store_pubkey_by_ripe(f->st, b.ripe, &got), 0);
    assert_memory_equal(&got, &b, sizeof(got));
    assert_false(got.has_tag);
    assert_int_equal(bm_store_pubkey_by_tag(f->st, a.tag, &got), 0);
    assert_string_equal(got.address, a.address);

    /* put again replaces (newer pubkey, last_seen updated) */
    a.nonce_trials = 2000;
    a.last_seen = T0 + 100;
    assert_int_equal(bm_store_pubkey_put(f->st, &a), 0);
    assert_int_equal(bm_store_pubkey_by_addr(f->st, a.address, &got), 0);
    assert_int_equal(got.nonce_trials, 2000);
    assert_int_equal(got.last_seen, T0 + 100);

    assert_int_equal(bm_store_pubkey_by_addr(f->st, "BM-unknown", &got), PST_ENOENT);
    memset(longaddr, 'B', sizeof(longaddr) - 1);
    longaddr[sizeof(longaddr) - 1] = '\0';
    assert_int_equal(bm_store_pubkey_by_addr(f->st, longaddr, &got), PST_ELIMIT);
    assert_int_equal(bm_store_pubkey_by_addr(f->st, "", &got), PST_EINVAL);
    make_pk(&b, "x", 3, false);
    memset(b.address, 'C', sizeof(b.address));
    assert_int_equal(bm_store_pubkey_put(f->st, &b), PST_ELIMIT);
    make_pk(&b, "BM-x", 3, false);
    b.nonce_trials = UINT64_MAX;
    assert_int_equal(bm_store_pubkey_put(f->st, &b), PST_ELIMIT);
    assert_int_equal(bm_store_pubkey_by_ripe(f->st, b.ripe, &got), PST_ENOENT);
}

/* ---- outbox ------------------------------------------------------------- */

static const char FROM[] = "BM-2cWzSnwjJ7yRP3nLEWUV5LisTZyREWSzUK";
static const char TO[] = "BM-2cTux3PGRqHTEH6wyUP2sWeT4LrsGgy63z";

static int64_t enqueue(struct fx *f, uint8_t seed, int64_t ttl)
{
    uint8_t ack[BM_STORE_ACKDATA_LEN];
    int64_t id = 0;

    fill(ack, sizeof(ack), seed);
    assert_int_equal(
        bm_store_outbox_add(f->st, FROM, TO, "subj", 4, "body\0x", 6, ack, ttl, T0, &id), 0);
    assert_true(id > 0);
    return id;
}

static void test_outbox_table(void **state)
{
    static const struct {
        enum bm_outbox_state from, to;
        bool ok;
    } cases[] = {
        {BM_OUTBOX_AWAITINGPUBKEY, BM_OUTBOX_DOINGPOW, true},
        {BM_OUTBOX_AWAITINGPUBKEY, BM_OUTBOX_SENT, false},
        {BM_OUTBOX_AWAITINGPUBKEY, BM_OUTBOX_ACKED, false},
        {BM_OUTBOX_AWAITINGPUBKEY, BM_OUTBOX_FAILED, true},
        {BM_OUTBOX_DOINGPOW, BM_OUTBOX_SENT, true},
        {BM_OUTBOX_DOINGPOW, BM_OUTBOX_ACKED, false},
        {BM_OUTBOX_DOINGPOW, BM_OUTBOX_AWAITINGPUBKEY, false},
        {BM_OUTBOX_DOINGPOW, BM_OUTBOX_FAILED, true},
        {BM_OUTBOX_SENT, BM_OUTBOX_ACKED, true},
        {BM_OUTBOX_SENT, BM_OUTBOX_DOINGPOW, true},
        {BM_OUTBOX_SENT, BM_OUTBOX_FAILED, true},
        {BM_OUTBOX_SENT, BM_OUTBOX_SENT, false},
        {BM_OUTBOX_ACKED, BM_OUTBOX_DOINGPOW, false},
        {BM_OUTBOX_ACKED, BM_OUTBOX_FAILED, false},
        {BM_OUTBOX_FAILED, BM_OUTBOX_DOINGPOW, false},
        {BM_OUTBOX_FAILED, BM_OUTBOX_FAILED, false},
        {BM_OUTBOX_SENT, (enum bm_outbox_state)7, false},
        {(enum bm_outbox_state) - 1, BM_OUTBOX_FAILED, false},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(bm_outbox_can_move(cases[i].from, cases[i].to), cases[i].ok);
    assert_string_equal(bm_outbox_state_name(BM_OUTBOX_AWAITINGPUBKEY), "awaitingpubkey");
    assert_string_equal(bm_outbox_state_name(BM_OUTBOX_ACKED), "acked");
    assert_string_equal(bm_outbox_state_name((enum bm_outbox_state)99), "?");
}

static void test_outbox_lifecycle(void **state)
{
    struct fx *f = *state;
    struct bm_store_outmsg m;
    uint8_t inv[BM_STORE_HASH_LEN], ack[BM_STORE_ACKDATA_LEN];
    int64_t id = enqueue(f, 1, 4 * 86400);

    assert_int_equal(bm_store_outbox_get(f->st, id, &m), 0);
    assert_int_equal(m.state, BM_OUTBOX_AWAITINGPUBKEY);
    assert_string_equal(m.from_addr, FROM);
    assert_string_equal(m.to_addr, TO);
    assert_int_equal(m.subject_len, 4);
    assert_string_equal(m.subject, "subj");
    assert_int_equal(m.body_len, 6);
    assert_memory_equal(m.body, "body\0x", 6);
    assert_int_equal(m.ttl, 4 * 86400);
    assert_int_equal(m.attempts, 0);
    assert_int_equal(m.next_attempt, T0);
    assert_false(m.has_inventory_hash);
    bm_store_outmsg_free(&m);
    assert_null(m.body);

    /* refused: awaitingpubkey -> sent; state unchanged */
    assert_int_equal(bm_store_outbox_move(f->st, id, BM_OUTBOX_SENT, T0 + 1, T0 + 1, NULL),
                     PST_EPERM);
    assert_int_equal(bm_store_outbox_move(f->st, id, BM_OUTBOX_ACKED, T0 + 1, T0 + 1, NULL),
                     PST_EPERM);
    assert_int_equal(bm_store_outbox_get(f->st, id, &m), 0);
    assert_int_equal(m.state, BM_OUTBOX_AWAITINGPUBKEY);
    bm_store_outmsg_free(&m);

    assert_int_equal(bm_store_outbox_move(f->st, id, BM_OUTBOX_DOINGPOW, T0 + 2, T0 + 2, NULL), 0);
    fill(inv, sizeof(inv), 77);
    assert_int_equal(bm_store_outbox_move(f->st, id, BM_OUTBOX_SENT, T0 + 3, T0 + 5000, inv), 0);
    assert_int_equal(bm_store_outbox_get(f->st, id, &m), 0);
    assert_int_equal(m.state, BM_OUTBOX_SENT);
    assert_int_equal(m.attempts, 1);
    assert_true(m.has_inventory_hash);
    assert_memory_equal(m.inventory_hash, inv, sizeof(inv));
    assert_int_equal(m.next_attempt, T0 + 5000);
    assert_int_equal(m.updated, T0 + 3);
    assert_int_equal(m.created, T0);
    bm_store_outmsg_free(&m);

    /* no ack: resend with doubled TTL, then again capped at 28 days */
    assert_int_equal(bm_store_outbox_move(f->st, id, BM_OUTBOX_DOINGPOW, T0 + 6, T0 + 6, NULL), 0);
    assert_int_equal(bm_store_outbox_get(f->st, id, &m), 0);
    assert_int_equal(m.ttl, 8 * 86400);
    assert_true(m.has_inventory_hash); /* kept until replaced */
    bm_store_outmsg_free(&m);
    assert_int_equal(bm_store_outbox_move(f->st, id, BM_OUTBOX_SENT, T0 + 7, T0 + 7, inv), 0);
    assert_int_equal(bm_store_outbox_move(f->st, id, BM_OUTBOX_DOINGPOW, T0 + 8, T0 + 8, NULL), 0);
    assert_int_equal(bm_store_outbox_move(f->st, id, BM_OUTBOX_SENT, T0 + 9, T0 + 9, inv), 0);
    assert_int_equal(bm_store_outbox_move(f->st, id, BM_OUTBOX_DOINGPOW, T0 + 10, T0 + 10, NULL),
                     0);
    assert_int_equal(bm_store_outbox_get(f->st, id, &m), 0);
    assert_int_equal(m.ttl, BM_STORE_TTL_MAX);
    assert_int_equal(m.attempts, 3);
    bm_store_outmsg_free(&m);
    assert_int_equal(bm_store_outbox_move(f->st, id, BM_OUTBOX_SENT, T0 + 11, T0 + 11, inv), 0);

    /* the ack arrives */
    fill(ack, sizeof(ack), 1);
    assert_int_equal(bm_store_outbox_by_ackdata(f->st, ack, &m), 0);
    assert_int_equal(m.msgid, id);
    bm_store_outmsg_free(&m);
    assert_int_equal(bm_store_outbox_move(f->st, id, BM_OUTBOX_ACKED, T0 + 12, T0 + 12, NULL), 0);
    /* final */
    assert_int_equal(bm_store_outbox_move(f->st, id, BM_OUTBOX_DOINGPOW, T0 + 13, T0, NULL),
                     PST_EPERM);
    assert_int_equal(bm_store_outbox_move(f->st, id, BM_OUTBOX_FAILED, T0 + 13, T0, NULL),
                     PST_EPERM);
    assert_int_equal(bm_store_outbox_get(f->st, id, &m), 0);
    assert_int_equal(m.state, BM_OUTBOX_ACKED);
    bm_store_outmsg_free(&m);

    /* unknown message / ackdata / bad state */
    assert_int_equal(bm_store_outbox_move(f->st, id + 100, BM_OUTBOX_FAILED, T0, T0, NULL),
                     PST_ENOENT);
    assert_int_equal(bm_store_outbox_move(f->st, id, (enum bm_outbox_state)9, T0, T0, NULL),
                     PST_EINVAL);
    fill(ack, sizeof(ack), 2);
    assert_int_equal(bm_store_outbox_by_ackdata(f->st, ack, &m), PST_ENOENT);
    assert_int_equal(bm_store_outbox_get(f->st, id + 100, &m), PST_ENOENT);

    /* another message fails from awaitingpubkey */
    id = enqueue(f, 2, 3600);
    assert_int_equal(bm_store_outbox_move(f->st, id, BM_OUTBOX_FAILED, T0, T0, NULL), 0);
}

struct due_seen {
    int n;
    int64_t ids[8];
    struct fx *f;
};

static int collect_due(const struct bm_store_outmsg *m, void *arg)
{
    struct due_seen *d = arg;

    if (d->n < 8)
        d->ids[d->n] = m->msgid;
    d->n++;
    /* the callback may use the store: move the message on */
    return bm_store_outbox_move(d->f->st, m->msgid, BM_OUTBOX_FAILED, T0, T0, NULL);
}

static void test_outbox_due_and_limits(void **state)
{
    struct fx *f = *state;
    struct due_seen d;
    uint8_t ack[BM_STORE_ACKDATA_LEN];
    char *big;
    int64_t a = enqueue(f, 1, 3600), b = enqueue(f, 2, 3600), c = enqueue(f, 3, 3600), id = 7;

    /* b later, c in doingpow */
    assert_int_equal(bm_store_outbox_move(f->st, c, BM_OUTBOX_DOINGPOW, T0, T0, NULL), 0);
    memset(&d, 0, sizeof(d));
    d.f = f;
    assert_int_equal(bm_store_outbox_due(f->st, BM_OUTBOX_AWAITINGPUBKEY, T0 - 1, collect_due, &d),
                     0);
    assert_int_equal(d.n, 0);
    assert_int_equal(bm_store_outbox_due(f->st, BM_OUTBOX_AWAITINGPUBKEY, T0, collect_due, &d), 0);
    assert_int_equal(d.n, 2);
    assert_int_equal(d.ids[0], a);
    assert_int_equal(d.ids[1], b);
    memset(&d, 0, sizeof(d));
    d.f = f;
    assert_int_equal(bm_store_outbox_due(f->st, BM_OUTBOX_AWAITINGPUBKEY, T0, collect_due, &d), 0);
    assert_int_equal(d.n, 0); /* all failed by the callback */
    assert_int_equal(bm_store_outbox_due(f->st, BM_OUTBOX_DOINGPOW, T0, collect_due, &d), 0);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.ids[0], c);
    assert_int_equal(bm_store_outbox_due(f->st, BM_OUTBOX_SENT, T0, NULL, NULL), PST_EINVAL);

    /* duplicate ackdata */
    fill(ack, sizeof(ack), 1);
    assert_int_equal(bm_store_outbox_add(f->st, FROM, TO, "s", 1, "b", 1, ack, 3600, T0, &id),
                     PST_EEXIST);
    assert_int_equal(id, 0);

    /* limits */
    fill(ack, sizeof(ack), 50);
    big = calloc(1, BM_STORE_BODY_MAX + 2);
    assert_non_null(big);
    memset(big, 'a', BM_STORE_BODY_MAX + 1);
    assert_int_equal(bm_store_outbox_add(f->st, FROM, TO, big, BM_STORE_SUBJECT_MAX + 1, "b", 1,
                                         ack, 3600, T0, &id),
                     PST_ELIMIT);
    assert_int_equal(bm_store_outbox_add(f->st, FROM, TO, "s", 1, big, BM_STORE_BODY_MAX + 1, ack,
                                         3600, T0, &id),
                     PST_ELIMIT);
    assert_int_equal(bm_store_outbox_add(f->st, big, TO, "s", 1, "b", 1, ack, 3600, T0, &id),
                     PST_ELIMIT);
    assert_int_equal(bm_store_outbox_add(f->st, FROM, "", "s", 1, "b", 1, ack, 3600, T0, &id),
                     PST_EINVAL);
    assert_int_equal(bm_store_outbox_add(f->st, FROM, TO, NULL, 3, "b", 1, ack, 3600, T0, &id),
                     PST_EINVAL);
    assert_int_equal(bm_store_outbox_add(f->st, FROM, TO, "s", 1, "b", 1, NULL, 3600, T0, &id),
                     PST_EINVAL);
    assert_int_equal(bm_store_outbox_add(f->st, FROM, TO, "s", 1, "b", 1, ack, 10, T0, &id),
                     PST_EINVAL);
    assert_int_equal(
        bm_store_outbox_add(f->st, FROM, TO, "s", 1, "b", 1, ack, BM_STORE_TTL_MAX + 1, T0, &id),
        PST_ELIMIT);
    /* exactly at the limits; empty subject allowed */
    assert_int_equal(bm_store_outbox_add(f->st, FROM, TO, NULL, 0, big, BM_STORE_BODY_MAX, ack,
                                         BM_STORE_TTL_MAX, T0, &id),
                     0);
    free(big);
}

/* ---- inbox -------------------------------------------------------------- */

static void make_in(struct bm_store_inmsg *m, uint8_t seed, const char *subject, const char *body)
{
    memset(m, 0, sizeof(*m));
    fill(m->msgid_hash, sizeof(m->msgid_hash), seed);
    snprintf(m->to_addr, sizeof(m->to_addr), "%s", FROM);
    snprintf(m->from_addr, sizeof(m->from_addr), "%s", TO);
    m->subject = (char *)subject;
    m->subject_len = strlen(subject);
    m->body = (char *)body;
    m->body_len = strlen(body);
    m->encoding = 2;
    m->received = T0 + seed;
}

struct in_seen {
    int n;
    int64_t ids[8];
    char subj[8][32];
};

static int collect_in(const struct bm_store_inmsg *m, void *arg)
{
    struct in_seen *s = arg;

    if (s->n < 8) {
        s->ids[s->n] = m->id;
        snprintf(s->subj[s->n], sizeof(s->subj[0]), "%s", m->subject);
    }
    s->n++;
    return 0;
}

static void test_inbox(void **state)
{
    struct fx *f = *state;
    struct bm_store_inmsg m;
    struct in_seen s;
    bool is_new = false;
    int64_t id1 = 0, id2 = 0, dup = 0;

    make_in(&m, 1, "hello", "first body");
    assert_int_equal(bm_store_inbox_put(f->st, &m, &is_new, &id1), 0);
    assert_true(is_new);
    make_in(&m, 2, "second", "");
    assert_int_equal(bm_store_inbox_put(f->st, &m, &is_new, &id2), 0);
    assert_true(is_new);
    assert_true(id2 != id1);
    /* duplicate msg object: ignored, old id reported */
    make_in(&m, 1, "changed", "x");
    assert_int_equal(bm_store_inbox_put(f->st, &m, &is_new, &dup), 0);
    assert_false(is_new);
    assert_int_equal(dup, id1);

    memset(&s, 0, sizeof(s));
    assert_int_equal(bm_store_inbox_undelivered(f->st, collect_in, &s), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.ids[0], id1);
    assert_string_equal(s.subj[0], "hello");
    assert_string_equal(s.subj[1], "second");

    assert_int_equal(bm_store_inbox_mark_delivered(f->st, id1), 0);
    assert_int_equal(bm_store_inbox_mark_delivered(f->st, id1 + id2 + 100), PST_ENOENT);
    memset(&s, 0, sizeof(s));
    assert_int_equal(bm_store_inbox_undelivered(f->st, collect_in, &s), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.ids[0], id2);

    /* limits */
    make_in(&m, 3, "s", "b");
    m.subject_len = BM_STORE_SUBJECT_MAX + 1;
    assert_int_equal(bm_store_inbox_put(f->st, &m, &is_new, NULL), PST_ELIMIT);
    make_in(&m, 3, "s", "b");
    m.body_len = BM_STORE_BODY_MAX + 1;
    assert_int_equal(bm_store_inbox_put(f->st, &m, NULL, NULL), PST_ELIMIT);
    make_in(&m, 3, "s", "b");
    m.body = NULL;
    assert_int_equal(bm_store_inbox_put(f->st, &m, NULL, NULL), PST_EINVAL);
    make_in(&m, 3, "s", "b");
    memset(m.from_addr, 'Z', sizeof(m.from_addr));
    assert_int_equal(bm_store_inbox_put(f->st, &m, NULL, NULL), PST_ELIMIT);
    assert_int_equal(bm_store_inbox_put(f->st, NULL, NULL, NULL), PST_EINVAL);
    assert_int_equal(bm_store_inbox_undelivered(f->st, NULL, NULL), PST_EINVAL);
}

/* ---- persistence and damage --------------------------------------------- */

static void test_restart(void **state)
{
    struct fx *f = *state;
    struct bm_store_object o, got;
    struct bm_store_key k, kg;
    struct bm_store_outmsg m;
    struct in_seen s;
    struct bm_store_inmsg in;
    uint8_t p[5] = {1, 2, 3, 4, 5};
    int64_t id = enqueue(f, 9, 7200);
    struct stat sb;

    make_obj(&o, 8, 1, T0 + 100, p, sizeof(p));
    assert_int_equal(bm_store_inv_put(f->st, &o, NULL), 0);
    make_key(&k, FROM, 4);
    assert_int_equal(bm_store_key_add(f->st, &k), 0);
    make_in(&in, 4, "persist", "body");
    assert_int_equal(bm_store_inbox_put(f->st, &in, NULL, NULL), 0);
    assert_int_equal(bm_store_outbox_move(f->st, id, BM_OUTBOX_DOINGPOW, T0, T0, NULL), 0);

    reopen(f);
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600); /* private keys at rest */

    assert_int_equal(bm_store_inv_get(f->st, o.hash, &got), 0);
    assert_memory_equal(got.payload, p, sizeof(p));
    bm_store_object_free(&got);
    assert_int_equal(bm_store_key_by_ripe(f->st, k.ripe, &kg), 0);
    assert_memory_equal(&kg, &k, sizeof(k));
    bm_store_key_clear(&kg);
    bm_store_key_clear(&k);
    assert_int_equal(bm_store_outbox_get(f->st, id, &m), 0);
    assert_int_equal(m.state, BM_OUTBOX_DOINGPOW);
    assert_int_equal(m.ttl, 7200);
    bm_store_outmsg_free(&m);
    memset(&s, 0, sizeof(s));
    assert_int_equal(bm_store_inbox_undelivered(f->st, collect_in, &s), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.subj[0], "persist");
    bm_store_close(&f->st);
    bm_store_close(&f->st); /* NULL is fine */
    assert_int_equal(bm_store_open(f->path, &f->st), 0);
}

static void test_damaged_rows(void **state)
{
    struct fx *f = *state;
    struct bm_store_key k;
    struct bm_store_outmsg m;
    int64_t id = enqueue(f, 5, 3600);

    /* a key row with a short ripe, written behind the API's back */
    assert_int_equal(db_exec(bm_store_db(f->st),
                             "INSERT INTO bm_keys(address, label, version, stream, ripe, tag,"
                             " signing_priv, encryption_priv, deterministic, created)"
                             " VALUES ('BM-bad', '', 4, 1, x'0102', "
                             "zeroblob(32), zeroblob(32), zeroblob(32), 0, 0)"),
                     0);
    assert_int_equal(bm_store_key_by_addr(f->st, "BM-bad", &k), PST_EDB);
    assert_int_equal(bm_store_key_list(f->st, NULL, NULL), PST_EINVAL);
    /* a subject over the limit (written directly) is refused on the way out */
    assert_int_equal(
        db_exec(bm_store_db(f->st), "UPDATE bm_outbox SET subject = hex(zeroblob(4096))"), 0);
    assert_int_equal(bm_store_outbox_get(f->st, id, &m), PST_EDB);
    assert_null(m.subject);
    /* the CHECK constraint refuses an unknown state */
    assert_int_not_equal(db_exec(bm_store_db(f->st), "UPDATE bm_outbox SET state = 'bogus'"), 0);
}

/* ---- additions for bm_engine: inventory by tag, outbox reschedule ---------- */

struct tag_walk {
    unsigned n;
    int64_t expires[4];
    size_t len[4];
    int stop_after;
};

static int tag_cb(const struct bm_store_object *obj, void *arg)
{
    struct tag_walk *w = arg;

    if (w->n < 4) {
        w->expires[w->n] = obj->expires;
        w->len[w->n] = obj->payload_len;
    }
    w->n++;
    return w->stop_after != 0 && (int)w->n >= w->stop_after ? 7 : 0;
}

static void test_inv_by_tag(void **state)
{
    struct fx *f = *state;
    struct bm_store_object o;
    uint8_t payload[40], tag[BM_STORE_TAG_LEN], other[BM_STORE_TAG_LEN];
    struct tag_walk w;
    int i;

    fill(payload, sizeof(payload), 1);
    fill(tag, sizeof(tag), 50);
    fill(other, sizeof(other), 60);
    /* three pubkeys with our tag (one expired), one with another tag, one msg with our tag */
    for (i = 0; i < 5; i++) {
        make_obj(&o, (uint8_t)(100 + i), 1, T0 + 100 * (i + 1), payload, (size_t)(10 + i));
        o.type = i == 4 ? 2 : 1;
        o.has_tag = true;
        memcpy(o.tag, i == 3 ? other : tag, BM_STORE_TAG_LEN);
        if (i == 0)
            o.expires = T0 - 1;
        assert_int_equal(bm_store_inv_put(f->st, &o, NULL), 0);
    }
    make_obj(&o, 120, 1, T0 + 5000, payload, 5); /* no tag at all */
    o.type = 1;
    assert_int_equal(bm_store_inv_put(f->st, &o, NULL), 0);

    memset(&w, 0, sizeof(w));
    assert_int_equal(bm_store_inv_by_tag(f->st, 1, tag, T0, tag_cb, &w), 0);
    assert_int_equal(w.n, 2);
    assert_int_equal(w.expires[0], T0 + 300); /* latest expiry first */
    assert_int_equal(w.len[0], 12);
    assert_int_equal(w.expires[1], T0 + 200);

    /* the callback stops the walk */
    memset(&w, 0, sizeof(w));
    w.stop_after = 1;
    assert_int_equal(bm_store_inv_by_tag(f->st, 1, tag, T0, tag_cb, &w), 7);
    assert_int_equal(w.n, 1);

    memset(&w, 0, sizeof(w));
    assert_int_equal(bm_store_inv_by_tag(f->st, 1, tag, T0 + 250, tag_cb, &w), 0);
    assert_int_equal(w.n, 1);
    memset(&w, 0, sizeof(w));
    assert_int_equal(bm_store_inv_by_tag(f->st, 2, tag, T0, tag_cb, &w), 0);
    assert_int_equal(w.n, 1);
    memset(&w, 0, sizeof(w));
    fill(other, sizeof(other), 61);
    assert_int_equal(bm_store_inv_by_tag(f->st, 1, other, T0, tag_cb, &w), 0);
    assert_int_equal(w.n, 0);
    assert_int_equal(bm_store_inv_by_tag(f->st, 1, NULL, T0, tag_cb, &w), PST_EINVAL);
    assert_int_equal(bm_store_inv_by_tag(f->st, 1, tag, T0, NULL, &w), PST_EINVAL);
}

static void test_outbox_reschedule(void **state)
{
    struct fx *f = *state;
    struct bm_store_outmsg m;
    uint8_t inv[BM_STORE_HASH_LEN];
    int64_t id = enqueue(f, 1, 3600);

    assert_int_equal(bm_store_outbox_reschedule(f->st, id, T0 + 1, T0 + 500), 0);
    assert_int_equal(bm_store_outbox_get(f->st, id, &m), 0);
    assert_int_equal(m.state, BM_OUTBOX_AWAITINGPUBKEY);
    assert_int_equal(m.next_attempt, T0 + 500);
    assert_int_equal(m.updated, T0 + 1);
    assert_int_equal(m.attempts, 0);
    assert_int_equal(m.ttl, 3600);
    bm_store_outmsg_free(&m);

    fill(inv, sizeof(inv), 9);
    assert_int_equal(bm_store_outbox_move(f->st, id, BM_OUTBOX_DOINGPOW, T0 + 2, T0 + 2, NULL), 0);
    assert_int_equal(bm_store_outbox_reschedule(f->st, id, T0 + 3, T0 + 60), 0);
    assert_int_equal(bm_store_outbox_move(f->st, id, BM_OUTBOX_SENT, T0 + 4, T0 + 4000, inv), 0);
    assert_int_equal(bm_store_outbox_reschedule(f->st, id, T0 + 5, T0 + 4100), 0);
    assert_int_equal(bm_store_outbox_get(f->st, id, &m), 0);
    assert_int_equal(m.state, BM_OUTBOX_SENT);
    assert_int_equal(m.next_attempt, T0 + 4100);
    assert_int_equal(m.attempts, 1);
    bm_store_outmsg_free(&m);

    /* final states and absent messages are refused */
    assert_int_equal(bm_store_outbox_move(f->st, id, BM_OUTBOX_ACKED, T0 + 6, 0, NULL), 0);
    assert_int_equal(bm_store_outbox_reschedule(f->st, id, T0 + 7, T0 + 9000), PST_EPERM);
    assert_int_equal(bm_store_outbox_get(f->st, id, &m), 0);
    assert_int_equal(m.next_attempt, 0);
    bm_store_outmsg_free(&m);
    assert_int_equal(bm_store_outbox_reschedule(f->st, id + 1000, T0, T0), PST_ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inv_put_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inv_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inv_hashes_purge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pubkeys, setup, teardown),
        cmocka_unit_test(test_outbox_table),
        cmocka_unit_test_setup_teardown(test_outbox_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_due_and_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inv_by_tag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_reschedule, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
