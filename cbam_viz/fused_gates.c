/* CBAM's gates for CPU inference, each in one call: float32, contiguous NCHW, batch B.
 *
 * Compiled on first use by cbam_viz/fused.py (its FLAGS: -O3 -march=native -fopenmp ...) and called through
 * ctypes. Stock PyTorch spends ~30 small operator calls and 7 passes over the feature map per CBAM
 * block; these kernels make it 4 passes, in 3 calls (each gate, then the last pass) or 1 (cbam_block).
 * Results equal the stock operators' up to float32 rounding (tests/test_fused.py); NaN propagates as
 * in torch.amax and torch.relu.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define MAX(a, b) ((b) > (a) ? (b) : (a)) /* vectorises; a NaN is found through the sum (see has_nan) */
/* The reductions are "omp simd" loops: without that permission to reorder the sums, GCC 12 keeps
 * them scalar (3x slower than torch.amax + torch.mean on a 256 x 56 x 56 map). */
#define CHUNK 512  /* positions per task in the spatial pooling */
#define PARALLEL_WORK 65536  /* below this many values a call runs on one thread */
#define RELU(v) ((v) < 0.f ? 0.f : (v)) /* NaN stays, as in torch.relu */

static float sigmoid(float v) { return 1.f / (1.f + expf(-v)); }

/* Whether the n values p[i * step] * scale[i] (scale may be NULL) hold a NaN. Asked only when their
 * sum is NaN (a NaN, or +inf and -inf together), so that the max is NaN exactly when torch.amax's is. */
static int has_nan(const float *p, const float *scale, int64_t n, int64_t step) {
    for (int64_t i = 0; i < n; ++i) {
        float v = p[i * step] * (scale ? scale[i] : 1.f);
        if (v != v) return 1;
    }
    return 0;
}

/* out[r] = w[r] . v for the rows r < rows (<= 4) of w (row length n); four sums at once, so that the
 * vectorised loop is not bound by the latency of a single accumulator. */
static void dot_rows(const float *w, const float *v, int64_t rows, int64_t n, float *out) {
    float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
    const float *w1 = w + (rows > 1) * n, *w2 = w + (rows > 2) * 2 * n, *w3 = w + (rows > 3) * 3 * n;
    #pragma omp simd reduction(+:s0, s1, s2, s3)
    for (int64_t i = 0; i < n; ++i) { s0 += w[i] * v[i]; s1 += w1[i] * v[i]; s2 += w2[i] * v[i]; s3 += w3[i] * v[i]; }
    float sums[4] = {s0, s1, s2, s3};
    for (int64_t r = 0; r < rows; ++r) out[r] = sums[r];
}

/* Mc = sigmoid(MLP(avg_hw x) + MLP(max_hw x)), MLP(v) = w2 relu(w1 v + b1) + b2, into out (B, C).
 * w1 (hid, C), w2 (C, hid); b1, b2 may be NULL. Returns 0, or -1 when out of memory. */
int channel_gate(const float *x, int64_t B, int64_t C, int64_t HW, const float *w1, const float *b1,
                 int64_t hid, const float *w2, const float *b2, float *out, int threads) {
    float *pooled = malloc(sizeof(float) * (2 * B * C + B * hid)), *hidden = pooled + 2 * B * C;
    if (!pooled) return -1;
    #pragma omp parallel num_threads(threads) if (B * C * (HW + 2 * hid) > PARALLEL_WORK)
    {
        #pragma omp for schedule(static)
        for (int64_t bc = 0; bc < B * C; ++bc) {
            const float *p = x + bc * HW;
            float sum, mx;
            if (HW >= 1024) { /* long rows: the horizontal sums of four accumulators pay off */
                /* the row as four quarters side by side: four independent sums and maxima */
                int64_t q = HW / 4;
                float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f, m0 = -INFINITY, m1 = -INFINITY, m2 = -INFINITY, m3 = -INFINITY;
                #pragma omp simd reduction(+:s0, s1, s2, s3) reduction(max:m0, m1, m2, m3)
                for (int64_t i = 0; i < q; ++i) {
                    s0 += p[i]; s1 += p[q + i]; s2 += p[2 * q + i]; s3 += p[3 * q + i];
                    m0 = MAX(m0, p[i]); m1 = MAX(m1, p[q + i]); m2 = MAX(m2, p[2 * q + i]); m3 = MAX(m3, p[3 * q + i]);
                }
                for (int64_t i = 4 * q; i < HW; ++i) { s0 += p[i]; m0 = MAX(m0, p[i]); }
                sum = (s0 + s1) + (s2 + s3); mx = MAX(MAX(m0, m1), MAX(m2, m3));
            } else {
                float s = 0.f, m = -INFINITY;
                #pragma omp simd reduction(+:s) reduction(max:m)
                for (int64_t i = 0; i < HW; ++i) { s += p[i]; m = MAX(m, p[i]); }
                sum = s; mx = m;
            }
            int64_t b = bc / C, c = bc % C;
            pooled[b * C + c] = sum / (float)HW;
            pooled[(B + b) * C + c] = sum != sum && has_nan(p, 0, HW, 1) ? NAN : mx;
        }
        /* four rows of a layer per task; the second layer is linear: w2 h_avg + b2 + w2 h_max + b2 =
         * w2 (h_avg + h_max) + 2 b2 */
        #pragma omp for schedule(static)
        for (int64_t j = 0; j < hid; j += 4)
            for (int64_t b = 0; b < B; ++b) {
                int64_t rows = hid - j < 4 ? hid - j : 4;
                float avg[4], max[4];
                dot_rows(w1 + j * C, pooled + b * C, rows, C, avg);
                dot_rows(w1 + j * C, pooled + (B + b) * C, rows, C, max);
                for (int64_t r = 0; r < rows; ++r) {
                    float bias = b1 ? b1[j + r] : 0.f;
                    hidden[b * hid + j + r] = RELU(avg[r] + bias) + RELU(max[r] + bias);
                }
            }
        #pragma omp for schedule(static)
        for (int64_t c = 0; c < C; c += 4)
            for (int64_t b = 0; b < B; ++b) {
                int64_t rows = C - c < 4 ? C - c : 4;
                float logit[4];
                dot_rows(w2 + c * hid, hidden + b * hid, rows, hid, logit);
                for (int64_t r = 0; r < rows; ++r)
                    out[b * C + c + r] = sigmoid(logit[r] + (b2 ? 2.f * b2[c + r] : 0.f));
            }
    }
    free(pooled);
    return 0;
}

