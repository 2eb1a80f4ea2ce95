/*
 * test_bm_pow.c - unit tests for src/bitmessage/bm_pow.c.
 *
 * The expected values were computed with Debian's /usr/bin/python3 (3.11)
 * and hashlib by a scratch script that mirrors PyBitmessage line by line
 * (protocol.isProofOfWorkSufficient, class_singleWorker._doPOWDefaults,
 * proofofwork.trial_value), with Python 2's integer '/' written as '//':
 *
 *   target(len, ttl, n=1000, e=1000) =
 *       2**64 // (n * (len + 8 + e + ((ttl * (len + 8 + e)) // 2**16)))
 *   trial(nonce, ih) = unpack('>Q', sha512(sha512(pack('>Q', nonce) + ih))[:8])
 *
 * and the valid nonce in test_check_reference_object was found by that
 * script's own search loop (nonce 0, 1, 2, ... until trial <= target).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>

#include <cmocka.h>

#include "bitmessage/bm_pow.h"

/* ---- helpers ---- */

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static size_t from_hex(const char *hex, uint8_t *out, size_t max)
{
    size_t n = strlen(hex) / 2;
    assert_true(n <= max);
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n;
}

/* SHA512(b"Postern bm_pow test vector") */
static const char *const IH_HEX =
    "7100df4f1fa33a599cd518fe79eeb1c8e8285a9264758cf86d0ae1d5de187324"
    "401b90fe154c2c15ae272520efa4f549672c6bf7faf0dc1c9b8b4d7b9bfa1c80";

struct trial_vec {
    uint64_t nonce;
    uint64_t trial;
};

static const struct trial_vec TRIALS[] = {
    {0x0ULL, 9096519638298038251ULL},
    {0x1ULL, 512530790563860343ULL},
    {0x0102030405060708ULL, 9622484864291775568ULL},
    {0xffffffffffffffffULL, 5723207816939224744ULL},
};

/* ---- target ---- */

struct target_vec {
    uint64_t len, ttl, ntpb, extra, target;
};

static const struct target_vec TARGETS[] = {
    {0, 0, 1000, 1000, 18300341342965ULL},        {100, 300, 1000, 1000, 16573894046459ULL},
    {100, 3600, 1000, 1000, 15793445268586ULL},   {1000, 86400, 1000, 1000, 3962780681785ULL},
    {262144, 2430000, 1000, 1000, 1840895600ULL}, {500, 2419200, 2000, 1500, 121151331742ULL},
    {1, 1, 1000, 1000, 18282204235589ULL},        {100, 1ULL << 63, 1000, 1000, 0},
    {12345, 1ULL << 40, 1000, 5000, 63361},       {1ULL << 40, 1ULL << 20, 1000, 1000, 986},
};

static void test_target_reference_values(void **state)
{
    for (size_t i = 0; i < sizeof(TARGETS) / sizeof(TARGETS[0]); i++) {
        const struct target_vec *v = &TARGETS[i];
        struct bm_pow_params p = {.nonce_trials_per_byte = v->ntpb, .extra_bytes = v->extra};
        assert_int_equal(bm_pow_target(v->len, v->ttl, &p), v->target);
    }
    /* NULL params are the network defaults */
    assert_int_equal(bm_pow_target(100, 300, NULL), 16573894046459ULL);
}

static void test_target_minimums_enforced(void **state)
{
    struct bm_pow_params low = {.nonce_trials_per_byte = 1, .extra_bytes = 0};
    assert_int_equal(bm_pow_target(100, 300, &low), 16573894046459ULL);
    struct bm_pow_params zero = {0, 0};
    assert_int_equal(bm_pow_target(1000, 86400, &zero), 3962780681785ULL);
    /* a stricter receiver gets a smaller target */
    struct bm_pow_params high = {.nonce_trials_per_byte = 2000, .extra_bytes = 1000};
    assert_true(bm_pow_target(100, 300, &high) < bm_pow_target(100, 300, NULL));
}

