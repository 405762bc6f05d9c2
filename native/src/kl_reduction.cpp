// KTO z0 on the CPU, in exactly the CUDA kernel's summation order (native/cuda/kl_reduction.cu), so the two
// give identical bits and repeated runs are bit-identical.
#include "engine_native.h"

namespace {

constexpr int kLanes = 32;

// Lane l sums tokens l, l+32, l+64, ... in double; then an xor butterfly (offsets 16..1) combines the lanes.
// Floating-point addition is commutative, so every lane of the butterfly ends with the same value: lane 0's.
double warp_order_sum(const float* values, const uint8_t* mask, int64_t tokens)
{
    double lane[kLanes];
    for (int l = 0; l < kLanes; ++l)
    {
        double s = 0.0;
        for (int64_t t = l; t < tokens; t += kLanes)
            if (mask[t]) s += static_cast<double>(values[t]);
        lane[l] = s;
    }
    for (int offset = kLanes / 2; offset > 0; offset /= 2)
    {
        double next[kLanes];
        for (int l = 0; l < kLanes; ++l) next[l] = lane[l] + lane[l ^ offset];
        for (int l = 0; l < kLanes; ++l) lane[l] = next[l];
    }
    return lane[0];
}

} // namespace

extern "C" int32_t engine_kl_z0(const float* policy, const float* ref_tokens, const float* ref_sums_in,
                                const uint8_t* mask, int64_t batch, int64_t tokens, float* policy_sums,
                                float* ref_sums, double* out)
{
    if (batch <= 0 || tokens < 0 || !policy || !mask || !policy_sums || !ref_sums || !out) return ENGINE_BAD_ARGUMENT;
    if (!ref_tokens && !ref_sums_in) return ENGINE_BAD_ARGUMENT;
    double total = 0.0;
    for (int64_t b = 0; b < batch; ++b)
    {
        const double ps = warp_order_sum(policy + b * tokens, mask + b * tokens, tokens);
        const double rs = ref_tokens ? warp_order_sum(ref_tokens + b * tokens, mask + b * tokens, tokens)
                                     : static_cast<double>(ref_sums_in[b]);
        policy_sums[b] = static_cast<float>(ps);
        ref_sums[b] = static_cast<float>(rs);
        total += ps - rs;
    }
    const double mean = total / static_cast<double>(batch);
    out[0] = mean;
    // Clamp at 0 with a comparison that is false for NaN, so a NaN estimate stays NaN and reaches the trainer's
    // non-finite guard instead of becoming a silent 0 (the CUDA kernel does the same).
    out[1] = mean < 0.0 ? 0.0 : mean;
    return ENGINE_OK;
}
