/*
 * pop3_proxy.c - the aggregating POP3 proxy (pop3px): one mailbox made of
 * the user's local Postern Maildir and every upstream POP3 mailbox of the
 * user's profile (pop3_upstream.h), behind the pop3_mbox.h interface.
 *
 * Backend selection: open(user) reads the user's upstreams from the state
 * database. None: the local Maildir mailbox itself (pop3_maildir_open), so
 * a user without a profile sees no difference. Some: a merged mailbox.
 *
 * Sources of a merged mailbox, in this order (the merged numbering):
 *   0      the local Maildir <mail_dir>/<user>/ (always; its exclusive lock
 *          doubles as the per-user proxy lock: a second session of the same
 *          user gets [IN-USE] before any upstream is contacted)
 *   1..n   the upstreams, by id (pop3u_list order)
 * Messages keep their order within a source.
 *
 * Open (RFC 1939 4, 5): every upstream is contacted IN PARALLEL with pop3c:
 * connect, TLS (implicit / STLS, certificates checked against [client]
 * tls_ca_file), login, then STAT, LIST and UIDL pipelined. The open
 * completes when every source has answered or has been left out; a source
 * still pending after POP3PX_OPEN_FACTOR x [pop3] upstream_timeout is left
 * out too. A source left out (down, refused login, bad password key,
 * garbage, timeout) is logged, counted as an error in its statistics and
 * named in pop3px_mbox_note(); the user gets the rest.
 *
 * Transaction: STAT, LIST, UIDL, NOOP, DELE and RSET are answered by the
 * session from the snapshot (count/info): no upstream round trip. RETR and
 * TOP go to the source holding the message: the local Maildir's stream,
 * or pop3c_retr/top. Upstream bodies come un-stuffed from pop3c and are
 * re-encoded to wire form (pop3_wire_*: CRLF line ends, dot-stuffing). The
 * session is woken once per batch of upstream input (a deferred event), so
 * a small message - body and end - reaches the client in one write. At
 * most POP3PX_BUF_HIGH bytes are buffered per stream: above it the upstream
 * is paused (pop3c_pause) until the session has taken the buffer below
 * POP3PX_BUF_LOW, so a slow client slows the upstream instead of growing
 * memory. An upstream that died fails stream_open: the session answers
 * -ERR [SYS/TEMP]; one that dies in the middle of a transfer fails the
 * stream (PST_EIO; the session drops the client if bytes were sent).
 *
 * Read-ahead (one message): every proxied RETR costs the upstream's round
 * trip on top of the client's, so a client that RETRs in order (most do)
 * waits twice per message. When the client RETRs message i and message
 * i + 1 of the merged view is held by the SAME upstream and its LIST size
 * is at most POP3PX_PREFETCH_MAX (1 MiB), "RETR <its number>" is queued
 * right behind i's (pop3c pipelines it with PIPELINING, else sends it when
 * i's reply is complete) and its reply is buffered without a reader
 * (px->pf). A RETR of i + 1 then takes that buffer (complete, or still
 * filling: the rest streams as usual) and starts the next read-ahead.
 * Anything else that reaches the backend - TOP, RETR of another message,
 * the commit (QUIT) - first drops it: its reply is still read from the
 * upstream in order (a NULL entry of the per-upstream in-flight FIFO
 * s->fl) and thrown away, so the connection stays in step; DELE, NOOP,
 * RSET and listings never reach the backend. Bounds: one read-ahead per
 * session, never TOP, never across upstreams, never more than one message
 * ahead; a read-ahead whose body passes the cap (a LIST size that lied) is
 * dropped and RETRed again if asked. An upstream failure during a
 * read-ahead only marks the source down (logged): the client hears of it
 * only if it then asks for one of its messages (-ERR [SYS/TEMP]). A -ERR to
 * the read-ahead is kept and given to the RETR that asks for it, as if it
 * had been sent then. The deletion marks live in the session, so a message
 * already marked deleted may be read ahead for nothing (a RETR the upstream
 * serves in vain; the client cannot ask for it).
 *
 * Unique-ids (RFC 1939 7): see pop3px_uidl() in pop3_proxy.h. Local ids
 * unchanged; upstream ids "<id>:<uid>", or "~" + 48 hex digits of SHA-256
 * when that is longer than 70 characters; unique across sources by
 * construction and stable as long as the upstream's own ids are.
 *
 * Commit (UPDATE, RFC 1939 6): the local deletions are done at once; each
 * upstream gets its DELEs and then QUIT, all upstreams in parallel. An
 * upstream's deletions count as done only when every DELE got +OK and QUIT
 * got +OK (the upstream's UPDATE). Otherwise the commit fails with a note
 * naming each such upstream, and the session answers -ERR. Upstreams with
 * nothing to delete are QUIT as well (a clean logout); their result does
 * not change the outcome. A mailbox closed without commit (dropped client,
 * shutdown) closes the upstream connections without QUIT: nothing is
 * deleted anywhere.
 *
 * Statistics (pop3_stats): per source ("local" for the Maildir, else the
 * upstream id) and per user (""): sessions, messages and bytes retrieved
 * (RETR; TOP adds bytes), errors with the last error text. Counted in
 * memory and written once when the mailbox is closed.
 *
 * Failure policy: nothing an upstream sends can crash the proxy or stall
 * it beyond the timeouts; every failure is a logged, per-source outcome.
 * Database reads happen on the event-loop thread (small indexed queries).
 * Passwords are wiped right after pop3c_connect copies them.
 */
#include "pop3/pop3_proxy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/evp.h>

#include "lib/db.h"
#include "lib/log.h"
#include "pop3/pop3_reply.h"
#include "pop3/pop3_upstream.h"
#include "pop3/pop3c.h"

#define POP3PX_BUF_HIGH (256 * 1024) /* pause the upstream above this many buffered bytes */
#define POP3PX_BUF_LOW (64 * 1024)   /* ... resume below this */
#define POP3PX_OPEN_FACTOR 3         /* open deadline = this x upstream_timeout */
#define POP3PX_PATH_MAX 4096
#define POP3PX_WHY_MAX 200
#define POP3PX_LOCAL_ID "local"           /* the Maildir source in logs and statistics */
#define POP3PX_PREFETCH_MAX (1024 * 1024) /* read ahead messages of at most this LIST size */
#define POP3PX_FLIGHT_MAX 4 /* RETR/TOP outstanding per upstream (current, read-ahead, drains) */

/* ------------------------------------------------------------------------- */
/* merge logic */

static int pop3px_uid_ok(const char *uid)
{
    size_t n = strlen(uid);
    if (n == 0 || n > POP3_UIDL_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)uid[i] < 0x21 || (unsigned char)uid[i] > 0x7e)
            return 0;
    return 1;
}

