#include "harness/train/evaluate.h"

#include "core/progress.h"
#include "core/stop.h"
#include "harness/train/feature_cache.h"
#include "harness/train/precision.h"

namespace petl {

EvalResult evaluate(Method& method, const torch::Tensor& images, const torch::Tensor& labels, int64_t batch_size,
                    torch::Tensor* logits_out, bool progress, const std::string& label, torch::Device device) {
  torch::NoGradGuard ng;
  Autocast amp(device);
  method.train(false);
  const int64_t n = images.size(0);
  EvalResult r;
  r.n = n;
  int64_t correct = 0;
  std::vector<torch::Tensor> all;
  ProgressBar bar(label, (n + batch_size - 1) / batch_size, progress);
  for (int64_t s = 0; s < n; s += batch_size) {
    stop::check();  // a stop during an evaluation: the job saves its state and ends
    int64_t len = std::min(batch_size, n - s);
    auto logits = widen(method.forward(images.narrow(0, s, len).to(device))).to(torch::kCPU);
    correct += logits.argmax(1).eq(labels.narrow(0, s, len)).sum().item<int64_t>();
    if (logits_out) all.push_back(logits);
    bar.add(1);
  }
  bar.finish();
  r.accuracy = n ? 100.0 * double(correct) / double(n) : 0.0;
  if (logits_out) *logits_out = all.empty() ? torch::empty({0}) : torch::cat(all, 0);
  return r;
}

EvalResult evaluate_cached(Method& method, const std::string& cache_path,
                           const std::map<std::string, std::string>& expected_identity, const CacheTaps& taps,
                           int64_t batch_size, torch::Device device, torch::Tensor* logits_out) {
  torch::NoGradGuard ng;
  Autocast amp(device);
  method.train(false);
  EvalResult r;
  int64_t correct = 0;
  std::vector<torch::Tensor> all;
  for_each_cached_batch(cache_path, expected_identity, taps, batch_size, device,
                        [&](const CachedFeatures& f, const torch::Tensor& labels) {
                          auto logits = widen(method.forward_cached(f)).to(torch::kCPU);
                          correct += logits.argmax(1).eq(labels).sum().item<int64_t>();
                          r.n += labels.size(0);
                          if (logits_out) all.push_back(logits);
                        });
  r.accuracy = r.n ? 100.0 * double(correct) / double(r.n) : 0.0;
  if (logits_out) *logits_out = all.empty() ? torch::empty({0}) : torch::cat(all, 0);
  return r;
}

}  // namespace petl
