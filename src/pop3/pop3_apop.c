/*
 * pop3_apop.c - APOP secrets at rest and the APOP digest check (RFC 1939 7,
 * RFC 1321 MD5). See pop3_apop.h for the storage format and the
 * trade-off of keeping a recoverable secret.
 *
 * Timing: pop3_apop_check always computes the digest and compares the full
 * 32 hex digits with CRYPTO_memcmp; pop3_apop_verify_sealed does the same
 * work (a GCM open and an MD5) whether or not the user has a secret, so the
 * reply time does not tell which users have one.
 *
 * Failure policy: every function returns 0 or PST_E*; nothing logs secrets;
 * stack copies of plaintext are wiped with explicit_bzero before return.
 */
#include "pop3/pop3_apop.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include "lib/db.h"
#include "lib/log.h"
#include "lib/userdb.h"

#define POP3_APOP_HOST_MAX 253
#define POP3_APOP_RAND_BYTES 8
#define POP3_APOP_DUMMY_SECRET "postern-apop-dummy-secret"

/* pop3_apop_norm_user - validate and lower-case user into out (USERDB_NAME_MAX + 1). */
static int pop3_apop_norm_user(const char *user, char *out)
{
    if (!user || !userdb_name_valid(user))
        return PST_EINVAL;
    size_t n = strlen(user);
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)user[i]);
    out[n] = '\0';
    return 0;
}

int pop3_apop_secret_valid(const char *secret, size_t len)
{
    if (!secret || len < POP3_APOP_SECRET_MIN || len > POP3_APOP_SECRET_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (secret[i] == '\0' || secret[i] == '\r' || secret[i] == '\n')
            return 0;
    return 1;
}

/* ---- storage ------------------------------------------------------------- */

static int pop3_apop_bind_blob(sqlite3_stmt *st, int idx, const void *b, size_t n)
{
    return sqlite3_bind_blob(st, idx, b, (int)n, SQLITE_TRANSIENT) == SQLITE_OK ? 0 : PST_EDB;
}

int pop3_apop_set(struct db *db, const struct pop3u_key *key, const char *user, const char *secret,
                  size_t len)
{
    char nu[USERDB_NAME_MAX + 1];
    if (!db || !key || pop3_apop_norm_user(user, nu) < 0 || !pop3_apop_secret_valid(secret, len))
        return PST_EINVAL;
    struct pop3_apop_sealed s;
    int rc = pop3u_seal(key, nu, POP3_APOP_AAD_ID, secret, len, s.nonce, s.ct);
    if (rc < 0)
        return rc;
    s.ctlen = len + POP3U_TAG_LEN;
    sqlite3_stmt *st = NULL;
    rc = db_stmt(db,
                 "INSERT INTO pop3_apop (user, nonce, secret_ct, created) VALUES (?1, ?2, ?3, ?4) "
                 "ON CONFLICT (user) DO UPDATE SET nonce = excluded.nonce, "
                 "secret_ct = excluded.secret_ct, created = excluded.created",
                 &st);
    if (rc == 0 && (rc = db_bind_text(st, 1, nu)) == 0 &&
        (rc = pop3_apop_bind_blob(st, 2, s.nonce, sizeof s.nonce)) == 0 &&
        (rc = pop3_apop_bind_blob(st, 3, s.ct, s.ctlen)) == 0 &&
        (rc = db_bind_int64(st, 4, (int64_t)time(NULL))) == 0)
        rc = db_step(st);
    db_stmt_done(st);
    explicit_bzero(&s, sizeof s);
    if (rc < 0)
        return rc == PST_EEXIST ? PST_EDB : rc;
    log_info("pop3 apop_secret_set user=%s", nu);
    return 0;
}

int pop3_apop_clear(struct db *db, const char *user)
{
    char nu[USERDB_NAME_MAX + 1];
    if (!db || pop3_apop_norm_user(user, nu) < 0)
        return PST_EINVAL;
    sqlite3_stmt *st = NULL;
    int rc = db_stmt(db, "DELETE FROM pop3_apop WHERE user = ?1", &st);
    if (rc == 0 && (rc = db_bind_text(st, 1, nu)) == 0)
        rc = db_step(st);
    db_stmt_done(st);
    if (rc < 0)
        return rc;
    if (sqlite3_changes(db_handle(db)) == 0)
        return PST_ENOENT;
    log_info("pop3 apop_secret_cleared user=%s", nu);
    return 0;
}

int pop3_apop_fetch(struct db *db, const char *user, struct pop3_apop_sealed *out)
{
    char nu[USERDB_NAME_MAX + 1];
    if (!db || !out || pop3_apop_norm_user(user, nu) < 0)
        return PST_EINVAL;
    sqlite3_stmt *st = NULL;
    int rc = db_stmt(db, "SELECT nonce, secret_ct FROM pop3_apop WHERE user = ?1", &st);
    if (rc == 0 && (rc = db_bind_text(st, 1, nu)) == 0)
        rc = db_step(st);
    if (rc == 0)
        rc = PST_ENOENT;
    if (rc == 1) {
        const void *nonce = sqlite3_column_blob(st, 0);
        size_t nlen = (size_t)sqlite3_column_bytes(st, 0);
        const void *ct = sqlite3_column_blob(st, 1);
        size_t clen = (size_t)sqlite3_column_bytes(st, 1);
        rc = PST_EDB; /* the schema's CHECKs make these impossible unless edited by hand */
        if (nonce && ct && nlen == POP3U_NONCE_LEN && clen >= POP3U_TAG_LEN &&
            clen <= sizeof out->ct) {
            memcpy(out->nonce, nonce, nlen);
            memcpy(out->ct, ct, clen);
            out->ctlen = clen;
            rc = 0;
        }
    }
    db_stmt_done(st);
    return rc;
}

int pop3_apop_unseal(const struct pop3u_key *key, const char *user,
                     const struct pop3_apop_sealed *in, char *secret, size_t *len)
{
    char nu[USERDB_NAME_MAX + 1];
    if (!key || !in || pop3_apop_norm_user(user, nu) < 0 || in->ctlen < POP3U_TAG_LEN ||
        in->ctlen > sizeof in->ct)
        return PST_EINVAL;
    int rc = pop3u_open(key, nu, POP3_APOP_AAD_ID, in->nonce, in->ct, in->ctlen, secret);
    if (rc < 0)
        return rc;
    *len = in->ctlen - POP3U_TAG_LEN;
    return 0;
}

int pop3_apop_get_secret(struct db *db, const struct pop3u_key *key, const char *user, char *secret,
                         size_t *len)
{
    struct pop3_apop_sealed s;
    int rc = pop3_apop_fetch(db, user, &s);
    if (rc == 0)
        rc = pop3_apop_unseal(key, user, &s, secret, len);
    explicit_bzero(&s, sizeof s);
    return rc;
}

/* ---- the protocol side --------------------------------------------------- */

static int pop3_apop_host_ok(const char *host)
{
    size_t n = host ? strlen(host) : 0;
    if (n == 0 || n > POP3_APOP_HOST_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)host[i];
        if (!isalnum(c) && c != '.' && c != '-')
            return 0;
    }
    return 1;
}

