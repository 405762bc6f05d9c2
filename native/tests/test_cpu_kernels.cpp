// The CPU kernels of libengine_native (every ISA this machine supports) against the double-precision reference.
#include "engine_native.h"
#include "reference.h"
#include "isa_util.h"
#include "test_util.h"

#include <algorithm>
#include <dirent.h>
#include <chrono>
#include <set>
#include <thread>
#include <limits>
#include <string>

using namespace reference;
using testing_util::process_threads;

using isa_util::available_isas;
using isa_util::isa_name;

namespace {


struct Outputs
{
    std::vector<float> logp, stats, mean;
    int32_t status;
    int64_t bad_row;
};

Outputs run_forward(const Case& c, bool bf16)
{
    Outputs o;
    o.logp.assign(c.rows, 0.0f);
    o.stats.assign(2 * c.rows, 0.0f);
    o.mean.assign(c.rows, 0.0f);
    std::vector<uint16_t> b = as_bf16(c.logits);
    const void* data = bf16 ? static_cast<const void*>(b.data()) : static_cast<const void*>(c.logits.data());
    o.status = engine_logprob_forward(data, bf16 ? ENGINE_DTYPE_BF16 : ENGINE_DTYPE_F32, c.labels.data(), c.rows, c.vocab,
                                      kIgnore, o.logp.data(), o.stats.data(), o.mean.data(), &o.bad_row);
    return o;
}

double max_abs(const Case& c)
{
    double m = 0;
    for (float x : c.logits)
        if (std::isfinite(x)) m = std::max(m, static_cast<double>(std::fabs(x)));
    return m;
}

void check_forward(bool bf16)
{
    for (int32_t isa : available_isas())
    {
        engine_force_isa(isa);
        uint32_t seed = 1;
        for (const Shape& s : shapes(false))
            for (Values kind : {Values::Normal, Values::Extreme, Values::NegInf})
            {
                const Case c = make_case(s.rows, s.vocab, kind, bf16, seed++);
                const Forward ref = forward(c);
                const Outputs o = run_forward(c, bf16);
                const std::string where = std::string(isa_name(isa)) + " " + c.name;
                CHECK(o.status == ENGINE_OK);
                for (int64_t r = 0; r < c.rows; ++r)
                {
                    CHECK_CLOSE(o.logp[r], ref.logp[r], 1e-5, 1e-6, where + " logp row " + std::to_string(r));
                    CHECK_CLOSE(static_cast<double>(o.stats[2 * r]) + o.stats[2 * r + 1], ref.lse[r], 1e-5, 1e-6,
                                where + " lse row " + std::to_string(r));
                    const double mean_tol = std::isinf(ref.mean[r]) ? 0.0 : 1e-5 + 1e-6 * max_abs(c);
                    CHECK_CLOSE(o.mean[r], ref.mean[r], mean_tol, 1e-6, where + " mean row " + std::to_string(r));
                    if (c.labels[r] == kIgnore) CHECK(o.logp[r] == 0.0f);
                }
            }
    }
    engine_force_isa(-1);
}

void check_backward(bool bf16)
{
    for (int32_t isa : available_isas())
    {
        engine_force_isa(isa);
        uint32_t seed = 100;
        for (const Shape& s : shapes(false))
            for (Values kind : {Values::Normal, Values::Extreme, Values::NegInf})
            {
                const Case c = make_case(s.rows, s.vocab, kind, bf16, seed++);
                const Outputs o = run_forward(c, bf16);
                const std::vector<double> ref = backward(c);
                const std::string where = std::string(isa_name(isa)) + " " + c.name;
                std::vector<float> grad(c.logits.size());
                if (bf16)
                {
                    std::vector<uint16_t> in = as_bf16(c.logits), g(c.logits.size(), 0xFFFF);
                    CHECK(engine_logprob_backward(in.data(), ENGINE_DTYPE_BF16, c.labels.data(), o.stats.data(), c.grad_out.data(),
                                                  c.rows, c.vocab, kIgnore, g.data()) == ENGINE_OK);
                    for (size_t i = 0; i < g.size(); ++i) grad[i] = from_bf16(g[i]);
                }
                else
                {
                    std::fill(grad.begin(), grad.end(), std::numeric_limits<float>::quiet_NaN());
                    CHECK(engine_logprob_backward(c.logits.data(), ENGINE_DTYPE_F32, c.labels.data(), o.stats.data(), c.grad_out.data(),
                                                  c.rows, c.vocab, kIgnore, grad.data()) == ENGINE_OK);
                }
                // bf16 gradients are fp32 values rounded to 8 significant bits: half an ulp is 2^-9 relative.
                const double rtol = bf16 ? 1.0 / 256 : 1e-5;
                for (size_t i = 0; i < grad.size(); ++i)
                    CHECK_CLOSE(grad[i], ref[i], 1e-6, rtol, where + " grad " + std::to_string(i));
            }
    }
    engine_force_isa(-1);
}

} // namespace

