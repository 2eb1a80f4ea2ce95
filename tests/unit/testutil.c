/*
 * testutil.c - helpers shared by the cmocka unit tests.
 */
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int tu_rm_rf(const char *path)
{
    struct stat st;

    if (lstat(path, &st) != 0)
        return 0;
    if (!S_ISDIR(st.st_mode))
        return unlink(path);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char sub[4096];
        int n = snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
        if (n > 0 && (size_t)n < sizeof(sub))
            tu_rm_rf(sub);
    }
    closedir(d);
    return rmdir(path);
}
