/*
 * pop3_upstream.c - upstream mailboxes and statistics of the aggregating
 * POP3 proxy, in the state database (see pop3_upstream.h for the tables).
 *
 * Password sealing: AES-256-GCM (OpenSSL EVP) under the 32-byte proxy key,
 * a fresh 12-byte nonce from RAND_bytes per record (stored in pass_nonce),
 * AAD = user || 0x00 || id, so that a sealed password moved to another
 * user's or upstream's row does not open. pass_ct = ciphertext || 16-byte
 * tag. A wrong key, a tampered nonce, ciphertext or tag, or a moved row all
 * fail the tag check: PST_EAUTH, and nothing decrypted is returned.
 *
 * Key file: exactly 32 raw bytes, mode 0600, a regular file (O_NOFOLLOW).
 * Created on first use from RAND_bytes via a temporary file that is
 * fsynced and then link()ed into place, so a crash leaves either no key or
 * a whole one and two concurrent creators end with one key. Losing the key
 * loses the stored upstream passwords (they must be added again); the key
 * is not derived from anything else.
 *
 * Validation at add: user by the userdb rule (stored lower-case), id
 * [A-Za-z0-9._-]{1,64}, host a DNS name (LDH labels) or an IP literal,
 * port 1..65535, login name and password 1..255 bytes without control
 * characters (they go into USER/PASS lines), TLS "none" only for loopback
 * hosts.
 *
 * Failure policy: everything returns a PST_E* code; nothing aborts.
 * Passwords and keys are never logged; plaintext buffers are wiped.
 */
#include "pop3_upstream.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include "lib/db.h"
#include "lib/log.h"
#include "lib/userdb.h"

#define POP3U_AAD_MAX (POP3U_USER_MAX + 1 + POP3U_ID_MAX)
#define POP3U_PATH_MAX 4096

static const char *const pop3u_tls_names[] = {"implicit", "stls", "none"};

const char *pop3u_tls_name(enum pop3u_tls t)
{
    return (unsigned)t < PST_ARRAY_LEN(pop3u_tls_names) ? pop3u_tls_names[t] : "?";
}

int pop3u_tls_parse(const char *s, enum pop3u_tls *out)
{
    for (size_t i = 0; s && i < PST_ARRAY_LEN(pop3u_tls_names); i++) {
        if (strcasecmp(s, pop3u_tls_names[i]) == 0) {
            *out = (enum pop3u_tls)i;
            return 0;
        }
    }
    return PST_EINVAL;
}

int pop3u_host_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (!host)
        return 0;
    if (strcasecmp(host, "localhost") == 0 || strcasecmp(host, "localhost.") == 0)
        return 1;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&a6))
            return 1;
        return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
    }
    return 0;
}

/* ---- validation ---- */

/* pop3u_norm_user - the userdb rule; lower-cased copy into out (POP3U_USER_MAX + 1). */
static int pop3u_norm_user(const char *user, char *out)
{
    if (!user || strlen(user) > POP3U_USER_MAX || !userdb_name_valid(user))
        return PST_EINVAL;
    size_t i = 0;
    for (; user[i]; i++)
        out[i] = (char)tolower((unsigned char)user[i]);
    out[i] = '\0';
    return 0;
}

static int pop3u_id_ok(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > POP3U_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]) && !strchr("._-", id[i]))
            return 0;
    return 1;
}

/* pop3u_host_ok - an IP literal or LDH labels of 1..63, total <= POP3U_HOST_MAX. */
static int pop3u_host_ok(const char *h)
{
    unsigned char tmp[16];
    size_t n = h ? strlen(h) : 0;
    if (n == 0 || n > POP3U_HOST_MAX)
        return 0;
    if (inet_pton(AF_INET, h, tmp) == 1 || inet_pton(AF_INET6, h, tmp) == 1)
        return 1;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)h[i];
        if (ch == '.') {
            if (label == 0 || h[i - 1] == '-')
                return 0;
            label = 0;
            continue;
        }
        if (!isalnum(ch) && ch != '-' && ch != '_')
            return 0;
        if (label == 0 && ch == '-')
            return 0;
        if (++label > 63)
            return 0;
    }
    return h[n - 1] != '-';
}

