// native/cuda/fused_layers.cu, unchanged, executed on the CPU through cuda_cpu_emulation.h, against the
// double-precision formulas of reference_fused.h (the same references the CPU kernels are checked against).
#include "cuda_cpu_emulation.h"

#include "fused_layers.cu"

#include "reference_fused.h"
#include "test_util.h"

#include <algorithm>
#include <string>

using namespace fused_reference;
using cuda_emulation::launch;
using reference::as_bf16;
using reference::from_bf16;

namespace {

double max_abs(const std::vector<double>& v)
{
    double m = 0;
    for (double x : v) m = std::max(m, std::fabs(x));
    return m;
}

void check_rmsnorm(bool bf16)
{
    struct Shape { int rows, n; };
    for (const Shape s : {Shape{1, 1}, Shape{3, 7}, Shape{5, 300}, Shape{9, 64}})
        for (int mode : {0, 1})
        {
            const std::string what = "mode " + std::to_string(mode) + " " + std::to_string(s.rows) + "x" + std::to_string(s.n);
            const float eps = 1e-6f;
            auto x = random_values(static_cast<size_t>(s.rows) * s.n, 3.0f, 11u + s.n, bf16);
            auto w = random_values(static_cast<size_t>(s.n), 0.5f, 7u, bf16);
            if (mode == 0)
                for (auto& v : w) v = bf16 ? from_bf16(reference::to_bf16(v + 1.0f)) : v + 1.0f;
            auto dy = random_values(x.size(), 1.0f, 5u, bf16);
            Buffer bx(x, bf16), bw(w, bf16), bdy(dy, bf16), by(x.size(), bf16), bdx(x.size(), bf16);
            std::vector<float> inv(s.rows), dw(s.n);
            const int rows_per_block = 2, chunks = (s.rows + rows_per_block - 1) / rows_per_block;
            std::vector<float> partial(static_cast<size_t>(chunks) * s.n);
            if (bf16)
            {
                launch(rmsnorm_forward_bf16, dim3(s.rows), dim3(FL_THREADS), bx.u(), bw.u(), s.n, eps, mode, by.u(), inv.data());
                launch(rmsnorm_backward_bf16, dim3(chunks), dim3(FL_THREADS), bx.u(), bw.u(), inv.data(), bdy.u(), s.rows, s.n, mode,
                       rows_per_block, bdx.u(), partial.data());
            }
            else
            {
                launch(rmsnorm_forward_f32, dim3(s.rows), dim3(FL_THREADS), bx.f.data(), bw.f.data(), s.n, eps, mode, by.f.data(), inv.data());
                launch(rmsnorm_backward_f32, dim3(chunks), dim3(FL_THREADS), bx.f.data(), bw.f.data(), inv.data(), bdy.f.data(), s.rows,
                       s.n, mode, rows_per_block, bdx.f.data(), partial.data());
            }
            launch(rmsnorm_dw_reduce, dim3(2), dim3(FL_THREADS), partial.data(), chunks, s.n, dw.data());
            std::vector<double> ry, rinv, rdx, rdw;
            rmsnorm_forward(x, w, s.rows, s.n, eps, mode == 1, bf16, ry, rinv);
            rmsnorm_backward(x, w, dy, s.rows, s.n, eps, mode == 1, rdx, rdw);
            const double rt = bf16 ? 8e-3 : 1e-5;
            for (int r = 0; r < s.rows; ++r) CHECK_CLOSE(inv[r], rinv[r], 0, 1e-5, what + " inv_rms");
            for (size_t i = 0; i < ry.size(); ++i) CHECK_CLOSE(by.at(i), ry[i], rt, rt, what + " y");
            for (size_t i = 0; i < rdx.size(); ++i) CHECK_CLOSE(bdx.at(i), rdx[i], rt * std::max(1.0, max_abs(rdx)), 0, what + " dx");
            for (size_t i = 0; i < rdw.size(); ++i) CHECK_CLOSE(dw[i], rdw[i], 0.1 * rt * std::max(1.0, max_abs(rdw)), 0, what + " dw");
        }
}

void check_rope(bool bf16)
{
    struct Shape { int tokens, heads, head_dim; };
    for (const Shape s : {Shape{1, 1, 2}, Shape{5, 3, 10}, Shape{7, 4, 64}})
        for (int kind : {0, 1, 2})
            for (int inverse : {0, 1})
            {
                const std::string what = "table " + std::to_string(kind) + (inverse ? " inverse " : " ") + std::to_string(s.tokens) + "x" +
                    std::to_string(s.heads) + "x" + std::to_string(s.head_dim);
                std::vector<float> cos, sin;
                rope_tables(s.tokens, s.head_dim, kind == 2 ? 500000.0 : 10000.0, kind, cos, sin);
                auto x = random_values(static_cast<size_t>(s.tokens) * s.heads * s.head_dim, 2.0f, 3u, bf16);
                Buffer b(x, bf16);
                if (bf16) launch(rope_bf16, dim3(s.tokens), dim3(FL_THREADS), b.u(), cos.data(), sin.data(), s.heads, s.head_dim, inverse);
                else launch(rope_f32, dim3(s.tokens), dim3(FL_THREADS), b.f.data(), cos.data(), sin.data(), s.heads, s.head_dim, inverse);
                auto expected = rope(x, cos, sin, s.tokens, s.heads, s.head_dim, inverse != 0);
                const double rt = bf16 ? 8e-3 : 1e-5;
                for (size_t i = 0; i < x.size(); ++i) CHECK_CLOSE(b.at(i), expected[i], rt * 2, rt, what);
                // Strided: the same rotation read from [batch = 2, heads, seq, head_dim] memory into contiguous
                // [batch, seq, heads, head_dim] (the backward on the attention's transposed gradient).
                const long long batch = 2, seq = s.tokens, heads = s.heads, hd = s.head_dim;
                std::vector<float> cos2, sin2;
                rope_tables(static_cast<int>(batch * seq), s.head_dim, kind == 2 ? 500000.0 : 10000.0, kind, cos2, sin2);
                auto x2 = random_values(static_cast<size_t>(batch * seq * heads * hd), 2.0f, 5u, bf16);
                std::vector<float> transposed(x2.size());
                for (long long bb = 0; bb < batch; ++bb)
                    for (long long t = 0; t < seq; ++t)
                        for (long long h = 0; h < heads; ++h)
                            for (long long d = 0; d < hd; ++d)
                                transposed[static_cast<size_t>(((bb * heads + h) * seq + t) * hd + d)] =
                                    x2[static_cast<size_t>(((bb * seq + t) * heads + h) * hd + d)];
                Buffer src(transposed, bf16), dst(std::vector<float>(x2.size(), 0.0f), bf16);
                const long long sb = heads * seq * hd, st = hd, sh = seq * hd;
                if (bf16)
                    launch(rope_strided_bf16, dim3(static_cast<unsigned>(batch * seq)), dim3(FL_THREADS), src.u(), sb, st, sh, dst.u(),
                           cos2.data(), sin2.data(), s.tokens, s.heads, s.head_dim, inverse);
                else
                    launch(rope_strided_f32, dim3(static_cast<unsigned>(batch * seq)), dim3(FL_THREADS), src.f.data(), sb, st, sh,
                           dst.f.data(), cos2.data(), sin2.data(), s.tokens, s.heads, s.head_dim, inverse);
                auto expected2 = rope(x2, cos2, sin2, static_cast<int>(batch * seq), s.heads, s.head_dim, inverse != 0);
                for (size_t i = 0; i < x2.size(); ++i) CHECK_CLOSE(dst.at(i), expected2[i], rt * 2, rt, what + " strided");
            }
}

void check_glu(int act_id, bool bf16)
{
    const bool gelu = act_id == 1;
    for (long long count : {1LL, 33LL, 1000LL})
    {
        const std::string what = std::string(gelu ? "geglu" : "swiglu") + " n " + std::to_string(count);
        auto g = random_values(static_cast<size_t>(count), 3.0f, 17u, bf16);
        const float extremes[] = {0.0f, 30.0f, -30.0f, 100.0f, -100.0f, 1e4f, -1e4f, 1e-3f};
        for (size_t i = 0; i < g.size() && i < 8; ++i) g[i * 7 % g.size()] = extremes[i];
        auto u = random_values(g.size(), 1.0f, 19u, bf16);
        auto dh = random_values(g.size(), 1.0f, 23u, bf16);
        Buffer bg(g, bf16), bu(u, bf16), bdh(dh, bf16), bh(g.size(), bf16), bdg(g.size(), bf16), bdu(g.size(), bf16);
        // Two blocks: the grid-stride loop covers the rest.
        if (bf16)
        {
            launch(glu_forward_bf16, dim3(2), dim3(FL_THREADS), act_id, bg.u(), bu.u(), count, bh.u());
            launch(glu_backward_bf16, dim3(2), dim3(FL_THREADS), act_id, bg.u(), bu.u(), bdh.u(), count, bdg.u(), bdu.u());
        }
        else
        {
            launch(glu_forward_f32, dim3(2), dim3(FL_THREADS), act_id, bg.f.data(), bu.f.data(), count, bh.f.data());
            launch(glu_backward_f32, dim3(2), dim3(FL_THREADS), act_id, bg.f.data(), bu.f.data(), bdh.f.data(), count, bdg.f.data(), bdu.f.data());
        }
        const double rt = bf16 ? 8e-3 : 1e-5, at = bf16 ? 1e-3 : 1e-6;
        for (size_t i = 0; i < g.size(); ++i)
        {
            const double a = act(gelu, g[i]), d = act_slope(gelu, g[i]);
            CHECK_CLOSE(bh.at(i), a * u[i], at, rt, what + " h");
            CHECK_CLOSE(bdg.at(i), dh[i] * u[i] * d, at, rt, what + " d_gate");
            CHECK_CLOSE(bdu.at(i), dh[i] * a, at, rt, what + " d_up");
        }
    }
}

} // namespace

TEST_CASE(cuda_rmsnorm_f32) { check_rmsnorm(false); }
TEST_CASE(cuda_rmsnorm_bf16) { check_rmsnorm(true); }
TEST_CASE(cuda_rope_f32) { check_rope(false); }
TEST_CASE(cuda_rope_bf16) { check_rope(true); }
TEST_CASE(cuda_swiglu_f32) { check_glu(0, false); }
TEST_CASE(cuda_swiglu_bf16) { check_glu(0, true); }
TEST_CASE(cuda_geglu_f32) { check_glu(1, false); }
TEST_CASE(cuda_geglu_bf16) { check_glu(1, true); }

int main(int argc, char** argv) { return testing_util::run_main(argc, argv); }
