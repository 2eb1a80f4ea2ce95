/*
 * test_bm_object.c - unit tests for src/bitmessage/bm_object.c: round trips
 * of getpubkey, pubkey v4, msg v1 (with its ack), broadcast v5; tampering;
 * hostile plaintexts; message encodings; one real PoW seal; and objects
 * built by the reference client (tests/data/bitmessage/object_vectors.txt,
 * found through $BM_TEST_DATA_DIR or relative to this file; see README.md
 * section "Objects").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "bitmessage/bm_object.h"

#define T_EXPIRES 1900000000ull /* objects are never checked against the clock here */
#define T_BUF_MAX (1u << 20)

struct t_ids {
    bm_keys_t a, b, c3; /* a, b: v4; c3: v3 */
};

static struct t_ids t_id;

static void t_keys(const char *pass, uint64_t version, bm_keys_t *k)
{
    uint64_t nonce = 0;
    assert_int_equal(bm_keys_from_passphrase(pass, strlen(pass), version, 1, 1, &nonce, k), 0);
}

static int t_setup(void **state)
{
    t_keys("postern object test a", 4, &t_id.a);
    t_keys("postern object test b", 4, &t_id.b);
    t_keys("postern object test c", 3, &t_id.c3);
    return 0;
}

/* t_object - nonce 0 || body, parsed into *o (views into *full, which the caller releases). */
static void t_object(const buf_t *body, buf_t *full, struct bm_wire_object *o)
{
    buf_init(full, T_BUF_MAX);
    assert_int_equal(bm_obj_with_nonce(full, 0, (const uint8_t *)body->data, body->len), 0);
    assert_int_equal(bm_wire_object_parse((const uint8_t *)full->data, full->len, o), 0);
}

static void t_flip(buf_t *full, size_t off, struct bm_wire_object *o)
{
    full->data[off] ^= 0x01;
    assert_int_equal(bm_wire_object_parse((const uint8_t *)full->data, full->len, o), 0);
}

static void test_getpubkey(void **state)
{
    const bm_keys_t *ks[2] = {&t_id.a, &t_id.c3};
    struct bm_obj_getpubkey g;
    struct bm_wire_object o;
    uint8_t tag[BM_TAG_LEN];
    buf_t body, full;

    for (int i = 0; i < 2; i++) {
        buf_init(&body, T_BUF_MAX);
        assert_int_equal(bm_obj_getpubkey_build(&body, T_EXPIRES, &ks[i]->addr), 0);
        t_object(&body, &full, &o);
        assert_int_equal(o.type, BM_WIRE_OBJ_GETPUBKEY);
        assert_int_equal(bm_obj_getpubkey_parse(&o, &g), 0);
        assert_int_equal(g.addr_version, ks[i]->addr.version);
        assert_int_equal(g.stream, 1);
        if (ks[i]->addr.version == 4) {
            assert_true(g.has_tag);
            assert_int_equal(bm_address_tag(&ks[i]->addr, NULL, tag), 0);
            assert_memory_equal(g.tag, tag, BM_TAG_LEN);
            assert_int_equal(o.payload_len, BM_TAG_LEN);
        } else {
            assert_false(g.has_tag);
            assert_memory_equal(g.ripe, ks[i]->addr.ripe, BM_RIPE_LEN);
        }
        /* truncated payload, wrong type */
        o.payload_len = ks[i]->addr.version == 4 ? BM_TAG_LEN - 1 : BM_RIPE_LEN - 1;
        assert_int_equal(bm_obj_getpubkey_parse(&o, &g), PST_EINVAL);
        o.payload_len = 40;
        o.type = BM_WIRE_OBJ_MSG;
        assert_int_equal(bm_obj_getpubkey_parse(&o, &g), PST_EINVAL);
        o.type = BM_WIRE_OBJ_GETPUBKEY;
        o.version = 5;
        assert_int_equal(bm_obj_getpubkey_parse(&o, &g), PST_EINVAL);
        buf_release(&body);
        buf_release(&full);
    }
}

