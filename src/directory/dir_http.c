/*
 * dir_http.c - routing and handlers of the directory's HTTPS service.
 *
 * Routes are a const table of path, allowed methods and handler; the table,
 * not ad-hoc code, answers 404 (unknown path) and 405 (method not allowed,
 * with Allow). Form routes answer HTML pages (dir_pages.h), /doquery the
 * seed's XML, /api/ JSON.
 *
 * CSRF (form posts): the client holds a random cookie __Host-dirc (128
 * bits, Secure, HttpOnly, SameSite=Strict, Path=/); each form carries
 * csrf = "<unix time>.<base64url HMAC-SHA256(secret, cookie '.' time)>".
 * A post is accepted only when the cookie is present, the token's HMAC
 * matches it (constant-time compare) and the time is at most
 * DIR_HTTP_CSRF_TTL old. The secret is the server's (dir_http_params).
 *
 * Rate limits: form posts (/register, /remove) per client per hour in an
 * in-memory table (IPv4 per address, IPv6 per /64: lib/ipcount's key);
 * confirmation requests per address per day: registrations through
 * dir_store_count_recent (SMTP address and alternative address, so they
 * hold across instances sharing PostgreSQL), removal requests in a second
 * in-memory table keyed by SHA-256 of the SMTP address.
 *
 * Lookups: at most one database query each. The ETag is
 * "<store version>-<FNV-1a of format and key>"; the version is read at most
 * every DIR_HTTP_VERSION_REFRESH seconds (and after every write by this
 * process), so a change made by another instance shows in ETags within that
 * time. A matching If-None-Match answers 304 without touching the database.
 *
 * Threads: directoryd runs one handler per event-loop thread, each with its
 * own store connection (dir_http_new_peer). The handlers share one struct
 * dir_http_shared: the two rate-limit tables (under its mutex; only form
 * posts touch them) and a write generation (atomic), bumped after every
 * write so that every thread re-reads the store version on its next lookup.
 *
 * Failure policy: bad input -> 4xx response, nothing changed; database or
 * sending failures -> 500/503 response, logged; buffer overflow of a
 * response -> PST_ELIMIT returned to the caller (which sends a bare 500).
 */
#include "directory/dir_http.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "directory/dir_addr.h"
#include "directory/dir_pages.h"
#include "directory/dir_query.h"
#include "lib/ipcount.h"
#include "lib/log.h"

#define DIR_HTTP_RATE_KEY 32
#define DIR_HTTP_RATE_PROBE 8
#define DIR_HTTP_HOUR 3600
#define DIR_HTTP_DAY 86400
#define DIR_HTTP_COOKIE_RAW 16
#define DIR_HTTP_COOKIE_TEXT 22 /* base64url of 16 bytes, unpadded */
#define DIR_HTTP_CSRF_MAX 96
#define DIR_HTTP_REMOVE_MAX 8 /* removal links sent for one SMTP address */
#define DIR_HTTP_TEXT_MAX 8192
#define DIR_HTTP_URL_MAX 512
#define DIR_HTTP_CSRF_SKEW 300 /* seconds a token may be from the future (clock steps) */

#define DIR_CT_HTML "text/html; charset=utf-8"
#define DIR_CT_XML "text/xml; charset=utf-8"
#define DIR_CT_JSON "application/json"
#define DIR_CT_CSS "text/css; charset=utf-8"

struct dir_rate_slot {
    uint8_t key[DIR_HTTP_RATE_KEY];
    int64_t start;
    uint32_t count;
};

struct dir_rate {
    struct dir_rate_slot *slot;
    int64_t window;
};

/* What the handlers of all threads share; freed with the last handler. */
struct dir_http_shared {
    pthread_mutex_t mu; /* guards ip_rate and rm_rate */
    struct dir_rate ip_rate;
    struct dir_rate rm_rate;
    atomic_uint_fast64_t gen; /* bumped after every write through any handler */
    atomic_uint refs;
};

struct dir_http {
    struct dir_http_params p;
    struct dir_store *st;
    struct dir_http_sender snd;
    buf_t *body; /* the response being built */
    buf_t *text; /* confirmation texts */
    struct dir_http_shared *sh;
    uint8_t admin_hash[SHA256_DIGEST_LENGTH];
    bool admin_enabled;
    int64_t version;
    int64_t version_at; /* when version was read; INT64_MIN = stale */
    uint_fast64_t gen;  /* sh->gen when version was read */
};

enum dir_http_fmt { DIR_FMT_HTML = 0, DIR_FMT_XML, DIR_FMT_JSON };

typedef int (*dir_http_fn)(struct dir_http *h, const struct dir_http_req *rq,
                           struct dir_http_resp *rs);

struct dir_http_route {
    const char *path;
    bool prefix;      /* path matches as a prefix */
    unsigned methods; /* bit per enum dir_http_method */
    const char *allow;
    enum dir_http_fmt fmt;
    dir_http_fn fn;
};

/* ---- responses ---- */

static const char *dir_http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 503:
        return "Service Unavailable";
    default:
        return status >= 500 ? "Internal Server Error" : "Error";
    }
}

static void dir_http_status(struct dir_http_resp *rs, int status, const char *ctype)
{
    rs->status = status;
    rs->reason = dir_http_reason(status);
    rs->content_type = ctype;
}

static int dir_http_page_error(struct dir_http *h, struct dir_http_resp *rs, int status,
                               const char *title, const char *detail)
{
    buf_reset(h->body);
    dir_http_status(rs, status, DIR_CT_HTML);
    rs->cacheable = false;
    rs->etag[0] = '\0';
    return dir_page_error(h->body, status, title, detail);
}

/* dir_json_str - append s as a JSON string (RFC 8259 7), with <, >, & also escaped. */
static int dir_json_str(buf_t *b, const char *s)
{
    int rc = buf_append(b, "\"", 1);
    size_t start = 0, i = 0;
    for (; rc == 0 && s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' && c != 0x7f)
            continue;
        rc = buf_append(b, s + start, i - start);
        if (rc == 0)
            rc = c == '"'    ? buf_append(b, "\\\"", 2)
                 : c == '\\' ? buf_append(b, "\\\\", 2)
                             : buf_printf(b, "\\u%04x", c);
        start = i + 1;
    }
    if (rc == 0)
        rc = buf_append(b, s + start, i - start);
    if (rc == 0)
        rc = buf_append(b, "\"", 1);
    return rc;
}

/* dir_xml_text - append s as XML character data (XML 1.0 2.4); C0 controls are dropped. */
static int dir_xml_text(buf_t *b, const char *s)
{
    int rc = 0;
    size_t start = 0, i = 0;
    for (; rc == 0 && s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *ent = NULL;
        if (c == '&')
            ent = "&amp;";
        else if (c == '<')
            ent = "&lt;";
        else if (c == '>')
            ent = "&gt;";
        else if (c == '"')
            ent = "&quot;";
        else if (c == '\'')
            ent = "&apos;";
        else if (c >= 0x20 || c == '\t')
            continue;
        else
            ent = "";
        rc = buf_append(b, s + start, i - start);
        if (rc == 0)
            rc = buf_append_str(b, ent);
        start = i + 1;
    }
    if (rc == 0)
        rc = buf_append(b, s + start, i - start);
    return rc;
}

static int dir_http_json_error(struct dir_http *h, struct dir_http_resp *rs, int status,
                               const char *msg)
{
    buf_reset(h->body);
    dir_http_status(rs, status, DIR_CT_JSON);
    rs->cacheable = false;
    rs->etag[0] = '\0';
    int rc = buf_append_str(h->body, "{\"error\":");
    if (rc == 0)
        rc = dir_json_str(h->body, msg);
    if (rc == 0)
        rc = buf_append_str(h->body, "}\n");
    return rc;
}