/* pop3u_field_ok - 1..max bytes, no control characters (they would split a POP3 command). */
static int pop3u_field_ok(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

/* ---- the key ---- */

void pop3u_key_wipe(struct pop3u_key *k)
{
    if (k)
        explicit_bzero(k->k, sizeof(k->k));
}

static int pop3u_key_read(const char *path, struct pop3u_key *out)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? PST_ENOENT : PST_EIO;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) < 0)
        rc = PST_EIO;
    else if (!S_ISREG(st.st_mode) || st.st_size != POP3U_KEY_LEN)
        rc = PST_EINVAL;
    else if (st.st_mode & 077)
        rc = PST_EPERM;
    size_t got = 0;
    while (rc == 0 && got < POP3U_KEY_LEN) {
        ssize_t r = read(fd, out->k + got, POP3U_KEY_LEN - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            rc = r == 0 ? PST_EINVAL : PST_EIO;
        else
            got += (size_t)r;
    }
    close(fd);
    if (rc < 0)
        pop3u_key_wipe(out);
    return rc;
}

/* pop3u_key_write_all - write n bytes, retrying short writes. */
static int pop3u_key_write_all(int fd, const unsigned char *b, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return PST_EIO;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* pop3u_fsync_parent - fsync the directory holding path. */
static int pop3u_fsync_parent(const char *path)
{
    char dir[POP3U_PATH_MAX];
    int n = snprintf(dir, sizeof(dir), "%s", path);
    if (n < 0 || (size_t)n >= sizeof(dir))
        return PST_EINVAL;
    int fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return PST_EIO;
    int rc = fsync(fd) == 0 ? 0 : PST_EIO;
    close(fd);
    return rc;
}

/* pop3u_key_create - a new random key at path (temporary file, fsync, link). */
static int pop3u_key_create(const char *path)
{
    char tmp[POP3U_PATH_MAX];
    int n = snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return PST_EINVAL;
    unsigned char k[POP3U_KEY_LEN];
    if (RAND_bytes(k, sizeof(k)) != 1)
        return PST_ETLS;
    int fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
    if (fd < 0) {
        explicit_bzero(k, sizeof(k));
        return PST_EIO;
    }
    int rc = fchmod(fd, 0600) == 0 ? pop3u_key_write_all(fd, k, sizeof(k)) : PST_EIO;
    explicit_bzero(k, sizeof(k));
    if (rc == 0 && fsync(fd) < 0)
        rc = PST_EIO;
    if (close(fd) < 0 && rc == 0)
        rc = PST_EIO;
    if (rc == 0 && link(tmp, path) < 0 && errno != EEXIST) /* EEXIST: another creator won */
        rc = PST_EIO;
    unlink(tmp);
    if (rc == 0)
        rc = pop3u_fsync_parent(path);
    char q[300];
    if (rc == 0)
        log_info("pop3u key_created path=%s", log_quote(q, sizeof(q), path, strlen(path)));
    return rc;
}

int pop3u_key_load(const char *path, int create, struct pop3u_key *out)
{
    if (!path || !path[0] || !out)
        return PST_EINVAL;
    int rc = pop3u_key_read(path, out);
    if (rc != PST_ENOENT || !create)
        return rc;
    rc = pop3u_key_create(path);
    if (rc < 0)
        return rc;
    return pop3u_key_read(path, out);
}

/* ---- sealing ---- */

/* pop3u_aad - user NUL id into aad; returns its length or PST_EINVAL. */
static int pop3u_aad(const char *user, const char *id, unsigned char *aad)
{
    size_t ul = strlen(user), il = strlen(id);
    if (ul > POP3U_USER_MAX || il > POP3U_ID_MAX)
        return PST_EINVAL;
    memcpy(aad, user, ul);
    aad[ul] = '\0';
    memcpy(aad + ul + 1, id, il);
    return (int)(ul + 1 + il);
}

int pop3u_seal(const struct pop3u_key *key, const char *user, const char *id, const char *pass,
               size_t len, unsigned char nonce[POP3U_NONCE_LEN], unsigned char *ct)
{
    unsigned char aad[POP3U_AAD_MAX];
    int al = pop3u_aad(user, id, aad);
    if (al < 0 || len > POP3U_PASS_MAX)
        return PST_EINVAL;
    if (RAND_bytes(nonce, POP3U_NONCE_LEN) != 1)
        return PST_ETLS;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int outl = 0, fl = 0;
    int ok = ctx && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key->k, nonce) == 1 &&
             EVP_EncryptUpdate(ctx, NULL, &outl, aad, al) == 1 &&
             EVP_EncryptUpdate(ctx, ct, &outl, (const unsigned char *)pass, (int)len) == 1 &&
             EVP_EncryptFinal_ex(ctx, ct + outl, &fl) == 1 && (size_t)(outl + fl) == len &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, POP3U_TAG_LEN, ct + len) == 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok ? 0 : PST_ETLS;
}

