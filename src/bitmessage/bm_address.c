/*
 * bm_address.c - Bitmessage v3/v4 addresses, keys and WIF (see bm_address.h
 * for the formats).
 *
 * Reference: PyBitmessage src/addresses.py (encodeAddress, decodeAddress,
 * base58), src/highlevelcrypto.py (to_ripe, double_sha512,
 * deterministic_keys, pointMult, WIF), src/class_addressGenerator.py (the
 * generation loops), src/class_singleWorker.py (tag and pubkey key from
 * the double SHA-512 of the address data); Bitmessage wiki "Address".
 *
 * Invariants: base58 arithmetic runs on fixed-size arrays and reports
 * overflow instead of growing; decoding never looks at more than
 * BM_ADDRESS_INPUT_MAX bytes of input; every private key held on the stack
 * is wiped with OPENSSL_cleanse before return.
 *
 * Failure policy: malformed text returns PST_EINVAL with a status naming
 * the reason, output too small PST_ELIMIT, OpenSSL failures PST_EIO or
 * PST_ENOMEM. Nothing here aborts on input. The only process-wide state is
 * the one-time load of OpenSSL's legacy provider when RIPEMD-160 is missing
 * from the default provider (OpenSSL < 3.0.7); it is logged once.
 */
#include "bm_address.h"

#include <pthread.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/provider.h>
#include <openssl/rand.h>

#include "bitmessage/bm_encode.h"
#include "lib/log.h"

#define BM_ADDR_PREFIX "BM-"
#define BM_ADDR_PREFIX_LEN 3
#define BM_CHECKSUM_LEN 4
#define BM_SHA512_LEN 64
#define BM_SHA256_LEN 32
/* var_int(version) + var_int(stream) + ripe + checksum, at most */
#define BM_ADDR_PAYLOAD_MAX (2 * BM_VARINT_MAX_LEN + BM_RIPE_LEN + BM_CHECKSUM_LEN)
/* base58 work area: 60 digits need 44 bytes; refuse anything larger */
#define BM_B58_WORK_MAX 64
#define BM_V3_RIPE_MIN 18 /* v3 strips at most two zero bytes */
#define BM_V4_RIPE_MIN 4  /* PyBitmessage refuses shorter v4 ripes */
#define BM_WIF_PREFIX 0x80
#define BM_WIF_PAYLOAD_LEN (1 + BM_PRIVKEY_LEN + BM_CHECKSUM_LEN)

