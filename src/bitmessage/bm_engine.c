/*
 * bm_engine.c - the Bitmessage mail workflow (see bm_engine.h): outbox state
 * machine, pubkey requests and announcements, msg/ack PoW and publication,
 * and processing of received getpubkey, pubkey and msg objects.
 *
 * Behaviour follows the reference client PyBitmessage:
 *   class_singleWorker.py  sendMsg (pubkey from cache, own keys or the
 *                          inventory by tag, else requestPubKey; msg TTL
 *                          doubled per resend, capped at 28 days, +-300 s
 *                          jitter; sleeptill = now + TTL * 1.1),
 *                          requestPubKey (2.5 days * 2^retry, capped),
 *                          generateFullAckMessage (ack TTL buckets, network
 *                          minimum PoW), sendOutOrStoreMyV4Pubkey (28 days).
 *   class_objectProcessor  processgetpubkey (tag/ripe of one of our keys,
 *                          version and stream must match, rate limited),
 *                          processpubkey (v4 only when wanted, v3 always
 *                          cached), processmsg (ack check on bytes 16.. of
 *                          the object, decrypt with each key, inbox, ack
 *                          sent unless encoding 0), possibleNewPubkey.
 *   class_singleCleaner    awaitingpubkey / msgsent past sleeptill -> again.
 * Differences, on purpose: a message fails after max_attempts sends (or
 * max_attempts getpubkey requests) instead of being retried for ever; our
 * pubkey is answered at most once per pubkey_resend seconds (the reference:
 * once per 28 days); a recipient demanding more than max_nonce_trials /
 * max_extra_bytes fails the message ("toodifficult" in the reference).
 *
 * Threads. The event loop thread alone touches the store and the hooks.
 * PoW runs on ONE worker pthread, one job at a time (bm_obj_seal with
 * cfg.pow_threads search threads). A job carries the object body (without
 * nonce), the "now" its TTL is measured from and the difficulty; the loop
 * appends it to `pending` under `mu` and signals `cv`. The worker moves a
 * finished job to `done` and writes to an eventfd; a persistent libevent
 * read event on that fd drains `done` on the loop thread. (An eventfd rather
 * than evthread_use_pthreads()/event_active(): the latter needs the
 * process-wide libevent locking set up before the event base exists, which
 * the engine does not own.) bm_engine_free() sets `stop`, cancels the
 * search and joins. bm_pow_search_init() (which clears the cancel flag) is
 * called under `mu`, so a cancel issued by free is never lost.
 *
 * Outbox walk (every tick_interval_ms and on bm_engine_kick, as a deferred
 * event so it never runs inside a caller's stack):
 *   awaitingpubkey  every message registers its recipient as "needed" (so a
 *                   pubkey arriving meanwhile is recognised); a due one looks
 *                   for the pubkey (cache, own keys, inventory by tag) and
 *                   moves to doingpow, or a getpubkey is made (one per
 *                   recipient) and the message sleeps until TTL * 1.1.
 *                   The request count per recipient is kept in memory;
 *                   after a restart it is estimated from the message's age.
 *   sent            due (no ack by TTL * 1.1): failed after max_attempts
 *                   sends, else back to doingpow (bm_store doubles the TTL).
 *   doingpow        due and not already in the worker: ack object built and
 *                   queued for PoW; when sealed, the msg is built around it
 *                   (encrypted, signed) and queued at the recipient's
 *                   difficulty; when sealed, published -> sent. A message
 *                   left in doingpow by a restart is simply redone.
 *   our keys        each v4 key whose pubkey was not published within
 *                   pubkey_resend seconds and whose inventory holds no
 *                   pubkey object of ours expiring later than now +
 *                   pubkey_ttl / 2 gets one (cfg.announce_pubkeys), so an
 *                   address made by the CLI in another process becomes
 *                   reachable without waiting for a getpubkey.
 *
 * Failure policy: received objects are untrusted; any error is logged and
 * the object dropped, never fatal. Store errors are logged and the walk goes
 * on at the next tick. Private keys, subjects and bodies are never logged.
 */
#include "bitmessage/bm_engine.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "bitmessage/bm_address.h"
#include "bitmessage/bm_encode.h"
#include "bitmessage/bm_object.h"
#include "bitmessage/bm_pow.h"
#include "bitmessage/bm_wire.h"
#include "lib/buf.h"
#include "lib/log.h"

#define BM_ENGINE_DAY (24 * 3600)
#define BM_ENGINE_JOBS_MAX 32        /* PoW jobs queued or running at once */
#define BM_ENGINE_NEEDS_MAX 4096     /* recipients whose pubkey we wait for */
#define BM_ENGINE_SENT_MAX 4096      /* our keys with a pubkey send time */
#define BM_ENGINE_EARLY_ACKS_MAX 256 /* acks seen while a resend was pending */
#define BM_ENGINE_RETRY_DELAY 60     /* s: retry after a transient failure */
#define BM_ENGINE_JITTER 300         /* s: the reference's +-300 s TTL noise */
#define BM_ENGINE_TICK_MIN_MS 10u
#define BM_ENGINE_OBJ_MAX (BM_WIRE_MAX_OBJECT_PAYLOAD + 64) /* header + payload */
#define BM_ENGINE_ACKPKT_MAX 256

enum bm_engine_job_kind {
    BM_ENGINE_JOB_GETPUBKEY = 0,
    BM_ENGINE_JOB_PUBKEY,
    BM_ENGINE_JOB_ACK,
    BM_ENGINE_JOB_MSG,
};

static const char *const bm_engine_job_names[] = {"getpubkey", "pubkey", "ack", "msg"};

struct bm_engine_job {
    enum bm_engine_job_kind kind;
    int64_t msgid;                       /* ACK, MSG */
    char address[BM_STORE_ADDR_MAX + 1]; /* GETPUBKEY: recipient; PUBKEY: ours */
    int64_t now;                         /* TTL of the PoW measured from here */
    int64_t ttl;                         /* MSG: the msg TTL chosen (with jitter) */
    struct bm_pow_params params;
    buf_t body; /* object without nonce */
    buf_t out;  /* sealed object (worker) */
    int rc;     /* worker's bm_obj_seal result */
    uint64_t trials;
    struct bm_engine_job *next;
};

struct bm_engine_need {
    char address[BM_STORE_ADDR_MAX + 1];
    bm_address_t addr;
    uint8_t tag[BM_TAG_LEN];
    unsigned retries; /* getpubkey requests made */
    int64_t next_ask; /* a request is outstanding until then */
    bool seen;        /* mark for the sweep after each walk */
};

struct bm_engine_sent {
    char address[BM_STORE_ADDR_MAX + 1];
    int64_t when;     /* our pubkey last went out (announced or answered) */
    int64_t answered; /* we last answered a getpubkey for it */
};

struct bm_engine {
    struct event_base *base;
    struct bm_store *st;
    struct bm_engine_config cfg;
    const struct bm_engine_ops *ops;
    void *ctx;
    int64_t (*clock)(void *arg);
    void *clock_arg;

    struct event *tick_ev;
    struct event *kick_ev;
    struct event *done_ev;
    int efd;

    /* shared with the worker, under mu */
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    struct bm_engine_job *pending, *pending_tail;
    struct bm_engine_job *running;
    struct bm_engine_job *done, *done_tail;
    struct bm_pow_search search;
    atomic_uint busy;

    /* loop thread only */
    unsigned njobs; /* jobs anywhere in the pipeline */
    struct bm_engine_need *needs;
    size_t nneeds;
    struct bm_engine_sent *sent;
    size_t nsent;
    int64_t early_acks[BM_ENGINE_EARLY_ACKS_MAX];
    size_t nearly;
    struct bm_engine_stats stats;
};

/* ---- small helpers ------------------------------------------------------ */

void bm_engine_config_defaults(struct bm_engine_config *c)
{
    memset(c, 0, sizeof(*c));
    c->msg_ttl = 4 * BM_ENGINE_DAY;
    c->getpubkey_ttl = 5 * BM_ENGINE_DAY / 2;
    c->pubkey_ttl = 28 * BM_ENGINE_DAY;
    c->pubkey_resend = 3600;
    c->max_attempts = 8;
    c->pow_threads = 0;
    c->nonce_trials = BM_POW_NONCE_TRIALS_DEFAULT;
    c->extra_bytes = BM_POW_EXTRA_BYTES_DEFAULT;
    c->tick_interval_ms = 5000;
    c->max_nonce_trials = 20 * BM_POW_NONCE_TRIALS_DEFAULT;
    c->max_extra_bytes = 20 * BM_POW_EXTRA_BYTES_DEFAULT;
    c->announce_pubkeys = true;
}

