/*
 * directoryd.c - the directory's HTTPS server: evhttp on the listening
 * socket the supervisor passes, each connection a bufferevent_openssl
 * (evhttp_set_bevcb), requests handed to dir_http_handle().
 *
 * Limits (named in dir_http.h / directoryd.h): request-target length
 * (414), header block size and body size (evhttp_set_max_headers_size /
 * _max_body_size: evhttp answers 413 itself), request/idle timeout, open
 * connections (counted through an SSL ex_data free callback; beyond the
 * limit requests get 503 and the connection is closed), allowed methods.
 *
 * Every response carries: Content-Security-Policy: default-src 'self';
 * form-action 'self'; frame-ancestors 'none'; base-uri 'none',
 * X-Content-Type-Options: nosniff, Referrer-Policy: no-referrer,
 * Strict-Transport-Security (RFC 6797), X-Frame-Options: DENY, and
 * Cache-Control (public, max-age=60 for lookups and the style sheet;
 * no-store otherwise).
 *
 * Secrets: the admin bearer token ([directory] admin_token_file, hex, made
 * on first start, mode 0600) and the CSRF key (<var>/directory-csrf.key,
 * made on first start, so several instances on one var dir and restarts
 * share it). Neither is ever logged.
 *
 * Failure policy: start-up failures are returned (logged); per-request
 * failures become error responses; nothing aborts on network input.
 */
#include "directory/directoryd.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "directory/dir_confirm.h"
#include "directory/dir_http.h"
#include "directory/dir_store.h"
#include "lib/log.h"

#define DIRECTORYD_PATH_MAX 4096
#define DIRECTORYD_TOKEN_BYTES 32
#define DIRECTORYD_HSTS "max-age=31536000"
#define DIRECTORYD_CSP                                                                             \
    "default-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

struct directoryd {
    const struct cfg *cfg;
    struct event_base *base;
    struct evhttp *http;
    SSL_CTX *tls;
    struct dir_store *st;
    struct dir_confirm *confirm;
    struct dir_http *h;
    struct event *sig[2];
    struct event *purge;
    size_t conns;
    char base_url[DIR_CONFIRM_URL_MAX];
};

static int directoryd_ex_idx = -1;

/* ---- secrets ---- */

static int directoryd_read_all(int fd, char *buf, size_t cap, size_t *len)
{
    size_t n = 0;
    while (n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return PST_EIO;
        if (r == 0)
            break;
        n += (size_t)r;
    }
    *len = n;
    return 0;
}

static void directoryd_hex(const uint8_t *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

static int directoryd_secret_create(const char *path, size_t len, int hex, void *out, size_t outsz)
{
    uint8_t raw[64];
    char text[2 * sizeof raw + 2];
    if (len > sizeof raw || RAND_bytes(raw, (int)len) != 1)
        return PST_EIO;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return errno == EEXIST ? PST_EEXIST : PST_EIO;
    directoryd_hex(raw, len, text);
    size_t wlen = hex ? 2 * len + 1 : len;
    if (hex)
        text[2 * len] = '\n';
    ssize_t w = write(fd, hex ? (const void *)text : (const void *)raw, wlen);
    int rc = (w == (ssize_t)wlen && fsync(fd) == 0) ? 0 : PST_EIO;
    close(fd);
    if (rc != 0) {
        unlink(path);
    } else if (hex) {
        text[2 * len] = '\0';
        memcpy(out, text, 2 * len + 1);
    } else {
        memcpy(out, raw, len);
    }
    OPENSSL_cleanse(raw, sizeof raw);
    OPENSSL_cleanse(text, sizeof text);
    (void)outsz;
    return rc;
}

int directoryd_secret_file(const char *path, size_t len, int hex, void *out, size_t outsz)
{
    if (len == 0 || len > 64 || outsz < (hex ? 2 * len + 1 : len))
        return PST_EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT) {
        int rc = directoryd_secret_create(path, len, hex, out, outsz);
        if (rc != PST_EEXIST)
            return rc;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    }
    if (fd < 0)
        return PST_EIO;
    char buf[256];
    size_t n = 0;
    int rc = directoryd_read_all(fd, buf, sizeof buf - 1, &n);
    close(fd);
    if (rc != 0)
        return rc;
    if (!hex) {
        if (n != len)
            return PST_EINVAL;
        memcpy(out, buf, len);
    } else {
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
            n--;
        buf[n] = '\0';
        if (n < 16 || n + 1 > outsz || strpbrk(buf, " \t\r\n") != NULL)
            return PST_EINVAL; /* too short to be a token, or several lines */
        memcpy(out, buf, n + 1);
    }
    OPENSSL_cleanse(buf, sizeof buf);
    return 0;
}

