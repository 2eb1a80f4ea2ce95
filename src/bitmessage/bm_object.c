/*
 * bm_object.c - Bitmessage object payloads (getpubkey, pubkey v4, msg v1,
 * broadcast v5, acks, message encodings). Formats and the exact signed
 * bytes: see bm_object.h, taken from the reference client PyBitmessage
 * (class_singleWorker.py, class_objectProcessor.py, protocol.py,
 * helper_ackPayload.py, helper_msgcoding.py) and the wiki's "Protocol
 * specification".
 *
 * Failure policy: pure functions over caller buffers; no logging, no global
 * state. Every malformed or hostile input gives a negative PST_E* code (see
 * bm_object.h for which); output buffers may hold a partial append on
 * failure (callers discard them). Private keys handled here live in
 * bm_key_t objects, freed (wiped) before return; tag keys on the stack are
 * wiped with OPENSSL_cleanse.
 */
#include "bitmessage/bm_object.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "bitmessage/bm_encode.h"

/* Largest object header without nonce: expires + type + two var_ints. */
#define OBJ_HEADER_MAX (8 + 4 + 2 * BM_VARINT_MAX_LEN)
/* Signed prefix: header + tag. */
#define OBJ_PREFIX_MAX (OBJ_HEADER_MAX + BM_TAG_LEN)
/* Longest signature accepted on the wire (DER is at most BM_SIG_MAX_LEN; the
 * reference does not limit it, but nothing valid is longer than this). */
#define OBJ_SIG_WIRE_MAX 256
/* Ack packet inside a msg: at most a whole object packet. */
#define OBJ_ACK_MAX (BM_WIRE_HEADER_LEN + BM_WIRE_MAX_OBJECT_PAYLOAD + 64)
/* Oldest sender address version a msg/broadcast may carry, and the newest. */
#define OBJ_SENDER_VERSION_MIN 2
#define OBJ_SENDER_VERSION_MAX 4

static const char obj_subject_tag[] = "Subject:";
static const char obj_body_tag[] = "\nBody:";

/* ---- small helpers ---- */

static const uint8_t *obj_bytes(const buf_t *b)
{
    return (const uint8_t *)b->data;
}

static int obj_put_header(buf_t *b, uint64_t expires, uint32_t type, uint64_t version,
                          uint64_t stream)
{
    int rc = bm_put_u64(b, expires);
    if (rc == 0)
        rc = bm_put_u32(b, type);
    if (rc == 0)
        rc = bm_put_varint(b, version);
    if (rc == 0)
        rc = bm_put_varint(b, stream);
    return rc;
}

/* obj_put_keys - behaviour || sign XY || enc XY || (version >= 3: trials || extra). */
static int obj_put_keys(buf_t *b, const bm_keys_t *k, const struct bm_obj_sender_opts *opts)
{
    uint64_t trials = BM_POW_NONCE_TRIALS_DEFAULT, extra = BM_POW_EXTRA_BYTES_DEFAULT;
    uint32_t behavior = BM_OBJ_BITFIELD_DOESACK;
    int rc;

    if (opts != NULL) {
        behavior = opts->behavior;
        if (opts->nonce_trials != 0)
            trials = opts->nonce_trials;
        if (opts->extra_bytes != 0)
            extra = opts->extra_bytes;
    }
    rc = bm_put_u32(b, behavior);
    if (rc == 0)
        rc = bm_put_bytes(b, k->pub_signing + 1, BM_OBJ_KEY_XY_LEN);
    if (rc == 0)
        rc = bm_put_bytes(b, k->pub_encryption + 1, BM_OBJ_KEY_XY_LEN);
    if (rc == 0 && k->addr.version >= 3)
        rc = bm_put_varint(b, trials);
    if (rc == 0 && k->addr.version >= 3)
        rc = bm_put_varint(b, extra);
    return rc;
}

/* obj_get_keys - read what obj_put_keys wrote for a sender of pk->addr_version; checks
 * both points and computes the ripe. */
