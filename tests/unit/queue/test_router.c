/*
 * test_router.c - recipient routing and the transport map parser.
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

#include "lib/config.h"
#include "queue/router.h"

static struct cfg *test_cfg(void)
{
    char err[256];
    struct cfg *c = cfg_load_string("[server]\nhostname = mx.local.test\n"
                                    "[local]\nlocal_domains = local.test, Other.Test\n",
                                    "test.ini", err, sizeof(err));
    if (c == NULL)
        fail_msg("cfg: %s", err);
    return c;
}

static struct router *mk(const struct cfg *c, const char *text, char *err, size_t errlen)
{
    return router_new_from_string(c, text, strlen(text), "map", err, errlen);
}

static void expect_err(const char *text, const char *needle)
{
    char err[512] = "";
    struct router *r = mk(NULL, text, err, sizeof(err));

    if (r != NULL)
        fail_msg("map accepted: %s", text);
    if (strstr(err, needle) == NULL)
        fail_msg("error '%s' lacks '%s'", err, needle);
}

static void test_no_map(void **state)
{
    struct cfg *c = test_cfg();
    char err[256];
    struct router *r = router_new(c, NULL, err, sizeof(err));
    struct router_route rt;

    assert_non_null(r);
    assert_int_equal(router_entries(r), 0);
    assert_int_equal(router_route(r, "Bob.Smith@LOCAL.test", &rt), 0);
    assert_int_equal(rt.transport, ROUTER_LOCAL);
    assert_string_equal(rt.local_user, "bob.smith");
    assert_int_equal(router_route(r, "alice@other.test.", &rt), 0);
    assert_int_equal(rt.transport, ROUTER_LOCAL);
    assert_string_equal(rt.local_user, "alice");
    assert_int_equal(router_route(r, "bob@Example.ORG", &rt), 0);
    assert_int_equal(rt.transport, ROUTER_SMTP);
    assert_string_equal(rt.nexthop, "example.org");
    assert_int_equal(rt.no_mx, 0);
    assert_int_equal(rt.port, 0);
    assert_string_equal(rt.tls, "");
    assert_string_equal(rt.auth, "");
    router_free(&r);
    assert_null(r);
    cfg_free(&c);
}

static void test_local_invalid_user(void **state)
{
    struct cfg *c = test_cfg();
    char err[256];
    struct router *r = router_new(c, "", err, sizeof(err));
    struct router_route rt;

    assert_non_null(r);
    assert_int_equal(router_route(r, "../etc@local.test", &rt), 0);
    assert_int_equal(rt.transport, ROUTER_ERROR);
    assert_string_equal(rt.error, "5.1.1 unknown user");
    assert_int_equal(router_route(r, "\"john doe\"@local.test", &rt), 0);
    assert_int_equal(rt.transport, ROUTER_ERROR);
    assert_int_equal(router_route(r, ".x@local.test", &rt), 0);
    assert_int_equal(rt.transport, ROUTER_ERROR);
    /* 65 characters: one more than a user name may have */
    assert_int_equal(
        router_route(r,
                     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@"
                     "local.test",
                     &rt),
        0);
    assert_int_equal(rt.transport, ROUTER_ERROR);
    assert_int_equal(router_route(r, "PostMaster", &rt), 0);
    assert_int_equal(rt.transport, ROUTER_LOCAL);
    assert_string_equal(rt.local_user, "postmaster");
    router_free(&r);
    cfg_free(&c);
}

static void test_bad_addresses(void **state)
{
    char err[256];
    struct router *r = mk(NULL, "", err, sizeof(err));
    struct router_route rt;
    char big[700];

    assert_non_null(r);
    assert_int_equal(router_route(r, "nobody", &rt), PST_EINVAL);
    assert_int_equal(router_route(r, "@example.org", &rt), PST_EINVAL);
    assert_int_equal(router_route(r, "a@", &rt), PST_EINVAL);
    assert_int_equal(router_route(r, "", &rt), PST_EINVAL);
    assert_int_equal(router_route(r, NULL, &rt), PST_EINVAL);
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    big[10] = '@';
    assert_int_equal(router_route(r, big, &rt), PST_EINVAL);
    router_free(&r);
}

