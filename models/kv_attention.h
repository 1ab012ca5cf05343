// Attention of trainable query tokens over a frozen backbone's stored keys and values:
// softmax(q·Kᵀ·scale)·V, with K/V in any floating dtype (float32 from a live backbone pass, float16
// as a feature cache holds them) and the arithmetic in q's dtype.
//
// On the CPU, float32 q with float32 or float16 K/V runs a kernel (models/kv_attention_kernel.h)
// that reads each K/V row once per pass, converting float16 a row at a time: no converted copy,
// none of the per-(image, head) matrix products that made ATen's batched matmul slow for a few
// query tokens (at ViT-B/16, batch 64, all layers forward + backward: 2.7× faster at T = 1, 1.7× at
// T = 4, about even at T = 16; `petl bench --cached` prints it). Its sums run in a fixed order, so values
// do not depend on threads or on the K/V layout, and equal the plain expression to float round-off;
// training and evaluation (no gradients) get the same values. While gradients are recorded an
// autograd function keeps the K/V it was given — never a float32 copy of float16 features — and
// reads them again in backward. Elsewhere (GPUs, other dtypes) the same function runs the
// operations autograd records for the plain expression (matmul → ·scale → softmax → matmul),
// converting K/V a few images at a time: bit-identical to it (tests/test_kv_attention.cpp).
// Under autocast (bf16) the plain expression runs, with autocast's casts.
#pragma once
#include <torch/torch.h>

namespace petl {

// K/V of another dtype are converted a few images at a time (about 4 MiB of float32 K/V per chunk,
// which stay in the processor's cache for the matmul; `chunk` > 0 sets the images per chunk).
// q: (B, H, T, dh); k, v: (B, H, N, dh). Returns (B, H, T, dh).
// rows (optional, int64 (B) on the CPU): k and v are a resident store (R, H, N, dh) and image b of the
// batch is its row rows[b]. The kernel reads those rows in place (the batch's K/V are never copied,
// and backward keeps only the index); elsewhere the rows are gathered first, as a copy. Same values
// as attending over k.index_select(0, rows) (bit-identical with the kernel).
torch::Tensor frozen_kv_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale,
                                  int64_t chunk = 0, const torch::Tensor& rows = {});

// Whether training on the CPU uses the kernel (default) or the ATen operations (benchmarks, tests).
void kv_attention_use_kernel(bool on);

}  // namespace petl
