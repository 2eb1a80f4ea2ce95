/*
 * directoryd.c - the directory's HTTPS server: evhttp on the listening
 * socket the supervisor passes, each connection a bufferevent_openssl
 * (evhttp_set_bevcb), requests handed to dir_http_handle().
 *
 * Threads: one event loop per CPU the process may run on (at most
 * DIRECTORYD_THREADS_MAX), no setting. Each loop has its own evhttp, listener
 * on the shared listening socket, directory store connection (SQLite in WAL
 * mode reads concurrently; PostgreSQL gets one connection per loop),
 * confirmation sender and request handler; the handlers share the rate-limit
 * tables and write generation (dir_http_new_peer). A loop accepts one
 * connection per turn, so a burst of connects spreads over the loops
 * instead of landing on whichever wakes first. Loop 0 runs on the calling
 * thread and also handles SIGTERM/SIGINT (stopping every loop) and the
 * periodic purge.
 *
 * Per response: the head and a small body are joined into one buffer
 * before bufferevent_openssl writes it, so they leave as one TLS record
 * and one write(2) instead of two.
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
#include <event2/listener.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
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

#define DIRECTORYD_COALESCE_MAX 16384 /* responses up to this size go out as one TLS record */

struct directoryd;

/* One event loop: everything a request touches, private to its thread. */
struct directoryd_worker {
    struct directoryd *d;
    size_t idx;
    struct event_base *base;
    struct evhttp *http;
    struct evconnlistener *lev; /* on the shared listening socket; freed by evhttp_free */
    struct event *rearm;        /* re-enables lev on the next turn of the loop */
    struct dir_store *st;
    struct dir_confirm *confirm;
    struct dir_http *h;
    pthread_t thread;
    bool running; /* thread started (idx > 0) */
};

struct directoryd {
    const struct cfg *cfg;
    SSL_CTX *tls;
    struct event *sig[2]; /* on worker 0 */
    struct event *purge;  /* on worker 0 */
    atomic_size_t conns;  /* open connections, all loops */
    size_t nworkers;
    struct directoryd_worker w[DIRECTORYD_THREADS_MAX];
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
    if (d != NULL)
        atomic_fetch_sub(&d->conns, 1);
}

/* directoryd_on_rearm - accept again: one connection per turn of each loop (see the top). */
static void directoryd_on_rearm(evutil_socket_t fd, short what, void *arg)
{
    struct directoryd_worker *w = arg;
    if (w->lev != NULL && evconnlistener_enable(w->lev) != 0)
        log_warn("directoryd listener_enable_failed loop=%zu", w->idx);
}

static struct bufferevent *directoryd_bevcb(struct event_base *base, void *arg)
{
    struct directoryd_worker *w = arg;
    struct directoryd *d = w->d;
    if (d->nworkers > 1 && w->lev != NULL && evconnlistener_disable(w->lev) == 0)
        event_active(w->rearm, EV_TIMEOUT, 0);
    SSL *ssl = SSL_new(d->tls);
    if (ssl == NULL)
        return NULL;
    /* keep the record buffers of busy keep-alive connections instead of freeing and
     * reallocating them around every request (the context sets RELEASE_BUFFERS) */
    SSL_clear_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_set_ex_data(ssl, directoryd_ex_idx, d) == 1)
        atomic_fetch_add(&d->conns, 1);
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

/*
 * directoryd_send - evhttp_send_reply, then join the head and body evhttp put in the
 * connection's output buffer (two chains) into one, so that bufferevent_openssl, which
 * writes one TLS record per chain on the next EV_WRITE, sends one record and one segment.
 */
static void directoryd_send(struct evhttp_request *req, int status, const char *reason)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
    evhttp_send_reply(req, status, reason, NULL);
    if (bev == NULL)
        return;
    struct evbuffer *out = bufferevent_get_output(bev);
    if (evbuffer_get_length(out) <= DIRECTORYD_COALESCE_MAX)
        evbuffer_pullup(out, -1);
}

static void directoryd_plain(struct evhttp_request *req, int status, const char *reason,
                             const char *text)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    directoryd_security_headers(out);
    evhttp_add_header(out, "Content-Type", "text/plain; charset=utf-8");
    evhttp_add_header(out, "Cache-Control", "no-store");
    evhttp_add_header(out, "Connection", "close");
    if (evhttp_request_get_command(req) != EVHTTP_REQ_HEAD)
        evbuffer_add(evhttp_request_get_output_buffer(req), text, strlen(text));
    directoryd_send(req, status, reason);
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
    size_t blen = rs->status != 304 && rs->body ? rs->body->len : 0;
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        /* evhttp would send a body given for HEAD: give its length only (RFC 9110 9.3.2) */
        char len[24];
        int n = snprintf(len, sizeof len, "%zu", blen);
        if (n > 0 && (size_t)n < sizeof len && rs->status != 304)
            evhttp_add_header(out, "Content-Length", len);
    } else if (blen) {
        evbuffer_add(evhttp_request_get_output_buffer(req), rs->body->data, blen);
    }
    directoryd_send(req, rs->status, rs->reason);
}

