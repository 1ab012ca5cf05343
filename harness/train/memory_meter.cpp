#include "harness/train/memory_meter.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#ifdef PETL_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "core/error.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <vector>
#include <unordered_map>

namespace petl {
namespace {

std::atomic<int64_t> g_live{0}, g_peak{0}, g_allocs{0}, g_high{0}, g_held{0}, g_cached{0}, g_reuses{0};
std::atomic<bool> g_installed{false};

// Freed blocks of at least kCacheMin bytes are kept, keyed by their size rounded up to a page, and
// handed out again to the next allocation of that size: a training loop allocates the same large
// buffers every step, and without this each of them is fresh memory from the kernel (mmap, page
// faults, zeroing) — measured as 22 % of a SynQT step from resident features at ViT-B/16.
// The counts stay those of the tensors (live/peak: requested bytes). The cache is bounded so that
// blocks held by tensors plus blocks kept never exceed the highest live count seen since install
// plus kCacheSlack: the oldest kept blocks are released first.
constexpr size_t kCacheMin = size_t(1) << 20, kPage = 4096;
constexpr int64_t kCacheSlack = int64_t(64) << 20;

// Live allocations: data pointer → the wrapped allocation, its requested and its block size. The
// DataPtr we hand out has context == data (some c10 code paths, e.g. raw_allocate, require that),
// so the sizes are looked up here on delete.
struct Entry {
  c10::DataPtr inner;
  size_t size, block;
};
struct Kept {
  c10::DataPtr inner;
  uint64_t when;
};
std::mutex g_mu;
uint64_t g_clock = 0;  // under g_mu
std::unordered_map<void*, Entry>& table() {
  static auto* t = new std::unordered_map<void*, Entry>();  // never destroyed: frees may run at exit
  return *t;
}
std::multimap<size_t, Kept>& kept() {
  static auto* k = new std::multimap<size_t, Kept>();
  return *k;
}

// Under g_mu: moves the oldest kept blocks into `out` until `need` more bytes fit the bound;
// returns whether they fit (false: nothing kept is left and they still do not).
bool evict_for(int64_t need, std::vector<c10::DataPtr>& out) {
  const int64_t bound = std::max(g_high.load(), g_held.load() + need) + kCacheSlack;
  auto fits = [&] { return g_held.load() + g_cached.load() + need <= bound; };
  while (!kept().empty() && !fits()) {
    auto oldest = kept().begin();
    for (auto it = kept().begin(); it != kept().end(); ++it)
      if (it->second.when < oldest->second.when) oldest = it;
    g_cached.fetch_sub(int64_t(oldest->first));
    out.push_back(std::move(oldest->second.inner));
    kept().erase(oldest);
  }
  return fits();
}

void counting_delete(void* p) {
  if (!p) return;
  std::vector<c10::DataPtr> release;  // freed through the wrapped allocator's deleter, outside the lock
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = table().find(p);
    if (it == table().end()) return;  // not ours (cannot happen: only our DataPtrs use this deleter)
    g_live.fetch_sub(int64_t(it->second.size), std::memory_order_relaxed);
    g_held.fetch_sub(int64_t(it->second.block));
    const size_t block = it->second.block;
    bool keep = false;
    if (block >= kCacheMin) {
      keep = evict_for(int64_t(block), release);
    }
    if (keep) {
      kept().emplace(block, Kept{std::move(it->second.inner), ++g_clock});
      g_cached.fetch_add(int64_t(block));
    } else {
      release.push_back(std::move(it->second.inner));
    }
    table().erase(it);
  }
}

class CountingAllocator final : public c10::Allocator {
 public:
  explicit CountingAllocator(c10::Allocator* inner) : inner_(inner) {}
  c10::DataPtr allocate(size_t n) const override {
    const size_t block = n >= kCacheMin ? (n + kPage - 1) / kPage * kPage : n;
    c10::DataPtr d;
    std::vector<c10::DataPtr> release;
    if (block >= kCacheMin) {
      std::lock_guard<std::mutex> lock(g_mu);
      auto it = kept().find(block);
      if (it != kept().end()) {
        d = std::move(it->second.inner);
        kept().erase(it);
        g_cached.fetch_sub(int64_t(block));
        g_reuses.fetch_add(1, std::memory_order_relaxed);
      } else {
        evict_for(int64_t(block), release);
      }
    }
    release.clear();
    if (!d) d = inner_->allocate(block);
    void* data = d.get();
    auto device = d.device();
    if (!data) return d;  // zero-size allocations
    {
      std::lock_guard<std::mutex> lock(g_mu);
      table()[data] = Entry{std::move(d), n, block};
      g_held.fetch_add(int64_t(block));
    }
    int64_t live = g_live.fetch_add(int64_t(n), std::memory_order_relaxed) + int64_t(n);
    g_allocs.fetch_add(1, std::memory_order_relaxed);
    for (auto* top : {&g_peak, &g_high}) {
      int64_t v = top->load(std::memory_order_relaxed);
      while (live > v && !top->compare_exchange_weak(v, live, std::memory_order_relaxed)) {
      }
    }
    return {data, data, &counting_delete, device};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &counting_delete; }

 private:
  c10::Allocator* inner_;
};

}  // namespace