static int pop3px_hash_uidl(const char *src_id, const char *uid, uint32_t msgno, uint64_t size,
                            unsigned dup, char out[POP3_UIDL_MAX + 1])
{
    char in[POP3U_ID_MAX + POP3_UIDL_MAX + 64];
    int n;
    if (uid)
        n = snprintf(in, sizeof in, "%s%c%s%c%u", src_id ? src_id : "", 0, uid, 0, dup);
    else
        n = snprintf(in, sizeof in, "%s%c#%lu:%llu%c%u", src_id ? src_id : "", 0,
                     (unsigned long)msgno, (unsigned long long)size, 0, dup);
    if (n < 0 || (size_t)n >= sizeof in)
        return PST_EINVAL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (EVP_Digest(in, (size_t)n, md, &mdlen, EVP_sha256(), NULL) != 1 ||
        mdlen * 2 < POP3PX_HASH_HEX)
        return PST_ETLS;
    static const char hex[] = "0123456789abcdef";
    out[0] = '~';
    for (size_t k = 0; k < POP3PX_HASH_HEX / 2; k++) {
        out[1 + 2 * k] = hex[md[k] >> 4];
        out[2 + 2 * k] = hex[md[k] & 15];
    }
    out[1 + POP3PX_HASH_HEX] = '\0';
    return 0;
}

int pop3px_uidl(const char *src_id, const char *uid, uint32_t msgno, uint64_t size, unsigned dup,
                char out[POP3_UIDL_MAX + 1])
{
    if (src_id && (!src_id[0] || strlen(src_id) > POP3U_ID_MAX || strchr(src_id, ':')))
        return PST_EINVAL;
    if (uid && !pop3px_uid_ok(uid))
        return PST_EINVAL;
    if (!uid || dup > 0)
        return pop3px_hash_uidl(src_id, uid, msgno, size, dup, out);
    if (!src_id) {
        if (uid[0] == '~')
            return pop3px_hash_uidl(NULL, uid, msgno, size, 0, out);
        memcpy(out, uid, strlen(uid) + 1);
        return 0;
    }
    size_t il = strlen(src_id), ul = strlen(uid);
    if (il + 1 + ul > POP3_UIDL_MAX)
        return pop3px_hash_uidl(src_id, uid, msgno, size, 0, out);
    memcpy(out, src_id, il);
    out[il] = ':';
    memcpy(out + il + 1, uid, ul + 1);
    return 0;
}

int pop3px_table_init(struct pop3px_table *t, uint32_t count)
{
    memset(t, 0, sizeof *t);
    if (count > POP3C_ENTRIES_MAX)
        return PST_ELIMIT;
    t->msgs = calloc(count ? count : 1, sizeof *t->msgs);
    if (!t->msgs)
        return PST_ENOMEM;
    t->count = count;
    return 0;
}

void pop3px_table_free(struct pop3px_table *t)
{
    free(t->msgs);
    t->msgs = NULL;
    t->count = 0;
}

int pop3px_table_size(struct pop3px_table *t, uint32_t msgno, uint64_t size)
{
    if (msgno == 0 || msgno > t->count || t->msgs[msgno - 1].has_size)
        return PST_EINVAL;
    t->msgs[msgno - 1].size = size;
    t->msgs[msgno - 1].has_size = 1;
    return 0;
}

int pop3px_table_uid(struct pop3px_table *t, uint32_t msgno, const char *uid)
{
    if (msgno == 0 || msgno > t->count || t->msgs[msgno - 1].has_uid || !uid || !pop3px_uid_ok(uid))
        return PST_EINVAL;
    struct pop3px_smsg *m = &t->msgs[msgno - 1];
    memcpy(m->uid, uid, strlen(uid) + 1);
    m->has_uid = 1;
    return 0;
}

/* sort helper: one source's messages by (uid, msgno) to number repeated uids */
struct pop3px_ref {
    const struct pop3px_smsg *m;
    uint32_t msgno;
    unsigned dup;
};

static int pop3px_ref_cmp(const void *a, const void *b)
{
    const struct pop3px_ref *x = a, *y = b;
    int c = strcmp(x->m->uid, y->m->uid);
    if (c)
        return c;
    return x->msgno < y->msgno ? -1 : x->msgno > y->msgno;
}

static int pop3px_ref_msgno_cmp(const void *a, const void *b)
{
    const struct pop3px_ref *x = a, *y = b;
    return x->msgno < y->msgno ? -1 : x->msgno > y->msgno;
}

/* pop3px_merge_src - append source s's listed messages to out[*n..]. */
static int pop3px_merge_src(const char *id, const struct pop3px_table *t, uint32_t s,
                            struct pop3px_msg *out, size_t *n)
{
    struct pop3px_ref *refs = calloc(t->count ? t->count : 1, sizeof *refs);
    if (!refs)
        return PST_ENOMEM;
    size_t k = 0;
    for (uint32_t i = 0; i < t->count; i++) {
        if (!t->msgs[i].has_size)
            continue;
        refs[k].m = &t->msgs[i];
        refs[k].msgno = i + 1;
        k++;
    }
    /* number the repeats of a uid (a broken server) in message order */
    qsort(refs, k, sizeof *refs, pop3px_ref_cmp);
    for (size_t i = 1; i < k; i++)
        if (refs[i].m->has_uid && refs[i - 1].m->has_uid &&
            strcmp(refs[i].m->uid, refs[i - 1].m->uid) == 0)
            refs[i].dup = refs[i - 1].dup + 1;
    qsort(refs, k, sizeof *refs, pop3px_ref_msgno_cmp);
    int rc = 0;
    for (size_t i = 0; i < k && rc == 0; i++) {
        struct pop3px_msg *m = &out[*n];
        m->src = s;
        m->msgno = refs[i].msgno;
        m->info.size = refs[i].m->size;
        rc = pop3px_uidl(id, refs[i].m->has_uid ? refs[i].m->uid : NULL, refs[i].msgno,
                         refs[i].m->size, refs[i].dup, m->info.uidl);
        if (rc == 0)
            (*n)++;
    }
    free(refs);
    return rc;
}

int pop3px_merge(const char *const *ids, const struct pop3px_table *const *tables, size_t n,
                 struct pop3px_msg **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    size_t total = 0;
    for (size_t s = 0; s < n; s++)
        if (tables[s])
            total += tables[s]->count;
    struct pop3px_msg *a = calloc(total ? total : 1, sizeof *a);
    if (!a)
        return PST_ENOMEM;
    size_t k = 0;
    for (size_t s = 0; s < n; s++) {
        if (!tables[s])
            continue;
        int rc = pop3px_merge_src(ids[s], tables[s], (uint32_t)s, a, &k);
        if (rc < 0) {
            free(a);
            return rc;
        }
    }
    *out = a;
    *nout = k;
    return 0;
}

