/*
 * qmgr.c - the queue manager: takes committed messages from the spool,
 * routes every recipient (router.h), delivers local ones to Maildir in
 * durable batches, hands remote ones to the SMTP transport (qmgr_smtp.h),
 * and decides each message's fate once its attempt is over: removed,
 * deferred with a retry time, or bounced (bounce.h).
 *
 * Queues (spool.h): incoming/ (new), deferred/ (file mtime = next attempt),
 * hold/ (never looked at). A pass takes every message of incoming/ and every
 * due one of deferred/, unless it is already active or too many are.
 *
 * Event loop: a Unix datagram socket <run_dir>/qmgr.sock (any datagram =
 * "pass now"), a timer every queue_scan_interval seconds, a one-shot timer
 * at the earliest next-attempt time of deferred/, one pass at start, and a
 * pass when a finished message made room or created a notification.
 *
 * Per-recipient state lives in state/<qid> (spool_state_append), one record
 * per line, so a restarted manager neither re-delivers nor re-bounces:
 *   r <i> D <status>                     delivered
 *   r <i> F <status> <remote|-> <diag>   failed permanently (DSN due)
 *   r <i> N                              the DSN about recipient i is out
 *   a <unix-time>                        an attempt ended with recipients pending
 *   w                                    the delay warning is out
 *
 * Delivery guarantees: a message leaves the spool only when every recipient
 * has a final result and every due notification is itself in the spool.
 * Local copies are exactly-once (deterministic Maildir names); remote ones
 * at-least-once: a kill between the remote 250 and the state record
 * repeats that delivery.
 *
 * Retry: first_retry * 2^(attempts-1), capped at max_retry_interval, with
 * +-10 % jitter. After max_queue_lifetime pending recipients fail (4.4.7);
 * after delay_warning the sender gets one "delayed" notice.
 *
 * Failure policy: per-message problems are logged and the message retried;
 * nothing in a pass aborts. qmgr_run fails only at start-up.
 */
#include "qmgr.h"

#include <ctype.h>
#include <stdarg.h>
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
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "bounce.h"
#include "lib/log.h"
#include "lib/maildir.h"
#include "lib/spool.h"
#include "lib/userdb.h"
#include "qmgr_msg.h"
#include "qmgr_smtp.h"
#include "router.h"
#include "smtp/smtp_parser.h"

#define QMGR_SOCK_NAME "qmgr.sock"
#define QMGR_LOGVAL 300      /* bytes of a quoted log value */
#define QMGR_WAKE_DRAIN 64   /* datagrams read per wake-up event */
#define QMGR_HASH 4096       /* active-message table buckets */
#define QMGR_MAX_ACTIVE 2000 /* messages in flight (one open file each) */
#define QMGR_RECORD_MAX 1024 /* one state record */
#define QMGR_ROUTE_GROUPS 64 /* distinct remote routes per message */

struct qmgr {
    const struct cfg *cfg;   /* borrowed */
    struct userdb *udb;      /* owned */
    struct router *router;   /* owned */
    struct event_base *base; /* owned */
    struct qmgr_smtp *smtp;  /* owned */
    struct qmgr_msg *active[QMGR_HASH];
    size_t nactive;
    int backlog; /* a pass stopped at QMGR_MAX_ACTIVE */
    int in_pass;
    int unsynced[3]; /* per spool_queue: removals not yet fsync'd */
    int sock;
    struct event *ev_pass;      /* one-shot: run a pass (soon or at the next due time) */
    int64_t pass_at;            /* when ev_pass fires, 0 = not armed */
    struct qmgr_pass_stats *st; /* stats of the running pass, or a sink */
    struct qmgr_pass_stats sink;
};

static void qmgr_schedule_pass(struct qmgr *q, int64_t when);
static void qmgr_on_pass(evutil_socket_t fd, short what, void *arg);

/* ---------------------------------------------------------------- helpers */

static const char *qmgr_q(char *out, size_t outsz, const char *s)
{
    return log_quote(out, outsz, s, strlen(s));
}

static size_t qmgr_hash(const char *qid)
{
    size_t h = 5381;
    for (const char *p = qid; *p; p++)
        h = h * 33 + (unsigned char)*p;
    return h % QMGR_HASH;
}

static struct qmgr_msg *qmgr_active_find(struct qmgr *q, const char *qid)
{
    for (struct qmgr_msg *m = q->active[qmgr_hash(qid)]; m; m = m->hnext)
        if (strcmp(m->qid, qid) == 0)
            return m;
    return NULL;
}