static int dir_http_xml_error(struct dir_http *h, struct dir_http_resp *rs, int status,
                              const char *msg)
{
    buf_reset(h->body);
    dir_http_status(rs, status, DIR_CT_XML);
    rs->cacheable = false;
    rs->etag[0] = '\0';
    int rc = buf_append_str(h->body, "<xml><error>");
    if (rc == 0)
        rc = dir_xml_text(h->body, msg);
    if (rc == 0)
        rc = buf_append_str(h->body, "</error></xml>");
    return rc;
}

static int dir_http_fmt_error(struct dir_http *h, struct dir_http_resp *rs, enum dir_http_fmt f,
                              int status, const char *title, const char *msg)
{
    if (f == DIR_FMT_JSON)
        return dir_http_json_error(h, rs, status, msg);
    if (f == DIR_FMT_XML)
        return dir_http_xml_error(h, rs, status, msg);
    return dir_http_page_error(h, rs, status, title, msg);
}

/* ---- small helpers ---- */

static void dir_b64url(const uint8_t *in, size_t len, char *out, size_t outsz)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6 && o + 1 < outsz) {
            bits -= 6;
            out[o++] = tab[(acc >> bits) & 63u];
        }
    }
    if (bits > 0 && o + 1 < outsz)
        out[o++] = tab[(acc << (6 - bits)) & 63u];
    out[o] = '\0';
}

static bool dir_b64url_text(const char *s, size_t minlen, size_t maxlen)
{
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
        if (n >= maxlen)
            return false;
    }
    return n >= minlen;
}

static bool dir_http_is_form(const char *ctype)
{
    static const char want[] = "application/x-www-form-urlencoded";
    return ctype != NULL && strncasecmp(ctype, want, sizeof want - 1) == 0 &&
           (ctype[sizeof want - 1] == '\0' || ctype[sizeof want - 1] == ';');
}

static bool dir_http_is_json(const char *ctype)
{
    static const char want[] = "application/json";
    return ctype != NULL && strncasecmp(ctype, want, sizeof want - 1) == 0 &&
           (ctype[sizeof want - 1] == '\0' || ctype[sizeof want - 1] == ';');
}

/* dir_http_version_stale - after a write: every thread re-reads the version on its next lookup. */
static void dir_http_version_stale(struct dir_http *h)
{
    h->version_at = INT64_MIN;
    atomic_fetch_add(&h->sh->gen, 1);
}

/* ---- rate limits ---- */

static int dir_rate_init(struct dir_rate *r, int64_t window)
{
    r->slot = calloc(DIR_HTTP_RATE_SLOTS, sizeof *r->slot);
    r->window = window;
    return r->slot ? 0 : PST_ENOMEM;
}

/* dir_rate_hit - count one event for key; PST_ELIMIT when max events happened in the window. */
static int dir_rate_hit(struct dir_rate *r, const uint8_t key[DIR_HTTP_RATE_KEY], int64_t now,
                        int64_t max)
{
    size_t base = ipcount_hash(key, DIR_HTTP_RATE_KEY, DIR_HTTP_RATE_SLOTS);
    struct dir_rate_slot *victim = NULL;
    bool victim_free = false;
    for (size_t i = 0; i < DIR_HTTP_RATE_PROBE; i++) {
        struct dir_rate_slot *s = &r->slot[(base + i) % DIR_HTTP_RATE_SLOTS];
        bool expired = s->count == 0 || now - s->start >= r->window || now < s->start;
        if (s->count > 0 && memcmp(s->key, key, DIR_HTTP_RATE_KEY) == 0) {
            if (expired) {
                s->start = now;
                s->count = 0;
            }
            if ((int64_t)s->count >= max)
                return PST_ELIMIT;
            s->count++;
            return 0;
        }
        /* reuse a free or expired slot, else forget the oldest window of the probe range */
        if (expired && !victim_free) {
            victim = s;
            victim_free = true;
        } else if (!victim_free && (victim == NULL || s->start < victim->start)) {
            victim = s;
        }
    }
    memcpy(victim->key, key, DIR_HTTP_RATE_KEY);
    victim->start = now;
    victim->count = 1;
    return 0;
}

/* dir_rate_hit_shared - dir_rate_hit on a table of h's shared state, under its mutex. */
static int dir_rate_hit_shared(struct dir_http *h, struct dir_rate *r,
                               const uint8_t key[DIR_HTTP_RATE_KEY], int64_t now, int64_t max)
{
    pthread_mutex_lock(&h->sh->mu);
    int rc = dir_rate_hit(r, key, now, max);
    pthread_mutex_unlock(&h->sh->mu);
    return rc;
}

static void dir_rate_key_ip(const struct sockaddr *sa, uint8_t key[DIR_HTTP_RATE_KEY])
{
    memset(key, 0, DIR_HTTP_RATE_KEY);
    if (sa != NULL)
        ipcount_key(sa, key);
}

/* ---- CSRF ---- */

static bool dir_http_cookie_get(const char *hdr, char out[DIR_HTTP_COOKIE_TEXT + 1])
{
    static const char name[] = DIR_HTTP_COOKIE "=";
    for (const char *p = hdr; p && *p;) {
        while (*p == ' ' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == sizeof name - 1 + DIR_HTTP_COOKIE_TEXT &&
            strncmp(p, name, sizeof name - 1) == 0) {
            memcpy(out, p + sizeof name - 1, DIR_HTTP_COOKIE_TEXT);
            out[DIR_HTTP_COOKIE_TEXT] = '\0';
            if (dir_b64url_text(out, DIR_HTTP_COOKIE_TEXT, DIR_HTTP_COOKIE_TEXT))
                return true;
        }
        p = end;
    }
    return false;
}

static int dir_http_csrf_mac(const struct dir_http *h, const char *cookie, long long ts, char *out,
                             size_t outsz)
{
    char msg[64];
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    int n = snprintf(msg, sizeof msg, "%s.%lld", cookie, ts);
    if (n < 0 || (size_t)n >= sizeof msg)
        return PST_ELIMIT;
    if (HMAC(EVP_sha256(), h->p.secret, DIR_HTTP_SECRET_LEN, (const unsigned char *)msg, (size_t)n,
             mac, &maclen) == NULL)
        return PST_EIO;
    dir_b64url(mac, maclen, out, outsz);
    return 0;
}

int dir_http_csrf_token(const struct dir_http *h, const char *cookie, int64_t now, char *out,
                        size_t outsz)
{
    char mac[64];
    int rc = dir_http_csrf_mac(h, cookie, (long long)now, mac, sizeof mac);
    if (rc != 0)
        return rc;
    int n = snprintf(out, outsz, "%lld.%s", (long long)now, mac);
    return n < 0 || (size_t)n >= outsz ? PST_ELIMIT : 0;
}

static bool dir_http_csrf_ok(const struct dir_http *h, const struct dir_http_req *rq,
                             const char *token)
{
    char cookie[DIR_HTTP_COOKIE_TEXT + 1];
    if (token == NULL || !dir_http_cookie_get(rq->cookie, cookie))
        return false;
    char *dot = NULL;
    long long ts = strtoll(token, &dot, 10);
    if (dot == token || *dot != '.' || ts <= 0 || rq->now - ts > DIR_HTTP_CSRF_TTL ||
        ts - rq->now > DIR_HTTP_CSRF_SKEW)
        return false;
    char mac[64];
    if (dir_http_csrf_mac(h, cookie, ts, mac, sizeof mac) != 0)
        return false;
    size_t len = strlen(mac);
    return strlen(dot + 1) == len && CRYPTO_memcmp(mac, dot + 1, len) == 0;
}