/* ---- connections ---- */

static void directoryd_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                               void *argp)
{
    struct directoryd *d = ptr;
    if (d != NULL && d->conns > 0)
        d->conns--;
}

static struct bufferevent *directoryd_bevcb(struct event_base *base, void *arg)
{
    struct directoryd *d = arg;
    SSL *ssl = SSL_new(d->tls);
    if (ssl == NULL)
        return NULL;
    if (SSL_set_ex_data(ssl, directoryd_ex_idx, d) == 1)
        d->conns++;
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL)
        SSL_free(ssl);
    return bev;
}

/* ---- requests ---- */

static enum dir_http_method directoryd_method(enum evhttp_cmd_type c)
{
    switch (c) {
    case EVHTTP_REQ_GET:
        return DIR_M_GET;
    case EVHTTP_REQ_HEAD:
        return DIR_M_HEAD;
    case EVHTTP_REQ_POST:
        return DIR_M_POST;
    case EVHTTP_REQ_DELETE:
        return DIR_M_DELETE;
    default:
        return DIR_M_OTHER;
    }
}

static void directoryd_security_headers(struct evkeyvalq *out)
{
    evhttp_add_header(out, "Content-Security-Policy", DIRECTORYD_CSP);
    evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(out, "Referrer-Policy", "no-referrer");
    evhttp_add_header(out, "Strict-Transport-Security", DIRECTORYD_HSTS);
    evhttp_add_header(out, "X-Frame-Options", "DENY");
}

static void directoryd_plain(struct evhttp_request *req, int status, const char *reason,
                             const char *text)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    directoryd_security_headers(out);
    evhttp_add_header(out, "Content-Type", "text/plain; charset=utf-8");
    evhttp_add_header(out, "Cache-Control", "no-store");
    evhttp_add_header(out, "Connection", "close");
    evbuffer_add(evhttp_request_get_output_buffer(req), text, strlen(text));
    evhttp_send_reply(req, status, reason, NULL);
}

static void directoryd_reply(struct evhttp_request *req, const struct dir_http_resp *rs)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    directoryd_security_headers(out);
    if (rs->content_type)
        evhttp_add_header(out, "Content-Type", rs->content_type);
    evhttp_add_header(out, "Cache-Control", rs->cacheable ? "public, max-age=60" : "no-store");
    if (rs->etag[0])
        evhttp_add_header(out, "ETag", rs->etag);
    if (rs->vary_accept)
        evhttp_add_header(out, "Vary", "Accept");
    if (rs->set_cookie[0])
        evhttp_add_header(out, "Set-Cookie", rs->set_cookie);
    if (rs->allow)
        evhttp_add_header(out, "Allow", rs->allow);
    if (rs->auth_challenge)
        evhttp_add_header(out, "WWW-Authenticate", "Bearer realm=\"directory admin\"");
    if (rs->status != 304 && rs->body && rs->body->len)
        evbuffer_add(evhttp_request_get_output_buffer(req), rs->body->data, rs->body->len);
    evhttp_send_reply(req, rs->status, rs->reason, NULL);
}

