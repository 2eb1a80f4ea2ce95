/*
 * pop3_mbox.c - the POP3 mailbox interface's wrappers, the wire encoder,
 * and the local Maildir backend.
 *
 * Maildir backend (RFC 1939 over https://cr.yp.to/proto/maildir.html):
 *
 *   Lock     <maildir>/.pop3.lock, flock(LOCK_EX|LOCK_NB) held for the
 *            session (RFC 1939 8: exclusive access). flock locks belong to
 *            the open file description, so two sessions of one pop3d
 *            process exclude each other too. The file is never unlinked
 *            (unlinking a lock file races with a new locker).
 *   Snapshot At open, new/ and cur/ are read once; files that arrive later
 *            are not seen until the next session, so message numbers stay
 *            fixed (RFC 1939 5). Entries starting with '.' and non-regular
 *            files are skipped; at most POP3_MD_MAX_MESSAGES are served.
 *   Order    By the leading decimal number of the name (delivery time for
 *            Postern's and most writers' names), then by name.
 *   UIDL     The part of the name before the first ':' (the "unique name"),
 *            which no Maildir reader changes when it moves new/ -> cur/ or
 *            edits flags; hashed when it is not 1..70 chars of 0x21..0x7E.
 *            A duplicate (the same unique name in new/ and cur/) gets a
 *            hash of its directory and full name instead.
 *   Sizes    The size as retrieved (every LF -> CRLF). Taken from ",W=<n>"
 *            in the unique name (Dovecot's convention), else from the size
 *            cache, else by reading the file once. The cache
 *            <maildir>/.pop3.sizes is a text file:
 *                "postern-pop3-sizes 1\n"
 *                then per message "<file size> <wire size> <unique name>\n"
 *            and an entry is used only when the file size still matches
 *            (from ",S=<n>" in the name, else stat). It is rewritten (tmp +
 *            rename, no fsync: it is only a cache) when a size was computed.
 *   Deletes  Only at commit (UPDATE): unlink each marked file, then fsync
 *            the directories touched. A file moved meanwhile by another
 *            reader (new/ -> cur/, flags changed) is found again by its
 *            unique name; one already gone counts as deleted.
 *
 * Failure policy: file-system errors are returned as PST_EIO (errno set)
 * and reported by the session; nothing here aborts or logs, except that a
 * cache that cannot be read or written is silently ignored (it only saves
 * time).
 */
#include "pop3/pop3_mbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/evp.h>

#include "lib/fsutil.h"
#include "lib/maildir.h"

#define POP3_MD_MAX_MESSAGES 1000000
#define POP3_MD_READ_CHUNK (128 * 1024)
#define POP3_MD_PATH_MAX 4096
#define POP3_MD_LOCK_NAME ".pop3.lock"
#define POP3_MD_CACHE_NAME ".pop3.sizes"
#define POP3_MD_CACHE_TMP ".pop3.sizes.tmp"
#define POP3_MD_CACHE_MAGIC "postern-pop3-sizes 1\n"
#define POP3_MD_CACHE_LINE_MAX (MAILDIR_NAME_MAX + 64)
#define POP3_UIDL_HASH_HEX 40

/* ---- interface wrappers -------------------------------------------------- */

size_t pop3_mbox_count(struct pop3_mbox *mb)
{
    return mb->ops->count(mb);
}

const struct pop3_msginfo *pop3_mbox_info(struct pop3_mbox *mb, size_t i)
{
    return mb->ops->info(mb, i);
}

void pop3_mbox_close(struct pop3_mbox **mb)
{
    if (mb && *mb)
        (*mb)->ops->close(mb);
}

/* ---- wire encoding --------------------------------------------------------- */

void pop3_wire_init(struct pop3_wire *w, long lines)
{
    memset(w, 0, sizeof *w);
    w->lines_left = lines;
    w->bol = 1;
}

/* pop3_wire_eol - a line ended (LF seen). Updates header/body state and the TOP limit. */
static void pop3_wire_eol(struct pop3_wire *w, int empty_line)
{
    if (!w->in_body) {
        if (empty_line) {
            w->in_body = 1;
            if (w->lines_left == 0)
                w->done = 1;
        }
        return;
    }
    if (w->lines_left > 0 && --w->lines_left == 0)
        w->done = 1;
}