static int obj_get_keys(bm_reader_t *r, struct bm_obj_pubkey *pk)
{
    int rc;

    pk->pub_signing[0] = 0x04;
    pk->pub_encryption[0] = 0x04;
    pk->nonce_trials = 0;
    pk->extra_bytes = 0;
    rc = bm_get_u32(r, &pk->behavior);
    if (rc == 0)
        rc = bm_get_bytes(r, pk->pub_signing + 1, BM_OBJ_KEY_XY_LEN);
    if (rc == 0)
        rc = bm_get_bytes(r, pk->pub_encryption + 1, BM_OBJ_KEY_XY_LEN);
    if (rc == 0 && pk->addr_version >= 3)
        rc = bm_get_varint(r, &pk->nonce_trials);
    if (rc == 0 && pk->addr_version >= 3)
        rc = bm_get_varint(r, &pk->extra_bytes);
    if (rc != 0)
        return PST_EINVAL;
    if (bm_pubkey_check(pk->pub_signing) != 0 || bm_pubkey_check(pk->pub_encryption) != 0)
        return PST_EINVAL;
    return bm_ripe_from_pubkeys(pk->pub_signing, pk->pub_encryption, pk->ripe);
}

/* obj_get_sender_versions - var_int version (2..4) and var_int stream of a msg/broadcast. */
static int obj_get_sender_versions(bm_reader_t *r, struct bm_obj_pubkey *pk)
{
    if (bm_get_varint(r, &pk->addr_version) != 0 || bm_get_varint(r, &pk->stream) != 0)
        return PST_EINVAL;
    if (pk->addr_version < OBJ_SENDER_VERSION_MIN || pk->addr_version > OBJ_SENDER_VERSION_MAX)
        return PST_EINVAL;
    return 0;
}

/* obj_sign_append - sign prefix || plain with priv; append var_int(siglen) || sig to plain. */
static int obj_sign_append(const uint8_t priv[BM_PRIVKEY_LEN], const buf_t *prefix, buf_t *plain)
{
    buf_t tosign, sig;
    bm_key_t *key = NULL;
    int rc;

    buf_init(&tosign, prefix->len + plain->len);
    buf_init(&sig, BM_SIG_MAX_LEN);
    rc = bm_key_from_private(priv, &key);
    if (rc == 0)
        rc = buf_append(&tosign, prefix->data, prefix->len);
    if (rc == 0)
        rc = buf_append(&tosign, plain->data, plain->len);
    if (rc == 0)
        rc = bm_sign(key, tosign.data, tosign.len, &sig);
    if (rc == 0)
        rc = bm_put_varstr(plain, sig.data, sig.len);
    bm_key_free(&key);
    buf_release(&tosign);
    buf_release(&sig);
    return rc;
}

/* obj_verify - check sig over prefix[0..plen) || plain[0..signed_len) against pub.
 * Any failure to verify is PST_EAUTH (except allocation/OpenSSL errors). */
static int obj_verify(const uint8_t *prefix, size_t plen, const uint8_t *plain, size_t signed_len,
                      const uint8_t *sig, size_t siglen, const uint8_t pub[BM_PUBKEY_LEN])
{
    buf_t data;
    int rc;

    buf_init(&data, plen + signed_len);
    rc = buf_append(&data, prefix, plen);
    if (rc == 0)
        rc = buf_append(&data, plain, signed_len);
    if (rc == 0)
        rc = bm_verify(pub, data.data, data.len, sig, siglen);
    buf_release(&data);
    if (rc == PST_EINVAL)
        return PST_EAUTH;
    return rc;
}

static int obj_encrypt(const uint8_t pub[BM_PUBKEY_LEN], const buf_t *plain,
                       const struct bm_obj_sender_opts *opts, buf_t *out)
{
    if (opts != NULL && opts->fixed != NULL)
        return bm_ecies_encrypt_fixed(pub, opts->fixed->ephemeral, opts->fixed->iv, plain->data,
                                      plain->len, out);
    return bm_ecies_encrypt(pub, plain->data, plain->len, out);
}

