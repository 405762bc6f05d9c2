// libengine_cuda_emulated.so: cuLaunchKernel's contract over the CPU emulation, for the .NET tests of the CUDA
// launchers (tests/Engine.Tests/Kernels/CudaLayerLaunchTests.cs). A test's stand-in driver forwards each launch
// here with the launcher's own grid, block and kernelParams array; the unchanged kernels of fused_layers.cu,
// adamw.cu, token_logprob.cu, kl_reduction.cu and qmatmul.cu then run on host memory. Each parameter is read from kernelParams[i] as the type the kernel's signature
// declares (as the driver does), so an argument list in the wrong order or of the wrong types gives wrong results.
#include "cuda_cpu_emulation.h"

#include "adamw.cu"
#include "fused_layers.cu"
#include "kl_reduction.cu"
#include "qmatmul.cu"
#include "token_logprob.cu"

#include <cstring>
#include <type_traits>
#include <utility>

namespace {

template <class... P, std::size_t... I>
void launch_packed(void (*kernel)(P...), dim3 grid, dim3 block, void** params, std::index_sequence<I...>)
{
    cuda_emulation::launch(kernel, grid, block, *static_cast<std::remove_cv_t<P>*>(params[I])...);
}

template <class... P>
void launch_packed(void (*kernel)(P...), dim3 grid, dim3 block, void** params)
{
    launch_packed(kernel, grid, block, params, std::index_sequence_for<P...>{});
}

struct Entry
{
    const char* name;
    unsigned int max_threads; // the kernel's __launch_bounds__
    void (*run)(dim3, dim3, void**);
};

#define ENGINE_EMULATED(kernel, bound) {#kernel, bound, [](dim3 g, dim3 b, void** p) { launch_packed(kernel, g, b, p); }}

const Entry entries[] = {
    ENGINE_EMULATED(rmsnorm_forward_f32, FL_THREADS),   ENGINE_EMULATED(rmsnorm_forward_bf16, FL_THREADS),
    ENGINE_EMULATED(rmsnorm_backward_f32, FL_THREADS),  ENGINE_EMULATED(rmsnorm_backward_bf16, FL_THREADS),
    ENGINE_EMULATED(rmsnorm_dw_reduce, FL_THREADS),     ENGINE_EMULATED(rope_f32, FL_THREADS),
    ENGINE_EMULATED(rope_bf16, FL_THREADS),             ENGINE_EMULATED(rope_strided_f32, FL_THREADS),
    ENGINE_EMULATED(rope_strided_bf16, FL_THREADS),     ENGINE_EMULATED(glu_forward_f32, FL_THREADS),
    ENGINE_EMULATED(glu_forward_bf16, FL_THREADS),      ENGINE_EMULATED(glu_backward_f32, FL_THREADS),
    ENGINE_EMULATED(glu_backward_bf16, FL_THREADS),     ENGINE_EMULATED(adamw_grad_sum_squares, ADAMW_THREADS),
    ENGINE_EMULATED(adamw_clip_scale, ADAMW_THREADS),   ENGINE_EMULATED(adamw_step, ADAMW_THREADS),
    ENGINE_EMULATED(token_logprob_forward_f32, TLP_THREADS),  ENGINE_EMULATED(token_logprob_forward_bf16, TLP_THREADS),
    ENGINE_EMULATED(token_logprob_backward_f32, TLP_THREADS), ENGINE_EMULATED(token_logprob_backward_bf16, TLP_THREADS),
    ENGINE_EMULATED(kl_z0_reduce, KL_THREADS),
    ENGINE_EMULATED(qmatmul_forward_f32, QMM_THREADS),  ENGINE_EMULATED(qmatmul_forward_bf16, QMM_THREADS),
    ENGINE_EMULATED(qmatmul_backward_f32, QMM_THREADS), ENGINE_EMULATED(qmatmul_backward_bf16, QMM_THREADS),
};

} // namespace

// Returns 0, or the CUDA driver's error code for the same mistake: 1 (CUDA_ERROR_INVALID_VALUE) for an empty or
// oversized grid or block, 701 (CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES) for more threads than __launch_bounds__,
// 500 (CUDA_ERROR_NOT_FOUND) for an unknown kernel name.
extern "C" __attribute__((visibility("default"))) int engine_emulated_launch(const char* name, unsigned int gx, unsigned int gy,
                                                                            unsigned int gz, unsigned int bx, unsigned int by,
                                                                            unsigned int bz, void** params)
{
    for (const Entry& e : entries)
    {
        if (std::strcmp(e.name, name) != 0) continue;
        if (gx == 0 || gy == 0 || gz == 0 || bx == 0 || by == 0 || bz == 0) return 1;
        if (gx > 2147483647u || gy > 65535u || gz > 65535u || bx > 1024u || by > 1024u || bz > 64u || bx * by * bz > 1024u) return 1;
        if (bx * by * bz > e.max_threads) return 701;
        e.run(dim3(gx, gy, gz), dim3(bx, by, bz), params);
        return 0;
    }
    return 500;
}
