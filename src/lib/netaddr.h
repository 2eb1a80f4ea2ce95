/*
 * netaddr.h - socket addresses: listen specs, CIDR networks, printing.
 *
 * Pure helpers, no I/O except netaddr_listen(), which creates a bound,
 * listening, non-blocking socket. IPv4 and IPv6. IPv4-mapped IPv6 client
 * addresses (::ffff:a.b.c.d) match IPv4 networks.
 */
#ifndef POSTERN_NETADDR_H
#define POSTERN_NETADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "err.h"

#define NETADDR_STRLEN 64 /* enough for "[v6]:port" */

struct netaddr_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    unsigned prefix; /* 0..32 or 0..128 */
};

/* netaddr_parse_listen - "host:port", "[v6]:port" or ":port" (all addresses) into *ss and *sslen.
 * Numeric hosts only. */
PST_MUST_CHECK int netaddr_parse_listen(const char *spec, struct sockaddr_storage *ss,
                                        socklen_t *sslen);

/*
 * netaddr_split_hostport - split "host:port" or "[v6]:port" into host (hostsz bytes,
 * brackets removed) and port 1..65535. The host is not checked beyond being non-empty.
 * PST_EINVAL for a malformed spec, PST_ELIMIT if host does not fit.
 */
PST_MUST_CHECK int netaddr_split_hostport(const char *spec, char *host, size_t hostsz,
                                          uint16_t *port);

/* netaddr_listen - socket(), SO_REUSEADDR, bind, listen(backlog), O_NONBLOCK|FD_CLOEXEC. Returns fd
 * or PST_EIO (errno set). */
int netaddr_listen(const char *spec, int backlog);

/* netaddr_parse_cidr - "192.0.2.0/24", "2001:db8::/32", or a single address (full-length prefix).
 */
PST_MUST_CHECK int netaddr_parse_cidr(const char *s, struct netaddr_cidr *out);

/* netaddr_cidr_match - 1 if sa is inside net, else 0. */
int netaddr_cidr_match(const struct netaddr_cidr *net, const struct sockaddr *sa);

/* netaddr_to_str - numeric address without port ("192.0.2.7", "2001:db8::1") into out. Returns out.
 */
const char *netaddr_to_str(const struct sockaddr *sa, char *out, size_t outsz);

/* netaddr_port - port of sa in host order, 0 if not IP. */
unsigned netaddr_port(const struct sockaddr *sa);

#endif
