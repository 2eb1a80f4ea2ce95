/*
 * spool.c - the durable message spool (format and layout: see spool.h).
 *
 * Writing. spool_writer_open() picks a queue id, creates tmp/<qid> with
 * O_CREAT|O_EXCL (mode 0600) and buffers the envelope header; content is
 * appended through a 64 KiB buffer. A message becomes visible to readers
 * only by an atomic rename (renameat2 RENAME_NOREPLACE, or link+unlink where
 * the file system lacks it) into incoming/, after its data is on stable
 * storage; the rename is made durable by fsync of incoming/. An existing
 * incoming/<qid> is never replaced: that is PST_EEXIST.
 *
 * Envelope values. Every value is written %XX-escaped for bytes < 0x21,
 * '%' and 0x7f, and every value is decoded on reading. This is a superset
 * of the rule in spool.h (addresses normally contain none of these bytes,
 * so they appear unchanged) and it means no value can ever split a line.
 *
 * Group commit. spool_committer runs one thread. The loop thread appends
 * finished writers to `pending`; the thread takes the whole pending list as
 * one batch, flushes each file, makes the batch durable with one syncfs(2)
 * on the spool directory (fdatasync(2) for a batch of one), renames each
 * file into incoming/, fsyncs incoming/ once, then moves the tickets to
 * `done` and writes a byte to a pipe. A libevent read event on the pipe
 * runs the callbacks in the loop thread. Writers queued while a sync runs
 * form the next batch. A ticket's `detached` flag is only touched in the
 * loop thread; the committer thread touches only writer/err.
 *
 * Reading. spool_open() parses the envelope strictly: the version line
 * first, known keys only, single-valued keys at most once, notify/orcpt only
 * after a rcpt, at least one rcpt, and a "data" line before the end of the
 * file. Anything else is PST_EINVAL (the caller quarantines the file).
 *
 * Failure policy: I/O errors are returned as PST_EIO with errno preserved
 * where possible; malformed files are PST_EINVAL; nothing here aborts,
 * except PST_ASSERT on internal invariants (e.g. a failed mutex call).
 */
#include "spool.h"

#include "fsutil.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"

#define SPOOL_BUF_SIZE (64 * 1024)         /* writer buffer */
#define SPOOL_LINE_MAX (16 * 1024)         /* one envelope line, escaped, incl. LF */
#define SPOOL_HEADER_MAX (8 * 1024 * 1024) /* whole envelope */
#define SPOOL_RCPT_MAX 100000              /* recipients in one file */
#define SPOOL_STALE_TMP_SECS (24 * 60 * 60)
#define SPOOL_OPEN_TRIES 16 /* qid collisions tolerated at open */
#define SPOOL_MAGIC "postern-spool 1"

#define SPOOL_DIR_TMP "tmp"
#define SPOOL_DIR_INCOMING "incoming"
#define SPOOL_DIR_CORRUPT "corrupt"
#define SPOOL_DIR_DEFERRED "deferred"
#define SPOOL_DIR_HOLD "hold"
#define SPOOL_DIR_STATE "state"
#define SPOOL_STATE_LINE_MAX 2048

/* NOTIFY keywords, RFC 3461 4.1; bit values equal SMTP_NOTIFY_* in smtp/smtp_parser.h. */
static const struct {
    unsigned bit;
    const char *name;
} spool_notify_names[] = {
    {1u << 0, "NEVER"},
    {1u << 1, "SUCCESS"},
    {1u << 2, "FAILURE"},
    {1u << 3, "DELAY"},
};

struct spool_writer {
    char qid[SPOOL_QID_LEN + 1];
    char *spool_dir; /* owned copy */
    int fd;
    int err; /* sticky: first error */
    size_t blen;
    unsigned char *buf; /* SPOOL_BUF_SIZE */
};

struct spool_commit_ticket {
    struct spool_commit_ticket *next;
    struct spool_writer *w; /* owned until the committer thread has finished with it */
    spool_commit_cb cb;
    void *arg;
    int err;
    int detached; /* loop thread only */
    char qid[SPOOL_QID_LEN + 1];
};

struct spool_committer {
    const char *spool_dir; /* borrowed */
    struct event_base *base;
    struct event *ev;
    int pipe_rd, pipe_wr;
    int dir_fd;      /* spool_dir, for syncfs */
    int incoming_fd; /* incoming/, for renames and fsync */
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;                                        /* under mu */
    struct spool_commit_ticket *pending, **pending_tail; /* under mu */
    struct spool_commit_ticket *done, **done_tail;       /* under mu */
};

static atomic_uint spool_counter;

/* ---------------------------------------------------------------- helpers */

static int spool_path(char *out, size_t outsz, const char *dir, const char *sub, const char *name)
{
    int n;

    if (name != NULL)
        n = snprintf(out, outsz, "%s/%s/%s", dir, sub, name);
    else
        n = snprintf(out, outsz, "%s/%s", dir, sub);
    if (n < 0 || (size_t)n >= outsz)
        return PST_ELIMIT;
    return 0;
}

static char *spool_strdup(const char *s)
{
    return s == NULL ? NULL : strdup(s);
}

static void spool_x_free(char **p)
{
    free(*p);
    *p = NULL;
}

static int spool_fsync_sub(const char *spool_dir, const char *sub)
{
    char path[PATH_MAX];

    if (spool_path(path, sizeof(path), spool_dir, sub, NULL) != 0)
        return PST_ELIMIT;
    return fsu_fsync_dir(path);
}