static void test_pubkey(void **state)
{
    struct bm_obj_sender_opts opts = {.behavior = BM_OBJ_BITFIELD_DOESACK, .nonce_trials = 2000};
    struct bm_obj_pubkey pk;
    struct bm_wire_object o;
    uint8_t tag[BM_TAG_LEN], want[BM_TAG_LEN];
    buf_t body, full, plain;

    buf_init(&body, T_BUF_MAX);
    buf_init(&plain, BM_OBJ_PLAIN_MAX);
    assert_int_equal(bm_obj_pubkey_build(&body, T_EXPIRES, &t_id.a, &opts), 0);
    t_object(&body, &full, &o);
    assert_int_equal(o.type, BM_WIRE_OBJ_PUBKEY);
    assert_int_equal(o.version, 4);
    assert_int_equal(bm_obj_pubkey_tag(&o, tag), 0);
    assert_int_equal(bm_address_tag(&t_id.a.addr, NULL, want), 0);
    assert_memory_equal(tag, want, BM_TAG_LEN);

    assert_int_equal(bm_obj_pubkey_parse(&o, &t_id.a.addr, &plain, &pk), 0);
    assert_memory_equal(pk.pub_signing, t_id.a.pub_signing, BM_PUBKEY_LEN);
    assert_memory_equal(pk.pub_encryption, t_id.a.pub_encryption, BM_PUBKEY_LEN);
    assert_memory_equal(pk.ripe, t_id.a.addr.ripe, BM_RIPE_LEN);
    assert_int_equal(pk.behavior, BM_OBJ_BITFIELD_DOESACK);
    assert_int_equal(pk.nonce_trials, 2000);
    assert_int_equal(pk.extra_bytes, BM_POW_EXTRA_BYTES_DEFAULT);
    assert_int_equal(pk.addr_version, 4);

    /* someone else's address: not ours; v3 address: not a v4 pubkey */
    assert_int_equal(bm_obj_pubkey_parse(&o, &t_id.b.addr, &plain, &pk), PST_ENOENT);
    assert_int_equal(bm_obj_pubkey_parse(&o, &t_id.c3.addr, &plain, &pk), PST_EINVAL);

    /* signed header (expires) altered: signature fails */
    t_flip(&full, 9, &o);
    assert_int_equal(bm_obj_pubkey_parse(&o, &t_id.a.addr, &plain, &pk), PST_EAUTH);
    t_flip(&full, 9, &o);
    /* ciphertext altered: MAC fails */
    t_flip(&full, full.len - 40, &o);
    assert_int_equal(bm_obj_pubkey_parse(&o, &t_id.a.addr, &plain, &pk), PST_EAUTH);
    t_flip(&full, full.len - 40, &o);
    /* tag altered: not ours */
    t_flip(&full, o.header_len + 3, &o);
    assert_int_equal(bm_obj_pubkey_parse(&o, &t_id.a.addr, &plain, &pk), PST_ENOENT);
    t_flip(&full, o.header_len + 3, &o);
    assert_int_equal(bm_obj_pubkey_parse(&o, &t_id.a.addr, &plain, &pk), 0);
    /* truncated */
    o.payload_len = 10;
    assert_int_equal(bm_obj_pubkey_parse(&o, &t_id.a.addr, &plain, &pk), PST_EINVAL);
    /* v3 identity cannot make a v4 pubkey */
    assert_int_equal(bm_obj_pubkey_build(&body, T_EXPIRES, &t_id.c3, NULL), PST_EINVAL);

    buf_release(&body);
    buf_release(&full);
    buf_release(&plain);
}

