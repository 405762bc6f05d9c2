// The fused RMSNorm, RoPE and SwiGLU/GeGLU kernels of libengine_native (every ISA this machine has) against the
// double-precision formulas of reference_fused.h, in f32 and bf16.
#include "engine_native.h"
#include "reference_fused.h"
#include "isa_util.h"
#include "test_util.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

using namespace fused_reference;
using reference::as_bf16;
using reference::from_bf16;

using isa_util::available_isas;
using isa_util::isa_name;

namespace {

int32_t dtype_of(bool bf16) { return bf16 ? ENGINE_DTYPE_BF16 : ENGINE_DTYPE_F32; }

// f32: 1e-5 relative to the row's scale; bf16: one rounding of the output (2^-8) plus the fp32 arithmetic.
double tolerance(bool bf16, double scale) { return (bf16 ? 8e-3 : 1e-5) * std::max(1.0, scale); }

double max_abs(const std::vector<double>& v)
{
    double m = 0;
    for (double x : v) m = std::max(m, std::fabs(x));
    return m;
}

struct NormShape { int64_t rows, n; };
const NormShape kNormShapes[] = {{1, 1}, {3, 7}, {5, 16}, {4, 33}, {37, 64}, {9, 257}, {16, 512}, {3, 1000}};

void check_rmsnorm(bool bf16)
{
    for (int32_t isa : available_isas())
    {
        engine_force_isa(isa);
        for (const auto& s : kNormShapes)
            for (int mode : {ENGINE_NORM_WEIGHT, ENGINE_NORM_UNIT_OFFSET})
            {
                const std::string what = std::string(isa == 2 ? "avx512" : isa == 1 ? "avx2" : "scalar") + " mode " +
                    std::to_string(mode) + " " + std::to_string(s.rows) + "x" + std::to_string(s.n);
                const double eps = 1e-6;
                auto x = random_values(static_cast<size_t>(s.rows * s.n), 3.0f, 11u + static_cast<uint32_t>(s.n), bf16);
                auto w = random_values(static_cast<size_t>(s.n), 0.5f, 7u, bf16);
                if (mode == ENGINE_NORM_WEIGHT)
                    for (auto& v : w) v = bf16 ? from_bf16(reference::to_bf16(v + 1.0f)) : v + 1.0f;
                auto dy = random_values(x.size(), 1.0f, 5u, bf16);
                Buffer bx(x, bf16), bw(w, bf16), bdy(dy, bf16), by(x.size(), bf16), bdx(x.size(), bf16);
                std::vector<float> inv(static_cast<size_t>(s.rows));
                Buffer dw(static_cast<size_t>(s.n), bf16);
                CHECK(engine_rmsnorm_forward(bx.data(), bw.data(), dtype_of(bf16), s.rows, s.n, static_cast<float>(eps), mode,
                                             by.data(), inv.data()) == ENGINE_OK);
                CHECK(engine_rmsnorm_backward(bx.data(), bw.data(), inv.data(), bdy.data(), dtype_of(bf16), s.rows, s.n, mode,
                                              bdx.data(), dw.data()) == ENGINE_OK);
                std::vector<double> ry, rinv, rdx, rdw;
                rmsnorm_forward(x, w, s.rows, s.n, eps, mode == ENGINE_NORM_UNIT_OFFSET, bf16, ry, rinv);
                rmsnorm_backward(x, w, dy, s.rows, s.n, eps, mode == ENGINE_NORM_UNIT_OFFSET, rdx, rdw);
                for (int64_t r = 0; r < s.rows; ++r) CHECK_CLOSE(inv[r], rinv[r], 0, 1e-5, what + " inv_rms");
                const double ty = tolerance(bf16, 1.0), tdx = tolerance(bf16, max_abs(rdx)), tdw = tolerance(bf16, max_abs(rdw));
                for (size_t i = 0; i < ry.size(); ++i) CHECK_CLOSE(by.at(i), ry[i], ty, bf16 ? 8e-3 : 1e-5, what + " y");
                for (size_t i = 0; i < rdx.size(); ++i) CHECK_CLOSE(bdx.at(i), rdx[i], tdx, 0, what + " dx");
                // dw comes in the dtype: a bf16 one is also rounded once (half an ulp: up to 2^-8 relative).
                for (size_t i = 0; i < rdw.size(); ++i)
                    CHECK_CLOSE(dw.at(i), rdw[i], tdw * 0.1 + (bf16 ? std::fabs(rdw[i]) / 256 : 0.0), 0, what + " dw");
            }
    }
    engine_force_isa(-1);
}

void check_rope(bool bf16)
{
    struct Shape { int64_t tokens, heads, head_dim; };
    for (int32_t isa : available_isas())
    {
        engine_force_isa(isa);
        for (const Shape& s : {Shape{1, 1, 2}, Shape{5, 3, 10}, Shape{17, 4, 64}, Shape{33, 2, 72}, Shape{9, 8, 128}})
            for (int kind : {0, 1, 2})
            {
                const std::string what = "isa " + std::to_string(isa) + " table " + std::to_string(kind) + " " +
                    std::to_string(s.tokens) + "x" + std::to_string(s.heads) + "x" + std::to_string(s.head_dim);
                std::vector<float> cos, sin;
                rope_tables(s.tokens, s.head_dim, kind == 2 ? 500000.0 : 10000.0, kind, cos, sin);
                auto x = random_values(static_cast<size_t>(s.tokens * s.heads * s.head_dim), 2.0f, 3u, bf16);
                for (int inverse : {0, 1})
                {
                    Buffer b(x, bf16);
                    CHECK(engine_rope(b.data(), dtype_of(bf16), cos.data(), sin.data(), s.tokens, s.heads, s.head_dim, inverse) == ENGINE_OK);
                    auto expected = rope(x, cos, sin, s.tokens, s.heads, s.head_dim, inverse != 0);
                    for (size_t i = 0; i < x.size(); ++i)
                        CHECK_CLOSE(b.at(i), expected[i], tolerance(bf16, 2.0), bf16 ? 8e-3 : 1e-5, what + (inverse ? " inverse" : ""));
                }
                // From a strided source ([batch, heads, seq, head_dim] memory, read as [batch, seq, heads, head_dim]:
                // the gradient the backward receives through the attention's transpose) into a contiguous output.
                {
                    const int64_t batch = 2, seq = s.tokens, hd = s.head_dim, heads = s.heads;
                    std::vector<float> cos2, sin2;
                    rope_tables(batch * seq, hd, kind == 2 ? 500000.0 : 10000.0, kind, cos2, sin2);
                    auto x2 = random_values(static_cast<size_t>(batch * seq * heads * hd), 2.0f, 5u, bf16);
                    std::vector<float> transposed(x2.size());
                    for (int64_t b = 0; b < batch; ++b)
                        for (int64_t t = 0; t < seq; ++t)
                            for (int64_t h = 0; h < heads; ++h)
                                for (int64_t d = 0; d < hd; ++d)
                                    transposed[static_cast<size_t>(((b * heads + h) * seq + t) * hd + d)] =
                                        x2[static_cast<size_t>(((b * seq + t) * heads + h) * hd + d)];
                    for (int inverse : {0, 1})
                    {
                        Buffer src(transposed, bf16), dst(x2.size(), bf16);
                        CHECK(engine_rope_strided(src.data(), heads * seq * hd, hd, seq * hd, dst.data(), dtype_of(bf16), cos2.data(),
                                                  sin2.data(), batch, seq, heads, hd, inverse) == ENGINE_OK);
                        auto expected = rope(x2, cos2, sin2, batch * seq, heads, hd, inverse != 0);
                        for (size_t i = 0; i < x2.size(); ++i)
                            CHECK_CLOSE(dst.at(i), expected[i], tolerance(bf16, 2.0), bf16 ? 8e-3 : 1e-5,
                                        what + " strided" + (inverse ? " inverse" : ""));
                    }
                }
                // Backward = the transposed rotation: it undoes the forward (exactly so in f32 up to rounding).
                if (!bf16)
                {
                    Buffer b(x, false);
                    engine_rope(b.data(), ENGINE_DTYPE_F32, cos.data(), sin.data(), s.tokens, s.heads, s.head_dim, 0);
                    engine_rope(b.data(), ENGINE_DTYPE_F32, cos.data(), sin.data(), s.tokens, s.heads, s.head_dim, 1);
                    for (size_t i = 0; i < x.size(); ++i) CHECK_CLOSE(b.at(i), x[i], 1e-5, 1e-5, what + " round trip");
                }
            }
    }
    engine_force_isa(-1);
}

void check_glu(bool gelu, bool bf16)
{
    const int32_t act_id = gelu ? ENGINE_GLU_GEGLU : ENGINE_GLU_SWIGLU;
    for (int32_t isa : available_isas())
    {
        engine_force_isa(isa);
        for (int64_t count : {int64_t{1}, int64_t{15}, int64_t{33}, int64_t{1000}, int64_t{70001}})
        {
            const std::string what = std::string(gelu ? "geglu" : "swiglu") + " isa " + std::to_string(isa) + " n " + std::to_string(count);
            auto g = random_values(static_cast<size_t>(count), 3.0f, 17u, bf16);
            // Extremes: saturated activations on both sides, and exact zero.
            const float extremes[] = {0.0f, 30.0f, -30.0f, 100.0f, -100.0f, 1e4f, -1e4f, 1e-3f};
            for (size_t i = 0; i < g.size() && i < 8; ++i) g[i * 7 % g.size()] = extremes[i];
            auto u = random_values(g.size(), 1.0f, 19u, bf16);
            auto dh = random_values(g.size(), 1.0f, 23u, bf16);
            Buffer bg(g, bf16), bu(u, bf16), bdh(dh, bf16), bh(g.size(), bf16), bdg(g.size(), bf16), bdu(g.size(), bf16);
            CHECK(engine_glu_forward(act_id, bg.data(), bu.data(), dtype_of(bf16), count, bh.data()) == ENGINE_OK);
            CHECK(engine_glu_backward(act_id, bg.data(), bu.data(), bdh.data(), dtype_of(bf16), count, bdg.data(), bdu.data()) == ENGINE_OK);
            const double rt = bf16 ? 8e-3 : 1e-5, at = bf16 ? 1e-3 : 1e-6;
            for (size_t i = 0; i < g.size(); ++i)
            {
                const double a = act(gelu, g[i]), d = act_slope(gelu, g[i]);
                CHECK_CLOSE(bh.at(i), a * u[i], at, rt, what + " h");
                CHECK_CLOSE(bdg.at(i), dh[i] * u[i] * d, at, rt, what + " d_gate");
                CHECK_CLOSE(bdu.at(i), dh[i] * a, at, rt, what + " d_up");
            }
            // In place (d_gate over gate, d_up over up) gives the same bits.
            Buffer ig(g, bf16), iu(u, bf16);
            engine_glu_backward(act_id, ig.data(), iu.data(), bdh.data(), dtype_of(bf16), count, ig.data(), iu.data());
            bool same = true;
            for (size_t i = 0; i < g.size(); ++i) same &= ig.at(i) == bdg.at(i) && iu.at(i) == bdu.at(i);
            CHECK(same);
        }
    }
    engine_force_isa(-1);
}

} // namespace

