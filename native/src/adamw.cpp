// The multi-tensor AdamW's C API: validates the tensor list, cuts every tensor into fixed chunks and runs the
// chunks of all tensors as one job on the worker pool (one pass over all parameters, every thread busy even when
// most tensors are small).
#include "engine_native.h"
#include "adamw_kernels.h"
#include "thread_pool.h"

#include <algorithm>
#include <vector>

namespace {

// Elements per chunk: large enough that a chunk's call overhead is noise, small enough that the chunks of one
// large tensor spread over the threads. Fixed (not derived from the thread count), so the norm's partial sums are
// the same for any thread count.
constexpr int64_t kChunk = int64_t{1} << 15;

const EngineAdamWKernels* adamw_kernels()
{
    switch (engine_cpu_isa())
    {
#ifdef ENGINE_HAVE_AVX512
    case ENGINE_ISA_AVX512: return engine_adamw_kernels_avx512();
#endif
#ifdef ENGINE_HAVE_AVX2
    case ENGINE_ISA_AVX2: return engine_adamw_kernels_avx2();
#endif
    default: return engine_adamw_kernels_scalar();
    }
}

bool valid_dtype(int32_t d) { return d == ENGINE_DTYPE_F32 || d == ENGINE_DTYPE_BF16; }

bool valid(const EngineAdamWTensor* tensors, int64_t count, bool update)
{
    if (count < 0 || (count > 0 && !tensors)) return false;
    for (int64_t i = 0; i < count; ++i)
    {
        const EngineAdamWTensor& t = tensors[i];
        if (t.numel < 0 || !valid_dtype(t.param_dtype)) return false;
        if (t.numel == 0) continue;
        if (!t.grad) return false;
        if (!update) continue;
        if (!t.param || !t.exp_avg || !t.exp_avg_sq || !valid_dtype(t.state_dtype)) return false;
        // A master copy exists only for bf16 weights.
        if (t.master && t.param_dtype != ENGINE_DTYPE_BF16) return false;
    }
    return true;
}

// first_chunk[i] = the global index of tensor i's first chunk; first_chunk[count] = the number of chunks.
std::vector<int64_t> chunk_offsets(const EngineAdamWTensor* tensors, int64_t count)
{
    std::vector<int64_t> first(static_cast<size_t>(count) + 1, 0);
    for (int64_t i = 0; i < count; ++i) first[i + 1] = first[i] + (tensors[i].numel + kChunk - 1) / kChunk;
    return first;
}

// Runs body(tensor, begin, end, chunk) for every chunk of every tensor, chunks spread over the pool.
template <class Body>
void for_each_chunk(const EngineAdamWTensor* tensors, const std::vector<int64_t>& first, Body body)
{
    const int64_t chunks = first.back();
    engine::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
        // The tensor holding chunk `begin`: the last one whose first chunk is <= begin (empty tensors own none).
        int64_t t = std::upper_bound(first.begin(), first.end(), begin) - first.begin() - 1;
        for (int64_t c = begin; c < end; ++c)
        {
            while (first[t + 1] <= c) ++t;
            const int64_t start = (c - first[t]) * kChunk;
            body(tensors[t], start, std::min(tensors[t].numel, start + kChunk), c);
        }
    });
}

int32_t run_update(const EngineAdamWTensor* tensors, int64_t count, const EngineAdamWHyper* hyper, bool floor)
{
    if (!hyper || !valid(tensors, count, true)) return ENGINE_BAD_ARGUMENT;
    const EngineAdamWKernels* k = adamw_kernels();
    const std::vector<int64_t> first = chunk_offsets(tensors, count);
    for_each_chunk(tensors, first, [&](const EngineAdamWTensor& t, int64_t begin, int64_t end, int64_t) {
        k->update(&t, begin, end, hyper, floor);
    });
    return ENGINE_OK;
}

} // namespace

extern "C" {

int32_t engine_adamw_grad_sum_squares(const EngineAdamWTensor* tensors, int64_t count, double* sum_squares)
{
    if (!sum_squares || !valid(tensors, count, false)) return ENGINE_BAD_ARGUMENT;
    const EngineAdamWKernels* k = adamw_kernels();
    const std::vector<int64_t> first = chunk_offsets(tensors, count);
    std::vector<double> partial(static_cast<size_t>(first.back()), 0.0);
    for_each_chunk(tensors, first, [&](const EngineAdamWTensor& t, int64_t begin, int64_t end, int64_t chunk) {
        partial[chunk] = k->sum_squares(t.grad, t.param_dtype, begin, end);
    });
    double total = 0.0;
    for (double p : partial) total += p;
    *sum_squares = total;
    return ENGINE_OK;
}

int32_t engine_adamw_step(const EngineAdamWTensor* tensors, int64_t count, const EngineAdamWHyper* hyper)
{
    return run_update(tensors, count, hyper, false);
}

int32_t engine_adamw_floor(const EngineAdamWTensor* tensors, int64_t count, const EngineAdamWHyper* hyper)
{
    return run_update(tensors, count, hyper, true);
}

} // extern "C"