static int64_t bm_engine_now(const bm_engine_t *e)
{
    return e->clock != NULL ? e->clock(e->clock_arg) : (int64_t)time(NULL);
}

/* bm_engine_ttl_cap - ttl clamped to BM_STORE_TTL_MIN..BM_STORE_TTL_MAX. */
static int64_t bm_engine_ttl_cap(int64_t ttl)
{
    if (ttl > BM_STORE_TTL_MAX)
        return BM_STORE_TTL_MAX;
    return ttl < BM_STORE_TTL_MIN ? BM_STORE_TTL_MIN : ttl;
}

/* bm_engine_jitter - ttl +- min(300, ttl / 10) seconds, as the reference blurs TTLs. */
static int64_t bm_engine_jitter(int64_t ttl)
{
    int64_t span = ttl / 10 < BM_ENGINE_JITTER ? ttl / 10 : BM_ENGINE_JITTER;
    uint16_t r = 0;

    if (span <= 0 || RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
        return ttl;
    return ttl - span + (int64_t)(r % (uint16_t)(2 * span + 1));
}

/* bm_engine_resleep - now + ttl * 1.1 (sleeptill). */
static int64_t bm_engine_resleep(int64_t now, int64_t ttl)
{
    return now + ttl + ttl / 10;
}

static void bm_engine_hex8(const uint8_t *h, char out[17])
{
    static const char hx[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < 8; i++) {
        out[2 * i] = hx[h[i] >> 4];
        out[2 * i + 1] = hx[h[i] & 15];
    }
    out[16] = '\0';
}

static const char *bm_engine_q(char *buf, size_t sz, const char *s)
{
    return log_quote(buf, sz, s, strlen(s));
}

/* bm_engine_keys - a full identity from one of our stored keys (caller wipes *out). */
static int bm_engine_keys(const struct bm_store_key *k, bm_keys_t *out)
{
    int rc;

    memset(out, 0, sizeof(*out));
    out->addr.version = k->version;
    out->addr.stream = k->stream;
    memcpy(out->addr.ripe, k->ripe, BM_RIPE_LEN);
    memcpy(out->priv_signing, k->signing_priv, BM_PRIVKEY_LEN);
    memcpy(out->priv_encryption, k->encryption_priv, BM_PRIVKEY_LEN);
    rc = bm_pubkey_from_privkey(out->priv_signing, out->pub_signing);
    if (rc == 0)
        rc = bm_pubkey_from_privkey(out->priv_encryption, out->pub_encryption);
    if (rc != 0)
        OPENSSL_cleanse(out, sizeof(*out));
    return rc;
}

static void bm_engine_keys_wipe(bm_keys_t *k)
{
    OPENSSL_cleanse(k, sizeof(*k));
}

/* ---- outbox moves ------------------------------------------------------- */

static void bm_engine_fail(bm_engine_t *e, int64_t msgid, const char *why)
{
    int rc = bm_store_outbox_move(e->st, msgid, BM_OUTBOX_FAILED, bm_engine_now(e), 0, NULL);

    if (rc != 0) {
        log_warn("bm_engine fail-move msgid=%" PRId64 " err=%s", msgid, err_str(rc));
        return;
    }
    log_info("bm_engine failed msgid=%" PRId64 " why=\"%s\"", msgid, why);
    if (e->ops->on_failed != NULL)
        e->ops->on_failed(e->ctx, msgid, why);
}

static void bm_engine_reschedule(bm_engine_t *e, int64_t msgid, int64_t when)
{
    int rc = bm_store_outbox_reschedule(e->st, msgid, bm_engine_now(e), when);

    if (rc != 0)
        log_warn("bm_engine reschedule msgid=%" PRId64 " err=%s", msgid, err_str(rc));
}

static void bm_engine_acked(bm_engine_t *e, int64_t msgid)
{
    int rc = bm_store_outbox_move(e->st, msgid, BM_OUTBOX_ACKED, bm_engine_now(e), 0, NULL);

    if (rc != 0) {
        log_warn("bm_engine ack-move msgid=%" PRId64 " err=%s", msgid, err_str(rc));
        return;
    }
    e->stats.acks_received++;
    log_info("bm_engine acked msgid=%" PRId64, msgid);
    if (e->ops->on_acked != NULL)
        e->ops->on_acked(e->ctx, msgid);
}

static bool bm_engine_early_take(bm_engine_t *e, int64_t msgid)
{
    size_t i;

    for (i = 0; i < e->nearly; i++) {
        if (e->early_acks[i] == msgid) {
            e->early_acks[i] = e->early_acks[--e->nearly];
            return true;
        }
    }
    return false;
}

static void bm_engine_early_add(bm_engine_t *e, int64_t msgid)
{
    size_t i;

    for (i = 0; i < e->nearly; i++)
        if (e->early_acks[i] == msgid)
            return;
    if (e->nearly < BM_ENGINE_EARLY_ACKS_MAX)
        e->early_acks[e->nearly++] = msgid;
}

/* ---- the PoW worker ----------------------------------------------------- */

static void bm_engine_job_free(struct bm_engine_job **jp)
{
    struct bm_engine_job *j = *jp;

    if (j == NULL)
        return;
    buf_release(&j->body);
    buf_release(&j->out);
    free(j);
    *jp = NULL;
}

static struct bm_engine_job *bm_engine_job_new(enum bm_engine_job_kind kind, int64_t now)
{
    struct bm_engine_job *j = calloc(1, sizeof(*j));

    if (j == NULL)
        return NULL;
    j->kind = kind;
    j->now = now;
    buf_init(&j->body, BM_ENGINE_OBJ_MAX);
    buf_init(&j->out, BM_ENGINE_OBJ_MAX + BM_POW_NONCE_LEN);
    return j;
}

static void *bm_engine_worker(void *arg)
{
    bm_engine_t *e = arg;
    struct bm_engine_job *j;
    uint64_t one = 1;

    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->stop && e->pending == NULL)
            pthread_cond_wait(&e->cv, &e->mu);
        if (e->stop)
            break;
        j = e->pending;
        e->pending = j->next;
        if (e->pending == NULL)
            e->pending_tail = NULL;
        j->next = NULL;
        e->running = j;
        bm_pow_search_init(&e->search, e->cfg.pow_threads); /* under mu: see top comment */
        atomic_store(&e->busy, 1);
        pthread_mutex_unlock(&e->mu);

        buf_reset(&j->out);
        j->rc = bm_obj_seal(&e->search, (const uint8_t *)j->body.data, j->body.len, j->now,
                            &j->params, &j->out);
        j->trials = bm_pow_search_progress(&e->search);

        pthread_mutex_lock(&e->mu);
        atomic_store(&e->busy, 0);
        e->running = NULL;
        if (e->done_tail != NULL)
            e->done_tail->next = j;
        else
            e->done = j;
        e->done_tail = j;
        if (write(e->efd, &one, sizeof(one)) < 0) {
            /* counter full cannot happen with one writer; nothing else to do */
        }
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* bm_engine_submit - hand j to the worker (takes ownership). */
/*
 * bm_engine_submit - queue j for the PoW worker. Pubkey jobs (28-day lifetimes, the
 * longest searches) go last; every other job (getpubkey, ack, msg: short searches someone
 * is waiting for) goes before the first pubkey job, first come first served among them.
 */
static void bm_engine_submit(bm_engine_t *e, struct bm_engine_job *j)
{
    struct bm_engine_job **pp;

    j->next = NULL;
    pthread_mutex_lock(&e->mu);
    pp = &e->pending;
    while (*pp != NULL && (j->kind == BM_ENGINE_JOB_PUBKEY || (*pp)->kind != BM_ENGINE_JOB_PUBKEY))
        pp = &(*pp)->next;
    j->next = *pp;
    *pp = j;
    if (j->next == NULL)
        e->pending_tail = j;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    log_debug("bm_engine pow-queued kind=%s msgid=%" PRId64 " len=%zu",
              bm_engine_job_names[j->kind], j->msgid, j->body.len);
}

static bool bm_engine_list_has(const struct bm_engine_job *j, enum bm_engine_job_kind kind,
                               int64_t msgid, const char *address)
{
    for (; j != NULL; j = j->next) {
        if (address == NULL && msgid != 0 && j->msgid == msgid)
            return true;
        if (address != NULL && j->kind == kind && strcmp(j->address, address) == 0)
            return true;
    }
    return false;
}

/* bm_engine_in_flight - a job for msgid (address NULL) or of kind for address is in the
 * pipeline (queued, running, finished but not yet handled). */
static bool bm_engine_in_flight(bm_engine_t *e, enum bm_engine_job_kind kind, int64_t msgid,
                                const char *address)
{
    bool found;

    pthread_mutex_lock(&e->mu);
    found = bm_engine_list_has(e->pending, kind, msgid, address) ||
            bm_engine_list_has(e->running, kind, msgid, address) ||
            bm_engine_list_has(e->done, kind, msgid, address);
    pthread_mutex_unlock(&e->mu);
    return found;
}

static bool bm_engine_room(const bm_engine_t *e)
{
    return e->njobs < BM_ENGINE_JOBS_MAX;
}

/* ---- recipients' pubkeys ------------------------------------------------ */

static struct bm_engine_need *bm_engine_need_find(bm_engine_t *e, const char *address)
{
    size_t i;

    for (i = 0; i < e->nneeds; i++)
        if (strcmp(e->needs[i].address, address) == 0)
            return &e->needs[i];
    return NULL;
}

/* bm_engine_age_retries - the requests a message of this age has likely seen already
 * (TTL doubling each time, asked again after TTL * 1.1): seeds the count after a restart. */
static unsigned bm_engine_age_retries(const bm_engine_t *e, int64_t age)
{
    int64_t ttl = e->cfg.getpubkey_ttl, spent = 0;
    unsigned n = 0;

    while (n < e->cfg.max_attempts && age >= spent + ttl + ttl / 10) {
        spent += ttl + ttl / 10;
        ttl = bm_engine_ttl_cap(ttl * 2);
        n++;
    }
    return n;
}

static struct bm_engine_need *bm_engine_need_get(bm_engine_t *e, const char *address,
                                                 const bm_address_t *addr, int64_t age)
{
    struct bm_engine_need *n = bm_engine_need_find(e, address), *nv;

    if (n != NULL)
        return n;
    if (e->nneeds >= BM_ENGINE_NEEDS_MAX)
        return NULL;
    nv = realloc(e->needs, (e->nneeds + 1) * sizeof(*nv));
    if (nv == NULL)
        return NULL;
    e->needs = nv;
    n = &e->needs[e->nneeds];
    memset(n, 0, sizeof(*n));
    if (bm_address_tag(addr, NULL, n->tag) != 0)
        return NULL;
    snprintf(n->address, sizeof(n->address), "%s", address); /* fits: checked by the store */
    n->addr = *addr;
    n->retries = bm_engine_age_retries(e, age);
    e->nneeds++;
    return n;
}

static void bm_engine_need_drop(bm_engine_t *e, const char *address)
{
    struct bm_engine_need *n = bm_engine_need_find(e, address);

    if (n != NULL)
        *n = e->needs[--e->nneeds];
}

/* bm_engine_pk_record - the cache row for a verified pubkey of address. */
static int bm_engine_pk_record(const char *address, const struct bm_obj_pubkey *pk,
                               const bm_address_t *addr, int64_t now, struct bm_store_pubkey *out)
{
    int n;

    memset(out, 0, sizeof(*out));
    n = snprintf(out->address, sizeof(out->address), "%s", address);
    if (n < 0 || (size_t)n >= sizeof(out->address))
        return PST_ELIMIT;
    memcpy(out->ripe, pk->ripe, BM_RIPE_LEN);
    out->has_tag = addr->version >= 4;
    if (out->has_tag && bm_address_tag(addr, NULL, out->tag) != 0)
        return PST_EIO;
    memcpy(out->signing_pub, pk->pub_signing + 1, BM_STORE_PUBKEY_LEN);
    memcpy(out->encryption_pub, pk->pub_encryption + 1, BM_STORE_PUBKEY_LEN);
    out->nonce_trials = pk->nonce_trials;
    out->extra_bytes = pk->extra_bytes;
    out->behavior = pk->behavior;
    out->last_seen = now;
    return 0;
}

struct bm_engine_walk_addr {
    bm_engine_t *e;
    const char *address;
    int64_t now;
    unsigned moved;
};

static int bm_engine_arrived_cb(const struct bm_store_outmsg *m, void *arg)
{
    struct bm_engine_walk_addr *w = arg;
    int rc;

    if (strcmp(m->to_addr, w->address) != 0)
        return 0;
    rc = bm_store_outbox_move(w->e->st, m->msgid, BM_OUTBOX_DOINGPOW, w->now, w->now, NULL);
    if (rc != 0)
        log_warn("bm_engine pubkey-move msgid=%" PRId64 " err=%s", m->msgid, err_str(rc));
    else
        w->moved++;
    return 0;
}

/* bm_engine_pubkey_arrived - address's pubkey is now cached: its waiting messages go on
 * (possibleNewPubkey). */
static void bm_engine_pubkey_arrived(bm_engine_t *e, const char *address)
{
    struct bm_engine_walk_addr w = {.e = e, .address = address, .now = bm_engine_now(e)};
    char qa[96];
    int rc;

    bm_engine_need_drop(e, address);
    rc = bm_store_outbox_due(e->st, BM_OUTBOX_AWAITINGPUBKEY, INT64_MAX, bm_engine_arrived_cb, &w);
    if (rc != 0)
        log_warn("bm_engine pubkey-walk err=%s", err_str(rc));
    if (w.moved > 0) {
        log_info("bm_engine pubkey-arrived addr=%s messages=%u",
                 bm_engine_q(qa, sizeof(qa), address), w.moved);
        bm_engine_kick(e);
    }
}

/* bm_engine_cache_pubkey - store a verified pubkey; then wake what waited for it. */
static void bm_engine_cache_pubkey(bm_engine_t *e, const bm_address_t *addr,
                                   const struct bm_obj_pubkey *pk)
{
    struct bm_store_pubkey rec;
    char text[BM_ADDRESS_STR_MAX];
    int rc;

    rc = bm_address_encode(addr, text, sizeof(text));
    if (rc == 0)
        rc = bm_engine_pk_record(text, pk, addr, bm_engine_now(e), &rec);
    if (rc == 0)
        rc = bm_store_pubkey_put(e->st, &rec);
    if (rc != 0) {
        log_warn("bm_engine pubkey-cache err=%s", err_str(rc));
        return;
    }
    if (bm_engine_need_find(e, text) != NULL)
        bm_engine_pubkey_arrived(e, text);
}

struct bm_engine_inv_pk {
    const bm_address_t *addr;
    struct bm_obj_pubkey pk;
    buf_t plain;
    bool found;
};

static int bm_engine_inv_pk_cb(const struct bm_store_object *obj, void *arg)
{
    struct bm_engine_inv_pk *w = arg;
    struct bm_wire_object o;

    if (bm_wire_object_parse(obj->payload, obj->payload_len, &o) != 0)
        return 0;
    if (bm_obj_pubkey_parse(&o, w->addr, &w->plain, &w->pk) != 0)
        return 0; /* a bad object with the right tag: try the others */
    w->found = true;
    return 1;
}

/* bm_engine_have_pubkey - whether a message to address can be made now: cached pubkey,
 * one of our own keys, or (v4) a pubkey object in the inventory (then cached). */
static bool bm_engine_have_pubkey(bm_engine_t *e, const char *address, const bm_address_t *addr,
                                  int64_t now)
{
    struct bm_store_pubkey pk;
    struct bm_store_key k;
    struct bm_engine_inv_pk w = {.addr = addr};
    uint8_t tag[BM_TAG_LEN];
    int rc;

    if (bm_store_pubkey_by_addr(e->st, address, &pk) == 0)
        return true;
    rc = bm_store_key_by_addr(e->st, address, &k);
    bm_store_key_clear(&k);
    if (rc == 0)
        return true;
    if (addr->version < 4 || bm_address_tag(addr, NULL, tag) != 0)
        return false;
    buf_init(&w.plain, BM_OBJ_PLAIN_MAX);
    rc = bm_store_inv_by_tag(e->st, BM_WIRE_OBJ_PUBKEY, tag, now, bm_engine_inv_pk_cb, &w);
    buf_release(&w.plain);
    if (rc < 0)
        log_warn("bm_engine inv-by-tag err=%s", err_str(rc));
    if (!w.found)
        return false;
    bm_engine_cache_pubkey(e, addr, &w.pk);
    return true;
}

/* A recipient's public half, from the cache or from our own keys. */
struct bm_engine_dest {
    bm_address_t addr;
    uint8_t pub_enc[BM_PUBKEY_LEN];
    uint64_t nonce_trials, extra_bytes;
    bool ours;
};

static int bm_engine_dest(bm_engine_t *e, const char *address, struct bm_engine_dest *d)
{
    struct bm_store_pubkey pk;
    struct bm_store_key k;
    bm_keys_t keys;
    int rc;

    memset(d, 0, sizeof(*d));
    if (bm_address_decode(address, strlen(address), &d->addr, NULL) != 0)
        return PST_EINVAL;
    rc = bm_store_key_by_addr(e->st, address, &k);
    if (rc == 0) {
        rc = bm_engine_keys(&k, &keys);
        bm_store_key_clear(&k);
        if (rc != 0)
            return rc;
        memcpy(d->pub_enc, keys.pub_encryption, BM_PUBKEY_LEN);
        bm_engine_keys_wipe(&keys);
        d->nonce_trials = e->cfg.nonce_trials;
        d->extra_bytes = e->cfg.extra_bytes;
        d->ours = true;
        return 0;
    }
    if (rc != PST_ENOENT)
        return rc;
    if ((rc = bm_store_pubkey_by_addr(e->st, address, &pk)) != 0)
        return rc;
    d->pub_enc[0] = 0x04;
    memcpy(d->pub_enc + 1, pk.encryption_pub, BM_STORE_PUBKEY_LEN);
    d->nonce_trials = pk.nonce_trials;
    d->extra_bytes = pk.extra_bytes;
    return 0;
}

/* ---- publishing --------------------------------------------------------- */

/* bm_engine_publish - ops->publish; hash gets the inventory hash. */
static int bm_engine_publish(bm_engine_t *e, const uint8_t *obj, size_t len,
                             uint8_t hash[BM_STORE_HASH_LEN])
{
    int rc = e->ops->publish(e->ctx, obj, len, hash);

    if (rc == 0 && hash != NULL) {
        char hx[17];

        bm_engine_hex8(hash, hx);
        log_debug("bm_engine published hash=%s len=%zu", hx, len);
    }
    return rc;
}

/* ---- sending: getpubkey and our pubkey ------------------------------------ */

static int bm_engine_queue_getpubkey(bm_engine_t *e, struct bm_engine_need *n, int64_t now)
{
    struct bm_engine_job *j;
    int64_t ttl = e->cfg.getpubkey_ttl;
    unsigned i;
    int rc;

    for (i = 0; i < n->retries && ttl < BM_STORE_TTL_MAX; i++)
        ttl *= 2;
    ttl = bm_engine_jitter(bm_engine_ttl_cap(ttl));
    j = bm_engine_job_new(BM_ENGINE_JOB_GETPUBKEY, now);
    if (j == NULL)
        return PST_ENOMEM;
    rc = bm_obj_getpubkey_build(&j->body, (uint64_t)(now + ttl), &n->addr);
    if (rc != 0) {
        bm_engine_job_free(&j);
        return rc;
    }
    snprintf(j->address, sizeof(j->address), "%s", n->address);
    n->retries++;
    n->next_ask = bm_engine_resleep(now, ttl);
    e->njobs++;
    bm_engine_submit(e, j);
    {
        char qa[96];
        log_info("bm_engine getpubkey addr=%s request=%u ttl=%" PRId64,
                 bm_engine_q(qa, sizeof(qa), n->address), n->retries, ttl);
    }
    return 0;
}

static struct bm_engine_sent *bm_engine_sent_slot(bm_engine_t *e, const char *address, bool create)
{
    struct bm_engine_sent *nv;
    size_t i;

    for (i = 0; i < e->nsent; i++)
        if (strcmp(e->sent[i].address, address) == 0)
            return &e->sent[i];
    if (!create || e->nsent >= BM_ENGINE_SENT_MAX)
        return NULL;
    nv = realloc(e->sent, (e->nsent + 1) * sizeof(*nv));
    if (nv == NULL)
        return NULL;
    e->sent = nv;
    snprintf(e->sent[e->nsent].address, sizeof(e->sent[e->nsent].address), "%s", address);
    e->sent[e->nsent].when = INT64_MIN;
    e->sent[e->nsent].answered = INT64_MIN;
    return &e->sent[e->nsent++];
}

/* bm_engine_pubkey_recent - our pubkey for address went out within pubkey_resend. */
static bool bm_engine_pubkey_recent(bm_engine_t *e, const char *address, int64_t now)
{
    struct bm_engine_sent *w = bm_engine_sent_slot(e, address, false);

    return w != NULL && w->when != INT64_MIN && now - w->when < e->cfg.pubkey_resend;
}

/*
 * bm_engine_answered_recent - we answered a getpubkey for address within pubkey_resend.
 * Answers are limited on their own, not by announcements: a sender whose first copy of our
 * pubkey went unnoticed (PyBitmessage drops a pubkey it was not waiting for, and asks
 * again) gets a fresh one at once.
 */
static bool bm_engine_answered_recent(bm_engine_t *e, const char *address, int64_t now)
{
    struct bm_engine_sent *w = bm_engine_sent_slot(e, address, false);

    return w != NULL && w->answered != INT64_MIN && now - w->answered < e->cfg.pubkey_resend;
}

/* bm_engine_queue_pubkey - make (PoW) and publish the v4 pubkey of our key k. */
static int bm_engine_queue_pubkey(bm_engine_t *e, const struct bm_store_key *k, int64_t now,
                                  const char *why)
{
    struct bm_obj_sender_opts opts = {
        .behavior = BM_OBJ_BITFIELD_DOESACK,
        .nonce_trials = e->cfg.nonce_trials,
        .extra_bytes = e->cfg.extra_bytes,
    };
    struct bm_engine_job *j;
    struct bm_engine_sent *slot;
    int64_t ttl = bm_engine_jitter(e->cfg.pubkey_ttl);
    bm_keys_t keys;
    char qa[96];
    int rc;

    if (k->version != BM_OBJ_PUBKEY_VERSION)
        return PST_EINVAL;
    if (!bm_engine_room(e) || bm_engine_in_flight(e, BM_ENGINE_JOB_PUBKEY, 0, k->address))
        return PST_EAGAIN;
    j = bm_engine_job_new(BM_ENGINE_JOB_PUBKEY, now);
    if (j == NULL)
        return PST_ENOMEM;
    rc = bm_engine_keys(k, &keys);
    if (rc == 0)
        rc = bm_obj_pubkey_build(&j->body, (uint64_t)(now + ttl), &keys, &opts);
    bm_engine_keys_wipe(&keys);
    if (rc != 0) {
        bm_engine_job_free(&j);
        return rc;
    }
    snprintf(j->address, sizeof(j->address), "%s", k->address);
    if ((slot = bm_engine_sent_slot(e, k->address, true)) != NULL) {
        slot->when = now;
        if (strcmp(why, "getpubkey") == 0)
            slot->answered = now;
    }
    e->njobs++;
    bm_engine_submit(e, j);
    log_info("bm_engine pubkey-queued addr=%s why=%s ttl=%" PRId64,
             bm_engine_q(qa, sizeof(qa), k->address), why, ttl);
    return 0;
}

/* ---- sending: msg and ack ------------------------------------------------ */

/* bm_engine_too_difficult - the recipient demands more than we agreed to do. */
static bool bm_engine_too_difficult(const bm_engine_t *e, const struct bm_engine_dest *d)
{
    if (e->cfg.max_nonce_trials != 0 && d->nonce_trials > e->cfg.max_nonce_trials)
        return true;
    return e->cfg.max_extra_bytes != 0 && d->extra_bytes > e->cfg.max_extra_bytes;
}

/* bm_engine_start_msg - first half of a send: the ack object, queued for PoW. */
static void bm_engine_start_msg(bm_engine_t *e, const struct bm_store_outmsg *m, int64_t now)
{
    struct bm_engine_dest d;
    struct bm_obj_ackdata ad;
    struct bm_store_key k;
    struct bm_engine_job *j;
    int64_t ack_ttl;
    int rc;

    rc = bm_engine_dest(e, m->to_addr, &d);
    if (rc == PST_ENOENT || rc == PST_EINVAL) {
        bm_engine_fail(e, m->msgid, "recipient pubkey missing");
        return;
    }
    if (rc == 0) {
        rc = bm_store_key_by_addr(e->st, m->from_addr, &k);
        bm_store_key_clear(&k);
        if (rc == PST_ENOENT || rc == PST_EINVAL) {
            bm_engine_fail(e, m->msgid, "sender address is not ours");
            return;
        }
    }
    if (rc != 0) {
        log_warn("bm_engine msg-start msgid=%" PRId64 " err=%s", m->msgid, err_str(rc));
        return;
    }
    if (bm_engine_too_difficult(e, &d)) {
        bm_engine_fail(e, m->msgid, "recipient demands too much proof of work");
        return;
    }
    j = bm_engine_job_new(BM_ENGINE_JOB_ACK, now);
    if (j == NULL)
        return;
    j->msgid = m->msgid;
    j->ttl = bm_engine_jitter(bm_engine_ttl_cap(m->ttl));
    ack_ttl = bm_engine_jitter((int64_t)bm_obj_ack_ttl((uint64_t)j->ttl));
    bm_obj_ackdata_make(d.addr.stream, m->ackdata, &ad);
    rc = bm_obj_ack_build(&j->body, (uint64_t)(now + ack_ttl), &ad);
    if (rc != 0) {
        bm_engine_job_free(&j);
        log_warn("bm_engine ack-build msgid=%" PRId64 " err=%s", m->msgid, err_str(rc));
        return;
    }
    e->njobs++;
    bm_engine_submit(e, j);
    log_info("bm_engine doingpow msgid=%" PRId64 " attempt=%u ttl=%" PRId64, m->msgid,
             m->attempts + 1, j->ttl);
}

/* bm_engine_build_msg - the msg around the sealed ack in j->out, into j->body. */
static int bm_engine_build_msg(bm_engine_t *e, struct bm_engine_job *j, int64_t now)
{
    struct bm_obj_sender_opts opts = {
        .behavior = BM_OBJ_BITFIELD_DOESACK,
        .nonce_trials = e->cfg.nonce_trials,
        .extra_bytes = e->cfg.extra_bytes,
    };
    struct bm_store_outmsg m;
    struct bm_engine_dest d;
    struct bm_store_key k;
    bm_keys_t from;
    buf_t text, ackpkt;
    int rc;

    rc = bm_store_outbox_get(e->st, j->msgid, &m);
    if (rc != 0)
        return rc;
    if (m.state != BM_OUTBOX_DOINGPOW) {
        bm_store_outmsg_free(&m);
        return PST_EPERM;
    }
    buf_init(&text, BM_OBJ_PLAIN_MAX);
    buf_init(&ackpkt, BM_ENGINE_ACKPKT_MAX);
    memset(&from, 0, sizeof(from));
    rc = bm_engine_dest(e, m.to_addr, &d);
    if (rc == 0) {
        rc = bm_store_key_by_addr(e->st, m.from_addr, &k);
        if (rc == 0)
            rc = bm_engine_keys(&k, &from);
        bm_store_key_clear(&k);
    }
    if (rc == 0)
        rc = bm_obj_text_encode(&text, BM_OBJ_ENC_SIMPLE, (const uint8_t *)m.subject, m.subject_len,
                                (const uint8_t *)m.body, m.body_len);
    if (rc == 0)
        rc = bm_obj_ack_packet(&ackpkt, (const uint8_t *)j->out.data, j->out.len);
    if (rc == 0) {
        buf_reset(&j->body);
        rc = bm_obj_msg_build(&j->body, (uint64_t)(now + j->ttl), d.addr.stream, &from, &opts,
                              d.addr.ripe, d.pub_enc, BM_OBJ_ENC_SIMPLE, (const uint8_t *)text.data,
                              text.len, (const uint8_t *)ackpkt.data, ackpkt.len);
    }
    bm_engine_keys_wipe(&from);
    if (text.data != NULL)
        OPENSSL_cleanse(text.data, text.len);
    buf_release(&text);
    buf_release(&ackpkt);
    bm_store_outmsg_free(&m);
    if (rc != 0)
        return rc;
    j->kind = BM_ENGINE_JOB_MSG;
    j->now = now;
    j->params.nonce_trials_per_byte = d.nonce_trials;
    j->params.extra_bytes = d.extra_bytes;
    return 0;
}

/* bm_engine_sent_msg - the sealed msg in j->out: publish, move to sent. */
static void bm_engine_finish_msg(bm_engine_t *e, struct bm_engine_job *j, int64_t now)
{
    uint8_t hash[BM_STORE_HASH_LEN];
    struct bm_engine_dest d;
    char hx[17];
    int rc;

    rc = bm_engine_publish(e, (const uint8_t *)j->out.data, j->out.len, hash);
    if (rc != 0) {
        log_warn("bm_engine publish msgid=%" PRId64 " err=%s", j->msgid, err_str(rc));
        bm_engine_reschedule(e, j->msgid, now + BM_ENGINE_RETRY_DELAY);
        return;
    }
    rc = bm_store_outbox_move(e->st, j->msgid, BM_OUTBOX_SENT, now, bm_engine_resleep(now, j->ttl),
                              hash);
    if (rc != 0) {
        log_warn("bm_engine sent-move msgid=%" PRId64 " err=%s", j->msgid, err_str(rc));
        return;
    }
    e->stats.msgs_sent++;
    bm_engine_hex8(hash, hx);
    log_info("bm_engine sent msgid=%" PRId64 " hash=%s ttl=%" PRId64 " len=%zu", j->msgid, hx,
             j->ttl, j->out.len);
    if (e->ops->on_sent != NULL)
        e->ops->on_sent(e->ctx, j->msgid);
    if (bm_engine_early_take(e, j->msgid)) {
        bm_engine_acked(e, j->msgid);
        return;
    }
    /* to one of our own addresses: no peer will hand it back, so receive it here */
    {
        struct bm_store_outmsg m;

        if (bm_store_outbox_get(e->st, j->msgid, &m) == 0) {
            if (bm_engine_dest(e, m.to_addr, &d) == 0 && d.ours)
                bm_engine_on_object(e, hash, (const uint8_t *)j->out.data, j->out.len);
            bm_store_outmsg_free(&m);
        }
    }
}

/* ---- finished PoW jobs --------------------------------------------------- */

static void bm_engine_job_done(bm_engine_t *e, struct bm_engine_job *j)
{
    int64_t now = bm_engine_now(e);
    int rc;

    e->stats.pow_jobs++;
    e->stats.pow_trials += j->trials;
    if (j->rc != 0) {
        log_warn("bm_engine pow kind=%s msgid=%" PRId64 " err=%s", bm_engine_job_names[j->kind],
                 j->msgid, err_str(j->rc));
        if (j->msgid != 0 && j->rc == PST_EINVAL)
            bm_engine_fail(e, j->msgid, "proof of work impossible");
        else if (j->msgid != 0)
            bm_engine_reschedule(e, j->msgid, now + BM_ENGINE_RETRY_DELAY);
        goto out;
    }
    log_debug("bm_engine pow-done kind=%s msgid=%" PRId64 " trials=%" PRIu64,
              bm_engine_job_names[j->kind], j->msgid, j->trials);
    switch (j->kind) {
    case BM_ENGINE_JOB_GETPUBKEY:
    case BM_ENGINE_JOB_PUBKEY:
        rc = bm_engine_publish(e, (const uint8_t *)j->out.data, j->out.len, NULL);
        if (rc != 0) {
            log_warn("bm_engine publish kind=%s err=%s", bm_engine_job_names[j->kind], err_str(rc));
            break;
        }
        if (j->kind == BM_ENGINE_JOB_PUBKEY)
            e->stats.pubkeys_sent++;
        else
            e->stats.getpubkeys_sent++;
        break;
    case BM_ENGINE_JOB_ACK:
        rc = bm_engine_build_msg(e, j, now);
        if (rc == 0) {
            bm_engine_submit(e, j); /* same job, now the msg: stays counted in njobs */
            return;
        }
        if (rc == PST_EPERM || rc == PST_ENOENT)
            break; /* acked, failed or deleted meanwhile */
        log_warn("bm_engine msg-build msgid=%" PRId64 " err=%s", j->msgid, err_str(rc));
        if (rc == PST_ELIMIT || rc == PST_EINVAL)
            bm_engine_fail(e, j->msgid, "message cannot be built (too large?)");
        else
            bm_engine_reschedule(e, j->msgid, now + BM_ENGINE_RETRY_DELAY);
        break;
    case BM_ENGINE_JOB_MSG:
        bm_engine_finish_msg(e, j, now);
        break;
    }
out:
    e->njobs--;
    bm_engine_job_free(&j);
}

static void bm_engine_done_cb(evutil_socket_t fd, short what, void *arg)
{
    bm_engine_t *e = arg;
    struct bm_engine_job *list, *j;
    uint64_t cnt;

    if (read(fd, &cnt, sizeof(cnt)) < 0) {
        /* EAGAIN: nothing signalled; the list is checked anyway */
    }
    pthread_mutex_lock(&e->mu);
    list = e->done;
    e->done = e->done_tail = NULL;
    pthread_mutex_unlock(&e->mu);
    while (list != NULL) {
        j = list;
        list = j->next;
        j->next = NULL;
        bm_engine_job_done(e, j);
    }
}

/* ---- the outbox walk ----------------------------------------------------- */

struct bm_engine_walk {
    bm_engine_t *e;
    int64_t now;
};

static int bm_engine_await_cb(const struct bm_store_outmsg *m, void *arg)
{
    struct bm_engine_walk *w = arg;
    bm_engine_t *e = w->e;
    struct bm_engine_need *n;
    bm_address_t addr;
    int rc;

    if (bm_address_decode(m->to_addr, strlen(m->to_addr), &addr, NULL) != 0) {
        bm_engine_fail(e, m->msgid, "bad recipient address");
        return 0;
    }
    n = bm_engine_need_get(e, m->to_addr, &addr, w->now - m->created);
    if (n == NULL)
        return 0; /* table full: this one waits for a later walk */
    n->seen = true;
    if (m->next_attempt > w->now)
        return 0;
    if (bm_engine_have_pubkey(e, m->to_addr, &addr, w->now)) {
        rc = bm_store_outbox_move(e->st, m->msgid, BM_OUTBOX_DOINGPOW, w->now, w->now, NULL);
        if (rc != 0 && rc != PST_EPERM)
            log_warn("bm_engine pow-move msgid=%" PRId64 " err=%s", m->msgid, err_str(rc));
        bm_engine_need_drop(e, m->to_addr);
        return 0;
    }
    if (n->next_ask <= w->now) {
        if (n->retries >= e->cfg.max_attempts) {
            bm_engine_fail(e, m->msgid, "no pubkey from the recipient");
            return 0;
        }
        if (!bm_engine_room(e))
            return 0;
        rc = bm_engine_queue_getpubkey(e, n, w->now);
        if (rc != 0) {
            log_warn("bm_engine getpubkey msgid=%" PRId64 " err=%s", m->msgid, err_str(rc));
            return 0;
        }
    }
    bm_engine_reschedule(e, m->msgid, n->next_ask);
    return 0;
}

static int bm_engine_sent_cb(const struct bm_store_outmsg *m, void *arg)
{
    struct bm_engine_walk *w = arg;
    int rc;

    if (m->attempts >= w->e->cfg.max_attempts) {
        bm_engine_fail(w->e, m->msgid, "no acknowledgement");
        return 0;
    }
    rc = bm_store_outbox_move(w->e->st, m->msgid, BM_OUTBOX_DOINGPOW, w->now, w->now, NULL);
    if (rc != 0)
        log_warn("bm_engine resend-move msgid=%" PRId64 " err=%s", m->msgid, err_str(rc));
    else
        log_info("bm_engine resend msgid=%" PRId64 " attempts=%u", m->msgid, m->attempts);
    return 0;
}

static int bm_engine_pow_cb(const struct bm_store_outmsg *m, void *arg)
{
    struct bm_engine_walk *w = arg;
    bm_engine_t *e = w->e;

    if (bm_engine_in_flight(e, BM_ENGINE_JOB_MSG, m->msgid, NULL))
        return 0;
    if (bm_engine_early_take(e, m->msgid)) {
        /* its ack came in before the resend was made: done without sending again */
        if (bm_store_outbox_move(e->st, m->msgid, BM_OUTBOX_SENT, w->now, w->now, NULL) == 0)
            bm_engine_acked(e, m->msgid);
        return 0;
    }
    if (!bm_engine_room(e))
        return 0;
    bm_engine_start_msg(e, m, w->now);
    return 0;
}

struct bm_engine_fresh {
    bool any;
};

static int bm_engine_fresh_cb(const struct bm_store_object *obj, void *arg)
{
    ((struct bm_engine_fresh *)arg)->any = true;
    return 1;
}

static int bm_engine_announce_cb(const struct bm_store_key *k, void *arg)
{
    struct bm_engine_walk *w = arg;
    bm_engine_t *e = w->e;
    struct bm_engine_fresh f = {false};
    struct bm_engine_sent *slot;
    int rc;

    if (k->version != BM_OBJ_PUBKEY_VERSION || bm_engine_pubkey_recent(e, k->address, w->now))
        return 0;
    rc = bm_store_inv_by_tag(e->st, BM_WIRE_OBJ_PUBKEY, k->tag, w->now + e->cfg.pubkey_ttl / 2,
                             bm_engine_fresh_cb, &f);
    if (rc < 0)
        return 0;
    if (f.any) {
        if ((slot = bm_engine_sent_slot(e, k->address, true)) != NULL)
            slot->when = w->now; /* one is out there: count it as sent now */
        return 0;
    }
    rc = bm_engine_queue_pubkey(e, k, w->now, "announce");
    if (rc != 0 && rc != PST_EAGAIN)
        log_warn("bm_engine announce err=%s", err_str(rc));
    return 0;
}

static void bm_engine_walk(bm_engine_t *e)
{
    struct bm_engine_walk w = {.e = e, .now = bm_engine_now(e)};
    size_t i;
    int rc;

    for (i = 0; i < e->nneeds; i++)
        e->needs[i].seen = false;
    rc = bm_store_outbox_due(e->st, BM_OUTBOX_AWAITINGPUBKEY, INT64_MAX, bm_engine_await_cb, &w);
    if (rc != 0)
        log_warn("bm_engine walk state=awaitingpubkey err=%s", err_str(rc));
    for (i = 0; i < e->nneeds;) {
        if (!e->needs[i].seen)
            e->needs[i] = e->needs[--e->nneeds];
        else
            i++;
    }
    rc = bm_store_outbox_due(e->st, BM_OUTBOX_SENT, w.now, bm_engine_sent_cb, &w);
    if (rc != 0)
        log_warn("bm_engine walk state=sent err=%s", err_str(rc));
    rc = bm_store_outbox_due(e->st, BM_OUTBOX_DOINGPOW, w.now, bm_engine_pow_cb, &w);
    if (rc != 0)
        log_warn("bm_engine walk state=doingpow err=%s", err_str(rc));
    if (e->cfg.announce_pubkeys) {
        rc = bm_store_key_list(e->st, bm_engine_announce_cb, &w);
        if (rc != 0)
            log_warn("bm_engine walk keys err=%s", err_str(rc));
    }
}

static void bm_engine_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    bm_engine_walk(arg);
}