/* t_ack_packet - ack object (nonce 0, no PoW) for a, wrapped as a packet into pkt. */
static void t_ack_packet(const struct bm_obj_ackdata *a, buf_t *pkt)
{
    buf_t body, obj;

    buf_init(&body, T_BUF_MAX);
    buf_init(&obj, T_BUF_MAX);
    buf_init(pkt, T_BUF_MAX);
    assert_int_equal(bm_obj_ack_build(&body, T_EXPIRES + 86400, a), 0);
    assert_int_equal(bm_obj_with_nonce(&obj, 0, (const uint8_t *)body.data, body.len), 0);
    assert_int_equal(bm_obj_ack_packet(pkt, (const uint8_t *)obj.data, obj.len), 0);
    buf_release(&body);
    buf_release(&obj);
}

static void t_msg_roundtrip(const bm_keys_t *from, const bm_keys_t *to)
{
    static const char subject[] = "Hello from Postern";
    static const char text[] = "Line one\nLine two\n\0binary";
    uint8_t rnd[BM_OBJ_ACK_RANDOM_LEN];
    struct bm_obj_ackdata ad, other;
    struct bm_wire_object o, ao;
    struct bm_obj_msg m;
    struct bm_obj_text t;
    buf_t msgtext, pkt, body, full, plain;

    memset(rnd, 0xa5, sizeof(rnd));
    bm_obj_ackdata_make(1, rnd, &ad);
    assert_int_equal(ad.len, 4 + 1 + 1 + 32);
    t_ack_packet(&ad, &pkt);

    buf_init(&msgtext, T_BUF_MAX);
    assert_int_equal(bm_obj_text_encode(&msgtext, BM_OBJ_ENC_SIMPLE, (const uint8_t *)subject,
                                        strlen(subject), (const uint8_t *)text, sizeof(text)),
                     0);
    buf_init(&body, T_BUF_MAX);
    buf_init(&plain, BM_OBJ_PLAIN_MAX);
    assert_int_equal(bm_obj_msg_build(&body, T_EXPIRES, 1, from, NULL, to->addr.ripe,
                                      to->pub_encryption, BM_OBJ_ENC_SIMPLE,
                                      (const uint8_t *)msgtext.data, msgtext.len,
                                      (const uint8_t *)pkt.data, pkt.len),
                     0);
    t_object(&body, &full, &o);
    assert_int_equal(o.type, BM_WIRE_OBJ_MSG);
    assert_int_equal(o.version, 1);

    assert_int_equal(bm_obj_msg_parse(&o, to, &plain, &m), 0);
    assert_int_equal(m.sender.addr_version, from->addr.version);
    assert_memory_equal(m.sender.ripe, from->addr.ripe, BM_RIPE_LEN);
    assert_memory_equal(m.sender.pub_signing, from->pub_signing, BM_PUBKEY_LEN);
    assert_memory_equal(m.dest_ripe, to->addr.ripe, BM_RIPE_LEN);
    assert_int_equal(m.sender.nonce_trials, BM_POW_NONCE_TRIALS_DEFAULT);
    assert_int_equal(m.encoding, BM_OBJ_ENC_SIMPLE);
    assert_int_equal(m.message_len, msgtext.len);
    assert_memory_equal(m.message, msgtext.data, msgtext.len);
    assert_int_equal(bm_obj_text_decode(m.encoding, m.message, m.message_len, &t), 0);
    assert_int_equal(t.subject_len, strlen(subject));
    assert_memory_equal(t.subject, subject, t.subject_len);
    assert_int_equal(t.body_len, sizeof(text));
    assert_memory_equal(t.body, text, sizeof(text));

    /* the ack travels intact and is recognised */
    assert_int_equal(m.ack_len, pkt.len);
    assert_int_equal(bm_obj_ack_unwrap(m.ack, m.ack_len, &ao), 0);
    assert_int_equal(ao.type, BM_WIRE_OBJ_MSG);
    assert_true(bm_obj_ack_matches(&ao, &ad));
    rnd[0] ^= 1;
    bm_obj_ackdata_make(1, rnd, &other);
    assert_false(bm_obj_ack_matches(&ao, &other));
    assert_int_equal(bm_obj_ack_unwrap(m.ack, m.ack_len - 1, &ao), PST_EINVAL);

    /* the sender cannot read it; tampering is detected */
    assert_int_equal(bm_obj_msg_parse(&o, from, &plain, &m), PST_ENOENT);
    t_flip(&full, 10, &o);
    assert_int_equal(bm_obj_msg_parse(&o, to, &plain, &m), PST_EAUTH);
    t_flip(&full, 10, &o);
    t_flip(&full, full.len - 50, &o);
    assert_int_equal(bm_obj_msg_parse(&o, to, &plain, &m), PST_ENOENT);
    t_flip(&full, full.len - 50, &o);
    assert_int_equal(bm_obj_msg_parse(&o, to, &plain, &m), 0);

    buf_release(&msgtext);
    buf_release(&pkt);
    buf_release(&body);
    buf_release(&full);
    buf_release(&plain);
}

