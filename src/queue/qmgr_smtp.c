/*
 * qmgr_smtp.c - the queue manager's SMTP transport.
 *
 * A destination is one route (next hop, port, TLS policy, credentials). Jobs
 * (the recipients of one message for one destination) queue on their
 * destination. The first job makes the destination look up its MX hosts
 * (dns.h; cached while the destination has work); then up to
 * dest_concurrency connections (smtpc.h) are opened, each trying the hosts
 * in preference order and each host's addresses in turn (RFC 5321 5.1), and
 * each connection delivers queued jobs one after the other (connection
 * reuse) until the queue is empty, then QUITs.
 *
 * Results: a recipient with a 2xx reply is delivered, 5xx failed (the
 * sender gets a DSN), anything else - 4xx, timeout, dropped connection,
 * garbage - is deferred with the reason. NXDOMAIN and null MX (RFC 7505)
 * fail every recipient of the destination at once; a temporary DNS failure
 * or no reachable host defers them.
 *
 * Never re-entrant: qmgr_smtp_submit() only queues and activates an event;
 * all work and every callback into the queue manager happens from the loop.
 */
#include "qmgr_smtp.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/event.h>

#include "lib/dns.h"
#include "lib/log.h"
#include "lib/netaddr.h"
#include "qmgr_msg.h"
#include "router.h"
#include "smtp/smtpc.h"

#define QS_AUTH_MAX 64 /* credentials in auth_file */
#define QS_AUTH_LINE 1024
#define QS_KEY_MAX 400

struct qs_dest;

struct qs_job {
    struct qmgr_msg *m; /* borrowed; kept alive by m->jobs */
    size_t n;
    size_t *idx;             /* owned: recipient indices in m */
    struct smtpc_rcpt *rcpt; /* owned: n entries */
    struct smtpc_msg msg;
    struct qs_job *next;
};

struct qs_conn {
    struct qs_dest *d;
    struct smtpc *c;    /* owned */
    size_t host, addr;  /* position in d->mx */
    int no_tls;         /* retrying this address without TLS (policy may) */
    struct qs_job *job; /* being sent */
    char relay[320];    /* "host[addr]:port" for logs and DSNs */
    struct qs_conn *next;
};

struct qs_dest {
    struct qmgr_smtp *s;
    char key[QS_KEY_MAX];
    struct router_route rt;
    struct qs_job *head, *tail;
    struct qs_conn *conns;
    size_t nconn;
    int dns_state; /* 0 none, 1 pending, 2 done */
    struct dns_query *dq;
    struct dns_mx_result *mx; /* owned */
    char last_error[512];
    struct qs_dest *next;
};

struct qs_cred {
    char name[ROUTER_AUTH_MAX + 1];
    char user[256];
    char pass[256];
};

struct qmgr_smtp {
    struct event_base *base;  /* borrowed */
    const struct cfg *cfg;    /* borrowed */
    struct dns_resolver *dns; /* owned */
    SSL_CTX *tls;             /* owned */
    struct event *kick;       /* owned */
    struct qs_dest *dests;
    struct qs_cred cred[QS_AUTH_MAX];
    size_t ncred;
};

