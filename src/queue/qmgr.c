/*
 * qmgr.c - the queue manager: moves committed messages from the spool's
 * incoming/ into local Maildirs (issue 3). Outbound transports come later.
 *
 * Event loop: a Unix datagram socket <run_dir>/qmgr.sock (mode 0600; any
 * datagram = "scan now"), a timer every queue_scan_interval seconds, one
 * pass at start, SIGTERM/SIGINT end the loop. A pass runs to completion
 * inside the callback (this process does nothing else).
 *
 * A pass: list incoming/ (sorted by qid = roughly arrival order), then for
 * each batch of delivery_batch messages:
 *   1. parse each spool file (malformed -> corrupt/, error logged);
 *   2. classify each recipient:
 *        local domain (cfg_is_local_domain) and an existing user
 *            -> Maildir <mail_dir>/<lower-cased local part>/ (tmp file written)
 *        local domain, invalid or unknown user
 *            -> final failure ("unknown user"); TODO(bounces, later issue):
 *               generate a DSN to the sender instead of only logging
 *        other domain -> stays pending: no transport yet (next issue)
 *   3. one maildir batch commit for the whole batch: one syncfs (or
 *      fdatasync for a single file), link into new/, one fsync per new/;
 *   4. messages whose every recipient has a final result are unlinked from
 *      incoming/, then incoming/ is fsync'd once.
 *
 * Exactly-once: Maildir names are deterministic per (qid, recipient index),
 * so a delivery repeated after a crash between steps 3 and 4 finds its file
 * in new/ and does not duplicate it. Messages that stay in incoming/ (remote
 * recipients pending) have their final recipients remembered in memory
 * (`held`), so later passes neither re-deliver nor re-log them.
 *
 * Failure policy: per-message and per-recipient errors are logged and the
 * message is retried next pass; nothing in a pass aborts. qmgr_run returns
 * an error only for start-up failures (socket, event base, database).
 */
#include "qmgr.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/log.h"
#include "lib/maildir.h"
#include "lib/spool.h"
#include "lib/userdb.h"

#define QMGR_SOCK_NAME "qmgr.sock"
#define QMGR_LOGVAL 300    /* bytes of a quoted log value */
#define QMGR_WAKE_DRAIN 64 /* datagrams read per wake-up event */

/* Recipient state within one pass. */
enum qmgr_rcpt_state {
    QMGR_R_PENDING = 0, /* not final: remote, or temporary error */
    QMGR_R_LOCAL,       /* a Maildir item is in this pass's batch */
    QMGR_R_DELIVERED,   /* final: in the Maildir */
    QMGR_R_FAILED,      /* final: undeliverable */
    QMGR_R_EARLIER,     /* final in an earlier pass (held) */
};

/* A message kept in incoming/ with some recipients already final. */
struct qmgr_held {
    char qid[SPOOL_QID_LEN + 1];
    size_t nrcpt;
    unsigned char *final; /* nrcpt flags */
};

struct qmgr {
    const struct cfg *cfg; /* borrowed */
    struct userdb *udb;
    struct qmgr_held *held; /* sorted by qid */
    size_t nheld, heldcap;
    /* event loop (qmgr_run only) */
    struct event_base *base;
    int sock;
};

/* One message of a batch. */
struct qmgr_msg {
    char qid[SPOOL_QID_LEN + 1];
    struct spool_env *env;
    int fd;
    uint64_t off, len;
    int *state; /* enum qmgr_rcpt_state per recipient */
    int *item;  /* maildir batch index per recipient, -1 if none */
    char (*mailbox)[USERDB_NAME_MAX + 1];
};

struct qmgr_qids {
    char (*v)[SPOOL_QID_LEN + 1];
    size_t n, cap;
};

/* ---------------------------------------------------------------- held set */

static int qmgr_cmp_qid(const void *a, const void *b)
{
    return strcmp(a, b);
}

static struct qmgr_held *qmgr_held_find(struct qmgr *q, const char *qid)
{
    if (q->nheld == 0)
        return NULL;
    return bsearch(qid, q->held, q->nheld, sizeof(*q->held), qmgr_cmp_qid);
}

