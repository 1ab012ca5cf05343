#include "harness/train/job_state.h"

#include <cstdio>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/system.h"
#include "core/text.h"
#include "harness/train/train_util.h"
#include "models/checkpoint.h"

namespace petl {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr int kStateVersion = 1;

torch::Tensor bytes_tensor(const std::vector<uint8_t>& b) {
  return torch::from_blob(const_cast<uint8_t*>(b.data()), {int64_t(b.size())}, torch::kUInt8).clone();
}

json progress_json(const LoopProgress& p) {
  json evals = json::array();
  for (const auto& e : p.evals)
    evals.push_back({{"epoch", e.epoch}, {"test_acc", e.test_acc}, {"train_loss", e.train_loss}});
  json snaps = json::array();
  for (const auto& s : p.snapshots) snaps.push_back({{"epoch", s.epoch}, {"train_loss", s.train_loss}});
  return {{"epoch", p.epoch},
          {"eval_pending", p.eval_pending},
          {"iteration", p.current.next_iteration},
          {"has_perm", p.current.perm.defined()},
          {"loss_sum", p.current.loss_sum},
          {"epoch_seconds", p.current.seconds},
          {"epoch_images", p.current.images},
          {"epoch_train_loss", p.epoch_train_loss},
          {"evals", evals},
          {"snapshots", snaps},
          {"train_s", p.train_s},
          {"eval_s", p.eval_s},
          {"images", p.images},
          {"resumes", p.resumes},
          {"peak_train_bytes", p.peak_train},
          {"peak_baseline_bytes", p.peak_baseline},
          {"peak_reserved_bytes", p.peak_reserved},
          {"total_epochs", p.total_epochs}};
}

}  // namespace

std::string job_state_path(const std::string& out_dir, const std::string& job_key) {
  return (fs::path(out_dir) / "state" / (job_key + ".safetensors")).string();
}

void save_job_state(const std::string& path, const std::string& job_key, const LoopProgress& progress, Method& method,
                    torch::optim::AdamW& optimizer, torch::Device device) {
  NamedTensors tensors;
  for (auto& [name, t] : method.checkpoint_tensors()) tensors.emplace_back("model." + name, t.detach());
  json steps = json::object();
  const auto& states = optimizer.state();
  for (auto& [name, t] : method.trainable_parameters()) {
    auto it = states.find(optimizer_key(t));
    if (it == states.end()) continue;  // no step taken for it yet
    const auto& s = static_cast<const torch::optim::AdamWParamState&>(*it->second);
    steps[name] = s.step();
    tensors.emplace_back("optim." + name + ".exp_avg", s.exp_avg());
    tensors.emplace_back("optim." + name + ".exp_avg_sq", s.exp_avg_sq());
    if (s.max_exp_avg_sq().defined()) tensors.emplace_back("optim." + name + ".max_exp_avg_sq", s.max_exp_avg_sq());
  }
  tensors.emplace_back("rng.cpu", generator_state(torch::kCPU));
  if (device.is_cuda()) tensors.emplace_back("rng.cuda", generator_state(device));
  if (progress.current.perm.defined()) tensors.emplace_back("perm", progress.current.perm);
  for (size_t k = 0; k < progress.snapshots.size(); ++k)
    for (size_t i = 0; i < progress.snapshots[k].bytes.size(); ++i)
      tensors.emplace_back(str_cat("snapshot.", k, ".", i), bytes_tensor(progress.snapshots[k].bytes[i]));
  json meta = progress_json(progress);
  meta["version"] = kStateVersion;
  meta["job_key"] = job_key;
  meta["method"] = method.name();
  meta["optimizer_steps"] = steps;
  meta["saved_utc"] = now_utc();
  meta["summary"] = str_cat(
      progress.epoch_train_loss.size(), "/", progress.total_epochs, " epochs trained",
      progress.current.next_iteration > 0
          ? str_cat(", epoch ", progress.epoch + 1, " at iteration ", progress.current.next_iteration)
          : std::string(),
      progress.eval_pending ? str_cat(", evaluation of epoch ", progress.epoch + 1, " pending") : std::string());
  fs::create_directories(fs::path(path).parent_path());
  save_named_tensors(path, tensors, {{"petl_job_state", meta.dump()}, {"job_key", job_key}, {"format", "pt"}});
}

