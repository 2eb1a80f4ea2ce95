/*
 * dir_store.h - the public directory's records: SMTP address <-> alternative
 * addresses, with their confirmation tokens, on SQLite (default, the state
 * database) or PostgreSQL (libpq; several directory instances may share it).
 *
 * One module, one set of queries for both back ends: the SQL is written in
 * the common subset (numbered parameters are rewritten ?N <-> $N), the
 * schema is created and migrated by this module in both (table dir_schema
 * holds its version), and every function behaves the same on both; the unit
 * tests run against both (PostgreSQL when a server is reachable, see
 * tests/unit/directory/).
 *
 * A record links one normalised SMTP address (dir_addr.h) to one alternative
 * address of a type ("bitmessage": BM-..., checksum verified; "dmail": a
 * dmail:// URI). Many-to-many: an SMTP address may have several
 * alternatives and an alternative several SMTP addresses. States:
 *   pending  created by the form; needs both confirmations
 *   live     both links followed (or imported / added by an admin)
 *   removed  removal confirmed from the SMTP address, or by an admin
 * with timestamps of each step. At most one pending-or-live record per
 * (smtp, type, alternative). Pending records whose links expired are purged.
 *
 * Tokens: each confirmation link carries a random 256-bit token; the store
 * keeps only its SHA-256, with its purpose, record and expiry, and marks it
 * used, so a leaked database does not give working links and a link works
 * once.
 *
 * Errors: PST_ENOENT (no such record / token), PST_EEXIST (duplicate),
 * PST_EINVAL (bad argument), PST_EDB (database error, message logged
 * without personal data beyond the record id), PST_EPERM (token used,
 * expired or for another purpose).
 *
 * A struct dir_store is used by one thread at a time.
 */
#ifndef POSTERN_DIR_STORE_H
#define POSTERN_DIR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

#define DIR_SMTP_MAX 320 /* normalised SMTP address (RFC 5321 path limits) */
#define DIR_ALT_MAX 512  /* alternative address (BM- address or dmail:// URI) */
#define DIR_TYPE_MAX 16  /* "bitmessage", "dmail" */
#define DIR_TOKEN_LEN 32 /* raw token bytes; links carry them base64url (43 chars) */
#define DIR_TOKEN_TEXT_MAX 64

enum dir_state { DIR_PENDING = 0, DIR_LIVE, DIR_REMOVED };

enum dir_purpose {
    DIR_CONFIRM_SMTP = 0, /* follow to confirm the SMTP address of a pending record */
    DIR_CONFIRM_ALT,      /* follow to confirm the alternative address */
    DIR_CONFIRM_REMOVE,   /* follow (sent to the SMTP address) to remove a live record */
};

struct dir_record {
    int64_t id;
    char smtp[DIR_SMTP_MAX + 1];
    char type[DIR_TYPE_MAX + 1];
    char alt[DIR_ALT_MAX + 1];
    enum dir_state state;
    int64_t created;
    int64_t smtp_confirmed; /* 0 = not yet */
    int64_t alt_confirmed;  /* 0 = not yet */
    int64_t live_since;     /* 0 = never live */
    int64_t removed_at;     /* 0 = not removed */
    char source[16];        /* "form", "import", "admin" */
};

struct dir_store;

/* dir_store_open_sqlite - the directory tables in the SQLite file at path (opened with
 * lib/db.h's db_open, so Postern's own schema is created there too if missing). */
PST_MUST_CHECK int dir_store_open_sqlite(const char *path, struct dir_store **out);

/* dir_store_open_pg - the directory tables in PostgreSQL (conninfo as libpq takes it;
 * never logged, it may hold a password). */
PST_MUST_CHECK int dir_store_open_pg(const char *conninfo, struct dir_store **out);

/* dir_store_close - *st = NULL. Accepts NULL. */
void dir_store_close(struct dir_store **st);

/* dir_store_backend - "sqlite" or "postgresql". */
const char *dir_store_backend(const struct dir_store *st);

/* ---- records ---- */

/*
 * dir_store_add - a new record (smtp and alt already normalised/validated by
 * dir_addr.h; r->id, timestamps other than created, and state ignored) in
 * state `state` (DIR_PENDING from the form; DIR_LIVE from import/admin, with
 * live_since = now). *id gets its id. PST_EEXIST if a pending or live record
 * for the same (smtp, type, alt) exists.
 */
