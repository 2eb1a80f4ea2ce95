/*
 * dir_client.c - asynchronous directory client with a bounded cache (see
 * dir_client.h for the API, the answer format and the error policy).
 *
 * Wire: HTTP/1.1 GET over TLS 1.2+ (RFC 9110, RFC 9112), one connection per
 * request ("Connection: close"): evhttp on a bufferevent_openssl, the peer
 * certificate verified against the configured CA and the host name (RFC
 * 6125, OpenSSL's SSL_set1_host; an IP literal is checked against the
 * certificate's IP subjectAltName). JSON (RFC 8259) parsed by jansson
 * with duplicate keys refused.
 *
 * Structure:
 *   cache    a hash table of chains (FNV-1a with a per-client random seed,
 *            so recipients cannot aim at one bucket) holding at most
 *            cache_max entries, on a doubly linked LRU list; an entry is
 *            the normalised address, its expiry and its answer.
 *   jobs     one per address being asked (a list; at most
 *            DIR_CLIENT_INFLIGHT_MAX); later lookups of the same address
 *            join the job's waiters (coalescing).
 *   ready    answers from the cache waiting for the event loop, delivered
 *            by one event so that no callback runs inside dir_client_lookup.
 * A job ends exactly once (job_finish): from the request's callback via a
 * deferred event (evhttp must not see its connection freed inside its own
 * callback), or from the job's timer, which cancels the request.
 *
 * Failure policy: nothing from the network can abort; every problem ends
 * the job with PST_EAGAIN or PST_EINVAL, logged once with the address
 * quoted.
 */
#include "directory/dir_client.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "directory/dir_addr.h"
#include "lib/log.h"
#include "lib/netaddr.h"

#define DIR_CLIENT_PATH "/api/v1/lookup?address="
#define DIR_CLIENT_HOST_MAX 256
#define DIR_CLIENT_FNV_OFFSET 0xcbf29ce484222325ULL
#define DIR_CLIENT_FNV_PRIME 0x100000001b3ULL

/* an answer: n alternatives; their strings follow the array in the same allocation */
struct dir_ans {
    size_t n;
    size_t size; /* bytes of the whole allocation */
    struct dir_client_alt alt[];
};

struct dir_centry {
    struct dir_centry *hnext;
    struct dir_centry *prev, *next; /* LRU: c->lru_head is the most recent */
    uint64_t hash;
    int64_t expires;
    struct dir_ans *ans;
    char key[DIR_SMTP_MAX + 1];
};

struct dir_waiter {
    struct dir_waiter *next;
    dir_client_cb cb;
    void *arg;
};

struct dir_job {
    struct dir_job *next;
    struct dir_client *c;
    char key[DIR_SMTP_MAX + 1];
    struct dir_waiter *waiters, **wtail;
    size_t nwaiters;
    struct evhttp_connection *conn;
    struct evhttp_request *req; /* NULL once libevent has finished with it */
    struct event *timer;
    struct event *done_ev;
    bool completed; /* the request callback ran; done_ev is active */
    bool have_err;
    enum evhttp_request_error err;
    int rc;              /* outcome, set when completed */
    struct dir_ans *ans; /* outcome, set when completed and rc == 0 */
};

struct dir_ready {
    struct dir_ready *next;
    dir_client_cb cb;
    void *arg;
    struct dir_ans *ans;
    char key[DIR_SMTP_MAX + 1];
};

struct dir_client {
    struct event_base *base;
    struct evdns_base *dns; /* NULL when the host is an IP literal */
    SSL_CTX *ctx;
    char host[DIR_CLIENT_HOST_MAX];        /* where to connect */
    char hosthdr[DIR_CLIENT_HOST_MAX + 8]; /* Host: header */
    char verify[DIR_CLIENT_HOST_MAX];      /* name or IP checked in the certificate */
    int port;
    char prefix[DIR_CLIENT_URL_MAX]; /* path before /api/v1/..., no trailing '/' */
    int64_t timeout, cache_ttl, negative_ttl;
    bool case_sensitive;
    int64_t (*clock)(void *);
    void *clock_arg;

