/* Host ground-truth micro-benchmarks, compiled by cffi (native/build_hostbench.py).
 *
 * hb_chase:    memory latency of a dependent pointer chase over a random cyclic
 *              permutation of cache lines (every load depends on the previous one, so
 *              the time per step is the load-to-use latency of wherever the line lives).
 * hb_pingpong: core-to-core cache-line latency: two threads pinned with
 *              sched_setaffinity hand one line back and forth with compare-and-swap;
 *              one round trip is two line transfers, so the one-way latency is half.
 * hb_urpc_pingpong, hb_urpc_stream: a URPC channel laid out as kernels/urpc.py lays out
 *              Barrelfish's UMP (64-byte slots, control word last, epoch/type/ack bits, acks
 *              piggybacked): one-way latency and pipelined throughput between two pinned CPUs.
 * hb_shm, hb_msg: Figure 3 of the Barrelfish paper on the host: threads update k shared
 *              lines directly (SHMk), or clients call a server that owns them over URPC (MSGk).
 * Every multi-thread run pins its threads, starts them together, and gives up with
 * -ETIMEDOUT at its deadline (a busy or throttled CPU never hangs the caller).
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
#include <sys/resource.h>
#include <time.h>

#define HB_LINE 64

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Involuntary context switches of the whole process so far (every thread of it): a pass during
 * which this grows had one of its threads descheduled for another task, so it timed the
 * scheduler, not the workload. getrusage needs no privilege. */
