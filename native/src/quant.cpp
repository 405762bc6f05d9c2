// The quantized-weight formats (engine_native.h): quantize, dequantize, and the panels the dequantizing matmul
// multiplies. Plain scalar code: quantizing runs once per model, and a panel is reused for every row of the
// activations. Compiled with -ffp-contract=off (see quant_format.h).
#include "quant_format.h"
#include "thread_pool.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace engine::quant {

// bitsandbytes' NF4 code book (QLoRA, appendix E): quantiles of N(0, 1) scaled to [-1, 1], with an exact 0.
const float kNf4Code[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
    -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
    0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

namespace {

// NF4 decision thresholds: the midpoints of neighbouring codes, taken in double and rounded to fp32 once (the
// values bitsandbytes' decision tree compares against). A value maps to the number of thresholds it exceeds,
// so a midpoint itself goes to the lower code and NaN (0 * inf in an all-zero block) to code 0, as in bitsandbytes.
struct Nf4Thresholds
{
    float t[15];
    Nf4Thresholds()
    {
        for (int i = 0; i < 15; ++i) t[i] = static_cast<float>((static_cast<double>(kNf4Code[i]) + kNf4Code[i + 1]) / 2.0);
    }
};
const Nf4Thresholds kNf4Thresholds;

uint8_t nf4_index(float x)
{
    uint8_t i = 0;
    for (int k = 0; k < 15; ++k) i += x > kNf4Thresholds.t[k];
    return i;
}

// bitsandbytes' create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): for exponent e = 0..6, the
// midpoints of 2^e + 1 points spaced evenly over [0.1, 1] (fp32, as torch.linspace places them: from the start
// for the first half, from the end for the rest, each point one fused multiply-add), scaled by 10^(e-6), with
// both signs; then 0 and 1; ascending. The test builds the same table with torch's own linspace.
struct DynamicCode
{
    float v[256];
    float mid[255]; // (v[i] + v[i+1]) * 0.5, in fp32 as bitsandbytes' nearest-value search computes it
    DynamicCode()
    {
        std::vector<float> data;
        for (int e = 0; e < 7; ++e)
        {
            const int n = (1 << e) + 1;
            const float start = 0.1f, end = 1.0f;
            const float step = (end - start) / static_cast<float>(n - 1);
            std::vector<float> bounds(n);
            // torch's CPU kernels are built for AVX2/AVX-512 with contraction, so start + step * j is one FMA there.
            for (int j = 0; j < n; ++j)
                bounds[j] = j < n / 2 ? std::fma(step, static_cast<float>(j), start) : std::fma(-step, static_cast<float>(n - 1 - j), end);
            const float scale = static_cast<float>(std::pow(10.0, e - 6));
            for (int j = 0; j + 1 < n; ++j) data.push_back(scale * ((bounds[j] + bounds[j + 1]) / 2.0f));
            for (int j = 0; j + 1 < n; ++j) data.push_back(-scale * ((bounds[j] + bounds[j + 1]) / 2.0f));
        }
        data.push_back(0.0f);
        data.push_back(1.0f);
        std::sort(data.begin(), data.end());
        std::copy(data.begin(), data.end(), v);
        for (int i = 0; i < 255; ++i) mid[i] = (v[i] + v[i + 1]) * 0.5f;
    }
};
const DynamicCode kDynamic;

// Nearest entry of the dynamic code (a midpoint goes to the lower entry; NaN to entry 0). Binary search over
// the ascending midpoints: the index is the number of midpoints below x.
uint8_t dynamic_index(float x)
{
    int lo = 0, hi = 255; // answer in [lo, hi]
    while (lo < hi)
    {
        const int m = (lo + hi) / 2;
        if (x > kDynamic.mid[m]) lo = m + 1;
        else hi = m;
    }
    return static_cast<uint8_t>(lo);
}

int64_t block_count(int64_t n) { return (n + ENGINE_QUANT_BLOCK - 1) / ENGINE_QUANT_BLOCK; }

float load_weight(const void* w, int32_t dtype, int64_t i)
{
    if (dtype == ENGINE_DTYPE_F32) return static_cast<const float*>(w)[i];
    const uint32_t bits = static_cast<uint32_t>(static_cast<const uint16_t*>(w)[i]) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

} // namespace

namespace {
thread_local std::vector<unsigned char> scratch_buffers[4];
}

void* thread_scratch(int slot, int64_t bytes)
{
    std::vector<unsigned char>& b = scratch_buffers[slot];
    if (b.size() < static_cast<size_t>(bytes)) b.resize(static_cast<size_t>(bytes));
    return b.data();
}

void trim_thread_scratch(int slot, int64_t keep_bytes)
{
    std::vector<unsigned char>& b = scratch_buffers[slot];
    if (b.size() > static_cast<size_t>(keep_bytes)) std::vector<unsigned char>().swap(b);
}

uint16_t to_bf16(float v)
{
    uint32_t u;
    std::memcpy(&u, &v, 4);
    return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

bool valid(const EngineQuantWeight* q)
{
    if (!q || q->rows <= 0 || q->cols <= 0 || !q->data) return false;
    switch (q->format)
    {
    case ENGINE_QUANT_NF4:
    case ENGINE_QUANT_INT8: return q->absmax != nullptr;
    case ENGINE_QUANT_NF4_DQ: return q->qabsmax && q->absmax2 && q->code2;
    default: return false;
    }
}

void dequantize_run(const EngineQuantWeight& q, int64_t row, int64_t k0, int64_t len, float* out)
{
    int64_t i = row * q.cols + k0;
    const int64_t end = i + len;
    while (i < end)
    {
        const int64_t b = i / ENGINE_QUANT_BLOCK;
        const int64_t stop = std::min(end, (b + 1) * ENGINE_QUANT_BLOCK);
        const float s = block_scale(q, b);
        if (q.format == ENGINE_QUANT_INT8)
        {
            const int8_t* d = reinterpret_cast<const int8_t*>(q.data);
            for (; i < stop; ++i) *out++ = static_cast<float>(d[i]) * s;
        }
        else
        {
            float lut[16];
            for (int c = 0; c < 16; ++c) lut[c] = kNf4Code[c] * s;
            if (i & 1) *out++ = lut[q.data[i >> 1] & 15], ++i;
            for (; i + 1 < stop; i += 2)
            {
                const uint8_t byte = q.data[i >> 1];
                out[0] = lut[byte >> 4];
                out[1] = lut[byte & 15];
                out += 2;
            }
            if (i < stop) *out++ = lut[q.data[i >> 1] >> 4], ++i;
        }
    }
}

void dequantize_run_bf16(const EngineQuantWeight& q, int64_t row, int64_t k0, int64_t len, uint16_t* out)
{
    float buffer[256];
    for (int64_t done = 0; done < len; done += 256)
    {
        const int64_t n = std::min<int64_t>(256, len - done);
        dequantize_run(q, row, k0 + done, n, buffer);
        for (int64_t i = 0; i < n; ++i) out[done + i] = to_bf16(buffer[i]);
    }
}

void pack_panel_f32(const EngineQuantWeight& q, bool input_gradient, bool round_bf16, int64_t r0, int64_t rc, int64_t j0, int64_t jc,
                    float* dst)
{
    auto round = [&](float* p, int64_t n) {
        if (!round_bf16) return;
        for (int64_t i = 0; i < n; ++i)
        {
            const uint32_t bits = static_cast<uint32_t>(to_bf16(p[i])) << 16;
            std::memcpy(p + i, &bits, 4);
        }
    };
    if (input_gradient)
    {
        // B[r, j] = W[r0 + r, j0 + j]: one contiguous run of a weight row per panel row.
        for (int64_t r = 0; r < rc; ++r)
        {
            float* p = dst + r * kPanelCols;
            dequantize_run(q, r0 + r, j0, jc, p);
            round(p, jc);
            std::fill(p + jc, p + kPanelCols, 0.0f);
        }
        return;
    }
    // B[r, j] = W[j0 + j, r0 + r]: a run of weight row j0 + j becomes column j.
    thread_local std::vector<float> run;
    run.resize(static_cast<size_t>(rc));
    for (int64_t j = 0; j < kPanelCols; ++j)
    {
        if (j < jc)
        {
            dequantize_run(q, j0 + j, r0, rc, run.data());
            round(run.data(), rc);
            for (int64_t r = 0; r < rc; ++r) dst[r * kPanelCols + j] = run[r];
        }
        else
            for (int64_t r = 0; r < rc; ++r) dst[r * kPanelCols + j] = 0.0f;
    }
}

namespace {

// The 16 values of an NF4 block, as bf16 bits: a panel pair is then two table lookups per weight byte.
void nf4_bf16_table(const EngineQuantWeight& q, int64_t block, uint16_t* table)
{
    const float s = block_scale(q, block);
    for (int c = 0; c < 16; ++c) table[c] = to_bf16(kNf4Code[c] * s);
}

bool is_nf4(const EngineQuantWeight& q) { return q.format != ENGINE_QUANT_INT8; }

} // namespace

void pack_panel_bf16_pairs(const EngineQuantWeight& q, bool input_gradient, int64_t r0, int64_t rc, int64_t j0, int64_t jc, uint32_t* dst)
{
    // An odd rc (the last panel of an odd reduction) pairs its last row with zeros.
    const int64_t pairs = (rc + 1) / 2;
    thread_local std::vector<uint16_t> even, odd;
    if (input_gradient)
    {
        // Pair p holds weight rows r0 + 2p and r0 + 2p + 1, each a contiguous run of jc values.
        if (is_nf4(q) && q.cols % ENGINE_QUANT_BLOCK == 0 && j0 % kPanelCols == 0 && jc == kPanelCols)
        {
            // Both runs lie inside one block each (32 | 64): two tables, one byte of each row per two columns.
            uint16_t ta[16], tb[16];
            for (int64_t p = 0; p < pairs; ++p)
            {
                const int64_t ia = (r0 + 2 * p) * q.cols + j0;
                const bool has_b = 2 * p + 1 < rc;
                const int64_t ib = has_b ? ia + q.cols : ia;
                nf4_bf16_table(q, ia / ENGINE_QUANT_BLOCK, ta);
                if (has_b) nf4_bf16_table(q, ib / ENGINE_QUANT_BLOCK, tb);
                else std::fill(tb, tb + 16, 0);
                const uint8_t* a = q.data + ia / 2;
                const uint8_t* b = q.data + ib / 2;
                uint32_t* out = dst + p * kPanelCols;
                for (int64_t j = 0; j < kPanelCols / 2; ++j)
                {
                    const uint8_t ba = a[j], bb = has_b ? b[j] : 0;
                    out[2 * j] = static_cast<uint32_t>(ta[ba >> 4]) | static_cast<uint32_t>(tb[bb >> 4]) << 16;
                    out[2 * j + 1] = static_cast<uint32_t>(ta[ba & 15]) | static_cast<uint32_t>(tb[bb & 15]) << 16;
                }
            }
            return;
        }
        even.resize(kPanelCols);
        odd.resize(kPanelCols);
        for (int64_t p = 0; p < pairs; ++p)
        {
            std::fill(even.begin(), even.end(), 0);
            std::fill(odd.begin(), odd.end(), 0);
            dequantize_run_bf16(q, r0 + 2 * p, j0, jc, even.data());
            if (2 * p + 1 < rc) dequantize_run_bf16(q, r0 + 2 * p + 1, j0, jc, odd.data());
            for (int64_t j = 0; j < kPanelCols; ++j)
                dst[p * kPanelCols + j] = static_cast<uint32_t>(even[j]) | static_cast<uint32_t>(odd[j]) << 16;
        }
        return;
    }
    // Column j is a run of weight row j0 + j; consecutive values of the run form the pairs.
    if (is_nf4(q) && q.cols % ENGINE_QUANT_BLOCK == 0 && r0 % ENGINE_QUANT_BLOCK == 0 && rc % 2 == 0)
    {
        // Block by block (32 pairs), all 32 columns: the 4 KiB of panel rows being written stay in L1.
        uint16_t table[16];
        for (int64_t p0 = 0; p0 < pairs; p0 += ENGINE_QUANT_BLOCK / 2)
        {
            const int64_t pc = std::min<int64_t>(ENGINE_QUANT_BLOCK / 2, pairs - p0);
            for (int64_t j = 0; j < kPanelCols; ++j)
            {
                uint32_t* out = dst + p0 * kPanelCols + j;
                if (j >= jc)
                {
                    for (int64_t p = 0; p < pc; ++p) out[p * kPanelCols] = 0;
                    continue;
                }
                const int64_t i = (j0 + j) * q.cols + r0 + 2 * p0;
                nf4_bf16_table(q, i / ENGINE_QUANT_BLOCK, table);
                const uint8_t* bytes = q.data + i / 2;
                for (int64_t p = 0; p < pc; ++p)
                {
                    const uint8_t byte = bytes[p];
                    out[p * kPanelCols] = static_cast<uint32_t>(table[byte >> 4]) | static_cast<uint32_t>(table[byte & 15]) << 16;
                }
            }
        }
        return;
    }
    even.resize(static_cast<size_t>(2 * pairs));
    for (int64_t j = 0; j < kPanelCols; ++j)
    {
        if (j >= jc)
        {
            for (int64_t p = 0; p < pairs; ++p) dst[p * kPanelCols + j] = 0;
            continue;
        }
        const int64_t first = (j0 + j) * q.cols + r0;
        if (is_nf4(q) && first % 2 == 0 && rc % 2 == 0)
        {
            // One weight byte is one pair: (high nibble, low nibble) = (k, k + 1).
            uint16_t table[16];
            for (int64_t p = 0; p < pairs;)
            {
                const int64_t i = first + 2 * p;
                const int64_t block = i / ENGINE_QUANT_BLOCK;
                const int64_t stop = std::min(pairs, p + ((block + 1) * ENGINE_QUANT_BLOCK - i) / 2);
                nf4_bf16_table(q, block, table);
                const uint8_t* bytes = q.data + first / 2;
                for (; p < stop; ++p)
                {
                    const uint8_t byte = bytes[p];
                    dst[p * kPanelCols + j] = static_cast<uint32_t>(table[byte >> 4]) | static_cast<uint32_t>(table[byte & 15]) << 16;
                }
            }
            continue;
        }
        even[2 * pairs - 1] = 0;
        dequantize_run_bf16(q, j0 + j, r0, rc, even.data());
        for (int64_t p = 0; p < pairs; ++p)
            dst[p * kPanelCols + j] = static_cast<uint32_t>(even[2 * p]) | static_cast<uint32_t>(even[2 * p + 1]) << 16;
    }
}

} // namespace engine::quant

using namespace engine::quant;

extern "C" {

void engine_quant_nf4_code(float* out16) { std::copy(kNf4Code, kNf4Code + 16, out16); }

void engine_quant_dynamic_code(float* out256) { std::copy(kDynamic.v, kDynamic.v + 256, out256); }

int32_t engine_quantize(const void* w, int32_t dtype, EngineQuantWeight* q)
{
    if (!w || (dtype != ENGINE_DTYPE_F32 && dtype != ENGINE_DTYPE_BF16)) return ENGINE_BAD_ARGUMENT;
    if (!valid(q))
        return ENGINE_BAD_ARGUMENT;
    const int64_t n = q->rows * q->cols;
    const int64_t blocks = block_count(n);
    for (int64_t i = 0; i < n; ++i)
        if (!std::isfinite(load_weight(w, dtype, i))) return ENGINE_BAD_ARGUMENT;

    std::vector<float> nested_absmax;
    float* absmax = q->absmax;
    if (q->format == ENGINE_QUANT_NF4_DQ)
    {
        nested_absmax.resize(static_cast<size_t>(blocks));
        absmax = nested_absmax.data();
    }
    engine::parallel_for(0, blocks, 256, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b)
        {
            const int64_t first = b * ENGINE_QUANT_BLOCK, last = std::min(n, first + ENGINE_QUANT_BLOCK);
            float amax = 0.0f;
            for (int64_t i = first; i < last; ++i) amax = std::max(amax, std::fabs(load_weight(w, dtype, i)));
            if (q->format == ENGINE_QUANT_INT8)
            {
                const float scale = amax / 127.0f;
                absmax[b] = scale;
                int8_t* d = reinterpret_cast<int8_t*>(q->data);
                for (int64_t i = first; i < last; ++i)
                {
                    const float v = scale == 0.0f ? 0.0f : std::nearbyint(load_weight(w, dtype, i) / scale);
                    d[i] = static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f));
                }
                continue;
            }
            absmax[b] = amax;
            // As bitsandbytes: multiply by the reciprocal; a block of zeros gives 0 * inf = NaN, code 0 (value -0).
            const float inv = 1.0f / amax;
            // Values past the end of the weight count as 0 (the low nibble of a last, odd byte).
            for (int64_t i = first; i < first + ENGINE_QUANT_BLOCK && i < n + (n & 1); i += 2)
            {
                const float v0 = load_weight(w, dtype, i) * inv;
                const float v1 = i + 1 < n ? load_weight(w, dtype, i + 1) * inv : 0.0f * inv;
                q->data[i >> 1] = static_cast<uint8_t>(nf4_index(v0) << 4 | nf4_index(v1));
            }
        }
    });
    if (q->format != ENGINE_QUANT_NF4_DQ) return ENGINE_OK;

    // Double quantization, as bitsandbytes' quantize_4bit(compress_statistics=True): subtract the mean absmax,
    // then quantize groups of 256 with the dynamic code and an fp32 absmax per group.
    double total = 0.0;
    for (int64_t b = 0; b < blocks; ++b) total += absmax[b];
    const float offset = static_cast<float>(total / static_cast<double>(blocks));
    q->offset = offset;
    std::copy(kDynamic.v, kDynamic.v + 256, q->code2);
    const int64_t groups = (blocks + ENGINE_QUANT_DQ_GROUP - 1) / ENGINE_QUANT_DQ_GROUP;
    for (int64_t g = 0; g < groups; ++g)
    {
        const int64_t first = g * ENGINE_QUANT_DQ_GROUP, last = std::min(blocks, first + ENGINE_QUANT_DQ_GROUP);
        float amax = 0.0f;
        for (int64_t b = first; b < last; ++b) amax = std::max(amax, std::fabs(absmax[b] - offset));
        q->absmax2[g] = amax;
        const float inv = 1.0f / amax;
        for (int64_t b = first; b < last; ++b) q->qabsmax[b] = dynamic_index((absmax[b] - offset) * inv);
    }
    return ENGINE_OK;
}

int32_t engine_dequantize(const EngineQuantWeight* q, int32_t dtype, void* out)
{
    if (!valid(q) || !out || (dtype != ENGINE_DTYPE_F32 && dtype != ENGINE_DTYPE_BF16)) return ENGINE_BAD_ARGUMENT;
    const int64_t cols = q->cols;
    engine::parallel_for(0, q->rows, std::max<int64_t>(1, (1 << 16) / cols), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
        {
            if (dtype == ENGINE_DTYPE_F32) dequantize_run(*q, r, 0, cols, static_cast<float*>(out) + r * cols);
            else dequantize_run_bf16(*q, r, 0, cols, static_cast<uint16_t*>(out) + r * cols);
        }
    });
    return ENGINE_OK;
}

} // extern "C"