static void qmgr_active_add(struct qmgr *q, struct qmgr_msg *m)
{
    size_t h = qmgr_hash(m->qid);
    m->hnext = q->active[h];
    q->active[h] = m;
    q->nactive++;
}

static void qmgr_active_del(struct qmgr *q, struct qmgr_msg *m)
{
    for (struct qmgr_msg **pp = &q->active[qmgr_hash(m->qid)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == m) {
            *pp = m->hnext;
            q->nactive--;
            return;
        }
    }
}

static void qmgr_msg_free(struct qmgr_msg **mp)
{
    struct qmgr_msg *m = *mp;
    if (!m)
        return;
    spool_env_free(&m->env);
    if (m->fd >= 0)
        close(m->fd);
    free(m->r);
    free(m);
    *mp = NULL;
}

/* qmgr_clean - copy s into out, replacing control characters and spaces-runs: one record line. */
static void qmgr_clean(char *out, size_t outsz, const char *s)
{
    size_t j = 0;
    for (size_t i = 0; s && s[i] && j + 1 < outsz; i++) {
        unsigned char c = (unsigned char)s[i];
        out[j++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    out[j] = '\0';
}

static void qmgr_record(struct qmgr_msg *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void qmgr_record(struct qmgr_msg *m, const char *fmt, ...)
{
    char line[QMGR_RECORD_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line)
        line[sizeof line - 1] = '\0'; /* diagnostics may be cut; the record stays valid */
    m->has_state = 1;
    int rc = spool_state_append(m->q->cfg->spool_dir, m->qid, line);
    if (rc < 0)
        log_error("qmgr state-write-failed qid=%s error=\"%s\" errno=\"%s\"", m->qid, err_str(rc),
                  strerror(errno));
}

/* ---------------------------------------------------------------- state */

static int qmgr_state_apply(void *arg, const char *rec)
{
    struct qmgr_msg *m = arg;
    unsigned long i;
    char kind, status[16], remote[128];
    int used = 0;

    m->has_state = 1;
    if (rec[0] == 'a') {
        m->attempts++;
        return 0;
    }
    if (rec[0] == 'w') {
        m->warned = 1;
        return 0;
    }
    if (sscanf(rec, "r %lu %c%n", &i, &kind, &used) != 2 || i >= m->env->nrcpt)
        return 0; /* unknown or damaged record: ignore (worst case a repeat) */
    struct qmgr_rcpt *r = &m->r[i];
    const char *rest = rec + used;
    switch (kind) {
    case 'D':
        r->state = QMGR_R_DELIVERED;
        r->recorded = 1;
        if (sscanf(rest, " %15s", status) == 1)
            memcpy(r->status, status, sizeof r->status);
        break;
    case 'F':
        r->state = QMGR_R_FAILED;
        r->recorded = 1;
        if (sscanf(rest, " %15s %127s %n", status, remote, &used) >= 2) {
            memcpy(r->status, status, sizeof r->status);
            snprintf(r->remote, sizeof r->remote, "%s", strcmp(remote, "-") ? remote : "");
            snprintf(r->diag, sizeof r->diag, "%s", rest + used);
        }
        break;
    case 'N':
        r->dsn_sent = 1;
        break;
    default:
        break;
    }
    return 0;
}

/* ---------------------------------------------------------------- results */

void qmgr_rcpt_result(struct qmgr_msg *m, size_t i, enum qmgr_rstate final_state,
                      const char *status, const char *remote, const char *diag)
{
    struct qmgr_rcpt *r = &m->r[i];
    char qa[QMGR_LOGVAL], qd[QMGR_LOGVAL];
    const char *addr = m->env->rcpt[i].addr;

    snprintf(r->status, sizeof r->status, "%s", status ? status : "");
    snprintf(r->remote, sizeof r->remote, "%s", remote ? remote : "");
    qmgr_clean(r->diag, sizeof r->diag, diag ? diag : "");
    r->state = final_state;
    if (final_state == QMGR_R_DELIVERED) {
        /* Local copies need no record while the message finishes now: their Maildir
         * names are deterministic, so a repeat after a crash is a no-op. qmgr_defer
         * records them if the message stays. Remote deliveries are recorded at once. */
        if (r->remote[0]) {
            qmgr_record(m, "r %zu D %s", i, r->status[0] ? r->status : "2.0.0");
            r->recorded = 1;
        }
        m->q->st->delivered++;
        log_info("qmgr delivered qid=%s rcpt=%s relay=%s tls=\"%s\" dsn=%s status=sent%s%s", m->qid,
                 qmgr_q(qa, sizeof qa, addr), r->remote[0] ? r->remote : "local",
                 r->remote[0] ? (m->tls[0] ? m->tls : "none") : "local",
                 r->status[0] ? r->status : "2.0.0", r->mailbox[0] ? " mailbox=" : "", r->mailbox);
    } else if (final_state == QMGR_R_FAILED) {
        qmgr_record(m, "r %zu F %s %s %s", i, r->status[0] ? r->status : "5.0.0",
                    r->remote[0] ? r->remote : "-", r->diag);
        r->recorded = 1;
        m->q->st->failed++;
        log_info("qmgr undeliverable qid=%s rcpt=%s relay=%s dsn=%s status=bounced reason=%s",
                 m->qid, qmgr_q(qa, sizeof qa, addr), r->remote[0] ? r->remote : "local", r->status,
                 qmgr_q(qd, sizeof qd, r->diag));
    } else {
        m->q->st->deferred++;
        log_info("qmgr deferred qid=%s rcpt=%s relay=%s dsn=%s status=deferred reason=%s", m->qid,
                 qmgr_q(qa, sizeof qa, addr), r->remote[0] ? r->remote : "none", r->status,
                 qmgr_q(qd, sizeof qd, r->diag));
    }
}

/* ---------------------------------------------------------------- notifications */

/* qmgr_notify - one DSN of `action` about the recipients selected by want(); marks them. */
static int qmgr_notify(struct qmgr_msg *m, enum bounce_action action)
{
    struct bounce_rcpt *br = calloc(m->env->nrcpt, sizeof *br);
    size_t *idx = calloc(m->env->nrcpt, sizeof *idx);
    size_t n = 0;
    int rc = 0;

    if (!br || !idx) {
        rc = PST_ENOMEM;
        goto out;
    }

    for (size_t i = 0; i < m->env->nrcpt; i++) {
        const struct qmgr_rcpt *r = &m->r[i];
        int pick = 0;
        if (action == BOUNCE_FAILED)
            pick = r->state == QMGR_R_FAILED && !r->dsn_sent;
        else if (action == BOUNCE_DELIVERED)
            pick = r->state == QMGR_R_DELIVERED && !r->dsn_sent &&
                   (m->env->rcpt[i].notify & SMTP_NOTIFY_SUCCESS);
        else if (action == BOUNCE_DELAYED)
            pick = r->state == QMGR_R_PENDING;
        if (!pick)
            continue;
        br[n] = (struct bounce_rcpt){
            .addr = m->env->rcpt[i].addr,
            .orcpt = m->env->rcpt[i].orcpt,
            .action = action,
            .status = r->status[0] ? r->status : (action == BOUNCE_DELAYED ? "4.0.0" : "2.0.0"),
            .remote_mta = r->remote[0] ? r->remote : NULL,
            .diagnostic = r->diag[0] ? r->diag : NULL,
            .last_attempt = (int64_t)time(NULL),
        };
        idx[n++] = i;
    }
    if (n == 0)
        goto out;
    char qid[SPOOL_QID_LEN + 1] = "";
    rc = bounce_notify(m->q->cfg->spool_dir, m->q->cfg->hostname, m->env, m->fd, (off_t)m->off,
                       m->len, br, n, qid);
    if (rc < 0 && rc != PST_ENOENT) {
        log_error("qmgr notify-failed qid=%s action=%d error=\"%s\"", m->qid, (int)action,
                  err_str(rc));
        goto out;
    }
    if (rc == 0) {
        log_info("qmgr notified qid=%s dsn_qid=%s action=%s recipients=%zu", m->qid, qid,
                 action == BOUNCE_FAILED    ? "failed"
                 : action == BOUNCE_DELAYED ? "delayed"
                                            : "delivered",
                 n);
        qmgr_schedule_pass(m->q, 0); /* deliver the notification soon */
    }
    rc = 0;
    if (action == BOUNCE_DELAYED) {
        qmgr_record(m, "w");
        m->warned = 1;
        goto out;
    }
    for (size_t k = 0; k < n; k++) {
        m->r[idx[k]].dsn_sent = 1;
        qmgr_record(m, "r %zu N", idx[k]);
    }
out:
    free(br);
    free(idx);
    return rc;
}

/* ---------------------------------------------------------------- finishing */

static int64_t qmgr_backoff(const struct cfg *cfg, unsigned attempts)
{
    int64_t d = cfg->first_retry > 0 ? cfg->first_retry : 1;
    for (unsigned i = 1; i < attempts && d < cfg->max_retry_interval; i++)
        d *= 2;
    if (d > cfg->max_retry_interval)
        d = cfg->max_retry_interval;
    int64_t jitter = d / 10;
    if (jitter > 0)
        d += (int64_t)(random() % (2 * jitter + 1)) - jitter;
    return d > 0 ? d : 1;
}

static size_t qmgr_count(const struct qmgr_msg *m, enum qmgr_rstate s)
{
    size_t n = 0;
    for (size_t i = 0; i < m->env->nrcpt; i++)
        n += m->r[i].state == s;
    return n;
}

/* qmgr_remove - every recipient is final and notified: the message leaves the spool. */
static void qmgr_remove(struct qmgr_msg *m)
{
    const char *spool = m->q->cfg->spool_dir;
    int rc = spool_remove_queue(spool, m->queue, m->qid);
    /* Inside a pass the directory is synced once per batch (qmgr_batch); a lost unlink
     * only means an idempotent repeat. */
    if (rc == 0 && m->q->in_pass)
        m->q->unsynced[m->queue] = 1;
    else if (rc == 0)
        rc = spool_sync_queue(spool, m->queue);
    if (rc < 0) {
        log_error("qmgr remove-failed qid=%s error=\"%s\" errno=\"%s\"", m->qid, err_str(rc),
                  strerror(errno));
        return;
    }
    if (m->has_state && spool_state_remove(spool, m->qid) < 0)
        log_warn("qmgr state-remove-failed qid=%s", m->qid);
    m->q->st->removed++;
    log_info("qmgr removed qid=%s", m->qid);
}

/* qmgr_defer - some recipients are pending: schedule the next attempt in deferred/. */
static void qmgr_defer(struct qmgr_msg *m)
{
    const struct cfg *cfg = m->q->cfg;
    int64_t now = (int64_t)time(NULL);
    for (size_t i = 0; i < m->env->nrcpt; i++) {
        if (m->r[i].state == QMGR_R_DELIVERED && !m->r[i].recorded) {
            qmgr_record(m, "r %zu D %s", i, m->r[i].status[0] ? m->r[i].status : "2.0.0");
            m->r[i].recorded = 1;
        }
    }
    m->attempts++;
    qmgr_record(m, "a %lld", (long long)now);
    if (cfg->delay_warning > 0 && !m->warned && now - m->env->time >= cfg->delay_warning)
        (void)qmgr_notify(m, BOUNCE_DELAYED);
    int64_t next = now + qmgr_backoff(cfg, m->attempts);
    int rc = spool_move(cfg->spool_dir, m->qid, m->queue, SPOOL_Q_DEFERRED, next);
    if (rc < 0) {
        log_error("qmgr defer-failed qid=%s error=\"%s\" errno=\"%s\"", m->qid, err_str(rc),
                  strerror(errno));
        return;
    }
    log_info("qmgr deferred-message qid=%s attempts=%u next_in=%llds pending=%zu", m->qid,
             m->attempts, (long long)(next - now), qmgr_count(m, QMGR_R_PENDING));
    qmgr_schedule_pass(m->q, next);
}

/* qmgr_finish - the attempt is over: notify, then remove or defer; frees m. */
static void qmgr_finish(struct qmgr_msg *m)
{
    struct qmgr *q = m->q;
    const struct cfg *cfg = q->cfg;
    int64_t now = (int64_t)time(NULL);

    for (size_t i = 0; i < m->env->nrcpt; i++)
        if (m->r[i].state == QMGR_R_BUSY)
            m->r[i].state = QMGR_R_PENDING; /* a job ended without a result: try again */
    if (qmgr_count(m, QMGR_R_PENDING) > 0 && now - m->env->time >= cfg->max_queue_lifetime) {
        for (size_t i = 0; i < m->env->nrcpt; i++)
            if (m->r[i].state == QMGR_R_PENDING)
                qmgr_rcpt_result(m, i, QMGR_R_FAILED, "4.4.7", m->r[i].remote,
                                 m->r[i].diag[0] ? m->r[i].diag
                                                 : "delivery time expired (max_queue_lifetime)");
    }
    int notified = qmgr_notify(m, BOUNCE_FAILED) == 0 && qmgr_notify(m, BOUNCE_DELIVERED) == 0;
    if (notified && qmgr_count(m, QMGR_R_PENDING) == 0)
        qmgr_remove(m);
    else
        qmgr_defer(m); /* pending recipients, or a notification that could not be written */
    qmgr_active_del(q, m);
    qmgr_msg_free(&m);
    if (q->backlog && !q->in_pass) {
        q->backlog = 0;
        qmgr_schedule_pass(q, 0);
    }
}

void qmgr_job_done(struct qmgr_msg *m)
{
    PST_ASSERT(m->jobs > 0);
    if (--m->jobs == 0)
        qmgr_finish(m);
}

/* ---------------------------------------------------------------- context */

int qmgr_new(const struct cfg *cfg, struct qmgr **out)
{
    struct qmgr *q;
    int rc;
    char err[512];

    *out = NULL;
    if (cfg == NULL || cfg->spool_dir == NULL || cfg->mail_dir == NULL || cfg->db_path == NULL)
        return PST_ECONFIG;
    q = calloc(1, sizeof(*q));
    if (q == NULL)
        return PST_ENOMEM;
    q->cfg = cfg;
    q->sock = -1;
    q->st = &q->sink;
    if ((rc = userdb_open(cfg->db_path, &q->udb)) != 0)
        goto fail;
    q->router = router_new(cfg, cfg->transport_map, err, sizeof err);
    if (!q->router) {
        log_error("qmgr transport-map error=\"%s\"", err);
        rc = PST_ECONFIG;
        goto fail;
    }
    rc = PST_ENOMEM;
    q->base = event_base_new();
    if (!q->base)
        goto fail;
    q->ev_pass = evtimer_new(q->base, qmgr_on_pass, q);
    q->smtp = qmgr_smtp_new(q->base, cfg);
    if (!q->ev_pass || !q->smtp)
        goto fail;
    *out = q;
    return 0;
fail:
    qmgr_free(&q);
    return rc;
}

struct event_base *qmgr_base(struct qmgr *q)
{
    return q->base;
}

void qmgr_free(struct qmgr **qp)
{
    struct qmgr *q;

    if (qp == NULL || *qp == NULL)
        return;
    q = *qp;
    /* Stop the transport first: its jobs reference active messages, which stay in their queue. */
    qmgr_smtp_free(&q->smtp);
    for (size_t h = 0; h < QMGR_HASH; h++) {
        while (q->active[h]) {
            struct qmgr_msg *m = q->active[h];
            q->active[h] = m->hnext;
            qmgr_msg_free(&m);
        }
    }
    if (q->ev_pass)
        event_free(q->ev_pass);
    if (q->base)
        event_base_free(q->base);
    router_free(&q->router);
    userdb_close(&q->udb);
    free(q);
    *qp = NULL;
}

/* ---------------------------------------------------------------- loading */

static struct qmgr_msg *qmgr_load(struct qmgr *q, const char *qid, enum spool_queue queue)
{
    const char *spool = q->cfg->spool_dir;
    struct qmgr_msg *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->q = q;
    m->fd = -1;
    m->queue = queue;
    memcpy(m->qid, qid, sizeof m->qid);
    int rc = spool_open_queue(spool, queue, qid, &m->env, &m->fd, &m->len);
    if (rc == PST_EINVAL) {
        int qrc = spool_quarantine_queue(spool, queue, qid);
        log_error("qmgr malformed qid=%s action=%s", qid,
                  qrc == 0 ? "quarantined" : "quarantine-failed");
        if (qrc == 0)
            q->st->quarantined++;
    } else if (rc != 0 && rc != PST_ENOENT) {
        log_error("qmgr open-failed qid=%s error=\"%s\" errno=\"%s\"", qid, err_str(rc),
                  strerror(errno));
    }
    if (rc != 0) {
        qmgr_msg_free(&m);
        return NULL;
    }
    off_t off = lseek(m->fd, 0, SEEK_CUR);
    m->r = calloc(m->env->nrcpt, sizeof *m->r);
    if (off < 0 || !m->r) {
        qmgr_msg_free(&m);
        return NULL;
    }
    m->off = (uint64_t)off;
    for (size_t i = 0; i < m->env->nrcpt; i++)
        m->r[i].item = -1;
    if (spool_state_read(spool, qid, qmgr_state_apply, m) < 0)
        log_warn("qmgr state-read-failed qid=%s", qid);
    return m;
}

/* ---------------------------------------------------------------- routing */

static void qmgr_route_local(struct qmgr *q, struct qmgr_msg *m, size_t i,
                             const struct router_route *rt, struct maildir_batch *b)
{
    struct qmgr_rcpt *r = &m->r[i];
    char path[PATH_MAX];
    int rc = userdb_exists(q->udb, rt->local_user);
    if (rc < 0) {
        qmgr_rcpt_result(m, i, QMGR_R_PENDING, "4.3.0", NULL, "user database unavailable");
        return;
    }
    if (rc == 0) {
        qmgr_rcpt_result(m, i, QMGR_R_FAILED, "5.1.1", NULL, "unknown user");
        return;
    }
    int n = snprintf(path, sizeof(path), "%s/%s", q->cfg->mail_dir, rt->local_user);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        qmgr_rcpt_result(m, i, QMGR_R_PENDING, "4.3.0", NULL, "mailbox path too long");
        return;
    }
    struct maildir_msg mm = {
        .maildir = path,
        .qid = m->qid,
        .qtime = m->env->time,
        .index = (unsigned)i,
        .sender = m->env->sender != NULL ? m->env->sender : "",
        .rcpt = m->env->rcpt[i].addr,
        .content_fd = m->fd,
        .content_off = m->off,
        .content_len = m->len,
    };
    rc = maildir_create(path);
    if (rc == 0)
        rc = maildir_batch_add(b, &mm);
    if (rc < 0) {
        qmgr_rcpt_result(m, i, QMGR_R_PENDING, "4.2.0", NULL, "cannot write to the mailbox");
        return;
    }
    r->state = QMGR_R_BUSY;
    r->item = rc;
    snprintf(r->mailbox, sizeof r->mailbox, "%s", rt->local_user);
}

struct qmgr_group {
    struct router_route rt;
    size_t n;
    size_t *idx;
};

static int qmgr_same_route(const struct router_route *a, const struct router_route *b)
{
    return a->transport == b->transport && a->no_mx == b->no_mx && a->port == b->port &&
           strcmp(a->nexthop, b->nexthop) == 0 && strcmp(a->tls, b->tls) == 0 &&
           strcmp(a->auth, b->auth) == 0;
}

/* qmgr_route_msg - route every pending recipient: local ones into b, remote ones to the transport.
 */
static void qmgr_route_msg(struct qmgr *q, struct qmgr_msg *m, struct maildir_batch *b)
{
    struct qmgr_group groups[QMGR_ROUTE_GROUPS];
    size_t ngroups = 0;
    size_t nr = m->env->nrcpt;
    size_t *idxbuf = calloc(nr, sizeof *idxbuf);
    int *grp = calloc(nr, sizeof *grp);

    if (!idxbuf || !grp)
        goto out; /* stays pending: retried at the next attempt */
    for (size_t i = 0; i < nr; i++) {
        grp[i] = -1;
        if (m->r[i].state != QMGR_R_PENDING)
            continue;
        struct router_route rt;
        if (router_route(q->router, m->env->rcpt[i].addr, &rt) < 0) {
            qmgr_rcpt_result(m, i, QMGR_R_FAILED, "5.1.3", NULL, "cannot route this address");
            continue;
        }
        if (rt.transport == ROUTER_ERROR) {
            qmgr_rcpt_result(m, i, QMGR_R_FAILED, "5.1.1", NULL, rt.error);
            continue;
        }
        if (rt.transport == ROUTER_LOCAL) {
            qmgr_route_local(q, m, i, &rt, b);
            continue;
        }
        size_t g = 0;
        while (g < ngroups && !qmgr_same_route(&groups[g].rt, &rt))
            g++;
        if (g == QMGR_ROUTE_GROUPS)
            continue; /* extremely many routes: the rest waits for the next attempt */
        if (g == ngroups) {
            groups[g].rt = rt;
            groups[g].n = 0;
            ngroups++;
        }
        grp[i] = (int)g;
        groups[g].n++;
        m->r[i].state = QMGR_R_BUSY;
    }
    /* Lay out each group's recipient indices contiguously in idxbuf. */
    size_t pos = 0;
    for (size_t g = 0; g < ngroups; g++) {
        groups[g].idx = idxbuf + pos;
        pos += groups[g].n;
        groups[g].n = 0;
    }
    for (size_t i = 0; i < nr; i++)
        if (grp[i] >= 0)
            groups[grp[i]].idx[groups[grp[i]].n++] = i;
    for (size_t g = 0; g < ngroups; g++) {
        if (qmgr_smtp_submit(q->smtp, m, &groups[g].rt, groups[g].idx, groups[g].n) < 0) {
            for (size_t k = 0; k < groups[g].n; k++)
                qmgr_rcpt_result(m, groups[g].idx[k], QMGR_R_PENDING, "4.3.0", NULL,
                                 "cannot start delivery");
        }
    }
out:
    free(idxbuf);
    free(grp);
}

/* qmgr_local_results - read the batch outcome of every local recipient of m. */
static void qmgr_local_results(struct qmgr_msg *m, const struct maildir_batch *b)
{
    for (size_t i = 0; i < m->env->nrcpt; i++) {
        struct qmgr_rcpt *r = &m->r[i];
        if (r->item < 0)
            continue;
        uint64_t size = 0;
        int rc = maildir_batch_result(b, (size_t)r->item, &size, NULL);
        r->item = -1;
        if (rc == 0)
            qmgr_rcpt_result(m, i, QMGR_R_DELIVERED, "2.0.0", NULL, NULL);
        else
            qmgr_rcpt_result(m, i, QMGR_R_PENDING, "4.2.0", NULL, "mailbox write failed");
    }
}

/* ---------------------------------------------------------------- one pass */

struct qmgr_due {
    char qid[SPOOL_QID_LEN + 1];
    enum spool_queue queue;
};

struct qmgr_scan {
    struct qmgr *q;
    enum spool_queue queue;
    int64_t now;
    int64_t next_due; /* earliest future mtime in deferred/, 0 = none */
    struct qmgr_due *v;
    size_t n, cap;
};

static int qmgr_collect(void *arg, const char *qid, int64_t mtime)
{
    struct qmgr_scan *s = arg;
    if (s->queue == SPOOL_Q_DEFERRED && mtime > s->now) {
        if (s->next_due == 0 || mtime < s->next_due)
            s->next_due = mtime;
        return 0;
    }
    if (qmgr_active_find(s->q, qid))
        return 0;
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 256;
        void *nv = realloc(s->v, ncap * sizeof(*s->v));
        if (nv == NULL)
            return 1; /* stop; the rest waits for the next pass */
        s->v = nv;
        s->cap = ncap;
    }
    memcpy(s->v[s->n].qid, qid, SPOOL_QID_LEN + 1);
    s->v[s->n].queue = s->queue;
    s->n++;
    return 0;
}

static int qmgr_cmp_due(const void *a, const void *b)
{
    return strcmp(((const struct qmgr_due *)a)->qid, ((const struct qmgr_due *)b)->qid);
}

/* qmgr_batch - load, route and locally deliver due[0..n) as one durable batch. */
static void qmgr_batch(struct qmgr *q, const struct qmgr_due *due, size_t n)
{
    struct maildir_batch *b = maildir_batch_new(q->cfg->hostname);
    struct qmgr_msg **msgs = calloc(n ? n : 1, sizeof *msgs);
    if (!b || !msgs) {
        log_error("qmgr batch-failed error=\"out of memory\"");
        maildir_batch_free(&b);
        free(msgs);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct qmgr_msg *m = qmgr_load(q, due[i].qid, due[i].queue);
        if (!m)
            continue;
        q->st->messages++;
        qmgr_active_add(q, m);
        m->jobs++; /* the pass itself holds the message until its local part is done */
        msgs[i] = m;
        qmgr_route_msg(q, m, b);
    }
    int rc = maildir_batch_commit(b);
    if (rc != 0)
        log_error("qmgr maildir-commit error=\"%s\" errno=\"%s\"", err_str(rc), strerror(errno));
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i])
            continue;
        qmgr_local_results(msgs[i], b);
        qmgr_job_done(msgs[i]); /* finishes the message unless remote jobs are running */
    }
    for (int k = 0; k < 3; k++) {
        if (q->unsynced[k] && spool_sync_queue(q->cfg->spool_dir, (enum spool_queue)k) < 0)
            log_error("qmgr spool-sync-failed queue=%s errno=\"%s\"",
                      spool_queue_name((enum spool_queue)k), strerror(errno));
        q->unsynced[k] = 0;
    }
    maildir_batch_free(&b);
    free(msgs);
}

