/*
 * fuzz_mailaddr.c - libFuzzer target for the RFC 5321 path parser.
 *
 * Input: first byte = flags (MAILADDR_ALLOW_*), rest = a path as it would
 * follow "MAIL FROM:" or "RCPT TO:". Checks, besides "no crash":
 *   - consumed never exceeds the input and never exceeds MAILADDR_PATH_MAX;
 *   - a parsed mailbox formats, and the formatted text parses back (as a
 *     bare address) to the same local part and domain (the relay decision
 *     depends on the domain being stable);
 *   - mailaddr_domain_valid() agrees for ordinary domains.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mailaddr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_roundtrip(const struct mailaddr *a)
{
    char out[MAILADDR_PATH_MAX * 2 + 8];
    struct mailaddr b;
    int flags = a->has_utf8 ? MAILADDR_ALLOW_UTF8 : 0;

    if (a->is_null || a->domain[0] == '\0')
        return;
    if (mailaddr_format(a, out, sizeof(out)) != 0)
        abort();
    if (mailaddr_parse(out, flags, &b) != 0)
        abort();
    if (strcmp(a->local, b.local) != 0 || strcmp(a->domain, b.domain) != 0)
        abort();
    if (!a->is_literal && !mailaddr_domain_valid(a->domain, a->has_utf8))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mailaddr a;
    size_t used = 0;
    int flags;
    char *z;

    if (size < 1)
        return 0;
    flags = data[0] & (MAILADDR_ALLOW_NULL | MAILADDR_ALLOW_UTF8 | MAILADDR_ALLOW_NOBRACKET |
                       MAILADDR_ALLOW_POSTMASTER);
    data++;
    size--;
    if (mailaddr_parse_path((const char *)data, size, flags, &a, &used) == 0) {
        if (used > size || used > MAILADDR_PATH_MAX || used == 0)
            abort();
        fuzz_roundtrip(&a);
    } else if (used != 0) {
        abort();
    }

    /* the same bytes as a NUL-terminated bare address */
    z = malloc(size + 1);
    if (z == NULL)
        return 0;
    memcpy(z, data, size);
    z[size] = '\0';
    if (mailaddr_parse(z, flags, &a) == 0)
        fuzz_roundtrip(&a);
    (void)mailaddr_domain_valid(z, flags & MAILADDR_ALLOW_UTF8);
    free(z);
    return 0;
}
