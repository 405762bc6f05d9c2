// The multi-tensor AdamW of libengine_native (every ISA this machine supports) against the plain double-precision
// AdamW of adamw_reference.h, over several steps with weight decay and clipping factors.
#include "engine_native.h"
#include "adamw_reference.h"
#include "isa_util.h"
#include "test_util.h"

#include <string>

using namespace adamw_reference;

using isa_util::available_isas;
using isa_util::isa_name;

namespace {

// Every element of the kernel's weights and moments against the reference, and (bf16 + master) the bf16 weight
// being exactly the master's rounding.
void compare(const Problem& p, const Buffers& b, const std::string& where)
{
    for (size_t i = 0; i < p.tensors.size(); ++i)
    {
        const Tensor& t = p.tensors[i];
        const Tolerance tol = tolerance(p, t);
        for (int64_t j = 0; j < t.numel; ++j)
        {
            const std::string at = where + " tensor " + std::to_string(i) + "[" + std::to_string(j) + "]";
            CHECK_CLOSE(b.weight(p, i, j), t.w[j], tol.w_abs, tol.w_rel, at + " weight");
            CHECK_CLOSE(b.exp_avg(p, i, j), t.m[j], tol.m_abs, tol.state_rel, at + " exp_avg");
            CHECK_CLOSE(b.exp_avg_sq(p, i, j), t.v[j], tol.v_abs, tol.state_rel, at + " exp_avg_sq");
            if (p.bf16_params && p.master) CHECK(b.w16[i][j] == to_bf16(b.master[i][j]));
        }
    }
}

void check_against_reference(bool bf16_params, bool master, bool bf16_state)
{
    const std::vector<Step> plan = steps();
    for (int32_t isa : available_isas())
    {
        engine_force_isa(isa);
        Problem p = make_problem(bf16_params, master, bf16_state, 7, plan.size());
        Buffers b(p);
        for (size_t s = 0; s < plan.size(); ++s)
        {
            const int step = static_cast<int>(s) + 1;
            b.load_grads(p, step);
            const EngineAdamWHyper h = engine_hyper(plan[s], step);
            CHECK(engine_adamw_step(b.tensors.data(), static_cast<int64_t>(b.tensors.size()), &h) == ENGINE_OK);
            apply(p, plan[s], step);
            // Compared after every step, so an error cannot hide by cancelling later.
            compare(p, b, std::string(isa_name(isa)) + " " + p.name + " step " + std::to_string(step));
        }
    }
    engine_force_isa(-1);
}

} // namespace

TEST_CASE(cpu_adamw_f32) { check_against_reference(false, false, false); }
TEST_CASE(cpu_adamw_f32_bf16_state) { check_against_reference(false, false, true); }
TEST_CASE(cpu_adamw_bf16_master) { check_against_reference(true, true, false); }
TEST_CASE(cpu_adamw_bf16_master_bf16_state) { check_against_reference(true, true, true); }
TEST_CASE(cpu_adamw_bf16_pure) { check_against_reference(true, false, false); }

// The gradients' sum of squares against the double sum, f32 and bf16, every ISA; the same bits for any thread count.
TEST_CASE(cpu_adamw_grad_sum_squares)
{
    for (bool bf16 : {false, true})
    {
        Problem p = make_problem(bf16, bf16, false, 11, 1);
        Buffers b(p);
        b.load_grads(p, 1);
        const double expected = sum_squares(p, 1);
        for (int32_t isa : available_isas())
        {
            engine_force_isa(isa);
            double first = -1.0;
            for (int threads : {1, 2, 3, 4, 7})
            {
                engine_set_threads(threads);
                double got = -1.0;
                CHECK(engine_adamw_grad_sum_squares(b.tensors.data(), static_cast<int64_t>(b.tensors.size()), &got) == ENGINE_OK);
                CHECK_CLOSE(got, expected, 0.0, 1e-6, std::string(isa_name(isa)) + (bf16 ? " bf16" : " f32") + " sum of squares");
                if (first < 0) first = got;
                CHECK(got == first);
            }
        }
        engine_set_threads(0);
    }
    engine_force_isa(-1);
    // No tensors: 0.
    double none = -1.0;
    CHECK(engine_adamw_grad_sum_squares(nullptr, 0, &none) == ENGINE_OK && none == 0.0);
}