static void test_msg(void **state)
{
    t_msg_roundtrip(&t_id.a, &t_id.b);
    t_msg_roundtrip(&t_id.c3, &t_id.a);
}

static void test_msg_wrong_dest(void **state)
{
    struct bm_wire_object o;
    struct bm_obj_msg m;
    buf_t body, full, plain;

    /* encrypted to b but naming a's ripe: surreptitious forwarding */
    buf_init(&body, T_BUF_MAX);
    buf_init(&plain, BM_OBJ_PLAIN_MAX);
    assert_int_equal(bm_obj_msg_build(&body, T_EXPIRES, 1, &t_id.c3, NULL, t_id.a.addr.ripe,
                                      t_id.b.pub_encryption, BM_OBJ_ENC_TRIVIAL,
                                      (const uint8_t *)"x", 1, NULL, 0),
                     0);
    t_object(&body, &full, &o);
    assert_int_equal(bm_obj_msg_parse(&o, &t_id.b, &plain, &m), PST_EAUTH);
    o.version = 2;
    assert_int_equal(bm_obj_msg_parse(&o, &t_id.b, &plain, &m), PST_EINVAL);
    buf_release(&body);
    buf_release(&full);
    buf_release(&plain);
}

/* t_msg_with_plain - a msg object whose encrypted content is exactly p[0..n). */
static int t_msg_with_plain(const uint8_t *p, size_t n)
{
    struct bm_wire_object o;
    struct bm_obj_msg m;
    buf_t body, full, plain;
    int rc;

    buf_init(&body, T_BUF_MAX);
    buf_init(&plain, BM_OBJ_PLAIN_MAX);
    assert_int_equal(bm_put_u64(&body, T_EXPIRES), 0);
    assert_int_equal(bm_put_u32(&body, BM_WIRE_OBJ_MSG), 0);
    assert_int_equal(bm_put_varint(&body, 1), 0);
    assert_int_equal(bm_put_varint(&body, 1), 0);
    assert_int_equal(bm_ecies_encrypt(t_id.b.pub_encryption, p, n, &body), 0);
    t_object(&body, &full, &o);
    rc = bm_obj_msg_parse(&o, &t_id.b, &plain, &m);
    buf_release(&body);
    buf_release(&full);
    buf_release(&plain);
    return rc;
}