static void test_target_extremes_no_overflow(void **state)
{
    struct bm_pow_params max = {.nonce_trials_per_byte = UINT64_MAX, .extra_bytes = UINT64_MAX};
    assert_int_equal(bm_pow_target(UINT64_MAX, UINT64_MAX, NULL), 0);
    assert_int_equal(bm_pow_target(UINT64_MAX, 0, NULL), 0);
    assert_int_equal(bm_pow_target(0, UINT64_MAX, NULL), 0);
    assert_int_equal(bm_pow_target(0, 0, &max), 0);
    assert_int_equal(bm_pow_target(UINT64_MAX, UINT64_MAX, &max), 0);
    /* ntpb large but product still below 2^64: 2^64 / (2^40 * 1008) */
    struct bm_pow_params big = {.nonce_trials_per_byte = 1ULL << 40, .extra_bytes = 1000};
    assert_int_equal(bm_pow_target(0, 0, &big), (uint64_t)((1ULL << 24) / 1008));
}

/* Receiver-side targets (Python mirror of isProofOfWorkSufficient's target). */
static void test_object_target_reference_values(void **state)
{
    const int64_t now = 1700000000;
    /* TTL 0, negative, 299, 300, 301: all floored to 300 (same integer result) */
    assert_int_equal(bm_pow_object_target(40, (uint64_t)now, now, NULL), 17669295089760ULL);
    assert_int_equal(bm_pow_object_target(40, (uint64_t)now - 5000, now, NULL), 17669295089760ULL);
    assert_int_equal(bm_pow_object_target(40, (uint64_t)now + 250, now, NULL), 17669295089760ULL);
    assert_int_equal(bm_pow_object_target(40, (uint64_t)now + 299, now, NULL), 17669295089760ULL);
    assert_int_equal(bm_pow_object_target(40, (uint64_t)now + 300, now, NULL), 17669295089760ULL);
    assert_int_equal(bm_pow_object_target(40, (uint64_t)now + 301, now, NULL), 17669295089760ULL);
    assert_int_equal(bm_pow_object_target(40, (uint64_t)now + 3600, now, NULL), 16815628143764ULL);
    assert_int_equal(bm_pow_object_target(1000, (uint64_t)now + 2430000, now, NULL),
                     242219941354ULL);
    struct bm_pow_params p = {.nonce_trials_per_byte = 1500, .extra_bytes = 2000};
    assert_int_equal(bm_pow_object_target(262152, (uint64_t)now + 86400, now, &p), 20081400169ULL);
    assert_int_equal(bm_pow_object_target(16, UINT64_MAX, 0, NULL), 0);
    assert_int_equal(bm_pow_object_target(16, UINT64_MAX, INT64_MIN, NULL), 0);
    assert_int_equal(bm_pow_object_target(SIZE_MAX, 0, INT64_MAX, NULL), 0);
    /* sender and receiver formulas agree when TTL >= 300 */
    assert_int_equal(bm_pow_object_target(108, (uint64_t)now + 3600, now, NULL),
                     bm_pow_target(100, 3600, NULL));
}

/* ---- trial value ---- */

static void test_initial_hash_and_trials(void **state)
{
    uint8_t ih[BM_POW_HASH_LEN], want[BM_POW_HASH_LEN];
    const char *msg = "Postern bm_pow test vector";
    assert_int_equal(bm_pow_initial_hash((const uint8_t *)msg, strlen(msg), ih), 0);
    from_hex(IH_HEX, want, sizeof(want));
    assert_memory_equal(ih, want, sizeof(want));

    for (size_t i = 0; i < sizeof(TRIALS) / sizeof(TRIALS[0]); i++) {
        uint64_t t = 0;
        assert_int_equal(bm_pow_trial_value(TRIALS[i].nonce, ih, &t), 0);
        assert_int_equal(t, TRIALS[i].trial);
    }
    /* empty payload is allowed; NULL with a length is not */
    assert_int_equal(bm_pow_initial_hash(NULL, 0, ih), 0);
    assert_int_equal(bm_pow_initial_hash(NULL, 5, ih), PST_EINVAL);
}

