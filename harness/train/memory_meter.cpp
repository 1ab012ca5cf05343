#include "harness/train/memory_meter.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#ifdef PETL_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <algorithm>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/error.h"

namespace petl {
namespace {

std::atomic<int64_t> g_live{0}, g_peak{0}, g_allocs{0}, g_high{0}, g_held{0}, g_cached{0}, g_reuses{0};
std::atomic<bool> g_installed{false};

// Freed blocks of at least kCacheMin bytes are kept, keyed by their size rounded up to a page, and
// handed out again to the next allocation of that size: a training loop allocates the same buffers
// every step, and without this each of them is fresh memory from the kernel (mmap, page faults,
// zeroing) — measured as 22 % of a SynQT step from resident features at ViT-B/16. kCacheMin is
// glibc's default mmap threshold (128 KiB): smaller blocks come from the heap and are reused there;
// with a 1 MiB minimum a resident SynQT T=4 step still took 14,200 page faults (blocks of one
// batch's query activations, 256 x 768 floats) at about 10 us each on this machine; now ~100.
// The counts stay those of the tensors (live/peak: requested bytes). The cache is bounded so that
// blocks held by tensors plus blocks kept never exceed the highest live count seen since install
// plus kCacheSlack: the oldest kept blocks are released first.
constexpr size_t kCacheMin = size_t(128) << 10, kPage = 4096;
std::atomic<size_t> g_cache_min{kCacheMin};  // kCacheMin unless a benchmark compares (set_cache_min)
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
using KeptMap = std::multimap<size_t, Kept>;
std::mutex g_mu;
uint64_t g_clock = 0;  // under g_mu
std::unordered_map<void*, Entry>& table() {
  static auto* t = new std::unordered_map<void*, Entry>();  // never destroyed: frees may run at exit
  return *t;
}
KeptMap& kept() {
  static auto* k = new KeptMap();
  return *k;
}
// The kept blocks by age (Kept::when → its entry in kept()), oldest first.
std::map<uint64_t, KeptMap::iterator>& by_age() {
  static auto* a = new std::map<uint64_t, KeptMap::iterator>();
  return *a;
}
// Under g_mu: takes the kept entry `it` out of both indexes; returns its block.
c10::DataPtr take_kept(KeptMap::iterator it) {
  c10::DataPtr d = std::move(it->second.inner);
  g_cached.fetch_sub(int64_t(it->first));
  by_age().erase(it->second.when);
  kept().erase(it);
  return d;
}

// Under g_mu: moves the oldest kept blocks into `out` until `need` more bytes fit the bound;
// returns whether they fit (false: nothing kept is left and they still do not).
bool evict_for(int64_t need, std::vector<c10::DataPtr>& out) {
  const int64_t bound = std::max(g_high.load(), g_held.load() + need) + kCacheSlack;
  auto fits = [&] { return g_held.load() + g_cached.load() + need <= bound; };
  while (!by_age().empty() && !fits()) out.push_back(take_kept(by_age().begin()->second));
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
    if (block >= g_cache_min.load(std::memory_order_relaxed)) {
      keep = evict_for(int64_t(block), release);
    }
    if (keep) {
      const uint64_t when = ++g_clock;
      by_age().emplace(when, kept().emplace(block, Kept{std::move(it->second.inner), when}));
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
    const size_t min = g_cache_min.load(std::memory_order_relaxed);
    const size_t block = n >= min ? (n + kPage - 1) / kPage * kPage : n;
    c10::DataPtr d;
    std::vector<c10::DataPtr> release;
    if (block >= min) {
      std::lock_guard<std::mutex> lock(g_mu);
      // The most recently kept block of that size (equal keys keep their insertion order): its
      // memory is the likeliest still in the CPU's caches, as a malloc's LIFO free lists give.
      auto it = kept().upper_bound(block);
      if (it != kept().begin() && std::prev(it)->first == block) {
        d = take_kept(std::prev(it));
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
int64_t MemoryMeter::cache_min() { return int64_t(g_cache_min.load()); }
void MemoryMeter::set_cache_min(int64_t bytes) {
  PETL_CHECK(bytes >= int64_t(kPage), "MemoryMeter::set_cache_min: expected at least ", kPage, " bytes, got ", bytes);
  g_cache_min.store(size_t(bytes));
}
void MemoryMeter::release_cache() {
  std::vector<c10::DataPtr> release;
  std::lock_guard<std::mutex> lock(g_mu);
  for (auto& [block, k] : kept()) release.push_back(std::move(k.inner));
  kept().clear();
  by_age().clear();
  g_cached.store(0);
}

namespace {

class CpuMemory final : public DeviceMemory {
 public:
  std::string name() const override { return "cpu"; }
  void reset_peak() const override { MemoryMeter::reset_peak(); }
  int64_t allocated() const override { return MemoryMeter::live_bytes(); }
  int64_t peak_allocated() const override { return MemoryMeter::peak_bytes(); }
  int64_t peak_reserved() const override { return 0; }
  bool has_reserved() const override { return false; }
};

#ifdef PETL_WITH_CUDA
// The allocator's statistics arrays are indexed by StatType, whose AGGREGATE (all pools) is 0 in
// every LibTorch; its namespace moved in 2.x (c10::CachingAllocator), so the index is spelled out.
constexpr size_t kAggregate = 0;
class CudaMemory final : public DeviceMemory {
 public:
  explicit CudaMemory(int device) : device_(device) {}
  std::string name() const override { return "cuda:" + std::to_string(device_); }
  void reset_peak() const override { c10::cuda::CUDACachingAllocator::resetPeakStats(device_); }
  int64_t allocated() const override { return stats().allocated_bytes[kAggregate].current; }
  int64_t peak_allocated() const override { return stats().allocated_bytes[kAggregate].peak; }
  int64_t peak_reserved() const override { return stats().reserved_bytes[kAggregate].peak; }
  bool has_reserved() const override { return true; }

 private:
  auto stats() const { return c10::cuda::CUDACachingAllocator::getDeviceStats(device_); }
  int device_;
};
#endif

}  // namespace

bool cuda_memory_available() {
#ifdef PETL_WITH_CUDA
  return true;
#else
  return false;
#endif
}

const DeviceMemory& DeviceMemory::cpu() {
  static const CpuMemory m;
  return m;
}

const DeviceMemory& DeviceMemory::of(const c10::Device& device) {
  if (!device.is_cuda()) return cpu();
#ifdef PETL_WITH_CUDA
  static std::mutex mu;
  static std::map<int, std::unique_ptr<CudaMemory>> meters;
  const int index = std::max<int>(0, device.index());
  std::lock_guard<std::mutex> lock(mu);
  auto& m = meters[index];
  if (!m) m = std::make_unique<CudaMemory>(index);
  return *m;
#else
  PETL_FAIL("device ", device.str(), ": measuring GPU memory needs a CUDA LibTorch build");
#endif
}

PeakProbe::PeakProbe(const DeviceMemory& memory) : memory_(memory) {
  memory_.reset_peak();
  base_ = memory_.allocated();
}
int64_t PeakProbe::peak() const { return memory_.peak_allocated(); }

void TrainingPeak::take_peak() {
  train_peak_ = std::max(train_peak_, memory_->peak_allocated());
  if (memory_->has_reserved()) train_reserved_ = std::max(train_reserved_, memory_->peak_reserved());
}
void TrainingPeak::begin() {
  memory_->reset_peak();
  baseline_ = memory_->allocated();
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
  if (!in_eval_) take_peak();
}
void TrainingPeak::pause() {
  if (in_eval_) return;
  take_peak();
  memory_->reset_peak();
  in_eval_ = true;
}
void TrainingPeak::resume() {
  if (!in_eval_) return;
  eval_peak_ = std::max(eval_peak_, memory_->peak_allocated());
  memory_->reset_peak();
  in_eval_ = false;
}
void TrainingPeak::end() {
  if (in_eval_) resume();
  take_peak();
}

}  // namespace petl
