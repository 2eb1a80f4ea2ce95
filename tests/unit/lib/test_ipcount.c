/*
 * test_ipcount.c - connections per client address: limits, release, IPv6 /64
 * grouping, IPv4-mapped addresses, many distinct clients.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "lib/ipcount.h"

static struct sockaddr_storage v4(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *s = (struct sockaddr_in *)&ss;
    s->sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, ip, &s->sin_addr), 1);
    return ss;
}

static struct sockaddr_storage v6(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
    s->sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, ip, &s->sin6_addr), 1);
    return ss;
}

#define SA(x) ((const struct sockaddr *)&(x))

static void test_limit_and_release(void **state)
{
    (void)state;
    struct ipcount *t = ipcount_new(7);
    struct sockaddr_storage a = v4("192.0.2.1"), b = v4("192.0.2.2");
    assert_non_null(t);
    assert_int_equal(ipcount_acquire(t, SA(a), 2), 0);
    assert_int_equal(ipcount_acquire(t, SA(a), 2), 0);
    assert_int_equal(ipcount_acquire(t, SA(a), 2), PST_ELIMIT);
    assert_int_equal(ipcount_get(t, SA(a)), 2);
    assert_int_equal(ipcount_acquire(t, SA(b), 2), 0); /* another client is not affected */
    ipcount_release(t, SA(a));
    assert_int_equal(ipcount_acquire(t, SA(a), 2), 0);
    ipcount_release(t, SA(a));
    ipcount_release(t, SA(a));
    assert_int_equal(ipcount_get(t, SA(a)), 0);
    assert_int_equal(ipcount_acquire(t, SA(a), 0), PST_ELIMIT);
    ipcount_free(&t);
    assert_null(t);
    ipcount_free(&t);
    assert_null(ipcount_new(0));
}

static void test_ipv6_per_64_and_mapped(void **state)
{
    (void)state;
    struct ipcount *t = ipcount_new(64);
    struct sockaddr_storage x = v6("2001:db8:1:2::1"), y = v6("2001:db8:1:2:ffff::9");
    struct sockaddr_storage z = v6("2001:db8:1:3::1");
    struct sockaddr_storage m = v6("::ffff:192.0.2.7"), p = v4("192.0.2.7");
    assert_int_equal(ipcount_acquire(t, SA(x), 1), 0);
    assert_int_equal(ipcount_acquire(t, SA(y), 1), PST_ELIMIT); /* same /64 */
    assert_int_equal(ipcount_acquire(t, SA(z), 1), 0);          /* next /64 */
    assert_int_equal(ipcount_acquire(t, SA(m), 1), 0);
    assert_int_equal(ipcount_acquire(t, SA(p), 1), PST_ELIMIT); /* mapped = the IPv4 client */
    ipcount_free(&t);                                           /* frees live entries */
}

static void test_many_clients(void **state)
{
    (void)state;
    struct ipcount *t = ipcount_new(16);
    char ip[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        struct sockaddr_storage a = v4(ip);
        assert_int_equal(ipcount_acquire(t, SA(a), 1), 0);
    }
    for (int i = 0; i < 5000; i += 2) {
        snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        struct sockaddr_storage a = v4(ip);
        ipcount_release(t, SA(a));
        assert_int_equal(ipcount_get(t, SA(a)), 0);
    }
    struct sockaddr_storage odd = v4("10.0.0.1");
    assert_int_equal(ipcount_get(t, SA(odd)), 1);
    ipcount_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limit_and_release),
        cmocka_unit_test(test_ipv6_per_64_and_mapped),
        cmocka_unit_test(test_many_clients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
