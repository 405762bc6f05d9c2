// native/cuda/adamw.cu, unchanged, executed on the CPU through cuda_cpu_emulation.h and checked against the plain
// double-precision AdamW of adamw_reference.h (the CPU kernels' tests use the same problems).
#include "cuda_cpu_emulation.h"

#include "adamw.cu"

#include "adamw_reference.h"
#include "test_util.h"

#include <cstddef>
#include <limits>
#include <string>

using namespace adamw_reference;
using cuda_emulation::launch;

// The kernels read the host's EngineAdamWTensor array as AdamWTensorDesc: the layouts must agree.
static_assert(sizeof(AdamWTensorDesc) == sizeof(EngineAdamWTensor));
static_assert(offsetof(AdamWTensorDesc, master) == offsetof(EngineAdamWTensor, master));
static_assert(offsetof(AdamWTensorDesc, numel) == offsetof(EngineAdamWTensor, numel));
static_assert(offsetof(AdamWTensorDesc, param_dtype) == offsetof(EngineAdamWTensor, param_dtype));
static_assert(offsetof(AdamWTensorDesc, state_dtype) == offsetof(EngineAdamWTensor, state_dtype));
static_assert(offsetof(AdamWTensorDesc, decay) == offsetof(EngineAdamWTensor, decay));
static_assert(sizeof(AdamWHyperParams) == sizeof(EngineAdamWHyper));

namespace {

struct Launch
{
    std::vector<long long> first_chunk;
    long long chunks = 0;

    explicit Launch(const Buffers& b)
    {
        first_chunk.push_back(0);
        for (const auto& t : b.tensors) first_chunk.push_back(first_chunk.back() + (t.numel + ADAMW_CHUNK - 1) / ADAMW_CHUNK);
        chunks = first_chunk.back();
    }
};

const AdamWTensorDesc* descs(const Buffers& b) { return reinterpret_cast<const AdamWTensorDesc*>(b.tensors.data()); }

AdamWHyperParams params(const EngineAdamWHyper& h)
{
    return {h.beta1, h.one_minus_beta1, h.beta2, h.one_minus_beta2, h.eps, h.bias_correction2, h.step_size, h.decay_factor, h.grad_scale};
}

// (sum of squares, clipping factor) from the two reduction kernels.
std::pair<double, float> norm_and_scale(const Buffers& b, const Launch& l, float max_norm)
{
    std::vector<double> partials(static_cast<size_t>(l.chunks), -1.0);
    launch(adamw_grad_sum_squares, dim3(static_cast<unsigned>(l.chunks)), dim3(ADAMW_THREADS), descs(b), l.first_chunk.data(),
           static_cast<int>(b.tensors.size()), partials.data());
    double sum = -1.0;
    float scale = -1.0f;
    launch(adamw_clip_scale, dim3(1), dim3(ADAMW_THREADS), static_cast<const double*>(partials.data()), l.chunks, max_norm, &sum, &scale);
    return {sum, scale};
}

void check_against_reference(bool bf16_params, bool master, bool bf16_state)
{
    const std::vector<Step> plan = steps();
    Problem p = make_problem(bf16_params, master, bf16_state, 7, plan.size());
    Buffers b(p);
    const Launch l(b);
    for (size_t s = 0; s < plan.size(); ++s)
    {
        const int step = static_cast<int>(s) + 1;
        b.load_grads(p, step);
        EngineAdamWHyper h = engine_hyper(plan[s], step);
        Step applied = plan[s];
        const float* device_scale = nullptr;
        float scale = 1.0f;
        if (s % 2 == 0)
        {
            // The clipping factor from the norm kernels, read by the update from "device memory": a max norm of
            // grad_scale times the true norm clips by about grad_scale (exactly 1 when grad_scale is 1).
            const double norm = std::sqrt(sum_squares(p, step));
            const float max_norm = plan[s].grad_scale < 1.0 ? static_cast<float>(norm * plan[s].grad_scale) : 0.0f;
            const auto [sum, factor] = norm_and_scale(b, l, max_norm);
            CHECK_CLOSE(sum, sum_squares(p, step), 0.0, 1e-12, p.name + " sum of squares");
            scale = factor;
            device_scale = &scale;
            h.grad_scale = 1.0f;
            applied.grad_scale = factor;
        }
        launch(adamw_step, dim3(static_cast<unsigned>(l.chunks)), dim3(ADAMW_THREADS), descs(b), l.first_chunk.data(),
               static_cast<int>(b.tensors.size()), params(h), device_scale);
        apply(p, applied, step);
        for (size_t i = 0; i < p.tensors.size(); ++i)
        {
            const Tolerance tol = tolerance(p, p.tensors[i]);
            for (int64_t j = 0; j < p.tensors[i].numel; ++j)
            {
                const std::string at = p.name + " step " + std::to_string(step) + " tensor " + std::to_string(i) + "[" + std::to_string(j) + "]";
                CHECK_CLOSE(b.weight(p, i, j), p.tensors[i].w[j], tol.w_abs, tol.w_rel, at + " weight");
                CHECK_CLOSE(b.exp_avg(p, i, j), p.tensors[i].m[j], tol.m_abs, tol.state_rel, at + " exp_avg");
                CHECK_CLOSE(b.exp_avg_sq(p, i, j), p.tensors[i].v[j], tol.v_abs, tol.state_rel, at + " exp_avg_sq");
                if (p.bf16_params && p.master) CHECK(b.w16[i][j] == to_bf16(b.master[i][j]));
            }
        }
    }
}

} // namespace

TEST_CASE(cuda_adamw_f32) { check_against_reference(false, false, false); }
TEST_CASE(cuda_adamw_bf16_master) { check_against_reference(true, true, false); }
TEST_CASE(cuda_adamw_bf16_master_bf16_state) { check_against_reference(true, true, true); }
TEST_CASE(cuda_adamw_bf16_pure_bf16_state) { check_against_reference(true, false, true); }

// The clipping factor: none within the max norm or with max_norm <= 0, none for a non-finite norm; the norm's bits
// equal on every run.
TEST_CASE(cuda_adamw_clip_scale)
{
    Problem p = make_problem(false, false, false, 13, 1);
    Buffers b(p);
    const Launch l(b);
    b.load_grads(p, 1);
    const double norm = std::sqrt(sum_squares(p, 1));
    const auto [s1, within] = norm_and_scale(b, l, static_cast<float>(norm * 2));
    CHECK(within == 1.0f);
    const auto [s2, off] = norm_and_scale(b, l, 0.0f);
    CHECK(off == 1.0f && s2 == s1);
    const auto [s3, clipped] = norm_and_scale(b, l, 1.0f);
    CHECK(s3 == s1);
    CHECK_CLOSE(clipped, 1.0 / (norm + 1e-6), 0.0, 1e-6, "clip factor");
    b.g32[6][5] = std::numeric_limits<float>::quiet_NaN();
    const auto [s4, nan_scale] = norm_and_scale(b, l, 1.0f);
    CHECK(std::isnan(s4) && nan_scale == 1.0f);
}

int main(int argc, char** argv) { return testing_util::run_main(argc, argv); }
