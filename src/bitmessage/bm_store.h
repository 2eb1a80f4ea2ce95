/*
 * bm_store.h - the Bitmessage node's persistent state in the SQLite state
 * database (src/lib/db.h, migration 2): object inventory, our keys, a cache
 * of other people's pubkeys, the outbox (kept on disk until acknowledged or
 * failed, so it survives restarts) and the inbox awaiting Maildir delivery.
 *
 * Tables (all prefixed bm_): bm_inventory, bm_keys, bm_pubkeys, bm_outbox,
 * bm_inbox; the columns are written down in src/lib/db.c, migration 2.
 *
 * Every text and blob is checked against the BM_STORE_* limits below before
 * it is bound (PST_ELIMIT if too long, PST_EINVAL for a wrong fixed length
 * or a NULL that is not allowed). Private keys are stored at rest in the
 * state database (mode 0600, see db.c) and are never logged.
 *
 * List functions first collect the matching keys, then call the callback
 * once per row, so a callback may itself call bm_store functions (for
 * example to move an outbox message on). A non-zero callback result stops
 * the walk and is returned.
 *
 * A struct bm_store is used by one thread at a time (like struct db).
 */
#ifndef POSTERN_BM_STORE_H
#define POSTERN_BM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/db.h"
#include "lib/err.h"

/* Fixed sizes (Bitmessage protocol version 3). */
#define BM_STORE_HASH_LEN 32    /* inventory vector: first 32 bytes of double SHA-512 */
#define BM_STORE_TAG_LEN 32     /* v4 address tag */
#define BM_STORE_RIPE_LEN 20    /* RIPEMD-160 of the public keys */
#define BM_STORE_PRIVKEY_LEN 32 /* secp256k1 private key */
#define BM_STORE_PUBKEY_LEN 64  /* secp256k1 point X||Y without the 0x04 prefix */
#define BM_STORE_ACKDATA_LEN 32 /* random ackdata the recipient echoes back */

/* Variable sizes. */
#define BM_STORE_OBJECT_MAX (1u << 18) /* protocol.py MAX_OBJECT_PAYLOAD_SIZE (2^18) */
#define BM_STORE_ADDR_MAX 64           /* "BM-" + base58; real ones are ~36-38 chars */
#define BM_STORE_LABEL_MAX 256
#define BM_STORE_SUBJECT_MAX 4096
#define BM_STORE_BODY_MAX (1u << 18) /* cannot exceed one object anyway */

/*
 * Time rules, as the reference client (PyBitmessage) applies them:
 * expired inventory is kept BM_STORE_PURGE_GRACE seconds past its expiry
 * (src/storage/sqlite.py clean(): DELETE ... WHERE expirestime < now - 3 h);
 * resending a message doubles its TTL up to BM_STORE_TTL_MAX
 * (class_singleWorker.py: TTL * 2^retries, capped at 28 days).
 */
#define BM_STORE_PURGE_GRACE (3 * 3600)
#define BM_STORE_TTL_MIN 300
#define BM_STORE_TTL_MAX (28 * 24 * 3600)

struct bm_store;

/* bm_store_open - open (creating and migrating) the state database at path. Caller frees with
 * bm_store_close(). */
PST_MUST_CHECK int bm_store_open(const char *path, struct bm_store **out);

/* bm_store_close - close and free, *st = NULL. Accepts NULL. */
void bm_store_close(struct bm_store **st);

/* bm_store_db - the underlying database (borrowed). */
struct db *bm_store_db(struct bm_store *st);

/* ---- inventory ---------------------------------------------------------- */

struct bm_store_object {
    uint8_t hash[BM_STORE_HASH_LEN];
    uint32_t type;
    uint64_t stream;
    int64_t expires;
    bool has_tag;
    uint8_t tag[BM_STORE_TAG_LEN];
    uint8_t *payload; /* whole object, nonce included; owned, freed by bm_store_object_free() */
    size_t payload_len;
    int64_t received;
};

/*
 * bm_store_inv_put - store an object (fields borrowed; payload copied). A
 * duplicate hash is ignored: *is_new (may be NULL) says whether it was added.
 * PST_EINVAL for an empty payload, PST_ELIMIT above BM_STORE_OBJECT_MAX.
 */
