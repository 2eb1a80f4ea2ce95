/*
 * dns.c - MX and address resolution for outbound mail on libunbound,
 * driven by a libevent loop (see dns.h, docs/dns.md).
 *
 * Structure. A dns_resolver owns one ub_ctx in thread mode
 * (ub_ctx_async(ctx, 1)); ub_fd() is watched by a persistent EV_READ event
 * whose handler calls ub_process(), which runs our libunbound callbacks.
 * A dns_query holds up to DNS_REQ_MAX outstanding libunbound requests: slot
 * 0 is the MX request, slots 1+2h and 2+2h are the A and AAAA requests of
 * host h. Each query has one libevent timer: libunbound has no per-query
 * timeout, so on expiry every outstanding request is ub_cancel()led.
 *
 * Rules (RFC 5321 5.1, RFC 7505):
 *   - MX hosts are sorted by preference, equal preferences shuffled; at most
 *     DNS_MAX_MX hosts are kept (the lowest preferences), duplicates dropped.
 *   - each host gets A and AAAA lookups; IPv4 addresses come first. A host
 *     without addresses is dropped. When no host has an address the result
 *     is DNS_TEMPFAIL if any host's lookup failed temporarily (SERVFAIL,
 *     timeout, resolver error), else DNS_NXDOMAIN.
 *   - NOERROR without MX records: implicit MX, the domain itself, pref 0.
 *   - NXDOMAIN for the MX query: DNS_NXDOMAIN.
 *   - MX RRset made only of "." targets (RFC 7505 null MX): DNS_NULL_MX.
 *     A "." target among real ones is ignored.
 *   - MX RRset whose records are all malformed: DNS_TEMPFAIL (never bounce
 *     on data we could not read).
 *   - on timeout: a pending MX lookup gives DNS_TEMPFAIL; pending address
 *     lookups count as temporary failures of their host, and the hosts that
 *     already have addresses are returned (a server that drops AAAA queries
 *     must not block delivery over IPv4).
 *
 * MX RDATA (RFC 1035 3.3.9): PREFERENCE (16 bits, network order) followed
 * by EXCHANGE, a domain name. libunbound hands rdata uncompressed, so the
 * parser accepts only plain labels (length octet 1..63, a zero octet ends
 * the name) and rejects compression pointers (0xC0) and extended label
 * types (0x40, 0x80). Host names are limited to letters, digits, '-' and
 * '_', which also makes them safe to log unquoted.
 *
 * Callbacks: a dns_mx_cb runs from the event loop, never from
 * dns_lookup_mx(). It may start or cancel other queries and may free the
 * resolver: during ub_process() the libunbound context is deleted only
 * after ub_process() returns.
 *
 * Failure policy: bad arguments and resource exhaustion at start return
 * NULL (logged); everything that comes from the network is reported through
 * the callback as a status; nothing here aborts except PST_ASSERT on
 * internal invariants.
 */
#include "dns.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unbound.h>

#include "log.h"

#define DNS_RR_A 1
#define DNS_RR_MX 15
#define DNS_RR_AAAA 28
#define DNS_CLASS_IN 1
#define DNS_RCODE_NOERROR 0
#define DNS_RCODE_NXDOMAIN 3
#define DNS_LABEL_MAX 63
#define DNS_WIRE_NAME_MAX 255 /* octets, RFC 1035 2.3.4 */
#define DNS_MX_RECORDS_MAX 64 /* MX records examined per answer */
#define DNS_REQ_MAX (1 + 2 * DNS_MAX_MX)
#define DNS_FWD_LIST_MAX 1024 /* length of the forwarder list */
#define DNS_FWD_ITEM_MAX 64   /* "addr@port" */
#define DNS_PORT_MAX 65535u
#define DNS_IN4_LEN 4
#define DNS_IN6_LEN 16

enum dns_req_kind { DNS_REQ_MX, DNS_REQ_A, DNS_REQ_AAAA };

struct dns_req {
    struct dns_query *q;
    enum dns_req_kind kind;
    size_t host; /* index into res.host for A/AAAA */
    int async_id;
    int active; /* submitted to libunbound, callback not yet run */
};