TEST_CASE(fused_rmsnorm_f32) { check_rmsnorm(false); }
TEST_CASE(fused_rmsnorm_bf16) { check_rmsnorm(true); }
TEST_CASE(fused_rope_f32) { check_rope(false); }
TEST_CASE(fused_rope_bf16) { check_rope(true); }
TEST_CASE(fused_swiglu_f32) { check_glu(false, false); }
TEST_CASE(fused_swiglu_bf16) { check_glu(false, true); }
TEST_CASE(fused_geglu_f32) { check_glu(true, false); }
TEST_CASE(fused_geglu_bf16) { check_glu(true, true); }

// The reference's derivative against a central difference of its own value (so act_slope is not a second copy
// of the kernel's formula taken on trust).
// Large outputs are written with streaming stores when 64-byte aligned (dispatch.cpp, kStreamMinBytes = 1 MiB); the
// same call into a buffer one element off that alignment takes the plain stores. Both must give the same bits, for
// every kernel, ISA and dtype (the small cases above check the plain path against the formulas).
TEST_CASE(fused_streaming_stores_match_plain)
{
    struct Aligned
    {
        std::vector<uint8_t> storage;
        uint8_t* base;
        Aligned(size_t bytes, size_t offset) : storage(bytes + 128 + offset)
        {
            base = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(storage.data()) + 63) & ~uintptr_t{63}) + offset;
        }
    };
    for (int32_t isa : available_isas())
    {
        engine_force_isa(isa);
        for (bool bf16 : {false, true})
        {
            const size_t e = bf16 ? 2 : 4;
            // Inputs: any bits of a sane range (the values do not matter, only that both paths agree).
            const int64_t count = 600001; // >= 1 MiB of output in either dtype, and an odd tail
            auto src = random_values(static_cast<size_t>(count), 2.0f, 29u, bf16);
            Buffer g(src, bf16), u(random_values(src.size(), 1.0f, 31u, bf16), bf16), dh(random_values(src.size(), 1.0f, 37u, bf16), bf16);
            for (int act : {ENGINE_GLU_SWIGLU, ENGINE_GLU_GEGLU})
            {
                Aligned a1(count * e, 0), a2(count * e, 0), a3(count * e, 0), p1(count * e, e), p2(count * e, e), p3(count * e, e);
                CHECK(engine_glu_forward(act, g.data(), u.data(), dtype_of(bf16), count, a1.base) == ENGINE_OK);
                CHECK(engine_glu_forward(act, g.data(), u.data(), dtype_of(bf16), count, p1.base) == ENGINE_OK);
                CHECK(engine_glu_backward(act, g.data(), u.data(), dh.data(), dtype_of(bf16), count, a2.base, a3.base) == ENGINE_OK);
                CHECK(engine_glu_backward(act, g.data(), u.data(), dh.data(), dtype_of(bf16), count, p2.base, p3.base) == ENGINE_OK);
                CHECK(std::memcmp(a1.base, p1.base, count * e) == 0);
                CHECK(std::memcmp(a2.base, p2.base, count * e) == 0);
                CHECK(std::memcmp(a3.base, p3.base, count * e) == 0);
            }
            // RMSNorm: 1200 rows of 512.
            const int64_t rows = 1200, n = 512;
            Buffer x(random_values(static_cast<size_t>(rows * n), 2.0f, 41u, bf16), bf16), w(random_values(n, 1.0f, 43u, bf16), bf16);
            Buffer dy(random_values(static_cast<size_t>(rows * n), 1.0f, 47u, bf16), bf16);
            Aligned ya(rows * n * e, 0), yp(rows * n * e, e), dxa(rows * n * e, 0), dxp(rows * n * e, e);
            std::vector<float> inv(rows), inv2(rows);
            Buffer dwa(n, bf16), dwp(n, bf16);
            CHECK(engine_rmsnorm_forward(x.data(), w.data(), dtype_of(bf16), rows, n, 1e-6f, ENGINE_NORM_WEIGHT, ya.base, inv.data()) == ENGINE_OK);
            CHECK(engine_rmsnorm_forward(x.data(), w.data(), dtype_of(bf16), rows, n, 1e-6f, ENGINE_NORM_WEIGHT, yp.base, inv2.data()) == ENGINE_OK);
            CHECK(engine_rmsnorm_backward(x.data(), w.data(), inv.data(), dy.data(), dtype_of(bf16), rows, n, ENGINE_NORM_WEIGHT, dxa.base,
                                          dwa.data()) == ENGINE_OK);
            CHECK(engine_rmsnorm_backward(x.data(), w.data(), inv.data(), dy.data(), dtype_of(bf16), rows, n, ENGINE_NORM_WEIGHT, dxp.base,
                                          dwp.data()) == ENGINE_OK);
            CHECK(std::memcmp(ya.base, yp.base, rows * n * e) == 0);
            CHECK(std::memcmp(dxa.base, dxp.base, rows * n * e) == 0);
            CHECK(std::memcmp(dwa.data(), dwp.data(), n * e) == 0);
            // RoPE from a transposed source into a fresh output: 2 x 600 tokens x 8 heads x 64.
            const int64_t batch = 2, seq = 600, heads = 8, hd = 64;
            std::vector<float> cos, sin;
            rope_tables(batch * seq, hd, 10000.0, 0, cos, sin);
            Buffer q(random_values(static_cast<size_t>(batch * seq * heads * hd), 2.0f, 53u, bf16), bf16);
            const size_t bytes = static_cast<size_t>(batch * seq * heads * hd) * e;
            Aligned ra(bytes, 0), rp(bytes, e);
            for (Aligned* r : {&ra, &rp})
                CHECK(engine_rope_strided(q.data(), heads * seq * hd, hd, seq * hd, r->base, dtype_of(bf16), cos.data(), sin.data(), batch,
                                          seq, heads, hd, 1) == ENGINE_OK);
            CHECK(std::memcmp(ra.base, rp.base, bytes) == 0);
        }
    }
    engine_force_isa(-1);
}