static void test_map_matching(void **state)
{
    struct cfg *c = test_cfg();
    char err[256] = "";
    const char *map = "# transport map\n"
                      "\n"
                      "example.org      smtp:[relay.example]:587 tls=verify auth=relay1\n"
                      ".example.org     smtp:sub.example.net\n"
                      ".a.example.org   smtp:[192.0.2.1]\n"
                      "Six.Test.        smtp:[IPv6:2001:DB8::1]:2525\r\n"
                      "  blocked.test   error:5.7.1 no mail for you here\n"
                      "nocode.test      error:go away\n"
                      "local.test       smtp:[mailhub.internal] tls=encrypt\n"
                      "hosted.test      local\n"
                      "mx.test          smtp: tls=may\n"
                      "*                smtp:[smarthost.example] tls=encrypt\n";
    struct router *r = mk(c, map, err, sizeof(err));
    struct router_route rt;

    if (r == NULL)
        fail_msg("%s", err);
    assert_int_equal(router_entries(r), 10);

    assert_int_equal(router_route(r, "x@EXAMPLE.org", &rt), 0);
    assert_int_equal(rt.transport, ROUTER_SMTP);
    assert_string_equal(rt.nexthop, "relay.example");
    assert_int_equal(rt.no_mx, 1);
    assert_int_equal(rt.port, 587);
    assert_string_equal(rt.tls, "verify");
    assert_string_equal(rt.auth, "relay1");

    assert_int_equal(router_route(r, "x@b.example.org", &rt), 0);
    assert_string_equal(rt.nexthop, "sub.example.net");
    assert_int_equal(rt.no_mx, 0);
    assert_string_equal(rt.tls, "");
    assert_string_equal(rt.auth, "");

    /* longest suffix wins */
    assert_int_equal(router_route(r, "x@deep.a.example.org", &rt), 0);
    assert_string_equal(rt.nexthop, "192.0.2.1");
    assert_int_equal(rt.no_mx, 1);
    assert_int_equal(router_route(r, "x@a.example.org", &rt), 0);
    assert_string_equal(rt.nexthop, "sub.example.net");

    assert_int_equal(router_route(r, "x@six.test", &rt), 0);
    assert_string_equal(rt.nexthop, "2001:db8::1");
    assert_int_equal(rt.port, 2525);

    assert_int_equal(router_route(r, "x@blocked.test", &rt), 0);
    assert_int_equal(rt.transport, ROUTER_ERROR);
    assert_string_equal(rt.error, "5.7.1 no mail for you here");
    assert_int_equal(router_route(r, "x@nocode.test", &rt), 0);
    assert_string_equal(rt.error, "5.0.0 go away");

    /* an explicit entry overrides a local domain ... */
    assert_int_equal(router_route(r, "x@local.test", &rt), 0);
    assert_int_equal(rt.transport, ROUTER_SMTP);
    assert_string_equal(rt.nexthop, "mailhub.internal");
    /* ... but "*" does not */
    assert_int_equal(router_route(r, "Bob@other.test", &rt), 0);
    assert_int_equal(rt.transport, ROUTER_LOCAL);
    assert_string_equal(rt.local_user, "bob");

    assert_int_equal(router_route(r, "Carol@hosted.test", &rt), 0);
    assert_int_equal(rt.transport, ROUTER_LOCAL);
    assert_string_equal(rt.local_user, "carol");
    assert_int_equal(router_route(r, "a/b@hosted.test", &rt), 0);
    assert_int_equal(rt.transport, ROUTER_ERROR);

    assert_int_equal(router_route(r, "x@MX.test", &rt), 0);
    assert_int_equal(rt.transport, ROUTER_SMTP);
    assert_string_equal(rt.nexthop, "mx.test");
    assert_string_equal(rt.tls, "may");

    assert_int_equal(router_route(r, "x@elsewhere.net", &rt), 0);
    assert_string_equal(rt.nexthop, "smarthost.example");
    assert_int_equal(rt.no_mx, 1);
    assert_string_equal(rt.tls, "encrypt");

    /* "example.org" exact does not catch "xexample.org" */
    assert_int_equal(router_route(r, "x@xexample.org", &rt), 0);
    assert_string_equal(rt.nexthop, "smarthost.example");
    router_free(&r);
    cfg_free(&c);
}

static void test_literal_recipient(void **state)
{
    char err[256];
    struct router *r = mk(NULL, "", err, sizeof(err));
    struct router_route rt;

    assert_int_equal(router_route(r, "x@[192.0.2.7]", &rt), 0);
    assert_int_equal(rt.transport, ROUTER_SMTP);
    assert_string_equal(rt.nexthop, "192.0.2.7");
    assert_int_equal(rt.no_mx, 1);
    assert_int_equal(router_route(r, "x@[IPv6:2001:db8::7]", &rt), 0);
    assert_string_equal(rt.nexthop, "2001:db8::7");
    assert_int_equal(rt.no_mx, 1);
    router_free(&r);
}