/* obj_decrypt - decrypt blob with priv into plain (reset first). A MAC mismatch stays
 * PST_EAUTH; callers map it. */
static int obj_decrypt(const uint8_t priv[BM_PRIVKEY_LEN], const uint8_t *blob, size_t len,
                       buf_t *plain)
{
    bm_key_t *key = NULL;
    int rc;

    buf_reset(plain);
    rc = bm_key_from_private(priv, &key);
    if (rc == 0)
        rc = bm_ecies_decrypt(key, blob, len, plain);
    bm_key_free(&key);
    return rc;
}

/* obj_tag_keys - the tag, its private key and public key for addr. */
static int obj_tag_keys(const bm_address_t *addr, uint8_t priv[BM_PRIVKEY_LEN],
                        uint8_t tag[BM_TAG_LEN], uint8_t pub[BM_PUBKEY_LEN])
{
    int rc = bm_address_tag(addr, priv, tag);
    if (rc == 0 && pub != NULL)
        rc = bm_pubkey_from_privkey(priv, pub);
    return rc;
}

/* obj_finish - out += prefix || ECIES(pub, plain). */
static int obj_finish(buf_t *out, const buf_t *prefix, const uint8_t pub[BM_PUBKEY_LEN],
                      const buf_t *plain, const struct bm_obj_sender_opts *opts)
{
    int rc = buf_append(out, prefix->data, prefix->len);
    if (rc == 0)
        rc = obj_encrypt(pub, plain, opts, out);
    return rc;
}

/* obj_signed_prefix - the object from expires through extra bytes (tag), as signed. */
static int obj_signed_prefix(const struct bm_wire_object *o, size_t extra, const uint8_t **p,
                             size_t *len)
{
    if (o->header_len < BM_POW_NONCE_LEN || o->payload_len < extra)
        return PST_EINVAL;
    *p = o->data + BM_POW_NONCE_LEN;
    *len = o->header_len - BM_POW_NONCE_LEN + extra;
    return 0;
}

/* ---- getpubkey ---- */

int bm_obj_getpubkey_build(buf_t *out, uint64_t expires, const bm_address_t *addr)
{
    uint8_t tag[BM_TAG_LEN];
    int rc;

    if (addr->version < BM_ADDRESS_VERSION_MIN || addr->version > BM_ADDRESS_VERSION_MAX)
        return PST_EINVAL;
    rc = obj_put_header(out, expires, BM_WIRE_OBJ_GETPUBKEY, addr->version, addr->stream);
    if (rc != 0)
        return rc;
    if (addr->version < 4)
        return bm_put_bytes(out, addr->ripe, BM_RIPE_LEN);
    rc = bm_address_tag(addr, NULL, tag);
    if (rc == 0)
        rc = bm_put_bytes(out, tag, BM_TAG_LEN);
    return rc;
}

int bm_obj_getpubkey_parse(const struct bm_wire_object *o, struct bm_obj_getpubkey *g)
{
    memset(g, 0, sizeof(*g));
    if (o->type != BM_WIRE_OBJ_GETPUBKEY || o->version < 2 || o->version > 4)
        return PST_EINVAL;
    g->addr_version = o->version;
    g->stream = o->stream;
    if (o->version < 4) {
        if (o->payload_len < BM_RIPE_LEN)
            return PST_EINVAL;
        memcpy(g->ripe, o->payload, BM_RIPE_LEN);
        return 0;
    }
    if (o->payload_len < BM_TAG_LEN)
        return PST_EINVAL;
    g->has_tag = true;
    memcpy(g->tag, o->payload, BM_TAG_LEN);
    return 0;
}

/* ---- pubkey v4 ---- */

