/*
 * smtpd.c - the SMTP server process: listeners, connection limits, and the
 * resources its sessions share (TLS context, spool committer, worker pool,
 * user database).
 *
 * Connection limits: max_connections in total and max_connections_per_ip
 * per client address; a client over a limit gets "421 4.7.0" at connect and
 * is closed without a session. Counts live in a small chained hash keyed by
 * the raw address bytes.
 *
 * Shutdown (SIGTERM/SIGINT): listeners close at once; the spool committer
 * is drained, so every message that reached a commit finishes its fsync;
 * then the loop exits and open sessions are dropped (their clients never
 * saw 250 for anything not committed, so nothing acknowledged is lost).
 *
 * Failure policy: start-up problems (event base, database, listeners)
 * return an error; without a TLS context (the supervisor could not load the
 * certificate) STARTTLS is not offered and the implicit-TLS listener is off.
 */
#include "smtpd.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>

#include "lib/log.h"
#include "lib/spool.h"
#include "lib/tls.h"
#include "lib/userdb.h"
#include "lib/worker.h"
#include "smtpd_server.h"
#include "smtpd_session.h"
#include "lib/ipcount.h"

#define SMTPD_IP_BUCKETS 4096
#define SMTPD_AUTH_THREADS 2
#define SMTPD_ACCEPT_PAUSE_SEC 1

const char *smtpd_port_name(enum smtpd_port_kind k)
{
    static const char *const names[SMTPD_PORT__COUNT] = {"smtp", "submission", "smtps"};
    return k < SMTPD_PORT__COUNT ? names[k] : "unknown";
}

/* ---- per-IP connection counts ---- */

void smtpd_server_ip_release(struct smtpd_server *srv, const struct sockaddr *sa)
{
    ipcount_release(srv->ipcounts, sa);
}

/* ---- accepting ---- */

struct smtpd_listener {
    struct smtpd_server *srv;
    enum smtpd_port_kind kind;
    struct evconnlistener *lev;
};

static void smtpd_refuse(int fd, const struct smtpd_server *srv, const char *why)
{
    char msg[512];
    int n =
        snprintf(msg, sizeof msg, "421 4.7.0 %s %s, try again later\r\n", srv->cfg->hostname, why);
    if (n > 0 && (size_t)n < sizeof msg) {
        ssize_t w = send(fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)w; /* best effort: the client is being refused anyway */
    }
    close(fd);
}

static void smtpd_on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                            int salen, void *arg)
{
    struct smtpd_listener *l = arg;
    struct smtpd_server *srv = l->srv;
    char addr[NETADDR_STRLEN];
    if (srv->nsessions >= (size_t)srv->cfg->max_connections) {
        log_warn("smtpd refused addr=%s reason=\"too many connections\" limit=%lld",
                 netaddr_to_str(sa, addr, sizeof addr), (long long)srv->cfg->max_connections);
        smtpd_refuse(fd, srv, "Too many connections");
        return;
    }
    if (ipcount_acquire(srv->ipcounts, sa, (size_t)srv->cfg->max_connections_per_ip) < 0) {
        log_warn(
            "smtpd refused addr=%s reason=\"too many connections from this address\" limit=%lld",
            netaddr_to_str(sa, addr, sizeof addr), (long long)srv->cfg->max_connections_per_ip);
        smtpd_refuse(fd, srv, "Too many connections from your address");
        return;
    }
    srv->nsessions++;
    int rc = smtpd_session_start(srv, fd, sa, (socklen_t)salen, l->kind);
    if (rc < 0)
        log_error("smtpd session_start_failed addr=%s err=\"%s\"",
                  netaddr_to_str(sa, addr, sizeof addr), err_str(rc));
}

static void smtpd_listeners_enable(struct smtpd_server *srv, int on)
{
    for (int k = 0; k < SMTPD_PORT__COUNT; k++) {
        if (!srv->lev[k])
            continue;
        if (on)
            evconnlistener_enable(srv->lev[k]);
        else
            evconnlistener_disable(srv->lev[k]);
    }
}

static void smtpd_on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
    smtpd_listeners_enable(arg, 1);
}

/*
 * smtpd_on_accept_error - typically EMFILE/ENFILE: the pending connection
 * cannot be accepted, so the listener would fire again at once and spin.
 * Pause every listener for SMTPD_ACCEPT_PAUSE_SEC; clients wait in the backlog.
 */