static void directoryd_request(struct evhttp_request *req, void *arg)
{
    struct directoryd *d = arg;
    const char *uri = evhttp_request_get_uri(req);
    size_t ulen = uri ? strlen(uri) : 0;
    if (d->conns > DIRECTORYD_MAX_CONNECTIONS) {
        directoryd_plain(req, 503, "Service Unavailable", "too many connections\n");
        return;
    }
    if (ulen == 0 || ulen > DIR_HTTP_URI_MAX || uri[0] != '/') {
        directoryd_plain(req, ulen > DIR_HTTP_URI_MAX ? 414 : 400,
                         ulen > DIR_HTTP_URI_MAX ? "URI Too Long" : "Bad Request",
                         "bad request target\n");
        return;
    }
    char path[DIR_HTTP_URI_MAX + 1];
    const char *q = memchr(uri, '?', ulen);
    size_t plen = q ? (size_t)(q - uri) : ulen;
    memcpy(path, uri, plen);
    path[plen] = '\0';
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    struct evbuffer *body = evhttp_request_get_input_buffer(req);
    size_t blen = evbuffer_get_length(body);
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    struct timeval tv;
    event_base_gettimeofday_cached(d->base, &tv);
    struct dir_http_req rq = {
        .method = directoryd_method(evhttp_request_get_command(req)),
        .path = path,
        .query = q ? q + 1 : NULL,
        .query_len = q ? ulen - plen - 1 : 0,
        .body = blen ? (const char *)evbuffer_pullup(body, -1) : NULL,
        .body_len = blen,
        .content_type = evhttp_find_header(in, "Content-Type"),
        .cookie = evhttp_find_header(in, "Cookie"),
        .accept = evhttp_find_header(in, "Accept"),
        .if_none_match = evhttp_find_header(in, "If-None-Match"),
        .authorization = evhttp_find_header(in, "Authorization"),
        .peer = conn ? evhttp_connection_get_addr(conn) : NULL,
        .now = (int64_t)tv.tv_sec,
    };
    struct dir_http_resp rs;
    int rc = dir_http_handle(d->h, &rq, &rs);
    if (rc != 0) {
        log_error("directoryd response_failed err=%s", err_str(rc));
        directoryd_plain(req, 500, "Internal Server Error", "internal error\n");
        return;
    }
    directoryd_reply(req, &rs);
}

/* ---- sending confirmations ---- */

static int directoryd_send_mail(void *arg, const char *to, const char *subject, const char *body)
{
    return dir_confirm_mail(arg, to, subject, body);
}

static int directoryd_send_bm(void *arg, const char *to, const char *subject, const char *body)
{
    return dir_confirm_bm(arg, to, subject, body);
}

/* ---- events ---- */

static void directoryd_on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct directoryd *d = arg;
    log_info("directoryd stopping signal=%d", (int)sig);
    event_base_loopbreak(d->base);
}

static void directoryd_on_purge(evutil_socket_t fd, short what, void *arg)
{
    struct directoryd *d = arg;
    if (dir_http_purge(d->h, (int64_t)time(NULL)) != 0)
        log_warn("directoryd purge_failed");
}

/* ---- start and stop ---- */

static int directoryd_open_store(struct directoryd *d)
{
    const struct cfg *cfg = d->cfg;
    if (cfg->dir_database && strcmp(cfg->dir_database, "postgresql") == 0)
        return dir_store_open_pg(cfg->dir_pg_conninfo, &d->st);
    return dir_store_open_sqlite(cfg->db_path, &d->st);
}

static int directoryd_setup_http(struct directoryd *d)
{
    char token[2 * DIRECTORYD_TOKEN_BYTES + 1] = "";
    char path[DIRECTORYD_PATH_MAX];
    struct dir_http_params p = {
        .base_url = d->base_url,
        .link_ttl = d->cfg->dir_link_ttl,
        .max_per_ip = d->cfg->dir_max_per_ip,
        .max_per_address = d->cfg->dir_max_per_address,
        .case_sensitive = d->cfg->dir_case_sensitive != 0,
        .admin_token = token,
    };
    struct dir_http_sender snd = {directoryd_send_mail, directoryd_send_bm, d->confirm};
    int n = snprintf(path, sizeof path, "%s/%s", d->cfg->var_dir, DIRECTORYD_SECRET_FILE);
    int rc = n < 0 || (size_t)n >= sizeof path ? PST_ELIMIT : 0;
    if (rc == 0 &&
        (rc = directoryd_secret_file(path, DIR_HTTP_SECRET_LEN, 0, p.secret, sizeof p.secret)) != 0)
        log_error("directoryd csrf_key_failed path=%s err=%s", path, err_str(rc));
    if (rc == 0 && d->cfg->dir_admin_token_file && d->cfg->dir_admin_token_file[0] &&
        (rc = directoryd_secret_file(d->cfg->dir_admin_token_file, DIRECTORYD_TOKEN_BYTES, 1, token,
                                     sizeof token)) != 0)
        log_error("directoryd admin_token_failed path=%s err=%s", d->cfg->dir_admin_token_file,
                  err_str(rc));
    if (rc == 0)
        rc = dir_http_new(&p, d->st, &snd, &d->h);
    OPENSSL_cleanse(token, sizeof token);
    OPENSSL_cleanse(p.secret, sizeof p.secret);
    return rc;
}

