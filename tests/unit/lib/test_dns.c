/*
 * test_dns.c - unit tests for src/lib/dns.c: the MX RDATA parser (good,
 * truncated, overlong labels, compression pointers, root), domain checks,
 * preference sorting with shuffling of equal preferences, argument checks,
 * and end-to-end lookups against a private dnsmasq on 127.0.0.1 (MX order,
 * implicit MX, null MX, NXDOMAIN, DNS_NO_MX, cancel, free with queries in
 * flight) plus a timeout against a UDP port where nothing answers.
 *
 * The dnsmasq tests are skipped when /usr/sbin/dnsmasq is absent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <event2/event.h>

#include "lib/dns.h"
#include "lib/err.h"

#define DNSMASQ_PATH "/usr/sbin/dnsmasq"
#define T_SAFETY_SEC 20 /* loop guard: a lookup that never reports fails the test */
#define T_TIMEOUT_SEC 1

/* ---- rdata parser ---- */

static int parse(const void *rd, size_t len, unsigned *pref, char *name, size_t namesz)
{
    return dns_parse_mx_rdata(rd, len, pref, name, namesz);
}

static void test_rdata_good(void **state)
{
    static const unsigned char rd[] = "\x00\x0a\x04mail\x07"
                                      "example\x03"
                                      "com\x00";
    char name[256];
    unsigned pref = 0;

    assert_int_equal(parse(rd, sizeof(rd) - 1, &pref, name, sizeof(name)), 0);
    assert_int_equal(pref, 10);
    assert_string_equal(name, "mail.example.com");

    static const unsigned char hi[] = "\xff\xff\x02mx\x00";
    assert_int_equal(parse(hi, sizeof(hi) - 1, &pref, name, sizeof(name)), 0);
    assert_int_equal(pref, 65535);
    assert_string_equal(name, "mx");

    static const unsigned char us[] = "\x00\x01\x05_a-b9\x00";
    assert_int_equal(parse(us, sizeof(us) - 1, &pref, name, sizeof(name)), 0);
    assert_string_equal(name, "_a-b9");
}

static void test_rdata_root(void **state)
{
    static const unsigned char rd[] = {0, 0, 0};
    char name[8];
    unsigned pref = 99;

    assert_int_equal(parse(rd, sizeof(rd), &pref, name, sizeof(name)), 0);
    assert_int_equal(pref, 0);
    assert_string_equal(name, ".");
    assert_int_equal(parse(rd, sizeof(rd), &pref, name, 1), PST_ELIMIT);
}

static void test_rdata_truncated(void **state)
{
    static const unsigned char rd[] = "\x00\x0a\x04mail\x03"
                                      "com\x00";
    char name[256];
    unsigned pref;
    size_t cut;

    for (cut = 0; cut < sizeof(rd) - 1; cut++)
        assert_int_equal(parse(rd, cut, &pref, name, sizeof(name)), PST_EINVAL);
    /* trailing garbage after the name */
    static const unsigned char tail[] = "\x00\x0a\x02mx\x00\x01";
    assert_int_equal(parse(tail, sizeof(tail) - 1, &pref, name, sizeof(name)), PST_EINVAL);
    assert_int_equal(parse(NULL, 3, &pref, name, sizeof(name)), PST_EINVAL);
}