size_t pop3px_deletions(const struct pop3px_msg *msgs, size_t n, const unsigned char *deleted,
                        uint32_t src, uint32_t *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (deleted[i] && msgs[i].src == src)
            out[k++] = msgs[i].msgno;
    return k;
}

/* ------------------------------------------------------------------------- */
/* the merged mailbox */

enum pop3px_src_state { POP3PX_PENDING = 0, POP3PX_READY, POP3PX_DOWN };

struct pop3px_mbox;
struct pop3px_stream;

struct pop3px_src {
    struct pop3px_mbox *px;
    char id[POP3U_ID_MAX + 1]; /* upstream id, or POP3PX_LOCAL_ID */
    int local;
    enum pop3px_src_state state;
    struct pop3c *c;          /* owned (upstream) */
    struct pop3_mbox *md;     /* owned (local) */
    struct pop3px_table t;    /* STAT / LIST / UIDL (upstream) */
    int have_table;           /* STAT answered: t is set up */
    int no_uidl;              /* UIDL refused: unstable fallback ids */
    char why[POP3PX_WHY_MAX]; /* why it was left out / died */
    /* RETR/TOP replies outstanding, oldest first: the stream each feeds, NULL = drain */
    struct pop3px_stream *fl[POP3PX_FLIGHT_MAX];
    unsigned fhead, nflight;
    int paused; /* pop3c_pause()d for the reader of the oldest reply */
    /* commit */
    size_t ndele, dele_failed;
    /* statistics (written at close) */
    int session;
    int64_t messages, bytes, errors;
};

struct pop3px_mbox {
    struct pop3_mbox base; /* first */
    struct pop3px_be *be;
    char user[POP3U_USER_MAX + 1];
    struct pop3px_src *srcs;
    size_t nsrc;
    size_t pending;                /* sources still opening (+1 while open() runs) */
    int open_finished;             /* open_done was called */
    struct event *timer;           /* open deadline */
    struct event *wake_ev;         /* wakes the session's stream reader from the loop */
    struct pop3px_stream *wake_st; /* ... this stream (NULL: none / closed) */
    struct pop3px_stream *pf;      /* the read-ahead RETR (no reader yet), or NULL */
    pop3_open_done open_done;
    void *open_arg;
    struct pop3px_msg *msgs;
    size_t nmsgs;
    char note[POP3PX_NOTE_MAX];
    /* commit */
    pop3_commit_done commit_done;
    void *commit_arg;
    size_t commit_pending;
    int commit_rc;
    char commit_note[POP3PX_NOTE_MAX];
};

struct pop3px_stream {
    struct pop3px_src *src;
    struct pop3_stream *inner; /* local Maildir stream */
    struct evbuffer *buf;      /* upstream: wire form not yet taken */
    struct pop3_wire w;
    int complete, failed, waiting, top;
    int counted; /* statistics taken */
    size_t idx;  /* merged message index */
    uint64_t bytes;
    pop3_wake_fn wake; /* NULL: a read-ahead nobody reads yet */
    void *arg;
};

struct pop3px_be {
    const struct cfg *cfg;
    struct event_base *base;
    struct worker_pool *resolver;
    struct db *db;
    struct pop3u_key key;
    int have_key;
    SSL_CTX *tls;
};

static const struct pop3_mbox_ops pop3px_ops;

static void pop3px_stream_free(struct pop3px_stream **stp);

