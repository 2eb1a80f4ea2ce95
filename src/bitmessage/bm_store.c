/*
 * bm_store.c - the Bitmessage node's persistent state (see bm_store.h).
 *
 * Schema: src/lib/db.c migration 2 (tables bm_inventory, bm_keys,
 * bm_pubkeys, bm_outbox, bm_inbox). Statements are prepared once per
 * connection through db_stmt()'s cache.
 *
 * Reference behaviour followed (PyBitmessage): inventory objects are kept
 * three hours past expiry before deletion (storage clean(): expirestime <
 * now - 3 h); only unexpired objects are announced in inv messages
 * (unexpired_hashes_by_stream: expirestime > now); a resent msg gets its
 * TTL doubled, capped at 28 days (class_singleWorker.py sendMsg).
 *
 * Outbox state machine: the table bm_outbox_moves is the only place that
 * says which transition is allowed; bm_store_outbox_move() consults it
 * inside a write transaction and logs "old -> new" at debug level.
 *
 * Failure policy: everything returns 0 or a negative PST_E* code
 * (PST_EINVAL / PST_ELIMIT for bad or over-long input, checked before any
 * SQL runs; PST_ENOENT for a missing row; PST_EPERM for a refused outbox
 * transition; PST_EDB for SQLite errors). A row that does not satisfy the
 * fixed sizes on the way out (a damaged database) is PST_EDB, never a crash.
 * Private keys never reach the log.
 */
#include "bitmessage/bm_store.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"

struct bm_store {
    struct db *db;
};

/* ---- helpers ------------------------------------------------------------ */

/* bm_store_strok - s is non-NULL, non-empty and at most max bytes. */
static int bm_store_strok(const char *s, size_t max)
{
    size_t n;

    if (s == NULL)
        return PST_EINVAL;
    n = strnlen(s, max + 1);
    if (n == 0)
        return PST_EINVAL;
    return n > max ? PST_ELIMIT : 0;
}

/* bm_store_textok - (s, len) is present (s may be NULL only when len is 0) and at most max. */
static int bm_store_textok(const char *s, size_t len, size_t max)
{
    if (s == NULL && len != 0)
        return PST_EINVAL;
    return len > max ? PST_ELIMIT : 0;
}

static int bm_store_bind_blob(sqlite3_stmt *stmt, int idx, const void *p, size_t len)
{
    if (p == NULL)
        return sqlite3_bind_null(stmt, idx) == SQLITE_OK ? 0 : PST_EDB;
    if (len > (size_t)INT32_MAX)
        return PST_ELIMIT;
    return sqlite3_bind_blob(stmt, idx, len == 0 ? "" : p, (int)len, SQLITE_TRANSIENT) == SQLITE_OK
               ? 0
               : PST_EDB;
}

static int bm_store_bind_text(sqlite3_stmt *stmt, int idx, const char *s, size_t len)
{
    if (len > (size_t)INT32_MAX)
        return PST_ELIMIT;
    return sqlite3_bind_text(stmt, idx, len == 0 ? "" : s, (int)len, SQLITE_TRANSIENT) == SQLITE_OK
               ? 0
               : PST_EDB;
}

static int bm_store_bind_u64(sqlite3_stmt *stmt, int idx, uint64_t v)
{
    if (v > (uint64_t)INT64_MAX)
        return PST_ELIMIT;
    return db_bind_int64(stmt, idx, (int64_t)v);
}

/* bm_store_col_fixed - copy a blob column of exactly len bytes; PST_EDB otherwise. */
static int bm_store_col_fixed(sqlite3_stmt *stmt, int col, uint8_t *out, size_t len)
{
    const void *p = sqlite3_column_blob(stmt, col);

    if (p == NULL || (size_t)sqlite3_column_bytes(stmt, col) != len)
        return PST_EDB;
    memcpy(out, p, len);
    return 0;
}

/* bm_store_col_opt - like bm_store_col_fixed, NULL allowed (*has = false). */
static int bm_store_col_opt(sqlite3_stmt *stmt, int col, uint8_t *out, size_t len, bool *has)
{
    *has = false;
    if (sqlite3_column_type(stmt, col) == SQLITE_NULL)
        return 0;
    *has = true;
    return bm_store_col_fixed(stmt, col, out, len);
}

