// CUDA's execution model on the CPU, so the unchanged kernels in native/cuda/*.cu compile with g++ and run in tests.
//
// Real semantics, not stubs: every CUDA thread of a block is an OS thread; __syncthreads is a std::barrier over
// the block's threads; warp shuffles exchange values through per-warp slots between two per-warp barriers, so a
// lane reads exactly what its partner wrote; __shared__ variables are function statics, which is correct because
// the blocks of a grid run one after another (the same threads loop over the blocks, with a barrier in between).
// Atomics are std::atomic_ref. Limitations: the whole block must reach every __syncthreads/shuffle (as CUDA
// requires for defined behaviour), and blocks never run concurrently, so inter-block races are not exercised.
#pragma once

#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__
#define __launch_bounds__(...)
#define __shared__ static

struct dim3
{
    unsigned int x = 1, y = 1, z = 1;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;
constexpr int warpSize = 32;

namespace cuda_emulation {

struct Block
{
    explicit Block(unsigned int threads) : threads(threads), block_barrier(threads), slots(threads)
    {
        for (unsigned int first = 0; first < threads; first += 32)
            warp_barriers.push_back(std::make_unique<std::barrier<>>(std::min(32u, threads - first)));
    }
    unsigned int threads;
    std::barrier<> block_barrier;
    std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
    std::vector<uint64_t> slots; // one exchange slot per thread for shuffles
};

inline thread_local Block* current_block = nullptr;

inline unsigned int linear_thread()
{
    return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}

// Lane `lane` of the calling warp publishes v; returns the value published by lane src (or v if out of range).
template <class T>
T exchange(T v, int src_lane, bool in_range)
{
    static_assert(sizeof(T) <= sizeof(uint64_t), "shuffle of a type wider than 64 bits");
    Block& b = *current_block;
    const unsigned int tid = linear_thread();
    const unsigned int warp_first = tid & ~31u;
    std::barrier<>& wb = *b.warp_barriers[tid / 32];
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    b.slots[tid] = bits;
    wb.arrive_and_wait();
    T result = v;
    const unsigned int src = warp_first + static_cast<unsigned int>(src_lane);
    if (in_range && src < b.threads) std::memcpy(&result, &b.slots[src], sizeof(T));
    wb.arrive_and_wait(); // nobody overwrites a slot before every lane has read it
    return result;
}

// Runs kernel<<<grid, block>>>(args...) to completion.
template <class... Params, class... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, Args... args)
{
    const unsigned int threads = block.x * block.y * block.z;
    Block state(threads);
    std::vector<std::thread> workers;
    workers.reserve(threads);
    for (unsigned int t = 0; t < threads; ++t)
    {
        workers.emplace_back([&, t] {
            current_block = &state;
            blockDim = block;
            gridDim = grid;
            threadIdx = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
            for (unsigned int bz = 0; bz < grid.z; ++bz)
                for (unsigned int by = 0; by < grid.y; ++by)
                    for (unsigned int bx = 0; bx < grid.x; ++bx)
                    {
                        blockIdx = dim3(bx, by, bz);
                        kernel(static_cast<Params>(args)...);
                        state.block_barrier.arrive_and_wait(); // the block is done before its shared memory is reused
                    }
        });
    }
    for (auto& w : workers) w.join();
}

} // namespace cuda_emulation

inline void __syncthreads() { cuda_emulation::current_block->block_barrier.arrive_and_wait(); }
inline void __syncwarp(unsigned int = 0xffffffffu)
{
    cuda_emulation::current_block->warp_barriers[cuda_emulation::linear_thread() / 32]->arrive_and_wait();
}

template <class T>
T __shfl_sync(unsigned int, T v, int src_lane, int width = 32)
{
    const int lane = static_cast<int>(cuda_emulation::linear_thread() & 31u);
    const int segment = lane & ~(width - 1);
    return cuda_emulation::exchange(v, segment + (src_lane & (width - 1)), true);
}
template <class T>
T __shfl_xor_sync(unsigned int, T v, int lane_mask, int width = 32)
{
    const int lane = static_cast<int>(cuda_emulation::linear_thread() & 31u);
    const int src = lane ^ lane_mask;
    return cuda_emulation::exchange(v, src, (src & ~(width - 1)) == (lane & ~(width - 1)));
}
template <class T>
T __shfl_down_sync(unsigned int, T v, unsigned int delta, int width = 32)
{
    const int lane = static_cast<int>(cuda_emulation::linear_thread() & 31u);
    const int src = lane + static_cast<int>(delta);
    return cuda_emulation::exchange(v, src, (src & ~(width - 1)) == (lane & ~(width - 1)));
}
template <class T>
T __shfl_up_sync(unsigned int, T v, unsigned int delta, int width = 32)
{
    const int lane = static_cast<int>(cuda_emulation::linear_thread() & 31u);
    const int src = lane - static_cast<int>(delta);
    return cuda_emulation::exchange(v, src, src >= (lane & ~(width - 1)));
}

template <class T>
T atomicAdd(T* address, T value) { return std::atomic_ref<T>(*address).fetch_add(value); }
template <class T>
T atomicExch(T* address, T value) { return std::atomic_ref<T>(*address).exchange(value); }
template <class T>
T atomicCAS(T* address, T expected, T desired)
{
    std::atomic_ref<T>(*address).compare_exchange_strong(expected, desired);
    return expected; // the old value, as in CUDA
}
template <class T>
T atomicMax(T* address, T value)
{
    std::atomic_ref<T> a(*address);
    T old = a.load();
    while (old < value && !a.compare_exchange_weak(old, value)) {}
    return old;
}
template <class T>
T atomicMin(T* address, T value)
{
    std::atomic_ref<T> a(*address);
    T old = a.load();
    while (old > value && !a.compare_exchange_weak(old, value)) {}
    return old;
}
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }

inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
inline float __uint_as_float(unsigned int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline unsigned int __float_as_uint(float f) { unsigned int i; std::memcpy(&i, &f, 4); return i; }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
// expf, logf, fmaxf, fminf: the C library's, from <cmath>.
// fp32 operations that CUDA never fuses into an FMA (tests that rely on it build with -ffp-contract=off).
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
