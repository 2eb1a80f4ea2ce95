/*
 * pop3d.c - the POP3 server process: listeners, connection limits,
 * login-failure and LOGIN-DELAY bookkeeping, and the resources sessions
 * share (TLS context, worker pool, user database, mailbox backend).
 *
 * Connection limits: [pop3] max_connections in total and
 * max_connections_per_ip per client address (IPv6 counted per /64); a
 * client over a limit gets "-ERR [SYS/TEMP] ..." at connect and is closed.
 *
 * Login failures: each address's recent failures (within
 * POP3D_FAIL_WINDOW_SEC of the last one) are counted; the session delays
 * its "-ERR [AUTH]" reply by auth_failure_delay doubled per recent failure
 * (capped at POP3D_FAIL_DELAY_MAX_SEC), so guessing from one address slows
 * down across connections, not only within one.
 *
 * LOGIN-DELAY (RFC 2449 6.8): with [pop3] login_delay > 0 the last login
 * time of each user is kept and a login sooner than that after the previous
 * one gets "-ERR [LOGIN-DELAY]".
 *
 * Counts live in small chained hashes; a sweep every POP3D_SWEEP_SEC drops
 * entries no longer needed, so memory is bounded by live connections plus
 * recent failures and logins.
 *
 * Shutdown (SIGTERM/SIGINT): listeners close, open sessions are dropped
 * without UPDATE (nothing deleted), the loop exits.
 *
 * Failure policy: start-up problems (event base, database, listeners)
 * return an error; without a TLS context STLS is not offered and the
 * implicit-TLS listener is off.
 */
#include "pop3/pop3d.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>

#include "lib/ipcount.h"
#include "lib/log.h"
#include "lib/netaddr.h"
#include "lib/userdb.h"
#include "lib/worker.h"
#include "pop3/pop3_proxy.h"
#include "pop3/pop3d_session.h"

#define POP3D_IP_BUCKETS 4096
#define POP3D_LOGIN_BUCKETS 1024
#define POP3D_AUTH_THREADS 2
#define POP3D_ACCEPT_PAUSE_SEC 1
#define POP3D_SWEEP_SEC 60
#define POP3D_FAIL_WINDOW_SEC (15 * 60)

struct pop3d_ipent {
    uint8_t key[IPCOUNT_KEY_LEN]; /* family byte + up to 16 address bytes */
    size_t conns;
    unsigned fails;
    time_t last_fail;
    struct pop3d_ipent *next;
};

struct pop3d_login {
    char user[USERDB_NAME_MAX + 1];
    time_t when;
    struct pop3d_login *next;
};

const char *pop3d_listener_name(enum pop3d_listener k)
{
    static const char *const names[POP3D_LISTEN__COUNT] = {"pop3", "pop3s"};
    return k < POP3D_LISTEN__COUNT ? names[k] : "unknown";
}

/* ---- per-address counts ---- */

static struct pop3d_ipent **pop3d_ip_find(struct pop3d_server *srv,
                                          const uint8_t key[IPCOUNT_KEY_LEN])
{
    struct pop3d_ipent **pp = &srv->ipbuckets[ipcount_hash(key, IPCOUNT_KEY_LEN, POP3D_IP_BUCKETS)];
    while (*pp && memcmp((*pp)->key, key, IPCOUNT_KEY_LEN) != 0)
        pp = &(*pp)->next;
    return pp;
}

static struct pop3d_ipent *pop3d_ip_get(struct pop3d_server *srv, const struct sockaddr *sa)
{
    uint8_t key[IPCOUNT_KEY_LEN];
    ipcount_key(sa, key);
    struct pop3d_ipent **pp = pop3d_ip_find(srv, key);
    if (*pp)
        return *pp;
    struct pop3d_ipent *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    memcpy(e->key, key, IPCOUNT_KEY_LEN);
    *pp = e;
    return e;
}

static int pop3d_ip_stale(const struct pop3d_ipent *e, time_t now)
{
    return e->conns == 0 && (e->fails == 0 || now - e->last_fail > POP3D_FAIL_WINDOW_SEC);
}