/* dir_http_csrf_issue - the token for this client, setting a new cookie if it has none. */
static int dir_http_csrf_issue(struct dir_http *h, const struct dir_http_req *rq,
                               struct dir_http_resp *rs, char *token, size_t tokensz)
{
    char cookie[DIR_HTTP_COOKIE_TEXT + 1];
    if (!dir_http_cookie_get(rq->cookie, cookie)) {
        uint8_t raw[DIR_HTTP_COOKIE_RAW];
        if (RAND_bytes(raw, sizeof raw) != 1)
            return PST_EIO;
        dir_b64url(raw, sizeof raw, cookie, sizeof cookie);
        int n = snprintf(rs->set_cookie, sizeof rs->set_cookie,
                         "%s=%s; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=%d",
                         DIR_HTTP_COOKIE, cookie, DIR_HTTP_CSRF_TTL);
        if (n < 0 || (size_t)n >= sizeof rs->set_cookie)
            return PST_ELIMIT;
    }
    return dir_http_csrf_token(h, cookie, rq->now, token, tokensz);
}

/* ---- the form ---- */

static int dir_http_get_css(struct dir_http *h, const struct dir_http_req *rq,
                            struct dir_http_resp *rs)
{
    dir_http_status(rs, 200, DIR_CT_CSS);
    rs->cacheable = true;
    return buf_append(h->body, DIR_PAGE_CSS, DIR_PAGE_CSS_LEN);
}

/* dir_http_form - the form page, with an error and the previous input when error != NULL. */
static int dir_http_form(struct dir_http *h, const struct dir_http_req *rq,
                         struct dir_http_resp *rs, int status, const char *error,
                         const struct dir_query *prev)
{
    char csrf[DIR_HTTP_CSRF_MAX];
    int rc = dir_http_csrf_issue(h, rq, rs, csrf, sizeof csrf);
    if (rc != 0)
        return rc;
    struct dir_page_form f = {
        .csrf = csrf,
        .smtp = prev ? dir_query_get(prev, "smtp") : NULL,
        .alt = prev ? dir_query_get(prev, "alt") : NULL,
        .type = prev ? dir_query_get(prev, "type") : "",
        .error = error,
        .link_ttl = h->p.link_ttl,
    };
    buf_reset(h->body);
    dir_http_status(rs, status, DIR_CT_HTML);
    return dir_page_form(h->body, &f);
}

static int dir_http_get_root(struct dir_http *h, const struct dir_http_req *rq,
                             struct dir_http_resp *rs)
{
    return dir_http_form(h, rq, rs, 200, NULL, NULL);
}

/*
 * dir_http_form_post - the common start of every form post: content type, body syntax,
 * CSRF. Returns 1 when the request may go on (q filled), 0 when rs holds the error answer,
 * or PST_E* for a failure to build it.
 */
static int dir_http_form_post(struct dir_http *h, const struct dir_http_req *rq,
                              struct dir_http_resp *rs, struct dir_query *q)
{
    const char *why = NULL;
    int rc;
    if (!dir_http_is_form(rq->content_type))
        rc = dir_http_page_error(h, rs, 415, "Unsupported form encoding",
                                 "The form must be sent as application/x-www-form-urlencoded.");
    else if (dir_query_parse(q, rq->body, rq->body_len, &why) != 0)
        rc = dir_http_page_error(h, rs, rq->body_len > DIR_QUERY_MAX_LEN ? 413 : 400,
                                 "Malformed form", why);
    else if (!dir_http_csrf_ok(h, rq, dir_query_get(q, "csrf")))
        rc = dir_http_page_error(h, rs, 403, "Form expired or not from this site",
                                 "The form's security token is missing, expired or does not "
                                 "match this browser. Reload the form and submit it again "
                                 "(cookies must be enabled for this site).");
    else
        return 1;
    return rc < 0 ? rc : 0;
}

static int dir_http_rate_ip(struct dir_http *h, const struct dir_http_req *rq,
                            struct dir_http_resp *rs)
{
    uint8_t key[DIR_HTTP_RATE_KEY];
    dir_rate_key_ip(rq->peer, key);
    if (dir_rate_hit_shared(h, &h->sh->ip_rate, key, rq->now, h->p.max_per_ip) == 0)
        return 1;
    log_info("directory rate_limited kind=ip");
    int rc = dir_http_page_error(h, rs, 429, "Too many requests",
                                 "This network address has sent too many requests to the "
                                 "directory in the last hour. Please try again later.");
    return rc < 0 ? rc : 0;
}

static void dir_http_duration(int64_t secs, char *out, size_t outsz)
{
    int n = secs >= 2 * 3600 ? snprintf(out, outsz, "%lld hours", (long long)(secs / 3600))
                             : snprintf(out, outsz, "%lld minutes", (long long)(secs / 60));
    if (n < 0 || (size_t)n >= outsz)
        snprintf(out, outsz, "a limited time");
}

static int dir_http_text(enum dir_purpose p, const struct dir_record *r, const char *link,
                         int64_t ttl, const char **subject, buf_t *body)
{
    char dur[48];
    dir_http_duration(ttl, dur, sizeof dur);
    if (p == DIR_CONFIRM_REMOVE) {
        *subject = "Confirm the removal of your directory listing";
        return buf_printf(body,
                          "Someone (hopefully you) asked the public address directory to remove "
                          "the listing of\r\n\r\n  %s -> %s (%s)\r\n\r\n"
                          "To remove it, open this link and press the button on the page:\r\n"
                          "\r\n  %s\r\n\r\nThe link works once and expires after %s. If you did "
                          "not ask for this,\r\nignore this message: the listing stays.\r\n",
                          r->smtp, r->alt, r->type, link, dur);
    }
    *subject = "Confirm your listing in the public address directory";
    return buf_printf(body,
                      "Someone (hopefully you) asked the public address directory to list\r\n"
                      "\r\n  %s -> %s (%s)\r\n\r\nThis message went to the %s; a second "
                      "link went to the %s.\r\n"
                      "To confirm, open this link and press the button on the page:\r\n\r\n"
                      "  %s\r\n\r\nThe listing is published only after both links are "
                      "confirmed. The link\r\nworks once and expires after %s. If you did not "
                      "ask for this, ignore this\r\nmessage: nothing will be published.\r\n",
                      r->smtp, r->alt, r->type,
                      p == DIR_CONFIRM_SMTP ? "email address" : "alternative address",
                      p == DIR_CONFIRM_SMTP ? "alternative address" : "email address", link, dur);
}

/* dir_http_send - compose the message of purpose p about r with token, and send it. */
static int dir_http_send(struct dir_http *h, enum dir_purpose p, const struct dir_record *r,
                         const char *token)
{
    char link[DIR_HTTP_URL_MAX];
    const char *subject = NULL;
    int n = snprintf(link, sizeof link, "%s/confirm?t=%s", h->p.base_url, token);
    if (n < 0 || (size_t)n >= sizeof link)
        return PST_ELIMIT;
    buf_reset(h->text);
    int rc = dir_http_text(p, r, link, h->p.link_ttl, &subject, h->text);
    if (rc != 0)
        return rc;
    if (p == DIR_CONFIRM_ALT)
        return h->snd.bm ? h->snd.bm(h->snd.arg, r->alt, subject, h->text->data) : PST_EINVAL;
    return h->snd.mail ? h->snd.mail(h->snd.arg, r->smtp, subject, h->text->data) : PST_EINVAL;
}