static const char bm_b58_alphabet[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/* Per-call crypto context: fetched digests and the curve. */
struct bm_crypto {
    EVP_MD *sha512;
    EVP_MD *sha256;
    EVP_MD *ripemd160;
    EC_GROUP *group;
    BN_CTX *bn;
};

static pthread_once_t bm_legacy_once = PTHREAD_ONCE_INIT;

static void bm_legacy_load(void)
{
    /* retain_fallbacks = 1: the default provider stays available */
    if (OSSL_PROVIDER_try_load(NULL, "legacy", 1) == NULL)
        log_warn("bm_address provider_load name=legacy result=failed");
    else
        log_info("bm_address provider_load name=legacy reason=ripemd160");
}

static EVP_MD *bm_fetch_ripemd160(void)
{
    EVP_MD *md = EVP_MD_fetch(NULL, "RIPEMD160", NULL);

    if (md != NULL)
        return md;
    ERR_clear_error();
    (void)pthread_once(&bm_legacy_once, bm_legacy_load);
    return EVP_MD_fetch(NULL, "RIPEMD160", NULL);
}

static void bm_crypto_free(struct bm_crypto *c)
{
    EVP_MD_free(c->sha512);
    EVP_MD_free(c->sha256);
    EVP_MD_free(c->ripemd160);
    EC_GROUP_free(c->group);
    BN_CTX_free(c->bn);
    memset(c, 0, sizeof(*c));
}

/* bm_crypto_init - fetch what a call needs; with_ec adds the curve. */
static int bm_crypto_init(struct bm_crypto *c, int with_ec)
{
    memset(c, 0, sizeof(*c));
    c->sha512 = EVP_MD_fetch(NULL, "SHA512", NULL);
    c->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    c->ripemd160 = bm_fetch_ripemd160();
    if (c->sha512 == NULL || c->sha256 == NULL || c->ripemd160 == NULL) {
        log_error("bm_address digest_fetch result=failed");
        bm_crypto_free(c);
        return PST_EIO;
    }
    if (!with_ec)
        return 0;
    c->group = EC_GROUP_new_by_curve_name(NID_secp256k1);
    c->bn = BN_CTX_new();
    if (c->group == NULL || c->bn == NULL) {
        bm_crypto_free(c);
        return PST_ENOMEM;
    }
    return 0;
}

/* bm_digest2 - md(a || b) into out (EVP_MD_get_size(md) bytes). */
static int bm_digest2(const EVP_MD *md, const void *a, size_t alen, const void *b, size_t blen,
                      uint8_t *out)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok;

    if (ctx == NULL)
        return PST_ENOMEM;
    ok = EVP_DigestInit_ex(ctx, md, NULL) == 1 && EVP_DigestUpdate(ctx, a, alen) == 1 &&
         (blen == 0 || EVP_DigestUpdate(ctx, b, blen) == 1) &&
         EVP_DigestFinal_ex(ctx, out, NULL) == 1;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : PST_EIO;
}

/* bm_double_hash - md(md(data)): SHA512d for checksums and tags, SHA256d for WIF. */
static int bm_double_hash(const EVP_MD *md, const void *data, size_t len, uint8_t *out)
{
    uint8_t once[BM_SHA512_LEN];
    int rc = bm_digest2(md, data, len, NULL, 0, once);

    if (rc == 0)
        rc = bm_digest2(md, once, (size_t)EVP_MD_get_size(md), NULL, 0, out);
    return rc;
}

const char *bm_addr_status_str(enum bm_addr_status st)
{
    switch (st) {
    case BM_ADDR_OK:
        return "success";
    case BM_ADDR_TOO_LONG:
        return "toolong";
    case BM_ADDR_INVALID_CHARS:
        return "invalidcharacters";
    case BM_ADDR_CHECKSUM_FAILED:
        return "checksumfailed";
    case BM_ADDR_VARINT_MALFORMED:
        return "varintmalformed";
    case BM_ADDR_VERSION_UNSUPPORTED:
        return "versionunsupported";
    case BM_ADDR_RIPE_TOO_SHORT:
        return "ripetooshort";
    case BM_ADDR_RIPE_TOO_LONG:
        return "ripetoolong";
    case BM_ADDR_ENCODING_PROBLEM:
        return "encodingproblem";
    }
    return "unknown";
}

/* ---- base58 ---- */

static int bm_b58_digit(char ch)
{
    const char *p;

    if (ch == '\0')
        return -1;
    p = strchr(bm_b58_alphabet, ch);
    return p == NULL ? -1 : (int)(p - bm_b58_alphabet);
}

int bm_base58_encode(const uint8_t *data, size_t len, char *out, size_t outsz)
{
    uint8_t digits[BM_B58_WORK_MAX * 2]; /* little-endian base-58 digits */
    size_t ndig = 0;
    size_t i, j;

    while (len > 0 && data[0] == 0) { /* leading zero bytes carry no value */
        data++;
        len--;
    }
    if (len > BM_B58_WORK_MAX)
        return PST_ELIMIT;
    for (i = 0; i < len; i++) {
        unsigned int carry = data[i];

        for (j = 0; j < ndig; j++) {
            carry += (unsigned int)digits[j] << 8;
            digits[j] = (uint8_t)(carry % 58);
            carry /= 58;
        }
        while (carry > 0) {
            PST_ASSERT(ndig < sizeof(digits)); /* 64 bytes need at most 88 digits */
            digits[ndig++] = (uint8_t)(carry % 58);
            carry /= 58;
        }
    }
    if (ndig == 0)
        digits[ndig++] = 0; /* the number zero is "1" */
    if (ndig + 1 > outsz)
        return PST_ELIMIT;
    for (i = 0; i < ndig; i++)
        out[i] = bm_b58_alphabet[digits[ndig - 1 - i]];
    out[ndig] = '\0';
    return 0;
}

