/* Alternate inference (SPEC §4, Algorithm 2) as one compiled loop per block of samples.
 *
 * molddl/inference/kernel.py compiles this file with the machine's C compiler and calls
 * `molddl_alternate` through ctypes; molddl/inference/alternate.py holds the PyTorch loop it
 * must agree with, iteration for iteration (tests/unit/inference/test_kernel.py compares the
 * two). Compile without -ffast-math: fexp's rounding and the NaN tests need IEEE arithmetic.
 *
 * Layout: samples are processed in blocks of LANES. A block copies its samples' rows into
 * [feature][lane] arrays of the thread's scratch, so the innermost loop of every product runs
 * over the lanes of a SIMD register and needs no reduction across lanes. A sample's
 * arithmetic is therefore the same whatever block or thread it lands in: its result does not
 * depend on the other samples or on the thread count.
 *
 * A block iterates until every one of its samples has left (converged, period-2 cycle or
 * max_iter) or until half of those it started with have left; it then writes back the states
 * and counts of the others, which the caller packs into full blocks for the next call.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LANES 32

enum { ACTIVE = 0, CONVERGED = 1, CYCLE = 2, MAX_ITER = 3 };
enum { BINARY = 0, MULTICLASS = 1, VALUE = 2 };

typedef struct {
    int64_t s_in;    /* width of the input label state: 1, or C classes */
    int64_t hidden;  /* width of the tower's layers */
    int64_t depth;   /* hidden x hidden layers between the first and the output layer */
    int64_t raw;     /* output rows evaluated: 1 (binary, value) or C (multiclass) */
    int64_t kind;    /* BINARY (sigmoid), MULTICLASS (softmax) or VALUE (first row) */
    const float *H;  /* n x hidden: W_h h + c, constant across iterations */
    const float *M;  /* s_in x hidden: the label path W_y L(s) = s M + c */
    const float *W;  /* depth x hidden x hidden (out x in) */
    const float *b;  /* depth x hidden */
    const float *Wo; /* raw x hidden */
    const float *bo; /* raw */
} tower_t;

typedef struct {
    int64_t gauss_seidel; /* 0: Jacobi; 1: the second update reads the first's new state */
    int64_t cycles;       /* a period-2 cycle leaves with: 0 the state of max_iter's parity,
                             1 the fixed point nearest the start (fixed_point, plain Jacobi) */
    int64_t check_cycles; /* cycles != continue and tol > 0 */
    int64_t max_iter;
    float tol;       /* a sample has converged when its largest change is below tol */
    float cycle_tol; /* ... and is in a period-2 cycle when it comes back within this */
    float keep;      /* 1 - damping: new = keep * new + damping * old */
    float damping;
} config_t;

typedef struct { /* one call's samples; per-sample arrays are n x width, row-major */
    const int64_t *rows;  /* nblocks x LANES: the sample in each lane, -1 for none */
    float *S1, *S2;       /* current states (in/out) */
    float *P1, *P2;       /* states one iteration before the current ones (in/out) */
    const float *I1, *I2; /* initial states, for resolving a cycle */
    float *O1, *O2;       /* final states of samples that left (out) */
    int64_t *iter;        /* iterations run so far (in/out) */
    int8_t *status;       /* ACTIVE while the sample iterates, then why it left (in/out) */
    float *residual;      /* largest state change at its last iteration (out) */
} lanes_t;

/* e^x for |x| <= 88: 2^n p(r) with Cephes' polynomial for expf; no libm call and no
 * float-to-int conversion, so the compiler vectorizes it over the lanes. */
static inline float fexp(float x) {
    x = x < -87.f ? -87.f : (x > 88.f ? 88.f : x);
    float t = x * 1.44269504088896341f + 12582912.f; /* round(x / ln 2) in the low bits */
    float n = t - 12582912.f;
    int32_t bits;
    memcpy(&bits, &t, 4);
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500E-4f;
    p = p * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    p = p * r * r + r + 1.f;
    int32_t e = ((bits - 0x4B400000) + 127) << 23;
    float s;
    memcpy(&s, &e, 4);
    return p * s;
}

/* max(p, 0) as one integer max of the float's bits (a non-negative float's bits are a
 * non-negative int, a negative float's a negative one): compilers vectorize it into one
 * instruction, where `p > 0 ? p : 0` becomes a compare and a blend without -ffast-math. The
 * three operations per multiply-add pair of a default tower become two. A NaN with the sign
 * bit clear stays NaN, as in PyTorch's ReLU; one with the sign bit set becomes 0. */