/* bm_store_col_str - copy a text column into out[max + 1]; PST_EDB if longer. */
static int bm_store_col_str(sqlite3_stmt *stmt, int col, char *out, size_t max)
{
    const unsigned char *p = sqlite3_column_text(stmt, col);
    size_t n = (size_t)sqlite3_column_bytes(stmt, col);

    if (p == NULL || n > max || memchr(p, '\0', n) != NULL)
        return PST_EDB;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

/* bm_store_col_dup - a malloc'd NUL-terminated copy of a text column of at most max bytes. */
static int bm_store_col_dup(sqlite3_stmt *stmt, int col, size_t max, char **out, size_t *len)
{
    const unsigned char *p = sqlite3_column_text(stmt, col);
    size_t n = (size_t)sqlite3_column_bytes(stmt, col);
    char *s;

    *out = NULL;
    *len = 0;
    if (p == NULL && n != 0)
        return PST_EDB;
    if (n > max)
        return PST_EDB;
    s = malloc(n + 1);
    if (s == NULL)
        return PST_ENOMEM;
    if (n > 0)
        memcpy(s, p, n);
    s[n] = '\0';
    *out = s;
    *len = n;
    return 0;
}

/* bm_store_changes - rows changed by the last statement. */
static uint64_t bm_store_changes(struct bm_store *st)
{
    return (uint64_t)sqlite3_changes(db_handle(st->db));
}

/* ---- open / close -------------------------------------------------------- */

int bm_store_open(const char *path, struct bm_store **out)
{
    struct bm_store *st;
    int rc;

    *out = NULL;
    st = calloc(1, sizeof(*st));
    if (st == NULL)
        return PST_ENOMEM;
    if ((rc = db_open(path, &st->db)) != 0) {
        free(st);
        return rc;
    }
    *out = st;
    return 0;
}

void bm_store_close(struct bm_store **stp)
{
    if (stp == NULL || *stp == NULL)
        return;
    db_close(&(*stp)->db);
    free(*stp);
    *stp = NULL;
}

struct db *bm_store_db(struct bm_store *st)
{
    return st->db;
}

/* ---- inventory ---------------------------------------------------------- */

int bm_store_inv_put(struct bm_store *st, const struct bm_store_object *obj, bool *is_new)
{
    sqlite3_stmt *stmt = NULL;
    int rc;

    if (is_new != NULL)
        *is_new = false;
    if (obj == NULL || obj->payload == NULL || obj->payload_len == 0)
        return PST_EINVAL;
    if (obj->payload_len > BM_STORE_OBJECT_MAX)
        return PST_ELIMIT;
    rc = db_stmt(st->db,
                 "INSERT OR IGNORE INTO bm_inventory"
                 "(hash, type, stream, expires, tag, payload, received)"
                 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                 &stmt);
    if (rc != 0)
        return rc;
    if ((rc = bm_store_bind_blob(stmt, 1, obj->hash, BM_STORE_HASH_LEN)) == 0 &&
        (rc = db_bind_int64(stmt, 2, obj->type)) == 0 &&
        (rc = bm_store_bind_u64(stmt, 3, obj->stream)) == 0 &&
        (rc = db_bind_int64(stmt, 4, obj->expires)) == 0 &&
        (rc = bm_store_bind_blob(stmt, 5, obj->has_tag ? obj->tag : NULL, BM_STORE_TAG_LEN)) == 0 &&
        (rc = bm_store_bind_blob(stmt, 6, obj->payload, obj->payload_len)) == 0 &&
        (rc = db_bind_int64(stmt, 7, obj->received)) == 0)
        rc = db_step(stmt);
    if (rc == 0 && is_new != NULL)
        *is_new = bm_store_changes(st) > 0;
    db_stmt_done(stmt);
    return rc;
}

void bm_store_object_free(struct bm_store_object *obj)
{
    if (obj == NULL)
        return;
    free(obj->payload);
    memset(obj, 0, sizeof(*obj));
}

static int bm_store_obj_row(sqlite3_stmt *stmt, struct bm_store_object *out)
{
    const void *p;
    size_t n;
    int rc;

    if ((rc = bm_store_col_fixed(stmt, 0, out->hash, BM_STORE_HASH_LEN)) != 0)
        return rc;
    out->type = (uint32_t)sqlite3_column_int64(stmt, 1);
    out->stream = (uint64_t)sqlite3_column_int64(stmt, 2);
    out->expires = sqlite3_column_int64(stmt, 3);
    if ((rc = bm_store_col_opt(stmt, 4, out->tag, BM_STORE_TAG_LEN, &out->has_tag)) != 0)
        return rc;
    p = sqlite3_column_blob(stmt, 5);
    n = (size_t)sqlite3_column_bytes(stmt, 5);
    if (p == NULL || n == 0 || n > BM_STORE_OBJECT_MAX)
        return PST_EDB;
    out->payload = malloc(n);
    if (out->payload == NULL)
        return PST_ENOMEM;
    memcpy(out->payload, p, n);
    out->payload_len = n;
    out->received = sqlite3_column_int64(stmt, 6);
    return 0;
}

int bm_store_inv_get(struct bm_store *st, const uint8_t hash[BM_STORE_HASH_LEN],
                     struct bm_store_object *out)
{
    sqlite3_stmt *stmt = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if (hash == NULL)
        return PST_EINVAL;
    rc = db_stmt(st->db,
                 "SELECT hash, type, stream, expires, tag, payload, received"
                 " FROM bm_inventory WHERE hash = ?1",
                 &stmt);
    if (rc != 0)
        return rc;
    if ((rc = bm_store_bind_blob(stmt, 1, hash, BM_STORE_HASH_LEN)) == 0)
        rc = db_step(stmt);
    if (rc == 1)
        rc = bm_store_obj_row(stmt, out);
    else if (rc == 0)
        rc = PST_ENOENT;
    db_stmt_done(stmt);
    if (rc != 0)
        bm_store_object_free(out);
    return rc;
}

int bm_store_inv_exists(struct bm_store *st, const uint8_t hash[BM_STORE_HASH_LEN], bool *out)
{
    sqlite3_stmt *stmt = NULL;
    int rc;

    *out = false;
    if (hash == NULL)
        return PST_EINVAL;
    if ((rc = db_stmt(st->db, "SELECT 1 FROM bm_inventory WHERE hash = ?1", &stmt)) != 0)
        return rc;
    if ((rc = bm_store_bind_blob(stmt, 1, hash, BM_STORE_HASH_LEN)) == 0)
        rc = db_step(stmt);
    if (rc >= 0) {
        *out = rc == 1;
        rc = 0;
    }
    db_stmt_done(stmt);
    return rc;
}

/* A growable list of fixed-size keys collected before callbacks run. */
struct bm_store_keys {
    uint8_t *v;
    size_t n, cap, width;
};

static int bm_store_keys_push(struct bm_store_keys *k, const void *p)
{
    uint8_t *nv;
    size_t ncap;

    if (k->n == k->cap) {
        ncap = k->cap == 0 ? 64 : k->cap * 2;
        if (ncap > SIZE_MAX / k->width)
            return PST_ENOMEM;
        nv = realloc(k->v, ncap * k->width);
        if (nv == NULL)
            return PST_ENOMEM;
        k->v = nv;
        k->cap = ncap;
    }
    memcpy(k->v + k->n * k->width, p, k->width);
    k->n++;
    return 0;
}

static void bm_store_keys_free(struct bm_store_keys *k)
{
    free(k->v);
    k->v = NULL;
    k->n = k->cap = 0;
}

int bm_store_inv_hashes(struct bm_store *st, uint64_t stream, int64_t now, bm_store_hash_cb cb,
                        void *arg)
{
    struct bm_store_keys keys = {.width = BM_STORE_HASH_LEN};
    sqlite3_stmt *stmt = NULL;
    size_t i;
    int rc;

    if (cb == NULL)
        return PST_EINVAL;
    rc = db_stmt(st->db, "SELECT hash FROM bm_inventory WHERE stream = ?1 AND expires > ?2", &stmt);
    if (rc != 0)
        return rc;
    if ((rc = bm_store_bind_u64(stmt, 1, stream)) == 0 && (rc = db_bind_int64(stmt, 2, now)) == 0) {
        uint8_t h[BM_STORE_HASH_LEN];

        while ((rc = db_step(stmt)) == 1) {
            if ((rc = bm_store_col_fixed(stmt, 0, h, sizeof(h))) != 0 ||
                (rc = bm_store_keys_push(&keys, h)) != 0)
                break;
        }
    }
    db_stmt_done(stmt);
    for (i = 0; rc == 0 && i < keys.n; i++)
        rc = cb(keys.v + i * BM_STORE_HASH_LEN, arg);
    bm_store_keys_free(&keys);
    return rc;
}

int bm_store_inv_by_tag(struct bm_store *st, uint32_t type, const uint8_t tag[BM_STORE_TAG_LEN],
                        int64_t now, bm_store_object_cb cb, void *arg)
{
    struct bm_store_keys keys = {.width = BM_STORE_HASH_LEN};
    struct bm_store_object obj;
    sqlite3_stmt *stmt = NULL;
    uint8_t h[BM_STORE_HASH_LEN];
    size_t i;
    int rc;

    if (cb == NULL || tag == NULL)
        return PST_EINVAL;
    rc = db_stmt(st->db,
                 "SELECT hash FROM bm_inventory WHERE type = ?1 AND tag = ?2 AND expires > ?3"
                 " ORDER BY expires DESC",
                 &stmt);
    if (rc != 0)
        return rc;
    if ((rc = db_bind_int64(stmt, 1, type)) == 0 &&
        (rc = bm_store_bind_blob(stmt, 2, tag, BM_STORE_TAG_LEN)) == 0 &&
        (rc = db_bind_int64(stmt, 3, now)) == 0) {
        while ((rc = db_step(stmt)) == 1) {
            if ((rc = bm_store_col_fixed(stmt, 0, h, sizeof(h))) != 0 ||
                (rc = bm_store_keys_push(&keys, h)) != 0)
                break;
        }
    }
    db_stmt_done(stmt);
    for (i = 0; rc == 0 && i < keys.n; i++) {
        rc = bm_store_inv_get(st, keys.v + i * BM_STORE_HASH_LEN, &obj);
        if (rc == PST_ENOENT) {
            rc = 0; /* purged meanwhile */
            continue;
        }
        if (rc == 0)
            rc = cb(&obj, arg);
        bm_store_object_free(&obj);
    }
    bm_store_keys_free(&keys);
    return rc;
}

int bm_store_inv_purge(struct bm_store *st, int64_t now, uint64_t *removed)
{
    sqlite3_stmt *stmt = NULL;
    int rc;

    if (removed != NULL)
        *removed = 0;
    if (now < INT64_MIN + BM_STORE_PURGE_GRACE)
        return PST_EINVAL;
    if ((rc = db_stmt(st->db, "DELETE FROM bm_inventory WHERE expires < ?1", &stmt)) != 0)
        return rc;
    if ((rc = db_bind_int64(stmt, 1, now - BM_STORE_PURGE_GRACE)) == 0)
        rc = db_step(stmt);
    if (rc == 0 && removed != NULL)
        *removed = bm_store_changes(st);
    db_stmt_done(stmt);
    if (rc == 0 && removed != NULL && *removed > 0)
        log_debug("bm_store purge removed=%" PRIu64, *removed);
    return rc;
}

int bm_store_inv_stats(struct bm_store *st, uint64_t *count, uint64_t *bytes)
{
    sqlite3_stmt *stmt = NULL;
    int rc;

    rc = db_stmt(st->db, "SELECT count(*), coalesce(sum(length(payload)), 0) FROM bm_inventory",
                 &stmt);
    if (rc != 0)
        return rc;
    rc = db_step(stmt);
    if (rc == 1) {
        if (count != NULL)
            *count = (uint64_t)sqlite3_column_int64(stmt, 0);
        if (bytes != NULL)
            *bytes = (uint64_t)sqlite3_column_int64(stmt, 1);
        rc = 0;
    } else if (rc == 0) {
        rc = PST_EDB;
    }
    db_stmt_done(stmt);
    return rc;
}

/* ---- our keys ----------------------------------------------------------- */

#define BM_STORE_KEY_COLS                                                                          \
    "address, label, version, stream, ripe, tag, signing_priv, encryption_priv, deterministic, "   \
    "created"

int bm_store_key_add(struct bm_store *st, const struct bm_store_key *key)
{
    sqlite3_stmt *stmt = NULL;
    int rc;

    if (key == NULL)
        return PST_EINVAL;
    if ((rc = bm_store_strok(key->address, BM_STORE_ADDR_MAX)) != 0)
        return rc;
    if (strnlen(key->label, BM_STORE_LABEL_MAX + 1) > BM_STORE_LABEL_MAX)
        return PST_ELIMIT;
    rc = db_stmt(st->db,
                 "INSERT INTO bm_keys(" BM_STORE_KEY_COLS ")"
                 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                 &stmt);
    if (rc != 0)
        return rc;
    if ((rc = db_bind_text(stmt, 1, key->address)) == 0 &&
        (rc = db_bind_text(stmt, 2, key->label)) == 0 &&
        (rc = db_bind_int64(stmt, 3, key->version)) == 0 &&
        (rc = bm_store_bind_u64(stmt, 4, key->stream)) == 0 &&
        (rc = bm_store_bind_blob(stmt, 5, key->ripe, BM_STORE_RIPE_LEN)) == 0 &&
        (rc = bm_store_bind_blob(stmt, 6, key->tag, BM_STORE_TAG_LEN)) == 0 &&
        (rc = bm_store_bind_blob(stmt, 7, key->signing_priv, BM_STORE_PRIVKEY_LEN)) == 0 &&
        (rc = bm_store_bind_blob(stmt, 8, key->encryption_priv, BM_STORE_PRIVKEY_LEN)) == 0 &&
        (rc = db_bind_int64(stmt, 9, key->deterministic ? 1 : 0)) == 0 &&
        (rc = db_bind_int64(stmt, 10, key->created)) == 0)
        rc = db_step(stmt);
    /* the bound copies of the private keys live in SQLite's memory until cleared */
    db_stmt_done(stmt);
    return rc;
}

void bm_store_key_clear(struct bm_store_key *key)
{
    if (key != NULL)
        explicit_bzero(key, sizeof(*key));
}

static int bm_store_key_row(sqlite3_stmt *stmt, struct bm_store_key *out)
{
    int rc;

    if ((rc = bm_store_col_str(stmt, 0, out->address, BM_STORE_ADDR_MAX)) != 0 ||
        (rc = bm_store_col_str(stmt, 1, out->label, BM_STORE_LABEL_MAX)) != 0)
        return rc;
    out->version = (uint32_t)sqlite3_column_int64(stmt, 2);
    out->stream = (uint64_t)sqlite3_column_int64(stmt, 3);
    if ((rc = bm_store_col_fixed(stmt, 4, out->ripe, BM_STORE_RIPE_LEN)) != 0 ||
        (rc = bm_store_col_fixed(stmt, 5, out->tag, BM_STORE_TAG_LEN)) != 0 ||
        (rc = bm_store_col_fixed(stmt, 6, out->signing_priv, BM_STORE_PRIVKEY_LEN)) != 0 ||
        (rc = bm_store_col_fixed(stmt, 7, out->encryption_priv, BM_STORE_PRIVKEY_LEN)) != 0)
        return rc;
    out->deterministic = sqlite3_column_int64(stmt, 8) != 0;
    out->created = sqlite3_column_int64(stmt, 9);
    return 0;
}

/* bm_store_key_find - one key by sql's single parameter: text v (len 0) or blob (v, len). */
static int bm_store_key_find(struct bm_store *st, const char *sql, const uint8_t *v, size_t len,
                             struct bm_store_key *out)
{
    sqlite3_stmt *stmt = NULL;
    int rc;

    bm_store_key_clear(out);
    if (v == NULL)
        return PST_EINVAL;
    if ((rc = db_stmt(st->db, sql, &stmt)) != 0)
        return rc;
    rc = len == 0 ? db_bind_text(stmt, 1, (const char *)v) : bm_store_bind_blob(stmt, 1, v, len);
    if (rc == 0)
        rc = db_step(stmt);
    if (rc == 1)
        rc = bm_store_key_row(stmt, out);
    else if (rc == 0)
        rc = PST_ENOENT;
    db_stmt_done(stmt);
    if (rc != 0)
        bm_store_key_clear(out);
    return rc;
}

int bm_store_key_by_ripe(struct bm_store *st, const uint8_t ripe[BM_STORE_RIPE_LEN],
                         struct bm_store_key *out)
{
    return bm_store_key_find(st,
                             "SELECT " BM_STORE_KEY_COLS " FROM bm_keys WHERE ripe = ?1"
                             " ORDER BY address LIMIT 1",
                             ripe, BM_STORE_RIPE_LEN, out);
}

int bm_store_key_by_tag(struct bm_store *st, const uint8_t tag[BM_STORE_TAG_LEN],
                        struct bm_store_key *out)
{
    return bm_store_key_find(st,
                             "SELECT " BM_STORE_KEY_COLS " FROM bm_keys WHERE tag = ?1"
                             " ORDER BY address LIMIT 1",
                             tag, BM_STORE_TAG_LEN, out);
}

int bm_store_key_by_addr(struct bm_store *st, const char *address, struct bm_store_key *out)
{
    int rc = bm_store_strok(address, BM_STORE_ADDR_MAX);

    if (rc != 0) {
        bm_store_key_clear(out);
        return rc;
    }
    return bm_store_key_find(st, "SELECT " BM_STORE_KEY_COLS " FROM bm_keys WHERE address = ?1",
                             (const uint8_t *)address, 0, out);
}

int bm_store_key_list(struct bm_store *st, bm_store_key_cb cb, void *arg)
{
    struct bm_store_keys keys = {.width = BM_STORE_ADDR_MAX + 1};
    struct bm_store_key k;
    sqlite3_stmt *stmt = NULL;
    char addr[BM_STORE_ADDR_MAX + 1];
    size_t i;
    int rc;

    if (cb == NULL)
        return PST_EINVAL;
    /* collect the (few) addresses first; then fetch each so cb may use the store */
    if ((rc = db_stmt(st->db, "SELECT address FROM bm_keys ORDER BY address", &stmt)) != 0)
        return rc;
    while ((rc = db_step(stmt)) == 1) {
        memset(addr, 0, sizeof(addr));
        if ((rc = bm_store_col_str(stmt, 0, addr, BM_STORE_ADDR_MAX)) != 0 ||
            (rc = bm_store_keys_push(&keys, addr)) != 0)
            break;
    }
    db_stmt_done(stmt);
    for (i = 0; rc == 0 && i < keys.n; i++) {
        rc = bm_store_key_by_addr(st, (const char *)keys.v + i * keys.width, &k);
        if (rc == PST_ENOENT) {
            rc = 0; /* deleted meanwhile */
            continue;
        }
        if (rc == 0)
            rc = cb(&k, arg);
        bm_store_key_clear(&k);
    }
    bm_store_keys_free(&keys);
    return rc;
}

/* ---- others' pubkeys ---------------------------------------------------- */

#define BM_STORE_PK_COLS                                                                           \
    "address, ripe, tag, signing_pub, encryption_pub, nonce_trials, extra_bytes, behavior, "       \
    "last_seen"

int bm_store_pubkey_put(struct bm_store *st, const struct bm_store_pubkey *pk)
{
    sqlite3_stmt *stmt = NULL;
    int rc;

    if (pk == NULL)
        return PST_EINVAL;
    if ((rc = bm_store_strok(pk->address, BM_STORE_ADDR_MAX)) != 0)
        return rc;
    rc = db_stmt(st->db,
                 "INSERT OR REPLACE INTO bm_pubkeys(" BM_STORE_PK_COLS ")"
                 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                 &stmt);
    if (rc != 0)
        return rc;
    if ((rc = db_bind_text(stmt, 1, pk->address)) == 0 &&
        (rc = bm_store_bind_blob(stmt, 2, pk->ripe, BM_STORE_RIPE_LEN)) == 0 &&
        (rc = bm_store_bind_blob(stmt, 3, pk->has_tag ? pk->tag : NULL, BM_STORE_TAG_LEN)) == 0 &&
        (rc = bm_store_bind_blob(stmt, 4, pk->signing_pub, BM_STORE_PUBKEY_LEN)) == 0 &&
        (rc = bm_store_bind_blob(stmt, 5, pk->encryption_pub, BM_STORE_PUBKEY_LEN)) == 0 &&
        (rc = bm_store_bind_u64(stmt, 6, pk->nonce_trials)) == 0 &&
        (rc = bm_store_bind_u64(stmt, 7, pk->extra_bytes)) == 0 &&
        (rc = db_bind_int64(stmt, 8, pk->behavior)) == 0 &&
        (rc = db_bind_int64(stmt, 9, pk->last_seen)) == 0)
        rc = db_step(stmt);
    db_stmt_done(stmt);
    return rc;
}

static int bm_store_pk_row(sqlite3_stmt *stmt, struct bm_store_pubkey *out)
{
    int rc;

    if ((rc = bm_store_col_str(stmt, 0, out->address, BM_STORE_ADDR_MAX)) != 0 ||
        (rc = bm_store_col_fixed(stmt, 1, out->ripe, BM_STORE_RIPE_LEN)) != 0 ||
        (rc = bm_store_col_opt(stmt, 2, out->tag, BM_STORE_TAG_LEN, &out->has_tag)) != 0 ||
        (rc = bm_store_col_fixed(stmt, 3, out->signing_pub, BM_STORE_PUBKEY_LEN)) != 0 ||
        (rc = bm_store_col_fixed(stmt, 4, out->encryption_pub, BM_STORE_PUBKEY_LEN)) != 0)
        return rc;
    out->nonce_trials = (uint64_t)sqlite3_column_int64(stmt, 5);
    out->extra_bytes = (uint64_t)sqlite3_column_int64(stmt, 6);
    out->behavior = (uint32_t)sqlite3_column_int64(stmt, 7);
    out->last_seen = sqlite3_column_int64(stmt, 8);
    return 0;
}

/* bm_store_pk_find - one pubkey by the single parameter of sql: text (len 0) or blob. */
static int bm_store_pk_find(struct bm_store *st, const char *sql, const void *v, size_t len,
                            struct bm_store_pubkey *out)
{
    sqlite3_stmt *stmt = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = db_stmt(st->db, sql, &stmt)) != 0)
        return rc;
    rc = len == 0 ? db_bind_text(stmt, 1, v) : bm_store_bind_blob(stmt, 1, v, len);
    if (rc == 0)
        rc = db_step(stmt);
    if (rc == 1)
        rc = bm_store_pk_row(stmt, out);
    else if (rc == 0)
        rc = PST_ENOENT;
    db_stmt_done(stmt);
    if (rc != 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

int bm_store_pubkey_by_addr(struct bm_store *st, const char *address, struct bm_store_pubkey *out)
{
    int rc = bm_store_strok(address, BM_STORE_ADDR_MAX);

    if (rc != 0) {
        memset(out, 0, sizeof(*out));
        return rc;
    }
    return bm_store_pk_find(st, "SELECT " BM_STORE_PK_COLS " FROM bm_pubkeys WHERE address = ?1",
                            address, 0, out);
}

int bm_store_pubkey_by_ripe(struct bm_store *st, const uint8_t ripe[BM_STORE_RIPE_LEN],
                            struct bm_store_pubkey *out)
{
    if (ripe == NULL)
        return PST_EINVAL;
    return bm_store_pk_find(st,
                            "SELECT " BM_STORE_PK_COLS " FROM bm_pubkeys WHERE ripe = ?1"
                            " ORDER BY last_seen DESC LIMIT 1",
                            ripe, BM_STORE_RIPE_LEN, out);
}

int bm_store_pubkey_by_tag(struct bm_store *st, const uint8_t tag[BM_STORE_TAG_LEN],
                           struct bm_store_pubkey *out)
{
    if (tag == NULL)
        return PST_EINVAL;
    return bm_store_pk_find(st,
                            "SELECT " BM_STORE_PK_COLS " FROM bm_pubkeys WHERE tag = ?1"
                            " ORDER BY last_seen DESC LIMIT 1",
                            tag, BM_STORE_TAG_LEN, out);
}

/* ---- outbox ------------------------------------------------------------- */

static const char *const bm_outbox_names[BM_OUTBOX_NSTATES] = {
    [BM_OUTBOX_AWAITINGPUBKEY] = "awaitingpubkey",
    [BM_OUTBOX_DOINGPOW] = "doingpow",
    [BM_OUTBOX_SENT] = "sent",
    [BM_OUTBOX_ACKED] = "acked",
    [BM_OUTBOX_FAILED] = "failed",
};

/* The transition table: bm_outbox_moves[from][to]. */
static const bool bm_outbox_moves[BM_OUTBOX_NSTATES][BM_OUTBOX_NSTATES] = {
    [BM_OUTBOX_AWAITINGPUBKEY] = {[BM_OUTBOX_DOINGPOW] = true, [BM_OUTBOX_FAILED] = true},
    [BM_OUTBOX_DOINGPOW] = {[BM_OUTBOX_SENT] = true, [BM_OUTBOX_FAILED] = true},
    /* sent -> doingpow: no ack within TTL, resend with a doubled TTL */
    [BM_OUTBOX_SENT] =
        {[BM_OUTBOX_ACKED] = true, [BM_OUTBOX_DOINGPOW] = true, [BM_OUTBOX_FAILED] = true},
    /* acked and failed are final */
};

const char *bm_outbox_state_name(enum bm_outbox_state s)
{
    return (unsigned)s < BM_OUTBOX_NSTATES ? bm_outbox_names[s] : "?";
}

bool bm_outbox_can_move(enum bm_outbox_state from, enum bm_outbox_state to)
{
    if ((unsigned)from >= BM_OUTBOX_NSTATES || (unsigned)to >= BM_OUTBOX_NSTATES)
        return false;
    return bm_outbox_moves[from][to];
}

static int bm_outbox_parse_state(const char *s, enum bm_outbox_state *out)
{
    unsigned i;

    for (i = 0; s != NULL && i < BM_OUTBOX_NSTATES; i++) {
        if (strcmp(s, bm_outbox_names[i]) == 0) {
            *out = (enum bm_outbox_state)i;
            return 0;
        }
    }
    return PST_EDB;
}

void bm_store_outmsg_free(struct bm_store_outmsg *m)
{
    if (m == NULL)
        return;
    free(m->subject);
    free(m->body);
    memset(m, 0, sizeof(*m));
}

int bm_store_outbox_add(struct bm_store *st, const char *from_addr, const char *to_addr,
                        const char *subject, size_t subject_len, const char *body, size_t body_len,
                        const uint8_t ackdata[BM_STORE_ACKDATA_LEN], int64_t ttl, int64_t now,
                        int64_t *msgid)
{
    sqlite3_stmt *stmt = NULL;
    int rc;

    *msgid = 0;
    if ((rc = bm_store_strok(from_addr, BM_STORE_ADDR_MAX)) != 0 ||
        (rc = bm_store_strok(to_addr, BM_STORE_ADDR_MAX)) != 0 ||
        (rc = bm_store_textok(subject, subject_len, BM_STORE_SUBJECT_MAX)) != 0 ||
        (rc = bm_store_textok(body, body_len, BM_STORE_BODY_MAX)) != 0)
        return rc;
    if (ackdata == NULL || ttl < BM_STORE_TTL_MIN)
        return PST_EINVAL;
    if (ttl > BM_STORE_TTL_MAX)
        return PST_ELIMIT;
    rc = db_stmt(st->db,
                 "INSERT INTO bm_outbox(from_addr, to_addr, subject, body, ackdata, state, ttl,"
                 " attempts, next_attempt, created, updated)"
                 " VALUES (?1, ?2, ?3, ?4, ?5, 'awaitingpubkey', ?6, 0, ?7, ?7, ?7)",
                 &stmt);
    if (rc != 0)
        return rc;
    if ((rc = db_bind_text(stmt, 1, from_addr)) == 0 &&
        (rc = db_bind_text(stmt, 2, to_addr)) == 0 &&
        (rc = bm_store_bind_text(stmt, 3, subject, subject_len)) == 0 &&
        (rc = bm_store_bind_text(stmt, 4, body, body_len)) == 0 &&
        (rc = bm_store_bind_blob(stmt, 5, ackdata, BM_STORE_ACKDATA_LEN)) == 0 &&
        (rc = db_bind_int64(stmt, 6, ttl)) == 0 && (rc = db_bind_int64(stmt, 7, now)) == 0)
        rc = db_step(stmt);
    if (rc == 0)
        *msgid = (int64_t)sqlite3_last_insert_rowid(db_handle(st->db));
    db_stmt_done(stmt);
    if (rc == 0)
        log_debug("bm_store outbox queued msgid=%" PRId64 " ttl=%" PRId64, *msgid, ttl);
    return rc;
}

#define BM_STORE_OUT_COLS                                                                          \
    "msgid, from_addr, to_addr, subject, body, ackdata, state, ttl, attempts, next_attempt, "      \
    "inventory_hash, created, updated"

static int bm_store_out_row(sqlite3_stmt *stmt, struct bm_store_outmsg *out)
{
    int rc;

    out->msgid = sqlite3_column_int64(stmt, 0);
    if ((rc = bm_store_col_str(stmt, 1, out->from_addr, BM_STORE_ADDR_MAX)) != 0 ||
        (rc = bm_store_col_str(stmt, 2, out->to_addr, BM_STORE_ADDR_MAX)) != 0 ||
        (rc = bm_store_col_dup(stmt, 3, BM_STORE_SUBJECT_MAX, &out->subject, &out->subject_len)) !=
            0 ||
        (rc = bm_store_col_dup(stmt, 4, BM_STORE_BODY_MAX, &out->body, &out->body_len)) != 0 ||
        (rc = bm_store_col_fixed(stmt, 5, out->ackdata, BM_STORE_ACKDATA_LEN)) != 0 ||
        (rc = bm_outbox_parse_state((const char *)sqlite3_column_text(stmt, 6), &out->state)) != 0)
        return rc;
    out->ttl = sqlite3_column_int64(stmt, 7);
    out->attempts = (uint32_t)sqlite3_column_int64(stmt, 8);
    out->next_attempt = sqlite3_column_int64(stmt, 9);
    if ((rc = bm_store_col_opt(stmt, 10, out->inventory_hash, BM_STORE_HASH_LEN,
                               &out->has_inventory_hash)) != 0)
        return rc;
    out->created = sqlite3_column_int64(stmt, 11);
    out->updated = sqlite3_column_int64(stmt, 12);
    return 0;
}

/* bm_store_out_find - one message by sql's single parameter: int64 id (v NULL) or blob v. */
static int bm_store_out_find(struct bm_store *st, const char *sql, int64_t id, const uint8_t *v,
                             size_t len, struct bm_store_outmsg *out)
{
    sqlite3_stmt *stmt = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = db_stmt(st->db, sql, &stmt)) != 0)
        return rc;
    rc = v == NULL ? db_bind_int64(stmt, 1, id) : bm_store_bind_blob(stmt, 1, v, len);
    if (rc == 0)
        rc = db_step(stmt);
    if (rc == 1)
        rc = bm_store_out_row(stmt, out);
    else if (rc == 0)
        rc = PST_ENOENT;
    db_stmt_done(stmt);
    if (rc != 0)
        bm_store_outmsg_free(out);
    return rc;
}

