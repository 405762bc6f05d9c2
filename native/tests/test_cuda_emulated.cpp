// The CUDA kernels in native/cuda/*.cu, unchanged, executed on the CPU through cuda_cpu_emulation.h and checked
// against the double-precision reference (and, for z0, bit for bit against the CPU kernel).
#include "cuda_cpu_emulation.h"

#include "token_logprob.cu"
#include "kl_reduction.cu"

#include "engine_native.h"
#include "reference.h"
#include "test_util.h"

#include <algorithm>
#include <limits>
#include <string>

using namespace reference;
using cuda_emulation::launch;

namespace {

// Exercises the emulation itself: shared memory per block, __syncthreads as a barrier, shuffles and atomics.
__global__ void semantics_kernel(int* block_sums, int* rotated, int* down_sums, int* total)
{
    __shared__ int slots[64];
    __shared__ int warp_sums[2];
    const int tid = threadIdx.x;
    const int value = tid + 1 + 100 * blockIdx.x;
    slots[tid] = value;
    __syncthreads();
    // Without a real barrier this would read unwritten (or the previous block's) slots.
    rotated[blockIdx.x * 64 + tid] = slots[(tid + 1) % 64];
    int s = value;
    for (int offset = 16; offset > 0; offset >>= 1) s += __shfl_xor_sync(0xffffffffu, s, offset);
    int d = value;
    for (int offset = 16; offset > 0; offset >>= 1) d += __shfl_down_sync(0xffffffffu, d, offset);
    if ((tid & 31) == 0)
    {
        warp_sums[tid >> 5] = s;
        down_sums[blockIdx.x * 2 + (tid >> 5)] = d;
    }
    atomicAdd(total, value);
    __syncthreads();
    if (tid == 0) block_sums[blockIdx.x] = warp_sums[0] + warp_sums[1];
}

struct Launched
{
    std::vector<float> logp, stats, mean;
};

Launched forward(const Case& c, bool bf16)
{
    Launched o;
    o.logp.assign(c.rows, -1.0f);
    o.stats.assign(2 * c.rows, 0.0f);
    o.mean.assign(c.rows, 0.0f);
    const dim3 grid(static_cast<unsigned>(c.rows)), block(TLP_THREADS);
    if (bf16)
    {
        std::vector<uint16_t> b = as_bf16(c.logits);
        launch(token_logprob_forward_bf16, grid, block, static_cast<const unsigned short*>(b.data()),
               reinterpret_cast<const long long*>(c.labels.data()), static_cast<int>(c.rows), static_cast<int>(c.vocab),
               static_cast<long long>(kIgnore), o.logp.data(), o.stats.data(), o.mean.data());
    }
    else
        launch(token_logprob_forward_f32, grid, block, c.logits.data(), reinterpret_cast<const long long*>(c.labels.data()),
               static_cast<int>(c.rows), static_cast<int>(c.vocab), static_cast<long long>(kIgnore), o.logp.data(),
               o.stats.data(), o.mean.data());
    return o;
}

dim3 backward_grid(const Case& c)
{
    const int64_t tile = TLP_THREADS * TLP_BACKWARD_ITEMS;
    return dim3(static_cast<unsigned>(c.rows), static_cast<unsigned>((c.vocab + tile - 1) / tile));
}

void check_forward(bool bf16)
{
    uint32_t seed = 1;
    for (const Shape& s : shapes(true))
        for (Values kind : {Values::Normal, Values::Extreme, Values::NegInf})
        {
            const Case c = make_case(s.rows, s.vocab, kind, bf16, seed++);
            const Forward ref = reference::forward(c);
            const Launched o = forward(c, bf16);
            for (int64_t r = 0; r < c.rows; ++r)
            {
                const std::string where = c.name + " row " + std::to_string(r);
                CHECK_CLOSE(o.logp[r], ref.logp[r], 1e-5, 1e-6, where + " logp");
                CHECK_CLOSE(static_cast<double>(o.stats[2 * r]) + o.stats[2 * r + 1], ref.lse[r], 1e-5, 1e-6, where + " lse");
                double max_abs = 0;
                for (int64_t v = 0; v < c.vocab; ++v)
                    if (std::isfinite(c.logits[r * c.vocab + v])) max_abs = std::max(max_abs, (double)std::fabs(c.logits[r * c.vocab + v]));
                CHECK_CLOSE(o.mean[r], ref.mean[r], std::isinf(ref.mean[r]) ? 0.0 : 1e-5 + 1e-6 * max_abs, 1e-6, where + " mean");
                if (c.labels[r] == kIgnore) CHECK(o.logp[r] == 0.0f);
            }
        }
}

std::vector<float> run_backward(const Case& c, const Launched& f, bool bf16, bool in_place)
{
    std::vector<float> grad(c.logits.size(), std::numeric_limits<float>::quiet_NaN());
    const dim3 grid = backward_grid(c), block(TLP_THREADS);
    const auto* labels = reinterpret_cast<const long long*>(c.labels.data());
    if (bf16)
    {
        std::vector<uint16_t> in = as_bf16(c.logits), out(c.logits.size(), 0xFFFF);
        uint16_t* target = in_place ? in.data() : out.data();
        launch(token_logprob_backward_bf16, grid, block, static_cast<const unsigned short*>(in.data()), labels, f.stats.data(),
               c.grad_out.data(), static_cast<int>(c.rows), static_cast<int>(c.vocab), static_cast<long long>(kIgnore),
               static_cast<unsigned short*>(target));
        for (size_t i = 0; i < grad.size(); ++i) grad[i] = from_bf16(target[i]);
    }
    else
    {
        std::vector<float> in = c.logits;
        float* target = in_place ? in.data() : grad.data();
        launch(token_logprob_backward_f32, grid, block, static_cast<const float*>(in.data()), labels, f.stats.data(),
               c.grad_out.data(), static_cast<int>(c.rows), static_cast<int>(c.vocab), static_cast<long long>(kIgnore), target);
        if (in_place) grad = in;
    }
    return grad;
}

void check_backward(bool bf16)
{
    uint32_t seed = 100;
    for (const Shape& s : shapes(true))
        for (Values kind : {Values::Normal, Values::Extreme, Values::NegInf})
        {
            const Case c = make_case(s.rows, s.vocab, kind, bf16, seed++);
            const std::vector<double> ref = reference::backward(c);
            const std::vector<float> grad = run_backward(c, forward(c, bf16), bf16, false);
            const double rtol = bf16 ? 1.0 / 256 : 1e-5;
            for (size_t i = 0; i < grad.size(); ++i) CHECK_CLOSE(grad[i], ref[i], 1e-6, rtol, c.name + " grad " + std::to_string(i));
        }
}

void random_kl(int64_t B, int64_t T, uint32_t seed, std::vector<float>& p, std::vector<float>& r, std::vector<uint8_t>& m)
{
    std::mt19937 rng(seed);
    std::normal_distribution<float> n(-2.0f, 1.5f);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    p.resize(B * T);
    r.resize(B * T);
    m.resize(B * T);
    for (int64_t i = 0; i < B * T; ++i)
    {
        p[i] = n(rng);
        r[i] = n(rng);
        m[i] = u(rng) < 0.8f;
    }
}

struct KlOut
{
    std::vector<float> ps, rs;
    double out[2];
};

KlOut kl_emulated(const std::vector<float>& p, const float* ref_tokens, const float* ref_sums, const std::vector<uint8_t>& m,
                  int64_t B, int64_t T)
{
    KlOut o;
    o.ps.assign(B, 0);
    o.rs.assign(B, 0);
    std::vector<double> scratch(B);
    launch(kl_z0_reduce, dim3(1), dim3(KL_THREADS), p.data(), ref_tokens, ref_sums, m.data(), static_cast<int>(B),
           static_cast<int>(T), o.ps.data(), o.rs.data(), scratch.data(), o.out);
    return o;
}

} // namespace

