/*
 * mailaddr.h - RFC 5321 mail addresses: parsing paths, validating, formatting.
 *
 * Implements the Path / Mailbox grammar of RFC 5321 4.1.2 with the size
 * limits of 4.5.3.1 (local part 64 octets, domain 255, path 256), the
 * SMTPUTF8 extension of RFC 6531 3.3 (UTF-8 allowed in local part and domain
 * when the caller says so), address literals ([192.0.2.1], [IPv6:...]) and
 * source routes (@a,@b:user@c), which are parsed and dropped as RFC 5321
 * 3.6.1 and 4.1.2 allow. Quoted local parts are unquoted into
 * mailaddr.local with quoted=1; mailaddr_format() re-quotes them.
 *
 * All functions are pure: no allocation, no I/O. Bad input returns
 * PST_EINVAL (syntax) or PST_ELIMIT (too long), never crashes.
 */
#ifndef POSTERN_MAILADDR_H
#define POSTERN_MAILADDR_H

#include <stddef.h>

#include "err.h"

#define MAILADDR_LOCAL_MAX 64
#define MAILADDR_DOMAIN_MAX 255
#define MAILADDR_PATH_MAX 256

struct mailaddr {
    char local[MAILADDR_LOCAL_MAX + 1];   /* unquoted local part, NUL-terminated */
    char domain[MAILADDR_DOMAIN_MAX + 1]; /* as given, or the address literal with brackets */
    int quoted;                           /* local part was a Quoted-string */
    int is_null;                          /* the null reverse-path "<>" */
    int is_literal;                       /* domain is an address literal */
    int has_utf8;                         /* contains non-ASCII bytes */
};

enum mailaddr_flags {
    MAILADDR_ALLOW_NULL = 1 << 0,   /* accept "<>" (MAIL FROM) */
    MAILADDR_ALLOW_UTF8 = 1 << 1,   /* SMTPUTF8 was given */
    MAILADDR_ALLOW_NOBRACKET = 1 << 2, /* accept a bare address without <> (lenient clients) */
    MAILADDR_ALLOW_POSTMASTER = 1 << 3, /* accept "<Postmaster>" without domain (RCPT, RFC 5321 4.1.1.3) */
};

/*
 * mailaddr_parse_path - parse a Reverse-path/Forward-path at s (len bytes,
 * need not be NUL-terminated). On success fills *out, sets *consumed to the
 * number of bytes used (up to and including '>') and returns 0.
 * Returns PST_EINVAL on bad syntax, PST_ELIMIT when a part is too long.
 */
PST_MUST_CHECK int mailaddr_parse_path(const char *s, size_t len, int flags, struct mailaddr *out,
                                       size_t *consumed);

/* mailaddr_parse - parse a bare "local@domain" (NUL-terminated), e.g. from config or CLI. */
PST_MUST_CHECK int mailaddr_parse(const char *s, int flags, struct mailaddr *out);

/*
 * mailaddr_format - write "local@domain" (re-quoting the local part if needed;
 * "" for the null path) into out. Returns 0, or PST_ELIMIT if outsz is too small.
 */
PST_MUST_CHECK int mailaddr_format(const struct mailaddr *a, char *out, size_t outsz);

/* mailaddr_domain_valid - 1 if s is a syntactically valid domain (RFC 5321 Domain), else 0. */
int mailaddr_domain_valid(const char *s, int allow_utf8);

#endif
