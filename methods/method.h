// The method interface and name registry. The harness knows no method by name: it builds one
// through the registry, asks it what it needs from the frozen backbone (BackboneNeeds: the
// declaration from which feature caching is decided), trains its trainable tensors and saves
// them under the reference code's names. A method's `--set` options are declared once, in an
// OptionTable (methods/options.h); the registry entry carries their description.
#pragma once
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <torch/torch.h>
#include <vector>

#include "core/enums.h"
#include "core/settings.h"
#include "models/vit.h"

namespace petl {

// What a method needs from the frozen backbone.
struct BackboneNeeds {
  bool grad_through_backbone = false;              // back-propagation through the N-token path ("heavy")
  bool final_cls = false;                          // final-norm cls token (linear probe)
  bool block_kv = false;                           // every block's K and V (SynQT, VQT)
  bool block_tokens = false;                       // every block's output tokens (LST's side network)
  bool backbone_stochastic = false;                // backbone path random in training (stochastic depth on)
  MemoryClass memory_class = MemoryClass::kLight;  // docs/spec/baselines.md
  // The fewest images a training forward accepts in one chunk of a micro-batched step: 2 for a
  // BatchNorm head (training statistics need two values per channel), else 1.
  int64_t min_chunk = 1;
  // The chunk of the method's no-grad backbone pass (backbone_micro_batch; 0: none, or the whole
  // batch at once): one chunk's transient activations are alive at a time, so a step's peak grows
  // faster up to this many images than beyond it — the memory model draws its line past this bend.
  int64_t frozen_chunk = 0;
  // Cacheable: nothing flows back through the backbone and its path is deterministic. Whether a
  // cache holds what the method reads is the feature cache's decision (cache_taps_for).
  bool cacheable() const { return !grad_through_backbone && !backbone_stochastic; }
};

// The frozen-backbone features of a batch, served by a feature cache (harness/train/feature_cache.h)
// or a live backbone pass instead of images: the final-norm cls token (B, D) in float32 and/or
// every block's K and V (B, H, N, D/H) in the dtype they are held in (float16 from a float16 cache;
// attend_with converts them per use). rows (optional): k[l], v[l] are then the resident store's
// views (R, H, N, D/H) and image b of the batch is row rows[b] — read in place by the attention
// (models/kv_attention.h), never gathered into a copy.
struct CachedFeatures {
  torch::Tensor cls;
  std::vector<torch::Tensor> k, v;
  torch::Tensor rows;
};

struct MethodContext {
  // The concrete backbone (the harness builds and loads it); methods use it through Method's
  // backbone_ (the Backbone interface).
  VisionTransformer backbone{nullptr};
  int num_classes = 0;
  std::string task;
  Settings settings;                // --set key=value; each method reads its own keys
  double backbone_drop_path = 0.0;  // from the recipe
};

class Method : public torch::nn::Module {
 public:
  // The one conversion from the concrete backbone to the interface methods use (the harness and the
  // tests keep handing over a VisionTransformer; no method names the concrete class).
  explicit Method(MethodContext ctx)
      : ctx_(std::move(ctx)), backbone_(ctx_.backbone.is_empty() ? nullptr : ctx_.backbone.ptr()) {}
  ~Method() override = default;
  // The registered name (set by build_method).
  const std::string& name() const { return name_; }
  virtual BackboneNeeds needs() const = 0;
  virtual torch::Tensor forward(const torch::Tensor& images) = 0;  // logits (B, C)
  // The same logits from cached features (what needs() declared). Only cacheable methods override
  // it; for them it must equal forward() on the images the features came from.
  virtual torch::Tensor forward_cached(const CachedFeatures& features);

  // Trainable tensors under the reference code's names: the method's own registered tensors plus
  // any backbone tensor it made trainable (timm names). Checkpoints hold exactly these.
  virtual std::vector<std::pair<std::string, torch::Tensor>> trainable_parameters();
  int64_t num_trainable();
  // Trained state that is not a parameter (a BatchNorm head's running statistics), under the
  // reference names. Checkpoints hold trainable_parameters() and these: checkpoint_tensors().
  virtual std::vector<std::pair<std::string, torch::Tensor>> trained_buffers() { return {}; }
  std::vector<std::pair<std::string, torch::Tensor>> checkpoint_tensors();
  // Method-specific effective settings for the result record (and the job key): its options
  // (methods/options.h) plus where per-task values came from ("_task_config_source").
  virtual std::map<std::string, std::string> effective_settings() const { return {}; }
  // Train/eval mode for the method's modules and the backbone (which is not a registered child,
  // so that parameter names stay those of the reference).
  void train(bool on = true) override;

  // The settings the method was built with, and those of its keys nobody read (unknown keys).
  const Settings& settings() const { return ctx_.settings; }
  std::vector<std::string> unused_settings() const { return ctx_.settings.unused(); }
  // The frozen backbone the method runs on (not a registered child), as the harness built it: the
  // harness reads its parameters and computes cached features from it. Methods use backbone_.
  VisionTransformer backbone() const { return ctx_.backbone; }

 protected:
  MethodContext ctx_;
  // The frozen backbone behind the interface methods use (models/backbone_api.h).
  std::shared_ptr<Backbone> backbone_;
  // The backbone stays in eval mode even when the method trains (linear probe, VPT's and VQT's
  // frozen encoder, side networks): no stochastic depth on the frozen path.
  bool backbone_always_eval_ = false;