size_t pop3_wire_encode(struct pop3_wire *w, const char *in, size_t inlen, char *out)
{
    size_t o = 0;
    size_t i = 0;
    while (i < inlen && !w->done) {
        if (w->bol && in[i] == '.')
            out[o++] = '.'; /* RFC 1939 3: byte-stuff a leading termination octet */
        const char *nl = memchr(in + i, '\n', inlen - i);
        size_t end = nl ? (size_t)(nl - in) : inlen;
        size_t seg = end - i;
        if (seg > 0) {
            memcpy(out + o, in + i, seg);
            o += seg;
            w->prev_cr = in[end - 1] == '\r';
            w->bol = 0;
            w->linelen = w->linelen + seg > 2 ? 2 : w->linelen + seg;
        }
        if (!nl)
            break;
        int empty = w->linelen == 0 || (w->linelen == 1 && w->prev_cr);
        if (!w->prev_cr)
            out[o++] = '\r'; /* LF -> CRLF; an existing CRLF stays */
        out[o++] = '\n';
        w->prev_cr = 0;
        w->bol = 1;
        w->linelen = 0;
        i = end + 1;
        pop3_wire_eol(w, empty);
    }
    return o;
}

size_t pop3_wire_finish(struct pop3_wire *w, char *out)
{
    if (w->bol || w->done)
        return 0;
    size_t o = 0;
    if (!w->prev_cr)
        out[o++] = '\r';
    out[o++] = '\n';
    w->bol = 1;
    w->prev_cr = 0;
    return o;
}

uint64_t pop3_wire_size_chunk(const char *in, size_t len, int *prev_cr, int *bol)
{
    uint64_t n = len;
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(in + i, '\n', len - i);
        if (!nl) {
            *prev_cr = in[len - 1] == '\r';
            *bol = 0;
            break;
        }
        size_t end = (size_t)(nl - in);
        int cr = end > i ? in[end - 1] == '\r' : *prev_cr;
        if (!cr)
            n++;
        *prev_cr = 0;
        *bol = 1;
        i = end + 1;
    }
    return n;
}

/* ---- unique-ids ------------------------------------------------------------ */

static size_t pop3_md_uniq_len(const char *name)
{
    const char *colon = strchr(name, ':');
    return colon ? (size_t)(colon - name) : strlen(name);
}

static void pop3_md_hash_uidl(const char *data, size_t len, char out[POP3_UIDL_MAX + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    static const char hex[] = "0123456789abcdef";
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1)
        mdlen = 0;
    out[0] = 'H';
    size_t o = 1;
    for (unsigned k = 0; k < mdlen && o + 2 <= 1 + POP3_UIDL_HASH_HEX; k++) {
        out[o++] = hex[md[k] >> 4];
        out[o++] = hex[md[k] & 15];
    }
    out[o] = '\0';
}

int pop3_maildir_uidl(const char *name, char out[POP3_UIDL_MAX + 1])
{
    size_t len = pop3_md_uniq_len(name);
    if (len == 0)
        return PST_EINVAL;
    int ok = len <= POP3_UIDL_MAX;
    for (size_t i = 0; ok && i < len; i++)
        ok = (unsigned char)name[i] >= 0x21 && (unsigned char)name[i] <= 0x7e;
    if (!ok) {
        pop3_md_hash_uidl(name, len, out);
        return 0;
    }
    memcpy(out, name, len);
    out[len] = '\0';
    return 0;
}

/* ---- the Maildir mailbox ----------------------------------------------------- */

struct pop3_md_msg {
    struct pop3_msginfo info;
    char *name;         /* file name in new/ or cur/ (owned) */
    uint64_t file_size; /* UINT64_MAX: unknown */
    unsigned long long sortkey;
    unsigned char in_cur;
    unsigned char scanned; /* size computed this session: write the cache */
};

struct pop3_md_stream;

