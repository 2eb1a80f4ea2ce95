/*
 * bmd.c - the Bitmessage node process (see bmd.h): wires the connection
 * pool, the mail workflow and Maildir delivery together on one event loop.
 *
 * Failure policy: start-up errors are returned (and logged); after that
 * nothing here is fatal: a failed delivery or outbox step is logged and
 * retried by the next tick.
 */
#include "bitmessage/bmd.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "bitmessage/bm_deliver.h"
#include "bitmessage/bm_engine.h"
#include "bitmessage/bm_node.h"
#include "bitmessage/bm_store.h"
#include "lib/log.h"
#include "lib/netaddr.h"

struct bmd {
    const struct cfg *cfg;
    struct event_base *base;
    struct bm_store *st;
    bm_node_t *node;
    bm_engine_t *engine;
    struct event *ev_deliver;
};

/* ---- the glue between node, engine and Maildir ---- */

static void bmd_deliver(struct bmd *d)
{
    unsigned n = 0;
    int rc = bm_deliver_pending(d->st, d->cfg->mail_dir, d->cfg->hostname, &n);
    if (rc != 0)
        log_warn("bmd delivery_pending error=%s delivered=%u", err_str(rc), n);
}

static void bmd_on_object(void *ctx, const uint8_t hash[BM_PEER_HASH_LEN], const uint8_t *obj,
                          size_t len)
{
    struct bmd *d = ctx;
    bm_engine_on_object(d->engine, hash, obj, len);
}

static int bmd_publish(void *ctx, const uint8_t *obj, size_t len, uint8_t hash[BM_STORE_HASH_LEN])
{
    struct bmd *d = ctx;
    return bm_node_publish(d->node, obj, len, hash);
}

static void bmd_on_received(void *ctx, int64_t inbox_id)
{
    struct bmd *d = ctx;
    log_info("bmd received inbox_id=%lld", (long long)inbox_id);
    bmd_deliver(d);
}

static void bmd_on_acked(void *ctx, int64_t msgid)
{
    (void)ctx;
    log_info("bmd acked msgid=%lld", (long long)msgid);
}

static void bmd_on_failed(void *ctx, int64_t msgid, const char *why)
{
    (void)ctx;
    log_warn("bmd failed msgid=%lld reason=\"%s\"", (long long)msgid, why ? why : "");
}

static const struct bm_node_hooks bmd_node_hooks = {
    .on_object = bmd_on_object,
};

static const struct bm_engine_ops bmd_engine_ops = {
    .publish = bmd_publish,
    .on_received = bmd_on_received,
    .on_acked = bmd_on_acked,
    .on_failed = bmd_on_failed,
};

static void bmd_on_deliver_timer(evutil_socket_t fd, short what, void *arg)
{
    bmd_deliver(arg);
}

static void bmd_on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct bmd *d = arg;
    if (sig == SIGUSR1) {
        bm_engine_kick(d->engine);
        bmd_deliver(d);
        return;
    }
    log_info("bmd stopping signal=%d", (int)sig);
    event_base_loopexit(d->base, NULL);
}

/* ---- configuration ---- */

static int bmd_node_config(const struct cfg *cfg, int listen_fd, struct bm_node_config *nc)
{
    char host[256];
    uint16_t port = 0;

    bm_node_config_defaults(nc);
    nc->listen_fd = listen_fd;
    if (cfg->bm_listen[0] != '\0' &&
        netaddr_split_hostport(cfg->bm_listen, host, sizeof(host), &port) == 0)
        nc->listen_port = port;
    nc->trusted_only = cfg->bm_trusted_only;
    nc->max_inbound = (unsigned)cfg->bm_max_inbound;
    nc->max_inbound_per_ip = (unsigned)cfg->bm_max_inbound_per_ip;
    if (cfg->bm_peers.n > BM_NODE_MAX_PEERS) {
        log_error("bmd config peers=%zu max=%d", cfg->bm_peers.n, BM_NODE_MAX_PEERS);
        return PST_ECONFIG;
    }
    for (size_t i = 0; i < cfg->bm_peers.n; i++) {
        struct bm_node_peer_cfg *p = &nc->peers[nc->npeers];
        if (netaddr_split_hostport(cfg->bm_peers.v[i], p->host, sizeof(p->host), &p->port) != 0) {
            log_error("bmd config bad_peer=%s", cfg->bm_peers.v[i]);
            return PST_ECONFIG;
        }
        nc->npeers++;
    }
    return 0;
}

