/*
 * bm_crypto.c - Bitmessage key pairs, ECDSA and ECIES on secp256k1 (OpenSSL 3 EVP).
 *
 * Wire formats follow the reference client PyBitmessage (src/pyelliptic/ecc.py,
 * src/highlevelcrypto.py) and the Bitmessage wiki pages "Encryption" and
 * "Protocol specification".
 *
 * Signatures. ECDSA over SHA-256(data), DER encoded (what OpenSSL's ECDSA_sign
 * emits, at most 72 bytes). The reference signs with SHA-256 and verifies by
 * trying SHA-1 first and SHA-256 second; bm_verify accepts either. OpenSSL 3
 * rejects non-canonical DER, as the reference's OpenSSL (>= 1.1) does.
 *
 * ECIES blob (all integers big-endian):
 *
 *   offset  size  field
 *   0       16    IV, random
 *   16      2     curve id, 0x02CA (secp256k1)
 *   18      2     xlen = length of X (32 when produced here)
 *   20      xlen  X of the ephemeral public key R
 *   ..      2     ylen = length of Y
 *   ..      ylen  Y of R
 *   ..      n*16  AES-256-CBC(key_e, IV, plaintext with PKCS#7 padding)
 *   len-32  32    HMAC-SHA256(key_m, bytes 0 .. len-33, i.e. IV .. ciphertext)
 *
 *   key_e || key_m = SHA-512(X coordinate of r*K), 32 bytes each, where r is the
 *   ephemeral private key and K the recipient's public key (ECDH, no other KDF;
 *   the X coordinate is zero-padded to 32 bytes as OpenSSL's ECDH_compute_key does).
 *
 * Reference clients before 2024 (PyBitmessage commit 8e952799 "Pad pubkey
 * coordinates") wrote X and Y with BN_num_bytes, i.e. shorter than 32 bytes when
 * they had leading zero bytes; we always write 32 and accept 0..32 on input.
 * We are stricter than the reference on input it could never have produced: a
 * curve id other than 0x02CA, a coordinate longer than 32 bytes, or a ciphertext
 * that is not a positive number of whole blocks is PST_EINVAL.
 *
 * Decryption order: parse and bound every field, check the ephemeral key is a
 * point on the curve (X, Y < p; the point at infinity has no 0x04 encoding),
 * ECDH, check the MAC in constant time (CRYPTO_memcmp), only then decrypt.
 *
 * Failure policy: every function returns 0 or a negative PST_E* code; bad input
 * never aborts and nothing is logged here (callers try every own key on every
 * object, so PST_EAUTH is the normal result). PST_EIO stands for an unexpected
 * OpenSSL failure (errno is not meaningful). OpenSSL's error queue is cleared
 * after a failure. Secrets (private keys, ECDH output, derived keys, decrypted
 * bytes not handed out) are wiped with OPENSSL_cleanse.
 *
 * Only EVP and the non-deprecated EC_GROUP/EC_POINT/BN APIs are used (EC_POINT_mul
 * to derive a public key from an imported private key: there is no EVP call for it).
 */
#include "bitmessage/bm_crypto.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>

#define BM_COORD_LEN 32   /* bytes in X, Y, a field element and a scalar */
#define BM_AES_BLOCK 16   /* AES block size (IV size, padding unit) */
#define BM_AES_KEY_LEN 32 /* AES-256 */
#define BM_KDF_LEN 64     /* SHA-512 output: key_e || key_m */
#define BM_CURVE_NAME "secp256k1"
#define BM_KEYGEN_TRIES 16 /* a random 256-bit string is >= n with probability ~2^-128 */
/* Largest accepted blob: a BM_ECIES_MAX_LEN plaintext, fully padded, plus the framing. */
#define BM_ECIES_MAX_BLOB (BM_ECIES_MAX_LEN + BM_AES_BLOCK + BM_ECIES_OVERHEAD)