int bm_store_outbox_get(struct bm_store *st, int64_t msgid, struct bm_store_outmsg *out)
{
    return bm_store_out_find(st, "SELECT " BM_STORE_OUT_COLS " FROM bm_outbox WHERE msgid = ?1",
                             msgid, NULL, 0, out);
}

int bm_store_outbox_by_ackdata(struct bm_store *st, const uint8_t ackdata[BM_STORE_ACKDATA_LEN],
                               struct bm_store_outmsg *out)
{
    if (ackdata == NULL) {
        memset(out, 0, sizeof(*out));
        return PST_EINVAL;
    }
    return bm_store_out_find(st, "SELECT " BM_STORE_OUT_COLS " FROM bm_outbox WHERE ackdata = ?1",
                             0, ackdata, BM_STORE_ACKDATA_LEN, out);
}

/* bm_store_out_state - current state, ttl and attempts of msgid. */
static int bm_store_out_state(struct bm_store *st, int64_t msgid, enum bm_outbox_state *state,
                              int64_t *ttl, int64_t *attempts)
{
    sqlite3_stmt *stmt = NULL;
    int rc;

    rc = db_stmt(st->db, "SELECT state, ttl, attempts FROM bm_outbox WHERE msgid = ?1", &stmt);
    if (rc != 0)
        return rc;
    if ((rc = db_bind_int64(stmt, 1, msgid)) == 0)
        rc = db_step(stmt);
    if (rc == 1) {
        rc = bm_outbox_parse_state((const char *)sqlite3_column_text(stmt, 0), state);
        *ttl = sqlite3_column_int64(stmt, 1);
        *attempts = sqlite3_column_int64(stmt, 2);
    } else if (rc == 0) {
        rc = PST_ENOENT;
    }
    db_stmt_done(stmt);
    return rc;
}

