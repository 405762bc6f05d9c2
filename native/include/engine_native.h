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

/* How an RMSNorm applies its weight: HF Llama's w · (x̂ rounded to the dtype), or Gemma's (1 + w) · x̂ in fp32. */
#define ENGINE_NORM_WEIGHT 0
#define ENGINE_NORM_UNIT_OFFSET 1

/* Gated MLP activations: h = act(gate) · up. */
#define ENGINE_GLU_SWIGLU 0 /* silu */
#define ENGINE_GLU_GEGLU 1  /* tanh-approximated GELU */

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
/* Runs the kernels' parallel work as regions of the OpenMP runtime libtorch loaded (its libgomp), so libtorch's
 * spinning workers take it at once instead of sharing cores with ours (src/thread_pool.h). Call once libtorch is
 * loaded. Returns the runtime's path, or NULL (own workers: no libgomp mapped, or ENGINE_NATIVE_OPENMP=0). */
const char* engine_share_openmp_runtime(void);

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

/* Fused RMSNorm over the last dimension of x [rows, n] (dtype: ENGINE_DTYPE_*; w has x's dtype, [n]):
 *   inv_rms[r] = 1 / sqrt(mean(x[r]^2) + eps); y = w · x̂ (mode ENGINE_NORM_WEIGHT, x̂ rounded to the dtype first,
 *   as HF Llama) or (1 + w) · x̂ (ENGINE_NORM_UNIT_OFFSET, Gemma). All arithmetic in fp32. */
int32_t engine_rmsnorm_forward(const void* x, const void* w, int32_t dtype, int64_t rows, int64_t n, float eps, int32_t mode,
                               void* y, float* inv_rms);
/* Backward from the saved inv_rms: dx [rows, n] and dw [n], both in x's dtype (dx may be dy itself). dw is summed in
 * fp32 over fixed chunks of rows in a fixed order, so it does not depend on the thread count, then rounded once. */
int32_t engine_rmsnorm_backward(const void* x, const void* w, const float* inv_rms, const void* dy, int32_t dtype, int64_t rows,
                                int64_t n, int32_t mode, void* dx, void* dw);

/* RoPE in place on x [tokens, heads, head_dim] (HF's rotate-half layout) with fp32 cos/sin [tokens, head_dim / 2]:
 * (x1, x2) -> (x1 c - x2 s, x2 c + x1 s); inverse = 1 applies the transposed rotation (the backward on the gradient). */
int32_t engine_rope(void* x, int32_t dtype, const float* cos, const float* sin, int64_t tokens, int64_t heads, int64_t head_dim,
                    int32_t inverse);
/* The same rotation from src [batch, seq, heads, head_dim] at element strides (batch, token, head; head_dim
 * contiguous) into dst, contiguous [batch, seq, heads, head_dim]; cos/sin [batch · seq, head_dim / 2]. dst must not
 * overlap src unless it is src with contiguous strides. One pass for the backward on a transposed gradient. */
int32_t engine_rope_strided(const void* src, int64_t src_batch_stride, int64_t src_token_stride, int64_t src_head_stride,
                            void* dst, int32_t dtype, const float* cos, const float* sin, int64_t batch, int64_t seq,
                            int64_t heads, int64_t head_dim, int32_t inverse);

/* Gated activation h = act(gate) · up over count elements (act: ENGINE_GLU_*). */
int32_t engine_glu_forward(int32_t act, const void* gate, const void* up, int32_t dtype, int64_t count, void* h);
/* Its backward, recomputing act from gate: d_gate = dh · up · act'(gate), d_up = dh · act(gate). d_gate may be gate and
 * d_up may be up (in place). */
int32_t engine_glu_backward(int32_t act, const void* gate, const void* up, const void* dh, int32_t dtype, int64_t count,
                            void* d_gate, void* d_up);

/* KTO z0 reduction over a microbatch of mismatched pairs, deterministic (fixed order, double accumulation):
 *   policy_sums[b] = sum_t mask[b,t] ? policy[b,t] : 0, likewise reference from ref_tokens [B,T];
 *   or, when ref_tokens is NULL, the reference sums are taken from ref_sums_in [B].
 *   out[0] = mean_b (policy_sums[b] - ref_sums[b]) (before clamping), out[1] = max(0, out[0]).
 * The summation order is the CUDA kernel's (32 lane-strided partial sums, then an xor butterfly), so both
 * give identical bits. */