static void test_msg_hostile_plain(void **state)
{
    uint8_t p[400];
    size_t n = 0;

    assert_int_equal(t_msg_with_plain(NULL, 0), PST_EINVAL);
    memset(p, 0, sizeof(p));
    p[n++] = 4; /* version */
    p[n++] = 1; /* stream */
    assert_int_equal(t_msg_with_plain(p, n), PST_EINVAL);
    /* version 9 */
    p[0] = 9;
    assert_int_equal(t_msg_with_plain(p, sizeof(p)), PST_EINVAL);
    /* valid header, keys all zero: not points */
    p[0] = 4;
    assert_int_equal(t_msg_with_plain(p, sizeof(p)), PST_EINVAL);
    /* real keys, then a message length far beyond the data */
    n = 2;
    bm_be32_store(p + n, 1);
    n += 4;
    memcpy(p + n, t_id.a.pub_signing + 1, 64);
    n += 64;
    memcpy(p + n, t_id.a.pub_encryption + 1, 64);
    n += 64;
    p[n++] = 0xfd; /* trials 1000 */
    p[n++] = 0x03;
    p[n++] = 0xe8;
    p[n++] = 0xfd;
    p[n++] = 0x03;
    p[n++] = 0xe8;
    memcpy(p + n, t_id.b.addr.ripe, BM_RIPE_LEN);
    n += BM_RIPE_LEN;
    p[n++] = 2;    /* encoding */
    p[n++] = 0xfe; /* message length 2^31 */
    bm_be32_store(p + n, 0x80000000u);
    n += 4;
    assert_int_not_equal(t_msg_with_plain(p, n + 10), 0);
    /* empty message, empty ack, no signature */
    n -= 5;
    p[n++] = 0;
    p[n++] = 0;
    assert_int_equal(t_msg_with_plain(p, n), PST_EINVAL);
    /* a garbage signature */
    p[n++] = 3;
    p[n++] = 0x30;
    p[n++] = 0x01;
    p[n++] = 0x00;
    assert_int_equal(t_msg_with_plain(p, n), PST_EAUTH);
}

static void test_broadcast(void **state)
{
    static const char text[] = "Subject:news\nBody:all is well";
    struct bm_obj_broadcast b;
    struct bm_wire_object o;
    uint8_t tag[BM_TAG_LEN], want[BM_TAG_LEN];
    buf_t body, full, plain;

    buf_init(&body, T_BUF_MAX);
    buf_init(&plain, BM_OBJ_PLAIN_MAX);
    assert_int_equal(bm_obj_broadcast_build(&body, T_EXPIRES, &t_id.a, NULL, BM_OBJ_ENC_SIMPLE,
                                            (const uint8_t *)text, strlen(text)),
                     0);
    t_object(&body, &full, &o);
    assert_int_equal(o.type, BM_WIRE_OBJ_BROADCAST);
    assert_int_equal(o.version, 5);
    assert_int_equal(bm_obj_broadcast_tag(&o, tag), 0);
    assert_int_equal(bm_address_tag(&t_id.a.addr, NULL, want), 0);
    assert_memory_equal(tag, want, BM_TAG_LEN);
    assert_int_equal(bm_obj_broadcast_parse(&o, &t_id.a.addr, &plain, &b), 0);
    assert_memory_equal(b.sender.ripe, t_id.a.addr.ripe, BM_RIPE_LEN);
    assert_int_equal(b.encoding, BM_OBJ_ENC_SIMPLE);
    assert_int_equal(b.message_len, strlen(text));
    assert_memory_equal(b.message, text, strlen(text));

    assert_int_equal(bm_obj_broadcast_parse(&o, &t_id.b.addr, &plain, &b), PST_ENOENT);
    assert_int_equal(bm_obj_broadcast_parse(&o, &t_id.c3.addr, &plain, &b), PST_EINVAL);
    t_flip(&full, 12, &o); /* object type's low byte stays; flip in expires/type area */
    assert_int_not_equal(bm_obj_broadcast_parse(&o, &t_id.a.addr, &plain, &b), 0);
    t_flip(&full, 12, &o);
    t_flip(&full, 9, &o);
    assert_int_equal(bm_obj_broadcast_parse(&o, &t_id.a.addr, &plain, &b), PST_EAUTH);
    t_flip(&full, 9, &o);
    t_flip(&full, full.len - 33, &o);
    assert_int_equal(bm_obj_broadcast_parse(&o, &t_id.a.addr, &plain, &b), PST_EAUTH);
    t_flip(&full, full.len - 33, &o);
    assert_int_equal(bm_obj_broadcast_parse(&o, &t_id.a.addr, &plain, &b), 0);
    assert_int_equal(bm_obj_broadcast_build(&body, T_EXPIRES, &t_id.c3, NULL, 1, NULL, 0),
                     PST_EINVAL);

    buf_release(&body);
    buf_release(&full);
    buf_release(&plain);
}

