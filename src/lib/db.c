/*
 * db.c - SQLite connection setup, numbered schema migrations and a small
 * prepared-statement cache (see db.h).
 *
 * Postern's schema, version by version, is the db_migrations table below.
 * Never edit an applied migration: add a new one.
 *
 * Failure policy: SQLite errors are returned as PST_EDB (constraint
 * violations as PST_EEXIST, lasting SQLITE_BUSY as PST_EAGAIN); the text is
 * available from db_errmsg(). Nothing aborts.
 */
#include "db.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Postern's schema. Version numbers are positions in this table, starting at 1. */
static const struct db_migration db_migrations[] = {
    {1, "CREATE TABLE users ("
        "  name TEXT PRIMARY KEY NOT NULL,"
        "  hash TEXT NOT NULL,"
        "  created INTEGER NOT NULL"
        ") WITHOUT ROWID;"},
    /* 2: the Bitmessage node's state (src/bitmessage/bm_store.c) */
    {2, "CREATE TABLE bm_inventory ("
        "  hash BLOB PRIMARY KEY NOT NULL CHECK (length(hash) = 32),"
        "  type INTEGER NOT NULL,"
        "  stream INTEGER NOT NULL,"
        "  expires INTEGER NOT NULL,"
        "  tag BLOB,"
        "  payload BLOB NOT NULL,"
        "  received INTEGER NOT NULL"
        ") WITHOUT ROWID;"
        "CREATE INDEX bm_inventory_stream ON bm_inventory(stream, expires);"
        "CREATE INDEX bm_inventory_expires ON bm_inventory(expires);"
        "CREATE TABLE bm_keys ("
        "  address TEXT PRIMARY KEY NOT NULL,"
        "  label TEXT NOT NULL,"
        "  version INTEGER NOT NULL,"
        "  stream INTEGER NOT NULL,"
        "  ripe BLOB NOT NULL,"
        "  tag BLOB NOT NULL,"
        "  signing_priv BLOB NOT NULL,"
        "  encryption_priv BLOB NOT NULL,"
        "  deterministic INTEGER NOT NULL,"
        "  created INTEGER NOT NULL"
        ") WITHOUT ROWID;"
        "CREATE INDEX bm_keys_ripe ON bm_keys(ripe);"
        "CREATE INDEX bm_keys_tag ON bm_keys(tag);"
        "CREATE TABLE bm_pubkeys ("
        "  address TEXT PRIMARY KEY NOT NULL,"
        "  ripe BLOB NOT NULL,"
        "  tag BLOB,"
        "  signing_pub BLOB NOT NULL,"
        "  encryption_pub BLOB NOT NULL,"
        "  nonce_trials INTEGER NOT NULL,"
        "  extra_bytes INTEGER NOT NULL,"
        "  behavior INTEGER NOT NULL,"
        "  last_seen INTEGER NOT NULL"
        ") WITHOUT ROWID;"
        "CREATE INDEX bm_pubkeys_ripe ON bm_pubkeys(ripe);"
        "CREATE INDEX bm_pubkeys_tag ON bm_pubkeys(tag);"
        "CREATE TABLE bm_outbox ("
        "  msgid INTEGER PRIMARY KEY,"
        "  from_addr TEXT NOT NULL,"
        "  to_addr TEXT NOT NULL,"
        "  subject TEXT NOT NULL,"
        "  body TEXT NOT NULL,"
        "  ackdata BLOB NOT NULL UNIQUE,"
        "  state TEXT NOT NULL CHECK (state IN"
        "    ('awaitingpubkey', 'doingpow', 'sent', 'acked', 'failed')),"
        "  ttl INTEGER NOT NULL,"
        "  attempts INTEGER NOT NULL DEFAULT 0,"
        "  next_attempt INTEGER NOT NULL,"
        "  inventory_hash BLOB,"
        "  created INTEGER NOT NULL,"
        "  updated INTEGER NOT NULL"
        ");"
        "CREATE INDEX bm_outbox_due ON bm_outbox(state, next_attempt);"
        "CREATE TABLE bm_inbox ("
        "  id INTEGER PRIMARY KEY,"
        "  msgid_hash BLOB NOT NULL UNIQUE,"
        "  to_addr TEXT NOT NULL,"
        "  from_addr TEXT NOT NULL,"
        "  subject TEXT NOT NULL,"
        "  body TEXT NOT NULL,"
        "  encoding INTEGER NOT NULL,"
        "  received INTEGER NOT NULL,"
        "  delivered_to_maildir INTEGER NOT NULL DEFAULT 0"
        ");"
        "CREATE INDEX bm_inbox_undelivered ON bm_inbox(delivered_to_maildir);"},
    /* 3: the local user whose Maildir receives mail to one of our Bitmessage addresses
     * (src/bitmessage/bm_api.c); '' = none (kept in the node's inbox only). */
    {3, "ALTER TABLE bm_keys ADD COLUMN owner TEXT NOT NULL DEFAULT '';"},
    /* 4: POP3 proxy upstream mailboxes and statistics (src/pop3/pop3_upstream.c) */
    {4, "CREATE TABLE pop3_upstreams ("
        "  user TEXT NOT NULL,"
        "  id TEXT NOT NULL,"
        "  host TEXT NOT NULL,"
        "  port INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),"
        "  tls TEXT NOT NULL CHECK (tls IN ('implicit', 'stls', 'none')),"
        "  username TEXT NOT NULL,"
        "  pass_nonce BLOB NOT NULL CHECK (length(pass_nonce) = 12),"
        "  pass_ct BLOB NOT NULL CHECK (length(pass_ct) >= 16),"
        "  created INTEGER NOT NULL,"
        "  PRIMARY KEY (user, id)"
        ") WITHOUT ROWID;"
        "CREATE TABLE pop3_stats ("
        "  user TEXT NOT NULL,"
        "  upstream TEXT NOT NULL,"
        "  sessions INTEGER NOT NULL DEFAULT 0,"
        "  messages INTEGER NOT NULL DEFAULT 0,"
        "  bytes INTEGER NOT NULL DEFAULT 0,"
        "  errors INTEGER NOT NULL DEFAULT 0,"
        "  last_error TEXT NOT NULL DEFAULT '',"
        "  updated INTEGER NOT NULL,"
        "  PRIMARY KEY (user, upstream)"
        ") WITHOUT ROWID;"},
    /* 5: APOP secrets (RFC 1939 7), encrypted like the upstream passwords (src/pop3/pop3_apop.c) */
    {5, "CREATE TABLE pop3_apop ("
        "  user TEXT PRIMARY KEY NOT NULL,"
        "  nonce BLOB NOT NULL CHECK (length(nonce) = 12),"
        "  secret_ct BLOB NOT NULL CHECK (length(secret_ct) >= 16),"
        "  created INTEGER NOT NULL"
        ") WITHOUT ROWID;"},
};

