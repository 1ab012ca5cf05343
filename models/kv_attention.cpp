#include "models/kv_attention.h"

#include <ATen/Parallel.h>
#include <algorithm>
#include <atomic>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <tuple>
#include <utility>

#include "models/kv_attention_kernel.h"

namespace petl {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

Tensor as_dtype(const Tensor& t, const Tensor& like) {
  return t.scalar_type() == like.scalar_type() ? t : t.to(like.scalar_type());
}

bool autocast_on() {
  return c10::impl::tls_is_dispatch_key_included(c10::DispatchKey::AutocastCPU) ||
         c10::impl::tls_is_dispatch_key_included(c10::DispatchKey::AutocastCUDA);
}

// The plain expression; its recorded graph is what FrozenKv's backward reproduces.
Tensor plain(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  auto a = (torch::matmul(q, k.transpose(-2, -1)) * scale).softmax(-1);
  return torch::matmul(a, v);
}

// Images per chunk when K/V must be converted: the chunk's float32 K and V (about kChunkBytes)
// stay in the processor's cache between the conversion and the matmul that reads them; the
// caching CPU allocator hands the same block back for the next chunk. Rows of a bmm and a softmax
// are independent of the batch they are in, so chunking changes no value. On a GPU: one chunk.
constexpr int64_t kChunkBytes = int64_t(4) << 20;

int64_t chunk_images(const Tensor& k, int64_t requested) {
  if (requested > 0) return requested;
  if (!k.device().is_cpu()) return k.size(0);  // a GPU converts the layer at once (one kernel each)
  const int64_t per_image = 2 * k.size(1) * k.size(2) * k.size(3) * int64_t(sizeof(float));
  return std::max<int64_t>(1, kChunkBytes / std::max<int64_t>(1, per_image));
}

// The CPU kernel (models/kv_attention_kernel.h) takes float32 q with float32 or float16 K/V whose
// rows are contiguous; anything else (a GPU, other dtypes) runs the ATen operations below.
std::atomic<bool> g_use_kernel{true};

// rows: see frozen_kv_attention (undefined: image b is row b of k and v).
bool kernel_applies(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& rows) {
  if (!g_use_kernel.load(std::memory_order_relaxed)) return false;
  const bool rows_ok = !rows.defined() || (rows.device().is_cpu() && rows.scalar_type() == torch::kInt64 &&
                                           rows.dim() == 1 && rows.is_contiguous() && rows.size(0) == q.size(0));
  auto kv_ok = [&](const Tensor& t) {
    return t.device().is_cpu() && t.dim() == 4 && t.stride(3) == 1 &&
           (t.scalar_type() == torch::kFloat32 || t.scalar_type() == torch::kFloat16);
  };
  // Exactly matching shapes (the kernel does not broadcast: K/V shared across images run as before).
  return q.device().is_cpu() && q.scalar_type() == torch::kFloat32 && q.dim() == 4 && kv_ok(k) && kv_ok(v) &&
         k.sizes() == v.sizes() && (rows.defined() || k.size(0) == q.size(0)) && rows_ok && k.size(1) == q.size(1) &&
         k.size(3) == q.size(3) && q.size(3) <= 1024;
}

kv_kernel::Rows rows_of(const Tensor& t, const Tensor& rows) {
  return {t.data_ptr(), t.scalar_type() == torch::kFloat16,
          t.stride(0),  t.stride(1),
          t.stride(2),  rows.defined() ? rows.data_ptr<int64_t>() : nullptr};
}

// {attention probabilities (B, H, T, N), output (B, H, T, dh)}.
std::pair<Tensor, Tensor> kernel_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& rows,
                                         double scale) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), N = k.size(2), dh = q.size(3);
  const auto qc = q.contiguous();
  auto a = torch::empty({B, H, T, N}, q.options());
  auto o = torch::empty({B, H, T, dh}, q.options());
  const auto kr = rows_of(k, rows), vr = rows_of(v, rows);
  const kv_kernel::Shape sh{H, T, N, dh, float(scale)};
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    kv_kernel::forward(qc.data_ptr<float>(), kr, vr, sh, b0, b1, a.data_ptr<float>(), o.data_ptr<float>());
  });
  return {a, o};
}

// rows: an empty tensor, or the resident rows where the kernel applies (frozen_kv_attention gathers
// them otherwise); autograd functions take defined tensors only.
Tensor rows_or_none(const Tensor& rows) { return rows.numel() ? rows : Tensor(); }