static void test_parse_errors(void **state)
{
    char line[ROUTER_LINE_MAX + 64];

    expect_err("example.org\n", "map:1: missing nexthop");
    expect_err("# c\nexample.org bogus\n", "map:2: unknown nexthop");
    expect_err("ex_ample..org smtp:\n", "map:1: bad domain pattern");
    expect_err("a.org smtp:[relay\n", "missing ']'");
    expect_err("a.org smtp:[relay]x\n", "bad port");
    expect_err("a.org smtp:[relay]:0\n", "bad port");
    expect_err("a.org smtp:[relay]:65536\n", "bad port");
    expect_err("a.org smtp:relay:12a\n", "bad port");
    expect_err("a.org smtp:[]\n", "bad host");
    expect_err("a.org smtp:[bad_host!]\n", "bad host");
    expect_err("a.org smtp:-bad-\n", "bad domain");
    expect_err("a.org smtp: tls=maybe\n", "tls must be");
    expect_err("a.org smtp: tls=may tls=none\n", "duplicate option tls");
    expect_err("a.org smtp: auth=a auth=b\n", "duplicate option auth");
    expect_err("a.org smtp: auth=\n", "bad auth");
    expect_err("a.org smtp: auth=a/b\n", "bad auth");
    expect_err("a.org smtp: colour=blue\n", "unknown option");
    expect_err("a.org smtp: tls\n", "expected option=value");
    expect_err("a.org local tls=may\n", "only allowed with smtp");
    expect_err("a.org error:\n", "empty error text");
    expect_err("a.org error:   \n", "empty error text");
    expect_err("a.org error:caf\xc3\xa9\n", "ASCII");
    expect_err("a.org smtp:\nb.org local\nA.ORG. local\n",
               "map:3: duplicate pattern 'a.org' (first at line 1)");
    expect_err("* local\n* smtp:\n", "map:2: duplicate pattern '*'");
    expect_err("a.org smtp:\n\001b.org local\n", "map:2: control character");

    memset(line, 'a', sizeof(line));
    memcpy(line, "x.org error:", 12);
    line[ROUTER_LINE_MAX + 1] = '\0';
    expect_err(line, "map:1: line too long");
    line[ROUTER_LINE_MAX - 1] = '\0';
    expect_err(line, "error text too long");
}

static void test_nul_in_middle(void **state)
{
    static const char text[] = "a.org smtp:\nb.org\0local\n";
    char err[256] = "";
    struct router *r = router_new_from_string(NULL, text, sizeof(text) - 1, "m", err, sizeof(err));

    assert_null(r);
    assert_non_null(strstr(err, "m:2: NUL byte"));
}

static void test_entry_limit(void **state)
{
    size_t n = ROUTER_ENTRIES_MAX + 1, i, off = 0, cap = n * 48;
    char *text = malloc(cap);
    char err[256] = "";
    struct router *r;
    struct router_route rt;

    assert_non_null(text);
    for (i = 0; i < n; i++) {
        int k = snprintf(text + off, cap - off, "d%zu.example smtp:[h%zu.example]\n", i, i);
        assert_true(k > 0 && (size_t)k < cap - off);
        off += (size_t)k;
    }
    r = router_new_from_string(NULL, text, off, "big", err, sizeof(err));
    assert_null(r);
    assert_non_null(strstr(err, "big:10001: too many entries"));

    /* exactly the limit loads, and lookups in a big map work */
    off = (size_t)(strrchr(text, 'd') - text);
    r = router_new_from_string(NULL, text, off, "big", err, sizeof(err));
    if (r == NULL)
        fail_msg("%s", err);
    assert_int_equal(router_entries(r), ROUTER_ENTRIES_MAX);
    assert_int_equal(router_route(r, "u@d1234.example", &rt), 0);
    assert_string_equal(rt.nexthop, "h1234.example");
    assert_int_equal(router_route(r, "u@d99999.example", &rt), 0);
    assert_string_equal(rt.nexthop, "d99999.example");
    router_free(&r);
    free(text);
}

static void test_from_file(void **state)
{
    char dir[] = "/tmp/test_router.XXXXXX";
    char path[512], err[512] = "";
    struct router *r;
    struct router_route rt;
    FILE *f;

    assert_non_null(mkdtemp(dir));
    assert_true(snprintf(path, sizeof(path), "%s/transport", dir) < (int)sizeof(path));
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("example.net smtp:[relay.example]:25\nbad.net nope\n", f);
    fclose(f);
    r = router_new(NULL, path, err, sizeof(err));
    assert_null(r);
    assert_non_null(strstr(err, "/transport:2: unknown nexthop"));

    f = fopen(path, "w");
    assert_non_null(f);
    fputs("example.net smtp:[relay.example]:25\n", f);
    fclose(f);
    r = router_new(NULL, path, err, sizeof(err));
    assert_non_null(r);
    assert_int_equal(router_route(r, "u@example.net", &rt), 0);
    assert_string_equal(rt.nexthop, "relay.example");
    assert_int_equal(rt.port, 25);
    router_free(&r);

    unlink(path);
    r = router_new(NULL, path, err, sizeof(err));
    assert_null(r);
    assert_non_null(strstr(err, "No such file"));
    rmdir(dir);
}

static void test_names(void **state)
{
    assert_string_equal(router_transport_name(ROUTER_LOCAL), "local");
    assert_string_equal(router_transport_name(ROUTER_SMTP), "smtp");
    assert_string_equal(router_transport_name(ROUTER_ERROR), "error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_map),
        cmocka_unit_test(test_local_invalid_user),
        cmocka_unit_test(test_bad_addresses),
        cmocka_unit_test(test_map_matching),
        cmocka_unit_test(test_literal_recipient),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_nul_in_middle),
        cmocka_unit_test(test_entry_limit),
        cmocka_unit_test(test_from_file),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