static void qmgr_held_remove(struct qmgr *q, struct qmgr_held *h)
{
    size_t i = (size_t)(h - q->held);

    free(h->final);
    memmove(h, h + 1, (q->nheld - i - 1) * sizeof(*h));
    q->nheld--;
}

/* qmgr_held_set - remember the final recipients of a message that stays in incoming/. */
static int qmgr_held_set(struct qmgr *q, const struct qmgr_msg *m)
{
    struct qmgr_held *h = qmgr_held_find(q, m->qid);
    size_t i, pos;

    if (h != NULL && h->nrcpt != m->env->nrcpt) {
        qmgr_held_remove(q, h);
        h = NULL;
    }
    if (h == NULL) {
        if (q->nheld == q->heldcap) {
            size_t ncap = q->heldcap ? q->heldcap * 2 : 16;
            struct qmgr_held *nh = realloc(q->held, ncap * sizeof(*nh));
            if (nh == NULL)
                return PST_ENOMEM;
            q->held = nh;
            q->heldcap = ncap;
        }
        for (pos = 0; pos < q->nheld && strcmp(q->held[pos].qid, m->qid) < 0; pos++)
            ;
        unsigned char *final = calloc(m->env->nrcpt, 1);
        if (final == NULL)
            return PST_ENOMEM;
        memmove(&q->held[pos + 1], &q->held[pos], (q->nheld - pos) * sizeof(*h));
        h = &q->held[pos];
        memcpy(h->qid, m->qid, sizeof(h->qid));
        h->nrcpt = m->env->nrcpt;
        h->final = final;
        q->nheld++;
    }
    for (i = 0; i < h->nrcpt; i++)
        if (m->state[i] != QMGR_R_PENDING && m->state[i] != QMGR_R_LOCAL)
            h->final[i] = 1;
    return 0;
}

/* qmgr_held_prune - forget messages no longer in incoming/ (qids sorted). */
static void qmgr_held_prune(struct qmgr *q, const struct qmgr_qids *qids)
{
    size_t i = 0;

    while (i < q->nheld) {
        if (qids->n == 0 ||
            bsearch(q->held[i].qid, qids->v, qids->n, sizeof(*qids->v), qmgr_cmp_qid) == NULL)
            qmgr_held_remove(q, &q->held[i]);
        else
            i++;
    }
}

/* ---------------------------------------------------------------- context */

int qmgr_new(const struct cfg *cfg, struct qmgr **out)
{
    struct qmgr *q;
    int rc;

    *out = NULL;
    if (cfg == NULL || cfg->spool_dir == NULL || cfg->mail_dir == NULL || cfg->db_path == NULL)
        return PST_ECONFIG;
    q = calloc(1, sizeof(*q));
    if (q == NULL)
        return PST_ENOMEM;
    q->cfg = cfg;
    q->sock = -1;
    if ((rc = userdb_open(cfg->db_path, &q->udb)) != 0) {
        free(q);
        return rc;
    }
    *out = q;
    return 0;
}

void qmgr_free(struct qmgr **qp)
{
    struct qmgr *q;
    size_t i;

    if (qp == NULL || *qp == NULL)
        return;
    q = *qp;
    for (i = 0; i < q->nheld; i++)
        free(q->held[i].final);
    free(q->held);
    userdb_close(&q->udb);
    free(q);
    *qp = NULL;
}

/* ---------------------------------------------------------------- one pass */

static int qmgr_collect(void *arg, const char *qid)
{
    struct qmgr_qids *qs = arg;

    if (qs->n == qs->cap) {
        size_t ncap = qs->cap ? qs->cap * 2 : 256;
        void *nv = realloc(qs->v, ncap * sizeof(*qs->v));
        if (nv == NULL)
            return 1; /* stop; the rest waits for the next pass */
        qs->v = nv;
        qs->cap = ncap;
    }
    memcpy(qs->v[qs->n++], qid, SPOOL_QID_LEN + 1);
    return 0;
}

static void qmgr_msg_release(struct qmgr_msg *m)
{
    spool_env_free(&m->env);
    if (m->fd >= 0)
        close(m->fd);
    m->fd = -1;
    free(m->state);
    free(m->item);
    free(m->mailbox);
    m->state = m->item = NULL;
    m->mailbox = NULL;
}

static const char *qmgr_q(char *out, size_t outsz, const char *s)
{
    return log_quote(out, outsz, s, strlen(s));
}