/* per-host address state while lookups are outstanding */
struct dns_hstate {
    size_t n4, n6;
    struct in_addr v4[DNS_MAX_ADDRS];
    struct in6_addr v6[DNS_MAX_ADDRS];
    int tempfail; /* a lookup for this host failed temporarily */
};

struct dns_query {
    struct dns_resolver *r;
    struct dns_query *prev, *next;
    char domain[DNS_NAME_MAX + 1];
    unsigned port;
    int flags;
    int implicit; /* no MX records: the domain is its own MX */
    int done;     /* callback running or ran */
    dns_mx_cb cb;
    void *arg;
    struct event *timer;
    size_t npending; /* active requests */
    struct dns_req req[DNS_REQ_MAX];
    struct dns_hstate hs[DNS_MAX_MX];
    char tempwhy[DNS_WHY_MAX]; /* last temporary failure of an address lookup */
    struct dns_mx_result res;
};

struct dns_resolver {
    struct event_base *base;
    struct ub_ctx *ctx;
    struct event *ev;
    unsigned timeout_sec;
    struct dns_query *head;
    int in_process; /* inside ub_process() */
    int dying;      /* dns_resolver_free() called inside ub_process() */
    int used;       /* a query was submitted: libunbound options are frozen */
};

static void dns_on_ub_result(void *mydata, int err, struct ub_result *result);
static void dns_query_complete(struct dns_query *q);

const char *dns_status_str(enum dns_status s)
{
    switch (s) {
    case DNS_OK:
        return "ok";
    case DNS_NULL_MX:
        return "null-mx";
    case DNS_NXDOMAIN:
        return "nxdomain";
    case DNS_TEMPFAIL:
        return "tempfail";
    }
    return "unknown";
}

static void dns_vwhy(char *why, size_t sz, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* dns_vwhy - format into a why buffer; a truncated text ends in "...". */
static void dns_vwhy(char *why, size_t sz, const char *fmt, va_list ap)
{
    int n = vsnprintf(why, sz, fmt, ap);

    if (n < 0) {
        why[0] = '\0';
        return;
    }
    if ((size_t)n >= sz && sz > 4)
        memcpy(why + sz - 4, "...", 4);
}

static void dns_why(char *why, size_t sz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void dns_why(char *why, size_t sz, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    dns_vwhy(why, sz, fmt, ap);
    va_end(ap);
}

/* ---- pure helpers: names, rdata, sorting ---- */

static int dns_label_char_ok(unsigned char c)
{
    return c < 0x80 && (isalnum(c) || c == '-' || c == '_');
}

int dns_domain_valid(const char *s)
{
    size_t len, i, label = 0;

    if (s == NULL)
        return 0;
    len = strlen(s);
    if (len > 0 && s[len - 1] == '.')
        len--;
    if (len == 0 || len > DNS_NAME_MAX)
        return 0;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '.') {
            if (label == 0)
                return 0;
            label = 0;
            continue;
        }
        if (!dns_label_char_ok(c) || ++label > DNS_LABEL_MAX)
            return 0;
    }
    return label > 0;
}

int dns_parse_mx_rdata(const unsigned char *rdata, size_t len, unsigned *pref, char *name,
                       size_t namesz)
{
    size_t pos = 2, out = 0, wire = 0;

    if (rdata == NULL || pref == NULL || name == NULL || namesz == 0)
        return PST_EINVAL;
    if (len < 3)
        return PST_EINVAL;
    *pref = ((unsigned)rdata[0] << 8) | rdata[1];
    for (;;) {
        size_t ll, i;

        if (pos >= len)
            return PST_EINVAL; /* truncated: no terminating zero octet */
        ll = rdata[pos++];
        wire += ll + 1;
        if (wire > DNS_WIRE_NAME_MAX)
            return PST_EINVAL;
        if (ll == 0)
            break;
        if (ll > DNS_LABEL_MAX)
            return PST_EINVAL; /* 0x40..0xFF: extended label or compression pointer */
        if (ll > len - pos)
            return PST_EINVAL;
        if (out > 0) {
            if (out + 1 >= namesz)
                return PST_ELIMIT;
            name[out++] = '.';
        }
        if (out + ll >= namesz)
            return PST_ELIMIT;
        for (i = 0; i < ll; i++) {
            if (!dns_label_char_ok(rdata[pos + i]))
                return PST_EINVAL;
            name[out++] = (char)rdata[pos + i];
        }
        pos += ll;
    }
    if (pos != len)
        return PST_EINVAL; /* trailing bytes after the name */
    if (out == 0) {
        if (namesz < 2)
            return PST_ELIMIT;
        name[out++] = '.';
    }
    name[out] = '\0';
    return 0;
}

