/*
 * userdb.c - local users and password hashes on the state database (db.c).
 *
 * The users table is created by migration 1 in db.c. Names are validated
 * and lower-cased before they reach SQL (userdb_name_norm), so the table
 * only ever holds names that are safe as Maildir directory names.
 *
 * Hashing: crypt_rn() with a "$y$" (yescrypt) setting from
 * crypt_gensalt_rn() with libxcrypt's default cost and OS randomness. The
 * crypt work area (~32 KiB) is allocated per call, so hashing is
 * thread-safe; it is wiped afterwards. Verification recomputes the hash with
 * the stored setting and compares the two strings in constant time. For an
 * unknown user a fixed dummy hash of the same kind is checked instead, so
 * the cost (and so the timing) is the same; the result is then PST_EAUTH.
 *
 * Failure policy: bad names/passwords give PST_EINVAL (PST_ELIMIT for an
 * over-long password), missing users PST_ENOENT, SQLite trouble PST_EDB,
 * hashing failures PST_EIO. Passwords and hashes are never logged.
 */
#include "userdb.h"

#include <crypt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"

#define USERDB_PASSWORD_MAX 1024
#define USERDB_SETTING_PREFIX "$y$"

/* A yescrypt hash of a random throw-away password, with libxcrypt's default cost. */
#define USERDB_DUMMY_HASH                                                                          \
    "$y$j9T$JehyPKyfT5xDKHfg1Ze3e1$DSVrXCtnj1wf8KjlEbeCRcCOab.S61PYebon0je/Dd6"

struct userdb {
    struct db *db;
};

int userdb_open(const char *path, struct userdb **out)
{
    struct userdb *u;
    int rc;

    *out = NULL;
    u = calloc(1, sizeof(*u));
    if (u == NULL)
        return PST_ENOMEM;
    if ((rc = db_open(path, &u->db)) != 0) {
        free(u);
        return rc;
    }
    *out = u;
    return 0;
}

void userdb_close(struct userdb **up)
{
    if (up == NULL || *up == NULL)
        return;
    db_close(&(*up)->db);
    free(*up);
    *up = NULL;
}

/* userdb_name_norm - validate name and write its lower-case form to out. */
static int userdb_name_norm(const char *name, char out[USERDB_NAME_MAX + 1])
{
    size_t i;

    if (name == NULL || name[0] == '\0' || name[0] == '.' || name[0] == '-')
        return PST_EINVAL;
    for (i = 0; name[i] != '\0'; i++) {
        char c = name[i];
        if (i >= USERDB_NAME_MAX)
            return PST_EINVAL;
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return PST_EINVAL;
        out[i] = c;
    }
    out[i] = '\0';
    return 0;
}

int userdb_name_valid(const char *name)
{
    char norm[USERDB_NAME_MAX + 1];

    return userdb_name_norm(name, norm) == 0;
}

static int userdb_password_ok(const char *password)
{
    if (password == NULL || password[0] == '\0')
        return PST_EINVAL;
    if (strlen(password) > USERDB_PASSWORD_MAX)
        return PST_ELIMIT;
    return 0;
}

/* userdb_hash - hash password with a fresh yescrypt setting into out. */
static int userdb_hash(const char *password, char *out, size_t outsz)
{
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *cd;
    const char *h;
    int rc = 0;

    if (crypt_gensalt_rn(USERDB_SETTING_PREFIX, 0, NULL, 0, setting, sizeof(setting)) == NULL)
        return PST_EIO;
    cd = calloc(1, sizeof(*cd));
    if (cd == NULL)
        return PST_ENOMEM;
    h = crypt_rn(password, setting, cd, sizeof(*cd));
    if (h == NULL || h[0] == '*' || strlen(h) >= outsz)
        rc = PST_EIO;
    else
        memcpy(out, h, strlen(h) + 1);
    explicit_bzero(cd, sizeof(*cd));
    free(cd);
    return rc;
}

int userdb_hash_verify(const char *hash, const char *password)
{
    const char *use = hash != NULL ? hash : USERDB_DUMMY_HASH;
    struct crypt_data *cd;
    const char *h;
    unsigned char diff = 0;
    size_t i, lh, lu;

    if (password == NULL)
        password = "";
    cd = calloc(1, sizeof(*cd));
    if (cd == NULL)
        return PST_ENOMEM;
    h = crypt_rn(password, use, cd, sizeof(*cd));
    if (h == NULL || h[0] == '*') {
        diff = 1;
    } else {
        lh = strlen(h);
        lu = strlen(use);
        diff = lh != lu;
        /* constant time in the hash contents; lengths are public */
        for (i = 0; i < lh; i++)
            diff |= (unsigned char)(h[i] ^ (i < lu ? use[i] : 0));
    }
    explicit_bzero(cd, sizeof(*cd));
    free(cd);
    return diff == 0 && hash != NULL && password[0] != '\0' ? 0 : PST_EAUTH;
}

