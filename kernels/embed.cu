// all-MiniLM-L6-v2 forward pass: the element-wise kernels between the cuBLAS GEMMs.
// Compiled at start-up by NVRTC (src/embed/cuda/kernels.rs); fp32 throughout.
// Layout: activations are row-major [tokens, width] over the padded batch, token = row * seq_len + pos.
// Every row-wise kernel runs one block of ROW_THREADS threads per row.

#define HIDDEN 384
#define NEG_INF __int_as_float(0xff800000)
#define ROW_THREADS 128
#define PER_THREAD (HIDDEN / ROW_THREADS)

// Sum over the block (ROW_THREADS = 4 warps); every thread gets the total.
__device__ __forceinline__ float block_sum(float v, float* shared4) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    __syncthreads();
    if (lane == 0) shared4[warp] = v;
    __syncthreads();
    return shared4[0] + shared4[1] + shared4[2] + shared4[3];
}

// LayerNorm of x[PER_THREAD] (this thread's columns threadIdx.x + i * ROW_THREADS) into out.
__device__ __forceinline__ void layernorm_row(float* x, const float* gamma, const float* beta,
                                              float eps, float* out_row, float* shared4) {
    float s = 0.f;
    for (int i = 0; i < PER_THREAD; ++i) s += x[i];
    const float mean = block_sum(s, shared4) / HIDDEN;
    float q = 0.f;
    for (int i = 0; i < PER_THREAD; ++i) { const float d = x[i] - mean; q += d * d; }
    const float var = block_sum(q, shared4) / HIDDEN;
    const float inv = 1.f / sqrtf(var + eps);
    for (int i = 0; i < PER_THREAD; ++i) {
        const int c = threadIdx.x + i * ROW_THREADS;
        out_row[c] = (x[i] - mean) * inv * gamma[c] + beta[c];
    }
}

// hidden[t] = LayerNorm(word[ids[t]] + position[t % seq_len] + token_type0). grid = tokens.
extern "C" __global__ void embed_layernorm(const unsigned int* ids, const float* word,
                                           const float* position, const float* type0,
                                           const float* gamma, const float* beta, float eps,
                                           int seq_len, float* hidden) {
    __shared__ float shared4[4];
    const int t = blockIdx.x;
    const unsigned int id = ids[t];
    const int pos = t % seq_len;
    float x[PER_THREAD];
    for (int i = 0; i < PER_THREAD; ++i) {
        const int c = threadIdx.x + i * ROW_THREADS;
        x[i] = word[(size_t)id * HIDDEN + c] + position[(size_t)pos * HIDDEN + c] + type0[c];
    }
    layernorm_row(x, gamma, beta, eps, hidden + (size_t)t * HIDDEN, shared4);
}

// h[t] = LayerNorm(h[t] + y[t] + bias): BERT's add & norm after a projection. grid = tokens.
extern "C" __global__ void residual_bias_layernorm(float* h, const float* y, const float* bias,
                                                   const float* gamma, const float* beta,
                                                   float eps) {
    __shared__ float shared4[4];
    const size_t base = (size_t)blockIdx.x * HIDDEN;
    float x[PER_THREAD];
    for (int i = 0; i < PER_THREAD; ++i) {
        const int c = threadIdx.x + i * ROW_THREADS;
        x[i] = h[base + c] + y[base + c] + bias[c];
    }
    layernorm_row(x, gamma, beta, eps, h + base, shared4);
}

// x[r, c] = gelu(x[r, c] + bias[c]) with the exact erf GELU, over n = rows * width values.
extern "C" __global__ void bias_gelu(float* x, const float* bias, int width, long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float t = x[i] + bias[i % width];
    x[i] = 0.5f * t * (1.f + erff(t * 0.70710678118654752f));
}

// Masked softmax over the keys of every attention row. scores: [batch, heads, seq, seq]
// (already scaled by 1/sqrt(head_dim)); keys with mask 0 get probability 0.
// grid = batch * heads * seq rows, one warp per row.
extern "C" __global__ void attention_softmax(float* scores, const unsigned int* mask, int heads,
                                             int seq_len) {
    const long long row = blockIdx.x;
    const int b = (int)(row / ((long long)heads * seq_len));
    float* s = scores + row * seq_len;
    const unsigned int* m = mask + (size_t)b * seq_len;
    const int lane = threadIdx.x;
    float mx = NEG_INF;
    for (int j = lane; j < seq_len; j += 32) if (m[j]) mx = fmaxf(mx, s[j]);
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float sum = 0.f;
    for (int j = lane; j < seq_len; j += 32) {
        const float e = m[j] ? expf(s[j] - mx) : 0.f;
        s[j] = e;
        sum += e;
    }
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    const float inv = sum > 0.f ? 1.f / sum : 0.f;
    for (int j = lane; j < seq_len; j += 32) s[j] *= inv;
}

// out[b] = L2-normalize(mean of hidden[b, pos] over pos with mask 1). grid = batch.
extern "C" __global__ void mean_pool_normalize(const float* hidden, const unsigned int* mask,
                                               int seq_len, float* out) {
    __shared__ float shared4[4];
    const int b = blockIdx.x;
    float acc[PER_THREAD];
    for (int i = 0; i < PER_THREAD; ++i) acc[i] = 0.f;
    int rows = 0;
    for (int p = 0; p < seq_len; ++p) {
        if (!mask[(size_t)b * seq_len + p]) continue;
        ++rows;
        const float* h = hidden + ((size_t)b * seq_len + p) * HIDDEN;
        for (int i = 0; i < PER_THREAD; ++i) acc[i] += h[threadIdx.x + i * ROW_THREADS];
    }
    const float inv_rows = 1.f / (float)(rows > 0 ? rows : 1);
    float sq = 0.f;
    for (int i = 0; i < PER_THREAD; ++i) { acc[i] *= inv_rows; sq += acc[i] * acc[i]; }
    const float norm = sqrtf(block_sum(sq, shared4));
    const float inv_norm = 1.f / fmaxf(norm, 1e-12f);
    for (int i = 0; i < PER_THREAD; ++i)
        out[(size_t)b * HIDDEN + threadIdx.x + i * ROW_THREADS] = acc[i] * inv_norm;
}

// x[r, c] += bias[c] over n = rows * width values (the Q|K|V bias).
extern "C" __global__ void bias_add(float* x, const float* bias, int width, long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    x[i] += bias[i % width];
}
