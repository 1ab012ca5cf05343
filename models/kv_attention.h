// Attention of trainable query tokens over a frozen backbone's stored keys and values:
// softmax(q·Kᵀ·scale)·V, with K/V in any floating dtype (float32 from a live backbone pass, float16
// as a feature cache holds them) and the arithmetic in q's dtype.
//
// While gradients are recorded, an autograd function keeps the K/V it was given — not a converted
// float32 copy — and converts them again in backward, so training from resident float16 features
// never holds a float32 K/V of the whole batch. Forward and backward are the operations autograd
// records for the plain expression (matmul → ·scale → softmax → matmul; bmm and softmax backward),
// so values and q's gradient are bit-identical to it (tests/test_kv_attention.cpp).
// Under autocast (bf16) the plain expression runs, with autocast's casts.
#pragma once
#include <torch/torch.h>

namespace petl {

// K/V of another dtype are converted a few images at a time (about 4 MiB of float32 K/V per chunk,
// which stay in the processor's cache for the matmul; `chunk` > 0 sets the images per chunk).
// q: (B, H, T, dh); k, v: (B, H, N, dh). Returns (B, H, T, dh).
torch::Tensor frozen_kv_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale,
                                  int64_t chunk = 0);

}  // namespace petl
