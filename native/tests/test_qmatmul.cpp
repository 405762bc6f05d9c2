// The quantized formats and the dequantizing matmul on the CPU, every ISA this machine has, against the plain
// reference in quant_reference.h.
#include "engine_native.h"
#include "quant_reference.h"
#include "isa_util.h"
#include "test_util.h"

#include <algorithm>
#include <cstdio>

using reference::from_bf16;
using reference::to_bf16;

using isa_util::available_isas;
using isa_util::isa_name;

namespace {

const int32_t kFormats[] = {ENGINE_QUANT_NF4, ENGINE_QUANT_NF4_DQ, ENGINE_QUANT_INT8};

// Runs the kernel for one shape/format/direction/dtype and compares with dequantize-then-matmul in double:
// fp32 outputs within 1e-5 (1 + |ref|), bf16 outputs within their rounding (2^-8 relative) of the reference.
// Returns the largest |difference| of the fp32 outputs.
double check_case(const qref::Shape& s, int32_t format, bool input_gradient, bool bf16_in, bool bf16_out, const std::string& what)
{
    const std::vector<float> w = qref::weights(s.rows, s.cols, static_cast<uint32_t>(s.rows * 131 + s.cols));
    const qref::Quantized z = qref::quantize(w, s.rows, s.cols, format);
    CHECK(z.q.format == format);
    const int64_t red = input_gradient ? s.rows : s.cols, out = input_gradient ? s.cols : s.rows;
    const std::vector<float> a = qref::activations(s.m * red, static_cast<uint32_t>(s.m + 7 * red), bf16_in);
    const std::vector<double> ref = qref::matmul(z, a, s.m, input_gradient, bf16_in);
    std::vector<uint16_t> a16(a.size());
    for (size_t i = 0; i < a.size(); ++i) a16[i] = to_bf16(a[i]);
    const void* ap = bf16_in ? static_cast<const void*>(a16.data()) : static_cast<const void*>(a.data());
    std::vector<float> c32(s.m * out, -7.0f);
    std::vector<uint16_t> c16(s.m * out, 0);
    void* cp = bf16_out ? static_cast<void*>(c16.data()) : static_cast<void*>(c32.data());
    const int32_t din = bf16_in ? ENGINE_DTYPE_BF16 : ENGINE_DTYPE_F32, dout = bf16_out ? ENGINE_DTYPE_BF16 : ENGINE_DTYPE_F32;
    const int32_t status = input_gradient ? engine_qmatmul_backward_input(ap, din, s.m, &z.q, cp, dout)
                                          : engine_qmatmul_forward(ap, din, s.m, &z.q, cp, dout);
    CHECK(status == ENGINE_OK);
    double max_diff = 0.0;
    for (size_t i = 0; i < ref.size(); ++i)
    {
        const std::string at = what + " [" + std::to_string(i / out) + "," + std::to_string(i % out) + "]";
        if (bf16_out)
            CHECK_CLOSE(from_bf16(c16[i]), ref[i], 1e-5, 1.0 / 256.0, at);
        else
        {
            CHECK_CLOSE(c32[i], ref[i], 1e-5, 1e-5, at);
            max_diff = std::max(max_diff, std::fabs(c32[i] - ref[i]));
        }
    }
    return max_diff;
}

void check_all(bool input_gradient, bool bf16_in)
{
    for (int32_t isa : available_isas())
    {
        engine_force_isa(isa);
        for (int32_t format : kFormats)
        {
            double worst = 0.0;
            for (const qref::Shape& s : qref::shapes(true))
            {
                const std::string what = std::string(isa_name(isa)) + " " + qref::format_name(format) + " " + std::to_string(s.m) + "x" +
                                         std::to_string(s.rows) + "x" + std::to_string(s.cols);
                worst = std::max(worst, check_case(s, format, input_gradient, bf16_in, false, what));
                if (bf16_in) check_case(s, format, input_gradient, true, true, what + " bf16 out");
            }
            std::printf("%s %s %s %s: max |diff| %.3g\n", input_gradient ? "input-gradient" : "forward", bf16_in ? "bf16" : "f32",
                        isa_name(isa), qref::format_name(format), worst);
        }
    }
    engine_force_isa(-1);
}

} // namespace

