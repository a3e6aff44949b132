/* The forward of a small float32 Transformer (models/transformer.py: RMSNorm, rotate-half RoPE or none,
   grouped-query attention, SwiGLU) as one call, and its backward as another: for sampling a token at a
   time, and for an RL step's passes over its packed batch, where torch's per-operation cost is most of
   the time at this size. Products go to the BLAS that torch ships (its `sgemm`, handed in by
   models/native.py); the rest is plain loops, vectorised by the compiler and split between OpenMP
   threads. The same arithmetic as the torch path, in another order: close to it (tests/test_native.py),
   not bit for bit. */
#include <math.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

typedef void (*sgemm_fn)(const char *, const char *, const int *, const int *, const int *, const float *,
                         const float *, const int *, const float *, const int *, const float *, float *, const int *);
static sgemm_fn sgemm;

void set_sgemm(void *fn) { sgemm = (sgemm_fn)fn; }

/* row-major c (M, N) = op(a) (M, K) @ op(b) (K, N), op: 'N' as stored or 'T' transposed, as a column-major
   BLAS sees it: c^T = op(b)^T op(a)^T */
static void gemm(char ta, char tb, int M, int N, int K, const float *a, int lda, const float *b, int ldb, float *c) {
    const float one = 1.0f, zero = 0.0f;
    sgemm(&tb, &ta, &N, &M, &K, &one, b, &ldb, a, &lda, &zero, c, &N);
}

/* c (M, N) = a (M, K) @ w (N, K)^T: a layer's product */
static void linear(const float *a, const float *w, float *c, int M, int N, int K) {
    gemm('N', 'T', M, N, K, a, K, w, K, c);
}

/* out = x / rms(x) * w by rows; the rows' 1 / rms into inv_rms where given (for the backward) */
static void rms_norm(const float *x, const float *w, float *out, int M, int D, float eps, float *inv_rms) {
#pragma omp parallel for schedule(static) if (M > 64)
    for (int r = 0; r < M; r++) {
        const float *xr = x + (size_t)r * D;
        float ss = 0.f;
        for (int i = 0; i < D; i++) ss += xr[i] * xr[i];
        float scale = 1.0f / sqrtf(ss / D + eps);
        if (inv_rms) inv_rms[r] = scale;
        float *o = out + (size_t)r * D;
        for (int i = 0; i < D; i++) o[i] = xr[i] * scale * w[i];
    }
}

/* rotate-half RoPE of one head in place, by the angle (sign 1) or back by minus it (sign -1: the rotation's
   transpose, for the backward): cos (hs) repeats its half; sin's second half is the positive one */