int pop3d_ip_acquire(struct pop3d_server *srv, const struct sockaddr *sa)
{
    struct pop3d_ipent *e = pop3d_ip_get(srv, sa);
    if (!e)
        return PST_ENOMEM;
    if (e->conns >= (size_t)srv->cfg->pop3_max_connections_per_ip)
        return PST_ELIMIT;
    e->conns++;
    return 0;
}

void pop3d_ip_release(struct pop3d_server *srv, const struct sockaddr *sa)
{
    uint8_t key[IPCOUNT_KEY_LEN];
    ipcount_key(sa, key);
    struct pop3d_ipent **pp = pop3d_ip_find(srv, key);
    struct pop3d_ipent *e = *pp;
    PST_ASSERT(e && e->conns > 0);
    e->conns--;
    if (pop3d_ip_stale(e, time(NULL))) {
        *pp = e->next;
        free(e);
    }
}

unsigned pop3d_ip_fail(struct pop3d_server *srv, const struct sockaddr *sa)
{
    struct pop3d_ipent *e = pop3d_ip_get(srv, sa);
    if (!e)
        return 1;
    time_t now = time(NULL);
    if (now - e->last_fail > POP3D_FAIL_WINDOW_SEC)
        e->fails = 0;
    if (e->fails < 64)
        e->fails++;
    e->last_fail = now;
    return e->fails;
}

/* ---- LOGIN-DELAY ---- */

static struct pop3d_login **pop3d_login_find(struct pop3d_server *srv, const char *user)
{
    struct pop3d_login **pp = &srv->logins[ipcount_hash(user, strlen(user), POP3D_LOGIN_BUCKETS)];
    while (*pp && strcmp((*pp)->user, user) != 0)
        pp = &(*pp)->next;
    return pp;
}

int pop3d_login_allowed(struct pop3d_server *srv, const char *user)
{
    if (srv->cfg->pop3_login_delay <= 0)
        return 1;
    struct pop3d_login *l = *pop3d_login_find(srv, user);
    return !l || time(NULL) - l->when >= (time_t)srv->cfg->pop3_login_delay;
}

void pop3d_login_note(struct pop3d_server *srv, const char *user)
{
    if (srv->cfg->pop3_login_delay <= 0 || strlen(user) > USERDB_NAME_MAX)
        return;
    struct pop3d_login **pp = pop3d_login_find(srv, user);
    if (!*pp) {
        struct pop3d_login *l = calloc(1, sizeof *l);
        if (!l)
            return; /* the delay is advisory: a missed note only lets the next login in */
        memcpy(l->user, user, strlen(user) + 1);
        *pp = l;
    }
    (*pp)->when = time(NULL);
}

static void pop3d_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct pop3d_server *srv = arg;
    time_t now = time(NULL);
    for (size_t b = 0; b < POP3D_IP_BUCKETS; b++) {
        struct pop3d_ipent **pp = &srv->ipbuckets[b];
        while (*pp) {
            struct pop3d_ipent *e = *pp;
            if (pop3d_ip_stale(e, now)) {
                *pp = e->next;
                free(e);
            } else {
                pp = &e->next;
            }
        }
    }
    for (size_t b = 0; b < POP3D_LOGIN_BUCKETS; b++) {
        struct pop3d_login **pp = &srv->logins[b];
        while (*pp) {
            struct pop3d_login *l = *pp;
            if (now - l->when >= (time_t)srv->cfg->pop3_login_delay) {
                *pp = l->next;
                free(l);
            } else {
                pp = &l->next;
            }
        }
    }
}

/* ---- server set-up ---- */