struct db_cached {
    char *sql; /* owned copy */
    sqlite3_stmt *st;
};

struct db {
    sqlite3 *h;
    size_t ncache;
    size_t next_evict;
    struct db_cached cache[DB_STMT_CACHE];
};

sqlite3 *db_handle(struct db *db)
{
    return db->h;
}

const char *db_errmsg(struct db *db)
{
    return db != NULL && db->h != NULL ? sqlite3_errmsg(db->h) : "no database";
}

static int db_rc(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
        return 0;
    case SQLITE_ROW:
        return 1;
    case SQLITE_CONSTRAINT:
        return PST_EEXIST;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return PST_EAGAIN;
    case SQLITE_NOMEM:
        return PST_ENOMEM;
    default:
        return PST_EDB;
    }
}

int db_exec(struct db *db, const char *sql)
{
    int rc = db_rc(sqlite3_exec(db->h, sql, NULL, NULL, NULL));

    return rc == PST_EEXIST ? PST_EDB : rc;
}

int db_begin(struct db *db)
{
    return db_exec(db, "BEGIN IMMEDIATE");
}

int db_commit(struct db *db)
{
    return db_exec(db, "COMMIT");
}

void db_rollback(struct db *db)
{
    if (!sqlite3_get_autocommit(db->h))
        (void)sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

int db_stmt(struct db *db, const char *sql, sqlite3_stmt **out)
{
    struct db_cached *c;
    sqlite3_stmt *st = NULL;
    char *copy;
    size_t i;

    *out = NULL;
    for (i = 0; i < db->ncache; i++) {
        if (strcmp(db->cache[i].sql, sql) == 0) {
            db_stmt_done(db->cache[i].st);
            *out = db->cache[i].st;
            return 0;
        }
    }
    copy = strdup(sql);
    if (copy == NULL)
        return PST_ENOMEM;
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK) {
        sqlite3_finalize(st);
        free(copy);
        return PST_EDB;
    }
    if (db->ncache < DB_STMT_CACHE) {
        c = &db->cache[db->ncache++];
    } else {
        /* round-robin eviction: only a caller juggling > DB_STMT_CACHE statements can notice */
        c = &db->cache[db->next_evict];
        db->next_evict = (db->next_evict + 1) % DB_STMT_CACHE;
        sqlite3_finalize(c->st);
        free(c->sql);
    }
    c->sql = copy;
    c->st = st;
    *out = st;
    return 0;
}