PST_MUST_CHECK int bm_store_inv_put(struct bm_store *st, const struct bm_store_object *obj,
                                    bool *is_new);

/* bm_store_inv_get - fill *out (caller frees with bm_store_object_free()); PST_ENOENT if absent. */
PST_MUST_CHECK int bm_store_inv_get(struct bm_store *st, const uint8_t hash[BM_STORE_HASH_LEN],
                                    struct bm_store_object *out);

/* bm_store_object_free - free out->payload and zero the struct. Accepts NULL. */
void bm_store_object_free(struct bm_store_object *obj);

/* bm_store_inv_exists - *out = whether hash is in the inventory. */
PST_MUST_CHECK int bm_store_inv_exists(struct bm_store *st, const uint8_t hash[BM_STORE_HASH_LEN],
                                       bool *out);

typedef int (*bm_store_hash_cb)(const uint8_t hash[BM_STORE_HASH_LEN], void *arg);

/* bm_store_inv_hashes - call cb for every object of stream with expires > now (for inv
 * announcements), in no particular order. */
PST_MUST_CHECK int bm_store_inv_hashes(struct bm_store *st, uint64_t stream, int64_t now,
                                       bm_store_hash_cb cb, void *arg);

/* bm_store_inv_purge - delete objects with expires < now - BM_STORE_PURGE_GRACE; *removed (may be
 * NULL) gets the number deleted. */
PST_MUST_CHECK int bm_store_inv_purge(struct bm_store *st, int64_t now, uint64_t *removed);

/* bm_store_inv_stats - number of objects and total payload bytes (either may be NULL). */
PST_MUST_CHECK int bm_store_inv_stats(struct bm_store *st, uint64_t *count, uint64_t *bytes);

typedef int (*bm_store_object_cb)(const struct bm_store_object *obj, void *arg);

/*
 * bm_store_inv_by_tag - call cb for every object of type whose tag is tag and
 * expires > now, latest expiry first (the engine looks for v4 pubkey objects
 * of an address this way: PyBitmessage's Inventory.by_type_and_tag). The
 * struct passed (payload included) is freed after each call.
 */
PST_MUST_CHECK int bm_store_inv_by_tag(struct bm_store *st, uint32_t type,
                                       const uint8_t tag[BM_STORE_TAG_LEN], int64_t now,
                                       bm_store_object_cb cb, void *arg);

/* ---- our keys ----------------------------------------------------------- */

struct bm_store_key {
    char address[BM_STORE_ADDR_MAX + 1];
    char label[BM_STORE_LABEL_MAX + 1];
    uint32_t version;
    uint64_t stream;
    uint8_t ripe[BM_STORE_RIPE_LEN];
    uint8_t tag[BM_STORE_TAG_LEN];
    uint8_t signing_priv[BM_STORE_PRIVKEY_LEN];
    uint8_t encryption_priv[BM_STORE_PRIVKEY_LEN];
    bool deterministic;
    int64_t created;
};

/* bm_store_key_add - add one of our addresses; PST_EEXIST if the address is already there,
 * PST_EINVAL for an empty or non-terminated address/label. */
PST_MUST_CHECK int bm_store_key_add(struct bm_store *st, const struct bm_store_key *key);

/* bm_store_key_clear - wipe a key struct (private keys included). Accepts NULL. */
void bm_store_key_clear(struct bm_store_key *key);

typedef int (*bm_store_key_cb)(const struct bm_store_key *key, void *arg);

/* bm_store_key_list - call cb for every key (ordered by address); the struct passed is wiped
 * after each call. */
PST_MUST_CHECK int bm_store_key_list(struct bm_store *st, bm_store_key_cb cb, void *arg);

/* bm_store_key_by_addr - fill *out (wipe with bm_store_key_clear()); PST_ENOENT. */
PST_MUST_CHECK int bm_store_key_by_addr(struct bm_store *st, const char *address,
                                        struct bm_store_key *out);

/* bm_store_key_by_ripe / _by_tag - fill *out (wipe with bm_store_key_clear()); PST_ENOENT. */
PST_MUST_CHECK int bm_store_key_by_ripe(struct bm_store *st, const uint8_t ripe[BM_STORE_RIPE_LEN],
                                        struct bm_store_key *out);