int bm_base58_decode(const char *s, size_t len, uint8_t *out, size_t outsz, size_t *outlen)
{
    uint8_t num[BM_B58_WORK_MAX]; /* little-endian base-256 */
    size_t nbytes = 0;
    size_t i, j;

    if (len == 0 || (len > 1 && s[0] == bm_b58_alphabet[0]))
        return PST_EINVAL;
    for (i = 0; i < len; i++) {
        int d = bm_b58_digit(s[i]);
        unsigned int carry;

        if (d < 0)
            return PST_EINVAL;
        carry = (unsigned int)d;
        for (j = 0; j < nbytes; j++) {
            carry += (unsigned int)num[j] * 58;
            num[j] = (uint8_t)carry;
            carry >>= 8;
        }
        while (carry > 0) {
            if (nbytes == sizeof(num) || nbytes == outsz)
                return PST_ELIMIT;
            num[nbytes++] = (uint8_t)carry;
            carry >>= 8;
        }
    }
    for (i = 0; i < nbytes; i++)
        out[i] = num[nbytes - 1 - i];
    *outlen = nbytes;
    return 0;
}

/* ---- address text ---- */

/* bm_ripe_strip - the bytes of ripe an address of this version embeds. */
static void bm_ripe_strip(uint64_t version, const uint8_t *ripe, const uint8_t **out,
                          size_t *outlen)
{
    size_t skip = 0;

    if (version == 4) {
        while (skip < BM_RIPE_LEN && ripe[skip] == 0)
            skip++;
    } else if (ripe[0] == 0) {
        skip = ripe[1] == 0 ? 2 : 1;
    }
    *out = ripe + skip;
    *outlen = BM_RIPE_LEN - skip;
}

static int bm_version_ok(uint64_t version)
{
    return version >= BM_ADDRESS_VERSION_MIN && version <= BM_ADDRESS_VERSION_MAX;
}

int bm_address_encode(const bm_address_t *a, char *out, size_t outsz)
{
    uint8_t payload[BM_ADDR_PAYLOAD_MAX];
    uint8_t sum[BM_SHA512_LEN];
    const uint8_t *ripe;
    size_t ripelen, n;
    struct bm_crypto c;
    int rc;

    if (!bm_version_ok(a->version))
        return PST_EINVAL;
    bm_ripe_strip(a->version, a->ripe, &ripe, &ripelen);
    if (a->version == 4 && ripelen < BM_V4_RIPE_MIN)
        return PST_EINVAL; /* would not decode again (PyBitmessage: "ripetooshort") */
    if (outsz < BM_ADDR_PREFIX_LEN + 1)
        return PST_ELIMIT;
    n = bm_varint_encode(a->version, payload);
    n += bm_varint_encode(a->stream, payload + n);
    memcpy(payload + n, ripe, ripelen);
    n += ripelen;
    rc = bm_crypto_init(&c, 0);
    if (rc != 0)
        return rc;
    rc = bm_double_hash(c.sha512, payload, n, sum);
    bm_crypto_free(&c);
    if (rc != 0)
        return rc;
    memcpy(payload + n, sum, BM_CHECKSUM_LEN);
    n += BM_CHECKSUM_LEN;
    memcpy(out, BM_ADDR_PREFIX, BM_ADDR_PREFIX_LEN);
    return bm_base58_encode(payload, n, out + BM_ADDR_PREFIX_LEN, outsz - BM_ADDR_PREFIX_LEN);
}

