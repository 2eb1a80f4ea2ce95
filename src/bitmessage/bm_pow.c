/*
 * bm_pow.c - Bitmessage proof of work (see bm_pow.h for the formulas and the
 * reference-client functions they mirror).
 *
 * Arithmetic. The reference is Python 2.7 with arbitrary-precision integers
 * and floor division. Here every quantity is non-negative, so floor division
 * is C's unsigned division and "/ 2^16" is a shift. L = len + extra fits in
 * 66 bits, TTL * L in 130: when that product does not fit in 128 bits (or
 * nonceTrialsPerByte times the sum does not), the denominator is above 2^64
 * and the target is 0, which is also what Python computes. The quotient
 * 2^64 / denominator is at most 2^64 / 1008000, so it fits in 64 bits.
 *
 * Hashing speed. A trial is two one-block SHA-512 compressions (72 bytes
 * then 64 bytes; both pad into a single 128-byte block) and nothing can be
 * precomputed because the nonce comes first. Per-call overhead therefore
 * matters. Measured on this project's build host (2-core AMD EPYC VM,
 * OpenSSL 3.0.x; double-SHA512 trials per CPU second on one core, best of
 * three runs of 10^6, CPU time so that other load on the host does not
 * distort the comparison):
 *
 *   SHA512() one-shot (EVP_Q_digest inside)       1.07 M/s
 *   EVP_Digest() with a pre-fetched EVP_MD        2.00 M/s
 *   EVP_MD_CTX reused, EVP_DigestInit_ex2(md)     2.28 M/s
 *   EVP_MD_CTX_copy_ex() from an initialised ctx  2.37 M/s
 *   SHA512_Init/Update/Final (deprecated in 3.0)  2.84 M/s
 *   provider digest functions called directly     2.71 M/s
 *
 * Profiling the EVP loops shows malloc, free and OPENSSL_cleanse on every
 * hash: EVP re-creates the provider context at each init; that is the gap.
 * The fastest non-deprecated way is the last one (within 5% of the
 * deprecated calls): OSSL_PROVIDER_query_operation(), a public OpenSSL 3
 * API (provider(7), provider-digest(7)), returns the dispatch table of the
 * provider that implements the fetched EVP_MD; the hasher keeps one
 * provider context and calls its init/update/final functions. A hasher
 * cross-checks this path against EVP_Digest() when it is created and falls
 * back to the reused EVP_MD_CTX if the table is missing or disagrees.
 *
 * Search. Thread t of n tries nonces t, t + n, ... with its own hasher,
 * adds its count to the shared progress counter every BM_POW_BATCH trials
 * and checks the cancel and stop flags at the same point. The first thread
 * to find a nonce records it under a mutex and raises stop.
 *
 * Failure policy: bad objects give PST_EINVAL; OpenSSL failures PST_EIO;
 * nothing here logs, aborts on input or keeps global state.
 */
#include "bitmessage/bm_pow.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/core_dispatch.h>
#include <openssl/evp.h>
#include <openssl/provider.h>

#define BM_POW_BATCH 1024u /* trials between progress updates and flag checks */
#define BM_POW_TRIAL_INPUT (BM_POW_NONCE_LEN + BM_POW_HASH_LEN)

__extension__ typedef unsigned __int128 bm_pow_u128;
__extension__ typedef __int128 bm_pow_i128;

struct bm_pow_hasher {
    enum bm_pow_backend backend;
    EVP_MD *md;
    EVP_MD_CTX *mctx; /* EVP backend */
    void *pctx;       /* provider backend: the provider's own digest context */
    OSSL_FUNC_digest_init_fn *p_init;
    OSSL_FUNC_digest_update_fn *p_update;
    OSSL_FUNC_digest_final_fn *p_final;
    OSSL_FUNC_digest_freectx_fn *p_freectx;
    uint8_t in[BM_POW_TRIAL_INPUT]; /* nonce_be64 || initialHash */
};

/* ---- integers ---------------------------------------------------------- */

