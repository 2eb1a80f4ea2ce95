/*
 * test_pop3_parser.c - POP3 command line parsing (RFC 1939, 2449, 5034), including hostile input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pop3/pop3_parser.h"

static int parse(const char *line, struct pop3_cmd *c, const char **reply)
{
    return pop3_cmd_parse(line, strlen(line), c, reply);
}

static void test_simple_verbs(void **state)
{
    static const struct {
        const char *line;
        enum pop3_verb v;
    } t[] = {
        {"STAT", POP3_V_STAT},   {"stat", POP3_V_STAT}, {"NoOp", POP3_V_NOOP},
        {"RSET", POP3_V_RSET},   {"QUIT", POP3_V_QUIT}, {"CAPA", POP3_V_CAPA},
        {"STLS", POP3_V_STLS},   {"LIST", POP3_V_LIST}, {"UIDL", POP3_V_UIDL},
        {"QUIT  ", POP3_V_QUIT}, {"AUTH", POP3_V_AUTH},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct pop3_cmd c;
        const char *reply = "x";
        assert_int_equal(parse(t[i].line, &c, &reply), 0);
        assert_int_equal(c.verb, t[i].v);
        assert_null(reply);
        assert_int_equal(c.nargs, 0);
        assert_int_equal(c.has_msg, 0);
    }
}

static void test_message_numbers(void **state)
{
    struct pop3_cmd c;
    const char *reply;
    assert_int_equal(parse("RETR 1", &c, &reply), 0);
    assert_int_equal(c.verb, POP3_V_RETR);
    assert_int_equal(c.has_msg, 1);
    assert_int_equal(c.msg, 1);
    assert_int_equal(parse("dele 007", &c, &reply), 0);
    assert_int_equal(c.msg, 7);
    assert_int_equal(parse("LIST 999999999", &c, &reply), 0);
    assert_int_equal(c.msg, 999999999ul);
    assert_int_equal(parse("TOP 3 0", &c, &reply), 0);
    assert_int_equal(c.verb, POP3_V_TOP);
    assert_int_equal(c.msg, 3);
    assert_int_equal(c.lines, 0);
    assert_int_equal(parse("TOP 3 25", &c, &reply), 0);
    assert_int_equal(c.lines, 25);
    assert_int_equal(parse("UIDL 12", &c, &reply), 0);
    assert_int_equal(c.has_msg, 1);
    assert_int_equal(c.msg, 12);
}

static void test_bad_numbers(void **state)
{
    static const char *const bad[] = {
        "RETR 0",
        "RETR -1",
        "RETR +1",
        "RETR 1a",
        "RETR 0x10",
        "DELE 1000000000",
        "LIST 99999999999999999999999",
        "TOP 1 -1",
        "TOP 1 x",
        "RETR",
        "TOP 1",
        "DELE",
        "RETR 1 2",
        "TOP 1 2 3",
        "STAT 1",
        "NOOP x",
        "QUIT now",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct pop3_cmd c;
        const char *reply = NULL;
        assert_true(parse(bad[i], &c, &reply) < 0);
        assert_non_null(reply);
        assert_memory_equal(reply, "-ERR ", 5);
    }
    struct pop3_cmd c;
    const char *reply;
    assert_int_equal(parse("RETR 00000000001", &c, &reply), 0); /* leading zeros are fine */
    assert_int_equal(c.msg, 1);
}

static void test_user_pass(void **state)
{
    struct pop3_cmd c;
    const char *reply;
    assert_int_equal(parse("USER alice", &c, &reply), 0);
    assert_int_equal(c.verb, POP3_V_USER);
    assert_string_equal(c.arg[0], "alice");
    assert_int_equal(parse("PASS secret with  spaces ", &c, &reply), 0);
    assert_int_equal(c.verb, POP3_V_PASS);
    assert_string_equal(c.arg[0], "secret with  spaces ");
    assert_int_equal(c.arglen[0], 20);
    assert_true(parse("PASS", &c, &reply) < 0);
    assert_true(parse("PASS ", &c, &reply) < 0);
    assert_true(parse("USER", &c, &reply) < 0);
    assert_true(parse("USER a b", &c, &reply) < 0);
    assert_int_equal(parse("APOP mrose c4c9334bac560ecc979e58001b3e22fb", &c, &reply), 0);
    assert_int_equal(c.verb, POP3_V_APOP);
    assert_int_equal(c.nargs, 2);
}

