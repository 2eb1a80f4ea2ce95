/*
 * bm_pow.h - Bitmessage proof of work: target, trial value, checks, nonce search.
 *
 * Exactly as the reference client PyBitmessage (Python 2.7, so every '/'
 * below is integer floor division) computes it in src/protocol.py
 * (isProofOfWorkSufficient), src/class_singleWorker.py (_doPOWDefaults and
 * the msg target) and src/proofofwork.py (trial_value):
 *
 *   object      = nonce (8 bytes, big-endian) || rest, where rest begins with
 *                 expiresTime (8 bytes, big-endian)
 *   initialHash = SHA512(rest)                       (payload without nonce)
 *   trial       = first 8 bytes, big-endian, of
 *                 SHA512(SHA512(nonce_be64 || initialHash))
 *   L           = payloadLength + 8 + payloadLengthExtraBytes
 *                 (payloadLength excludes the nonce, so L = len(object) + extra)
 *   target      = 2^64 / (nonceTrialsPerByte * (L + (TTL * L) / 2^16))
 *   sufficient  iff trial <= target
 *
 * nonceTrialsPerByte and payloadLengthExtraBytes below the network minimums
 * (1000 and 1000) are raised to them; a receiver may demand more. On receipt
 * TTL = expiresTime - now, and a TTL below 300 counts as 300. Arithmetic is
 * exact (128-bit); a denominator above 2^64 gives target 0.
 *
 * Lifetime sanity (src/network/bmobject.py checkEOLSanity): an object is
 * refused if expiresTime - now > 28 days + 3 hours (BMObject.maxTTL) or
 * expiresTime - now < -3600 (BMObject.minTTL: one hour, although the
 * reference's comment says three).
 *
 * Thread safety: every function may be called from any thread; a search's
 * cancel flag and progress counter are atomics meant to be touched from
 * other threads while bm_pow_search() runs.
 */
#ifndef POSTERN_BM_POW_H
#define POSTERN_BM_POW_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

#define BM_POW_NONCE_TRIALS_DEFAULT 1000u          /* networkDefaultProofOfWorkNonceTrialsPerByte */
#define BM_POW_EXTRA_BYTES_DEFAULT 1000u           /* networkDefaultPayloadLengthExtraBytes */
#define BM_POW_TTL_FLOOR 300                       /* TTL < 300 counts as 300 when checking */
#define BM_POW_MAX_TTL (28 * 24 * 60 * 60 + 10800) /* BMObject.maxTTL, seconds */
#define BM_POW_MIN_TTL (-3600)                     /* BMObject.minTTL, seconds */
#define BM_POW_NONCE_LEN 8
#define BM_POW_HASH_LEN 64       /* SHA-512 */
#define BM_POW_OBJECT_MIN_LEN 16 /* nonce + expiresTime */
#define BM_POW_THREADS_MAX 256   /* cap on search threads */

/* Difficulty parameters; values below the defaults are raised to them. */
struct bm_pow_params {
    uint64_t nonce_trials_per_byte;
    uint64_t extra_bytes;
};

/*
 * bm_pow_target - the target for a payload of payload_len bytes WITHOUT the
 * 8-byte nonce, kept for ttl seconds (the sender's formula; no TTL floor).
 * params may be NULL (network defaults). Never fails; 0 means unreachable.
 */
uint64_t bm_pow_target(uint64_t payload_len, uint64_t ttl, const struct bm_pow_params *params);

/*
 * bm_pow_object_target - the target a receiver demands at now from an object
 * of len bytes (nonce included) expiring at expires: TTL = expires - now,
 * floored at BM_POW_TTL_FLOOR. params may be NULL. 0 means unreachable.
 */
uint64_t bm_pow_object_target(size_t len, uint64_t expires, int64_t now,
                              const struct bm_pow_params *params);

/*
 * bm_pow_initial_hash - SHA512 of the payload without nonce (borrowed, len
 * bytes; may be NULL when len is 0) into out. Returns 0 or PST_EIO if
 * OpenSSL fails.
 */
PST_MUST_CHECK int bm_pow_initial_hash(const uint8_t *payload, size_t len,
                                       uint8_t out[BM_POW_HASH_LEN]);

/* bm_pow_trial_value - the trial value of nonce for initial_hash. 0 or PST_EIO. */
PST_MUST_CHECK int bm_pow_trial_value(uint64_t nonce, const uint8_t initial_hash[BM_POW_HASH_LEN],
                                      uint64_t *trial);

/* bm_pow_eol_check - 0 if expires (Unix time) is within the lifetime limits at now, else
 * PST_EINVAL. */
PST_MUST_CHECK int bm_pow_eol_check(uint64_t expires, int64_t now);