/* bm_store_out_update - write the new state (inside the caller's transaction). */
static int bm_store_out_update(struct bm_store *st, int64_t msgid, enum bm_outbox_state to,
                               int64_t ttl, int64_t attempts, int64_t now, int64_t next_attempt,
                               const uint8_t *inv_hash)
{
    sqlite3_stmt *stmt = NULL;
    int rc;

    rc = db_stmt(st->db,
                 "UPDATE bm_outbox SET state = ?2, ttl = ?3, attempts = ?4, next_attempt = ?5,"
                 " inventory_hash = coalesce(?6, inventory_hash), updated = ?7 WHERE msgid = ?1",
                 &stmt);
    if (rc != 0)
        return rc;
    if ((rc = db_bind_int64(stmt, 1, msgid)) == 0 &&
        (rc = db_bind_text(stmt, 2, bm_outbox_names[to])) == 0 &&
        (rc = db_bind_int64(stmt, 3, ttl)) == 0 && (rc = db_bind_int64(stmt, 4, attempts)) == 0 &&
        (rc = db_bind_int64(stmt, 5, next_attempt)) == 0 &&
        (rc = bm_store_bind_blob(stmt, 6, inv_hash, BM_STORE_HASH_LEN)) == 0 &&
        (rc = db_bind_int64(stmt, 7, now)) == 0)
        rc = db_step(stmt);
    db_stmt_done(stmt);
    return rc;
}