struct bm_key {
    EVP_PKEY *pkey;
    unsigned char priv[BM_PRIVKEY_LEN];
    unsigned char pub[BM_PUBKEY_LEN];
};

/* ---- helpers -------------------------------------------------------------------------- */

static int bm_ossl_fail(int err)
{
    ERR_clear_error();
    return err;
}

static void bm_put_u16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)(v & 0xff);
}

static unsigned bm_get_u16(const unsigned char *p)
{
    return ((unsigned)p[0] << 8) | p[1];
}

/* bm_pkey_build - EVP_PKEY on secp256k1 from pub (65 bytes) and optionally priv (32 bytes). */
static int bm_pkey_build(const unsigned char *priv, const unsigned char *pub, EVP_PKEY **out)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    BIGNUM *d = NULL;
    int sel = priv != NULL ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY;
    int rc = PST_EIO;

    *out = NULL;
    if (bld == NULL)
        return PST_ENOMEM;
    if (priv != NULL && (d = BN_secure_new()) == NULL)
        goto done;
    if (d != NULL && BN_bin2bn(priv, BM_PRIVKEY_LEN, d) == NULL)
        goto done;
    if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, BM_CURVE_NAME, 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, BM_PUBKEY_LEN) ||
        (d != NULL && !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d)))
        goto done;
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0)
        goto done;
    /* Importing the public key decodes the point, which fails off the curve. */
    rc = EVP_PKEY_fromdata(ctx, out, sel, params) > 0 ? 0 : PST_EINVAL;
done:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(d);
    return rc == 0 ? 0 : bm_ossl_fail(rc);
}

/* bm_pub_load - validated EVP_PKEY for a received 65-byte public key; PST_EINVAL if bad. */
static int bm_pub_load(const unsigned char pub[BM_PUBKEY_LEN], EVP_PKEY **out)
{
    EVP_PKEY_CTX *ctx = NULL;
    int rc;

    *out = NULL;
    if (pub[0] != POINT_CONVERSION_UNCOMPRESSED) /* also refuses hybrid 0x06/0x07 forms */
        return PST_EINVAL;
    rc = bm_pkey_build(NULL, pub, out);
    if (rc != 0)
        return rc;
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, *out, NULL);
    if (ctx == NULL) {
        rc = PST_ENOMEM;
    } else if (EVP_PKEY_public_check_quick(ctx) != 1) {
        /* Not infinity, coordinates < p, on the curve. The cofactor is 1, so every such
         * point has order n and the full (slow) order check adds nothing. */
        rc = PST_EINVAL;
    }
    EVP_PKEY_CTX_free(ctx);
    if (rc != 0) {
        EVP_PKEY_free(*out);
        *out = NULL;
        return bm_ossl_fail(rc);
    }
    return 0;
}

/* bm_priv_to_pub - 0x04||X||Y of priv*G; PST_EINVAL unless 0 < priv < n. */
static int bm_priv_to_pub(const unsigned char priv[BM_PRIVKEY_LEN],
                          unsigned char pub[BM_PUBKEY_LEN])
{
    EC_GROUP *grp = EC_GROUP_new_by_curve_name(NID_secp256k1);
    BN_CTX *bnctx = BN_CTX_secure_new();
    BIGNUM *d = BN_secure_new();
    EC_POINT *pt = NULL;
    int rc = PST_EIO;

    if (grp == NULL || bnctx == NULL || d == NULL || BN_bin2bn(priv, BM_PRIVKEY_LEN, d) == NULL)
        goto done;
    if (BN_is_zero(d) || BN_cmp(d, EC_GROUP_get0_order(grp)) >= 0) {
        rc = PST_EINVAL;
        goto done;
    }
    pt = EC_POINT_new(grp);
    if (pt == NULL || !EC_POINT_mul(grp, pt, d, NULL, NULL, bnctx))
        goto done;
    if (EC_POINT_point2oct(grp, pt, POINT_CONVERSION_UNCOMPRESSED, pub, BM_PUBKEY_LEN, bnctx) !=
        BM_PUBKEY_LEN)
        goto done;
    rc = 0;
done:
    EC_POINT_free(pt);
    BN_clear_free(d);
    BN_CTX_free(bnctx);
    EC_GROUP_free(grp);
    return rc == 0 ? 0 : bm_ossl_fail(rc);
}

