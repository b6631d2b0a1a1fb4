/* Host ground-truth micro-benchmarks, compiled by cffi (native/build_hostbench.py).
 *
 * hb_chase:    memory latency of a dependent pointer chase over a random cyclic
 *              permutation of cache lines (every load depends on the previous one, so
 *              the time per step is the load-to-use latency of wherever the line lives).
 * hb_pingpong: core-to-core cache-line latency: two threads pinned with
 *              sched_setaffinity hand one line back and forth with compare-and-swap;
 *              one round trip is two line transfers, so the one-way latency is half.
 * Timing is clock_gettime(CLOCK_MONOTONIC) (vDSO, no syscall); hb_tsc_hz reports the
 * TSC rate measured against it so that callers can also express results in TSC cycles.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HB_LINE 64

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

/* Sink for chase results, so the compiler cannot drop the loop. */
static void *volatile hb_sink;

static void *chase(void *start, long steps)
{
    void **p = (void **)start;
    for (long i = 0; i < steps; i++)
        p = (void **)*p;
    return (void *)p;
}

/* Pointer chase over `bytes` of memory (a whole number of 64-byte lines, >= 2 lines).
 * Runs one warm-up pass over the whole cycle (at least `steps` loads), then `reps`
 * timed passes of `steps` loads each; out_ns[r] is nanoseconds per load of pass r.
 * Returns 0, -EINVAL for bad arguments or -ENOMEM. */
int hb_chase(size_t bytes, uint64_t seed, long steps, int reps, double *out_ns)
{
    size_t n = bytes / HB_LINE;
    if (n < 2 || n > UINT32_MAX || steps < 1 || reps < 1 || out_ns == NULL)
        return -EINVAL;
    size_t alloc = (n * HB_LINE + 4095) & ~(size_t)4095;   /* C11: a multiple of the alignment */
    char *buf = aligned_alloc(4096, alloc);
    uint32_t *order = malloc(n * sizeof(uint32_t));
    if (buf == NULL || order == NULL) {
        free(buf);
        free(order);
        return -ENOMEM;
    }
    memset(buf, 0, n * HB_LINE);   /* touch every page before timing */
    /* Sattolo's algorithm: a uniformly random permutation that is a single cycle,
     * so the chase visits every line before repeating one. */
    for (size_t i = 0; i < n; i++)
        order[i] = (uint32_t)i;
    uint64_t s = seed ? seed : 0x9E3779B97F4A7C15ull;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(xorshift64(&s) % i);   /* j < i: Sattolo, not Fisher-Yates */
        uint32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < n; i++) {
        size_t from = order[i], to = order[(i + 1) % n];
        *(void **)(buf + from * HB_LINE) = (void *)(buf + to * HB_LINE);
    }
    free(order);
    void *p = buf;
    p = chase(p, (long)n > steps ? (long)n : steps);   /* warm-up: caches, TLB, page tables */
    for (int r = 0; r < reps; r++) {
        double t0 = now_ns();
        p = chase(p, steps);
        double t1 = now_ns();
        out_ns[r] = (t1 - t0) / (double)steps;
    }
    hb_sink = p;
    free(buf);
    return 0;
}

/* ------------------------------------------------------------------ ping-pong */

struct pp_shared {
    /* the line that moves; alone in a 128-byte block so the adjacent-line prefetcher
     * does not drag a second line along */
    _Alignas(128) volatile uint64_t line;
    _Alignas(128) int ready;      /* threads that finished pinning */
    int failed_errno;             /* nonzero: a thread could not pin (its errno) */
    int abort;                    /* set when the deadline passed */
    int cpu[2];
    long iters, warm;
    int reps;
    double deadline_ns;
    double *out_ns;
};

static int pin_self(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set) == 0 ? 0 : errno;   /* 0 = this thread */
}

/* Spin until the line holds `expect`, then CAS it to expect + 1.
 * Returns 0, or 1 when the run was aborted (deadline or the other thread gave up). */
