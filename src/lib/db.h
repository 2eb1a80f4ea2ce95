/*
 * db.h - the SQLite state database: connection setup, schema migrations,
 * and prepared-statement helpers.
 *
 * A connection is opened with journal_mode=WAL, synchronous=NORMAL,
 * foreign_keys=ON and a 5000 ms busy timeout; a new database file is
 * created with mode 0600 (it holds password hashes).
 *
 * Schema: table schema_version(version INTEGER PRIMARY KEY, applied INTEGER)
 * records each applied migration. Migrations are numbered 1, 2, 3 ... and
 * applied in order, each in its own IMMEDIATE transaction together with its
 * schema_version row, so a crash leaves the database at a whole version.
 * The list of Postern's migrations lives in db.c, the one place where the
 * schema is written down; a database whose version is newer than the
 * program knows is refused (PST_EDB).
 *
 * A struct db is used by one thread at a time.
 */
#ifndef POSTERN_DB_H
#define POSTERN_DB_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "err.h"

#define DB_BUSY_TIMEOUT_MS 5000
#define DB_STMT_CACHE 32 /* prepared statements kept per connection */

struct db;

struct db_migration {
    int version;     /* 1, 2, 3 ... strictly increasing by one */
    const char *sql; /* one or more statements */
};

/* db_open - open (creating if needed) path and apply Postern's migrations. Caller frees with
 * db_close(). */
PST_MUST_CHECK int db_open(const char *path, struct db **out);

/* db_open_with - same, with the caller's migration list (tests, tools). m borrowed for the call. */
PST_MUST_CHECK int db_open_with(const char *path, const struct db_migration *m, size_t n,
                                struct db **out);

/* db_close - finalize cached statements, close, *db = NULL. Accepts NULL. */
void db_close(struct db **db);

/*
 * db_migrate - apply every migration in m newer than the database's version.
 * PST_EINVAL if versions are not 1..n in order, PST_EDB on an SQL error (that
 * migration is rolled back) or when the database is newer than m knows.
 */
PST_MUST_CHECK int db_migrate(struct db *db, const struct db_migration *m, size_t n);

/* db_schema_version - the highest applied migration (0 for none). */
PST_MUST_CHECK int db_schema_version(struct db *db, int *out);

/* db_handle - the underlying connection (borrowed). */
sqlite3 *db_handle(struct db *db);

/* db_errmsg - the last SQLite error text (borrowed, for logs). */
const char *db_errmsg(struct db *db);

/* db_exec - run SQL without results. PST_EDB on error. */
PST_MUST_CHECK int db_exec(struct db *db, const char *sql);

/*
 * db_stmt - a prepared statement for sql, cached per connection (keyed by
 * the SQL text), reset and with bindings cleared. Borrowed: valid until
 * db_close(); call db_stmt_done() when finished with its rows.
 */
PST_MUST_CHECK int db_stmt(struct db *db, const char *sql, sqlite3_stmt **out);

/* db_stmt_done - reset st and clear its bindings (ends its read transaction). Accepts NULL. */
void db_stmt_done(sqlite3_stmt *st);

/* Bind helpers (1-based index, text copied). PST_EDB on error. */
PST_MUST_CHECK int db_bind_text(sqlite3_stmt *st, int idx, const char *s);
PST_MUST_CHECK int db_bind_int64(sqlite3_stmt *st, int idx, int64_t v);

/*
 * db_step - 1 if a row is ready, 0 when done, PST_EEXIST on a constraint
 * violation, PST_EAGAIN if the database stayed busy, PST_EDB otherwise.
 */
PST_MUST_CHECK int db_step(sqlite3_stmt *st);

/* Transactions. db_begin takes the write lock at once (BEGIN IMMEDIATE). */
PST_MUST_CHECK int db_begin(struct db *db);
PST_MUST_CHECK int db_commit(struct db *db);
void db_rollback(struct db *db);

#endif