int bm_store_outbox_move(struct bm_store *st, int64_t msgid, enum bm_outbox_state to, int64_t now,
                         int64_t next_attempt, const uint8_t inv_hash[BM_STORE_HASH_LEN])
{
    enum bm_outbox_state from = BM_OUTBOX_AWAITINGPUBKEY;
    int64_t ttl = 0, attempts = 0;
    int rc;

    if ((unsigned)to >= BM_OUTBOX_NSTATES)
        return PST_EINVAL;
    if ((rc = db_begin(st->db)) != 0)
        return rc;
    rc = bm_store_out_state(st, msgid, &from, &ttl, &attempts);
    if (rc == 0 && !bm_outbox_can_move(from, to))
        rc = PST_EPERM;
    if (rc == 0) {
        if (to == BM_OUTBOX_SENT)
            attempts++;
        if (from == BM_OUTBOX_SENT && to == BM_OUTBOX_DOINGPOW)
            ttl = ttl > BM_STORE_TTL_MAX / 2 ? BM_STORE_TTL_MAX : ttl * 2;
        rc = bm_store_out_update(st, msgid, to, ttl, attempts, now, next_attempt,
                                 to == BM_OUTBOX_SENT ? inv_hash : NULL);
    }
    if (rc == 0)
        rc = db_commit(st->db);
    if (rc != 0) {
        db_rollback(st->db);
        if (rc == PST_EPERM)
            log_debug("bm_store outbox refused msgid=%" PRId64 " state=%s->%s", msgid,
                      bm_outbox_state_name(from), bm_outbox_state_name(to));
        return rc;
    }
    log_debug("bm_store outbox msgid=%" PRId64 " state=%s->%s ttl=%" PRId64, msgid,
              bm_outbox_state_name(from), bm_outbox_state_name(to), ttl);
    return 0;
}

