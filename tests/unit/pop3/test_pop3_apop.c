/*
 * test_pop3_apop.c - APOP secrets and digests: the RFC 1939 7 example,
 * digest checks against wrong, short, long, upper-case, NUL-bearing and
 * empty digests, timestamps (syntax, uniqueness, bad host, small buffer),
 * secret rules, the encrypted store (set, replace, clear, other user's row,
 * wrong key, tampering, an upstream ciphertext swapped in) and the worker's
 * verify step (no secret, dummy secret never accepted).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sqlite3.h>

#include "lib/db.h"
#include "pop3/pop3_apop.h"
#include "../testutil.h"

#define RFC_TS "<1896.697170952@dbc.mtview.ca.us>"
#define RFC_SECRET "tanstaaf"
#define RFC_DIGEST "c4c9334bac560ecc979e58001b3e22fb"

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
    snprintf(f->dir, sizeof(f->dir), "%s/pop3apop_XXXXXX", t && t[0] ? t : "/tmp");
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

static void test_rfc_example(void **state)
{
    char hex[POP3_APOP_DIGEST_HEX + 1];
    assert_int_equal(pop3_apop_digest(RFC_TS, RFC_SECRET, strlen(RFC_SECRET), hex), 0);
    assert_string_equal(hex, RFC_DIGEST);
    assert_int_equal(pop3_apop_check(RFC_TS, RFC_SECRET, 8, RFC_DIGEST, 32), 0);
}

static void test_check_hostile(void **state)
{
    const char *s = RFC_SECRET;
    /* upper-case hex is the same digest */
    assert_int_equal(pop3_apop_check(RFC_TS, s, 8, "C4C9334BAC560ECC979E58001B3E22FB", 32), 0);
    /* one digit off, first and last */
    assert_int_equal(pop3_apop_check(RFC_TS, s, 8, "d4c9334bac560ecc979e58001b3e22fb", 32),
                     PST_EAUTH);
    assert_int_equal(pop3_apop_check(RFC_TS, s, 8, "c4c9334bac560ecc979e58001b3e22fc", 32),
                     PST_EAUTH);
    /* truncated, over-long, empty */
    assert_int_equal(pop3_apop_check(RFC_TS, s, 8, RFC_DIGEST, 31), PST_EAUTH);
    assert_int_equal(pop3_apop_check(RFC_TS, s, 8, RFC_DIGEST "0", 33), PST_EAUTH);
    assert_int_equal(pop3_apop_check(RFC_TS, s, 8, "", 0), PST_EAUTH);
    /* a NUL inside */
    char withnul[33];
    memcpy(withnul, RFC_DIGEST, 32);
    withnul[5] = '\0';
    assert_int_equal(pop3_apop_check(RFC_TS, s, 8, withnul, 32), PST_EAUTH);
    /* the right digest for another timestamp or secret */
    assert_int_equal(pop3_apop_check("<1.2@x>", s, 8, RFC_DIGEST, 32), PST_EAUTH);
    assert_int_equal(pop3_apop_check(RFC_TS, "tanstaaF", 8, RFC_DIGEST, 32), PST_EAUTH);
    assert_int_equal(pop3_apop_check(RFC_TS, s, 7, RFC_DIGEST, 32), PST_EAUTH);
}

static void test_timestamp(void **state)
{
    char a[POP3_APOP_TIMESTAMP_MAX], b[POP3_APOP_TIMESTAMP_MAX];
    int n = pop3_apop_timestamp(a, sizeof a, "pop.example.org");
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(a));
    assert_int_equal(a[0], '<');
    assert_int_equal(a[n - 1], '>');
    assert_non_null(strstr(a, "@pop.example.org>"));
    assert_non_null(strchr(a, '.'));
    assert_null(strchr(a, ' '));
    assert_true(pop3_apop_timestamp(b, sizeof b, "pop.example.org") > 0);
    assert_string_not_equal(a, b); /* unique per call (random part) */
    /* a host that would break the syntax is replaced */
    assert_true(pop3_apop_timestamp(a, sizeof a, "evil> host\r\n") > 0);
    assert_non_null(strstr(a, "@localhost>"));
    assert_true(pop3_apop_timestamp(a, sizeof a, NULL) > 0);
    assert_true(pop3_apop_timestamp(a, sizeof a, "") > 0);
    char longhost[400];
    memset(longhost, 'a', sizeof longhost - 1);
    longhost[sizeof longhost - 1] = '\0';
    assert_true(pop3_apop_timestamp(a, sizeof a, longhost) > 0);
    assert_non_null(strstr(a, "@localhost>"));
    /* too small a buffer */
    char small[10];
    assert_int_equal(pop3_apop_timestamp(small, sizeof small, "h"), PST_ELIMIT);
    assert_string_equal(small, "");
}