void bm_engine_kick(bm_engine_t *e)
{
    if (e != NULL)
        event_active(e->kick_ev, EV_TIMEOUT, 0);
}

/* ---- receiving ----------------------------------------------------------- */

static void bm_engine_on_getpubkey(bm_engine_t *e, const struct bm_wire_object *o)
{
    struct bm_obj_getpubkey g;
    struct bm_store_key k;
    int64_t now = bm_engine_now(e);
    char qa[96];
    int rc;

    if (bm_obj_getpubkey_parse(o, &g) != 0)
        return;
    rc =
        g.has_tag ? bm_store_key_by_tag(e->st, g.tag, &k) : bm_store_key_by_ripe(e->st, g.ripe, &k);
    if (rc != 0) {
        bm_store_key_clear(&k);
        return; /* not for us: the usual case */
    }
    if (k.version != g.addr_version || k.stream != o->stream) {
        log_info("bm_engine getpubkey-mismatch addr=%s version=%" PRIu64,
                 bm_engine_q(qa, sizeof(qa), k.address), g.addr_version);
    } else if (k.version != BM_OBJ_PUBKEY_VERSION) {
        log_info("bm_engine getpubkey-v3-unsupported addr=%s",
                 bm_engine_q(qa, sizeof(qa), k.address));
    } else if (bm_engine_answered_recent(e, k.address, now)) {
        log_info("bm_engine getpubkey-ratelimited addr=%s", bm_engine_q(qa, sizeof(qa), k.address));
    } else {
        rc = bm_engine_queue_pubkey(e, &k, now, "getpubkey");
        if (rc != 0 && rc != PST_EAGAIN)
            log_warn("bm_engine getpubkey-answer err=%s", err_str(rc));
    }
    bm_store_key_clear(&k);
}