static int hand_over(struct pp_shared *sh, uint64_t expect)
{
    unsigned spins = 0;
    for (;;) {
        uint64_t e = expect;
        if (__atomic_compare_exchange_n(&sh->line, &e, expect + 1, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            return 0;
        if ((++spins & 0xFFFF) == 0) {
            if (__atomic_load_n(&sh->abort, __ATOMIC_RELAXED))
                return 1;
            if (now_ns() > sh->deadline_ns) {
                __atomic_store_n(&sh->abort, 1, __ATOMIC_RELAXED);
                return 1;
            }
        }
    }
}

static int pp_start(struct pp_shared *sh, int who)
{
    int err = pin_self(sh->cpu[who]);
    if (err)
        __atomic_store_n(&sh->failed_errno, err, __ATOMIC_RELAXED);
    __atomic_add_fetch(&sh->ready, 1, __ATOMIC_ACQ_REL);
    while (__atomic_load_n(&sh->ready, __ATOMIC_ACQUIRE) < 2)
        ;
    return __atomic_load_n(&sh->failed_errno, __ATOMIC_RELAXED) != 0;
}

/* Thread 0 moves the line from even to odd values and times each pass. */
static void *pp_timer(void *arg)
{
    struct pp_shared *sh = arg;
    if (pp_start(sh, 0))
        return NULL;
    uint64_t v = 0;
    for (long i = 0; i < sh->warm; i++, v += 2)
        if (hand_over(sh, v))
            return NULL;
    for (int r = 0; r < sh->reps; r++) {
        double t0 = now_ns();
        for (long i = 0; i < sh->iters; i++, v += 2)
            if (hand_over(sh, v))
                return NULL;
        /* wait for the last reply, so the pass holds `iters` full round trips */
        while (sh->line != v)
            if (__atomic_load_n(&sh->abort, __ATOMIC_RELAXED))
                return NULL;
        double t1 = now_ns();
        sh->out_ns[r] = (t1 - t0) / (double)sh->iters / 2.0;
    }
    return NULL;
}

/* Thread 1 answers: odd to even. */
static void *pp_echo(void *arg)
{
    struct pp_shared *sh = arg;
    if (pp_start(sh, 1))
        return NULL;
    long total = sh->warm + sh->iters * (long)sh->reps;
    for (long i = 0; i < total; i++)
        if (hand_over(sh, 2 * (uint64_t)i + 1))
            return NULL;
    return NULL;
}

/* One-way cache-line latency between cpu_a and cpu_b: `warm` untimed round trips, then
 * `reps` passes of `iters` round trips; out_ns[r] = pass time / iters / 2.
 * Returns 0; -EINVAL for bad arguments; -EPERM-like negative errno when a thread could
 * not be pinned (sched_setaffinity's errno); -ETIMEDOUT when the whole run took longer
 * than timeout_s (e.g. a host whose other CPU is busy); -EAGAIN if threads could not start. */
int hb_pingpong(int cpu_a, int cpu_b, long iters, long warm, int reps, double timeout_s,
                double *out_ns)
{
    if (cpu_a < 0 || cpu_b < 0 || cpu_a >= CPU_SETSIZE || cpu_b >= CPU_SETSIZE ||
        cpu_a == cpu_b || iters < 1 || warm < 0 || reps < 1 || timeout_s <= 0 || !out_ns)
        return -EINVAL;
    struct pp_shared *sh = aligned_alloc(128, sizeof(*sh));
    if (sh == NULL)
        return -ENOMEM;
    memset(sh, 0, sizeof(*sh));
    sh->cpu[0] = cpu_a;
    sh->cpu[1] = cpu_b;
    sh->iters = iters;
    sh->warm = warm;
    sh->reps = reps;
    sh->out_ns = out_ns;
    sh->deadline_ns = now_ns() + timeout_s * 1e9;
    pthread_t t0, t1;
    if (pthread_create(&t0, NULL, pp_timer, sh) != 0) {
        free(sh);
        return -EAGAIN;
    }
    if (pthread_create(&t1, NULL, pp_echo, sh) != 0) {
        /* let the timer thread through its start barrier, then stop it */
        __atomic_store_n(&sh->failed_errno, EAGAIN, __ATOMIC_RELAXED);
        __atomic_add_fetch(&sh->ready, 1, __ATOMIC_ACQ_REL);
        pthread_join(t0, NULL);
        free(sh);
        return -EAGAIN;
    }
    pthread_join(t0, NULL);
    pthread_join(t1, NULL);
    int rc = 0;
    if (sh->failed_errno)
        rc = -sh->failed_errno;
    else if (sh->abort)
        rc = -ETIMEDOUT;
    free(sh);
    return rc;
}

/* ------------------------------------------------------------------ clock */

/* The time-stamp counter's rate in Hz, measured against CLOCK_MONOTONIC over about
 * `window_s` seconds; 0 on hosts without an x86 TSC. */
double hb_tsc_hz(double window_s)
{
#if defined(__x86_64__) || defined(__i386__)
    double t0 = now_ns();
    uint64_t c0 = __builtin_ia32_rdtsc();
    double t1;
    do
        t1 = now_ns();
    while (t1 - t0 < window_s * 1e9);
    uint64_t c1 = __builtin_ia32_rdtsc();
    return (double)(c1 - c0) / ((t1 - t0) * 1e-9);
#else
    (void)window_s;
    return 0.0;
#endif
}

/* Resolution of CLOCK_MONOTONIC in nanoseconds (clock_getres). */
double hb_clock_res_ns(void)
{
    struct timespec ts;
    if (clock_getres(CLOCK_MONOTONIC, &ts) != 0)
        return -1.0;
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}
