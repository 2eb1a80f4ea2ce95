/*
 * test_pop3_upstream.c - the proxy's upstream table and statistics: key
 * file creation (mode 0600, reused, bad size / mode refused), AES-256-GCM
 * round trip, wrong key, tampered nonce / ciphertext / tag and a record
 * moved to another user all failing cleanly, add / get / list / remove,
 * validation (TLS "none" only on loopback, bad ids, hosts, control bytes in
 * credentials), and the statistics counters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "lib/db.h"
#include "pop3/pop3_upstream.h"
#include "testutil.h"

struct fix {
    char dir[256], keypath[300], dbpath[300];
    struct db *db;
    struct pop3u_key key;
};


static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    const char *t = getenv("TMPDIR");
    snprintf(f->dir, sizeof(f->dir), "%s/pop3u_XXXXXX", t && t[0] ? t : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->keypath, sizeof(f->keypath), "%s/pop3-upstream.key", f->dir);
    snprintf(f->dbpath, sizeof(f->dbpath), "%s/postern.db", f->dir);
    assert_int_equal(db_open(f->dbpath, &f->db), 0);
    assert_int_equal(pop3u_key_load(f->keypath, 1, &f->key), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    db_close(&f->db);
    pop3u_key_wipe(&f->key);
    assert_int_equal(tu_rm_rf(f->dir), 0);
    free(f);
    return 0;
}

static struct pop3u_upstream up(const char *user, const char *id, const char *host,
                                enum pop3u_tls tls)
{
    struct pop3u_upstream u;
    memset(&u, 0, sizeof(u));
    snprintf(u.user, sizeof(u.user), "%s", user);
    snprintf(u.id, sizeof(u.id), "%s", id);
    snprintf(u.host, sizeof(u.host), "%s", host);
    u.port = tls == POP3U_TLS_IMPLICIT ? 995 : 110;
    u.tls = tls;
    snprintf(u.username, sizeof(u.username), "%s@old.example", user);
    return u;
}

static void test_key_file(void **state)
{
    struct fix *f = *state;
    struct stat st;
    assert_int_equal(stat(f->keypath, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, POP3U_KEY_LEN);
    /* loaded again: the same key */
    struct pop3u_key k2;
    assert_int_equal(pop3u_key_load(f->keypath, 1, &k2), 0);
    assert_memory_equal(k2.k, f->key.k, POP3U_KEY_LEN);
    /* missing without create */
    char p[400];
    snprintf(p, sizeof(p), "%s/none.key", f->dir);
    assert_int_equal(pop3u_key_load(p, 0, &k2), PST_ENOENT);
    /* group-readable: refused */
    assert_int_equal(chmod(f->keypath, 0640), 0);
    assert_int_equal(pop3u_key_load(f->keypath, 1, &k2), PST_EPERM);
    assert_int_equal(chmod(f->keypath, 0600), 0);
    /* wrong size */
    snprintf(p, sizeof(p), "%s/short.key", f->dir);
    int fd = open(p, O_CREAT | O_WRONLY | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "0123456789", 10), 10);
    close(fd);
    assert_int_equal(pop3u_key_load(p, 1, &k2), PST_EINVAL);
    /* a symlink is not followed */
    char l[400];
    snprintf(l, sizeof(l), "%s/link.key", f->dir);
    assert_int_equal(symlink(f->keypath, l), 0);
    assert_int_not_equal(pop3u_key_load(l, 0, &k2), 0);
    pop3u_key_wipe(&k2);
}

