// Helpers shared by the torch tests: scratch directories, small backbones, building methods.
#pragma once
#include <filesystem>
#include <string>
#include <torch/torch.h>
#include <vector>

#include "methods/method.h"
#include "models/vit.h"

namespace petl::test {

inline std::string scratch_dir(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("petl_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

inline std::string golden(const std::string& file) { return std::string(PETL_TEST_DIR) + "/golden/" + file; }

inline VitConfig tiny_config(int img = 32, int patch = 8, int dim = 48, int depth = 3, int heads = 4) {
  VitConfig c;
  c.arch = "test_tiny";
  c.img_size = img;
  c.patch_size = patch;
  c.embed_dim = dim;
  c.depth = depth;
  c.num_heads = heads;
  return c;
}

inline std::shared_ptr<Method> make_method(const std::string& name, VisionTransformer vit, int classes,
                                           const std::string& task = "test_task", Settings s = {},
                                           double drop_path = 0.1) {
  MethodContext ctx;
  ctx.backbone = vit;
  ctx.num_classes = classes;
  ctx.task = task;
  ctx.settings = s;
  ctx.backbone_drop_path = drop_path;
  return build_method(name, ctx);
}

// The registered methods whose declaration (BackboneNeeds with default settings: probe_needs)
// satisfies `pred`, by name: tests pick their methods by what each declares, so a new method is
// tested by being registered.
template <typename Pred>
std::vector<std::string> methods_where(Pred pred) {
  std::vector<std::string> out;
  for (const auto& n : MethodRegistry::instance().names())
    if (pred(probe_needs(n))) out.push_back(n);
  return out;
}

inline double max_rel_diff(const torch::Tensor& a, const torch::Tensor& ref) {
  return (a - ref).abs().max().item<double>() / std::max(1e-12, ref.abs().max().item<double>());
}

}  // namespace petl::test
