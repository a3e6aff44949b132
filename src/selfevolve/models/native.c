/* The forward of a small float32 Transformer (models/transformer.py: RMSNorm, rotate-half RoPE or none,
   grouped-query attention, SwiGLU) as one call, without gradients: for sampling a token at a time and
   for the reference's pass of an RL step, where torch's per-operation cost is most of the time at this
   size. Products go to the BLAS that torch ships (its `sgemm`, handed in by models/native.py); the rest
   is plain loops, vectorised by the compiler and split between OpenMP threads. The same arithmetic as
   the torch path, in another order: close to it (tests/test_native.py), not bit for bit. */
#include <math.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

typedef void (*sgemm_fn)(const char *, const char *, const int *, const int *, const int *, const float *,
                         const float *, const int *, const float *, const int *, const float *, float *, const int *);
static sgemm_fn sgemm;

void set_sgemm(void *fn) { sgemm = (sgemm_fn)fn; }

/* c (M, N) = a (M, K) @ w (N, K)^T, row-major, as a column-major BLAS sees it: c^T = w a^T */
static void linear(const float *a, const float *w, float *c, int M, int N, int K) {
    const char t = 'T', n = 'N';
    const float one = 1.0f, zero = 0.0f;
    sgemm(&t, &n, &N, &M, &K, &one, w, &K, a, &K, &zero, c, &N);
}

static void rms_norm(const float *x, const float *w, float *out, int M, int D, float eps) {
#pragma omp parallel for schedule(static) if (M > 64)
    for (int r = 0; r < M; r++) {
        const float *xr = x + (size_t)r * D;
        float ss = 0.f;
        for (int i = 0; i < D; i++) ss += xr[i] * xr[i];
        float scale = 1.0f / sqrtf(ss / D + eps);
        float *o = out + (size_t)r * D;
        for (int i = 0; i < D; i++) o[i] = xr[i] * scale * w[i];
    }
}

/* rotate-half RoPE of one head in place: cos (hs) repeats its half; sin's second half is the positive one */
static void rope(float *v, const float *cos, const float *sin, int half) {
    for (int j = 0; j < half; j++) {
        float x1 = v[j], x2 = v[j + half];
        v[j] = x1 * cos[j] - x2 * sin[half + j];
        v[j + half] = x2 * cos[j] + x1 * sin[half + j];
    }
}

/* scores p[j] = q . k_j * scale of one query over its keys, k: (keys, hs), one product per key: for a
   few queries per kv head (sampling), where transposing the keys costs more than it saves */
static inline __attribute__((always_inline)) void scores_direct(const float *restrict q, const float *restrict k,
                                                                 float *restrict p, int keys, float scale,
                                                                 const int hs) {
    for (int j = 0; j < keys; j++) {
        float s = 0.f;
        for (int i = 0; i < hs; i++) s += q[i] * k[(size_t)j * hs + i];
        p[j] = s * scale;
    }
}

/* the same from the keys transposed, kt: (hs, keys): products along the keys, no sums across lanes */
static inline __attribute__((always_inline)) void scores_transposed(const float *restrict q, const float *restrict kt, float *restrict p, int keys,
                                                                     float scale, const int hs) {
    for (int j = 0; j < keys; j++) p[j] = 0.f;
    for (int i = 0; i < hs; i++) {
        const float qi = q[i] * scale, *row = kt + (size_t)i * keys;
        for (int j = 0; j < keys; j++) p[j] += qi * row[j];
    }
}

/* the queries of rows b * T .. b * T + T - 1 for the heads of one kv head, over its keys: softmax(q k^T * scale,
   where the mask allows) v, into y. k, v: the kv head's cache, (keys, hs); kt, p, ok, acc: scratch. */
static inline __attribute__((always_inline)) void attend(
        const float *restrict qkv, int width, const float *restrict k, const float *restrict v, float *restrict y,
        int D, int b, int T, int kh, int group, const int hs, int keys, int length, const uint8_t *mask, long mask_b,
        long mask_t, float scale, float *restrict kt, float *restrict p, uint8_t *restrict ok, float *restrict acc) {
    const int transpose = T * group >= 8;
    if (transpose)
        for (int j = 0; j < keys; j++)
            for (int i = 0; i < hs; i++) kt[(size_t)i * keys + j] = k[(size_t)j * hs + i];
    for (int t = 0; t < T; t++) {
        for (int j = 0; j < keys; j++) ok[j] = mask ? mask[b * mask_b + t * mask_t + j] : j <= length + t;
        for (int head = kh * group; head < (kh + 1) * group; head++) {
            const float *q = qkv + ((size_t)b * T + t) * width + head * hs;
            if (transpose) scores_transposed(q, kt, p, keys, scale, hs);
            else scores_direct(q, k, p, keys, scale, hs);
            float top = -3.0e38f, total = 0.f;
            for (int j = 0; j < keys; j++) top = ok[j] && p[j] > top ? p[j] : top;
            for (int j = 0; j < keys; j++) {
                p[j] = ok[j] ? expf(p[j] - top) : 0.f;
                total += p[j];
            }
            for (int i = 0; i < hs; i++) acc[i] = 0.f;
            for (int j = 0; j < keys; j++)
                for (int i = 0; i < hs; i++) acc[i] += p[j] * v[(size_t)j * hs + i];
            float *o = y + ((size_t)b * T + t) * D + head * hs;
            for (int i = 0; i < hs; i++) o[i] = acc[i] / total;
        }
    }
}