static void test_rdata_overlong(void **state)
{
    unsigned char rd[2 + 1 + 64 + 1];
    unsigned char big[2 + 300];
    char name[512];
    unsigned pref;
    size_t pos, i;

    /* a 64-octet label (0x40 is also the extended-label bit) */
    memset(rd, 'a', sizeof(rd));
    rd[0] = 0;
    rd[1] = 1;
    rd[2] = 64;
    rd[sizeof(rd) - 1] = 0;
    assert_int_equal(parse(rd, sizeof(rd), &pref, name, sizeof(name)), PST_EINVAL);
    /* 63 is fine */
    rd[2] = 63;
    assert_int_equal(parse(rd, sizeof(rd) - 1, &pref, name, sizeof(name)), PST_EINVAL);
    rd[sizeof(rd) - 2] = 0;
    assert_int_equal(parse(rd, sizeof(rd) - 1, &pref, name, sizeof(name)), 0);
    assert_int_equal(strlen(name), 63);

    /* names of 255 octets pass, 257 do not: labels of 63 + final label */
    memset(big, 0, sizeof(big));
    pos = 2;
    for (i = 0; i < 3; i++) {
        big[pos++] = 63;
        memset(big + pos, 'b', 63);
        pos += 63;
    }
    big[pos++] = 61; /* 3*64 + 62 + 1 (root) = 255 */
    memset(big + pos, 'c', 61);
    pos += 61;
    big[pos++] = 0;
    assert_int_equal(parse(big, pos, &pref, name, sizeof(name)), 0);
    assert_int_equal(strlen(name), 253);
    assert_int_equal(parse(big, pos, &pref, name, 253), PST_ELIMIT);
    big[2 + 3 * 64] = 62; /* make the last label one longer: 256 octets */
    memset(big + 2 + 3 * 64 + 1, 'c', 62);
    big[2 + 3 * 64 + 1 + 62] = 0;
    assert_int_equal(parse(big, 2 + 3 * 64 + 1 + 62 + 1, &pref, name, sizeof(name)), PST_EINVAL);
}

static void test_rdata_compression(void **state)
{
    static const unsigned char ptr[] = {0, 10, 0xc0, 0x0c};
    static const unsigned char ptr2[] = {0, 10, 2, 'm', 'x', 0xc0, 0x0c};
    static const unsigned char ext[] = {0, 10, 0x41, 'a', 0};
    static const unsigned char ext2[] = {0, 10, 0x80, 0};
    char name[256];
    unsigned pref;

    assert_int_equal(parse(ptr, sizeof(ptr), &pref, name, sizeof(name)), PST_EINVAL);
    assert_int_equal(parse(ptr2, sizeof(ptr2), &pref, name, sizeof(name)), PST_EINVAL);
    assert_int_equal(parse(ext, sizeof(ext), &pref, name, sizeof(name)), PST_EINVAL);
    assert_int_equal(parse(ext2, sizeof(ext2), &pref, name, sizeof(name)), PST_EINVAL);
}

static void test_rdata_bad_chars(void **state)
{
    static const unsigned char nul[] = {0, 10, 3, 'a', 0, 'b', 0};
    static const unsigned char dot[] = {0, 10, 3, 'a', '.', 'b', 0};
    static const unsigned char sp[] = {0, 10, 3, 'a', ' ', 'b', 0};
    static const unsigned char hi[] = {0, 10, 3, 'a', 0xc3, 'b', 0};
    char name[256];
    unsigned pref;

    assert_int_equal(parse(nul, sizeof(nul), &pref, name, sizeof(name)), PST_EINVAL);
    assert_int_equal(parse(dot, sizeof(dot), &pref, name, sizeof(name)), PST_EINVAL);
    assert_int_equal(parse(sp, sizeof(sp), &pref, name, sizeof(name)), PST_EINVAL);
    assert_int_equal(parse(hi, sizeof(hi), &pref, name, sizeof(name)), PST_EINVAL);
}

