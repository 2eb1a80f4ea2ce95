/*
 * fuzz_bm_address.c - libFuzzer target for Bitmessage address text and WIF
 * parsing (src/bitmessage/bm_address.c).
 *
 * Input: the bytes of an address as a user, a mail header or an API call
 * could supply them. Checks, besides "no crash / no overread" (ASan):
 *   - a refused address always comes with a status other than OK;
 *   - an accepted address has version 3 or 4 and re-encodes to exactly the
 *     input (with "BM-" added if it was absent): one text form per address;
 *   - the tag derivation works on every accepted address;
 *   - an accepted WIF re-encodes to the input; base58 round-trips.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bitmessage/bm_address.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_address(const char *s, size_t size)
{
    enum bm_addr_status st = BM_ADDR_OK;
    char text[BM_ADDRESS_STR_MAX];
    uint8_t key[BM_PRIVKEY_LEN], tag[BM_TAG_LEN];
    size_t skip;
    bm_address_t a;

    if (bm_address_decode(s, size, &a, &st) != 0) {
        if (st == BM_ADDR_OK)
            abort();
        return;
    }
    if (st != BM_ADDR_OK || a.version < 3 || a.version > 4)
        abort();
    if (bm_address_encode(&a, text, sizeof(text)) != 0)
        abort();
    skip = size >= 3 && memcmp(s, "BM-", 3) == 0 ? 0 : 3;
    if (strlen(text) - skip != size || memcmp(text + skip, s, size) != 0)
        abort();
    if (bm_address_tag(&a, key, tag) != 0)
        abort();
}

static void fuzz_wif(const char *s, size_t size)
{
    uint8_t priv[BM_PRIVKEY_LEN];
    char text[BM_WIF_STR_MAX];

    if (bm_wif_decode(s, size, priv) != 0)
        return;
    if (bm_wif_encode(priv, text, sizeof(text)) != 0)
        abort();
    if (strlen(text) != size || memcmp(text, s, size) != 0)
        abort();
}

static void fuzz_base58(const char *s, size_t size)
{
    uint8_t num[64];
    char text[128];
    size_t n = 0;

    if (bm_base58_decode(s, size, num, sizeof(num), &n) != 0)
        return;
    if (bm_base58_encode(num, n, text, sizeof(text)) != 0)
        abort();
    if (strlen(text) != size || memcmp(text, s, size) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;

    fuzz_address(s, size);
    fuzz_wif(s, size);
    if (size <= 80)
        fuzz_base58(s, size);
    return 0;
}