/* qmgr_open_msg - parse one spool file; 0, or non-zero if it is not to be processed. */
static int qmgr_open_msg(struct qmgr *q, struct qmgr_msg *m, struct qmgr_pass_stats *st)
{
    const char *spool = q->cfg->spool_dir;
    int rc = spool_open(spool, m->qid, &m->env, &m->fd, &m->len);
    off_t off;

    if (rc == PST_ENOENT)
        return rc; /* removed meanwhile (e.g. by the CLI) */
    if (rc == PST_EINVAL) {
        int qrc = spool_quarantine(spool, m->qid);
        log_error("qmgr malformed qid=%s action=%s", m->qid,
                  qrc == 0 ? "quarantined" : "quarantine-failed");
        if (qrc == 0)
            st->quarantined++;
        return rc;
    }
    if (rc != 0) {
        log_error("qmgr open-failed qid=%s error=\"%s\" errno=\"%s\"", m->qid, err_str(rc),
                  strerror(errno));
        return rc;
    }
    off = lseek(m->fd, 0, SEEK_CUR);
    m->state = calloc(m->env->nrcpt, sizeof(*m->state));
    m->item = malloc(m->env->nrcpt * sizeof(*m->item));
    m->mailbox = calloc(m->env->nrcpt, sizeof(*m->mailbox));
    if (off < 0 || m->state == NULL || m->item == NULL || m->mailbox == NULL) {
        log_error("qmgr open-failed qid=%s error=\"%s\"", m->qid,
                  off < 0 ? "seek failed" : "out of memory");
        return PST_ENOMEM;
    }
    m->off = (uint64_t)off;
    for (size_t i = 0; i < m->env->nrcpt; i++)
        m->item[i] = -1;
    return 0;
}

/*
 * qmgr_split - split addr into a lower-cased local part (out) and its domain.
 * An address without '@' (RFC 5321 "Postmaster") has domain "" = local.
 * Returns 0, or PST_EINVAL if the local part cannot be a user name.
 */
static int qmgr_split(const char *addr, char out[USERDB_NAME_MAX + 1], const char **domain)
{
    const char *at = strrchr(addr, '@');
    size_t len = at != NULL ? (size_t)(at - addr) : strlen(addr), i;

    *domain = at != NULL ? at + 1 : "";
    if (len == 0 || len > USERDB_NAME_MAX)
        return PST_EINVAL;
    for (i = 0; i < len; i++)
        out[i] = (char)tolower((unsigned char)addr[i]);
    out[len] = '\0';
    return userdb_name_valid(out) ? 0 : PST_EINVAL;
}

/* qmgr_route_rcpt - decide recipient i of m; for a local user, add a Maildir item to b. */
static void qmgr_route_rcpt(struct qmgr *q, struct qmgr_msg *m, size_t i, struct maildir_batch *b,
                            size_t *nremote)
{
    const char *addr = m->env->rcpt[i].addr, *domain;
    char user[USERDB_NAME_MAX + 1], path[PATH_MAX], qa[QMGR_LOGVAL];
    int valid = qmgr_split(addr, user, &domain) == 0, rc, n;

    if (domain[0] != '\0' && !cfg_is_local_domain(q->cfg, domain)) {
        (*nremote)++;
        return;
    }
    rc = valid ? userdb_exists(q->udb, user) : 0;
    if (rc < 0) {
        log_error("qmgr deferred qid=%s rcpt=%s reason=\"user database: %s\"", m->qid,
                  qmgr_q(qa, sizeof(qa), addr), err_str(rc));
        return;
    }
    if (rc == 0) {
        /* TODO(bounces): a later issue sends a DSN to the sender here. */
        log_warn("qmgr undeliverable qid=%s rcpt=%s reason=\"unknown user\"", m->qid,
                 qmgr_q(qa, sizeof(qa), addr));
        m->state[i] = QMGR_R_FAILED;
        return;
    }
    n = snprintf(path, sizeof(path), "%s/%s", q->cfg->mail_dir, user);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        log_error("qmgr deferred qid=%s rcpt=%s reason=\"mailbox path too long\"", m->qid,
                  qmgr_q(qa, sizeof(qa), addr));
        return;
    }
    struct maildir_msg mm = {
        .maildir = path,
        .qid = m->qid,
        .qtime = m->env->time,
        .index = (unsigned)i,
        .sender = m->env->sender != NULL ? m->env->sender : "",
        .rcpt = addr,
        .content_fd = m->fd,
        .content_off = m->off,
        .content_len = m->len,
    };
    rc = maildir_create(path);
    if (rc == 0)
        rc = maildir_batch_add(b, &mm);
    if (rc < 0) {
        log_error("qmgr deferred qid=%s rcpt=%s mailbox=%s reason=\"maildir: %s\" errno=\"%s\"",
                  m->qid, qmgr_q(qa, sizeof(qa), addr), user, err_str(rc), strerror(errno));
        return;
    }
    m->state[i] = QMGR_R_LOCAL;
    m->item[i] = rc;
    memcpy(m->mailbox[i], user, sizeof(user));
}