static void test_domain_valid(void **state)
{
    char lab64[80], long254[300];
    size_t i;

    assert_true(dns_domain_valid("example.com"));
    assert_true(dns_domain_valid("example.com."));
    assert_true(dns_domain_valid("xn--bcher-kva.example"));
    assert_true(dns_domain_valid("localhost"));
    assert_false(dns_domain_valid(NULL));
    assert_false(dns_domain_valid(""));
    assert_false(dns_domain_valid("."));
    assert_false(dns_domain_valid("a..b"));
    assert_false(dns_domain_valid(".a"));
    assert_false(dns_domain_valid("a.b.."));
    assert_false(dns_domain_valid("b\xc3\xbc"
                                  "cher.de"));
    assert_false(dns_domain_valid("a b.example"));
    assert_false(dns_domain_valid("[192.0.2.1]"));
    memset(lab64, 'a', 64);
    lab64[64] = '\0';
    assert_false(dns_domain_valid(lab64));
    lab64[63] = '\0';
    assert_true(dns_domain_valid(lab64));
    for (i = 0; i < 254; i++)
        long254[i] = (i % 2) ? '.' : 'a';
    long254[253] = '\0'; /* 253 chars, ends with 'a' */
    assert_true(dns_domain_valid(long254));
    long254[253] = 'a';
    long254[254] = '\0';
    assert_false(dns_domain_valid(long254));
}

/* ---- sorting ---- */

static unsigned rnd_zero(void *ctx, unsigned n)
{
    (void)n;
    (*(unsigned *)ctx)++;
    return 0;
}

static void set_host(struct dns_host *h, const char *name, unsigned pref)
{
    memset(h, 0, sizeof(*h));
    snprintf(h->name, sizeof(h->name), "%s", name);
    h->pref = pref;
}

static void test_sort_order(void **state)
{
    static struct dns_host h[6];
    unsigned calls = 0;

    set_host(&h[0], "b20", 20);
    set_host(&h[1], "a10", 10);
    set_host(&h[2], "b10", 10);
    set_host(&h[3], "c10", 10);
    set_host(&h[4], "x5", 5);
    set_host(&h[5], "a20", 20);
    dns_sort_hosts(h, 6, rnd_zero, &calls);
    /* stable sort gives x5 | a10 b10 c10 | b20 a20; Fisher-Yates with k=0:
     * [a,b,c] -> swap(0,2) [c,b,a] -> swap(0,1) [b,c,a]; [b20,a20] -> [a20,b20] */
    assert_string_equal(h[0].name, "x5");
    assert_string_equal(h[1].name, "b10");
    assert_string_equal(h[2].name, "c10");
    assert_string_equal(h[3].name, "a10");
    assert_string_equal(h[4].name, "a20");
    assert_string_equal(h[5].name, "b20");
    assert_int_equal(calls, 3); /* 2 for the group of 3, 1 for the pair, 0 for x5 */
    dns_sort_hosts(NULL, 3, NULL, NULL);
    dns_sort_hosts(h, 0, NULL, NULL);
}

static void test_sort_shuffles(void **state)
{
    static struct dns_host h[4];
    int seen_first[3] = {0, 0, 0};
    int round;

    for (round = 0; round < 300; round++) {
        set_host(&h[0], "h0", 10);
        set_host(&h[1], "h1", 10);
        set_host(&h[2], "h2", 10);
        set_host(&h[3], "low", 1);
        dns_sort_hosts(h, 4, NULL, NULL);
        assert_string_equal(h[0].name, "low");
        assert_int_equal(h[1].pref, 10);
        assert_int_equal(h[3].pref, 10);
        assert_int_equal(h[1].name[0], 'h');
        seen_first[h[1].name[1] - '0']++;
    }
    /* each equal host comes first sometimes (chance of a false failure ~ 3*(2/3)^300) */
    assert_true(seen_first[0] > 0 && seen_first[1] > 0 && seen_first[2] > 0);
}

/* ---- resolver: argument checks ---- */

static void t_never(void *arg, const struct dns_mx_result *r)
{
    fail_msg("callback must not run");
}