/* bm_engine_pubkey_v3 - an unencrypted version 3 pubkey object: keys, demanded PoW and a
 * signature over the object from expires to the end of the extra-bytes field. */
static int bm_engine_pubkey_v3(const struct bm_wire_object *o, struct bm_obj_pubkey *pk)
{
    const uint8_t *sig;
    size_t siglen, signed_end;
    bm_reader_t r;

    memset(pk, 0, sizeof(*pk));
    pk->addr_version = o->version;
    pk->stream = o->stream;
    pk->pub_signing[0] = pk->pub_encryption[0] = 0x04;
    bm_reader_init(&r, o->payload, o->payload_len);
    if (bm_get_u32(&r, &pk->behavior) != 0 ||
        bm_get_bytes(&r, pk->pub_signing + 1, BM_OBJ_KEY_XY_LEN) != 0 ||
        bm_get_bytes(&r, pk->pub_encryption + 1, BM_OBJ_KEY_XY_LEN) != 0 ||
        bm_get_varint(&r, &pk->nonce_trials) != 0 || bm_get_varint(&r, &pk->extra_bytes) != 0)
        return PST_EINVAL;
    signed_end = o->header_len + r.pos;
    if (bm_get_varstr(&r, BM_SIG_MAX_LEN + 8, &sig, &siglen) != 0)
        return PST_EINVAL;
    if (bm_pubkey_check(pk->pub_signing) != 0 || bm_pubkey_check(pk->pub_encryption) != 0)
        return PST_EINVAL;
    if (bm_verify(pk->pub_signing, o->data + BM_POW_NONCE_LEN, signed_end - BM_POW_NONCE_LEN, sig,
                  siglen) != 0)
        return PST_EAUTH;
    return bm_ripe_from_pubkeys(pk->pub_signing, pk->pub_encryption, pk->ripe);
}

