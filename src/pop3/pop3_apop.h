/*
 * pop3_apop.h - APOP (RFC 1939 7): the per-user shared secrets and the
 * digest check.
 *
 * APOP proves knowledge of a secret without sending it: the server's
 * greeting carries a unique timestamp "<pid.random.time@host>" and the
 * client answers "APOP user digest", digest = lower-case hex of
 * MD5(timestamp || secret). The server therefore needs the secret itself,
 * not a one-way hash, which is why it is not the login password (stored
 * only as a yescrypt hash) but a second, separately set secret:
 *
 *   table pop3_apop(user PRIMARY KEY, nonce BLOB(12), secret_ct BLOB,
 *                   created)                        (migration 5, db.c)
 *
 * secret_ct is the secret sealed with AES-256-GCM under the same key file
 * as the proxy's upstream passwords (cfg->pop3_upstream_key, pop3u_seal)
 * with AAD = user NUL "apop:secret" (no upstream id contains ':', so a
 * sealed upstream password cannot be swapped in). Plaintext copies are
 * wiped after use and never logged.
 *
 * Trade-off (docs/pop3.md): a database and key thief gets usable APOP
 * secrets, and an eavesdropper who records one APOP exchange can test
 * guesses offline at MD5 speed; hence APOP is off by default, the secret
 * must be at least POP3_APOP_SECRET_MIN bytes, and it must differ from
 * the login password (checked by `postern pop3 apop set`).
 */
#ifndef POSTERN_POP3_APOP_H
#define POSTERN_POP3_APOP_H

#include <stddef.h>

#include "lib/err.h"
#include "pop3/pop3_upstream.h"

struct db;

#define POP3_APOP_SECRET_MIN 8              /* bytes */
#define POP3_APOP_SECRET_MAX POP3U_PASS_MAX /* bytes (255) */
#define POP3_APOP_DIGEST_HEX 32             /* MD5 as hex */
#define POP3_APOP_TIMESTAMP_MAX 300         /* "<pid.random.time@host>" incl. NUL */
#define POP3_APOP_AAD_ID "apop:secret"      /* the "id" half of the GCM AAD */

/* A sealed secret as stored: fetched on the event loop, opened on a worker. */
struct pop3_apop_sealed {
    unsigned char nonce[POP3U_NONCE_LEN];
    unsigned char ct[POP3_APOP_SECRET_MAX + POP3U_TAG_LEN];
    size_t ctlen;
};

/* pop3_apop_secret_valid - 1 if secret (len bytes) is POP3_APOP_SECRET_MIN..MAX bytes without
 * NUL, CR or LF; else 0. */
int pop3_apop_secret_valid(const char *secret, size_t len);

/*
 * pop3_apop_set - seal secret (len bytes, borrowed) for user (a valid
 * userdb name, stored lower-case) and insert or replace its row. Returns
 * 0, PST_EINVAL (bad user or secret), PST_ETLS or PST_EDB. Does not check
 * that the user exists (the CLI does).
 */
PST_MUST_CHECK int pop3_apop_set(struct db *db, const struct pop3u_key *key, const char *user,
                                 const char *secret, size_t len);

/* pop3_apop_clear - delete user's secret: 0, PST_ENOENT (none set), PST_EINVAL or PST_EDB. */
PST_MUST_CHECK int pop3_apop_clear(struct db *db, const char *user);

/* pop3_apop_fetch - user's sealed row into *out: 0, PST_ENOENT, PST_EINVAL or PST_EDB. */
PST_MUST_CHECK int pop3_apop_fetch(struct db *db, const char *user, struct pop3_apop_sealed *out);

/*
 * pop3_apop_unseal - decrypt in for user into secret (room for
 * POP3_APOP_SECRET_MAX + 1, NUL-terminated) and set *len. Returns 0,
 * PST_EAUTH (wrong key, other user, tampered) or PST_EINVAL.
 */
PST_MUST_CHECK int pop3_apop_unseal(const struct pop3u_key *key, const char *user,
                                    const struct pop3_apop_sealed *in, char *secret, size_t *len);

/* pop3_apop_get_secret - fetch + unseal (CLI, tests). Same returns as both. */
PST_MUST_CHECK int pop3_apop_get_secret(struct db *db, const struct pop3u_key *key,
                                        const char *user, char *secret, size_t *len);

/*
 * pop3_apop_timestamp - a fresh RFC 1939 timestamp "<pid.random.time@host>"
 * (random: 16 hex digits from RAND_bytes) into out (cap bytes). host
 * (borrowed) is used if it is 1..253 chars of [A-Za-z0-9.-], else
 * "localhost". Returns its length, PST_ELIMIT (cap too small) or PST_ETLS.
 */
PST_MUST_CHECK int pop3_apop_timestamp(char *out, size_t cap, const char *host);

/* pop3_apop_digest - hex (33 bytes incl. NUL) = lower-case hex MD5(timestamp || secret). 0 or
 * PST_ETLS. */
PST_MUST_CHECK int pop3_apop_digest(const char *timestamp, const char *secret, size_t len,
                                    char hex[POP3_APOP_DIGEST_HEX + 1]);

/*
 * pop3_apop_check - 0 if digest (dlen bytes from the client; hex digits in
 * either case) equals pop3_apop_digest(timestamp, secret); else PST_EAUTH.
 * The comparison is CRYPTO_memcmp over all 32 digits; a wrong length costs
 * the same work.
 */
PST_MUST_CHECK int pop3_apop_check(const char *timestamp, const char *secret, size_t len,
                                   const char *digest, size_t dlen);

/*
 * pop3_apop_verify_sealed - the worker thread's whole job: open sealed
 * (NULL: user has no secret; a dummy is used so the cost is the same),
 * check digest, wipe the plaintext. 0 or PST_EAUTH (also for NULL, a
 * secret that does not decrypt, or a bad digest).
 */
PST_MUST_CHECK int pop3_apop_verify_sealed(const struct pop3u_key *key, const char *user,
                                           const struct pop3_apop_sealed *sealed,
                                           const char *timestamp, const char *digest, size_t dlen);

#endif