static void test_resolver_args(void **state)
{
    struct event_base *base = event_base_new();
    struct dns_resolver *r;
    static const char *const bad[] = {"localhost", "1.2.3.4@0",       "1.2.3.4@65536",
                                      "1.2.3.4@",  "1.2.3.4@5x",      ",",
                                      " , ",       "1.2.3.4;5.6.7.8", "[::1]@53"};
    size_t i;

    assert_non_null(base);
    assert_null(dns_resolver_new(NULL, "127.0.0.1", 1));
    for (i = 0; i < PST_ARRAY_LEN(bad); i++)
        assert_null(dns_resolver_new(base, bad[i], 1));

    r = dns_resolver_new(base, " 127.0.0.1@5353 , ::1@53,192.0.2.1", 1);
    assert_non_null(r);
    assert_int_equal(dns_resolver_set_option(r, "no-such-option:", "1"), PST_ECONFIG);
    assert_int_equal(dns_resolver_set_option(r, "do-ip6:", "no"), 0);
    assert_null(dns_lookup_mx(r, "bad..domain", 25, 0, t_never, NULL));
    assert_null(dns_lookup_mx(r,
                              "b\xc3\xbc"
                              "cher.de",
                              25, 0, t_never, NULL));
    assert_null(dns_lookup_mx(r, "example.com", 0, 0, t_never, NULL));
    assert_null(dns_lookup_mx(r, "example.com", 65536, 0, t_never, NULL));
    assert_null(dns_lookup_mx(r, "example.com", 25, 0x100, t_never, NULL));
    assert_null(dns_lookup_mx(r, "example.com", 25, 0, NULL, NULL));
    assert_null(dns_lookup_mx(NULL, "example.com", 25, 0, t_never, NULL));
    dns_cancel(NULL);
    dns_resolver_free(&r);
    assert_null(r);
    dns_resolver_free(&r);
    dns_resolver_free(NULL);
    event_base_free(base);
}

static void test_status_str(void **state)
{
    assert_string_equal(dns_status_str(DNS_OK), "ok");
    assert_string_equal(dns_status_str(DNS_NULL_MX), "null-mx");
    assert_string_equal(dns_status_str(DNS_NXDOMAIN), "nxdomain");
    assert_string_equal(dns_status_str(DNS_TEMPFAIL), "tempfail");
}

/* ---- end to end ---- */

struct t_dnsmasq {
    pid_t pid;
    unsigned port;
};

struct t_wait {
    struct event_base *base;
    int called;
    struct dns_mx_result res;
    struct dns_resolver **free_in_cb; /* if set, free the resolver from the callback */
};

static void t_cb(void *arg, const struct dns_mx_result *r)
{
    struct t_wait *w = arg;

    w->called++;
    w->res = *r;
    if (w->free_in_cb != NULL)
        dns_resolver_free(w->free_in_cb);
    event_base_loopbreak(w->base);
}

static void t_guard(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

/* t_run - dispatch base until a callback or T_SAFETY_SEC (or max_sec) pass. */
static void t_run(struct event_base *base, unsigned max_sec)
{
    struct event *guard = evtimer_new(base, t_guard, base);
    struct timeval tv = {(time_t)max_sec, 0};

    assert_non_null(guard);
    assert_int_equal(evtimer_add(guard, &tv), 0);
    assert_int_equal(event_base_dispatch(base), 0);
    event_free(guard);
}

static unsigned t_free_udp_port(void)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);

    assert_true(fd >= 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    return ntohs(sin.sin_port);
}