int pop3_apop_timestamp(char *out, size_t cap, const char *host)
{
    unsigned char r[POP3_APOP_RAND_BYTES];
    if (RAND_bytes(r, sizeof r) != 1)
        return PST_ETLS;
    char hex[2 * POP3_APOP_RAND_BYTES + 1];
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(hex + 2 * i, 3, "%02x", r[i]);
    int n = snprintf(out, cap, "<%ld.%s.%lld@%s>", (long)getpid(), hex, (long long)time(NULL),
                     pop3_apop_host_ok(host) ? host : "localhost");
    if (n < 0 || (size_t)n >= cap) {
        if (cap)
            out[0] = '\0';
        return PST_ELIMIT;
    }
    return n;
}

int pop3_apop_digest(const char *timestamp, const char *secret, size_t len,
                     char hex[POP3_APOP_DIGEST_HEX + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, timestamp, strlen(timestamp)) == 1 &&
             EVP_DigestUpdate(ctx, secret, len) == 1 && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 &&
             mdlen * 2 == POP3_APOP_DIGEST_HEX;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        explicit_bzero(md, sizeof md);
        return PST_ETLS;
    }
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < mdlen; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[POP3_APOP_DIGEST_HEX] = '\0';
    explicit_bzero(md, sizeof md);
    return 0;
}

int pop3_apop_check(const char *timestamp, const char *secret, size_t len, const char *digest,
                    size_t dlen)
{
    char want[POP3_APOP_DIGEST_HEX + 1];
    char got[POP3_APOP_DIGEST_HEX];
    int rc = pop3_apop_digest(timestamp, secret, len, want);
    int len_ok = dlen == POP3_APOP_DIGEST_HEX;
    for (size_t i = 0; i < POP3_APOP_DIGEST_HEX; i++) /* a short digest is padded, not cut short */
        got[i] = (char)tolower((unsigned char)(i < dlen ? digest[i] : 0));
    int same = CRYPTO_memcmp(want, got, POP3_APOP_DIGEST_HEX) == 0;
    explicit_bzero(want, sizeof want);
    explicit_bzero(got, sizeof got);
    return rc == 0 && len_ok && same ? 0 : PST_EAUTH;
}

int pop3_apop_verify_sealed(const struct pop3u_key *key, const char *user,
                            const struct pop3_apop_sealed *sealed, const char *timestamp,
                            const char *digest, size_t dlen)
{
    char secret[POP3_APOP_SECRET_MAX + 1];
    size_t len = 0;
    int have = 0;
    if (sealed && key)
        have = pop3_apop_unseal(key, user, sealed, secret, &len) == 0;
    if (!have) {
        /* same work as a real check, then a certain failure */
        len = sizeof POP3_APOP_DUMMY_SECRET - 1;
        memcpy(secret, POP3_APOP_DUMMY_SECRET, len + 1);
    }
    int rc = pop3_apop_check(timestamp, secret, len, digest, dlen);
    explicit_bzero(secret, sizeof secret);
    return have && rc == 0 ? 0 : PST_EAUTH;
}
