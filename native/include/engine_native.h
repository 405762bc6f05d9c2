/* Engine's native kernels: the C ABI that the C# side binds with NativeLibrary + function pointers.
 * All tensors are contiguous, row-major, on the CPU. Status codes: see ENGINE_* below. */
#ifndef ENGINE_NATIVE_H
#define ENGINE_NATIVE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ENGINE_OK 0
#define ENGINE_BAD_ARGUMENT 1
#define ENGINE_LABEL_OUT_OF_RANGE 2
#define ENGINE_UNSUPPORTED_ISA 3

/* Element type of logits and their gradient. */
#define ENGINE_DTYPE_F32 0
#define ENGINE_DTYPE_BF16 1

/* Instruction sets of the CPU row kernels. */
#define ENGINE_ISA_SCALAR 0
#define ENGINE_ISA_AVX2 1
#define ENGINE_ISA_AVX512 2

/* ABI version; bumped whenever a signature below changes. */
int32_t engine_native_abi_version(void);

/* The ISA in use (the best one this CPU supports unless forced). */
int32_t engine_cpu_isa(void);
/* Forces an ISA (tests, benchmarks); ENGINE_UNSUPPORTED_ISA when the CPU lacks it. -1 restores the automatic choice. */
int32_t engine_force_isa(int32_t isa);
/* Threads of the persistent worker pool that runs the row-parallel kernels, the calling thread included (the C#
 * side passes torch's intra-op thread count: docs/kernels.md, "Threads"); 0 restores the default
 * (ENGINE_NATIVE_THREADS, else the CPUs we may run on). Waits for a kernel running on another thread. */
void engine_set_threads(int32_t threads);
int32_t engine_threads(void);

/* Fused per-token log-prob, forward. One streaming pass over each row of logits [rows, vocab] (rarely two):
 *   logp[r]      = log softmax(logits[r])[labels[r]]   (0 when labels[r] == ignore_index)
 *   stats[2r]    = max of the row, stats[2r+1] = log sum exp(row - max)   (saved for the backward)
 *   logit_mean[r]= mean of the raw logits of the row (every row, ignored or not)
 * Nothing of vocabulary size is allocated. *bad_row receives the first row with an out-of-range label. */
int32_t engine_logprob_forward(const void* logits, int32_t dtype, const int64_t* labels, int64_t rows, int64_t vocab,
                               int64_t ignore_index, float* logp, float* stats, float* logit_mean, int64_t* bad_row);

/* Fused per-token log-prob, backward: grad[r, v] = grad_out[r] * (onehot(labels[r])[v] - softmax(logits[r])[v]),
 * recomputed from the logits and the forward's stats; ignored rows get 0. grad has the logits' dtype and may be
 * the logits buffer itself (in place). */
int32_t engine_logprob_backward(const void* logits, int32_t dtype, const int64_t* labels, const float* stats,
                                const float* grad_out, int64_t rows, int64_t vocab, int64_t ignore_index, void* grad);

/* The hardware floor for the forward: reads every logit once and computes one exp per element
 * (out[r] = sum exp(min(logits[r], 80))). Benchmarks compare the forward against it. */
int32_t engine_floor_exp_sum(const void* logits, int32_t dtype, int64_t rows, int64_t vocab, float* out);

/* Asks the kernel for transparent huge pages on [p, p + bytes) (the 2 MiB-aligned part), before the memory is first
 * touched: a freshly allocated gradient buffer then costs one page fault per 2 MiB instead of per 4 KiB.
 * Advisory: returns 0, or errno when the kernel refuses (the buffer works either way). */
int32_t engine_advise_huge_pages(void* p, int64_t bytes);

/* KTO z0 reduction over a microbatch of mismatched pairs, deterministic (fixed order, double accumulation):
 *   policy_sums[b] = sum_t mask[b,t] ? policy[b,t] : 0, likewise reference from ref_tokens [B,T];
 *   or, when ref_tokens is NULL, the reference sums are taken from ref_sums_in [B].
 *   out[0] = mean_b (policy_sums[b] - ref_sums[b]) (before clamping), out[1] = max(0, out[0]).
 * The summation order is the CUDA kernel's (32 lane-strided partial sums, then an xor butterfly), so both
 * give identical bits. */
int32_t engine_kl_z0(const float* policy, const float* ref_tokens, const float* ref_sums_in, const uint8_t* mask,
                     int64_t batch, int64_t tokens, float* policy_sums, float* ref_sums, double* out);

/* Multi-tensor AdamW (docs/kernels.md, "Multi-tensor AdamW"). One tensor of the update: every array holds numel
 * contiguous elements. param and grad are f32 or bf16 (param_dtype; the gradient has the weights' dtype); master,
 * when not NULL, is an fp32 copy of a bf16 param that is updated instead, param receiving its rounding to nearest
 * even; the moments are f32 or bf16 (state_dtype). decay != 0 applies the decoupled weight decay. */
typedef struct EngineAdamWTensor
{
    void* param;
    float* master;
    const void* grad;
    void* exp_avg;
    void* exp_avg_sq;
    int64_t numel;
    int32_t param_dtype;
    int32_t state_dtype;
    int32_t decay;
    int32_t reserved; /* 0 */
} EngineAdamWTensor;

/* The step's scalars, each rounded to f32 by the caller from its double value exactly as torch rounds a Scalar
 * argument (so the kernel and the composite optimizer multiply by the same floats). */
typedef struct EngineAdamWHyper
{
    float beta1, one_minus_beta1, beta2, one_minus_beta2;
    float eps;
    float bias_correction2; /* 1 - beta2^t */
    float step_size;        /* -lr / (1 - beta1^t) */
    float decay_factor;     /* 1 - lr * weight_decay, for tensors with decay set */
    float grad_scale;       /* every gradient is multiplied by it as it is read (the clipping factor); 1: none */
} EngineAdamWHyper;

/* Sum of squares of every gradient of the list (the global norm's square), in double: one read of each gradient.
 * Deterministic: fixed chunks of each tensor are summed independently and the partial sums added in order, so the
 * result does not depend on the thread count. */
int32_t engine_adamw_grad_sum_squares(const EngineAdamWTensor* tensors, int64_t count, double* sum_squares);

/* One AdamW update of every tensor of the list, in one pass over all their elements (all threads). */
int32_t engine_adamw_step(const EngineAdamWTensor* tensors, int64_t count, const EngineAdamWHyper* hyper);

/* The update's memory-bandwidth floor: the same traversal, loads and stores as engine_adamw_step with one add per
 * array instead of AdamW's arithmetic (it overwrites the arrays; benchmarks only). */
int32_t engine_adamw_floor(const EngineAdamWTensor* tensors, int64_t count, const EngineAdamWHyper* hyper);

#ifdef __cplusplus
}
#endif

#endif