static unsigned dns_rnd_default(void *ctx, unsigned n)
{
    (void)ctx;
    return arc4random_uniform(n);
}

/* dns_sort_by_pref - stable insertion sort; n <= DNS_MX_RECORDS_MAX. */
static void dns_sort_by_pref(struct dns_host *h, size_t n)
{
    struct dns_host tmp;
    size_t i, j;

    for (i = 1; i < n; i++) {
        if (h[i - 1].pref <= h[i].pref)
            continue;
        tmp = h[i];
        for (j = i; j > 0 && h[j - 1].pref > tmp.pref; j--)
            h[j] = h[j - 1];
        h[j] = tmp;
    }
}

static void dns_swap_hosts(struct dns_host *a, struct dns_host *b, struct dns_host *tmp)
{
    *tmp = *a;
    *a = *b;
    *b = *tmp;
}

void dns_sort_hosts(struct dns_host *hosts, size_t n, unsigned (*rnd)(void *ctx, unsigned n),
                    void *ctx)
{
    size_t start = 0, end, i;
    struct dns_host tmp;

    if (hosts == NULL || n < 2)
        return;
    if (rnd == NULL)
        rnd = dns_rnd_default;
    dns_sort_by_pref(hosts, n);
    while (start < n) {
        for (end = start + 1; end < n && hosts[end].pref == hosts[start].pref; end++)
            ;
        /* Fisher-Yates over [start, end) */
        for (i = end - start; i > 1; i--) {
            size_t k = rnd(ctx, (unsigned)i);

            PST_ASSERT(k < i);
            if (k != i - 1)
                dns_swap_hosts(&hosts[start + k], &hosts[start + i - 1], &tmp);
        }
        start = end;
    }
}

/* ---- forwarders ---- */

static int dns_parse_port(const char *s, unsigned *port)
{
    unsigned v = 0;
    size_t i;

    if (s[0] == '\0' || strlen(s) > 5)
        return PST_EINVAL;
    for (i = 0; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9')
            return PST_EINVAL;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v == 0 || v > DNS_PORT_MAX)
        return PST_EINVAL;
    *port = v;
    return 0;
}

/* dns_check_fwd - "addr" or "addr@port", numeric; sets *is_v6. */
static int dns_check_fwd(const char *item, int *is_v6)
{
    char host[DNS_FWD_ITEM_MAX];
    const char *at = strchr(item, '@');
    size_t hlen = at != NULL ? (size_t)(at - item) : strlen(item);
    unsigned port;
    unsigned char bin[DNS_IN6_LEN];

    if (hlen == 0 || hlen >= sizeof(host))
        return PST_EINVAL;
    memcpy(host, item, hlen);
    host[hlen] = '\0';
    if (at != NULL && dns_parse_port(at + 1, &port) != 0)
        return PST_EINVAL;
    if (inet_pton(AF_INET, host, bin) == 1) {
        *is_v6 = 0;
        return 0;
    }
    if (inet_pton(AF_INET6, host, bin) == 1) {
        *is_v6 = 1;
        return 0;
    }
    return PST_EINVAL;
}

static char *dns_trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        *--e = '\0';
    return s;
}