static void pop3px_note_add(char *note, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* pop3px_note_add - append "; text" (or text) to note, cut at POP3PX_NOTE_MAX. */
static void pop3px_note_add(char *note, const char *fmt, ...)
{
    size_t len = strlen(note);
    if (len + 4 >= POP3PX_NOTE_MAX)
        return;
    if (len) {
        memcpy(note + len, "; ", 3);
        len += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(note + len, POP3PX_NOTE_MAX - len, fmt, ap);
    va_end(ap);
    if (n < 0)
        note[len] = '\0'; /* a cut note is still useful: truncation is accepted here */
}

static void pop3px_stats_flush(struct pop3px_mbox *px)
{
    struct db *db = px->be->db;
    int64_t msgs = 0, bytes = 0, errors = 0;
    for (size_t i = 0; i < px->nsrc; i++) {
        struct pop3px_src *s = &px->srcs[i];
        msgs += s->messages;
        bytes += s->bytes;
        errors += s->errors;
        if (!s->session && !s->errors)
            continue;
        if (pop3u_stat_add(db, px->user, s->id, s->session, s->messages, s->bytes, s->errors,
                           s->errors ? s->why : NULL) < 0)
            log_warn("pop3px stats_failed user=%s upstream=%s err=\"%s\"", px->user, s->id,
                     db_errmsg(db));
    }
    if (pop3u_stat_add(db, px->user, "", 1, msgs, bytes, errors, errors ? px->note : NULL) < 0)
        log_warn("pop3px stats_failed user=%s err=\"%s\"", px->user, db_errmsg(db));
}

static void pop3px_free(struct pop3px_mbox **pxp)
{
    struct pop3px_mbox *px = *pxp;
    if (!px)
        return;
    pop3px_stream_free(&px->pf);
    for (size_t i = 0; i < px->nsrc; i++) {
        struct pop3px_src *s = &px->srcs[i];
        pop3c_free(&s->c);
        s->nflight = 0;
        if (s->md)
            pop3_mbox_close(&s->md);
        pop3px_table_free(&s->t);
    }
    if (px->timer)
        event_free(px->timer);
    if (px->wake_ev)
        event_free(px->wake_ev);
    free(px->srcs);
    free(px->msgs);
    free(px);
    *pxp = NULL;
}

/* pop3px_src_down - leave source s out (during open) or mark it dead (later). */
static void pop3px_src_down(struct pop3px_src *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void pop3px_src_down(struct pop3px_src *s, const char *fmt, ...)
{
    if (s->state == POP3PX_DOWN)
        return;
    int was_open = s->state == POP3PX_READY;
    s->state = POP3PX_DOWN;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->why, sizeof s->why, fmt, ap);
    va_end(ap);
    if (n < 0)
        s->why[0] = '\0'; /* truncation of the reason is accepted */
    s->errors++;
    char q[POP3PX_WHY_MAX + 16];
    log_warn("pop3px upstream_%s user=%s upstream=%s reason=%s", was_open ? "lost" : "unavailable",
             s->px->user, s->id, log_quote(q, sizeof q, s->why, strlen(s->why)));
    if (s->c && s->nflight == 0)
        pop3c_free(&s->c); /* a RETR in flight gets its done callback from pop3c first */
}

/* pop3px_open_complete - every source answered or was left out: build the view, call done. */
static void pop3px_open_complete(struct pop3px_mbox *px)
{
    if (px->timer)
        event_del(px->timer);
    const char **ids = calloc(px->nsrc, sizeof *ids);
    const struct pop3px_table **tabs = calloc(px->nsrc, sizeof *tabs);
    size_t down = 0;
    char names[POP3PX_NOTE_MAX] = "";
    for (size_t i = 0; i < px->nsrc; i++) {
        struct pop3px_src *s = &px->srcs[i];
        if (ids && tabs) {
            ids[i] = s->local ? NULL : s->id;
            tabs[i] = s->state == POP3PX_READY && !s->local ? &s->t : NULL;
        }
        if (s->state == POP3PX_READY)
            s->session = 1;
        if (s->state != POP3PX_DOWN)
            continue;
        down++;
        size_t l = strlen(names);
        int n = snprintf(names + l, sizeof names - l, "%s%s", l ? ", " : "", s->id);
        if (n < 0 || (size_t)n >= sizeof names - l)
            names[l] = '\0'; /* too many to name: the count still says it */
    }
    /* the local Maildir's listing comes from its own mailbox */
    struct pop3px_table local = {0, NULL};
    int rc = ids && tabs ? 0 : PST_ENOMEM;
    struct pop3px_src *l0 = &px->srcs[0];
    if (rc == 0 && l0->local && l0->state == POP3PX_READY) {
        size_t cnt = pop3_mbox_count(l0->md);
        rc = pop3px_table_init(&local, (uint32_t)(cnt > POP3C_ENTRIES_MAX ? 0 : cnt));
        for (size_t i = 0; rc == 0 && i < local.count; i++) {
            const struct pop3_msginfo *mi = pop3_mbox_info(l0->md, i);
            rc = pop3px_table_size(&local, (uint32_t)i + 1, mi->size);
            if (rc == 0)
                rc = pop3px_table_uid(&local, (uint32_t)i + 1, mi->uidl);
        }
        tabs[0] = &local;
    }
    if (rc == 0)
        rc = pop3px_merge(ids, tabs, px->nsrc, &px->msgs, &px->nmsgs);
    pop3px_table_free(&local);
    free(ids);
    free(tabs);
    if (down)
        pop3px_note_add(px->note, "%zu upstream%s unavailable: %s", down, down > 1 ? "s" : "",
                        names);
    px->open_finished = 1;
    pop3_open_done done = px->open_done;
    void *arg = px->open_arg;
    if (rc < 0) {
        log_error("pop3px merge_failed user=%s err=\"%s\"", px->user, err_str(rc));
        pop3px_free(&px);
        done(arg, rc, NULL);
        return;
    }
    log_info("pop3px opened user=%s sources=%zu unavailable=%zu messages=%zu%s%s%s", px->user,
             px->nsrc, down, px->nmsgs, down ? " note=\"" : "", down ? px->note : "",
             down ? "\"" : "");
    done(arg, 0, &px->base);
}

/* pop3px_src_finished - one source's open is over (ready or left out). */
static void pop3px_src_finished(struct pop3px_mbox *px)
{
    PST_ASSERT(px->pending > 0);
    if (--px->pending == 0 && !px->open_finished)
        pop3px_open_complete(px);
}

/* ---- upstream open: callbacks ---- */

static void pop3px_on_ready(void *arg, int status, const char *why)
{
    struct pop3px_src *s = arg;
    if (status == 0 || s->state != POP3PX_PENDING)
        return;
    pop3px_src_down(s, "%s: %s", status == PST_EAUTH ? "login refused" : err_str(status), why);
    pop3px_src_finished(s->px);
}

static void pop3px_on_close(void *arg, int status, const char *why)
{
    struct pop3px_src *s = arg;
    if (s->state == POP3PX_READY)
        pop3px_src_down(s, "connection lost: %s", why ? why : err_str(status));
}

static void pop3px_on_stat(void *arg, const struct pop3c_reply *r)
{
    struct pop3px_src *s = arg;
    if (s->state != POP3PX_PENDING)
        return;
    int rc = r->status;
    if (rc == 0)
        rc = pop3px_table_init(&s->t, r->count);
    if (rc == 0) {
        s->have_table = 1;
        return;
    }
    pop3px_src_down(s, "STAT failed: %s", r->status ? r->text : err_str(rc));
    pop3px_src_finished(s->px);
}

static int pop3px_on_list_entry(void *arg, const struct pop3c_entry *e)
{
    struct pop3px_src *s = arg;
    if (!s->have_table || pop3px_table_size(&s->t, e->msgno, e->size) < 0)
        return PST_EINVAL;
    return 0;
}

static void pop3px_on_list(void *arg, const struct pop3c_reply *r)
{
    struct pop3px_src *s = arg;
    if (s->state != POP3PX_PENDING || r->status == 0)
        return;
    pop3px_src_down(s, "LIST failed: %s", r->text);
    pop3px_src_finished(s->px);
}

static int pop3px_on_uidl_entry(void *arg, const struct pop3c_entry *e)
{
    struct pop3px_src *s = arg;
    if (!s->have_table || pop3px_table_uid(&s->t, e->msgno, e->uid) < 0)
        return PST_EINVAL;
    return 0;
}

static void pop3px_on_uidl(void *arg, const struct pop3c_reply *r)
{
    struct pop3px_src *s = arg;
    if (s->state != POP3PX_PENDING)
        return;
    if (r->status == PST_EPERM) {
        /* RFC 1939 7: UIDL is optional; ids then depend on the message number (unstable) */
        log_warn("pop3px no_uidl user=%s upstream=%s action=\"unstable unique-ids\"", s->px->user,
                 s->id);
        s->no_uidl = 1;
        for (uint32_t i = 0; i < s->t.count; i++)
            s->t.msgs[i].has_uid = 0;
    } else if (r->status != 0) {
        pop3px_src_down(s, "UIDL failed: %s", r->text);
        pop3px_src_finished(s->px);
        return;
    }
    s->state = POP3PX_READY;
    log_info("pop3px upstream_ready user=%s upstream=%s messages=%u tls=%s", s->px->user, s->id,
             (unsigned)s->t.count, pop3c_tls_info(s->c) ? "yes" : "no");
    pop3px_src_finished(s->px);
}

/* pop3px_on_wake - the deferred wake-up of pop3px_stream_wake_reader. */
static void pop3px_on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct pop3px_mbox *px = arg;
    struct pop3px_stream *st = px->wake_st;
    px->wake_st = NULL;
    if (st)
        st->wake(st->arg); /* may close the stream and the mailbox */
}

static void pop3px_on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct pop3px_mbox *px = arg;
    for (size_t i = 0; i < px->nsrc; i++)
        if (px->srcs[i].state == POP3PX_PENDING)
            pop3px_src_down(&px->srcs[i], "no answer within %llds",
                            (long long)(POP3PX_OPEN_FACTOR * px->be->cfg->pop3_upstream_timeout));
    px->pending = 0;
    pop3px_open_complete(px);
}

/* ---- opening ---- */