// Every path rounds its bf16 outputs to nearest even, as torch does, whichever conversion it uses (plain integer ops,
// or AVX512-BF16's instruction: simd_avx512bf16.h). silu(24) is exactly 24 in fp32, so h = 24 · u is exact before
// its one rounding; 24 · u has up to 10 significant bits, so the 8 kept include ties (to even) and carries.
TEST_CASE(fused_bf16_outputs_round_to_nearest_even)
{
    const int64_t count = 4099; // vector pairs, single vectors and a scalar tail
    std::vector<float> g(static_cast<size_t>(count), 24.0f), u = random_values(g.size(), 3.0f, 59u, true);
    for (size_t i = 0; i < u.size(); i += 7) u[i] = -u[i];
    Buffer bg(g, true), bu(u, true), bh(g.size(), true);
    for (int32_t isa : available_isas())
    {
        engine_force_isa(isa);
        CHECK(engine_glu_forward(ENGINE_GLU_SWIGLU, bg.data(), bu.data(), ENGINE_DTYPE_BF16, count, bh.data()) == ENGINE_OK);
        int64_t wrong = 0;
        for (size_t i = 0; i < g.size(); ++i)
            wrong += reference::to_bf16(24.0f * u[i]) != reinterpret_cast<const uint16_t*>(bh.data())[i];
        CHECK(wrong == 0);
    }
    engine_force_isa(-1);
}

