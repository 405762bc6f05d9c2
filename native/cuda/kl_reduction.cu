// KTO z0 on CUDA: per-sequence sums of the mismatched pairs' per-token log-probs (policy and reference) under the
// completion mask, and z0 = max(0, mean_b(policy_b - reference_b)), in one launch of one block.
// Deterministic: each sequence is summed by one warp in a fixed order (lane-strided partial sums in double, then
// an xor butterfly) and the sequences are summed in index order by one thread; no atomics. The CPU kernel
// (native/src/kl_reduction.cpp) uses the same order, so both give identical bits.
// No #include: see token_logprob.cu.

#define KL_THREADS 256

extern "C" __global__ void __launch_bounds__(KL_THREADS)
kl_z0_reduce(const float* policy, const float* ref_tokens, const float* ref_sums_in, const unsigned char* mask,
             int batch, int tokens, float* policy_sums, float* ref_sums, double* seq_diff, double* out)
{
    // ref_tokens == 0: the reference is given as per-sequence sums (ref_sums_in) instead of per-token values.
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
    for (int b = warp; b < batch; b += warps)
    {
        const long long base = (long long)b * tokens;
        double ps = 0.0, rs = 0.0;
        for (int t = lane; t < tokens; t += 32)
        {
            if (mask[base + t])
            {
                ps += (double)policy[base + t];
                if (ref_tokens) rs += (double)ref_tokens[base + t];
            }
        }
        for (int offset = 16; offset > 0; offset >>= 1)
        {
            ps += __shfl_xor_sync(0xffffffffu, ps, offset);
            rs += __shfl_xor_sync(0xffffffffu, rs, offset);
        }
        if (!ref_tokens) rs = (double)ref_sums_in[b];
        if (lane == 0)
        {
            policy_sums[b] = (float)ps;
            ref_sums[b] = (float)rs;
            seq_diff[b] = ps - rs;
        }
    }
    __syncthreads();
    if (threadIdx.x == 0)
    {
        double total = 0.0;
        for (int b = 0; b < batch; ++b) total += seq_diff[b];
        const double mean = total / (double)batch;
        out[0] = mean;
        // Clamp at 0 with a comparison that is false for NaN, so a NaN estimate stays NaN and reaches the
        // trainer's non-finite guard instead of becoming a silent 0.
        out[1] = mean < 0.0 ? 0.0 : mean;
    }
}