int spool_qid_valid(const char *s)
{
    size_t i;

    if (s == NULL)
        return 0;
    for (i = 0; i < SPOOL_QID_LEN; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')))
            return 0;
    }
    return s[SPOOL_QID_LEN] == '\0';
}

/* spool_qid_new - 8 hex of seconds, 5 of microseconds, 3 of counter mixed with pid. */
static void spool_qid_new(char out[SPOOL_QID_LEN + 1], int64_t *when)
{
    struct timeval tv;
    unsigned cnt = atomic_fetch_add(&spool_counter, 1);
    unsigned mix = (cnt + (unsigned)getpid() * 2654435761u) & 0xfffu;

    gettimeofday(&tv, NULL);
    snprintf(out, SPOOL_QID_LEN + 1, "%08" PRIX32 "%05X%03X", (uint32_t)tv.tv_sec,
             (unsigned)tv.tv_usec & 0xfffffu, mix);
    *when = (int64_t)tv.tv_sec;
}

/* ---------------------------------------------------------------- envelope */

struct spool_env *spool_env_new(void)
{
    return calloc(1, sizeof(struct spool_env));
}

void spool_env_free(struct spool_env **envp)
{
    struct spool_env *env;
    size_t i;

    if (envp == NULL || *envp == NULL)
        return;
    env = *envp;
    for (i = 0; i < env->nrcpt; i++) {
        free(env->rcpt[i].addr);
        free(env->rcpt[i].orcpt);
    }
    free(env->rcpt);
    free(env->sender);
    free(env->client);
    free(env->helo);
    free(env->proto);
    free(env->auth);
    free(env->envid);
    free(env);
    *envp = NULL;
}

int spool_env_add_rcpt(struct spool_env *env, const char *addr, const char *orcpt, unsigned notify)
{
    struct spool_rcpt *r;

    if (env == NULL || addr == NULL)
        return PST_EINVAL;
    if (env->nrcpt >= SPOOL_RCPT_MAX)
        return PST_ELIMIT;
    r = realloc(env->rcpt, (env->nrcpt + 1) * sizeof(*r));
    if (r == NULL)
        return PST_ENOMEM;
    env->rcpt = r;
    r = &env->rcpt[env->nrcpt];
    r->addr = strdup(addr);
    r->orcpt = spool_strdup(orcpt);
    r->notify = notify;
    if (r->addr == NULL || (orcpt != NULL && r->orcpt == NULL)) {
        spool_x_free(&r->addr);
        spool_x_free(&r->orcpt);
        return PST_ENOMEM;
    }
    env->nrcpt++;
    return 0;
}

/* ---------------------------------------------------------------- writer */

static int spool_flush(struct spool_writer *w)
{
    size_t off = 0;

    while (off < w->blen) {
        ssize_t n = write(w->fd, w->buf + off, w->blen - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            w->err = PST_EIO;
            return PST_EIO;
        }
        off += (size_t)n;
    }
    w->blen = 0;
    return 0;
}

static int spool_put(struct spool_writer *w, const void *data, size_t len)
{
    const unsigned char *p = data;

    if (w->err != 0)
        return w->err;
    while (len > 0) {
        size_t room = SPOOL_BUF_SIZE - w->blen;
        size_t n = len < room ? len : room;
        memcpy(w->buf + w->blen, p, n);
        w->blen += n;
        p += n;
        len -= n;
        if (w->blen == SPOOL_BUF_SIZE && spool_flush(w) != 0)
            return w->err;
    }
    return 0;
}

static int spool_put_str(struct spool_writer *w, const char *s)
{
    return spool_put(w, s, strlen(s));
}

static int spool_needs_escape(unsigned char c)
{
    return c < 0x21 || c == '%' || c == 0x7f;
}

/* spool_put_kv - write "key value\n" with value %XX-escaped. */
static int spool_put_kv(struct spool_writer *w, const char *key, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *v = (const unsigned char *)value;
    int rc;

    if ((rc = spool_put_str(w, key)) != 0 || (rc = spool_put(w, " ", 1)) != 0)
        return rc;
    for (; *v != '\0'; v++) {
        if (spool_needs_escape(*v)) {
            char e[3] = {'%', hex[*v >> 4], hex[*v & 15]};
            rc = spool_put(w, e, 3);
        } else {
            rc = spool_put(w, v, 1);
        }
        if (rc != 0)
            return rc;
    }
    return spool_put(w, "\n", 1);
}

static int spool_put_notify(struct spool_writer *w, unsigned notify)
{
    char val[64];
    size_t i, len = 0;

    val[0] = '\0';
    for (i = 0; i < PST_ARRAY_LEN(spool_notify_names); i++) {
        if (!(notify & spool_notify_names[i].bit))
            continue;
        int n = snprintf(val + len, sizeof(val) - len, "%s%s", len ? "," : "",
                         spool_notify_names[i].name);
        if (n < 0 || (size_t)n >= sizeof(val) - len)
            return PST_ELIMIT;
        len += (size_t)n;
    }
    return spool_put_kv(w, "notify", val);
}