struct pop3_md {
    struct pop3_mbox base;
    char *path; /* owned */
    int lockfd;
    struct pop3_md_msg *msgs; /* owned */
    size_t n, cap;
    struct pop3_md_stream *stream; /* the open stream, if any (borrowed back-pointer) */
};

struct pop3_md_stream {
    struct pop3_md *md;
    int fd;
    uint64_t expect; /* file size if known: read() < chunk at that point means EOF */
    uint64_t got;
    struct pop3_wire w;
    char buf[POP3_MD_READ_CHUNK];
};

struct pop3_md_cache_ent {
    uint64_t file_size;
    uint64_t wire_size;
    char *uniq; /* owned */
};

struct pop3_md_cache {
    struct pop3_md_cache_ent *e;
    size_t n, cap;
};

static const struct pop3_mbox_ops pop3_md_ops;

static int pop3_md_join(char *out, const char *dir, const char *sub, const char *name)
{
    int n = name ? snprintf(out, POP3_MD_PATH_MAX, "%s/%s/%s", dir, sub, name)
                 : snprintf(out, POP3_MD_PATH_MAX, "%s/%s", dir, sub);
    return n < 0 || n >= POP3_MD_PATH_MAX ? PST_ELIMIT : 0;
}

/* pop3_md_name_num - the value of ",<tag>=<digits>" in the unique name, or UINT64_MAX. */
static uint64_t pop3_md_name_num(const char *name, size_t uniqlen, char tag)
{
    for (size_t i = 0; i + 3 < uniqlen; i++) {
        if (name[i] != ',' || name[i + 1] != tag || name[i + 2] != '=')
            continue;
        uint64_t v = 0;
        size_t j = i + 3, digits = 0;
        while (j < uniqlen && name[j] >= '0' && name[j] <= '9' && digits < 19) {
            v = v * 10 + (uint64_t)(name[j] - '0');
            j++;
            digits++;
        }
        if (digits > 0 && (j == uniqlen || name[j] == ','))
            return v;
    }
    return UINT64_MAX;
}

static void pop3_md_free_msgs(struct pop3_md *md)
{
    for (size_t i = 0; i < md->n; i++)
        free(md->msgs[i].name);
    free(md->msgs);
    md->msgs = NULL;
    md->n = md->cap = 0;
}

static int pop3_md_add(struct pop3_md *md, const char *name, int in_cur)
{
    if (md->n == md->cap) {
        size_t ncap = md->cap ? md->cap * 2 : 64;
        struct pop3_md_msg *m = realloc(md->msgs, ncap * sizeof *m);
        if (!m)
            return PST_ENOMEM;
        md->msgs = m;
        md->cap = ncap;
    }
    struct pop3_md_msg *m = &md->msgs[md->n];
    memset(m, 0, sizeof *m);
    m->name = strdup(name);
    if (!m->name)
        return PST_ENOMEM;
    m->in_cur = (unsigned char)in_cur;
    m->sortkey = strtoull(name, NULL, 10); /* leading digits; 0 if none */
    size_t ulen = pop3_md_uniq_len(name);
    m->file_size = pop3_md_name_num(name, ulen, 'S');
    m->info.size = pop3_md_name_num(name, ulen, 'W');
    md->n++;
    return 0;
}

static int pop3_md_regular(int dfd, const struct dirent *de)
{
    if (de->d_type == DT_REG)
        return 1;
    if (de->d_type != DT_UNKNOWN)
        return 0;
    struct stat st;
    return fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

static int pop3_md_scan_dir(struct pop3_md *md, const char *sub, int in_cur)
{
    char p[POP3_MD_PATH_MAX];
    if (pop3_md_join(p, md->path, sub, NULL) < 0)
        return PST_ELIMIT;
    DIR *d = opendir(p);
    if (!d)
        return PST_EIO;
    int rc = 0;
    struct dirent *de;
    errno = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !pop3_md_regular(dirfd(d), de))
            continue;
        if (md->n >= POP3_MD_MAX_MESSAGES)
            break;
        rc = pop3_md_add(md, de->d_name, in_cur);
        errno = 0;
    }
    if (rc == 0 && errno != 0)
        rc = PST_EIO;
    closedir(d);
    return rc;
}