int bm_store_outbox_reschedule(struct bm_store *st, int64_t msgid, int64_t now,
                               int64_t next_attempt)
{
    enum bm_outbox_state state = BM_OUTBOX_AWAITINGPUBKEY;
    int64_t ttl = 0, attempts = 0;
    sqlite3_stmt *stmt = NULL;
    bool changed;
    int rc;

    rc = db_stmt(st->db,
                 "UPDATE bm_outbox SET next_attempt = ?2, updated = ?3"
                 " WHERE msgid = ?1 AND state IN ('awaitingpubkey', 'doingpow', 'sent')",
                 &stmt);
    if (rc != 0)
        return rc;
    if ((rc = db_bind_int64(stmt, 1, msgid)) == 0 &&
        (rc = db_bind_int64(stmt, 2, next_attempt)) == 0 && (rc = db_bind_int64(stmt, 3, now)) == 0)
        rc = db_step(stmt);
    changed = rc == 0 && bm_store_changes(st) > 0;
    db_stmt_done(stmt);
    if (rc != 0 || changed)
        return rc;
    /* no row changed: absent (PST_ENOENT) or final (PST_EPERM) */
    rc = bm_store_out_state(st, msgid, &state, &ttl, &attempts);
    return rc == 0 ? PST_EPERM : rc;
}

