/*
 * directoryd.h - the public directory's HTTPS server process (issue 6):
 * registration form, query API and admin API (dir_http.h) on libevent's
 * evhttp, TLS through bufferevent_openssl.
 *
 * The supervisor binds [directory] listen and loads the server SSL_CTX
 * while privileged, then passes both in; the server runs one event loop
 * per CPU (threads sharing the listening socket) until SIGTERM/SIGINT. State lives in the directory
 * store (SQLite state database, or PostgreSQL when [directory] database = postgresql), so a restart
 * loses nothing but open connections and the in-memory per-IP rate-limit counts.
 */
#ifndef POSTERN_DIRECTORYD_H
#define POSTERN_DIRECTORYD_H

#include <openssl/ssl.h>

#include "lib/config.h"
#include "lib/err.h"

#define DIRECTORYD_MAX_CONNECTIONS 4096 /* open connections; more get 503 + close */
#define DIRECTORYD_THREADS_MAX 16       /* event loops: one per CPU available, at most this many */
#define DIRECTORYD_TIMEOUT 30           /* seconds for a request / idle keep-alive */
#define DIRECTORYD_PURGE_INTERVAL 600   /* seconds between purges of expired requests */
#define DIRECTORYD_SECRET_FILE "directory-csrf.key" /* under var_dir, mode 0600 */

/*
 * directoryd_run - serve HTTPS on listen_fd (a listening socket; borrowed, closed at exit) with
 * tls (borrowed) until SIGTERM/SIGINT. Creates the admin token file (mode 0600) and the CSRF
 * key on first start. Returns 0, or PST_E* when start-up fails (logged).
 */
PST_MUST_CHECK int directoryd_run(const struct cfg *cfg, int listen_fd, SSL_CTX *tls);

/*
 * directoryd_secret_file - read the secret in path, or create it (mode 0600, O_EXCL) with
 * len random bytes: hex text when hex is true (len*2 characters and a newline), else raw
 * bytes. out gets len raw bytes (hex = false) or the hex text, NUL-terminated (outsz >=
 * 2*len+1). For the admin token and the CSRF key.
 */
PST_MUST_CHECK int directoryd_secret_file(const char *path, size_t len, int hex, void *out,
                                          size_t outsz);

#endif
