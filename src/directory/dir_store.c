/*
 * dir_store.c - the public directory's records and confirmation tokens on
 * SQLite or PostgreSQL, behind one set of queries (see dir_store.h).
 *
 * Back ends. A small switch, not a vtable: each query is a row of
 * dir_queries (SQL in the common subset of SQLite 3.35+ and PostgreSQL 13+,
 * numbered ?N parameters, and a type letter per parameter: t text, i
 * int64, b blob). SQLite prepares it once per connection (persistent
 * statement, kept in struct dir_store). PostgreSQL gets the same text with
 * ?N rewritten to $N, prepared once per connection (PQprepare, with the
 * parameter types given explicitly) and run with PQexecPrepared: text
 * parameters, except blobs which go binary; results come back as text.
 * Only the schema differs (types, serial ids, COLLATE "C" so that ordering
 * and equality are bytewise as in SQLite).
 *
 * Schema (version 1, both back ends; table dir_schema holds the version,
 * separate from Postern's schema_version, so the directory can live in the
 * state database or in a file or database of its own):
 *   dir_records(id, smtp, type, alt, state 0 pending | 1 live | 2 removed,
 *               created, smtp_confirmed, alt_confirmed, live_since,
 *               removed_at, source)     timestamps in Unix seconds, 0 = not
 *     index (smtp, state)               lookups
 *     index (alt, type, state)          reverse lookups (with or without type)
 *                                       and the per-alternative rate limit
 *     unique (smtp, type, alt) WHERE state IN (0, 1)   no duplicate listing
 *     index (state, created)            purge
 *   dir_tokens(hash 32 bytes SHA-256 PK, record_id -> dir_records ON DELETE
 *              CASCADE, purpose, expires, used 0|1)
 *   dir_meta(id = 1, version)           bumped in the same transaction as
 *                                       every change to dir_records
 * Ids are never reused (AUTOINCREMENT / BIGSERIAL).
 *
 * Transactions. Every write runs in a transaction together with its
 * version bump (BEGIN IMMEDIATE on SQLite, BEGIN on PostgreSQL; inside a
 * caller's transaction only its first write bumps the version). Inside a
 * caller's dir_store_begin() each write is a SAVEPOINT instead, so a
 * refused row (a duplicate) leaves the caller's transaction usable on both
 * back ends. The migration runs in one transaction under BEGIN IMMEDIATE /
 * pg_advisory_xact_lock, so instances starting together do not race.
 *
 * Tokens are used once: dir_store_token_use is a single
 * "UPDATE ... SET used = 1 WHERE hash = ? AND used = 0 AND expires > now
 * RETURNING ..." statement. SQLite serialises writers; PostgreSQL makes a
 * second concurrent UPDATE of the row wait for the first and re-check the
 * WHERE clause on the new row version (READ COMMITTED), so exactly one
 * caller gets the row.
 *
 * Failure policy: every error is returned (PST_EDB for the database,
 * PST_EEXIST for a duplicate, PST_EAGAIN when SQLite stayed busy or
 * PostgreSQL reported a serialisation failure or deadlock) and logged once
 * with the query name and the server's primary message, never the values,
 * the token or the conninfo. A PostgreSQL connection found broken is reset
 * once and the statement retried, unless a transaction was open (its work
 * is lost: the call fails and the next one reconnects). Nothing aborts.
 */
#include "directory/dir_store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "lib/db.h"
#include "lib/log.h"

#define DIR_SCHEMA_VERSION 1
#define DIR_PARAMS_MAX 8
#define DIR_INT_TEXT 24
#define DIR_HASH_LEN 32
#define DIR_TOKEN_B64_LEN 43             /* base64url of 32 bytes, no padding */
#define DIR_PG_LOCK_KEY "706f737465726e" /* "postern": advisory lock key of the migration */
#define DIR_PG_OID_INT8 20
#define DIR_PG_OID_TEXT 25
#define DIR_PG_OID_BYTEA 17

enum dir_backend { DIR_BE_SQLITE = 0, DIR_BE_PG };

#define DIR_COLS                                                                                   \
    "id, smtp, type, alt, state, created, smtp_confirmed, alt_confirmed, live_since, removed_at, " \
    "source"

enum dir_qid {
    DIR_Q_SCHEMA_GET = 0,
    DIR_Q_SCHEMA_ADD,
    DIR_Q_ADD,
    DIR_Q_GET,
    DIR_Q_STATE,
    DIR_Q_CONFIRM,
    DIR_Q_REMOVE,
    DIR_Q_LOOKUP,
    DIR_Q_REVERSE,
    DIR_Q_REVERSE_ANY,
    DIR_Q_LIST,
    DIR_Q_COUNT_SMTP,
    DIR_Q_COUNT_ALT,
    DIR_Q_PURGE_RECORDS,
    DIR_Q_PURGE_TOKENS,
    DIR_Q_VERSION,
    DIR_Q_BUMP,
    DIR_Q_TOKEN_NEW,
    DIR_Q_TOKEN_USE,
    DIR_Q_TOKEN_STATE,
    DIR_Q_COUNT
};

struct dir_query {
    const char *name;  /* for logs */
    const char *types; /* one letter per parameter ?1, ?2 ...: t text, i int64, b blob */
    const char *sql;
};

