/*
 * bm_address.h - Bitmessage addresses (versions 3 and 4): text form, key
 * derivation, deterministic ("passphrase") and random generation, the v4
 * tag and pubkey-decryption key, and Wallet Import Format for private keys.
 *
 * Address text:  "BM-" base58( var_int(version) var_int(stream) ripe' checksum )
 *   base58    Bitcoin alphabet, the payload read as one big-endian number;
 *   ripe'     the 20-byte ripe with leading 0x00 bytes removed: v3 removes
 *             two if ripe starts 00 00, else one if it starts 00; v4 removes
 *             all of them;
 *   checksum  first 4 bytes of SHA512(SHA512(payload before the checksum)).
 * ripe = RIPEMD160(SHA512(pub_signing || pub_encryption)), both public keys
 * 65-byte uncompressed secp256k1 points (0x04 || X || Y).
 * v4 tag data: d = SHA512(SHA512(var_int(version) var_int(stream) ripe));
 * d[0..32) is the private key that decrypts the address's pubkey object,
 * d[32..64) the tag that identifies it on the network.
 *
 * Crypto: OpenSSL 3. RIPEMD-160 is fetched from the default provider (where
 * OpenSSL >= 3.0.7 has it); if that fetch fails, the "legacy" provider is
 * loaded once per process (keeping the default provider) and the fetch is
 * retried. The public key is derived with EC_POINT_mul (not deprecated in
 * OpenSSL 3): EVP_PKEY_fromdata with only OSSL_PKEY_PARAM_PRIV_KEY does not
 * compute the public point in OpenSSL 3.0, so there is no EVP equivalent.
 *
 * All functions are reentrant; nothing keeps state between calls except the
 * one-time legacy-provider load. Private keys are wiped from the stack with
 * OPENSSL_cleanse; callers own and wipe the keys they receive.
 */
#ifndef POSTERN_BM_ADDRESS_H
#define POSTERN_BM_ADDRESS_H

#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

#define BM_RIPE_LEN 20
#define BM_PRIVKEY_LEN 32
#define BM_PUBKEY_LEN 65 /* 0x04 || X || Y */
#define BM_TAG_LEN 32
#define BM_STREAM_DEFAULT 1
#define BM_ADDRESS_VERSION_MIN 3
#define BM_ADDRESS_VERSION_MAX 4
/* Room for any encodable address text plus its NUL ("BM-" + 47 chars at most for v3/v4). */
#define BM_ADDRESS_STR_MAX 64
/* Longest address text bm_address_decode() looks at; longer input is refused. */
#define BM_ADDRESS_INPUT_MAX (BM_ADDRESS_STR_MAX - 1)
/* Room for a WIF string plus its NUL (51 chars for 0x80 || key || checksum). */
#define BM_WIF_STR_MAX 64
/* Leading zero bytes a generated ripe may be asked to have (PyBitmessage: 1, or 2
 * "eighteenByteRipe"). */
#define BM_ADDRESS_NULLS_MAX 2
/* Give up generating after this many key pairs (2 nulls needs ~65536 on average). */
#define BM_ADDRESS_TRIES_MAX (1u << 24)

typedef struct bm_address {
    uint64_t version; /* 3 or 4 */
    uint64_t stream;  /* 1 on today's network; any var_int value is encodable */
    uint8_t ripe[BM_RIPE_LEN];
} bm_address_t;

/* Why bm_address_decode() refused its input; names follow PyBitmessage's decodeAddress status. */
enum bm_addr_status {
    BM_ADDR_OK = 0,
    BM_ADDR_TOO_LONG,            /* more than BM_ADDRESS_INPUT_MAX chars, or payload too large */
    BM_ADDR_INVALID_CHARS,       /* not base58, empty, or non-canonical leading '1' */
    BM_ADDR_CHECKSUM_FAILED,     /* "checksumfailed" */
    BM_ADDR_VARINT_MALFORMED,    /* "varintmalformed" */
    BM_ADDR_VERSION_UNSUPPORTED, /* not 3 or 4 ("versiontoohigh" and older versions) */
    BM_ADDR_RIPE_TOO_SHORT,      /* "ripetooshort" */
    BM_ADDR_RIPE_TOO_LONG,       /* "ripetoolong" */
    BM_ADDR_ENCODING_PROBLEM,    /* "encodingproblem": v4 ripe kept a leading zero byte */
};

/* bm_addr_status_str - static name of a status (e.g. "checksumfailed"). Never NULL. */
const char *bm_addr_status_str(enum bm_addr_status st);

/*
 * bm_address_encode - write the text form ("BM-...") of a into out (outsz
 * bytes, BM_ADDRESS_STR_MAX always suffices), NUL-terminated.
 * PST_EINVAL if the version is not 3 or 4, PST_ELIMIT if out is too small.
 */
PST_MUST_CHECK int bm_address_encode(const bm_address_t *a, char *out, size_t outsz);

/*
 * bm_address_decode - parse len bytes at s (borrowed, need not be
 * NUL-terminated): "BM-" followed by base58, or the base58 alone, as
 * PyBitmessage accepts. No surrounding whitespace. Returns 0 and fills *out,
 * or PST_EINVAL and sets *status (if not NULL) to the reason. Versions other
 * than 3 and 4 are refused. Stricter than PyBitmessage in one way: leading
 * '1' digits (which the reference silently ignores) are refused, so each
 * address has exactly one text form.
 */