TEST_CASE(cpu_quant_dequantize_matches_reference)
{
    for (int32_t format : kFormats)
        for (const qref::Shape& s : qref::shapes(false))
        {
            const std::vector<float> w = qref::weights(s.rows, s.cols, 5);
            const qref::Quantized z = qref::quantize(w, s.rows, s.cols, format);
            CHECK(z.q.format == format);
            std::vector<float> d32(s.rows * s.cols);
            std::vector<uint16_t> d16(s.rows * s.cols);
            CHECK(engine_dequantize(&z.q, ENGINE_DTYPE_F32, d32.data()) == ENGINE_OK);
            CHECK(engine_dequantize(&z.q, ENGINE_DTYPE_BF16, d16.data()) == ENGINE_OK);
            bool same = true;
            for (int64_t n = 0; n < s.rows; ++n)
                for (int64_t k = 0; k < s.cols; ++k)
                {
                    const float v = qref::value(z, n, k);
                    same &= std::memcmp(&d32[n * s.cols + k], &v, 4) == 0 && d16[n * s.cols + k] == to_bf16(v);
                }
            CHECK(same);
        }
}

TEST_CASE(cpu_quant_rejects_bad_input)
{
    std::vector<float> w(128, 0.5f);
    qref::Quantized z = qref::quantize(w, 2, 64, ENGINE_QUANT_NF4);
    CHECK(z.q.format == ENGINE_QUANT_NF4);
    w[3] = std::nanf("");
    CHECK(engine_quantize(w.data(), ENGINE_DTYPE_F32, &z.q) == ENGINE_BAD_ARGUMENT);
    w[3] = 0.5f;
    EngineQuantWeight bad = z.q;
    bad.format = 9;
    CHECK(engine_quantize(w.data(), ENGINE_DTYPE_F32, &bad) == ENGINE_BAD_ARGUMENT);
    bad = z.q;
    bad.absmax = nullptr;
    CHECK(engine_quantize(w.data(), ENGINE_DTYPE_F32, &bad) == ENGINE_BAD_ARGUMENT);
    float y[2];
    CHECK(engine_qmatmul_forward(w.data(), ENGINE_DTYPE_F32, 1, &bad, y, ENGINE_DTYPE_F32) == ENGINE_BAD_ARGUMENT);
    CHECK(engine_qmatmul_forward(w.data(), 7, 1, &z.q, y, ENGINE_DTYPE_F32) == ENGINE_BAD_ARGUMENT);
    CHECK(engine_qmatmul_forward(nullptr, ENGINE_DTYPE_F32, 1, &z.q, y, ENGINE_DTYPE_F32) == ENGINE_BAD_ARGUMENT);
    CHECK(engine_qmatmul_forward(w.data(), ENGINE_DTYPE_F32, 0, &z.q, nullptr, ENGINE_DTYPE_F32) == ENGINE_OK);
}

TEST_CASE(cpu_qmatmul_forward_f32) { check_all(false, false); }
TEST_CASE(cpu_qmatmul_forward_bf16) { check_all(false, true); }
TEST_CASE(cpu_qmatmul_backward_f32) { check_all(true, false); }
TEST_CASE(cpu_qmatmul_backward_bf16) { check_all(true, true); }

TEST_CASE(cpu_qmatmul_threads_same_bits)
{
    const qref::Shape s{29, 200, 320};
    const std::vector<float> w = qref::weights(s.rows, s.cols, 3);
    const qref::Quantized z = qref::quantize(w, s.rows, s.cols, ENGINE_QUANT_NF4_DQ);
    const std::vector<float> x = qref::activations(s.m * s.cols, 4, false);
    std::vector<float> first;
    for (int threads : {1, 2, 3, 5})
    {
        engine_set_threads(threads);
        std::vector<float> y(s.m * s.rows);
        CHECK(engine_qmatmul_forward(x.data(), ENGINE_DTYPE_F32, s.m, &z.q, y.data(), ENGINE_DTYPE_F32) == ENGINE_OK);
        if (first.empty()) first = y;
        else CHECK(std::memcmp(first.data(), y.data(), y.size() * 4) == 0);
    }
    engine_set_threads(0);
}

int main(int argc, char** argv) { return testing_util::run_main(argc, argv); }