static int dns_set_forwarders(struct ub_ctx *ctx, const char *list)
{
    char copy[DNS_FWD_LIST_MAX];
    char *save = NULL, *tok;
    int n = 0, any_v6 = 0, rc;
    size_t len = strlen(list);

    if (len >= sizeof(copy))
        return PST_ELIMIT;
    memcpy(copy, list, len + 1);
    for (tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        char *item = dns_trim(tok);
        int v6 = 0;

        if (item[0] == '\0')
            continue;
        if (dns_check_fwd(item, &v6) != 0) {
            char q[DNS_FWD_ITEM_MAX + 8];
            log_error("dns config bad-forwarder value=%s",
                      log_quote(q, sizeof(q), item, strlen(item)));
            return PST_ECONFIG;
        }
        rc = ub_ctx_set_fwd(ctx, item);
        if (rc != 0) {
            log_error("dns config forwarder=%s error=\"%s\"", item, ub_strerror(rc));
            return PST_ECONFIG;
        }
        any_v6 |= v6;
        n++;
    }
    if (n == 0) {
        log_error("dns config forwarder list has no address");
        return PST_ECONFIG;
    }
    if (!any_v6 && ub_ctx_set_option(ctx, "do-ip6:", "no") != 0)
        return PST_ECONFIG;
    return 0;
}

/* ---- resolver ---- */

static void dns_on_readable(evutil_socket_t fd, short what, void *arg);
static void dns_query_abort(struct dns_query *q);

static int dns_ctx_setup(struct dns_resolver *r, const char *forwarder)
{
    int rc;

    rc = ub_ctx_async(r->ctx, 1);
    if (rc != 0) {
        log_error("dns init ub_ctx_async error=\"%s\"", ub_strerror(rc));
        return PST_ECONFIG;
    }
    /* The forwarders are named by the administrator (or resolv.conf):
     * a local resolver on 127.0.0.1 must be usable. */
    if (ub_ctx_set_option(r->ctx, "do-not-query-localhost:", "no") != 0)
        return PST_ECONFIG;
    if (forwarder != NULL && forwarder[0] != '\0')
        return dns_set_forwarders(r->ctx, forwarder);
    rc = ub_ctx_resolvconf(r->ctx, NULL);
    if (rc != 0) {
        log_error("dns init resolvconf=/etc/resolv.conf error=\"%s\"", ub_strerror(rc));
        return PST_ECONFIG;
    }
    return 0;
}

struct dns_resolver *dns_resolver_new(struct event_base *base, const char *forwarder,
                                      unsigned timeout_sec)
{
    struct dns_resolver *r;

    if (base == NULL)
        return NULL;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->base = base;
    r->timeout_sec = timeout_sec == 0 ? DNS_TIMEOUT_DEFAULT : timeout_sec;
    if (r->timeout_sec > DNS_TIMEOUT_MAX)
        r->timeout_sec = DNS_TIMEOUT_MAX;
    r->ctx = ub_ctx_create();
    if (r->ctx == NULL) {
        log_error("dns init ub_ctx_create failed");
        goto fail;
    }
    if (dns_ctx_setup(r, forwarder) != 0)
        goto fail;
    r->ev = event_new(base, ub_fd(r->ctx), EV_READ | EV_PERSIST, dns_on_readable, r);
    if (r->ev == NULL || event_add(r->ev, NULL) != 0) {
        log_error("dns init event setup failed");
        goto fail;
    }
    log_debug("dns init forwarder=%s timeout=%u",
              forwarder != NULL && forwarder[0] != '\0' ? "config" : "resolv.conf", r->timeout_sec);
    return r;
fail:
    if (r->ev != NULL)
        event_free(r->ev);
    if (r->ctx != NULL)
        ub_ctx_delete(r->ctx);
    free(r);
    return NULL;
}

int dns_resolver_set_option(struct dns_resolver *r, const char *opt, const char *val)
{
    int rc;

    if (r == NULL || opt == NULL || val == NULL || r->used)
        return PST_EINVAL;
    rc = ub_ctx_set_option(r->ctx, opt, val);
    if (rc != 0) {
        char qo[64], qv[128];
        log_error("dns config option=%s value=%s error=\"%s\"",
                  log_quote(qo, sizeof(qo), opt, strlen(opt)),
                  log_quote(qv, sizeof(qv), val, strlen(val)), ub_strerror(rc));
        return PST_ECONFIG;
    }
    return 0;
}