static void qmgr_route_msg(struct qmgr *q, struct qmgr_msg *m, struct maildir_batch *b,
                           struct qmgr_pass_stats *st)
{
    const struct qmgr_held *h = qmgr_held_find(q, m->qid);
    size_t i, nremote = 0;

    if (h != NULL && h->nrcpt != m->env->nrcpt)
        h = NULL; /* cannot happen for an unchanged file; be safe and start over */
    for (i = 0; i < m->env->nrcpt; i++) {
        if (h != NULL && h->final[i]) {
            m->state[i] = QMGR_R_EARLIER;
            continue;
        }
        qmgr_route_rcpt(q, m, i, b, &nremote);
    }
    if (nremote > 0)
        log_debug("qmgr deferred qid=%s remote=%zu reason=\"no transport yet\"", m->qid, nremote);
}

/* qmgr_finish_msg - read the batch results of m; 1 if every recipient is final. */
static int qmgr_finish_msg(struct qmgr_msg *m, const struct maildir_batch *b,
                           struct qmgr_pass_stats *st)
{
    char qa[QMGR_LOGVAL];
    size_t i;
    int all_final = 1;

    for (i = 0; i < m->env->nrcpt; i++) {
        const char *addr = m->env->rcpt[i].addr;
        if (m->state[i] == QMGR_R_LOCAL) {
            uint64_t size = 0;
            int rc = maildir_batch_result(b, (size_t)m->item[i], &size, NULL);
            if (rc == 0) {
                m->state[i] = QMGR_R_DELIVERED;
                st->delivered++;
                log_info("qmgr delivered qid=%s rcpt=%s mailbox=%s size=%llu", m->qid,
                         qmgr_q(qa, sizeof(qa), addr), m->mailbox[i], (unsigned long long)size);
            } else {
                m->state[i] = QMGR_R_PENDING;
                log_error("qmgr deferred qid=%s rcpt=%s mailbox=%s reason=\"maildir: %s\"", m->qid,
                          qmgr_q(qa, sizeof(qa), addr), m->mailbox[i], err_str(rc));
            }
        }
        if (m->state[i] == QMGR_R_FAILED)
            st->failed++;
        if (m->state[i] == QMGR_R_PENDING) {
            st->deferred++;
            all_final = 0;
        }
    }
    return all_final;
}