static void bm_engine_on_pubkey(bm_engine_t *e, const struct bm_wire_object *o)
{
    struct bm_obj_pubkey pk;
    struct bm_engine_need *n = NULL;
    uint8_t tag[BM_TAG_LEN];
    bm_address_t addr;
    buf_t plain;
    size_t i;
    int rc;

    if (o->version == 3) {
        /* v3 pubkeys are readable by anyone: cached always, as the reference does */
        if (bm_engine_pubkey_v3(o, &pk) != 0) {
            log_info("bm_engine pubkey-v3-invalid");
            return;
        }
        addr.version = 3;
        addr.stream = o->stream;
        memcpy(addr.ripe, pk.ripe, BM_RIPE_LEN);
        bm_engine_cache_pubkey(e, &addr, &pk);
        return;
    }
    if (o->version != BM_OBJ_PUBKEY_VERSION || bm_obj_pubkey_tag(o, tag) != 0)
        return;
    for (i = 0; i < e->nneeds && n == NULL; i++)
        if (e->needs[i].addr.version == 4 && memcmp(e->needs[i].tag, tag, BM_TAG_LEN) == 0)
            n = &e->needs[i];
    if (n == NULL)
        return; /* not wanted now; stays in the inventory for a later lookup by tag */
    addr = n->addr;
    buf_init(&plain, BM_OBJ_PLAIN_MAX);
    rc = bm_obj_pubkey_parse(o, &addr, &plain, &pk);
    buf_release(&plain);
    if (rc != 0) {
        char qa[96];
        log_warn("bm_engine pubkey-rejected addr=%s err=%s",
                 bm_engine_q(qa, sizeof(qa), n->address), err_str(rc));
        return;
    }
    bm_engine_cache_pubkey(e, &addr, &pk);
}

