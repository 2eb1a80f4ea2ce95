/*
 * bench_bm_pow.c - bm_pow_bench: Bitmessage proof-of-work throughput.
 *
 * Not a unit test (no assertions on timing); run by bench/pow. It measures,
 * in one run on this machine:
 *
 *   1. evp_1core     double-SHA512 trials/s on one core, plain OpenSSL EVP
 *                    (one EVP_MD_CTX reused, EVP_DigestInit_ex2 per hash);
 *   2. direct_1core  the same tight loop through bm_pow's hasher (OpenSSL's
 *                    provider digest functions called directly, the fastest
 *                    non-deprecated way);
 *   3. limit         max(1, 2) x cores: what the machine can do with OpenSSL;
 *   4. search        bm_pow_search() with target 0 (never satisfied) on every
 *                    core for the same time, cancelled from this thread;
 *   5. parallel      the direct loop on every core at once, no coordination
 *                    (shows what the cores deliver together, e.g. on a VM);
 *   6. ratio         search / limit (goal: >= 95%), also search / parallel
 *                    and search per CPU second / best 1-core per CPU second.
 *
 * Usage: bm_pow_bench [-s seconds] [-t threads]   (defaults: 3 s, all cores)
 * Output: one human line per figure, then a key=value summary line.
 */
#include <errno.h>
#include <pthread.h>
#include <sys/resource.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "bitmessage/bm_pow.h"

#define BENCH_CLOCK_EVERY 4096u /* trials between clock reads */
#define BENCH_SECONDS_DEFAULT 3.0
#define BENCH_SECONDS_MAX 3600.0