int bm_store_outbox_due(struct bm_store *st, enum bm_outbox_state state, int64_t now,
                        bm_store_outmsg_cb cb, void *arg)
{
    struct bm_store_keys ids = {.width = sizeof(int64_t)};
    struct bm_store_outmsg m;
    sqlite3_stmt *stmt = NULL;
    int64_t id;
    size_t i;
    int rc;

    if (cb == NULL || (unsigned)state >= BM_OUTBOX_NSTATES)
        return PST_EINVAL;
    rc = db_stmt(st->db,
                 "SELECT msgid FROM bm_outbox WHERE state = ?1 AND next_attempt <= ?2"
                 " ORDER BY next_attempt, msgid",
                 &stmt);
    if (rc != 0)
        return rc;
    if ((rc = db_bind_text(stmt, 1, bm_outbox_names[state])) == 0 &&
        (rc = db_bind_int64(stmt, 2, now)) == 0) {
        while ((rc = db_step(stmt)) == 1) {
            id = sqlite3_column_int64(stmt, 0);
            if ((rc = bm_store_keys_push(&ids, &id)) != 0)
                break;
        }
    }
    db_stmt_done(stmt);
    for (i = 0; rc == 0 && i < ids.n; i++) {
        memcpy(&id, ids.v + i * sizeof(id), sizeof(id));
        rc = bm_store_outbox_get(st, id, &m);
        if (rc == PST_ENOENT) {
            rc = 0;
            continue;
        }
        if (rc == 0 && m.state == state)
            rc = cb(&m, arg);
        bm_store_outmsg_free(&m);
    }
    bm_store_keys_free(&ids);
    return rc;
}

/* ---- inbox -------------------------------------------------------------- */

void bm_store_inmsg_free(struct bm_store_inmsg *m)
{
    if (m == NULL)
        return;
    free(m->subject);
    free(m->body);
    memset(m, 0, sizeof(*m));
}

/* bm_store_in_id - the row id for msgid_hash (PST_ENOENT if none). */
static int bm_store_in_id(struct bm_store *st, const uint8_t *hash, int64_t *id)
{
    sqlite3_stmt *stmt = NULL;
    int rc;

    if ((rc = db_stmt(st->db, "SELECT id FROM bm_inbox WHERE msgid_hash = ?1", &stmt)) != 0)
        return rc;
    if ((rc = bm_store_bind_blob(stmt, 1, hash, BM_STORE_HASH_LEN)) == 0)
        rc = db_step(stmt);
    if (rc == 1) {
        *id = sqlite3_column_int64(stmt, 0);
        rc = 0;
    } else if (rc == 0) {
        rc = PST_ENOENT;
    }
    db_stmt_done(stmt);
    return rc;
}

