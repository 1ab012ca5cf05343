// The method interface and name registry. The harness knows no method by name: it builds one
// through the registry, asks it what it needs from the frozen backbone (BackboneNeeds: the
// declaration from which feature caching is decided), trains its trainable tensors and saves
// them under the reference code's names.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/settings.h"
#include "models/vit.h"

namespace petl {

// What a method needs from the frozen backbone.
struct BackboneNeeds {
  bool grad_through_backbone = false;  // back-propagation through the N-token path ("heavy")
  bool final_cls = false;              // final-norm cls token (linear probe)
  bool block_kv = false;               // every block's K and V (SynQT, VQT)
  bool backbone_stochastic = false;    // backbone path random in training (stochastic depth on)
  std::string memory_class = "light";  // light | partial | heavy (docs/spec/baselines.md)
  // Cacheable: nothing flows back through the backbone and its path is deterministic.
  bool cacheable() const { return !grad_through_backbone && !backbone_stochastic; }
};

// Frozen-backbone features served by the feature cache (harness/train/feature_cache.h) instead of a
// live backbone pass: the final-norm cls token (B, D) and/or every block's K and V (B, H, N, D/H).
struct CachedFeatures {
  torch::Tensor cls;
  std::vector<torch::Tensor> k, v;
};

struct MethodContext {
  VisionTransformer backbone{nullptr};
  int num_classes = 0;
  std::string task;
  Settings settings;  // --set key=value; each method reads its own keys
  double backbone_drop_path = 0.0;  // from the recipe
};

class Method : public torch::nn::Module {
 public:
  explicit Method(MethodContext ctx) : ctx_(std::move(ctx)), backbone_(ctx_.backbone) {}
  ~Method() override = default;
  virtual std::string name() const = 0;
  virtual BackboneNeeds needs() const = 0;
  virtual torch::Tensor forward(const torch::Tensor& images) = 0;  // logits (B, C)
  // The same logits from cached features (what needs() declared). Only cacheable methods override
  // it; for them it must equal forward() on the images the features came from.
  virtual torch::Tensor forward_cached(const CachedFeatures& features);

  // Trainable tensors under the reference code's names: the method's own registered tensors plus
  // any backbone tensor it made trainable (timm names). Checkpoints hold exactly these.
  virtual std::vector<std::pair<std::string, torch::Tensor>> trainable_parameters();
  int64_t num_trainable() ;
  // Method-specific effective settings for the result record.
  virtual std::map<std::string, std::string> effective_settings() const { return {}; }
  // Train/eval mode for the method's modules and the backbone (which is not a registered child,
  // so that parameter names stay those of the reference).
  void train(bool on = true) override;

  MethodContext ctx_;
  VisionTransformer backbone_;

 protected:
  // The backbone stays in eval mode even when the method trains (linear probe, VPT's and VQT's
  // frozen encoder, side networks): no stochastic depth on the frozen path.
  bool backbone_always_eval_ = false;
};

using MethodFactory = std::function<std::shared_ptr<Method>(const MethodContext&)>;

struct MethodInfo {
  std::string name;
  std::string description;
  std::string default_recipe;  // a name in config/recipes.yaml
  bool grad_through_backbone = false;
  MethodFactory factory;
  // Per-task recipe values from the reference's own configs (e.g. SSF's lr / weight_decay /
  // drop_path_rate per VTAB task): recipe key → value, applied on top of the recipe and below
  // any --set override. Empty function or empty map: none.
  std::function<std::map<std::string, std::string>(const std::string& task)> task_recipe;
};

class MethodRegistry {
 public:
  static MethodRegistry& instance();
  bool add(MethodInfo info);
  const MethodInfo& get(const std::string& name) const;  // throws petl::Error listing known names
  bool has(const std::string& name) const { return methods_.count(name) > 0; }
  std::vector<std::string> names() const;

 private:
  std::map<std::string, MethodInfo> methods_;
};

std::shared_ptr<Method> build_method(const std::string& name, const MethodContext& ctx);

}  // namespace petl

#define PETL_CONCAT_INNER(a, b) a##b
#define PETL_CONCAT(a, b) PETL_CONCAT_INNER(a, b)
// Registers a method at static-initialisation time (methods are linked as an OBJECT library).
#define PETL_REGISTER_METHOD(info_expr) \
  static const bool PETL_CONCAT(petl_method_registered_, __LINE__) = ::petl::MethodRegistry::instance().add(info_expr)