/* Ms = sigmoid(bn(conv_kxk([mean_c x, max_c x]))) into out (B, H, W); [max, mean] when max_first.
 * With scale (B, C), the map of x * scale (x is not changed). conv_w (2, k, k), zero padding k / 2,
 * no bias; bn_* may be NULL (no BatchNorm). Returns 0, or -1 when out of memory. */
int spatial_gate(const float *x, const float *scale, int64_t B, int64_t C, int64_t H, int64_t W, const float *conv_w,
                 int64_t k, const float *bn_w, const float *bn_b, const float *bn_mean, const float *bn_var,
                 double eps, int max_first, float *out, int threads) {
    int64_t HW = H * W, chunks = (HW + CHUNK - 1) / CHUNK, pad = k / 2, Wp = W + 2 * pad;
    float *pooled = calloc(2 * B * H * Wp, sizeof(float));  /* [mean, max] rows with k / 2 zeros each side */
    if (!pooled) return -1;
    float mul = 1.f, add = 0.f;
    if (bn_w) {
        mul = bn_w[0] / sqrtf(bn_var[0] + (float)eps);
        add = bn_b[0] - bn_mean[0] * mul;
    }
    #pragma omp parallel num_threads(threads) if (B * C * HW > PARALLEL_WORK)
    {
        #pragma omp for schedule(static)
        for (int64_t task = 0; task < B * chunks; ++task) {
            int64_t b = task / chunks, p0 = (task % chunks) * CHUNK;
            int64_t n = (p0 + CHUNK < HW ? p0 + CHUNK : HW) - p0;
            float sum[CHUNK], mx[CHUNK];
            for (int64_t j = 0; j < n; ++j) { sum[j] = 0.f; mx[j] = -INFINITY; }
            const float *xb = x + b * C * HW + p0, *gb = scale ? scale + b * C : 0;
            int64_t c = 0;
            for (; c + 4 <= C; c += 4) { /* four channels per sweep: a quarter of the accumulator traffic */
                const float *r = xb + c * HW;
                float g0 = gb ? gb[c] : 1.f, g1 = gb ? gb[c + 1] : 1.f, g2 = gb ? gb[c + 2] : 1.f, g3 = gb ? gb[c + 3] : 1.f;
                for (int64_t j = 0; j < n; ++j) {
                    float v0 = r[j] * g0, v1 = r[HW + j] * g1, v2 = r[2 * HW + j] * g2, v3 = r[3 * HW + j] * g3;
                    sum[j] += (v0 + v1) + (v2 + v3);
                    mx[j] = MAX(mx[j], MAX(MAX(v0, v1), MAX(v2, v3)));
                }
            }
            for (; c < C; ++c) {
                const float *r = xb + c * HW;
                float g = gb ? gb[c] : 1.f;
                for (int64_t j = 0; j < n; ++j) { float v = r[j] * g; sum[j] += v; mx[j] = MAX(mx[j], v); }
            }
            const float *column = x + b * C * HW + p0;
            float *mean_out = pooled + (b * 2 + (max_first ? 1 : 0)) * H * Wp + pad;
            float *max_out = pooled + (b * 2 + (max_first ? 0 : 1)) * H * Wp + pad;
            for (int64_t j = 0, y = p0 / W, at = y * Wp + p0 % W; j < n; ++j, ++at) {
                if (at == y * Wp + W) at = ++y * Wp;  /* the next row */
                mean_out[at] = sum[j] / (float)C;
                max_out[at] = sum[j] != sum[j] && has_nan(column + j, scale ? scale + b * C : 0, C, HW) ? NAN : mx[j];
            }
        }
        #pragma omp for schedule(static)
        for (int64_t row = 0; row < B * H; ++row) {
            int64_t b = row / H, y = row % H;
            float acc[W];
            for (int64_t i = 0; i < W; ++i) acc[i] = 0.f;
            for (int64_t ch = 0; ch < 2; ++ch)
                for (int64_t dy = 0; dy < k; ++dy) {
                    int64_t yy = y + dy - pad;
                    if (yy < 0 || yy >= H) continue;  /* a zero row */
                    const float *src = pooled + ((b * 2 + ch) * H + yy) * Wp, *wk = conv_w + (ch * k + dy) * k;
                    for (int64_t dx = 0; dx < k; ++dx)
                        for (int64_t i = 0; i < W; ++i) acc[i] += wk[dx] * src[i + dx];
                }
            for (int64_t i = 0; i < W; ++i) out[b * HW + y * W + i] = sigmoid(acc[i] * mul + add);
        }
    }
    free(pooled);
    return 0;
}