/* t_udp_port_taken - 1 once someone (dnsmasq) has bound 127.0.0.1:port. */
static int t_udp_port_taken(unsigned port)
{
    struct sockaddr_in sin;
    int fd = socket(AF_INET, SOCK_DGRAM, 0), taken;

    assert_true(fd >= 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    taken = bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 && errno == EADDRINUSE;
    close(fd);
    return taken;
}

static pid_t t_spawn_dnsmasq(unsigned port)
{
    char portarg[32];
    pid_t pid;

    snprintf(portarg, sizeof(portarg), "--port=%u", port);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        /* root in CI: stay root instead of dropping to "nobody" */
        const char *user = geteuid() == 0 ? "--user=root" : (const char *)NULL;

        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execl(DNSMASQ_PATH, "dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts",
              "--conf-file=/dev/null", portarg, "--listen-address=127.0.0.1", "--bind-interfaces",
              "--pid-file=", "--local=/test/", "--mx-host=example.test,mx1.example.test,10",
              "--mx-host=example.test,mx2.example.test,20",
              "--host-record=mx1.example.test,127.0.0.2",
              "--host-record=mx2.example.test,127.0.0.3", "--host-record=plain.test,127.0.0.4",
              "--host-record=six.test,::5", "--mx-host=nullmx.test,.,0",
              "--mx-host=dangling.test,nohost.test,10", user, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int t_dnsmasq_setup(void **state)
{
    static struct t_dnsmasq d;
    int attempt, i, st;

    memset(&d, 0, sizeof(d));
    *state = &d;
    if (access(DNSMASQ_PATH, X_OK) != 0)
        return 0;
    for (attempt = 0; attempt < 5; attempt++) {
        d.port = t_free_udp_port();
        d.pid = t_spawn_dnsmasq(d.port);
        for (i = 0; i < 200; i++) { /* up to 10 s */
            if (t_udp_port_taken(d.port))
                return 0;
            if (waitpid(d.pid, &st, WNOHANG) == d.pid)
                break; /* died: port clash on TCP? try another port */
            usleep(50 * 1000);
        }
        if (i == 200) {
            kill(d.pid, SIGKILL);
            waitpid(d.pid, &st, 0);
        }
        d.pid = 0;
    }
    return -1;
}

static int t_dnsmasq_teardown(void **state)
{
    struct t_dnsmasq *d = *state;
    int st;

    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        waitpid(d->pid, &st, 0);
        d->pid = 0;
    }
    return 0;
}

/* t_resolver - a resolver pointed at our dnsmasq; "test." unblocked in libunbound. */
static struct dns_resolver *t_resolver(void **state, struct t_wait *w)
{
    struct t_dnsmasq *d = *state;
    char fwd[64];
    struct dns_resolver *r;

    if (d->pid <= 0)
        skip();
    w->base = event_base_new();
    assert_non_null(w->base);
    snprintf(fwd, sizeof(fwd), "127.0.0.1@%u", d->port);
    r = dns_resolver_new(w->base, fwd, 10);
    assert_non_null(r);
    assert_int_equal(dns_resolver_set_option(r, "local-zone:", "test. transparent"), 0);
    return r;
}

static void t_lookup(struct dns_resolver *r, struct t_wait *w, const char *domain, unsigned port,
                     int flags)
{
    memset(&w->res, 0, sizeof(w->res));
    w->called = 0;
    assert_non_null(dns_lookup_mx(r, domain, port, flags, t_cb, w));
    assert_int_equal(w->called, 0); /* never synchronous */
    t_run(w->base, T_SAFETY_SEC);
    assert_int_equal(w->called, 1);
}

static void assert_addr4(const struct dns_host *h, size_t i, const char *ip, unsigned port)
{
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)&h->addr[i];
    char buf[INET_ADDRSTRLEN];

    assert_true(i < h->naddr);
    assert_int_equal(s4->sin_family, AF_INET);
    assert_int_equal(h->addrlen[i], sizeof(struct sockaddr_in));
    assert_non_null(inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof(buf)));
    assert_string_equal(buf, ip);
    assert_int_equal(ntohs(s4->sin_port), port);
}

static void test_e2e_mx_order(void **state)
{
    struct t_wait w = {0};
    struct dns_resolver *r = t_resolver(state, &w);

    t_lookup(r, &w, "example.test", 2525, 0);
    assert_int_equal(w.res.status, DNS_OK);
    assert_int_equal(w.res.nhosts, 2);
    assert_string_equal(w.res.host[0].name, "mx1.example.test");
    assert_int_equal(w.res.host[0].pref, 10);
    assert_int_equal(w.res.host[0].naddr, 1);
    assert_addr4(&w.res.host[0], 0, "127.0.0.2", 2525);
    assert_string_equal(w.res.host[1].name, "mx2.example.test");
    assert_int_equal(w.res.host[1].pref, 20);
    assert_addr4(&w.res.host[1], 0, "127.0.0.3", 2525);

    /* trailing dot, and a second query on the same resolver */
    t_lookup(r, &w, "example.test.", 25, 0);
    assert_int_equal(w.res.status, DNS_OK);
    assert_int_equal(w.res.nhosts, 2);
    dns_resolver_free(&r);
    event_base_free(w.base);
}