int pop3u_open(const struct pop3u_key *key, const char *user, const char *id,
               const unsigned char nonce[POP3U_NONCE_LEN], const unsigned char *ct, size_t ctlen,
               char *pass)
{
    unsigned char aad[POP3U_AAD_MAX];
    int al = pop3u_aad(user, id, aad);
    if (al < 0 || ctlen < POP3U_TAG_LEN || ctlen - POP3U_TAG_LEN > POP3U_PASS_MAX)
        return PST_EINVAL;
    size_t len = ctlen - POP3U_TAG_LEN;
    unsigned char plain[POP3U_PASS_MAX + 1];
    unsigned char tag[POP3U_TAG_LEN];
    memcpy(tag, ct + len, sizeof(tag));
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int outl = 0, fl = 0;
    int ok = ctx && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key->k, nonce) == 1 &&
             EVP_DecryptUpdate(ctx, NULL, &outl, aad, al) == 1 &&
             EVP_DecryptUpdate(ctx, plain, &outl, ct, (int)len) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, POP3U_TAG_LEN, tag) == 1 &&
             EVP_DecryptFinal_ex(ctx, plain + outl, &fl) == 1 && (size_t)(outl + fl) == len;
    EVP_CIPHER_CTX_free(ctx);
    if (ok && memchr(plain, '\0', len))
        ok = 0; /* never produced by pop3u_seal of a C string */
    if (ok) {
        memcpy(pass, plain, len);
        pass[len] = '\0';
    }
    explicit_bzero(plain, sizeof(plain));
    return ok ? 0 : PST_EAUTH;
}

/* ---- upstreams ---- */

void pop3u_upstream_wipe(struct pop3u_upstream *u)
{
    if (u)
        explicit_bzero(u->password, sizeof(u->password));
}

void pop3u_list_free(struct pop3u_upstream **a, size_t n)
{
    if (!a || !*a)
        return;
    for (size_t i = 0; i < n; i++)
        pop3u_upstream_wipe(&(*a)[i]);
    free(*a);
    *a = NULL;
}

static int pop3u_upstream_ok(const struct pop3u_upstream *u, const char *password, char *user)
{
    if (pop3u_norm_user(u->user, user) < 0 || !pop3u_id_ok(u->id) || !pop3u_host_ok(u->host))
        return PST_EINVAL;
    if (u->port == 0 || u->port > 65535 || (unsigned)u->tls > POP3U_TLS_NONE)
        return PST_EINVAL;
    if (!pop3u_field_ok(u->username, POP3U_LOGIN_MAX) || !pop3u_field_ok(password, POP3U_PASS_MAX))
        return PST_EINVAL;
    if (u->tls == POP3U_TLS_NONE && !pop3u_host_is_loopback(u->host))
        return PST_EPERM; /* a password in clear text only over loopback */
    return 0;
}

static int pop3u_bind_blob(sqlite3_stmt *st, int idx, const void *b, size_t n)
{
    return sqlite3_bind_blob(st, idx, b, (int)n, SQLITE_TRANSIENT) == SQLITE_OK ? 0 : PST_EDB;
}

