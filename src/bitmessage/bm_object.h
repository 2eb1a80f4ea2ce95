/*
 * bm_object.h - Bitmessage protocol v3 object payloads: getpubkey (v3/v4),
 * pubkey v4, msg v1, broadcast v5, acknowledgements, and the two message
 * encodings a mail gateway needs (1 trivial, 2 simple).
 *
 * Formats as the reference client PyBitmessage builds and reads them
 * (src/class_singleWorker.py sendMsg, doPOWForMyV4Pubkey, sendBroadcast,
 * requestPubKey, generateFullAckMessage; src/class_objectProcessor.py
 * processmsg, processpubkey, processgetpubkey, processbroadcast,
 * checkackdata; src/protocol.py decryptAndCheckPubkeyPayload;
 * src/helper_ackPayload.py; src/helper_msgcoding.py). "header" below is the
 * object header without the nonce: expires (u64) || type (u32) ||
 * var_int version || var_int stream.
 *
 *   getpubkey v4   payload = tag (32)            (v3 and older: ripe (20))
 *   pubkey v4      payload = tag || ECIES(K_tag, bitfield u32 || sign pub 64
 *                  || enc pub 64 || var_int trials || var_int extra ||
 *                  var_int siglen || sig); sig over header || tag || the
 *                  plaintext before siglen; K_tag = bm_address_tag() key.
 *   msg v1         payload = ECIES(recipient enc key, var_int sender version
 *                  || var_int sender stream || bitfield || sign pub 64 ||
 *                  enc pub 64 || (version >= 3: var_int trials || var_int
 *                  extra) || dest ripe 20 || var_int encoding || var_str
 *                  message || var_str ack || var_int siglen || sig); sig over
 *                  header || the plaintext before siglen.
 *   broadcast v5   payload = tag || ECIES(K_tag, as msg but without dest
 *                  ripe and ack); sig over header || tag || plaintext before
 *                  siglen.
 *   ack            the ack field of a msg is a whole "object" packet (24-byte
 *                  packet header + nonce + expires + ackdata) with its own
 *                  PoW; ackdata = type 2 (u32) || var_int 1 || var_int stream
 *                  || 32 random bytes. The recipient sends it out unchanged;
 *                  the sender recognises it when an object's bytes from
 *                  offset 16 on (after nonce and expires) equal its ackdata.
 *
 * Builders append an object WITHOUT its nonce (header + payload: what the
 * PoW is computed over) to a buf_t; bm_obj_seal() does the PoW and writes
 * nonce || object. Parsers take an object already cut by
 * bm_wire_object_parse() and decrypt into a caller's buf_t; the views they
 * return point into that buf_t (valid until it changes).
 *
 * Failure policy: every function returns 0 or a negative PST_E* code and
 * never logs. Parsers: PST_ENOENT = not for us (tag differs, or our key's
 * MAC does not match: the normal case for other people's objects);
 * PST_EINVAL = malformed; PST_EAUTH = decrypted but the signature, the
 * ripe/tag of the embedded keys or the destination ripe does not match
 * (forged or tampered); PST_ELIMIT = over a limit. Signatures are ECDSA
 * over SHA-256 (SHA-1 still accepted, as the reference does).
 */
#ifndef POSTERN_BM_OBJECT_H
#define POSTERN_BM_OBJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bitmessage/bm_address.h"
#include "bitmessage/bm_crypto.h"
#include "bitmessage/bm_encode.h"
#include "bitmessage/bm_pow.h"
#include "bitmessage/bm_wire.h"
#include "lib/buf.h"
#include "lib/err.h"

/* Behaviour bitfield (protocol.py): the sender sends acks. */
#define BM_OBJ_BITFIELD_DOESACK 1u
/* "include destination" bit (protocol.py BITFIELD_INCLUDE_DESTINATION). */
#define BM_OBJ_BITFIELD_INCLUDE_DESTINATION 2u

#define BM_OBJ_PUBKEY_VERSION 4u
#define BM_OBJ_MSG_VERSION 1u
#define BM_OBJ_BROADCAST_VERSION 5u
#define BM_OBJ_KEY_XY_LEN 64 /* public key on the wire: X || Y, no 0x04 */

/* Message encodings (helper_msgcoding.py). */
#define BM_OBJ_ENC_IGNORE 0u
#define BM_OBJ_ENC_TRIVIAL 1u
#define BM_OBJ_ENC_SIMPLE 2u
#define BM_OBJ_ENC_EXTENDED 3u
/* decodeSimple keeps at most this many subject bytes. */
#define BM_OBJ_SUBJECT_MAX 500

/* Acks. */
#define BM_OBJ_ACK_RANDOM_LEN 32
#define BM_OBJ_ACKDATA_MAX (4 + BM_VARINT_MAX_LEN + BM_VARINT_MAX_LEN + BM_OBJ_ACK_RANDOM_LEN)
#define BM_OBJ_ACK_OFFSET 16 /* ackdata starts after nonce and expires */