/* bm_addr_ripe_unpack - embedded ripe bytes -> 20-byte ripe, with the canonical-form checks. */
static enum bm_addr_status bm_addr_ripe_unpack(uint64_t version, const uint8_t *p, size_t n,
                                               uint8_t ripe[BM_RIPE_LEN])
{
    size_t min = version == 4 ? BM_V4_RIPE_MIN : BM_V3_RIPE_MIN;

    if (n > BM_RIPE_LEN)
        return BM_ADDR_RIPE_TOO_LONG;
    if (n < min)
        return BM_ADDR_RIPE_TOO_SHORT;
    /* A zero first byte is only canonical in a v3 ripe stripped by two. */
    if (p[0] == 0 && (version == 4 || n > BM_V3_RIPE_MIN))
        return BM_ADDR_ENCODING_PROBLEM;
    memset(ripe, 0, BM_RIPE_LEN - n);
    memcpy(ripe + (BM_RIPE_LEN - n), p, n);
    return BM_ADDR_OK;
}

/* bm_addr_parse_payload - checksum, version, stream and ripe of decoded base58 bytes. */
static enum bm_addr_status bm_addr_parse_payload(const uint8_t *payload, size_t n,
                                                 bm_address_t *out)
{
    uint8_t sum[BM_SHA512_LEN];
    struct bm_crypto c;
    bm_reader_t r;
    const uint8_t *ripe;
    size_t ripelen;
    int rc;

    if (n <= BM_CHECKSUM_LEN)
        return BM_ADDR_CHECKSUM_FAILED;
    if (bm_crypto_init(&c, 0) != 0)
        return BM_ADDR_CHECKSUM_FAILED; /* cannot verify: treat as not verified */
    rc = bm_double_hash(c.sha512, payload, n - BM_CHECKSUM_LEN, sum);
    bm_crypto_free(&c);
    if (rc != 0 || memcmp(sum, payload + n - BM_CHECKSUM_LEN, BM_CHECKSUM_LEN) != 0)
        return BM_ADDR_CHECKSUM_FAILED;
    bm_reader_init(&r, payload, n - BM_CHECKSUM_LEN);
    if (bm_get_varint(&r, &out->version) != 0)
        return BM_ADDR_VARINT_MALFORMED;
    if (!bm_version_ok(out->version))
        return BM_ADDR_VERSION_UNSUPPORTED;
    if (bm_get_varint(&r, &out->stream) != 0)
        return BM_ADDR_VARINT_MALFORMED;
    bm_get_rest(&r, &ripe, &ripelen);
    if (ripelen == 0)
        return BM_ADDR_RIPE_TOO_SHORT;
    return bm_addr_ripe_unpack(out->version, ripe, ripelen, out->ripe);
}

int bm_address_decode(const char *s, size_t len, bm_address_t *out, enum bm_addr_status *status)
{
    uint8_t payload[BM_ADDR_PAYLOAD_MAX];
    enum bm_addr_status st;
    bm_address_t a = {0};
    size_t n = 0;
    int rc;

    if (len > BM_ADDRESS_INPUT_MAX) {
        st = BM_ADDR_TOO_LONG;
        goto done;
    }
    if (len >= BM_ADDR_PREFIX_LEN && memcmp(s, BM_ADDR_PREFIX, BM_ADDR_PREFIX_LEN) == 0) {
        s += BM_ADDR_PREFIX_LEN;
        len -= BM_ADDR_PREFIX_LEN;
    }
    rc = bm_base58_decode(s, len, payload, sizeof(payload), &n);
    if (rc == PST_ELIMIT)
        st = BM_ADDR_TOO_LONG;
    else if (rc != 0)
        st = BM_ADDR_INVALID_CHARS;
    else
        st = bm_addr_parse_payload(payload, n, &a);
done:
    if (status != NULL)
        *status = st;
    if (st != BM_ADDR_OK)
        return PST_EINVAL;
    *out = a;
    return 0;
}