/* ---- keys ----------------------------------------------------------------------------- */

int bm_key_from_private(const unsigned char priv[BM_PRIVKEY_LEN], bm_key_t **out)
{
    bm_key_t *k;
    int rc;

    *out = NULL;
    k = calloc(1, sizeof(*k));
    if (k == NULL)
        return PST_ENOMEM;
    memcpy(k->priv, priv, BM_PRIVKEY_LEN);
    rc = bm_priv_to_pub(k->priv, k->pub);
    if (rc == 0)
        rc = bm_pkey_build(k->priv, k->pub, &k->pkey);
    if (rc != 0) {
        bm_key_free(&k);
        return rc;
    }
    *out = k;
    return 0;
}

int bm_key_generate(bm_key_t **out)
{
    unsigned char priv[BM_PRIVKEY_LEN];
    int rc = PST_EIO;

    *out = NULL;
    /* Uniform in [1, n-1] by rejection, like the reference (32 random bytes). */
    for (int i = 0; i < BM_KEYGEN_TRIES; i++) {
        if (RAND_priv_bytes(priv, sizeof(priv)) != 1) {
            rc = bm_ossl_fail(PST_EIO);
            break;
        }
        rc = bm_key_from_private(priv, out);
        if (rc != PST_EINVAL)
            break;
    }
    OPENSSL_cleanse(priv, sizeof(priv));
    return rc;
}

void bm_key_public(const bm_key_t *key, unsigned char out[BM_PUBKEY_LEN])
{
    PST_ASSERT(key != NULL);
    memcpy(out, key->pub, BM_PUBKEY_LEN);
}

void bm_key_private(const bm_key_t *key, unsigned char out[BM_PRIVKEY_LEN])
{
    PST_ASSERT(key != NULL);
    memcpy(out, key->priv, BM_PRIVKEY_LEN);
}

void bm_key_free(bm_key_t **key)
{
    if (key == NULL || *key == NULL)
        return;
    EVP_PKEY_free((*key)->pkey);
    OPENSSL_cleanse((*key)->priv, sizeof((*key)->priv));
    free(*key);
    *key = NULL;
}

int bm_pubkey_check(const unsigned char pub[BM_PUBKEY_LEN])
{
    EVP_PKEY *pk = NULL;
    int rc = bm_pub_load(pub, &pk);

    EVP_PKEY_free(pk);
    return rc;
}

/* ---- signatures ----------------------------------------------------------------------- */

static const char *bm_digest_name(enum bm_sig_digest dg)
{
    return dg == BM_SIG_SHA1 ? "SHA1" : "SHA256";
}

int bm_sign_digest(const bm_key_t *key, enum bm_sig_digest dg, const void *data, size_t len,
                   buf_t *sig_out)
{
    unsigned char sig[BM_SIG_MAX_LEN];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = PST_EIO;

    PST_ASSERT(key != NULL && sig_out != NULL && (data != NULL || len == 0));
    if (md == NULL)
        return PST_ENOMEM;
    if (EVP_DigestSignInit_ex(md, NULL, bm_digest_name(dg), NULL, NULL, key->pkey, NULL) == 1 &&
        EVP_DigestSign(md, sig, &siglen, data, len) == 1)
        rc = 0;
    EVP_MD_CTX_free(md);
    if (rc != 0)
        return bm_ossl_fail(rc);
    return buf_append(sig_out, sig, siglen);
}

int bm_sign(const bm_key_t *key, const void *data, size_t len, buf_t *sig_out)
{
    return bm_sign_digest(key, BM_SIG_SHA256, data, len, sig_out);
}