int bm_obj_pubkey_build(buf_t *out, uint64_t expires, const bm_keys_t *id,
                        const struct bm_obj_sender_opts *opts)
{
    uint8_t priv[BM_PRIVKEY_LEN], tag[BM_TAG_LEN], pub[BM_PUBKEY_LEN];
    buf_t prefix, plain;
    int rc;

    if (id->addr.version != BM_OBJ_PUBKEY_VERSION)
        return PST_EINVAL;
    buf_init(&prefix, OBJ_PREFIX_MAX);
    buf_init(&plain, BM_OBJ_PLAIN_MAX);
    rc = obj_tag_keys(&id->addr, priv, tag, pub);
    if (rc == 0)
        rc = obj_put_header(&prefix, expires, BM_WIRE_OBJ_PUBKEY, BM_OBJ_PUBKEY_VERSION,
                            id->addr.stream);
    if (rc == 0)
        rc = bm_put_bytes(&prefix, tag, BM_TAG_LEN);
    if (rc == 0)
        rc = obj_put_keys(&plain, id, opts);
    if (rc == 0)
        rc = obj_sign_append(id->priv_signing, &prefix, &plain);
    if (rc == 0)
        rc = obj_finish(out, &prefix, pub, &plain, opts);
    OPENSSL_cleanse(priv, sizeof(priv));
    buf_release(&prefix);
    buf_release(&plain);
    return rc;
}

/* obj_leading_tag - the tag that starts a tagged object of the given type and version. */
static int obj_leading_tag(const struct bm_wire_object *o, uint32_t type, uint64_t version,
                           uint8_t tag[BM_TAG_LEN])
{
    if (o->type != type || o->version != version || o->payload_len < BM_TAG_LEN)
        return PST_EINVAL;
    memcpy(tag, o->payload, BM_TAG_LEN);
    return 0;
}

int bm_obj_pubkey_tag(const struct bm_wire_object *o, uint8_t tag[BM_TAG_LEN])
{
    return obj_leading_tag(o, BM_WIRE_OBJ_PUBKEY, BM_OBJ_PUBKEY_VERSION, tag);
}

/* obj_pubkey_read - the decrypted pubkey v4 content; *signed_len = bytes before siglen. */
static int obj_pubkey_read(const buf_t *plain, struct bm_obj_pubkey *pk, size_t *signed_len,
                           const uint8_t **sig, size_t *siglen)
{
    bm_reader_t r;
    int rc;

    bm_reader_init(&r, plain->data, plain->len);
    rc = obj_get_keys(&r, pk);
    if (rc != 0)
        return rc;
    *signed_len = r.pos;
    if (bm_get_varstr(&r, OBJ_SIG_WIRE_MAX, sig, siglen) != 0)
        return PST_EINVAL;
    return 0;
}

int bm_obj_pubkey_parse(const struct bm_wire_object *o, const bm_address_t *addr, buf_t *plain,
                        struct bm_obj_pubkey *pk)
{
    uint8_t priv[BM_PRIVKEY_LEN], tag[BM_TAG_LEN], got[BM_TAG_LEN];
    const uint8_t *prefix, *sig;
    size_t plen, signed_len, siglen;
    int rc;

    memset(pk, 0, sizeof(*pk));
    if (addr->version != BM_OBJ_PUBKEY_VERSION)
        return PST_EINVAL;
    rc = bm_obj_pubkey_tag(o, got);
    if (rc != 0)
        return rc;
    rc = obj_tag_keys(addr, priv, tag, NULL);
    if (rc == 0 && memcmp(tag, got, BM_TAG_LEN) != 0)
        rc = PST_ENOENT;
    if (rc == 0)
        rc = obj_decrypt(priv, o->payload + BM_TAG_LEN, o->payload_len - BM_TAG_LEN, plain);
    OPENSSL_cleanse(priv, sizeof(priv));
    if (rc != 0)
        return rc;
    pk->addr_version = o->version;
    pk->stream = o->stream;
    rc = obj_pubkey_read(plain, pk, &signed_len, &sig, &siglen);
    if (rc == 0)
        rc = obj_signed_prefix(o, BM_TAG_LEN, &prefix, &plen);
    if (rc == 0)
        rc = obj_verify(prefix, plen, obj_bytes(plain), signed_len, sig, siglen, pk->pub_signing);
    if (rc == 0 && (memcmp(pk->ripe, addr->ripe, BM_RIPE_LEN) != 0 || o->stream != addr->stream))
        rc = PST_EAUTH;
    return rc;
}