static void check_hasher(enum bm_pow_backend backend)
{
    uint8_t ih[BM_POW_HASH_LEN];
    from_hex(IH_HEX, ih, sizeof(ih));
    bm_pow_hasher_t *h = bm_pow_hasher_new(backend);
    assert_non_null(h);
    if (backend != BM_POW_BACKEND_AUTO)
        assert_int_equal(bm_pow_hasher_backend(h), backend);
    else
        assert_true(bm_pow_hasher_backend(h) != BM_POW_BACKEND_AUTO);
    for (int round = 0; round < 2; round++) { /* context reuse */
        for (size_t i = 0; i < sizeof(TRIALS) / sizeof(TRIALS[0]); i++) {
            uint64_t t = 0;
            assert_int_equal(bm_pow_hasher_trial(h, TRIALS[i].nonce, ih, &t), 0);
            assert_int_equal(t, TRIALS[i].trial);
        }
    }
    bm_pow_hasher_free(&h);
    assert_null(h);
    bm_pow_hasher_free(&h);
    bm_pow_hasher_free(NULL);
}

static void test_hasher_backends(void **state)
{
    check_hasher(BM_POW_BACKEND_AUTO);
    check_hasher(BM_POW_BACKEND_EVP);
    check_hasher(BM_POW_BACKEND_PROVIDER); /* OpenSSL 3 default provider exposes it */
}

/* ---- checks ---- */

/* An object found valid by the Python mirror of isProofOfWorkSufficient. */
#define REF_NOW 1700000000LL
#define REF_NONCE 768740ULL
static const char *const REF_BODY_HEX =
    "000000006553ff10000000020101506f737465726e20506f5720766563746f72";

static size_t ref_object(uint8_t *obj, size_t max, uint64_t nonce)
{
    assert_true(max >= 8);
    put_be64(obj, nonce);
    return 8 + from_hex(REF_BODY_HEX, obj + 8, max - 8);
}

static void test_check_reference_object(void **state)
{
    uint8_t obj[64];
    size_t len = ref_object(obj, sizeof(obj), REF_NONCE);
    assert_int_equal(len, 40);

    assert_int_equal(bm_pow_sufficient(obj, len, REF_NOW, NULL), 0);
    assert_int_equal(bm_pow_check(obj, len, REF_NOW, NULL), 0);
    /* received later: lower TTL, easier; still within lifetime */
    assert_int_equal(bm_pow_check(obj, len, REF_NOW + 3000, NULL), 0);
    /* received 100000 s earlier (Python: sufficient) */
    assert_int_equal(bm_pow_sufficient(obj, len, REF_NOW - 100000, NULL), 0);
    assert_int_equal(bm_pow_check(obj, len, REF_NOW - 100000, NULL), 0);

    /* receiver demands: ntpb 2000 and extra 5000 pass, ntpb 8000 fails (Python agrees) */
    struct bm_pow_params p2000 = {2000, 1000}, p8000 = {8000, 1000}, e5000 = {1000, 5000};
    assert_int_equal(bm_pow_check(obj, len, REF_NOW, &p2000), 0);
    assert_int_equal(bm_pow_check(obj, len, REF_NOW, &e5000), 0);
    assert_int_equal(bm_pow_check(obj, len, REF_NOW, &p8000), PST_EINVAL);

    /* the next nonce's trial (4198380699134412445) is far above the target */
    len = ref_object(obj, sizeof(obj), REF_NONCE + 1);
    assert_int_equal(bm_pow_sufficient(obj, len, REF_NOW, NULL), PST_EINVAL);
    assert_int_equal(bm_pow_check(obj, len, REF_NOW, NULL), PST_EINVAL);

    /* one flipped payload byte changes initialHash */
    len = ref_object(obj, sizeof(obj), REF_NONCE);
    obj[len - 1] ^= 1;
    assert_int_equal(bm_pow_check(obj, len, REF_NOW, NULL), PST_EINVAL);
}

static void test_check_ttl_floor(void **state)
{
    uint8_t obj[64];
    size_t len = ref_object(obj, sizeof(obj), REF_NONCE);
    /* received 10000 s after expiry: TTL < 300 counts as 300, PoW suffices (Python: True) */
    assert_int_equal(bm_pow_sufficient(obj, len, REF_NOW + 10000, NULL), 0);
    /* ... but the object expired more than an hour ago */
    assert_int_equal(bm_pow_check(obj, len, REF_NOW + 10000, NULL), PST_EINVAL);
}