static int pop3_md_cmp(const void *a, const void *b)
{
    const struct pop3_md_msg *x = a, *y = b;
    if (x->sortkey != y->sortkey)
        return x->sortkey < y->sortkey ? -1 : 1;
    int c = strcmp(x->name, y->name);
    return c ? c : (int)x->in_cur - (int)y->in_cur;
}

static int pop3_md_cmp_uidl(const void *a, const void *b)
{
    const struct pop3_md_msg *const *x = a, *const *y = b;
    int c = strcmp((*x)->info.uidl, (*y)->info.uidl);
    if (c)
        return c;
    return *x < *y ? -1 : *x > *y; /* keep the earlier message's uidl */
}

/* pop3_md_assign_uidls - derive unique-ids; make duplicates unique. */
static int pop3_md_assign_uidls(struct pop3_md *md)
{
    for (size_t i = 0; i < md->n; i++)
        if (pop3_maildir_uidl(md->msgs[i].name, md->msgs[i].info.uidl) < 0)
            return PST_EINVAL;
    if (md->n < 2)
        return 0;
    struct pop3_md_msg **v = malloc(md->n * sizeof *v);
    if (!v)
        return PST_ENOMEM;
    for (size_t i = 0; i < md->n; i++)
        v[i] = &md->msgs[i];
    qsort(v, md->n, sizeof *v, pop3_md_cmp_uidl);
    for (size_t i = 1; i < md->n; i++) {
        if (strcmp(v[i]->info.uidl, v[i - 1]->info.uidl) != 0)
            continue;
        char key[MAILDIR_NAME_MAX + 8];
        int k = snprintf(key, sizeof key, "%s/%s", v[i]->in_cur ? "cur" : "new", v[i]->name);
        if (k > 0)
            pop3_md_hash_uidl(key, (size_t)k < sizeof key ? (size_t)k : sizeof key - 1,
                              v[i]->info.uidl);
    }
    free(v);
    return 0;
}

/* ---- size cache ---- */

static void pop3_md_cache_free(struct pop3_md_cache *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->e[i].uniq);
    free(c->e);
    memset(c, 0, sizeof *c);
}

static int pop3_md_cache_cmp(const void *a, const void *b)
{
    const struct pop3_md_cache_ent *x = a, *y = b;
    return strcmp(x->uniq, y->uniq);
}

static int pop3_md_cache_parse_line(char *line, struct pop3_md_cache_ent *e)
{
    char *end;
    errno = 0;
    unsigned long long fs = strtoull(line, &end, 10);
    if (end == line || *end != ' ' || errno)
        return PST_EINVAL;
    char *p = end + 1;
    unsigned long long ws = strtoull(p, &end, 10);
    if (end == p || *end != ' ' || errno || ws < fs)
        return PST_EINVAL;
    p = end + 1;
    size_t len = strcspn(p, "\n");
    if (len == 0 || p[len] != '\n' || memchr(p, ':', len) || memchr(p, '/', len))
        return PST_EINVAL;
    p[len] = '\0';
    e->file_size = fs;
    e->wire_size = ws;
    e->uniq = strdup(p);
    return e->uniq ? 0 : PST_ENOMEM;
}

/* pop3_md_cache_load - best effort: a missing or damaged cache gives an empty one. */
static void pop3_md_cache_load(const struct pop3_md *md, struct pop3_md_cache *c)
{
    char p[POP3_MD_PATH_MAX];
    memset(c, 0, sizeof *c);
    if (pop3_md_join(p, md->path, POP3_MD_CACHE_NAME, NULL) < 0)
        return;
    FILE *f = fopen(p, "re");
    if (!f)
        return;
    char line[POP3_MD_CACHE_LINE_MAX];
    if (!fgets(line, sizeof line, f) || strcmp(line, POP3_MD_CACHE_MAGIC) != 0) {
        fclose(f);
        return;
    }
    while (fgets(line, sizeof line, f) && c->n < POP3_MD_MAX_MESSAGES) {
        if (c->n == c->cap) {
            size_t ncap = c->cap ? c->cap * 2 : 64;
            struct pop3_md_cache_ent *e = realloc(c->e, ncap * sizeof *e);
            if (!e)
                break;
            c->e = e;
            c->cap = ncap;
        }
        if (pop3_md_cache_parse_line(line, &c->e[c->n]) == 0)
            c->n++;
    }
    fclose(f);
    if (c->n > 1)
        qsort(c->e, c->n, sizeof *c->e, pop3_md_cache_cmp);
}

