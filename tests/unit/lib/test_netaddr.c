/*
 * test_netaddr.c - unit tests for src/lib/netaddr.c: listen specs, CIDR
 * parsing and matching (/0, /32, /128, v4-mapped clients), bad input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "lib/netaddr.h"

static struct sockaddr_storage mk(const char *ip)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':') != NULL) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
    }
    return ss;
}

static int match(const char *cidr, const char *ip)
{
    struct netaddr_cidr net;
    struct sockaddr_storage ss = mk(ip);

    assert_int_equal(netaddr_parse_cidr(cidr, &net), 0);
    return netaddr_cidr_match(&net, (struct sockaddr *)&ss);
}

static void test_listen_v4(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char s[NETADDR_STRLEN];

    assert_int_equal(netaddr_parse_listen("127.0.0.1:2525", &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    assert_int_equal(netaddr_port((struct sockaddr *)&ss), 2525);
    assert_string_equal(netaddr_to_str((struct sockaddr *)&ss, s, sizeof(s)), "127.0.0.1");
    assert_int_equal(netaddr_parse_listen("0.0.0.0:65535", &ss, &len), 0);
    assert_int_equal(netaddr_port((struct sockaddr *)&ss), 65535);
}

static void test_listen_v6_and_any(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char s[NETADDR_STRLEN];

    assert_int_equal(netaddr_parse_listen("[::1]:25", &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    assert_int_equal(netaddr_port((struct sockaddr *)&ss), 25);
    assert_string_equal(netaddr_to_str((struct sockaddr *)&ss, s, sizeof(s)), "::1");
    assert_int_equal(netaddr_parse_listen("[2001:db8::25]:587", &ss, &len), 0);
    assert_string_equal(netaddr_to_str((struct sockaddr *)&ss, s, sizeof(s)), "2001:db8::25");
    assert_int_equal(netaddr_parse_listen(":587", &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(netaddr_port((struct sockaddr *)&ss), 587);
    assert_int_equal(netaddr_parse_listen("*:465", &ss, &len), 0);
    assert_int_equal(netaddr_port((struct sockaddr *)&ss), 465);
}

static void test_listen_bad(void **state)
{
    static const char *const bad[] = {
        "",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:65536",
        "127.0.0.1:-1",
        "127.0.0.1:2x",
        "localhost:25",
        "::1:25",
        "[::1]25",
        "[::1:25",
        "[]:25",
        "[127.0.0.1]:25",
        "1.2.3:25",
        "1.2.3.4.5:25",
        "127.0.0.1:123456",
        "[::1]:",
        "999.0.0.1:25",
        " 127.0.0.1:25",
        "[fe80::1%eth0]:25",
        "[0000:0000:0000:0000:0000:0000:0000:0000:0000]:25",
    };
    struct sockaddr_storage ss;
    socklen_t len;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (netaddr_parse_listen(bad[i], &ss, &len) != PST_EINVAL)
            fail_msg("accepted bad listen spec '%s'", bad[i]);
    }
    assert_int_equal(netaddr_parse_listen(NULL, &ss, &len), PST_EINVAL);
}

static void test_listen_socket(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd = netaddr_listen("127.0.0.1:0", 8);

    assert_true(fd >= 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_true(netaddr_port((struct sockaddr *)&ss) > 0);
    close(fd);
    assert_int_equal(netaddr_listen("nonsense", 8), PST_EINVAL);
}

static void test_cidr_parse(void **state)
{
    struct netaddr_cidr n;

    assert_int_equal(netaddr_parse_cidr("192.0.2.0/24", &n), 0);
    assert_int_equal(n.family, AF_INET);
    assert_int_equal(n.prefix, 24);
    assert_int_equal(netaddr_parse_cidr("192.0.2.7", &n), 0);
    assert_int_equal(n.prefix, 32);
    assert_int_equal(netaddr_parse_cidr("2001:db8::/32", &n), 0);
    assert_int_equal(n.family, AF_INET6);
    assert_int_equal(n.prefix, 32);
    assert_int_equal(netaddr_parse_cidr("::1", &n), 0);
    assert_int_equal(n.prefix, 128);
    assert_int_equal(netaddr_parse_cidr("0.0.0.0/0", &n), 0);
    assert_int_equal(n.prefix, 0);
    assert_int_equal(netaddr_parse_cidr("::/0", &n), 0);
}

static void test_cidr_bad(void **state)
{
    static const char *const bad[] = {
        "",
        "/24",
        "192.0.2.0/",
        "192.0.2.0/33",
        "2001:db8::/129",
        "192.0.2.0/-1",
        "192.0.2.0/2a",
        "192.0.2.1/24",
        "10.0.0.1/8",
        "192.0.2.0/24/1",
        "example.org",
        "192.0.2",
        "2001:db8::1/32",
        "192.0.2.0 /24",
        "192.0.2.0/0024",
    };
    struct netaddr_cidr n;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (netaddr_parse_cidr(bad[i], &n) != PST_EINVAL)
            fail_msg("accepted bad cidr '%s'", bad[i]);
    }
}

static void test_cidr_match_v4(void **state)
{
    assert_true(match("192.0.2.0/24", "192.0.2.1"));
    assert_true(match("192.0.2.0/24", "192.0.2.255"));
    assert_false(match("192.0.2.0/24", "192.0.3.0"));
    assert_true(match("192.0.2.7/32", "192.0.2.7"));
    assert_false(match("192.0.2.7/32", "192.0.2.6"));
    assert_true(match("0.0.0.0/0", "203.0.113.9"));
    assert_true(match("10.0.0.0/9", "10.127.255.255"));
    assert_false(match("10.0.0.0/9", "10.128.0.0"));
    /* v4 network never matches a plain v6 client */
    assert_false(match("0.0.0.0/0", "2001:db8::1"));
}