/* qmgr_batch - deliver msgs[0..n) as one durable batch; remove the finished ones. */
static void qmgr_batch(struct qmgr *q, struct qmgr_msg *msgs, size_t n, struct qmgr_pass_stats *st)
{
    struct maildir_batch *b = maildir_batch_new(q->cfg->hostname);
    int *done = calloc(n ? n : 1, sizeof(*done));
    size_t i, nremoved = 0;
    int rc;

    if (b == NULL || done == NULL) {
        log_error("qmgr batch-failed error=\"out of memory\"");
        goto out;
    }
    for (i = 0; i < n; i++) {
        if (qmgr_open_msg(q, &msgs[i], st) != 0) {
            qmgr_msg_release(&msgs[i]);
            continue;
        }
        st->messages++;
        qmgr_route_msg(q, &msgs[i], b, st);
    }
    rc = maildir_batch_commit(b);
    if (rc != 0)
        log_error("qmgr maildir-commit error=\"%s\" errno=\"%s\"", err_str(rc), strerror(errno));
    for (i = 0; i < n; i++) {
        struct qmgr_msg *m = &msgs[i];
        if (m->env == NULL)
            continue;
        if (!qmgr_finish_msg(m, b, st)) {
            if (qmgr_held_set(q, m) != 0)
                log_error("qmgr held-failed qid=%s error=\"out of memory\"", m->qid);
            continue;
        }
        rc = spool_remove(q->cfg->spool_dir, m->qid);
        if (rc != 0) {
            log_error("qmgr remove-failed qid=%s error=\"%s\" errno=\"%s\"", m->qid, err_str(rc),
                      strerror(errno));
            continue;
        }
        done[i] = 1;
        nremoved++;
    }
    if (nremoved > 0 && (rc = spool_sync_dir(q->cfg->spool_dir)) != 0)
        log_error("qmgr spool-sync-failed error=\"%s\" errno=\"%s\"", err_str(rc), strerror(errno));
    for (i = 0; i < n; i++) {
        if (!done[i])
            continue;
        struct qmgr_held *h = qmgr_held_find(q, msgs[i].qid);
        if (h != NULL)
            qmgr_held_remove(q, h);
        st->removed++;
        log_info("qmgr removed qid=%s", msgs[i].qid);
    }
out:
    for (i = 0; i < n; i++)
        qmgr_msg_release(&msgs[i]);
    maildir_batch_free(&b);
    free(done);
}

int qmgr_deliver_pass(struct qmgr *q, struct qmgr_pass_stats *stp)
{
    struct qmgr_pass_stats local, *st = stp != NULL ? stp : &local;
    struct qmgr_qids qids = {0};
    struct qmgr_msg *msgs;
    size_t batch, i, j;
    int rc;

    memset(st, 0, sizeof(*st));
    rc = spool_scan(q->cfg->spool_dir, qmgr_collect, &qids);
    if (rc != 0) {
        log_error("qmgr scan-failed dir=%s error=\"%s\" errno=\"%s\"", q->cfg->spool_dir,
                  err_str(rc), strerror(errno));
        free(qids.v);
        return rc;
    }
    if (qids.n > 1)
        qsort(qids.v, qids.n, sizeof(*qids.v), qmgr_cmp_qid);
    qmgr_held_prune(q, &qids);
    batch = q->cfg->delivery_batch > 0 ? (size_t)q->cfg->delivery_batch : 1;
    msgs = calloc(batch, sizeof(*msgs));
    if (msgs == NULL) {
        free(qids.v);
        return PST_ENOMEM;
    }
    for (i = 0; i < qids.n; i += batch) {
        size_t n = qids.n - i < batch ? qids.n - i : batch;
        for (j = 0; j < n; j++) {
            memset(&msgs[j], 0, sizeof(msgs[j]));
            msgs[j].fd = -1;
            memcpy(msgs[j].qid, qids.v[i + j], sizeof(msgs[j].qid));
        }
        qmgr_batch(q, msgs, n, st);
    }
    free(msgs);
    free(qids.v);
    if (st->messages > 0)
        log_debug("qmgr pass messages=%zu delivered=%zu failed=%zu deferred=%zu removed=%zu "
                  "quarantined=%zu",
                  st->messages, st->delivered, st->failed, st->deferred, st->removed,
                  st->quarantined);
    return 0;
}

/* ---------------------------------------------------------------- event loop */

static int qmgr_sock_path(const struct cfg *cfg, struct sockaddr_un *sun)
{
    int n;

    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    if (cfg == NULL || cfg->run_dir == NULL)
        return PST_ECONFIG;
    n = snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/%s", cfg->run_dir, QMGR_SOCK_NAME);
    if (n < 0 || (size_t)n >= sizeof(sun->sun_path))
        return PST_ELIMIT;
    return 0;
}

void qmgr_wake(const struct cfg *cfg)
{
    struct sockaddr_un sun;
    int fd;

    if (qmgr_sock_path(cfg, &sun) != 0)
        return;
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    (void)sendto(fd, "w", 1, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sun, sizeof(sun));
    close(fd);
}