static void dns_resolver_destroy(struct dns_resolver *r)
{
    while (r->head != NULL)
        dns_query_abort(r->head);
    if (r->ev != NULL)
        event_free(r->ev);
    ub_ctx_delete(r->ctx);
    free(r);
}

void dns_resolver_free(struct dns_resolver **rp)
{
    struct dns_resolver *r;

    if (rp == NULL || *rp == NULL)
        return;
    r = *rp;
    *rp = NULL;
    if (r->in_process) {
        /* inside ub_process(): cancel now, delete the context afterwards */
        while (r->head != NULL)
            dns_query_abort(r->head);
        r->dying = 1;
        return;
    }
    dns_resolver_destroy(r);
}

static void dns_on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct dns_resolver *r = arg;
    int rc;

    r->in_process = 1;
    rc = ub_process(r->ctx);
    r->in_process = 0;
    if (rc != 0)
        log_warn("dns process error=\"%s\"", ub_strerror(rc));
    if (r->dying)
        dns_resolver_destroy(r);
}

/* ---- query lifecycle ---- */

static void dns_query_link(struct dns_query *q)
{
    struct dns_resolver *r = q->r;

    q->prev = NULL;
    q->next = r->head;
    if (r->head != NULL)
        r->head->prev = q;
    r->head = q;
}

static void dns_query_unlink(struct dns_query *q)
{
    if (q->prev != NULL)
        q->prev->next = q->next;
    else if (q->r->head == q)
        q->r->head = q->next;
    if (q->next != NULL)
        q->next->prev = q->prev;
    q->prev = q->next = NULL;
}

static void dns_req_cancel(struct dns_query *q, struct dns_req *rq)
{
    if (!rq->active)
        return;
    (void)ub_cancel(q->r->ctx, rq->async_id);
    rq->active = 0;
    PST_ASSERT(q->npending > 0);
    q->npending--;
}

/* dns_query_stop - stop the timer and cancel every outstanding request. */
static void dns_query_stop(struct dns_query *q)
{
    size_t i;

    if (q->timer != NULL)
        event_free(q->timer);
    q->timer = NULL;
    for (i = 0; i < DNS_REQ_MAX; i++)
        dns_req_cancel(q, &q->req[i]);
}

/* dns_query_abort - cancel and free without calling back. */
static void dns_query_abort(struct dns_query *q)
{
    dns_query_stop(q);
    dns_query_unlink(q);
    free(q);
}

/* dns_query_finish - report q->res once, then free q. Touches nothing after the callback. */
static void dns_query_finish(struct dns_query *q)
{
    dns_query_stop(q);
    dns_query_unlink(q);
    q->done = 1;
    if (q->res.status != DNS_OK)
        q->res.nhosts = 0;
    log_debug("dns mx domain=%s status=%s hosts=%zu why=\"%s\"", q->domain,
              dns_status_str(q->res.status), q->res.nhosts, q->res.why);
    q->cb(q->arg, &q->res);
    free(q);
}