PST_MUST_CHECK int bm_store_key_by_tag(struct bm_store *st, const uint8_t tag[BM_STORE_TAG_LEN],
                                       struct bm_store_key *out);

/* ---- others' pubkeys ---------------------------------------------------- */

struct bm_store_pubkey {
    char address[BM_STORE_ADDR_MAX + 1];
    uint8_t ripe[BM_STORE_RIPE_LEN];
    bool has_tag; /* v4 pubkeys */
    uint8_t tag[BM_STORE_TAG_LEN];
    uint8_t signing_pub[BM_STORE_PUBKEY_LEN];
    uint8_t encryption_pub[BM_STORE_PUBKEY_LEN];
    uint64_t nonce_trials;
    uint64_t extra_bytes;
    uint32_t behavior;
    int64_t last_seen;
};

/* bm_store_pubkey_put - insert or replace the pubkey cached for pk->address. */
PST_MUST_CHECK int bm_store_pubkey_put(struct bm_store *st, const struct bm_store_pubkey *pk);

/* bm_store_pubkey_by_addr / _by_ripe / _by_tag - fill *out; PST_ENOENT if absent. */
PST_MUST_CHECK int bm_store_pubkey_by_addr(struct bm_store *st, const char *address,
                                           struct bm_store_pubkey *out);
PST_MUST_CHECK int bm_store_pubkey_by_ripe(struct bm_store *st,
                                           const uint8_t ripe[BM_STORE_RIPE_LEN],
                                           struct bm_store_pubkey *out);
PST_MUST_CHECK int bm_store_pubkey_by_tag(struct bm_store *st, const uint8_t tag[BM_STORE_TAG_LEN],
                                          struct bm_store_pubkey *out);

/* ---- outbox ------------------------------------------------------------- */

/*
 * Outbox states and the only allowed transitions (bm_store.c, bm_outbox_moves):
 *   awaitingpubkey -> doingpow         pubkey arrived
 *   doingpow       -> sent             object made and announced (attempts + 1)
 *   sent           -> acked            ack object received
 *   sent           -> doingpow         no ack in time: resend, TTL doubled (max 28 d)
 *   awaitingpubkey, doingpow, sent -> failed
 * acked and failed are final.
 */
enum bm_outbox_state {
    BM_OUTBOX_AWAITINGPUBKEY = 0,
    BM_OUTBOX_DOINGPOW,
    BM_OUTBOX_SENT,
    BM_OUTBOX_ACKED,
    BM_OUTBOX_FAILED,
};
#define BM_OUTBOX_NSTATES 5

/* bm_outbox_state_name - "awaitingpubkey" ...; "?" for an unknown value. Static. */
const char *bm_outbox_state_name(enum bm_outbox_state s);

/* bm_outbox_can_move - whether from -> to is an allowed transition. */
bool bm_outbox_can_move(enum bm_outbox_state from, enum bm_outbox_state to);

struct bm_store_outmsg {
    int64_t msgid;
    char from_addr[BM_STORE_ADDR_MAX + 1];
    char to_addr[BM_STORE_ADDR_MAX + 1];
    char *subject; /* owned, NUL-terminated (may hold NULs: use subject_len) */
    size_t subject_len;
    char *body; /* owned, NUL-terminated (may hold NULs: use body_len) */
    size_t body_len;
    uint8_t ackdata[BM_STORE_ACKDATA_LEN];
    enum bm_outbox_state state;
    int64_t ttl;
    uint32_t attempts;
    int64_t next_attempt;
    bool has_inventory_hash;
    uint8_t inventory_hash[BM_STORE_HASH_LEN];
    int64_t created;
    int64_t updated;
};

/* bm_store_outmsg_free - free subject and body and zero the struct. Accepts NULL. */
void bm_store_outmsg_free(struct bm_store_outmsg *m);

/*
 * bm_store_outbox_add - queue a message in state awaitingpubkey, due at now
 * (strings borrowed and copied). ttl must be BM_STORE_TTL_MIN..BM_STORE_TTL_MAX.
 * *msgid gets the new id. PST_EEXIST if the ackdata is already used.
 */