/* Decrypted objects never exceed this (an object payload is at most 2^18). */
#define BM_OBJ_PLAIN_MAX BM_WIRE_MAX_OBJECT_PAYLOAD

/* The public half of an identity, as pubkey, msg and broadcast carry it. */
struct bm_obj_pubkey {
    uint64_t addr_version; /* msg/broadcast: the sender's; pubkey: the object's */
    uint64_t stream;
    uint32_t behavior;
    uint8_t pub_signing[BM_PUBKEY_LEN];    /* 0x04 || X || Y */
    uint8_t pub_encryption[BM_PUBKEY_LEN]; /* 0x04 || X || Y */
    uint64_t nonce_trials;                 /* demanded PoW; 0 when version < 3 */
    uint64_t extra_bytes;
    uint8_t ripe[BM_RIPE_LEN]; /* computed from the two keys */
};

/* Known-answer tests only: fixed ECIES ephemeral key and IV (see bm_ecies_encrypt_fixed). */
struct bm_obj_fixed {
    const bm_key_t *ephemeral;
    const uint8_t *iv; /* BM_ECIES_IV_LEN bytes */
};

/* What a sender advertises about itself: behaviour bits and demanded PoW. */
struct bm_obj_sender_opts {
    uint32_t behavior;                /* usually BM_OBJ_BITFIELD_DOESACK */
    uint64_t nonce_trials;            /* 0 = BM_POW_NONCE_TRIALS_DEFAULT */
    uint64_t extra_bytes;             /* 0 = BM_POW_EXTRA_BYTES_DEFAULT */
    const struct bm_obj_fixed *fixed; /* NULL = random ephemeral key and IV */
};

/* ---- getpubkey ---- */

struct bm_obj_getpubkey {
    uint64_t addr_version; /* the object's version */
    uint64_t stream;
    bool has_tag;              /* version >= 4 */
    uint8_t ripe[BM_RIPE_LEN]; /* version 2, 3 */
    uint8_t tag[BM_TAG_LEN];   /* version 4 */
};

/* bm_obj_getpubkey_build - request the pubkey of addr (v4: by tag; v3: by ripe). */
PST_MUST_CHECK int bm_obj_getpubkey_build(buf_t *out, uint64_t expires, const bm_address_t *addr);
/* bm_obj_getpubkey_parse - version 2..4 (others PST_EINVAL). Trailing bytes are
 * ignored, as the reference does. */
PST_MUST_CHECK int bm_obj_getpubkey_parse(const struct bm_wire_object *o,
                                          struct bm_obj_getpubkey *g);

/* ---- pubkey v4 ---- */

/* bm_obj_pubkey_build - the v4 pubkey object of id (a v4 address). */
PST_MUST_CHECK int bm_obj_pubkey_build(buf_t *out, uint64_t expires, const bm_keys_t *id,
                                       const struct bm_obj_sender_opts *opts);
/* bm_obj_pubkey_tag - the tag of a v4 pubkey object (PST_EINVAL if it is none). */
PST_MUST_CHECK int bm_obj_pubkey_tag(const struct bm_wire_object *o, uint8_t tag[BM_TAG_LEN]);
/* bm_obj_pubkey_parse - open the pubkey of addr: PST_ENOENT if the tag is not addr's,
 * PST_EAUTH if the signature or the ripe of the keys does not match addr. plain
 * (scratch, caller's) is reset and receives the plaintext. */
PST_MUST_CHECK int bm_obj_pubkey_parse(const struct bm_wire_object *o, const bm_address_t *addr,
                                       buf_t *plain, struct bm_obj_pubkey *pk);

/* ---- msg v1 ---- */

struct bm_obj_msg {
    struct bm_obj_pubkey sender;
    uint8_t dest_ripe[BM_RIPE_LEN];
    uint64_t encoding;
    const uint8_t *message; /* view into plain; untrusted bytes */
    size_t message_len;
    const uint8_t *ack; /* view into plain: a whole "object" packet, or empty */
    size_t ack_len;
};

/* bm_obj_msg_build - msg from `from` to the holder of dest_pub_enc (65 bytes) whose ripe
 * is dest_ripe, in stream; ack (may be empty) is the full ack packet. */
PST_MUST_CHECK int bm_obj_msg_build(buf_t *out, uint64_t expires, uint64_t stream,
                                    const bm_keys_t *from, const struct bm_obj_sender_opts *opts,
                                    const uint8_t dest_ripe[BM_RIPE_LEN],
                                    const uint8_t dest_pub_enc[BM_PUBKEY_LEN], uint64_t encoding,
                                    const uint8_t *message, size_t message_len, const uint8_t *ack,
                                    size_t ack_len);
/* bm_obj_msg_parse - decrypt with me's encryption key (PST_ENOENT if not for us), parse,
 * verify the signature, check the destination ripe is me's (PST_EAUTH otherwise). */
PST_MUST_CHECK int bm_obj_msg_parse(const struct bm_wire_object *o, const bm_keys_t *me,
                                    buf_t *plain, struct bm_obj_msg *m);

/* ---- broadcast v5 ---- */