static const struct dir_query dir_queries[DIR_Q_COUNT] = {
    [DIR_Q_SCHEMA_GET] = {"schema_get", "", "SELECT coalesce(max(version), 0) FROM dir_schema"},
    [DIR_Q_SCHEMA_ADD] = {"schema_add", "ii",
                          "INSERT INTO dir_schema (version, applied) VALUES (?1, ?2)"},
    [DIR_Q_ADD] = {"add", "tttiiit",
                   "INSERT INTO dir_records (smtp, type, alt, state, created, live_since, source)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING RETURNING id"},
    [DIR_Q_GET] = {"get", "i", "SELECT " DIR_COLS " FROM dir_records WHERE id = ?1"},
    [DIR_Q_STATE] = {"state", "i", "SELECT state FROM dir_records WHERE id = ?1"},
    [DIR_Q_CONFIRM] = {"confirm", "iii",
                       "UPDATE dir_records SET"
                       " smtp_confirmed = CASE WHEN ?2 = 0 AND smtp_confirmed = 0 THEN ?3"
                       " ELSE smtp_confirmed END,"
                       " alt_confirmed = CASE WHEN ?2 = 1 AND alt_confirmed = 0 THEN ?3"
                       " ELSE alt_confirmed END,"
                       " state = CASE WHEN (smtp_confirmed <> 0 OR ?2 = 0)"
                       " AND (alt_confirmed <> 0 OR ?2 = 1) THEN 1 ELSE 0 END,"
                       " live_since = CASE WHEN (smtp_confirmed <> 0 OR ?2 = 0)"
                       " AND (alt_confirmed <> 0 OR ?2 = 1) THEN ?3 ELSE 0 END"
                       " WHERE id = ?1 AND state = 0 RETURNING state"},
    [DIR_Q_REMOVE] = {"remove", "ii",
                      "UPDATE dir_records SET state = 2, removed_at = ?2"
                      " WHERE id = ?1 AND state <> 2 RETURNING id"},
    [DIR_Q_LOOKUP] = {"lookup", "t",
                      "SELECT " DIR_COLS " FROM dir_records WHERE smtp = ?1 AND state = 1"
                      " ORDER BY type, alt, id"},
    [DIR_Q_REVERSE] = {"reverse", "tt",
                       "SELECT " DIR_COLS " FROM dir_records"
                       " WHERE alt = ?2 AND type = ?1 AND state = 1 ORDER BY smtp, id"},
    [DIR_Q_REVERSE_ANY] = {"reverse_any", "t",
                           "SELECT " DIR_COLS " FROM dir_records"
                           " WHERE alt = ?1 AND state = 1 ORDER BY type, smtp, id"},
    [DIR_Q_LIST] = {"list", "iii",
                    "SELECT " DIR_COLS " FROM dir_records"
                    " WHERE (?1 < 0 OR state = ?1) AND id > ?2 ORDER BY id LIMIT ?3"},
    [DIR_Q_COUNT_SMTP] = {"count_smtp", "ti",
                          "SELECT count(*) FROM dir_records WHERE smtp = ?1 AND created >= ?2"},
    [DIR_Q_COUNT_ALT] = {"count_alt", "ti",
                         "SELECT count(*) FROM dir_records WHERE alt = ?1 AND created >= ?2"},
    [DIR_Q_PURGE_RECORDS] = {"purge_records", "i",
                             "DELETE FROM dir_records WHERE state = 0 AND created < ?1"
                             " RETURNING id"},
    [DIR_Q_PURGE_TOKENS] = {"purge_tokens", "i", "DELETE FROM dir_tokens WHERE expires <= ?1"},
    [DIR_Q_VERSION] = {"version", "", "SELECT version FROM dir_meta WHERE id = 1"},
    [DIR_Q_BUMP] = {"bump", "", "UPDATE dir_meta SET version = version + 1 WHERE id = 1"},
    [DIR_Q_TOKEN_NEW] = {"token_new", "biii",
                         "INSERT INTO dir_tokens (hash, record_id, purpose, expires, used)"
                         " SELECT ?1, id, ?3, ?4, 0 FROM dir_records WHERE id = ?2"
                         " RETURNING record_id"},
    [DIR_Q_TOKEN_USE] = {"token_use", "bi",
                         "UPDATE dir_tokens SET used = 1"
                         " WHERE hash = ?1 AND used = 0 AND expires > ?2"
                         " RETURNING record_id, purpose"},
    [DIR_Q_TOKEN_STATE] = {"token_state", "b", "SELECT used FROM dir_tokens WHERE hash = ?1"},
};

static const char dir_schema_sqlite[] =
    "CREATE TABLE dir_records ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  smtp TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  alt TEXT NOT NULL,"
    "  state INTEGER NOT NULL CHECK (state IN (0, 1, 2)),"
    "  created INTEGER NOT NULL,"
    "  smtp_confirmed INTEGER NOT NULL DEFAULT 0,"
    "  alt_confirmed INTEGER NOT NULL DEFAULT 0,"
    "  live_since INTEGER NOT NULL DEFAULT 0,"
    "  removed_at INTEGER NOT NULL DEFAULT 0,"
    "  source TEXT NOT NULL);"
    "CREATE INDEX dir_records_smtp ON dir_records (smtp, state);"
    "CREATE INDEX dir_records_alt ON dir_records (alt, type, state);"
    "CREATE INDEX dir_records_pending ON dir_records (state, created);"
    "CREATE UNIQUE INDEX dir_records_active ON dir_records (smtp, type, alt)"
    "  WHERE state IN (0, 1);"
    "CREATE TABLE dir_tokens ("
    "  hash BLOB PRIMARY KEY NOT NULL CHECK (length(hash) = 32),"
    "  record_id INTEGER NOT NULL REFERENCES dir_records (id) ON DELETE CASCADE,"
    "  purpose INTEGER NOT NULL CHECK (purpose IN (0, 1, 2)),"
    "  expires INTEGER NOT NULL,"
    "  used INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    "CREATE INDEX dir_tokens_record ON dir_tokens (record_id);"
    "CREATE INDEX dir_tokens_expires ON dir_tokens (expires);"
    "CREATE TABLE dir_meta ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  version INTEGER NOT NULL);"
    "INSERT INTO dir_meta (id, version) VALUES (1, 1);";

static const char dir_schema_pg[] =
    "CREATE TABLE dir_records ("
    "  id BIGSERIAL PRIMARY KEY,"
    "  smtp TEXT COLLATE \"C\" NOT NULL,"
    "  type TEXT COLLATE \"C\" NOT NULL,"
    "  alt TEXT COLLATE \"C\" NOT NULL,"
    "  state INTEGER NOT NULL CHECK (state IN (0, 1, 2)),"
    "  created BIGINT NOT NULL,"
    "  smtp_confirmed BIGINT NOT NULL DEFAULT 0,"
    "  alt_confirmed BIGINT NOT NULL DEFAULT 0,"
    "  live_since BIGINT NOT NULL DEFAULT 0,"
    "  removed_at BIGINT NOT NULL DEFAULT 0,"
    "  source TEXT COLLATE \"C\" NOT NULL);"
    "CREATE INDEX dir_records_smtp ON dir_records (smtp, state);"
    "CREATE INDEX dir_records_alt ON dir_records (alt, type, state);"
    "CREATE INDEX dir_records_pending ON dir_records (state, created);"
    "CREATE UNIQUE INDEX dir_records_active ON dir_records (smtp, type, alt)"
    "  WHERE state IN (0, 1);"
    "CREATE TABLE dir_tokens ("
    "  hash BYTEA PRIMARY KEY CHECK (octet_length(hash) = 32),"
    "  record_id BIGINT NOT NULL REFERENCES dir_records (id) ON DELETE CASCADE,"
    "  purpose INTEGER NOT NULL CHECK (purpose IN (0, 1, 2)),"
    "  expires BIGINT NOT NULL,"
    "  used INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX dir_tokens_record ON dir_tokens (record_id);"
    "CREATE INDEX dir_tokens_expires ON dir_tokens (expires);"
    "CREATE TABLE dir_meta ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  version BIGINT NOT NULL);"
    "INSERT INTO dir_meta (id, version) VALUES (1, 1);";