    uint64_t seed;
    struct dir_centry **buckets;
    size_t nbuckets, ncached, cache_max;
    struct dir_centry *lru_head, *lru_tail;

    struct dir_job *jobs;
    size_t njobs;

    struct dir_ready *ready, **ready_tail;
    struct event *ready_ev;

    struct dir_client_stats st;
};

static void dir_client_job_finish(struct dir_job *j, int rc, struct dir_ans *ans);

/* ---- answers ---- */

static struct dir_ans *dir_ans_new(size_t n, size_t strbytes)
{
    size_t size = sizeof(struct dir_ans) + n * sizeof(struct dir_client_alt) + strbytes;
    struct dir_ans *a = calloc(1, size);
    if (a == NULL)
        return NULL;
    a->n = n;
    a->size = size;
    return a;
}

static struct dir_ans *dir_ans_dup(const struct dir_ans *a)
{
    struct dir_ans *b = malloc(a->size);
    if (b == NULL)
        return NULL;
    memcpy(b, a, a->size);
    for (size_t i = 0; i < a->n; i++) { /* rebase the string pointers */
        b->alt[i].type = (const char *)b + (a->alt[i].type - (const char *)a);
        b->alt[i].address = (const char *)b + (a->alt[i].address - (const char *)a);
    }
    return b;
}

/* ---- clock and hash ---- */