static void test_eol_limits(void **state)
{
    const int64_t now = REF_NOW;
    assert_int_equal(bm_pow_eol_check((uint64_t)now, now), 0);
    assert_int_equal(bm_pow_eol_check((uint64_t)now + BM_POW_MAX_TTL, now), 0);
    assert_int_equal(bm_pow_eol_check((uint64_t)now + BM_POW_MAX_TTL + 1, now), PST_EINVAL);
    assert_int_equal(bm_pow_eol_check((uint64_t)(now + BM_POW_MIN_TTL), now), 0);
    assert_int_equal(bm_pow_eol_check((uint64_t)(now + BM_POW_MIN_TTL - 1), now), PST_EINVAL);
    assert_int_equal(bm_pow_eol_check(0, now), PST_EINVAL);
    assert_int_equal(bm_pow_eol_check(UINT64_MAX, now), PST_EINVAL);
    assert_int_equal(bm_pow_eol_check(UINT64_MAX, INT64_MAX), PST_EINVAL);
    assert_int_equal(bm_pow_eol_check(0, INT64_MIN), PST_EINVAL);
    assert_int_equal(bm_pow_eol_check(0, 0), 0);
    assert_int_equal(BM_POW_MAX_TTL, 2430000);
}

static void test_check_far_future_object(void **state)
{
    uint8_t obj[64];
    size_t len = ref_object(obj, sizeof(obj), REF_NONCE);
    /* the same object seen a month before "now": expiresTime too far in the future */
    assert_int_equal(bm_pow_check(obj, len, REF_NOW - 40LL * 86400, NULL), PST_EINVAL);
}

static void test_check_hostile(void **state)
{
    uint8_t obj[BM_POW_OBJECT_MIN_LEN + 64];
    memset(obj, 0, sizeof(obj));
    assert_int_equal(bm_pow_check(NULL, 0, REF_NOW, NULL), PST_EINVAL);
    assert_int_equal(bm_pow_check(NULL, 40, REF_NOW, NULL), PST_EINVAL);
    assert_int_equal(bm_pow_sufficient(NULL, 40, REF_NOW, NULL), PST_EINVAL);
    for (size_t len = 0; len < BM_POW_OBJECT_MIN_LEN; len++) {
        assert_int_equal(bm_pow_check(obj, len, REF_NOW, NULL), PST_EINVAL);
        assert_int_equal(bm_pow_sufficient(obj, len, REF_NOW, NULL), PST_EINVAL);
    }
    /* exactly nonce + expiresTime: evaluated, not crashed; all-zero expiry is long expired */
    assert_int_equal(bm_pow_check(obj, BM_POW_OBJECT_MIN_LEN, REF_NOW, NULL), PST_EINVAL);
    /* expiresTime = 2^64-1 at now 0: TTL saturates, target 0 */
    memset(obj + 8, 0xff, 8);
    assert_int_equal(bm_pow_sufficient(obj, sizeof(obj), 0, NULL), PST_EINVAL);
    assert_int_equal(bm_pow_sufficient(obj, sizeof(obj), INT64_MIN, NULL), PST_EINVAL);
    /* valid lifetime, NUL bytes and junk: the work is missing */
    put_be64(obj + 8, (uint64_t)REF_NOW + 3600);
    for (uint64_t n = 0; n < 64; n++) {
        put_be64(obj, n * 0x9e3779b97f4a7c15ULL);
        assert_int_equal(bm_pow_check(obj, sizeof(obj), REF_NOW, NULL), PST_EINVAL);
    }
}

/* ---- search ---- */

static void check_found(const uint8_t *ih, uint64_t target, uint64_t nonce, uint64_t trial)
{
    uint64_t t = 0;
    assert_int_equal(bm_pow_trial_value(nonce, ih, &t), 0);
    assert_int_equal(t, trial);
    assert_true(t <= target);
}

