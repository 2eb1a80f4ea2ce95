/*
 * bm_engine.h - the Bitmessage mail workflow of one node: sending messages
 * from the outbox and receiving messages for our keys, as the reference
 * client (PyBitmessage: class_singleWorker.py, class_objectProcessor.py,
 * class_cleanerThread.py) does it.
 *
 * Sending (outbox in bm_store, a persistent state machine, so every step
 * survives a restart; a message is on disk until acked or failed):
 *   awaitingpubkey  the recipient's pubkey is looked up in the pubkey cache,
 *                   then among the pubkey objects of the inventory (v4: by
 *                   tag); if absent a getpubkey is published (PoW) and asked
 *                   again when it expires (TTL 2.5 days doubling, as the
 *                   reference; engine config getpubkey_ttl).
 *   doingpow        msg encrypted to the recipient, signed, with an ack
 *                   (its own PoW) inside; PoW at the recipient's demanded
 *                   difficulty (never below the network minimums);
 *                   published through ops->publish.
 *   sent            waiting for the ack; when none came by expiry + 10 %,
 *                   sent again with the TTL doubled (max 28 days); after
 *                   max_attempts sends the message fails.
 *   acked / failed  final; hooks->on_acked / on_failed are called.
 *
 * Receiving (bm_engine_on_object, for every new valid object):
 *   getpubkey  for one of our keys: publish our pubkey (at most once per
 *              pubkey_resend seconds per key).
 *   pubkey     wanted by an outbox message: opened, verified, cached; the
 *              message moves to doingpow.
 *   msg        an ack for one of our sent messages -> acked; otherwise
 *              every key of ours is tried; one that decrypts it gets it
 *              verified (signature, destination ripe), stored in the inbox
 *              (deduplicated by inventory hash) and its ack published.
 *   broadcast  ignored (no subscriptions yet).
 *
 * PoW runs on one background thread (bm_pow_search on every core, or
 * pow_threads); one job at a time; its result comes back to the event loop,
 * which alone touches the store. bm_engine_free() cancels a running search.
 */
#ifndef POSTERN_BM_ENGINE_H
#define POSTERN_BM_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "bitmessage/bm_store.h"
#include "lib/err.h"

struct bm_engine_config {
    int64_t msg_ttl;           /* first send; default 4 days (reference default) */
    int64_t getpubkey_ttl;     /* default 2.5 days */
    int64_t pubkey_ttl;        /* our pubkey objects; default 28 days */
    int64_t pubkey_resend;     /* min seconds between our pubkeys for one key; default 1 h */
    unsigned max_attempts;     /* sends of one msg before failed; default 8 */
    unsigned pow_threads;      /* 0 = every core */
    uint64_t nonce_trials;     /* demanded from senders to our keys; >= 1000, default 1000 */
    uint64_t extra_bytes;      /* idem; >= 1000, default 1000 */
    unsigned tick_interval_ms; /* outbox scan period; default 5000 */
    /* Added with bm_engine.c: */
    uint64_t max_nonce_trials; /* a recipient demanding more fails the message; 0 = no limit;
                                  default 20000 (20 x the network minimum) */
    uint64_t max_extra_bytes;  /* idem; default 20000 */
    bool announce_pubkeys;     /* publish each v4 key's pubkey when none of ours is fresh in
                                  the inventory (see bm_engine.c); default true */
};

/* bm_engine_config_defaults - fill c with the defaults above. */
void bm_engine_config_defaults(struct bm_engine_config *c);

struct bm_engine_ops {
    /* publish - put an object we made (nonce included; borrowed) into the
     * network (bm_node_publish). 0 or a negative PST_E* code. */
    int (*publish)(void *ctx, const uint8_t *obj, size_t len, uint8_t hash[BM_STORE_HASH_LEN]);
    /* All optional (NULL): */
    /* on_received - a new message was stored in the inbox (id = bm_store_inmsg.id). */
    void (*on_received)(void *ctx, int64_t inbox_id);
    /* on_sent / on_acked / on_failed - outbox message msgid changed state. */
    void (*on_sent)(void *ctx, int64_t msgid);
    void (*on_acked)(void *ctx, int64_t msgid);
    void (*on_failed)(void *ctx, int64_t msgid, const char *why);
};

typedef struct bm_engine bm_engine_t;

/* bm_engine_new - an engine on base using st (borrowed, outlives the engine), cfg
 * (copied), ops (borrowed, outlives the engine). Starts its PoW thread and tick
 * timer. Caller frees with bm_engine_free(). */
PST_MUST_CHECK int bm_engine_new(struct event_base *base, struct bm_store *st,
                                 const struct bm_engine_config *cfg,
                                 const struct bm_engine_ops *ops, void *ctx, bm_engine_t **out);

/* bm_engine_on_object - process a new valid object (whole, nonce included; borrowed)
 * whose inventory hash is hash. Errors are logged, never fatal. */
void bm_engine_on_object(bm_engine_t *e, const uint8_t hash[BM_STORE_HASH_LEN],
                         const uint8_t *obj, size_t len);

/* bm_engine_kick - scan the outbox (and our keys, for pubkeys to announce) now rather
 * than at the next tick: a message was queued by another process. */
void bm_engine_kick(bm_engine_t *e);

struct bm_engine_stats {
    uint64_t pow_jobs;      /* finished */
    uint64_t pow_trials;    /* total trials of finished jobs */
    uint64_t msgs_sent;     /* msg objects published (first sends and resends) */
    uint64_t msgs_received; /* new inbox messages */
    uint64_t acks_received;
    uint64_t acks_sent;
    uint64_t pubkeys_sent;
    uint64_t getpubkeys_sent;
    unsigned pow_busy; /* 1 while a search runs */
};

void bm_engine_get_stats(const bm_engine_t *e, struct bm_engine_stats *out);

/* bm_engine_set_clock - tests: use now(arg) instead of time(NULL) for every decision
 * (TTLs, due messages, PoW targets). now NULL restores time(NULL). */
void bm_engine_set_clock(bm_engine_t *e, int64_t (*now)(void *arg), void *arg);

/* bm_engine_free - cancel and join the PoW thread, free *e, *e = NULL. Accepts NULL. */
void bm_engine_free(bm_engine_t **e);

#endif