 private:
  friend std::shared_ptr<Method> build_method(const std::string& name, const MethodContext& ctx);
  std::string name_;
};

using MethodFactory = std::function<std::shared_ptr<Method>(const MethodContext&)>;

// The valid values of a numeric option: [min, max], either end open or unbounded.
struct OptionRange {
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_open = false, max_open = false;

  static OptionRange any() { return {}; }
  static OptionRange at_least(double v) { return {v, std::numeric_limits<double>::infinity(), false, false}; }
  static OptionRange above(double v) { return {v, std::numeric_limits<double>::infinity(), true, false}; }
  static OptionRange probability() { return {0.0, 1.0, false, true}; }  // [0, 1): dropout rates
  bool has_min() const { return min > -std::numeric_limits<double>::infinity(); }
  bool has_max() const { return max < std::numeric_limits<double>::infinity(); }
  bool contains(double v) const { return (min_open ? v > min : v >= min) && (max_open ? v < max : v <= max); }
  std::string str() const;  // ">= 1", "> 0", "in [0, 1)", "(any value)"
};

// The value type of a method option.
enum class OptionType { kInt, kDouble, kBool, kString, kChoice };
template <>
struct EnumText<OptionType> {
  static constexpr const char* kWhat = "option type";
  static constexpr std::array<EnumName<OptionType>, 5> kNames{{{OptionType::kInt, "int"},
                                                               {OptionType::kDouble, "double"},
                                                               {OptionType::kBool, "bool"},
                                                               {OptionType::kString, "string"},
                                                               {OptionType::kChoice, "choice"}}};
  static constexpr std::array<EnumName<OptionType>, 0> kAliases{};
};

// One `--set` option of a method, as `petl list` shows it (methods/options.h builds these).
struct OptionInfo {
  std::string key;
  OptionType type = OptionType::kString;
  std::string default_text;          // as written in effective settings
  OptionRange range;                 // for int and double options
  std::vector<std::string> choices;  // for choice options
  std::string meaning;
};

// Per-task recipe values from the reference's own configs (e.g. SSF's lr / weight_decay /
// drop_path_rate per VTAB task): recipe key → value, applied on top of the recipe and below any
// --set override. Empty function or empty map: none.
using TaskRecipe = std::function<std::map<std::string, std::string>(const std::string& task)>;

// A checkpoint written by the authors' code (their state_dict's names and layout) → petl's
// checkpoint tensors (trainable_parameters() + trained_buffers() names). Tensors of the frozen
// backbone that the authors' state_dict also holds are dropped; the names of what was dropped go to
// `dropped`. Throws petl::Error naming a missing authors' tensor.
using AuthorsImport = std::function<std::map<std::string, torch::Tensor>(
    const std::map<std::string, torch::Tensor>& authors, std::vector<std::string>& dropped)>;

struct MethodInfo {
  std::string name;
  std::string description;
  std::string default_recipe;       // a name in config/recipes.yaml
  std::vector<OptionInfo> options;  // the --set keys the method reads
  MethodFactory factory;
  TaskRecipe task_recipe;
  AuthorsImport import_authors;  // empty: the authors' names are petl's (load directly)
  // The backbone family a method was made for ("" = any): `petl demo`'s "all" (the main job, on the
  // embedded supervised backbone) leaves such methods out; `petl list` says it.
  std::string family;
};

// Labelled registration:
//   PETL_REGISTER_METHOD(MethodSpec("lora").describe("...").recipe("noah").options(kOptions.describe())
//                            .make<LoRA>());
class MethodSpec {
 public:
  explicit MethodSpec(std::string name) { info_.name = std::move(name); }
  MethodSpec& for_family(std::string f) {
    info_.family = std::move(f);
    return *this;
  }
  MethodSpec& describe(std::string d) {
    info_.description = std::move(d);
    return *this;
  }
  MethodSpec& recipe(std::string r) {
    info_.default_recipe = std::move(r);
    return *this;
  }
  MethodSpec& options(std::vector<OptionInfo> o) {
    info_.options = std::move(o);
    return *this;
  }
  MethodSpec& task_recipe(TaskRecipe t) {
    info_.task_recipe = std::move(t);
    return *this;
  }
  MethodSpec& factory(MethodFactory f) {
    info_.factory = std::move(f);
    return *this;
  }
  MethodSpec& import_authors(AuthorsImport f) {
    info_.import_authors = std::move(f);
    return *this;
  }
  // Factory constructing M(ctx, args...).
  template <typename M, typename... Args>
  MethodSpec& make(Args... args) {
    info_.factory = [args...](const MethodContext& c) { return std::make_shared<M>(c, args...); };
    return *this;
  }
  operator MethodInfo() const { return info_; }

 private:
  MethodInfo info_;
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

// What `method` needs from the backbone with settings `s` (defaults when empty), asked of an
// instance built on the small stand-in petl_vit_mini_p8_32 (random weights) for a task outside
// every per-task config. `s` is copied: probing marks none of its keys used. Throws petl::Error for
// an unknown method or invalid settings.
BackboneNeeds probe_needs(const std::string& method, const Settings& s = {}, double backbone_drop_path = 0.0);

}  // namespace petl

#define PETL_CONCAT_INNER(a, b) a##b
#define PETL_CONCAT(a, b) PETL_CONCAT_INNER(a, b)
// Registers a method at static-initialisation time (methods are linked as an OBJECT library).
#define PETL_REGISTER_METHOD(info_expr) \
  static const bool PETL_CONCAT(petl_method_registered_, __LINE__) = ::petl::MethodRegistry::instance().add(info_expr)