int32_t engine_kl_z0(const float* policy, const float* ref_tokens, const float* ref_sums_in, const uint8_t* mask,
                     int64_t batch, int64_t tokens, float* policy_sums, float* ref_sums, double* out);


/* ---- Quantized weights (docs/kernels.md, "Quantized weights") ----
 * A weight W [rows = out features, cols = in features], row-major, quantized in blocks of ENGINE_QUANT_BLOCK
 * consecutive values of the flattened weight (bitsandbytes' layout):
 *   ENGINE_QUANT_NF4     4-bit NF4 codes, two per byte (element 2i in the high nibble, 2i+1 in the low one);
 *                        absmax: fp32 per block; value = nf4_code[q] * absmax[block].
 *   ENGINE_QUANT_NF4_DQ  the same codes with the absmax double-quantized: qabsmax (uint8 index into code2, the
 *                        256-entry signed dynamic code) per block, absmax2 (fp32) per group of
 *                        ENGINE_QUANT_DQ_GROUP blocks, one fp32 offset (the mean absmax);
 *                        absmax[block] = code2[qabsmax[block]] * absmax2[block / 256] + offset.
 *   ENGINE_QUANT_INT8    int8 codes, one per byte; absmax holds the fp32 scale (block absmax / 127) per block;
 *                        value = q * scale[block].
 * Every value is computed in fp32 without fused multiply-adds, so every path gives the same bits. */
#define ENGINE_QUANT_NF4 0
#define ENGINE_QUANT_NF4_DQ 1
#define ENGINE_QUANT_INT8 2
#define ENGINE_QUANT_BLOCK 64
#define ENGINE_QUANT_DQ_GROUP 256

typedef struct EngineQuantWeight
{
    int32_t format;
    int32_t reserved;
    int64_t rows, cols;
    uint8_t* data;      /* NF4: ceil(rows*cols/2) bytes; INT8: rows*cols bytes (int8) */
    float* absmax;      /* NF4, INT8: one per block; NF4_DQ: unused (NULL) */
    uint8_t* qabsmax;   /* NF4_DQ: one per block */
    float* absmax2;     /* NF4_DQ: one per group of 256 blocks */
    float* code2;       /* NF4_DQ: 256 entries */
    float offset;       /* NF4_DQ */
} EngineQuantWeight;

/* The NF4 code book (16 values) and the signed 8-bit dynamic code of the double-quantized absmax (256 values,
 * ascending), as bitsandbytes defines them. */
void engine_quant_nf4_code(float* out16);
void engine_quant_dynamic_code(float* out256);

/* Quantizes w [rows, cols] (f32 or bf16) into q, whose format, shape and buffers the caller set (sizes as above;
 * code2 is filled with the dynamic code). Deterministic. ENGINE_BAD_ARGUMENT for a bad format, shape or NULL
 * buffer, or a non-finite weight. */
int32_t engine_quantize(const void* w, int32_t dtype, EngineQuantWeight* q);

/* out [rows, cols] = the dequantized weight, f32, or rounded to bf16 (nearest even) when dtype is bf16. */
int32_t engine_dequantize(const EngineQuantWeight* q, int32_t dtype, void* out);

/* 1 when the fused layer kernels round their bf16 outputs with AVX512-BF16's conversion (ISA avx512 on a CPU that has
 * it, unless ENGINE_NATIVE_AVX512BF16=0), else 0: to nearest even like the other paths, but fp32 denormals become zeros. */
int32_t engine_fused_bf16_conversions(void);

/* Dequantizing matmul, forward: y [m, rows] = x [m, cols] . dequant(W)^T. Input gradient (W is frozen):
 * dx [m, cols] = dy [m, rows] . dequant(W). Activations f32 or bf16 (then W is dequantized to bf16, as
 * dequantize-then-matmul in bf16 does); products accumulated in f32; the output in out_dtype. */
int32_t engine_qmatmul_forward(const void* x, int32_t x_dtype, int64_t m, const EngineQuantWeight* q, void* y, int32_t out_dtype);
int32_t engine_qmatmul_backward_input(const void* dy, int32_t dy_dtype, int64_t m, const EngineQuantWeight* q, void* dx,
                                      int32_t out_dtype);
/* 1 when bf16 activations use the AVX512-BF16 dot-product kernel (ISA avx512 on a CPU that has it), else 0. */
int32_t engine_qmatmul_bf16_dot_available(void);

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