static void rope(float *v, const float *cos, const float *sin, int half, float sign) {
    for (int j = 0; j < half; j++) {
        float x1 = v[j], x2 = v[j + half], s = sign * sin[half + j];
        v[j] = x1 * cos[j] - x2 * s;
        v[j + half] = x2 * cos[j] + x1 * s;
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
static inline __attribute__((always_inline)) void scores_transposed(const float *restrict q,
                                                                     const float *restrict kt, float *restrict p,
                                                                     int keys, float scale, const int hs) {
    for (int j = 0; j < keys; j++) p[j] = 0.f;
    for (int i = 0; i < hs; i++) {
        const float qi = q[i] * scale, *row = kt + (size_t)i * keys;
        for (int j = 0; j < keys; j++) p[j] += qi * row[j];
    }
}

/* Sizes, and where a layer's activations lie in the forward's `saved` buffer (for the backward). */
typedef struct {
    int L, B, T, D, H, KVH, I, max_len, length, hs, kvd, group, width, keys, M;
} Shape;

static Shape shape(int L, int B, int T, int D, int H, int KVH, int I, int max_len, int length) {
    Shape s = {L, B, T, D, H, KVH, I, max_len, length, D / H, KVH * (D / H), H / KVH, D + 2 * KVH * (D / H),
               length + T, B * T};
    return s;
}

typedef struct {
    float *x, *inv_rms1, *h1, *qkv, *p, *y, *mid, *inv_rms2, *h2, *gate_up, *act;
} Saved;

static size_t saved_per_layer(Shape s) {
    return (size_t)s.M * (5 * s.D + s.width + s.H * s.keys + 3 * s.I + 2);
}

static Saved saved_layer(float *base, Shape s, int l) {
    Saved v;
    size_t M = s.M;
    v.x = base + l * saved_per_layer(s);
    v.inv_rms1 = v.x + M * s.D;
    v.h1 = v.inv_rms1 + M;
    v.qkv = v.h1 + M * s.D;  /* queries and keys rotated */
    v.p = v.qkv + M * s.width;  /* attention probabilities (M, H, keys) */
    v.y = v.p + M * s.H * s.keys;
    v.mid = v.y + M * s.D;  /* the residual stream between attention and MLP */
    v.inv_rms2 = v.mid + M * s.D;
    v.h2 = v.inv_rms2 + M;
    v.gate_up = v.h2 + M * s.D;
    v.act = v.gate_up + M * 2 * s.I;
    return v;
}

/* the queries of rows b * T .. b * T + T - 1 for the heads of one kv head, over its keys: softmax(q k^T *
   scale, where the mask allows) v, into y; the probabilities into saved_p (M, H, keys) where given. k, v: the kv
   head's cache, (keys, hs); kt, p, ok, acc: scratch. */
static inline __attribute__((always_inline)) void attend(
        Shape s, const float *restrict qkv, const float *restrict k, const float *restrict v, float *restrict y,
        int b, int kh, const int hs, const uint8_t *mask, long mask_b, long mask_t, float scale,
        float *restrict kt, float *restrict p, uint8_t *restrict ok, float *restrict acc, float *restrict saved_p) {
    const int keys = s.keys, transpose = s.T * s.group >= 8;
    if (transpose)
        for (int j = 0; j < keys; j++)
            for (int i = 0; i < hs; i++) kt[(size_t)i * keys + j] = k[(size_t)j * hs + i];
    for (int t = 0; t < s.T; t++) {
        const size_t r = (size_t)b * s.T + t;
        for (int j = 0; j < keys; j++) ok[j] = mask ? mask[b * mask_b + t * mask_t + j] : j <= s.length + t;
        for (int head = kh * s.group; head < (kh + 1) * s.group; head++) {
            const float *q = qkv + r * s.width + head * hs;
            if (transpose) scores_transposed(q, kt, p, keys, scale, hs);
            else scores_direct(q, k, p, keys, scale, hs);
            float top = -3.0e38f, total = 0.f;
            for (int j = 0; j < keys; j++) top = ok[j] && p[j] > top ? p[j] : top;
            for (int j = 0; j < keys; j++) {
                p[j] = ok[j] ? expf(p[j] - top) : 0.f;
                total += p[j];
            }
            const float inv = 1.0f / total;
            for (int i = 0; i < hs; i++) acc[i] = 0.f;
            for (int j = 0; j < keys; j++)
                for (int i = 0; i < hs; i++) acc[i] += p[j] * v[(size_t)j * hs + i];
            float *o = y + r * s.D + head * hs;
            for (int i = 0; i < hs; i++) o[i] = acc[i] * inv;
            if (saved_p)
                for (int j = 0; j < keys; j++) saved_p[(r * s.H + head) * keys + j] = p[j] * inv;
        }
    }
}

/* T new tokens for each of B rows, after `length` cached ones: the final normed hidden states (B * T, D).
   w: per layer rms1, qkv (D + 2 kvd, D), o, rms2, gate_up (2 I, D), down; then the final norm and the
   embedding. cos, sin: (B * T, hs) or NULL (no position encoding). k_cache, v_cache:
   (L, B, KVH, max_len, hs), written at length .. length + T - 1. mask[b * mask_b + t * mask_t + key]:
   may query t of row b see that key (keys 0 .. length + T - 1); NULL: plain causal. work: scratch of
   B * T * (4 D + 2 kvd + 3 I) floats. saved: NULL, or room for the activations `backward` reads
   (L * saved_per_layer + B * T * (D + 1) floats). */
void forward(int L, int B, int T, int D, int H, int KVH, int I, int max_len, int length, float eps,
             const float **w, const int64_t *ids, const float *cos, const float *sin, float *k_cache,
             float *v_cache, const uint8_t *mask, long mask_b, long mask_t, float *work, float *out, float *saved) {
    const Shape s = shape(L, B, T, D, H, KVH, I, max_len, length);
    const int M = s.M, hs = s.hs, width = s.width, keys = s.keys;
    float *x = work, *h = x + (size_t)M * D, *qkv = h + (size_t)M * D, *y = qkv + (size_t)M * width,
          *gate_up = y + (size_t)M * D, *act = gate_up + (size_t)M * 2 * I;
    const float scale = 1.0f / sqrtf((float)hs);
    for (int r = 0; r < M; r++) memcpy(x + (size_t)r * D, w[6 * L + 1] + (size_t)ids[r] * D, D * sizeof(float));
    for (int l = 0; l < L; l++) {
        const float **lw = w + 6 * l;
        float *kl = k_cache + (size_t)l * B * KVH * max_len * hs, *vl = v_cache + (size_t)l * B * KVH * max_len * hs;
        Saved sv = {0};
        if (saved) {
            sv = saved_layer(saved, s, l);
            memcpy(sv.x, x, sizeof(float) * M * D);
            h = sv.h1, qkv = sv.qkv, y = sv.y;
        }
        rms_norm(x, lw[0], h, M, D, eps, sv.inv_rms1);
        linear(h, lw[1], qkv, M, width, D);
#pragma omp parallel for schedule(static)
        for (int r = 0; r < M; r++) {  /* rotate this token's queries and keys; its keys and values to the cache */
            float *row = qkv + (size_t)r * width;
            int b = r / T, t = r % T;
            if (cos) {
                for (int head = 0; head < H + KVH; head++)
                    rope(row + head * hs, cos + (size_t)r * hs, sin + (size_t)r * hs, hs / 2, 1.0f);
            }
            for (int kh = 0; kh < KVH; kh++) {
                size_t at = (((size_t)b * KVH + kh) * max_len + length + t) * hs;
                memcpy(kl + at, row + D + kh * hs, hs * sizeof(float));
                memcpy(vl + at, row + D + s.kvd + kh * hs, hs * sizeof(float));
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
                case 32: attend(s, qkv, kl + at, vl + at, y, b, kh, 32, mask, mask_b, mask_t, scale, kt, p, ok, acc,
                                sv.p); break;
                case 64: attend(s, qkv, kl + at, vl + at, y, b, kh, 64, mask, mask_b, mask_t, scale, kt, p, ok, acc,
                                sv.p); break;
                default: attend(s, qkv, kl + at, vl + at, y, b, kh, hs, mask, mask_b, mask_t, scale, kt, p, ok, acc,
                                sv.p);
            }
            free(kt);
            free(ok);
        }
        float *o = saved ? work + (size_t)M * D : h;  /* h is saved h1 when saving */
        linear(y, lw[2], o, M, D, D);
        for (size_t i = 0; i < (size_t)M * D; i++) x[i] += o[i];
        if (saved) {
            memcpy(sv.mid, x, sizeof(float) * M * D);
            h = sv.h2, gate_up = sv.gate_up, act = sv.act;
        }
        rms_norm(x, lw[3], h, M, D, eps, sv.inv_rms2);
        linear(h, lw[4], gate_up, M, 2 * I, D);
#pragma omp parallel for schedule(static)
        for (int r = 0; r < M; r++) {
            const float *g = gate_up + (size_t)r * 2 * I, *u = g + I;
            float *a = act + (size_t)r * I;
            for (int i = 0; i < I; i++) a[i] = g[i] / (1.f + expf(-g[i])) * u[i];
        }
        linear(act, lw[5], o, M, D, I);
        for (size_t i = 0; i < (size_t)M * D; i++) x[i] += o[i];
    }
    float *final_x = saved ? saved + L * saved_per_layer(s) : NULL;
    if (final_x) memcpy(final_x, x, sizeof(float) * M * D);
    rms_norm(x, w[6 * L], out, M, D, eps, final_x ? final_x + (size_t)M * D : NULL);
}

/* dx (+)= the gradient through out = x * inv_rms * w of dout, by rows; dw += its weight's */
static void rms_norm_backward(const float *dout, const float *x, const float *inv_rms, const float *w, float *dx,
                              float *dw, int M, int D, int accumulate) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < M; r++) {
        const float *g = dout + (size_t)r * D, *xr = x + (size_t)r * D;
        float *d = dx + (size_t)r * D, ir = inv_rms[r], dot = 0.f;
        for (int i = 0; i < D; i++) dot += g[i] * w[i] * xr[i];
        const float c = ir * ir * ir * dot / D;
        for (int i = 0; i < D; i++) d[i] = (accumulate ? d[i] : 0.f) + ir * g[i] * w[i] - c * xr[i];
    }
    for (int r = 0; r < M; r++) {
        const float *g = dout + (size_t)r * D, *xr = x + (size_t)r * D, ir = inv_rms[r];
        for (int i = 0; i < D; i++) dw[i] += g[i] * xr[i] * ir;
    }
}