static int dir_http_register_fail(struct dir_http *h, const struct dir_http_req *rq,
                                  struct dir_http_resp *rs, const struct dir_query *q,
                                  const char *why)
{
    return dir_http_form(h, rq, rs, 400, why, q);
}

/* dir_http_register_check - validate the form into r; 1 to go on, 0 answered, <0 error. */
static int dir_http_register_check(struct dir_http *h, const struct dir_http_req *rq,
                                   struct dir_http_resp *rs, const struct dir_query *q,
                                   struct dir_record *r)
{
    const char *smtp = dir_query_get(q, "smtp"), *alt = dir_query_get(q, "alt");
    const char *type = dir_query_get(q, "type"), *why = NULL;
    int rc;
    if (smtp == NULL || alt == NULL || smtp[0] == '\0' || alt[0] == '\0')
        rc = dir_http_register_fail(h, rq, rs, q, "Please enter both addresses.");
    else if (dir_addr_smtp_normalize(smtp, strlen(smtp), h->p.case_sensitive, r->smtp,
                                     sizeof r->smtp, &why) != 0)
        rc = dir_http_register_fail(h, rq, rs, q, why ? why : "The email address is not valid.");
    else if ((type == NULL || type[0] == '\0') &&
             (type = dir_addr_guess_type(alt, strlen(alt))) == NULL)
        rc = dir_http_register_fail(h, rq, rs, q,
                                    "The alternative address is neither a Bitmessage address "
                                    "(BM-...) nor a direct mail address (dmail://...).");
    else if (!dir_addr_type_valid(type))
        rc = dir_http_register_fail(h, rq, rs, q, "Unknown type of alternative address.");
    else if (dir_addr_alt_normalize(type, alt, strlen(alt), r->alt, sizeof r->alt, &why) != 0)
        rc = dir_http_register_fail(h, rq, rs, q,
                                    why ? why : "The alternative address is not valid.");
    else if (strcmp(type, "bitmessage") != 0)
        rc = dir_http_register_fail(h, rq, rs, q,
                                    "Direct mail addresses cannot be confirmed through this form "
                                    "yet; please ask the directory's operator.");
    else {
        snprintf(r->type, sizeof r->type, "%s", type);
        snprintf(r->source, sizeof r->source, "form");
        return 1;
    }
    return rc < 0 ? rc : 0;
}

/* dir_http_register_limit - the per-address limits; 1 to go on, 0 answered, <0 error. */
static int dir_http_register_limit(struct dir_http *h, const struct dir_http_req *rq,
                                   struct dir_http_resp *rs, const struct dir_record *r)
{
    uint64_t n_smtp = 0, n_alt = 0;
    int64_t since = rq->now - DIR_HTTP_DAY;
    int rc = dir_store_count_recent(h->st, r->smtp, NULL, since, &n_smtp);
    if (rc == 0)
        rc = dir_store_count_recent(h->st, NULL, r->alt, since, &n_alt);
    if (rc != 0)
        rc = dir_http_page_error(h, rs, 503, "Directory unavailable",
                                 "The directory's database could not be reached. Please try "
                                 "again later.");
    else if ((int64_t)n_smtp >= h->p.max_per_address || (int64_t)n_alt >= h->p.max_per_address)
        rc = dir_http_page_error(h, rs, 429, "Too many requests for this address",
                                 "This address already received the maximum number of "
                                 "confirmation requests for today. Please try again tomorrow.");
    else
        return 1;
    if (rc == 0 && rs->status == 429)
        log_info("directory rate_limited kind=address");
    return rc < 0 ? rc : 0;
}

static int dir_http_post_register(struct dir_http *h, const struct dir_http_req *rq,
                                  struct dir_http_resp *rs)
{
    struct dir_query q;
    struct dir_record r;
    memset(&r, 0, sizeof r);
    int rc = dir_http_form_post(h, rq, rs, &q);
    if (rc <= 0)
        return rc;
    if ((rc = dir_http_rate_ip(h, rq, rs)) <= 0 ||
        (rc = dir_http_register_check(h, rq, rs, &q, &r)) <= 0 ||
        (rc = dir_http_register_limit(h, rq, rs, &r)) <= 0)
        return rc;
    int64_t id = 0, expires = rq->now + h->p.link_ttl;
    char tok_smtp[DIR_TOKEN_TEXT_MAX], tok_alt[DIR_TOKEN_TEXT_MAX];
    r.created = rq->now;
    rc = dir_store_add(h->st, &r, DIR_PENDING, rq->now, &id);
    if (rc == PST_EEXIST)
        return dir_http_page_error(h, rs, 409, "Already listed or waiting for confirmation",
                                   "This pair of addresses is already listed, or a request "
                                   "for it is waiting for its confirmations. Check both inboxes "
                                   "for the links we sent.");
    dir_http_version_stale(h);
    if (rc == 0)
        rc = dir_store_token_new(h->st, id, DIR_CONFIRM_SMTP, expires, tok_smtp, sizeof tok_smtp);
    if (rc == 0)
        rc = dir_store_token_new(h->st, id, DIR_CONFIRM_ALT, expires, tok_alt, sizeof tok_alt);
    if (rc == 0 && (rc = dir_http_send(h, DIR_CONFIRM_SMTP, &r, tok_smtp)) == 0)
        rc = dir_http_send(h, DIR_CONFIRM_ALT, &r, tok_alt);
    if (rc != 0) {
        log_error("directory register_failed id=%lld err=%s", (long long)id, err_str(rc));
        if (id > 0 && dir_store_remove(h->st, id, rq->now) != 0)
            log_error("directory register_undo_failed id=%lld", (long long)id);
        return dir_http_page_error(h, rs, 503, "Confirmations could not be sent",
                                   "The directory could not send the confirmation messages "
                                   "right now. Nothing was listed; please try again later.");
    }
    log_info("directory registered id=%lld type=%s", (long long)id, r.type);
    buf_reset(h->body);
    dir_http_status(rs, 200, DIR_CT_HTML);
    return dir_page_registered(h->body, r.smtp, r.type, r.alt, h->p.link_ttl);
}

static int dir_http_get_confirm(struct dir_http *h, const struct dir_http_req *rq,
                                struct dir_http_resp *rs)
{
    struct dir_query q;
    const char *why = NULL;
    if (dir_query_parse(&q, rq->query, rq->query_len, &why) != 0)
        return dir_http_page_error(h, rs, 400, "Malformed link", why);
    const char *t = dir_query_get(&q, "t");
    if (t == NULL || !dir_b64url_text(t, 1, DIR_TOKEN_TEXT_MAX - 1))
        return dir_http_page_error(h, rs, 400, "Malformed link",
                                   "This confirmation link is incomplete or damaged. Copy the "
                                   "whole link from the message into the address bar.");
    char csrf[DIR_HTTP_CSRF_MAX];
    int rc = dir_http_csrf_issue(h, rq, rs, csrf, sizeof csrf);
    if (rc != 0)
        return rc;
    buf_reset(h->body);
    dir_http_status(rs, 200, DIR_CT_HTML);
    return dir_page_confirm_ask(h->body, t, csrf);
}

static int dir_http_confirm_gone(struct dir_http *h, struct dir_http_resp *rs)
{
    return dir_http_page_error(h, rs, 410, "Link expired or already used",
                               "This link has expired or was already used. Each link works "
                               "once. If your listing is not live yet, submit the form again.");
}