static int spool_put_header(struct spool_writer *w, const struct spool_env *env)
{
    static const char *const body_names[] = {NULL, "7BIT", "8BITMIME"};
    static const char *const ret_names[] = {NULL, "FULL", "HDRS"};
    char num[32];
    size_t i;
    int rc = 0;

    if (env->body < 0 || env->body > 2 || env->ret < 0 || env->ret > 2 || env->nrcpt == 0)
        return PST_EINVAL;
    snprintf(num, sizeof(num), "%" PRId64, env->time);
    if ((rc = spool_put_str(w, SPOOL_MAGIC "\n")) != 0 || (rc = spool_put_kv(w, "qid", w->qid)) ||
        (rc = spool_put_kv(w, "time", num)) ||
        (rc = spool_put_kv(w, "from", env->sender ? env->sender : "")))
        return rc;
    if (env->client && (rc = spool_put_kv(w, "client", env->client)))
        return rc;
    if (env->helo && (rc = spool_put_kv(w, "helo", env->helo)))
        return rc;
    if (env->proto && (rc = spool_put_kv(w, "proto", env->proto)))
        return rc;
    if (env->auth && (rc = spool_put_kv(w, "auth", env->auth)))
        return rc;
    if (env->body && (rc = spool_put_kv(w, "body", body_names[env->body])))
        return rc;
    if (env->smtputf8 && (rc = spool_put_kv(w, "smtputf8", "1")))
        return rc;
    if (env->envid && (rc = spool_put_kv(w, "envid", env->envid)))
        return rc;
    if (env->ret && (rc = spool_put_kv(w, "ret", ret_names[env->ret])))
        return rc;
    for (i = 0; i < env->nrcpt; i++) {
        const struct spool_rcpt *r = &env->rcpt[i];
        if (r->addr == NULL || r->addr[0] == '\0')
            return PST_EINVAL;
        if ((rc = spool_put_kv(w, "rcpt", r->addr)) != 0)
            return rc;
        if (r->notify && (rc = spool_put_notify(w, r->notify)) != 0)
            return rc;
        if (r->orcpt && (rc = spool_put_kv(w, "orcpt", r->orcpt)) != 0)
            return rc;
    }
    return spool_put_str(w, "data\n");
}

static void spool_writer_free(struct spool_writer **wp)
{
    struct spool_writer *w = *wp;

    if (w == NULL)
        return;
    if (w->fd >= 0)
        close(w->fd);
    free(w->buf);
    free(w->spool_dir);
    free(w);
    *wp = NULL;
}

static int spool_tmp_create(struct spool_writer *w, struct spool_env *env)
{
    char path[PATH_MAX], ipath[PATH_MAX];
    int tries;

    for (tries = 0; tries < SPOOL_OPEN_TRIES; tries++) {
        spool_qid_new(w->qid, &env->time);
        if (spool_path(path, sizeof(path), w->spool_dir, SPOOL_DIR_TMP, w->qid) != 0 ||
            spool_path(ipath, sizeof(ipath), w->spool_dir, SPOOL_DIR_INCOMING, w->qid) != 0)
            return PST_ELIMIT;
        if (access(ipath, F_OK) == 0)
            continue; /* collides with a committed message */
        w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (w->fd >= 0)
            return 0;
        if (errno != EEXIST)
            return PST_EIO;
    }
    errno = EEXIST;
    return PST_EIO;
}

int spool_writer_open(const char *spool_dir, struct spool_env *env, struct spool_writer **out)
{
    struct spool_writer *w;
    int rc;

    *out = NULL;
    if (spool_dir == NULL || env == NULL)
        return PST_EINVAL;
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        return PST_ENOMEM;
    w->fd = -1;
    w->spool_dir = strdup(spool_dir);
    w->buf = malloc(SPOOL_BUF_SIZE);
    if (w->spool_dir == NULL || w->buf == NULL) {
        spool_writer_free(&w);
        return PST_ENOMEM;
    }
    if ((rc = spool_tmp_create(w, env)) != 0) {
        spool_writer_free(&w);
        return rc;
    }
    memcpy(env->qid, w->qid, sizeof(env->qid));
    if ((rc = spool_put_header(w, env)) != 0) {
        spool_writer_abort(&w);
        return rc;
    }
    *out = w;
    return 0;
}

const char *spool_writer_qid(const struct spool_writer *w)
{
    return w->qid;
}

int spool_writer_write(struct spool_writer *w, const void *data, size_t len)
{
    if (w->err != 0)
        return w->err;
    if (len >= SPOOL_BUF_SIZE) {
        /* large block: bypass the buffer */
        if (spool_flush(w) != 0)
            return w->err;
        const unsigned char *p = data;
        while (len > 0) {
            ssize_t n = write(w->fd, p, len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                w->err = PST_EIO;
                return w->err;
            }
            p += n;
            len -= (size_t)n;
        }
        return 0;
    }
    return spool_put(w, data, len);
}

static void spool_unlink_tmp(const struct spool_writer *w)
{
    char path[PATH_MAX];
    int saved = errno;

    if (spool_path(path, sizeof(path), w->spool_dir, SPOOL_DIR_TMP, w->qid) == 0)
        (void)unlink(path);
    errno = saved;
}

void spool_writer_abort(struct spool_writer **wp)
{
    if (wp == NULL || *wp == NULL)
        return;
    spool_unlink_tmp(*wp);
    spool_writer_free(wp);
}

/* spool_publish - rename tmp/<qid> to incoming/<qid>, never replacing an existing file. */
static int spool_publish(const struct spool_writer *w)
{
    char from[PATH_MAX], to[PATH_MAX];

    if (spool_path(from, sizeof(from), w->spool_dir, SPOOL_DIR_TMP, w->qid) != 0 ||
        spool_path(to, sizeof(to), w->spool_dir, SPOOL_DIR_INCOMING, w->qid) != 0)
        return PST_ELIMIT;
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno == EEXIST)
        return PST_EEXIST;
    if (errno != EINVAL && errno != ENOSYS)
        return PST_EIO;
    /* file system without RENAME_NOREPLACE */
    if (link(from, to) != 0)
        return errno == EEXIST ? PST_EEXIST : PST_EIO;
    (void)unlink(from);
    return 0;
}