static void test_secret_rules(void **state)
{
    assert_true(pop3_apop_secret_valid("12345678", 8));
    assert_false(pop3_apop_secret_valid("1234567", 7));
    assert_false(pop3_apop_secret_valid(NULL, 8));
    assert_false(pop3_apop_secret_valid("1234\r678", 8));
    assert_false(pop3_apop_secret_valid("1234\n678", 8));
    assert_false(pop3_apop_secret_valid("1234\0"
                                        "678",
                                        8));
    char big[POP3_APOP_SECRET_MAX + 2];
    memset(big, 'x', sizeof big);
    assert_true(pop3_apop_secret_valid(big, POP3_APOP_SECRET_MAX));
    assert_false(pop3_apop_secret_valid(big, POP3_APOP_SECRET_MAX + 1));
}

static void test_store_roundtrip(void **state)
{
    struct fix *f = *state;
    char secret[POP3_APOP_SECRET_MAX + 1];
    size_t len = 0;
    assert_int_equal(pop3_apop_get_secret(f->db, &f->key, "alice", secret, &len), PST_ENOENT);
    assert_int_equal(pop3_apop_set(f->db, &f->key, "Alice", "first secret", 12), 0);
    assert_int_equal(pop3_apop_get_secret(f->db, &f->key, "alice", secret, &len), 0);
    assert_int_equal(len, 12);
    assert_string_equal(secret, "first secret");
    /* replace */
    assert_int_equal(pop3_apop_set(f->db, &f->key, "alice", "second secret", 13), 0);
    assert_int_equal(pop3_apop_get_secret(f->db, &f->key, "ALICE", secret, &len), 0);
    assert_string_equal(secret, "second secret");
    /* the stored row is not the plaintext */
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db_handle(f->db),
                                        "SELECT count(*) FROM pop3_apop WHERE instr(secret_ct, "
                                        "CAST('second' AS BLOB)) > 0",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 0);
    sqlite3_finalize(st);
    /* clear */
    assert_int_equal(pop3_apop_clear(f->db, "alice"), 0);
    assert_int_equal(pop3_apop_clear(f->db, "alice"), PST_ENOENT);
    assert_int_equal(pop3_apop_get_secret(f->db, &f->key, "alice", secret, &len), PST_ENOENT);
    /* bad input */
    assert_int_equal(pop3_apop_set(f->db, &f->key, "../etc", "12345678", 8), PST_EINVAL);
    assert_int_equal(pop3_apop_set(f->db, &f->key, "", "12345678", 8), PST_EINVAL);
    assert_int_equal(pop3_apop_set(f->db, &f->key, "bob", "short", 5), PST_EINVAL);
    assert_int_equal(pop3_apop_set(f->db, &f->key, "bob", "bad\nsecret", 10), PST_EINVAL);
    assert_int_equal(pop3_apop_clear(f->db, "bad name!"), PST_EINVAL);
    assert_int_equal(pop3_apop_fetch(f->db, NULL, NULL), PST_EINVAL);
}