/* Migrations by back end: index = version - 1. Never edit an applied one: add a new one. */
static const char *const dir_migrations_sqlite[] = {dir_schema_sqlite};
static const char *const dir_migrations_pg[] = {dir_schema_pg};

struct dir_store {
    enum dir_backend be;
    struct db *db;                          /* SQLite */
    sqlite3_stmt *sq[DIR_Q_COUNT];          /* SQLite, prepared on first use */
    PGconn *pg;                             /* PostgreSQL */
    unsigned char pg_prepared[DIR_Q_COUNT]; /* PostgreSQL, per connection */
    bool user_tx;                           /* inside dir_store_begin */
    bool op_tx;                             /* inside one write's transaction */
    bool op_bumped;                         /* this write bumped dir_meta.version */
    bool tx_bumped;                         /* the caller's transaction already did */
};

/* A parameter: which member counts is given by the query's type letter. */
struct dir_arg {
    const char *s;
    int64_t i;
    const unsigned char *b;
    size_t blen;
};

/* The rows of one query run. */
struct dir_res {
    struct dir_store *st;
    enum dir_qid q;
    sqlite3_stmt *sq;
    PGresult *pg;
    int row;
    int nrows;
};

/* ---- helpers ---- */

static void dir_log_error(const struct dir_store *st, const char *what, const char *msg)
{
    char q[256];
    size_t n = msg != NULL ? strcspn(msg, "\n") : 0;

    log_warn("dir_store error backend=%s op=%s err=%s", dir_store_backend(st), what,
             log_quote(q, sizeof(q), msg != NULL ? msg : "", n));
}

/* dir_utf8_ok - s[0..len) is well-formed UTF-8 without NUL bytes. */
static bool dir_utf8_ok(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n, k;
    uint32_t cp;

    while (i < len) {
        if (p[i] == 0)
            return false;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        if (p[i] >= 0xc2 && p[i] <= 0xdf)
            n = 2;
        else if (p[i] >= 0xe0 && p[i] <= 0xef)
            n = 3;
        else if (p[i] >= 0xf0 && p[i] <= 0xf4)
            n = 4;
        else
            return false;
        if (len - i < n)
            return false;
        cp = p[i] & (0x7fu >> n);
        for (k = 1; k < n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3fu);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n;
    }
    return true;
}

/* dir_text_ok - NUL-terminated within max + 1 bytes, 1..max bytes, UTF-8. */
static bool dir_text_ok(const char *s, size_t max)
{
    size_t n;

    if (s == NULL)
        return false;
    n = strnlen(s, max + 1);
    return n > 0 && n <= max && dir_utf8_ok(s, n);
}

static int dir_copy_text(char *out, size_t outsz, const char *s, size_t len)
{
    if (s == NULL || len >= outsz || memchr(s, '\0', len) != NULL)
        return PST_EDB; /* not written by this module */
    memcpy(out, s, len);
    out[len] = '\0';
    return 0;
}

const char *dir_store_backend(const struct dir_store *st)
{
    return st != NULL && st->be == DIR_BE_PG ? "postgresql" : "sqlite";
}

const char *dir_state_name(enum dir_state s)
{
    switch (s) {
    case DIR_PENDING:
        return "pending";
    case DIR_LIVE:
        return "live";
    case DIR_REMOVED:
        return "removed";
    }
    return "unknown";
}

const char *dir_purpose_name(enum dir_purpose p)
{
    switch (p) {
    case DIR_CONFIRM_SMTP:
        return "confirm-smtp";
    case DIR_CONFIRM_ALT:
        return "confirm-alt";
    case DIR_CONFIRM_REMOVE:
        return "confirm-remove";
    }
    return "unknown";
}

/* ---- PostgreSQL plumbing ---- */

static void dir_pg_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg; /* NOTICEs ("already exists, skipping") are not worth a log line */
}

static int dir_pg_session(struct dir_store *st)
{
    PGresult *res;
    int rc = 0;

    PQsetNoticeProcessor(st->pg, dir_pg_notice, NULL);
    if (PQsetClientEncoding(st->pg, "UTF8") != 0) {
        dir_log_error(st, "connect", PQerrorMessage(st->pg));
        return PST_EDB;
    }
    res = PQexec(st->pg, "SET client_min_messages = warning");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        dir_log_error(st, "connect", PQresultErrorMessage(res));
        rc = PST_EDB;
    }
    PQclear(res);
    memset(st->pg_prepared, 0, sizeof(st->pg_prepared));
    return rc;
}

/* dir_pg_reconnect - reset a broken connection once; only outside transactions. */
static bool dir_pg_reconnect(struct dir_store *st)
{
    if (PQstatus(st->pg) != CONNECTION_BAD || st->user_tx || st->op_tx)
        return false;
    log_warn("dir_store reconnect backend=postgresql");
    PQreset(st->pg);
    if (PQstatus(st->pg) != CONNECTION_OK) {
        dir_log_error(st, "reconnect", PQerrorMessage(st->pg));
        return false;
    }
    return dir_pg_session(st) == 0;
}

static int dir_pg_err(struct dir_store *st, const char *what, const PGresult *res)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

    if (state != NULL && strcmp(state, "23505") == 0)
        return PST_EEXIST;
    dir_log_error(st, what, msg != NULL ? msg : PQerrorMessage(st->pg));
    if (state != NULL && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0))
        return PST_EAGAIN;
    return PST_EDB;
}

static bool dir_pg_ok(const PGresult *res)
{
    ExecStatusType s = PQresultStatus(res);

    return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
}

/* dir_pg_rewrite - the query's SQL with ?N turned into $N (caller frees). */
static char *dir_pg_rewrite(const char *sql)
{
    char *out = strdup(sql), *p;

    if (out == NULL)
        return NULL;
    for (p = out; *p != '\0'; p++)
        if (*p == '?' && p[1] >= '1' && p[1] <= '9')
            *p = '$';
    return out;
}