// The bf16 weight gradient is the fp32 sum rounded once: the same inputs as fp32 values give the fp32 sum (each
// element's sum runs over the same rows in the same order on both paths). A NaN in the gradient stays a NaN.
TEST_CASE(fused_rmsnorm_bf16_weight_gradient_rounds_the_fp32_sum)
{
    const int64_t rows = 70, n = 96;
    auto x = random_values(static_cast<size_t>(rows * n), 2.0f, 61u, true);
    auto w = random_values(static_cast<size_t>(n), 1.0f, 67u, true);
    auto dy = random_values(x.size(), 1.0f, 71u, true);
    dy[5 * n + 3] = std::numeric_limits<float>::quiet_NaN(); // row 5, column 3
    for (int32_t isa : available_isas())
    {
        engine_force_isa(isa);
        Buffer bx(x, true), bw(w, true), bdy(dy, true), by(x.size(), true), bdx(x.size(), true), bdw(static_cast<size_t>(n), true);
        Buffer fx(x, false), fw(w, false), fdy(dy, false), fy(x.size(), false), fdx(x.size(), false), fdw(static_cast<size_t>(n), false);
        std::vector<float> inv(rows), finv(rows);
        CHECK(engine_rmsnorm_forward(bx.data(), bw.data(), ENGINE_DTYPE_BF16, rows, n, 1e-6f, ENGINE_NORM_WEIGHT, by.data(), inv.data()) == ENGINE_OK);
        CHECK(engine_rmsnorm_forward(fx.data(), fw.data(), ENGINE_DTYPE_F32, rows, n, 1e-6f, ENGINE_NORM_WEIGHT, fy.data(), finv.data()) == ENGINE_OK);
        CHECK(engine_rmsnorm_backward(bx.data(), bw.data(), inv.data(), bdy.data(), ENGINE_DTYPE_BF16, rows, n, ENGINE_NORM_WEIGHT, bdx.data(),
                                      bdw.data()) == ENGINE_OK);
        CHECK(engine_rmsnorm_backward(fx.data(), fw.data(), finv.data(), fdy.data(), ENGINE_DTYPE_F32, rows, n, ENGINE_NORM_WEIGHT, fdx.data(),
                                      fdw.data()) == ENGINE_OK);
        int64_t wrong = 0;
        for (int64_t j = 0; j < n; ++j)
        {
            const uint16_t got = bdw.b[static_cast<size_t>(j)];
            if (j == 3)
                wrong += !std::isnan(reference::from_bf16(got));
            else
                wrong += got != reference::to_bf16(fdw.f[static_cast<size_t>(j)]);
        }
        CHECK(wrong == 0);
    }
    engine_force_isa(-1);
}