/* ---- msg v1 ---- */

int bm_obj_msg_build(buf_t *out, uint64_t expires, uint64_t stream, const bm_keys_t *from,
                     const struct bm_obj_sender_opts *opts, const uint8_t dest_ripe[BM_RIPE_LEN],
                     const uint8_t dest_pub_enc[BM_PUBKEY_LEN], uint64_t encoding,
                     const uint8_t *message, size_t message_len, const uint8_t *ack, size_t ack_len)
{
    buf_t prefix, plain;
    int rc;

    if (from->addr.version < BM_ADDRESS_VERSION_MIN || from->addr.version > BM_ADDRESS_VERSION_MAX)
        return PST_EINVAL;
    buf_init(&prefix, OBJ_PREFIX_MAX);
    buf_init(&plain, BM_OBJ_PLAIN_MAX);
    rc = obj_put_header(&prefix, expires, BM_WIRE_OBJ_MSG, BM_OBJ_MSG_VERSION, stream);
    if (rc == 0)
        rc = bm_put_varint(&plain, from->addr.version);
    if (rc == 0)
        rc = bm_put_varint(&plain, from->addr.stream);
    if (rc == 0)
        rc = obj_put_keys(&plain, from, opts);
    if (rc == 0)
        rc = bm_put_bytes(&plain, dest_ripe, BM_RIPE_LEN);
    if (rc == 0)
        rc = bm_put_varint(&plain, encoding);
    if (rc == 0)
        rc = bm_put_varstr(&plain, message, message_len);
    if (rc == 0)
        rc = bm_put_varstr(&plain, ack, ack_len);
    if (rc == 0)
        rc = obj_sign_append(from->priv_signing, &prefix, &plain);
    if (rc == 0)
        rc = obj_finish(out, &prefix, dest_pub_enc, &plain, opts);
    buf_release(&prefix);
    buf_release(&plain);
    return rc;
}

/* obj_msg_read - the decrypted msg content; *signed_len = bytes before siglen. */
static int obj_msg_read(const buf_t *plain, struct bm_obj_msg *m, size_t *signed_len,
                        const uint8_t **sig, size_t *siglen)
{
    bm_reader_t r;
    int rc;

    bm_reader_init(&r, plain->data, plain->len);
    rc = obj_get_sender_versions(&r, &m->sender);
    if (rc == 0)
        rc = obj_get_keys(&r, &m->sender);
    if (rc != 0)
        return rc;
    if (bm_get_bytes(&r, m->dest_ripe, BM_RIPE_LEN) != 0 || bm_get_varint(&r, &m->encoding) != 0)
        return PST_EINVAL;
    rc = bm_get_varstr(&r, BM_OBJ_PLAIN_MAX, &m->message, &m->message_len);
    if (rc == 0)
        rc = bm_get_varstr(&r, OBJ_ACK_MAX, &m->ack, &m->ack_len);
    if (rc != 0)
        return rc;
    *signed_len = r.pos;
    if (bm_get_varstr(&r, OBJ_SIG_WIRE_MAX, sig, siglen) != 0)
        return PST_EINVAL;
    return 0;
}

int bm_obj_msg_parse(const struct bm_wire_object *o, const bm_keys_t *me, buf_t *plain,
                     struct bm_obj_msg *m)
{
    const uint8_t *prefix, *sig;
    size_t plen, signed_len, siglen;
    int rc;