// The automatic choice is the best ISA the library accepts; a scalar-only build (a non-x86 target, or
// ENGINE_SCALAR_ONLY) has nothing else.
TEST_CASE(cpu_isas_match_the_build)
{
    const std::vector<int32_t> isas = available_isas();
    CHECK(!isas.empty() && isas.front() == ENGINE_ISA_SCALAR);
    CHECK(engine_cpu_isa() == isas.back());
#ifdef ENGINE_TEST_SCALAR_ONLY
    CHECK(isas.size() == 1);
    CHECK(engine_force_isa(ENGINE_ISA_AVX2) == ENGINE_UNSUPPORTED_ISA);
    CHECK(engine_force_isa(ENGINE_ISA_AVX512) == ENGINE_UNSUPPORTED_ISA);
    CHECK(engine_cpu_isa() == ENGINE_ISA_SCALAR);
#endif
    CHECK(engine_force_isa(42) == ENGINE_UNSUPPORTED_ISA);
    engine_force_isa(-1);
}

TEST_CASE(cpu_logprob_forward_f32) { check_forward(false); }
TEST_CASE(cpu_logprob_forward_bf16) { check_forward(true); }

// The forward sums exp(x - offset) against the max of a row's first logits and reads the row a second time only
// when the row's max is far above that guess. Rows that take each way, every ISA, f32 and bf16, against the
// double-precision reference (logp, max + log-sum-exp, and the max itself).
TEST_CASE(cpu_logprob_forward_offset_paths)
{
    const int64_t vocab = 5003;
    Case c;
    c.name = "offset paths";
    c.rows = 6;
    c.vocab = vocab;
    c.logits.assign(static_cast<size_t>(c.rows * vocab), 0.0f);
    c.labels = {17, 5000, 4000, 3, 2500, 4999};
    c.grad_out.assign(static_cast<size_t>(c.rows), 1.0f);
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (float& x : c.logits) x = normal(rng);
    float* row = c.logits.data();
    row[0 * vocab + 3000] = 200.0f;                                   // max far above the guess: second pass
    for (int64_t v = 0; v < 300; ++v) row[1 * vocab + v] = -INFINITY; // the first logits all -inf: second pass
    for (int64_t v = 0; v < 256; ++v) row[2 * vocab + v] = 0.0f;      // max exactly guess + 64: one pass
    row[2 * vocab + 1000] = 64.0f;
    for (int64_t v = 0; v < vocab; ++v) row[3 * vocab + v] = 0.05f * static_cast<float>(v); // rising: max at the end
    for (int64_t v = 0; v < vocab; ++v) row[4 * vocab + v] = -1e4f + normal(rng);           // all far below 0
    row[5 * vocab + 4999] = 1e4f;                                     // one huge logit, labelled
    for (bool bf16 : {false, true})
    {
        Case k = c;
        if (bf16)
            for (float& x : k.logits) x = from_bf16(to_bf16(x));
        const Forward ref = forward(k);
        for (int32_t isa : available_isas())
        {
            engine_force_isa(isa);
            const Outputs o = run_forward(k, bf16);
            CHECK(o.status == ENGINE_OK);
            for (int64_t r = 0; r < k.rows; ++r)
            {
                const std::string where = std::string(isa_name(isa)) + (bf16 ? " bf16" : " f32") + " row " + std::to_string(r);
                double row_max = -INFINITY;
                for (int64_t v = 0; v < vocab; ++v) row_max = std::max(row_max, static_cast<double>(k.logits[r * vocab + v]));
                CHECK_CLOSE(o.stats[2 * r], row_max, 0.0, 0.0, where + " max");
                CHECK_CLOSE(o.logp[r], ref.logp[r], 1e-5, 1e-6, where + " logp");
                CHECK_CLOSE(static_cast<double>(o.stats[2 * r]) + o.stats[2 * r + 1], ref.lse[r], 1e-5, 1e-6, where + " lse");
            }
        }
    }
    engine_force_isa(-1);
}
TEST_CASE(cpu_logprob_backward_f32) { check_backward(false); }
TEST_CASE(cpu_logprob_backward_bf16) { check_backward(true); }