static void test_cidr_match_v6(void **state)
{
    assert_true(match("2001:db8::/32", "2001:db8:ffff::1"));
    assert_false(match("2001:db8::/32", "2001:db9::1"));
    assert_true(match("::1/128", "::1"));
    assert_false(match("::1/128", "::2"));
    assert_true(match("::/0", "2001:db8::1"));
    assert_true(match("2001:db8::/33", "2001:db8:7fff::1"));
    assert_false(match("2001:db8::/33", "2001:db8:8000::1"));
}

static void test_cidr_match_v4_mapped(void **state)
{
    assert_true(match("192.0.2.0/24", "::ffff:192.0.2.9"));
    assert_false(match("192.0.2.0/24", "::ffff:192.0.3.9"));
    assert_true(match("127.0.0.1", "::ffff:127.0.0.1"));
    assert_true(match("0.0.0.0/0", "::ffff:8.8.8.8"));
    /* not mapped: an IPv4-compatible-looking v6 address must not match */
    assert_false(match("192.0.2.0/24", "::192.0.2.9"));
    /* a v6 network written in mapped form matches a plain v4 client */
    assert_true(match("::ffff:192.0.2.0/120", "192.0.2.5"));
    assert_false(match("2001:db8::/32", "192.0.2.5"));
}

static void test_misc(void **state)
{
    struct sockaddr sa;
    char s[4];
    struct netaddr_cidr n;

    memset(&sa, 0, sizeof(sa));
    sa.sa_family = AF_UNIX;
    assert_int_equal(netaddr_port(&sa), 0);
    assert_int_equal(netaddr_port(NULL), 0);
    assert_string_equal(netaddr_to_str(&sa, s, sizeof(s)), "?");
    assert_int_equal(netaddr_parse_cidr("10.0.0.0/8", &n), 0);
    assert_false(netaddr_cidr_match(&n, &sa));
    assert_false(netaddr_cidr_match(&n, NULL));
    /* too small output buffer */
    struct sockaddr_storage ss = mk("2001:db8::1");
    assert_string_equal(netaddr_to_str((struct sockaddr *)&ss, s, sizeof(s)), "?");
}

static void test_split_hostport(void **state)
{
    (void)state;
    char host[16];
    uint16_t port = 0;

    assert_int_equal(netaddr_split_hostport("127.0.0.1:8444", host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8444);
    assert_int_equal(netaddr_split_hostport("[::1]:1", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 1);
    assert_int_equal(netaddr_split_hostport("node.example:65535", host, sizeof(host), &port), 0);
    assert_string_equal(host, "node.example");

    static const char *const bad[] = {
        "127.0.0.1", ":8444", "h:0", "h:65536", "h:", "h:8x", "[::1:8444", "[]:1", "h:-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(netaddr_split_hostport(bad[i], host, sizeof(host), &port), PST_EINVAL);
    assert_int_equal(netaddr_split_hostport("a-very-long-host-name:1", host, sizeof(host), &port),
                     PST_ELIMIT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen_v4),
        cmocka_unit_test(test_listen_v6_and_any),
        cmocka_unit_test(test_listen_bad),
        cmocka_unit_test(test_listen_socket),
        cmocka_unit_test(test_cidr_parse),
        cmocka_unit_test(test_cidr_bad),
        cmocka_unit_test(test_cidr_match_v4),
        cmocka_unit_test(test_cidr_match_v6),
        cmocka_unit_test(test_cidr_match_v4_mapped),
        cmocka_unit_test(test_misc),
        cmocka_unit_test(test_split_hostport),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