static uint64_t bm_pow_get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (size_t i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static void bm_pow_put_be64(uint8_t *p, uint64_t v)
{
    for (size_t i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static void bm_pow_effective(const struct bm_pow_params *p, uint64_t *ntpb, uint64_t *extra)
{
    *ntpb = BM_POW_NONCE_TRIALS_DEFAULT;
    *extra = BM_POW_EXTRA_BYTES_DEFAULT;
    if (p == NULL)
        return;
    if (p->nonce_trials_per_byte > *ntpb)
        *ntpb = p->nonce_trials_per_byte;
    if (p->extra_bytes > *extra)
        *extra = p->extra_bytes;
}

/* 2^64 / (ntpb * (l + (ttl * l) / 2^16)), exact; l = length with nonce + extra bytes. */
static uint64_t bm_pow_target_of(bm_pow_u128 l, uint64_t ttl, uint64_t ntpb)
{
    const bm_pow_u128 max = ~(bm_pow_u128)0;
    if (ttl != 0 && l > max / ttl)
        return 0; /* (ttl * l) / 2^16 alone exceeds 2^64 */
    bm_pow_u128 sum = l + ((ttl * l) >> 16);
    if (sum > max / ntpb)
        return 0;
    bm_pow_u128 denom = sum * ntpb;
    return (uint64_t)(((bm_pow_u128)1 << 64) / denom);
}

uint64_t bm_pow_target(uint64_t payload_len, uint64_t ttl, const struct bm_pow_params *params)
{
    uint64_t ntpb, extra;
    bm_pow_effective(params, &ntpb, &extra);
    bm_pow_u128 l = (bm_pow_u128)payload_len + BM_POW_NONCE_LEN + extra;
    return bm_pow_target_of(l, ttl, ntpb);
}

uint64_t bm_pow_object_target(size_t len, uint64_t expires, int64_t now,
                              const struct bm_pow_params *params)
{
    uint64_t ntpb, extra;
    bm_pow_effective(params, &ntpb, &extra);
    bm_pow_i128 ttl = (bm_pow_i128)expires - now;
    if (ttl < BM_POW_TTL_FLOOR)
        ttl = BM_POW_TTL_FLOOR;
    uint64_t ttl64 = ttl > (bm_pow_i128)UINT64_MAX ? UINT64_MAX : (uint64_t)ttl;
    /* len(data) already includes the nonce: L = len + extra. */
    return bm_pow_target_of((bm_pow_u128)len + extra, ttl64, ntpb);
}

/* The one comparison every path uses: sufficient iff trial <= target. */
static inline int bm_pow_meets(uint64_t trial, uint64_t target)
{
    return trial <= target;
}

/* ---- one-off hashing (EVP) ----------------------------------------------- */

static int bm_pow_sha512(const uint8_t *data, size_t len, uint8_t out[BM_POW_HASH_LEN])
{
    static const uint8_t empty[1];
    unsigned int outl = 0;
    if (EVP_Digest(len ? data : empty, len, out, &outl, EVP_sha512(), NULL) != 1)
        return PST_EIO;
    return outl == BM_POW_HASH_LEN ? 0 : PST_EIO;
}

int bm_pow_initial_hash(const uint8_t *payload, size_t len, uint8_t out[BM_POW_HASH_LEN])
{
    if (payload == NULL && len != 0)
        return PST_EINVAL;
    return bm_pow_sha512(payload, len, out);
}

int bm_pow_trial_value(uint64_t nonce, const uint8_t initial_hash[BM_POW_HASH_LEN], uint64_t *trial)
{
    uint8_t in[BM_POW_TRIAL_INPUT], d1[BM_POW_HASH_LEN], d2[BM_POW_HASH_LEN];
    bm_pow_put_be64(in, nonce);
    memcpy(in + BM_POW_NONCE_LEN, initial_hash, BM_POW_HASH_LEN);
    int rc = bm_pow_sha512(in, sizeof(in), d1);
    if (rc == 0)
        rc = bm_pow_sha512(d1, sizeof(d1), d2);
    if (rc != 0)
        return rc;
    *trial = bm_pow_get_be64(d2);
    return 0;
}

/* ---- checks ---------------------------------------------------------------- */

int bm_pow_eol_check(uint64_t expires, int64_t now)
{
    bm_pow_i128 left = (bm_pow_i128)expires - now;
    if (left > BM_POW_MAX_TTL)
        return PST_EINVAL;
    if (left < BM_POW_MIN_TTL)
        return PST_EINVAL;
    return 0;
}

int bm_pow_sufficient(const uint8_t *obj, size_t len, int64_t now,
                      const struct bm_pow_params *params)
{
    if (obj == NULL || len < BM_POW_OBJECT_MIN_LEN)
        return PST_EINVAL;
    uint8_t ih[BM_POW_HASH_LEN];
    uint64_t trial;
    int rc = bm_pow_initial_hash(obj + BM_POW_NONCE_LEN, len - BM_POW_NONCE_LEN, ih);
    if (rc == 0)
        rc = bm_pow_trial_value(bm_pow_get_be64(obj), ih, &trial);
    if (rc != 0)
        return rc;
    uint64_t expires = bm_pow_get_be64(obj + BM_POW_NONCE_LEN);
    return bm_pow_meets(trial, bm_pow_object_target(len, expires, now, params)) ? 0 : PST_EINVAL;
}

int bm_pow_check(const uint8_t *obj, size_t len, int64_t now, const struct bm_pow_params *params)
{
    if (obj == NULL || len < BM_POW_OBJECT_MIN_LEN)
        return PST_EINVAL;
    int rc = bm_pow_eol_check(bm_pow_get_be64(obj + BM_POW_NONCE_LEN), now);
    if (rc != 0)
        return rc;
    return bm_pow_sufficient(obj, len, now, params);
}

/* ---- hasher ---------------------------------------------------------------- */

/* Does the ':'-separated name list contain the EVP_MD's name? */
static int bm_pow_names_match(const char *names, const EVP_MD *md)
{
    const char *want = EVP_MD_get0_name(md);
    if (names == NULL || want == NULL)
        return 0;
    size_t want_len = strlen(want);
    const char *p = names;
    while (*p != '\0') {
        size_t n = strcspn(p, ":");
        if (n == want_len && strncasecmp(p, want, n) == 0)
            return 1;
        p += n;
        if (*p == ':')
            p++;
    }
    return 0;
}

static void bm_pow_take_dispatch(bm_pow_hasher_t *h, const OSSL_DISPATCH *d,
                                 OSSL_FUNC_digest_newctx_fn **newctx)
{
    for (; d->function_id != 0; d++) {
        switch (d->function_id) {
        case OSSL_FUNC_DIGEST_NEWCTX:
            *newctx = OSSL_FUNC_digest_newctx(d);
            break;
        case OSSL_FUNC_DIGEST_INIT:
            h->p_init = OSSL_FUNC_digest_init(d);
            break;
        case OSSL_FUNC_DIGEST_UPDATE:
            h->p_update = OSSL_FUNC_digest_update(d);
            break;
        case OSSL_FUNC_DIGEST_FINAL:
            h->p_final = OSSL_FUNC_digest_final(d);
            break;
        case OSSL_FUNC_DIGEST_FREECTX:
            h->p_freectx = OSSL_FUNC_digest_freectx(d);
            break;
        default:
            break;
        }
    }
}

/* Set up the provider backend; 0 or PST_ENOENT if the provider does not expose it. */
static int bm_pow_provider_setup(bm_pow_hasher_t *h)
{
    const OSSL_PROVIDER *prov = EVP_MD_get0_provider(h->md);
    if (prov == NULL)
        return PST_ENOENT;
    int no_cache = 0;
    const OSSL_ALGORITHM *algs = OSSL_PROVIDER_query_operation(prov, OSSL_OP_DIGEST, &no_cache);
    if (algs == NULL)
        return PST_ENOENT;
    OSSL_FUNC_digest_newctx_fn *newctx = NULL;
    for (const OSSL_ALGORITHM *a = algs; a->algorithm_names != NULL; a++) {
        if (bm_pow_names_match(a->algorithm_names, h->md)) {
            bm_pow_take_dispatch(h, a->implementation, &newctx);
            break;
        }
    }
    OSSL_PROVIDER_unquery_operation(prov, OSSL_OP_DIGEST, algs);
    if (newctx == NULL || h->p_init == NULL || h->p_update == NULL || h->p_final == NULL ||
        h->p_freectx == NULL)
        return PST_ENOENT;
    h->pctx = newctx(OSSL_PROVIDER_get0_provider_ctx(prov));
    return h->pctx != NULL ? 0 : PST_ENOENT;
}

static int bm_pow_provider_sha512(bm_pow_hasher_t *h, const uint8_t *data, size_t len,
                                  uint8_t out[BM_POW_HASH_LEN])
{
    size_t outl = 0;
    if (!h->p_init(h->pctx, NULL) || !h->p_update(h->pctx, data, len) ||
        !h->p_final(h->pctx, out, &outl, BM_POW_HASH_LEN) || outl != BM_POW_HASH_LEN)
        return PST_EIO;
    return 0;
}

static int bm_pow_evp_sha512(bm_pow_hasher_t *h, const uint8_t *data, size_t len,
                             uint8_t out[BM_POW_HASH_LEN])
{
    unsigned int outl = 0;
    if (EVP_DigestInit_ex2(h->mctx, h->md, NULL) != 1 ||
        EVP_DigestUpdate(h->mctx, data, len) != 1 || EVP_DigestFinal_ex(h->mctx, out, &outl) != 1 ||
        outl != BM_POW_HASH_LEN)
        return PST_EIO;
    return 0;
}

/* The hot path: trial value of the nonce already in h->in. */
static inline int bm_pow_hasher_run(bm_pow_hasher_t *h, uint64_t *trial)
{
    uint8_t d1[BM_POW_HASH_LEN], d2[BM_POW_HASH_LEN];
    int rc;
    if (h->backend == BM_POW_BACKEND_PROVIDER) {
        rc = bm_pow_provider_sha512(h, h->in, sizeof(h->in), d1);
        if (rc == 0)
            rc = bm_pow_provider_sha512(h, d1, sizeof(d1), d2);
    } else {
        rc = bm_pow_evp_sha512(h, h->in, sizeof(h->in), d1);
        if (rc == 0)
            rc = bm_pow_evp_sha512(h, d1, sizeof(d1), d2);
    }
    if (rc != 0)
        return rc;
    *trial = bm_pow_get_be64(d2);
    return 0;
}

int bm_pow_hasher_trial(bm_pow_hasher_t *h, uint64_t nonce,
                        const uint8_t initial_hash[BM_POW_HASH_LEN], uint64_t *trial)
{
    bm_pow_put_be64(h->in, nonce);
    memcpy(h->in + BM_POW_NONCE_LEN, initial_hash, BM_POW_HASH_LEN);
    return bm_pow_hasher_run(h, trial);
}

/* The chosen backend must agree with plain EVP_Digest on a fixed input. */
static int bm_pow_hasher_selftest(bm_pow_hasher_t *h)
{
    uint8_t ih[BM_POW_HASH_LEN];
    for (size_t i = 0; i < sizeof(ih); i++)
        ih[i] = (uint8_t)(0xa5 ^ i);
    const uint64_t nonce = 0x0123456789abcdefULL;
    uint64_t got = 0, want = 1;
    if (bm_pow_hasher_trial(h, nonce, ih, &got) != 0 || bm_pow_trial_value(nonce, ih, &want) != 0)
        return PST_EIO;
    return got == want ? 0 : PST_EIO;
}

static void bm_pow_provider_drop(bm_pow_hasher_t *h)
{
    if (h->pctx != NULL && h->p_freectx != NULL)
        h->p_freectx(h->pctx);
    h->pctx = NULL;
}

void bm_pow_hasher_free(bm_pow_hasher_t **hp)
{
    if (hp == NULL || *hp == NULL)
        return;
    bm_pow_hasher_t *h = *hp;
    bm_pow_provider_drop(h);
    EVP_MD_CTX_free(h->mctx);
    EVP_MD_free(h->md);
    free(h);
    *hp = NULL;
}

static int bm_pow_try_provider(bm_pow_hasher_t *h)
{
    h->backend = BM_POW_BACKEND_PROVIDER;
    if (bm_pow_provider_setup(h) == 0 && bm_pow_hasher_selftest(h) == 0)
        return 0;
    bm_pow_provider_drop(h);
    return PST_ENOENT;
}

static int bm_pow_try_evp(bm_pow_hasher_t *h)
{
    h->backend = BM_POW_BACKEND_EVP;
    h->mctx = EVP_MD_CTX_new();
    if (h->mctx == NULL)
        return PST_ENOMEM;
    return bm_pow_hasher_selftest(h);
}

bm_pow_hasher_t *bm_pow_hasher_new(enum bm_pow_backend backend)
{
    bm_pow_hasher_t *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->md = EVP_MD_fetch(NULL, "SHA512", NULL);
    int rc = h->md != NULL ? PST_ENOENT : PST_EIO;
    if (h->md != NULL && backend != BM_POW_BACKEND_EVP)
        rc = bm_pow_try_provider(h);
    if (rc != 0 && h->md != NULL && backend != BM_POW_BACKEND_PROVIDER)
        rc = bm_pow_try_evp(h);
    if (rc != 0)
        bm_pow_hasher_free(&h);
    return h;
}

enum bm_pow_backend bm_pow_hasher_backend(const bm_pow_hasher_t *h)
{
    return h->backend;
}

/* ---- search ---------------------------------------------------------------- */

struct bm_pow_job {
    struct bm_pow_search *s;
    uint8_t ih[BM_POW_HASH_LEN];
    uint64_t target;
    unsigned n;
    atomic_bool stop;
    pthread_mutex_t lock; /* guards found, nonce, trial, err */
    int found;
    uint64_t nonce;
    uint64_t trial;
    int err;
};

struct bm_pow_worker {
    struct bm_pow_job *job;
    unsigned index;
    pthread_t tid;
};

static void bm_pow_job_report(struct bm_pow_job *job, int err, uint64_t nonce, uint64_t trial)
{
    pthread_mutex_lock(&job->lock);
    if (err != 0 && job->err == 0) {
        job->err = err;
    } else if (err == 0 && !job->found) {
        job->found = 1;
        job->nonce = nonce;
        job->trial = trial;
    }
    pthread_mutex_unlock(&job->lock);
    atomic_store(&job->stop, true);
}

static int bm_pow_job_running(struct bm_pow_job *job)
{
    return !atomic_load_explicit(&job->stop, memory_order_relaxed) &&
           !atomic_load_explicit(&job->s->cancel, memory_order_relaxed);
}

/* One batch from *nonce; 1 = this worker is finished, 0 = continue. */
static int bm_pow_worker_batch(struct bm_pow_job *job, bm_pow_hasher_t *h, uint64_t *nonce)
{
    const uint64_t stride = job->n;
    uint64_t done = 0, trial = UINT64_MAX;
    int finished = 0;
    while (done < BM_POW_BATCH) {
        bm_pow_put_be64(h->in, *nonce);
        int rc = bm_pow_hasher_run(h, &trial);
        if (rc != 0) {
            bm_pow_job_report(job, rc, 0, 0);
            finished = 1;
            break;
        }
        done++;
        if (bm_pow_meets(trial, job->target)) {
            bm_pow_job_report(job, 0, *nonce, trial);
            finished = 1;
            break;
        }
        if (*nonce > UINT64_MAX - stride) {
            finished = 1; /* this worker's share of the nonce space is exhausted */
            break;
        }
        *nonce += stride;
    }
    atomic_fetch_add_explicit(&job->s->trials, done, memory_order_relaxed);
    return finished;
}

static void *bm_pow_worker_main(void *arg)
{
    struct bm_pow_worker *w = arg;
    struct bm_pow_job *job = w->job;
    bm_pow_hasher_t *h = bm_pow_hasher_new(job->s->backend);
    if (h == NULL) {
        bm_pow_job_report(job, PST_ENOMEM, 0, 0);
        return NULL;
    }
    memcpy(h->in + BM_POW_NONCE_LEN, job->ih, BM_POW_HASH_LEN);
    uint64_t nonce = w->index;
    while (bm_pow_job_running(job)) {
        if (bm_pow_worker_batch(job, h, &nonce))
            break;
    }
    bm_pow_hasher_free(&h);
    return NULL;
}

void bm_pow_search_init(struct bm_pow_search *s, unsigned threads)
{
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (unsigned)(n > BM_POW_THREADS_MAX ? BM_POW_THREADS_MAX : n) : 1;
    }
    if (threads > BM_POW_THREADS_MAX)
        threads = BM_POW_THREADS_MAX;
    atomic_init(&s->cancel, false);
    atomic_init(&s->trials, 0);
    s->threads = threads;
    s->backend = BM_POW_BACKEND_AUTO;
}

void bm_pow_search_set_backend(struct bm_pow_search *s, enum bm_pow_backend backend)
{
    s->backend = backend;
}

void bm_pow_search_cancel(struct bm_pow_search *s)
{
    atomic_store(&s->cancel, true);
}

uint64_t bm_pow_search_progress(struct bm_pow_search *s)
{
    return atomic_load_explicit(&s->trials, memory_order_relaxed);
}

unsigned bm_pow_search_threads(const struct bm_pow_search *s)
{
    return s->threads;
}

static int bm_pow_job_result(struct bm_pow_job *job, uint64_t *nonce, uint64_t *trial)
{
    if (job->found) {
        *nonce = job->nonce;
        if (trial != NULL)
            *trial = job->trial;
        return 0;
    }
    if (job->err != 0)
        return job->err;
    if (atomic_load(&job->s->cancel))
        return PST_EAGAIN;
    return PST_ENOENT;
}

int bm_pow_search(struct bm_pow_search *s, const uint8_t initial_hash[BM_POW_HASH_LEN],
                  uint64_t target, uint64_t *nonce, uint64_t *trial)
{
    unsigned n = s->threads == 0 ? 1 : s->threads;
    struct bm_pow_job job = {.s = s, .target = target, .n = n};
    memcpy(job.ih, initial_hash, BM_POW_HASH_LEN);
    atomic_init(&job.stop, false);
    if (pthread_mutex_init(&job.lock, NULL) != 0)
        return PST_ENOMEM;
    struct bm_pow_worker *w = calloc(n, sizeof(*w));
    if (w == NULL) {
        pthread_mutex_destroy(&job.lock);
        return PST_ENOMEM;
    }
    unsigned started = 0;
    for (; started < n; started++) {
        w[started].job = &job;
        w[started].index = started;
        if (pthread_create(&w[started].tid, NULL, bm_pow_worker_main, &w[started]) != 0) {
            bm_pow_job_report(&job, PST_ENOMEM, 0, 0);
            break;
        }
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(w[i].tid, NULL);
    free(w);
    int rc = bm_pow_job_result(&job, nonce, trial);
    pthread_mutex_destroy(&job.lock);
    return rc;
}

int bm_pow_solve(struct bm_pow_search *s, const uint8_t *payload, size_t len, uint64_t ttl,
                 const struct bm_pow_params *params, uint64_t *nonce)
{
    uint8_t ih[BM_POW_HASH_LEN];
    int rc = bm_pow_initial_hash(payload, len, ih);
    if (rc != 0)
        return rc;
    uint64_t target = bm_pow_target(len, ttl, params);
    if (target == 0)
        return PST_EINVAL;
    return bm_pow_search(s, ih, target, nonce, NULL);
}