/* spool_unpublish - best effort: a commit that failed after the rename must not be delivered. */
static void spool_unpublish(const struct spool_writer *w)
{
    char to[PATH_MAX];
    int saved = errno;

    if (spool_path(to, sizeof(to), w->spool_dir, SPOOL_DIR_INCOMING, w->qid) == 0)
        (void)unlink(to);
    errno = saved;
}

int spool_writer_commit_sync(struct spool_writer **wp)
{
    struct spool_writer *w = *wp;
    int rc;

    if (w == NULL)
        return PST_EINVAL;
    rc = w->err;
    if (rc == 0)
        rc = spool_flush(w);
    if (rc == 0 && fdatasync(w->fd) != 0)
        rc = PST_EIO;
    if (rc == 0)
        rc = spool_publish(w);
    if (rc != 0) {
        spool_writer_abort(wp);
        return rc;
    }
    if ((rc = spool_fsync_sub(w->spool_dir, SPOOL_DIR_INCOMING)) != 0) {
        spool_unpublish(w);
        spool_writer_free(wp);
        return rc;
    }
    spool_writer_free(wp);
    return 0;
}

/* ---------------------------------------------------------------- group commit */

static void spool_lock(pthread_mutex_t *mu)
{
    PST_ASSERT(pthread_mutex_lock(mu) == 0);
}

static void spool_unlock(pthread_mutex_t *mu)
{
    PST_ASSERT(pthread_mutex_unlock(mu) == 0);
}

/* spool_batch_commit - committer thread: make every ticket's file durable in incoming/. */
static void spool_batch_commit(struct spool_committer *c, struct spool_commit_ticket *batch)
{
    struct spool_commit_ticket *t, *last = NULL;
    size_t nok = 0;
    int rc = 0;

    for (t = batch; t != NULL; t = t->next) {
        t->err = t->w->err;
        if (t->err == 0)
            t->err = spool_flush(t->w);
        if (t->err == 0) {
            nok++;
            last = t;
        }
    }
    if (nok == 1 && fdatasync(last->w->fd) != 0)
        rc = PST_EIO;
    else if (nok > 1 && syncfs(c->dir_fd) != 0)
        rc = PST_EIO;
    for (t = batch; t != NULL; t = t->next) {
        if (t->err == 0 && rc != 0)
            t->err = rc;
        if (t->err == 0)
            t->err = spool_publish(t->w);
        if (t->err != 0)
            spool_unlink_tmp(t->w);
    }
    if (nok > 0 && fsync(c->incoming_fd) != 0) {
        for (t = batch; t != NULL; t = t->next) {
            if (t->err == 0) {
                t->err = PST_EIO;
                spool_unpublish(t->w);
            }
        }
    }
    for (t = batch; t != NULL; t = t->next)
        spool_writer_free(&t->w);
}

static void *spool_committer_main(void *arg)
{
    struct spool_committer *c = arg;

    for (;;) {
        struct spool_commit_ticket *batch, *t;

        spool_lock(&c->mu);
        while (c->pending == NULL && !c->stopping)
            PST_ASSERT(pthread_cond_wait(&c->cv, &c->mu) == 0);
        batch = c->pending;
        c->pending = NULL;
        c->pending_tail = &c->pending;
        spool_unlock(&c->mu);
        if (batch == NULL)
            return NULL; /* stopping and drained */

        spool_batch_commit(c, batch);

        spool_lock(&c->mu);
        for (t = batch; t->next != NULL; t = t->next)
            ;
        *c->done_tail = batch;
        c->done_tail = &t->next;
        spool_unlock(&c->mu);
        for (;;) {
            ssize_t n = write(c->pipe_wr, "x", 1);
            if (n < 0 && errno == EINTR)
                continue;
            break; /* EAGAIN: the pipe is full, the loop will wake anyway */
        }
    }
}

/* spool_committer_deliver - loop thread: run callbacks of finished tickets. */
static void spool_committer_deliver(struct spool_committer *c)
{
    struct spool_commit_ticket *list, *t;

    spool_lock(&c->mu);
    list = c->done;
    c->done = NULL;
    c->done_tail = &c->done;
    spool_unlock(&c->mu);
    while ((t = list) != NULL) {
        list = t->next;
        if (!t->detached && t->cb != NULL)
            t->cb(t->arg, t->err, t->qid);
        free(t);
    }
}

static void spool_committer_on_pipe(evutil_socket_t fd, short what, void *arg)
{
    char drain[256];

    while (read(fd, drain, sizeof(drain)) > 0)
        ;
    spool_committer_deliver(arg);
}

