/*
 * bm_api.c - addresses, owners, queueing and status for the rest of
 * Postern (see bm_api.h). Runs in whatever process calls it (the CLI, the
 * node, later the queue manager); the state database is the meeting point.
 *
 * Failure policy: every function returns 0 or a negative PST_E* code;
 * nothing is logged here (the callers log, without private keys).
 */
#include "bitmessage/bm_api.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "bitmessage/bm_address.h"
#include "bitmessage/bm_object.h"
#include "lib/db.h"

#define BM_API_VERSION 4u
#define BM_API_NULLS 1u /* leading zero bytes of a new ripe, as the reference */
/* Room left in one object for the ack, keys, signature and ECIES overhead. */
#define BM_API_TEXT_MAX (BM_OBJ_PLAIN_MAX - 4096u)

static void bm_api_why(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void bm_api_why(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (errbuf == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
    if (n < 0)
        errbuf[0] = '\0';
}

static int bm_api_owner_ok(const char *owner)
{
    size_t n = strnlen(owner, BM_API_OWNER_MAX + 1);
    if (n > BM_API_OWNER_MAX)
        return PST_ELIMIT;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)owner[i];
        if (c <= 0x20 || c == 0x7f || c == '/')
            return PST_EINVAL;
    }
    return n == 1 && owner[0] == '.' ? PST_EINVAL : 0;
}

/* bm_api_make_keys - random or deterministic v4 keys into *k. */
static int bm_api_make_keys(const char *passphrase, bm_keys_t *k)
{
    if (passphrase == NULL)
        return bm_keys_random(BM_API_VERSION, BM_STREAM_DEFAULT, BM_API_NULLS, k);
    size_t len = strnlen(passphrase, BM_API_PASSPHRASE_MAX + 1);
    if (len == 0)
        return PST_EINVAL;
    if (len > BM_API_PASSPHRASE_MAX)
        return PST_ELIMIT;
    uint64_t nonce = 0;
    return bm_keys_from_passphrase(passphrase, len, BM_API_VERSION, BM_STREAM_DEFAULT, BM_API_NULLS,
                                   &nonce, k);
}

static int bm_api_key_record(const bm_keys_t *k, const char *passphrase, const char *label,
                             int64_t now, struct bm_store_key *key)
{
    int rc;

    memset(key, 0, sizeof(*key));
    if ((rc = bm_address_encode(&k->addr, key->address, sizeof(key->address))) != 0)
        return rc;
    if (label == NULL)
        label = "";
    if (strnlen(label, BM_STORE_LABEL_MAX + 1) > BM_STORE_LABEL_MAX)
        return PST_ELIMIT;
    memcpy(key->label, label, strlen(label) + 1);
    key->version = (uint32_t)k->addr.version;
    key->stream = k->addr.stream;
    memcpy(key->ripe, k->addr.ripe, BM_STORE_RIPE_LEN);
    if ((rc = bm_address_tag(&k->addr, NULL, key->tag)) != 0)
        return rc;
    memcpy(key->signing_priv, k->priv_signing, BM_STORE_PRIVKEY_LEN);
    memcpy(key->encryption_priv, k->priv_encryption, BM_STORE_PRIVKEY_LEN);
    key->deterministic = passphrase != NULL;
    key->created = now;
    return 0;
}

int bm_api_address_new(struct bm_store *st, const char *passphrase, const char *label,
                       const char *owner, int64_t now, char *address, size_t addrsz)
{
    bm_keys_t k;
    struct bm_store_key key;
    int rc;

    if (st == NULL || address == NULL || addrsz < BM_STORE_ADDR_MAX + 1)
        return PST_EINVAL;
    if (owner == NULL)
        owner = "";
    if ((rc = bm_api_owner_ok(owner)) != 0)
        return rc;
    if ((rc = bm_api_make_keys(passphrase, &k)) != 0)
        return rc;
    rc = bm_api_key_record(&k, passphrase, label, now, &key);
    OPENSSL_cleanse(&k, sizeof(k));
    if (rc == 0)
        rc = bm_store_key_add(st, &key);
    if (rc == 0)
        rc = bm_api_set_owner(st, key.address, owner);
    if (rc == 0)
        memcpy(address, key.address, strlen(key.address) + 1);
    bm_store_key_clear(&key);
    return rc;
}

int bm_api_owner(struct bm_store *st, const char *address, char *out, size_t outsz)
{
    sqlite3_stmt *stmt = NULL;
    int rc;

    if (st == NULL || address == NULL || out == NULL || outsz == 0)
        return PST_EINVAL;
    rc = db_stmt(bm_store_db(st), "SELECT owner FROM bm_keys WHERE address = ?1", &stmt);
    if (rc != 0)
        return rc;
    if ((rc = db_bind_text(stmt, 1, address)) == 0)
        rc = db_step(stmt);
    if (rc == 1) {
        const unsigned char *o = sqlite3_column_text(stmt, 0);
        int n = snprintf(out, outsz, "%s", o ? (const char *)o : "");
        rc = n < 0 || (size_t)n >= outsz ? PST_ELIMIT : 0;
    } else if (rc == 0) {
        rc = PST_ENOENT;
    }
    db_stmt_done(stmt);
    return rc;
}