static void qs_dest_run(struct qs_dest *d);
static void qs_set_error(struct qs_dest *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* qs_set_error - remember the destination's latest failure (cut to fit: it is a diagnostic). */
static void qs_set_error(struct qs_dest *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(d->last_error, sizeof d->last_error, fmt, ap);
    va_end(ap);
    if (n < 0)
        d->last_error[0] = '\0';
}
static void qs_conn_start(struct qs_dest *d, struct qs_conn *k);
static void qs_conn_try_next(struct qs_dest *d, struct qs_conn *k);

/* ---------------------------------------------------------------- jobs */

static void qs_job_free(struct qs_job **jp)
{
    struct qs_job *j = *jp;
    if (!j)
        return;
    free(j->idx);
    free(j->rcpt);
    free(j);
    *jp = NULL;
}

/* qs_job_end - report every recipient of j with the given state and reason, end the job. */
static void qs_job_end(struct qs_job *j, enum qmgr_rstate st, const char *status,
                       const char *remote, const char *why)
{
    for (size_t k = 0; k < j->n; k++)
        qmgr_rcpt_result(j->m, j->idx[k], st, status, remote, why);
    struct qmgr_msg *m = j->m;
    qs_job_free(&j);
    qmgr_job_done(m);
}

/* qs_job_results - map the transaction's per-recipient replies to results, end the job. */
static void qs_job_results(struct qs_job *j, int status, const char *why, const char *relay)
{
    for (size_t k = 0; k < j->n; k++) {
        const struct smtpc_rcpt *r = &j->rcpt[k];
        char diag[SMTPC_RCPT_TEXT_MAX + SMTP_REPLY_ENH_MAX + 40];
        char enh[SMTP_REPLY_ENH_MAX + 1];
        if (r->done && r->code > 0) {
            snprintf(diag, sizeof diag, "smtp; %d %s%s%s", r->code, r->enh, r->enh[0] ? " " : "",
                     r->text);
            snprintf(enh, sizeof enh, "%s",
                     r->enh[0] ? r->enh
                               : (r->code < 300   ? "2.0.0"
                                  : r->code < 500 ? "4.0.0"
                                                  : "5.0.0"));
        } else {
            snprintf(diag, sizeof diag, "%s", why ? why : "delivery incomplete");
            snprintf(enh, sizeof enh, "%s", status == PST_EPERM ? "5.0.0" : "4.4.2");
        }
        enum qmgr_rstate st;
        if (r->done && r->code >= 200 && r->code < 300)
            st = QMGR_R_DELIVERED;
        else if ((r->done && r->code >= 500) || (!r->done && status == PST_EPERM))
            st = QMGR_R_FAILED;
        else
            st = QMGR_R_PENDING;
        qmgr_rcpt_result(j->m, j->idx[k], st, enh, relay, diag);
    }
    struct qmgr_msg *m = j->m;
    qs_job_free(&j);
    qmgr_job_done(m);
}

static struct qs_job *qs_dest_pop(struct qs_dest *d)
{
    struct qs_job *j = d->head;
    if (j) {
        d->head = j->next;
        if (!d->head)
            d->tail = NULL;
        j->next = NULL;
    }
    return j;
}

/* qs_dest_end_all - no delivery possible now: end every queued job. */
static void qs_dest_end_all(struct qs_dest *d, enum qmgr_rstate st, const char *status,
                            const char *why)
{
    struct qs_job *j;
    while ((j = qs_dest_pop(d)) != NULL)
        qs_job_end(j, st, status, NULL, why);
}

/* ---------------------------------------------------------------- destinations */

static void qs_route_key(const struct router_route *rt, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s|%d|%u|%s|%s", rt->nexthop, rt->no_mx, rt->port, rt->tls, rt->auth);
}

static struct qs_dest *qs_dest_get(struct qmgr_smtp *s, const struct router_route *rt)
{
    char key[QS_KEY_MAX];
    qs_route_key(rt, key, sizeof key);
    for (struct qs_dest *d = s->dests; d; d = d->next)
        if (strcmp(d->key, key) == 0)
            return d;
    struct qs_dest *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->s = s;
    memcpy(d->key, key, sizeof key);
    d->rt = *rt;
    d->next = s->dests;
    s->dests = d;
    return d;
}

/* qs_dest_gc - drop destinations with nothing queued and nothing connected (DNS cache goes too). */
static void qs_dest_gc(struct qmgr_smtp *s)
{
    for (struct qs_dest **pp = &s->dests; *pp;) {
        struct qs_dest *d = *pp;
        if (d->head || d->conns || d->dns_state == 1) {
            pp = &d->next;
            continue;
        }
        *pp = d->next;
        free(d->mx);
        free(d);
    }
}

static void qs_on_dns(void *arg, const struct dns_mx_result *r)
{
    struct qs_dest *d = arg;
    d->dq = NULL;
    d->dns_state = 2;
    free(d->mx);
    d->mx = malloc(sizeof *d->mx);
    if (!d->mx) {
        d->dns_state = 0;
        qs_dest_end_all(d, QMGR_R_PENDING, "4.3.0", "out of memory");
        return;
    }
    *d->mx = *r;
    if (r->status != DNS_OK)
        log_info("qmgr dns domain=%s status=%s why=\"%s\"", d->rt.nexthop,
                 dns_status_str(r->status), r->why);
    qs_dest_run(d);
    qs_dest_gc(d->s);
}

/* ---------------------------------------------------------------- connections */

static const char *qs_policy(const struct qs_dest *d, const struct qs_conn *k)
{
    if (k->no_tls)
        return "none";
    return d->rt.tls[0] ? d->rt.tls : d->s->cfg->client_tls_policy;
}

static void qs_conn_free(struct qs_conn *k, int polite)
{
    struct qs_dest *d = k->d;
    for (struct qs_conn **pp = &d->conns; *pp; pp = &(*pp)->next) {
        if (*pp == k) {
            *pp = k->next;
            break;
        }
    }
    d->nconn--;
    if (polite)
        smtpc_quit(&k->c);
    else
        smtpc_free(&k->c);
    free(k);
}

static void qs_on_sent(void *arg, int status, const char *why);

/* qs_conn_next_job - give a ready connection its next job, or close it. */
static void qs_conn_next_job(struct qs_conn *k)
{
    struct qs_dest *d = k->d;
    for (;;) {
        struct qs_job *j = qs_dest_pop(d);
        if (!j) {
            qs_conn_free(k, 1);
            qs_dest_gc(d->s);
            return;
        }
        k->job = j;
        int rc = smtpc_send(k->c, &j->msg, qs_on_sent, k);
        if (rc == 0)
            return;
        k->job = NULL;
        if (rc == PST_EAGAIN) {
            /* connection gone: put the job back and reconnect */
            j->next = d->head;
            d->head = j;
            if (!d->tail)
                d->tail = j;
            qs_conn_free(k, 0);
            qs_dest_run(d);
            return;
        }
        qs_job_end(j, QMGR_R_FAILED, "5.6.0", k->relay, "message cannot be sent (bad envelope)");
    }
}

static void qs_on_sent(void *arg, int status, const char *why)
{
    struct qs_conn *k = arg;
    struct qs_job *j = k->job;
    k->job = NULL;
    char tls[64];
    const char *ti = smtpc_tls_info(k->c);
    snprintf(tls, sizeof tls, "%s", ti ? ti : "none");
    if (status != 0)
        log_info("qmgr transaction qid=%s relay=%s tls=\"%s\" status=%s why=\"%s\"", j->m->qid,
                 k->relay, tls, status == PST_EPERM ? "failed" : "deferred", why ? why : "");
    snprintf(j->m->tls, sizeof j->m->tls, "%s", ti ? ti : "");
    qs_job_results(j, status, why, k->relay);
    if (status == 0 && smtpc_usable(k->c)) {
        qs_conn_next_job(k);
        return;
    }
    /* the session is unusable: close it; queued jobs get a fresh connection */
    struct qs_dest *d = k->d;
    struct qmgr_smtp *s = d->s;
    qs_conn_free(k, 0);
    qs_dest_run(d);
    qs_dest_gc(s);
}

/* qs_conn_advance - the current address failed: move to the next one. 0 if there is one. */
static int qs_conn_advance(struct qs_conn *k)
{
    const struct dns_mx_result *mx = k->d->mx;
    if (++k->addr < mx->host[k->host].naddr)
        return 0;
    k->addr = 0;
    while (++k->host < mx->nhosts)
        if (mx->host[k->host].naddr > 0)
            return 0;
    return -1;
}

static void qs_on_connected(void *arg, int status, const char *why_arg)
{
    struct qs_conn *k = arg;
    struct qs_dest *d = k->d;
    char why[400];
    /* why belongs to the session, which is freed below: keep a copy */
    snprintf(why, sizeof why, "%s", why_arg ? why_arg : "failed");
    if (status == 0) {
        const char *ti = smtpc_tls_info(k->c);
        log_info("qmgr connected relay=%s tls=\"%s\"", k->relay, ti ? ti : "none");
        qs_conn_next_job(k);
        return;
    }
    qs_set_error(d, "%s: %s", k->relay, why);
    log_info("qmgr connect-failed relay=%s why=\"%s\"", k->relay, why);
    smtpc_free(&k->c);
    /* policy "may": a failed TLS handshake is retried once in clear on the same address */
    if (!k->no_tls && strncmp(why, "tls failed", 10) == 0 && strcmp(qs_policy(d, k), "may") == 0) {
        k->no_tls = 1;
        qs_conn_start(d, k);
        return;
    }
    k->no_tls = 0;
    struct qmgr_smtp *s = d->s;
    qs_conn_try_next(d, k);
    qs_dest_gc(s);
}

static const struct qs_cred *qs_cred_find(const struct qmgr_smtp *s, const char *name)
{
    for (size_t i = 0; i < s->ncred; i++)
        if (strcmp(s->cred[i].name, name) == 0)
            return &s->cred[i];
    return NULL;
}

/* qs_conn_start - connect k to its current host/address. */
static void qs_conn_start(struct qs_dest *d, struct qs_conn *k)
{
    const struct cfg *cfg = d->s->cfg;
    const struct dns_host *h = &d->mx->host[k->host];
    const struct sockaddr *sa = (const struct sockaddr *)&h->addr[k->addr];
    char addr[NETADDR_STRLEN];
    snprintf(k->relay, sizeof k->relay, "%s[%s]:%u", h->name, netaddr_to_str(sa, addr, sizeof addr),
             netaddr_port(sa));
    const struct qs_cred *cred = d->rt.auth[0] ? qs_cred_find(d->s, d->rt.auth) : NULL;
    struct smtpc_params p = {
        .helo_name = cfg->hostname,
        .tls_policy = qs_policy(d, k),
        .ca_file = cfg->client_tls_ca_file[0] ? cfg->client_tls_ca_file : NULL,
        .server_name = h->name,
        .auth_user = cred ? cred->user : NULL,
        .auth_pass = cred ? cred->pass : NULL,
        .connect_timeout = (unsigned)cfg->client_connect_timeout,
        .greeting_timeout = (unsigned)cfg->client_command_timeout,
        .command_timeout = (unsigned)cfg->client_command_timeout,
    };
    k->c = smtpc_connect(d->s->base, sa, h->addrlen[k->addr], d->s->tls, &p, qs_on_connected, k);
    if (!k->c) {
        /* immediate failure (socket error): treat like a failed connect, asynchronously safe */
        qs_set_error(d, "%s: cannot connect", k->relay);
        qs_conn_try_next(d, k);
    }
}

/*
 * qs_conn_try_next - k's address failed: connect to the next address or MX host;
 * when every one has failed, close k and, if it was the destination's last
 * connection, defer every queued job with the last error. Never frees d.
 */
static void qs_conn_try_next(struct qs_dest *d, struct qs_conn *k)
{
    if (qs_conn_advance(k) == 0) {
        qs_conn_start(d, k);
        return;
    }
    int others = d->nconn > 1;
    qs_conn_free(k, 0);
    if (!others)
        qs_dest_end_all(d, QMGR_R_PENDING, "4.4.1", d->last_error);
}

/*
 * qs_literal_nexthop - a next hop written as a numeric address ("[192.0.2.1]" in
 * the transport map, or an address-literal recipient): fill d->mx without DNS.
 * Returns 1 if it was one.
 */
static int qs_literal_nexthop(struct qs_dest *d)
{
    const char *h = d->rt.nexthop;
    if (strncasecmp(h, "IPv6:", 5) == 0)
        h += 5;
    unsigned port = d->rt.port ? d->rt.port : (unsigned)d->s->cfg->client_smtp_port;
    struct sockaddr_storage ss;
    socklen_t len = 0;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, h, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        len = sizeof *v4;
    } else if (inet_pton(AF_INET6, h, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        len = sizeof *v6;
    } else {
        return 0;
    }
    free(d->mx);
    d->mx = calloc(1, sizeof *d->mx);
    if (!d->mx)
        return 0;
    d->mx->status = DNS_OK;
    d->mx->nhosts = 1;
    snprintf(d->mx->host[0].name, sizeof d->mx->host[0].name, "%s", d->rt.nexthop);
    d->mx->host[0].naddr = 1;
    d->mx->host[0].addr[0] = ss;
    d->mx->host[0].addrlen[0] = len;
    return 1;
}

/* qs_dest_run - make progress on d: resolve, fail/defer on DNS errors, open connections. */
static void qs_dest_run(struct qs_dest *d)
{
    if (!d || !d->head)
        return;
    struct qmgr_smtp *s = d->s;
    if (d->dns_state == 0 && qs_literal_nexthop(d)) {
        d->dns_state = 2; /* [192.0.2.1] or an address literal: no DNS */
    } else if (d->dns_state == 0) {
        unsigned port = d->rt.port ? d->rt.port : (unsigned)s->cfg->client_smtp_port;
        d->dns_state = 1;
        d->dq =
            dns_lookup_mx(s->dns, d->rt.nexthop, port, d->rt.no_mx ? DNS_NO_MX : 0, qs_on_dns, d);
        if (!d->dq) {
            d->dns_state = 0;
            qs_dest_end_all(d, QMGR_R_FAILED, "5.1.2", "bad destination domain name");
        }
        return;
    }
    if (d->dns_state == 1)
        return;
    switch (d->mx->status) {
    case DNS_OK:
        break;
    case DNS_NULL_MX:
        qs_dest_end_all(d, QMGR_R_FAILED, "5.1.10",
                        "domain does not accept mail (null MX, RFC 7505)");
        d->dns_state = 0;
        return;
    case DNS_NXDOMAIN:
        qs_dest_end_all(d, QMGR_R_FAILED, "5.1.2", d->mx->why[0] ? d->mx->why : "no such domain");
        d->dns_state = 0;
        return;
    default:
        qs_dest_end_all(d, QMGR_R_PENDING, "4.4.3",
                        d->mx->why[0] ? d->mx->why : "temporary DNS failure");
        d->dns_state = 0;
        return;
    }
    size_t want = (size_t)s->cfg->dest_concurrency;
    size_t queued = 0;
    for (struct qs_job *j = d->head; j; j = j->next)
        queued++;
    while (d->nconn < want && d->nconn < queued) {
        struct qs_conn *k = calloc(1, sizeof *k);
        if (!k)
            break;
        k->d = d;
        k->next = d->conns;
        d->conns = k;
        d->nconn++;
        qs_conn_start(d, k);
        if (!d->head)
            break; /* qs_conn_start ended everything */
    }
}

static void qs_on_kick(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr_smtp *s = arg;
    for (struct qs_dest *d = s->dests; d; d = d->next)
        if (d->head && (d->dns_state != 2 || d->nconn == 0 || d->mx->status != DNS_OK ||
                        d->nconn < (size_t)s->cfg->dest_concurrency))
            qs_dest_run(d);
    qs_dest_gc(s);
}

/* ---------------------------------------------------------------- public */

int qmgr_smtp_submit(struct qmgr_smtp *s, struct qmgr_msg *m, const struct router_route *rt,
                     const size_t *idx, size_t n)
{
    if (n == 0)
        return 0;
    struct qs_dest *d = qs_dest_get(s, rt);
    struct qs_job *j = calloc(1, sizeof *j);
    if (!d || !j) {
        free(j);
        return PST_ENOMEM;
    }
    j->m = m;
    j->n = n;
    j->idx = malloc(n * sizeof *j->idx);
    j->rcpt = calloc(n, sizeof *j->rcpt);
    if (!j->idx || !j->rcpt) {
        qs_job_free(&j);
        return PST_ENOMEM;
    }
    memcpy(j->idx, idx, n * sizeof *idx);
    for (size_t k = 0; k < n; k++) {
        const struct spool_rcpt *r = &m->env->rcpt[idx[k]];
        j->rcpt[k].addr = r->addr;
        j->rcpt[k].notify = r->notify;
        j->rcpt[k].orcpt = r->orcpt;
    }
    j->msg = (struct smtpc_msg){
        .sender = m->env->sender ? m->env->sender : "",
        .body_8bit = m->env->body == 2,
        .smtputf8 = m->env->smtputf8,
        .ret = m->env->ret,
        .envid = m->env->envid,
        .size = m->len,
        .content_fd = m->fd,
        .content_offset = (off_t)m->off,
        .content_len = m->len,
        .nrcpt = n,
        .rcpt = j->rcpt,
    };
    if (d->tail)
        d->tail->next = j;
    else
        d->head = j;
    d->tail = j;
    m->jobs++;
    event_active(s->kick, 0, 0);
    return 0;
}

static int qs_load_auth(struct qmgr_smtp *s, const char *path)
{
    if (!path || !path[0])
        return 0;
    FILE *f = fopen(path, "re");
    if (!f) {
        log_error("qmgr auth-file-unreadable path=%s errno=\"%s\"", path, strerror(errno));
        return PST_ECONFIG;
    }
    char line[QS_AUTH_LINE];
    unsigned lineno = 0;
    int rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char name[ROUTER_AUTH_MAX + 1], user[256], pass[256], extra[2];
        if (line[0] == '#' || strspn(line, " \t\r\n") == strlen(line))
            continue;
        int n = sscanf(line, "%63s %255s %255s %1s", name, user, pass, extra);
        if (n != 3 || s->ncred == QS_AUTH_MAX) {
            log_error(
                "qmgr auth-file-error path=%s line=%u reason=\"expected: name user password\"",
                path, lineno);
            rc = PST_ECONFIG;
            break;
        }
        struct qs_cred *c = &s->cred[s->ncred++];
        memcpy(c->name, name, sizeof c->name);
        memcpy(c->user, user, sizeof c->user);
        memcpy(c->pass, pass, sizeof c->pass);
        explicit_bzero(pass, sizeof pass);
    }
    explicit_bzero(line, sizeof line);
    fclose(f);
    return rc;
}