PST_MUST_CHECK int bm_address_decode(const char *s, size_t len, bm_address_t *out,
                                     enum bm_addr_status *status);

/*
 * bm_address_tag - v4 tag data for a: privkey (32 bytes) decrypts the pubkey
 * object, tag (32 bytes) identifies it (also in v5 broadcasts). Either
 * output may be NULL. Computed for any version; only v4 uses it on the wire.
 * PST_EIO / PST_ENOMEM if the hash fails inside OpenSSL.
 */
PST_MUST_CHECK int bm_address_tag(const bm_address_t *a, uint8_t privkey[BM_PRIVKEY_LEN],
                                  uint8_t tag[BM_TAG_LEN]);

/*
 * bm_pubkey_from_privkey - uncompressed secp256k1 public key (65 bytes) of
 * a 32-byte big-endian private key. PST_EINVAL if the key is 0 or not below
 * the group order; PST_EIO / PST_ENOMEM on OpenSSL failure.
 */
PST_MUST_CHECK int bm_pubkey_from_privkey(const uint8_t priv[BM_PRIVKEY_LEN],
                                          uint8_t pub[BM_PUBKEY_LEN]);

/*
 * bm_ripe_from_pubkeys - RIPEMD160(SHA512(sign || enc)) of two 65-byte
 * public keys (as carried in pubkey objects after prefixing 0x04).
 * PST_EIO on OpenSSL failure.
 */
PST_MUST_CHECK int bm_ripe_from_pubkeys(const uint8_t sign[BM_PUBKEY_LEN],
                                        const uint8_t enc[BM_PUBKEY_LEN],
                                        uint8_t ripe[BM_RIPE_LEN]);

/*
 * bm_base58_encode - Bitcoin-alphabet base58 of the big-endian number in
 * data[0..len), as PyBitmessage's encodeBase58 (leading zero bytes carry no
 * value and produce no '1'; zero encodes as "1"). NUL-terminated in out.
 * PST_ELIMIT if out (outsz bytes) is too small.
 */
PST_MUST_CHECK int bm_base58_encode(const uint8_t *data, size_t len, char *out, size_t outsz);

/*
 * bm_base58_decode - the number in len chars at s as minimal big-endian
 * bytes (no leading zero byte; "1" alone gives 0 bytes) into out[0..outsz),
 * *outlen = count. PST_EINVAL on an empty string, a char outside the
 * alphabet or a leading '1' before other digits; PST_ELIMIT if the number
 * needs more than outsz bytes.
 */
PST_MUST_CHECK int bm_base58_decode(const char *s, size_t len, uint8_t *out, size_t outsz,
                                    size_t *outlen);

/* A full identity: the address and both key pairs. Caller wipes the private keys when done. */
typedef struct bm_keys {
    bm_address_t addr;
    uint8_t priv_signing[BM_PRIVKEY_LEN];
    uint8_t priv_encryption[BM_PRIVKEY_LEN];
    uint8_t pub_signing[BM_PUBKEY_LEN];
    uint8_t pub_encryption[BM_PUBKEY_LEN];
} bm_keys_t;

/*
 * bm_keys_from_passphrase - deterministic address exactly as PyBitmessage's
 * address generator makes it: for nonce = *nonce_io, +2, +4, ...:
 * priv_signing = SHA512(pass || var_int(nonce))[0..32), priv_encryption the
 * same with nonce + 1, until ripe starts with `nulls` zero bytes (1 normally,
 * 2 for "eighteenByteRipe"). Start with *nonce_io = 0 for the first address
 * of a passphrase; on success *nonce_io is the nonce for the next address
 * (PyBitmessage makes several addresses from one passphrase this way).
 * pass (borrowed) may contain NUL bytes. PST_EINVAL for a bad version or
 * nulls > BM_ADDRESS_NULLS_MAX, PST_ELIMIT after BM_ADDRESS_TRIES_MAX key
 * pairs, PST_EIO / PST_ENOMEM on OpenSSL failure. out is zeroed on failure.
 */
PST_MUST_CHECK int bm_keys_from_passphrase(const void *pass, size_t passlen, uint64_t version,
                                           uint64_t stream, unsigned nulls, uint64_t *nonce_io,
                                           bm_keys_t *out);

/*
 * bm_keys_random - random address as PyBitmessage makes it: one random
 * signing key, then random encryption keys until ripe starts with `nulls`
 * zero bytes. Errors as bm_keys_from_passphrase (PST_EIO also if the RNG fails).
 */
PST_MUST_CHECK int bm_keys_random(uint64_t version, uint64_t stream, unsigned nulls,
                                  bm_keys_t *out);

/*
 * bm_wif_encode - Wallet Import Format of a private key (as keys.dat stores
 * it): base58(0x80 || key || first 4 bytes of SHA256(SHA256(0x80 || key))).
 * PST_ELIMIT if out (outsz bytes) is too small; BM_WIF_STR_MAX suffices.
 */
PST_MUST_CHECK int bm_wif_encode(const uint8_t priv[BM_PRIVKEY_LEN], char *out, size_t outsz);

/* bm_wif_decode - inverse of bm_wif_encode on len bytes at s. PST_EINVAL if malformed. */
PST_MUST_CHECK int bm_wif_decode(const char *s, size_t len, uint8_t priv[BM_PRIVKEY_LEN]);

#endif
