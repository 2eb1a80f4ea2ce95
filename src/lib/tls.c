/*
 * tls.c - OpenSSL 3 server contexts and the first-start self-signed certificate.
 *
 * The certificate is written to a temporary name and renamed into place,
 * key first with mode 0600, so a crash never leaves a half-written key or a
 * certificate without its key. Failure policy: errors are returned and the
 * OpenSSL error queue is logged; nothing here aborts.
 */
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "log.h"

#define TLS_CERT_DAYS 3650
#define TLS_PATH_MAX 4096

void tls_log_errors(const char *what)
{
    unsigned long e;
    char buf[256];
    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof buf);
        char q[300];
        log_warn("tls error what=%s detail=%s", what, log_quote(q, sizeof q, buf, strlen(buf)));
    }
}

static int tls_write_pem(const char *path, mode_t mode, EVP_PKEY *key, X509 *cert)
{
    char tmp[TLS_PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp)
        return PST_ELIMIT;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return PST_EIO;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(tmp);
        return PST_EIO;
    }
    int ok =
        key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, cert);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        ok = 0;
    if (fclose(f) != 0)
        ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return PST_EIO;
    }
    return 0;
}

static int tls_add_ext(X509 *cert, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext)
        return PST_ETLS;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : PST_ETLS;
}

static X509 *tls_make_cert(EVP_PKEY *key, const char *hostname)
{
    X509 *cert = X509_new();
    if (!cert)
        return NULL;
    char san[600];
    int n = snprintf(san, sizeof san, "DNS:%s", hostname);
    unsigned char serial[16];
    BIGNUM *bn = NULL;
    if (n < 0 || (size_t)n >= sizeof san)
        goto fail;
    if (RAND_bytes(serial, sizeof serial) != 1)
        goto fail;
    serial[0] &= 0x7f;
    bn = BN_bin2bn(serial, sizeof serial, NULL);
    if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)))
        goto fail;
    if (!X509_set_version(cert, 2) || !X509_gmtime_adj(X509_getm_notBefore(cert), -3600) ||
        !X509_gmtime_adj(X509_getm_notAfter(cert), 60L * 60 * 24 * TLS_CERT_DAYS) ||
        !X509_set_pubkey(cert, key))
        goto fail;
    X509_NAME *name = X509_get_subject_name(cert);
    if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)hostname, -1,
                                    -1, 0) ||
        !X509_set_issuer_name(cert, name))
        goto fail;
    if (tls_add_ext(cert, NID_subject_alt_name, san) < 0 ||
        tls_add_ext(cert, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
        tls_add_ext(cert, NID_key_usage, "critical,digitalSignature") < 0 ||
        tls_add_ext(cert, NID_ext_key_usage, "serverAuth") < 0)
        goto fail;
    if (!X509_sign(cert, key, EVP_sha256()))
        goto fail;
    BN_free(bn);
    return cert;
fail:
    BN_free(bn);
    X509_free(cert);
    return NULL;
}

int tls_ensure_selfsigned(const char *cert_path, const char *key_path, const char *hostname)
{
    if (access(cert_path, F_OK) == 0 && access(key_path, F_OK) == 0)
        return 0;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    if (!key) {
        tls_log_errors("keygen");
        return PST_ETLS;
    }
    int rc = PST_ETLS;
    X509 *cert = tls_make_cert(key, hostname);
    if (!cert) {
        tls_log_errors("selfsigned");
        goto out;
    }
    rc = tls_write_pem(key_path, 0600, key, NULL);
    if (rc == 0)
        rc = tls_write_pem(cert_path, 0644, NULL, cert);
    if (rc == 0)
        log_info("tls selfsigned_created cert=%s host=%s", cert_path, hostname);
out:
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}

SSL_CTX *tls_server_ctx_new(const char *cert_path, const char *key_path, const char *min_version)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        tls_log_errors("ctx_new");
        return NULL;
    }
    int minv = (min_version && strcmp(min_version, "1.3") == 0) ? TLS1_3_VERSION : TLS1_2_VERSION;
    SSL_CTX_set_min_proto_version(ctx, minv);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        tls_log_errors("load_cert");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

const char *tls_describe(SSL *ssl, char *out, size_t outsz)
{
    int n = snprintf(out, outsz, "%s %s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
    if (n < 0 || (size_t)n >= outsz)
        out[outsz ? outsz - 1 : 0] = '\0';
    return out;
}