static int dir_http_post_confirm(struct dir_http *h, const struct dir_http_req *rq,
                                 struct dir_http_resp *rs)
{
    struct dir_query q;
    int rc = dir_http_form_post(h, rq, rs, &q);
    if (rc <= 0)
        return rc;
    const char *t = dir_query_get(&q, "t");
    int64_t id = 0;
    enum dir_purpose purpose = DIR_CONFIRM_SMTP;
    if (t == NULL || !dir_b64url_text(t, 1, DIR_TOKEN_TEXT_MAX - 1))
        return dir_http_page_error(h, rs, 400, "Malformed link",
                                   "The confirmation token is missing or damaged.");
    rc = dir_store_token_use(h->st, t, rq->now, &id, &purpose);
    if (rc == PST_ENOENT || rc == PST_EINVAL)
        return dir_http_page_error(h, rs, 404, "Unknown link",
                                   "This confirmation link is not valid. Copy the whole link "
                                   "from the message; if it still fails, submit the form again.");
    if (rc == PST_EPERM)
        return dir_http_confirm_gone(h, rs);
    if (rc != 0)
        return dir_http_page_error(h, rs, 503, "Directory unavailable",
                                   "The directory's database could not be reached.");
    bool live = false;
    if (purpose == DIR_CONFIRM_REMOVE)
        rc = dir_store_remove(h->st, id, rq->now);
    else
        rc = dir_store_confirm(h->st, id, purpose, rq->now, &live);
    dir_http_version_stale(h);
    struct dir_record r;
    if (rc == PST_EPERM || rc == PST_ENOENT)
        return dir_http_confirm_gone(h, rs);
    if (rc != 0 || (rc = dir_store_get(h->st, id, &r)) != 0)
        return dir_http_page_error(h, rs, 503, "Directory unavailable",
                                   "The directory's database could not be reached.");
    log_info("directory confirmed id=%lld side=%s live=%s", (long long)id,
             dir_purpose_name(purpose), live ? "yes" : "no");
    buf_reset(h->body);
    dir_http_status(rs, 200, DIR_CT_HTML);
    if (purpose == DIR_CONFIRM_REMOVE)
        return dir_page_removed(h->body, &r);
    return dir_page_confirmed(h->body, &r, purpose, live);
}

struct dir_http_collect {
    size_t n;
    struct dir_record r[DIR_HTTP_REMOVE_MAX];
};

static int dir_http_collect_cb(const struct dir_record *r, void *arg)
{
    struct dir_http_collect *c = arg;
    if (c->n < DIR_HTTP_REMOVE_MAX)
        c->r[c->n++] = *r;
    return 0;
}

static int dir_http_post_remove(struct dir_http *h, const struct dir_http_req *rq,
                                struct dir_http_resp *rs)
{
    struct dir_query q;
    int rc = dir_http_form_post(h, rq, rs, &q);
    if (rc <= 0 || (rc = dir_http_rate_ip(h, rq, rs)) <= 0)
        return rc;
    const char *smtp = dir_query_get(&q, "smtp"), *why = NULL;
    char key[DIR_SMTP_MAX + 1];
    if (smtp == NULL || dir_addr_smtp_normalize(smtp, strlen(smtp), h->p.case_sensitive, key,
                                                sizeof key, &why) != 0)
        return dir_http_form(h, rq, rs, 400, why ? why : "Please enter a valid email address.",
                             NULL);
    struct dir_http_collect c;
    c.n = 0;
    if (dir_store_lookup(h->st, key, dir_http_collect_cb, &c) != 0)
        return dir_http_page_error(h, rs, 503, "Directory unavailable",
                                   "The directory's database could not be reached.");
    if (c.n == 0)
        return dir_http_page_error(h, rs, 404, "No listing for this address",
                                   "The directory has no live listing for this email address.");
    uint8_t rkey[DIR_HTTP_RATE_KEY];
    SHA256((const unsigned char *)key, strlen(key), rkey);
    if (dir_rate_hit_shared(h, &h->sh->rm_rate, rkey, rq->now, h->p.max_per_address) != 0)
        return dir_http_page_error(h, rs, 429, "Too many requests for this address",
                                   "This address already received the maximum number of "
                                   "removal links for today. Please try again tomorrow.");
    for (size_t i = 0; i < c.n && rc >= 0; i++) {
        char tok[DIR_TOKEN_TEXT_MAX];
        rc = dir_store_token_new(h->st, c.r[i].id, DIR_CONFIRM_REMOVE, rq->now + h->p.link_ttl, tok,
                                 sizeof tok);
        if (rc == 0)
            rc = dir_http_send(h, DIR_CONFIRM_REMOVE, &c.r[i], tok);
    }
    if (rc < 0)
        return dir_http_page_error(h, rs, 503, "Removal link could not be sent",
                                   "The directory could not send the removal link right now. "
                                   "Please try again later.");
    log_info("directory removal_requested records=%zu", c.n);
    buf_reset(h->body);
    dir_http_status(rs, 200, DIR_CT_HTML);
    return dir_page_removal_sent(h->body, key, h->p.link_ttl);
}

/* ---- query API ---- */

static bool dir_http_wants_json(const char *accept)
{
    return accept != NULL && strstr(accept, "application/json") != NULL;
}

static int dir_http_version(struct dir_http *h, int64_t now, int64_t *out)
{
    uint_fast64_t gen = atomic_load(&h->sh->gen);
    if (h->version_at == INT64_MIN || now - h->version_at >= DIR_HTTP_VERSION_REFRESH ||
        now < h->version_at || gen != h->gen) {
        int rc = dir_store_version(h->st, &h->version);
        if (rc != 0)
            return rc;
        h->version_at = now;
        h->gen = gen;
    }
    *out = h->version;
    return 0;
}

/* dir_http_etag - "<version>-<fnv1a(fmt key)>" into rs->etag; true when If-None-Match has it. */
static bool dir_http_etag(struct dir_http_resp *rs, const struct dir_http_req *rq, int64_t version,
                          char fmt, const char *key)
{
    uint64_t hash = 0xcbf29ce484222325ull;
    hash = (hash ^ (unsigned char)fmt) * 0x100000001b3ull;
    for (const char *p = key; *p; p++)
        hash = (hash ^ (unsigned char)*p) * 0x100000001b3ull;
    snprintf(rs->etag, sizeof rs->etag, "\"%llx-%016llx\"", (unsigned long long)version,
             (unsigned long long)hash);
    rs->cacheable = true;
    return rq->if_none_match != NULL && strstr(rq->if_none_match, rs->etag) != NULL;
}

static int dir_http_not_modified(struct dir_http *h, struct dir_http_resp *rs, const char *ct)
{
    buf_reset(h->body);
    dir_http_status(rs, 304, ct);
    return 0;
}

struct dir_http_out {
    buf_t *b;
    size_t n;
    const char *key;
};

static int dir_http_xml_cb(const struct dir_record *r, void *arg)
{
    struct dir_http_out *o = arg;
    bool bm = strcmp(r->type, "bitmessage") == 0;
    int rc = buf_append_str(o->b, "<record><smtp_address>");
    if (rc == 0)
        rc = dir_xml_text(o->b, r->smtp);
    if (rc == 0)
        rc = buf_append_str(o->b, bm ? "</smtp_address><bitmessage_address>"
                                     : "</smtp_address><dmail_address>");
    if (rc == 0)
        rc = dir_xml_text(o->b, r->alt);
    if (rc == 0)
        rc = buf_append_str(o->b,
                            bm ? "</bitmessage_address></record>" : "</dmail_address></record>");
    o->n++;
    return rc;
}