static const struct pop3_md_cache_ent *pop3_md_cache_find(const struct pop3_md_cache *c,
                                                          const char *name)
{
    char uniq[MAILDIR_NAME_MAX + 1];
    size_t len = pop3_md_uniq_len(name);
    if (len >= sizeof uniq || c->n == 0)
        return NULL;
    memcpy(uniq, name, len);
    uniq[len] = '\0';
    struct pop3_md_cache_ent key = {0, 0, uniq};
    return bsearch(&key, c->e, c->n, sizeof *c->e, pop3_md_cache_cmp);
}

/* pop3_md_cache_write - best effort, under the mailbox lock. */
static void pop3_md_cache_write(const struct pop3_md *md)
{
    char tmp[POP3_MD_PATH_MAX], dst[POP3_MD_PATH_MAX];
    if (pop3_md_join(tmp, md->path, POP3_MD_CACHE_TMP, NULL) < 0 ||
        pop3_md_join(dst, md->path, POP3_MD_CACHE_NAME, NULL) < 0)
        return;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    FILE *f = fdopen(fd, "we");
    if (!f) {
        close(fd);
        unlink(tmp);
        return;
    }
    int bad = fputs(POP3_MD_CACHE_MAGIC, f) < 0;
    for (size_t i = 0; i < md->n && !bad; i++) {
        const struct pop3_md_msg *m = &md->msgs[i];
        if (m->file_size == UINT64_MAX)
            continue;
        bad =
            fprintf(f, "%llu %llu %.*s\n", (unsigned long long)m->file_size,
                    (unsigned long long)m->info.size, (int)pop3_md_uniq_len(m->name), m->name) < 0;
    }
    if (fclose(f) != 0 || bad || rename(tmp, dst) < 0)
        unlink(tmp);
}

/* ---- sizes ---- */

static int pop3_md_open_msg(struct pop3_md *md, struct pop3_md_msg *m);

/* pop3_md_scan_size - read the file once to compute its retrieved size. */
static int pop3_md_scan_size(struct pop3_md *md, struct pop3_md_msg *m, char *buf, size_t bufsz)
{
    int fd = pop3_md_open_msg(md, m);
    if (fd < 0)
        return fd;
    uint64_t total = 0, file = 0;
    int prev_cr = 0, bol = 1;
    for (;;) {
        ssize_t r = read(fd, buf, bufsz);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return PST_EIO;
        }
        if (r == 0)
            break;
        file += (uint64_t)r;
        total += pop3_wire_size_chunk(buf, (size_t)r, &prev_cr, &bol);
    }
    close(fd);
    m->file_size = file;
    m->info.size = total + (bol ? 0 : prev_cr ? 1 : 2);
    m->scanned = 1;
    return 0;
}

static int pop3_md_stat_size(struct pop3_md *md, struct pop3_md_msg *m)
{
    char p[POP3_MD_PATH_MAX];
    struct stat st;
    if (pop3_md_join(p, md->path, m->in_cur ? "cur" : "new", m->name) < 0)
        return PST_ELIMIT;
    if (stat(p, &st) < 0)
        return PST_EIO;
    m->file_size = (uint64_t)st.st_size;
    return 0;
}