static int dir_pg_prepare(struct dir_store *st, enum dir_qid q)
{
    Oid types[DIR_PARAMS_MAX];
    const char *t = dir_queries[q].types;
    char name[32], *sql;
    PGresult *res;
    int n = (int)strlen(t), i, rc = 0;

    for (i = 0; i < n; i++)
        types[i] = t[i] == 'i' ? DIR_PG_OID_INT8 : t[i] == 'b' ? DIR_PG_OID_BYTEA : DIR_PG_OID_TEXT;
    if ((sql = dir_pg_rewrite(dir_queries[q].sql)) == NULL)
        return PST_ENOMEM;
    if (snprintf(name, sizeof(name), "dir_q%d", (int)q) >= (int)sizeof(name)) {
        free(sql);
        return PST_EINVAL;
    }
    res = PQprepare(st->pg, name, sql, n, types);
    free(sql);
    if (!dir_pg_ok(res))
        rc = dir_pg_err(st, dir_queries[q].name, res);
    else
        st->pg_prepared[q] = 1;
    PQclear(res);
    return rc;
}

static int dir_pg_run(struct dir_store *st, enum dir_qid q, const struct dir_arg *args,
                      PGresult **out)
{
    char ibuf[DIR_PARAMS_MAX][DIR_INT_TEXT], name[32];
    const char *vals[DIR_PARAMS_MAX];
    int lens[DIR_PARAMS_MAX], fmts[DIR_PARAMS_MAX];
    const char *t = dir_queries[q].types;
    int n = (int)strlen(t), i, attempt, rc;
    PGresult *res = NULL;

    *out = NULL;
    for (i = 0; i < n; i++) {
        lens[i] = 0;
        fmts[i] = 0;
        if (t[i] == 'i') {
            int w = snprintf(ibuf[i], sizeof(ibuf[i]), "%" PRId64, args[i].i);

            if (w < 0 || (size_t)w >= sizeof(ibuf[i]))
                return PST_EINVAL; /* cannot happen: 20 digits and a sign fit */
            vals[i] = ibuf[i];
        } else if (t[i] == 'b') {
            vals[i] = (const char *)args[i].b;
            lens[i] = (int)args[i].blen;
            fmts[i] = 1;
        } else {
            vals[i] = args[i].s;
        }
    }
    if (snprintf(name, sizeof(name), "dir_q%d", (int)q) >= (int)sizeof(name))
        return PST_EINVAL;
    for (attempt = 0; attempt < 2; attempt++) {
        if (!st->pg_prepared[q] && (rc = dir_pg_prepare(st, q)) != 0) {
            if (attempt == 0 && dir_pg_reconnect(st))
                continue;
            return rc;
        }
        res = PQexecPrepared(st->pg, name, n, vals, lens, fmts, 0);
        if (dir_pg_ok(res)) {
            *out = res;
            return 0;
        }
        if (attempt == 0 && PQstatus(st->pg) == CONNECTION_BAD && dir_pg_reconnect(st)) {
            PQclear(res);
            continue;
        }
        break;
    }
    rc = dir_pg_err(st, dir_queries[q].name, res);
    PQclear(res);
    return rc;
}

static int dir_pg_exec(struct dir_store *st, const char *sql)
{
    PGresult *res = NULL;
    int attempt, rc = 0;

    for (attempt = 0; attempt < 2; attempt++) {
        res = PQexec(st->pg, sql);
        if (dir_pg_ok(res)) {
            PQclear(res);
            return 0;
        }
        if (attempt == 0 && PQstatus(st->pg) == CONNECTION_BAD && dir_pg_reconnect(st)) {
            PQclear(res);
            continue;
        }
        break;
    }
    rc = dir_pg_err(st, "exec", res);
    PQclear(res);
    return rc;
}

/* ---- SQLite plumbing ---- */

static int dir_sq_run(struct dir_store *st, enum dir_qid q, const struct dir_arg *args,
                      sqlite3_stmt **out)
{
    const char *t = dir_queries[q].types;
    sqlite3_stmt *s = st->sq[q];
    int i, n = (int)strlen(t), rc = SQLITE_OK;

    *out = NULL;
    if (s == NULL) {
        if (sqlite3_prepare_v3(db_handle(st->db), dir_queries[q].sql, -1, SQLITE_PREPARE_PERSISTENT,
                               &s, NULL) != SQLITE_OK) {
            dir_log_error(st, dir_queries[q].name, db_errmsg(st->db));
            sqlite3_finalize(s);
            return PST_EDB;
        }
        st->sq[q] = s;
    }
    db_stmt_done(s);
    for (i = 0; i < n && rc == SQLITE_OK; i++) {
        if (t[i] == 'i')
            rc = sqlite3_bind_int64(s, i + 1, (sqlite3_int64)args[i].i);
        else if (t[i] == 'b')
            rc = sqlite3_bind_blob(s, i + 1, args[i].b, (int)args[i].blen, SQLITE_TRANSIENT);
        else
            rc = sqlite3_bind_text(s, i + 1, args[i].s, -1, SQLITE_TRANSIENT);
    }
    if (rc != SQLITE_OK) {
        dir_log_error(st, dir_queries[q].name, db_errmsg(st->db));
        db_stmt_done(s);
        return PST_EDB;
    }
    *out = s;
    return 0;
}

/* ---- one query, both back ends ---- */

static int dir_run(struct dir_store *st, enum dir_qid q, const struct dir_arg *args,
                   struct dir_res *r)
{
    int rc;

    memset(r, 0, sizeof(*r));
    r->st = st;
    r->q = q;
    r->row = -1;
    if (st->be == DIR_BE_SQLITE)
        return dir_sq_run(st, q, args, &r->sq);
    rc = dir_pg_run(st, q, args, &r->pg);
    if (rc != 0)
        return rc;
    r->nrows = PQntuples(r->pg);
    return 0;
}

/* dir_next - 1 when a row is ready, 0 at the end, negative PST_E* on error. */
static int dir_next(struct dir_res *r)
{
    int rc;

    if (r->st->be == DIR_BE_PG) {
        if (r->row + 1 >= r->nrows)
            return 0;
        r->row++;
        return 1;
    }
    rc = db_step(r->sq);
    if (rc < 0 && rc != PST_EEXIST)
        dir_log_error(r->st, dir_queries[r->q].name, db_errmsg(r->st->db));
    return rc;
}

static void dir_done(struct dir_res *r)
{
    if (r->sq != NULL)
        db_stmt_done(r->sq);
    r->sq = NULL;
    PQclear(r->pg);
    r->pg = NULL;
}

static int64_t dir_col_int(const struct dir_res *r, int col)
{
    if (r->st->be == DIR_BE_SQLITE)
        return (int64_t)sqlite3_column_int64(r->sq, col);
    return (int64_t)strtoll(PQgetvalue(r->pg, r->row, col), NULL, 10);
}