static void dns_query_fail(struct dns_query *q, enum dns_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void dns_query_fail(struct dns_query *q, enum dns_status st, const char *fmt, ...)
{
    va_list ap;

    q->res.status = st;
    va_start(ap, fmt);
    dns_vwhy(q->res.why, sizeof(q->res.why), fmt, ap);
    va_end(ap);
    dns_query_finish(q);
}

static int dns_req_start(struct dns_query *q, size_t slot, enum dns_req_kind kind, size_t host,
                         const char *name, int rrtype)
{
    struct dns_req *rq = &q->req[slot];
    int rc;

    PST_ASSERT(slot < DNS_REQ_MAX && !rq->active);
    rq->q = q;
    rq->kind = kind;
    rq->host = host;
    q->r->used = 1;
    rc = ub_resolve_async(q->r->ctx, name, rrtype, DNS_CLASS_IN, rq, dns_on_ub_result,
                          &rq->async_id);
    if (rc != 0) {
        log_warn("dns submit name=%s type=%d error=\"%s\"", name, rrtype, ub_strerror(rc));
        return PST_EAGAIN;
    }
    rq->active = 1;
    q->npending++;
    return 0;
}

/* dns_start_addr_lookups - A and AAAA for every host; returns how many were submitted. */
static size_t dns_start_addr_lookups(struct dns_query *q)
{
    size_t h, n = 0;

    for (h = 0; h < q->res.nhosts; h++) {
        const char *name = q->res.host[h].name;
        int ok4 = dns_req_start(q, 1 + 2 * h, DNS_REQ_A, h, name, DNS_RR_A) == 0;
        int ok6 = dns_req_start(q, 2 + 2 * h, DNS_REQ_AAAA, h, name, DNS_RR_AAAA) == 0;

        if (!ok4 || !ok6) {
            q->hs[h].tempfail = 1;
            dns_why(q->tempwhy, sizeof(q->tempwhy), "cannot submit address lookup for %s", name);
        }
        n += (size_t)ok4 + (size_t)ok6;
    }
    return n;
}

static void dns_on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct dns_query *q = arg;
    size_t i;

    if (q->req[0].active) {
        dns_query_fail(q, DNS_TEMPFAIL, "MX lookup timed out after %us", q->r->timeout_sec);
        return;
    }
    for (i = 1; i < DNS_REQ_MAX; i++) {
        struct dns_req *rq = &q->req[i];

        if (!rq->active)
            continue;
        q->hs[rq->host].tempfail = 1;
        dns_why(q->tempwhy, sizeof(q->tempwhy), "address lookup for %s timed out after %us",
                q->res.host[rq->host].name, q->r->timeout_sec);
        dns_req_cancel(q, rq);
    }
    dns_query_complete(q);
}

struct dns_query *dns_lookup_mx(struct dns_resolver *r, const char *domain, unsigned port,
                                int flags, dns_mx_cb cb, void *arg)
{
    struct dns_query *q;
    struct timeval tv;
    size_t len;

    if (r == NULL || cb == NULL || r->dying || port == 0 || port > DNS_PORT_MAX ||
        (flags & ~DNS_NO_MX) != 0)
        return NULL;
    if (!dns_domain_valid(domain)) {
        char qd[80];
        log_warn("dns lookup bad-domain domain=%s",
                 log_quote(qd, sizeof(qd), domain != NULL ? domain : "",
                           domain != NULL ? strlen(domain) : 0));
        return NULL;
    }
    q = calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    q->r = r;
    len = strlen(domain);
    if (domain[len - 1] == '.')
        len--;
    memcpy(q->domain, domain, len);
    q->domain[len] = '\0';
    q->port = port;
    q->flags = flags;
    q->cb = cb;
    q->arg = arg;
    q->timer = evtimer_new(r->base, dns_on_timeout, q);
    tv.tv_sec = (time_t)r->timeout_sec;
    tv.tv_usec = 0;
    if (q->timer == NULL || evtimer_add(q->timer, &tv) != 0)
        goto fail;
    if (flags & DNS_NO_MX) {
        q->res.nhosts = 1;
        memcpy(q->res.host[0].name, q->domain, len + 1);
        if (dns_start_addr_lookups(q) == 0)
            goto fail;
    } else if (dns_req_start(q, 0, DNS_REQ_MX, 0, q->domain, DNS_RR_MX) != 0) {
        goto fail;
    }
    dns_query_link(q);
    return q;
fail:
    dns_query_stop(q);
    free(q);
    return NULL;
}

void dns_cancel(struct dns_query *q)
{
    if (q == NULL || q->done)
        return;
    dns_query_abort(q);
}

/* ---- answers ---- */

static const char *dns_rcode_str(int rcode)
{
    static const char *const names[] = {"NOERROR",  "FORMERR", "SERVFAIL",
                                        "NXDOMAIN", "NOTIMP",  "REFUSED"};

    if (rcode >= 0 && (size_t)rcode < PST_ARRAY_LEN(names))
        return names[rcode];
    return "other";
}

