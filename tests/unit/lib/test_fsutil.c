/*
 * test_fsutil.c - fsu_fsync_dir on a directory, a file and a missing path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/fsutil.h"

static void test_fsync_dir(void **state)
{
    char dir[512], file[600];
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/fsutil.XXXXXX", t && *t ? t : "/tmp");
    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof(file), "%s/f", dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(fsu_fsync_dir(dir), 0);
    assert_int_equal(fsu_fsync_dir(file), PST_EIO); /* not a directory */
    unlink(file);
    rmdir(dir);
    assert_int_equal(fsu_fsync_dir(dir), PST_EIO); /* gone */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fsync_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