static void directoryd_request(struct evhttp_request *req, void *arg)
{
    struct directoryd_worker *w = arg;
    const char *uri = evhttp_request_get_uri(req);
    size_t ulen = uri ? strlen(uri) : 0;
    if (atomic_load(&w->d->conns) > DIRECTORYD_MAX_CONNECTIONS) {
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
    event_base_gettimeofday_cached(w->base, &tv);
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
    int rc = dir_http_handle(w->h, &rq, &rs);
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
    for (size_t i = 0; i < d->nworkers; i++)
        event_base_loopbreak(d->w[i].base); /* thread-safe: evthread_use_pthreads */
}

static void directoryd_on_purge(evutil_socket_t fd, short what, void *arg)
{
    struct directoryd *d = arg;
    if (dir_http_purge(d->w[0].h, (int64_t)time(NULL)) != 0)
        log_warn("directoryd purge_failed");
}

/* ---- start and stop ---- */

/* directoryd_nworkers - one loop per CPU this process may run on, at most the maximum. */
static size_t directoryd_nworkers(void)
{
    cpu_set_t set;
    long n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = CPU_COUNT(&set);
    if (n <= 0)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 0)
        n = 1;
    return n > DIRECTORYD_THREADS_MAX ? DIRECTORYD_THREADS_MAX : (size_t)n;
}

static int directoryd_open_store(const struct cfg *cfg, struct dir_store **st)
{
    if (cfg->dir_database && strcmp(cfg->dir_database, "postgresql") == 0)
        return dir_store_open_pg(cfg->dir_pg_conninfo, st);
    return dir_store_open_sqlite(cfg->db_path, st);
}

/* directoryd_setup_http - worker 0's handler from the secrets; the others' are its peers. */
static int directoryd_setup_http(struct directoryd *d, struct directoryd_worker *w)
{
    struct dir_http_sender snd = {directoryd_send_mail, directoryd_send_bm, w->confirm};
    if (w->idx > 0)
        return dir_http_new_peer(d->w[0].h, w->st, &snd, &w->h);
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
        rc = dir_http_new(&p, w->st, &snd, &w->h);
    OPENSSL_cleanse(token, sizeof token);
    OPENSSL_cleanse(p.secret, sizeof p.secret);
    return rc;
}

static struct event_base *directoryd_base_new(void)
{
    struct event_config *ec = event_config_new();
    if (ec == NULL)
        return NULL;
    /* one epoll_ctl per fd and turn instead of one per enable/disable: evhttp and
     * bufferevent_openssl switch read and write interest several times per request */
    event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *base = event_base_new_with_config(ec);
    event_config_free(ec);
    return base;
}

static int directoryd_setup_loop(struct directoryd *d, struct directoryd_worker *w, int listen_fd)
{
    w->base = directoryd_base_new();
    w->http = w->base ? evhttp_new(w->base) : NULL;
    w->rearm = w->base ? event_new(w->base, -1, 0, directoryd_on_rearm, w) : NULL;
    if (w->http == NULL || w->rearm == NULL)
        return PST_ENOMEM;
    evhttp_set_bevcb(w->http, directoryd_bevcb, w);
    evhttp_set_gencb(w->http, directoryd_request, w);
    evhttp_set_max_headers_size(w->http, DIR_HTTP_HEADERS_MAX);
    evhttp_set_max_body_size(w->http, DIR_HTTP_BODY_MAX);
    evhttp_set_timeout(w->http, DIRECTORYD_TIMEOUT);
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_DELETE);
    evhttp_set_default_content_type(w->http, "text/plain; charset=utf-8");
    /* the socket is shared by every loop: not closed by the listener (directoryd_run does) */
    w->lev = evconnlistener_new(w->base, NULL, NULL, LEV_OPT_CLOSE_ON_EXEC, 0, listen_fd);
    if (w->lev == NULL)
        return PST_EIO;
    if (evhttp_bind_listener(w->http, w->lev) == NULL) {
        evconnlistener_free(w->lev);
        w->lev = NULL;
        return PST_EIO;
    }
    return 0;
}

static int directoryd_setup_worker(struct directoryd *d, struct directoryd_worker *w, int listen_fd)
{
    int rc;
    if ((rc = dir_confirm_new(d->cfg, &w->confirm)) != 0) {
        log_error("directoryd bad_config err=%s", err_str(rc));
        return rc;
    }
    if ((rc = directoryd_open_store(d->cfg, &w->st)) != 0) {
        log_error("directoryd store_open_failed backend=%s loop=%zu err=%s", d->cfg->dir_database,
                  w->idx, err_str(rc));
        return rc;
    }
    if ((rc = directoryd_setup_http(d, w)) != 0)
        return rc;
    return directoryd_setup_loop(d, w, listen_fd);
}