int pop3d_server_init(struct pop3d_server *srv, const struct cfg *cfg, struct event_base *base,
                      SSL_CTX *tls)
{
    memset(srv, 0, sizeof *srv);
    srv->cfg = cfg;
    srv->base = base;
    srv->tls = tls;
    srv->apop = cfg->pop3_apop; /* secrets: src/pop3/pop3_apop.h */
    srv->ipbuckets = calloc(POP3D_IP_BUCKETS, sizeof *srv->ipbuckets);
    srv->logins = calloc(POP3D_LOGIN_BUCKETS, sizeof *srv->logins);
    if (!srv->ipbuckets || !srv->logins)
        return PST_ENOMEM;
    int rc = userdb_open(cfg->db_path, &srv->users);
    if (rc < 0) {
        log_error("pop3d userdb_open_failed path=%s err=\"%s\"", cfg->db_path, err_str(rc));
        return rc;
    }
    srv->workers = worker_pool_new(base, POP3D_AUTH_THREADS);
    srv->sweep = event_new(base, -1, EV_PERSIST, pop3d_sweep, srv);
    if (!srv->workers || !srv->sweep)
        return PST_ENOMEM;
    /* Backend selection (pop3_proxy.c): a user with upstreams in pop3_upstreams gets the merged
     * view (their local Maildir first, then each upstream); every other user the local Maildir
     * alone. The worker pool also resolves upstream host names. */
    rc = pop3px_backend_init(&srv->backend, cfg, base, srv->workers);
    if (rc < 0)
        return rc;
    struct timeval tv = {POP3D_SWEEP_SEC, 0};
    event_add(srv->sweep, &tv);
    return 0;
}

void pop3d_server_fini(struct pop3d_server *srv)
{
    while (srv->sessions)
        pop3d_session_drop(srv->sessions);
    worker_pool_free(&srv->workers);
    if (srv->sweep)
        event_free(srv->sweep);
    srv->sweep = NULL;
    if (srv->backend.ops)
        srv->backend.ops->free(srv->backend.ctx);
    srv->backend.ops = NULL;
    userdb_close(&srv->users);
    for (size_t b = 0; srv->ipbuckets && b < POP3D_IP_BUCKETS; b++) {
        while (srv->ipbuckets[b]) {
            struct pop3d_ipent *e = srv->ipbuckets[b];
            srv->ipbuckets[b] = e->next;
            free(e);
        }
    }
    for (size_t b = 0; srv->logins && b < POP3D_LOGIN_BUCKETS; b++) {
        while (srv->logins[b]) {
            struct pop3d_login *l = srv->logins[b];
            srv->logins[b] = l->next;
            free(l);
        }
    }
    free(srv->ipbuckets);
    free(srv->logins);
    srv->ipbuckets = NULL;
    srv->logins = NULL;
}

/* ---- accepting ---- */

static void pop3d_refuse(int fd, const char *why)
{
    char msg[256];
    int n = snprintf(msg, sizeof msg, "-ERR [SYS/TEMP] %s, try again later\r\n", why);
    if (n > 0 && (size_t)n < sizeof msg) {
        ssize_t w = send(fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)w; /* best effort: the client is being refused anyway */
    }
    close(fd);
}

void pop3d_accept(struct pop3d_server *srv, int fd, const struct sockaddr *sa, socklen_t salen,
                  enum pop3d_listener kind)
{
    char addr[NETADDR_STRLEN];
    if (srv->nsessions >= (size_t)srv->cfg->pop3_max_connections) {
        log_warn("pop3d refused addr=%s reason=\"too many connections\" limit=%lld",
                 netaddr_to_str(sa, addr, sizeof addr), (long long)srv->cfg->pop3_max_connections);
        pop3d_refuse(fd, "Too many connections");
        return;
    }
    if (pop3d_ip_acquire(srv, sa) < 0) {
        log_warn("pop3d refused addr=%s reason=\"too many connections from this address\" "
                 "limit=%lld",
                 netaddr_to_str(sa, addr, sizeof addr),
                 (long long)srv->cfg->pop3_max_connections_per_ip);
        pop3d_refuse(fd, "Too many connections from your address");
        return;
    }
    srv->nsessions++;
    int rc = pop3d_session_start(srv, fd, sa, salen, kind);
    if (rc < 0)
        log_error("pop3d session_start_failed addr=%s err=\"%s\"",
                  netaddr_to_str(sa, addr, sizeof addr), err_str(rc));
}

struct pop3d_listener_ctx {
    struct pop3d_server *srv;
    enum pop3d_listener kind;
    struct evconnlistener *lev;
    struct event *retry; /* owned: re-enables after EMFILE */
};

