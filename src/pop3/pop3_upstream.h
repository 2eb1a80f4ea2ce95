/*
 * pop3_upstream.h - the aggregating POP3 proxy's per-user upstream
 * mailboxes and statistics in the state database.
 *
 * An upstream is (user, id) -> host, port, TLS mode, login name and the
 * login password sealed with AES-256-GCM under the proxy key (a 32-byte
 * file, cfg->pop3_upstream_key). Statistics are counters per (user,
 * upstream); upstream "" holds the user's proxy-session totals.
 *
 * Tables (migration 4 in src/lib/db.c):
 *   pop3_upstreams(user, id, host, port, tls, username, pass_nonce,
 *                  pass_ct, created)   PRIMARY KEY (user, id)
 *   pop3_stats(user, upstream, sessions, messages, bytes, errors,
 *              last_error, updated)    PRIMARY KEY (user, upstream)
 *
 * Passwords are never logged, and plaintext copies are wiped
 * (explicit_bzero) by pop3u_upstream_wipe() / pop3u_list_free().
 */
#ifndef POSTERN_POP3_UPSTREAM_H
#define POSTERN_POP3_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

struct db;

#define POP3U_KEY_LEN 32     /* AES-256 */
#define POP3U_NONCE_LEN 12   /* GCM nonce, random per record */
#define POP3U_TAG_LEN 16     /* GCM tag, stored after the ciphertext */
#define POP3U_USER_MAX 64    /* Postern user name (userdb rule, USERDB_NAME_MAX) */
#define POP3U_ID_MAX 64      /* upstream id: [A-Za-z0-9._-]{1,64} */
#define POP3U_HOST_MAX 253   /* host name or IP literal */
#define POP3U_LOGIN_MAX 255  /* upstream login name */
#define POP3U_PASS_MAX 255   /* upstream password (AUTH PLAIN field limit) */
#define POP3U_ERROR_MAX 300  /* last_error text kept per statistics row */
#define POP3U_LIST_MAX 10000 /* rows returned by one list call */

enum pop3u_tls { POP3U_TLS_IMPLICIT = 0, POP3U_TLS_STLS, POP3U_TLS_NONE };

struct pop3u_key {
    unsigned char k[POP3U_KEY_LEN];
};

struct pop3u_upstream {
    char user[POP3U_USER_MAX + 1];
    char id[POP3U_ID_MAX + 1];
    char host[POP3U_HOST_MAX + 1];
    unsigned port;
    enum pop3u_tls tls;
    char username[POP3U_LOGIN_MAX + 1];
    char password[POP3U_PASS_MAX + 1]; /* plaintext: "" unless decrypted */
    int pass_status; /* 0 = password decrypted; PST_EAUTH = wrong key/tampered; PST_ENOENT =
                        not asked */
    int64_t created;
};

struct pop3u_stat {
    char user[POP3U_USER_MAX + 1];
    char upstream[POP3U_ID_MAX + 1]; /* "" = the user's proxy sessions */
    int64_t sessions, messages, bytes, errors;
    char last_error[POP3U_ERROR_MAX + 1];
    int64_t updated;
};

/* pop3u_tls_name / pop3u_tls_parse - "implicit" | "stls" | "none". parse: 0 or PST_EINVAL. */
const char *pop3u_tls_name(enum pop3u_tls t);
PST_MUST_CHECK int pop3u_tls_parse(const char *s, enum pop3u_tls *out);

/* pop3u_host_is_loopback - 1 for 127.0.0.0/8, ::1, ::ffff:127.x.y.z, "localhost[.]"; else 0. */
int pop3u_host_is_loopback(const char *host);

/*
 * pop3u_key_load - read the 32-byte key at path (borrowed). If the file is
 * missing and create is set, make it first: 32 bytes from RAND_bytes,
 * mode 0600, written to a temporary file, fsynced and linked into place
 * (a concurrent creator wins; its key is then read). The file must be a
 * regular file of exactly 32 bytes not readable or writable by group or
 * others. Returns 0, PST_ENOENT (missing, !create), PST_EPERM (mode),
 * PST_EINVAL (wrong size / not a regular file), PST_EIO or PST_ETLS.
 */
PST_MUST_CHECK int pop3u_key_load(const char *path, int create, struct pop3u_key *out);

/* pop3u_key_wipe - clear the key from memory. */
void pop3u_key_wipe(struct pop3u_key *k);