static int64_t dir_client_mono(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

static int64_t dir_client_now(const struct dir_client *c)
{
    return c->clock(c->clock_arg);
}

static uint64_t dir_client_hash(const struct dir_client *c, const char *key)
{
    uint64_t h = DIR_CLIENT_FNV_OFFSET ^ c->seed;
    for (const unsigned char *s = (const unsigned char *)key; *s; s++) {
        h ^= *s;
        h *= DIR_CLIENT_FNV_PRIME;
    }
    return h ^ (h >> 29);
}

/* ---- cache ---- */

static void dir_cache_unlink(struct dir_client *c, struct dir_centry *e)
{
    struct dir_centry **pp = &c->buckets[e->hash & (c->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        c->lru_head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        c->lru_tail = e->prev;
    c->ncached--;
    free(e->ans);
    free(e);
}

static void dir_cache_touch(struct dir_client *c, struct dir_centry *e)
{
    if (c->lru_head == e)
        return;
    e->prev->next = e->next; /* e is not the head, so prev != NULL */
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        c->lru_tail = e->prev;
    e->prev = NULL;
    e->next = c->lru_head;
    c->lru_head->prev = e;
    c->lru_head = e;
}

/* dir_cache_find - the fresh entry for key, or NULL (an expired one is dropped). */
static struct dir_centry *dir_cache_find(struct dir_client *c, const char *key)
{
    uint64_t h = dir_client_hash(c, key);
    struct dir_centry *e = c->buckets[h & (c->nbuckets - 1)];
    while (e != NULL && (e->hash != h || strcmp(e->key, key) != 0))
        e = e->hnext;
    if (e == NULL)
        return NULL;
    if (e->expires <= dir_client_now(c)) {
        dir_cache_unlink(c, e);
        return NULL;
    }
    dir_cache_touch(c, e);
    return e;
}

/* dir_cache_put - remember a copy of ans for key for ttl seconds (ttl 0: not at all). */
static void dir_cache_put(struct dir_client *c, const char *key, const struct dir_ans *ans,
                          int64_t ttl)
{
    if (ttl <= 0)
        return;
    uint64_t h = dir_client_hash(c, key);
    for (struct dir_centry *e = c->buckets[h & (c->nbuckets - 1)]; e != NULL; e = e->hnext)
        if (e->hash == h && strcmp(e->key, key) == 0) {
            dir_cache_unlink(c, e);
            break;
        }
    while (c->ncached >= c->cache_max && c->lru_tail != NULL)
        dir_cache_unlink(c, c->lru_tail);
    struct dir_centry *e = calloc(1, sizeof(*e));
    struct dir_ans *copy = dir_ans_dup(ans);
    if (e == NULL || copy == NULL) {
        free(e);
        free(copy);
        return; /* not caching is always correct */
    }
    memcpy(e->key, key, strlen(key) + 1);
    e->hash = h;
    e->ans = copy;
    e->expires = dir_client_now(c) + ttl;
    e->hnext = c->buckets[h & (c->nbuckets - 1)];
    c->buckets[h & (c->nbuckets - 1)] = e;
    e->next = c->lru_head;
    if (c->lru_head != NULL)
        c->lru_head->prev = e;
    c->lru_head = e;
    if (c->lru_tail == NULL)
        c->lru_tail = e;
    c->ncached++;
}

void dir_client_cache_clear(struct dir_client *c)
{
    while (c->lru_head != NULL)
        dir_cache_unlink(c, c->lru_head);
}

/* ---- delivering ---- */

static void dir_client_deliver(dir_client_cb cb, void *arg, const char *key, int rc,
                               const struct dir_ans *ans, bool cached)
{
    struct dir_client_result res = {
        .smtp = key,
        .n = ans != NULL ? ans->n : 0,
        .alt = ans != NULL ? ans->alt : NULL,
        .cached = cached,
    };
    cb(arg, rc, rc == 0 ? &res : NULL);
}

static void dir_client_ready_cb(evutil_socket_t fd, short what, void *arg)
{
    struct dir_client *c = arg;
    (void)fd, (void)what;
    struct dir_ready *r = c->ready;
    c->ready = NULL;
    c->ready_tail = &c->ready;
    while (r != NULL) {
        struct dir_ready *next = r->next;
        dir_client_deliver(r->cb, r->arg, r->key, 0, r->ans, true);
        free(r->ans);
        free(r);
        r = next;
    }
}

static int dir_client_ready_push(struct dir_client *c, const char *key, const struct dir_ans *ans,
                                 dir_client_cb cb, void *arg)
{
    struct dir_ready *r = calloc(1, sizeof(*r));
    struct dir_ans *copy = r != NULL ? dir_ans_dup(ans) : NULL;
    if (copy == NULL) {
        free(r);
        return PST_ENOMEM;
    }
    r->cb = cb;
    r->arg = arg;
    r->ans = copy;
    memcpy(r->key, key, strlen(key) + 1);
    *c->ready_tail = r;
    c->ready_tail = &r->next;
    event_active(c->ready_ev, EV_READ, 0);
    return 0;
}

/* ---- the JSON answer ---- */

struct dir_parsed_alt {
    char type[DIR_TYPE_MAX + 1];
    char addr[DIR_ALT_MAX + 1];
};

/* dir_client_parse_alt - one element of "alternatives": 1 kept, 0 skipped (unknown type),
 * PST_EINVAL. */
static int dir_client_parse_alt(json_t *el, struct dir_parsed_alt *out, const char **why)
{
    json_t *type = json_object_get(el, "type");
    json_t *addr = json_object_get(el, "address");
    if (!json_is_object(el) || !json_is_string(type) || !json_is_string(addr)) {
        *why = "alternative is not {type: string, address: string}";
        return PST_EINVAL;
    }
    const char *t = json_string_value(type);
    if (!dir_addr_type_valid(t)) {
        size_t n = json_string_length(type);
        for (size_t i = 0; i < n; i++)
            if (!islower((unsigned char)t[i]) && !isdigit((unsigned char)t[i]) && t[i] != '_') {
                *why = "malformed alternative type";
                return PST_EINVAL;
            }
        return n > 0 && n <= DIR_TYPE_MAX ? 0 : (*why = "malformed alternative type", PST_EINVAL);
    }
    memcpy(out->type, t, strlen(t) + 1);
    if (dir_addr_alt_normalize(t, json_string_value(addr), json_string_length(addr), out->addr,
                               sizeof(out->addr), why) != 0)
        return PST_EINVAL;
    return 1;
}

/* dir_client_parse - the body of a 200 answer for key into a new answer (*out). */
static int dir_client_parse(const struct dir_client *c, const char *key, const char *body,
                            size_t len, struct dir_ans **out, const char **why)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        *why = "not JSON";
        return PST_EINVAL;
    }
    int rc = PST_EINVAL;
    struct dir_parsed_alt *pa = NULL;
    json_t *addr = json_object_get(root, "address");
    json_t *alts = json_object_get(root, "alternatives");
    char norm[DIR_SMTP_MAX + 1];
    size_t n = 0, strbytes = 0;
    *why = "answer is not {address: string, alternatives: array}";
    if (!json_is_object(root) || !json_is_string(addr) || !json_is_array(alts))
        goto out;
    if (dir_addr_smtp_normalize(json_string_value(addr), json_string_length(addr),
                                c->case_sensitive, norm, sizeof(norm), why) != 0)
        goto out;
    *why = "answer is for another address";
    if (strcmp(norm, key) != 0)
        goto out;
    *why = "too many alternatives";
    if (json_array_size(alts) > DIR_CLIENT_ALTS_MAX)
        goto out;
    pa = calloc(DIR_CLIENT_ALTS_MAX, sizeof(*pa));
    rc = PST_ENOMEM;
    if (pa == NULL)
        goto out;
    for (size_t i = 0; i < json_array_size(alts); i++) {
        int k = dir_client_parse_alt(json_array_get(alts, i), &pa[n], why);
        rc = k < 0 ? k : 0;
        if (k < 0)
            goto out;
        if (k == 1)
            strbytes += strlen(pa[n].type) + strlen(pa[n].addr) + 2, n++;
    }
    struct dir_ans *a = dir_ans_new(n, strbytes);
    rc = PST_ENOMEM;
    if (a == NULL)
        goto out;
    char *s = (char *)&a->alt[n];
    for (size_t i = 0; i < n; i++) {
        size_t tl = strlen(pa[i].type) + 1, al = strlen(pa[i].addr) + 1;
        memcpy(s, pa[i].type, tl);
        a->alt[i].type = s;
        s += tl;
        memcpy(s, pa[i].addr, al);
        a->alt[i].address = s;
        s += al;
    }
    *out = a;
    rc = 0;
out:
    free(pa);
    json_decref(root);
    return rc;
}

/* ---- requests ---- */

static void dir_client_log_fail(const struct dir_job *j, const char *why)
{
    char q[96];
    log_warn("dir_client lookup_failed address=%s server=%s:%d reason=%s",
             log_quote(q, sizeof(q), j->key, strlen(j->key)), j->c->host, j->c->port, why);
}

/* dir_client_outcome - rc and answer of a completed request (req NULL: connection failed). */
static int dir_client_outcome(struct dir_job *j, struct evhttp_request *req, struct dir_ans **ans)
{
    const char *why = NULL;
    if (req == NULL || evhttp_request_get_response_code(req) == 0) {
        bool too_long = j->have_err && j->err == EVREQ_HTTP_DATA_TOO_LONG;
        dir_client_log_fail(j, too_long                                      ? "answer_too_large"
                               : j->have_err && j->err == EVREQ_HTTP_TIMEOUT ? "timeout"
                                                                             : "connection_failed");
        return too_long ? PST_EINVAL : PST_EAGAIN;
    }
    int code = evhttp_request_get_response_code(req);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (code == 429 || code >= 500) {
        dir_client_log_fail(j, "server_busy");
        return PST_EAGAIN;
    }
    if (len > DIR_CLIENT_BODY_MAX) {
        dir_client_log_fail(j, "answer_too_large");
        return PST_EINVAL;
    }
    if (code == 404) {
        *ans = dir_ans_new(0, 0);
        return *ans != NULL ? 0 : PST_ENOMEM;
    }
    if (code != 200) {
        dir_client_log_fail(j, "unexpected_status");
        return PST_EINVAL;
    }
    const char *body = (const char *)evbuffer_pullup(in, -1);
    int rc = dir_client_parse(j->c, j->key, body != NULL ? body : "", len, ans, &why);
    if (rc == PST_EINVAL) {
        char q[96];
        dir_client_log_fail(j, log_quote(q, sizeof(q), why, strlen(why)));
    }
    return rc;
}

static void dir_client_done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct dir_job *j = arg;
    (void)fd, (void)what;
    dir_client_job_finish(j, j->rc, j->ans);
}

