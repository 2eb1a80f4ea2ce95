/*
 * sasl.h - server side of SASL PLAIN (RFC 4616) and LOGIN, as used by
 * SMTP AUTH (RFC 4954), plus base64 helpers on OpenSSL's EVP codec.
 *
 * Decoded credentials are written into caller buffers; callers must
 * explicit_bzero() the password when done. Nothing here logs.
 */
#ifndef POSTERN_SASL_H
#define POSTERN_SASL_H

#include <stddef.h>

#include "lib/err.h"

#define SASL_USER_MAX 255
#define SASL_PASS_MAX 255

/*
 * sasl_b64_decode - strict base64 (RFC 4648, padding required, no blanks)
 * of in[0..inlen) into out. Returns the decoded length, or PST_EINVAL /
 * PST_ELIMIT (out too small). "=" alone decodes to the empty string (RFC 4954 4).
 */
PST_MUST_CHECK int sasl_b64_decode(const char *in, size_t inlen, unsigned char *out, size_t outsz);

/* sasl_b64_encode - base64 of in into out (NUL-terminated). Returns length or PST_ELIMIT. */
PST_MUST_CHECK int sasl_b64_encode(const unsigned char *in, size_t inlen, char *out, size_t outsz);

/*
 * sasl_plain_parse - decode a base64 PLAIN response "authzid\0authcid\0passwd".
 * An authzid, if present, must equal authcid (no proxy authorisation).
 * Fills user/pass (NUL-terminated). Returns 0, PST_EINVAL, or PST_ELIMIT.
 */
PST_MUST_CHECK int sasl_plain_parse(const char *b64, size_t len, char *user, size_t usz, char *pass,
                                    size_t psz);

/*
 * sasl_login_parse - decode one base64 LOGIN response (user name or password)
 * into out (NUL-terminated). Returns 0; PST_EINVAL for bad base64, an empty
 * value or a NUL inside; PST_ELIMIT if it does not fit in outsz. The session
 * must treat a "*" line as the client cancelling (RFC 4954 4) before calling.
 */
PST_MUST_CHECK int sasl_login_parse(const char *b64, size_t len, char *out, size_t outsz);

#endif
