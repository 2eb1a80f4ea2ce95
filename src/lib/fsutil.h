/*
 * fsutil.h - small file-system helpers shared by the spool and Maildir code.
 */
#ifndef POSTERN_FSUTIL_H
#define POSTERN_FSUTIL_H

#include "err.h"

/*
 * fsu_fsync_dir - open the directory at path and fsync it, which makes the
 * entries created, renamed or removed in it durable. Returns 0 or PST_EIO
 * with errno from the failing call.
 */
PST_MUST_CHECK int fsu_fsync_dir(const char *path);

#endif
