/*
 * fuzz_bm_objects.c - every object parser of bm_object with fixed keys. The
 * first byte picks the mode; the rest is the input:
 *   0     getpubkey parse of a whole object
 *   1..3  pubkey / msg / broadcast parse of a whole object (reaches the tag
 *         and MAC checks only: random ciphertext never authenticates)
 *   4..6  the input is the PLAINTEXT of a pubkey / msg / broadcast: it is
 *         encrypted (fixed ephemeral key and IV) to the right key under a
 *         valid header, so the content parsers see fuzzer bytes; a forged
 *         signature must never be accepted
 *   7     message text decode (next byte = encoding)
 *   8     ack unwrap and match
 *   9     msg round trip: the input as message text must come back unchanged
 * Keys are deterministic addresses made once.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bitmessage/bm_object.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_EXPIRES 1900000000ull

static bm_keys_t fz_a, fz_b;
static bm_key_t *fz_eph;
static const uint8_t fz_iv[BM_ECIES_IV_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

static void fz_init(void)
{
    static int done;
    uint8_t priv[BM_PRIVKEY_LEN];
    uint64_t nonce = 0;

    if (done)
        return;
    memset(priv, 0x42, sizeof(priv));
    if (bm_keys_from_passphrase("fuzz a", 6, 4, 1, 1, &nonce, &fz_a) != 0)
        abort();
    nonce = 0;
    if (bm_keys_from_passphrase("fuzz b", 6, 4, 1, 1, &nonce, &fz_b) != 0)
        abort();
    if (bm_key_from_private(priv, &fz_eph) != 0)
        abort();
    done = 1;
}

/* fz_parse_object - run the parser `mode` (0..3) on a whole object. */
static void fz_parse_object(int mode, const uint8_t *p, size_t n, buf_t *plain)
{
    struct bm_wire_object o;
    struct bm_obj_getpubkey g;
    struct bm_obj_pubkey pk;
    struct bm_obj_msg m;
    struct bm_obj_broadcast b;
    int rc = 0;

    if (bm_wire_object_parse(p, n, &o) != 0)
        return;
    if (mode == 0)
        rc = bm_obj_getpubkey_parse(&o, &g);
    else if (mode == 1)
        rc = bm_obj_pubkey_parse(&o, &fz_a.addr, plain, &pk);
    else if (mode == 2)
        rc = bm_obj_msg_parse(&o, &fz_b, plain, &m);
    else
        rc = bm_obj_broadcast_parse(&o, &fz_a.addr, plain, &b);
    if (mode == 2 && rc == 0 && m.message_len > 0 && m.message == NULL)
        abort();
    (void)rc;
}

/* fz_plain - wrap plaintext p as the content of an object of `type`, encrypted to the
 * right key, and parse it; it carries no valid signature, so success is a bug. */
static void fz_plain(uint32_t type, const uint8_t *p, size_t n, buf_t *plain)
{
    static const uint64_t versions[4] = {0, 4, 1, 5};
    uint8_t tagpriv[BM_PRIVKEY_LEN], tag[BM_TAG_LEN], pub[BM_PUBKEY_LEN];
    buf_t obj;
    int rc = 0;

    buf_init(&obj, BM_WIRE_MAX_OBJECT_PAYLOAD + 1024);
    if (bm_address_tag(&fz_a.addr, tagpriv, tag) != 0 || bm_pubkey_from_privkey(tagpriv, pub) != 0)
        abort();
    rc |= bm_put_u64(&obj, 0);
    rc |= bm_put_u64(&obj, FZ_EXPIRES);
    rc |= bm_put_u32(&obj, type);
    rc |= bm_put_varint(&obj, versions[type]);
    rc |= bm_put_varint(&obj, 1);
    if (type != BM_WIRE_OBJ_MSG)
        rc |= bm_put_bytes(&obj, tag, BM_TAG_LEN);
    if (rc == 0)
        rc = bm_ecies_encrypt_fixed(type == BM_WIRE_OBJ_MSG ? fz_b.pub_encryption : pub, fz_eph,
                                    fz_iv, p, n, &obj);
    if (rc == 0) {
        fz_parse_object((int)type, (const uint8_t *)obj.data, obj.len, plain);
        struct bm_wire_object o;
        struct bm_obj_msg m;
        if (bm_wire_object_parse((const uint8_t *)obj.data, obj.len, &o) == 0 &&
            type == BM_WIRE_OBJ_MSG && bm_obj_msg_parse(&o, &fz_b, plain, &m) == 0)
            abort(); /* no signature by a key we know of can be in fuzzer bytes */
    }
    buf_release(&obj);
}

static void fz_text(const uint8_t *p, size_t n)
{
    struct bm_obj_text t;

    if (n < 1)
        return;
    if (bm_obj_text_decode(p[0], p + 1, n - 1, &t) != 0)
        return;
    if (t.body < p + 1 || t.body + t.body_len > p + n || t.subject_len > BM_OBJ_SUBJECT_MAX)
        abort();
    if (t.subject_len > 0 && (t.subject < p + 1 || t.subject + t.subject_len > p + n))
        abort();
}

static void fz_ack(const uint8_t *p, size_t n)
{
    struct bm_wire_object o;
    struct bm_obj_ackdata a;
    uint8_t rnd[BM_OBJ_ACK_RANDOM_LEN] = {0};

    if (bm_obj_ack_unwrap(p, n, &o) != 0)
        return;
    bm_obj_ackdata_make(o.stream, rnd, &a);
    (void)bm_obj_ack_matches(&o, &a);
}

static void fz_roundtrip(const uint8_t *p, size_t n, buf_t *plain)
{
    struct bm_obj_sender_opts opts = {.behavior = 1, .fixed = NULL};
    struct bm_obj_fixed fixed = {.ephemeral = fz_eph, .iv = fz_iv};
    struct bm_wire_object o;
    struct bm_obj_msg m;
    buf_t body, obj;

    if (n > 4096)
        return;
    opts.fixed = &fixed;
    buf_init(&body, BM_WIRE_MAX_OBJECT_PAYLOAD);
    buf_init(&obj, BM_WIRE_MAX_OBJECT_PAYLOAD + 64);
    if (bm_obj_msg_build(&body, FZ_EXPIRES, 1, &fz_a, &opts, fz_b.addr.ripe, fz_b.pub_encryption, 1,
                         p, n, NULL, 0) != 0 ||
        bm_obj_with_nonce(&obj, 0, (const uint8_t *)body.data, body.len) != 0 ||
        bm_wire_object_parse((const uint8_t *)obj.data, obj.len, &o) != 0 ||
        bm_obj_msg_parse(&o, &fz_b, plain, &m) != 0)
        abort();
    if (m.message_len != n || (n > 0 && memcmp(m.message, p, n) != 0) || m.ack_len != 0)
        abort();
    buf_release(&body);
    buf_release(&obj);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    buf_t plain;
    int mode;

    if (size < 1)
        return 0;
    fz_init();
    mode = data[0] % 10;
    data++;
    size--;
    buf_init(&plain, BM_OBJ_PLAIN_MAX);
    if (mode <= 3)
        fz_parse_object(mode, data, size, &plain);
    else if (mode <= 6)
        fz_plain((uint32_t)(mode - 3), data, size, &plain);
    else if (mode == 7)
        fz_text(data, size);
    else if (mode == 8)
        fz_ack(data, size);
    else
        fz_roundtrip(data, size, &plain);
    buf_release(&plain);
    return 0;
}