static inline float relu(float p) {
    int32_t bits;
    memcpy(&bits, &p, 4);
    bits = bits > 0 ? bits : 0;
    memcpy(&p, &bits, 4);
    return p;
}

/* Sums over a layer's inputs run as CHAINS independent accumulators per lane (input j goes to
 * chain j % CHAINS), added up at the end: one chain would wait on each multiply-add's
 * latency. The order is fixed, so the result is too. */
#define CHAINS 4

/* q[l] = b + sum_j w[j] x[j][l] over n inputs (x: n x LANES) */
static void dense(const float *restrict w, float b, const float *restrict x, int64_t n,
                  float *restrict q) {
    float a[CHAINS][LANES] = {{0.f}};
    int64_t j = 0;
    for (; j + CHAINS <= n; j += CHAINS)
        for (int c = 0; c < CHAINS; c++)
            for (int l = 0; l < LANES; l++) a[c][l] += w[j + c] * x[(j + c) * LANES + l];
    for (; j < n; j++)
        for (int l = 0; l < LANES; l++) a[0][l] += w[j] * x[j * LANES + l];
    for (int l = 0; l < LANES; l++) q[l] = b + ((a[0][l] + a[1][l]) + (a[2][l] + a[3][l]));
}

static void sigmoid(const float *restrict a, float *restrict out) {
    for (int l = 0; l < LANES; l++) out[l] = 1.f / (1.f + fexp(-a[l]));
}

/* A tower of molddl's default shape: a binary or value label in and out, no hidden layer. */
static inline int simple(const tower_t *T) { return T->depth == 0 && T->s_in == 1 && T->raw == 1; }

/* One tower's raw outputs on a block (acc: raw x LANES) from the other label's state
 * (s_in x LANES); x, y: hidden x LANES scratch. */
static void tower(const tower_t *T, const float *restrict h, const float *restrict state,
                  float *x, float *y, float *restrict acc) {
    const int64_t hidden = T->hidden, raw = T->raw, s_in = T->s_in;
    if (simple(T)) { /* the default towers: one pass, nothing leaves the registers */
        float a[LANES];
        for (int l = 0; l < LANES; l++) a[l] = T->bo[0];
        for (int64_t j = 0; j < hidden; j++) {
            const float m = T->M[j], w = T->Wo[j];
            for (int l = 0; l < LANES; l++) {
                float p = h[j * LANES + l] + state[l] * m;
                a[l] += relu(p) * w;
            }
        }
        memcpy(acc, a, sizeof a);
    } else {
        for (int64_t j = 0; j < hidden; j++) { /* first layer: relu(W_h h + c + s M) */
            float p[LANES];
            for (int l = 0; l < LANES; l++) p[l] = h[j * LANES + l];
            for (int64_t i = 0; i < s_in; i++) {
                const float mij = T->M[i * hidden + j];
                for (int l = 0; l < LANES; l++) p[l] += state[i * LANES + l] * mij;
            }
            for (int l = 0; l < LANES; l++) x[j * LANES + l] = relu(p[l]);
        }
        for (int64_t d = 0; d < T->depth; d++) { /* hidden layers: relu(W x + b) */
            const float *W = T->W + d * hidden * hidden, *b = T->b + d * hidden;
            for (int64_t o = 0; o < hidden; o++) {
                float q[LANES];
                dense(W + o * hidden, b[o], x, hidden, q);
                for (int l = 0; l < LANES; l++) y[o * LANES + l] = relu(q[l]);
            }
            float *swap = x;
            x = y;
            y = swap;
        }
        for (int64_t r = 0; r < raw; r++) /* output layer */
            dense(T->Wo + r * hidden, T->bo[r], x, hidden, acc + r * LANES);
    }
}

/* Both default towers of a Jacobi step in one pass over their hidden units (the sums of
 * tower() in the same order): acc1 = T1(h1, s2), acc2 = T2(h2, s1). */
