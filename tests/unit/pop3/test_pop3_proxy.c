/*
 * test_pop3_proxy.c - the proxy's merge logic: merged unique-ids (form,
 * injectivity, stability, length), listing tables fed with hostile
 * entries, the merged order and the split of deletions per source.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pop3/pop3_proxy.h"

static int uidl_ok(const char *u)
{
    size_t n = strlen(u);
    if (n < 1 || n > POP3_UIDL_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)u[i] < 0x21 || (unsigned char)u[i] > 0x7e)
            return 0;
    return 1;
}

static void test_uidl_forms(void **state)
{
    char out[POP3_UIDL_MAX + 1];
    /* local Maildir ids are kept (clients that kept mail do not fetch it again) */
    assert_int_equal(pop3px_uidl(NULL, "1700000000.M1P2.host", 1, 10, 0, out), 0);
    assert_string_equal(out, "1700000000.M1P2.host");
    /* upstream: "<id>:<uid>" */
    assert_int_equal(pop3px_uidl("gmail", "00000001abcd", 7, 10, 0, out), 0);
    assert_string_equal(out, "gmail:00000001abcd");
    /* exactly 70 fits */
    char uid[80];
    memset(uid, 'u', 64);
    uid[64] = '\0';
    assert_int_equal(pop3px_uidl("abcde", uid, 1, 1, 0, out), 0); /* 5 + 1 + 64 = 70 */
    assert_int_equal(strlen(out), 70);
    assert_memory_equal(out, "abcde:", 6);
    /* 71 does not: hashed */
    assert_int_equal(pop3px_uidl("abcdef", uid, 1, 1, 0, out), 0);
    assert_int_equal(out[0], '~');
    assert_int_equal(strlen(out), 1 + POP3PX_HASH_HEX);
    assert_true(uidl_ok(out));
}

static void test_uidl_stable_and_distinct(void **state)
{
    char a[POP3_UIDL_MAX + 1], b[POP3_UIDL_MAX + 1];
    char uid[71];
    memset(uid, 'x', 70);
    uid[70] = '\0';
    assert_int_equal(pop3px_uidl("one", uid, 1, 5, 0, a), 0);
    assert_int_equal(pop3px_uidl("one", uid, 9, 99, 0, b), 0); /* msgno/size do not matter */
    assert_string_equal(a, b);
    assert_int_equal(pop3px_uidl("two", uid, 1, 5, 0, b), 0); /* the source does */
    assert_string_not_equal(a, b);
    assert_int_equal(pop3px_uidl("one", uid, 1, 5, 1, b), 0); /* so does the repeat number */
    assert_string_not_equal(a, b);
    /* ids with dots cannot be confused: "a.b" + "c" vs "a" + "b.c" */
    assert_int_equal(pop3px_uidl("a.b", "c", 1, 1, 0, a), 0);
    assert_int_equal(pop3px_uidl("a", "b.c", 1, 1, 0, b), 0);
    assert_string_not_equal(a, b);
    /* a local id that looks like a hashed one is itself hashed (in another domain) */
    char h[POP3_UIDL_MAX + 1];
    assert_int_equal(pop3px_uidl("one", uid, 1, 5, 0, h), 0);
    assert_int_equal(pop3px_uidl(NULL, h, 1, 5, 0, a), 0);
    assert_int_equal(a[0], '~');
    assert_string_not_equal(a, h);
    /* no UIDL from the server: depends on msgno and size */
    assert_int_equal(pop3px_uidl("one", NULL, 1, 5, 0, a), 0);
    assert_int_equal(pop3px_uidl("one", NULL, 2, 5, 0, b), 0);
    assert_true(uidl_ok(a));
    assert_string_not_equal(a, b);
}