static void spool_committer_close(struct spool_committer *c)
{
    if (c->ev != NULL)
        event_free(c->ev);
    if (c->pipe_rd >= 0)
        close(c->pipe_rd);
    if (c->pipe_wr >= 0)
        close(c->pipe_wr);
    if (c->dir_fd >= 0)
        close(c->dir_fd);
    if (c->incoming_fd >= 0)
        close(c->incoming_fd);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

struct spool_committer *spool_committer_new(struct event_base *base, const char *spool_dir)
{
    struct spool_committer *c;
    char path[PATH_MAX];
    int p[2];

    if (base == NULL || spool_dir == NULL)
        return NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->base = base;
    c->spool_dir = spool_dir;
    c->pipe_rd = c->pipe_wr = c->dir_fd = c->incoming_fd = -1;
    c->pending_tail = &c->pending;
    c->done_tail = &c->done;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
        goto fail;
    c->pipe_rd = p[0];
    c->pipe_wr = p[1];
    c->dir_fd = open(spool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (spool_path(path, sizeof(path), spool_dir, SPOOL_DIR_INCOMING, NULL) != 0)
        goto fail;
    c->incoming_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (c->dir_fd < 0 || c->incoming_fd < 0)
        goto fail;
    c->ev = event_new(base, c->pipe_rd, EV_READ | EV_PERSIST, spool_committer_on_pipe, c);
    if (c->ev == NULL || event_add(c->ev, NULL) != 0)
        goto fail;
    if (pthread_create(&c->thread, NULL, spool_committer_main, c) != 0)
        goto fail;
    c->thread_started = 1;
    return c;
fail:
    spool_committer_close(c);
    return NULL;
}

void spool_committer_free(struct spool_committer **cp)
{
    struct spool_committer *c;

    if (cp == NULL || *cp == NULL)
        return;
    c = *cp;
    if (c->thread_started) {
        spool_lock(&c->mu);
        c->stopping = 1;
        PST_ASSERT(pthread_cond_signal(&c->cv) == 0);
        spool_unlock(&c->mu);
        pthread_join(c->thread, NULL);
    }
    spool_committer_deliver(c);
    spool_committer_close(c);
    *cp = NULL;
}

struct spool_commit_ticket *spool_commit(struct spool_committer *c, struct spool_writer **w,
                                         spool_commit_cb cb, void *arg)
{
    struct spool_commit_ticket *t;

    if (c == NULL || w == NULL || *w == NULL)
        return NULL;
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        spool_writer_abort(w);
        return NULL;
    }
    t->w = *w;
    *w = NULL;
    t->cb = cb;
    t->arg = arg;
    memcpy(t->qid, t->w->qid, sizeof(t->qid));
    spool_lock(&c->mu);
    *c->pending_tail = t;
    c->pending_tail = &t->next;
    PST_ASSERT(pthread_cond_signal(&c->cv) == 0);
    spool_unlock(&c->mu);
    return t;
}

void spool_commit_detach(struct spool_commit_ticket *t)
{
    if (t != NULL)
        t->detached = 1;
}

/* ---------------------------------------------------------------- reading */

static const char *spool_queue_dir(enum spool_queue q)
{
    switch (q) {
    case SPOOL_Q_DEFERRED:
        return SPOOL_DIR_DEFERRED;
    case SPOOL_Q_HOLD:
        return SPOOL_DIR_HOLD;
    default:
        return SPOOL_DIR_INCOMING;
    }
}

const char *spool_queue_name(enum spool_queue q)
{
    return spool_queue_dir(q);
}

int spool_scan_queue(const char *spool_dir, enum spool_queue q, spool_scan_time_cb cb, void *arg)
{
    char path[PATH_MAX];
    struct dirent *de;
    struct stat st;
    DIR *d;
    int rc = 0;

    if (spool_path(path, sizeof(path), spool_dir, spool_queue_dir(q), NULL) != 0)
        return PST_ELIMIT;
    d = opendir(path);
    if (d == NULL)
        return errno == ENOENT ? PST_ENOENT : PST_EIO;
    for (;;) {
        errno = 0;
        de = readdir(d);
        if (de == NULL) {
            if (errno != 0)
                rc = PST_EIO;
            break;
        }
        if (!spool_qid_valid(de->d_name))
            continue; /* ".", "..", editor leftovers: not ours */
        /* mtime is the next attempt time in deferred/ (set by spool_move); elsewhere unused. */
        int64_t mtime = 0;
        if (q == SPOOL_Q_DEFERRED && fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
            mtime = (int64_t)st.st_mtime;
        if (cb(arg, de->d_name, mtime) != 0)
            break;
    }
    closedir(d);
    return rc;
}

struct spool_scan_adapter {
    spool_scan_cb cb;
    void *arg;
};

static int spool_scan_adapt(void *arg, const char *qid, int64_t mtime)
{
    struct spool_scan_adapter *a = arg;
    return a->cb(a->arg, qid);
}

int spool_scan(const char *spool_dir, spool_scan_cb cb, void *arg)
{
    struct spool_scan_adapter a = {cb, arg};
    return spool_scan_queue(spool_dir, SPOOL_Q_INCOMING, spool_scan_adapt, &a);
}

int spool_locate(const char *spool_dir, const char *qid, enum spool_queue *q)
{
    static const enum spool_queue order[] = {SPOOL_Q_INCOMING, SPOOL_Q_DEFERRED, SPOOL_Q_HOLD};
    char path[PATH_MAX];

    if (!spool_qid_valid(qid))
        return PST_EINVAL;
    for (size_t i = 0; i < PST_ARRAY_LEN(order); i++) {
        if (spool_path(path, sizeof(path), spool_dir, spool_queue_dir(order[i]), qid) != 0)
            return PST_ELIMIT;
        if (access(path, F_OK) == 0) {
            *q = order[i];
            return 0;
        }
    }
    return PST_ENOENT;
}

int spool_move(const char *spool_dir, const char *qid, enum spool_queue from, enum spool_queue to,
               int64_t mtime)
{
    char src[PATH_MAX], dst[PATH_MAX];

    if (!spool_qid_valid(qid))
        return PST_EINVAL;
    if (spool_path(src, sizeof(src), spool_dir, spool_queue_dir(from), qid) != 0 ||
        spool_path(dst, sizeof(dst), spool_dir, spool_queue_dir(to), qid) != 0)
        return PST_ELIMIT;
    if (mtime > 0) {
        struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = (time_t)mtime}};
        if (utimensat(AT_FDCWD, src, ts, AT_SYMLINK_NOFOLLOW) != 0)
            return errno == ENOENT ? PST_ENOENT : PST_EIO;
    }
    if (from != to && rename(src, dst) != 0)
        return errno == ENOENT ? PST_ENOENT : PST_EIO;
    /* Either directory holding the file is safe after a crash; sync the target for order. */
    return from != to ? spool_fsync_sub(spool_dir, spool_queue_dir(to)) : 0;
}

