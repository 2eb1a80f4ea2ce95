/*
 * maildir.c - Maildir delivery with batched durability (format: maildir.h).
 *
 * Delivery of one item: tmp/<name> is created (O_TRUNC: a tmp file left by
 * a crash has the same deterministic name and is simply rewritten), the
 * Return-Path/Delivered-To prefix is written, then the spool content is
 * copied with CRLF -> LF. maildir_batch_commit() then
 *   1. makes data durable: fdatasync(2) for a single file, otherwise one
 *      syncfs(2) per distinct file system (st_dev) of the written files;
 *   2. link(2)s tmp/<name> to new/<name>,S=<size>; EEXIST means an earlier
 *      attempt already delivered it (same name, same content) = success;
 *   3. unlinks the tmp files;
 *   4. fsyncs each distinct new/ directory once (sorted by path).
 * An item is reported delivered only after step 4 for its directory.
 *
 * Invariants: file names come only from maildir_name() (qid is checked to be
 * [0-9A-F], the host is escaped), so no name can hold '/' or ':'.
 *
 * Failure policy: every error is returned (see maildir.h); nothing aborts.
 */
#include "maildir.h"

#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAILDIR_IO_BUF (64 * 1024)
#define MAILDIR_QID_MAX 64
#define MAILDIR_UNKNOWN_HOST "unknown"

struct maildir_item {
    char *tmp_path;   /* owned */
    char *new_path;   /* owned */
    char *new_dir;    /* owned: <maildir>/new */
    const char *name; /* points into new_path */
    uint64_t size;
    dev_t dev;
    int err;        /* PST_EAGAIN until committed */
    int tmp_exists; /* tmp file still on disk */
};

struct maildir_batch {
    char host[MAILDIR_HOST_MAX + 1];
    size_t n, cap;
    struct maildir_item *items;
    int committed;
};

/* Output buffer for writing one file. */
struct maildir_out {
    int fd;
    size_t len;
    uint64_t total;
    char buf[MAILDIR_IO_BUF];
};

/* ---------------------------------------------------------------- names */