/*
 * bm_pow_sufficient - the reference's isProofOfWorkSufficient on a whole
 * object (borrowed, nonce included) received at now. 0 if sufficient,
 * PST_EINVAL if not or if len < BM_POW_OBJECT_MIN_LEN, PST_EIO if OpenSSL
 * fails. params may be NULL.
 */
PST_MUST_CHECK int bm_pow_sufficient(const uint8_t *obj, size_t len, int64_t now,
                                     const struct bm_pow_params *params);

/*
 * bm_pow_check - bm_pow_eol_check on the object's expiresTime, then
 * bm_pow_sufficient. 0 = accept; PST_EINVAL = refuse (short object, expired,
 * too far in the future, insufficient work); PST_EIO = OpenSSL failure.
 */
PST_MUST_CHECK int bm_pow_check(const uint8_t *obj, size_t len, int64_t now,
                                const struct bm_pow_params *params);

/* How a hasher reaches OpenSSL's SHA-512 (see bm_pow.c for the measurements). */
enum bm_pow_backend {
    BM_POW_BACKEND_AUTO = 0,     /* provider if available, else EVP */
    BM_POW_BACKEND_PROVIDER = 1, /* the provider's digest functions, called directly */
    BM_POW_BACKEND_EVP = 2,      /* EVP_MD_CTX reused with EVP_DigestInit_ex2 */
};

/* A per-thread double-SHA512 trial engine. Not shareable between threads. */
typedef struct bm_pow_hasher bm_pow_hasher_t;

/* bm_pow_hasher_new - NULL on failure (or if the requested backend is unavailable).
 * Caller frees with bm_pow_hasher_free(). */
bm_pow_hasher_t *bm_pow_hasher_new(enum bm_pow_backend backend);
/* bm_pow_hasher_trial - as bm_pow_trial_value. 0 or PST_EIO. */
PST_MUST_CHECK int bm_pow_hasher_trial(bm_pow_hasher_t *h, uint64_t nonce,
                                       const uint8_t initial_hash[BM_POW_HASH_LEN],
                                       uint64_t *trial);
/* bm_pow_hasher_backend - the backend in use (never AUTO). */
enum bm_pow_backend bm_pow_hasher_backend(const bm_pow_hasher_t *h);
void bm_pow_hasher_free(bm_pow_hasher_t **h);

/*
 * A nonce search. Initialise with bm_pow_search_init(); then one thread
 * calls bm_pow_search() while others may call bm_pow_search_cancel() and
 * bm_pow_search_progress(). Fields are private: use the functions.
 */
struct bm_pow_search {
    atomic_bool cancel;
    atomic_uint_fast64_t trials;
    unsigned threads;
    enum bm_pow_backend backend;
};

/* bm_pow_search_init - threads 0 = every online core (sysconf), capped at
 * BM_POW_THREADS_MAX. Resets cancel and progress. */
void bm_pow_search_init(struct bm_pow_search *s, unsigned threads);
/* bm_pow_search_set_backend - choose the hasher backend (default AUTO). */
void bm_pow_search_set_backend(struct bm_pow_search *s, enum bm_pow_backend backend);
/* bm_pow_search_cancel - ask a running (or the next) search to stop; async-safe. */
void bm_pow_search_cancel(struct bm_pow_search *s);
/* bm_pow_search_progress - trials done so far (updated every few thousand). */
uint64_t bm_pow_search_progress(struct bm_pow_search *s);
/* bm_pow_search_threads - number of threads a search will use. */
unsigned bm_pow_search_threads(const struct bm_pow_search *s);

/*
 * bm_pow_search - find a nonce whose trial value is <= target. Thread t of n
 * tries nonces t, t + n, t + 2n, ... Blocks until found or cancelled.
 * Returns 0 with *nonce (and *trial if not NULL) set; PST_EAGAIN if
 * cancelled; PST_ENOENT if the whole nonce space was tried; PST_ENOMEM if
 * threads or hashers could not be created.
 */
PST_MUST_CHECK int bm_pow_search(struct bm_pow_search *s,
                                 const uint8_t initial_hash[BM_POW_HASH_LEN], uint64_t target,
                                 uint64_t *nonce, uint64_t *trial);

/*
 * bm_pow_solve - the sender's whole job: initial hash of payload (borrowed,
 * WITHOUT nonce), target for ttl and params (may be NULL), search. Returns
 * as bm_pow_search (PST_EIO if hashing fails, PST_EINVAL if target is 0).
 */
PST_MUST_CHECK int bm_pow_solve(struct bm_pow_search *s, const uint8_t *payload, size_t len,
                                uint64_t ttl, const struct bm_pow_params *params, uint64_t *nonce);

#endif
