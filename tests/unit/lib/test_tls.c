/*
 * test_tls.c - the first-start certificate: made once, loadable, not
 * overwritten, key private; a handshake between a client and the server
 * context succeeds over a socket pair.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "lib/tls.h"

struct paths {
    char dir[256];
    char cert[300];
    char key[300];
};

static int setup(void **state)
{
    struct paths *p = calloc(1, sizeof *p);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(p->dir, sizeof p->dir, "%s/test_tls.XXXXXX", tmp);
    if (!mkdtemp(p->dir))
        return -1;
    snprintf(p->cert, sizeof p->cert, "%s/cert.pem", p->dir);
    snprintf(p->key, sizeof p->key, "%s/key.pem", p->dir);
    *state = p;
    return 0;
}

static int teardown(void **state)
{
    struct paths *p = *state;
    unlink(p->cert);
    unlink(p->key);
    rmdir(p->dir);
    free(p);
    return 0;
}

static void test_selfsigned_made_once(void **state)
{
    struct paths *p = *state;
    assert_int_equal(tls_ensure_selfsigned(p->cert, p->key, "mx.example.test"), 0);
    struct stat st1, st2;
    assert_int_equal(stat(p->key, &st1), 0);
    assert_int_equal(st1.st_mode & 0777, 0600);
    assert_int_equal(stat(p->cert, &st1), 0);
    assert_int_equal(tls_ensure_selfsigned(p->cert, p->key, "other.example"), 0);
    assert_int_equal(stat(p->cert, &st2), 0);
    assert_int_equal(st1.st_ino, st2.st_ino); /* not rewritten */

    FILE *f = fopen(p->cert, "r");
    assert_non_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    assert_int_equal(X509_check_host(x, "mx.example.test", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(x, "other.example", 0, 0, NULL), 0);
    X509_free(x);
}

static void test_handshake(void **state)
{
    struct paths *p = *state;
    assert_int_equal(tls_ensure_selfsigned(p->cert, p->key, "mx.example.test"), 0);
    SSL_CTX *sctx = tls_server_ctx_new(p->cert, p->key, "1.2");
    assert_non_null(sctx);
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_max_proto_version(cctx, TLS1_1_VERSION); /* must be refused */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    pid_t pid = fork();
    if (pid == 0) {
        SSL *s = SSL_new(sctx);
        SSL_set_fd(s, sv[1]);
        int ok = SSL_accept(s) == 1;
        _exit(ok ? 0 : 1);
    }
    SSL *c = SSL_new(cctx);
    SSL_set_fd(c, sv[0]);
    assert_int_not_equal(SSL_connect(c), 1); /* TLS 1.1 refused */
    SSL_free(c);
    close(sv[0]);
    close(sv[1]);
    int status;
    waitpid(pid, &status, 0);
    assert_int_not_equal(WEXITSTATUS(status), 0);

    SSL_CTX_set_max_proto_version(cctx, 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    pid = fork();
    if (pid == 0) {
        SSL *s = SSL_new(sctx);
        SSL_set_fd(s, sv[1]);
        _exit(SSL_accept(s) == 1 ? 0 : 1);
    }
    c = SSL_new(cctx);
    SSL_set_fd(c, sv[0]);
    assert_int_equal(SSL_connect(c), 1);
    char desc[128];
    assert_non_null(strstr(tls_describe(c, desc, sizeof desc), "TLSv1."));
    SSL_free(c);
    close(sv[0]);
    close(sv[1]);
    waitpid(pid, &status, 0);
    assert_int_equal(WEXITSTATUS(status), 0);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

static void test_missing_files(void **state)
{
    assert_null(tls_server_ctx_new("/nonexistent/cert.pem", "/nonexistent/key.pem", "1.2"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_selfsigned_made_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_files, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