TEST_CASE(fused_reference_slopes)
{
    for (bool gelu : {false, true})
        for (double g : {-6.0, -2.5, -1.0, -0.1, 0.0, 0.3, 1.0, 2.0, 5.0})
        {
            const double h = 1e-5;
            CHECK_CLOSE(act_slope(gelu, g), (act(gelu, g + h) - act(gelu, g - h)) / (2 * h), 1e-8, 1e-7, gelu ? "gelu slope" : "silu slope");
        }
}

// Any thread count gives the same bits (the weight gradient is summed in fixed chunks).
TEST_CASE(fused_threads_do_not_change_bits)
{
    const int64_t rows = 301, n = 96;
    auto x = random_values(static_cast<size_t>(rows * n), 2.0f, 1u, false);
    auto w = random_values(static_cast<size_t>(n), 1.0f, 2u, false);
    auto dy = random_values(x.size(), 1.0f, 3u, false);
    std::vector<std::vector<float>> dws;
    std::vector<std::vector<float>> dxs;
    for (int threads : {1, 2, 3, 5})
    {
        engine_set_threads(threads);
        std::vector<float> inv(rows), dw(n), dx(x.size()), y(x.size());
        engine_rmsnorm_forward(x.data(), w.data(), ENGINE_DTYPE_F32, rows, n, 1e-5f, ENGINE_NORM_WEIGHT, y.data(), inv.data());
        engine_rmsnorm_backward(x.data(), w.data(), inv.data(), dy.data(), ENGINE_DTYPE_F32, rows, n, ENGINE_NORM_WEIGHT, dx.data(), dw.data());
        dws.push_back(dw);
        dxs.push_back(dx);
    }
    engine_set_threads(0);
    for (size_t i = 1; i < dws.size(); ++i)
    {
        CHECK(dws[i] == dws[0]);
        CHECK(dxs[i] == dxs[0]);
    }
}

TEST_CASE(fused_bad_arguments)
{
    float x[4] = {1, 2, 3, 4}, w[2] = {1, 1}, y[4], inv[2];
    CHECK(engine_rmsnorm_forward(x, w, ENGINE_DTYPE_F32, 2, 2, 1e-6f, 7, y, inv) == ENGINE_BAD_ARGUMENT);
    CHECK(engine_rmsnorm_forward(x, w, 5, 2, 2, 1e-6f, ENGINE_NORM_WEIGHT, y, inv) == ENGINE_BAD_ARGUMENT);
    CHECK(engine_rope(x, ENGINE_DTYPE_F32, w, w, 1, 1, 3, 0) == ENGINE_BAD_ARGUMENT); // odd head_dim
    CHECK(engine_glu_forward(9, x, x, ENGINE_DTYPE_F32, 4, y) == ENGINE_BAD_ARGUMENT);
    CHECK(engine_glu_forward(ENGINE_GLU_SWIGLU, nullptr, x, ENGINE_DTYPE_F32, 4, y) == ENGINE_BAD_ARGUMENT);
}

int main(int argc, char** argv) { return testing_util::run_main(argc, argv); }