/* dns_collect_mx - parse, sort, dedup and keep DNS_MAX_MX hosts in q->res. */
static int dns_collect_mx(struct dns_query *q, const struct ub_result *res, int *nullmx)
{
    struct dns_host *tmp;
    size_t n = 0, ndot = 0, i, k;

    *nullmx = 0;
    tmp = calloc(DNS_MX_RECORDS_MAX, sizeof(*tmp));
    if (tmp == NULL)
        return PST_ENOMEM;
    for (i = 0; res->data[i] != NULL && n < DNS_MX_RECORDS_MAX; i++) {
        struct dns_host *h = &tmp[n];

        if (res->len[i] < 0 ||
            dns_parse_mx_rdata((const unsigned char *)res->data[i], (size_t)res->len[i], &h->pref,
                               h->name, sizeof(h->name)) != 0) {
            log_warn("dns mx-malformed domain=%s record=%zu", q->domain, i);
            continue;
        }
        if (strcmp(h->name, ".") == 0) {
            ndot++;
            continue;
        }
        n++;
    }
    if (n == 0 && ndot > 0)
        *nullmx = 1;
    dns_sort_hosts(tmp, n, NULL, NULL);
    q->res.nhosts = 0;
    for (i = 0; i < n && q->res.nhosts < DNS_MAX_MX; i++) {
        for (k = 0; k < q->res.nhosts; k++)
            if (strcasecmp(q->res.host[k].name, tmp[i].name) == 0)
                break;
        if (k < q->res.nhosts)
            continue; /* duplicate name: the first (lowest preference) wins */
        q->res.host[q->res.nhosts++] = tmp[i];
    }
    free(tmp);
    return n > 0 || *nullmx ? 0 : PST_EINVAL;
}

static void dns_on_mx(struct dns_query *q, int err, const struct ub_result *res)
{
    int nullmx = 0, rc;

    if (err != 0) {
        dns_query_fail(q, DNS_TEMPFAIL, "resolver error in MX lookup: %s", ub_strerror(err));
        return;
    }
    if (res->rcode == DNS_RCODE_NXDOMAIN || res->nxdomain) {
        dns_query_fail(q, DNS_NXDOMAIN, "domain not found (NXDOMAIN)");
        return;
    }
    if (res->rcode != DNS_RCODE_NOERROR) {
        dns_query_fail(q, DNS_TEMPFAIL, "MX lookup failed: %s (rcode %d)",
                       dns_rcode_str(res->rcode), res->rcode);
        return;
    }
    if (res->bogus) {
        dns_query_fail(q, DNS_TEMPFAIL, "MX lookup failed DNSSEC validation");
        return;
    }
    if (!res->havedata) {
        q->implicit = 1;
        q->res.nhosts = 1;
        memcpy(q->res.host[0].name, q->domain, strlen(q->domain) + 1);
    } else {
        rc = dns_collect_mx(q, res, &nullmx);
        if (rc == PST_ENOMEM) {
            dns_query_fail(q, DNS_TEMPFAIL, "out of memory");
            return;
        }
        if (nullmx) {
            dns_query_fail(q, DNS_NULL_MX, "domain does not accept mail (null MX)");
            return;
        }
        if (rc != 0) {
            dns_query_fail(q, DNS_TEMPFAIL, "all MX records are malformed");
            return;
        }
    }
    if (dns_start_addr_lookups(q) == 0)
        dns_query_complete(q);
}

static void dns_add_addrs(struct dns_query *q, const struct dns_req *rq,
                          const struct ub_result *res)
{
    struct dns_hstate *hs = &q->hs[rq->host];
    size_t i;

    for (i = 0; res->data[i] != NULL; i++) {
        if (rq->kind == DNS_REQ_A && res->len[i] == DNS_IN4_LEN && hs->n4 < DNS_MAX_ADDRS)
            memcpy(&hs->v4[hs->n4++], res->data[i], DNS_IN4_LEN);
        else if (rq->kind == DNS_REQ_AAAA && res->len[i] == DNS_IN6_LEN && hs->n6 < DNS_MAX_ADDRS)
            memcpy(&hs->v6[hs->n6++], res->data[i], DNS_IN6_LEN);
    }
}