TEST_CASE(cuda_emulation_semantics)
{
    int block_sums[3] = {}, rotated[3 * 64] = {}, down_sums[6] = {}, total = 0;
    launch(semantics_kernel, dim3(3), dim3(64), block_sums, rotated, down_sums, &total);
    int expected_total = 0;
    for (int b = 0; b < 3; ++b)
    {
        int sum = 0;
        for (int t = 0; t < 64; ++t) sum += t + 1 + 100 * b;
        expected_total += sum;
        CHECK(block_sums[b] == sum);
        for (int t = 0; t < 64; ++t) CHECK(rotated[b * 64 + t] == (t + 1) % 64 + 1 + 100 * b);
        for (int w = 0; w < 2; ++w)
        {
            int ws = 0;
            for (int t = 32 * w; t < 32 * w + 32; ++t) ws += t + 1 + 100 * b;
            CHECK(down_sums[b * 2 + w] == ws); // lane 0 of a shfl_down tree holds the warp's sum
        }
    }
    CHECK(total == expected_total);
}

TEST_CASE(cuda_logprob_forward_f32) { check_forward(false); }
TEST_CASE(cuda_logprob_forward_bf16) { check_forward(true); }
TEST_CASE(cuda_logprob_backward_f32) { check_backward(false); }
TEST_CASE(cuda_logprob_backward_bf16) { check_backward(true); }