static int dir_col_text(const struct dir_res *r, int col, char *out, size_t outsz)
{
    if (r->st->be == DIR_BE_SQLITE)
        return dir_copy_text(out, outsz, (const char *)sqlite3_column_text(r->sq, col),
                             (size_t)sqlite3_column_bytes(r->sq, col));
    return dir_copy_text(out, outsz, PQgetvalue(r->pg, r->row, col),
                         (size_t)PQgetlength(r->pg, r->row, col));
}

static int dir_col_record(const struct dir_res *r, struct dir_record *rec)
{
    int64_t state;
    int rc;

    memset(rec, 0, sizeof(*rec));
    rec->id = dir_col_int(r, 0);
    if ((rc = dir_col_text(r, 1, rec->smtp, sizeof(rec->smtp))) != 0 ||
        (rc = dir_col_text(r, 2, rec->type, sizeof(rec->type))) != 0 ||
        (rc = dir_col_text(r, 3, rec->alt, sizeof(rec->alt))) != 0 ||
        (rc = dir_col_text(r, 10, rec->source, sizeof(rec->source))) != 0)
        return rc;
    state = dir_col_int(r, 4);
    if (state < DIR_PENDING || state > DIR_REMOVED)
        return PST_EDB;
    rec->state = (enum dir_state)state;
    rec->created = dir_col_int(r, 5);
    rec->smtp_confirmed = dir_col_int(r, 6);
    rec->alt_confirmed = dir_col_int(r, 7);
    rec->live_since = dir_col_int(r, 8);
    rec->removed_at = dir_col_int(r, 9);
    return 0;
}

/* dir_exec_q - run q and discard its rows; *nrows (may be NULL) = rows returned. */
static int dir_exec_q(struct dir_store *st, enum dir_qid q, const struct dir_arg *args,
                      uint64_t *nrows)
{
    struct dir_res r;
    uint64_t n = 0;
    int rc;

    if ((rc = dir_run(st, q, args, &r)) != 0)
        return rc;
    while ((rc = dir_next(&r)) == 1)
        n++;
    dir_done(&r);
    if (nrows != NULL)
        *nrows = n;
    return rc;
}

/* dir_one_int - first column of the first row into *v; PST_ENOENT when no row. */
static int dir_one_int(struct dir_store *st, enum dir_qid q, const struct dir_arg *args, int64_t *v)
{
    struct dir_res r;
    int rc;

    if ((rc = dir_run(st, q, args, &r)) != 0)
        return rc;
    rc = dir_next(&r);
    if (rc == 1) {
        *v = dir_col_int(&r, 0);
        rc = 0;
    } else if (rc == 0) {
        rc = PST_ENOENT;
    }
    dir_done(&r);
    return rc;
}

static int dir_exec_sql(struct dir_store *st, const char *sql)
{
    int rc;

    if (st->be == DIR_BE_PG)
        return dir_pg_exec(st, sql);
    rc = db_exec(st->db, sql);
    if (rc != 0)
        dir_log_error(st, "exec", db_errmsg(st->db));
    return rc;
}

/* ---- transactions ---- */

static int dir_tx_begin(struct dir_store *st)
{
    int rc;

    if (st->user_tx)
        rc = dir_exec_sql(st, "SAVEPOINT dir_op");
    else
        rc = dir_exec_sql(st, st->be == DIR_BE_PG ? "BEGIN" : "BEGIN IMMEDIATE");
    if (rc == 0)
        st->op_tx = true;
    return rc;
}

/* dir_tx_end - commit when rc is 0, else roll back; returns the final result. */
static int dir_tx_end(struct dir_store *st, int rc)
{
    if (rc == 0)
        rc = dir_exec_sql(st, st->user_tx ? "RELEASE SAVEPOINT dir_op" : "COMMIT");
    if (rc != 0) {
        if (st->user_tx) {
            if (dir_exec_sql(st, "ROLLBACK TO SAVEPOINT dir_op") == 0)
                (void)dir_exec_sql(st, "RELEASE SAVEPOINT dir_op");
        } else if (st->be == DIR_BE_PG) {
            if (PQtransactionStatus(st->pg) != PQTRANS_IDLE)
                (void)dir_exec_sql(st, "ROLLBACK");
        } else {
            db_rollback(st->db);
        }
    }
    if (rc == 0 && st->user_tx && st->op_bumped)
        st->tx_bumped = true;
    st->op_bumped = false;
    st->op_tx = false;
    return rc;
}

/*
 * dir_bump - change dir_meta.version. Once per transaction is enough: a
 * caller's transaction (an import) bumps it with its first write only, as
 * updating one row 100,000 times in one PostgreSQL transaction grows a
 * chain of row versions that every later update walks.
 */
static int dir_bump(struct dir_store *st)
{
    int rc;

    if (st->user_tx && st->tx_bumped)
        return 0;
    rc = dir_exec_q(st, DIR_Q_BUMP, NULL, NULL);
    if (rc == 0)
        st->op_bumped = true;
    return rc;
}

int dir_store_begin(struct dir_store *st)
{
    int rc;

    if (st == NULL || st->user_tx)
        return PST_EINVAL;
    rc = dir_exec_sql(st, st->be == DIR_BE_PG ? "BEGIN" : "BEGIN IMMEDIATE");
    if (rc == 0) {
        st->user_tx = true;
        st->tx_bumped = false;
    }
    return rc;
}

int dir_store_commit(struct dir_store *st)
{
    int rc;

    if (st == NULL || !st->user_tx)
        return PST_EINVAL;
    rc = dir_exec_sql(st, "COMMIT");
    if (rc != 0 && st->be == DIR_BE_SQLITE) {
        db_rollback(st->db);
    }
    st->user_tx = false;
    st->tx_bumped = false;
    return rc == PST_EEXIST ? PST_EDB : rc;
}

void dir_store_rollback(struct dir_store *st)
{
    if (st == NULL || !st->user_tx)
        return;
    if (st->be == DIR_BE_SQLITE)
        db_rollback(st->db);
    else if (PQtransactionStatus(st->pg) != PQTRANS_IDLE)
        (void)dir_exec_sql(st, "ROLLBACK");
    st->user_tx = false;
    st->tx_bumped = false;
}

/* ---- schema ---- */