static int dir_http_json_cb(const struct dir_record *r, void *arg)
{
    struct dir_http_out *o = arg;
    int rc = buf_append_str(o->b, o->n ? ",{\"type\":" : "{\"type\":");
    if (rc == 0)
        rc = dir_json_str(o->b, r->type);
    if (rc == 0)
        rc = buf_append_str(o->b, ",\"address\":");
    if (rc == 0)
        rc = dir_json_str(o->b, r->alt);
    if (rc == 0)
        rc = buf_append(o->b, "}", 1);
    o->n++;
    return rc;
}

static int dir_http_reverse_cb(const struct dir_record *r, void *arg)
{
    struct dir_http_out *o = arg;
    int rc = o->n ? buf_append(o->b, ",", 1) : 0;
    if (rc == 0)
        rc = dir_json_str(o->b, r->smtp);
    o->n++;
    return rc;
}

static int dir_http_lookup(struct dir_http *h, const struct dir_http_req *rq,
                           struct dir_http_resp *rs, const char *param, enum dir_http_fmt fmt)
{
    struct dir_query q;
    const char *why = NULL, *addr;
    char key[DIR_SMTP_MAX + 1];
    int64_t version;
    if (dir_query_parse(&q, rq->query, rq->query_len, &why) != 0)
        return dir_http_fmt_error(h, rs, fmt, rq->query_len > DIR_QUERY_MAX_LEN ? 414 : 400,
                                  "Bad query", why);
    if ((addr = dir_query_get(&q, param)) == NULL || addr[0] == '\0')
        return dir_http_fmt_error(h, rs, fmt, 400, "Bad query",
                                  fmt == DIR_FMT_XML ? "parameter smtpaddress is required"
                                                     : "parameter address is required");
    if (dir_addr_smtp_normalize(addr, strlen(addr), h->p.case_sensitive, key, sizeof key, &why) !=
        0)
        return dir_http_fmt_error(h, rs, fmt, 400, "Bad address",
                                  why ? why : "not a valid SMTP address");
    if (dir_http_version(h, rq->now, &version) != 0)
        return dir_http_fmt_error(h, rs, fmt, 503, "Unavailable", "database unavailable");
    const char *ct = fmt == DIR_FMT_JSON ? DIR_CT_JSON : DIR_CT_XML;
    rs->vary_accept = true;
    if (dir_http_etag(rs, rq, version, fmt == DIR_FMT_JSON ? 'j' : 'x', key))
        return dir_http_not_modified(h, rs, ct);
    buf_reset(h->body);
    dir_http_status(rs, 200, ct);
    struct dir_http_out o = {h->body, 0, key};
    int rc;
    if (fmt == DIR_FMT_XML) {
        rc = buf_append_str(h->body, "<xml>");
        if (rc == 0)
            rc = dir_store_lookup(h->st, key, dir_http_xml_cb, &o);
        if (rc == 0)
            rc = buf_append_str(h->body, "</xml>");
    } else {
        rc = buf_append_str(h->body, "{\"address\":");
        if (rc == 0)
            rc = dir_json_str(h->body, key);
        if (rc == 0)
            rc = buf_append_str(h->body, ",\"alternatives\":[");
        if (rc == 0)
            rc = dir_store_lookup(h->st, key, dir_http_json_cb, &o);
        if (rc == 0)
            rc = buf_append_str(h->body, "]}\n");
    }
    if (rc == PST_ELIMIT || rc == PST_ENOMEM)
        return rc;
    if (rc != 0)
        return dir_http_fmt_error(h, rs, fmt, 503, "Unavailable", "database unavailable");
    return 0;
}

static int dir_http_get_doquery(struct dir_http *h, const struct dir_http_req *rq,
                                struct dir_http_resp *rs)
{
    return dir_http_lookup(h, rq, rs, "smtpaddress",
                           dir_http_wants_json(rq->accept) ? DIR_FMT_JSON : DIR_FMT_XML);
}

static int dir_http_get_lookup(struct dir_http *h, const struct dir_http_req *rq,
                               struct dir_http_resp *rs)
{
    return dir_http_lookup(h, rq, rs, "address", DIR_FMT_JSON);
}

static int dir_http_get_reverse(struct dir_http *h, const struct dir_http_req *rq,
                                struct dir_http_resp *rs)
{
    struct dir_query q;
    const char *why = NULL;
    char alt[DIR_ALT_MAX + 1];
    int64_t version;
    if (dir_query_parse(&q, rq->query, rq->query_len, &why) != 0)
        return dir_http_json_error(h, rs, 400, why);
    const char *addr = dir_query_get(&q, "address"), *type = dir_query_get(&q, "type");
    if (addr == NULL || addr[0] == '\0')
        return dir_http_json_error(h, rs, 400, "parameter address is required");
    if (type == NULL || type[0] == '\0')
        type = dir_addr_guess_type(addr, strlen(addr));
    if (type == NULL || !dir_addr_type_valid(type))
        return dir_http_json_error(h, rs, 400, "unknown type of alternative address");
    if (dir_addr_alt_normalize(type, addr, strlen(addr), alt, sizeof alt, &why) != 0)
        return dir_http_json_error(h, rs, 400, why ? why : "not a valid alternative address");
    if (dir_http_version(h, rq->now, &version) != 0)
        return dir_http_json_error(h, rs, 503, "database unavailable");
    if (dir_http_etag(rs, rq, version, type[0] == 'b' ? 'b' : 'd', alt))
        return dir_http_not_modified(h, rs, DIR_CT_JSON);
    buf_reset(h->body);
    dir_http_status(rs, 200, DIR_CT_JSON);
    struct dir_http_out o = {h->body, 0, alt};
    int rc = buf_append_str(h->body, "{\"address\":");
    if (rc == 0)
        rc = dir_json_str(h->body, alt);
    if (rc == 0)
        rc = buf_append_str(h->body, ",\"type\":");
    if (rc == 0)
        rc = dir_json_str(h->body, type);
    if (rc == 0)
        rc = buf_append_str(h->body, ",\"smtp_addresses\":[");
    if (rc == 0)
        rc = dir_store_reverse(h->st, type, alt, dir_http_reverse_cb, &o);
    if (rc == 0)
        rc = buf_append_str(h->body, "]}\n");
    if (rc == PST_ELIMIT || rc == PST_ENOMEM)
        return rc;
    return rc == 0 ? 0 : dir_http_json_error(h, rs, 503, "database unavailable");
}

/* ---- admin API ---- */

static bool dir_http_admin_ok(const struct dir_http *h, const char *auth)
{
    static const char bearer[] = "Bearer ";
    if (!h->admin_enabled || auth == NULL || strncasecmp(auth, bearer, sizeof bearer - 1) != 0)
        return false;
    const char *tok = auth + sizeof bearer - 1;
    uint8_t got[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)tok, strlen(tok), got);
    return CRYPTO_memcmp(got, h->admin_hash, sizeof got) == 0;
}

static int dir_http_admin_record(buf_t *b, const struct dir_record *r)
{
    int rc = buf_printf(b, "{\"id\":%lld,\"smtp\":", (long long)r->id);
    if (rc == 0)
        rc = dir_json_str(b, r->smtp);
    if (rc == 0)
        rc = buf_append_str(b, ",\"type\":");
    if (rc == 0)
        rc = dir_json_str(b, r->type);
    if (rc == 0)
        rc = buf_append_str(b, ",\"alt\":");
    if (rc == 0)
        rc = dir_json_str(b, r->alt);
    if (rc == 0)
        rc = buf_printf(b,
                        ",\"state\":\"%s\",\"created\":%lld,\"smtp_confirmed\":%lld,"
                        "\"alt_confirmed\":%lld,\"live_since\":%lld,\"removed_at\":%lld,"
                        "\"source\":",
                        dir_state_name(r->state), (long long)r->created,
                        (long long)r->smtp_confirmed, (long long)r->alt_confirmed,
                        (long long)r->live_since, (long long)r->removed_at);
    if (rc == 0)
        rc = dir_json_str(b, r->source);
    if (rc == 0)
        rc = buf_append(b, "}", 1);
    return rc;
}