static long ivcsw(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return ru.ru_nivcsw;
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
    long *out_csw;                /* may be NULL: involuntary context switches per pass */
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
        long csw = ivcsw();
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
        if (sh->out_csw)
            sh->out_csw[r] = ivcsw() - csw;
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
 * `reps` passes of `iters` round trips; out_ns[r] = pass time / iters / 2; out_csw[r] (when
 * out_csw is not NULL) = involuntary context switches of the process during pass r.
 * Returns 0; -EINVAL for bad arguments; -EPERM-like negative errno when a thread could
 * not be pinned (sched_setaffinity's errno); -ETIMEDOUT when the whole run took longer
 * than timeout_s (e.g. a host whose other CPU is busy); -EAGAIN if threads could not start. */
int hb_pingpong(int cpu_a, int cpu_b, long iters, long warm, int reps, double timeout_s,
                double *out_ns, long *out_csw)
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
    sh->out_csw = out_csw;
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

/* ================================================================== teams of pinned threads
 *
 * The URPC and Figure 3 benchmarks run several pinned threads. A team holds what they share:
 * the start barrier (every thread pinned, or one failed), the abort flag and the deadline, so
 * that any spin-wait can give up (a thread that cannot be pinned, or a host whose other CPUs
 * are busy, ends the run with an error code instead of hanging it). */

struct team {
    _Alignas(128) int ready;      /* threads that finished pinning */
    int failed_errno;             /* nonzero: a thread could not pin (its errno) */
    int abort;                    /* set when the deadline passed or a protocol error */
    int proto_error;              /* nonzero: a URPC protocol error (data while waiting for credit) */
    int n;                        /* threads in the team */
    double deadline_ns;
    /* a sense-reversing barrier for `bar_n` threads (all, or the clients only) */
    _Alignas(128) int bar_count;
    int bar_gen;
};

struct worker {
    struct team *t;
    int who;                      /* 0 .. n-1 */
    int cpu;
    void *ctx;                    /* the benchmark's own shared state */
};

/* Every 4096 spins: 1 when the run must stop (deadline passed, or another thread gave up). */
static int team_should_stop(struct team *t, unsigned *spins)
{
    if ((++*spins & 0xFFF) != 0)
        return 0;
    if (__atomic_load_n(&t->abort, __ATOMIC_RELAXED))
        return 1;
    if (now_ns() > t->deadline_ns) {
        __atomic_store_n(&t->abort, 1, __ATOMIC_RELAXED);
        return 1;
    }
    return 0;
}

/* Pin this thread, then wait for the whole team; 1 when the run cannot go on. */
static int team_start(struct worker *w)
{
    struct team *t = w->t;
    int err = pin_self(w->cpu);
    if (err)
        __atomic_store_n(&t->failed_errno, err, __ATOMIC_RELAXED);
    __atomic_add_fetch(&t->ready, 1, __ATOMIC_ACQ_REL);
    unsigned spins = 0;
    while (__atomic_load_n(&t->ready, __ATOMIC_ACQUIRE) < t->n)
        if (team_should_stop(t, &spins))
            return 1;
    return __atomic_load_n(&t->failed_errno, __ATOMIC_RELAXED) != 0;
}

/* Barrier of `parties` threads of the team; 1 when the run was aborted meanwhile. */
static int team_barrier(struct team *t, int parties)
{
    int gen = __atomic_load_n(&t->bar_gen, __ATOMIC_ACQUIRE);
    if (__atomic_add_fetch(&t->bar_count, 1, __ATOMIC_ACQ_REL) == parties) {
        __atomic_store_n(&t->bar_count, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&t->bar_gen, gen + 1, __ATOMIC_RELEASE);
        return __atomic_load_n(&t->abort, __ATOMIC_RELAXED);
    }
    unsigned spins = 0;
    while (__atomic_load_n(&t->bar_gen, __ATOMIC_ACQUIRE) == gen)
        if (team_should_stop(t, &spins))
            return 1;
    return 0;
}

/* Start `n` threads running fn, thread i pinned to cpus[i], and join them.
 * Returns 0; -errno of a failed pin; -ETIMEDOUT; -EPROTO; -EAGAIN; -ENOMEM. */
static int team_run(int n, const int *cpus, void *(*fn)(void *), void *ctx, double timeout_s)
{
    struct team *t = aligned_alloc(128, (sizeof(struct team) + 127) & ~(size_t)127);
    struct worker *ws = calloc((size_t)n, sizeof(struct worker));
    pthread_t *th = calloc((size_t)n, sizeof(pthread_t));
    if (t == NULL || ws == NULL || th == NULL) {
        free(t);
        free(ws);
        free(th);
        return -ENOMEM;
    }
    memset(t, 0, sizeof(*t));
    t->n = n;
    t->deadline_ns = now_ns() + timeout_s * 1e9;
    int started = 0, rc = 0;
    for (int i = 0; i < n; i++) {
        ws[i] = (struct worker){t, i, cpus[i], ctx};
        if (pthread_create(&th[i], NULL, fn, &ws[i]) != 0) {
            /* the started threads are waiting at the start barrier: let them out */
            __atomic_store_n(&t->failed_errno, EAGAIN, __ATOMIC_RELAXED);
            __atomic_store_n(&t->abort, 1, __ATOMIC_RELAXED);
            rc = -EAGAIN;
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    if (rc == 0) {
        if (t->failed_errno)
            rc = -t->failed_errno;
        else if (t->proto_error)
            rc = -EPROTO;
        else if (t->abort)
            rc = -ETIMEDOUT;
    }
    free(t);
    free(ws);
    free(th);
    return rc;
}

static int valid_cpu(int cpu)
{
    return cpu >= 0 && cpu < CPU_SETSIZE;
}

/* ================================================================== URPC (Barrelfish UMP)
 *
 * The channel of kernels/urpc.py, byte for byte: a ring is `slots` 64-byte lines; a slot is 7
 * payload words (bytes 0..55) and a control word (bytes 56..63) written LAST:
 *     bit 63 epoch (1 on the first lap, flips at every wrap), bits 62..56 message type
 *     (UR_DATA 1, UR_ACK 2), bits 55..0 ack = messages the writer has received on the reverse ring.
 * Flow control as there: at most `slots` unacknowledged messages per ring; a sender without
 * credit takes ack-only messages from its receive ring; a receiver that took slots/2 messages
 * since it last sent anything sends an ack-only message (control word only). */

#define UR_LINE 64
#define UR_PAYLOAD_WORDS 7
#define UR_EPOCH (1ull << 63)
#define UR_TYPE_SHIFT 56
#define UR_TYPE_MASK 0x7Full
#define UR_ACK_MASK ((1ull << UR_TYPE_SHIFT) - 1)
#define UR_DATA 1ull
#define UR_ACK 2ull

struct ur_slot {
    _Alignas(UR_LINE) uint64_t w[UR_PAYLOAD_WORDS];
    uint64_t ctrl;
};
_Static_assert(sizeof(struct ur_slot) == UR_LINE, "a URPC slot is one 64-byte line");
_Static_assert(__builtin_offsetof(struct ur_slot, ctrl) == 56, "control word at bytes 56..63");

/* One end of a link: the registers r15..r8 of kernels/urpc.py (txp, txe, txs, txa, rxp, rxe,
 * rxn, rxl), kept in the end's own cache line. */
struct ur_end {
    _Alignas(UR_LINE) struct ur_slot *tx, *rx;
    unsigned slots, txi, rxi;
    uint64_t txe, rxe, txs, txa, rxn, rxl;
    unsigned spins;               /* spins so far: the deadline is checked every 4096 of them */
};

/* A link's two rings, back to back (a->b first, then b->a), as urpc.Link.at lays them out. */
static struct ur_slot *ur_alloc(int slots)
{
    size_t bytes = 2 * (size_t)slots * UR_LINE;
    struct ur_slot *r = aligned_alloc(4096, (bytes + 4095) & ~(size_t)4095);
    if (r)
        memset(r, 0, bytes);   /* zeroed rings: epoch 0 everywhere, nothing new */
    return r;
}

static void ur_init(struct ur_end *e, struct ur_slot *tx, struct ur_slot *rx, int slots)
{
    memset(e, 0, sizeof(*e));
    e->tx = tx;
    e->rx = rx;
    e->slots = (unsigned)slots;
    e->txe = UR_EPOCH;   /* both ends write / expect epoch 1 first */
    e->rxe = UR_EPOCH;
}

/* 1 when the next receive slot holds a new message (its epoch is the expected one): the
 * server's poll, a plain load that hits in its cache while the client has not written. */
static inline int ur_ready(struct ur_end *e)
{
    return (__atomic_load_n(&e->rx[e->rxi].ctrl, __ATOMIC_ACQUIRE) & UR_EPOCH) == e->rxe;
}

static inline void ur_rx_advance(struct ur_end *e)
{
    if (++e->rxi == e->slots) {
        e->rxi = 0;
        e->rxe ^= UR_EPOCH;
    }
    e->rxn++;
}

/* Wait for the next receive slot; its control word, or 0 when the run was aborted (a new
 * control word is never 0: its type field is 1 or 2). */
static uint64_t ur_wait(struct ur_end *e, struct team *t)
{
    for (;;) {
        uint64_t c = __atomic_load_n(&e->rx[e->rxi].ctrl, __ATOMIC_ACQUIRE);
        if ((c & UR_EPOCH) == e->rxe)
            return c;
        if (team_should_stop(t, &e->spins))   /* counted across waits: short waits add up */
            return 0;
    }
}

/* Write the control word (epoch | kind | rxn) last; everything received is now acked. */
static inline void ur_post(struct ur_end *e, uint64_t kind)
{
    __atomic_store_n(&e->tx[e->txi].ctrl, e->txe | kind << UR_TYPE_SHIFT | e->rxn, __ATOMIC_RELEASE);
    e->rxl = e->rxn;
    if (++e->txi == e->slots) {
        e->txi = 0;
        e->txe ^= UR_EPOCH;
    }
    e->txs++;
}

/* Send one data message, payload [w0, 0, ..]; 0, or 1 when aborted / a protocol error. */
static int ur_send(struct ur_end *e, uint64_t w0, struct team *t)
{
    while (e->txs - e->txa >= e->slots) {          /* no credit: take an ack-only message */
        uint64_t c = ur_wait(e, t);
        if (c == 0)
            return 1;
        e->txa = c & UR_ACK_MASK;
        if (((c >> UR_TYPE_SHIFT) & UR_TYPE_MASK) != UR_ACK) {
            __atomic_store_n(&t->proto_error, 1, __ATOMIC_RELAXED);
            __atomic_store_n(&t->abort, 1, __ATOMIC_RELAXED);
            return 1;
        }
        ur_rx_advance(e);
    }
    volatile uint64_t *w = e->tx[e->txi].w;
    w[0] = w0;
    for (int k = 1; k < UR_PAYLOAD_WORDS; k++)       /* all 7 words, as the model's sender */
        w[k] = 0;
    ur_post(e, UR_DATA);
    return 0;
}

/* Receive one data message (skipping ack-only ones); its word 0 in *w0. 0, or 1 when aborted. */
static int ur_recv(struct ur_end *e, uint64_t *w0, struct team *t)
{
    for (;;) {
        uint64_t c = ur_wait(e, t);
        if (c == 0)
            return 1;
        e->txa = c & UR_ACK_MASK;
        if (((c >> UR_TYPE_SHIFT) & UR_TYPE_MASK) == UR_ACK) {
            ur_rx_advance(e);
            continue;
        }
        volatile uint64_t *w = e->rx[e->rxi].w;
        *w0 = w[0];
        for (int k = 1; k < UR_PAYLOAD_WORDS; k++)   /* read all 7 words, as the model's receiver */
            (void)w[k];                              /* volatile: the load happens */
        ur_rx_advance(e);
        break;
    }
    unsigned half = e->slots / 2 ? e->slots / 2 : 1;
    if (e->rxn - e->rxl >= half && e->txs - e->txa < e->slots)
        ur_post(e, UR_ACK);                          /* ack-only: a one-way stream never stalls */
    return 0;
}

/* The channel layout, for tests that hold it against kernels/urpc.py: out[0..7] = slot bytes,
 * control word offset, epoch bit, type shift, type mask, ack bits, data type, ack type. */
void hb_urpc_layout(long *out)
{
    out[0] = sizeof(struct ur_slot);
    out[1] = (long)__builtin_offsetof(struct ur_slot, ctrl);
    out[2] = __builtin_ctzll(UR_EPOCH);
    out[3] = UR_TYPE_SHIFT;
    out[4] = (long)UR_TYPE_MASK;
    out[5] = UR_TYPE_SHIFT;   /* ack bits 55..0 */
    out[6] = (long)UR_DATA;
    out[7] = (long)UR_ACK;
}

/* ------------------------------------------------------------------ URPC ping-pong and stream */

struct ur_pair {
    struct ur_slot *rings;        /* a->b ring, then b->a ring */
    int slots;
    long iters, warm;             /* ping-pong: round trips; stream: messages per pass */
    int reps;
    int stream;                   /* 0: ping-pong, 1: one-way stream */
    double *out_ns;
    long *out_csw;                /* may be NULL */
    double t_start;               /* stream: the sender's start of the current pass */
    long csw_start;               /* stream: ivcsw() at t_start */
};

/* End a (who 0): the client of the ping-pong, the sender of the stream; it times the passes. */
static void *ur_pair_a(void *arg)
{
    struct worker *w = arg;
    struct ur_pair *c = w->ctx;
    struct team *t = w->t;
    struct ur_end e;
    ur_init(&e, c->rings, c->rings + c->slots, c->slots);
    if (team_start(w))
        return NULL;
    uint64_t seq = 0, got;
    if (!c->stream) {
        for (long i = 0; i < c->warm; i++, seq++)
            if (ur_send(&e, seq, t) || ur_recv(&e, &got, t))
                return NULL;
        for (int r = 0; r < c->reps; r++) {
            long csw = ivcsw();
            double t0 = now_ns();
            for (long i = 0; i < c->iters; i++, seq++)
                if (ur_send(&e, seq, t) || ur_recv(&e, &got, t))
                    return NULL;
            c->out_ns[r] = (now_ns() - t0) / (double)c->iters / 2.0;   /* round trip / 2 */
            if (c->out_csw)
                c->out_csw[r] = ivcsw() - csw;
        }
        return NULL;
    }
    for (long i = 0; i < c->warm; i++, seq++)
        if (ur_send(&e, seq, t))
            return NULL;
    for (int r = 0; r < c->reps; r++) {
        if (team_barrier(t, 2))              /* the receiver has drained the previous pass */
            return NULL;
        c->csw_start = ivcsw();
        c->t_start = now_ns();
        for (long i = 0; i < c->iters; i++, seq++)
            if (ur_send(&e, seq, t))
                return NULL;
        if (team_barrier(t, 2))              /* the receiver has timed this pass */
            return NULL;
    }
    return NULL;
}

/* End b (who 1): the server of the ping-pong (echoes word 0), the receiver of the stream
 * (checks the sequence and times the pass from the sender's start to the last message). */
static void *ur_pair_b(void *arg)
{
    struct worker *w = arg;
    struct ur_pair *c = w->ctx;
    struct team *t = w->t;
    struct ur_end e;
    ur_init(&e, c->rings + c->slots, c->rings, c->slots);
    if (team_start(w))
        return NULL;
    uint64_t got, expect = 0;
    if (!c->stream) {
        long total = c->warm + c->iters * (long)c->reps;
        for (long i = 0; i < total; i++)
            if (ur_recv(&e, &got, t) || ur_send(&e, got, t))
                return NULL;
        return NULL;
    }
    for (long i = 0; i < c->warm; i++, expect++)
        if (ur_recv(&e, &got, t))
            return NULL;
    for (int r = 0; r < c->reps; r++) {
        if (team_barrier(t, 2))
            return NULL;
        for (long i = 0; i < c->iters; i++, expect++) {
            if (ur_recv(&e, &got, t))
                return NULL;
            if (got != expect) {                /* lost, duplicated or reordered: a bug */
                __atomic_store_n(&t->proto_error, 1, __ATOMIC_RELAXED);
                __atomic_store_n(&t->abort, 1, __ATOMIC_RELAXED);
                return NULL;
            }
        }
        c->out_ns[r] = (now_ns() - c->t_start) / (double)c->iters;
        if (c->out_csw)
            c->out_csw[r] = ivcsw() - c->csw_start;
        if (team_barrier(t, 2))
            return NULL;
    }
    return NULL;
}

static void *ur_pair_thread(void *arg)
{
    struct worker *w = arg;
    return w->who == 0 ? ur_pair_a(arg) : ur_pair_b(arg);
}

static int ur_pair_run(int cpu_a, int cpu_b, int slots, long iters, long warm, int reps,
                       double timeout_s, double *out_ns, long *out_csw, int stream)
{
    if (!valid_cpu(cpu_a) || !valid_cpu(cpu_b) || cpu_a == cpu_b || slots < 2 || iters < 1 ||
        warm < 0 || reps < 1 || timeout_s <= 0 || out_ns == NULL)
        return -EINVAL;
    struct ur_pair c = {0};
    c.rings = ur_alloc(slots);
    if (c.rings == NULL)
        return -ENOMEM;
    c.slots = slots;
    c.iters = iters;
    c.warm = warm;
    c.reps = reps;
    c.stream = stream;
    c.out_ns = out_ns;
    c.out_csw = out_csw;
    int cpus[2] = {cpu_a, cpu_b};
    int rc = team_run(2, cpus, ur_pair_thread, &c, timeout_s);
    free(c.rings);
    return rc;
}

/* URPC one-way latency between cpu_a (client) and cpu_b (server): `warm` untimed round trips,
 * then `reps` passes of `iters` round trips (send [seq], the server echoes it);
 * out_ns[r] = pass time / iters / 2. Returns 0; -EINVAL; -errno of a failed pin;
 * -ETIMEDOUT when the run took longer than timeout_s; -EPROTO on a protocol error.
 * out_csw (may be NULL): involuntary context switches of the process during each pass. */
int hb_urpc_pingpong(int cpu_a, int cpu_b, int slots, long iters, long warm, int reps,
                     double timeout_s, double *out_ns, long *out_csw)
{
    return ur_pair_run(cpu_a, cpu_b, slots, iters, warm, reps, timeout_s, out_ns, out_csw, 0);
}

/* URPC pipelined throughput from cpu_a to cpu_b: the sender runs ahead up to the ring's depth
 * (flow control by acks). `warm` untimed messages, then `reps` passes of `msgs` messages;
 * out_ns[r] = nanoseconds per message (sender's start to the receiver's last message, which
 * checks every sequence number). Returns as hb_urpc_pingpong. */
int hb_urpc_stream(int cpu_a, int cpu_b, int slots, long msgs, long warm, int reps,
                   double timeout_s, double *out_ns, long *out_csw)
{
    return ur_pair_run(cpu_a, cpu_b, slots, msgs, warm, reps, timeout_s, out_ns, out_csw, 1);
}

/* ================================================================== Figure 3: SHM and MSG
 *
 * One update of k shared cache lines is what kernels/microbench.py's _update does: every line
 * is read, incremented and written back (x++, a load then a store; `locked` = 1 makes it one
 * lock-prefixed add instead). The lines are 64 bytes apart from a page-aligned base. */

static inline void update_lines(volatile uint64_t *lines, int nlines, int locked)
{
    for (int i = 0; i < nlines; i++) {
        volatile uint64_t *x = lines + (size_t)i * (UR_LINE / 8);
        if (locked)
            __atomic_fetch_add(x, 1, __ATOMIC_SEQ_CST);
        else
            *x = *x + 1;
    }
}

struct fig3 {
    volatile uint64_t *lines;
    int nlines, locked, slots, nclients;
    long iters, warm;
    int reps;
    double *per_thread;           /* [reps][threads]: ns per update of each timed thread */
    long *csw;                    /* [reps][threads]: involuntary switches during its pass */
    double *t0, *t1;              /* [reps][threads]: when each thread's pass began and ended */
    struct ur_slot **links;       /* MSG: one link per client (client->server ring first) */
};

/* SHM: every thread updates the same lines; per pass, each thread's ns per update. */
static void *shm_thread(void *arg)
{
    struct worker *w = arg;
    struct fig3 *c = w->ctx;
    struct team *t = w->t;
    if (team_start(w))
        return NULL;
    unsigned spins = 0;
    for (long i = 0; i < c->warm; i++) {
        update_lines(c->lines, c->nlines, c->locked);
        if (team_should_stop(t, &spins))
            return NULL;
    }
    for (int r = 0; r < c->reps; r++) {
        if (team_barrier(t, t->n))          /* all threads contend during every pass */
            return NULL;
        long csw = ivcsw();
        double t0 = now_ns();
        for (long i = 0; i < c->iters; i++) {
            update_lines(c->lines, c->nlines, c->locked);
            if (team_should_stop(t, &spins))   /* a clock read every 4096 updates */
                return NULL;
        }
        double t1 = now_ns();
        size_t k = (size_t)r * t->n + w->who;
        c->per_thread[k] = (t1 - t0) / (double)c->iters;
        c->csw[k] = ivcsw() - csw;
        c->t0[k] = t0;
        c->t1[k] = t1;
    }
    team_barrier(t, t->n);
    return NULL;
}

/* Per pass r: out_ns[r] = mean over threads; out_csw[r] = the most switches any thread saw;
 * out_overlap[r] = the time all threads ran their pass together over the time any did
 * (1 = they ran side by side; near 0 = one after the other, e.g. a thread that was descheduled
 * before its pass began and ran it alone later, which no switch count during the pass shows). */
static void per_pass(const struct fig3 *c, int reps, int n, double *out_ns, long *out_csw,
                     double *out_overlap)
{
    for (int r = 0; r < reps; r++) {
        double s = 0, first = 0, last = 0, lo = 0, hi = 0;
        long m = 0;
        for (int i = 0; i < n; i++) {
            size_t k = (size_t)r * n + i;
            s += c->per_thread[k];
            if (c->csw[k] > m)
                m = c->csw[k];
            if (i == 0 || c->t0[k] < first) first = c->t0[k];
            if (i == 0 || c->t0[k] > lo) lo = c->t0[k];
            if (i == 0 || c->t1[k] < hi) hi = c->t1[k];
            if (i == 0 || c->t1[k] > last) last = c->t1[k];
        }
        out_ns[r] = s / n;
        if (out_csw)
            out_csw[r] = m;
        if (out_overlap)
            out_overlap[r] = last > first && hi > lo ? (hi - lo) / (last - first) : (n == 1 ? 1.0 : 0.0);
    }
}

static int fig3_alloc(struct fig3 *c, int reps, int n)
{
    size_t k = (size_t)reps * n;
    c->per_thread = calloc(k, sizeof(double));
    c->csw = calloc(k, sizeof(long));
    c->t0 = calloc(k, sizeof(double));
    c->t1 = calloc(k, sizeof(double));
    return c->per_thread && c->csw && c->t0 && c->t1;
}

static void fig3_free(struct fig3 *c)
{
    free((void *)c->lines);
    free(c->per_thread);
    free(c->csw);
    free(c->t0);
    free(c->t1);
}

static volatile uint64_t *lines_alloc(int nlines)
{
    size_t bytes = ((size_t)nlines * UR_LINE + 4095) & ~(size_t)4095;
    volatile uint64_t *l = aligned_alloc(4096, bytes);
    if (l)
        memset((void *)l, 0, bytes);
    return l;
}

/* SHMk: `nthreads` threads, thread i pinned to cpus[i], each update the same `nlines` lines
 * (`warm` untimed updates, then `reps` passes of `iters` updates, all threads starting each pass
 * together); out_ns[r] = mean over threads of ns per update; out_csw, out_overlap (may be NULL):
 * see per_pass. Returns as hb_urpc_pingpong. */
int hb_shm(const int *cpus, int nthreads, int nlines, int locked, long iters, long warm, int reps,
           double timeout_s, double *out_ns, long *out_csw, double *out_overlap)
{
    if (cpus == NULL || nthreads < 1 || nlines < 1 || iters < 1 || warm < 0 || reps < 1 ||
        timeout_s <= 0 || out_ns == NULL)
        return -EINVAL;
    for (int i = 0; i < nthreads; i++)
        if (!valid_cpu(cpus[i]))
            return -EINVAL;
    struct fig3 c = {0};
    c.lines = lines_alloc(nlines);
    if (!fig3_alloc(&c, reps, nthreads) || c.lines == NULL) {
        fig3_free(&c);
        return -ENOMEM;
    }
    c.nlines = nlines;
    c.locked = locked;
    c.iters = iters;
    c.warm = warm;
    c.reps = reps;
    int rc = team_run(nthreads, cpus, shm_thread, &c, timeout_s);
    if (rc == 0)
        per_pass(&c, reps, nthreads, out_ns, out_csw, out_overlap);
    fig3_free(&c);
    return rc;
}

/* MSG server (who 0): polls its clients' links in turn; a new request is received, the lines it
 * owns are updated, and the request's word 0 is sent back. Stops after every client's calls. */
static void msg_server(struct worker *w)
{
    struct fig3 *c = w->ctx;
    struct team *t = w->t;
    int n = c->nclients;
    struct ur_end *ends = aligned_alloc(UR_LINE, (size_t)n * sizeof(struct ur_end));
    if (ends == NULL) {
        __atomic_store_n(&t->abort, 1, __ATOMIC_RELAXED);
        return;
    }
    for (int i = 0; i < n; i++)
        ur_init(&ends[i], c->links[i] + c->slots, c->links[i], c->slots);
    long total = (long)n * (c->warm + c->iters * (long)c->reps), done = 0;
    unsigned spins = 0;
    uint64_t got;
    while (done < total) {
        for (int i = 0; i < n; i++) {
            if (!ur_ready(&ends[i]))
                continue;
            if (ur_recv(&ends[i], &got, t))
                goto out;
            update_lines(c->lines, c->nlines, c->locked);
            if (ur_send(&ends[i], got, t))
                goto out;
            done++;
        }
        if (team_should_stop(t, &spins))
            break;
    }
out:
    free(ends);
}

/* MSG client (who 1..n): calls the server `warm` times, then `reps` passes of `iters` calls
 * (clients start each pass together); per pass, its ns per call. */
static void msg_client(struct worker *w)
{
    struct fig3 *c = w->ctx;
    struct team *t = w->t;
    int i = w->who - 1;
    struct ur_end e;
    ur_init(&e, c->links[i], c->links[i] + c->slots, c->slots);
    uint64_t seq = 0, got;
    for (long k = 0; k < c->warm; k++, seq++)
        if (ur_send(&e, seq, t) || ur_recv(&e, &got, t))
            return;
    for (int r = 0; r < c->reps; r++) {
        if (team_barrier(t, c->nclients))
            return;
        long csw = ivcsw();
        double t0 = now_ns();
        for (long k = 0; k < c->iters; k++, seq++)
            if (ur_send(&e, seq, t) || ur_recv(&e, &got, t))
                return;
        double t1 = now_ns();
        size_t k = (size_t)r * c->nclients + i;
        c->per_thread[k] = (t1 - t0) / (double)c->iters;
        c->csw[k] = ivcsw() - csw;
        c->t0[k] = t0;
        c->t1[k] = t1;
    }
}

static void *msg_thread(void *arg)
{
    struct worker *w = arg;
    if (team_start(w))
        return NULL;
    if (w->who == 0)
        msg_server(w);
    else
        msg_client(w);
    return NULL;
}

/* MSGk: `nclients` client threads (pinned to client_cpus) each call a server thread (pinned to
 * server_cpu) over their own URPC link of `slots` slots; the server updates the `nlines` lines
 * it owns per call (the lightweight RPC of the Barrelfish paper: one request line, one reply
 * line). `warm` untimed calls per client, then `reps` passes of `iters` calls; out_ns[r] = mean
 * over clients of ns per call; out_csw, out_overlap (may be NULL; the clients' passes): see
 * per_pass. Returns as hb_urpc_pingpong. */
int hb_msg(int server_cpu, const int *client_cpus, int nclients, int nlines, int slots,
           long iters, long warm, int reps, double timeout_s, double *out_ns, long *out_csw,
           double *out_overlap)
{
    if (!valid_cpu(server_cpu) || client_cpus == NULL || nclients < 1 || nlines < 1 || slots < 2 ||
        iters < 1 || warm < 0 || reps < 1 || timeout_s <= 0 || out_ns == NULL)
        return -EINVAL;
    int *cpus = malloc(sizeof(int) * (size_t)(nclients + 1));
    struct fig3 c = {0};
    c.links = calloc((size_t)nclients, sizeof(struct ur_slot *));
    c.lines = lines_alloc(nlines);
    int rc = -ENOMEM;
    if (!fig3_alloc(&c, reps, nclients) || cpus == NULL || c.links == NULL || c.lines == NULL)
        goto out;
    cpus[0] = server_cpu;
    for (int i = 0; i < nclients; i++) {
        if (!valid_cpu(client_cpus[i]) || client_cpus[i] == server_cpu) {
            rc = -EINVAL;
            goto out;
        }
        cpus[i + 1] = client_cpus[i];
        if ((c.links[i] = ur_alloc(slots)) == NULL)
            goto out;
    }
    c.nlines = nlines;
    c.slots = slots;
    c.nclients = nclients;
    c.iters = iters;
    c.warm = warm;
    c.reps = reps;
    rc = team_run(nclients + 1, cpus, msg_thread, &c, timeout_s);
    if (rc == 0)
        per_pass(&c, reps, nclients, out_ns, out_csw, out_overlap);
out:
    if (c.links)
        for (int i = 0; i < nclients; i++)
            free(c.links[i]);
    free(c.links);
    fig3_free(&c);
    free(cpus);
    return rc;
}