int maildir_host_escape(const char *hostname, char *out, size_t outsz)
{
    const unsigned char *p = (const unsigned char *)(hostname ? hostname : "");
    size_t o = 0;

    if (outsz < MAILDIR_HOST_MAX + 1)
        return PST_ELIMIT;
    for (; *p != '\0'; p++) {
        int esc = *p == '/' || *p == ':' || *p == ',' || *p == '\\' || *p < 0x21 || *p > 0x7e;
        size_t need = esc ? 4 : 1;
        if (o + need > MAILDIR_HOST_MAX)
            break;
        if (esc) {
            out[o++] = '\\';
            out[o++] = (char)('0' + ((*p >> 6) & 7));
            out[o++] = (char)('0' + ((*p >> 3) & 7));
            out[o++] = (char)('0' + (*p & 7));
        } else {
            out[o++] = (char)*p;
        }
    }
    out[o] = '\0';
    if (o == 0 || strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
        snprintf(out, outsz, "%s", MAILDIR_UNKNOWN_HOST);
    return 0;
}

static int maildir_qid_ok(const char *qid)
{
    size_t i;

    for (i = 0; qid[i] != '\0'; i++) {
        char c = qid[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')))
            return 0;
    }
    return i > 0 && i <= MAILDIR_QID_MAX;
}

int maildir_name(char *out, size_t outsz, int64_t qtime, const char *qid, unsigned index,
                 const char *host, int with_size, uint64_t size)
{
    int n;

    if (qid == NULL || !maildir_qid_ok(qid) || host == NULL || strchr(host, '/') != NULL)
        return PST_EINVAL;
    if (with_size)
        n = snprintf(out, outsz, "%" PRId64 ".Q%sR%u.%s,S=%" PRIu64, qtime, qid, index, host, size);
    else
        n = snprintf(out, outsz, "%" PRId64 ".Q%sR%u.%s", qtime, qid, index, host);
    if (n < 0 || (size_t)n >= outsz || (size_t)n > MAILDIR_NAME_MAX)
        return PST_ELIMIT;
    return 0;
}

static char *maildir_join(const char *dir, const char *sub, const char *name)
{
    char path[PATH_MAX];
    int n;

    if (name != NULL)
        n = snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
    else
        n = snprintf(path, sizeof(path), "%s/%s", dir, sub);
    if (n < 0 || (size_t)n >= sizeof(path))
        return NULL;
    return strdup(path);
}

/* ---------------------------------------------------------------- directories */

/* maildir_mkdir - mkdir path; sets *created; an existing directory is fine. */
static int maildir_mkdir(const char *path, int *created)
{
    struct stat st;

    if (mkdir(path, 0700) == 0) {
        *created = 1;
        return 0;
    }
    if (errno != EEXIST)
        return PST_EIO;
    if (stat(path, &st) != 0)
        return PST_EIO;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return PST_EIO;
    }
    return 0;
}

/* maildir_mkdir_p - create path and its parents; fsync the parent of each new directory. */
static int maildir_mkdir_p(const char *path)
{
    char tmp[PATH_MAX];
    size_t len = strlen(path), i;
    int rc;

    if (len == 0)
        return PST_EINVAL;
    if (len >= sizeof(tmp))
        return PST_ELIMIT;
    memcpy(tmp, path, len + 1);
    for (i = 1; i <= len; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0')
            continue;
        if (tmp[i - 1] == '/')
            continue; /* "//" */
        char saved = tmp[i];
        int created = 0;
        tmp[i] = '\0';
        rc = maildir_mkdir(tmp, &created);
        if (rc == 0 && created) {
            char *slash = strrchr(tmp, '/');
            if (slash != NULL && slash != tmp) {
                *slash = '\0';
                rc = fsu_fsync_dir(tmp);
                *slash = '/';
            } else if (slash == tmp) {
                rc = fsu_fsync_dir("/");
            } else {
                rc = fsu_fsync_dir(".");
            }
        }
        tmp[i] = saved;
        if (rc != 0)
            return rc;
    }
    return 0;
}

int maildir_create(const char *path)
{
    static const char *const subs[] = {"cur", "new", "tmp"};
    size_t i;
    int rc, created = 0;

    if (path == NULL)
        return PST_EINVAL;
    if ((rc = maildir_mkdir_p(path)) != 0)
        return rc;
    for (i = 0; i < PST_ARRAY_LEN(subs); i++) {
        char *sub = maildir_join(path, subs[i], NULL);
        if (sub == NULL)
            return PST_ELIMIT;
        rc = maildir_mkdir(sub, &created);
        free(sub);
        if (rc != 0)
            return rc;
    }
    return created ? fsu_fsync_dir(path) : 0;
}

/* ---------------------------------------------------------------- writing */

static int maildir_out_flush(struct maildir_out *o)
{
    size_t off = 0;

    while (off < o->len) {
        ssize_t n = write(o->fd, o->buf + off, o->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return PST_EIO;
        }
        off += (size_t)n;
    }
    o->len = 0;
    return 0;
}

static int maildir_out_put(struct maildir_out *o, const char *p, size_t n)
{
    while (n > 0) {
        size_t room = sizeof(o->buf) - o->len;
        size_t k = n < room ? n : room;
        memcpy(o->buf + o->len, p, k);
        o->len += k;
        o->total += k;
        p += k;
        n -= k;
        if (o->len == sizeof(o->buf) && maildir_out_flush(o) != 0)
            return PST_EIO;
    }
    return 0;
}

static int maildir_header_ok(const char *s)
{
    return strpbrk(s, "\r\n") == NULL;
}

static int maildir_out_prefix(struct maildir_out *o, const struct maildir_msg *m)
{
    static const char rp[] = "Return-Path: <", dt[] = ">\nDelivered-To: ";
    int rc;

    if ((rc = maildir_out_put(o, rp, sizeof(rp) - 1)) != 0 ||
        (rc = maildir_out_put(o, m->sender, strlen(m->sender))) != 0 ||
        (rc = maildir_out_put(o, dt, sizeof(dt) - 1)) != 0 ||
        (rc = maildir_out_put(o, m->rcpt, strlen(m->rcpt))) != 0)
        return rc;
    return maildir_out_put(o, "\n", 1);
}

/* maildir_out_content - copy content_len bytes from the spool, CRLF -> LF. */
static int maildir_out_content(struct maildir_out *o, const struct maildir_msg *m)
{
    char *in = malloc(MAILDIR_IO_BUF);
    uint64_t off = m->content_off, left = m->content_len;
    int pending_cr = 0, rc = 0;

    if (in == NULL)
        return PST_ENOMEM;
    while (left > 0 && rc == 0) {
        size_t want = left < MAILDIR_IO_BUF ? (size_t)left : MAILDIR_IO_BUF;
        ssize_t n = pread(m->content_fd, in, want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO; /* file shorter than its header said */
            rc = PST_EIO;
            break;
        }
        off += (uint64_t)n;
        left -= (uint64_t)n;
        size_t i = 0, start = 0, len = (size_t)n;
        if (pending_cr) {
            pending_cr = 0;
            if (in[0] != '\n')
                rc = maildir_out_put(o, "\r", 1);
        }
        for (; i < len && rc == 0; i++) {
            if (in[i] != '\r')
                continue;
            if (i + 1 < len && in[i + 1] != '\n')
                continue; /* bare CR stays */
            rc = maildir_out_put(o, in + start, i - start);
            start = i + 1; /* drop the CR; the LF (if any) is copied next */
            if (i + 1 == len)
                pending_cr = 1;
        }
        if (rc == 0)
            rc = maildir_out_put(o, in + start, len - start);
    }
    if (rc == 0 && pending_cr)
        rc = maildir_out_put(o, "\r", 1);
    free(in);
    return rc;
}

static void maildir_item_release(struct maildir_item *it)
{
    if (it->tmp_exists && it->tmp_path != NULL)
        (void)unlink(it->tmp_path);
    it->tmp_exists = 0;
    free(it->tmp_path);
    free(it->new_path);
    free(it->new_dir);
    it->tmp_path = it->new_path = it->new_dir = NULL;
}

/* maildir_write_tmp - write the tmp file of it; fills size, dev, new_path. */
static int maildir_write_tmp(struct maildir_batch *b, struct maildir_item *it,
                             const struct maildir_msg *m)
{
    char name[MAILDIR_NAME_MAX + 1];
    struct maildir_out *o;
    struct stat st;
    int rc;

    o = malloc(sizeof(*o));
    if (o == NULL)
        return PST_ENOMEM;
    o->len = 0;
    o->total = 0;
    o->fd = open(it->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (o->fd < 0) {
        free(o);
        return PST_EIO;
    }
    it->tmp_exists = 1;
    rc = maildir_out_prefix(o, m);
    if (rc == 0)
        rc = maildir_out_content(o, m);
    if (rc == 0)
        rc = maildir_out_flush(o);
    if (rc == 0 && fstat(o->fd, &st) != 0)
        rc = PST_EIO;
    if (rc == 0 && close(o->fd) != 0)
        rc = PST_EIO;
    else if (rc != 0)
        close(o->fd);
    if (rc == 0) {
        it->size = o->total;
        it->dev = st.st_dev;
        rc = maildir_name(name, sizeof(name), m->qtime, m->qid, m->index, b->host, 1, it->size);
    }
    free(o);
    if (rc == 0 && (it->new_path = maildir_join(m->maildir, "new", name)) == NULL)
        rc = PST_ELIMIT;
    if (rc == 0)
        it->name = strrchr(it->new_path, '/') + 1;
    return rc;
}

struct maildir_batch *maildir_batch_new(const char *hostname)
{
    struct maildir_batch *b = calloc(1, sizeof(*b));

    if (b == NULL)
        return NULL;
    if (maildir_host_escape(hostname, b->host, sizeof(b->host)) != 0) {
        free(b);
        return NULL;
    }
    return b;
}

int maildir_batch_add(struct maildir_batch *b, const struct maildir_msg *m)
{
    char tname[MAILDIR_NAME_MAX + 1];
    struct maildir_item *it;
    int rc;

    if (b == NULL || m == NULL || b->committed || m->maildir == NULL || m->sender == NULL ||
        m->rcpt == NULL || m->qid == NULL)
        return PST_EINVAL;
    if (!maildir_header_ok(m->sender) || !maildir_header_ok(m->rcpt) || m->rcpt[0] == '\0')
        return PST_EINVAL;
    if (b->n > (size_t)INT32_MAX - 1)
        return PST_ELIMIT;
    if ((rc = maildir_name(tname, sizeof(tname), m->qtime, m->qid, m->index, b->host, 0, 0)) != 0)
        return rc;
    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 16;
        struct maildir_item *ni = realloc(b->items, ncap * sizeof(*ni));
        if (ni == NULL)
            return PST_ENOMEM;
        b->items = ni;
        b->cap = ncap;
    }
    it = &b->items[b->n];
    memset(it, 0, sizeof(*it));
    it->err = PST_EAGAIN;
    it->tmp_path = maildir_join(m->maildir, "tmp", tname);
    it->new_dir = maildir_join(m->maildir, "new", NULL);
    if (it->tmp_path == NULL || it->new_dir == NULL) {
        maildir_item_release(it);
        return PST_ELIMIT;
    }
    if ((rc = maildir_write_tmp(b, it, m)) != 0) {
        int saved = errno;
        maildir_item_release(it);
        errno = saved;
        return rc;
    }
    return (int)b->n++;
}

/* maildir_batch_sync - step 1: fdatasync one file, or syncfs once per file system. */
static int maildir_batch_sync(struct maildir_batch *b)
{
    dev_t done[16];
    size_t ndone = 0, i, j;
    int fd, rc = 0;

    if (b->n == 1) {
        fd = open(b->items[0].tmp_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            return PST_EIO;
        if (fdatasync(fd) != 0)
            rc = PST_EIO;
        close(fd);
        return rc;
    }
    for (i = 0; i < b->n; i++) {
        for (j = 0; j < ndone && done[j] != b->items[i].dev; j++)
            ;
        if (j < ndone)
            continue;
        fd = open(b->items[i].tmp_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            return PST_EIO;
        if (syncfs(fd) != 0)
            rc = PST_EIO;
        close(fd);
        if (rc != 0)
            return rc;
        if (ndone < PST_ARRAY_LEN(done))
            done[ndone++] = b->items[i].dev; /* past 16 file systems: sync again, still correct */
    }
    return 0;
}

static int maildir_cmp_dir(const void *a, const void *b)
{
    const struct maildir_item *x = *(const struct maildir_item *const *)a;
    const struct maildir_item *y = *(const struct maildir_item *const *)b;

    return strcmp(x->new_dir, y->new_dir);
}

/* maildir_batch_sync_dirs - step 4: fsync each distinct new/ once; failures fail their items. */
static int maildir_batch_sync_dirs(struct maildir_batch *b)
{
    struct maildir_item **v = malloc(b->n * sizeof(*v));
    size_t i, nv = 0, j;
    int first = 0;

    if (v == NULL)
        return PST_ENOMEM;
    for (i = 0; i < b->n; i++)
        if (b->items[i].err == 0)
            v[nv++] = &b->items[i];
    qsort(v, nv, sizeof(*v), maildir_cmp_dir);
    for (i = 0; i < nv; i = j) {
        int rc = fsu_fsync_dir(v[i]->new_dir);
        for (j = i; j < nv && strcmp(v[j]->new_dir, v[i]->new_dir) == 0; j++)
            if (rc != 0)
                v[j]->err = rc;
        if (rc != 0 && first == 0)
            first = rc;
    }
    free(v);
    return first;
}

int maildir_batch_commit(struct maildir_batch *b)
{
    size_t i;
    int rc, first = 0;

    if (b == NULL || b->committed)
        return PST_EINVAL;
    b->committed = 1;
    if (b->n == 0)
        return 0;
    rc = maildir_batch_sync(b);
    for (i = 0; i < b->n; i++) {
        struct maildir_item *it = &b->items[i];
        if (rc != 0)
            it->err = rc;
        else if (link(it->tmp_path, it->new_path) == 0 || errno == EEXIST)
            it->err = 0;
        else
            it->err = PST_EIO;
        if (unlink(it->tmp_path) == 0 || errno == ENOENT)
            it->tmp_exists = 0;
    }
    if (rc != 0)
        return rc;
    first = maildir_batch_sync_dirs(b);
    for (i = 0; i < b->n && first == 0; i++)
        first = b->items[i].err;
    return first;
}

size_t maildir_batch_count(const struct maildir_batch *b)
{
    return b == NULL ? 0 : b->n;
}

int maildir_batch_result(const struct maildir_batch *b, size_t i, uint64_t *size, const char **name)
{
    if (b == NULL || i >= b->n)
        return PST_EINVAL;
    if (size != NULL)
        *size = b->items[i].size;
    if (name != NULL)
        *name = b->items[i].name;
    return b->items[i].err;
}

void maildir_batch_free(struct maildir_batch **bp)
{
    size_t i;

    if (bp == NULL || *bp == NULL)
        return;
    for (i = 0; i < (*bp)->n; i++)
        maildir_item_release(&(*bp)->items[i]);
    free((*bp)->items);
    free(*bp);
    *bp = NULL;
}

int maildir_deliver(const struct maildir_msg *m, const char *hostname, uint64_t *size)
{
    struct maildir_batch *b = maildir_batch_new(hostname);
    int rc;

    if (b == NULL)
        return PST_ENOMEM;
    rc = maildir_batch_add(b, m);
    if (rc >= 0)
        rc = maildir_batch_commit(b);
    if (rc == 0)
        rc = maildir_batch_result(b, 0, size, NULL);
    maildir_batch_free(&b);
    return rc;
}