struct dir_http_list {
    buf_t *b;
    size_t n;
    int64_t last;
};

static int dir_http_list_cb(const struct dir_record *r, void *arg)
{
    struct dir_http_list *l = arg;
    int rc = l->n ? buf_append(l->b, ",", 1) : 0;
    if (rc == 0)
        rc = dir_http_admin_record(l->b, r);
    l->n++;
    l->last = r->id;
    return rc;
}

static int dir_http_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end = NULL;
    if (s == NULL || s[0] < '0' || s[0] > '9')
        return PST_EINVAL;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0' || v < min || v > max)
        return PST_EINVAL;
    *out = v;
    return 0;
}

static int dir_http_admin_list(struct dir_http *h, const struct dir_http_req *rq,
                               struct dir_http_resp *rs)
{
    struct dir_query q;
    const char *why = NULL;
    if (dir_query_parse(&q, rq->query, rq->query_len, &why) != 0)
        return dir_http_json_error(h, rs, 400, why);
    const char *s = dir_query_get(&q, "state"), *a = dir_query_get(&q, "after");
    const char *l = dir_query_get(&q, "limit");
    int state = -1;
    int64_t after = 0, limit = 100;
    if (s && strcmp(s, "all") != 0) {
        if (strcmp(s, "pending") == 0)
            state = DIR_PENDING;
        else if (strcmp(s, "live") == 0)
            state = DIR_LIVE;
        else if (strcmp(s, "removed") == 0)
            state = DIR_REMOVED;
        else
            return dir_http_json_error(h, rs, 400, "state must be pending, live, removed or all");
    }
    if ((a && dir_http_parse_i64(a, 0, INT64_MAX, &after) != 0) ||
        (l && dir_http_parse_i64(l, 1, DIR_HTTP_ADMIN_PAGE_MAX, &limit) != 0))
        return dir_http_json_error(h, rs, 400, "after and limit must be numbers in range");
    buf_reset(h->body);
    dir_http_status(rs, 200, DIR_CT_JSON);
    struct dir_http_list lst = {h->body, 0, 0};
    int rc = buf_append_str(h->body, "{\"records\":[");
    if (rc == 0)
        rc = dir_store_list(h->st, state, after, (size_t)limit, dir_http_list_cb, &lst);
    if (rc == PST_ELIMIT || rc == PST_ENOMEM)
        return rc;
    if (rc != 0)
        return dir_http_json_error(h, rs, 503, "database unavailable");
    if ((int64_t)lst.n == limit)
        return buf_printf(h->body, "],\"next_after\":%lld}\n", (long long)lst.last);
    return buf_append_str(h->body, "],\"next_after\":null}\n");
}