static int directoryd_start(struct directoryd *d, int listen_fd)
{
    int rc;
    if ((rc = dir_confirm_base_url(d->cfg, d->base_url, sizeof d->base_url)) != 0 ||
        (rc = dir_confirm_new(d->cfg, &d->confirm)) != 0) {
        log_error("directoryd bad_config err=%s", err_str(rc));
        return rc;
    }
    if ((rc = directoryd_open_store(d)) != 0) {
        log_error("directoryd store_open_failed backend=%s err=%s", d->cfg->dir_database,
                  err_str(rc));
        return rc;
    }
    if ((rc = directoryd_setup_http(d)) != 0)
        return rc;
    if (directoryd_ex_idx < 0)
        directoryd_ex_idx =
            SSL_get_ex_new_index(0, (void *)"directoryd", NULL, NULL, directoryd_ex_free);
    d->base = event_base_new();
    d->http = d->base ? evhttp_new(d->base) : NULL;
    if (d->http == NULL || directoryd_ex_idx < 0)
        return PST_ENOMEM;
    evhttp_set_bevcb(d->http, directoryd_bevcb, d);
    evhttp_set_gencb(d->http, directoryd_request, d);
    evhttp_set_max_headers_size(d->http, DIR_HTTP_HEADERS_MAX);
    evhttp_set_max_body_size(d->http, DIR_HTTP_BODY_MAX);
    evhttp_set_timeout(d->http, DIRECTORYD_TIMEOUT);
    evhttp_set_allowed_methods(d->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_DELETE);
    evhttp_set_default_content_type(d->http, "text/plain; charset=utf-8");
    /* accepted sockets inherit TCP_NODELAY (Linux): evhttp writes headers and body apart, and
     * Nagle + delayed ACK would add 40 ms to keep-alive requests */
    int one = 1;
    if (setsockopt(listen_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        log_warn("directoryd nodelay_failed errno=%d", errno);
    if (evutil_make_socket_nonblocking(listen_fd) < 0 || evhttp_accept_socket(d->http, listen_fd))
        return PST_EIO;
    d->sig[0] = evsignal_new(d->base, SIGTERM, directoryd_on_signal, d);
    d->sig[1] = evsignal_new(d->base, SIGINT, directoryd_on_signal, d);
    d->purge = event_new(d->base, -1, EV_PERSIST, directoryd_on_purge, d);
    struct timeval every = {DIRECTORYD_PURGE_INTERVAL, 0};
    if (!d->sig[0] || !d->sig[1] || !d->purge || evsignal_add(d->sig[0], NULL) ||
        evsignal_add(d->sig[1], NULL) || event_add(d->purge, &every))
        return PST_ENOMEM;
    return 0;
}

static void directoryd_stop(struct directoryd *d)
{
    for (size_t i = 0; i < PST_ARRAY_LEN(d->sig); i++)
        if (d->sig[i])
            event_free(d->sig[i]);
    if (d->purge)
        event_free(d->purge);
    if (d->http)
        evhttp_free(d->http);
    dir_http_free(&d->h);
    dir_confirm_free(&d->confirm);
    dir_store_close(&d->st);
    if (d->base)
        event_base_free(d->base);
}

int directoryd_run(const struct cfg *cfg, int listen_fd, SSL_CTX *tls)
{
    struct directoryd d;
    memset(&d, 0, sizeof d);
    d.cfg = cfg;
    d.tls = tls;
    if (tls == NULL || listen_fd < 0)
        return PST_EINVAL;
    signal(SIGPIPE, SIG_IGN);
    int rc = directoryd_start(&d, listen_fd);
    if (rc == 0) {
        if (dir_http_purge(d.h, (int64_t)time(NULL)) != 0)
            log_warn("directoryd purge_failed");
        log_info("directoryd ready backend=%s base_url=%s", dir_store_backend(d.st), d.base_url);
        event_base_dispatch(d.base);
    } else {
        log_error("directoryd start_failed err=%s", err_str(rc));
    }
    directoryd_stop(&d);
    return rc;
}