static void smtpd_on_accept_error(struct evconnlistener *lev, void *arg)
{
    struct smtpd_listener *l = arg;
    struct smtpd_server *srv = l->srv;
    int err = EVUTIL_SOCKET_ERROR();
    log_warn("smtpd accept_failed errno=%d error=\"%s\" action=\"pause listeners %ds\"", err,
             evutil_socket_error_to_string(err), SMTPD_ACCEPT_PAUSE_SEC);
    smtpd_listeners_enable(srv, 0);
    struct timeval tv = {SMTPD_ACCEPT_PAUSE_SEC, 0};
    event_add(srv->accept_retry, &tv);
}

static void smtpd_on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct smtpd_server *srv = arg;
    log_info("smtpd stopping signal=%d sessions=%zu", (int)sig, srv->nsessions);
    srv->stopping = 1;
    event_base_loopbreak(srv->base);
}

/* ---- set-up and tear-down ---- */

static int smtpd_setup(struct smtpd_server *srv, const struct cfg *cfg, SSL_CTX *tls)
{
    srv->cfg = cfg;
    srv->base = event_base_new();
    if (!srv->base)
        return PST_ENOMEM;
    srv->ipcounts = ipcount_new(SMTPD_IP_BUCKETS);
    if (!srv->ipcounts)
        return PST_ENOMEM;
    srv->tls = tls;
    int rc = userdb_open(cfg->db_path, &srv->users);
    if (rc < 0) {
        log_error("smtpd userdb_open_failed path=%s err=\"%s\"", cfg->db_path, err_str(rc));
        return rc;
    }
    srv->committer = spool_committer_new(srv->base, cfg->spool_dir);
    srv->workers = worker_pool_new(srv->base, SMTPD_AUTH_THREADS);
    srv->accept_retry = evtimer_new(srv->base, smtpd_on_accept_retry, srv);
    if (!srv->committer || !srv->workers || !srv->accept_retry)
        return PST_ENOMEM;
    return 0;
}

static void smtpd_teardown(struct smtpd_server *srv)
{
    spool_committer_free(&srv->committer); /* drains in-flight commits */
    worker_pool_free(&srv->workers);
    if (srv->accept_retry)
        event_free(srv->accept_retry);
    userdb_close(&srv->users);
    ipcount_free(&srv->ipcounts);
    if (srv->base)
        event_base_free(srv->base);
}

int smtpd_run(const struct cfg *cfg, const struct smtpd_listen_fds *fds)
{
    struct smtpd_server srv;
    memset(&srv, 0, sizeof srv);
    struct smtpd_listener listeners[SMTPD_PORT__COUNT];
    memset(listeners, 0, sizeof listeners);
    struct event *sigs[2] = {NULL, NULL};

    signal(SIGPIPE, SIG_IGN);
    int rc = smtpd_setup(&srv, cfg, fds->tls);
    if (rc < 0)
        goto out;
    for (int k = 0; k < SMTPD_PORT__COUNT; k++) {
        if (fds->fd[k] < 0)
            continue;
        if (k == SMTPD_PORT_SMTPS && !srv.tls) {
            log_warn("smtpd listener_disabled listener=smtps reason=\"no TLS certificate\"");
            continue;
        }
        listeners[k].srv = &srv;
        listeners[k].kind = (enum smtpd_port_kind)k;
        listeners[k].lev =
            evconnlistener_new(srv.base, smtpd_on_accept, &listeners[k], LEV_OPT_CLOSE_ON_EXEC,
                               0 /* already listening */, fds->fd[k]);
        if (!listeners[k].lev) {
            rc = PST_EIO;
            goto out;
        }
        evconnlistener_set_error_cb(listeners[k].lev, smtpd_on_accept_error);
        srv.lev[k] = listeners[k].lev;
    }
    sigs[0] = evsignal_new(srv.base, SIGTERM, smtpd_on_signal, &srv);
    sigs[1] = evsignal_new(srv.base, SIGINT, smtpd_on_signal, &srv);
    if (!sigs[0] || !sigs[1] || event_add(sigs[0], NULL) < 0 || event_add(sigs[1], NULL) < 0) {
        rc = PST_ENOMEM;
        goto out;
    }
    log_info("smtpd started pid=%ld tls=%s", (long)getpid(), srv.tls ? "yes" : "no");
    event_base_dispatch(srv.base);
    rc = 0;
out:
    for (int k = 0; k < SMTPD_PORT__COUNT; k++)
        if (listeners[k].lev)
            evconnlistener_free(
                listeners[k].lev); /* without LEV_OPT_CLOSE_ON_FREE: fd stays with the caller */
    for (int i = 0; i < 2; i++)
        if (sigs[i])
            event_free(sigs[i]);
    smtpd_teardown(&srv);
    return rc;
}
