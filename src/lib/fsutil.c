/*
 * fsutil.c - small file-system helpers shared by the spool and Maildir code.
 */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int fsu_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return PST_EIO;
    int rc = fsync(fd) == 0 ? 0 : PST_EIO;
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}