/* pop3_md_size_one - fill m's info.size. 0, PST_ENOENT if the file vanished, or PST_E*. */
static int pop3_md_size_one(struct pop3_md *md, struct pop3_md_msg *m,
                            const struct pop3_md_cache *cache, char **buf, int *dirty)
{
    if (m->info.size != UINT64_MAX)
        return 0;
    const struct pop3_md_cache_ent *e = pop3_md_cache_find(cache, m->name);
    if (e && m->file_size == UINT64_MAX) {
        int rc = pop3_md_stat_size(md, m);
        if (rc < 0)
            return rc == PST_EIO && errno == ENOENT ? PST_ENOENT : rc;
    }
    if (e && e->file_size == m->file_size) {
        m->info.size = e->wire_size;
        return 0;
    }
    if (!*buf && !(*buf = malloc(POP3_MD_READ_CHUNK)))
        return PST_ENOMEM;
    *dirty = 1;
    int rc = pop3_md_scan_size(md, m, *buf, POP3_MD_READ_CHUNK);
    return rc == PST_EIO && errno == ENOENT ? PST_ENOENT : rc;
}

/* pop3_md_sizes - fill every info.size; drops messages that vanished since the snapshot. */
static int pop3_md_sizes(struct pop3_md *md)
{
    struct pop3_md_cache cache;
    pop3_md_cache_load(md, &cache);
    char *buf = NULL;
    int rc = 0, dirty = 0;
    size_t keep = 0;
    for (size_t i = 0; i < md->n; i++) {
        struct pop3_md_msg *m = &md->msgs[i];
        int r = rc == 0 ? pop3_md_size_one(md, m, &cache, &buf, &dirty) : 0;
        if (r < 0 && r != PST_ENOENT)
            rc = r;
        if (r == PST_ENOENT) {
            free(m->name);
            continue;
        }
        md->msgs[keep++] = *m;
    }
    md->n = keep;
    free(buf);
    pop3_md_cache_free(&cache);
    if (rc == 0 && dirty)
        pop3_md_cache_write(md);
    return rc;
}

/* ---- open, relocate ---- */

/* pop3_md_relocate - m's file is gone from where the snapshot saw it: look for its unique name in
 * cur/ and new/ (another reader may have moved it or changed flags). 0 if found, PST_ENOENT if not.
 */
static int pop3_md_relocate(struct pop3_md *md, struct pop3_md_msg *m)
{
    static const char *const subs[2] = {"cur", "new"};
    size_t ulen = pop3_md_uniq_len(m->name);
    for (int s = 0; s < 2; s++) {
        char p[POP3_MD_PATH_MAX];
        if (pop3_md_join(p, md->path, subs[s], NULL) < 0)
            return PST_ELIMIT;
        DIR *d = opendir(p);
        if (!d)
            continue;
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (pop3_md_uniq_len(de->d_name) != ulen || memcmp(de->d_name, m->name, ulen) != 0)
                continue;
            char *nn = strdup(de->d_name);
            closedir(d);
            if (!nn)
                return PST_ENOMEM;
            free(m->name);
            m->name = nn;
            m->in_cur = s == 0;
            return 0;
        }
        closedir(d);
    }
    return PST_ENOENT;
}

/* pop3_md_open_msg - open m's file for reading (relocating it if moved). fd or PST_E*. */
static int pop3_md_open_msg(struct pop3_md *md, struct pop3_md_msg *m)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        char p[POP3_MD_PATH_MAX];
        if (pop3_md_join(p, md->path, m->in_cur ? "cur" : "new", m->name) < 0)
            return PST_ELIMIT;
        int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0)
            return fd;
        if (errno != ENOENT || attempt > 0)
            return PST_EIO;
        int rc = pop3_md_relocate(md, m);
        if (rc < 0)
            return rc;
    }
    return PST_ENOENT;
}