int pop3u_add(struct db *db, const struct pop3u_key *key, const struct pop3u_upstream *u,
              const char *password)
{
    char user[POP3U_USER_MAX + 1];
    if (!db || !key || !u)
        return PST_EINVAL;
    int rc = pop3u_upstream_ok(u, password, user);
    if (rc < 0)
        return rc;
    unsigned char nonce[POP3U_NONCE_LEN], ct[POP3U_PASS_MAX + POP3U_TAG_LEN];
    size_t pl = strlen(password);
    rc = pop3u_seal(key, user, u->id, password, pl, nonce, ct);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st;
    rc = db_stmt(db,
                 "INSERT INTO pop3_upstreams(user, id, host, port, tls, username, pass_nonce, "
                 "pass_ct, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                 &st);
    if (rc < 0)
        return rc;
    if ((rc = db_bind_text(st, 1, user)) == 0 && (rc = db_bind_text(st, 2, u->id)) == 0 &&
        (rc = db_bind_text(st, 3, u->host)) == 0 && (rc = db_bind_int64(st, 4, u->port)) == 0 &&
        (rc = db_bind_text(st, 5, pop3u_tls_name(u->tls))) == 0 &&
        (rc = db_bind_text(st, 6, u->username)) == 0 &&
        (rc = pop3u_bind_blob(st, 7, nonce, sizeof(nonce))) == 0 &&
        (rc = pop3u_bind_blob(st, 8, ct, pl + POP3U_TAG_LEN)) == 0 &&
        (rc = db_bind_int64(st, 9, (int64_t)time(NULL))) == 0)
        rc = db_step(st);
    db_stmt_done(st);
    if (rc < 0)
        return rc;
    char q[300];
    log_info("pop3u upstream_added user=%s id=%s host=%s port=%u tls=%s", user, u->id,
             log_quote(q, sizeof(q), u->host, strlen(u->host)), u->port, pop3u_tls_name(u->tls));
    return 0;
}

int pop3u_remove(struct db *db, const char *user, const char *id)
{
    char nu[POP3U_USER_MAX + 1];
    if (!db || pop3u_norm_user(user, nu) < 0 || !pop3u_id_ok(id))
        return PST_EINVAL;
    int rc = db_begin(db);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st;
    rc = db_stmt(db, "DELETE FROM pop3_upstreams WHERE user = ?1 AND id = ?2", &st);
    if (rc == 0 && (rc = db_bind_text(st, 1, nu)) == 0 && (rc = db_bind_text(st, 2, id)) == 0)
        rc = db_step(st);
    db_stmt_done(st);
    int changed = rc == 0 ? sqlite3_changes(db_handle(db)) : 0;
    if (rc == 0 && changed > 0) {
        rc = db_stmt(db, "DELETE FROM pop3_stats WHERE user = ?1 AND upstream = ?2", &st);
        if (rc == 0 && (rc = db_bind_text(st, 1, nu)) == 0 && (rc = db_bind_text(st, 2, id)) == 0)
            rc = db_step(st);
        db_stmt_done(st);
    }
    if (rc == 0 && changed == 0)
        rc = PST_ENOENT;
    if (rc < 0) {
        db_rollback(db);
        return rc;
    }
    rc = db_commit(db);
    if (rc == 0)
        log_info("pop3u upstream_removed user=%s id=%s", nu, id);
    return rc;
}

/* pop3u_col_text - column i into out (size outsz); PST_EDB if it does not fit. */
static int pop3u_col_text(sqlite3_stmt *st, int i, char *out, size_t outsz)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    size_t n = (size_t)sqlite3_column_bytes(st, i);
    if (!t || n >= outsz)
        return PST_EDB;
    memcpy(out, t, n);
    out[n] = '\0';
    return 0;
}

#define POP3U_COLS "user, id, host, port, tls, username, pass_nonce, pass_ct, created"

/* pop3u_row - one pop3_upstreams row (POP3U_COLS) into u, decrypting with key when given. */
static int pop3u_row(sqlite3_stmt *st, const struct pop3u_key *key, struct pop3u_upstream *u)
{
    memset(u, 0, sizeof(*u));
    int rc = pop3u_col_text(st, 0, u->user, sizeof(u->user));
    if (rc == 0)
        rc = pop3u_col_text(st, 1, u->id, sizeof(u->id));
    if (rc == 0)
        rc = pop3u_col_text(st, 2, u->host, sizeof(u->host));
    if (rc == 0)
        rc = pop3u_col_text(st, 5, u->username, sizeof(u->username));
    char tls[16];
    if (rc == 0)
        rc = pop3u_col_text(st, 4, tls, sizeof(tls));
    if (rc == 0 && pop3u_tls_parse(tls, &u->tls) < 0)
        rc = PST_EDB;
    if (rc < 0)
        return rc;
    u->port = (unsigned)sqlite3_column_int64(st, 3);
    u->created = sqlite3_column_int64(st, 8);
    u->pass_status = PST_ENOENT;
    if (!key)
        return 0;
    const unsigned char *nonce = sqlite3_column_blob(st, 6);
    int nl = sqlite3_column_bytes(st, 6);
    const unsigned char *ct = sqlite3_column_blob(st, 7);
    int cl = sqlite3_column_bytes(st, 7);
    if (!nonce || nl != POP3U_NONCE_LEN || !ct || cl < POP3U_TAG_LEN)
        u->pass_status = PST_EAUTH;
    else
        u->pass_status = pop3u_open(key, u->user, u->id, nonce, ct, (size_t)cl, u->password);
    if (u->pass_status == PST_EINVAL)
        u->pass_status = PST_EAUTH;
    if (u->pass_status < 0)
        log_warn("pop3u password_undecryptable user=%s id=%s", u->user, u->id);
    return 0;
}