/* one kv head's share of the attention backward for row b: from dy, the saved probabilities, queries, keys
   and values, the gradients of its queries (written) and of its keys and values (accumulated) in dqkv */
static inline __attribute__((always_inline)) void attend_backward(
        Shape s, const float *restrict qkv, const float *restrict k, const float *restrict v,
        const float *restrict probs, const float *restrict dy, float *restrict dqkv, int b, int kh, const int hs,
        float scale, float *restrict dp, float *restrict dq) {
    const int keys = s.keys;
    for (int t = 0; t < s.T; t++) {
        const size_t r = (size_t)b * s.T + t;
        for (int head = kh * s.group; head < (kh + 1) * s.group; head++) {
            const float *p = probs + (r * s.H + head) * keys, *dout = dy + r * s.D + head * hs;
            const float *q = qkv + r * s.width + head * hs;
            float sum = 0.f;
            for (int j = 0; j < keys; j++) {
                float d = 0.f;
                if (p[j] != 0.f)
                    for (int i = 0; i < hs; i++) d += dout[i] * v[(size_t)j * hs + i];
                dp[j] = d;
                sum += p[j] * d;
            }
            for (int i = 0; i < hs; i++) dq[i] = 0.f;
            for (int j = 0; j < keys; j++) {
                if (p[j] == 0.f) continue;
                const float ds = p[j] * (dp[j] - sum) * scale;
                float *dk = dqkv + ((size_t)b * s.T + j) * s.width + s.D + kh * hs;
                float *dv = dk + s.kvd;
                for (int i = 0; i < hs; i++) {
                    dq[i] += ds * k[(size_t)j * hs + i];
                    dk[i] += ds * q[i];
                    dv[i] += p[j] * dout[i];
                }
            }
            memcpy(dqkv + r * s.width + head * hs, dq, hs * sizeof(float));
        }
    }
}

