/*
 * dns.h - asynchronous MX/address resolution for outbound mail (libunbound
 * driven by a libevent loop).
 *
 * One dns_resolver per process (or per event base): it owns a libunbound
 * context whose result pipe is watched by a persistent EV_READ event.
 * dns_lookup_mx() resolves a mail domain to an ordered list of hosts with
 * their addresses (RFC 5321 5.1, RFC 7505 null MX) and reports once through
 * a callback. See docs/dns.md for the resolution rules.
 *
 * Not thread-safe: use a resolver only from the thread running its base.
 */
#ifndef POSTERN_DNS_H
#define POSTERN_DNS_H

#include <stddef.h>
#include <sys/socket.h>

#include "err.h"

struct event_base;

#define DNS_MAX_MX 16    /* MX hosts kept (lowest preferences win) */
#define DNS_MAX_ADDRS 8  /* addresses kept per host (IPv4 first, then IPv6) */
#define DNS_NAME_MAX 253 /* presentation form, without the trailing dot */
#define DNS_WHY_MAX 160
#define DNS_TIMEOUT_DEFAULT 30u /* seconds, when timeout_sec is 0 */
#define DNS_TIMEOUT_MAX 600u

/* dns_lookup_mx flags */
#define DNS_NO_MX 0x1 /* skip MX: resolve the domain itself as a host ("[relay.example]") */

enum dns_status {
    DNS_OK = 0,
    DNS_NULL_MX,  /* RFC 7505: the domain does not accept mail (permanent, 5.1.10) */
    DNS_NXDOMAIN, /* permanent: no such domain / no MX and no address */
    DNS_TEMPFAIL  /* SERVFAIL, timeout, network, resolver error: retry later */
};

struct dns_host {
    char name[256]; /* host name, presentation form, no trailing dot */
    unsigned pref;  /* MX preference (0 for implicit MX and DNS_NO_MX) */
    size_t naddr;   /* >= 1 in a DNS_OK result */
    struct sockaddr_storage addr[DNS_MAX_ADDRS]; /* port already set */
    socklen_t addrlen[DNS_MAX_ADDRS];
};

struct dns_mx_result {
    enum dns_status status;
    size_t nhosts;                    /* >= 1 when status == DNS_OK, else 0 */
    struct dns_host host[DNS_MAX_MX]; /* in the order to try them */
    char
        why[DNS_WHY_MAX]; /* human-readable reason when status != DNS_OK ("" or a note otherwise) */
};

struct dns_resolver;
struct dns_query;

/* r is borrowed and valid only during the call; the query is finished and freed after it returns.
 */
typedef void (*dns_mx_cb)(void *arg, const struct dns_mx_result *r);

/*
 * dns_resolver_new - create a resolver on base (borrowed, must outlive it).
 * forwarder: NULL or "" = the servers of /etc/resolv.conf; otherwise a comma
 * separated list of numeric addresses with an optional "@port"
 * ("127.0.0.1@5353, ::1@53"). timeout_sec: per-query limit (0 = default,
 * capped at DNS_TIMEOUT_MAX). Returns NULL (logged) on bad configuration or
 * when libunbound/libevent fail. Caller frees with dns_resolver_free().
 */
struct dns_resolver *dns_resolver_new(struct event_base *base, const char *forwarder,
                                      unsigned timeout_sec);

/*
 * dns_resolver_set_option - pass one libunbound option (ub_ctx_set_option
 * syntax, e.g. "local-zone:", "test. transparent") to r. Only before the first
 * dns_lookup_mx(). Returns 0, PST_EINVAL (too late / NULL) or PST_ECONFIG
 * (rejected by libunbound, logged). opt and val are borrowed.
 */
PST_MUST_CHECK int dns_resolver_set_option(struct dns_resolver *r, const char *opt,
                                           const char *val);

/*
 * dns_resolver_free - cancel every outstanding query without calling its
 * callback, free the resolver and set *r to NULL. May be called from inside
 * a dns_mx_cb (the teardown is then finished when the callback returns).
 */
void dns_resolver_free(struct dns_resolver **r);

/*
 * dns_lookup_mx - start resolving domain (ASCII / A-labels only: the caller
 * converts IDNs; an optional trailing dot is accepted; no address literals).
 * port (1..65535) is written into every returned address. flags: 0 or
 * DNS_NO_MX. cb is called exactly once, later, from the event loop, unless
 * the query is cancelled or the resolver freed first. Returns NULL (logged)
 * on immediate failure - bad domain, bad port/flags, out of memory - and then
 * cb is never called. The returned handle is borrowed: valid until cb
 * returns or until dns_cancel().
 */
struct dns_query *dns_lookup_mx(struct dns_resolver *r, const char *domain, unsigned port,
                                int flags, dns_mx_cb cb, void *arg);

/* dns_cancel - stop q; its callback will not be called. NULL is a no-op. */
void dns_cancel(struct dns_query *q);

/* dns_status_str - "ok", "null-mx", "nxdomain", "tempfail". Never NULL. */
const char *dns_status_str(enum dns_status s);

/*
 * dns_parse_mx_rdata - parse MX RDATA (RFC 1035 3.3.9): 16-bit preference
 * then an uncompressed wire-format name which must end exactly at len.
 * Labels 1..63 octets of letters, digits, '-' or '_'; name <= 255 octets.
 * Writes the name in presentation form without trailing dot into name
 * (namesz bytes; the root is "."). Compression pointers and extended label
 * types are rejected. Returns 0, PST_EINVAL (malformed) or PST_ELIMIT
 * (namesz too small). Pure; reads untrusted data.
 */
PST_MUST_CHECK int dns_parse_mx_rdata(const unsigned char *rdata, size_t len, unsigned *pref,
                                      char *name, size_t namesz);

/*
 * dns_domain_valid - 1 if s is an ASCII host/domain name dns_lookup_mx
 * accepts (LDH and '_' labels of 1..63, total <= DNS_NAME_MAX, optional
 * trailing dot), else 0.
 */
int dns_domain_valid(const char *s);

/*
 * dns_sort_hosts - order hosts by ascending preference; hosts of equal
 * preference are shuffled (RFC 5321 5.1). rnd(ctx, n) must return a value
 * in [0, n); NULL uses arc4random_uniform. Exposed for tests.
 */
void dns_sort_hosts(struct dns_host *hosts, size_t n, unsigned (*rnd)(void *ctx, unsigned n),
                    void *ctx);

#endif