int bm_address_tag(const bm_address_t *a, uint8_t privkey[BM_PRIVKEY_LEN], uint8_t tag[BM_TAG_LEN])
{
    uint8_t data[2 * BM_VARINT_MAX_LEN + BM_RIPE_LEN];
    uint8_t d[BM_SHA512_LEN];
    struct bm_crypto c;
    size_t n;
    int rc;

    n = bm_varint_encode(a->version, data);
    n += bm_varint_encode(a->stream, data + n);
    memcpy(data + n, a->ripe, BM_RIPE_LEN);
    n += BM_RIPE_LEN;
    rc = bm_crypto_init(&c, 0);
    if (rc != 0)
        return rc;
    rc = bm_double_hash(c.sha512, data, n, d);
    bm_crypto_free(&c);
    if (rc == 0 && privkey != NULL)
        memcpy(privkey, d, BM_PRIVKEY_LEN);
    if (rc == 0 && tag != NULL)
        memcpy(tag, d + BM_PRIVKEY_LEN, BM_TAG_LEN);
    OPENSSL_cleanse(d, sizeof(d));
    return rc;
}

/* ---- keys ---- */

/* bm_pub_derive - pub = priv * G on c's curve. */
static int bm_pub_derive(struct bm_crypto *c, const uint8_t priv[BM_PRIVKEY_LEN],
                         uint8_t pub[BM_PUBKEY_LEN])
{
    BIGNUM *k = BN_bin2bn(priv, BM_PRIVKEY_LEN, NULL);
    EC_POINT *pt = NULL;
    int rc = PST_EIO;

    if (k == NULL)
        return PST_ENOMEM;
    if (BN_is_zero(k) || BN_cmp(k, EC_GROUP_get0_order(c->group)) >= 0) {
        rc = PST_EINVAL;
        goto out;
    }
    pt = EC_POINT_new(c->group);
    if (pt == NULL) {
        rc = PST_ENOMEM;
        goto out;
    }
    if (EC_POINT_mul(c->group, pt, k, NULL, NULL, c->bn) == 1 &&
        EC_POINT_point2oct(c->group, pt, POINT_CONVERSION_UNCOMPRESSED, pub, BM_PUBKEY_LEN,
                           c->bn) == BM_PUBKEY_LEN)
        rc = 0;
out:
    EC_POINT_free(pt);
    BN_clear_free(k);
    return rc;
}

int bm_pubkey_from_privkey(const uint8_t priv[BM_PRIVKEY_LEN], uint8_t pub[BM_PUBKEY_LEN])
{
    struct bm_crypto c;
    int rc = bm_crypto_init(&c, 1);

    if (rc != 0)
        return rc;
    rc = bm_pub_derive(&c, priv, pub);
    bm_crypto_free(&c);
    return rc;
}

static int bm_ripe_compute(struct bm_crypto *c, const uint8_t sign[BM_PUBKEY_LEN],
                           const uint8_t enc[BM_PUBKEY_LEN], uint8_t ripe[BM_RIPE_LEN])
{
    uint8_t h[BM_SHA512_LEN];
    int rc = bm_digest2(c->sha512, sign, BM_PUBKEY_LEN, enc, BM_PUBKEY_LEN, h);

    if (rc == 0)
        rc = bm_digest2(c->ripemd160, h, sizeof(h), NULL, 0, ripe);
    return rc;
}

int bm_ripe_from_pubkeys(const uint8_t sign[BM_PUBKEY_LEN], const uint8_t enc[BM_PUBKEY_LEN],
                         uint8_t ripe[BM_RIPE_LEN])
{
    struct bm_crypto c;
    int rc = bm_crypto_init(&c, 0);

    if (rc != 0)
        return rc;
    rc = bm_ripe_compute(&c, sign, enc, ripe);
    bm_crypto_free(&c);
    return rc;
}

