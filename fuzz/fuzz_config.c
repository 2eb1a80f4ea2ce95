/*
 * fuzz_config.c - libFuzzer target for cfg_load_string(): any byte string
 * must either load or produce an error message; never crash, never leak.
 * A loaded config must also dump without error.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/config.h"

#define FUZZ_CONFIG_MAX (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int devnull = -1;
    char err[512];
    struct cfg *c;
    char *text;

    if (size > FUZZ_CONFIG_MAX)
        return 0;
    if (devnull < 0)
        devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0'; /* cfg_load_string takes C text: stops at the first NUL */
    err[0] = '\0';
    c = cfg_load_string(text, "fuzz.ini", err, sizeof(err));
    if (c == NULL) {
        if (err[0] == '\0')
            abort(); /* every failure must explain itself */
    } else {
        if (devnull >= 0 && cfg_dump(c, devnull) != 0)
            abort();
        (void)cfg_is_local_domain(c, "localhost");
        cfg_free(&c);
    }
    free(text);
    return 0;
}