/* bm_engine_check_ack - o is the ack of one of our messages (checkackdata). */
static bool bm_engine_check_ack(bm_engine_t *e, const struct bm_wire_object *o)
{
    struct bm_store_outmsg m;
    struct bm_obj_ackdata ad;
    bm_address_t to;
    bool match;

    if (o->data_len < BM_OBJ_ACK_OFFSET + BM_STORE_ACKDATA_LEN)
        return false;
    if (bm_store_outbox_by_ackdata(e->st, o->data + o->data_len - BM_STORE_ACKDATA_LEN, &m) != 0)
        return false;
    match = bm_address_decode(m.to_addr, strlen(m.to_addr), &to, NULL) == 0;
    if (match) {
        bm_obj_ackdata_make(to.stream, m.ackdata, &ad);
        match = bm_obj_ack_matches(o, &ad);
    }
    if (match && m.state == BM_OUTBOX_SENT)
        bm_engine_acked(e, m.msgid);
    else if (match && m.state == BM_OUTBOX_DOINGPOW)
        bm_engine_early_add(e, m.msgid);
    bm_store_outmsg_free(&m);
    return match;
}

/* bm_engine_send_ack - disseminate the ack a sender put in its msg, if it is a valid
 * object; the publisher refuses bad PoW or lifetime (then nothing is sent). */