    memset(m, 0, sizeof(*m));
    if (o->type != BM_WIRE_OBJ_MSG || o->version != BM_OBJ_MSG_VERSION)
        return PST_EINVAL;
    rc = obj_decrypt(me->priv_encryption, o->payload, o->payload_len, plain);
    if (rc == PST_EAUTH)
        return PST_ENOENT; /* someone else's: the MAC only matches the recipient's key */
    if (rc != 0)
        return rc;
    rc = obj_msg_read(plain, m, &signed_len, &sig, &siglen);
    if (rc == 0 && memcmp(m->dest_ripe, me->addr.ripe, BM_RIPE_LEN) != 0)
        rc = PST_EAUTH; /* surreptitious forwarding */
    if (rc == 0)
        rc = obj_signed_prefix(o, 0, &prefix, &plen);
    if (rc == 0)
        rc = obj_verify(prefix, plen, obj_bytes(plain), signed_len, sig, siglen,
                        m->sender.pub_signing);
    return rc;
}

/* ---- broadcast v5 ---- */

int bm_obj_broadcast_build(buf_t *out, uint64_t expires, const bm_keys_t *from,
                           const struct bm_obj_sender_opts *opts, uint64_t encoding,
                           const uint8_t *message, size_t message_len)
{
    uint8_t priv[BM_PRIVKEY_LEN], tag[BM_TAG_LEN], pub[BM_PUBKEY_LEN];
    buf_t prefix, plain;
    int rc;

    if (from->addr.version != 4)
        return PST_EINVAL;
    buf_init(&prefix, OBJ_PREFIX_MAX);
    buf_init(&plain, BM_OBJ_PLAIN_MAX);
    rc = obj_tag_keys(&from->addr, priv, tag, pub);
    if (rc == 0)
        rc = obj_put_header(&prefix, expires, BM_WIRE_OBJ_BROADCAST, BM_OBJ_BROADCAST_VERSION,
                            from->addr.stream);
    if (rc == 0)
        rc = bm_put_bytes(&prefix, tag, BM_TAG_LEN);
    if (rc == 0)
        rc = bm_put_varint(&plain, from->addr.version);
    if (rc == 0)
        rc = bm_put_varint(&plain, from->addr.stream);
    if (rc == 0)
        rc = obj_put_keys(&plain, from, opts);
    if (rc == 0)
        rc = bm_put_varint(&plain, encoding);
    if (rc == 0)
        rc = bm_put_varstr(&plain, message, message_len);
    if (rc == 0)
        rc = obj_sign_append(from->priv_signing, &prefix, &plain);
    if (rc == 0)
        rc = obj_finish(out, &prefix, pub, &plain, opts);
    OPENSSL_cleanse(priv, sizeof(priv));
    buf_release(&prefix);
    buf_release(&plain);
    return rc;
}

int bm_obj_broadcast_tag(const struct bm_wire_object *o, uint8_t tag[BM_TAG_LEN])
{
    return obj_leading_tag(o, BM_WIRE_OBJ_BROADCAST, BM_OBJ_BROADCAST_VERSION, tag);
}

static int obj_broadcast_read(const buf_t *plain, struct bm_obj_broadcast *b, size_t *signed_len,
                              const uint8_t **sig, size_t *siglen)
{
    bm_reader_t r;
    int rc;

    bm_reader_init(&r, plain->data, plain->len);
    rc = obj_get_sender_versions(&r, &b->sender);
    if (rc == 0)
        rc = obj_get_keys(&r, &b->sender);
    if (rc != 0)
        return rc;
    if (bm_get_varint(&r, &b->encoding) != 0)
        return PST_EINVAL;
    rc = bm_get_varstr(&r, BM_OBJ_PLAIN_MAX, &b->message, &b->message_len);
    if (rc != 0)
        return rc;
    *signed_len = r.pos;
    if (bm_get_varstr(&r, OBJ_SIG_WIRE_MAX, sig, siglen) != 0)
        return PST_EINVAL;
    return 0;
}