static int qmgr_scan_queue(struct qmgr *q, struct qmgr_scan *s, enum spool_queue queue)
{
    s->queue = queue;
    int rc = spool_scan_queue(q->cfg->spool_dir, queue, qmgr_collect, s);
    if (rc != 0 && rc != PST_ENOENT) {
        log_error("qmgr scan-failed queue=%s error=\"%s\" errno=\"%s\"", spool_queue_name(queue),
                  err_str(rc), strerror(errno));
        return rc;
    }
    return 0;
}

int qmgr_deliver_pass(struct qmgr *q, struct qmgr_pass_stats *stp)
{
    struct qmgr_pass_stats local;
    struct qmgr_scan s = {.q = q, .now = (int64_t)time(NULL)};
    int rc;

    q->st = stp != NULL ? stp : &local;
    memset(q->st, 0, sizeof(*q->st));
    q->in_pass = 1;
    if ((rc = qmgr_scan_queue(q, &s, SPOOL_Q_INCOMING)) != 0 ||
        (rc = qmgr_scan_queue(q, &s, SPOOL_Q_DEFERRED)) != 0)
        goto out;
    if (s.n > 1)
        qsort(s.v, s.n, sizeof(*s.v), qmgr_cmp_due);
    size_t batch = q->cfg->delivery_batch > 0 ? (size_t)q->cfg->delivery_batch : 1;
    size_t i = 0;
    while (i < s.n) {
        if (q->nactive >= QMGR_MAX_ACTIVE) {
            q->backlog = 1; /* resumed when messages finish */
            break;
        }
        size_t room = QMGR_MAX_ACTIVE - q->nactive;
        size_t k = s.n - i < batch ? s.n - i : batch;
        if (k > room)
            k = room;
        qmgr_batch(q, s.v + i, k);
        i += k;
    }
    if (s.next_due > 0)
        qmgr_schedule_pass(q, s.next_due);
    if (q->st->messages > 0)
        log_debug("qmgr pass messages=%zu delivered=%zu failed=%zu deferred=%zu removed=%zu "
                  "quarantined=%zu active=%zu",
                  q->st->messages, q->st->delivered, q->st->failed, q->st->deferred, q->st->removed,
                  q->st->quarantined, q->nactive);
out:
    q->in_pass = 0;
    q->st = &q->sink;
    free(s.v);
    return rc;
}