static int bm_ripe_has_nulls(const uint8_t ripe[BM_RIPE_LEN], unsigned nulls)
{
    unsigned i;

    for (i = 0; i < nulls; i++)
        if (ripe[i] != 0)
            return 0;
    return 1;
}

static int bm_gen_args_ok(uint64_t version, unsigned nulls)
{
    return bm_version_ok(version) && nulls <= BM_ADDRESS_NULLS_MAX;
}

/* bm_passphrase_key - priv = SHA512(pass || var_int(nonce))[0..32), pub from it. */
static int bm_passphrase_key(struct bm_crypto *c, const void *pass, size_t passlen, uint64_t nonce,
                             uint8_t priv[BM_PRIVKEY_LEN], uint8_t pub[BM_PUBKEY_LEN])
{
    uint8_t vi[BM_VARINT_MAX_LEN];
    uint8_t h[BM_SHA512_LEN];
    size_t vlen = bm_varint_encode(nonce, vi);
    int rc;

    /* SHA512 of an empty passphrase is fine: hash the nonce alone then */
    rc = passlen == 0 ? bm_digest2(c->sha512, vi, vlen, NULL, 0, h)
                      : bm_digest2(c->sha512, pass, passlen, vi, vlen, h);
    if (rc == 0) {
        memcpy(priv, h, BM_PRIVKEY_LEN);
        rc = bm_pub_derive(c, priv, pub);
    }
    OPENSSL_cleanse(h, sizeof(h));
    return rc;
}

static int bm_passphrase_loop(struct bm_crypto *c, const void *pass, size_t passlen, unsigned nulls,
                              uint64_t *nonce_io, bm_keys_t *out)
{
    uint64_t nonce = *nonce_io;
    uint8_t ripe[BM_RIPE_LEN];
    uint32_t tries;
    int rc;

    for (tries = 0; tries < BM_ADDRESS_TRIES_MAX; tries++, nonce += 2) {
        if (nonce > UINT64_MAX - 3)
            return PST_ELIMIT;
        rc = bm_passphrase_key(c, pass, passlen, nonce, out->priv_signing, out->pub_signing);
        if (rc == 0)
            rc = bm_passphrase_key(c, pass, passlen, nonce + 1, out->priv_encryption,
                                   out->pub_encryption);
        if (rc == PST_EINVAL)
            continue; /* hash >= group order (p ~ 2^-128): PyBitmessage would reduce; skip */
        if (rc == 0)
            rc = bm_ripe_compute(c, out->pub_signing, out->pub_encryption, ripe);
        if (rc != 0)
            return rc;
        if (bm_ripe_has_nulls(ripe, nulls)) {
            memcpy(out->addr.ripe, ripe, BM_RIPE_LEN);
            *nonce_io = nonce + 2;
            return 0;
        }
    }
    return PST_ELIMIT;
}

int bm_keys_from_passphrase(const void *pass, size_t passlen, uint64_t version, uint64_t stream,
                            unsigned nulls, uint64_t *nonce_io, bm_keys_t *out)
{
    struct bm_crypto c;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!bm_gen_args_ok(version, nulls) || (pass == NULL && passlen > 0))
        return PST_EINVAL;
    rc = bm_crypto_init(&c, 1);
    if (rc != 0)
        return rc;
    out->addr.version = version;
    out->addr.stream = stream;
    rc = bm_passphrase_loop(&c, pass, passlen, nulls, nonce_io, out);
    bm_crypto_free(&c);
    if (rc != 0)
        OPENSSL_cleanse(out, sizeof(*out));
    return rc;
}

/* bm_random_key - a uniformly random valid private key and its public key. */
static int bm_random_key(struct bm_crypto *c, uint8_t priv[BM_PRIVKEY_LEN],
                         uint8_t pub[BM_PUBKEY_LEN])
{
    int rc;

    do {
        if (RAND_priv_bytes(priv, BM_PRIVKEY_LEN) != 1)
            return PST_EIO;
        rc = bm_pub_derive(c, priv, pub);
    } while (rc == PST_EINVAL); /* out of range: draw again */
    return rc;
}