static void test_search_easy_target(void **state)
{
    uint8_t ih[BM_POW_HASH_LEN];
    from_hex(IH_HEX, ih, sizeof(ih));
    const uint64_t target = UINT64_MAX >> 10; /* ~1024 trials expected */
    const unsigned threads[] = {1, 2, 3, 8};
    for (size_t i = 0; i < sizeof(threads) / sizeof(threads[0]); i++) {
        struct bm_pow_search s;
        bm_pow_search_init(&s, threads[i]);
        assert_int_equal(bm_pow_search_threads(&s), threads[i]);
        uint64_t nonce = 0, trial = 0;
        assert_int_equal(bm_pow_search(&s, ih, target, &nonce, &trial), 0);
        check_found(ih, target, nonce, trial);
        assert_true(bm_pow_search_progress(&s) >= 1);
    }
    /* one thread scans 0, 1, 2, ...: the first hit is the smallest valid nonce */
    struct bm_pow_search s;
    bm_pow_search_init(&s, 1);
    uint64_t nonce = 0, trial = 0;
    assert_int_equal(bm_pow_search(&s, ih, target, &nonce, &trial), 0);
    for (uint64_t n = 0; n < nonce; n++) {
        uint64_t t = 0;
        assert_int_equal(bm_pow_trial_value(n, ih, &t), 0);
        assert_true(t > target);
    }
    /* nonce 0's trial as the target: one thread returns nonce 0 itself */
    bm_pow_search_init(&s, 1);
    assert_int_equal(bm_pow_search(&s, ih, TRIALS[0].trial, &nonce, &trial), 0);
    assert_int_equal(nonce, 0);
    assert_int_equal(trial, TRIALS[0].trial);
    /* nonce 0 misses, nonce 1's trial is exactly the target: one thread returns 1 */
    bm_pow_search_init(&s, 1);
    assert_int_equal(bm_pow_search(&s, ih, TRIALS[1].trial, &nonce, &trial), 0);
    assert_int_equal(nonce, 1);
    assert_int_equal(trial, TRIALS[1].trial);
    /* target 0 minus nothing: with target = trial - 1 nonce 1 no longer qualifies */
    bm_pow_search_init(&s, 1);
    assert_int_equal(bm_pow_search(&s, ih, TRIALS[1].trial - 1, &nonce, &trial), 0);
    assert_true(nonce > 1);
    check_found(ih, TRIALS[1].trial - 1, nonce, trial);
}

static void test_search_backends_and_any_target(void **state)
{
    uint8_t ih[BM_POW_HASH_LEN];
    from_hex(IH_HEX, ih, sizeof(ih));
    const enum bm_pow_backend b[] = {BM_POW_BACKEND_EVP, BM_POW_BACKEND_PROVIDER};
    for (size_t i = 0; i < 2; i++) {
        struct bm_pow_search s;
        bm_pow_search_init(&s, 2);
        bm_pow_search_set_backend(&s, b[i]);
        uint64_t nonce = 0, trial = 0;
        assert_int_equal(bm_pow_search(&s, ih, UINT64_MAX >> 8, &nonce, &trial), 0);
        check_found(ih, UINT64_MAX >> 8, nonce, trial);
    }
    /* every trial value is <= UINT64_MAX: found at once */
    struct bm_pow_search s;
    bm_pow_search_init(&s, 0);
    uint64_t nonce = 0, trial = 0;
    assert_int_equal(bm_pow_search(&s, ih, UINT64_MAX, &nonce, &trial), 0);
    assert_true(nonce < bm_pow_search_threads(&s));
    check_found(ih, UINT64_MAX, nonce, trial);
}

static void test_search_threads(void **state)
{
    struct bm_pow_search s;
    bm_pow_search_init(&s, 0);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned want = online > 0 ? (unsigned)online : 1;
    if (want > BM_POW_THREADS_MAX)
        want = BM_POW_THREADS_MAX;
    assert_int_equal(bm_pow_search_threads(&s), want);
    bm_pow_search_init(&s, 100000);
    assert_int_equal(bm_pow_search_threads(&s), BM_POW_THREADS_MAX);
    bm_pow_search_init(&s, 3);
    assert_int_equal(bm_pow_search_threads(&s), 3);
    assert_int_equal(bm_pow_search_progress(&s), 0);
}

struct cancel_run {
    struct bm_pow_search s;
    uint8_t ih[BM_POW_HASH_LEN];
    uint64_t nonce;
    int rc;
};

static void *cancel_thread(void *arg)
{
    struct cancel_run *r = arg;
    /* target 0: only a trial of exactly 0 qualifies (probability 2^-64 per nonce) */
    r->rc = bm_pow_search(&r->s, r->ih, 0, &r->nonce, NULL);
    return NULL;
}