static enum pop3c_tls pop3px_tls_mode(enum pop3u_tls t)
{
    return t == POP3U_TLS_IMPLICIT ? POP3C_TLS_IMPLICIT
           : t == POP3U_TLS_STLS   ? POP3C_TLS_STLS
                                   : POP3C_TLS_NONE;
}

/* pop3px_start_upstream - connect and queue STAT, LIST, UIDL. The source is pending or down. */
static void pop3px_start_upstream(struct pop3px_mbox *px, struct pop3px_src *s,
                                  struct pop3u_upstream *u)
{
    struct pop3px_be *be = px->be;
    s->state = POP3PX_PENDING;
    px->pending++;
    if (u->pass_status != 0) {
        pop3px_src_down(s, "%s",
                        u->pass_status == PST_ENOENT
                            ? "no proxy key file"
                            : "password cannot be decrypted with the proxy key");
        px->pending--;
        return;
    }
    if (u->tls == POP3U_TLS_NONE && !pop3u_host_is_loopback(u->host)) {
        pop3px_src_down(s, "TLS mode none is allowed for loopback hosts only");
        px->pending--;
        return;
    }
    char log_id[POP3U_USER_MAX + POP3U_ID_MAX + 2];
    int n = snprintf(log_id, sizeof log_id, "%s/%s", px->user, s->id);
    struct pop3c_params p = {
        .host = u->host,
        .port = u->port,
        .tls = pop3px_tls_mode(u->tls),
        .verify = POP3C_VERIFY_CA,
        .ca_file = be->cfg->client_tls_ca_file,
        .tls_ctx = be->tls,
        .user = u->username,
        .pass = u->password,
        .log_id = n > 0 && (size_t)n < sizeof log_id ? log_id : NULL,
        .resolver = be->resolver,
        .connect_timeout = (unsigned)be->cfg->pop3_upstream_timeout,
        .reply_timeout = (unsigned)be->cfg->pop3_upstream_timeout,
    };
    s->c = pop3c_connect(be->base, &p, pop3px_on_ready, s);
    pop3u_upstream_wipe(u);
    if (!s->c) {
        pop3px_src_down(s, "cannot start the connection");
        px->pending--;
        return;
    }
    pop3c_set_close_cb(s->c, pop3px_on_close, s);
    int rc = pop3c_stat(s->c, pop3px_on_stat, s);
    if (rc == 0)
        rc = pop3c_list(s->c, 0, pop3px_on_list_entry, pop3px_on_list, s);
    if (rc == 0)
        rc = pop3c_uidl(s->c, 0, pop3px_on_uidl_entry, pop3px_on_uidl, s);
    if (rc < 0) {
        pop3px_src_down(s, "cannot queue commands: %s", err_str(rc));
        px->pending--;
    }
}

static int pop3px_open_local(struct pop3px_be *be, const char *user, struct pop3_mbox **out)
{
    if (!user[0] || user[0] == '.' || strchr(user, '/'))
        return PST_EINVAL;
    char p[POP3PX_PATH_MAX];
    int n = snprintf(p, sizeof p, "%s/%s", be->cfg->mail_dir, user);
    if (n < 0 || (size_t)n >= sizeof p)
        return PST_ELIMIT;
    return pop3_maildir_open(p, out);
}

static void pop3px_load_key(struct pop3px_be *be)
{
    if (be->have_key)
        return;
    int rc = pop3u_key_load(be->cfg->pop3_upstream_key, 0, &be->key);
    if (rc == 0) {
        be->have_key = 1;
        return;
    }
    log_error("pop3px key_unavailable path=%s err=\"%s\"", be->cfg->pop3_upstream_key, err_str(rc));
}

static void pop3px_tls_init(struct pop3px_be *be)
{
    if (be->tls)
        return;
    be->tls = pop3c_tls_ctx_new(be->cfg->client_tls_ca_file);
    /* NULL: each pop3c session makes its own context (and reports the failure) */
}

/* pop3px_new - a merged mailbox of the local Maildir (already opened: md, or NULL with why)
 * and the n upstreams. */
static struct pop3px_mbox *pop3px_new(struct pop3px_be *be, const char *user, size_t n)
{
    struct pop3px_mbox *px = calloc(1, sizeof *px);
    if (!px)
        return NULL;
    px->base.ops = &pop3px_ops;
    px->be = be;
    size_t ul = strlen(user);
    memcpy(px->user, user, ul < POP3U_USER_MAX ? ul : POP3U_USER_MAX);
    px->srcs = calloc(n + 1, sizeof *px->srcs);
    px->timer = evtimer_new(be->base, pop3px_on_deadline, px);
    px->wake_ev = event_new(be->base, -1, 0, pop3px_on_wake, px);
    if (!px->srcs || !px->timer || !px->wake_ev) {
        pop3px_free(&px);
        return NULL;
    }
    px->nsrc = n + 1;
    for (size_t i = 0; i < px->nsrc; i++)
        px->srcs[i].px = px;
    return px;
}

static int pop3px_be_open(void *ctx, const char *user, pop3_open_done done, void *arg,
                          struct pop3_open_req **req)
{
    struct pop3px_be *be = ctx;
    *req = NULL;
    if (strlen(user) > POP3U_USER_MAX)
        return PST_EINVAL;
    pop3px_load_key(be);
    struct pop3u_upstream *ups = NULL;
    size_t nups = 0;
    int rc = pop3u_list(be->db, be->have_key ? &be->key : NULL, user, &ups, &nups);
    if (rc < 0) {
        log_error("pop3px profile_failed user=%s err=\"%s\" db=\"%s\"", user, err_str(rc),
                  db_errmsg(be->db));
        return rc;
    }
    struct pop3_mbox *md = NULL;
    int lrc = pop3px_open_local(be, user, &md);
    if (nups == 0 || lrc == PST_EAGAIN) {
        /* no profile: the plain Maildir; in use: [IN-USE] for the proxy too */
        pop3u_list_free(&ups, nups);
        done(arg, lrc, lrc == 0 ? md : NULL);
        return 0;
    }
    struct pop3px_mbox *px = pop3px_new(be, user, nups);
    if (!px) {
        pop3u_list_free(&ups, nups);
        pop3_mbox_close(&md);
        return PST_ENOMEM;
    }
    pop3px_tls_init(be);
    px->open_done = done;
    px->open_arg = arg;
    px->pending = 1; /* held while starting, so that no source completes the open early */
    struct pop3px_src *l0 = &px->srcs[0];
    l0->local = 1;
    memcpy(l0->id, POP3PX_LOCAL_ID, sizeof POP3PX_LOCAL_ID);
    l0->md = md;
    l0->state = POP3PX_READY;
    if (lrc < 0)
        pop3px_src_down(l0, "local Maildir: %s", err_str(lrc));
    for (size_t i = 0; i < nups; i++) {
        struct pop3px_src *s = &px->srcs[i + 1];
        memcpy(s->id, ups[i].id, sizeof s->id);
        pop3px_start_upstream(px, s, &ups[i]);
    }
    pop3u_list_free(&ups, nups);
    struct timeval tv = {(time_t)(POP3PX_OPEN_FACTOR * be->cfg->pop3_upstream_timeout), 0};
    evtimer_add(px->timer, &tv);
    log_info("pop3px opening user=%s upstreams=%zu", px->user, nups);
    if (px->pending == 1) {
        px->pending = 0;
        pop3px_open_complete(px); /* nothing to wait for */
        return 0;
    }
    px->pending--;
    *req = (struct pop3_open_req *)px;
    return 0;
}