static void dir_client_req_cb(struct evhttp_request *req, void *arg)
{
    struct dir_job *j = arg;
    if (j->completed)
        return;
    j->completed = true;
    j->ans = NULL;
    j->rc = dir_client_outcome(j, req, &j->ans);
    j->req = NULL; /* libevent frees it when this returns */
    event_active(j->done_ev, EV_READ, 0);
}

static void dir_client_err_cb(enum evhttp_request_error err, void *arg)
{
    struct dir_job *j = arg;
    j->have_err = true;
    j->err = err;
}

static void dir_client_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct dir_job *j = arg;
    (void)fd, (void)what;
    if (j->completed)
        return;
    if (j->req != NULL) {
        evhttp_cancel_request(j->req);
        j->req = NULL;
    }
    dir_client_log_fail(j, "timeout");
    dir_client_job_finish(j, PST_EAGAIN, NULL);
}

static SSL *dir_client_ssl(struct dir_client *c)
{
    SSL *ssl = SSL_new(c->ctx);
    if (ssl == NULL)
        return NULL;
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, c->verify, ip) == 1 || inet_pton(AF_INET6, c->verify, ip) == 1;
    int ok =
        is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), c->verify) == 1
              : SSL_set_tlsext_host_name(ssl, c->verify) == 1 && SSL_set1_host(ssl, c->verify) == 1;
    if (!ok) {
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

static int dir_client_start(struct dir_job *j)
{
    struct dir_client *c = j->c;
    char *enc = evhttp_uriencode(j->key, -1, 0);
    if (enc == NULL)
        return PST_ENOMEM;
    char path[DIR_CLIENT_URL_MAX * 4];
    int n = snprintf(path, sizeof(path), "%s%s%s", c->prefix, DIR_CLIENT_PATH, enc);
    free(enc);
    if (n < 0 || (size_t)n >= sizeof(path))
        return PST_ELIMIT;
    SSL *ssl = dir_client_ssl(c);
    if (ssl == NULL)
        return PST_ETLS;
    struct bufferevent *bev =
        bufferevent_openssl_socket_new(c->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                       BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (bev == NULL) {
        SSL_free(ssl);
        return PST_ENOMEM;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    j->conn =
        evhttp_connection_base_bufferevent_new(c->base, c->dns, bev, c->host, (ev_uint16_t)c->port);
    if (j->conn == NULL) {
        bufferevent_free(bev);
        return PST_ENOMEM;
    }
    evhttp_connection_set_timeout(j->conn, (int)c->timeout);
    evhttp_connection_set_retries(j->conn, 0);
    evhttp_connection_set_max_body_size(j->conn, DIR_CLIENT_BODY_MAX);
    evhttp_connection_set_max_headers_size(j->conn, DIR_CLIENT_HEADERS_MAX);
    j->req = evhttp_request_new(dir_client_req_cb, j);
    if (j->req == NULL)
        return PST_ENOMEM;
    evhttp_request_set_error_cb(j->req, dir_client_err_cb);
    struct evkeyvalq *h = evhttp_request_get_output_headers(j->req);
    if (evhttp_add_header(h, "Host", c->hosthdr) != 0 ||
        evhttp_add_header(h, "Accept", "application/json") != 0 ||
        evhttp_add_header(h, "Connection", "close") != 0 ||
        evhttp_add_header(h, "User-Agent", "postern-dir-client") != 0) {
        evhttp_request_free(j->req);
        j->req = NULL;
        return PST_ENOMEM;
    }
    if (evhttp_make_request(j->conn, j->req, EVHTTP_REQ_GET, path) != 0) {
        j->req = NULL; /* evhttp_make_request frees it on failure */
        return PST_EAGAIN;
    }
    struct timeval tv = {.tv_sec = c->timeout};
    return evtimer_add(j->timer, &tv) == 0 ? 0 : PST_ENOMEM;
}

static void dir_client_job_free(struct dir_job *j)
{
    if (j->req != NULL)
        evhttp_cancel_request(j->req);
    if (j->conn != NULL)
        evhttp_connection_free(j->conn);
    if (j->timer != NULL)
        event_free(j->timer);
    if (j->done_ev != NULL)
        event_free(j->done_ev);
    free(j->ans);
    while (j->waiters != NULL) {
        struct dir_waiter *w = j->waiters;
        j->waiters = w->next;
        free(w);
    }
    free(j);
}

static void dir_client_job_unlink(struct dir_job *j)
{
    struct dir_job **pp = &j->c->jobs;
    while (*pp != NULL && *pp != j)
        pp = &(*pp)->next;
    if (*pp == j) {
        *pp = j->next;
        j->c->njobs--;
    }
}

/* dir_client_job_finish - the job's outcome: cache it, tell every waiter, free the job. */
static void dir_client_job_finish(struct dir_job *j, int rc, struct dir_ans *ans)
{
    struct dir_client *c = j->c;
    dir_client_job_unlink(j);
    j->ans = ans; /* freed with the job */
    if (rc == 0)
        dir_cache_put(c, j->key, ans, ans->n > 0 ? c->cache_ttl : c->negative_ttl);
    else
        c->st.errors++;
    struct dir_waiter *w = j->waiters;
    j->waiters = NULL;
    /* free the connection before the callbacks: they may start new lookups */
    if (j->conn != NULL) {
        evhttp_connection_free(j->conn);
        j->conn = NULL;
    }
    while (w != NULL) {
        struct dir_waiter *next = w->next;
        dir_client_deliver(w->cb, w->arg, j->key, rc, ans, false);
        free(w);
        w = next;
    }
    dir_client_job_free(j);
}

static struct dir_job *dir_client_job_new(struct dir_client *c, const char *key)
{
    struct dir_job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    j->c = c;
    memcpy(j->key, key, strlen(key) + 1);
    j->wtail = &j->waiters;
    j->timer = evtimer_new(c->base, dir_client_timer_cb, j);
    j->done_ev = event_new(c->base, -1, 0, dir_client_done_cb, j);
    if (j->timer == NULL || j->done_ev == NULL) {
        dir_client_job_free(j);
        return NULL;
    }
    return j;
}

static int dir_client_wait(struct dir_job *j, dir_client_cb cb, void *arg)
{
    if (j->nwaiters >= DIR_CLIENT_WAITERS_MAX)
        return PST_EAGAIN;
    struct dir_waiter *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return PST_ENOMEM;
    w->cb = cb;
    w->arg = arg;
    *j->wtail = w;
    j->wtail = &w->next;
    j->nwaiters++;
    return 0;
}

int dir_client_lookup(struct dir_client *c, const char *smtp, dir_client_cb cb, void *arg)
{
    char key[DIR_SMTP_MAX + 1];
    const char *why = NULL;
    if (smtp == NULL || cb == NULL ||
        dir_addr_smtp_normalize(smtp, strlen(smtp), c->case_sensitive, key, sizeof(key), &why) != 0)
        return PST_EINVAL;
    c->st.lookups++;
    struct dir_centry *e = dir_cache_find(c, key);
    if (e != NULL) {
        c->st.cache_hits++;
        c->st.negative_hits += e->ans->n == 0;
        return dir_client_ready_push(c, key, e->ans, cb, arg);
    }
    for (struct dir_job *j = c->jobs; j != NULL; j = j->next)
        if (strcmp(j->key, key) == 0) {
            int rc = dir_client_wait(j, cb, arg);
            c->st.coalesced += rc == 0;
            return rc;
        }
    if (c->njobs >= DIR_CLIENT_INFLIGHT_MAX)
        return PST_EAGAIN;
    struct dir_job *j = dir_client_job_new(c, key);
    if (j == NULL)
        return PST_ENOMEM;
    int rc = dir_client_wait(j, cb, arg);
    if (rc == 0)
        rc = dir_client_start(j);
    if (rc != 0) {
        dir_client_job_free(j);
        return rc;
    }
    j->next = c->jobs;
    c->jobs = j;
    c->njobs++;
    c->st.requests++;
    return 0;
}

/* ---- construction ---- */

static int dir_client_parse_url(struct dir_client *c, const struct dir_client_params *p)
{
    struct evhttp_uri *u = evhttp_uri_parse_with_flags(p->url, 0);
    if (u == NULL)
        return PST_EINVAL;
    int rc = PST_EINVAL;
    const char *scheme = evhttp_uri_get_scheme(u), *host = evhttp_uri_get_host(u);
    const char *path = evhttp_uri_get_path(u);
    if (scheme == NULL || strcasecmp(scheme, "https") != 0 || host == NULL || host[0] == '\0' ||
        evhttp_uri_get_query(u) != NULL || evhttp_uri_get_fragment(u) != NULL ||
        evhttp_uri_get_userinfo(u) != NULL)
        goto out;
    c->port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : 443;
    size_t hl = strlen(host);
    const char *bare = host;
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']')
        bare = host + 1, hl -= 2;
    if (hl >= sizeof(c->verify))
        goto out;
    memcpy(c->verify, bare, hl);
    c->verify[hl] = '\0';
    int n = snprintf(c->hosthdr, sizeof(c->hosthdr), "%s:%d", host, c->port);
    if (n < 0 || (size_t)n >= sizeof(c->hosthdr))
        goto out;
    n = snprintf(c->prefix, sizeof(c->prefix), "%s", path != NULL ? path : "");
    if (n < 0 || (size_t)n >= sizeof(c->prefix))
        goto out;
    size_t pl = (size_t)n;
    while (pl > 0 && c->prefix[pl - 1] == '/')
        c->prefix[--pl] = '\0';
    char bare_host[DIR_CLIENT_HOST_MAX];
    memcpy(bare_host, c->verify, hl + 1);
    const char *conn = p->connect_host != NULL ? p->connect_host : bare_host;
    const char *ver = p->verify_name != NULL ? p->verify_name : bare_host;
    n = snprintf(c->host, sizeof(c->host), "%s", conn);
    int m = snprintf(c->verify, sizeof(c->verify), "%s", ver);
    if (n <= 0 || (size_t)n >= sizeof(c->host) || m <= 0 || (size_t)m >= sizeof(c->verify))
        goto out;
    rc = 0;
out:
    evhttp_uri_free(u);
    return rc;
}

static int dir_client_tls(struct dir_client *c, const char *ca_file)
{
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (c->ctx == NULL)
        return PST_ETLS;
    int ok = SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION) == 1;
    if (ok)
        ok = ca_file != NULL && ca_file[0] ? SSL_CTX_load_verify_file(c->ctx, ca_file) == 1
                                           : SSL_CTX_set_default_verify_paths(c->ctx) == 1;
    if (!ok) {
        log_error("dir_client tls_setup_failed ca_file=%s", ca_file != NULL ? ca_file : "default");
        ERR_clear_error();
        return PST_ETLS;
    }
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    return 0;
}

static bool dir_client_is_ip(const char *h)
{
    unsigned char b[16];
    return inet_pton(AF_INET, h, b) == 1 || inet_pton(AF_INET6, h, b) == 1;
}

int dir_client_new(struct event_base *base, const struct dir_client_params *p,
                   struct dir_client **out)
{
    *out = NULL;
    if (p->url == NULL || strlen(p->url) >= DIR_CLIENT_URL_MAX || p->timeout < 1 ||
        p->cache_ttl < 0 || p->negative_ttl < 0)
        return PST_EINVAL;
    struct dir_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return PST_ENOMEM;
    c->base = base;
    c->timeout = p->timeout;
    c->cache_ttl = p->cache_ttl;
    c->negative_ttl = p->negative_ttl;
    c->case_sensitive = p->case_sensitive;
    c->clock = dir_client_mono;
    c->cache_max = p->cache_max > 0 ? p->cache_max : DIR_CLIENT_CACHE_MAX;
    c->nbuckets = 16;
    while (c->nbuckets < 2 * c->cache_max)
        c->nbuckets *= 2;
    c->ready_tail = &c->ready;
    int rc = dir_client_parse_url(c, p);
    if (rc == 0)
        rc = dir_client_tls(c, p->ca_file);
    if (rc == 0 && RAND_bytes((unsigned char *)&c->seed, sizeof(c->seed)) != 1)
        rc = PST_ETLS;
    if (rc == 0) {
        c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
        c->ready_ev = event_new(base, -1, 0, dir_client_ready_cb, c);
        if (c->buckets == NULL || c->ready_ev == NULL)
            rc = PST_ENOMEM;
    }
    if (rc == 0 && !dir_client_is_ip(c->host))
        c->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                          EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (rc != 0) {
        dir_client_free(&c);
        return rc;
    }
    *out = c;
    return 0;
}

/* dir_client_own_listener - host and port to reach our own [directory] listen. */
static int dir_client_own_listener(const char *listen, char *host, size_t hostsz, int *port)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (listen == NULL || listen[0] == '\0' || netaddr_parse_listen(listen, &ss, &sl) != 0)
        return PST_ECONFIG;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        if (a->sin_addr.s_addr == htonl(INADDR_ANY))
            a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        *port = ntohs(a->sin_port);
        return inet_ntop(AF_INET, &a->sin_addr, host, (socklen_t)hostsz) ? 0 : PST_ECONFIG;
    }
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr))
        a6->sin6_addr = in6addr_loopback;
    *port = ntohs(a6->sin6_port);
    return inet_ntop(AF_INET6, &a6->sin6_addr, host, (socklen_t)hostsz) ? 0 : PST_ECONFIG;
}