int bm_store_inbox_put(struct bm_store *st, const struct bm_store_inmsg *m, bool *is_new,
                       int64_t *id)
{
    sqlite3_stmt *stmt = NULL;
    bool added = false;
    int64_t rowid = 0;
    int rc;

    if (is_new != NULL)
        *is_new = false;
    if (id != NULL)
        *id = 0;
    if (m == NULL)
        return PST_EINVAL;
    if ((rc = bm_store_strok(m->to_addr, BM_STORE_ADDR_MAX)) != 0 ||
        (rc = bm_store_strok(m->from_addr, BM_STORE_ADDR_MAX)) != 0 ||
        (rc = bm_store_textok(m->subject, m->subject_len, BM_STORE_SUBJECT_MAX)) != 0 ||
        (rc = bm_store_textok(m->body, m->body_len, BM_STORE_BODY_MAX)) != 0)
        return rc;
    rc = db_stmt(st->db,
                 "INSERT OR IGNORE INTO bm_inbox(msgid_hash, to_addr, from_addr, subject, body,"
                 " encoding, received, delivered_to_maildir)"
                 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)",
                 &stmt);
    if (rc != 0)
        return rc;
    if ((rc = bm_store_bind_blob(stmt, 1, m->msgid_hash, BM_STORE_HASH_LEN)) == 0 &&
        (rc = db_bind_text(stmt, 2, m->to_addr)) == 0 &&
        (rc = db_bind_text(stmt, 3, m->from_addr)) == 0 &&
        (rc = bm_store_bind_text(stmt, 4, m->subject, m->subject_len)) == 0 &&
        (rc = bm_store_bind_text(stmt, 5, m->body, m->body_len)) == 0 &&
        (rc = db_bind_int64(stmt, 6, m->encoding)) == 0 &&
        (rc = db_bind_int64(stmt, 7, m->received)) == 0)
        rc = db_step(stmt);
    if (rc == 0) {
        added = bm_store_changes(st) > 0;
        rowid = (int64_t)sqlite3_last_insert_rowid(db_handle(st->db));
    }
    db_stmt_done(stmt);
    if (rc == 0 && !added)
        rc = bm_store_in_id(st, m->msgid_hash, &rowid);
    if (rc != 0)
        return rc;
    if (is_new != NULL)
        *is_new = added;
    if (id != NULL)
        *id = rowid;
    return 0;
}

static int bm_store_in_row(sqlite3_stmt *stmt, struct bm_store_inmsg *out)
{
    int rc;

    out->id = sqlite3_column_int64(stmt, 0);
    if ((rc = bm_store_col_fixed(stmt, 1, out->msgid_hash, BM_STORE_HASH_LEN)) != 0 ||
        (rc = bm_store_col_str(stmt, 2, out->to_addr, BM_STORE_ADDR_MAX)) != 0 ||
        (rc = bm_store_col_str(stmt, 3, out->from_addr, BM_STORE_ADDR_MAX)) != 0 ||
        (rc = bm_store_col_dup(stmt, 4, BM_STORE_SUBJECT_MAX, &out->subject, &out->subject_len)) !=
            0 ||
        (rc = bm_store_col_dup(stmt, 5, BM_STORE_BODY_MAX, &out->body, &out->body_len)) != 0)
        return rc;
    out->encoding = (uint32_t)sqlite3_column_int64(stmt, 6);
    out->received = sqlite3_column_int64(stmt, 7);
    out->delivered = sqlite3_column_int64(stmt, 8) != 0;
    return 0;
}

static int bm_store_in_get(struct bm_store *st, int64_t id, struct bm_store_inmsg *out)
{
    sqlite3_stmt *stmt = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = db_stmt(st->db,
                 "SELECT id, msgid_hash, to_addr, from_addr, subject, body, encoding, received,"
                 " delivered_to_maildir FROM bm_inbox WHERE id = ?1",
                 &stmt);
    if (rc != 0)
        return rc;
    if ((rc = db_bind_int64(stmt, 1, id)) == 0)
        rc = db_step(stmt);
    if (rc == 1)
        rc = bm_store_in_row(stmt, out);
    else if (rc == 0)
        rc = PST_ENOENT;
    db_stmt_done(stmt);
    if (rc != 0)
        bm_store_inmsg_free(out);
    return rc;
}

int bm_store_inbox_undelivered(struct bm_store *st, bm_store_inmsg_cb cb, void *arg)
{
    struct bm_store_keys ids = {.width = sizeof(int64_t)};
    struct bm_store_inmsg m;
    sqlite3_stmt *stmt = NULL;
    int64_t id;
    size_t i;
    int rc;

    if (cb == NULL)
        return PST_EINVAL;
    rc = db_stmt(st->db, "SELECT id FROM bm_inbox WHERE delivered_to_maildir = 0 ORDER BY id",
                 &stmt);
    if (rc != 0)
        return rc;
    while ((rc = db_step(stmt)) == 1) {
        id = sqlite3_column_int64(stmt, 0);
        if ((rc = bm_store_keys_push(&ids, &id)) != 0)
            break;
    }
    db_stmt_done(stmt);
    for (i = 0; rc == 0 && i < ids.n; i++) {
        memcpy(&id, ids.v + i * sizeof(id), sizeof(id));
        rc = bm_store_in_get(st, id, &m);
        if (rc == PST_ENOENT) {
            rc = 0;
            continue;
        }
        if (rc == 0 && !m.delivered)
            rc = cb(&m, arg);
        bm_store_inmsg_free(&m);
    }
    bm_store_keys_free(&ids);
    return rc;
}

int bm_store_inbox_mark_delivered(struct bm_store *st, int64_t id)
{
    sqlite3_stmt *stmt = NULL;
    int rc;

    rc = db_stmt(st->db, "UPDATE bm_inbox SET delivered_to_maildir = 1 WHERE id = ?1", &stmt);
    if (rc != 0)
        return rc;
    if ((rc = db_bind_int64(stmt, 1, id)) == 0)
        rc = db_step(stmt);
    if (rc == 0 && bm_store_changes(st) == 0)
        rc = PST_ENOENT;
    db_stmt_done(stmt);
    return rc;
}
