/*
 * netaddr.c - listen specs, CIDR networks and address printing (see netaddr.h).
 *
 * Listen spec grammar (numeric hosts only, no DNS at start-up):
 *
 *   spec  = host4 ":" port / "[" host6 "]" ":" port / [ "*" ] ":" port
 *   port  = 1*5DIGIT, 0..65535
 *
 * ":port" and "*:port" mean every address: the IPv6 wildcard with
 * IPV6_V6ONLY off (so IPv4 clients arrive as ::ffff:a.b.c.d), falling back
 * to 0.0.0.0 when the host has no IPv6.
 *
 * CIDR grammar: address [ "/" prefix ], prefix 0..32 (IPv4) or 0..128
 * (IPv6); without a prefix the network is the single address. Host bits
 * beyond the prefix must be zero ("10.0.0.1/8" is rejected): such a value
 * is almost always a typo in a relay list.
 *
 * Matching: an IPv4-mapped IPv6 address (RFC 4291 2.5.5.2) matches IPv4
 * networks, and an IPv4 address matches ::ffff:0:0/96-style networks.
 *
 * Failure policy: parsers return PST_EINVAL for bad syntax, never abort.
 * netaddr_listen returns PST_EINVAL for a bad spec and PST_EIO (errno set)
 * when a system call fails.
 */
#include "netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NETADDR_HOST_MAX 46 /* INET6_ADDRSTRLEN */
#define NETADDR_PORT_DIGITS 5
#define NETADDR_PORT_MAX 65535u

static const uint8_t netaddr_v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* netaddr_parse_uint - all-digit decimal of at most maxdigits, value <= max. */
static int netaddr_parse_uint(const char *s, size_t len, size_t maxdigits, unsigned max,
                              unsigned *out)
{
    unsigned v = 0;
    size_t i;

    if (len == 0 || len > maxdigits)
        return PST_EINVAL;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return PST_EINVAL;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > max)
        return PST_EINVAL;
    *out = v;
    return 0;
}

static int netaddr_set_any(struct sockaddr_storage *ss, socklen_t *sslen, unsigned port)
{
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

    s6->sin6_family = AF_INET6;
    s6->sin6_addr = in6addr_any;
    s6->sin6_port = htons((uint16_t)port);
    *sslen = sizeof(*s6);
    return 0;
}

int netaddr_parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *sslen)
{
    char host[NETADDR_HOST_MAX + 1];
    const char *colon, *hs;
    size_t hlen;
    unsigned port;

    if (spec == NULL || ss == NULL || sslen == NULL)
        return PST_EINVAL;
    memset(ss, 0, sizeof(*ss));
    colon = strrchr(spec, ':');
    if (colon == NULL)
        return PST_EINVAL;
    if (netaddr_parse_uint(colon + 1, strlen(colon + 1), NETADDR_PORT_DIGITS, NETADDR_PORT_MAX,
                           &port) < 0)
        return PST_EINVAL;
    hs = spec;
    hlen = (size_t)(colon - spec);
    if (hlen == 0 || (hlen == 1 && hs[0] == '*'))
        return netaddr_set_any(ss, sslen, port);
    if (hs[0] == '[') {
        if (hlen < 3 || hs[hlen - 1] != ']')
            return PST_EINVAL;
        hs++;
        hlen -= 2;
        if (hlen > NETADDR_HOST_MAX)
            return PST_EINVAL;
        memcpy(host, hs, hlen);
        host[hlen] = '\0';
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
            return PST_EINVAL;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *sslen = sizeof(*s6);
        return 0;
    }
    if (hlen > NETADDR_HOST_MAX)
        return PST_EINVAL;
    memcpy(host, hs, hlen);
    host[hlen] = '\0';
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
        return PST_EINVAL;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    *sslen = sizeof(*s4);
    return 0;
}

static int netaddr_is_any6(const struct sockaddr_storage *ss)
{
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
    return ss->ss_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr);
}

static int netaddr_bind_listen(const struct sockaddr_storage *ss, socklen_t sslen, int backlog)
{
    int fd, one = 1, saved;

    fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return PST_EIO;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
        goto fail;
    if (ss->ss_family == AF_INET6) {
        int v6only = netaddr_is_any6(ss) ? 0 : 1;
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) < 0)
            goto fail;
    }
    if (bind(fd, (const struct sockaddr *)ss, sslen) < 0)
        goto fail;
    if (listen(fd, backlog) < 0)
        goto fail;
    return fd;
fail:
    saved = errno;
    close(fd);
    errno = saved;
    return PST_EIO;
}

int netaddr_listen(const char *spec, int backlog)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    int fd;

    if (netaddr_parse_listen(spec, &ss, &sslen) < 0) {
        errno = EINVAL;
        return PST_EINVAL;
    }
    fd = netaddr_bind_listen(&ss, sslen, backlog);
    if (fd < 0 && netaddr_is_any6(&ss) && (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL)) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        in_port_t port = ((struct sockaddr_in6 *)&ss)->sin6_port;
        memset(&ss, 0, sizeof(ss));
        s4->sin_family = AF_INET;
        s4->sin_addr.s_addr = htonl(INADDR_ANY);
        s4->sin_port = port;
        fd = netaddr_bind_listen(&ss, sizeof(*s4), backlog);
    }
    return fd;
}