struct bm_obj_broadcast {
    struct bm_obj_pubkey sender;
    uint64_t encoding;
    const uint8_t *message; /* view into plain */
    size_t message_len;
};

/* bm_obj_broadcast_build - v5 broadcast from `from` (a v4 address). */
PST_MUST_CHECK int bm_obj_broadcast_build(buf_t *out, uint64_t expires, const bm_keys_t *from,
                                          const struct bm_obj_sender_opts *opts, uint64_t encoding,
                                          const uint8_t *message, size_t message_len);
/* bm_obj_broadcast_tag - the tag of a v5 broadcast (PST_EINVAL if it is none). */
PST_MUST_CHECK int bm_obj_broadcast_tag(const struct bm_wire_object *o, uint8_t tag[BM_TAG_LEN]);
/* bm_obj_broadcast_parse - open a v5 broadcast of the subscribed address `from`
 * (PST_ENOENT if the tag is another's; PST_EAUTH if the keys or signature fail). */
PST_MUST_CHECK int bm_obj_broadcast_parse(const struct bm_wire_object *o, const bm_address_t *from,
                                          buf_t *plain, struct bm_obj_broadcast *b);

/* ---- message encodings ---- */

struct bm_obj_text {
    const uint8_t *subject; /* views into the message; not NUL-terminated */
    size_t subject_len;
    const uint8_t *body;
    size_t body_len;
};

/* bm_obj_text_encode - SIMPLE: "Subject:" subject "\nBody:" body; TRIVIAL: body only
 * (subject must be empty). Other encodings: PST_EINVAL. */
PST_MUST_CHECK int bm_obj_text_encode(buf_t *out, uint64_t encoding, const uint8_t *subject,
                                      size_t subject_len, const uint8_t *body, size_t body_len);
/* bm_obj_text_decode - as decodeSimple / TRIVIAL in the reference (subject: first line,
 * at most BM_OBJ_SUBJECT_MAX bytes). PST_ENOENT for IGNORE, EXTENDED (msgpack, not
 * supported) and unknown encodings: the caller flags or drops the message. */
PST_MUST_CHECK int bm_obj_text_decode(uint64_t encoding, const uint8_t *msg, size_t len,
                                      struct bm_obj_text *t);

/* ---- acks ---- */

struct bm_obj_ackdata {
    uint8_t data[BM_OBJ_ACKDATA_MAX]; /* type || var_int version || var_int stream || random */
    size_t len;
};

/* bm_obj_ackdata_make - ackdata for stream with the given 32 random bytes (genAckPayload
 * stealth level 0: type 2, version 1). */
void bm_obj_ackdata_make(uint64_t stream, const uint8_t rnd[BM_OBJ_ACK_RANDOM_LEN],
                         struct bm_obj_ackdata *a);
/* bm_obj_ackdata_new - as bm_obj_ackdata_make with fresh random bytes. PST_EIO if the RNG fails. */
PST_MUST_CHECK int bm_obj_ackdata_new(uint64_t stream, struct bm_obj_ackdata *a);
/* bm_obj_ack_ttl - the reference's TTL bucket for an ack of a msg kept msg_ttl seconds
 * (1 day, 7 days or 28 days; the caller may add the reference's +-300 s jitter). */
uint64_t bm_obj_ack_ttl(uint64_t msg_ttl);
/* bm_obj_ack_build - the ack object without nonce: expires || ackdata. */
PST_MUST_CHECK int bm_obj_ack_build(buf_t *out, uint64_t expires, const struct bm_obj_ackdata *a);
/* bm_obj_ack_packet - wrap a whole object (nonce included) in an "object" packet: the
 * bytes that go into a msg's ack field. */
PST_MUST_CHECK int bm_obj_ack_packet(buf_t *out, const uint8_t *object, size_t len);
/* bm_obj_ack_unwrap - the object inside a received msg's ack field: exactly one "object"
 * packet with a good checksum. *o views into ack. PST_EINVAL otherwise. */
PST_MUST_CHECK int bm_obj_ack_unwrap(const uint8_t *ack, size_t len, struct bm_wire_object *o);
/* bm_obj_ack_matches - true if object o is the ack carrying a (checkackdata). */
bool bm_obj_ack_matches(const struct bm_wire_object *o, const struct bm_obj_ackdata *a);

/* ---- proof of work ---- */

/* bm_obj_with_nonce - append nonce || body (no PoW check: tests, or a known nonce). */
PST_MUST_CHECK int bm_obj_with_nonce(buf_t *out, uint64_t nonce, const uint8_t *body, size_t len);
/* bm_obj_seal - do the PoW on body (object without nonce, expires > now) for
 * TTL = expires - now and params (NULL = network defaults), then append
 * nonce || body. Errors as bm_pow_solve; PST_EINVAL if body is too short or expired. */
PST_MUST_CHECK int bm_obj_seal(struct bm_pow_search *s, const uint8_t *body, size_t len,
                               int64_t now, const struct bm_pow_params *params, buf_t *out);

#endif