// In-place backward (grad written over the logits) gives the same bits as out-of-place, and the thread count
// changes nothing: rows are independent. (64 x 8193: large enough to be split over the threads.)
TEST_CASE(cpu_logprob_in_place_and_threads)
{
    for (bool bf16 : {false, true})
    {
        const Case c = make_case(64, 8193, Values::Extreme, bf16, 7);
        engine_set_threads(1);
        const Outputs one = run_forward(c, bf16);
        engine_set_threads(3);
        const Outputs three = run_forward(c, bf16);
        CHECK(one.logp == three.logp);
        CHECK(one.stats == three.stats);
        CHECK(one.mean == three.mean);

        const int32_t dtype = bf16 ? ENGINE_DTYPE_BF16 : ENGINE_DTYPE_F32;
        const size_t bytes = c.logits.size() * (bf16 ? 2 : 4);
        std::vector<uint16_t> b = as_bf16(c.logits);
        std::vector<unsigned char> original(bytes), separate(bytes), in_place(bytes), other_threads(bytes);
        std::memcpy(original.data(), bf16 ? static_cast<const void*>(b.data()) : static_cast<const void*>(c.logits.data()), bytes);
        CHECK(engine_logprob_backward(original.data(), dtype, c.labels.data(), one.stats.data(), c.grad_out.data(), c.rows, c.vocab,
                                      kIgnore, separate.data()) == ENGINE_OK);
        engine_set_threads(1);
        CHECK(engine_logprob_backward(original.data(), dtype, c.labels.data(), one.stats.data(), c.grad_out.data(), c.rows, c.vocab,
                                      kIgnore, other_threads.data()) == ENGINE_OK);
        in_place = original;
        CHECK(engine_logprob_backward(in_place.data(), dtype, c.labels.data(), one.stats.data(), c.grad_out.data(), c.rows, c.vocab,
                                      kIgnore, in_place.data()) == ENGINE_OK);
        CHECK(separate == in_place);
        CHECK(separate == other_threads);
    }
    engine_set_threads(0);
}

// The kernels run on the persistent pool: between calls the worker threads stay (same thread ids), none is
// created or ended per call.
TEST_CASE(cpu_kernels_keep_their_workers)
{
    const Case c = make_case(64, 8193, Values::Normal, false, 11);
    engine_set_threads(3);
    run_forward(c, false); // the pool exists from here on
    const std::set<std::string> threads = process_threads();
    CHECK(threads.size() >= 3);
    for (int call = 0; call < 20; ++call)
    {
        const Outputs o = run_forward(c, false);
        CHECK(o.status == ENGINE_OK);
        std::vector<float> grad(c.logits.size());
        CHECK(engine_logprob_backward(c.logits.data(), ENGINE_DTYPE_F32, c.labels.data(), o.stats.data(), c.grad_out.data(),
                                      c.rows, c.vocab, kIgnore, grad.data()) == ENGINE_OK);
        CHECK(process_threads() == threads);
    }
    // Resizing ends the two workers. (A joined thread can stay listed for a moment while the kernel reaps it.)
    engine_set_threads(1);
    size_t left = process_threads().size();
    for (int wait = 0; wait < 200 && left != threads.size() - 2; ++wait)
    {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        left = process_threads().size();
    }
    CHECK(left == threads.size() - 2);
    engine_set_threads(0);
}

TEST_CASE(cpu_logprob_bad_label)
{
    Case c = make_case(5, 10, Values::Normal, false, 3);
    c.labels[3] = 10; // == vocab
    Outputs o = run_forward(c, false);
    CHECK(o.status == ENGINE_LABEL_OUT_OF_RANGE);
    CHECK(o.bad_row == 3);
    c.labels[3] = -1;
    c.labels[1] = -7;
    o = run_forward(c, false);
    CHECK(o.status == ENGINE_LABEL_OUT_OF_RANGE);
    CHECK(o.bad_row == 1);
    float dummy = 0;
    int64_t bad = 0;
    CHECK(engine_logprob_forward(c.logits.data(), 7, c.labels.data(), 1, 10, kIgnore, &dummy, &dummy, &dummy, &bad) == ENGINE_BAD_ARGUMENT);
}

TEST_CASE(cpu_floor_exp_sum)
{
    for (int32_t isa : available_isas())
    {
        engine_force_isa(isa);
        for (bool bf16 : {false, true})
        {
            const Case c = make_case(4, 4099, Values::Normal, bf16, 11);
            std::vector<float> out(c.rows);
            std::vector<uint16_t> b = as_bf16(c.logits);
            CHECK(engine_floor_exp_sum(bf16 ? static_cast<const void*>(b.data()) : c.logits.data(), bf16 ? ENGINE_DTYPE_BF16 : ENGINE_DTYPE_F32,
                                       c.rows, c.vocab, out.data()) == ENGINE_OK);
            for (int64_t r = 0; r < c.rows; ++r)
            {
                double s = 0;
                for (int64_t v = 0; v < c.vocab; ++v) s += std::exp(static_cast<double>(c.logits[r * c.vocab + v]));
                CHECK_CLOSE(out[r], s, 0.0, 1e-5, std::string(isa_name(isa)) + " floor row " + std::to_string(r));
            }
        }
    }
    engine_force_isa(-1);
}