int dir_client_new_cfg(struct event_base *base, const struct cfg *cfg, struct dir_client **out)
{
    struct dir_client_params p = {
        .url = cfg->dir_url,
        .ca_file = cfg->dir_ca_file[0] ? cfg->dir_ca_file : cfg->client_tls_ca_file,
        .timeout = cfg->dir_client_timeout,
        .cache_ttl = cfg->dir_cache_ttl,
        .negative_ttl = cfg->dir_negative_ttl,
        .case_sensitive = cfg->dir_case_sensitive != 0,
    };
    char host[INET6_ADDRSTRLEN], url[DIR_CLIENT_URL_MAX];
    if (cfg->dir_url[0] == '\0') {
        int port = 0;
        int rc = dir_client_own_listener(cfg->dir_listen, host, sizeof(host), &port);
        if (rc != 0)
            return rc;
        int n = snprintf(url, sizeof(url), "https://%s:%d", cfg->hostname, port);
        if (n < 0 || (size_t)n >= sizeof(url))
            return PST_ECONFIG;
        p.url = url;
        p.connect_host = host;
        p.verify_name = cfg->hostname;
        p.ca_file = cfg->dir_ca_file[0] ? cfg->dir_ca_file : cfg->tls_cert;
    }
    return dir_client_new(base, &p, out);
}

void dir_client_set_clock(struct dir_client *c, int64_t (*now)(void *arg), void *arg)
{
    c->clock = now != NULL ? now : dir_client_mono;
    c->clock_arg = now != NULL ? arg : NULL;
}

void dir_client_stats(const struct dir_client *c, struct dir_client_stats *out)
{
    *out = c->st;
    out->cached = c->ncached;
}

void dir_client_free(struct dir_client **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    struct dir_client *c = *cp;
    while (c->jobs != NULL) {
        struct dir_job *j = c->jobs;
        c->jobs = j->next;
        dir_client_job_free(j);
    }
    while (c->ready != NULL) {
        struct dir_ready *r = c->ready;
        c->ready = r->next;
        free(r->ans);
        free(r);
    }
    if (c->buckets != NULL)
        dir_client_cache_clear(c);
    free(c->buckets);
    if (c->ready_ev != NULL)
        event_free(c->ready_ev);
    if (c->dns != NULL)
        evdns_base_free(c->dns, 0);
    SSL_CTX_free(c->ctx);
    free(c);
    *cp = NULL;
}
