#include "harness/train/precision.h"

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <atomic>
#include <torch/version.h>

#include "core/error.h"

// LibTorch 2.4 replaced the per-device autocast calls with ones taking the device type.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define PETL_AUTOCAST_BY_DEVICE_TYPE 1
#endif

#if TORCH_VERSION_MAJOR < 2
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

// LibTorch 1.13's CPU autocast passes layer_norm through untouched, and its CPU kernel refuses a
// bfloat16 input with float32 weights (a LayerNorm after an autocast Linear: LST's side network,
// SynQT's query path). CUDA autocast and LibTorch 2.x run it in float32 / mixed; so does this.
namespace {
at::Tensor layer_norm_autocast_cpu(const at::Tensor& input, c10::IntArrayRef normalized_shape,
                                   const c10::optional<at::Tensor>& weight, const c10::optional<at::Tensor>& bias,
                                   double eps, bool cudnn_enable) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCPU);
  const bool low = input.scalar_type() == at::kBFloat16;
  return at::layer_norm(low ? input.to(at::kFloat) : input, normalized_shape, weight, bias, eps, cudnn_enable);
}
}  // namespace
TORCH_LIBRARY_IMPL(aten, AutocastCPU, m) { m.impl("layer_norm", TORCH_FN(layer_norm_autocast_cpu)); }
#endif

namespace petl {
namespace {
std::atomic<int> g_precision{int(Precision::kFp32)};
}

at::Tensor widen(const at::Tensor& t) {
  const auto s = t.scalar_type();
  return s == at::kBFloat16 || s == at::kHalf ? t.to(at::kFloat) : t;
}

void set_precision(Precision p) {
  g_precision = int(p);
  // fp32 means float32 arithmetic on GPUs too: no TensorFloat-32 in cuBLAS or cuDNN (PyTorch lets
  // cuDNN's convolutions use it by default), so CUDA and CPU agree to float round-off.
  at::globalContext().setAllowTF32CuBLAS(false);
  at::globalContext().setAllowTF32CuDNN(false);
}
Precision current_precision() { return Precision(g_precision.load()); }

Autocast::Autocast(const c10::Device& device) {
  if (current_precision() != Precision::kBf16) return;
  active_ = true;
  cuda_ = device.is_cuda();
#ifdef PETL_AUTOCAST_BY_DEVICE_TYPE
  const auto type = cuda_ ? at::kCUDA : at::kCPU;
  was_enabled_ = at::autocast::is_autocast_enabled(type);
  prev_dtype_ = int(at::autocast::get_autocast_dtype(type));
  at::autocast::set_autocast_dtype(type, at::kBFloat16);
  at::autocast::set_autocast_enabled(type, true);
#else
  if (cuda_) {
    was_enabled_ = at::autocast::is_enabled();
    prev_dtype_ = int(at::autocast::get_autocast_gpu_dtype());
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(true);
  } else {
    was_enabled_ = at::autocast::is_cpu_enabled();
    prev_dtype_ = int(at::autocast::get_autocast_cpu_dtype());
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(true);
  }
#endif
  at::autocast::increment_nesting();
}

Autocast::~Autocast() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  const auto dtype = at::ScalarType(prev_dtype_);
#ifdef PETL_AUTOCAST_BY_DEVICE_TYPE
  const auto type = cuda_ ? at::kCUDA : at::kCPU;
  at::autocast::set_autocast_enabled(type, was_enabled_);
  at::autocast::set_autocast_dtype(type, dtype);
#else
  if (cuda_) {
    at::autocast::set_enabled(was_enabled_);
    at::autocast::set_autocast_gpu_dtype(dtype);
  } else {
    at::autocast::set_cpu_enabled(was_enabled_);
    at::autocast::set_autocast_cpu_dtype(dtype);
  }
#endif
}

}  // namespace petl