static void t_decode(uint64_t enc, const char *msg, size_t len, const char *subj, const char *body)
{
    struct bm_obj_text t;

    assert_int_equal(bm_obj_text_decode(enc, (const uint8_t *)msg, len, &t), 0);
    assert_int_equal(t.subject_len, strlen(subj));
    if (t.subject_len > 0)
        assert_memory_equal(t.subject, subj, t.subject_len);
    assert_int_equal(t.body_len, strlen(body));
    if (t.body_len > 0)
        assert_memory_equal(t.body, body, t.body_len);
}

static void test_text(void **state)
{
    char big[700];
    struct bm_obj_text t;
    buf_t b;

    t_decode(2, "Subject:hi\nBody:there", 21, "hi", "there");
    t_decode(2, "Subject:hi\nmore\nBody:there\nBody:x", 33, "hi", "there\nBody:x");
    t_decode(2, "no body marker", 14, "", "no body marker");
    t_decode(2, "x\nBody:y", 8, "", "x\nBody:y"); /* marker at 1: the reference keeps it all */
    t_decode(2, "ab\nBody:y", 9, "", "y");        /* subject = data[8:2] = "" */
    t_decode(2, "", 0, "", "");
    t_decode(1, "Subject:hi\nBody:there", 21, "", "Subject:hi\nBody:there");
    t_decode(2, "Subject:a\rb\nBody:", 17, "a", "");
    memset(big, 'S', sizeof(big));
    memcpy(big, "Subject:", 8);
    memcpy(big + 600, "\nBody:z", 7);
    assert_int_equal(bm_obj_text_decode(2, (const uint8_t *)big, 607, &t), 0);
    assert_int_equal(t.subject_len, BM_OBJ_SUBJECT_MAX);
    assert_int_equal(t.body_len, 1);
    assert_int_equal(bm_obj_text_decode(0, (const uint8_t *)"x", 1, &t), PST_ENOENT);
    assert_int_equal(bm_obj_text_decode(3, (const uint8_t *)"x", 1, &t), PST_ENOENT);
    assert_int_equal(bm_obj_text_decode(99, (const uint8_t *)"x", 1, &t), PST_ENOENT);

    buf_init(&b, 64);
    assert_int_equal(bm_obj_text_encode(&b, 2, (const uint8_t *)"s", 1, (const uint8_t *)"b", 1),
                     0);
    assert_int_equal(b.len, 16);
    assert_memory_equal(b.data, "Subject:s\nBody:b", 16);
    buf_reset(&b);
    assert_int_equal(bm_obj_text_encode(&b, 1, NULL, 0, (const uint8_t *)"b", 1), 0);
    assert_int_equal(b.len, 1);
    assert_int_equal(bm_obj_text_encode(&b, 1, (const uint8_t *)"s", 1, NULL, 0), PST_EINVAL);
    assert_int_equal(bm_obj_text_encode(&b, 3, NULL, 0, NULL, 0), PST_EINVAL);
    buf_release(&b);
}

static void test_ack_ttl(void **state)
{
    assert_int_equal(bm_obj_ack_ttl(3600), 86400);
    assert_int_equal(bm_obj_ack_ttl(86400), 7 * 86400);
    assert_int_equal(bm_obj_ack_ttl(7 * 86400), 28 * 86400);
    assert_int_equal(bm_obj_ack_ttl(100 * 86400), 28 * 86400);
}