static void test_auth(void **state)
{
    struct pop3_cmd c;
    const char *reply;
    assert_int_equal(parse("auth plain", &c, &reply), 0);
    assert_int_equal(c.verb, POP3_V_AUTH);
    assert_string_equal(c.arg[0], "PLAIN");
    assert_int_equal(c.nargs, 1);
    assert_int_equal(parse("AUTH PLAIN AGFsaWNlAHNlY3JldA==", &c, &reply), 0);
    assert_int_equal(c.nargs, 2);
    assert_string_equal(c.arg[1], "AGFsaWNlAHNlY3JldA=="); /* the response keeps its case */
    assert_true(parse("AUTH PLAIN a b", &c, &reply) < 0);
}

static void test_unknown_and_keyword(void **state)
{
    struct pop3_cmd c;
    const char *reply = "x";
    assert_int_equal(parse("XYZZY", &c, &reply), 0);
    assert_int_equal(c.verb, POP3_V_UNKNOWN);
    assert_null(reply);
    assert_int_equal(parse("HELO x", &c, &reply), 0);
    assert_int_equal(c.verb, POP3_V_UNKNOWN);
    assert_string_equal(c.keyword, "HELO");
    assert_int_equal(parse("RE", &c, &reply), 0);
    assert_int_equal(c.verb, POP3_V_UNKNOWN);
    assert_true(parse("", &c, &reply) < 0);
    assert_true(parse(" STAT", &c, &reply) < 0);
    assert_true(parse("ST*T", &c, &reply) < 0);
    assert_true(parse("STAT\t", &c, &reply) < 0);
    assert_string_equal(pop3_verb_name(POP3_V_RETR), "RETR");
    assert_string_equal(pop3_verb_name(POP3_V_UNKNOWN), "UNKNOWN");
}

static void test_hostile(void **state)
{
    struct pop3_cmd c;
    const char *reply = NULL;
    /* NUL inside the line */
    assert_true(pop3_cmd_parse("USER a\0b", 8, &c, &reply) < 0);
    assert_non_null(reply);
    /* CR, LF, DEL inside */
    assert_true(parse("USER a\rb", &c, &reply) < 0);
    assert_true(parse("USER a\nb", &c, &reply) < 0);
    assert_true(parse("USER a\x7f", &c, &reply) < 0);
    /* over-long argument */
    char line[2048];
    memcpy(line, "USER ", 5);
    memset(line + 5, 'a', POP3_ARG_MAX + 1);
    line[5 + POP3_ARG_MAX + 1] = '\0';
    assert_int_equal(parse(line, &c, &reply), PST_ELIMIT);
    line[5 + POP3_ARG_MAX] = '\0'; /* exactly the maximum is fine */
    assert_int_equal(parse(line, &c, &reply), 0);
    assert_int_equal(c.arglen[0], POP3_ARG_MAX);
    memcpy(line, "PASS ", 5);
    memset(line + 5, 'p', 1000);
    line[1005] = '\0';
    assert_int_equal(parse(line, &c, &reply), PST_ELIMIT);
    /* high bytes are not control characters; they are just an unknown word */
    assert_int_equal(parse("\xc3\xa9\xc3\xa9", &c, &reply) < 0, 1);
    /* a length that excludes a trailing part of the buffer is respected */
    assert_int_equal(pop3_cmd_parse("STAT garbage", 4, &c, &reply), 0);
    assert_int_equal(c.verb, POP3_V_STAT);
}

static void test_parse_number(void **state)
{
    unsigned long v;
    assert_int_equal(pop3_parse_number("42", 2, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(pop3_parse_number("", 0, &v), PST_EINVAL);
    assert_int_equal(pop3_parse_number("1234567890", 10, &v), PST_ELIMIT);
    assert_int_equal(pop3_parse_number("0000000000001", 13, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(pop3_parse_number("1 ", 2, &v), PST_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_verbs), cmocka_unit_test(test_message_numbers),
        cmocka_unit_test(test_bad_numbers),  cmocka_unit_test(test_user_pass),
        cmocka_unit_test(test_auth),         cmocka_unit_test(test_unknown_and_keyword),
        cmocka_unit_test(test_hostile),      cmocka_unit_test(test_parse_number),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
