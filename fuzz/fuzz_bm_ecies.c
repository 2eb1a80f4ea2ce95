/*
 * fuzz_bm_ecies.c - libFuzzer target for the Bitmessage ECIES decoder (bm_crypto.c).
 *
 * The first input byte picks a mode, the rest is the payload:
 *   even: the payload is an ECIES blob for a fixed recipient key. Decryption must
 *         return a PST_E* code or succeed, never crash, and leave the output buffer
 *         unchanged on failure. The payload is also fed to bm_verify as a DER
 *         signature (the other parser facing the network).
 *   odd:  the payload is a plaintext; it is encrypted to the fixed key, and the blob
 *         must decrypt back to exactly the payload, while the blob with its last
 *         byte (MAC) or a byte chosen by the input flipped must fail with PST_EAUTH
 *         or PST_EINVAL. This drives the decoder past the MAC check.
 * Keys are made once (libFuzzer calls this function many times in one process).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bitmessage/bm_crypto.h"

#define FZ_MAX_INPUT 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bm_key_t *fz_key;
static bm_key_t *fz_eph;
static unsigned char fz_pub[BM_PUBKEY_LEN];

static void fz_init(void)
{
    unsigned char priv[BM_PRIVKEY_LEN];

    if (fz_key != NULL)
        return;
    memset(priv, 0x42, sizeof(priv));
    if (bm_key_from_private(priv, &fz_key) != 0)
        abort();
    memset(priv, 0x17, sizeof(priv));
    if (bm_key_from_private(priv, &fz_eph) != 0)
        abort();
    bm_key_public(fz_key, fz_pub);
}

static void fz_decode(const uint8_t *p, size_t n)
{
    buf_t *out = buf_new(FZ_MAX_INPUT);
    int rc;

    if (out == NULL)
        abort();
    rc = bm_ecies_decrypt(fz_key, p, n, out);
    if (rc != 0 && (out->len != 0 || (rc != PST_EINVAL && rc != PST_EAUTH)))
        abort();
    if (rc == 0 && out->len >= n)
        abort();
    rc = bm_verify(fz_pub, "x", 1, p, n);
    if (rc != 0 && rc != PST_EAUTH)
        abort();
    buf_free(&out);
}

static void fz_roundtrip(const uint8_t *p, size_t n)
{
    static const unsigned char iv[BM_ECIES_IV_LEN] = "fuzz-fixed-iv-16";
    buf_t *ct = buf_new(FZ_MAX_INPUT * 2);
    buf_t *pt = buf_new(FZ_MAX_INPUT);
    unsigned char *bad;
    size_t at;
    int rc;

    if (ct == NULL || pt == NULL)
        abort();
    if (bm_ecies_encrypt_fixed(fz_pub, fz_eph, iv, p, n, ct) != 0)
        abort();
    if (bm_ecies_decrypt(fz_key, ct->data, ct->len, pt) != 0 || pt->len != n ||
        memcmp(pt->data, p, n) != 0)
        abort();
    bad = malloc(ct->len);
    if (bad == NULL)
        abort();
    at = n > 0 ? (p[0] * 131u + n) % ct->len : ct->len - 1;
    memcpy(bad, ct->data, ct->len);
    bad[at] ^= (unsigned char)(n > 1 ? (p[1] | 1) : 1);
    buf_reset(pt);
    rc = bm_ecies_decrypt(fz_key, bad, ct->len, pt);
    if ((rc != PST_EAUTH && rc != PST_EINVAL) || pt->len != 0)
        abort();
    free(bad);
    buf_free(&ct);
    buf_free(&pt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > FZ_MAX_INPUT)
        return 0;
    fz_init();
    if ((data[0] & 1) == 0)
        fz_decode(data + 1, size - 1);
    else
        fz_roundtrip(data + 1, size - 1);
    return 0;
}
