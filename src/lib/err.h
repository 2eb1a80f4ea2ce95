/*
 * err.h - Postern's error codes and the "must check" attribute.
 *
 * Every fallible function returns int: 0 on success, a negative PST_E*
 * code on failure. Functions returning pointers return NULL on failure.
 * PST_MUST_CHECK makes an ignored result a compile-time warning (an error
 * under -Werror). PST_ASSERT guards internal invariants and stays on in
 * release builds: a failed assertion is a bug, logged and aborted.
 */
#ifndef POSTERN_ERR_H
#define POSTERN_ERR_H

#define PST_MUST_CHECK __attribute__((warn_unused_result))

enum pst_err {
    PST_OK = 0,
    PST_ENOMEM = -1,   /* allocation failed */
    PST_EIO = -2,      /* read/write/fsync failed; errno is set */
    PST_EINVAL = -3,   /* malformed input */
    PST_ELIMIT = -4,   /* input exceeds a configured limit */
    PST_ENOENT = -5,   /* no such object */
    PST_EEXIST = -6,   /* object already exists */
    PST_EAGAIN = -7,   /* temporary condition; retry later */
    PST_EAUTH = -8,    /* authentication failed */
    PST_EDB = -9,      /* database error */
    PST_ETLS = -10,    /* TLS error */
    PST_ECONFIG = -11, /* bad configuration */
    PST_EPERM = -12,   /* not permitted */
};

/* err_str - a static, human-readable name for a PST_E* code. Never NULL. */
const char *err_str(int err);

void pst_assert_fail(const char *expr, const char *file, int line, const char *func)
    __attribute__((noreturn));

#define PST_ASSERT(e) ((e) ? (void)0 : pst_assert_fail(#e, __FILE__, __LINE__, __func__))

#define PST_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