PST_MUST_CHECK int dir_store_add(struct dir_store *st, const struct dir_record *r,
                                 enum dir_state state, int64_t now, int64_t *id);

/* dir_store_get - record by id into *out; PST_ENOENT. */
PST_MUST_CHECK int dir_store_get(struct dir_store *st, int64_t id, struct dir_record *out);

/*
 * dir_store_confirm - mark one side of a pending record confirmed (purpose
 * DIR_CONFIRM_SMTP or DIR_CONFIRM_ALT); when both are, the record becomes
 * live (live_since = now). *became_live (may be NULL) says whether this call
 * made it live. PST_EPERM if the record is not pending.
 */
PST_MUST_CHECK int dir_store_confirm(struct dir_store *st, int64_t id, enum dir_purpose side,
                                     int64_t now, bool *became_live);

/* dir_store_remove - a pending or live record becomes removed (removed_at = now). PST_EPERM if
 * already removed. */
PST_MUST_CHECK int dir_store_remove(struct dir_store *st, int64_t id, int64_t now);

/* A record callback (r borrowed for the call). A non-zero result stops the walk and is what
 * the walking function returns. It must not call the same walking function on the same store. */
typedef int (*dir_record_cb)(const struct dir_record *r, void *arg);

/* dir_store_lookup - call cb for each LIVE record of smtp (normalised), ordered by type, alt. */
PST_MUST_CHECK int dir_store_lookup(struct dir_store *st, const char *smtp, dir_record_cb cb,
                                    void *arg);

/* dir_store_reverse - call cb for each LIVE record whose alternative is (type, alt);
 * type NULL = any type. */
PST_MUST_CHECK int dir_store_reverse(struct dir_store *st, const char *type, const char *alt,
                                     dir_record_cb cb, void *arg);

/* dir_store_list - call cb for every record in state (or every state when state < 0),
 * ordered by id, at most limit (0 = no limit) starting after id after_id. */
PST_MUST_CHECK int dir_store_list(struct dir_store *st, int state, int64_t after_id, size_t limit,
                                  dir_record_cb cb, void *arg);

/* dir_store_count_recent - records created since `since` for smtp (or for alt when smtp is
 * NULL): the per-address rate limit of the form. */
PST_MUST_CHECK int dir_store_count_recent(struct dir_store *st, const char *smtp, const char *alt,
                                          int64_t since, uint64_t *count);

/* dir_store_purge - delete pending records created before `before` (their links expired) and
 * their tokens, and expired tokens; *removed (may be NULL) = records deleted. */
PST_MUST_CHECK int dir_store_purge(struct dir_store *st, int64_t before, int64_t now,
                                   uint64_t *removed);

/* dir_store_version - a number that changes whenever any record changes (for ETags). */
PST_MUST_CHECK int dir_store_version(struct dir_store *st, int64_t *out);

/* ---- bulk (import) ---- */

/* dir_store_begin / _commit / _rollback - one transaction around many dir_store_add calls
 * (all-or-nothing imports). */
PST_MUST_CHECK int dir_store_begin(struct dir_store *st);
PST_MUST_CHECK int dir_store_commit(struct dir_store *st);
void dir_store_rollback(struct dir_store *st);

/* ---- tokens ---- */

/*
 * dir_store_token_new - a fresh random token for (record id, purpose) valid
 * until expires; text (DIR_TOKEN_TEXT_MAX bytes) gets its base64url form for
 * the link. Only SHA-256(token) is stored.
 */
PST_MUST_CHECK int dir_store_token_new(struct dir_store *st, int64_t id, enum dir_purpose purpose,
                                       int64_t expires, char *text, size_t textsz);

/*
 * dir_store_token_use - look up the token in text (base64url), check it is
 * unused and unexpired at now, mark it used, and give its record id and
 * purpose. PST_ENOENT for an unknown or malformed token, PST_EPERM for a
 * used or expired one. The check and the marking are one transaction, so a
 * link works exactly once even with two instances racing.
 */
PST_MUST_CHECK int dir_store_token_use(struct dir_store *st, const char *text, int64_t now,
                                       int64_t *id, enum dir_purpose *purpose);

const char *dir_state_name(enum dir_state s);
const char *dir_purpose_name(enum dir_purpose p);

#endif