/* bm_verify_one - 0 if sig verifies with digest dg, PST_EAUTH if not. */
static int bm_verify_one(EVP_PKEY *pk, enum bm_sig_digest dg, const void *data, size_t len,
                         const void *sig, size_t siglen)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = PST_EAUTH;

    if (md == NULL)
        return PST_ENOMEM;
    if (EVP_DigestVerifyInit_ex(md, NULL, bm_digest_name(dg), NULL, NULL, pk, NULL) != 1)
        rc = PST_EIO;
    else if (EVP_DigestVerify(md, sig, siglen, data, len) == 1)
        rc = 0;
    EVP_MD_CTX_free(md);
    return rc == 0 ? 0 : bm_ossl_fail(rc);
}

int bm_verify(const unsigned char pub[BM_PUBKEY_LEN], const void *data, size_t len, const void *sig,
              size_t siglen)
{
    EVP_PKEY *pk = NULL;
    int rc;

    PST_ASSERT(pub != NULL && (data != NULL || len == 0) && (sig != NULL || siglen == 0));
    if (siglen == 0 || siglen > BM_SIG_MAX_LEN)
        return PST_EAUTH;
    rc = bm_pub_load(pub, &pk);
    if (rc != 0)
        return rc;
    /* Same order as the reference: SHA-1 (old clients) first, then SHA-256. */
    rc = bm_verify_one(pk, BM_SIG_SHA1, data, len, sig, siglen);
    if (rc == PST_EAUTH)
        rc = bm_verify_one(pk, BM_SIG_SHA256, data, len, sig, siglen);
    EVP_PKEY_free(pk);
    return rc;
}

/* ---- ECIES ---------------------------------------------------------------------------- */

/* bm_ecies_kdf - key_e || key_m = SHA-512(x(priv * peer)). */
static int bm_ecies_kdf(EVP_PKEY *priv, EVP_PKEY *peer, unsigned char keys[BM_KDF_LEN])
{
    unsigned char secret[BM_COORD_LEN];
    size_t slen = sizeof(secret);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
    int rc = PST_EIO;

    if (ctx == NULL)
        return bm_ossl_fail(PST_ENOMEM);
    if (EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer_ex(ctx, peer, 0) == 1 &&
        EVP_PKEY_derive(ctx, secret, &slen) == 1 && slen == BM_COORD_LEN &&
        EVP_Digest(secret, slen, keys, NULL, EVP_sha512(), NULL) == 1)
        rc = 0;
    EVP_PKEY_CTX_free(ctx);
    OPENSSL_cleanse(secret, sizeof(secret));
    return rc == 0 ? 0 : bm_ossl_fail(rc);
}

static int bm_hmac_sha256(const unsigned char key_m[BM_AES_KEY_LEN], const unsigned char *data,
                          size_t len, unsigned char mac[BM_ECIES_MAC_LEN])
{
    size_t maclen = 0;

    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key_m, BM_AES_KEY_LEN, data, len, mac,
                  BM_ECIES_MAC_LEN, &maclen) == NULL ||
        maclen != BM_ECIES_MAC_LEN)
        return bm_ossl_fail(PST_EIO);
    return 0;
}

/* bm_aes_cbc - AES-256-CBC with PKCS#7 padding; out has room for inlen + BM_AES_BLOCK.
 * Returns 0, PST_EINVAL (bad padding on decryption) or PST_EIO. */
static int bm_aes_cbc(int enc, const unsigned char *key_e, const unsigned char *iv,
                      const unsigned char *in, size_t inlen, unsigned char *out, size_t *outlen)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n1 = 0, n2 = 0;
    int rc = PST_EIO;

    PST_ASSERT(inlen <= BM_ECIES_MAX_BLOB);
    if (c == NULL)
        return bm_ossl_fail(PST_ENOMEM);
    if (EVP_CipherInit_ex(c, EVP_aes_256_cbc(), NULL, key_e, iv, enc) != 1 ||
        EVP_CipherUpdate(c, out, &n1, in, (int)inlen) != 1)
        goto done;
    rc = EVP_CipherFinal_ex(c, out + n1, &n2) == 1 ? 0 : enc ? PST_EIO : PST_EINVAL;
    *outlen = (size_t)n1 + (size_t)n2;