/* obj_broadcast_check - the keys inside must be those of the tag and of `from`. */
static int obj_broadcast_check(const struct bm_wire_object *o, const bm_address_t *from,
                               const struct bm_obj_pubkey *s)
{
    bm_address_t calc = {.version = s->addr_version, .stream = s->stream};
    uint8_t tag[BM_TAG_LEN];
    int rc;

    if (s->stream != o->stream || s->addr_version < 4)
        return PST_EAUTH;
    memcpy(calc.ripe, s->ripe, BM_RIPE_LEN);
    rc = bm_address_tag(&calc, NULL, tag);
    if (rc != 0)
        return rc;
    if (memcmp(tag, o->payload, BM_TAG_LEN) != 0 || memcmp(s->ripe, from->ripe, BM_RIPE_LEN) != 0)
        return PST_EAUTH;
    return 0;
}

int bm_obj_broadcast_parse(const struct bm_wire_object *o, const bm_address_t *from, buf_t *plain,
                           struct bm_obj_broadcast *b)
{
    uint8_t priv[BM_PRIVKEY_LEN], tag[BM_TAG_LEN], got[BM_TAG_LEN];
    const uint8_t *prefix, *sig;
    size_t plen, signed_len, siglen;
    int rc;

    memset(b, 0, sizeof(*b));
    if (from->version != 4)
        return PST_EINVAL;
    rc = bm_obj_broadcast_tag(o, got);
    if (rc != 0)
        return rc;
    rc = obj_tag_keys(from, priv, tag, NULL);
    if (rc == 0 && memcmp(tag, got, BM_TAG_LEN) != 0)
        rc = PST_ENOENT;
    if (rc == 0)
        rc = obj_decrypt(priv, o->payload + BM_TAG_LEN, o->payload_len - BM_TAG_LEN, plain);
    OPENSSL_cleanse(priv, sizeof(priv));
    if (rc != 0)
        return rc;
    rc = obj_broadcast_read(plain, b, &signed_len, &sig, &siglen);
    if (rc == 0)
        rc = obj_broadcast_check(o, from, &b->sender);
    if (rc == 0)
        rc = obj_signed_prefix(o, BM_TAG_LEN, &prefix, &plen);
    if (rc == 0)
        rc = obj_verify(prefix, plen, obj_bytes(plain), signed_len, sig, siglen,
                        b->sender.pub_signing);
    return rc;
}

/* ---- message encodings ---- */

int bm_obj_text_encode(buf_t *out, uint64_t encoding, const uint8_t *subject, size_t subject_len,
                       const uint8_t *body, size_t body_len)
{
    int rc;

    if (encoding == BM_OBJ_ENC_TRIVIAL) {
        if (subject_len != 0)
            return PST_EINVAL;
        return bm_put_bytes(out, body, body_len);
    }
    if (encoding != BM_OBJ_ENC_SIMPLE)
        return PST_EINVAL;
    rc = bm_put_bytes(out, obj_subject_tag, strlen(obj_subject_tag));
    if (rc == 0 && subject_len > 0)
        rc = bm_put_bytes(out, subject, subject_len);
    if (rc == 0)
        rc = bm_put_bytes(out, obj_body_tag, strlen(obj_body_tag));
    if (rc == 0 && body_len > 0)
        rc = bm_put_bytes(out, body, body_len);
    return rc;
}

/* obj_first_line - length of s up to its first CR or LF (str.splitlines()[0]). */
static size_t obj_first_line(const uint8_t *s, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++)
        if (s[i] == '\r' || s[i] == '\n')
            break;
    return i;
}

int bm_obj_text_decode(uint64_t encoding, const uint8_t *msg, size_t len, struct bm_obj_text *t)
{
    size_t taglen = strlen(obj_body_tag), start, idx;
    const uint8_t *hit;

    memset(t, 0, sizeof(*t));
    if (encoding != BM_OBJ_ENC_TRIVIAL && encoding != BM_OBJ_ENC_SIMPLE)
        return PST_ENOENT;
    t->body = msg;
    t->body_len = len;
    if (encoding == BM_OBJ_ENC_TRIVIAL || len == 0)
        return 0;
    hit = memmem(msg, len, obj_body_tag, taglen);
    if (hit == NULL || hit - msg <= 1)
        return 0; /* the reference: no "\nBody:" past offset 1 -> all body */
    idx = (size_t)(hit - msg);
    start = strlen(obj_subject_tag) < idx ? strlen(obj_subject_tag) : idx;
    t->subject = msg + start;
    t->subject_len = idx - start;
    if (t->subject_len > BM_OBJ_SUBJECT_MAX)
        t->subject_len = BM_OBJ_SUBJECT_MAX;
    t->subject_len = obj_first_line(t->subject, t->subject_len);
    t->body = hit + taglen;
    t->body_len = len - idx - taglen;
    return 0;
}