static void bmd_engine_config(const struct cfg *cfg, struct bm_engine_config *ec)
{
    bm_engine_config_defaults(ec);
    ec->msg_ttl = cfg->bm_ttl; /* informative: each outbox row carries its own TTL */
    ec->max_attempts = (unsigned)cfg->bm_max_attempts;
    ec->pubkey_ttl = cfg->bm_pubkey_ttl;
    ec->getpubkey_ttl = cfg->bm_getpubkey_ttl;
    ec->pow_threads = (unsigned)cfg->bm_pow_threads;
    ec->nonce_trials = (uint64_t)cfg->bm_nonce_trials;
    ec->extra_bytes = (uint64_t)cfg->bm_extra_bytes;
}

static void bmd_teardown(struct bmd *d)
{
    if (d->ev_deliver)
        event_free(d->ev_deliver);
    bm_engine_free(&d->engine);
    bm_node_free(&d->node);
    bm_store_close(&d->st);
    if (d->base)
        event_base_free(d->base);
}

static int bmd_setup(struct bmd *d, int listen_fd)
{
    struct bm_node_config nc;
    struct bm_engine_config ec;
    int rc;

    if ((rc = bmd_node_config(d->cfg, listen_fd, &nc)) != 0) {
        if (listen_fd >= 0)
            close(listen_fd);
        return rc;
    }
    bmd_engine_config(d->cfg, &ec);
    if (evthread_use_pthreads() != 0 || (d->base = event_base_new()) == NULL)
        return PST_ENOMEM;
    if ((rc = bm_store_open(d->cfg->db_path, &d->st)) != 0) {
        log_error("bmd store_open path=%s error=%s", d->cfg->db_path, err_str(rc));
        return rc;
    }
    if ((rc = bm_node_new(d->base, d->st, &nc, &bmd_node_hooks, d, &d->node)) != 0)
        return rc;
    if ((rc = bm_engine_new(d->base, d->st, &ec, &bmd_engine_ops, d, &d->engine)) != 0)
        return rc;
    d->ev_deliver = event_new(d->base, -1, EV_PERSIST, bmd_on_deliver_timer, d);
    struct timeval tv = {BMD_DELIVER_INTERVAL_MS / 1000, (BMD_DELIVER_INTERVAL_MS % 1000) * 1000};
    if (d->ev_deliver == NULL || event_add(d->ev_deliver, &tv) != 0)
        return PST_ENOMEM;
    return bm_node_start(d->node);
}

int bmd_run(const struct cfg *cfg, int listen_fd)
{
    struct bmd d = {.cfg = cfg};
    signal(SIGPIPE, SIG_IGN);
    int rc = bmd_setup(&d, listen_fd);
    if (rc != 0) {
        log_error("bmd start_failed error=%s", err_str(rc));
        bmd_teardown(&d);
        return rc;
    }
    static const int sigs[] = {SIGTERM, SIGINT, SIGUSR1};
    struct event *ev_sig[PST_ARRAY_LEN(sigs)];
    for (size_t i = 0; i < PST_ARRAY_LEN(sigs); i++) {
        ev_sig[i] = evsignal_new(d.base, sigs[i], bmd_on_signal, &d);
        if (ev_sig[i] == NULL || event_add(ev_sig[i], NULL) != 0)
            rc = PST_ENOMEM;
    }
    if (rc == 0) {
        log_info("bmd started listen=%s peers=%zu trusted_only=%d", cfg->bm_listen, cfg->bm_peers.n,
                 cfg->bm_trusted_only);
        bmd_deliver(&d);
        bm_engine_kick(d.engine);
        event_base_dispatch(d.base);
    }
    for (size_t i = 0; i < PST_ARRAY_LEN(sigs); i++)
        if (ev_sig[i])
            event_free(ev_sig[i]);
    bmd_teardown(&d);
    log_info("bmd stopped");
    return rc;
}