TEST_CASE(cuda_logprob_backward_in_place)
{
    for (bool bf16 : {false, true})
    {
        const Case c = make_case(3, 2100, Values::Extreme, bf16, 42);
        const Launched f = forward(c, bf16);
        const std::vector<float> separate = run_backward(c, f, bf16, false);
        const std::vector<float> in_place = run_backward(c, f, bf16, true);
        CHECK(std::memcmp(separate.data(), in_place.data(), separate.size() * sizeof(float)) == 0);
    }
}

// Same summation order as the CPU kernel: identical bits, and identical bits on every repeat.
TEST_CASE(cuda_kl_z0_matches_cpu_bits)
{
    for (auto [B, T] : {std::pair<int64_t, int64_t>{1, 1}, {2, 3}, {9, 77}, {17, 300}})
    {
        std::vector<float> p, r;
        std::vector<uint8_t> m;
        random_kl(B, T, static_cast<uint32_t>(B * 1000 + T), p, r, m);
        const KlOut a = kl_emulated(p, r.data(), nullptr, m, B, T);
        const KlOut b = kl_emulated(p, r.data(), nullptr, m, B, T);
        std::vector<float> ps(B), rs(B);
        double out[2];
        CHECK(engine_kl_z0(p.data(), r.data(), nullptr, m.data(), B, T, ps.data(), rs.data(), out) == ENGINE_OK);
        CHECK(std::memcmp(a.out, out, sizeof out) == 0);
        CHECK(std::memcmp(a.out, b.out, sizeof out) == 0);
        CHECK(a.ps == ps && a.rs == rs && a.ps == b.ps);
        double total = 0;
        for (int64_t i = 0; i < B; ++i)
        {
            double ps_ref = 0, rs_ref = 0;
            for (int64_t t = 0; t < T; ++t)
                if (m[i * T + t]) { ps_ref += p[i * T + t]; rs_ref += r[i * T + t]; }
            total += ps_ref - rs_ref;
        }
        CHECK_CLOSE(a.out[0], total / B, 1e-12, 1e-12, "z0 mean");
    }
}

// Worked by hand (see the CPU test): reference given as per-sequence sums; clamping of a negative mean.
TEST_CASE(cuda_kl_z0_reference_sums)
{
    const std::vector<float> policy = {-1, -2, -3, -0.5f, -0.25f, -4};
    const std::vector<uint8_t> mask = {1, 1, 0, 1, 1, 0}, mask2 = {1, 1, 0, 1, 1, 1};
    const float ref_sums[] = {-3.5f, -2.0f};
    KlOut o = kl_emulated(policy, nullptr, ref_sums, mask, 2, 3);
    CHECK(o.ps[0] == -3.0f && o.ps[1] == -0.75f && o.rs[1] == -2.0f);
    CHECK(o.out[0] == 0.875 && o.out[1] == 0.875);
    const float ref_sums2[] = {-3.5f, -3.0f};
    o = kl_emulated(policy, nullptr, ref_sums2, mask2, 2, 3);
    CHECK(o.out[0] == -0.625 && o.out[1] == 0.0);
}

// A NaN estimate stays NaN after the clamp, on the CUDA kernel as on the CPU one.
TEST_CASE(cuda_kl_z0_nan_is_not_clamped_to_zero)
{
    const std::vector<float> policy = {-1, std::numeric_limits<float>::quiet_NaN(), -3, -0.5f, -0.25f, -4};
    const std::vector<uint8_t> mask = {1, 1, 0, 1, 1, 0};
    const float ref_sums[] = {-3.5f, -2.0f};
    KlOut o = kl_emulated(policy, nullptr, ref_sums, mask, 2, 3);
    CHECK(std::isnan(o.out[0]) && std::isnan(o.out[1]));
    const float nan_ref[] = {-3.5f, std::numeric_limits<float>::quiet_NaN()};
    const std::vector<float> finite_policy = {-1, -2, -3, -0.5f, -0.25f, -4};
    o = kl_emulated(finite_policy, nullptr, nan_ref, mask, 2, 3);
    CHECK(std::isnan(o.out[1]));
}

int main(int argc, char** argv) { return testing_util::run_main(argc, argv); }