static void test_uidl_hostile(void **state)
{
    char out[POP3_UIDL_MAX + 1];
    char longuid[200];
    memset(longuid, 'a', sizeof longuid - 1);
    longuid[sizeof longuid - 1] = '\0';
    assert_int_equal(pop3px_uidl("x", longuid, 1, 1, 0, out), PST_EINVAL);
    assert_int_equal(pop3px_uidl("x", "", 1, 1, 0, out), PST_EINVAL);
    assert_int_equal(pop3px_uidl("x", "a b", 1, 1, 0, out), PST_EINVAL);
    assert_int_equal(pop3px_uidl("x", "a\x7f", 1, 1, 0, out), PST_EINVAL);
    assert_int_equal(pop3px_uidl("x", "\xc3\xa9", 1, 1, 0, out), PST_EINVAL);
    assert_int_equal(pop3px_uidl("", "a", 1, 1, 0, out), PST_EINVAL);
    assert_int_equal(pop3px_uidl("a:b", "a", 1, 1, 0, out), PST_EINVAL);
    assert_int_equal(pop3px_uidl(longuid, "a", 1, 1, 0, out), PST_EINVAL);
}

static void test_table(void **state)
{
    struct pop3px_table t;
    assert_int_equal(pop3px_table_init(&t, 3), 0);
    assert_int_equal(pop3px_table_size(&t, 1, 100), 0);
    assert_int_equal(pop3px_table_size(&t, 1, 100), PST_EINVAL); /* repeated */
    assert_int_equal(pop3px_table_size(&t, 0, 1), PST_EINVAL);
    assert_int_equal(pop3px_table_size(&t, 4, 1), PST_EINVAL); /* beyond STAT's count */
    assert_int_equal(pop3px_table_size(&t, UINT32_MAX, 1), PST_EINVAL);
    assert_int_equal(pop3px_table_uid(&t, 1, "abc"), 0);
    assert_int_equal(pop3px_table_uid(&t, 1, "abd"), PST_EINVAL);
    assert_int_equal(pop3px_table_uid(&t, 2, "has space"), PST_EINVAL);
    assert_int_equal(pop3px_table_uid(&t, 2, NULL), PST_EINVAL);
    assert_int_equal(pop3px_table_uid(&t, 2, ""), PST_EINVAL);
    assert_int_equal(pop3px_table_uid(&t, 9, "x"), PST_EINVAL);
    assert_true(t.msgs[0].has_size && t.msgs[0].has_uid);
    assert_false(t.msgs[1].has_uid);
    pop3px_table_free(&t);
    assert_null(t.msgs);
    assert_int_equal(pop3px_table_init(&t, 0), 0);
    assert_int_equal(pop3px_table_size(&t, 1, 1), PST_EINVAL);
    pop3px_table_free(&t);
    assert_int_equal(pop3px_table_init(&t, UINT32_MAX), PST_ELIMIT);
}

static void fill(struct pop3px_table *t, uint32_t n, const char *const *uids, const int *listed)
{
    assert_int_equal(pop3px_table_init(t, n), 0);
    for (uint32_t i = 0; i < n; i++) {
        if (!listed || listed[i])
            assert_int_equal(pop3px_table_size(t, i + 1, 100 + i), 0);
        if (uids && uids[i])
            assert_int_equal(pop3px_table_uid(t, i + 1, uids[i]), 0);
    }
}