/* ---- acks ---- */

void bm_obj_ackdata_make(uint64_t stream, const uint8_t rnd[BM_OBJ_ACK_RANDOM_LEN],
                         struct bm_obj_ackdata *a)
{
    size_t n = 0;

    bm_be32_store(a->data, BM_WIRE_OBJ_MSG);
    n += 4;
    n += bm_varint_encode(BM_OBJ_MSG_VERSION, a->data + n);
    n += bm_varint_encode(stream, a->data + n);
    memcpy(a->data + n, rnd, BM_OBJ_ACK_RANDOM_LEN);
    a->len = n + BM_OBJ_ACK_RANDOM_LEN;
}

int bm_obj_ackdata_new(uint64_t stream, struct bm_obj_ackdata *a)
{
    uint8_t rnd[BM_OBJ_ACK_RANDOM_LEN];

    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return PST_EIO;
    bm_obj_ackdata_make(stream, rnd, a);
    return 0;
}

uint64_t bm_obj_ack_ttl(uint64_t msg_ttl)
{
    const uint64_t day = 24 * 60 * 60;

    if (msg_ttl < day)
        return day;
    if (msg_ttl < 7 * day)
        return 7 * day;
    return 28 * day;
}

int bm_obj_ack_build(buf_t *out, uint64_t expires, const struct bm_obj_ackdata *a)
{
    int rc;

    if (a->len > BM_OBJ_ACKDATA_MAX)
        return PST_EINVAL;
    rc = bm_put_u64(out, expires);
    if (rc == 0)
        rc = bm_put_bytes(out, a->data, a->len);
    return rc;
}

int bm_obj_ack_packet(buf_t *out, const uint8_t *object, size_t len)
{
    return bm_wire_packet_build(out, "object", object, len);
}

int bm_obj_ack_unwrap(const uint8_t *ack, size_t len, struct bm_wire_object *o)
{
    struct bm_wire_packet pkt;
    size_t consumed = 0;
    int rc;

    rc = bm_wire_frame(ack, len, &pkt, &consumed);
    if (rc != 0 || consumed != len || consumed == 0 || pkt.cmd != BM_WIRE_CMD_OBJECT)
        return PST_EINVAL;
    return bm_wire_object_parse(pkt.payload, pkt.payload_len, o);
}

bool bm_obj_ack_matches(const struct bm_wire_object *o, const struct bm_obj_ackdata *a)
{
    if (o->data_len < 32 || o->data_len - BM_OBJ_ACK_OFFSET != a->len)
        return false;
    return memcmp(o->data + BM_OBJ_ACK_OFFSET, a->data, a->len) == 0;
}

/* ---- proof of work ---- */

int bm_obj_with_nonce(buf_t *out, uint64_t nonce, const uint8_t *body, size_t len)
{
    int rc = bm_put_u64(out, nonce);
    if (rc == 0)
        rc = bm_put_bytes(out, body, len);
    return rc;
}

int bm_obj_seal(struct bm_pow_search *s, const uint8_t *body, size_t len, int64_t now,
                const struct bm_pow_params *params, buf_t *out)
{
    uint64_t expires, nonce = 0;
    int rc;

    if (len < 8 || now < 0)
        return PST_EINVAL;
    expires = bm_be64_load(body);
    if (expires <= (uint64_t)now)
        return PST_EINVAL;
    rc = bm_pow_solve(s, body, len, expires - (uint64_t)now, params, &nonce);
    if (rc != 0)
        return rc;
    return bm_obj_with_nonce(out, nonce, body, len);
}