void MemoryMeter::install() {
  bool expected = false;
  if (!g_installed.compare_exchange_strong(expected, true)) return;
  static CountingAllocator counting(c10::GetCPUAllocator());
  c10::SetCPUAllocator(&counting, /*priority=*/1);
}

bool MemoryMeter::installed() { return g_installed.load(); }
int64_t MemoryMeter::live_bytes() { return g_live.load(); }
int64_t MemoryMeter::peak_bytes() { return g_peak.load(); }
void MemoryMeter::reset_peak() { g_peak.store(g_live.load()); }
int64_t MemoryMeter::allocations() { return g_allocs.load(); }
int64_t MemoryMeter::cached_bytes() { return g_cached.load(); }
int64_t MemoryMeter::held_bytes() { return g_held.load(); }
int64_t MemoryMeter::high_bytes() { return g_high.load(); }
int64_t MemoryMeter::reuses() { return g_reuses.load(); }
int64_t MemoryMeter::cache_slack() { return kCacheSlack; }
void MemoryMeter::release_cache() {
  std::vector<c10::DataPtr> release;
  std::lock_guard<std::mutex> lock(g_mu);
  for (auto& [block, k] : kept()) release.push_back(std::move(k.inner));
  kept().clear();
  g_cached.store(0);
}

#ifdef PETL_WITH_CUDA
// The allocator's statistics arrays are indexed by StatType, whose AGGREGATE (all pools) is 0 in
// every LibTorch; its namespace moved in 2.x (c10::CachingAllocator), so the index is spelled out.
constexpr size_t kAggregate = 0;
bool CudaMemory::available() { return true; }
void CudaMemory::reset_peak(int d) { c10::cuda::CUDACachingAllocator::resetPeakStats(d); }
int64_t CudaMemory::allocated(int d) {
  return c10::cuda::CUDACachingAllocator::getDeviceStats(d).allocated_bytes[kAggregate].current;
}
int64_t CudaMemory::peak_allocated(int d) {
  return c10::cuda::CUDACachingAllocator::getDeviceStats(d).allocated_bytes[kAggregate].peak;
}
int64_t CudaMemory::peak_reserved(int d) {
  return c10::cuda::CUDACachingAllocator::getDeviceStats(d).reserved_bytes[kAggregate].peak;
}
#else
bool CudaMemory::available() { return false; }
void CudaMemory::reset_peak(int) { PETL_FAIL("CUDA memory statistics need a CUDA LibTorch build"); }
int64_t CudaMemory::allocated(int) { PETL_FAIL("CUDA memory statistics need a CUDA LibTorch build"); }
int64_t CudaMemory::peak_allocated(int) { PETL_FAIL("CUDA memory statistics need a CUDA LibTorch build"); }
int64_t CudaMemory::peak_reserved(int) { PETL_FAIL("CUDA memory statistics need a CUDA LibTorch build"); }
#endif

PeakProbe::PeakProbe(int cuda_device) : cuda_device_(cuda_device) {
  if (cuda_device_ >= 0) {
    CudaMemory::reset_peak(cuda_device_);
    base_ = CudaMemory::allocated(cuda_device_);
  } else {
    MemoryMeter::reset_peak();
    base_ = MemoryMeter::live_bytes();
  }
}
int64_t PeakProbe::peak() const {
  return cuda_device_ >= 0 ? CudaMemory::peak_allocated(cuda_device_) : MemoryMeter::peak_bytes();
}

int64_t TrainingPeak::now_peak() const {
  return cuda_device_ >= 0 ? CudaMemory::peak_allocated(cuda_device_) : MemoryMeter::peak_bytes();
}
void TrainingPeak::reset() const {
  if (cuda_device_ >= 0)
    CudaMemory::reset_peak(cuda_device_);
  else
    MemoryMeter::reset_peak();
}

void TrainingPeak::begin() {
  reset();
  baseline_ = cuda_device_ >= 0 ? CudaMemory::allocated(cuda_device_) : MemoryMeter::live_bytes();
  train_peak_ = baseline_;
  eval_peak_ = 0;
  train_reserved_ = 0;
  in_eval_ = false;
}
void TrainingPeak::continue_from(int64_t train_peak, int64_t baseline, int64_t reserved) {
  begin();
  train_peak_ = std::max(train_peak_, train_peak);
  baseline_ = baseline;
  train_reserved_ = std::max(train_reserved_, reserved);
}
void TrainingPeak::fold() {
  if (in_eval_) return;
  train_peak_ = std::max(train_peak_, now_peak());
  if (cuda_device_ >= 0) train_reserved_ = std::max(train_reserved_, CudaMemory::peak_reserved(cuda_device_));
}
void TrainingPeak::pause() {
  if (in_eval_) return;
  train_peak_ = std::max(train_peak_, now_peak());
  if (cuda_device_ >= 0) train_reserved_ = std::max(train_reserved_, CudaMemory::peak_reserved(cuda_device_));
  reset();
  in_eval_ = true;
}
void TrainingPeak::resume() {
  if (!in_eval_) return;
  eval_peak_ = std::max(eval_peak_, now_peak());
  reset();
  in_eval_ = false;
}
void TrainingPeak::end() {
  if (in_eval_) resume();
  train_peak_ = std::max(train_peak_, now_peak());
  if (cuda_device_ >= 0) train_reserved_ = std::max(train_reserved_, CudaMemory::peak_reserved(cuda_device_));
}

}  // namespace petl
