/*
 * test_userdb.c - users: add/exists/verify/del/passwd/list, name rules, hashing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/userdb.h"

struct fx {
    char dir[512];
    char path[600];
    struct userdb *u;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    const char *t = getenv("TMPDIR");

    snprintf(f->dir, sizeof(f->dir), "%s/udbtest.XXXXXX", t && *t ? t : "/tmp");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/postern.db", f->dir);
    if (userdb_open(f->path, &f->u) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char p[700];

    userdb_close(&f->u);
    unlink(f->path);
    snprintf(p, sizeof(p), "%s-wal", f->path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", f->path);
    unlink(p);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void test_names(void **state)
{
    char n64[65], n65[66];

    memset(n64, 'a', 64);
    n64[64] = '\0';
    memset(n65, 'a', 65);
    n65[65] = '\0';
    assert_true(userdb_name_valid("alice"));
    assert_true(userdb_name_valid("Alice.B_c-9"));
    assert_true(userdb_name_valid(n64));
    assert_false(userdb_name_valid(n65));
    assert_false(userdb_name_valid(""));
    assert_false(userdb_name_valid(NULL));
    assert_false(userdb_name_valid("../x"));
    assert_false(userdb_name_valid("a/b"));
    assert_false(userdb_name_valid(".hidden"));
    assert_false(userdb_name_valid(".."));
    assert_false(userdb_name_valid("-opt"));
    assert_false(userdb_name_valid("a b"));
    assert_false(userdb_name_valid("a@b"));
    assert_false(userdb_name_valid("caf\xc3\xa9"));
    assert_false(userdb_name_valid("a\nb"));
}

static void test_add_verify(void **state)
{
    struct fx *f = *state;
    char hash[USERDB_HASH_MAX];

    assert_int_equal(userdb_add(f->u, "Alice", "s3cret pass"), 0);
    assert_int_equal(userdb_exists(f->u, "alice"), 1);
    assert_int_equal(userdb_exists(f->u, "ALICE"), 1);
    assert_int_equal(userdb_exists(f->u, "bob"), 0);
    assert_int_equal(userdb_exists(f->u, "../x"), 0);
    assert_int_equal(userdb_add(f->u, "alice", "other"), PST_EEXIST);
    assert_int_equal(userdb_verify(f->u, "alice", "s3cret pass"), 0);
    assert_int_equal(userdb_verify(f->u, "aLiCe", "s3cret pass"), 0);
    assert_int_equal(userdb_verify(f->u, "alice", "s3cret pas"), PST_EAUTH);
    assert_int_equal(userdb_verify(f->u, "alice", ""), PST_EAUTH);
    assert_int_equal(userdb_verify(f->u, "nobody", "s3cret pass"), PST_EAUTH);
    assert_int_equal(userdb_verify(f->u, "../x", "s3cret pass"), PST_EAUTH);

    assert_int_equal(userdb_get_hash(f->u, "alice", hash, sizeof(hash)), 0);
    assert_memory_equal(hash, "$y$", 3);
    assert_null(strstr(hash, "s3cret"));
    assert_int_equal(userdb_hash_verify(hash, "s3cret pass"), 0);
    assert_int_equal(userdb_hash_verify(hash, "wrong"), PST_EAUTH);
    assert_int_equal(userdb_hash_verify(NULL, "s3cret pass"), PST_EAUTH);
    assert_int_equal(userdb_hash_verify("garbage", "s3cret pass"), PST_EAUTH);
    assert_int_equal(userdb_hash_verify("", "x"), PST_EAUTH);
    assert_int_equal(userdb_get_hash(f->u, "alice", hash, 10), PST_ELIMIT);
    assert_int_equal(userdb_get_hash(f->u, "nobody", hash, sizeof(hash)), PST_ENOENT);

    /* two users with the same password get different salts */
    char h2[USERDB_HASH_MAX];
    assert_int_equal(userdb_add(f->u, "bob", "s3cret pass"), 0);
    assert_int_equal(userdb_get_hash(f->u, "bob", h2, sizeof(h2)), 0);
    assert_string_not_equal(hash, h2);
}

static void test_bad_input(void **state)
{
    struct fx *f = *state;
    char n65[66], *longpw = malloc(2000);

    memset(n65, 'b', 65);
    n65[65] = '\0';
    memset(longpw, 'p', 1999);
    longpw[1999] = '\0';
    assert_int_equal(userdb_add(f->u, "../x", "pw"), PST_EINVAL);
    assert_int_equal(userdb_add(f->u, "a/b", "pw"), PST_EINVAL);
    assert_int_equal(userdb_add(f->u, "", "pw"), PST_EINVAL);
    assert_int_equal(userdb_add(f->u, n65, "pw"), PST_EINVAL);
    assert_int_equal(userdb_add(f->u, "ok", ""), PST_EINVAL);
    assert_int_equal(userdb_add(f->u, "ok", NULL), PST_EINVAL);
    assert_int_equal(userdb_add(f->u, "ok", longpw), PST_ELIMIT);
    assert_int_equal(userdb_exists(f->u, "ok"), 0);
    assert_int_equal(userdb_del(f->u, "../x"), PST_EINVAL);
    assert_int_equal(userdb_passwd(f->u, "a/b", "pw"), PST_EINVAL);
    free(longpw);
}

static void test_del_passwd(void **state)
{
    struct fx *f = *state;

    assert_int_equal(userdb_add(f->u, "carol", "one"), 0);
    assert_int_equal(userdb_passwd(f->u, "CAROL", "two"), 0);
    assert_int_equal(userdb_verify(f->u, "carol", "one"), PST_EAUTH);
    assert_int_equal(userdb_verify(f->u, "carol", "two"), 0);
    assert_int_equal(userdb_passwd(f->u, "carol", ""), PST_EINVAL);
    assert_int_equal(userdb_passwd(f->u, "nobody", "x"), PST_ENOENT);
    assert_int_equal(userdb_del(f->u, "Carol"), 0);
    assert_int_equal(userdb_exists(f->u, "carol"), 0);
    assert_int_equal(userdb_del(f->u, "carol"), PST_ENOENT);
    assert_int_equal(userdb_verify(f->u, "carol", "two"), PST_EAUTH);
}

struct list_state {
    int n;
    char names[8][USERDB_NAME_MAX + 1];
    int stop_after;
};

static int list_cb(void *arg, const char *name, long long created)
{
    struct list_state *s = arg;

    assert_true(created > 1600000000);
    snprintf(s->names[s->n], sizeof(s->names[s->n]), "%s", name);
    s->n++;
    return s->stop_after != 0 && s->n >= s->stop_after;
}

static void test_list(void **state)
{
    struct fx *f = *state;
    struct list_state s = {0};

    assert_int_equal(userdb_add(f->u, "zed", "x"), 0);
    assert_int_equal(userdb_add(f->u, "Amy", "x"), 0);
    assert_int_equal(userdb_add(f->u, "mike", "x"), 0);
    assert_int_equal(userdb_list(f->u, list_cb, &s), 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.names[0], "amy");
    assert_string_equal(s.names[1], "mike");
    assert_string_equal(s.names[2], "zed");

    memset(&s, 0, sizeof(s));
    s.stop_after = 2;
    assert_int_equal(userdb_list(f->u, list_cb, &s), 0);
    assert_int_equal(s.n, 2);

    /* persisted: reopen */
    userdb_close(&f->u);
    assert_null(f->u);
    assert_int_equal(userdb_open(f->path, &f->u), 0);
    assert_int_equal(userdb_exists(f->u, "mike"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test_setup_teardown(test_add_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_del_passwd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
