/*
 * err.c - names for PST_E* codes and the assertion handler.
 */
#include "err.h"

#include <stdio.h>
#include <stdlib.h>

const char *err_str(int err)
{
    switch (err) {
    case PST_OK: return "ok";
    case PST_ENOMEM: return "out of memory";
    case PST_EIO: return "i/o error";
    case PST_EINVAL: return "invalid input";
    case PST_ELIMIT: return "limit exceeded";
    case PST_ENOENT: return "not found";
    case PST_EEXIST: return "already exists";
    case PST_EAGAIN: return "temporary failure";
    case PST_EAUTH: return "authentication failed";
    case PST_EDB: return "database error";
    case PST_ETLS: return "tls error";
    case PST_ECONFIG: return "configuration error";
    case PST_EPERM: return "not permitted";
    default: return "unknown error";
    }
}

void pst_assert_fail(const char *expr, const char *file, int line, const char *func)
{
    fprintf(stderr, "panic: assertion failed: %s at %s:%d in %s()\n", expr, file, line, func);
    fflush(stderr);
    abort();
}