/* x = residual + x * channel[b, c] * spatial[b, p], then ReLU when relu != 0, in place; channel (B, C),
 * spatial (B, H * W) or residual may be NULL (no such gate; nothing to add). */
void gate_residual(float *x, const float *channel, const float *spatial, const float *residual, int64_t B,
                   int64_t C, int64_t HW, int relu, int threads) {
    #pragma omp parallel for num_threads(threads) schedule(static) if (B * C * HW > PARALLEL_WORK)
    for (int64_t bc = 0; bc < B * C; ++bc) {
        float *px = x + bc * HW, g = channel ? channel[bc] : 1.f;
        const float *pr = residual ? residual + bc * HW : 0, *ps = spatial ? spatial + (bc / C) * HW : 0;
        for (int64_t i = 0; i < HW; ++i) {
            float v = px[i] * g;
            if (ps) v *= ps[i];
            if (pr) v += pr[i];
            px[i] = relu ? RELU(v) : v;
        }
    }
}

enum { CHANNEL_FIRST, SPATIAL_FIRST, PARALLEL };

/* A whole CBAM block, for when nothing watches its gates: x = residual + CBAM(x), then ReLU when
 * relu != 0, in place, with the gates in order (CHANNEL_FIRST, SPATIAL_FIRST or PARALLEL). The
 * arguments are channel_gate's (w1 NULL: no channel gate) and spatial_gate's (conv_w NULL: no
 * spatial gate); the same passes as the three calls, without their round trips through Python.
 * The gates' weights go to channel_out (B, C) and spatial_out (B, H * W) when these are not NULL.
 * Returns 0, or -1 when out of memory. */
int cbam_block(float *x, const float *residual, int64_t B, int64_t C, int64_t H, int64_t W, int order,
               const float *w1, const float *b1, int64_t hid, const float *w2, const float *b2,
               const float *conv_w, int64_t k, const float *bn_w, const float *bn_b, const float *bn_mean,
               const float *bn_var, double eps, int max_first, int relu, float *channel_out, float *spatial_out,
               int threads) {
    float *scratch = malloc(sizeof(float) * (B * C + B * H * W));
    if (!scratch) return -1;
    float *channel = w1 ? (channel_out ? channel_out : scratch) : 0;
    float *spatial = conv_w ? (spatial_out ? spatial_out : scratch + B * C) : 0;
    int status = 0;
    if (order == SPATIAL_FIRST && channel && spatial) {
        status = spatial_gate(x, 0, B, C, H, W, conv_w, k, bn_w, bn_b, bn_mean, bn_var, eps, max_first, spatial, threads);
        if (!status) gate_residual(x, 0, spatial, 0, B, C, H * W, 0, threads);
        spatial = 0;
    }
    if (!status && channel) status = channel_gate(x, B, C, H * W, w1, b1, hid, w2, b2, channel, threads);
    if (!status && spatial)
        status = spatial_gate(x, order == CHANNEL_FIRST ? channel : 0, B, C, H, W, conv_w, k, bn_w, bn_b, bn_mean,
                              bn_var, eps, max_first, spatial, threads);
    if (!status) gate_residual(x, channel, spatial, residual, B, C, H * W, relu, threads);
    free(scratch);
    return status;
}