static int pop3_md_lock(struct pop3_md *md)
{
    char p[POP3_MD_PATH_MAX];
    if (pop3_md_join(p, md->path, POP3_MD_LOCK_NAME, NULL) < 0)
        return PST_ELIMIT;
    md->lockfd = open(p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (md->lockfd < 0)
        return PST_EIO;
    if (flock(md->lockfd, LOCK_EX | LOCK_NB) < 0)
        return errno == EWOULDBLOCK ? PST_EAGAIN : PST_EIO;
    return 0;
}

static void pop3_md_close(struct pop3_mbox **mbp)
{
    struct pop3_md *md = (struct pop3_md *)*mbp;
    if (!md)
        return;
    PST_ASSERT(md->stream == NULL); /* the session closes its stream first */
    if (md->lockfd >= 0)
        close(md->lockfd); /* releases the flock */
    pop3_md_free_msgs(md);
    free(md->path);
    free(md);
    *mbp = NULL;
}

int pop3_maildir_open(const char *path, struct pop3_mbox **out)
{
    *out = NULL;
    struct pop3_md *md = calloc(1, sizeof *md);
    if (!md)
        return PST_ENOMEM;
    md->base.ops = &pop3_md_ops;
    md->lockfd = -1;
    md->path = strdup(path);
    struct pop3_mbox *mb = &md->base;
    int rc = md->path ? maildir_create(path) : PST_ENOMEM;
    if (rc == 0)
        rc = pop3_md_lock(md);
    if (rc == 0)
        rc = pop3_md_scan_dir(md, "new", 0);
    if (rc == 0)
        rc = pop3_md_scan_dir(md, "cur", 1);
    if (rc == 0)
        rc = pop3_md_sizes(md);
    if (rc == 0) {
        if (md->n > 1)
            qsort(md->msgs, md->n, sizeof *md->msgs, pop3_md_cmp);
        rc = pop3_md_assign_uidls(md);
    }
    if (rc < 0) {
        int e = errno;
        pop3_md_close(&mb);
        errno = e;
        return rc;
    }
    *out = mb;
    return 0;
}

/* ---- ops ---- */

static size_t pop3_md_count(struct pop3_mbox *mb)
{
    return ((struct pop3_md *)mb)->n;
}

static const struct pop3_msginfo *pop3_md_info(struct pop3_mbox *mb, size_t i)
{
    struct pop3_md *md = (struct pop3_md *)mb;
    PST_ASSERT(i < md->n);
    return &md->msgs[i].info;
}

static int pop3_md_stream_open(struct pop3_mbox *mb, size_t i, long lines, pop3_wake_fn wake,
                               void *arg, struct pop3_stream **out)
{
    struct pop3_md *md = (struct pop3_md *)mb;
    PST_ASSERT(i < md->n && md->stream == NULL);
    struct pop3_md_stream *st = malloc(sizeof *st);
    if (!st)
        return PST_ENOMEM;
    st->md = md;
    st->got = 0;
    st->expect = md->msgs[i].file_size;
    st->fd = pop3_md_open_msg(md, &md->msgs[i]);
    if (st->fd < 0) {
        int rc = st->fd;
        free(st);
        return rc;
    }
    pop3_wire_init(&st->w, lines);
    md->stream = st;
    *out = (struct pop3_stream *)st;
    return 0;
}

static int pop3_md_stream_read(struct pop3_stream *sp, struct evbuffer *out, size_t max)
{
    struct pop3_md_stream *st = (struct pop3_md_stream *)sp;
    size_t produced = 0;
    while (produced < max) {
        if (st->w.done)
            return 1;
        ssize_t r = read(st->fd, st->buf, sizeof st->buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return PST_EIO;
        struct evbuffer_iovec v;
        size_t need = POP3_WIRE_OUT_MAX((size_t)r);
        if (evbuffer_reserve_space(out, (ev_ssize_t)need, &v, 1) < 1 || v.iov_len < need)
            return PST_ENOMEM;
        size_t o = pop3_wire_encode(&st->w, st->buf, (size_t)r, v.iov_base);
        st->got += (uint64_t)r;
        /* A short read at the known file size is the end: saves the read() that returns 0. */
        int eof = r == 0 || ((size_t)r < sizeof st->buf && st->got == st->expect);
        if (eof)
            o += pop3_wire_finish(&st->w, (char *)v.iov_base + o);
        v.iov_len = o;
        if (evbuffer_commit_space(out, &v, 1) < 0)
            return PST_ENOMEM;
        produced += o;
        if (eof || st->w.done)
            return 1;
    }
    return 0;
}

static void pop3_md_stream_close(struct pop3_stream **sp)
{
    struct pop3_md_stream *st = (struct pop3_md_stream *)*sp;
    if (!st)
        return;
    if (st->fd >= 0)
        close(st->fd);
    st->md->stream = NULL;
    free(st);
    *sp = NULL;
}

/* pop3_md_unlink - remove m's file; a file already gone counts as removed. */
static int pop3_md_unlink(struct pop3_md *md, struct pop3_md_msg *m, int touched[2])
{
    for (int attempt = 0; attempt < 2; attempt++) {
        char p[POP3_MD_PATH_MAX];
        if (pop3_md_join(p, md->path, m->in_cur ? "cur" : "new", m->name) < 0)
            return PST_ELIMIT;
        if (unlink(p) == 0) {
            touched[m->in_cur] = 1;
            return 0;
        }
        if (errno != ENOENT)
            return PST_EIO;
        if (attempt == 0 && pop3_md_relocate(md, m) < 0)
            return 0;
    }
    return 0;
}

static int pop3_md_commit(struct pop3_mbox *mb, const unsigned char *deleted, pop3_commit_done done,
                          void *arg)
{
    struct pop3_md *md = (struct pop3_md *)mb;
    int touched[2] = {0, 0};
    size_t failed = 0;
    int first = 0;
    for (size_t i = 0; i < md->n; i++) {
        if (!deleted[i])
            continue;
        int rc = pop3_md_unlink(md, &md->msgs[i], touched);
        if (rc < 0) {
            failed++;
            if (!first)
                first = rc;
        }
    }
    static const char *const subs[2] = {"new", "cur"};
    for (int s = 0; s < 2; s++) {
        char p[POP3_MD_PATH_MAX];
        if (!touched[s])
            continue;
        if (pop3_md_join(p, md->path, subs[s], NULL) < 0 || fsu_fsync_dir(p) < 0) {
            if (!first)
                first = PST_EIO;
            failed++;
        }
    }
    char note[96];
    if (first < 0)
        snprintf(note, sizeof note, "%zu deletion(s) could not be completed", failed);
    done(arg, first, first < 0 ? note : NULL);
    return 0;
}

static const struct pop3_mbox_ops pop3_md_ops = {
    .name = "maildir",
    .count = pop3_md_count,
    .info = pop3_md_info,
    .stream_open = pop3_md_stream_open,
    .stream_read = pop3_md_stream_read,
    .stream_close = pop3_md_stream_close,
    .commit = pop3_md_commit,
    .close = pop3_md_close,
};

/* ---- the backend: <mail_dir>/<user>/ ---- */

struct pop3_md_backend {
    const char *mail_dir; /* borrowed */
};

static int pop3_md_backend_open(void *ctx, const char *user, pop3_open_done done, void *arg,
                                struct pop3_open_req **req)
{
    struct pop3_md_backend *b = ctx;
    *req = NULL;
    if (!user[0] || user[0] == '.' || strchr(user, '/'))
        return PST_EINVAL;
    char p[POP3_MD_PATH_MAX];
    int n = snprintf(p, sizeof p, "%s/%s", b->mail_dir, user);
    if (n < 0 || (size_t)n >= sizeof p)
        return PST_ELIMIT;
    struct pop3_mbox *mb = NULL;
    int rc = pop3_maildir_open(p, &mb);
    done(arg, rc, mb);
    return 0;
}

static void pop3_md_backend_cancel(void *ctx, struct pop3_open_req *req)
{
    (void)ctx;
    (void)req; /* never pending */
}

static void pop3_md_backend_free(void *ctx)
{
    free(ctx);
}

static const struct pop3_backend_ops pop3_md_backend_ops = {
    .name = "maildir",
    .open = pop3_md_backend_open,
    .cancel = pop3_md_backend_cancel,
    .free = pop3_md_backend_free,
};

int pop3_maildir_backend_init(struct pop3_backend *be, const char *mail_dir)
{
    struct pop3_md_backend *b = calloc(1, sizeof *b);
    if (!b)
        return PST_ENOMEM;
    b->mail_dir = mail_dir;
    be->ops = &pop3_md_backend_ops;
    be->ctx = b;
    return 0;
}