static void test_search_cancel(void **state)
{
    struct cancel_run r;
    memset(&r, 0, sizeof(r));
    from_hex(IH_HEX, r.ih, sizeof(r.ih));
    bm_pow_search_init(&r.s, 2);
    r.rc = 1;
    pthread_t tid;
    assert_int_equal(pthread_create(&tid, NULL, cancel_thread, &r), 0);
    /* wait until the workers have reported progress (two batches at least) */
    const struct timespec tick = {0, 1000000};
    for (int i = 0; i < 20000 && bm_pow_search_progress(&r.s) < 2048; i++)
        nanosleep(&tick, NULL);
    uint64_t before = bm_pow_search_progress(&r.s);
    assert_true(before >= 2048);
    bm_pow_search_cancel(&r.s);
    assert_int_equal(pthread_join(tid, NULL), 0);
    assert_int_equal(r.rc, PST_EAGAIN);
    uint64_t after = bm_pow_search_progress(&r.s);
    assert_true(after >= before);
    /* progress stops once the search has returned */
    nanosleep(&tick, NULL);
    assert_int_equal(bm_pow_search_progress(&r.s), after);

    /* cancelled before it starts: returns promptly with PST_EAGAIN */
    struct bm_pow_search s;
    bm_pow_search_init(&s, 2);
    bm_pow_search_cancel(&s);
    uint64_t nonce = 0;
    assert_int_equal(bm_pow_search(&s, r.ih, 0, &nonce, NULL), PST_EAGAIN);
    /* re-initialising clears the flag */
    bm_pow_search_init(&s, 2);
    assert_int_equal(bm_pow_search(&s, r.ih, UINT64_MAX, &nonce, NULL), 0);
}

/* Sender and receiver agree: solve an object with the network target, then check it. */
static void test_solve_then_check(void **state)
{
    const int64_t now = REF_NOW;
    const uint64_t ttl = 300;
    uint8_t obj[8 + 8 + 4 + 2 + 40];
    memset(obj, 0, sizeof(obj));
    put_be64(obj + 8, (uint64_t)now + ttl);
    obj[19] = 2; /* object type msg */
    obj[20] = 1; /* version */
    obj[21] = 1; /* stream */
    memcpy(obj + 22, "solve-then-check \0 with a NUL byte inside", 40);
    struct bm_pow_search s;
    bm_pow_search_init(&s, 0);
    uint64_t nonce = 0;
    assert_int_equal(bm_pow_solve(&s, obj + 8, sizeof(obj) - 8, ttl, NULL, &nonce), 0);
    put_be64(obj, nonce);
    assert_int_equal(bm_pow_check(obj, sizeof(obj), now, NULL), 0);
    /* a receiver asking 100x the work decides by its own, 100x smaller target */
    uint8_t ih[BM_POW_HASH_LEN];
    uint64_t trial = 0;
    assert_int_equal(bm_pow_initial_hash(obj + 8, sizeof(obj) - 8, ih), 0);
    assert_int_equal(bm_pow_trial_value(nonce, ih, &trial), 0);
    struct bm_pow_params hard = {100000, 1000};
    int want = trial <= bm_pow_target(sizeof(obj) - 8, ttl, &hard) ? 0 : PST_EINVAL;
    assert_int_equal(bm_pow_check(obj, sizeof(obj), now, &hard), want);
    /* unreachable target */
    assert_int_equal(bm_pow_solve(&s, obj + 8, sizeof(obj) - 8, UINT64_MAX, NULL, &nonce),
                     PST_EINVAL);
    assert_int_equal(bm_pow_solve(&s, NULL, 5, ttl, NULL, &nonce), PST_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_target_reference_values),
        cmocka_unit_test(test_target_minimums_enforced),
        cmocka_unit_test(test_target_extremes_no_overflow),
        cmocka_unit_test(test_object_target_reference_values),
        cmocka_unit_test(test_initial_hash_and_trials),
        cmocka_unit_test(test_hasher_backends),
        cmocka_unit_test(test_check_reference_object),
        cmocka_unit_test(test_check_ttl_floor),
        cmocka_unit_test(test_eol_limits),
        cmocka_unit_test(test_check_far_future_object),
        cmocka_unit_test(test_check_hostile),
        cmocka_unit_test(test_search_easy_target),
        cmocka_unit_test(test_search_backends_and_any_target),
        cmocka_unit_test(test_search_threads),
        cmocka_unit_test(test_search_cancel),
        cmocka_unit_test(test_solve_then_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