static int directoryd_start(struct directoryd *d, int listen_fd)
{
    int rc;
    if ((rc = dir_confirm_base_url(d->cfg, d->base_url, sizeof d->base_url)) != 0) {
        log_error("directoryd bad_config err=%s", err_str(rc));
        return rc;
    }
    if (directoryd_ex_idx < 0)
        directoryd_ex_idx =
            SSL_get_ex_new_index(0, (void *)"directoryd", NULL, NULL, directoryd_ex_free);
    if (directoryd_ex_idx < 0 || evthread_use_pthreads() != 0)
        return PST_ENOMEM;
    /* accepted sockets inherit TCP_NODELAY (Linux): evhttp writes headers and body apart, and
     * Nagle + delayed ACK would add 40 ms to keep-alive requests */
    int one = 1;
    if (setsockopt(listen_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        log_warn("directoryd nodelay_failed errno=%d", errno);
    if (evutil_make_socket_nonblocking(listen_fd) < 0)
        return PST_EIO;
    for (size_t i = 0; i < d->nworkers; i++) {
        d->w[i].d = d;
        d->w[i].idx = i;
        if ((rc = directoryd_setup_worker(d, &d->w[i], listen_fd)) != 0)
            return rc;
    }
    struct event_base *base = d->w[0].base;
    d->sig[0] = evsignal_new(base, SIGTERM, directoryd_on_signal, d);
    d->sig[1] = evsignal_new(base, SIGINT, directoryd_on_signal, d);
    d->purge = event_new(base, -1, EV_PERSIST, directoryd_on_purge, d);
    struct timeval every = {DIRECTORYD_PURGE_INTERVAL, 0};
    if (!d->sig[0] || !d->sig[1] || !d->purge || evsignal_add(d->sig[0], NULL) ||
        evsignal_add(d->sig[1], NULL) || event_add(d->purge, &every))
        return PST_ENOMEM;
    return 0;
}

static void *directoryd_thread(void *arg)
{
    struct directoryd_worker *w = arg;
    event_base_dispatch(w->base);
    return NULL;
}

/* directoryd_serve - run every loop until a signal stops them; loop 0 on this thread. */
static int directoryd_serve(struct directoryd *d)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* signals go to this thread (loop 0) */
    int rc = 0;
    for (size_t i = 1; i < d->nworkers && rc == 0; i++) {
        int e = pthread_create(&d->w[i].thread, NULL, directoryd_thread, &d->w[i]);
        if (e != 0) {
            log_error("directoryd thread_failed errno=%d", e);
            rc = PST_ENOMEM;
        } else {
            d->w[i].running = true;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        event_base_dispatch(d->w[0].base);
    for (size_t i = 1; i < d->nworkers; i++) {
        if (!d->w[i].running)
            continue;
        event_base_loopbreak(d->w[i].base);
        pthread_join(d->w[i].thread, NULL);
        d->w[i].running = false;
    }
    return rc;
}

static void directoryd_stop(struct directoryd *d)
{
    for (size_t i = 0; i < PST_ARRAY_LEN(d->sig); i++)
        if (d->sig[i])
            event_free(d->sig[i]);
    if (d->purge)
        event_free(d->purge);
    for (size_t i = 0; i < d->nworkers; i++) {
        struct directoryd_worker *w = &d->w[i];
        if (w->http) /* frees the listener and every connection */
            evhttp_free(w->http);
        else if (w->lev)
            evconnlistener_free(w->lev);
        if (w->rearm)
            event_free(w->rearm);
        dir_http_free(&w->h);
        dir_confirm_free(&w->confirm);
        dir_store_close(&w->st);
        if (w->base)
            event_base_free(w->base);
    }
}

int directoryd_run(const struct cfg *cfg, int listen_fd, SSL_CTX *tls)
{
    struct directoryd *d = calloc(1, sizeof *d);
    if (tls == NULL || listen_fd < 0 || d == NULL) {
        free(d);
        return tls == NULL || listen_fd < 0 ? PST_EINVAL : PST_ENOMEM;
    }
    d->cfg = cfg;
    d->tls = tls;
    d->nworkers = directoryd_nworkers();
    atomic_init(&d->conns, 0);
    signal(SIGPIPE, SIG_IGN);
    int rc = directoryd_start(d, listen_fd);
    if (rc == 0) {
        if (dir_http_purge(d->w[0].h, (int64_t)time(NULL)) != 0)
            log_warn("directoryd purge_failed");
        log_info("directoryd ready backend=%s base_url=%s loops=%zu", dir_store_backend(d->w[0].st),
                 d->base_url, d->nworkers);
        rc = directoryd_serve(d);
    }
    if (rc != 0)
        log_error("directoryd start_failed err=%s", err_str(rc));
    directoryd_stop(d);
    close(listen_fd);
    free(d);
    return rc;
}
