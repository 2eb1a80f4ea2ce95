/*
 * testutil.h - helpers shared by the cmocka unit tests (not part of postern).
 */
#ifndef POSTERN_TESTUTIL_H
#define POSTERN_TESTUTIL_H

/* tu_rm_rf - remove path and everything below it (no symlink following). 0 or -1. */
int tu_rm_rf(const char *path);

#endif