static double bench_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double bench_thread_cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double bench_process_cpu(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* One measurement: trials per wall second and per CPU second. */
struct bench_rate {
    double wall;
    double cpu;
};

static void bench_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* Plain EVP tight loop on this thread; 0 or -1 on failure. */
static int bench_evp(const uint8_t *ih, double seconds, uint64_t *sink, struct bench_rate *r)
{
    EVP_MD *md = EVP_MD_fetch(NULL, "SHA512", NULL);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t in[BM_POW_NONCE_LEN + BM_POW_HASH_LEN], d1[BM_POW_HASH_LEN], d2[BM_POW_HASH_LEN];
    int rc = -1;
    if (md == NULL || ctx == NULL)
        goto out;
    memcpy(in + BM_POW_NONCE_LEN, ih, BM_POW_HASH_LEN);
    uint64_t n = 0;
    double start = bench_now(), end = start + seconds, now = start, cpu0 = bench_thread_cpu();
    while (now < end) {
        for (unsigned i = 0; i < BENCH_CLOCK_EVERY; i++, n++) {
            bench_put_be64(in, n);
            if (EVP_DigestInit_ex2(ctx, md, NULL) != 1 ||
                EVP_DigestUpdate(ctx, in, sizeof(in)) != 1 ||
                EVP_DigestFinal_ex(ctx, d1, NULL) != 1 || EVP_DigestInit_ex2(ctx, md, NULL) != 1 ||
                EVP_DigestUpdate(ctx, d1, sizeof(d1)) != 1 ||
                EVP_DigestFinal_ex(ctx, d2, NULL) != 1)
                goto out;
            *sink += d2[0];
        }
        now = bench_now();
    }
    r->wall = (double)n / (now - start);
    r->cpu = (double)n / (bench_thread_cpu() - cpu0);
    rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(md);
    return rc;
}

/* bm_pow hasher tight loop on this thread; 0 or -1 on failure. */
static int bench_direct(const uint8_t *ih, double seconds, uint64_t *sink, const char **name,
                        struct bench_rate *r)
{
    bm_pow_hasher_t *h = bm_pow_hasher_new(BM_POW_BACKEND_AUTO);
    if (h == NULL)
        return -1;
    *name = bm_pow_hasher_backend(h) == BM_POW_BACKEND_PROVIDER ? "provider" : "evp";
    uint64_t n = 0;
    double start = bench_now(), end = start + seconds, now = start, cpu0 = bench_thread_cpu();
    while (now < end) {
        for (unsigned i = 0; i < BENCH_CLOCK_EVERY; i++, n++) {
            uint64_t trial = 0;
            if (bm_pow_hasher_trial(h, n, ih, &trial) != 0) {
                bm_pow_hasher_free(&h);
                return -1;
            }
            *sink += trial;
        }
        now = bench_now();
    }
    r->wall = (double)n / (now - start);
    r->cpu = (double)n / (bench_thread_cpu() - cpu0);
    bm_pow_hasher_free(&h);
    return 0;
}

struct bench_par {
    const uint8_t *ih;
    double seconds;
    uint64_t sink;
    const char *name;
    struct bench_rate rate;
    int rc;
};

static void *bench_par_main(void *arg)
{
    struct bench_par *p = arg;
    p->rc = bench_direct(p->ih, p->seconds, &p->sink, &p->name, &p->rate);
    return NULL;
}

/* The direct tight loop on `cores` threads at once (no search machinery):
 * what the cores deliver together. Sum of trials/s, or -1 on failure. */
static double bench_parallel(const uint8_t *ih, double seconds, unsigned cores)
{
    struct bench_par *p = calloc(cores, sizeof(*p));
    pthread_t *tid = calloc(cores, sizeof(*tid));
    double sum = -1;
    unsigned started = 0;
    if (p == NULL || tid == NULL)
        goto out;
    for (; started < cores; started++) {
        p[started].ih = ih;
        p[started].seconds = seconds;
        if (pthread_create(&tid[started], NULL, bench_par_main, &p[started]) != 0)
            break;
    }
    sum = started == cores ? 0 : -1;
    for (unsigned i = 0; i < started; i++) {
        pthread_join(tid[i], NULL);
        if (p[i].rc != 0)
            sum = -1;
        else if (sum >= 0)
            sum += p[i].rate.wall;
    }
out:
    free(tid);
    free(p);
    return sum;
}

struct bench_search {
    struct bm_pow_search s;
    const uint8_t *ih;
    int rc;
};

static void *bench_search_main(void *arg)
{
    struct bench_search *b = arg;
    uint64_t nonce = 0;
    b->rc = bm_pow_search(&b->s, b->ih, 0, &nonce, NULL);
    return NULL;
}

/* All-core search for `seconds`, cancelled from here; 0 or -1 on failure. */
static int bench_search(const uint8_t *ih, double seconds, unsigned threads, struct bench_rate *r)
{
    struct bench_search b = {.ih = ih, .rc = 1};
    bm_pow_search_init(&b.s, threads);
    pthread_t tid;
    double start = bench_now(), cpu0 = bench_process_cpu();
    if (pthread_create(&tid, NULL, bench_search_main, &b) != 0)
        return -1;
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    bm_pow_search_cancel(&b.s);
    pthread_join(tid, NULL);
    double elapsed = bench_now() - start, cpu = bench_process_cpu() - cpu0;
    if (b.rc != PST_EAGAIN || cpu <= 0)
        return -1;
    double trials = (double)bm_pow_search_progress(&b.s);
    r->wall = trials / elapsed;
    r->cpu = trials / cpu;
    return 0;
}

static int bench_args(int argc, char **argv, double *seconds, unsigned *threads)
{
    int opt;
    while ((opt = getopt(argc, argv, "s:t:")) != -1) {
        char *end = NULL;
        if (opt == 's') {
            *seconds = strtod(optarg, &end);
            if (end == optarg || *end != '\0' || !(*seconds > 0) || *seconds > BENCH_SECONDS_MAX)
                return -1;
        } else if (opt == 't') {
            unsigned long t = strtoul(optarg, &end, 10);
            if (end == optarg || *end != '\0' || t > BM_POW_THREADS_MAX)
                return -1;
            *threads = (unsigned)t;
        } else {
            return -1;
        }
    }
    return optind == argc ? 0 : -1;
}

int main(int argc, char **argv)
{
    double seconds = BENCH_SECONDS_DEFAULT;
    unsigned threads = 0;
    if (bench_args(argc, argv, &seconds, &threads) != 0) {
        fprintf(stderr, "usage: %s [-s seconds] [-t threads]\n", argv[0]);
        return 2;
    }
    struct bm_pow_search probe;
    bm_pow_search_init(&probe, threads);
    unsigned cores = bm_pow_search_threads(&probe);

    uint8_t ih[BM_POW_HASH_LEN];
    static const char seed[] = "bm_pow_bench";
    if (bm_pow_initial_hash((const uint8_t *)seed, sizeof(seed) - 1, ih) != 0)
        return 1;
    uint64_t sink = 0;
    const char *backend = "?";
    struct bench_rate evp, direct, search;
    double parallel = 0;
    if (bench_evp(ih, seconds, &sink, &evp) != 0 ||
        bench_direct(ih, seconds, &sink, &backend, &direct) != 0 ||
        bench_search(ih, seconds, threads, &search) != 0 ||
        (parallel = bench_parallel(ih, seconds, cores)) < 0) {
        fprintf(stderr, "bm_pow_bench: measurement failed\n");
        return 1;
    }
    double best = evp.wall > direct.wall ? evp.wall : direct.wall;
    double best_cpu = evp.cpu > direct.cpu ? evp.cpu : direct.cpu;
    double limit = best * cores;
    double ratio = search.wall / limit;
    double cpu_eff = search.cpu / best_cpu;

    printf("OpenSSL EVP double-SHA512, 1 core:        %12.0f trials/s (%.0f per CPU s)\n", evp.wall,
           evp.cpu);
    printf("OpenSSL %-8s double-SHA512, 1 core:   %12.0f trials/s (%.0f per CPU s)\n", backend,
           direct.wall, direct.cpu);
    printf("machine limit (best 1-core x %3u):        %12.0f trials/s\n", cores, limit);
    printf("Postern bm_pow_search, %3u threads:       %12.0f trials/s (%.0f per CPU s)\n", cores,
           search.wall, search.cpu);
    printf("direct loops on all %3u cores at once:    %12.0f trials/s\n", cores, parallel);
    printf("ratio search/limit:                       %11.1f %%  (goal >= 95%%)\n", ratio * 100);
    printf("ratio search/all-cores-at-once:           %11.1f %%\n", search.wall / parallel * 100);
    printf("per-CPU-second efficiency:                %11.1f %%  (independent of other load)\n",
           cpu_eff * 100);
    printf(
        "bm_pow_bench seconds=%.1f cores=%u backend=%s evp_1core=%.0f direct_1core=%.0f "
        "limit=%.0f parallel=%.0f search=%.0f ratio=%.3f ratio_parallel=%.3f cpu_efficiency=%.3f "
        "sink=%u\n",
        seconds, cores, backend, evp.wall, direct.wall, limit, parallel, search.wall, ratio,
        search.wall / parallel, cpu_eff, (unsigned)(sink & 1));
    return 0;
}