int bm_api_set_owner(struct bm_store *st, const char *address, const char *owner)
{
    sqlite3_stmt *stmt = NULL;
    int rc;

    if (st == NULL || address == NULL || owner == NULL)
        return PST_EINVAL;
    if ((rc = bm_api_owner_ok(owner)) != 0)
        return rc;
    struct db *db = bm_store_db(st);
    rc = db_stmt(db, "UPDATE bm_keys SET owner = ?2 WHERE address = ?1", &stmt);
    if (rc != 0)
        return rc;
    if ((rc = db_bind_text(stmt, 1, address)) == 0 && (rc = db_bind_text(stmt, 2, owner)) == 0)
        rc = db_step(stmt);
    db_stmt_done(stmt);
    if (rc < 0)
        return rc;
    return sqlite3_changes(db_handle(db)) == 1 ? 0 : PST_ENOENT;
}

/* bm_api_text_ok - no NUL (we hold C strings); the subject is one line. */
static int bm_api_text_ok(const char *subject, const char *body, char *errbuf, size_t errlen)
{
    size_t slen = strnlen(subject, BM_OBJ_SUBJECT_MAX + 1);
    size_t blen = strnlen(body, BM_API_TEXT_MAX + 1);
    if (slen > BM_OBJ_SUBJECT_MAX) {
        bm_api_why(errbuf, errlen, "subject longer than %u bytes", BM_OBJ_SUBJECT_MAX);
        return PST_ELIMIT;
    }
    if (strpbrk(subject, "\r\n") != NULL) {
        bm_api_why(errbuf, errlen, "subject must be one line");
        return PST_EINVAL;
    }
    if (blen + slen > BM_API_TEXT_MAX) {
        bm_api_why(errbuf, errlen, "message longer than %u bytes", BM_API_TEXT_MAX);
        return PST_ELIMIT;
    }
    return 0;
}

static int bm_api_check_to(const char *to, char *errbuf, size_t errlen)
{
    bm_address_t a;
    enum bm_addr_status why = BM_ADDR_OK;
    size_t len = strnlen(to, BM_ADDRESS_INPUT_MAX + 1);

    if (bm_address_decode(to, len, &a, &why) != 0) {
        bm_api_why(errbuf, errlen, "recipient %.*s is not a Bitmessage address (%s)",
                   (int)(len > 64 ? 64 : len), to, bm_addr_status_str(why));
        return PST_EINVAL;
    }
    if (a.stream != BM_STREAM_DEFAULT) {
        bm_api_why(errbuf, errlen, "recipient is in stream %llu; only stream 1 is served",
                   (unsigned long long)a.stream);
        return PST_EINVAL;
    }
    return 0;
}

int bm_api_send(struct bm_store *st, const char *from, const char *to, const char *subject,
                const char *body, int64_t ttl, int64_t now, int64_t *msgid, char *errbuf,
                size_t errlen)
{
    struct bm_store_key key;
    uint8_t ackdata[BM_STORE_ACKDATA_LEN];
    int rc;

    if (st == NULL || from == NULL || to == NULL || subject == NULL || body == NULL ||
        msgid == NULL)
        return PST_EINVAL;
    if ((rc = bm_api_text_ok(subject, body, errbuf, errlen)) != 0)
        return rc;
    if ((rc = bm_api_check_to(to, errbuf, errlen)) != 0)
        return rc;
    rc = bm_store_key_by_addr(st, from, &key);
    bm_store_key_clear(&key);
    if (rc == PST_ENOENT) {
        bm_api_why(errbuf, errlen, "sender %.64s is not one of our addresses", from);
        return rc;
    }
    if (rc != 0)
        return rc;
    if (ttl < BM_STORE_TTL_MIN || ttl > BM_STORE_TTL_MAX) {
        bm_api_why(errbuf, errlen, "ttl must be %d..%d seconds", BM_STORE_TTL_MIN,
                   BM_STORE_TTL_MAX);
        return PST_EINVAL;
    }
    if (RAND_bytes(ackdata, sizeof(ackdata)) != 1)
        return PST_EIO;
    rc = bm_store_outbox_add(st, from, to, subject, strlen(subject), body, strlen(body), ackdata,
                             ttl, now, msgid);
    if (rc != 0)
        bm_api_why(errbuf, errlen, "cannot queue the message: %s", err_str(rc));
    return rc;
}

int bm_api_status(struct bm_store *st, int64_t msgid, enum bm_outbox_state *state,
                  uint32_t *attempts)
{
    struct bm_store_outmsg m;
    int rc = bm_store_outbox_get(st, msgid, &m);
    if (rc != 0)
        return rc;
    if (state)
        *state = m.state;
    if (attempts)
        *attempts = m.attempts;
    bm_store_outmsg_free(&m);
    return 0;
}

int bm_api_notify(const char *run_dir)
{
    char path[PATH_MAX];
    char line[32];
    int n = snprintf(path, sizeof(path), "%s/bmd.pid", run_dir);
    if (n < 0 || (size_t)n >= sizeof(path))
        return PST_ELIMIT;
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return errno == ENOENT ? PST_ENOENT : PST_EIO;
    char *got = fgets(line, sizeof(line), f);
    fclose(f);
    if (got == NULL)
        return PST_ENOENT;
    char *end;
    errno = 0;
    long pid = strtol(line, &end, 10);
    if (errno != 0 || end == line || pid <= 1 || pid > INT_MAX)
        return PST_ENOENT;
    if (kill((pid_t)pid, SIGUSR1) < 0)
        return errno == ESRCH ? PST_ENOENT : PST_EIO;
    return 0;
}
