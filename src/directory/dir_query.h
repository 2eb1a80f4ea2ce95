/*
 * dir_query.h - the directory's parser for URL query strings and
 * application/x-www-form-urlencoded bodies (WHATWG URL "application/
 * x-www-form-urlencoded parsing", RFC 3986 2.1 percent-encoding).
 *
 * Everything here is bounded: the whole input, the number of parameters,
 * each key and each value have a named limit; exceeding one is PST_ELIMIT.
 * Keys are [A-Za-z0-9_.-]; a key may appear only once (a repeated key is
 * an error, so no handler can be confused about which copy counts). Values
 * are percent-decoded ('+' is a space), every %XX must be two hex digits,
 * and the decoded bytes must be valid UTF-8 (RFC 3629: no overlong forms,
 * no surrogates, nothing above U+10FFFF) without control characters (C0,
 * DEL, C1). Empty segments ("a=1&&b=2", a trailing '&') are skipped.
 *
 * No allocation: a struct dir_query holds the decoded strings itself (it is
 * about 6 KiB; callers keep it on the stack or in a context struct).
 * Failure policy: pure functions; bad input returns PST_EINVAL or
 * PST_ELIMIT with *why set to a static, human-readable reason.
 */
#ifndef POSTERN_DIR_QUERY_H
#define POSTERN_DIR_QUERY_H

#include <stddef.h>

#include "lib/err.h"

#define DIR_QUERY_MAX_LEN 4096   /* bytes of the whole query string or form body */
#define DIR_QUERY_MAX_PARAMS 16  /* parameters */
#define DIR_QUERY_KEY_MAX 32     /* bytes of one key */
#define DIR_QUERY_VALUE_MAX 1024 /* bytes of one decoded value */

struct dir_query_param {
    const char *key;   /* NUL-terminated, points into the struct's store */
    const char *value; /* NUL-terminated, decoded */
    size_t vlen;
};

struct dir_query {
    size_t n;
    struct dir_query_param p[DIR_QUERY_MAX_PARAMS];
    size_t used;
    char store[DIR_QUERY_MAX_LEN + 2 * DIR_QUERY_MAX_PARAMS];
};

/*
 * dir_query_parse - parse len bytes at s (need not be NUL-terminated; s may
 * be NULL when len is 0) into *q. Returns 0, PST_EINVAL (malformed) or
 * PST_ELIMIT (too long / too many), with *why (may be NULL) set on failure.
 */
PST_MUST_CHECK int dir_query_parse(struct dir_query *q, const char *s, size_t len,
                                   const char **why);

/* dir_query_get - the decoded value of key, or NULL when absent. Borrowed from q. */
const char *dir_query_get(const struct dir_query *q, const char *key);

/* dir_utf8_valid - 1 if len bytes at s are UTF-8 without control characters (see above). */
int dir_utf8_valid(const char *s, size_t len);

#endif