/* T new tokens for each of B rows, after `length` cached ones: the final normed hidden states (B * T, D).
   w: per layer rms1, qkv (D + 2 kvd, D), o, rms2, gate_up (2 I, D), down; then the final norm and the
   embedding. cos, sin: (B * T, hs) or NULL (no position encoding). k_cache, v_cache:
   (L, B, KVH, max_len, hs), written at length .. length + T - 1. mask[b * mask_b + t * mask_t + key]:
   may query t of row b see that key (keys 0 .. length + T - 1); NULL: plain causal. work: scratch of
   B * T * (4 D + 2 kvd + 3 I) floats. */
void forward(int L, int B, int T, int D, int H, int KVH, int I, int max_len, int length, float eps,
             const float **w, const int64_t *ids, const float *cos, const float *sin, float *k_cache,
             float *v_cache, const uint8_t *mask, long mask_b, long mask_t, float *work, float *out) {
    const int M = B * T, hs = D / H, kvd = KVH * hs, group = H / KVH, width = D + 2 * kvd, keys = length + T;
    float *x = work, *h = x + (size_t)M * D, *qkv = h + (size_t)M * D, *y = qkv + (size_t)M * width,
          *gate_up = y + (size_t)M * D, *act = gate_up + (size_t)M * 2 * I;
    const float scale = 1.0f / sqrtf((float)hs);
    for (int r = 0; r < M; r++) memcpy(x + (size_t)r * D, w[6 * L + 1] + (size_t)ids[r] * D, D * sizeof(float));
    for (int l = 0; l < L; l++) {
        const float **lw = w + 6 * l;
        float *kl = k_cache + (size_t)l * B * KVH * max_len * hs, *vl = v_cache + (size_t)l * B * KVH * max_len * hs;
        rms_norm(x, lw[0], h, M, D, eps);
        linear(h, lw[1], qkv, M, width, D);
#pragma omp parallel for schedule(static)
        for (int r = 0; r < M; r++) {  /* rotate this token's queries and keys; its keys and values to the cache */
            float *row = qkv + (size_t)r * width;
            int b = r / T, t = r % T;
            if (cos) {
                for (int head = 0; head < H + KVH; head++)
                    rope(row + head * hs, cos + (size_t)r * hs, sin + (size_t)r * hs, hs / 2);
            }
            for (int kh = 0; kh < KVH; kh++) {
                size_t at = (((size_t)b * KVH + kh) * max_len + length + t) * hs;
                memcpy(kl + at, row + D + kh * hs, hs * sizeof(float));
                memcpy(vl + at, row + D + kvd + kh * hs, hs * sizeof(float));
            }
        }
#pragma omp parallel for schedule(static)
        for (int block = 0; block < B * KVH; block++) {
            float *kt = malloc(sizeof(float) * ((size_t)hs * keys + keys + hs));
            uint8_t *ok = malloc(keys);
            size_t at = (size_t)block * max_len * hs;
            float *p = kt + (size_t)hs * keys, *acc = p + keys;
            int b = block / KVH, kh = block % KVH;
            switch (hs) {  /* a constant head size unrolls the products */
                case 32: attend(qkv, width, kl + at, vl + at, y, D, b, T, kh, group, 32, keys, length, mask, mask_b,
                                mask_t, scale, kt, p, ok, acc); break;
                case 64: attend(qkv, width, kl + at, vl + at, y, D, b, T, kh, group, 64, keys, length, mask, mask_b,
                                mask_t, scale, kt, p, ok, acc); break;
                default: attend(qkv, width, kl + at, vl + at, y, D, b, T, kh, group, hs, keys, length, mask, mask_b,
                                mask_t, scale, kt, p, ok, acc);
            }
            free(kt);
            free(ok);
        }
        linear(y, lw[2], h, M, D, D);
        for (size_t i = 0; i < (size_t)M * D; i++) x[i] += h[i];
        rms_norm(x, lw[3], h, M, D, eps);
        linear(h, lw[4], gate_up, M, 2 * I, D);
#pragma omp parallel for schedule(static)
        for (int r = 0; r < M; r++) {
            const float *g = gate_up + (size_t)r * 2 * I, *u = g + I;
            float *a = act + (size_t)r * I;
            for (int i = 0; i < I; i++) a[i] = g[i] / (1.f + expf(-g[i])) * u[i];
        }
        linear(act, lw[5], h, M, D, I);
        for (size_t i = 0; i < (size_t)M * D; i++) x[i] += h[i];
    }
    rms_norm(x, w[6 * L], out, M, D, eps);
}