/*
 * pop3u_seal - encrypt pass (len bytes) with AES-256-GCM under key, a fresh
 * random nonce (written to nonce) and AAD = user NUL id. ct receives len +
 * POP3U_TAG_LEN bytes (ciphertext then tag). Returns 0, PST_EINVAL (len >
 * POP3U_PASS_MAX) or PST_ETLS.
 */
PST_MUST_CHECK int pop3u_seal(const struct pop3u_key *key, const char *user, const char *id,
                              const char *pass, size_t len, unsigned char nonce[POP3U_NONCE_LEN],
                              unsigned char *ct);

/*
 * pop3u_open - the reverse: ct (ctlen bytes incl. tag) into pass (room for
 * ctlen - POP3U_TAG_LEN + 1 bytes, NUL-terminated). Returns 0, PST_EAUTH
 * (wrong key, other user/id, or tampered data: nothing is written), or
 * PST_EINVAL (bad length).
 */
PST_MUST_CHECK int pop3u_open(const struct pop3u_key *key, const char *user, const char *id,
                              const unsigned char nonce[POP3U_NONCE_LEN], const unsigned char *ct,
                              size_t ctlen, char *pass);

/*
 * pop3u_add - validate u (user, id, host, port, tls, username; created is
 * set to now) and password, seal the password and insert. TLS "none" is
 * refused (PST_EPERM) unless the host is loopback. Returns 0, PST_EINVAL
 * (bad field), PST_EPERM, PST_EEXIST ((user, id) exists), PST_ETLS or
 * PST_EDB. u and password are borrowed.
 */
PST_MUST_CHECK int pop3u_add(struct db *db, const struct pop3u_key *key,
                             const struct pop3u_upstream *u, const char *password);

/* pop3u_remove - delete (user, id) and its statistics. 0, PST_ENOENT or PST_EDB. */
PST_MUST_CHECK int pop3u_remove(struct db *db, const char *user, const char *id);

/*
 * pop3u_get - one upstream with its password decrypted. 0, PST_ENOENT,
 * PST_EAUTH (the password cannot be decrypted with key), PST_EDB. The
 * caller wipes *out with pop3u_upstream_wipe().
 */
PST_MUST_CHECK int pop3u_get(struct db *db, const struct pop3u_key *key, const char *user,
                             const char *id, struct pop3u_upstream *out);

/*
 * pop3u_list - the upstreams of user (NULL = all users), ordered by user,
 * id; at most POP3U_LIST_MAX. With key, every password is decrypted (a
 * record that does not decrypt gets pass_status PST_EAUTH and the others
 * are still returned); with key NULL passwords stay "" (pass_status
 * PST_ENOENT). *out is an array the caller frees with pop3u_list_free().
 * Returns 0 (also for none: *out NULL, *n 0), PST_ENOMEM or PST_EDB.
 */
PST_MUST_CHECK int pop3u_list(struct db *db, const struct pop3u_key *key, const char *user,
                              struct pop3u_upstream **out, size_t *n);

/* pop3u_list_free - wipe the passwords, free *a, *a = NULL. Accepts NULL. */
void pop3u_list_free(struct pop3u_upstream **a, size_t n);

/* pop3u_upstream_wipe - clear the password of one record. */
void pop3u_upstream_wipe(struct pop3u_upstream *u);

/*
 * pop3u_stat_add - add the deltas (>= 0) to the counters of (user,
 * upstream), creating the row; last_error (NULL = keep, borrowed, cut at
 * POP3U_ERROR_MAX) replaces the stored text. 0, PST_EINVAL or PST_EDB.
 */
PST_MUST_CHECK int pop3u_stat_add(struct db *db, const char *user, const char *upstream,
                                  int64_t sessions, int64_t messages, int64_t bytes, int64_t errors,
                                  const char *last_error);

/* Shorthands for pop3u_stat_add. */
PST_MUST_CHECK int pop3u_stat_session(struct db *db, const char *user, const char *upstream);
PST_MUST_CHECK int pop3u_stat_message(struct db *db, const char *user, const char *upstream,
                                      uint64_t bytes);
PST_MUST_CHECK int pop3u_stat_error(struct db *db, const char *user, const char *upstream,
                                    const char *why);

/*
 * pop3u_stat_list - the statistics rows of user (NULL = all), ordered by
 * user, upstream; at most POP3U_LIST_MAX. Caller frees *out with free().
 * Returns 0, PST_ENOMEM or PST_EDB.
 */
PST_MUST_CHECK int pop3u_stat_list(struct db *db, const char *user, struct pop3u_stat **out,
                                   size_t *n);

#endif
