/*
 * bm_crypto.h - Bitmessage key pairs, ECDSA signatures and ECIES, on OpenSSL 3.
 *
 * Everything here is on secp256k1 (OpenSSL NID 714 = 0x02CA, the "curve id"
 * Bitmessage puts on the wire). Formats are those of the reference client
 * PyBitmessage (src/pyelliptic/ecc.py, src/highlevelcrypto.py):
 *
 *   private key  32 bytes, big-endian scalar in [1, n-1]
 *   public key   65 bytes, 0x04 || X(32) || Y(32)
 *   signature    DER ECDSA-Sig-Value (at most BM_SIG_MAX_LEN bytes) over
 *                SHA-256(data) (sent) or SHA-1(data) (still accepted)
 *   ECIES blob   see bm_crypto.c for the full layout
 *
 * Every function is thread-safe (no shared state) and reports failure by
 * return value; nothing here logs or aborts on bad input. PST_EIO means an
 * unexpected OpenSSL failure (errno is not meaningful then).
 */
#ifndef POSTERN_BM_CRYPTO_H
#define POSTERN_BM_CRYPTO_H

#include <stddef.h>

#include "lib/buf.h"
#include "lib/err.h"

#define BM_PRIVKEY_LEN 32
#define BM_PUBKEY_LEN 65       /* 0x04 || X || Y */
#define BM_CURVE_SECP256K1 714 /* 0x02CA, the curve id in ECIES blobs */
#define BM_SIG_MAX_LEN 72      /* DER of two 33-byte INTEGERs */
#define BM_ECIES_IV_LEN 16
#define BM_ECIES_MAC_LEN 32
/* IV + curve id + 2 * (length + 32-byte coordinate) + MAC; ciphertext comes on top. */
#define BM_ECIES_OVERHEAD (BM_ECIES_IV_LEN + 2 + 2 * (2 + 32) + BM_ECIES_MAC_LEN)
/* Largest plaintext / blob handled (far above the protocol's 1.6 MB message limit). */
#define BM_ECIES_MAX_LEN (16u * 1024 * 1024)

/* Opaque secp256k1 key pair (private key and its public key). */
typedef struct bm_key bm_key_t;

/* Digest used for an ECDSA signature. */
enum bm_sig_digest { BM_SIG_SHA256 = 0, BM_SIG_SHA1 = 1 };

/* bm_key_generate - make a fresh random key pair. *out gets a key the caller frees with
 * bm_key_free(). Returns 0, or PST_ENOMEM / PST_EIO (OpenSSL failure); *out is NULL then. */
PST_MUST_CHECK int bm_key_generate(bm_key_t **out);

/* bm_key_from_private - key pair from a 32-byte big-endian private key (borrowed).
 * Returns 0, PST_EINVAL if the scalar is 0 or >= the group order, PST_ENOMEM / PST_EIO.
 * *out: caller frees with bm_key_free(); NULL on failure. */
PST_MUST_CHECK int bm_key_from_private(const unsigned char priv[BM_PRIVKEY_LEN], bm_key_t **out);

/* bm_key_public - write the 65-byte uncompressed public key of key (borrowed) to out. */
void bm_key_public(const bm_key_t *key, unsigned char out[BM_PUBKEY_LEN]);

/* bm_key_private - write the 32-byte private key to out (for WIF export). Secret: wipe after. */
void bm_key_private(const bm_key_t *key, unsigned char out[BM_PRIVKEY_LEN]);

/* bm_key_free - free *key (wiping the secret) and set *key to NULL. Accepts NULL / *key NULL. */
void bm_key_free(bm_key_t **key);

/* bm_pubkey_check - 0 if pub (borrowed, 65 bytes) is 0x04||X||Y with X, Y < p and the point
 * on secp256k1 (hence not the point at infinity); PST_EINVAL otherwise. */
PST_MUST_CHECK int bm_pubkey_check(const unsigned char pub[BM_PUBKEY_LEN]);

/* bm_sign - ECDSA-sign SHA-256(data) with key; appends the DER signature (<= BM_SIG_MAX_LEN
 * bytes) to sig_out. Returns 0, PST_ELIMIT (sig_out full), PST_ENOMEM or PST_EIO; on failure
 * sig_out is unchanged. All arguments borrowed. */
PST_MUST_CHECK int bm_sign(const bm_key_t *key, const void *data, size_t len, buf_t *sig_out);

/* bm_sign_digest - as bm_sign with an explicit digest (BM_SIG_SHA1 only for compatibility
 * tests: the reference client signs with SHA-256). */
PST_MUST_CHECK int bm_sign_digest(const bm_key_t *key, enum bm_sig_digest dg, const void *data,
                                  size_t len, buf_t *sig_out);

/* bm_verify - check DER signature sig over data against pub (65 bytes), accepting a signature
 * over SHA-256(data) or SHA-1(data) as the reference client does. Returns 0 if valid,
 * PST_EINVAL if pub is not a valid point, PST_EAUTH for any bad or malformed signature,
 * PST_ENOMEM / PST_EIO. All arguments borrowed. */
PST_MUST_CHECK int bm_verify(const unsigned char pub[BM_PUBKEY_LEN], const void *data, size_t len,
                             const void *sig, size_t siglen);

/* bm_ecies_encrypt - encrypt plain for the holder of pub (65 bytes) with a fresh ephemeral key
 * and IV; appends the blob (plain_len rounded up to a block + 1..16 + BM_ECIES_OVERHEAD bytes)
 * to out. Returns 0, PST_EINVAL (bad pub), PST_ELIMIT (plain over BM_ECIES_MAX_LEN, or out
 * full), PST_ENOMEM, PST_EIO; on failure out is unchanged. All arguments borrowed. */
PST_MUST_CHECK int bm_ecies_encrypt(const unsigned char pub[BM_PUBKEY_LEN], const void *plain,
                                    size_t plain_len, buf_t *out);

/* bm_ecies_encrypt_fixed - as bm_ecies_encrypt with a given ephemeral key and IV. Reusing either
 * breaks confidentiality: for known-answer tests only. */
PST_MUST_CHECK int bm_ecies_encrypt_fixed(const unsigned char pub[BM_PUBKEY_LEN],
                                          const bm_key_t *ephemeral,
                                          const unsigned char iv[BM_ECIES_IV_LEN],
                                          const void *plain, size_t plain_len, buf_t *out);

/* bm_ecies_decrypt - decrypt blob (len bytes, untrusted) with key; appends the plaintext to
 * plain_out. The MAC is checked (constant time) before anything is decrypted. Returns 0;
 * PST_EINVAL for a malformed blob (too short, bad curve id, coordinate length over 32,
 * ephemeral key not on the curve, ciphertext not whole blocks, bad padding); PST_EAUTH when
 * the MAC does not match (wrong key: the usual result for objects not addressed to us);
 * PST_ELIMIT (len over BM_ECIES_MAX_LEN + 16 + BM_ECIES_OVERHEAD, or plain_out full);
 * PST_ENOMEM; PST_EIO.
 * On failure plain_out is unchanged. All arguments borrowed. */
PST_MUST_CHECK int bm_ecies_decrypt(const bm_key_t *key, const void *blob, size_t len,
                                    buf_t *plain_out);

#endif