static void pair(const tower_t *T1, const tower_t *T2, const float *restrict h1,
                 const float *restrict h2, const float *restrict s1, const float *restrict s2,
                 float *restrict acc1, float *restrict acc2) {
    float a1[LANES], a2[LANES];
    for (int l = 0; l < LANES; l++) a1[l] = T1->bo[0], a2[l] = T2->bo[0];
    for (int64_t j = 0; j < T1->hidden; j++) {
        const float m1 = T1->M[j], w1 = T1->Wo[j], m2 = T2->M[j], w2 = T2->Wo[j];
        for (int l = 0; l < LANES; l++) {
            float p1 = h1[j * LANES + l] + s2[l] * m1, p2 = h2[j * LANES + l] + s1[l] * m2;
            a1[l] += relu(p1) * w1;
            a2[l] += relu(p2) * w2;
        }
    }
    memcpy(acc1, a1, sizeof a1);
    memcpy(acc2, a2, sizeof a2);
}

/* The label state (s_out x LANES) from a tower's raw outputs (raw x LANES). */
static void to_state(const tower_t *T, const float *restrict acc, float *restrict out) {
    const int64_t raw = T->raw;
    if (T->kind == BINARY) {
        sigmoid(acc, out);
    } else if (T->kind == VALUE) {
        memcpy(out, acc, LANES * sizeof(float));
    } else {
        float top[LANES], sum[LANES];
        for (int l = 0; l < LANES; l++) top[l] = acc[l], sum[l] = 0.f;
        for (int64_t r = 1; r < raw; r++)
            for (int l = 0; l < LANES; l++)
                top[l] = acc[r * LANES + l] > top[l] ? acc[r * LANES + l] : top[l];
        for (int64_t r = 0; r < raw; r++)
            for (int l = 0; l < LANES; l++) {
                float e = fexp(acc[r * LANES + l] - top[l]);
                out[r * LANES + l] = e;
                sum[l] += e;
            }
        for (int64_t r = 0; r < raw; r++)
            for (int l = 0; l < LANES; l++) out[r * LANES + l] /= sum[l];
    }
}

static inline float absf(float v) { return v < 0.f ? -v : v; }

/* m[l] = the largest |a - b| of each lane over a state's rows; NaN if any is NaN (as
 * torch's amax) */
static void dist(const float *a, const float *b, int64_t rows, float *m) {
    for (int l = 0; l < LANES; l++) m[l] = 0.f;
    for (int64_t i = 0; i < rows; i++)
        for (int l = 0; l < LANES; l++) {
            float d = absf(a[i * LANES + l] - b[i * LANES + l]);
            m[l] = (d > m[l] || d != d) ? d : m[l];
        }
}

static void nanmax(float *a, const float *b) {
    for (int l = 0; l < LANES; l++) a[l] = (b[l] > a[l] || b[l] != b[l]) ? b[l] : a[l];
}

/* block[i][l] = src[rows[l]][i] (0 for a lane without a sample) */
static void gather(float *block, const float *src, const int64_t *rows, int64_t width) {
    for (int l = 0; l < LANES; l++)
        for (int64_t i = 0; i < width; i++)
            block[i * LANES + l] = rows[l] < 0 ? 0.f : src[rows[l] * width + i];
}

/* dst[row][i] = block[i][l] */
static void scatter(float *dst, int64_t row, const float *block, int64_t width, int l) {
    for (int64_t i = 0; i < width; i++) dst[row * width + i] = block[i * LANES + l];
}

static float lane_dist(const float *a, const float *b, int64_t rows, int l) {
    float m = 0.f;
    for (int64_t i = 0; i < rows; i++) {
        float d = absf(a[i * LANES + l] - b[i * LANES + l]);
        m = (d > m || d != d) ? d : m;
    }
    return m;
}

/* P = S (kept for the period-2 test), S = N */
static void advance(float *S1, float *S2, float *P1, float *P2, const float *N1,
                    const float *N2, int64_t s1, int64_t s2, int64_t keep_previous) {
    if (keep_previous) {
        memcpy(P1, S1, sizeof(float) * s1 * LANES);
        memcpy(P2, S2, sizeof(float) * s2 * LANES);
    }
    memcpy(S1, N1, sizeof(float) * s1 * LANES);
    memcpy(S2, N2, sizeof(float) * s2 * LANES);
}