done:
    EVP_CIPHER_CTX_free(c);
    return rc == 0 ? 0 : bm_ossl_fail(rc);
}

int bm_ecies_encrypt_fixed(const unsigned char pub[BM_PUBKEY_LEN], const bm_key_t *ephemeral,
                           const unsigned char iv[BM_ECIES_IV_LEN], const void *plain,
                           size_t plain_len, buf_t *out)
{
    unsigned char keys[BM_KDF_LEN];
    EVP_PKEY *peer = NULL;
    unsigned char *blob = NULL, *p;
    size_t ctlen = 0, total;
    int rc;

    PST_ASSERT(pub != NULL && ephemeral != NULL && iv != NULL && out != NULL);
    PST_ASSERT(plain != NULL || plain_len == 0);
    if (plain_len > BM_ECIES_MAX_LEN)
        return PST_ELIMIT;
    rc = bm_pub_load(pub, &peer);
    if (rc == 0)
        rc = bm_ecies_kdf(ephemeral->pkey, peer, keys);
    EVP_PKEY_free(peer);
    if (rc != 0)
        goto done;
    total = BM_ECIES_OVERHEAD + (plain_len / BM_AES_BLOCK + 1) * BM_AES_BLOCK;
    blob = malloc(total);
    if (blob == NULL) {
        rc = PST_ENOMEM;
        goto done;
    }
    p = blob;
    memcpy(p, iv, BM_ECIES_IV_LEN);
    p += BM_ECIES_IV_LEN;
    bm_put_u16(p, BM_CURVE_SECP256K1);
    bm_put_u16(p + 2, BM_COORD_LEN);
    memcpy(p + 4, ephemeral->pub + 1, BM_COORD_LEN);
    bm_put_u16(p + 4 + BM_COORD_LEN, BM_COORD_LEN);
    memcpy(p + 6 + BM_COORD_LEN, ephemeral->pub + 1 + BM_COORD_LEN, BM_COORD_LEN);
    p += 6 + 2 * BM_COORD_LEN;
    rc = bm_aes_cbc(1, keys, iv, plain, plain_len, p, &ctlen);
    if (rc != 0)
        goto done;
    PST_ASSERT((size_t)(p - blob) + ctlen + BM_ECIES_MAC_LEN == total);
    p += ctlen;
    rc = bm_hmac_sha256(keys + BM_AES_KEY_LEN, blob, (size_t)(p - blob), p);
    if (rc == 0)
        rc = buf_append(out, blob, total);
done:
    OPENSSL_cleanse(keys, sizeof(keys));
    free(blob);
    return rc;
}

int bm_ecies_encrypt(const unsigned char pub[BM_PUBKEY_LEN], const void *plain, size_t plain_len,
                     buf_t *out)
{
    unsigned char iv[BM_ECIES_IV_LEN];
    bm_key_t *eph = NULL;
    int rc;

    if (plain_len > BM_ECIES_MAX_LEN)
        return PST_ELIMIT;
    rc = bm_pubkey_check(pub);
    if (rc != 0)
        return rc;
    if (RAND_bytes(iv, sizeof(iv)) != 1)
        return bm_ossl_fail(PST_EIO);
    rc = bm_key_generate(&eph);
    if (rc != 0)
        return rc;
    rc = bm_ecies_encrypt_fixed(pub, eph, iv, plain, plain_len, out);
    bm_key_free(&eph);
    return rc;
}

/* Parsed, bounded view of an ECIES blob (pointers borrow the blob). */
struct bm_ecies_parts {
    const unsigned char *iv;
    unsigned char eph_pub[BM_PUBKEY_LEN]; /* X and Y left-padded to 32 bytes */
    const unsigned char *ct;
    size_t ctlen;
    const unsigned char *mac;
    size_t maclen_covered; /* bytes covered by the MAC: everything before it */
};

