/*
 * userdb.h - local users and their password hashes, in the SQLite state database.
 *
 * Table users(name TEXT PRIMARY KEY, hash TEXT NOT NULL, created INTEGER).
 * User names are 1..64 bytes of [a-z0-9._-], not starting with '.' or '-',
 * stored lower-case; they double as Maildir directory names, so this rule is
 * what keeps a recipient from naming a path outside mail_dir.
 * Passwords are hashed with crypt(3) yescrypt ("$y$", libxcrypt's default
 * cost); the hash is never logged. Verification is slow by design: servers
 * fetch the hash with userdb_get_hash() (fast) and run userdb_hash_verify()
 * on a worker thread.
 */
#ifndef POSTERN_USERDB_H
#define POSTERN_USERDB_H

#include <stddef.h>

#include "err.h"

#define USERDB_NAME_MAX 64
#define USERDB_HASH_MAX 256

struct userdb;

/* userdb_open - open (creating if needed) the database at path. Caller frees with userdb_close(). */
PST_MUST_CHECK int userdb_open(const char *path, struct userdb **out);
void userdb_close(struct userdb **db);

/* userdb_name_valid - 1 if name follows the user name rule above (case-insensitive). */
int userdb_name_valid(const char *name);

/* userdb_add - PST_EEXIST if present, PST_EINVAL for a bad name or empty password. */
PST_MUST_CHECK int userdb_add(struct userdb *db, const char *name, const char *password);
PST_MUST_CHECK int userdb_del(struct userdb *db, const char *name);      /* PST_ENOENT if absent */
PST_MUST_CHECK int userdb_passwd(struct userdb *db, const char *name, const char *password);

/* userdb_exists - 1 if the user exists, 0 if not, negative on error. Case-insensitive. */
PST_MUST_CHECK int userdb_exists(struct userdb *db, const char *name);

/* userdb_get_hash - copy the stored hash into out. PST_ENOENT if no such user. */
PST_MUST_CHECK int userdb_get_hash(struct userdb *db, const char *name, char *out, size_t outsz);

/*
 * userdb_hash_verify - 0 if password matches hash, PST_EAUTH otherwise.
 * Thread-safe (crypt_rn). With hash == NULL it hashes against a fixed dummy
 * so that unknown users cost the same time, then returns PST_EAUTH.
 */
PST_MUST_CHECK int userdb_hash_verify(const char *hash, const char *password);

/* userdb_verify - convenience: get_hash + hash_verify (blocking; CLI and tests). */
PST_MUST_CHECK int userdb_verify(struct userdb *db, const char *name, const char *password);

typedef int (*userdb_list_cb)(void *arg, const char *name, long long created);
/* userdb_list - call cb for each user in name order; a non-zero cb return stops. */
PST_MUST_CHECK int userdb_list(struct userdb *db, userdb_list_cb cb, void *arg);

#endif