/* netaddr_host_bits_zero - 1 if every bit of addr past prefix is zero. */
static int netaddr_host_bits_zero(const uint8_t *addr, size_t alen, unsigned prefix)
{
    size_t i;

    for (i = 0; i < alen; i++) {
        unsigned bit0 = (unsigned)i * 8;
        uint8_t mask;
        if (bit0 + 8 <= prefix)
            continue;
        mask = bit0 >= prefix ? 0xff : (uint8_t)(0xffu >> (prefix - bit0));
        if (addr[i] & mask)
            return 0;
    }
    return 1;
}

int netaddr_parse_cidr(const char *s, struct netaddr_cidr *out)
{
    char host[NETADDR_HOST_MAX + 1];
    const char *slash;
    size_t hlen, alen;
    unsigned prefix, maxp;

    if (s == NULL || out == NULL)
        return PST_EINVAL;
    memset(out, 0, sizeof(*out));
    slash = strchr(s, '/');
    hlen = slash ? (size_t)(slash - s) : strlen(s);
    if (hlen == 0 || hlen > NETADDR_HOST_MAX)
        return PST_EINVAL;
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    if (inet_pton(AF_INET, host, out->addr) == 1) {
        out->family = AF_INET;
        alen = 4;
    } else if (inet_pton(AF_INET6, host, out->addr) == 1) {
        out->family = AF_INET6;
        alen = 16;
    } else {
        return PST_EINVAL;
    }
    maxp = (unsigned)alen * 8;
    prefix = maxp;
    if (slash && netaddr_parse_uint(slash + 1, strlen(slash + 1), 3, maxp, &prefix) < 0)
        return PST_EINVAL;
    if (!netaddr_host_bits_zero(out->addr, alen, prefix))
        return PST_EINVAL;
    out->prefix = prefix;
    return 0;
}

/* netaddr_prefix_eq - 1 if the first prefix bits of a and b are equal. */
static int netaddr_prefix_eq(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
    unsigned full = prefix / 8, rest = prefix % 8;

    if (full > 0 && memcmp(a, b, full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

int netaddr_cidr_match(const struct netaddr_cidr *net, const struct sockaddr *sa)
{
    uint8_t a[16];
    int fam;

    if (net == NULL || sa == NULL)
        return 0;
    if (sa->sa_family == AF_INET) {
        memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        fam = AF_INET;
    } else if (sa->sa_family == AF_INET6) {
        memcpy(a, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        fam = AF_INET6;
    } else {
        return 0;
    }
    if (net->family == fam) {
        if (net->prefix > (fam == AF_INET ? 32u : 128u))
            return 0;
        return netaddr_prefix_eq(net->addr, a, net->prefix);
    }
    if (net->family == AF_INET && fam == AF_INET6) {
        if (memcmp(a, netaddr_v4mapped_prefix, 12) != 0 || net->prefix > 32)
            return 0;
        return netaddr_prefix_eq(net->addr, a + 12, net->prefix);
    }
    if (net->family == AF_INET6 && fam == AF_INET) {
        uint8_t m[16];
        memcpy(m, netaddr_v4mapped_prefix, 12);
        memcpy(m + 12, a, 4);
        if (net->prefix > 128)
            return 0;
        return netaddr_prefix_eq(net->addr, m, net->prefix);
    }
    return 0;
}

const char *netaddr_to_str(const struct sockaddr *sa, char *out, size_t outsz)
{
    const void *src = NULL;

    if (out == NULL || outsz == 0)
        return out;
    if (sa != NULL && sa->sa_family == AF_INET)
        src = &((const struct sockaddr_in *)sa)->sin_addr;
    else if (sa != NULL && sa->sa_family == AF_INET6)
        src = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (src == NULL || outsz > (size_t)(socklen_t)-1 ||
        inet_ntop(sa->sa_family, src, out, (socklen_t)outsz) == NULL) {
        if (outsz >= 2) {
            out[0] = '?';
            out[1] = '\0';
        } else {
            out[0] = '\0';
        }
    }
    return out;
}

unsigned netaddr_port(const struct sockaddr *sa)
{
    if (sa == NULL)
        return 0;
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

int netaddr_split_hostport(const char *spec, char *host, size_t hostsz, uint16_t *port)
{
    const char *colon = strrchr(spec, ':');
    if (colon == NULL || colon == spec)
        return PST_EINVAL;
    const char *h = spec;
    size_t hlen = (size_t)(colon - spec);
    if (h[0] == '[') {
        if (hlen < 3 || h[hlen - 1] != ']')
            return PST_EINVAL;
        h++;
        hlen -= 2;
    }
    if (hlen >= hostsz)
        return PST_ELIMIT;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || end == colon + 1 || p < 1 || p > 65535)
        return PST_EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (uint16_t)p;
    return 0;
}