static void dns_on_addr(struct dns_query *q, const struct dns_req *rq, int err,
                        const struct ub_result *res)
{
    const char *name = q->res.host[rq->host].name;
    const char *type = rq->kind == DNS_REQ_A ? "A" : "AAAA";

    if (err != 0) {
        q->hs[rq->host].tempfail = 1;
        dns_why(q->tempwhy, sizeof(q->tempwhy), "resolver error for %s %s: %s", name, type,
                ub_strerror(err));
    } else if (res->rcode == DNS_RCODE_NOERROR && !res->bogus) {
        if (res->havedata)
            dns_add_addrs(q, rq, res);
    } else if (res->rcode != DNS_RCODE_NXDOMAIN) {
        q->hs[rq->host].tempfail = 1;
        dns_why(q->tempwhy, sizeof(q->tempwhy), "%s %s lookup failed: %s", name, type,
                res->bogus ? "DNSSEC bogus" : dns_rcode_str(res->rcode));
    }
    if (q->npending == 0)
        dns_query_complete(q);
}

static void dns_on_ub_result(void *mydata, int err, struct ub_result *result)
{
    struct dns_req *rq = mydata;
    struct dns_query *q = rq->q;

    PST_ASSERT(rq->active && q->npending > 0);
    rq->active = 0;
    q->npending--;
    if (err == 0 && result == NULL)
        err = UB_NOMEM;
    if (rq->kind == DNS_REQ_MX)
        dns_on_mx(q, err, result);
    else
        dns_on_addr(q, rq, err, result);
    ub_resolve_free(result); /* NULL-safe */
}

/* dns_fill_host - addresses of hs into h: IPv4 first, at least half the slots for IPv6 if present.
 */
static void dns_fill_host(struct dns_host *h, const struct dns_hstate *hs, unsigned port)
{
    size_t want6 = hs->n6 < DNS_MAX_ADDRS / 2 ? hs->n6 : DNS_MAX_ADDRS / 2;
    size_t take4 = hs->n4 < DNS_MAX_ADDRS - want6 ? hs->n4 : DNS_MAX_ADDRS - want6;
    size_t take6 = hs->n6 < DNS_MAX_ADDRS - take4 ? hs->n6 : DNS_MAX_ADDRS - take4;
    size_t i;

    h->naddr = 0;
    for (i = 0; i < take4; i++) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&h->addr[h->naddr];

        memset(&h->addr[h->naddr], 0, sizeof(h->addr[0]));
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        s4->sin_addr = hs->v4[i];
        h->addrlen[h->naddr++] = sizeof(*s4);
    }
    for (i = 0; i < take6; i++) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&h->addr[h->naddr];

        memset(&h->addr[h->naddr], 0, sizeof(h->addr[0]));
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        s6->sin6_addr = hs->v6[i];
        h->addrlen[h->naddr++] = sizeof(*s6);
    }
}

/* dns_query_complete - every address lookup answered (or timed out): build the result. */
static void dns_query_complete(struct dns_query *q)
{
    size_t h, kept = 0, tempfailed = 0, total = q->res.nhosts;

    for (h = 0; h < total; h++) {
        dns_fill_host(&q->res.host[h], &q->hs[h], q->port);
        if (q->res.host[h].naddr == 0) {
            tempfailed += q->hs[h].tempfail != 0;
            continue;
        }
        if (kept != h)
            q->res.host[kept] = q->res.host[h];
        kept++;
    }
    q->res.nhosts = kept;
    if (kept > 0) {
        q->res.status = DNS_OK;
        if (tempfailed > 0)
            dns_why(q->res.why, sizeof(q->res.why), "%zu of %zu hosts skipped: %s", tempfailed,
                    total, q->tempwhy);
        dns_query_finish(q);
        return;
    }
    if (tempfailed > 0) {
        dns_query_fail(q, DNS_TEMPFAIL, "%s", q->tempwhy);
        return;
    }
    if (q->flags & DNS_NO_MX) {
        dns_query_fail(q, DNS_NXDOMAIN, "host has no address records");
        return;
    }
    if (q->implicit) {
        dns_query_fail(q, DNS_NXDOMAIN, "no MX or address records");
        return;
    }
    dns_query_fail(q, DNS_NXDOMAIN, "no MX host has an address record");
}