std::optional<LoopProgress> load_job_state(const std::string& path, const std::string& job_key, Method& method,
                                           torch::optim::AdamW& optimizer, torch::Device device) {
  if (!fs::exists(path)) return std::nullopt;
  auto refuse = [&](const std::string& why) {
    std::fprintf(stderr, "[petl] warning: the training state %s is not used (%s); training from the start\n",
                 path.c_str(), why.c_str());
    return std::nullopt;
  };
  std::map<std::string, torch::Tensor> t;
  std::map<std::string, std::string> md;
  json meta;
  try {
    t = load_named_tensors(path, &md);
    meta = json::parse(md.at("petl_job_state"));
  } catch (const std::exception& e) {
    return refuse(std::string("unreadable: ") + e.what());
  }
  try {
    if (meta.value("version", 0) != kStateVersion) return refuse("state format version is not 1");
    if (meta.value("job_key", "") != job_key) return refuse("written for job key " + meta.value("job_key", "?"));
    if (meta.value("method", "") != method.name()) return refuse("written by method " + meta.value("method", "?"));
    // Check everything before changing anything.
    auto need = [&](const std::string& name, const torch::Tensor& like) -> std::optional<std::string> {
      auto it = t.find(name);
      if (it == t.end()) return "tensor " + name + " missing";
      if (it->second.sizes() != like.sizes() || it->second.scalar_type() != like.scalar_type())
        return str_cat("tensor ", name, " is ", it->second.sizes(), " ", it->second.scalar_type(), ", expected ",
                       like.sizes(), " ", like.scalar_type());
      return std::nullopt;
    };
    const auto model = method.checkpoint_tensors();
    for (auto& [name, v] : model)
      if (auto why = need("model." + name, v)) return refuse(*why);
    const json& steps = meta.at("optimizer_steps");
    const auto trainable = method.trainable_parameters();
    for (auto& [name, v] : trainable)
      if (steps.contains(name))
        for (const char* part : {".exp_avg", ".exp_avg_sq"})
          if (auto why = need("optim." + name + part, v)) return refuse(*why);
    if (!t.count("rng.cpu")) return refuse("tensor rng.cpu missing");
    if (device.is_cuda() && !t.count("rng.cuda")) return refuse("written on the CPU, resumed on " + device.str());
    LoopProgress p;
    p.epoch = meta.at("epoch").get<int>();
    p.eval_pending = meta.at("eval_pending").get<bool>();
    p.current.epoch = p.epoch;
    p.current.next_iteration = meta.at("iteration").get<int64_t>();
    p.current.loss_sum = meta.at("loss_sum").get<double>();
    p.current.seconds = meta.at("epoch_seconds").get<double>();
    p.current.images = meta.at("epoch_images").get<int64_t>();
    if (meta.at("has_perm").get<bool>()) {
      if (!t.count("perm")) return refuse("tensor perm missing");
      p.current.perm = t.at("perm");
    }
    p.epoch_train_loss = meta.at("epoch_train_loss").get<std::vector<double>>();
    for (const auto& e : meta.at("evals"))
      p.evals.push_back({e.at("epoch").get<int>(), e.at("test_acc").get<double>(), e.at("train_loss").get<double>()});
    const json& snaps = meta.at("snapshots");
    for (size_t k = 0; k < snaps.size(); ++k) {
      Snapshot s;
      s.epoch = snaps[k].at("epoch").get<int>();
      s.train_loss = snaps[k].at("train_loss").get<double>();
      for (size_t i = 0; i < trainable.size(); ++i) {
        auto it = t.find(str_cat("snapshot.", k, ".", i));
        if (it == t.end() || it->second.numel() != int64_t(trainable[i].second.nbytes()))
          return refuse(str_cat("snapshot ", k, " tensor ", i, " missing or of another size"));
        const auto* b = it->second.data_ptr<uint8_t>();
        s.bytes.emplace_back(b, b + it->second.numel());
      }
      p.snapshots.push_back(std::move(s));
    }
    p.train_s = meta.at("train_s").get<double>();
    p.eval_s = meta.at("eval_s").get<double>();
    p.images = meta.at("images").get<int64_t>();
    p.resumes = meta.at("resumes").get<int>() + 1;
    p.peak_train = meta.at("peak_train_bytes").get<int64_t>();
    p.peak_baseline = meta.at("peak_baseline_bytes").get<int64_t>();
    p.peak_reserved = meta.at("peak_reserved_bytes").get<int64_t>();

    // Now apply: tensors, optimizer state, generators.
    {
      torch::NoGradGuard ng;
      for (auto& [name, v] : model) v.copy_(t.at("model." + name));
    }
    auto& states = optimizer.state();
    for (auto& [name, v] : trainable) {
      states.erase(optimizer_key(v));
      if (!steps.contains(name)) continue;
      auto s = std::make_unique<torch::optim::AdamWParamState>();
      s->step(steps.at(name).get<int64_t>());
      s->exp_avg(t.at("optim." + name + ".exp_avg").to(v.device()));
      s->exp_avg_sq(t.at("optim." + name + ".exp_avg_sq").to(v.device()));
      if (auto it = t.find("optim." + name + ".max_exp_avg_sq"); it != t.end())
        s->max_exp_avg_sq(it->second.to(v.device()));
      states[optimizer_key(v)] = std::move(s);
    }
    set_generator_state(torch::kCPU, t.at("rng.cpu"));
    if (device.is_cuda()) set_generator_state(device, t.at("rng.cuda"));
    return p;
  } catch (const json::exception& e) {
    return refuse(std::string("its progress record is malformed: ") + e.what());
  }
}

StateSaver::StateSaver(std::string path, std::string key, double every_min, Trainer& trainer, std::string label)
    : path_(std::move(path)),
      key_(std::move(key)),
      every_s_(every_min * 60.0),
      trainer_(trainer),
      label_(std::move(label)),
      last_(SteadyClock::now()) {}

bool StateSaver::due() const { return active() && seconds_since(last_) >= every_s_; }

void StateSaver::save(const LoopProgress& p) {
  if (!active()) return;
  trainer_.pause_peak();  // host copies of the state are not training memory
  const auto t0 = SteadyClock::now();
  LoopProgress q = p;
  q.eval_s += trainer_.eval_seconds();
  if (trainer_.started()) {  // paused: the peak so far is final
    q.peak_train = trainer_.peak().train_peak();
    q.peak_baseline = trainer_.peak().baseline();
    q.peak_reserved = trainer_.peak().train_peak_reserved();
  }
  save_job_state(path_, key_, q, trainer_.method(), trainer_.optimizer(), trainer_.device());
  last_ = SteadyClock::now();
  trainer_.resume_peak();
  std::fprintf(stderr, "[petl] %s: training state saved (%zu/%d epochs trained%s) to %s in %.2f s\n", label_.c_str(),
               p.epoch_train_loss.size(), p.total_epochs,
               p.current.next_iteration > 0
                   ? str_cat(", epoch ", p.epoch + 1, " at iteration ", p.current.next_iteration).c_str()
                   : "",
               path_.c_str(), std::chrono::duration<double>(last_ - t0).count());
}

}  // namespace petl