struct FrozenKv : torch::autograd::Function<FrozenKv> {
  static Tensor forward(AutogradContext* ctx, const Tensor& q, const Tensor& k, const Tensor& v,
                        const Tensor& rows_given, double scale, int64_t chunk) {
    const int64_t B = q.size(0);
    const Tensor rows = rows_or_none(rows_given);
    Tensor a, o;
    const bool kernel = kernel_applies(q, k, v, rows);
    TORCH_CHECK(kernel || !rows.defined(), "frozen_kv_attention: resident rows without the kernel");
    ctx->saved_data["kernel"] = kernel;
    if (kernel) {
      std::tie(a, o) = kernel_forward(q, k, v, rows, scale);
    } else if (k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type()) {
      a = (torch::matmul(q, k.transpose(-2, -1)) * scale).softmax(-1);
      o = torch::matmul(a, v);
    } else {
      a = torch::empty({B, q.size(1), q.size(2), k.size(2)}, q.options());
      o = torch::empty({B, q.size(1), q.size(2), v.size(3)}, q.options());
      for (int64_t b0 = 0; b0 < B; b0 += chunk) {
        const int64_t c = std::min(chunk, B - b0);
        auto kf = k.narrow(0, b0, c).to(q.scalar_type()), vf = v.narrow(0, b0, c).to(q.scalar_type());
        auto ac = (torch::matmul(q.narrow(0, b0, c), kf.transpose(-2, -1)) * scale).softmax(-1);
        a.narrow(0, b0, c).copy_(ac);
        o.narrow(0, b0, c).copy_(torch::matmul(ac, vf));
      }
    }
    ctx->save_for_backward({a, k, v, rows_given});  // k, v as given: no float32 copy (nor a gathered one) is kept
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["chunk"] = chunk;
    return o;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& a = saved[0];
    const double scale = ctx->saved_data["scale"].toDouble();
    const int64_t B = a.size(0), H = a.size(1), T = a.size(2), N = a.size(3), dh = saved[1].size(3);
    if (ctx->saved_data["kernel"].toBool()) {
      const auto go = grads[0].contiguous();
      auto gq = torch::empty({B, H, T, dh}, a.options());
      auto scratch = torch::empty({at::get_num_threads(), T * N}, a.options());
      const Tensor rows = rows_or_none(saved[3]);
      const auto kr = rows_of(saved[1], rows), vr = rows_of(saved[2], rows);
      const kv_kernel::Shape sh{H, T, N, dh, float(scale)};
      at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
        kv_kernel::backward(go.data_ptr<float>(), a.data_ptr<float>(), kr, vr, sh, b0, b1, gq.data_ptr<float>(),
                            scratch.data_ptr<float>() + at::get_thread_num() * T * N);
      });
      return {gq, Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
    }
    const bool convert = saved[1].scalar_type() != a.scalar_type() || saved[2].scalar_type() != a.scalar_type();
    const int64_t chunk = convert ? ctx->saved_data["chunk"].toInt() : B;
    Tensor gq = convert ? torch::empty({B, H, T, dh}, a.options()) : Tensor();
    for (int64_t b0 = 0; b0 < B; b0 += chunk) {
      const int64_t c = std::min(chunk, B - b0);
      const auto kf = saved[1].narrow(0, b0, c).to(a.scalar_type()), vf = saved[2].narrow(0, b0, c).to(a.scalar_type());
      const auto ac = a.narrow(0, b0, c);
      // o = bmm(a3, v3): grad a3 = grad_o3 · v3ᵀ
      auto go = grads[0].narrow(0, b0, c).reshape({c * H, T, dh});
      auto ga = go.bmm(vf.reshape({c * H, N, dh}).transpose(1, 2)).view({c, H, T, N});
      // a = softmax(s'), s' = s · scale, s = bmm(q3, kT3): grad q3 = (grad_s' · scale) · kT3ᵀ
      auto gs = torch::_softmax_backward_data(ga, ac, -1, a.scalar_type()) * scale;
      auto gqc = gs.reshape({c * H, T, N}).bmm(kf.transpose(-2, -1).reshape({c * H, dh, N}).transpose(1, 2));
      if (convert)
        gq.narrow(0, b0, c).copy_(gqc.view({c, H, T, dh}));
      else  // one chunk, the whole batch: the product is the gradient
        gq = gqc.view({B, H, T, dh});
    }
    return {gq, Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

}  // namespace

void kv_attention_use_kernel(bool on) { g_use_kernel = on; }

Tensor frozen_kv_attention(const Tensor& q, const Tensor& k_in, const Tensor& v_in, double scale, int64_t chunk,
                           const Tensor& rows_in) {
  Tensor k = k_in, v = v_in, rows = rows_in;
  if (rows.defined()) {
    TORCH_CHECK(rows.dim() == 1 && rows.size(0) == q.size(0), "frozen_kv_attention: expected ", q.size(0),
                " resident rows (one per image), got shape ", rows.sizes());
    if (autocast_on() || !kernel_applies(q, k, v, rows)) {  // the batch's rows as a copy, as before
      k = k.index_select(0, rows.to(k.device()));
      v = v.index_select(0, rows.to(v.device()));
      rows = Tensor();
    } else if (rows.numel() > 0) {  // the kernel reads in place: every index must be a row of the store
      const auto lo = rows.min().item<int64_t>(), hi = rows.max().item<int64_t>();
      TORCH_CHECK(lo >= 0 && hi < k.size(0), "frozen_kv_attention: resident row index out of range [0, ", k.size(0),
                  "): ", lo < 0 ? lo : hi);
    }
  }
  if (autocast_on()) return plain(q, k, v, scale);              // autocast casts K/V itself
  if (!(torch::GradMode::is_enabled() && q.requires_grad())) {  // evaluation, a recomputation's first pass
    if (kernel_applies(q, k, v, rows)) return kernel_forward(q, k, v, rows, scale).second;
    return plain(q, as_dtype(k, q), as_dtype(v, q), scale);
  }
  return FrozenKv::apply(q, k, v, rows.defined() ? rows : torch::empty({0}, torch::kInt64), scale,
                         chunk_images(k, chunk));
}

}  // namespace petl