int pop3u_get(struct db *db, const struct pop3u_key *key, const char *user, const char *id,
              struct pop3u_upstream *out)
{
    char nu[POP3U_USER_MAX + 1];
    if (!db || !key || !out || pop3u_norm_user(user, nu) < 0 || !pop3u_id_ok(id))
        return PST_EINVAL;
    sqlite3_stmt *st;
    int rc =
        db_stmt(db, "SELECT " POP3U_COLS " FROM pop3_upstreams WHERE user = ?1 AND id = ?2", &st);
    if (rc < 0)
        return rc;
    if ((rc = db_bind_text(st, 1, nu)) == 0 && (rc = db_bind_text(st, 2, id)) == 0)
        rc = db_step(st);
    if (rc == 1)
        rc = pop3u_row(st, key, out);
    else if (rc == 0)
        rc = PST_ENOENT;
    db_stmt_done(st);
    if (rc == 0 && out->pass_status < 0) {
        rc = out->pass_status;
        pop3u_upstream_wipe(out);
    }
    return rc;
}

int pop3u_list(struct db *db, const struct pop3u_key *key, const char *user,
               struct pop3u_upstream **out, size_t *n)
{
    char nu[POP3U_USER_MAX + 1];
    *out = NULL;
    *n = 0;
    if (!db || (user && pop3u_norm_user(user, nu) < 0))
        return PST_EINVAL;
    sqlite3_stmt *st;
    int rc = db_stmt(db,
                     user ? "SELECT " POP3U_COLS
                            " FROM pop3_upstreams WHERE user = ?1 ORDER BY user, id LIMIT ?2"
                          : "SELECT " POP3U_COLS " FROM pop3_upstreams ORDER BY user, id LIMIT ?2",
                     &st);
    if (rc < 0)
        return rc;
    if (user)
        rc = db_bind_text(st, 1, nu);
    if (rc == 0)
        rc = db_bind_int64(st, 2, POP3U_LIST_MAX);
    struct pop3u_upstream *a = NULL;
    size_t cnt = 0, cap = 0;
    while (rc == 0 && (rc = db_step(st)) == 1) {
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 8;
            struct pop3u_upstream *na = calloc(nc, sizeof(*na));
            if (!na) {
                rc = PST_ENOMEM;
                break;
            }
            if (a) {
                memcpy(na, a, cnt * sizeof(*a));
                explicit_bzero(a, cnt * sizeof(*a));
            }
            free(a);
            a = na;
            cap = nc;
        }
        rc = pop3u_row(st, key, &a[cnt]);
        if (rc == 0)
            cnt++;
    }
    db_stmt_done(st);
    if (rc < 0) {
        pop3u_list_free(&a, cnt);
        return rc;
    }
    *out = a;
    *n = cnt;
    return 0;
}

/* ---- statistics ---- */