PST_MUST_CHECK int bm_store_outbox_add(struct bm_store *st, const char *from_addr,
                                       const char *to_addr, const char *subject, size_t subject_len,
                                       const char *body, size_t body_len,
                                       const uint8_t ackdata[BM_STORE_ACKDATA_LEN], int64_t ttl,
                                       int64_t now, int64_t *msgid);

/*
 * bm_store_outbox_move - move msgid to state to, if the table allows it from
 * its current state (PST_EPERM otherwise, PST_ENOENT if no such message).
 * next_attempt: when list_due should return it next. inv_hash (may be NULL)
 * is recorded when moving to sent. Done in one transaction.
 */
PST_MUST_CHECK int bm_store_outbox_move(struct bm_store *st, int64_t msgid, enum bm_outbox_state to,
                                        int64_t now, int64_t next_attempt,
                                        const uint8_t inv_hash[BM_STORE_HASH_LEN]);

/*
 * bm_store_outbox_reschedule - set msgid's next_attempt without a state change
 * (a getpubkey asked again, a PoW to retry later). PST_ENOENT if no such
 * message, PST_EPERM if it is acked or failed.
 */
PST_MUST_CHECK int bm_store_outbox_reschedule(struct bm_store *st, int64_t msgid, int64_t now,
                                              int64_t next_attempt);

/* bm_store_outbox_get - fill *out (free with bm_store_outmsg_free()); PST_ENOENT. */
PST_MUST_CHECK int bm_store_outbox_get(struct bm_store *st, int64_t msgid,
                                       struct bm_store_outmsg *out);

/* bm_store_outbox_by_ackdata - the message whose ackdata this is; PST_ENOENT. */
PST_MUST_CHECK int bm_store_outbox_by_ackdata(struct bm_store *st,
                                              const uint8_t ackdata[BM_STORE_ACKDATA_LEN],
                                              struct bm_store_outmsg *out);

typedef int (*bm_store_outmsg_cb)(const struct bm_store_outmsg *m, void *arg);

/* bm_store_outbox_due - call cb for each message in state with next_attempt <= now, oldest
 * first (the struct is freed after each call). */
PST_MUST_CHECK int bm_store_outbox_due(struct bm_store *st, enum bm_outbox_state state, int64_t now,
                                       bm_store_outmsg_cb cb, void *arg);

/* ---- inbox -------------------------------------------------------------- */

struct bm_store_inmsg {
    int64_t id;
    uint8_t msgid_hash[BM_STORE_HASH_LEN]; /* inventory hash of the msg object */
    char to_addr[BM_STORE_ADDR_MAX + 1];
    char from_addr[BM_STORE_ADDR_MAX + 1];
    char *subject; /* owned, NUL-terminated; subject_len bytes */
    size_t subject_len;
    char *body; /* owned, NUL-terminated; body_len bytes */
    size_t body_len;
    uint32_t encoding;
    int64_t received;
    bool delivered;
};

/* bm_store_inmsg_free - free subject and body and zero the struct. Accepts NULL. */
void bm_store_inmsg_free(struct bm_store_inmsg *m);

/*
 * bm_store_inbox_put - store a received message (m borrowed; id and
 * delivered ignored). A msgid_hash already stored is ignored: *is_new (may
 * be NULL) says which; *id (may be NULL) gets the row id (of the old row for
 * a duplicate).
 */
PST_MUST_CHECK int bm_store_inbox_put(struct bm_store *st, const struct bm_store_inmsg *m,
                                      bool *is_new, int64_t *id);

typedef int (*bm_store_inmsg_cb)(const struct bm_store_inmsg *m, void *arg);

/* bm_store_inbox_undelivered - call cb for each message not yet in a Maildir, oldest first. */
PST_MUST_CHECK int bm_store_inbox_undelivered(struct bm_store *st, bm_store_inmsg_cb cb, void *arg);

/* bm_store_inbox_mark_delivered - PST_ENOENT if no such id. */
PST_MUST_CHECK int bm_store_inbox_mark_delivered(struct bm_store *st, int64_t id);

#endif
