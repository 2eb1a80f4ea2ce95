/*
 * dir_addr.h - normalising and checking the addresses the directory holds.
 *
 * SMTP addresses (RFC 5321 / RFC 6531): local@domain. The domain is
 * lower-cased and, when it holds non-ASCII labels, converted to its IDNA
 * A-label form (libidn2, IDNA2008 with UTS #46 mapping), so "Bücher.Example"
 * and "xn--bcher-kva.example" are the same key. The local part is kept as
 * given (it may be UTF-8); it is compared case-insensitively (ASCII case
 * folding) unless the directory is configured case-sensitive: the
 * normalised key then lower-cases it too. Quoted local parts, source routes,
 * comments and addresses over the RFC 5321 limits are refused.
 *
 * Alternative addresses by type:
 *   bitmessage  "BM-" base58 address, checksum and version verified
 *               (bitmessage/bm_address.h); kept in its canonical form.
 *   dmail       "dmail://host[:port]/path" URI: host a valid domain name or
 *               IP literal, printable ASCII only, no userinfo, no fragment.
 *
 * Every function fills a reason (static text, for the web form's error
 * page and the import summary) and returns 0 or PST_EINVAL / PST_ELIMIT.
 */
#ifndef POSTERN_DIR_ADDR_H
#define POSTERN_DIR_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#include "directory/dir_store.h"
#include "lib/err.h"

/*
 * Limits (RFC 5321 4.5.3.1): local part 64 octets, domain 255 octets (in
 * its A-label form), and the whole address 254 octets, since a path of
 * 256 octets includes the angle brackets: a longer address could never be
 * used in an SMTP command. Input longer than DIR_ADDR_INPUT_MAX is refused
 * before any parsing.
 */
#define DIR_ADDR_LOCAL_MAX 64
#define DIR_ADDR_DOMAIN_MAX 255
#define DIR_ADDR_PATH_MAX 254
#define DIR_ADDR_INPUT_MAX 1024

/*
 * dir_addr_smtp_normalize - the directory key of the SMTP address in
 * (len bytes, need not be NUL-terminated) into out (>= DIR_SMTP_MAX + 1).
 * case_sensitive: keep the local part's case in the key.
 */
PST_MUST_CHECK int dir_addr_smtp_normalize(const char *in, size_t len, bool case_sensitive,
                                           char *out, size_t outsz, const char **why);

/* dir_addr_type_valid - 1 for "bitmessage" or "dmail". */
int dir_addr_type_valid(const char *type);

/*
 * dir_addr_alt_normalize - check the alternative address of type (len bytes
 * at in) and write its canonical form into out (>= DIR_ALT_MAX + 1).
 */
PST_MUST_CHECK int dir_addr_alt_normalize(const char *type, const char *in, size_t len, char *out,
                                          size_t outsz, const char **why);

/* dir_addr_guess_type - "bitmessage" if in starts with "BM-", "dmail" for "dmail://", else NULL. */
const char *dir_addr_guess_type(const char *in, size_t len);

#endif