static void pop3px_be_cancel(void *ctx, struct pop3_open_req *req)
{
    struct pop3px_mbox *px = (struct pop3px_mbox *)req;
    if (px && !px->open_finished)
        pop3px_free(&px);
}

static void pop3px_be_free(void *ctx)
{
    struct pop3px_be *be = ctx;
    if (!be)
        return;
    db_close(&be->db);
    pop3u_key_wipe(&be->key);
    if (be->tls)
        SSL_CTX_free(be->tls);
    free(be);
}

static const struct pop3_backend_ops pop3px_backend_ops = {
    .name = "proxy",
    .open = pop3px_be_open,
    .cancel = pop3px_be_cancel,
    .free = pop3px_be_free,
};

int pop3px_backend_init(struct pop3_backend *be, const struct cfg *cfg, struct event_base *base,
                        struct worker_pool *resolver)
{
    struct pop3px_be *b = calloc(1, sizeof *b);
    if (!b)
        return PST_ENOMEM;
    b->cfg = cfg;
    b->base = base;
    b->resolver = resolver;
    int rc = db_open(cfg->db_path, &b->db);
    if (rc < 0) {
        log_error("pop3px db_open_failed path=%s err=\"%s\"", cfg->db_path, err_str(rc));
        free(b);
        return rc;
    }
    be->ops = &pop3px_backend_ops;
    be->ctx = b;
    return 0;
}

const char *pop3px_mbox_note(struct pop3_mbox *mb)
{
    if (!mb || mb->ops != &pop3px_ops)
        return "";
    return ((struct pop3px_mbox *)mb)->note;
}

/* ------------------------------------------------------------------------- */
/* mailbox operations */

static size_t pop3px_count(struct pop3_mbox *mb)
{
    return ((struct pop3px_mbox *)mb)->nmsgs;
}

static const struct pop3_msginfo *pop3px_info(struct pop3_mbox *mb, size_t i)
{
    struct pop3px_mbox *px = (struct pop3px_mbox *)mb;
    PST_ASSERT(i < px->nmsgs);
    return &px->msgs[i].info;
}

/* ---- streams ---- */

/* ---- replies in flight (pop3c answers strictly in order) ---- */

static struct pop3px_stream *pop3px_flight_head(const struct pop3px_src *s)
{
    return s->nflight ? s->fl[s->fhead] : NULL;
}

static void pop3px_flight_push(struct pop3px_src *s, struct pop3px_stream *st)
{
    PST_ASSERT(s->nflight < POP3PX_FLIGHT_MAX);
    s->fl[(s->fhead + s->nflight) % POP3PX_FLIGHT_MAX] = st;
    s->nflight++;
}

static struct pop3px_stream *pop3px_flight_pop(struct pop3px_src *s)
{
    PST_ASSERT(s->nflight > 0);
    struct pop3px_stream *st = s->fl[s->fhead];
    s->fl[s->fhead] = NULL;
    s->fhead = (s->fhead + 1) % POP3PX_FLIGHT_MAX;
    s->nflight--;
    return st;
}

/* pop3px_resume_upstream - let the upstream's input flow again (if paused). */
static void pop3px_resume_upstream(struct pop3px_src *s)
{
    if (!s->paused)
        return;
    s->paused = 0;
    pop3c_resume(s->c);
}

/*
 * pop3px_stream_free - release an upstream stream (or a local one's
 * wrapper). A reply still in flight for it is drained and dropped when it
 * arrives, which keeps the upstream connection in step. *stp = NULL.
 */
static void pop3px_stream_free(struct pop3px_stream **stp)
{
    struct pop3px_stream *st = *stp;
    if (!st)
        return;
    struct pop3px_src *s = st->src;
    struct pop3px_mbox *px = s->px;
    if (st->inner)
        s->md->ops->stream_close(&st->inner);
    if (px->wake_st == st)
        px->wake_st = NULL;
    if (px->pf == st)
        px->pf = NULL;
    for (unsigned k = 0; k < s->nflight; k++) {
        unsigned at = (s->fhead + k) % POP3PX_FLIGHT_MAX;
        if (s->fl[at] != st)
            continue;
        s->fl[at] = NULL; /* the rest of the transfer is drained and dropped */
        if (k == 0)
            pop3px_resume_upstream(s);
    }
    if (st->buf)
        evbuffer_free(st->buf);
    free(st);
    *stp = NULL;
}

/* pop3px_stream_account - statistics of a finished transfer that a reader asked for. */
static void pop3px_stream_account(struct pop3px_stream *st)
{
    struct pop3px_src *s = st->src;
    if (st->counted || !st->wake || (!st->complete && st->failed != PST_ENOENT))
        return;
    st->counted = 1;
    if (st->failed) {
        s->errors++; /* -ERR from the upstream */
        return;
    }
    if (!st->top)
        s->messages++;
    s->bytes += (int64_t)st->bytes;
}

/*
 * pop3px_stream_wake_reader - the stream has news for a reader that got
 * PST_EAGAIN. The wake-up is deferred to the loop (same turn, after the
 * upstream's input is handled), so that a reply read in one go - body and
 * terminator - reaches the session at once and goes out in one write.
 */
static void pop3px_stream_wake_reader(struct pop3px_stream *st)
{
    if (!st->waiting)
        return;
    st->waiting = 0;
    struct pop3px_mbox *px = st->src->px;
    px->wake_st = st;
    event_active(px->wake_ev, 0, 1);
}

static int pop3px_on_body(void *arg, const char *data, size_t len)
{
    struct pop3px_src *s = arg;
    struct pop3px_stream *st = pop3px_flight_head(s);
    if (!st)
        return 0; /* abandoned transfer: drain it */
    if (!st->wake && st->bytes + len > POP3PX_PREFETCH_MAX) {
        /* a read-ahead larger than its LIST size said: give it up, RETR again if asked */
        pop3px_stream_free(&s->px->pf);
        return 0;
    }
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(st->buf, (ev_ssize_t)POP3_WIRE_OUT_MAX(len), &v, 1) < 1)
        return PST_ENOMEM;
    v.iov_len = pop3_wire_encode(&st->w, data, len, v.iov_base);
    if (evbuffer_commit_space(st->buf, &v, 1) < 0)
        return PST_ENOMEM;
    st->bytes += len;
    if (st->wake && evbuffer_get_length(st->buf) > POP3PX_BUF_HIGH && !s->paused) {
        s->paused = 1;
        pop3c_pause(s->c);
    }
    pop3px_stream_wake_reader(st);
    return 0;
}