struct qmgr_smtp *qmgr_smtp_new(struct event_base *base, const struct cfg *cfg)
{
    struct qmgr_smtp *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->base = base;
    s->cfg = cfg;
    char fwd[1024] = "";
    size_t used = 0;
    for (size_t i = 0; i < cfg->dns_resolver.n; i++) {
        int n =
            snprintf(fwd + used, sizeof fwd - used, "%s%s", i ? "," : "", cfg->dns_resolver.v[i]);
        if (n < 0 || (size_t)n >= sizeof fwd - used)
            break;
        used += (size_t)n;
    }
    s->dns = dns_resolver_new(base, fwd, (unsigned)cfg->dns_timeout);
    /* With explicitly configured forwarders, names under the reserved "test." (RFC 6761)
     * go to them instead of being answered NXDOMAIN by libunbound itself: test setups
     * and lab networks use them on purpose. */
    if (s->dns && used > 0 &&
        dns_resolver_set_option(s->dns, "local-zone:", "test. transparent") < 0)
        log_warn("qmgr dns-option-failed option=local-zone");
    s->tls = smtpc_tls_ctx_new(cfg->client_tls_ca_file[0] ? cfg->client_tls_ca_file : NULL);
    if (!s->tls && cfg->client_tls_ca_file[0]) {
        /* Opportunistic TLS needs no trust anchors: keep it, only "verify" will fail. */
        log_warn("qmgr tls-ca-file-unusable path=%s effect=\"tls_policy verify will fail\"",
                 cfg->client_tls_ca_file);
        s->tls = smtpc_tls_ctx_new(NULL);
    }
    s->kick = event_new(base, -1, 0, qs_on_kick, s);
    if (!s->dns || !s->kick || qs_load_auth(s, cfg->client_auth_file) < 0) {
        qmgr_smtp_free(&s);
        return NULL;
    }
    if (!s->tls)
        log_warn("qmgr tls-client-unavailable effect=\"STARTTLS will not be used\"");
    return s;
}

void qmgr_smtp_free(struct qmgr_smtp **sp)
{
    struct qmgr_smtp *s = *sp;
    if (!s)
        return;
    while (s->dests) {
        struct qs_dest *d = s->dests;
        s->dests = d->next;
        while (d->conns) {
            struct qs_conn *k = d->conns;
            d->conns = k->next;
            smtpc_free(&k->c);
            qs_job_free(&k->job);
            free(k);
        }
        struct qs_job *j;
        while ((j = qs_dest_pop(d)) != NULL)
            qs_job_free(&j);
        if (d->dq)
            dns_cancel(d->dq);
        free(d->mx);
        free(d);
    }
    dns_resolver_free(&s->dns);
    if (s->kick)
        event_free(s->kick);
    if (s->tls)
        SSL_CTX_free(s->tls);
    explicit_bzero(s->cred, sizeof s->cred);
    free(s);
    *sp = NULL;
}