void db_stmt_done(sqlite3_stmt *st)
{
    if (st == NULL)
        return;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

int db_bind_text(sqlite3_stmt *st, int idx, const char *s)
{
    return sqlite3_bind_text(st, idx, s, -1, SQLITE_TRANSIENT) == SQLITE_OK ? 0 : PST_EDB;
}

int db_bind_int64(sqlite3_stmt *st, int idx, int64_t v)
{
    return sqlite3_bind_int64(st, idx, (sqlite3_int64)v) == SQLITE_OK ? 0 : PST_EDB;
}

int db_step(sqlite3_stmt *st)
{
    return db_rc(sqlite3_step(st));
}

static int db_pragma(struct db *db)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (sqlite3_busy_timeout(db->h, DB_BUSY_TIMEOUT_MS) != SQLITE_OK)
        return PST_EDB;
    if ((rc = db_exec(db, "PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;")) != 0)
        return rc;
    /* journal_mode answers with the mode in effect: "wal", or "memory" for in-memory DBs */
    if (sqlite3_prepare_v2(db->h, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK)
        return PST_EDB;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(st, 0);
        rc =
            mode != NULL && (strcmp(mode, "wal") == 0 || strcmp(mode, "memory") == 0) ? 0 : PST_EDB;
    } else {
        rc = db_rc(rc) < 0 ? db_rc(rc) : PST_EDB;
    }
    sqlite3_finalize(st);
    return rc;
}

int db_schema_version(struct db *db, int *out)
{
    sqlite3_stmt *st = NULL;
    int rc;

    *out = 0;
    rc = db_exec(db, "CREATE TABLE IF NOT EXISTS schema_version ("
                     "  version INTEGER PRIMARY KEY NOT NULL,"
                     "  applied INTEGER NOT NULL)");
    if (rc != 0)
        return rc;
    if ((rc = db_stmt(db, "SELECT coalesce(max(version), 0) FROM schema_version", &st)) != 0)
        return rc;
    rc = db_step(st);
    if (rc == 1) {
        *out = sqlite3_column_int(st, 0);
        rc = 0;
    } else if (rc == 0) {
        rc = PST_EDB;
    }
    db_stmt_done(st);
    return rc;
}

static int db_apply(struct db *db, const struct db_migration *m)
{
    sqlite3_stmt *st = NULL;
    int rc;

    int have = 0;

    if ((rc = db_begin(db)) != 0)
        return rc;
    /* Another process may have applied it since we looked: check again under the write lock. */
    if ((rc = db_schema_version(db, &have)) == 0 && have >= m->version) {
        db_rollback(db);
        return 0;
    }
    if (rc == 0)
        rc = db_exec(db, m->sql);
    if (rc == 0)
        rc = db_stmt(db, "INSERT INTO schema_version(version, applied) VALUES (?1, ?2)", &st);
    if (rc == 0 && (rc = db_bind_int64(st, 1, m->version)) == 0 &&
        (rc = db_bind_int64(st, 2, (int64_t)time(NULL))) == 0)
        rc = db_step(st);
    db_stmt_done(st);
    if (rc == 0)
        rc = db_commit(db);
    if (rc != 0) {
        db_rollback(db);
        return rc == PST_EEXIST ? PST_EDB : rc;
    }
    return 0;
}

int db_migrate(struct db *db, const struct db_migration *m, size_t n)
{
    int have, rc;
    size_t i;

    for (i = 0; i < n; i++)
        if (m[i].version != (int)i + 1 || m[i].sql == NULL)
            return PST_EINVAL;
    if ((rc = db_schema_version(db, &have)) != 0)
        return rc;
    if (have < 0 || (size_t)have > n)
        return PST_EDB; /* written by a newer Postern */
    for (i = (size_t)have; i < n; i++)
        if ((rc = db_apply(db, &m[i])) != 0)
            return rc;
    return 0;
}

/* db_create_private - create path with mode 0600 before SQLite does (it would use 0644). */
static int db_create_private(const char *path)
{
    int fd;

    if (path[0] == '\0' || strcmp(path, ":memory:") == 0 || strncmp(path, "file:", 5) == 0)
        return 0;
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return PST_EIO;
    close(fd);
    return 0;
}

int db_open_with(const char *path, const struct db_migration *m, size_t n, struct db **out)
{
    struct db *db;
    int rc;

    *out = NULL;
    if (path == NULL)
        return PST_EINVAL;
    if ((rc = db_create_private(path)) != 0)
        return rc;
    db = calloc(1, sizeof(*db));
    if (db == NULL)
        return PST_ENOMEM;
    if (sqlite3_open_v2(path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        db_close(&db);
        return PST_EDB;
    }
    sqlite3_extended_result_codes(db->h, 1);
    rc = db_pragma(db);
    if (rc == 0)
        rc = db_migrate(db, m, n);
    if (rc != 0) {
        db_close(&db);
        return rc;
    }
    *out = db;
    return 0;
}

int db_open(const char *path, struct db **out)
{
    return db_open_with(path, db_migrations, PST_ARRAY_LEN(db_migrations), out);
}

void db_close(struct db **dbp)
{
    struct db *db;
    size_t i;

    if (dbp == NULL || *dbp == NULL)
        return;
    db = *dbp;
    for (i = 0; i < db->ncache; i++) {
        sqlite3_finalize(db->cache[i].st);
        free(db->cache[i].sql);
    }
    if (db->h != NULL)
        sqlite3_close(db->h);
    free(db);
    *dbp = NULL;
}