/* ---- per-message delivery state: state/<qid>, one record per line, append-only ---- */

int spool_state_append(const char *spool_dir, const char *qid, const char *record)
{
    char path[PATH_MAX];
    char line[SPOOL_STATE_LINE_MAX];

    if (!spool_qid_valid(qid))
        return PST_EINVAL;
    size_t len = strlen(record);
    if (len + 1 >= sizeof(line) || memchr(record, '\n', len) != NULL)
        return PST_ELIMIT;
    memcpy(line, record, len);
    line[len++] = '\n';
    if (spool_path(path, sizeof(path), spool_dir, SPOOL_DIR_STATE, qid) != 0)
        return PST_ELIMIT;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return PST_EIO;
    /* One write(2) per record: a process kill never leaves half a record; the page
     * cache keeps it across the kill. A machine crash may lose it, which costs a
     * duplicate delivery, never a lost one. */
    ssize_t w = write(fd, line, len);
    int saved = errno;
    close(fd);
    errno = saved;
    return w == (ssize_t)len ? 0 : PST_EIO;
}

int spool_state_read(const char *spool_dir, const char *qid, spool_state_cb cb, void *arg)
{
    char path[PATH_MAX];

    if (!spool_qid_valid(qid))
        return PST_EINVAL;
    if (spool_path(path, sizeof(path), spool_dir, SPOOL_DIR_STATE, qid) != 0)
        return PST_ELIMIT;
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return errno == ENOENT ? 0 : PST_EIO;
    char line[SPOOL_STATE_LINE_MAX];
    int rc = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t len = strlen(line);
        if (len == 0 || line[len - 1] != '\n')
            break; /* a torn last record (cannot happen with one write) is ignored */
        line[len - 1] = '\0';
        if (cb(arg, line) != 0)
            break;
    }
    if (ferror(f))
        rc = PST_EIO;
    fclose(f);
    return rc;
}

int spool_state_remove(const char *spool_dir, const char *qid)
{
    char path[PATH_MAX];

    if (!spool_qid_valid(qid))
        return PST_EINVAL;
    if (spool_path(path, sizeof(path), spool_dir, SPOOL_DIR_STATE, qid) != 0)
        return PST_ELIMIT;
    if (unlink(path) != 0 && errno != ENOENT)
        return PST_EIO;
    return 0;
}

/* Envelope reader: a small buffered line reader over the file. */
struct spool_reader {
    int fd;
    uint64_t off; /* file offset of buf[pos] */
    size_t pos, len;
    int eof;
    char buf[SPOOL_LINE_MAX];
};