/* The gradients of a `forward` over whole sequences (no cache before them: length 0, max_len T) that kept
   its activations in `saved`, given dout (B * T, D), the gradient of its output. g: per layer the gradients
   of rms1, qkv, o, rms2, gate_up, down (written; the norms' zeroed first), then of the final norm (zeroed
   first) and of the embedding (accumulated). work: B * T * (3 D + 3 I + width) floats. */
void backward(int L, int B, int T, int D, int H, int KVH, int I, const float **w, const int64_t *ids,
              const float *cos, const float *sin, const float *k_cache, const float *v_cache, float *saved,
              const float *dout, float **g, float *work) {
    const Shape s = shape(L, B, T, D, H, KVH, I, T, 0);
    const int M = s.M, hs = s.hs, width = s.width;
    const float scale = 1.0f / sqrtf((float)hs);
    float *dx = work, *dh = dx + (size_t)M * D, *dy = dh + (size_t)M * D, *dact = dy + (size_t)M * D,
          *dgate_up = dact + (size_t)M * I, *dqkv = dgate_up + (size_t)M * 2 * I;
    const float *final_x = saved + L * saved_per_layer(s);
    memset(g[6 * L], 0, sizeof(float) * D);
    rms_norm_backward(dout, final_x, final_x + (size_t)M * D, w[6 * L], dx, g[6 * L], M, D, 0);
    for (int l = L - 1; l >= 0; l--) {
        const float **lw = w + 6 * l;
        float **lg = g + 6 * l;
        const Saved sv = saved_layer(saved, s, l);
        const float *kl = k_cache + (size_t)l * B * KVH * T * hs, *vl = v_cache + (size_t)l * B * KVH * T * hs;
        memset(lg[0], 0, sizeof(float) * D);
        memset(lg[3], 0, sizeof(float) * D);
        /* MLP: x += down(silu(gate) * up) */
        gemm('N', 'N', M, I, D, dx, D, lw[5], I, dact);
        gemm('T', 'N', D, I, M, dx, D, sv.act, I, lg[5]);
#pragma omp parallel for schedule(static)
        for (int r = 0; r < M; r++) {
            const float *ga = sv.gate_up + (size_t)r * 2 * I, *u = ga + I, *da = dact + (size_t)r * I;
            float *dg = dgate_up + (size_t)r * 2 * I, *du = dg + I;
            for (int i = 0; i < I; i++) {
                const float sig = 1.f / (1.f + expf(-ga[i]));
                dg[i] = da[i] * u[i] * sig * (1.f + ga[i] * (1.f - sig));
                du[i] = da[i] * ga[i] * sig;
            }
        }
        gemm('T', 'N', 2 * I, D, M, dgate_up, 2 * I, sv.h2, D, lg[4]);
        gemm('N', 'N', M, D, 2 * I, dgate_up, 2 * I, lw[4], D, dh);
        rms_norm_backward(dh, sv.mid, sv.inv_rms2, lw[3], dx, lg[3], M, D, 1);
        /* attention: x += o(attend(rope(q), rope(k), v)) */
        gemm('N', 'N', M, D, D, dx, D, lw[2], D, dy);
        gemm('T', 'N', D, D, M, dx, D, sv.y, D, lg[2]);
        memset(dqkv, 0, sizeof(float) * M * width);
#pragma omp parallel for schedule(static)
        for (int block = 0; block < B * KVH; block++) {
            float *dp = malloc(sizeof(float) * (s.keys + hs));
            int b = block / KVH, kh = block % KVH;
            size_t at = (size_t)block * T * hs;
            switch (hs) {
                case 32: attend_backward(s, sv.qkv, kl + at, vl + at, sv.p, dy, dqkv, b, kh, 32, scale, dp,
                                         dp + s.keys); break;
                case 64: attend_backward(s, sv.qkv, kl + at, vl + at, sv.p, dy, dqkv, b, kh, 64, scale, dp,
                                         dp + s.keys); break;
                default: attend_backward(s, sv.qkv, kl + at, vl + at, sv.p, dy, dqkv, b, kh, hs, scale, dp,
                                         dp + s.keys);
            }
            free(dp);
        }
        if (cos) {
#pragma omp parallel for schedule(static)
            for (int r = 0; r < M; r++)
                for (int head = 0; head < H + KVH; head++)
                    rope(dqkv + (size_t)r * width + head * hs, cos + (size_t)r * hs, sin + (size_t)r * hs, hs / 2,
                         -1.0f);
        }
        gemm('T', 'N', width, D, M, dqkv, width, sv.h1, D, lg[1]);
        gemm('N', 'N', M, D, width, dqkv, width, lw[1], D, dh);
        rms_norm_backward(dh, sv.x, sv.inv_rms1, lw[0], dx, lg[0], M, D, 1);
    }
    float *dembed = g[6 * L + 1];
    for (int r = 0; r < M; r++)
        for (int i = 0; i < D; i++) dembed[(size_t)ids[r] * D + i] += dx[(size_t)r * D + i];
}