static const char *dir_http_json_field(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int dir_http_admin_add(struct dir_http *h, const struct dir_http_req *rq,
                              struct dir_http_resp *rs)
{
    if (!dir_http_is_json(rq->content_type))
        return dir_http_json_error(h, rs, 415, "send application/json");
    json_error_t jerr;
    json_t *o = json_loadb(rq->body ? rq->body : "", rq->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL || !json_is_object(o)) {
        json_decref(o);
        return dir_http_json_error(h, rs, 400, "body is not a JSON object");
    }
    struct dir_record r;
    memset(&r, 0, sizeof r);
    const char *smtp = dir_http_json_field(o, "smtp"), *alt = dir_http_json_field(o, "alt");
    const char *type = dir_http_json_field(o, "type"), *why = NULL;
    int rc;
    if (smtp == NULL || alt == NULL)
        rc = dir_http_json_error(h, rs, 400, "smtp and alt are required strings");
    else if (dir_addr_smtp_normalize(smtp, strlen(smtp), h->p.case_sensitive, r.smtp, sizeof r.smtp,
                                     &why) != 0)
        rc = dir_http_json_error(h, rs, 400, why ? why : "bad smtp address");
    else if ((type == NULL && (type = dir_addr_guess_type(alt, strlen(alt))) == NULL) ||
             !dir_addr_type_valid(type))
        rc = dir_http_json_error(h, rs, 400, "unknown type");
    else if (dir_addr_alt_normalize(type, alt, strlen(alt), r.alt, sizeof r.alt, &why) != 0)
        rc = dir_http_json_error(h, rs, 400, why ? why : "bad alternative address");
    else {
        int64_t id = 0;
        snprintf(r.type, sizeof r.type, "%s", type);
        snprintf(r.source, sizeof r.source, "admin");
        r.created = rq->now;
        rc = dir_store_add(h->st, &r, DIR_LIVE, rq->now, &id);
        dir_http_version_stale(h);
        if (rc == PST_EEXIST)
            rc = dir_http_json_error(h, rs, 409, "already listed");
        else if (rc != 0 || (rc = dir_store_get(h->st, id, &r)) != 0)
            rc = dir_http_json_error(h, rs, 503, "database unavailable");
        else {
            log_info("directory admin_added id=%lld", (long long)id);
            buf_reset(h->body);
            dir_http_status(rs, 201, DIR_CT_JSON);
            rc = dir_http_admin_record(h->body, &r);
            if (rc == 0)
                rc = buf_append(h->body, "\n", 1);
        }
    }
    json_decref(o);
    return rc;
}

static int dir_http_admin_delete(struct dir_http *h, const struct dir_http_req *rq,
                                 struct dir_http_resp *rs, const char *idtext)
{
    int64_t id;
    struct dir_record r;
    if (dir_http_parse_i64(idtext, 1, INT64_MAX, &id) != 0)
        return dir_http_json_error(h, rs, 400, "record id must be a positive number");
    int rc = dir_store_remove(h->st, id, rq->now);
    dir_http_version_stale(h);
    if (rc == PST_ENOENT)
        return dir_http_json_error(h, rs, 404, "no such record");
    if (rc == PST_EPERM)
        return dir_http_json_error(h, rs, 409, "already removed");
    if (rc != 0 || dir_store_get(h->st, id, &r) != 0)
        return dir_http_json_error(h, rs, 503, "database unavailable");
    log_info("directory admin_removed id=%lld", (long long)id);
    buf_reset(h->body);
    dir_http_status(rs, 200, DIR_CT_JSON);
    rc = dir_http_admin_record(h->body, &r);
    return rc == 0 ? buf_append(h->body, "\n", 1) : rc;
}

static int dir_http_admin(struct dir_http *h, const struct dir_http_req *rq,
                          struct dir_http_resp *rs)
{
    static const char base[] = "/api/v1/admin/records";
    if (!dir_http_admin_ok(h, rq->authorization)) {
        int rc = dir_http_json_error(h, rs, 401, "a valid admin bearer token is required");
        rs->auth_challenge = true;
        return rc;
    }
    const char *rest = rq->path + sizeof base - 1;
    if (strncmp(rq->path, base, sizeof base - 1) != 0 || (rest[0] != '\0' && rest[0] != '/'))
        return dir_http_json_error(h, rs, 404, "no such admin resource");
    if (rest[0] == '/') {
        if (rq->method != DIR_M_DELETE) {
            rs->allow = "DELETE";
            return dir_http_json_error(h, rs, 405, "use DELETE on a record");
        }
        return dir_http_admin_delete(h, rq, rs, rest + 1);
    }
    if (rq->method == DIR_M_GET || rq->method == DIR_M_HEAD)
        return dir_http_admin_list(h, rq, rs);
    if (rq->method == DIR_M_POST)
        return dir_http_admin_add(h, rq, rs);
    rs->allow = "GET, POST";
    return dir_http_json_error(h, rs, 405, "use GET or POST");
}

/* ---- routing ---- */

#define DIR_BIT(m) (1u << (m))
#define DIR_GETS (DIR_BIT(DIR_M_GET) | DIR_BIT(DIR_M_HEAD))
#define DIR_ALLM (DIR_GETS | DIR_BIT(DIR_M_POST) | DIR_BIT(DIR_M_DELETE))

static const struct dir_http_route dir_http_routes[] = {
    {"/", false, DIR_GETS, "GET, HEAD", DIR_FMT_HTML, dir_http_get_root},
    {"/style.css", false, DIR_GETS, "GET, HEAD", DIR_FMT_HTML, dir_http_get_css},
    {"/register", false, DIR_BIT(DIR_M_POST), "POST", DIR_FMT_HTML, dir_http_post_register},
    {"/confirm", false, DIR_GETS, NULL, DIR_FMT_HTML, dir_http_get_confirm},
    {"/confirm", false, DIR_BIT(DIR_M_POST), "GET, HEAD, POST", DIR_FMT_HTML,
     dir_http_post_confirm},
    {"/remove", false, DIR_BIT(DIR_M_POST), "POST", DIR_FMT_HTML, dir_http_post_remove},
    {"/doquery", false, DIR_GETS, "GET, HEAD", DIR_FMT_XML, dir_http_get_doquery},
    {"/api/v1/lookup", false, DIR_GETS, "GET, HEAD", DIR_FMT_JSON, dir_http_get_lookup},
    {"/api/v1/reverse", false, DIR_GETS, "GET, HEAD", DIR_FMT_JSON, dir_http_get_reverse},
    {"/api/v1/admin/", true, DIR_ALLM, "GET, POST, DELETE", DIR_FMT_JSON, dir_http_admin},
};

int dir_http_handle(struct dir_http *h, const struct dir_http_req *rq, struct dir_http_resp *rs)
{
    memset(rs, 0, sizeof *rs);
    rs->body = h->body;
    buf_reset(h->body);
    const struct dir_http_route *seen = NULL;
    const char *path = rq->path ? rq->path : "";
    enum dir_http_fmt fmt = strncmp(path, "/api/", 5) == 0 ? DIR_FMT_JSON : DIR_FMT_HTML;
    for (size_t i = 0; i < PST_ARRAY_LEN(dir_http_routes); i++) {
        const struct dir_http_route *r = &dir_http_routes[i];
        bool match =
            r->prefix ? strncmp(path, r->path, strlen(r->path)) == 0 : strcmp(path, r->path) == 0;
        if (!match)
            continue;
        if (r->methods & DIR_BIT(rq->method))
            return r->fn(h, rq, rs);
        seen = r;
    }
    if (seen) {
        int rc = dir_http_fmt_error(h, rs, seen->fmt, 405, "Method not allowed",
                                    "This address does not accept that kind of request.");
        rs->allow = seen->allow ? seen->allow : "GET, HEAD, POST";
        return rc;
    }
    return dir_http_fmt_error(h, rs, fmt, 404, "Page not found",
                              "There is no page at this address.");
}

int dir_http_purge(struct dir_http *h, int64_t now)
{
    uint64_t n = 0;
    int rc = dir_store_purge(h->st, now - h->p.link_ttl, now, &n);
    if (rc == 0 && n > 0) {
        dir_http_version_stale(h);
        log_info("directory purged records=%llu", (unsigned long long)n);
    }
    return rc;
}

static void dir_http_shared_unref(struct dir_http_shared **sh)
{
    if (*sh == NULL)
        return;
    if (atomic_fetch_sub(&(*sh)->refs, 1) == 1) {
        pthread_mutex_destroy(&(*sh)->mu);
        free((*sh)->ip_rate.slot);
        free((*sh)->rm_rate.slot);
        free(*sh);
    }
    *sh = NULL;
}

static int dir_http_shared_new(struct dir_http_shared **out)
{
    struct dir_http_shared *sh = calloc(1, sizeof *sh);
    if (sh == NULL)
        return PST_ENOMEM;
    atomic_init(&sh->gen, 0);
    atomic_init(&sh->refs, 1);
    if (pthread_mutex_init(&sh->mu, NULL) != 0) {
        free(sh);
        return PST_ENOMEM;
    }
    *out = sh;
    if (dir_rate_init(&sh->ip_rate, DIR_HTTP_HOUR) != 0 ||
        dir_rate_init(&sh->rm_rate, DIR_HTTP_DAY) != 0) {
        dir_http_shared_unref(out);
        return PST_ENOMEM;
    }
    return 0;
}

/* dir_http_alloc - a handler over st with p's settings and sh (a reference is taken). */
static int dir_http_alloc(const struct dir_http_params *p, struct dir_store *st,
                          const struct dir_http_sender *snd, struct dir_http_shared *sh,
                          struct dir_http **out)
{
    struct dir_http *h = calloc(1, sizeof *h);
    if (h == NULL)
        return PST_ENOMEM;
    h->p = *p;
    h->st = st;
    h->snd = *snd;
    h->version_at = INT64_MIN;
    h->sh = sh;
    atomic_fetch_add(&sh->refs, 1);
    h->body = buf_new(DIR_HTTP_RESP_MAX);
    h->text = buf_new(DIR_HTTP_TEXT_MAX);
    if (h->body == NULL || h->text == NULL) {
        dir_http_free(&h);
        return PST_ENOMEM;
    }
    *out = h;
    return 0;
}

int dir_http_new(const struct dir_http_params *p, struct dir_store *st,
                 const struct dir_http_sender *snd, struct dir_http **out)
{
    struct dir_http_shared *sh = NULL;
    struct dir_http_params q = *p;
    q.admin_token = NULL; /* only the hash is kept */
    int rc = dir_http_shared_new(&sh);
    if (rc == 0)
        rc = dir_http_alloc(&q, st, snd, sh, out);
    dir_http_shared_unref(&sh); /* the handler holds its own reference */
    OPENSSL_cleanse(q.secret, sizeof q.secret);
    if (rc == 0 && p->admin_token && p->admin_token[0]) {
        (*out)->admin_enabled = true;
        SHA256((const unsigned char *)p->admin_token, strlen(p->admin_token), (*out)->admin_hash);
    }
    return rc;
}

int dir_http_new_peer(const struct dir_http *parent, struct dir_store *st,
                      const struct dir_http_sender *snd, struct dir_http **out)
{
    int rc = dir_http_alloc(&parent->p, st, snd, parent->sh, out);
    if (rc == 0) {
        (*out)->admin_enabled = parent->admin_enabled;
        memcpy((*out)->admin_hash, parent->admin_hash, sizeof parent->admin_hash);
    }
    return rc;
}

void dir_http_free(struct dir_http **h)
{
    if (h == NULL || *h == NULL)
        return;
    buf_free(&(*h)->body);
    buf_free(&(*h)->text);
    dir_http_shared_unref(&(*h)->sh);
    OPENSSL_cleanse((*h)->p.secret, sizeof(*h)->p.secret);
    OPENSSL_cleanse((*h)->admin_hash, sizeof(*h)->admin_hash);
    free(*h);
    *h = NULL;
}