static void bm_engine_send_ack(bm_engine_t *e, const struct bm_obj_msg *msg, int64_t inbox_id)
{
    struct bm_wire_object ao;
    uint8_t hash[BM_STORE_HASH_LEN];
    int rc;

    if (msg->ack_len == 0 || msg->encoding == BM_OBJ_ENC_IGNORE)
        return;
    if (bm_obj_ack_unwrap(msg->ack, msg->ack_len, &ao) != 0) {
        log_info("bm_engine ack-invalid inbox_id=%" PRId64, inbox_id);
        return;
    }
    rc = bm_engine_publish(e, ao.data, ao.data_len, hash);
    if (rc != 0) {
        log_info("bm_engine ack-refused inbox_id=%" PRId64 " err=%s", inbox_id, err_str(rc));
        return;
    }
    e->stats.acks_sent++;
    bm_engine_check_ack(e, &ao); /* a message from ourselves to ourselves */
}

/* bm_engine_sender_pubkey - a msg carries its sender's keys: cache them (the reference
 * does, so that a reply needs no getpubkey). */
static void bm_engine_sender_pubkey(bm_engine_t *e, const struct bm_obj_msg *msg,
                                    const bm_address_t *from)
{
    if (from->version >= 3)
        bm_engine_cache_pubkey(e, from, &msg->sender);
}

struct bm_engine_rx {
    bm_engine_t *e;
    const uint8_t *hash;
    const struct bm_wire_object *o;
    buf_t plain;
    bool done;
};