int pop3u_stat_add(struct db *db, const char *user, const char *upstream, int64_t sessions,
                   int64_t messages, int64_t bytes, int64_t errors, const char *last_error)
{
    char nu[POP3U_USER_MAX + 1];
    if (!db || pop3u_norm_user(user, nu) < 0 || !upstream ||
        (upstream[0] && !pop3u_id_ok(upstream)))
        return PST_EINVAL;
    if (sessions < 0 || messages < 0 || bytes < 0 || errors < 0)
        return PST_EINVAL;
    char err[POP3U_ERROR_MAX + 1] = "";
    if (last_error) {
        size_t i = 0;
        for (; last_error[i] && i < POP3U_ERROR_MAX; i++) /* no control bytes in the table */
            err[i] = (unsigned char)last_error[i] < 0x20 ? ' ' : last_error[i];
        err[i] = '\0';
    }
    sqlite3_stmt *st;
    int rc = db_stmt(db,
                     "INSERT INTO pop3_stats(user, upstream, sessions, messages, bytes, errors, "
                     "last_error, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, coalesce(?7, ''), ?8) "
                     "ON CONFLICT(user, upstream) DO UPDATE SET "
                     "sessions = sessions + excluded.sessions, "
                     "messages = messages + excluded.messages, "
                     "bytes = bytes + excluded.bytes, errors = errors + excluded.errors, "
                     "last_error = coalesce(?7, last_error), updated = excluded.updated",
                     &st);
    if (rc < 0)
        return rc;
    if ((rc = db_bind_text(st, 1, nu)) == 0 && (rc = db_bind_text(st, 2, upstream)) == 0 &&
        (rc = db_bind_int64(st, 3, sessions)) == 0 && (rc = db_bind_int64(st, 4, messages)) == 0 &&
        (rc = db_bind_int64(st, 5, bytes)) == 0 && (rc = db_bind_int64(st, 6, errors)) == 0 &&
        (rc = last_error ? db_bind_text(st, 7, err) : 0) == 0 &&
        (rc = db_bind_int64(st, 8, (int64_t)time(NULL))) == 0)
        rc = db_step(st);
    db_stmt_done(st);
    return rc < 0 ? rc : 0;
}

int pop3u_stat_session(struct db *db, const char *user, const char *upstream)
{
    return pop3u_stat_add(db, user, upstream, 1, 0, 0, 0, NULL);
}

int pop3u_stat_message(struct db *db, const char *user, const char *upstream, uint64_t bytes)
{
    if (bytes > INT64_MAX)
        return PST_EINVAL;
    return pop3u_stat_add(db, user, upstream, 0, 1, (int64_t)bytes, 0, NULL);
}

int pop3u_stat_error(struct db *db, const char *user, const char *upstream, const char *why)
{
    return pop3u_stat_add(db, user, upstream, 0, 0, 0, 1, why ? why : "");
}

int pop3u_stat_list(struct db *db, const char *user, struct pop3u_stat **out, size_t *n)
{
    char nu[POP3U_USER_MAX + 1];
    *out = NULL;
    *n = 0;
    if (!db || (user && pop3u_norm_user(user, nu) < 0))
        return PST_EINVAL;
    sqlite3_stmt *st;
    int rc = db_stmt(db,
                     user ? "SELECT user, upstream, sessions, messages, bytes, errors, last_error, "
                            "updated FROM pop3_stats WHERE user = ?1 ORDER BY user, upstream "
                            "LIMIT ?2"
                          : "SELECT user, upstream, sessions, messages, bytes, errors, last_error, "
                            "updated FROM pop3_stats ORDER BY user, upstream LIMIT ?2",
                     &st);
    if (rc < 0)
        return rc;
    if (user)
        rc = db_bind_text(st, 1, nu);
    if (rc == 0)
        rc = db_bind_int64(st, 2, POP3U_LIST_MAX);
    struct pop3u_stat *a = NULL;
    size_t cnt = 0, cap = 0;
    while (rc == 0 && (rc = db_step(st)) == 1) {
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 8;
            struct pop3u_stat *na = realloc(a, nc * sizeof(*na));
            if (!na) {
                rc = PST_ENOMEM;
                break;
            }
            a = na;
            cap = nc;
        }
        struct pop3u_stat *s = &a[cnt];
        memset(s, 0, sizeof(*s));
        rc = pop3u_col_text(st, 0, s->user, sizeof(s->user));
        if (rc == 0)
            rc = pop3u_col_text(st, 1, s->upstream, sizeof(s->upstream));
        if (rc == 0)
            rc = pop3u_col_text(st, 6, s->last_error, sizeof(s->last_error));
        s->sessions = sqlite3_column_int64(st, 2);
        s->messages = sqlite3_column_int64(st, 3);
        s->bytes = sqlite3_column_int64(st, 4);
        s->errors = sqlite3_column_int64(st, 5);
        s->updated = sqlite3_column_int64(st, 7);
        if (rc == 0)
            cnt++;
    }
    db_stmt_done(st);
    if (rc < 0) {
        free(a);
        return rc;
    }
    *out = a;
    *n = cnt;
    return 0;
}
