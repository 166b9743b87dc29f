// Semantic index search: exact top-K per query over a [queries, capacity] score matrix
// (one cuBLAS GEMM of the queries against a scope's vectors), skipping dead slots.
// Two stages: topk_partial keeps the best K of each part of the slots, topk_merge keeps the
// best K of those. K = TOPK; BLOCK threads per block. Compiled at start-up by NVRTC.

#define TOPK 8
#define NEG_INF __int_as_float(0xff800000)
#define BLOCK 256

// Inserts (v, i) into the sorted (descending) list vals/idx of TOPK entries.
__device__ __forceinline__ void push(float* vals, int* idx, float v, int i) {
    if (!(v > vals[TOPK - 1])) return;
    int k = TOPK - 1;
    while (k > 0 && v > vals[k - 1]) { vals[k] = vals[k - 1]; idx[k] = idx[k - 1]; --k; }
    vals[k] = v;
    idx[k] = i;
}

// The block's best TOPK of every thread's sorted list, written to out_vals/out_idx (thread 0).
__device__ void block_select(float* vals, int* idx, float* out_vals, int* out_idx) {
    __shared__ float best_v[BLOCK];
    __shared__ int best_t[BLOCK];
    int head = 0;
    for (int k = 0; k < TOPK; ++k) {
        best_v[threadIdx.x] = head < TOPK ? vals[head] : NEG_INF;
        best_t[threadIdx.x] = threadIdx.x;
        __syncthreads();
        for (int s = BLOCK / 2; s > 0; s >>= 1) {
            if (threadIdx.x < s) {
                const float o = best_v[threadIdx.x + s];
                const int ot = best_t[threadIdx.x + s];
                if (o > best_v[threadIdx.x] || (o == best_v[threadIdx.x] && ot < best_t[threadIdx.x])) {
                    best_v[threadIdx.x] = o;
                    best_t[threadIdx.x] = ot;
                }
            }
            __syncthreads();
        }
        const int winner = best_t[0];
        const float wv = best_v[0];
        if (threadIdx.x == winner) {
            out_vals[k] = wv;
            out_idx[k] = (head < TOPK && wv > NEG_INF) ? idx[head] : -1;
            ++head;
        }
        __syncthreads();
    }
}

// scores: [queries, ld] row-major; slots [0, n) with deadline > now are live.
// grid = (parts, queries); part p covers slots [p * part_len, (p + 1) * part_len).
// out: [queries, parts, TOPK] values and slot indices (-1 when fewer live slots).
extern "C" __global__ void topk_partial(const float* scores, long long ld, long long n,
                                        const long long* deadlines, long long now,
                                        long long part_len, float* out_vals, int* out_idx) {
    float vals[TOPK];
    int idx[TOPK];
    for (int k = 0; k < TOPK; ++k) { vals[k] = NEG_INF; idx[k] = -1; }
    const long long q = blockIdx.y;
    const long long start = (long long)blockIdx.x * part_len;
    long long end = start + part_len;
    if (end > n) end = n;
    const float* row = scores + q * ld;
    for (long long i = start + threadIdx.x; i < end; i += BLOCK)
        if (deadlines[i] > now) push(vals, idx, row[i], (int)i);
    const long long o = (q * gridDim.x + blockIdx.x) * TOPK;
    block_select(vals, idx, out_vals + o, out_idx + o);
}

// Merges the [queries, parts, TOPK] lists of topk_partial into [queries, TOPK]. grid = queries.
extern "C" __global__ void topk_merge(const float* in_vals, const int* in_idx, int parts,
                                      float* out_vals, int* out_idx) {
    float vals[TOPK];
    int idx[TOPK];
    for (int k = 0; k < TOPK; ++k) { vals[k] = NEG_INF; idx[k] = -1; }
    const long long q = blockIdx.x;
    const long long n = (long long)parts * TOPK;
    for (long long i = threadIdx.x; i < n; i += BLOCK) {
        const int slot = in_idx[q * n + i];
        if (slot >= 0) push(vals, idx, in_vals[q * n + i], slot);
    }
    block_select(vals, idx, out_vals + q * TOPK, out_idx + q * TOPK);
}