static void test_e2e_implicit_mx(void **state)
{
    struct t_wait w = {0};
    struct dns_resolver *r = t_resolver(state, &w);
    const struct sockaddr_in6 *s6;
    char buf[INET6_ADDRSTRLEN];

    t_lookup(r, &w, "plain.test", 25, 0);
    assert_int_equal(w.res.status, DNS_OK);
    assert_int_equal(w.res.nhosts, 1);
    assert_string_equal(w.res.host[0].name, "plain.test");
    assert_int_equal(w.res.host[0].pref, 0);
    assert_addr4(&w.res.host[0], 0, "127.0.0.4", 25);

    /* an IPv6-only implicit MX */
    t_lookup(r, &w, "six.test", 25, 0);
    assert_int_equal(w.res.status, DNS_OK);
    assert_int_equal(w.res.nhosts, 1);
    assert_int_equal(w.res.host[0].naddr, 1);
    s6 = (const struct sockaddr_in6 *)&w.res.host[0].addr[0];
    assert_int_equal(s6->sin6_family, AF_INET6);
    assert_int_equal(w.res.host[0].addrlen[0], sizeof(*s6));
    assert_string_equal(inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof(buf)), "::5");
    assert_int_equal(ntohs(s6->sin6_port), 25);
    dns_resolver_free(&r);
    event_base_free(w.base);
}

static void test_e2e_null_mx(void **state)
{
    struct t_wait w = {0};
    struct dns_resolver *r = t_resolver(state, &w);

    t_lookup(r, &w, "nullmx.test", 25, 0);
    assert_int_equal(w.res.status, DNS_NULL_MX);
    assert_int_equal(w.res.nhosts, 0);
    assert_non_null(strstr(w.res.why, "null MX"));
    dns_resolver_free(&r);
    event_base_free(w.base);
}

static void test_e2e_nxdomain(void **state)
{
    struct t_wait w = {0};
    struct dns_resolver *r = t_resolver(state, &w);

    t_lookup(r, &w, "nx.test", 25, 0);
    assert_int_equal(w.res.status, DNS_NXDOMAIN);
    assert_int_equal(w.res.nhosts, 0);
    assert_non_null(strstr(w.res.why, "NXDOMAIN"));

    /* MX whose only host does not exist: permanent */
    t_lookup(r, &w, "dangling.test", 25, 0);
    assert_int_equal(w.res.status, DNS_NXDOMAIN);
    assert_string_equal(w.res.why, "no MX host has an address record");

    /* name exists, no MX and no address */
    t_lookup(r, &w, "example.test", 25, DNS_NO_MX);
    assert_int_equal(w.res.status, DNS_NXDOMAIN);
    dns_resolver_free(&r);
    event_base_free(w.base);
}

static void test_e2e_no_mx_flag(void **state)
{
    struct t_wait w = {0};
    struct dns_resolver *r = t_resolver(state, &w);

    t_lookup(r, &w, "mx2.example.test", 587, DNS_NO_MX);
    assert_int_equal(w.res.status, DNS_OK);
    assert_int_equal(w.res.nhosts, 1);
    assert_string_equal(w.res.host[0].name, "mx2.example.test");
    assert_addr4(&w.res.host[0], 0, "127.0.0.3", 587);

    t_lookup(r, &w, "nothere.test", 25, DNS_NO_MX);
    assert_int_equal(w.res.status, DNS_NXDOMAIN);
    assert_string_equal(w.res.why, "host has no address records");
    dns_resolver_free(&r);
    event_base_free(w.base);
}