// The update's bits do not depend on the thread count (each element is updated independently).
TEST_CASE(cpu_adamw_threads_bitwise)
{
    const std::vector<Step> plan = steps();
    std::vector<std::vector<float>> first;
    for (int threads : {1, 2, 5})
    {
        engine_set_threads(threads);
        Problem p = make_problem(false, false, false, 3, plan.size());
        Buffers b(p);
        for (size_t s = 0; s < 3; ++s)
        {
            b.load_grads(p, static_cast<int>(s) + 1);
            const EngineAdamWHyper h = engine_hyper(plan[s], static_cast<int>(s) + 1);
            CHECK(engine_adamw_step(b.tensors.data(), static_cast<int64_t>(b.tensors.size()), &h) == ENGINE_OK);
        }
        if (first.empty()) first = b.w32;
        else CHECK(b.w32 == first);
    }
    engine_set_threads(0);
}

// The floor moves the update's bytes with one add per array: w + g, m + g, v + g (and the master's rounding).
TEST_CASE(cpu_adamw_floor)
{
    for (bool bf16 : {false, true})
    {
        Problem p = make_problem(bf16, bf16, false, 5, 1);
        Buffers b(p);
        b.load_grads(p, 1);
        EngineAdamWHyper h = engine_hyper(steps()[0], 1);
        h.grad_scale = 1.0f;
        CHECK(engine_adamw_floor(b.tensors.data(), static_cast<int64_t>(b.tensors.size()), &h) == ENGINE_OK);
        for (size_t i = 0; i < p.tensors.size(); ++i)
            for (int64_t j = 0; j < p.tensors[i].numel; ++j)
            {
                const float g = static_cast<float>(p.tensors[i].grads[0][j]);
                CHECK(b.weight(p, i, j) == static_cast<double>(static_cast<float>(p.tensors[i].w[j]) + g));
                CHECK(b.m32[i][j] == g && b.v32[i][j] == g);
            }
    }
}

TEST_CASE(cpu_adamw_bad_arguments)
{
    Problem p = make_problem(false, false, false, 1, 1);
    Buffers b(p);
    const EngineAdamWHyper h = engine_hyper(steps()[0], 1);
    const int64_t n = static_cast<int64_t>(b.tensors.size());
    CHECK(engine_adamw_step(b.tensors.data(), n, nullptr) == ENGINE_BAD_ARGUMENT);
    CHECK(engine_adamw_step(nullptr, 2, &h) == ENGINE_BAD_ARGUMENT);
    CHECK(engine_adamw_step(b.tensors.data(), -1, &h) == ENGINE_BAD_ARGUMENT);
    std::vector<EngineAdamWTensor> bad = b.tensors;
    bad[3].exp_avg = nullptr;
    CHECK(engine_adamw_step(bad.data(), n, &h) == ENGINE_BAD_ARGUMENT);
    bad = b.tensors;
    bad[3].master = b.w32[3].data(); // a master copy of an f32 weight
    CHECK(engine_adamw_step(bad.data(), n, &h) == ENGINE_BAD_ARGUMENT);
    bad = b.tensors;
    bad[2].param_dtype = 9;
    CHECK(engine_adamw_step(bad.data(), n, &h) == ENGINE_BAD_ARGUMENT);
    bad = b.tensors;
    bad[2].numel = -1;
    double s = 0;
    CHECK(engine_adamw_grad_sum_squares(bad.data(), n, &s) == ENGINE_BAD_ARGUMENT);
    CHECK(engine_adamw_grad_sum_squares(b.tensors.data(), n, nullptr) == ENGINE_BAD_ARGUMENT);
    // Nothing was written by the rejected calls.
    for (size_t i = 0; i < p.tensors.size(); ++i)
        for (int64_t j = 0; j < p.tensors[i].numel; ++j) CHECK(b.w32[i][j] == static_cast<float>(p.tensors[i].w[j]));
}

int main(int argc, char** argv) { return testing_util::run_main(argc, argv); }