static void test_store_tamper(void **state)
{
    struct fix *f = *state;
    char secret[POP3_APOP_SECRET_MAX + 1];
    size_t len = 0;
    assert_int_equal(pop3_apop_set(f->db, &f->key, "alice", "alice secret", 12), 0);
    struct pop3_apop_sealed s;
    assert_int_equal(pop3_apop_fetch(f->db, "alice", &s), 0);
    /* another user's name: the AAD differs */
    assert_int_equal(pop3_apop_unseal(&f->key, "bob", &s, secret, &len), PST_EAUTH);
    /* wrong key */
    struct pop3u_key other = f->key;
    other.k[0] ^= 1;
    assert_int_equal(pop3_apop_unseal(&other, "alice", &s, secret, &len), PST_EAUTH);
    /* flipped bits in nonce, ciphertext, tag */
    struct pop3_apop_sealed t = s;
    t.nonce[3] ^= 0x40;
    assert_int_equal(pop3_apop_unseal(&f->key, "alice", &t, secret, &len), PST_EAUTH);
    t = s;
    t.ct[0] ^= 1;
    assert_int_equal(pop3_apop_unseal(&f->key, "alice", &t, secret, &len), PST_EAUTH);
    t = s;
    t.ct[t.ctlen - 1] ^= 1;
    assert_int_equal(pop3_apop_unseal(&f->key, "alice", &t, secret, &len), PST_EAUTH);
    t = s;
    t.ctlen = 3;
    assert_int_equal(pop3_apop_unseal(&f->key, "alice", &t, secret, &len), PST_EINVAL);
    /* an upstream password sealed for alice under the same key does not open as her secret */
    assert_int_equal(pop3u_seal(&f->key, "alice", "apop", "upstream pw", 11, t.nonce, t.ct), 0);
    t.ctlen = 11 + POP3U_TAG_LEN;
    assert_int_equal(pop3_apop_unseal(&f->key, "alice", &t, secret, &len), PST_EAUTH);
    /* a row copied to bob in the database fails to open for bob */
    assert_int_equal(db_exec(f->db, "INSERT INTO pop3_apop (user, nonce, secret_ct, created) "
                                    "SELECT 'bob', nonce, secret_ct, created FROM pop3_apop "
                                    "WHERE user = 'alice'"),
                     0);
    assert_int_equal(pop3_apop_get_secret(f->db, &f->key, "bob", secret, &len), PST_EAUTH);
}

static void test_verify_sealed(void **state)
{
    struct fix *f = *state;
    assert_int_equal(pop3_apop_set(f->db, &f->key, "alice", RFC_SECRET, 8), 0);
    struct pop3_apop_sealed s;
    assert_int_equal(pop3_apop_fetch(f->db, "alice", &s), 0);
    assert_int_equal(pop3_apop_verify_sealed(&f->key, "alice", &s, RFC_TS, RFC_DIGEST, 32), 0);
    assert_int_equal(pop3_apop_verify_sealed(&f->key, "alice", &s, RFC_TS, RFC_DIGEST, 31),
                     PST_EAUTH);
    assert_int_equal(pop3_apop_verify_sealed(&f->key, "bob", &s, RFC_TS, RFC_DIGEST, 32),
                     PST_EAUTH);
    assert_int_equal(pop3_apop_verify_sealed(NULL, "alice", &s, RFC_TS, RFC_DIGEST, 32), PST_EAUTH);
    /* no secret: the dummy is used for timing but never accepted, even with its own digest */
    char hex[POP3_APOP_DIGEST_HEX + 1];
    const char *dummy = "postern-apop-dummy-secret";
    assert_int_equal(pop3_apop_digest(RFC_TS, dummy, strlen(dummy), hex), 0);
    assert_int_equal(pop3_apop_verify_sealed(&f->key, "carol", NULL, RFC_TS, hex, 32), PST_EAUTH);
    assert_int_equal(pop3_apop_verify_sealed(&f->key, "carol", NULL, RFC_TS, RFC_DIGEST, 32),
                     PST_EAUTH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_example),
        cmocka_unit_test(test_check_hostile),
        cmocka_unit_test(test_timestamp),
        cmocka_unit_test(test_secret_rules),
        cmocka_unit_test_setup_teardown(test_store_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_tamper, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_sealed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