/* spool_read_line - next line without its LF into *line; PST_EINVAL if truncated or too long. */
static int spool_read_line(struct spool_reader *r, char **line, size_t *llen)
{
    for (;;) {
        char *nl = memchr(r->buf + r->pos, '\n', r->len - r->pos);
        if (nl != NULL) {
            *line = r->buf + r->pos;
            *llen = (size_t)(nl - (r->buf + r->pos));
            *nl = '\0';
            r->off += *llen + 1;
            r->pos += *llen + 1;
            return 0;
        }
        if (r->eof)
            return PST_EINVAL;
        if (r->pos > 0) {
            memmove(r->buf, r->buf + r->pos, r->len - r->pos);
            r->len -= r->pos;
            r->pos = 0;
        }
        if (r->len == sizeof(r->buf))
            return PST_EINVAL; /* line too long */
        ssize_t n = read(r->fd, r->buf + r->len, sizeof(r->buf) - r->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return PST_EIO;
        if (n == 0)
            r->eof = 1;
        r->len += (size_t)n;
    }
}

static int spool_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* spool_decode - %XX-decode value into a new string; NUL or a bad escape is PST_EINVAL. */
static int spool_decode(const char *v, char **out)
{
    size_t len = strlen(v), i, o = 0;
    char *s = malloc(len + 1);

    if (s == NULL)
        return PST_ENOMEM;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (spool_needs_escape(c) && c != '%')
            goto bad; /* must have been escaped */
        if (c == '%') {
            int hi = i + 2 < len ? spool_hexval(v[i + 1]) : -1;
            int lo = hi >= 0 ? spool_hexval(v[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                goto bad;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        s[o++] = (char)c;
    }
    s[o] = '\0';
    *out = s;
    return 0;
bad:
    free(s);
    return PST_EINVAL;
}

/* spool_set_str - decode into a single-valued field; a second occurrence is PST_EINVAL. */
static int spool_set_str(char **field, const char *v)
{
    if (*field != NULL)
        return PST_EINVAL;
    return spool_decode(v, field);
}

static int spool_parse_int64(const char *v, int64_t *out)
{
    int64_t x = 0;

    if (*v == '\0' || strlen(v) > 18)
        return PST_EINVAL;
    for (; *v; v++) {
        if (*v < '0' || *v > '9')
            return PST_EINVAL;
        x = x * 10 + (*v - '0');
    }
    *out = x;
    return 0;
}

static int spool_parse_notify(const char *v, unsigned *out)
{
    unsigned bits = 0;
    const char *p = v;

    if (*v == '\0')
        return PST_EINVAL;
    while (*p != '\0') {
        size_t n = strcspn(p, ","), i;
        int found = 0;
        for (i = 0; i < PST_ARRAY_LEN(spool_notify_names); i++) {
            if (strlen(spool_notify_names[i].name) == n &&
                memcmp(p, spool_notify_names[i].name, n) == 0) {
                if (bits & spool_notify_names[i].bit)
                    return PST_EINVAL;
                bits |= spool_notify_names[i].bit;
                found = 1;
            }
        }
        if (!found)
            return PST_EINVAL;
        p += n;
        if (*p == ',' && *++p == '\0')
            return PST_EINVAL;
    }
    *out = bits;
    return 0;
}

struct spool_parse {
    struct spool_env *env;
    int have_qid, have_time, have_from, have_body, have_utf8, have_ret;
    int rcpt_notify, rcpt_orcpt; /* seen for the last rcpt */
};

static int spool_parse_kv(struct spool_parse *ps, const char *qid, const char *key, const char *v)
{
    struct spool_env *env = ps->env;
    int rc;

    if (strcmp(key, "qid") == 0) {
        if (ps->have_qid++ || strcmp(v, qid) != 0)
            return PST_EINVAL;
        memcpy(env->qid, qid, SPOOL_QID_LEN + 1);
        return 0;
    }
    if (strcmp(key, "time") == 0)
        return ps->have_time++ ? PST_EINVAL : spool_parse_int64(v, &env->time);
    if (strcmp(key, "from") == 0)
        return ps->have_from++ ? PST_EINVAL : spool_set_str(&env->sender, v);
    if (strcmp(key, "client") == 0)
        return spool_set_str(&env->client, v);
    if (strcmp(key, "helo") == 0)
        return spool_set_str(&env->helo, v);
    if (strcmp(key, "proto") == 0)
        return spool_set_str(&env->proto, v);
    if (strcmp(key, "auth") == 0)
        return spool_set_str(&env->auth, v);
    if (strcmp(key, "envid") == 0)
        return spool_set_str(&env->envid, v);
    if (strcmp(key, "body") == 0) {
        if (ps->have_body++)
            return PST_EINVAL;
        env->body = strcmp(v, "7BIT") == 0 ? 1 : strcmp(v, "8BITMIME") == 0 ? 2 : -1;
        return env->body < 0 ? PST_EINVAL : 0;
    }
    if (strcmp(key, "ret") == 0) {
        if (ps->have_ret++)
            return PST_EINVAL;
        env->ret = strcmp(v, "FULL") == 0 ? 1 : strcmp(v, "HDRS") == 0 ? 2 : -1;
        return env->ret < 0 ? PST_EINVAL : 0;
    }
    if (strcmp(key, "smtputf8") == 0) {
        if (ps->have_utf8++ || strcmp(v, "1") != 0)
            return PST_EINVAL;
        env->smtputf8 = 1;
        return 0;
    }
    if (strcmp(key, "rcpt") == 0) {
        char *addr = NULL;
        if ((rc = spool_decode(v, &addr)) != 0)
            return rc;
        if (addr[0] == '\0') {
            free(addr);
            return PST_EINVAL;
        }
        rc = spool_env_add_rcpt(env, addr, NULL, 0);
        free(addr);
        ps->rcpt_notify = ps->rcpt_orcpt = 0;
        return rc;
    }
    if (strcmp(key, "notify") == 0) {
        if (env->nrcpt == 0 || ps->rcpt_notify++)
            return PST_EINVAL;
        return spool_parse_notify(v, &env->rcpt[env->nrcpt - 1].notify);
    }
    if (strcmp(key, "orcpt") == 0) {
        if (env->nrcpt == 0 || ps->rcpt_orcpt++)
            return PST_EINVAL;
        return spool_decode(v, &env->rcpt[env->nrcpt - 1].orcpt);
    }
    return PST_EINVAL; /* unknown key */
}

static int spool_parse_header(struct spool_reader *r, const char *qid, struct spool_env *env)
{
    struct spool_parse ps = {.env = env};
    char *line, *sp;
    size_t llen;
    int rc;

    if ((rc = spool_read_line(r, &line, &llen)) != 0)
        return rc;
    if (strcmp(line, SPOOL_MAGIC) != 0)
        return PST_EINVAL;
    for (;;) {
        if (r->off > SPOOL_HEADER_MAX)
            return PST_EINVAL;
        if ((rc = spool_read_line(r, &line, &llen)) != 0)
            return rc;
        if (memchr(line, '\0', llen) != NULL)
            return PST_EINVAL;
        if (strcmp(line, "data") == 0)
            break;
        sp = strchr(line, ' ');
        if (sp == NULL)
            return PST_EINVAL;
        *sp = '\0';
        if ((rc = spool_parse_kv(&ps, qid, line, sp + 1)) != 0)
            return rc;
    }
    if (!ps.have_qid || !ps.have_time || !ps.have_from || env->nrcpt == 0)
        return PST_EINVAL;
    return 0;
}

int spool_open(const char *spool_dir, const char *qid, struct spool_env **envp, int *fdp,
               uint64_t *content_len)
{
    return spool_open_queue(spool_dir, SPOOL_Q_INCOMING, qid, envp, fdp, content_len);
}

int spool_open_queue(const char *spool_dir, enum spool_queue q, const char *qid,
                     struct spool_env **envp, int *fdp, uint64_t *content_len)
{
    char path[PATH_MAX];
    struct spool_reader *r = NULL;
    struct spool_env *env = NULL;
    struct stat st;
    int fd, rc;

    *envp = NULL;
    *fdp = -1;
    *content_len = 0;
    if (!spool_qid_valid(qid))
        return PST_EINVAL;
    if (spool_path(path, sizeof(path), spool_dir, spool_queue_dir(q), qid) != 0)
        return PST_ELIMIT;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? PST_ENOENT : errno == ELOOP ? PST_EINVAL : PST_EIO;
    if (fstat(fd, &st) != 0) {
        rc = PST_EIO;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = PST_EINVAL;
        goto out;
    }
    r = malloc(sizeof(*r));
    env = spool_env_new();
    if (r == NULL || env == NULL) {
        rc = PST_ENOMEM;
        goto out;
    }
    r->fd = fd;
    r->off = 0;
    r->pos = r->len = 0;
    r->eof = 0;
    if ((rc = spool_parse_header(r, qid, env)) != 0)
        goto out;
    if (lseek(fd, (off_t)r->off, SEEK_SET) < 0) {
        rc = PST_EIO;
        goto out;
    }
    *content_len = (uint64_t)st.st_size - r->off;
    *envp = env;
    *fdp = fd;
    free(r);
    return 0;
out:
    free(r);
    spool_env_free(&env);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int spool_remove(const char *spool_dir, const char *qid)
{
    return spool_remove_queue(spool_dir, SPOOL_Q_INCOMING, qid);
}

int spool_remove_queue(const char *spool_dir, enum spool_queue q, const char *qid)
{
    char path[PATH_MAX];

    if (!spool_qid_valid(qid))
        return PST_EINVAL;
    if (spool_path(path, sizeof(path), spool_dir, spool_queue_dir(q), qid) != 0)
        return PST_ELIMIT;
    if (unlink(path) != 0 && errno != ENOENT)
        return PST_EIO;
    return 0;
}

int spool_sync_dir(const char *spool_dir)
{
    return spool_fsync_sub(spool_dir, SPOOL_DIR_INCOMING);
}

int spool_sync_queue(const char *spool_dir, enum spool_queue q)
{
    return spool_fsync_sub(spool_dir, spool_queue_dir(q));
}

int spool_quarantine(const char *spool_dir, const char *qid)
{
    return spool_quarantine_queue(spool_dir, SPOOL_Q_INCOMING, qid);
}

int spool_quarantine_queue(const char *spool_dir, enum spool_queue q, const char *qid)
{
    char from[PATH_MAX], to[PATH_MAX];
    int rc;

    if (!spool_qid_valid(qid))
        return PST_EINVAL;
    if (spool_path(from, sizeof(from), spool_dir, spool_queue_dir(q), qid) != 0 ||
        spool_path(to, sizeof(to), spool_dir, SPOOL_DIR_CORRUPT, qid) != 0)
        return PST_ELIMIT;
    if (rename(from, to) != 0)
        return errno == ENOENT ? PST_ENOENT : PST_EIO;
    if ((rc = spool_fsync_sub(spool_dir, SPOOL_DIR_CORRUPT)) != 0)
        return rc;
    return spool_fsync_sub(spool_dir, spool_queue_dir(q));
}

/* spool_mkdir_p - create path and its parents (mode 0700 for new ones). */
static int spool_mkdir_p(const char *path)
{
    char tmp[PATH_MAX];
    size_t len = strlen(path), i;

    if (len == 0 || len >= sizeof(tmp))
        return PST_ELIMIT;
    memcpy(tmp, path, len + 1);
    for (i = 1; i <= len; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0')
            continue;
        char saved = tmp[i];
        tmp[i] = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return PST_EIO;
        tmp[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) != 0)
        return PST_EIO;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return PST_EIO;
    }
    return 0;
}

static void spool_clean_tmp(const char *spool_dir)
{
    char dir[PATH_MAX], path[PATH_MAX];
    struct dirent *de;
    struct stat st;
    time_t now = time(NULL);
    DIR *d;

    if (spool_path(dir, sizeof(dir), spool_dir, SPOOL_DIR_TMP, NULL) != 0)
        return;
    d = opendir(dir);
    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (spool_path(path, sizeof(path), spool_dir, SPOOL_DIR_TMP, de->d_name) != 0)
            continue;
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (now - st.st_mtime < SPOOL_STALE_TMP_SECS)
            continue;
        if (unlink(path) == 0)
            log_info("spool removed-stale file=tmp/%s",
                     spool_qid_valid(de->d_name) ? de->d_name : "(invalid-name)");
    }
    closedir(d);
}

int spool_init(const char *spool_dir)
{
    static const char *const subs[] = {SPOOL_DIR_TMP,      SPOOL_DIR_INCOMING, SPOOL_DIR_CORRUPT,
                                       SPOOL_DIR_DEFERRED, SPOOL_DIR_HOLD,     SPOOL_DIR_STATE};
    char path[PATH_MAX];
    size_t i;
    int rc;

    if (spool_dir == NULL || spool_dir[0] == '\0')
        return PST_EINVAL;
    if ((rc = spool_mkdir_p(spool_dir)) != 0)
        return rc;
    for (i = 0; i < PST_ARRAY_LEN(subs); i++) {
        if (spool_path(path, sizeof(path), spool_dir, subs[i], NULL) != 0)
            return PST_ELIMIT;
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return PST_EIO;
    }
    spool_clean_tmp(spool_dir);
    return fsu_fsync_dir(spool_dir);
}