static int qmgr_bind(struct qmgr *q)
{
    struct sockaddr_un sun;
    mode_t old;
    int rc;

    if ((rc = qmgr_sock_path(q->cfg, &sun)) != 0)
        return rc;
    if (mkdir(q->cfg->run_dir, 0700) != 0 && errno != EEXIST)
        return PST_EIO;
    if (unlink(sun.sun_path) != 0 && errno != ENOENT)
        return PST_EIO;
    q->sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (q->sock < 0)
        return PST_EIO;
    old = umask(0177); /* the socket file is created 0600 */
    rc = bind(q->sock, (struct sockaddr *)&sun, sizeof(sun));
    umask(old);
    if (rc != 0 || chmod(sun.sun_path, 0600) != 0)
        return PST_EIO;
    return 0;
}

static void qmgr_pass_logged(struct qmgr *q)
{
    struct qmgr_pass_stats st;

    if (qmgr_deliver_pass(q, &st) != 0)
        log_warn("qmgr pass-failed");
}

static void qmgr_on_sock(evutil_socket_t fd, short what, void *arg)
{
    char buf[64];
    int i;

    /* coalesce: any number of queued wake-ups cost one pass */
    for (i = 0; i < QMGR_WAKE_DRAIN; i++)
        if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) < 0)
            break;
    qmgr_pass_logged(arg);
}

static void qmgr_on_timer(evutil_socket_t fd, short what, void *arg)
{
    qmgr_pass_logged(arg);
}

static void qmgr_on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct qmgr *q = arg;

    log_info("qmgr stopping signal=%d", (int)sig);
    event_base_loopbreak(q->base);
}

int qmgr_run(const struct cfg *cfg)
{
    struct event *ev_sock = NULL, *ev_timer = NULL, *ev_term = NULL, *ev_int = NULL;
    struct timeval tv = {.tv_sec = cfg->queue_scan_interval > 0 ? cfg->queue_scan_interval : 60};
    struct qmgr *q = NULL;
    int rc;

    if ((rc = spool_init(cfg->spool_dir)) != 0) {
        log_error("qmgr start-failed reason=\"spool init: %s\" errno=\"%s\"", err_str(rc),
                  strerror(errno));
        return rc;
    }
    if ((rc = qmgr_new(cfg, &q)) != 0) {
        log_error("qmgr start-failed reason=\"user database: %s\"", err_str(rc));
        return rc;
    }
    if ((rc = qmgr_bind(q)) != 0) {
        log_error("qmgr start-failed reason=\"bind %s/%s: %s\"", cfg->run_dir, QMGR_SOCK_NAME,
                  strerror(errno));
        goto out;
    }
    rc = PST_ENOMEM;
    q->base = event_base_new();
    if (q->base == NULL)
        goto out;
    ev_sock = event_new(q->base, q->sock, EV_READ | EV_PERSIST, qmgr_on_sock, q);
    ev_timer = event_new(q->base, -1, EV_PERSIST, qmgr_on_timer, q);
    ev_term = evsignal_new(q->base, SIGTERM, qmgr_on_signal, q);
    ev_int = evsignal_new(q->base, SIGINT, qmgr_on_signal, q);
    if (ev_sock == NULL || ev_timer == NULL || ev_term == NULL || ev_int == NULL ||
        event_add(ev_sock, NULL) != 0 || event_add(ev_timer, &tv) != 0 ||
        event_add(ev_term, NULL) != 0 || event_add(ev_int, NULL) != 0) {
        log_error("qmgr start-failed reason=\"event setup\"");
        goto out;
    }
    log_info("qmgr started spool=%s mail_dir=%s interval=%lld batch=%lld", cfg->spool_dir,
             cfg->mail_dir, (long long)cfg->queue_scan_interval, (long long)cfg->delivery_batch);
    qmgr_pass_logged(q);
    rc = event_base_dispatch(q->base) < 0 ? PST_EIO : 0;
out:
    if (ev_sock != NULL)
        event_free(ev_sock);
    if (ev_timer != NULL)
        event_free(ev_timer);
    if (ev_term != NULL)
        event_free(ev_term);
    if (ev_int != NULL)
        event_free(ev_int);
    if (q->sock >= 0) {
        struct sockaddr_un sun;
        close(q->sock);
        if (qmgr_sock_path(cfg, &sun) == 0)
            (void)unlink(sun.sun_path);
    }
    if (q->base != NULL)
        event_base_free(q->base);
    qmgr_free(&q);
    return rc;
}