static int dir_migrate(struct dir_store *st, int64_t now)
{
    const char *const *m = st->be == DIR_BE_PG ? dir_migrations_pg : dir_migrations_sqlite;
    size_t n = st->be == DIR_BE_PG ? PST_ARRAY_LEN(dir_migrations_pg)
                                   : PST_ARRAY_LEN(dir_migrations_sqlite);
    int64_t have = 0;
    size_t i;
    int rc;

    if ((rc = dir_tx_begin(st)) != 0)
        return rc;
    if (st->be == DIR_BE_PG)
        rc = dir_exec_sql(st, "SELECT pg_advisory_xact_lock(x'" DIR_PG_LOCK_KEY "'::bigint)");
    if (rc == 0)
        rc = dir_exec_sql(st, "CREATE TABLE IF NOT EXISTS dir_schema ("
                              "  version INTEGER PRIMARY KEY NOT NULL,"
                              "  applied BIGINT NOT NULL)");
    if (rc == 0)
        rc = dir_one_int(st, DIR_Q_SCHEMA_GET, NULL, &have);
    if (rc == 0 && (have < 0 || (uint64_t)have > n)) {
        log_error("dir_store schema newer than this program backend=%s version=%" PRId64,
                  dir_store_backend(st), have);
        rc = PST_EDB;
    }
    for (i = rc == 0 ? (size_t)have : n; i < n && rc == 0; i++) {
        struct dir_arg a[2] = {{.i = (int64_t)i + 1}, {.i = now}};

        rc = dir_exec_sql(st, m[i]);
        if (rc == 0)
            rc = dir_exec_q(st, DIR_Q_SCHEMA_ADD, a, NULL);
        if (rc == 0)
            log_info("dir_store migrated backend=%s version=%zu", dir_store_backend(st), i + 1);
    }
    return dir_tx_end(st, rc);
}

/* ---- open / close ---- */

int dir_store_open_sqlite(const char *path, struct dir_store **out)
{
    struct dir_store *st;
    int rc;

    if (out == NULL)
        return PST_EINVAL;
    *out = NULL;
    if (path == NULL || path[0] == '\0')
        return PST_EINVAL;
    if ((st = calloc(1, sizeof(*st))) == NULL)
        return PST_ENOMEM;
    st->be = DIR_BE_SQLITE;
    if ((rc = db_open(path, &st->db)) != 0) {
        log_warn("dir_store open failed backend=sqlite err=%s", err_str(rc));
        free(st);
        return rc;
    }
    /* Lookups are the hot path: map the file and keep a larger page cache per connection
     * (each directoryd loop has its own). Failure only costs speed. */
    if (db_exec(st->db, "PRAGMA mmap_size = 268435456") != 0 ||
        db_exec(st->db, "PRAGMA cache_size = -16384") != 0)
        log_warn("dir_store pragma failed backend=sqlite effect=\"slower lookups\"");
    if ((rc = dir_migrate(st, (int64_t)time(NULL))) != 0) {
        dir_store_close(&st);
        return rc;
    }
    *out = st;
    return 0;
}

int dir_store_open_pg(const char *conninfo, struct dir_store **out)
{
    struct dir_store *st;
    int rc;

    if (out == NULL)
        return PST_EINVAL;
    *out = NULL;
    if (conninfo == NULL)
        return PST_EINVAL;
    if ((st = calloc(1, sizeof(*st))) == NULL)
        return PST_ENOMEM;
    st->be = DIR_BE_PG;
    st->pg = PQconnectdb(conninfo);
    if (st->pg == NULL) {
        free(st);
        return PST_ENOMEM;
    }
    if (PQstatus(st->pg) != CONNECTION_OK) {
        dir_log_error(st, "connect", PQerrorMessage(st->pg));
        dir_store_close(&st);
        return PST_EDB;
    }
    if ((rc = dir_pg_session(st)) != 0 || (rc = dir_migrate(st, (int64_t)time(NULL))) != 0) {
        dir_store_close(&st);
        return rc;
    }
    *out = st;
    return 0;
}

void dir_store_close(struct dir_store **stp)
{
    struct dir_store *st;
    size_t i;

    if (stp == NULL || *stp == NULL)
        return;
    st = *stp;
    if (st->user_tx)
        dir_store_rollback(st);
    for (i = 0; i < DIR_Q_COUNT; i++)
        sqlite3_finalize(st->sq[i]);
    db_close(&st->db);
    if (st->pg != NULL)
        PQfinish(st->pg);
    free(st);
    *stp = NULL;
}

/* ---- records ---- */

int dir_store_add(struct dir_store *st, const struct dir_record *r, enum dir_state state,
                  int64_t now, int64_t *id)
{
    struct dir_arg a[7];
    int64_t got = 0;
    int rc;

    if (id != NULL)
        *id = 0;
    if (st == NULL || r == NULL || (state != DIR_PENDING && state != DIR_LIVE) ||
        !dir_text_ok(r->smtp, DIR_SMTP_MAX) || !dir_text_ok(r->type, DIR_TYPE_MAX) ||
        !dir_text_ok(r->alt, DIR_ALT_MAX) || !dir_text_ok(r->source, sizeof(r->source) - 1))
        return PST_EINVAL;
    a[0] = (struct dir_arg){.s = r->smtp};
    a[1] = (struct dir_arg){.s = r->type};
    a[2] = (struct dir_arg){.s = r->alt};
    a[3] = (struct dir_arg){.i = (int64_t)state};
    a[4] = (struct dir_arg){.i = now};
    a[5] = (struct dir_arg){.i = state == DIR_LIVE ? now : 0};
    a[6] = (struct dir_arg){.s = r->source};
    if ((rc = dir_tx_begin(st)) != 0)
        return rc;
    rc = dir_one_int(st, DIR_Q_ADD, a, &got);
    if (rc == PST_ENOENT)
        rc = PST_EEXIST; /* ON CONFLICT DO NOTHING returned no row */
    if (rc == 0)
        rc = dir_bump(st);
    rc = dir_tx_end(st, rc);
    if (rc == 0 && id != NULL)
        *id = got;
    return rc;
}

int dir_store_get(struct dir_store *st, int64_t id, struct dir_record *out)
{
    struct dir_arg a[1] = {{.i = id}};
    struct dir_res r;
    int rc;

    if (st == NULL || out == NULL)
        return PST_EINVAL;
    memset(out, 0, sizeof(*out));
    if ((rc = dir_run(st, DIR_Q_GET, a, &r)) != 0)
        return rc;
    rc = dir_next(&r);
    if (rc == 1)
        rc = dir_col_record(&r, out);
    else if (rc == 0)
        rc = PST_ENOENT;
    dir_done(&r);
    return rc;
}