/* A real PoW on an ack object at the network minimum, then the receiver's check. */
static void test_seal_ack(void **state)
{
    struct bm_obj_ackdata ad;
    struct bm_pow_search s;
    struct bm_wire_object o;
    int64_t now = (int64_t)time(NULL);
    buf_t body, full;

    assert_int_equal(bm_obj_ackdata_new(1, &ad), 0);
    buf_init(&body, T_BUF_MAX);
    buf_init(&full, T_BUF_MAX);
    assert_int_equal(bm_obj_ack_build(&body, (uint64_t)now + 300, &ad), 0);
    bm_pow_search_init(&s, 0);
    assert_int_equal(bm_obj_seal(&s, (const uint8_t *)body.data, body.len, now, NULL, &full), 0);
    assert_int_equal(bm_pow_check((const uint8_t *)full.data, full.len, now, NULL), 0);
    assert_int_equal(bm_wire_object_parse((const uint8_t *)full.data, full.len, &o), 0);
    assert_true(bm_obj_ack_matches(&o, &ad));
    /* expired or short bodies are refused */
    assert_int_equal(bm_obj_seal(&s, (const uint8_t *)body.data, body.len, now + 400, NULL, &full),
                     PST_EINVAL);
    assert_int_equal(bm_obj_seal(&s, (const uint8_t *)body.data, 4, now, NULL, &full), PST_EINVAL);
    buf_release(&body);
    buf_release(&full);
}

/* ---- objects built by the reference client ---- */

static FILE *t_open_vectors(void)
{
    char path[4096];
    const char *dir = getenv("BM_TEST_DATA_DIR");
    int n;

    if (dir != NULL) {
        n = snprintf(path, sizeof(path), "%s/object_vectors.txt", dir);
    } else {
        const char *slash = strrchr(__FILE__, '/');
        int dlen = slash != NULL ? (int)(slash - __FILE__) : 1;
        n = snprintf(path, sizeof(path), "%.*s/../../data/bitmessage/object_vectors.txt", dlen,
                     slash != NULL ? __FILE__ : ".");
    }
    assert_true(n > 0 && (size_t)n < sizeof(path));
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail_msg("cannot open %s (set BM_TEST_DATA_DIR)", path);
    return f;
}

static size_t t_unhex(const char *hex, uint8_t *out, size_t outsz)
{
    size_t n = strlen(hex) / 2;
    unsigned int byte;

    assert_true(n <= outsz);
    for (size_t i = 0; i < n; i++) {
        char two[3] = {hex[2 * i], hex[2 * i + 1], '\0'};
        assert_int_equal(sscanf(two, "%02x", &byte), 1);
        out[i] = (uint8_t)byte;
    }
    return n;
}

/* t_vector_check - one record: type (msg|pubkey|broadcast), recipient/sender passphrases
 * (first v4 address of each), object hex, message hex, ackdata hex (msg). */
