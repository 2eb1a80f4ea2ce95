/*
 * dir_http.h - the directory's HTTP request handling, independent of the
 * socket layer: directoryd.c turns each evhttp request into a struct
 * dir_http_req, calls dir_http_handle(), and sends the struct dir_http_resp
 * back. Unit tests drive the same function directly.
 *
 * Routes (docs/directory.md has the full API):
 *   GET  /                       registration and removal form (sets the CSRF cookie)
 *   GET  /style.css              the style sheet
 *   POST /register               smtp, alt, type, csrf -> two confirmations
 *   GET  /confirm?t=TOKEN        page with a button (a GET changes nothing)
 *   POST /confirm                t, csrf -> one side confirmed / listing removed
 *   POST /remove                 smtp, csrf -> removal link to the SMTP address
 *   GET  /doquery?smtpaddress=   the seed's XML (JSON with Accept: application/json)
 *   GET  /api/v1/lookup?address= JSON
 *   GET  /api/v1/reverse?address=[&type=]  JSON: SMTP addresses of an alternative
 *   GET|POST /api/v1/admin/records, DELETE /api/v1/admin/records/ID  (Bearer token)
 *
 * Failure policy: every bad request gets a complete 4xx response (an HTML
 * page for the form routes, XML or JSON for the APIs) and changes nothing;
 * internal failures give 500/503. dir_http_handle itself fails only when
 * even the error response cannot be built.
 */
#ifndef POSTERN_DIR_HTTP_H
#define POSTERN_DIR_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "directory/dir_store.h"
#include "lib/buf.h"
#include "lib/err.h"

#define DIR_HTTP_URI_MAX 2048         /* request-target bytes */
#define DIR_HTTP_BODY_MAX 8192        /* request body bytes (form and admin JSON) */
#define DIR_HTTP_HEADERS_MAX 8192     /* all request headers */
#define DIR_HTTP_RESP_MAX (1u << 20)  /* response body bytes */
#define DIR_HTTP_CSRF_TTL (2 * 3600)  /* seconds a form stays valid */
#define DIR_HTTP_SECRET_LEN 32        /* CSRF HMAC key */
#define DIR_HTTP_COOKIE "__Host-dirc" /* CSRF cookie name (RFC 6265bis __Host- prefix) */
#define DIR_HTTP_RATE_SLOTS 8192      /* in-memory per-IP table */
#define DIR_HTTP_ADMIN_PAGE_MAX 1000  /* records per admin list page */
#define DIR_HTTP_CACHE_MAX_AGE 60     /* Cache-Control max-age of lookups */
#define DIR_HTTP_VERSION_REFRESH 1    /* seconds between dir_store_version reads */

enum dir_http_method { DIR_M_GET = 0, DIR_M_HEAD, DIR_M_POST, DIR_M_DELETE, DIR_M_OTHER };

struct dir_http_req {
    enum dir_http_method method;
    const char *path;  /* request path without the query, NUL-terminated, not decoded */
    const char *query; /* raw query string (after '?'), NULL when none */
    size_t query_len;
    const char *body; /* request body, may be NULL */
    size_t body_len;
    const char *content_type; /* headers, NULL when absent; borrowed */
    const char *cookie;
    const char *accept;
    const char *if_none_match;
    const char *authorization;
    const struct sockaddr *peer; /* client address (rate limits); may be NULL */
    int64_t now;                 /* wall clock, seconds */
};

struct dir_http_resp {
    int status;
    const char *reason;       /* static */
    const char *content_type; /* static */
    bool cacheable;           /* Cache-Control: public, max-age; else no-store */
    bool vary_accept;
    char etag[48];        /* "" for none */
    char set_cookie[192]; /* "" for none */
    const char *allow;    /* static; for 405 */
    bool auth_challenge;  /* 401: send WWW-Authenticate: Bearer */
    buf_t *body;          /* borrowed from the handler; valid until the next dir_http_handle */
};

/* How confirmations leave: dir_confirm.c in the server, a recorder in tests. */
struct dir_http_sender {
    int (*mail)(void *arg, const char *to, const char *subject, const char *body);
    int (*bm)(void *arg, const char *to, const char *subject, const char *body);
    void *arg;
};

struct dir_http_params {
    const char *base_url;    /* links; borrowed */
    int64_t link_ttl;        /* seconds */
    int64_t max_per_ip;      /* form posts per client per hour */
    int64_t max_per_address; /* confirmation requests per address per day */
    bool case_sensitive;
    const char *admin_token; /* borrowed; NULL or "" disables the admin API */
    uint8_t secret[DIR_HTTP_SECRET_LEN];
};

struct dir_http;

/* dir_http_new - a handler over st (borrowed) sending through snd (copied). Caller frees with
 * dir_http_free(). */
PST_MUST_CHECK int dir_http_new(const struct dir_http_params *p, struct dir_store *st,
                                const struct dir_http_sender *snd, struct dir_http **out);
void dir_http_free(struct dir_http **h);

/* dir_http_new_peer - a handler for another thread: parent's parameters, secret, admin token
 * and rate-limit tables (shared, under a mutex) and write generation, over its own store st
 * (borrowed) sending through snd (copied). Handlers may be freed in any order. */
PST_MUST_CHECK int dir_http_new_peer(const struct dir_http *parent, struct dir_store *st,
                                     const struct dir_http_sender *snd, struct dir_http **out);

/* dir_http_handle - answer rq into rs. Returns 0 (rs filled, whatever the status) or PST_E*. */
PST_MUST_CHECK int dir_http_handle(struct dir_http *h, const struct dir_http_req *rq,
                                   struct dir_http_resp *rs);

/* dir_http_purge - drop expired pending records and tokens (call periodically). */
PST_MUST_CHECK int dir_http_purge(struct dir_http *h, int64_t now);

/* dir_http_csrf_token - the CSRF token for a cookie value at now (for tests). */
PST_MUST_CHECK int dir_http_csrf_token(const struct dir_http *h, const char *cookie, int64_t now,
                                       char *out, size_t outsz);

#endif
