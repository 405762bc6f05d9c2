// native/cuda/qmatmul.cu, unchanged, executed on the CPU through cuda_cpu_emulation.h and checked against the
// plain reference in quant_reference.h (weights quantized by the library, whose dequantized bits the CUDA
// kernel must reproduce exactly).
#include "cuda_cpu_emulation.h"

#include "qmatmul.cu"

#include "engine_native.h"
#include "quant_reference.h"
#include "test_util.h"

#include <algorithm>
#include <cstdio>

using cuda_emulation::launch;
using reference::from_bf16;
using reference::to_bf16;

namespace {

const int32_t kFormats[] = {ENGINE_QUANT_NF4, ENGINE_QUANT_NF4_DQ, ENGINE_QUANT_INT8};

// Launches the kernel for a [m, reduce] A (f32, or bf16 bits) and returns C as floats.
template <class T>
std::vector<float> run(const qref::Quantized& z, const std::vector<T>& a, int64_t m, bool input_gradient)
{
    const int64_t out = input_gradient ? z.q.cols : z.q.rows;
    std::vector<T> c(m * out, T{});
    std::vector<float> code(16);
    engine_quant_nf4_code(code.data());
    const dim3 grid(static_cast<unsigned>((out + QMM_TILE - 1) / QMM_TILE), static_cast<unsigned>((m + QMM_TILE - 1) / QMM_TILE));
    auto kernel = sizeof(T) == 4 ? (input_gradient ? reinterpret_cast<void*>(qmatmul_backward_f32) : reinterpret_cast<void*>(qmatmul_forward_f32))
                                 : (input_gradient ? reinterpret_cast<void*>(qmatmul_backward_bf16) : reinterpret_cast<void*>(qmatmul_forward_bf16));
    using Kernel = void (*)(const T*, int, int, int, int, const unsigned char*, const float*, const unsigned char*, const float*,
                            const float*, float, const float*, T*);
    launch(reinterpret_cast<Kernel>(kernel), grid, dim3(QMM_THREADS), a.data(), static_cast<int>(m), static_cast<int>(z.q.format),
           static_cast<int>(z.q.rows), static_cast<int>(z.q.cols), static_cast<const unsigned char*>(z.q.data),
           static_cast<const float*>(z.q.absmax), static_cast<const unsigned char*>(z.q.qabsmax), static_cast<const float*>(z.q.absmax2),
           static_cast<const float*>(z.q.code2), z.q.offset, static_cast<const float*>(code.data()), c.data());
    std::vector<float> result(c.size());
    for (size_t i = 0; i < c.size(); ++i)
    {
        if constexpr (sizeof(T) == 4) result[i] = c[i];
        else result[i] = from_bf16(c[i]);
    }
    return result;
}

void check_all(bool input_gradient, bool bf16)
{
    for (int32_t format : kFormats)
    {
        double worst = 0.0;
        // The small shapes, plus one long reduction each way (each 16-deep slice is two barriers of 256 threads).
        std::vector<qref::Shape> shapes = qref::shapes(false);
        shapes.push_back({3, 24, 1000});
        shapes.push_back({3, 1000, 24});
        for (const qref::Shape& s : shapes)
        {
            const std::vector<float> w = qref::weights(s.rows, s.cols, static_cast<uint32_t>(s.rows * 131 + s.cols));
            const qref::Quantized z = qref::quantize(w, s.rows, s.cols, format);
            CHECK(z.q.format == format);
            const int64_t red = input_gradient ? s.rows : s.cols;
            const std::vector<float> a = qref::activations(s.m * red, static_cast<uint32_t>(s.m + 7 * red), bf16);
            const std::vector<double> ref = qref::matmul(z, a, s.m, input_gradient, bf16);
            std::vector<float> c;
            if (bf16)
            {
                std::vector<uint16_t> a16(a.size());
                for (size_t i = 0; i < a.size(); ++i) a16[i] = to_bf16(a[i]);
                c = run(z, a16, s.m, input_gradient);
            }
            else
                c = run(z, a, s.m, input_gradient);
            const std::string what = std::string(qref::format_name(format)) + " " + std::to_string(s.m) + "x" + std::to_string(s.rows) +
                                     "x" + std::to_string(s.cols);
            for (size_t i = 0; i < ref.size(); ++i)
            {
                if (bf16) CHECK_CLOSE(c[i], ref[i], 1e-5, 1.0 / 256.0, what);
                else
                {
                    CHECK_CLOSE(c[i], ref[i], 1e-5, 1e-5, what);
                    worst = std::max(worst, std::fabs(c[i] - ref[i]));
                }
            }
        }
        if (!bf16)
            std::printf("emulated %s f32 %s: max |diff| %.3g\n", input_gradient ? "input-gradient" : "forward", qref::format_name(format), worst);
    }
}

} // namespace

// x = I: y[i, n] = W[n, i] exactly (every other product is an exact 0), so the kernel's dequantized weights
// must equal the reference's values exactly (bf16: the weight rounded to bf16).
TEST_CASE(cuda_qmatmul_weights_bit_exact)
{
    const int64_t rows = 33, cols = 70;
    for (int32_t format : kFormats)
    {
        const std::vector<float> w = qref::weights(rows, cols, 11);
        const qref::Quantized z = qref::quantize(w, rows, cols, format);
        std::vector<float> eye(cols * cols, 0.0f);
        std::vector<uint16_t> eye16(cols * cols, 0);
        for (int64_t i = 0; i < cols; ++i) eye[i * cols + i] = 1.0f, eye16[i * cols + i] = to_bf16(1.0f);
        const std::vector<float> y = run(z, eye, cols, false);
        const std::vector<float> y16 = run(z, eye16, cols, false);
        bool same = true;
        for (int64_t i = 0; i < cols; ++i)
            for (int64_t n = 0; n < rows; ++n)
            {
                const float v = qref::value(z, n, i);
                // == rather than the bits: an all-zero NF4 block dequantizes to -0, and 0 + (-0) is +0.
                same &= y[i * rows + n] == v && y16[i * rows + n] == from_bf16(to_bf16(v));
            }
        CHECK(same);
    }
}

TEST_CASE(cuda_qmatmul_forward_f32) { check_all(false, false); }
TEST_CASE(cuda_qmatmul_forward_bf16) { check_all(false, true); }
TEST_CASE(cuda_qmatmul_backward_f32) { check_all(true, false); }
TEST_CASE(cuda_qmatmul_backward_bf16) { check_all(true, true); }

int main(int argc, char** argv) { return testing_util::run_main(argc, argv); }