// Worked by hand: policy sums (-3, -0.75), reference sums (-3.5, -2), differences (0.5, 1.25), mean 0.875.
TEST_CASE(cpu_kl_z0_hand_worked)
{
    const float policy[] = {-1, -2, -3, -0.5f, -0.25f, -4};
    const float ref[] = {-1.5f, -2, -2, -1, -1, -1};
    const uint8_t mask[] = {1, 1, 0, 1, 1, 0};
    float ps[2], rs[2];
    double out[2];
    CHECK(engine_kl_z0(policy, ref, nullptr, mask, 2, 3, ps, rs, out) == ENGINE_OK);
    CHECK(ps[0] == -3.0f && ps[1] == -0.75f);
    CHECK(rs[0] == -3.5f && rs[1] == -2.0f);
    CHECK(out[0] == 0.875 && out[1] == 0.875);

    // Negative mean is clamped: with the last token of row 2 included, the differences are (0.5, -1.75).
    const uint8_t mask2[] = {1, 1, 0, 1, 1, 1};
    CHECK(engine_kl_z0(policy, ref, nullptr, mask2, 2, 3, ps, rs, out) == ENGINE_OK);
    CHECK(ps[1] == -4.75f && rs[1] == -3.0f);
    CHECK(out[0] == -0.625 && out[1] == 0.0);

    // Reference given as per-sequence sums.
    const float ref_sums[] = {-3.5f, -2.0f};
    CHECK(engine_kl_z0(policy, nullptr, ref_sums, mask, 2, 3, ps, rs, out) == ENGINE_OK);
    CHECK(out[0] == 0.875 && rs[0] == -3.5f);
    CHECK(engine_kl_z0(policy, nullptr, nullptr, mask, 2, 3, ps, rs, out) == ENGINE_BAD_ARGUMENT);
}

// A NaN estimate must stay NaN after the clamp (max(0, NaN) written as `mean > 0 ? mean : 0` gave 0), so the
// trainer's non-finite guard sees it.
TEST_CASE(cpu_kl_z0_nan_is_not_clamped_to_zero)
{
    const float policy[] = {-1, std::numeric_limits<float>::quiet_NaN(), -3, -0.5f, -0.25f, -4};
    const float ref[] = {-1.5f, -2, -2, -1, -1, -1};
    const uint8_t mask[] = {1, 1, 0, 1, 1, 0};
    float ps[2], rs[2];
    double out[2];
    CHECK(engine_kl_z0(policy, ref, nullptr, mask, 2, 3, ps, rs, out) == ENGINE_OK);
    CHECK(std::isnan(out[0]) && std::isnan(out[1]));
    // A NaN outside the mask is never read.
    const uint8_t mask_skips_nan[] = {1, 0, 0, 1, 1, 0};
    CHECK(engine_kl_z0(policy, ref, nullptr, mask_skips_nan, 2, 3, ps, rs, out) == ENGINE_OK);
    CHECK(std::isfinite(out[0]) && std::isfinite(out[1]));
}

TEST_CASE(cpu_kl_z0_deterministic)
{
    std::mt19937 rng(5);
    std::normal_distribution<float> n(-2.0f, 1.5f);
    const int64_t B = 16, T = 301;
    std::vector<float> p(B * T), r(B * T);
    std::vector<uint8_t> m(B * T);
    for (int64_t i = 0; i < B * T; ++i)
    {
        p[i] = n(rng);
        r[i] = n(rng);
        m[i] = (i % T) > 20 && (i % 7) != 0;
    }
    std::vector<float> ps1(B), rs1(B), ps2(B), rs2(B);
    double out1[2], out2[2];
    CHECK(engine_kl_z0(p.data(), r.data(), nullptr, m.data(), B, T, ps1.data(), rs1.data(), out1) == ENGINE_OK);
    CHECK(engine_kl_z0(p.data(), r.data(), nullptr, m.data(), B, T, ps2.data(), rs2.data(), out2) == ENGINE_OK);
    CHECK(std::memcmp(out1, out2, sizeof out1) == 0);
    CHECK(ps1 == ps2 && rs1 == rs2);
    double total = 0;
    for (int64_t b = 0; b < B; ++b)
    {
        double a = 0, c = 0;
        for (int64_t t = 0; t < T; ++t)
            if (m[b * T + t]) { a += p[b * T + t]; c += r[b * T + t]; }
        CHECK_CLOSE(ps1[b], a, 0.0, 1e-7, "policy sum");
        total += a - c;
    }
    CHECK_CLOSE(out1[0], total / B, 1e-12, 1e-12, "mean");
    CHECK(out1[1] == std::max(0.0, out1[0]));
}

int main(int argc, char** argv) { return testing_util::run_main(argc, argv); }