int userdb_add(struct userdb *u, const char *name, const char *password)
{
    char norm[USERDB_NAME_MAX + 1], hash[USERDB_HASH_MAX];
    sqlite3_stmt *st = NULL;
    int rc;

    if (userdb_name_norm(name, norm) != 0)
        return PST_EINVAL;
    if ((rc = userdb_password_ok(password)) != 0)
        return rc;
    if ((rc = userdb_hash(password, hash, sizeof(hash))) != 0)
        return rc;
    rc = db_stmt(u->db, "INSERT INTO users(name, hash, created) VALUES (?1, ?2, ?3)", &st);
    if (rc == 0 && (rc = db_bind_text(st, 1, norm)) == 0 && (rc = db_bind_text(st, 2, hash)) == 0 &&
        (rc = db_bind_int64(st, 3, (int64_t)time(NULL))) == 0)
        rc = db_step(st);
    db_stmt_done(st);
    explicit_bzero(hash, sizeof(hash));
    return rc;
}

/* userdb_change - run a one-row UPDATE/DELETE; PST_ENOENT if no row changed. */
static int userdb_change(struct userdb *u, const char *sql, const char *norm, const char *hash)
{
    sqlite3_stmt *st = NULL;
    int rc;

    rc = db_stmt(u->db, sql, &st);
    if (rc == 0)
        rc = db_bind_text(st, 1, norm);
    if (rc == 0 && hash != NULL)
        rc = db_bind_text(st, 2, hash);
    if (rc == 0)
        rc = db_step(st);
    db_stmt_done(st);
    if (rc == 0 && sqlite3_changes(db_handle(u->db)) == 0)
        rc = PST_ENOENT;
    return rc < 0 ? rc : 0;
}

int userdb_del(struct userdb *u, const char *name)
{
    char norm[USERDB_NAME_MAX + 1];

    if (userdb_name_norm(name, norm) != 0)
        return PST_EINVAL;
    return userdb_change(u, "DELETE FROM users WHERE name = ?1", norm, NULL);
}

int userdb_passwd(struct userdb *u, const char *name, const char *password)
{
    char norm[USERDB_NAME_MAX + 1], hash[USERDB_HASH_MAX];
    int rc;

    if (userdb_name_norm(name, norm) != 0)
        return PST_EINVAL;
    if ((rc = userdb_password_ok(password)) != 0)
        return rc;
    if ((rc = userdb_hash(password, hash, sizeof(hash))) != 0)
        return rc;
    rc = userdb_change(u, "UPDATE users SET hash = ?2 WHERE name = ?1", norm, hash);
    explicit_bzero(hash, sizeof(hash));
    return rc;
}

int userdb_get_hash(struct userdb *u, const char *name, char *out, size_t outsz)
{
    char norm[USERDB_NAME_MAX + 1];
    sqlite3_stmt *st = NULL;
    const unsigned char *h;
    int rc;

    if (outsz > 0)
        out[0] = '\0';
    if (userdb_name_norm(name, norm) != 0)
        return PST_ENOENT; /* such a name can never exist */
    if ((rc = db_stmt(u->db, "SELECT hash FROM users WHERE name = ?1", &st)) != 0)
        return rc;
    if ((rc = db_bind_text(st, 1, norm)) == 0)
        rc = db_step(st);
    if (rc == 1) {
        h = sqlite3_column_text(st, 0);
        size_t len = (size_t)sqlite3_column_bytes(st, 0);
        if (h == NULL || len + 1 > outsz) {
            rc = PST_ELIMIT;
        } else {
            memcpy(out, h, len + 1);
            rc = 0;
        }
    } else if (rc == 0) {
        rc = PST_ENOENT;
    }
    db_stmt_done(st);
    return rc;
}

int userdb_exists(struct userdb *u, const char *name)
{
    char norm[USERDB_NAME_MAX + 1];
    sqlite3_stmt *st = NULL;
    int rc;

    if (userdb_name_norm(name, norm) != 0)
        return 0;
    if ((rc = db_stmt(u->db, "SELECT 1 FROM users WHERE name = ?1", &st)) != 0)
        return rc;
    if ((rc = db_bind_text(st, 1, norm)) == 0)
        rc = db_step(st);
    db_stmt_done(st);
    return rc;
}

int userdb_verify(struct userdb *u, const char *name, const char *password)
{
    char hash[USERDB_HASH_MAX];
    int rc = userdb_get_hash(u, name, hash, sizeof(hash));

    if (rc == PST_ENOENT)
        return userdb_hash_verify(NULL, password);
    if (rc != 0)
        return rc;
    rc = userdb_hash_verify(hash, password);
    explicit_bzero(hash, sizeof(hash));
    return rc;
}

int userdb_list(struct userdb *u, userdb_list_cb cb, void *arg)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if ((rc = db_stmt(u->db, "SELECT name, created FROM users ORDER BY name", &st)) != 0)
        return rc;
    while ((rc = db_step(st)) == 1) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (name != NULL && cb(arg, name, (long long)sqlite3_column_int64(st, 1)) != 0) {
            rc = 0;
            break;
        }
    }
    db_stmt_done(st);
    return rc;
}
