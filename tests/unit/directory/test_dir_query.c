/*
 * test_dir_query.c - the directory's query-string / form-body parser:
 * normal input, every limit, and hostile bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "directory/dir_query.h"

static struct dir_query q;

static int parse(const char *s)
{
    const char *why = NULL;
    int rc = dir_query_parse(&q, s, strlen(s), &why);
    if (rc != 0)
        assert_non_null(why);
    return rc;
}

static void test_basic(void **state)
{
    assert_int_equal(parse("smtpaddress=alice%40example.org&x=1"), 0);
    assert_int_equal(q.n, 2);
    assert_string_equal(dir_query_get(&q, "smtpaddress"), "alice@example.org");
    assert_string_equal(dir_query_get(&q, "x"), "1");
    assert_null(dir_query_get(&q, "y"));
    assert_null(dir_query_get(&q, "smtp"));
}

static void test_plus_empty_and_segments(void **state)
{
    assert_int_equal(parse("a=b+c&&flag&e=&"), 0);
    assert_int_equal(q.n, 3);
    assert_string_equal(dir_query_get(&q, "a"), "b c");
    assert_string_equal(dir_query_get(&q, "flag"), "");
    assert_string_equal(dir_query_get(&q, "e"), "");
    assert_int_equal(parse(""), 0);
    assert_int_equal(q.n, 0);
    assert_int_equal(dir_query_parse(&q, NULL, 0, NULL), 0);
}

static void test_utf8(void **state)
{
    assert_int_equal(parse("a=j%C3%BCrgen%40b%C3%BCcher.example"), 0);
    assert_string_equal(dir_query_get(&q, "a"), "j\xc3\xbcrgen@b\xc3\xbc"
                                                "cher.example");
    assert_int_equal(parse("a=%F0%9F%98%80"), 0);          /* U+1F600 */
    assert_int_equal(parse("a=%C3"), PST_EINVAL);          /* truncated */
    assert_int_equal(parse("a=%C0%80"), PST_EINVAL);       /* overlong NUL */
    assert_int_equal(parse("a=%ED%A0%80"), PST_EINVAL);    /* surrogate */
    assert_int_equal(parse("a=%F4%90%80%80"), PST_EINVAL); /* > U+10FFFF */
    assert_int_equal(parse("a=%FF"), PST_EINVAL);
    assert_int_equal(parse("a=%C2%85"), PST_EINVAL); /* C1 control NEL */
}

static void test_bad_escapes(void **state)
{
    assert_int_equal(parse("a=%"), PST_EINVAL);
    assert_int_equal(parse("a=%4"), PST_EINVAL);
    assert_int_equal(parse("a=%4g"), PST_EINVAL);
    assert_int_equal(parse("a=%zz&b=1"), PST_EINVAL);
    assert_int_equal(parse("a=%00"), PST_EINVAL); /* NUL */
    assert_int_equal(parse("a=%0d%0aSet-Cookie:x"), PST_EINVAL);
    assert_int_equal(parse("a=%7f"), PST_EINVAL);
}

static void test_raw_bytes(void **state)
{
    const char nul[] = "a=b\0c";
    assert_int_equal(dir_query_parse(&q, nul, sizeof nul - 1, NULL), PST_EINVAL);
    assert_int_equal(parse("a=b c"), PST_EINVAL);
    assert_int_equal(parse("a=\xc3\xbc"), PST_EINVAL); /* must be %-escaped */
    assert_int_equal(parse("a=x\ty"), PST_EINVAL);
}

static void test_keys(void **state)
{
    assert_int_equal(parse("=1"), PST_EINVAL);
    assert_int_equal(parse("a%20b=1"), PST_EINVAL);
    assert_int_equal(parse("a b=1"), PST_EINVAL);
    assert_int_equal(parse("a=1&a=2"), PST_EINVAL); /* repeated */
    assert_int_equal(parse("k.e_y-1=v"), 0);
    char key[DIR_QUERY_KEY_MAX + 8];
    memset(key, 'k', sizeof key);
    key[DIR_QUERY_KEY_MAX] = '\0';
    assert_int_equal(parse(key), 0);
    key[DIR_QUERY_KEY_MAX] = 'k';
    key[DIR_QUERY_KEY_MAX + 1] = '\0';
    assert_int_equal(parse(key), PST_ELIMIT);
}

static void test_sql_and_xml_specials(void **state)
{
    assert_int_equal(parse("a=%27%3B+DROP+TABLE+dir_records%3B--&b=%3Cx%3E%26%22"), 0);
    assert_string_equal(dir_query_get(&q, "a"), "'; DROP TABLE dir_records;--");
    assert_string_equal(dir_query_get(&q, "b"), "<x>&\"");
    assert_int_equal(parse("a='<>"), 0); /* printable ASCII passes raw */
}

static void test_limits(void **state)
{
    char *big = malloc(DIR_QUERY_MAX_LEN + 16);
    assert_non_null(big);
    /* total length */
    memset(big, 'a', DIR_QUERY_MAX_LEN + 1);
    assert_int_equal(dir_query_parse(&q, big, DIR_QUERY_MAX_LEN + 1, NULL), PST_ELIMIT);
    /* one value too long (decoded length counts) */
    memcpy(big, "v=", 2);
    memset(big + 2, 'x', DIR_QUERY_VALUE_MAX + 1);
    assert_int_equal(dir_query_parse(&q, big, DIR_QUERY_VALUE_MAX + 3, NULL), PST_ELIMIT);
    assert_int_equal(dir_query_parse(&q, big, DIR_QUERY_VALUE_MAX + 2, NULL), 0);
    assert_int_equal(q.p[0].vlen, DIR_QUERY_VALUE_MAX);
    /* %-escaped value: 3 bytes in, 1 out */
    size_t o = 0;
    memcpy(big, "v=", 2);
    o = 2;
    for (int i = 0; i < 1000; i++, o += 3)
        memcpy(big + o, "%41", 3);
    assert_int_equal(dir_query_parse(&q, big, o, NULL), 0);
    assert_int_equal(q.p[0].vlen, 1000);
    /* too many parameters */
    o = 0;
    for (int i = 0; i <= DIR_QUERY_MAX_PARAMS; i++) {
        int n = snprintf(big + o, 16, "k%d=1&", i);
        o += (size_t)n;
    }
    assert_int_equal(dir_query_parse(&q, big, o, NULL), PST_ELIMIT);
    /* exactly the maximum is fine */
    o = 0;
    for (int i = 0; i < DIR_QUERY_MAX_PARAMS; i++) {
        int n = snprintf(big + o, 16, "k%d=1&", i);
        o += (size_t)n;
    }
    assert_int_equal(dir_query_parse(&q, big, o, NULL), 0);
    assert_int_equal(q.n, DIR_QUERY_MAX_PARAMS);
    /* the longest input of many short params fits the store */
    memset(big, '&', DIR_QUERY_MAX_LEN);
    memcpy(big, "a", 1);
    assert_int_equal(dir_query_parse(&q, big, DIR_QUERY_MAX_LEN, NULL), 0);
    free(big);
}

static void test_utf8_valid(void **state)
{
    assert_true(dir_utf8_valid("abc", 3));
    assert_true(dir_utf8_valid("", 0));
    assert_false(dir_utf8_valid("a\nb", 3));
    assert_false(dir_utf8_valid("\xe2\x82", 2));
    assert_true(dir_utf8_valid("\xe2\x82\xac", 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_plus_empty_and_segments),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_bad_escapes),
        cmocka_unit_test(test_raw_bytes),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_sql_and_xml_specials),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_utf8_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