/* dir_missing_or_perm - after an UPDATE matched nothing: ENOENT or EPERM. */
static int dir_missing_or_perm(struct dir_store *st, int64_t id)
{
    struct dir_arg a[1] = {{.i = id}};
    int64_t state;
    int rc = dir_one_int(st, DIR_Q_STATE, a, &state);

    return rc == 0 ? PST_EPERM : rc;
}

int dir_store_confirm(struct dir_store *st, int64_t id, enum dir_purpose side, int64_t now,
                      bool *became_live)
{
    struct dir_arg a[3] = {{.i = id}, {.i = side == DIR_CONFIRM_SMTP ? 0 : 1}, {.i = now}};
    int64_t state = 0;
    int rc;

    if (became_live != NULL)
        *became_live = false;
    if (st == NULL || (side != DIR_CONFIRM_SMTP && side != DIR_CONFIRM_ALT) || now <= 0)
        return PST_EINVAL;
    if ((rc = dir_tx_begin(st)) != 0)
        return rc;
    rc = dir_one_int(st, DIR_Q_CONFIRM, a, &state);
    if (rc == PST_ENOENT)
        rc = dir_missing_or_perm(st, id);
    if (rc == 0)
        rc = dir_bump(st);
    rc = dir_tx_end(st, rc);
    if (rc == 0 && became_live != NULL)
        *became_live = state == DIR_LIVE;
    return rc;
}

int dir_store_remove(struct dir_store *st, int64_t id, int64_t now)
{
    struct dir_arg a[2] = {{.i = id}, {.i = now}};
    int64_t got;
    int rc;

    if (st == NULL)
        return PST_EINVAL;
    if ((rc = dir_tx_begin(st)) != 0)
        return rc;
    rc = dir_one_int(st, DIR_Q_REMOVE, a, &got);
    if (rc == PST_ENOENT)
        rc = dir_missing_or_perm(st, id);
    if (rc == 0)
        rc = dir_bump(st);
    return dir_tx_end(st, rc);
}

/* dir_each - run q and call cb for every record; a non-zero cb result stops and is returned. */
static int dir_each(struct dir_store *st, enum dir_qid q, const struct dir_arg *args,
                    dir_record_cb cb, void *arg)
{
    struct dir_record rec;
    struct dir_res r;
    int rc;

    if ((rc = dir_run(st, q, args, &r)) != 0)
        return rc;
    while ((rc = dir_next(&r)) == 1) {
        if ((rc = dir_col_record(&r, &rec)) != 0)
            break;
        if ((rc = cb(&rec, arg)) != 0)
            break;
        rc = 1;
    }
    dir_done(&r);
    return rc;
}

int dir_store_lookup(struct dir_store *st, const char *smtp, dir_record_cb cb, void *arg)
{
    struct dir_arg a[1] = {{.s = smtp}};

    if (st == NULL || smtp == NULL || cb == NULL)
        return PST_EINVAL;
    if (!dir_text_ok(smtp, DIR_SMTP_MAX))
        return 0; /* nothing stored can match */
    return dir_each(st, DIR_Q_LOOKUP, a, cb, arg);
}

int dir_store_reverse(struct dir_store *st, const char *type, const char *alt, dir_record_cb cb,
                      void *arg)
{
    struct dir_arg a[2];

    if (st == NULL || alt == NULL || cb == NULL)
        return PST_EINVAL;
    if (!dir_text_ok(alt, DIR_ALT_MAX) || (type != NULL && !dir_text_ok(type, DIR_TYPE_MAX)))
        return 0;
    if (type == NULL) {
        a[0] = (struct dir_arg){.s = alt};
        return dir_each(st, DIR_Q_REVERSE_ANY, a, cb, arg);
    }
    a[0] = (struct dir_arg){.s = type};
    a[1] = (struct dir_arg){.s = alt};
    return dir_each(st, DIR_Q_REVERSE, a, cb, arg);
}

int dir_store_list(struct dir_store *st, int state, int64_t after_id, size_t limit,
                   dir_record_cb cb, void *arg)
{
    struct dir_arg a[3];

    if (st == NULL || cb == NULL || state > DIR_REMOVED)
        return PST_EINVAL;
    a[0] = (struct dir_arg){.i = state < 0 ? -1 : state};
    a[1] = (struct dir_arg){.i = after_id};
    a[2] = (struct dir_arg){.i = limit == 0 || limit > INT64_MAX ? INT64_MAX : (int64_t)limit};
    return dir_each(st, DIR_Q_LIST, a, cb, arg);
}

int dir_store_count_recent(struct dir_store *st, const char *smtp, const char *alt, int64_t since,
                           uint64_t *count)
{
    struct dir_arg a[2] = {{.s = smtp != NULL ? smtp : alt}, {.i = since}};
    int64_t v = 0;
    int rc;

    if (count != NULL)
        *count = 0;
    if (st == NULL || count == NULL || (smtp == NULL && alt == NULL))
        return PST_EINVAL;
    if (!dir_text_ok(a[0].s, smtp != NULL ? DIR_SMTP_MAX : DIR_ALT_MAX))
        return 0;
    rc = dir_one_int(st, smtp != NULL ? DIR_Q_COUNT_SMTP : DIR_Q_COUNT_ALT, a, &v);
    if (rc == 0)
        *count = v < 0 ? 0 : (uint64_t)v;
    return rc;
}

int dir_store_purge(struct dir_store *st, int64_t before, int64_t now, uint64_t *removed)
{
    struct dir_arg a1[1] = {{.i = before}}, a2[1] = {{.i = now}};
    uint64_t n = 0, t = 0;
    int rc;

    if (removed != NULL)
        *removed = 0;
    if (st == NULL)
        return PST_EINVAL;
    if ((rc = dir_tx_begin(st)) != 0)
        return rc;
    rc = dir_exec_q(st, DIR_Q_PURGE_RECORDS, a1, &n);
    if (rc == 0)
        rc = dir_exec_q(st, DIR_Q_PURGE_TOKENS, a2, &t);
    if (rc == 0 && n > 0)
        rc = dir_bump(st);
    rc = dir_tx_end(st, rc);
    if (rc == 0) {
        if (removed != NULL)
            *removed = n;
        if (n > 0 || t > 0)
            log_info("dir_store purged records=%" PRIu64 " tokens=%" PRIu64, n, t);
    }
    return rc;
}

int dir_store_version(struct dir_store *st, int64_t *out)
{
    if (st == NULL || out == NULL)
        return PST_EINVAL;
    *out = 0;
    return dir_one_int(st, DIR_Q_VERSION, NULL, out);
}