static void test_e2e_cancel(void **state)
{
    struct t_wait w = {0}, w2 = {0};
    struct dns_resolver *r = t_resolver(state, &w);
    struct dns_query *q;

    w2.base = w.base;
    /* cancelled query: only the second callback runs */
    q = dns_lookup_mx(r, "example.test", 25, 0, t_cb, &w);
    assert_non_null(q);
    dns_cancel(q);
    t_lookup(r, &w2, "plain.test", 25, 0);
    assert_int_equal(w.called, 0);
    assert_int_equal(w2.res.status, DNS_OK);

    /* free with queries in flight: no callback, no leak */
    assert_non_null(dns_lookup_mx(r, "example.test", 25, 0, t_cb, &w));
    assert_non_null(dns_lookup_mx(r, "nullmx.test", 25, 0, t_cb, &w));
    dns_resolver_free(&r);
    assert_null(r);
    assert_int_equal(w.called, 0);
    event_base_free(w.base);
}

static void test_e2e_free_in_callback(void **state)
{
    struct t_wait w = {0}, w2 = {0};
    struct dns_resolver *r = t_resolver(state, &w);

    w2.base = w.base;
    w.free_in_cb = &r;
    w2.free_in_cb = &r;
    assert_non_null(dns_lookup_mx(r, "plain.test", 25, 0, t_cb, &w));
    assert_non_null(dns_lookup_mx(r, "example.test", 25, 0, t_cb, &w2));
    t_run(w.base, T_SAFETY_SEC);
    /* whichever finished first freed the resolver; the other is never reported */
    assert_int_equal(w.called + w2.called, 1);
    assert_null(r);
    event_base_free(w.base);
}

/* test_timeout - a forwarder that swallows queries: TEMPFAIL from our timer. */
static void test_timeout(void **state)
{
    struct t_wait w = {.base = event_base_new()};
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    char fwd[64];
    struct dns_resolver *r;

    assert_true(fd >= 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    snprintf(fwd, sizeof(fwd), "127.0.0.1@%u", ntohs(sin.sin_port));
    r = dns_resolver_new(w.base, fwd, T_TIMEOUT_SEC);
    assert_non_null(r);

    t_lookup(r, &w, "example.com", 25, 0);
    assert_int_equal(w.res.status, DNS_TEMPFAIL);
    assert_int_equal(w.res.nhosts, 0);
    assert_true(w.res.why[0] != '\0');

    t_lookup(r, &w, "relay.example.com", 25, DNS_NO_MX);
    assert_int_equal(w.res.status, DNS_TEMPFAIL);
    dns_resolver_free(&r);
    close(fd);
    event_base_free(w.base);
}

int main(void)
{
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_rdata_good),        cmocka_unit_test(test_rdata_root),
        cmocka_unit_test(test_rdata_truncated),   cmocka_unit_test(test_rdata_overlong),
        cmocka_unit_test(test_rdata_compression), cmocka_unit_test(test_rdata_bad_chars),
        cmocka_unit_test(test_domain_valid),      cmocka_unit_test(test_sort_order),
        cmocka_unit_test(test_sort_shuffles),     cmocka_unit_test(test_resolver_args),
        cmocka_unit_test(test_status_str),        cmocka_unit_test(test_timeout),
    };
    const struct CMUnitTest e2e[] = {
        cmocka_unit_test(test_e2e_mx_order),         cmocka_unit_test(test_e2e_implicit_mx),
        cmocka_unit_test(test_e2e_null_mx),          cmocka_unit_test(test_e2e_nxdomain),
        cmocka_unit_test(test_e2e_no_mx_flag),       cmocka_unit_test(test_e2e_cancel),
        cmocka_unit_test(test_e2e_free_in_callback),
    };
    int fails = cmocka_run_group_tests_name("dns", pure, NULL, NULL);

    fails += cmocka_run_group_tests_name("dns_dnsmasq", e2e, t_dnsmasq_setup, t_dnsmasq_teardown);
    return fails;
}