static void pop3px_on_body_done(void *arg, const struct pop3c_reply *r)
{
    struct pop3px_src *s = arg;
    struct pop3px_stream *st = pop3px_flight_pop(s);
    pop3px_resume_upstream(s); /* the next reply has its own reader (or none yet) */
    if (r->status != 0 && r->status != PST_EPERM)
        pop3px_src_down(s, "transfer failed: %s", r->text);
    if (s->state == POP3PX_DOWN && s->nflight == 0)
        pop3c_free(&s->c); /* died while transfers were in flight: the last one is done */
    if (!st)
        return;
    if (r->status != 0) {
        st->failed = r->status == PST_EPERM ? PST_ENOENT : PST_EIO; /* not EAGAIN: "wait" */
    } else {
        char tail[2];
        size_t n = pop3_wire_finish(&st->w, tail);
        evbuffer_add(st->buf, tail, n);
        st->complete = 1;
    }
    pop3px_stream_account(st);
    pop3px_stream_wake_reader(st);
}

/* pop3px_upstream_can_send - room for one more RETR/TOP on a live upstream. */
static int pop3px_upstream_can_send(const struct pop3px_src *s)
{
    return s->state == POP3PX_READY && s->c && pop3c_usable(s->c) && s->nflight < POP3PX_FLIGHT_MAX;
}

/* pop3px_upstream_stream - a stream for message i fed by a RETR (lines < 0) or TOP to s. */
static int pop3px_upstream_stream(struct pop3px_src *s, size_t i, long lines,
                                  struct pop3px_stream **out)
{
    const struct pop3px_msg *m = &s->px->msgs[i];
    struct pop3px_stream *st = calloc(1, sizeof *st);
    if (!st)
        return PST_ENOMEM;
    st->src = s;
    st->idx = i;
    st->top = lines >= 0;
    st->buf = evbuffer_new();
    if (!st->buf) {
        free(st);
        return PST_ENOMEM;
    }
    pop3_wire_init(&st->w, -1); /* the upstream already applied TOP's line limit */
    uint32_t nl = lines < 0 ? 0 : lines > (long)UINT32_MAX ? UINT32_MAX : (uint32_t)lines;
    int rc = lines < 0 ? pop3c_retr(s->c, m->msgno, pop3px_on_body, pop3px_on_body_done, s)
                       : pop3c_top(s->c, m->msgno, nl, pop3px_on_body, pop3px_on_body_done, s);
    if (rc < 0) {
        evbuffer_free(st->buf);
        free(st);
        return PST_EAGAIN;
    }
    pop3px_flight_push(s, st);
    *out = st;
    return 0;
}

/*
 * pop3px_prefetch - the read-ahead after RETR of message i: RETR i + 1 to
 * the same upstream, pipelined behind i (pop3c sends it at once with
 * PIPELINING, else after i's reply), when that message is no larger than
 * POP3PX_PREFETCH_MAX. Its reply is buffered without a reader (px->pf).
 * Best effort: nothing is reported when it cannot be started.
 */
static void pop3px_prefetch(struct pop3px_mbox *px, struct pop3px_src *s, size_t i)
{
    if (px->pf || i + 1 >= px->nmsgs || !pop3px_upstream_can_send(s))
        return;
    const struct pop3px_msg *next = &px->msgs[i + 1];
    if (&px->srcs[next->src] != s || next->info.size > POP3PX_PREFETCH_MAX)
        return;
    struct pop3px_stream *st = NULL;
    if (pop3px_upstream_stream(s, i + 1, -1, &st) == 0)
        px->pf = st;
}

/* pop3px_take_prefetch - RETR of message i: the read-ahead, if it is that message and usable. */
static struct pop3px_stream *pop3px_take_prefetch(struct pop3px_mbox *px, size_t i, long lines)
{
    struct pop3px_stream *st = px->pf;
    if (!st)
        return NULL;
    if (lines >= 0 || st->idx != i || (!st->complete && st->src->state != POP3PX_READY) ||
        st->failed == PST_EIO) {
        pop3px_stream_free(&px->pf); /* anything else: drop it (its reply is drained) */
        return NULL;
    }
    px->pf = NULL;
    return st;
}

static int pop3px_stream_open(struct pop3_mbox *mb, size_t i, long lines, pop3_wake_fn wake,
                              void *arg, struct pop3_stream **out)
{
    struct pop3px_mbox *px = (struct pop3px_mbox *)mb;
    if (i >= px->nmsgs)
        return PST_EINVAL;
    const struct pop3px_msg *m = &px->msgs[i];
    struct pop3px_src *s = &px->srcs[m->src];
    struct pop3px_stream *st = pop3px_take_prefetch(px, i, lines);
    if (st) {
        st->wake = wake;
        st->arg = arg;
        pop3px_stream_account(st);
        pop3px_prefetch(px, s, i);
        *out = (struct pop3_stream *)st;
        return 0;
    }
    if (s->state != POP3PX_READY)
        return PST_EAGAIN;
    if (s->local) {
        st = calloc(1, sizeof *st);
        if (!st)
            return PST_ENOMEM;
        st->src = s;
        st->idx = i;
        st->wake = wake;
        st->arg = arg;
        st->top = lines >= 0;
        int rc = s->md->ops->stream_open(s->md, m->msgno - 1, lines, wake, arg, &st->inner);
        if (rc < 0) {
            free(st);
            return rc;
        }
        *out = (struct pop3_stream *)st;
        return 0;
    }
    if (!pop3px_upstream_can_send(s))
        return PST_EAGAIN;
    int rc = pop3px_upstream_stream(s, i, lines, &st);
    if (rc < 0)
        return rc == PST_ENOMEM ? rc : PST_EAGAIN;
    st->wake = wake;
    st->arg = arg;
    if (lines < 0)
        pop3px_prefetch(px, s, i);
    *out = (struct pop3_stream *)st;
    return 0;
}

static int pop3px_stream_read(struct pop3_stream *sp, struct evbuffer *out, size_t max)
{
    struct pop3px_stream *st = (struct pop3px_stream *)sp;
    struct pop3px_src *s = st->src;
    if (st->inner) {
        size_t before = evbuffer_get_length(out);
        int rc = s->md->ops->stream_read(st->inner, out, max);
        s->bytes += (int64_t)(evbuffer_get_length(out) - before); /* wire bytes */
        if (rc == 1 && !st->top)
            s->messages++;
        return rc;
    }
    size_t have = evbuffer_get_length(st->buf);
    size_t take = have < max ? have : max;
    if (take > 0 && evbuffer_remove_buffer(st->buf, out, take) < 0)
        return PST_ENOMEM;
    have -= take;
    if (s->paused && have < POP3PX_BUF_LOW && pop3px_flight_head(s) == st)
        pop3px_resume_upstream(s);
    if (have > 0 || (take > 0 && !st->complete))
        return 0; /* PST_EAGAIN only when nothing was produced (pop3_mbox.h) */
    if (st->complete)
        return 1;
    if (st->failed)
        return st->failed;
    st->waiting = 1;
    return PST_EAGAIN;
}