static void run_block(const tower_t *T1, const tower_t *T2, const config_t *c,
                      const lanes_t *A, int64_t k, float *scratch) {
    const int64_t s1 = T2->s_in, s2 = T1->s_in; /* tower 2 reads label 1 and vice versa */
    const int64_t hidden = T1->hidden > T2->hidden ? T1->hidden : T2->hidden;
    const int64_t raw = T1->raw > T2->raw ? T1->raw : T2->raw;
    const int64_t *rows = A->rows + k * LANES;
    /* the block's [feature][lane] arrays, in this thread's scratch (scratch_floats) */
    float *x = scratch, *y = x + hidden * LANES, *acc = y + hidden * LANES;
    float *N1 = acc + 2 * raw * LANES, *N2 = N1 + s1 * LANES; /* acc: both towers' raw */
    float *S1 = N2 + s2 * LANES, *S2 = S1 + s1 * LANES;
    float *P1 = S2 + s2 * LANES, *P2 = P1 + s1 * LANES;
    float *I1 = P2 + s2 * LANES, *I2 = I1 + s1 * LANES;
    float *H1 = I2 + s2 * LANES, *H2 = H1 + T1->hidden * LANES;
    gather(H1, T1->H, rows, T1->hidden);
    gather(H2, T2->H, rows, T2->hidden);
    gather(S1, A->S1, rows, s1);
    gather(S2, A->S2, rows, s2);
    gather(P1, A->P1, rows, s1);
    gather(P2, A->P2, rows, s2);
    gather(I1, A->I1, rows, s1);
    gather(I2, A->I2, rows, s2);
    const float d = c->damping, keep = c->keep;
    const int paired = !c->gauss_seidel && simple(T1) && simple(T2) && T1->hidden == T2->hidden;

    /* per lane: still iterating, and the iterations it had run when the block started */
    int32_t act[LANES];
    int64_t iter0[LANES];
    int start = 0;
    int64_t steps = 0, until = INT64_MAX; /* the first step at which a lane hits max_iter */
    for (int l = 0; l < LANES; l++) {
        act[l] = rows[l] >= 0 && A->status[rows[l]] == ACTIVE;
        iter0[l] = act[l] ? A->iter[rows[l]] : 0;
        start += act[l];
        if (act[l] && c->max_iter - iter0[l] < until) until = c->max_iter - iter0[l];
    }
    int active = start;
    float delta[LANES], q[LANES], tmp[LANES];
    while (2 * active > start) { /* stop once half of the block's samples have left */
        steps++;
        if (paired) {
            pair(T1, T2, H1, H2, S1, S2, acc, acc + LANES);
            to_state(T1, acc, N1);
            to_state(T2, acc + LANES, N2);
        } else {
            tower(T2, H2, S1, x, y, acc);
            to_state(T2, acc, N2);
            tower(T1, H1, c->gauss_seidel ? N2 : S2, x, y, acc);
            to_state(T1, acc, N1);
        }
        if (d > 0.f) {
            for (int64_t i = 0; i < s1 * LANES; i++) N1[i] = keep * N1[i] + d * S1[i];
            for (int64_t i = 0; i < s2 * LANES; i++) N2[i] = keep * N2[i] + d * S2[i];
        }
        /* the tests of every lane at once; the lanes are visited one by one only at the
         * iterations where one of them leaves. With tol <= 0 no sample converges: the
         * changes matter only at max_iter, for the residual. */
        if (c->tol <= 0.f && steps != until) {
            advance(S1, S2, P1, P2, N1, N2, s1, s2, c->check_cycles);
            continue;
        }
        dist(N1, S1, s1, delta);
        dist(N2, S2, s2, tmp);
        nanmax(delta, tmp);
        int32_t any = 0;
        if (c->check_cycles) {
            dist(N1, P1, s1, q);
            dist(N2, P2, s2, tmp);
            nanmax(q, tmp);
            for (int l = 0; l < LANES; l++) {
                int32_t cyc = iter0[l] + steps >= 2 && q[l] < c->cycle_tol;
                any |= act[l] & (cyc | (delta[l] < c->tol));
            }
        } else {
            for (int l = 0; l < LANES; l++) any |= act[l] & (delta[l] < c->tol);
        }
        if (any || steps == until) {
            until = INT64_MAX;
            for (int l = 0; l < LANES; l++) {
                if (!act[l]) continue;
                const int64_t t = iter0[l] + steps;
                int done = delta[l] < c->tol;
                int cyc = !done && c->check_cycles && t >= 2 && q[l] < c->cycle_tol;
                const int64_t r = rows[l];
                if (done || (!cyc && t == c->max_iter)) {
                    scatter(A->O1, r, N1, s1, l);
                    scatter(A->O2, r, N2, s2, l);
                    A->status[r] = done ? CONVERGED : MAX_ITER;
                } else if (cyc && c->cycles == 1) { /* the fixed point nearest the start */
                    float a1 = lane_dist(S1, I1, s1, l), a2 = lane_dist(N2, I2, s2, l);
                    float b1 = lane_dist(N1, I1, s1, l), b2 = lane_dist(S2, I2, s2, l);
                    int pick_a = (a1 > a2 ? a1 : a2) <= (b1 > b2 ? b1 : b2);
                    scatter(A->O1, r, pick_a ? S1 : N1, s1, l);
                    scatter(A->O2, r, pick_a ? N2 : S2, s2, l);
                    A->status[r] = CYCLE;
                } else if (cyc) { /* the state of iteration max_iter: this parity or the other */
                    int same = (c->max_iter - t) % 2 == 0;
                    scatter(A->O1, r, same ? N1 : S1, s1, l);
                    scatter(A->O2, r, same ? N2 : S2, s2, l);
                    A->status[r] = CYCLE;
                } else {
                    if (c->max_iter - iter0[l] < until) until = c->max_iter - iter0[l];
                    continue;
                }
                A->iter[r] = t;
                A->residual[r] = delta[l];
                act[l] = 0;
                active--;
            }
        }
        advance(S1, S2, P1, P2, N1, N2, s1, s2, c->check_cycles);
    }
    for (int l = 0; l < LANES; l++) { /* the samples still iterating go on in another block */
        if (!act[l]) continue;
        A->iter[rows[l]] = iter0[l] + steps;
        scatter(A->S1, rows[l], S1, s1, l);
        scatter(A->S2, rows[l], S2, s2, l);
        scatter(A->P1, rows[l], P1, s1, l);
        scatter(A->P2, rows[l], P2, s2, l);
    }
}