static void t_vector_check(const char *type, const char *rpass, const char *spass,
                           const char *objhex, const char *texthex, const char *ackhex)
{
    static uint8_t obj[1u << 16];
    uint8_t text[1024];
    size_t textlen = t_unhex(texthex, text, sizeof(text));
    bm_keys_t me, sender;
    struct bm_wire_object o;
    buf_t plain;
    size_t n = t_unhex(objhex, obj, sizeof(obj));

    t_keys(spass, 4, &sender);
    t_keys(rpass, 4, &me);
    buf_init(&plain, BM_OBJ_PLAIN_MAX);
    assert_int_equal(bm_wire_object_parse(obj, n, &o), 0);
    if (strcmp(type, "msg") == 0) {
        struct bm_obj_msg m;
        struct bm_wire_object ao;
        assert_int_equal(bm_obj_msg_parse(&o, &me, &plain, &m), 0);
        assert_memory_equal(m.sender.ripe, sender.addr.ripe, BM_RIPE_LEN);
        struct bm_obj_ackdata ad;
        struct bm_obj_text t;
        assert_int_equal(m.message_len, textlen);
        assert_memory_equal(m.message, text, m.message_len);
        assert_int_equal(bm_obj_text_decode(m.encoding, m.message, m.message_len, &t), 0);
        assert_int_equal(t.subject_len, strlen("Reference subject"));
        assert_memory_equal(t.subject, "Reference subject", t.subject_len);
        assert_int_equal(bm_obj_ack_unwrap(m.ack, m.ack_len, &ao), 0);
        ad.len = t_unhex(ackhex, ad.data, sizeof(ad.data));
        assert_true(bm_obj_ack_matches(&ao, &ad));
        /* the reference's ack PoW (7-day bucket) satisfies our check at its send time */
        assert_int_equal(
            bm_pow_sufficient(ao.data, ao.data_len, (int64_t)ao.expires - 7 * 86400, NULL), 0);
        obj[n - 1] ^= 1;
        assert_int_equal(bm_wire_object_parse(obj, n, &o), 0);
        assert_int_not_equal(bm_obj_msg_parse(&o, &me, &plain, &m), 0);
    } else if (strcmp(type, "pubkey") == 0) {
        struct bm_obj_pubkey pk;
        assert_int_equal(bm_obj_pubkey_parse(&o, &sender.addr, &plain, &pk), 0);
        assert_memory_equal(pk.pub_signing, sender.pub_signing, BM_PUBKEY_LEN);
        assert_memory_equal(pk.pub_encryption, sender.pub_encryption, BM_PUBKEY_LEN);
    } else if (strcmp(type, "broadcast") == 0) {
        struct bm_obj_broadcast b;
        assert_int_equal(bm_obj_broadcast_parse(&o, &sender.addr, &plain, &b), 0);
        assert_int_equal(b.message_len, textlen);
        assert_memory_equal(b.message, text, b.message_len);
    } else {
        fail_msg("unknown record type %s", type);
    }
    buf_release(&plain);
}

static void test_reference_vectors(void **state)
{
    static char line[1u << 17];
    char type[32] = "", rpass[128] = "", spass[128] = "", text[2048] = "", ack[256] = "";
    static char obj[1u << 17];
    FILE *f = t_open_vectors();
    int records = 0;

    while (fgets(line, sizeof(line), f) != NULL) {
        char *eq, *val;
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#')
            continue;
        if (line[0] == '\0') {
            if (type[0] != '\0') {
                t_vector_check(type, rpass, spass, obj, text, ack);
                records++;
            }
            type[0] = rpass[0] = spass[0] = text[0] = ack[0] = obj[0] = '\0';
            continue;
        }
        eq = strstr(line, " = ");
        assert_non_null(eq);
        *eq = '\0';
        val = eq + 3;
        if (strcmp(line, "type") == 0)
            snprintf(type, sizeof(type), "%s", val);
        else if (strcmp(line, "recipient_passphrase") == 0)
            snprintf(rpass, sizeof(rpass), "%s", val);
        else if (strcmp(line, "sender_passphrase") == 0)
            snprintf(spass, sizeof(spass), "%s", val);
        else if (strcmp(line, "message") == 0)
            snprintf(text, sizeof(text), "%s", val);
        else if (strcmp(line, "ackdata") == 0)
            snprintf(ack, sizeof(ack), "%s", val);
        else if (strcmp(line, "object") == 0)
            snprintf(obj, sizeof(obj), "%s", val);
    }
    if (type[0] != '\0') {
        t_vector_check(type, rpass, spass, obj, text, ack);
        records++;
    }
    fclose(f);
    assert_true(records >= 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_getpubkey),
        cmocka_unit_test(test_pubkey),
        cmocka_unit_test(test_msg),
        cmocka_unit_test(test_msg_wrong_dest),
        cmocka_unit_test(test_msg_hostile_plain),
        cmocka_unit_test(test_broadcast),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_ack_ttl),
        cmocka_unit_test(test_seal_ack),
        cmocka_unit_test(test_reference_vectors),
    };
    return cmocka_run_group_tests(tests, t_setup, NULL);
}
