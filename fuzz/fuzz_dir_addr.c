/*
 * fuzz_dir_addr.c - libFuzzer target for the directory's address
 * normalisation (SMTP keys with IDNA, Bitmessage and dmail alternatives).
 *
 * The whole input is tried as each kind of address. Checks, besides "no
 * crash" (ASan/UBSan):
 *   - a refusal always comes with a reason and leaves out empty;
 *   - an accepted result is NUL-terminated within its limit, holds no
 *     control characters or spaces, and is a fixed point: normalising the
 *     output again gives the same text (the directory key is stable);
 *   - a case-insensitive SMTP key has no ASCII upper case, and is the
 *     lower-cased case-sensitive key;
 *   - dir_addr_guess_type names a type whose normaliser accepts the
 *     canonical form it produced.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "directory/dir_addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_text(const char *out, size_t max)
{
    size_t n = strnlen(out, max + 1), i;

    if (n == 0 || n > max)
        abort();
    for (i = 0; i < n; i++)
        if ((unsigned char)out[i] <= 0x20 || out[i] == 0x7f)
            abort();
}

static void fuzz_smtp(const char *in, size_t len, bool cs, char *key)
{
    char again[DIR_SMTP_MAX + 1];
    const char *why = NULL;
    size_t i;

    key[0] = '\0';
    if (dir_addr_smtp_normalize(in, len, cs, key, DIR_SMTP_MAX + 1, &why) != 0) {
        if (why == NULL || key[0] != '\0')
            abort();
        return;
    }
    fuzz_check_text(key, DIR_ADDR_PATH_MAX);
    if (dir_addr_smtp_normalize(key, strlen(key), cs, again, sizeof(again), &why) != 0 ||
        strcmp(key, again) != 0)
        abort();
    if (!cs)
        for (i = 0; key[i] != '\0'; i++)
            if (key[i] >= 'A' && key[i] <= 'Z')
                abort();
}

static void fuzz_alt(const char *type, const char *in, size_t len)
{
    char out[DIR_ALT_MAX + 1], again[DIR_ALT_MAX + 1];
    const char *why = NULL;

    if (dir_addr_alt_normalize(type, in, len, out, sizeof(out), &why) != 0) {
        if (why == NULL || out[0] != '\0')
            abort();
        return;
    }
    fuzz_check_text(out, DIR_ALT_MAX);
    if (dir_addr_alt_normalize(type, out, strlen(out), again, sizeof(again), &why) != 0 ||
        strcmp(out, again) != 0)
        abort();
    if (dir_addr_guess_type(out, strlen(out)) == NULL ||
        strcmp(dir_addr_guess_type(out, strlen(out)), type) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char ci[DIR_SMTP_MAX + 1], cs[DIR_SMTP_MAX + 1];
    const char *in = (const char *)data;
    const char *type;
    size_t i;

    fuzz_smtp(in, size, false, ci);
    fuzz_smtp(in, size, true, cs);
    if ((ci[0] == '\0') != (cs[0] == '\0') || strlen(ci) != strlen(cs))
        abort();
    for (i = 0; cs[i] != '\0'; i++)
        if ((cs[i] >= 'A' && cs[i] <= 'Z' ? cs[i] - 'A' + 'a' : cs[i]) != ci[i])
            abort();
    fuzz_alt("bitmessage", in, size);
    fuzz_alt("dmail", in, size);
    type = dir_addr_guess_type(in, size);
    if (type != NULL && !dir_addr_type_valid(type))
        abort();
    return 0;
}