/* ---- tokens ---- */

static const char dir_b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* dir_token_encode - base64url of the 32 token bytes, no padding (43 chars + NUL). */
static int dir_token_encode(const unsigned char *tok, char *out, size_t outsz)
{
    size_t i, o = 0;
    uint32_t v;

    if (outsz < DIR_TOKEN_B64_LEN + 1)
        return PST_ELIMIT;
    for (i = 0; i + 3 <= DIR_TOKEN_LEN; i += 3) {
        v = (uint32_t)tok[i] << 16 | (uint32_t)tok[i + 1] << 8 | tok[i + 2];
        out[o++] = dir_b64url[(v >> 18) & 63];
        out[o++] = dir_b64url[(v >> 12) & 63];
        out[o++] = dir_b64url[(v >> 6) & 63];
        out[o++] = dir_b64url[v & 63];
    }
    /* 32 = 30 + 2: the last two bytes give three characters */
    v = (uint32_t)tok[i] << 16 | (uint32_t)tok[i + 1] << 8;
    out[o++] = dir_b64url[(v >> 18) & 63];
    out[o++] = dir_b64url[(v >> 12) & 63];
    out[o++] = dir_b64url[(v >> 6) & 63];
    out[o] = '\0';
    return 0;
}

static int dir_b64_val(char c)
{
    const char *p = c != '\0' ? strchr(dir_b64url, c) : NULL;

    return p != NULL ? (int)(p - dir_b64url) : -1;
}

/* dir_token_decode - exactly 43 base64url chars, canonical (unused low bits zero). */
static int dir_token_decode(const char *text, unsigned char *tok)
{
    int vals[DIR_TOKEN_B64_LEN];
    size_t i, o = 0;

    if (text == NULL || strnlen(text, DIR_TOKEN_B64_LEN + 1) != DIR_TOKEN_B64_LEN)
        return PST_ENOENT;
    for (i = 0; i < DIR_TOKEN_B64_LEN; i++)
        if ((vals[i] = dir_b64_val(text[i])) < 0)
            return PST_ENOENT;
    if ((vals[DIR_TOKEN_B64_LEN - 1] & 3) != 0)
        return PST_ENOENT;
    for (i = 0; i + 4 <= DIR_TOKEN_B64_LEN; i += 4) {
        uint32_t v = (uint32_t)vals[i] << 18 | (uint32_t)vals[i + 1] << 12 |
                     (uint32_t)vals[i + 2] << 6 | (uint32_t)vals[i + 3];

        tok[o++] = (unsigned char)(v >> 16);
        tok[o++] = (unsigned char)(v >> 8);
        tok[o++] = (unsigned char)v;
    }
    {
        uint32_t v =
            (uint32_t)vals[i] << 18 | (uint32_t)vals[i + 1] << 12 | (uint32_t)vals[i + 2] << 6;

        tok[o++] = (unsigned char)(v >> 16);
        tok[o++] = (unsigned char)(v >> 8);
    }
    return o == DIR_TOKEN_LEN ? 0 : PST_ENOENT;
}

static int dir_token_hash(const unsigned char *tok, unsigned char *hash)
{
    unsigned int n = 0;

    if (EVP_Digest(tok, DIR_TOKEN_LEN, hash, &n, EVP_sha256(), NULL) != 1 || n != DIR_HASH_LEN)
        return PST_EIO;
    return 0;
}

int dir_store_token_new(struct dir_store *st, int64_t id, enum dir_purpose purpose, int64_t expires,
                        char *text, size_t textsz)
{
    unsigned char tok[DIR_TOKEN_LEN], hash[DIR_HASH_LEN];
    struct dir_arg a[4];
    int64_t got;
    int rc;

    if (text != NULL && textsz > 0)
        text[0] = '\0';
    if (st == NULL || text == NULL || textsz < DIR_TOKEN_B64_LEN + 1 ||
        (purpose != DIR_CONFIRM_SMTP && purpose != DIR_CONFIRM_ALT &&
         purpose != DIR_CONFIRM_REMOVE))
        return PST_EINVAL;
    if (RAND_bytes(tok, sizeof(tok)) != 1)
        return PST_EIO;
    if ((rc = dir_token_hash(tok, hash)) != 0)
        goto out;
    a[0] = (struct dir_arg){.b = hash, .blen = sizeof(hash)};
    a[1] = (struct dir_arg){.i = id};
    a[2] = (struct dir_arg){.i = (int64_t)purpose};
    a[3] = (struct dir_arg){.i = expires};
    rc = dir_one_int(st, DIR_Q_TOKEN_NEW, a, &got);
    if (rc == 0)
        rc = dir_token_encode(tok, text, textsz);
out:
    OPENSSL_cleanse(tok, sizeof(tok));
    return rc;
}

int dir_store_token_use(struct dir_store *st, const char *text, int64_t now, int64_t *id,
                        enum dir_purpose *purpose)
{
    unsigned char tok[DIR_TOKEN_LEN], hash[DIR_HASH_LEN];
    struct dir_arg a[2];
    struct dir_res r;
    int64_t used, p = 0, rid = 0;
    int rc;

    if (id != NULL)
        *id = 0;
    if (st == NULL || id == NULL || purpose == NULL)
        return PST_EINVAL;
    if ((rc = dir_token_decode(text, tok)) != 0)
        return rc;
    rc = dir_token_hash(tok, hash);
    OPENSSL_cleanse(tok, sizeof(tok));
    if (rc != 0)
        return rc;
    a[0] = (struct dir_arg){.b = hash, .blen = sizeof(hash)};
    a[1] = (struct dir_arg){.i = now};
    if ((rc = dir_run(st, DIR_Q_TOKEN_USE, a, &r)) != 0)
        return rc;
    rc = dir_next(&r);
    if (rc == 1) {
        rid = dir_col_int(&r, 0);
        p = dir_col_int(&r, 1);
        rc = 0;
    } else if (rc == 0) {
        rc = PST_ENOENT;
    }
    dir_done(&r);
    if (rc == PST_ENOENT) {
        rc = dir_one_int(st, DIR_Q_TOKEN_STATE, a, &used);
        return rc == 0 ? PST_EPERM : rc; /* known: used or expired */
    }
    if (rc != 0)
        return rc;
    if (p < DIR_CONFIRM_SMTP || p > DIR_CONFIRM_REMOVE)
        return PST_EDB;
    *id = rid;
    *purpose = (enum dir_purpose)p;
    return 0;
}