/* floats of scratch run_block needs */
static int64_t scratch_floats(const tower_t *T1, const tower_t *T2) {
    const int64_t hidden = T1->hidden > T2->hidden ? T1->hidden : T2->hidden;
    const int64_t raw = T1->raw > T2->raw ? T1->raw : T2->raw;
    const int64_t states = T1->s_in + T2->s_in;
    return LANES * (2 * hidden + 2 * raw + 5 * states + T1->hidden + T2->hidden);
}

typedef struct { /* one thread's share of a call */
    const tower_t *T1, *T2;
    const config_t *c;
    const lanes_t *A;
    int64_t nblocks, *next, status;
} job_t;

/* Runs blocks taken from *next (shared by the threads) until none is left. */
static void *work(void *arg) {
    job_t *j = arg;
    /* aligned to a cache line, so a SIMD load never straddles two (all offsets in the
     * scratch are multiples of LANES floats) */
    float *scratch = NULL;
    if (posix_memalign((void **)&scratch, 64, sizeof(float) * scratch_floats(j->T1, j->T2)))
        scratch = NULL;
    if (scratch == NULL) {
        j->status = -1;
        return NULL;
    }
    for (;;) {
        int64_t k = __atomic_fetch_add(j->next, 1, __ATOMIC_RELAXED);
        if (k >= j->nblocks) break;
        run_block(j->T1, j->T2, j->c, j->A, k, scratch);
    }
    free(scratch);
    j->status = 0;
    return NULL;
}

/* Alternate inference for nblocks blocks on up to `threads` threads (at most 256). A sample's
 * result does not depend on how the blocks are shared. Returns 0, or -1 when scratch memory
 * could not be allocated. */
int64_t molddl_alternate(const tower_t *T1, const tower_t *T2, const config_t *c,
                         const lanes_t *A, int64_t nblocks, int64_t threads) {
    enum { MAX_THREADS = 256 };
    job_t jobs[MAX_THREADS];
    pthread_t ids[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    int64_t next = 0, status = 0;
    threads = threads < 1 ? 1 : (threads > MAX_THREADS ? MAX_THREADS : threads);
    threads = threads > nblocks ? (nblocks > 0 ? nblocks : 1) : threads;
    for (int64_t i = 0; i < threads; i++) jobs[i] = (job_t){T1, T2, c, A, nblocks, &next, 0};
    for (int64_t i = 1; i < threads; i++) /* a thread that cannot start leaves its share */
        started[i] = pthread_create(&ids[i], NULL, work, &jobs[i]) == 0;
    work(&jobs[0]);
    for (int64_t i = 1; i < threads; i++)
        if (started[i]) pthread_join(ids[i], NULL);
    for (int64_t i = 0; i < threads; i++) status |= jobs[i].status;
    return status;
}

int64_t molddl_lanes(void) { return LANES; }