static void test_seal_roundtrip(void **state)
{
    struct fix *f = *state;
    unsigned char nonce[POP3U_NONCE_LEN], nonce2[POP3U_NONCE_LEN];
    unsigned char ct[POP3U_PASS_MAX + POP3U_TAG_LEN], ct2[sizeof(ct)];
    const char *pw = "correct horse battery staple";
    size_t pl = strlen(pw);
    assert_int_equal(pop3u_seal(&f->key, "alice", "gmail", pw, pl, nonce, ct), 0);
    assert_memory_not_equal(ct, pw, pl);
    char out[POP3U_PASS_MAX + 1];
    assert_int_equal(pop3u_open(&f->key, "alice", "gmail", nonce, ct, pl + POP3U_TAG_LEN, out), 0);
    assert_string_equal(out, pw);
    /* a fresh nonce each time */
    assert_int_equal(pop3u_seal(&f->key, "alice", "gmail", pw, pl, nonce2, ct2), 0);
    assert_memory_not_equal(nonce, nonce2, POP3U_NONCE_LEN);
    assert_memory_not_equal(ct, ct2, pl);
    /* longest password */
    char big[POP3U_PASS_MAX + 1];
    memset(big, 'p', POP3U_PASS_MAX);
    big[POP3U_PASS_MAX] = '\0';
    assert_int_equal(pop3u_seal(&f->key, "a", "b", big, POP3U_PASS_MAX, nonce, ct), 0);
    assert_int_equal(pop3u_open(&f->key, "a", "b", nonce, ct, POP3U_PASS_MAX + POP3U_TAG_LEN, out),
                     0);
    assert_string_equal(out, big);
    assert_int_equal(pop3u_seal(&f->key, "a", "b", big, POP3U_PASS_MAX + 1, nonce, ct), PST_EINVAL);
}

static void test_seal_failures(void **state)
{
    struct fix *f = *state;
    unsigned char nonce[POP3U_NONCE_LEN], ct[64];
    const char *pw = "s3cret";
    size_t cl = strlen(pw) + POP3U_TAG_LEN;
    assert_int_equal(pop3u_seal(&f->key, "alice", "gmail", pw, strlen(pw), nonce, ct), 0);
    char out[POP3U_PASS_MAX + 1];
    memset(out, 'Z', sizeof(out));
    /* wrong key */
    struct pop3u_key other = f->key;
    other.k[0] ^= 1;
    assert_int_equal(pop3u_open(&other, "alice", "gmail", nonce, ct, cl, out), PST_EAUTH);
    assert_int_equal(out[0], 'Z'); /* nothing written */
    /* other user / other upstream (AAD) */
    assert_int_equal(pop3u_open(&f->key, "bob", "gmail", nonce, ct, cl, out), PST_EAUTH);
    assert_int_equal(pop3u_open(&f->key, "alice", "gmx", nonce, ct, cl, out), PST_EAUTH);
    assert_int_equal(pop3u_open(&f->key, "alicegmail", "", nonce, ct, cl, out), PST_EAUTH);
    /* tampered nonce, ciphertext, tag */
    for (size_t i = 0; i < POP3U_NONCE_LEN; i++) {
        nonce[i] ^= 0x80;
        assert_int_equal(pop3u_open(&f->key, "alice", "gmail", nonce, ct, cl, out), PST_EAUTH);
        nonce[i] ^= 0x80;
    }
    for (size_t i = 0; i < cl; i++) {
        ct[i] ^= 0x01;
        assert_int_equal(pop3u_open(&f->key, "alice", "gmail", nonce, ct, cl, out), PST_EAUTH);
        ct[i] ^= 0x01;
    }
    /* truncated */
    assert_int_equal(pop3u_open(&f->key, "alice", "gmail", nonce, ct, cl - 1, out), PST_EAUTH);
    assert_int_equal(pop3u_open(&f->key, "alice", "gmail", nonce, ct, POP3U_TAG_LEN - 1, out),
                     PST_EINVAL);
    assert_int_equal(out[0], 'Z');
    /* untouched still opens */
    assert_int_equal(pop3u_open(&f->key, "alice", "gmail", nonce, ct, cl, out), 0);
    assert_string_equal(out, pw);
}