static int bm_random_loop(struct bm_crypto *c, unsigned nulls, bm_keys_t *out)
{
    uint8_t ripe[BM_RIPE_LEN];
    uint32_t tries;
    int rc = bm_random_key(c, out->priv_signing, out->pub_signing);

    for (tries = 0; rc == 0 && tries < BM_ADDRESS_TRIES_MAX; tries++) {
        rc = bm_random_key(c, out->priv_encryption, out->pub_encryption);
        if (rc == 0)
            rc = bm_ripe_compute(c, out->pub_signing, out->pub_encryption, ripe);
        if (rc == 0 && bm_ripe_has_nulls(ripe, nulls)) {
            memcpy(out->addr.ripe, ripe, BM_RIPE_LEN);
            return 0;
        }
    }
    return rc != 0 ? rc : PST_ELIMIT;
}

int bm_keys_random(uint64_t version, uint64_t stream, unsigned nulls, bm_keys_t *out)
{
    struct bm_crypto c;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!bm_gen_args_ok(version, nulls))
        return PST_EINVAL;
    rc = bm_crypto_init(&c, 1);
    if (rc != 0)
        return rc;
    out->addr.version = version;
    out->addr.stream = stream;
    rc = bm_random_loop(&c, nulls, out);
    bm_crypto_free(&c);
    if (rc != 0)
        OPENSSL_cleanse(out, sizeof(*out));
    return rc;
}

/* ---- WIF ---- */

int bm_wif_encode(const uint8_t priv[BM_PRIVKEY_LEN], char *out, size_t outsz)
{
    uint8_t payload[BM_WIF_PAYLOAD_LEN];
    uint8_t sum[BM_SHA256_LEN];
    struct bm_crypto c;
    int rc;

    payload[0] = BM_WIF_PREFIX;
    memcpy(payload + 1, priv, BM_PRIVKEY_LEN);
    rc = bm_crypto_init(&c, 0);
    if (rc == 0) {
        rc = bm_double_hash(c.sha256, payload, 1 + BM_PRIVKEY_LEN, sum);
        bm_crypto_free(&c);
    }
    if (rc == 0) {
        memcpy(payload + 1 + BM_PRIVKEY_LEN, sum, BM_CHECKSUM_LEN);
        rc = bm_base58_encode(payload, sizeof(payload), out, outsz);
    }
    OPENSSL_cleanse(payload, sizeof(payload));
    return rc;
}

int bm_wif_decode(const char *s, size_t len, uint8_t priv[BM_PRIVKEY_LEN])
{
    uint8_t payload[BM_WIF_PAYLOAD_LEN];
    uint8_t sum[BM_SHA256_LEN];
    struct bm_crypto c;
    size_t n = 0;
    int rc;

    if (bm_base58_decode(s, len, payload, sizeof(payload), &n) != 0 || n != BM_WIF_PAYLOAD_LEN ||
        payload[0] != BM_WIF_PREFIX) {
        OPENSSL_cleanse(payload, sizeof(payload));
        return PST_EINVAL;
    }
    rc = bm_crypto_init(&c, 0);
    if (rc == 0) {
        rc = bm_double_hash(c.sha256, payload, 1 + BM_PRIVKEY_LEN, sum);
        bm_crypto_free(&c);
    }
    if (rc == 0 && memcmp(sum, payload + 1 + BM_PRIVKEY_LEN, BM_CHECKSUM_LEN) != 0)
        rc = PST_EINVAL;
    if (rc == 0)
        memcpy(priv, payload + 1, BM_PRIVKEY_LEN);
    OPENSSL_cleanse(payload, sizeof(payload));
    return rc;
}