static void pop3d_on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                            int salen, void *arg)
{
    struct pop3d_listener_ctx *l = arg;
    pop3d_accept(l->srv, fd, sa, (socklen_t)salen, l->kind);
}

static void pop3d_on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
    struct pop3d_listener_ctx *l = arg;
    evconnlistener_enable(l->lev);
}

/* pop3d_on_accept_error - EMFILE/ENFILE: pause this listener instead of spinning. */
static void pop3d_on_accept_error(struct evconnlistener *lev, void *arg)
{
    struct pop3d_listener_ctx *l = arg;
    int err = EVUTIL_SOCKET_ERROR();
    log_warn("pop3d accept_failed listener=%s errno=%d error=\"%s\" action=\"pause %ds\"",
             pop3d_listener_name(l->kind), err, evutil_socket_error_to_string(err),
             POP3D_ACCEPT_PAUSE_SEC);
    evconnlistener_disable(lev);
    struct timeval tv = {POP3D_ACCEPT_PAUSE_SEC, 0};
    event_add(l->retry, &tv);
}

static void pop3d_on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct pop3d_server *srv = arg;
    log_info("pop3d stopping signal=%d sessions=%zu", (int)sig, srv->nsessions);
    srv->stopping = 1;
    event_base_loopbreak(srv->base);
}

static int pop3d_listen(struct pop3d_server *srv, struct pop3d_listener_ctx *l,
                        enum pop3d_listener k, int fd)
{
    l->srv = srv;
    l->kind = k;
    l->retry = evtimer_new(srv->base, pop3d_on_accept_retry, l);
    /* Without LEV_OPT_CLOSE_ON_FREE: the fd stays with the caller. */
    l->lev = evconnlistener_new(srv->base, pop3d_on_accept, l, LEV_OPT_CLOSE_ON_EXEC, 0, fd);
    if (!l->retry || !l->lev)
        return PST_EIO;
    evconnlistener_set_error_cb(l->lev, pop3d_on_accept_error);
    return 0;
}

int pop3d_run(const struct cfg *cfg, const struct pop3d_listen_fds *fds)
{
    struct pop3d_server srv;
    struct pop3d_listener_ctx listeners[POP3D_LISTEN__COUNT];
    struct event *sigs[2] = {NULL, NULL};
    memset(listeners, 0, sizeof listeners);
    memset(&srv, 0, sizeof srv);
    signal(SIGPIPE, SIG_IGN);

    struct event_base *base = event_base_new();
    if (!base)
        return PST_ENOMEM;
    int rc = pop3d_server_init(&srv, cfg, base, fds->tls);
    for (int k = 0; rc == 0 && k < POP3D_LISTEN__COUNT; k++) {
        if (fds->fd[k] < 0)
            continue;
        if (k == POP3D_LISTEN_POP3S && !srv.tls) {
            log_warn("pop3d listener_disabled listener=pop3s reason=\"no TLS certificate\"");
            continue;
        }
        rc = pop3d_listen(&srv, &listeners[k], (enum pop3d_listener)k, fds->fd[k]);
    }
    if (rc == 0) {
        sigs[0] = evsignal_new(base, SIGTERM, pop3d_on_signal, &srv);
        sigs[1] = evsignal_new(base, SIGINT, pop3d_on_signal, &srv);
        if (!sigs[0] || !sigs[1] || event_add(sigs[0], NULL) < 0 || event_add(sigs[1], NULL) < 0)
            rc = PST_ENOMEM;
    }
    if (rc == 0) {
        log_info("pop3d started pid=%ld tls=%s stls=%s", (long)getpid(), srv.tls ? "yes" : "no",
                 srv.tls && cfg->pop3_stls ? "yes" : "no");
        event_base_dispatch(base);
    }
    for (int k = 0; k < POP3D_LISTEN__COUNT; k++) {
        if (listeners[k].lev)
            evconnlistener_free(listeners[k].lev);
        if (listeners[k].retry)
            event_free(listeners[k].retry);
    }
    for (int i = 0; i < 2; i++)
        if (sigs[i])
            event_free(sigs[i]);
    pop3d_server_fini(&srv);
    event_base_free(base);
    return rc;
}
