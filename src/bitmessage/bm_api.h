/*
 * bm_api.h - the Bitmessage node's interface for the rest of Postern: the
 * `postern bm` commands, and later the gateway's bitmessage transport.
 *
 * Everything goes through the state database, which is the node's durable
 * queue: bm_api_send() writes the message into the outbox (state
 * awaitingpubkey) in one transaction and returns its id; from then on the
 * message is on disk until it is acknowledged or fails, whatever process
 * dies. bm_api_notify() wakes the running node (SIGUSR1 to the pid in
 * <run_dir>/bmd.pid) so it does not wait for its next outbox scan.
 * Events travel the same way: an outbox message's state (sent, acked,
 * failed) is read with bm_api_status(); received messages are in the inbox
 * and, when the receiving address has an owner, delivered to that local
 * user's Maildir by the node (bm_deliver.h).
 *
 * Keys: addresses are made as the reference client makes them (random, or
 * deterministic from a passphrase, one leading zero byte in the ripe),
 * version 4, stream 1, and stored with their private keys in the state
 * database; the private keys are never printed or logged.
 */
#ifndef POSTERN_BM_API_H
#define POSTERN_BM_API_H

#include <stddef.h>
#include <stdint.h>

#include "bitmessage/bm_store.h"
#include "lib/err.h"

#define BM_API_OWNER_MAX 64 /* local user names (userdb) are shorter */
#define BM_API_PASSPHRASE_MAX 1024

/*
 * bm_api_address_new - make and store a v4 address. passphrase NULL: random
 * keys; else deterministic from it (the reference's algorithm, so the same
 * passphrase gives the same address there). label and owner (local user whose
 * Maildir gets its mail, "" for none) are borrowed. address (>= BM_STORE_ADDR_MAX
 * + 1 bytes) gets the text form. PST_EEXIST if the address is already ours.
 */
PST_MUST_CHECK int bm_api_address_new(struct bm_store *st, const char *passphrase,
                                      const char *label, const char *owner, int64_t now,
                                      char *address, size_t addrsz);

/* bm_api_owner - the owner of our address into out ("" if none); PST_ENOENT if not ours. */
PST_MUST_CHECK int bm_api_owner(struct bm_store *st, const char *address, char *out, size_t outsz);

/* bm_api_set_owner - change the owner of our address; PST_ENOENT if not ours. */
PST_MUST_CHECK int bm_api_set_owner(struct bm_store *st, const char *address, const char *owner);

/*
 * bm_api_send - queue a message from our address `from` to `to` (a valid
 * BM- address, checksum checked) with subject and body (UTF-8 text; sent in
 * the reference's encoding 2), kept ttl seconds (BM_STORE_TTL_MIN..BM_STORE_TTL_MAX)
 * on the first send. *msgid gets the outbox id.
 * PST_ENOENT: from is not one of our addresses; PST_EINVAL: bad address or
 * text (subject with a line break, NUL bytes); PST_ELIMIT: too long.
 * errbuf (may be NULL) gets a one-line reason.
 */
PST_MUST_CHECK int bm_api_send(struct bm_store *st, const char *from, const char *to,
                               const char *subject, const char *body, int64_t ttl, int64_t now,
                               int64_t *msgid, char *errbuf, size_t errlen);

/* bm_api_status - the outbox state of msgid (and attempts, may be NULL); PST_ENOENT. */
PST_MUST_CHECK int bm_api_status(struct bm_store *st, int64_t msgid, enum bm_outbox_state *state,
                                 uint32_t *attempts);

/* bm_api_notify - wake the running node (pid in <run_dir>/bmd.pid). PST_ENOENT if none runs. */
PST_MUST_CHECK int bm_api_notify(const char *run_dir);

#endif