/* bm_ecies_coord - read a length-prefixed coordinate at *off into out (left-padded). */
static int bm_ecies_coord(const unsigned char *b, size_t len, size_t *off,
                          unsigned char out[BM_COORD_LEN])
{
    size_t n;

    if (len - *off < 2)
        return PST_EINVAL;
    n = bm_get_u16(b + *off);
    *off += 2;
    if (n > BM_COORD_LEN || len - *off < n)
        return PST_EINVAL;
    memset(out, 0, BM_COORD_LEN - n);
    memcpy(out + (BM_COORD_LEN - n), b + *off, n);
    *off += n;
    return 0;
}

static int bm_ecies_parse(const unsigned char *b, size_t len, struct bm_ecies_parts *pp)
{
    size_t off = BM_ECIES_IV_LEN + 2;
    size_t rest;

    if (len < off)
        return PST_EINVAL;
    pp->iv = b;
    if (bm_get_u16(b + BM_ECIES_IV_LEN) != BM_CURVE_SECP256K1)
        return PST_EINVAL;
    pp->eph_pub[0] = POINT_CONVERSION_UNCOMPRESSED;
    if (bm_ecies_coord(b, len, &off, pp->eph_pub + 1) != 0 ||
        bm_ecies_coord(b, len, &off, pp->eph_pub + 1 + BM_COORD_LEN) != 0)
        return PST_EINVAL;
    rest = len - off;
    if (rest < BM_ECIES_MAC_LEN + BM_AES_BLOCK || (rest - BM_ECIES_MAC_LEN) % BM_AES_BLOCK != 0)
        return PST_EINVAL;
    pp->ct = b + off;
    pp->ctlen = rest - BM_ECIES_MAC_LEN;
    pp->mac = b + len - BM_ECIES_MAC_LEN;
    pp->maclen_covered = len - BM_ECIES_MAC_LEN;
    return 0;
}

int bm_ecies_decrypt(const bm_key_t *key, const void *blob, size_t len, buf_t *plain_out)
{
    struct bm_ecies_parts pp;
    unsigned char keys[BM_KDF_LEN];
    unsigned char mac[BM_ECIES_MAC_LEN];
    unsigned char *plain = NULL;
    size_t plen = 0;
    EVP_PKEY *eph = NULL;
    int rc;

    PST_ASSERT(key != NULL && plain_out != NULL && (blob != NULL || len == 0));
    if (len > BM_ECIES_MAX_BLOB)
        return PST_ELIMIT;
    rc = bm_ecies_parse(blob, len, &pp);
    if (rc == 0)
        rc = bm_pub_load(pp.eph_pub, &eph);
    if (rc == 0)
        rc = bm_ecies_kdf(key->pkey, eph, keys);
    EVP_PKEY_free(eph);
    if (rc != 0)
        goto done;
    rc = bm_hmac_sha256(keys + BM_AES_KEY_LEN, blob, pp.maclen_covered, mac);
    if (rc != 0)
        goto done;
    if (CRYPTO_memcmp(mac, pp.mac, BM_ECIES_MAC_LEN) != 0) {
        rc = PST_EAUTH;
        goto done;
    }
    plain = malloc(pp.ctlen + BM_AES_BLOCK);
    if (plain == NULL) {
        rc = PST_ENOMEM;
        goto done;
    }
    rc = bm_aes_cbc(0, keys, pp.iv, pp.ct, pp.ctlen, plain, &plen);
    if (rc == 0)
        rc = buf_append(plain_out, plain, plen);
done:
    OPENSSL_cleanse(keys, sizeof(keys));
    if (plain != NULL) {
        OPENSSL_cleanse(plain, pp.ctlen + BM_AES_BLOCK);
        free(plain);
    }
    return rc;
}
