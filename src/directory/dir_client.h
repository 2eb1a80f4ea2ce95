/*
 * dir_client.h - the gateway's asynchronous client of the public directory
 * (libevent): "which alternative addresses does this SMTP address have?"
 *
 * One lookup is an HTTPS GET of <url>/api/v1/lookup?address=<smtp> (a
 * fresh TLS connection, certificate verified against a CA file, host name
 * checked), bounded in time (timeout) and size (DIR_CLIENT_BODY_MAX). The
 * answer must be
 *   200 {"address": "<smtp>", "alternatives": [{"type": "bitmessage", "address": "BM-.."}, ...]}
 * with "address" naming the address asked for (after normalisation), at
 * most DIR_CLIENT_ALTS_MAX alternatives, each of a known type
 * ("bitmessage", "dmail") with a valid address (dir_addr.h); entries of a
 * type this version does not know are skipped. An empty list, or 404,
 * means "no alternative" and is cached for negative_ttl.
 *
 * Answers are cached by normalised address for cache_ttl (negative ones
 * for negative_ttl) in a bounded table (least recently used entries go
 * first). Concurrent lookups of one address share one request.
 *
 * Errors given to the callback:
 *   PST_EAGAIN  timeout, connection or TLS failure, 5xx / 429: try later
 *               (the gateway defers the message); never cached
 *   PST_EINVAL  the address is not a valid SMTP address, or the directory's
 *               answer is malformed (bad JSON, wrong types, bad address
 *               syntax, too large, unexpected status)
 * The callback is never called from inside dir_client_lookup (cache hits
 * are delivered from the event loop too).
 *
 * A struct dir_client belongs to one event base and one thread.
 */
#ifndef POSTERN_DIR_CLIENT_H
#define POSTERN_DIR_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "directory/dir_store.h"
#include "lib/config.h"
#include "lib/err.h"

struct event_base;

#define DIR_CLIENT_BODY_MAX (64u * 1024) /* response body bytes */
#define DIR_CLIENT_HEADERS_MAX (16u * 1024)
#define DIR_CLIENT_ALTS_MAX 64       /* alternatives in one answer */
#define DIR_CLIENT_CACHE_MAX 10000   /* cached addresses */
#define DIR_CLIENT_INFLIGHT_MAX 1024 /* distinct addresses being asked at once */
#define DIR_CLIENT_WAITERS_MAX 1024  /* lookups sharing one request */
#define DIR_CLIENT_URL_MAX 1024

struct dir_client_alt {
    const char *type;    /* "bitmessage" | "dmail" */
    const char *address; /* canonical form */
};

/* Borrowed by the callback for its duration only. */
struct dir_client_result {
    const char *smtp; /* normalised address */
    size_t n;         /* 0: no alternative address */
    const struct dir_client_alt *alt;
    bool cached; /* answered from the cache */
};

/* rc is 0, PST_EAGAIN or PST_EINVAL (see above); res is NULL unless rc == 0. */
typedef void (*dir_client_cb)(void *arg, int rc, const struct dir_client_result *res);

struct dir_client_params {
    const char *url;          /* https://host[:port][/prefix]; borrowed for the call only */
    const char *connect_host; /* connect here instead of url's host (NULL: url's host) */
    const char *ca_file;      /* PEM bundle (NULL: OpenSSL's default paths) */
    const char *verify_name;  /* name checked in the certificate (NULL: url's host) */
    int64_t timeout;          /* seconds for a whole lookup, >= 1 */
    int64_t cache_ttl;        /* seconds; 0 = no positive caching */
    int64_t negative_ttl;     /* seconds; 0 = no negative caching */
    size_t cache_max;         /* entries (0 = DIR_CLIENT_CACHE_MAX) */
    bool case_sensitive;      /* local parts (cfg->dir_case_sensitive) */
};

struct dir_client;

/* dir_client_new - a client on base (borrowed). PST_EINVAL for a bad URL, PST_ETLS if the CA file
 * cannot be loaded, PST_ENOMEM. Caller frees with dir_client_free(). */
PST_MUST_CHECK int dir_client_new(struct event_base *base, const struct dir_client_params *p,
                                  struct dir_client **out);

/*
 * dir_client_new_cfg - the client as configured: [directory] url (empty: our
 * own listener at [directory] listen, verified against our own certificate
 * under [server] hostname), ca_file (empty: [client] tls_ca_file),
 * client_timeout, cache_ttl, negative_ttl, case_sensitive_local.
 * PST_ECONFIG when url is empty and the listener is disabled.
 */
PST_MUST_CHECK int dir_client_new_cfg(struct event_base *base, const struct cfg *cfg,
                                      struct dir_client **out);

/*
 * dir_client_lookup - look smtp (borrowed, NUL-terminated) up; cb(arg, ...)
 * is called exactly once, later, from the event loop. Returns 0, or
 * PST_EINVAL (not an SMTP address) / PST_EAGAIN (too many lookups in
 * flight) / PST_ENOMEM without calling cb.
 */
PST_MUST_CHECK int dir_client_lookup(struct dir_client *c, const char *smtp, dir_client_cb cb,
                                     void *arg);

/* dir_client_cache_clear - forget every cached answer. */
void dir_client_cache_clear(struct dir_client *c);

/* dir_client_set_clock - tests: the clock used for the cache's expiry (seconds); NULL restores
 * the monotonic clock. */
void dir_client_set_clock(struct dir_client *c, int64_t (*now)(void *arg), void *arg);

struct dir_client_stats {
    uint64_t lookups, cache_hits, negative_hits, requests, coalesced, errors;
    size_t cached;
};
void dir_client_stats(const struct dir_client *c, struct dir_client_stats *out);

/* dir_client_free - cancel what is in flight (callbacks of pending lookups are NOT called) and
 * free. *c = NULL. Accepts NULL. Not from inside a callback. */
void dir_client_free(struct dir_client **c);

#endif