static void test_add_get_list_remove(void **state)
{
    struct fix *f = *state;
    struct pop3u_upstream a = up("Alice", "gmail", "pop.gmail.com", POP3U_TLS_IMPLICIT);
    struct pop3u_upstream b = up("alice", "old-isp", "mail.old.example", POP3U_TLS_STLS);
    struct pop3u_upstream c = up("bob", "local", "127.0.0.1", POP3U_TLS_NONE);
    c.port = 1100;
    assert_int_equal(pop3u_add(f->db, &f->key, &a, "pw-a"), 0);
    assert_int_equal(pop3u_add(f->db, &f->key, &b, "pw b with spaces"), 0);
    assert_int_equal(pop3u_add(f->db, &f->key, &c, "pw-c"), 0);
    assert_int_equal(pop3u_add(f->db, &f->key, &a, "again"), PST_EEXIST);

    /* the password is not stored in clear text */
    sqlite3_stmt *st;
    assert_int_equal(db_stmt(f->db,
                             "SELECT count(*) FROM pop3_upstreams WHERE "
                             "instr(pass_ct, 'pw-a') > 0",
                             &st),
                     0);
    assert_int_equal(db_step(st), 1);
    assert_int_equal(sqlite3_column_int(st, 0), 0);
    db_stmt_done(st);

    struct pop3u_upstream g;
    assert_int_equal(pop3u_get(f->db, &f->key, "ALICE", "gmail", &g), 0);
    assert_string_equal(g.user, "alice");
    assert_string_equal(g.host, "pop.gmail.com");
    assert_int_equal(g.port, 995);
    assert_int_equal(g.tls, POP3U_TLS_IMPLICIT);
    assert_string_equal(g.username, "Alice@old.example");
    assert_string_equal(g.password, "pw-a");
    assert_int_equal(g.pass_status, 0);
    assert_true(g.created > 0);
    pop3u_upstream_wipe(&g);
    assert_string_equal(g.password, "");
    assert_int_equal(pop3u_get(f->db, &f->key, "alice", "nope", &g), PST_ENOENT);

    struct pop3u_upstream *l;
    size_t n;
    assert_int_equal(pop3u_list(f->db, &f->key, "alice", &l, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(l[0].id, "gmail");
    assert_string_equal(l[1].id, "old-isp");
    assert_string_equal(l[1].password, "pw b with spaces");
    assert_int_equal(l[1].tls, POP3U_TLS_STLS);
    pop3u_list_free(&l, n);
    assert_null(l);
    /* without the key: no passwords */
    assert_int_equal(pop3u_list(f->db, NULL, NULL, &l, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(l[2].user, "bob");
    assert_int_equal(l[2].tls, POP3U_TLS_NONE);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(l[i].password, "");
        assert_int_equal(l[i].pass_status, PST_ENOENT);
    }
    pop3u_list_free(&l, n);
    /* none */
    assert_int_equal(pop3u_list(f->db, &f->key, "carol", &l, &n), 0);
    assert_int_equal(n, 0);
    assert_null(l);

    assert_int_equal(pop3u_stat_session(f->db, "alice", "gmail"), 0);
    assert_int_equal(pop3u_remove(f->db, "alice", "gmail"), 0);
    assert_int_equal(pop3u_remove(f->db, "alice", "gmail"), PST_ENOENT);
    assert_int_equal(pop3u_get(f->db, &f->key, "alice", "gmail", &g), PST_ENOENT);
    struct pop3u_stat *s;
    assert_int_equal(pop3u_stat_list(f->db, "alice", &s, &n), 0);
    assert_int_equal(n, 0); /* its statistics went with it */
    free(s);
}

static void test_wrong_key_and_tamper_in_db(void **state)
{
    struct fix *f = *state;
    struct pop3u_upstream a = up("alice", "one", "pop.one.example", POP3U_TLS_IMPLICIT);
    struct pop3u_upstream b = up("alice", "two", "pop.two.example", POP3U_TLS_IMPLICIT);
    assert_int_equal(pop3u_add(f->db, &f->key, &a, "pw-one"), 0);
    assert_int_equal(pop3u_add(f->db, &f->key, &b, "pw-two"), 0);

    struct pop3u_key wrong = f->key;
    wrong.k[31] ^= 0x55;
    struct pop3u_upstream g;
    memset(&g, 'Q', sizeof(g));
    assert_int_equal(pop3u_get(f->db, &wrong, "alice", "one", &g), PST_EAUTH);
    assert_string_equal(g.password, "");

    /* flip a byte of one record's ciphertext: that record fails, the other still opens */
    assert_int_equal(db_exec(f->db, "UPDATE pop3_upstreams SET pass_ct = CAST("
                                    "(CASE WHEN substr(pass_ct, 1, 1) = x'00' THEN x'01' ELSE "
                                    "x'00' END) || substr(pass_ct, 2) AS BLOB) WHERE id = 'one'"),
                     0);
    assert_int_equal(pop3u_get(f->db, &f->key, "alice", "one", &g), PST_EAUTH);
    struct pop3u_upstream *l;
    size_t n;
    assert_int_equal(pop3u_list(f->db, &f->key, "alice", &l, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(l[0].pass_status, PST_EAUTH);
    assert_string_equal(l[0].password, "");
    assert_int_equal(l[1].pass_status, 0);
    assert_string_equal(l[1].password, "pw-two");
    pop3u_list_free(&l, n);

    /* a record copied to another id does not open (AAD) */
    assert_int_equal(db_exec(f->db, "INSERT INTO pop3_upstreams SELECT user, 'three', host, port, "
                                    "tls, username, pass_nonce, pass_ct, created FROM "
                                    "pop3_upstreams WHERE id = 'two'"),
                     0);
    assert_int_equal(pop3u_get(f->db, &f->key, "alice", "three", &g), PST_EAUTH);
    assert_int_equal(pop3u_get(f->db, &f->key, "alice", "two", &g), 0);
    assert_string_equal(g.password, "pw-two");
    pop3u_upstream_wipe(&g);
}

static void test_validation(void **state)
{
    struct fix *f = *state;
    struct pop3u_upstream u;
    /* TLS none: loopback only */
    const char *loop[] = {"127.0.0.1", "127.1.2.3",  "::1",
                          "localhost", "LOCALHOST.", "::ffff:127.0.0.1"};
    const char *notloop[] = {"10.0.0.1",  "pop.example.com", "::2", "localhost.example.com",
                             "128.0.0.1", "::ffff:10.0.0.1"};
    for (size_t i = 0; i < sizeof(loop) / sizeof(loop[0]); i++) {
        assert_int_equal(pop3u_host_is_loopback(loop[i]), 1);
        char id[16];
        snprintf(id, sizeof(id), "l%zu", i);
        u = up("alice", id, loop[i], POP3U_TLS_NONE);
        assert_int_equal(pop3u_add(f->db, &f->key, &u, "pw"), 0);
    }
    for (size_t i = 0; i < sizeof(notloop) / sizeof(notloop[0]); i++) {
        assert_int_equal(pop3u_host_is_loopback(notloop[i]), 0);
        u = up("alice", "n", notloop[i], POP3U_TLS_NONE);
        assert_int_equal(pop3u_add(f->db, &f->key, &u, "pw"), PST_EPERM);
        u.tls = POP3U_TLS_STLS;
        assert_int_equal(pop3u_add(f->db, &f->key, &u, "pw"), 0);
        assert_int_equal(pop3u_remove(f->db, "alice", "n"), 0);
    }
    /* bad fields */
    u = up("alice", "x", "pop.example.com", POP3U_TLS_IMPLICIT);
    assert_int_equal(pop3u_add(f->db, &f->key, &u, ""), PST_EINVAL);
    assert_int_equal(pop3u_add(f->db, &f->key, &u, "pw\r\nDELE 1"), PST_EINVAL);
    char longpw[POP3U_PASS_MAX + 2];
    memset(longpw, 'p', sizeof(longpw) - 1);
    longpw[sizeof(longpw) - 1] = '\0';
    assert_int_equal(pop3u_add(f->db, &f->key, &u, longpw), PST_EINVAL);
    struct pop3u_upstream v = u;
    snprintf(v.username, sizeof(v.username), "a\nb");
    assert_int_equal(pop3u_add(f->db, &f->key, &v, "pw"), PST_EINVAL);
    v = u;
    v.username[0] = '\0';
    assert_int_equal(pop3u_add(f->db, &f->key, &v, "pw"), PST_EINVAL);
    const char *badids[] = {"", "a b", "a/b", "../x", "é"};
    for (size_t i = 0; i < sizeof(badids) / sizeof(badids[0]); i++) {
        v = u;
        snprintf(v.id, sizeof(v.id), "%s", badids[i]);
        assert_int_equal(pop3u_add(f->db, &f->key, &v, "pw"), PST_EINVAL);
    }
    const char *badhosts[] = {"", "a..b", "-a.com", "a-.com", "a b", "a;b", "[::1]"};
    for (size_t i = 0; i < sizeof(badhosts) / sizeof(badhosts[0]); i++) {
        v = u;
        snprintf(v.host, sizeof(v.host), "%s", badhosts[i]);
        assert_int_equal(pop3u_add(f->db, &f->key, &v, "pw"), PST_EINVAL);
    }
    v = u;
    snprintf(v.user, sizeof(v.user), "../etc");
    assert_int_equal(pop3u_add(f->db, &f->key, &v, "pw"), PST_EINVAL);
    v = u;
    v.port = 0;
    assert_int_equal(pop3u_add(f->db, &f->key, &v, "pw"), PST_EINVAL);
    v.port = 65536;
    assert_int_equal(pop3u_add(f->db, &f->key, &v, "pw"), PST_EINVAL);
    v = u;
    v.tls = (enum pop3u_tls)9;
    assert_int_equal(pop3u_add(f->db, &f->key, &v, "pw"), PST_EINVAL);

    enum pop3u_tls t;
    assert_int_equal(pop3u_tls_parse("STLS", &t), 0);
    assert_int_equal(t, POP3U_TLS_STLS);
    assert_int_equal(pop3u_tls_parse("starttls", &t), PST_EINVAL);
    assert_string_equal(pop3u_tls_name(POP3U_TLS_NONE), "none");
}

static void test_stats(void **state)
{
    struct fix *f = *state;
    assert_int_equal(pop3u_stat_session(f->db, "alice", ""), 0);
    assert_int_equal(pop3u_stat_session(f->db, "alice", ""), 0);
    assert_int_equal(pop3u_stat_session(f->db, "alice", "gmail"), 0);
    assert_int_equal(pop3u_stat_message(f->db, "alice", "gmail", 1000), 0);
    assert_int_equal(pop3u_stat_message(f->db, "alice", "gmail", 24), 0);
    assert_int_equal(pop3u_stat_error(f->db, "alice", "gmail", "login refused:\r\n[AUTH] x"), 0);
    assert_int_equal(pop3u_stat_message(f->db, "alice", "gmail", 1), 0); /* keeps last_error */
    assert_int_equal(pop3u_stat_session(f->db, "bob", "x"), 0);
    assert_int_equal(pop3u_stat_add(f->db, "alice", "gmail", -1, 0, 0, 0, NULL), PST_EINVAL);
    assert_int_equal(pop3u_stat_add(f->db, "alice", "bad id", 1, 0, 0, 0, NULL), PST_EINVAL);

    struct pop3u_stat *s;
    size_t n;
    assert_int_equal(pop3u_stat_list(f->db, "alice", &s, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(s[0].upstream, "");
    assert_int_equal(s[0].sessions, 2);
    assert_string_equal(s[1].upstream, "gmail");
    assert_int_equal(s[1].sessions, 1);
    assert_int_equal(s[1].messages, 3);
    assert_int_equal(s[1].bytes, 1025);
    assert_int_equal(s[1].errors, 1);
    assert_string_equal(s[1].last_error, "login refused:  [AUTH] x");
    assert_true(s[1].updated > 0);
    free(s);
    assert_int_equal(pop3u_stat_list(f->db, NULL, &s, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(s[2].user, "bob");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_key_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_get_list_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_key_and_tamper_in_db, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
