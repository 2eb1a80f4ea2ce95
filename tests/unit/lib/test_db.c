/*
 * test_db.c - connection pragmas, migrations, statement cache, error mapping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/db.h"

struct fx {
    char dir[512];
    char path[600];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    const char *t = getenv("TMPDIR");

    snprintf(f->dir, sizeof(f->dir), "%s/dbtest.XXXXXX", t && *t ? t : "/tmp");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/state.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char p[700];

    unlink(f->path);
    snprintf(p, sizeof(p), "%s-wal", f->path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", f->path);
    unlink(p);
    rmdir(f->dir);
    free(f);
    return 0;
}

static int64_t query_int(struct db *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v;

    assert_int_equal(db_stmt(db, sql, &st), 0);
    assert_int_equal(db_step(st), 1);
    v = sqlite3_column_int64(st, 0);
    db_stmt_done(st);
    return v;
}

static void test_open_pragmas(void **state)
{
    struct fx *f = *state;
    struct db *db = NULL;
    sqlite3_stmt *st = NULL;
    struct stat sb;
    int v = -1;

    assert_int_equal(db_open(f->path, &db), 0);
    assert_non_null(db);
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(query_int(db, "PRAGMA foreign_keys"), 1);
    assert_int_equal(query_int(db, "PRAGMA synchronous"), 1); /* NORMAL */
    assert_int_equal(query_int(db, "PRAGMA busy_timeout"), DB_BUSY_TIMEOUT_MS);
    assert_int_equal(db_stmt(db, "PRAGMA journal_mode", &st), 0);
    assert_int_equal(db_step(st), 1);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    db_stmt_done(st);
    assert_int_equal(db_schema_version(db, &v), 0);
    assert_true(v >= 1);
    /* Postern's schema has the users table */
    assert_int_equal(query_int(db, "SELECT count(*) FROM users"), 0);
    db_close(&db);
    assert_null(db);
    db_close(&db); /* NULL is fine */

    /* reopening does not re-apply */
    assert_int_equal(db_open(f->path, &db), 0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM schema_version"), v);
    db_close(&db);
}

static const struct db_migration migs[] = {
    {1, "CREATE TABLE a (x INTEGER PRIMARY KEY);"},
    {2, "CREATE TABLE b (y INTEGER NOT NULL REFERENCES a(x)); INSERT INTO a VALUES (1);"},
    {3, "ALTER TABLE a ADD COLUMN z TEXT;"},
};

static void test_migrations(void **state)
{
    struct fx *f = *state;
    struct db *db = NULL;
    int v;

    assert_int_equal(db_open_with(f->path, migs, 2, &db), 0);
    assert_int_equal(db_schema_version(db, &v), 0);
    assert_int_equal(v, 2);
    assert_int_equal(query_int(db, "SELECT count(*) FROM a"), 1);
    db_close(&db);

    assert_int_equal(db_open_with(f->path, migs, 3, &db), 0);
    assert_int_equal(db_schema_version(db, &v), 0);
    assert_int_equal(v, 3);
    assert_int_equal(query_int(db, "SELECT count(*) FROM a"), 1); /* v2 not re-run */
    assert_int_equal(db_exec(db, "UPDATE a SET z = 'ok'"), 0);
    db_close(&db);

    /* the database is newer than this migration list */
    assert_int_equal(db_open_with(f->path, migs, 1, &db), PST_EDB);
    assert_null(db);
}

static void test_bad_migrations(void **state)
{
    struct fx *f = *state;
    static const struct db_migration gap[] = {{1, "SELECT 1"}, {3, "SELECT 1"}};
    static const struct db_migration broken[] = {
        {1, "CREATE TABLE a (x INTEGER);"},
        {2, "CREATE TABLE c (q INTEGER); THIS IS NOT SQL;"},
    };
    struct db *db = NULL;
    int v;

    assert_int_equal(db_open_with(f->path, gap, 2, &db), PST_EINVAL);
    assert_int_equal(db_open_with(f->path, broken, 2, &db), PST_EDB);
    assert_null(db);
    assert_int_equal(db_open_with(f->path, broken, 1, &db), 0);
    assert_int_equal(db_schema_version(db, &v), 0);
    assert_int_equal(v, 1);
    /* migration 2 was rolled back as a whole */
    assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'c'"), 0);
    db_close(&db);
}

static void test_stmt_and_errors(void **state)
{
    struct fx *f = *state;
    struct db *db = NULL;
    sqlite3_stmt *st = NULL, *st2 = NULL;
    int i;

    assert_int_equal(db_open_with(f->path, migs, 3, &db), 0);
    assert_int_equal(db_stmt(db, "INSERT INTO a(x, z) VALUES (?1, ?2)", &st), 0);
    assert_int_equal(db_stmt(db, "INSERT INTO a(x, z) VALUES (?1, ?2)", &st2), 0);
    assert_ptr_equal(st, st2);
    assert_int_equal(db_bind_int64(st, 1, 5), 0);
    assert_int_equal(db_bind_text(st, 2, "five"), 0);
    assert_int_equal(db_step(st), 0);
    db_stmt_done(st);
    /* duplicate key */
    assert_int_equal(db_stmt(db, "INSERT INTO a(x, z) VALUES (?1, ?2)", &st), 0);
    assert_int_equal(db_bind_int64(st, 1, 5), 0);
    assert_int_equal(db_step(st), PST_EEXIST);
    db_stmt_done(st);
    /* foreign key enforced */
    assert_int_equal(db_stmt(db, "INSERT INTO b(y) VALUES (?1)", &st), 0);
    assert_int_equal(db_bind_int64(st, 1, 999), 0);
    assert_int_equal(db_step(st), PST_EEXIST);
    db_stmt_done(st);
    assert_int_equal(db_stmt(db, "SELEKT nonsense", &st), PST_EDB);
    assert_null(st);
    assert_int_equal(db_exec(db, "garbage;"), PST_EDB);
    assert_non_null(db_errmsg(db));

    /* more distinct statements than the cache holds */
    for (i = 0; i < DB_STMT_CACHE * 2; i++) {
        char sql[64];
        snprintf(sql, sizeof(sql), "SELECT %d", i);
        assert_int_equal(db_stmt(db, sql, &st), 0);
        assert_int_equal(db_step(st), 1);
        assert_int_equal(sqlite3_column_int(st, 0), i);
        db_stmt_done(st);
    }

    /* transactions */
    assert_int_equal(db_begin(db), 0);
    assert_int_equal(db_exec(db, "INSERT INTO a(x) VALUES (77)"), 0);
    db_rollback(db);
    assert_int_equal(query_int(db, "SELECT count(*) FROM a WHERE x = 77"), 0);
    assert_int_equal(db_begin(db), 0);
    assert_int_equal(db_exec(db, "INSERT INTO a(x) VALUES (78)"), 0);
    assert_int_equal(db_commit(db), 0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM a WHERE x = 78"), 1);
    db_rollback(db); /* no transaction: harmless */
    db_close(&db);
}

static void test_open_failures(void **state)
{
    struct db *db = NULL;

    assert_int_not_equal(db_open("/nonexistent-dir/x/state.db", &db), 0);
    assert_null(db);
    assert_int_equal(db_open(NULL, &db), PST_EINVAL);
    assert_int_equal(db_open(":memory:", &db), 0);
    db_close(&db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_pragmas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_migrations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stmt_and_errors, setup, teardown),
        cmocka_unit_test(test_open_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
