/*
 * fuzz_dns_mx.c - libFuzzer target for the MX RDATA parser (dns_parse_mx_rdata).
 *
 * Input: raw RDATA as a DNS server could send it. Besides "no crash",
 * checks on success:
 *   - the name is NUL-terminated within the buffer, at most DNS_NAME_MAX
 *     characters, and is "." or a valid host name (dns_domain_valid);
 *   - the preference equals the first two input bytes;
 *   - parsing into a buffer exactly one byte too small gives PST_ELIMIT,
 *     and into an exact-size buffer gives the same name.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char name[256], exact[256];
    unsigned pref = 0, pref2 = 0;
    size_t nlen;
    int rc = dns_parse_mx_rdata(data, size, &pref, name, sizeof(name));

    if (rc != 0) {
        if (rc != PST_EINVAL)
            abort(); /* 256 bytes always suffice */
        return 0;
    }
    nlen = strnlen(name, sizeof(name));
    if (nlen == sizeof(name) || nlen > DNS_NAME_MAX)
        abort();
    if (pref != (((unsigned)data[0] << 8) | data[1]))
        abort();
    if (strcmp(name, ".") != 0 && !dns_domain_valid(name))
        abort();
    if (dns_parse_mx_rdata(data, size, &pref2, exact, nlen + 1) != 0 || strcmp(exact, name) != 0 ||
        pref2 != pref)
        abort();
    if (dns_parse_mx_rdata(data, size, &pref2, exact, nlen) != PST_ELIMIT)
        abort();
    return 0;
}