static void pop3px_stream_close(struct pop3_stream **sp)
{
    struct pop3px_stream *st = (struct pop3px_stream *)*sp;
    pop3px_stream_free(&st);
    *sp = NULL;
}

/* ---- commit ---- */

static void pop3px_commit_finished(struct pop3px_mbox *px)
{
    PST_ASSERT(px->commit_pending > 0);
    if (--px->commit_pending > 0)
        return;
    log_info("pop3px update user=%s result=%s%s%s%s", px->user, px->commit_rc ? "partial" : "ok",
             px->commit_note[0] ? " note=\"" : "", px->commit_note, px->commit_note[0] ? "\"" : "");
    px->commit_done(px->commit_arg, px->commit_rc, px->commit_note[0] ? px->commit_note : NULL);
}

static void pop3px_commit_fail(struct pop3px_mbox *px, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void pop3px_commit_fail(struct pop3px_mbox *px, const char *fmt, ...)
{
    char text[POP3PX_NOTE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (n < 0)
        text[0] = '\0';
    px->commit_rc = PST_EAGAIN;
    pop3px_note_add(px->commit_note, "%s", text);
}

static void pop3px_local_commit_done(void *arg, int rc, const char *note)
{
    struct pop3px_src *s = arg;
    if (rc < 0) {
        s->errors++;
        pop3px_commit_fail(s->px, "local Maildir: %s", note ? note : err_str(rc));
    }
    pop3px_commit_finished(s->px);
}

static void pop3px_dele_done(void *arg, const struct pop3c_reply *r)
{
    struct pop3px_src *s = arg;
    if (r->status != 0)
        s->dele_failed++;
}

static void pop3px_quit_done(void *arg, const struct pop3c_reply *r)
{
    struct pop3px_src *s = arg;
    struct pop3px_mbox *px = s->px;
    char q[POP3PX_WHY_MAX];
    if (r->status != 0) {
        log_warn("pop3px upstream_quit_failed user=%s upstream=%s deletions=%zu reason=%s",
                 px->user, s->id, s->ndele, log_quote(q, sizeof q, r->text, strlen(r->text)));
        if (s->ndele > 0) {
            s->errors++;
            pop3px_commit_fail(px, "upstream %s: QUIT failed, %zu deletion(s) not confirmed", s->id,
                               s->ndele);
        }
    } else if (s->dele_failed > 0) {
        s->errors++;
        pop3px_commit_fail(px, "upstream %s: %zu of %zu deletion(s) refused", s->id, s->dele_failed,
                           s->ndele);
    } else {
        log_info("pop3px upstream_update user=%s upstream=%s deleted=%zu", px->user, s->id,
                 s->ndele);
    }
    s->state = POP3PX_DOWN; /* logged out: no further use */
    pop3px_commit_finished(px);
}

/* pop3px_commit_upstream - DELEs then QUIT for one ready upstream. */
static void pop3px_commit_upstream(struct pop3px_mbox *px, struct pop3px_src *s, const uint32_t *no,
                                   size_t nd)
{
    s->ndele = nd;
    int rc = 0;
    for (size_t k = 0; rc == 0 && k < nd; k++)
        rc = pop3c_dele(s->c, no[k], pop3px_dele_done, s);
    if (rc == 0)
        rc = pop3c_quit(s->c, pop3px_quit_done, s);
    if (rc == 0) {
        px->commit_pending++;
        return;
    }
    /* queued DELEs without QUIT are dropped with the session: nothing is deleted */
    pop3c_free(&s->c);
    s->nflight = 0; /* only drains were left (pop3px_commit dropped the read-ahead) */
    if (nd > 0) {
        s->errors++;
        pop3px_commit_fail(px, "upstream %s: cannot send the deletions (%s)", s->id, err_str(rc));
    }
}

static int pop3px_commit(struct pop3_mbox *mb, const unsigned char *deleted, pop3_commit_done done,
                         void *arg)
{
    struct pop3px_mbox *px = (struct pop3px_mbox *)mb;
    uint32_t *no = calloc(px->nmsgs ? px->nmsgs : 1, sizeof *no);
    if (!no)
        return PST_ENOMEM;
    px->commit_done = done;
    px->commit_arg = arg;
    pop3px_stream_free(&px->pf); /* its reply is drained before the DELEs' (pop3c keeps order) */
    px->commit_pending = 1;      /* held while starting */
    for (size_t i = 0; i < px->nsrc; i++) {
        struct pop3px_src *s = &px->srcs[i];
        size_t nd = pop3px_deletions(px->msgs, px->nmsgs, deleted, (uint32_t)i, no);
        if (s->state != POP3PX_READY) {
            if (nd > 0 && s->session) {
                s->errors++;
                pop3px_commit_fail(px, "upstream %s unavailable (%s): %zu deletion(s) not done",
                                   s->id, s->why, nd);
            }
            continue;
        }
        if (!s->local) {
            pop3px_commit_upstream(px, s, no, nd);
            continue;
        }
        size_t cnt = pop3_mbox_count(s->md);
        unsigned char *ld = calloc(cnt ? cnt : 1, 1);
        if (!ld) {
            pop3px_commit_fail(px, "local Maildir: out of memory");
            continue;
        }
        for (size_t k = 0; k < nd; k++)
            ld[no[k] - 1] = 1;
        px->commit_pending++;
        int rc = nd ? s->md->ops->commit(s->md, ld, pop3px_local_commit_done, s) : 0;
        if (nd == 0)
            px->commit_pending--;
        else if (rc < 0)
            pop3px_local_commit_done(s, rc, "cannot start the update");
        free(ld);
    }
    free(no);
    pop3px_commit_finished(px);
    return 0;
}

static void pop3px_close(struct pop3_mbox **mbp)
{
    struct pop3px_mbox *px = (struct pop3px_mbox *)*mbp;
    if (!px)
        return;
    pop3px_stats_flush(px);
    pop3px_free(&px);
    *mbp = NULL;
}

static const struct pop3_mbox_ops pop3px_ops = {
    .name = "proxy",
    .count = pop3px_count,
    .info = pop3px_info,
    .stream_open = pop3px_stream_open,
    .stream_read = pop3px_stream_read,
    .stream_close = pop3px_stream_close,
    .commit = pop3px_commit,
    .close = pop3px_close,
};