static void test_merge(void **state)
{
    struct pop3px_table local, up1, up2, up3;
    const char *lu[] = {"L1", "L2"};
    const char *u1[] = {"a", "b", "c"};
    const char *u3[] = {"z", "dup", "dup", NULL};
    const int l3[] = {1, 1, 1, 1};
    const int l1[] = {1, 0, 1}; /* message 2 missing from LIST: left out */
    fill(&local, 2, lu, NULL);
    fill(&up1, 3, u1, l1);
    fill(&up2, 5, NULL, NULL); /* "down": not passed */
    fill(&up3, 4, u3, l3);
    const char *ids[] = {NULL, "one", "two", "three"};
    const struct pop3px_table *tabs[] = {&local, &up1, NULL, &up3};
    struct pop3px_msg *m = NULL;
    size_t n = 0;
    assert_int_equal(pop3px_merge(ids, tabs, 4, &m, &n), 0);
    assert_int_equal(n, 2 + 2 + 4);
    /* order: local, then upstreams in order, messages in their order */
    const uint32_t want_src[] = {0, 0, 1, 1, 3, 3, 3, 3};
    const uint32_t want_no[] = {1, 2, 1, 3, 1, 2, 3, 4};
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(m[i].src, want_src[i]);
        assert_int_equal(m[i].msgno, want_no[i]);
        assert_int_equal(m[i].info.size, 100 + want_no[i] - 1);
        assert_true(uidl_ok(m[i].info.uidl));
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(m[i].info.uidl, m[j].info.uidl);
    }
    assert_string_equal(m[0].info.uidl, "L1");
    assert_string_equal(m[2].info.uidl, "one:a");
    assert_string_equal(m[3].info.uidl, "one:c");
    assert_string_equal(m[4].info.uidl, "three:z");
    assert_string_equal(m[5].info.uidl, "three:dup"); /* first occurrence keeps its form */
    assert_int_equal(m[6].info.uidl[0], '~');         /* the repeat is hashed */
    assert_int_equal(m[7].info.uidl[0], '~');         /* no uid given */

    /* the same input gives the same ids (stability) */
    struct pop3px_msg *m2 = NULL;
    size_t n2 = 0;
    assert_int_equal(pop3px_merge(ids, tabs, 4, &m2, &n2), 0);
    assert_int_equal(n2, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(m[i].info.uidl, m2[i].info.uidl);
    free(m2);

    /* deletions split per source, in upstream numbers */
    unsigned char del[8] = {0, 1, 1, 1, 0, 0, 1, 0};
    uint32_t no[8];
    assert_int_equal(pop3px_deletions(m, n, del, 0, no), 1);
    assert_int_equal(no[0], 2);
    assert_int_equal(pop3px_deletions(m, n, del, 1, no), 2);
    assert_int_equal(no[0], 1);
    assert_int_equal(no[1], 3);
    assert_int_equal(pop3px_deletions(m, n, del, 2, no), 0);
    assert_int_equal(pop3px_deletions(m, n, del, 3, no), 1);
    assert_int_equal(no[0], 3);
    free(m);
    pop3px_table_free(&local);
    pop3px_table_free(&up1);
    pop3px_table_free(&up2);
    pop3px_table_free(&up3);
}

static void test_merge_collisions(void **state)
{
    /* a local id equal to what an upstream's would be if it used '.' cannot collide */
    struct pop3px_table local, up;
    const char *lu[] = {"one.a", "~x"};
    const char *uu[] = {"a", "x"};
    fill(&local, 2, lu, NULL);
    fill(&up, 2, uu, NULL);
    const char *ids[] = {NULL, "one"};
    const struct pop3px_table *tabs[] = {&local, &up};
    struct pop3px_msg *m = NULL;
    size_t n = 0;
    assert_int_equal(pop3px_merge(ids, tabs, 2, &m, &n), 0);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(m[i].info.uidl, m[j].info.uidl);
    free(m);
    /* nothing at all */
    const struct pop3px_table *none[] = {NULL, NULL};
    assert_int_equal(pop3px_merge(ids, none, 2, &m, &n), 0);
    assert_int_equal(n, 0);
    free(m);
    pop3px_table_free(&local);
    pop3px_table_free(&up);
}

static void test_merge_many_dups(void **state)
{
    /* a broken server repeating one uid for every message: all merged ids still distinct */
    enum { N = 500 };
    struct pop3px_table t;
    assert_int_equal(pop3px_table_init(&t, N), 0);
    for (uint32_t i = 1; i <= N; i++) {
        assert_int_equal(pop3px_table_size(&t, i, i), 0);
        assert_int_equal(pop3px_table_uid(&t, i, "same"), 0);
    }
    const char *ids[] = {"bad"};
    const struct pop3px_table *tabs[] = {&t};
    struct pop3px_msg *m = NULL;
    size_t n = 0;
    assert_int_equal(pop3px_merge(ids, tabs, 1, &m, &n), 0);
    assert_int_equal(n, N);
    assert_string_equal(m[0].info.uidl, "bad:same");
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(m[i].info.uidl, m[j].info.uidl);
    free(m);
    pop3px_table_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uidl_forms),      cmocka_unit_test(test_uidl_stable_and_distinct),
        cmocka_unit_test(test_uidl_hostile),    cmocka_unit_test(test_table),
        cmocka_unit_test(test_merge),           cmocka_unit_test(test_merge_collisions),
        cmocka_unit_test(test_merge_many_dups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
