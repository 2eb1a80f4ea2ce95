/*
 * test_buf.c - unit tests for src/lib/buf.c: limits, NUL safety, printf
 * truncation at the maximum, consume.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/buf.h"

static void test_new_empty(void **state)
{
    buf_t *b = buf_new(16);

    assert_non_null(b);
    assert_non_null(b->data);
    assert_int_equal(b->len, 0);
    assert_string_equal(b->data, "");
    buf_free(&b);
    assert_null(b);
    buf_free(&b); /* NULL is fine */
    buf_free(NULL);
}

static void test_append_and_limit(void **state)
{
    buf_t *b = buf_new(8);

    assert_int_equal(buf_append(b, "abcd", 4), 0);
    assert_int_equal(buf_append_str(b, "efgh"), 0);
    assert_int_equal(b->len, 8);
    assert_string_equal(b->data, "abcdefgh");
    /* one byte past max: refused, buffer unchanged */
    assert_int_equal(buf_append(b, "i", 1), PST_ELIMIT);
    assert_int_equal(b->len, 8);
    assert_string_equal(b->data, "abcdefgh");
    /* zero-length append at the limit is fine */
    assert_int_equal(buf_append(b, "", 0), 0);
    buf_free(&b);
}

static void test_huge_append_refused(void **state)
{
    buf_t *b = buf_new(100);

    assert_int_equal(buf_append(b, "x", 1), 0);
    /* a length that would overflow len + n must not wrap around */
    assert_int_equal(buf_append(b, "y", SIZE_MAX), PST_ELIMIT);
    assert_int_equal(buf_append(b, "y", SIZE_MAX - 1), PST_ELIMIT);
    assert_int_equal(b->len, 1);
    buf_free(&b);
}

static void test_nul_safe(void **state)
{
    buf_t *b = buf_new(32);
    static const char bin[] = {'a', '\0', 'b', '\0', 'c'};

    assert_int_equal(buf_append(b, bin, sizeof(bin)), 0);
    assert_int_equal(b->len, 5);
    assert_memory_equal(b->data, bin, sizeof(bin));
    assert_int_equal(b->data[5], '\0'); /* terminator after data */
    buf_free(&b);
}

static void test_growth_many(void **state)
{
    buf_t *b = buf_new(100000);
    size_t i;

    for (i = 0; i < 100000; i++)
        assert_int_equal(buf_append(b, "z", 1), 0);
    assert_int_equal(b->len, 100000);
    assert_int_equal(buf_append(b, "z", 1), PST_ELIMIT);
    assert_int_equal(b->data[b->len], '\0');
    buf_free(&b);
}

static void test_printf(void **state)
{
    buf_t *b = buf_new(64);

    assert_int_equal(buf_printf(b, "%s=%d", "n", 42), 0);
    assert_int_equal(buf_printf(b, " %s", "more"), 0);
    assert_string_equal(b->data, "n=42 more");
    assert_int_equal(b->len, strlen("n=42 more"));
    buf_free(&b);
}

static void test_printf_truncation_leaves_unchanged(void **state)
{
    buf_t *b = buf_new(10);

    assert_int_equal(buf_printf(b, "%s", "12345"), 0);
    /* would need 11 bytes total: refused, nothing appended */
    assert_int_equal(buf_printf(b, "%s", "678901"), PST_ELIMIT);
    assert_int_equal(b->len, 5);
    assert_string_equal(b->data, "12345");
    /* exactly up to the limit works */
    assert_int_equal(buf_printf(b, "%s", "67890"), 0);
    assert_string_equal(b->data, "1234567890");
    assert_int_equal(buf_printf(b, "%s", ""), 0);
    assert_int_equal(buf_printf(b, "%c", 'x'), PST_ELIMIT);
    assert_string_equal(b->data, "1234567890");
    buf_free(&b);
}

static void test_printf_on_empty_large(void **state)
{
    buf_t *b = buf_new(1000);

    /* first printf into an unallocated buffer, larger than the first block */
    assert_int_equal(buf_printf(b, "%0500d", 7), 0);
    assert_int_equal(b->len, 500);
    assert_int_equal(b->data[499], '7');
    assert_int_equal(buf_printf(b, "%0501d", 7), PST_ELIMIT);
    assert_int_equal(b->len, 500);
    buf_free(&b);
}

static void test_consume(void **state)
{
    buf_t *b = buf_new(32);

    assert_int_equal(buf_append_str(b, "hello world"), 0);
    buf_consume(b, 0);
    assert_string_equal(b->data, "hello world");
    buf_consume(b, 6);
    assert_string_equal(b->data, "world");
    assert_int_equal(b->len, 5);
    buf_consume(b, 5);
    assert_int_equal(b->len, 0);
    assert_string_equal(b->data, "");
    /* space freed by consume can be used again */
    assert_int_equal(buf_append(b, "0123456789012345678901234567890", 31), 0);
    buf_free(&b);
}

static void test_reset_and_embedded(void **state)
{
    buf_t b;

    buf_init(&b, 4);
    buf_reset(&b); /* on a never-allocated buffer */
    assert_string_equal(b.data, "");
    assert_int_equal(buf_append_str(&b, "abcd"), 0);
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_int_equal(buf_append_str(&b, "wxyz"), 0);
    assert_string_equal(b.data, "wxyz");
    buf_release(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    buf_release(&b); /* twice is fine */
}

static void test_zero_max(void **state)
{
    buf_t *b = buf_new(0);

    assert_int_equal(buf_append(b, "a", 1), PST_ELIMIT);
    assert_int_equal(buf_printf(b, "%s", "a"), PST_ELIMIT);
    assert_int_equal(buf_printf(b, "%s", ""), 0);
    assert_string_equal(b->data, "");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_empty),
        cmocka_unit_test(test_append_and_limit),
        cmocka_unit_test(test_huge_append_refused),
        cmocka_unit_test(test_nul_safe),
        cmocka_unit_test(test_growth_many),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_printf_truncation_leaves_unchanged),
        cmocka_unit_test(test_printf_on_empty_large),
        cmocka_unit_test(test_consume),
        cmocka_unit_test(test_reset_and_embedded),
        cmocka_unit_test(test_zero_max),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