/* ---------------------------------------------------------------- event loop */

static void qmgr_schedule_pass(struct qmgr *q, int64_t when)
{
    int64_t now = (int64_t)time(NULL);
    if (when < now)
        when = now;
    if (q->pass_at != 0 && q->pass_at <= when)
        return; /* an earlier pass is already due */
    q->pass_at = when;
    struct timeval tv = {(time_t)(when - now), when == now ? 1000 : 0};
    event_add(q->ev_pass, &tv);
}

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
    if (qmgr_deliver_pass(q, NULL) != 0)
        log_warn("qmgr pass-failed");
}

static void qmgr_on_pass(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr *q = arg;
    q->pass_at = 0;
    qmgr_pass_logged(q);
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

    log_info("qmgr stopping signal=%d active=%zu", (int)sig, q->nactive);
    event_base_loopbreak(q->base);
}

int qmgr_run(const struct cfg *cfg)
{
    struct event *ev_sock = NULL, *ev_timer = NULL, *ev_term = NULL, *ev_int = NULL;
    struct timeval tv = {.tv_sec = cfg->queue_scan_interval > 0 ? cfg->queue_scan_interval : 60};
    struct qmgr *q = NULL;
    int rc;

    srandom((unsigned)time(NULL) ^ (unsigned)getpid());
    signal(SIGPIPE, SIG_IGN);
    if ((rc = spool_init(cfg->spool_dir)) != 0) {
        log_error("qmgr start-failed reason=\"spool init: %s\" errno=\"%s\"", err_str(rc),
                  strerror(errno));
        return rc;
    }
    if ((rc = qmgr_new(cfg, &q)) != 0) {
        log_error("qmgr start-failed reason=\"%s\"", err_str(rc));
        return rc;
    }
    if ((rc = qmgr_bind(q)) != 0) {
        log_error("qmgr start-failed reason=\"bind %s/%s: %s\"", cfg->run_dir, QMGR_SOCK_NAME,
                  strerror(errno));
        goto out;
    }
    rc = PST_ENOMEM;
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
    qmgr_free(&q);
    return rc;
}
