/*
 * tls.h - OpenSSL 3 server contexts and the self-signed certificate made
 * on first start.
 *
 * Server contexts allow TLS 1.2 and 1.3 only (configurable minimum), with
 * OpenSSL's default cipher lists, no compression, no renegotiation, and
 * session tickets on. Errors are drained from OpenSSL's queue into the log.
 */
#ifndef POSTERN_TLS_H
#define POSTERN_TLS_H

#include <openssl/ssl.h>

#include "err.h"

/*
 * tls_ensure_selfsigned - if cert_path or key_path is missing, make a P-256
 * key and a self-signed certificate for hostname (CN and subjectAltName,
 * valid 10 years), written atomically (key mode 0600). Existing files are
 * left alone. Returns 0 or PST_ETLS / PST_EIO.
 */
PST_MUST_CHECK int tls_ensure_selfsigned(const char *cert_path, const char *key_path,
                                         const char *hostname);

/* tls_server_ctx_new - load cert chain and key; min_version "1.2" or "1.3". NULL on error (logged).
 */
SSL_CTX *tls_server_ctx_new(const char *cert_path, const char *key_path, const char *min_version);

/* tls_log_errors - log and clear OpenSSL's error queue, each line prefixed with what. */
void tls_log_errors(const char *what);

/* tls_describe - "TLSv1.3 TLS_AES_256_GCM_SHA384" for a connection, into out. Returns out. */
const char *tls_describe(SSL *ssl, char *out, size_t outsz);

#endif