static void bm_engine_receive(struct bm_engine_rx *rx, const struct bm_store_key *k,
                              const struct bm_obj_msg *msg)
{
    bm_engine_t *e = rx->e;
    struct bm_store_inmsg in;
    struct bm_obj_text t;
    bm_address_t from;
    char qf[96], qt[96], hx[17];
    bool is_new = false;
    int64_t id = 0;
    int rc;

    memset(&in, 0, sizeof(in));
    from.version = msg->sender.addr_version;
    from.stream = msg->sender.stream;
    memcpy(from.ripe, msg->sender.ripe, BM_RIPE_LEN);
    bm_engine_hex8(rx->hash, hx);
    if (bm_address_encode(&from, in.from_addr, sizeof(in.from_addr)) != 0) {
        log_info("bm_engine msg-sender-unsupported hash=%s", hx);
        return;
    }
    if (bm_obj_text_decode(msg->encoding, msg->message, msg->message_len, &t) != 0) {
        log_info("bm_engine msg-encoding-unsupported hash=%s encoding=%" PRIu64, hx, msg->encoding);
        return;
    }
    snprintf(in.to_addr, sizeof(in.to_addr), "%s", k->address);
    memcpy(in.msgid_hash, rx->hash, BM_STORE_HASH_LEN);
    in.subject = (char *)t.subject;
    in.subject_len = t.subject_len;
    in.body = (char *)t.body;
    in.body_len = t.body_len;
    in.encoding = (uint32_t)msg->encoding;
    in.received = bm_engine_now(e);
    rc = bm_store_inbox_put(e->st, &in, &is_new, &id);
    if (rc != 0) {
        log_warn("bm_engine inbox hash=%s err=%s", hx, err_str(rc));
        return;
    }
    log_info("bm_engine received inbox_id=%" PRId64 " hash=%s to=%s from=%s new=%d", id, hx,
             bm_engine_q(qt, sizeof(qt), in.to_addr), bm_engine_q(qf, sizeof(qf), in.from_addr),
             is_new ? 1 : 0);
    bm_engine_sender_pubkey(e, msg, &from);
    if (!is_new)
        return;
    e->stats.msgs_received++;
    bm_engine_send_ack(e, msg, id);
    if (e->ops->on_received != NULL)
        e->ops->on_received(e->ctx, id);
}

static int bm_engine_try_key(const struct bm_store_key *k, void *arg)
{
    struct bm_engine_rx *rx = arg;
    struct bm_obj_msg msg;
    bm_keys_t keys;
    char hx[17];
    int rc;

    rc = bm_engine_keys(k, &keys);
    if (rc != 0)
        return 0;
    rc = bm_obj_msg_parse(rx->o, &keys, &rx->plain, &msg);
    bm_engine_keys_wipe(&keys);
    if (rc == PST_ENOENT)
        return 0;
    rx->done = true;
    if (rc != 0) {
        bm_engine_hex8(rx->hash, hx);
        log_warn("bm_engine msg-rejected hash=%s err=%s", hx, err_str(rc));
    } else {
        bm_engine_receive(rx, k, &msg);
    }
    if (rx->plain.data != NULL)
        OPENSSL_cleanse(rx->plain.data, rx->plain.len);
    return 1;
}

static void bm_engine_on_msg(bm_engine_t *e, const uint8_t *hash, const struct bm_wire_object *o)
{
    struct bm_engine_rx rx = {.e = e, .hash = hash, .o = o};
    int rc;

    if (bm_engine_check_ack(e, o))
        return;
    if (o->version != BM_OBJ_MSG_VERSION)
        return;
    buf_init(&rx.plain, BM_OBJ_PLAIN_MAX);
    rc = bm_store_key_list(e->st, bm_engine_try_key, &rx);
    if (rc < 0)
        log_warn("bm_engine msg-keys err=%s", err_str(rc));
    buf_release(&rx.plain);
}

void bm_engine_on_object(bm_engine_t *e, const uint8_t hash[BM_STORE_HASH_LEN], const uint8_t *obj,
                         size_t len)
{
    struct bm_wire_object o;

    if (e == NULL || hash == NULL || obj == NULL)
        return;
    if (bm_wire_object_parse(obj, len, &o) != 0) {
        log_debug("bm_engine object-malformed len=%zu", len);
        return;
    }
    switch (o.type) {
    case BM_WIRE_OBJ_GETPUBKEY:
        bm_engine_on_getpubkey(e, &o);
        break;
    case BM_WIRE_OBJ_PUBKEY:
        bm_engine_on_pubkey(e, &o);
        break;
    case BM_WIRE_OBJ_MSG:
        bm_engine_on_msg(e, hash, &o);
        break;
    default:
        break; /* broadcasts: no subscriptions yet; unknown types are relayed only */
    }
}

/* ---- life cycle ---------------------------------------------------------- */

static int bm_engine_check_config(struct bm_engine_config *c)
{
    if (c->msg_ttl < BM_STORE_TTL_MIN || c->msg_ttl > BM_STORE_TTL_MAX ||
        c->getpubkey_ttl < BM_STORE_TTL_MIN || c->getpubkey_ttl > BM_STORE_TTL_MAX ||
        c->pubkey_ttl < BM_STORE_TTL_MIN || c->pubkey_ttl > BM_STORE_TTL_MAX ||
        c->pubkey_resend < 0 || c->max_attempts == 0 || c->pow_threads > BM_POW_THREADS_MAX)
        return PST_ECONFIG;
    if (c->nonce_trials < BM_POW_NONCE_TRIALS_DEFAULT)
        c->nonce_trials = BM_POW_NONCE_TRIALS_DEFAULT;
    if (c->extra_bytes < BM_POW_EXTRA_BYTES_DEFAULT)
        c->extra_bytes = BM_POW_EXTRA_BYTES_DEFAULT;
    if (c->tick_interval_ms < BM_ENGINE_TICK_MIN_MS)
        c->tick_interval_ms = BM_ENGINE_TICK_MIN_MS;
    return 0;
}

int bm_engine_new(struct event_base *base, struct bm_store *st, const struct bm_engine_config *cfg,
                  const struct bm_engine_ops *ops, void *ctx, bm_engine_t **out)
{
    struct timeval tv;
    bm_engine_t *e;
    int rc;

    *out = NULL;
    if (base == NULL || st == NULL || cfg == NULL || ops == NULL || ops->publish == NULL)
        return PST_EINVAL;
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return PST_ENOMEM;
    e->base = base;
    e->st = st;
    e->cfg = *cfg;
    e->ops = ops;
    e->ctx = ctx;
    e->efd = -1;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    bm_pow_search_init(&e->search, e->cfg.pow_threads);
    if ((rc = bm_engine_check_config(&e->cfg)) != 0)
        goto fail;
    rc = PST_EIO;
    e->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (e->efd < 0)
        goto fail;
    rc = PST_ENOMEM;
    e->done_ev = event_new(base, e->efd, EV_READ | EV_PERSIST, bm_engine_done_cb, e);
    e->tick_ev = event_new(base, -1, EV_PERSIST, bm_engine_tick_cb, e);
    e->kick_ev = event_new(base, -1, 0, bm_engine_tick_cb, e);
    if (e->done_ev == NULL || e->tick_ev == NULL || e->kick_ev == NULL)
        goto fail;
    tv.tv_sec = e->cfg.tick_interval_ms / 1000;
    tv.tv_usec = (suseconds_t)(e->cfg.tick_interval_ms % 1000) * 1000;
    if (event_add(e->done_ev, NULL) != 0 || event_add(e->tick_ev, &tv) != 0)
        goto fail;
    if (pthread_create(&e->thread, NULL, bm_engine_worker, e) != 0)
        goto fail;
    e->thread_started = true;
    bm_engine_kick(e); /* first walk as soon as the loop runs */
    log_info("bm_engine started pow_threads=%u tick_ms=%u", bm_pow_search_threads(&e->search),
             e->cfg.tick_interval_ms);
    *out = e;
    return 0;
fail:
    bm_engine_free(&e);
    return rc;
}

void bm_engine_set_clock(bm_engine_t *e, int64_t (*now)(void *arg), void *arg)
{
    e->clock = now;
    e->clock_arg = arg;
}

void bm_engine_get_stats(const bm_engine_t *e, struct bm_engine_stats *out)
{
    *out = e->stats;
    out->pow_busy = atomic_load(&e->busy);
}

static void bm_engine_free_list(struct bm_engine_job *j)
{
    struct bm_engine_job *next;

    for (; j != NULL; j = next) {
        next = j->next;
        bm_engine_job_free(&j);
    }
}

void bm_engine_free(bm_engine_t **ep)
{
    bm_engine_t *e;

    if (ep == NULL || *ep == NULL)
        return;
    e = *ep;
    if (e->thread_started) {
        pthread_mutex_lock(&e->mu);
        e->stop = true;
        bm_pow_search_cancel(&e->search);
        pthread_cond_broadcast(&e->cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->thread, NULL);
    }
    bm_engine_free_list(e->pending);
    bm_engine_free_list(e->running);
    bm_engine_free_list(e->done);
    if (e->done_ev != NULL)
        event_free(e->done_ev);
    if (e->tick_ev != NULL)
        event_free(e->tick_ev);
    if (e->kick_ev != NULL)
        event_free(e->kick_ev);
    if (e->efd >= 0)
        close(e->efd);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e->needs);
    free(e->sent);
    free(e);
    *ep = NULL;
}
